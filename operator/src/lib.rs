//! procshot-operator: the Kubernetes side of procshot.
//!
//! This crate will hold the `DebugSession` API types, the controller and the capture-pod
//! builder (see `shared/DESIGN.md`). It is intentionally empty until that work lands; the
//! capture engine it drives lives in the `procshot` crate (`sidecar/`).
