//! Every capture kind in the capture pod the operator renders, run for real: native
//! stacks (threads stopped one at a time and released, names from a binary that exists
//! only inside the target container), kernel stacks with the admin's `--kernel-stacks`, a
//! core dump within the rendered memory limit and scratch volume, and goroutines from a
//! Go target whose pprof endpoint listens on 127.0.0.1 inside its own pod's network
//! namespace.

mod support;

use procshot_operator::api::Phase;
use serde_json::Value;
use support::*;

/// Every value under key `key`, anywhere in `json`.
fn values_of<'a>(json: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
    match json {
        Value::Object(map) => {
            for (k, v) in map {
                if k == key {
                    out.push(v);
                }
                values_of(v, key, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| values_of(v, key, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stacks_kernel_stacks_and_a_core_dump_run_in_the_rendered_capture_pod() {
    let node = start_node().await;
    let target = run_target(&node, target_pod(&node)).await;
    let target_pid = target.pid("api").await.unwrap();
    assert!(
        !std::path::Path::new("/usr/local/bin/fixture").exists(),
        "the fixture must exist only inside its container for this test"
    );
    // Stacks and a core with the capabilities the operator gives them by default
    // (SYS_PTRACE, DAC_READ_SEARCH: no SYS_ADMIN, so no map_files).
    let capture_pod = render(
        &session(
            "  capture: [fds, threads, memory, stacks, core]\n  core: {maxBytes: 64Mi}\n  \
             samples: 2\n  interval: 1s\n  timeout: 1m\n",
        ),
        &target.pod(),
        &["--allowed-captures=fds,threads,memory,stacks,goroutines,core"],
    );
    let caps = capture_pod.spec.as_ref().unwrap().containers[0]
        .security_context
        .as_ref()
        .unwrap()
        .capabilities
        .as_ref()
        .unwrap()
        .add
        .clone()
        .unwrap();
    assert_eq!(caps, ["DAC_READ_SEARCH", "SYS_PTRACE"]);
    let (handle, _done, observation) = capture(&node, capture_pod).await;
    assert_eq!(observation.phase, Phase::Succeeded, "{observation:?}");
    assert_eq!(
        observation.message, None,
        "a complete capture: {observation:?}"
    );

    let dir = volume(&handle, "work").join("capture");
    let stacks = std::fs::read_to_string(dir.join("stacks.txt")).expect("stacks.txt");
    assert!(
        stacks.contains("stdin_watcher"),
        "the fixture's functions are named from its binary inside the container:\n{stacks}"
    );
    let stacks_json: Value =
        serde_json::from_slice(&std::fs::read(dir.join("stacks.json")).unwrap()).unwrap();
    assert_ne!(stacks_json["incomplete"], true, "every thread was read");
    let mut errors = Vec::new();
    values_of(&stacks_json, "error", &mut errors);
    assert!(errors.is_empty(), "threads without a stack: {errors:?}");
    let states = std::fs::read_to_string(format!("/proc/{target_pid}/stat")).unwrap();
    assert!(
        !states.contains(") t "),
        "the target was released: {states}"
    );

    let core = std::fs::metadata(dir.join("core.zst")).expect("core.zst in the scratch volume");
    assert!(core.len() > 0);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert!(
        manifest["core"]["threads"].as_u64().unwrap() >= 2,
        "{}",
        manifest["core"]
    );
    assert!(
        manifest["core"].get("partialReason").is_none(),
        "{}",
        manifest["core"]
    );
    let limit = handle.plan().containers[0].memory_limit.unwrap();
    assert_eq!(limit, (256 << 20) + (64 << 20), "the rendered memory limit");
    let scratch = handle
        .plan()
        .volumes
        .iter()
        .find(|v| v.name == "work")
        .unwrap();
    assert_eq!(
        scratch.kind,
        procshot_node_testbed::kubelet::spec::VolumeKind::EmptyDir {
            size_limit: Some((256 << 20) + (64 << 20))
        },
        "the scratch volume's sizeLimit"
    );

    // Kernel stacks, with the admin's --kernel-stacks (SYS_ADMIN).
    let capture_pod = render(
        &session("  capture: [threads]\n  samples: 1\n  timeout: 1m\n"),
        &target.pod(),
        &["--kernel-stacks"],
    );
    let (handle, _done, observation) = capture(&node, capture_pod).await;
    assert_eq!(observation.phase, Phase::Succeeded, "{observation:?}");
    let dir = volume(&handle, "work").join("capture");
    let threads: Value =
        serde_json::from_slice(&std::fs::read(dir.join("threads.json")).unwrap()).unwrap();
    let mut kernel_stacks = Vec::new();
    values_of(&threads, "kernelStack", &mut kernel_stacks);
    assert!(!kernel_stacks.is_empty());
    for stack in &kernel_stacks {
        assert_eq!(
            stack["status"], "read",
            "kernel stacks are readable with SYS_ADMIN: {stack}"
        );
    }

    shut_down(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goroutines_are_read_from_pprof_on_127_0_0_1_inside_the_target_pod() {
    let node = start_node().await;
    let mut pod = target_pod(&node);
    let container = &mut pod.spec.as_mut().unwrap().containers[0];
    container.command = Some(vec!["/usr/local/bin/leaky".into()]);
    container.args = Some(vec![
        "-addr=127.0.0.1:6060".into(),
        "-leak-per-second=20".into(),
    ]);
    let target = run_target(&node, pod).await;
    let target_pid = target.pid("api").await.unwrap();
    let netns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    assert_ne!(
        netns(&target_pid.to_string()),
        netns("self"),
        "the target has its own network namespace"
    );
    let capture_pod = render(
        &session(
            "  capture: [fds, goroutines]\n  goPprof: {port: 6060}\n  samples: 3\n  \
             interval: 2s\n  timeout: 1m\n",
        ),
        &target.pod(),
        &[],
    );
    let (_handle, _done, observation) = capture(&node, capture_pod).await;
    assert_eq!(observation.phase, Phase::Succeeded, "{observation:?}");
    assert_eq!(observation.message, None, "{observation:?}");
    let goroutines = observation
        .counts
        .as_ref()
        .and_then(|c| c.goroutines)
        .unwrap();
    assert!(goroutines > 20, "{goroutines}");
    let growth = observation
        .findings
        .iter()
        .find(|f| f.code == "GOROUTINE_GROWTH")
        .unwrap_or_else(|| panic!("no GOROUTINE_GROWTH: {:?}", observation.findings));
    assert!(
        growth.message.contains("main.leakTicker"),
        "{}",
        growth.message
    );

    shut_down(node).await;
}
