//! The compact JSON summary a capture pod's `capture` container writes to
//! `/dev/termination-log`, which the kubelet copies into the pod's status (at most
//! [`MAX_BYTES`]). The operator needs no API credentials in the capture pod and no procfs
//! code of its own: it only reads this.

use serde::{Deserialize, Serialize};

use crate::finding::{FindingCode, Severity};

/// The kubelet keeps at most this many bytes of a termination message.
pub const MAX_BYTES: usize = 4096;

/// Version of this contract.
pub const VERSION: u32 = 1;

/// How a capture ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Every sample was taken.
    Succeeded,
    /// Some samples were taken; `message` says why not all.
    Partial,
    /// Nothing usable was captured; `message` says why.
    Failed,
}

/// What a capture pod reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TerminationSummary {
    /// [`VERSION`].
    pub version: u32,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it is partial or failed (empty on success).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The target's host pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_pid: Option<i32>,
    /// Counts of the last sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<Counts>,
    /// Samples taken.
    #[serde(default)]
    pub samples: u32,
    /// Findings, most serious first (possibly cut to fit).
    #[serde(default)]
    pub findings: Vec<FindingSummary>,
    /// Where the capture's files were uploaded (empty when not uploaded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<Artifact>,
    /// Why the upload failed, when it did (the files then stay in the capture pod until
    /// its deadline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_error: Option<String>,
    /// Whether findings were left out to fit [`MAX_BYTES`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// The headline numbers of the last sample.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Open fds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fds: Option<u64>,
    /// Soft fd limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fd_soft_limit: Option<u64>,
    /// Threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u64>,
    /// Resident memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    /// Cgroup working set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_working_set_bytes: Option<u64>,
    /// Cgroup memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_limit_bytes: Option<u64>,
    /// Goroutines (Go programs captured with their pprof endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goroutines: Option<u64>,
}

/// One uploaded file of a capture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct Artifact {
    /// File name in the capture directory (`fds.json`, `report.html`, …).
    pub name: String,
    /// Where it was uploaded (`s3://bucket/prefix/ns/session/20261122T101500Z/fds.json`).
    pub url: String,
    /// Size.
    pub bytes: u64,
    /// Hex sha256, as in the manifest.
    pub sha256: String,
}

/// One finding, without its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingSummary {
    /// How serious.
    pub severity: Severity,
    /// Stable code.
    pub code: FindingCode,
    /// One sentence with the numbers.
    pub message: String,
}

impl TerminationSummary {
    /// Serializes to at most [`MAX_BYTES`]: findings that do not fit are dropped from the
    /// end (the least serious), then the remaining messages are shortened.
    pub fn to_bounded_json(&self) -> String {
        let mut summary = self.clone();
        loop {
            let json = serde_json::to_string(&summary).expect("summary serializes");
            if json.len() <= MAX_BYTES {
                return json;
            }
            summary.truncated = true;
            if summary.artifacts.len() > 3 {
                // The manifest lists every file: keep it and the reports.
                summary.artifacts.retain(|a| {
                    matches!(
                        a.name.as_str(),
                        "manifest.json" | "report.html" | "report.md"
                    )
                });
            } else if summary.findings.len() > 1 {
                summary.findings.pop();
            } else if let Some(finding) = summary
                .findings
                .first_mut()
                .filter(|f| f.message.len() > 200)
            {
                shorten(&mut finding.message, 200);
            } else {
                summary.findings.clear();
                shorten(&mut summary.message, 1000);
            }
        }
    }
}

/// Cuts `text` to at most `max` bytes at a character boundary, marking the cut.
fn shorten(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str("...");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(severity: Severity, i: usize, len: usize) -> FindingSummary {
        FindingSummary {
            severity,
            code: FindingCode::Other(format!("CODE_{i}")),
            message: "é".repeat(len / 2),
        }
    }

    fn summary(message: String, findings: Vec<FindingSummary>) -> TerminationSummary {
        TerminationSummary {
            version: VERSION,
            outcome: Outcome::Partial,
            message,
            target_pid: Some(42),
            counts: Some(Counts {
                fds: Some(10),
                ..Counts::default()
            }),
            samples: 3,
            findings,
            artifacts: Vec::new(),
            upload_error: None,
            truncated: false,
        }
    }

    #[test]
    fn small_summaries_are_kept_whole() {
        let summary = summary(String::new(), vec![finding(Severity::Warning, 0, 100)]);
        let json = summary.to_bounded_json();
        let back: TerminationSummary = serde_json::from_str(&json).unwrap();
        assert_eq!(back, summary);
        assert!(!back.truncated);
    }

    #[test]
    fn large_summaries_are_cut_to_fit_keeping_the_most_serious_findings() {
        // Most serious first, as procshot orders them: 5 critical, 15 warnings, 20 infos,
        // each about 330 bytes of JSON, 40 in all: about 13 KiB.
        let findings: Vec<FindingSummary> = (0..40)
            .map(|i| {
                let severity = match i {
                    0..5 => Severity::Critical,
                    5..20 => Severity::Warning,
                    _ => Severity::Info,
                };
                finding(severity, i, 300)
            })
            .collect();
        let summary = summary("partial: the deadline passed".into(), findings);
        let json = summary.to_bounded_json();
        assert!(json.len() <= MAX_BYTES, "{}", json.len());
        let back: TerminationSummary = serde_json::from_str(&json).unwrap();
        assert!(back.truncated);
        // 4 KiB holds about 11 such findings: the first ones, in order, every critical.
        assert!(
            (8..=12).contains(&back.findings.len()),
            "kept {}",
            back.findings.len()
        );
        for (i, kept) in back.findings.iter().enumerate() {
            assert_eq!(kept.code, FindingCode::Other(format!("CODE_{i}")));
            assert_eq!(kept.message.len(), 300, "messages are kept whole");
        }
        assert_eq!(
            back.findings
                .iter()
                .filter(|f| f.severity == Severity::Critical)
                .count(),
            5
        );
        assert_eq!(back.message, "partial: the deadline passed");
        assert_eq!(back.counts, summary.counts);
    }

    #[test]
    fn a_huge_message_is_shortened_after_the_findings_are_dropped() {
        let summary = summary(
            "x".repeat(10_000),
            vec![finding(Severity::Critical, 0, 300)],
        );
        let json = summary.to_bounded_json();
        assert!(json.len() <= MAX_BYTES, "{}", json.len());
        let back: TerminationSummary = serde_json::from_str(&json).unwrap();
        assert!(back.truncated);
        assert!(back.findings.is_empty());
        assert_eq!(back.message.len(), 1000);
        assert!(back.message.ends_with("..."));
    }
}
