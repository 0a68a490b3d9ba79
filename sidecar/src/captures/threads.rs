//! The `threads` capture: every task of the target with its name, state, wait channel,
//! current syscall, CPU times, context switches and kernel stack (where permitted; the
//! reason is recorded where not).

use std::io::Read;

use procfs::process::Task;
use serde::{Deserialize, Serialize};

use crate::captures::CaptureKind;
use crate::captures::contract::{Deadline, KindSample, SampleError, SampledCapture};
use crate::error::CaptureError;
use crate::process::Target;
use crate::units;

const WHAT: &str = "the thread list";

/// One sample of the target's threads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadSample {
    /// Every thread, sorted by tid.
    pub threads: Vec<ThreadEntry>,
    /// Threads that were listed but exited before they could be read.
    pub vanished: u32,
}

/// One thread (task).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadEntry {
    /// Thread id (host pid namespace).
    pub tid: i32,
    /// Thread name (`comm`).
    pub name: String,
    /// State letter (`R`, `S`, `D`, `T`, `t`, `Z`, …).
    pub state: String,
    /// The kernel function the thread sleeps in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wchan: Option<String>,
    /// Current system call: `running`, a syscall name, or `none` (blocked, not in a syscall).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syscall: Option<String>,
    /// User CPU time in seconds.
    pub user_seconds: f64,
    /// System CPU time in seconds.
    pub system_seconds: f64,
    /// CPU it last ran on.
    pub processor: Option<i32>,
    /// Voluntary context switches (sleeps).
    pub voluntary_switches: Option<u64>,
    /// Involuntary context switches (preemptions).
    pub involuntary_switches: Option<u64>,
    /// Kernel stack, innermost first, or why it could not be read.
    pub kernel_stack: KernelStack,
}

/// A thread's kernel stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "status")]
pub enum KernelStack {
    /// The frames (`do_epoll_wait+0x1c0/0x1f0`), innermost first.
    Read {
        /// The frames.
        frames: Vec<String>,
    },
    /// Not readable; `reason` says why and what would make it readable.
    Unavailable {
        /// Why.
        reason: String,
    },
}

impl KindSample for ThreadSample {
    const KIND: CaptureKind = CaptureKind::Threads;
}

/// The threads capture: every thread in every sample.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadsReader;

impl SampledCapture for ThreadsReader {
    type Sample = ThreadSample;

    fn read(&mut self, target: &Target, _: &Deadline) -> Result<ThreadSample, SampleError> {
        Ok(capture(target)?)
    }

    fn describe(sample: &ThreadSample) -> Option<String> {
        Some(format!(
            "{} threads",
            units::count(sample.threads.len() as u64)
        ))
    }
}

/// Reads one sample of the target's threads.
pub fn capture(target: &Target) -> Result<ThreadSample, CaptureError> {
    let tasks = target
        .process()
        .tasks()
        .map_err(|e| target.proc_error("task", WHAT, e))?;
    let ticks = procfs::ticks_per_second() as f64;
    let mut threads = Vec::new();
    let mut vanished = 0;
    for task in tasks {
        let task = match task {
            Ok(task) => task,
            Err(procfs::ProcError::NotFound(_)) => {
                vanished += 1;
                continue;
            }
            Err(e) => return Err(target.proc_error("task", WHAT, e)),
        };
        match read_thread(&task, ticks) {
            Ok(entry) => threads.push(entry),
            Err(procfs::ProcError::NotFound(_)) if target.is_alive() => vanished += 1,
            Err(e) => return Err(target.proc_error(&format!("task/{}", task.tid), WHAT, e)),
        }
    }
    if threads.is_empty() && !target.is_alive() {
        return Err(CaptureError::TargetExited {
            pid: target.pid(),
            what: WHAT,
        });
    }
    threads.sort_unstable_by_key(|t| t.tid);
    Ok(ThreadSample { threads, vanished })
}

fn read_thread(task: &Task, ticks: f64) -> procfs::ProcResult<ThreadEntry> {
    let stat = task.stat()?;
    let status = task.status().ok();
    Ok(ThreadEntry {
        tid: task.tid,
        name: stat.comm,
        state: stat.state.to_string(),
        wchan: read_text(task, "wchan")
            .ok()
            .filter(|w| !w.is_empty() && w != "0"),
        syscall: read_text(task, "syscall")
            .ok()
            .and_then(|text| describe_syscall(&text)),
        user_seconds: stat.utime as f64 / ticks,
        system_seconds: stat.stime as f64 / ticks,
        processor: stat.processor,
        voluntary_switches: status.as_ref().and_then(|s| s.voluntary_ctxt_switches),
        involuntary_switches: status.as_ref().and_then(|s| s.nonvoluntary_ctxt_switches),
        kernel_stack: read_kernel_stack(task),
    })
}

/// The trimmed text of a small task file.
struct Text(String);

impl procfs::FromRead for Text {
    fn from_read<R: Read>(mut r: R) -> procfs::ProcResult<Self> {
        let mut text = String::new();
        r.read_to_string(&mut text)?;
        Ok(Self(text.trim().to_string()))
    }
}

fn read_text(task: &Task, file: &str) -> procfs::ProcResult<String> {
    task.read::<_, Text>(file).map(|t| t.0)
}

fn read_kernel_stack(task: &Task) -> KernelStack {
    match read_text(task, "stack") {
        Ok(text) => KernelStack::Read {
            frames: parse_kernel_stack(&text),
        },
        Err(e) => KernelStack::Unavailable {
            reason: match e {
                procfs::ProcError::PermissionDenied(_) => {
                    "permission denied: kernel stacks need CAP_SYS_ADMIN, and CAP_DAC_READ_SEARCH for another user's process (root on the node)".to_string()
                }
                procfs::ProcError::NotFound(_) => {
                    "this kernel has no /proc/PID/task/TID/stack (CONFIG_STACKTRACE off), or the thread exited".to_string()
                }
                other => format!("could not read it: {other}"),
            },
        },
    }
}

/// `[<0>] do_epoll_wait+0x1c0/0x1f0` lines → `do_epoll_wait+0x1c0/0x1f0`.
pub fn parse_kernel_stack(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| match line.split_once("] ") {
            Some((_, frame)) => frame.trim().to_string(),
            None => line.trim().to_string(),
        })
        .filter(|frame| !frame.is_empty())
        .collect()
}

/// `/proc/…/syscall` text → `running`, the syscall's name, or `none`.
pub fn describe_syscall(text: &str) -> Option<String> {
    let text = text.trim();
    if text == "running" {
        return Some("running".to_string());
    }
    let number: i64 = text.split_whitespace().next()?.parse().ok()?;
    if number < 0 {
        return Some("none".to_string());
    }
    let name = i32::try_from(number)
        .ok()
        .and_then(|n| syscalls::Sysno::new(n as usize))
        .map(|sysno| sysno.name().to_string())
        .unwrap_or_else(|| format!("syscall_{number}"));
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_stack_frames_lose_their_prefix() {
        let text = "[<0>] do_epoll_wait+0x4b8/0x520\n[<0>] __x64_sys_epoll_wait+0x6e/0x110\n[<0>] do_syscall_64+0x82/0x170\n";
        assert_eq!(
            parse_kernel_stack(text),
            [
                "do_epoll_wait+0x4b8/0x520",
                "__x64_sys_epoll_wait+0x6e/0x110",
                "do_syscall_64+0x82/0x170"
            ]
        );
        assert!(parse_kernel_stack("").is_empty());
    }

    #[test]
    fn syscall_numbers_become_names() {
        let read = syscalls::Sysno::read as i64;
        assert_eq!(
            describe_syscall(&format!("{read} 0x3 0x7ffd 0x10 0x0 0x0 0x0 0x7ffd 0x7f00"))
                .as_deref(),
            Some("read")
        );
        assert_eq!(describe_syscall("running").as_deref(), Some("running"));
        assert_eq!(
            describe_syscall("-1 0x7ffd 0x7f00").as_deref(),
            Some("none")
        );
        assert_eq!(
            describe_syscall("99999 0x0").as_deref(),
            Some("syscall_99999")
        );
        assert_eq!(describe_syscall("garbage"), None);
        assert_eq!(describe_syscall(""), None);
    }
}
