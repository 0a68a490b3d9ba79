//! The `core` capture (`--capture core`, opt-in, once, last of all): an ELF core file of the live process, laid out
//! the way the kernel writes one, that gdb opens. The target is stopped only while its
//! registers are read and its memory is copied into a buffer allocated beforehand; it runs
//! again before the copy is compressed (zstd, multithreaded) into `core.zst`. When the
//! copy cannot fit in the memory procshot may use, the rest is read and compressed while
//! the target is still stopped, within `--core-max-pause`.
//!
//! [`plan`] chooses the mappings, [`notes`] lays out the PT_NOTE segment, [`copy`] copies
//! the memory, [`write`] writes the file.

pub mod copy;
pub mod notes;
pub mod plan;
pub mod write;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::captures::CaptureKind;
use crate::captures::contract::{Failure, KindData, OneShotCapture, OneShotContext, Taken};
use crate::error::{CaptureError, OutputError};
use crate::files::{FileEntry, FileList};
use crate::process::Target;
use crate::process::ptrace::{PtraceError, StoppedProcess};
use crate::units;
use copy::{Buffer, Interrupted, Memory};
use notes::{FileMapping, ProcessState, ThreadState};
use plan::{CoredumpFilter, Plan};
use write::Compression;

/// The default `--core-max-pause`.
pub const DEFAULT_MAX_PAUSE: Duration = Duration::from_secs(2);
/// procshot refuses to start a core when the output's free space is below the memory to
/// copy divided by this (zstd usually compresses process memory 4:1 or better; a core that
/// compresses worse and fills the disk ends with a clean error).
pub const ASSUMED_COMPRESSION_RATIO: u64 = 4;

/// How to take a core dump.
#[derive(Debug, Clone)]
pub struct CoreOptions {
    /// The longest the target may stay stopped.
    pub max_pause: Duration,
    /// Refuse when the core would hold more bytes of memory than this.
    pub max_bytes: Option<u64>,
    /// zstd level.
    pub zstd_level: i32,
    /// Threads that copy and compress (default: the CPUs procshot may use).
    pub threads: usize,
}

impl Default for CoreOptions {
    fn default() -> Self {
        Self {
            max_pause: DEFAULT_MAX_PAUSE,
            max_bytes: None,
            zstd_level: procshot_api::args::DEFAULT_CORE_ZSTD_LEVEL,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// The `core` object of `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CoreRecord {
    /// `core.zst`, or `core.partial.zst` when the core ends early.
    pub file: String,
    /// Size of the compressed file.
    pub bytes_compressed: u64,
    /// Bytes of the target's memory the core holds (its size once decompressed, less the
    /// headers and notes).
    pub bytes_of_memory: u64,
    /// PT_LOAD segments (one per mapping).
    pub segments: usize,
    /// Threads (one NT_PRSTATUS each).
    pub threads: usize,
    /// How long the target was stopped, in milliseconds.
    pub pause_ms: f64,
    /// Pages that could not be read and are zeros in the core.
    pub unreadable_pages: u64,
    /// The target's `coredump_filter` that chose the mappings.
    pub coredump_filter: String,
    /// zstd level.
    pub zstd_level: i32,
    /// Set when the core is partial: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_reason: Option<String>,
    /// The command that opens it.
    pub open_command: String,
}

/// A written core.
#[derive(Debug, Clone)]
pub struct CoreOutcome {
    /// For the manifest's `core` object.
    pub record: CoreRecord,
    /// For the manifest's file list.
    pub file: FileEntry,
}

/// Why no core was written.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The core would exceed `--core-max-bytes`.
    #[error(
        "core dump of pid {pid} refused: it would hold {memory} of memory, more than \
         --core-max-bytes {cap}: raise --core-max-bytes, or clear bits of \
         /proc/{pid}/coredump_filter to leave mappings out"
    )]
    TooBig {
        /// The target.
        pid: i32,
        /// What the core would hold.
        memory: String,
        /// The cap.
        cap: String,
    },
    /// The output's filesystem has too little free space.
    #[error(
        "core dump of pid {pid} refused: {dir} has {free} free, and the core needs at least \
         {need} ({data} of memory to copy, compressed at least {ratio}:1): free space there \
         or capture into another directory (--out)"
    )]
    NoSpace {
        /// The target.
        pid: i32,
        /// The output directory.
        dir: PathBuf,
        /// Free space.
        free: String,
        /// What the core needs at least.
        need: String,
        /// Memory to copy.
        data: String,
        /// The assumed ratio.
        ratio: u64,
    },
    /// The buffer for the copy could not be allocated.
    #[error(
        "cannot allocate {bytes} to copy the memory of pid {pid} into: {source} (give procshot \
         more memory: raise its cgroup's limit, or free memory on the node)"
    )]
    Allocate {
        /// The target.
        pid: i32,
        /// How much.
        bytes: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The target could not be stopped.
    #[error("cannot stop pid {pid} for its core dump: {source}")]
    Stop {
        /// The target.
        pid: i32,
        /// Why.
        #[source]
        source: PtraceError,
    },
    /// The target exited before its memory could be copied.
    #[error("pid {pid} exited before its core dump was taken ({state})")]
    TargetExited {
        /// The target.
        pid: i32,
        /// What /proc says of it now.
        state: String,
    },
    /// A file of the target could not be read.
    #[error("cannot read {path} for the core dump: {detail}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// The core file could not be written; nothing is left under a core's name.
    #[error("cannot write the core dump {path}: {source}{}; the unfinished file was removed", full_hint(.source))]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn full_hint(e: &std::io::Error) -> &'static str {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        " (the filesystem is full: free space there or capture into another directory with --out)"
    } else {
        ""
    }
}

/// The core dump capture, last of all: streams `core.zst` into the capture directory
/// while it runs, and keeps its record for the manifest.
#[derive(Debug, Clone)]
pub struct CoreReader {
    /// How to take it.
    pub options: CoreOptions,
    /// The target's executable as the manifest records it (for the command that opens the
    /// core).
    pub exe: Option<String>,
}

impl OneShotCapture for CoreReader {
    const KIND: CaptureKind = CaptureKind::Core;
    type Output = CoreRecord;

    fn take(
        self,
        target: &Target,
        context: &mut OneShotContext<'_>,
    ) -> Result<Taken<CoreRecord>, Failure> {
        let CoreOutcome { record, file } = capture(
            target,
            context.proc_root,
            context.files.dir(),
            self.exe.as_deref(),
            &self.options,
            context.progress,
        )?;
        (context.progress)(&format!(
            "core: {} ({} compressed, {} of memory, {} threads), target stopped {:.0} ms",
            file.name,
            units::bytes(record.bytes_compressed),
            units::bytes(record.bytes_of_memory),
            record.threads,
            record.pause_ms
        ));
        context.files.add(file);
        Ok(Taken {
            incomplete: record.partial_reason.clone(),
            output: record,
        })
    }
}

/// The core's file was streamed into the directory while it was taken; its record is the
/// manifest's `core` object, which `procshot report` keeps as it is.
impl KindData for CoreRecord {
    fn file(&self) -> &str {
        &self.file
    }

    fn write(&self, _: &mut FileList) -> Result<(), OutputError> {
        Ok(())
    }

    fn load(_: &Path) -> Result<Option<Self>, OutputError> {
        Ok(None)
    }
}

/// Takes a core dump of `target` into `dir` (which exists). `exe` is the target's
/// executable as the manifest records it.
pub fn capture(
    target: &Target,
    proc_root: &Path,
    dir: &Path,
    exe: Option<&str>,
    options: &CoreOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<CoreOutcome, CoreError> {
    let page_size = procfs::page_size();
    let prepared = prepare(target, dir, options, page_size, progress)?;
    let memory = Memory::open(&target.path(""), target.pid(), page_size)
        .map_err(|e| read_error(target, "mem", e))?;

    // Stopped from here until `resume`.
    let stopped =
        StoppedProcess::stop(proc_root, target.pid(), options.max_pause).map_err(|source| {
            if source.is_exited() {
                exited(target)
            } else {
                CoreError::Stop {
                    pid: target.pid(),
                    source,
                }
            }
        })?;
    let deadline = Instant::now() + options.max_pause.saturating_sub(stopped.stopped_for());
    // Registers first: once they are read, a target that dies gives a partial core.
    let threads = thread_states(target, &stopped);
    if threads.is_empty() {
        return Err(exited(target));
    }
    let process = process_state(target, &stopped);
    let auxv = std::fs::read(target.path("auxv")).unwrap_or_default();
    let (plan, segments) = lay_out(target, &memory, prepared.plan, &prepared.smaps, page_size)?;
    let mut image = copy::copy(
        segments,
        prepared.buffer,
        &memory,
        options.threads,
        deadline,
    );
    // A process killed while stopped tears its address space down: pagemap then reads as
    // untouched everywhere and the copy finds nothing to read. Its core cannot be trusted
    // to be whole.
    if image.interrupted.is_none() && !target.is_alive() {
        image.interrupted = Some(copy::Interrupted::TargetExited);
    }
    copy::keep_only_elf_headers(&mut image, &plan);
    let notes = notes::build(&process, &threads, &auxv, &file_mappings(&plan), page_size);
    let compression = Compression {
        level: options.zstd_level,
        workers: options.threads.max(2) as u32,
    };
    let write = |image: &mut _| {
        write::write(
            dir,
            &notes,
            image,
            &memory,
            deadline,
            compression,
            page_size,
        )
    };
    // The copy did not fit in the buffer: the rest is read while the target is stopped.
    let (written, pause) = if image.needs_live_reads() && image.interrupted.is_none() {
        let written = write(&mut image);
        (written, stopped.resume())
    } else {
        let pause = stopped.resume();
        (write(&mut image), pause)
    };
    let dumped = Dumped {
        written: written.map_err(|(path, source)| CoreError::Write { path, source })?,
        plan,
        image,
        threads: threads.len(),
        pause,
    };
    Ok(CoreOutcome {
        record: dumped.record(target, exe, options),
        file: FileEntry {
            name: dumped.written.name.to_string(),
            bytes: dumped.written.bytes,
            sha256: dumped.written.sha256,
        },
    })
}

/// What is settled before the target is stopped: the mappings to dump, the checks that
/// the core may be taken, and the buffer to copy into (allocated and faulted in now).
struct Prepared {
    smaps: Vec<procfs::process::MemoryMap>,
    plan: Plan,
    buffer: Buffer,
}

fn prepare(
    target: &Target,
    dir: &Path,
    options: &CoreOptions,
    page_size: u64,
    progress: &mut dyn FnMut(&str),
) -> Result<Prepared, CoreError> {
    let (smaps, filter) = read_smaps(target)?;
    let plan = Plan::new(&smaps, filter, page_size);
    check_fits(target.pid(), &plan, dir, options)?;
    let budget = plan::memory_budget();
    let wanted = plan.data_bytes + plan.data_bytes / 8 + (16 << 20);
    let capacity = wanted.min(budget) as usize;
    let buffer =
        Buffer::allocate(capacity, options.threads).map_err(|source| CoreError::Allocate {
            pid: target.pid(),
            bytes: units::bytes(capacity as u64),
            source,
        })?;
    progress(&format!(
        "core: {} of memory in {} mappings ({} to copy{}), coredump_filter {:#x}",
        units::bytes(plan.memory_bytes),
        plan.regions
            .iter()
            .filter(|r| r.dump_bytes(page_size) > 0)
            .count(),
        units::bytes(plan.data_bytes),
        if (capacity as u64) < plan.data_bytes {
            format!(
                "; only {} fits in memory, the rest is compressed while the target is stopped",
                units::bytes(capacity as u64)
            )
        } else {
            String::new()
        },
        plan.filter.0
    ));
    Ok(Prepared {
        smaps,
        plan,
        buffer,
    })
}

/// The plan and segments of the stopped target; `planned` (from before the stop) when it
/// is gone meanwhile: the copy finds it gone too and the core ends with the threads.
fn lay_out(
    target: &Target,
    memory: &Memory,
    planned: Plan,
    smaps: &[procfs::process::MemoryMap],
    page_size: u64,
) -> Result<(Plan, Vec<copy::Segment>), CoreError> {
    let laid_out = replan(target, memory, smaps, page_size).and_then(|plan| {
        let segments = copy::layout(&plan, memory).map_err(|e| match e.kind() {
            // pagemap reads short only when the address space is gone.
            std::io::ErrorKind::UnexpectedEof => exited(target),
            _ => read_error(target, "pagemap", e),
        })?;
        Ok((plan, segments))
    });
    match laid_out {
        Err(CoreError::TargetExited { .. }) => {
            let segments = copy::layout_unchecked(&planned, page_size);
            Ok((planned, segments))
        }
        other => other,
    }
}

/// The file mappings NT_FILE lists.
fn file_mappings(plan: &Plan) -> Vec<FileMapping> {
    plan.regions
        .iter()
        .filter_map(|r| {
            r.file
                .as_ref()
                .map(|(path, offset)| (r.start, r.end, *offset, path.clone()))
        })
        .collect()
}

/// A core written: what went into it and how long the target was stopped.
struct Dumped {
    written: write::Written,
    plan: Plan,
    image: copy::Image,
    threads: usize,
    pause: Duration,
}

impl Dumped {
    /// The manifest's record of it.
    fn record(&self, target: &Target, exe: Option<&str>, options: &CoreOptions) -> CoreRecord {
        let Self {
            written,
            plan,
            image,
            ..
        } = self;
        let pid = target.pid();
        let partial_reason = written.interrupted.map(|why| match why {
            Interrupted::TargetExited => format!(
                "pid {pid} exited while its memory was being copied ({}); the core holds the \
                 threads and the first {} of memory",
                target_state(target),
                units::bytes(written.memory_bytes)
            ),
            Interrupted::PauseBound => format!(
                "the pause bound of {} (--core-max-pause) passed after {} of {} of memory",
                humantime::format_duration(options.max_pause),
                units::bytes(written.memory_bytes),
                units::bytes(image.memory_bytes().max(plan.memory_bytes))
            ),
        });
        CoreRecord {
            file: written.name.to_string(),
            bytes_compressed: written.bytes,
            bytes_of_memory: written.memory_bytes,
            segments: written.segments,
            threads: self.threads,
            pause_ms: self.pause.as_secs_f64() * 1000.0,
            unreadable_pages: image.unreadable_pages,
            coredump_filter: format!("{:#x}", plan.filter.0),
            zstd_level: options.zstd_level,
            partial_reason,
            open_command: format!(
                "zstd -d {} -o core && gdb {} core",
                written.name,
                exe.map_or_else(|| format!("/proc/{pid}/exe"), shell_quote)
            ),
        }
    }
}

/// The plan again, once the target is stopped: from its maps with the flags and counters
/// of `smaps` (read before the stop), or from smaps again when a mapping changed. An
/// anonymous mapping left out because it was never written is checked in pagemap.
fn replan(
    target: &Target,
    memory: &Memory,
    smaps: &[procfs::process::MemoryMap],
    page_size: u64,
) -> Result<Plan, CoreError> {
    let maps = target
        .process()
        .maps()
        .map_err(|e| proc_error(target, "maps", e))?;
    let filter = read_filter(target);
    let mut plan = match plan::with_smaps_of(maps.0, smaps) {
        Some(maps) => Plan::new(&maps, filter, page_size),
        None => {
            let (smaps, filter) = read_smaps(target)?;
            Plan::new(&smaps, filter, page_size)
        }
    };
    for region in &mut plan.regions {
        if region.anonymous && region.write && region.extent == plan::Extent::Nothing {
            let populated = memory
                .populated(region.start, region.end)
                .map_err(|e| read_error(target, "pagemap", e))?;
            if populated.iter().any(|&p| p) {
                region.extent = plan::Extent::Whole;
            }
        }
    }
    Ok(plan)
}

fn proc_error(target: &Target, file: &'static str, e: procfs::ProcError) -> CoreError {
    match target.proc_error(file, "core", e) {
        CaptureError::TargetExited { .. } => exited(target),
        other => CoreError::Read {
            path: target.path(file),
            detail: other.to_string(),
        },
    }
}

fn read_filter(target: &Target) -> CoredumpFilter {
    std::fs::read_to_string(target.path("coredump_filter"))
        .ok()
        .and_then(|t| CoredumpFilter::parse(&t))
        .unwrap_or(CoredumpFilter::DEFAULT)
}

/// The target's smaps and coredump_filter now.
fn read_smaps(
    target: &Target,
) -> Result<(Vec<procfs::process::MemoryMap>, CoredumpFilter), CoreError> {
    let maps = target
        .process()
        .smaps()
        .map_err(|e| proc_error(target, "smaps", e))?;
    Ok((maps.0, read_filter(target)))
}

/// Refuses a core over the cap or one that cannot fit on the output's filesystem.
fn check_fits(pid: i32, plan: &Plan, dir: &Path, options: &CoreOptions) -> Result<(), CoreError> {
    if let Some(cap) = options.max_bytes
        && plan.memory_bytes > cap
    {
        return Err(CoreError::TooBig {
            pid,
            memory: units::bytes(plan.memory_bytes),
            cap: units::bytes(cap),
        });
    }
    let free = plan::free_space(dir).map_err(|source| CoreError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let need = plan.data_bytes / ASSUMED_COMPRESSION_RATIO + (1 << 20);
    if free < need {
        return Err(CoreError::NoSpace {
            pid,
            dir: dir.to_path_buf(),
            free: units::bytes(free),
            need: units::bytes(need),
            data: units::bytes(plan.data_bytes),
            ratio: ASSUMED_COMPRESSION_RATIO,
        });
    }
    Ok(())
}

/// Registers and counters of every stopped thread, the main thread first.
fn thread_states(target: &Target, stopped: &StoppedProcess) -> Vec<ThreadState> {
    let ticks = procfs::ticks_per_second().max(1);
    let mut threads: Vec<ThreadState> = stopped
        .threads()
        .iter()
        .filter_map(|tracee| {
            let registers = tracee.registers().ok()?;
            let task = target.process().task_from_tid(tracee.tid()).ok();
            let stat = task.as_ref().and_then(|t| t.stat().ok());
            let status = task.as_ref().and_then(|t| t.status().ok());
            Some(ThreadState {
                tid: tracee.tid(),
                registers,
                fp_registers: tracee.fp_registers().ok(),
                user_us: stat.as_ref().map_or(0, |s| s.utime * 1_000_000 / ticks),
                system_us: stat.as_ref().map_or(0, |s| s.stime * 1_000_000 / ticks),
                pending: status.as_ref().map_or(0, |s| s.sigpnd),
                blocked: status.as_ref().map_or(0, |s| s.sigblk),
            })
        })
        .collect();
    threads.sort_by_key(|t| (t.tid != target.pid(), t.tid));
    threads
}

/// What NT_PRPSINFO and NT_SIGINFO say of the process.
fn process_state(target: &Target, stopped: &StoppedProcess) -> ProcessState {
    let process = target.process();
    let stat = process.stat().ok();
    let status = process.status().ok();
    let siginfo = stopped
        .threads()
        .iter()
        .find(|t| t.tid() == target.pid())
        .and_then(|t| t.siginfo().ok())
        .map(|info| {
            // SAFETY: siginfo_t is 128 bytes of plain data filled in by the kernel.
            unsafe {
                std::slice::from_raw_parts(
                    (&raw const info).cast::<u8>(),
                    size_of::<libc::siginfo_t>(),
                )
            }
            .to_vec()
        })
        .unwrap_or_else(|| vec![0; size_of::<libc::siginfo_t>()]);
    ProcessState {
        pid: target.pid(),
        ppid: stat.as_ref().map_or(0, |s| s.ppid),
        pgrp: stat.as_ref().map_or(0, |s| s.pgrp),
        sid: stat.as_ref().map_or(0, |s| s.session),
        uid: status.as_ref().map_or(0, |s| s.ruid),
        gid: status.as_ref().map_or(0, |s| s.rgid),
        // The state before the stop: the threads are all in a tracing stop now.
        state: 'S',
        nice: stat.as_ref().map_or(0, |s| s.nice),
        flags: stat.as_ref().map_or(0, |s| u64::from(s.flags)),
        comm: stat.as_ref().map(|s| s.comm.clone()).unwrap_or_default(),
        args: process.cmdline().map(|a| a.join(" ")).unwrap_or_default(),
        siginfo,
    }
}

fn read_error(target: &Target, file: &str, e: std::io::Error) -> CoreError {
    if !target.is_alive() {
        return exited(target);
    }
    CoreError::Read {
        path: target.path(file),
        detail: e.to_string(),
    }
}

fn exited(target: &Target) -> CoreError {
    CoreError::TargetExited {
        pid: target.pid(),
        state: target_state(target),
    }
}

/// What /proc says of the target now, in words.
fn target_state(target: &Target) -> String {
    match target.process().stat() {
        Ok(stat) if stat.state == 'Z' => "it is a zombie now".into(),
        // Found gone, yet /proc still shows a state: its threads are still exiting.
        Ok(stat) => format!("it is exiting (state {})", stat.state),
        Err(_) => "it is gone".into(),
    }
}

/// Quotes a path for a shell command line when it needs it.
fn shell_quote(path: &str) -> String {
    if path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:@".contains(c))
    {
        path.to_string()
    } else {
        format!("'{}'", path.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn its_files_are_its_kinds_files() {
        assert_eq!(
            CaptureKind::Core.files(),
            [write::CORE_FILE, write::PARTIAL_CORE_FILE]
        );
    }
}
