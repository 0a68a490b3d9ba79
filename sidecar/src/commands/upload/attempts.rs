//! A record of every HTTP request the store makes, retries included: which endpoint, how
//! many failed in a row and with what. object_store retries on its own; this is what lets
//! an error say "could not reach ENDPOINT after N tries in 12 s" even when the deadline
//! cut the retries short.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use object_store::ClientOptions;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};

/// What the requests so far have met.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptLog {
    /// Scheme and authority of the last request (`http://127.0.0.1:3900`).
    pub endpoint: Option<String>,
    /// Requests that got an HTTP response, of any status.
    pub answered: u64,
    /// Requests that failed without a response since the last one that got one.
    pub failures_in_a_row: u64,
    /// When the first of those failures happened.
    pub failing_since: Option<Instant>,
    /// The last of those failures.
    pub last_failure: Option<String>,
}

impl AttemptLog {
    /// How long requests have been failing in a row, if they are.
    pub fn failing_for(&self) -> Option<Duration> {
        self.failing_since.map(|since| since.elapsed())
    }
}

/// A shared [`AttemptLog`], updated by [`RecordingConnector`]'s clients.
#[derive(Debug, Clone, Default)]
pub struct Attempts(Arc<Mutex<AttemptLog>>);

impl Attempts {
    /// A copy of the log as it is now.
    pub fn snapshot(&self) -> AttemptLog {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AttemptLog> {
        // A panic while holding the lock cannot leave the counters inconsistent.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record(&self, endpoint: Option<String>, outcome: Result<(), &HttpError>) {
        let mut log = self.lock();
        if endpoint.is_some() {
            log.endpoint = endpoint;
        }
        match outcome {
            Ok(()) => {
                log.answered += 1;
                log.failures_in_a_row = 0;
                log.failing_since = None;
                log.last_failure = None;
            }
            Err(error) => {
                log.failures_in_a_row += 1;
                log.failing_since.get_or_insert_with(Instant::now);
                log.last_failure = Some(procshot_api::error_chain(error));
            }
        }
    }
}

/// Scheme and authority a request goes to (`http://127.0.0.1:3900`).
fn endpoint_of(request: &HttpRequest) -> Option<String> {
    let uri = request.uri();
    Some(format!("{}://{}", uri.scheme_str()?, uri.authority()?))
}

/// The reqwest connector object_store uses by default, with every request recorded in
/// [`Attempts`].
#[derive(Debug, Default)]
pub struct RecordingConnector {
    attempts: Attempts,
}

impl RecordingConnector {
    /// A connector recording into `attempts`.
    pub fn new(attempts: Attempts) -> Self {
        Self { attempts }
    }
}

impl HttpConnector for RecordingConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(RecordingService {
            inner,
            attempts: self.attempts.clone(),
        }))
    }
}

#[derive(Debug)]
struct RecordingService {
    inner: HttpClient,
    attempts: Attempts,
}

#[async_trait::async_trait]
impl HttpService for RecordingService {
    async fn call(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let endpoint = endpoint_of(&request);
        let result = self.inner.execute(request).await;
        self.attempts.record(endpoint, result.as_ref().map(|_| ()));
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::client::{HttpErrorKind, HttpRequestBody};

    fn endpoint(uri: &str) -> Option<String> {
        let mut request = HttpRequest::new(HttpRequestBody::empty());
        *request.uri_mut() = uri.parse().unwrap();
        endpoint_of(&request)
    }

    #[test]
    fn failures_in_a_row_reset_on_an_answer() {
        let attempts = Attempts::default();
        let refused = HttpError::new(
            HttpErrorKind::Connect,
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused"),
        );
        attempts.record(endpoint("http://127.0.0.1:9/b/k"), Err(&refused));
        attempts.record(endpoint("http://127.0.0.1:9/b/k"), Err(&refused));
        let log = attempts.snapshot();
        assert_eq!(log.endpoint.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!((log.answered, log.failures_in_a_row), (0, 2));
        assert!(log.failing_for().is_some());
        assert!(
            log.last_failure.unwrap().contains("connection refused"),
            "the cause is kept"
        );

        attempts.record(endpoint("http://127.0.0.1:9/b/k"), Ok(()));
        let log = attempts.snapshot();
        assert_eq!((log.answered, log.failures_in_a_row), (1, 0));
        assert_eq!(log.last_failure, None);
    }
}
