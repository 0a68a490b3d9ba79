//! `report.md`: the same document for terminals and tickets; trends as sparklines.

use std::fmt::Write;

use super::Document;

/// Renders the document as Markdown.
pub(super) fn render(doc: &Document) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n\n{}\n", doc.title, doc.subtitle);
    if let Some(reason) = &doc.partial {
        let _ = writeln!(out, "> **Partial capture:** {reason}\n");
    }
    out.push_str("## Findings\n\n");
    if doc.findings.is_empty() {
        out.push_str("No findings: nothing crossed a threshold.\n");
    }
    for f in &doc.findings {
        let _ = writeln!(
            out,
            "- **{}** `{}`: {}",
            f.severity.name().to_uppercase(),
            f.code,
            f.message
        );
    }
    for section in &doc.sections {
        let _ = writeln!(out, "\n## {}\n", section.title);
        if let Some(note) = &section.note {
            let _ = writeln!(out, "{note}\n");
        }
        for chart in &section.charts {
            for (name, values) in &chart.series {
                let _ = writeln!(out, "- {} / {name}: `{}`", chart.title, sparkline(values));
            }
        }
        if !section.charts.is_empty() {
            out.push('\n');
        }
        if let Some(table) = &section.table {
            let _ = writeln!(
                out,
                "| {} |",
                table
                    .headers
                    .iter()
                    .map(|h| cell(h))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
            let _ = writeln!(out, "|{}", "---|".repeat(table.headers.len()));
            for row in &table.rows {
                let _ = writeln!(
                    out,
                    "| {} |",
                    row.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")
                );
            }
        }
    }
    out
}

/// Escapes the characters that would break a table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// `[1, 5, 9]` → `▁▄█`.
fn sparkline(values: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let min = values.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    values
        .iter()
        .map(|v| {
            if max <= min {
                BARS[0]
            } else {
                BARS[(((v - min) / (max - min)) * 7.0).round() as usize]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_span_min_to_max() {
        assert_eq!(sparkline(&[1.0, 5.0, 9.0]), "▁▅█");
        assert_eq!(sparkline(&[3.0, 3.0]), "▁▁");
    }

    #[test]
    fn cells_cannot_break_the_table() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }
}
