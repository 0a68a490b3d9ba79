//! `procshot`: the command-line interface over the capture engine.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use procshot::analysis::{Finding, Summary};
use procshot::capture::{self, CaptureKind, CaptureOptions};
use procshot::error::exit_code;
use procshot::locate::ids::{ContainerId, PodUid};
use procshot::locate::{self, LocateOptions};
use procshot::{report, termination};

/// Capture the evidence of a sick process (open fds, threads, memory) before it is restarted.
#[derive(Debug, Parser)]
#[command(name = "procshot", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sample a live process's fds, threads and memory into a capture directory.
    Capture(CaptureArgs),
    /// Re-analyze a capture directory and rewrite summary.json, report.md and report.html.
    Report {
        /// The capture directory.
        dir: PathBuf,
    },
    /// Find the host pids of a Kubernetes container from its pod UID and container ID, by
    /// scanning /proc/*/cgroup, and write them to a JSON file.
    Locate(LocateArgs),
}

#[derive(Debug, clap::Args)]
struct CaptureArgs {
    /// The process to capture.
    #[arg(
        long,
        required_unless_present = "target_file",
        conflicts_with = "target_file"
    )]
    pid: Option<i32>,
    /// Capture the main process named by a target.json written by `procshot locate`.
    #[arg(long, value_name = "FILE")]
    target_file: Option<PathBuf>,
    /// Also write a compact summary (at most 4 KiB of JSON) for a Kubernetes termination
    /// message, for example /dev/termination-log; written on failure too.
    #[arg(long, value_name = "FILE")]
    termination_summary: Option<PathBuf>,
    /// Where to write the capture (must not exist or be empty).
    /// Default: ./procshot-PID-TIMESTAMP.
    #[arg(long)]
    out: Option<PathBuf>,
    /// How many samples to take; trends need at least 2.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    samples: u32,
    /// Time between the starts of two samples (`500ms`, `2s`, `1m`).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// What to capture, comma-separated, from fds, threads, memory.
    #[arg(
        long = "capture",
        default_value = "fds,threads,memory",
        value_delimiter = ','
    )]
    captures: Vec<CaptureKind>,
    /// Give up after this long: samples not taken by then are skipped and the capture is
    /// marked partial. Default: the sampling time plus one minute.
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// Where procfs is mounted (a node's /proc mounted elsewhere, for example).
    #[arg(long, default_value = "/proc")]
    proc_root: PathBuf,
    /// Where cgroup filesystems are mounted, when they are not where /proc/self/mountinfo says.
    #[arg(long)]
    cgroup_root: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct LocateArgs {
    /// The pod's UID (metadata.uid; for a static pod, its kubernetes.io/config.hash
    /// annotation).
    #[arg(long, value_name = "UID")]
    pod_uid: PodUid,
    /// The container's ID as the pod status shows it: containerd://, cri-o:// or docker://
    /// and 64 hex digits.
    #[arg(long, value_name = "RUNTIME://ID")]
    container_id: ContainerId,
    /// Where to write the result (JSON; replaced if it exists).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Where procfs is mounted (the node's /proc: the pod needs hostPID: true).
    #[arg(long, default_value = "/proc")]
    proc_root: PathBuf,
    /// Keep scanning this long while the container is not found (it may be starting).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Capture(args) => run_capture(args),
        Command::Report { dir } => run_report(&dir),
        Command::Locate(args) => run_locate(args),
    }
}

fn run_capture(args: CaptureArgs) -> ExitCode {
    let termination = args.termination_summary.clone();
    let report_failure = |message: String, pid: Option<i32>, code: u8| {
        eprintln!("procshot: error: {message}");
        if let Some(path) = &termination
            && let Err(e) = termination::write(path, &termination::failed(message, pid))
        {
            eprintln!("procshot: error: {e}");
        }
        ExitCode::from(code)
    };
    let pid = match (&args.target_file, args.pid) {
        (Some(file), _) => match locate::read_target(file) {
            Ok(target) => target.main_pid,
            Err(e) => return report_failure(e.to_string(), None, e.exit_code()),
        },
        (None, Some(pid)) => pid,
        (None, None) => unreachable!("clap requires --pid or --target-file"),
    };
    let samples = args.samples as usize;
    let mut captures = args.captures;
    captures.sort();
    captures.dedup();
    let out = args.out.unwrap_or_else(|| {
        PathBuf::from(format!(
            "procshot-{pid}-{}",
            chrono::Local::now().format("%Y%m%dT%H%M%S")
        ))
    });
    let options = CaptureOptions {
        pid,
        out,
        samples,
        interval: args.interval,
        captures,
        deadline: args
            .timeout
            .unwrap_or_else(|| CaptureOptions::default_deadline(samples, args.interval)),
        proc_root: args.proc_root,
        cgroup_root: args.cgroup_root,
    };
    match capture::run(&options, &mut |line| eprintln!("procshot: {line}")) {
        Ok(outcome) => {
            print_summary(&outcome.summary, &outcome.dir);
            if let Some(path) = &termination
                && let Err(e) =
                    termination::write(path, &termination::from_summary(&outcome.summary, pid))
            {
                eprintln!("procshot: error: {e}");
                return ExitCode::from(e.exit_code());
            }
            if outcome.summary.partial.is_some() {
                ExitCode::from(exit_code::PARTIAL)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => report_failure(e.to_string(), Some(pid), e.exit_code()),
    }
}

fn run_report(dir: &Path) -> ExitCode {
    match report::rerender(dir) {
        Ok(summary) => {
            print_summary(&summary, dir);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("procshot: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run_locate(args: LocateArgs) -> ExitCode {
    let options = LocateOptions {
        pod_uid: args.pod_uid,
        container_id: args.container_id,
        proc_root: args.proc_root,
        timeout: args.timeout,
    };
    let located = match locate::locate(&options, &mut |line| eprintln!("procshot: {line}")) {
        Ok(located) => located,
        Err(e) => {
            eprintln!("procshot: error: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    if let Err(e) = locate::write_target(&args.out, &located) {
        eprintln!("procshot: error: {e}");
        return ExitCode::from(e.exit_code());
    }
    println!("{}", located.summary(&args.out));
    ExitCode::SUCCESS
}

fn print_summary(summary: &Summary, dir: &Path) {
    if let Some(reason) = &summary.partial {
        println!("PARTIAL capture: {reason}");
    }
    if summary.findings.is_empty() {
        println!(
            "no findings for pid {}: nothing crossed a threshold",
            summary.pid
        );
    } else {
        println!("findings for pid {}:", summary.pid);
        for Finding {
            severity,
            code,
            message,
            ..
        } in &summary.findings
        {
            println!("  {:<8} {code}: {message}", severity.name().to_uppercase());
        }
    }
    println!("report: {}", dir.join("report.html").display());
    println!(
        "        {} (and summary.json, manifest.json)",
        dir.join("report.md").display()
    );
}
