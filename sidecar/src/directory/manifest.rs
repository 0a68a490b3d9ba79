//! `manifest.json`: what a capture directory holds and how it was made (who was
//! captured, when, which captures ran and how each went, why it is partial), with every
//! other file and its size and sha256.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::captures::CaptureKind;
use crate::captures::coredump::CoreRecord;
use crate::captures::goroutines::GoroutinesRecord;
use crate::files::FileEntry;
use crate::gomem::buildinfo::GoBuildInfo;
use crate::process::TargetIdentity;
use crate::report::CaptureInfo;
use crate::series::{CaptureData, KindRun};

/// `manifest.json`: what the capture holds and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Layout version.
    pub schema_version: u32,
    /// The tool that wrote it.
    pub tool: Tool,
    /// Who was captured.
    pub target: TargetIdentity,
    /// Samples asked for.
    pub samples_requested: usize,
    /// Samples taken.
    pub samples_taken: usize,
    /// Seconds between the starts of two samples.
    pub interval_seconds: f64,
    /// When the first sample started.
    pub started_at: DateTime<Utc>,
    /// When the last sample ended.
    pub finished_at: DateTime<Utc>,
    /// Each capture that ran, with the time each sample took.
    pub captures: Vec<CaptureRun>,
    /// Set when the capture is partial: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<String>,
    /// The Go build info of the target's executable, when it is a Go program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go_build_info: Option<GoBuildInfo>,
    /// Where the goroutines were read from (memory or pprof) and how the reads went, when
    /// they were captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goroutines: Option<GoroutinesRecord>,
    /// The core dump, when one was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core: Option<CoreRecord>,
    /// Every other file of the directory, with its size and sha256.
    pub files: Vec<FileEntry>,
}

/// The program that wrote a capture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    /// `procshot`.
    pub name: String,
    /// Its version.
    pub version: String,
}

impl Tool {
    /// This procshot.
    pub fn current() -> Self {
        Self {
            name: env!("CARGO_PKG_NAME").to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// One capture kind that ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaptureRun {
    /// `fds`, `threads`, `memory`, `goroutines`…
    pub kind: CaptureKind,
    /// The file it wrote.
    pub file: String,
    /// Milliseconds each sample took.
    pub sample_durations_ms: Vec<f64>,
    /// Why this capture failed (the others went on; the capture is marked partial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CaptureRun {
    /// The entry of `run`, whose data (if any) is in `data`.
    pub fn new(run: &KindRun, data: &CaptureData) -> Self {
        Self {
            kind: run.kind,
            file: data.file(run.kind).to_string(),
            sample_durations_ms: run.sample_durations_ms.clone(),
            error: run.problem.as_ref().and_then(|p| p.run_error()),
        }
    }
}

impl Manifest {
    /// What the reports say of the capture besides its data.
    pub fn info(&self) -> CaptureInfo<'_> {
        CaptureInfo {
            target: &self.target,
            go_build_info: self.go_build_info.as_ref(),
            captured_by: format!("{} {}", self.tool.name, self.tool.version),
            samples_requested: self.samples_requested,
            samples_taken: self.samples_taken,
            interval_seconds: self.interval_seconds,
            started_at: self.started_at,
        }
    }
}
