//! Stopping the target's threads with ptrace, briefly and always undone.
//!
//! Every capture that needs a thread's registers goes through here:
//! * [`Tracee`] is one stopped thread (`PTRACE_SEIZE` + `PTRACE_INTERRUPT`, waited for with
//!   a bound). Dropping it detaches, re-injecting any signal that arrived while it was
//!   stopped, so nothing the target would have seen is lost.
//! * [`StoppedProcess`] stops every thread of a process (repeating until no new thread
//!   appears) and detaches them all when dropped.
//!
//! Detaching happens on every path: on success, on error and on panic (by `Drop`), and when
//! procshot itself dies (SIGTERM, SIGINT, SIGKILL), because the kernel detaches a dead
//! tracer's tracees and lets them run. ptrace requests only work from the thread that
//! attached, so neither type is `Send`.
//!
//! [`threads_in_tracing_stop`] checks afterwards that no thread was left stopped.

use std::marker::PhantomData;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// Why a thread could not be stopped or read.
#[derive(Debug, thiserror::Error)]
pub enum PtraceError {
    /// The thread exited before or while it was being stopped.
    #[error("thread {tid} exited while it was being stopped")]
    ThreadExited {
        /// The thread.
        tid: i32,
    },
    /// The kernel refused to let procshot trace the thread.
    #[error(
        "not allowed to ptrace thread {tid} ({errno}): run as root or with CAP_SYS_PTRACE, and \
         check /proc/sys/kernel/yama/ptrace_scope and that no debugger is attached already"
    )]
    NotPermitted {
        /// The thread.
        tid: i32,
        /// What the kernel said.
        errno: Errno,
    },
    /// The thread did not stop within the bound (it is in uninterruptible sleep, say).
    #[error("thread {tid} did not stop within {}; it was left running", humantime::format_duration(*.bound))]
    StopTimedOut {
        /// The thread.
        tid: i32,
        /// The bound.
        bound: Duration,
    },
    /// Another ptrace request failed.
    #[error("ptrace {request} on thread {tid} failed: {errno}")]
    Request {
        /// The request (`PTRACE_GETREGS`, say).
        request: &'static str,
        /// The thread.
        tid: i32,
        /// What the kernel said.
        errno: Errno,
    },
}

impl PtraceError {
    /// Whether the thread (or its whole process) is gone, as opposed to a real failure.
    pub fn is_exited(&self) -> bool {
        matches!(self, Self::ThreadExited { .. })
    }
}

/// One thread, seized and stopped. Dropping it detaches the thread and lets it run again.
#[derive(Debug)]
pub struct Tracee {
    tid: Pid,
    /// A signal that arrived while the thread was stopped, delivered again on detach.
    pending_signal: Option<Signal>,
    /// Whether the thread reached its stop (a seized thread that never stopped still needs
    /// its detach, which the kernel only accepts from a stopped thread: see `Drop`).
    stopped: bool,
    /// When procshot saw the thread stopped.
    stopped_at: Option<Instant>,
    /// ptrace only answers the thread that attached.
    not_send: PhantomData<*const ()>,
}

impl Tracee {
    /// Seizes thread `tid` and stops it, waiting at most `bound` for the stop.
    pub fn stop(tid: i32, bound: Duration) -> Result<Self, PtraceError> {
        let mut tracee = Self::seize(tid)?;
        tracee.interrupt()?;
        tracee.wait_stopped(Instant::now() + bound, bound)?;
        Ok(tracee)
    }

    /// Seizes thread `tid` without stopping it yet (see [`StoppedProcess`], which seizes
    /// and interrupts every thread before waiting for any).
    fn seize(tid: i32) -> Result<Self, PtraceError> {
        let pid = Pid::from_raw(tid);
        ptrace::seize(pid, ptrace::Options::empty()).map_err(|errno| match errno {
            Errno::ESRCH => PtraceError::ThreadExited { tid },
            // A zombie thread refuses to be traced with EPERM: it has exited.
            Errno::EPERM if thread_is_gone(tid) => PtraceError::ThreadExited { tid },
            Errno::EPERM | Errno::EACCES => PtraceError::NotPermitted { tid, errno },
            errno => PtraceError::Request {
                request: "PTRACE_SEIZE",
                tid,
                errno,
            },
        })?;
        Ok(Self {
            tid: pid,
            pending_signal: None,
            stopped: false,
            stopped_at: None,
            not_send: PhantomData,
        })
    }

    fn interrupt(&self) -> Result<(), PtraceError> {
        ptrace::interrupt(self.tid).map_err(|errno| self.request_error("PTRACE_INTERRUPT", errno))
    }

    /// Waits until the thread reports a stop, up to `deadline`. A signal that stops it
    /// first is remembered and re-injected on detach.
    fn wait_stopped(&mut self, deadline: Instant, bound: Duration) -> Result<(), PtraceError> {
        let mut spins = 0u32;
        loop {
            match waitpid(self.tid, Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {}
                Ok(WaitStatus::PtraceEvent(..)) => {
                    self.stopped = true;
                    self.stopped_at = Some(Instant::now());
                    return Ok(());
                }
                Ok(WaitStatus::Stopped(_, signal)) => {
                    self.stopped = true;
                    self.stopped_at = Some(Instant::now());
                    // A signal-delivery stop: the thread got `signal` while we held it.
                    // Keep it for the detach (SIGSTOP too: it is the target's to act on).
                    self.pending_signal = Some(signal);
                    // The interrupt stop is still queued; take it so the thread is in a
                    // plain ptrace stop, or leave it to the detach if it does not come.
                    return Ok(());
                }
                Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) | Err(Errno::ECHILD) => {
                    self.stopped = false;
                    return Err(PtraceError::ThreadExited {
                        tid: self.tid.as_raw(),
                    });
                }
                Ok(_) => {}
                Err(Errno::EINTR) => {}
                Err(errno) => return Err(self.request_error("waitpid", errno)),
            }
            if Instant::now() >= deadline {
                return Err(PtraceError::StopTimedOut {
                    tid: self.tid.as_raw(),
                    bound,
                });
            }
            // A running or sleeping thread reaches its stop within microseconds: yield
            // first, then sleep in short steps so that a thread stuck in uninterruptible
            // sleep costs little CPU until the bound.
            spins += 1;
            if spins < 64 {
                std::thread::yield_now();
            } else {
                // A thread of a process being killed may never report: its exit waits for
                // the process's other threads. Notice that it is gone instead of waiting
                // for the bound.
                if spins.is_multiple_of(64) && thread_is_gone(self.tid.as_raw()) {
                    return Err(PtraceError::ThreadExited {
                        tid: self.tid.as_raw(),
                    });
                }
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }

    /// When procshot saw the thread reach its stop (within one poll of a few microseconds
    /// after it did): the start of the time the thread is held.
    pub fn stopped_at(&self) -> Option<Instant> {
        self.stopped_at
    }

    /// The thread id.
    pub fn tid(&self) -> i32 {
        self.tid.as_raw()
    }

    /// The thread's general-purpose registers.
    pub fn registers(&self) -> Result<libc::user_regs_struct, PtraceError> {
        ptrace::getregs(self.tid).map_err(|errno| self.request_error("PTRACE_GETREGS", errno))
    }

    /// The thread's floating-point registers (`user_fpregs_struct`, the layout of a core
    /// file's NT_PRFPREG note).
    #[cfg(target_arch = "x86_64")]
    pub fn fp_registers(&self) -> Result<libc::user_fpregs_struct, PtraceError> {
        let mut regs = std::mem::MaybeUninit::<libc::user_fpregs_struct>::zeroed();
        // SAFETY: PTRACE_GETFPREGS writes exactly one user_fpregs_struct to the pointer,
        // which points to one; the thread is a stopped tracee of this thread.
        let result = unsafe {
            libc::ptrace(
                libc::PTRACE_GETFPREGS,
                self.tid.as_raw(),
                std::ptr::null_mut::<libc::c_void>(),
                regs.as_mut_ptr(),
            )
        };
        if result == -1 {
            return Err(self.request_error("PTRACE_GETFPREGS", Errno::last()));
        }
        // SAFETY: the kernel filled it in (and it started zeroed).
        Ok(unsafe { regs.assume_init() })
    }

    /// The signal information of the thread's stop (the core file's NT_SIGINFO).
    pub fn siginfo(&self) -> Result<libc::siginfo_t, PtraceError> {
        ptrace::getsiginfo(self.tid).map_err(|errno| self.request_error("PTRACE_GETSIGINFO", errno))
    }

    /// Detaches now (dropping does the same).
    pub fn detach(self) {}

    fn request_error(&self, request: &'static str, errno: Errno) -> PtraceError {
        let tid = self.tid.as_raw();
        if errno == Errno::ESRCH && thread_is_gone(tid) {
            PtraceError::ThreadExited { tid }
        } else {
            PtraceError::Request {
                request,
                tid,
                errno,
            }
        }
    }
}

impl Drop for Tracee {
    fn drop(&mut self) {
        if ptrace::detach(self.tid, self.pending_signal).is_ok() {
            return;
        }
        // PTRACE_DETACH needs the thread in a ptrace stop. A seized thread that has not
        // reported its stop yet (the bound passed) gets there at once or exits; wait for
        // that briefly and detach again. If it never stops, the seize ends when procshot
        // exits, and the thread was never stopped by us in the meantime.
        if !self.stopped {
            let _ = ptrace::interrupt(self.tid);
            let deadline = Instant::now() + Duration::from_millis(100);
            while Instant::now() < deadline {
                match waitpid(self.tid, Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) => std::thread::yield_now(),
                    Ok(WaitStatus::Stopped(_, signal)) => {
                        self.pending_signal.get_or_insert(signal);
                        break;
                    }
                    Ok(WaitStatus::PtraceEvent(..)) => break,
                    _ => return,
                }
            }
            let _ = ptrace::detach(self.tid, self.pending_signal);
        }
    }
}

/// Every thread of one process, stopped together. Dropping it detaches them all.
#[derive(Debug)]
pub struct StoppedProcess {
    threads: Vec<Tracee>,
    stopped_at: Instant,
}

impl StoppedProcess {
    /// Stops every thread of `pid` (listed in `proc_root/PID/task`), repeating the listing
    /// until no new thread appears, so that a thread created meanwhile is stopped too.
    /// Threads that exit meanwhile are left out. Fails if any thread is not stopped within
    /// `bound` of the first interrupt, with every thread already detached.
    pub fn stop(proc_root: &Path, pid: i32, bound: Duration) -> Result<Self, PtraceError> {
        let stopped_at = Instant::now();
        let deadline = stopped_at + bound;
        let tasks =
            TaskDir::open(proc_root, pid).map_err(|_| PtraceError::ThreadExited { tid: pid })?;
        let mut threads: Vec<Tracee> = Vec::new();
        loop {
            let tids = tasks
                .tids()
                .map_err(|_| PtraceError::ThreadExited { tid: pid })?;
            let mut new = 0;
            for tid in tids {
                if threads.iter().any(|t| t.tid() == tid) {
                    continue;
                }
                match Tracee::seize(tid) {
                    Ok(tracee) => {
                        tracee.interrupt()?;
                        threads.push(tracee);
                        new += 1;
                    }
                    Err(e) if e.is_exited() => {}
                    Err(e) => return Err(e),
                }
            }
            if new == 0 {
                break;
            }
        }
        if threads.is_empty() {
            return Err(PtraceError::ThreadExited { tid: pid });
        }
        let mut i = 0;
        while i < threads.len() {
            match threads[i].wait_stopped(deadline, bound) {
                Ok(()) => i += 1,
                Err(e) if e.is_exited() => {
                    threads.swap_remove(i);
                }
                Err(e) => return Err(e),
            }
        }
        threads.sort_by_key(Tracee::tid);
        Ok(Self {
            threads,
            stopped_at,
        })
    }

    /// The stopped threads, by tid (the main thread, whose tid is the pid, first).
    pub fn threads(&self) -> &[Tracee] {
        &self.threads
    }

    /// How long the process has been stopped so far.
    pub fn stopped_for(&self) -> Duration {
        self.stopped_at.elapsed()
    }

    /// Detaches every thread now (dropping does the same); returns how long the process
    /// was stopped.
    pub fn resume(self) -> Duration {
        let stopped_for = self.stopped_for();
        drop(self);
        stopped_for
    }
}

/// The threads of `pid` that are in a tracing stop (state `t` in `/proc/PID/task/TID/stat`):
/// after a capture has detached, there must be none (unless another debugger holds them).
pub fn threads_in_tracing_stop(proc_root: &Path, pid: i32) -> Vec<i32> {
    match TaskDir::open(proc_root, pid) {
        Ok(tasks) => tasks.in_tracing_stop(),
        Err(_) => Vec::new(),
    }
}

/// A process's `/proc/PID/task` directory, held open so that reading the state of each of
/// a thousand threads costs one `openat` and one `read`, without walking the path again.
#[derive(Debug)]
pub struct TaskDir(std::os::fd::OwnedFd);

impl TaskDir {
    /// Opens `proc_root/PID/task`.
    pub fn open(proc_root: &Path, pid: i32) -> std::io::Result<Self> {
        use rustix::fs::{Mode, OFlags};
        let path = proc_root.join(pid.to_string()).join("task");
        let fd = rustix::fs::open(
            &path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self(fd))
    }

    /// A thread's name and state letter (from `TID/stat`), or `None` when it is gone.
    pub fn name_and_state(&self, tid: i32) -> Option<(String, char)> {
        use rustix::fs::{Mode, OFlags};
        let fd = rustix::fs::openat(
            &self.0,
            format!("{tid}/stat"),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        // The line is far shorter than the buffer: one read gets all of it.
        let mut buffer = [0u8; 1024];
        let len = rustix::io::read(&fd, &mut buffer).ok()?;
        let stat = std::str::from_utf8(&buffer[..len]).ok()?;
        let (head, rest) = stat.rsplit_once(") ")?;
        let name = head.split_once(" (")?.1.to_string();
        Some((name, rest.chars().next()?))
    }

    /// The threads in a tracing stop (state `t`) now.
    pub fn in_tracing_stop(&self) -> Vec<i32> {
        let mut tids = self.tids().unwrap_or_default();
        tids.retain(|&tid| {
            self.name_and_state(tid)
                .is_some_and(|(_, state)| state == 't')
        });
        tids
    }

    /// The threads now, sorted. Each call lists the directory afresh (through a new open
    /// file description, so earlier listings do not move its position).
    pub fn tids(&self) -> std::io::Result<Vec<i32>> {
        use rustix::fs::{Mode, OFlags};
        let here = rustix::fs::openat(
            &self.0,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut tids = Vec::new();
        for entry in rustix::fs::Dir::read_from(&here)? {
            if let Some(tid) = entry?
                .file_name()
                .to_str()
                .ok()
                .and_then(|s| s.parse().ok())
            {
                tids.push(tid);
            }
        }
        tids.sort_unstable();
        Ok(tids)
    }
}

/// Whether thread `tid` has exited (gone, or a zombie waiting to be reaped).
fn thread_is_gone(tid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{tid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(") ")?;
            rest.chars().next()
        })
        .is_none_or(|state| state == 'Z' || state == 'X')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    /// A child that sleeps in a loop, with a second thread (a shell with a background job
    /// would be a separate process; `sleep` is single-threaded, which is enough here).
    fn sleeper() -> std::process::Child {
        Command::new("sleep")
            .arg("30")
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    }

    #[test]
    fn stops_and_resumes_a_process() {
        let mut child = sleeper();
        let pid = child.id() as i32;
        let proc_root = Path::new("/proc");
        {
            let stopped = StoppedProcess::stop(proc_root, pid, Duration::from_secs(1)).unwrap();
            assert_eq!(stopped.threads().len(), 1);
            assert_eq!(stopped.threads()[0].tid(), pid);
            stopped.threads()[0].registers().unwrap();
            assert_eq!(threads_in_tracing_stop(proc_root, pid), vec![pid]);
        }
        assert!(threads_in_tracing_stop(proc_root, pid).is_empty());
        // The child still runs: a signal reaches it and ends it.
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn an_exited_thread_is_named() {
        let mut child = sleeper();
        let pid = child.id() as i32;
        child.kill().unwrap();
        child.wait().unwrap();
        let err = Tracee::stop(pid, Duration::from_millis(50)).unwrap_err();
        assert!(err.is_exited(), "{err}");
    }
}
