//! The summary a capture pod leaves in its termination message for the operator
//! (the `procshot-api` contract, at most 4 KiB).

use std::path::Path;

use procshot_api::{Artifact, Counts, FindingSummary, Outcome, TerminationSummary, VERSION};

use crate::analysis::Summary;
use crate::directory::SUMMARY_FILE;
use crate::error::{OutputError, UploadError};

/// The summary of a capture that produced a directory (complete or partial).
pub fn from_summary(summary: &Summary, target_pid: i32) -> TerminationSummary {
    let last = summary.samples.last();
    let counts = last.map(|s| Counts {
        fds: s.fds.as_ref().map(|f| f.total),
        fd_soft_limit: s.fds.as_ref().and_then(|f| f.soft_limit),
        threads: s.threads.as_ref().map(|t| t.total),
        rss_bytes: s.memory.as_ref().and_then(|m| m.rss_bytes),
        cgroup_working_set_bytes: s.memory.as_ref().and_then(|m| m.cgroup_working_set_bytes),
        cgroup_limit_bytes: s.memory.as_ref().and_then(|m| m.cgroup_limit_bytes),
        goroutines: s.goroutines,
    });
    TerminationSummary {
        version: VERSION,
        outcome: if summary.partial.is_some() {
            Outcome::Partial
        } else {
            Outcome::Succeeded
        },
        message: summary.partial.clone().unwrap_or_default(),
        target_pid: Some(target_pid),
        counts,
        samples: summary.samples.len() as u32,
        findings: summary
            .findings
            .iter()
            .map(|f| FindingSummary {
                severity: f.severity,
                code: f.code.clone(),
                message: f.message.clone(),
            })
            .collect(),
        artifacts: Vec::new(),
        upload_error: None,
        truncated: false,
    }
}

/// The summary of an existing capture directory, from its `summary.json` (for
/// `procshot upload --termination-summary`).
pub fn from_capture_dir(dir: &Path) -> Result<TerminationSummary, OutputError> {
    let path = dir.join(SUMMARY_FILE);
    let bad = |detail: String| OutputError::BadCapture {
        path: path.clone(),
        detail,
    };
    let text = std::fs::read(&path).map_err(|e| bad(e.to_string()))?;
    let summary: Summary = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    Ok(from_summary(&summary, summary.pid))
}

/// Adds what an upload did: the uploaded files, or why it failed. The outcome stays the
/// capture's: a failed upload does not undo a successful capture.
pub fn with_upload(
    mut summary: TerminationSummary,
    upload: &Result<Vec<Artifact>, UploadError>,
) -> TerminationSummary {
    match upload {
        Ok(artifacts) => summary.artifacts = artifacts.clone(),
        Err(e) => summary.upload_error = Some(e.to_string()),
    }
    summary
}

/// The summary of a capture that failed before writing anything.
pub fn failed(message: String, target_pid: Option<i32>) -> TerminationSummary {
    TerminationSummary {
        version: VERSION,
        outcome: Outcome::Failed,
        message,
        target_pid,
        counts: None,
        samples: 0,
        findings: Vec::new(),
        artifacts: Vec::new(),
        upload_error: None,
        truncated: false,
    }
}

/// Writes the summary, bounded to the kubelet's limit, to `path` (`/dev/termination-log`).
pub fn write(path: &Path, summary: &TerminationSummary) -> Result<(), OutputError> {
    std::fs::write(path, summary.to_bounded_json()).map_err(|source| OutputError::Write {
        path: path.to_path_buf(),
        source,
    })
}
