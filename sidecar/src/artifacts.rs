//! The capture directory: writing and reading its JSON files, hashing every artifact, and
//! `manifest.json`, which says what is in the directory and how it was made.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use aws_lc_rs::digest::{Context, SHA256};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::analysis::{self, Summary};
use crate::core::CoreRecord;
use crate::error::OutputError;
use crate::goroutines::buildinfo::GoBuildInfo;
use crate::report;
use crate::samples::{CaptureData, Series};
use crate::target::TargetIdentity;

/// `fds.json`.
pub const FDS_FILE: &str = "fds.json";
/// `threads.json`.
pub const THREADS_FILE: &str = "threads.json";
/// `memory.json`.
pub const MEMORY_FILE: &str = "memory.json";
/// `goroutines.json`.
pub const GOROUTINES_FILE: &str = "goroutines.json";
/// `goroutines.txt`: the last goroutine sample, grouped, for people.
pub const GOROUTINES_TEXT_FILE: &str = "goroutines.txt";
/// `heap.pb.gz`: the Go heap profile, as the endpoint served it.
pub const HEAP_FILE: &str = "heap.pb.gz";
/// `stacks.json`: every thread's native stack.
pub const STACKS_FILE: &str = "stacks.json";
/// `stacks.txt`: identical native stacks grouped.
pub const STACKS_TEXT_FILE: &str = "stacks.txt";
/// `summary.json`.
pub const SUMMARY_FILE: &str = "summary.json";
/// `manifest.json`.
pub const MANIFEST_FILE: &str = "manifest.json";
/// `report.md`.
pub const REPORT_MD_FILE: &str = "report.md";
/// `report.html`.
pub const REPORT_HTML_FILE: &str = "report.html";

/// `manifest.json`: what the capture holds and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Layout version.
    pub schema_version: u32,
    /// The tool that wrote it.
    pub tool: Tool,
    /// Who was captured.
    pub target: TargetIdentity,
    /// Samples asked for.
    pub samples_requested: usize,
    /// Samples taken.
    pub samples_taken: usize,
    /// Seconds between the starts of two samples.
    pub interval_seconds: f64,
    /// When the first sample started.
    pub started_at: DateTime<Utc>,
    /// When the last sample ended.
    pub finished_at: DateTime<Utc>,
    /// Each capture that ran, with the time each sample took.
    pub captures: Vec<CaptureRun>,
    /// Set when the capture is partial: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<String>,
    /// The Go build info of the target's executable, when it is a Go program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go_build_info: Option<GoBuildInfo>,
    /// The core dump, when one was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core: Option<CoreRecord>,
    /// Where the goroutines came from, when they were captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goroutines: Option<GoroutinesRecord>,
    /// Every other file of the directory, with its size and sha256.
    pub files: Vec<FileEntry>,
}

/// The program that wrote a capture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    /// `procshot`.
    pub name: String,
    /// Its version.
    pub version: String,
}

impl Tool {
    /// This procshot.
    pub fn current() -> Self {
        Self {
            name: env!("CARGO_PKG_NAME").to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// One capture kind that ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaptureRun {
    /// `fds`, `threads`, `memory`, `goroutines`…
    pub kind: String,
    /// The file it wrote.
    pub file: String,
    /// Milliseconds each sample took.
    pub sample_durations_ms: Vec<f64>,
    /// Why this capture failed (the others went on; the capture is marked partial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How the goroutines capture read the goroutines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GoroutinesRecord {
    /// `memory` (read from the process with `process_vm_readv`) or `pprof`.
    pub source: GoroutinesSource,
    /// The Go version whose runtime layout was used (memory only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go_version: Option<String>,
    /// Goroutines whose reads disagreed at first and agreed on a retry, over every sample.
    #[serde(default)]
    pub retried: u64,
    /// Goroutines whose reads never agreed, left out, over every sample.
    #[serde(default)]
    pub inconsistent: u64,
    /// The longest time every thread was stopped for an exact read
    /// (`--goroutines-max-stop`); absent when the program was not stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longest_stop_ms: Option<f64>,
}

/// Where goroutines come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GoroutinesSource {
    /// The program's memory.
    Memory,
    /// Its `net/http/pprof` endpoint.
    Pprof,
}

/// One artifact file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// File name inside the capture directory.
    pub name: String,
    /// Size.
    pub bytes: u64,
    /// Hex sha256 of the content.
    pub sha256: String,
}

/// Checks that `dir` can receive a new capture: absent, or an empty directory.
pub fn check_output_dir(dir: &Path) -> Result<(), OutputError> {
    match fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(_) => Err(OutputError::NotEmpty(dir.to_path_buf())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) if dir.exists() && !dir.is_dir() => {
            Err(OutputError::NotADirectory(dir.to_path_buf()))
        }
        Err(source) => Err(OutputError::Write {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Creates the capture directory (and its parents).
pub fn create_output_dir(dir: &Path) -> Result<(), OutputError> {
    check_output_dir(dir)?;
    fs::create_dir_all(dir).map_err(|source| OutputError::Write {
        path: dir.to_path_buf(),
        source,
    })
}

/// Writes the sampled data, then the results ([`write_results`]). Files already listed in
/// `manifest.files` (written with [`write_artifact`]) stay listed.
pub fn write_capture(
    dir: &Path,
    manifest: &mut Manifest,
    data: &CaptureData,
) -> Result<Summary, OutputError> {
    let mut files = std::mem::take(&mut manifest.files);
    if let Some(series) = &data.fds {
        files.push(write_json(dir, FDS_FILE, series, false)?);
    }
    if let Some(series) = &data.threads {
        files.push(write_json(dir, THREADS_FILE, series, false)?);
    }
    if let Some(series) = &data.memory {
        files.push(write_json(dir, MEMORY_FILE, series, false)?);
    }
    if let Some(series) = &data.goroutines {
        files.push(write_json(dir, GOROUTINES_FILE, series, false)?);
    }
    if let Some(stacks) = &data.stacks {
        files.push(write_json(dir, STACKS_FILE, stacks, false)?);
        files.push(write_artifact(
            dir,
            STACKS_TEXT_FILE,
            crate::stacks::output::text(stacks).as_bytes(),
        )?);
    }
    write_results(dir, manifest, data, files)
}

/// Rewrites the results of an existing capture directory from its sample files (used by
/// `procshot report`).
pub fn rewrite_results(
    dir: &Path,
    manifest: &mut Manifest,
    data: &CaptureData,
) -> Result<Summary, OutputError> {
    let files = [
        FDS_FILE,
        THREADS_FILE,
        MEMORY_FILE,
        GOROUTINES_FILE,
        GOROUTINES_TEXT_FILE,
        HEAP_FILE,
        STACKS_FILE,
        STACKS_TEXT_FILE,
    ]
    .into_iter()
    .filter(|name| dir.join(name).exists())
    .map(|name| hash_file(dir, name))
    .collect::<Result<_, _>>()?;
    write_results(dir, manifest, data, files)
}

/// Analyzes `data` and writes `summary.json`, the reports and `manifest.json`, which lists
/// `data_files` and the files written here with their sizes and hashes.
fn write_results(
    dir: &Path,
    manifest: &mut Manifest,
    data: &CaptureData,
    mut files: Vec<FileEntry>,
) -> Result<Summary, OutputError> {
    let summary = analysis::summarize(manifest.target.pid, data, manifest.partial.clone());
    files.push(write_json(dir, SUMMARY_FILE, &summary, true)?);
    files.push(write_artifact(
        dir,
        REPORT_MD_FILE,
        report::markdown(manifest, &summary, data).as_bytes(),
    )?);
    files.push(write_artifact(
        dir,
        REPORT_HTML_FILE,
        report::html(manifest, &summary, data).as_bytes(),
    )?);
    // Keep the entries of files written before (a core dump), unless rewritten now.
    let kept: Vec<FileEntry> = std::mem::take(&mut manifest.files)
        .into_iter()
        .filter(|old| {
            ![SUMMARY_FILE, REPORT_MD_FILE, REPORT_HTML_FILE].contains(&old.name.as_str())
                && !files.iter().any(|new| new.name == old.name)
        })
        .collect();
    files.extend(kept);
    manifest.files = files;
    write_json(dir, MANIFEST_FILE, manifest, true)?;
    Ok(summary)
}

/// Reads a capture directory back: its manifest and whatever sample files it has.
pub fn load(dir: &Path) -> Result<(Manifest, CaptureData), OutputError> {
    let manifest: Manifest = read_json(&dir.join(MANIFEST_FILE))?;
    let optional = |name: &str| -> Result<Option<PathBuf>, OutputError> {
        let path = dir.join(name);
        Ok(path.exists().then_some(path))
    };
    let data = CaptureData {
        fds: optional(FDS_FILE)?
            .map(|p| read_json::<Series<_>>(&p))
            .transpose()?,
        threads: optional(THREADS_FILE)?
            .map(|p| read_json::<Series<_>>(&p))
            .transpose()?,
        memory: optional(MEMORY_FILE)?
            .map(|p| read_json::<Series<_>>(&p))
            .transpose()?,
        goroutines: optional(GOROUTINES_FILE)?
            .map(|p| read_json::<Series<_>>(&p))
            .transpose()?,
        stacks: optional(STACKS_FILE)?.map(|p| read_json(&p)).transpose()?,
    };
    Ok((manifest, data))
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, OutputError> {
    let bad = |detail: String| OutputError::BadCapture {
        path: path.to_path_buf(),
        detail,
    };
    let file = File::open(path).map_err(|e| bad(e.to_string()))?;
    serde_json::from_reader(BufReader::new(file)).map_err(|e| bad(e.to_string()))
}

/// A writer that counts and hashes everything written through it, so that no artifact has
/// to be read back to be listed in the manifest.
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

/// Writes `name` through `fill`, returning its manifest entry.
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

fn write_json<T: Serialize>(
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

/// Writes one more artifact into the capture directory and returns its manifest entry.
pub fn write_artifact(dir: &Path, name: &str, content: &[u8]) -> Result<FileEntry, OutputError> {
    write_with(dir, name, |writer| writer.write_all(content))
}

/// Size and hex sha256 of a file of the capture directory.
fn hash_file(dir: &Path, name: &str) -> Result<FileEntry, OutputError> {
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
