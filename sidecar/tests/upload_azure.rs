//! `procshot upload` and `capture --upload` to Azure Blob Storage, against Azurite
//! (Microsoft's emulator, scripts/install-azurite.sh; one per test binary, a container per
//! test) with real shared-key authentication: the scenarios S3 runs against Garage
//! (tests/object_servers/scenarios.rs), and the emulator switch.

mod object_servers;
mod support;

use object_servers::ObjectServer;
use object_servers::azurite::{Azurite, WRONG_KEY};
use object_servers::scenarios::{self, timestamp, upload};
use support::Fixture;

const CREDENTIALS: &str = "AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY";

#[test]
fn a_capture_is_uploaded_under_prefix_session_and_timestamp_byte_for_byte() {
    support::require_root();
    scenarios::round_trip(Azurite::shared(), "round-trip");
}

#[test]
fn capture_with_upload_lists_every_artifact_in_the_termination_summary() {
    support::require_root();
    scenarios::capture_with_upload(Azurite::shared(), "capture-upload");
}

#[test]
fn files_over_8_mib_go_in_blocks_and_arrive_intact() {
    support::require_root();
    scenarios::multipart(Azurite::shared(), "multipart");
}

#[test]
fn a_wrong_account_key_fails_fast_with_access_denied() {
    support::require_root();
    let azurite = Azurite::shared();
    scenarios::refused_credentials(
        azurite,
        "refused",
        |c| Azurite::account_env(c, &azurite.endpoint(), WRONG_KEY),
        CREDENTIALS,
    );
}

#[test]
fn a_missing_container_is_named() {
    support::require_root();
    scenarios::missing_bucket(Azurite::shared(), "container");
}

#[test]
fn an_unreachable_endpoint_fails_within_the_upload_timeout() {
    support::require_root();
    scenarios::unreachable(Azurite::shared(), "AZURE_ENDPOINT");
}

#[test]
fn a_server_dying_mid_upload_fails_clearly_and_a_retry_succeeds() {
    support::require_root();
    scenarios::killed_mid_upload(&Azurite::start(), "crash");
}

/// `AZURE_STORAGE_USE_EMULATOR=true` with `AZURITE_BLOB_STORAGE_URL`, and no account or
/// key: the emulator's default account and well-known key.
#[test]
fn the_emulator_switch_uploads_to_the_default_account() {
    support::require_root();
    let azurite = Azurite::shared();
    azurite.create_emulator_container("switch");
    let fixture = Fixture::start(&["steady"]);
    let (_out, dir) = support::capture_ok(fixture.pid(), &["--samples", "1"]);
    let output = upload(&dir, "az://switch/p", &["--session", "ops/x"], |c| {
        azurite.emulator_env(c)
    });
    support::assert_success(&output);
    let key_dir = format!("p/ops/x/{}", timestamp(&dir));
    let store = azurite.emulator_reader("switch");
    let names = scenarios::uploaded_names(&dir);
    let runtime = object_servers::runtime();
    for name in &names {
        use object_store::ObjectStoreExt;
        let key = object_store::path::Path::from(format!("{key_dir}/{name}"));
        let bytes = runtime
            .block_on(async { store.get(&key).await?.bytes().await })
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        assert!(
            bytes.as_ref() == std::fs::read(dir.join(name)).unwrap(),
            "{name} differs"
        );
    }
}
