//! `get`, `describe`, `findings` and `delete` against kube's mock API server: what each
//! asks for, what it prints (`-o json|yaml` included) and the exit codes scripts use.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use support::{DISCOVERY, Router, SESSIONS};

fn finished() -> Value {
    support::session(
        "api-leak",
        json!({"target": {"pod": "api-7d9f8-x2b4q", "container": "api"}, "samples": 3, "interval": "10s",
               "timeout": "5m", "capture": ["fds", "threads", "memory"],
               "output": {"s3": {"bucket": "evidence", "prefix": "incidents", "endpoint": "https://minio:9000"}}}),
        Some(json!({
            "phase": "Succeeded",
            "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded", "message": "1 of 1 targets captured",
                            "lastTransitionTime": "2026-11-22T10:15:40Z"}],
            "targets": [support::target("api-7d9f8-x2b4q", "Succeeded", json!({"targetPid": 4242, "samples": 3,
                "summary": {"fds": 120, "threads": 9, "rssBytes": 10485760}}))],
            "findings": [{"pod": "api-7d9f8-x2b4q", "severity": "warning", "code": "FD_GROWTH", "message": "sockets grew 0 → 100"}],
            "topFinding": "FD_GROWTH: sockets grew 0 → 100",
            "artifacts": [{"name": "manifest.json", "url": "s3://evidence/incidents/shop/api-leak/20261122T101501Z/manifest.json", "bytes": 1500, "sha256": "ab"}],
        })),
    )
}

fn serving(session: Value) -> Router {
    Arc::new(
        move |call| match (call.method.as_str(), call.path.as_str()) {
            ("GET", p) if p == format!("{SESSIONS}/api-leak") => (200, session.clone()),
            ("GET", SESSIONS) => support::list("DebugSessionList", vec![session.clone()]),
            ("GET", "/api/v1/namespaces/shop/events") => support::list(
                "EventList",
                vec![
                    json!({"metadata": {"name": "e1", "namespace": "shop"}, "involvedObject": {"kind": "DebugSession", "name": "api-leak"},
                        "type": "Normal", "reason": "CapturePodCreated", "message": "created procshot-api-leak-0123",
                        "lastTimestamp": "2026-11-22T10:15:01Z"}),
                ],
            ),
            ("GET", DISCOVERY) => support::discovery(),
            _ => support::not_found(),
        },
    )
}

#[tokio::test]
async fn get_prints_the_printer_columns_and_json_or_yaml_on_request() {
    let (run, calls) = support::run(serving(finished()), &["get"]).await;
    assert_eq!(run.code, 0);
    assert_eq!(calls.lines(), [format!("GET {SESSIONS}")]);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "NAME      PHASE      TARGET                               FINDING                                  AGE"
    );
    assert!(lines[1].starts_with("api-leak  Succeeded  pod api-7d9f8-x2b4q (container api)  WARNING FD_GROWTH: sockets grew 0 → 100  "), "{}", lines[1]);

    let (run, _) = support::run(serving(finished()), &["get", "-o", "yaml"]).await;
    let list: Value = serde_saphyr::from_str(&run.stdout).unwrap();
    assert_eq!(
        (
            list["kind"].as_str(),
            list["items"][0]["metadata"]["name"].as_str()
        ),
        (Some("List"), Some("api-leak"))
    );
    let (run, _) = support::run(serving(finished()), &["get", "api-leak", "-o", "json"]).await;
    let one: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(one["status"]["phase"], "Succeeded");
}

#[tokio::test]
async fn get_of_every_namespace_adds_the_namespace_column() {
    let router: Router = Arc::new(|call| match call.path.as_str() {
        "/apis/procshot.dev/v1alpha1/debugsessions" => {
            support::list("DebugSessionList", vec![finished()])
        }
        _ => support::not_found(),
    });
    let (run, _) = support::run(router, &["get", "-A"]).await;
    assert!(run.stdout.starts_with("NAMESPACE  NAME "), "{}", run.stdout);
    assert!(
        run.stdout
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("shop       api-leak"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn describe_shows_the_request_the_targets_the_findings_the_files_and_the_events() {
    let (run, calls) = support::run(serving(finished()), &["describe", "api-leak"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let events = calls
        .all()
        .into_iter()
        .find(|c| c.path.ends_with("/events"))
        .unwrap();
    assert!(
        events.query.contains(
            "fieldSelector=involvedObject.kind%3DDebugSession%2CinvolvedObject.name%3Dapi-leak"
        ),
        "{}",
        events.query
    );
    for expected in [
        "Name:         api-leak",
        "Target:       pod api-7d9f8-x2b4q (container api)",
        "Captures:     fds, threads, memory",
        "Samples:      3 every 10s, timeout 5m",
        "Output:       s3://evidence/incidents at https://minio:9000",
        "Phase:        Succeeded",
        "  Ready  True    Succeeded  1 of 1 targets captured",
        "  api-7d9f8-x2b4q  Succeeded  worker-3  4242  3        120  9        10.0 MiB  procshot-api-7d9f8-x2b4q-0123456789",
        "  WARNING   FD_GROWTH  sockets grew 0 → 100",
        "  manifest.json  1.5 KiB  s3://evidence/incidents/shop/api-leak/20261122T101501Z/manifest.json",
        "  Normal  CapturePodCreated",
    ] {
        assert!(
            run.stdout.contains(expected),
            "{expected:?} in:\n{}",
            run.stdout
        );
    }
}

#[tokio::test]
async fn findings_exit_3_at_warning_and_print_json_for_scripts() {
    let (run, _) = support::run(serving(finished()), &["findings", "api-leak"]).await;
    assert_eq!(run.code, 3);
    assert_eq!(run.stdout, "WARNING   FD_GROWTH  sockets grew 0 → 100\n");
    let (run, _) = support::run(serving(finished()), &["findings", "api-leak", "-o", "json"]).await;
    let findings: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(findings[0]["code"], "FD_GROWTH");
    assert_eq!(run.code, 3);

    let mut quiet = finished();
    quiet["status"]["findings"] = json!([{"pod": "api-7d9f8-x2b4q", "severity": "info", "code": "SOCKET_CLOSE_WAIT", "message": "2 sockets"}]);
    let (run, _) = support::run(serving(quiet), &["findings", "api-leak"]).await;
    assert_eq!(run.code, 0, "info only: exit 0");
}

#[tokio::test]
async fn a_missing_session_is_answered_with_the_similar_names() {
    let (run, calls) = support::run(serving(finished()), &["findings", "api-lek"]).await;
    assert_eq!(run.code, 1);
    assert_eq!(
        calls.lines(),
        [
            format!("GET {SESSIONS}/api-lek"),
            format!("GET {DISCOVERY}"),
            format!("GET {SESSIONS}")
        ]
    );
    assert!(
        run.stderr
            .contains("debugsession api-lek not found in namespace shop: did you mean api-leak?"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn reading_without_the_right_to_says_which_role_grants_it() {
    let router: Router = Arc::new(|_| support::status(403, "Forbidden", "forbidden"));
    let (run, _) = support::run(router, &["get"]).await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("you may not list debugsessions.procshot.dev in namespace shop: ask for a Role that grants \"list\"")
            && run.stderr.contains("view, edit and admin roles"),
        "{}",
        run.stderr
    );
}

#[tokio::test(start_paused = true)]
async fn delete_waits_until_the_operator_has_removed_the_session() {
    let reads = Arc::new(AtomicUsize::new(0));
    let router: Router = Arc::new(move |call| match call.method.as_str() {
        "DELETE" => (200, finished()),
        // Still there (finalizer) twice, then gone.
        _ if reads.fetch_add(1, Ordering::SeqCst) < 2 => (200, finished()),
        _ => support::not_found(),
    });
    let (run, calls) = support::run(router, &["delete", "api-leak"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let path = format!("{SESSIONS}/api-leak");
    assert_eq!(
        calls.lines(),
        [
            format!("DELETE {path}"),
            format!("GET {path}"),
            format!("GET {path}"),
            format!("GET {path}")
        ]
    );
    assert_eq!(
        run.stdout,
        "debugsession.procshot.dev \"api-leak\" deleted\n"
    );
}

#[tokio::test]
async fn a_finished_session_without_an_output_has_nothing_to_download_and_says_why() {
    let mut session = finished();
    session["status"]["artifacts"] = json!([]);
    session["spec"].as_object_mut().unwrap().remove("output");
    let into = tempfile::tempdir().unwrap();
    let (run, _) = support::run(
        serving(session),
        &["download", "api-leak", into.path().to_str().unwrap()],
    )
    .await;
    assert_eq!(run.code, 6);
    assert!(
        run.stderr
            .contains("nothing to download from shop/api-leak: the session had no output")
            && run.stderr.contains("--output s3://BUCKET/PREFIX"),
        "{}",
        run.stderr
    );
}
