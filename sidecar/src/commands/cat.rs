//! `procshot cat DIR NAME`: one file of a capture directory, byte for byte, on stdout.
//!
//! The agent image has no shell and no `tar`, so neither `kubectl cp` nor `kubectl exec …
//! cat` can copy a capture out of a capture pod; this is what `kubectl procshot download`
//! runs over exec to fetch a capture held after a failed upload. It reads only plain file
//! names of the directory (no path separators, no `..`, no symlinks); checking the bytes
//! against the manifest's sha256 is the reader's job, since it has to do it on its side of
//! the connection anyway.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::exit_code;

/// Why a file could not be written out.
#[derive(Debug, thiserror::Error)]
pub enum CatError {
    /// The name is not one file of the directory.
    #[error(
        "{name:?} is not a file name of the capture directory: give a name as manifest.json \
         lists it (fds.json, report.html, …)"
    )]
    NotAPlainName {
        /// What was given.
        name: String,
    },
    /// The file could not be opened (missing, a symlink, not a regular file).
    #[error(
        "cannot read {path}: {detail} (list the capture's files with `procshot cat DIR manifest.json`)"
    )]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// Reading the file or writing the output failed midway.
    #[error("copying {path} to the output failed: {source}")]
    Copy {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl CatError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::NotAPlainName { .. } => exit_code::USAGE,
            Self::Open { .. } => exit_code::BAD_CAPTURE_DIR,
            Self::Copy { .. } => exit_code::OUTPUT,
        }
    }
}

/// Copies `dir/name` to `out`; returns the bytes copied.
pub fn cat(dir: &Path, name: &str, out: &mut dyn Write) -> Result<u64, CatError> {
    if !is_file_name(name) {
        return Err(CatError::NotAPlainName {
            name: name.to_string(),
        });
    }
    let path = dir.join(name);
    let open_error = |detail: String| CatError::Open {
        path: path.clone(),
        detail,
    };
    let mut file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => open_error("it is a symbolic link".into()),
            _ => open_error(e.to_string()),
        })?;
    let metadata = file.metadata().map_err(|e| open_error(e.to_string()))?;
    if !metadata.is_file() {
        return Err(open_error("it is not a regular file".into()));
    }
    let copied = io::copy(&mut file, out).map_err(|source| CatError::Copy {
        path: path.clone(),
        source,
    })?;
    out.flush()
        .map_err(|source| CatError::Copy { path, source })?;
    Ok(copied)
}

/// Whether `name` names an entry of a directory itself: one path component.
fn is_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_a_file_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("fds.json"), &content).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            cat(dir.path(), "fds.json", &mut out).unwrap(),
            content.len() as u64
        );
        assert_eq!(out, content);
    }

    #[test]
    fn refuses_paths_symlinks_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("real"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let mut out = Vec::new();
        for name in ["", ".", "..", "../real", "sub/x", "/etc/passwd"] {
            let e = cat(dir.path(), name, &mut out).unwrap_err();
            assert!(matches!(e, CatError::NotAPlainName { .. }), "{name:?}: {e}");
        }
        let e = cat(dir.path(), "link", &mut out).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        let e = cat(dir.path(), "sub", &mut out).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let e = cat(dir.path(), "missing.json", &mut out).unwrap_err();
        assert_eq!(e.exit_code(), exit_code::BAD_CAPTURE_DIR);
        assert!(out.is_empty(), "nothing was written");
    }
}
