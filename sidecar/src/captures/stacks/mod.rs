//! The `stacks` capture: the native stack of every thread of the target, symbolized from
//! its own ELF files, written as `stacks.json` (every thread) and `stacks.txt` (identical
//! stacks grouped, the biggest groups first).
//!
//! How, in order:
//! 1. read `/proc/PID/maps`, open every module's file from the target's view and load its
//!    unwind information ([`modules`], [`unwind`]), before anything is stopped;
//! 2. one thread at a time: seize, interrupt, wait at most [`StacksOptions::max_stop`] for
//!    the stop, copy the registers and the top of the stack, detach ([`collect`]), then
//!    unwind the copy while the thread runs again; a thread that does not stop in time is
//!    tried once more after the others, then recorded with the reason and left running;
//! 3. check that no thread of the target is left in a tracing stop;
//! 4. symbolize every distinct address once ([`symbolize`]) and write ([`output`]).
//!
//! No thread is ever stopped while another is: each is stopped for the time of one
//! register read and one copy of at most [`collect::MAX_STACK_COPY`] bytes (tens of
//! microseconds), measured and recorded per thread.

pub mod collect;
pub mod modules;
pub mod output;
pub mod symbolize;
pub mod unwind;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::captures::CaptureKind;
use crate::captures::contract::{
    Deadline, Failure, KindData, OneShotCapture, OneShotContext, SCHEMA_VERSION, Taken,
};
use crate::error::{CaptureError, OutputError};
use crate::files::{self, FileList};
use crate::process::Target;
use crate::process::ptrace::{self, PtraceError};
use collect::SnapshotError;
use modules::{AddressSpace, OpenedThrough};
use symbolize::ModuleSymbols;
use unwind::{StackUnwinder, UnwindMethod, Unwound};

/// `stacks.txt`: identical stacks grouped, for people.
pub const TEXT_FILE: &str = "stacks.txt";

/// The default bound on how long procshot waits for one thread to stop.
pub const DEFAULT_MAX_STOP: Duration = Duration::from_millis(10);

/// How the stacks capture may touch the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StacksOptions {
    /// How long to wait for one thread to reach its stop; a thread that has not stopped by
    /// then is left running and recorded without a stack.
    pub max_stop: Duration,
}

impl Default for StacksOptions {
    fn default() -> Self {
        Self {
            max_stop: DEFAULT_MAX_STOP,
        }
    }
}

/// `stacks.json`: every thread's native stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StacksCapture {
    /// Layout version.
    pub schema_version: u32,
    /// The target's pid.
    pub pid: i32,
    /// When the capture started.
    pub taken_at: DateTime<Utc>,
    /// Milliseconds the whole capture took (maps, stops, unwinding, symbols).
    pub wall_ms: f64,
    /// The bound on waiting for a thread to stop, in milliseconds.
    pub max_stop_ms: f64,
    /// The longest time one thread was held stopped, in milliseconds (from the moment
    /// procshot saw it stopped to the end of its detach).
    pub longest_stop_ms: f64,
    /// Why the capture is incomplete (the target exited, the deadline passed), if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
    /// The modules (ELF files with code) and how each was opened.
    pub modules: Vec<ModuleRecord>,
    /// Every thread, by tid.
    pub threads: Vec<ThreadStack>,
}

impl KindData for StacksCapture {
    fn file(&self) -> &str {
        CaptureKind::Stacks.file()
    }

    fn write(&self, files: &mut FileList) -> Result<(), OutputError> {
        files.json(CaptureKind::Stacks.file(), self, false)?;
        files.bytes(TEXT_FILE, output::text(self).as_bytes())
    }

    fn load(dir: &Path) -> Result<Option<Self>, OutputError> {
        files::read_json_if_present(dir, CaptureKind::Stacks.file())
    }
}

/// The stacks capture, once after the samples.
#[derive(Debug, Clone, Default)]
pub struct StacksReader {
    /// How it may stop the target's threads.
    pub options: StacksOptions,
}

impl OneShotCapture for StacksReader {
    const KIND: CaptureKind = CaptureKind::Stacks;
    type Output = StacksCapture;

    fn take(
        self,
        target: &Target,
        context: &mut OneShotContext<'_>,
    ) -> Result<Taken<StacksCapture>, Failure> {
        if context.cut_short && !target.is_alive() {
            return Err(StacksError::ExitedBefore { pid: target.pid() }.into());
        }
        let stacks = capture(target, context.proc_root, &self.options, &context.deadline)?;
        (context.progress)(&format!(
            "stacks: {} threads in {:.0} ms, longest stop {:.3} ms",
            stacks.threads.len(),
            stacks.wall_ms,
            stacks.longest_stop_ms
        ));
        Ok(Taken {
            incomplete: stacks.incomplete.clone(),
            output: stacks,
        })
    }
}

/// One module of the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleRecord {
    /// The path in the target's mount namespace.
    pub path: String,
    /// How procshot reached the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_through: Option<OpenedThrough>,
    /// Why its frames have no unwind information or symbols, if so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One thread's stack, or why it has none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadStack {
    /// Thread id.
    pub tid: i32,
    /// Thread name (`comm`).
    pub name: String,
    /// Scheduler state before it was stopped (`S`, `R`, `D`, …).
    pub state: String,
    /// How long it was stopped, in milliseconds; absent when it was not stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_ms: Option<f64>,
    /// Innermost first.
    pub frames: Vec<Frame>,
    /// Why the walk ended before the outermost frame, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<String>,
    /// Why the thread has no stack (it did not stop within the bound, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Frame {
    /// The instruction pointer (innermost frame) or return address, in hex.
    pub address: String,
    /// The function, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    /// `address` minus the function's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// The file name of the module (`libc.so.6`), or a special mapping (`[vdso]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Source file, when the module has DWARF line information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Source line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// How the frame was found.
    pub unwind: UnwindMethod,
}

/// Why the stacks capture failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum StacksError {
    /// The target was gone when the capture was to start (the samples were cut short by
    /// its exit).
    #[error("pid {pid} exited before its stacks were read")]
    ExitedBefore {
        /// The target.
        pid: i32,
    },
    /// Reading the target's memory map failed.
    #[error(transparent)]
    Target(#[from] CaptureError),
    /// Threads are still stopped after the capture (nothing procshot did should leave them
    /// so; another tracer may hold them).
    #[error(
        "threads {tids:?} of pid {pid} are still in a tracing stop after the stacks capture; \
         check TracerPid in /proc/{pid}/task/TID/status for another debugger"
    )]
    LeftStopped {
        /// The target.
        pid: i32,
        /// The threads in state `t`.
        tids: Vec<i32>,
    },
    /// Not one thread could be read.
    #[error("no stack of pid {pid} could be read: {reason}")]
    NoStacks {
        /// The target.
        pid: i32,
        /// Why the first thread failed.
        reason: String,
    },
}

/// Captures the native stack of every thread of `target` (see the module doc). Gives up
/// on the threads not reached by `deadline`, marking the capture incomplete.
pub fn capture(
    target: &Target,
    proc_root: &Path,
    options: &StacksOptions,
    deadline: &Deadline,
) -> Result<StacksCapture, StacksError> {
    let deadline = deadline.at();
    let started = Instant::now();
    let taken_at = Utc::now();
    let maps = target
        .process()
        .maps()
        .map_err(|e| target.proc_error("maps", "the stacks", e))?;
    let space = AddressSpace::new(&target.path(""), &maps.0);
    // Parsing the modules' symbols and DWARF (decompressing it, often) takes as long as
    // reading a thousand threads: do it on another core meanwhile.
    // The threads are read (and every ptrace request made) on one thread of their own.
    let (read, symbols) = std::thread::scope(|scope| {
        let reader = scope.spawn(|| read_threads(target, proc_root, options, deadline, &space));
        let symbols = ModuleSymbols::load(&space);
        let read = reader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (read, symbols)
    });
    let read = read?;
    Ok(StacksCapture {
        taken_at,
        wall_ms: millis(started.elapsed()),
        ..finish(&space, read, &symbols, options)
    })
}

/// What [`read_threads`] read: every thread with its unwound stack (or the reason it has
/// none), and the modules whose unwind tables could not be read.
struct ThreadsRead {
    pid: i32,
    threads: Vec<(ThreadStack, Option<Unwound>)>,
    incomplete: Option<String>,
    unwind_failures: Vec<(usize, String)>,
}

/// Stops, copies and unwinds every thread, one at a time (see [`capture`]), then checks
/// that none is left stopped.
fn read_threads(
    target: &Target,
    proc_root: &Path,
    options: &StacksOptions,
    deadline: Instant,
    space: &AddressSpace,
) -> Result<ThreadsRead, StacksError> {
    let pid = target.pid();
    let (mut unwinder, unwind_failures) = StackUnwinder::new(space);
    let tasks = ptrace::TaskDir::open(proc_root, pid)
        .map_err(|e| target.io_error("task", "the stacks", e))?;
    let tids = tasks
        .tids()
        .map_err(|e| target.io_error("task", "the stacks", e))?;

    let mut threads = Vec::with_capacity(tids.len());
    let mut incomplete = None;
    let mut exited = 0;
    // A thread that does not stop within the bound is tried once more after the others
    // (on a busy machine it may just not have been scheduled in time); a second miss is
    // recorded with the reason.
    let mut retry = Vec::new();
    'passes: for pass in 0..2 {
        let pending = if pass == 0 {
            tids.clone()
        } else {
            std::mem::take(&mut retry)
        };
        for tid in pending {
            if Instant::now() >= deadline {
                incomplete = Some(format!(
                    "the deadline passed after {} of {} threads",
                    threads.len(),
                    tids.len()
                ));
                break 'passes;
            }
            let Some((name, state)) = tasks.name_and_state(tid) else {
                exited += 1;
                continue;
            };
            let mut thread = ThreadStack {
                tid,
                name,
                state: state.to_string(),
                stop_ms: None,
                frames: Vec::new(),
                truncated: None,
                error: None,
            };
            match collect::snapshot(pid, tid, options.max_stop, space) {
                Ok(snapshot) => {
                    let unwound = unwinder.unwind(space, &snapshot);
                    thread.stop_ms = Some(millis(snapshot.stopped_for));
                    thread.truncated = unwound.truncated.clone();
                    threads.push((thread, Some(unwound)));
                }
                Err(SnapshotError::Ptrace(e)) if e.is_exited() => exited += 1,
                Err(SnapshotError::Ptrace(PtraceError::StopTimedOut { .. })) if pass == 0 => {
                    retry.push(tid);
                }
                Err(e) => {
                    thread.error = Some(e.to_string());
                    threads.push((thread, None));
                }
            }
        }
    }
    threads.sort_by_key(|(thread, _)| thread.tid);

    let left = tasks.in_tracing_stop();
    if !left.is_empty() {
        return Err(StacksError::LeftStopped { pid, tids: left });
    }
    if incomplete.is_none() && (!target.is_alive() || (exited > 0 && dies_soon(target))) {
        incomplete = Some(format!(
            "pid {pid} exited during the capture; {} of {} threads were read",
            threads.iter().filter(|(_, u)| u.is_some()).count(),
            tids.len()
        ));
    }
    if incomplete.is_none()
        && !threads.is_empty()
        && threads.iter().all(|(_, unwound)| unwound.is_none())
    {
        let reason = threads[0].0.error.clone().unwrap_or_default();
        return Err(StacksError::NoStacks { pid, reason });
    }

    Ok(ThreadsRead {
        pid,
        threads,
        incomplete,
        unwind_failures,
    })
}

/// Symbolizes the threads read and assembles the capture.
fn finish(
    space: &AddressSpace,
    read: ThreadsRead,
    module_symbols: &ModuleSymbols,
    options: &StacksOptions,
) -> StacksCapture {
    let ThreadsRead {
        pid,
        threads,
        incomplete,
        unwind_failures,
    } = read;
    let lookups: BTreeSet<u64> = threads
        .iter()
        .filter_map(|(_, u)| u.as_ref())
        .flat_map(|u| u.frames.iter().map(|(f, _)| f.address_for_lookup()))
        .collect();
    let (symbols, symbol_failures) = module_symbols.symbolize(space, lookups);

    let threads = threads
        .into_iter()
        .map(|(mut thread, unwound)| {
            if let Some(unwound) = unwound {
                thread.frames = frames(space, &symbols, &unwound);
            }
            thread
        })
        .collect::<Vec<_>>();
    let modules = space
        .modules
        .iter()
        .enumerate()
        .map(|(index, module)| ModuleRecord {
            path: module.path.clone(),
            opened_through: module.file.as_ref().ok().map(|(_, how)| *how),
            error: module
                .file
                .as_ref()
                .err()
                .cloned()
                .or_else(|| {
                    unwind_failures
                        .iter()
                        .find(|(i, _)| *i == index)
                        .map(|(_, e)| e.clone())
                })
                .or_else(|| symbol_failures.get(&index).cloned()),
        })
        .collect();
    StacksCapture {
        schema_version: SCHEMA_VERSION,
        pid,
        taken_at: Utc::now(),
        wall_ms: 0.0,
        max_stop_ms: millis(options.max_stop),
        longest_stop_ms: threads.iter().filter_map(|t| t.stop_ms).fold(0.0, f64::max),
        incomplete,
        modules,
        threads,
    }
}

/// Whether a target whose threads vanished during the capture is on its way out: a killed
/// process loses its threads one by one before it becomes a zombie, so give it a moment.
fn dies_soon(target: &Target) -> bool {
    let until = Instant::now() + Duration::from_millis(100);
    while Instant::now() < until {
        if !target.is_alive() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

fn frames(
    space: &AddressSpace,
    symbols: &std::collections::HashMap<u64, symbolize::Symbol>,
    unwound: &Unwound,
) -> Vec<Frame> {
    unwound
        .frames
        .iter()
        .map(|(address, method)| {
            let lookup = address.address_for_lookup();
            let mapping = space.mapping_at(lookup);
            let module = mapping.and_then(|m| match m.module {
                Some(index) => Some(space.modules[index].name().to_string()),
                None => m.special.map(str::to_string),
            });
            let symbol = symbols.get(&lookup);
            Frame {
                address: format!("{:#x}", address.address()),
                symbol: symbol.and_then(|s| s.name.clone()),
                // The symbol's offset is that of the lookup address; the frame shows the
                // return address itself.
                offset: symbol
                    .and_then(|s| s.offset)
                    .map(|o| o + (address.address() - lookup)),
                module,
                file: symbol.and_then(|s| s.file.clone()),
                line: symbol.and_then(|s| s.line),
                unwind: *method,
            }
        })
        .collect()
}

fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn its_files_are_its_kinds_files() {
        assert_eq!(CaptureKind::Stacks.files(), ["stacks.json", TEXT_FILE]);
    }
}
