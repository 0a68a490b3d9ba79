//! `report.html`: one self-contained page (inline CSS and SVG, no scripts, no network).

use std::fmt::Write;

use html_escape::encode_text as esc;

use super::{Document, chart};

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:70rem;padding:0 1rem;color:#111827}\
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #e5e7eb}\
.sub{color:#6b7280}table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #e5e7eb;padding:.25rem .5rem;text-align:left;vertical-align:top}\
th{background:#f9fafb}.finding{border-left:4px solid;padding:.4rem .8rem;margin:.4rem 0;background:#f9fafb}\
.critical{border-color:#991b1b}.warning{border-color:#d97706}.info{border-color:#2563eb}.sev{font-weight:600;text-transform:uppercase;font-size:.8rem}\
code{background:#f3f4f6;padding:0 .2rem}.partial{background:#fef3c7;padding:.5rem .8rem}.charts{display:flex;flex-wrap:wrap;gap:1rem}\
figure{margin:0;flex:1 1 460px;max-width:560px}figcaption{font-weight:600}.chart{width:100%;height:auto}.axis{font-size:11px;fill:#6b7280}\
.limit{font-size:11px;fill:#991b1b}.legend span{margin-right:1rem;font-size:12px}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}";

/// Renders the document as HTML.
pub(super) fn render(doc: &Document) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>",
        esc(&doc.title)
    );
    let _ = write!(
        out,
        "<h1>{}</h1><p class=\"sub\">{}</p>",
        esc(&doc.title),
        esc(&doc.subtitle)
    );
    if let Some(reason) = &doc.partial {
        let _ = write!(
            out,
            "<p class=\"partial\"><strong>Partial capture:</strong> {}</p>",
            esc(reason)
        );
    }
    out.push_str("<h2>Findings</h2>");
    if doc.findings.is_empty() {
        out.push_str("<p>No findings: nothing crossed a threshold.</p>");
    }
    for f in &doc.findings {
        let _ = write!(
            out,
            "<div class=\"finding {sev}\"><span class=\"sev\">{sev}</span> <code>{}</code> {}</div>",
            esc(f.code.as_str()),
            esc(&f.message),
            sev = f.severity.name()
        );
    }
    for section in &doc.sections {
        let _ = write!(out, "<h2>{}</h2>", esc(&section.title));
        if let Some(note) = &section.note {
            let _ = write!(out, "<p>{}</p>", esc(note));
        }
        if !section.charts.is_empty() {
            out.push_str("<div class=\"charts\">");
            for c in &section.charts {
                let _ = write!(
                    out,
                    "<figure><figcaption>{}</figcaption>{}</figure>",
                    esc(&c.title),
                    chart::svg(c)
                );
            }
            out.push_str("</div>");
        }
        if let Some(table) = &section.table {
            out.push_str("<table>");
            if table.headers.iter().any(|h| !h.is_empty()) {
                out.push_str("<tr>");
                for h in &table.headers {
                    let _ = write!(out, "<th>{}</th>", esc(h));
                }
                out.push_str("</tr>");
            }
            for row in &table.rows {
                out.push_str("<tr>");
                for cell in row {
                    let _ = write!(out, "<td>{}</td>", esc(cell));
                }
                out.push_str("</tr>");
            }
            out.push_str("</table>");
        }
    }
    out.push_str("</body></html>\n");
    out
}
