//! The part of a capture's `manifest.json` a download relies on: every file's name, size
//! and sha256, and the target's pid (to tell which pod a capture is of). Everything else
//! in the manifest is left to the tools that read captures; a manifest naming a file
//! outside its directory is refused, since it came over the network.

use serde::Deserialize;

use super::DownloadError;

/// `manifest.json`.
pub const MANIFEST: &str = "manifest.json";
/// The largest manifest read (they are a few KiB).
pub const MAX_MANIFEST_BYTES: usize = 16 << 20;

/// What a download needs of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Manifest {
    /// Every file of the capture but the manifest.
    pub files: Vec<ListedFile>,
    /// The captured process.
    #[serde(default)]
    pub target: Option<ManifestTarget>,
}

/// One file the manifest vouches for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ListedFile {
    /// Its name in the capture directory.
    pub name: String,
    /// Its size.
    pub bytes: u64,
    /// Its hex sha256.
    pub sha256: String,
}

/// The captured process, as the manifest names it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ManifestTarget {
    /// Its pid on the node.
    pub pid: i32,
}

impl Manifest {
    /// Parses a manifest fetched from `source`, refusing file names that are not plain
    /// names of the directory, or listed twice.
    pub fn parse(text: &[u8], source: &str) -> Result<Self, DownloadError> {
        let bad = |detail: String| DownloadError::BadManifest {
            origin: source.to_string(),
            detail,
        };
        let manifest: Self = serde_json::from_slice(text).map_err(|e| bad(e.to_string()))?;
        let mut seen = std::collections::BTreeSet::new();
        for file in &manifest.files {
            if !is_plain_name(&file.name) || file.name == MANIFEST {
                return Err(bad(format!(
                    "it lists {:?}, which is not a file name of a capture directory",
                    file.name
                )));
            }
            if !seen.insert(file.name.as_str()) {
                return Err(bad(format!("it lists {} twice", file.name)));
            }
            if file.sha256.len() != 64 || !file.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad(format!("{} has no sha256", file.name)));
            }
        }
        Ok(manifest)
    }
}

/// One path component of letters, digits, `.`, `-` and `_`, not starting with a dot
/// (which also keeps it apart from the `.NAME.part` files of a download).
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_manifest_gives_its_files_and_target() {
        let text = format!(
            r#"{{"schemaVersion": 1, "target": {{"pid": 4242, "name": "api"}},
                "files": [{{"name": "fds.json", "bytes": 10, "sha256": "{SHA}"}}]}}"#
        );
        let manifest = Manifest::parse(text.as_bytes(), "s3://b/m").unwrap();
        assert_eq!(manifest.files[0].name, "fds.json");
        assert_eq!(manifest.target.unwrap().pid, 4242);
    }

    #[test]
    fn names_outside_the_directory_are_refused() {
        for name in [
            "../etc/passwd",
            "/etc/passwd",
            "a/b",
            ".hidden",
            "",
            "manifest.json",
            "x\u{1b}",
        ] {
            let text = format!(
                r#"{{"files": [{{"name": {}, "bytes": 1, "sha256": "{SHA}"}}]}}"#,
                serde_json::to_string(name).unwrap()
            );
            let e = Manifest::parse(text.as_bytes(), "s3://b/m")
                .unwrap_err()
                .to_string();
            assert!(e.contains("not a file name"), "{name:?}: {e}");
        }
        let twice = format!(
            r#"{{"files": [{{"name": "a", "bytes": 1, "sha256": "{SHA}"}}, {{"name": "a", "bytes": 1, "sha256": "{SHA}"}}]}}"#
        );
        assert!(
            Manifest::parse(twice.as_bytes(), "x")
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
    }
}
