//! A Go program read from outside: its build info ([`buildinfo`], any Go binary), and its
//! goroutines and heap statistics read straight from its memory, with no pprof endpoint
//! and no DWARF: for linux/amd64 programs built with Go 1.19 and 1.21–1.27, stripped or
//! not, PIE or not, with or without cgo. The goroutines and memory captures use it; it
//! knows nothing of them (its goroutines are the runtime's, named as its traceback names
//! them; the goroutines capture groups them).
//!
//! Layers, each using only those above it:
//! * [`memory`]: the [`Memory`] trait (a live process through `process_vm_readv`; a core
//!   dump's segments can implement it too);
//! * [`buildinfo`], [`binary`], [`pclntab`]: the executable, its build info and its
//!   function table;
//! * [`layout`]: the runtime's struct layouts per Go release (unknown ones are refused);
//! * [`locate`], [`runtime`]: the runtime globals found from code and content;
//! * [`frames`]: unwinding and naming stacks as the runtime's traceback does;
//! * [`goroutines`] and [`heap`]: the reads themselves, validated;
//! * this module: a [`GoReader`] on a live process, reading every goroutine, optionally
//!   with every thread stopped for a bounded time.
//!
//! The program is never written to. By default it is not stopped either: reads race with
//! it and are validated (see [`goroutines`]); what does not validate is counted, not
//! guessed.

pub mod binary;
pub mod buildinfo;
pub mod frames;
pub mod goroutines;
pub mod heap;
pub mod layout;
pub mod locate;
pub mod memory;
pub mod pclntab;
pub mod runtime;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use frames::{Frame, Stack};
pub use goroutines::{Goroutine, GoroutineRead, ReadError};
pub use heap::{GoHeap, HeapError};
pub use memory::{Memory, MemoryError, ProcessMemory};
pub use runtime::{GoRuntime, RuntimeError};

use crate::process::ptrace::{PtraceError, StoppedProcess, threads_in_tracing_stop};
use goroutines::ReadOptions;

/// Times a goroutine whose reads disagree is read again.
pub const RETRIES: u32 = 3;

/// Why the goroutines of a process could not be read from its memory.
#[derive(Debug, thiserror::Error)]
pub enum GoMemError {
    /// Its runtime could not be located.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The read failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The auxiliary vector could not be read.
    #[error("cannot read {path}: {detail}")]
    Auxv {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
    /// The threads could not be stopped for an exact read.
    #[error("the threads of pid {pid} could not be stopped (--goroutines-max-stop): {source}")]
    Stop {
        /// The target.
        pid: i32,
        /// Why.
        #[source]
        source: PtraceError,
    },
    /// A thread was still in a tracing stop after the detach.
    #[error(
        "threads {tids:?} of pid {pid} were left in a tracing stop after the goroutines were read"
    )]
    LeftStopped {
        /// The target.
        pid: i32,
        /// The threads.
        tids: Vec<i32>,
    },
}

/// One read of the goroutines.
#[derive(Debug, Clone)]
pub struct MemoryGoroutines {
    /// What was read.
    pub read: GoroutineRead,
    /// How long every thread was stopped (`None`: not stopped).
    pub stopped: Option<Duration>,
}

/// The Go runtime of one live process, located once and read in every sample.
#[derive(Debug)]
pub struct GoReader {
    proc_root: PathBuf,
    pid: i32,
    memory: ProcessMemory,
    runtime: GoRuntime,
}

impl GoReader {
    /// Locates the runtime of `pid` (under `proc_root`): its executable through
    /// `PID/exe`, where it was loaded through `PID/auxv`.
    pub fn open(proc_root: &Path, pid: i32) -> Result<Self, GoMemError> {
        let dir = proc_root.join(pid.to_string());
        let auxv_path = dir.join("auxv");
        let auxv = std::fs::read(&auxv_path).map_err(|e| GoMemError::Auxv {
            path: auxv_path.display().to_string(),
            detail: match e.kind() {
                // 0400 and the target's user's, like a task's stack file.
                std::io::ErrorKind::PermissionDenied => format!(
                    "{e}: it is readable only by the target's user; run procshot as that \
                     user, or as root with CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE"
                ),
                _ => e.to_string(),
            },
        })?;
        let entry = auxv_entry(&auxv).ok_or_else(|| GoMemError::Auxv {
            path: auxv_path.display().to_string(),
            detail: "it has no AT_ENTRY".into(),
        })?;
        let memory = ProcessMemory::new(pid);
        let runtime = GoRuntime::open(&dir.join("exe"), &memory, entry)?;
        Ok(Self {
            proc_root: proc_root.to_path_buf(),
            pid,
            memory,
            runtime,
        })
    }

    /// The program's Go version (`go1.21.13`).
    pub fn go_version(&self) -> &str {
        &self.runtime.version
    }

    /// The located runtime.
    pub fn runtime(&self) -> &GoRuntime {
        &self.runtime
    }

    /// Reads every goroutine without stopping the program.
    pub fn goroutines(&self) -> Result<MemoryGoroutines, GoMemError> {
        let options = ReadOptions {
            retries: RETRIES,
            now_ns: Some(monotonic_now()),
            registers: HashMap::new(),
        };
        let read = goroutines::read(&self.runtime, &self.memory, &options)?;
        Ok(MemoryGoroutines {
            read,
            stopped: None,
        })
    }

    /// Reads every goroutine with every thread stopped (ptrace), for an exact snapshot in
    /// which running goroutines are unwound from their threads' registers. Waits at most
    /// `max_stop` for the threads to stop; the read while stopped takes what the memory
    /// takes to copy (about 70 ms for 100,000 goroutines), and the threads are detached
    /// on every path.
    pub fn goroutines_stopped(&self, max_stop: Duration) -> Result<MemoryGoroutines, GoMemError> {
        let stopped =
            StoppedProcess::stop(&self.proc_root, self.pid, max_stop).map_err(|source| {
                GoMemError::Stop {
                    pid: self.pid,
                    source,
                }
            })?;
        let began = Instant::now();
        let registers = stopped
            .threads()
            .iter()
            .filter_map(|t| Some((t.tid(), t.registers().ok()?)))
            .map(|(tid, r)| (tid, (r.rip, r.rsp)))
            .collect();
        let options = ReadOptions {
            retries: 0,
            now_ns: Some(monotonic_now()),
            registers,
        };
        let read = goroutines::read(&self.runtime, &self.memory, &options);
        let held = stopped.resume().max(began.elapsed());
        let left = threads_in_tracing_stop(&self.proc_root, self.pid);
        if !left.is_empty() {
            return Err(GoMemError::LeftStopped {
                pid: self.pid,
                tids: left,
            });
        }
        Ok(MemoryGoroutines {
            read: read?,
            stopped: Some(held),
        })
    }

    /// Reads the heap statistics.
    pub fn heap(&self) -> Result<GoHeap, HeapError> {
        heap::read(&self.runtime, &self.memory)
    }
}

/// CLOCK_MONOTONIC now, in nanoseconds: the clock of the runtime's `nanotime`.
fn monotonic_now() -> i64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    now.tv_sec * 1_000_000_000 + now.tv_nsec
}

/// `AT_ENTRY` of an auxiliary vector (pairs of native words).
fn auxv_entry(auxv: &[u8]) -> Option<u64> {
    const AT_ENTRY: u64 = 9;
    auxv.chunks_exact(16).find_map(|pair| {
        let key = u64::from_le_bytes(pair[..8].try_into().ok()?);
        (key == AT_ENTRY).then(|| u64::from_le_bytes(pair[8..].try_into().expect("8 bytes")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_entry_point_is_in_our_auxv() {
        let auxv = std::fs::read("/proc/self/auxv").unwrap();
        assert!(auxv_entry(&auxv).unwrap() > 0);
        assert_eq!(auxv_entry(&[0; 32]), None);
    }
}
