//! The node test bed: a Kubernetes node for the tests, without a cluster. containerd (with
//! its CRI plugin, runc and the cgroupfs driver) runs under a temporary directory; images
//! built offline are imported into it; a kubelet stand-in runs `Pod`s through the CRI
//! API the way the kubelet would. The operator's own capture pods run on it against a
//! target container, and the container statuses it reports go back through the
//! operator's status mapping, so one test covers operator → runtime → agent → status.
//!
//! Dev only (`publish = false`), and outside the workspace's default members: the
//! operator's build never compiles this gRPC/CRI code.
//!
//! A [`Node`] is one containerd; tests start one each. Dropping it (on any path: a
//! passed, failed or panicking test) stops its pods, containerd, the shims and containers
//! containerd left, unmounts everything under its directory, removes its pods' cgroups
//! and the directory. [`Node::shutdown`] does the same gracefully, through the CRI, and
//! reports what it still had to force.

pub mod cleanup;
pub mod cni;
pub mod containerd;
pub mod cri;
mod error;
pub mod images;
pub mod kubelet;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub use error::Error;
pub use kubelet::{Kubelet, PodHandle, PodState};

use crate::cleanup::Leftovers;
use crate::containerd::{Containerd, Layout};
use crate::cri::Cri;
use crate::images::Image;
use crate::kubelet::NodeDirs;

/// The pause image's name: the CRI plugin's `sandbox_image`.
pub const PAUSE_IMAGE: &str = "localhost/procshot-testbed/pause:1";

/// What a node needs from the test: its images and the CNI plugin binary.
pub struct NodeConfig<'a> {
    /// The node's name (`spec.nodeName` of its pods).
    pub name: String,
    /// The sandbox image's one binary (a static `pause`).
    pub pause_binary: &'a Path,
    /// Images to import besides the pause image.
    pub images: Vec<Image>,
    /// The `procshot-testbed-cni` binary.
    pub cni_plugin: &'a Path,
}

/// A running test node.
pub struct Node {
    layout: Layout,
    dir: Option<tempfile::TempDir>,
    containerd: Containerd,
    kubelet: Kubelet,
    version: String,
}

impl Node {
    /// Starts containerd under a new temporary directory, imports the images, and waits
    /// until the runtime and its network are ready.
    pub async fn start(config: NodeConfig<'_>) -> Result<Self, Error> {
        require_root()?;
        let dir = tempfile::Builder::new()
            .prefix("procshot-nodebed-")
            .tempdir()
            .map_err(|e| Error::io("creating the node directory in", &std::env::temp_dir(), e))?;
        let layout = Layout {
            dir: dir.path().to_path_buf(),
        };
        cni::install(&layout.cni_conf(), &layout.cni_bin(), config.cni_plugin)?;
        let containerd = Containerd::start(&layout, PAUSE_IMAGE)?;
        let cri = Cri::connect(&layout.socket()).await?;
        let dirs = NodeDirs {
            kubelet_root: layout.dir.join("kubelet"),
            pod_logs: layout.dir.join("var/log/pods"),
            memory_capacity: memory_capacity(),
        };
        let kubelet = Kubelet::new(cri.clone(), dirs, config.name.clone());
        let mut node = Self {
            layout,
            dir: Some(dir),
            containerd,
            kubelet,
            version: String::new(),
        };
        node.version = cri.version().await?;
        if let Err(error) = cri.wait_ready(Duration::from_secs(30)).await {
            return Err(node.containerd.failure(error.to_string()));
        }
        let images_dir = node.layout.dir.join("images");
        std::fs::create_dir_all(&images_dir).map_err(|e| Error::io("creating", &images_dir, e))?;
        let pause = Image::bare(PAUSE_IMAGE, config.pause_binary, "/pause", "65535:65535");
        for image in std::iter::once(&pause).chain(&config.images) {
            node.import(&cri, image, &images_dir).await?;
        }
        Ok(node)
    }

    /// The kubelet stand-in.
    pub fn kubelet(&self) -> &Kubelet {
        &self.kubelet
    }

    /// The runtime's name and version, as the CRI reports them.
    pub fn runtime_version(&self) -> &str {
        &self.version
    }

    /// The node's directory.
    pub fn dir(&self) -> &Path {
        &self.layout.dir
    }

    /// Writes `image` as an OCI archive and imports it into the `k8s.io` namespace with
    /// `ctr`, then waits until the CRI image service lists it.
    async fn import(&self, cri: &Cri, image: &Image, dir: &Path) -> Result<(), Error> {
        let file_name: String = image
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let archive = dir.join(format!("{file_name}.tar"));
        image.write_archive(&archive)?;
        let output = Command::new("ctr")
            .arg("--address")
            .arg(self.layout.socket())
            .args([
                "--namespace",
                "k8s.io",
                "images",
                "import",
                "--snapshotter",
                "overlayfs",
            ])
            .arg(&archive)
            .output()
            .map_err(|e| Error::Program {
                program: "ctr".into(),
                message: format!("cannot run it: {e} (it comes with containerd)"),
            })?;
        if !output.status.success() {
            return Err(Error::Program {
                program: "ctr images import".into(),
                message: format!(
                    "importing {} failed: {}",
                    image.name,
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
            });
        }
        for _ in 0..100 {
            if cri.image(&image.name).await?.is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(self.containerd.failure(format!(
            "the CRI image service does not list {} after its import",
            image.name
        )))
    }

    /// Deletes every pod through the CRI, stops containerd, and sweeps; returns what the
    /// sweep still found (nothing, when the graceful path worked).
    pub async fn shutdown(mut self) -> Leftovers {
        self.kubelet.delete_all(Duration::from_secs(60)).await;
        self.containerd.stop();
        let leftovers = cleanup::sweep(&self.layout);
        self.finish();
        leftovers
    }

    /// Removes the pods' cgroups and the node's directory (after the sweep).
    fn finish(&mut self) {
        for parent in self.kubelet.pod_cgroups() {
            let _ = kubelet::remove_pod_cgroup(&parent);
        }
        if let Some(dir) = self.dir.take() {
            let path: PathBuf = dir.path().to_path_buf();
            if let Err(e) = dir.close() {
                eprintln!("node test bed: could not remove {}: {e}", path.display());
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.dir.is_none() {
            return;
        }
        if std::thread::panicking() {
            eprintln!(
                "node test bed: the end of containerd's log ({}):\n{}",
                self.layout.log().display(),
                containerd::log_tail(&self.layout.log())
            );
        }
        self.kubelet.abort_all();
        self.containerd.stop();
        cleanup::sweep(&self.layout);
        self.finish();
    }
}

/// The node's memory (MemTotal), for Burstable pods' OOM score.
fn memory_capacity() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        })
        .map_or(16 << 30, |kib| kib * 1024)
}

/// The test node runs containers: it needs root.
fn require_root() -> Result<(), Error> {
    if unsafe { libc::geteuid() } != 0 {
        return Err(Error::Program {
            program: "the node test bed".into(),
            message: "needs root (it runs containerd and creates cgroups and mounts)".into(),
        });
    }
    Ok(())
}
