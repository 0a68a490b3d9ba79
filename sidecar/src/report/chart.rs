//! Inline SVG line charts for the HTML report (no scripts, no network).

use std::fmt::Write;

use super::Chart;
use crate::units;

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 34.0;
const COLORS: [&str; 6] = [
    "#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2",
];

/// Renders a chart as an `<svg>` element with a legend.
pub(super) fn svg(chart: &Chart) -> String {
    let x_max = chart.x.iter().cloned().fold(0.0, f64::max).max(1e-9);
    let mut y_max = chart
        .series
        .iter()
        .flat_map(|(_, v)| v.iter().cloned())
        .fold(0.0, f64::max);
    if let Some((_, limit)) = &chart.limit {
        y_max = y_max.max(*limit);
    }
    // Four gridline steps; for counts, whole-number steps so that labels never repeat.
    let step = if chart.bytes {
        (y_max * 1.08 / 4.0).max(1.0)
    } else {
        (y_max * 1.08 / 4.0).ceil().max(1.0)
    };
    let y_max = step * 4.0;
    let px = |x: f64| LEFT + x / x_max * (WIDTH - LEFT - RIGHT);
    let py = |y: f64| TOP + (1.0 - y / y_max) * (HEIGHT - TOP - BOTTOM);
    let label = |v: f64| {
        if chart.bytes {
            units::bytes(v.max(0.0) as u64)
        } else {
            units::count(v.max(0.0).round() as u64)
        }
    };

    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}">"#,
        html_escape::encode_double_quoted_attribute(&chart.title)
    );
    for tick in 0..=4 {
        let value = step * f64::from(tick);
        let y = py(value);
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#e5e7eb"/><text x="{}" y="{:.1}" text-anchor="end" class="axis">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            label(value)
        );
    }
    for x in &chart.x {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="middle" class="axis">+{}</text>"#,
            px(*x),
            HEIGHT - 12.0,
            units::seconds(*x)
        );
    }
    if let Some((name, limit)) = &chart.limit {
        let y = py(*limit);
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#991b1b" stroke-dasharray="6 4"/><text x="{}" y="{:.1}" text-anchor="end" class="limit">{} {}</text>"##,
            WIDTH - RIGHT,
            WIDTH - RIGHT,
            y - 4.0,
            html_escape::encode_text(name),
            label(*limit)
        );
    }
    for (i, (name, values)) in chart.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<String> = chart
            .x
            .iter()
            .zip(values)
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
            .collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"><title>{}</title></polyline>"#,
            points.join(" "),
            html_escape::encode_text(name)
        );
        for (x, y) in chart.x.iter().zip(values) {
            let _ = write!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"><title>{}: {} at +{}</title></circle>"#,
                px(*x),
                py(*y),
                html_escape::encode_text(name),
                label(*y),
                units::seconds(*x)
            );
        }
    }
    out.push_str(r#"</svg><div class="legend">"#);
    for (i, (name, _)) in chart.series.iter().enumerate() {
        let _ = write!(
            out,
            r#"<span><i style="background:{}"></i>{}</span>"#,
            COLORS[i % COLORS.len()],
            html_escape::encode_text(name)
        );
    }
    out.push_str("</div>");
    out
}
