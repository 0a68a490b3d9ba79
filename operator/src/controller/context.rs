//! What every reconcile shares: the client, the configuration, the Event recorder, the
//! metrics and the per-session failure counts of the back-off. Built by [`Context::new`],
//! in `main` and in the tests alike.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client};

use crate::api::DebugSession;
use crate::config::OperatorConfig;
use crate::metrics::Metrics;

/// The controller's name in Events and as the field manager of status patches.
pub const CONTROLLER_NAME: &str = "procshot-operator";

/// What every reconcile shares.
pub struct Context {
    /// The operator's client: it reads sessions and target pods in every namespace and
    /// manages capture pods in [`OperatorConfig::namespace`] only.
    pub client: Client,
    /// Settings and policy, fixed at start-up.
    pub config: OperatorConfig,
    /// Publishes Events on sessions, as this replica.
    pub recorder: Recorder,
    /// Shared with the HTTP server, which serves them.
    pub metrics: Arc<Metrics>,
    /// Consecutive failures per session, for the error back-off; cleared by a reconcile
    /// that gets as far as the session's state.
    failures: Mutex<HashMap<ObjectRef<DebugSession>, u32>>,
}

impl Context {
    /// A context whose Events name `instance` (the replica's pod name) as their reporter.
    pub fn new(
        client: Client,
        config: OperatorConfig,
        metrics: Arc<Metrics>,
        instance: Option<String>,
    ) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: CONTROLLER_NAME.into(),
                instance,
            },
        );
        Self {
            client,
            config,
            recorder,
            metrics,
            failures: Mutex::default(),
        }
    }

    /// The capture pods' namespace.
    pub(crate) fn capture_pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.config.namespace)
    }

    /// The sessions of `namespace`.
    pub(crate) fn sessions(&self, namespace: &str) -> Api<DebugSession> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Counts one more consecutive failure of `session`; returns the count.
    pub(crate) fn count_failure(&self, session: &DebugSession) -> u32 {
        let mut failures = self.failures.lock().expect("failure map lock");
        let count = failures.entry(ObjectRef::from_obj(session)).or_insert(0);
        *count += 1;
        *count
    }

    /// Forgets the failures of `session` (its reconcile got through).
    pub(crate) fn forget_failures(&self, session: &DebugSession) {
        self.failures
            .lock()
            .expect("failure map lock")
            .remove(&ObjectRef::from_obj(session));
    }
}
