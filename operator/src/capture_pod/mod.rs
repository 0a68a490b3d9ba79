//! The build stage: the capture pod of one target, built purely from the session, its
//! plan, the target and the operator's configuration (no API calls), from typed
//! k8s-openapi structs, so that the controller, `procshot-operator render` and the tests
//! all see the same manifest, and a misspelt field does not compile.
//!
//! * [`args`]: the `locate` and `capture` command lines, as the sidecar's own argument
//!   types ([`procshot_api::CaptureArgs`], [`procshot_api::LocateArgs`]);
//! * [`containers`]: the two containers, their privileges and resources;
//! * [`output`]: what an upload adds (the Secret as environment, or the claim as a volume).
//!
//! Least privilege: the `locate` init container only reads world-readable
//! `/proc/*/cgroup` and runs as nobody with every capability dropped; the `capture`
//! container runs as root with only the capabilities its captures need (`SYS_PTRACE` to
//! read another user's fd table, threads and smaps and to stop threads for their stacks
//! and core dumps and to read goroutines from a Go program's memory, `DAC_READ_SEARCH` for
//! fd targets, the target's binaries and its 0400 `/proc` files, `SYS_ADMIN` only when the
//! admin allows kernel stacks or a session reads goroutines from a pprof endpoint, which
//! needs to enter the pod's network namespace), a read-only root filesystem and the runtime's
//! default seccomp profile (which allows ptrace, process_vm_readv and setns to a container
//! holding those capabilities).

pub mod args;
pub mod containers;
pub mod output;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EmptyDirVolumeSource, HostPathVolumeSource, Pod, PodSecurityContext, PodSpec, SeccompProfile,
    Toleration, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::Selector;
use sha2::{Digest, Sha256};

use crate::api::DebugSession;
use crate::config::OperatorConfig;
use crate::plan::{CapturePlan, CaptureTarget};

pub use containers::capabilities;

/// Label naming the session a capture pod belongs to.
pub const SESSION_NAME_LABEL: &str = "procshot.dev/session-name";
/// Label naming the session's namespace.
pub const SESSION_NAMESPACE_LABEL: &str = "procshot.dev/session-namespace";
/// Annotation naming the target pod (names can exceed a label's 63 characters).
pub const TARGET_POD_ANNOTATION: &str = "procshot.dev/target-pod";
/// The capture container's name (its termination message is the summary).
pub const CAPTURE_CONTAINER: &str = "capture";
/// The init container's name.
pub const LOCATE_CONTAINER: &str = "locate";

/// The labels every capture pod carries, whatever its session.
const COMPONENT_LABELS: [(&str, &str); 2] = [
    ("app.kubernetes.io/component", "capture"),
    ("app.kubernetes.io/managed-by", "procshot-operator"),
];
/// The shared scratch volume: `locate` writes `target.json`, `capture` its directory.
const WORK_VOLUME: &str = "work";
const WORK_MOUNT: &str = "/work";
/// The node's cgroup filesystem, for the cgroup memory files.
const HOST_CGROUP_VOLUME: &str = "host-cgroup";
const NODE_CGROUP: &str = "/sys/fs/cgroup";
/// Where the node's cgroup filesystem is mounted in the capture container.
const HOST_CGROUP: &str = "/host/sys/fs/cgroup";
/// Room for the capture files in the scratch volume, and the capture container's memory,
/// before a core dump's share.
const BASE_BYTES: u64 = 256 << 20;
const BASE_QUANTITY: &str = "256Mi";

/// Every capture pod of the operator (what it watches, and counts per node).
pub fn capture_pods() -> Selector {
    COMPONENT_LABELS.into_iter().collect()
}

/// The capture pods of one session (what its finalizer deletes).
pub fn capture_pods_of(session_namespace: &str, session_name: &str) -> Selector {
    session_labels(session_namespace, session_name)
        .into_iter()
        .collect()
}

/// The labels linking a capture pod to its session (owner references cannot cross
/// namespaces).
fn session_labels(session_namespace: &str, session_name: &str) -> [(String, String); 2] {
    [
        (SESSION_NAME_LABEL.to_string(), session_name.to_string()),
        (
            SESSION_NAMESPACE_LABEL.to_string(),
            session_namespace.to_string(),
        ),
    ]
}

/// The deterministic name of the capture pod of `target` for `session`: the same on every
/// reconcile and after an operator restart, so a second pod is never created.
pub fn capture_pod_name(session_namespace: &str, session_name: &str, target_pod: &str) -> String {
    let digest = Sha256::digest(format!("{session_namespace}/{session_name}/{target_pod}"));
    let short: String = session_name.chars().take(40).collect();
    format!(
        "procshot-{}-{}",
        short.trim_end_matches('-'),
        &hex::encode(digest)[..10]
    )
}

/// The session a capture pod belongs to, as its labels, annotations and upload path name it.
struct Owner<'a> {
    name: &'a str,
    namespace: &'a str,
    uid: &'a str,
}

impl<'a> Owner<'a> {
    fn of(session: &'a DebugSession) -> Self {
        Self {
            name: session.metadata.name.as_deref().unwrap_or_default(),
            namespace: session.metadata.namespace.as_deref().unwrap_or_default(),
            uid: session.metadata.uid.as_deref().unwrap_or_default(),
        }
    }

    /// `NAMESPACE/NAME`, what uploads are filed under.
    fn path(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Builds the capture pod for one target.
pub fn build(
    session: &DebugSession,
    plan: &CapturePlan,
    target: &CaptureTarget,
    config: &OperatorConfig,
) -> Pod {
    let owner = Owner::of(session);
    Pod {
        metadata: metadata(&owner, target, config),
        spec: Some(spec(&owner, plan, target, config)),
        status: None,
    }
}

fn metadata(owner: &Owner, target: &CaptureTarget, config: &OperatorConfig) -> ObjectMeta {
    let mut labels: BTreeMap<String, String> = COMPONENT_LABELS
        .into_iter()
        .chain([("app.kubernetes.io/name", "procshot")])
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.extend(session_labels(owner.namespace, owner.name));
    let annotations = BTreeMap::from([
        (TARGET_POD_ANNOTATION.to_string(), target.pod.clone()),
        (
            "procshot.dev/target-container".to_string(),
            target.container.clone(),
        ),
        (
            "procshot.dev/session-uid".to_string(),
            owner.uid.to_string(),
        ),
    ]);
    ObjectMeta {
        name: Some(capture_pod_name(owner.namespace, owner.name, &target.pod)),
        namespace: Some(config.namespace.clone()),
        labels: Some(labels),
        annotations: Some(annotations),
        ..ObjectMeta::default()
    }
}

fn spec(
    owner: &Owner,
    plan: &CapturePlan,
    target: &CaptureTarget,
    config: &OperatorConfig,
) -> PodSpec {
    let upload = plan.output.as_ref().map(output::Upload::to);
    let mut volumes = vec![work_volume(plan), host_cgroup_volume()];
    volumes.extend(upload.as_ref().and_then(|u| u.volume.clone()));
    PodSpec {
        node_name: Some(target.node.clone()),
        host_pid: Some(true),
        restart_policy: Some("Never".into()),
        active_deadline_seconds: Some(plan.timeout.as_secs().max(1) as i64),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        termination_grace_period_seconds: Some(5),
        tolerations: Some(vec![Toleration {
            operator: Some("Exists".into()),
            ..Toleration::default()
        }]),
        security_context: Some(PodSecurityContext {
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            ..PodSecurityContext::default()
        }),
        volumes: Some(volumes),
        init_containers: Some(vec![containers::locate(target, config)]),
        containers: vec![containers::capture(
            plan,
            config,
            upload.as_ref(),
            &owner.path(),
        )],
        ..PodSpec::default()
    }
}

/// The scratch volume: room for the capture files, plus a core dump of the largest
/// allowed size (its compressed size never exceeds it by more than the ELF headers).
fn work_volume(plan: &CapturePlan) -> Volume {
    Volume {
        name: WORK_VOLUME.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: Some(with_core(plan)),
            medium: None,
        }),
        ..Volume::default()
    }
}

fn host_cgroup_volume() -> Volume {
    Volume {
        name: HOST_CGROUP_VOLUME.into(),
        host_path: Some(HostPathVolumeSource {
            path: NODE_CGROUP.into(),
            type_: Some("Directory".into()),
        }),
        ..Volume::default()
    }
}

/// 256 MiB, plus the core dump's limit when the plan takes one (in bytes then).
fn with_core(plan: &CapturePlan) -> Quantity {
    Quantity(match &plan.core {
        Some(core) => (BASE_BYTES + core.max_bytes).to_string(),
        None => BASE_QUANTITY.to_string(),
    })
}
