//! The command lines of the capture pod's containers, filled in as the sidecar's own
//! argument types and rendered by them ([`CaptureArgs::to_argv`], [`LocateArgs::to_argv`]),
//! so that a flag renamed in `procshot-api` changes both binaries at once.

use std::path::PathBuf;
use std::time::Duration;

use procshot_api::{CaptureArgs, LocateArgs};

use super::{HOST_CGROUP, WORK_MOUNT};
use crate::plan::{CapturePlan, CaptureTarget};

/// How long `locate` waits for the target's processes to appear.
const LOCATE_TIMEOUT: Duration = Duration::from_secs(60);
/// Where the kubelet takes the termination message from.
const TERMINATION_LOG: &str = "/dev/termination-log";

/// The file `locate` writes and `capture` reads, in the shared volume.
fn target_file() -> PathBuf {
    PathBuf::from(WORK_MOUNT).join("target.json")
}

/// `procshot locate` for `target`: its pod UID and container ID, written to the shared
/// volume.
pub fn locate(target: &CaptureTarget) -> LocateArgs {
    let mut args = LocateArgs::from_argv([
        format!("--pod-uid={}", target.pod_uid),
        format!("--container-id={}", target.container_id),
        format!("--out={}", target_file().display()),
    ])
    .expect("the locate defaults parse");
    args.timeout = LOCATE_TIMEOUT;
    args
}

/// `procshot capture` for `plan`, uploading to `upload` (a URL) filed under `session`
/// (`NAMESPACE/NAME`) when the plan has an output.
pub fn capture(plan: &CapturePlan, upload: Option<&str>, session: &str) -> CaptureArgs {
    let mut args = CaptureArgs::for_target_file(target_file());
    args.out = Some(PathBuf::from(WORK_MOUNT).join("capture"));
    args.termination_summary = Some(TERMINATION_LOG.into());
    args.samples = plan.samples;
    args.interval = plan.interval;
    args.captures = plan.captures.clone();
    args.timeout = Some(plan.capture_timeout());
    args.cgroup_root = Some(HOST_CGROUP.into());
    args.go_pprof = plan.go_pprof.clone();
    if let Some(core) = &plan.core {
        args.core_max_bytes = Some(core.max_bytes);
        if let Some(pause) = core.max_pause {
            args.core_max_pause = pause;
        }
    }
    if let Some(url) = upload {
        args.upload = Some(url.to_string());
        args.session = Some(session.to_string());
        args.upload_timeout = Some(plan.upload_timeout());
        args.hold_on_upload_failure = true;
    }
    args
}

/// A container's `args`: the subcommand, then its flags.
pub fn argv(subcommand: &str, flags: Vec<String>) -> Vec<String> {
    std::iter::once(subcommand.to_string())
        .chain(flags)
        .collect()
}
