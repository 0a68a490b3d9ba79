//! Grouping identical stacks and `stacks.txt`: one block per group of threads with the
//! same frames, the biggest group first, with its thread count and thread names.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{Frame, StacksCapture, ThreadStack};

/// Threads whose stacks are identical (or that failed for the same reason).
#[derive(Debug, Clone, PartialEq)]
pub struct StackGroup<'a> {
    /// The threads, by tid.
    pub threads: Vec<&'a ThreadStack>,
}

impl<'a> StackGroup<'a> {
    /// The shared frames (those of the first thread).
    pub fn frames(&self) -> &'a [Frame] {
        &self.threads[0].frames
    }

    /// Why these threads have no stack, if they have none.
    pub fn error(&self) -> Option<&'a str> {
        self.threads[0].error.as_deref()
    }

    /// The thread names with their counts, most common first: `parked ×1000, main`.
    pub fn names(&self) -> String {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for thread in &self.threads {
            *counts.entry(thread.name.as_str()).or_default() += 1;
        }
        let mut counts: Vec<_> = counts.into_iter().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        counts
            .into_iter()
            .map(|(name, n)| match n {
                1 => name.to_string(),
                n => format!("{name} ×{n}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Groups the threads by identical stacks, the biggest group first (ties by first tid).
pub fn groups(capture: &StacksCapture) -> Vec<StackGroup<'_>> {
    let mut by_key: BTreeMap<Vec<String>, Vec<&ThreadStack>> = BTreeMap::new();
    for thread in &capture.threads {
        by_key.entry(key(thread)).or_default().push(thread);
    }
    let mut groups: Vec<_> = by_key
        .into_values()
        .map(|threads| StackGroup { threads })
        .collect();
    groups.sort_by(|a, b| {
        b.threads
            .len()
            .cmp(&a.threads.len())
            .then(a.threads[0].tid.cmp(&b.threads[0].tid))
    });
    groups
}

/// What makes two stacks identical: the same functions at the same offsets (or the same
/// addresses where there is no symbol), or the same reason for having none.
fn key(thread: &ThreadStack) -> Vec<String> {
    if let Some(error) = &thread.error {
        // Reasons name the thread; group on the text without it.
        return vec![error.replace(&thread.tid.to_string(), "TID")];
    }
    thread.frames.iter().map(|f| location(f, false)).collect()
}

/// `wait_for_work+0x1e (parked)`, or the address when the symbol is unknown.
pub fn location(frame: &Frame, with_address: bool) -> String {
    let mut out = String::new();
    if with_address {
        let _ = write!(out, "{:>18}  ", frame.address);
    }
    match (&frame.symbol, frame.offset) {
        (Some(symbol), Some(offset)) => {
            let _ = write!(out, "{symbol}+{offset:#x}");
        }
        (Some(symbol), None) => out.push_str(symbol),
        (None, _) => out.push_str(&frame.address),
    }
    if let Some(module) = &frame.module {
        let _ = write!(out, " ({module})");
    }
    out
}

/// `stacks.txt`.
pub fn text(capture: &StacksCapture) -> String {
    let groups = groups(capture);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "native stacks of pid {}: {} threads in {} groups; captured in {:.1} ms, each thread \
         stopped at most {:.3} ms (bound to reach the stop: {} ms)",
        capture.pid,
        capture.threads.len(),
        groups.len(),
        capture.wall_ms,
        capture.longest_stop_ms,
        capture.max_stop_ms
    );
    if let Some(reason) = &capture.incomplete {
        let _ = writeln!(out, "INCOMPLETE: {reason}");
    }
    for group in &groups {
        let n = group.threads.len();
        let _ = writeln!(
            out,
            "\n{n} thread{}: {}",
            if n == 1 { "" } else { "s" },
            group.names()
        );
        let tids: Vec<String> = group
            .threads
            .iter()
            .take(8)
            .map(|t| t.tid.to_string())
            .collect();
        let _ = writeln!(
            out,
            "  tids {}{}",
            tids.join(", "),
            if n > 8 {
                format!(", … ({} more)", n - 8)
            } else {
                String::new()
            }
        );
        if let Some(error) = group.error() {
            let _ = writeln!(out, "  no stack: {error}");
            continue;
        }
        for (i, frame) in group.frames().iter().enumerate() {
            let _ = write!(out, "  #{i:<3} {}", location(frame, true));
            if let (Some(file), Some(line)) = (&frame.file, frame.line) {
                let _ = write!(out, " at {file}:{line}");
            }
            out.push('\n');
        }
        if let Some(reason) = &group.threads[0].truncated {
            let _ = writeln!(out, "  (the walk ended early: {reason})");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::captures::stacks::unwind::UnwindMethod;

    fn frame(symbol: &str, offset: u64) -> Frame {
        Frame {
            address: format!("{:#x}", 0x1000 + offset),
            symbol: Some(symbol.into()),
            offset: Some(offset),
            module: Some("app".into()),
            file: None,
            line: None,
            unwind: UnwindMethod::Cfi,
        }
    }

    fn thread(tid: i32, name: &str, frames: Vec<Frame>) -> ThreadStack {
        ThreadStack {
            tid,
            name: name.into(),
            state: "S".into(),
            stop_ms: Some(0.05),
            frames,
            truncated: None,
            error: None,
        }
    }

    fn capture(threads: Vec<ThreadStack>) -> StacksCapture {
        StacksCapture {
            schema_version: 1,
            pid: 10,
            taken_at: chrono::Utc::now(),
            wall_ms: 12.0,
            max_stop_ms: 10.0,
            longest_stop_ms: 0.05,
            incomplete: None,
            modules: Vec::new(),
            threads,
        }
    }

    #[test]
    fn identical_stacks_group_biggest_first_with_names() {
        let parked = || vec![frame("read", 0x12), frame("wait_for_work", 0x1e)];
        let mut stalled = thread(14, "io", Vec::new());
        stalled.error = Some("thread 14 did not stop within 10ms".into());
        let mut stalled2 = thread(15, "io", Vec::new());
        stalled2.error = Some("thread 15 did not stop within 10ms".into());
        let capture = capture(vec![
            thread(10, "main", vec![frame("read", 0x12), frame("main", 0x40)]),
            thread(11, "parked", parked()),
            thread(12, "parked", parked()),
            thread(13, "worker", parked()),
            stalled,
            stalled2,
        ]);
        let groups = groups(&capture);
        let sizes: Vec<_> = groups.iter().map(|g| g.threads.len()).collect();
        assert_eq!(sizes, [3, 2, 1]);
        assert_eq!(groups[0].names(), "parked ×2, worker");
        assert_eq!(
            groups[1].error(),
            Some("thread 14 did not stop within 10ms")
        );
        assert_eq!(groups[2].names(), "main");

        let text = text(&capture);
        assert!(
            text.starts_with("native stacks of pid 10: 6 threads in 3 groups;"),
            "{text}"
        );
        assert!(
            text.contains("\n3 threads: parked ×2, worker\n  tids 11, 12, 13\n"),
            "{text}"
        );
        assert!(text.contains("wait_for_work+0x1e (app)\n"), "{text}");
        assert!(
            text.contains("2 threads: io ×2\n  tids 14, 15\n  no stack: thread 14 did not stop"),
            "{text}"
        );
    }
}
