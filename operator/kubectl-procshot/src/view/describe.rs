//! `describe`: one session in full, as `kubectl describe` lays an object out: what was
//! asked, where it is, each target, the findings, the files and the events.

use std::io::{self, Write};

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use procshot_operator::api::{Artifact, DebugSession, OutputSpec, SessionFinding, TargetStatus};

use super::findings::print_findings;
use super::{Paint, age, bytes, columns, inert, phase_of, target_text};
use crate::session::REQUESTED_BY_ANNOTATION;

/// Prints `session` and its `events` (or why they could not be read).
pub fn print(
    out: &mut dyn Write,
    session: &DebugSession,
    events: &Result<Vec<Event>, String>,
    now: Timestamp,
    paint: Paint,
) -> io::Result<()> {
    let status = session.status.clone().unwrap_or_default();
    request(out, session, now, paint)?;
    conditions(out, &status.conditions)?;
    targets(out, &status.targets, paint)?;
    findings(out, &status.findings, paint)?;
    files(out, &status.artifacts)?;
    events_section(out, events, now)
}

/// What was asked, by whom, and where the session stands: one `Name:  value` line each.
fn request(
    out: &mut dyn Write,
    session: &DebugSession,
    now: Timestamp,
    paint: Paint,
) -> io::Result<()> {
    let meta = &session.metadata;
    let spec = &session.spec;
    let field = |out: &mut dyn Write, name: &str, value: String| {
        writeln!(out, "{:<14}{value}", format!("{name}:"))
    };
    field(out, "Name", inert(meta.name.as_deref().unwrap_or_default()))?;
    field(
        out,
        "Namespace",
        inert(meta.namespace.as_deref().unwrap_or_default()),
    )?;
    if let Some(user) = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(REQUESTED_BY_ANNOTATION))
    {
        field(out, "Requested by", inert(user))?;
    }
    field(
        out,
        "Created",
        age(meta.creation_timestamp.as_ref(), now) + " ago",
    )?;
    field(out, "Target", target_text(&spec.target))?;
    let captures: Vec<String> = spec.capture.iter().map(ToString::to_string).collect();
    field(out, "Captures", captures.join(", "))?;
    let every = spec
        .interval
        .as_deref()
        .map(|i| format!(" every {}", inert(i)))
        .unwrap_or_default();
    field(
        out,
        "Samples",
        format!("{}{every}, timeout {}", spec.samples, inert(&spec.timeout)),
    )?;
    field(out, "Output", output_text(spec.output.as_ref()))?;
    field(out, "Phase", paint.phase(phase_of(session)))
}

fn conditions(out: &mut dyn Write, conditions: &[Condition]) -> io::Result<()> {
    if conditions.is_empty() {
        return Ok(());
    }
    writeln!(out, "Conditions:")?;
    let mut rows = vec![
        ["TYPE", "STATUS", "REASON", "MESSAGE"]
            .map(String::from)
            .to_vec(),
    ];
    for c in conditions {
        rows.push(vec![
            inert(&c.type_),
            inert(&c.status),
            inert(&c.reason),
            inert(&c.message),
        ]);
    }
    indented(out, &rows)
}

/// A row per target with its counts, then the message of each target that has one.
fn targets(out: &mut dyn Write, targets: &[TargetStatus], paint: Paint) -> io::Result<()> {
    if targets.is_empty() {
        return Ok(());
    }
    writeln!(out, "Targets:")?;
    let mut rows = vec![
        [
            "POD",
            "PHASE",
            "NODE",
            "PID",
            "SAMPLES",
            "FDS",
            "THREADS",
            "RSS",
            "CAPTURE POD",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    for t in targets {
        let counts = t.summary.clone().unwrap_or_default();
        rows.push(vec![
            inert(&t.pod),
            paint.phase(t.phase),
            inert(&t.node),
            or_dash(t.target_pid.map(|p| p.to_string())),
            or_dash(t.samples.map(|s| s.to_string())),
            or_dash(counts.fds.map(|f| f.to_string())),
            or_dash(counts.threads.map(|n| n.to_string())),
            or_dash(counts.rss_bytes.map(bytes)),
            inert(&t.capture_pod),
        ]);
    }
    indented(out, &rows)?;
    for t in targets.iter().filter(|t| t.message.is_some()) {
        writeln!(
            out,
            "  {}: {}",
            inert(&t.pod),
            inert(t.message.as_deref().unwrap_or_default())
        )?;
    }
    Ok(())
}

fn findings(out: &mut dyn Write, findings: &[SessionFinding], paint: Paint) -> io::Result<()> {
    writeln!(out, "Findings:")?;
    if findings.is_empty() {
        return writeln!(out, "  <none>");
    }
    let mut text = Vec::new();
    print_findings(&mut text, findings, paint)?;
    for line in String::from_utf8_lossy(&text).lines() {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}

fn files(out: &mut dyn Write, artifacts: &[Artifact]) -> io::Result<()> {
    if artifacts.is_empty() {
        return Ok(());
    }
    writeln!(out, "Files:")?;
    let mut rows = vec![["NAME", "SIZE", "URL"].map(String::from).to_vec()];
    for a in artifacts {
        rows.push(vec![inert(&a.name), bytes(a.bytes), inert(&a.url)]);
    }
    indented(out, &rows)
}

fn events_section(
    out: &mut dyn Write,
    events: &Result<Vec<Event>, String>,
    now: Timestamp,
) -> io::Result<()> {
    writeln!(out, "Events:")?;
    let events = match events {
        Err(why) => return writeln!(out, "  <cannot list events: {}>", inert(why)),
        Ok(events) if events.is_empty() => return writeln!(out, "  <none>"),
        Ok(events) => events,
    };
    let mut rows = vec![
        ["TYPE", "REASON", "AGE", "MESSAGE"]
            .map(String::from)
            .to_vec(),
    ];
    for e in events {
        rows.push(vec![
            inert(e.type_.as_deref().unwrap_or_default()),
            inert(e.reason.as_deref().unwrap_or_default()),
            event_age(e, now),
            inert(e.message.as_deref().unwrap_or_default()),
        ]);
    }
    indented(out, &rows)
}

/// How long ago the event last happened: its `lastTimestamp`, `firstTimestamp` or (for
/// events of the events.k8s.io API) `eventTime`.
fn event_age(event: &Event, now: Timestamp) -> String {
    let when = event
        .last_timestamp
        .as_ref()
        .or(event.first_timestamp.as_ref());
    match (when, &event.event_time) {
        (Some(t), _) => age(Some(t), now),
        (None, Some(micro)) => age(Some(&Time(micro.0)), now),
        (None, None) => "<unknown>".into(),
    }
}

fn indented(out: &mut dyn Write, rows: &[Vec<String>]) -> io::Result<()> {
    for line in columns(rows) {
        writeln!(out, "  {}", line.trim_end())?;
    }
    Ok(())
}

fn output_text(output: Option<&OutputSpec>) -> String {
    match output {
        None => "the operator's default".into(),
        Some(OutputSpec { s3: Some(s3), .. }) => {
            let mut text = format!("s3://{}", inert(&s3.bucket));
            if let Some(prefix) = &s3.prefix {
                text.push_str(&format!("/{}", inert(prefix)));
            }
            if let Some(endpoint) = &s3.endpoint {
                text.push_str(&format!(" at {}", inert(endpoint)));
            }
            text
        }
        Some(OutputSpec { pvc: Some(pvc), .. }) => {
            let path = pvc
                .path
                .as_deref()
                .map(|p| format!("/{}", inert(p)))
                .unwrap_or_default();
            format!("pvc://{}{path}", inert(&pvc.claim_name))
        }
        Some(_) => "<none>".into(),
    }
}
