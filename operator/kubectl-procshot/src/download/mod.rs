//! Downloading a session's captures: each uploaded capture from its object store (found
//! through the `manifest.json` URLs in the session's status), or a capture still held in
//! its capture pod. Every capture's manifest is read first (and checked against the
//! sha256 the status lists for it), then every file it lists, each checked against the
//! manifest's size and sha256 ([`save`]); the manifest is written last, so a directory
//! with a manifest is a complete capture.
//!
//! One capture lands in DIR itself; several in DIR/POD (DIR/TIMESTAMP for one whose pod
//! cannot be told).

pub mod manifest;
pub mod pod;
pub mod save;
pub mod store;

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use procshot_operator::api::Artifact;
use procshot_operator::api::{DebugSession, Phase};

use manifest::{MANIFEST, MAX_MANIFEST_BYTES, Manifest};
use pod::PodDir;
use save::Expected;
use store::StoreDir;
use tokio::io::AsyncReadExt;

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The session has no files to download.
    #[error("nothing to download from {session}: {why}")]
    Nothing {
        /// `namespace/name`.
        session: String,
        /// Why, and what to do.
        why: String,
    },
    /// The object store could not be read.
    #[error("cannot read {url}: {detail}")]
    Store {
        /// What was read.
        url: String,
        /// Why.
        detail: String,
    },
    /// A capture pod could not be read.
    #[error("cannot read the capture held in pod {pod}: {detail}")]
    Pod {
        /// The capture pod.
        pod: String,
        /// Why.
        detail: String,
    },
    /// A file broke off midway.
    #[error("downloading {name} from {origin} failed: {detail}")]
    Transfer {
        /// The file.
        name: String,
        /// Where from.
        origin: String,
        /// Why.
        detail: String,
    },
    /// A file is not what the manifest says: refused.
    #[error(
        "refused {name} from {origin}: {detail}; the file was not kept (the object is \
         corrupt or was replaced: download again, or compare with the capture pod's copy)"
    )]
    Mismatch {
        /// The file.
        name: String,
        /// Where from.
        origin: String,
        /// How it differs.
        detail: String,
    },
    /// The manifest is unusable.
    #[error("the manifest {origin} is unusable: {detail}")]
    BadManifest {
        /// Where it came from.
        origin: String,
        /// Why.
        detail: String,
    },
    /// Writing the download failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Where one capture is.
enum Origin {
    /// Uploaded: the directory in the store, and the manifest's sha256 from the status.
    Store(StoreDir, Option<String>),
    /// Held in its capture pod.
    Pod(Box<PodDir>),
}

/// One capture to download, and where it goes.
struct Capture {
    origin: Origin,
    /// The target pod, when known before the manifest is read.
    pod: Option<String>,
}

/// One downloaded capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Where it is.
    pub dir: PathBuf,
    /// Files written, the manifest included.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Where they came from.
    pub from: String,
}

/// Downloads every capture of `session` into `dir` (which must not exist or be empty).
/// `capture_pods` reads the capture namespace, for captures held in their pods.
pub async fn download(
    session: &DebugSession,
    dir: &Path,
    capture_pods: Api<Pod>,
    capture_namespace: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Downloaded>, crate::error::Error> {
    let captures = captures_of(session, capture_pods, capture_namespace)?;
    prepare(dir)?;
    let several = captures.len() > 1;
    let mut done = Vec::new();
    for (i, capture) in captures.iter().enumerate() {
        let (text, from) = match &capture.origin {
            Origin::Store(store, sha256) => {
                let text = store.read(MANIFEST, MAX_MANIFEST_BYTES).await?;
                if let Some(expected) = sha256 {
                    check_manifest(&text, expected, &store.url_of(MANIFEST))?;
                }
                (text, store.url.clone())
            }
            Origin::Pod(pod) => (read_from_pod(pod, MANIFEST).await?, pod.url_of("")),
        };
        let manifest = Manifest::parse(&text, &from)?;
        let pod = capture
            .pod
            .clone()
            .or_else(|| pod_of_pid(session, manifest.target.as_ref().map(|t| t.pid)));
        let target_dir = if several {
            dir.join(pod.unwrap_or_else(|| format!("capture-{}", i + 1)))
        } else {
            dir.to_path_buf()
        };
        std::fs::create_dir_all(&target_dir).map_err(|source| DownloadError::Write {
            path: target_dir.clone(),
            source,
        })?;
        let mut bytes = 0;
        for (n, file) in manifest.files.iter().enumerate() {
            progress(&format!(
                "downloading {} ({}/{}, {})",
                file.name,
                n + 1,
                manifest.files.len(),
                crate::view::bytes(file.bytes)
            ));
            let expected = Expected {
                name: file.name.clone(),
                bytes: Some(file.bytes),
                sha256: file.sha256.clone(),
            };
            bytes += match &capture.origin {
                Origin::Store(store, _) => {
                    let mut reader = store.open_file(&file.name).await?;
                    save::save(
                        &mut reader,
                        &target_dir,
                        &expected,
                        &store.url_of(&file.name),
                    )
                    .await?
                }
                Origin::Pod(pod) => {
                    let mut cat = pod.open(&file.name).await?;
                    let saved = save::save(
                        &mut cat.stdout,
                        &target_dir,
                        &expected,
                        &pod.url_of(&file.name),
                    )
                    .await;
                    let finished = cat.finish().await;
                    let saved = saved?;
                    finished?;
                    saved
                }
            };
        }
        let path = target_dir.join(MANIFEST);
        std::fs::write(&path, &text).map_err(|source| DownloadError::Write { path, source })?;
        done.push(Downloaded {
            dir: target_dir,
            files: manifest.files.len() + 1,
            bytes: bytes + text.len() as u64,
            from,
        });
    }
    Ok(done)
}

/// The captures of a session: the uploaded ones from the status's `manifest.json`
/// artifacts, and those still held by capture pods of targets that are capturing.
fn captures_of(
    session: &DebugSession,
    capture_pods: Api<Pod>,
    capture_namespace: &str,
) -> Result<Vec<Capture>, DownloadError> {
    let status = session.status.clone().unwrap_or_default();
    let s3 = session.spec.output.as_ref().and_then(|o| o.s3.as_ref());
    let mut captures = Vec::new();
    for manifest in status.artifacts.iter().filter(|a| a.name == MANIFEST) {
        let Some(url) = directory_of(manifest) else {
            continue;
        };
        captures.push(Capture {
            origin: Origin::Store(StoreDir::open(url, s3)?, Some(manifest.sha256.clone())),
            pod: None,
        });
    }
    let uploaded = !captures.is_empty();
    for target in &status.targets {
        if target.phase == Phase::Capturing && !target.capture_pod.is_empty() && !uploaded {
            captures.push(Capture {
                origin: Origin::Pod(Box::new(PodDir::new(
                    capture_pods.clone(),
                    &target.capture_pod,
                    capture_namespace,
                ))),
                pod: Some(target.pod.clone()),
            });
        }
    }
    if captures.is_empty() {
        return Err(DownloadError::Nothing {
            session: crate::view::qualified_name(session),
            why: nothing_why(session),
        });
    }
    Ok(captures)
}

/// Why a session has nothing to download, and what to do.
fn nothing_why(session: &DebugSession) -> String {
    let status = session.status.clone().unwrap_or_default();
    if !status.phase.is_finished() {
        return format!(
            "it is {} and no capture pod is capturing yet: its files are listed once it \
             finishes (kubectl procshot get {})",
            crate::view::phase_name(status.phase),
            session.metadata.name.as_deref().unwrap_or_default()
        );
    }
    if let Some(target) = status
        .targets
        .iter()
        .find(|t| t.reason.as_deref() == Some("UploadFailed"))
    {
        return format!(
            "the upload of {} failed ({}), and its capture pod is gone with the files: fix the \
             output and capture again",
            target.pod,
            target.message.as_deref().unwrap_or_default()
        );
    }
    if status.phase == Phase::Failed {
        return "the session failed before anything was captured (kubectl procshot describe shows why)".into();
    }
    "the session had no output, so its files stayed in the capture pod and went with it: \
     capture again with --output s3://BUCKET/PREFIX (or ask the admin for the operator's \
     --default-output)"
        .into()
}

/// The directory URL of an uploaded `manifest.json`.
fn directory_of(manifest: &Artifact) -> Option<&str> {
    manifest
        .url
        .strip_suffix(MANIFEST)
        .map(|dir| dir.trim_end_matches('/'))
        .filter(|dir| dir.contains("://"))
}

/// The target pod whose process had `pid`.
fn pod_of_pid(session: &DebugSession, pid: Option<i32>) -> Option<String> {
    let pid = pid?;
    let targets = &session.status.as_ref()?.targets;
    let mut matching = targets.iter().filter(|t| t.target_pid == Some(pid));
    match (matching.next(), matching.next()) {
        (Some(target), None) => Some(target.pod.clone()),
        _ => None,
    }
}

/// Checks the manifest against the sha256 the capture pod reported for it.
fn check_manifest(text: &[u8], expected: &str, url: &str) -> Result<(), DownloadError> {
    use sha2::{Digest, Sha256};
    let actual = hex::encode(Sha256::digest(text));
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(DownloadError::Mismatch {
            name: MANIFEST.into(),
            origin: url.to_string(),
            detail: format!("its sha256 is {actual}, the session's status says {expected}"),
        })
    }
}

async fn read_from_pod(pod: &PodDir, name: &str) -> Result<Vec<u8>, DownloadError> {
    let mut cat = pod.open(name).await?;
    let mut text = Vec::new();
    let read = (&mut cat.stdout)
        .take(MAX_MANIFEST_BYTES as u64 + 1)
        .read_to_end(&mut text)
        .await;
    cat.finish().await.map_err(|e| match e {
        DownloadError::Pod { pod, detail } => DownloadError::Pod {
            pod,
            detail: format!(
                "{detail}; the capture may still be sampling (its files are there once it is \
                 written, until the session's timeout)"
            ),
        },
        other => other,
    })?;
    read.map_err(|e| DownloadError::Transfer {
        name: name.to_string(),
        origin: pod.url_of(name),
        detail: e.to_string(),
    })?;
    if text.len() > MAX_MANIFEST_BYTES {
        return Err(DownloadError::BadManifest {
            origin: pod.url_of(name),
            detail: "it is larger than a manifest ever is".into(),
        });
    }
    Ok(text)
}

/// Creates `dir`, or checks that it is empty.
fn prepare(dir: &Path) -> Result<(), crate::error::Error> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(crate::error::Error::DirectoryNotEmpty {
                    dir: dir.to_path_buf(),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|source| {
                DownloadError::Write {
                    path: dir.to_path_buf(),
                    source,
                }
                .into()
            })
        }
        Err(source) => Err(DownloadError::Write {
            path: dir.to_path_buf(),
            source,
        }
        .into()),
    }
}
