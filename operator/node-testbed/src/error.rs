//! What can go wrong on the test node, each saying what failed and what to do.

use std::path::{Path, PathBuf};

/// A failure of the test node.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A program the test node needs is missing or failed.
    #[error(
        "{program}: {message} (scripts/install-test-deps.sh installs the test node's programs)"
    )]
    Program {
        /// The program.
        program: String,
        /// What happened.
        message: String,
    },
    /// containerd did not come up, or its CRI plugin is not ready.
    #[error("containerd did not start: {message}; its log is {log}:\n{tail}")]
    Containerd {
        /// What was seen.
        message: String,
        /// The daemon's log file.
        log: PathBuf,
        /// The end of that log.
        tail: String,
    },
    /// A CRI call failed.
    #[error("CRI {call}: {status}")]
    Cri {
        /// The RPC.
        call: &'static str,
        /// What containerd answered.
        status: Box<tonic::Status>,
    },
    /// An image could not be built.
    #[error("building an image: {0}")]
    Image(String),
    /// The pod uses Pod fields (or values) the kubelet stand-in does not implement.
    #[error(
        "the node test bed's kubelet does not implement {}: implement them in \
         operator/node-testbed/src/kubelet/ or leave them out of the pod",
        .fields.join(", ")
    )]
    Unsupported {
        /// The fields, as paths (`spec.containers[0].lifecycle`), with the value where a
        /// value is what is unsupported.
        fields: Vec<String>,
    },
    /// The pod is invalid in a way the API server would have refused.
    #[error("invalid pod: {0}")]
    InvalidPod(String),
    /// A wait ran out.
    #[error("timed out after {seconds} s waiting for {what}; last seen: {last}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        seconds: u64,
        /// The last state seen.
        last: String,
    },
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// A failed CRI call.
    pub fn cri(call: &'static str, status: tonic::Status) -> Self {
        Self::Cri {
            call,
            status: Box::new(status),
        }
    }
}
