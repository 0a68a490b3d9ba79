//! The captures: one module per capture kind, each reading its part of the target through
//! [`crate::process`] (and a Go program's runtime through [`crate::gomem`]) and fulfilling the one [`contract`] (its reader, its sample or result
//! type, its files). The kinds themselves (names, order, schedule, file names) are defined
//! once, in `procshot-api` ([`CaptureKind`]), shared with the operator.
//!
//! * [`fds`], [`threads`], [`memory`], [`goroutines`]: sampled;
//! * [`stacks`], [`coredump`]: once, after the last sample.
//!
//! What they share is the contract; the one import between kinds is the core dump's use of
//! [`memory::cgroup`] to learn how much memory procshot itself may fill. The goroutines
//! capture, reading from memory, hands the Go runtime it located to the memory capture
//! for the Go heap's statistics: through the scheduler, as a [`crate::gomem::GoReader`],
//! not an import.

pub mod contract;

pub mod coredump;
pub mod fds;
pub mod goroutines;
pub mod memory;
pub mod stacks;
pub mod threads;

pub use contract::{
    CaptureProblem, Cause, Failure, KindData, KindSample, OneShotCapture, OneShotContext,
    SCHEMA_VERSION, Sample, SampleError, SampledCapture, Series, Taken,
};
pub use procshot_api::{CaptureKind, Schedule};
