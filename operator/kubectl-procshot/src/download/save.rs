//! Writing one downloaded file: streamed to a hidden `.NAME.part` beside its final place
//! while its sha256 is computed, and renamed to NAME only when its size and sha256 are
//! the manifest's. A file that does not match is removed: nothing is ever left under a
//! capture file's name that the manifest does not vouch for.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::DownloadError;

/// What a file must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Its name in the capture directory.
    pub name: String,
    /// Its size, when known.
    pub bytes: Option<u64>,
    /// Its hex sha256.
    pub sha256: String,
}

/// Streams `reader` into `dir/NAME`, checked against `expected`; returns the size.
pub async fn save(
    reader: &mut (dyn AsyncRead + Unpin + Send),
    dir: &Path,
    expected: &Expected,
    source: &str,
) -> Result<u64, DownloadError> {
    let path = dir.join(&expected.name);
    let part = dir.join(format!(".{}.part", expected.name));
    let written = copy_hashing(reader, &part, expected, source).await;
    let (bytes, sha256) = match written {
        Ok(done) => done,
        Err(e) => {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(e);
        }
    };
    let mismatch = |detail: String| DownloadError::Mismatch {
        name: expected.name.clone(),
        origin: source.to_string(),
        detail,
    };
    let refused = if expected.bytes.is_some_and(|b| b != bytes) {
        Some(mismatch(format!(
            "{bytes} bytes arrived, the manifest says {}",
            expected.bytes.unwrap_or_default()
        )))
    } else if !sha256.eq_ignore_ascii_case(&expected.sha256) {
        Some(mismatch(format!(
            "its sha256 is {sha256}, the manifest says {}",
            expected.sha256
        )))
    } else {
        None
    };
    if let Some(error) = refused {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(error);
    }
    tokio::fs::rename(&part, &path)
        .await
        .map_err(|e| write_error(&path, e))?;
    Ok(bytes)
}

async fn copy_hashing(
    reader: &mut (dyn AsyncRead + Unpin + Send),
    part: &Path,
    expected: &Expected,
    source: &str,
) -> Result<(u64, String), DownloadError> {
    let mut file = tokio::fs::File::create(part)
        .await
        .map_err(|e| write_error(part, e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = reader
            .read(&mut buffer)
            .await
            .map_err(|e| DownloadError::Transfer {
                name: expected.name.clone(),
                origin: source.to_string(),
                detail: procshot_api::error_chain(&e),
            })?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if expected.bytes.is_some_and(|b| total > b) {
            return Err(DownloadError::Mismatch {
                name: expected.name.clone(),
                origin: source.to_string(),
                detail: format!(
                    "more than the {} bytes the manifest says arrived",
                    expected.bytes.unwrap_or_default()
                ),
            });
        }
        hasher.update(&buffer[..n]);
        file.write_all(&buffer[..n])
            .await
            .map_err(|e| write_error(part, e))?;
    }
    file.flush().await.map_err(|e| write_error(part, e))?;
    file.sync_all().await.map_err(|e| write_error(part, e))?;
    Ok((total, hex::encode(hasher.finalize())))
}

fn write_error(path: &Path, source: std::io::Error) -> DownloadError {
    DownloadError::Write {
        path: PathBuf::from(path),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(content: &[u8]) -> Expected {
        Expected {
            name: "fds.json".into(),
            bytes: Some(content.len() as u64),
            sha256: hex::encode(Sha256::digest(content)),
        }
    }

    #[tokio::test]
    async fn a_matching_file_lands_under_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let content = vec![7u8; 600_000];
        let mut reader: &[u8] = &content;
        let n = save(&mut reader, dir.path(), &expected(&content), "test")
            .await
            .unwrap();
        assert_eq!(n, content.len() as u64);
        assert_eq!(std::fs::read(dir.path().join("fds.json")).unwrap(), content);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no .part left"
        );
    }

    #[tokio::test]
    async fn a_file_that_differs_is_refused_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let content = b"{\"fds\": []}".to_vec();
        for (arrived, detail) in [
            (b"{\"fds\": [1]}".to_vec(), "more than the 11 bytes"),
            (
                b"{\"fds\": ]}".to_vec(),
                "10 bytes arrived, the manifest says 11",
            ),
            (b"{\"fdz\": []}".to_vec(), "its sha256 is"),
        ] {
            let mut reader: &[u8] = &arrived;
            let e = save(&mut reader, dir.path(), &expected(&content), "s3://b/x")
                .await
                .unwrap_err()
                .to_string();
            assert!(e.contains(detail), "{e}");
            assert!(e.contains("fds.json from s3://b/x"), "{e}");
            assert_eq!(
                std::fs::read_dir(dir.path()).unwrap().count(),
                0,
                "nothing left"
            );
        }
    }
}
