//! One pass over a proc root: which processes are in the container (by their
//! `/proc/PID/cgroup`), their parents, and what came close, for hints. Processes that
//! exit during the pass or cannot be read are skipped and counted.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{Mode, OFlags};

use super::naming::{LineMatch, Matcher, Membership};
use crate::error::LocateError;

/// A live (non-zombie) process in the container.
#[derive(Debug)]
pub struct Member {
    /// Its pid in the proc root.
    pub pid: i32,
    /// Its parent's pid.
    pub ppid: i32,
    /// The cgroup line that put it in the container.
    pub line: LineMatch,
    /// Its open `/proc/PID` directory, so that later reads cannot hit a recycled pid.
    dir: OwnedFd,
}

impl Member {
    /// The process's pid in its own pid namespace: the last `NSpid:` value of
    /// `/proc/PID/status` (the pid itself on kernels before 4.1, which lack the line).
    pub fn ns_pid(&self) -> io::Result<i32> {
        let status = read_at(&self.dir, "status")?;
        Ok(parse_ns_pid(&status).unwrap_or(self.pid))
    }
}

/// Counts of one pass, for the debug line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Process directories listed.
    pub processes: usize,
    /// Processes that exited between the listing and the reads (ENOENT, ESRCH).
    pub vanished: usize,
    /// Processes whose files could not be read (EACCES and other errors).
    pub unreadable: usize,
    /// Zombies in the container's cgroup (never members).
    pub zombies: usize,
}

/// Processes that came close to the container without being in it: how many, and the
/// cgroup path of the first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NearMiss {
    /// How many processes.
    pub count: usize,
    /// The first one's cgroup path.
    pub example: Option<String>,
}

impl NearMiss {
    fn add(&mut self, path: String) {
        self.count += 1;
        self.example.get_or_insert(path);
    }
}

/// The result of one pass.
#[derive(Debug, Default)]
pub struct Scan {
    /// Live processes in the container, in pid order.
    pub members: Vec<Member>,
    /// Counts.
    pub stats: ScanStats,
    /// Processes in a cgroup named for the container ID but not under the pod.
    pub container_only: NearMiss,
    /// Processes in the pod's cgroup but not in the container's.
    pub pod_only: NearMiss,
}

/// Scans every process under `proc_root`. Fails only when `proc_root` cannot be listed.
pub fn scan(proc_root: &Path, matcher: &Matcher) -> Result<Scan, LocateError> {
    let entries = std::fs::read_dir(proc_root).map_err(|source| LocateError::ProcRoot {
        path: proc_root.to_path_buf(),
        source,
    })?;
    let mut result = Scan::default();
    for entry in entries {
        let entry = entry.map_err(|source| LocateError::ProcRoot {
            path: proc_root.to_path_buf(),
            source,
        })?;
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
            .filter(|pid| *pid > 0)
        else {
            continue;
        };
        result.stats.processes += 1;
        match read_process(&entry.path(), pid, matcher) {
            Ok(Seen::Member(member)) => result.members.push(member),
            Ok(Seen::Zombie) => result.stats.zombies += 1,
            Ok(Seen::ContainerOnly(path)) => result.container_only.add(path),
            Ok(Seen::PodOnly(path)) => result.pod_only.add(path),
            Ok(Seen::Unrelated) => {}
            Err(e) if vanished(&e) => result.stats.vanished += 1,
            Err(_) => result.stats.unreadable += 1,
        }
    }
    result.members.sort_by_key(|m| m.pid);
    Ok(result)
}

/// What one process turned out to be.
enum Seen {
    Member(Member),
    Zombie,
    ContainerOnly(String),
    PodOnly(String),
    Unrelated,
}

fn read_process(dir_path: &Path, pid: i32, matcher: &Matcher) -> io::Result<Seen> {
    let dir = rustix::fs::open(
        dir_path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let line = match matcher.membership(&read_at(&dir, "cgroup")?) {
        Membership::In(line) => line,
        Membership::ContainerOnly(path) => return Ok(Seen::ContainerOnly(path)),
        Membership::PodOnly(path) => return Ok(Seen::PodOnly(path)),
        Membership::Unrelated => return Ok(Seen::Unrelated),
    };
    let stat = read_at(&dir, "stat")?;
    let (state, ppid) = parse_stat(&stat).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("malformed {}/stat", dir_path.display()),
        )
    })?;
    if matches!(state, 'Z' | 'X' | 'x') {
        return Ok(Seen::Zombie);
    }
    Ok(Seen::Member(Member {
        pid,
        ppid,
        line,
        dir,
    }))
}

/// Whether an error means the process exited while it was being read.
fn vanished(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::NotFound || error.raw_os_error() == Some(libc::ESRCH)
}

/// Reads a file of an open `/proc/PID` directory (lossily: cgroup paths may hold any
/// bytes).
fn read_at(dir: &OwnedFd, name: &str) -> io::Result<String> {
    let fd = rustix::fs::openat(dir, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    let mut bytes = Vec::new();
    File::from(fd).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The state letter and parent pid of `/proc/PID/stat` (the command name, in
/// parentheses, may itself hold spaces and parentheses).
fn parse_stat(stat: &str) -> Option<(char, i32)> {
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// The last value of the `NSpid:` line of `/proc/PID/status`.
fn parse_ns_pid(status: &str) -> Option<i32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("NSpid:"))?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_a_tricky_command_name() {
        assert_eq!(
            parse_stat("4242 (a) b (c)) S 17 4242 4242 0 -1 4194560 117 0 0 0"),
            Some(('S', 17))
        );
        assert_eq!(parse_stat("9 (sh) Z 1 9"), Some(('Z', 1)));
        assert_eq!(parse_stat("9 (sh"), None);
        assert_eq!(parse_stat("9 (sh) S"), None);
    }

    #[test]
    fn ns_pid_is_the_innermost_value() {
        let status = "Name:\tsh\nTgid:\t4242\nNSpid:\t4242\t17\t1\nNSpgid:\t4242\n";
        assert_eq!(parse_ns_pid(status), Some(1));
        assert_eq!(parse_ns_pid("NSpid:\t4242\n"), Some(4242));
        assert_eq!(parse_ns_pid("Name:\tsh\n"), None);
    }
}
