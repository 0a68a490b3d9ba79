//! The kubelet stand-in: runs a `Pod` on the test node through the CRI API, the way the
//! kubelet would, and reports its status as the kubelet writes it into the Pod, so that
//! what the operator reads back (the capture container's termination message, exit codes,
//! waiting reasons) comes from a real runtime.
//!
//! It implements the Pod fields listed in [`fields`]; a pod setting any other field is
//! refused before anything runs, with every such field named. Also not done, where a
//! real kubelet would: probes, eviction (an emptyDir's `sizeLimit` is recorded, not
//! enforced), the API server's admission (a service account token), cluster DNS and
//! service variables (the node has neither), image pulls (the node has only the images
//! the test bed imported; a missing one is `ErrImagePull`).

mod cgroups;
pub mod fields;
mod lifecycle;
pub mod quantity;
pub mod spec;
pub mod status;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_cri::v1::{ContainerStatusRequest, PodSandboxStatusRequest};
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;
use tokio::sync::watch;

use crate::cri::Cri;
use crate::error::Error;
pub(crate) use cgroups::remove_pod_cgroup;
pub use spec::{NodeDirs, QosClass};

/// What the stand-in's pods share: the CRI clients, the node's directories, and the
/// Secrets of the (absent) API server, by namespace and name.
pub(crate) struct Shared {
    pub cri: Cri,
    pub dirs: NodeDirs,
    pub node_name: String,
    pub secrets: Mutex<BTreeMap<(String, String), BTreeMap<String, String>>>,
}

/// The published state of one pod.
#[derive(Debug, Clone, Default)]
pub struct PodState {
    /// The pod, with its UID and the status the kubelet would write.
    pub pod: Pod,
    /// The runtime ID of each container's current instance, by name.
    pub container_ids: BTreeMap<String, String>,
    /// The sandbox's runtime ID.
    pub sandbox_id: Option<String>,
    /// A failure of the stand-in or the runtime that the pod status cannot express.
    pub node_error: Option<String>,
    /// Whether the pod was deleted.
    pub deleted: bool,
}

/// The kubelet of the test node.
pub struct Kubelet {
    shared: Arc<Shared>,
    workers: Mutex<Vec<(watch::Sender<bool>, tokio::task::JoinHandle<()>)>>,
    /// Every pod cgroup made, for the node's cleanup.
    pod_cgroups: Mutex<Vec<String>>,
}

impl Kubelet {
    pub(crate) fn new(cri: Cri, dirs: NodeDirs, node_name: String) -> Self {
        Self {
            shared: Arc::new(Shared {
                cri,
                dirs,
                node_name,
                secrets: Mutex::new(BTreeMap::new()),
            }),
            workers: Mutex::new(Vec::new()),
            pod_cgroups: Mutex::new(Vec::new()),
        }
    }

    /// The node's name (what pods name in `spec.nodeName`).
    pub fn node_name(&self) -> &str {
        &self.shared.node_name
    }

    /// Stores a Secret, which `envFrom` can then name.
    pub fn add_secret(&self, namespace: &str, name: &str, data: BTreeMap<String, String>) {
        self.shared
            .secrets
            .lock()
            .expect("secrets lock")
            .insert((namespace.to_string(), name.to_string()), data);
    }

    /// Starts running `pod` (a UID is given to it when it has none, as the API server
    /// would). Fails, before anything runs, when the pod uses a field the stand-in does not
    /// implement, or names another node.
    pub fn run(&self, mut pod: Pod) -> Result<PodHandle, Error> {
        let json = serde_json::to_value(&pod).expect("a Pod serializes");
        let mut unsupported = fields::unsupported(&json);
        if json.get("status").is_some_and(|s| !s.is_null()) {
            unsupported.retain(|f| !f.starts_with("status"));
        }
        if !unsupported.is_empty() {
            return Err(Error::Unsupported {
                fields: unsupported,
            });
        }
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        if node.as_deref().is_some_and(|n| n != self.shared.node_name) {
            return Err(Error::InvalidPod(format!(
                "spec.nodeName is {node:?}, and this node is {:?}",
                self.shared.node_name
            )));
        }
        pod.status = None;
        if pod.metadata.uid.is_none() {
            pod.metadata.uid = Some(uuid::Uuid::new_v4().to_string());
        }
        let plan = spec::plan(&pod, &self.shared.dirs)?;
        self.pod_cgroups
            .lock()
            .expect("cgroups lock")
            .push(plan.cgroup_parent.clone());
        let (tx, rx) = watch::channel(PodState {
            pod: pod.clone(),
            ..Default::default()
        });
        let (delete_tx, delete_rx) = watch::channel(false);
        let worker = lifecycle::Worker::new(self.shared.clone(), plan.clone(), pod, tx);
        let task = tokio::spawn(worker.run(delete_rx));
        self.workers
            .lock()
            .expect("workers lock")
            .push((delete_tx.clone(), task));
        Ok(PodHandle {
            state: rx,
            delete: delete_tx,
            cri: self.shared.cri.clone(),
            plan,
        })
    }

    /// Deletes every pod and waits (at most `timeout`) until they are gone.
    pub async fn delete_all(&self, timeout: Duration) {
        let workers: Vec<_> = std::mem::take(&mut *self.workers.lock().expect("workers lock"));
        for (delete, _) in &workers {
            let _ = delete.send(true);
        }
        for (_, task) in workers {
            let abort = task.abort_handle();
            if tokio::time::timeout(timeout, task).await.is_err() {
                abort.abort();
            }
        }
    }

    /// The cgroups of every pod run.
    pub(crate) fn pod_cgroups(&self) -> Vec<String> {
        self.pod_cgroups.lock().expect("cgroups lock").clone()
    }

    /// Stops every pod worker at once (the node's forced cleanup removes what they ran).
    pub(crate) fn abort_all(&self) {
        for (_, task) in self.workers.lock().expect("workers lock").drain(..) {
            task.abort();
        }
    }
}

/// A pod the stand-in runs.
pub struct PodHandle {
    state: watch::Receiver<PodState>,
    delete: watch::Sender<bool>,
    cri: Cri,
    plan: spec::PodPlan,
}

impl PodHandle {
    /// The pod as last published, with its status.
    pub fn pod(&self) -> Pod {
        self.state.borrow().pod.clone()
    }

    /// The latest state.
    pub fn state(&self) -> PodState {
        self.state.borrow().clone()
    }

    /// What the kubelet derived from the pod (QoS class, cgroup, volumes' host paths).
    pub fn plan(&self) -> &spec::PodPlan {
        &self.plan
    }

    /// Waits until `done` holds for the pod, failing after `timeout` or on a failure of
    /// the stand-in itself.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Pod) -> bool,
    ) -> Result<Pod, Error> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.clone();
        loop {
            {
                let current = state.borrow_and_update();
                if let Some(error) = &current.node_error {
                    return Err(Error::InvalidPod(format!(
                        "while waiting for {what}: {error}"
                    )));
                }
                if done(&current.pod) {
                    return Ok(current.pod.clone());
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, state.changed()).await.is_err() {
                let pod = state.borrow().pod.clone();
                return Err(Error::Timeout {
                    what: what.to_string(),
                    seconds: timeout.as_secs(),
                    last: serde_json::to_string(&pod.status).unwrap_or_default(),
                });
            }
        }
    }

    /// Waits until every container runs.
    pub async fn running(&self, timeout: Duration) -> Result<Pod, Error> {
        self.wait_for("every container to run", timeout, |pod| {
            let status = pod.status.as_ref();
            status.and_then(|s| s.phase.as_deref()) == Some("Running")
                && status
                    .and_then(|s| s.container_statuses.as_ref())
                    .is_some_and(|cs| {
                        cs.iter()
                            .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
                    })
        })
        .await
    }

    /// Waits until the pod has ended (`Succeeded` or `Failed`).
    pub async fn finished(&self, timeout: Duration) -> Result<Pod, Error> {
        self.wait_for("the pod to end", timeout, |pod| {
            matches!(
                pod.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            )
        })
        .await
    }

    /// What the runtime says of container `name`'s current instance (`verbose` info:
    /// `pid`, `runtimeSpec` (the OCI spec runc was given), …).
    pub async fn runtime_info(&self, name: &str) -> Result<Value, Error> {
        let id = self
            .state
            .borrow()
            .container_ids
            .get(name)
            .cloned()
            .ok_or_else(|| Error::InvalidPod(format!("container {name} has not been created")))?;
        let response = self
            .cri
            .runtime
            .clone()
            .container_status(ContainerStatusRequest {
                container_id: id,
                verbose: true,
            })
            .await
            .map_err(|e| Error::cri("ContainerStatus", e))?
            .into_inner();
        let info = response.info.get("info").cloned().unwrap_or_default();
        serde_json::from_str(&info).map_err(|e| {
            Error::InvalidPod(format!("the runtime's info on {name} is not JSON: {e}"))
        })
    }

    /// The host pid of container `name`'s current instance.
    pub async fn pid(&self, name: &str) -> Result<i32, Error> {
        pid_in(
            &self.runtime_info(name).await?,
            &format!("container {name}"),
        )
    }

    /// The host pid of the pod's sandbox process (`pause`), whose namespaces (network,
    /// IPC) the pod's containers share; waits (at most `timeout`) until the sandbox runs.
    pub async fn sandbox_pid(&self, timeout: Duration) -> Result<i32, Error> {
        let mut state = self.state.clone();
        let sandbox = tokio::time::timeout(timeout, state.wait_for(|s| s.sandbox_id.is_some()))
            .await
            .map_err(|_| Error::Timeout {
                what: "the pod's sandbox".into(),
                seconds: timeout.as_secs(),
                last: String::new(),
            })?
            .map_err(|_| Error::InvalidPod("the pod worker ended before its sandbox ran".into()))?
            .sandbox_id
            .clone()
            .expect("waited for it");
        let response = self
            .cri
            .runtime
            .clone()
            .pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: sandbox,
                verbose: true,
            })
            .await
            .map_err(|e| Error::cri("PodSandboxStatus", e))?
            .into_inner();
        let info: Value = serde_json::from_str(
            response.info.get("info").map_or("", String::as_str),
        )
        .map_err(|e| Error::InvalidPod(format!("the runtime's sandbox info is not JSON: {e}")))?;
        pid_in(&info, "the sandbox")
    }

    /// What container `name` wrote, from its CRI log `<restart>.log`.
    pub fn log(&self, name: &str, restart: u32) -> Vec<String> {
        let path = self.plan.log_dir.join(name).join(format!("{restart}.log"));
        status::log_contents(&std::fs::read_to_string(path).unwrap_or_default())
    }

    /// Deletes the pod and waits (at most `timeout`) until it is gone.
    pub async fn delete(&self, timeout: Duration) -> Result<(), Error> {
        let _ = self.delete.send(true);
        self.wait_deleted(timeout).await
    }

    async fn wait_deleted(&self, timeout: Duration) -> Result<(), Error> {
        let mut state = self.state.clone();
        let wait = state.wait_for(|s| s.deleted);
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(_)) => Ok(()),
            // The worker ended (the node is shutting down): nothing is left to wait for.
            Ok(Err(_)) => Ok(()),
            Err(_) => Err(Error::Timeout {
                what: "the pod to be deleted".into(),
                seconds: timeout.as_secs(),
                last: String::new(),
            }),
        }
    }
}

/// The `pid` in the runtime's verbose info on a container or sandbox.
fn pid_in(info: &Value, what: &str) -> Result<i32, Error> {
    info["pid"]
        .as_i64()
        .filter(|&pid| pid > 0)
        .map(|pid| pid as i32)
        .ok_or_else(|| Error::InvalidPod(format!("{what} has no pid: {info}")))
}
