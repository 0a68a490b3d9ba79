//! What one run captured: [`CaptureData`] holds the [`Series`] of every sampled kind and
//! the result of every one-shot kind, and is the one place that maps a [`CaptureKind`] to
//! its data (exhaustively: a new kind does not compile until it has its place here). Also
//! the glue that runs any kind's reader into its place: [`Sampler`] for a sampled kind,
//! [`OneShot`] for a one-shot kind, both seen by the scheduler as a [`SampledRun`] or a
//! [`OneShotRun`].
//!
//! Writing and loading go through each kind's [`KindData`]; nothing here lists files.

use std::path::Path;
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::captures::CaptureKind;
use crate::captures::contract::{
    CaptureProblem, Cause, Deadline, Failure, KindData, KindSample, OneShotCapture, OneShotContext,
    RawFile, Sample, SampleError, SampledCapture, Series, Taken,
};
use crate::captures::coredump::CoreRecord;
use crate::captures::fds::FdSample;
use crate::captures::goroutines::GoroutineSample;
use crate::captures::memory::MemorySample;
use crate::captures::stacks::StacksCapture;
use crate::captures::threads::ThreadSample;
use crate::error::{CaptureError, OutputError};
use crate::files::FileList;
use crate::process::Target;

/// Everything one capture took; a kind not captured (or that failed before its first
/// sample) is `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaptureData {
    /// `fds.json`.
    pub fds: Option<Series<FdSample>>,
    /// `threads.json`.
    pub threads: Option<Series<ThreadSample>>,
    /// `memory.json`.
    pub memory: Option<Series<MemorySample>>,
    /// `goroutines.json` (with fewer samples than the others when its source failed).
    pub goroutines: Option<Series<GoroutineSample>>,
    /// `stacks.json` (taken once, after the last sample).
    pub stacks: Option<StacksCapture>,
    /// The core dump's record (the manifest's `core`; its file was written while it was
    /// taken). Not read back by [`CaptureData::load`].
    pub core: Option<CoreRecord>,
}

impl CaptureData {
    /// The data of `kind`, if it was captured.
    fn kind(&self, kind: CaptureKind) -> Option<&dyn KindData> {
        match kind {
            CaptureKind::Fds => self.fds.as_ref().map(|d| d as &dyn KindData),
            CaptureKind::Threads => self.threads.as_ref().map(|d| d as &dyn KindData),
            CaptureKind::Memory => self.memory.as_ref().map(|d| d as &dyn KindData),
            CaptureKind::Goroutines => self.goroutines.as_ref().map(|d| d as &dyn KindData),
            CaptureKind::Stacks => self.stacks.as_ref().map(|d| d as &dyn KindData),
            CaptureKind::Core => self.core.as_ref().map(|d| d as &dyn KindData),
        }
    }

    /// Whether `kind` was captured (or read back).
    pub fn has(&self, kind: CaptureKind) -> bool {
        self.kind(kind).is_some()
    }

    /// The file the manifest names for `kind`'s run: its main file, or the one it wrote
    /// (a core cut short is `core.partial.zst`).
    pub fn file(&self, kind: CaptureKind) -> &str {
        self.kind(kind).map_or(kind.file(), KindData::file)
    }

    /// Writes every kind's files, in the order of the kinds.
    pub fn write(&self, files: &mut FileList) -> Result<(), OutputError> {
        for kind in CaptureKind::ALL {
            if let Some(data) = self.kind(kind) {
                data.write(files)?;
            }
        }
        Ok(())
    }

    /// Reads the data of a capture directory back.
    pub fn load(dir: &Path) -> Result<Self, OutputError> {
        Ok(Self {
            fds: KindData::load(dir)?,
            threads: KindData::load(dir)?,
            memory: KindData::load(dir)?,
            goroutines: KindData::load(dir)?,
            stacks: KindData::load(dir)?,
            core: KindData::load(dir)?,
        })
    }
}

/// Where a kind's data is kept in [`CaptureData`].
pub trait Kept: KindData + Sized {
    /// Its place.
    fn place(data: &mut CaptureData) -> &mut Option<Self>;
}

impl Kept for Series<FdSample> {
    fn place(data: &mut CaptureData) -> &mut Option<Self> {
        &mut data.fds
    }
}

impl Kept for Series<ThreadSample> {
    fn place(data: &mut CaptureData) -> &mut Option<Self> {
        &mut data.threads
    }
}

impl Kept for Series<MemorySample> {
    fn place(data: &mut CaptureData) -> &mut Option<Self> {
        &mut data.memory
    }
}

impl Kept for Series<GoroutineSample> {
    fn place(data: &mut CaptureData) -> &mut Option<Self> {
        &mut data.goroutines
    }
}

impl Kept for StacksCapture {
    fn place(data: &mut CaptureData) -> &mut Option<Self> {
        &mut data.stacks
    }
}

impl Kept for CoreRecord {
    fn place(data: &mut CaptureData) -> &mut Option<Self> {
        &mut data.core
    }
}

/// How one kind's capture went, for the manifest.
#[derive(Debug)]
pub struct KindRun {
    /// The kind.
    pub kind: CaptureKind,
    /// Milliseconds each sample took (a one-shot kind: its one run).
    pub sample_durations_ms: Vec<f64>,
    /// What went wrong, if anything.
    pub problem: Option<CaptureProblem>,
}

/// When, in the run, a sample is taken.
#[derive(Debug, Clone, Copy)]
pub struct SampleTime {
    /// 0-based sample number.
    pub index: usize,
    /// Wall-clock time the sample started.
    pub taken_at: DateTime<Utc>,
    /// Seconds since the first sample started.
    pub offset_seconds: f64,
}

/// A sampled kind during a run: its reader, the series it fills, and why it stopped, if
/// it failed.
pub struct Sampler<C: SampledCapture> {
    reader: C,
    series: Series<C::Sample>,
    failure: Option<Failure>,
}

impl<C: SampledCapture> Sampler<C> {
    /// Samples `target` (by its `pid`) with `reader`.
    pub fn new(reader: C, pid: i32) -> Self {
        Self {
            reader,
            series: Series::new(pid),
            failure: None,
        }
    }
}

/// A sampled kind during a run, whatever its sample type.
pub trait SampledRun {
    /// Its kind.
    fn kind(&self) -> CaptureKind;

    /// Reads one sample, unless it has failed before; returns a few words for the
    /// progress line. A failure of this capture alone is kept (and said in the words);
    /// only a failure to read the target is returned.
    fn sample(
        &mut self,
        target: &Target,
        at: SampleTime,
        deadline: &Deadline,
    ) -> Result<Option<String>, CaptureError>;

    /// After the last sample: what the kind reads once, written into `files`.
    fn after_samples(
        &mut self,
        target: &Target,
        deadline: &Deadline,
        files: &mut FileList,
    ) -> Result<(), OutputError>;

    /// Ends it: keeps its first `samples` samples in `data`.
    fn finish(self: Box<Self>, samples: usize, data: &mut CaptureData) -> KindRun;
}

impl<C: SampledCapture> SampledRun for Sampler<C>
where
    Series<C::Sample>: Kept,
{
    fn kind(&self) -> CaptureKind {
        C::Sample::KIND
    }

    fn sample(
        &mut self,
        target: &Target,
        at: SampleTime,
        deadline: &Deadline,
    ) -> Result<Option<String>, CaptureError> {
        if self.failure.is_some() {
            return Ok(None);
        }
        let began = Instant::now();
        match self.reader.read(target, deadline) {
            Ok(data) => {
                let words = C::describe(&data);
                self.series.samples.push(Sample {
                    index: at.index,
                    taken_at: at.taken_at,
                    offset_seconds: at.offset_seconds,
                    duration_ms: began.elapsed().as_secs_f64() * 1000.0,
                    data,
                });
                Ok(words)
            }
            Err(SampleError::Target(error)) => Err(error),
            Err(SampleError::Failed(failure)) => {
                let words = format!(
                    "{} failed ({failure}); the other captures go on",
                    self.kind()
                );
                self.failure = Some(failure);
                Ok(Some(words))
            }
        }
    }

    fn after_samples(
        &mut self,
        target: &Target,
        deadline: &Deadline,
        files: &mut FileList,
    ) -> Result<(), OutputError> {
        if self.failure.is_some() || self.series.samples.is_empty() {
            return Ok(());
        }
        match self.reader.after_samples(target, deadline) {
            Ok(read) => {
                for RawFile { name, content } in read {
                    files.bytes(name, &content)?;
                }
            }
            Err(failure) => self.failure = Some(failure),
        }
        Ok(())
    }

    fn finish(self: Box<Self>, samples: usize, data: &mut CaptureData) -> KindRun {
        let Self {
            mut series,
            failure,
            ..
        } = *self;
        series.truncate(samples);
        let kind = C::Sample::KIND;
        let run = KindRun {
            kind,
            sample_durations_ms: series.samples.iter().map(|s| s.duration_ms).collect(),
            problem: failure.map(|failure| CaptureProblem {
                kind,
                cause: Cause::Failed(failure),
            }),
        };
        if !series.samples.is_empty() {
            *Series::place(data) = Some(series);
        }
        run
    }
}

/// A one-shot kind during a run: its reader, until it takes its capture.
pub struct OneShot<C>(pub C);

/// A one-shot kind during a run, whatever it takes.
pub trait OneShotRun {
    /// Its kind.
    fn kind(&self) -> CaptureKind;

    /// Takes it into `data`; returns how it went.
    fn take(
        self: Box<Self>,
        target: &Target,
        context: &mut OneShotContext<'_>,
        data: &mut CaptureData,
    ) -> KindRun;
}

impl<C: OneShotCapture> OneShotRun for OneShot<C>
where
    C::Output: Kept,
{
    fn kind(&self) -> CaptureKind {
        C::KIND
    }

    fn take(
        self: Box<Self>,
        target: &Target,
        context: &mut OneShotContext<'_>,
        data: &mut CaptureData,
    ) -> KindRun {
        let began = Instant::now();
        let taken = self.0.take(target, context);
        let cause = match taken {
            Ok(Taken { output, incomplete }) => {
                *C::Output::place(data) = Some(output);
                incomplete.map(Cause::Incomplete)
            }
            Err(failure) => Some(Cause::Failed(failure)),
        };
        let problem = cause.map(|cause| CaptureProblem {
            kind: C::KIND,
            cause,
        });
        if let Some(problem) = &problem {
            (context.progress)(&problem.to_string());
        }
        KindRun {
            kind: C::KIND,
            sample_durations_ms: vec![began.elapsed().as_secs_f64() * 1000.0],
            problem,
        }
    }
}
