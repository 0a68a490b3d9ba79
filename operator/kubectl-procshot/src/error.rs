//! What can go wrong, each error saying what to do about it, and the one place that maps
//! errors and outcomes to exit codes. API errors are classified here from the request
//! that failed ([`Request`]: which verb on which resource in which namespace), since the
//! API server's own message names neither the fix nor, for a missing CRD, the cause.

use std::path::PathBuf;

use crate::download::DownloadError;

/// Exit codes scripts can rely on.
pub mod exit_code {
    /// Done; no finding at warning or worse.
    pub const OK: u8 = 0;
    /// Any error not listed below.
    pub const ERROR: u8 = 1;
    /// A bad command line.
    pub const USAGE: u8 = 2;
    /// Findings at warning or critical.
    pub const FINDINGS: u8 = 3;
    /// The session failed.
    pub const SESSION_FAILED: u8 = 4;
    /// The session did not finish in time.
    pub const TIMED_OUT: u8 = 5;
    /// A download failed or a file did not match the manifest.
    pub const DOWNLOAD_FAILED: u8 = 6;
}

/// The install commands, for a cluster without the CRD.
pub const INSTALL_HINT: &str = "install procshot from its repository with `helm install procshot \
    charts/procshot --namespace procshot-system --create-namespace`, or only the CRD with \
    `kubectl apply -f crds/`";

/// One API request, for messages: `create` `debugsessions.procshot.dev` in `shop`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The RBAC verb.
    pub verb: &'static str,
    /// The resource with its group (`debugsessions.procshot.dev`, `pods`, `pods/exec`).
    pub resource: &'static str,
    /// Its namespace (empty for cluster-scoped resources).
    pub namespace: String,
}

impl Request {
    /// A request on a resource of `namespace`.
    pub fn new(verb: &'static str, resource: &'static str, namespace: &str) -> Self {
        Self {
            verb,
            resource,
            namespace: namespace.to_string(),
        }
    }

    fn place(&self) -> String {
        if self.namespace.is_empty() {
            String::new()
        } else {
            format!(" in namespace {}", self.namespace)
        }
    }

    /// Which role grants it, for a refused request.
    fn grant_hint(&self) -> &'static str {
        match (self.resource, self.verb) {
            ("debugsessions.procshot.dev", "get" | "list" | "watch") => {
                " (procshot's chart adds it to the built-in view, edit and admin roles: ask for \
                 one of them in this namespace)"
            }
            ("debugsessions.procshot.dev", _) => {
                " (procshot's chart adds it to the built-in edit and admin roles: ask for one of \
                 them in this namespace)"
            }
            ("pods/exec" | "pods/log" | "pods", _) => {
                " (capture pods run in the operator's namespace, which on-call engineers \
                 usually cannot read: ask its admin, or download from the object store once the \
                 upload works)"
            }
            _ => "",
        }
    }
}

/// Everything that stops a command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig could not be loaded.
    #[error(
        "cannot load the cluster configuration: {detail} (check --kubeconfig or KUBECONFIG, \
         and --context: kubectl config get-contexts)"
    )]
    Kubeconfig {
        /// Why.
        detail: String,
    },
    /// The DebugSession CRD is not installed.
    #[error(
        "the DebugSession resource (debugsessions.procshot.dev) is not installed in this \
         cluster: {INSTALL_HINT}"
    )]
    CrdMissing,
    /// RBAC refused a request.
    #[error(
        "you may not {verb} {resource}{place}: ask for a Role that grants \"{verb}\" on \
         {resource}{hint} [the API server said: {server}]",
        verb = request.verb,
        resource = request.resource,
        place = request.place(),
        hint = request.grant_hint(),
    )]
    Forbidden {
        /// The refused request.
        request: Request,
        /// The API server's message.
        server: String,
    },
    /// The API server did not accept the credentials.
    #[error(
        "the API server refused your credentials ({server}): log in again, or check the \
         context's user (kubectl config view --minify)"
    )]
    Unauthorized {
        /// The API server's message.
        server: String,
    },
    /// The API server could not be reached.
    #[error(
        "cannot reach the API server to {verb} {resource}: {detail} (check the context: \
         kubectl config current-context, kubectl cluster-info)",
        verb = request.verb,
        resource = request.resource,
    )]
    Unreachable {
        /// The request.
        request: Request,
        /// Why.
        detail: String,
    },
    /// An object that was asked for by name does not exist.
    #[error(
        "{kind} {name} not found in namespace {namespace}{}",
        similar_names(similar)
    )]
    NotFound {
        /// `pod`, `debugsession`, `deployment`…
        kind: &'static str,
        /// Its name.
        name: String,
        /// Its namespace.
        namespace: String,
        /// Names of that namespace that look like it.
        similar: Vec<String>,
    },
    /// The target exists but cannot be captured as asked.
    #[error("{0}")]
    Target(String),
    /// The API server refused the request for another reason.
    #[error(
        "{verb} {resource}{place} failed: {server}",
        verb = request.verb,
        resource = request.resource,
        place = request.place(),
    )]
    Api {
        /// The request.
        request: Request,
        /// The API server's message (or the client's error).
        server: String,
    },
    /// A command-line combination clap cannot check.
    #[error("{0}")]
    Usage(String),
    /// Writing the output failed (a closed pipe, a full disk).
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    /// A download failed.
    #[error(transparent)]
    Download(#[from] DownloadError),
    /// `download DIR` cannot be used.
    #[error(
        "{dir} is not an empty directory: choose a new one (a download never overwrites files)"
    )]
    DirectoryNotEmpty {
        /// The directory.
        dir: PathBuf,
    },
}

impl Error {
    /// The exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => exit_code::USAGE,
            Self::Download(_) | Self::DirectoryNotEmpty { .. } => exit_code::DOWNLOAD_FAILED,
            _ => exit_code::ERROR,
        }
    }

    /// Classifies a failed API request. A 404 becomes [`Error::NotFound`] without
    /// suggestions (the caller adds them); a missing CRD is told apart by the caller too,
    /// with a discovery request ([`crate::sessions`]).
    pub fn from_kube(error: kube::Error, request: Request, name: &str, kind: &'static str) -> Self {
        match error {
            kube::Error::Api(status) => match status.code {
                401 => Self::Unauthorized {
                    server: status.message,
                },
                403 => Self::Forbidden {
                    request,
                    server: status.message,
                },
                404 if !name.is_empty() => Self::NotFound {
                    kind,
                    name: name.to_string(),
                    namespace: request.namespace,
                    similar: Vec::new(),
                },
                _ => Self::Api {
                    request,
                    server: status.message,
                },
            },
            kube::Error::HyperError(_) | kube::Error::Service(_) => Self::Unreachable {
                request,
                detail: procshot_api::error_chain(&error),
            },
            other => Self::Api {
                request,
                server: procshot_api::error_chain(&other),
            },
        }
    }

    /// Whether the API answered 404 Not Found.
    pub fn is_not_found(error: &kube::Error) -> bool {
        matches!(error, kube::Error::Api(status) if status.code == 404)
    }
}

fn similar_names(similar: &[String]) -> String {
    match similar {
        [] => String::new(),
        [one] => format!(": did you mean {one}?"),
        many => format!(": did you mean one of {}?", many.join(", ")),
    }
}

/// Up to five of `candidates` that look like `name` (a shared prefix, or a small edit
/// distance), closest first.
pub fn similar<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut scored: Vec<(f64, &str)> = candidates
        .into_iter()
        .filter(|c| *c != name)
        .filter_map(|candidate| {
            let prefix = common_prefix(name, candidate);
            let score = strsim::jaro_winkler(name, candidate);
            let close = score >= 0.85 || prefix >= name.len().min(candidate.len()).clamp(3, 8);
            close.then_some((score, candidate))
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    scored
        .into_iter()
        .take(5)
        .map(|(_, name)| name.to_string())
        .collect()
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_names_share_a_prefix_or_a_few_letters() {
        let pods = [
            "api-7d9f8-x2b4q",
            "api-7d9f8-k2lmn",
            "web-5c6d7-aaaaa",
            "apiserver-proxy",
            "db-0",
        ];
        assert_eq!(
            similar("api-7d9f8-x2b4", pods),
            ["api-7d9f8-x2b4q", "api-7d9f8-k2lmn"]
        );
        assert_eq!(similar("api", pods).len(), 3, "{:?}", similar("api", pods));
        assert!(similar("cache-1", pods).is_empty());
    }

    #[test]
    fn refused_requests_name_the_verb_and_resource() {
        let e = Error::from_kube(
            kube::Error::Api(
                kube::core::Status::failure("debugsessions.procshot.dev is forbidden", "Forbidden")
                    .with_code(403)
                    .boxed(),
            ),
            Request::new("create", "debugsessions.procshot.dev", "shop"),
            "",
            "debugsession",
        )
        .to_string();
        assert!(
            e.starts_with(
                "you may not create debugsessions.procshot.dev in namespace shop: ask for a Role \
                 that grants \"create\" on debugsessions.procshot.dev"
            ),
            "{e}"
        );
        assert!(e.contains("edit and admin roles"), "{e}");
    }
}
