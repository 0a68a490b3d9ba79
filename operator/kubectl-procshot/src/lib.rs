//! `kubectl procshot`: the whole incident flow in one command. `capture` creates a
//! DebugSession for a pod (or a workload's pods, or a selector), follows it live, prints
//! its findings coloured by severity and downloads its files, each checked against the
//! capture's manifest; `get`, `describe`, `findings`, `download` and `delete` work on
//! sessions that exist.
//!
//! The flow: [`cli`] parses kubectl-style flags → [`cluster`] loads the kubeconfig as
//! kubectl does → [`target`] checks the target against the cluster → [`session`] builds
//! the DebugSession (pure) → [`sessions`] creates it → [`follow`] polls it, shown by
//! [`view`] → [`download`] fetches its files. [`error`] turns every failure into a message
//! that says what to do, and owns the exit codes.
//!
//! It uses only the operator's API types and the capture pod's summary contract, nothing
//! of the capture engine, so it builds wherever kubectl runs.

pub mod cli;
pub mod cluster;
pub mod commands;
pub mod download;
pub mod error;
pub mod follow;
pub mod output;
pub mod selector;
pub mod session;
pub mod sessions;
pub mod target;
pub mod view;
