//! What an upload adds to the capture pod: the URL the capture uploads to, and what the
//! destination needs: a bucket's endpoint and region as environment variables and its
//! Secret as `envFrom` (credentials never appear in the pod's spec), or a claim mounted
//! as a volume.

use k8s_openapi::api::core::v1::{
    EnvFromSource, EnvVar, PersistentVolumeClaimVolumeSource, SecretEnvSource, Volume, VolumeMount,
};

use crate::plan::Destination;

/// Where the capture container mounts a PVC output.
const OUTPUT_MOUNT: &str = "/output";
const OUTPUT_VOLUME: &str = "output";

/// An upload, as the capture pod carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    /// `procshot capture --upload`.
    pub url: String,
    /// Plain settings of the store (endpoint, region); none when empty.
    pub env: Option<Vec<EnvVar>>,
    /// The Secret with the credentials.
    pub env_from: Option<Vec<EnvFromSource>>,
    /// The claim's volume.
    pub volume: Option<Volume>,
    /// Where the capture container mounts it.
    pub mount: Option<VolumeMount>,
}

impl Upload {
    /// The upload to `destination`.
    pub fn to(destination: &Destination) -> Self {
        match destination {
            Destination::S3 {
                url,
                endpoint,
                region,
                secret,
            } => s3(url, endpoint.as_deref(), region.as_deref(), secret),
            Destination::Pvc { claim, path } => pvc(claim, path.as_deref()),
        }
    }
}

fn s3(url: &str, endpoint: Option<&str>, region: Option<&str>, secret: &str) -> Upload {
    let mut env = Vec::new();
    if let Some(endpoint) = endpoint {
        env.push(plain("AWS_ENDPOINT_URL", endpoint));
        if endpoint.starts_with("http://") {
            env.push(plain("AWS_ALLOW_HTTP", "true"));
        }
    }
    if let Some(region) = region {
        env.push(plain("AWS_REGION", region));
    }
    Upload {
        url: url.to_string(),
        env: Some(env).filter(|e| !e.is_empty()),
        env_from: Some(vec![EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: secret.to_string(),
                optional: None,
            }),
            ..EnvFromSource::default()
        }]),
        volume: None,
        mount: None,
    }
}

fn pvc(claim: &str, path: Option<&str>) -> Upload {
    let url = match path {
        Some(path) => format!("file://{OUTPUT_MOUNT}/{path}"),
        None => format!("file://{OUTPUT_MOUNT}"),
    };
    Upload {
        url,
        env: None,
        env_from: None,
        volume: Some(Volume {
            name: OUTPUT_VOLUME.into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.to_string(),
                read_only: None,
            }),
            ..Volume::default()
        }),
        mount: Some(VolumeMount {
            name: OUTPUT_VOLUME.into(),
            mount_path: OUTPUT_MOUNT.into(),
            ..VolumeMount::default()
        }),
    }
}

fn plain(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}
