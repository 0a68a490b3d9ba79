//! A container's log as lines of text: a kubelet CRI log file (chunks joined per stream up
//! to their `F`) or plain text (what `kubectl logs --previous` and the API's `pods/log`
//! return), told apart by its first lines. Everything in it is the target's output and
//! hostile: bytes that are not UTF-8 or are control characters become U+FFFD, lines are
//! cut at [`MAX_LINE_BYTES`], only the last [`MAX_LINES`] lines are kept, and what was lost
//! is counted in [`Damage`] so that a finding can say what the text did not carry.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::PostmortemError;
use super::cri::{self, Stream};

/// The longest line kept; the rest of a longer one is dropped (and counted).
pub const MAX_LINE_BYTES: usize = 64 << 10;
/// Lines kept: the last ones (a crash trace is at the end of the log).
pub const MAX_LINES: usize = 200_000;
/// Default for how much of a log file is read: its last 16 MiB (the kubelet rotates at
/// 10 MiB by default).
pub const DEFAULT_MAX_BYTES: u64 = 16 << 20;
/// Lines looked at to tell a CRI log from plain text.
const FORMAT_SAMPLE_LINES: usize = 64;

/// How the log was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Kubelet CRI log records (timestamp, stream, partial flag).
    Cri,
    /// Plain text, stdout and stderr merged.
    Plain,
}

/// One line of the container's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogLine {
    /// When its first chunk was read (CRI logs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<DateTime<Utc>>,
    /// Which output (CRI logs only; also absent for lines of a CRI file that are no record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<Stream>,
    /// The text, inert: no control characters but tabs.
    pub text: String,
}

/// What the log lost or held besides the container's text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Damage {
    /// Bytes of the file before what was read (only its end is read).
    pub bytes_not_read: u64,
    /// The text read starts inside a line (rotation, or a read of the file's end): that
    /// first piece was dropped.
    pub starts_mid_line: bool,
    /// Lines dropped from the start to keep [`MAX_LINES`].
    pub lines_dropped: u64,
    /// Lines cut at [`MAX_LINE_BYTES`].
    pub long_lines_cut: u64,
    /// Lines that are mostly bytes that are not text.
    pub binary_lines: u64,
    /// Lines of a CRI log that are not CRI records (kept as text without a stream).
    pub lines_not_cri: u64,
    /// Partial (`P`) chunks never ended by an `F` chunk of their stream (kept as lines).
    pub unfinished_lines: u64,
}

impl Damage {
    /// One sentence per kind of damage, for reports and findings.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.bytes_not_read > 0 {
            notes.push(format!(
                "only the end of the log was read: {} before it were not",
                crate::units::bytes(self.bytes_not_read)
            ));
        }
        if self.starts_mid_line {
            notes.push("the log starts inside a line (cut by rotation or by the read)".into());
        }
        let counted = [
            (
                self.lines_dropped,
                "early lines dropped to keep the last 200,000",
            ),
            (self.long_lines_cut, "lines longer than 64 KiB cut"),
            (self.binary_lines, "lines of binary noise"),
            (self.lines_not_cri, "lines that are not CRI records"),
            (self.unfinished_lines, "partial lines never finished"),
        ];
        for (count, what) in counted {
            if count > 0 {
                notes.push(format!("{} {what}", crate::units::count(count)));
            }
        }
        notes
    }
}

/// A container's log, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLog {
    /// How it was written.
    pub format: LogFormat,
    /// Its lines, oldest first.
    pub lines: Vec<LogLine>,
    /// What it lost.
    pub damage: Damage,
}

impl ContainerLog {
    /// Decodes a log's bytes. `starts_mid_line`: the bytes are not the start of the log and
    /// may begin inside a line, whose piece is then dropped.
    pub fn parse(bytes: &[u8], starts_mid_line: bool) -> Self {
        let mut damage = Damage::default();
        let mut raw: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
        if raw.last().is_some_and(|l| l.is_empty()) {
            raw.pop();
        }
        if starts_mid_line && !raw.is_empty() {
            raw.remove(0);
            damage.starts_mid_line = true;
        }
        let format = detect(&raw);
        let mut lines = Lines {
            kept: VecDeque::new(),
            damage,
        };
        match format {
            LogFormat::Cri => join_cri(&raw, &mut lines),
            LogFormat::Plain => {
                for line in raw {
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    let (text, cut) = take_line(line);
                    lines.push(None, None, text, cut);
                }
            }
        }
        Self {
            format,
            lines: lines.kept.into(),
            damage: lines.damage,
        }
    }
}

/// The end of a log file, as read: at most `max_bytes` of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogBytes {
    /// The bytes read (a gzip'd rotation's text, decompressed).
    pub bytes: Vec<u8>,
    /// Bytes of the log before them.
    pub bytes_not_read: u64,
    /// Whether they start inside a line.
    pub starts_mid_line: bool,
}

impl LogBytes {
    /// Reads the last `max_bytes` of a log file (a gzip'd rotation is decompressed, keeping
    /// the last `max_bytes` of its text).
    pub fn read(path: &Path, max_bytes: u64) -> Result<Self, PostmortemError> {
        let unreadable = |source: std::io::Error| PostmortemError::LogUnreadable {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(unreadable)?;
        let mut magic = [0u8; 2];
        let gzip = file.read(&mut magic).map_err(unreadable)? == 2 && magic == [0x1f, 0x8b];
        file.seek(SeekFrom::Start(0)).map_err(unreadable)?;
        let (bytes, skipped) = if gzip {
            tail_of(flate2::read::MultiGzDecoder::new(file), max_bytes).map_err(unreadable)?
        } else {
            let size = file.metadata().map_err(unreadable)?.len();
            // One byte more than asked, to see whether the part read starts a line.
            let start = size.saturating_sub(max_bytes.saturating_add(1));
            file.seek(SeekFrom::Start(start)).map_err(unreadable)?;
            let mut bytes = Vec::new();
            file.take(size - start)
                .read_to_end(&mut bytes)
                .map_err(unreadable)?;
            (bytes, start)
        };
        let (kept, bytes_not_read, starts_mid_line) = trim_to(&bytes, skipped, max_bytes);
        Ok(Self {
            bytes: kept.to_vec(),
            bytes_not_read,
            starts_mid_line,
        })
    }

    /// Decodes them.
    pub fn decode(&self) -> ContainerLog {
        let mut log = ContainerLog::parse(&self.bytes, self.starts_mid_line);
        log.damage.bytes_not_read = self.bytes_not_read;
        log
    }
}

/// Reads a stream to its end keeping at most `max_bytes + 1` of its last bytes; returns
/// them and how many bytes came before.
fn tail_of(mut reader: impl Read, max_bytes: u64) -> std::io::Result<(Vec<u8>, u64)> {
    let keep = usize::try_from(max_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    let mut bytes = Vec::new();
    let mut skipped = 0u64;
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        bytes.extend_from_slice(&chunk[..n]);
        if bytes.len() >= keep.saturating_mul(2) {
            let excess = bytes.len() - keep;
            bytes.drain(..excess);
            skipped += excess as u64;
        }
    }
    if bytes.len() > keep {
        let excess = bytes.len() - keep;
        bytes.drain(..excess);
        skipped += excess as u64;
    }
    Ok((bytes, skipped))
}

/// Given the end of a log read with one extra leading byte when something came before,
/// returns the last `max_bytes`, the bytes before them, and whether they start mid-line.
fn trim_to(bytes: &[u8], skipped: u64, max_bytes: u64) -> (&[u8], u64, bool) {
    let max = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    if bytes.len() <= max {
        return (bytes, skipped, false);
    }
    let cut = bytes.len() - max;
    let starts_mid_line = bytes[cut - 1] != b'\n';
    (&bytes[cut..], skipped + cut as u64, starts_mid_line)
}

/// CRI when most of the first lines are CRI records.
fn detect(raw: &[&[u8]]) -> LogFormat {
    let sample: Vec<&&[u8]> = raw
        .iter()
        .filter(|l| !l.is_empty())
        .take(FORMAT_SAMPLE_LINES)
        .collect();
    let records = sample.iter().filter(|l| cri::parse(l).is_some()).count();
    if !sample.is_empty() && records * 2 > sample.len() {
        LogFormat::Cri
    } else {
        LogFormat::Plain
    }
}

/// A line being joined from `P` chunks of one stream.
struct Pending {
    time: DateTime<Utc>,
    bytes: Vec<u8>,
    cut: bool,
}

fn join_cri(raw: &[&[u8]], lines: &mut Lines) {
    // One line in progress per stream: the runtime writes each stream's chunks in order,
    // but the two streams' records interleave.
    let mut pending: [Option<Pending>; 2] = [None, None];
    for line in raw {
        let Some(record) = cri::parse(line) else {
            lines.damage.lines_not_cri += 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let (text, cut) = take_line(line);
            lines.push(None, None, text, cut);
            continue;
        };
        let slot = &mut pending[record.stream as usize];
        let current = slot.get_or_insert_with(|| Pending {
            time: record.time,
            bytes: Vec::new(),
            cut: false,
        });
        let room = MAX_LINE_BYTES - current.bytes.len();
        if record.text.len() > room {
            current.cut = true;
        }
        current
            .bytes
            .extend_from_slice(&record.text[..record.text.len().min(room)]);
        if !record.partial {
            let done = slot.take().expect("filled above");
            let cut = done.cut;
            lines.push(Some(done.time), Some(record.stream), &done.bytes, cut);
        }
    }
    for (stream, slot) in [Stream::Stdout, Stream::Stderr].into_iter().zip(pending) {
        if let Some(unfinished) = slot {
            lines.damage.unfinished_lines += 1;
            lines.push(
                Some(unfinished.time),
                Some(stream),
                &unfinished.bytes,
                unfinished.cut,
            );
        }
    }
}

/// At most [`MAX_LINE_BYTES`] of `line`, and whether it was cut.
fn take_line(line: &[u8]) -> (&[u8], bool) {
    if line.len() > MAX_LINE_BYTES {
        (&line[..MAX_LINE_BYTES], true)
    } else {
        (line, false)
    }
}

/// The lines kept, bounded to [`MAX_LINES`].
struct Lines {
    kept: VecDeque<LogLine>,
    damage: Damage,
}

impl Lines {
    fn push(
        &mut self,
        time: Option<DateTime<Utc>>,
        stream: Option<Stream>,
        text: &[u8],
        cut: bool,
    ) {
        if cut {
            self.damage.long_lines_cut += 1;
        }
        let (text, binary) = inert_text(text);
        if binary {
            self.damage.binary_lines += 1;
        }
        if self.kept.len() == MAX_LINES {
            self.kept.pop_front();
            self.damage.lines_dropped += 1;
        }
        self.kept.push_back(LogLine { time, stream, text });
    }
}

/// The bytes as text that cannot act on a terminal: invalid UTF-8 and control characters
/// (but tabs, which Go traces indent with) become U+FFFD. Also says whether the line is
/// mostly such bytes (binary noise).
fn inert_text(bytes: &[u8]) -> (String, bool) {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    let (mut total, mut replaced) = (0usize, 0usize);
    for c in text.chars() {
        total += 1;
        let control = (c.is_control() && c != '\t') || c == '\u{FFFD}';
        if control {
            replaced += 1;
            out.push('\u{FFFD}');
        } else {
            out.push(c);
        }
    }
    // Noise is mostly unprintable; a stray replacement character in a sentence is not.
    let binary = replaced >= 4 && replaced * 4 >= total;
    (out, binary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(log: &ContainerLog) -> Vec<&str> {
        log.lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn cri_chunks_join_per_stream() {
        let log = ContainerLog::parse(
            b"2024-03-01T10:00:00.000000001Z stdout P first half \n\
              2024-03-01T10:00:00.000000002Z stderr F panic: boom\n\
              2024-03-01T10:00:00.000000003Z stdout P and \n\
              2024-03-01T10:00:00.000000004Z stdout F the rest\n\
              2024-03-01T10:00:00.000000005Z stdout F\n",
            false,
        );
        assert_eq!(log.format, LogFormat::Cri);
        assert_eq!(texts(&log), ["panic: boom", "first half and the rest", ""]);
        assert_eq!(log.lines[1].stream, Some(Stream::Stdout));
        // A joined line has the time of its first chunk.
        assert_eq!(log.lines[1].time.unwrap().timestamp_subsec_nanos(), 1);
        assert_eq!(log.damage, Damage::default());
    }

    #[test]
    fn plain_text_is_detected_and_kept_with_tabs() {
        let log = ContainerLog::parse(
            b"panic: boom\r\n\ngoroutine 1 [running]:\n\tmain.go:3\n",
            false,
        );
        assert_eq!(log.format, LogFormat::Plain);
        assert_eq!(
            texts(&log),
            ["panic: boom", "", "goroutine 1 [running]:", "\tmain.go:3"]
        );
        assert!(
            log.lines
                .iter()
                .all(|l| l.time.is_none() && l.stream.is_none())
        );
    }

    #[test]
    fn noise_and_control_characters_become_inert() {
        let mut bytes = b"2024-03-01T10:00:00Z stdout F \x1b[31mred\x1b[0m\n".to_vec();
        bytes.extend_from_slice(b"\x00\x01\x02\xff\xfe\x80\x81garbage\xc3\n");
        bytes.extend_from_slice(b"2024-03-01T10:00:01Z stderr F ok\n");
        bytes.extend_from_slice(b"2024-03-01T10:00:02Z stderr P never finished");
        let log = ContainerLog::parse(&bytes, false);
        assert_eq!(log.format, LogFormat::Cri);
        assert_eq!(log.lines[0].text, "\u{FFFD}[31mred\u{FFFD}[0m");
        assert!(!log.lines[1].text.chars().any(|c| c.is_control()));
        assert_eq!(log.damage.lines_not_cri, 1);
        assert_eq!(log.damage.binary_lines, 1);
        assert_eq!(log.damage.unfinished_lines, 1);
        assert_eq!(log.lines.last().unwrap().text, "never finished");
    }

    #[test]
    fn a_cut_start_drops_its_first_piece() {
        let log = ContainerLog::parse(
            b"dout F tail of a line\n2024-03-01T10:00:00Z stdout F whole\n",
            true,
        );
        assert_eq!(texts(&log), ["whole"]);
        assert!(log.damage.starts_mid_line);
    }

    #[test]
    fn huge_lines_are_cut_and_counted() {
        let chunk = "x".repeat(16 << 10);
        let mut bytes = String::new();
        for _ in 0..10 {
            bytes.push_str(&format!("2024-03-01T10:00:00Z stdout P {chunk}\n"));
        }
        bytes.push_str("2024-03-01T10:00:00Z stdout F end\n");
        let plain = "y".repeat(MAX_LINE_BYTES * 3);
        bytes.push_str(&format!("{plain}\n"));
        let log = ContainerLog::parse(bytes.as_bytes(), false);
        assert_eq!(log.lines.len(), 2);
        assert_eq!(log.lines[0].text.len(), MAX_LINE_BYTES);
        assert_eq!(log.lines[1].text.len(), MAX_LINE_BYTES);
        assert_eq!(log.damage.long_lines_cut, 2);
    }

    #[test]
    fn only_the_last_lines_are_kept() {
        let bytes = "line\n".repeat(MAX_LINES + 10);
        let log = ContainerLog::parse(bytes.as_bytes(), false);
        assert_eq!(log.lines.len(), MAX_LINES);
        assert_eq!(log.damage.lines_dropped, 10);
    }

    #[test]
    fn the_tail_of_a_stream_is_bounded() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let (tail, skipped) = tail_of(&data[..], 1000).unwrap();
        assert_eq!(tail.len(), 1001);
        assert_eq!(skipped, 100_000 - 1001);
        assert_eq!(tail[..], data[data.len() - 1001..]);
        let (bytes, skipped, mid) = trim_to(b"ab\ncd", 10, 2);
        assert_eq!((bytes, skipped, mid), (b"cd".as_slice(), 13, false));
        let (_, _, mid) = trim_to(b"abcd", 0, 2);
        assert!(mid);
    }
}
