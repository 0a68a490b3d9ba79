//! A single-node Garage (the S3 server the upload tests use, installed by
//! scripts/install-garage.sh) on loopback ports of its own, with one bucket and one key;
//! killed when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BUCKET: &str = "procshot-test";
pub const KEY_ID: &str = "GK0123456789abcdef01234567";
pub const SECRET: &str = "5ec2e7000000000000000000000000000000000000000000000000000000beef";

pub struct Garage {
    dir: tempfile::TempDir,
    server: Child,
    pub s3_port: u16,
}

/// Where scripts/install-garage.sh puts garage (or $GARAGE).
fn binary() -> PathBuf {
    let path = std::env::var_os("GARAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
            std::env::var_os("PROCSHOT_GARAGE_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| cache.join("procshot/garage"))
                .join("bin/garage")
        });
    assert!(
        path.is_file(),
        "garage is missing: run scripts/install-garage.sh ({})",
        path.display()
    );
    path
}

fn port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Garage {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (s3_port, rpc_port, admin_port) = (port(), port(), port());
        let config = dir.path().join("garage.toml");
        let meta = dir.path().join("meta");
        let data = dir.path().join("data");
        std::fs::write(
            &config,
            format!(
                "metadata_dir = {meta:?}\ndata_dir = {data:?}\ndb_engine = \"sqlite\"\n\
                 replication_factor = 1\nrpc_bind_addr = \"127.0.0.1:{rpc_port}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc_port}\"\nrpc_secret = \"{}\"\n\
                 [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3_port}\"\n\
                 [admin]\napi_bind_addr = \"127.0.0.1:{admin_port}\"\n",
                "ab".repeat(32)
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("garage.log")).unwrap();
        let server = Command::new(binary())
            .arg("-c")
            .arg(&config)
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let garage = Self {
            dir,
            server,
            s3_port,
        };
        let cli = |args: &[&str]| {
            Command::new(binary())
                .arg("-c")
                .arg(&config)
                .args(args)
                .output()
                .unwrap()
        };
        let started = Instant::now();
        while !cli(&["status"]).status.success() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "garage does not answer: {}",
                garage.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let id = String::from_utf8(cli(&["node", "id", "-q"]).stdout).unwrap();
        let node = id.trim().split('@').next().unwrap().to_string();
        for args in [
            &["layout", "assign", "-z", "dc1", "-c", "1GB", &node][..],
            &["layout", "apply", "--version", "1"],
            &["key", "import", "--yes", "-n", "procshot", KEY_ID, SECRET],
            &["bucket", "create", BUCKET],
            &[
                "bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", KEY_ID,
            ],
        ] {
            let output = cli(args);
            assert!(
                output.status.success(),
                "garage {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        garage
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("garage.log")).unwrap_or_default()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}
