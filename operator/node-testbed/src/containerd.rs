//! The test node's containerd: Debian's containerd 1.6 with its CRI plugin, runc and the
//! cgroupfs driver (no systemd here), every directory it writes (root, state, runc's
//! root, socket, the pods' network namespaces) under the node's own temporary directory,
//! so that several test nodes, and other engineers' containerds, share the machine.
//! What is left shared: runc's shims put their sockets in `/run/containerd/s/` (named by
//! a hash of this containerd's socket, so never the same) and containers' cgroups go
//! where the kubelet names them (`/kubepods/…/pod<uid>/<container id>`, unique by pod UID).
//!
//! [`Containerd::stop`] ends the daemon; the node's cleanup (`cleanup` module) removes
//! what it leaves behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::Error;

/// How long containerd may take to serve its socket.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The directories and files of one containerd.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The node's directory.
    pub dir: PathBuf,
}

impl Layout {
    /// containerd's persistent root (content store, snapshots, metadata).
    pub fn root(&self) -> PathBuf {
        self.dir.join("containerd/root")
    }
    /// containerd's state directory (tasks, sandboxes' network namespaces).
    pub fn state(&self) -> PathBuf {
        self.dir.join("containerd/state")
    }
    /// The gRPC socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd/containerd.sock")
    }
    /// The daemon's log.
    pub fn log(&self) -> PathBuf {
        self.dir.join("containerd/containerd.log")
    }
    /// runc's state root (containers of the `k8s.io` namespace are under `k8s.io/`).
    pub fn runc_root(&self) -> PathBuf {
        self.dir.join("runc")
    }
    /// CNI network configuration.
    pub fn cni_conf(&self) -> PathBuf {
        self.dir.join("cni/conf")
    }
    /// CNI plugins.
    pub fn cni_bin(&self) -> PathBuf {
        self.dir.join("cni/bin")
    }
    fn config(&self) -> PathBuf {
        self.dir.join("containerd/config.toml")
    }
}

/// A running containerd; [`Containerd::stop`] (or dropping it) ends it.
#[derive(Debug)]
pub struct Containerd {
    child: Option<Child>,
    layout: Layout,
}

impl Containerd {
    /// Writes the configuration and starts containerd, the CRI plugin using `sandbox_image`
    /// for pod sandboxes; returns once its socket is served.
    pub fn start(layout: &Layout, sandbox_image: &str) -> Result<Self, Error> {
        for dir in [layout.root(), layout.state(), layout.runc_root()] {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
        }
        std::fs::write(layout.config(), config(layout, sandbox_image))
            .map_err(|e| Error::io("writing", &layout.config(), e))?;
        let log = std::fs::File::create(layout.log())
            .map_err(|e| Error::io("creating", &layout.log(), e))?;
        let mut command = Command::new("containerd");
        command
            .arg("--config")
            .arg(layout.config())
            .stdin(Stdio::null())
            .stdout(
                log.try_clone()
                    .map_err(|e| Error::io("opening", &layout.log(), e))?,
            )
            .stderr(log);
        // containerd dies with the thread that started it (the test's thread), even when
        // the test process is killed with SIGKILL.
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().map_err(|e| Error::Program {
            program: "containerd".into(),
            message: format!("cannot start it: {e} (apt-get install containerd runc)"),
        })?;
        let mut daemon = Self {
            child: Some(child),
            layout: layout.clone(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = daemon
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(daemon.failure(format!("it exited with {status}")));
            }
            if std::os::unix::net::UnixStream::connect(layout.socket()).is_ok() {
                return Ok(daemon);
            }
            if Instant::now() > deadline {
                return Err(daemon.failure(format!(
                    "its socket {} was not served within {} s",
                    layout.socket().display(),
                    START_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The daemon's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// An error about the daemon, with the end of its log.
    pub fn failure(&self, message: String) -> Error {
        Error::Containerd {
            message,
            log: self.layout.log(),
            tail: log_tail(&self.layout.log()),
        }
    }

    /// Ends the daemon: SIGTERM, then SIGKILL after 10 s. Its shims and containers outlive
    /// it; the node's cleanup ends those.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last 40 lines of containerd's log.
pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// containerd's configuration (version 2): the CRI plugin with runc (runtime v2 shim,
/// cgroupfs), overlayfs, the test node's CNI directories, network namespaces under the
/// state directory, a streaming server on loopback only, and no plugin that reaches
/// outside the node's directory (the `opt` plugin would write `/opt/containerd`).
/// `PROCSHOT_NODEBED_DEBUG` set makes containerd, its shims and runc log at debug level.
fn config(layout: &Layout, sandbox_image: &str) -> String {
    let q = |p: PathBuf| toml_string(&p.display().to_string());
    format!(
        r#"version = 2
root = {root}
state = {state}
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = {socket}

[debug]
  level = {level}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = {sandbox_image}
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_tcp_service = true
  enable_selinux = false
  systemd_cgroup = false
  # These machines give root no CAP_SYS_RESOURCE, so no process may lower its
  # oom_score_adj: the sandbox's -998 (and Guaranteed containers' -997) are raised to
  # containerd's own score instead of failing runc's init.
  restrict_oom_score_adj = true

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = {cni_bin}
    conf_dir = {cni_conf}
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = {runc_root}
        SystemdCgroup = false
"#,
        root = q(layout.root()),
        state = q(layout.state()),
        socket = q(layout.socket()),
        sandbox_image = toml_string(sandbox_image),
        cni_bin = q(layout.cni_bin()),
        cni_conf = q(layout.cni_conf()),
        runc_root = q(layout.runc_root()),
        level = toml_string(if std::env::var_os("PROCSHOT_NODEBED_DEBUG").is_some() {
            "debug"
        } else {
            "info"
        }),
    )
}

/// A TOML basic string (the paths and names here have no control characters; quotes and
/// backslashes are escaped).
fn toml_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}
