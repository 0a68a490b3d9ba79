//! The `stacks` capture on real processes: C fixtures with 1, 100 and 1,000 threads parked
//! in known functions, built with frame pointers (and no unwind tables) and without
//! (CFI only); a Go fixture; procshot killed (SIGKILL, SIGTERM, SIGINT) while it holds a
//! thread stopped; the target killed mid-capture; and a target whose binary lives at a
//! path that exists only in its own mount namespace.

mod support;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use procshot::captures::stacks::output::{self, StackGroup};
use procshot::captures::stacks::{StacksCapture, ThreadStack};
use support::Fixture;

/// `parked.c` with frame pointers and without unwind tables: only the frame-pointer chain
/// leads through its functions.
fn parked_with_frame_pointers() -> PathBuf {
    support::c_fixture_binary(
        "parked.c",
        "fp",
        &[
            "-O2",
            "-fno-omit-frame-pointer",
            "-fno-asynchronous-unwind-tables",
        ],
    )
}

/// `parked.c` without frame pointers: only DWARF CFI leads through its functions.
fn parked_without_frame_pointers() -> PathBuf {
    support::c_fixture_binary("parked.c", "nofp", &["-O2", "-g", "-fomit-frame-pointer"])
}

/// Starts `PROGRAM parked N` (the C or the Go parked fixture) and waits for it to be ready.
fn start_parked(program: &Path, threads: usize) -> Fixture {
    let mut command = Command::new(program);
    command.args(["parked", &threads.to_string()]);
    Fixture::spawn(command)
}

/// The longest heartbeat gap since the last call, in microseconds (C fixture only): the
/// main thread must run to answer.
fn heartbeat_gap_us(fixture: &mut Fixture) -> u64 {
    let line = fixture.ask("gap");
    line.strip_prefix("GAP ")
        .unwrap_or_else(|| panic!("unexpected answer {line:?}"))
        .parse()
        .unwrap()
}

/// Waits (up to 30 s) until `count` threads are blocked in `read(2)` (the parked workers
/// and the main thread), so that every parked thread has its final stack.
fn wait_for_reads(fixture: &Fixture, count: usize) {
    support::wait_for(
        "the fixture's threads to park",
        Duration::from_secs(30),
        || {
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", fixture.pid())) else {
                return false;
            };
            let reading = tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("syscall")).ok())
                .filter(|syscall| syscall.starts_with("0 "))
                .count();
            reading >= count
        },
    );
}

fn read_stacks(dir: &Path) -> StacksCapture {
    let text = std::fs::read_to_string(dir.join("stacks.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn symbols(thread: &ThreadStack) -> Vec<&str> {
    thread
        .frames
        .iter()
        .map(|f| f.symbol.as_deref().unwrap_or("?"))
        .collect()
}

/// The one group whose thread names are all `name`.
fn group_named<'a>(groups: &'a [StackGroup<'a>], name: &str) -> &'a StackGroup<'a> {
    let found: Vec<_> = groups
        .iter()
        .filter(|g| g.threads.iter().all(|t| t.name == name))
        .collect();
    assert_eq!(found.len(), 1, "one group of {name} threads: {groups:#?}");
    found[0]
}

/// Captures the C fixture with `threads` parked threads and checks every group.
fn check_c_fixture(binary: &Path, threads: usize, park_worker_unwind: &str) {
    support::require_root();
    let mut fixture = start_parked(binary, threads);
    wait_for_reads(&fixture, threads + 1);
    let (_out, dir) = support::capture_ok(fixture.pid(), &["--capture", "stacks"]);
    fixture.assert_untouched();
    assert!(heartbeat_gap_us(&mut fixture) > 0);

    let stacks = read_stacks(&dir);
    assert_eq!(stacks.threads.len(), threads + 2, "{:#?}", stacks.threads);
    assert!(stacks.incomplete.is_none());
    assert!(stacks.longest_stop_ms > 0.0);
    let groups = output::groups(&stacks);
    let parked = group_named(&groups, "parked");
    assert_eq!(parked.threads.len(), threads);
    let parked_symbols = symbols(parked.threads[0]);
    assert_eq!(
        parked_symbols[1..],
        ["wait_for_work", "park_worker", "start_thread", "clone3"],
        "{parked_symbols:?}"
    );
    assert!(
        parked_symbols[0].contains("read"),
        "innermost frame in libc's read: {parked_symbols:?}"
    );
    let frames = &parked.threads[0].frames;
    assert_eq!(
        serde_json::to_value(frames[2].unwind).unwrap(),
        park_worker_unwind,
        "{frames:#?}"
    );
    assert_eq!(
        frames[1].module.as_deref(),
        binary.file_name().unwrap().to_str()
    );

    let heartbeat = group_named(&groups, "heartbeat");
    assert_eq!(heartbeat.threads.len(), 1);
    // Usually in tick -> clock_nanosleep; it may be caught running between two ticks.
    assert!(
        symbols(heartbeat.threads[0]).ends_with(&["heartbeat", "start_thread", "clone3"]),
        "{heartbeat:?}"
    );
    let main = group_named(&groups, binary.file_name().unwrap().to_str().unwrap());
    let main_symbols = symbols(main.threads[0]);
    assert_eq!(
        main_symbols[1..4],
        ["read_command", "main_loop", "main"],
        "{main_symbols:?}"
    );
    // Groups are biggest first and stacks.txt says so.
    let text = std::fs::read_to_string(dir.join("stacks.txt")).unwrap();
    if threads > 1 {
        assert_eq!(groups[0].threads.len(), threads);
        assert!(
            text.contains(&format!("\n{threads} threads: parked ×{threads}\n")),
            "{text}"
        );
    }
    assert!(text.contains(" wait_for_work+0x"), "{text}");

    let manifest = support::read_json(&dir, "manifest.json");
    let names: Vec<_> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"stacks.json") && names.contains(&"stacks.txt"),
        "{names:?}"
    );
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        report.contains("## Native stacks (biggest groups)"),
        "{report}"
    );
    assert!(report.contains("wait_for_work ← park_worker"), "{report}");
}

#[test]
fn c_threads_with_frame_pointers_and_no_unwind_tables() {
    for threads in [1, 100, 1000] {
        check_c_fixture(&parked_with_frame_pointers(), threads, "frame-pointer");
    }
}

#[test]
fn c_threads_without_frame_pointers() {
    for threads in [1, 100, 1000] {
        check_c_fixture(&parked_without_frame_pointers(), threads, "cfi");
    }
}

#[test]
fn go_threads_parked_in_known_functions() {
    support::require_root();
    const WORKERS: usize = 6;
    let fixture = start_parked(&support::go_fixture_binary("parked"), WORKERS);
    wait_for_reads(&fixture, WORKERS + 1);
    let (_out, dir) = support::capture_ok(fixture.pid(), &["--capture", "stacks"]);
    let stacks = read_stacks(&dir);
    let groups = output::groups(&stacks);
    let parked: Vec<_> = groups
        .iter()
        .filter(|g| {
            let symbols = symbols(g.threads[0]);
            symbols
                .windows(2)
                .any(|w| w == ["main.waitForWork", "main.parkWorker"])
        })
        .collect();
    assert_eq!(parked.len(), 1, "{groups:#?}");
    assert_eq!(parked[0].threads.len(), WORKERS);
    let symbols = symbols(parked[0].threads[0]);
    let wait = symbols
        .iter()
        .position(|s| *s == "main.waitForWork")
        .unwrap();
    assert_eq!(symbols[wait - 1], "syscall.read", "{symbols:?}");
    assert_eq!(symbols.last(), Some(&"runtime.goexit"), "{symbols:?}");
    // The Go runtime's own threads are there too (sysmon at least).
    assert!(
        groups
            .iter()
            .any(|g| symbols_of(g).contains(&"runtime.sysmon")),
        "{groups:#?}"
    );
    let states = fixture.thread_states();
    assert!(!states.iter().any(|s| matches!(s, 't' | 'T')), "{states:?}");
}

fn symbols_of<'a>(group: &'a StackGroup<'a>) -> Vec<&'a str> {
    symbols(group.threads[0])
}

/// Starts a stacks capture of `fixture` and returns it once a thread of the fixture is
/// seen in a tracing stop (so a signal sent now lands while procshot holds a thread).
/// Each thread is held for microseconds, so the watch re-reads every thread's `stat`
/// through files kept open; a capture that ends unseen is started again (3 tries).
fn capture_until_a_thread_is_stopped(fixture: &Fixture, out: &Path) -> Child {
    use std::os::unix::fs::FileExt;
    let stats: Vec<std::fs::File> = std::fs::read_dir(format!("/proc/{}/task", fixture.pid()))
        .unwrap()
        .filter_map(|t| std::fs::File::open(t.ok()?.path().join("stat")).ok())
        .collect();
    let mut buf = [0u8; 512];
    let mut any_stopped = || {
        stats.iter().any(|file| {
            let n = file.read_at(&mut buf, 0).unwrap_or(0);
            let stat = String::from_utf8_lossy(&buf[..n]);
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('t'))
        })
    };
    for _ in 0..3 {
        let _ = std::fs::remove_dir_all(out);
        let mut procshot = support::procshot()
            .args(["capture", "--capture", "stacks", "--pid"])
            .arg(fixture.pid().to_string())
            .arg("--out")
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while procshot.try_wait().unwrap().is_none() && Instant::now() < deadline {
            if any_stopped() {
                return procshot;
            }
        }
        let _ = procshot.kill();
        let _ = procshot.wait();
    }
    panic!("no thread of the fixture was ever seen stopped in 3 captures");
}

#[test]
fn killing_procshot_mid_capture_leaves_the_target_running() {
    support::require_root();
    let binary = parked_without_frame_pointers();
    for signal in [libc::SIGKILL, libc::SIGTERM, libc::SIGINT] {
        let mut fixture = start_parked(&binary, 1000);
        wait_for_reads(&fixture, 1001);
        let out = tempfile::tempdir().unwrap();
        let mut procshot = capture_until_a_thread_is_stopped(&fixture, &out.path().join("c"));
        // SAFETY: kill(2) on the pid of a child we have not reaped.
        assert_eq!(unsafe { libc::kill(procshot.id() as i32, signal) }, 0);
        let status = procshot.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(signal),
            "procshot died of the signal mid-capture"
        );
        assert!(!out.path().join("c/stacks.json").exists());
        support::wait_for(
            "the kernel to release the threads",
            Duration::from_secs(2),
            || {
                !fixture
                    .thread_states()
                    .iter()
                    .any(|s| matches!(s, 't' | 'T'))
            },
        );
        fixture.assert_untouched();
        assert!(
            heartbeat_gap_us(&mut fixture) > 0,
            "the main thread answers"
        );
    }
}

#[test]
fn the_target_killed_mid_capture_gives_a_partial_capture() {
    support::require_root();
    let mut fixture = start_parked(&parked_without_frame_pointers(), 1000);
    wait_for_reads(&fixture, 1001);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("c");
    let procshot = capture_until_a_thread_is_stopped(&fixture, &dir);
    fixture.child.kill().unwrap();
    let output = procshot.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(6), "partial: {stderr}");
    assert!(stderr.contains("exited during the capture"), "{stderr}");
    let manifest = support::read_json(&dir, "manifest.json");
    let partial = manifest["partial"].as_str().unwrap();
    assert!(partial.starts_with("stacks: incomplete: pid "), "{partial}");
    let stacks = read_stacks(&dir);
    assert!(stacks.incomplete.is_some());
    // What was read before the kill is kept (symbolized from the files procshot holds
    // open); the threads after it are missing.
    let read = stacks
        .threads
        .iter()
        .filter(|t| {
            t.frames
                .iter()
                .any(|f| f.symbol.as_deref() == Some("park_worker"))
        })
        .count();
    assert!(read < 1000, "{read} parked threads read");
    assert!(
        stacks.threads.iter().all(|t| t.error.is_none()),
        "{:?}",
        stacks.threads
    );
}

#[test]
fn binaries_are_read_from_the_targets_mount_namespace() {
    support::require_root();
    // The fixture runs from a directory bind-mounted, in its own mount namespace only, over
    // an empty directory: the path in its /proc/PID/maps names no file on the host.
    let binary = parked_without_frame_pointers();
    let empty = tempfile::tempdir().unwrap();
    let mut command = Command::new("unshare");
    command
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount --bind "$1" "$2" && exec "$2/$3" parked 3"#)
        .arg("sh")
        .arg(binary.parent().unwrap())
        .arg(empty.path())
        .arg(binary.file_name().unwrap());
    let fixture = Fixture::spawn(command);
    wait_for_reads(&fixture, 4);
    let in_namespace = empty.path().join(binary.file_name().unwrap());
    assert!(!in_namespace.exists(), "the host sees no binary there");
    let exe = std::fs::read_link(format!("/proc/{}/exe", fixture.pid())).unwrap();
    assert_eq!(exe, in_namespace);

    let (_out, dir) = support::capture_ok(fixture.pid(), &["--capture", "stacks"]);
    let stacks = read_stacks(&dir);
    let module = stacks
        .modules
        .iter()
        .find(|m| Path::new(&m.path) == in_namespace)
        .expect("the fixture's module");
    assert!(module.error.is_none(), "{module:?}");
    let groups = output::groups(&stacks);
    let parked = group_named(&groups, "parked");
    assert_eq!(parked.threads.len(), 3);
    assert_eq!(
        symbols(parked.threads[0])[1..3],
        ["wait_for_work", "park_worker"]
    );
    let frame = &parked.threads[0].frames[1];
    assert!(
        frame
            .file
            .as_deref()
            .is_some_and(|f| f.ends_with("parked.c")),
        "DWARF lines read from the target's file: {frame:?}"
    );
}
