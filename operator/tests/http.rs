//! The operator's HTTP endpoints, served on a real loopback socket.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use procshot_operator::http::{HttpState, router};
use procshot_operator::metrics::{ErrorLabels, Metrics};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn metrics_health_and_readiness() {
    let metrics = Arc::new(Metrics::default());
    metrics.reconciliations.inc();
    metrics
        .reconcile_errors
        .get_or_create(&ErrorLabels {
            error: "kube_api".into(),
        })
        .inc();
    metrics.capture_duration.observe(42.0);
    let state = HttpState {
        metrics,
        ready: Arc::new(AtomicBool::new(false)),
        sessions: Arc::new(std::sync::OnceLock::new()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ready = state.ready.clone();
    let server = tokio::spawn(async move { axum::serve(listener, router(state)).await });

    let health = get(addr, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let not_ready = get(addr, "/readyz").await;
    assert!(not_ready.starts_with("HTTP/1.1 503"), "{not_ready}");
    ready.store(true, Ordering::Relaxed);
    assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));

    let metrics = get(addr, "/metrics").await;
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    for line in [
        "procshot_reconciliations_total 1",
        "procshot_reconcile_errors_total{error=\"kube_api\"} 1",
        "procshot_capture_duration_seconds_count 1",
    ] {
        assert!(metrics.contains(line), "{line} missing in:\n{metrics}");
    }
    server.abort();
}
