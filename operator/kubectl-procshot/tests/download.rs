//! Downloads of real captures: procshot captures a real process and its uploader sends
//! the directory to a real S3 server (Garage), then the plugin binary fetches it with the
//! user's credentials from the environment and checks every file against the manifest;
//! a corrupted object is refused. A capture held in its capture pod is fetched over the
//! exec subresource, where the mock API server runs procshot's own `cat` on the capture.

mod support;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use procshot::captures::CaptureKind;
use procshot::commands::capture::CaptureOptions;
use procshot::commands::upload::attempts::Attempts;
use procshot::commands::upload::transfer::Transfer;
use procshot::commands::upload::{Destination, Session};
use procshot_object_servers::ObjectServer;
use procshot_object_servers::garage::{Garage, KEY_ID, SECRET};
use procshot_operator::api::Artifact;
use serde_json::{Value, json};
use support::exec::{ExecAnswer, ExecRouter};

const NAME: &str = "api-leak";
const BUCKET: &str = "procshot-test";
const CAPTURE_POD: &str = "procshot-api-leak-0123456789";

/// A real capture (2 samples) of a `sleep` this test starts.
fn capture() -> (tempfile::TempDir, PathBuf, i32) {
    let mut child = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = child.id() as i32;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("capture");
    let options = CaptureOptions {
        pid,
        out: dir.clone(),
        samples: 2,
        interval: Duration::from_millis(200),
        captures: vec![CaptureKind::Fds, CaptureKind::Threads, CaptureKind::Memory],
        deadline: Duration::from_secs(60),
        proc_root: PathBuf::from("/proc"),
        cgroup_root: None,
        goroutines: Default::default(),
        stacks: Default::default(),
        core: Default::default(),
    };
    procshot::commands::capture::run(&options, &mut |_| {}).expect("a capture of sleep");
    child.kill().unwrap();
    child.wait().unwrap();
    (out, dir, pid)
}

/// A Garage of this test's own with [`BUCKET`].
fn garage_with_bucket() -> Garage {
    let garage = Garage::start();
    garage.create_bucket(BUCKET);
    garage
}

/// Uploads the capture as a capture pod does, with procshot's own plan and transfer;
/// returns the artifacts the session's status lists.
async fn upload(garage: &Garage, dir: &Path) -> Vec<Artifact> {
    let destination: Destination = format!("s3://{BUCKET}/incidents").parse().unwrap();
    let session: Session = format!("shop/{NAME}").parse().unwrap();
    let plan = procshot::commands::upload::plan::plan(dir, &destination, Some(&session)).unwrap();
    let store = garage.reader(BUCKET);
    let transfer = Transfer {
        store: store.as_ref(),
        attempts: &Attempts::default(),
        destination: &destination,
        done: &Cell::new(0),
    };
    transfer.send(&plan, &mut |_| {}).await.unwrap();
    plan.files
        .into_iter()
        .map(|f| Artifact {
            name: f.name,
            url: f.url,
            bytes: f.bytes,
            sha256: f.sha256,
        })
        .collect()
}

fn spec(garage: Option<&Garage>) -> Value {
    let mut spec = json!({"target": {"pod": "api-7d9f8-x2b4q"}, "samples": 2, "interval": "1s", "timeout": "1m"});
    if let Some(garage) = garage {
        // The session names the S3-compatible endpoint; the credentials are the user's.
        spec["output"] = json!({"s3": {"bucket": BUCKET, "prefix": "incidents", "endpoint": garage.endpoint(), "region": "garage"}});
    }
    spec
}

fn router(spec: Value, status: Value) -> support::Router {
    support::creating(move |call| {
        (call.method == "GET" && call.path == format!("{}/{NAME}", support::SESSIONS)).then(|| {
            (
                200,
                support::session(NAME, spec.clone(), Some(status.clone())),
            )
        })
    })
}

/// Runs the plugin binary with the kubeconfig and only the AWS credentials in its
/// environment.
async fn plugin(server: &support::ApiServer, args: &[&str]) -> Output {
    let mut command = Command::new(support::plugin());
    command
        .args(args)
        .env("KUBECONFIG", server.kubeconfig("shop"));
    for (name, _) in std::env::vars().filter(|(k, _)| k.starts_with("AWS_")) {
        command.env_remove(name);
    }
    command
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

/// Every file of `from` is in `to`, byte for byte, and nothing else.
fn assert_same_files(from: &Path, to: &Path) {
    let names = |dir: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(from), names(to));
    for name in names(from) {
        assert_eq!(
            std::fs::read(from.join(&name)).unwrap(),
            std::fs::read(to.join(&name)).unwrap(),
            "{name}"
        );
    }
}

fn succeeded(artifacts: &[Artifact], pid: i32) -> Value {
    json!({"phase": "Succeeded", "targets": [support::target("api-7d9f8-x2b4q", "Succeeded", json!({"targetPid": pid, "samples": 2}))],
           "artifacts": artifacts})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_download_fetches_every_file_and_checks_it_against_the_manifest() {
    let garage = tokio::task::spawn_blocking(garage_with_bucket)
        .await
        .unwrap();
    let (_keep, dir, pid) = tokio::task::spawn_blocking(capture).await.unwrap();
    let artifacts = upload(&garage, &dir).await;
    let server = support::ApiServer::start(
        router(spec(Some(&garage)), succeeded(&artifacts, pid)),
        None,
    )
    .await;
    let into = tempfile::tempdir().unwrap();
    let target = into.path().join("evidence");
    let output = plugin(
        &server,
        &[
            "capture",
            "api-7d9f8-x2b4q",
            "--name",
            NAME,
            "--download",
            target.to_str().unwrap(),
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.code().is_some_and(|c| c == 0 || c == 3),
        "{stdout}\n{stderr}"
    );
    assert_same_files(&dir, &target);
    assert!(
        stdout.contains(&format!("downloaded {} files", artifacts.len()))
            && stdout.contains("each checked against manifest.json"),
        "{stdout}"
    );
    assert!(stderr.contains("downloading fds.json"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_object_is_refused_and_not_kept() {
    let garage = tokio::task::spawn_blocking(garage_with_bucket)
        .await
        .unwrap();
    let (_keep, dir, pid) = tokio::task::spawn_blocking(capture).await.unwrap();
    let artifacts = upload(&garage, &dir).await;
    // The same size, one byte changed: only the sha256 can tell.
    let fds = artifacts.iter().find(|a| a.name == "fds.json").unwrap();
    let key = fds.url.strip_prefix(&format!("s3://{BUCKET}/")).unwrap();
    let mut content = std::fs::read(dir.join("fds.json")).unwrap();
    content[0] ^= 0x20;
    garage
        .reader(BUCKET)
        .put(&ObjectPath::from(key), PutPayload::from(content))
        .await
        .unwrap();

    // The endpoint from the user's environment this time (the session names none).
    let server =
        support::ApiServer::start(router(spec(None), succeeded(&artifacts, pid)), None).await;
    let into = tempfile::tempdir().unwrap();
    let output = {
        let mut command = Command::new(support::plugin());
        command
            .args(["download", NAME])
            .arg(into.path())
            .env("KUBECONFIG", server.kubeconfig("shop"))
            .env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_REGION", "garage")
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ENDPOINT_URL", garage.endpoint());
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains(&format!("refused fds.json from {}: its sha256 is", fds.url))
            && stderr.contains(&format!("the manifest says {}", fds.sha256)),
        "{stderr}"
    );
    let left: Vec<String> = std::fs::read_dir(into.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        !left
            .iter()
            .any(|n| n == "fds.json" || n == "manifest.json" || n.ends_with(".part")),
        "{left:?}"
    );
}

/// Runs `procshot cat` (the sidecar's own code) on `dir` for the exec requests.
fn cat_in(dir: PathBuf) -> ExecRouter {
    Arc::new(move |call| {
        let command = support::exec::command(call);
        assert_eq!(
            command[..3],
            ["procshot", "cat", "/work/capture"],
            "{command:?}"
        );
        assert!(call.query.contains("container=capture"), "{}", call.query);
        let mut stdout = Vec::new();
        match procshot::commands::cat::cat(&dir, &command[3], &mut stdout) {
            Ok(_) => ExecAnswer {
                stdout,
                stderr: Vec::new(),
                code: 0,
            },
            Err(e) => ExecAnswer {
                stdout,
                stderr: format!("procshot: error: {e}\n").into_bytes(),
                code: i32::from(e.exit_code()),
            },
        }
    })
}

fn holding() -> Value {
    json!({"phase": "Capturing", "targets": [support::target("api-7d9f8-x2b4q", "Capturing",
        json!({"capturePod": CAPTURE_POD, "targetPid": 4242}))]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_held_in_its_pod_is_fetched_over_exec_and_checked() {
    let (_keep, dir, _) = tokio::task::spawn_blocking(capture).await.unwrap();
    let server =
        support::ApiServer::start(router(spec(None), holding()), Some(cat_in(dir.clone()))).await;
    let into = tempfile::tempdir().unwrap();
    let output = plugin(&server, &["download", NAME, into.path().to_str().unwrap()]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_same_files(&dir, into.path());
    let exec = format!("GET /api/v1/namespaces/procshot-system/pods/{CAPTURE_POD}/exec");
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(
        server.calls.lines().iter().filter(|l| **l == exec).count(),
        files,
        "one exec per file"
    );
    assert!(
        stdout.contains(&format!("from pod procshot-system/{CAPTURE_POD}")),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_pod_without_a_capture_yet_says_so() {
    let empty = tempfile::tempdir().unwrap();
    let server = support::ApiServer::start(
        router(spec(None), holding()),
        Some(cat_in(empty.path().to_path_buf())),
    )
    .await;
    let into = tempfile::tempdir().unwrap();
    let output = plugin(
        &server,
        &["download", NAME, into.path().join("x").to_str().unwrap()],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot read the capture held in pod {CAPTURE_POD}: procshot cat failed: procshot: error: cannot read"))
            && stderr.contains("manifest.json"),
        "{stderr}"
    );
}
