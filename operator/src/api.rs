//! The `DebugSession` API (`procshot.dev/v1alpha1`): what an on-call engineer asks for, and
//! the status the operator fills in. Cross-field rules live in the schema as CEL
//! (`x-kubernetes-validations`), so the API server refuses a bad spec with a message that
//! says what to fix.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A request to capture the evidence of one or more pods in the session's own namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "procshot.dev",
    version = "v1alpha1",
    kind = "DebugSession",
    namespaced,
    status = "DebugSessionStatus",
    shortname = "dbg",
    category = "procshot",
    doc = "Captures open fds, threads and memory of a running pod several samples apart, and reports findings.",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Target","type":"string","jsonPath":".spec.target.pod"}"#,
    printcolumn = r#"{"name":"Finding","type":"string","jsonPath":".status.topFinding"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("self.metadata.name.size() <= 52").message("metadata.name must be at most 52 characters (capture pod names are derived from it)")
)]
#[x_kube(
    validation = Rule::new("self.samples == 1 || has(self.interval)").message("spec.interval is required when spec.samples > 1 (for example interval: 10s)"),
    validation = Rule::new("self == oldSelf").message("a DebugSession's spec cannot be changed: create a new DebugSession"),
    validation = Rule::new("!has(self.core) || (has(self.capture) && self.capture.exists(c, c == 'core'))").message("spec.core only applies when spec.capture includes core")
)]
#[serde(rename_all = "camelCase")]
pub struct DebugSessionSpec {
    /// Which pod (or pods) to capture. Must be in the DebugSession's namespace.
    pub target: TargetSpec,
    /// What to capture: `fds`, `threads`, `memory` and `goroutines` in every sample,
    /// `stacks` and `core` once after the last sample. Goroutines are read from the Go
    /// program's memory (Go 1.19 and 1.21–1.27, stripped or not), or from `goPprof`.
    #[serde(default = "default_captures")]
    #[schemars(extend("x-kubernetes-list-type" = "set"), length(min = 1))]
    pub capture: Vec<CaptureKind>,
    /// How many samples to take; trends need at least 2.
    #[serde(default = "default_samples")]
    #[schemars(range(min = 1, max = 100))]
    pub samples: u32,
    /// Time between two samples, as a duration (`500ms`, `10s`, `1m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"))]
    pub interval: Option<String>,
    /// How long the whole capture may take before its pod is stopped (`5m`).
    #[serde(default = "default_timeout")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"))]
    pub timeout: String,
    /// Delete the DebugSession this long after it finished; unset keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i64>,
    /// Where the capture's files are uploaded; default: the operator's default output
    /// (none: the files stay in the capture pod and only the findings reach this status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputSpec>,
    /// The pod's Go pprof endpoint (`import _ "net/http/pprof"`), reached from inside the
    /// pod's network namespace, so an endpoint bound to 127.0.0.1 works. Setting it
    /// captures goroutines from there (and the heap profile) instead of from the
    /// program's memory; the capture pod then also needs `SYS_ADMIN` to enter the pod's
    /// network namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go_pprof: Option<GoPprofSpec>,
    /// Limits of the core dump (with `capture: [core]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core: Option<CoreSpec>,
}

/// Where the target's Go pprof endpoint listens, inside its pod.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GoPprofSpec {
    /// TCP port of the endpoint (`6060`).
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// Address it is bound to inside the pod; default `127.0.0.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9A-Za-z.:-]+$"), length(max = 253))]
    pub host: Option<String>,
}

impl GoPprofSpec {
    /// The address `procshot capture --go-pprof` takes.
    pub fn address(&self) -> procshot_api::PprofAddress {
        procshot_api::PprofAddress::new(self.host.as_deref(), self.port)
    }
}

/// Limits of a core dump.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CoreSpec {
    /// Refuse the dump when the memory it would hold is larger than this (a quantity such
    /// as `2Gi`); default: the operator's limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(Ki|Mi|Gi|Ti)?$"))]
    pub max_bytes: Option<String>,
    /// The longest the process may stay paused while its memory is copied (`2s`); the dump
    /// is abandoned, and the process resumed, when it would take longer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m))+$"))]
    pub max_pause: Option<String>,
}

/// Where a capture's files go: an S3-compatible bucket, or a PersistentVolumeClaim in the
/// operator's capture namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new("has(self.s3) != has(self.pvc)").message("set exactly one of spec.output.s3 and spec.output.pvc"))]
#[serde(rename_all = "camelCase")]
pub struct OutputSpec {
    /// An S3 (or S3-compatible) bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Output>,
    /// A PersistentVolumeClaim in the operator's capture namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc: Option<PvcOutput>,
}

/// An S3 or S3-compatible bucket. Credentials come from a Secret in the operator's
/// namespace that the cluster admin allows (never from this spec).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct S3Output {
    /// Bucket name.
    #[schemars(length(min = 3, max = 63))]
    pub bucket: String,
    /// Key prefix; captures land under `PREFIX/NAMESPACE/SESSION/TIMESTAMP/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Endpoint of an S3-compatible server (`https://minio.storage:9000`); default AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s/]+(/.*)?$"))]
    pub endpoint: Option<String>,
    /// Region (`eu-west-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The Secret (in the operator's namespace) holding AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY; must be one the operator allows. Default: the operator's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

/// A PersistentVolumeClaim the capture pod writes the files to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PvcOutput {
    /// Claim name, in the operator's capture namespace.
    #[schemars(length(min = 1, max = 253))]
    pub claim_name: String,
    /// Directory in the volume; captures land under `PATH/NAMESPACE/SESSION/TIMESTAMP/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([A-Za-z0-9_-]+/)*[A-Za-z0-9_-]+$"))]
    pub path: Option<String>,
}

/// The pod to capture: by name, or by label selector.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(
    validation = Rule::new("has(self.pod) != has(self.selector)").message("set exactly one of spec.target.pod and spec.target.selector"),
    validation = Rule::new("!has(self.maxPods) || has(self.selector)").message("spec.target.maxPods only applies with spec.target.selector")
)]
#[serde(rename_all = "camelCase")]
pub struct TargetSpec {
    /// Name of the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub pod: Option<String>,
    /// Pods with these labels (Running ones, oldest first, up to `maxPods`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// How many of the selected pods to capture (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10))]
    pub max_pods: Option<u32>,
    /// Container to capture; default: the pod's `kubectl.kubernetes.io/default-container`
    /// annotation, else its first container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// What can be captured, defined once for the operator and the capture engine.
pub use procshot_api::CaptureKind;

fn default_captures() -> Vec<CaptureKind> {
    CaptureKind::DEFAULT.to_vec()
}

fn default_samples() -> u32 {
    3
}

fn default_timeout() -> String {
    "5m".to_string()
}

/// Where a DebugSession is in its life.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Phase {
    /// Accepted; the capture pod is not running yet.
    #[default]
    Pending,
    /// The capture pod is sampling.
    Capturing,
    /// Every capture finished (possibly partial: see the conditions).
    Succeeded,
    /// The session could not capture; the `Ready` condition says why.
    Failed,
}

impl Phase {
    /// Whether the session is over.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

/// What the operator knows of a session.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DebugSessionStatus {
    /// Where the session is.
    #[serde(default)]
    pub phase: Phase,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Standard conditions; `Ready` carries the reason of a failure.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// One entry per captured pod.
    #[serde(default)]
    pub targets: Vec<TargetStatus>,
    /// When the first capture pod was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the session finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// Findings of every target, most serious first.
    #[serde(default)]
    pub findings: Vec<SessionFinding>,
    /// The most serious finding in a few words, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_finding: Option<String>,
    /// Every uploaded file of every target.
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
}

/// One uploaded file of a capture (URL, size and sha256).
pub use procshot_api::Artifact;

/// The capture of one pod.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TargetStatus {
    /// The target pod.
    pub pod: String,
    /// The target pod's UID.
    pub pod_uid: String,
    /// The captured container.
    pub container: String,
    /// Its container ID (`containerd://…`).
    pub container_id: String,
    /// The node it runs on.
    pub node: String,
    /// The capture pod, in the operator's namespace.
    pub capture_pod: String,
    /// The target's host pid, once located.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_pid: Option<i32>,
    /// Where this capture is.
    #[serde(default)]
    pub phase: Phase,
    /// Why it failed or is partial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The reason of a failure (`DeadlineExceeded`, `TargetNotLocated`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Samples taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<u32>,
    /// Headline numbers of the last sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<CaptureCounts>,
}

/// Headline numbers of a capture's last sample, as the capture pod reports them.
pub use procshot_api::Counts as CaptureCounts;

/// How serious a finding is, and its stable code, as the capture engine defines them.
pub use procshot_api::{FindingCode, Severity};

/// A finding about one target.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SessionFinding {
    /// The pod it is about.
    pub pod: String,
    /// `info`, `warning` or `critical`.
    pub severity: Severity,
    /// Stable code (`FD_GROWTH`, …).
    pub code: FindingCode,
    /// One sentence with the numbers.
    pub message: String,
}
