//! The object store behind a destination URL, configured from the environment only:
//! credentials never come from the command line, where the process list and logs would
//! show them.

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, Checksum};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::{BackoffConfig, RetryConfig};

use crate::error::UploadError;

use super::attempts::{Attempts, RecordingConnector};
use super::classify;
use super::destination::{Destination, StoreKind};

/// Requests are retried (connection errors, 5xx, 429) with exponential backoff until the
/// upload's deadline: the count only guards against a runaway loop. object_store's jittered
/// backoff grows slowly, so a count of 10 would give up on an endpoint after 2 s or so.
const MAX_RETRIES: usize = 1000;

/// object_store does not retry a request longer than this (its credentials and payload
/// are signed once).
const MAX_RETRY_TIME: Duration = Duration::from_secs(180);

/// A configured store and the record of its requests.
#[derive(Debug)]
pub struct Store {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// Every HTTP request it makes (nothing for `file://`).
    pub attempts: Attempts,
}

/// Builds the store for `destination` from the environment:
///
/// * S3: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
///   `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT`; requests are then path-style, as S3-compatible
///   servers such as Garage and MinIO need), `AWS_ALLOW_HTTP`, `AWS_WEB_IDENTITY_TOKEN_FILE`
///   with `AWS_ROLE_ARN`, and the other `AWS_*` variables object_store knows;
/// * GCS: `GOOGLE_APPLICATION_CREDENTIALS` or `GOOGLE_SERVICE_ACCOUNT` (a mounted key
///   file), `GOOGLE_SERVICE_ACCOUNT_KEY` (the key's JSON itself), else the metadata server
///   (GKE workload identity); `GOOGLE_BASE_URL` and `GOOGLE_ALLOW_HTTP` for an emulator;
/// * Azure: `AZURE_*` (account, key, client secret or federated token file; `AZURE_ENDPOINT`
///   and `AZURE_ALLOW_HTTP`, or `AZURE_STORAGE_USE_EMULATOR` with
///   `AZURITE_BLOB_STORAGE_URL`, for an emulator).
///
/// `timeout` bounds how long one request is retried.
pub fn open(destination: &Destination, timeout: Duration) -> Result<Store, UploadError> {
    let attempts = Attempts::default();
    let retry = retry_config(timeout);
    let connector = RecordingConnector::new(attempts.clone());
    let url = destination.parsed.as_str();
    let built: object_store::Result<Arc<dyn ObjectStore>> = match destination.kind {
        StoreKind::S3 => {
            let mut builder = AmazonS3Builder::from_env()
                .with_url(url)
                .with_retry(retry)
                .with_http_connector(connector)
                // Garage (checked with 2.5.0) verifies x-amz-checksum-sha256 and returns it;
                // object_store reuses the payload hash it signs, so this costs nothing.
                .with_checksum_algorithm(Checksum::SHA256);
            if custom_s3_endpoint() {
                builder = builder.with_virtual_hosted_style_request(false);
            }
            builder.build().map(|s| Arc::new(s) as _)
        }
        StoreKind::Gcs => GoogleCloudStorageBuilder::from_env()
            .with_url(url)
            .with_retry(retry)
            .with_http_connector(connector)
            .build()
            .map(|s| Arc::new(s) as _),
        StoreKind::Azure => MicrosoftAzureBuilder::from_env()
            .with_url(url)
            .with_retry(retry)
            .with_http_connector(connector)
            .build()
            .map(|s| Arc::new(s) as _),
        StoreKind::Local => Ok(Arc::new(LocalFileSystem::new())),
    };
    let store = built.map_err(|e| UploadError::Config {
        url: destination.url.clone(),
        detail: format!(
            "{} (credentials come from the environment: {})",
            classify::plain(&e),
            destination.kind.credentials()
        ),
    })?;
    Ok(Store { store, attempts })
}

/// Whether an S3-compatible endpoint is configured (`AWS_ENDPOINT_URL` or `AWS_ENDPOINT`).
fn custom_s3_endpoint() -> bool {
    ["AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
}

/// Exponential backoff from 100 ms, doubling up to 4 s between tries, for `timeout` (at
/// most [`MAX_RETRY_TIME`]).
fn retry_config(timeout: Duration) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(4),
            base: 2.0,
        },
        max_retries: MAX_RETRIES,
        retry_timeout: timeout.min(MAX_RETRY_TIME),
    }
}
