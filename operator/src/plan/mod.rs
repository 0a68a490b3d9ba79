//! The validate stage: the rules a schema cannot express and the operator's policy, as
//! pure functions. A session in, a [`CapturePlan`] (what the capture container runs) out;
//! its target query and the pods the API server returned in, [`CaptureTarget`]s out; or a
//! [`Refusal`] whose reason and message end the session `Failed`.
//!
//! * [`refusal`]: the refusal and its reasons;
//! * [`output`]: where the files go ([`Destination`]), within the policy on Secrets;
//! * [`target`]: which pods and containers are captured.

pub mod output;
pub mod refusal;
pub mod target;

use std::time::Duration;

use procshot_api::size::parse_size;

use crate::api::{CaptureKind, CoreSpec, DebugSession, DebugSessionSpec};
use crate::config::OperatorConfig;

pub use output::Destination;
pub use refusal::{Refusal, RefusalReason};
pub use target::{
    CONFIG_HASH_ANNOTATION, CaptureTarget, DEFAULT_CONTAINER_ANNOTATION, MIRROR_ANNOTATION,
    TargetQuery,
};

/// What the capture container runs, from a validated spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturePlan {
    /// Samples to take.
    pub samples: u32,
    /// Time between samples.
    pub interval: Duration,
    /// The session's deadline (the capture pod's `activeDeadlineSeconds`).
    pub timeout: Duration,
    /// Captures, in [`CaptureKind`]'s order, each once.
    pub captures: Vec<CaptureKind>,
    /// Where the files are uploaded, if anywhere.
    pub output: Option<Destination>,
    /// `HOST:PORT` of the target's Go pprof endpoint, which the goroutines capture reads
    /// from; without it, goroutines are read from the program's memory.
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

/// Time the capture leaves itself, inside the pod deadline, to write its results.
pub const RESULT_MARGIN: Duration = Duration::from_secs(15);
/// The shortest and longest time given to an upload (a quarter of the timeout in between).
const UPLOAD_BUDGET: (Duration, Duration) = (Duration::from_secs(30), Duration::from_secs(300));
/// Slack the timeout must leave beyond sampling, results and upload; the message asks
/// for more ([`SUGGESTED_SLACK`]) so that a session fixed as told is not on the edge.
const MIN_SLACK: Duration = Duration::from_secs(5);
const SUGGESTED_SLACK: Duration = Duration::from_secs(20);

impl CapturePlan {
    /// Validates the spec against the rules the schema cannot express and the policy.
    pub fn from_session(session: &DebugSession, config: &OperatorConfig) -> Result<Self, Refusal> {
        let spec = &session.spec;
        let interval = match &spec.interval {
            Some(text) => duration("interval", text, "10s or 1m")?,
            None => Duration::ZERO,
        };
        let timeout = duration("timeout", &spec.timeout, "10s or 1m")?;
        let output = output::destination(session, config)?;
        check_timeout(spec, interval, timeout, output.is_some(), config)?;
        let captures = captures(spec, config)?;
        let core = if captures.contains(&CaptureKind::Core) {
            Some(core_limits(spec.core.as_ref(), config)?)
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

/// A duration field of the spec (`spec.interval`, `spec.core.maxPause`, …); `example`
/// says how to write one.
fn duration(field: &str, text: &str, example: &str) -> Result<Duration, Refusal> {
    humantime::parse_duration(text).map_err(|e| {
        Refusal::invalid_spec(format!(
            "spec.{field} {text:?} is not a duration ({e}): write it like {example}"
        ))
    })
}

/// The timeout must cover the sampling, the results and the upload, within the policy.
fn check_timeout(
    spec: &DebugSessionSpec,
    interval: Duration,
    timeout: Duration,
    has_output: bool,
    config: &OperatorConfig,
) -> Result<(), Refusal> {
    let needed = interval * spec.samples.saturating_sub(1)
        + RESULT_MARGIN
        + upload_budget(has_output, timeout);
    if timeout < needed + MIN_SLACK {
        return Err(Refusal::invalid_spec(format!(
            "spec.timeout {} is too short for {} samples {} apart: raise it to at least {}",
            spec.timeout,
            spec.samples,
            spec.interval.as_deref().unwrap_or("0s"),
            humantime::format_duration(needed + SUGGESTED_SLACK)
        )));
    }
    if timeout > config.max_timeout {
        return Err(Refusal::policy(format!(
            "spec.timeout {} exceeds the operator's limit of {}",
            spec.timeout,
            humantime::format_duration(config.max_timeout)
        )));
    }
    Ok(())
}

/// The captures asked for (`goPprof` adds goroutines), each once and in order, all
/// allowed by the policy.
fn captures(spec: &DebugSessionSpec, config: &OperatorConfig) -> Result<Vec<CaptureKind>, Refusal> {
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
        return Err(Refusal::policy(format!(
            "capture {} {verb} not allowed by the operator's policy (allowed: {}); ask a cluster admin or remove {pronoun} from spec.capture",
            refused.join(", "),
            allowed.join(", ")
        )));
    }
    Ok(captures)
}

/// The core dump's limits: the session's, within the operator's.
fn core_limits(spec: Option<&CoreSpec>, config: &OperatorConfig) -> Result<CoreLimits, Refusal> {
    let spec = spec.cloned().unwrap_or_default();
    let max_bytes = match &spec.max_bytes {
        Some(text) => parse_size(text).map_err(|_| {
            Refusal::invalid_spec(format!(
                "spec.core.maxBytes {text:?} is not a size: write it like 512Mi or 2Gi"
            ))
        })?,
        None => config.core_max_bytes,
    };
    if max_bytes > config.core_max_bytes {
        return Err(Refusal::policy(format!(
            "spec.core.maxBytes {} exceeds the operator's limit of {} bytes; lower it or ask a cluster admin",
            spec.max_bytes.as_deref().unwrap_or_default(),
            config.core_max_bytes
        )));
    }
    let max_pause = spec
        .max_pause
        .as_deref()
        .map(|text| duration("core.maxPause", text, "500ms or 2s"))
        .transpose()?;
    Ok(CoreLimits {
        max_bytes,
        max_pause,
    })
}

fn upload_budget(has_output: bool, timeout: Duration) -> Duration {
    if has_output {
        (timeout / 4).clamp(UPLOAD_BUDGET.0, UPLOAD_BUDGET.1)
    } else {
        Duration::ZERO
    }
}
