//! The command line, in kubectl's conventions: the same global flags (`--kubeconfig`,
//! `--context`, `--cluster`, `--user`, `-n`), `-o json|yaml`, `--dry-run=client|server`,
//! `TYPE/NAME` targets and `-l` selectors. Parsing only: what the values mean is for the
//! commands.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use procshot_operator::api::{CaptureKind, OutputSpec, PvcOutput, S3Output};

/// Capture the evidence of a sick pod (open fds, threads, memory, stacks, goroutines)
/// with procshot, in one command: create a DebugSession, follow it, print its findings,
/// download its files.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-procshot",
    bin_name = "kubectl procshot",
    version,
    after_help = "Examples:\n  \
        kubectl procshot capture api-7d9f8-x2b4q -n shop\n  \
        kubectl procshot capture deploy/api --samples 5 --interval 10s --download ./evidence\n  \
        kubectl procshot capture -l app=api --max-pods 3 --capture fds,threads,memory,stacks\n  \
        kubectl procshot capture api-7d9f8-x2b4q --dry-run=client -o yaml\n  \
        kubectl procshot get\n  \
        kubectl procshot findings api-7d9f8-x2b4q-k2x9z -o json"
)]
pub struct Cli {
    /// How to reach the cluster, as kubectl takes it.
    #[command(flatten)]
    pub kube: KubeFlags,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// kubectl's global flags for choosing the cluster, user and namespace. Unset, they come
/// from `$KUBECONFIG` (or `~/.kube/config`) and its current context, as for kubectl.
#[derive(Debug, Clone, Default, Args)]
pub struct KubeFlags {
    /// Path to the kubeconfig file to use (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The kubeconfig cluster to use (default: the context's).
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster: Option<String>,
    /// The kubeconfig user to use (default: the context's).
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,
    /// The namespace (default: the context's namespace, else `default`).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Capture a pod, or a pod of a workload or selector: create a DebugSession, follow it
    /// live, print its findings (and download its files).
    Capture(Box<CaptureArgs>),
    /// List DebugSessions, or show one.
    Get(GetArgs),
    /// Show a DebugSession in detail: its spec, targets, conditions, findings, files and
    /// events.
    Describe(NameArgs),
    /// Print a DebugSession's findings, most serious first.
    Findings(FindingsArgs),
    /// Download a DebugSession's files and check every one against the capture's manifest.
    Download(DownloadArgs),
    /// Delete a DebugSession (its capture pods go with it).
    Delete(DeleteArgs),
}

/// `kubectl procshot capture`.
#[derive(Debug, Args)]
#[command(
    after_help = "TARGET is a pod (NAME or pod/NAME) or a workload whose pods to capture: \
    deploy/NAME, sts/NAME, ds/NAME, rs/NAME or job/NAME (the operator captures the oldest \
    running pods, up to --max-pods).\n\nExit codes: 0 captured with no finding at warning or \
    worse; 3 findings at warning or worse; 4 the session failed; 5 it did not finish in \
    time; 6 a download failed; 1 any other error; 2 a bad command line."
)]
pub struct CaptureArgs {
    /// The pod or workload to capture.
    #[arg(value_name = "TARGET", required_unless_present = "selector")]
    pub target: Option<String>,
    /// Capture pods with these labels instead (`app=api`, `app in (api,web),tier!=db`).
    #[arg(short = 'l', long, value_name = "SELECTOR", conflicts_with = "target")]
    pub selector: Option<String>,
    /// The container to capture (default: the pod's default container).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// How many of the matching pods to capture, oldest first (with a workload or -l).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub max_pods: Option<u32>,
    /// What to capture, comma-separated: fds, threads, memory, goroutines, stacks, core
    /// (default: fds,threads,memory). Goroutines are read from the Go program's memory,
    /// or from its pprof endpoint with --go-pprof.
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = parse_capture)]
    pub capture: Vec<CaptureKind>,
    /// How many samples to take; trends need at least 2.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub samples: u32,
    /// Time between two samples (`500ms`, `10s`, `1m`).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub interval: Duration,
    /// The pod's Go pprof endpoint, PORT or HOST:PORT inside the pod: adds goroutines,
    /// read from there (and the heap profile) instead of from the program's memory.
    #[arg(long, value_name = "PORT")]
    pub go_pprof: Option<String>,
    /// Also take an ELF core dump (it holds every secret of the process; the operator's
    /// policy must allow it).
    #[arg(long)]
    pub core: bool,
    /// The capture pod's deadline (default 5m): it must cover the sampling and the upload.
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Delete the DebugSession this long after it finished (default: keep it).
    #[arg(long, value_parser = parse_duration)]
    pub ttl: Option<Duration>,
    /// Where the files go (`s3://BUCKET/PREFIX` or `pvc://CLAIM/PATH`; default: the
    /// operator's), or how to print the session (`json`, `yaml`). Give it twice for both.
    #[arg(short = 'o', long = "output", value_name = "URL|FORMAT")]
    pub output: Vec<OutputArg>,
    /// Endpoint of an S3-compatible server, for an s3:// output.
    #[arg(long, value_name = "URL", requires = "output")]
    pub output_endpoint: Option<String>,
    /// Region of an s3:// output.
    #[arg(long, value_name = "REGION", requires = "output")]
    pub output_region: Option<String>,
    /// The Secret (in the operator's namespace) with the credentials of an s3:// output;
    /// it must be one the operator allows.
    #[arg(long, value_name = "NAME", requires = "output")]
    pub output_secret: Option<String>,
    /// The DebugSession's name (default: the target's name and a random suffix).
    #[arg(long)]
    pub name: Option<String>,
    /// Follow the session until it finishes (default: when stdout is a terminal).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub wait: Option<bool>,
    /// Download the files into DIR once captured, checked against the manifest (implies
    /// --wait).
    #[arg(long, value_name = "DIR")]
    pub download: Option<PathBuf>,
    /// Only print the DebugSession (client), or have the API server check it without
    /// creating it (server).
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_value = "none", default_missing_value = "client")]
    pub dry_run: DryRun,
    /// Where capture pods run (the operator's namespace), for downloads from a capture
    /// pod.
    #[arg(long, env = "PROCSHOT_NAMESPACE", default_value = "procshot-system")]
    pub capture_namespace: String,
}

impl CaptureArgs {
    /// The print format among the `-o` values, if any.
    pub fn format(&self) -> Option<Format> {
        self.output.iter().rev().find_map(|o| match o {
            OutputArg::Format(format) => Some(*format),
            OutputArg::Destination(_) => None,
        })
    }

    /// The destination among the `-o` values, with the endpoint, region and Secret flags.
    pub fn destination(&self) -> Option<OutputSpec> {
        let mut output = self.output.iter().rev().find_map(|o| match o {
            OutputArg::Destination(spec) => Some(spec.clone()),
            OutputArg::Format(_) => None,
        })?;
        if let Some(s3) = &mut output.s3 {
            s3.endpoint = self.output_endpoint.clone().or(s3.endpoint.take());
            s3.region = self.output_region.clone().or(s3.region.take());
            s3.secret_name = self.output_secret.clone().or(s3.secret_name.take());
        }
        Some(output)
    }
}

/// `--dry-run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DryRun {
    /// Create the session.
    None,
    /// Print it; nothing reaches the cluster.
    Client,
    /// Send it with `dryRun=All`: the API server checks it (schema, CEL rules,
    /// admission) and creates nothing.
    Server,
}

/// How to print objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// JSON, as `kubectl get -o json`.
    Json,
    /// YAML, as `kubectl get -o yaml`.
    Yaml,
}

impl FromStr for Format {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        <Self as ValueEnum>::from_str(text, false)
    }
}

/// One `-o` value of `capture`: a destination URL or a print format.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputArg {
    /// `s3://…` or `pvc://…`.
    Destination(OutputSpec),
    /// `json` or `yaml`.
    Format(Format),
}

impl FromStr for OutputArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let Some((scheme, rest)) = text.split_once("://") else {
            return text.parse().map(Self::Format).map_err(|_| {
                format!("{text:?} is neither a print format (json, yaml) nor an output URL (s3://BUCKET/PREFIX, pvc://CLAIM/PATH)")
            });
        };
        let (first, path) = match rest.split_once('/') {
            Some((first, path)) => (first, path.trim_matches('/')),
            None => (rest, ""),
        };
        if first.is_empty() {
            return Err(format!("{text:?} names no bucket or claim"));
        }
        let path = (!path.is_empty()).then(|| path.to_string());
        match scheme {
            "s3" => Ok(Self::Destination(OutputSpec {
                s3: Some(S3Output {
                    bucket: first.to_string(),
                    prefix: path,
                    ..S3Output::default()
                }),
                pvc: None,
            })),
            "pvc" => Ok(Self::Destination(OutputSpec {
                s3: None,
                pvc: Some(PvcOutput {
                    claim_name: first.to_string(),
                    path,
                }),
            })),
            _ => Err(format!(
                "{text:?}: the operator uploads to s3://BUCKET/PREFIX or pvc://CLAIM/PATH"
            )),
        }
    }
}

/// `kubectl procshot get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// One session (default: every session of the namespace).
    pub name: Option<String>,
    /// Sessions of every namespace.
    #[arg(short = 'A', long, conflicts_with = "name")]
    pub all_namespaces: bool,
    /// Print the objects instead of a table.
    #[arg(short = 'o', long = "output", value_enum)]
    pub format: Option<Format>,
}

/// A command on one session.
#[derive(Debug, Args)]
pub struct NameArgs {
    /// The DebugSession.
    pub name: String,
}

/// `kubectl procshot findings`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 no finding at warning or worse; 3 findings at warning or worse; \
    4 the session failed; 1 any other error."
)]
pub struct FindingsArgs {
    /// The DebugSession.
    pub name: String,
    /// Print the findings as JSON or YAML.
    #[arg(short = 'o', long = "output", value_enum)]
    pub format: Option<Format>,
}

/// `kubectl procshot download`.
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// The DebugSession.
    pub name: String,
    /// Where to put the files (must not exist or be empty); one directory per captured
    /// pod when there are several.
    pub dir: PathBuf,
    /// Where capture pods run (the operator's namespace), for a capture held in its pod
    /// after a failed upload.
    #[arg(long, env = "PROCSHOT_NAMESPACE", default_value = "procshot-system")]
    pub capture_namespace: String,
}

/// `kubectl procshot delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The DebugSession.
    pub name: String,
    /// Wait until it is gone (its capture pods removed by the operator).
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "true", default_missing_value = "true")]
    pub wait: bool,
}

/// `--capture` names.
fn parse_capture(text: &str) -> Result<CaptureKind, String> {
    text.trim().parse().map_err(|_| {
        format!(
            "{text:?} is not a capture: choose from {}",
            crate::session::capture_names().join(", ")
        )
    })
}

/// A duration as kubectl and procshot take them (`500ms`, `10s`, `1m30s`), not zero.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|e| format!("{text:?}: {e}"))?;
    if duration.is_zero() {
        return Err(format!("{text:?} is zero"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn output_takes_a_destination_or_a_format() {
        assert_eq!(
            "yaml".parse::<OutputArg>().unwrap(),
            OutputArg::Format(Format::Yaml)
        );
        let OutputArg::Destination(s3) = "s3://evidence/incidents/eu/".parse().unwrap() else {
            panic!("a destination")
        };
        let s3 = s3.s3.unwrap();
        assert_eq!(
            (s3.bucket.as_str(), s3.prefix.as_deref()),
            ("evidence", Some("incidents/eu"))
        );
        let OutputArg::Destination(pvc) = "pvc://evidence".parse().unwrap() else {
            panic!("a destination")
        };
        assert_eq!(pvc.pvc.unwrap().claim_name, "evidence");
        for bad in ["xml", "gs://b/p", "s3://", "s3:///p"] {
            assert!(bad.parse::<OutputArg>().is_err(), "{bad}");
        }
    }

    #[test]
    fn both_outputs_can_be_given_with_the_s3_flags() {
        let cli = Cli::try_parse_from([
            "kubectl-procshot",
            "capture",
            "api",
            "-o",
            "s3://evidence/p",
            "--output-endpoint",
            "http://minio:9000",
            "-o",
            "json",
            "--capture",
            "fds,stacks",
        ])
        .unwrap();
        let Command::Capture(args) = cli.command else {
            panic!("capture")
        };
        assert_eq!(args.format(), Some(Format::Json));
        let s3 = args.destination().unwrap().s3.unwrap();
        assert_eq!(s3.endpoint.as_deref(), Some("http://minio:9000"));
        assert_eq!(args.capture, [CaptureKind::Fds, CaptureKind::Stacks]);
        assert_eq!(args.dry_run, DryRun::None);
        assert_eq!(args.wait, None);
    }

    #[test]
    fn kubectl_style_flags_parse_as_kubectl_takes_them() {
        let cli = Cli::try_parse_from([
            "kubectl-procshot",
            "capture",
            "deploy/api",
            "-n",
            "shop",
            "--context",
            "prod",
            "--dry-run",
            "--wait=false",
        ])
        .unwrap();
        assert_eq!(cli.kube.namespace.as_deref(), Some("shop"));
        assert_eq!(cli.kube.context.as_deref(), Some("prod"));
        let Command::Capture(args) = cli.command else {
            panic!("capture")
        };
        assert_eq!(args.dry_run, DryRun::Client);
        assert_eq!(args.wait, Some(false));
        let e = Cli::try_parse_from(["kubectl-procshot", "capture", "api", "--capture", "heap"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("choose from fds, threads, memory, goroutines, stacks, core"),
            "{e}"
        );
    }
}
