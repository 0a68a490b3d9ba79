//! Post-mortems: what a crashed container left, turned into findings. The previous
//! container's log (a kubelet CRI log file or plain text), how it ended (exit code, signal,
//! the kubelet's reason) and its memory facts (limit, the cgroup's OOM kill counter, the last
//! working set an armed watch saw) go in; findings naming the cause come out (`GO_PANIC`
//! with the program's own function, `OOM_KILLED` with the working set seen before the
//! kill, …), with the parsed trace for `crash.json`.
//!
//! Pure but for [`LogBytes::read`] and [`output::write`]: [`analyze`] takes a decoded log and
//! touches no process, no /proc and no network, so the operator can run it in-process on a
//! log it fetched from the API (`pods/log?previous=true`, plain text:
//! [`ContainerLog::parse`]) and an armed watch can pass its last sample. The log is the
//! target's output: hostile input that is bounded ([`log::MAX_LINES`],
//! [`log::MAX_LINE_BYTES`], the bytes read) and never trusted to be well formed.

pub mod cri;
pub mod exit;
pub mod findings;
pub mod log;
pub mod output;
mod report;
pub mod trace;

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use exit::{ContainerExit, LastMemorySample, OomKills};
pub use log::{ContainerLog, Damage, LogBytes, LogFormat, LogLine};
pub use trace::{CrashTrace, Language, SourceFrame, TraceKind};

use crate::analysis::Finding;
use crate::error::exit_code;

/// `crash.json` and `summary.json` layout version.
pub const SCHEMA_VERSION: u32 = 1;
/// Lines of the log's end kept in `crash.json` and the report.
pub const TAIL_LINES: usize = 50;

/// The result of a post-mortem.
#[derive(Debug, Clone, PartialEq)]
pub struct Postmortem {
    /// What `crash.json` holds.
    pub crash: CrashReport,
    /// The findings, most serious first.
    pub findings: Vec<Finding>,
}

/// `crash.json`: the parsed trace, how the container ended, and the end of its log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrashReport {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The log read.
    pub log: LogSummary,
    /// How the container ended, as far as known.
    pub exit: ContainerExit,
    /// The last memory sample before the end, from an armed watch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_memory_sample: Option<LastMemorySample>,
    /// How many crash traces the log holds.
    pub traces: TraceCount,
    /// The last one: the one that counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<CrashTrace>,
    /// The last [`TAIL_LINES`] lines of the log.
    pub tail: Vec<LogLine>,
}

/// What was read of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogSummary {
    /// How it was written.
    pub format: LogFormat,
    /// Lines kept.
    pub lines: usize,
    /// The first line's time (CRI logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_time: Option<DateTime<Utc>>,
    /// The last line's time (CRI logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_time: Option<DateTime<Utc>>,
    /// What it lost.
    pub damage: Damage,
}

/// Crash traces in the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceCount {
    /// All of them.
    pub total: usize,
    /// Per language.
    pub by_language: BTreeMap<Language, usize>,
}

/// Runs the post-mortem of a decoded log. `memory` is the last sample an armed watch took.
pub fn analyze(
    log: &ContainerLog,
    exit: ContainerExit,
    memory: Option<LastMemorySample>,
) -> Postmortem {
    let traces = trace::find(log);
    let findings = findings::find(&exit, memory.as_ref(), &traces, log);
    let mut times = log.lines.iter().filter_map(|l| l.time);
    let summary = LogSummary {
        format: log.format,
        lines: log.lines.len(),
        first_time: times.clone().next(),
        last_time: times.next_back(),
        damage: log.damage.clone(),
    };
    let tail = log.lines[log.lines.len().saturating_sub(TAIL_LINES)..].to_vec();
    Postmortem {
        crash: CrashReport {
            schema_version: SCHEMA_VERSION,
            log: summary,
            exit,
            last_memory_sample: memory,
            traces: TraceCount {
                total: traces.count,
                by_language: traces.by_language,
            },
            trace: traces.last,
            tail,
        },
        findings,
    }
}

/// What `procshot postmortem` is given.
#[derive(Debug, Clone)]
pub struct PostmortemOptions {
    /// The container's log file (CRI or plain text, possibly gzip'd).
    pub log: PathBuf,
    /// How much of its end to read.
    pub max_log_bytes: u64,
    /// How the container ended.
    pub exit: ContainerExit,
    /// The last memory sample before the end.
    pub memory: Option<LastMemorySample>,
    /// The directory to write (absent or empty).
    pub out: PathBuf,
}

/// Reads the log, runs the post-mortem and writes its directory.
pub fn run(options: &PostmortemOptions) -> Result<Postmortem, PostmortemError> {
    // Refuse an unusable directory before reading anything.
    crate::directory::check_output_dir(&options.out)?;
    let bytes = LogBytes::read(&options.log, options.max_log_bytes)?;
    let postmortem = analyze(&bytes.decode(), options.exit.clone(), options.memory);
    let name = options.log.display().to_string();
    output::write(
        &options.out,
        &postmortem,
        output::Source {
            name: &name,
            bytes: &bytes.bytes,
        },
    )?;
    Ok(postmortem)
}

/// Why a post-mortem could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PostmortemError {
    /// The log file cannot be read.
    #[error(
        "cannot read the log {path}: {source} (give the container's log file, for example \
         /var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log, or a file with \
         the output of kubectl logs --previous)"
    )]
    LogUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The output directory cannot be used or written.
    #[error(transparent)]
    Output(#[from] crate::error::OutputError),
}

impl PostmortemError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::LogUnreadable { .. } => exit_code::LOG_UNREADABLE,
            Self::Output(e) => e.exit_code(),
        }
    }
}
