//! Running one pod through the CRI the way the kubelet's pod worker does: the pod's
//! directories, volumes and cgroup; the sandbox; init containers one at a time to
//! completion; then the containers; exits, restarts (a new container in the same
//! sandbox, attempt and log file `<restartCount>.log`, with the kubelet's back-off),
//! `activeDeadlineSeconds`, the pod phase; and, when the pod ends, its sandbox stopped.
//! Deleting the pod stops its containers within the grace period and removes the sandbox.
//!
//! The pod's status is polled from the runtime every [`POLL`] (containerd 1.6 has no
//! container event stream), so a state change shows up that much later.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_cri::v1::{
    ContainerConfig, ContainerStatusRequest, CreateContainerRequest, KeyValue, Mount,
    PodSandboxStatusRequest, RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest,
    StopContainerRequest, StopPodSandboxRequest,
};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateWaiting, ContainerStatus, Pod, PodStatus,
};
use tokio::sync::watch;

use super::spec::{ContainerPlan, PodPlan, RestartPolicy, VolumeKind, termination_message_file};
use super::{PodState, Shared, cgroups, status};
use crate::error::Error;

/// How often the runtime is asked for the containers' states.
pub const POLL: Duration = Duration::from_millis(100);
/// The kubelet's first restart back-off (doubled per restart, up to [`MAX_BACKOFF`]).
const BACKOFF: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How long a container that could not be created waits before the next try.
const CREATE_RETRY: Duration = Duration::from_secs(2);

/// One container of the pod across its restarts.
struct Record {
    plan: ContainerPlan,
    /// The current instance's runtime ID.
    id: Option<String>,
    restart_count: i32,
    state: ContainerState,
    last_state: Option<ContainerState>,
    message_file: Option<PathBuf>,
    image_id: String,
    /// When the next start may happen (back-off, or a retry after a creation error).
    next_start: Option<Instant>,
    /// Whether it exited and must not be started again.
    done: bool,
}

impl Record {
    fn new(plan: ContainerPlan) -> Self {
        Self {
            plan,
            id: None,
            restart_count: 0,
            state: waiting("ContainerCreating", ""),
            last_state: None,
            message_file: None,
            image_id: String::new(),
            next_start: None,
            done: false,
        }
    }

    fn running(&self) -> bool {
        self.state.running.is_some()
    }

    fn exit_code(&self) -> Option<i32> {
        self.state.terminated.as_ref().map(|t| t.exit_code)
    }

    fn status(&self) -> ContainerStatus {
        ContainerStatus {
            name: self.plan.name.clone(),
            image: self.plan.image.clone(),
            image_id: self.image_id.clone(),
            container_id: self.id.as_ref().map(|id| format!("containerd://{id}")),
            ready: self.running(),
            started: Some(self.running()),
            restart_count: self.restart_count,
            state: Some(self.state.clone()),
            last_state: self.last_state.clone(),
            ..Default::default()
        }
    }
}

fn waiting(reason: &str, message: &str) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message: Some(message.to_string()).filter(|m| !m.is_empty()),
        }),
        ..Default::default()
    }
}

/// The state of one pod worker.
pub(super) struct Worker {
    shared: Arc<Shared>,
    plan: PodPlan,
    pod: Pod,
    sandbox_id: Option<String>,
    init: Vec<Record>,
    containers: Vec<Record>,
    started: Instant,
    start_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    phase: &'static str,
    reason: Option<String>,
    message: Option<String>,
    pod_ip: Option<String>,
    sandbox_stopped: bool,
    tx: watch::Sender<PodState>,
}

impl Worker {
    pub(super) fn new(
        shared: Arc<Shared>,
        plan: PodPlan,
        pod: Pod,
        tx: watch::Sender<PodState>,
    ) -> Self {
        Self {
            init: plan
                .init_containers
                .iter()
                .cloned()
                .map(Record::new)
                .collect(),
            containers: plan.containers.iter().cloned().map(Record::new).collect(),
            shared,
            plan,
            pod,
            sandbox_id: None,
            started: Instant::now(),
            start_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            )),
            phase: "Pending",
            reason: None,
            message: None,
            pod_ip: None,
            sandbox_stopped: false,
            tx,
        }
    }

    /// Runs the pod until `deleted` turns true, then tears it down.
    pub(super) async fn run(mut self, mut deleted: watch::Receiver<bool>) {
        if let Err(error) = self.set_up().await {
            self.fail_node(error);
        }
        loop {
            if *deleted.borrow() {
                break;
            }
            if self.sandbox_id.is_some()
                && let Err(error) = self.step().await
            {
                self.fail_node(error);
            }
            self.publish();
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = deleted.changed() => {}
            }
        }
        self.tear_down().await;
    }

    /// Records a failure of the stand-in itself (not of the pod) for the test to see.
    fn fail_node(&mut self, error: Error) {
        let message = error.to_string();
        self.tx
            .send_modify(|state| state.node_error = Some(message));
    }

    /// Directories, volumes, the pod cgroup, and the sandbox.
    async fn set_up(&mut self) -> Result<(), Error> {
        for dir in [&self.plan.pod_dir, &self.plan.log_dir] {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
        }
        for volume in &self.plan.volumes {
            match &volume.kind {
                VolumeKind::EmptyDir { .. } => {
                    std::fs::create_dir_all(&volume.host_path)
                        .map_err(|e| Error::io("creating the emptyDir", &volume.host_path, e))?;
                    // An emptyDir is world-writable, as the kubelet makes it.
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(
                        &volume.host_path,
                        std::fs::Permissions::from_mode(0o777),
                    )
                    .map_err(|e| Error::io("chmod", &volume.host_path, e))?;
                }
                VolumeKind::HostPath { path_type } => {
                    if path_type == "DirectoryOrCreate" {
                        std::fs::create_dir_all(&volume.host_path).map_err(|e| {
                            Error::io("creating the hostPath", &volume.host_path, e)
                        })?;
                    } else if path_type == "Directory" && !volume.host_path.is_dir() {
                        return Err(Error::InvalidPod(format!(
                            "hostPath {} of volume {} is not a directory",
                            volume.host_path.display(),
                            volume.name
                        )));
                    }
                }
            }
        }
        cgroups::create_pod_cgroup(&self.plan.cgroup_parent, self.plan.pod_memory_limit)?;
        let mut runtime = self.shared.cri.runtime.clone();
        let sandbox_id = runtime
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(self.plan.sandbox.clone()),
                runtime_handler: String::new(),
            })
            .await
            .map_err(|e| Error::cri("RunPodSandbox", e))?
            .into_inner()
            .pod_sandbox_id;
        let status = runtime
            .pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: sandbox_id.clone(),
                verbose: false,
            })
            .await
            .map_err(|e| Error::cri("PodSandboxStatus", e))?
            .into_inner();
        self.pod_ip = status
            .status
            .and_then(|s| s.network)
            .map(|n| n.ip)
            .filter(|ip| !ip.is_empty());
        self.sandbox_id = Some(sandbox_id);
        Ok(())
    }

    /// One round: deadline, exits, starts and restarts, phase.
    async fn step(&mut self) -> Result<(), Error> {
        let terminal = matches!(self.phase, "Succeeded" | "Failed");
        if terminal {
            if !self.sandbox_stopped {
                self.stop_sandbox().await?;
            }
            return Ok(());
        }
        if let Some(deadline) = self.plan.active_deadline
            && self.started.elapsed() >= deadline
        {
            self.stop_running().await;
            self.refresh().await?;
            self.phase = "Failed";
            self.reason = Some("DeadlineExceeded".into());
            self.message = Some(format!(
                "Pod was active on the node longer than the specified deadline ({} s)",
                deadline.as_secs()
            ));
            return Ok(());
        }
        self.refresh().await?;
        let policy = self.plan.restart_policy;
        // Init containers, one at a time; a failed one is restarted unless the policy is
        // Never, which fails the pod.
        if let Some(i) = self.init.iter().position(|r| r.exit_code() != Some(0)) {
            let record = &self.init[i];
            match record.exit_code() {
                Some(_) if policy == RestartPolicy::Never => {
                    self.phase = "Failed";
                    return Ok(());
                }
                _ if record.running() => {}
                _ => self.start_when_due(true, i).await?,
            }
            self.phase = "Pending";
            return Ok(());
        }
        for i in 0..self.containers.len() {
            let record = &self.containers[i];
            if record.done || record.running() {
                continue;
            }
            let restart = match record.exit_code() {
                None => true,
                Some(0) => policy == RestartPolicy::Always,
                Some(_) => policy != RestartPolicy::Never,
            };
            if restart {
                self.start_when_due(false, i).await?;
            } else {
                self.containers[i].done = true;
            }
        }
        self.phase = self.container_phase();
        Ok(())
    }

    /// The pod phase from its containers (`getPhase`, once the init containers are done).
    fn container_phase(&self) -> &'static str {
        if self.containers.iter().any(Record::running) {
            return "Running";
        }
        if !self.containers.iter().all(|r| r.done) {
            // Waiting to start, or to restart after an exit.
            let restarting = self
                .containers
                .iter()
                .any(|r| r.restart_count > 0 || r.exit_code().is_some());
            return if restarting { "Running" } else { "Pending" };
        }
        if self.containers.iter().all(|r| r.exit_code() == Some(0)) {
            "Succeeded"
        } else {
            "Failed"
        }
    }

    /// Starts container `i` (init or not) if its back-off or retry time has come.
    async fn start_when_due(&mut self, init: bool, i: usize) -> Result<(), Error> {
        let record = if init {
            &self.init[i]
        } else {
            &self.containers[i]
        };
        if record.next_start.is_some_and(|t| Instant::now() < t) {
            return Ok(());
        }
        let restart = record.exit_code().is_some();
        let attempt = if restart {
            record.restart_count + 1
        } else {
            record.restart_count
        };
        let outcome = self.start(init, i, attempt).await?;
        let record = if init {
            &mut self.init[i]
        } else {
            &mut self.containers[i]
        };
        match outcome {
            Ok((id, message_file, image_id)) => {
                if restart {
                    record.last_state = Some(std::mem::take(&mut record.state));
                    record.restart_count = attempt;
                    let exponent = (attempt - 1).clamp(0, 10) as u32;
                    let backoff = (BACKOFF * 2u32.pow(exponent)).min(MAX_BACKOFF);
                    record.next_start = Some(Instant::now() + backoff);
                } else {
                    record.next_start = None;
                }
                record.id = Some(id);
                record.message_file = Some(message_file);
                record.image_id = image_id;
                record.state = ContainerState {
                    running: Some(Default::default()),
                    ..Default::default()
                };
            }
            Err(state) => {
                record.state = state;
                record.next_start = Some(Instant::now() + CREATE_RETRY);
            }
        }
        Ok(())
    }

    /// Creates and starts an instance of container `i`. `Ok(Err(waiting))` when the
    /// kubelet would leave it waiting (image missing, configuration or runtime error).
    async fn start(
        &mut self,
        init: bool,
        i: usize,
        attempt: i32,
    ) -> Result<Result<(String, PathBuf, String), ContainerState>, Error> {
        let plan = if init {
            &self.init[i].plan
        } else {
            &self.containers[i].plan
        };
        let plan = plan.clone();
        let image = self.shared.cri.image(&plan.image).await?;
        let Some(image) = image else {
            return Ok(Err(if plan.pull_policy == "Never" {
                waiting(
                    "ErrImageNeverPull",
                    &format!(
                        "Container image \"{}\" is not present with pull policy of Never",
                        plan.image
                    ),
                )
            } else {
                waiting(
                    "ErrImagePull",
                    &format!(
                        "image {} is not on the test node, which has no registry to pull from",
                        plan.image
                    ),
                )
            }));
        };
        if let Some(message) = non_root_violation(&plan, &image, &self.plan) {
            return Ok(Err(waiting("CreateContainerConfigError", &message)));
        }
        let mut envs = match self.secret_env(&plan) {
            Ok(envs) => envs,
            Err(message) => return Ok(Err(waiting("CreateContainerConfigError", &message))),
        };
        let mut config: ContainerConfig = plan.config.clone();
        envs.append(&mut config.envs);
        config.envs = envs;
        if let Some(metadata) = config.metadata.as_mut() {
            metadata.attempt = attempt as u32;
        }
        // A new, empty termination-message file for this instance, writable by any user.
        let instance = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let message_file = termination_message_file(&self.plan.pod_dir, &plan.name, instance);
        let parent = message_file.parent().expect("a file in a directory");
        std::fs::create_dir_all(parent).map_err(|e| Error::io("creating", parent, e))?;
        std::fs::write(&message_file, "").map_err(|e| Error::io("creating", &message_file, e))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&message_file, std::fs::Permissions::from_mode(0o666))
            .map_err(|e| Error::io("chmod", &message_file, e))?;
        config.mounts.push(Mount {
            container_path: plan.termination_message_path.clone(),
            host_path: message_file.display().to_string(),
            ..Default::default()
        });
        let log_dir = self.plan.log_dir.join(&plan.name);
        std::fs::create_dir_all(&log_dir).map_err(|e| Error::io("creating", &log_dir, e))?;
        config.log_path = format!("{}/{attempt}.log", plan.name);

        let mut runtime = self.shared.cri.runtime.clone();
        let sandbox_id = self.sandbox_id.clone().expect("the sandbox runs");
        let created = runtime
            .create_container(CreateContainerRequest {
                pod_sandbox_id: sandbox_id,
                config: Some(config),
                sandbox_config: Some(self.plan.sandbox.clone()),
            })
            .await;
        let id = match created {
            Ok(response) => response.into_inner().container_id,
            Err(status) => return Ok(Err(waiting("CreateContainerError", status.message()))),
        };
        if let Err(status) = runtime
            .start_container(StartContainerRequest {
                container_id: id.clone(),
            })
            .await
        {
            // The kubelet reports a container that cannot start as terminated, reason
            // "ContainerCannotRun"; the runtime's status says why.
            let mut state = self.container_state(&id, &plan).await?;
            if let Some(t) = state.terminated.as_mut() {
                t.reason = Some("ContainerCannotRun".into());
                t.message = Some(status.message().to_string());
            }
            let record = if init {
                &mut self.init[i]
            } else {
                &mut self.containers[i]
            };
            record.id = Some(id.clone());
            return Ok(Err(state));
        }
        Ok(Ok((id, message_file, image.id)))
    }

    /// The Secrets' variables of `plan` (`envFrom`), or why the container cannot start.
    fn secret_env(&self, plan: &ContainerPlan) -> Result<Vec<KeyValue>, String> {
        let secrets = self.shared.secrets.lock().expect("secrets lock");
        let mut envs = Vec::new();
        for from in &plan.secret_env {
            match secrets.get(&(self.plan.namespace.clone(), from.name.clone())) {
                Some(data) => envs.extend(data.iter().map(|(key, value)| KeyValue {
                    key: format!("{}{key}", from.prefix),
                    value: value.clone(),
                })),
                None if from.optional => {}
                None => return Err(format!("secret \"{}\" not found", from.name)),
            }
        }
        Ok(envs)
    }

    /// Reads the state of every container instance that runs, recording exits.
    async fn refresh(&mut self) -> Result<(), Error> {
        for init in [true, false] {
            let count = if init {
                self.init.len()
            } else {
                self.containers.len()
            };
            for i in 0..count {
                let record = if init {
                    &self.init[i]
                } else {
                    &self.containers[i]
                };
                let (Some(id), true) = (record.id.clone(), record.running()) else {
                    continue;
                };
                let plan = record.plan.clone();
                let state = self.container_state(&id, &plan).await?;
                let record = if init {
                    &mut self.init[i]
                } else {
                    &mut self.containers[i]
                };
                if state.terminated.is_some() || state.running.is_some() {
                    record.state = state;
                }
            }
        }
        Ok(())
    }

    /// The Kubernetes state of container instance `id`.
    async fn container_state(
        &self,
        id: &str,
        plan: &ContainerPlan,
    ) -> Result<ContainerState, Error> {
        let response = self
            .shared
            .cri
            .runtime
            .clone()
            .container_status(ContainerStatusRequest {
                container_id: id.to_string(),
                verbose: false,
            })
            .await
            .map_err(|e| Error::cri("ContainerStatus", e))?
            .into_inner();
        let Some(cri) = response.status else {
            return Ok(waiting(
                "ContainerUnknown",
                "the runtime returned no status",
            ));
        };
        if cri.state == i32::from(k8s_cri::v1::ContainerState::ContainerExited) {
            let record = self
                .init
                .iter()
                .chain(&self.containers)
                .find(|r| r.id.as_deref() == Some(id));
            let message_file = record.and_then(|r| r.message_file.clone());
            let log = self.plan.log_dir.join(&cri.log_path);
            return Ok(status::terminated(
                &cri,
                message_file.as_deref(),
                plan.fallback_to_logs,
                &log,
            ));
        }
        Ok(status::running(&cri).unwrap_or_else(|| waiting("ContainerCreating", "")))
    }

    /// Stops every running container within the grace period.
    async fn stop_running(&mut self) {
        let ids: Vec<String> = self
            .init
            .iter()
            .chain(&self.containers)
            .filter(|r| r.running())
            .filter_map(|r| r.id.clone())
            .collect();
        for id in ids {
            let _ = self
                .shared
                .cri
                .runtime
                .clone()
                .stop_container(StopContainerRequest {
                    container_id: id,
                    timeout: self.plan.grace_period,
                })
                .await;
        }
        for record in self.init.iter_mut().chain(self.containers.iter_mut()) {
            record.done = true;
        }
    }

    async fn stop_sandbox(&mut self) -> Result<(), Error> {
        if let Some(id) = &self.sandbox_id {
            self.shared
                .cri
                .runtime
                .clone()
                .stop_pod_sandbox(StopPodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                })
                .await
                .map_err(|e| Error::cri("StopPodSandbox", e))?;
        }
        self.sandbox_stopped = true;
        Ok(())
    }

    /// Deletion: containers stopped within the grace period, the sandbox removed (with its
    /// containers), the pod cgroup removed.
    async fn tear_down(&mut self) {
        self.stop_running().await;
        if let Some(id) = self.sandbox_id.take() {
            let mut runtime = self.shared.cri.runtime.clone();
            let _ = runtime
                .stop_pod_sandbox(StopPodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                })
                .await;
            if let Err(e) = runtime
                .remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
                .await
            {
                self.fail_node(Error::cri("RemovePodSandbox", e));
            }
        }
        if let Err(e) = cgroups::remove_pod_cgroup(&self.plan.cgroup_parent) {
            self.fail_node(e);
        }
        self.tx.send_modify(|state| state.deleted = true);
    }

    /// Publishes the pod with its status.
    fn publish(&self) {
        let mut pod = self.pod.clone();
        let statuses = |records: &[Record]| -> Option<Vec<ContainerStatus>> {
            (!records.is_empty()).then(|| records.iter().map(Record::status).collect())
        };
        pod.status = Some(PodStatus {
            phase: Some(self.phase.to_string()),
            reason: self.reason.clone(),
            message: self.message.clone(),
            qos_class: Some(self.plan.qos.name().to_string()),
            start_time: self.start_time.clone(),
            pod_ip: self.pod_ip.clone(),
            host_ip: Some("127.0.0.1".into()),
            init_container_statuses: statuses(&self.init),
            container_statuses: statuses(&self.containers),
            ..Default::default()
        });
        let ids: BTreeMap<String, String> = self
            .init
            .iter()
            .chain(&self.containers)
            .filter_map(|r| Some((r.plan.name.clone(), r.id.clone()?)))
            .collect();
        self.tx.send_modify(|state| {
            state.pod = pod;
            state.container_ids = ids;
            state.sandbox_id = self.sandbox_id.clone();
        });
    }
}

/// Why the kubelet refuses to start `plan` under `runAsNonRoot`, if it does.
fn non_root_violation(
    plan: &ContainerPlan,
    image: &crate::cri::ImageInfo,
    pod: &PodPlan,
) -> Option<String> {
    if !plan.run_as_non_root {
        return None;
    }
    let who = format!(
        "(pod: \"{}_{}({})\", container: {})",
        pod.name, pod.namespace, pod.uid, plan.name
    );
    match plan.run_as_user.or(image.uid) {
        Some(0) if plan.run_as_user.is_some() => Some(format!(
            "container's runAsUser breaks non-root policy {who}"
        )),
        Some(0) => Some(format!(
            "container has runAsNonRoot and image will run as root {who}"
        )),
        Some(_) => None,
        None if !image.username.is_empty() => Some(format!(
            "container has runAsNonRoot and image has non-numeric user ({}), cannot verify user is non-root {who}",
            image.username
        )),
        None => Some(format!(
            "container has runAsNonRoot and image will run as root {who}"
        )),
    }
}
