//! What the plugin prints for people: live progress, findings, tables, descriptions.
//! Everything shown comes through [`inert`], since findings quote what the target
//! controls (thread names, file paths, peers) and a terminal must never receive its
//! escape sequences. Colour only on a terminal, and never with `NO_COLOR`.

pub mod describe;
pub mod findings;
pub mod progress;
pub mod table;

use std::io::IsTerminal;

use anstyle::{AnsiColor, Style};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use procshot_operator::api::{DebugSession, Phase, TargetSpec};

use crate::selector;

/// Whether output to this stream gets colour: a terminal, and no `NO_COLOR`.
pub fn wants_color(stream: &impl IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Colours on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paint {
    /// Whether to colour.
    pub color: bool,
}

impl Paint {
    /// `text` in `style`, when colouring.
    pub fn paint(self, style: Style, text: &str) -> String {
        if self.color {
            format!("{style}{text}{style:#}")
        } else {
            text.to_string()
        }
    }

    /// A severity, upper case, padded to 8 and coloured by how serious it is.
    pub fn severity(self, severity: Severity) -> String {
        let text = format!("{:<8}", severity.name().to_uppercase());
        let style = match severity {
            Severity::Critical => Style::new().bold().fg_color(Some(AnsiColor::Red.into())),
            Severity::Warning => Style::new().fg_color(Some(AnsiColor::Yellow.into())),
            Severity::Info => Style::new().fg_color(Some(AnsiColor::Cyan.into())),
        };
        self.paint(style, &text)
    }

    /// A phase, coloured: green when it succeeded, red when it failed.
    pub fn phase(self, phase: Phase) -> String {
        let text = phase_name(phase);
        match phase {
            Phase::Succeeded => {
                self.paint(Style::new().fg_color(Some(AnsiColor::Green.into())), text)
            }
            Phase::Failed => self.paint(
                Style::new().bold().fg_color(Some(AnsiColor::Red.into())),
                text,
            ),
            Phase::Pending | Phase::Capturing => text.to_string(),
        }
    }

    /// Dimmed text (URLs, hints).
    pub fn dim(self, text: &str) -> String {
        self.paint(Style::new().dimmed(), text)
    }
}

pub use procshot_api::Severity;

/// A phase's name as the status spells it.
pub fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Pending => "Pending",
        Phase::Capturing => "Capturing",
        Phase::Succeeded => "Succeeded",
        Phase::Failed => "Failed",
    }
}

/// `text` safe for a terminal: control characters (escape sequences, carriage returns,
/// newlines) are shown escaped (`\u{1b}`) instead of acted on.
pub fn inert(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The session's phase, `Pending` before the operator wrote any status.
pub fn phase_of(session: &DebugSession) -> Phase {
    session.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

/// `namespace/name`.
pub fn qualified_name(session: &DebugSession) -> String {
    format!(
        "{}/{}",
        inert(session.metadata.namespace.as_deref().unwrap_or_default()),
        inert(session.metadata.name.as_deref().unwrap_or_default())
    )
}

/// The target as a person reads it: `pod api-1`, `pods app=api (up to 3)`, with the
/// container.
pub fn target_text(target: &TargetSpec) -> String {
    let mut text = match (&target.pod, &target.selector) {
        (Some(pod), _) => format!("pod {}", inert(pod)),
        (None, Some(selector)) => {
            let pods = match target.max_pods {
                Some(n) if n > 1 => format!(" (up to {n})"),
                _ => String::new(),
            };
            format!("pods {}{pods}", inert(&selector::render(selector)))
        }
        (None, None) => "no target".to_string(),
    };
    if let Some(container) = &target.container {
        text.push_str(&format!(" (container {})", inert(container)));
    }
    text
}

/// How long ago, as kubectl's AGE column prints it (`45s`, `12m`, `3h`, `5d`).
pub fn age(time: Option<&Time>, now: Timestamp) -> String {
    let Some(time) = time else {
        return "<unknown>".into();
    };
    let seconds = (now.as_second() - time.0.as_second()).max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 * 2 => format!("{}m", s / 60),
        s if s < 86_400 * 2 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// A size in bytes, in powers of 1024 (`512 B`, `3.4 KiB`, `12.0 MiB`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Rows as aligned columns, two spaces apart (the last column is not padded).
pub fn columns(rows: &[Vec<String>]) -> Vec<String> {
    let width = console::measure_text_width;
    let count = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..count)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| width(c))
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if i + 1 < row.len() {
                    line.push_str(&" ".repeat(widths[i] - width(cell) + 2));
                }
            }
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_acted_on() {
        assert_eq!(inert("worker-1"), "worker-1");
        assert_eq!(
            inert("evil\u{1b}[2J\rname\n"),
            "evil\\u{1b}[2J\\u{d}name\\u{a}"
        );
    }

    #[test]
    fn columns_align_coloured_cells_by_their_printed_width() {
        let paint = Paint { color: true };
        let rows = vec![
            vec![
                paint.severity(Severity::Critical),
                "FD_GROWTH".into(),
                "x".into(),
            ],
            vec![
                paint.severity(Severity::Info),
                "SOCKET_CLOSE_WAIT".into(),
                "y".into(),
            ],
        ];
        let lines: Vec<String> = columns(&rows)
            .iter()
            .map(|l| console::strip_ansi_codes(l).into_owned())
            .collect();
        assert_eq!(
            lines,
            [
                "CRITICAL  FD_GROWTH          x",
                "INFO      SOCKET_CLOSE_WAIT  y"
            ]
        );
    }

    #[test]
    fn sizes_and_ages_read_like_kubectl() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 + 400), "3.4 KiB");
        assert_eq!(bytes(12 << 20), "12.0 MiB");
        let now = Timestamp::now();
        let ago = |s: i64| Time(Timestamp::from_second(now.as_second() - s).unwrap());
        assert_eq!(age(Some(&ago(45)), now), "45s");
        assert_eq!(age(Some(&ago(720)), now), "12m");
        assert_eq!(age(Some(&ago(3 * 3600)), now), "3h");
        assert_eq!(age(Some(&ago(5 * 86400)), now), "5d");
    }
}
