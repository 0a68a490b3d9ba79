//! Garage, an S3-compatible object store: one node on loopback with a layout, the key
//! [`KEY_ID`] and a bucket per test.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use super::{ObjectServer, ServerProcess, clear_env, free_ports, installed, runtime};

/// The key every Garage of these tests grants (key IDs are GK and 24 hex digits; secrets 64
/// hex digits).
pub const KEY_ID: &str = "GK0123456789abcdef01234567";
/// Its secret.
pub const SECRET: &str = "5ec2e7000000000000000000000000000000000000000000000000000000beef";
/// The region Garage is configured with.
const REGION: &str = "garage";

/// A single-node Garage; killed when dropped (or when the test binary exits).
pub struct Garage {
    binary: PathBuf,
    dir: tempfile::TempDir,
    config: PathBuf,
    s3_port: u16,
    rpc_port: u16,
    server: ServerProcess,
    /// The buckets created so far (a restart waits until the first one is served again).
    buckets: Mutex<Vec<String>>,
}

impl Garage {
    /// The Garage every test of the binary shares (each in a bucket of its own).
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<Garage> = OnceLock::new();
        SHARED.get_or_init(Self::start)
    }

    /// Starts a Garage of its own (for a test that kills it), with fresh directories, a
    /// layout and the key.
    pub fn start() -> Self {
        let binary = installed(
            "GARAGE",
            "PROCSHOT_GARAGE_DIR",
            "garage/bin/garage",
            "install-garage.sh",
        );
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
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3_port}"

[admin]
api_bind_addr = "127.0.0.1:{admin_port}"
"#,
                meta = dir.path().join("meta").display(),
                data = dir.path().join("data").display(),
            ),
        )
        .unwrap();
        let command = {
            let (binary, config) = (binary.clone(), config.clone());
            move || {
                let mut command = Command::new(&binary);
                command
                    .arg("-c")
                    .arg(&config)
                    .arg("server")
                    .env("RUST_LOG", "garage=warn");
                command
            }
        };
        let server =
            ServerProcess::start("garage", dir.path().join("garage.log"), rpc_port, command);
        let garage = Self {
            binary,
            dir,
            config,
            s3_port,
            rpc_port,
            server,
            buckets: Mutex::default(),
        };
        garage.wait_for_rpc();
        let node = garage.cli(&["node", "id", "-q"]);
        let node = node.trim().split('@').next().unwrap().to_string();
        garage.cli(&["layout", "assign", "-z", "dc1", "-c", "1GB", &node]);
        garage.cli(&["layout", "apply", "--version", "1"]);
        garage.cli(&["key", "import", "--yes", "-n", "procshot", KEY_ID, SECRET]);
        garage
    }

    /// The CLI talks to the server over RPC: waits until it answers.
    fn wait_for_rpc(&self) {
        super::wait_for("garage to answer", Duration::from_secs(30), || {
            self.server.assert_running();
            self.command(&["status"]).output().unwrap().status.success()
        });
    }

    /// Waits until the S3 API answers requests on `bucket` (it does once the layout is
    /// applied and the bucket allowed).
    fn wait_until_serving(&self, bucket: &str) {
        let store = self.reader(bucket);
        let runtime = runtime();
        super::wait_for("garage's S3 API", Duration::from_secs(30), || {
            self.server.assert_running();
            runtime
                .block_on(store.put(&ObjectPath::from("ready"), "ok".into()))
                .is_ok()
        });
        runtime
            .block_on(store.delete(&ObjectPath::from("ready")))
            .unwrap();
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
}

/// Sets the S3 environment procshot reads, removing every inherited AWS_* variable.
pub fn s3_env(command: &mut Command, endpoint: &str, key: &str, secret: &str) {
    clear_env(command, &["AWS_"]);
    command
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", REGION)
        .env("AWS_ALLOW_HTTP", "true");
}

impl ObjectServer for Garage {
    fn scheme(&self) -> &'static str {
        "s3"
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    fn create_bucket(&self, name: &str) {
        self.cli(&["bucket", "create", name]);
        self.cli(&[
            "bucket", "allow", "--read", "--write", "--owner", name, "--key", KEY_ID,
        ]);
        self.wait_until_serving(name);
        self.buckets.lock().unwrap().push(name.to_string());
    }

    fn env(&self, command: &mut Command, endpoint: &str) {
        s3_env(command, endpoint, KEY_ID, SECRET);
    }

    fn reader(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        Arc::new(
            AmazonS3Builder::new()
                .with_endpoint(self.endpoint())
                .with_bucket_name(bucket)
                .with_region(REGION)
                .with_access_key_id(KEY_ID)
                .with_secret_access_key(SECRET)
                .with_allow_http(true)
                .build()
                .unwrap(),
        )
    }

    fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    fn kill(&self) {
        self.server.kill();
    }

    fn restart(&self) {
        self.server.restart(self.rpc_port);
        self.wait_for_rpc();
        let first = self.buckets.lock().unwrap().first().cloned();
        if let Some(bucket) = first {
            self.wait_until_serving(&bucket);
        }
    }
}
