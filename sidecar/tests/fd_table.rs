//! The fd table of a real process holding one or more fds of every kind: exact kinds,
//! fdinfo fields and socket states.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use procshot::captures::fds::{self, FdEntry, FdKind, SocketProtocol};
use procshot::process::Target;
use support::Fixture;

fn fds_of(fixture: &Fixture, key: &str) -> Vec<i32> {
    fixture.get("fds")[key]
        .as_array()
        .unwrap_or_else(|| panic!("fixture lists no {key}"))
        .iter()
        .map(|v| v.as_i64().unwrap() as i32)
        .collect()
}

fn entry(sample: &fds::FdSample, fd: i32) -> &FdEntry {
    sample
        .fds
        .iter()
        .find(|e| e.fd == fd)
        .unwrap_or_else(|| panic!("fd {fd} missing"))
}

#[test]
fn every_kind_of_fd_is_classified_with_its_fdinfo() {
    support::require_root();
    let mut fixture = Fixture::start(&["zoo"]);
    let target = Target::open(Path::new("/proc"), fixture.pid()).unwrap();
    let sample = fds::capture(&target).unwrap();

    // Exactly the fds the fixture says it holds, plus stdin/stdout/stderr.
    let mut expected: Vec<i32> = vec![0, 1, 2];
    for list in fixture.get("fds").as_object().unwrap().values() {
        expected.extend(
            list.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap() as i32),
        );
    }
    expected.sort();
    let found: Vec<i32> = sample.fds.iter().map(|e| e.fd).collect();
    assert_eq!(found, expected);
    assert_eq!(sample.vanished, 0);

    let kinds = [
        ("regular_file", FdKind::RegularFile),
        ("directory", FdKind::Directory),
        ("char_device", FdKind::CharDevice),
        ("pipe", FdKind::Pipe),
        ("fifo", FdKind::Fifo),
        ("tcp_listen", FdKind::Socket),
        ("tcp_close_wait", FdKind::Socket),
        ("tcp_established", FdKind::Socket),
        ("udp", FdKind::Socket),
        ("unix", FdKind::Socket),
        ("netlink", FdKind::Socket),
        ("timerfd", FdKind::Timerfd),
        ("eventfd", FdKind::Eventfd),
        ("eventpoll", FdKind::Eventpoll),
        ("signalfd", FdKind::Signalfd),
        ("inotify", FdKind::Inotify),
        ("pidfd", FdKind::Pidfd),
        ("memfd", FdKind::Memfd),
    ];
    for (key, kind) in kinds {
        for fd in fds_of(&fixture, key) {
            assert_eq!(entry(&sample, fd).kind, kind, "fd {fd} ({key})");
        }
    }

    // fdinfo: the file offset, the timer, the eventfd counter, epoll and inotify targets.
    let file_a = entry(&sample, fds_of(&fixture, "regular_file")[0]);
    assert_eq!(file_a.fdinfo.pos, 5);
    assert_eq!(file_a.target, fixture.get("file_a_path").as_str().unwrap());
    assert!(file_a.fdinfo.mnt_id.is_some() && file_a.fdinfo.ino.is_some());
    let dir = entry(&sample, fds_of(&fixture, "directory")[0]);
    assert_eq!(dir.target, fixture.get("dir_path").as_str().unwrap());
    assert_eq!(
        entry(&sample, fds_of(&fixture, "char_device")[0]).target,
        "/dev/null"
    );

    let timer = entry(&sample, fds_of(&fixture, "timerfd")[0])
        .fdinfo
        .timerfd
        .clone()
        .unwrap();
    assert_eq!(timer.clockid, 1, "CLOCK_MONOTONIC");
    assert_eq!(timer.it_interval_ns, 1_500_000_000);
    assert!(timer.it_value_ns > 0 && timer.it_value_ns <= 100_000_000_000);

    let eventfd = entry(&sample, fds_of(&fixture, "eventfd")[0])
        .fdinfo
        .eventfd
        .clone()
        .unwrap();
    assert_eq!(eventfd.count, 42);

    let epoll = &entry(&sample, fds_of(&fixture, "eventpoll")[0])
        .fdinfo
        .epoll_targets;
    let mut watched: Vec<i32> = epoll.iter().map(|t| t.fd).collect();
    watched.sort();
    let mut expected_watched: Vec<i32> = fixture
        .get("epoll_targets")
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap() as i32)
        .collect();
    expected_watched.sort();
    assert_eq!(watched, expected_watched);

    let signalfd = entry(&sample, fds_of(&fixture, "signalfd")[0]);
    assert_eq!(
        signalfd.fdinfo.signalfd_mask.as_deref(),
        Some("0000000000000200"),
        "SIGUSR1"
    );
    assert_eq!(
        entry(&sample, fds_of(&fixture, "inotify")[0])
            .fdinfo
            .inotify_watches
            .len(),
        1
    );
    assert_eq!(
        entry(&sample, fds_of(&fixture, "pidfd")[0])
            .fdinfo
            .pidfd_pid,
        Some(i64::from(fixture.pid()))
    );
    assert!(
        entry(&sample, fds_of(&fixture, "memfd")[0])
            .target
            .starts_with("/memfd:procshot-zoo")
    );

    // Sockets, resolved from the fixture's own net tables.
    let port = fixture.get("tcp_port").as_u64().unwrap();
    let listen = entry(&sample, fds_of(&fixture, "tcp_listen")[0])
        .socket
        .clone()
        .unwrap();
    assert_eq!(
        (listen.protocol, listen.state.as_deref()),
        (SocketProtocol::Tcp, Some("LISTEN"))
    );
    assert_eq!(
        listen.local.as_deref(),
        Some(format!("127.0.0.1:{port}").as_str())
    );
    let close_wait = entry(&sample, fds_of(&fixture, "tcp_close_wait")[0])
        .socket
        .clone()
        .unwrap();
    assert_eq!(close_wait.state.as_deref(), Some("CLOSE_WAIT"));
    assert_eq!(
        close_wait.remote.as_deref(),
        Some(format!("127.0.0.1:{port}").as_str())
    );
    for fd in fds_of(&fixture, "tcp_established") {
        assert_eq!(
            entry(&sample, fd).socket.as_ref().unwrap().state.as_deref(),
            Some("ESTABLISHED")
        );
    }
    if fixture.get("fds").get("tcp6_listen").is_some() {
        let tcp6 = entry(&sample, fds_of(&fixture, "tcp6_listen")[0])
            .socket
            .clone()
            .unwrap();
        assert_eq!(
            (tcp6.protocol, tcp6.state.as_deref()),
            (SocketProtocol::Tcp6, Some("LISTEN"))
        );
    }
    let udp = entry(&sample, fds_of(&fixture, "udp")[0])
        .socket
        .clone()
        .unwrap();
    assert_eq!(
        (udp.protocol, udp.state.as_deref()),
        (SocketProtocol::Udp, Some("UNCONN"))
    );
    for fd in fds_of(&fixture, "unix") {
        let unix = entry(&sample, fd).socket.clone().unwrap();
        assert_eq!(
            (
                unix.protocol,
                unix.state.as_deref(),
                unix.socket_type.as_deref()
            ),
            (SocketProtocol::Unix, Some("CONNECTED"), Some("stream"))
        );
    }
    let netlink = entry(&sample, fds_of(&fixture, "netlink")[0])
        .socket
        .clone()
        .unwrap();
    assert_eq!(
        (netlink.protocol, netlink.netlink_protocol),
        (SocketProtocol::Netlink, Some(0))
    );

    // Limits are the fixture's own (inherited from this test process).
    let (soft, hard) = own_nofile_limits();
    assert_eq!(sample.limits.soft, soft);
    assert_eq!(sample.limits.hard, hard);
    assert!(sample.fd_size as usize >= sample.fds.len());

    fixture.assert_untouched();
}

fn own_nofile_limits() -> (Option<u64>, Option<u64>) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    let value = |s: &str| s.parse().ok();
    (value(fields[3]), value(fields[4]))
}

#[test]
fn the_cli_writes_every_fd_and_counts_them_by_group() {
    support::require_root();
    let mut fixture = Fixture::start(&["zoo"]);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("capture");
    let output = support::capture(fixture.pid(), &dir, &["--capture", "fds", "--samples", "1"]);
    let stdout = support::assert_success(&output);
    assert!(stdout.contains("SOCKET_CLOSE_WAIT"), "{stdout}");

    let fds = support::read_json(&dir, "fds.json");
    let sample = &fds["samples"][0];
    let total = fixture
        .get("fds")
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_array().unwrap().len())
        .sum::<usize>()
        + 3;
    assert_eq!(sample["fds"].as_array().unwrap().len(), total);

    let summary = support::read_json(&dir, "summary.json");
    let groups: BTreeMap<String, u64> =
        serde_json::from_value(summary["samples"][0]["fds"]["byGroup"].clone()).unwrap();
    assert_eq!(groups["socket tcp CLOSE_WAIT"], 1);
    assert_eq!(groups["socket tcp ESTABLISHED"], 2);
    assert_eq!(groups["socket unix CONNECTED"], 2);
    assert_eq!(groups["timerfd"], 1);
    assert_eq!(groups["eventpoll"], 1);
    assert_eq!(groups["memfd"], 1);
    // No threads or memory were asked for.
    assert!(!dir.join("threads.json").exists() && !dir.join("memory.json").exists());
    // One CLOSE_WAIT socket is worth knowing, not a warning.
    let findings = support::findings(&dir);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(
        (findings[0].0.as_str(), findings[0].1.as_str()),
        ("info", "SOCKET_CLOSE_WAIT")
    );
    fixture.assert_untouched();
}
