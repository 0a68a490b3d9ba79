//! `capture --hold-on-upload-failure`: after a failed upload, keep the process (and so a
//! capture pod and its files) alive until it is told to stop or its deadline comes, so that
//! the files can still be copied out with `kubectl cp`.

use std::fmt;
use std::time::Instant;

use tokio::signal::unix::{SignalKind, signal};

/// Why holding ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldEnd {
    /// SIGTERM or SIGINT arrived (its name).
    Signal(&'static str),
    /// The deadline passed.
    Deadline,
}

impl fmt::Display for HoldEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Signal(name) => write!(f, "{name} received"),
            Self::Deadline => f.write_str("the capture's deadline passed"),
        }
    }
}

/// Waits until SIGTERM or SIGINT arrives or `until` passes, whichever comes first.
pub fn hold(until: Instant) -> std::io::Result<HoldEnd> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(tokio::select! {
            _ = terminate.recv() => HoldEnd::Signal("SIGTERM"),
            _ = interrupt.recv() => HoldEnd::Signal("SIGINT"),
            () = tokio::time::sleep_until(until.into()) => HoldEnd::Deadline,
        })
    })
}
