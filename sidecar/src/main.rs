//! `procshot`: the command-line interface over the capture engine.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use procshot_summary::Artifact;

use procshot::analysis::{Finding, Summary};
use procshot::capture::{self, CaptureKind, CaptureOptions};
use procshot::error::{UploadError, exit_code};
use procshot::goroutines::{PprofAddress, PprofOptions};
use procshot::locate::ids::{ContainerId, PodUid};
use procshot::locate::{self, LocateOptions};
use procshot::stacks::StacksOptions;
use procshot::upload::hold::{self, HoldEnd};
use procshot::upload::{self, Destination, Session, UploadOptions};
use procshot::{report, termination, units};

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
    Capture(Box<CaptureArgs>),
    /// Re-analyze a capture directory and rewrite summary.json, report.md and report.html.
    Report {
        /// The capture directory.
        dir: PathBuf,
    },
    /// Find the host pids of a Kubernetes container from its pod UID and container ID, by
    /// scanning /proc/*/cgroup, and write them to a JSON file.
    Locate(LocateArgs),
    /// Upload a capture directory to object storage (s3://, gs://, az://, file://), under
    /// PREFIX/NAMESPACE/SESSION/TIMESTAMP/; credentials come from the environment only.
    Upload(UploadArgs),
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
    /// What to capture, comma-separated, from fds, threads, memory, goroutines, stacks,
    /// core. fds, threads, memory and goroutines are sampled (goroutines are read from the
    /// Go program's memory, or from its pprof endpoint with --go-pprof, which adds
    /// goroutines by itself); stacks (the native stack of every thread, which stops each
    /// thread for a moment, one at a time) is taken once, after the last sample; core (an
    /// ELF core dump of the whole process, with every secret it holds) last of all, and is
    /// never in the default.
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
    /// The Go program's net/http/pprof address: PORT (127.0.0.1:PORT) or HOST:PORT, as
    /// seen from inside the target's network namespace (procshot connects from there).
    /// Adds the goroutines capture: the goroutine dump every sample, the heap profile once.
    #[arg(long, value_name = "ADDR")]
    go_pprof: Option<PprofAddress>,
    /// Give up one pprof request after this long (never beyond --timeout).
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration, requires = "go_pprof")]
    go_pprof_timeout: Duration,
    /// Refuse pprof answers larger than this (`64MiB`, `1GiB`, bytes).
    #[arg(long, default_value = "256MiB", value_parser = units::parse_size, requires = "go_pprof")]
    go_pprof_max_bytes: u64,
    /// goroutines from memory: stop every thread of the program for an exact read (running
    /// goroutines are then unwound from their threads' registers), waiting at most this
    /// long for them to stop (`5ms`, at most 1s). Without it the program is never stopped
    /// and racy reads are validated, retried, or counted as inconsistent.
    #[arg(long, value_name = "DUR", value_parser = parse_max_stop, conflicts_with = "go_pprof")]
    goroutines_max_stop: Option<Duration>,
    /// stacks: how long to wait for one thread to stop (`10ms`, `500us`, at most 1s); a
    /// thread that has not stopped by then (uninterruptible sleep) is left running and
    /// recorded without a stack. Once stopped, a thread is held only to copy its registers
    /// and at most 256 KiB of its stack, then released, before the next one is stopped.
    #[arg(long, default_value = "10ms", value_parser = parse_max_stop)]
    stack_max_stop: Duration,
    /// Where cgroup filesystems are mounted, when they are not where /proc/self/mountinfo says.
    #[arg(long)]
    cgroup_root: Option<PathBuf>,
    /// Upload the capture directory there once it is written: s3://BUCKET/PREFIX, gs://…,
    /// az://… or file:///DIR. Credentials come from the environment (AWS_*, GOOGLE_*,
    /// AZURE_*), never from the command line.
    #[arg(long, value_name = "URL")]
    upload: Option<Destination>,
    /// File the upload under NAMESPACE/NAME. Default: local/<capture directory's name>.
    #[arg(long, value_name = "NAMESPACE/NAME", requires = "upload")]
    session: Option<Session>,
    /// Give up the upload after this long. Default: 5m.
    #[arg(long, value_parser = humantime::parse_duration, requires = "upload")]
    upload_timeout: Option<Duration>,
    /// When the upload fails, keep running until SIGTERM/SIGINT or until --timeout has
    /// passed since the start, so that the files can be copied out (kubectl cp); then
    /// exit with the upload's failure.
    #[arg(long, requires = "upload")]
    hold_on_upload_failure: bool,
    /// Core dump: the longest the target may stay stopped (stopping it, reading registers,
    /// copying its memory). A copy that takes longer ends the core there, marked partial.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    core_max_pause: Duration,
    /// Core dump: refuse when the core would hold more memory than this (bytes, or with a
    /// K, M, G, T suffix in powers of 1024: 4G).
    #[arg(long, value_name = "BYTES", value_parser = units::parse_size)]
    core_max_bytes: Option<u64>,
    /// Core dump: zstd compression level, 1 (fastest) to 19.
    #[arg(long, default_value_t = procshot::core::DEFAULT_ZSTD_LEVEL, value_parser = clap::value_parser!(i32).range(1..=19))]
    core_zstd_level: i32,
    /// Core dump: threads that copy and compress. Default: the CPUs procshot may use.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    core_threads: Option<u32>,
}

#[derive(Debug, clap::Args)]
struct UploadArgs {
    /// The capture directory.
    #[arg(long, value_name = "DIR")]
    from: PathBuf,
    /// Where to: s3://BUCKET/PREFIX (AWS, or an S3-compatible server named by
    /// AWS_ENDPOINT_URL), gs://BUCKET/PREFIX, az://CONTAINER/PREFIX or file:///DIR.
    /// Credentials come from the environment (AWS_*, GOOGLE_*, AZURE_*), never from the
    /// command line.
    #[arg(long, value_name = "URL")]
    to: Destination,
    /// File the upload under NAMESPACE/NAME. Default: local/<capture directory's name>.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    session: Option<Session>,
    /// Give up after this long (checks, retries and every file included).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    upload_timeout: Duration,
    /// Also write the capture's termination summary with the uploaded files (or the
    /// upload's error) to FILE.
    #[arg(long, value_name = "FILE")]
    termination_summary: Option<PathBuf>,
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
        Command::Capture(args) => run_capture(*args),
        Command::Report { dir } => run_report(&dir),
        Command::Locate(args) => run_locate(args),
        Command::Upload(args) => run_upload(args),
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
    if args.go_pprof.is_some() {
        captures.push(CaptureKind::Goroutines);
    }
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
        goroutines_max_stop: args.goroutines_max_stop,
        go_pprof: args.go_pprof.map(|address| PprofOptions {
            address,
            request_timeout: args.go_pprof_timeout,
            max_bytes: args.go_pprof_max_bytes,
        }),
        stacks: StacksOptions {
            max_stop: args.stack_max_stop,
        },
        core: procshot::core::CoreOptions {
            max_pause: args.core_max_pause,
            max_bytes: args.core_max_bytes,
            zstd_level: args.core_zstd_level,
            threads: args.core_threads.map_or_else(
                || procshot::core::CoreOptions::default().threads,
                |n| n as usize,
            ),
        },
    };
    let started = Instant::now();
    let outcome = match capture::run(&options, &mut progress) {
        Ok(outcome) => outcome,
        Err(e) => return report_failure(e.to_string(), Some(pid), e.exit_code()),
    };
    print_summary(&outcome.summary, &outcome.dir);
    let uploaded = args.upload.map(|destination| {
        let options = UploadOptions {
            dir: outcome.dir.clone(),
            destination,
            session: args.session,
            timeout: args.upload_timeout.unwrap_or(upload::DEFAULT_TIMEOUT),
        };
        report_upload(upload::upload(&options, &mut progress))
    });
    if let Some(path) = &termination {
        let mut summary = termination::from_summary(&outcome.summary, pid);
        if let Some(uploaded) = &uploaded {
            summary = termination::with_upload(summary, uploaded);
        }
        if let Err(e) = termination::write(path, &summary) {
            eprintln!("procshot: error: {e}");
            return ExitCode::from(e.exit_code());
        }
    }
    if let Some(Err(_)) = uploaded {
        if args.hold_on_upload_failure {
            hold_until(started + options.deadline, &outcome.dir);
        }
        return ExitCode::from(exit_code::UPLOAD_FAILED);
    }
    if outcome.summary.partial.is_some() {
        ExitCode::from(exit_code::PARTIAL)
    } else {
        ExitCode::SUCCESS
    }
}

/// `--stack-max-stop`: a duration from 1µs to 1s.
fn parse_max_stop(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if duration.is_zero() || duration > Duration::from_secs(1) {
        return Err(format!(
            "{text} is not a sensible bound: give one from 1us to 1s (default 10ms)"
        ));
    }
    Ok(duration)
}

fn progress(line: &str) {
    eprintln!("procshot: {line}");
}

/// After a failed upload: keeps the process alive until SIGTERM/SIGINT or `until`.
fn hold_until(until: Instant, dir: &Path) {
    progress(&format!(
        "holding: the capture stays in {} until SIGTERM or SIGINT, at most {} more \
         (--hold-on-upload-failure)",
        dir.display(),
        humantime::format_duration(Duration::from_secs(
            until.saturating_duration_since(Instant::now()).as_secs()
        ))
    ));
    match hold::hold(until) {
        Ok(HoldEnd::Deadline) => progress("stopped holding: the capture's deadline passed"),
        Ok(end @ HoldEnd::Signal(_)) => progress(&format!("stopped holding: {end}")),
        Err(e) => eprintln!("procshot: error: cannot wait for a signal: {e}"),
    }
}

fn run_upload(args: UploadArgs) -> ExitCode {
    // Read the capture's summary first: a directory without one fails before any upload.
    let summary = match &args.termination_summary {
        Some(_) => match termination::from_capture_dir(&args.from) {
            Ok(summary) => Some(summary),
            Err(e) => {
                eprintln!("procshot: error: {e}");
                return ExitCode::from(e.exit_code());
            }
        },
        None => None,
    };
    let options = UploadOptions {
        dir: args.from,
        destination: args.to,
        session: args.session,
        timeout: args.upload_timeout,
    };
    let uploaded = report_upload(upload::upload(&options, &mut progress));
    if let (Some(path), Some(summary)) = (&args.termination_summary, summary)
        && let Err(e) = termination::write(path, &termination::with_upload(summary, &uploaded))
    {
        eprintln!("procshot: error: {e}");
        return ExitCode::from(e.exit_code());
    }
    match uploaded {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => ExitCode::from(e.exit_code()),
    }
}

/// Prints every uploaded file on stdout as `URL BYTES SHA256`, or the error on stderr.
fn report_upload(
    uploaded: Result<Vec<Artifact>, UploadError>,
) -> Result<Vec<Artifact>, UploadError> {
    match &uploaded {
        Ok(artifacts) => {
            for artifact in artifacts {
                println!("{} {} {}", artifact.url, artifact.bytes, artifact.sha256);
            }
        }
        Err(e) => eprintln!("procshot: error: {e}"),
    }
    uploaded
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
