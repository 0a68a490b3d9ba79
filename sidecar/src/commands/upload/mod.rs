//! Uploading a capture directory to object storage (S3 and S3-compatible servers, GCS,
//! Azure Blob Storage, or a local directory), so that the evidence outlives the capture pod.
//!
//! Every file the capture's `manifest.json` lists is checked against its size and sha256,
//! uploaded to `PREFIX/NAMESPACE/SESSION/TIMESTAMP/NAME` (the manifest's `startedAt` as
//! `%Y%m%dT%H%M%SZ`), `manifest.json` last, and then checked with a HEAD. Credentials come
//! from the environment only ([`store::open`]). Requests are retried with exponential
//! backoff where that can help (connection errors, 5xx), and the whole upload has one
//! deadline. The capture directory is only read.
//!
//! object_store is asynchronous: the upload runs on a small tokio runtime of its own, and
//! [`upload`] is synchronous like the rest of procshot.

pub mod attempts;
pub mod classify;
pub mod destination;
pub mod hold;
pub mod plan;
pub mod store;
pub mod transfer;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use procshot_api::Artifact;

use crate::error::UploadError;
use crate::units;

pub use destination::{Destination, Session, StoreKind};

/// `--upload-timeout`'s default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// What to upload, where to.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// The capture directory.
    pub dir: PathBuf,
    /// The `--to` URL.
    pub destination: Destination,
    /// `NAMESPACE/NAME`; default `local/<the directory's name>`.
    pub session: Option<Session>,
    /// The whole upload ends by this long after it starts, checks included.
    pub timeout: Duration,
}

/// Uploads the capture directory and returns every uploaded file, `manifest.json` last.
/// `progress` receives one human line per step (the CLI prints them on stderr).
pub fn upload(
    options: &UploadOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Artifact>, UploadError> {
    let started = Instant::now();
    refuse_writing_into(&options.dir, &options.destination)?;
    let plan = plan::plan(&options.dir, &options.destination, options.session.as_ref())?;
    let total = plan.files.len();
    let timed_out = |done: usize, log: &attempts::AttemptLog| {
        classify::deadline_passed(&options.destination, options.timeout, done, total, log)
    };
    let remaining = options.timeout.saturating_sub(started.elapsed());
    if remaining.is_zero() {
        return Err(timed_out(0, &attempts::AttemptLog::default()));
    }
    let store = store::open(&options.destination, remaining)?;
    progress(&format!(
        "uploading {total} files ({}) to {}/",
        units::bytes(plan.total_bytes()),
        plan.url
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("procshot-upload")
        .enable_all()
        .build()
        .map_err(|e| UploadError::Config {
            url: options.destination.url.clone(),
            detail: format!("cannot start the upload's threads: {e}"),
        })?;
    let done = Cell::new(0);
    let transfer = transfer::Transfer {
        store: store.store.as_ref(),
        attempts: &store.attempts,
        destination: &options.destination,
        done: &done,
    };
    let sent = runtime
        .block_on(async { tokio::time::timeout(remaining, transfer.send(&plan, progress)).await });
    match sent {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_elapsed) => return Err(timed_out(done.get(), &store.attempts.snapshot())),
    }
    progress(&format!(
        "uploaded {total} files ({}) in {}",
        units::bytes(plan.total_bytes()),
        units::seconds(started.elapsed().as_secs_f64())
    ));
    Ok(plan
        .files
        .into_iter()
        .map(|file| Artifact {
            name: file.name,
            url: file.url,
            bytes: file.bytes,
            sha256: file.sha256,
        })
        .collect())
}

/// Refuses a `file://` destination inside the capture directory: an upload never changes
/// the capture.
fn refuse_writing_into(dir: &Path, destination: &Destination) -> Result<(), UploadError> {
    if destination.kind != StoreKind::Local {
        return Ok(());
    }
    let target = Path::new("/").join(destination.prefix.as_ref());
    let inside = std::fs::canonicalize(dir).is_ok_and(|dir| target.starts_with(dir));
    if inside {
        return Err(UploadError::Config {
            url: destination.url.clone(),
            detail: format!(
                "it is inside the capture directory {}: choose a directory outside it",
                dir.display()
            ),
        });
    }
    Ok(())
}
