//! Where the goroutines capture reads from ([`GoroutineSource`]: the program's memory,
//! [`super::MemorySource`], or this module's [`PprofSource`]): the program's own
//! `net/http/pprof` endpoint, reached from inside the target's network namespace so that
//! a pprof bound to 127.0.0.1 in a pod answers.

use std::time::Duration;

use hyper::body::Bytes;

use super::pprof::{self, PprofAddress, PprofError, RequestLimits};
use super::{GoroutineSample, GoroutinesError, HEAP_FILE, dump};
use crate::captures::contract::{Deadline, RawFile};
use crate::process::{Target, netns};

/// Where goroutines are read from. The goroutines capture asks its source for one dump per
/// sample and lets it read what it reads once after the last sample.
pub trait GoroutineSource {
    /// Every goroutine of `target`, grouped; the read ends within `timeout`.
    fn goroutines(
        &mut self,
        target: &Target,
        timeout: Duration,
    ) -> Result<GoroutineSample, GoroutinesError>;

    /// Reads what the source takes once, after the last sample (the pprof endpoint's
    /// heap profile), within what is left of `deadline`.
    fn after_samples(
        &mut self,
        target: &Target,
        deadline: &Deadline,
    ) -> Result<Vec<RawFile>, GoroutinesError>;
}

/// Where and how to reach the target's pprof endpoint.
#[derive(Debug, Clone)]
pub struct PprofOptions {
    /// `host:port` inside the target's network namespace.
    pub address: PprofAddress,
    /// The longest one request may take (also bounded by the capture's deadline).
    pub request_timeout: Duration,
    /// The largest answer kept.
    pub max_bytes: u64,
}

/// The program's pprof endpoint: `goroutine?debug=2` every sample, `heap` once.
#[derive(Debug, Clone)]
pub struct PprofSource(pub PprofOptions);

impl GoroutineSource for PprofSource {
    fn goroutines(
        &mut self,
        target: &Target,
        timeout: Duration,
    ) -> Result<GoroutineSample, GoroutinesError> {
        let options = &self.0;
        let body = fetch(target, options, pprof::GOROUTINE_PATH, timeout)?;
        let url = options.address.url(pprof::GOROUTINE_PATH);
        let not_a_dump = |detail: String| PprofError::NotPprof {
            url: url.clone(),
            expected: "a goroutine dump",
            detail,
        };
        let text = std::str::from_utf8(&body).map_err(|_| {
            not_a_dump(format!(
                "it is not text: it starts with {}",
                pprof::start_of(&body)
            ))
        })?;
        let goroutines = dump::parse(text).map_err(|e| not_a_dump(e.to_string()))?;
        Ok(GoroutineSample::of_dump(goroutines))
    }

    fn after_samples(
        &mut self,
        target: &Target,
        deadline: &Deadline,
    ) -> Result<Vec<RawFile>, GoroutinesError> {
        let left = deadline.left();
        if left.is_zero() {
            return Err(GoroutinesError::NoTimeForHeapProfile {
                deadline: deadline.total(),
            });
        }
        let profile = heap_profile(target, &self.0, left)
            .map_err(|e| GoroutinesError::HeapProfile(Box::new(e)))?;
        Ok(vec![RawFile {
            name: HEAP_FILE,
            content: profile.into(),
        }])
    }
}

/// Fetches the heap profile of `target` (gzip'd protobuf, checked); ends within `timeout`.
fn heap_profile(
    target: &Target,
    options: &PprofOptions,
    timeout: Duration,
) -> Result<Bytes, GoroutinesError> {
    let body = fetch(target, options, pprof::HEAP_PATH, timeout)?;
    pprof::check_profile(
        &options.address.url(pprof::HEAP_PATH),
        &body,
        options.max_bytes,
    )?;
    Ok(body)
}

fn fetch(
    target: &Target,
    options: &PprofOptions,
    path: &str,
    timeout: Duration,
) -> Result<Bytes, GoroutinesError> {
    let limits = RequestLimits {
        timeout: timeout.min(options.request_timeout),
        max_bytes: options.max_bytes,
    };
    let pid = target.pid();
    let body = netns::run_in(&target.path("ns/net"), pid, || {
        pprof::get(&options.address, pid, path, limits)
    })??;
    Ok(body)
}
