//! `procshot locate`: finds the host pids of a Kubernetes container from its pod UID and
//! container ID, by scanning `/proc/*/cgroup`, for the init container of a capture pod
//! that shares the node's pid namespace.
//!
//! The scan is retried until the container shows up or the timeout passes (the container
//! may still be starting). The result, [`LocatedTarget`], is written as `target.json`.

pub mod ids;
pub mod naming;
pub mod scan;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{LocateError, NotLocated, OutputError};
use ids::{ContainerId, PodUid, Runtime};
use naming::Matcher;
use scan::Scan;

/// Time between two scans while the container is not found.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// What to look for, and where.
#[derive(Debug, Clone)]
pub struct LocateOptions {
    /// The pod's UID.
    pub pod_uid: PodUid,
    /// The container's ID, with its runtime.
    pub container_id: ContainerId,
    /// Where procfs is mounted (the node's `/proc`).
    pub proc_root: PathBuf,
    /// How long to keep scanning; 0 scans once.
    pub timeout: Duration,
}

/// The container's processes, as written to `target.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocatedTarget {
    /// The container ID as given (`containerd://…`).
    pub container_id: String,
    /// The runtime named by the container ID.
    pub runtime: Runtime,
    /// The pod UID as given.
    pub pod_uid: String,
    /// The container's main process: the one whose parent is outside the container (the
    /// lowest pid if several), never a zombie.
    pub main_pid: i32,
    /// Every live process of the container, sorted.
    pub pids: Vec<i32>,
    /// The main process's pid in its own pid namespace (usually 1).
    pub ns_pid: i32,
    /// The main process's cgroup path that matched, as `/proc/PID/cgroup` shows it.
    pub cgroup_path: String,
    /// 1 or 2: the hierarchy of that line.
    pub cgroup_version: u8,
    /// How it matched: cgroup version, driver and runtime, e.g.
    /// `cgroup-v2 systemd containerd`.
    pub method: String,
    /// When it was found.
    pub located_at: DateTime<Utc>,
}

impl LocatedTarget {
    /// One line for stdout.
    pub fn summary(&self, out: &Path) -> String {
        format!(
            "located {} of pod {}: main pid {} (pid {} in its namespace), {} process(es) [{}], {}; wrote {}",
            self.container_id,
            self.pod_uid,
            self.main_pid,
            self.ns_pid,
            self.pids.len(),
            self.pids
                .iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            self.method,
            out.display()
        )
    }
}

/// Scans until the container is found or `options.timeout` passes. `progress` receives
/// human lines (the CLI prints them on stderr), among them a debug line with the counts
/// of the last scan.
pub fn locate(
    options: &LocateOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<LocatedTarget, LocateError> {
    let matcher = Matcher::new(&options.pod_uid, &options.container_id);
    let start = Instant::now();
    let mut scans = 0;
    loop {
        let scan_start = Instant::now();
        let scan = scan::scan(&options.proc_root, &matcher)?;
        scans += 1;
        let outcome = resolve(options, &scan);
        let elapsed = start.elapsed();
        let debug = || {
            format!(
                "debug: scan {scans} took {} ms: {} processes, {} vanished mid-scan, {} unreadable, {} zombie(s) in the container skipped",
                scan_start.elapsed().as_millis(),
                scan.stats.processes,
                scan.stats.vanished,
                scan.stats.unreadable,
                scan.stats.zombies
            )
        };
        let problem = match outcome {
            Ok(target) => {
                progress(&debug());
                return Ok(target);
            }
            Err(problem) => problem,
        };
        if elapsed >= options.timeout {
            progress(&debug());
            return Err(LocateError::NotLocated(Box::new(NotLocated {
                container_id: options.container_id.to_string(),
                pod_uid: options.pod_uid.to_string(),
                proc_root: options.proc_root.clone(),
                waited: humantime::format_duration(round_to_millis(elapsed)).to_string(),
                scans,
                processes: scan.stats.processes,
                hint: hint(&scan, problem),
            })));
        }
        if scans == 1 {
            progress(&format!(
                "container {} of pod {} not found yet; scanning every {} for up to {}",
                options.container_id,
                options.pod_uid,
                humantime::format_duration(POLL_INTERVAL),
                humantime::format_duration(options.timeout)
            ));
        }
        std::thread::sleep(POLL_INTERVAL.min(options.timeout - elapsed));
    }
}

/// Why a scan did not yield the container, beyond "no process matched".
enum Problem {
    /// No live process matched.
    NoMember,
    /// Every member has its parent in the container (cannot happen in a tree; the parent
    /// links changed during the scan).
    NoMain,
    /// The main process's status could not be read.
    MainUnreadable(String),
}

/// Picks the main process of a scan's members and reads its namespace pid.
fn resolve(options: &LocateOptions, scan: &Scan) -> Result<LocatedTarget, Problem> {
    if scan.members.is_empty() {
        return Err(Problem::NoMember);
    }
    let pids: BTreeSet<i32> = scan.members.iter().map(|m| m.pid).collect();
    // Members are in pid order: the first whose parent is outside is the lowest.
    let main = scan
        .members
        .iter()
        .find(|m| !pids.contains(&m.ppid))
        .ok_or(Problem::NoMain)?;
    let ns_pid = main.ns_pid().map_err(|e| {
        Problem::MainUnreadable(format!("cannot read the status of pid {}: {e}", main.pid))
    })?;
    Ok(LocatedTarget {
        container_id: options.container_id.to_string(),
        runtime: options.container_id.runtime(),
        pod_uid: options.pod_uid.to_string(),
        main_pid: main.pid,
        pids: pids.into_iter().collect(),
        ns_pid,
        cgroup_path: main.line.path.clone(),
        cgroup_version: main.line.cgroup_version,
        method: main.line.method(),
        located_at: Utc::now(),
    })
}

/// What the last scan saw that comes close, as sentences ending in `". "`.
fn hint(scan: &Scan, problem: Problem) -> String {
    let mut hint = String::new();
    match problem {
        Problem::NoMember => {}
        Problem::NoMain => hint.push_str(&format!(
            "{} process(es) matched but none has its parent outside the container. ",
            scan.members.len()
        )),
        Problem::MainUnreadable(why) => hint.push_str(&format!("{why}. ")),
    }
    if scan.stats.zombies > 0 {
        hint.push_str(&format!(
            "{} zombie process(es) are in the container's cgroup: the container has exited. ",
            scan.stats.zombies
        ));
    }
    if let Some(path) = &scan.container_only.example {
        hint.push_str(&format!(
            "{} process(es) are in a cgroup named for this container ID but not under this \
             pod (e.g. {path}): check the pod UID. ",
            scan.container_only.count
        ));
    }
    if let Some(path) = &scan.pod_only.example {
        hint.push_str(&format!(
            "{} process(es) are in this pod's cgroup but not this container's (e.g. {path}): \
             check the container ID. ",
            scan.pod_only.count
        ));
    }
    if scan.stats.unreadable > 0 {
        hint.push_str(&format!(
            "{} process(es) could not be read: run as root. ",
            scan.stats.unreadable
        ));
    }
    hint
}

fn round_to_millis(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

/// Reads a `target.json` written by [`write_target`] (the capture container's input).
pub fn read_target(path: &Path) -> Result<LocatedTarget, OutputError> {
    let bad = |detail: String| OutputError::BadCapture {
        path: path.to_path_buf(),
        detail,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    serde_json::from_str(&text)
        .map_err(|e| bad(format!("not a target.json written by procshot locate: {e}")))
}

/// Writes `target` as pretty JSON to `path`, through a temporary file in the same
/// directory renamed over it, so a reader never sees a half-written file.
pub fn write_target(path: &Path, target: &LocatedTarget) -> Result<(), OutputError> {
    let write_err = |source| OutputError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut json =
        serde_json::to_string_pretty(target).map_err(|e| write_err(std::io::Error::other(e)))?;
    json.push('\n');
    let file_name = path
        .file_name()
        .ok_or_else(|| {
            write_err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "--out must name a file",
            ))
        })?
        .to_string_lossy();
    let temporary = path.with_file_name(format!(".{file_name}.tmp"));
    std::fs::write(&temporary, json).map_err(|source| OutputError::Write {
        path: temporary.clone(),
        source,
    })?;
    std::fs::rename(&temporary, path).map_err(|source| {
        let _ = std::fs::remove_file(&temporary);
        write_err(source)
    })
}
