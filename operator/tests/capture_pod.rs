//! The capture pod the operator creates, rendered by `procshot-operator render` from a
//! session and a real-looking target pod: placement, privileges per capture, and every
//! manifest validated with `kubernetes-validate --strict` for Kubernetes 1.29 and 1.37.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use k8s_openapi::api::core::v1::Pod;
use procshot_api::{CaptureArgs, LocateArgs};
use procshot_operator::api::DebugSession;
use procshot_operator::config::ConfigArgs;
use procshot_operator::plan::{CapturePlan, CaptureTarget, Destination};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// The fixture session's YAML.
fn fixture_session() -> String {
    std::fs::read_to_string(Path::new(FIXTURES).join("session.yaml")).unwrap()
}

/// Runs `procshot-operator render` for the session `session` (YAML, written to
/// `DIR/session-NAME.yaml`) against the fixture target pod, with extra operator flags.
fn run_render(dir: &Path, name: &str, session: &str, flags: &[&str]) -> Output {
    let session_file = dir.join(format!("session-{name}.yaml"));
    std::fs::write(&session_file, session).unwrap();
    Command::new(env!("CARGO_BIN_EXE_procshot-operator"))
        .args([
            "render",
            "--agent-image",
            "registry.example/procshot:test",
            "--session",
        ])
        .arg(&session_file)
        .arg("--target-pod")
        .arg(Path::new(FIXTURES).join("target-pod.yaml"))
        .args(flags)
        .output()
        .unwrap()
}

/// Like [`run_render`], which must succeed; returns the manifest (also written to
/// `DIR/capture-pod-NAME.yaml`) as a file and as a Pod.
fn render_ok(dir: &Path, name: &str, session: &str, flags: &[&str]) -> (PathBuf, Pod) {
    let output = run_render(dir, name, session, flags);
    assert!(
        output.status.success(),
        "render failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let file = dir.join(format!("capture-pod-{name}.yaml"));
    std::fs::write(&file, &output.stdout).unwrap();
    (
        file,
        serde_saphyr::from_str(&String::from_utf8(output.stdout).unwrap()).unwrap(),
    )
}

/// Every capture the operator knows, allowed by the render flags below.
const ALL_CAPTURES: &str = "--allowed-captures=fds,threads,memory,stacks,goroutines,core";

/// The fixture session capturing `capture` (goroutines from the program's memory).
fn session_capturing(capture: &[&str]) -> String {
    fixture_session().replace(
        "capture: [fds, threads, memory]",
        &format!("capture: [{}]", capture.join(", ")),
    )
}

/// The fixture session capturing `capture`, its goroutines from pprof port 6060.
fn session_capturing_from_pprof(capture: &[&str]) -> String {
    format!("{}  goPprof: {{port: 6060}}\n", session_capturing(capture))
}

/// Every combination of captures, each with the flags that allow it (every other one
/// with kernel stacks).
fn every_combination() -> Vec<(Vec<&'static str>, &'static [&'static str])> {
    let kinds = ["fds", "threads", "memory", "stacks", "goroutines", "core"];
    (1..(1u32 << kinds.len()))
        .map(|mask| {
            let captures: Vec<&str> = kinds
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, k)| *k)
                .collect();
            let flags: &[&str] = if mask % 2 == 0 {
                &[ALL_CAPTURES, "--kernel-stacks"]
            } else {
                &[ALL_CAPTURES]
            };
            (captures, flags)
        })
        .collect()
}

/// Renders the capture pod for the fixture session with `capture` and extra flags.
fn render(dir: &Path, capture: &[&str], flags: &[&str]) -> (PathBuf, Pod) {
    let session = session_capturing(capture);
    let name: String = format!("{}-{}", capture.join("-"), flags.join(""))
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    render_ok(dir, &name, &session, flags)
}

/// Renders the fixture session with an `output:` block and extra operator flags.
fn render_with_output(dir: &Path, output: &str, flags: &[&str]) -> (PathBuf, Pod) {
    let session = session_with_output(output);
    render_ok(dir, &format!("output-{}", output.len()), &session, flags)
}

/// The fixture session with an `output:` block.
fn session_with_output(output: &str) -> String {
    format!("{}  output:\n{output}", fixture_session())
}

/// Validates manifests with `kubernetes-validate --strict` for Kubernetes 1.29 and 1.37.
fn validate(files: &[PathBuf]) {
    for version in ["1.29.0", "1.37.0"] {
        let output = Command::new("kubernetes-validate")
            .args(["--strict", "--quiet", "-k", version])
            .args(files)
            .output()
            .expect("kubernetes-validate is needed (pip install kubernetes-validate; make test installs it)");
        assert!(
            output.status.success(),
            "Kubernetes {version} refuses a manifest:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn capabilities(pod: &Pod) -> Vec<String> {
    let capture = &pod.spec.as_ref().unwrap().containers[0];
    let caps = capture
        .security_context
        .as_ref()
        .unwrap()
        .capabilities
        .as_ref()
        .unwrap();
    assert_eq!(caps.drop, Some(vec!["ALL".to_string()]));
    caps.add.clone().unwrap_or_default()
}

#[test]
fn the_capture_pod_runs_on_the_target_node_with_least_privilege() {
    let dir = tempfile::tempdir().unwrap();
    let (_, pod) = render(dir.path(), &["fds", "threads", "memory"], &[]);
    let meta = &pod.metadata;
    assert_eq!(meta.namespace.as_deref(), Some("procshot-system"));
    let labels = meta.labels.as_ref().unwrap();
    assert_eq!(labels["procshot.dev/session-name"], "api-fd-leak");
    assert_eq!(labels["procshot.dev/session-namespace"], "shop");
    assert_eq!(
        meta.annotations.as_ref().unwrap()["procshot.dev/target-pod"],
        "api-7d9f8-x2b4q"
    );

    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.node_name.as_deref(), Some("worker-3"));
    assert_eq!(spec.host_pid, Some(true));
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    assert_eq!(spec.active_deadline_seconds, Some(300));
    assert_eq!(spec.automount_service_account_token, Some(false));
    assert_eq!(
        spec.tolerations.as_ref().unwrap()[0].operator.as_deref(),
        Some("Exists")
    );
    assert_eq!(
        spec.security_context
            .as_ref()
            .unwrap()
            .seccomp_profile
            .as_ref()
            .unwrap()
            .type_,
        "RuntimeDefault"
    );

    let locate = &spec.init_containers.as_ref().unwrap()[0];
    assert_eq!(
        locate.args.as_ref().unwrap()[..3],
        [
            "locate".to_string(),
            "--pod-uid=8f6c2d4e-1b2a-4c3d-9e8f-0a1b2c3d4e5f".into(),
            "--container-id=containerd://0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into(),
        ],
        "the default container (annotation), not the first one"
    );
    let locate_security = locate.security_context.as_ref().unwrap();
    assert_eq!(locate_security.run_as_non_root, Some(true));
    assert_eq!(locate_security.capabilities.as_ref().unwrap().add, None);

    let capture = &spec.containers[0];
    assert_eq!(
        capture.image.as_deref(),
        Some("registry.example/procshot:test")
    );
    let args = capture.args.as_ref().unwrap();
    for expected in [
        "--target-file=/work/target.json",
        "--samples=3",
        "--interval=10000ms",
        "--capture=fds,threads,memory",
        "--timeout=285000ms",
        "--termination-summary=/dev/termination-log",
    ] {
        assert!(
            args.iter().any(|a| a == expected),
            "{expected} missing from {args:?}"
        );
    }
    let security = capture.security_context.as_ref().unwrap();
    assert_eq!(security.privileged, Some(false));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(capabilities(&pod), ["DAC_READ_SEARCH", "SYS_PTRACE"]);
}

#[test]
fn capabilities_follow_the_requested_captures() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &[&str], &[&str]); 7] = [
        (&["fds"], &[], &["DAC_READ_SEARCH", "SYS_PTRACE"]),
        (&["threads"], &[], &["DAC_READ_SEARCH", "SYS_PTRACE"]),
        (
            &["threads"],
            &["--kernel-stacks"],
            &["DAC_READ_SEARCH", "SYS_ADMIN", "SYS_PTRACE"],
        ),
        (&["memory"], &[], &["DAC_READ_SEARCH", "SYS_PTRACE"]),
        (&["stacks"], &[], &["DAC_READ_SEARCH", "SYS_PTRACE"]),
        // From memory: process_vm_readv and the target's 0400 auxv; no network namespace.
        (&["goroutines"], &[], &["DAC_READ_SEARCH", "SYS_PTRACE"]),
        (
            &["core"],
            &[ALL_CAPTURES],
            &["DAC_READ_SEARCH", "SYS_PTRACE"],
        ),
    ];
    for (captures, flags, expected) in cases {
        let (_, pod) = render(dir.path(), captures, flags);
        assert_eq!(capabilities(&pod), expected, "{captures:?} {flags:?}");
    }
    // From pprof: entering the pod's network namespace needs SYS_ADMIN.
    let (_, pod) = render_ok(
        dir.path(),
        "goroutines-pprof",
        &session_capturing_from_pprof(&["goroutines"]),
        &[],
    );
    assert_eq!(capabilities(&pod), ["SYS_ADMIN", "SYS_PTRACE"]);
}

#[test]
fn the_pod_name_is_deterministic_and_short() {
    let name =
        procshot_operator::capture_pod::capture_pod_name("shop", "api-fd-leak", "api-7d9f8-x2b4q");
    assert_eq!(
        name,
        procshot_operator::capture_pod::capture_pod_name("shop", "api-fd-leak", "api-7d9f8-x2b4q")
    );
    assert_ne!(
        name,
        procshot_operator::capture_pod::capture_pod_name("shop", "api-fd-leak", "api-other")
    );
    assert_ne!(
        name,
        procshot_operator::capture_pod::capture_pod_name(
            "staging",
            "api-fd-leak",
            "api-7d9f8-x2b4q"
        )
    );
    let long = procshot_operator::capture_pod::capture_pod_name("shop", &"x".repeat(52), "pod");
    assert!(long.len() <= 63, "{long}");
}

#[test]
fn render_refuses_what_the_controller_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let session = fixture_session().replace("timeout: 5m", "timeout: 20s");
    let output = run_render(dir.path(), "short-timeout", &session, &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("InvalidSpec: spec.timeout 20s is too short for 3 samples 10s apart"),
        "{stderr}"
    );
}

/// Every capture pod the operator can generate (each combination of captures, kernel
/// stacks on and off) and the CRD, validated strictly against Kubernetes 1.29 and 1.37.
#[test]
fn every_generated_manifest_is_valid_kubernetes() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = vec![PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crds/debugsession.yaml"
    ))];
    for (captures, flags) in every_combination() {
        files.push(render(dir.path(), &captures, flags).0);
    }
    validate(&files);
}

#[test]
fn goroutines_reach_the_pprof_port_inside_the_pod() {
    let dir = tempfile::tempdir().unwrap();
    let (_, pod) = render_ok(
        dir.path(),
        "fds-goroutines-pprof",
        &session_capturing_from_pprof(&["fds", "goroutines"]),
        &[],
    );
    let args = pod.spec.as_ref().unwrap().containers[0]
        .args
        .clone()
        .unwrap();
    assert!(
        args.iter().any(|a| a == "--capture=fds,goroutines"),
        "{args:?}"
    );
    assert!(
        args.iter().any(|a| a == "--go-pprof=127.0.0.1:6060"),
        "{args:?}"
    );
    // goPprof alone asks for goroutines too, on the address it names.
    let session = format!(
        "{}  goPprof: {{port: 8081, host: \"::1\"}}\n",
        fixture_session()
    );
    let (_, pod) = render_ok(dir.path(), "pprof-only", &session, &[]);
    let args = pod.spec.as_ref().unwrap().containers[0]
        .args
        .clone()
        .unwrap();
    assert!(
        args.iter()
            .any(|a| a == "--capture=fds,threads,memory,goroutines"),
        "{args:?}"
    );
    assert!(
        args.iter().any(|a| a == "--go-pprof=[::1]:8081"),
        "{args:?}"
    );
}

#[test]
fn goroutines_without_pprof_are_read_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (_, pod) = render(dir.path(), &["goroutines"], &[]);
    let args = pod.spec.as_ref().unwrap().containers[0]
        .args
        .clone()
        .unwrap();
    assert!(args.iter().any(|a| a == "--capture=goroutines"), "{args:?}");
    assert!(
        !args.iter().any(|a| a.starts_with("--go-pprof")),
        "{args:?}"
    );
    assert!(!capabilities(&pod).contains(&"SYS_ADMIN".to_string()));
}

#[test]
fn core_dumps_are_opt_in_and_bounded_by_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let with_core = |core: &str| {
        fixture_session().replace(
            "capture: [fds, threads, memory]",
            &format!("capture: [memory, core]\n{core}"),
        )
    };
    // Refused by the default policy: a core holds every secret of the process.
    let output = run_render(dir.path(), "core-default", &with_core(""), &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("PolicyRefused: capture core is not allowed by the operator's policy"),
        "{stderr}"
    );
    // Allowed: the operator's limit, or the session's lower one, reaches the capture, and
    // the scratch volume has room for it.
    let (_, pod) = render_ok(dir.path(), "core-allowed", &with_core(""), &[ALL_CAPTURES]);
    let spec = pod.spec.as_ref().unwrap();
    let args = spec.containers[0].args.clone().unwrap();
    assert!(
        args.iter()
            .any(|a| a == &format!("--core-max-bytes={}", 4u64 << 30)),
        "{args:?}"
    );
    let scratch = spec.volumes.as_ref().unwrap()[0].empty_dir.clone().unwrap();
    assert_eq!(
        scratch.size_limit.unwrap().0,
        ((4u64 << 30) + (256 << 20)).to_string()
    );
    // …and the capture container may hold the copy, so the pause stays short.
    let limits = spec.containers[0]
        .resources
        .clone()
        .unwrap()
        .limits
        .unwrap();
    assert_eq!(limits["memory"].0, ((4u64 << 30) + (256 << 20)).to_string());
    let session = with_core("  core: {maxBytes: 512Mi, maxPause: 500ms}");
    let (file, pod) = render_ok(dir.path(), "core-limits", &session, &[ALL_CAPTURES]);
    let args = pod.spec.as_ref().unwrap().containers[0]
        .args
        .clone()
        .unwrap();
    for expected in [
        format!("--core-max-bytes={}", 512u64 << 20),
        "--core-max-pause=500ms".to_string(),
        "--capture=memory,core".to_string(),
    ] {
        assert!(args.contains(&expected), "{expected} missing from {args:?}");
    }
    validate(&[file]);
    // Above the operator's limit: refused, saying what the limit is.
    let session = with_core("  core: {maxBytes: 8Gi}");
    let output = run_render(dir.path(), "core-too-big", &session, &[ALL_CAPTURES]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "PolicyRefused: spec.core.maxBytes 8Gi exceeds the operator's limit of 4294967296 bytes"
        ),
        "{stderr}"
    );
}

#[test]
fn an_s3_output_gets_its_flags_endpoint_and_the_allowed_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (file, pod) = render_with_output(
        dir.path(),
        "    s3:\n      bucket: evidence\n      prefix: prod/\n      endpoint: http://minio.storage:9000\n      region: eu-west-1\n",
        &[],
    );
    let capture = &pod.spec.as_ref().unwrap().containers[0];
    let args = capture.args.clone().unwrap();
    for expected in [
        "--upload=s3://evidence/prod",
        "--session=shop/api-fd-leak",
        "--upload-timeout=75000ms",
        "--hold-on-upload-failure",
        // Sampling ends long before; a failed upload holds the files until then.
        "--timeout=285000ms",
    ] {
        assert!(
            args.iter().any(|a| a == expected),
            "{expected} missing from {args:?}"
        );
    }
    let env: Vec<(String, String)> = capture
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect();
    assert_eq!(
        env,
        [
            (
                "AWS_ENDPOINT_URL".to_string(),
                "http://minio.storage:9000".to_string()
            ),
            ("AWS_ALLOW_HTTP".into(), "true".into()),
            ("AWS_REGION".into(), "eu-west-1".into()),
        ]
    );
    let env_from = capture.env_from.clone().unwrap();
    assert_eq!(
        env_from[0].secret_ref.as_ref().unwrap().name,
        "procshot-output"
    );
    validate(&[file]);
}

#[test]
fn a_pvc_output_mounts_the_claim() {
    let dir = tempfile::tempdir().unwrap();
    let (file, pod) = render_with_output(
        dir.path(),
        "    pvc:\n      claimName: evidence\n      path: incidents\n",
        &[],
    );
    let spec = pod.spec.as_ref().unwrap();
    let volume = spec
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "output")
        .unwrap();
    assert_eq!(
        volume.persistent_volume_claim.as_ref().unwrap().claim_name,
        "evidence"
    );
    let capture = &spec.containers[0];
    assert!(
        capture
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .any(|m| m.name == "output" && m.mount_path == "/output")
    );
    assert!(
        capture
            .args
            .as_ref()
            .unwrap()
            .iter()
            .any(|a| a == "--upload=file:///output/incidents")
    );
    assert!(capture.env_from.is_none(), "no credentials for a volume");
    validate(&[file]);
}

#[test]
fn the_operators_default_output_applies_and_secrets_follow_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let (_, pod) = render(
        dir.path(),
        &["fds"],
        &[
            "--default-output",
            "s3://fleet-captures/k8s",
            "--output-secret",
            "s3-writer",
        ],
    );
    let capture = &pod.spec.as_ref().unwrap().containers[0];
    assert!(
        capture
            .args
            .as_ref()
            .unwrap()
            .iter()
            .any(|a| a == "--upload=s3://fleet-captures/k8s")
    );
    assert_eq!(
        capture.env_from.as_ref().unwrap()[0]
            .secret_ref
            .as_ref()
            .unwrap()
            .name,
        "s3-writer"
    );

    // A session may only name a Secret the admin allows.
    let session = format!(
        "{}  output:\n    s3:\n      bucket: mine\n      secretName: team-keys\n",
        fixture_session()
    );
    let run = |flags: &[&str]| run_render(dir.path(), "secret", &session, flags);
    let refused = run(&[]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(
            "PolicyRefused: spec.output.s3.secretName team-keys is not a Secret the operator allows"
        ),
        "{stderr}"
    );
    assert!(
        run(&["--allowed-output-secrets", "team-keys,other"])
            .status
            .success()
    );
}

/// Parses the rendered pod's `locate` and `capture` arguments back with the sidecar's own
/// parsers and checks them against what the plan of `session` under `flags` asks for.
fn assert_arguments_follow_the_plan(pod: &Pod, session: &str, flags: &[&str]) {
    let session: DebugSession = serde_saphyr::from_str(session).unwrap();
    let config = ConfigArgs::from_flags(flags)
        .unwrap()
        .into_config()
        .unwrap();
    let plan = CapturePlan::from_session(&session, &config).unwrap();
    let target_pod: Pod = serde_saphyr::from_str(
        &std::fs::read_to_string(Path::new(FIXTURES).join("target-pod.yaml")).unwrap(),
    )
    .unwrap();
    let target = CaptureTarget::from_pod(&target_pod, None).unwrap();
    let spec = pod.spec.as_ref().unwrap();

    let locate = spec.init_containers.as_ref().unwrap()[0]
        .args
        .clone()
        .unwrap();
    assert_eq!(locate[0], "locate");
    let locate = LocateArgs::from_argv(&locate[1..])
        .unwrap_or_else(|e| panic!("procshot locate refuses {locate:?}: {e}"));
    assert_eq!(
        (locate.pod_uid.as_str(), locate.container_id.as_str()),
        (target.pod_uid.as_str(), target.container_id.as_str())
    );
    assert_eq!(locate.out, Path::new("/work/target.json"));

    let argv = spec.containers[0].args.clone().unwrap();
    assert_eq!(argv[0], "capture");
    let capture = CaptureArgs::from_argv(&argv[1..])
        .unwrap_or_else(|e| panic!("procshot capture refuses {argv:?}: {e}"));
    let defaults = CaptureArgs::for_target_file("/work/target.json");
    assert_eq!(capture.pid, None);
    assert_eq!(capture.target_file, defaults.target_file, "{argv:?}");
    assert_eq!(
        capture.termination_summary.as_deref(),
        Some(Path::new("/dev/termination-log"))
    );
    assert_eq!(capture.samples, plan.samples, "{argv:?}");
    assert_eq!(capture.interval, plan.interval, "{argv:?}");
    assert_eq!(capture.captures, plan.captures, "{argv:?}");
    assert_eq!(capture.timeout, Some(plan.capture_timeout()), "{argv:?}");
    assert_eq!(capture.go_pprof, plan.go_pprof, "{argv:?}");
    assert_eq!(
        capture.core_max_bytes,
        plan.core.as_ref().map(|c| c.max_bytes),
        "{argv:?}"
    );
    assert_eq!(
        capture.core_max_pause,
        plan.core
            .as_ref()
            .and_then(|c| c.max_pause)
            .unwrap_or(defaults.core_max_pause),
        "{argv:?}"
    );
    let upload = plan.output.as_ref().map(|output| match output {
        Destination::S3 { url, .. } => url.clone(),
        Destination::Pvc { path, .. } => match path {
            Some(path) => format!("file:///output/{path}"),
            None => "file:///output".into(),
        },
    });
    assert_eq!(capture.upload, upload, "{argv:?}");
    if upload.is_some() {
        assert_eq!(capture.session.as_deref(), Some("shop/api-fd-leak"));
        assert_eq!(capture.upload_timeout, Some(plan.upload_timeout()));
        assert!(capture.hold_on_upload_failure);
    }
    // What the plan does not set is the CLI's own default.
    assert_eq!(capture.proc_root, defaults.proc_root);
    assert_eq!(capture.stack_max_stop, defaults.stack_max_stop);
    assert_eq!(capture.go_pprof_timeout, defaults.go_pprof_timeout);
    assert_eq!(capture.goroutines_max_stop, defaults.goroutines_max_stop);
    assert_eq!(capture.core_zstd_level, defaults.core_zstd_level);
}

/// The rendered arguments of every capture pod the tests above render, parsed back with
/// the sidecar's parsers (`procshot_api::CaptureArgs`/`LocateArgs`, which its CLI uses):
/// a flag renamed on one side fails here, not in a pod.
#[test]
fn rendered_arguments_parse_back_to_what_the_plan_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let mut cases: Vec<(String, Vec<&str>)> = every_combination()
        .into_iter()
        .map(|(captures, flags)| (session_capturing(&captures), flags.to_vec()))
        .collect();
    let core = fixture_session().replace(
        "capture: [fds, threads, memory]",
        "capture: [memory, core]\n  core: {maxBytes: 512Mi, maxPause: 500ms}",
    );
    cases.push((core, vec![ALL_CAPTURES]));
    let pprof = format!(
        "{}  goPprof: {{port: 8081, host: \"::1\"}}\n",
        fixture_session()
    );
    cases.push((pprof, vec![]));
    cases.push((
        session_capturing_from_pprof(&["fds", "goroutines", "stacks"]),
        vec![],
    ));
    for output in [
        "    s3:\n      bucket: evidence\n      prefix: prod/\n      endpoint: http://minio.storage:9000\n      region: eu-west-1\n",
        "    pvc:\n      claimName: evidence\n      path: incidents\n",
        "    pvc:\n      claimName: evidence\n",
    ] {
        cases.push((session_with_output(output), vec![]));
    }
    cases.push((
        fixture_session(),
        vec![
            "--default-output",
            "s3://fleet-captures/k8s",
            "--output-secret",
            "s3-writer",
        ],
    ));
    for (index, (session, flags)) in cases.iter().enumerate() {
        let mut render_flags = vec!["--agent-image", "registry.example/procshot:test"];
        render_flags.extend(flags);
        let (_, pod) = render_ok(dir.path(), &format!("args-{index}"), session, flags);
        assert_arguments_follow_the_plan(&pod, session, &render_flags);
    }
}
