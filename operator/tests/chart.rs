//! The Helm chart (`charts/procshot`): `helm lint`, `helm template` with the default values
//! and with non-default ones, every rendered object validated with `kubernetes-validate
//! --strict` for Kubernetes 1.29 and 1.37, and what the objects say: the CRD is kept by
//! `helm uninstall` and is the generated one, the operator passes the `restricted`
//! PodSecurity level and gets the policy values, the RBAC is least privilege, the user
//! roles aggregate into edit/admin/view, and the schema refuses bad values.
//!
//! Needs `helm` (`scripts/install-helm.sh` installs it in the user's cache directory, or set
//! `HELM=/path/to/helm`) and `kubernetes-validate` (`scripts/install-test-deps.sh`). Without
//! them the tests fail, they never skip.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use procshot_operator::api::DebugSession;
use serde_json::Value;

const RELEASE: &str = "procshot";
const NAMESPACE: &str = "procshot-system";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// Non-default values touching every setting the templates branch on.
const CUSTOM_VALUES: &str = r#"
crds:
  install: false
captureNamespace:
  name: procshot-captures
  create: true
  label: true
replicas: 3
policy:
  allowedCaptures: [threads, memory, core]
  maxTimeout: 1h30m
  maxCapturesPerNode: 4
  kernelStacks: true
  coreMaxBytes: 512Mi
output:
  default: s3://fleet-captures/k8s
  endpoint: http://minio.storage:9000
  region: eu-west-1
  secretName: s3-writer
  allowedSecrets: [team-a-keys, team-b-keys]
images:
  operator:
    repository: registry.example/procshot-operator
    tag: "1.2.3"
    pullPolicy: Always
  agent:
    repository: registry.example/procshot
    tag: "1.2.3"
imagePullSecrets:
  - name: registry-credentials
leaderElection:
  leaseName: procshot-leader
logLevel: info,procshot_operator=debug
metrics:
  port: 9090
  service:
    port: 9100
    annotations:
      prometheus.io/scrape: "true"
  serviceMonitor:
    enabled: true
    labels:
      release: prometheus
    interval: 15s
    scrapeTimeout: 5s
resources:
  requests: {cpu: 100m, memory: 128Mi}
  limits: {memory: 512Mi}
nodeSelector:
  kubernetes.io/os: linux
tolerations:
  - {key: dedicated, operator: Equal, value: infra, effect: NoSchedule}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              app.kubernetes.io/component: operator
podAnnotations:
  example.com/team: platform
priorityClassName: system-cluster-critical
"#;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the operator crate is in the workspace root")
        .to_path_buf()
}

fn chart_dir() -> PathBuf {
    repo_root().join("charts/procshot")
}

/// The helm binary: `$HELM`, else where `scripts/install-helm.sh` puts it.
fn helm_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("HELM") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "HELM={} does not exist: unset it or point it at a helm binary",
            path.display()
        );
        return path;
    }
    let dir = match std::env::var_os("PROCSHOT_HELM_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("XDG_CACHE_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .expect("neither HELM, XDG_CACHE_HOME nor HOME is set: cannot find helm")
            .join("procshot/helm"),
    };
    let path = dir.join("helm");
    assert!(
        path.is_file(),
        "helm is not installed at {}: run scripts/install-helm.sh (make test-deps does), or set HELM=/path/to/helm",
        path.display()
    );
    path
}

fn helm(args: &[&str]) -> Output {
    Command::new(helm_bin())
        .args(args)
        .output()
        .expect("running helm")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A temporary values file.
fn values_file(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, yaml).unwrap();
    path
}

/// One rendered object: the YAML helm printed and its parsed value.
struct Doc {
    yaml: String,
    value: Value,
}

impl Doc {
    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }
    fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or_default()
    }
}

/// `helm template` output split into documents (helm separates them with `---` lines).
fn split(rendered: &str) -> Vec<Doc> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let flush = |current: &mut String, docs: &mut Vec<Doc>| {
        let content = current.lines().any(|l| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with('#')
        });
        if content {
            let value: Value = serde_saphyr::from_str(current)
                .unwrap_or_else(|e| panic!("helm printed invalid YAML ({e}):\n{current}"));
            docs.push(Doc {
                yaml: std::mem::take(current),
                value,
            });
        }
        current.clear();
    };
    for line in rendered.lines() {
        if line == "---" {
            flush(&mut current, &mut docs);
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    flush(&mut current, &mut docs);
    docs
}

/// `helm template` of the chart in namespace procshot-system with extra arguments; panics
/// with helm's message when it fails.
fn render(args: &[&str]) -> Vec<Doc> {
    let chart = chart_dir();
    let mut all = vec![
        "template",
        RELEASE,
        chart.to_str().unwrap(),
        "--namespace",
        NAMESPACE,
    ];
    all.extend_from_slice(args);
    let output = helm(&all);
    assert!(
        output.status.success(),
        "helm {} failed:\n{}",
        all.join(" "),
        text(&output.stderr)
    );
    split(&text(&output.stdout))
}

fn render_default() -> Vec<Doc> {
    render(&[])
}

fn render_custom() -> Vec<Doc> {
    let dir = tempfile::tempdir().unwrap();
    let values = values_file(dir.path(), "custom.yaml", CUSTOM_VALUES);
    render(&["-f", values.to_str().unwrap()])
}

/// The one object of `kind` named `name`.
fn find<'a>(docs: &'a [Doc], kind: &str, name: &str) -> &'a Value {
    let found: Vec<&Doc> = docs
        .iter()
        .filter(|d| d.kind() == kind && d.name() == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {kind} {name}, rendered: {:?}",
        kinds(docs)
    );
    &found[0].value
}

fn of_kind<'a>(docs: &'a [Doc], kind: &str) -> Vec<&'a Value> {
    docs.iter()
        .filter(|d| d.kind() == kind)
        .map(|d| &d.value)
        .collect()
}

/// "Kind/name" of every object, sorted.
fn kinds(docs: &[Doc]) -> Vec<String> {
    let mut all: Vec<String> = docs
        .iter()
        .map(|d| format!("{}/{}", d.kind(), d.name()))
        .collect();
    all.sort();
    all
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {value:#}"))
}

/// The operator container's environment: name to literal value (or `fieldRef:PATH`).
fn env(deployment: &Value) -> BTreeMap<String, String> {
    deployment
        .pointer("/spec/template/spec/containers/0/env")
        .and_then(Value::as_array)
        .expect("the operator container has env")
        .iter()
        .map(|e| {
            let name = e["name"].as_str().unwrap().to_string();
            let value = match e.get("value") {
                Some(v) => v.as_str().expect("env values are strings").to_string(),
                None => format!("fieldRef:{}", str_at(e, "/valueFrom/fieldRef/fieldPath")),
            };
            (name, value)
        })
        .collect()
}

/// A role's rules as comparable lines: `group resource [names] verbs` (verbs sorted).
fn rules(role: &Value) -> BTreeSet<String> {
    let list = |v: &Value, key: &str| -> Vec<String> {
        v.get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().expect("rules") {
        let mut verbs = list(rule, "verbs");
        verbs.sort();
        let names = list(rule, "resourceNames");
        for group in list(rule, "apiGroups") {
            for resource in list(rule, "resources") {
                let names = if names.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", names.join(","))
                };
                out.insert(format!(
                    "{} {resource}{names} {}",
                    if group.is_empty() { "core" } else { &group },
                    verbs.join(",")
                ));
            }
        }
    }
    out
}

fn set(lines: &[&str]) -> BTreeSet<String> {
    lines.iter().map(|s| s.to_string()).collect()
}

/// Every number as f64: Helm's fromYaml/toYaml round trip prints `maximum: 100.0` as
/// `maximum: 100`, the same value to the API server.
fn normalize(value: &Value) -> Value {
    match value {
        Value::Number(n) => serde_json::json!(n.as_f64().unwrap()),
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), normalize(v))).collect())
        }
        other => other.clone(),
    }
}

/// Validates every rendered object except ServiceMonitors (no upstream schema) with
/// `kubernetes-validate --strict` for Kubernetes 1.29 and 1.37; returns how many.
fn validate(docs: &[Doc]) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (index, doc) in docs.iter().enumerate() {
        if doc.kind() == "ServiceMonitor" {
            assert_eq!(doc.value["apiVersion"], "monitoring.coreos.com/v1");
            continue;
        }
        let file = dir
            .path()
            .join(format!("{index:02}-{}-{}.yaml", doc.kind(), doc.name()));
        std::fs::write(&file, &doc.yaml).unwrap();
        files.push(file);
    }
    assert!(!files.is_empty(), "nothing to validate");
    for version in ["1.29.0", "1.37.0"] {
        let output = Command::new("kubernetes-validate")
            .args(["--strict", "-k", version])
            .args(&files)
            .output()
            .expect("kubernetes-validate is needed (scripts/install-test-deps.sh installs it: pip install kubernetes-validate)");
        let stdout = text(&output.stdout);
        assert!(
            output.status.success(),
            "Kubernetes {version} refuses a rendered manifest:\n{stdout}{}",
            text(&output.stderr)
        );
        let passed = stdout.matches(" passed for resource ").count();
        assert_eq!(
            passed,
            files.len(),
            "kubernetes-validate {version} did not report every file as passed:\n{stdout}"
        );
    }
    files.len()
}

/// The PodSecurity `restricted` checklist (and a read-only root filesystem) on a pod
/// template.
fn assert_restricted(deployment: &Value) {
    let pod = &deployment["spec"]["template"]["spec"];
    for host in ["hostNetwork", "hostPID", "hostIPC", "hostUsers"] {
        assert!(
            pod.get(host).is_none() || (host == "hostUsers" && pod[host] == true),
            "{host} set: {pod:#}"
        );
    }
    assert!(pod.get("volumes").is_none(), "the operator needs no volume");
    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"], true);
    assert_ne!(psc["runAsUser"], 0);
    assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault");
    assert!(psc.get("sysctls").is_none());
    assert!(pod.get("initContainers").is_none());
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    for c in containers {
        let sc = &c["securityContext"];
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{c:#}");
        assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
        assert!(sc["capabilities"].get("add").is_none());
        assert_ne!(sc["privileged"], true);
        assert_ne!(sc["runAsNonRoot"], false);
        assert_ne!(sc["runAsUser"], 0);
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert!(
            sc.get("seccompProfile").is_none() || sc["seccompProfile"]["type"] == "RuntimeDefault"
        );
        assert!(sc.get("procMount").is_none());
        for port in c["ports"].as_array().unwrap() {
            assert!(port.get("hostPort").is_none());
        }
    }
}

/// Runs `procshot-operator render` with exactly the environment the Deployment gives the
/// operator (POD_NAME aside), for the fixture session asking for `capture`.
fn operator_render(deployment: &Value, capture: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let session = std::fs::read_to_string(Path::new(FIXTURES).join("session.yaml"))
        .unwrap()
        .replace(
            "capture: [fds, threads, memory]",
            &format!("capture: [{capture}]"),
        );
    let session_file = values_file(dir.path(), "session.yaml", &session);
    let mut command = Command::new(env!("CARGO_BIN_EXE_procshot-operator"));
    command.env_clear();
    for (name, value) in env(deployment) {
        if !value.starts_with("fieldRef:") {
            command.env(name, value);
        }
    }
    command
        .arg("render")
        .arg("--session")
        .arg(&session_file)
        .arg("--target-pod")
        .arg(Path::new(FIXTURES).join("target-pod.yaml"))
        .output()
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

/// The chart renders its CRD from a copy of the generated file; a stale copy would install
/// an old schema.
#[test]
fn chart_crd_copy_is_identical_to_the_generated_crd() {
    let generated = std::fs::read(repo_root().join("crds/debugsession.yaml")).unwrap();
    let copy = std::fs::read(chart_dir().join("files/debugsession.yaml")).unwrap();
    assert!(
        copy == generated,
        "charts/procshot/files/debugsession.yaml differs from crds/debugsession.yaml: \
         run `make crds` (or cp crds/debugsession.yaml charts/procshot/files/)"
    );
}

#[test]
fn helm_lint_passes_with_default_and_custom_values() {
    let dir = tempfile::tempdir().unwrap();
    let custom = values_file(dir.path(), "custom.yaml", CUSTOM_VALUES);
    let chart = chart_dir();
    let chart = chart.to_str().unwrap();
    for args in [
        vec!["lint", chart],
        vec!["lint", "--strict", chart],
        vec!["lint", "--strict", chart, "-f", custom.to_str().unwrap()],
        vec![
            "lint",
            "--strict",
            chart,
            "--namespace",
            NAMESPACE,
            "--set",
            "captureNamespace.name=procshot-system",
        ],
    ] {
        let output = helm(&args);
        let stdout = text(&output.stdout);
        assert!(
            output.status.success(),
            "helm {} failed:\n{stdout}{}",
            args.join(" "),
            text(&output.stderr)
        );
        assert!(
            stdout.contains("1 chart(s) linted, 0 chart(s) failed"),
            "{stdout}"
        );
        assert!(!stdout.contains("[WARNING]"), "{stdout}");
        assert!(!stdout.contains("[ERROR]"), "{stdout}");
    }
}

#[test]
fn default_manifests_validate_for_kubernetes_1_29_and_1_37() {
    let docs = render_default();
    assert_eq!(
        kinds(&docs),
        [
            "ClusterRole/procshot-edit",
            "ClusterRole/procshot-operator",
            "ClusterRole/procshot-view",
            "ClusterRoleBinding/procshot-operator",
            "CustomResourceDefinition/debugsessions.procshot.dev",
            "Deployment/procshot-operator",
            "Role/procshot-operator-capture",
            "Role/procshot-operator-leader-election",
            "RoleBinding/procshot-operator-capture",
            "RoleBinding/procshot-operator-leader-election",
            "Service/procshot-operator-metrics",
            "ServiceAccount/procshot-operator",
        ]
    );
    assert_eq!(validate(&docs), 12);
}

#[test]
fn custom_manifests_validate_for_kubernetes_1_29_and_1_37() {
    let docs = render_custom();
    assert_eq!(
        kinds(&docs),
        [
            "ClusterRole/procshot-edit",
            "ClusterRole/procshot-operator",
            "ClusterRole/procshot-view",
            "ClusterRoleBinding/procshot-operator",
            "Deployment/procshot-operator",
            "Namespace/procshot-captures",
            "Role/procshot-operator-capture",
            "Role/procshot-operator-leader-election",
            "RoleBinding/procshot-operator-capture",
            "RoleBinding/procshot-operator-leader-election",
            "Service/procshot-operator-metrics",
            "ServiceAccount/procshot-operator",
            "ServiceMonitor/procshot-operator",
        ]
    );
    // Everything but the ServiceMonitor.
    assert_eq!(validate(&docs), 12);
}

#[test]
fn crd_is_kept_on_uninstall_and_is_the_generated_crd() {
    let docs = render_default();
    let crd = find(
        &docs,
        "CustomResourceDefinition",
        "debugsessions.procshot.dev",
    );
    let generated: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(repo_root().join("crds/debugsession.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        crd["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
        "without the keep policy `helm uninstall` deletes the CRD and every DebugSession"
    );
    assert_eq!(
        crd["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "Helm"
    );
    assert_eq!(crd["apiVersion"], generated["apiVersion"]);
    assert_eq!(crd["kind"], generated["kind"]);
    assert!(
        normalize(&crd["spec"]) == normalize(&generated["spec"]),
        "the rendered CRD's spec differs from crds/debugsession.yaml"
    );
    // Apart from the added labels and annotations, the metadata is the generated one.
    let strip = |v: &Value| {
        let mut m = v["metadata"].as_object().unwrap().clone();
        m.remove("labels");
        m.remove("annotations");
        m
    };
    assert_eq!(strip(crd), strip(&generated));
    // No other top-level field was added or lost.
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(crd), keys(&generated));

    let without = render(&["--set", "crds.install=false"]);
    assert!(of_kind(&without, "CustomResourceDefinition").is_empty());
    assert_eq!(without.len(), docs.len() - 1);
}

#[test]
fn operator_pod_passes_the_restricted_pod_security_level() {
    for docs in [render_default(), render_custom()] {
        let deployment = find(&docs, "Deployment", "procshot-operator");
        assert_restricted(deployment);
        let spec = &deployment["spec"]["template"]["spec"];
        assert_eq!(spec["serviceAccountName"], "procshot-operator");
        let container = &spec["containers"][0];
        assert_eq!(
            container["livenessProbe"]["httpGet"],
            serde_json::json!({"path": "/healthz", "port": "http"})
        );
        assert_eq!(
            container["readinessProbe"]["httpGet"],
            serde_json::json!({"path": "/readyz", "port": "http"})
        );
        assert_eq!(container["ports"][0]["name"], "http");
        assert!(container["resources"]["requests"].is_object());
        assert!(container["resources"]["limits"]["memory"].is_string());
    }
}

#[test]
fn deployment_carries_the_values() {
    let docs = render_default();
    let deployment = find(&docs, "Deployment", "procshot-operator");
    assert_eq!(deployment["metadata"]["namespace"], NAMESPACE);
    assert_eq!(deployment["spec"]["replicas"], 2);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["image"],
        "ghcr.io/procshot/procshot-operator:0.1.0"
    );
    assert_eq!(container["imagePullPolicy"], "IfNotPresent");
    assert!(container.get("args").is_none());
    let expected: BTreeMap<String, String> = [
        ("POD_NAME", "fieldRef:metadata.name"),
        ("POD_NAMESPACE", "fieldRef:metadata.namespace"),
        ("PROCSHOT_LEASE_NAME", "procshot-operator"),
        ("PROCSHOT_NAMESPACE", NAMESPACE),
        ("PROCSHOT_AGENT_IMAGE", "ghcr.io/procshot/procshot:0.1.0"),
        (
            "PROCSHOT_ALLOWED_CAPTURES",
            "fds,threads,memory,stacks,goroutines",
        ),
        ("PROCSHOT_MAX_TIMEOUT", "30m"),
        ("PROCSHOT_MAX_CAPTURES_PER_NODE", "2"),
        ("PROCSHOT_KERNEL_STACKS", "false"),
        ("PROCSHOT_CORE_MAX_BYTES", "4Gi"),
        ("PROCSHOT_OUTPUT_SECRET", "procshot-output"),
        ("PROCSHOT_HTTP_ADDR", "0.0.0.0:8080"),
        ("RUST_LOG", "info"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(env(deployment), expected);

    let docs = render_custom();
    let deployment = find(&docs, "Deployment", "procshot-operator");
    assert_eq!(deployment["spec"]["replicas"], 3);
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(
        container["image"],
        "registry.example/procshot-operator:1.2.3"
    );
    assert_eq!(container["imagePullPolicy"], "Always");
    assert_eq!(container["ports"][0]["containerPort"], 9090);
    assert_eq!(container["resources"]["limits"]["memory"], "512Mi");
    assert_eq!(pod["nodeSelector"]["kubernetes.io/os"], "linux");
    assert_eq!(pod["tolerations"][0]["key"], "dedicated");
    assert_eq!(
        pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"],
        100
    );
    assert_eq!(pod["imagePullSecrets"][0]["name"], "registry-credentials");
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");
    assert_eq!(
        deployment["spec"]["template"]["metadata"]["annotations"]["example.com/team"],
        "platform"
    );
    let env = env(deployment);
    for (name, value) in [
        ("PROCSHOT_LEASE_NAME", "procshot-leader"),
        ("PROCSHOT_NAMESPACE", "procshot-captures"),
        ("PROCSHOT_AGENT_IMAGE", "registry.example/procshot:1.2.3"),
        ("PROCSHOT_ALLOWED_CAPTURES", "threads,memory,core"),
        ("PROCSHOT_MAX_TIMEOUT", "1h30m"),
        ("PROCSHOT_MAX_CAPTURES_PER_NODE", "4"),
        ("PROCSHOT_KERNEL_STACKS", "true"),
        ("PROCSHOT_CORE_MAX_BYTES", "512Mi"),
        ("PROCSHOT_DEFAULT_OUTPUT", "s3://fleet-captures/k8s"),
        (
            "PROCSHOT_DEFAULT_OUTPUT_ENDPOINT",
            "http://minio.storage:9000",
        ),
        ("PROCSHOT_DEFAULT_OUTPUT_REGION", "eu-west-1"),
        ("PROCSHOT_OUTPUT_SECRET", "s3-writer"),
        ("PROCSHOT_ALLOWED_OUTPUT_SECRETS", "team-a-keys,team-b-keys"),
        ("PROCSHOT_HTTP_ADDR", "0.0.0.0:9090"),
        ("RUST_LOG", "info,procshot_operator=debug"),
    ] {
        assert_eq!(env.get(name).map(String::as_str), Some(value), "{name}");
    }
}

/// The operator binary accepts the environment the chart gives it, and applies it.
#[test]
fn operator_accepts_the_rendered_environment() {
    let docs = render_default();
    let output = operator_render(
        find(&docs, "Deployment", "procshot-operator"),
        "fds, threads, memory",
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let pod: Value = serde_saphyr::from_str(&text(&output.stdout)).unwrap();
    assert_eq!(pod["metadata"]["namespace"], NAMESPACE);
    assert_eq!(
        pod["spec"]["containers"][0]["image"],
        "ghcr.io/procshot/procshot:0.1.0"
    );
    let caps = &pod["spec"]["containers"][0]["securityContext"]["capabilities"]["add"];
    assert_eq!(caps, &serde_json::json!(["DAC_READ_SEARCH", "SYS_PTRACE"]));

    let docs = render_custom();
    let deployment = find(&docs, "Deployment", "procshot-operator");
    let output = operator_render(deployment, "threads, memory");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let pod: Value = serde_saphyr::from_str(&text(&output.stdout)).unwrap();
    assert_eq!(pod["metadata"]["namespace"], "procshot-captures");
    assert_eq!(
        pod["spec"]["containers"][0]["image"],
        "registry.example/procshot:1.2.3"
    );
    let caps = &pod["spec"]["containers"][0]["securityContext"]["capabilities"]["add"];
    assert!(
        caps.as_array().unwrap().contains(&"SYS_ADMIN".into()),
        "kernelStacks: true must add SYS_ADMIN: {caps}"
    );
    // fds is not in policy.allowedCaptures.
    let output = operator_render(deployment, "fds");
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("PolicyRefused"),
        "{}",
        text(&output.stderr)
    );
    // core is, and policy.coreMaxBytes sizes the capture pod's scratch volume.
    let output = operator_render(deployment, "memory, core");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let pod: Value = serde_saphyr::from_str(&text(&output.stdout)).unwrap();
    let args = pod["spec"]["containers"][0]["args"].to_string();
    assert!(
        args.contains(&format!("--core-max-bytes={}", 512u64 << 20)),
        "{args}"
    );
    assert_eq!(
        pod["spec"]["volumes"][0]["emptyDir"]["sizeLimit"],
        ((256u64 + 512) << 20).to_string()
    );
}

#[test]
fn operator_rbac_is_least_privilege() {
    let docs = render_default();
    let cluster_role = find(&docs, "ClusterRole", "procshot-operator");
    assert_eq!(
        rules(cluster_role),
        set(&[
            "procshot.dev debugsessions delete,get,list,patch,update,watch",
            "procshot.dev debugsessions/status get,patch,update",
            "procshot.dev debugsessions/finalizers update",
            "core pods get,list",
            "events.k8s.io events create,patch",
        ])
    );
    let capture = find(&docs, "Role", "procshot-operator-capture");
    assert_eq!(capture["metadata"]["namespace"], NAMESPACE);
    assert_eq!(
        rules(capture),
        set(&["core pods create,delete,get,list,watch"])
    );
    let lease = find(&docs, "Role", "procshot-operator-leader-election");
    assert_eq!(lease["metadata"]["namespace"], NAMESPACE);
    assert_eq!(
        rules(lease),
        set(&[
            "coordination.k8s.io leases create",
            "coordination.k8s.io leases [procshot-operator] get,patch,update",
        ])
    );
    // Every binding gives its role to the operator's service account, and only that.
    let subject = serde_json::json!([{
        "kind": "ServiceAccount",
        "name": "procshot-operator",
        "namespace": NAMESPACE,
    }]);
    let binding = find(&docs, "ClusterRoleBinding", "procshot-operator");
    assert_eq!(binding["subjects"], subject);
    assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
    assert_eq!(binding["roleRef"]["name"], "procshot-operator");
    for (name, namespace) in [
        ("procshot-operator-capture", NAMESPACE),
        ("procshot-operator-leader-election", NAMESPACE),
    ] {
        let binding = find(&docs, "RoleBinding", name);
        assert_eq!(binding["metadata"]["namespace"], namespace);
        assert_eq!(binding["subjects"], subject);
        assert_eq!(binding["roleRef"]["kind"], "Role");
        assert_eq!(binding["roleRef"]["name"], name);
    }
    // Nothing else grants anything: three ClusterRoles (operator, edit, view), two Roles.
    assert_eq!(of_kind(&docs, "ClusterRole").len(), 3);
    assert_eq!(of_kind(&docs, "Role").len(), 2);

    // A dedicated capture namespace: the pods Role moves there, the Lease Role stays in
    // the release namespace, where the operator keeps its Lease (POD_NAMESPACE).
    let docs = render_custom();
    let capture = find(&docs, "Role", "procshot-operator-capture");
    assert_eq!(capture["metadata"]["namespace"], "procshot-captures");
    assert_eq!(
        rules(capture),
        set(&["core pods create,delete,get,list,watch"])
    );
    let binding = find(&docs, "RoleBinding", "procshot-operator-capture");
    assert_eq!(binding["metadata"]["namespace"], "procshot-captures");
    assert_eq!(binding["subjects"], subject);
    let lease = find(&docs, "Role", "procshot-operator-leader-election");
    assert_eq!(lease["metadata"]["namespace"], NAMESPACE);
    assert_eq!(
        rules(lease),
        set(&[
            "coordination.k8s.io leases create",
            "coordination.k8s.io leases [procshot-leader] get,patch,update",
        ])
    );
}

#[test]
fn user_roles_aggregate_into_edit_admin_and_view() {
    let docs = render_default();
    let edit = find(&docs, "ClusterRole", "procshot-edit");
    let labels = &edit["metadata"]["labels"];
    assert_eq!(
        labels["rbac.authorization.k8s.io/aggregate-to-edit"],
        "true"
    );
    assert_eq!(
        labels["rbac.authorization.k8s.io/aggregate-to-admin"],
        "true"
    );
    assert!(
        labels
            .get("rbac.authorization.k8s.io/aggregate-to-view")
            .is_none()
    );
    assert_eq!(
        rules(edit),
        set(&["procshot.dev debugsessions create,delete,get,list,patch,update,watch"])
    );
    let view = find(&docs, "ClusterRole", "procshot-view");
    let labels = &view["metadata"]["labels"];
    assert_eq!(
        labels["rbac.authorization.k8s.io/aggregate-to-view"],
        "true"
    );
    assert!(
        labels
            .get("rbac.authorization.k8s.io/aggregate-to-edit")
            .is_none()
    );
    assert_eq!(
        rules(view),
        set(&["procshot.dev debugsessions get,list,watch"])
    );
}

#[test]
fn capture_namespace_is_created_and_labelled_only_when_dedicated() {
    // Default: the release namespace, which a chart cannot create or label.
    assert!(of_kind(&render_default(), "Namespace").is_empty());
    assert!(
        of_kind(
            &render(&["--set", &format!("captureNamespace.name={NAMESPACE}")]),
            "Namespace"
        )
        .is_empty()
    );

    let docs = render_custom();
    let namespace = find(&docs, "Namespace", "procshot-captures");
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "privileged"
    );

    let unlabelled = render(&[
        "--set",
        "captureNamespace.name=procshot-captures",
        "--set",
        "captureNamespace.label=false",
    ]);
    let namespace = find(&unlabelled, "Namespace", "procshot-captures");
    assert!(
        namespace["metadata"]["labels"]
            .get("pod-security.kubernetes.io/enforce")
            .is_none()
    );

    // An existing namespace: not created, but the operator's Role and env point at it.
    let existing = render(&[
        "--set",
        "captureNamespace.name=debug",
        "--set",
        "captureNamespace.create=false",
    ]);
    assert!(of_kind(&existing, "Namespace").is_empty());
    assert_eq!(
        find(&existing, "Role", "procshot-operator-capture")["metadata"]["namespace"],
        "debug"
    );
    assert_eq!(
        env(find(&existing, "Deployment", "procshot-operator"))["PROCSHOT_NAMESPACE"],
        "debug"
    );
}

#[test]
fn metrics_service_and_service_monitor_target_the_http_port() {
    let docs = render_default();
    assert!(of_kind(&docs, "ServiceMonitor").is_empty());
    let service = find(&docs, "Service", "procshot-operator-metrics");
    let deployment = find(&docs, "Deployment", "procshot-operator");
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(
        service["spec"]["selector"]["app.kubernetes.io/component"], "operator",
        "the selector must not match capture pods (component: capture)"
    );
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    assert_eq!(service["spec"]["ports"][0]["name"], "http-metrics");

    let docs = render_custom();
    let service = find(&docs, "Service", "procshot-operator-metrics");
    assert_eq!(service["spec"]["ports"][0]["port"], 9100);
    assert_eq!(
        service["metadata"]["annotations"]["prometheus.io/scrape"],
        "true"
    );
    let monitor = find(&docs, "ServiceMonitor", "procshot-operator");
    assert_eq!(monitor["metadata"]["namespace"], NAMESPACE);
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        service["spec"]["selector"]
    );
    // The ServiceMonitor's selector matches the Service's labels.
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&service["metadata"]["labels"][key], value, "{key}");
    }
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], "http-metrics");
    assert_eq!(endpoint["path"], "/metrics");
    assert_eq!(endpoint["interval"], "15s");
    assert_eq!(endpoint["scrapeTimeout"], "5s");
}

#[test]
fn leader_election_can_be_disabled_for_one_replica() {
    let docs = render(&[
        "--set",
        "leaderElection.enabled=false",
        "--set",
        "replicas=1",
    ]);
    let deployment = find(&docs, "Deployment", "procshot-operator");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["args"],
        serde_json::json!(["--no-leader-election"])
    );
    let env = env(deployment);
    assert!(!env.contains_key("POD_NAME") && !env.contains_key("PROCSHOT_LEASE_NAME"));
    assert!(
        docs.iter()
            .all(|d| d.name() != "procshot-operator-leader-election")
    );
    validate(&docs);
}

#[test]
fn bad_values_fail_with_a_message() {
    let chart = chart_dir();
    for (set, message) in [
        (
            "policy.maxCapturesPerNode=-1",
            "policy.maxCapturesPerNode: Must be greater than or equal to 1",
        ),
        (
            "policy.maxCapturesPerNode=two",
            "policy.maxCapturesPerNode: Invalid type. Expected: integer, given: string",
        ),
        (
            "policy.allowedCaptures={fds,heapdump}",
            "policy.allowedCaptures.1",
        ),
        (
            "policy.maxTimeout=forever",
            "policy.maxTimeout: Does not match pattern",
        ),
        (
            "policy.kernelStacks=maybe",
            "policy.kernelStacks: Invalid type",
        ),
        (
            "policy.coreMaxBytes=4GB",
            "policy.coreMaxBytes: Does not match pattern",
        ),
        (
            "images.operator.pullPolicy=Sometimes",
            "images.operator.pullPolicy must be one of",
        ),
        ("replicas=0", "replicas: Must be greater than or equal to 1"),
        (
            "captureNamespace.name=Not_A_Namespace",
            "captureNamespace.name: Does not match pattern",
        ),
        (
            "policy.maxCaptures=3",
            "policy: Additional property maxCaptures is not allowed",
        ),
        (
            "metrics.port=70000",
            "metrics.port: Must be less than or equal to 65535",
        ),
        (
            "leaderElection.enabled=false",
            "leaderElection.enabled=false needs replicas: 1",
        ),
    ] {
        let output = helm(&[
            "template",
            RELEASE,
            chart.to_str().unwrap(),
            "--namespace",
            NAMESPACE,
            "--set",
            set,
        ]);
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "--set {set} was accepted");
        assert!(
            stderr.contains(message),
            "--set {set}: expected {message:?} in:\n{stderr}"
        );
    }
}

/// NOTES.txt (which `helm template` does not print) rendered through `tpl` in a copy of
/// the chart: its DebugSession example is a valid DebugSession and it says how to watch it.
#[test]
fn notes_show_a_valid_first_debugsession() {
    let notes = |args: &[&str]| -> String {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("procshot");
        std::fs::create_dir(&copy).unwrap();
        let status = Command::new("cp")
            .arg("-r")
            .arg(chart_dir().join("."))
            .arg(&copy)
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::copy(copy.join("templates/NOTES.txt"), copy.join("notes.txt")).unwrap();
        std::fs::write(
            copy.join("templates/notes-test.yaml"),
            "notes: |\n{{- tpl (.Files.Get \"notes.txt\") . | nindent 2 }}\n",
        )
        .unwrap();
        let mut all = vec![
            "template",
            RELEASE,
            copy.to_str().unwrap(),
            "--namespace",
            NAMESPACE,
            "--show-only",
            "templates/notes-test.yaml",
        ];
        all.extend_from_slice(args);
        let output = helm(&all);
        assert!(output.status.success(), "{}", text(&output.stderr));
        let docs = split(&text(&output.stdout));
        docs[0].value["notes"].as_str().unwrap().to_string()
    };

    let default = notes(&[]);
    assert!(
        default.contains("kubectl get dbg -n default -w"),
        "{default}"
    );
    assert!(
        default.contains(&format!(
            "kubectl label namespace {NAMESPACE} pod-security.kubernetes.io/enforce=privileged"
        )),
        "{default}"
    );
    // The example between `<<'YAML'` and `YAML` parses as a DebugSession.
    let start = default.find("<<'YAML'\n").expect("a heredoc") + "<<'YAML'\n".len();
    let end = start
        + default[start..]
            .find("\n  YAML")
            .expect("the heredoc's end");
    let example: String = default[start..end]
        .lines()
        .map(|l| l.strip_prefix("  ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let session: DebugSession = serde_saphyr::from_str(&example)
        .unwrap_or_else(|e| panic!("the NOTES example is not a DebugSession ({e}):\n{example}"));
    assert_eq!(session.spec.samples, 3);
    assert_eq!(session.spec.interval.as_deref(), Some("10s"));
    assert!(session.spec.target.pod.is_some());

    let dedicated = notes(&["--set", "captureNamespace.name=procshot-captures"]);
    assert!(
        dedicated.contains(
            "The chart created it with the label pod-security.kubernetes.io/enforce=privileged"
        ),
        "{dedicated}"
    );
    let no_crd = notes(&["--set", "crds.install=false"]);
    assert!(no_crd.contains("crds.install=false"), "{no_crd}");
}
