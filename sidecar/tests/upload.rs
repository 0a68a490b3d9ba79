//! `procshot upload` and `procshot capture --upload` against a real S3 server: Garage,
//! started on loopback for each test (scripts/install-garage.sh installs it), and a local
//! directory (file://). Objects are read back with object_store, byte for byte.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use procshot::directory::Manifest;
use procshot::files::FileEntry;
use serde_json::Value;
use support::Fixture;

/// The bucket every Garage of these tests has.
const BUCKET: &str = "procshot-test";
/// The key it grants (Garage key IDs are GK and 24 hex digits; secrets 64 hex digits).
const KEY_ID: &str = "GK0123456789abcdef01234567";
const SECRET: &str = "5ec2e7000000000000000000000000000000000000000000000000000000beef";

/// A single-node Garage on loopback, with a layout, the key [`KEY_ID`] and the bucket
/// [`BUCKET`]; killed when dropped.
struct Garage {
    binary: PathBuf,
    dir: tempfile::TempDir,
    config: PathBuf,
    s3_port: u16,
    server: Option<Child>,
}

impl Garage {
    /// The garage binary: $GARAGE, or where scripts/install-garage.sh puts it.
    fn binary() -> PathBuf {
        let binary = match std::env::var_os("GARAGE") {
            Some(path) => PathBuf::from(path),
            None => {
                let root = std::env::var_os("PROCSHOT_GARAGE_DIR")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| {
                        let cache = std::env::var_os("XDG_CACHE_HOME")
                            .map(PathBuf::from)
                            .unwrap_or_else(|| {
                                PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                                    .join(".cache")
                            });
                        cache.join("procshot/garage")
                    });
                root.join("bin/garage")
            }
        };
        assert!(
            binary.is_file(),
            "garage is not installed: run scripts/install-garage.sh (looked for {})",
            binary.display()
        );
        binary
    }

    /// Starts Garage with fresh directories and sets up its layout, key and bucket.
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let [s3_port, rpc_port, admin_port] = free_ports();
        let config = dir.path().join("garage.toml");
        let secret: String = (0..32).map(|i| format!("{:02x}", i * 7 + 3)).collect();
        std::fs::write(
            &config,
            format!(
                r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{s3_port}"

[admin]
api_bind_addr = "127.0.0.1:{admin_port}"
"#,
                meta = dir.path().join("meta").display(),
                data = dir.path().join("data").display(),
            ),
        )
        .unwrap();
        let mut garage = Self {
            binary: Self::binary(),
            dir,
            config,
            s3_port,
            server: None,
        };
        garage.run_server();
        let node = garage.cli(&["node", "id", "-q"]);
        let node = node.trim().split('@').next().unwrap().to_string();
        garage.cli(&["layout", "assign", "-z", "dc1", "-c", "1GB", &node]);
        garage.cli(&["layout", "apply", "--version", "1"]);
        garage.cli(&["key", "import", "--yes", "-n", "procshot", KEY_ID, SECRET]);
        garage.cli(&["bucket", "create", BUCKET]);
        garage.cli(&[
            "bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", KEY_ID,
        ]);
        garage.wait_until_serving();
        garage
    }

    /// Starts `garage server` on the configured directories.
    fn run_server(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("garage.log"))
            .unwrap();
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config)
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start garage server");
        self.server = Some(child);
        // The CLI talks to the server over RPC: wait until it answers.
        support::wait_for("garage to answer", Duration::from_secs(30), || {
            self.assert_running();
            self.command(&["status"]).output().unwrap().status.success()
        });
    }

    /// Waits until the S3 API answers requests (it does once the layout is applied).
    fn wait_until_serving(&mut self) {
        let store = self.store();
        let runtime = runtime();
        support::wait_for("garage's S3 API", Duration::from_secs(30), || {
            self.assert_running();
            runtime
                .block_on(store.put(&ObjectPath::from("ready"), "ok".into()))
                .is_ok()
        });
        runtime
            .block_on(store.delete(&ObjectPath::from("ready")))
            .unwrap();
    }

    fn assert_running(&mut self) {
        let server = self.server.as_mut().expect("garage runs");
        if let Some(status) = server.try_wait().unwrap() {
            panic!(
                "garage exited ({status}): {}",
                std::fs::read_to_string(self.dir.path().join("garage.log")).unwrap_or_default()
            );
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command.arg("-c").arg(&self.config).args(args);
        command
    }

    /// Runs the garage CLI and returns its stdout; panics if it fails.
    fn cli(&self, args: &[&str]) -> String {
        let output = self.command(args).output().unwrap();
        assert!(
            output.status.success(),
            "garage {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The S3 endpoint.
    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// The environment procshot gets to reach this Garage (and no other AWS_* variable).
    fn env<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        s3_env(command, &self.endpoint(), KEY_ID, SECRET)
    }

    /// An object_store client on the bucket, to read back what procshot uploaded.
    fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::new(
            AmazonS3Builder::new()
                .with_endpoint(self.endpoint())
                .with_bucket_name(BUCKET)
                .with_region("garage")
                .with_access_key_id(KEY_ID)
                .with_secret_access_key(SECRET)
                .with_allow_http(true)
                .build()
                .unwrap(),
        )
    }

    /// Every object under `prefix`, with its content.
    fn download(&self, prefix: &str) -> BTreeMap<String, Vec<u8>> {
        let store = self.store();
        runtime().block_on(async {
            let listed: Vec<_> = store
                .list(Some(&ObjectPath::from(prefix)))
                .try_collect()
                .await
                .unwrap();
            let mut objects = BTreeMap::new();
            for meta in listed {
                let bytes = store
                    .get(&meta.location)
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                objects.insert(meta.location.to_string(), bytes.to_vec());
            }
            objects
        })
    }

    /// Kills the server (SIGKILL: as a crash would).
    fn kill(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }

    /// Starts the server again on the same directories (layout, key, bucket and objects
    /// persist).
    fn restart(&mut self) {
        self.kill();
        self.run_server();
        self.wait_until_serving();
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three loopback ports that were free a moment ago.
fn free_ports() -> [u16; 3] {
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    free_ports()[0]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Sets the S3 environment procshot reads, removing every inherited AWS_* variable.
fn s3_env<'a>(
    command: &'a mut Command,
    endpoint: &str,
    key: &str,
    secret: &str,
) -> &'a mut Command {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    command
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "garage")
        .env("AWS_ALLOW_HTTP", "true")
}

/// `procshot upload --from DIR --to URL ARGS…` with the environment `env` sets.
fn upload(dir: &Path, to: &str, args: &[&str], env: impl FnOnce(&mut Command)) -> Output {
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
fn manifest(dir: &Path) -> Manifest {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

/// `PREFIX/NAMESPACE/SESSION/TIMESTAMP` for a capture.
fn timestamp(dir: &Path) -> String {
    manifest(dir)
        .started_at
        .format("%Y%m%dT%H%M%SZ")
        .to_string()
}

/// The names an upload sends, in order: the manifest's files, then manifest.json.
fn uploaded_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = manifest(dir).files.into_iter().map(|f| f.name).collect();
    names.push("manifest.json".into());
    names
}

/// Every file of a directory with its content and modification time, to show that an
/// upload left it as it was.
fn snapshot(dir: &Path) -> BTreeMap<String, (Vec<u8>, SystemTime)> {
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

fn sha256(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts a failed upload: exit code 10 and `expected` in the message.
fn assert_upload_failed(output: &Output, expected: &str) -> String {
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

/// Checks that every object under `PREFIX/SESSION/TIMESTAMP/` is exactly the capture's
/// file of that name (bytes and the manifest's sha256), that nothing else is there, and
/// that procshot printed their URLs in upload order.
fn assert_uploaded(garage: &Garage, dir: &Path, key_dir: &str, stdout: &str) {
    let names = uploaded_names(dir);
    let objects = garage.download(key_dir);
    let expected_keys: Vec<String> = names.iter().map(|n| format!("{key_dir}/{n}")).collect();
    let mut sorted = expected_keys.clone();
    sorted.sort();
    assert_eq!(objects.keys().cloned().collect::<Vec<_>>(), sorted);
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
                format!("s3://{BUCKET}/{key_dir}/{name}"),
                local.len() as u64,
                sha256(&local),
            )
        })
        .collect();
    assert_eq!(printed, expected);
}

#[test]
fn a_capture_is_uploaded_under_prefix_session_and_timestamp_byte_for_byte() {
    support::require_root();
    let garage = Garage::start();
    let fixture = Fixture::start(&["steady"]);
    let (_out, dir) =
        support::capture_ok(fixture.pid(), &["--samples", "2", "--interval", "500ms"]);
    let before = snapshot(&dir);

    let output = upload(
        &dir,
        &format!("s3://{BUCKET}/team/captures"),
        &["--session", "shop/api-fd-leak"],
        |c| {
            garage.env(c);
        },
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
        stderr.contains(&format!("to s3://{BUCKET}/{key_dir}/")),
        "{stderr}"
    );
    assert_uploaded(&garage, &dir, &key_dir, &stdout);
    assert_eq!(snapshot(&dir), before, "the capture directory was modified");
}

#[test]
fn capture_with_upload_lists_every_artifact_in_the_termination_summary() {
    support::require_root();
    let garage = Garage::start();
    let fixture = Fixture::start(&["steady"]);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("api-capture");
    let summary_file = out.path().join("termination-log");
    let mut command = support::procshot();
    command
        .args(["capture", "--pid", &fixture.pid().to_string(), "--out"])
        .arg(&dir)
        .args(["--samples", "2", "--interval", "500ms"])
        .args(["--upload", &format!("s3://{BUCKET}/p")])
        .arg("--termination-summary")
        .arg(&summary_file);
    garage.env(&mut command);
    let output = command.output().unwrap();
    let stdout = support::assert_success(&output);

    let key_dir = format!("p/local/api-capture/{}", timestamp(&dir));
    let upload_lines: String = stdout
        .lines()
        .filter(|l| l.starts_with("s3://"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_uploaded(&garage, &dir, &key_dir, &upload_lines);

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
            format!("s3://{BUCKET}/{key_dir}/{name}").as_str()
        );
        assert_eq!(artifact["bytes"], local.len() as u64);
        assert_eq!(artifact["sha256"], sha256(&local).as_str());
    }
}

#[test]
fn files_over_8_mib_go_multipart_and_arrive_intact() {
    support::require_root();
    let garage = Garage::start();
    let fixture = Fixture::start(&["many-fds", "19990"]);
    let (_out, dir) = support::capture_ok(
        fixture.pid(),
        &["--capture", "fds", "--samples", "3", "--interval", "500ms"],
    );
    let fds = std::fs::metadata(dir.join("fds.json")).unwrap().len();
    assert!(fds > 8 << 20, "fds.json has only {fds} bytes");

    let output = upload(
        &dir,
        &format!("s3://{BUCKET}/big"),
        &["--session", "a/b"],
        |c| {
            garage.env(c);
        },
    );
    let stdout = support::assert_success(&output);
    let stderr = stderr(&output);
    assert!(
        stderr.contains("uploading fds.json (") && stderr.contains(" parts"),
        "a progress line for the big file: {stderr}"
    );
    let key_dir = format!("big/a/b/{}", timestamp(&dir));
    assert_uploaded(&garage, &dir, &key_dir, &stdout);
}

#[test]
fn a_wrong_secret_key_fails_fast_with_access_denied() {
    support::require_root();
    let garage = Garage::start();
    let fixture = Fixture::start(&["steady"]);
    let (_out, dir) = support::capture_ok(fixture.pid(), &["--samples", "1"]);
    let before = snapshot(&dir);
    let started = Instant::now();
    let wrong = SECRET.replace("beef", "dead");
    let output = upload(&dir, &format!("s3://{BUCKET}/p"), &[], |c| {
        s3_env(c, &garage.endpoint(), KEY_ID, &wrong);
    });
    let stderr = assert_upload_failed(
        &output,
        &format!("upload to s3://{BUCKET}/p failed: access denied (403) for key p/local/capture/"),
    );
    assert!(
        stderr.contains("check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a refused key is not retried: {:?}",
        started.elapsed()
    );
    assert_eq!(snapshot(&dir), before, "the capture directory was modified");
    assert!(garage.download("p").is_empty(), "nothing was uploaded");
}

#[test]
fn a_missing_bucket_is_named() {
    support::require_root();
    let garage = Garage::start();
    let fixture = Fixture::start(&["steady"]);
    let (_out, dir) = support::capture_ok(fixture.pid(), &["--samples", "1"]);
    let started = Instant::now();
    // AWS_ENDPOINT, the older name of AWS_ENDPOINT_URL, works too.
    let output = upload(&dir, "s3://no-such-bucket/p", &[], |c| {
        garage
            .env(c)
            .env_remove("AWS_ENDPOINT_URL")
            .env("AWS_ENDPOINT", garage.endpoint());
    });
    assert_upload_failed(
        &output,
        &format!(
            "upload to s3://no-such-bucket/p failed: bucket no-such-bucket does not exist at {}",
            garage.endpoint()
        ),
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn an_unreachable_endpoint_fails_within_the_upload_timeout() {
    support::require_root();
    let fixture = Fixture::start(&["steady"]);
    let (_out, dir) = support::capture_ok(fixture.pid(), &["--samples", "1"]);
    let before = snapshot(&dir);
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let started = Instant::now();
    let output = upload(&dir, "s3://bucket/p", &["--upload-timeout", "5s"], |c| {
        s3_env(c, &endpoint, KEY_ID, SECRET);
    });
    let elapsed = started.elapsed();
    let stderr = assert_upload_failed(
        &output,
        &format!("upload to s3://bucket/p failed: could not reach {endpoint} after "),
    );
    assert!(stderr.contains("AWS_ENDPOINT_URL"), "{stderr}");
    assert!(
        elapsed >= Duration::from_secs(4) && elapsed < Duration::from_secs(10),
        "retried until the 5 s timeout, no longer: {elapsed:?}"
    );
    assert_eq!(snapshot(&dir), before, "the capture directory was modified");
}

/// A capture-like directory holding one file of `mib` MiB of random bytes, listed in a
/// manifest written with procshot's own type (taken from a real capture).
fn big_capture(mib: usize) -> (tempfile::TempDir, PathBuf) {
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

#[test]
fn a_server_dying_mid_upload_fails_clearly_and_a_retry_succeeds() {
    support::require_root();
    let mut garage = Garage::start();
    let (_out, dir) = big_capture(200);
    let before = snapshot(&dir);
    let to = format!("s3://{BUCKET}/crash");

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
    garage.env(&mut command);
    let started = Instant::now();
    let mut child = command.spawn().unwrap();
    // Kill Garage once the parts are on their way.
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
    std::thread::sleep(Duration::from_millis(200));
    garage.kill();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    seen.push_str(&rest);
    let status = child.wait().unwrap();
    let elapsed = started.elapsed();
    assert_eq!(status.code(), Some(10), "{seen}");
    assert!(
        !seen.contains("uploaded big.bin"),
        "the upload finished before Garage was killed: make the file bigger: {seen}"
    );
    assert!(
        seen.contains(&format!(
            "upload to {to} failed: could not reach {} after ",
            garage.endpoint()
        )) && seen.contains("(it stopped answering during the upload, after answering "),
        "{seen}"
    );
    assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");
    assert_eq!(snapshot(&dir), before, "the capture directory was modified");

    // Running the upload again once the server is back works.
    garage.restart();
    let output = upload(&dir, &to, &["--session", "ns/crash"], |c| {
        garage.env(c);
    });
    let stdout = support::assert_success(&output);
    let key_dir = format!("crash/ns/crash/{}", timestamp(&dir));
    assert_uploaded(&garage, &dir, &key_dir, &stdout);
}

#[test]
fn hold_on_upload_failure_keeps_running_until_the_capture_deadline() {
    support::require_root();
    let fixture = Fixture::start(&["steady"]);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("capture");
    let summary_file = out.path().join("termination-log");
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
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
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
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
