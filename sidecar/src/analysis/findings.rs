//! Findings: what looks wrong, with the numbers, in one sentence each. Every threshold is a
//! named constant here and documented in the README's "Findings" table.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Growth, SampleCounts};
use crate::captures::Series;
use crate::captures::fds::{FdEntry, FdKind};
use crate::captures::goroutines::{self, GoroutineSample};
use crate::gomem::GoHeap;
use crate::series::CaptureData;
use crate::units;

/// `FD_LIMIT_NEAR` warning: open fds at or above this share of the soft limit.
pub const FD_LIMIT_WARNING: f64 = 0.80;
/// `FD_LIMIT_NEAR` critical.
pub const FD_LIMIT_CRITICAL: f64 = 0.95;
/// `FD_GROWTH`: a group must grow by at least this many fds…
pub const FD_GROWTH_MIN: u64 = 10;
/// …and by at least this share of its first count, never shrinking between samples.
pub const FD_GROWTH_MIN_RATIO: f64 = 0.10;
/// `FD_GROWTH` is critical when, at the measured rate, the soft limit is this close.
pub const FD_GROWTH_CRITICAL_SECONDS: f64 = 600.0;
/// `SOCKET_CLOSE_WAIT` is a warning from this many sockets (info below).
pub const CLOSE_WAIT_WARNING: u64 = 10;
/// `THREAD_GROWTH`: threads must grow by at least this many…
pub const THREAD_GROWTH_MIN: u64 = 5;
/// …and this share of the first count, never shrinking.
pub const THREAD_GROWTH_MIN_RATIO: f64 = 0.10;
/// `RSS_GROWTH`: RSS must grow by at least this many bytes…
pub const RSS_GROWTH_MIN_BYTES: u64 = 16 << 20;
/// …and this share of the first value, never shrinking.
pub const RSS_GROWTH_MIN_RATIO: f64 = 0.10;
/// `CGROUP_MEMORY_NEAR_LIMIT` warning: working set at or above this share of the limit.
pub const CGROUP_LIMIT_WARNING: f64 = 0.90;
/// `CGROUP_MEMORY_NEAR_LIMIT` critical.
pub const CGROUP_LIMIT_CRITICAL: f64 = 0.97;

/// `GOROUTINE_GROWTH`: the goroutines of one function must grow by at least this many…
pub const GOROUTINE_GROWTH_MIN: u64 = 10;
/// …and by this share of their first count, never shrinking between samples.
pub const GOROUTINE_GROWTH_MIN_RATIO: f64 = 0.10;
/// `GOROUTINES_BLOCKED`: at least this many goroutines blocked on a lock (`semacquire`,
/// `sync.Mutex.Lock`, `sync.RWMutex.*Lock`) at the same site…
pub const GOROUTINES_BLOCKED_LOCK_MIN: u64 = 10;
/// …or this many on a channel operation or `select` at the same site (idle worker pools
/// legitimately park many goroutines on one channel)…
pub const GOROUTINES_BLOCKED_CHANNEL_MIN: u64 = 100;
/// …each waiting for long: the runtime prints a wait of at least one minute, or the same
/// goroutine (by id) waited at the same site in samples at least this many seconds apart.
pub const GOROUTINES_BLOCKED_MIN_SECONDS: f64 = 1.0;
/// `GOROUTINES_BLOCKED` is critical when the runtime reports waits of this many minutes.
pub const GOROUTINES_BLOCKED_CRITICAL_MINUTES: u64 = 5;

pub use procshot_api::{FindingCode, Severity};

/// One finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// How serious.
    pub severity: Severity,
    /// Stable code (`FD_GROWTH`, `SOCKET_CLOSE_WAIT`, …).
    pub code: FindingCode,
    /// One sentence with the numbers.
    pub message: String,
    /// The numbers it rests on.
    pub evidence: serde_json::Value,
}

impl Finding {
    fn new(
        severity: Severity,
        code: FindingCode,
        message: String,
        evidence: serde_json::Value,
    ) -> Self {
        Self {
            severity,
            code,
            message,
            evidence,
        }
    }
}

/// All findings for a capture, most serious first.
pub fn find(data: &CaptureData, samples: &[SampleCounts], growth: &[Growth]) -> Vec<Finding> {
    let seconds = samples.last().map_or(0.0, |s| s.offset_seconds);
    let last_fds = data
        .fds
        .as_ref()
        .and_then(|s| s.samples.last())
        .map(|s| s.data.fds.as_slice());
    let mut findings = Vec::new();
    findings.extend(fd_limit_near(samples));
    findings.extend(fd_growth(
        samples,
        growth,
        seconds,
        last_fds.unwrap_or_default(),
    ));
    findings.extend(close_wait(last_fds.unwrap_or_default()));
    findings.extend(thread_growth(samples, growth, seconds));
    let go_heap = data
        .memory
        .as_ref()
        .and_then(|s| s.samples.last())
        .and_then(|s| s.data.go_heap.as_ref())
        .and_then(|h| h.value());
    findings.extend(rss_growth(growth, seconds, go_heap));
    findings.extend(cgroup_near_limit(samples, go_heap));
    findings.extend(cgroup_oom_kills(samples));
    if let Some(series) = &data.goroutines {
        findings.extend(goroutine_growth(series));
        findings.extend(goroutines_blocked(series));
        findings.extend(goroutines_inconsistent(series));
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    findings
}

fn grows(g: &Growth, min: u64, min_ratio: f64) -> bool {
    g.monotonic && g.delta >= min as i64 && g.delta as f64 >= g.first() as f64 * min_ratio
}

fn fd_limit_near(samples: &[SampleCounts]) -> Option<Finding> {
    let fds = samples.last()?.fds.as_ref()?;
    let limit = fds.soft_limit?;
    let share = fds.total as f64 / limit.max(1) as f64;
    let severity = if share >= FD_LIMIT_CRITICAL {
        Severity::Critical
    } else if share >= FD_LIMIT_WARNING {
        Severity::Warning
    } else {
        return None;
    };
    Some(Finding::new(
        severity,
        FindingCode::FdLimitNear,
        format!(
            "{} fds open, {:.0}% of the soft limit of {}: at the limit every open, accept and socket call fails with EMFILE (too many open files)",
            units::count(fds.total),
            share * 100.0,
            units::count(limit)
        ),
        json!({"open": fds.total, "softLimit": limit, "share": share}),
    ))
}

fn fd_growth(
    samples: &[SampleCounts],
    growth: &[Growth],
    seconds: f64,
    last_fds: &[FdEntry],
) -> Vec<Finding> {
    let last = samples.last().and_then(|s| s.fds.as_ref());
    growth
        .iter()
        .filter_map(|g| Some((g, g.metric.strip_prefix("fds: ")?)))
        .filter(|(g, _)| grows(g, FD_GROWTH_MIN, FD_GROWTH_MIN_RATIO))
        .map(|(g, group)| {
            let members: Vec<&FdEntry> = last_fds.iter().filter(|e| e.group() == group).collect();
            let top = top_targets(&members);
            let time_to_limit = last
                .and_then(|f| f.soft_limit.map(|limit| (limit.saturating_sub(f.total)) as f64 / g.per_second))
                .filter(|t| t.is_finite());
            let severity = match time_to_limit {
                Some(t) if t <= FD_GROWTH_CRITICAL_SECONDS => Severity::Critical,
                _ => Severity::Warning,
            };
            let mut message = format!(
                "{} grew {} → {} in {} (+{})",
                group_description(group),
                units::count(g.first()),
                units::count(g.last()),
                units::seconds(seconds),
                units::rate(g.per_second)
            );
            if !top.is_empty() {
                let noun = if group.starts_with("socket ") { "top peers" } else { "top targets" };
                let list: Vec<String> = top.iter().map(|(t, n)| format!("{t} ({})", units::count(*n))).collect();
                message.push_str(&format!("; {noun}: {}", list.join(", ")));
            }
            if let Some(t) = time_to_limit {
                message.push_str(&format!("; at this rate the soft limit is reached in about {}", units::seconds(t)));
            }
            if let Some(hint) = FdKind::from_name(group).and_then(growth_hint) {
                message.push_str(&format!(". {hint}"));
            }
            Finding::new(
                severity,
                FindingCode::FdGrowth,
                message,
                json!({
                    "group": group,
                    "values": g.values,
                    "seconds": seconds,
                    "perSecond": g.per_second,
                    "top": top.iter().map(|(t, n)| json!({"target": t, "count": n})).collect::<Vec<_>>(),
                    "secondsToSoftLimit": time_to_limit,
                }),
            )
        })
        .collect()
}

/// `socket tcp CLOSE_WAIT` → `tcp sockets in CLOSE_WAIT`; `timerfd` → `timerfds`.
fn group_description(group: &str) -> String {
    if let Some(socket) = group.strip_prefix("socket ") {
        return match socket.split_once(' ') {
            Some((protocol, state)) => format!("{protocol} sockets in {state}"),
            None => format!("{socket} sockets"),
        };
    }
    FdKind::from_name(group).map_or_else(|| group.to_string(), |k| k.plural().to_string())
}

/// What a growing kind usually means, worded no stronger than the evidence.
fn growth_hint(kind: FdKind) -> Option<&'static str> {
    Some(match kind {
        FdKind::Timerfd => {
            "Go's runtime does not create a timerfd per time.Ticker, so growing timerfds usually point at native code (a C library or another runtime)"
        }
        FdKind::Eventpoll => {
            "Each epoll instance is usually an event loop; loops created and never closed would look like this"
        }
        FdKind::Pipe => "Pipes often come from child processes whose pipe ends are never closed",
        FdKind::RegularFile => {
            "Files opened and never closed (a missing Close/defer) would look like this"
        }
        FdKind::Eventfd => {
            "Eventfds are usually wake-up handles of event loops or thread pools created and never closed"
        }
        _ => return None,
    })
}

/// The most common link targets (peers for sockets) among fds, top 3.
fn top_targets(entries: &[&FdEntry]) -> Vec<(String, u64)> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for entry in entries {
        let key = match &entry.socket {
            Some(socket) => match (&socket.remote, &socket.path) {
                (Some(remote), _) => remote.clone(),
                (None, Some(path)) => path.clone(),
                _ => continue,
            },
            None if matches!(
                entry.kind,
                FdKind::RegularFile | FdKind::Directory | FdKind::Memfd
            ) =>
            {
                entry.target.clone()
            }
            None => continue,
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    let mut top: Vec<(String, u64)> = counts.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(3);
    top
}

fn close_wait(last_fds: &[FdEntry]) -> Option<Finding> {
    let members: Vec<&FdEntry> = last_fds
        .iter()
        .filter(|e| {
            e.socket
                .as_ref()
                .is_some_and(|s| s.state.as_deref() == Some("CLOSE_WAIT"))
        })
        .collect();
    if members.is_empty() {
        return None;
    }
    let count = members.len() as u64;
    let top = top_targets(&members);
    let severity = if count >= CLOSE_WAIT_WARNING {
        Severity::Warning
    } else {
        Severity::Info
    };
    let peers: Vec<String> = top
        .iter()
        .map(|(t, n)| format!("{t} ({})", units::count(*n)))
        .collect();
    Some(Finding::new(
        severity,
        FindingCode::SocketCloseWait,
        format!(
            "{} TCP socket{} in CLOSE_WAIT: the peer closed the connection and this process has not closed its end (in Go, often an HTTP response body that is never closed); top peers: {}",
            units::count(count),
            if count == 1 { " is" } else { "s are" },
            peers.join(", ")
        ),
        json!({"count": count, "fds": members.iter().map(|e| e.fd).collect::<Vec<_>>(), "topPeers": top.iter().map(|(t, n)| json!({"peer": t, "count": n})).collect::<Vec<_>>()}),
    ))
}

fn thread_growth(samples: &[SampleCounts], growth: &[Growth], seconds: f64) -> Option<Finding> {
    let g = growth.iter().find(|g| g.metric == "threads")?;
    if !grows(g, THREAD_GROWTH_MIN, THREAD_GROWTH_MIN_RATIO) {
        return None;
    }
    let first = samples.first()?.threads.as_ref()?;
    let last = samples.last()?.threads.as_ref()?;
    let mut names: Vec<(String, i64)> = last
        .by_name
        .iter()
        .map(|(name, n)| {
            (
                name.clone(),
                *n as i64 - first.by_name.get(name).copied().unwrap_or(0) as i64,
            )
        })
        .filter(|(_, delta)| *delta > 0)
        .collect();
    names.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    names.truncate(3);
    let list: Vec<String> = names
        .iter()
        .map(|(name, d)| format!("{name} (+{d})"))
        .collect();
    Some(Finding::new(
        Severity::Warning,
        FindingCode::ThreadGrowth,
        format!(
            "threads grew {} → {} in {} (+{}); growing names: {}",
            units::count(g.first()),
            units::count(g.last()),
            units::seconds(seconds),
            units::rate(g.per_second),
            list.join(", ")
        ),
        json!({"values": g.values, "seconds": seconds, "perSecond": g.per_second, "growingNames": names.iter().map(|(n, d)| json!({"name": n, "delta": d})).collect::<Vec<_>>()}),
    ))
}

/// What part of a process's memory is Go heap, for the memory findings of a Go program
/// whose heap statistics were read: live heap, and freed heap the runtime keeps (resident
/// but reusable, and returned to the OS in time: not a leak).
fn go_heap_clause(heap: Option<&GoHeap>) -> String {
    let Some(heap) = heap else {
        return String::new();
    };
    format!(
        "; the Go heap has {} in use ({} of live and not yet collected objects) and {} of \
         freed heap the runtime keeps without returning it to the OS (resident, reused \
         before the heap grows: that part is not a leak)",
        units::bytes(heap.heap_in_use_bytes),
        units::bytes(heap.heap_alloc_bytes),
        units::bytes(heap.heap_free_bytes)
    )
}

fn rss_growth(growth: &[Growth], seconds: f64, go_heap: Option<&GoHeap>) -> Option<Finding> {
    let g = growth.iter().find(|g| g.metric == "rssBytes")?;
    if !grows(g, RSS_GROWTH_MIN_BYTES, RSS_GROWTH_MIN_RATIO) {
        return None;
    }
    Some(Finding::new(
        Severity::Warning,
        FindingCode::RssGrowth,
        format!(
            "resident memory grew {} → {} in {} ({}/s) and never went down between samples{}",
            units::bytes(g.first()),
            units::bytes(g.last()),
            units::seconds(seconds),
            units::bytes(g.per_second.max(0.0) as u64),
            go_heap_clause(go_heap)
        ),
        json!({"values": g.values, "seconds": seconds, "bytesPerSecond": g.per_second, "goHeap": go_heap}),
    ))
}

fn cgroup_near_limit(samples: &[SampleCounts], go_heap: Option<&GoHeap>) -> Option<Finding> {
    let memory = samples.last()?.memory.as_ref()?;
    let working_set = memory.cgroup_working_set_bytes?;
    let limit = memory.cgroup_limit_bytes?;
    let share = working_set as f64 / limit.max(1) as f64;
    let severity = if share >= CGROUP_LIMIT_CRITICAL {
        Severity::Critical
    } else if share >= CGROUP_LIMIT_WARNING {
        Severity::Warning
    } else {
        return None;
    };
    Some(Finding::new(
        severity,
        FindingCode::CgroupMemoryNearLimit,
        format!(
            "the cgroup's working set is {}, {:.0}% of its memory limit of {}: at the limit the kernel reclaims hard and then OOM-kills{}",
            units::bytes(working_set),
            share * 100.0,
            units::bytes(limit),
            go_heap_clause(go_heap)
        ),
        json!({"workingSetBytes": working_set, "usageBytes": memory.cgroup_usage_bytes, "limitBytes": limit, "share": share, "goHeap": go_heap}),
    ))
}

fn cgroup_oom_kills(samples: &[SampleCounts]) -> Option<Finding> {
    let first = samples.first()?.memory.as_ref()?.oom_kills?;
    let last = samples.last()?.memory.as_ref()?.oom_kills?;
    if last == 0 {
        return None;
    }
    let during = last.saturating_sub(first);
    let (severity, when) = if during > 0 {
        (
            Severity::Critical,
            format!("{} of them during this capture", units::count(during)),
        )
    } else {
        (Severity::Warning, "none during this capture".to_string())
    };
    Some(Finding::new(
        severity,
        FindingCode::CgroupOomKills,
        format!(
            "the kernel has OOM-killed {} process(es) in this cgroup, {when}",
            units::count(last)
        ),
        json!({"oomKills": last, "duringCapture": during}),
    ))
}

/// The function whose goroutines grow the most (groups of the last sample summed by the
/// function of their stack), when they grow enough.
fn goroutine_growth(series: &Series<GoroutineSample>) -> Option<Finding> {
    let trends = goroutines::trends(series);
    let seconds = trends.first()?.offsets.last().copied().unwrap_or(0.0);
    let mut by_function: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for trend in &trends {
        let sums = by_function
            .entry(trend.group.function())
            .or_insert_with(|| vec![0; trend.counts.len()]);
        for (sum, count) in sums.iter_mut().zip(&trend.counts) {
            *sum += count;
        }
    }
    let (function, values) = by_function
        .into_iter()
        .map(|(function, values)| (function, Growth::new(function.to_string(), values, seconds)))
        .filter(|(_, g)| grows(g, GOROUTINE_GROWTH_MIN, GOROUTINE_GROWTH_MIN_RATIO))
        .max_by(|a, b| a.1.delta.cmp(&b.1.delta).then_with(|| b.0.cmp(a.0)))?;
    let biggest = trends
        .iter()
        .filter(|t| t.group.function() == function)
        .max_by_key(|t| t.delta())?;
    let group = biggest.group;
    let totals: Vec<u64> = series.samples.iter().map(|s| s.data.total).collect();
    let mut message = format!(
        "goroutines in {function} grew {} → {} in {} (+{}), mostly [{}]",
        units::count(values.first()),
        units::count(values.last()),
        units::seconds(seconds),
        units::rate(values.per_second),
        group.state,
    );
    if let Some(site) = group.site() {
        message.push_str(&format!(" at {}", site.short_location()));
    }
    if let Some(creator) = &group.created_by {
        message.push_str(&format!(", created by {}", creator.function));
    }
    message.push_str(&format!(
        "; all goroutines: {} → {}. Goroutines started and never ending (a loop on a \
         time.Ticker that is never stopped, a handler that ignores its context) would look \
         like this",
        units::count(totals.first().copied().unwrap_or(0)),
        units::count(totals.last().copied().unwrap_or(0)),
    ));
    Some(Finding::new(
        Severity::Warning,
        FindingCode::GoroutineGrowth,
        message,
        json!({
            "function": function,
            "state": group.state,
            "site": group.site(),
            "createdBy": group.created_by,
            "values": values.values,
            "seconds": seconds,
            "perSecond": values.per_second,
            "totals": totals,
        }),
    ))
}

/// Whether a wait reason is a lock (`Some(true)`), a channel operation (`Some(false)`) or
/// neither.
fn blocking_kind(state: &str) -> Option<bool> {
    match state {
        "semacquire" | "sync.Mutex.Lock" | "sync.RWMutex.Lock" | "sync.RWMutex.RLock" => Some(true),
        "chan receive"
        | "chan send"
        | "select"
        | "chan receive (nil chan)"
        | "chan send (nil chan)"
        | "select (no cases)" => Some(false),
        _ => None,
    }
}

/// Goroutines of one sample blocked at one site (wait reason, function, file, line).
#[derive(Default)]
struct BlockedSite {
    count: u64,
    ids: BTreeSet<u64>,
    waiting_a_minute_or_more: u64,
    max_wait_minutes: Option<u64>,
}

type SiteKey = (String, String, String, u32);

fn blocked_sites(sample: &GoroutineSample) -> BTreeMap<SiteKey, BlockedSite> {
    let mut sites: BTreeMap<SiteKey, BlockedSite> = BTreeMap::new();
    for group in &sample.groups {
        let (Some(_), Some(site)) = (blocking_kind(&group.state), group.site()) else {
            continue;
        };
        let key = (
            group.state.clone(),
            site.function.clone(),
            site.file.clone(),
            site.line,
        );
        let entry = sites.entry(key).or_default();
        entry.count += group.count;
        entry.ids.extend(&group.ids);
        entry.waiting_a_minute_or_more += group.waiting_a_minute_or_more;
        entry.max_wait_minutes = entry.max_wait_minutes.max(group.max_wait_minutes);
    }
    sites
}

/// Goroutines read from memory whose reads never agreed: left out of every count the
/// other findings rest on, said so rather than guessed.
fn goroutines_inconsistent(series: &Series<GoroutineSample>) -> Option<Finding> {
    let worst = series
        .samples
        .iter()
        .max_by_key(|s| s.data.inconsistent)
        .filter(|s| s.data.inconsistent > 0)?;
    let left_out = worst.data.inconsistent;
    Some(Finding::new(
        Severity::Info,
        FindingCode::GoroutinesInconsistent,
        format!(
            "{} of {} goroutines changed every time they were read from memory (sample {}, \
             the most of any sample) and are left out of its counts; --goroutines-max-stop \
             reads them with every thread stopped for a moment",
            units::count(left_out),
            units::count(left_out + worst.data.total),
            worst.index + 1
        ),
        json!({"perSample": series.samples.iter().map(|s| s.data.inconsistent).collect::<Vec<_>>()}),
    ))
}

/// Many goroutines waiting for long on the same lock or channel site, in the last sample.
fn goroutines_blocked(series: &Series<GoroutineSample>) -> Vec<Finding> {
    let (Some(first), Some(last)) = (series.samples.first(), series.samples.last()) else {
        return Vec::new();
    };
    let apart = last.offset_seconds - first.offset_seconds;
    let earlier = (apart >= GOROUTINES_BLOCKED_MIN_SECONDS).then(|| blocked_sites(&first.data));
    let mut findings = Vec::new();
    for ((state, function, file, line), site) in blocked_sites(&last.data) {
        let is_lock = blocking_kind(&state) == Some(true);
        let min = if is_lock {
            GOROUTINES_BLOCKED_LOCK_MIN
        } else {
            GOROUTINES_BLOCKED_CHANNEL_MIN
        };
        let key = (state.clone(), function.clone(), file.clone(), line);
        let still_waiting = earlier
            .as_ref()
            .and_then(|sites| sites.get(&key))
            .map_or(0, |before| {
                site.ids.intersection(&before.ids).count() as u64
            });
        let long = still_waiting.max(site.waiting_a_minute_or_more);
        if long < min {
            continue;
        }
        let minutes = site.max_wait_minutes.unwrap_or(0);
        let severity = if minutes >= GOROUTINES_BLOCKED_CRITICAL_MINUTES {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let location = goroutines::Frame {
            function: function.clone(),
            file: file.clone(),
            line,
        }
        .short_location();
        let mut how_long = Vec::new();
        if still_waiting > 0 {
            how_long.push(format!(
                "{} of them were already waiting there {} earlier",
                units::count(still_waiting),
                units::seconds(apart)
            ));
        }
        if minutes > 0 {
            how_long.push(format!(
                "{} wait at least a minute, the longest {minutes} minutes",
                units::count(site.waiting_a_minute_or_more)
            ));
        }
        let what = if is_lock {
            "on a lock; a lock held for long (or a deadlock) would look like this"
        } else {
            "on a channel; a sender or receiver that never comes would look like this"
        };
        findings.push(Finding::new(
            severity,
            FindingCode::GoroutinesBlocked,
            format!(
                "{} goroutines wait [{state}] in {function} at {location}: {}; they wait {what}",
                units::count(site.count),
                how_long.join(", "),
            ),
            json!({
                "state": state,
                "function": function,
                "file": file,
                "line": line,
                "count": site.count,
                "stillWaitingAfterSeconds": still_waiting,
                "secondsBetweenSamples": apart,
                "waitingAMinuteOrMore": site.waiting_a_minute_or_more,
                "maxWaitMinutes": site.max_wait_minutes,
            }),
        ));
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::captures::Sample;
    use crate::captures::goroutines::dump;

    /// A sample with `waiters` goroutines on a mutex (ids from 100) waiting `minutes`, and
    /// `leaks` goroutines in a leaking loop (ids from 1000).
    fn sample(
        index: usize,
        offset: f64,
        waiters: u64,
        minutes: u64,
        leaks: u64,
    ) -> Sample<GoroutineSample> {
        let wait = if minutes > 0 {
            format!(", {minutes} minutes")
        } else {
            String::new()
        };
        let mut text =
            String::from("goroutine 1 [chan receive]:\nmain.main()\n\t/app/main.go:20 +0x1\n\n");
        for id in 100..100 + waiters {
            text.push_str(&format!("goroutine {id} [semacquire{wait}]:\nsync.runtime_SemacquireMutex(0x0?)\n\t/go/src/runtime/sema.go:77 +0x25\nsync.(*Mutex).Lock(...)\n\t/go/src/sync/mutex.go:90\nmain.waitForLock()\n\t/app/main.go:64 +0x4b\ncreated by main.main\n\t/app/main.go:87 +0x1\n\n"));
        }
        for id in 1000..1000 + leaks {
            text.push_str(&format!("goroutine {id} [select]:\nruntime.gopark(0x0?)\n\t/go/src/runtime/proc.go:363 +0x1\nmain.leakTicker()\n\t/app/main.go:38 +0x1\ncreated by main.startLeaks\n\t/app/main.go:50 +0x1\n\n"));
        }
        let goroutines = dump::parse(&text).unwrap();
        Sample {
            index,
            taken_at: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            offset_seconds: offset,
            duration_ms: 1.0,
            data: GoroutineSample::of_dump(goroutines),
        }
    }

    fn series(samples: Vec<Sample<GoroutineSample>>) -> Series<GoroutineSample> {
        Series {
            schema_version: 1,
            pid: 7,
            samples,
        }
    }

    #[test]
    fn growth_names_the_growing_function() {
        let s = series(vec![
            sample(0, 0.0, 0, 0, 5),
            sample(1, 2.0, 0, 0, 25),
            sample(2, 4.0, 0, 0, 45),
        ]);
        let finding = goroutine_growth(&s).unwrap();
        assert!(
            finding.message.starts_with("goroutines in main.leakTicker grew 5 → 45 in 4 s (+10/s), mostly [select] at app/main.go:38, created by main.startLeaks; all goroutines: 6 → 46"),
            "{}",
            finding.message
        );
        // 9 more is under the minimum; a shrinking count is no leak.
        assert!(
            goroutine_growth(&series(vec![
                sample(0, 0.0, 0, 0, 5),
                sample(1, 2.0, 0, 0, 14)
            ]))
            .is_none()
        );
        assert!(
            goroutine_growth(&series(vec![
                sample(0, 0.0, 0, 0, 5),
                sample(1, 1.0, 0, 0, 40),
                sample(2, 2.0, 0, 0, 30)
            ]))
            .is_none()
        );
    }

    #[test]
    fn blocked_needs_many_goroutines_waiting_long_at_one_site() {
        // The same 10 goroutines in two samples 2 s apart.
        let s = series(vec![sample(0, 0.0, 10, 0, 0), sample(1, 2.0, 10, 0, 0)]);
        let found = goroutines_blocked(&s);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].severity, Severity::Warning);
        assert_eq!(
            found[0].message,
            "10 goroutines wait [semacquire] in main.waitForLock at app/main.go:64: 10 of them were already waiting there 2 s earlier; they wait on a lock; a lock held for long (or a deadlock) would look like this"
        );
        // One sample: only the runtime's minutes tell; 6 minutes is critical.
        let one = goroutines_blocked(&series(vec![sample(0, 0.0, 12, 6, 0)]));
        assert_eq!(one[0].severity, Severity::Critical);
        assert!(
            one[0]
                .message
                .contains("12 wait at least a minute, the longest 6 minutes"),
            "{}",
            one[0].message
        );
        // Too few, too recent, or a channel site under its higher minimum: nothing.
        assert!(
            goroutines_blocked(&series(vec![
                sample(0, 0.0, 9, 0, 0),
                sample(1, 2.0, 9, 0, 0)
            ]))
            .is_empty()
        );
        assert!(goroutines_blocked(&series(vec![sample(0, 0.0, 12, 0, 0)])).is_empty());
        assert!(
            goroutines_blocked(&series(vec![
                sample(0, 0.0, 12, 0, 0),
                sample(1, 0.5, 12, 0, 0)
            ]))
            .is_empty()
        );
        assert!(
            goroutines_blocked(&series(vec![
                sample(0, 0.0, 0, 0, 50),
                sample(1, 2.0, 0, 0, 90)
            ]))
            .is_empty()
        );
    }

    #[test]
    fn group_descriptions_read_naturally() {
        assert_eq!(
            group_description("socket tcp CLOSE_WAIT"),
            "tcp sockets in CLOSE_WAIT"
        );
        assert_eq!(group_description("socket unknown"), "unknown sockets");
        assert_eq!(group_description("timerfd"), "timerfds");
        assert_eq!(group_description("regular_file"), "regular files");
    }

    #[test]
    fn severities_order_from_info_to_critical() {
        assert!(Severity::Critical > Severity::Warning && Severity::Warning > Severity::Info);
        assert_eq!(
            serde_json::to_string(&Severity::Warning).unwrap(),
            "\"warning\""
        );
    }

    #[test]
    fn memory_findings_say_how_much_is_go_heap_and_that_free_heap_is_no_leak() {
        let heap = GoHeap {
            heap_in_use_bytes: 300 << 20,
            heap_free_bytes: 500 << 20,
            heap_released_bytes: 10 << 20,
            total_alloc_bytes: 9 << 30,
            total_free_bytes: (9 << 30) - (250 << 20),
            heap_alloc_bytes: 250 << 20,
            mapped_ready_bytes: 900 << 20,
            heap_live_bytes: 250 << 20,
            gogc: 100,
            memory_limit_bytes: i64::MAX,
        };
        assert_eq!(
            go_heap_clause(Some(&heap)),
            "; the Go heap has 300.0 MiB in use (250.0 MiB of live and not yet collected \
             objects) and 500.0 MiB of freed heap the runtime keeps without returning it to \
             the OS (resident, reused before the heap grows: that part is not a leak)"
        );
        assert_eq!(go_heap_clause(None), "");
    }

    #[test]
    fn goroutines_left_out_of_a_read_from_memory_are_said() {
        let mut samples = vec![sample(0, 0.0, 12, 0, 10), sample(1, 1.0, 12, 0, 10)];
        assert_eq!(goroutines_inconsistent(&series(samples.clone())), None);
        samples[1].data.inconsistent = 3;
        let finding = goroutines_inconsistent(&series(samples)).unwrap();
        assert_eq!(finding.severity, Severity::Info);
        assert!(
            finding.message.starts_with(
                "3 of 26 goroutines changed every time they were read from memory (sample 2,"
            ),
            "{}",
            finding.message
        );
        assert_eq!(finding.evidence["perSample"], json!([0, 3]));
    }
}
