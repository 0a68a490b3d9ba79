//! One record of a kubelet CRI log file, as containerd and CRI-O write them under
//! `/var/log/pods/…/<restartCount>.log`: `<RFC3339Nano> <stdout|stderr> <P|F>[:tags] <text>`.
//! `P` marks a partial chunk of a longer line (containerd splits lines over 16 KiB), `F` the
//! chunk that ends it. The grammar follows the kubelet's own reader (`parseCRILog`): tags
//! after a `:` are ignored, and a record with nothing after its tag has empty text.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Which output of the container a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error (where Go, Rust, Java, Python and Node.js print their crash traces).
    Stderr,
}

impl Stream {
    /// `stdout` or `stderr`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// One record, borrowed from the file's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// When the runtime read the chunk from the container.
    pub time: DateTime<Utc>,
    /// Which output.
    pub stream: Stream,
    /// Whether a later chunk of the same stream continues this line (`P`).
    pub partial: bool,
    /// The chunk, without the record's newline.
    pub text: &'a [u8],
}

/// Parses one line of a CRI log file (without its newline); `None` when it is not a record.
pub fn parse(line: &[u8]) -> Option<Record<'_>> {
    let (time, rest) = split_field(line)?;
    let time = std::str::from_utf8(time).ok()?;
    // RFC3339Nano: at least "2006-01-02T15:04:05Z"; refuse anything shorter cheaply.
    if time.len() < 20 || time.as_bytes()[4] != b'-' {
        return None;
    }
    let time = DateTime::parse_from_rfc3339(time).ok()?.with_timezone(&Utc);
    let (stream, rest) = split_field(rest)?;
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let (tags, text) = match split_field(rest) {
        Some((tags, text)) => (tags, text),
        // A record whose text is empty may lack the space after its tag.
        None => (rest, &rest[rest.len()..]),
    };
    let tag = tags.split(|&b| b == b':').next().unwrap_or_default();
    let partial = match tag {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    Some(Record {
        time,
        stream,
        partial,
        text,
    })
}

/// `"a b c"` → (`a`, `b c`).
fn split_field(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = bytes.iter().position(|&b| b == b' ')?;
    Some((&bytes[..space], &bytes[space + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_and_partial_records_are_read() {
        let record = parse(b"2024-03-01T10:15:02.123456789Z stderr F panic: boom").unwrap();
        assert_eq!(record.stream, Stream::Stderr);
        assert!(!record.partial);
        assert_eq!(record.text, b"panic: boom");
        assert_eq!(
            record
                .time
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            "2024-03-01T10:15:02.123456789Z"
        );
        let record = parse(b"2024-03-01T10:15:02+02:00 stdout P:x,y  two spaces").unwrap();
        assert!(record.partial);
        assert_eq!(record.text, b" two spaces");
        assert_eq!(record.time.to_rfc3339(), "2024-03-01T08:15:02+00:00");
    }

    #[test]
    fn empty_text_is_a_record() {
        assert_eq!(
            parse(b"2024-03-01T10:15:02Z stdout F").unwrap().text,
            b"".as_slice()
        );
        assert_eq!(
            parse(b"2024-03-01T10:15:02Z stdout F ").unwrap().text,
            b"".as_slice()
        );
    }

    #[test]
    fn other_lines_are_not_records() {
        for line in [
            b"panic: boom".as_slice(),
            b"",
            b"2024-03-01T10:15:02Z",
            b"2024-03-01T10:15:02Z stdin F text",
            b"2024-03-01T10:15:02Z stdout X text",
            b"yesterday stdout F text",
            b"2024-13-01T10:15:02Z stdout F text",
            b"\xff\xfe\x00 stdout F text",
            b"goroutine 1 [running]:",
        ] {
            assert_eq!(parse(line), None, "{:?}", String::from_utf8_lossy(line));
        }
    }
}
