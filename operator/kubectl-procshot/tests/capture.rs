//! `kubectl procshot capture` against kube's mock API server: the requests it makes (in
//! order), the DebugSession each flag gives, following through every phase to the
//! printed findings, time-outs, and the errors that say what to do. Time is tokio's paused
//! clock, so a five-minute follow takes no time.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use procshot_operator::api::{CaptureKind, DebugSession};
use serde_json::{Value, json};
use support::{DISCOVERY, PODS, REVIEWS, Router, SESSIONS};

fn created(call: &support::Call) -> DebugSession {
    serde_json::from_value(call.body.clone()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn each_flag_gives_its_field_of_the_session() {
    let (run, calls) = support::run(
        support::creating(|_| None),
        &[
            "capture",
            "api-7d9f8-x2b4q",
            "-c",
            "api",
            "--capture",
            "fds,stacks",
            "--samples",
            "5",
            "--interval",
            "2s",
            "--go-pprof",
            "6060",
            "--core",
            "--timeout",
            "3m",
            "--ttl",
            "1h",
            "-o",
            "s3://evidence/incidents",
            "--output-endpoint",
            "http://minio.storage:9000",
            "--output-region",
            "eu-west-1",
            "--name",
            "api-leak",
            "--wait=false",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "debugsession.procshot.dev/api-leak created\n");
    assert_eq!(
        calls.lines(),
        [
            format!("GET {PODS}/api-7d9f8-x2b4q"),
            format!("POST {REVIEWS}"),
            format!("POST {SESSIONS}"),
        ]
    );
    let post = &calls.all()[2];
    assert!(
        post.query.contains("fieldManager=kubectl-procshot"),
        "{}",
        post.query
    );
    let session = created(post);
    assert_eq!(session.metadata.name.as_deref(), Some("api-leak"));
    assert_eq!(
        session.metadata.labels.unwrap()["procshot.dev/created-by"],
        "kubectl-procshot"
    );
    assert_eq!(
        session.metadata.annotations.unwrap()["procshot.dev/requested-by"],
        "alice@example.com"
    );
    let spec = session.spec;
    assert_eq!(spec.target.pod.as_deref(), Some("api-7d9f8-x2b4q"));
    assert_eq!(spec.target.container.as_deref(), Some("api"));
    assert_eq!(
        spec.capture,
        [
            CaptureKind::Fds,
            CaptureKind::Goroutines,
            CaptureKind::Stacks,
            CaptureKind::Core
        ]
    );
    assert_eq!((spec.samples, spec.interval.as_deref()), (5, Some("2s")));
    assert_eq!(spec.go_pprof.unwrap().port, 6060);
    assert_eq!(spec.timeout, "3m");
    assert_eq!(spec.ttl_seconds_after_finished, Some(3600));
    let s3 = spec.output.unwrap().s3.unwrap();
    assert_eq!(
        (
            s3.bucket.as_str(),
            s3.prefix.as_deref(),
            s3.endpoint.as_deref(),
            s3.region.as_deref()
        ),
        (
            "evidence",
            Some("incidents"),
            Some("http://minio.storage:9000"),
            Some("eu-west-1")
        )
    );
    // What the plugin sends, the CRD accepts.
    assert_eq!(support::violations(&post.body), Vec::<String>::new());
}

#[tokio::test(start_paused = true)]
async fn defaults_are_three_samples_five_seconds_apart_and_a_generated_name() {
    let (run, calls) = support::run(
        support::creating(|_| None),
        &["capture", "pod/api-7d9f8-x2b4q", "--wait=false"],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let session = created(&calls.all()[2]);
    let name = session.metadata.name.unwrap();
    assert!(
        name.starts_with("api-7d9f8-x2b4q-") && name.len() == "api-7d9f8-x2b4q-".len() + 5,
        "{name}"
    );
    assert_eq!(
        session.spec.capture,
        [CaptureKind::Fds, CaptureKind::Threads, CaptureKind::Memory]
    );
    assert_eq!(
        (session.spec.samples, session.spec.interval.as_deref()),
        (3, Some("5s"))
    );
    assert_eq!(session.spec.timeout, "5m");
    assert!(
        session.spec.output.is_none(),
        "the operator's default output"
    );
}

/// Statuses a session goes through, one per read.
fn phases() -> Vec<Option<Value>> {
    let counts =
        json!({"summary": {"fds": 1004, "fdSoftLimit": 1024, "threads": 12, "rssBytes": 47185920}});
    vec![
        None,
        Some(
            json!({"phase": "Pending", "targets": [support::target("api-7d9f8-x2b4q", "Pending", json!({}))]}),
        ),
        Some(
            json!({"phase": "Capturing", "targets": [support::target("api-7d9f8-x2b4q", "Capturing", json!({"targetPid": 4242}))]}),
        ),
        Some(
            json!({"phase": "Capturing", "targets": [support::target("api-7d9f8-x2b4q", "Capturing", json!({"targetPid": 4242}))]}),
        ),
        Some(json!({
            "phase": "Succeeded",
            "startedAt": "2026-11-22T10:15:01Z", "finishedAt": "2026-11-22T10:15:35Z",
            "targets": [support::target("api-7d9f8-x2b4q", "Succeeded", json!({"targetPid": 4242, "samples": 3}).as_object().cloned().map(|mut m| { m.extend(counts.as_object().unwrap().clone()); Value::Object(m) }).unwrap())],
            "findings": [
                {"pod": "api-7d9f8-x2b4q", "severity": "info", "code": "SOCKET_CLOSE_WAIT", "message": "3 TCP sockets in CLOSE_WAIT"},
                {"pod": "api-7d9f8-x2b4q", "severity": "critical", "code": "FD_LIMIT_NEAR", "message": "1004 of 1024 fds open (98%)"},
            ],
            "topFinding": "FD_LIMIT_NEAR: 1004 of 1024 fds open (98%)",
            "artifacts": [
                {"name": "report.html", "url": "s3://evidence/shop/x/20261122T101501Z/report.html", "bytes": 20480, "sha256": "ab"},
                {"name": "manifest.json", "url": "s3://evidence/shop/x/20261122T101501Z/manifest.json", "bytes": 2048, "sha256": "cd"},
            ],
        })),
    ]
}

/// Answers reads of session `name` with each of `statuses` in turn (the last one after).
fn following(name: &'static str, statuses: Vec<Option<Value>>) -> Router {
    let reads = Arc::new(AtomicUsize::new(0));
    let spec = json!({"target": {"pod": "api-7d9f8-x2b4q"}, "samples": 3, "interval": "5s", "timeout": "1m"});
    support::creating(move |call| {
        (call.method == "GET" && call.path == format!("{SESSIONS}/{name}")).then(|| {
            let i = reads.fetch_add(1, Ordering::SeqCst).min(statuses.len() - 1);
            (
                200,
                support::session(name, spec.clone(), statuses[i].clone()),
            )
        })
    })
}

#[tokio::test(start_paused = true)]
async fn following_a_session_shows_every_phase_then_the_findings_most_serious_first() {
    let (run, calls) = support::run(
        following("api-leak", phases()),
        &["capture", "api-7d9f8-x2b4q", "--name", "api-leak", "--wait"],
    )
    .await;
    assert_eq!(run.code, 3, "critical findings: exit 3\n{run:?}");
    let session_reads = calls
        .lines()
        .iter()
        .filter(|l| l.ends_with("/api-leak"))
        .count();
    assert_eq!(session_reads, 5, "{:?}", calls.lines());
    // Progress on stderr: a line each time something changed, none when nothing did.
    let progress: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(
        progress,
        [
            "[   0s] shop/api-leak Pending: waiting for the operator",
            "[   1s] shop/api-leak Pending",
            "[   1s] api-7d9f8-x2b4q Pending on worker-3",
            "[   2s] shop/api-leak Capturing",
            "[   2s] api-7d9f8-x2b4q Capturing on worker-3, pid 4242",
            "[   4s] shop/api-leak Succeeded",
            "[   4s] api-7d9f8-x2b4q Succeeded on worker-3, pid 4242, 3 samples",
        ]
    );
    assert_eq!(
        run.stdout,
        "shop/api-leak Succeeded in 34s\n  \
         api-7d9f8-x2b4q Succeeded, 3 samples, 1004/1024 fds, 12 threads, RSS 45.0 MiB\n\
         \n\
         CRITICAL  FD_LIMIT_NEAR      1004 of 1024 fds open (98%)\n\
         INFO      SOCKET_CLOSE_WAIT  3 TCP sockets in CLOSE_WAIT\n\
         \n\
         report.html  s3://evidence/shop/x/20261122T101501Z/report.html\n\
         2 files (22.0 KiB): kubectl procshot download api-leak DIR\n"
    );
}

#[tokio::test(start_paused = true)]
async fn json_output_prints_the_finished_session() {
    let (run, _) = support::run(
        following("api-leak", phases()),
        &[
            "capture",
            "api-7d9f8-x2b4q",
            "--name",
            "api-leak",
            "--wait",
            "-o",
            "json",
        ],
    )
    .await;
    let printed: DebugSession = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(printed.status.unwrap().findings.len(), 2);
    assert_eq!(run.code, 3);
}

#[tokio::test(start_paused = true)]
async fn a_failed_session_exits_4_with_its_reason() {
    let failed = json!({"phase": "Failed", "conditions": [{"type": "Ready", "status": "False", "reason": "PolicyRefused",
        "message": "capture core is not allowed by the operator's policy", "lastTransitionTime": "2026-11-22T10:15:01Z"}]});
    let (run, _) = support::run(
        following("api-leak", vec![Some(failed)]),
        &["capture", "api-7d9f8-x2b4q", "--name", "api-leak", "--wait"],
    )
    .await;
    assert_eq!(run.code, 4, "{run:?}");
    assert!(
        run.stdout
            .starts_with("shop/api-leak Failed: PolicyRefused: capture core is not allowed"),
        "{}",
        run.stdout
    );
}

#[tokio::test(start_paused = true)]
async fn a_session_that_never_finishes_times_out_with_exit_5() {
    let capturing = json!({"phase": "Capturing", "targets": [support::target("api-7d9f8-x2b4q", "Capturing", json!({}))]});
    let started = tokio::time::Instant::now();
    let (run, calls) = support::run(
        following("api-leak", vec![Some(capturing)]),
        &[
            "capture",
            "api-7d9f8-x2b4q",
            "--name",
            "api-leak",
            "--wait",
            "--timeout",
            "1m",
        ],
    )
    .await;
    assert_eq!(run.code, 5, "{run:?}");
    // The capture pod's deadline and a minute's grace for the operator to report it.
    assert_eq!(started.elapsed().as_secs(), 120);
    let reads = calls
        .lines()
        .iter()
        .filter(|l| l.ends_with("/api-leak"))
        .count();
    assert_eq!(reads, 121, "one read a second");
    assert!(
        run.stderr
            .contains("timed out: api-leak is still Capturing after 120s (its deadline is 1m)"),
        "{}",
        run.stderr
    );
}

#[tokio::test(start_paused = true)]
async fn a_session_no_operator_picks_up_says_so_once() {
    let (run, _) = support::run(
        following("api-leak", vec![None]),
        &[
            "capture",
            "api-7d9f8-x2b4q",
            "--name",
            "api-leak",
            "--wait",
            "--timeout",
            "10s",
        ],
    )
    .await;
    assert_eq!(run.code, 5);
    assert_eq!(
        run.stderr
            .matches("no operator has picked up api-leak after 20s: is procshot-operator running?")
            .count(),
        1,
        "{}",
        run.stderr
    );
}

#[tokio::test(start_paused = true)]
async fn a_missing_crd_is_answered_with_the_install_command() {
    let router = support::creating(|call| {
        (call.path == SESSIONS || call.path == DISCOVERY).then(support::not_found)
    });
    let (run, calls) = support::run(router, &["capture", "api-7d9f8-x2b4q", "--wait=false"]).await;
    assert_eq!(run.code, 1);
    assert_eq!(calls.lines().last().unwrap(), &format!("GET {DISCOVERY}"));
    assert!(
        run.stderr.contains("the DebugSession resource (debugsessions.procshot.dev) is not installed in this cluster: install procshot")
            && run.stderr.contains("helm install procshot charts/procshot")
            && run.stderr.contains("kubectl apply -f crds/"),
        "{}",
        run.stderr
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_create_names_the_verb_and_resource_to_ask_for() {
    let router = support::creating(|call| {
        (call.method == "POST" && call.path == SESSIONS).then(|| {
            support::status(403, "Forbidden", "debugsessions.procshot.dev is forbidden: User \"alice\" cannot create resource \"debugsessions\" in API group \"procshot.dev\" in the namespace \"shop\"")
        })
    });
    let (run, _) = support::run(router, &["capture", "api-7d9f8-x2b4q", "--wait=false"]).await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains(
            "you may not create debugsessions.procshot.dev in namespace shop: ask for a Role that grants \"create\" on debugsessions.procshot.dev"
        ) && run.stderr.contains("User \"alice\" cannot create"),
        "{}",
        run.stderr
    );
}

#[tokio::test(start_paused = true)]
async fn a_mistyped_pod_is_answered_with_the_similar_names() {
    let router: Router = Arc::new(|call| match call.path.as_str() {
        PODS => support::list(
            "PodList",
            vec![
                support::pod("api-7d9f8-x2b4q", "Running", "2026-11-22T10:00:00Z"),
                support::pod("api-7d9f8-k2lmn", "Running", "2026-11-22T10:00:00Z"),
                support::pod("db-0", "Running", "2026-11-22T10:00:00Z"),
            ],
        ),
        _ => support::not_found(),
    });
    let (run, calls) = support::run(router, &["capture", "api-7d9f8-x2b4", "--wait=false"]).await;
    assert_eq!(run.code, 1);
    assert_eq!(
        calls.lines(),
        [format!("GET {PODS}/api-7d9f8-x2b4"), format!("GET {PODS}")]
    );
    assert!(
        run.stderr.contains("pod api-7d9f8-x2b4 not found in namespace shop: did you mean one of api-7d9f8-x2b4q, api-7d9f8-k2lmn?"),
        "{}",
        run.stderr
    );
}

#[tokio::test(start_paused = true)]
async fn a_pod_that_is_not_running_or_lacks_the_container_is_refused_before_any_session() {
    for (phase, container, message) in [
        (
            "Pending",
            None,
            "pod api-7d9f8-x2b4q is Pending, not Running",
        ),
        (
            "Running",
            Some("sidecar"),
            "pod api-7d9f8-x2b4q has no container sidecar: its containers are api",
        ),
    ] {
        let router: Router = Arc::new(move |_| {
            (
                200,
                support::pod("api-7d9f8-x2b4q", phase, "2026-11-22T10:00:00Z"),
            )
        });
        let mut args = vec!["capture", "api-7d9f8-x2b4q", "--wait=false"];
        if let Some(container) = container {
            args.extend(["-c", container]);
        }
        let (run, calls) = support::run(router, &args).await;
        assert_eq!(run.code, 1);
        assert!(run.stderr.contains(message), "{}", run.stderr);
        assert_eq!(calls.lines().len(), 1, "no session is created");
    }
}

#[tokio::test(start_paused = true)]
async fn a_selector_matching_several_pods_says_which_are_captured() {
    let router = support::creating(|call| {
        (call.path == PODS).then(|| {
            support::list(
                "PodList",
                vec![
                    support::pod("api-3", "Running", "2026-11-22T10:03:00Z"),
                    support::pod("api-1", "Running", "2026-11-22T10:01:00Z"),
                    support::pod("api-0", "Pending", "2026-11-22T10:00:00Z"),
                    support::pod("api-2", "Running", "2026-11-22T10:02:00Z"),
                ],
            )
        })
    });
    let (run, calls) = support::run(
        router,
        &[
            "capture",
            "-l",
            "app=api,tier in (web)",
            "--max-pods",
            "2",
            "--wait=false",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let list = &calls.all()[0];
    assert_eq!(list.line(), format!("GET {PODS}"));
    assert!(
        list.query
            .contains("labelSelector=app%3Dapi%2Ctier+in+%28web%29"),
        "{}",
        list.query
    );
    assert!(
        run.stderr.contains("selector app=api,tier in (web) matches 3 running pods; capturing the oldest 2 (api-1, api-2): --max-pods 3 captures more"),
        "{}",
        run.stderr
    );
    let session = created(&calls.all()[2]);
    let target = session.spec.target;
    assert_eq!(target.max_pods, Some(2));
    let selector = target.selector.unwrap();
    assert_eq!(selector.match_labels.unwrap()["app"], "api");
    assert_eq!(selector.match_expressions.unwrap()[0].operator, "In");
    assert!(session.metadata.name.unwrap().starts_with("api-"));
}

#[tokio::test(start_paused = true)]
async fn a_deployment_is_captured_through_its_selector() {
    let router = support::creating(|call| match call.path.as_str() {
        "/apis/apps/v1/namespaces/shop/deployments/api" => Some((
            200,
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "shop"},
                "spec": {"selector": {"matchLabels": {"app": "api"}}, "template": {"spec": {"containers": []}}}
            }),
        )),
        PODS => Some(support::list(
            "PodList",
            vec![support::pod("api-1", "Running", "2026-11-22T10:01:00Z")],
        )),
        _ => None,
    });
    let (run, calls) = support::run(router, &["capture", "deploy/api", "--wait=false"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        calls.lines()[0],
        "GET /apis/apps/v1/namespaces/shop/deployments/api"
    );
    let session = created(&calls.all()[3]);
    assert_eq!(
        session.spec.target.selector.unwrap().match_labels.unwrap()["app"],
        "api"
    );
    assert!(
        !run.stderr.contains("matches"),
        "one pod, nothing to note: {}",
        run.stderr
    );
}

#[tokio::test(start_paused = true)]
async fn a_client_dry_run_prints_the_session_without_any_request() {
    let (run, calls) = support::run(
        Arc::new(|_| panic!("no request")),
        &[
            "capture",
            "api-7d9f8-x2b4q",
            "--dry-run=client",
            "-o",
            "yaml",
            "--name",
            "api-leak",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(calls.lines().is_empty());
    let printed: Value = serde_saphyr::from_str(&run.stdout).unwrap();
    assert_eq!(printed["metadata"]["namespace"], "shop");
    assert_eq!(printed["kind"], "DebugSession");
    assert_eq!(support::violations(&printed), Vec::<String>::new());
}

#[tokio::test(start_paused = true)]
async fn a_server_dry_run_asks_the_api_server_to_check_without_creating() {
    let (run, calls) = support::run(
        support::creating(|_| None),
        &["capture", "api-7d9f8-x2b4q", "--dry-run=server"],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let post = calls
        .all()
        .into_iter()
        .find(|c| c.method == "POST" && c.path == SESSIONS)
        .unwrap();
    assert!(post.query.contains("dryRun=All"), "{}", post.query);
    assert!(
        run.stdout.ends_with("created (server dry run)\n"),
        "{}",
        run.stdout
    );
}

#[tokio::test(start_paused = true)]
async fn goroutines_without_a_pprof_port_are_read_from_memory() {
    let (run, calls) = support::run(
        support::creating(|_| None),
        &[
            "capture",
            "api-7d9f8-x2b4q",
            "--capture",
            "goroutines",
            "--wait=false",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let post = calls
        .all()
        .into_iter()
        .find(|c| c.method == "POST" && c.path == SESSIONS)
        .unwrap();
    let spec = created(&post).spec;
    assert_eq!(spec.capture, [CaptureKind::Goroutines]);
    assert_eq!(spec.go_pprof, None);
}
