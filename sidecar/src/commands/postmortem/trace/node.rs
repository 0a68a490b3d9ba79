//! Node.js uncaught exceptions and unhandled rejections, as Node prints them before it
//! exits: the throw site (`/app/server.js:12`, its source line, a `^` marker), a blank
//! line, the error (`TypeError: …`), its `    at …` stack, an optional `{ code: … }` block
//! and, from Node 17 on, `Node.js vX.Y.Z`. A trace is recognized by the throw-site block or
//! by that last line, so that stacks a program logs itself are not taken for its crash.
//! Also V8's `FATAL ERROR: … JavaScript heap out of memory`.

use super::{CrashTrace, Language, SourceFrame, TraceKind, View};
use super::{MAX_MESSAGE_CHARS, shorten};

/// Stack lines read.
const MAX_FRAMES: usize = 200;
/// Lines of an error's `{ … }` properties block skipped.
const MAX_PROPERTY_LINES: usize = 50;

/// Every Node.js crash in `view`.
pub(super) fn find(view: &View<'_>) -> Vec<CrashTrace> {
    let lines = &view.lines;
    let mut traces = Vec::new();
    let mut at = 0;
    while at < lines.len() {
        if let Some(site) = throw_site(lines, at) {
            let (trace, end) = read(view, at, Some(site), at + 3);
            traces.push(trace);
            at = end.max(at + 1);
        } else if is_version_line(lines[at]) {
            // A crash without a throw site (no source to show): the error is above.
            if let Some(error) = error_above(lines, at) {
                let (trace, end) = read(view, error, None, error);
                traces.push(trace);
                at = end.max(at + 1);
            } else {
                at += 1;
            }
        } else if let Some(message) = lines[at].strip_prefix("FATAL ERROR: ") {
            traces.push(v8_fatal(view, at, message));
            at += 1;
        } else {
            at += 1;
        }
    }
    traces
}

/// `Node.js v20.20.2`.
fn is_version_line(line: &str) -> bool {
    line.trim_end()
        .strip_prefix("Node.js v")
        .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()) && !v.contains(' '))
}

/// `/app/x.js:5` + source line + `    ^` at `at`: the throw site.
fn throw_site(lines: &[&str], at: usize) -> Option<SourceFrame> {
    let marker = lines.get(at + 2)?.trim();
    if marker.is_empty() || !marker.bytes().all(|b| b == b'^') {
        return None;
    }
    let (file, line) = lines[at].trim_end().rsplit_once(':')?;
    if file.is_empty() || file.contains(' ') {
        return None;
    }
    Some(SourceFrame {
        function: None,
        own_code: is_own_file(file),
        file: Some(file.to_string()),
        line: Some(line.parse().ok()?),
        column: None,
    })
}

/// Walks up from the version line over the blank line, a `{ … }` block and the stack to
/// the error line.
fn error_above(lines: &[&str], version: usize) -> Option<usize> {
    let mut at = version.checked_sub(1)?;
    while lines[at].trim().is_empty() {
        at = at.checked_sub(1)?;
    }
    if lines[at].trim_end() == "}" {
        let floor = at.saturating_sub(MAX_PROPERTY_LINES);
        while !lines[at].trim_end().ends_with('{') {
            at = at.checked_sub(1).filter(|&a| a >= floor)?;
        }
        if lines[at].trim_start().starts_with("at ") {
            // `    at … {`: the stack's last line carries the opening brace.
            while at > 0 && lines[at - 1].trim_start().starts_with("at ") {
                at -= 1;
            }
            return at.checked_sub(1);
        }
        return Some(at);
    }
    while at > 0 && lines[at].trim_start().starts_with("at ") {
        at -= 1;
    }
    (!lines[at].trim().is_empty()).then_some(at)
}

/// Reads from the error line (the first non-blank line from `error_from`) to the version
/// line or the end of its stack.
fn read(
    view: &View<'_>,
    start: usize,
    site: Option<SourceFrame>,
    error_from: usize,
) -> (CrashTrace, usize) {
    let lines = &view.lines;
    let mut at = error_from;
    while at < lines.len() && lines[at].trim().is_empty() {
        at += 1;
    }
    let Some(error) = lines.get(at).map(|l| l.trim_end().to_string()) else {
        let missing = vec!["the log ends before the error line".to_string()];
        return finish(view, start, at, site, String::new(), Vec::new(), missing);
    };
    at += 1;
    // `Error: …` may span lines before its stack.
    let mut message = error;
    let mut frames = Vec::new();
    while let Some(line) = lines.get(at) {
        let trimmed = line.trim_start();
        if let Some(frame) = trimmed.strip_prefix("at ") {
            if frames.len() < MAX_FRAMES {
                frames.push(parse_frame(frame.trim_end_matches(" {")));
            }
        } else if frames.is_empty() && !line.trim().is_empty() && !is_version_line(line) {
            message.push('\n');
            message.push_str(line);
        } else {
            break;
        }
        at += 1;
    }
    // The properties block and the blank line before the version line are the crash's.
    let limit = lines.len().min(at + MAX_PROPERTY_LINES);
    if let Some(version) = (at..limit).find(|&i| is_version_line(lines[i])) {
        at = version + 1;
    }
    finish(view, start, at, site, message, frames, Vec::new())
}

fn finish(
    view: &View<'_>,
    start: usize,
    end: usize,
    site: Option<SourceFrame>,
    message: String,
    frames: Vec<SourceFrame>,
    mut missing: Vec<String>,
) -> (CrashTrace, usize) {
    if frames.is_empty() && !message.is_empty() {
        missing.push("the error's stack is not in the log".into());
    }
    let location = frames
        .iter()
        .find(|f| f.own_code)
        .cloned()
        .or(site)
        .or_else(|| frames.first().cloned());
    let trace = CrashTrace {
        message: shorten(&message, MAX_MESSAGE_CHARS),
        details: Vec::new(),
        thread: None,
        location,
        frames,
        missing,
        ..CrashTrace::empty(Language::Nodejs, TraceKind::Exception, view, start, end)
    };
    (trace, end)
}

/// `FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory`.
fn v8_fatal(view: &View<'_>, at: usize, message: &str) -> CrashTrace {
    CrashTrace {
        message: shorten(message.trim_end(), MAX_MESSAGE_CHARS),
        ..CrashTrace::empty(Language::Nodejs, TraceKind::FatalError, view, at, at + 1)
    }
}

/// `parse (/app/x.js:1:53)`, `/app/x.js:5:8`, `async Promise.all (index 0)`.
fn parse_frame(text: &str) -> SourceFrame {
    let (function, place) = match text.strip_suffix(')').and_then(|t| t.rsplit_once(" (")) {
        Some((function, place)) => (Some(function), place),
        None => (None, text),
    };
    let mut parts = place.rsplitn(3, ':');
    let (column, line, file) = (parts.next(), parts.next(), parts.next());
    let numbers = (
        line.and_then(|l| l.parse().ok()),
        column.and_then(|c| c.parse().ok()),
    );
    let (file, line, column) = match (file, numbers) {
        (Some(file), (Some(line), Some(column))) => (Some(file), Some(line), Some(column)),
        _ => (None, None, None),
    };
    let function = match (function, file) {
        (Some(function), _) => Some(function.to_string()),
        (None, None) => Some(place.to_string()),
        (None, Some(_)) => None,
    };
    SourceFrame {
        function,
        own_code: file.is_some_and(is_own_file),
        file: file.map(str::to_string),
        line,
        column,
    }
}

/// Not Node's own (`node:internal/…`) nor a package's (`node_modules`).
fn is_own_file(file: &str) -> bool {
    !(file.starts_with("node:") || file.starts_with("internal/") || file.contains("/node_modules/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traces(text: &str) -> Vec<CrashTrace> {
        find(&super::super::plain_view(text))
    }

    #[test]
    fn an_uncaught_exception_with_its_throw_site() {
        let found = traces(
            "starting
/app/crash.js:1
function parse(body) { return JSON.parse(body).items.length; }
                                                    ^

TypeError: Cannot read properties of undefined (reading 'length')
    at parse (/app/crash.js:1:53)
    at Object.<anonymous> (/app/crash.js:5:8)
    at Module._compile (node:internal/modules/cjs/loader:1521:14)
    at node:internal/main/run_main_module:28:49

Node.js v20.20.2
",
        );
        assert_eq!(found.len(), 1);
        let trace = &found[0];
        assert_eq!(
            trace.message,
            "TypeError: Cannot read properties of undefined (reading 'length')"
        );
        assert_eq!(
            trace.location.as_ref().unwrap().describe(),
            "parse (app/crash.js:1:53)"
        );
        assert_eq!(trace.frames.len(), 4);
        assert!(!trace.frames[3].own_code);
        assert_eq!(trace.frames[3].line, Some(28));
        assert_eq!((trace.first_line, trace.last_line), (2, 12));
    }

    #[test]
    fn a_rejection_without_an_error() {
        let found = traces(
            "node:internal/process/promises:389
      new UnhandledPromiseRejection(reason);
      ^

UnhandledPromiseRejection: This error originated either by throwing inside of an async function without a catch block. The promise rejected with the reason \"plain reason\".
    at throwUnhandledRejectionsMode (node:internal/process/promises:389:7)
    at process.processTicksAndRejections (node:internal/process/task_queues:96:32) {
  code: 'ERR_UNHANDLED_REJECTION'
}

Node.js v20.20.2
",
        );
        let trace = &found[0];
        assert!(trace.message.starts_with("UnhandledPromiseRejection:"));
        // No frame of the program: the throw site inside Node is all there is.
        let location = trace.location.as_ref().unwrap();
        assert!(!location.own_code);
        assert_eq!(trace.last_line, 11);
    }

    #[test]
    fn a_crash_without_a_throw_site_and_a_heap_exhaustion() {
        let found = traces(
            "Error: boom
    at main (/app/x.js:3:9)

Node.js v18.19.0
FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory
",
        );
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].message, "Error: boom");
        assert_eq!(found[0].first_line, 1);
        assert_eq!(found[1].kind, TraceKind::FatalError);
        // A stack the program logged itself is not a crash.
        assert!(traces("Error: handled\n    at main (/app/x.js:3:9)\n").is_empty());
    }
}
