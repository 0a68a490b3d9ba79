//! Why a reconcile did not complete (it is retried with back-off): one enum, each variant
//! with its metric label and its Event reason, so that the log, `/metrics` and `kubectl
//! describe` tell the same story. A session that cannot be captured is not an error: it
//! ends `Failed` with a [`Refusal`](crate::plan::Refusal).

use kube::runtime::finalizer;

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API call failed while {action}: {source}")]
    Kube {
        /// What the operator was doing ("reading the target pod").
        action: &'static str,
        /// The error.
        #[source]
        source: kube::Error,
    },
    /// Adding or removing the finalizer failed (errors of the reconcile itself are
    /// unwrapped into their own variants).
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
    /// The object has no namespace (DebugSession is namespaced, so this is a bug).
    #[error("DebugSession has no namespace")]
    MissingNamespace,
}

impl Error {
    /// The `error` label of `procshot_reconcile_errors_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube { .. } => "kube_api",
            Self::Finalizer(_) => "finalizer",
            Self::MissingNamespace => "missing_namespace",
        }
    }

    /// The reason of the Warning Event published on the session.
    pub fn event_reason(&self) -> &'static str {
        match self {
            Self::Kube { .. } => "KubeApiFailed",
            Self::Finalizer(_) => "FinalizerFailed",
            Self::MissingNamespace => "MissingNamespace",
        }
    }

    /// The error of a finalizer run: the reconcile's own error as it was, else the
    /// finalizer's.
    pub(crate) fn from_finalizer(error: finalizer::Error<Error>) -> Self {
        match error {
            finalizer::Error::ApplyFailed(error) | finalizer::Error::CleanupFailed(error) => error,
            other => Self::Finalizer(Box::new(other)),
        }
    }
}

/// Wraps a failed API call, saying what the operator was doing.
pub(crate) fn kube_err(action: &'static str) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Kube { action, source }
}
