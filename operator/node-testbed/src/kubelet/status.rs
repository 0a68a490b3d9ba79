//! From what the runtime says of a container to the container status the kubelet writes
//! into the Pod: its state, exit code, reason, and termination message, read the way the
//! kubelet reads it (`kuberuntime_container.go`): the last 4 KiB of the container's
//! termination-message file; with `FallbackToLogsOnError` and a non-zero exit, when that
//! file is empty, the last 80 lines (at most 2 KiB) of its CRI log; appended to the
//! runtime's own message after `": "`.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use k8s_cri::v1::ContainerState as CriState;
use k8s_openapi::api::core::v1::{ContainerState, ContainerStateRunning, ContainerStateTerminated};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The kubelet keeps at most this much of a termination-message file.
pub const MAX_TERMINATION_MESSAGE: u64 = 4096;
/// Lines of the log the kubelet falls back to.
const FALLBACK_LINES: usize = 80;
/// Bytes of the log the kubelet falls back to.
const FALLBACK_BYTES: usize = 2048;

/// A CRI timestamp (nanoseconds since the epoch) as a Kubernetes time; `None` for 0.
pub fn time(nanos: i64) -> Option<Time> {
    (nanos > 0)
        .then(|| k8s_openapi::jiff::Timestamp::from_nanosecond(i128::from(nanos)).ok())
        .flatten()
        .map(Time)
}

/// What the kubelet makes of a CRI container status that is not `EXITED`: running (or
/// created, which the stand-in starts at once).
pub fn running(status: &k8s_cri::v1::ContainerStatus) -> Option<ContainerState> {
    (status.state == i32::from(CriState::ContainerRunning)).then(|| ContainerState {
        running: Some(ContainerStateRunning {
            started_at: time(status.started_at),
        }),
        ..Default::default()
    })
}

/// The terminated state of an exited container, with its termination message.
pub fn terminated(
    status: &k8s_cri::v1::ContainerStatus,
    message_file: Option<&Path>,
    fallback_to_logs: bool,
    log_file: &Path,
) -> ContainerState {
    let fallback = fallback_to_logs && status.exit_code != 0;
    let mut from_file = message_file.map(read_tail).unwrap_or_default();
    if fallback && from_file.is_empty() {
        from_file = last_log_lines(log_file);
    }
    let mut message = status.message.clone();
    if !from_file.is_empty() {
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&from_file);
    }
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: status.exit_code,
            reason: Some(status.reason.clone()).filter(|r| !r.is_empty()),
            message: Some(message).filter(|m| !m.is_empty()),
            started_at: time(status.started_at),
            finished_at: time(status.finished_at),
            container_id: Some(format!("containerd://{}", status.id)),
            signal: None,
        }),
        ..Default::default()
    }
}

/// The last [`MAX_TERMINATION_MESSAGE`] bytes of `path` (empty when it is missing).
fn read_tail(path: &Path) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(MAX_TERMINATION_MESSAGE)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The contents of the last lines of a CRI log file (`TIMESTAMP STREAM TAG CONTENT`),
/// joined, at most [`FALLBACK_BYTES`] from the end.
pub fn last_log_lines(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<String> = log_contents(&text);
    let tail = lines[lines.len().saturating_sub(FALLBACK_LINES)..].join("\n");
    let start = tail.len().saturating_sub(FALLBACK_BYTES);
    let start = (start..=tail.len())
        .find(|&i| tail.is_char_boundary(i))
        .unwrap_or(tail.len());
    tail[start..].to_string()
}

/// The lines a container wrote, from its CRI log (partial lines, tagged `P`, joined to
/// the next one).
pub fn log_contents(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut partial = String::new();
    for line in text.lines() {
        let mut parts = line.splitn(4, ' ');
        let (Some(_time), Some(_stream), Some(tag)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        partial.push_str(parts.next().unwrap_or_default());
        if tag != "P" {
            lines.push(std::mem::take(&mut partial));
        }
    }
    if !partial.is_empty() {
        lines.push(partial);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_log_lines_are_joined_from_partials() {
        let log = "2026-01-01T00:00:00.1Z stderr P hel\n\
                   2026-01-01T00:00:00.2Z stderr F lo\n\
                   2026-01-01T00:00:00.3Z stdout F world\n";
        assert_eq!(log_contents(log), vec!["hello", "world"]);
    }

    #[test]
    fn the_termination_message_is_the_end_of_the_file_and_falls_back_to_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("msg");
        let log = dir.path().join("0.log");
        std::fs::write(&log, "2026-01-01T00:00:00Z stderr F it broke\n").unwrap();
        let status = k8s_cri::v1::ContainerStatus {
            id: "abc".into(),
            exit_code: 3,
            reason: "Error".into(),
            ..Default::default()
        };
        std::fs::write(&file, "").unwrap();
        let state = terminated(&status, Some(&file), true, &log);
        let t = state.terminated.unwrap();
        assert_eq!(t.message.as_deref(), Some("it broke"));
        assert_eq!(t.container_id.as_deref(), Some("containerd://abc"));

        std::fs::write(&file, format!("{}END", "x".repeat(5000))).unwrap();
        let state = terminated(&status, Some(&file), true, &log);
        let message = state.terminated.unwrap().message.unwrap();
        assert_eq!(message.len(), MAX_TERMINATION_MESSAGE as usize);
        assert!(message.ends_with("END"));

        let state = terminated(&status, Some(&dir.path().join("missing")), false, &log);
        assert_eq!(state.terminated.unwrap().message, None);
    }
}
