//! Which cluster, user and namespace, decided exactly as kubectl decides them, through
//! kube's own kubeconfig loading: `--kubeconfig` else `$KUBECONFIG` (every file of the
//! list merged) else `~/.kube/config`, else the in-cluster service account; `--context`,
//! `--cluster` and `--user` override the current context's; `-n` else the context's
//! namespace else `default`.

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::cli::KubeFlags;
use crate::error::Error;

/// A cluster to talk to, and the namespace commands work in.
///
/// Loading the configuration can fail where a command needs no cluster at all
/// (`capture --dry-run=client` of a pod): the failure is kept and only reported by
/// [`Cluster::client`].
pub struct Cluster {
    /// The namespace of the command.
    pub namespace: String,
    client: Result<Client, String>,
}

impl Cluster {
    /// A cluster reached through `client` (the tests' mock API server, for one).
    pub fn new(client: Client, namespace: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            client: Ok(client),
        }
    }

    /// Loads the configuration `flags` choose.
    pub async fn load(flags: &KubeFlags) -> Self {
        match config(flags).await {
            Ok(config) => {
                let namespace = flags
                    .namespace
                    .clone()
                    .unwrap_or_else(|| config.default_namespace.clone());
                Self {
                    namespace,
                    client: Client::try_from(config).map_err(|e| procshot_api::error_chain(&e)),
                }
            }
            Err(detail) => Self {
                namespace: flags
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".to_string()),
                client: Err(detail),
            },
        }
    }

    /// The client, or why there is none.
    pub fn client(&self) -> Result<&Client, Error> {
        self.client.as_ref().map_err(|detail| Error::Kubeconfig {
            detail: detail.clone(),
        })
    }
}

async fn config(flags: &KubeFlags) -> Result<Config, String> {
    let options = KubeConfigOptions {
        context: flags.context.clone(),
        cluster: flags.cluster.clone(),
        user: flags.user.clone(),
    };
    let loaded = match &flags.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|e| format!("{}: {}", path.display(), procshot_api::error_chain(&e)))?;
            Config::from_custom_kubeconfig(kubeconfig, &options).await
        }
        None if options.context.is_none()
            && options.cluster.is_none()
            && options.user.is_none() =>
        {
            return Config::infer()
                .await
                .map_err(|e| procshot_api::error_chain(&e));
        }
        None => Config::from_kubeconfig(&options).await,
    };
    loaded.map_err(|e| procshot_api::error_chain(&e))
}
