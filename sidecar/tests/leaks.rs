//! Real processes leaking one kind of fd each: every leak yields its FD_GROWTH finding with
//! the right group, and the numbers match the leak rate.

mod support;

use support::Fixture;

/// Leaks fds of `kind` at `per_second` and captures 3 samples 1 s apart; returns the
/// capture directory's findings and the growth of `group`.
fn capture_leak(
    kind: &str,
    per_second: &str,
    group: &str,
) -> (Vec<(String, String, String)>, Vec<u64>) {
    support::require_root();
    let mut fixture = Fixture::start(&["leak", kind, per_second]);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("capture");
    let output = support::capture(
        fixture.pid(),
        &dir,
        &["--samples", "3", "--interval", "1s", "--capture", "fds"],
    );
    support::assert_success(&output);
    fixture.assert_untouched();
    let summary = support::read_json(&dir, "summary.json");
    let growth = summary["growth"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metric"] == format!("fds: {group}"))
        .unwrap_or_else(|| panic!("no growth entry for {group}: {summary}"));
    let values = growth["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    (support::findings(&dir), values)
}

/// Asserts an FD_GROWTH finding (warning or critical) whose message starts with `words`,
/// and a growth of about `expected` fds over the 2 s between first and last sample.
fn assert_leak(kind: &str, per_second: &str, group: &str, words: &str, expected: u64) {
    let (findings, values) = capture_leak(kind, per_second, group);
    let growth = values[2] - values[0];
    assert!(
        values.windows(2).all(|w| w[1] > w[0]),
        "{group} should grow in every sample: {values:?}"
    );
    assert!(
        growth >= expected * 6 / 10 && growth <= expected * 14 / 10,
        "{group} grew by {growth}, expected about {expected}: {values:?}"
    );
    let finding = findings
        .iter()
        .find(|(_, code, message)| code == "FD_GROWTH" && message.starts_with(words))
        .unwrap_or_else(|| panic!("no FD_GROWTH finding for {words}: {findings:?}"));
    assert!(
        finding.0 == "warning" || finding.0 == "critical",
        "{finding:?}"
    );
}

#[test]
fn leaked_files_are_found() {
    assert_leak("file", "20", "regular_file", "regular files grew", 40);
}

#[test]
fn leaked_pipes_are_found() {
    // Each step opens both ends of a pipe.
    assert_leak("pipe", "10", "pipe", "pipes grew", 40);
}

#[test]
fn leaked_timerfds_are_found_and_pointed_at_native_code() {
    assert_leak("timerfd", "20", "timerfd", "timerfds grew", 40);
    let (findings, _) = capture_leak("timerfd", "20", "timerfd");
    let message = &findings.iter().find(|f| f.1 == "FD_GROWTH").unwrap().2;
    assert!(
        message.contains("Go's runtime does not create a timerfd per time.Ticker"),
        "{message}"
    );
}

#[test]
fn leaked_eventfds_are_found() {
    assert_leak("eventfd", "20", "eventfd", "eventfds grew", 40);
}

#[test]
fn leaked_epoll_instances_are_found() {
    assert_leak("epoll", "20", "eventpoll", "epoll instances grew", 40);
}

#[test]
fn leaked_memfds_are_found() {
    assert_leak("memfd", "20", "memfd", "memfds grew", 40);
}

#[test]
fn leaked_inotify_instances_are_found() {
    // inotify instances are limited to 128 per user: leak only a few.
    assert_leak("inotify", "6", "inotify", "inotify instances grew", 12);
}

#[test]
fn leaked_established_sockets_are_found_with_their_peer() {
    let (findings, values) = capture_leak("socket-established", "10", "socket tcp ESTABLISHED");
    // Both ends live in the fixture: 2 sockets per step.
    assert!(values[2] - values[0] >= 24, "{values:?}");
    let (_, _, message) = findings
        .iter()
        .find(|f| f.1 == "FD_GROWTH")
        .expect("FD_GROWTH");
    assert!(
        message.starts_with("tcp sockets in ESTABLISHED grew"),
        "{message}"
    );
    assert!(message.contains("top peers: 127.0.0.1:"), "{message}");
}

#[test]
fn leaked_close_wait_sockets_are_found_with_their_peer() {
    support::require_root();
    let fixture = Fixture::start(&["leak", "socket-close-wait", "20"]);
    let port = fixture.get("tcp_port").as_u64().unwrap();
    let (_out, dir) = support::capture_ok(fixture.pid(), &["--samples", "3", "--interval", "1s"]);
    let findings = support::findings(&dir);
    let peer = format!("127.0.0.1:{port}");

    let growth = findings
        .iter()
        .find(|f| f.1 == "FD_GROWTH")
        .expect("FD_GROWTH");
    assert!(
        growth.2.starts_with("tcp sockets in CLOSE_WAIT grew"),
        "{}",
        growth.2
    );
    assert!(
        growth.2.contains(&format!("top peers: {peer}")),
        "{}",
        growth.2
    );

    let close_wait = findings
        .iter()
        .find(|f| f.1 == "SOCKET_CLOSE_WAIT")
        .expect("SOCKET_CLOSE_WAIT");
    assert_eq!(close_wait.0, "warning");
    assert!(close_wait.2.contains(&peer), "{}", close_wait.2);
    // Findings are sorted, most serious first.
    let order: Vec<&str> = findings.iter().map(|f| f.0.as_str()).collect();
    let rank = |s: &str| {
        ["critical", "warning", "info"]
            .iter()
            .position(|x| *x == s)
            .unwrap()
    };
    assert!(
        order.windows(2).all(|w| rank(w[0]) <= rank(w[1])),
        "{order:?}"
    );
}

#[test]
fn a_leak_close_to_the_limit_is_critical() {
    support::require_root();
    // A soft limit of 64 fds, leaking 20 per second: the limit is seconds away.
    let fixture = Fixture::start_prepared(&["leak", "eventfd", "20"], "ulimit -S -n 64");
    let (_out, dir) = support::capture_ok(
        fixture.pid(),
        &["--samples", "2", "--interval", "1s", "--capture", "fds"],
    );
    let findings = support::findings(&dir);
    let growth = findings
        .iter()
        .find(|f| f.1 == "FD_GROWTH")
        .expect("FD_GROWTH");
    assert_eq!(growth.0, "critical", "{growth:?}");
    assert!(
        growth.2.contains("the soft limit is reached in about"),
        "{}",
        growth.2
    );
}
