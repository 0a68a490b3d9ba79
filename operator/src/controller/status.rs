//! The status stage, pure: the targets recorded before any capture pod exists, target
//! results folded into the session's status (phase, findings most serious first, the top
//! finding shown by `kubectl get`, artifacts) and the `Ready` condition that says where
//! the session is and why.

use std::cmp::Reverse;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::observe::FailureReason;
use crate::api::{DebugSessionStatus, Phase, SessionFinding, TargetStatus};
use crate::capture_pod;
use crate::plan::CaptureTarget;

/// The condition every session carries.
pub const READY: &str = "Ready";

/// Longest top finding shown in `kubectl get`.
const TOP_FINDING_CHARS: usize = 80;

/// Recomputes the session phase from its targets, and the derived fields.
pub fn aggregate(status: &mut DebugSessionStatus, now: &Time) {
    let phases: Vec<Phase> = status.targets.iter().map(|t| t.phase).collect();
    if !phases.is_empty() {
        status.phase = if phases.iter().all(|p| p.is_finished()) {
            if phases.contains(&Phase::Succeeded) {
                Phase::Succeeded
            } else {
                Phase::Failed
            }
        } else if phases.contains(&Phase::Capturing) || phases.iter().any(|p| p.is_finished()) {
            Phase::Capturing
        } else {
            Phase::Pending
        };
    }
    status.findings.sort_by_key(|f| Reverse(f.severity));
    status.top_finding = status.findings.first().map(top_finding);
    if status.phase.is_finished() && status.finished_at.is_none() {
        status.finished_at = Some(now.clone());
    }
}

/// Replaces the findings about `pod` with `findings`.
pub fn set_findings(status: &mut DebugSessionStatus, pod: &str, findings: Vec<SessionFinding>) {
    status.findings.retain(|f| f.pod != pod);
    status.findings.extend(findings);
}

fn top_finding(finding: &SessionFinding) -> String {
    let text = format!("{}: {}", finding.code, finding.message);
    if text.chars().count() <= TOP_FINDING_CHARS {
        return text;
    }
    let cut: String = text.chars().take(TOP_FINDING_CHARS - 1).collect();
    format!("{cut}…")
}

/// Sets the `Ready` condition; its transition time changes only when its status does.
pub fn set_ready(
    status: &mut DebugSessionStatus,
    ready: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &Time,
) {
    let value = if ready { "True" } else { "False" };
    let previous = status.conditions.iter().find(|c| c.type_ == READY);
    let last_transition_time = match previous {
        Some(c) if c.status == value => c.last_transition_time.clone(),
        _ => now.clone(),
    };
    status.conditions.retain(|c| c.type_ != READY);
    status.conditions.push(Condition {
        type_: READY.into(),
        status: value.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time,
    });
}

/// The status of a target about to be captured, with its capture pod's name, recorded
/// before the pod is created so that a restarted operator resumes the same capture.
pub fn target_status(
    target: CaptureTarget,
    session_namespace: &str,
    session_name: &str,
) -> TargetStatus {
    TargetStatus {
        capture_pod: capture_pod::capture_pod_name(session_namespace, session_name, &target.pod),
        pod: target.pod,
        pod_uid: target.pod_uid,
        container: target.container,
        container_id: target.container_id,
        node: target.node,
        ..TargetStatus::default()
    }
}

/// The target a recorded status names, in the session's `namespace`.
pub fn capture_target(target: &TargetStatus, namespace: &str) -> CaptureTarget {
    CaptureTarget {
        pod: target.pod.clone(),
        namespace: namespace.to_string(),
        pod_uid: target.pod_uid.clone(),
        node: target.node.clone(),
        container: target.container.clone(),
        container_id: target.container_id.clone(),
    }
}

/// `capturing POD, … on node(s) NODE, …`: what the session captures.
pub fn targets_message(targets: &[TargetStatus]) -> String {
    let names: Vec<&str> = targets.iter().map(|t| t.pod.as_str()).collect();
    let mut nodes: Vec<&str> = targets.iter().map(|t| t.node.as_str()).collect();
    nodes.dedup();
    format!(
        "capturing {} on node(s) {}",
        names.join(", "),
        nodes.join(", ")
    )
}

/// Sets the `Ready` condition from the session's phase: its findings or partial
/// captures when it succeeded, the first failed target's reason when it failed, and while
/// it runs, whether it waits for a capture slot on `waiting_for_node` (which runs
/// `max_per_node` captures).
pub fn set_ready_from_targets(
    status: &mut DebugSessionStatus,
    waiting_for_node: Option<&str>,
    max_per_node: usize,
    generation: Option<i64>,
    now: &Time,
) {
    let (ready, reason, message) = match status.phase {
        Phase::Succeeded => (true, "Succeeded".to_string(), succeeded_message(status)),
        Phase::Failed => {
            let (reason, message) = failed_reason(status);
            (false, reason, message)
        }
        Phase::Pending | Phase::Capturing => match waiting_for_node {
            Some(node) => (
                false,
                "WaitingForNode".into(),
                format!("node {node} already runs {max_per_node} capture(s), the operator's limit"),
            ),
            None => (
                false,
                format!("{:?}", status.phase),
                "capture pods are starting or sampling".into(),
            ),
        },
    };
    set_ready(status, ready, &reason, &message, generation, now);
}

/// What partial captures said, else the number of findings.
fn succeeded_message(status: &DebugSessionStatus) -> String {
    let partial: Vec<String> = status
        .targets
        .iter()
        .filter_map(|t| t.message.clone())
        .collect();
    if partial.is_empty() {
        format!("{} finding(s)", status.findings.len())
    } else {
        partial.join("; ")
    }
}

/// The first failed target's reason, and what every failed target says.
fn failed_reason(status: &DebugSessionStatus) -> (String, String) {
    let failed: Vec<&TargetStatus> = status
        .targets
        .iter()
        .filter(|t| t.phase == Phase::Failed)
        .collect();
    let reason = failed
        .iter()
        .find_map(|t| t.reason.clone())
        .unwrap_or_else(|| FailureReason::CaptureFailed.as_str().into());
    let message: Vec<String> = failed
        .iter()
        .map(|t| format!("{}: {}", t.pod, t.message.clone().unwrap_or_default()))
        .collect();
    (reason, message.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::FindingCode;

    fn now() -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap())
    }

    fn target(pod: &str, phase: Phase) -> TargetStatus {
        TargetStatus {
            pod: pod.into(),
            phase,
            ..TargetStatus::default()
        }
    }

    #[test]
    fn the_session_phase_follows_its_targets() {
        let mut status = DebugSessionStatus {
            targets: vec![target("a", Phase::Pending), target("b", Phase::Pending)],
            ..DebugSessionStatus::default()
        };
        aggregate(&mut status, &now());
        assert_eq!(status.phase, Phase::Pending);
        status.targets[0].phase = Phase::Capturing;
        aggregate(&mut status, &now());
        assert_eq!(status.phase, Phase::Capturing);
        status.targets[0].phase = Phase::Failed;
        status.targets[1].phase = Phase::Succeeded;
        aggregate(&mut status, &now());
        assert_eq!(status.phase, Phase::Succeeded);
        assert_eq!(status.finished_at, Some(now()));
        status.targets[1].phase = Phase::Failed;
        aggregate(&mut status, &now());
        assert_eq!(status.phase, Phase::Failed);
    }

    #[test]
    fn findings_are_sorted_and_the_top_one_is_short() {
        let finding = |pod: &str, severity: &str, code: &str| SessionFinding {
            pod: pod.into(),
            severity: serde_json::from_value(serde_json::json!(severity)).unwrap(),
            code: FindingCode::parse(code),
            message: "x".repeat(100),
        };
        let mut status = DebugSessionStatus::default();
        set_findings(
            &mut status,
            "a",
            vec![finding("a", "info", "SOCKET_CLOSE_WAIT")],
        );
        set_findings(
            &mut status,
            "b",
            vec![finding("b", "critical", "FD_GROWTH")],
        );
        aggregate(&mut status, &now());
        assert_eq!(status.findings[0].code, "FD_GROWTH");
        let top = status.top_finding.clone().unwrap();
        assert!(
            top.starts_with("FD_GROWTH: xxx") && top.chars().count() == TOP_FINDING_CHARS,
            "{top}"
        );
        set_findings(&mut status, "b", vec![]);
        assert_eq!(status.findings.len(), 1);
    }

    #[test]
    fn the_ready_condition_keeps_its_transition_time_while_unchanged() {
        let mut status = DebugSessionStatus::default();
        let later = Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_100).unwrap());
        set_ready(&mut status, false, "Pending", "waiting", Some(1), &now());
        set_ready(&mut status, false, "Capturing", "sampling", Some(1), &later);
        assert_eq!(status.conditions.len(), 1);
        assert_eq!(status.conditions[0].last_transition_time, now());
        assert_eq!(status.conditions[0].reason, "Capturing");
        set_ready(&mut status, true, "Succeeded", "done", Some(1), &later);
        assert_eq!(status.conditions[0].last_transition_time, later);
    }
}
