//! Fetching Go's `net/http/pprof` endpoints: one HTTP/1.1 GET per call, on the calling
//! thread (so that its socket is opened in whatever network namespace that thread is in),
//! bounded by a timeout and a response size cap, and checked to really be a goroutine dump
//! or a gzip'd pprof profile.

use std::io::Read;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::gomem::binary::uvarint;

/// The goroutine dump, one block per goroutine with its full stack.
pub const GOROUTINE_PATH: &str = "/debug/pprof/goroutine?debug=2";
/// The heap profile (gzip'd protobuf).
pub const HEAP_PATH: &str = "/debug/pprof/heap";

pub use procshot_api::PprofAddress;

/// Why a pprof endpoint gave nothing usable.
#[derive(Debug, thiserror::Error)]
pub enum PprofError {
    /// Connection refused: no program listens there.
    #[error(
        "nothing is listening on {address} in the network namespace of pid {pid} (connection \
         refused): check --go-pprof, the address the program serves net/http/pprof on \
         (import _ \"net/http/pprof\" and http.ListenAndServe)"
    )]
    NotListening {
        /// The address.
        address: PprofAddress,
        /// The target.
        pid: i32,
    },
    /// Any other connection failure.
    #[error("cannot connect to {address} in the network namespace of pid {pid}: {source}")]
    Connect {
        /// The address.
        address: PprofAddress,
        /// The target.
        pid: i32,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// No complete answer in time.
    #[error(
        "GET {url} got no complete answer within {timeout}: the endpoint hangs or is too \
         slow (raise --go-pprof-timeout, within the capture's --timeout)"
    )]
    TimedOut {
        /// The request.
        url: String,
        /// The timeout, humanly formatted.
        timeout: String,
    },
    /// The server answered with an error status.
    #[error(
        "GET {url} answered HTTP {status}: this server does not serve Go's net/http/pprof \
         there (import _ \"net/http/pprof\" registers it on http.DefaultServeMux)"
    )]
    Status {
        /// The request.
        url: String,
        /// The status line's code and reason.
        status: String,
    },
    /// The answer is bigger than the cap.
    #[error(
        "GET {url}: the answer is larger than the cap of {cap} (--go-pprof-max-bytes); it \
         was cut off and not kept: raise the cap if the program really has that many \
         goroutines"
    )]
    TooLarge {
        /// The request.
        url: String,
        /// The cap, humanly formatted.
        cap: String,
    },
    /// HTTP-level failure (not HTTP, connection reset, …).
    #[error("GET {url} failed: {detail}: is this a Go net/http/pprof endpoint?")]
    Http {
        /// The request.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// The answer is not what the endpoint serves.
    #[error("GET {url} did not answer {expected}: {detail}; is this a Go net/http/pprof endpoint?")]
    NotPprof {
        /// The request.
        url: String,
        /// `a goroutine dump`, `a gzip'd pprof profile`.
        expected: &'static str,
        /// What it answered instead.
        detail: String,
    },
    /// A local failure (no runtime, no thread).
    #[error("GET {url}: {source}")]
    Local {
        /// The request.
        url: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Limits of one request.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// The whole request (connect, answer, body) must finish by then.
    pub timeout: Duration,
    /// The body may not be larger.
    pub max_bytes: u64,
}

/// GETs `path` from `address` with a current-thread runtime on the calling thread; `pid`
/// only words the errors. Only a `200 OK` body within the limits is returned.
pub fn get(
    address: &PprofAddress,
    pid: i32,
    path: &str,
    limits: RequestLimits,
) -> Result<Bytes, PprofError> {
    let url = address.url(path);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| PprofError::Local {
            url: url.clone(),
            source,
        })?;
    runtime.block_on(async {
        tokio::time::timeout(limits.timeout, fetch(address, pid, path, &url, limits))
            .await
            .unwrap_or_else(|_| {
                Err(PprofError::TimedOut {
                    url: url.clone(),
                    timeout: humantime::format_duration(Duration::from_millis(
                        limits.timeout.as_millis() as u64,
                    ))
                    .to_string(),
                })
            })
    })
}

async fn fetch(
    address: &PprofAddress,
    pid: i32,
    path: &str,
    url: &str,
    limits: RequestLimits,
) -> Result<Bytes, PprofError> {
    let http = |e: hyper::Error| PprofError::Http {
        url: url.to_string(),
        detail: e.to_string(),
    };
    let stream = TcpStream::connect(address.as_str())
        .await
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::ConnectionRefused => PprofError::NotListening {
                address: address.clone(),
                pid,
            },
            _ => PprofError::Connect {
                address: address.clone(),
                pid,
                source,
            },
        })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http)?;
    let connection = tokio::spawn(connection);
    let request = http::Request::get(path)
        .header(http::header::HOST, address.as_str())
        .header(
            http::header::USER_AGENT,
            concat!("procshot/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|e| PprofError::Http {
            url: url.to_string(),
            detail: e.to_string(),
        })?;
    let response = sender.send_request(request).await.map_err(http)?;
    if response.status() != http::StatusCode::OK {
        connection.abort();
        return Err(PprofError::Status {
            url: url.to_string(),
            status: response.status().to_string(),
        });
    }
    let cap = usize::try_from(limits.max_bytes).unwrap_or(usize::MAX);
    let body = Limited::new(response.into_body(), cap)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                PprofError::TooLarge {
                    url: url.to_string(),
                    cap: crate::units::bytes(limits.max_bytes),
                }
            } else {
                PprofError::Http {
                    url: url.to_string(),
                    detail: e.to_string(),
                }
            }
        });
    connection.abort();
    Ok(body?.to_bytes())
}

/// The highest field number of pprof's `Profile` message (`doc_url`).
const PROFILE_MAX_FIELD: u64 = 15;

/// Checks that `body` is a gzip'd pprof profile: the gzip magic, a gzip stream that
/// inflates whole (to at most `max_bytes`), and a protobuf whose every top-level field is
/// one of `Profile`'s (numbers 1 to 15, varint or length-delimited, lengths in bounds).
pub fn check_profile(url: &str, body: &[u8], max_bytes: u64) -> Result<(), PprofError> {
    let not = |detail: String| PprofError::NotPprof {
        url: url.to_string(),
        expected: "a gzip'd pprof profile",
        detail,
    };
    if !body.starts_with(&[0x1f, 0x8b]) {
        return Err(not(format!(
            "it is not gzip'd: it starts with {}",
            start_of(body)
        )));
    }
    let mut profile = Vec::new();
    flate2::read::GzDecoder::new(body)
        .take(max_bytes)
        .read_to_end(&mut profile)
        .map_err(|e| not(format!("its gzip stream cannot be read: {e}")))?;
    check_profile_fields(&profile)
        .map_err(|detail| not(format!("the gzip'd data is not a pprof profile: {detail}")))
}

/// Walks the top-level fields of a serialized `Profile`.
fn check_profile_fields(mut data: &[u8]) -> Result<(), String> {
    if data.is_empty() {
        return Err("it is empty".into());
    }
    while !data.is_empty() {
        let tag = uvarint(&mut data).ok_or("a field tag is cut short")?;
        let (field, wire_type) = (tag >> 3, tag & 7);
        if field == 0 || field > PROFILE_MAX_FIELD {
            return Err(format!("field number {field} is not one of Profile's"));
        }
        match wire_type {
            0 => {
                uvarint(&mut data).ok_or("a number is cut short")?;
            }
            2 => {
                let length = uvarint(&mut data).ok_or("a length is cut short")?;
                let length = usize::try_from(length).map_err(|_| "a length overflows")?;
                data = data
                    .get(length..)
                    .ok_or_else(|| format!("field {field} runs past the end"))?;
            }
            other => {
                return Err(format!("field {field} has wire type {other}, not 0 or 2"));
            }
        }
    }
    Ok(())
}

/// The first characters of a body, for messages.
pub fn start_of(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
    format!("{text:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_gzip_profiles_pass() {
        use std::io::Write;
        let gzip = |content: &[u8]| {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(content).unwrap();
            encoder.finish().unwrap()
        };
        // period_type {type: 1, unit: 2}, period 524288, a string table entry.
        let profile = b"\x5a\x04\x08\x01\x10\x02\x60\x80\x80\x20\x32\x05space";
        assert!(check_profile("u", &gzip(profile), 1 << 20).is_ok());
        let html = check_profile("u", b"<html>", 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(
            html.contains("not gzip'd") && html.contains("<html>"),
            "{html}"
        );
        let text = check_profile("u", &gzip(b"hello"), 1 << 20)
            .unwrap_err()
            .to_string();
        // "he" reads as field 13 = 0x65, then "l" as field 13 with wire type 4.
        assert!(
            text.contains("field 13 has wire type 4, not 0 or 2"),
            "{text}"
        );
        let cut = check_profile("u", &gzip(&profile[..8]), 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(
            cut.contains("runs past the end") || cut.contains("cut short"),
            "{cut}"
        );
    }
}
