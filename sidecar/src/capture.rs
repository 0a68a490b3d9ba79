//! `procshot capture`: opens the target, takes the requested samples at a fixed interval
//! under a deadline, and writes the capture directory. A target that exits (or a deadline
//! that passes) after at least one sample gives a partial capture marked as such.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::analysis::Summary;
use crate::artifacts::{self, CaptureRun, Manifest, Tool};
use crate::core::{self, CoreOptions, CoreOutcome};
use crate::error::{CaptureError, OutputError};
use crate::samples::{CaptureData, SCHEMA_VERSION, Sample, Series};
use crate::target::Target;
use crate::{fds, memory, threads, units};

/// A kind of capture that can be sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CaptureKind {
    /// The fd table.
    Fds,
    /// The threads.
    Threads,
    /// Memory and cgroup memory.
    Memory,
    /// An ELF core dump (one-shot, last of all; opt-in).
    Core,
}

impl CaptureKind {
    /// Every kind: the sampled ones in the order a sample reads them, then the one-shot
    /// ones in the order they run.
    pub const ALL: [CaptureKind; 4] = [Self::Fds, Self::Threads, Self::Memory, Self::Core];

    /// The name used on the command line and in the manifest.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fds => "fds",
            Self::Threads => "threads",
            Self::Memory => "memory",
            Self::Core => "core",
        }
    }

    fn file(self) -> &'static str {
        match self {
            Self::Fds => artifacts::FDS_FILE,
            Self::Threads => artifacts::THREADS_FILE,
            Self::Memory => artifacts::MEMORY_FILE,
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
            .ok_or_else(|| format!("unknown capture {s:?}: choose from fds, threads, memory, core"))
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
    let mut data = CaptureData::default();
    let mut partial = None;
    let mut taken = 0;
    for index in 0..options.samples {
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
        match take_sample(&target, options, index, start, &mut data) {
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
    if let Some(reason) = &partial {
        progress(&format!("partial capture: {reason}"));
    }
    truncate_to(&mut data, taken);

    artifacts::create_output_dir(&options.out)?;
    let mut runs = capture_runs(&options.captures, &data);
    let mut core_record = None;
    let mut files = Vec::new();
    if options.captures.contains(&CaptureKind::Core) {
        let began = Instant::now();
        let result = core::capture(
            &target,
            &options.proc_root,
            &options.out,
            identity.exe.as_deref(),
            &options.core,
            progress,
        );
        let run = runs
            .iter_mut()
            .find(|r| r.kind == CaptureKind::Core.name())
            .expect("a run per requested kind");
        run.sample_durations_ms = vec![began.elapsed().as_secs_f64() * 1000.0];
        let failure = match result {
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
                let reason = record.partial_reason.clone();
                core_record = Some(record);
                reason.map(|r| format!("partial core: {r}"))
            }
            Err(e) => {
                run.error = Some(e.to_string());
                Some(format!("no core: {e}"))
            }
        };
        if let Some(reason) = failure {
            progress(&reason);
            partial = Some(match partial {
                Some(p) => format!("{p}; {reason}"),
                None => reason,
            });
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
        core: core_record,
        files,
    };
    let summary = artifacts::write_capture(&options.out, &mut manifest, &data)?;
    Ok(CaptureOutcome {
        dir: options.out.clone(),
        summary,
        samples_taken: taken,
    })
}

/// Reads one sample of every requested kind; returns the progress line.
fn take_sample(
    target: &Target,
    options: &CaptureOptions,
    index: usize,
    start: Instant,
    data: &mut CaptureData,
) -> Result<String, CaptureError> {
    let taken_at = Utc::now();
    let offset_seconds = start.elapsed().as_secs_f64();
    let mut parts = Vec::new();
    for kind in &options.captures {
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
                let memory = memory::capture(target, options.cgroup_root.as_deref())?;
                if let Some(rss) = memory.status.vm_rss {
                    parts.push(format!("RSS {}", units::bytes(rss)));
                }
                series(&mut data.memory, target)
                    .samples
                    .push(stamp.sample(memory));
            }
            // One-shot: runs once, after the samples.
            CaptureKind::Core => {}
        }
    }
    parts.push(format!(
        "{:.0} ms",
        (start.elapsed().as_secs_f64() - offset_seconds) * 1000.0
    ));
    Ok(parts.join(", "))
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
}

fn capture_runs(kinds: &[CaptureKind], data: &CaptureData) -> Vec<CaptureRun> {
    kinds
        .iter()
        .map(|kind| {
            let durations = match kind {
                CaptureKind::Fds => durations(&data.fds),
                CaptureKind::Threads => durations(&data.threads),
                CaptureKind::Memory => durations(&data.memory),
                CaptureKind::Core => Vec::new(),
            };
            CaptureRun {
                kind: kind.name().to_string(),
                file: kind.file().to_string(),
                sample_durations_ms: durations,
                error: None,
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
        assert!(
            "stack"
                .parse::<CaptureKind>()
                .unwrap_err()
                .contains("unknown capture \"stack\"")
        );
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
