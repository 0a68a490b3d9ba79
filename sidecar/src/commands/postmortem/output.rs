//! The post-mortem directory, laid out like a capture's: `container.log` (the part of the log
//! read), `crash.json`, `summary.json` (the findings), `report.md`, `report.html` and, last,
//! `manifest.json` listing every file with its size and sha256, so that `procshot upload`
//! sends it like any capture.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ContainerExit, LogSummary, Postmortem, PostmortemError, SCHEMA_VERSION};
use crate::analysis::Finding;
use crate::directory::{self, Tool};
use crate::files::FileEntry;

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
    let mut files = directory::create_output_dir(dir)?;
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
    files.bytes(LOG_FILE, source.bytes)?;
    files.json(CRASH_FILE, crash, true)?;
    files.json(directory::SUMMARY_FILE, &summary, true)?;
    files.bytes(
        directory::REPORT_MD_FILE,
        crate::report::render_markdown(&document).as_bytes(),
    )?;
    files.bytes(
        directory::REPORT_HTML_FILE,
        crate::report::render_html(&document).as_bytes(),
    )?;
    let manifest = PostmortemManifest {
        schema_version: SCHEMA_VERSION,
        kind: "postmortem".into(),
        tool: Tool::current(),
        started_at: Utc::now(),
        log_source: source.name.to_string(),
        log_bytes_not_read: crash.log.damage.bytes_not_read,
        files: files.into_entries(),
    };
    crate::files::write_json(dir, directory::MANIFEST_FILE, &manifest, true)?;
    Ok(())
}
