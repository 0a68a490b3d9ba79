//! The capture pod: built purely from a session, its plan, one target and the operator's
//! configuration (no API calls), so that the controller, `procshot-operator render` and the
//! tests all see the same manifest.
//!
//! Least privilege: the `locate` init container only reads world-readable
//! `/proc/*/cgroup` and runs as nobody with every capability dropped; the `capture`
//! container runs as root with only the capabilities its captures need (`SYS_PTRACE` to
//! read another user's fd table, threads and smaps and to stop threads for their stacks
//! and core dumps, `DAC_READ_SEARCH` for fd targets and the target's binaries, `SYS_ADMIN`
//! only when the admin allows kernel stacks or a session captures goroutines, which needs
//! to enter the pod's network namespace), a read-only root filesystem and the runtime's
//! default seccomp profile (which allows ptrace, process_vm_readv and setns to a container
//! holding those capabilities).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::api::{CaptureKind, DebugSession};
use crate::config::OperatorConfig;
use crate::plan::{CapturePlan, CaptureTarget, Destination};

/// Label naming the session a capture pod belongs to.
pub const SESSION_NAME_LABEL: &str = "procshot.dev/session-name";
/// Label naming the session's namespace.
pub const SESSION_NAMESPACE_LABEL: &str = "procshot.dev/session-namespace";
/// Labels every capture pod carries (used to watch them).
pub const COMPONENT_SELECTOR: &str =
    "app.kubernetes.io/component=capture,app.kubernetes.io/managed-by=procshot-operator";
/// Annotation naming the target pod (names can exceed a label's 63 characters).
pub const TARGET_POD_ANNOTATION: &str = "procshot.dev/target-pod";
/// The capture container's name (its termination message is the summary).
pub const CAPTURE_CONTAINER: &str = "capture";
/// The init container's name.
pub const LOCATE_CONTAINER: &str = "locate";
/// How long `locate` waits for the target's processes to appear.
const LOCATE_TIMEOUT: &str = "60s";
/// Where the node's cgroup filesystem is mounted in the capture container.
const HOST_CGROUP: &str = "/host/sys/fs/cgroup";

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

/// The capabilities the capture container needs for `captures`.
pub fn capabilities(captures: &[CaptureKind], config: &OperatorConfig) -> Vec<&'static str> {
    let mut caps = BTreeSet::new();
    for capture in captures {
        match capture {
            CaptureKind::Fds => caps.extend(["SYS_PTRACE", "DAC_READ_SEARCH"]),
            CaptureKind::Threads => {
                // A task's syscall and stack files are 0400, owned by the target's user.
                caps.extend(["SYS_PTRACE", "DAC_READ_SEARCH"]);
                if config.kernel_stacks {
                    caps.insert("SYS_ADMIN");
                }
            }
            CaptureKind::Memory | CaptureKind::Stacks | CaptureKind::Core => {
                caps.extend(["SYS_PTRACE", "DAC_READ_SEARCH"])
            }
            CaptureKind::Goroutines => caps.extend(["SYS_PTRACE", "SYS_ADMIN"]),
        }
    }
    caps.into_iter().collect()
}

/// Builds the capture pod for one target.
pub fn build(
    session: &DebugSession,
    plan: &CapturePlan,
    target: &CaptureTarget,
    config: &OperatorConfig,
) -> Pod {
    let session_name = session.metadata.name.clone().unwrap_or_default();
    let session_namespace = session.metadata.namespace.clone().unwrap_or_default();
    let captures: Vec<&str> = plan.captures.iter().map(|c| c.name()).collect();
    let seconds = |d: std::time::Duration| format!("{}ms", d.as_millis());
    let mut capture_args = vec![
        "capture".to_string(),
        "--target-file=/work/target.json".into(),
        "--out=/work/capture".into(),
        format!("--samples={}", plan.samples),
        format!("--interval={}", seconds(plan.interval)),
        format!("--capture={}", captures.join(",")),
        format!("--timeout={}", seconds(plan.capture_timeout())),
        format!("--cgroup-root={HOST_CGROUP}"),
        "--termination-summary=/dev/termination-log".into(),
    ];
    if let Some(address) = &plan.go_pprof {
        capture_args.push(format!("--go-pprof={address}"));
    }
    if let Some(core) = &plan.core {
        capture_args.push(format!("--core-max-bytes={}", core.max_bytes));
        if let Some(pause) = core.max_pause {
            capture_args.push(format!("--core-max-pause={}", seconds(pause)));
        }
    }
    let locate_args = vec![
        "locate".to_string(),
        format!("--pod-uid={}", target.pod_uid),
        format!("--container-id={}", target.container_id),
        "--out=/work/target.json".into(),
        format!("--timeout={LOCATE_TIMEOUT}"),
    ];
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": capture_pod_name(&session_namespace, &session_name, &target.pod),
            "namespace": config.namespace,
            "labels": {
                "app.kubernetes.io/name": "procshot",
                "app.kubernetes.io/component": "capture",
                "app.kubernetes.io/managed-by": "procshot-operator",
                SESSION_NAME_LABEL: session_name,
                SESSION_NAMESPACE_LABEL: session_namespace,
            },
            "annotations": {
                TARGET_POD_ANNOTATION: target.pod,
                "procshot.dev/target-container": target.container,
                "procshot.dev/session-uid": session.metadata.uid.clone().unwrap_or_default(),
            },
        },
        "spec": {
            "nodeName": target.node,
            "hostPID": true,
            "restartPolicy": "Never",
            "activeDeadlineSeconds": plan.timeout.as_secs().max(1),
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            "terminationGracePeriodSeconds": 5,
            "tolerations": [{"operator": "Exists"}],
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [
                {"name": "work", "emptyDir": {"sizeLimit": scratch_size(plan)}},
                {"name": "host-cgroup", "hostPath": {"path": "/sys/fs/cgroup", "type": "Directory"}},
            ],
            "initContainers": [{
                "name": LOCATE_CONTAINER,
                "image": config.agent_image,
                "imagePullPolicy": "IfNotPresent",
                "args": locate_args,
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
                "securityContext": {
                    "runAsUser": 65534,
                    "runAsGroup": 65534,
                    "runAsNonRoot": true,
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [{"name": "work", "mountPath": "/work"}],
            }],
            "containers": [{
                "name": CAPTURE_CONTAINER,
                "image": config.agent_image,
                "imagePullPolicy": "IfNotPresent",
                "args": capture_args,
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": capture_memory_limit(plan)}},
                "securityContext": {
                    "runAsUser": 0,
                    "runAsNonRoot": false,
                    "privileged": false,
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"], "add": capabilities(&plan.captures, config)},
                },
                "volumeMounts": [
                    {"name": "work", "mountPath": "/work"},
                    {"name": "host-cgroup", "mountPath": HOST_CGROUP, "readOnly": true},
                ],
            }],
        },
    });
    let mut pod = pod;
    if let Some(output) = &plan.output {
        add_output(
            &mut pod,
            output,
            plan,
            &format!("{session_namespace}/{session_name}"),
        );
    }
    serde_json::from_value(pod).expect("the capture pod template is a valid Pod")
}

/// The size of the capture pod's scratch volume: 256 MiB for the capture files, plus room
/// for a core dump of the largest allowed size (its compressed size never exceeds it by
/// more than the ELF headers).
fn scratch_size(plan: &CapturePlan) -> String {
    const FILES: u64 = 256 << 20;
    match &plan.core {
        Some(core) => (FILES + core.max_bytes).to_string(),
        None => "256Mi".to_string(),
    }
}

/// The capture container's memory limit: 256 MiB, plus, for a core dump, room to copy the
/// process's memory while it is paused (procshot copies only what its cgroup and the node
/// can spare, and compresses the rest while the process is still paused, which makes the
/// pause longer, so the limit is what keeps the pause short).
fn capture_memory_limit(plan: &CapturePlan) -> String {
    const BASE: u64 = 256 << 20;
    match &plan.core {
        Some(core) => (BASE + core.max_bytes).to_string(),
        None => "256Mi".to_string(),
    }
}

/// Where the capture container mounts a PVC output.
const OUTPUT_MOUNT: &str = "/output";

/// Makes the capture container upload its files: the `--upload` flags, and the Secret
/// (as environment variables) or the PVC (as a volume) the output needs.
fn add_output(
    pod: &mut serde_json::Value,
    output: &Destination,
    plan: &CapturePlan,
    session: &str,
) {
    let millis = plan.upload_timeout().as_millis();
    let (url, env, env_from) = match output {
        Destination::S3 {
            url,
            endpoint,
            region,
            secret,
        } => {
            let mut env = Vec::new();
            if let Some(endpoint) = endpoint {
                env.push(json!({"name": "AWS_ENDPOINT_URL", "value": endpoint}));
                if endpoint.starts_with("http://") {
                    env.push(json!({"name": "AWS_ALLOW_HTTP", "value": "true"}));
                }
            }
            if let Some(region) = region {
                env.push(json!({"name": "AWS_REGION", "value": region}));
            }
            (
                url.clone(),
                env,
                vec![json!({"secretRef": {"name": secret}})],
            )
        }
        Destination::Pvc { claim, path } => {
            pod["spec"]["volumes"]
                .as_array_mut()
                .expect("volumes")
                .push(json!({"name": "output", "persistentVolumeClaim": {"claimName": claim}}));
            pod["spec"]["containers"][0]["volumeMounts"]
                .as_array_mut()
                .expect("volume mounts")
                .push(json!({"name": "output", "mountPath": OUTPUT_MOUNT}));
            let url = match path {
                Some(path) => format!("file://{OUTPUT_MOUNT}/{path}"),
                None => format!("file://{OUTPUT_MOUNT}"),
            };
            (url, Vec::new(), Vec::new())
        }
    };
    let container = &mut pod["spec"]["containers"][0];
    let args = container["args"].as_array_mut().expect("args");
    args.extend([
        json!(format!("--upload={url}")),
        json!(format!("--session={session}")),
        json!(format!("--upload-timeout={millis}ms")),
        json!("--hold-on-upload-failure"),
    ]);
    if !env.is_empty() {
        container["env"] = json!(env);
    }
    if !env_from.is_empty() {
        container["envFrom"] = json!(env_from);
    }
}
