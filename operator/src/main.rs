//! `procshot-operator`: run the controller, print the CRD, or render the capture pod the
//! operator would create for a session and target (no cluster needed).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, CustomResourceExt, ResourceExt};

use procshot_operator::api::{CaptureKind, DebugSession};
use procshot_operator::capture_pod::{
    self, COMPONENT_SELECTOR, SESSION_NAME_LABEL, SESSION_NAMESPACE_LABEL,
};
use procshot_operator::config::OperatorConfig;
use procshot_operator::controller::{self, Context};
use procshot_operator::http::{self, HttpState};
use procshot_operator::metrics::Metrics;
use procshot_operator::plan::{CapturePlan, CaptureTarget};

/// The procshot operator: captures evidence from pods named by DebugSession resources.
#[derive(Parser)]
#[command(name = "procshot-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller (with leader election).
    Run(RunArgs),
    /// Print the DebugSession CustomResourceDefinition as YAML.
    Crd,
    /// Print the Markdown reference of every DebugSession field (from the CRD schema).
    Reference,
    /// Print, as YAML, the capture pod the operator would create for a session and its
    /// target pod, to review exactly what runs with which privileges.
    Render {
        /// The DebugSession (YAML).
        #[arg(long)]
        session: PathBuf,
        /// The target pod as the API server returns it (`kubectl get pod -o yaml`).
        #[arg(long)]
        target_pod: PathBuf,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[derive(clap::Args)]
struct ConfigArgs {
    /// Namespace of the capture pods.
    #[arg(long, env = "PROCSHOT_NAMESPACE", default_value = "procshot-system")]
    namespace: String,
    /// Image with the procshot binary, run by capture pods.
    #[arg(long, env = "PROCSHOT_AGENT_IMAGE")]
    agent_image: Option<String>,
    /// Captures sessions may ask for (policy), comma-separated.
    #[arg(long, env = "PROCSHOT_ALLOWED_CAPTURES", value_delimiter = ',', default_value = "fds,threads,memory,stacks,goroutines", value_parser = parse_capture)]
    allowed_captures: Vec<CaptureKind>,
    /// The longest spec.timeout allowed.
    #[arg(long, env = "PROCSHOT_MAX_TIMEOUT", default_value = "30m", value_parser = humantime::parse_duration)]
    max_timeout: Duration,
    /// Capture pods allowed at once on one node.
    #[arg(long, env = "PROCSHOT_MAX_CAPTURES_PER_NODE", default_value_t = 2)]
    max_captures_per_node: usize,
    /// Let thread captures read kernel stacks (adds CAP_SYS_ADMIN to capture pods).
    #[arg(long, env = "PROCSHOT_KERNEL_STACKS")]
    kernel_stacks: bool,
    /// The largest core dump sessions may ask for (memory of the process): 512Mi, 4Gi, ….
    #[arg(long, env = "PROCSHOT_CORE_MAX_BYTES", default_value = "4Gi", value_parser = parse_size)]
    core_max_bytes: u64,
    /// Where captures go when a session names no output: s3://bucket/prefix or
    /// pvc://claim/path (default: not uploaded).
    #[arg(long, env = "PROCSHOT_DEFAULT_OUTPUT")]
    default_output: Option<String>,
    /// Endpoint of the default output's S3-compatible server.
    #[arg(long, env = "PROCSHOT_DEFAULT_OUTPUT_ENDPOINT")]
    default_output_endpoint: Option<String>,
    /// Region of the default output's bucket.
    #[arg(long, env = "PROCSHOT_DEFAULT_OUTPUT_REGION")]
    default_output_region: Option<String>,
    /// Secret in the capture namespace with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for
    /// S3 outputs that name no secret.
    #[arg(
        long,
        env = "PROCSHOT_OUTPUT_SECRET",
        default_value = "procshot-output"
    )]
    output_secret: String,
    /// Other Secrets sessions may name in spec.output.s3.secretName, comma-separated.
    #[arg(long, env = "PROCSHOT_ALLOWED_OUTPUT_SECRETS", value_delimiter = ',')]
    allowed_output_secrets: Vec<String>,
}

impl ConfigArgs {
    fn into_config(self) -> anyhow::Result<OperatorConfig> {
        let defaults = OperatorConfig::default();
        let default_output = self
            .default_output
            .as_deref()
            .map(|url| {
                procshot_operator::config::parse_output(
                    url,
                    self.default_output_endpoint.clone(),
                    self.default_output_region.clone(),
                )
            })
            .transpose()
            .map_err(|e| anyhow::anyhow!("--default-output: {e}"))?;
        Ok(OperatorConfig {
            namespace: self.namespace,
            agent_image: self.agent_image.unwrap_or(defaults.agent_image),
            allowed_captures: self.allowed_captures.into_iter().collect(),
            max_timeout: self.max_timeout,
            max_captures_per_node: self.max_captures_per_node.max(1),
            kernel_stacks: self.kernel_stacks,
            core_max_bytes: self.core_max_bytes,
            default_output,
            output_secret: self.output_secret,
            allowed_output_secrets: self
                .allowed_output_secrets
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect(),
        })
    }
}

fn parse_capture(text: &str) -> Result<CaptureKind, String> {
    text.parse()
        .map_err(|e: procshot_api::kind::UnknownCaptureKind| e.to_string())
}

fn parse_size(text: &str) -> Result<u64, String> {
    procshot_operator::plan::parse_quantity(text)
        .ok_or_else(|| format!("{text:?} is not a size: write it like 512Mi or 4Gi"))
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "PROCSHOT_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    http_addr: SocketAddr,
    /// This replica's identity in the leader Lease (the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Namespace of the leader Lease: the operator's own (default: the capture namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Name of the coordination.k8s.io Lease used for leader election.
    #[arg(long, env = "PROCSHOT_LEASE_NAME", default_value = "procshot-operator")]
    lease_name: String,
    /// Run without leader election (a single replica only).
    #[arg(long)]
    no_leader_election: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd => print_crd(),
        Command::Reference => {
            let crd = serde_json::to_value(DebugSession::crd()).expect("the CRD serializes");
            print!("{}", procshot_operator::reference::markdown(&crd));
            Ok(())
        }
        Command::Render {
            session,
            target_pod,
            config,
        } => config
            .into_config()
            .and_then(|config| render(&session, &target_pod, &config)),
        Command::Run(args) => tokio::runtime::Runtime::new()
            .context("starting the async runtime")
            .and_then(|rt| rt.block_on(run(args))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("procshot-operator: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_crd() -> anyhow::Result<()> {
    print!(
        "{}",
        serde_saphyr::to_string(&DebugSession::crd()).context("serializing the CRD")?
    );
    Ok(())
}

fn render(
    session_file: &PathBuf,
    pod_file: &PathBuf,
    config: &OperatorConfig,
) -> anyhow::Result<()> {
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    };
    let mut session: DebugSession = serde_saphyr::from_str(&read(session_file)?)
        .with_context(|| format!("{} is not a DebugSession", session_file.display()))?;
    let pod: Pod = serde_saphyr::from_str(&read(pod_file)?)
        .with_context(|| format!("{} is not a Pod", pod_file.display()))?;
    if session.metadata.namespace.is_none() {
        session.metadata.namespace = pod.metadata.namespace.clone();
    }
    let plan = CapturePlan::from_session(&session, config)
        .map_err(|r| anyhow::anyhow!("{}: {}", r.reason, r.message))?;
    let target = CaptureTarget::from_pod(&pod, session.spec.target.container.as_deref())
        .map_err(|r| anyhow::anyhow!("{}: {}", r.reason, r.message))?;
    let capture_pod = capture_pod::build(&session, &plan, &target, config);
    print!(
        "{}",
        serde_saphyr::to_string(&capture_pod).context("serializing the pod")?
    );
    Ok(())
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = args.config.into_config()?;
    let client = Client::try_default()
        .await
        .context("connecting to the Kubernetes API (in-cluster config or KUBECONFIG)")?;
    let metrics = Arc::new(Metrics::default());
    let state = HttpState {
        metrics: metrics.clone(),
        ready: Arc::new(AtomicBool::new(false)),
        sessions: Arc::new(std::sync::OnceLock::new()),
    };
    let http = tokio::spawn(http::serve(args.http_addr, state.clone()));
    tracing::info!(addr = %args.http_addr, namespace = %config.namespace, "procshot-operator starting");

    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("procshot-operator-{}", std::process::id()));
    let mut lease_task = None;
    let lost_leadership = if args.no_leader_election {
        futures::future::pending::<()>().boxed()
    } else {
        let manager =
            kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &args.lease_name)
                .with_namespace(args.lease_namespace.as_deref().unwrap_or(&config.namespace))
                .with_identity(&identity)
                .build()
                .await
                .context("setting up leader election")?;
        let (mut leader, task) = manager.watch().await;
        lease_task = Some(task);
        state.ready.store(true, Ordering::Relaxed); // a standby replica is healthy and ready
        tracing::info!(%identity, lease = %args.lease_name, "waiting to become the leader");
        while !*leader.borrow_and_update() {
            leader.changed().await.context("leader election stopped")?;
        }
        tracing::info!(%identity, "became the leader");
        async move {
            while *leader.borrow_and_update() {
                if leader.changed().await.is_err() {
                    break;
                }
            }
        }
        .boxed()
    };

    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "procshot-operator".into(),
                instance: Some(identity),
            },
        ),
        config: config.clone(),
        metrics,
        failures: Default::default(),
    });
    let sessions = Api::<DebugSession>::all(client.clone());
    let capture_pods = Api::<Pod>::namespaced(client.clone(), &config.namespace);
    let controller = Controller::new(sessions, watcher::Config::default().any_semantic());
    let store = controller.store();
    let _ = state.sessions.set(store.clone());
    let ready = state.ready.clone();
    tokio::spawn(async move {
        if store.wait_until_ready().await.is_ok() {
            ready.store(true, Ordering::Relaxed);
        }
    });
    let run = controller
        .watches(
            capture_pods,
            watcher::Config::default().labels(COMPONENT_SELECTOR),
            |pod| {
                let labels = pod.labels();
                Some(
                    ObjectRef::new(labels.get(SESSION_NAME_LABEL)?)
                        .within(labels.get(SESSION_NAMESPACE_LABEL)?),
                )
            },
        )
        .shutdown_on_signal()
        .run(controller::reconcile, controller::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "reconcile did not complete");
            }
        });
    let outcome = tokio::select! {
        () = run => Ok(()),
        () = lost_leadership => Err(anyhow::anyhow!("lost the leader lease: exiting so that another replica takes over")),
        result = http => Err(anyhow::anyhow!("the HTTP server stopped: {result:?}")),
    };
    // Dropping the leadership watch makes the lease manager release the Lease, so that a
    // standby takes over at once instead of waiting for it to expire.
    if let Some(task) = lease_task {
        let _ = tokio::time::timeout(Duration::from_secs(3), task).await;
    }
    tracing::info!("controller stopped");
    outcome
}
