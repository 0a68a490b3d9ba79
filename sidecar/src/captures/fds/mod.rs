//! The `fds` capture: every open file descriptor of the target with its kind, link target,
//! fdinfo and (for sockets) what the target's net tables say, plus the fd limits.
//!
//! The walk reads relative to open `fd/` and `fdinfo/` directory handles: per fd one
//! `readlinkat`, one `openat`+`read` of its fdinfo, and for filesystem paths one `statx`
//! with `AT_STATX_DONT_SYNC` (served from the inode cache, so a hung network filesystem
//! cannot block it). An fd closed while the table is read is counted in `vanished`.

pub mod fdinfo;
pub mod kind;
pub mod sockets;

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};

use procfs::process::LimitValue;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, StatxFlags};
use serde::{Deserialize, Serialize};

pub use fdinfo::FdInfo;
pub use kind::FdKind;
pub use sockets::{SocketInfo, SocketProtocol, SocketTable};

use crate::captures::CaptureKind;
use crate::captures::contract::{Deadline, KindSample, SampleError, SampledCapture};
use crate::error::CaptureError;
use crate::process::Target;
use crate::units;

const WHAT: &str = "the fd table";
/// Fd tables smaller than this are read by one thread.
const PARALLEL_MIN_FDS: usize = 2048;
/// At most this many threads read one fd table.
const MAX_WORKERS: usize = 4;
/// Fds a worker claims at a time.
const BATCH: usize = 256;

/// One sample of the fd table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FdSample {
    /// `RLIMIT_NOFILE` of the target.
    pub limits: FdLimits,
    /// Slots allocated in the kernel's fd table (`FDSize` in status).
    pub fd_size: u32,
    /// Every fd, sorted by number.
    pub fds: Vec<FdEntry>,
    /// Fds that were listed but closed before they could be read.
    pub vanished: u32,
}

/// Soft and hard limit on open fds; `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FdLimits {
    /// Soft limit: `open` fails with EMFILE past it.
    pub soft: Option<u64>,
    /// Hard limit: how far the process may raise its soft limit.
    pub hard: Option<u64>,
}

/// One open file descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FdEntry {
    /// The fd number.
    pub fd: i32,
    /// What it refers to.
    pub kind: FdKind,
    /// The `/proc/PID/fd/N` link text (`socket:[123]`, `/var/log/app.log (deleted)`).
    pub target: String,
    /// The fdinfo fields.
    pub fdinfo: FdInfo,
    /// For sockets: protocol, addresses, state, queues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<SocketInfo>,
}

impl FdEntry {
    /// The group this fd counts in for trends: the kind name, and for sockets
    /// `socket tcp CLOSE_WAIT`-style groups.
    pub fn group(&self) -> String {
        match &self.socket {
            Some(socket) => format!("socket {}", socket.group()),
            None => self.kind.name().to_string(),
        }
    }

    /// Whether the link names a file that was deleted while open.
    pub fn is_deleted(&self) -> bool {
        self.target.ends_with(" (deleted)")
    }
}

impl KindSample for FdSample {
    const KIND: CaptureKind = CaptureKind::Fds;
}

/// The fds capture: the whole fd table in every sample.
#[derive(Debug, Clone, Copy, Default)]
pub struct FdsReader;

impl SampledCapture for FdsReader {
    type Sample = FdSample;

    fn read(&mut self, target: &Target, _: &Deadline) -> Result<FdSample, SampleError> {
        Ok(capture(target)?)
    }

    fn describe(sample: &FdSample) -> Option<String> {
        Some(format!("{} fds", units::count(sample.fds.len() as u64)))
    }
}

/// Reads one sample of the target's fd table.
pub fn capture(target: &Target) -> Result<FdSample, CaptureError> {
    let limits = read_limits(target)?;
    let fd_size = target
        .process()
        .status()
        .map_err(|e| target.proc_error("status", WHAT, e))?
        .fdsize;
    let fd_dir = target.open_dir("fd", WHAT)?;
    let fdinfo_dir = target.open_dir("fdinfo", WHAT)?;
    let names = list_fd_names(target, &fd_dir)?;

    let (mut fds, vanished, sockets) = if names.len() < PARALLEL_MIN_FDS {
        let cursor = AtomicUsize::new(0);
        let (fds, vanished) =
            FdReader::new(target, &fd_dir, &fdinfo_dir).read_batches(&names, &cursor)?;
        let has_sockets = fds.iter().any(|e| e.kind == FdKind::Socket);
        (
            fds,
            vanished,
            if has_sockets {
                SocketTable::read(target)?
            } else {
                SocketTable::default()
            },
        )
    } else {
        walk_in_parallel(target, &fd_dir, &fdinfo_dir, &names)?
    };
    if vanished > 0 && !target.is_alive() {
        return Err(CaptureError::TargetExited {
            pid: target.pid(),
            what: WHAT,
        });
    }
    for entry in fds.iter_mut().filter(|e| e.kind == FdKind::Socket) {
        entry.socket = Some(sockets.lookup(socket_inode(&entry.target).unwrap_or(0)));
    }
    Ok(FdSample {
        limits,
        fd_size,
        fds,
        vanished,
    })
}

/// The walk is all system calls, each independent: split it across cores, and read the
/// socket tables meanwhile. Workers take batches from a shared cursor, so a worker slowed
/// by the socket reader simply takes fewer batches.
fn walk_in_parallel(
    target: &Target,
    fd_dir: &OwnedFd,
    fdinfo_dir: &OwnedFd,
    names: &[(i32, CString)],
) -> Result<(Vec<FdEntry>, u32, SocketTable), CaptureError> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_WORKERS);
    let cursor = AtomicUsize::new(0);
    let (walked, sockets) = std::thread::scope(|scope| {
        let sockets = scope.spawn(|| SocketTable::read(target));
        let walkers: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    FdReader::new(target, fd_dir, fdinfo_dir).read_batches(names, &cursor)
                })
            })
            .collect();
        let walked: Vec<_> = walkers
            .into_iter()
            .map(|w| w.join().expect("fd walker panicked"))
            .collect();
        (
            walked,
            sockets.join().expect("socket table reader panicked"),
        )
    });
    let mut fds = Vec::with_capacity(names.len());
    let mut vanished = 0;
    for part in walked {
        let (entries, gone) = part?;
        fds.extend(entries);
        vanished += gone;
    }
    fds.sort_unstable_by_key(|e| e.fd);
    Ok((fds, vanished, sockets?))
}

fn read_limits(target: &Target) -> Result<FdLimits, CaptureError> {
    let limits = target
        .process()
        .limits()
        .map_err(|e| target.proc_error("limits", WHAT, e))?;
    let value = |v: LimitValue| match v {
        LimitValue::Unlimited => None,
        LimitValue::Value(n) => Some(n),
    };
    Ok(FdLimits {
        soft: value(limits.max_open_files.soft_limit),
        hard: value(limits.max_open_files.hard_limit),
    })
}

/// Lists `fd/`, sorted by fd number.
fn list_fd_names(target: &Target, fd_dir: &OwnedFd) -> Result<Vec<(i32, CString)>, CaptureError> {
    let mut dir =
        rustix::fs::Dir::read_from(fd_dir).map_err(|e| target.io_error("fd", WHAT, e.into()))?;
    let mut names = Vec::new();
    while let Some(entry) = dir.read() {
        let entry = entry.map_err(|e| target.io_error("fd", WHAT, e.into()))?;
        let name = entry.file_name();
        let Some(fd) = name.to_str().ok().and_then(|s| s.parse::<i32>().ok()) else {
            continue; // "." and ".."
        };
        names.push((fd, name.to_owned()));
    }
    names.sort_unstable_by_key(|(fd, _)| *fd);
    Ok(names)
}

/// Reads single fds, reusing its buffers across calls.
struct FdReader<'a> {
    target: &'a Target,
    fd_dir: &'a OwnedFd,
    fdinfo_dir: &'a OwnedFd,
    fdinfo_buf: Vec<u8>,
}

impl<'a> FdReader<'a> {
    fn new(target: &'a Target, fd_dir: &'a OwnedFd, fdinfo_dir: &'a OwnedFd) -> Self {
        Self {
            target,
            fd_dir,
            fdinfo_dir,
            fdinfo_buf: vec![0; 4096],
        }
    }

    /// Reads batches of `names` claimed from `cursor` until none are left; returns the
    /// entries and how many fds vanished.
    fn read_batches(
        mut self,
        names: &[(i32, CString)],
        cursor: &AtomicUsize,
    ) -> Result<(Vec<FdEntry>, u32), CaptureError> {
        let mut entries = Vec::new();
        let mut vanished = 0;
        loop {
            let start = cursor.fetch_add(BATCH, Ordering::Relaxed);
            if start >= names.len() {
                return Ok((entries, vanished));
            }
            for (fd, name) in &names[start..(start + BATCH).min(names.len())] {
                match self.read(*fd, name)? {
                    Some(entry) => entries.push(entry),
                    None => vanished += 1,
                }
            }
        }
    }

    /// One fd; `None` when it was closed while being read.
    fn read(&mut self, fd: i32, name: &CStr) -> Result<Option<FdEntry>, CaptureError> {
        let link = match rustix::fs::readlinkat(self.fd_dir, name, Vec::with_capacity(64)) {
            Ok(link) => link.to_string_lossy().into_owned(),
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(self.error("fd", fd, e.into())),
        };
        let file_type = if FdKind::needs_file_type(&link) {
            match rustix::fs::statx(
                self.fd_dir,
                name,
                AtFlags::STATX_DONT_SYNC,
                StatxFlags::TYPE,
            ) {
                Ok(stat) => Some(FileType::from_raw_mode(stat.stx_mode.into())),
                Err(rustix::io::Errno::NOENT) => return Ok(None),
                Err(_) => None,
            }
        } else {
            None
        };
        let Some(text) = self.read_fdinfo(fd, name)? else {
            return Ok(None);
        };
        let fdinfo = FdInfo::parse(text).map_err(|e| CaptureError::Malformed {
            path: self.target.path(&format!("fdinfo/{fd}")),
            detail: e.to_string(),
        })?;
        Ok(Some(FdEntry {
            fd,
            kind: FdKind::classify(&link, file_type),
            target: link,
            fdinfo,
            socket: None,
        }))
    }

    fn read_fdinfo(&mut self, fd: i32, name: &CStr) -> Result<Option<&str>, CaptureError> {
        let file = match rustix::fs::openat(
            self.fdinfo_dir,
            name,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(file) => file,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(self.error("fdinfo", fd, e.into())),
        };
        let mut len = 0;
        loop {
            if len == self.fdinfo_buf.len() {
                self.fdinfo_buf.resize(len * 2, 0);
            }
            match rustix::io::read(&file, &mut self.fdinfo_buf[len..]) {
                Ok(0) => break,
                Ok(n) => {
                    len += n;
                    // fdinfo is one seq_file record: a short read means we have all of it.
                    if len < self.fdinfo_buf.len() {
                        break;
                    }
                }
                Err(rustix::io::Errno::NOENT | rustix::io::Errno::SRCH) => return Ok(None),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(self.error("fdinfo", fd, e.into())),
            }
        }
        std::str::from_utf8(&self.fdinfo_buf[..len])
            .map(Some)
            .map_err(|_| CaptureError::Malformed {
                path: self.target.path(&format!("fdinfo/{fd}")),
                detail: "not UTF-8 text".into(),
            })
    }

    fn error(&self, dir: &str, fd: i32, error: io::Error) -> CaptureError {
        self.target.io_error(&format!("{dir}/{fd}"), WHAT, error)
    }
}

/// `socket:[12345]` → 12345.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_inodes_come_from_the_link_text() {
        assert_eq!(socket_inode("socket:[4242]"), Some(4242));
        assert_eq!(socket_inode("socket:[x]"), None);
        assert_eq!(socket_inode("pipe:[4242]"), None);
    }
}
