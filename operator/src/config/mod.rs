//! The operator's configuration: where capture pods run, with which image, and the
//! cluster admin's policy (allowed captures, longest timeout, captures per node, core
//! size, output Secrets). [`flags`] is where it is set, and where its defaults are.

pub mod flags;

use std::collections::BTreeSet;
use std::time::Duration;

use crate::api::{CaptureKind, OutputSpec};

pub use flags::ConfigArgs;

/// Settings every reconcile reads; set from flags or environment at start-up.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorConfig {
    /// Namespace of the capture pods (labelled for the `privileged` PodSecurity level).
    pub namespace: String,
    /// The image with the `procshot` binary.
    pub agent_image: String,
    /// Captures the policy allows; a session asking for another one fails.
    pub allowed_captures: BTreeSet<CaptureKind>,
    /// The longest `spec.timeout` the policy allows.
    pub max_timeout: Duration,
    /// How many capture pods may run on one node at once.
    pub max_captures_per_node: usize,
    /// Whether thread captures may read kernel stacks (adds `CAP_SYS_ADMIN` to the capture
    /// container; off by default).
    pub kernel_stacks: bool,
    /// The largest core dump (memory of the process) a session may ask for, in bytes.
    pub core_max_bytes: u64,
    /// Where captures go when a session names no output (none: not uploaded).
    pub default_output: Option<OutputSpec>,
    /// The Secret (in the capture namespace) with the S3 credentials of outputs that name
    /// none.
    pub output_secret: String,
    /// Other Secrets sessions may name in `spec.output.s3.secretName`.
    pub allowed_output_secrets: BTreeSet<String>,
}

/// The operator's defaults are its flags' defaults ([`ConfigArgs`], defined once there),
/// as if no flag and no environment variable were given.
impl Default for OperatorConfig {
    fn default() -> Self {
        ConfigArgs::from_flags(std::iter::empty::<&str>())
            .expect("the flags' defaults parse")
            .into_config()
            .expect("the flags' defaults are a valid configuration")
    }
}

/// Parses an output given as a URL on the command line: `s3://bucket/prefix` (with an
/// optional endpoint and region) or `pvc://claim/path`.
pub fn parse_output(
    url: &str,
    endpoint: Option<String>,
    region: Option<String>,
) -> Result<OutputSpec, String> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        format!("output {url:?} is not a URL: write s3://bucket/prefix or pvc://claim/path")
    })?;
    let (first, path) = match rest.split_once('/') {
        Some((first, path)) => (
            first,
            Some(path.trim_matches('/').to_string()).filter(|p| !p.is_empty()),
        ),
        None => (rest, None),
    };
    if first.is_empty() {
        return Err(format!("output {url:?} names no bucket or claim"));
    }
    match scheme {
        "s3" => Ok(OutputSpec {
            s3: Some(crate::api::S3Output {
                bucket: first.to_string(),
                prefix: path,
                endpoint,
                region,
                secret_name: None,
            }),
            pvc: None,
        }),
        "pvc" => Ok(OutputSpec {
            s3: None,
            pvc: Some(crate::api::PvcOutput {
                claim_name: first.to_string(),
                path,
            }),
        }),
        other => Err(format!(
            "output scheme {other:?} is not supported: use s3:// or pvc://"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_parse_from_urls() {
        let s3 = parse_output(
            "s3://captures/prod/",
            Some("http://minio:9000".into()),
            None,
        )
        .unwrap()
        .s3
        .unwrap();
        assert_eq!(
            (s3.bucket.as_str(), s3.prefix.as_deref()),
            ("captures", Some("prod"))
        );
        assert_eq!(s3.endpoint.as_deref(), Some("http://minio:9000"));
        let pvc = parse_output("pvc://evidence", None, None)
            .unwrap()
            .pvc
            .unwrap();
        assert_eq!((pvc.claim_name.as_str(), pvc.path), ("evidence", None));
        assert!(
            parse_output("gs://x", None, None)
                .unwrap_err()
                .contains("not supported")
        );
        assert!(
            parse_output("captures", None, None)
                .unwrap_err()
                .contains("not a URL")
        );
        assert!(
            parse_output("s3:///p", None, None)
                .unwrap_err()
                .contains("no bucket")
        );
    }
}
