//! procshot-operator: runs procshot captures for `DebugSession` resources.
//!
//! Each reconcile is a pipeline (see [`controller`]): dereference what the session points
//! to → validate it ([`plan`], pure) → build the capture pods ([`capture_pod`], pure) →
//! apply (create them, patch the status) → status (their termination summaries folded
//! into the session's status, pure).
//!
//! * [`api`]: the DebugSession API types (spec and status), and the CRD they generate;
//! * [`config`]: the operator's settings and policy, and the flags that set them;
//! * [`plan`], [`capture_pod`], [`controller`]: the pipeline's stages;
//! * [`http`], [`metrics`]: `/metrics`, `/healthz`, `/readyz`;
//! * [`reference`]: the field reference generated from the CRD.

pub mod api;
pub mod capture_pod;
pub mod config;
pub mod controller;
pub mod http;
pub mod metrics;
pub mod plan;
pub mod reference;
