//! Reading an uploaded capture from its object store with the user's own credentials,
//! from the environment as the AWS, Google and Azure tools take them (`AWS_*`,
//! `GOOGLE_APPLICATION_CREDENTIALS`, `AZURE_*`); never the operator's Secret. Where the
//! session names an S3-compatible endpoint and region, they are used unless the
//! environment sets its own (`AWS_ENDPOINT_URL`, `AWS_REGION`).

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, ObjectStoreScheme};
use procshot_operator::api::S3Output;
use tokio::io::AsyncRead;
use url::Url;

use super::DownloadError;

/// One capture directory in a bucket.
pub struct StoreDir {
    store: Arc<dyn ObjectStore>,
    /// The directory's key (`prefix/ns/session/timestamp`).
    key: ObjectPath,
    /// Its URL, for messages.
    pub url: String,
}

impl StoreDir {
    /// The directory `url` (`s3://bucket/…/TIMESTAMP`), reached with the environment's
    /// credentials and the session's S3 settings.
    pub fn open(url: &str, s3: Option<&S3Output>) -> Result<Self, DownloadError> {
        let config = |detail: String| DownloadError::Store {
            url: url.to_string(),
            detail,
        };
        let parsed = Url::parse(url).map_err(|e| config(format!("not a URL: {e}")))?;
        let (scheme, key) = ObjectStoreScheme::parse(&parsed).map_err(|e| config(e.to_string()))?;
        let built: object_store::Result<Arc<dyn ObjectStore>> = match scheme {
            ObjectStoreScheme::AmazonS3 => {
                let mut builder = AmazonS3Builder::from_env().with_url(url);
                if let Some(endpoint) = s3.and_then(|s| s.endpoint.as_deref())
                    && !env_set("AWS_ENDPOINT_URL")
                    && !env_set("AWS_ENDPOINT")
                {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"));
                }
                if s3.and_then(|s| s.endpoint.as_ref()).is_some()
                    || env_set("AWS_ENDPOINT_URL")
                    || env_set("AWS_ENDPOINT")
                {
                    // S3-compatible servers (MinIO, Garage) take path-style requests.
                    builder = builder.with_virtual_hosted_style_request(false);
                }
                if let Some(region) = s3.and_then(|s| s.region.as_deref())
                    && !env_set("AWS_REGION")
                    && !env_set("AWS_DEFAULT_REGION")
                {
                    builder = builder.with_region(region);
                }
                builder.build().map(|s| Arc::new(s) as _)
            }
            ObjectStoreScheme::GoogleCloudStorage => GoogleCloudStorageBuilder::from_env()
                .with_url(url)
                .build()
                .map(|s| Arc::new(s) as _),
            ObjectStoreScheme::MicrosoftAzure => MicrosoftAzureBuilder::from_env()
                .with_url(url)
                .build()
                .map(|s| Arc::new(s) as _),
            ObjectStoreScheme::Local => {
                return Err(config(
                    "the files are on a PersistentVolumeClaim in the operator's namespace: \
                     read them from a pod that mounts the claim"
                        .into(),
                ));
            }
            _ => {
                return Err(config(format!(
                    "procshot does not download from {}",
                    parsed.scheme()
                )));
            }
        };
        let store = built.map_err(|e| {
            config(format!(
                "{} ({})",
                procshot_api::error_chain(&e),
                credentials(url)
            ))
        })?;
        Ok(Self {
            store,
            key,
            url: url.trim_end_matches('/').to_string(),
        })
    }

    /// The URL of `name` in the directory.
    pub fn url_of(&self, name: &str) -> String {
        format!("{}/{name}", self.url)
    }

    fn key_of(&self, name: &str) -> ObjectPath {
        self.key.clone().join(name)
    }

    /// The whole of a small object (the manifest), at most `max` bytes.
    pub async fn read(&self, name: &str, max: usize) -> Result<Vec<u8>, DownloadError> {
        let (got, url) = self.get(name).await?;
        if got.meta.size > max as u64 {
            return Err(DownloadError::Store {
                url,
                detail: format!(
                    "it has {} bytes, more than a manifest ever has",
                    got.meta.size
                ),
            });
        }
        let bytes = got.bytes().await.map_err(|e| failure(&url, &e))?;
        Ok(bytes.to_vec())
    }

    /// A reader of `name`'s bytes.
    pub async fn open_file(
        &self,
        name: &str,
    ) -> Result<Box<dyn AsyncRead + Unpin + Send>, DownloadError> {
        let (got, _) = self.get(name).await?;
        let stream = got.into_stream().map_err(std::io::Error::other);
        Ok(Box::new(tokio_util::io::StreamReader::new(stream)))
    }

    async fn get(&self, name: &str) -> Result<(object_store::GetResult, String), DownloadError> {
        let url = self.url_of(name);
        match self.store.get(&self.key_of(name)).await {
            Ok(got) => Ok((got, url)),
            Err(e) => Err(failure(&url, &e)),
        }
    }
}

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// A failed read of `url`, saying what to check.
fn failure(url: &str, error: &object_store::Error) -> DownloadError {
    let hint = match error {
        object_store::Error::NotFound { .. } => {
            "it is not there: the bucket's lifecycle rules may have removed it, or the session's \
             files went to another endpoint (set AWS_ENDPOINT_URL)"
                .to_string()
        }
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => {
            format!("your credentials may not read it: {}", credentials(url))
        }
        _ => "check the endpoint and your network".to_string(),
    };
    DownloadError::Store {
        url: url.to_string(),
        detail: format!("{}; {hint}", procshot_api::error_chain(error)),
    }
}

/// Where the credentials for `url` come from, for messages.
fn credentials(url: &str) -> &'static str {
    match url.split_once("://").map(|(scheme, _)| scheme) {
        Some("s3") => {
            "credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or \
             AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN), the endpoint from AWS_ENDPOINT_URL"
        }
        Some("gs") => "credentials come from GOOGLE_APPLICATION_CREDENTIALS",
        _ => "credentials come from AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY",
    }
}
