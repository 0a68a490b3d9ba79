//! Uncaught Java exceptions, as the JVM's default handler prints them:
//! `Exception in thread "NAME" CLASS: MESSAGE`, `\tat` frames, `\t... N more`, and the
//! `Caused by:` chain (the root cause last). Also `Exception: CLASS thrown from the
//! UncaughtExceptionHandler in thread "NAME"`, and `-XX:+ExitOnOutOfMemoryError`'s
//! `Terminating due to java.lang.OutOfMemoryError: …`.

use super::{CrashTrace, Language, SourceFrame, TraceKind, View};
use super::{MAX_MESSAGE_CHARS, shorten};

/// Frames read per exception of the chain.
const MAX_FRAMES: usize = 200;
/// Exceptions of a `Caused by:` chain read.
const MAX_CAUSES: usize = 20;

/// Every uncaught exception in `view`.
pub(super) fn find(view: &View<'_>) -> Vec<CrashTrace> {
    let mut traces = Vec::new();
    let mut at = 0;
    while at < view.lines.len() {
        match parse_header(view.lines[at]) {
            Some((thread, message)) => {
                let (trace, end) = read(view, at, thread, message);
                traces.push(trace);
                at = end.max(at + 1);
            }
            None => at += 1,
        }
    }
    traces
}

/// (thread, exception with message).
fn parse_header(line: &str) -> Option<(Option<String>, String)> {
    if let Some(rest) = line.strip_prefix("Exception in thread \"") {
        let (thread, exception) = rest.split_once("\" ")?;
        return Some((Some(thread.to_string()), exception.trim_end().to_string()));
    }
    if let Some(rest) = line.strip_prefix("Exception: ") {
        let (exception, thread) =
            rest.split_once(" thrown from the UncaughtExceptionHandler in thread \"")?;
        return Some((
            Some(thread.trim_end().trim_end_matches('"').to_string()),
            exception.to_string(),
        ));
    }
    let exception = line.strip_prefix("Terminating due to java.lang.OutOfMemoryError")?;
    Some((None, format!("java.lang.OutOfMemoryError{exception}")))
}

fn read(
    view: &View<'_>,
    start: usize,
    thread: Option<String>,
    message: String,
) -> (CrashTrace, usize) {
    let lines = &view.lines;
    let mut at = start + 1;
    let mut frames = read_frames(lines, &mut at);
    let mut details = Vec::new();
    let mut missing = Vec::new();
    while details.len() < MAX_CAUSES
        && let Some(cause) = lines.get(at).and_then(|l| l.strip_prefix("Caused by: "))
    {
        at += 1;
        let cause_frames = read_frames(lines, &mut at);
        let top = cause_frames
            .iter()
            .find(|f| f.own_code)
            .or(cause_frames.first())
            .map(|f| format!(" at {}", f.describe()))
            .unwrap_or_default();
        details.push(format!(
            "caused by {}{top}",
            shorten(cause.trim_end(), MAX_MESSAGE_CHARS)
        ));
    }
    if frames.is_empty() && !message.starts_with("java.lang.OutOfMemoryError") {
        missing.push("the exception's frames are not in the log".into());
    }
    frames.truncate(MAX_FRAMES);
    let location = frames
        .iter()
        .find(|f| f.own_code)
        .or(frames.first())
        .cloned();
    let trace = CrashTrace {
        message: shorten(&message, MAX_MESSAGE_CHARS),
        details,
        thread,
        location,
        frames,
        missing,
        ..CrashTrace::empty(Language::Java, TraceKind::Exception, view, start, at)
    };
    (trace, at)
}

/// Reads `\tat …` frames (and skips `\t... N more` and `\tSuppressed:` blocks' lines) from
/// `lines[*at]` on.
fn read_frames(lines: &[&str], at: &mut usize) -> Vec<SourceFrame> {
    let mut frames = Vec::new();
    while let Some(line) = lines.get(*at) {
        let trimmed = line.trim_start();
        let indented = line.len() > trimmed.len();
        if !indented {
            break;
        }
        if let Some(frame) = trimmed.strip_prefix("at ") {
            if frames.len() < MAX_FRAMES {
                frames.push(parse_frame(frame));
            }
        } else if !(trimmed.starts_with("...")
            || trimmed.starts_with("Suppressed: ")
            || trimmed.starts_with("Caused by: "))
        {
            break;
        }
        *at += 1;
    }
    frames
}

/// `java.base/java.lang.Integer.parseInt(Integer.java:668)` → function, file, line.
fn parse_frame(text: &str) -> SourceFrame {
    let (function, place) = match text.split_once('(') {
        Some((function, place)) => (function, place.trim_end().trim_end_matches(')')),
        None => (text, ""),
    };
    // `java.base/…` (a module) and `app//…` (a class loader) name where the class came from.
    let (module, function) = match function.rsplit_once('/') {
        Some((module, function)) => (Some(module), function),
        None => (None, function),
    };
    let (file, line) = match place.rsplit_once(':') {
        Some((file, line)) => (Some(file), line.parse().ok()),
        None if place.is_empty() || place == "Native Method" || place == "Unknown Source" => {
            (None, None)
        }
        None => (Some(place), None),
    };
    let platform = module.is_some_and(|m| m.starts_with("java.") || m.starts_with("jdk."))
        || ["java.", "javax.", "jdk.", "sun.", "com.sun."]
            .iter()
            .any(|p| function.starts_with(p));
    SourceFrame {
        function: Some(function.to_string()),
        file: file.map(str::to_string),
        line,
        column: None,
        own_code: !platform,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traces(text: &str) -> Vec<CrashTrace> {
        find(&super::super::plain_view(text))
    }

    #[test]
    fn an_exception_with_its_cause() {
        let found = traces(
            "starting
Exception in thread \"main\" java.lang.IllegalStateException: bad configuration
\tat Crash.connect(Crash.java:6)
\tat Crash.main(Crash.java:17)
Caused by: java.lang.NumberFormatException: For input string: \"80a\"
\tat java.base/java.lang.NumberFormatException.forInputString(NumberFormatException.java:67)
\tat java.base/java.lang.Integer.parseInt(Integer.java:668)
\tat Crash.port(Crash.java:3)
\t... 1 more
next line
",
        );
        let trace = &found[0];
        assert_eq!(
            trace.message,
            "java.lang.IllegalStateException: bad configuration"
        );
        assert_eq!(trace.thread.as_deref(), Some("main"));
        assert_eq!(
            trace.location.as_ref().unwrap().describe(),
            "Crash.connect (Crash.java:6)"
        );
        assert_eq!(
            trace.details,
            [
                "caused by java.lang.NumberFormatException: For input string: \"80a\" at Crash.port (Crash.java:3)"
            ]
        );
        assert_eq!((trace.first_line, trace.last_line), (2, 9));
    }

    #[test]
    fn platform_frames_are_not_own_code() {
        let frame = parse_frame("java.base/java.lang.Thread.run(Thread.java:840)");
        assert_eq!(frame.function.as_deref(), Some("java.lang.Thread.run"));
        assert!(!frame.own_code);
        let frame = parse_frame("app//com.acme.Api.serve(Api.kt:12)");
        assert!(frame.own_code);
        assert_eq!(frame.line, Some(12));
        let frame = parse_frame("jdk.internal.misc.Unsafe.park(Native Method)");
        assert_eq!((frame.file, frame.own_code), (None, false));
    }

    #[test]
    fn other_forms_of_an_uncaught_error() {
        let found = traces(
            "Exception: java.lang.OutOfMemoryError thrown from the UncaughtExceptionHandler in thread \"pool-1\"\nTerminating due to java.lang.OutOfMemoryError: Java heap space\n",
        );
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].thread.as_deref(), Some("pool-1"));
        assert_eq!(found[0].message, "java.lang.OutOfMemoryError");
        assert_eq!(
            found[1].message,
            "java.lang.OutOfMemoryError: Java heap space"
        );
        assert!(found[1].missing.is_empty());
    }
}
