//! What the node tests share: the binaries the images are built from (the agent as the
//! Dockerfile builds it, the fixtures compiled here), a node with those images, the
//! target pods, rendering a capture pod with `procshot-operator render`, and reading it
//! back through the operator's status mapping.
//!
//! The agent (a static musl release build of `procshot`) and `procshot-operator` are
//! built before the tests by `scripts/build-node-testbed.sh` (which `make test` and
//! `make test-node` run) and named by `PROCSHOT_NODE_AGENT` and `PROCSHOT_OPERATOR_BIN`;
//! without them the tests fail, naming the script.

#![allow(dead_code)] // each test binary uses part of this

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use procshot_node_testbed::images::Image;
use procshot_node_testbed::{Node, NodeConfig, PodHandle};
use procshot_operator::controller::observe::{Observation, observe};

/// The agent image, as capture pods name it (`--agent-image`).
pub const AGENT_IMAGE: &str = "localhost/procshot-testbed/procshot:test";
/// The fixtures' image.
pub const FIXTURE_IMAGE: &str = "localhost/procshot-testbed/fixture:test";
/// The operator's capture namespace.
pub const CAPTURE_NAMESPACE: &str = "procshot-system";
/// How long any one wait of a test may take.
pub const WAIT: Duration = Duration::from_secs(120);

/// The binaries the images hold.
pub struct Binaries {
    pub agent: PathBuf,
    pub operator: PathBuf,
    pub fixture: PathBuf,
    pub leaky: PathBuf,
    pub pause: PathBuf,
}

/// The binaries, built (the fixtures) or checked (the agent) once per test process.
pub fn binaries() -> &'static Binaries {
    static BINARIES: OnceLock<Binaries> = OnceLock::new();
    BINARIES.get_or_init(|| {
        let prebuilt = |var: &str| {
            let path = PathBuf::from(std::env::var_os(var).unwrap_or_else(|| {
                panic!(
                    "{var} is not set: build the agent and the operator with \
                     scripts/build-node-testbed.sh first (make test-node does both)"
                )
            }));
            assert!(path.is_file(), "{var}={} does not exist", path.display());
            path
        };
        let agent = prebuilt("PROCSHOT_NODE_AGENT");
        assert_static(&agent);
        let dir =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("nodebed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sidecar/tests/fixtures");
        Binaries {
            agent,
            operator: prebuilt("PROCSHOT_OPERATOR_BIN"),
            fixture: compile_static(&fixtures.join("fixture.c"), &dir.join("fixture")),
            leaky: build_go(&fixtures.join("go/leaky"), &dir.join("leaky")),
            pause: compile_static(
                &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pause.c"),
                &dir.join("pause"),
            ),
        }
    })
}

/// The agent image must hold a static binary, as the Dockerfile's distroless one does.
fn assert_static(binary: &Path) {
    let output = Command::new("readelf")
        .args(["--program-headers", "--wide"])
        .arg(binary)
        .output()
        .expect("readelf (binutils) checks that the agent is static");
    assert!(
        output.status.success(),
        "{} is not an ELF file",
        binary.display()
    );
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("INTERP"),
        "{} is dynamically linked; the agent image needs the static musl build \
         (scripts/build-node-testbed.sh)",
        binary.display()
    );
}

/// `gcc -static` of a fixture, with its symbols (the stacks test names its functions).
fn compile_static(source: &Path, binary: &Path) -> PathBuf {
    let status = Command::new("cc")
        .args([
            "-O2",
            "-g",
            "-fno-omit-frame-pointer",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pthread",
            "-static",
            "-o",
        ])
        .arg(binary)
        .arg(source)
        .status()
        .expect("a C compiler is needed for the fixtures: apt-get install gcc libc6-dev");
    assert!(status.success(), "compiling {} failed", source.display());
    binary.to_path_buf()
}

/// A static Go fixture (`CGO_ENABLED=0`), built offline.
fn build_go(source: &Path, binary: &Path) -> PathBuf {
    let output = Command::new("go")
        .args(["build", "-buildvcs=false", "-o"])
        .arg(binary)
        .arg(".")
        .current_dir(source)
        .env("CGO_ENABLED", "0")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-mod=mod")
        .env(
            "GOCACHE",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-cache"),
        )
        .output()
        .expect("Go is needed for the Go fixture: apt-get install golang-go");
    assert!(
        output.status.success(),
        "building {} failed:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    binary.to_path_buf()
}

/// A node with the agent and fixture images.
pub async fn start_node() -> Node {
    let bins = binaries();
    let mut agent = Image::distroless_static(AGENT_IMAGE, "", "/usr/local/bin/procshot");
    agent.add_binary(&bins.agent, "/usr/local/bin/procshot");
    let mut fixture =
        Image::distroless_static(FIXTURE_IMAGE, "65532:65532", "/usr/local/bin/fixture");
    fixture.add_binary(&bins.fixture, "/usr/local/bin/fixture");
    fixture.add_binary(&bins.leaky, "/usr/local/bin/leaky");
    let node = Node::start(NodeConfig {
        name: format!("nodebed-{}", std::process::id()),
        pause_binary: &bins.pause,
        images: vec![agent, fixture],
        cni_plugin: Path::new(env!("CARGO_BIN_EXE_procshot-testbed-cni")),
    })
    .await
    .unwrap_or_else(|e| panic!("the test node did not start: {e}"));
    eprintln!(
        "test node {} runs {}",
        node.dir().display(),
        node.runtime_version()
    );
    node
}

/// The target: pod `api` in `shop`, the fixture leaking one TCP socket in CLOSE_WAIT 20
/// times a second, as `make e2e`'s target runs (non-root, every capability dropped,
/// RuntimeDefault seccomp, read-only root, Burstable).
pub fn target_pod(node: &Node) -> Pod {
    pod_yaml(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: api
  namespace: shop
  labels: {{app: api}}
spec:
  nodeName: {node}
  automountServiceAccountToken: false
  enableServiceLinks: false
  terminationGracePeriodSeconds: 2
  restartPolicy: Always
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    seccompProfile: {{type: RuntimeDefault}}
  containers:
    - name: api
      image: {FIXTURE_IMAGE}
      imagePullPolicy: IfNotPresent
      args: [leak, socket-close-wait, "20"]
      stdin: true
      env: [{{name: FIXTURE_DIR, value: /tmp}}]
      volumeMounts: [{{name: tmp, mountPath: /tmp}}]
      resources:
        requests: {{cpu: 10m, memory: 16Mi}}
        limits: {{memory: 64Mi}}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities: {{drop: [ALL]}}
  volumes:
    - name: tmp
      emptyDir: {{}}
"#,
        node = node.kubelet().node_name()
    ))
}

/// A Pod from YAML.
pub fn pod_yaml(yaml: &str) -> Pod {
    serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("not a Pod: {e}\n{yaml}"))
}

/// Runs `pod` on `node` and waits until its containers run and the fixture is READY.
pub async fn run_target(node: &Node, pod: Pod) -> PodHandle {
    let target = node
        .kubelet()
        .run(pod)
        .expect("the stand-in runs the target pod");
    target.running(WAIT).await.expect("the target runs");
    let name = target.pod().spec.unwrap().containers[0].name.clone();
    target
        .wait_for("the fixture's READY line", WAIT, |_| {
            target.log(&name, 0).iter().any(|l| l.starts_with("READY"))
        })
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the fixture did not get ready: {e}; log: {:?}",
                target.log(&name, 0)
            )
        });
    target
}

/// A DebugSession of pod `api` in `shop` with `spec` (YAML lines under `spec:`, after
/// the target).
pub fn session(spec: &str) -> String {
    format!(
        "apiVersion: procshot.dev/v1alpha1\nkind: DebugSession\nmetadata:\n  name: api-incident\n  \
         namespace: shop\n  uid: 0b0e3c1a-0000-4000-8000-00000000c0de\nspec:\n  target: {{pod: api}}\n{spec}"
    )
}

/// The capture pod `procshot-operator render` makes for `session` and the target pod as
/// the API server would return it (with its status), with the operator flags `flags`.
pub fn render(session: &str, target: &Pod, flags: &[&str]) -> Pod {
    let dir = tempfile::tempdir().unwrap();
    let session_file = dir.path().join("session.yaml");
    let target_file = dir.path().join("target.yaml");
    std::fs::write(&session_file, session).unwrap();
    std::fs::write(&target_file, serde_saphyr::to_string(target).unwrap()).unwrap();
    let output = Command::new(&binaries().operator)
        .arg("render")
        .arg("--session")
        .arg(&session_file)
        .arg("--target-pod")
        .arg(&target_file)
        .arg(format!("--agent-image={AGENT_IMAGE}"))
        .args(flags)
        .output()
        .expect("procshot-operator runs");
    assert!(
        output.status.success(),
        "procshot-operator render failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    pod_yaml(&String::from_utf8(output.stdout).unwrap())
}

/// Runs the capture pod and waits until it ends; returns it and what the operator makes
/// of it.
pub async fn capture(node: &Node, capture_pod: Pod) -> (PodHandle, Pod, Observation) {
    let handle = node
        .kubelet()
        .run(capture_pod)
        .expect("the stand-in runs the capture pod");
    let done = handle.finished(WAIT).await.expect("the capture pod ends");
    let observation = observe(&done, "api");
    (handle, done, observation)
}

/// The host path of volume `name` of a pod.
pub fn volume(handle: &PodHandle, name: &str) -> PathBuf {
    handle
        .plan()
        .volumes
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("the pod has no volume {name}"))
        .host_path
        .clone()
}

/// The terminated state of container `name` (init or not) of a finished pod.
pub fn terminated(pod: &Pod, name: &str) -> k8s_openapi::api::core::v1::ContainerStateTerminated {
    let status = pod.status.as_ref().expect("a status");
    status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .find(|c| c.name == name)
        .and_then(|c| c.state.as_ref()?.terminated.clone())
        .unwrap_or_else(|| panic!("container {name} has not terminated: {status:?}"))
}

/// Ends the node gracefully and asserts that nothing had to be forced.
pub async fn shut_down(node: Node) {
    let leftovers = node.shutdown().await;
    assert!(leftovers.is_empty(), "the node left {leftovers:?}");
}

/// Capability bits of `/proc/PID/status`'s `CapEff`.
pub fn effective_capabilities(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap()
        .trim();
    u64::from_str_radix(hex, 16).unwrap()
}

/// A field of `/proc/PID/status`.
pub fn status_field(pid: i32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_string()
}
