//! Core dumps of real processes: gdb opens the decompressed core and shows every thread
//! with the backtrace gdb shows on the live process (a C fixture with parked threads, a Go
//! fixture), reads globals, heap and shared memory from it; coredump_filter is honored; the
//! target's heartbeat shows how long it was stopped; and the faults: the target killed
//! mid-dump, a full disk, procshot killed mid-dump, a refusal when the core cannot fit, and
//! the --core-max-bytes cap.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::Fixture;

/// Runs `procshot capture --capture core` on `pid` into `dir`; returns the exit code.
fn capture_core(pid: i32, dir: &Path, extra: &[&str]) -> (i32, String) {
    let output = support::procshot()
        .args(["capture", "--pid", &pid.to_string(), "--out"])
        .arg(dir)
        .args(["--samples", "1", "--capture", "core"])
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code().unwrap_or(-1), stderr)
}

/// Decompresses `dir/core.zst` with the zstd CLI (as the manifest's open command does).
fn decompress(dir: &Path) -> PathBuf {
    let core = dir.join("core");
    let status = Command::new("zstd")
        .args(["-q", "-d"])
        .arg(dir.join("core.zst"))
        .arg("-o")
        .arg(&core)
        .status()
        .expect("zstd is needed (scripts/install-test-deps.sh installs it)");
    assert!(status.success());
    core
}

/// `gdb -batch` with `commands`, on the live `pid` or on `exe` and `core`.
fn gdb(target: GdbTarget<'_>, commands: &[&str]) -> String {
    let mut command = Command::new("gdb");
    command.args(["-nx", "-batch"]);
    for c in commands {
        command.args(["-ex", c]);
    }
    match target {
        GdbTarget::Live(pid) => command.args(["-p", &pid.to_string()]),
        GdbTarget::Core(exe, core) => command.arg(exe).arg(core),
    };
    let output = command
        .stdin(Stdio::null())
        .output()
        .expect("gdb is needed (scripts/install-test-deps.sh installs it)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[derive(Clone, Copy)]
enum GdbTarget<'a> {
    Live(i32),
    Core(&'a Path, &'a Path),
}

/// The function names of every thread's backtrace in `thread apply all bt` output, by LWP.
fn backtraces(output: &str) -> BTreeMap<i32, Vec<String>> {
    let mut threads = BTreeMap::new();
    let mut current = None;
    for line in output.lines() {
        if line.starts_with("Thread ")
            && let Some(at) = line.find("(LWP ")
        {
            let lwp: String = line[at + 5..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            let lwp = lwp.parse().unwrap();
            threads.insert(lwp, Vec::new());
            current = Some(lwp);
        } else if let (Some(lwp), Some(frame)) = (current, line.strip_prefix('#')) {
            let frame = frame
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .trim();
            let function = match frame.find(" in ") {
                Some(at) if frame.starts_with("0x") => &frame[at + 4..],
                _ => frame,
            };
            let function = function.split(" (").next().unwrap().to_string();
            threads.get_mut(&lwp).unwrap().push(function);
        }
    }
    threads
}

/// The longest gap of the fixture's 1 ms heartbeat since the last request, in ms.
fn heartbeat_gap_ms(fixture: &mut Fixture) -> f64 {
    let answer = fixture.ask("gap");
    let us: f64 = answer
        .strip_prefix("GAP ")
        .unwrap_or_else(|| panic!("not a heartbeat answer: {answer:?}"))
        .parse()
        .unwrap();
    us / 1000.0
}

fn core_record(dir: &Path) -> Value {
    support::read_json(dir, "manifest.json")["core"].clone()
}

fn core_run(dir: &Path) -> Value {
    support::read_json(dir, "manifest.json")["captures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "core")
        .expect("a core run")
        .clone()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The tid of the fixture's thread named `name`.
fn tid_named(pid: i32, name: &str) -> i32 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .parse::<i32>()
                .unwrap()
        })
        .find(|tid| {
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
                .unwrap()
                .trim()
                == name
        })
        .unwrap_or_else(|| panic!("no thread {name}"))
}

/// A core is taken once, so a capture of nothing but the core takes no samples it does not
/// need and waits through none of their intervals, whatever `--samples` and `--interval`
/// say (procshot once took three empty samples 2 s apart before such a core).
#[test]
fn a_core_alone_takes_no_samples_and_waits_through_no_interval() {
    support::require_root();
    let mut fixture = Fixture::start(&["core", "1"]);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("capture");
    let started = Instant::now();
    let output = support::capture(
        fixture.pid(),
        &dir,
        &["--capture", "core", "--samples", "3", "--interval", "2s"],
    );
    let elapsed = started.elapsed();
    support::assert_success(&output);
    fixture.assert_untouched();

    let manifest = support::read_json(&dir, "manifest.json");
    assert_eq!(manifest["samplesRequested"], 3, "{manifest}");
    // One instant stands for the capture: the core's.
    assert_eq!(manifest["samplesTaken"], 1, "{manifest}");
    let captures = manifest["captures"].as_array().unwrap();
    assert_eq!(captures.len(), 1, "{manifest}");
    assert_eq!(captures[0]["kind"], "core");
    assert_eq!(
        captures[0]["sampleDurationsMs"].as_array().unwrap().len(),
        1,
        "{manifest}"
    );
    assert_eq!(core_record(&dir)["file"], "core.zst");
    for sampled in ["fds.json", "threads.json", "memory.json"] {
        assert!(!dir.join(sampled).exists(), "{sampled}");
    }
    // Two skipped intervals would take 4 s; nothing waits for them.
    assert!(
        elapsed < Duration::from_secs(4),
        "the capture took {elapsed:?}: it waited through intervals"
    );
}

#[test]
fn gdb_shows_the_live_backtraces_and_data_from_a_c_core() {
    support::require_root();
    let mut fixture = Fixture::start(&["core", "32"]);
    let pid = fixture.pid();
    let exe = support::fixture_binary();
    let live = backtraces(&gdb(GdbTarget::Live(pid), &["thread apply all bt"]));
    heartbeat_gap_ms(&mut fixture); // resets the heartbeat's record after gdb's stop

    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("capture");
    let (code, stderr) = capture_core(pid, &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    let gap = heartbeat_gap_ms(&mut fixture);
    fixture.assert_untouched();

    let record = core_record(&dir);
    assert_eq!(record["file"], "core.zst");
    assert_eq!(record["threads"], 5);
    assert!(record.get("partialReason").is_none(), "{record}");
    assert_eq!(
        record["openCommand"],
        format!("zstd -d core.zst -o core && gdb {} core", exe.display())
    );
    let pause = record["pauseMs"].as_f64().unwrap();
    assert!(pause > 0.0 && pause < 2000.0, "{record}");
    // The heartbeat saw the pause, and no longer one than the bound.
    assert!(gap < 2000.0, "heartbeat gap {gap} ms");
    assert!(
        record["bytesOfMemory"].as_u64().unwrap() >= 32 << 20,
        "{record}"
    );
    let listed = support::read_json(&dir, "manifest.json")["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "core.zst")
        .expect("core.zst is listed")
        .clone();
    let (bytes, sha256) = procshot::files::file_sha256(&dir.join("core.zst")).unwrap();
    assert_eq!(listed["bytes"], bytes);
    assert_eq!(listed["sha256"], sha256);
    assert_eq!(record["bytesCompressed"], bytes);

    let core = decompress(&dir);
    let output = gdb(
        GdbTarget::Core(exe, &core),
        &[
            "info threads",
            "thread apply all bt",
            "print core_marker",
            "print core_heap_marker",
            "print core_shared_marker",
        ],
    );
    let dumped = backtraces(&output);
    assert_eq!(
        dumped.keys().collect::<Vec<_>>(),
        live.keys().collect::<Vec<_>>(),
        "{output}"
    );
    for (name, function) in [
        ("reader", "core_parked_in_read"),
        ("sleeper", "core_parked_in_sleep"),
        ("waiter", "core_parked_on_condvar"),
        ("fixture", "mode_core"),
    ] {
        let tid = tid_named(pid, name);
        assert!(
            dumped[&tid].iter().any(|f| f == function),
            "{name}: {:?}",
            dumped[&tid]
        );
        assert_eq!(dumped[&tid], live[&tid], "thread {name} ({tid})");
    }
    assert!(
        output.contains(&format!("\"procshot-core-marker-{pid}\"")),
        "{output}"
    );
    assert!(
        output.contains(&format!("\"procshot-core-heap-marker-{pid}\"")),
        "{output}"
    );
    assert!(
        output.contains("\"procshot-core-shared-marker\""),
        "{output}"
    );
    // Zero pages (the untouched rest of the heap's arena, say) are holes once decompressed.
    let metadata = std::fs::metadata(&core).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert!(metadata.blocks() * 512 < metadata.len(), "{metadata:?}");
}

#[test]
fn gdb_shows_the_live_backtraces_from_a_go_core() {
    support::require_root();
    let binary = support::go_fixture_binary("coredump");
    let fixture = Fixture::start_with(&[], |command| {
        let mut go = Command::new(&binary);
        go.stdin(Stdio::piped()).stdout(Stdio::piped());
        *command = go;
    });
    let pid = fixture.pid();
    let live = backtraces(&gdb(GdbTarget::Live(pid), &["thread apply all bt"]));
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("capture");
    let (code, stderr) = capture_core(pid, &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    let core = decompress(&dir);
    let output = gdb(
        GdbTarget::Core(&binary, &core),
        &[
            "thread apply all bt",
            "print main.Marker",
            "print *main.HeapMarker",
        ],
    );
    let dumped = backtraces(&output);
    assert_eq!(dumped, live, "{output}");
    let functions: Vec<&String> = dumped.values().flatten().collect();
    for function in ["main.blockedInRead", "main.blockedInSleep", "main.main"] {
        assert!(
            functions.iter().any(|f| *f == function),
            "{function}: {dumped:?}"
        );
    }
    assert!(
        output.contains(&format!("\"procshot-go-core-marker-{pid}\"")),
        "{output}"
    );
    assert!(
        output.contains(&format!("\"procshot-go-heap-marker-{pid}\"")),
        "{output}"
    );
}

#[test]
fn coredump_filter_leaves_out_shared_memory_when_its_bit_is_off() {
    support::require_root();
    let fixture = Fixture::start(&["core", "1"]);
    let pid = fixture.pid();
    std::fs::write(format!("/proc/{pid}/coredump_filter"), "0x31").unwrap();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("capture");
    let (code, stderr) = capture_core(pid, &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(core_record(&dir)["coredumpFilter"], "0x31");
    let core = decompress(&dir);
    let output = gdb(
        GdbTarget::Core(support::fixture_binary(), &core),
        &["print core_marker", "print core_shared_marker"],
    );
    assert!(
        output.contains(&format!("\"procshot-core-marker-{pid}\"")),
        "{output}"
    );
    // The mapping is in the core without its bytes (as the kernel leaves it): gdb reads
    // zeros there.
    let shared = fixture.get("shared_marker").as_str().unwrap();
    assert!(output.contains(&format!("$2 = {shared} \"\"")), "{output}");
    assert!(!output.contains("procshot-core-shared-marker"), "{output}");
}

/// Waits until every thread of `pid` is in a tracing stop (procshot has stopped it and is
/// copying its memory).
fn wait_until_stopped(pid: i32) {
    support::wait_for("the target to be stopped", Duration::from_secs(30), || {
        let stopped = procshot::process::ptrace::threads_in_tracing_stop(Path::new("/proc"), pid);
        stopped.len() == 5
    });
}

#[test]
fn a_target_killed_mid_dump_gives_a_partial_core() {
    support::require_root();
    let mut fixture = Fixture::start(&["core", "1536"]);
    let pid = fixture.pid();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("capture");
    let procshot = support::procshot()
        .args(["capture", "--pid", &pid.to_string(), "--out"])
        .arg(&dir)
        .args(["--samples", "1", "--capture", "core", "--core-threads", "1"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_stopped(pid);
    // Let procshot read the registers (microseconds) before the kill lands in the copy of
    // 1.5 GiB (hundreds of milliseconds): the partial core then has every thread.
    std::thread::sleep(Duration::from_millis(50));
    fixture.child.kill().unwrap();
    let output = procshot.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(6), "{stderr}");
    let record = core_record(&dir);
    assert_eq!(
        record["file"],
        "core.partial.zst",
        "{record} {}",
        core_run(&dir)
    );
    let reason = record["partialReason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!(
            "pid {pid} exited while its memory was being copied (it is"
        )),
        "{reason}"
    );
    let manifest = support::read_json(&dir, "manifest.json");
    assert!(
        manifest["partial"]
            .as_str()
            .unwrap()
            .contains("partial core: pid"),
        "{manifest}"
    );
    assert!(!dir.join("core.zst").exists());
    // The partial core still opens, with every thread.
    std::fs::rename(dir.join("core.partial.zst"), dir.join("core.zst")).unwrap();
    let core = decompress(&dir);
    let output = gdb(
        GdbTarget::Core(support::fixture_binary(), &core),
        &["info threads"],
    );
    let threads = output
        .lines()
        .filter(|l| {
            let l = l.trim_start_matches(['*', ' ']);
            l.starts_with(|c: char| c.is_ascii_digit()) && l.contains(" LWP ")
        })
        .count();
    assert_eq!(threads, 5, "{output}");
}

/// A tmpfs of `size` mounted on a new directory, unmounted on drop.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "procshot-core-test",
            ])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs");
        Self(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn a_full_disk_ends_the_core_cleanly() {
    support::require_root();
    let mut fixture = Fixture::start(&["core", "64", "random"]);
    let tmpfs = Tmpfs::mount("24m");
    let dir = tmpfs.0.path().join("capture");
    let (code, stderr) = capture_core(fixture.pid(), &dir, &[]);
    assert_eq!(code, 6, "{stderr}");
    let error = core_run(&dir)["error"].as_str().unwrap().to_string();
    assert!(
        error.starts_with(&format!(
            "cannot write the core dump {}",
            dir.join("core.writing.tmp").display()
        )),
        "{error}"
    );
    assert!(error.contains("the filesystem is full"), "{error}");
    assert!(
        error.ends_with("the unfinished file was removed"),
        "{error}"
    );
    assert_eq!(
        files_in(&dir),
        ["manifest.json", "report.html", "report.md", "summary.json"]
    );
    assert!(core_record(&dir).is_null());
    fixture.assert_untouched();
}

#[test]
fn a_core_that_cannot_fit_is_refused_before_the_target_stops() {
    support::require_root();
    let mut fixture = Fixture::start(&["core", "64"]);
    let pid = fixture.pid();
    let tmpfs = Tmpfs::mount("8m");
    let dir = tmpfs.0.path().join("capture");
    heartbeat_gap_ms(&mut fixture);
    let (code, stderr) = capture_core(pid, &dir, &[]);
    assert_eq!(code, 6, "{stderr}");
    let error = core_run(&dir)["error"].as_str().unwrap().to_string();
    assert!(
        error.starts_with(&format!(
            "core dump of pid {pid} refused: {} has ",
            dir.display()
        )),
        "{error}"
    );
    assert!(error.contains("compressed at least 4:1"), "{error}");
    assert!(!dir.join("core.zst").exists());
    // Refused before anything was stopped: the heartbeat kept its 1 ms pace.
    let gap = heartbeat_gap_ms(&mut fixture);
    assert!(gap < 100.0, "heartbeat gap {gap} ms");
}

#[test]
fn core_max_bytes_refuses_a_larger_core() {
    support::require_root();
    let fixture = Fixture::start(&["core", "64"]);
    let pid = fixture.pid();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("capture");
    let (code, stderr) = capture_core(pid, &dir, &["--core-max-bytes", "16M"]);
    assert_eq!(code, 6, "{stderr}");
    let error = core_run(&dir)["error"].as_str().unwrap().to_string();
    assert!(
        error.starts_with(&format!("core dump of pid {pid} refused: it would hold ")),
        "{error}"
    );
    assert!(
        error.contains("more than --core-max-bytes 16.0 MiB"),
        "{error}"
    );
    assert!(!dir.join("core.zst").exists());
    let manifest = support::read_json(&dir, "manifest.json");
    assert!(
        manifest["partial"]
            .as_str()
            .unwrap()
            .starts_with("no core: core dump of pid"),
        "{manifest}"
    );
}

#[test]
fn procshot_killed_mid_dump_leaves_the_target_running() {
    support::require_root();
    let mut fixture = Fixture::start(&["core", "1536"]);
    let pid = fixture.pid();
    let out = tempfile::tempdir().unwrap();
    let mut procshot = support::procshot()
        .args(["capture", "--pid", &pid.to_string(), "--out"])
        .arg(out.path().join("capture"))
        .args(["--samples", "1", "--capture", "core", "--core-threads", "1"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_stopped(pid);
    procshot.kill().unwrap();
    procshot.wait().unwrap();
    support::wait_for("every thread to run again", Duration::from_secs(5), || {
        procshot::process::ptrace::threads_in_tracing_stop(Path::new("/proc"), pid).is_empty()
    });
    fixture.assert_untouched();
    // The heartbeat beats again at its 1 ms pace.
    heartbeat_gap_ms(&mut fixture);
    std::thread::sleep(Duration::from_millis(200));
    let gap = heartbeat_gap_ms(&mut fixture);
    // (It answers at all only if its threads run; the bound leaves room for a busy machine.)
    assert!(gap < 1000.0, "heartbeat gap {gap} ms after the kill");
    assert!(!out.path().join("capture/core.zst").exists());
}

#[test]
fn the_pause_bound_ends_a_long_copy_with_a_partial_core() {
    support::require_root();
    let mut fixture = Fixture::start(&["core", "1536", "constant"]);
    let pid = fixture.pid();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("capture");
    heartbeat_gap_ms(&mut fixture);
    // Copying 1.5 GiB takes about 300 ms or more here; the bound stops it at 50 ms.
    let (code, stderr) = capture_core(
        pid,
        &dir,
        &["--core-max-pause", "50ms", "--core-threads", "1"],
    );
    let gap = heartbeat_gap_ms(&mut fixture);
    assert_eq!(code, 6, "{stderr}");
    let record = core_record(&dir);
    assert_eq!(record["file"], "core.partial.zst", "{record}");
    let reason = record["partialReason"].as_str().unwrap();
    assert!(
        reason.starts_with("the pause bound of 50ms (--core-max-pause) passed after "),
        "{reason}"
    );
    assert!(record["pauseMs"].as_f64().unwrap() < 150.0, "{record}");
    assert!(gap < 250.0, "heartbeat gap {gap} ms");
    fixture.assert_untouched();
    assert!(
        record["bytesOfMemory"].as_u64().unwrap() < 1536 << 20,
        "{record}"
    );
}

/// A memory cgroup (v1 or v2, whichever this host has) with a limit, removed on drop.
struct MemoryCgroup(PathBuf);

impl MemoryCgroup {
    fn create(limit_bytes: u64) -> Self {
        let v1 = Path::new("/sys/fs/cgroup/memory");
        let (root, limit_file) = if v1.join("memory.limit_in_bytes").exists() {
            (v1, "memory.limit_in_bytes")
        } else {
            (Path::new("/sys/fs/cgroup"), "memory.max")
        };
        let dir = root.join(format!("procshot-core-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(limit_file), limit_bytes.to_string()).unwrap();
        Self(dir)
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn a_copy_larger_than_procshots_memory_is_compressed_while_the_target_is_stopped() {
    support::require_root();
    let mut fixture = Fixture::start(&["core", "256"]);
    let pid = fixture.pid();
    let cgroup = MemoryCgroup::create(192 << 20);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("capture");
    heartbeat_gap_ms(&mut fixture);
    // procshot runs in a cgroup limited to 192 MiB: the 256 MiB heap cannot be held.
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {} && exec \"$0\" \"$@\"",
            cgroup.0.join("cgroup.procs").display()
        ))
        .arg(env!("CARGO_BIN_EXE_procshot"))
        .args(["capture", "--pid", &pid.to_string(), "--out"])
        .arg(&dir)
        .args([
            "--samples",
            "1",
            "--capture",
            "core",
            "--core-max-pause",
            "20s",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("fits in memory, the rest is compressed while the target is stopped"),
        "{stderr}"
    );
    let gap = heartbeat_gap_ms(&mut fixture);
    let record = core_record(&dir);
    assert_eq!(record["file"], "core.zst", "{record}");
    assert!(gap < 20_000.0, "heartbeat gap {gap} ms");
    fixture.assert_untouched();
    // The heap's end (read from the stopped process, past what the buffer held) is there.
    let core = decompress(&dir);
    let output = gdb(
        GdbTarget::Core(support::fixture_binary(), &core),
        &["print core_heap_marker"],
    );
    assert!(
        output.contains(&format!("\"procshot-core-heap-marker-{pid}\"")),
        "{output}"
    );
}
