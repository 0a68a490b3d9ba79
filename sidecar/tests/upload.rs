//! `procshot upload` and `procshot capture --upload` against a real S3 server, Garage
//! (scripts/install-garage.sh installs it; one per test binary, a bucket per test), and a
//! local directory (file://). Objects are read back with object_store, byte for byte. The
//! scenarios are shared with Azure and GCS (tests/object_servers/scenarios.rs).

mod object_servers;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use object_servers::garage::{Garage, KEY_ID, SECRET, s3_env};
use object_servers::scenarios::{
    self, assert_upload_failed, snapshot, stderr, timestamp, upload, uploaded_names,
};
use object_servers::{ObjectServer, closed_endpoint};
use serde_json::Value;
use support::Fixture;

#[test]
fn a_capture_is_uploaded_under_prefix_session_and_timestamp_byte_for_byte() {
    support::require_root();
    scenarios::round_trip(Garage::shared(), "round-trip");
}

#[test]
fn capture_with_upload_lists_every_artifact_in_the_termination_summary() {
    support::require_root();
    scenarios::capture_with_upload(Garage::shared(), "capture-upload");
}

#[test]
fn files_over_8_mib_go_multipart_and_arrive_intact() {
    support::require_root();
    scenarios::multipart(Garage::shared(), "multipart");
}

#[test]
fn a_wrong_secret_key_fails_fast_with_access_denied() {
    support::require_root();
    let garage = Garage::shared();
    let wrong = SECRET.replace("beef", "dead");
    scenarios::refused_credentials(
        garage,
        "refused",
        |c| s3_env(c, &garage.endpoint(), KEY_ID, &wrong),
        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
    );
}

#[test]
fn a_missing_bucket_is_named() {
    support::require_root();
    let garage = Garage::shared();
    scenarios::missing_bucket(garage, "bucket");
    // AWS_ENDPOINT, the older name of AWS_ENDPOINT_URL, works too.
    let fixture = Fixture::start(&["steady"]);
    let (_out, dir) = support::capture_ok(fixture.pid(), &["--samples", "1"]);
    let output = upload(&dir, "s3://no-such-bucket/p", &[], |c| {
        garage.connect(c);
        c.env_remove("AWS_ENDPOINT_URL")
            .env("AWS_ENDPOINT", garage.endpoint());
    });
    assert_upload_failed(
        &output,
        &format!(
            "upload to s3://no-such-bucket/p failed: bucket no-such-bucket does not exist at {}",
            garage.endpoint()
        ),
    );
}

#[test]
fn an_unreachable_endpoint_fails_within_the_upload_timeout() {
    support::require_root();
    scenarios::unreachable(Garage::shared(), "AWS_ENDPOINT_URL");
}

#[test]
fn a_server_dying_mid_upload_fails_clearly_and_a_retry_succeeds() {
    support::require_root();
    scenarios::killed_mid_upload(&Garage::start(), "crash");
}

#[test]
fn hold_on_upload_failure_keeps_running_until_the_capture_deadline() {
    support::require_root();
    let fixture = Fixture::start(&["steady"]);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("capture");
    let summary_file = out.path().join("termination-log");
    let endpoint = closed_endpoint();
    let mut command = support::procshot();
    command
        .args(["capture", "--pid", &fixture.pid().to_string(), "--out"])
        .arg(&dir)
        .args(["--samples", "1", "--timeout", "3s"])
        .args(["--upload", "s3://bucket/p", "--upload-timeout", "500ms"])
        .arg("--hold-on-upload-failure")
        .arg("--termination-summary")
        .arg(&summary_file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    s3_env(&mut command, &endpoint, KEY_ID, SECRET);
    let started = Instant::now();
    let mut child = command.spawn().unwrap();
    support::wait_for("the termination summary", Duration::from_secs(3), || {
        std::fs::metadata(&summary_file).is_ok_and(|m| m.len() > 0)
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        child.try_wait().unwrap().is_none(),
        "procshot exited right after the failed upload"
    );
    let summary: Value = serde_json::from_slice(&std::fs::read(&summary_file).unwrap()).unwrap();
    assert_eq!(summary["outcome"], "Succeeded");
    assert!(
        summary["uploadError"]
            .as_str()
            .is_some_and(|e| e.contains("could not reach")),
        "{summary}"
    );
    assert!(dir.join("manifest.json").is_file(), "the capture stays");
    let status = child.wait().unwrap();
    let elapsed = started.elapsed();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(10), "{stderr}");
    assert!(
        elapsed >= Duration::from_millis(2900) && elapsed < Duration::from_secs(5),
        "held until the 3 s deadline: {elapsed:?}: {stderr}"
    );
    assert!(stderr.contains("holding: the capture stays in"), "{stderr}");
}

#[test]
fn hold_on_upload_failure_ends_on_sigterm() {
    support::require_root();
    let fixture = Fixture::start(&["steady"]);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("capture");
    let endpoint = closed_endpoint();
    let mut command = support::procshot();
    command
        .args(["capture", "--pid", &fixture.pid().to_string(), "--out"])
        .arg(&dir)
        .args(["--samples", "1", "--timeout", "60s"])
        .args(["--upload", "s3://bucket/p", "--upload-timeout", "500ms"])
        .arg("--hold-on-upload-failure")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    s3_env(&mut command, &endpoint, KEY_ID, SECRET);
    let mut child = command.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("holding:") {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "procshot ended: {seen}"
        );
        seen.push_str(&line);
    }
    std::thread::sleep(Duration::from_millis(200));
    let stopped = Instant::now();
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(
        stopped.elapsed() < Duration::from_secs(2),
        "{:?}",
        stopped.elapsed()
    );
    assert_eq!(status.code(), Some(10), "{seen}");
}

#[test]
fn a_file_url_upload_copies_the_capture_to_a_directory() {
    support::require_root();
    let fixture = Fixture::start(&["steady"]);
    let (_out, dir) = support::capture_ok(fixture.pid(), &["--samples", "1"]);
    let before = snapshot(&dir);
    let dest = tempfile::tempdir().unwrap();
    let to = format!("file://{}/archive", dest.path().display());
    let summary_file = dest.path().join("termination-log");
    let output = upload(
        &dir,
        &to,
        &[
            "--session",
            "ops/incident-7",
            "--termination-summary",
            summary_file.to_str().unwrap(),
        ],
        |_| {},
    );
    let stdout = support::assert_success(&output);
    let target = dest
        .path()
        .join("archive/ops/incident-7")
        .join(timestamp(&dir));
    let names = uploaded_names(&dir);
    let mut copied: Vec<String> = std::fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    copied.sort();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(copied, sorted);
    for name in &names {
        assert!(
            std::fs::read(target.join(name)).unwrap() == std::fs::read(dir.join(name)).unwrap(),
            "{name} differs"
        );
    }
    let urls: Vec<&str> = stdout
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    let expected: Vec<String> = names
        .iter()
        .map(|n| format!("{to}/ops/incident-7/{}/{n}", timestamp(&dir)))
        .collect();
    assert_eq!(urls, expected);
    let summary: Value = serde_json::from_slice(&std::fs::read(&summary_file).unwrap()).unwrap();
    assert_eq!(summary["outcome"], "Succeeded");
    assert_eq!(summary["targetPid"], fixture.pid());
    let summarized: Vec<&str> = summary["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["url"].as_str().unwrap())
        .collect();
    assert_eq!(summarized, expected);

    // Never into the capture directory itself.
    let inside = upload(&dir, &format!("file://{}/copy", dir.display()), &[], |_| {});
    assert_upload_failed(&inside, "it is inside the capture directory");
    assert_eq!(snapshot(&dir), before, "the capture directory was modified");
}

#[test]
fn a_file_changed_after_the_capture_is_refused_before_anything_is_sent() {
    support::require_root();
    let fixture = Fixture::start(&["steady"]);
    let (_out, dir) = support::capture_ok(fixture.pid(), &["--samples", "1"]);
    let mut report = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("report.md"))
        .unwrap();
    report.write_all(b"edited\n").unwrap();
    let dest = tempfile::tempdir().unwrap();
    let output = upload(
        &dir,
        &format!("file://{}", dest.path().display()),
        &[],
        |_| {},
    );
    assert_eq!(output.status.code(), Some(8), "{}", stderr(&output));
    let stderr = stderr(&output);
    assert!(
        stderr.contains("report.md does not match the capture's manifest.json"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 0);
}
