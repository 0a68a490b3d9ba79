//! The `goroutines` capture of a Go program: its goroutines grouped by stack in every
//! sample, read from a [`GoroutineSource`] (today the program's `net/http/pprof` endpoint,
//! [`PprofSource`], which also serves the heap profile once), written as `goroutines.json`
//! and, for people, `goroutines.txt` ([`text`]); the groups' counts across the samples
//! ([`trends`]); and the Go build info of any Go binary, pprof or not ([`buildinfo`]).

pub mod buildinfo;
pub mod dump;
pub mod pprof;
pub mod source;
pub mod text;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

pub use dump::{Frame, GoroutineGroup, GroupKey};
pub use pprof::PprofAddress;
pub use source::{GoroutineSource, PprofOptions, PprofSource};

use crate::captures::CaptureKind;
use crate::captures::contract::{
    Deadline, Failure, KindSample, RawFile, SampleError, SampledCapture, Series,
};
use crate::error::OutputError;
use crate::files::FileList;
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
    /// Groups of goroutines with the same state and stack, biggest first.
    pub groups: Vec<GoroutineGroup>,
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
    /// The capture was asked for without a source to read from.
    #[error("no pprof endpoint was given (--go-pprof ADDR): nothing to read goroutines from")]
    NoSource,
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
    source: Option<Box<dyn GoroutineSource>>,
}

impl GoroutinesReader {
    /// Reads from `source`; without one, the capture fails at its first sample (and the
    /// others go on).
    pub fn new(source: Option<Box<dyn GoroutineSource>>) -> Self {
        Self { source }
    }

    fn source(&mut self) -> Result<&mut dyn GoroutineSource, Failure> {
        match &mut self.source {
            Some(source) => Ok(source.as_mut()),
            None => Err(GoroutinesError::NoSource.into()),
        }
    }
}

impl SampledCapture for GoroutinesReader {
    type Sample = GoroutineSample;

    fn read(
        &mut self,
        target: &Target,
        deadline: &Deadline,
    ) -> Result<GoroutineSample, SampleError> {
        let source = self.source().map_err(SampleError::Failed)?;
        source
            .goroutines(target, deadline.left())
            .map_err(|e| SampleError::Failed(e.into()))
    }

    fn describe(sample: &GoroutineSample) -> Option<String> {
        Some(format!("{} goroutines", units::count(sample.total)))
    }

    fn after_samples(
        &mut self,
        target: &Target,
        deadline: &Deadline,
    ) -> Result<Vec<RawFile>, Failure> {
        Ok(self.source()?.after_samples(target, deadline)?)
    }
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
