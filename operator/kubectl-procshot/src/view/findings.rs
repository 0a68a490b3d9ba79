//! A finished session for people: how it ended, each target's headline numbers, the
//! findings most serious first (coloured by severity), and where the files are.

use std::io::{self, Write};

use procshot_operator::api::{DebugSession, Phase, SessionFinding};

use super::{Paint, Severity, bytes, columns, inert, phase_of, qualified_name};

/// Findings as aligned rows: severity, code, pod (with several targets), message.
pub fn print_findings(
    out: &mut dyn Write,
    findings: &[SessionFinding],
    paint: Paint,
) -> io::Result<()> {
    let several_pods = findings
        .iter()
        .any(|f| findings.first().is_some_and(|first| first.pod != f.pod));
    let mut sorted: Vec<&SessionFinding> = findings.iter().collect();
    sorted.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let rows: Vec<Vec<String>> = sorted
        .iter()
        .map(|f| {
            let mut row = vec![paint.severity(f.severity), inert(f.code.as_str())];
            if several_pods {
                row.push(inert(&f.pod));
            }
            row.push(inert(&f.message));
            row
        })
        .collect();
    for line in columns(&rows) {
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// The most serious severity among the findings.
pub fn worst(findings: &[SessionFinding]) -> Option<Severity> {
    findings.iter().map(|f| f.severity).max()
}

/// How the session ended, its targets, findings and files.
pub fn print_result(out: &mut dyn Write, session: &DebugSession, paint: Paint) -> io::Result<()> {
    let phase = phase_of(session);
    let status = session.status.clone().unwrap_or_default();
    let mut headline = format!("{} {}", qualified_name(session), paint.phase(phase));
    if let (Some(start), Some(end)) = (&status.started_at, &status.finished_at) {
        let seconds = (end.0.as_second() - start.0.as_second()).max(0);
        headline.push_str(&format!(" in {seconds}s"));
    }
    if phase == Phase::Failed
        && let Some(ready) = status.conditions.iter().find(|c| c.type_ == "Ready")
    {
        headline.push_str(&format!(
            ": {}: {}",
            inert(&ready.reason),
            inert(&ready.message)
        ));
    }
    writeln!(out, "{headline}")?;
    for target in &status.targets {
        let mut line = format!("  {} {}", inert(&target.pod), paint.phase(target.phase));
        if let Some(samples) = target.samples {
            line.push_str(&format!(", {samples} samples"));
        }
        if let Some(counts) = &target.summary {
            if let Some(fds) = counts.fds {
                match counts.fd_soft_limit {
                    Some(limit) => line.push_str(&format!(", {fds}/{limit} fds")),
                    None => line.push_str(&format!(", {fds} fds")),
                }
            }
            if let Some(threads) = counts.threads {
                line.push_str(&format!(", {threads} threads"));
            }
            if let Some(rss) = counts.rss_bytes {
                line.push_str(&format!(", RSS {}", bytes(rss)));
            }
            if let Some(goroutines) = counts.goroutines {
                line.push_str(&format!(", {goroutines} goroutines"));
            }
        }
        if let Some(message) = &target.message {
            line.push_str(&format!(": {}", inert(message)));
        }
        writeln!(out, "{line}")?;
    }
    if status.findings.is_empty() {
        if phase == Phase::Succeeded {
            writeln!(out, "no findings: nothing crossed a threshold")?;
        }
    } else {
        writeln!(out)?;
        print_findings(out, &status.findings, paint)?;
    }
    if !status.artifacts.is_empty() {
        writeln!(out)?;
        let reports: Vec<_> = status
            .artifacts
            .iter()
            .filter(|a| a.name.starts_with("report."))
            .collect();
        for artifact in &reports {
            writeln!(
                out,
                "{}  {}",
                inert(&artifact.name),
                paint.dim(&inert(&artifact.url))
            )?;
        }
        let name = inert(session.metadata.name.as_deref().unwrap_or_default());
        writeln!(
            out,
            "{} files ({}): kubectl procshot download {name} DIR",
            status.artifacts.len(),
            bytes(status.artifacts.iter().map(|a| a.bytes).sum())
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(pod: &str, severity: &str, code: &str) -> SessionFinding {
        SessionFinding {
            pod: pod.into(),
            severity: severity.parse().unwrap(),
            code: procshot_api::FindingCode::parse(code),
            message: format!("{code} happened"),
        }
    }

    #[test]
    fn findings_print_most_serious_first_with_the_pod_only_when_there_are_several() {
        let mut out = Vec::new();
        let findings = [
            finding("api-1", "info", "SOCKET_CLOSE_WAIT"),
            finding("api-1", "critical", "FD_GROWTH"),
        ];
        print_findings(&mut out, &findings, Paint { color: false }).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "CRITICAL  FD_GROWTH          FD_GROWTH happened\n\
             INFO      SOCKET_CLOSE_WAIT  SOCKET_CLOSE_WAIT happened\n"
        );
        let mut out = Vec::new();
        let findings = [
            finding("api-1", "warning", "RSS_GROWTH"),
            finding("api-2", "warning", "RSS_GROWTH"),
        ];
        print_findings(&mut out, &findings, Paint { color: true }).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("\u{1b}[33mWARNING \u{1b}[0m  RSS_GROWTH  api-2"),
            "{text:?}"
        );
        assert_eq!(worst(&findings), Some(Severity::Warning));
    }
}
