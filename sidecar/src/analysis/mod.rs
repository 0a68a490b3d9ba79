//! Turns samples into `summary.json`: counts per sample, growth per metric, and findings.
//! Pure: [`CaptureData`] in, [`Summary`] out.

pub mod findings;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use findings::{Finding, FindingCode, Severity};

use crate::captures::SCHEMA_VERSION;
use crate::series::CaptureData;

/// What `summary.json` holds (and what a DebugSession's status shows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The target's pid.
    pub pid: i32,
    /// Set when the capture is partial: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<String>,
    /// Counts for every sample, oldest first.
    pub samples: Vec<SampleCounts>,
    /// Change of every metric between the first and the last sample, largest first.
    pub growth: Vec<Growth>,
    /// What looks wrong, most serious first.
    pub findings: Vec<Finding>,
}

/// The counts of one sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SampleCounts {
    /// Sample number.
    pub index: usize,
    /// Seconds since the first sample.
    pub offset_seconds: f64,
    /// Fd counts, when fds were captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fds: Option<FdCounts>,
    /// Thread counts, when threads were captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<ThreadCounts>,
    /// Memory figures, when memory was captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryCounts>,
    /// Goroutines, when the goroutines capture got this sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goroutines: Option<u64>,
}

/// Fd counts of one sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FdCounts {
    /// Open fds.
    pub total: u64,
    /// Soft `RLIMIT_NOFILE` (`None`: unlimited).
    pub soft_limit: Option<u64>,
    /// Fds per group: the kind, and for sockets `socket PROTOCOL STATE`.
    pub by_group: BTreeMap<String, u64>,
}

/// Thread counts of one sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadCounts {
    /// Threads.
    pub total: u64,
    /// Threads per state letter.
    pub by_state: BTreeMap<String, u64>,
    /// Threads per name, with trailing digits folded (`worker-12` counts as `worker-*`).
    pub by_name: BTreeMap<String, u64>,
}

/// Memory figures of one sample, in bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryCounts {
    /// Resident set size.
    pub rss_bytes: Option<u64>,
    /// Cgroup usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_usage_bytes: Option<u64>,
    /// Cgroup working set (usage minus inactive file cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_working_set_bytes: Option<u64>,
    /// Lowest limit of the cgroup and its ancestors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_limit_bytes: Option<u64>,
    /// OOM kills recorded by the cgroup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_kills: Option<u64>,
}

/// How one metric changed across the samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Growth {
    /// `fds`, `fds: socket tcp CLOSE_WAIT`, `threads`, `rssBytes`, …
    pub metric: String,
    /// The value in every sample, oldest first.
    pub values: Vec<u64>,
    /// Last minus first.
    pub delta: i64,
    /// `delta` over the time between the first and the last sample.
    pub per_second: f64,
    /// Whether the value never went down from one sample to the next.
    pub monotonic: bool,
}

impl Growth {
    fn new(metric: String, values: Vec<u64>, seconds: f64) -> Self {
        let first = values.first().copied().unwrap_or(0);
        let last = values.last().copied().unwrap_or(0);
        let delta = last as i64 - first as i64;
        Self {
            metric,
            monotonic: values.windows(2).all(|w| w[1] >= w[0]),
            per_second: if seconds > 0.0 {
                delta as f64 / seconds
            } else {
                0.0
            },
            delta,
            values,
        }
    }

    /// The first value.
    pub fn first(&self) -> u64 {
        self.values.first().copied().unwrap_or(0)
    }

    /// The last value.
    pub fn last(&self) -> u64 {
        self.values.last().copied().unwrap_or(0)
    }
}

/// Summarizes a capture. `partial` is the reason the capture is partial, if it is.
pub fn summarize(pid: i32, data: &CaptureData, partial: Option<String>) -> Summary {
    let samples = sample_counts(data);
    let seconds = samples.last().map_or(0.0, |s| s.offset_seconds);
    let mut growth = growth(&samples, seconds);
    growth.sort_by(|a, b| {
        b.delta
            .unsigned_abs()
            .cmp(&a.delta.unsigned_abs())
            .then_with(|| a.metric.cmp(&b.metric))
    });
    let findings = findings::find(data, &samples, &growth);
    Summary {
        schema_version: SCHEMA_VERSION,
        pid,
        partial,
        samples,
        growth,
        findings,
    }
}

fn sample_counts(data: &CaptureData) -> Vec<SampleCounts> {
    // The /proc captures have every sample; goroutines may stop early (a failed endpoint).
    let count = [
        data.fds.as_ref().map(|s| s.samples.len()),
        data.threads.as_ref().map(|s| s.samples.len()),
        data.memory.as_ref().map(|s| s.samples.len()),
        data.goroutines.as_ref().map(|s| s.samples.len()),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(0);
    (0..count)
        .map(|i| {
            let fds = data.fds.as_ref().and_then(|series| series.samples.get(i));
            let threads = data
                .threads
                .as_ref()
                .and_then(|series| series.samples.get(i));
            let memory = data
                .memory
                .as_ref()
                .and_then(|series| series.samples.get(i));
            let goroutines = data
                .goroutines
                .as_ref()
                .and_then(|series| series.samples.get(i));
            let offset_seconds = fds
                .map(|s| s.offset_seconds)
                .or(threads.map(|s| s.offset_seconds))
                .or(memory.map(|s| s.offset_seconds))
                .or(goroutines.map(|s| s.offset_seconds))
                .unwrap_or(0.0);
            SampleCounts {
                index: i,
                offset_seconds,
                fds: fds.map(|s| {
                    let mut by_group = BTreeMap::new();
                    for entry in &s.data.fds {
                        *by_group.entry(entry.group()).or_insert(0) += 1;
                    }
                    FdCounts {
                        total: s.data.fds.len() as u64,
                        soft_limit: s.data.limits.soft,
                        by_group,
                    }
                }),
                threads: threads.map(|s| {
                    let mut by_state = BTreeMap::new();
                    let mut by_name = BTreeMap::new();
                    for thread in &s.data.threads {
                        *by_state.entry(thread.state.clone()).or_insert(0) += 1;
                        *by_name.entry(fold_thread_name(&thread.name)).or_insert(0) += 1;
                    }
                    ThreadCounts {
                        total: s.data.threads.len() as u64,
                        by_state,
                        by_name,
                    }
                }),
                memory: memory.map(|s| {
                    let cgroup = s.data.cgroup.value();
                    MemoryCounts {
                        rss_bytes: s.data.status.vm_rss,
                        cgroup_usage_bytes: cgroup.map(|c| c.usage_bytes),
                        cgroup_working_set_bytes: cgroup.map(|c| c.working_set_bytes),
                        cgroup_limit_bytes: cgroup
                            .and_then(|c| c.effective_limit.as_ref().map(|l| l.bytes)),
                        oom_kills: cgroup.and_then(|c| c.oom_kills),
                    }
                }),
                goroutines: goroutines.map(|s| s.data.total),
            }
        })
        .collect()
}

/// `worker-12` → `worker-*`; names without trailing digits are kept.
pub fn fold_thread_name(name: &str) -> String {
    let trimmed = name.trim_end_matches(|c: char| c.is_ascii_digit());
    if trimmed.len() == name.len() || trimmed.is_empty() {
        name.to_string()
    } else {
        format!("{trimmed}*")
    }
}

fn growth(samples: &[SampleCounts], seconds: f64) -> Vec<Growth> {
    if samples.len() < 2 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let series = |f: &dyn Fn(&SampleCounts) -> Option<u64>| -> Option<Vec<u64>> {
        samples.iter().map(f).collect()
    };
    if let Some(values) = series(&|s| s.fds.as_ref().map(|f| f.total)) {
        out.push(Growth::new("fds".into(), values, seconds));
        let groups: BTreeSet<&String> = samples
            .iter()
            .flat_map(|s| s.fds.as_ref().unwrap().by_group.keys())
            .collect();
        for group in groups {
            let values = samples
                .iter()
                .map(|s| {
                    s.fds
                        .as_ref()
                        .and_then(|f| f.by_group.get(group))
                        .copied()
                        .unwrap_or(0)
                })
                .collect();
            out.push(Growth::new(format!("fds: {group}"), values, seconds));
        }
    }
    if let Some(values) = series(&|s| s.threads.as_ref().map(|t| t.total)) {
        out.push(Growth::new("threads".into(), values, seconds));
    }
    if let Some(values) = series(&|s| s.memory.as_ref().and_then(|m| m.rss_bytes)) {
        out.push(Growth::new("rssBytes".into(), values, seconds));
    }
    if let Some(values) = series(&|s| s.memory.as_ref().and_then(|m| m.cgroup_working_set_bytes)) {
        out.push(Growth::new("cgroupWorkingSetBytes".into(), values, seconds));
    }
    if let Some(values) = series(&|s| s.goroutines) {
        out.push(Growth::new("goroutines".into(), values, seconds));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_names_fold_trailing_digits() {
        assert_eq!(fold_thread_name("worker-12"), "worker-*");
        assert_eq!(fold_thread_name("tokio-runtime-w"), "tokio-runtime-w");
        assert_eq!(fold_thread_name("1234"), "1234");
    }

    #[test]
    fn growth_knows_direction_and_rate() {
        let g = Growth::new("fds".into(), vec![10, 20, 40], 4.0);
        assert_eq!((g.delta, g.monotonic, g.per_second), (30, true, 7.5));
        let g = Growth::new("fds".into(), vec![40, 10, 41], 4.0);
        assert_eq!((g.delta, g.monotonic), (1, false));
    }
}
