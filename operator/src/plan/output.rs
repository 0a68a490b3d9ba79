//! Where a session's files go: the session's `spec.output`, else the operator's default,
//! checked against the policy on credentials (only Secrets the admin allows).

use crate::api::{DebugSession, S3Output};
use crate::config::OperatorConfig;

use super::Refusal;

/// A validated output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// An S3 or S3-compatible bucket.
    S3 {
        /// `s3://bucket/prefix`.
        url: String,
        /// Endpoint of an S3-compatible server.
        endpoint: Option<String>,
        /// Region.
        region: Option<String>,
        /// The Secret with the credentials, in the capture namespace.
        secret: String,
    },
    /// A PersistentVolumeClaim in the capture namespace.
    Pvc {
        /// Claim name.
        claim: String,
        /// Directory inside the volume.
        path: Option<String>,
    },
}

/// The session's output, else the operator's default, checked against the policy.
pub fn destination(
    session: &DebugSession,
    config: &OperatorConfig,
) -> Result<Option<Destination>, Refusal> {
    let Some(output) = session
        .spec
        .output
        .as_ref()
        .or(config.default_output.as_ref())
    else {
        return Ok(None);
    };
    if let Some(s3) = &output.s3 {
        return s3_destination(s3, config).map(Some);
    }
    Ok(output.pvc.as_ref().map(|pvc| Destination::Pvc {
        claim: pvc.claim_name.clone(),
        path: pvc.path.clone(),
    }))
}

/// A bucket, with the session's Secret if the admin allows it, else the operator's.
fn s3_destination(s3: &S3Output, config: &OperatorConfig) -> Result<Destination, Refusal> {
    let secret = s3
        .secret_name
        .clone()
        .unwrap_or_else(|| config.output_secret.clone());
    if secret != config.output_secret && !config.allowed_output_secrets.contains(&secret) {
        return Err(Refusal::policy(format!(
            "spec.output.s3.secretName {secret} is not a Secret the operator allows for uploads (allowed: {}); remove it to use the operator's credentials",
            std::iter::once(config.output_secret.as_str())
                .chain(config.allowed_output_secrets.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let prefix = s3.prefix.as_deref().unwrap_or_default().trim_matches('/');
    let url = if prefix.is_empty() {
        format!("s3://{}", s3.bucket)
    } else {
        format!("s3://{}/{prefix}", s3.bucket)
    };
    Ok(Destination::S3 {
        url,
        endpoint: s3.endpoint.clone(),
        region: s3.region.clone(),
        secret,
    })
}
