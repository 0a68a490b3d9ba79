//! Sending the planned files: one PUT for a small file, a multipart upload with several
//! parts in flight for a large one, then a HEAD of every object to check that the store
//! holds all of its bytes.

use std::cell::Cell;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use crate::error::UploadError;
use crate::units;

use super::attempts::Attempts;
use super::classify::{self, Step};
use super::destination::Destination;
use super::plan::{Plan, PlannedFile};

/// Files up to this size go in one PUT; larger ones in parts of this size.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// Parts of one file uploaded at once (at most this many part buffers in memory).
const PARTS_IN_FLIGHT: usize = 8;

/// Where the files go and how to report on them.
pub struct Transfer<'a> {
    /// The store.
    pub store: &'a dyn ObjectStore,
    /// The requests it made.
    pub attempts: &'a Attempts,
    /// The destination, for messages.
    pub destination: &'a Destination,
    /// Files fully uploaded so far (read after a deadline cut the upload short).
    pub done: &'a Cell<usize>,
}

impl Transfer<'_> {
    /// Uploads every file of `plan` in order, then checks the size of every object.
    pub async fn send(
        &self,
        plan: &Plan,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(), UploadError> {
        for file in &plan.files {
            if file.bytes as usize > PART_SIZE {
                self.send_in_parts(file, progress).await?;
            } else {
                self.send_whole(file).await?;
            }
            self.done.set(self.done.get() + 1);
        }
        for file in &plan.files {
            let meta = self
                .store
                .head(&file.key)
                .await
                .map_err(|e| self.failure(&e, file, Step::Later))?;
            if meta.size != file.bytes {
                return Err(UploadError::Incomplete {
                    name: file.name.clone(),
                    url: file.url.clone(),
                    expected: file.bytes,
                    stored: meta.size,
                });
            }
        }
        Ok(())
    }

    async fn send_whole(&self, file: &PlannedFile) -> Result<(), UploadError> {
        let content = read_chunk(file, 0, file.bytes as usize).await?;
        self.store
            .put(&file.key, PutPayload::from(content))
            .await
            .map_err(|e| self.failure(&e, file, Step::Create))?;
        Ok(())
    }

    async fn send_in_parts(
        &self,
        file: &PlannedFile,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(), UploadError> {
        let parts = file.bytes.div_ceil(PART_SIZE as u64);
        progress(&format!(
            "uploading {} ({}) in {parts} parts",
            file.name,
            units::bytes(file.bytes)
        ));
        let started = Instant::now();
        let upload = self
            .store
            .put_multipart(&file.key)
            .await
            .map_err(|e| self.failure(&e, file, Step::Create))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut offset = 0;
        while offset < file.bytes {
            let len = (file.bytes - offset).min(PART_SIZE as u64) as usize;
            let next = read_chunk(file, offset, len);
            let (chunk, capacity) = tokio::join!(next, writer.wait_for_capacity(PARTS_IN_FLIGHT));
            if let Err(e) = capacity {
                return Err(self.abort(writer, &e, file).await);
            }
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e);
                }
            };
            writer.write(&chunk);
            offset += len as u64;
        }
        // Wait for every part here, so that a failed part is reported as itself (finish()
        // would report the failure of the abort instead).
        if let Err(e) = writer.wait_for_capacity(0).await {
            return Err(self.abort(writer, &e, file).await);
        }
        writer
            .finish()
            .await
            .map_err(|e| self.failure(&e, file, Step::Later))?;
        let seconds = started.elapsed().as_secs_f64();
        progress(&format!(
            "uploaded {} in {} ({}/s)",
            file.name,
            units::seconds(seconds),
            units::bytes((file.bytes as f64 / seconds.max(1e-3)) as u64)
        ));
        Ok(())
    }

    /// Gives up a multipart upload after `error`, removing its parts if the store still
    /// answers, and returns the error to report.
    async fn abort(
        &self,
        writer: WriteMultipart,
        error: &object_store::Error,
        file: &PlannedFile,
    ) -> UploadError {
        let reported = self.failure(error, file, Step::Later);
        // The store may be gone: do not let the cleanup eat the upload's deadline.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), writer.abort()).await;
        reported
    }

    fn failure(&self, error: &object_store::Error, file: &PlannedFile, step: Step) -> UploadError {
        classify::failure(
            error,
            self.destination,
            file,
            &self.attempts.snapshot(),
            step,
        )
    }
}

/// Reads `len` bytes at `offset` of the file, off the runtime's threads.
async fn read_chunk(file: &PlannedFile, offset: u64, len: usize) -> Result<Vec<u8>, UploadError> {
    let path = file.path.clone();
    let read = tokio::task::spawn_blocking(move || read_at(&path, offset, len));
    match read.await {
        Ok(result) => result.map_err(|source| UploadError::Read {
            path: file.path.clone(),
            source,
        }),
        Err(e) => Err(UploadError::Read {
            path: file.path.clone(),
            source: std::io::Error::other(e),
        }),
    }
}

fn read_at(path: &Path, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let file = File::open(path)?;
    let mut buf = vec![0; len];
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}
