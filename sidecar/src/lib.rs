//! procshot: capture the evidence of a sick process (open file descriptors, threads and
//! memory) from `/proc`, several samples apart, and say what is wrong with it.
//!
//! The library is the engine; the `procshot` binary is a thin CLI over [`capture::run`],
//! [`report::rerender`], [`locate::locate`] (which finds a Kubernetes container's host
//! pids) and [`upload::upload`] (which copies a capture directory to object storage). Nothing here ever writes to the target.
//! The captures read `/proc/PID/…` and the target's cgroup files; the few that need a
//! thread's registers stop it through [`ptrace`], within a documented bound and with a
//! detach on every path.

pub mod analysis;
pub mod artifacts;
pub mod capture;
pub mod core;
pub mod error;
pub mod fds;
pub mod gomem;
pub mod goroutines;
pub mod locate;
pub mod memory;
pub mod ptrace;
pub mod redact;
pub mod report;
pub mod samples;
pub mod stacks;
pub mod target;
pub mod termination;
pub mod threads;
pub mod units;
pub mod upload;
