//! The DebugSession controller: a level-based, idempotent reconcile per session.
//!
//! 1. a finished session only waits for its `ttlSecondsAfterFinished`;
//! 2. a new session is validated ([`CapturePlan`]) and its targets resolved; the targets
//!    (with their deterministic capture pod names) are written to status *before* any pod
//!    is created, so a restarted operator resumes the same captures;
//! 3. each target's capture pod is created if absent (respecting the per-node cap) and
//!    observed; its termination summary becomes the target's status and findings.

pub mod observe;
pub mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::api::{DebugSession, DebugSessionStatus, Phase, TargetStatus};
use crate::capture_pod::{self, COMPONENT_SELECTOR, SESSION_NAME_LABEL, SESSION_NAMESPACE_LABEL};
use crate::config::OperatorConfig;
use crate::metrics::Metrics;
use crate::plan::{CapturePlan, CaptureTarget, Refusal};

/// The finalizer that removes a session's capture pods (they live in another namespace,
/// so owner references cannot).
pub const FINALIZER: &str = "procshot.dev/capture-pods";
/// The field manager of status patches.
pub const FIELD_MANAGER: &str = "procshot-operator";
/// How often an unfinished session is looked at even without events.
pub const POLL: Duration = Duration::from_secs(10);
/// How long a session waits for a free capture slot on its node before trying again.
pub const NODE_BUSY_RETRY: Duration = Duration::from_secs(15);

/// What every reconcile shares.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Settings and policy.
    pub config: OperatorConfig,
    /// Publishes Events on sessions.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Consecutive failures per session, for the error back-off.
    pub failures: Mutex<HashMap<ObjectRef<DebugSession>, u32>>,
}

/// Why a reconcile failed (it is retried with back-off).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API call failed while {action}: {source}")]
    Kube {
        /// What the operator was doing.
        action: &'static str,
        /// The error.
        #[source]
        source: kube::Error,
    },
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
    /// The object has no namespace (DebugSession is namespaced, so this is a bug).
    #[error("DebugSession has no namespace")]
    MissingNamespace,
}

impl Error {
    /// The `error` label of `procshot_reconcile_errors_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube { .. } => "kube_api",
            Self::Finalizer(_) => "finalizer",
            Self::MissingNamespace => "missing_namespace",
        }
    }
}

fn kube_err(action: &'static str) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Kube { action, source }
}

/// Reconciles one session.
pub async fn reconcile(session: Arc<DebugSession>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics.reconciliations.inc();
    let namespace = session.namespace().ok_or(Error::MissingNamespace)?;
    let sessions: Api<DebugSession> = Api::namespaced(ctx.client.clone(), &namespace);
    let action = finalizer(&sessions, FINALIZER, session, |event| async {
        match event {
            finalizer::Event::Apply(session) => apply(&session, &ctx).await,
            finalizer::Event::Cleanup(session) => cleanup(&session, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))?;
    Ok(action)
}

/// Backs off exponentially per session: 5 s, 10 s, 20 s … up to 5 min.
pub fn error_policy(session: Arc<DebugSession>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(session = %session.name_any(), %error, "reconcile failed");
    ctx.metrics
        .reconcile_errors
        .get_or_create(&crate::metrics::ErrorLabels {
            error: error.metric_label().into(),
        })
        .inc();
    let mut failures = ctx.failures.lock().expect("failure map lock");
    let count = failures.entry(ObjectRef::from_obj(&*session)).or_insert(0);
    *count += 1;
    Action::requeue(backoff(*count))
}

/// The delay before retry number `attempt` (1-based).
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(5u64.saturating_mul(1 << attempt.saturating_sub(1).min(6)))
        .min(Duration::from_secs(300))
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

async fn apply(session: &DebugSession, ctx: &Context) -> Result<Action, Error> {
    ctx.failures
        .lock()
        .expect("failure map lock")
        .remove(&ObjectRef::from_obj(session));
    let old = session.status.clone().unwrap_or_default();
    if old.phase.is_finished() {
        return finished(session, &old, ctx).await;
    }
    let mut status = old.clone();
    let now = now();
    let generation = session.metadata.generation;

    let plan = match CapturePlan::from_session(session, &ctx.config) {
        Ok(plan) => plan,
        Err(refusal) => return refuse(session, &old, status, refusal, ctx).await,
    };
    if status.targets.is_empty() {
        match resolve_targets(session, ctx).await? {
            Ok(targets) => {
                let names: Vec<&str> = targets.iter().map(|t| t.pod.as_str()).collect();
                let message = format!(
                    "capturing {} on node(s) {}",
                    names.join(", "),
                    node_list(&targets)
                );
                status.targets = targets;
                status.phase = Phase::Pending;
                status.observed_generation = generation;
                status::set_ready(&mut status, false, "Pending", &message, generation, &now);
                patch_status(session, &status, ctx).await?;
                publish(ctx, session, EventType::Normal, "TargetResolved", &message).await;
            }
            Err(refusal) => return refuse(session, &old, status, refusal, ctx).await,
        }
    }

    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.config.namespace);
    let mut waiting_for_node = None;
    for index in 0..status.targets.len() {
        let target = status.targets[index].clone();
        if target.phase.is_finished() {
            continue;
        }
        let existing = pods
            .get_opt(&target.capture_pod)
            .await
            .map_err(kube_err("reading a capture pod"))?;
        let observation = match existing {
            Some(pod) => observe::observe(&pod, &target.pod),
            None if target.phase == Phase::Capturing => observe::Observation::failed(
                "CapturePodDeleted",
                format!(
                    "capture pod {} disappeared while capturing (deleted or garbage-collected)",
                    target.capture_pod
                ),
            ),
            None => match create_capture_pod(session, &plan, &target, ctx, &pods).await? {
                Ok(true) => {
                    if status.started_at.is_none() {
                        status.started_at = Some(now.clone());
                    }
                    publish(
                        ctx,
                        session,
                        EventType::Normal,
                        "CapturePodCreated",
                        &format!(
                            "created capture pod {}/{} on node {}",
                            ctx.config.namespace, target.capture_pod, target.node
                        ),
                    )
                    .await;
                    continue;
                }
                Ok(false) => {
                    waiting_for_node = Some(target.node.clone());
                    continue;
                }
                Err(refusal) => observe::Observation::failed(refusal.reason, refusal.message),
            },
        };
        let reason = observation.reason;
        let (findings, artifacts) = observation.apply_to(&mut status.targets[index]);
        if status.targets[index].phase.is_finished() {
            status::set_findings(&mut status, &target.pod, findings);
            status
                .artifacts
                .retain(|a| !artifacts.iter().any(|new| new.url == a.url));
            status.artifacts.extend(artifacts);
            if let Some(reason) = reason {
                let message = status.targets[index].message.clone().unwrap_or_default();
                publish(
                    ctx,
                    session,
                    EventType::Warning,
                    reason,
                    &format!("{}: {message}", target.pod),
                )
                .await;
            }
        }
    }
    status::aggregate(&mut status, &now);
    status.observed_generation = generation;
    set_ready_from_targets(
        &mut status,
        waiting_for_node.as_deref(),
        generation,
        &now,
        &ctx.config,
    );
    if status != old {
        patch_status(session, &status, ctx).await?;
        if status.phase != old.phase && status.phase.is_finished() {
            on_finish(session, &status, ctx).await;
        }
    }
    if status.phase.is_finished() {
        return finished(session, &status, ctx).await;
    }
    Ok(Action::requeue(if waiting_for_node.is_some() {
        NODE_BUSY_RETRY
    } else {
        POLL
    }))
}

fn node_list(targets: &[TargetStatus]) -> String {
    let mut nodes: Vec<&str> = targets.iter().map(|t| t.node.as_str()).collect();
    nodes.dedup();
    nodes.join(", ")
}

fn set_ready_from_targets(
    status: &mut DebugSessionStatus,
    waiting_for_node: Option<&str>,
    generation: Option<i64>,
    now: &Time,
    config: &OperatorConfig,
) {
    let failed: Vec<&TargetStatus> = status
        .targets
        .iter()
        .filter(|t| t.phase == Phase::Failed)
        .collect();
    let (ready, reason, message) = match status.phase {
        Phase::Succeeded => {
            let partial: Vec<String> = status
                .targets
                .iter()
                .filter_map(|t| t.message.clone())
                .collect();
            let message = if partial.is_empty() {
                format!("{} finding(s)", status.findings.len())
            } else {
                partial.join("; ")
            };
            (true, "Succeeded".to_string(), message)
        }
        Phase::Failed => {
            let reason = failed.iter().find_map(|t| t.reason.clone());
            let message: Vec<String> = failed
                .iter()
                .map(|t| format!("{}: {}", t.pod, t.message.clone().unwrap_or_default()))
                .collect();
            (
                false,
                reason.unwrap_or_else(|| "CaptureFailed".into()),
                message.join("; "),
            )
        }
        _ => match waiting_for_node {
            Some(node) => (
                false,
                "WaitingForNode".into(),
                format!(
                    "node {node} already runs {} capture(s), the operator's limit",
                    config.max_captures_per_node
                ),
            ),
            None => (
                false,
                format!("{:?}", status.phase),
                "capture pods are starting or sampling".into(),
            ),
        },
    };
    status::set_ready(status, ready, &reason, &message, generation, now);
}

async fn refuse(
    session: &DebugSession,
    old: &DebugSessionStatus,
    mut status: DebugSessionStatus,
    refusal: Refusal,
    ctx: &Context,
) -> Result<Action, Error> {
    let now = now();
    status.phase = Phase::Failed;
    status.observed_generation = session.metadata.generation;
    status.finished_at = Some(now.clone());
    status::set_ready(
        &mut status,
        false,
        refusal.reason,
        &refusal.message,
        session.metadata.generation,
        &now,
    );
    if status != *old {
        patch_status(session, &status, ctx).await?;
        publish(
            ctx,
            session,
            EventType::Warning,
            refusal.reason,
            &refusal.message,
        )
        .await;
    }
    finished(session, &status, ctx).await
}

/// Resolves the session's target pods (in the session's own namespace only).
async fn resolve_targets(
    session: &DebugSession,
    ctx: &Context,
) -> Result<Result<Vec<TargetStatus>, Refusal>, Error> {
    let namespace = session.namespace().ok_or(Error::MissingNamespace)?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let target = &session.spec.target;
    let candidates = if let Some(name) = &target.pod {
        match pods
            .get_opt(name)
            .await
            .map_err(kube_err("reading the target pod"))?
        {
            Some(pod) => vec![pod],
            None => {
                return Ok(Err(Refusal::new(
                    "TargetNotFound",
                    format!(
                        "pod {name} not found in namespace {namespace}: check spec.target.pod (the target must be in the DebugSession's namespace)"
                    ),
                )));
            }
        }
    } else {
        let selector = target.selector.clone().unwrap_or_default();
        let query = label_query(&selector);
        let mut running: Vec<Pod> = pods
            .list(&ListParams::default().labels(&query))
            .await
            .map_err(kube_err("listing the target pods"))?
            .items
            .into_iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .collect();
        running.sort_by(|a, b| {
            a.metadata
                .creation_timestamp
                .cmp(&b.metadata.creation_timestamp)
                .then(a.name_any().cmp(&b.name_any()))
        });
        running.truncate(target.max_pods.unwrap_or(1) as usize);
        if running.is_empty() {
            return Ok(Err(Refusal::new(
                "TargetNotFound",
                format!(
                    "no Running pod in namespace {namespace} matches the selector {query:?}: check spec.target.selector"
                ),
            )));
        }
        running
    };
    let session_name = session.name_any();
    let mut targets = Vec::new();
    for pod in &candidates {
        match CaptureTarget::from_pod(pod, target.container.as_deref()) {
            Ok(t) => targets.push(TargetStatus {
                capture_pod: capture_pod::capture_pod_name(&namespace, &session_name, &t.pod),
                pod: t.pod,
                pod_uid: t.pod_uid,
                container: t.container,
                container_id: t.container_id,
                node: t.node,
                ..TargetStatus::default()
            }),
            Err(refusal) => return Ok(Err(refusal)),
        }
    }
    Ok(Ok(targets))
}

/// A label selector as a list query (`app=api,tier in (web,edge)`).
pub fn label_query(
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for expr in selector.match_expressions.iter().flatten() {
        let values = expr.values.clone().unwrap_or_default().join(",");
        parts.push(match expr.operator.as_str() {
            "In" => format!("{} in ({values})", expr.key),
            "NotIn" => format!("{} notin ({values})", expr.key),
            "Exists" => expr.key.clone(),
            _ => format!("!{}", expr.key),
        });
    }
    parts.join(",")
}

/// Creates a target's capture pod: `Ok(true)` created (or already there), `Ok(false)` the
/// node has no free capture slot, `Err` the API server refused it for good.
async fn create_capture_pod(
    session: &DebugSession,
    plan: &CapturePlan,
    target: &TargetStatus,
    ctx: &Context,
    pods: &Api<Pod>,
) -> Result<Result<bool, Refusal>, Error> {
    let busy = pods
        .list(
            &ListParams::default()
                .labels(COMPONENT_SELECTOR)
                .fields(&format!("spec.nodeName={}", target.node)),
        )
        .await
        .map_err(kube_err("counting capture pods on a node"))?
        .items
        .iter()
        .filter(|p| {
            matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Pending" | "Running") | None
            )
        })
        .count();
    if busy >= ctx.config.max_captures_per_node {
        return Ok(Ok(false));
    }
    let capture_target = CaptureTarget {
        pod: target.pod.clone(),
        namespace: session.namespace().unwrap_or_default(),
        pod_uid: target.pod_uid.clone(),
        node: target.node.clone(),
        container: target.container.clone(),
        container_id: target.container_id.clone(),
    };
    let pod = capture_pod::build(session, plan, &capture_target, &ctx.config);
    match pods.create(&PostParams::default(), &pod).await {
        Ok(_) => Ok(Ok(true)),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Ok(true)),
        Err(kube::Error::Api(status)) if status.code == 403 || status.code == 422 => {
            Ok(Err(Refusal::new(
                "CapturePodRejected",
                format!(
                    "the API server refused the capture pod in namespace {}: {} (if PodSecurity refused it, label that namespace pod-security.kubernetes.io/enforce=privileged)",
                    ctx.config.namespace, status.message
                ),
            )))
        }
        Err(e) => Err(kube_err("creating a capture pod")(e)),
    }
}

async fn finished(
    session: &DebugSession,
    status: &DebugSessionStatus,
    ctx: &Context,
) -> Result<Action, Error> {
    let (Some(ttl), Some(finished_at)) = (
        session.spec.ttl_seconds_after_finished,
        status.finished_at.as_ref(),
    ) else {
        return Ok(Action::await_change());
    };
    let due = finished_at.0 + k8s_openapi::jiff::SignedDuration::from_secs(ttl);
    let remaining = due.duration_since(k8s_openapi::jiff::Timestamp::now());
    if remaining.is_positive() {
        return Ok(Action::requeue(Duration::from_secs(
            remaining.as_secs().max(1) as u64,
        )));
    }
    let sessions: Api<DebugSession> =
        Api::namespaced(ctx.client.clone(), &session.namespace().unwrap_or_default());
    sessions
        .delete(&session.name_any(), &DeleteParams::default())
        .await
        .map_err(kube_err("deleting a session past its TTL"))?;
    Ok(Action::await_change())
}

async fn on_finish(session: &DebugSession, status: &DebugSessionStatus, ctx: &Context) {
    if let (Some(start), Some(end)) = (&status.started_at, &status.finished_at) {
        let seconds = end.0.duration_since(start.0).as_secs_f64();
        ctx.metrics.capture_duration.observe(seconds.max(0.0));
    }
    let (kind, reason) = if status.phase == Phase::Succeeded {
        (EventType::Normal, "Succeeded")
    } else {
        (EventType::Warning, "Failed")
    };
    let message = status
        .top_finding
        .clone()
        .unwrap_or_else(|| "no findings".into());
    publish(ctx, session, kind, reason, &message).await;
}

/// Deletes the session's capture pods; the finalizer is removed when this succeeds.
async fn cleanup(session: &DebugSession, ctx: &Context) -> Result<Action, Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.config.namespace);
    let selector = format!(
        "{SESSION_NAME_LABEL}={},{SESSION_NAMESPACE_LABEL}={}",
        session.name_any(),
        session.namespace().unwrap_or_default()
    );
    let list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(kube_err("listing capture pods to delete"))?;
    for pod in list.items {
        match pods
            .delete(&pod.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(kube_err("deleting a capture pod")(e)),
        }
    }
    Ok(Action::await_change())
}

async fn patch_status(
    session: &DebugSession,
    status: &DebugSessionStatus,
    ctx: &Context,
) -> Result<(), Error> {
    let sessions: Api<DebugSession> =
        Api::namespaced(ctx.client.clone(), &session.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": "procshot.dev/v1alpha1",
        "kind": "DebugSession",
        "status": status,
    });
    sessions
        .patch_status(
            &session.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(patch),
        )
        .await
        .map_err(kube_err("updating a session's status"))?;
    Ok(())
}

async fn publish(
    ctx: &Context,
    session: &DebugSession,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: "Capture".into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &session.object_ref(&())).await {
        tracing::warn!(%error, "could not publish an event");
    }
}
