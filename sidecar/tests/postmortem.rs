//! Post-mortems of programs that really crash: Go programs built at test time (a send on a
//! closed channel, a nil pointer, a negative WaitGroup counter, concurrent map writes, a
//! deadlock, a re-panic after recover, deep stacks), and Rust, Python, Node.js and Java
//! programs, each run as a container runtime would: stdout and stderr read as they come and
//! written as a kubelet CRI log file (lines over 16 KiB split into `P` chunks). Then the
//! log is cut, gzip'd, flooded with noise and fed through `procshot postmortem`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

/// containerd's default `max_container_log_line_size`.
const CRI_LINE_BYTES: usize = 16 << 10;

/// A program's run as a container: its output as a CRI log and as plain text.
struct Run {
    /// The kubelet CRI log file's content.
    cri: Vec<u8>,
    /// stdout and stderr merged line by line, as `kubectl logs` prints them.
    plain: Vec<u8>,
    status: ExitStatus,
    finished_at: DateTime<Utc>,
}

impl Run {
    fn exit_code(&self) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        self.status
            .code()
            .unwrap_or_else(|| 128 + self.status.signal().unwrap_or(0))
    }
}

/// Runs `command` with its two streams read by two threads, each line stamped when it
/// arrives (the way containerd's CRI logger does), until it exits or is killed.
fn run_as_container(mut command: Command) -> Run {
    run_watched(&mut command, |_| {})
}

/// One line of output: when it arrived, on which stream.
type OutputLine = (DateTime<Utc>, &'static str, Vec<u8>);

/// A cgroup's usage and when it was read.
type UsageSample = (DateTime<Utc>, u64);

fn run_watched(command: &mut Command, watch: impl FnOnce(&mut std::process::Child)) -> Run {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
    let lines: Arc<Mutex<Vec<OutputLine>>> = Arc::default();
    let readers: Vec<_> = [
        (
            "stdout",
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        ),
        ("stderr", Box::new(child.stderr.take().unwrap())),
    ]
    .into_iter()
    .map(|(stream, pipe)| {
        let lines = Arc::clone(&lines);
        std::thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            loop {
                let mut line = Vec::new();
                if reader.read_until(b'\n', &mut line).unwrap() == 0 {
                    break;
                }
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                lines.lock().unwrap().push((Utc::now(), stream, line));
            }
        })
    })
    .collect();
    watch(&mut child);
    let status = child.wait().unwrap();
    let finished_at = Utc::now();
    for reader in readers {
        reader.join().unwrap();
    }
    let lines = Arc::try_unwrap(lines).unwrap().into_inner().unwrap();
    let (mut cri, mut plain) = (Vec::new(), Vec::new());
    for (time, stream, line) in &lines {
        let stamp = time.to_rfc3339_opts(SecondsFormat::Nanos, true);
        let chunks: Vec<&[u8]> = if line.is_empty() {
            vec![&[]]
        } else {
            line.chunks(CRI_LINE_BYTES).collect()
        };
        for (i, chunk) in chunks.iter().enumerate() {
            let tag = if i + 1 < chunks.len() { "P" } else { "F" };
            write!(cri, "{stamp} {stream} {tag} ").unwrap();
            cri.extend_from_slice(chunk);
            cri.push(b'\n');
        }
        plain.extend_from_slice(line);
        plain.push(b'\n');
    }
    Run {
        cri,
        plain,
        status,
        finished_at,
    }
}

/// A post-mortem directory and what `procshot postmortem` printed.
struct Postmortem {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    stdout: String,
}

impl Postmortem {
    fn summary(&self) -> Value {
        support::read_json(&self.dir, "summary.json")
    }

    fn crash(&self) -> Value {
        support::read_json(&self.dir, "crash.json")
    }

    /// The finding with `code`, as (severity, message).
    fn finding(&self, code: &str) -> (String, String) {
        support::finding(&self.dir, code)
    }

    fn codes(&self) -> Vec<String> {
        support::findings(&self.dir)
            .into_iter()
            .map(|(_, code, _)| code)
            .collect()
    }
}

/// Writes `log` to a file and runs `procshot postmortem --log FILE --out DIR ARGS…`,
/// asserting it succeeded.
fn postmortem(log: &[u8], args: &[&str]) -> Postmortem {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("0.log");
    std::fs::write(&file, log).unwrap();
    postmortem_of(tmp, &file, args)
}

fn postmortem_of(tmp: tempfile::TempDir, file: &Path, args: &[&str]) -> Postmortem {
    let dir = tmp.path().join("postmortem");
    let output = support::procshot()
        .args(["postmortem", "--log"])
        .arg(file)
        .arg("--out")
        .arg(&dir)
        .args(args)
        .output()
        .unwrap();
    let stdout = support::assert_success(&output);
    Postmortem {
        _tmp: tmp,
        dir,
        stdout,
    }
}

/// The Go crash fixture, built once.
fn crashes() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| support::go_fixture_binary("crashes"))
}

/// Runs the Go fixture in `mode` (with `env`), checks that it died as Go does (exit 2), and
/// returns the run.
fn go_crash(mode: &str, env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(crashes());
    command.arg(mode).envs(env.iter().copied());
    let run = run_as_container(command);
    assert_eq!(
        run.exit_code(),
        2,
        "the Go fixture in mode {mode} did not crash as Go does:\n{}",
        String::from_utf8_lossy(&run.plain)
    );
    run
}

/// The post-mortem of a run's CRI log with its exit code.
fn postmortem_of_run(run: &Run) -> Postmortem {
    let code = run.exit_code().to_string();
    postmortem(&run.cri, &["--exit-code", &code, "--reason", "Error"])
}

/// `file:line` of the first line of a Go fixture file containing `needle`, shortened as
/// findings print it (`crashes/main.go:41`).
fn go_line(file: &str, needle: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/go/crashes")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let number = text
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} is not in {}", path.display()))
        + 1;
    let dir = Path::new(file)
        .parent()
        .and_then(|p| p.file_name())
        .map_or("crashes".to_string(), |d| d.to_string_lossy().into_owned());
    let name = Path::new(file).file_name().unwrap().to_string_lossy();
    format!("{dir}/{name}:{number}")
}

#[test]
fn a_send_on_a_closed_channel_names_the_programs_function_in_its_own_package() {
    let run = go_crash("closed-channel", &[]);
    let pm = postmortem_of_run(&run);
    let (severity, message) = pm.finding("GO_PANIC");
    assert_eq!(severity, "critical");
    let publish = go_line("pipeline/pipeline.go", "p.events <- event");
    for expected in [
        "Go panic: send on closed channel".to_string(),
        format!("at example.com/procshot/crashes/pipeline.(*Pipeline).Publish ({publish})"),
        ", on goroutine ".into(),
        "[running], created by main.main (crashes/main.go:".into(),
        "; 1 goroutine in the trace".into(),
        "; exit code 2, reason Error".into(),
    ] {
        assert!(message.contains(&expected), "{expected:?} not in {message}");
    }
    assert_eq!(
        pm.codes(),
        ["GO_PANIC"],
        "a panic that ended it needs no EXIT_ERROR"
    );
    let crash = pm.crash();
    assert_eq!(crash["log"]["format"], "cri");
    assert_eq!(crash["trace"]["language"], "go");
    assert_eq!(crash["trace"]["frames"][1]["function"], "main.main.func1");
    assert_eq!(crash["trace"]["frames"][1]["ownCode"], true);
    // The 40,000-byte line went through the log as three chunks and came back whole.
    let payload = crash["tail"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["text"].as_str().unwrap().starts_with("payload "))
        .expect("the long line is in the tail");
    assert_eq!(payload["text"].as_str().unwrap().len(), 8 + 40_000);
    assert_eq!(payload["stream"], "stdout");
    assert!(String::from_utf8_lossy(&run.cri).contains(" stdout P payload "));
    assert!(
        pm.stdout
            .contains("CRITICAL GO_PANIC: Go panic: send on closed channel")
    );
    let manifest = support::read_json(&pm.dir, "manifest.json");
    let files: Vec<&str> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        [
            "container.log",
            "crash.json",
            "summary.json",
            "report.md",
            "report.html"
        ]
    );
    let report = std::fs::read_to_string(pm.dir.join("report.md")).unwrap();
    assert!(report.contains("`GO_PANIC`") && report.contains("## Frames"));
}

#[test]
fn a_nil_pointer_keeps_the_signal_line_and_the_method() {
    let pm = postmortem_of_run(&go_crash("nil-pointer", &[]));
    let (_, message) = pm.finding("GO_PANIC");
    let handle = go_line("main.go", "return s.config.name");
    for expected in [
        "Go panic: runtime error: invalid memory address or nil pointer dereference [signal SIGSEGV: segmentation violation code=".to_string(),
        format!("at main.(*server).handle ({handle})"),
    ] {
        assert!(message.contains(&expected), "{expected:?} not in {message}");
    }
}

#[test]
fn a_negative_waitgroup_counter_points_past_package_sync() {
    let pm = postmortem_of_run(&go_crash("waitgroup", &[]));
    let (_, message) = pm.finding("GO_PANIC");
    let finish = go_line("main.go", "wg.Done()");
    assert!(
        message.contains(&format!(
            "Go panic: sync: negative WaitGroup counter, at main.finishJob ({finish})"
        )),
        "{message}"
    );
    let frames = &pm.crash()["trace"]["frames"];
    assert_eq!(frames[0]["function"], "sync.(*WaitGroup).Add");
    assert_eq!(frames[0]["ownCode"], false);
}

#[test]
fn concurrent_map_writes_and_a_deadlock_are_fatal_errors() {
    let pm = postmortem_of_run(&go_crash("concurrent-map", &[]));
    let (severity, message) = pm.finding("GO_FATAL_ERROR");
    assert_eq!(severity, "critical");
    let record = go_line("main.go", "hits[from+i%100] = i");
    assert!(
        message.starts_with(&format!(
            "Go fatal error: concurrent map writes, at main.recordHits ({record}), on goroutine "
        )),
        "{message}"
    );
    assert!(message.contains("created by main.main"), "{message}");
    assert!(pm.crash()["trace"]["goroutines"].as_array().unwrap().len() >= 2);

    let pm = postmortem_of_run(&go_crash("deadlock", &[]));
    let (_, message) = pm.finding("GO_FATAL_ERROR");
    let receive = go_line("main.go", "fmt.Println(<-results)");
    for expected in [
        "Go fatal error: all goroutines are asleep - deadlock!".to_string(),
        format!("at main.main ({receive}), on goroutine 1 [chan receive]"),
        "; 2 goroutines in the trace, all waiting: chan receive ×1, semacquire ×1".into(),
    ] {
        assert!(message.contains(&expected), "{expected:?} not in {message}");
    }
}

#[test]
fn a_re_panic_after_recover_names_both_values() {
    let pm = postmortem_of_run(&go_crash("recovered", &[]));
    let (_, message) = pm.finding("GO_PANIC");
    let repanic = go_line("main.go", "panic(fmt.Errorf(\"settings: giving up");
    for expected in [
        "Go panic: settings: giving up after settings.yaml: unexpected end of file".to_string(),
        "(raised while panicking after recovering \"settings.yaml: unexpected end of file\")"
            .into(),
        format!("at main.loadSettings.func1 ({repanic})"),
    ] {
        assert!(message.contains(&expected), "{expected:?} not in {message}");
    }
}

#[test]
fn deep_stacks_say_which_frames_the_runtime_left_out() {
    // Go 1.19 prints 99 frames of a panicking goroutine and stops without a word.
    let pm = postmortem_of_run(&go_crash("elided", &[]));
    let (_, message) = pm.finding("GO_PANIC");
    assert!(
        message.contains("at main.descend (crashes/main.go:"),
        "{message}"
    );
    assert!(
        message.contains(
            "missing: goroutine 1 [running] shows 99 frames, about the most the runtime prints"
        ),
        "{message}"
    );
    let pm = postmortem_of_run(&go_crash("stack-overflow", &[]));
    let (_, message) = pm.finding("GO_FATAL_ERROR");
    for expected in [
        "Go fatal error: stack overflow (runtime: goroutine stack exceeds 4194304-byte limit)",
        "at main.recurse (crashes/main.go:",
        "missing: the runtime elided frames of goroutine 1 [running]",
    ] {
        assert!(message.contains(expected), "{expected:?} not in {message}");
    }
    let pm = postmortem_of_run(&go_crash("out-of-memory", &[]));
    let (_, message) = pm.finding("GO_FATAL_ERROR");
    assert!(
        message
            .starts_with("Go fatal error: runtime: out of memory, at main.main (crashes/main.go:"),
        "{message}"
    );
}

#[test]
fn a_panic_amid_a_flood_of_stdout_is_read_from_its_own_stream() {
    let run = go_crash("chatty-panic", &[("GOTRACEBACK", "all")]);
    let handle = go_line("main.go", "return s.config.name");
    let cri = postmortem_of_run(&run);
    let plain = postmortem(&run.plain, &["--exit-code", "2"]);
    for pm in [&cri, &plain] {
        let (_, message) = pm.finding("GO_PANIC");
        assert!(
            message.contains(&format!("at main.(*server).handle ({handle})")),
            "{message}"
        );
        let crash = pm.crash();
        // Interleaved `tick N` lines are never taken for frames.
        for goroutine in crash["trace"]["goroutines"].as_array().unwrap() {
            for frame in goroutine["frames"].as_array().unwrap() {
                let function = frame["function"].as_str().unwrap();
                assert!(!function.starts_with("tick"), "{function}");
                assert!(frame["file"].is_string(), "{frame}");
            }
        }
    }
    assert_eq!(plain.crash()["log"]["format"], "plain");
    // GOTRACEBACK=all shows the flooding goroutine too.
    assert!(cri.crash()["trace"]["goroutines"].as_array().unwrap().len() >= 2);
}

#[test]
fn of_several_traces_the_last_counts() {
    let mut command = Command::new("sh");
    command.arg("-c").arg(format!(
        "{0} nil-pointer; {0} closed-channel",
        crashes().display()
    ));
    let run = run_as_container(command);
    let pm = postmortem_of_run(&run);
    let (_, message) = pm.finding("GO_PANIC");
    assert!(
        message.starts_with("Go panic: send on closed channel"),
        "{message}"
    );
    assert!(
        message.contains("; the last of 2 crash traces in the log"),
        "{message}"
    );
}

#[test]
fn a_log_cut_by_rotation_or_at_its_end_gives_what_it_carries() {
    let run = go_crash("waitgroup", &[]);
    let text = String::from_utf8(run.cri.clone()).unwrap();
    // Cut the start inside the trace: keep from the middle of the `sync.(*WaitGroup).Add`
    // record on, through the real tail read (--max-log-bytes).
    let at = text.find("sync.(*WaitGroup).Add(").unwrap();
    let keep = (text.len() - at).to_string();
    let pm = postmortem(
        run.cri.as_slice(),
        &["--exit-code", "2", "--max-log-bytes", &keep],
    );
    let (_, message) = pm.finding("CRASH_TRACE");
    let finish = go_line("main.go", "wg.Done()");
    assert!(
        message.starts_with(
            "Go crash trace whose first line (panic: or fatal error:) is cut from the log"
        ),
        "{message}"
    );
    assert!(
        message.contains(&format!("at main.finishJob ({finish})")),
        "{message}"
    );
    assert!(
        message.contains("the log starts inside the trace"),
        "{message}"
    );
    let damage = &pm.crash()["log"]["damage"];
    assert_eq!(damage["startsMidLine"], true);
    assert!(damage["bytesNotRead"].as_u64().unwrap() > 0);

    // Cut the end inside a frame: the cut frame keeps its name and gets no location.
    let end = text.find("main.main()").unwrap() + "main.main(".len();
    let pm = postmortem(&run.cri[..end], &[]);
    let (_, message) = pm.finding("GO_PANIC");
    assert!(
        message.contains("missing: the log ends inside the trace: its last frames are cut"),
        "{message}"
    );
    let frames = pm.crash()["trace"]["frames"].as_array().unwrap().clone();
    assert_eq!(frames.last().unwrap()["function"], "main.main(");
    assert!(frames.last().unwrap()["file"].is_null());
}

#[test]
fn garbage_gzip_and_huge_lines_are_survived() {
    let run = go_crash("nil-pointer", &[]);
    // Noise before, inside (plain text: between the frames) and after the trace.
    let mut noisy = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect()
    };
    noisy.extend(noise(200_000));
    noisy.push(b'\n');
    for line in run.plain.split(|&b| b == b'\n') {
        noisy.extend_from_slice(line);
        noisy.push(b'\n');
        if line.starts_with(b"main.(*server).handle") {
            let mut junk = noise(300);
            junk.retain(|&b| b != b'\n' && b != b'\t');
            noisy.extend(junk);
            noisy.push(b'\n');
        }
    }
    let pm = postmortem(&noisy, &["--exit-code", "2"]);
    let (_, message) = pm.finding("GO_PANIC");
    let handle = go_line("main.go", "return s.config.name");
    assert!(
        message.contains(&format!("at main.(*server).handle ({handle})")),
        "{message}"
    );
    assert!(
        message.contains("line(s) inside the trace are other output"),
        "{message}"
    );
    assert!(pm.crash()["log"]["damage"]["binaryLines"].as_u64().unwrap() > 0);

    // Pure garbage: no trace, the exit said in words, nothing made up.
    let pm = postmortem(&noise(1 << 20), &["--exit-code", "1"]);
    assert_eq!(pm.codes(), ["EXIT_ERROR"]);
    assert!(pm.crash()["trace"].is_null());

    // A 20 MiB line with no newline, then the trace: the line is cut, the trace found.
    let mut huge = vec![b'x'; 20 << 20];
    huge.push(b'\n');
    huge.extend_from_slice(&run.cri);
    let pm = postmortem(&huge, &["--max-log-bytes", "64MiB"]);
    pm.finding("GO_PANIC");
    assert_eq!(pm.crash()["log"]["damage"]["longLinesCut"], 1);

    // A gzip'd rotation reads like the file it was.
    let tmp = tempfile::tempdir().unwrap();
    let gz = tmp.path().join("0.log.20240301-101500.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    encoder.write_all(&run.cri).unwrap();
    encoder.finish().unwrap();
    let pm = postmortem_of(tmp, &gz, &["--exit-code", "2"]);
    pm.finding("GO_PANIC");
    assert_eq!(pm.crash()["log"]["format"], "cri");
}

#[test]
fn exits_without_a_trace_quote_the_last_lines() {
    let mut command = Command::new(crashes());
    command.arg("exit-3");
    let run = run_as_container(command);
    assert_eq!(run.exit_code(), 3);
    let pm = postmortem_of_run(&run);
    let (severity, message) = pm.finding("EXIT_ERROR");
    assert_eq!(severity, "warning");
    assert!(
        message.starts_with("the container exited with code 3 (reason Error), and no crash trace in the log; last lines: "),
        "{message}"
    );
    assert!(
        message.contains("cannot connect to the database"),
        "{message}"
    );

    // A real SIGKILL that was not the OOM killer's.
    let mut command = Command::new("sh");
    command.arg("-c").arg("echo serving; exec sleep 60");
    let run = run_watched(&mut command, |child| {
        std::thread::sleep(Duration::from_millis(200));
        child.kill().unwrap();
    });
    assert_eq!(run.exit_code(), 137);
    let pm = postmortem(&run.cri, &["--exit-code", "137", "--oom-kills", "0"]);
    let (severity, message) = pm.finding("EXIT_SIGNAL");
    assert_eq!(severity, "critical");
    assert!(
        message.starts_with("the container was killed by SIGKILL (exit code 137)"),
        "{message}"
    );
    assert!(
        message.contains("the cgroup's OOM kill counter did not grow (0 → 0), so not an OOM kill"),
        "{message}"
    );
}

#[test]
fn an_oom_kill_in_a_real_memory_cgroup_with_the_last_working_set() {
    support::require_root();
    const LIMIT: u64 = 64 << 20;
    let cgroup = support::TestCgroup::create("postmortem-oom", LIMIT);
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("{} && exec \"$0\" grow", cgroup.join_command()))
        .arg(crashes());
    // What an armed watch does: sample the cgroup's usage while the program grows.
    let last: Arc<Mutex<Option<UsageSample>>> = Arc::default();
    let run = run_watched(&mut command, |child| {
        while child.try_wait().unwrap().is_none() {
            let usage = cgroup.usage();
            if usage > 0 {
                *last.lock().unwrap() = Some((Utc::now(), usage));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    assert_eq!(
        run.exit_code(),
        137,
        "the kernel did not OOM-kill the fixture"
    );
    let oom_kills = cgroup.read_oom_kills();
    assert!(oom_kills >= 1);
    let (taken_at, working_set) = last.lock().unwrap().expect("a sample before the kill");
    let pm = postmortem(
        &run.cri,
        &[
            "--exit-code",
            "137",
            "--memory-limit",
            &LIMIT.to_string(),
            "--oom-kills",
            &oom_kills.to_string(),
            "--finished-at",
            &run.finished_at.to_rfc3339(),
            "--last-working-set",
            &working_set.to_string(),
            "--last-working-set-at",
            &taken_at.to_rfc3339(),
        ],
    );
    let (severity, message) = pm.finding("OOM_KILLED");
    assert_eq!(severity, "critical");
    for expected in [
        "OOM-killed: the kernel killed the container for going over its memory limit of 64.0 MiB (exit code 137, the cgroup's OOM kill counter went 0 → ".to_string(),
        format!("the last working set seen was {}", procshot::units::bytes(working_set)),
        "% of the limit), ".into(),
        " before the kill".into(),
    ] {
        assert!(message.contains(&expected), "{expected:?} not in {message}");
    }
    assert_eq!(pm.codes(), ["OOM_KILLED"]);
    let evidence = &pm.summary()["findings"][0]["evidence"];
    let before = evidence["secondsBeforeTheKill"].as_f64().unwrap();
    assert!((0.0..5.0).contains(&before), "{before}");
    // The log's last line is the program's last step before the kill.
    let tail = pm.crash()["tail"].as_array().unwrap().clone();
    assert!(
        tail.last().unwrap()["text"]
            .as_str()
            .unwrap()
            .starts_with("allocated ")
    );
}

/// Builds the Rust fixture once.
fn rust_crash() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/crashes/crash.rs");
        let binary =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("crash-rs-{}", std::process::id()));
        let output = Command::new("rustc")
            .args(["-g", "-o"])
            .arg(&binary)
            .arg(&source)
            .output()
            .expect("rustc builds the Rust crash fixture");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        binary
    })
}

#[test]
fn a_rust_panic_and_a_re_raised_thread_panic() {
    let mut command = Command::new(rust_crash());
    command.arg("expect").env("RUST_BACKTRACE", "0");
    let run = run_as_container(command);
    assert_eq!(run.exit_code(), 101);
    let pm = postmortem_of_run(&run);
    let (severity, message) = pm.finding("CRASH_TRACE");
    assert_eq!(severity, "critical");
    assert!(
        message.starts_with("Rust panic in thread 'main': PORT must be a number: ParseIntError { kind: InvalidDigit }, at crashes/crash.rs:"),
        "{message}"
    );
    assert_eq!(pm.summary()["findings"][0]["evidence"]["language"], "rust");

    let mut command = Command::new(rust_crash());
    command.arg("thread").env("RUST_BACKTRACE", "1");
    let pm = postmortem_of_run(&run_as_container(command));
    let (_, message) = pm.finding("CRASH_TRACE");
    assert!(message.contains("re-raises the panic of worker-1: called `Option::unwrap()` on a `None` value at crashes/crash.rs:"), "{message}");
    assert!(message.contains("the last of 2 crash traces"), "{message}");
    let frames = pm.crash()["trace"]["frames"].as_array().unwrap().clone();
    assert!(
        frames
            .iter()
            .any(|f| f["function"] == "crash::main" && f["ownCode"] == true),
        "{frames:?}"
    );
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/crashes")
        .join(name)
}

#[test]
fn a_python_traceback_with_its_cause() {
    let mut command = Command::new("python3");
    command.arg(fixture("crash.py")).arg("chained");
    let run = run_as_container(command);
    assert_eq!(run.exit_code(), 1);
    let pm = postmortem_of_run(&run);
    let (_, message) = pm.finding("CRASH_TRACE");
    assert!(
        message.starts_with("uncaught Python exception: RuntimeError: no database configured, at connect (crashes/crash.py:"),
        "{message}"
    );
    assert!(message.contains("; caused by KeyError: 'db'"), "{message}");

    let mut command = Command::new("python3");
    command.arg(fixture("crash.py")).arg("plain");
    let pm = postmortem_of_run(&run_as_container(command));
    let (_, message) = pm.finding("CRASH_TRACE");
    assert!(message.contains("FileNotFoundError: [Errno 2] No such file or directory: '/nonexistent/config.json', at load (crashes/crash.py:"), "{message}");
}

#[test]
fn node_uncaught_exceptions_and_rejections() {
    let mut command = Command::new("node");
    command.arg(fixture("crash.js")).arg("throw");
    let run = run_as_container(command);
    assert_eq!(run.exit_code(), 1);
    let pm = postmortem_of_run(&run);
    let (_, message) = pm.finding("CRASH_TRACE");
    assert!(
        message.starts_with("uncaught Node.js exception: TypeError: Cannot read properties of undefined (reading 'length'), at itemCount (crashes/crash.js:3:"),
        "{message}"
    );
    let mut command = Command::new("node");
    command.arg(fixture("crash.js")).arg("reject");
    let pm = postmortem_of_run(&run_as_container(command));
    let (_, message) = pm.finding("CRASH_TRACE");
    assert!(
        message
            .starts_with("uncaught Node.js exception: TypeError: fetch failed: ECONNREFUSED, at "),
        "{message}"
    );
}

#[test]
fn java_exceptions_with_a_cause_and_in_a_thread_that_did_not_end_the_jvm() {
    let classes = tempfile::tempdir().unwrap();
    let status = Command::new("javac")
        .arg("-d")
        .arg(classes.path())
        .arg(fixture("Crash.java"))
        .status()
        .expect("javac builds the Java crash fixture");
    assert!(status.success());
    let java = |mode: &str| {
        let mut command = Command::new("java");
        command.arg("-cp").arg(classes.path()).args(["Crash", mode]);
        run_as_container(command)
    };
    let run = java("caused");
    assert_eq!(run.exit_code(), 1);
    let pm = postmortem_of_run(&run);
    let (_, message) = pm.finding("CRASH_TRACE");
    assert!(
        message.starts_with("uncaught Java exception in thread \"main\": java.lang.IllegalStateException: bad configuration, at Crash.connect (Crash.java:"),
        "{message}"
    );
    assert!(message.contains("; caused by java.lang.NumberFormatException: For input string: \"80a\" at Crash.port (Crash.java:"), "{message}");

    // The worker's exception did not end the JVM: main returned, the exit code is 0.
    let run = java("thread");
    assert_eq!(run.exit_code(), 0);
    let pm = postmortem_of_run(&run);
    let (severity, message) = pm.finding("CRASH_TRACE");
    assert_eq!(severity, "warning");
    assert!(
        message.contains("in thread \"worker-1\": java.lang.NullPointerException"),
        "{message}"
    );
    assert!(
        message.contains("the container exited with code 0: this trace did not end it"),
        "{message}"
    );
    assert_eq!(pm.codes(), ["CRASH_TRACE"]);
}

#[test]
fn a_postmortem_uploads_like_a_capture_and_bad_input_is_refused() {
    let run = go_crash("closed-channel", &[]);
    let pm = postmortem_of_run(&run);
    let bucket = tempfile::tempdir().unwrap();
    let output = support::procshot()
        .args(["upload", "--from"])
        .arg(&pm.dir)
        .arg("--to")
        .arg(format!("file://{}", bucket.path().display()))
        .args(["--session", "shop/api-crash"])
        .output()
        .unwrap();
    let stdout = support::assert_success(&output);
    assert_eq!(stdout.lines().count(), 6, "{stdout}");
    assert!(
        stdout.contains("/shop/api-crash/") && stdout.contains("crash.json"),
        "{stdout}"
    );

    let missing = support::procshot()
        .args(["postmortem", "--log", "/nonexistent/0.log", "--out"])
        .arg(bucket.path().join("x"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(11));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("cannot read the log /nonexistent/0.log")
    );
    let not_empty = support::procshot()
        .args(["postmortem", "--log"])
        .arg(pm.dir.join("container.log"))
        .arg("--out")
        .arg(&pm.dir)
        .output()
        .unwrap();
    assert_eq!(not_empty.status.code(), Some(5));
}
