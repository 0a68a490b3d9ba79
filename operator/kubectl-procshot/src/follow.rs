//! Following a session until it finishes: its status is read every [`POLL`] and handed to
//! a [`Progress`] display, until the phase is final or the deadline passes. Polling one
//! object by name keeps the requests simple and equally cheap (the operator itself
//! updates a session's status on its own 10 s poll while a capture runs).

use std::time::Duration;

use procshot_operator::api::DebugSession;
use tokio::time::Instant;

use crate::error::Error;
use crate::sessions::Sessions;
use crate::view::progress::Progress;

/// How often the session is read.
pub const POLL: Duration = Duration::from_secs(1);
/// How long after the capture pod's deadline (`spec.timeout`) the operator is waited for.
pub const GRACE: Duration = Duration::from_secs(60);
/// How long a session may go without any status before the operator is suspected.
const NO_OPERATOR_AFTER: Duration = Duration::from_secs(20);

/// How following ended.
#[derive(Debug)]
pub enum Ended {
    /// The session finished (Succeeded or Failed).
    Finished(Box<DebugSession>),
    /// The deadline passed first; the session as last seen.
    TimedOut(Box<DebugSession>, Duration),
}

/// Follows `name` until it finishes or `bound` passes.
pub async fn follow(
    sessions: &Sessions,
    name: &str,
    bound: Duration,
    progress: &mut dyn Progress,
) -> Result<Ended, Error> {
    let started = Instant::now();
    let mut warned = false;
    loop {
        let session = sessions.get_opt(name).await?.ok_or_else(|| {
            Error::Target(format!(
                "debugsession {name} was deleted while it was followed"
            ))
        })?;
        let elapsed = started.elapsed();
        progress.show(&session, elapsed);
        let phase = session.status.as_ref().map(|s| s.phase);
        if phase.is_some_and(|p| p.is_finished()) {
            return Ok(Ended::Finished(Box::new(session)));
        }
        if !warned && session.status.is_none() && elapsed >= NO_OPERATOR_AFTER {
            warned = true;
            progress.note(&format!(
                "no operator has picked up {name} after {}s: is procshot-operator running? \
                 (kubectl get pods -n procshot-system)",
                elapsed.as_secs()
            ));
        }
        if elapsed >= bound {
            return Ok(Ended::TimedOut(Box::new(session), elapsed));
        }
        tokio::time::sleep(POLL.min(bound - elapsed)).await;
    }
}
