//! Rust panics: `thread 'NAME' panicked at FILE:LINE:COL:` and the message lines after it
//! (Rust 1.73 and later; 1.89 and later add the thread id, `thread 'main' (42) panicked`),
//! the older one-line `thread 'NAME' panicked at 'MESSAGE', FILE:LINE:COL`, a thread that
//! overflowed its stack, and the `stack backtrace:` printed with `RUST_BACKTRACE`.

use super::{CrashTrace, Language, SourceFrame, TraceKind, View};
use super::{MAX_MESSAGE_CHARS, shorten};

/// Message lines read after the header.
const MAX_MESSAGE_LINES: usize = 50;
/// Backtrace frames read.
const MAX_FRAMES: usize = 200;
/// What `join().unwrap()` panics with when the joined thread panicked.
const REPANIC_OF_JOIN: &str = "called `Result::unwrap()` on an `Err` value: Any { .. }";

/// Every Rust panic in `view`.
pub(super) fn find(view: &View<'_>) -> Vec<CrashTrace> {
    let mut traces: Vec<CrashTrace> = Vec::new();
    let mut at = 0;
    while at < view.lines.len() {
        let Some(header) = parse_header(view.lines[at]) else {
            at += 1;
            continue;
        };
        let (mut trace, end) = read(view, at, header);
        if trace.message == REPANIC_OF_JOIN
            && let Some(origin) = traces.last()
        {
            trace.details.push(format!(
                "re-raises the panic of {}: {}{}",
                origin.thread.as_deref().unwrap_or("another thread"),
                shorten(&origin.message, 300),
                origin
                    .location
                    .as_ref()
                    .and_then(|l| l.short_location())
                    .map(|l| format!(" at {l}"))
                    .unwrap_or_default()
            ));
        }
        traces.push(trace);
        at = end.max(at + 1);
    }
    traces
}

/// What the first line of a panic says.
struct Header {
    thread: String,
    kind: TraceKind,
    /// The old format's message, or the stack overflow's.
    message: Option<String>,
    location: Option<SourceFrame>,
}

fn parse_header(line: &str) -> Option<Header> {
    let rest = line.strip_prefix("thread '")?;
    let (thread, rest) = rest.split_once('\'')?;
    // Rust 1.89+: `thread 'main' (12345) panicked at`.
    let rest = match rest.strip_prefix(" (") {
        Some(id) => id.split_once(')')?.1,
        None => rest,
    };
    if rest.trim_end() == " has overflowed its stack" {
        return Some(Header {
            thread: thread.to_string(),
            kind: TraceKind::FatalError,
            message: Some("stack overflow".into()),
            location: None,
        });
    }
    let rest = rest.strip_prefix(" panicked at ")?;
    if let Some(old) = rest.strip_prefix('\'') {
        // `'MESSAGE', src/main.rs:4:5`
        let (message, location) = old.rsplit_once("', ")?;
        return Some(Header {
            thread: thread.to_string(),
            kind: TraceKind::Panic,
            message: Some(message.to_string()),
            location: parse_location(location.trim_end()),
        });
    }
    Some(Header {
        thread: thread.to_string(),
        kind: TraceKind::Panic,
        message: None,
        location: parse_location(rest.trim_end().trim_end_matches(':')),
    })
}

/// `src/main.rs:4:5` → frame with file, line and column.
fn parse_location(text: &str) -> Option<SourceFrame> {
    let (rest, column) = text.rsplit_once(':')?;
    let (file, line) = rest.rsplit_once(':')?;
    let file = file.to_string();
    Some(SourceFrame {
        function: None,
        own_code: is_own_file(&file),
        line: Some(line.parse().ok()?),
        column: Some(column.parse().ok()?),
        file: Some(file),
    })
}

/// Not the standard library (`/rustc/<hash>/library/…`) nor a crate from a registry.
fn is_own_file(file: &str) -> bool {
    !(file.starts_with("/rustc/")
        || file.contains("/.cargo/registry/")
        || file.contains("/.cargo/git/"))
}

fn read(view: &View<'_>, start: usize, header: Header) -> (CrashTrace, usize) {
    let lines = &view.lines;
    let mut at = start + 1;
    let mut message_lines: Vec<&str> = Vec::new();
    let mut details = Vec::new();
    if header.message.is_none() {
        while at < lines.len() && at - start <= MAX_MESSAGE_LINES {
            let line = lines[at];
            if line.starts_with("note: ")
                || line.starts_with("stack backtrace:")
                || parse_header(line).is_some()
                || (line.trim().is_empty() && !message_lines.is_empty())
            {
                break;
            }
            message_lines.push(line);
            at += 1;
        }
    }
    let mut frames = Vec::new();
    let mut missing = Vec::new();
    while at < lines.len() {
        let line = lines[at];
        if line.starts_with("note: ")
            || line.starts_with("fatal runtime error: ")
            || line.starts_with("thread caused non-unwinding panic")
            || line.starts_with("panicked while processing panic")
        {
            if !line.starts_with("note: ") {
                details.push(shorten(line, MAX_MESSAGE_CHARS));
            }
            at += 1;
            continue;
        }
        if line.starts_with("stack backtrace:") {
            at = read_backtrace(lines, at + 1, &mut frames);
            continue;
        }
        break;
    }
    let message = match header.message {
        Some(message) => message,
        None if message_lines.is_empty() => {
            missing.push("the log ends before the panic's message".into());
            String::new()
        }
        None => message_lines.join("\n"),
    };
    let location = header
        .location
        .or_else(|| frames.iter().find(|f: &&SourceFrame| f.own_code).cloned());
    if location.is_none() {
        missing.push("the panic's location is not in the log".into());
    }
    let trace = CrashTrace {
        message: shorten(&message, MAX_MESSAGE_CHARS),
        details,
        thread: Some(header.thread),
        location,
        frames,
        missing,
        ..CrashTrace::empty(Language::Rust, header.kind, view, start, at)
    };
    (trace, at)
}

/// Reads `   N: function` / `             at file:line:col` lines (also the `RUST_BACKTRACE=full`
/// form `   N:     0x55d5… - function`); returns the index after them.
fn read_backtrace(lines: &[&str], mut at: usize, frames: &mut Vec<SourceFrame>) -> usize {
    while let Some(line) = lines.get(at) {
        let trimmed = line.trim_start();
        if let Some(location) = trimmed.strip_prefix("at ") {
            if let (Some(frame), Some(place)) = (frames.last_mut(), parse_location(location)) {
                frame.own_code = frame.own_code && place.own_code;
                frame.file = place.file;
                frame.line = place.line;
                frame.column = place.column;
            }
            at += 1;
            continue;
        }
        let Some((number, function)) = trimmed.split_once(": ") else {
            break;
        };
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            break;
        }
        at += 1;
        if frames.len() >= MAX_FRAMES {
            continue;
        }
        let function = function
            .split_once(" - ")
            .filter(|(address, _)| address.trim_start().starts_with("0x"))
            .map_or(function, |(_, name)| name)
            .trim();
        frames.push(SourceFrame {
            function: Some(function.to_string()),
            own_code: is_own_function(function),
            ..SourceFrame::default()
        });
    }
    at
}

fn is_own_function(function: &str) -> bool {
    let plain = function.trim_start_matches('<');
    ![
        "std::", "core::", "alloc::", "__rust", "rust_", "__libc", "_start", "__clone",
    ]
    .iter()
    .any(|p| plain.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traces(text: &str) -> Vec<CrashTrace> {
        find(&super::super::plain_view(text))
    }

    #[test]
    fn the_current_format_with_a_backtrace() {
        let found = traces(
            "starting
thread 'main' (29529) panicked at crash.rs:2:49:
PORT must be a number: ParseIntError { kind: InvalidDigit }
stack backtrace:
   0: __rustc::rust_begin_unwind
             at /rustc/59807616e1fa/library/std/src/panicking.rs:689:5
   3: core::result::Result<T,E>::expect
             at /rustc/59807616e1fa/library/core/src/result.rs:1185:23
   4: crash::parse_port
             at ./crash.rs:2:49
note: Some details are omitted, run with `RUST_BACKTRACE=full` for a verbose backtrace.
",
        );
        let trace = &found[0];
        assert_eq!(
            trace.message,
            "PORT must be a number: ParseIntError { kind: InvalidDigit }"
        );
        assert_eq!(trace.thread.as_deref(), Some("main"));
        let location = trace.location.as_ref().unwrap();
        assert_eq!(location.short_location().unwrap(), "crash.rs:2:49");
        assert_eq!(trace.frames.len(), 3);
        assert!(!trace.frames[0].own_code && !trace.frames[1].own_code);
        assert!(trace.frames[2].own_code);
        assert_eq!(
            trace.frames[2].function.as_deref(),
            Some("crash::parse_port")
        );
        assert_eq!((trace.first_line, trace.last_line), (2, 11));
    }

    #[test]
    fn the_old_format_and_a_joined_thread() {
        let found = traces(
            "thread 'worker-1' panicked at 'called `Option::unwrap()` on a `None` value', src/main.rs:8:110
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace
thread 'main' panicked at src/main.rs:8:139:
called `Result::unwrap()` on an `Err` value: Any { .. }
",
        );
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[0].message,
            "called `Option::unwrap()` on a `None` value"
        );
        assert_eq!(
            found[1].details,
            [
                "re-raises the panic of worker-1: called `Option::unwrap()` on a `None` value at src/main.rs:8:110"
            ]
        );
    }

    #[test]
    fn a_stack_overflow_and_a_cut_panic() {
        let found = traces(
            "thread 'main' has overflowed its stack\nfatal runtime error: stack overflow\nthread 'x' panicked at src/lib.rs:1:1:",
        );
        assert_eq!(found[0].kind, TraceKind::FatalError);
        assert_eq!(found[0].details, ["fatal runtime error: stack overflow"]);
        assert!(found[1].missing[0].contains("message"));
        assert!(parse_header("thread 'main' said hello").is_none());
    }
}
