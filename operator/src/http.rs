//! The operator's HTTP endpoints: `/metrics` (Prometheus text), `/healthz` (the process
//! runs) and `/readyz` (connected to the API server: a standby replica waiting for the
//! leader Lease is ready; without leader election, once the session cache synced).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use kube::runtime::reflector::Store;

use crate::api::{DebugSession, Phase};
use crate::metrics::{Metrics, PhaseLabels};

/// What the endpoints read.
#[derive(Clone)]
pub struct HttpState {
    /// Metrics to encode.
    pub metrics: Arc<Metrics>,
    /// Set once the operator can serve.
    pub ready: Arc<AtomicBool>,
    /// The controller's session cache (set on the leader), for the sessions gauge.
    pub sessions: Arc<std::sync::OnceLock<Store<DebugSession>>>,
}

/// The router with every endpoint.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Serves the router on `addr` until the process ends.
pub async fn serve(addr: SocketAddr, state: HttpState) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, router(state)).await
}

async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    if let Some(store) = state.sessions.get() {
        for phase in [
            Phase::Pending,
            Phase::Capturing,
            Phase::Succeeded,
            Phase::Failed,
        ] {
            let count = store
                .state()
                .iter()
                .filter(|s| s.status.as_ref().map(|st| st.phase).unwrap_or_default() == phase)
                .count();
            state
                .metrics
                .sessions
                .get_or_create(&PhaseLabels {
                    phase: format!("{phase:?}"),
                })
                .set(count as i64);
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}
