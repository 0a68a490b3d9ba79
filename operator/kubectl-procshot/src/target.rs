//! What `capture TARGET` names: a pod (`NAME`, `pod/NAME`), a workload whose pods to
//! capture (`deploy/NAME`, `sts/…`, `ds/…`, `rs/…`, `job/…`) or a `-l` selector, turned
//! into a DebugSession's `spec.target`. Checked against the cluster first, so that a typo
//! is answered with the pod names that look like it instead of a session that fails.

use std::str::FromStr;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::ListParams;
use kube::{Api, Client};
use procshot_operator::api::TargetSpec;
use serde::de::DeserializeOwned;

use crate::error::{Error, Request};
use crate::selector;

/// A workload kind whose pods can be captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    /// `deploy/NAME`.
    Deployment,
    /// `sts/NAME`.
    StatefulSet,
    /// `ds/NAME`.
    DaemonSet,
    /// `rs/NAME`.
    ReplicaSet,
    /// `job/NAME`.
    Job,
}

impl WorkloadKind {
    /// Its name in messages, as kubectl prints it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Deployment => "deployment",
            Self::StatefulSet => "statefulset",
            Self::DaemonSet => "daemonset",
            Self::ReplicaSet => "replicaset",
            Self::Job => "job",
        }
    }

    /// The resource, as RBAC names it.
    fn resource(self) -> &'static str {
        match self {
            Self::Deployment => "deployments.apps",
            Self::StatefulSet => "statefulsets.apps",
            Self::DaemonSet => "daemonsets.apps",
            Self::ReplicaSet => "replicasets.apps",
            Self::Job => "jobs.batch",
        }
    }
}

/// The `TARGET` argument, or `-l`.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetArg {
    /// One pod.
    Pod(String),
    /// The pods of a workload.
    Workload {
        /// Its kind.
        kind: WorkloadKind,
        /// Its name.
        name: String,
    },
    /// Pods with these labels.
    Selector(LabelSelector),
}

impl FromStr for TargetArg {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let Some((kind, name)) = text.split_once('/') else {
            return Ok(Self::Pod(text.to_string()));
        };
        let kind = match kind.to_ascii_lowercase().as_str() {
            "po" | "pod" | "pods" => return Ok(Self::Pod(name.to_string())),
            "deploy" | "deployment" | "deployments" => WorkloadKind::Deployment,
            "sts" | "statefulset" | "statefulsets" => WorkloadKind::StatefulSet,
            "ds" | "daemonset" | "daemonsets" => WorkloadKind::DaemonSet,
            "rs" | "replicaset" | "replicasets" => WorkloadKind::ReplicaSet,
            "job" | "jobs" => WorkloadKind::Job,
            other => {
                return Err(Error::Usage(format!(
                    "{text}: procshot captures pods, or the pods of a deploy/, sts/, ds/, rs/ \
                     or job/, not of a {other}"
                )));
            }
        };
        if name.is_empty() || name.contains('/') {
            return Err(Error::Usage(format!("{text}: expected TYPE/NAME")));
        }
        Ok(Self::Workload {
            kind,
            name: name.to_string(),
        })
    }
}

impl TargetArg {
    /// The target from `capture`'s arguments.
    pub fn from_args(target: Option<&str>, selector: Option<&str>) -> Result<Self, Error> {
        match (target, selector) {
            (_, Some(selector)) => selector::parse(selector)
                .map(Self::Selector)
                .map_err(|e| Error::Usage(e.to_string())),
            (Some(target), None) => target.parse(),
            (None, None) => Err(Error::Usage(
                "name a pod, a workload (deploy/NAME) or a selector (-l app=api)".into(),
            )),
        }
    }

    /// What the generated session name starts with.
    pub fn name_prefix(&self) -> &str {
        match self {
            Self::Pod(name) | Self::Workload { name, .. } => name,
            Self::Selector(selector) => selector
                .match_labels
                .iter()
                .flatten()
                .next()
                .map_or("selector", |(_, value)| value.as_str()),
        }
    }

    /// The spec without asking the cluster (a pod or a selector); `None` for a workload,
    /// whose selector only the cluster knows.
    pub fn offline_spec(
        &self,
        container: Option<&str>,
        max_pods: Option<u32>,
    ) -> Option<TargetSpec> {
        match self {
            Self::Pod(pod) => Some(TargetSpec {
                pod: Some(pod.clone()),
                container: container.map(str::to_string),
                ..TargetSpec::default()
            }),
            Self::Selector(selector) => Some(selector_spec(selector.clone(), container, max_pods)),
            Self::Workload { .. } => None,
        }
    }
}

fn selector_spec(
    selector: LabelSelector,
    container: Option<&str>,
    max_pods: Option<u32>,
) -> TargetSpec {
    TargetSpec {
        selector: Some(selector),
        max_pods,
        container: container.map(str::to_string),
        ..TargetSpec::default()
    }
}

/// The target, checked against the cluster.
pub struct Resolved {
    /// `spec.target`.
    pub spec: TargetSpec,
    /// Something the user should know (how many pods a selector matches).
    pub note: Option<String>,
}

/// Checks the target in `namespace` and builds `spec.target`: a pod must exist, run and
/// have the container; a workload's selector is read; a selector must match a running pod.
pub async fn resolve(
    client: &Client,
    namespace: &str,
    target: &TargetArg,
    container: Option<&str>,
    max_pods: Option<u32>,
) -> Result<Resolved, Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match target {
        TargetArg::Pod(name) => {
            check_pod(&pods, namespace, name, container).await?;
            Ok(Resolved {
                spec: target
                    .offline_spec(container, max_pods)
                    .expect("a pod target"),
                note: None,
            })
        }
        TargetArg::Workload { kind, name } => {
            let selector = workload_selector(client, namespace, *kind, name).await?;
            let what = format!("{}/{name}", kind.name());
            let note = count_running(&pods, namespace, &selector, &what, max_pods).await?;
            Ok(Resolved {
                spec: selector_spec(selector, container, max_pods),
                note,
            })
        }
        TargetArg::Selector(selector) => {
            let what = format!("selector {}", selector::render(selector));
            let note = count_running(&pods, namespace, selector, &what, max_pods).await?;
            Ok(Resolved {
                spec: selector_spec(selector.clone(), container, max_pods),
                note,
            })
        }
    }
}

async fn check_pod(
    pods: &Api<Pod>,
    namespace: &str,
    name: &str,
    container: Option<&str>,
) -> Result<(), Error> {
    let pod = match pods.get(name).await {
        Ok(pod) => pod,
        Err(e) if Error::is_not_found(&e) => {
            let names = pods
                .list(&ListParams::default())
                .await
                .map(|list| {
                    list.items
                        .into_iter()
                        .filter_map(|p| p.metadata.name)
                        .collect()
                })
                .unwrap_or_else(|_| Vec::<String>::new());
            return Err(Error::NotFound {
                kind: "pod",
                name: name.to_string(),
                namespace: namespace.to_string(),
                similar: crate::error::similar(name, names.iter().map(String::as_str)),
            });
        }
        Err(e) => {
            return Err(Error::from_kube(
                e,
                Request::new("get", "pods", namespace),
                name,
                "pod",
            ));
        }
    };
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Unknown".into());
    if phase != "Running" {
        return Err(Error::Target(format!(
            "pod {name} is {phase}, not Running: procshot captures running processes (a pod that \
             crashed and restarts shows its last crash in kubectl describe pod {name})"
        )));
    }
    let containers: Vec<String> = pod
        .spec
        .iter()
        .flat_map(|spec| spec.containers.iter().map(|c| c.name.clone()))
        .collect();
    if let Some(container) = container
        && !containers.iter().any(|c| c == container)
    {
        return Err(Error::Target(format!(
            "pod {name} has no container {container}: its containers are {}",
            containers.join(", ")
        )));
    }
    Ok(())
}

/// The label selector of a workload.
async fn workload_selector(
    client: &Client,
    namespace: &str,
    kind: WorkloadKind,
    name: &str,
) -> Result<LabelSelector, Error> {
    let selector = match kind {
        WorkloadKind::Deployment => {
            read::<Deployment>(client, namespace, kind, name, |d| {
                d.spec.map(|s| s.selector)
            })
            .await?
        }
        WorkloadKind::StatefulSet => {
            read::<StatefulSet>(client, namespace, kind, name, |d| {
                d.spec.map(|s| s.selector)
            })
            .await?
        }
        WorkloadKind::DaemonSet => {
            read::<DaemonSet>(client, namespace, kind, name, |d| {
                d.spec.map(|s| s.selector)
            })
            .await?
        }
        WorkloadKind::ReplicaSet => {
            read::<ReplicaSet>(client, namespace, kind, name, |d| {
                d.spec.map(|s| s.selector)
            })
            .await?
        }
        WorkloadKind::Job => {
            read::<Job>(client, namespace, kind, name, |d| {
                d.spec.and_then(|s| s.selector)
            })
            .await?
        }
    };
    let empty = selector.as_ref().is_none_or(|s| {
        s.match_labels.as_ref().is_none_or(|m| m.is_empty())
            && s.match_expressions.as_ref().is_none_or(|e| e.is_empty())
    });
    match selector {
        Some(selector) if !empty => Ok(selector),
        _ => Err(Error::Target(format!(
            "{}/{name} has no pod selector: name one of its pods, or give -l",
            kind.name()
        ))),
    }
}

async fn read<K>(
    client: &Client,
    namespace: &str,
    kind: WorkloadKind,
    name: &str,
    selector: impl FnOnce(K) -> Option<LabelSelector>,
) -> Result<Option<LabelSelector>, Error>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    match api.get(name).await {
        Ok(object) => Ok(selector(object)),
        Err(e) => {
            let not_found = Error::is_not_found(&e);
            let mut error = Error::from_kube(
                e,
                Request::new("get", kind.resource(), namespace),
                name,
                kind.name(),
            );
            if not_found && let Error::NotFound { similar, .. } = &mut error {
                let names: Vec<String> = api
                    .list(&ListParams::default())
                    .await
                    .map(|l| {
                        l.items
                            .into_iter()
                            .filter_map(|o| o.meta().name.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                *similar = crate::error::similar(name, names.iter().map(String::as_str));
            }
            Err(error)
        }
    }
}

/// Counts the running pods a selector matches: none is an error; more than will be
/// captured is a note.
async fn count_running(
    pods: &Api<Pod>,
    namespace: &str,
    selector: &LabelSelector,
    what: &str,
    max_pods: Option<u32>,
) -> Result<Option<String>, Error> {
    let params = ListParams::default().labels(&selector::render(selector));
    let list = pods
        .list(&params)
        .await
        .map_err(|e| Error::from_kube(e, Request::new("list", "pods", namespace), "", "pod"))?;
    let mut running: Vec<&Pod> = list
        .items
        .iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .collect();
    running.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
    let names: Vec<&str> = running
        .iter()
        .filter_map(|p| p.metadata.name.as_deref())
        .collect();
    let capturing = max_pods.unwrap_or(1) as usize;
    match names.len() {
        0 if list.items.is_empty() => Err(Error::Target(format!(
            "{what} matches no pod in namespace {namespace}"
        ))),
        0 => Err(Error::Target(format!(
            "{what} matches {} pods in namespace {namespace}, none of them Running",
            list.items.len()
        ))),
        n if n > capturing => Ok(Some(format!(
            "{what} matches {n} running pods; capturing the oldest {capturing} ({}): --max-pods {} captures more",
            names[..capturing].join(", "),
            n.min(10)
        ))),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_pods_or_workloads_as_kubectl_names_them() {
        assert_eq!(
            "api-1".parse::<TargetArg>().unwrap(),
            TargetArg::Pod("api-1".into())
        );
        assert_eq!(
            "pod/api-1".parse::<TargetArg>().unwrap(),
            TargetArg::Pod("api-1".into())
        );
        assert_eq!(
            "deploy/api".parse::<TargetArg>().unwrap(),
            TargetArg::Workload {
                kind: WorkloadKind::Deployment,
                name: "api".into()
            }
        );
        assert_eq!(
            "StatefulSet/db".parse::<TargetArg>().unwrap(),
            TargetArg::Workload {
                kind: WorkloadKind::StatefulSet,
                name: "db".into()
            }
        );
        let e = "svc/api".parse::<TargetArg>().unwrap_err().to_string();
        assert!(e.contains("not of a svc"), "{e}");
        assert!("deploy/".parse::<TargetArg>().is_err());
    }
}
