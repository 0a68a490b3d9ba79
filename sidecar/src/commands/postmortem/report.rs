//! The human report of a post-mortem: the same [`Document`] as a capture's report (findings
//! first), with the crash trace, its frames and goroutines, how the container ended, what
//! the log lost and its last lines.

use super::trace::{CrashTrace, Language, SourceFrame};
use super::{CrashReport, LogFormat, Postmortem};
use crate::report::{Document, Section, Table};
use crate::units;

/// Rows in the frames and goroutines tables.
const MAX_ROWS: usize = 50;

pub(super) fn document(postmortem: &Postmortem, source: &str) -> Document {
    let crash = &postmortem.crash;
    let mut sections = Vec::new();
    if let Some(trace) = &crash.trace {
        sections.push(trace_section(trace));
        if !trace.frames.is_empty() {
            sections.push(frames_section(trace));
        }
        if trace.goroutines.len() > 1 {
            sections.push(goroutines_section(trace));
        }
    }
    sections.push(exit_section(crash));
    sections.push(log_section(crash, source));
    sections.push(tail_section(crash));
    let ending = crash
        .exit
        .describe()
        .unwrap_or_else(|| "how it ended is not known".into());
    Document {
        title: format!("procshot post-mortem: {source}"),
        subtitle: format!(
            "{ending}; {} crash trace(s) in {} line(s) of {} log",
            crash.traces.total,
            units::count(crash.log.lines as u64),
            match crash.log.format {
                LogFormat::Cri => "CRI",
                LogFormat::Plain => "plain-text",
            }
        ),
        partial: None,
        findings: postmortem.findings.clone(),
        sections,
    }
}

fn rows(pairs: Vec<(&str, String)>) -> Option<Table> {
    Some(Table {
        headers: vec![String::new(), String::new()],
        rows: pairs
            .into_iter()
            .map(|(k, v)| vec![k.to_string(), v])
            .collect(),
    })
}

fn trace_section(trace: &CrashTrace) -> Section {
    let mut pairs = vec![
        ("runtime", trace.language.name().to_string()),
        ("message", trace.message.clone()),
    ];
    if let Some(thread) = &trace.thread {
        let label = if trace.language == Language::Go {
            "goroutine"
        } else {
            "thread"
        };
        pairs.push((label, thread.clone()));
    }
    if let Some(location) = &trace.location {
        let label = if location.own_code {
            "program's own frame"
        } else {
            "top frame (not the program's)"
        };
        pairs.push((label, location.describe()));
    }
    if let Some(creator) = &trace.created_by {
        pairs.push(("created by", creator.describe()));
    }
    pairs.extend(trace.details.iter().map(|d| ("detail", d.clone())));
    pairs.extend(trace.missing.iter().map(|m| ("missing", m.clone())));
    let stream = trace
        .stream
        .map(|s| format!(", on {}", s.name()))
        .unwrap_or_default();
    Section {
        title: "Crash trace".into(),
        note: Some(format!(
            "Lines {}–{} of the log{stream}; the last crash trace in it.",
            trace.first_line, trace.last_line
        )),
        table: rows(pairs),
        ..Section::default()
    }
}

fn frame_row(index: usize, frame: &SourceFrame) -> Vec<String> {
    vec![
        index.to_string(),
        frame.function.clone().unwrap_or_default(),
        frame.short_location().unwrap_or_default(),
        if frame.own_code { "yes" } else { "" }.to_string(),
    ]
}

fn frames_section(trace: &CrashTrace) -> Section {
    Section {
        title: "Frames".into(),
        note: Some(format!(
            "The crashing {}'s stack, innermost first ({} frame(s){}).",
            if trace.language == Language::Go {
                "goroutine"
            } else {
                "thread"
            },
            trace.frames.len(),
            if trace.frames.len() > MAX_ROWS {
                format!("; the first {MAX_ROWS} here, all in crash.json")
            } else {
                String::new()
            }
        )),
        table: Some(Table {
            headers: ["#", "function", "location", "own code"]
                .map(String::from)
                .to_vec(),
            rows: trace
                .frames
                .iter()
                .take(MAX_ROWS)
                .enumerate()
                .map(|(i, f)| frame_row(i, f))
                .collect(),
        }),
        ..Section::default()
    }
}

fn goroutines_section(trace: &CrashTrace) -> Section {
    let rows = trace
        .goroutines
        .iter()
        .take(MAX_ROWS)
        .map(|g| {
            let site = g.frames.iter().find(|f| f.own_code).or(g.frames.first());
            vec![
                g.id.map_or_else(|| "?".into(), |id| id.to_string()),
                match g.wait_minutes {
                    Some(m) => format!("{}, {m} min", g.state),
                    None => g.state.clone(),
                },
                site.map(SourceFrame::describe).unwrap_or_default(),
                g.created_by
                    .as_ref()
                    .map(SourceFrame::describe)
                    .unwrap_or_default(),
            ]
        })
        .collect();
    Section {
        title: "Goroutines".into(),
        note: Some(format!(
            "{} goroutine(s) in the trace, in the order printed; each at its first frame of the program's own code.",
            trace.goroutines.len()
        )),
        table: Some(Table {
            headers: ["id", "state", "where", "created by"]
                .map(String::from)
                .to_vec(),
            rows,
        }),
        ..Section::default()
    }
}

fn exit_section(crash: &CrashReport) -> Section {
    let exit = &crash.exit;
    let mut pairs = Vec::new();
    if let Some(code) = exit.exit_code {
        pairs.push(("exit code", code.to_string()));
    }
    if let Some(signal) = exit.ending_signal() {
        pairs.push(("signal", super::exit::signal_name(signal)));
    }
    if let Some(reason) = &exit.reason {
        pairs.push(("reason", reason.clone()));
    }
    if let Some(at) = exit.finished_at {
        pairs.push((
            "finished",
            at.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string(),
        ));
    }
    if let Some(limit) = exit.memory_limit_bytes {
        pairs.push(("memory limit", units::bytes(limit)));
    }
    if let Some(kills) = exit.oom_kills {
        pairs.push((
            "cgroup OOM kills",
            format!("{} before, {} after", kills.before, kills.after),
        ));
    }
    if let Some(sample) = &crash.last_memory_sample {
        pairs.push((
            "last working set",
            format!(
                "{} at {}",
                units::bytes(sample.working_set_bytes),
                sample.taken_at.format("%Y-%m-%d %H:%M:%S%.3f UTC")
            ),
        ));
    }
    Section {
        title: "How the container ended".into(),
        note: pairs
            .is_empty()
            .then(|| "Not known: no exit code, signal or reason was given.".to_string()),
        table: (!pairs.is_empty()).then(|| rows(pairs)).flatten(),
        ..Section::default()
    }
}

fn log_section(crash: &CrashReport, source: &str) -> Section {
    let log = &crash.log;
    let mut pairs = vec![
        ("source", source.to_string()),
        (
            "format",
            match log.format {
                LogFormat::Cri => "CRI (kubelet log file)".into(),
                LogFormat::Plain => "plain text".into(),
            },
        ),
        ("lines", units::count(log.lines as u64)),
    ];
    if let (Some(first), Some(last)) = (log.first_time, log.last_time) {
        pairs.push((
            "from",
            first.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string(),
        ));
        pairs.push(("to", last.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string()));
    }
    for (language, count) in &crash.traces.by_language {
        pairs.push(("crash traces", format!("{} {count}", language.name())));
    }
    pairs.extend(log.damage.notes().into_iter().map(|n| ("damage", n)));
    Section {
        title: "Log".into(),
        table: rows(pairs),
        ..Section::default()
    }
}

fn tail_section(crash: &CrashReport) -> Section {
    Section {
        title: "Last lines of the log".into(),
        note: Some(format!("The last {} line(s).", crash.tail.len())),
        table: Some(Table {
            headers: ["time", "stream", "text"].map(String::from).to_vec(),
            rows: crash
                .tail
                .iter()
                .map(|l| {
                    vec![
                        l.time
                            .map(|t| t.format("%H:%M:%S%.3f").to_string())
                            .unwrap_or_default(),
                        l.stream.map(|s| s.name().to_string()).unwrap_or_default(),
                        super::trace::shorten(&l.text, 500),
                    ]
                })
                .collect(),
        }),
        ..Section::default()
    }
}
