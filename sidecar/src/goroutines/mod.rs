//! The `goroutines` capture of a Go program: its goroutine dump (grouped by stack) in every
//! sample and its heap profile once, fetched from its `net/http/pprof` endpoint from inside
//! its network namespace (so that a pprof bound to 127.0.0.1 in a pod works); and the Go
//! build info of any Go binary, pprof or not.

pub mod buildinfo;
pub mod dump;
pub mod netns;
pub mod pprof;
pub mod text;

use std::collections::HashMap;
use std::time::Duration;

use hyper::body::Bytes;
use serde::{Deserialize, Serialize};

pub use dump::{Frame, GoroutineGroup, GroupKey};
pub use pprof::PprofAddress;

use crate::samples::Series;
use crate::target::Target;
use netns::NetnsError;
use pprof::{PprofError, RequestLimits};

/// One goroutine sample: every goroutine, grouped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GoroutineSample {
    /// Goroutines in the dump.
    pub total: u64,
    /// Goroutines read from memory whose reads never agreed, left out of `groups` and
    /// `total` (always 0 from pprof).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub inconsistent: u64,
    /// Groups of goroutines with the same state and stack, biggest first.
    pub groups: Vec<GoroutineGroup>,
}

impl GoroutineSample {
    /// The sample of these goroutines, grouped.
    pub fn of(goroutines: Vec<dump::Goroutine>) -> Self {
        Self {
            total: goroutines.len() as u64,
            inconsistent: 0,
            groups: dump::group(goroutines),
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
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

/// Why the goroutines capture failed.
#[derive(Debug, thiserror::Error)]
pub enum GoroutinesError {
    /// The target's network namespace could not be entered.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// The endpoint gave nothing usable.
    #[error(transparent)]
    Pprof(#[from] PprofError),
}

/// Fetches and groups the goroutine dump of `target`; the request ends within `timeout`.
pub fn capture(
    target: &Target,
    options: &PprofOptions,
    timeout: Duration,
) -> Result<GoroutineSample, GoroutinesError> {
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
    Ok(GoroutineSample::of(goroutines))
}

/// Fetches the heap profile of `target` (gzip'd protobuf, checked); ends within `timeout`.
pub fn heap_profile(
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

/// A group of the last sample with its count in every sample.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupTrend<'a> {
    /// The group as the last sample has it.
    pub group: &'a GoroutineGroup,
    /// Its count in every sample, oldest first (0 where absent).
    pub counts: Vec<u64>,
    /// The seconds since the first sample at which each count was taken.
    pub offsets: Vec<f64>,
}

impl GroupTrend<'_> {
    /// Last count minus first.
    pub fn delta(&self) -> i64 {
        let first = self.counts.first().copied().unwrap_or(0);
        let last = self.counts.last().copied().unwrap_or(0);
        last as i64 - first as i64
    }

    /// Whether the count never went down between samples.
    pub fn monotonic(&self) -> bool {
        self.counts.windows(2).all(|w| w[1] >= w[0])
    }

    /// [`GroupTrend::delta`] per second between the first and the last sample.
    pub fn per_second(&self) -> f64 {
        let seconds = self.offsets.last().copied().unwrap_or(0.0);
        if seconds > 0.0 {
            self.delta() as f64 / seconds
        } else {
            0.0
        }
    }
}

/// Every group of the last sample with its count in each sample, in the last sample's
/// order (biggest first).
pub fn trends(series: &Series<GoroutineSample>) -> Vec<GroupTrend<'_>> {
    let Some(last) = series.samples.last() else {
        return Vec::new();
    };
    let counts: Vec<HashMap<GroupKey, u64>> = series
        .samples
        .iter()
        .map(|s| s.data.groups.iter().map(|g| (g.key(), g.count)).collect())
        .collect();
    let offsets: Vec<f64> = series.samples.iter().map(|s| s.offset_seconds).collect();
    last.data
        .groups
        .iter()
        .map(|group| {
            let key = group.key();
            GroupTrend {
                group,
                counts: counts
                    .iter()
                    .map(|c| c.get(&key).copied().unwrap_or(0))
                    .collect(),
                offsets: offsets.clone(),
            }
        })
        .collect()
}
