//! The files procshot writes into a capture or post-mortem directory: each written through
//! a writer that counts and hashes every byte ([`HashingWriter`]), so that it is listed with
//! its size and sha256 ([`FileEntry`]) without being read back; [`FileList`] collects the
//! entries of one directory as its files are written. Also the reading back of JSON files
//! and the hashing of a file already on disk.
//!
//! What a directory holds and in which order it is written is the capture directory's
//! business ([`crate::directory`]); this module only writes, hashes and reads files.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use aws_lc_rs::digest::{Context, SHA256};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::OutputError;

/// One file of a directory, as its manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// File name inside the directory.
    pub name: String,
    /// Size.
    pub bytes: u64,
    /// Hex sha256 of the content.
    pub sha256: String,
}

/// The files written into one directory so far, each with its size and sha256, in the
/// order they were written.
#[derive(Debug)]
pub struct FileList {
    dir: PathBuf,
    entries: Vec<FileEntry>,
}

impl FileList {
    /// No file written yet into `dir` (which exists).
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            entries: Vec::new(),
        }
    }

    /// The directory, for a capture that writes a file by itself (a core dump, streamed
    /// through zstd and renamed when complete) and then [`add`](Self::add)s it.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `value` as JSON into `name` (pretty-printed, or on one line) and lists it.
    pub fn json<T: Serialize>(
        &mut self,
        name: &str,
        value: &T,
        pretty: bool,
    ) -> Result<(), OutputError> {
        let entry = write_json(&self.dir, name, value, pretty)?;
        self.add(entry);
        Ok(())
    }

    /// Writes `content` into `name` and lists it.
    pub fn bytes(&mut self, name: &str, content: &[u8]) -> Result<(), OutputError> {
        let entry = write_artifact(&self.dir, name, content)?;
        self.add(entry);
        Ok(())
    }

    /// Lists a file written by other means, replacing an entry of the same name.
    pub fn add(&mut self, entry: FileEntry) {
        self.entries.retain(|old| old.name != entry.name);
        self.entries.push(entry);
    }

    /// The entries, in the order the files were written.
    pub fn into_entries(self) -> Vec<FileEntry> {
        self.entries
    }
}

/// A writer that counts and hashes everything written through it, so that no file has to
/// be read back to be listed.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Context,
    bytes: u64,
}

impl<W> HashingWriter<W> {
    /// Counts and hashes what goes to `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Context::new(&SHA256),
            bytes: 0,
        }
    }

    /// The writer, the number of bytes written and their sha256 (hex).
    pub fn finish(self) -> (W, u64, String) {
        (self.inner, self.bytes, hex::encode(self.hasher.finish()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `name` through `fill`, returning its entry.
fn write_with(
    dir: &Path,
    name: &str,
    fill: impl FnOnce(&mut HashingWriter<BufWriter<File>>) -> std::io::Result<()>,
) -> Result<FileEntry, OutputError> {
    let path = dir.join(name);
    let write_err = |source| OutputError::Write {
        path: path.clone(),
        source,
    };
    let file = File::create(&path).map_err(write_err)?;
    let mut writer = HashingWriter::new(BufWriter::with_capacity(1 << 16, file));
    fill(&mut writer)
        .and_then(|()| writer.flush())
        .map_err(write_err)?;
    let (_, bytes, sha256) = writer.finish();
    Ok(FileEntry {
        name: name.to_string(),
        bytes,
        sha256,
    })
}

/// Writes `value` as `name` (pretty-printed, or on one line) and returns its entry.
pub fn write_json<T: Serialize>(
    dir: &Path,
    name: &str,
    value: &T,
    pretty: bool,
) -> Result<FileEntry, OutputError> {
    write_with(dir, name, |writer| {
        if pretty {
            serde_json::to_writer_pretty(&mut *writer, value)?;
        } else {
            serde_json::to_writer(&mut *writer, value)?;
        }
        writer.write_all(b"\n")
    })
}

/// Writes `content` as `name` and returns its entry.
pub fn write_artifact(dir: &Path, name: &str, content: &[u8]) -> Result<FileEntry, OutputError> {
    write_with(dir, name, |writer| writer.write_all(content))
}

/// Reads the JSON file `path`; anything wrong with it is [`OutputError::BadCapture`].
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, OutputError> {
    let bad = |detail: String| OutputError::BadCapture {
        path: path.to_path_buf(),
        detail,
    };
    let file = File::open(path).map_err(|e| bad(e.to_string()))?;
    serde_json::from_reader(BufReader::new(file)).map_err(|e| bad(e.to_string()))
}

/// Reads the JSON file `name` of `dir`, `None` when there is no such file.
pub fn read_json_if_present<T: DeserializeOwned>(
    dir: &Path,
    name: &str,
) -> Result<Option<T>, OutputError> {
    let path = dir.join(name);
    if path.exists() {
        read_json(&path).map(Some)
    } else {
        Ok(None)
    }
}

/// The entry of a file already in `dir`, read and hashed.
pub fn hash_file(dir: &Path, name: &str) -> Result<FileEntry, OutputError> {
    let path = dir.join(name);
    let (bytes, sha256) =
        file_sha256(&path).map_err(|source| OutputError::Write { path, source })?;
    Ok(FileEntry {
        name: name.to_string(),
        bytes,
        sha256,
    })
}

/// Size and hex sha256 of a file, read in 1 MiB chunks (aws-lc-rs's SHA-256: assembly in
/// every build, also what signs upload requests).
pub fn file_sha256(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = File::open(path)?;
    let mut hasher = Context::new(&SHA256);
    let mut buf = vec![0; 1 << 20];
    let mut bytes = 0;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok((bytes, hex::encode(hasher.finish())))
}
