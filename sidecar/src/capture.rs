//! `procshot capture`: opens the target, takes the requested samples at a fixed interval
//! under a deadline, then the one-shot captures (native stacks), and writes the capture
//! directory. A target that exits (or a deadline that passes) after at least one sample
//! gives a partial capture marked as such; so does a capture that fails on its own (a
//! pprof endpoint that does not answer, a thread that will not stop) while the others go
//! on.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::analysis::Summary;
use crate::artifacts::{self, CaptureRun, GoroutinesRecord, GoroutinesSource, Manifest, Tool};
use crate::core::{self, CoreOptions, CoreOutcome};
use crate::error::{CaptureError, OutputError};
use crate::gomem::GoReader;
use crate::goroutines::{self, GoroutineSample, PprofOptions};
use crate::samples::{CaptureData, SCHEMA_VERSION, Sample, Series};
use crate::stacks::{self, StacksOptions};
use crate::target::Target;
use crate::{fds, memory, threads, units};

/// A kind of capture: sampled ones run in every sample, one-shot ones once, after the last
/// sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CaptureKind {
    /// The fd table.
    Fds,
    /// The threads.
    Threads,
    /// Memory and cgroup memory.
    Memory,
    /// Go goroutines (grouped dump every sample) and the heap profile (once), from pprof.
    Goroutines,
    /// The native stack of every thread (one-shot, after the last sample).
    Stacks,
    /// An ELF core dump (one-shot, last of all; opt-in).
    Core,
}

impl CaptureKind {
    /// Every kind: the sampled ones in the order a sample reads them, then the one-shot
    /// ones in the order they run.
    pub const ALL: [CaptureKind; 6] = [
        Self::Fds,
        Self::Threads,
        Self::Memory,
        Self::Goroutines,
        Self::Stacks,
        Self::Core,
    ];

    /// The name used on the command line and in the manifest.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fds => "fds",
            Self::Threads => "threads",
            Self::Memory => "memory",
            Self::Goroutines => "goroutines",
            Self::Stacks => "stacks",
            Self::Core => "core",
        }
    }

    /// Whether it runs in every sample (else once, after the last sample).
    pub fn is_sampled(self) -> bool {
        !matches!(self, Self::Stacks)
    }

    fn file(self) -> &'static str {
        match self {
            Self::Fds => artifacts::FDS_FILE,
            Self::Threads => artifacts::THREADS_FILE,
            Self::Memory => artifacts::MEMORY_FILE,
            Self::Goroutines => artifacts::GOROUTINES_FILE,
            Self::Stacks => artifacts::STACKS_FILE,
            Self::Core => core::write::CORE_FILE,
        }
    }
}

impl fmt::Display for CaptureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CaptureKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
                format!("unknown capture {s:?}: choose from {}", names.join(", "))
            })
    }
}

/// What to capture, from where, into where.
#[derive(Debug, Clone)]
pub struct CaptureOptions {
    /// The target's pid in `proc_root`.
    pub pid: i32,
    /// The capture directory (must be absent or empty).
    pub out: PathBuf,
    /// How many samples (≥ 1).
    pub samples: usize,
    /// Time between the starts of two samples.
    pub interval: Duration,
    /// What to capture in every sample.
    pub captures: Vec<CaptureKind>,
    /// The whole capture ends by this long after it starts; samples not taken by then are
    /// skipped and the capture is marked partial.
    pub deadline: Duration,
    /// Where procfs is mounted (`/proc`, or a node's `/proc` mounted elsewhere).
    pub proc_root: PathBuf,
    /// Where cgroup filesystems are mounted, when not found from mountinfo.
    pub cgroup_root: Option<PathBuf>,
    /// The Go pprof endpoint, for the goroutines capture; without it, goroutines (and the
    /// Go heap statistics, into memory.json) are read from the program's memory.
    pub go_pprof: Option<PprofOptions>,
    /// Reading goroutines from memory: stop every thread for an exact read, waiting at
    /// most this long for them to stop (`None`: never stop the program).
    pub goroutines_max_stop: Option<Duration>,
    /// How the stacks capture may stop the target's threads.
    pub stacks: StacksOptions,
    /// How to take a core dump, when `captures` has [`CaptureKind::Core`].
    pub core: CoreOptions,
}

impl CaptureOptions {
    /// The default deadline for a capture: the sampling time plus one minute.
    pub fn default_deadline(samples: usize, interval: Duration) -> Duration {
        interval * samples.saturating_sub(1) as u32 + Duration::from_secs(60)
    }
}

/// A finished (possibly partial) capture.
#[derive(Debug)]
pub struct CaptureOutcome {
    /// The capture directory.
    pub dir: PathBuf,
    /// What `summary.json` says.
    pub summary: Summary,
    /// How many samples were taken.
    pub samples_taken: usize,
}

/// Why a capture did not produce a directory.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Reading the target failed before any sample was taken.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// The output directory could not be used.
    #[error(transparent)]
    Output(#[from] OutputError),
}

impl RunError {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Capture(e) => e.exit_code(),
            Self::Output(e) => e.exit_code(),
        }
    }
}

/// Runs a capture. `progress` receives one human line per step (the CLI prints them on
/// stderr).
pub fn run(
    options: &CaptureOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<CaptureOutcome, RunError> {
    artifacts::check_output_dir(&options.out)?;
    let target = Target::open(&options.proc_root, options.pid)?;
    let identity = target.identity()?;
    progress(&format!(
        "capturing pid {} ({}): {} sample(s) {} apart, {}",
        options.pid,
        identity.name,
        options.samples,
        humantime::format_duration(options.interval),
        options
            .captures
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    ));

    let start = Instant::now();
    let started_at = Utc::now();
    let go_build_info = match goroutines::buildinfo::read(&target.path("exe")) {
        Ok(info) => info,
        Err(e) => {
            progress(&format!("no Go build info: {e}"));
            None
        }
    };
    if let Some(info) = &go_build_info {
        progress(&format!(
            "Go program: {}, main module {}, {} dependencies",
            info.go_version,
            info.main.as_ref().map_or("?", |m| m.path.as_str()),
            info.deps.len()
        ));
    }

    let mut data = CaptureData::default();
    let mut partial = None;
    let mut goroutines_error = None;
    let mut go = GoSource::open(&target, options, &mut goroutines_error, progress);
    let mut taken = 0;
    // With only one-shot captures, one (empty) sample stands for the capture's instant.
    let samples = if options.captures.iter().any(|k| k.is_sampled()) {
        options.samples
    } else {
        1
    };
    for index in 0..samples {
        let due = options.interval * index as u32;
        if due > options.deadline || start.elapsed() > options.deadline {
            partial = Some(format!(
                "the deadline of {} passed after {index} of {} samples",
                humantime::format_duration(options.deadline),
                options.samples
            ));
            break;
        }
        std::thread::sleep(due.saturating_sub(start.elapsed()));
        match take_sample(
            &target,
            options,
            index,
            start,
            &mut data,
            &mut goroutines_error,
            &mut go,
        ) {
            Ok(line) => {
                taken += 1;
                progress(&format!("sample {}/{}: {line}", index + 1, options.samples));
            }
            Err(CaptureError::TargetExited { pid, what }) if taken > 0 => {
                partial = Some(format!(
                    "pid {pid} exited while {what} was being read, after {taken} of {} samples",
                    options.samples
                ));
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut heap = None;
    if let (Some(pprof), None) = (&options.go_pprof, &goroutines_error)
        && taken > 0
        && options.captures.contains(&CaptureKind::Goroutines)
    {
        match heap_profile(&target, pprof, options, start) {
            Ok(profile) => heap = Some(profile),
            Err(e) => goroutines_error = Some(e),
        }
    }
    truncate_to(&mut data, taken);
    let mut errors = BTreeMap::new();
    if let Some(error) = goroutines_error {
        errors.insert(CaptureKind::Goroutines, error);
    }
    if options.captures.contains(&CaptureKind::Stacks)
        && let Some(error) = capture_stacks(&target, options, start, &partial, &mut data, progress)
    {
        errors.insert(CaptureKind::Stacks, error);
    }
    // Each failed capture's reason, named after it, joins the partial reasons.
    for (kind, error) in &errors {
        add_partial(&mut partial, format!("{kind}: {error}"));
    }
    if let Some(reason) = &partial {
        progress(&format!("partial capture: {reason}"));
    }

    artifacts::create_output_dir(&options.out)?;
    let mut files = Vec::new();
    if let Some(series) = &data.goroutines {
        let text = goroutines::text::render(series);
        files.push(artifacts::write_artifact(
            &options.out,
            artifacts::GOROUTINES_TEXT_FILE,
            text.as_bytes(),
        )?);
    }
    if let Some(heap) = &heap {
        files.push(artifacts::write_artifact(
            &options.out,
            artifacts::HEAP_FILE,
            heap,
        )?);
    }
    let mut runs = capture_runs(&options.captures, &data, &errors);
    let mut core_record = None;
    if options.captures.contains(&CaptureKind::Core) {
        let run = runs
            .iter_mut()
            .find(|r| r.kind == CaptureKind::Core.name())
            .expect("a run per requested kind");
        let exe = identity.exe.as_deref();
        let (record, failure) = capture_core(&target, options, exe, run, &mut files, progress);
        core_record = record;
        if let Some(reason) = failure {
            progress(&reason);
            add_partial(&mut partial, reason);
        }
    }
    let mut manifest = Manifest {
        schema_version: SCHEMA_VERSION,
        tool: Tool::current(),
        target: identity,
        samples_requested: options.samples,
        samples_taken: taken,
        interval_seconds: options.interval.as_secs_f64(),
        started_at,
        finished_at: Utc::now(),
        captures: runs,
        partial,
        go_build_info,
        core: core_record,
        goroutines: go.record(),
        files,
    };
    let summary = artifacts::write_capture(&options.out, &mut manifest, &data)?;
    Ok(CaptureOutcome {
        dir: options.out.clone(),
        summary,
        samples_taken: taken,
    })
}

/// Appends `reason` to the reasons the capture is partial.
fn add_partial(partial: &mut Option<String>, reason: String) {
    *partial = Some(match partial.take() {
        Some(before) => format!("{before}; {reason}"),
        None => reason,
    });
}

/// The stacks capture, once after the samples, into `data`; returns why it failed or is
/// incomplete (the capture goes on without it).
fn capture_stacks(
    target: &Target,
    options: &CaptureOptions,
    start: Instant,
    partial: &Option<String>,
    data: &mut CaptureData,
    progress: &mut dyn FnMut(&str),
) -> Option<String> {
    if partial.is_some() && !target.is_alive() {
        return Some(format!(
            "pid {} exited before its stacks were read",
            options.pid
        ));
    }
    match stacks::capture(
        target,
        &options.proc_root,
        &options.stacks,
        start + options.deadline,
    ) {
        Ok(stacks) => {
            progress(&format!(
                "stacks: {} threads in {:.0} ms, longest stop {:.3} ms",
                stacks.threads.len(),
                stacks.wall_ms,
                stacks.longest_stop_ms
            ));
            let incomplete = stacks
                .incomplete
                .as_ref()
                .map(|reason| format!("incomplete: {reason}"));
            data.stacks = Some(stacks);
            incomplete
        }
        Err(e) => Some(e.to_string()),
    }
}

/// The core dump, last of all, written into the capture directory: fills in its `run`
/// and adds its file to `files`; returns its manifest record and why the capture is
/// partial because of it, if it is.
fn capture_core(
    target: &Target,
    options: &CaptureOptions,
    exe: Option<&str>,
    run: &mut CaptureRun,
    files: &mut Vec<artifacts::FileEntry>,
    progress: &mut dyn FnMut(&str),
) -> (Option<core::CoreRecord>, Option<String>) {
    let began = Instant::now();
    let result = core::capture(
        target,
        &options.proc_root,
        &options.out,
        exe,
        &options.core,
        progress,
    );
    run.sample_durations_ms = vec![began.elapsed().as_secs_f64() * 1000.0];
    match result {
        Ok(CoreOutcome { record, file }) => {
            progress(&format!(
                "core: {} ({} compressed, {} of memory, {} threads), target stopped {:.0} ms",
                file.name,
                units::bytes(record.bytes_compressed),
                units::bytes(record.bytes_of_memory),
                record.threads,
                record.pause_ms
            ));
            run.file = file.name.clone();
            files.push(file);
            let reason = record
                .partial_reason
                .as_ref()
                .map(|r| format!("partial core: {r}"));
            (Some(record), reason)
        }
        Err(e) => {
            run.error = Some(e.to_string());
            (None, Some(format!("no core: {e}")))
        }
    }
}

/// Fetches the heap profile after the last sample, within what is left of the deadline.
fn heap_profile(
    target: &Target,
    pprof: &PprofOptions,
    options: &CaptureOptions,
    start: Instant,
) -> Result<hyper::body::Bytes, String> {
    let left = options.deadline.saturating_sub(start.elapsed());
    if left.is_zero() {
        return Err(format!(
            "the heap profile was not fetched: the deadline of {} had passed",
            humantime::format_duration(options.deadline)
        ));
    }
    goroutines::heap_profile(target, pprof, left).map_err(|e| format!("heap profile: {e}"))
}

/// Reads one sample of every requested kind; returns the progress line. The goroutines
/// capture does not fail the sample: its first error lands in `goroutines_error` and
/// stops it for the rest of the capture.
fn take_sample(
    target: &Target,
    options: &CaptureOptions,
    index: usize,
    start: Instant,
    data: &mut CaptureData,
    goroutines_error: &mut Option<String>,
    go: &mut GoSource,
) -> Result<String, CaptureError> {
    let taken_at = Utc::now();
    let offset_seconds = start.elapsed().as_secs_f64();
    let mut parts = Vec::new();
    for kind in options.captures.iter().filter(|k| k.is_sampled()) {
        let began = Instant::now();
        let stamp = Stamp {
            index,
            taken_at,
            offset_seconds,
            began,
        };
        match kind {
            CaptureKind::Fds => {
                let fds = fds::capture(target)?;
                parts.push(format!("{} fds", units::count(fds.fds.len() as u64)));
                series(&mut data.fds, target)
                    .samples
                    .push(stamp.sample(fds));
            }
            CaptureKind::Threads => {
                let threads = threads::capture(target)?;
                parts.push(format!(
                    "{} threads",
                    units::count(threads.threads.len() as u64)
                ));
                series(&mut data.threads, target)
                    .samples
                    .push(stamp.sample(threads));
            }
            CaptureKind::Memory => {
                let mut memory = memory::capture(target, options.cgroup_root.as_deref())?;
                memory.go_heap = go.heap();
                if let Some(rss) = memory.status.vm_rss {
                    parts.push(format!("RSS {}", units::bytes(rss)));
                }
                series(&mut data.memory, target)
                    .samples
                    .push(stamp.sample(memory));
            }
            CaptureKind::Goroutines => {
                if goroutines_error.is_some() {
                    continue;
                }
                match go.sample(target, options, start) {
                    Ok(sample) => {
                        parts.push(format!("{} goroutines", units::count(sample.total)));
                        series(&mut data.goroutines, target)
                            .samples
                            .push(stamp.sample(sample));
                    }
                    Err(e) => {
                        parts.push(format!("goroutines failed ({e}); the other captures go on"));
                        *goroutines_error = Some(e);
                    }
                }
            }
            // One-shot: run once, after the samples.
            CaptureKind::Stacks | CaptureKind::Core => {}
        }
    }
    parts.push(format!(
        "{:.0} ms",
        (start.elapsed().as_secs_f64() - offset_seconds) * 1000.0
    ));
    Ok(parts.join(", "))
}

/// Where the goroutines capture reads from: the pprof endpoint, or the program's memory
/// through a [`GoReader`] located once for the whole capture.
enum GoSource {
    /// Not capturing goroutines, or the memory reader could not be opened.
    None,
    /// `--go-pprof`.
    Pprof,
    /// From memory.
    Memory {
        reader: Box<GoReader>,
        retried: u64,
        inconsistent: u64,
        longest_stop: Option<Duration>,
    },
}

impl GoSource {
    /// Opens the memory reader when goroutines are asked for without pprof; a failure
    /// (not a Go program, an unknown Go version) lands in `error`.
    fn open(
        target: &Target,
        options: &CaptureOptions,
        error: &mut Option<String>,
        progress: &mut dyn FnMut(&str),
    ) -> Self {
        if !options.captures.contains(&CaptureKind::Goroutines) {
            return Self::None;
        }
        if options.go_pprof.is_some() {
            return Self::Pprof;
        }
        match GoReader::open(&options.proc_root, target.pid()) {
            Ok(reader) => {
                progress(&format!(
                    "goroutines: read from memory ({} runtime layout)",
                    reader.go_version()
                ));
                Self::Memory {
                    reader: Box::new(reader),
                    retried: 0,
                    inconsistent: 0,
                    longest_stop: None,
                }
            }
            Err(e) => {
                *error = Some(format!("goroutines from memory: {e}"));
                Self::None
            }
        }
    }

    /// One goroutine sample, within what is left of the deadline.
    fn sample(
        &mut self,
        target: &Target,
        options: &CaptureOptions,
        start: Instant,
    ) -> Result<GoroutineSample, String> {
        match self {
            Self::None => Err("goroutines cannot be read".into()),
            Self::Pprof => {
                let pprof = options.go_pprof.as_ref().expect("pprof source has options");
                let left = options.deadline.saturating_sub(start.elapsed());
                goroutines::capture(target, pprof, left).map_err(|e| e.to_string())
            }
            Self::Memory {
                reader,
                retried,
                inconsistent,
                longest_stop,
            } => {
                let read = match options.goroutines_max_stop {
                    Some(bound) => reader.goroutines_stopped(&options.proc_root, bound),
                    None => reader.goroutines(),
                }
                .map_err(|e| e.to_string())?;
                *retried += read.retried;
                *inconsistent += read.sample.inconsistent;
                if let Some(stop) = read.stopped {
                    *longest_stop = Some(longest_stop.map_or(stop, |s| s.max(stop)));
                }
                Ok(read.sample)
            }
        }
    }

    /// The Go heap statistics, when reading from memory.
    fn heap(&self) -> Option<memory::Readable<crate::gomem::GoHeap>> {
        match self {
            Self::Memory { reader, .. } => Some(memory::Readable::from_result(
                reader.heap().map_err(|e| e.to_string()),
            )),
            Self::None | Self::Pprof => None,
        }
    }

    /// The manifest's record of where the goroutines came from.
    fn record(&self) -> Option<GoroutinesRecord> {
        match self {
            Self::None => None,
            Self::Pprof => Some(GoroutinesRecord {
                source: GoroutinesSource::Pprof,
                go_version: None,
                retried: 0,
                inconsistent: 0,
                longest_stop_ms: None,
            }),
            Self::Memory {
                reader,
                retried,
                inconsistent,
                longest_stop,
            } => Some(GoroutinesRecord {
                source: GoroutinesSource::Memory,
                go_version: Some(reader.go_version().to_string()),
                retried: *retried,
                inconsistent: *inconsistent,
                longest_stop_ms: longest_stop.map(|d| d.as_secs_f64() * 1000.0),
            }),
        }
    }
}

/// When and where in the run a sample was taken.
struct Stamp {
    index: usize,
    taken_at: chrono::DateTime<Utc>,
    offset_seconds: f64,
    began: Instant,
}

impl Stamp {
    fn sample<T>(&self, data: T) -> Sample<T> {
        Sample {
            index: self.index,
            taken_at: self.taken_at,
            offset_seconds: self.offset_seconds,
            duration_ms: self.began.elapsed().as_secs_f64() * 1000.0,
            data,
        }
    }
}

fn series<'a, T>(slot: &'a mut Option<Series<T>>, target: &Target) -> &'a mut Series<T> {
    slot.get_or_insert_with(|| Series::new(target.pid()))
}

/// Drops the kinds of an interrupted sample so that every file has the same samples.
fn truncate_to(data: &mut CaptureData, samples: usize) {
    if let Some(s) = &mut data.fds {
        s.samples.truncate(samples);
    }
    if let Some(s) = &mut data.threads {
        s.samples.truncate(samples);
    }
    if let Some(s) = &mut data.memory {
        s.samples.truncate(samples);
    }
    if let Some(s) = &mut data.goroutines {
        s.samples.truncate(samples);
    }
}

fn capture_runs(
    kinds: &[CaptureKind],
    data: &CaptureData,
    errors: &BTreeMap<CaptureKind, String>,
) -> Vec<CaptureRun> {
    kinds
        .iter()
        .map(|kind| {
            let durations = match kind {
                CaptureKind::Fds => durations(&data.fds),
                CaptureKind::Threads => durations(&data.threads),
                CaptureKind::Memory => durations(&data.memory),
                CaptureKind::Goroutines => durations(&data.goroutines),
                CaptureKind::Stacks => data.stacks.iter().map(|s| s.wall_ms).collect(),
                CaptureKind::Core => Vec::new(),
            };
            CaptureRun {
                kind: kind.name().to_string(),
                file: kind.file().to_string(),
                sample_durations_ms: durations,
                error: errors.get(kind).cloned(),
            }
        })
        .collect()
}

fn durations<T>(series: &Option<Series<T>>) -> Vec<f64> {
    series
        .as_ref()
        .map(|s| s.samples.iter().map(|sample| sample.duration_ms).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_names() {
        assert_eq!("memory".parse::<CaptureKind>(), Ok(CaptureKind::Memory));
        assert_eq!("stacks".parse::<CaptureKind>(), Ok(CaptureKind::Stacks));
        assert_eq!("core".parse::<CaptureKind>(), Ok(CaptureKind::Core));
        assert!("stack".parse::<CaptureKind>().unwrap_err().contains(
            "unknown capture \"stack\": choose from fds, threads, memory, goroutines, stacks, core"
        ));
        for kind in CaptureKind::ALL {
            assert_eq!(kind.to_string().parse::<CaptureKind>(), Ok(kind));
        }
    }

    #[test]
    fn default_deadline_covers_the_sampling_time() {
        assert_eq!(
            CaptureOptions::default_deadline(3, Duration::from_secs(2)),
            Duration::from_secs(64)
        );
        assert_eq!(
            CaptureOptions::default_deadline(1, Duration::from_secs(10)),
            Duration::from_secs(60)
        );
    }
}
