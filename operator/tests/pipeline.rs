//! The pure stages of a reconcile, in process: validate ([`CapturePlan`], [`TargetQuery`],
//! [`select`]) and build ([`capture_pod::build`]), fed from the YAML cases in
//! `tests/fixtures/pipeline/`. Each case is the operator's flags, a session and the pods
//! the API server returned for its target (the fixture target pod when it names none), and
//! what must come out: the capture pods in full, the target pods chosen, or the refusal.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use procshot_operator::api::DebugSession;
use procshot_operator::capture_pod;
use procshot_operator::config::{ConfigArgs, OperatorConfig};
use procshot_operator::plan::target::select;
use procshot_operator::plan::{CapturePlan, Refusal, TargetQuery};
use serde::Deserialize;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// One case file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// Operator flags (`--allowed-captures=…`); none: the defaults.
    #[serde(default)]
    flags: Vec<String>,
    session: DebugSession,
    /// What the API server returned for the session's target; absent: the fixture pod.
    pods: Option<Vec<Pod>>,
    expect: Expect,
}

/// What the stages must give: exactly one of these.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
enum Expect {
    /// The capture pods, in full.
    CapturePods(Vec<Pod>),
    /// The names of the target pods chosen, in order.
    Targets(Vec<String>),
    /// The refusal.
    Refusal { reason: String, message: String },
}

/// What the stages gave.
enum Outcome {
    Pods(Vec<Pod>),
    Refused(Refusal),
}

/// Validates and builds as the controller does, without a cluster.
fn run(case: &Case) -> Result<Outcome, String> {
    let config: OperatorConfig = ConfigArgs::from_flags(&case.flags)
        .map_err(|e| format!("flags {:?}: {e}", case.flags))?
        .into_config()?;
    let session = &case.session;
    let namespace = session.metadata.namespace.clone().unwrap_or_default();
    let pods = case.pods.clone().unwrap_or_else(fixture_target);
    let validated = CapturePlan::from_session(session, &config).and_then(|plan| {
        let query = TargetQuery::from_spec(&session.spec.target)?;
        let targets = select(&query, pods, &session.spec.target, &namespace)?;
        Ok((plan, targets))
    });
    Ok(match validated {
        Ok((plan, targets)) => Outcome::Pods(
            targets
                .iter()
                .map(|t| capture_pod::build(session, &plan, t, &config))
                .collect(),
        ),
        Err(refusal) => Outcome::Refused(refusal),
    })
}

fn fixture_target() -> Vec<Pod> {
    let text = std::fs::read_to_string(Path::new(FIXTURES).join("target-pod.yaml")).unwrap();
    vec![serde_saphyr::from_str(&text).unwrap()]
}

fn yaml<T: serde::Serialize>(value: &T) -> String {
    serde_saphyr::to_string(value).unwrap()
}

/// Checks one case; returns what is wrong with it.
fn check(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).unwrap();
    let case: Case = serde_saphyr::from_str(&text).map_err(|e| format!("not a case: {e}"))?;
    match (&case.expect, run(&case)?) {
        (Expect::CapturePods(expected), Outcome::Pods(built)) if *expected == built => Ok(()),
        (Expect::CapturePods(_), Outcome::Pods(built)) => {
            Err(format!("built other capture pods:\n{}", yaml(&built)))
        }
        (Expect::Targets(expected), Outcome::Pods(built)) => {
            let chosen: Vec<String> = built
                .iter()
                .map(|p| {
                    p.metadata.annotations.as_ref().unwrap()["procshot.dev/target-pod"].clone()
                })
                .collect();
            (chosen == *expected)
                .then_some(())
                .ok_or_else(|| format!("chose {chosen:?}"))
        }
        (Expect::Refusal { reason, message }, Outcome::Refused(refusal))
            if refusal.reason == reason.as_str() && refusal.message == *message =>
        {
            Ok(())
        }
        (_, Outcome::Refused(refusal)) => {
            Err(format!("refused: {}: {}", refusal.reason, refusal.message))
        }
        (Expect::Refusal { .. }, Outcome::Pods(built)) => {
            Err(format!("was not refused; built:\n{}", yaml(&built)))
        }
    }
}

fn cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(Path::new(FIXTURES).join("pipeline"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    cases.sort();
    cases
}

#[test]
fn every_case_validates_and_builds_as_it_says() {
    let cases = cases();
    assert!(
        cases.len() >= 10,
        "expected the pipeline cases, found {cases:?}"
    );
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|path| {
            check(path)
                .err()
                .map(|why| format!("{}: {why}", path.display()))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_built_capture_pod_is_what_render_prints() {
    let case: Case = serde_saphyr::from_str(
        &std::fs::read_to_string(Path::new(FIXTURES).join("pipeline/default-captures.yaml"))
            .unwrap(),
    )
    .unwrap();
    let Ok(Outcome::Pods(built)) = run(&case) else {
        panic!("the default case is refused")
    };
    let session_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(session_file.path(), yaml(&case.session)).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_procshot-operator"))
        .arg("render")
        .arg("--session")
        .arg(session_file.path())
        .arg("--target-pod")
        .arg(Path::new(FIXTURES).join("target-pod.yaml"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rendered: Pod = serde_saphyr::from_str(&String::from_utf8(output.stdout).unwrap()).unwrap();
    assert_eq!(rendered, built[0]);
}
