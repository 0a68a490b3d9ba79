//! Crash traces in a container's log: Go panics and fatal errors, Rust panics, uncaught Java
//! exceptions, Python tracebacks and Node.js uncaught exceptions, each read by the module of
//! its runtime into one [`CrashTrace`]. Each runtime prints its trace to one stream, so in a
//! CRI log a trace is read from the lines of the stream it started in (the other stream's
//! lines interleaved with it are not part of it); in plain text from all lines.
//!
//! A parser reports only what the text carries: a frame that is not in the log is never
//! made up; what is missing (the trace's first line, frames the runtime elided, a trace cut
//! at the end of the log) is said in [`CrashTrace::missing`].

mod go;
mod java;
mod node;
mod python;
mod rust;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::cri::Stream;
use super::log::ContainerLog;

/// The runtime that printed a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Go.
    Go,
    /// Rust.
    Rust,
    /// Java (any JVM language's uncaught exception).
    Java,
    /// Python.
    Python,
    /// Node.js.
    Nodejs,
}

impl Language {
    /// The name people use: `Go`, `Rust`, `Java`, `Python`, `Node.js`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Go => "Go",
            Self::Rust => "Rust",
            Self::Java => "Java",
            Self::Python => "Python",
            Self::Nodejs => "Node.js",
        }
    }
}

/// What kind of crash a trace shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TraceKind {
    /// A panic (Go `panic:`, Rust `thread '…' panicked at`).
    Panic,
    /// Go's `fatal error:` (not recoverable), or a runtime's own fatal error (V8's
    /// `FATAL ERROR:`).
    FatalError,
    /// Go's runtime dying on a signal it prints a trace for (`SIGQUIT: quit`).
    Signal,
    /// An uncaught exception (Java, Python, Node.js).
    Exception,
    /// Go goroutine stacks whose first line (`panic:` or `fatal error:`) is not in the log.
    Goroutines,
}

/// One stack frame, as much of it as the trace printed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceFrame {
    /// The function (`main.(*server).handle`, `Crash.connect`, `load`), when printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// The source file, when printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The line in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// The column (Rust, Node.js).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    /// Whether the frame is the program's own code rather than its runtime's, its standard
    /// library's or a dependency's.
    pub own_code: bool,
}

impl SourceFrame {
    /// `file:line[:column]` with the file shortened to its last two path components, or
    /// `None` without a file.
    pub fn short_location(&self) -> Option<String> {
        let file = self.file.as_deref()?;
        let mut parts = file.rsplitn(3, '/');
        let name = parts.next().unwrap_or_default();
        let mut out = match parts.next() {
            Some(dir) => format!("{dir}/{name}"),
            None => name.to_string(),
        };
        if let Some(line) = self.line {
            out.push_str(&format!(":{line}"));
            if let Some(column) = self.column {
                out.push_str(&format!(":{column}"));
            }
        }
        Some(out)
    }

    /// `function (file:line)`, `function`, or `file:line`.
    pub fn describe(&self) -> String {
        match (self.function.as_deref(), self.short_location()) {
            (Some(function), Some(location)) => format!("{function} ({location})"),
            (Some(function), None) => function.to_string(),
            (None, Some(location)) => location,
            (None, None) => "an unknown frame".to_string(),
        }
    }
}

/// One goroutine of a Go trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceGoroutine {
    /// Its id (`None` for one whose header the log lost).
    pub id: Option<u64>,
    /// `running`, or what it waits on (`chan receive`, `semacquire`, …).
    pub state: String,
    /// How long it had waited, when the runtime printed it (from one minute on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_minutes: Option<u64>,
    /// Its frames, innermost first.
    pub frames: Vec<SourceFrame>,
    /// Whether the runtime left frames out (`...additional frames elided...`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub elided: bool,
    /// The `go` statement that started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<SourceFrame>,
}

/// A crash trace found in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrashTrace {
    /// Who printed it.
    pub language: Language,
    /// What kind of crash.
    pub kind: TraceKind,
    /// What it says happened: the panic value, the fatal error, the exception with its
    /// message (the final one, for a chain).
    pub message: String,
    /// Lines that qualify it: a Go `[signal …]` line, the `runtime:` lines before a fatal
    /// error, the panics before a re-panic, Java's `Caused by:`, Python's chained
    /// exceptions, Rust's originating panic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// The thread or goroutine that crashed: `goroutine 6 [running]`, `main`, `worker-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    /// Where: the first frame of the program's own code (innermost), or when the trace has
    /// none, the frame it points at (marked `ownCode: false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<SourceFrame>,
    /// The crashing thread's frames, innermost first.
    #[serde(default)]
    pub frames: Vec<SourceFrame>,
    /// What started the crashing goroutine (Go).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<SourceFrame>,
    /// Every goroutine of a Go trace, in the order printed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub goroutines: Vec<TraceGoroutine>,
    /// What the text did not carry: each a sentence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// The stream it was printed on (CRI logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<Stream>,
    /// Its first line in the log (1-based, among the lines kept).
    pub first_line: usize,
    /// Its last line.
    pub last_line: usize,
}

impl CrashTrace {
    /// A trace of `view.lines[start..end]` with nothing read yet.
    pub(crate) fn empty(
        language: Language,
        kind: TraceKind,
        view: &View<'_>,
        start: usize,
        end: usize,
    ) -> Self {
        Self {
            language,
            kind,
            message: String::new(),
            details: Vec::new(),
            thread: None,
            location: None,
            frames: Vec::new(),
            created_by: None,
            goroutines: Vec::new(),
            missing: Vec::new(),
            stream: view.stream,
            first_line: view.line_number(start),
            last_line: view.line_number(end.saturating_sub(1).max(start)),
        }
    }
}

/// Every crash trace of a log: the last one, and how many there were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traces {
    /// The last trace in the log: the one that counts.
    pub last: Option<CrashTrace>,
    /// Traces found, the last included.
    pub count: usize,
    /// Traces per language.
    pub by_language: BTreeMap<Language, usize>,
}

/// The lines of one stream (or of all of a plain log): what a parser reads.
pub(crate) struct View<'a> {
    /// The lines' text.
    pub lines: Vec<&'a str>,
    /// Each line's index in the log.
    pub index: Vec<usize>,
    /// The stream, for CRI logs.
    pub stream: Option<Stream>,
}

impl View<'_> {
    /// The log's 1-based line number of the view's line `at`.
    pub fn line_number(&self, at: usize) -> usize {
        self.index.get(at).map_or(0, |i| i + 1)
    }
}

/// Finds every crash trace in `log`.
pub fn find(log: &ContainerLog) -> Traces {
    let mut found: Vec<CrashTrace> = Vec::new();
    for view in views(log) {
        found.extend(go::find(&view));
        found.extend(rust::find(&view));
        found.extend(java::find(&view));
        found.extend(python::find(&view));
        found.extend(node::find(&view));
    }
    found.sort_by_key(|t| (t.first_line, t.last_line));
    let mut by_language = BTreeMap::new();
    for trace in &found {
        *by_language.entry(trace.language).or_insert(0) += 1;
    }
    Traces {
        count: found.len(),
        last: found.pop(),
        by_language,
    }
}

/// One view per stream of a CRI log (lines that are no record are noise and in none), one
/// view of everything for plain text.
fn views(log: &ContainerLog) -> Vec<View<'_>> {
    let streams: Vec<Option<Stream>> = match log.format {
        super::log::LogFormat::Cri => vec![Some(Stream::Stdout), Some(Stream::Stderr)],
        super::log::LogFormat::Plain => vec![None],
    };
    streams
        .into_iter()
        .map(|stream| {
            let (index, lines) = log
                .lines
                .iter()
                .enumerate()
                .filter(|(_, l)| stream.is_none() || l.stream == stream)
                .map(|(i, l)| (i, l.text.as_str()))
                .unzip();
            View {
                lines,
                index,
                stream,
            }
        })
        .filter(|v| !v.lines.is_empty())
        .collect()
}

/// A view of every line of `text`, as of a plain log (for the parsers' tests).
#[cfg(test)]
pub(crate) fn plain_view(text: &str) -> View<'_> {
    let lines: Vec<&str> = text.lines().collect();
    View {
        index: (0..lines.len()).collect(),
        lines,
        stream: None,
    }
}

/// Cuts `text` to at most `max` characters, marking the cut with `…`.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// The longest message or detail line kept from a trace.
pub(crate) const MAX_MESSAGE_CHARS: usize = 2000;
