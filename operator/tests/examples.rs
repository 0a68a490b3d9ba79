//! Every example in `examples/` is a DebugSession the API server would accept: it parses
//! into the API types, passes the CRD's CEL rules and the operator's own checks.

use kube::core::cel::Validator;
use procshot_operator::api::{CaptureKind, DebugSession};
use procshot_operator::config::OperatorConfig;
use procshot_operator::plan::CapturePlan;
use serde_json::Value;

#[test]
fn every_example_is_a_valid_debug_session() {
    let crd: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../crds/debugsession.yaml"
        ))
        .unwrap(),
    )
    .unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let session: DebugSession =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let object = serde_json::to_value(&session).unwrap();
        if let Err(errors) = Validator::new().validate(schema, &object, None) {
            panic!("{} breaks the CRD's rules: {errors}", path.display());
        }
        // …and the operator's own checks (timeout long enough, default policy; a core
        // dump only once the admin allows it).
        let mut config = OperatorConfig::default();
        if session.spec.capture.contains(&CaptureKind::Core) {
            let refusal = CapturePlan::from_session(&session, &config).unwrap_err();
            assert_eq!(refusal.reason, "PolicyRefused", "{}", path.display());
            config.allowed_captures.insert(CaptureKind::Core);
        }
        if let Err(refusal) = CapturePlan::from_session(&session, &config) {
            panic!(
                "{}: the operator would refuse it: {refusal}",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(
        checked >= 5,
        "expected an example per incident, found {checked}"
    );
}
