//! The upload tests every object store runs, and what they check them with: a round trip
//! byte for byte (key layout, sizes, sha256, the URLs printed), multipart uploads above
//! the part size, a refused credential, a missing bucket, an unreachable endpoint, a server
//! killed mid-upload, and `capture --upload` with its termination summary.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use procshot::directory::Manifest;
use procshot::files::FileEntry;
use serde_json::Value;

use super::{ObjectServer, closed_endpoint};
use crate::support::{self, Fixture};

/// `procshot upload --from DIR --to URL ARGS…` with the environment `env` sets.
pub fn upload(dir: &Path, to: &str, args: &[&str], env: impl FnOnce(&mut Command)) -> Output {
    let mut command = support::procshot();
    command
        .arg("upload")
        .arg("--from")
        .arg(dir)
        .args(["--to", to])
        .args(args);
    env(&mut command);
    command.output().unwrap()
}

/// The capture's manifest.
pub fn manifest(dir: &Path) -> Manifest {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

/// `TIMESTAMP` of `PREFIX/NAMESPACE/SESSION/TIMESTAMP` for a capture.
pub fn timestamp(dir: &Path) -> String {
    manifest(dir)
        .started_at
        .format("%Y%m%dT%H%M%SZ")
        .to_string()
}

/// The names an upload sends, in order: the manifest's files, then manifest.json.
pub fn uploaded_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = manifest(dir).files.into_iter().map(|f| f.name).collect();
    names.push("manifest.json".into());
    names
}

/// Every file of a directory with its content and modification time, to show that an
/// upload left it as it was.
pub fn snapshot(dir: &Path) -> BTreeMap<String, (Vec<u8>, SystemTime)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            (
                entry.file_name().to_string_lossy().into_owned(),
                (
                    std::fs::read(entry.path()).unwrap(),
                    meta.modified().unwrap(),
                ),
            )
        })
        .collect()
}

pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes))
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts a failed upload: exit code 10 and `expected` in the message.
pub fn assert_upload_failed(output: &Output, expected: &str) -> String {
    let stderr = stderr(output);
    assert_eq!(
        output.status.code(),
        Some(10),
        "exit code: stdout {} stderr {stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(
        stderr.contains(expected),
        "expected {expected:?} in: {stderr}"
    );
    stderr
}

/// Checks that every object under `KEY_DIR/` of `bucket` is exactly the capture's file of
/// that name (bytes, and the manifest's size and sha256), that nothing else is there, and
/// that procshot printed their URLs, sizes and hashes in upload order.
pub fn assert_uploaded(
    server: &dyn ObjectServer,
    bucket: &str,
    dir: &Path,
    key_dir: &str,
    stdout: &str,
) {
    let names = uploaded_names(dir);
    let objects = server.download(bucket, key_dir);
    let mut expected_keys: Vec<String> = names.iter().map(|n| format!("{key_dir}/{n}")).collect();
    expected_keys.sort();
    assert_eq!(objects.keys().cloned().collect::<Vec<_>>(), expected_keys);
    let entries: BTreeMap<String, FileEntry> = manifest(dir)
        .files
        .into_iter()
        .map(|f| (f.name.clone(), f))
        .collect();
    for name in &names {
        let local = std::fs::read(dir.join(name)).unwrap();
        let object = &objects[&format!("{key_dir}/{name}")];
        assert!(object == &local, "{name}: the object differs from the file");
        if let Some(entry) = entries.get(name) {
            assert_eq!(object.len() as u64, entry.bytes, "{name}");
            assert_eq!(sha256(object), entry.sha256, "{name}");
        }
    }
    let printed: Vec<(String, u64, String)> = stdout
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            assert_eq!(fields.len(), 3, "URL BYTES SHA256: {line}");
            (
                fields[0].to_string(),
                fields[1].parse().unwrap(),
                fields[2].to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, u64, String)> = names
        .iter()
        .map(|name| {
            let local = std::fs::read(dir.join(name)).unwrap();
            (
                server.url(bucket, &format!("{key_dir}/{name}")),
                local.len() as u64,
                sha256(&local),
            )
        })
        .collect();
    assert_eq!(printed, expected);
}

/// A capture-like directory holding one file of `mib` MiB of random bytes, listed in a
/// manifest written with procshot's own type (taken from a real capture).
pub fn big_capture(mib: usize) -> (tempfile::TempDir, PathBuf) {
    let fixture = Fixture::start(&["steady"]);
    let (out, real) = support::capture_ok(fixture.pid(), &["--samples", "1"]);
    let dir = out.path().join("big-capture");
    std::fs::create_dir(&dir).unwrap();
    let mut content = vec![0; mib << 20];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut content)
        .unwrap();
    std::fs::write(dir.join("big.bin"), &content).unwrap();
    let mut manifest = manifest(&real);
    manifest.files = vec![FileEntry {
        name: "big.bin".into(),
        bytes: content.len() as u64,
        sha256: sha256(&content),
    }];
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    (out, dir)
}

/// A capture of 2 samples goes to `PREFIX/NAMESPACE/SESSION/TIMESTAMP/`, byte for byte,
/// and the capture directory is left as it was.
pub fn round_trip(server: &dyn ObjectServer, bucket: &str) {
    server.create_bucket(bucket);
    let fixture = Fixture::start(&["steady"]);
    let (_out, dir) =
        support::capture_ok(fixture.pid(), &["--samples", "2", "--interval", "500ms"]);
    let before = snapshot(&dir);

    let output = upload(
        &dir,
        &server.url(bucket, "team/captures"),
        &["--session", "shop/api-fd-leak"],
        |c| server.connect(c),
    );
    let stdout = support::assert_success(&output);
    let stderr = stderr(&output);
    assert!(
        // fds, threads, memory, summary, two reports, manifest
        stderr.contains("uploading 7 files ("),
        "{stderr}"
    );
    let key_dir = format!("team/captures/shop/api-fd-leak/{}", timestamp(&dir));
    assert!(
        stderr.contains(&format!("to {}/", server.url(bucket, &key_dir))),
        "{stderr}"
    );
    assert_uploaded(server, bucket, &dir, &key_dir, &stdout);
    assert_eq!(snapshot(&dir), before, "the capture directory was modified");
}

/// A file above the part size (8 MiB) goes in parts, and arrives intact with the rest.
pub fn multipart(server: &dyn ObjectServer, bucket: &str) {
    server.create_bucket(bucket);
    let (_out, dir) = big_capture(20);
    let output = upload(
        &dir,
        &server.url(bucket, "big"),
        &["--session", "a/b"],
        |c| server.connect(c),
    );
    let stdout = support::assert_success(&output);
    let stderr = stderr(&output);
    assert!(
        stderr.contains("uploading big.bin (20.0 MiB) in 3 parts"),
        "a progress line for the big file: {stderr}"
    );
    let key_dir = format!("big/a/b/{}", timestamp(&dir));
    assert_uploaded(server, bucket, &dir, &key_dir, &stdout);
}

/// Credentials the server refuses (`env` sets them) fail at once, not retried, with a
/// message that says which variables to check (`check`); nothing is uploaded.
pub fn refused_credentials(
    server: &dyn ObjectServer,
    bucket: &str,
    env: impl FnOnce(&mut Command),
    check: &str,
) {
    server.create_bucket(bucket);
    let fixture = Fixture::start(&["steady"]);
    let (_out, dir) = support::capture_ok(fixture.pid(), &["--samples", "1"]);
    let before = snapshot(&dir);
    let started = Instant::now();
    let to = server.url(bucket, "p");
    let output = upload(&dir, &to, &[], env);
    let stderr = assert_upload_failed(
        &output,
        &format!("upload to {to} failed: access denied (403) for key p/local/capture/"),
    );
    assert!(stderr.contains(&format!("check {check}")), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a refused credential is not retried: {:?}",
        started.elapsed()
    );
    assert_eq!(snapshot(&dir), before, "the capture directory was modified");
    assert!(
        server.download(bucket, "p").is_empty(),
        "nothing was uploaded"
    );
}

/// An upload into a bucket (container) that does not exist names it and the endpoint, at
/// once.
pub fn missing_bucket(server: &dyn ObjectServer, noun: &str) {
    let fixture = Fixture::start(&["steady"]);
    let (_out, dir) = support::capture_ok(fixture.pid(), &["--samples", "1"]);
    let started = Instant::now();
    let to = server.url("no-such-bucket", "p");
    let output = upload(&dir, &to, &[], |c| server.connect(c));
    assert_upload_failed(
        &output,
        &format!(
            "upload to {to} failed: {noun} no-such-bucket does not exist at {}: create it, or \
             fix the {noun} name in the URL",
            server.endpoint()
        ),
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// An endpoint nothing listens on is retried until `--upload-timeout` (5 s), no longer,
/// and the message names it and the variable that sets it (`setting`).
pub fn unreachable(server: &dyn ObjectServer, setting: &str) {
    let fixture = Fixture::start(&["steady"]);
    let (_out, dir) = support::capture_ok(fixture.pid(), &["--samples", "1"]);
    let before = snapshot(&dir);
    let endpoint = closed_endpoint();
    let to = server.url("bucket", "p");
    let started = Instant::now();
    let output = upload(&dir, &to, &["--upload-timeout", "5s"], |c| {
        server.env(c, &endpoint)
    });
    let elapsed = started.elapsed();
    let stderr = assert_upload_failed(
        &output,
        &format!("upload to {to} failed: could not reach {endpoint} after "),
    );
    assert!(stderr.contains(setting), "{stderr}");
    assert!(
        elapsed >= Duration::from_secs(4) && elapsed < Duration::from_secs(10),
        "retried until the 5 s timeout, no longer: {elapsed:?}"
    );
    assert_eq!(snapshot(&dir), before, "the capture directory was modified");
}

/// A server killed while the parts of a 200 MiB file are on their way: the upload fails
/// within its timeout saying the endpoint stopped answering; run again once the server is
/// back, it succeeds. `server` must be the test's own.
pub fn killed_mid_upload(server: &dyn ObjectServer, bucket: &str) {
    server.create_bucket(bucket);
    let (_out, dir) = big_capture(200);
    let before = snapshot(&dir);
    let to = server.url(bucket, "crash");

    let mut command = support::procshot();
    command
        .arg("upload")
        .arg("--from")
        .arg(&dir)
        .args([
            "--to",
            &to,
            "--session",
            "ns/crash",
            "--upload-timeout",
            "10s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    server.connect(&mut command);
    let started = Instant::now();
    let mut child = command.spawn().unwrap();
    // Kill the server once the parts are on their way.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "procshot ended: {seen}"
        );
        seen.push_str(&line);
        if line.contains("uploading big.bin (200.0 MiB) in 25 parts") {
            break;
        }
    }
    // Kill it once it holds more than the 8 parts procshot sends at once (so it has answered
    // some).
    let stored = server.stored_bytes();
    support::wait_for("the first parts to arrive", Duration::from_secs(10), || {
        server.stored_bytes() > stored + (80 << 20)
    });
    std::thread::sleep(Duration::from_millis(200));
    server.kill();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    seen.push_str(&rest);
    let status = child.wait().unwrap();
    let elapsed = started.elapsed();
    assert_eq!(status.code(), Some(10), "{seen}");
    assert!(
        !seen.contains("uploaded big.bin"),
        "the upload finished before the server was killed: make the file bigger: {seen}"
    );
    assert!(
        seen.contains(&format!(
            "upload to {to} failed: could not reach {} after ",
            server.endpoint()
        )) && seen.contains("(it stopped answering during the upload, after answering "),
        "{seen}"
    );
    assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");
    assert_eq!(snapshot(&dir), before, "the capture directory was modified");

    // Running the upload again once the server is back works.
    server.restart();
    let output = upload(&dir, &to, &["--session", "ns/crash"], |c| server.connect(c));
    let stdout = support::assert_success(&output);
    let key_dir = format!("crash/ns/crash/{}", timestamp(&dir));
    assert_uploaded(server, bucket, &dir, &key_dir, &stdout);
}

/// `capture --upload` uploads every file and lists each in the termination summary with
/// its URL, size and sha256.
pub fn capture_with_upload(server: &dyn ObjectServer, bucket: &str) {
    server.create_bucket(bucket);
    let fixture = Fixture::start(&["steady"]);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("api-capture");
    let summary_file = out.path().join("termination-log");
    let mut command = support::procshot();
    command
        .args(["capture", "--pid", &fixture.pid().to_string(), "--out"])
        .arg(&dir)
        .args(["--samples", "2", "--interval", "500ms"])
        .args(["--upload", &server.url(bucket, "p")])
        .arg("--termination-summary")
        .arg(&summary_file);
    server.connect(&mut command);
    let output = command.output().unwrap();
    let stdout = support::assert_success(&output);

    let key_dir = format!("p/local/api-capture/{}", timestamp(&dir));
    let scheme = format!("{}://", server.scheme());
    let upload_lines: String = stdout
        .lines()
        .filter(|l| l.starts_with(&scheme))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_uploaded(server, bucket, &dir, &key_dir, &upload_lines);

    let summary: Value = serde_json::from_slice(&std::fs::read(&summary_file).unwrap()).unwrap();
    assert_eq!(summary["outcome"], "Succeeded");
    assert!(summary.get("uploadError").is_none(), "{summary}");
    let artifacts = summary["artifacts"].as_array().unwrap();
    let names = uploaded_names(&dir);
    assert_eq!(artifacts.len(), names.len(), "{summary}");
    for (artifact, name) in artifacts.iter().zip(&names) {
        let local = std::fs::read(dir.join(name)).unwrap();
        assert_eq!(artifact["name"], name.as_str());
        assert_eq!(
            artifact["url"],
            server.url(bucket, &format!("{key_dir}/{name}")).as_str()
        );
        assert_eq!(artifact["bytes"], local.len() as u64);
        assert_eq!(artifact["sha256"], sha256(&local).as_str());
    }
}
