//! The findings of a post-mortem, each naming the cause in one sentence with its numbers:
//! `GO_PANIC`, `GO_FATAL_ERROR`, `CRASH_TRACE` (another runtime's), `OOM_KILLED`,
//! `EXIT_SIGNAL` and `EXIT_ERROR`. A trace is weighed against how the container ended: a
//! panic printed by a container that was then OOM-killed, or exited 0, did not end it, and
//! its finding says so (as a warning) beside the finding for what did.

use std::collections::BTreeMap;

use serde_json::json;

use super::exit::{ContainerExit, LastMemorySample, OomKills, signal_name};
use super::log::ContainerLog;
use super::trace::{CrashTrace, Language, TraceKind, Traces, shorten};
use crate::analysis::{Finding, FindingCode, Severity};
use crate::units;

/// Log lines quoted in an `EXIT_*` message.
const QUOTED_LINES: usize = 3;
/// Characters kept of each quoted line.
const QUOTED_CHARS: usize = 200;

/// Every finding, most serious first.
pub fn find(
    exit: &ContainerExit,
    memory: Option<&LastMemorySample>,
    traces: &Traces,
    log: &ContainerLog,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut explained = false;
    if let Some(trace) = &traces.last {
        let (finding, ended_it) = trace_finding(trace, traces, exit);
        explained = ended_it;
        findings.push(finding);
    }
    if exit.oom_killed() {
        findings.push(oom_killed(exit, memory));
    } else if !explained && let Some(finding) = exit_finding(exit, log, traces.last.is_some()) {
        findings.push(finding);
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    findings
}

/// Whether the way the container ended fits `trace` having ended it, and if not, why.
fn contradiction(trace: &CrashTrace, exit: &ContainerExit) -> Option<String> {
    if exit.oom_killed() {
        return Some("the container was OOM-killed afterwards: this trace did not end it".into());
    }
    if let Some(signal) = exit.ending_signal()
        && [libc::SIGKILL, libc::SIGTERM].contains(&signal)
    {
        return Some(format!(
            "the container was stopped by {} afterwards: this trace did not end it",
            signal_name(signal)
        ));
    }
    let code = exit.exit_code?;
    if code == 0 {
        return Some("the container exited with code 0: this trace did not end it".into());
    }
    // Go exits with 2 after a trace, or dies of SIGABRT with GOTRACEBACK=crash.
    if trace.language == Language::Go && code != 2 && code != 128 + libc::SIGABRT {
        return Some(format!(
            "Go exits with code 2 after a crash trace, but the container exited with {code}: \
             this trace may not have ended it"
        ));
    }
    None
}

/// The finding for the log's last trace, and whether it ended the container.
fn trace_finding(trace: &CrashTrace, traces: &Traces, exit: &ContainerExit) -> (Finding, bool) {
    let code = match (trace.language, trace.kind) {
        (Language::Go, TraceKind::Panic) => FindingCode::GoPanic,
        (Language::Go, TraceKind::FatalError | TraceKind::Signal) => FindingCode::GoFatalError,
        _ => FindingCode::CrashTrace,
    };
    let mut message = headline(trace);
    for detail in &trace.details {
        if detail.starts_with("[signal ") {
            message.push(' ');
            message.push_str(detail);
        }
    }
    if let Some(runtime) = trace.details.iter().find(|d| d.starts_with("runtime: ")) {
        message.push_str(&format!(" ({})", shorten(runtime, 200)));
    }
    let recovered: Vec<&str> = trace
        .details
        .iter()
        .filter_map(|d| d.strip_prefix("recovered: "))
        .collect();
    if !recovered.is_empty() {
        message.push_str(&format!(
            " (raised while panicking after recovering {})",
            recovered
                .iter()
                .map(|r| format!("\"{}\"", shorten(r, 200)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    match &trace.location {
        Some(location) if location.own_code => {
            message.push_str(&format!(", at {}", location.describe()));
        }
        Some(location) => message.push_str(&format!(
            ", at {} (no frame of the program's own code in the trace)",
            location.describe()
        )),
        None => {}
    }
    if trace.language == Language::Go {
        message.push_str(&go_context(trace));
    }
    // Causes and chains: the root cause (Java), the exception handled before (Python), the
    // thread whose panic was re-raised (Rust).
    if let Some(last) = trace.details.iter().rev().find(|d| {
        !d.starts_with('[')
            && !d.starts_with("runtime: ")
            && !d.starts_with("recovered: ")
            && !d.starts_with("PC=")
    }) {
        message.push_str(&format!("; {}", shorten(last, 300)));
    }
    if traces.count > 1 {
        message.push_str(&format!(
            "; the last of {} crash traces in the log",
            traces.count
        ));
    }
    if let Some(ending) = exit.describe() {
        message.push_str(&format!("; {ending}"));
    }
    let contradiction = contradiction(trace, exit);
    if let Some(why) = &contradiction {
        message.push_str(&format!(" ({why})"));
    }
    if !trace.missing.is_empty() {
        message.push_str(&format!("; missing: {}", trace.missing.join("; ")));
    }
    let ended_it = contradiction.is_none();
    let evidence = json!({
        "language": trace.language,
        "kind": trace.kind,
        "message": trace.message,
        "thread": trace.thread,
        "location": trace.location,
        "createdBy": trace.created_by,
        "goroutines": (trace.language == Language::Go).then_some(trace.goroutines.len()),
        "tracesInLog": traces.count,
        "byLanguage": traces.by_language,
        "firstLine": trace.first_line,
        "lastLine": trace.last_line,
        "missing": trace.missing,
        "endedTheContainer": ended_it,
        "exitCode": exit.exit_code,
    });
    let severity = if ended_it {
        Severity::Critical
    } else {
        Severity::Warning
    };
    (
        Finding {
            severity,
            code,
            message,
            evidence,
        },
        ended_it,
    )
}

/// The first words: what crashed and with what.
fn headline(trace: &CrashTrace) -> String {
    let thread = trace.thread.as_deref().unwrap_or("?");
    let message = shorten(&trace.message.replace('\n', " ⏎ "), 500);
    match (trace.language, trace.kind) {
        (Language::Go, TraceKind::Panic) => format!("Go panic: {message}"),
        (Language::Go, TraceKind::FatalError) => format!("Go fatal error: {message}"),
        (Language::Go, TraceKind::Signal) => format!("Go runtime ended by {message}"),
        (Language::Go, _) => {
            "Go crash trace whose first line (panic: or fatal error:) is cut from the log".into()
        }
        (Language::Rust, TraceKind::FatalError) => {
            format!("Rust thread '{thread}' overflowed its stack")
        }
        (Language::Rust, _) => format!("Rust panic in thread '{thread}': {message}"),
        (Language::Java, _) => match &trace.thread {
            Some(thread) => format!("uncaught Java exception in thread \"{thread}\": {message}"),
            None => format!("Java: {message}"),
        },
        (Language::Python, _) => format!("uncaught Python exception: {message}"),
        (Language::Nodejs, TraceKind::FatalError) => format!("Node.js fatal error: {message}"),
        (Language::Nodejs, _) => format!("uncaught Node.js exception: {message}"),
    }
}

/// `, on goroutine 6 [running], created by main.main (main.go:40); 3 goroutines in the trace`.
fn go_context(trace: &CrashTrace) -> String {
    let mut out = String::new();
    if let Some(thread) = &trace.thread {
        out.push_str(&format!(", on {thread}"));
    }
    if let Some(creator) = &trace.created_by {
        out.push_str(&format!(", created by {}", creator.describe()));
    }
    let count = trace.goroutines.len();
    if count > 0 {
        out.push_str(&format!(
            "; {count} goroutine{} in the trace",
            if count == 1 { "" } else { "s" }
        ));
        if count == 1 && trace.kind == TraceKind::Panic {
            out.push_str(" (Go prints only the panicking one unless GOTRACEBACK=all)");
        }
        if trace.message.contains("deadlock") {
            let mut states: BTreeMap<&str, usize> = BTreeMap::new();
            for g in &trace.goroutines {
                *states.entry(g.state.as_str()).or_insert(0) += 1;
            }
            let mut states: Vec<(&str, usize)> = states.into_iter().collect();
            states.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            out.push_str(&format!(
                ", all waiting: {}",
                states
                    .iter()
                    .map(|(state, n)| format!("{state} ×{n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    out
}

fn oom_killed(exit: &ContainerExit, memory: Option<&LastMemorySample>) -> Finding {
    let limit = exit
        .memory_limit_bytes
        .or_else(|| memory.and_then(|m| m.limit_bytes));
    let mut message = String::from("OOM-killed: the kernel killed the container");
    match limit {
        Some(limit) => message.push_str(&format!(
            " for going over its memory limit of {}",
            units::bytes(limit)
        )),
        None => message.push_str(" for going over its memory limit"),
    }
    let mut why = Vec::new();
    if exit.reason_is_oom() {
        why.push("reason OOMKilled".to_string());
    }
    if let Some(code) = exit.exit_code {
        why.push(format!("exit code {code}"));
    }
    if let Some(OomKills { before, after }) = exit.oom_kills.filter(|k| k.grew()) {
        why.push(format!(
            "the cgroup's OOM kill counter went {before} → {after}"
        ));
    }
    message.push_str(&format!(" ({})", why.join(", ")));
    match memory {
        Some(sample) => {
            message.push_str(&format!(
                "; the last working set seen was {}",
                units::bytes(sample.working_set_bytes)
            ));
            if let Some(limit) = limit.filter(|l| *l > 0) {
                message.push_str(&format!(
                    " ({:.1} % of the limit)",
                    sample.working_set_bytes as f64 * 100.0 / limit as f64
                ));
            }
            match exit.finished_at.map(|end| end - sample.taken_at) {
                Some(before) if before >= chrono::TimeDelta::zero() => message.push_str(&format!(
                    ", {} before the kill",
                    units::seconds(before.as_seconds_f64())
                )),
                _ => message.push_str(&format!(
                    ", at {}",
                    sample.taken_at.format("%Y-%m-%d %H:%M:%S%.3f UTC")
                )),
            }
        }
        None => message
            .push_str("; no memory sample was taken before the kill (an armed session takes one)"),
    }
    let evidence = json!({
        "memoryLimitBytes": limit,
        "exitCode": exit.exit_code,
        "reason": exit.reason,
        "oomKills": exit.oom_kills,
        "finishedAt": exit.finished_at,
        "lastMemorySample": memory,
        "secondsBeforeTheKill": memory.zip(exit.finished_at).map(|(m, end)| (end - m.taken_at).as_seconds_f64()),
    });
    Finding {
        severity: Severity::Critical,
        code: FindingCode::OomKilled,
        message,
        evidence,
    }
}

/// `EXIT_SIGNAL` or `EXIT_ERROR` for an end no trace explains; `None` for a clean exit.
fn exit_finding(exit: &ContainerExit, log: &ContainerLog, has_trace: bool) -> Option<Finding> {
    let no_trace = if has_trace {
        "and the log's last crash trace did not end it"
    } else {
        "and no crash trace in the log"
    };
    let (code, severity, mut message) = if let Some(signal) = exit.ending_signal() {
        let name = signal_name(signal);
        let code_text = exit
            .exit_code
            .map(|c| format!(" (exit code {c})"))
            .unwrap_or_default();
        let (severity, text) = match signal {
            libc::SIGKILL => {
                let oom = match exit.oom_kills {
                    Some(k) => format!(
                        "the cgroup's OOM kill counter did not grow ({} → {}), so not an OOM kill",
                        k.before, k.after
                    ),
                    None => "without the cgroup's OOM kill counter an OOM kill cannot be ruled out"
                        .into(),
                };
                (
                    Severity::Critical,
                    format!(
                        "was killed by SIGKILL{code_text}, {no_trace}: a liveness probe failing past its grace period, an eviction or a kill by hand; {oom}"
                    ),
                )
            }
            libc::SIGTERM | libc::SIGINT | libc::SIGHUP => (
                Severity::Warning,
                format!(
                    "was stopped by {name}{code_text}, {no_trace}: it was asked to stop (a rollout, a deletion, an eviction, a failing liveness probe)"
                ),
            ),
            _ => (
                Severity::Critical,
                format!("crashed with {name}{code_text}, {no_trace}"),
            ),
        };
        (FindingCode::ExitSignal, severity, text)
    } else {
        let code = exit.exit_code.filter(|c| *c != 0);
        let reason = exit
            .reason
            .as_deref()
            .filter(|r| !r.eq_ignore_ascii_case("Completed"));
        let text = match (code, reason) {
            (Some(code), Some(reason)) => {
                format!("exited with code {code} (reason {reason}), {no_trace}")
            }
            (Some(code), None) => format!("exited with code {code}, {no_trace}"),
            (None, Some(reason)) if exit.exit_code.is_none() => {
                format!("ended with reason {reason}, {no_trace}")
            }
            _ => return None,
        };
        let mut text = text;
        if code == Some(2) && !has_trace {
            text.push_str(
                " (Go exits with 2 after a panic: its trace may be cut or in another log)",
            );
        }
        (FindingCode::ExitError, Severity::Warning, text)
    };
    let last = last_lines(log);
    if last.is_empty() {
        message.push_str("; the log is empty");
    } else {
        message.push_str(&format!(
            "; last lines: {}",
            last.iter()
                .map(|l| format!("\"{l}\""))
                .collect::<Vec<_>>()
                .join(" / ")
        ));
    }
    let evidence = json!({
        "exitCode": exit.exit_code,
        "signal": exit.ending_signal().map(signal_name),
        "reason": exit.reason,
        "oomKills": exit.oom_kills,
        "lastLines": last,
    });
    Some(Finding {
        severity,
        code,
        message: format!("the container {message}"),
        evidence,
    })
}

/// The last few non-blank lines of the log, shortened.
fn last_lines(log: &ContainerLog) -> Vec<String> {
    let mut lines: Vec<String> = log
        .lines
        .iter()
        .rev()
        .filter(|l| !l.text.trim().is_empty())
        .take(QUOTED_LINES)
        .map(|l| shorten(l.text.trim(), QUOTED_CHARS))
        .collect();
    lines.reverse();
    lines
}
