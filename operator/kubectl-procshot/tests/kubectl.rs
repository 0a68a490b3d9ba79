//! The real kubectl runs the plugin: it discovers `kubectl-procshot` on PATH, passes its
//! arguments through, and the DebugSession a client dry run prints passes the CRD's
//! schema (checked with Python's jsonschema, which kubernetes-validate brings, with
//! unknown fields refused as the API server's strict field validation does) and its CEL
//! rules (kube's CEL implementation). Namespaces come from the kubeconfig as kubectl
//! takes them.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use serde_json::{Value, json};

/// `kubectl ARGS…` with only the plugin's directory added to PATH.
fn kubectl(plugin_dir: &Path, kubeconfig: Option<&Path>, args: &[&str]) -> Output {
    let path = format!(
        "{}:{}",
        plugin_dir.display(),
        std::env::var("PATH").unwrap()
    );
    let mut command = Command::new("kubectl");
    command
        .args(args)
        .env("PATH", path)
        .env_remove("KUBECONFIG");
    if let Some(kubeconfig) = kubeconfig {
        command.env("KUBECONFIG", kubeconfig);
    }
    command
        .output()
        .expect("kubectl runs (scripts/install-test-deps.sh installs it)")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// Problems Python's jsonschema finds in `object` against the CRD's schema, unknown
/// fields included.
fn schema_problems(object: &Value) -> Vec<String> {
    let script = r#"
import json, sys, jsonschema
schema, obj = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
def strict(node):
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node \
                and not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
        for value in node.values():
            strict(value)
    elif isinstance(node, list):
        for item in node:
            strict(item)
# apiVersion, kind and metadata are the API server's; spec and status the CRD's.
for part in ("spec", "status"):
    strict(schema["properties"][part])
for error in jsonschema.Draft4Validator(schema).iter_errors(obj):
    print("/".join(map(str, error.absolute_path)) + ": " + error.message)
"#;
    let dir = tempfile::tempdir().unwrap();
    let (schema, obj) = (
        dir.path().join("schema.json"),
        dir.path().join("object.json"),
    );
    std::fs::write(&schema, serde_json::to_vec(&support::crd_schema()).unwrap()).unwrap();
    std::fs::write(&obj, serde_json::to_vec(object).unwrap()).unwrap();
    let output = Command::new("python3")
        .args(["-c", script])
        .arg(&schema)
        .arg(&obj)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "jsonschema (from kubernetes-validate; scripts/install-test-deps.sh) failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn kubectl_finds_the_plugin_on_path_and_shows_its_help() {
    let dir = support::plugin_path_dir();
    let list = stdout(&kubectl(dir.path(), None, &["plugin", "list"]));
    assert!(list.contains("kubectl-procshot"), "{list}");
    let help = stdout(&kubectl(dir.path(), None, &["procshot", "--help"]));
    assert!(help.contains("Usage: kubectl procshot"), "{help}");
    for command in [
        "capture", "get", "describe", "findings", "download", "delete",
    ] {
        assert!(
            help.contains(&format!("\n  {command} ")),
            "{command} in {help}"
        );
    }
    for absent in ["arm", "postmortem"] {
        assert!(
            !help.contains(&format!("\n  {absent}")),
            "{absent} is not there yet: {help}"
        );
        let output = kubectl(dir.path(), None, &["procshot", absent, "api"]);
        assert_eq!(output.status.code(), Some(2), "{absent} is not a command");
    }
    let capture = stdout(&kubectl(
        dir.path(),
        None,
        &["procshot", "capture", "--help"],
    ));
    assert!(
        capture.contains("--dry-run") && capture.contains("deploy/NAME"),
        "{capture}"
    );
}

/// A kubeconfig with two contexts on an address nothing listens on: a client dry run
/// must not need the cluster.
fn offline_kubeconfig(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\ncurrent-context: shop\n\
         clusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:9\n\
         users:\n- name: u\n  user:\n    token: t\n\
         contexts:\n- name: shop\n  context: {cluster: c, user: u, namespace: shop}\n\
         - name: payments\n  context: {cluster: c, user: u, namespace: payments}\n",
    )
    .unwrap();
    path
}

#[test]
fn a_client_dry_run_through_kubectl_prints_a_session_the_crd_accepts() {
    let dir = support::plugin_path_dir();
    let kubeconfig = offline_kubeconfig(dir.path());
    let yaml = stdout(&kubectl(
        dir.path(),
        Some(&kubeconfig),
        &[
            "procshot",
            "capture",
            "api-7d9f8-x2b4q",
            "-c",
            "api",
            "--capture",
            "fds,threads,memory,stacks",
            "--samples",
            "4",
            "--interval",
            "15s",
            "--go-pprof",
            "6060",
            "--timeout",
            "10m",
            "--ttl",
            "24h",
            "--output",
            "s3://evidence/incidents",
            "--output-endpoint",
            "https://minio.storage:9000",
            "--dry-run=client",
            "-o",
            "yaml",
        ],
    ));
    let session: Value = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(
        session["metadata"]["namespace"], "shop",
        "the current context's namespace"
    );
    assert_eq!(
        session["spec"]["target"],
        json!({"pod": "api-7d9f8-x2b4q", "container": "api"})
    );
    assert_eq!(
        session["spec"]["capture"],
        json!(["fds", "threads", "memory", "goroutines", "stacks"])
    );
    assert_eq!(
        support::violations(&session),
        Vec::<String>::new(),
        "CEL rules"
    );
    assert_eq!(schema_problems(&session), Vec::<String>::new(), "schema");

    // The check is real: a session the CRD refuses is refused here too.
    let mut bad = session.clone();
    bad["spec"]["samples"] = json!(0);
    bad["spec"]["captures"] = json!(["fds"]);
    let problems = schema_problems(&bad);
    assert!(
        problems.iter().any(|p| p.starts_with("spec/samples")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("'captures' was unexpected")),
        "{problems:?}"
    );
    bad["spec"].as_object_mut().unwrap().remove("interval");
    bad["spec"]["samples"] = json!(2);
    assert!(!support::violations(&bad).is_empty());

    // -n and --context choose the namespace as they do for kubectl.
    for (flags, namespace) in [
        (&["-n", "other"][..], "other"),
        (&["--context", "payments"][..], "payments"),
    ] {
        let mut args = vec![
            "procshot",
            "capture",
            "api",
            "--dry-run=client",
            "-o",
            "json",
        ];
        args.extend_from_slice(flags);
        let session: Value =
            serde_json::from_str(&stdout(&kubectl(dir.path(), Some(&kubeconfig), &args))).unwrap();
        assert_eq!(session["metadata"]["namespace"], namespace, "{flags:?}");
        assert_eq!(schema_problems(&session), Vec::<String>::new());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_procshot_get_reads_the_cluster_of_the_kubeconfig() {
    let router: support::Router = Arc::new(|call| match call.path.as_str() {
        support::SESSIONS => support::list(
            "DebugSessionList",
            vec![support::session(
                "api-leak",
                json!({"target": {"pod": "api-7d9f8-x2b4q"}, "samples": 1}),
                Some(
                    json!({"phase": "Succeeded", "findings": [{"pod": "api-7d9f8-x2b4q", "severity": "warning",
                    "code": "FD_GROWTH", "message": "m"}], "topFinding": "FD_GROWTH: sockets grew"}),
                ),
            )],
        ),
        _ => support::not_found(),
    });
    let server = support::ApiServer::start(router, None).await;
    let dir = support::plugin_path_dir();
    let kubeconfig = server.kubeconfig("shop");
    let output = tokio::task::spawn_blocking(move || {
        kubectl(dir.path(), Some(&kubeconfig), &["procshot", "get"])
    })
    .await
    .unwrap();
    let table = stdout(&output);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(
        lines[0].starts_with("NAME      PHASE      TARGET"),
        "{table}"
    );
    assert!(
        lines[1].starts_with(
            "api-leak  Succeeded  pod api-7d9f8-x2b4q  WARNING FD_GROWTH: sockets grew"
        ),
        "{table}"
    );
    assert_eq!(server.calls.lines(), [format!("GET {}", support::SESSIONS)]);
}
