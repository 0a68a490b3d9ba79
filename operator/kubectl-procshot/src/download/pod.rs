//! Reading a capture still held in its capture pod (after a failed upload the capture
//! container keeps its files until its deadline). The agent image has no shell and no
//! `tar`, so each file is fetched by running `procshot cat DIR NAME` in the capture
//! container over the API's exec subresource, its stdout streamed into the file.
//!
//! Where the files are is the operator's capture pod layout: the `capture` container
//! writes to `/work/capture`.

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{AttachParams, AttachedProcess};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::DownloadError;
use crate::error::{Error, Request};

/// The capture container of a capture pod.
pub const CAPTURE_CONTAINER: &str = "capture";
/// Where it writes the capture.
pub const CAPTURE_DIR: &str = "/work/capture";

/// The command that writes `name` of the capture to stdout.
pub fn cat_command(name: &str) -> Vec<String> {
    ["procshot", "cat", CAPTURE_DIR, name]
        .map(String::from)
        .to_vec()
}

/// The capture directory of one capture pod.
pub struct PodDir {
    pods: Api<Pod>,
    /// The capture pod.
    pub pod: String,
    namespace: String,
}

impl PodDir {
    /// The capture of `pod` in the capture namespace.
    pub fn new(pods: Api<Pod>, pod: &str, namespace: &str) -> Self {
        Self {
            pods,
            pod: pod.to_string(),
            namespace: namespace.to_string(),
        }
    }

    /// Where `name` is, for messages.
    pub fn url_of(&self, name: &str) -> String {
        format!("pod {}/{} ({CAPTURE_DIR}/{name})", self.namespace, self.pod)
    }

    /// Starts `procshot cat` for `name`.
    pub async fn open(&self, name: &str) -> Result<Cat, DownloadError> {
        let params = AttachParams::default()
            .container(CAPTURE_CONTAINER)
            .stdin(false)
            .stdout(true)
            .stderr(true);
        let mut process = self
            .pods
            .exec(&self.pod, cat_command(name), &params)
            .await
            .map_err(|e| DownloadError::Pod {
                pod: self.pod.clone(),
                detail: Error::from_kube(
                    e,
                    Request::new("create", "pods/exec", &self.namespace),
                    "",
                    "pod",
                )
                .to_string(),
            })?;
        let stdout = process.stdout().ok_or_else(|| self.broken("no stdout"))?;
        let stderr = process.stderr().ok_or_else(|| self.broken("no stderr"))?;
        Ok(Cat {
            stdout: Box::new(stdout),
            stderr: Box::new(stderr),
            process,
            pod: self.pod.clone(),
        })
    }

    fn broken(&self, what: &str) -> DownloadError {
        DownloadError::Pod {
            pod: self.pod.clone(),
            detail: format!("the exec stream has {what}"),
        }
    }
}

/// A running `procshot cat`: read [`Cat::stdout`], then [`Cat::finish`].
pub struct Cat {
    /// The file's bytes.
    pub stdout: Box<dyn AsyncRead + Unpin + Send>,
    stderr: Box<dyn AsyncRead + Unpin + Send>,
    process: AttachedProcess,
    pod: String,
}

impl Cat {
    /// Waits for the command to end; an error carries what it printed on stderr.
    pub async fn finish(mut self) -> Result<(), DownloadError> {
        let mut stderr = String::new();
        // At most a few lines; a hostile or broken pod cannot make this grow without end.
        let _ = (&mut self.stderr)
            .take(64 * 1024)
            .read_to_string(&mut stderr)
            .await;
        let status = match self.process.take_status() {
            Some(status) => status.await,
            None => None,
        };
        let _ = self.process.join().await;
        match status {
            Some(status) if status.status.as_deref() == Some("Success") => Ok(()),
            Some(status) => Err(DownloadError::Pod {
                pod: self.pod,
                detail: format!(
                    "procshot cat failed: {}{}",
                    crate::view::inert(stderr.trim()),
                    status
                        .message
                        .map(|m| format!(" ({})", crate::view::inert(&m)))
                        .unwrap_or_default()
                ),
            }),
            None => Err(DownloadError::Pod {
                pod: self.pod,
                detail: "the exec stream ended without an exit status".into(),
            }),
        }
    }
}
