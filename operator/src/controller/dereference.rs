//! The dereference stage: reading what a session points to, and nothing else. The target
//! pods its query names (in the session's own namespace only), the capture pods already
//! there, and how many captures a node is running. Every decision on what is read is the
//! validate stage's ([`crate::plan`]) or the controller's.

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams};

use super::Context;
use super::error::{Error, kube_err};
use crate::capture_pod;
use crate::plan::TargetQuery;

/// How many capture pods a node runs (Pending or Running ones: a finished pod does not
/// hold a slot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLoad {
    /// The node.
    pub node: String,
    /// Its unfinished capture pods.
    pub captures: usize,
}

impl NodeLoad {
    /// Whether another capture would exceed `max` on this node.
    pub fn is_full(&self, max: usize) -> bool {
        self.captures >= max
    }
}

/// The pods `query` names in `namespace`: the named pod if it exists, or every pod the
/// selector matches (Running or not: [`crate::plan::target::select`] chooses).
pub async fn target_pods(
    ctx: &Context,
    namespace: &str,
    query: &TargetQuery,
) -> Result<Vec<Pod>, Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    match query {
        TargetQuery::Named(name) => Ok(pods
            .get_opt(name)
            .await
            .map_err(kube_err("reading the target pod"))?
            .into_iter()
            .collect()),
        TargetQuery::Selected(selector) => Ok(pods
            .list(&ListParams::default().labels_from(selector))
            .await
            .map_err(kube_err("listing the target pods"))?
            .items),
    }
}

/// The capture pod of this name, if it exists.
pub async fn capture_pod(ctx: &Context, name: &str) -> Result<Option<Pod>, Error> {
    ctx.capture_pods()
        .get_opt(name)
        .await
        .map_err(kube_err("reading a capture pod"))
}

/// The capture pods running or about to run on `node`.
pub async fn node_load(ctx: &Context, node: &str) -> Result<NodeLoad, Error> {
    let captures = ctx
        .capture_pods()
        .list(
            &ListParams::default()
                .labels_from(&capture_pod::capture_pods())
                .fields(&format!("spec.nodeName={node}")),
        )
        .await
        .map_err(kube_err("counting capture pods on a node"))?
        .items
        .iter()
        .filter(|p| {
            matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Pending" | "Running") | None
            )
        })
        .count();
    Ok(NodeLoad {
        node: node.to_string(),
        captures,
    })
}

/// The names of the capture pods of a session (found by their labels).
pub async fn capture_pods_of(
    ctx: &Context,
    session_namespace: &str,
    session_name: &str,
) -> Result<Vec<String>, Error> {
    let selector = capture_pod::capture_pods_of(session_namespace, session_name);
    Ok(ctx
        .capture_pods()
        .list(&ListParams::default().labels_from(&selector))
        .await
        .map_err(kube_err("listing capture pods to delete"))?
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect())
}
