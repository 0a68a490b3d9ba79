//! `procshot upload` and `capture --upload` to Google Cloud Storage, against
//! fake-gcs-server (scripts/install-fake-gcs-server.sh; one per test binary, a bucket per
//! test), with a service account key file in `GOOGLE_APPLICATION_CREDENTIALS` and the
//! emulator in `GOOGLE_BASE_URL`.
//!
//! What can be tested here is limited by the emulator, not by procshot: object_store 0.14
//! writes to GCS through the XML API only (`PUT /BUCKET/OBJECT`; `POST ?uploads`, `PUT
//! ?partNumber&uploadId` and `POST ?uploadId` for multipart uploads), and fake-gcs-server
//! 1.54.0 answers every one of them `400 invalid uploadType` (its upstream issues #331 and
//! #852). So no upload into an existing bucket can succeed against it, and it checks no
//! credential at all. These tests cover what it does answer: procshot's requests reach
//! it at the keys the layout says, signed with the key file; a missing bucket; a key file
//! that is missing or not a key; an endpoint that does not answer; and the termination
//! summary of a capture whose upload the server refused. The first test fails once the
//! emulator accepts XML uploads, to say that the S3 scenarios can then run here too.

mod object_servers;
mod support;

use std::time::{Duration, Instant};

use object_servers::ObjectServer;
use object_servers::fake_gcs::FakeGcs;
use object_servers::scenarios::{self, assert_upload_failed, snapshot, timestamp, upload};
use serde_json::Value;
use support::Fixture;

#[test]
fn uploads_reach_the_emulator_at_the_layouts_keys_and_its_refusal_is_reported() {
    support::require_root();
    let gcs = FakeGcs::shared();
    gcs.create_bucket("refused-xml");
    let fixture = Fixture::start(&["steady"]);
    let (_out, dir) = support::capture_ok(fixture.pid(), &["--samples", "1"]);
    let before = snapshot(&dir);
    let started = Instant::now();
    let output = upload(
        &dir,
        "gs://refused-xml/team",
        &["--session", "shop/api"],
        |c| gcs.connect(c),
    );
    let first = &scenarios::uploaded_names(&dir)[0];
    let key = format!("team/shop/api/{}/{first}", timestamp(&dir));
    let stderr = assert_upload_failed(
        &output,
        &format!("upload of {first} to gs://refused-xml/{key} failed: "),
    );
    assert!(
        stderr.contains("400 Bad Request") && stderr.contains("invalid uploadType"),
        "fake-gcs-server now accepts object_store's XML uploads: run scenarios::round_trip, \
         multipart, killed_mid_upload and capture_with_upload here, as for S3 and Azure: \
         {stderr}"
    );
    // The server's own log shows the request, at the key the layout gives.
    let requests = gcs.requests(&format!("PUT /refused-xml/{key} "));
    assert_eq!(
        requests.len(),
        1,
        "{requests:?} among {:?}",
        gcs.requests("PUT")
    );
    assert!(requests[0].ends_with("\" 400 139"), "{requests:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a 400 is not retried: {:?}",
        started.elapsed()
    );
    assert_eq!(snapshot(&dir), before, "the capture directory was modified");
    assert!(gcs.download("refused-xml", "").is_empty());

    // The key's JSON in GOOGLE_SERVICE_ACCOUNT_KEY (how a Secret's envFrom passes it)
    // reaches the server the same way.
    let key_json = std::fs::read_to_string(gcs.key_file()).unwrap();
    let output = upload(
        &dir,
        "gs://refused-xml/env",
        &["--session", "shop/api"],
        |c| {
            gcs.connect(c);
            c.env_remove("GOOGLE_APPLICATION_CREDENTIALS")
                .env("GOOGLE_SERVICE_ACCOUNT_KEY", key_json);
        },
    );
    assert_upload_failed(&output, "invalid uploadType");
    let key = format!("env/shop/api/{}/{first}", timestamp(&dir));
    assert_eq!(gcs.requests(&format!("PUT /refused-xml/{key} ")).len(), 1);
}

#[test]
fn a_missing_bucket_is_named() {
    support::require_root();
    scenarios::missing_bucket(FakeGcs::shared(), "bucket");
}

#[test]
fn an_unreachable_endpoint_fails_within_the_upload_timeout() {
    support::require_root();
    scenarios::unreachable(FakeGcs::shared(), "GOOGLE_BASE_URL");
}

#[test]
fn a_credentials_file_that_is_missing_or_not_a_key_fails_before_any_request() {
    support::require_root();
    let gcs = FakeGcs::shared();
    let fixture = Fixture::start(&["steady"]);
    let (out, dir) = support::capture_ok(fixture.pid(), &["--samples", "1"]);
    let missing = out.path().join("no-such-key.json");
    let not_a_key = out.path().join("not-a-key.json");
    std::fs::write(
        &not_a_key,
        r#"{"type": "service_account", "client_email": "x"}"#,
    )
    .unwrap();
    for file in [&missing, &not_a_key] {
        let started = Instant::now();
        let output = upload(&dir, "gs://never-asked/p", &[], |c| {
            FakeGcs::credentials_env(c, &gcs.endpoint(), file)
        });
        let stderr = assert_upload_failed(&output, "cannot upload to gs://never-asked/p: ");
        assert!(
            stderr
                .contains("credentials come from the environment: GOOGLE_APPLICATION_CREDENTIALS"),
            "{stderr}"
        );
        if file == &missing {
            assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
    assert!(
        gcs.requests("/never-asked").is_empty(),
        "a request was sent"
    );
}

#[test]
fn capture_with_upload_records_the_servers_refusal_in_the_termination_summary() {
    support::require_root();
    let gcs = FakeGcs::shared();
    gcs.create_bucket("capture-upload");
    let fixture = Fixture::start(&["steady"]);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("api-capture");
    let summary_file = out.path().join("termination-log");
    let mut command = support::procshot();
    command
        .args(["capture", "--pid", &fixture.pid().to_string(), "--out"])
        .arg(&dir)
        .args(["--samples", "1", "--upload", "gs://capture-upload/p"])
        .arg("--termination-summary")
        .arg(&summary_file);
    gcs.connect(&mut command);
    let output = command.output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(10),
        "{}",
        scenarios::stderr(&output)
    );
    let summary: Value = serde_json::from_slice(&std::fs::read(&summary_file).unwrap()).unwrap();
    assert_eq!(summary["outcome"], "Succeeded", "{summary}");
    let error = summary["uploadError"].as_str().unwrap_or_default();
    assert!(
        error.contains("gs://capture-upload/p/local/api-capture/")
            && error.contains("invalid uploadType"),
        "{summary}"
    );
    assert!(dir.join("manifest.json").is_file(), "the capture stays");
}
