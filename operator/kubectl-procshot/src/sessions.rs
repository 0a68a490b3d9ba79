//! The DebugSession requests every command makes, each failure turned into an error that
//! says what to do: a 404 is told apart as a missing CRD (by a discovery request) or a
//! missing session (with the names that look like it).

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use procshot_operator::api::DebugSession;

use crate::error::{Error, Request};

/// The resource, as RBAC names it.
pub const RESOURCE: &str = "debugsessions.procshot.dev";
const API_VERSION: &str = "procshot.dev/v1alpha1";

/// DebugSessions of one namespace.
pub struct Sessions {
    client: Client,
    namespace: String,
    api: Api<DebugSession>,
}

impl Sessions {
    /// The sessions of `namespace`.
    pub fn new(client: &Client, namespace: &str) -> Self {
        Self {
            client: client.clone(),
            namespace: namespace.to_string(),
            api: Api::namespaced(client.clone(), namespace),
        }
    }

    fn request(&self, verb: &'static str) -> Request {
        Request::new(verb, RESOURCE, &self.namespace)
    }

    /// One session by name.
    pub async fn get(&self, name: &str) -> Result<DebugSession, Error> {
        match self.api.get(name).await {
            Ok(session) => Ok(session),
            Err(e) if Error::is_not_found(&e) => Err(self.not_found(name).await),
            Err(e) => Err(Error::from_kube(
                e,
                self.request("get"),
                name,
                "debugsession",
            )),
        }
    }

    /// Every session of the namespace (of every namespace with `all`).
    pub async fn list(&self, all: bool) -> Result<Vec<DebugSession>, Error> {
        let api: Api<DebugSession> = if all {
            Api::all(self.client.clone())
        } else {
            self.api.clone()
        };
        let mut request = self.request("list");
        if all {
            request.namespace.clear();
        }
        match api.list(&ListParams::default()).await {
            Ok(list) => Ok(list.items),
            Err(e) if Error::is_not_found(&e) => Err(self.missing_crd_or(e, request).await),
            Err(e) => Err(Error::from_kube(e, request, "", "debugsession")),
        }
    }

    /// Creates `session` (only checks it, with `dry_run`).
    pub async fn create(
        &self,
        session: &DebugSession,
        dry_run: bool,
    ) -> Result<DebugSession, Error> {
        let params = PostParams {
            dry_run,
            field_manager: Some(crate::session::CREATED_BY.to_string()),
        };
        match self.api.create(&params, session).await {
            Ok(created) => Ok(created),
            Err(e) if Error::is_not_found(&e) => {
                Err(self.missing_crd_or(e, self.request("create")).await)
            }
            Err(e) => Err(Error::from_kube(
                e,
                self.request("create"),
                "",
                "debugsession",
            )),
        }
    }

    /// Deletes a session; whether it was there.
    pub async fn delete(&self, name: &str) -> Result<(), Error> {
        match self.api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(e) if Error::is_not_found(&e) => Err(self.not_found(name).await),
            Err(e) => Err(Error::from_kube(
                e,
                self.request("delete"),
                name,
                "debugsession",
            )),
        }
    }

    /// A session by name, or `None` once it is gone.
    pub async fn get_opt(&self, name: &str) -> Result<Option<DebugSession>, Error> {
        self.api
            .get_opt(name)
            .await
            .map_err(|e| Error::from_kube(e, self.request("get"), name, "debugsession"))
    }

    /// Why `name` was not found: the CRD is missing, or the session is (with similar names).
    async fn not_found(&self, name: &str) -> Error {
        if !self.crd_installed().await {
            return Error::CrdMissing;
        }
        let names = match self.api.list(&ListParams::default()).await {
            Ok(list) => list
                .items
                .into_iter()
                .filter_map(|s| s.metadata.name)
                .collect(),
            Err(_) => Vec::new(),
        };
        Error::NotFound {
            kind: "debugsession",
            name: name.to_string(),
            namespace: self.namespace.clone(),
            similar: crate::error::similar(name, names.iter().map(String::as_str)),
        }
    }

    async fn missing_crd_or(&self, error: kube::Error, request: Request) -> Error {
        if self.crd_installed().await {
            Error::from_kube(error, request, "", "debugsession")
        } else {
            Error::CrdMissing
        }
    }

    /// Whether the API server serves DebugSessions (a discovery request; an error other
    /// than 404 counts as installed, so that the original error is the one reported).
    async fn crd_installed(&self) -> bool {
        match self.client.list_api_group_resources(API_VERSION).await {
            Ok(resources) => resources
                .resources
                .iter()
                .any(|r| r.name == "debugsessions"),
            Err(e) => !Error::is_not_found(&e),
        }
    }
}

/// Who the API server takes the user for (a SelfSubjectReview), for the session's
/// `requested-by` annotation; `None` where the server does not say (older than 1.28, or
/// refused).
pub async fn whoami(client: &Client) -> Option<String> {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .ok()?;
    review.status?.user_info?.username
}
