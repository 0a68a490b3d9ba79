//! `goroutines.txt`: the last goroutine sample for people, groups biggest first, each with
//! its count in every sample and its stack as Go prints it.

use std::fmt::Write;

use super::{GoroutineSample, GoroutinesSource, trends};
use crate::captures::Series;
use crate::units;

/// Renders `goroutines.txt` (empty series: an empty string).
pub fn render(series: &Series<GoroutineSample>) -> String {
    let Some(last) = series.samples.last() else {
        return String::new();
    };
    let mut out = String::new();
    let totals: Vec<String> = series
        .samples
        .iter()
        .map(|s| units::count(s.data.total))
        .collect();
    let _ = writeln!(
        out,
        "goroutines of pid {}: {} in {} groups, sample {} of {} taken at {}",
        series.pid,
        units::count(last.data.total),
        units::count(last.data.groups.len() as u64),
        last.index + 1,
        series.samples.len(),
        last.taken_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    let _ = writeln!(out, "goroutines in each sample: {}", totals.join(" → "));
    match last.data.source {
        GoroutinesSource::Pprof => {
            let _ = writeln!(out, "read from the program's pprof endpoint");
        }
        GoroutinesSource::Memory => {
            let _ = write!(out, "read from the program's memory");
            if let Some(ms) = last.data.stopped_ms {
                let _ = write!(out, ", every thread stopped for {ms:.1} ms");
            }
            let left_out = last.data.inconsistent;
            if left_out > 0 {
                let _ = write!(
                    out,
                    "; {} goroutine{} changed every time {} read and {} left out",
                    units::count(left_out),
                    if left_out == 1 { "" } else { "s" },
                    if left_out == 1 { "it was" } else { "they were" },
                    if left_out == 1 { "is" } else { "are" },
                );
            }
            out.push('\n');
        }
    }
    let _ = writeln!(
        out,
        "groups: goroutines with the same state and stack, biggest first, with their count in each sample"
    );
    for trend in trends(series) {
        let group = trend.group;
        let mut state = group.state.clone();
        if let Some(minutes) = group.max_wait_minutes {
            let _ = write!(state, ", up to {minutes} minutes");
        }
        if group.locked_to_thread {
            state.push_str(", locked to thread");
        }
        let counts: Vec<String> = trend.counts.iter().map(|c| units::count(*c)).collect();
        let _ = write!(
            out,
            "\n{} goroutine{} [{state}] in {}",
            units::count(group.count),
            if group.count == 1 { "" } else { "s" },
            group.function()
        );
        if trend.counts.len() > 1 {
            let _ = write!(
                out,
                " — per sample: {} ({:+})",
                counts.join(" → "),
                trend.delta()
            );
        }
        out.push('\n');
        for frame in &group.frames {
            let _ = writeln!(
                out,
                "  {}\n  \t{}:{}",
                frame.function, frame.file, frame.line
            );
        }
        if group.elided {
            out.push_str("  ...additional frames elided...\n");
        }
        if let Some(creator) = &group.created_by {
            let _ = writeln!(
                out,
                "  created by {}\n  \t{}:{}",
                creator.function, creator.file, creator.line
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::captures::Sample;
    use crate::captures::goroutines::dump;

    fn sample(index: usize, text: &str) -> Sample<GoroutineSample> {
        let goroutines = dump::parse(text).unwrap();
        Sample {
            index,
            taken_at: chrono::DateTime::from_timestamp(1_800_000_000 + index as i64, 0).unwrap(),
            offset_seconds: index as f64,
            duration_ms: 1.0,
            data: GoroutineSample::of_dump(goroutines),
        }
    }

    const LEAK: &str = "goroutine ID [select]:\nruntime.gopark(0x0?)\n\t/go/src/runtime/proc.go:363 +0xd6\nmain.leakTicker()\n\t/app/main.go:38 +0x8a\ncreated by main.startLeaks\n\t/app/main.go:50 +0x2a\n\n";
    const MAIN: &str =
        "goroutine 1 [chan receive, 4 minutes]:\nmain.main()\n\t/app/main.go:20 +0x25\n\n";

    #[test]
    fn biggest_group_first_with_its_growth() {
        let leaks = |n: u64| {
            (10..10 + n)
                .map(|id| LEAK.replace("ID", &id.to_string()))
                .collect::<String>()
        };
        let mut series = Series::new(42);
        series
            .samples
            .push(sample(0, &format!("{MAIN}{}", leaks(1))));
        series
            .samples
            .push(sample(1, &format!("{MAIN}{}", leaks(3))));
        let text = render(&series);
        assert!(
            text.starts_with("goroutines of pid 42: 4 in 2 groups, sample 2 of 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "goroutines in each sample: 2 → 4\nread from the program's pprof endpoint\n"
            ),
            "{text}"
        );
        series.samples[1].data.source = GoroutinesSource::Memory;
        series.samples[1].data.inconsistent = 2;
        assert!(
            render(&series).contains(
                "\nread from the program's memory; 2 goroutines changed every time they were \
                 read and are left out\n"
            ),
            "{text}"
        );
        let leak = text
            .find("3 goroutines [select] in main.leakTicker — per sample: 1 → 3 (+2)")
            .unwrap();
        let main = text
            .find(
                "1 goroutine [chan receive, up to 4 minutes] in main.main — per sample: 1 → 1 (+0)",
            )
            .unwrap();
        assert!(leak < main, "{text}");
        assert!(
            text.contains("  created by main.startLeaks\n  \t/app/main.go:50\n"),
            "{text}"
        );
    }
}
