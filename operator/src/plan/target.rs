//! Which containers a session captures: its `spec.target` checked into a [`TargetQuery`]
//! (a pod's name, or a label selector converted by kube's own [`Selector`]), and the pods
//! the API server returned for it narrowed to [`CaptureTarget`]s (Running pods, oldest
//! first, up to `maxPods`; the container named, else the pod's default one, running).
//! Pure: the controller's dereference step does the reading.

use k8s_openapi::api::core::v1::{Pod, PodSpec, PodStatus};
use kube::core::Selector;

use crate::api::TargetSpec;

use super::{Refusal, RefusalReason};

/// Marks a mirror pod (the API's view of a static pod).
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// A static pod's config hash, which names its cgroup.
pub const CONFIG_HASH_ANNOTATION: &str = "kubernetes.io/config.hash";
/// The annotation `kubectl` uses to pick a pod's default container.
pub const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

/// How to find a session's target pods, in the session's own namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetQuery {
    /// The pod of this name.
    Named(String),
    /// The pods these labels select.
    Selected(Selector),
}

impl TargetQuery {
    /// The query of `spec.target`; a selector with an operator Kubernetes does not know
    /// (or `In` without values) is refused.
    pub fn from_spec(target: &TargetSpec) -> Result<Self, Refusal> {
        if let Some(name) = &target.pod {
            return Ok(Self::Named(name.clone()));
        }
        let selector = target.selector.clone().unwrap_or_default();
        Selector::try_from(selector)
            .map(Self::Selected)
            .map_err(|e| {
                Refusal::invalid_spec(format!(
                    "spec.target.selector is not a label selector ({}): use matchLabels, or matchExpressions with In, NotIn, Exists or DoesNotExist",
                    e.0
                ))
            })
    }
}

/// One container to capture, as found in its pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureTarget {
    /// Pod name.
    pub pod: String,
    /// Pod namespace (the session's).
    pub namespace: String,
    /// The UID that names the pod's cgroup: `metadata.uid`, or a static pod's config hash.
    pub pod_uid: String,
    /// Node.
    pub node: String,
    /// Container name.
    pub container: String,
    /// Container ID with its runtime prefix (`containerd://…`).
    pub container_id: String,
}

/// The targets among `pods`, what the API server returned for `query` in `namespace`:
/// the named pod, or the Running pods the selector matched (oldest first, up to
/// `spec.target.maxPods`), each with its container checked.
pub fn select(
    query: &TargetQuery,
    pods: Vec<Pod>,
    target: &TargetSpec,
    namespace: &str,
) -> Result<Vec<CaptureTarget>, Refusal> {
    let chosen = match query {
        TargetQuery::Named(name) => {
            if pods.is_empty() {
                return Err(Refusal::new(
                    RefusalReason::TargetNotFound,
                    format!(
                        "pod {name} not found in namespace {namespace}: check spec.target.pod (the target must be in the DebugSession's namespace)"
                    ),
                ));
            }
            pods
        }
        TargetQuery::Selected(selector) => {
            let running = oldest_running(pods, target.max_pods.unwrap_or(1) as usize);
            if running.is_empty() {
                return Err(Refusal::new(
                    RefusalReason::TargetNotFound,
                    format!(
                        "no Running pod in namespace {namespace} matches the selector {:?}: check spec.target.selector",
                        selector.to_string()
                    ),
                ));
            }
            running
        }
    };
    chosen
        .iter()
        .map(|pod| CaptureTarget::from_pod(pod, target.container.as_deref()))
        .collect()
}

/// The `limit` oldest Running pods (ties broken by name, so the choice is stable).
fn oldest_running(pods: Vec<Pod>, limit: usize) -> Vec<Pod> {
    let mut running: Vec<Pod> = pods
        .into_iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .collect();
    running.sort_by(|a, b| {
        a.metadata
            .creation_timestamp
            .cmp(&b.metadata.creation_timestamp)
            .then(a.metadata.name.cmp(&b.metadata.name))
    });
    running.truncate(limit);
    running
}

impl CaptureTarget {
    /// Resolves the container to capture in `pod`: the named one, else the pod's default
    /// container. The pod must be Running and the container running.
    pub fn from_pod(pod: &Pod, container: Option<&str>) -> Result<Self, Refusal> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let spec = pod.spec.as_ref().ok_or_else(|| {
            Refusal::new(
                RefusalReason::TargetNotRunning,
                format!("pod {name} has no spec"),
            )
        })?;
        let status = pod.status.clone().unwrap_or_default();
        let phase = status.phase.clone().unwrap_or_else(|| "Unknown".into());
        if phase != "Running" {
            return Err(Refusal::new(
                RefusalReason::TargetNotRunning,
                format!("pod {name} is {phase}, not Running: only a running pod can be captured"),
            ));
        }
        let container = match container {
            Some(container) => container.to_string(),
            None => default_container(pod, spec),
        };
        if !spec.containers.iter().any(|c| c.name == container) {
            let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
            return Err(Refusal::new(
                RefusalReason::ContainerNotFound,
                format!(
                    "pod {name} has no container {container:?} (its containers: {}): fix spec.target.container",
                    names.join(", ")
                ),
            ));
        }
        let container_id = running_container_id(status, &container).ok_or_else(|| {
            Refusal::new(
                RefusalReason::ContainerNotRunning,
                format!(
                    "container {container} of pod {name} is not running (restarting or not started): try again when it runs"
                ),
            )
        })?;
        Ok(Self {
            pod_uid: cgroup_pod_uid(pod),
            node: spec.node_name.clone().unwrap_or_default(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            pod: name,
            container,
            container_id,
        })
    }
}

/// The container `kubectl` picks: the default-container annotation, else the first one.
fn default_container(pod: &Pod, spec: &PodSpec) -> String {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEFAULT_CONTAINER_ANNOTATION))
        .cloned()
        .or_else(|| spec.containers.first().map(|c| c.name.clone()))
        .unwrap_or_default()
}

/// The ID of `container` if it is running (and has one).
fn running_container_id(status: PodStatus, container: &str) -> Option<String> {
    let status = status
        .container_statuses
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.name == container)?;
    let running = status.state.as_ref().is_some_and(|s| s.running.is_some());
    status.container_id.filter(|id| running && !id.is_empty())
}

/// The UID in the pod's cgroup path: a static pod's cgroup is named after its config
/// hash, not after its mirror pod's UID.
fn cgroup_pod_uid(pod: &Pod) -> String {
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    match annotations
        .get(MIRROR_ANNOTATION)
        .and(annotations.get(CONFIG_HASH_ANNOTATION))
    {
        Some(hash) => hash.clone(),
        None => pod.metadata.uid.clone().unwrap_or_default(),
    }
}
