//! The operator's configuration: where capture pods run, with which image, and the
//! cluster admin's policy (allowed captures, longest timeout, captures per node).

use std::collections::BTreeSet;
use std::time::Duration;

use crate::api::CaptureKind;

/// Settings every reconcile reads; set from flags or environment at start-up.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorConfig {
    /// Namespace of the capture pods (labelled for the `privileged` PodSecurity level).
    pub namespace: String,
    /// The image with the `procshot` binary.
    pub agent_image: String,
    /// Captures the policy allows; a session asking for another one fails.
    pub allowed_captures: BTreeSet<CaptureKind>,
    /// The longest `spec.timeout` the policy allows.
    pub max_timeout: Duration,
    /// How many capture pods may run on one node at once.
    pub max_captures_per_node: usize,
    /// Whether thread captures may read kernel stacks (adds `CAP_SYS_ADMIN` to the capture
    /// container; off by default).
    pub kernel_stacks: bool,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        Self {
            namespace: "procshot-system".into(),
            agent_image: format!("ghcr.io/procshot/procshot:{}", env!("CARGO_PKG_VERSION")),
            allowed_captures: [CaptureKind::Fds, CaptureKind::Threads, CaptureKind::Memory].into(),
            max_timeout: Duration::from_secs(30 * 60),
            max_captures_per_node: 2,
            kernel_stacks: false,
        }
    }
}
