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
