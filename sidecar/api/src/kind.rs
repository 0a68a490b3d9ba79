//! The capture kinds: their names, their order, when they run and what they write.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What procshot can capture. The order of the variants is the order everything runs and
/// is listed in: the sampled kinds in the order a sample reads them, then the one-shot
/// kinds in the order they run after the last sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum CaptureKind {
    /// Every open fd with its kind, fdinfo and socket state (every sample).
    Fds,
    /// Every thread with its state, wait channel, syscall and kernel stack (every sample).
    Threads,
    /// Memory status, smaps rollup, largest mappings, cgroup memory (every sample).
    Memory,
    /// Go goroutines grouped by stack (every sample) and the heap profile (once), from
    /// the program's pprof endpoint.
    Goroutines,
    /// Native stacks of every thread, one thread stopped at a time (once, after the last
    /// sample).
    Stacks,
    /// An ELF core dump that gdb opens (once, last of all). It holds every secret of the
    /// process, so it is never in a default.
    Core,
}

/// When a capture kind runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// In every sample, so that its numbers form a trend.
    EverySample,
    /// Once, after the last sample (it stops the target, or is too large to repeat).
    Once,
}

impl CaptureKind {
    /// Every kind, in the order of the variants.
    pub const ALL: [CaptureKind; 6] = [
        Self::Fds,
        Self::Threads,
        Self::Memory,
        Self::Goroutines,
        Self::Stacks,
        Self::Core,
    ];

    /// What a capture takes when nobody says: the cheap `/proc` kinds.
    pub const DEFAULT: [CaptureKind; 3] = [Self::Fds, Self::Threads, Self::Memory];

    /// The name on the command line, in the manifest and in a DebugSession.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Fds => "fds",
            Self::Threads => "threads",
            Self::Memory => "memory",
            Self::Goroutines => "goroutines",
            Self::Stacks => "stacks",
            Self::Core => "core",
        }
    }

    /// When it runs.
    pub const fn schedule(self) -> Schedule {
        match self {
            Self::Fds | Self::Threads | Self::Memory | Self::Goroutines => Schedule::EverySample,
            Self::Stacks | Self::Core => Schedule::Once,
        }
    }

    /// Whether it runs in every sample.
    pub const fn is_sampled(self) -> bool {
        matches!(self.schedule(), Schedule::EverySample)
    }

    /// The files of the capture directory it may write, its main file first. A kind that
    /// fails part-way may write fewer (no `heap.pb.gz` when the endpoint failed; a core
    /// cut short is `core.partial.zst`).
    pub const fn files(self) -> &'static [&'static str] {
        match self {
            Self::Fds => &["fds.json"],
            Self::Threads => &["threads.json"],
            Self::Memory => &["memory.json"],
            Self::Goroutines => &["goroutines.json", "goroutines.txt", "heap.pb.gz"],
            Self::Stacks => &["stacks.json", "stacks.txt"],
            Self::Core => &["core.zst", "core.partial.zst"],
        }
    }

    /// Its main file (the first of [`files`](Self::files)).
    pub const fn file(self) -> &'static str {
        self.files()[0]
    }

    /// The names of every kind, comma-separated, for messages.
    pub fn names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }
}

impl fmt::Display for CaptureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a capture kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCaptureKind(pub String);

impl fmt::Display for UnknownCaptureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown capture {:?}: choose from {}",
            self.0,
            CaptureKind::names()
        )
    }
}

impl std::error::Error for UnknownCaptureKind {}

impl FromStr for CaptureKind {
    type Err = UnknownCaptureKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s.trim())
            .ok_or_else(|| UnknownCaptureKind(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_unknown_names_list_the_choices() {
        for kind in CaptureKind::ALL {
            assert_eq!(kind.to_string().parse::<CaptureKind>(), Ok(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::String(kind.name().into())
            );
        }
        assert_eq!(
            "stack".parse::<CaptureKind>().unwrap_err().to_string(),
            "unknown capture \"stack\": choose from fds, threads, memory, goroutines, stacks, core"
        );
    }

    #[test]
    fn the_order_is_sampled_kinds_first_then_one_shot_kinds() {
        let mut sorted = CaptureKind::ALL;
        sorted.sort();
        assert_eq!(sorted, CaptureKind::ALL);
        let first_once = CaptureKind::ALL
            .iter()
            .position(|k| !k.is_sampled())
            .unwrap();
        assert!(
            CaptureKind::ALL[..first_once]
                .iter()
                .all(|k| k.is_sampled())
        );
        assert!(
            CaptureKind::ALL[first_once..]
                .iter()
                .all(|k| !k.is_sampled())
        );
        assert!(!CaptureKind::Core.is_sampled(), "a core is taken once");
    }

    #[test]
    fn no_two_kinds_write_the_same_file() {
        let mut files: Vec<&str> = CaptureKind::ALL
            .iter()
            .flat_map(|k| k.files().iter().copied())
            .collect();
        let before = files.len();
        files.sort();
        files.dedup();
        assert_eq!(files.len(), before);
        assert_eq!(CaptureKind::Stacks.file(), "stacks.json");
    }
}
