//! Builds the [`Document`] shared by both report formats.

use std::collections::BTreeMap;

use super::{CaptureInfo, Chart, Document, Section, Table};
use crate::analysis::{Growth, SampleCounts, Summary};
use crate::captures::Series;
use crate::captures::fds::FdSample;
use crate::captures::goroutines::{self, GoroutineSample};
use crate::captures::memory::{self, MemorySample};
use crate::captures::stacks::{StacksCapture, output};
use crate::captures::threads::ThreadSample;
use crate::series::CaptureData;
use crate::units;

/// Rows in the longest tables (threads, peers, mappings).
const TOP_ROWS: usize = 20;
/// Series in one chart of fd groups.
const MAX_CHART_SERIES: usize = 6;

pub(super) fn document(info: &CaptureInfo<'_>, summary: &Summary, data: &CaptureData) -> Document {
    let target = info.target;
    let mut sections = vec![target_section(info)];
    if summary.samples.len() >= 2 {
        sections.push(trends_section(summary));
    }
    sections.push(samples_section(summary));
    if let Some(last) = data.fds.as_ref().and_then(|s| s.samples.last()) {
        sections.push(fds_section(&last.data));
        if let Some(peers) = peers_section(&last.data) {
            sections.push(peers);
        }
    }
    if let Some(last) = data.threads.as_ref().and_then(|s| s.samples.last()) {
        sections.push(threads_section(&last.data));
    }
    if let Some(last) = data.memory.as_ref().and_then(|s| s.samples.last()) {
        sections.extend(memory_sections(&last.data));
    }
    if let Some(series) = &data.goroutines {
        sections.push(goroutines_section(series));
    }
    if let Some(stacks) = &data.stacks {
        sections.push(stacks_section(stacks));
    }
    Document {
        title: format!("procshot: pid {} ({})", target.pid, target.name),
        subtitle: format!(
            "{} of {} sample(s), {} apart, taken {}",
            info.samples_taken,
            info.samples_requested,
            units::seconds(info.interval_seconds),
            info.started_at.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        partial: summary.partial.clone(),
        findings: summary.findings.clone(),
        sections,
    }
}

fn table(headers: &[&str], rows: Vec<Vec<String>>) -> Option<Table> {
    Some(Table {
        headers: headers.iter().map(|h| h.to_string()).collect(),
        rows,
    })
}

fn opt_bytes(value: Option<u64>) -> String {
    value.map_or_else(|| "–".to_string(), units::bytes)
}

fn target_section(info: &CaptureInfo<'_>) -> Section {
    let t = info.target;
    let mut rows = vec![
        vec!["pid".into(), t.pid.to_string()],
        vec!["name".into(), t.name.clone()],
        vec![
            "executable".into(),
            t.exe.clone().unwrap_or_else(|| "(not readable)".into()),
        ],
        vec!["command line".into(), t.command_line.join(" ")],
        vec![
            "started".into(),
            t.start_time.map_or("–".into(), |s| {
                s.format("%Y-%m-%d %H:%M:%S UTC").to_string()
            }),
        ],
        vec!["uid".into(), t.uid.to_string()],
    ];
    if t.ns_pid.len() > 1 {
        rows.push(vec![
            "pid in its namespaces".into(),
            t.ns_pid
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(" → "),
        ]);
    }
    rows.extend(t.cgroups.iter().map(|c| vec!["cgroup".into(), c.clone()]));
    if let Some(go) = info.go_build_info {
        rows.push(vec!["Go".into(), go.go_version.clone()]);
        if let Some(main) = &go.main {
            rows.push(vec![
                "Go main module".into(),
                format!("{} {}", main.path, main.version),
            ]);
        }
        if let Some(revision) = go.settings.get("vcs.revision") {
            rows.push(vec!["Go vcs.revision".into(), revision.clone()]);
        }
        rows.push(vec![
            "Go dependencies".into(),
            format!("{} (all in manifest.json)", go.deps.len()),
        ]);
    }
    rows.push(vec!["captured by".into(), info.captured_by.clone()]);
    Section {
        title: "Target".into(),
        table: table(&["", ""], rows),
        ..Section::default()
    }
}

fn trends_section(summary: &Summary) -> Section {
    let rows: Vec<Vec<String>> = summary
        .growth
        .iter()
        .filter(|g| g.delta != 0)
        .map(growth_row)
        .collect();
    Section {
        title: "Trends".into(),
        note: rows
            .is_empty()
            .then(|| "Nothing changed between the samples.".to_string()),
        charts: trend_charts(summary),
        table: (!rows.is_empty()).then(|| Table {
            headers: ["metric", "per sample", "change", "rate"]
                .map(String::from)
                .to_vec(),
            rows,
        }),
    }
}

/// A chart of every trend the samples have: fds (and the fd groups that changed),
/// threads, RSS, the cgroup's working set.
fn trend_charts(summary: &Summary) -> Vec<Chart> {
    let x: Vec<f64> = summary.samples.iter().map(|s| s.offset_seconds).collect();
    let values = |f: &dyn Fn(&SampleCounts) -> Option<u64>| -> Option<Vec<f64>> {
        summary
            .samples
            .iter()
            .map(|s| f(s).map(|v| v as f64))
            .collect()
    };
    let last = summary.samples.last();
    let chart = |title: &str, name: &str, values: Vec<f64>, bytes: bool| Chart {
        title: title.into(),
        x: x.clone(),
        series: vec![(name.into(), values)],
        bytes,
        limit: None,
    };
    let mut charts = Vec::new();
    if let Some(total) = values(&|s| s.fds.as_ref().map(|f| f.total)) {
        let limit = last.and_then(|s| s.fds.as_ref()?.soft_limit);
        let peak = total.iter().cloned().fold(0.0, f64::max);
        charts.push(Chart {
            // Only draw the limit when it is close enough to matter on the same scale.
            limit: limit
                .map(|l| l as f64)
                .filter(|l| peak >= l * 0.5)
                .map(|l| ("soft limit".into(), l)),
            ..chart("Open fds", "fds", total, false)
        });
        charts.extend(fd_groups_chart(summary, &x));
    }
    if let Some(threads) = values(&|s| s.threads.as_ref().map(|t| t.total)) {
        charts.push(chart("Threads", "threads", threads, false));
    }
    if let Some(rss) = values(&|s| s.memory.as_ref()?.rss_bytes) {
        charts.push(chart("Resident memory (RSS)", "RSS", rss, true));
    }
    if let Some(working_set) = values(&|s| s.memory.as_ref()?.cgroup_working_set_bytes) {
        let limit = last.and_then(|s| s.memory.as_ref()?.cgroup_limit_bytes);
        charts.push(Chart {
            limit: limit.map(|l| ("limit".into(), l as f64)),
            ..chart("Cgroup working set", "working set", working_set, true)
        });
    }
    charts
}

/// The fd groups that changed between the samples, at most [`MAX_CHART_SERIES`].
fn fd_groups_chart(summary: &Summary, x: &[f64]) -> Option<Chart> {
    let mut changed: Vec<_> = summary
        .growth
        .iter()
        .filter_map(|g| Some((g.metric.strip_prefix("fds: ")?, g)))
        .filter(|(_, g)| g.delta != 0)
        .collect();
    changed.truncate(MAX_CHART_SERIES);
    (!changed.is_empty()).then(|| Chart {
        title: "Fds by kind (changed groups)".into(),
        x: x.to_vec(),
        series: changed
            .iter()
            .map(|(group, g)| {
                (
                    group.to_string(),
                    g.values.iter().map(|v| *v as f64).collect(),
                )
            })
            .collect(),
        bytes: false,
        limit: None,
    })
}

/// One row of the trends table: the metric, its values, its change and its rate.
fn growth_row(g: &Growth) -> Vec<String> {
    let bytes = g.metric.ends_with("Bytes");
    let fmt = |v: u64| {
        if bytes {
            units::bytes(v)
        } else {
            units::count(v)
        }
    };
    vec![
        g.metric.clone(),
        g.values
            .iter()
            .map(|v| fmt(*v))
            .collect::<Vec<_>>()
            .join(" → "),
        if bytes {
            format!(
                "{}{}",
                if g.delta < 0 { "-" } else { "+" },
                units::bytes(g.delta.unsigned_abs())
            )
        } else {
            format!("{:+}", g.delta)
        },
        if bytes {
            format!("{}/s", units::bytes(g.per_second.abs() as u64))
        } else {
            units::rate(g.per_second)
        },
    ]
}

fn samples_section(summary: &Summary) -> Section {
    let rows = summary
        .samples
        .iter()
        .map(|s| {
            vec![
                (s.index + 1).to_string(),
                format!("+{:.1} s", s.offset_seconds),
                s.fds.as_ref().map_or("–".into(), |f| units::count(f.total)),
                s.threads
                    .as_ref()
                    .map_or("–".into(), |t| units::count(t.total)),
                opt_bytes(s.memory.as_ref().and_then(|m| m.rss_bytes)),
                opt_bytes(s.memory.as_ref().and_then(|m| m.cgroup_working_set_bytes)),
            ]
        })
        .collect();
    Section {
        title: "Samples".into(),
        table: table(
            &["#", "at", "fds", "threads", "RSS", "cgroup working set"],
            rows,
        ),
        ..Section::default()
    }
}

fn fds_section(sample: &FdSample) -> Section {
    let mut groups: BTreeMap<String, u64> = BTreeMap::new();
    for entry in &sample.fds {
        *groups.entry(entry.group()).or_insert(0) += 1;
    }
    let mut rows: Vec<(String, u64)> = groups.into_iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let limit = |v: Option<u64>| v.map_or("unlimited".to_string(), units::count);
    Section {
        title: "File descriptors (last sample)".into(),
        note: Some(format!(
            "{} open; soft limit {}, hard limit {}; kernel fd table size {}{}.",
            units::count(sample.fds.len() as u64),
            limit(sample.limits.soft),
            limit(sample.limits.hard),
            units::count(u64::from(sample.fd_size)),
            if sample.vanished > 0 {
                format!("; {} closed while being read", sample.vanished)
            } else {
                String::new()
            }
        )),
        table: table(
            &["kind", "count"],
            rows.into_iter()
                .map(|(group, n)| vec![group, units::count(n)])
                .collect(),
        ),
        ..Section::default()
    }
}

fn peers_section(sample: &FdSample) -> Option<Section> {
    let mut peers: BTreeMap<(String, String), u64> = BTreeMap::new();
    for socket in sample.fds.iter().filter_map(|e| e.socket.as_ref()) {
        if let Some(remote) = &socket.remote {
            let key = (
                remote.clone(),
                format!(
                    "{} {}",
                    socket.protocol.name(),
                    socket.state.clone().unwrap_or_default()
                ),
            );
            *peers.entry(key).or_insert(0) += 1;
        }
    }
    if peers.is_empty() {
        return None;
    }
    let mut rows: Vec<_> = peers.into_iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    rows.truncate(TOP_ROWS);
    Some(Section {
        title: "Connected sockets by peer (last sample)".into(),
        table: table(
            &["peer", "protocol and state", "sockets"],
            rows.into_iter()
                .map(|((peer, state), n)| vec![peer, state, units::count(n)])
                .collect(),
        ),
        ..Section::default()
    })
}

fn goroutines_section(series: &Series<GoroutineSample>) -> Section {
    let trends = goroutines::trends(series);
    let total = series.samples.last().map_or(0, |s| s.data.total);
    let rows = trends
        .iter()
        .take(TOP_ROWS)
        .map(|t| {
            let g = t.group;
            vec![
                units::count(g.count),
                t.counts
                    .iter()
                    .map(|c| units::count(*c))
                    .collect::<Vec<_>>()
                    .join(" → "),
                match g.max_wait_minutes {
                    Some(m) => format!("{}, up to {m} min", g.state),
                    None => g.state.clone(),
                },
                g.function().to_string(),
                g.site().map(|f| f.short_location()).unwrap_or_default(),
                g.created_by
                    .as_ref()
                    .map(|f| f.function.clone())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    Section {
        title: "Goroutines (last sample, biggest groups first)".into(),
        note: Some(format!(
            "{} goroutines in {} groups of the same state and stack; every stack is in goroutines.txt.",
            units::count(total),
            units::count(trends.len() as u64)
        )),
        table: table(
            &[
                "goroutines",
                "per sample",
                "state",
                "function",
                "at",
                "created by",
            ],
            rows,
        ),
        ..Section::default()
    }
}

fn threads_section(sample: &ThreadSample) -> Section {
    let mut threads: Vec<_> = sample.threads.iter().collect();
    threads.sort_by(|a, b| {
        (b.user_seconds + b.system_seconds).total_cmp(&(a.user_seconds + a.system_seconds))
    });
    let mut states: BTreeMap<&str, u64> = BTreeMap::new();
    for t in &sample.threads {
        *states.entry(t.state.as_str()).or_insert(0) += 1;
    }
    let rows = threads
        .iter()
        .take(TOP_ROWS)
        .map(|t| {
            vec![
                t.tid.to_string(),
                t.name.clone(),
                t.state.clone(),
                t.wchan.clone().unwrap_or_default(),
                t.syscall.clone().unwrap_or_default(),
                format!("{:.2}", t.user_seconds),
                format!("{:.2}", t.system_seconds),
                format!(
                    "{} / {}",
                    t.voluntary_switches.map_or("–".into(), units::count),
                    t.involuntary_switches.map_or("–".into(), units::count)
                ),
            ]
        })
        .collect();
    Section {
        title: "Threads (last sample, busiest first)".into(),
        note: Some(format!(
            "{} threads by state: {}.",
            units::count(sample.threads.len() as u64),
            states
                .iter()
                .map(|(s, n)| format!("{s} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        table: table(
            &[
                "tid",
                "name",
                "state",
                "wchan",
                "syscall",
                "user s",
                "system s",
                "switches (vol / invol)",
            ],
            rows,
        ),
        ..Section::default()
    }
}

fn memory_sections(sample: &MemorySample) -> Vec<Section> {
    let s = &sample.status;
    let fields = [
        ("VmRSS (resident)", s.vm_rss),
        ("RssAnon", s.rss_anon),
        ("RssFile", s.rss_file),
        ("RssShmem", s.rss_shmem),
        ("VmHWM (peak resident)", s.vm_hwm),
        ("VmSize (virtual)", s.vm_size),
        ("VmData", s.vm_data),
        ("VmSwap", s.vm_swap),
        ("VmPTE (page tables)", s.vm_pte),
    ];
    let mut sections = vec![Section {
        title: "Memory (last sample)".into(),
        note: sample.rollup.value().map(|r| {
            format!(
                "smaps_rollup: Pss {}, Anonymous {}, Swap {}.",
                opt_bytes(r.get("Pss").copied()),
                opt_bytes(r.get("Anonymous").copied()),
                opt_bytes(r.get("Swap").copied())
            )
        }),
        table: table(
            &["field", "value"],
            fields
                .iter()
                .map(|(name, v)| vec![name.to_string(), opt_bytes(*v)])
                .collect(),
        ),
        ..Section::default()
    }];
    if let Some(maps) = sample.mappings.value() {
        sections.push(Section {
            title: "Largest mappings by RSS".into(),
            note: Some(format!(
                "{} mappings in all.",
                units::count(maps.count as u64)
            )),
            table: table(
                &[
                    "address",
                    "perms",
                    "path",
                    "size",
                    "RSS",
                    "anonymous",
                    "swap",
                ],
                maps.top_by_rss
                    .iter()
                    .map(|m| {
                        vec![
                            m.address.clone(),
                            m.perms.clone(),
                            m.path.clone(),
                            units::bytes(m.size),
                            units::bytes(m.rss),
                            units::bytes(m.anonymous),
                            units::bytes(m.swap),
                        ]
                    })
                    .collect(),
            ),
            ..Section::default()
        });
    }
    let cgroup = match &sample.cgroup {
        memory::Readable::Read(c) => Section {
            title: "Cgroup memory".into(),
            table: table(
                &["", ""],
                vec![
                    vec!["cgroup".into(), format!("v{} {}", c.version, c.path)],
                    vec!["usage".into(), units::bytes(c.usage_bytes)],
                    vec!["working set".into(), units::bytes(c.working_set_bytes)],
                    vec![
                        "own limit".into(),
                        c.limit_bytes.map_or("none".into(), units::bytes),
                    ],
                    vec![
                        "effective limit".into(),
                        c.effective_limit.as_ref().map_or("none".into(), |l| {
                            format!("{} (set on {})", units::bytes(l.bytes), l.set_by.display())
                        }),
                    ],
                    vec!["peak".into(), opt_bytes(c.peak_bytes)],
                    vec![
                        "OOM kills".into(),
                        c.oom_kills.map_or("–".into(), units::count),
                    ],
                ],
            ),
            ..Section::default()
        },
        memory::Readable::Unavailable { unavailable } => Section {
            title: "Cgroup memory".into(),
            note: Some(format!("Not available: {unavailable}")),
            ..Section::default()
        },
    };
    sections.push(cgroup);
    sections
}

/// Groups of native stacks shown in the report (all are in stacks.txt).
const STACK_GROUPS: usize = 10;
/// Frames of a stack shown in the report.
const STACK_FRAMES: usize = 8;

fn stacks_section(stacks: &StacksCapture) -> Section {
    let groups = output::groups(stacks);
    let rows = groups
        .iter()
        .take(STACK_GROUPS)
        .map(|group| {
            let frames = match group.error() {
                Some(error) => format!("no stack: {error}"),
                None => {
                    let mut shown: Vec<String> = group
                        .frames()
                        .iter()
                        .take(STACK_FRAMES)
                        .map(|f| f.symbol.clone().unwrap_or_else(|| f.address.clone()))
                        .collect();
                    if group.frames().len() > STACK_FRAMES {
                        shown.push("…".into());
                    }
                    shown.join(" ← ")
                }
            };
            vec![group.threads.len().to_string(), group.names(), frames]
        })
        .collect();
    Section {
        title: "Native stacks (biggest groups)".into(),
        note: Some(format!(
            "{} threads in {} groups of identical stacks, captured in {:.0} ms; each thread was \
             stopped at most {:.3} ms, one at a time.{} Every group is in stacks.txt, every \
             thread in stacks.json.",
            units::count(stacks.threads.len() as u64),
            groups.len(),
            stacks.wall_ms,
            stacks.longest_stop_ms,
            stacks
                .incomplete
                .as_ref()
                .map(|r| format!(" Incomplete: {r}."))
                .unwrap_or_default()
        )),
        table: table(&["threads", "names", "stack (innermost first)"], rows),
        ..Section::default()
    }
}
