//! How the container ended, as its runtime and the kubelet record it (the pod status's
//! `lastState.terminated`: exit code, signal, reason, finishedAt), the memory facts that tell
//! an OOM kill (the cgroup's limit and `oom_kill` counter), and the last memory sample an
//! armed watch took before the end. All optional: a post-mortem of a bare log has none.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What is known about the container's end.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerExit {
    /// The exit code (128 + N for a process killed by signal N, as runtimes report it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that killed it, when the runtime reports one apart from the exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// The kubelet's reason: `OOMKilled`, `Error`, `Completed`, `ContainerCannotRun`, ….
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// The container's memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_bytes: Option<u64>,
    /// The cgroup's OOM kill counter (`memory.events` `oom_kill`, v1 `memory.oom_control`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_kills: Option<OomKills>,
}

/// The cgroup's OOM kill counter before the container ran (or was last seen alive) and
/// after it ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OomKills {
    /// Before: 0 for a container's own fresh cgroup.
    pub before: u64,
    /// After the end.
    pub after: u64,
}

impl OomKills {
    /// Whether the kernel OOM-killed something in the cgroup meanwhile.
    pub fn grew(self) -> bool {
        self.after > self.before
    }
}

/// The last memory sample an armed watch took before the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastMemorySample {
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// The cgroup's working set (usage minus inactive file cache, as the kubelet counts it).
    pub working_set_bytes: u64,
    /// The limit then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_bytes: Option<u64>,
}

/// The exit code of a process killed by SIGKILL (an OOM kill, or a kill after a grace period).
pub const SIGKILL_EXIT_CODE: i32 = 128 + libc::SIGKILL;

impl ContainerExit {
    /// The signal that ended the process: the reported one, else from an exit code of
    /// 129–159 (128 + N).
    pub fn ending_signal(&self) -> Option<i32> {
        self.signal.filter(|s| *s > 0).or_else(|| {
            self.exit_code
                .filter(|c| (129..=128 + 31).contains(c))
                .map(|c| c - 128)
        })
    }

    /// Whether the kubelet named the end an OOM kill.
    pub fn reason_is_oom(&self) -> bool {
        self.reason
            .as_deref()
            .is_some_and(|r| r.eq_ignore_ascii_case("OOMKilled"))
    }

    /// Whether the end was an OOM kill: the kubelet's reason says so, or the process died of
    /// SIGKILL while the cgroup's OOM kill counter grew.
    pub fn oom_killed(&self) -> bool {
        self.reason_is_oom()
            || (self.ending_signal() == Some(libc::SIGKILL)
                && self.oom_kills.is_some_and(OomKills::grew))
    }

    /// Whether anything says how it ended.
    pub fn is_known(&self) -> bool {
        self.exit_code.is_some() || self.ending_signal().is_some() || self.reason.is_some()
    }

    /// `exit code 137`, `exit code 137, reason OOMKilled`, `reason Error`, or `None`.
    pub fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(code) = self.exit_code {
            parts.push(format!("exit code {code}"));
        }
        if self.signal.is_some_and(|s| s > 0) {
            parts.push(format!("signal {}", signal_name(self.signal.unwrap_or(0))));
        }
        if let Some(reason) = &self.reason {
            parts.push(format!("reason {reason}"));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// `SIGKILL`, or `signal 42` for one without a name here.
pub fn signal_name(signal: i32) -> String {
    match nix::sys::signal::Signal::try_from(signal) {
        Ok(signal) => signal.as_str().to_string(),
        Err(_) => format!("signal {signal}"),
    }
}

/// Parses `--signal`: a number (`9`) or a name (`KILL`, `SIGKILL`, any case).
pub fn parse_signal(text: &str) -> Result<i32, String> {
    let text = text.trim();
    if let Ok(number) = text.parse::<i32>() {
        return match nix::sys::signal::Signal::try_from(number) {
            Ok(_) => Ok(number),
            Err(_) => Err(format!("{number} is not a signal number (1–31)")),
        };
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| format!("{text} is not a signal: give a number (9) or a name (KILL, SIGTERM)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oom_kill_needs_the_reason_or_a_grown_counter() {
        let mut exit = ContainerExit {
            exit_code: Some(137),
            ..ContainerExit::default()
        };
        assert_eq!(exit.ending_signal(), Some(libc::SIGKILL));
        assert!(!exit.oom_killed());
        exit.oom_kills = Some(OomKills {
            before: 2,
            after: 2,
        });
        assert!(!exit.oom_killed());
        exit.oom_kills = Some(OomKills {
            before: 2,
            after: 3,
        });
        assert!(exit.oom_killed());
        let by_reason = ContainerExit {
            reason: Some("OOMKilled".into()),
            ..ContainerExit::default()
        };
        assert!(by_reason.oom_killed());
        // A grown counter with another signal is a child's OOM kill, not the container's end.
        exit.exit_code = Some(143);
        assert!(!exit.oom_killed());
    }

    #[test]
    fn signals_by_number_and_name() {
        assert_eq!(parse_signal("9"), Ok(9));
        assert_eq!(parse_signal("kill"), Ok(9));
        assert_eq!(parse_signal("SIGTERM"), Ok(15));
        assert!(parse_signal("SIGNOPE").is_err());
        assert!(parse_signal("99").is_err());
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(99), "signal 99");
        let exit = ContainerExit {
            exit_code: Some(2),
            ..ContainerExit::default()
        };
        assert_eq!(exit.ending_signal(), None);
        assert_eq!(exit.describe().as_deref(), Some("exit code 2"));
    }
}
