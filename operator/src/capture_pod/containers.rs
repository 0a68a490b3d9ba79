//! The capture pod's two containers: `locate` (nobody, no capabilities) and `capture`
//! (root with only the capabilities its captures need), their resources and mounts.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Capabilities, Container, ResourceRequirements, SecurityContext, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::output::Upload;
use super::{
    CAPTURE_CONTAINER, HOST_CGROUP, HOST_CGROUP_VOLUME, LOCATE_CONTAINER, WORK_MOUNT, WORK_VOLUME,
    args, with_core,
};
use crate::api::CaptureKind;
use crate::config::OperatorConfig;
use crate::plan::{CapturePlan, CaptureTarget};

/// The user `locate` runs as: nobody.
const NOBODY: i64 = 65534;

/// The capabilities the capture container needs for the plan's captures.
pub fn capabilities(plan: &CapturePlan, config: &OperatorConfig) -> Vec<&'static str> {
    let mut caps = BTreeSet::new();
    for capture in &plan.captures {
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
            // pprof: entering the pod's network namespace (setns) needs SYS_ADMIN.
            CaptureKind::Goroutines if plan.go_pprof.is_some() => {
                caps.extend(["SYS_PTRACE", "SYS_ADMIN"])
            }
            // Memory: process_vm_readv, and the target's auxv (0400, its user's).
            CaptureKind::Goroutines => caps.extend(["SYS_PTRACE", "DAC_READ_SEARCH"]),
        }
    }
    caps.into_iter().collect()
}

/// The init container: finds the target's host pids and writes `target.json`.
pub fn locate(target: &CaptureTarget, config: &OperatorConfig) -> Container {
    Container {
        name: LOCATE_CONTAINER.into(),
        args: Some(args::argv("locate", args::locate(target).to_argv())),
        resources: Some(resources(
            [("cpu", "10m"), ("memory", "16Mi")],
            Quantity("64Mi".into()),
        )),
        security_context: Some(SecurityContext {
            run_as_user: Some(NOBODY),
            run_as_group: Some(NOBODY),
            run_as_non_root: Some(true),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![work_mount()]),
        ..agent(config)
    }
}

/// The capture container: captures, uploads (with `upload`), and leaves its summary in
/// the termination message.
pub fn capture(
    plan: &CapturePlan,
    config: &OperatorConfig,
    upload: Option<&Upload>,
    session: &str,
) -> Container {
    let flags = args::capture(plan, upload.map(|u| u.url.as_str()), session).to_argv();
    let mut mounts = vec![
        work_mount(),
        VolumeMount {
            name: HOST_CGROUP_VOLUME.into(),
            mount_path: HOST_CGROUP.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
    ];
    mounts.extend(upload.and_then(|u| u.mount.clone()));
    Container {
        name: CAPTURE_CONTAINER.into(),
        args: Some(args::argv("capture", flags)),
        resources: Some(resources(
            [("cpu", "50m"), ("memory", "64Mi")],
            with_core(plan),
        )),
        security_context: Some(SecurityContext {
            run_as_user: Some(0),
            run_as_non_root: Some(false),
            privileged: Some(false),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: Some(
                    capabilities(plan, config)
                        .into_iter()
                        .map(String::from)
                        .collect(),
                ),
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(mounts),
        env: upload.and_then(|u| u.env.clone()),
        env_from: upload.and_then(|u| u.env_from.clone()),
        ..agent(config)
    }
}

/// What both containers share: the agent image, and a termination message that falls
/// back to the log's tail when the program wrote none.
fn agent(config: &OperatorConfig) -> Container {
    Container {
        image: Some(config.agent_image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Container::default()
    }
}

fn work_mount() -> VolumeMount {
    VolumeMount {
        name: WORK_VOLUME.into(),
        mount_path: WORK_MOUNT.into(),
        ..VolumeMount::default()
    }
}

/// Requests of CPU and memory, and a memory limit (no CPU limit: a capture throttled by
/// CFS would hold the target's threads stopped longer).
fn resources(requests: [(&str, &str); 2], memory_limit: Quantity) -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(
            requests
                .into_iter()
                .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                .collect(),
        ),
        limits: Some(BTreeMap::from([("memory".to_string(), memory_limit)])),
        ..ResourceRequirements::default()
    }
}
