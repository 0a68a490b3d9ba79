//! Typed errors of the capture engine, and the exit code each one maps to.

use std::io;
use std::path::PathBuf;

/// Exit codes of the `procshot` binary; stable, documented in the README.
pub mod exit_code {
    /// Everything captured.
    pub const OK: u8 = 0;
    /// An unexpected internal error.
    pub const INTERNAL: u8 = 1;
    /// Bad command-line usage (clap's own code).
    pub const USAGE: u8 = 2;
    /// The target process does not exist (or is a zombie) when the capture starts.
    pub const TARGET_NOT_FOUND: u8 = 3;
    /// A `/proc` file of the target could not be read for lack of privilege.
    pub const PERMISSION_DENIED: u8 = 4;
    /// The output directory is unusable (not empty, not writable, disk full…).
    pub const OUTPUT: u8 = 5;
    /// The capture was written but is partial (target exited, deadline reached).
    pub const PARTIAL: u8 = 6;
    /// A `/proc` or cgroup file had content procshot could not parse.
    pub const MALFORMED: u8 = 7;
    /// An existing capture directory given to `procshot report` is missing files or invalid.
    pub const BAD_CAPTURE_DIR: u8 = 8;
    /// `procshot locate`: no process of the container was found before the timeout.
    pub const TARGET_NOT_LOCATED: u8 = 9;
    /// `procshot upload`, or `procshot capture --upload`: the capture's files could not all
    /// be uploaded (endpoint unreachable, credentials refused, bucket missing, deadline
    /// passed, an object not stored whole). The local capture directory is left as it was;
    /// with `capture --upload` the capture itself succeeded and the termination summary
    /// carries `uploadError`.
    pub const UPLOAD_FAILED: u8 = 10;
    /// `procshot postmortem`: the container's log file could not be read.
    pub const LOG_UNREADABLE: u8 = 11;
}

/// What can go wrong while reading the target.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// No such process when the capture starts.
    #[error(
        "no process with pid {pid} under {proc_root}: check the pid (it may have exited already)"
    )]
    TargetNotFound {
        /// The pid asked for.
        pid: i32,
        /// The proc root it was looked up in.
        proc_root: PathBuf,
    },
    /// The target is a zombie: it has exited and only waits to be reaped.
    #[error(
        "pid {pid} is a zombie (it has exited; its parent has not reaped it): nothing left to capture"
    )]
    TargetZombie {
        /// The pid asked for.
        pid: i32,
    },
    /// The target exited while a sample was being read.
    #[error("pid {pid} exited while {what} was being read")]
    TargetExited {
        /// The target's pid.
        pid: i32,
        /// Which capture was running.
        what: &'static str,
    },
    /// A file could not be read for lack of privilege.
    #[error(
        "permission denied reading {path}: run procshot as root or as the target's user \
         (a capture pod needs CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH)"
    )]
    PermissionDenied {
        /// The file that could not be read.
        path: PathBuf,
    },
    /// A file had content procshot could not parse.
    #[error("malformed {path}: {detail} (please report this with your kernel version: uname -r)")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        detail: String,
    },
    /// Any other I/O error on a target file.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl CaptureError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::TargetNotFound { .. } | Self::TargetZombie { .. } | Self::TargetExited { .. } => {
                exit_code::TARGET_NOT_FOUND
            }
            Self::PermissionDenied { .. } => exit_code::PERMISSION_DENIED,
            Self::Malformed { .. } => exit_code::MALFORMED,
            Self::Io { .. } => exit_code::INTERNAL,
        }
    }

    /// Builds the error for an I/O failure on `path`, classifying permission errors.
    pub fn from_io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        match source.kind() {
            io::ErrorKind::PermissionDenied => Self::PermissionDenied { path },
            _ => Self::Io { path, source },
        }
    }
}

/// What can go wrong with the output directory.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// `--out` exists and already holds files.
    #[error(
        "output directory {0} is not empty: choose a new directory (procshot never overwrites a capture)"
    )]
    NotEmpty(PathBuf),
    /// `--out` exists but is not a directory.
    #[error("output path {0} exists and is not a directory")]
    NotADirectory(PathBuf),
    /// Creating or writing a file failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An existing capture directory could not be read back.
    #[error("{path} is not a readable procshot capture: {detail}")]
    BadCapture {
        /// The file that failed.
        path: PathBuf,
        /// Why.
        detail: String,
    },
}

impl OutputError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::BadCapture { .. } => exit_code::BAD_CAPTURE_DIR,
            _ => exit_code::OUTPUT,
        }
    }
}

/// A `--pod-uid` or `--container-id` that cannot name a Kubernetes pod or container.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The container ID lacks its `RUNTIME://` prefix.
    #[error(
        "container ID {given:?} has no RUNTIME:// prefix: give it exactly as the pod status \
         shows it (kubectl get pod POD -o jsonpath='{{.status.containerStatuses[*].containerID}}'), \
         for example containerd://<64 hex digits>"
    )]
    MissingRuntime {
        /// What was given.
        given: String,
    },
    /// The runtime before `://` is not one procshot knows the cgroup naming of.
    #[error(
        "container ID {given:?} names runtime {runtime:?}: procshot knows the cgroup names of \
         containerd, cri-o and docker only"
    )]
    UnknownRuntime {
        /// What was given.
        given: String,
        /// The runtime part.
        runtime: String,
    },
    /// The part after `://` is not a full container ID.
    #[error(
        "container ID {given:?} is not a full ID: {detail} (a container ID is 64 lowercase hex \
         digits; a short or truncated ID could match the wrong container, so it is refused)"
    )]
    BadContainerId {
        /// What was given.
        given: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The pod UID is not a UUID (nor a static pod's 32-hex-digit config hash).
    #[error(
        "pod UID {given:?} is not a pod UID: {detail} (give metadata.uid, a UUID such as \
         8f6c2d4e-1b2a-4c3d-9e8f-0a1b2c3d4e5f; for a static pod, its \
         kubernetes.io/config.hash annotation)"
    )]
    BadPodUid {
        /// What was given.
        given: String,
        /// What is wrong with it.
        detail: String,
    },
}

impl IdError {
    /// The process exit code for this error: it is a usage error.
    pub fn exit_code(&self) -> u8 {
        exit_code::USAGE
    }
}

/// What can go wrong while locating a container's processes.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    /// No process of the container was found before the timeout.
    #[error(transparent)]
    NotLocated(Box<NotLocated>),
    /// The proc root itself could not be listed.
    #[error(
        "cannot list {path}: {source} (--proc-root must be a procfs mount, the node's /proc; \
         run as root)"
    )]
    ProcRoot {
        /// The proc root.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl LocateError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::NotLocated(_) => exit_code::TARGET_NOT_LOCATED,
            Self::ProcRoot { source, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
                exit_code::PERMISSION_DENIED
            }
            Self::ProcRoot { .. } => exit_code::INTERNAL,
        }
    }
}

/// No process of the container was found before the timeout: what was looked for, how
/// long, and what came close.
#[derive(Debug, thiserror::Error)]
#[error(
    "no process of container {container_id} in pod {pod_uid} found under {proc_root} \
     after {waited} ({scans} scan(s), {processes} processes in the last one). {hint}Check \
     that the container is running and has not restarted (its ID changes on every \
     restart: kubectl get pod POD -o jsonpath='{{.status.containerStatuses}}'), that the \
     pod UID and container ID come from the same pod, that this pod runs with \
     hostPID: true, and that --proc-root is the node's /proc"
)]
pub struct NotLocated {
    /// The container ID as given.
    pub container_id: String,
    /// The pod UID as given.
    pub pod_uid: String,
    /// Where procfs was scanned.
    pub proc_root: PathBuf,
    /// How long procshot kept scanning, humanly formatted.
    pub waited: String,
    /// How many scans were made.
    pub scans: usize,
    /// Processes seen in the last scan.
    pub processes: usize,
    /// What the last scan saw that comes close, as sentences ending in `". "`; empty
    /// when nothing came close.
    pub hint: String,
}

/// What can go wrong while uploading a capture directory to object storage.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The directory's `manifest.json` is missing or unreadable, or lists a file name that
    /// cannot be an object name.
    #[error("{path} is not a readable procshot capture: {detail}")]
    BadCapture {
        /// The file that failed.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// A file of the capture differs from what its manifest says.
    #[error(
        "{path} does not match the capture's manifest.json: {detail}; nothing was uploaded \
         (the file changed after the capture: capture again, or run `procshot report DIR` to \
         re-list the files)"
    )]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// Expected and found sizes or hashes.
        detail: String,
    },
    /// A file of the capture could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The destination could not be configured from the URL and the environment.
    #[error("cannot upload to {url}: {detail}")]
    Config {
        /// The destination URL.
        url: String,
        /// What is missing or wrong.
        detail: String,
    },
    /// The store refused the credentials, or they may not write there.
    #[error(
        "upload to {url} failed: access denied ({status}) for key {key}: {detail}: check \
         {credentials}, and that they may write to this bucket and prefix"
    )]
    AccessDenied {
        /// The destination URL.
        url: String,
        /// HTTP status (401 or 403).
        status: u16,
        /// The object key that was refused.
        key: String,
        /// What the server said.
        detail: String,
        /// Where the credentials come from, for this kind of store.
        credentials: &'static str,
    },
    /// The bucket (or container) does not exist.
    #[error(
        "upload to {url} failed: {noun} {bucket} does not exist at {endpoint}: create it, or \
         fix the {noun} name in the URL"
    )]
    BucketNotFound {
        /// The destination URL.
        url: String,
        /// `bucket`, or `container` for Azure.
        noun: &'static str,
        /// The bucket or container.
        bucket: String,
        /// The endpoint that answered.
        endpoint: String,
    },
    /// Nothing answered at the endpoint (any more), however often it was tried.
    #[error(transparent)]
    Unreachable(Box<Unreachable>),
    /// The upload was still making progress when `--upload-timeout` passed.
    #[error(
        "upload to {url} did not finish within {timeout} (--upload-timeout): {done} of {total} \
         files uploaded: raise --upload-timeout, or check the network's bandwidth"
    )]
    TimedOut {
        /// The destination URL.
        url: String,
        /// The deadline, humanly formatted.
        timeout: String,
        /// Files uploaded before the deadline.
        done: usize,
        /// Files to upload.
        total: usize,
    },
    /// The store answered the upload of an object with an error.
    #[error("upload of {name} to {url} failed: {detail}")]
    Rejected {
        /// The file.
        name: String,
        /// The object's URL.
        url: String,
        /// What the store said.
        detail: String,
    },
    /// After the upload, the store reports another size for an object than the file has.
    #[error(
        "upload of {name} to {url} is incomplete: the store reports {stored} bytes, the file \
         has {expected}; run the upload again"
    )]
    Incomplete {
        /// The file.
        name: String,
        /// The object's URL.
        url: String,
        /// Size in the manifest.
        expected: u64,
        /// Size the store reports.
        stored: u64,
    },
}

/// An upload's endpoint did not answer (any more), however often it was tried: where, how
/// often, for how long, and the last error.
#[derive(Debug, thiserror::Error)]
#[error(
    "upload to {url} failed: could not reach {endpoint} after {tries} tries in \
     {elapsed}{}: {detail}: check the endpoint ({endpoint_setting}) and that the server is \
     up and reachable from here, then run the upload again",
    answered_before(*.answered)
)]
pub struct Unreachable {
    /// The destination URL.
    pub url: String,
    /// Scheme and authority of the server.
    pub endpoint: String,
    /// Requests that failed in a row.
    pub tries: u64,
    /// Requests it had answered before (it stopped answering during the upload).
    pub answered: u64,
    /// How long procshot kept trying, humanly formatted.
    pub elapsed: String,
    /// The last transport error.
    pub detail: String,
    /// How the endpoint is configured, for this kind of store.
    pub endpoint_setting: &'static str,
}

/// `" (it stopped answering during the upload, after answering N request(s))"`, or nothing.
fn answered_before(answered: u64) -> String {
    match answered {
        0 => String::new(),
        n => format!(" (it stopped answering during the upload, after answering {n} request(s))"),
    }
}

impl UploadError {
    /// The process exit code for this error: [`exit_code::BAD_CAPTURE_DIR`] when the
    /// capture directory itself is unusable, else [`exit_code::UPLOAD_FAILED`].
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::BadCapture { .. } | Self::Mismatch { .. } | Self::Read { .. } => {
                exit_code::BAD_CAPTURE_DIR
            }
            _ => exit_code::UPLOAD_FAILED,
        }
    }
}
