//! Go crash traces: `panic: …` (with `[recovered]` chains and a runtime error's
//! `[signal …]` line), `fatal error: …` (with the `runtime:` lines before it), a signal the
//! runtime dies on with a trace (`SIGQUIT: quit` / `PC=…`), and goroutine stacks whose first
//! line the log lost. The goroutine blocks are read by the goroutine-dump parser
//! ([`crate::captures::goroutines::dump::read_trace`]): a crash trace is a goroutine dump.
//!
//! The program's own code is told from the frames' files: the runtime and standard library
//! live under GOROOT (inferred from any standard-library frame, `…/src/sync/waitgroup.go`),
//! dependencies under the module cache (`…/pkg/mod/…@v…`) or `vendor/`; what is left is the
//! program's.

use super::{CrashTrace, Language, SourceFrame, TraceGoroutine, TraceKind, View};
use super::{MAX_MESSAGE_CHARS, shorten};
use crate::captures::goroutines::dump::{self, Frame, TraceSection};

/// Lines between a trace's first line and its first goroutine that are still read as its
/// message (a panic value may span lines).
const MAX_MESSAGE_LINES: usize = 50;
/// `runtime:` lines before `fatal error:` that belong to it.
const MAX_RUNTIME_LINES: usize = 10;
/// Go prints about 100 frames of a goroutine (Go 1.19: 99 below a user panic's hidden
/// `gopanic`); before Go 1.21 it may stop there without saying so.
const RUNTIME_MAX_FRAMES: usize = 99;

/// Every Go trace in `view`.
pub(super) fn find(view: &View<'_>) -> Vec<CrashTrace> {
    let mut traces = Vec::new();
    let mut at = 0;
    if let Some((trace, end)) = headless(view) {
        traces.push(trace);
        at = end;
    }
    while at < view.lines.len() {
        match start_kind(view, at) {
            Some(kind) => {
                let (trace, end) = read(view, at, kind);
                traces.push(trace);
                at = end.max(at + 1);
            }
            None => at += 1,
        }
    }
    traces
}

/// What kind of Go trace starts at `view.lines[at]`, if one does.
fn start_kind(view: &View<'_>, at: usize) -> Option<TraceKind> {
    let line = view.lines[at];
    if line.starts_with("panic: ") {
        Some(TraceKind::Panic)
    } else if line.starts_with("fatal error: ") {
        Some(TraceKind::FatalError)
    } else if dump::starts_another_trace(line)
        && view
            .lines
            .get(at + 1)
            .is_some_and(|next| next.starts_with("PC="))
    {
        Some(TraceKind::Signal)
    } else {
        None
    }
}

/// Goroutine stacks at the start of the log with no first line before them: the log was
/// cut inside a trace. Returns the trace and the index after it.
fn headless(view: &View<'_>) -> Option<(CrashTrace, usize)> {
    let first = view.lines.iter().position(|l| !l.trim().is_empty())?;
    let opening = view.lines[first];
    let inside_a_stack = opening.starts_with('\t')
        || (opening.starts_with("goroutine ") && opening.trim_end().ends_with("]:"))
        || view
            .lines
            .get(first + 1)
            .is_some_and(|next| next.starts_with('\t') && next.contains(".go:"));
    if !inside_a_stack {
        return None;
    }
    let section = dump::read_trace(&view.lines[first..]);
    let cut_goroutine = section
        .headless
        .as_ref()
        .filter(|h| !h.frames.is_empty() || h.created_by.is_some());
    if section.goroutines.is_empty() && cut_goroutine.is_none() {
        return None;
    }
    let end = first + section.lines_read;
    let mut trace = build(
        view,
        TraceKind::Goroutines,
        String::new(),
        Vec::new(),
        &section,
    );
    trace.first_line = view.line_number(first);
    trace.last_line = view.line_number(end.saturating_sub(1));
    trace.missing.insert(
        0,
        "the log starts inside the trace: its panic: or fatal error: line is not in it".into(),
    );
    if cut_goroutine.is_some() {
        trace.missing.insert(
            1,
            "the crashing goroutine's header (its id and state) and its innermost frames may be cut too".into(),
        );
    }
    Some((trace, end))
}

/// Reads the trace starting at `view.lines[start]`; returns it and the index after it.
fn read(view: &View<'_>, start: usize, kind: TraceKind) -> (CrashTrace, usize) {
    let lines = &view.lines;
    let header = lines[start];
    let mut details = Vec::new();
    let mut first = start;
    if kind == TraceKind::FatalError {
        // `runtime: goroutine stack exceeds …` and the like come just before.
        while first > 0
            && start - (first - 1) <= MAX_RUNTIME_LINES
            && lines[first - 1].starts_with("runtime: ")
        {
            first -= 1;
        }
        details.extend(
            lines[first..start]
                .iter()
                .map(|l| shorten(l, MAX_MESSAGE_CHARS)),
        );
    }
    let value = match kind {
        TraceKind::Panic => &header["panic: ".len()..],
        TraceKind::FatalError => &header["fatal error: ".len()..],
        _ => header,
    };
    // The panics of a chain, oldest first; the last one ended the program.
    let mut values = vec![value.to_string()];
    let mut at = start + 1;
    while at < lines.len() && at - start <= MAX_MESSAGE_LINES {
        let line = lines[at];
        if line.trim().is_empty()
            || line.starts_with("goroutine ")
            || line.trim_end() == "runtime stack:"
        {
            break;
        }
        at += 1;
        if line == header {
            // Two threads hit the same throw at once (`concurrent map writes`): one crash.
            continue;
        }
        if let Some(next) = line.strip_prefix("\tpanic: ") {
            values.push(next.to_string());
        } else if line.starts_with("[signal ") || line.starts_with("PC=") {
            details.push(shorten(line, MAX_MESSAGE_CHARS));
        } else if let Some(value) = values.last_mut() {
            // A value with newlines (indented by a tab from Go 1.23 on).
            value.push('\n');
            value.push_str(line.strip_prefix('\t').unwrap_or(line));
        }
    }
    while at < lines.len() && lines[at].trim().is_empty() {
        at += 1;
    }
    let message = strip_recovered(values.last().expect("one value at least")).to_string();
    let earlier: Vec<String> = values[..values.len() - 1]
        .iter()
        .map(|v| {
            format!(
                "recovered: {}",
                shorten(strip_recovered(v), MAX_MESSAGE_CHARS)
            )
        })
        .collect();
    details.splice(0..0, earlier);
    let section = dump::read_trace(&lines[at..]);
    let end = at + section.lines_read;
    let mut trace = build(
        view,
        kind,
        shorten(&message, MAX_MESSAGE_CHARS),
        details,
        &section,
    );
    trace.first_line = view.line_number(first);
    trace.last_line = view.line_number(end.saturating_sub(1).max(start));
    if section.goroutines.is_empty() {
        let why = if end >= lines.len() {
            "the log ends before the trace's goroutine stacks"
        } else {
            "the trace has no goroutine stacks (GOTRACEBACK=none, or cut)"
        };
        trace.missing.insert(0, why.to_string());
    }
    (trace, end.max(at))
}

/// `value [recovered]` / `value [recovered, repanicked]` → `value`.
fn strip_recovered(value: &str) -> &str {
    match value.rfind(" [recovered") {
        Some(at) if value.ends_with(']') => &value[..at],
        _ => value,
    }
}

/// The trace of `section` (the crashing goroutine is the first one printed).
fn build(
    view: &View<'_>,
    kind: TraceKind,
    message: String,
    details: Vec<String>,
    section: &TraceSection,
) -> CrashTrace {
    let goroot = goroot(section);
    let convert = |frame: &Frame| source_frame(frame, goroot.as_deref());
    let cut = section
        .headless
        .as_ref()
        .filter(|h| !h.frames.is_empty() || h.created_by.is_some())
        .map(|h| TraceGoroutine {
            id: None,
            state: String::new(),
            wait_minutes: None,
            frames: h.frames.iter().map(convert).collect(),
            elided: h.elided,
            created_by: h.created_by.as_ref().map(convert),
        });
    let goroutines: Vec<TraceGoroutine> = cut
        .into_iter()
        .chain(section.goroutines.iter().map(|g| TraceGoroutine {
            id: Some(g.id),
            state: g.state.clone(),
            wait_minutes: g.wait_minutes,
            frames: g.frames.iter().map(convert).collect(),
            elided: g.elided,
            created_by: g.created_by.as_ref().map(convert),
        }))
        .collect();
    let mut missing = Vec::new();
    let crashed = goroutines.first();
    if let Some(g) = crashed {
        if g.frames.is_empty() {
            missing.push(format!(
                "{} has no frames in the log",
                describe_goroutine(g)
            ));
        } else if g.elided {
            missing.push(format!(
                "the runtime elided frames of {} (a deep stack): frames between the top and the bottom are missing",
                describe_goroutine(g)
            ));
        } else if g.frames.len() >= RUNTIME_MAX_FRAMES
            && g.created_by.is_none()
            && !g.frames.last().is_some_and(is_outermost)
        {
            missing.push(format!(
                "{} shows {} frames, about the most the runtime prints, and does not reach its start: its outer frames are missing",
                describe_goroutine(g),
                g.frames.len()
            ));
        }
    }
    if section.ends_inside_frame {
        missing.push("the log ends inside the trace: its last frames are cut".into());
    }
    if section.foreign_lines > 0 {
        missing.push(format!(
            "{} line(s) inside the trace are other output and were skipped",
            section.foreign_lines
        ));
    }
    CrashTrace {
        language: Language::Go,
        kind,
        message,
        details,
        thread: crashed.map(describe_goroutine),
        location: crashed.and_then(|g| location(&g.frames)),
        frames: crashed.map(|g| g.frames.clone()).unwrap_or_default(),
        created_by: crashed.and_then(|g| g.created_by.clone()),
        goroutines,
        missing,
        stream: view.stream,
        first_line: 0,
        last_line: 0,
    }
}

/// Whether a frame is where a goroutine's stack starts (`main.main` for the main goroutine
/// when the runtime's own frames are hidden).
fn is_outermost(frame: &SourceFrame) -> bool {
    matches!(
        frame.function.as_deref(),
        Some("main.main" | "runtime.main" | "runtime.goexit")
    )
}

/// `goroutine 6 [running]`, `goroutine 1 [chan receive, 12 minutes]`.
fn describe_goroutine(g: &TraceGoroutine) -> String {
    let Some(id) = g.id else {
        return "a goroutine whose header is cut".into();
    };
    match g.wait_minutes {
        Some(minutes) => format!("goroutine {id} [{}, {minutes} minutes]", g.state),
        None => format!("goroutine {id} [{}]", g.state),
    }
}

/// The first frame of the program's own code; else the first frame outside the runtime
/// (marked not own code); else the top frame.
fn location(frames: &[SourceFrame]) -> Option<SourceFrame> {
    frames
        .iter()
        .find(|f| f.own_code)
        .or_else(|| {
            frames.iter().find(|f| {
                f.function.as_deref().is_some_and(|name| {
                    name != "panic"
                        && !name.starts_with("runtime.")
                        && !name.starts_with("runtime/")
                })
            })
        })
        .or_else(|| frames.first())
        .cloned()
}

/// GOROOT, from a standard-library frame: `/usr/lib/go-1.19/src/sync/waitgroup.go` in
/// package `sync` → `/usr/lib/go-1.19`. `None` when no frame shows it (a `-trimpath` build
/// prints `sync/waitgroup.go`).
fn goroot(section: &TraceSection) -> Option<String> {
    let frames = section
        .goroutines
        .iter()
        .flat_map(|g| g.frames.iter().chain(g.created_by.iter()))
        .chain(section.runtime_stack.iter().flatten());
    for frame in frames {
        let package = frame.package();
        if package.split('/').next().is_some_and(|p| p.contains('.')) || package == "main" {
            continue;
        }
        if let Some(at) = frame.file.find(&format!("/src/{package}/")) {
            return Some(frame.file[..at].to_string());
        }
    }
    None
}

/// Converts a dump frame, telling whether it is the program's own code.
fn source_frame(frame: &Frame, goroot: Option<&str>) -> SourceFrame {
    let file = (!frame.file.is_empty()).then(|| frame.file.clone());
    SourceFrame {
        function: Some(frame.function.clone()),
        file,
        line: (frame.line > 0).then_some(frame.line),
        column: None,
        own_code: is_own_code(frame, goroot),
    }
}

fn is_own_code(frame: &Frame, goroot: Option<&str>) -> bool {
    let file = frame.file.as_str();
    // `panic`, `gopanic`: the runtime's builtins have no package.
    if !frame.function.contains('.') {
        return false;
    }
    if let Some(goroot) = goroot
        && file.starts_with(&format!("{goroot}/src/"))
    {
        return false;
    }
    let dependency = file.contains("/pkg/mod/")
        || file.contains("/vendor/")
        || file.starts_with("vendor/")
        || file.split('/').any(|part| part.contains("@v"));
    if dependency {
        return false;
    }
    let package = frame.package();
    let first = package.split('/').next().unwrap_or_default();
    if package == "main" || first.contains('.') {
        return true;
    }
    // A package without a domain: the standard library, unless GOROOT is known and the
    // file is elsewhere (a module named without a dot, `module api`).
    match goroot {
        Some(_) => !file.is_empty(),
        None => {
            !(file.is_empty()
                || file.contains(&format!("/src/{package}/"))
                || file.starts_with(&format!("{package}/")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traces(text: &str) -> Vec<CrashTrace> {
        find(&super::super::plain_view(text))
    }

    const RECOVERED: &str = "level=info msg=starting
panic: settings.yaml: unexpected end of file [recovered]
\tpanic: settings: giving up after settings.yaml: unexpected end of file

goroutine 1 [running]:
main.loadSettings.func1()
\t/src/crashes/main.go:75 +0x6e
panic({0x48d380, 0x4bd510})
\t/usr/lib/go-1.19/src/runtime/panic.go:884 +0x212
main.loadSettings()
\t/src/crashes/main.go:78 +0x49
main.main()
\t/src/crashes/main.go:128 +0x2a5
";

    #[test]
    fn a_recovered_chain_ends_with_the_last_panic() {
        let found = traces(RECOVERED);
        assert_eq!(found.len(), 1);
        let trace = &found[0];
        assert_eq!(trace.kind, TraceKind::Panic);
        assert_eq!(
            trace.message,
            "settings: giving up after settings.yaml: unexpected end of file"
        );
        assert_eq!(
            trace.details,
            ["recovered: settings.yaml: unexpected end of file"]
        );
        assert_eq!(trace.thread.as_deref(), Some("goroutine 1 [running]"));
        let location = trace.location.as_ref().unwrap();
        assert_eq!(
            location.function.as_deref(),
            Some("main.loadSettings.func1")
        );
        assert_eq!(location.short_location().unwrap(), "crashes/main.go:75");
        assert!(location.own_code);
        assert!(!trace.frames[1].own_code, "panic() is the runtime's");
        assert_eq!((trace.first_line, trace.last_line), (2, 13));
        assert!(trace.missing.is_empty(), "{:?}", trace.missing);
    }

    #[test]
    fn standard_library_and_dependencies_are_not_own_code() {
        let found = traces(
            "panic: sync: negative WaitGroup counter

goroutine 1 [running]:
sync.(*WaitGroup).Add(0x495080?, 0x4bd501?)
\t/usr/local/go/src/sync/waitgroup.go:83 +0xda
github.com/lib/pq.(*conn).Close(...)
\t/root/go/pkg/mod/github.com/lib/pq@v1.10.9/conn.go:12
api/internal/jobs.finish(0x7fc12bff3000?)
\t/app/internal/jobs/jobs.go:46 +0x25
main.main()
\t/app/main.go:112 +0x2f9
",
        );
        let trace = &found[0];
        let own: Vec<bool> = trace.frames.iter().map(|f| f.own_code).collect();
        // `api/internal/jobs` has no domain but lives outside GOROOT: the program's.
        assert_eq!(own, [false, false, true, true]);
        assert_eq!(
            trace.location.as_ref().unwrap().function.as_deref(),
            Some("api/internal/jobs.finish")
        );
    }

    #[test]
    fn a_fatal_error_keeps_its_runtime_lines_and_stacks() {
        let found = traces(
            "runtime: goroutine stack exceeds 4194304-byte limit
runtime: sp=0xc00051e368 stack=[0xc00051e000, 0xc00091e000]
fatal error: stack overflow

runtime stack:
runtime.throw({0x49e908?, 0x51e980?})
\t/usr/lib/go-1.19/src/runtime/panic.go:1047 +0x5d fp=0x7ffe7a060720 sp=0x7ffe7a0606f0 pc=0x43207d

goroutine 1 [running]:
main.recurse(0xaa9a?)
\t/src/main.go:65 +0x85 fp=0xc00051e378 sp=0xc00051e370 pc=0x4843e5
...additional frames elided...

goroutine 2 [force gc (idle)]:
runtime.gopark(0x0?, 0x0?, 0x0?, 0x0?, 0x0?)
\t/usr/lib/go-1.19/src/runtime/proc.go:363 +0xd6 fp=0xc000044fb0 sp=0xc000044f90 pc=0x434ab6
created by runtime.init.6
\t/usr/lib/go-1.19/src/runtime/proc.go:293 +0x25
exit status 2
",
        );
        let trace = &found[0];
        assert_eq!(trace.kind, TraceKind::FatalError);
        assert_eq!(trace.message, "stack overflow");
        assert_eq!(trace.details.len(), 2);
        assert_eq!(trace.goroutines.len(), 2);
        assert_eq!(trace.frames[0].line, Some(65));
        assert!(trace.missing[0].contains("elided"), "{:?}", trace.missing);
        assert_eq!((trace.first_line, trace.last_line), (1, 18));
    }

    #[test]
    fn a_throw_printed_by_two_threads_is_one_trace() {
        let found = traces(
            "fatal error: concurrent map writes
fatal error: concurrent map writes

goroutine 7 [running]:
main.recordHits(0x0?, 0x3e8)
\t/src/main.go:52 +0x65
",
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].message, "concurrent map writes");
        assert_eq!(found[0].goroutines.len(), 1);
    }

    #[test]
    fn a_runtime_error_keeps_its_signal_line() {
        let found = traces(
            "panic: runtime error: invalid memory address or nil pointer dereference
[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x48413d]

goroutine 1 [running]:
main.(*server).handle(0x7feb885f2300?, {0x49d490?, 0x0?})
\t/src/main.go:41 +0x1d
",
        );
        assert_eq!(
            found[0].details,
            ["[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x48413d]"]
        );
        assert_eq!(
            found[0].message,
            "runtime error: invalid memory address or nil pointer dereference"
        );
    }

    #[test]
    fn several_traces_and_a_signal_dump_are_all_found() {
        let found = traces(
            "panic: first

goroutine 1 [running]:
main.main()
\t/src/main.go:3 +0x1
SIGQUIT: quit
PC=0x457be0 m=0 sigcode=0

goroutine 0 [idle]:
runtime.epollwait()
\t/usr/lib/go/src/runtime/sys_linux_amd64.s:689 +0x20 fp=0x1 sp=0x2 pc=0x3

rax    0xfffffffffffffffc
",
        );
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].kind, TraceKind::Signal);
        assert_eq!(found[1].message, "SIGQUIT: quit");
        assert_eq!(found[1].details, ["PC=0x457be0 m=0 sigcode=0"]);
    }

    #[test]
    fn a_log_cut_inside_a_trace_says_so() {
        let found = traces(
            "\t/src/main.go:61 +0x25
main.descend(0x0?)
\t/src/main.go:61 +0x25

goroutine 7 [running]:
main.work()
\t/src/main.go:9 +0x25
main.more(",
        );
        let trace = &found[0];
        assert_eq!(trace.kind, TraceKind::Goroutines);
        assert!(trace.message.is_empty());
        // The first goroutine is the one whose header was cut: its frames count.
        assert_eq!(
            trace.thread.as_deref(),
            Some("a goroutine whose header is cut")
        );
        assert_eq!(trace.goroutines.len(), 2);
        assert_eq!(trace.goroutines[1].id, Some(7));
        assert_eq!(trace.frames[0].function.as_deref(), Some("main.descend"));
        assert!(trace.missing[0].contains("starts inside the trace"));
        assert!(
            trace
                .missing
                .iter()
                .any(|m| m.contains("last frames are cut"))
        );
        // The cut frame keeps its name and no made-up location.
        let cut = &trace.goroutines[1].frames[1];
        assert_eq!(cut.function.as_deref(), Some("main.more("));
        assert_eq!(cut.file, None);
    }

    #[test]
    fn a_panic_line_alone_is_a_trace_without_stacks() {
        let found = traces("panic: boom");
        assert_eq!(found[0].message, "boom");
        assert!(found[0].frames.is_empty() && found[0].location.is_none());
        assert!(found[0].missing[0].contains("ends before"));
    }
}
