//! The operator's capture pod run by a real container runtime: a target container (the
//! socket-leaking fixture, non-root, every capability dropped), the capture pod
//! `procshot-operator render` makes for it with the default policy, run by containerd and
//! runc through the kubelet stand-in, and its container statuses read back by the
//! operator's status mapping.

mod support;

use procshot_api::{Outcome, TerminationSummary};
use procshot_operator::api::Phase;
use support::*;

/// CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE, the capabilities the default captures need.
const DEFAULT_CAPS: u64 = (1 << 2) | (1 << 19);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_pod_locates_and_captures_a_leaking_container_under_runtime_default_seccomp() {
    let node = start_node().await;
    let target = run_target(&node, target_pod(&node)).await;
    let target_pid = target.pid("api").await.unwrap();
    let target_status = target.pod();
    let container_id = target_status
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
        .container_id
        .clone()
        .unwrap();
    assert!(container_id.starts_with("containerd://"), "{container_id}");
    assert_eq!(
        target.plan().cgroup_parent,
        format!("/kubepods/burstable/pod{}", target.plan().uid)
    );

    let capture_pod = render(
        &session(
            "  capture: [fds, threads, memory]\n  samples: 3\n  interval: 2s\n  timeout: 1m\n",
        ),
        &target_status,
        &[],
    );
    let handle = node
        .kubelet()
        .run(capture_pod)
        .expect("the stand-in runs the rendered capture pod");

    // While the capture runs: root, with only the rendered capabilities, no_new_privs and
    // the runtime's default seccomp filter, as the kernel sees the process.
    handle
        .wait_for("the capture container to run", WAIT, |pod| {
            pod.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|cs| cs[0].state.as_ref().is_some_and(|s| s.running.is_some()))
        })
        .await
        .unwrap();
    let capture_pid = handle.pid("capture").await.unwrap();
    assert_eq!(
        status_field(capture_pid, "Uid").split_whitespace().next(),
        Some("0")
    );
    assert_eq!(effective_capabilities(capture_pid), DEFAULT_CAPS);
    assert_eq!(status_field(capture_pid, "NoNewPrivs"), "1");
    assert_eq!(
        status_field(capture_pid, "Seccomp"),
        "2",
        "the capture runs under a seccomp filter"
    );

    let done = handle.finished(WAIT).await.unwrap();
    // locate ran as nobody with no capability, under RuntimeDefault too.
    let locate = handle.runtime_info("locate").await.unwrap();
    let process = &locate["runtimeSpec"]["process"];
    assert_eq!(process["user"]["uid"], 65534, "{process}");
    assert_eq!(
        process["capabilities"]["effective"]
            .as_array()
            .map_or(0, Vec::len),
        0,
        "{process}"
    );
    assert_eq!(process["noNewPrivileges"], true);
    assert_eq!(locate["runtimeSpec"]["root"]["readonly"], true);
    assert_eq!(
        locate["runtimeSpec"]["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO",
        "locate runs under containerd's default seccomp profile"
    );
    assert_eq!(terminated(&done, "locate").exit_code, 0);

    let message = terminated(&done, "capture")
        .message
        .expect("a termination message");
    let summary: TerminationSummary = serde_json::from_str(&message)
        .unwrap_or_else(|e| panic!("the termination message is not the summary: {e}: {message}"));
    assert_eq!(summary.outcome, Outcome::Succeeded, "{message}");
    assert!(message.len() <= procshot_api::MAX_BYTES);

    let observation = procshot_operator::controller::observe::observe(&done, "api");
    assert_eq!(observation.phase, Phase::Succeeded, "{observation:?}");
    assert_eq!(
        observation.target_pid,
        Some(target_pid),
        "locate found the target's host pid"
    );
    assert_eq!(observation.samples, Some(3));
    let codes: Vec<&str> = observation
        .findings
        .iter()
        .map(|f| f.code.as_str())
        .collect();
    assert!(codes.contains(&"SOCKET_CLOSE_WAIT"), "{codes:?}");
    assert!(codes.contains(&"FD_GROWTH"), "{codes:?}");
    let fds = observation.counts.as_ref().and_then(|c| c.fds).unwrap();
    assert!(
        fds > 50,
        "the target's fds were read through hostPID: {fds}"
    );
    assert!(
        observation
            .counts
            .as_ref()
            .and_then(|c| c.cgroup_limit_bytes)
            .is_some(),
        "the target's cgroup limit was read through the mounted /sys/fs/cgroup: {observation:?}"
    );

    shut_down(node).await;
}
