//! Python tracebacks: `Traceback (most recent call last):`, `  File "…", line N, in F`
//! frames (outermost first) with their source lines and Python 3.11's `^^^`/`~~^~~` markers,
//! then the exception line. Chained exceptions (`During handling of the above exception,
//! another exception occurred:`, `The above exception was the direct cause of the
//! following exception:`) are one trace whose last exception is the one that ended it.

use super::{CrashTrace, Language, SourceFrame, TraceKind, View};
use super::{MAX_MESSAGE_CHARS, shorten};

const HEADER: &str = "Traceback (most recent call last):";
/// Frames read per traceback.
const MAX_FRAMES: usize = 500;
/// Tracebacks of one chain read.
const MAX_CHAIN: usize = 20;

/// Every traceback (chain) in `view`.
pub(super) fn find(view: &View<'_>) -> Vec<CrashTrace> {
    let mut traces = Vec::new();
    let mut at = 0;
    while at < view.lines.len() {
        if view.lines[at].trim_end() == HEADER {
            let (trace, end) = read_chain(view, at);
            traces.push(trace);
            at = end.max(at + 1);
        } else {
            at += 1;
        }
    }
    traces
}

/// One traceback: its frames (innermost first) and exception line.
struct Traceback {
    frames: Vec<SourceFrame>,
    exception: Option<String>,
}

fn read_chain(view: &View<'_>, start: usize) -> (CrashTrace, usize) {
    let lines = &view.lines;
    let mut chain: Vec<(Traceback, &str)> = Vec::new();
    let mut at = start;
    let mut link = "";
    loop {
        let (traceback, end) = read_traceback(lines, at + 1);
        at = end;
        chain.push((traceback, link));
        // A chained exception: blank, the sentence, blank, the next traceback.
        let next = (at..lines.len().min(at + 4)).find(|&i| !lines[i].trim().is_empty());
        let sentence = next.map(|i| lines[i].trim());
        let follows = match sentence {
            Some("During handling of the above exception, another exception occurred:") => {
                "during the handling of"
            }
            Some("The above exception was the direct cause of the following exception:") => {
                "caused by"
            }
            _ => break,
        };
        let Some(header) = (next.expect("a sentence") + 1..lines.len().min(at + 8))
            .find(|&i| lines[i].trim_end() == HEADER)
        else {
            break;
        };
        if chain.len() >= MAX_CHAIN {
            break;
        }
        link = follows;
        at = header;
    }
    let mut missing = Vec::new();
    let mut details = Vec::new();
    for pair in chain.windows(2) {
        let (earlier, _) = &pair[0];
        let (_, link) = &pair[1];
        if let Some(exception) = &earlier.exception {
            details.push(format!("{link} {}", shorten(exception, MAX_MESSAGE_CHARS)));
        }
    }
    let (last, _) = chain.pop().expect("one traceback at least");
    let message = match last.exception {
        Some(exception) => exception,
        None => {
            missing.push("the log ends before the exception line".into());
            String::new()
        }
    };
    if last.frames.is_empty() {
        missing.push("the traceback has no frames in the log".into());
    }
    // The innermost frame is where it was raised; when that is a library's, the program's
    // own innermost frame says where the program called it.
    let location = last
        .frames
        .iter()
        .find(|f| f.own_code)
        .or(last.frames.first())
        .cloned();
    let trace = CrashTrace {
        message: shorten(&message, MAX_MESSAGE_CHARS),
        details,
        thread: None,
        location,
        frames: last.frames,
        missing,
        ..CrashTrace::empty(Language::Python, TraceKind::Exception, view, start, at)
    };
    (trace, at)
}

/// Reads the frames and the exception line after a header; returns them and the index after.
fn read_traceback(lines: &[&str], mut at: usize) -> (Traceback, usize) {
    let mut frames = Vec::new();
    while let Some(line) = lines.get(at) {
        if let Some(frame) = line.strip_prefix("  File \"") {
            if frames.len() < MAX_FRAMES {
                frames.push(parse_frame(frame));
            }
            at += 1;
        } else if line.starts_with("  ") || line.starts_with('\t') {
            // Source lines, markers, `[Previous line repeated 996 more times]`.
            at += 1;
        } else {
            break;
        }
    }
    let exception = lines
        .get(at)
        .filter(|l| !l.trim().is_empty() && l.trim_end() != HEADER)
        .map(|l| l.trim_end().to_string());
    if exception.is_some() {
        at += 1;
    }
    frames.reverse();
    (Traceback { frames, exception }, at)
}

/// `/app/crash.py", line 3, in load` (after `  File "`).
fn parse_frame(text: &str) -> SourceFrame {
    let (file, rest) = text.split_once('"').unwrap_or((text, ""));
    let rest = rest.trim_start_matches(',').trim();
    let (line, function) = match rest.strip_prefix("line ") {
        Some(rest) => match rest.split_once(", in ") {
            Some((line, function)) => (line.parse().ok(), Some(function.trim().to_string())),
            None => (rest.trim().parse().ok(), None),
        },
        None => (None, None),
    };
    let library = file.contains("/site-packages/")
        || file.contains("/dist-packages/")
        || file.starts_with('<')
        || file.split('/').any(|part| {
            part.strip_prefix("python")
                .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()))
        });
    SourceFrame {
        function,
        file: Some(file.to_string()),
        line,
        column: None,
        own_code: !library,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traces(text: &str) -> Vec<CrashTrace> {
        find(&super::super::plain_view(text))
    }

    #[test]
    fn a_chained_traceback_is_one_trace() {
        let found = traces(
            "Traceback (most recent call last):
  File \"/app/crash.py\", line 9, in main
    {}[\"db\"]
    ~~^^^^^^
KeyError: 'db'

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File \"/app/crash.py\", line 13, in <module>
    main()
  File \"/app/crash.py\", line 11, in main
    raise RuntimeError(\"no database configured\") from e
RuntimeError: no database configured
after
",
        );
        assert_eq!(found.len(), 1);
        let trace = &found[0];
        assert_eq!(trace.message, "RuntimeError: no database configured");
        assert_eq!(trace.details, ["caused by KeyError: 'db'"]);
        assert_eq!(
            trace.location.as_ref().unwrap().describe(),
            "main (app/crash.py:11)"
        );
        assert_eq!(trace.frames.len(), 2);
        assert_eq!((trace.first_line, trace.last_line), (1, 14));
    }

    #[test]
    fn library_frames_point_back_to_the_program() {
        let found = traces(
            "Traceback (most recent call last):
  File \"/app/main.py\", line 4, in <module>
    requests.get(url)
  File \"/usr/lib/python3/dist-packages/requests/api.py\", line 73, in get
    return request(\"get\", url, params=params, **kwargs)
  File \"/usr/lib/python3.11/socket.py\", line 827, in create_connection
    raise err
ConnectionRefusedError: [Errno 111] Connection refused
",
        );
        let trace = &found[0];
        assert!(!trace.frames[0].own_code && !trace.frames[1].own_code);
        assert_eq!(
            trace.location.as_ref().unwrap().describe(),
            "<module> (app/main.py:4)"
        );
    }

    #[test]
    fn a_cut_traceback_says_what_is_missing() {
        let found =
            traces("Traceback (most recent call last):\n  File \"/app/x.py\", line 2, in f\n");
        assert!(found[0].missing[0].contains("exception line"));
        let found = traces("Traceback (most recent call last):\n");
        assert_eq!(found[0].missing.len(), 2);
    }
}
