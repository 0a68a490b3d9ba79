//! `procshot`: the command-line interface over the capture engine's commands. The
//! arguments of `capture` and `locate` are the shared ones (`procshot-api`), which the
//! operator renders into capture pods; what they carry as text is checked here, right
//! after parsing, as a usage error.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser, Subcommand};
use procshot_api::{Artifact, CaptureArgs, LocateArgs};

use procshot::analysis::{Finding, Summary};
use procshot::captures::CaptureKind;
use procshot::captures::coredump::CoreOptions;
use procshot::captures::goroutines::{GoroutinesFrom, PprofOptions};
use procshot::captures::stacks::StacksOptions;
use procshot::commands::capture::{self, CaptureOptions, CaptureOutcome};
use procshot::commands::locate::ids::{ContainerId, PodUid};
use procshot::commands::locate::{self, LocateOptions};
use procshot::commands::upload::hold::{self, HoldEnd};
use procshot::commands::upload::{self, Destination, Session, UploadOptions};
use procshot::commands::{report, termination};
use procshot::error::{UploadError, exit_code};
use procshot::units;

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
    /// Write one file of a capture directory to stdout (how `kubectl procshot download`
    /// copies a capture out of a capture pod, whose image has no shell or tar).
    Cat {
        /// The capture directory.
        dir: PathBuf,
        /// The file, as manifest.json lists it (or manifest.json itself).
        name: String,
    },
    /// Turn a crashed container's log (a kubelet CRI log file or plain text) and how it
    /// ended into findings: the Go panic or fatal error with the program's own function,
    /// other runtimes' crash traces, OOM kills, deadly signals and exit codes.
    Postmortem(Box<PostmortemArgs>),
}

#[derive(Debug, clap::Args)]
struct PostmortemArgs {
    /// The container's log: /var/log/pods/<ns>_<pod>_<uid>/<container>/<restart>.log, a
    /// gzip'd rotation of it, or plain text (kubectl logs --previous > FILE).
    #[arg(long, value_name = "FILE")]
    log: PathBuf,
    /// Read at most this much of the log's end (`16MiB`, `1GiB`, bytes).
    #[arg(long, default_value = "16MiB", value_parser = units::parse_size)]
    max_log_bytes: u64,
    /// The container's exit code (lastState.terminated.exitCode).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    exit_code: Option<i32>,
    /// The kubelet's reason (lastState.terminated.reason): OOMKilled, Error, Completed, ….
    #[arg(long, value_name = "REASON")]
    reason: Option<String>,
    /// The signal that killed it (lastState.terminated.signal): 9, KILL or SIGKILL.
    #[arg(long, value_name = "SIGNAL", value_parser = procshot::commands::postmortem::exit::parse_signal)]
    signal: Option<i32>,
    /// When it ended (lastState.terminated.finishedAt, RFC 3339).
    #[arg(long, value_name = "TIME")]
    finished_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The container's memory limit (`256MiB`, bytes).
    #[arg(long, value_name = "SIZE", value_parser = units::parse_size)]
    memory_limit: Option<u64>,
    /// The cgroup's OOM kill counter after the end (memory.events oom_kill).
    #[arg(long, value_name = "N")]
    oom_kills: Option<u64>,
    /// The counter before the container ran (default 0: a container's own cgroup).
    #[arg(long, value_name = "N", requires = "oom_kills")]
    oom_kills_before: Option<u64>,
    /// The last working set seen before the end (`250MiB`, bytes), with --last-working-set-at.
    #[arg(long, value_name = "SIZE", value_parser = units::parse_size, requires = "last_working_set_at")]
    last_working_set: Option<u64>,
    /// When that working set was seen (RFC 3339).
    #[arg(long, value_name = "TIME", requires = "last_working_set")]
    last_working_set_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Where to write the post-mortem (must not exist or be empty).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Capture(args) => run_capture(*args),
        Command::Report { dir } => run_report(&dir),
        Command::Locate(args) => run_locate(args),
        Command::Upload(args) => run_upload(args),
        Command::Cat { dir, name } => run_cat(&dir, &name),
        Command::Postmortem(args) => run_postmortem(*args),
    }
}

fn run_postmortem(args: PostmortemArgs) -> ExitCode {
    use procshot::commands::postmortem::{self, ContainerExit, LastMemorySample, OomKills};
    let options = postmortem::PostmortemOptions {
        exit: ContainerExit {
            exit_code: args.exit_code,
            signal: args.signal,
            reason: args.reason,
            finished_at: args.finished_at,
            memory_limit_bytes: args.memory_limit,
            oom_kills: args.oom_kills.map(|after| OomKills {
                before: args.oom_kills_before.unwrap_or(0),
                after,
            }),
        },
        memory: args
            .last_working_set
            .zip(args.last_working_set_at)
            .map(|(bytes, taken_at)| LastMemorySample {
                taken_at,
                working_set_bytes: bytes,
                limit_bytes: args.memory_limit,
            }),
        log: args.log,
        max_log_bytes: args.max_log_bytes,
        out: args.out,
    };
    match postmortem::run(&options) {
        Ok(postmortem) => {
            print_findings(
                &postmortem.findings,
                &format!("the log {}", options.log.display()),
                &options.out,
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("procshot: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run_capture(args: CaptureArgs) -> ExitCode {
    let upload = checked_upload(&args);
    let captures = checked_captures(&args);
    let termination = args.termination_summary.clone();
    let pid = match target_pid(&args) {
        Ok(pid) => pid,
        Err(failure) => return failure.report(termination.as_deref()),
    };
    let options = capture_options(args, pid, captures);
    let started = Instant::now();
    let outcome = match capture::run(&options, &mut progress) {
        Ok(outcome) => outcome,
        Err(e) => {
            let failure = Failure {
                message: e.to_string(),
                pid: Some(pid),
                code: e.exit_code(),
            };
            return failure.report(termination.as_deref());
        }
    };
    print_summary(&outcome.summary, &outcome.dir);
    let uploaded = upload.as_ref().map(|upload| upload.run(&outcome.dir));
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
    capture_exit(
        &outcome,
        uploaded.as_ref(),
        upload.as_ref(),
        started + options.deadline,
    )
}

/// A capture that failed before writing anything: what the CLI and the termination
/// summary say of it.
struct Failure {
    message: String,
    pid: Option<i32>,
    code: u8,
}

impl Failure {
    /// Prints the failure, writes it as the termination summary (at `termination`), and
    /// returns its exit code.
    fn report(self, termination: Option<&Path>) -> ExitCode {
        eprintln!("procshot: error: {}", self.message);
        if let Some(path) = termination
            && let Err(e) = termination::write(path, &termination::failed(self.message, self.pid))
        {
            eprintln!("procshot: error: {e}");
        }
        ExitCode::from(self.code)
    }
}

/// `--upload` and its flags, checked.
struct CaptureUpload {
    destination: Destination,
    session: Option<Session>,
    timeout: Duration,
    hold_on_failure: bool,
}

impl CaptureUpload {
    /// Uploads the capture in `dir` and prints what was uploaded.
    fn run(&self, dir: &Path) -> Result<Vec<Artifact>, UploadError> {
        let options = UploadOptions {
            dir: dir.to_path_buf(),
            destination: self.destination.clone(),
            session: self.session.clone(),
            timeout: self.timeout,
        };
        report_upload(upload::upload(&options, &mut progress))
    }
}

/// The upload `--upload` asks for, parsed as `procshot upload` parses its `--to` and
/// `--session`; a bad one is a usage error.
fn checked_upload(args: &CaptureArgs) -> Option<CaptureUpload> {
    let url = args.upload.as_ref()?;
    let destination = url
        .parse::<Destination>()
        .unwrap_or_else(|e| usage_error("capture", "--upload <URL>", url, e));
    let session = args.session.as_ref().map(|text| {
        text.parse::<Session>()
            .unwrap_or_else(|e| usage_error("capture", "--session <NAMESPACE/NAME>", text, e))
    });
    Some(CaptureUpload {
        destination,
        session,
        timeout: args.upload_timeout.unwrap_or(upload::DEFAULT_TIMEOUT),
        hold_on_failure: args.hold_on_upload_failure,
    })
}

/// The kinds to capture, in their order, once each: `--go-pprof` adds goroutines.
fn checked_captures(args: &CaptureArgs) -> Vec<CaptureKind> {
    let mut captures = args.captures.clone();
    if args.go_pprof.is_some() {
        captures.push(CaptureKind::Goroutines);
    }
    captures.sort();
    captures.dedup();
    captures
}

/// The pid to capture: `--pid`, or the main process of `--target-file`.
fn target_pid(args: &CaptureArgs) -> Result<i32, Failure> {
    match (&args.target_file, args.pid) {
        (Some(file), _) => locate::read_target(file)
            .map(|target| target.main_pid)
            .map_err(|e| Failure {
                message: e.to_string(),
                pid: None,
                code: e.exit_code(),
            }),
        (None, Some(pid)) => Ok(pid),
        (None, None) => unreachable!("clap requires --pid or --target-file"),
    }
}

/// What the engine is asked to capture.
fn capture_options(args: CaptureArgs, pid: i32, captures: Vec<CaptureKind>) -> CaptureOptions {
    let samples = args.samples as usize;
    let out = args.out.unwrap_or_else(|| {
        PathBuf::from(format!(
            "procshot-{pid}-{}",
            chrono::Local::now().format("%Y%m%dT%H%M%S")
        ))
    });
    CaptureOptions {
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
        goroutines: match args.go_pprof {
            Some(address) => GoroutinesFrom::Pprof(PprofOptions {
                address,
                request_timeout: args.go_pprof_timeout,
                max_bytes: args.go_pprof_max_bytes,
            }),
            None => GoroutinesFrom::Memory {
                max_stop: args.goroutines_max_stop,
            },
        },
        stacks: StacksOptions {
            max_stop: args.stack_max_stop,
        },
        core: CoreOptions {
            max_pause: args.core_max_pause,
            max_bytes: args.core_max_bytes,
            zstd_level: args.core_zstd_level,
            threads: args
                .core_threads
                .map_or_else(|| CoreOptions::default().threads, |n| n as usize),
        },
    }
}

/// The exit code of a capture that wrote its directory: a failed upload first (after
/// holding on, when asked, until `deadline`), then a partial capture.
fn capture_exit(
    outcome: &CaptureOutcome,
    uploaded: Option<&Result<Vec<Artifact>, UploadError>>,
    upload: Option<&CaptureUpload>,
    deadline: Instant,
) -> ExitCode {
    if let Some(Err(_)) = uploaded {
        if upload.is_some_and(|u| u.hold_on_failure) {
            hold_until(deadline, &outcome.dir);
        }
        return ExitCode::from(exit_code::UPLOAD_FAILED);
    }
    if outcome.partial.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit_code::PARTIAL)
    }
}

/// Exits with a usage error (exit code 2) for the value of `flag` of `subcommand`, worded
/// as clap words the values it parses itself.
fn usage_error(subcommand: &str, flag: &str, value: &str, error: impl Display) -> ! {
    let mut cli = Cli::command();
    cli.build();
    let command = cli
        .find_subcommand_mut(subcommand)
        .expect("procshot has this subcommand");
    command
        .error(
            clap::error::ErrorKind::ValueValidation,
            format!("invalid value '{value}' for '{flag}': {error}"),
        )
        .exit()
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

fn run_cat(dir: &Path, name: &str) -> ExitCode {
    match procshot::commands::cat::cat(dir, name, &mut std::io::stdout().lock()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("procshot: error: {e}");
            ExitCode::from(e.exit_code())
        }
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
        pod_uid: args
            .pod_uid
            .parse::<PodUid>()
            .unwrap_or_else(|e| usage_error("locate", "--pod-uid <UID>", &args.pod_uid, e)),
        container_id: args
            .container_id
            .parse::<ContainerId>()
            .unwrap_or_else(|e| {
                usage_error(
                    "locate",
                    "--container-id <RUNTIME://ID>",
                    &args.container_id,
                    e,
                )
            }),
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
    print_findings(&summary.findings, &format!("pid {}", summary.pid), dir);
}

/// The findings of `what` and where the reports are.
fn print_findings(findings: &[Finding], what: &str, dir: &Path) {
    if findings.is_empty() {
        println!("no findings for {what}: nothing crossed a threshold");
    } else {
        println!("findings for {what}:");
        for Finding {
            severity,
            code,
            message,
            ..
        } in findings
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
