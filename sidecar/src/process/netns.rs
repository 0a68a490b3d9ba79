//! Running code inside the target's network namespace: a dedicated thread joins the
//! namespace of `/proc/PID/ns/net` with `setns` (sockets belong to the namespace of the
//! thread that creates them), runs the code, and ends, taking the namespace change with
//! it. Nothing else of procshot ever leaves its own namespace.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

/// Why the target's network namespace could not be entered.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot enter the network namespace of pid {pid} ({path}): {source}: entering another \
     process's network namespace needs root (CAP_SYS_ADMIN)"
)]
pub struct NetnsError {
    /// The target.
    pub pid: i32,
    /// Its `ns/net`.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: std::io::Error,
}

/// Runs `work` on a new thread inside the network namespace `ns_net` (`/proc/PID/ns/net`
/// of the target `pid`), without `setns` when it is already procshot's own, and returns
/// its result.
pub fn run_in<T: Send>(
    ns_net: &Path,
    pid: i32,
    work: impl FnOnce() -> T + Send,
) -> Result<T, NetnsError> {
    let error = |source| NetnsError {
        pid,
        path: ns_net.to_path_buf(),
        source,
    };
    let target = File::open(ns_net).map_err(error)?;
    let theirs = target.metadata().map_err(error)?;
    let ours = std::fs::metadata("/proc/thread-self/ns/net").map_err(error)?;
    let same = (theirs.dev(), theirs.ino()) == (ours.dev(), ours.ino());
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("procshot-netns".into())
            .spawn_scoped(scope, move || {
                if !same {
                    move_into_link_name_space(target.as_fd(), Some(LinkNameSpaceType::Network))
                        .map_err(|e| error(e.into()))?;
                }
                Ok(work())
            })
            .map_err(error)?
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_namespace_needs_no_setns() {
        let pid = std::process::id() as i32;
        let ns = PathBuf::from(format!("/proc/{pid}/ns/net"));
        let inside = run_in(&ns, pid, || {
            std::fs::read_link("/proc/thread-self/ns/net").unwrap()
        })
        .unwrap();
        assert_eq!(inside, std::fs::read_link("/proc/self/ns/net").unwrap());
    }

    #[test]
    fn a_missing_process_says_which() {
        let ns = PathBuf::from(format!("/proc/{}/ns/net", i32::MAX));
        let err = run_in(&ns, i32::MAX, || ()).unwrap_err();
        assert!(
            err.to_string().contains(&format!("pid {}", i32::MAX)),
            "{err}"
        );
    }
}
