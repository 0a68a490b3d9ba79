//! The one contract every capture kind's module fulfils, and the shapes its data takes.
//!
//! A kind is either sampled or taken once ([`procshot_api::Schedule`], from the shared
//! definition of the kinds). Its module provides:
//! * its reader: a [`SampledCapture`] (what it reads in every sample, and once more after
//!   the last one, if anything) or a [`OneShotCapture`] (what it reads once, after the
//!   samples);
//! * its data, what a run keeps of it: a [`Series`] of its [`KindSample`]s (truncated to
//!   the samples every kind has, [`Series::truncate`]), or the one result of its one-shot
//!   capture; both are [`KindData`]: how they are written as the kind's files and loaded
//!   back.
//!
//! How a capture fails is part of the contract too: a [`SampleError::Target`] (the target
//! cannot be read: the sample ends, and with it the run) or a [`Failure`] of this capture
//! only, which the others outlive; either way what went wrong is kept as a typed
//! [`CaptureProblem`] (kind + cause), put into words only where people read it.

use std::error::Error;
use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use procshot_api::CaptureKind;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{CaptureError, OutputError};
use crate::files::{self, FileList};
use crate::process::Target;

/// Version of the on-disk layout of every JSON file procshot writes.
pub const SCHEMA_VERSION: u32 = 1;

/// The file of a sampled kind: its samples, taken at the same instants as the other
/// kinds' (a kind that failed part-way may have fewer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Series<T> {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// The target's pid.
    pub pid: i32,
    /// The samples, oldest first.
    pub samples: Vec<Sample<T>>,
}

/// One sample with when it was taken and how long it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample<T> {
    /// 0-based sample number (the same across files for the same instant).
    pub index: usize,
    /// Wall-clock time the sample started.
    pub taken_at: DateTime<Utc>,
    /// Seconds since the first sample started.
    pub offset_seconds: f64,
    /// How long reading this sample took, in milliseconds.
    pub duration_ms: f64,
    /// The data.
    #[serde(flatten)]
    pub data: T,
}

impl<T> Series<T> {
    /// An empty series for `pid`.
    pub fn new(pid: i32) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            pid,
            samples: Vec::new(),
        }
    }

    /// Drops the samples past `samples` (those of a sample the run did not finish), so
    /// that every kind's file has the same samples. (A one-shot kind has nothing to
    /// truncate.)
    pub fn truncate(&mut self, samples: usize) {
        self.samples.truncate(samples);
    }
}

/// What a run keeps of one kind (the series of a sampled kind, the result of a one-shot
/// kind), and how it goes to the capture directory and back.
pub trait KindData {
    /// The file the manifest names for this kind's run: its main file.
    fn file(&self) -> &str;
    /// Writes its files (those [`CaptureKind::files`] names) into `files`.
    fn write(&self, files: &mut FileList) -> Result<(), OutputError>;
    /// Reads it back from a capture directory; `None` when the directory has none.
    fn load(dir: &Path) -> Result<Option<Self>, OutputError>
    where
        Self: Sized;
}

/// The sample type of a sampled kind: one element of its file's `samples`.
pub trait KindSample: Serialize + DeserializeOwned {
    /// Its kind.
    const KIND: CaptureKind;

    /// Writes the files made from the whole series besides the kind's main file (the
    /// goroutines' `goroutines.txt`). None by default.
    fn write_beside(series: &Series<Self>, files: &mut FileList) -> Result<(), OutputError> {
        let _ = (series, files);
        Ok(())
    }
}

impl<T: KindSample> KindData for Series<T> {
    fn file(&self) -> &str {
        T::KIND.file()
    }

    fn write(&self, files: &mut FileList) -> Result<(), OutputError> {
        files.json(T::KIND.file(), self, false)?;
        T::write_beside(self, files)
    }

    fn load(dir: &Path) -> Result<Option<Self>, OutputError> {
        files::read_json_if_present(dir, T::KIND.file())
    }
}

/// The deadline of the whole capture, which every capture works within: how long it may
/// take from its start.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    started: Instant,
    total: Duration,
}

impl Deadline {
    /// A capture starting now that may take `total`.
    pub fn start(total: Duration) -> Self {
        Self {
            started: Instant::now(),
            total,
        }
    }

    /// How long the whole capture may take (`--timeout`).
    pub fn total(&self) -> Duration {
        self.total
    }

    /// Time since the capture started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// What is left (zero once it has passed).
    pub fn left(&self) -> Duration {
        self.total.saturating_sub(self.elapsed())
    }

    /// When it passes.
    pub fn at(&self) -> Instant {
        self.started + self.total
    }
}

/// A file a capture read whole, written as it is (the heap profile a pprof endpoint
/// served).
#[derive(Debug)]
pub struct RawFile {
    /// Its name in the capture directory (one of its kind's files).
    pub name: &'static str,
    /// Its content.
    pub content: Vec<u8>,
}

/// Why one capture failed while the others went on (a pprof endpoint that does not
/// answer, a core dump refused): the typed error of its module.
pub type Failure = Box<dyn Error + Send + Sync>;

/// Why a sample of one kind was not read.
#[derive(Debug)]
pub enum SampleError {
    /// The target could not be read: the sample ends, and with it the run (which is
    /// partial when the target exited after a sample, and fails otherwise).
    Target(CaptureError),
    /// This capture failed on its own: it stops for the rest of the run, the others go on.
    Failed(Failure),
}

impl From<CaptureError> for SampleError {
    fn from(error: CaptureError) -> Self {
        Self::Target(error)
    }
}

/// A kind read in every sample.
pub trait SampledCapture {
    /// What one sample holds.
    type Sample: KindSample;

    /// Reads one sample, within what is left of `deadline`.
    fn read(&mut self, target: &Target, deadline: &Deadline) -> Result<Self::Sample, SampleError>;

    /// A few words on a sample for the progress line (`1,204 fds`), if there is
    /// anything to say.
    fn describe(sample: &Self::Sample) -> Option<String>;

    /// Reads what the kind takes once, after the last sample (the goroutines' heap
    /// profile), as files to write beside its series; run only when it has samples and
    /// has not failed. Nothing by default.
    fn after_samples(
        &mut self,
        target: &Target,
        deadline: &Deadline,
    ) -> Result<Vec<RawFile>, Failure> {
        let _ = (target, deadline);
        Ok(Vec::new())
    }
}

/// What a one-shot capture is given besides the target.
pub struct OneShotContext<'a> {
    /// Where procfs is mounted.
    pub proc_root: &'a Path,
    /// When the whole capture must end.
    pub deadline: Deadline,
    /// Whether the samples were cut short (the target exited, or the deadline passed).
    pub cut_short: bool,
    /// The capture directory, for a capture that writes its file while it runs.
    pub files: &'a mut FileList,
    /// Human progress lines.
    pub progress: &'a mut dyn FnMut(&str),
}

/// What a one-shot capture took.
#[derive(Debug)]
pub struct Taken<T> {
    /// Its result, kept with the run's data.
    pub output: T,
    /// Why it is incomplete (the target exited meanwhile, a bound passed), if it is.
    pub incomplete: Option<String>,
}

/// A kind read once, after the last sample (it stops the target, or is too large to
/// repeat).
pub trait OneShotCapture {
    /// Its kind.
    const KIND: CaptureKind;
    /// What it takes.
    type Output: KindData;

    /// Takes it.
    fn take(
        self,
        target: &Target,
        context: &mut OneShotContext<'_>,
    ) -> Result<Taken<Self::Output>, Failure>;
}

/// What went wrong with one capture kind while the others went on.
#[derive(Debug)]
pub struct CaptureProblem {
    /// The kind.
    pub kind: CaptureKind,
    /// What went wrong.
    pub cause: Cause,
}

/// What went wrong with one capture.
#[derive(Debug)]
pub enum Cause {
    /// It failed.
    Failed(Failure),
    /// It finished with less than it should have; why.
    Incomplete(String),
}

impl CaptureProblem {
    /// What the manifest's entry of the capture says as its `error`, if anything.
    pub fn run_error(&self) -> Option<String> {
        match &self.cause {
            Cause::Failed(error) => Some(error.to_string()),
            Cause::Incomplete(reason) => match self.kind {
                // The core's own record says why it ended early (`partialReason`).
                CaptureKind::Core => None,
                CaptureKind::Fds
                | CaptureKind::Threads
                | CaptureKind::Memory
                | CaptureKind::Goroutines
                | CaptureKind::Stacks => Some(format!("incomplete: {reason}")),
            },
        }
    }
}

/// The reason the capture is partial because of this problem (`stacks: incomplete: …`,
/// `no core: …`).
impl fmt::Display for CaptureProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, &self.cause) {
            (CaptureKind::Core, Cause::Failed(error)) => write!(f, "no core: {error}"),
            (CaptureKind::Core, Cause::Incomplete(reason)) => write!(f, "partial core: {reason}"),
            (
                CaptureKind::Fds
                | CaptureKind::Threads
                | CaptureKind::Memory
                | CaptureKind::Goroutines
                | CaptureKind::Stacks,
                Cause::Failed(error),
            ) => write!(f, "{}: {error}", self.kind),
            (
                CaptureKind::Fds
                | CaptureKind::Threads
                | CaptureKind::Memory
                | CaptureKind::Goroutines
                | CaptureKind::Stacks,
                Cause::Incomplete(reason),
            ) => write!(f, "{}: incomplete: {reason}", self.kind),
        }
    }
}
