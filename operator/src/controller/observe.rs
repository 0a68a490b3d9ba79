//! Reading a capture pod: its phase, failure reasons and the termination summary of its
//! `capture` container, folded into a target's status. Pure.

use std::fmt;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodStatus};
use procshot_api::{Outcome, TerminationSummary};

use crate::api::{Artifact, CaptureCounts, Phase, SessionFinding, TargetStatus};
use crate::capture_pod::{CAPTURE_CONTAINER, LOCATE_CONTAINER};
use crate::plan::RefusalReason;

/// Why a target's capture failed, or (for [`FailureReason::UploadFailed`]) what went
/// wrong in a capture that worked; written to the target's `reason`, the `Ready`
/// condition and the Warning Event as its CamelCase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// The capture pod cannot start a container (its image cannot be pulled, …).
    CapturePodFailed,
    /// `locate` found no process of the target container on its node.
    TargetNotLocated,
    /// The capture pod ran past `spec.timeout`.
    DeadlineExceeded,
    /// The kubelet evicted the capture pod.
    CapturePodEvicted,
    /// The capture pod vanished while it was capturing.
    CapturePodDeleted,
    /// The capture itself failed (its summary, exit code or pod status says why).
    CaptureFailed,
    /// The capture worked but its files were not uploaded.
    UploadFailed,
    /// The capture pod could not be started at all.
    Refused(RefusalReason),
}

impl FailureReason {
    /// The condition reason, as `kubectl describe` shows it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CapturePodFailed => "CapturePodFailed",
            Self::TargetNotLocated => "TargetNotLocated",
            Self::DeadlineExceeded => "DeadlineExceeded",
            Self::CapturePodEvicted => "CapturePodEvicted",
            Self::CapturePodDeleted => "CapturePodDeleted",
            Self::CaptureFailed => "CaptureFailed",
            Self::UploadFailed => "UploadFailed",
            Self::Refused(reason) => reason.as_str(),
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    pub reason: Option<FailureReason>,
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
    pub fn failed(reason: FailureReason, message: String) -> Self {
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
        target.reason = self.reason.map(|r| r.as_str().to_string());
        if self.target_pid.is_some() {
            target.target_pid = self.target_pid;
        }
        target.samples = self.samples.or(target.samples);
        target.summary = self.counts.or(target.summary.take());
        (self.findings, self.artifacts)
    }
}

/// Reads a capture pod of target pod `target_pod`: a container that cannot start, then
/// `locate`'s failure, then the capture's summary, then the pod's phase.
pub fn observe(pod: &Pod, target_pod: &str) -> Observation {
    let status = pod.status.clone().unwrap_or_default();
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
    if let Some(observation) = [locate, capture]
        .into_iter()
        .flatten()
        .find_map(cannot_start)
    {
        return observation;
    }
    if let Some(message) = locate.and_then(failed_termination) {
        return Observation::failed(
            FailureReason::TargetNotLocated,
            format!("could not find the target's processes on its node: {message}"),
        );
    }
    if let Some(summary) = capture
        .and_then(termination_message)
        .and_then(|m| serde_json::from_str::<TerminationSummary>(&m).ok())
    {
        return from_summary(summary, target_pod);
    }
    from_phase(&status, capture)
}

/// A container waiting for a reason that never clears (its image cannot be pulled, …).
fn cannot_start(container: &ContainerStatus) -> Option<Observation> {
    let waiting = container.state.as_ref()?.waiting.as_ref()?;
    let reason = waiting.reason.as_deref().unwrap_or_default();
    FATAL_WAITING_REASONS.contains(&reason).then(|| {
        Observation::failed(
            FailureReason::CapturePodFailed,
            format!(
                "the capture pod cannot start its {} container: {reason}: {} (check the operator's agent image)",
                container.name,
                waiting.message.as_deref().unwrap_or_default()
            ),
        )
    })
}

/// What the pod's phase says when no container said more.
fn from_phase(status: &PodStatus, capture: Option<&ContainerStatus>) -> Observation {
    match status.phase.as_deref().unwrap_or("Pending") {
        "Failed" => {
            let reason = status.reason.as_deref().unwrap_or_default();
            let detail = status.message.clone().unwrap_or_default();
            match reason {
                "DeadlineExceeded" => Observation::failed(
                    FailureReason::DeadlineExceeded,
                    "the capture did not finish within spec.timeout: raise spec.timeout or lower spec.samples".into(),
                ),
                "Evicted" => Observation::failed(
                    FailureReason::CapturePodEvicted,
                    format!("the capture pod was evicted: {detail}"),
                ),
                _ => Observation::failed(
                    FailureReason::CaptureFailed,
                    capture.and_then(failed_termination).unwrap_or_else(|| {
                        format!("the capture pod failed: {reason} {detail}")
                            .trim()
                            .to_string()
                    }),
                ),
            }
        }
        "Succeeded" => Observation::failed(
            FailureReason::CaptureFailed,
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
        let message = terminated
            .message
            .clone()
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty());
        match (terminated.reason.as_deref(), message) {
            // The message is then only the end of the log (FallbackToLogsOnError).
            (Some("OOMKilled"), message) => format!(
                "the {} container went over its memory limit and was OOM-killed (exit code {}); its last output: {}",
                container.name,
                terminated.exit_code,
                message.unwrap_or_default()
            ),
            (_, Some(message)) => message,
            (reason, None) => format!(
                "exit code {} ({})",
                terminated.exit_code,
                reason.unwrap_or_default()
            ),
        }
    })
}

fn from_summary(summary: TerminationSummary, target_pod: &str) -> Observation {
    let findings = summary
        .findings
        .into_iter()
        .map(|f| SessionFinding {
            pod: target_pod.to_string(),
            severity: f.severity,
            code: f.code,
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
        Outcome::Failed => (
            Phase::Failed,
            Some(FailureReason::CaptureFailed),
            Some(summary.message),
        ),
    };
    if let Some(error) = &summary.upload_error {
        // The capture worked; its files stayed in the capture pod until its deadline.
        reason = reason.or(Some(FailureReason::UploadFailed));
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
