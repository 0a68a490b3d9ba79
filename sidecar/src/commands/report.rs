//! `procshot report DIR`: re-analyzes the data of an existing capture with this procshot,
//! and rewrites `summary.json`, both reports and the manifest's file list.

use std::path::Path;

use crate::analysis::Summary;
use crate::directory;
use crate::error::OutputError;

/// Re-analyzes the capture in `dir` and rewrites its results.
pub fn rerender(dir: &Path) -> Result<Summary, OutputError> {
    let (mut manifest, data) = directory::load(dir)?;
    directory::rewrite_results(dir, &mut manifest, &data)
}
