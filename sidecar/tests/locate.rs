//! `procshot locate` on real cgroups named the way kubelets and runtimes name them, with
//! real processes moved into them: every cgroup version, driver and runtime, another pod
//! holding the same container ID, a pid namespace, a cgroup namespace, a container that
//! starts late, one that never does, and malformed IDs.
//!
//! Each test builds its cgroups under `/sys/fs/cgroup/HIERARCHY/procshot-locate-PID-TEST/`
//! (v2: the `unified` hierarchy of this hybrid host; v1: `memory` and `pids`) and removes
//! them, with every process in them, when it ends, even on failure.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The cgroup v2 hierarchy of a hybrid host.
const V2: &[&str] = &["unified"];
/// The v1 hierarchies the kubelet puts containers in (among others).
const V1: &[&str] = &["memory", "pids"];

/// A container's "main process": joins the cgroup, then runs two children inside it.
const CONTAINER_COMMAND: &str = "sleep 1000 & sleep 1000 & wait";

/// Cgroups made for one test in some hierarchies, and the processes started in them.
/// Dropping it kills every process in the tree and removes the directories, deepest first.
struct CgroupSandbox {
    name: String,
    hierarchies: &'static [&'static str],
    children: Vec<Child>,
}

/// A process tree started in a cgroup of the sandbox.
#[derive(Debug)]
struct Container {
    /// Its main process (whose parent is outside the cgroup).
    main: i32,
    /// Every pid in its cgroup, sorted, as the kernel lists them.
    pids: Vec<i32>,
}

impl CgroupSandbox {
    fn new(test: &str, hierarchies: &'static [&'static str]) -> Self {
        support::require_root();
        let sandbox = Self {
            name: format!("procshot-locate-{}-{test}", std::process::id()),
            hierarchies,
            children: Vec::new(),
        };
        for root in sandbox.roots() {
            assert!(
                root.parent().unwrap().join("cgroup.procs").exists(),
                "no cgroup hierarchy at {} (these tests expect a hybrid host: v1 at \
                 /sys/fs/cgroup/{{memory,pids}}, v2 at /sys/fs/cgroup/unified)",
                root.parent().unwrap().display()
            );
        }
        sandbox
    }

    /// The sandbox's directory in each of its hierarchies.
    fn roots(&self) -> Vec<PathBuf> {
        self.hierarchies
            .iter()
            .map(|h| Path::new("/sys/fs/cgroup").join(h).join(&self.name))
            .collect()
    }

    /// `relative`'s path as `/proc/PID/cgroup` shows it.
    fn path(&self, relative: &str) -> String {
        format!("/{}/{relative}", self.name)
    }

    /// Creates `relative` in every hierarchy of the sandbox; returns its `cgroup.procs`
    /// files.
    fn create(&self, relative: &str) -> Vec<PathBuf> {
        self.roots()
            .into_iter()
            .map(|root| {
                let dir = root.join(relative);
                std::fs::create_dir_all(&dir)
                    .unwrap_or_else(|e| panic!("create cgroup {}: {e}", dir.display()));
                dir.join("cgroup.procs")
            })
            .collect()
    }

    /// Starts `sh -c CONTAINER_COMMAND` in the cgroup `relative` (created if need be); the
    /// shell joins it in every hierarchy before it forks, so its children start inside.
    fn start(&mut self, relative: &str) -> Container {
        let join = self.join_command(relative);
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("{join} && exec sh -c '{CONTAINER_COMMAND}'"))
            .spawn()
            .expect("start sh");
        let main = child.id() as i32;
        self.children.push(child);
        let pids = self.wait_for_pids(relative, 3);
        assert!(pids.contains(&main), "{main} not in {pids:?}");
        Container { main, pids }
    }

    /// Like [`CgroupSandbox::start`], but the container's shell runs as pid 1 of a new pid
    /// namespace (`unshare --pid --fork`); `unshare` itself stays outside the cgroup.
    fn start_in_pid_namespace(&mut self, relative: &str) -> Container {
        let join = self.join_command(relative);
        let child = Command::new("unshare")
            .args([
                "--pid",
                "--fork",
                "--mount-proc",
                "--kill-child",
                "sh",
                "-c",
            ])
            .arg(format!("{join} && exec sh -c '{CONTAINER_COMMAND}'"))
            .spawn()
            .expect("start unshare (util-linux)");
        let unshare = child.id();
        self.children.push(child);
        let pids = self.wait_for_pids(relative, 3);
        let children =
            std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children")).unwrap();
        let main: i32 = children
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("unshare {unshare} should have one child: {children:?}"));
        assert!(pids.contains(&main), "{main} not in {pids:?}");
        Container { main, pids }
    }

    /// A shell command moving the shell into `relative` in every hierarchy.
    fn join_command(&self, relative: &str) -> String {
        self.create(relative)
            .iter()
            .map(|procs| format!("echo $$ > {}", procs.display()))
            .collect::<Vec<_>>()
            .join(" && ")
    }

    /// Waits until `relative` holds `count` processes in every hierarchy; returns them.
    fn wait_for_pids(&self, relative: &str, count: usize) -> Vec<i32> {
        let files = self.create(relative);
        let read = |file: &Path| -> Vec<i32> {
            let mut pids: Vec<i32> = std::fs::read_to_string(file)
                .unwrap()
                .lines()
                .map(|l| l.parse().unwrap())
                .collect();
            pids.sort();
            pids
        };
        support::wait_for(
            &format!("{count} processes in {relative}"),
            Duration::from_secs(10),
            || files.iter().all(|f| read(f).len() == count),
        );
        let pids = read(&files[0]);
        for file in &files[1..] {
            assert_eq!(read(file), pids, "{}", file.display());
        }
        pids
    }
}

impl Drop for CgroupSandbox {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for root in self.roots() {
            remove_cgroup_tree(&root);
        }
    }
}

/// Kills every process in the cgroup `dir` and its descendants and removes them, deepest
/// first. Never panics (it runs in `Drop`, possibly while a test fails).
fn remove_cgroup_tree(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup_tree(&entry.path());
        }
    }
    for _ in 0..200 {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|l| l.parse().ok()) {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        if std::fs::remove_dir(dir).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    eprintln!("warning: could not remove test cgroup {}", dir.display());
}

/// 64 hex digits unique to this test binary run, test and purpose.
fn container_id(test: &str, what: &str) -> String {
    hex::encode(Sha256::digest(format!(
        "{}-{test}-{what}",
        std::process::id()
    )))
}

/// A pod UID (a UUID) unique to this test binary run, test and purpose.
fn pod_uid(test: &str, what: &str) -> String {
    let hex = container_id(test, &format!("pod-{what}"));
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The pod UID as systemd slice names carry it.
fn underscored(uid: &str) -> String {
    uid.replace('-', "_")
}

/// Runs `procshot locate --pod-uid UID --container-id ID --out DIR/target.json ARGS…`;
/// returns the output and target.json when it was written.
fn locate(pod_uid: &str, container_id: &str, args: &[&str]) -> (Output, Option<Value>) {
    locate_with(support::procshot(), pod_uid, container_id, args)
}

/// Like [`locate`], through a prepared command (`support::procshot()` or a wrapper whose
/// arguments end with the procshot binary).
fn locate_with(
    mut command: Command,
    pod_uid: &str,
    container_id: &str,
    args: &[&str],
) -> (Output, Option<Value>) {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("target.json");
    let output = command
        .args([
            "locate",
            "--pod-uid",
            pod_uid,
            "--container-id",
            container_id,
            "--out",
        ])
        .arg(&file)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let json = std::fs::read_to_string(&file)
        .ok()
        .map(|text| serde_json::from_str(&text).unwrap());
    (output, json)
}

/// Asserts a successful run and that target.json is exactly `expected` plus a fresh
/// `locatedAt`; returns stdout.
fn assert_located(result: (Output, Option<Value>), expected: Value) -> String {
    let (output, json) = result;
    let stdout = support::assert_success(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("vanished mid-scan") && stderr.contains("unreadable"),
        "debug line on stderr: {stderr}"
    );
    let mut json = json.expect("target.json written");
    let located_at = json
        .as_object_mut()
        .unwrap()
        .remove("locatedAt")
        .expect("locatedAt");
    let located_at = chrono::DateTime::parse_from_rfc3339(located_at.as_str().unwrap())
        .expect("locatedAt is RFC 3339");
    let age = chrono::Utc::now().signed_duration_since(located_at);
    assert!(
        age >= chrono::TimeDelta::zero() && age < chrono::TimeDelta::seconds(60),
        "locatedAt {located_at} is not now"
    );
    assert_eq!(json, expected, "target.json");
    assert_eq!(stdout.lines().count(), 1, "one summary line: {stdout}");
    stdout
}

/// The expected target.json (without `locatedAt`).
#[allow(clippy::too_many_arguments)]
fn expected(
    runtime: &str,
    id: &str,
    uid: &str,
    container: &Container,
    ns_pid: i32,
    cgroup_path: &str,
    cgroup_version: u8,
    method: &str,
) -> Value {
    json!({
        "containerId": format!("{runtime}://{id}"),
        "runtime": runtime,
        "podUid": uid,
        "mainPid": container.main,
        "pids": container.pids,
        "nsPid": ns_pid,
        "cgroupPath": cgroup_path,
        "cgroupVersion": cgroup_version,
        "method": method,
    })
}

#[test]
fn v2_systemd_containerd_burstable_pod() {
    const TEST: &str = "v2-systemd-containerd";
    let mut sandbox = CgroupSandbox::new(TEST, V2);
    let (uid, id, sibling) = (
        pod_uid(TEST, "pod"),
        container_id(TEST, "app"),
        container_id(TEST, "sidecar"),
    );
    let pod = format!(
        "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
        underscored(&uid)
    );
    let cgroup = format!("{pod}/cri-containerd-{id}.scope");
    let container = sandbox.start(&cgroup);
    // Another container of the same pod is not this one.
    let other = sandbox.start(&format!("{pod}/cri-containerd-{sibling}.scope"));

    let stdout = assert_located(
        locate(&uid, &format!("containerd://{id}"), &[]),
        expected(
            "containerd",
            &id,
            &uid,
            &container,
            container.main,
            &sandbox.path(&cgroup),
            2,
            "cgroup-v2 systemd containerd",
        ),
    );
    assert!(
        stdout.starts_with(&format!(
            "located containerd://{id} of pod {uid}: main pid {} (pid {} in its namespace), 3 process(es)",
            container.main, container.main
        )),
        "{stdout}"
    );
    assert!(other.pids.iter().all(|p| !container.pids.contains(p)));
}

#[test]
fn v2_systemd_crio_in_the_container_child_of_its_scope() {
    const TEST: &str = "v2-systemd-crio";
    let mut sandbox = CgroupSandbox::new(TEST, V2);
    let (uid, id) = (pod_uid(TEST, "pod"), container_id(TEST, "app"));
    let pod = format!(
        "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice",
        underscored(&uid)
    );
    let cgroup = format!("{pod}/crio-{id}.scope/container");
    let container = sandbox.start(&cgroup);
    // conmon, next to the container, is not part of it.
    let conmon = sandbox.start(&format!("{pod}/crio-conmon-{id}.scope"));

    assert_located(
        locate(&uid, &format!("cri-o://{id}"), &[]),
        expected(
            "cri-o",
            &id,
            &uid,
            &container,
            container.main,
            &sandbox.path(&cgroup),
            2,
            "cgroup-v2 systemd cri-o",
        ),
    );
    assert!(conmon.pids.iter().all(|p| !container.pids.contains(p)));
}

#[test]
fn v2_cgroupfs_docker_guaranteed_pod() {
    const TEST: &str = "v2-cgroupfs-docker";
    let mut sandbox = CgroupSandbox::new(TEST, V2);
    let (uid, id) = (pod_uid(TEST, "pod"), container_id(TEST, "app"));
    let cgroup = format!("kubepods/pod{uid}/{id}");
    let container = sandbox.start(&cgroup);

    assert_located(
        locate(&uid, &format!("docker://{id}"), &[]),
        expected(
            "docker",
            &id,
            &uid,
            &container,
            container.main,
            &sandbox.path(&cgroup),
            2,
            "cgroup-v2 cgroupfs docker",
        ),
    );
}

#[test]
fn v1_systemd_containerd_in_the_memory_and_pids_hierarchies() {
    const TEST: &str = "v1-systemd-containerd";
    let mut sandbox = CgroupSandbox::new(TEST, V1);
    let (uid, id) = (pod_uid(TEST, "pod"), container_id(TEST, "app"));
    let cgroup = format!(
        "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{id}.scope",
        underscored(&uid)
    );
    let container = sandbox.start(&cgroup);

    assert_located(
        locate(&uid, &format!("containerd://{id}"), &[]),
        expected(
            "containerd",
            &id,
            &uid,
            &container,
            container.main,
            &sandbox.path(&cgroup),
            1,
            "cgroup-v1 systemd containerd",
        ),
    );
}

#[test]
fn v1_cgroupfs_crio_besteffort_pod() {
    const TEST: &str = "v1-cgroupfs-crio";
    let mut sandbox = CgroupSandbox::new(TEST, V1);
    let (uid, id) = (pod_uid(TEST, "pod"), container_id(TEST, "app"));
    let cgroup = format!("kubepods/besteffort/pod{uid}/crio-{id}");
    let container = sandbox.start(&cgroup);
    let conmon = sandbox.start(&format!("kubepods/besteffort/pod{uid}/crio-conmon-{id}"));

    assert_located(
        locate(&uid, &format!("cri-o://{id}"), &["--proc-root", "/proc"]),
        expected(
            "cri-o",
            &id,
            &uid,
            &container,
            container.main,
            &sandbox.path(&cgroup),
            1,
            "cgroup-v1 cgroupfs cri-o",
        ),
    );
    assert!(conmon.pids.iter().all(|p| !container.pids.contains(p)));
}

#[test]
fn a_main_process_in_its_own_pid_namespace_has_ns_pid_1() {
    const TEST: &str = "pid-namespace";
    let mut sandbox = CgroupSandbox::new(TEST, V2);
    let (uid, id) = (pod_uid(TEST, "pod"), container_id(TEST, "app"));
    let cgroup = format!(
        "kubepods.slice/kubepods-pod{}.slice/cri-containerd-{id}.scope",
        underscored(&uid)
    );
    let container = sandbox.start_in_pid_namespace(&cgroup);
    let status = std::fs::read_to_string(format!("/proc/{}/status", container.main)).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert!(nspid.ends_with("\t1"), "the shell is pid 1 inside: {nspid}");

    assert_located(
        locate(&uid, &format!("containerd://{id}"), &[]),
        expected(
            "containerd",
            &id,
            &uid,
            &container,
            1,
            &sandbox.path(&cgroup),
            2,
            "cgroup-v2 systemd containerd",
        ),
    );
}

#[test]
fn a_path_relative_to_procshots_cgroup_namespace_matches() {
    const TEST: &str = "cgroup-namespace";
    let mut sandbox = CgroupSandbox::new(TEST, V2);
    let (uid, id) = (pod_uid(TEST, "pod"), container_id(TEST, "app"));
    let cgroup = format!(
        "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-{id}.scope",
        underscored(&uid)
    );
    let container = sandbox.start(&cgroup);
    // procshot runs in a cgroup namespace rooted at a sibling of kubepods.slice, as a
    // capture pod with a private cgroup namespace does: it sees the target at /../….
    let reader = sandbox.create("reader").remove(0);
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!(
            "echo $$ > {} && exec unshare --cgroup \"$0\" \"$@\"",
            reader.display()
        ))
        .arg(env!("CARGO_BIN_EXE_procshot"));

    assert_located(
        locate_with(command, &uid, &format!("containerd://{id}"), &[]),
        expected(
            "containerd",
            &id,
            &uid,
            &container,
            container.main,
            &format!("/../{cgroup}"),
            2,
            "cgroup-v2 systemd containerd",
        ),
    );
}

#[test]
fn the_same_container_id_under_another_pod_is_never_matched() {
    const TEST: &str = "decoy";
    let mut sandbox = CgroupSandbox::new(TEST, V2);
    let (uid, other_uid, id) = (
        pod_uid(TEST, "pod"),
        pod_uid(TEST, "other-pod"),
        container_id(TEST, "app"),
    );
    let cgroup_in = |uid: &str| {
        format!(
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{id}.scope",
            underscored(uid)
        )
    };
    let decoy = sandbox.start(&cgroup_in(&other_uid));

    // Only the decoy: not found, and the message points at the pod UID.
    let (output, json) = locate(&uid, &format!("containerd://{id}"), &["--timeout", "300ms"]);
    assert_eq!(output.status.code(), Some(9), "{output:?}");
    assert!(json.is_none(), "no target.json when not found");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "{} process(es) are in a cgroup named for this container ID but not under this pod (e.g. {})",
            decoy.pids.len(),
            sandbox.path(&cgroup_in(&other_uid))
        )) && stderr.contains("check the pod UID"),
        "{stderr}"
    );

    // With the real container next to it, only the real one is found.
    let container = sandbox.start(&cgroup_in(&uid));
    assert_located(
        locate(&uid, &format!("containerd://{id}"), &[]),
        expected(
            "containerd",
            &id,
            &uid,
            &container,
            container.main,
            &sandbox.path(&cgroup_in(&uid)),
            2,
            "cgroup-v2 systemd containerd",
        ),
    );
}

#[test]
fn a_container_that_starts_late_is_found_by_a_later_scan() {
    const TEST: &str = "late";
    let mut sandbox = CgroupSandbox::new(TEST, V2);
    let (uid, id) = (pod_uid(TEST, "pod"), container_id(TEST, "app"));
    let cgroup = format!("kubepods/burstable/pod{uid}/{id}");
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("target.json");
    let locating = support::procshot()
        .args(["locate", "--pod-uid", &uid, "--container-id"])
        .arg(format!("containerd://{id}"))
        .arg("--out")
        .arg(&file)
        .args(["--timeout", "20s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let container = sandbox.start(&cgroup);
    let output = locating.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not found yet; scanning every"), "{stderr}");
    let json = std::fs::read_to_string(&file)
        .ok()
        .map(|t| serde_json::from_str(&t).unwrap());
    assert_located(
        (output, json),
        expected(
            "containerd",
            &id,
            &uid,
            &container,
            container.main,
            &sandbox.path(&cgroup),
            2,
            "cgroup-v2 cgroupfs containerd",
        ),
    );
}

#[test]
fn an_unknown_container_times_out_with_exit_code_9() {
    support::require_root();
    const TEST: &str = "unknown";
    let (uid, id) = (pod_uid(TEST, "pod"), container_id(TEST, "app"));
    let start = Instant::now();
    let (output, json) = locate(&uid, &format!("containerd://{id}"), &["--timeout", "300ms"]);
    let elapsed = start.elapsed();
    assert_eq!(output.status.code(), Some(9), "{output:?}");
    assert!(json.is_none(), "no target.json when not found");
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        format!("no process of container containerd://{id} in pod {uid} found under /proc after"),
        "Check that the container is running and has not restarted".to_string(),
        "that the pod UID and container ID come from the same pod".to_string(),
        "hostPID: true".to_string(),
        "--proc-root".to_string(),
        "vanished mid-scan".to_string(),
    ] {
        assert!(stderr.contains(&expected), "{expected:?} in {stderr}");
    }
}

#[test]
fn malformed_ids_are_usage_errors() {
    support::require_root();
    const TEST: &str = "malformed";
    let (uid, id) = (pod_uid(TEST, "pod"), container_id(TEST, "app"));
    for (pod, container, message) in [
        (uid.clone(), id.clone(), "has no RUNTIME:// prefix"),
        (
            uid.clone(),
            format!("rkt://{id}"),
            "names runtime \"rkt\": procshot knows the cgroup names of containerd, cri-o and docker only",
        ),
        (
            uid.clone(),
            format!("containerd://{}", &id[..12]),
            "is not a full ID: it has 12 hex digits (a container ID is 64 lowercase hex digits",
        ),
        (
            uid.clone(),
            format!("docker://{}", id.to_uppercase()),
            "is not a lowercase hex digit",
        ),
        (
            uid.replace('-', "_"),
            format!("cri-o://{id}"),
            "is not a pod UID: '_' is not a lowercase hex digit or a dash",
        ),
        (
            uid[..20].to_string(),
            format!("cri-o://{id}"),
            "not 8-4-4-4-12",
        ),
    ] {
        let (output, json) = locate(&pod, &container, &["--timeout", "0s"]);
        assert_eq!(output.status.code(), Some(2), "{container}: {output:?}");
        assert!(json.is_none());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{message:?} in {stderr}");
    }
}

/// The two steps of a capture pod, as its containers run them on a node: `locate` writes
/// target.json, `capture --target-file` captures its main process and leaves the operator a
/// summary of at most 4 KiB.
#[test]
fn the_capture_pod_steps_locate_then_capture_with_a_termination_summary() {
    const TEST: &str = "pod-steps";
    let mut sandbox = CgroupSandbox::new(TEST, V1);
    let (uid, id) = (pod_uid(TEST, "pod"), container_id(TEST, "app"));
    let cgroup = format!("kubepods/burstable/pod{uid}/{id}");
    let container = sandbox.start(&cgroup);
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("target.json");
    let output = support::procshot()
        .args([
            "locate",
            "--pod-uid",
            &uid,
            "--container-id",
            &format!("containerd://{id}"),
            "--out",
        ])
        .arg(&target)
        .output()
        .unwrap();
    support::assert_success(&output);

    let summary_file = work.path().join("termination-log");
    let output = support::procshot()
        .args([
            "capture",
            "--samples",
            "2",
            "--interval",
            "500ms",
            "--target-file",
        ])
        .arg(&target)
        .arg("--out")
        .arg(work.path().join("capture"))
        .arg("--termination-summary")
        .arg(&summary_file)
        .output()
        .unwrap();
    support::assert_success(&output);
    let text = std::fs::read_to_string(&summary_file).unwrap();
    assert!(text.len() <= procshot_api::MAX_BYTES);
    let summary: procshot_api::TerminationSummary = serde_json::from_str(&text).unwrap();
    assert_eq!(summary.outcome, procshot_api::Outcome::Succeeded);
    assert_eq!(summary.target_pid, Some(container.main));
    assert_eq!(summary.samples, 2);
    assert_eq!(
        summary.counts.unwrap().threads,
        Some(1),
        "the container's shell"
    );

    // A target that is gone: the summary says why, for the session's status.
    drop(sandbox);
    let failed_file = work.path().join("termination-log-2");
    let output = support::procshot()
        .args(["capture", "--samples", "1", "--target-file"])
        .arg(&target)
        .arg("--out")
        .arg(work.path().join("capture-2"))
        .arg("--termination-summary")
        .arg(&failed_file)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let summary: procshot_api::TerminationSummary =
        serde_json::from_str(&std::fs::read_to_string(&failed_file).unwrap()).unwrap();
    assert_eq!(summary.outcome, procshot_api::Outcome::Failed);
    assert!(
        summary
            .message
            .contains(&format!("no process with pid {}", container.main)),
        "{}",
        summary.message
    );
}
