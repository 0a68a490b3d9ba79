//! Reading a capture pod: its phase, failure reasons and the termination summary of its
//! `capture` container, folded into a target's status. Pure.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use procshot_api::{Outcome, TerminationSummary};

use crate::api::{Artifact, CaptureCounts, Phase, SessionFinding, TargetStatus};
use crate::capture_pod::{CAPTURE_CONTAINER, LOCATE_CONTAINER};

/// Waiting reasons that mean the capture pod will never start.
const FATAL_WAITING_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// What a capture pod says about its target.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The target's phase.
    pub phase: Phase,
    /// Why it failed or is partial.
    pub message: Option<String>,
    /// The condition reason for a failure.
    pub reason: Option<&'static str>,
    /// The target's host pid.
    pub target_pid: Option<i32>,
    /// Samples taken.
    pub samples: Option<u32>,
    /// Headline numbers.
    pub counts: Option<CaptureCounts>,
    /// Findings.
    pub findings: Vec<SessionFinding>,
    /// Uploaded files.
    pub artifacts: Vec<Artifact>,
}

impl Observation {
    fn phase(phase: Phase) -> Self {
        Self {
            phase,
            message: None,
            reason: None,
            target_pid: None,
            samples: None,
            counts: None,
            findings: Vec::new(),
            artifacts: Vec::new(),
        }
    }

    /// A failed target, with the condition reason and what went wrong.
    pub fn failed(reason: &'static str, message: String) -> Self {
        Self {
            message: Some(message),
            reason: Some(reason),
            ..Self::phase(Phase::Failed)
        }
    }

    /// Writes the observation into a target's status; returns its findings and artifacts.
    pub fn apply_to(self, target: &mut TargetStatus) -> (Vec<SessionFinding>, Vec<Artifact>) {
        target.phase = self.phase;
        target.message = self.message;
        target.reason = self.reason.map(str::to_string);
        if self.target_pid.is_some() {
            target.target_pid = self.target_pid;
        }
        target.samples = self.samples.or(target.samples);
        target.summary = self.counts.or(target.summary.take());
        (self.findings, self.artifacts)
    }
}

/// Reads a capture pod of target pod `target_pod`.
pub fn observe(pod: &Pod, target_pod: &str) -> Observation {
    let status = pod.status.clone().unwrap_or_default();
    let phase = status.phase.as_deref().unwrap_or("Pending");
    let capture = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == CAPTURE_CONTAINER);
    let locate = status
        .init_container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == LOCATE_CONTAINER);

    for container in [locate, capture].into_iter().flatten() {
        if let Some(waiting) = container.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            let reason = waiting.reason.as_deref().unwrap_or_default();
            if FATAL_WAITING_REASONS.contains(&reason) {
                return Observation::failed(
                    "CapturePodFailed",
                    format!(
                        "the capture pod cannot start its {} container: {reason}: {} (check the operator's agent image)",
                        container.name,
                        waiting.message.as_deref().unwrap_or_default()
                    ),
                );
            }
        }
    }
    if let Some(message) = locate.and_then(failed_termination) {
        return Observation::failed(
            "TargetNotLocated",
            format!("could not find the target's processes on its node: {message}"),
        );
    }
    if let Some(summary) = capture
        .and_then(termination_message)
        .and_then(|m| serde_json::from_str::<TerminationSummary>(&m).ok())
    {
        return from_summary(summary, target_pod);
    }
    match phase {
        "Failed" => {
            let reason = status.reason.as_deref().unwrap_or_default();
            let detail = status.message.clone().unwrap_or_default();
            match reason {
                "DeadlineExceeded" => Observation::failed(
                    "DeadlineExceeded",
                    "the capture did not finish within spec.timeout: raise spec.timeout or lower spec.samples".into(),
                ),
                "Evicted" => Observation::failed("CapturePodEvicted", format!("the capture pod was evicted: {detail}")),
                _ => Observation::failed(
                    "CaptureFailed",
                    capture
                        .and_then(failed_termination)
                        .unwrap_or_else(|| format!("the capture pod failed: {reason} {detail}").trim().to_string()),
                ),
            }
        }
        "Succeeded" => Observation::failed(
            "CaptureFailed",
            "the capture pod finished without a summary in its termination message".into(),
        ),
        "Running" => Observation::phase(Phase::Capturing),
        _ => Observation::phase(Phase::Pending),
    }
}

/// The termination message of a finished container.
fn termination_message(container: &ContainerStatus) -> Option<String> {
    container
        .state
        .as_ref()?
        .terminated
        .as_ref()?
        .message
        .clone()
}

/// The message of a container that terminated with a non-zero exit code.
fn failed_termination(container: &ContainerStatus) -> Option<String> {
    let terminated = container.state.as_ref()?.terminated.as_ref()?;
    (terminated.exit_code != 0).then(|| {
        terminated
            .message
            .clone()
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| {
                format!(
                    "exit code {} ({})",
                    terminated.exit_code,
                    terminated.reason.clone().unwrap_or_default()
                )
            })
    })
}

fn from_summary(summary: TerminationSummary, target_pod: &str) -> Observation {
    let findings = summary
        .findings
        .into_iter()
        .map(|f| SessionFinding {
            pod: target_pod.to_string(),
            severity: f.severity.name().to_string(),
            code: f.code.to_string(),
            message: f.message,
        })
        .collect();
    let (phase, mut reason, mut message) = match summary.outcome {
        Outcome::Succeeded => (Phase::Succeeded, None, None),
        Outcome::Partial => (
            Phase::Succeeded,
            None,
            Some(format!("partial capture: {}", summary.message)),
        ),
        Outcome::Failed => (Phase::Failed, Some("CaptureFailed"), Some(summary.message)),
    };
    if let Some(error) = &summary.upload_error {
        // The capture worked; its files stayed in the capture pod until its deadline.
        reason = reason.or(Some("UploadFailed"));
        let upload = format!(
            "the files were not uploaded ({error}); they stayed in the capture pod until its deadline"
        );
        message = Some(match message {
            Some(m) => format!("{m}; {upload}"),
            None => upload,
        });
    }
    Observation {
        phase,
        message,
        reason,
        target_pid: summary.target_pid,
        samples: Some(summary.samples),
        counts: summary.counts,
        findings,
        artifacts: summary.artifacts,
    }
}
