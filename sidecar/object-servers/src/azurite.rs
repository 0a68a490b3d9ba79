//! Azurite, Microsoft's Azure Storage emulator (its Blob service only), on loopback, with
//! real shared-key authentication for two accounts: [`ACCOUNT`] with [`ACCOUNT_KEY`], and
//! the emulator's well-known `devstoreaccount1`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use object_store::ObjectStore;
use object_store::azure::{
    AzureAccessKey, AzureAuthorizer, AzureCredential, MicrosoftAzureBuilder,
};
use object_store::client::{HttpRequest, HttpRequestBody};

use super::{ObjectServer, ServerProcess, clear_env, free_ports, installed, send};

/// The storage account procshot uploads to.
pub const ACCOUNT: &str = "procshot";
/// Its key (base64, as Azure keys are).
pub const ACCOUNT_KEY: &str = "cHJvY3Nob3QtdGVzdC1rZXktZm9yLWF6dXJpdGUtMDEyMzQ1Njc4OWFiY2RlZg==";
/// A key Azurite refuses for [`ACCOUNT`].
pub const WRONG_KEY: &str = "d3Jvbmcta2V5LWZvci1henVyaXRlLTAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5";
/// The account the emulator switch (`AZURE_STORAGE_USE_EMULATOR`) uses by default, and
/// its well-known key (published with Azurite and the Azure SDKs).
const EMULATOR_ACCOUNT: &str = "devstoreaccount1";
const EMULATOR_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// An Azurite Blob service; killed when dropped (or when the test binary exits).
pub struct Azurite {
    dir: tempfile::TempDir,
    port: u16,
    server: ServerProcess,
}

impl Azurite {
    /// The Azurite every test of the binary shares (each in a container of its own).
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<Azurite> = OnceLock::new();
        SHARED.get_or_init(Self::start)
    }

    /// Starts an Azurite of its own (for a test that kills it) on fresh data.
    pub fn start() -> Self {
        let binary: PathBuf = installed(
            "AZURITE_BLOB",
            "PROCSHOT_AZURITE_DIR",
            "azurite/node_modules/.bin/azurite-blob",
            "install-azurite.sh",
        );
        let dir = tempfile::tempdir().unwrap();
        let [port] = free_ports();
        let location = dir.path().join("data");
        let command = move || {
            let mut command = Command::new(&binary);
            command
                .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
                .arg("--location")
                .arg(&location)
                .env(
                    "AZURITE_ACCOUNTS",
                    format!("{ACCOUNT}:{ACCOUNT_KEY};{EMULATOR_ACCOUNT}:{EMULATOR_KEY}"),
                );
            command
        };
        let server = ServerProcess::start("azurite", dir.path().join("azurite.log"), port, command);
        Self { dir, port, server }
    }

    /// Creates a container in `account` with a request signed by object_store's own
    /// shared-key signer.
    fn create_container(&self, account: &str, key: &str, name: &str) {
        let credential = AzureCredential::AccessKey(AzureAccessKey::try_new(key).unwrap());
        let mut request = HttpRequest::new(HttpRequestBody::empty());
        *request.method_mut() = http::Method::PUT;
        *request.uri_mut() = format!("{}/{account}/{name}?restype=container", self.endpoint())
            .parse()
            .unwrap();
        AzureAuthorizer::new(&credential, account)
            .try_authorize(&mut request)
            .unwrap();
        let (status, body) = send(request);
        assert_eq!(
            status,
            http::StatusCode::CREATED,
            "creating container {name}: {}",
            body
        );
    }

    /// Creates a container in the emulator's default account.
    pub fn create_emulator_container(&self, name: &str) {
        self.create_container(EMULATOR_ACCOUNT, EMULATOR_KEY, name);
    }

    /// The environment of the emulator switch: `AZURE_STORAGE_USE_EMULATOR` with
    /// `AZURITE_BLOB_STORAGE_URL`, and neither account nor key (object_store then uses
    /// `devstoreaccount1` and its well-known key).
    pub fn emulator_env(&self, command: &mut Command) {
        clear_env(command, &["AZURE_", "AZURITE_"]);
        command
            .env("AZURE_STORAGE_USE_EMULATOR", "true")
            .env("AZURITE_BLOB_STORAGE_URL", self.endpoint());
    }

    /// A reader of a container of the emulator's default account.
    pub fn emulator_reader(&self, container: &str) -> Arc<dyn ObjectStore> {
        self.reader_of(EMULATOR_ACCOUNT, EMULATOR_KEY, container)
    }

    /// The environment of [`ACCOUNT`] with `key` at `endpoint`.
    pub fn account_env(command: &mut Command, endpoint: &str, key: &str) {
        clear_env(command, &["AZURE_", "AZURITE_"]);
        command
            .env("AZURE_STORAGE_ACCOUNT_NAME", ACCOUNT)
            .env("AZURE_STORAGE_ACCOUNT_KEY", key)
            .env("AZURE_ENDPOINT", format!("{endpoint}/{ACCOUNT}"))
            .env("AZURE_ALLOW_HTTP", "true");
    }

    fn reader_of(&self, account: &str, key: &str, container: &str) -> Arc<dyn ObjectStore> {
        Arc::new(
            MicrosoftAzureBuilder::new()
                .with_account(account)
                .with_access_key(key)
                .with_container_name(container)
                .with_endpoint(format!("{}/{account}", self.endpoint()))
                .with_allow_http(true)
                .build()
                .unwrap(),
        )
    }
}

impl ObjectServer for Azurite {
    fn scheme(&self) -> &'static str {
        "az"
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates the container and waits until Azurite has saved it: Azurite keeps its
    /// metadata in memory and writes it to `--location` every few seconds, so a container
    /// created just before a kill would be gone after the restart.
    fn create_bucket(&self, name: &str) {
        self.create_container(ACCOUNT, ACCOUNT_KEY, name);
        let metadata = self.dir.path().join("data/__azurite_db_blob__.json");
        let quoted = format!("\"{name}\"");
        super::wait_for(
            "Azurite to save the new container to disk",
            Duration::from_secs(30),
            || std::fs::read_to_string(&metadata).is_ok_and(|text| text.contains(&quoted)),
        );
    }

    /// `AZURE_STORAGE_ACCOUNT_NAME` and `_KEY`, with `AZURE_ENDPOINT` naming the account's
    /// URL (path-style, as on the emulator) and `AZURE_ALLOW_HTTP`.
    fn env(&self, command: &mut Command, endpoint: &str) {
        Self::account_env(command, endpoint, ACCOUNT_KEY);
    }

    fn reader(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        self.reader_of(ACCOUNT, ACCOUNT_KEY, bucket)
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
