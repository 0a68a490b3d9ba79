//! How serious a finding is, and its stable code.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How serious a finding is; ordered, so that the most serious sorts last
/// (`Critical > Warning > Info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; not a problem by itself.
    Info,
    /// Likely a problem.
    Warning,
    /// A problem that will hurt soon (limit almost reached, OOM kills).
    Critical,
}

impl Severity {
    /// `info`, `warning`, `critical`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

impl std::str::FromStr for Severity {
    type Err = String;

    /// `info`, `warning` or `critical`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [Self::Info, Self::Warning, Self::Critical]
            .into_iter()
            .find(|s| s.name() == text)
            .ok_or_else(|| format!("unknown severity {text:?}: info, warning or critical"))
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Declares the finding codes once: the variant, its stable string and what it means.
macro_rules! finding_codes {
    ($($(#[$doc:meta])* $variant:ident => $code:literal,)+) => {
        /// The stable code of a finding, serialized as its `SCREAMING_SNAKE_CASE` string.
        ///
        /// A code this build does not know (written by a newer procshot) reads as
        /// [`FindingCode::Other`] instead of failing the whole summary: an operator and
        /// its agent image are upgraded separately.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum FindingCode {
            $($(#[$doc])* $variant,)+
            /// A code from a newer procshot, kept as written.
            Other(String),
        }

        impl FindingCode {
            /// Every code this build knows.
            pub const KNOWN: &'static [FindingCode] = &[$(Self::$variant,)+];

            /// The stable string (`FD_GROWTH`).
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $code,)+
                    Self::Other(code) => code,
                }
            }

            /// The code for `text`; an unknown one is [`FindingCode::Other`].
            pub fn parse(text: &str) -> Self {
                match text {
                    $($code => Self::$variant,)+
                    other => Self::Other(other.to_string()),
                }
            }
        }
    };
}

finding_codes! {
    /// Open fds at or above a share of the soft `RLIMIT_NOFILE`.
    FdLimitNear => "FD_LIMIT_NEAR",
    /// A kind of fd grows across the samples.
    FdGrowth => "FD_GROWTH",
    /// Sockets whose peer closed and that the process never closed.
    SocketCloseWait => "SOCKET_CLOSE_WAIT",
    /// The thread count grows across the samples.
    ThreadGrowth => "THREAD_GROWTH",
    /// Resident memory grows across the samples.
    RssGrowth => "RSS_GROWTH",
    /// The cgroup's working set is near its memory limit.
    CgroupMemoryNearLimit => "CGROUP_MEMORY_NEAR_LIMIT",
    /// The cgroup recorded OOM kills.
    CgroupOomKills => "CGROUP_OOM_KILLS",
    /// The goroutines of one function grow across the samples.
    GoroutineGrowth => "GOROUTINE_GROWTH",
    /// Many goroutines wait at the same site for the whole capture.
    GoroutinesBlocked => "GOROUTINES_BLOCKED",
    /// Goroutines read from memory whose reads never agreed, left out of the counts.
    GoroutinesInconsistent => "GOROUTINES_INCONSISTENT",
    /// Post-mortem: the log's last crash trace is a Go `panic:`.
    GoPanic => "GO_PANIC",
    /// Post-mortem: a Go `fatal error:` (or the Go runtime dying on a signal with a trace).
    GoFatalError => "GO_FATAL_ERROR",
    /// Post-mortem: a crash trace of another runtime (Rust, Java, Python, Node.js), or a
    /// Go trace whose first line is not in the log.
    CrashTrace => "CRASH_TRACE",
    /// Post-mortem: the kernel's OOM killer ended the container.
    OomKilled => "OOM_KILLED",
    /// Post-mortem: a signal ended the container, and no trace explains it.
    ExitSignal => "EXIT_SIGNAL",
    /// Post-mortem: a non-zero exit code, and no trace explains it.
    ExitError => "EXIT_ERROR",
}

impl fmt::Display for FindingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A code equals its stable string (`FindingCode::FdGrowth == "FD_GROWTH"`).
impl PartialEq<&str> for FindingCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for FindingCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FindingCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(Self::parse(&text))
    }
}

#[cfg(feature = "schemars")]
impl schemars::JsonSchema for FindingCode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "FindingCode".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "Stable code (`FD_GROWTH`, `SOCKET_CLOSE_WAIT`, …)."
        })
    }

    fn inline_schema() -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_order_and_serialize_to_their_names() {
        assert!(Severity::Critical > Severity::Warning && Severity::Warning > Severity::Info);
        for severity in [Severity::Info, Severity::Warning, Severity::Critical] {
            assert_eq!(
                serde_json::to_string(&severity).unwrap(),
                format!("\"{severity}\"")
            );
            assert_eq!(severity.name().parse(), Ok(severity));
        }
    }

    #[test]
    fn codes_serialize_to_their_stable_strings_and_back() {
        for code in FindingCode::KNOWN {
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(&serde_json::from_str::<FindingCode>(&json).unwrap(), code);
            assert!(
                code.as_str()
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_'),
                "{code}"
            );
        }
        assert_eq!(
            serde_json::to_string(&FindingCode::SocketCloseWait).unwrap(),
            "\"SOCKET_CLOSE_WAIT\""
        );
    }

    #[test]
    fn a_code_equals_its_stable_string() {
        assert_eq!(FindingCode::FdGrowth, "FD_GROWTH");
        assert_ne!(FindingCode::FdGrowth, "FD_LIMIT_NEAR");
        assert_eq!(FindingCode::Other("NEW_CODE".into()), "NEW_CODE");
    }

    #[test]
    fn an_unknown_code_is_kept_as_written() {
        let code: FindingCode = serde_json::from_str("\"FROM_THE_FUTURE\"").unwrap();
        assert_eq!(code, FindingCode::Other("FROM_THE_FUTURE".into()));
        assert_eq!(serde_json::to_string(&code).unwrap(), "\"FROM_THE_FUTURE\"");
    }
}
