//! The apply stage: every write the controller makes. Creating a capture pod (whose
//! outcome is a [`CreateOutcome`], not an error, when the node is busy or the API server
//! refuses the pod for good), the status patch (server-side apply), deleting capture pods
//! and expired sessions, and Events.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::dereference::NodeLoad;
use super::error::{Error, kube_err};
use super::{Context, FIELD_MANAGER};
use crate::api::{DebugSession, DebugSessionStatus};
use crate::plan::{Refusal, RefusalReason};

/// Longest Event note (the API server refuses notes over 1 kB).
const EVENT_NOTE_CHARS: usize = 1000;

/// What became of a capture pod the controller meant to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// It exists now (created, or created meanwhile by another reconcile).
    Created,
    /// Its node already runs as many captures as the policy allows: not created, tried
    /// again later.
    NodeBusy,
    /// The API server refused it for good (PodSecurity, an admission webhook, an invalid
    /// object): the target fails with this.
    Refused(Refusal),
}

/// Creates `pod` unless its node is full (`load`, against the policy's limit).
pub async fn create_capture_pod(
    ctx: &Context,
    pod: &Pod,
    load: &NodeLoad,
) -> Result<CreateOutcome, Error> {
    if load.is_full(ctx.config.max_captures_per_node) {
        return Ok(CreateOutcome::NodeBusy);
    }
    match ctx.capture_pods().create(&PostParams::default(), pod).await {
        Ok(_) => Ok(CreateOutcome::Created),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(CreateOutcome::Created),
        Err(kube::Error::Api(status)) if status.code == 403 || status.code == 422 => {
            Ok(CreateOutcome::Refused(Refusal::new(
                RefusalReason::CapturePodRejected,
                format!(
                    "the API server refused the capture pod in namespace {}: {} (if PodSecurity refused it, label that namespace pod-security.kubernetes.io/enforce=privileged)",
                    ctx.config.namespace, status.message
                ),
            )))
        }
        Err(e) => Err(kube_err("creating a capture pod")(e)),
    }
}

/// Writes `status` as the session's whole status (server-side apply, forced: the
/// operator owns it).
pub async fn patch_status(
    ctx: &Context,
    session: &DebugSession,
    status: &DebugSessionStatus,
) -> Result<(), Error> {
    let patch = json!({
        "apiVersion": "procshot.dev/v1alpha1",
        "kind": "DebugSession",
        "status": status,
    });
    ctx.sessions(&session.namespace().unwrap_or_default())
        .patch_status(
            &session.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(patch),
        )
        .await
        .map_err(kube_err("updating a session's status"))?;
    Ok(())
}

/// Deletes a session past its `ttlSecondsAfterFinished` (its finalizer then removes its
/// capture pods).
pub async fn delete_session(ctx: &Context, session: &DebugSession) -> Result<(), Error> {
    ctx.sessions(&session.namespace().unwrap_or_default())
        .delete(&session.name_any(), &DeleteParams::default())
        .await
        .map_err(kube_err("deleting a session past its TTL"))?;
    Ok(())
}

/// Deletes capture pods; one already gone is not an error.
pub async fn delete_capture_pods(ctx: &Context, names: &[String]) -> Result<(), Error> {
    let pods = ctx.capture_pods();
    for name in names {
        match pods.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(kube_err("deleting a capture pod")(e)),
        }
    }
    Ok(())
}

/// Publishes an Event on the session; a failure is logged, never fatal.
pub async fn publish(
    ctx: &Context,
    session: &DebugSession,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(EVENT_NOTE_CHARS).collect()),
        action: "Capture".into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &session.object_ref(&())).await {
        tracing::warn!(%error, "could not publish an event");
    }
}
