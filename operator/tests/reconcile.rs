//! Every reconcile path against kube's mock API server: the exact requests the controller
//! makes (in order) and the status it writes.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::client::Body;
use kube::runtime::controller::Action;
use procshot_operator::api::{CaptureKind, DebugSession, DebugSessionStatus, Phase};
use procshot_operator::config::OperatorConfig;
use procshot_operator::controller::{self, Context};
use procshot_operator::metrics::Metrics;
use serde_json::{Value, json};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const SESSION_PATH: &str = "/apis/procshot.dev/v1alpha1/namespaces/shop/debugsessions/api-fd-leak";
const TARGET_PATH: &str = "/api/v1/namespaces/shop/pods/api-7d9f8-x2b4q";
const CAPTURE_PODS: &str = "/api/v1/namespaces/procshot-system/pods";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/shop/events";

/// One request the controller made.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    path: String,
    query: String,
    body: Value,
}

impl Call {
    fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// Answers a request: (status code, JSON body).
type Router = Box<dyn Fn(&Call) -> (u16, Value) + Send>;

fn yaml(file: &str) -> Value {
    serde_saphyr::from_str(&std::fs::read_to_string(format!("{FIXTURES}/{file}")).unwrap()).unwrap()
}

fn not_found() -> (u16, Value) {
    (
        404,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
    )
}

/// The fixture session, with the finalizer already in place and the given status.
fn session(status: Option<DebugSessionStatus>) -> DebugSession {
    let mut session: DebugSession = serde_json::from_value(yaml("session.yaml")).unwrap();
    session.metadata.finalizers = Some(vec![controller::FINALIZER.into()]);
    session.status = status;
    session
}

/// The capture pod name of the fixture session and target.
fn capture_pod_name() -> String {
    procshot_operator::capture_pod::capture_pod_name("shop", "api-fd-leak", "api-7d9f8-x2b4q")
}

/// A status that has resolved its target (as the first reconcile leaves it).
fn resolved(phase: Phase) -> DebugSessionStatus {
    let target = serde_json::from_value(json!({
        "pod": "api-7d9f8-x2b4q",
        "podUid": "8f6c2d4e-1b2a-4c3d-9e8f-0a1b2c3d4e5f",
        "container": "api",
        "containerId": "containerd://0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "node": "worker-3",
        "capturePod": capture_pod_name(),
        "phase": phase,
    }))
    .unwrap();
    DebugSessionStatus {
        phase,
        targets: vec![target],
        ..DebugSessionStatus::default()
    }
}

/// A capture pod in `phase`, with optional container statuses.
fn capture_pod(phase: &str, extra_status: Value) -> Value {
    let mut status = json!({"phase": phase});
    if let (Some(status), Some(extra)) = (status.as_object_mut(), extra_status.as_object()) {
        status.extend(extra.clone());
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": capture_pod_name(), "namespace": "procshot-system"}, "status": status})
}

/// Runs one reconcile of `session` against a mock API server answering with `router`;
/// returns the action and every request made.
async fn reconcile_with(
    session: DebugSession,
    config: OperatorConfig,
    router: Router,
) -> (Result<Action, controller::Error>, Vec<Call>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let recorded = calls.clone();
    let server = tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.unwrap();
            let call = Call {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                query: parts.uri.query().unwrap_or_default().to_string(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            let (status, body) = router(&call);
            recorded.lock().unwrap().push(call);
            send.send_response(
                Response::builder()
                    .status(status)
                    .body(Body::from(serde_json::to_vec(&body).unwrap()))
                    .unwrap(),
            );
        }
    });
    let client = Client::new(service, "default");
    let ctx = Arc::new(Context::new(
        client,
        config,
        Arc::new(Metrics::default()),
        None,
    ));
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        controller::reconcile(Arc::new(session), ctx),
    )
    .await
    .expect("reconcile finished in time");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("mock server closed")
        .unwrap();
    let calls = calls.lock().unwrap().clone();
    (result, calls)
}

async fn reconcile(
    session: DebugSession,
    router: Router,
) -> (Result<Action, controller::Error>, Vec<Call>) {
    reconcile_with(session, OperatorConfig::default(), router).await
}

/// Echoes writes back (what the API server returns for creates and patches of these
/// objects is irrelevant to the controller beyond being well-formed).
fn echo(call: &Call) -> (u16, Value) {
    if call.path.starts_with(SESSION_PATH) {
        let mut object = serde_json::to_value(session(None)).unwrap();
        object["status"] = call.body["status"].clone();
        return (200, object);
    }
    let code = if call.method == "POST" { 201 } else { 200 };
    (code, call.body.clone())
}

/// The status written by the last status patch.
fn last_status(calls: &[Call]) -> DebugSessionStatus {
    let patch = calls
        .iter()
        .rev()
        .find(|c| c.path == format!("{SESSION_PATH}/status"))
        .expect("a status patch");
    assert!(
        patch.query.contains("fieldManager=procshot-operator")
            && patch.query.contains("force=true"),
        "{}",
        patch.query
    );
    serde_json::from_value(patch.body["status"].clone()).unwrap()
}

fn ready(status: &DebugSessionStatus) -> (String, String, String) {
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("a Ready condition");
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

fn event_reasons(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.path == EVENTS)
        .map(|c| c.body["reason"].as_str().unwrap().to_string())
        .collect()
}

fn lines(calls: &[Call]) -> Vec<String> {
    calls.iter().map(Call::line).collect()
}

#[tokio::test]
async fn a_new_session_first_gets_the_finalizer() {
    let mut fresh = session(None);
    fresh.metadata.finalizers = None;
    let (result, calls) = reconcile(fresh, Box::new(echo)).await;
    assert_eq!(result.unwrap(), Action::await_change());
    assert_eq!(lines(&calls), [format!("PATCH {SESSION_PATH}")]);
    assert_eq!(calls[0].body[1]["value"], json!([controller::FINALIZER]));
}

#[tokio::test]
async fn a_running_target_gets_one_capture_pod_on_its_node() {
    let (result, calls) = reconcile(
        session(None),
        Box::new(|call| match (call.method.as_str(), call.path.as_str()) {
            ("GET", TARGET_PATH) => (200, yaml("target-pod.yaml")),
            ("GET", CAPTURE_PODS) => (
                200,
                json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": []}),
            ),
            ("GET", p) if p.starts_with(CAPTURE_PODS) => not_found(),
            _ => echo(call),
        }),
    )
    .await;
    assert_eq!(result.unwrap(), Action::requeue(controller::POLL));
    let pod_path = format!("{CAPTURE_PODS}/{}", capture_pod_name());
    assert_eq!(
        lines(&calls),
        [
            format!("GET {TARGET_PATH}"),
            format!("PATCH {SESSION_PATH}/status"),
            format!("POST {EVENTS}"),
            format!("GET {pod_path}"),
            format!("GET {CAPTURE_PODS}"),
            format!("POST {CAPTURE_PODS}"),
            format!("POST {EVENTS}"),
            format!("PATCH {SESSION_PATH}/status"),
        ]
    );
    // The targets are recorded before any pod exists, so a restart resumes the same ones.
    let first: DebugSessionStatus =
        serde_json::from_value(calls[1].body["status"].clone()).unwrap();
    assert_eq!(first.targets[0].capture_pod, capture_pod_name());
    assert_eq!(first.targets[0].container, "api");
    assert_eq!(first.targets[0].node, "worker-3");
    // The per-node count asks only for this node's capture pods.
    assert!(
        calls[4]
            .query
            .contains("fieldSelector=spec.nodeName%3Dworker-3"),
        "{}",
        calls[4].query
    );
    let pod: Pod = serde_json::from_value(calls[5].body.clone()).unwrap();
    assert_eq!(
        pod.metadata.name.as_deref(),
        Some(capture_pod_name().as_str())
    );
    assert_eq!(pod.spec.unwrap().node_name.as_deref(), Some("worker-3"));
    assert_eq!(
        event_reasons(&calls),
        ["TargetResolved", "CapturePodCreated"]
    );
    let status = last_status(&calls);
    assert_eq!(status.phase, Phase::Pending);
    assert!(status.started_at.is_some());
    assert_eq!(ready(&status).1, "Pending");
}

/// Runs a session whose target is answered by `target` and returns the final status.
async fn refused_with(
    session: DebugSession,
    config: OperatorConfig,
    target: (u16, Value),
) -> (DebugSessionStatus, Vec<Call>) {
    let target = Arc::new(target);
    let (result, calls) = reconcile_with(
        session,
        config,
        Box::new(
            move |call| match (call.method.as_str(), call.path.as_str()) {
                ("GET", TARGET_PATH) => (*target).clone(),
                _ => echo(call),
            },
        ),
    )
    .await;
    assert_eq!(result.unwrap(), Action::await_change());
    (last_status(&calls), calls)
}

#[tokio::test]
async fn a_missing_target_fails_the_session_saying_so() {
    let (status, calls) = refused_with(session(None), OperatorConfig::default(), not_found()).await;
    assert_eq!(status.phase, Phase::Failed);
    assert!(status.finished_at.is_some());
    let (value, reason, message) = ready(&status);
    assert_eq!(
        (value.as_str(), reason.as_str()),
        ("False", "TargetNotFound")
    );
    assert!(
        message.starts_with("pod api-7d9f8-x2b4q not found in namespace shop"),
        "{message}"
    );
    assert_eq!(
        lines(&calls),
        [
            format!("GET {TARGET_PATH}"),
            format!("PATCH {SESSION_PATH}/status"),
            format!("POST {EVENTS}")
        ]
    );
    assert_eq!(calls[2].body["type"], "Warning");
}

#[tokio::test]
async fn a_target_that_is_not_running_or_lacks_the_container_fails() {
    let mut pending = yaml("target-pod.yaml");
    pending["status"]["phase"] = json!("Pending");
    let (status, _) = refused_with(session(None), OperatorConfig::default(), (200, pending)).await;
    assert_eq!(ready(&status).1, "TargetNotRunning");

    let mut wrong_container = session(None);
    wrong_container.spec.target.container = Some("worker".into());
    let (status, _) = refused_with(
        wrong_container,
        OperatorConfig::default(),
        (200, yaml("target-pod.yaml")),
    )
    .await;
    let (_, reason, message) = ready(&status);
    assert_eq!(reason, "ContainerNotFound");
    assert!(
        message.contains("(its containers: istio-proxy, api)"),
        "{message}"
    );

    let mut restarting = yaml("target-pod.yaml");
    restarting["status"]["containerStatuses"][0]["state"] =
        json!({"waiting": {"reason": "CrashLoopBackOff"}});
    let (status, _) =
        refused_with(session(None), OperatorConfig::default(), (200, restarting)).await;
    assert_eq!(ready(&status).1, "ContainerNotRunning");
}

#[tokio::test]
async fn policy_refuses_captures_the_admin_did_not_allow() {
    let config = OperatorConfig {
        allowed_captures: BTreeSet::from([CaptureKind::Fds]),
        ..OperatorConfig::default()
    };
    let (status, calls) = refused_with(session(None), config, (200, yaml("target-pod.yaml"))).await;
    let (_, reason, message) = ready(&status);
    assert_eq!(reason, "PolicyRefused");
    assert_eq!(
        message,
        "capture threads, memory are not allowed by the operator's policy (allowed: fds); ask a cluster admin or remove them from spec.capture"
    );
    assert!(
        !lines(&calls).iter().any(|l| l.contains("/pods")),
        "refused before touching any pod: {calls:?}"
    );
}

#[tokio::test]
async fn a_busy_node_makes_the_session_wait() {
    let busy = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [capture_pod("Running", json!({})), capture_pod("Pending", json!({}))]});
    let (result, calls) = reconcile(
        session(Some(resolved(Phase::Pending))),
        Box::new(
            move |call| match (call.method.as_str(), call.path.as_str()) {
                ("GET", CAPTURE_PODS) => (200, busy.clone()),
                ("GET", _) => not_found(),
                _ => echo(call),
            },
        ),
    )
    .await;
    assert_eq!(
        result.unwrap(),
        Action::requeue(controller::NODE_BUSY_RETRY)
    );
    assert!(
        !lines(&calls).contains(&format!("POST {CAPTURE_PODS}")),
        "no pod beyond the node's limit"
    );
    let (_, reason, message) = ready(&last_status(&calls));
    assert_eq!(reason, "WaitingForNode");
    assert_eq!(
        message,
        "node worker-3 already runs 2 capture(s), the operator's limit"
    );
}

#[tokio::test]
async fn after_a_restart_an_existing_capture_pod_is_followed_not_recreated() {
    let (result, calls) = reconcile(
        session(Some(resolved(Phase::Pending))),
        Box::new(|call| match call.method.as_str() {
            "GET" => (200, capture_pod("Running", json!({}))),
            _ => echo(call),
        }),
    )
    .await;
    assert_eq!(result.unwrap(), Action::requeue(controller::POLL));
    assert_eq!(
        lines(&calls),
        [
            format!("GET {CAPTURE_PODS}/{}", capture_pod_name()),
            format!("PATCH {SESSION_PATH}/status")
        ]
    );
    let status = last_status(&calls);
    assert_eq!(
        (status.phase, status.targets[0].phase),
        (Phase::Capturing, Phase::Capturing)
    );
}

#[tokio::test]
async fn a_capture_pod_created_concurrently_is_not_an_error() {
    let (result, calls) = reconcile(
        session(Some(resolved(Phase::Pending))),
        Box::new(|call| match (call.method.as_str(), call.path.as_str()) {
            ("GET", CAPTURE_PODS) => (200, json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": []})),
            ("GET", _) => not_found(),
            ("POST", CAPTURE_PODS) => (409, json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "AlreadyExists", "code": 409, "message": "exists"})),
            _ => echo(call),
        }),
    )
    .await;
    assert_eq!(result.unwrap(), Action::requeue(controller::POLL));
    assert_eq!(
        lines(&calls)
            .iter()
            .filter(|l| *l == &format!("POST {CAPTURE_PODS}"))
            .count(),
        1
    );
    assert_eq!(last_status(&calls).targets[0].phase, Phase::Pending);
}

#[tokio::test]
async fn a_capture_pod_refused_by_pod_security_fails_with_the_fix() {
    let (_, calls) = reconcile(
        session(Some(resolved(Phase::Pending))),
        Box::new(|call| match (call.method.as_str(), call.path.as_str()) {
            ("GET", CAPTURE_PODS) => (200, json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": []})),
            ("GET", _) => not_found(),
            ("POST", CAPTURE_PODS) => (403, json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
                "message": "pods \"x\" is forbidden: violates PodSecurity \"baseline:latest\": host namespaces (hostPID=true)"})),
            _ => echo(call),
        }),
    )
    .await;
    let status = last_status(&calls);
    assert_eq!(status.phase, Phase::Failed);
    let (_, reason, message) = ready(&status);
    assert_eq!(reason, "CapturePodRejected");
    assert!(
        message.contains("violates PodSecurity")
            && message.contains("pod-security.kubernetes.io/enforce=privileged"),
        "{message}"
    );
}

fn summary_message() -> String {
    json!({
        "version": 1,
        "outcome": "Succeeded",
        "targetPid": 4242,
        "samples": 3,
        "counts": {"fds": 1530, "fdSoftLimit": 4096, "threads": 12},
        "findings": [
            {"severity": "info", "code": "SOCKET_CLOSE_WAIT", "message": "5 TCP sockets are in CLOSE_WAIT"},
            {"severity": "warning", "code": "FD_GROWTH", "message": "tcp sockets in CLOSE_WAIT grew 1,204 → 1,530 in 20 s (+16/s)"}
        ]
    })
    .to_string()
}

#[tokio::test]
async fn a_finished_capture_fills_the_status_with_its_findings() {
    let message = summary_message();
    let mut with_ttl = session(Some(resolved(Phase::Capturing)));
    with_ttl.spec.ttl_seconds_after_finished = Some(3600);
    let (result, calls) = reconcile(
        with_ttl,
        Box::new(move |call| match call.method.as_str() {
            "GET" => (
                200,
                capture_pod(
                    "Succeeded",
                    json!({"containerStatuses": [{"name": "capture", "ready": false, "restartCount": 0, "image": "x", "imageID": "x",
                        "state": {"terminated": {"exitCode": 0, "message": message.clone()}}}]}),
                ),
            ),
            _ => echo(call),
        }),
    )
    .await;
    // Deleted after its TTL: the controller comes back in about an hour.
    let action = result.unwrap();
    assert!(
        action == Action::requeue(Duration::from_secs(3600))
            || action == Action::requeue(Duration::from_secs(3599)),
        "{action:?}"
    );
    let status = last_status(&calls);
    assert_eq!(status.phase, Phase::Succeeded);
    assert_eq!(status.targets[0].target_pid, Some(4242));
    assert_eq!(status.targets[0].summary.as_ref().unwrap().fds, Some(1530));
    let codes: Vec<&str> = status.findings.iter().map(|f| f.code.as_str()).collect();
    assert_eq!(
        codes,
        ["FD_GROWTH", "SOCKET_CLOSE_WAIT"],
        "most serious first"
    );
    assert_eq!(status.findings[0].pod, "api-7d9f8-x2b4q");
    assert_eq!(
        status.top_finding.as_deref(),
        Some("FD_GROWTH: tcp sockets in CLOSE_WAIT grew 1,204 → 1,530 in 20 s (+16/s)")
    );
    assert_eq!(
        ready(&status),
        ("True".into(), "Succeeded".into(), "2 finding(s)".into())
    );
    assert!(status.finished_at.is_some());
    assert_eq!(event_reasons(&calls), ["Succeeded"]);
}

/// Reconciles a Capturing session whose capture pod looks like `pod`; returns the status.
async fn observed(pod: Option<Value>) -> DebugSessionStatus {
    let pod = Arc::new(pod);
    let (_, calls) = reconcile(
        session(Some(resolved(Phase::Capturing))),
        Box::new(move |call| match (call.method.as_str(), &*pod) {
            ("GET", Some(pod)) => (200, pod.clone()),
            ("GET", None) => not_found(),
            _ => echo(call),
        }),
    )
    .await;
    last_status(&calls)
}

#[tokio::test]
async fn capture_pod_failures_end_the_session_with_their_reason() {
    let cases = [
        (
            Some(capture_pod(
                "Failed",
                json!({"reason": "DeadlineExceeded", "message": "Pod was active on the node longer than the specified deadline"}),
            )),
            "DeadlineExceeded",
            "the capture did not finish within spec.timeout",
        ),
        (
            Some(capture_pod(
                "Failed",
                json!({"reason": "Evicted", "message": "The node was low on resource: memory."}),
            )),
            "CapturePodEvicted",
            "the capture pod was evicted: The node was low on resource: memory.",
        ),
        (
            Some(capture_pod(
                "Pending",
                json!({"containerStatuses": [{"name": "capture", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
                    "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]}),
            )),
            "CapturePodFailed",
            "the capture pod cannot start its capture container: ImagePullBackOff",
        ),
        (
            Some(capture_pod(
                "Failed",
                json!({"initContainerStatuses": [{"name": "locate", "ready": false, "restartCount": 0, "image": "x", "imageID": "x",
                    "state": {"terminated": {"exitCode": 9, "message": "no process of pod 8f6c… container containerd://0123… found after 60s"}}}]}),
            )),
            "TargetNotLocated",
            "could not find the target's processes on its node: no process of pod",
        ),
        (None, "CapturePodDeleted", "disappeared while capturing"),
    ];
    for (pod, reason, message) in cases {
        let status = observed(pod).await;
        assert_eq!(status.phase, Phase::Failed, "{reason}");
        let (_, got_reason, got_message) = ready(&status);
        assert_eq!(got_reason, reason);
        assert!(got_message.contains(message), "{reason}: {got_message}");
    }
}

#[tokio::test]
async fn a_partial_capture_succeeds_and_says_it_is_partial() {
    let message = json!({"version": 1, "outcome": "Partial", "message": "pid 4242 exited while the fd table was being read, after 2 of 3 samples", "samples": 2, "findings": []}).to_string();
    let status = observed(Some(capture_pod(
        "Succeeded",
        json!({"containerStatuses": [{"name": "capture", "ready": false, "restartCount": 0, "image": "x", "imageID": "x",
            "state": {"terminated": {"exitCode": 6, "message": message}}}]}),
    )))
    .await;
    assert_eq!(status.phase, Phase::Succeeded);
    let (value, _, detail) = ready(&status);
    assert_eq!(value, "True");
    assert!(
        detail.starts_with("partial capture: pid 4242 exited"),
        "{detail}"
    );
}

#[tokio::test]
async fn deleting_a_session_deletes_its_capture_pods_then_the_finalizer() {
    let mut deleting = session(Some(resolved(Phase::Capturing)));
    deleting.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()),
    );
    let (result, calls) = reconcile(
        deleting,
        Box::new(|call| match call.method.as_str() {
            "GET" => (200, json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [capture_pod("Running", json!({}))]})),
            "DELETE" => (200, capture_pod("Running", json!({}))),
            _ => echo(call),
        }),
    )
    .await;
    assert_eq!(result.unwrap(), Action::await_change());
    assert_eq!(
        lines(&calls),
        [
            format!("GET {CAPTURE_PODS}"),
            format!("DELETE {CAPTURE_PODS}/{}", capture_pod_name()),
            format!("PATCH {SESSION_PATH}"),
        ]
    );
    assert!(calls[0].query.contains("labelSelector=procshot.dev%2Fsession-name%3Dapi-fd-leak%2Cprocshot.dev%2Fsession-namespace%3Dshop"), "{}", calls[0].query);
    assert_eq!(calls[2].body[1]["op"], "remove");
}

#[tokio::test]
async fn a_finished_session_is_deleted_after_its_ttl() {
    let mut status = resolved(Phase::Succeeded);
    status.targets[0].phase = Phase::Succeeded;
    status.finished_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(120),
    ));
    let mut expired = session(Some(status));
    expired.spec.ttl_seconds_after_finished = Some(60);
    let (result, calls) = reconcile(expired, Box::new(echo)).await;
    assert_eq!(result.unwrap(), Action::await_change());
    assert_eq!(lines(&calls), [format!("DELETE {SESSION_PATH}")]);
}

#[test]
fn errors_back_off_exponentially_to_five_minutes() {
    let delays: Vec<u64> = (1..=9).map(|n| controller::backoff(n).as_secs()).collect();
    assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
}

#[tokio::test]
async fn uploaded_files_are_listed_and_a_failed_upload_is_reported() {
    let artifacts = json!([
        {"name": "fds.json", "url": "s3://evidence/shop/api-fd-leak/20261122T101500Z/fds.json", "bytes": 3_682_802, "sha256": "ab12"},
        {"name": "manifest.json", "url": "s3://evidence/shop/api-fd-leak/20261122T101500Z/manifest.json", "bytes": 2_137, "sha256": "cd34"}
    ]);
    let uploaded = json!({"version": 1, "outcome": "Succeeded", "samples": 3, "findings": [], "artifacts": artifacts}).to_string();
    let status = observed(Some(capture_pod(
        "Succeeded",
        json!({"containerStatuses": [{"name": "capture", "ready": false, "restartCount": 0, "image": "x", "imageID": "x",
            "state": {"terminated": {"exitCode": 0, "message": uploaded}}}]}),
    )))
    .await;
    assert_eq!(status.phase, Phase::Succeeded);
    let urls: Vec<&str> = status.artifacts.iter().map(|a| a.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "s3://evidence/shop/api-fd-leak/20261122T101500Z/fds.json",
            "s3://evidence/shop/api-fd-leak/20261122T101500Z/manifest.json"
        ]
    );
    assert_eq!(status.artifacts[0].bytes, 3_682_802);

    let failed = json!({"version": 1, "outcome": "Succeeded", "samples": 3, "findings": [],
        "uploadError": "bucket evidence does not exist at http://minio:9000"})
    .to_string();
    let status = observed(Some(capture_pod(
        "Failed",
        json!({"reason": "DeadlineExceeded", "containerStatuses": [{"name": "capture", "ready": false, "restartCount": 0, "image": "x", "imageID": "x",
            "state": {"terminated": {"exitCode": 10, "message": failed}}}]}),
    )))
    .await;
    // The capture itself worked: its findings count; the upload failure is said.
    assert_eq!(status.phase, Phase::Succeeded);
    assert!(status.artifacts.is_empty());
    assert_eq!(status.targets[0].reason.as_deref(), Some("UploadFailed"));
    let (_, _, message) = ready(&status);
    assert!(
        message.contains(
            "the files were not uploaded (bucket evidence does not exist at http://minio:9000)"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn a_selector_lists_the_pods_with_its_labels_and_captures_the_running_ones() {
    let mut selected = session(None);
    selected.spec.target = serde_json::from_value(
        json!({"selector": {"matchLabels": {"app": "api"}, "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["batch"]}]}, "maxPods": 2}),
    )
    .unwrap();
    let mut pending = yaml("target-pod.yaml");
    pending["metadata"]["name"] = json!("api-starting");
    pending["status"]["phase"] = json!("Pending");
    let list = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [pending, yaml("target-pod.yaml")]});
    let (result, calls) = reconcile(
        selected,
        Box::new(
            move |call| match (call.method.as_str(), call.path.as_str()) {
                ("GET", "/api/v1/namespaces/shop/pods") => (200, list.clone()),
                ("GET", CAPTURE_PODS) => (
                    200,
                    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": []}),
                ),
                ("GET", _) => not_found(),
                _ => echo(call),
            },
        ),
    )
    .await;
    assert_eq!(result.unwrap(), Action::requeue(controller::POLL));
    assert_eq!(calls[0].line(), "GET /api/v1/namespaces/shop/pods");
    assert!(
        calls[0]
            .query
            .contains("labelSelector=app%3Dapi%2Ctier+notin+%28batch%29"),
        "{}",
        calls[0].query
    );
    let first: DebugSessionStatus =
        serde_json::from_value(calls[1].body["status"].clone()).unwrap();
    let pods: Vec<&str> = first.targets.iter().map(|t| t.pod.as_str()).collect();
    assert_eq!(pods, ["api-7d9f8-x2b4q"], "only the Running pod");
    assert_eq!(
        event_reasons(&calls),
        ["TargetResolved", "CapturePodCreated"]
    );
}

#[tokio::test]
async fn a_failed_api_call_is_an_error_with_its_metric_label_and_event() {
    let (result, calls) = reconcile(
        session(None),
        Box::new(|call| match (call.method.as_str(), call.path.as_str()) {
            ("GET", TARGET_PATH) => (
                500,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "InternalError", "code": 500, "message": "etcdserver: request timed out"}),
            ),
            _ => echo(call),
        }),
    )
    .await;
    let error = result.unwrap_err();
    assert_eq!(error.metric_label(), "kube_api");
    assert!(
        error
            .to_string()
            .starts_with("Kubernetes API call failed while reading the target pod"),
        "{error}"
    );
    assert_eq!(
        lines(&calls),
        [format!("GET {TARGET_PATH}"), format!("POST {EVENTS}")]
    );
    assert_eq!(calls[1].body["type"], "Warning");
    assert_eq!(event_reasons(&calls), [error.event_reason()]);
    assert!(
        calls[1].body["note"]
            .as_str()
            .unwrap()
            .contains("etcdserver: request timed out"),
        "{}",
        calls[1].body
    );
}
