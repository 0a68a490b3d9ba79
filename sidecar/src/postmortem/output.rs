//! The post-mortem directory, laid out like a capture's: `container.log` (the part of the log
//! read), `crash.json`, `summary.json` (the findings), `report.md`, `report.html` and, last,
//! `manifest.json` listing every file with its size and sha256, so that `procshot upload`
//! sends it like any capture.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ContainerExit, LogSummary, Postmortem, PostmortemError, SCHEMA_VERSION};
use crate::analysis::Finding;
use crate::artifacts::{self, FileEntry, Tool};

/// `crash.json`.
pub const CRASH_FILE: &str = "crash.json";
/// `container.log`: the log as read (its end, at most the bytes asked for; decompressed).
pub const LOG_FILE: &str = "container.log";

/// `summary.json` of a post-mortem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostmortemSummary {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `postmortem`: what kind of directory this is.
    pub kind: String,
    /// How the container ended.
    pub exit: ContainerExit,
    /// What was read of the log.
    pub log: LogSummary,
    /// Crash traces in the log.
    pub traces: usize,
    /// The findings, most serious first.
    pub findings: Vec<Finding>,
}

/// `manifest.json` of a post-mortem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostmortemManifest {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `postmortem`.
    pub kind: String,
    /// The tool that wrote it.
    pub tool: Tool,
    /// When the post-mortem ran (an upload files the directory under this time).
    pub started_at: DateTime<Utc>,
    /// Where the log came from (a path, or what the caller names it: `pods/log?previous=true`).
    pub log_source: String,
    /// Bytes of the log before the part read (and copied to `container.log`).
    pub log_bytes_not_read: u64,
    /// Every file with its size and sha256.
    pub files: Vec<FileEntry>,
}

/// What [`write`] needs besides the post-mortem.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// Where the log came from.
    pub name: &'a str,
    /// The bytes that were decoded (copied as `container.log`).
    pub bytes: &'a [u8],
}

/// Writes the post-mortem into `dir`, which must be absent or empty.
pub fn write(
    dir: &Path,
    postmortem: &Postmortem,
    source: Source<'_>,
) -> Result<(), PostmortemError> {
    artifacts::create_output_dir(dir)?;
    let crash = &postmortem.crash;
    let summary = PostmortemSummary {
        schema_version: SCHEMA_VERSION,
        kind: "postmortem".into(),
        exit: crash.exit.clone(),
        log: crash.log.clone(),
        traces: crash.traces.total,
        findings: postmortem.findings.clone(),
    };
    let document = super::report::document(postmortem, source.name);
    let files = vec![
        artifacts::write_artifact(dir, LOG_FILE, source.bytes)?,
        artifacts::write_json(dir, CRASH_FILE, crash, true)?,
        artifacts::write_json(dir, artifacts::SUMMARY_FILE, &summary, true)?,
        artifacts::write_artifact(
            dir,
            artifacts::REPORT_MD_FILE,
            crate::report::render_markdown(&document).as_bytes(),
        )?,
        artifacts::write_artifact(
            dir,
            artifacts::REPORT_HTML_FILE,
            crate::report::render_html(&document).as_bytes(),
        )?,
    ];
    let manifest = PostmortemManifest {
        schema_version: SCHEMA_VERSION,
        kind: "postmortem".into(),
        tool: Tool::current(),
        started_at: Utc::now(),
        log_source: source.name.to_string(),
        log_bytes_not_read: crash.log.damage.bytes_not_read,
        files,
    };
    artifacts::write_json(dir, artifacts::MANIFEST_FILE, &manifest, true)?;
    Ok(())
}
