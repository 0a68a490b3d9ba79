//! The operator's settings as command-line flags (each also an environment variable, which
//! is how the Helm chart sets them). Their defaults are the one definition of the
//! operator's defaults: [`OperatorConfig::default`] is these flags with none given.

use std::time::Duration;

use procshot_api::size::parse_size;

use super::{OperatorConfig, parse_output};
use crate::api::CaptureKind;

/// Where capture pods run, with which image, and the cluster admin's policy.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs {
    /// Namespace of the capture pods.
    #[arg(long, env = "PROCSHOT_NAMESPACE", default_value = "procshot-system")]
    pub namespace: String,
    /// Image with the procshot binary, run by capture pods.
    #[arg(
        long,
        env = "PROCSHOT_AGENT_IMAGE",
        default_value = concat!("ghcr.io/procshot/procshot:", env!("CARGO_PKG_VERSION"))
    )]
    pub agent_image: String,
    /// Captures sessions may ask for (policy), comma-separated. core is never in the
    /// default: a core dump holds every secret of the process.
    #[arg(
        long,
        env = "PROCSHOT_ALLOWED_CAPTURES",
        value_delimiter = ',',
        default_value = "fds,threads,memory,stacks,goroutines"
    )]
    pub allowed_captures: Vec<CaptureKind>,
    /// The longest spec.timeout allowed.
    #[arg(long, env = "PROCSHOT_MAX_TIMEOUT", default_value = "30m", value_parser = humantime::parse_duration)]
    pub max_timeout: Duration,
    /// Capture pods allowed at once on one node (at least 1).
    #[arg(long, env = "PROCSHOT_MAX_CAPTURES_PER_NODE", default_value_t = 2)]
    pub max_captures_per_node: usize,
    /// Let thread captures read kernel stacks (adds CAP_SYS_ADMIN to capture pods).
    #[arg(long, env = "PROCSHOT_KERNEL_STACKS")]
    pub kernel_stacks: bool,
    /// The largest core dump sessions may ask for (memory of the process): 512Mi, 4Gi, ….
    #[arg(long, env = "PROCSHOT_CORE_MAX_BYTES", default_value = "4Gi", value_parser = parse_size)]
    pub core_max_bytes: u64,
    /// Where captures go when a session names no output: s3://bucket/prefix or
    /// pvc://claim/path (default: not uploaded).
    #[arg(long, env = "PROCSHOT_DEFAULT_OUTPUT")]
    pub default_output: Option<String>,
    /// Endpoint of the default output's S3-compatible server.
    #[arg(long, env = "PROCSHOT_DEFAULT_OUTPUT_ENDPOINT")]
    pub default_output_endpoint: Option<String>,
    /// Region of the default output's bucket.
    #[arg(long, env = "PROCSHOT_DEFAULT_OUTPUT_REGION")]
    pub default_output_region: Option<String>,
    /// Secret in the capture namespace with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for
    /// S3 outputs that name no secret.
    #[arg(
        long,
        env = "PROCSHOT_OUTPUT_SECRET",
        default_value = "procshot-output"
    )]
    pub output_secret: String,
    /// Other Secrets sessions may name in spec.output.s3.secretName, comma-separated.
    #[arg(long, env = "PROCSHOT_ALLOWED_OUTPUT_SECRETS", value_delimiter = ',')]
    pub allowed_output_secrets: Vec<String>,
}

impl ConfigArgs {
    /// The flags as given in `argv` (without a program name), ignoring the environment.
    pub fn from_flags<I, T>(argv: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{Args, FromArgMatches};
        let command = Self::augment_args(clap::Command::new("procshot-operator"))
            .mut_args(|arg| arg.env(None::<&'static str>));
        let argv = std::iter::once(std::ffi::OsString::from("procshot-operator"))
            .chain(argv.into_iter().map(Into::into));
        Self::from_arg_matches(&command.try_get_matches_from(argv)?)
    }

    /// The settings these flags give; fails on a `--default-output` that is not a URL the
    /// operator takes.
    pub fn into_config(self) -> Result<OperatorConfig, String> {
        let default_output = self
            .default_output
            .as_deref()
            .map(|url| {
                parse_output(
                    url,
                    self.default_output_endpoint.clone(),
                    self.default_output_region.clone(),
                )
            })
            .transpose()
            .map_err(|e| format!("--default-output: {e}"))?;
        Ok(OperatorConfig {
            namespace: self.namespace,
            agent_image: self.agent_image,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_flags_defaults() {
        let config = OperatorConfig::default();
        assert_eq!(config.namespace, "procshot-system");
        assert_eq!(
            config.agent_image,
            format!("ghcr.io/procshot/procshot:{}", env!("CARGO_PKG_VERSION"))
        );
        assert!(!config.allowed_captures.contains(&CaptureKind::Core));
        assert_eq!(config.allowed_captures.len(), CaptureKind::ALL.len() - 1);
        assert_eq!(config.max_timeout, Duration::from_secs(30 * 60));
        assert_eq!(config.max_captures_per_node, 2);
        assert_eq!(config.core_max_bytes, 4 << 30);
        assert_eq!(config.output_secret, "procshot-output");
        assert!(config.default_output.is_none() && config.allowed_output_secrets.is_empty());
    }

    #[test]
    fn flags_override_the_defaults() {
        let config = ConfigArgs::from_flags([
            "--allowed-captures=fds,core",
            "--max-captures-per-node=0",
            "--core-max-bytes=512MiB",
            "--allowed-output-secrets=,team-keys",
        ])
        .unwrap()
        .into_config()
        .unwrap();
        assert_eq!(
            config.allowed_captures,
            [CaptureKind::Fds, CaptureKind::Core].into()
        );
        assert_eq!(config.max_captures_per_node, 1, "at least one per node");
        assert_eq!(config.core_max_bytes, 512 << 20);
        assert_eq!(config.allowed_output_secrets, ["team-keys".into()].into());
        let bad = ConfigArgs::from_flags(["--default-output=gs://x"]).unwrap();
        assert!(
            bad.into_config()
                .unwrap_err()
                .starts_with("--default-output:")
        );
    }
}
