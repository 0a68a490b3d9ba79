//! Removing whatever a test node left running or mounted, without containerd (which may
//! be gone or hung): runc's containers in the node's runc root (killed and deleted, which
//! also removes their cgroups), the runc shims serving the node's containerd, and every
//! mount under the node's directory (container root filesystems, sandboxes' `/dev/shm`,
//! network namespaces). Runs when a node is dropped, on every path: a test that passed,
//! failed or panicked.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::containerd::Layout;

/// What the sweep found still there (and removed).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Leftovers {
    /// runc containers that were still there.
    pub containers: Vec<String>,
    /// Shims (pids) that were still running.
    pub shims: Vec<i32>,
    /// Mount points that were still mounted.
    pub mounts: Vec<String>,
}

impl Leftovers {
    /// Whether nothing was left.
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.shims.is_empty() && self.mounts.is_empty()
    }
}

/// Kills and removes what the node of `layout` left; returns what that was.
pub fn sweep(layout: &Layout) -> Leftovers {
    let mut leftovers = Leftovers::default();
    let runc_root = layout.runc_root().join("k8s.io");
    if runc_root.is_dir() {
        leftovers.containers = runc_containers(&runc_root);
        for id in &leftovers.containers {
            let _ = Command::new("runc")
                .arg("--root")
                .arg(&runc_root)
                .args(["delete", "--force", id])
                .output();
        }
    }
    leftovers.shims = shims_of(&layout.socket());
    for &pid in &leftovers.shims {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !shims_of(&layout.socket()).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    leftovers.mounts = mounts_under(&layout.dir);
    for mount in &leftovers.mounts {
        if let Ok(path) = std::ffi::CString::new(mount.as_str()) {
            unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
        }
    }
    leftovers
}

/// The container IDs in a runc root.
fn runc_containers(root: &Path) -> Vec<String> {
    std::fs::read_dir(root)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().join("state.json").exists())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Pids of the processes whose command line has `-address SOCKET` (the shims a
/// containerd on SOCKET started).
fn shims_of(socket: &Path) -> Vec<i32> {
    let socket = socket.as_os_str().as_encoded_bytes();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            args.windows(2)
                .any(|w| w[0] == b"-address" && w[1] == socket)
        })
        .collect()
}

/// Mount points at or under `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.display().to_string();
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<String> = text
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|m| m == &dir || m.starts_with(&format!("{dir}/")))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    mounts.dedup();
    mounts
}

/// A mountinfo path with its octal escapes (`\040` for a space) decoded.
fn unescape_mount_path(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Some(code) = std::str::from_utf8(&bytes[i + 1..i + 4])
                .ok()
                .and_then(|digits| u8::from_str_radix(digits, 8).ok())
        {
            out.push(code);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mount_path(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape_mount_path("/plain"), "/plain");
    }
}
