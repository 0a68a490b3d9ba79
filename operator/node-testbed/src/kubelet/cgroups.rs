//! Pod cgroups, as the kubelet's cgroupfs driver makes them on cgroup v1: the pod's
//! cgroup (`/kubepods/<qos>/pod<uid>`) in the memory hierarchy with the pod's memory
//! limit, before its sandbox starts (runc creates the container cgroups below it in every
//! hierarchy). When the pod is deleted, its cgroup is removed from every hierarchy.
//! The QoS parents (`/kubepods`, `/kubepods/burstable`) are shared by every pod and by
//! every test node on the machine, so they are created when missing and never removed,
//! and no limit is set on them.

use std::path::{Path, PathBuf};

use crate::error::Error;

/// Where the cgroup hierarchies are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Creates the pod cgroup `parent` in the memory hierarchy, with `memory_limit` (bytes).
pub fn create_pod_cgroup(parent: &str, memory_limit: Option<i64>) -> Result<(), Error> {
    let memory = Path::new(CGROUP_ROOT).join("memory");
    if !memory.join("cgroup.procs").exists() {
        return Err(Error::InvalidPod(format!(
            "no cgroup v1 memory hierarchy at {}: the test node needs cgroup v1 (the cgroupfs \
             driver on a v1 or hybrid host)",
            memory.display()
        )));
    }
    let dir = memory.join(parent.trim_start_matches('/'));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating the pod cgroup", &dir, e))?;
    if let Some(limit) = memory_limit {
        let file = dir.join("memory.limit_in_bytes");
        std::fs::write(&file, limit.to_string()).map_err(|e| Error::io("writing", &file, e))?;
    }
    Ok(())
}

/// Removes the pod cgroup `parent` and everything below it from every hierarchy (the
/// cgroups must be empty of processes by then).
pub fn remove_pod_cgroup(parent: &str) -> Result<(), Error> {
    let mut failed = None;
    for hierarchy in hierarchies() {
        let dir = hierarchy.join(parent.trim_start_matches('/'));
        if dir.exists()
            && let Err(e) = remove_tree(&dir)
        {
            failed = Some(Error::io("removing the pod cgroup", &dir, e));
        }
    }
    failed.map_or(Ok(()), Err)
}

/// Every mounted cgroup hierarchy under [`CGROUP_ROOT`] (v1 controllers, the named
/// `systemd` one, the unified v2 one of a hybrid host).
fn hierarchies() -> Vec<PathBuf> {
    std::fs::read_dir(CGROUP_ROOT)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.join("cgroup.procs").exists())
                .collect()
        })
        .unwrap_or_default()
}

/// rmdir of a cgroup directory and its children, deepest first.
fn remove_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)?.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path())?;
        }
    }
    std::fs::remove_dir(dir)
}
