//! Real object stores for the tests of uploads (the sidecar's) and downloads (the
//! plugin's), each started on loopback from the binary its install script caches: Garage
//! for S3 (scripts/install-garage.sh), Azurite for Azure Blob Storage
//! (scripts/install-azurite.sh) and fake-gcs-server for Google Cloud Storage
//! (scripts/install-fake-gcs-server.sh).
//!
//! A store is started once per test binary ([`azurite::Azurite::shared`] and the like) and
//! every test works in a bucket of its own; a test that kills its store starts one of its
//! own. Servers die with the test binary (a parent-death signal), even when it panics.

pub mod azurite;
pub mod fake_gcs;
pub mod garage;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::TryStreamExt;
use object_store::client::{HttpClient, HttpConnector, HttpRequest, ReqwestConnector};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt};

/// A running object store the upload tests talk to.
pub trait ObjectServer: Sync {
    /// The URL scheme of its destinations: `s3`, `az` or `gs`.
    fn scheme(&self) -> &'static str;

    /// Where it listens (`http://127.0.0.1:PORT`), as procshot's messages name it.
    fn endpoint(&self) -> String;

    /// Creates a bucket (an Azure container).
    fn create_bucket(&self, name: &str);

    /// Sets the environment procshot reads to reach a server at `endpoint` with this
    /// server's valid credentials, removing every inherited variable of this kind of store.
    fn env(&self, command: &mut Command, endpoint: &str);

    /// An object_store client on `bucket`, to read back what procshot uploaded.
    fn reader(&self, bucket: &str) -> Arc<dyn ObjectStore>;

    /// Kills the server (SIGKILL, as a crash would).
    fn kill(&self);

    /// Starts it again on the same port and data (buckets and objects persist).
    fn restart(&self);

    /// The directory the server keeps its data in.
    fn data_dir(&self) -> &Path;

    /// Bytes of the files under [`ObjectServer::data_dir`], a sign that uploads arrive.
    fn stored_bytes(&self) -> u64 {
        fn walk(dir: &Path) -> u64 {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return 0;
            };
            entries
                .filter_map(Result::ok)
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => walk(&e.path()),
                    _ => e.metadata().map_or(0, |m| m.len()),
                })
                .sum()
        }
        walk(self.data_dir())
    }

    /// The `--to` URL of `prefix` in `bucket`.
    fn url(&self, bucket: &str, prefix: &str) -> String {
        format!("{}://{bucket}/{prefix}", self.scheme())
    }

    /// Sets the environment to reach this server.
    fn connect(&self, command: &mut Command) {
        self.env(command, &self.endpoint());
    }

    /// Every object under `prefix` in `bucket`, with its content.
    fn download(&self, bucket: &str, prefix: &str) -> BTreeMap<String, Vec<u8>> {
        let store = self.reader(bucket);
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
}

/// A server process: its command (to start it again), its log and the running child.
pub struct ServerProcess {
    name: &'static str,
    command: Box<dyn Fn() -> Command + Send + Sync>,
    log: PathBuf,
    child: Mutex<Option<Child>>,
}

impl ServerProcess {
    /// Starts `command()` with stdout and stderr appended to `log`, and waits until `port`
    /// accepts connections.
    pub fn start(
        name: &'static str,
        log: PathBuf,
        port: u16,
        command: impl Fn() -> Command + Send + Sync + 'static,
    ) -> Self {
        let server = Self {
            name,
            command: Box::new(command),
            log,
            child: Mutex::new(None),
        };
        server.spawn(port);
        server
    }

    fn spawn(&self, port: u16) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut command = (self.command)();
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        *self.child.lock().unwrap() = Some(spawn_dying_with_the_tests(command, self.name));
        self.wait_for_port(port);
    }

    fn wait_for_port(&self, port: u16) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            self.assert_running();
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} did not listen on port {port} within 60 s: {}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Panics with the server's log if it exited.
    pub fn assert_running(&self) {
        let mut child = self.child.lock().unwrap();
        let child = child
            .as_mut()
            .unwrap_or_else(|| panic!("{} runs", self.name));
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{} exited ({status}): {}", self.name, self.log());
        }
    }

    /// What the server printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the server and waits for it.
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts it again, waiting for `port`.
    pub fn restart(&self, port: u16) {
        self.kill();
        self.spawn(port);
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Spawns `command` so that it is killed when the test binary exits, however it exits.
///
/// The parent-death signal fires when the *thread* that spawned the child ends, and test
/// threads end with their test: so every server is spawned by one thread that lives as
/// long as the binary.
fn spawn_dying_with_the_tests(mut command: Command, name: &str) -> Child {
    type Request = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, received) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("object-servers".into())
            .spawn(move || {
                for (mut command, reply) in received {
                    let _ = reply.send(command.spawn());
                }
            })
            .unwrap();
        Mutex::new(requests)
    });
    // SAFETY: the closure only makes one async-signal-safe system call (prctl).
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(std::io::Error::from)
        });
    }
    let (reply, answer) = mpsc::channel();
    spawner.lock().unwrap().send((command, reply)).unwrap();
    answer
        .recv()
        .unwrap()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"))
}

/// `N` loopback ports that were free a moment ago.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

/// An endpoint nothing listens on.
pub fn closed_endpoint() -> String {
    let [port] = free_ports();
    format!("http://127.0.0.1:{port}")
}

/// A tokio runtime for object_store calls from a test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Sends `request` with object_store's own HTTP client (for what object_store has no
/// call for: creating buckets) and returns the status and the body.
pub fn send(request: HttpRequest) -> (http::StatusCode, String) {
    let client: HttpClient = ReqwestConnector::default()
        .connect(&ClientOptions::new().with_allow_http(true))
        .unwrap();
    runtime().block_on(async {
        let response = client.execute(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().bytes().await.unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    })
}

/// A binary an install script puts into the cache: `$VARIABLE` if set, else
/// `${XDG_CACHE_HOME:-$HOME/.cache}/procshot/RELATIVE` (or below `$DIR_VARIABLE`).
pub fn installed(variable: &str, dir_variable: &str, relative: &str, script: &str) -> PathBuf {
    let binary = match std::env::var_os(variable) {
        Some(path) => PathBuf::from(path),
        None => {
            let (root, below) = match std::env::var_os(dir_variable) {
                Some(dir) => (PathBuf::from(dir), strip_first(relative)),
                None => (cache_dir().join("procshot"), Path::new(relative)),
            };
            root.join(below)
        }
    };
    assert!(
        binary.is_file(),
        "{} is not installed: run scripts/{script} (looked for {}; or set {variable})",
        relative.split('/').next().unwrap_or(relative),
        binary.display()
    );
    binary
}

fn strip_first(relative: &str) -> &Path {
    Path::new(relative.split_once('/').map_or(relative, |(_, rest)| rest))
}

fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache"))
}

/// Removes every inherited environment variable whose name starts with one of `prefixes`.
pub fn clear_env(command: &mut Command, prefixes: &[&str]) {
    for (name, _) in std::env::vars_os() {
        let name_text = name.to_string_lossy();
        if prefixes.iter().any(|p| name_text.starts_with(p)) {
            command.env_remove(name);
        }
    }
}

/// Waits until `condition` holds, polling, or panics after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
