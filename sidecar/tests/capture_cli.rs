//! The `procshot` command as an SRE runs it: a healthy process, the capture directory and
//! its integrity, re-rendering, redaction, and every bad input with its exit code.

mod support;

use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};
use support::Fixture;

#[test]
fn a_steady_process_gets_no_warning_and_a_complete_capture() {
    support::require_root();
    let mut fixture = Fixture::start(&["steady"]);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("capture");
    // Exactly as the issue asks users to type it.
    let output = support::capture(fixture.pid(), &dir, &["--samples", "3", "--interval", "2s"]);
    let stdout = support::assert_success(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    for n in 1..=3 {
        assert!(
            stderr.contains(&format!("sample {n}/3:")),
            "progress on stderr: {stderr}"
        );
    }
    assert!(stdout.contains("report: "), "{stdout}");

    let findings = support::findings(&dir);
    assert!(
        findings.iter().all(|(severity, _, _)| severity == "info"),
        "a steady process must get no warning: {findings:?}"
    );
    let summary = support::read_json(&dir, "summary.json");
    let samples = summary["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 3);
    let offsets: Vec<f64> = samples
        .iter()
        .map(|s| s["offsetSeconds"].as_f64().unwrap())
        .collect();
    assert!(
        (offsets[1] - 2.0).abs() < 0.3 && (offsets[2] - 4.0).abs() < 0.3,
        "2 s apart: {offsets:?}"
    );
    for sample in samples {
        assert_eq!(sample["threads"]["total"].as_u64(), Some(5));
        let fds = sample["fds"]["total"].as_u64().unwrap();
        assert!(
            (8..=12).contains(&fds),
            "steady holds 8 fds (+ short-lived churn): {fds}"
        );
        assert!(sample["memory"]["rssBytes"].as_u64().unwrap() > 20 << 20);
    }

    let manifest = support::read_json(&dir, "manifest.json");
    assert_eq!(manifest["samplesTaken"].as_u64(), Some(3));
    assert!(manifest.get("partial").is_none());
    assert_eq!(
        manifest["target"]["pid"].as_i64(),
        Some(i64::from(fixture.pid()))
    );
    assert!(
        manifest["target"]["exe"]
            .as_str()
            .unwrap()
            .ends_with("/fixture")
    );
    assert!(manifest["target"]["startTime"].is_string());
    let kinds: Vec<&str> = manifest["captures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["fds", "threads", "memory"]);
    assert_manifest_hashes(&dir);

    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    for chart in [
        "Open fds",
        "Threads",
        "Resident memory (RSS)",
        "Cgroup working set",
    ] {
        assert!(
            html.contains(&format!("<figcaption>{chart}</figcaption><svg")),
            "a chart of {chart}"
        );
    }
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http") && !html.contains("<script"),
        "self-contained"
    );
    let markdown = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        markdown.contains("## Findings") && markdown.contains("## Samples"),
        "{markdown}"
    );
    fixture.assert_untouched();
}

/// Every file the manifest lists exists with that size and sha256, and every file of the
/// directory but the manifest is listed.
fn assert_manifest_hashes(dir: &Path) {
    let manifest = support::read_json(dir, "manifest.json");
    let files = manifest["files"].as_array().unwrap();
    for file in files {
        let content = std::fs::read(dir.join(file["name"].as_str().unwrap())).unwrap();
        assert_eq!(file["bytes"].as_u64(), Some(content.len() as u64), "{file}");
        assert_eq!(
            file["sha256"].as_str().unwrap(),
            hex::encode(Sha256::digest(&content)),
            "{file}"
        );
    }
    let mut listed: Vec<&str> = files.iter().map(|f| f["name"].as_str().unwrap()).collect();
    listed.sort();
    let mut present: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "manifest.json")
        .collect();
    present.sort();
    assert_eq!(listed, present);
}

#[test]
fn report_rerenders_an_existing_capture() {
    support::require_root();
    let fixture = Fixture::start(&["leak", "timerfd", "20"]);
    let (_out, dir) = support::capture_ok(fixture.pid(), &["--samples", "2", "--interval", "1s"]);
    drop(fixture);
    let before = support::read_json(&dir, "summary.json");
    std::fs::remove_file(dir.join("report.html")).unwrap();
    std::fs::write(dir.join("report.md"), "stale").unwrap();

    let output = support::procshot()
        .arg("report")
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = support::assert_success(&output);
    assert!(stdout.contains("FD_GROWTH"), "{stdout}");
    assert!(dir.join("report.html").exists());
    assert!(
        std::fs::read_to_string(dir.join("report.md"))
            .unwrap()
            .contains("timerfds grew")
    );
    assert_eq!(
        support::read_json(&dir, "summary.json"),
        before,
        "same samples, same summary"
    );
    assert_manifest_hashes(&dir);
}

#[test]
fn secrets_on_the_command_line_never_reach_the_capture() {
    support::require_root();
    let fixture = Fixture::start(&[
        "steady",
        "--db-password=hunter2",
        "--api-token",
        "tok-5ecret",
        "DSN=postgres://app:pw-s3cr3t@db/shop",
    ]);
    let (_out, dir) = support::capture_ok(fixture.pid(), &["--samples", "1"]);
    let manifest = support::read_json(&dir, "manifest.json");
    let argv: Vec<&str> = manifest["target"]["commandLine"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        argv[1..],
        [
            "steady",
            "--db-password=<redacted>",
            "--api-token",
            "<redacted>",
            "DSN=postgres://app:<redacted>@db/shop"
        ]
    );
    for entry in std::fs::read_dir(&dir).unwrap() {
        let content = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for secret in ["hunter2", "tok-5ecret", "pw-s3cr3t"] {
            assert!(!content.contains(secret), "{secret} leaked");
        }
    }
}

#[test]
fn a_target_that_exits_between_samples_leaves_a_partial_capture() {
    support::require_root();
    let mut fixture = Fixture::start(&["steady"]);
    let pid = fixture.pid();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("capture");
    let child = std::thread::spawn({
        let dir = dir.clone();
        move || support::capture(pid, &dir, &["--samples", "4", "--interval", "1s"])
    });
    std::thread::sleep(Duration::from_millis(1500));
    fixture.kill();
    let output = child.join().unwrap();
    assert_eq!(
        output.status.code(),
        Some(6),
        "partial: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let manifest = support::read_json(&dir, "manifest.json");
    let reason = manifest["partial"].as_str().expect("marked partial");
    assert!(
        reason.contains(&format!("pid {pid} exited")) && reason.contains("after 2 of 4 samples"),
        "{reason}"
    );
    assert_eq!(manifest["samplesTaken"].as_u64(), Some(2));
    let summary = support::read_json(&dir, "summary.json");
    assert_eq!(summary["partial"].as_str(), Some(reason));
    assert_eq!(summary["samples"].as_array().unwrap().len(), 2);
    assert!(
        std::fs::read_to_string(dir.join("report.md"))
            .unwrap()
            .contains("Partial capture")
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("PARTIAL capture"));
    assert_manifest_hashes(&dir);
}

fn assert_fails(output: &std::process::Output, code: i32, message: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    assert!(
        stderr.contains(message),
        "expected {message:?} in: {stderr}"
    );
}

#[test]
fn a_missing_pid_is_exit_3_and_writes_nothing() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("capture");
    // Pids are below pid_max (at most 2^22), so this one cannot exist.
    let output = support::capture(99_999_999, &dir, &["--samples", "1"]);
    assert_fails(&output, 3, "no process with pid 99999999");
    assert!(!dir.exists());
}

#[test]
fn a_zombie_is_exit_3() {
    support::require_root();
    // A child that has exited but is not reaped by us (yet) is a zombie.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id() as i32;
    support::wait_for("the zombie", Duration::from_secs(5), || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
    });
    let out = tempfile::tempdir().unwrap();
    let output = support::capture(pid, &out.path().join("capture"), &["--samples", "1"]);
    assert_fails(&output, 3, "is a zombie");
    child.wait().unwrap();
}

#[test]
fn a_non_empty_output_directory_is_exit_5() {
    support::require_root();
    let fixture = Fixture::start(&["steady"]);
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("earlier-capture.json"), "{}").unwrap();
    let output = support::capture(fixture.pid(), out.path(), &["--samples", "1"]);
    assert_fails(&output, 5, "is not empty");
    let file = out.path().join("earlier-capture.json");
    let output = support::capture(fixture.pid(), &file, &["--samples", "1"]);
    assert_fails(&output, 5, "is not a directory");
    assert_eq!(
        std::fs::read_to_string(file).unwrap(),
        "{}",
        "never overwritten"
    );
}

#[test]
fn an_unprivileged_user_gets_exit_4_with_what_to_do() {
    support::require_root();
    let fixture = Fixture::start(&["steady"]);
    let out = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        out.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let output = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_procshot"),
            "capture",
            "--pid",
        ])
        .arg(fixture.pid().to_string())
        .arg("--out")
        .arg(out.path().join("capture"))
        .args(["--samples", "1"])
        .output()
        .expect("setpriv (util-linux) runs procshot as nobody");
    assert_fails(&output, 4, "permission denied reading");
    assert!(String::from_utf8_lossy(&output.stderr).contains("CAP_SYS_PTRACE"));
}

#[test]
fn malformed_proc_text_is_exit_7_naming_the_file() {
    support::require_root();
    // A proc root holding a copy of a real process's files with a corrupted `limits`.
    let fixture = Fixture::start(&["steady"]);
    let root = tempfile::tempdir().unwrap();
    let pid_dir = root.path().join(fixture.pid().to_string());
    std::fs::create_dir(&pid_dir).unwrap();
    for file in ["stat", "status", "cmdline", "cgroup"] {
        std::fs::copy(
            format!("/proc/{}/{file}", fixture.pid()),
            pid_dir.join(file),
        )
        .unwrap();
    }
    std::fs::write(
        pid_dir.join("limits"),
        "Limit Soft Limit Hard Limit Units\nMax open files  lots  4096  files\n",
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let output = support::procshot()
        .args([
            "capture",
            "--pid",
            &fixture.pid().to_string(),
            "--samples",
            "1",
            "--capture",
            "fds",
            "--proc-root",
        ])
        .arg(root.path())
        .arg("--out")
        .arg(out.path().join("capture"))
        .output()
        .unwrap();
    assert_fails(
        &output,
        7,
        &format!("malformed {}", pid_dir.join("limits").display()),
    );
}

#[test]
fn report_on_a_directory_that_is_not_a_capture_is_exit_8() {
    let dir = tempfile::tempdir().unwrap();
    let output = support::procshot()
        .arg("report")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_fails(&output, 8, "is not a readable procshot capture");
}

#[test]
fn bad_flags_are_usage_errors() {
    let output = support::procshot()
        .args(["capture", "--pid", "1", "--capture", "fds,stack"])
        .output()
        .unwrap();
    assert_fails(
        &output,
        2,
        "unknown capture \"stack\": choose from fds, threads, memory, goroutines, stacks",
    );
    let output = support::procshot()
        .args(["capture", "--pid", "1", "--stack-max-stop", "5s"])
        .output()
        .unwrap();
    assert_fails(
        &output,
        2,
        "5s is not a sensible bound: give one from 1us to 1s",
    );
    let output = support::procshot()
        .args(["capture", "--pid", "1", "--samples", "0"])
        .output()
        .unwrap();
    assert_fails(&output, 2, "--samples");
    let output = support::procshot()
        .args(["capture", "--pid", "1", "--interval", "soon"])
        .output()
        .unwrap();
    assert_fails(&output, 2, "--interval");
}

#[test]
fn a_deadline_shorter_than_the_sampling_ends_the_capture_partial() {
    support::require_root();
    let fixture = Fixture::start(&["steady"]);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("capture");
    let output = support::capture(
        fixture.pid(),
        &dir,
        &["--samples", "5", "--interval", "1s", "--timeout", "1500ms"],
    );
    assert_eq!(
        output.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let manifest = support::read_json(&dir, "manifest.json");
    assert_eq!(
        manifest["partial"].as_str(),
        Some("the deadline of 1s 500ms passed after 2 of 5 samples")
    );
    assert_eq!(manifest["samplesTaken"].as_u64(), Some(2));
}

#[test]
fn cat_writes_each_file_of_a_capture_byte_for_byte_and_nothing_outside_it() {
    support::require_root();
    let fixture = Fixture::start(&["steady"]);
    let (_out, dir) = support::capture_ok(fixture.pid(), &["--samples", "1"]);
    drop(fixture);
    // What `kubectl procshot download` runs in a capture pod: the manifest, then each file.
    let manifest = support::read_json(&dir, "manifest.json");
    let names = std::iter::once("manifest.json").chain(
        manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap()),
    );
    for name in names {
        let output = support::procshot()
            .arg("cat")
            .arg(&dir)
            .arg(name)
            .output()
            .unwrap();
        assert!(output.status.success(), "{name}: {output:?}");
        assert_eq!(
            output.stdout,
            std::fs::read(dir.join(name)).unwrap(),
            "{name}"
        );
    }
    for (name, code, message) in [
        (
            "../capture/manifest.json",
            2,
            "is not a file name of the capture directory",
        ),
        ("core.zst", 8, "No such file"),
    ] {
        let output = support::procshot()
            .arg("cat")
            .arg(&dir)
            .arg(name)
            .output()
            .unwrap();
        assert_fails(&output, code, message);
        assert!(output.stdout.is_empty(), "{name}");
    }
}
