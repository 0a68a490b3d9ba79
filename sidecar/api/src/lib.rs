//! The contract between the two procshot binaries, defined once: the capture engine
//! (`procshot`, the CLI that capture pods run) and the operator (`procshot-operator`,
//! which renders capture pods and reads what they report).
//!
//! * [`CaptureKind`]: what can be captured, in which order, sampled or once, and which
//!   files each kind writes. Every `match` on it is exhaustive, so a new kind does not
//!   compile until every place that must handle it does.
//! * [`Severity`] and [`FindingCode`]: how serious a finding is and its stable code.
//! * [`CaptureArgs`] and [`LocateArgs`]: the arguments of `procshot capture` and
//!   `procshot locate`, parsed by the CLI with clap and rendered to argv by the operator
//!   ([`CaptureArgs::to_argv`]), so that a flag renamed on one side fails a test.
//! * [`TerminationSummary`]: the compact JSON a capture pod leaves in its termination
//!   message, the only thing the operator reads from it.
//! * [`size::parse_size`]: the one parser of byte sizes (`512Mi`, `4G`, `64MiB`).
//! * [`error_chain`]: an error and its causes as one line, as both binaries print them.
//!
//! Nothing here reads `/proc` or talks to Kubernetes: the operator depends on this crate
//! without pulling in any process-inspection code.

pub mod args;
mod error_chain;
pub mod finding;
pub mod kind;
pub mod pprof;
pub mod size;
pub mod termination;

pub use args::{CaptureArgs, LocateArgs};
pub use error_chain::error_chain;
pub use finding::{FindingCode, Severity};
pub use kind::{CaptureKind, Schedule};
pub use pprof::PprofAddress;
pub use termination::{
    Artifact, Counts, FindingSummary, MAX_BYTES, Outcome, TerminationSummary, VERSION,
};
