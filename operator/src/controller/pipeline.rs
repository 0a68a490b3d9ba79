//! One reconcile of a live session, stage by stage: validate the spec, resolve and record
//! the targets once, then for each unfinished target dereference its capture pod, build
//! and apply it when absent or observe it when there, and fold everything into the status.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::apply::{self, CreateOutcome};
use super::observe::{self, FailureReason, Observation};
use super::{Context, Error, NODE_BUSY_RETRY, POLL, dereference, status};
use crate::api::{DebugSession, DebugSessionStatus, Phase, TargetStatus};
use crate::capture_pod;
use crate::plan::{self, CapturePlan, CaptureTarget, Refusal, TargetQuery};

/// The targets of a new session, or why it has none.
enum Resolution {
    Targets(Vec<CaptureTarget>),
    Refused(Refusal),
}

/// What one unfinished target did in this reconcile.
enum Step {
    /// Its capture pod was created.
    Created,
    /// Its node has no free capture slot.
    NodeBusy,
    /// Its capture pod was read (or found missing, or refused).
    Observed(Box<Observation>),
}

/// Reconciles a session that is not being deleted.
pub async fn reconcile(session: &DebugSession, ctx: &Context) -> Result<Action, Error> {
    ctx.forget_failures(session);
    let old = session.status.clone().unwrap_or_default();
    if old.phase.is_finished() {
        return expire(session, &old, ctx).await;
    }
    let plan = match CapturePlan::from_session(session, &ctx.config) {
        Ok(plan) => plan,
        Err(refusal) => return refuse(session, &old, refusal, ctx).await,
    };
    let mut status = old.clone();
    if status.targets.is_empty() {
        match resolve(session, ctx).await? {
            Resolution::Targets(targets) => record(session, &mut status, targets, ctx).await?,
            Resolution::Refused(refusal) => return refuse(session, &old, refusal, ctx).await,
        }
    }
    let waiting_for_node = follow(session, &plan, &mut status, ctx).await?;
    conclude(session, &old, status, waiting_for_node.as_deref(), ctx).await
}

/// Dereferences the session's target query and validates the pods found.
async fn resolve(session: &DebugSession, ctx: &Context) -> Result<Resolution, Error> {
    let namespace = session.namespace().ok_or(Error::MissingNamespace)?;
    let target = &session.spec.target;
    let query = match TargetQuery::from_spec(target) {
        Ok(query) => query,
        Err(refusal) => return Ok(Resolution::Refused(refusal)),
    };
    let pods = dereference::target_pods(ctx, &namespace, &query).await?;
    Ok(
        match plan::target::select(&query, pods, target, &namespace) {
            Ok(targets) => Resolution::Targets(targets),
            Err(refusal) => Resolution::Refused(refusal),
        },
    )
}

/// Writes the targets to the status before any capture pod exists.
async fn record(
    session: &DebugSession,
    status: &mut DebugSessionStatus,
    targets: Vec<CaptureTarget>,
    ctx: &Context,
) -> Result<(), Error> {
    let (namespace, name) = (session.namespace().unwrap_or_default(), session.name_any());
    status.targets = targets
        .into_iter()
        .map(|t| status::target_status(t, &namespace, &name))
        .collect();
    let message = status::targets_message(&status.targets);
    let generation = session.metadata.generation;
    status.phase = Phase::Pending;
    status.observed_generation = generation;
    status::set_ready(status, false, "Pending", &message, generation, &now());
    apply::patch_status(ctx, session, status).await?;
    apply::publish(ctx, session, EventType::Normal, "TargetResolved", &message).await;
    Ok(())
}

/// Takes every unfinished target one step; returns a node that had no free slot.
async fn follow(
    session: &DebugSession,
    plan: &CapturePlan,
    status: &mut DebugSessionStatus,
    ctx: &Context,
) -> Result<Option<String>, Error> {
    let mut waiting_for_node = None;
    for index in 0..status.targets.len() {
        let target = status.targets[index].clone();
        if target.phase.is_finished() {
            continue;
        }
        match step(session, plan, &target, ctx).await? {
            Step::Created => {
                status.started_at.get_or_insert_with(now);
                let message = format!(
                    "created capture pod {}/{} on node {}",
                    ctx.config.namespace, target.capture_pod, target.node
                );
                apply::publish(
                    ctx,
                    session,
                    EventType::Normal,
                    "CapturePodCreated",
                    &message,
                )
                .await;
            }
            Step::NodeBusy => waiting_for_node = Some(target.node.clone()),
            Step::Observed(observation) => {
                if let Some(reason) = fold(status, index, *observation) {
                    let message = status.targets[index].message.clone().unwrap_or_default();
                    let note = format!("{}: {message}", target.pod);
                    apply::publish(ctx, session, EventType::Warning, reason.as_str(), &note).await;
                }
            }
        }
    }
    Ok(waiting_for_node)
}

/// One target: observe its capture pod, or build and create it when absent.
async fn step(
    session: &DebugSession,
    plan: &CapturePlan,
    target: &TargetStatus,
    ctx: &Context,
) -> Result<Step, Error> {
    if let Some(pod) = dereference::capture_pod(ctx, &target.capture_pod).await? {
        return Ok(Step::Observed(Box::new(observe::observe(
            &pod,
            &target.pod,
        ))));
    }
    if target.phase == Phase::Capturing {
        return Ok(Step::Observed(Box::new(Observation::failed(
            FailureReason::CapturePodDeleted,
            format!(
                "capture pod {} disappeared while capturing (deleted or garbage-collected)",
                target.capture_pod
            ),
        ))));
    }
    let load = dereference::node_load(ctx, &target.node).await?;
    let namespace = session.namespace().unwrap_or_default();
    let pod = capture_pod::build(
        session,
        plan,
        &status::capture_target(target, &namespace),
        &ctx.config,
    );
    Ok(match apply::create_capture_pod(ctx, &pod, &load).await? {
        CreateOutcome::Created => Step::Created,
        CreateOutcome::NodeBusy => Step::NodeBusy,
        CreateOutcome::Refused(refusal) => Step::Observed(Box::new(Observation::failed(
            FailureReason::Refused(refusal.reason),
            refusal.message,
        ))),
    })
}

/// Writes an observation into target `index`; when that finishes the target, its
/// findings and artifacts join the session's, and the reason of a failure is returned.
fn fold(
    status: &mut DebugSessionStatus,
    index: usize,
    observation: Observation,
) -> Option<FailureReason> {
    let reason = observation.reason;
    let (findings, artifacts) = observation.apply_to(&mut status.targets[index]);
    if !status.targets[index].phase.is_finished() {
        return None;
    }
    let pod = status.targets[index].pod.clone();
    status::set_findings(status, &pod, findings);
    status
        .artifacts
        .retain(|a| !artifacts.iter().any(|new| new.url == a.url));
    status.artifacts.extend(artifacts);
    reason
}

/// Derives the session's phase and `Ready` condition, writes the status if it changed,
/// and says when to look again.
async fn conclude(
    session: &DebugSession,
    old: &DebugSessionStatus,
    mut status: DebugSessionStatus,
    waiting_for_node: Option<&str>,
    ctx: &Context,
) -> Result<Action, Error> {
    let now = now();
    let generation = session.metadata.generation;
    status::aggregate(&mut status, &now);
    status.observed_generation = generation;
    status::set_ready_from_targets(
        &mut status,
        waiting_for_node,
        ctx.config.max_captures_per_node,
        generation,
        &now,
    );
    if status != *old {
        apply::patch_status(ctx, session, &status).await?;
        if status.phase != old.phase && status.phase.is_finished() {
            on_finish(session, &status, ctx).await;
        }
    }
    if status.phase.is_finished() {
        return expire(session, &status, ctx).await;
    }
    Ok(Action::requeue(if waiting_for_node.is_some() {
        NODE_BUSY_RETRY
    } else {
        POLL
    }))
}

/// Ends the session `Failed` with the refusal's reason and message.
async fn refuse(
    session: &DebugSession,
    old: &DebugSessionStatus,
    refusal: Refusal,
    ctx: &Context,
) -> Result<Action, Error> {
    let now = now();
    let generation = session.metadata.generation;
    let mut status = old.clone();
    status.phase = Phase::Failed;
    status.observed_generation = generation;
    status.finished_at = Some(now.clone());
    let reason = refusal.reason.as_str();
    status::set_ready(
        &mut status,
        false,
        reason,
        &refusal.message,
        generation,
        &now,
    );
    if status != *old {
        apply::patch_status(ctx, session, &status).await?;
        apply::publish(ctx, session, EventType::Warning, reason, &refusal.message).await;
    }
    expire(session, &status, ctx).await
}

/// The metrics and the Event of a session that just finished.
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
    apply::publish(ctx, session, kind, reason, &message).await;
}

/// A finished session: deleted once its `ttlSecondsAfterFinished` has passed, else looked
/// at again then (or never, without a TTL).
async fn expire(
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
    let due = finished_at.0 + SignedDuration::from_secs(ttl);
    let remaining = due.duration_since(Timestamp::now());
    if remaining.is_positive() {
        return Ok(Action::requeue(Duration::from_secs(
            remaining.as_secs().max(1) as u64,
        )));
    }
    apply::delete_session(ctx, session).await?;
    Ok(Action::await_change())
}

fn now() -> Time {
    Time(Timestamp::now())
}
