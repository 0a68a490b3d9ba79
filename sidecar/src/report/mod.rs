//! The human reports of a capture: `report.md` (terminals, tickets) and `report.html` (one
//! self-contained page with a chart of every trend). Both render the same [`Document`],
//! built once from the manifest, the summary and the samples.

mod build;
mod chart;
mod html;
mod markdown;

use std::path::Path;

use crate::analysis::{Finding, Summary};
use crate::artifacts::{self, Manifest};
use crate::error::OutputError;
use crate::samples::CaptureData;

/// A report, independent of its output format.
#[derive(Debug, Clone)]
pub struct Document {
    /// Page title.
    pub title: String,
    /// One-line description under the title.
    pub subtitle: String,
    /// Why the capture is partial, if it is.
    pub partial: Option<String>,
    /// Findings, most serious first.
    pub findings: Vec<Finding>,
    /// The sections after the findings.
    pub sections: Vec<Section>,
}

/// A titled part of the report.
#[derive(Debug, Clone, Default)]
pub struct Section {
    /// Heading.
    pub title: String,
    /// A sentence under the heading.
    pub note: Option<String>,
    /// Trend charts.
    pub charts: Vec<Chart>,
    /// A table.
    pub table: Option<Table>,
}

/// A table of text cells.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Column headings.
    pub headers: Vec<String>,
    /// Rows of cells, as many as headers.
    pub rows: Vec<Vec<String>>,
}

/// A line chart of one or more series over the samples.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Chart title.
    pub title: String,
    /// Seconds since the first sample, one per sample.
    pub x: Vec<f64>,
    /// Named series, one value per sample.
    pub series: Vec<(String, Vec<f64>)>,
    /// Whether values are bytes (else counts).
    pub bytes: bool,
    /// A horizontal limit line (fd soft limit, cgroup memory limit).
    pub limit: Option<(String, f64)>,
}

/// `report.md` for a capture.
pub fn markdown(manifest: &Manifest, summary: &Summary, data: &CaptureData) -> String {
    markdown::render(&build::document(manifest, summary, data))
}

/// `report.html` for a capture.
pub fn html(manifest: &Manifest, summary: &Summary, data: &CaptureData) -> String {
    html::render(&build::document(manifest, summary, data))
}

/// Renders any document as `report.md` (a post-mortem's, say).
pub fn render_markdown(doc: &Document) -> String {
    markdown::render(doc)
}

/// Renders any document as `report.html`.
pub fn render_html(doc: &Document) -> String {
    html::render(doc)
}

/// `procshot report DIR`: re-analyzes the samples of an existing capture with this
/// procshot, and rewrites `summary.json`, both reports and the manifest's file list.
pub fn rerender(dir: &Path) -> Result<Summary, OutputError> {
    let (mut manifest, data) = artifacts::load(dir)?;
    artifacts::rewrite_results(dir, &mut manifest, &data)
}
