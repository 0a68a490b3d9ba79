//! procshot-operator: runs procshot captures for `DebugSession` resources.
//!
//! The pipeline per session: resolve the target pods (read) → validate against policy →
//! build the capture pods (pure, [`capture_pod`]) → create them → fold their termination
//! summaries into the session's status.

pub mod api;
pub mod capture_pod;
pub mod config;
pub mod controller;
pub mod http;
pub mod metrics;
pub mod plan;
pub mod reference;
