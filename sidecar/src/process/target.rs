//! The target process: an open handle on `/proc/PID` (so a recycled pid can never be read
//! by mistake), error mapping for everything read through it, and the identity recorded in
//! the manifest.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use procfs::ProcError;
use procfs::process::Process;
use serde::{Deserialize, Serialize};

use crate::error::CaptureError;
use crate::redact::redact_command_line;

/// A live process opened through its `/proc/PID` directory.
#[derive(Debug)]
pub struct Target {
    pid: i32,
    dir: PathBuf,
    process: Process,
}

impl Target {
    /// Opens `PROC_ROOT/PID`. Fails with [`CaptureError::TargetNotFound`] when there is no
    /// such process and [`CaptureError::TargetZombie`] when it has already exited.
    pub fn open(proc_root: &Path, pid: i32) -> Result<Self, CaptureError> {
        let dir = proc_root.join(pid.to_string());
        let not_found = || CaptureError::TargetNotFound {
            pid,
            proc_root: proc_root.to_path_buf(),
        };
        if pid <= 0 {
            return Err(not_found());
        }
        let process = Process::new_with_root(dir.clone()).map_err(|e| match e {
            ProcError::NotFound(_) => not_found(),
            ProcError::PermissionDenied(_) => CaptureError::PermissionDenied { path: dir.clone() },
            other => CaptureError::Io {
                path: dir.clone(),
                source: std::io::Error::other(other.to_string()),
            },
        })?;
        let target = Self { pid, dir, process };
        let stat = target
            .process
            .stat()
            .map_err(|e| target.proc_error("stat", "the process state", e))?;
        if stat.state == 'Z' || stat.state == 'X' {
            return Err(CaptureError::TargetZombie { pid });
        }
        Ok(target)
    }

    /// The target's pid, as seen in the proc root it was opened from.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The procfs handle, for reads through the `procfs` crate.
    pub fn process(&self) -> &Process {
        &self.process
    }

    /// The full path of a file under the target's `/proc/PID`, for messages.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }

    /// Whether the target is still running (not exited, not a zombie).
    pub fn is_alive(&self) -> bool {
        self.process.is_alive()
    }

    /// Opens a directory under `/proc/PID` (for example `fd` or `task`).
    pub fn open_dir(&self, relative: &str, what: &'static str) -> Result<OwnedFd, CaptureError> {
        let flags = rustix::fs::OFlags::RDONLY
            | rustix::fs::OFlags::DIRECTORY
            | rustix::fs::OFlags::CLOEXEC;
        self.process
            .open_relative_flags(relative, flags)
            .map(OwnedFd::from)
            .map_err(|e| self.proc_error(relative, what, e))
    }

    /// Maps an error from reading `relative` while capturing `what`: a missing file of a
    /// process that is gone becomes [`CaptureError::TargetExited`].
    pub fn proc_error(&self, relative: &str, what: &'static str, error: ProcError) -> CaptureError {
        let path = self.path(relative);
        match error {
            ProcError::PermissionDenied(_) => CaptureError::PermissionDenied { path },
            ProcError::NotFound(_) | ProcError::Io(..) if !self.is_alive() => {
                CaptureError::TargetExited {
                    pid: self.pid,
                    what,
                }
            }
            ProcError::Io(source, _) => CaptureError::from_io(path, source),
            ProcError::NotFound(_) => {
                CaptureError::from_io(path, std::io::ErrorKind::NotFound.into())
            }
            ProcError::Incomplete(_) => CaptureError::Malformed {
                path,
                detail: "the file ended early".into(),
            },
            other => CaptureError::Malformed {
                path,
                detail: other.to_string(),
            },
        }
    }

    /// Maps a raw I/O error on `relative` the same way as [`Target::proc_error`].
    pub fn io_error(
        &self,
        relative: &str,
        what: &'static str,
        error: std::io::Error,
    ) -> CaptureError {
        if !self.is_alive() {
            return CaptureError::TargetExited {
                pid: self.pid,
                what,
            };
        }
        CaptureError::from_io(self.path(relative), error)
    }

    /// Reads who the target is, for the manifest. Fields that cannot be read are left empty
    /// rather than failing the capture.
    pub fn identity(&self) -> Result<TargetIdentity, CaptureError> {
        let stat = self
            .process
            .stat()
            .map_err(|e| self.proc_error("stat", "the process identity", e))?;
        let status = self
            .process
            .status()
            .map_err(|e| self.proc_error("status", "the process identity", e))?;
        let start_time = self.start_time(stat.starttime);
        let command_line = self
            .process
            .cmdline()
            .map(|argv| redact_command_line(&argv))
            .unwrap_or_default();
        let cgroups = self
            .process
            .cgroups()
            .map(|groups| {
                groups
                    .0
                    .into_iter()
                    .map(|g| format!("{}:{}:{}", g.hierarchy, g.controllers.join(","), g.pathname))
                    .collect()
            })
            .unwrap_or_default();
        Ok(TargetIdentity {
            pid: self.pid,
            ns_pid: status.nspid.unwrap_or_default(),
            ppid: stat.ppid,
            name: stat.comm,
            exe: self.process.exe().ok().map(|p| p.display().to_string()),
            command_line,
            uid: status.ruid,
            start_time,
            cgroups,
        })
    }

    fn start_time(&self, start_ticks: u64) -> Option<chrono::DateTime<chrono::Utc>> {
        let boot_secs = procfs::boot_time_secs().ok()?;
        let ticks = procfs::ticks_per_second();
        let millis = boot_secs.checked_mul(1000)? + start_ticks.checked_mul(1000)? / ticks;
        chrono::DateTime::from_timestamp_millis(i64::try_from(millis).ok()?)
    }
}

/// Who the target is, as recorded in `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TargetIdentity {
    /// Pid in the proc root procshot read (the host pid on a node).
    pub pid: i32,
    /// The pid in each nested pid namespace, outermost first (`NSpid`).
    pub ns_pid: Vec<i32>,
    /// Parent pid.
    pub ppid: i32,
    /// The command name (`comm`).
    pub name: String,
    /// The executable, when readable.
    pub exe: Option<String>,
    /// The command line, with secret-looking values redacted.
    pub command_line: Vec<String>,
    /// Real uid.
    pub uid: u32,
    /// When the process started.
    pub start_time: Option<chrono::DateTime<chrono::Utc>>,
    /// `/proc/PID/cgroup`, one `hierarchy:controllers:path` entry per line.
    pub cgroups: Vec<String>,
}
