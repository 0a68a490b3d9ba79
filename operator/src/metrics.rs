//! Prometheus metrics of the operator, served on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Label of an error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// What failed (`kube_api`, `finalizer`, …).
    pub error: String,
}

/// Label of the sessions gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// `Pending`, `Capturing`, `Succeeded`, `Failed`.
    pub phase: String,
}

/// Every metric the operator exports.
#[derive(Debug)]
pub struct Metrics {
    /// Reconciles run.
    pub reconciliations: Counter,
    /// Reconciles that failed, by error.
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    /// Sessions by phase (set at every scrape from the controller's cache).
    pub sessions: Family<PhaseLabels, Gauge>,
    /// Seconds from a session's first capture pod to its end.
    pub capture_duration: Histogram,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("procshot");
        let reconciliations = Counter::default();
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        let sessions = Family::<PhaseLabels, Gauge>::default();
        let capture_duration = Histogram::new([5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0]);
        registry.register("reconciliations", "Reconciles run", reconciliations.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by error",
            reconcile_errors.clone(),
        );
        registry.register("sessions", "DebugSessions by phase", sessions.clone());
        registry.register(
            "capture_duration_seconds",
            "Seconds from a session's first capture pod to its end",
            capture_duration.clone(),
        );
        Self {
            reconciliations,
            reconcile_errors,
            sessions,
            capture_duration,
            registry,
        }
    }
}

impl Metrics {
    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
