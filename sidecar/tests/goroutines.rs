//! The goroutines capture on a real Go program (`fixtures/go/leaky`: goroutines leaking in
//! `main.leakTicker` at 20/s, 12 goroutines blocked in `main.waitForLock` on a mutex that
//! `main.holdLock` never releases, net/http/pprof on 127.0.0.1 inside its own network
//! namespace), and every kind of bad pprof endpoint, which must leave the rest of the
//! capture intact.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use support::Fixture;

/// Leaked goroutines started per second by the fixture.
const LEAK_PER_SECOND: u64 = 20;
/// Goroutines blocked on the mutex.
const BLOCKED: u64 = 12;

/// Starts the Go fixture with pprof on `addr`; with `own_netns`, inside a new network
/// namespace whose loopback is up (so 127.0.0.1 there is not ours).
fn start_leaky(addr: &str, own_netns: bool) -> Fixture {
    let binary = support::go_fixture_binary("leaky");
    let args = [
        "-addr".to_string(),
        addr.to_string(),
        "-leak-per-second".to_string(),
        LEAK_PER_SECOND.to_string(),
        "-blocked".to_string(),
        BLOCKED.to_string(),
    ];
    Fixture::start_with(&[], |command| {
        let mut leaky = if own_netns {
            let mut c = Command::new("unshare");
            c.args([
                "--net",
                "sh",
                "-c",
                "ip link set lo up && exec \"$0\" \"$@\"",
            ])
            .arg(&binary);
            c
        } else {
            Command::new(&binary)
        };
        leaky
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        *command = leaky;
    })
}

/// A port nothing listens on in this network namespace (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A test server on 127.0.0.1 that hands every connection, after reading the request
/// head, to `answer` on its own thread; returns the port.
fn serve(answer: fn(TcpStream)) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    line.clear();
                }
                answer(stream);
            });
        }
    });
    port
}

/// The groups of a goroutines.json sample as (function of the site, state, count).
fn groups(sample: &Value) -> Vec<(String, String, u64)> {
    sample["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let frames = g["frames"].as_array().unwrap();
            let site = frames
                .iter()
                .map(|f| f["function"].as_str().unwrap())
                .find(|f| f.starts_with("main."))
                .unwrap_or("");
            (
                site.to_string(),
                g["state"].as_str().unwrap().to_string(),
                g["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The strings of a serialized pprof `Profile`'s string table (field 6), walking every
/// top-level field; panics on anything that is not a well-formed protobuf message.
fn profile_strings(mut data: &[u8]) -> Vec<String> {
    fn varint(data: &mut &[u8]) -> u64 {
        let mut value = 0;
        for shift in (0..64).step_by(7) {
            let (byte, rest) = data.split_first().expect("varint cut short");
            *data = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return value;
            }
        }
        panic!("varint too long")
    }
    let mut strings = Vec::new();
    while !data.is_empty() {
        let tag = varint(&mut data);
        match tag & 7 {
            0 => {
                varint(&mut data);
            }
            2 => {
                let length = varint(&mut data) as usize;
                let (value, rest) = data.split_at(length);
                if tag >> 3 == 6 {
                    strings.push(String::from_utf8(value.to_vec()).unwrap());
                }
                data = rest;
            }
            other => panic!("wire type {other} in a Profile"),
        }
    }
    strings
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn goroutines_are_read_inside_the_targets_network_namespace() {
    support::require_root();
    let port = free_port();
    let mut fixture = start_leaky(&format!("127.0.0.1:{port}"), true);
    // From our namespace, nothing answers there: only setns reaches the endpoint.
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());

    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("capture");
    let termination = out.path().join("termination.json");
    let output = support::capture(
        fixture.pid(),
        &dir,
        &[
            "--samples",
            "3",
            "--interval",
            "1s",
            "--go-pprof",
            &port.to_string(),
            "--termination-summary",
            termination.to_str().unwrap(),
        ],
    );
    support::assert_success(&output);

    // Groups: the leak grows at about 20/s, exactly 12 wait on the mutex, 1 holds it.
    let goroutines = support::read_json(&dir, "goroutines.json");
    let samples = goroutines["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 3);
    let last = groups(&samples[2]);
    assert!(
        last.contains(&("main.waitForLock".into(), "semacquire".into(), BLOCKED)),
        "{last:?}"
    );
    assert!(
        last.contains(&("main.holdLock".into(), "chan receive".into(), 1)),
        "{last:?}"
    );
    let leaks = support::goroutine_counts(&goroutines, "main.leakTicker");
    let grown = leaks[2] - leaks[0];
    assert!(
        (LEAK_PER_SECOND * 3 / 2..=LEAK_PER_SECOND * 5 / 2).contains(&grown),
        "20/s for 2 s: {leaks:?}"
    );
    assert!(leaks.windows(2).all(|w| w[1] > w[0]), "{leaks:?}");
    let lock = samples[2]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["state"] == "semacquire")
        .unwrap();
    let functions: Vec<&str> = lock["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["function"].as_str().unwrap())
        .collect();
    assert_eq!(
        functions,
        [
            "sync.runtime_SemacquireMutex",
            "sync.(*Mutex).lockSlow",
            "sync.(*Mutex).Lock",
            "main.waitForLock"
        ]
    );
    assert_eq!(lock["createdBy"]["function"], "main.main");

    // Findings.
    let (severity, message) = support::finding(&dir, "GOROUTINE_GROWTH");
    assert_eq!(severity, "warning");
    // The samples are 1 s apart; on a loaded machine the last one may start a little late
    // ("in 2.1 s").
    let expected = format!(
        "goroutines in main.leakTicker grew {} → {} in 2",
        leaks[0], leaks[2]
    );
    assert!(message.starts_with(&expected), "{message}");
    let seconds: f64 = message[expected.len() - 1..]
        .split_once(" s ")
        .and_then(|(s, _)| s.parse().ok())
        .unwrap_or_else(|| panic!("no duration in {message}"));
    assert!((2.0..2.5).contains(&seconds), "{message}");
    assert!(
        message.contains("mostly [select] at leaky/main.go:")
            && message.contains("created by main.startLeaks"),
        "{message}"
    );
    let (severity, message) = support::finding(&dir, "GOROUTINES_BLOCKED");
    assert_eq!(severity, "warning");
    assert!(
        message
            .starts_with("12 goroutines wait [semacquire] in main.waitForLock at leaky/main.go:")
            && message.contains("12 of them were already waiting there 2 s earlier"),
        "{message}"
    );
    assert_eq!(
        support::findings(&dir)
            .iter()
            .filter(|(_, code, _)| code == "GOROUTINES_BLOCKED")
            .count(),
        1,
        "only the mutex: the leak's select site is under the channel minimum"
    );

    // goroutines.txt: biggest group first, each with its count per sample.
    let text = std::fs::read_to_string(dir.join("goroutines.txt")).unwrap();
    let headers: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" goroutine") && l.contains(" ["))
        .collect();
    let sizes: Vec<u64> = headers
        .iter()
        .map(|h| {
            h.split(' ')
                .next()
                .unwrap()
                .replace(',', "")
                .parse()
                .unwrap()
        })
        .collect();
    assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{headers:#?}");
    assert!(
        headers[0].starts_with(&format!(
            "{} goroutines [select] in main.leakTicker — per sample: {} → {} → {}",
            leaks[2], leaks[0], leaks[1], leaks[2]
        )),
        "{headers:#?}"
    );
    assert!(
        headers[1].starts_with(
            "12 goroutines [semacquire] in main.waitForLock — per sample: 12 → 12 → 12 (+0)"
        ),
        "{headers:#?}"
    );

    // heap.pb.gz: a gzip'd pprof Profile with the heap's sample types.
    let heap = std::fs::read(dir.join("heap.pb.gz")).unwrap();
    let mut profile = Vec::new();
    flate2::read::GzDecoder::new(&heap[..])
        .read_to_end(&mut profile)
        .unwrap();
    let strings = profile_strings(&profile);
    for name in [
        "alloc_objects",
        "alloc_space",
        "inuse_objects",
        "inuse_space",
        "bytes",
    ] {
        assert!(strings.iter().any(|s| s == name), "{name} in {strings:?}");
    }

    // Manifest: build info, every file with its size and hash, no error.
    let manifest = support::read_json(&dir, "manifest.json");
    let go_version = String::from_utf8(
        Command::new("go")
            .args(["env", "GOVERSION"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let info = &manifest["goBuildInfo"];
    assert_eq!(info["goVersion"], go_version.trim());
    assert_eq!(info["path"], "example.com/procshot/leaky");
    assert_eq!(info["main"]["path"], "example.com/procshot/leaky");
    assert_eq!(info["deps"][0]["path"], "example.com/leakydep");
    assert_eq!(info["deps"][0]["replace"]["path"], "./leakydep");
    for name in ["goroutines.json", "goroutines.txt", "heap.pb.gz"] {
        let entry = manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("{name} is not in the manifest"));
        let content = std::fs::read(dir.join(name)).unwrap();
        assert_eq!(entry["bytes"], content.len() as u64);
        assert_eq!(entry["sha256"], hex::encode(Sha256::digest(&content)));
    }
    let run = manifest["captures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "goroutines")
        .unwrap();
    assert!(run.get("error").is_none(), "{run}");
    assert!(manifest.get("partial").is_none());

    // The reports show the groups; `procshot report` re-analyzes and keeps every file.
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        report.contains("## Goroutines (last sample, biggest groups first)"),
        "{report}"
    );
    assert!(
        report.contains("| 12 | 12 → 12 → 12 | semacquire | main.waitForLock |"),
        "{report}"
    );
    support::assert_success(
        &support::procshot()
            .arg("report")
            .arg(&dir)
            .output()
            .unwrap(),
    );
    assert_eq!(support::finding(&dir, "GOROUTINES_BLOCKED").1, message);
    let files = support::read_json(&dir, "manifest.json")["files"].clone();
    assert!(
        files
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "heap.pb.gz"),
        "{files}"
    );

    // Summary counts and the termination summary carry the goroutine count.
    let summary = support::read_json(&dir, "summary.json");
    let total = samples[2]["total"].as_u64().unwrap();
    assert_eq!(summary["samples"][2]["goroutines"], total);
    let termination: Value =
        serde_json::from_str(&std::fs::read_to_string(termination).unwrap()).unwrap();
    assert_eq!(termination["counts"]["goroutines"], total);
    fixture.assert_untouched();
}

#[test]
fn build_info_is_recorded_without_pprof() {
    support::require_root();
    let fixture = start_leaky("127.0.0.1:0", false);
    let (_out, dir) = support::capture_ok(fixture.pid(), &["--samples", "1"]);
    let manifest = support::read_json(&dir, "manifest.json");
    assert_eq!(
        manifest["goBuildInfo"]["path"],
        "example.com/procshot/leaky"
    );
    assert!(!dir.join("goroutines.json").exists());

    let native = Fixture::start(&["steady"]);
    let (_out, dir) = support::capture_ok(native.pid(), &["--samples", "1"]);
    assert!(
        support::read_json(&dir, "manifest.json")
            .get("goBuildInfo")
            .is_none()
    );
}

/// Captures the Go fixture (in our own namespace) with `--go-pprof` pointing at `port`;
/// asserts that the capture is partial for the goroutines only and that the /proc
/// captures are whole; returns the goroutines error.
fn capture_with_bad_endpoint(port: u16, extra: &[&str]) -> String {
    let mut fixture = start_leaky("127.0.0.1:0", false);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("capture");
    let mut args = vec![
        "--samples".to_string(),
        "2".to_string(),
        "--interval".to_string(),
        "500ms".to_string(),
        "--go-pprof".to_string(),
        format!("127.0.0.1:{port}"),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = support::capture(fixture.pid(), &dir, &args);
    assert_eq!(
        output.status.code(),
        Some(6),
        "a failed goroutines capture makes the capture partial: {}",
        stderr(&output)
    );
    check_the_rest_is_captured(&dir);
    let manifest = support::read_json(&dir, "manifest.json");
    let run = manifest["captures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "goroutines")
        .unwrap();
    let error = run["error"].as_str().unwrap().to_string();
    assert_eq!(manifest["partial"], format!("goroutines: {error}"));
    assert!(stderr(&output).contains(&error), "{}", stderr(&output));
    assert!(
        manifest["goBuildInfo"]["goVersion"].is_string(),
        "build info comes from the binary, pprof or not"
    );
    fixture.assert_untouched();
    error
}

fn check_the_rest_is_captured(dir: &Path) {
    for name in ["fds.json", "threads.json", "memory.json"] {
        let series = support::read_json(dir, name);
        assert_eq!(series["samples"].as_array().unwrap().len(), 2, "{name}");
    }
    let summary = support::read_json(dir, "summary.json");
    assert!(
        summary["partial"]
            .as_str()
            .unwrap()
            .starts_with("goroutines: ")
    );
}

#[test]
fn nothing_listening_is_reported_and_the_rest_is_captured() {
    support::require_root();
    let port = free_port();
    let error = capture_with_bad_endpoint(port, &[]);
    assert!(
        error.starts_with(&format!(
            "nothing is listening on 127.0.0.1:{port} in the network namespace of pid"
        )) && error.contains("check --go-pprof"),
        "{error}"
    );
}

#[test]
fn a_hanging_endpoint_is_cut_by_the_deadline() {
    support::require_root();
    let port = serve(|stream| {
        std::thread::sleep(Duration::from_secs(120));
        drop(stream);
    });
    let error = capture_with_bad_endpoint(port, &["--go-pprof-timeout", "1s"]);
    assert_eq!(
        error,
        format!(
            "GET http://127.0.0.1:{port}/debug/pprof/goroutine?debug=2 got no complete answer \
             within 1s: the endpoint hangs or is too slow (raise --go-pprof-timeout, within \
             the capture's --timeout)"
        )
    );
    // Without --go-pprof-timeout, the capture's own deadline (--timeout) cuts the request.
    let fixture = start_leaky("127.0.0.1:0", false);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("capture");
    let output = support::capture(
        fixture.pid(),
        &dir,
        &[
            "--samples",
            "1",
            "--timeout",
            "2s",
            "--go-pprof",
            &port.to_string(),
        ],
    );
    assert_eq!(output.status.code(), Some(6), "{}", stderr(&output));
    let partial = support::read_json(&dir, "manifest.json")["partial"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        partial.contains("got no complete answer within 1s "),
        "what is left of the 2 s deadline after fds, threads and memory: {partial}"
    );
}

#[test]
fn a_server_that_is_not_pprof_is_recognized() {
    support::require_root();
    let port = serve(|mut stream| {
        let page = "<!DOCTYPE html>\n<html><body>Welcome to the shop</body></html>\n";
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{page}",
            page.len()
        );
    });
    let error = capture_with_bad_endpoint(port, &[]);
    assert!(
        error.contains("did not answer a goroutine dump: it does not start with a \"goroutine N [state]:\" line but with \"<!DOCTYPE html>\"")
            && error.ends_with("is this a Go net/http/pprof endpoint?"),
        "{error}"
    );
    // A Go server without net/http/pprof: 404.
    let port = serve(|mut stream| {
        let _ = stream.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 19\r\n\r\n404 page not found\n",
        );
    });
    let error = capture_with_bad_endpoint(port, &[]);
    assert!(
        error.starts_with(&format!(
            "GET http://127.0.0.1:{port}/debug/pprof/goroutine?debug=2 answered HTTP 404 Not Found: \
             this server does not serve Go's net/http/pprof there"
        )),
        "{error}"
    );
}

#[test]
fn a_huge_answer_is_capped() {
    support::require_root();
    // A goroutine dump that never ends.
    let port = serve(|mut stream| {
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n");
        let block = "goroutine 7 [select]:\nmain.spin()\n\t/app/main.go:1 +0x1\n\n".repeat(1000);
        while stream.write_all(block.as_bytes()).is_ok() {}
    });
    let error = capture_with_bad_endpoint(port, &["--go-pprof-max-bytes", "1MiB"]);
    assert!(
        error.starts_with(&format!(
            "GET http://127.0.0.1:{port}/debug/pprof/goroutine?debug=2: the answer is larger than the cap of 1.0 MiB (--go-pprof-max-bytes)"
        )),
        "{error}"
    );
}
