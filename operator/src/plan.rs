//! Validation a schema cannot express, and target resolution, as pure functions: a
//! session and the target pod in, a [`CapturePlan`] and [`CaptureTarget`]s out, or an
//! error whose reason and message end the session `Failed`.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use crate::api::{CaptureKind, DebugSession};
use crate::config::OperatorConfig;

/// A failure that ends a session, with the condition reason and a message saying what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    /// CamelCase condition reason (`TargetNotFound`, `PolicyRefused`, …).
    pub reason: &'static str,
    /// What went wrong and what to do.
    pub message: String,
}

impl Refusal {
    /// A refusal with this reason and message.
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// What the capture container runs, from a validated spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturePlan {
    /// Samples to take.
    pub samples: u32,
    /// Time between samples.
    pub interval: Duration,
    /// The session's deadline (the capture pod's `activeDeadlineSeconds`).
    pub timeout: Duration,
    /// Captures, sorted.
    pub captures: Vec<CaptureKind>,
    /// Where the files are uploaded, if anywhere.
    pub output: Option<Destination>,
    /// `HOST:PORT` of the target's Go pprof endpoint (with the goroutines capture).
    pub go_pprof: Option<procshot_api::PprofAddress>,
    /// Limits of the core dump (with the core capture).
    pub core: Option<CoreLimits>,
}

/// The limits a core dump runs under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreLimits {
    /// The most memory the dump may hold; larger processes are refused by the capture.
    pub max_bytes: u64,
    /// The longest pause; default: the capture's own default.
    pub max_pause: Option<Duration>,
}

/// A validated output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// An S3 or S3-compatible bucket.
    S3 {
        /// `s3://bucket/prefix`.
        url: String,
        /// Endpoint of an S3-compatible server.
        endpoint: Option<String>,
        /// Region.
        region: Option<String>,
        /// The Secret with the credentials, in the capture namespace.
        secret: String,
    },
    /// A PersistentVolumeClaim in the capture namespace.
    Pvc {
        /// Claim name.
        claim: String,
        /// Directory inside the volume.
        path: Option<String>,
    },
}

/// Time the capture leaves itself, inside the pod deadline, to write its results.
pub const RESULT_MARGIN: Duration = Duration::from_secs(15);
/// The shortest and longest time given to an upload (a quarter of the timeout in between).
const UPLOAD_BUDGET: (Duration, Duration) = (Duration::from_secs(30), Duration::from_secs(300));

impl CapturePlan {
    /// Validates the spec against the rules the schema cannot express and the policy.
    pub fn from_session(session: &DebugSession, config: &OperatorConfig) -> Result<Self, Refusal> {
        let spec = &session.spec;
        let duration = |field: &str, text: &str| {
            humantime::parse_duration(text).map_err(|e| {
                Refusal::new(
                    "InvalidSpec",
                    format!(
                        "spec.{field} {text:?} is not a duration ({e}): write it like 10s or 1m"
                    ),
                )
            })
        };
        let interval = match &spec.interval {
            Some(text) => duration("interval", text)?,
            None => Duration::ZERO,
        };
        let timeout = duration("timeout", &spec.timeout)?;
        let output = destination(session, config)?;
        let upload = upload_budget(output.is_some(), timeout);
        let sampling = interval * spec.samples.saturating_sub(1);
        if timeout < sampling + RESULT_MARGIN + upload + Duration::from_secs(5) {
            return Err(Refusal::new(
                "InvalidSpec",
                format!(
                    "spec.timeout {} is too short for {} samples {} apart: raise it to at least {}",
                    spec.timeout,
                    spec.samples,
                    spec.interval.as_deref().unwrap_or("0s"),
                    humantime::format_duration(
                        sampling + RESULT_MARGIN + upload + Duration::from_secs(20)
                    )
                ),
            ));
        }
        if timeout > config.max_timeout {
            return Err(Refusal::new(
                "PolicyRefused",
                format!(
                    "spec.timeout {} exceeds the operator's limit of {}",
                    spec.timeout,
                    humantime::format_duration(config.max_timeout)
                ),
            ));
        }
        let mut captures = spec.capture.clone();
        if spec.go_pprof.is_some() {
            captures.push(CaptureKind::Goroutines);
        }
        captures.sort();
        captures.dedup();
        let refused: Vec<&str> = captures
            .iter()
            .filter(|c| !config.allowed_captures.contains(c))
            .map(|c| c.name())
            .collect();
        if !refused.is_empty() {
            let allowed: Vec<&str> = config.allowed_captures.iter().map(|c| c.name()).collect();
            let (verb, pronoun) = if refused.len() == 1 {
                ("is", "it")
            } else {
                ("are", "them")
            };
            return Err(Refusal::new(
                "PolicyRefused",
                format!(
                    "capture {} {verb} not allowed by the operator's policy (allowed: {}); ask a cluster admin or remove {pronoun} from spec.capture",
                    refused.join(", "),
                    allowed.join(", ")
                ),
            ));
        }
        if captures.contains(&CaptureKind::Goroutines) && spec.go_pprof.is_none() {
            return Err(Refusal::new(
                "InvalidSpec",
                "capture goroutines needs spec.goPprof, the port of the pod's net/http/pprof endpoint (for example goPprof: {port: 6060})",
            ));
        }
        let core = if captures.contains(&CaptureKind::Core) {
            Some(core_limits(session, config)?)
        } else {
            None
        };
        Ok(Self {
            samples: spec.samples,
            interval,
            timeout,
            go_pprof: spec.go_pprof.as_ref().map(|p| p.address()),
            captures,
            output,
            core,
        })
    }

    /// The time the upload may take (zero without an output).
    pub fn upload_timeout(&self) -> Duration {
        upload_budget(self.output.is_some(), self.timeout)
    }

    /// `procshot capture --timeout`: the pod deadline minus the time to write the results.
    /// Sampling ends long before it (the spec leaves room for the upload, checked above);
    /// after a failed upload the capture holds its files until then, for `kubectl cp`.
    pub fn capture_timeout(&self) -> Duration {
        self.timeout.saturating_sub(RESULT_MARGIN)
    }
}

/// The core dump's limits: the session's, within the operator's.
fn core_limits(session: &DebugSession, config: &OperatorConfig) -> Result<CoreLimits, Refusal> {
    let spec = session.spec.core.clone().unwrap_or_default();
    let max_bytes = match &spec.max_bytes {
        Some(text) => parse_quantity(text).ok_or_else(|| {
            Refusal::new(
                "InvalidSpec",
                format!("spec.core.maxBytes {text:?} is not a size: write it like 512Mi or 2Gi"),
            )
        })?,
        None => config.core_max_bytes,
    };
    if max_bytes > config.core_max_bytes {
        return Err(Refusal::new(
            "PolicyRefused",
            format!(
                "spec.core.maxBytes {} exceeds the operator's limit of {} bytes; lower it or ask a cluster admin",
                spec.max_bytes.as_deref().unwrap_or_default(),
                config.core_max_bytes
            ),
        ));
    }
    let max_pause = spec
        .max_pause
        .as_deref()
        .map(|text| {
            humantime::parse_duration(text).map_err(|e| {
                Refusal::new(
                    "InvalidSpec",
                    format!("spec.core.maxPause {text:?} is not a duration ({e}): write it like 500ms or 2s"),
                )
            })
        })
        .transpose()?;
    Ok(CoreLimits {
        max_bytes,
        max_pause,
    })
}

/// A binary-suffixed Kubernetes quantity (`512Mi`, `2Gi`, or plain bytes) in bytes.
pub fn parse_quantity(text: &str) -> Option<u64> {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let shift = match &text[digits.len()..] {
        "" => 0,
        "Ki" => 10,
        "Mi" => 20,
        "Gi" => 30,
        "Ti" => 40,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

fn upload_budget(has_output: bool, timeout: Duration) -> Duration {
    if has_output {
        (timeout / 4).clamp(UPLOAD_BUDGET.0, UPLOAD_BUDGET.1)
    } else {
        Duration::ZERO
    }
}

/// The session's output, else the operator's default, checked against the policy.
fn destination(
    session: &DebugSession,
    config: &OperatorConfig,
) -> Result<Option<Destination>, Refusal> {
    let Some(output) = session
        .spec
        .output
        .as_ref()
        .or(config.default_output.as_ref())
    else {
        return Ok(None);
    };
    if let Some(s3) = &output.s3 {
        let secret = s3
            .secret_name
            .clone()
            .unwrap_or_else(|| config.output_secret.clone());
        if secret != config.output_secret && !config.allowed_output_secrets.contains(&secret) {
            return Err(Refusal::new(
                "PolicyRefused",
                format!(
                    "spec.output.s3.secretName {secret} is not a Secret the operator allows for uploads (allowed: {}); remove it to use the operator's credentials",
                    std::iter::once(config.output_secret.as_str())
                        .chain(config.allowed_output_secrets.iter().map(String::as_str))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let prefix = s3.prefix.as_deref().unwrap_or_default().trim_matches('/');
        let url = if prefix.is_empty() {
            format!("s3://{}", s3.bucket)
        } else {
            format!("s3://{}/{prefix}", s3.bucket)
        };
        return Ok(Some(Destination::S3 {
            url,
            endpoint: s3.endpoint.clone(),
            region: s3.region.clone(),
            secret,
        }));
    }
    if let Some(pvc) = &output.pvc {
        return Ok(Some(Destination::Pvc {
            claim: pvc.claim_name.clone(),
            path: pvc.path.clone(),
        }));
    }
    Ok(None)
}

/// One container to capture, as found in its pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureTarget {
    /// Pod name.
    pub pod: String,
    /// Pod namespace (the session's).
    pub namespace: String,
    /// Pod UID.
    pub pod_uid: String,
    /// Node.
    pub node: String,
    /// Container name.
    pub container: String,
    /// Container ID with its runtime prefix (`containerd://…`).
    pub container_id: String,
}

/// Marks a mirror pod (the API's view of a static pod).
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// A static pod's config hash, which names its cgroup.
pub const CONFIG_HASH_ANNOTATION: &str = "kubernetes.io/config.hash";

/// The annotation `kubectl` uses to pick a pod's default container.
pub const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

impl CaptureTarget {
    /// Resolves the container to capture in `pod`: the named one, else the pod's default
    /// container. The pod must be Running and the container running.
    pub fn from_pod(pod: &Pod, container: Option<&str>) -> Result<Self, Refusal> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let spec = pod
            .spec
            .as_ref()
            .ok_or_else(|| Refusal::new("TargetNotRunning", format!("pod {name} has no spec")))?;
        let status = pod.status.clone().unwrap_or_default();
        let phase = status.phase.clone().unwrap_or_else(|| "Unknown".into());
        if phase != "Running" {
            return Err(Refusal::new(
                "TargetNotRunning",
                format!("pod {name} is {phase}, not Running: only a running pod can be captured"),
            ));
        }
        let default = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DEFAULT_CONTAINER_ANNOTATION))
            .cloned()
            .or_else(|| spec.containers.first().map(|c| c.name.clone()));
        let container = container
            .map(str::to_string)
            .or(default)
            .unwrap_or_default();
        if !spec.containers.iter().any(|c| c.name == container) {
            let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
            return Err(Refusal::new(
                "ContainerNotFound",
                format!(
                    "pod {name} has no container {container:?} (its containers: {}): fix spec.target.container",
                    names.join(", ")
                ),
            ));
        }
        let container_status = status
            .container_statuses
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.name == container);
        let running = container_status
            .as_ref()
            .is_some_and(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()));
        let container_id = container_status
            .and_then(|c| c.container_id)
            .unwrap_or_default();
        if !running || container_id.is_empty() {
            return Err(Refusal::new(
                "ContainerNotRunning",
                format!(
                    "container {container} of pod {name} is not running (restarting or not started): try again when it runs"
                ),
            ));
        }
        // A static pod's cgroup is named after its config hash, not its mirror pod's UID.
        let annotations = pod.metadata.annotations.clone().unwrap_or_default();
        let pod_uid = match annotations
            .get(MIRROR_ANNOTATION)
            .and(annotations.get(CONFIG_HASH_ANNOTATION))
        {
            Some(hash) => hash.clone(),
            None => pod.metadata.uid.clone().unwrap_or_default(),
        };
        Ok(Self {
            pod_uid,
            node: spec.node_name.clone().unwrap_or_default(),
            pod: name,
            namespace,
            container,
            container_id,
        })
    }
}
