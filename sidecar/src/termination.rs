//! The summary a capture pod leaves in its termination message for the operator
//! (the `procshot-summary` contract, at most 4 KiB).

use std::path::Path;

use procshot_summary::{Counts, FindingSummary, Outcome, TerminationSummary, VERSION};

use crate::analysis::Summary;
use crate::error::OutputError;

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
                severity: f.severity.name().to_string(),
                code: f.code.clone(),
                message: f.message.clone(),
            })
            .collect(),
        truncated: false,
    }
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
