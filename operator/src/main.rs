//! `procshot-operator`: run the controller, print the CRD or its field reference, or
//! render the capture pod the operator would create for a session and target (no cluster
//! needed).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, CustomResourceExt, ResourceExt};
use tokio::task::JoinHandle;

use procshot_operator::api::DebugSession;
use procshot_operator::capture_pod::{self, SESSION_NAME_LABEL, SESSION_NAMESPACE_LABEL};
use procshot_operator::config::{ConfigArgs, OperatorConfig};
use procshot_operator::controller::{self, Context};
use procshot_operator::http::{self, HttpState};
use procshot_operator::metrics::Metrics;
use procshot_operator::plan::{CapturePlan, CaptureTarget, Refusal};

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
    let result = match Cli::parse().command {
        Command::Crd => serde_saphyr::to_string(&DebugSession::crd())
            .context("serializing the CRD")
            .map(|crd| print!("{crd}")),
        Command::Reference => {
            let crd = serde_json::to_value(DebugSession::crd()).expect("the CRD serializes");
            print!("{}", procshot_operator::reference::markdown(&crd));
            Ok(())
        }
        Command::Render {
            session,
            target_pod,
            config,
        } => config_from(config).and_then(|config| render(&session, &target_pod, &config)),
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

fn config_from(flags: ConfigArgs) -> anyhow::Result<OperatorConfig> {
    flags.into_config().map_err(anyhow::Error::msg)
}

/// Validates and builds as the controller does, from files: the session (its namespace
/// defaults to the pod's) and its target pod.
fn render(session_file: &Path, pod_file: &Path, config: &OperatorConfig) -> anyhow::Result<()> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    };
    let mut session: DebugSession = serde_saphyr::from_str(&read(session_file)?)
        .with_context(|| format!("{} is not a DebugSession", session_file.display()))?;
    let pod: Pod = serde_saphyr::from_str(&read(pod_file)?)
        .with_context(|| format!("{} is not a Pod", pod_file.display()))?;
    if session.metadata.namespace.is_none() {
        session.metadata.namespace = pod.metadata.namespace.clone();
    }
    let refused = |r: Refusal| anyhow::anyhow!("{}: {}", r.reason, r.message);
    let plan = CapturePlan::from_session(&session, config).map_err(refused)?;
    let target =
        CaptureTarget::from_pod(&pod, session.spec.target.container.as_deref()).map_err(refused)?;
    let capture_pod = capture_pod::build(&session, &plan, &target, config);
    print!(
        "{}",
        serde_saphyr::to_string(&capture_pod).context("serializing the pod")?
    );
    Ok(())
}

/// Runs the controller until a signal, a lost lease or a stopped HTTP server.
async fn run(args: RunArgs) -> anyhow::Result<()> {
    init_tracing();
    let config = config_from(args.config.clone())?;
    let client = Client::try_default()
        .await
        .context("connecting to the Kubernetes API (in-cluster config or KUBECONFIG)")?;
    let metrics = Arc::new(Metrics::default());
    let state = HttpState {
        metrics: metrics.clone(),
        ready: Arc::new(AtomicBool::new(false)),
        sessions: Arc::new(OnceLock::new()),
    };
    let http = tokio::spawn(http::serve(args.http_addr, state.clone()));
    tracing::info!(addr = %args.http_addr, namespace = %config.namespace, "procshot-operator starting");

    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("procshot-operator-{}", std::process::id()));
    let leadership = lead(&args, &identity, &client, &config, &state).await?;
    let ctx = Arc::new(Context::new(client, config, metrics, Some(identity)));
    let outcome = tokio::select! {
        () = control(ctx, &state) => Ok(()),
        () = leadership.lost => Err(anyhow::anyhow!("lost the leader lease: exiting so that another replica takes over")),
        result = http => Err(anyhow::anyhow!("the HTTP server stopped: {result:?}")),
    };
    // Dropping the leadership watch makes the lease manager release the Lease, so that a
    // standby takes over at once instead of waiting for it to expire.
    if let Some(task) = leadership.lease_task {
        let _ = tokio::time::timeout(Duration::from_secs(3), task).await;
    }
    tracing::info!("controller stopped");
    outcome
}

fn init_tracing() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
}

/// This replica's leadership: a future that ends when it is lost, and the task that
/// holds the Lease (released when the leadership watch is dropped).
struct Leadership {
    lost: BoxFuture<'static, ()>,
    lease_task: Option<JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>>,
}

/// Waits until this replica holds the leader Lease (at once without leader election).
async fn lead(
    args: &RunArgs,
    identity: &str,
    client: &Client,
    config: &OperatorConfig,
    state: &HttpState,
) -> anyhow::Result<Leadership> {
    if args.no_leader_election {
        return Ok(Leadership {
            lost: futures::future::pending().boxed(),
            lease_task: None,
        });
    }
    let manager = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &args.lease_name)
        .with_namespace(args.lease_namespace.as_deref().unwrap_or(&config.namespace))
        .with_identity(identity)
        .build()
        .await
        .context("setting up leader election")?;
    let (mut leader, task) = manager.watch().await;
    state.ready.store(true, Ordering::Relaxed); // a standby replica is healthy and ready
    tracing::info!(%identity, lease = %args.lease_name, "waiting to become the leader");
    while !*leader.borrow_and_update() {
        leader.changed().await.context("leader election stopped")?;
    }
    tracing::info!(%identity, "became the leader");
    let lost = async move {
        while *leader.borrow_and_update() {
            if leader.changed().await.is_err() {
                break;
            }
        }
    };
    Ok(Leadership {
        lost: lost.boxed(),
        lease_task: Some(task),
    })
}

/// Runs the controller over every DebugSession, woken by its capture pods, until a
/// signal; marks the operator ready once the session cache synced.
async fn control(ctx: Arc<Context>, state: &HttpState) {
    let sessions = Api::<DebugSession>::all(ctx.client.clone());
    let capture_pods = Api::<Pod>::namespaced(ctx.client.clone(), &ctx.config.namespace);
    let controller = Controller::new(sessions, watcher::Config::default().any_semantic());
    let store = controller.store();
    let _ = state.sessions.set(store.clone());
    let ready = state.ready.clone();
    tokio::spawn(async move {
        if store.wait_until_ready().await.is_ok() {
            ready.store(true, Ordering::Relaxed);
        }
    });
    controller
        .watches(
            capture_pods,
            watcher::Config::default().labels_from(&capture_pod::capture_pods()),
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
        })
        .await;
}
