//! `procshot capture`: schedules a run. It opens the target, takes the requested samples
//! at a fixed interval under a deadline (every sampled kind in each), then what the
//! sampled kinds read once more, then the one-shot captures (native stacks, the core
//! dump), and writes the capture directory. What each kind reads, keeps and writes is its
//! own module's ([`crate::captures`]); this module only decides when.
//!
//! A target that exits (or a deadline that passes) after at least one sample gives a
//! partial capture marked as such; so does a capture that fails on its own (a pprof
//! endpoint that does not answer, a thread that will not stop) while the others go on.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;

use crate::analysis::Summary;
use crate::captures::contract::{CaptureProblem, Deadline, OneShotContext};
use crate::captures::coredump::{CoreOptions, CoreReader};
use crate::captures::fds::FdsReader;
use crate::captures::goroutines::{GoroutinesFrom, GoroutinesReader, GoroutinesRecord};
use crate::captures::memory::MemoryReader;
use crate::captures::stacks::{StacksOptions, StacksReader};
use crate::captures::threads::ThreadsReader;
use crate::captures::{CaptureKind, SCHEMA_VERSION};
use crate::directory::{self, CaptureRun, Manifest, Tool};
use crate::error::{CaptureError, OutputError};
use crate::gomem::buildinfo::{self, GoBuildInfo};
use crate::process::{Target, TargetIdentity};
use crate::series::{CaptureData, OneShot, OneShotRun, SampleTime, SampledRun, Sampler};

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
    /// What to capture.
    pub captures: Vec<CaptureKind>,
    /// The whole capture ends by this long after it starts; samples not taken by then are
    /// skipped and the capture is marked partial.
    pub deadline: Duration,
    /// Where procfs is mounted (`/proc`, or a node's `/proc` mounted elsewhere).
    pub proc_root: PathBuf,
    /// Where cgroup filesystems are mounted, when not found from mountinfo.
    pub cgroup_root: Option<PathBuf>,
    /// Where the goroutines capture reads from: the program's memory (and then the
    /// memory capture reads the Go heap's statistics too), or its pprof endpoint.
    pub goroutines: GoroutinesFrom,
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
    /// Why the capture is partial (empty when it is complete).
    pub partial: Vec<PartialReason>,
}

/// Why a capture is partial.
#[derive(Debug)]
pub enum PartialReason {
    /// The deadline passed before every sample was taken.
    DeadlinePassed {
        /// The deadline.
        deadline: Duration,
        /// Samples taken.
        taken: usize,
        /// Samples asked for.
        requested: usize,
    },
    /// The target exited while a sample was being read.
    TargetExited {
        /// The target.
        pid: i32,
        /// What was being read.
        what: &'static str,
        /// Samples taken.
        taken: usize,
        /// Samples asked for.
        requested: usize,
    },
    /// One capture failed or is incomplete, while the others went on.
    Capture(CaptureProblem),
}

impl fmt::Display for PartialReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DeadlinePassed {
                deadline,
                taken,
                requested,
            } => write!(
                f,
                "the deadline of {} passed after {taken} of {requested} samples",
                humantime::format_duration(*deadline)
            ),
            Self::TargetExited {
                pid,
                what,
                taken,
                requested,
            } => write!(
                f,
                "pid {pid} exited while {what} was being read, after {taken} of {requested} samples"
            ),
            Self::Capture(problem) => problem.fmt(f),
        }
    }
}

/// The reasons as the manifest, the summary and the CLI write them (`None`: complete).
pub fn partial_text(reasons: &[PartialReason]) -> Option<String> {
    (!reasons.is_empty()).then(|| {
        reasons
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
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
    directory::check_output_dir(&options.out)?;
    let target = Target::open(&options.proc_root, options.pid)?;
    let identity = target.identity()?;
    progress(&announcement(options, &identity));
    let deadline = Deadline::start(options.deadline);
    let started_at = Utc::now();
    let go_build_info = go_build_info(&target, progress);
    let Readers { mut sampled, once } = readers(options, identity.exe.as_deref());

    let sampling = take_samples(&target, options, &deadline, &mut sampled, progress)?;
    let mut files = directory::create_output_dir(&options.out)?;
    let mut data = CaptureData::default();
    let mut runs = Vec::new();
    for mut sampler in sampled {
        sampler.after_samples(&target, &deadline, &mut files)?;
        runs.push(sampler.finish(sampling.taken, &mut data));
    }
    let mut context = OneShotContext {
        proc_root: &options.proc_root,
        deadline,
        cut_short: sampling.cut_short.is_some(),
        files: &mut files,
        progress,
    };
    for capture in once {
        runs.push(capture.take(&target, &mut context, &mut data));
    }

    let captures = runs.iter().map(|run| CaptureRun::new(run, &data)).collect();
    let partial: Vec<PartialReason> = sampling
        .cut_short
        .into_iter()
        .chain(
            runs.into_iter()
                .filter_map(|run| run.problem.map(PartialReason::Capture)),
        )
        .collect();
    if let Some(text) = partial_text(&partial) {
        progress(&format!("partial capture: {text}"));
    }
    let mut manifest = Manifest {
        schema_version: SCHEMA_VERSION,
        tool: Tool::current(),
        target: identity,
        samples_requested: options.samples,
        samples_taken: sampling.taken,
        interval_seconds: options.interval.as_secs_f64(),
        started_at,
        finished_at: Utc::now(),
        captures,
        partial: partial_text(&partial),
        go_build_info,
        goroutines: data.goroutines.as_ref().and_then(GoroutinesRecord::of),
        core: data.core.clone(),
        files: Vec::new(),
    };
    let summary = directory::write_capture(files, &mut manifest, &data)?;
    Ok(CaptureOutcome {
        dir: options.out.clone(),
        summary,
        samples_taken: sampling.taken,
        partial,
    })
}

/// The first progress line: who, how many samples, what.
fn announcement(options: &CaptureOptions, identity: &TargetIdentity) -> String {
    format!(
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
    )
}

/// The Go build info of the target's executable, when it is a Go program.
fn go_build_info(target: &Target, progress: &mut dyn FnMut(&str)) -> Option<GoBuildInfo> {
    let info = match buildinfo::read(&target.path("exe")) {
        Ok(info) => info?,
        Err(e) => {
            progress(&format!("no Go build info: {e}"));
            return None;
        }
    };
    progress(&format!(
        "Go program: {}, main module {}, {} dependencies",
        info.go_version,
        info.main.as_ref().map_or("?", |m| m.path.as_str()),
        info.deps.len()
    ));
    Some(info)
}

/// The readers of the requested kinds, in the order of the kinds. `exe` is the target's
/// executable, as the manifest records it.
#[derive(Default)]
struct Readers {
    sampled: Vec<Box<dyn SampledRun>>,
    once: Vec<Box<dyn OneShotRun>>,
}

fn readers(options: &CaptureOptions, exe: Option<&str>) -> Readers {
    let mut readers = Readers::default();
    let pid = options.pid;
    // Opened first: the memory capture reads the Go heap through the runtime the
    // goroutines capture located in memory.
    let mut goroutines = options
        .captures
        .contains(&CaptureKind::Goroutines)
        .then(|| GoroutinesReader::open(&options.goroutines, &options.proc_root, pid));
    let go = goroutines.as_ref().and_then(GoroutinesReader::go_runtime);
    for kind in CaptureKind::ALL
        .into_iter()
        .filter(|k| options.captures.contains(k))
    {
        match kind {
            CaptureKind::Fds => readers.sampled.push(Box::new(Sampler::new(FdsReader, pid))),
            CaptureKind::Threads => readers
                .sampled
                .push(Box::new(Sampler::new(ThreadsReader, pid))),
            CaptureKind::Memory => readers.sampled.push(Box::new(Sampler::new(
                MemoryReader {
                    cgroup_root: options.cgroup_root.clone(),
                    go: go.clone(),
                },
                pid,
            ))),
            CaptureKind::Goroutines => {
                if let Some(reader) = goroutines.take() {
                    readers.sampled.push(Box::new(Sampler::new(reader, pid)));
                }
            }
            CaptureKind::Stacks => readers.once.push(Box::new(OneShot(StacksReader {
                options: options.stacks,
            }))),
            CaptureKind::Core => readers.once.push(Box::new(OneShot(CoreReader {
                options: options.core.clone(),
                exe: exe.map(str::to_string),
            }))),
        }
    }
    readers
}

/// How the samples went.
struct Sampling {
    /// Samples taken.
    taken: usize,
    /// Why they ended before the last, if they did.
    cut_short: Option<PartialReason>,
}

/// Takes the samples, each `interval` after the start of the previous, until the last,
/// the deadline, or the target's exit.
fn take_samples(
    target: &Target,
    options: &CaptureOptions,
    deadline: &Deadline,
    sampled: &mut [Box<dyn SampledRun>],
    progress: &mut dyn FnMut(&str),
) -> Result<Sampling, CaptureError> {
    // With only one-shot captures, one (empty) sample stands for the capture's instant:
    // nothing waits through intervals.
    let samples = if sampled.is_empty() {
        1
    } else {
        options.samples
    };
    let mut taken = 0;
    for index in 0..samples {
        let due = options.interval * index as u32;
        if due > deadline.total() || deadline.elapsed() > deadline.total() {
            let cut_short = PartialReason::DeadlinePassed {
                deadline: deadline.total(),
                taken,
                requested: options.samples,
            };
            return Ok(Sampling {
                taken,
                cut_short: Some(cut_short),
            });
        }
        std::thread::sleep(due.saturating_sub(deadline.elapsed()));
        match take_sample(target, index, deadline, sampled) {
            Ok(line) => {
                taken += 1;
                progress(&format!("sample {}/{}: {line}", index + 1, options.samples));
            }
            Err(CaptureError::TargetExited { pid, what }) if taken > 0 => {
                let cut_short = PartialReason::TargetExited {
                    pid,
                    what,
                    taken,
                    requested: options.samples,
                };
                return Ok(Sampling {
                    taken,
                    cut_short: Some(cut_short),
                });
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Sampling {
        taken,
        cut_short: None,
    })
}

/// Reads one sample of every sampled kind; returns the progress line.
fn take_sample(
    target: &Target,
    index: usize,
    deadline: &Deadline,
    sampled: &mut [Box<dyn SampledRun>],
) -> Result<String, CaptureError> {
    let at = SampleTime {
        index,
        taken_at: Utc::now(),
        offset_seconds: deadline.elapsed().as_secs_f64(),
    };
    let mut parts = Vec::new();
    for sampler in sampled {
        parts.extend(sampler.sample(target, at, deadline)?);
    }
    parts.push(format!(
        "{:.0} ms",
        (deadline.elapsed().as_secs_f64() - at.offset_seconds) * 1000.0
    ));
    Ok(parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn every_kind_is_read_when_its_shared_schedule_says() {
        let options = CaptureOptions {
            pid: 1,
            out: "capture".into(),
            samples: 3,
            interval: Duration::from_secs(1),
            captures: CaptureKind::ALL.into_iter().rev().collect(),
            deadline: Duration::from_secs(60),
            proc_root: "/proc".into(),
            cgroup_root: None,
            goroutines: GoroutinesFrom::default(),
            stacks: StacksOptions::default(),
            core: CoreOptions::default(),
        };
        let readers = readers(&options, None);
        let sampled: Vec<CaptureKind> = readers.sampled.iter().map(|r| r.kind()).collect();
        let once: Vec<CaptureKind> = readers.once.iter().map(|r| r.kind()).collect();
        let (every_sample, after): (Vec<CaptureKind>, Vec<CaptureKind>) =
            CaptureKind::ALL.into_iter().partition(|k| k.is_sampled());
        assert_eq!(sampled, every_sample);
        assert_eq!(once, after);
    }

    #[test]
    fn partial_reasons_read_as_the_manifest_writes_them() {
        let reasons = [
            PartialReason::DeadlinePassed {
                deadline: Duration::from_millis(1500),
                taken: 2,
                requested: 5,
            },
            PartialReason::Capture(CaptureProblem {
                kind: CaptureKind::Stacks,
                cause: crate::captures::Cause::Incomplete("pid 7 exited".into()),
            }),
            PartialReason::Capture(CaptureProblem {
                kind: CaptureKind::Core,
                cause: crate::captures::Cause::Failed("refused".into()),
            }),
        ];
        assert_eq!(
            partial_text(&reasons).unwrap(),
            "the deadline of 1s 500ms passed after 2 of 5 samples; \
             stacks: incomplete: pid 7 exited; no core: refused"
        );
        assert_eq!(partial_text(&[]), None);
    }
}
