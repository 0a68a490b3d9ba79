//! The text of `/debug/pprof/goroutine?debug=2` (what `runtime.Stack(buf, true)` prints):
//! parsing its `goroutine N [state, M minutes]:` blocks into goroutines, and grouping
//! goroutines that share a state and a stack.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// One goroutine of a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goroutine {
    /// The goroutine id.
    pub id: u64,
    /// What it does: `running`, `runnable`, `syscall`, or the wait reason (`semacquire`,
    /// `chan receive`, `select`, `IO wait`, `sync.Mutex.Lock`, …).
    pub state: String,
    /// How long it has been waiting, as the runtime prints it (only from 1 minute on).
    pub wait_minutes: Option<u64>,
    /// Whether it is locked to its OS thread (`runtime.LockOSThread`).
    pub locked_to_thread: bool,
    /// Its stack, innermost frame first.
    pub frames: Vec<Frame>,
    /// Whether the runtime elided frames of a deep stack.
    pub elided: bool,
    /// The `go` statement that started it.
    pub created_by: Option<Frame>,
    /// The thread it runs on, when running or in a system call (known when read from
    /// memory; a pprof dump does not say).
    pub thread: Option<i32>,
}

/// One stack frame: a function and where in its source.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Frame {
    /// The function (`main.leakTicker`, `sync.(*Mutex).Lock`), without its arguments.
    pub function: String,
    /// The source file.
    pub file: String,
    /// The line in it.
    pub line: u32,
}

impl Frame {
    /// The function's package path: `net/http.(*conn).serve` → `net/http`.
    pub fn package(&self) -> &str {
        let name = &self.function;
        let after_slash = name.rfind('/').map_or(0, |i| i + 1);
        match name[after_slash..].find('.') {
            Some(dot) => &name[..after_slash + dot],
            None => name,
        }
    }

    /// Whether the function belongs to the program rather than Go's standard library:
    /// `main`, or a package whose import path starts with a domain (`github.com/…`).
    pub fn is_program_code(&self) -> bool {
        let package = self.package();
        package == "main"
            || package
                .split('/')
                .next()
                .is_some_and(|first| first.contains('.'))
    }

    /// Whether the function is the runtime's or synchronization plumbing that every
    /// blocked goroutine shows on top of its stack.
    fn is_plumbing(&self) -> bool {
        let package = self.package();
        ["runtime", "internal", "sync", "syscall", "reflect"]
            .iter()
            .any(|p| package == *p || package.starts_with(&format!("{p}/")))
    }

    /// `file:line`, with the file shortened to its last two path components.
    pub fn short_location(&self) -> String {
        let mut parts = self.file.rsplitn(3, '/');
        let name = parts.next().unwrap_or_default();
        match parts.next() {
            Some(dir) => format!("{dir}/{name}:{}", self.line),
            None => format!("{name}:{}", self.line),
        }
    }
}

/// Goroutines with the same state and stack, counted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GoroutineGroup {
    /// How many goroutines.
    pub count: u64,
    /// Their state or wait reason.
    pub state: String,
    /// The longest wait in the group, in minutes, when the runtime printed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wait_minutes: Option<u64>,
    /// Goroutines of the group waiting for at least a minute, per the dump.
    #[serde(default)]
    pub waiting_a_minute_or_more: u64,
    /// Whether any of them is locked to its OS thread.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub locked_to_thread: bool,
    /// The shared stack, innermost frame first.
    pub frames: Vec<Frame>,
    /// Whether the runtime elided frames of the stack.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub elided: bool,
    /// The `go` statement that started them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<Frame>,
    /// Their goroutine ids, ascending (to follow the same goroutines across samples).
    pub ids: Vec<u64>,
    /// The threads those running or in a system call are on (read from memory only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub threads: Vec<i32>,
}

impl GoroutineGroup {
    /// The frame that says what these goroutines do: the first frame of the program's own
    /// code, else the first frame below the runtime's plumbing, else the top frame.
    pub fn site(&self) -> Option<&Frame> {
        self.frames
            .iter()
            .find(|f| f.is_program_code())
            .or_else(|| self.frames.iter().find(|f| !f.is_plumbing()))
            .or_else(|| self.frames.first())
    }

    /// The function of [`GoroutineGroup::site`], or `?` for a goroutine without a stack.
    pub fn function(&self) -> &str {
        self.site().map_or("?", |f| f.function.as_str())
    }

    /// What identifies the group across samples: state, stack and creator.
    pub fn key(&self) -> GroupKey {
        GroupKey {
            state: self.state.clone(),
            frames: self.frames.clone(),
            created_by: self.created_by.clone(),
        }
    }
}

/// The identity of a [`GoroutineGroup`] across samples.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    /// State or wait reason.
    pub state: String,
    /// Stack.
    pub frames: Vec<Frame>,
    /// Creator.
    pub created_by: Option<Frame>,
}

/// Why a text is not a goroutine dump.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DumpError {
    /// The text does not begin with a `goroutine N [state]:` header.
    #[error("it does not start with a \"goroutine N [state]:\" line but with {start:?}")]
    NotADump {
        /// The first characters of the text.
        start: String,
    },
    /// A header line that cannot be read.
    #[error("line {line} is not a goroutine header: {text:?}")]
    BadHeader {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
}

/// Parses a `debug=2` goroutine dump. Lines that fit no part of a stack are skipped; a text
/// that does not start with a goroutine header is refused.
pub fn parse(text: &str) -> Result<Vec<Goroutine>, DumpError> {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if !first.starts_with("goroutine ") || parse_header(first).is_none() {
        return Err(DumpError::NotADump {
            start: first.chars().take(60).collect(),
        });
    }
    let lines: Vec<&str> = text.lines().collect();
    let read = read_blocks(&lines, Mode::Dump)?;
    Ok(read.goroutines)
}

/// The goroutine section of a Go crash trace (what follows `panic: …` or `fatal error: …`),
/// as [`read_trace`] found it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceSection {
    /// The goroutines, in the order printed (the panicking one first).
    pub goroutines: Vec<Goroutine>,
    /// The frames of the `runtime stack:` block (the system stack of a runtime throw).
    pub runtime_stack: Option<Vec<Frame>>,
    /// Stack lines before the first header: the end of a goroutine whose header the text
    /// lost (a trace cut at its start).
    pub headless: Option<HeadlessStack>,
    /// How many lines the section took, from the first line given.
    pub lines_read: usize,
    /// Lines inside a stack that fit no part of it (other output interleaved), skipped.
    pub foreign_lines: usize,
    /// Whether the text ended on a function line without its `file:line` (cut mid-trace).
    pub ends_inside_frame: bool,
}

/// The frames of a goroutine whose header is not in the text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeadlessStack {
    /// Its frames, innermost first (the innermost ones may be cut away too).
    pub frames: Vec<Frame>,
    /// Whether the runtime elided frames.
    pub elided: bool,
    /// The `go` statement that started it.
    pub created_by: Option<Frame>,
}

/// Reads the goroutine blocks of a crash trace: `lines` starts at its first block
/// (`goroutine N [state]:` or `runtime stack:`, or stack lines whose header is cut), and the section ends at the first line after
/// a blank line that starts no block, or at the next `panic:` or `fatal error:` line. Never
/// fails: a header that cannot be read ends the section.
pub fn read_trace(lines: &[&str]) -> TraceSection {
    read_blocks(lines, Mode::Trace).unwrap_or_default()
}

/// How [`read_blocks`] treats what is not a goroutine block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A pprof dump: every line belongs to it; an unreadable header is an error.
    Dump,
    /// A crash trace inside a log: other text ends it.
    Trace,
}

fn read_blocks(lines: &[&str], mode: Mode) -> Result<TraceSection, DumpError> {
    let mut section = TraceSection::default();
    let mut notes = StackNotes::default();
    let mut at = 0;
    let first = lines.iter().position(|l| !l.trim().is_empty()).unwrap_or(0);
    if mode == Mode::Trace
        && lines
            .get(first)
            .is_some_and(|l| l.starts_with('\t') || looks_like_a_call(l))
    {
        let mut headless = HeadlessStack::default();
        let mut stack = Stack {
            frames: &mut headless.frames,
            elided: &mut headless.elided,
            created_by: &mut headless.created_by,
        };
        at = read_stack(lines, first, mode, &mut stack, &mut notes);
        section.headless = Some(headless);
    }
    while at < lines.len() {
        let line = lines[at];
        if line.trim().is_empty() {
            at += 1;
            continue;
        }
        if mode == Mode::Trace && starts_another_trace(line) {
            break;
        }
        if line.starts_with("goroutine ") {
            let Some(goroutine) = parse_header(line) else {
                if mode == Mode::Trace {
                    break;
                }
                return Err(DumpError::BadHeader {
                    line: at + 1,
                    text: line.to_string(),
                });
            };
            section.goroutines.push(goroutine);
            let current = section.goroutines.last_mut().expect("just pushed");
            let mut stack = Stack {
                frames: &mut current.frames,
                elided: &mut current.elided,
                created_by: &mut current.created_by,
            };
            at = read_stack(lines, at + 1, mode, &mut stack, &mut notes);
            continue;
        }
        if line.trim_end() == "runtime stack:" && section.runtime_stack.is_none() {
            let mut frames = Vec::new();
            let (mut elided, mut created_by) = (false, None);
            let mut stack = Stack {
                frames: &mut frames,
                elided: &mut elided,
                created_by: &mut created_by,
            };
            at = read_stack(lines, at + 1, mode, &mut stack, &mut notes);
            section.runtime_stack = Some(frames);
            continue;
        }
        match mode {
            Mode::Dump => at += 1,
            Mode::Trace => break,
        }
    }
    section.lines_read = at;
    section.foreign_lines = notes.foreign_lines;
    section.ends_inside_frame = notes.ends_inside_frame;
    Ok(section)
}

/// What [`read_stack`] noticed besides the frames.
#[derive(Default)]
struct StackNotes {
    foreign_lines: usize,
    ends_inside_frame: bool,
}

/// Where [`read_stack`] puts what it reads.
struct Stack<'a> {
    frames: &'a mut Vec<Frame>,
    elided: &'a mut bool,
    created_by: &'a mut Option<Frame>,
}

/// Reads the stack lines of one block from `lines[at]` on, up to a blank line or the next
/// header; returns the index of the first line not read.
fn read_stack(
    lines: &[&str],
    mut at: usize,
    mode: Mode,
    stack: &mut Stack<'_>,
    notes: &mut StackNotes,
) -> usize {
    // Set after a `[originating from goroutine N]:` line, whose frames are not this
    // goroutine's own (GODEBUG=tracebackancestors).
    let mut in_ancestors = false;
    // `created by` ends a block: in a trace, text after it is not the trace's.
    let mut created = false;
    while let Some(&line) = lines.get(at) {
        if line.trim().is_empty()
            || line.starts_with("goroutine ")
            || (mode == Mode::Trace && (starts_another_trace(line) || created))
        {
            break;
        }
        at += 1;
        if line.starts_with("[originating from goroutine") {
            in_ancestors = true;
            continue;
        }
        if line.starts_with('\t') || in_ancestors {
            continue;
        }
        if line.starts_with("...") {
            *stack.elided = true;
            continue;
        }
        let is_creator = line.starts_with("created by ");
        if !is_creator && !looks_like_a_call(line) {
            notes.foreign_lines += 1;
            continue;
        }
        // Other output may have landed between a frame's two lines: look past a few.
        let mut next = at;
        while next < lines.len() && next - at < MAX_LINES_BETWEEN && is_foreign(lines[next]) {
            next += 1;
        }
        let location = lines
            .get(next)
            .filter(|l| l.starts_with('\t'))
            .and_then(|l| parse_location(l));
        let (file, line_number) = match location {
            Some(location) => {
                notes.foreign_lines += next - at;
                at = next + 1;
                location
            }
            None if at == lines.len() => {
                notes.ends_inside_frame = true;
                Default::default()
            }
            None => {
                notes.foreign_lines += 1;
                continue;
            }
        };
        if let Some(creator) = line.strip_prefix("created by ") {
            let function = creator
                .split_once(" in goroutine ")
                .map_or(creator, |(f, _)| f);
            created = true;
            *stack.created_by = Some(Frame {
                function: function.trim().to_string(),
                file,
                line: line_number,
            });
        } else {
            stack.frames.push(Frame {
                function: strip_arguments(line).to_string(),
                file,
                line: line_number,
            });
        }
    }
    at
}

/// Whether `line` starts a new Go crash trace (which ends the goroutines of the one before):
/// `panic: `, `fatal error: `, or a signal the runtime dies on (`SIGQUIT: quit`).
pub fn starts_another_trace(line: &str) -> bool {
    line.starts_with("panic: ")
        || line.starts_with("fatal error: ")
        || line
            .strip_prefix("SIG")
            .and_then(|rest| rest.split_once(": "))
            .is_some_and(|(name, _)| {
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase())
            })
}

/// Lines of other output looked past between a frame's function and its location.
const MAX_LINES_BETWEEN: usize = 3;

/// Whether a line can be a frame's function: `pkg.Func(…)`, or one cut at its `(`.
fn looks_like_a_call(line: &str) -> bool {
    let name = line.split('(').next().unwrap_or_default();
    line.contains('(')
        && (name.contains('.') || name == "panic")
        && !name.contains(|c: char| c.is_whitespace() || c == '\u{FFFD}')
}

/// A line that is no part of a stack: not a location, call, creator, header or blank.
fn is_foreign(line: &str) -> bool {
    !(line.starts_with('\t')
        || line.trim().is_empty()
        || line.starts_with("goroutine ")
        || line.starts_with("created by ")
        || line.starts_with("...")
        || looks_like_a_call(line))
}

/// `goroutine 18 [chan receive, 5 minutes, locked to thread]:` (Go 1.21+ may add fields
/// such as `gp=0x…` between the id and the brackets).
fn parse_header(line: &str) -> Option<Goroutine> {
    let rest = line.strip_prefix("goroutine ")?;
    let id_end = rest.find(|c: char| !c.is_ascii_digit())?;
    let id = rest[..id_end].parse().ok()?;
    let open = rest.find('[')?;
    let close = rest.rfind("]:")?;
    let inside = rest.get(open + 1..close)?;
    let mut parts = inside.split(", ");
    let state = parts.next()?.trim().to_string();
    let mut goroutine = Goroutine {
        id,
        state,
        wait_minutes: None,
        locked_to_thread: false,
        frames: Vec::new(),
        elided: false,
        created_by: None,
        thread: None,
    };
    for part in parts {
        if let Some(minutes) = part.strip_suffix(" minutes") {
            goroutine.wait_minutes = minutes.trim().parse().ok();
        } else if part == "locked to thread" {
            goroutine.locked_to_thread = true;
        }
    }
    Some(goroutine)
}

/// `\t/usr/lib/go/src/sync/mutex.go:90 +0x4b` → (file, line); also with the runtime's
/// ` fp=… sp=… pc=…` suffix, and with spaces in the file's path.
fn parse_location(line: &str) -> Option<(String, u32)> {
    let location = line.trim();
    location.rmatch_indices(':').find_map(|(colon, _)| {
        let rest = &location[colon + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let ends = rest.len() == digits || rest[digits..].starts_with(' ');
        if digits == 0 || !ends || colon == 0 {
            return None;
        }
        Some((location[..colon].to_string(), rest[..digits].parse().ok()?))
    })
}

/// `sync.(*Mutex).Lock(...)` → `sync.(*Mutex).Lock`; `main.f(0x1, {0x2, 0x3})` → `main.f`.
fn strip_arguments(line: &str) -> &str {
    let line = line.trim_end();
    match (line.ends_with(')'), line.rfind('(')) {
        (true, Some(open)) if open > 0 => &line[..open],
        _ => line,
    }
}

/// Groups goroutines by state, stack and creator; biggest group first (ties by state and
/// function, for a stable order).
pub fn group(goroutines: Vec<Goroutine>) -> Vec<GoroutineGroup> {
    let mut index: HashMap<GroupKey, usize> = HashMap::new();
    let mut groups: Vec<GoroutineGroup> = Vec::new();
    for goroutine in goroutines {
        let key = GroupKey {
            state: goroutine.state.clone(),
            frames: goroutine.frames.clone(),
            created_by: goroutine.created_by.clone(),
        };
        let slot = *index.entry(key).or_insert_with(|| {
            groups.push(GoroutineGroup {
                count: 0,
                state: goroutine.state.clone(),
                max_wait_minutes: None,
                waiting_a_minute_or_more: 0,
                locked_to_thread: false,
                frames: goroutine.frames.clone(),
                elided: goroutine.elided,
                created_by: goroutine.created_by.clone(),
                ids: Vec::new(),
                threads: Vec::new(),
            });
            groups.len() - 1
        });
        let group = &mut groups[slot];
        group.count += 1;
        group.ids.push(goroutine.id);
        group.threads.extend(goroutine.thread);
        group.locked_to_thread |= goroutine.locked_to_thread;
        group.elided |= goroutine.elided;
        if let Some(minutes) = goroutine.wait_minutes {
            group.max_wait_minutes = Some(group.max_wait_minutes.unwrap_or(0).max(minutes));
            if minutes >= 1 {
                group.waiting_a_minute_or_more += 1;
            }
        }
    }
    for group in &mut groups {
        group.ids.sort_unstable();
        group.threads.sort_unstable();
    }
    groups.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.state.cmp(&b.state))
            .then_with(|| a.function().cmp(b.function()))
            .then_with(|| a.ids.first().cmp(&b.ids.first()))
    });
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "goroutine 1 [chan receive, 3 minutes]:
main.main()
\t/src/app/main.go:20 +0x25

goroutine 7 [semacquire, 2 minutes]:
sync.runtime_SemacquireMutex(0x0?, 0x0?, 0x0?)
\t/usr/lib/go-1.19/src/runtime/sema.go:77 +0x25
sync.(*Mutex).lockSlow(0x949228)
\t/usr/lib/go-1.19/src/sync/mutex.go:171 +0x165
sync.(*Mutex).Lock(...)
\t/usr/lib/go-1.19/src/sync/mutex.go:90
main.waitForLock(0x0?)
\t/src/app/main.go:64 +0x4b
created by main.main
\t/src/app/main.go:87 +0x293

goroutine 8 [semacquire]:
sync.runtime_SemacquireMutex(0x0?, 0x0?, 0x0?)
\t/usr/lib/go-1.19/src/runtime/sema.go:77 +0x25
sync.(*Mutex).lockSlow(0x949228)
\t/usr/lib/go-1.19/src/sync/mutex.go:171 +0x165
sync.(*Mutex).Lock(...)
\t/usr/lib/go-1.19/src/sync/mutex.go:90
main.waitForLock(0xc000012345?)
\t/src/app/main.go:64 +0x4b
created by main.main in goroutine 1
\t/src/app/main.go:87 +0x293

goroutine 9 [running]:
\tgoroutine running on other thread; stack unavailable
created by github.com/acme/pool.(*Pool).Start
\t/go/pkg/mod/github.com/acme/pool/pool.go:12 +0x40

goroutine 12 gp=0xc000007c00 m=nil [select, locked to thread]:
runtime.gopark(0x0?, 0x0?, 0x0?, 0x0?, 0x0?)
\t/usr/lib/go/src/runtime/proc.go:363 +0xd6
net/http.(*persistConn).writeLoop(0xc0000b8240)
\t/usr/lib/go/src/net/http/transport.go:2410 +0xf2
...additional frames elided...
";

    #[test]
    fn headers_frames_and_creators_are_parsed() {
        let goroutines = parse(DUMP).unwrap();
        let ids: Vec<u64> = goroutines.iter().map(|g| g.id).collect();
        assert_eq!(ids, [1, 7, 8, 9, 12]);
        let g7 = &goroutines[1];
        assert_eq!(
            (g7.state.as_str(), g7.wait_minutes),
            ("semacquire", Some(2))
        );
        let functions: Vec<&str> = g7.frames.iter().map(|f| f.function.as_str()).collect();
        assert_eq!(
            functions,
            [
                "sync.runtime_SemacquireMutex",
                "sync.(*Mutex).lockSlow",
                "sync.(*Mutex).Lock",
                "main.waitForLock"
            ]
        );
        assert_eq!(g7.frames[2].line, 90);
        assert_eq!(g7.frames[3].file, "/src/app/main.go");
        assert_eq!(g7.created_by.as_ref().unwrap().function, "main.main");
        // Go 1.21+'s "in goroutine N" suffix is dropped, so both group together.
        assert_eq!(goroutines[2].created_by, g7.created_by);
        let g9 = &goroutines[3];
        assert!(g9.frames.is_empty());
        assert_eq!(
            g9.created_by.as_ref().unwrap().function,
            "github.com/acme/pool.(*Pool).Start"
        );
        let g12 = &goroutines[4];
        assert_eq!(g12.state, "select");
        assert!(g12.locked_to_thread && g12.elided);
    }

    #[test]
    fn groups_count_same_stacks_and_keep_the_longest_wait() {
        let groups = group(parse(DUMP).unwrap());
        assert_eq!(groups.len(), 4);
        let lock = &groups[0];
        assert_eq!(lock.count, 2);
        assert_eq!(lock.ids, [7, 8]);
        assert_eq!(lock.max_wait_minutes, Some(2));
        assert_eq!(lock.waiting_a_minute_or_more, 1);
        assert_eq!(lock.function(), "main.waitForLock");
        assert_eq!(lock.site().unwrap().short_location(), "app/main.go:64");
        // Standard-library stacks name their first frame below the runtime.
        let http = groups.iter().find(|g| g.state == "select").unwrap();
        assert_eq!(http.function(), "net/http.(*persistConn).writeLoop");
        assert_eq!(http.frames[1].package(), "net/http");
    }

    #[test]
    fn other_texts_are_refused() {
        let err = parse("<!DOCTYPE html>\n<html><body>hello</body></html>").unwrap_err();
        assert!(err.to_string().contains("<!DOCTYPE html>"), "{err}");
        assert!(parse("").is_err());
        assert!(matches!(
            parse("goroutine 1 [running]:\nmain.main()\ngoroutine x\n"),
            Err(DumpError::BadHeader { line: 3, .. })
        ));
    }

    #[test]
    fn arguments_are_stripped_from_function_names() {
        assert_eq!(
            strip_arguments("sync.(*Mutex).Lock(...)"),
            "sync.(*Mutex).Lock"
        );
        assert_eq!(strip_arguments("main.main.func1()"), "main.main.func1");
        assert_eq!(
            strip_arguments("net/http.HandlerFunc.ServeHTTP(0xc0?, {0x7, 0xc0?}, 0x0?)"),
            "net/http.HandlerFunc.ServeHTTP"
        );
    }
}
