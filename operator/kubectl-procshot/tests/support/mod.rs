//! The plugin's tests' API server: kube's mock (tower-test), answering every request from
//! a router and recording them in order, either in process (a [`kube::Client`] on the
//! mock) or served on loopback over HTTP for the plugin binary and the real kubectl
//! ([`ApiServer`]), which also answers `pods/exec` over the websocket channel protocol.
#![allow(dead_code)]

pub mod exec;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use kube::Client;
use kube::client::Body;
use kubectl_procshot::cli::Cli;
use kubectl_procshot::cluster::Cluster;
use kubectl_procshot::commands::{self, Terminal};
use serde_json::{Value, json};

/// One request the plugin made.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Value,
}

impl Call {
    /// `METHOD PATH`.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// Answers a request: (status code, JSON body).
pub type Router = Arc<dyn Fn(&Call) -> (u16, Value) + Send + Sync>;

/// The requests made so far.
#[derive(Clone, Default)]
pub struct Calls(Arc<Mutex<Vec<Call>>>);

impl Calls {
    pub fn all(&self) -> Vec<Call> {
        self.0.lock().unwrap().clone()
    }

    pub fn lines(&self) -> Vec<String> {
        self.all().iter().map(Call::line).collect()
    }

    fn push(&self, call: Call) {
        self.0.lock().unwrap().push(call);
    }
}

pub const SESSIONS: &str = "/apis/procshot.dev/v1alpha1/namespaces/shop/debugsessions";
pub const PODS: &str = "/api/v1/namespaces/shop/pods";
pub const REVIEWS: &str = "/apis/authentication.k8s.io/v1/selfsubjectreviews";
pub const DISCOVERY: &str = "/apis/procshot.dev/v1alpha1";

/// A client on the mock API server answering with `router`.
pub fn mock_client(router: Router) -> (Client, Calls) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let calls = Calls::default();
    let recorded = calls.clone();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.unwrap();
            let call = call(&parts, &bytes);
            let (status, body) = router(&call);
            recorded.push(call);
            send.send_response(
                Response::builder()
                    .status(status)
                    .body(Body::from(serde_json::to_vec(&body).unwrap()))
                    .unwrap(),
            );
        }
    });
    (Client::new(service, "shop"), calls)
}

fn call(parts: &http::request::Parts, body: &[u8]) -> Call {
    Call {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
    }
}

/// What a command printed and returned.
#[derive(Debug)]
pub struct Run {
    pub code: u8,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `kubectl procshot ARGS…` in namespace shop against `router`; errors become their
/// exit code and message, as the binary prints them.
pub async fn run(router: Router, args: &[&str]) -> (Run, Calls) {
    let (client, calls) = mock_client(router);
    let cli = Cli::try_parse_from(std::iter::once("kubectl-procshot").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let cluster = Cluster::new(client, "shop");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let result = {
        let mut term = Terminal {
            out: &mut out,
            err: &mut err,
            out_is_tty: false,
            err_is_tty: false,
            color: false,
        };
        commands::run(&cli.command, &cluster, &mut term).await
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            writeln!(err, "error: {e}").unwrap();
            e.exit_code()
        }
    };
    let run = Run {
        code,
        stdout: String::from_utf8(out).unwrap(),
        stderr: String::from_utf8(err).unwrap(),
    };
    (run, calls)
}

use clap::Parser as _;

/// Answers what `capture` asks before it follows (the target pod api-7d9f8-x2b4q, the
/// review, the create, echoing the session back), after `extra`, which answers first.
pub fn creating(extra: impl Fn(&Call) -> Option<(u16, Value)> + Send + Sync + 'static) -> Router {
    Arc::new(move |call| {
        if let Some(answer) = extra(call) {
            return answer;
        }
        match (call.method.as_str(), call.path.as_str()) {
            ("GET", p) if p == format!("{PODS}/api-7d9f8-x2b4q") => (
                200,
                pod("api-7d9f8-x2b4q", "Running", "2026-11-22T10:00:00Z"),
            ),
            ("POST", REVIEWS) => review(),
            ("POST", SESSIONS) => (201, call.body.clone()),
            _ => not_found(),
        }
    })
}

/// A Kubernetes `Status` failure.
pub fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "reason": reason, "code": code, "message": message}),
    )
}

pub fn not_found() -> (u16, Value) {
    status(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

/// The discovery document of procshot.dev/v1alpha1 (the CRD is installed).
pub fn discovery() -> (u16, Value) {
    (
        200,
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "procshot.dev/v1alpha1",
               "resources": [{"name": "debugsessions", "singularName": "debugsession", "namespaced": true,
                              "kind": "DebugSession", "verbs": ["create", "delete", "get", "list"],
                              "shortNames": ["dbg"]}]}),
    )
}

/// A running pod of namespace shop with one container `api`.
pub fn pod(name: &str, phase: &str, created: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "labels": {"app": "api"}, "creationTimestamp": created},
        "spec": {"containers": [{"name": "api", "image": "api:1"}]},
        "status": {"phase": phase}
    })
}

pub fn list(kind: &str, items: Vec<Value>) -> (u16, Value) {
    (
        200,
        json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items}),
    )
}

/// What a SelfSubjectReview says about the user.
pub fn review() -> (u16, Value) {
    (
        201,
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview", "metadata": {},
               "status": {"userInfo": {"username": "alice@example.com"}}}),
    )
}

/// A session named `name` with `spec` and `status`.
pub fn session(name: &str, spec: Value, status: Option<Value>) -> Value {
    let mut session = json!({
        "apiVersion": "procshot.dev/v1alpha1", "kind": "DebugSession",
        "metadata": {"name": name, "namespace": "shop", "creationTimestamp": "2026-11-22T10:15:00Z"},
        "spec": spec,
    });
    if let Some(status) = status {
        session["status"] = status;
    }
    session
}

/// A target's status.
pub fn target(pod: &str, phase: &str, extra: Value) -> Value {
    let mut target = json!({
        "pod": pod, "podUid": "8f6c2d4e", "container": "api", "containerId": "containerd://0123",
        "node": "worker-3", "capturePod": format!("procshot-{pod}-0123456789"), "phase": phase,
    });
    target
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    target
}

/// The DebugSession CRD's schema, as committed.
pub fn crd_schema() -> Value {
    let crd: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../crds/debugsession.yaml"
        ))
        .unwrap(),
    )
    .unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// The messages of every CEL rule and schema constraint `object` breaks.
pub fn violations(object: &Value) -> Vec<String> {
    match kube::core::cel::Validator::new().validate(&crd_schema(), object, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.into_vec().into_iter().map(|e| e.message).collect(),
    }
}

/// The mock API server on loopback over HTTP, for processes (the plugin binary, kubectl).
pub struct ApiServer {
    pub addr: SocketAddr,
    pub calls: Calls,
    dir: tempfile::TempDir,
}

impl ApiServer {
    /// Serves `router` (and `exec` for `pods/exec`) on 127.0.0.1, on a port of its own.
    pub async fn start(router: Router, exec: Option<exec::ExecRouter>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = Calls::default();
        let recorded = calls.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (router, exec, recorded) = (router.clone(), exec.clone(), recorded.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: Request<hyper::body::Incoming>| {
                            let (router, exec, recorded) =
                                (router.clone(), exec.clone(), recorded.clone());
                            async move {
                                if request.uri().path().ends_with("/exec")
                                    && let Some(exec) = exec
                                {
                                    let (parts, _) = request.into_parts();
                                    let call = call(&parts, b"");
                                    recorded.push(call.clone());
                                    return Ok::<_, hyper::Error>(exec::answer(
                                        Request::from_parts(parts, ()),
                                        call,
                                        exec,
                                    ));
                                }
                                let (parts, body) = request.into_parts();
                                let bytes = body.collect().await?.to_bytes();
                                let call = call(&parts, &bytes);
                                let (status, body) = router(&call);
                                recorded.push(call);
                                Ok(Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(
                                        serde_json::to_vec(&body).unwrap(),
                                    )))
                                    .unwrap())
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Self {
            addr,
            calls,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A kubeconfig whose current context reaches this server, in namespace `namespace`.
    pub fn kubeconfig(&self, namespace: &str) -> PathBuf {
        let path = self.dir.path().join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: test\n\
                 clusters:\n- name: test\n  cluster:\n    server: http://{}\n\
                 users:\n- name: alice\n  user:\n    token: not-a-secret\n\
                 contexts:\n- name: test\n  context:\n    cluster: test\n    user: alice\n    namespace: {namespace}\n",
                self.addr
            ),
        )
        .unwrap();
        path
    }
}

/// The plugin binary.
pub fn plugin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kubectl-procshot"))
}

/// A directory holding only `kubectl-procshot`, for PATH.
pub fn plugin_path_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(plugin(), dir.path().join("kubectl-procshot")).unwrap();
    dir
}
