//! The capture pod uploads to S3 with the operator's default output and the `envFrom`
//! Secret: a real Garage (scripts/install-garage.sh installs it) listens on 127.0.0.1
//! inside the capture pod's own network namespace (started there with `nsenter` once
//! the pod's sandbox runs), so the upload's traffic never leaves the pod.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use procshot_operator::api::Phase;
use support::*;

const KEY_ID: &str = "GK0123456789abcdef01234567";
const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const BUCKET: &str = "evidence";

/// Garage in the network namespace of a process; killed when dropped. Not the shared
/// `procshot_object_servers` Garage: that one is probed and read from the host's loopback,
/// which a server inside the capture pod's own network namespace is out of reach of.
struct Garage {
    dir: tempfile::TempDir,
    netns: PathBuf,
    server: Child,
}

impl Garage {
    fn binary() -> PathBuf {
        procshot_object_servers::installed(
            "GARAGE",
            "PROCSHOT_GARAGE_DIR",
            "garage/bin/garage",
            "install-garage.sh",
        )
    }

    /// Starts Garage on 127.0.0.1 in the network namespace of `pid`, with a bucket and a
    /// key allowed to write to it.
    fn start_in_netns_of(pid: i32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("garage.toml");
        std::fs::write(
            &config,
            format!(
                r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:3901"
rpc_public_addr = "127.0.0.1:3901"
rpc_secret = "{SECRET}"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:3900"
"#,
                meta = dir.path().join("meta").display(),
                data = dir.path().join("data").display(),
            ),
        )
        .unwrap();
        let netns = PathBuf::from(format!("/proc/{pid}/ns/net"));
        let log = std::fs::File::create(dir.path().join("garage.log")).unwrap();
        let server = in_netns(&netns)
            .arg(Self::binary())
            .arg("-c")
            .arg(&config)
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("nsenter (util-linux) starts garage");
        let garage = Self { dir, netns, server };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !garage
            .command(&["status"])
            .output()
            .unwrap()
            .status
            .success()
        {
            assert!(
                Instant::now() < deadline,
                "garage did not answer: {}",
                garage.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let node = garage.cli(&["node", "id", "-q"]);
        let node = node.trim().split('@').next().unwrap().to_string();
        garage.cli(&["layout", "assign", "-z", "dc1", "-c", "1GB", &node]);
        garage.cli(&["layout", "apply", "--version", "1"]);
        garage.cli(&["key", "import", "--yes", "-n", "procshot", KEY_ID, SECRET]);
        garage.cli(&["bucket", "create", BUCKET]);
        garage.cli(&[
            "bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", KEY_ID,
        ]);
        garage
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("garage.toml")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("garage.log")).unwrap_or_default()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = in_netns(&self.netns);
        command
            .arg(Self::binary())
            .arg("-c")
            .arg(self.config())
            .args(args);
        command
    }

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
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// `nsenter --net=NETNS` (the rest of the command follows).
fn in_netns(netns: &Path) -> Command {
    let mut command = Command::new("nsenter");
    command.arg(format!("--net={}", netns.display())).arg("--");
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_capture_is_uploaded_with_the_output_secret_from_envfrom() {
    let node = start_node().await;
    node.kubelet().add_secret(
        CAPTURE_NAMESPACE,
        "procshot-output",
        BTreeMap::from([
            ("AWS_ACCESS_KEY_ID".to_string(), KEY_ID.to_string()),
            ("AWS_SECRET_ACCESS_KEY".to_string(), SECRET.to_string()),
        ]),
    );
    let target = run_target(&node, target_pod(&node)).await;
    let capture_pod = render(
        &session("  samples: 3\n  interval: 2s\n  timeout: 2m\n"),
        &target.pod(),
        &[
            "--default-output=s3://evidence/incidents",
            "--default-output-endpoint=http://127.0.0.1:3900",
            "--default-output-region=garage",
        ],
    );
    let env_from = &capture_pod.spec.as_ref().unwrap().containers[0].env_from;
    assert!(
        env_from.is_some(),
        "the rendered pod takes the Secret through envFrom"
    );
    let handle = node.kubelet().run(capture_pod).unwrap();
    let pause = handle.sandbox_pid(WAIT).await.unwrap();
    // The capture uploads after its samples and retries an unreachable endpoint, so
    // Garage may come up while it samples.
    let garage = tokio::task::spawn_blocking(move || Garage::start_in_netns_of(pause))
        .await
        .unwrap();
    let done = handle.finished(WAIT).await.unwrap();
    let observation = procshot_operator::controller::observe::observe(&done, "api");
    assert_eq!(
        observation.phase,
        Phase::Succeeded,
        "{observation:?}; garage: {}",
        garage.log()
    );
    assert_eq!(observation.reason, None, "{observation:?}");
    let names: Vec<&str> = observation
        .artifacts
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert!(
        names.contains(&"manifest.json") && names.contains(&"fds.json"),
        "{names:?}"
    );
    for artifact in &observation.artifacts {
        assert!(
            artifact
                .url
                .starts_with("s3://evidence/incidents/shop/api-incident/"),
            "{artifact:?}"
        );
    }
    let info = garage.cli(&["bucket", "info", BUCKET]);
    assert!(
        info.lines()
            .any(|l| l.contains("Objects") && !l.trim_end().ends_with(" 0")),
        "the bucket holds the upload: {info}"
    );
    drop(garage);
    shut_down(node).await;
}
