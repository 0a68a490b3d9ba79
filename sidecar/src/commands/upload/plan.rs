//! What an upload sends: every file the capture's `manifest.json` lists, checked against
//! its size and sha256, then `manifest.json` itself, each with its object key
//! `PREFIX/NAMESPACE/SESSION/TIMESTAMP/NAME`.

use std::path::{Path, PathBuf};

use aws_lc_rs::digest::{self, SHA256};
use object_store::path::{Path as ObjectPath, PathPart};

use crate::directory::MANIFEST_FILE;
use crate::error::UploadError;
use crate::files::FileEntry;

use super::destination::{Destination, Session};

/// One file to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    /// Its name in the capture directory.
    pub name: String,
    /// Its path on disk.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Its hex sha256.
    pub sha256: String,
    /// The object's key.
    pub key: ObjectPath,
    /// The object's URL.
    pub url: String,
}

/// Every file of one capture, in upload order (`manifest.json` last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The files.
    pub files: Vec<PlannedFile>,
    /// The URL of the directory they go to (`…/NAMESPACE/SESSION/TIMESTAMP`).
    pub url: String,
}

impl Plan {
    /// The bytes of every file together.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

/// What an upload reads of `manifest.json`: the same two fields in a capture's and in a
/// post-mortem's.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct UploadManifest {
    /// The directory's time, its TIMESTAMP in the object keys.
    started_at: chrono::DateTime<chrono::Utc>,
    /// The files to send.
    files: Vec<FileEntry>,
}

/// Reads `dir/manifest.json`, checks every file it lists against its size and sha256, and
/// lays the upload out under `destination` for `session` (default `local/<dir's name>`).
pub fn plan(
    dir: &Path,
    destination: &Destination,
    session: Option<&Session>,
) -> Result<Plan, UploadError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let bad = |detail: String| UploadError::BadCapture {
        path: manifest_path.clone(),
        detail,
    };
    let text = std::fs::read(&manifest_path).map_err(|e| bad(e.to_string()))?;
    let manifest: UploadManifest = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    let session = match session {
        Some(session) => session.clone(),
        None => Session::local(&directory_name(dir)),
    };
    let relative_dir = format!("{session}/{}", manifest.started_at.format("%Y%m%dT%H%M%SZ"));
    let mut files = Vec::with_capacity(manifest.files.len() + 1);
    for entry in &manifest.files {
        if entry.name == MANIFEST_FILE || !is_plain_name(&entry.name) {
            return Err(bad(format!(
                "it lists the file {:?}, which is not a plain file name of the directory",
                entry.name
            )));
        }
        if files.iter().any(|f: &PlannedFile| f.name == entry.name) {
            return Err(bad(format!("it lists {} twice", entry.name)));
        }
        let path = dir.join(&entry.name);
        let (bytes, sha256) = hash(&path)?;
        if bytes != entry.bytes {
            return Err(UploadError::Mismatch {
                path,
                detail: format!("{bytes} bytes, the manifest says {}", entry.bytes),
            });
        }
        if !sha256.eq_ignore_ascii_case(&entry.sha256) {
            return Err(UploadError::Mismatch {
                path,
                detail: format!("sha256 {sha256}, the manifest says {}", entry.sha256),
            });
        }
        files.push(planned(
            destination,
            &relative_dir,
            &entry.name,
            path,
            bytes,
            sha256,
        ));
    }
    let manifest_sha256 = hex::encode(digest::digest(&SHA256, &text));
    files.push(planned(
        destination,
        &relative_dir,
        MANIFEST_FILE,
        manifest_path,
        text.len() as u64,
        manifest_sha256,
    ));
    Ok(Plan {
        files,
        url: destination.object_url(&relative_dir),
    })
}

fn planned(
    destination: &Destination,
    relative_dir: &str,
    name: &str,
    path: PathBuf,
    bytes: u64,
    sha256: String,
) -> PlannedFile {
    let relative = format!("{relative_dir}/{name}");
    let key = relative
        .split('/')
        .fold(destination.prefix.clone(), |key, part| key.join(part));
    PlannedFile {
        name: name.to_string(),
        path,
        bytes,
        sha256,
        key,
        url: destination.object_url(&relative),
    }
}

/// Whether `name` is a file name that is its own object name: one path segment, not `.`
/// or `..`, with nothing object_store would percent-encode.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && PathPart::from(name).as_ref() == name
}

/// The capture directory's own name, for the default session.
fn directory_name(dir: &Path) -> String {
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    absolute
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Size and hex sha256 of a file.
fn hash(path: &Path) -> Result<(u64, String), UploadError> {
    crate::files::file_sha256(path).map_err(|source| UploadError::Read {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_only() {
        for name in ["fds.json", "report.html", "a-b_c.1"] {
            assert!(is_plain_name(name), "{name}");
        }
        for name in ["", ".", "..", "a/b", "a\\b", "x y%"] {
            assert!(!is_plain_name(name), "{name:?}");
        }
    }

    #[test]
    fn keys_are_prefix_session_timestamp_name() {
        let destination: Destination = "s3://bucket/team/captures".parse().unwrap();
        let file = planned(
            &destination,
            "shop/api/20260102T030405Z",
            "fds.json",
            PathBuf::from("/x/fds.json"),
            3,
            "ab".into(),
        );
        assert_eq!(
            file.key.as_ref(),
            "team/captures/shop/api/20260102T030405Z/fds.json"
        );
        assert_eq!(
            file.url,
            "s3://bucket/team/captures/shop/api/20260102T030405Z/fds.json"
        );
    }
}
