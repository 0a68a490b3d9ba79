//! The human reports of a capture: `report.md` (terminals, tickets) and `report.html` (one
//! self-contained page with a chart of every trend). Both render the same [`Document`],
//! built once from what is known of the capture ([`CaptureInfo`]), its summary and its
//! data. Pure: a capture in, text out; writing the files is the capture directory's job.

mod build;
mod chart;
mod html;
mod markdown;

use chrono::{DateTime, Utc};

use crate::analysis::{Finding, Summary};
use crate::gomem::buildinfo::GoBuildInfo;
use crate::process::TargetIdentity;
use crate::series::CaptureData;

/// What a report says of the capture besides its data and findings: who, when, how many
/// samples (the manifest's header).
#[derive(Debug, Clone)]
pub struct CaptureInfo<'a> {
    /// Who was captured.
    pub target: &'a TargetIdentity,
    /// The Go build info of the target's executable, when it is a Go program.
    pub go_build_info: Option<&'a GoBuildInfo>,
    /// The program and version that captured it (`procshot 0.1.0`).
    pub captured_by: String,
    /// Samples asked for.
    pub samples_requested: usize,
    /// Samples taken.
    pub samples_taken: usize,
    /// Seconds between the starts of two samples.
    pub interval_seconds: f64,
    /// When the first sample started.
    pub started_at: DateTime<Utc>,
}

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
pub fn markdown(info: &CaptureInfo<'_>, summary: &Summary, data: &CaptureData) -> String {
    markdown::render(&build::document(info, summary, data))
}

/// `report.html` for a capture.
pub fn html(info: &CaptureInfo<'_>, summary: &Summary, data: &CaptureData) -> String {
    html::render(&build::document(info, summary, data))
}

/// Renders any document as `report.md` (a post-mortem's, say).
pub fn render_markdown(doc: &Document) -> String {
    markdown::render(doc)
}

/// Renders any document as `report.html`.
pub fn render_html(doc: &Document) -> String {
    html::render(doc)
}
