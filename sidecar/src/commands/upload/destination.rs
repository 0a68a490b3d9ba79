//! Where a capture goes: the `--to` URL (which kind of store, which bucket, which prefix)
//! and the `--session NAMESPACE/NAME` it is filed under.

use std::fmt;
use std::str::FromStr;

use object_store::ObjectStoreScheme;
use object_store::path::Path as ObjectPath;
use url::Url;

/// The kinds of store procshot uploads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// AWS S3 and S3-compatible servers (`s3://bucket/prefix`).
    S3,
    /// Google Cloud Storage (`gs://bucket/prefix`).
    Gcs,
    /// Azure Blob Storage (`az://container/prefix` and the other forms object_store knows).
    Azure,
    /// A local directory (`file:///path`).
    Local,
}

impl StoreKind {
    /// Where this kind of store takes its credentials from, for messages.
    pub fn credentials(self) -> &'static str {
        match self {
            Self::S3 => {
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or AWS_WEB_IDENTITY_TOKEN_FILE with \
                 AWS_ROLE_ARN)"
            }
            Self::Gcs => {
                "GOOGLE_APPLICATION_CREDENTIALS (or GOOGLE_SERVICE_ACCOUNT, a key file; \
                 GOOGLE_SERVICE_ACCOUNT_KEY, a key's JSON)"
            }
            Self::Azure => {
                "AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY (or AZURE_CLIENT_ID, \
                 AZURE_TENANT_ID and AZURE_CLIENT_SECRET or AZURE_FEDERATED_TOKEN_FILE)"
            }
            Self::Local => "the permissions of the destination directory",
        }
    }

    /// How the endpoint of this kind of store is configured, for messages.
    pub fn endpoint_setting(self) -> &'static str {
        match self {
            Self::S3 => "AWS_ENDPOINT_URL, AWS_REGION",
            Self::Gcs => "GOOGLE_BASE_URL",
            Self::Azure => {
                "AZURE_STORAGE_ACCOUNT_NAME, AZURE_ENDPOINT, or AZURITE_BLOB_STORAGE_URL with \
                 AZURE_STORAGE_USE_EMULATOR"
            }
            Self::Local => "the file:// path",
        }
    }

    /// What this kind of store calls the top-level namespace a URL names, for messages.
    pub fn bucket_noun(self) -> &'static str {
        match self {
            Self::Azure => "container",
            Self::S3 | Self::Gcs => "bucket",
            Self::Local => "directory",
        }
    }
}

/// A parsed `--to` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The URL as given, normalized, without a trailing `/`.
    pub url: String,
    /// The parsed URL, for the store builders.
    pub parsed: Url,
    /// Which kind of store.
    pub kind: StoreKind,
    /// The bucket or container (empty for `file://`).
    pub bucket: String,
    /// The key prefix inside the bucket (for `file://`, the directory).
    pub prefix: ObjectPath,
}

/// A `--to` URL procshot cannot upload to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot upload to {given:?}: {detail} (give s3://BUCKET/PREFIX, gs://BUCKET/PREFIX, \
     az://CONTAINER/PREFIX or file:///DIRECTORY; credentials come from the environment)"
)]
pub struct DestinationError {
    given: String,
    detail: String,
}

impl FromStr for Destination {
    type Err = DestinationError;

    fn from_str(given: &str) -> Result<Self, Self::Err> {
        let error = |detail: String| DestinationError {
            given: given.to_string(),
            detail,
        };
        let parsed = Url::parse(given).map_err(|e| error(format!("not a URL ({e})")))?;
        // In abfs[s]://FILESYSTEM@ACCOUNT…, the "user" names the file system.
        let names_filesystem = matches!(parsed.scheme(), "abfs" | "abfss");
        if parsed.password().is_some() || (!parsed.username().is_empty() && !names_filesystem) {
            return Err(error(
                "the URL carries credentials: pass them in the environment instead (they would \
                 show in the process list and in logs)"
                    .into(),
            ));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(error("the URL has a query or fragment".into()));
        }
        let (scheme, prefix) =
            ObjectStoreScheme::parse(&parsed).map_err(|e| error(e.to_string()))?;
        let kind = match scheme {
            ObjectStoreScheme::AmazonS3 => StoreKind::S3,
            ObjectStoreScheme::GoogleCloudStorage => StoreKind::Gcs,
            ObjectStoreScheme::MicrosoftAzure => StoreKind::Azure,
            ObjectStoreScheme::Local => StoreKind::Local,
            _ => return Err(error(format!("unsupported scheme {}", parsed.scheme()))),
        };
        let bucket = match kind {
            StoreKind::Local => String::new(),
            StoreKind::S3 | StoreKind::Gcs | StoreKind::Azure => bucket_of(&parsed),
        };
        if kind != StoreKind::Local && bucket.is_empty() {
            return Err(error("the URL names no bucket".into()));
        }
        Ok(Self {
            url: parsed.as_str().trim_end_matches('/').to_string(),
            parsed,
            kind,
            bucket,
            prefix,
        })
    }
}

/// The bucket or container a store URL names: the host for `s3://`, `gs://` and `az://`,
/// the first path segment for path-style `https://` forms, the part before `@` for
/// `abfs://container@account…`.
fn bucket_of(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    if !url.username().is_empty() {
        return url.username().to_string();
    }
    match url.scheme() {
        "https" => {
            let first = url
                .path_segments()
                .and_then(|mut s| s.next())
                .unwrap_or_default();
            // Virtual-hosted S3 (`BUCKET.s3.REGION.amazonaws.com`) names it in the host.
            match host.split_once(".s3.") {
                Some((bucket, _)) if host.ends_with("amazonaws.com") => bucket.to_string(),
                _ => first.to_string(),
            }
        }
        _ => host.to_string(),
    }
}

impl Destination {
    /// The URL of an object given by its path below the prefix.
    pub fn object_url(&self, relative: &str) -> String {
        format!("{}/{relative}", self.url)
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

/// `NAMESPACE/NAME`: whose capture this is; the upload goes under
/// `PREFIX/NAMESPACE/NAME/TIMESTAMP/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The namespace (`local` for captures outside Kubernetes).
    pub namespace: String,
    /// The session's name.
    pub name: String,
}

/// A `--session` that cannot name a directory of the upload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "session {given:?} is not NAMESPACE/NAME: {detail} (both parts made of letters, digits, \
     '.', '-' and '_', for example shop/api-fd-leak)"
)]
pub struct SessionError {
    given: String,
    detail: String,
}

impl FromStr for Session {
    type Err = SessionError;

    fn from_str(given: &str) -> Result<Self, Self::Err> {
        let error = |detail: &str| SessionError {
            given: given.to_string(),
            detail: detail.to_string(),
        };
        let (namespace, name) = given.split_once('/').ok_or_else(|| error("no '/'"))?;
        for part in [namespace, name] {
            if part.is_empty() {
                return Err(error("a part is empty"));
            }
            if part == "." || part == ".." {
                return Err(error("a part is '.' or '..'"));
            }
            if !part.chars().all(is_name_char) {
                return Err(error("a part has another character"));
            }
        }
        Ok(Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }
}

impl Session {
    /// The default session of a capture directory: `local/<its name>`, with characters
    /// other than letters, digits, `.`, `-` and `_` replaced by `-`.
    pub fn local(dir_name: &str) -> Self {
        let name: String = dir_name
            .chars()
            .map(|c| if is_name_char(c) { c } else { '-' })
            .collect();
        Self {
            namespace: "local".to_string(),
            name: match name.as_str() {
                "" | "." | ".." => "capture".to_string(),
                _ => name,
            },
        }
    }
}

impl fmt::Display for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn destination(url: &str) -> Destination {
        url.parse().unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn store_urls_give_kind_bucket_and_prefix() {
        let s3 = destination("s3://captures/prod/eu/");
        assert_eq!(s3.kind, StoreKind::S3);
        assert_eq!(s3.bucket, "captures");
        assert_eq!(s3.prefix.as_ref(), "prod/eu");
        assert_eq!(s3.url, "s3://captures/prod/eu");
        assert_eq!(
            s3.object_url("shop/api/20260101T000000Z/fds.json"),
            "s3://captures/prod/eu/shop/api/20260101T000000Z/fds.json"
        );

        let bare = destination("s3://captures");
        assert_eq!(bare.prefix.as_ref(), "");
        assert_eq!(bare.object_url("a/b"), "s3://captures/a/b");

        let gs = destination("gs://bucket/p");
        assert_eq!((gs.kind, gs.bucket.as_str()), (StoreKind::Gcs, "bucket"));
        let az = destination("az://container/p/q");
        assert_eq!(
            (az.kind, az.bucket.as_str()),
            (StoreKind::Azure, "container")
        );
        assert_eq!(az.prefix.as_ref(), "p/q");
        let abfs = destination("abfss://fs@account.dfs.core.windows.net/p");
        assert_eq!((abfs.kind, abfs.bucket.as_str()), (StoreKind::Azure, "fs"));
        let blob = destination("https://account.blob.core.windows.net/container/p");
        assert_eq!(
            (blob.kind, blob.bucket.as_str()),
            (StoreKind::Azure, "container")
        );
        assert_eq!(blob.prefix.as_ref(), "p");
        let hosted = destination("https://bucket.s3.eu-west-1.amazonaws.com/p");
        assert_eq!(
            (hosted.kind, hosted.bucket.as_str()),
            (StoreKind::S3, "bucket")
        );

        let local = destination("file:///var/tmp/captures/");
        assert_eq!(local.kind, StoreKind::Local);
        assert_eq!(local.prefix.as_ref(), "var/tmp/captures");
        assert_eq!(local.object_url("x"), "file:///var/tmp/captures/x");
    }

    #[test]
    fn unusable_urls_are_refused_with_the_reason() {
        for (url, reason) in [
            ("captures/prod", "not a URL"),
            ("memory:///x", "unsupported scheme memory"),
            ("https://example.com/bucket", "unsupported scheme https"),
            ("ftp://host/x", "Unable to recognise URL"),
            ("s3://key:secret@bucket/p", "carries credentials"),
            ("s3://bucket/p?x=1", "query"),
        ] {
            let e = url.parse::<Destination>().unwrap_err().to_string();
            assert!(e.contains(reason), "{url}: {e}");
        }
    }

    #[test]
    fn sessions_are_namespace_and_name() {
        let session: Session = "shop/api-fd-leak".parse().unwrap();
        assert_eq!(session.namespace, "shop");
        assert_eq!(session.name, "api-fd-leak");
        assert_eq!(session.to_string(), "shop/api-fd-leak");
        for bad in ["shop", "/x", "shop/", "a/b/c", "a/..", "a b/c"] {
            assert!(bad.parse::<Session>().is_err(), "{bad}");
        }
        assert_eq!(
            Session::local("procshot-42-20260101T101010").to_string(),
            "local/procshot-42-20260101T101010"
        );
        assert_eq!(Session::local("my capture").to_string(), "local/my-capture");
        assert_eq!(Session::local("..").to_string(), "local/capture");
    }
}
