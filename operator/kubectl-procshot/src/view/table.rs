//! `get`'s table: the CRD's printer columns (name, phase, target, top finding, age), with
//! the namespace first for `-A`, as `kubectl get` prints them.

use k8s_openapi::jiff::Timestamp;
use procshot_operator::api::DebugSession;

use super::{Paint, age, columns, inert, phase_of, target_text};

/// The table's lines, header first.
pub fn lines(
    sessions: &[DebugSession],
    all_namespaces: bool,
    now: Timestamp,
    paint: Paint,
) -> Vec<String> {
    let mut header: Vec<String> = ["NAME", "PHASE", "TARGET", "FINDING", "AGE"]
        .map(String::from)
        .to_vec();
    if all_namespaces {
        header.insert(0, "NAMESPACE".into());
    }
    let mut rows = vec![header];
    for session in sessions {
        let status = session.status.as_ref();
        let finding = status
            .and_then(|s| {
                s.findings
                    .first()
                    .map(|f| (f.severity, s.top_finding.clone()))
            })
            .map(|(severity, top)| {
                let text = top.unwrap_or_default();
                format!("{} {}", paint.severity(severity).trim_end(), inert(&text))
            })
            .unwrap_or_else(|| "<none>".into());
        let mut row = vec![
            inert(session.metadata.name.as_deref().unwrap_or_default()),
            paint.phase(phase_of(session)),
            target_text(&session.spec.target),
            finding,
            age(session.metadata.creation_timestamp.as_ref(), now),
        ];
        if all_namespaces {
            row.insert(
                0,
                inert(session.metadata.namespace.as_deref().unwrap_or_default()),
            );
        }
        rows.push(row);
    }
    columns(&rows)
        .into_iter()
        .map(|l| l.trim_end().to_string())
        .collect()
}
