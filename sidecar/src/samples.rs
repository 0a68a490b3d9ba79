//! The sampled data of a capture as it is stored on disk: `fds.json`, `threads.json` and
//! `memory.json` each hold one [`Series`] of samples taken at the same instants;
//! `goroutines.json` too, possibly with fewer samples when its endpoint failed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::fds::FdSample;
use crate::goroutines::GoroutineSample;
use crate::memory::MemorySample;
use crate::stacks::StacksCapture;
use crate::threads::ThreadSample;

/// Version of the on-disk layout of every JSON file procshot writes.
pub const SCHEMA_VERSION: u32 = 1;

/// One capture file: the samples of one kind.
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

/// Everything sampled in one capture; a kind not captured is `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CaptureData {
    /// `fds.json`.
    pub fds: Option<Series<FdSample>>,
    /// `threads.json`.
    pub threads: Option<Series<ThreadSample>>,
    /// `memory.json`.
    pub memory: Option<Series<MemorySample>>,
    /// `goroutines.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goroutines: Option<Series<GoroutineSample>>,
    /// `stacks.json` (taken once, after the last sample).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stacks: Option<StacksCapture>,
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
}
