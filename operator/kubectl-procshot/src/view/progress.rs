//! Live progress of a session, on stderr: on a terminal a block of lines redrawn in place
//! (the session, then one line per target, with a spinner and the time so far); anywhere
//! else plain lines, one each time something changes, that a log or CI keeps readable.

use std::io::Write;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use procshot_operator::api::{DebugSession, TargetStatus};

use super::{inert, phase_name, phase_of, qualified_name, target_text};

/// Where progress goes.
pub trait Progress {
    /// The session as just read, `elapsed` after following started.
    fn show(&mut self, session: &DebugSession, elapsed: Duration);
    /// A line to keep (a warning, a hint), printed above the live block.
    fn note(&mut self, line: &str);
    /// Following ended: the live block is removed (plain lines stay).
    fn finish(&mut self);
}

/// The lines that describe where a session is: the session, then each target.
pub fn lines(session: &DebugSession) -> Vec<String> {
    let phase = phase_name(phase_of(session));
    let mut first = format!("{} {phase}", qualified_name(session));
    match &session.status {
        None => first.push_str(": waiting for the operator"),
        Some(status) if status.targets.is_empty() => {
            first.push_str(&format!(": {}", target_text(&session.spec.target)));
        }
        Some(_) => {}
    }
    if let Some(ready) = session
        .status
        .iter()
        .flat_map(|s| &s.conditions)
        .find(|c| c.type_ == "Ready" && c.status == "False" && c.reason != "Pending")
        .filter(|_| {
            session
                .status
                .as_ref()
                .is_some_and(|s| s.targets.is_empty())
        })
    {
        first.push_str(&format!(
            " ({}: {})",
            inert(&ready.reason),
            inert(&ready.message)
        ));
    }
    let mut lines = vec![first];
    for target in session.status.iter().flat_map(|s| &s.targets) {
        lines.push(target_line(target));
    }
    lines
}

fn target_line(target: &TargetStatus) -> String {
    let mut line = format!("  {} {}", inert(&target.pod), phase_name(target.phase));
    if !target.node.is_empty() {
        line.push_str(&format!(" on {}", inert(&target.node)));
    }
    if let Some(pid) = target.target_pid {
        line.push_str(&format!(", pid {pid}"));
    }
    if let Some(samples) = target.samples {
        line.push_str(&format!(", {samples} samples"));
    }
    if let Some(reason) = &target.reason {
        line.push_str(&format!(" ({})", inert(reason)));
    }
    line
}

/// Plain lines on any writer: each line that differs from the last time it was shown,
/// prefixed with the time so far.
pub struct PlainProgress<W: Write> {
    out: W,
    shown: Vec<String>,
}

impl<W: Write> PlainProgress<W> {
    /// Progress written to `out`.
    pub fn new(out: W) -> Self {
        Self {
            out,
            shown: Vec::new(),
        }
    }
}

impl<W: Write> Progress for PlainProgress<W> {
    fn show(&mut self, session: &DebugSession, elapsed: Duration) {
        let lines = lines(session);
        for (i, line) in lines.iter().enumerate() {
            if self.shown.get(i) != Some(line) {
                // A closed stderr must not stop the capture; the result still goes to stdout.
                let _ = writeln!(
                    self.out,
                    "[{:>4}s] {}",
                    elapsed.as_secs(),
                    line.trim_start()
                );
            }
        }
        self.shown = lines;
    }

    fn note(&mut self, line: &str) {
        let _ = writeln!(self.out, "{line}");
    }

    fn finish(&mut self) {
        let _ = self.out.flush();
    }
}

/// The block redrawn in place on a terminal (stderr).
pub struct LiveProgress {
    multi: MultiProgress,
    bars: Vec<ProgressBar>,
}

impl LiveProgress {
    /// Progress drawn on stderr, which must be a terminal.
    pub fn new() -> Self {
        Self::with_target(ProgressDrawTarget::stderr())
    }

    /// Progress drawn on `target` (the tests draw into a terminal of their own).
    pub fn with_target(target: ProgressDrawTarget) -> Self {
        Self {
            multi: MultiProgress::with_draw_target(target),
            bars: Vec::new(),
        }
    }

    fn bar(&self, first: bool) -> ProgressBar {
        let template = if first {
            "{spinner} {wide_msg} {elapsed:>4}"
        } else {
            "  {wide_msg}"
        };
        let style = ProgressStyle::with_template(template).expect("a valid template");
        let bar = self.multi.add(ProgressBar::new_spinner().with_style(style));
        if first {
            bar.enable_steady_tick(Duration::from_millis(120));
        }
        bar
    }
}

impl Default for LiveProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for LiveProgress {
    fn show(&mut self, session: &DebugSession, _elapsed: Duration) {
        let lines = lines(session);
        while self.bars.len() < lines.len() {
            let bar = self.bar(self.bars.is_empty());
            self.bars.push(bar);
        }
        for (bar, line) in self.bars.iter().zip(&lines) {
            bar.set_message(line.trim_start().to_string());
        }
    }

    fn note(&mut self, line: &str) {
        let _ = self.multi.println(line);
    }

    fn finish(&mut self) {
        for bar in self.bars.drain(..) {
            bar.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use procshot_operator::api::{DebugSessionStatus, Phase};

    fn session(status: Option<DebugSessionStatus>) -> DebugSession {
        let mut session: DebugSession = serde_json::from_value(serde_json::json!({
            "apiVersion": "procshot.dev/v1alpha1", "kind": "DebugSession",
            "metadata": {"name": "api-k2x9z", "namespace": "shop"},
            "spec": {"target": {"pod": "api-1"}, "samples": 1}
        }))
        .unwrap();
        session.status = status;
        session
    }

    #[test]
    fn plain_progress_prints_only_what_changed() {
        let mut out = Vec::new();
        let mut progress = PlainProgress::new(&mut out);
        progress.show(&session(None), Duration::from_secs(0));
        progress.show(&session(None), Duration::from_secs(1));
        let mut capturing: DebugSessionStatus = serde_json::from_value(serde_json::json!({
            "phase": "Capturing",
            "targets": [{"pod": "api-1", "podUid": "u", "container": "api", "containerId": "c",
                         "node": "worker-3", "capturePod": "procshot-x", "phase": "Capturing"}]
        }))
        .unwrap();
        progress.show(&session(Some(capturing.clone())), Duration::from_secs(2));
        capturing.targets[0].target_pid = Some(4242);
        progress.show(&session(Some(capturing.clone())), Duration::from_secs(3));
        capturing.phase = Phase::Succeeded;
        progress.show(&session(Some(capturing)), Duration::from_secs(4));
        progress.finish();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[   0s] shop/api-k2x9z Pending: waiting for the operator\n\
             [   2s] shop/api-k2x9z Capturing\n\
             [   2s] api-1 Capturing on worker-3\n\
             [   3s] api-1 Capturing on worker-3, pid 4242\n\
             [   4s] shop/api-k2x9z Succeeded\n"
        );
    }
}
