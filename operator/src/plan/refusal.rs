//! Why a session ends `Failed` before its capture runs: the refusal, its reason (the
//! `Ready` condition's reason, one of a fixed set) and a message saying what to fix.

use std::fmt;

/// Why a session is refused. Each reason is written to the `Ready` condition and the
/// session's Warning Event as its CamelCase name ([`RefusalReason::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// The spec breaks a rule the schema cannot express (a timeout too short for the
    /// sampling, a duration or size that does not parse, a selector operator).
    InvalidSpec,
    /// The spec asks for more than the operator's policy allows (a capture, a timeout, a
    /// core size, an output Secret).
    PolicyRefused,
    /// No pod of the session's namespace is the target.
    TargetNotFound,
    /// The target pod is not Running.
    TargetNotRunning,
    /// The target pod has no container of that name.
    ContainerNotFound,
    /// The target container is not running (restarting, or not started yet).
    ContainerNotRunning,
    /// The API server refused the capture pod for good (PodSecurity, an admission
    /// webhook, an invalid object).
    CapturePodRejected,
}

impl RefusalReason {
    /// The condition reason, as `kubectl describe` shows it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidSpec => "InvalidSpec",
            Self::PolicyRefused => "PolicyRefused",
            Self::TargetNotFound => "TargetNotFound",
            Self::TargetNotRunning => "TargetNotRunning",
            Self::ContainerNotFound => "ContainerNotFound",
            Self::ContainerNotRunning => "ContainerNotRunning",
            Self::CapturePodRejected => "CapturePodRejected",
        }
    }
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reason equals its condition reason string (`RefusalReason::PolicyRefused ==
/// "PolicyRefused"`).
impl PartialEq<&str> for RefusalReason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A failure that ends a session, with its reason and a message saying what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    /// Why, as the condition reason.
    pub reason: RefusalReason,
    /// What went wrong and what to do.
    pub message: String,
}

impl Refusal {
    /// A refusal with this reason and message.
    pub fn new(reason: RefusalReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }

    /// The spec breaks a rule the schema cannot express.
    pub fn invalid_spec(message: impl Into<String>) -> Self {
        Self::new(RefusalReason::InvalidSpec, message)
    }

    /// The spec asks for more than the policy allows.
    pub fn policy(message: impl Into<String>) -> Self {
        Self::new(RefusalReason::PolicyRefused, message)
    }
}
