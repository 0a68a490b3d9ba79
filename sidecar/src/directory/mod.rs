//! The capture directory, the same on a laptop and in a bucket: made sure of before
//! anything is read, then written (every kind's files as its [`KindData`] writes them, the
//! summary, both reports and, last, [`manifest::Manifest`], listing every other file with
//! its size and sha256), and read back by `procshot report`. Which files a kind writes is
//! the kind's business; this module lists none.
//!
//! [`KindData`]: crate::captures::KindData

pub mod manifest;

use std::fs;
use std::path::Path;

pub use manifest::{CaptureRun, Manifest, Tool};

use crate::analysis::{self, Summary};
use crate::captures::CaptureKind;
use crate::error::OutputError;
use crate::files::{self, FileEntry, FileList};
use crate::report;
use crate::series::CaptureData;

/// `summary.json`.
pub const SUMMARY_FILE: &str = "summary.json";
/// `manifest.json`.
pub const MANIFEST_FILE: &str = "manifest.json";
/// `report.md`.
pub const REPORT_MD_FILE: &str = "report.md";
/// `report.html`.
pub const REPORT_HTML_FILE: &str = "report.html";

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

/// Creates the capture directory (and its parents); its files are listed as they are
/// written into it.
pub fn create_output_dir(dir: &Path) -> Result<FileList, OutputError> {
    check_output_dir(dir)?;
    fs::create_dir_all(dir).map_err(|source| OutputError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(FileList::new(dir))
}

/// Writes every kind's data into the directory of `files` (which lists what the captures
/// wrote there themselves), then the results ([`write_results`]).
pub fn write_capture(
    mut files: FileList,
    manifest: &mut Manifest,
    data: &CaptureData,
) -> Result<Summary, OutputError> {
    data.write(&mut files)?;
    write_results(files, manifest, data)
}

/// Rewrites the results of an existing capture directory from the data read back from it
/// (`procshot report`): the files of every kind read back are hashed again, the others
/// (a core dump) keep their entries.
pub fn rewrite_results(
    dir: &Path,
    manifest: &mut Manifest,
    data: &CaptureData,
) -> Result<Summary, OutputError> {
    let mut files = FileList::new(dir);
    for kind in CaptureKind::ALL.into_iter().filter(|k| data.has(*k)) {
        for name in kind.files() {
            if dir.join(name).exists() {
                files.add(files::hash_file(dir, name)?);
            }
        }
    }
    write_results(files, manifest, data)
}

/// Analyzes `data` and writes `summary.json`, the reports and `manifest.json`, which lists
/// the files in `files` and those written here with their sizes and hashes.
fn write_results(
    mut files: FileList,
    manifest: &mut Manifest,
    data: &CaptureData,
) -> Result<Summary, OutputError> {
    let summary = analysis::summarize(manifest.target.pid, data, manifest.partial.clone());
    files.json(SUMMARY_FILE, &summary, true)?;
    let info = manifest.info();
    files.bytes(
        REPORT_MD_FILE,
        report::markdown(&info, &summary, data).as_bytes(),
    )?;
    files.bytes(
        REPORT_HTML_FILE,
        report::html(&info, &summary, data).as_bytes(),
    )?;
    let dir = files.dir().to_path_buf();
    let mut files = files.into_entries();
    // Keep the entries of files written before (a core dump), unless rewritten now.
    let kept: Vec<FileEntry> = std::mem::take(&mut manifest.files)
        .into_iter()
        .filter(|old| !files.iter().any(|new| new.name == old.name))
        .collect();
    files.extend(kept);
    manifest.files = files;
    files::write_json(&dir, MANIFEST_FILE, manifest, true)?;
    Ok(summary)
}

/// Reads a capture directory back: its manifest and the data of every kind it has.
pub fn load(dir: &Path) -> Result<(Manifest, CaptureData), OutputError> {
    let manifest: Manifest = files::read_json(&dir.join(MANIFEST_FILE))?;
    let data = CaptureData::load(dir)?;
    Ok((manifest, data))
}
