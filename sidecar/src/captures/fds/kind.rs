//! What kind of object an fd refers to, decided from its `/proc/PID/fd` link text and, for
//! paths, the file type.

use rustix::fs::FileType;
use serde::{Deserialize, Serialize};

/// The kind of an open file descriptor, in the words an SRE uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FdKind {
    /// A regular file on a filesystem (possibly deleted).
    RegularFile,
    /// A directory.
    Directory,
    /// A character device (`/dev/null`, a tty…).
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe on a filesystem.
    Fifo,
    /// A socket (resolved further through `/proc/PID/net/*`).
    Socket,
    /// An anonymous pipe.
    Pipe,
    /// A `memfd_create` file.
    Memfd,
    /// `timerfd_create`.
    Timerfd,
    /// `eventfd`.
    Eventfd,
    /// `epoll_create`.
    Eventpoll,
    /// `signalfd`.
    Signalfd,
    /// `inotify_init`.
    Inotify,
    /// `fanotify_init`.
    Fanotify,
    /// `pidfd_open` or `clone(CLONE_PIDFD)`.
    Pidfd,
    /// `userfaultfd`.
    Userfaultfd,
    /// `io_uring_setup`.
    IoUring,
    /// `perf_event_open`.
    PerfEvent,
    /// A BPF map, program or link.
    Bpf,
    /// A namespace handle (`/proc/PID/ns/*`).
    Namespace,
    /// Another anonymous inode (its name is in the link target).
    AnonInode,
    /// Anything else (or an fd whose type could not be read).
    Other,
}

impl FdKind {
    /// Every kind, in display order.
    pub const ALL: [FdKind; 22] = [
        Self::RegularFile,
        Self::Directory,
        Self::CharDevice,
        Self::BlockDevice,
        Self::Fifo,
        Self::Socket,
        Self::Pipe,
        Self::Memfd,
        Self::Timerfd,
        Self::Eventfd,
        Self::Eventpoll,
        Self::Signalfd,
        Self::Inotify,
        Self::Fanotify,
        Self::Pidfd,
        Self::Userfaultfd,
        Self::IoUring,
        Self::PerfEvent,
        Self::Bpf,
        Self::Namespace,
        Self::AnonInode,
        Self::Other,
    ];

    /// The stable name used in JSON and summaries (`regular_file`, `timerfd`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::RegularFile => "regular_file",
            Self::Directory => "directory",
            Self::CharDevice => "char_device",
            Self::BlockDevice => "block_device",
            Self::Fifo => "fifo",
            Self::Socket => "socket",
            Self::Pipe => "pipe",
            Self::Memfd => "memfd",
            Self::Timerfd => "timerfd",
            Self::Eventfd => "eventfd",
            Self::Eventpoll => "eventpoll",
            Self::Signalfd => "signalfd",
            Self::Inotify => "inotify",
            Self::Fanotify => "fanotify",
            Self::Pidfd => "pidfd",
            Self::Userfaultfd => "userfaultfd",
            Self::IoUring => "io_uring",
            Self::PerfEvent => "perf_event",
            Self::Bpf => "bpf",
            Self::Namespace => "namespace",
            Self::AnonInode => "anon_inode",
            Self::Other => "other",
        }
    }

    /// The kind with that stable name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// Plural noun for messages ("regular files", "timerfds").
    pub fn plural(self) -> &'static str {
        match self {
            Self::RegularFile => "regular files",
            Self::Directory => "directories",
            Self::CharDevice => "character devices",
            Self::BlockDevice => "block devices",
            Self::Fifo => "named pipes",
            Self::Socket => "sockets",
            Self::Pipe => "pipes",
            Self::Memfd => "memfds",
            Self::Timerfd => "timerfds",
            Self::Eventfd => "eventfds",
            Self::Eventpoll => "epoll instances",
            Self::Signalfd => "signalfds",
            Self::Inotify => "inotify instances",
            Self::Fanotify => "fanotify instances",
            Self::Pidfd => "pidfds",
            Self::Userfaultfd => "userfaultfds",
            Self::IoUring => "io_uring instances",
            Self::PerfEvent => "perf events",
            Self::Bpf => "BPF objects",
            Self::Namespace => "namespace handles",
            Self::AnonInode => "other anonymous inodes",
            Self::Other => "other fds",
        }
    }

    /// Whether the link text names a filesystem path whose file type must be read to
    /// classify it (everything else is classified from the text alone).
    pub fn needs_file_type(link: &str) -> bool {
        link.starts_with('/') && !link.starts_with("/memfd:")
    }

    /// Classifies an fd from its link text and, for paths, its file type.
    pub fn classify(link: &str, file_type: Option<FileType>) -> Self {
        if link.starts_with("socket:[") {
            return Self::Socket;
        }
        if link.starts_with("pipe:[") {
            return Self::Pipe;
        }
        if link.starts_with("/memfd:") {
            return Self::Memfd;
        }
        if link.starts_with("pidfd:") {
            return Self::Pidfd;
        }
        if let Some(name) = link.strip_prefix("anon_inode:") {
            return Self::from_anon_inode(name.trim_start_matches('[').trim_end_matches(']'));
        }
        if link.starts_with('/') {
            return match file_type {
                Some(FileType::RegularFile) => Self::RegularFile,
                Some(FileType::Directory) => Self::Directory,
                Some(FileType::CharacterDevice) => Self::CharDevice,
                Some(FileType::BlockDevice) => Self::BlockDevice,
                Some(FileType::Fifo) => Self::Fifo,
                Some(FileType::Socket) => Self::Socket,
                _ => Self::Other,
            };
        }
        if let Some((prefix, _)) = link.split_once(":[")
            && matches!(
                prefix,
                "net" | "mnt" | "pid" | "user" | "uts" | "ipc" | "cgroup" | "time"
            )
        {
            return Self::Namespace;
        }
        Self::Other
    }

    fn from_anon_inode(name: &str) -> Self {
        match name {
            "timerfd" => Self::Timerfd,
            "eventfd" => Self::Eventfd,
            "eventpoll" => Self::Eventpoll,
            "signalfd" => Self::Signalfd,
            "inotify" => Self::Inotify,
            "fanotify" => Self::Fanotify,
            "pidfd" => Self::Pidfd,
            "userfaultfd" => Self::Userfaultfd,
            "io_uring" => Self::IoUring,
            "perf_event" => Self::PerfEvent,
            n if n.starts_with("bpf") => Self::Bpf,
            _ => Self::AnonInode,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_texts_map_to_kinds() {
        let cases = [
            ("socket:[12345]", None, FdKind::Socket),
            ("pipe:[999]", None, FdKind::Pipe),
            ("anon_inode:[timerfd]", None, FdKind::Timerfd),
            ("anon_inode:[eventfd]", None, FdKind::Eventfd),
            ("anon_inode:[eventpoll]", None, FdKind::Eventpoll),
            ("anon_inode:[signalfd]", None, FdKind::Signalfd),
            ("anon_inode:inotify", None, FdKind::Inotify),
            ("anon_inode:[pidfd]", None, FdKind::Pidfd),
            ("pidfd:[4321]", None, FdKind::Pidfd),
            ("anon_inode:bpf-map", None, FdKind::Bpf),
            ("anon_inode:[io_uring]", None, FdKind::IoUring),
            ("anon_inode:[something-new]", None, FdKind::AnonInode),
            ("/memfd:cache (deleted)", None, FdKind::Memfd),
            (
                "/var/log/app.log",
                Some(FileType::RegularFile),
                FdKind::RegularFile,
            ),
            (
                "/tmp/gone (deleted)",
                Some(FileType::RegularFile),
                FdKind::RegularFile,
            ),
            ("/srv", Some(FileType::Directory), FdKind::Directory),
            (
                "/dev/null",
                Some(FileType::CharacterDevice),
                FdKind::CharDevice,
            ),
            ("/dev/vda", Some(FileType::BlockDevice), FdKind::BlockDevice),
            ("/run/app.fifo", Some(FileType::Fifo), FdKind::Fifo),
            ("/var/lib/x", None, FdKind::Other),
            ("net:[4026531840]", None, FdKind::Namespace),
            ("something odd", None, FdKind::Other),
        ];
        for (link, file_type, kind) in cases {
            assert_eq!(FdKind::classify(link, file_type), kind, "{link}");
        }
    }

    #[test]
    fn names_round_trip() {
        for kind in FdKind::ALL {
            assert_eq!(FdKind::from_name(kind.name()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
        }
    }

    #[test]
    fn only_real_paths_need_a_file_type() {
        assert!(FdKind::needs_file_type("/etc/hosts"));
        assert!(!FdKind::needs_file_type("/memfd:x (deleted)"));
        assert!(!FdKind::needs_file_type("socket:[1]"));
    }
}
