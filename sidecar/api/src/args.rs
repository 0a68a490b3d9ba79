//! The arguments of `procshot capture` and `procshot locate`, defined once: the CLI parses
//! them with clap (`#[command(flatten)]`), and the operator fills them in and renders them
//! to the capture pod's argv with [`CaptureArgs::to_argv`] and [`LocateArgs::to_argv`].
//! Rendering and parsing are tested against each other, so a flag renamed here changes
//! both sides at once, and a rendered flag the CLI does not take fails a test, not a pod.
//!
//! Values whose checks need the capture engine's own code (an upload URL, a session name, a
//! pod UID, a container ID) are carried as text and checked by the CLI right after parsing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::kind::CaptureKind;
use crate::pprof::PprofAddress;
use crate::size::parse_size;

/// The default zstd level of a core dump (fastest).
pub const DEFAULT_CORE_ZSTD_LEVEL: i32 = 1;

/// `procshot capture`: what to capture from which process, how often, and where the
/// results go.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct CaptureArgs {
    /// The process to capture.
    #[arg(
        long,
        required_unless_present = "target_file",
        conflicts_with = "target_file"
    )]
    pub pid: Option<i32>,
    /// Capture the main process named by a target.json written by `procshot locate`.
    #[arg(long, value_name = "FILE")]
    pub target_file: Option<PathBuf>,
    /// Also write a compact summary (at most 4 KiB of JSON) for a Kubernetes termination
    /// message, for example /dev/termination-log; written on failure too.
    #[arg(long, value_name = "FILE")]
    pub termination_summary: Option<PathBuf>,
    /// Where to write the capture (must not exist or be empty).
    /// Default: ./procshot-PID-TIMESTAMP.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// How many samples to take; trends need at least 2.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub samples: u32,
    /// Time between the starts of two samples (`500ms`, `2s`, `1m`).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
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
    pub captures: Vec<CaptureKind>,
    /// Give up after this long: samples not taken by then are skipped and the capture is
    /// marked partial. Default: the sampling time plus one minute.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Where procfs is mounted (a node's /proc mounted elsewhere, for example).
    #[arg(long, default_value = "/proc")]
    pub proc_root: PathBuf,
    /// Where cgroup filesystems are mounted, when they are not where /proc/self/mountinfo says.
    #[arg(long)]
    pub cgroup_root: Option<PathBuf>,
    /// The Go program's net/http/pprof address: PORT (127.0.0.1:PORT) or HOST:PORT, as
    /// seen from inside the target's network namespace (procshot connects from there).
    /// Adds the goroutines capture: the goroutine dump every sample, the heap profile once.
    #[arg(long, value_name = "ADDR")]
    pub go_pprof: Option<PprofAddress>,
    /// Give up one pprof request after this long (never beyond --timeout).
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration, requires = "go_pprof")]
    pub go_pprof_timeout: Duration,
    /// Refuse pprof answers larger than this (`64MiB`, `1GiB`, bytes).
    #[arg(long, default_value = "256MiB", value_parser = parse_size, requires = "go_pprof")]
    pub go_pprof_max_bytes: u64,
    /// goroutines from memory: stop every thread of the program for an exact read (running
    /// goroutines are then unwound from their threads' registers), waiting at most this
    /// long for them to stop (`5ms`, at most 1s). Without it the program is never stopped
    /// and racy reads are validated, retried, or counted as inconsistent.
    #[arg(long, value_name = "DUR", value_parser = parse_max_stop, conflicts_with = "go_pprof")]
    pub goroutines_max_stop: Option<Duration>,
    /// stacks: how long to wait for one thread to stop (`10ms`, `500us`, at most 1s); a
    /// thread that has not stopped by then (uninterruptible sleep) is left running and
    /// recorded without a stack. Once stopped, a thread is held only to copy its registers
    /// and at most 256 KiB of its stack, then released, before the next one is stopped.
    #[arg(long, default_value = "10ms", value_parser = parse_max_stop)]
    pub stack_max_stop: Duration,
    /// Core dump: the longest the target may stay stopped (stopping it, reading registers,
    /// copying its memory). A copy that takes longer ends the core there, marked partial.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub core_max_pause: Duration,
    /// Core dump: refuse when the core would hold more memory than this (bytes, or with a
    /// K, M, G, T suffix in powers of 1024: 4G).
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub core_max_bytes: Option<u64>,
    /// Core dump: zstd compression level, 1 (fastest) to 19.
    #[arg(long, default_value_t = DEFAULT_CORE_ZSTD_LEVEL, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub core_zstd_level: i32,
    /// Core dump: threads that copy and compress. Default: the CPUs procshot may use.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub core_threads: Option<u32>,
    /// Upload the capture directory there once it is written: s3://BUCKET/PREFIX, gs://…,
    /// az://… or file:///DIR. Credentials come from the environment (AWS_*, GOOGLE_*,
    /// AZURE_*), never from the command line.
    #[arg(long, value_name = "URL")]
    pub upload: Option<String>,
    /// File the upload under NAMESPACE/NAME. Default: local/<capture directory's name>.
    #[arg(long, value_name = "NAMESPACE/NAME", requires = "upload")]
    pub session: Option<String>,
    /// Give up the upload after this long. Default: 5m.
    #[arg(long, value_parser = humantime::parse_duration, requires = "upload")]
    pub upload_timeout: Option<Duration>,
    /// When the upload fails, keep running until SIGTERM/SIGINT or until --timeout has
    /// passed since the start, so that the files can be copied out (kubectl cp); then
    /// exit with the upload's failure.
    #[arg(long, requires = "upload")]
    pub hold_on_upload_failure: bool,
}

/// `--stack-max-stop`, `--goroutines-max-stop`: a duration from 1µs to 1s.
fn parse_max_stop(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if duration.is_zero() || duration > Duration::from_secs(1) {
        return Err(format!(
            "{text} is not a sensible bound: give one from 1us to 1s"
        ));
    }
    Ok(duration)
}

impl CaptureArgs {
    /// The arguments with every default of the CLI, capturing the process named by
    /// `target_file` (what a capture pod runs). The defaults are clap's, so they are
    /// defined once, above.
    pub fn for_target_file(target_file: impl Into<PathBuf>) -> Self {
        let target_file = target_file.into();
        let mut args = Self::from_argv(["--target-file=-"]).expect("the defaults parse");
        args.target_file = Some(target_file);
        args
    }

    /// Parses argv (without the program and subcommand names), as the CLI does.
    pub fn from_argv<I, T>(argv: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        #[derive(clap::Parser)]
        struct Command {
            #[command(flatten)]
            args: CaptureArgs,
        }
        let argv = std::iter::once(std::ffi::OsString::from("capture"))
            .chain(argv.into_iter().map(Into::into));
        <Command as clap::Parser>::try_parse_from(argv).map(|c| c.args)
    }

    /// Renders the arguments as the CLI takes them (`--samples=3`, …), without the
    /// subcommand. Flags that only matter with another one are rendered only with it: the
    /// pprof flags with `--go-pprof`, `--goroutines-max-stop` with `goroutines` read from
    /// memory, the upload flags with `--upload`, `--stack-max-stop` with `stacks` and the
    /// core flags with `core`.
    pub fn to_argv(&self) -> Vec<String> {
        let mut argv = Argv::default();
        argv.opt("pid", self.pid.as_ref());
        argv.opt("target-file", self.target_file.as_deref().map(path));
        argv.opt(
            "termination-summary",
            self.termination_summary.as_deref().map(path),
        );
        argv.opt("out", self.out.as_deref().map(path));
        argv.set("samples", self.samples);
        argv.set("interval", duration(self.interval));
        argv.set(
            "capture",
            self.captures
                .iter()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(","),
        );
        argv.opt("timeout", self.timeout.map(duration));
        argv.set("proc-root", path(&self.proc_root));
        argv.opt("cgroup-root", self.cgroup_root.as_deref().map(path));
        if let Some(address) = &self.go_pprof {
            argv.set("go-pprof", address);
            argv.set("go-pprof-timeout", duration(self.go_pprof_timeout));
            argv.set("go-pprof-max-bytes", self.go_pprof_max_bytes);
        } else if self.captures.contains(&CaptureKind::Goroutines) {
            argv.opt(
                "goroutines-max-stop",
                self.goroutines_max_stop.map(duration),
            );
        }
        if self.captures.contains(&CaptureKind::Stacks) {
            argv.set("stack-max-stop", duration(self.stack_max_stop));
        }
        if self.captures.contains(&CaptureKind::Core) {
            argv.set("core-max-pause", duration(self.core_max_pause));
            argv.opt("core-max-bytes", self.core_max_bytes.as_ref());
            argv.set("core-zstd-level", self.core_zstd_level);
            argv.opt("core-threads", self.core_threads.as_ref());
        }
        if let Some(url) = &self.upload {
            argv.set("upload", url);
            argv.opt("session", self.session.as_ref());
            argv.opt("upload-timeout", self.upload_timeout.map(duration));
            argv.flag("hold-on-upload-failure", self.hold_on_upload_failure);
        }
        argv.0
    }
}

/// `procshot locate`: find a Kubernetes container's host pids.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct LocateArgs {
    /// The pod's UID (metadata.uid; for a static pod, its kubernetes.io/config.hash
    /// annotation).
    #[arg(long, value_name = "UID")]
    pub pod_uid: String,
    /// The container's ID as the pod status shows it: containerd://, cri-o:// or docker://
    /// and 64 hex digits.
    #[arg(long, value_name = "RUNTIME://ID")]
    pub container_id: String,
    /// Where to write the result (JSON; replaced if it exists).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Where procfs is mounted (the node's /proc: the pod needs hostPID: true).
    #[arg(long, default_value = "/proc")]
    pub proc_root: PathBuf,
    /// Keep scanning this long while the container is not found (it may be starting).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

impl LocateArgs {
    /// Parses argv (without the program and subcommand names), as the CLI does.
    pub fn from_argv<I, T>(argv: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        #[derive(clap::Parser)]
        struct Command {
            #[command(flatten)]
            args: LocateArgs,
        }
        let argv = std::iter::once(std::ffi::OsString::from("locate"))
            .chain(argv.into_iter().map(Into::into));
        <Command as clap::Parser>::try_parse_from(argv).map(|c| c.args)
    }

    /// Renders the arguments as the CLI takes them, without the subcommand.
    pub fn to_argv(&self) -> Vec<String> {
        let mut argv = Argv::default();
        argv.set("pod-uid", &self.pod_uid);
        argv.set("container-id", &self.container_id);
        argv.set("out", path(&self.out));
        argv.set("proc-root", path(&self.proc_root));
        argv.set("timeout", duration(self.timeout));
        argv.0
    }
}

/// An argv being rendered, one `--name=value` per argument.
#[derive(Default)]
struct Argv(Vec<String>);

impl Argv {
    fn set(&mut self, name: &str, value: impl std::fmt::Display) {
        self.0.push(format!("--{name}={value}"));
    }

    fn opt(&mut self, name: &str, value: Option<impl std::fmt::Display>) {
        if let Some(value) = value {
            self.set(name, value);
        }
    }

    fn flag(&mut self, name: &str, on: bool) {
        if on {
            self.0.push(format!("--{name}"));
        }
    }
}

/// A duration as humantime parses it back exactly: whole milliseconds as `1500ms`, else
/// microseconds or nanoseconds.
fn duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos.is_multiple_of(1_000_000) {
        format!("{}ms", nanos / 1_000_000)
    } else if nanos.is_multiple_of(1_000) {
        format!("{}us", nanos / 1_000)
    } else {
        format!("{nanos}ns")
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn everything() -> CaptureArgs {
        CaptureArgs {
            pid: None,
            target_file: Some("/work/target.json".into()),
            termination_summary: Some("/dev/termination-log".into()),
            out: Some("/work/capture".into()),
            samples: 7,
            interval: Duration::from_millis(1500),
            captures: CaptureKind::ALL.to_vec(),
            timeout: Some(Duration::from_secs(285)),
            proc_root: "/host/proc".into(),
            cgroup_root: Some("/host/sys/fs/cgroup".into()),
            go_pprof: Some(PprofAddress::new(Some("::1"), 6060)),
            go_pprof_timeout: Duration::from_secs(7),
            go_pprof_max_bytes: 64 << 20,
            goroutines_max_stop: None,
            stack_max_stop: Duration::from_micros(500),
            core_max_pause: Duration::from_millis(750),
            core_max_bytes: Some(2 << 30),
            core_zstd_level: 3,
            core_threads: Some(2),
            upload: Some("s3://evidence/prod".into()),
            session: Some("shop/api-fd-leak".into()),
            upload_timeout: Some(Duration::from_secs(75)),
            hold_on_upload_failure: true,
        }
    }

    #[test]
    fn every_rendered_capture_argument_parses_back_to_the_same_value() {
        let args = everything();
        let argv = args.to_argv();
        assert_eq!(CaptureArgs::from_argv(&argv).unwrap(), args, "{argv:?}");
        assert!(argv.contains(&"--stack-max-stop=500us".to_string()));
        assert!(argv.contains(&"--go-pprof=[::1]:6060".to_string()));
    }

    #[test]
    fn goroutines_from_memory_render_their_stop_bound() {
        let mut args = everything();
        args.go_pprof = None;
        args.goroutines_max_stop = Some(Duration::from_millis(5));
        let argv = args.to_argv();
        let mut back = CaptureArgs::from_argv(&argv).unwrap();
        assert!(argv.contains(&"--goroutines-max-stop=5ms".to_string()));
        // The pprof flags are not rendered without --go-pprof: they come back as defaults.
        back.go_pprof_timeout = args.go_pprof_timeout;
        back.go_pprof_max_bytes = args.go_pprof_max_bytes;
        assert_eq!(back, args, "{argv:?}");
        // A stop bound cannot go with pprof, which never stops the program.
        let mut both = argv.clone();
        both.push("--go-pprof=6060".into());
        assert!(CaptureArgs::from_argv(&both).is_err());
    }

    #[test]
    fn the_defaults_render_and_parse_back() {
        let args = CaptureArgs::for_target_file("/work/target.json");
        assert_eq!(args.samples, 3);
        assert_eq!(args.captures, CaptureKind::DEFAULT);
        let argv = args.to_argv();
        assert_eq!(
            argv,
            [
                "--target-file=/work/target.json",
                "--samples=3",
                "--interval=5000ms",
                "--capture=fds,threads,memory",
                "--proc-root=/proc",
            ]
        );
        assert_eq!(CaptureArgs::from_argv(&argv).unwrap(), args);
    }

    #[test]
    fn flags_that_need_another_are_rendered_only_with_it() {
        let mut args = everything();
        args.go_pprof = None;
        args.upload = None;
        args.captures = CaptureKind::DEFAULT.to_vec();
        args.goroutines_max_stop = Some(Duration::from_millis(5));
        let argv = args.to_argv();
        for absent in [
            "--go-pprof",
            "--goroutines-max-stop",
            "--session",
            "--hold",
            "--stack-max",
            "--core-",
        ] {
            assert!(
                !argv.iter().any(|a| a.starts_with(absent)),
                "{absent}: {argv:?}"
            );
        }
        let mut back = CaptureArgs::from_argv(&argv).unwrap();
        // What was not rendered comes back as the CLI's default.
        back.go_pprof_timeout = args.go_pprof_timeout;
        back.go_pprof_max_bytes = args.go_pprof_max_bytes;
        back.goroutines_max_stop = args.goroutines_max_stop;
        back.stack_max_stop = args.stack_max_stop;
        back.core_max_pause = args.core_max_pause;
        back.core_max_bytes = args.core_max_bytes;
        back.core_zstd_level = args.core_zstd_level;
        back.core_threads = args.core_threads;
        back.session = args.session.clone();
        back.upload_timeout = args.upload_timeout;
        back.hold_on_upload_failure = args.hold_on_upload_failure;
        assert_eq!(back, args);
    }

    #[test]
    fn every_rendered_locate_argument_parses_back() {
        let args = LocateArgs {
            pod_uid: "8f6c2d4e-1b2a-4c3d-9e8f-0a1b2c3d4e5f".into(),
            container_id: format!("containerd://{}", "ab".repeat(32)),
            out: "/work/target.json".into(),
            proc_root: "/proc".into(),
            timeout: Duration::from_secs(60),
        };
        assert_eq!(LocateArgs::from_argv(args.to_argv()).unwrap(), args);
    }

    #[test]
    fn durations_render_exactly() {
        for d in [
            Duration::from_secs(10),
            Duration::from_millis(1),
            Duration::from_micros(1),
            Duration::from_nanos(1500),
        ] {
            assert_eq!(humantime::parse_duration(&duration(d)).unwrap(), d);
        }
    }
}
