//! What goes wrong for real on a node: a capture pod whose capabilities were taken away
//! (as a policy engine's mutation would), a target that restarts during the capture,
//! targets in the other QoS classes, and a capture pod over its memory limit.

mod support;

use std::time::Duration;

use procshot_operator::api::Phase;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_pod_without_its_capabilities_fails_and_says_which() {
    let node = start_node().await;
    let target = run_target(&node, target_pod(&node)).await;
    let mut capture_pod = render(
        &session("  samples: 1\n  timeout: 1m\n"),
        &target.pod(),
        &[],
    );
    let sc = capture_pod.spec.as_mut().unwrap().containers[0]
        .security_context
        .as_mut()
        .unwrap();
    sc.capabilities.as_mut().unwrap().add = None;
    let (_handle, done, observation) = capture(&node, capture_pod).await;
    assert_eq!(observation.phase, Phase::Failed, "{observation:?}");
    let message = observation.message.clone().unwrap_or_default();
    eprintln!("the session's message: {message}");
    assert!(
        message.contains("CAP_SYS_PTRACE"),
        "the failure names the capability: {message}"
    );
    assert_ne!(terminated(&done, "capture").exit_code, 0);

    shut_down(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_restarts_during_the_capture_gives_a_partial_capture() {
    let node = start_node().await;
    let target = run_target(&node, target_pod(&node)).await;
    let first_pid = target.pid("api").await.unwrap();
    let first_id = target.state().container_ids["api"].clone();
    let capture_pod = render(
        &session("  samples: 8\n  interval: 1s\n  timeout: 1m\n"),
        &target.pod(),
        &[],
    );
    let handle = node.kubelet().run(capture_pod).unwrap();
    handle
        .wait_for("the first sample", WAIT, |_| {
            handle
                .log("capture", 0)
                .iter()
                .any(|l| l.contains("sample 2/"))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}; capture log: {:?}", handle.log("capture", 0)));
    // The target crashes (as a SIGKILL from the kernel's OOM killer would end it).
    unsafe { libc::kill(first_pid, libc::SIGKILL) };
    let restarted = target
        .wait_for("the target to restart", WAIT, |pod| {
            let c = &pod
                .status
                .as_ref()
                .unwrap()
                .container_statuses
                .as_ref()
                .unwrap()[0];
            c.restart_count == 1 && c.state.as_ref().is_some_and(|s| s.running.is_some())
        })
        .await
        .unwrap();
    let done = handle.finished(WAIT).await.unwrap();
    let observation = procshot_operator::controller::observe::observe(&done, "api");
    assert_eq!(observation.phase, Phase::Succeeded, "{observation:?}");
    let message = observation.message.clone().unwrap_or_default();
    assert!(message.starts_with("partial capture"), "{message}");

    // The kubelet's restart: a new container in the same sandbox and pod cgroup, its
    // last state the killed one, its log the next file.
    let status = &restarted
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0];
    let last = status
        .last_state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .unwrap();
    assert_eq!(last.exit_code, 137, "{last:?}");
    let second_id = target.state().container_ids["api"].clone();
    assert_ne!(second_id, first_id);
    let second_pid = target.pid("api").await.unwrap();
    let cgroup = std::fs::read_to_string(format!("/proc/{second_pid}/cgroup")).unwrap();
    assert!(
        cgroup.contains(&format!("{}/{second_id}", target.plan().cgroup_parent)),
        "{cgroup}"
    );
    target
        .wait_for("the restarted fixture's READY", WAIT, |_| {
            target.log("api", 1).iter().any(|l| l.starts_with("READY"))
        })
        .await
        .unwrap();

    shut_down(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_in_the_guaranteed_and_besteffort_classes_are_located() {
    let node = start_node().await;
    for (qos, resources, parent) in [
        (
            "Guaranteed",
            Some("{requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: 100m, memory: 64Mi}}"),
            "/kubepods/pod",
        ),
        ("BestEffort", None, "/kubepods/besteffort/pod"),
    ] {
        let mut pod = target_pod(&node);
        let container = &mut pod.spec.as_mut().unwrap().containers[0];
        container.resources = resources.map(|r| serde_saphyr::from_str(r).unwrap());
        let target = run_target(&node, pod).await;
        let uid = target.plan().uid.clone();
        assert_eq!(target.plan().cgroup_parent, format!("{parent}{uid}"));
        assert_eq!(target.pod().status.unwrap().qos_class.as_deref(), Some(qos));
        let capture_pod = render(
            &session("  samples: 1\n  timeout: 1m\n"),
            &target.pod(),
            &[],
        );
        let (capture_handle, _done, observation) = capture(&node, capture_pod).await;
        assert_eq!(
            observation.phase,
            Phase::Succeeded,
            "{qos}: {observation:?}"
        );
        assert_eq!(
            observation.target_pid,
            Some(target.pid("api").await.unwrap()),
            "{qos}"
        );
        let limit = observation
            .counts
            .as_ref()
            .and_then(|c| c.cgroup_limit_bytes);
        if qos == "Guaranteed" {
            assert_eq!(limit, Some(64 << 20), "{observation:?}");
        }
        capture_handle
            .delete(Duration::from_secs(30))
            .await
            .unwrap();
        target.delete(Duration::from_secs(30)).await.unwrap();
    }
    shut_down(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_pod_over_its_memory_limit_is_oom_killed_and_the_session_fails() {
    let node = start_node().await;
    // A target with 15,000 open fds: describing them takes the capture some MiB.
    let mut pod = target_pod(&node);
    pod.spec.as_mut().unwrap().containers[0].args = Some(vec!["many-fds".into(), "15000".into()]);
    let target = run_target(&node, pod).await;
    let mut capture_pod = render(
        &session("  samples: 2\n  interval: 1s\n  timeout: 1m\n"),
        &target.pod(),
        &[],
    );
    // A limit below what the capture needs (as a LimitRange or a mutating webhook could
    // impose), though enough for runc to start the container (2Mi is not: runc's own
    // init then fails with ContainerCannotRun).
    let container = &mut capture_pod.spec.as_mut().unwrap().containers[0];
    container.resources =
        Some(serde_saphyr::from_str("{requests: {memory: 8Mi}, limits: {memory: 8Mi}}").unwrap());
    let (_handle, done, observation) = capture(&node, capture_pod).await;
    let capture = terminated(&done, "capture");
    assert_eq!(capture.reason.as_deref(), Some("OOMKilled"), "{capture:?}");
    assert_eq!(observation.phase, Phase::Failed, "{observation:?}");
    assert!(
        observation
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("OOM-killed"),
        "{observation:?}"
    );

    shut_down(node).await;
}
