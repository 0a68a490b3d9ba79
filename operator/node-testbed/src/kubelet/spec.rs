//! From a Pod to what the kubelet asks of the runtime: the sandbox's configuration, and
//! each container's, with the security context, resources, mounts and environment the
//! kubelet derives from the Pod (pod-level security context merged under each
//! container's, defaults the API server would have filled in, the QoS class and its
//! cgroup). Pure: no CRI calls; what needs the node at start time (Secrets, the image's
//! user, the termination-message file) is resolved by the `lifecycle` module.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_cri::v1::{
    Capability, ContainerConfig, ContainerMetadata, ImageSpec, Int64Value, KeyValue,
    LinuxContainerConfig, LinuxContainerResources, LinuxContainerSecurityContext,
    LinuxPodSandboxConfig, LinuxSandboxSecurityContext, Mount, NamespaceMode, NamespaceOption,
    PodSandboxConfig, PodSandboxMetadata, SecurityProfile, security_profile::ProfileType,
};
use k8s_openapi::api::core::v1::{
    Container, Pod, PodSecurityContext, ResourceRequirements, SeccompProfile, SecurityContext,
};

use super::quantity;
use crate::error::Error;

/// The kubelet's default masked paths (`securitycontext.ConvertToRuntimeMaskedPaths` with
/// the default proc mount).
const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
/// The kubelet's default read-only paths.
const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];
/// `terminationMessagePath`'s default.
const TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// `terminationGracePeriodSeconds`' default.
const GRACE_PERIOD: i64 = 30;

/// A pod's QoS class, which names its cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosClass {
    /// Every container has CPU and memory limits equal to its requests.
    Guaranteed,
    /// Some requests or limits, not Guaranteed.
    Burstable,
    /// No requests or limits at all.
    BestEffort,
}

impl QosClass {
    /// The class as the pod status names it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Guaranteed => "Guaranteed",
            Self::Burstable => "Burstable",
            Self::BestEffort => "BestEffort",
        }
    }

    /// The pod's cgroup as the kubelet's cgroupfs driver names it (cgroup root `/`).
    pub fn cgroup_parent(self, uid: &str) -> String {
        match self {
            Self::Guaranteed => format!("/kubepods/pod{uid}"),
            Self::Burstable => format!("/kubepods/burstable/pod{uid}"),
            Self::BestEffort => format!("/kubepods/besteffort/pod{uid}"),
        }
    }
}

/// `spec.restartPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Restart every container that exits.
    Always,
    /// Restart containers that fail.
    OnFailure,
    /// Never restart.
    Never,
}

/// A volume of the pod, on the node.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    /// Its name in the pod.
    pub name: String,
    /// Where it is on the node.
    pub host_path: PathBuf,
    /// What it is.
    pub kind: VolumeKind,
}

/// The volume types the stand-in implements.
#[derive(Debug, Clone, PartialEq)]
pub enum VolumeKind {
    /// An `emptyDir` on the node's disk; `sizeLimit` is recorded (the kubelet enforces it
    /// by evicting the pod, which the stand-in does not do).
    EmptyDir {
        /// `sizeLimit` in bytes.
        size_limit: Option<i64>,
    },
    /// A `hostPath`, which must be a directory when `type: Directory`.
    HostPath {
        /// `type`.
        path_type: String,
    },
}

/// `envFrom` with a Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretEnv {
    /// The Secret's name (in the pod's namespace).
    pub name: String,
    /// Prefix of every variable.
    pub prefix: String,
    /// Whether a missing Secret is fine.
    pub optional: bool,
}

/// One container as the kubelet will create it.
#[derive(Debug, Clone)]
pub struct ContainerPlan {
    /// Its name.
    pub name: String,
    /// The image reference.
    pub image: String,
    /// `imagePullPolicy`, defaulted as the API server does.
    pub pull_policy: String,
    /// The CRI configuration, without what each start adds (attempt, log path, the
    /// termination-message mount, the Secrets' variables).
    pub config: ContainerConfig,
    /// `terminationMessagePath`.
    pub termination_message_path: String,
    /// `terminationMessagePolicy: FallbackToLogsOnError`.
    pub fallback_to_logs: bool,
    /// Secrets whose keys become variables.
    pub secret_env: Vec<SecretEnv>,
    /// `runAsNonRoot` (pod or container): the kubelet refuses to start a container that
    /// would run as uid 0.
    pub run_as_non_root: bool,
    /// The effective `runAsUser`.
    pub run_as_user: Option<i64>,
    /// The memory limit in bytes.
    pub memory_limit: Option<i64>,
}

/// Everything the kubelet derives from a Pod before running it.
#[derive(Debug, Clone)]
pub struct PodPlan {
    /// The pod's UID.
    pub uid: String,
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its QoS class.
    pub qos: QosClass,
    /// Its cgroup (`/kubepods/burstable/pod<uid>`).
    pub cgroup_parent: String,
    /// The pod cgroup's memory limit (the sum of the containers' limits when every
    /// container has one, as the kubelet sets it).
    pub pod_memory_limit: Option<i64>,
    /// The sandbox configuration.
    pub sandbox: PodSandboxConfig,
    /// Init containers, in order.
    pub init_containers: Vec<ContainerPlan>,
    /// Containers.
    pub containers: Vec<ContainerPlan>,
    /// `restartPolicy`.
    pub restart_policy: RestartPolicy,
    /// `activeDeadlineSeconds`.
    pub active_deadline: Option<Duration>,
    /// `terminationGracePeriodSeconds`.
    pub grace_period: i64,
    /// The volumes.
    pub volumes: Vec<Volume>,
    /// The pod's directory on the node (`<kubelet root>/pods/<uid>`).
    pub pod_dir: PathBuf,
    /// Its log directory (`<log root>/<namespace>_<name>_<uid>`).
    pub log_dir: PathBuf,
}

/// Where a node keeps pods' files.
#[derive(Debug, Clone)]
pub struct NodeDirs {
    /// The kubelet's root (`/var/lib/kubelet` on a real node).
    pub kubelet_root: PathBuf,
    /// The pods' log root (`/var/log/pods`).
    pub pod_logs: PathBuf,
    /// The node's memory capacity (for Burstable pods' OOM score).
    pub memory_capacity: i64,
}

/// Plans `pod` (whose `metadata.uid` is set) on a node with `dirs`.
pub fn plan(pod: &Pod, dirs: &NodeDirs) -> Result<PodPlan, Error> {
    let invalid = |what: &str| Error::InvalidPod(what.to_string());
    let meta = &pod.metadata;
    let name = meta
        .name
        .clone()
        .ok_or_else(|| invalid("metadata.name is missing"))?;
    let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
    let uid = meta
        .uid
        .clone()
        .ok_or_else(|| invalid("metadata.uid is missing"))?;
    let spec = pod
        .spec
        .as_ref()
        .ok_or_else(|| invalid("spec is missing"))?;
    let mut unsupported = Vec::new();

    if spec.automount_service_account_token != Some(false) {
        unsupported.push(
            "spec.automountServiceAccountToken (only false: the test node has no API server to \
             mount a token from)"
                .to_string(),
        );
    }
    let restart_policy = match spec.restart_policy.as_deref() {
        None | Some("Always") => RestartPolicy::Always,
        Some("OnFailure") => RestartPolicy::OnFailure,
        Some("Never") => RestartPolicy::Never,
        Some(other) => return Err(invalid(&format!("spec.restartPolicy {other:?}"))),
    };
    let pod_dir = dirs.kubelet_root.join("pods").join(&uid);
    let log_dir = dirs.pod_logs.join(format!("{namespace}_{name}_{uid}"));

    let mut volumes = Vec::new();
    for (i, volume) in spec.volumes.iter().flatten().enumerate() {
        let kind = if let Some(empty_dir) = &volume.empty_dir {
            if let Some(medium) = empty_dir.medium.as_deref().filter(|m| !m.is_empty()) {
                unsupported.push(format!("spec.volumes[{i}].emptyDir.medium={medium}"));
            }
            let size_limit = match &empty_dir.size_limit {
                Some(q) => Some(quantity::bytes(&q.0).ok_or_else(|| {
                    invalid(&format!("spec.volumes[{i}].emptyDir.sizeLimit {:?}", q.0))
                })?),
                None => None,
            };
            Volume {
                name: volume.name.clone(),
                host_path: pod_dir
                    .join("volumes/kubernetes.io~empty-dir")
                    .join(&volume.name),
                kind: VolumeKind::EmptyDir { size_limit },
            }
        } else if let Some(host_path) = &volume.host_path {
            let path_type = host_path.type_.clone().unwrap_or_default();
            if !matches!(path_type.as_str(), "" | "Directory" | "DirectoryOrCreate") {
                unsupported.push(format!("spec.volumes[{i}].hostPath.type={path_type}"));
            }
            Volume {
                name: volume.name.clone(),
                host_path: PathBuf::from(&host_path.path),
                kind: VolumeKind::HostPath { path_type },
            }
        } else {
            unsupported.push(format!(
                "spec.volumes[{i}] (a source other than emptyDir or hostPath)"
            ));
            continue;
        };
        volumes.push(kind);
    }

    let all_containers: Vec<&Container> = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .collect();
    let qos = qos_class(&all_containers);
    let cgroup_parent = qos.cgroup_parent(&uid);
    let pod_memory_limit = pod_memory_limit(&spec.init_containers, &spec.containers);
    let host_network = spec.host_network == Some(true);
    let namespaces = NamespaceOption {
        network: mode(host_network, NamespaceMode::Pod),
        pid: mode(spec.host_pid == Some(true), NamespaceMode::Container),
        ipc: mode(spec.host_ipc == Some(true), NamespaceMode::Pod),
        ..Default::default()
    };
    let pod_sc = spec.security_context.clone().unwrap_or_default();
    let privileged = all_containers.iter().any(|c| {
        c.security_context
            .as_ref()
            .and_then(|s| s.privileged)
            .unwrap_or(false)
    });
    let labels = HashMap::from([
        ("io.kubernetes.pod.name".to_string(), name.clone()),
        ("io.kubernetes.pod.namespace".to_string(), namespace.clone()),
        ("io.kubernetes.pod.uid".to_string(), uid.clone()),
    ]);
    let mut sandbox_labels: HashMap<String, String> = meta
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    sandbox_labels.extend(labels.clone());
    let sandbox = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.clone(),
            uid: uid.clone(),
            namespace: namespace.clone(),
            attempt: 0,
        }),
        hostname: if host_network {
            String::new()
        } else {
            name.clone()
        },
        log_directory: log_dir.display().to_string(),
        labels: sandbox_labels,
        annotations: meta
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.clone(),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(namespaces.clone()),
                run_as_user: pod_sc.run_as_user.map(|value| Int64Value { value }),
                run_as_group: pod_sc.run_as_group.map(|value| Int64Value { value }),
                privileged,
                seccomp: Some(seccomp(
                    pod_sc.seccomp_profile.as_ref(),
                    "spec",
                    &mut unsupported,
                )),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };

    let ctx = ContainerContext {
        pod_sc: &pod_sc,
        namespaces: &namespaces,
        volumes: &volumes,
        labels: &labels,
        qos,
        memory_capacity: dirs.memory_capacity,
    };
    let mut plan_containers = |list: &[Container], field: &str| -> Vec<ContainerPlan> {
        list.iter()
            .enumerate()
            .map(|(i, c)| container(c, &format!("spec.{field}[{i}]"), &ctx, &mut unsupported))
            .collect()
    };
    let init_containers = plan_containers(
        spec.init_containers.as_deref().unwrap_or_default(),
        "initContainers",
    );
    let containers = plan_containers(&spec.containers, "containers");
    if !unsupported.is_empty() {
        return Err(Error::Unsupported {
            fields: unsupported,
        });
    }
    Ok(PodPlan {
        uid,
        name,
        namespace,
        qos,
        cgroup_parent,
        pod_memory_limit,
        sandbox,
        init_containers,
        containers,
        restart_policy,
        active_deadline: spec
            .active_deadline_seconds
            .map(|s| Duration::from_secs(s.max(0) as u64)),
        grace_period: spec
            .termination_grace_period_seconds
            .unwrap_or(GRACE_PERIOD),
        volumes,
        pod_dir,
        log_dir,
    })
}

/// What every container of a pod shares.
struct ContainerContext<'a> {
    pod_sc: &'a PodSecurityContext,
    namespaces: &'a NamespaceOption,
    volumes: &'a [Volume],
    labels: &'a HashMap<String, String>,
    qos: QosClass,
    memory_capacity: i64,
}

fn container(
    c: &Container,
    field: &str,
    ctx: &ContainerContext<'_>,
    unsupported: &mut Vec<String>,
) -> ContainerPlan {
    let sc = c.security_context.clone().unwrap_or_default();
    let run_as_user = sc.run_as_user.or(ctx.pod_sc.run_as_user);
    let run_as_group = sc.run_as_group.or(ctx.pod_sc.run_as_group);
    let run_as_non_root = sc
        .run_as_non_root
        .or(ctx.pod_sc.run_as_non_root)
        .unwrap_or(false);
    let seccomp_profile = sc
        .seccomp_profile
        .as_ref()
        .or(ctx.pod_sc.seccomp_profile.as_ref());
    let mut mounts = Vec::new();
    for (i, mount) in c.volume_mounts.iter().flatten().enumerate() {
        match ctx.volumes.iter().find(|v| v.name == mount.name) {
            Some(volume) => mounts.push(Mount {
                container_path: mount.mount_path.clone(),
                host_path: volume.host_path.display().to_string(),
                readonly: mount.read_only.unwrap_or(false),
                ..Default::default()
            }),
            None => unsupported.push(format!(
                "{field}.volumeMounts[{i}].name={} (no such volume)",
                mount.name
            )),
        }
    }
    let envs = c
        .env
        .iter()
        .flatten()
        .map(|e| KeyValue {
            key: e.name.clone(),
            value: e.value.clone().unwrap_or_default(),
        })
        .collect();
    let secret_env = c
        .env_from
        .iter()
        .flatten()
        .filter_map(|from| {
            from.secret_ref.as_ref().map(|secret| SecretEnv {
                name: secret.name.clone(),
                prefix: from.prefix.clone().unwrap_or_default(),
                optional: secret.optional.unwrap_or(false),
            })
        })
        .collect();
    let resources = resources(c.resources.as_ref(), ctx.qos, ctx.memory_capacity);
    let memory_limit =
        (resources.memory_limit_in_bytes > 0).then_some(resources.memory_limit_in_bytes);
    let mut labels = ctx.labels.clone();
    labels.insert("io.kubernetes.container.name".into(), c.name.clone());
    let config = ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: c.name.clone(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: c.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command: c.command.clone().unwrap_or_default(),
        args: c.args.clone().unwrap_or_default(),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs,
        mounts,
        labels,
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        linux: Some(LinuxContainerConfig {
            resources: Some(resources),
            security_context: Some(LinuxContainerSecurityContext {
                capabilities: sc.capabilities.as_ref().map(|caps| Capability {
                    add_capabilities: caps.add.clone().unwrap_or_default(),
                    drop_capabilities: caps.drop.clone().unwrap_or_default(),
                    ..Default::default()
                }),
                privileged: sc.privileged.unwrap_or(false),
                namespace_options: Some(ctx.namespaces.clone()),
                run_as_user: run_as_user.map(|value| Int64Value { value }),
                run_as_group: run_as_group.map(|value| Int64Value { value }),
                readonly_rootfs: sc.read_only_root_filesystem.unwrap_or(false),
                supplemental_groups: ctx.pod_sc.supplemental_groups.clone().unwrap_or_default(),
                no_new_privs: no_new_privs(&sc),
                masked_paths: MASKED_PATHS.iter().map(|p| p.to_string()).collect(),
                readonly_paths: READONLY_PATHS.iter().map(|p| p.to_string()).collect(),
                seccomp: Some(seccomp(seccomp_profile, field, unsupported)),
                ..Default::default()
            }),
        }),
        ..Default::default()
    };
    ContainerPlan {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        pull_policy: c.image_pull_policy.clone().unwrap_or_else(|| {
            if c.image
                .as_deref()
                .is_some_and(|i| i.ends_with(":latest") || !i.contains(':'))
            {
                "Always".into()
            } else {
                "IfNotPresent".into()
            }
        }),
        config,
        termination_message_path: c
            .termination_message_path
            .clone()
            .unwrap_or_else(|| TERMINATION_MESSAGE_PATH.into()),
        fallback_to_logs: c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError"),
        secret_env,
        run_as_non_root,
        run_as_user,
        memory_limit,
    }
}

fn mode(host: bool, otherwise: NamespaceMode) -> i32 {
    if host { NamespaceMode::Node } else { otherwise }.into()
}

/// `allowPrivilegeEscalation: false` sets no_new_privs (unset leaves it off).
fn no_new_privs(sc: &SecurityContext) -> bool {
    sc.allow_privilege_escalation == Some(false)
}

/// The seccomp profile the kubelet asks for: `Unconfined` when none is set.
fn seccomp(
    profile: Option<&SeccompProfile>,
    field: &str,
    unsupported: &mut Vec<String>,
) -> SecurityProfile {
    let profile_type = match profile.map(|p| p.type_.as_str()) {
        Some("RuntimeDefault") => ProfileType::RuntimeDefault,
        None | Some("Unconfined") => ProfileType::Unconfined,
        Some(other) => {
            unsupported.push(format!(
                "{field}.securityContext.seccompProfile.type={other}"
            ));
            ProfileType::Unconfined
        }
    };
    SecurityProfile {
        profile_type: profile_type.into(),
        localhost_ref: String::new(),
    }
}

/// Requests and limits with the API server's defaulting (a limit without a request
/// requests the limit).
fn requests_and_limits(
    resources: Option<&ResourceRequirements>,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let get = |map: Option<
        &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >| {
        map.map(|m| m.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect())
            .unwrap_or_default()
    };
    let limits: BTreeMap<String, String> = get(resources.and_then(|r| r.limits.as_ref()));
    let mut requests: BTreeMap<String, String> = get(resources.and_then(|r| r.requests.as_ref()));
    for (key, value) in &limits {
        requests.entry(key.clone()).or_insert_with(|| value.clone());
    }
    (requests, limits)
}

/// The container's cgroup resources as the kubelet computes them for cgroup v1.
fn resources(
    resources: Option<&ResourceRequirements>,
    qos: QosClass,
    memory_capacity: i64,
) -> LinuxContainerResources {
    let (requests, limits) = requests_and_limits(resources);
    let cpu_request = requests.get("cpu").and_then(|q| quantity::millicores(q));
    let cpu_limit = limits.get("cpu").and_then(|q| quantity::millicores(q));
    let memory_request = requests.get("memory").and_then(|q| quantity::bytes(q));
    let memory_limit = limits
        .get("memory")
        .and_then(|q| quantity::bytes(q))
        .unwrap_or(0);
    let oom_score_adj = match qos {
        QosClass::Guaranteed => -997,
        QosClass::BestEffort => 1000,
        QosClass::Burstable => {
            let adj = 1000 - (1000 * memory_request.unwrap_or(0)) / memory_capacity.max(1);
            adj.clamp(2, 999)
        }
    };
    LinuxContainerResources {
        cpu_shares: cpu_request.map_or(2, |m| (m * 1024 / 1000).max(2)),
        cpu_quota: cpu_limit.map_or(0, |m| (m * 100).max(1000)),
        cpu_period: if cpu_limit.is_some() { 100_000 } else { 0 },
        memory_limit_in_bytes: memory_limit,
        memory_swap_limit_in_bytes: memory_limit,
        oom_score_adj,
        ..Default::default()
    }
}

/// The pod's QoS class (`GetPodQOS`), over init and regular containers.
fn qos_class(containers: &[&Container]) -> QosClass {
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        let (requests, limits) = requests_and_limits(c.resources.as_ref());
        if !requests.is_empty() || !limits.is_empty() {
            any = true;
        }
        for resource in ["cpu", "memory"] {
            if !limits.contains_key(resource) || requests.get(resource) != limits.get(resource) {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => QosClass::BestEffort,
        (true, true) => QosClass::Guaranteed,
        (true, false) => QosClass::Burstable,
    }
}

/// The pod cgroup's memory limit: the larger of the containers' sum and the largest init
/// container, when every container has a limit.
fn pod_memory_limit(init: &Option<Vec<Container>>, containers: &[Container]) -> Option<i64> {
    let limit = |c: &Container| {
        c.resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get("memory"))
            .and_then(|q| quantity::bytes(&q.0))
    };
    let sum = containers.iter().map(limit).sum::<Option<i64>>()?;
    let init_max = init
        .iter()
        .flatten()
        .map(limit)
        .collect::<Option<Vec<i64>>>()?
        .into_iter()
        .max()
        .unwrap_or(0);
    Some(sum.max(init_max))
}

/// The host path of a container instance's termination-message file: a new, empty,
/// world-writable file per container start, as the kubelet makes it.
pub fn termination_message_file(pod_dir: &Path, container: &str, instance: &str) -> PathBuf {
    pod_dir.join("containers").join(container).join(instance)
}
