//! The committed CRD is the one the types generate, and its CEL rules refuse bad specs with
//! messages that say what to fix (evaluated client-side with kube's CEL implementation).

use kube::CustomResourceExt;
use kube::core::cel::Validator;
use procshot_operator::api::DebugSession;
use serde_json::{Value, json};

const CRD_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/debugsession.yaml");

#[test]
fn the_committed_crd_is_generated_from_the_types() {
    let committed = std::fs::read_to_string(CRD_FILE).unwrap();
    let generated = serde_saphyr::to_string(&DebugSession::crd()).unwrap();
    assert!(
        committed == generated,
        "crds/debugsession.yaml is stale: run `make crds` and commit it"
    );
}

fn schema() -> Value {
    let crd: Value = serde_saphyr::from_str(&std::fs::read_to_string(CRD_FILE).unwrap()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn session(spec: Value) -> Value {
    json!({
        "apiVersion": "procshot.dev/v1alpha1",
        "kind": "DebugSession",
        "metadata": {"name": "api-fd-leak", "namespace": "shop"},
        "spec": spec,
    })
}

/// The messages of every rule the object breaks.
fn violations(object: &Value, old: Option<&Value>) -> Vec<String> {
    match Validator::new().validate(&schema(), object, old) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.into_vec().into_iter().map(|e| e.message).collect(),
    }
}

#[test]
fn good_specs_pass() {
    for spec in [
        json!({"target": {"pod": "api-7d9f8-x2b4q"}, "samples": 3, "interval": "10s"}),
        json!({"target": {"pod": "api"}, "samples": 1}),
        json!({"target": {"selector": {"matchLabels": {"app": "api"}}, "maxPods": 3}, "samples": 2, "interval": "5s", "capture": ["fds"]}),
        json!({"target": {"pod": "a"}, "samples": 1, "output": {"s3": {"bucket": "evidence", "endpoint": "https://minio:9000"}}}),
        json!({"target": {"pod": "a"}, "samples": 1, "output": {"pvc": {"claimName": "evidence", "path": "a/b"}}}),
        json!({"target": {"pod": "a"}, "samples": 1, "capture": ["stacks", "goroutines"], "goPprof": {"port": 6060}}),
        // Goroutines without goPprof are read from the program's memory.
        json!({"target": {"pod": "a"}, "samples": 1, "capture": ["fds", "goroutines"]}),
        json!({"target": {"pod": "a"}, "samples": 1, "goPprof": {"port": 6060, "host": "::1"}}),
        json!({"target": {"pod": "a"}, "samples": 1, "capture": ["core"], "core": {"maxBytes": "2Gi", "maxPause": "500ms"}}),
    ] {
        assert_eq!(
            violations(&session(spec.clone()), None),
            Vec::<String>::new(),
            "{spec}"
        );
    }
}

#[test]
fn bad_specs_are_refused_with_what_to_fix() {
    let cases = [
        (
            json!({"target": {}, "samples": 1}),
            "set exactly one of spec.target.pod and spec.target.selector",
        ),
        (
            json!({"target": {"pod": "a", "selector": {"matchLabels": {"app": "a"}}}, "samples": 1}),
            "set exactly one of spec.target.pod and spec.target.selector",
        ),
        (
            json!({"target": {"pod": "a", "maxPods": 2}, "samples": 1}),
            "spec.target.maxPods only applies with spec.target.selector",
        ),
        (
            json!({"target": {"pod": "a"}, "samples": 3}),
            "spec.interval is required when spec.samples > 1 (for example interval: 10s)",
        ),
        (
            json!({"target": {"pod": "a"}}),
            "spec.interval is required when spec.samples > 1 (for example interval: 10s)",
        ),
        (
            json!({"target": {"pod": "a"}, "samples": 1, "output": {}}),
            "set exactly one of spec.output.s3 and spec.output.pvc",
        ),
        (
            json!({"target": {"pod": "a"}, "samples": 1, "output": {"s3": {"bucket": "b"}, "pvc": {"claimName": "c"}}}),
            "set exactly one of spec.output.s3 and spec.output.pvc",
        ),
        (
            json!({"target": {"pod": "a"}, "samples": 1, "capture": ["memory"], "core": {"maxBytes": "1Gi"}}),
            "spec.core only applies when spec.capture includes core",
        ),
    ];
    for (spec, message) in cases {
        assert_eq!(
            violations(&session(spec.clone()), None),
            [message],
            "{spec}"
        );
    }
}

#[test]
fn long_names_and_spec_changes_are_refused() {
    let mut long = session(json!({"target": {"pod": "a"}, "samples": 1}));
    long["metadata"]["name"] = json!("x".repeat(53));
    assert_eq!(
        violations(&long, None),
        ["metadata.name must be at most 52 characters (capture pod names are derived from it)"]
    );

    let old = session(json!({"target": {"pod": "a"}, "samples": 1}));
    let new = session(json!({"target": {"pod": "b"}, "samples": 1}));
    assert_eq!(
        violations(&new, Some(&old)),
        ["a DebugSession's spec cannot be changed: create a new DebugSession"]
    );
    assert!(violations(&old, Some(&old)).is_empty());
}

#[test]
fn the_schema_constrains_values_and_prints_useful_columns() {
    let crd = DebugSession::crd();
    let version = &crd.spec.versions[0];
    let columns: Vec<&str> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Phase", "Target", "Finding", "Age"]);
    assert!(version.subresources.as_ref().unwrap().status.is_some());
    assert_eq!(crd.spec.names.short_names, Some(vec!["dbg".to_string()]));
    let spec = &schema()["properties"]["spec"]["properties"];
    assert_eq!(spec["samples"]["minimum"].as_f64(), Some(1.0));
    assert_eq!(
        spec["capture"]["items"]["enum"],
        json!(["fds", "threads", "memory", "goroutines", "stacks", "core"])
    );
    assert_eq!(
        spec["goPprof"]["properties"]["port"]["maximum"].as_f64(),
        Some(65535.0)
    );
    assert_eq!(spec["goPprof"]["required"], json!(["port"]));
    assert_eq!(spec["capture"]["x-kubernetes-list-type"], json!("set"));
    assert_eq!(spec["interval"]["pattern"], json!("^([0-9]+(ms|s|m|h))+$"));
}

#[test]
fn the_field_reference_is_generated_from_the_crd() {
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/debugsession-reference.md"
    ))
    .unwrap();
    let crd = serde_json::to_value(DebugSession::crd()).unwrap();
    let generated = procshot_operator::reference::markdown(&crd);
    assert!(
        committed == generated,
        "docs/debugsession-reference.md is stale: run `make crds` and commit it"
    );
    // Every spec field of the schema has a row.
    for field in [
        "spec.target.pod",
        "spec.target.selector",
        "spec.samples",
        "spec.interval",
        "spec.timeout",
        "spec.ttlSecondsAfterFinished",
    ] {
        assert!(
            generated.contains(&format!("| `{field}` |")),
            "{field} missing"
        );
    }
    assert!(generated.contains("set exactly one of spec.target.pod and spec.target.selector"));
}
