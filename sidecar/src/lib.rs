//! procshot: capture the evidence of a sick process (open file descriptors, threads and
//! memory) from `/proc`, several samples apart, and say what is wrong with it.
//!
//! The library is the engine; the `procshot` binary is a thin CLI over its
//! [`commands`]. Nothing here ever writes to the target: the captures read `/proc/PID/…`
//! and the target's cgroup files; the few that need a thread's registers stop it through
//! [`process::ptrace`], within a documented bound and with a detach on every path.
//!
//! The modules are layers, each importing only from the layers before it in this list:
//!
//! 1. [`error`], [`units`], [`redact`], [`files`]: errors and exit codes, number
//!    formatting, redaction, and the files procshot writes (hashed as they are written);
//! 2. [`process`]: access to the target (its `/proc/PID` handle, ptrace stops, its
//!    network namespace);
//! 3. [`gomem`]: a Go program read from outside: its build info, and its goroutines and
//!    heap statistics read from its memory (for the goroutines and memory captures);
//! 4. [`captures`]: one module per capture kind, all under one contract
//!    ([`captures::contract`]);
//! 5. [`series`]: what one run captured, every kind's series or one-shot result;
//! 6. [`analysis`]: counts, growth and findings;
//! 7. [`report`]: `report.md` and `report.html`, pure (a capture in, text out);
//! 8. [`directory`]: the capture directory (its manifest, writing it, reading it back);
//! 9. [`commands`]: capture, report, locate, upload, postmortem.
//!
//! `tests/layers.rs` checks the order (no import from a later layer, no cycle).

pub mod error;
pub mod files;
pub mod redact;
pub mod units;

pub mod process;

pub mod gomem;

pub mod captures;

pub mod series;

pub mod analysis;

pub mod report;

pub mod directory;

pub mod commands;
