//! Turning object_store's errors into ones that say what failed and what to do: refused
//! credentials, a missing bucket, an endpoint that does not answer, a deadline that passed.
//! object_store has already retried what retrying can help (connection errors, 5xx, 429);
//! what reaches here is final.

use std::time::Duration;

use object_store::client::{HttpError, HttpErrorKind};

use crate::error::{Unreachable, UploadError};
use crate::units;

use super::attempts::AttemptLog;
use super::destination::{Destination, StoreKind};
use super::plan::PlannedFile;
use procshot_api::error_chain;

/// What a failed request was doing, which tells what a 404 means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Creating the object: the PUT of a whole file, or starting a multipart upload. A 404
    /// there can only mean that the bucket (container) is missing, whatever the body says
    /// (fake-gcs-server, for one, answers a bare `Not Found`).
    Create,
    /// Anything after that: a part, completing or aborting an upload, the HEAD that checks
    /// it (a 404 there can be an upload or object removed meanwhile).
    Later,
}

/// The error for a failed operation on `file` at `step`, given what the requests met
/// (`log`).
pub fn failure(
    error: &object_store::Error,
    destination: &Destination,
    file: &PlannedFile,
    log: &AttemptLog,
    step: Step,
) -> UploadError {
    let text = error_chain(error);
    if destination.kind != StoreKind::Local {
        if let Some(kind) = transport_failure(error)
            && kind != HttpErrorKind::Decode
        {
            return unreachable(destination, log, &text);
        }
        let status = match error {
            object_store::Error::PermissionDenied { .. } => Some(403),
            object_store::Error::Unauthenticated { .. } => Some(401),
            _ => None,
        };
        if let Some(status) = status {
            return UploadError::AccessDenied {
                url: destination.url.clone(),
                status,
                key: file.key.to_string(),
                detail: server_says(&text).unwrap_or(text),
                credentials: destination.kind.credentials(),
            };
        }
        if matches!(error, object_store::Error::NotFound { .. })
            && (step == Step::Create || names_missing_bucket(&text))
        {
            return UploadError::BucketNotFound {
                url: destination.url.clone(),
                noun: destination.kind.bucket_noun(),
                bucket: destination.bucket.clone(),
                endpoint: endpoint(destination, log),
            };
        }
    }
    UploadError::Rejected {
        name: file.name.clone(),
        url: file.url.clone(),
        detail: server_says(&text).unwrap_or(text),
    }
}

/// The error for an upload cut short by its deadline: the endpoint was unreachable if the
/// last requests all failed without an answer, else it was too slow.
pub fn deadline_passed(
    destination: &Destination,
    timeout: Duration,
    done: usize,
    total: usize,
    log: &AttemptLog,
) -> UploadError {
    if log.failures_in_a_row > 0 {
        return unreachable(destination, log, "");
    }
    UploadError::TimedOut {
        url: destination.url.clone(),
        timeout: humantime::format_duration(timeout).to_string(),
        done,
        total,
    }
}

/// The error for requests that got no answer, since the upload started or since the
/// endpoint stopped answering; `fallback` describes the failure if no request did.
fn unreachable(destination: &Destination, log: &AttemptLog, fallback: &str) -> UploadError {
    let elapsed = log.failing_for().unwrap_or_default();
    UploadError::Unreachable(Box::new(Unreachable {
        url: destination.url.clone(),
        endpoint: endpoint(destination, log),
        tries: log.failures_in_a_row.max(1),
        answered: log.answered,
        elapsed: units::seconds(elapsed.as_secs_f64()),
        detail: log
            .last_failure
            .clone()
            .unwrap_or_else(|| fallback.to_string()),
        endpoint_setting: destination.kind.endpoint_setting(),
    }))
}

fn endpoint(destination: &Destination, log: &AttemptLog) -> String {
    log.endpoint
        .clone()
        .unwrap_or_else(|| destination.url.clone())
}

/// The kind of the transport error (no HTTP response) behind `error`, if that is what
/// it is.
fn transport_failure(error: &object_store::Error) -> Option<HttpErrorKind> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = next {
        if let Some(http) = e.downcast_ref::<HttpError>() {
            return Some(http.kind());
        }
        next = e.source();
    }
    None
}

/// An object_store error without its "Generic S3 error:" wrapping.
pub fn plain(error: &object_store::Error) -> String {
    match error {
        object_store::Error::Generic { source, .. } => error_chain(source.as_ref()),
        other => error_chain(other),
    }
}

/// `CODE: MESSAGE` from an S3-style XML error body in `text`, with a hint for the codes
/// that have a usual cause.
fn server_says(text: &str) -> Option<String> {
    let element = |name: &str| {
        let start = text.find(&format!("<{name}>"))? + name.len() + 2;
        let end = start + text[start..].find(&format!("</{name}>"))?;
        Some(unescape(text[start..end].trim()))
    };
    let code = element("Code")?;
    let mut said = match element("Message") {
        Some(message) if !message.is_empty() => format!("{code}: {message}"),
        _ => code.clone(),
    };
    if code == "AuthorizationHeaderMalformed" {
        said.push_str(" (check AWS_REGION: it must be the server's region)");
    }
    Some(said)
}

/// XML text with its five predefined entities replaced.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Whether a 404 says the bucket (S3, GCS) or container (Azure) is missing rather than
/// an object.
fn names_missing_bucket(text: &str) -> bool {
    ["NoSuchBucket", "ContainerNotFound", "bucket does not exist"]
        .iter()
        .any(|marker| text.contains(marker))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Instant;

    use super::*;

    fn file(destination: &Destination) -> PlannedFile {
        PlannedFile {
            name: "fds.json".into(),
            path: PathBuf::from("/c/fds.json"),
            bytes: 1,
            sha256: "00".into(),
            key: object_store::path::Path::from("p/ns/s/t/fds.json"),
            url: destination.object_url("ns/s/t/fds.json"),
        }
    }

    fn s3() -> Destination {
        "s3://bucket/p".parse().unwrap()
    }

    fn answered() -> AttemptLog {
        AttemptLog {
            endpoint: Some("http://127.0.0.1:3900".into()),
            answered: 1,
            ..AttemptLog::default()
        }
    }

    #[test]
    fn refused_credentials_say_access_denied_and_where_credentials_come_from() {
        let destination = s3();
        let error = object_store::Error::PermissionDenied {
            path: "p/ns/s/t/fds.json".into(),
            source: "Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\"?>\
                     <Error><Code>SignatureDoesNotMatch</Code><Message>Forbidden: Invalid \
                     signature</Message></Error>"
                .into(),
        };
        let message = failure(
            &error,
            &destination,
            &file(&destination),
            &answered(),
            Step::Create,
        )
        .to_string();
        assert_eq!(
            message,
            "upload to s3://bucket/p failed: access denied (403) for key p/ns/s/t/fds.json: \
             SignatureDoesNotMatch: Forbidden: Invalid signature: check \
             AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or AWS_WEB_IDENTITY_TOKEN_FILE with \
             AWS_ROLE_ARN), and that they may write to this bucket and prefix"
        );
    }

    #[test]
    fn a_missing_bucket_is_named_with_the_endpoint() {
        let destination = s3();
        let error = object_store::Error::NotFound {
            path: "p".into(),
            source: "404 Not Found: <Error><Code>NoSuchBucket</Code></Error>".into(),
        };
        let log = answered();
        let message = failure(&error, &destination, &file(&destination), &log, Step::Later);
        assert!(
            message
                .to_string()
                .contains("bucket bucket does not exist at http://127.0.0.1:3900"),
            "{message}"
        );
        // A 404 answering the creation of an object names the bucket whatever its body.
        let azure: Destination = "az://evidence/p".parse().unwrap();
        let bare = object_store::Error::NotFound {
            path: "p".into(),
            source: "404 Not Found".into(),
        };
        let message = failure(&bare, &azure, &file(&azure), &log, Step::Create).to_string();
        assert!(
            message.contains(
                "upload to az://evidence/p failed: container evidence does not exist at \
                 http://127.0.0.1:3900: create it, or fix the container name in the URL"
            ),
            "{message}"
        );
        let other = object_store::Error::NotFound {
            path: "p".into(),
            source: "404 Not Found: <Error><Code>NoSuchKey</Code></Error>".into(),
        };
        let message = failure(
            &other,
            &destination,
            &file(&destination),
            &answered(),
            Step::Later,
        )
        .to_string();
        assert!(
            message
                .contains("upload of fds.json to s3://bucket/p/ns/s/t/fds.json failed: NoSuchKey"),
            "{message}"
        );
    }

    #[test]
    fn connection_errors_say_the_endpoint_could_not_be_reached() {
        let destination = s3();
        let error = object_store::Error::Generic {
            store: "S3",
            source: Box::new(HttpError::new(
                HttpErrorKind::Connect,
                std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused"),
            )),
        };
        let log = AttemptLog {
            endpoint: Some("http://127.0.0.1:9".into()),
            answered: 0,
            failures_in_a_row: 7,
            failing_since: Instant::now().checked_sub(Duration::from_secs(12)),
            last_failure: Some("client error (Connect): Connection refused".into()),
        };
        let message = failure(
            &error,
            &destination,
            &file(&destination),
            &log,
            Step::Create,
        )
        .to_string();
        assert!(
            message.starts_with(
                "upload to s3://bucket/p failed: could not reach http://127.0.0.1:9 after 7 \
                 tries in 12 s: client error (Connect): Connection refused: check the endpoint \
                 (AWS_ENDPOINT_URL, AWS_REGION)"
            ),
            "{message}"
        );
    }

    #[test]
    fn a_deadline_during_failures_is_unreachable_else_too_slow() {
        let destination = s3();
        let failing = AttemptLog {
            failures_in_a_row: 3,
            failing_since: Instant::now().checked_sub(Duration::from_secs(5)),
            last_failure: Some("Connection refused".into()),
            ..answered()
        };
        let timeout = Duration::from_secs(5);
        let message = deadline_passed(&destination, timeout, 2, 7, &failing).to_string();
        assert!(
            message.contains(
                "could not reach http://127.0.0.1:3900 after 3 tries in 5 s (it stopped \
                 answering during the upload, after answering 1 request(s)): Connection refused"
            ),
            "{message}"
        );
        let message = deadline_passed(&destination, timeout, 2, 7, &answered()).to_string();
        assert!(
            message.contains("did not finish within 5s (--upload-timeout): 2 of 7 files uploaded"),
            "{message}"
        );
    }

    #[test]
    fn server_error_codes_are_extracted() {
        assert_eq!(
            server_says(
                "x <Error><Code>NoSuchBucket</Code><Message>Bucket not found: b</Message></Error>"
            ),
            Some("NoSuchBucket: Bucket not found: b".into())
        );
        assert_eq!(
            server_says("<Code>AccessDenied</Code>"),
            Some("AccessDenied".into())
        );
        assert_eq!(server_says("connection refused"), None);
        assert_eq!(
            server_says(
                "<Code>AuthorizationHeaderMalformed</Code><Message>unexpected scope: \
                 &apos;us-east-1&apos;, expected: &apos;garage&apos;</Message>"
            ),
            Some(
                "AuthorizationHeaderMalformed: unexpected scope: 'us-east-1', expected: \
                 'garage' (check AWS_REGION: it must be the server's region)"
                    .into()
            )
        );
    }
}
