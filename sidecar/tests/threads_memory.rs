//! Threads and memory of real processes: a process spawning threads, one growing its heap,
//! and processes inside a memory cgroup the test creates (cgroup v1 `memory` hierarchy or
//! v2, whichever this host has).

mod support;

use std::path::Path;
use std::time::Duration;

use procshot::captures::threads::{self, KernelStack};
use procshot::process::Target;
use support::{Fixture, TestCgroup};

#[test]
fn threads_are_listed_with_state_syscall_and_kernel_stack() {
    support::require_root();
    let mut fixture = Fixture::start(&["threads", "20"]);
    let pid = fixture.pid();
    support::wait_for("5 workers", Duration::from_secs(5), || {
        fixture.thread_states().len() >= 7
    });
    let target = Target::open(Path::new("/proc"), pid).unwrap();
    let sample = threads::capture(&target).unwrap();

    let main = sample
        .threads
        .iter()
        .find(|t| t.tid == pid)
        .expect("main thread");
    assert_eq!(main.name, "fixture");
    let workers: Vec<_> = sample
        .threads
        .iter()
        .filter(|t| t.name.starts_with("worker-"))
        .collect();
    assert!(workers.len() >= 5, "{:?}", sample.threads);
    for worker in &workers {
        assert_eq!(worker.state, "S", "{worker:?}");
        assert_eq!(worker.syscall.as_deref(), Some("pause"), "{worker:?}");
        let KernelStack::Read { frames } = &worker.kernel_stack else {
            panic!("root can read kernel stacks: {:?}", worker.kernel_stack);
        };
        assert!(frames.iter().any(|f| f.contains("pause")), "{frames:?}");
        assert!(worker.voluntary_switches.is_some());
    }
    fixture.assert_untouched();
}

#[test]
fn growing_threads_give_thread_growth_naming_the_threads() {
    support::require_root();
    let fixture = Fixture::start(&["threads", "10"]);
    let (_out, dir) = support::capture_ok(fixture.pid(), &["--samples", "3", "--interval", "1s"]);
    let (severity, message) = support::finding(&dir, "THREAD_GROWTH");
    assert_eq!(severity, "warning");
    assert!(message.contains("growing names: worker-* (+"), "{message}");
    let summary = support::read_json(&dir, "summary.json");
    let counts: Vec<u64> = summary["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["threads"]["total"].as_u64().unwrap())
        .collect();
    assert!(
        counts[2] - counts[0] >= 14 && counts[2] - counts[0] <= 26,
        "10 threads/s for 2 s: {counts:?}"
    );
}

#[test]
fn growing_memory_gives_rss_growth() {
    support::require_root();
    let fixture = Fixture::start(&["grow-mem", "40"]);
    let (_out, dir) = support::capture_ok(
        fixture.pid(),
        &["--samples", "3", "--interval", "1s", "--capture", "memory"],
    );
    let (severity, message) = support::finding(&dir, "RSS_GROWTH");
    assert_eq!(severity, "warning");
    assert!(message.starts_with("resident memory grew"), "{message}");
    let memory = support::read_json(&dir, "memory.json");
    let rss: Vec<u64> = memory["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"]["vmRss"].as_u64().unwrap())
        .collect();
    let grown = (rss[2] - rss[0]) >> 20;
    assert!(
        (60..=100).contains(&grown),
        "40 MiB/s for 2 s, grew {grown} MiB: {rss:?}"
    );
    let top = &memory["samples"][2]["mappings"]["topByRss"][0];
    assert!(
        top["rss"].as_u64().unwrap() > 1 << 20,
        "the heap leads the mappings: {top}"
    );
}

#[test]
fn a_cgroup_near_its_limit_and_its_oom_kills_are_found() {
    support::require_root();
    const LIMIT: u64 = 48 << 20;
    let cgroup = TestCgroup::create("near-limit", LIMIT);

    // Grow 6 MiB/s inside the cgroup; capture as soon as usage passes 91.5 % (about 0.7 s
    // before the limit, when the kernel OOM-kills it).
    let mut growing = cgroup.start(&["grow-mem", "6"]);
    support::wait_for("usage near the limit", Duration::from_secs(20), || {
        cgroup.usage() >= LIMIT * 915 / 1000
    });
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("near");
    support::assert_success(&support::capture(
        growing.pid(),
        &dir,
        &["--samples", "1", "--capture", "memory"],
    ));
    let (severity, message) = support::finding(&dir, "CGROUP_MEMORY_NEAR_LIMIT");
    assert!(
        severity == "warning" || severity == "critical",
        "{severity}"
    );
    assert!(
        message.contains("of its memory limit of 48.0 MiB"),
        "{message}"
    );

    let memory = support::read_json(&dir, "memory.json");
    let cg = &memory["samples"][0]["cgroup"];
    assert_eq!(cg["version"].as_u64(), Some(u64::from(cgroup.version)));
    assert_eq!(cg["limitBytes"].as_u64(), Some(LIMIT));
    assert_eq!(cg["effectiveLimit"]["bytes"].as_u64(), Some(LIMIT));
    assert_eq!(cg["dir"].as_str(), Some(cgroup.dir.to_str().unwrap()));

    // It keeps growing until the kernel OOM-kills it.
    support::wait_for("the OOM kill", Duration::from_secs(20), || {
        growing.child.try_wait().unwrap().is_some()
    });
    assert_eq!(cgroup.read_oom_kills(), 1);

    // A healthy process in the same cgroup: the earlier OOM kill is reported.
    let steady = cgroup.start(&["steady"]);
    let dir = out.path().join("after");
    support::assert_success(&support::capture(
        steady.pid(),
        &dir,
        &["--samples", "1", "--capture", "memory"],
    ));
    let (severity, message) = support::finding(&dir, "CGROUP_OOM_KILLS");
    assert_eq!(severity, "warning");
    assert_eq!(
        message,
        "the kernel has OOM-killed 1 process(es) in this cgroup, none during this capture"
    );
    growing.kill();
}

/// procshot in a capture pod sees the target's cgroup relative to its own cgroup namespace
/// (`/../procshot-test-…`) and reads the node's hierarchy through a mount of it
/// (`--cgroup-root`). Imitated here as a container runtime does it: procshot runs in a
/// sibling cgroup under `unshare --cgroup --mount`, with a fresh /sys/fs/cgroup whose
/// memory hierarchy shows only its namespace, and the host's /sys/fs/cgroup bound elsewhere.
#[test]
fn a_capture_from_another_cgroup_namespace_finds_the_targets_cgroup() {
    support::require_root();
    const LIMIT: u64 = 96 << 20;
    let target_cgroup = TestCgroup::create("ns-target", LIMIT);
    let own_cgroup = TestCgroup::create("ns-capture", 1 << 40);
    assert_eq!(
        target_cgroup.version, 1,
        "this test imitates a v1 node (the memory hierarchy)"
    );
    let fixture = target_cgroup.start(&["steady"]);
    let work = tempfile::tempdir().unwrap();
    let host = work.path().join("host-cgroup");
    std::fs::create_dir(&host).unwrap();
    let out = work.path().join("capture");
    let inner = format!(
        "mount --rbind /sys/fs/cgroup {host} && mount -t tmpfs none /sys/fs/cgroup && mkdir /sys/fs/cgroup/memory && \
         mount -t cgroup -o memory none /sys/fs/cgroup/memory && \
         exec {procshot} capture --pid {pid} --out {out} --samples 1 --capture memory --cgroup-root {host}",
        host = host.display(),
        procshot = env!("CARGO_BIN_EXE_procshot"),
        pid = fixture.pid(),
        out = out.display(),
    );
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {} && exec unshare --cgroup --mount sh -c '{inner}'",
            own_cgroup.dir.join("cgroup.procs").display()
        ))
        .output()
        .unwrap();
    support::assert_success(&output);
    let memory = support::read_json(&out, "memory.json");
    let cgroup = &memory["samples"][0]["cgroup"];
    assert!(
        cgroup["path"].as_str().unwrap().starts_with("/../"),
        "seen from the namespace: {cgroup}"
    );
    assert_eq!(cgroup["limitBytes"].as_u64(), Some(LIMIT), "{cgroup}");
    let dir = cgroup["dir"].as_str().unwrap();
    assert!(
        dir.starts_with(host.to_str().unwrap())
            && dir.ends_with(target_cgroup.dir.file_name().unwrap().to_str().unwrap()),
        "{dir}"
    );
}
