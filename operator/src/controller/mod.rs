//! The DebugSession controller: a level-based, idempotent reconcile per session, as a
//! pipeline of stages, each in its own module:
//!
//! 1. **dereference** ([`dereference`]): read what the session points to: its target
//!    pods, the capture pods already there, how busy their nodes are;
//! 2. **validate** ([`crate::plan`]): the rules the schema cannot express and the policy,
//!    pure: a [`CapturePlan`](crate::plan::CapturePlan) and the targets, or a
//!    [`Refusal`](crate::plan::Refusal) that ends the session `Failed`;
//! 3. **build** ([`crate::capture_pod`]): the capture pod of each target, pure;
//! 4. **apply** ([`apply`]): create it ([`CreateOutcome`]: created, node busy, refused),
//!    patch the status, delete what is done, publish Events;
//! 5. **status** ([`observe`], [`status`]): what capture pods report, folded into the
//!    session's status, pure.
//!
//! [`pipeline`] runs the stages for a live session: a finished session only waits for its
//! `ttlSecondsAfterFinished`; a new one has its targets (with their deterministic capture
//! pod names) written to status *before* any pod is created, so a restarted operator
//! resumes the same captures; then each target's capture pod is created if absent and
//! observed. A finalizer deletes the capture pods when the session goes (they live in
//! another namespace, so owner references cannot).

pub mod apply;
pub mod context;
pub mod dereference;
pub mod error;
pub mod observe;
pub mod pipeline;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{self, finalizer};

use crate::api::DebugSession;

pub use apply::CreateOutcome;
pub use context::Context;
pub use error::Error;

/// The finalizer that removes a session's capture pods (they live in another namespace,
/// so owner references cannot).
pub const FINALIZER: &str = "procshot.dev/capture-pods";
/// The field manager of status patches.
pub const FIELD_MANAGER: &str = context::CONTROLLER_NAME;
/// How often an unfinished session is looked at even without events.
pub const POLL: Duration = Duration::from_secs(10);
/// How long a session waits for a free capture slot on its node before trying again.
pub const NODE_BUSY_RETRY: Duration = Duration::from_secs(15);

/// Reconciles one session; an error is also published as a Warning Event on it.
pub async fn reconcile(session: Arc<DebugSession>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics.reconciliations.inc();
    let result = with_finalizer(session.clone(), &ctx).await;
    if let Err(error) = &result {
        apply::publish(
            &ctx,
            &session,
            EventType::Warning,
            error.event_reason(),
            &error.to_string(),
        )
        .await;
    }
    result
}

async fn with_finalizer(session: Arc<DebugSession>, ctx: &Context) -> Result<Action, Error> {
    let namespace = session.namespace().ok_or(Error::MissingNamespace)?;
    finalizer(
        &ctx.sessions(&namespace),
        FINALIZER,
        session,
        |event| async {
            match event {
                finalizer::Event::Apply(session) => pipeline::reconcile(&session, ctx).await,
                finalizer::Event::Cleanup(session) => cleanup(&session, ctx).await,
            }
        },
    )
    .await
    .map_err(Error::from_finalizer)
}

/// Deletes the session's capture pods; the finalizer is removed when this succeeds.
async fn cleanup(session: &DebugSession, ctx: &Context) -> Result<Action, Error> {
    let names = dereference::capture_pods_of(
        ctx,
        &session.namespace().unwrap_or_default(),
        &session.name_any(),
    )
    .await?;
    apply::delete_capture_pods(ctx, &names).await?;
    Ok(Action::await_change())
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
    Action::requeue(backoff(ctx.count_failure(&session)))
}

/// The delay before retry number `attempt` (1-based).
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(5u64.saturating_mul(1 << attempt.saturating_sub(1).min(6)))
        .min(Duration::from_secs(300))
}
