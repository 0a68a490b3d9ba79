//! The CRI v1 clients (runtime and image services) over containerd's Unix socket, as the
//! kubelet uses them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{ImageSpec, ImageStatusRequest, StatusRequest, VersionRequest};
use tonic::transport::{Channel, Endpoint, Uri};

use crate::error::Error;

/// Both CRI services of one containerd. Cheap to clone (one HTTP/2 connection).
#[derive(Debug, Clone)]
pub struct Cri {
    /// Pods and containers.
    pub runtime: RuntimeServiceClient<Channel>,
    /// Images.
    pub images: ImageServiceClient<Channel>,
}

impl Cri {
    /// Connects to the CRI services on `socket`.
    pub async fn connect(socket: &Path) -> Result<Self, Error> {
        let path: PathBuf = socket.to_path_buf();
        let channel = Endpoint::from_static("http://[::]:50051")
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
            .await
            .map_err(|e| Error::Program {
                program: "containerd".into(),
                message: format!("cannot connect to {}: {e}", socket.display()),
            })?;
        Ok(Self {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        })
    }

    /// The runtime's name and version (`containerd 1.6.20~ds1`) and CRI version.
    pub async fn version(&self) -> Result<String, Error> {
        let version = self
            .runtime
            .clone()
            .version(VersionRequest {
                version: "v1".into(),
            })
            .await
            .map_err(|e| Error::cri("Version", e))?
            .into_inner();
        Ok(format!(
            "{} {} (CRI {})",
            version.runtime_name, version.runtime_version, version.runtime_api_version
        ))
    }

    /// Waits until the runtime reports the `RuntimeReady` and `NetworkReady` conditions
    /// (the CRI plugin has loaded its CNI configuration).
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self
                .runtime
                .clone()
                .status(StatusRequest { verbose: false })
                .await
                .map_err(|e| Error::cri("Status", e))?
                .into_inner();
            let conditions = status.status.map(|s| s.conditions).unwrap_or_default();
            let not_ready: Vec<String> = conditions
                .iter()
                .filter(|c| !c.status)
                .map(|c| format!("{}: {} {}", c.r#type, c.reason, c.message))
                .collect();
            if !conditions.is_empty() && not_ready.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Timeout {
                    what: "the CRI runtime and network to be ready".into(),
                    seconds: timeout.as_secs(),
                    last: not_ready.join("; "),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The image `name` as the image service knows it: its id, and the user it runs as
    /// (uid, or user name), or `None` when the node does not have it.
    pub async fn image(&self, name: &str) -> Result<Option<ImageInfo>, Error> {
        let status = self
            .images
            .clone()
            .image_status(ImageStatusRequest {
                image: Some(ImageSpec {
                    image: name.to_string(),
                    ..Default::default()
                }),
                verbose: false,
            })
            .await
            .map_err(|e| Error::cri("ImageStatus", e))?
            .into_inner();
        Ok(status.image.map(|image| ImageInfo {
            id: image.id,
            uid: image.uid.map(|u| u.value),
            username: image.username,
        }))
    }
}

/// What the image service says of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// Its id (`sha256:…`).
    pub id: String,
    /// The numeric user it runs as, when its configuration names one.
    pub uid: Option<i64>,
    /// The user name it runs as, when not numeric.
    pub username: String,
}
