//! The `goroutines` capture of a Go program: its goroutines grouped by stack in every
//! sample, read from a [`GoroutineSource`] chosen by [`GoroutinesFrom`]: the program's
//! memory ([`MemorySource`], the default) or its `net/http/pprof` endpoint
//! ([`PprofSource`], which also serves the heap profile once); written as
//! `goroutines.json` and, for people, `goroutines.txt` ([`text`]); the groups' counts
//! across the samples ([`trends`]); and the manifest's record of where they came from
//! ([`GoroutinesRecord`]).

pub mod dump;
pub mod memory;
pub mod pprof;
pub mod source;
pub mod text;

use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use dump::{Frame, GoroutineGroup, GroupKey};
pub use memory::MemorySource;
pub use pprof::PprofAddress;
pub use source::{GoroutineSource, PprofOptions, PprofSource};

use crate::captures::CaptureKind;
use crate::captures::contract::{
    Deadline, Failure, KindSample, RawFile, SampleError, SampledCapture, Series,
};
use crate::error::{CaptureError, OutputError};
use crate::files::FileList;
use crate::gomem::{GoMemError, GoReader, MemoryError, ReadError};
use crate::process::Target;
use crate::process::netns::NetnsError;
use crate::units;
use pprof::PprofError;

/// `goroutines.txt`: the last sample, grouped, for people.
pub const TEXT_FILE: &str = "goroutines.txt";
/// `heap.pb.gz`: the Go heap profile, as the endpoint served it.
pub const HEAP_FILE: &str = "heap.pb.gz";

/// One goroutine sample: every goroutine, grouped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GoroutineSample {
    /// Goroutines in the dump.
    pub total: u64,
    /// Where they were read from (a file written before procshot read memory has none:
    /// pprof).
    #[serde(default)]
    pub source: GoroutinesSource,
    /// Read from memory: goroutines whose reads never agreed, left out of `total` and
    /// `groups`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub inconsistent: u64,
    /// Read from memory: goroutines whose reads agreed only when read again.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retried: u64,
    /// Read from memory with every thread stopped: for how long, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_ms: Option<f64>,
    /// Groups of goroutines with the same state and stack, biggest first.
    pub groups: Vec<GoroutineGroup>,
}

impl GoroutineSample {
    /// The sample of a pprof dump's goroutines, grouped.
    pub fn of_dump(goroutines: Vec<dump::Goroutine>) -> Self {
        Self {
            total: goroutines.len() as u64,
            source: GoroutinesSource::Pprof,
            inconsistent: 0,
            retried: 0,
            stopped_ms: None,
            groups: dump::group(goroutines),
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Where goroutines are read from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GoroutinesSource {
    /// The program's memory.
    Memory,
    /// Its `net/http/pprof` endpoint.
    #[default]
    Pprof,
}

/// Where the goroutines capture is to read from.
#[derive(Debug, Clone)]
pub enum GoroutinesFrom {
    /// The program's memory; with `max_stop`, every thread is stopped for an exact read,
    /// waiting at most that long for them to stop (`None`: the program is never stopped).
    Memory {
        /// The bound of a stop.
        max_stop: Option<Duration>,
    },
    /// The program's pprof endpoint.
    Pprof(PprofOptions),
}

/// From memory, never stopping the program: the CLI's default.
impl Default for GoroutinesFrom {
    fn default() -> Self {
        Self::Memory { max_stop: None }
    }
}

/// The manifest's record of how the goroutines were read, over every sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GoroutinesRecord {
    /// `memory` or `pprof` (the Go version whose runtime layout was used is the
    /// manifest's `goBuildInfo.goVersion`).
    pub source: GoroutinesSource,
    /// Goroutines whose reads disagreed at first and agreed when read again.
    #[serde(default)]
    pub retried: u64,
    /// Goroutines whose reads never agreed, left out.
    #[serde(default)]
    pub inconsistent: u64,
    /// The longest time every thread was stopped for an exact read; absent when the
    /// program was never stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longest_stop_ms: Option<f64>,
}

impl GoroutinesRecord {
    /// The record of a series (`None` without samples).
    pub fn of(series: &Series<GoroutineSample>) -> Option<Self> {
        let first = series.samples.first()?;
        let samples = series.samples.iter().map(|s| &s.data);
        Some(Self {
            source: first.data.source,
            retried: samples.clone().map(|s| s.retried).sum(),
            inconsistent: samples.clone().map(|s| s.inconsistent).sum(),
            longest_stop_ms: samples.filter_map(|s| s.stopped_ms).reduce(f64::max),
        })
    }
}

impl KindSample for GoroutineSample {
    const KIND: CaptureKind = CaptureKind::Goroutines;

    fn write_beside(series: &Series<Self>, files: &mut FileList) -> Result<(), OutputError> {
        files.bytes(TEXT_FILE, text::render(series).as_bytes())
    }
}

/// Why the goroutines capture failed.
#[derive(Debug, thiserror::Error)]
pub enum GoroutinesError {
    /// Reading them from memory failed, or cannot be done for this program (shared: a
    /// runtime that cannot be located says so at every read).
    #[error("from memory: {0}")]
    Memory(Arc<GoMemError>),
    /// The target's network namespace could not be entered.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// The endpoint gave nothing usable.
    #[error(transparent)]
    Pprof(#[from] PprofError),
    /// The heap profile, once after the samples, failed.
    #[error("heap profile: {0}")]
    HeapProfile(Box<GoroutinesError>),
    /// No time was left for the heap profile.
    #[error(
        "the heap profile was not fetched: the deadline of {} had passed",
        humantime::format_duration(*.deadline)
    )]
    NoTimeForHeapProfile {
        /// The capture's deadline.
        deadline: std::time::Duration,
    },
}

/// The goroutines capture: one dump from its source per sample, then what the source
/// reads once.
pub struct GoroutinesReader {
    source: Box<dyn GoroutineSource>,
    /// The Go runtime located in memory, when reading from it.
    go: Option<Rc<GoReader>>,
}

impl GoroutinesReader {
    /// The capture of `pid` (under `proc_root`) reading from `from`. From memory, the
    /// runtime is located now, once for the whole capture; a program whose runtime
    /// cannot be located fails the capture at its first sample (and the others go on).
    pub fn open(from: &GoroutinesFrom, proc_root: &Path, pid: i32) -> Self {
        match from {
            GoroutinesFrom::Memory { max_stop } => {
                let source = MemorySource::open(proc_root, pid, *max_stop);
                Self {
                    go: source.reader(),
                    source: Box::new(source),
                }
            }
            GoroutinesFrom::Pprof(options) => Self {
                source: Box::new(PprofSource(options.clone())),
                go: None,
            },
        }
    }

    /// The Go runtime the goroutines are read from, for the memory capture's Go heap
    /// statistics (`None`: read from pprof, or not located).
    pub fn go_runtime(&self) -> Option<Rc<GoReader>> {
        self.go.clone()
    }
}

impl SampledCapture for GoroutinesReader {
    type Sample = GoroutineSample;

    fn read(
        &mut self,
        target: &Target,
        deadline: &Deadline,
    ) -> Result<GoroutineSample, SampleError> {
        self.source
            .goroutines(target, deadline.left())
            .map_err(|e| match e {
                GoroutinesError::Memory(e) if exited(&e) => {
                    SampleError::Target(CaptureError::TargetExited {
                        pid: target.pid(),
                        what: "goroutines",
                    })
                }
                e => SampleError::Failed(e.into()),
            })
    }

    fn describe(sample: &GoroutineSample) -> Option<String> {
        Some(format!("{} goroutines", units::count(sample.total)))
    }

    fn after_samples(
        &mut self,
        target: &Target,
        deadline: &Deadline,
    ) -> Result<Vec<RawFile>, Failure> {
        Ok(self.source.after_samples(target, deadline)?)
    }
}

/// Whether a read from memory failed because the target exited under it (the sample, and
/// with it the run, ends as it does for the other kinds).
fn exited(error: &GoMemError) -> bool {
    matches!(
        error,
        GoMemError::Read(ReadError::Memory(MemoryError::Exited { .. }))
    )
}

/// A group of the last sample with its count in every sample.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupTrend<'a> {
    /// The group as the last sample has it.
    pub group: &'a GoroutineGroup,
    /// Its count in every sample, oldest first (0 where absent).
    pub counts: Vec<u64>,
    /// The seconds since the first sample at which each count was taken.
    pub offsets: Vec<f64>,
}

impl GroupTrend<'_> {
    /// Last count minus first.
    pub fn delta(&self) -> i64 {
        let first = self.counts.first().copied().unwrap_or(0);
        let last = self.counts.last().copied().unwrap_or(0);
        last as i64 - first as i64
    }

    /// Whether the count never went down between samples.
    pub fn monotonic(&self) -> bool {
        self.counts.windows(2).all(|w| w[1] >= w[0])
    }

    /// [`GroupTrend::delta`] per second between the first and the last sample.
    pub fn per_second(&self) -> f64 {
        let seconds = self.offsets.last().copied().unwrap_or(0.0);
        if seconds > 0.0 {
            self.delta() as f64 / seconds
        } else {
            0.0
        }
    }
}

/// Every group of the last sample with its count in each sample, in the last sample's
/// order (biggest first).
pub fn trends(series: &Series<GoroutineSample>) -> Vec<GroupTrend<'_>> {
    let Some(last) = series.samples.last() else {
        return Vec::new();
    };
    let counts: Vec<HashMap<GroupKey, u64>> = series
        .samples
        .iter()
        .map(|s| s.data.groups.iter().map(|g| (g.key(), g.count)).collect())
        .collect();
    let offsets: Vec<f64> = series.samples.iter().map(|s| s.offset_seconds).collect();
    last.data
        .groups
        .iter()
        .map(|group| {
            let key = group.key();
            GroupTrend {
                group,
                counts: counts
                    .iter()
                    .map(|c| c.get(&key).copied().unwrap_or(0))
                    .collect(),
                offsets: offsets.clone(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn its_files_are_its_kinds_files() {
        let files = CaptureKind::Goroutines.files();
        assert_eq!(files[0], "goroutines.json");
        assert!(files.contains(&TEXT_FILE) && files.contains(&HEAP_FILE));
    }
}
