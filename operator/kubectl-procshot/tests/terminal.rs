//! The plugin binary's output as a person sees it: in a real terminal (tmux), progress is
//! one block redrawn in place and removed at the end, findings are coloured; piped, the
//! same session gives plain lines with no escape sequence at all. The cluster is the mock
//! API server on loopback, whose session moves on when the test says so.

mod support;

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const NAME: &str = "api-leak";

/// A session whose status is whatever the test last set.
fn scripted() -> (support::Router, Arc<Mutex<Option<Value>>>) {
    let status = Arc::new(Mutex::new(None::<Value>));
    let current = status.clone();
    let spec = json!({"target": {"pod": "api-7d9f8-x2b4q"}, "samples": 3, "interval": "5s", "timeout": "5m"});
    let router = support::creating(move |call| {
        (call.method == "GET" && call.path == format!("{}/{NAME}", support::SESSIONS)).then(|| {
            (
                200,
                support::session(NAME, spec.clone(), current.lock().unwrap().clone()),
            )
        })
    });
    (router, status)
}

fn capturing() -> Value {
    json!({"phase": "Capturing", "targets": [support::target("api-7d9f8-x2b4q", "Capturing", json!({"targetPid": 4242}))]})
}

fn succeeded() -> Value {
    json!({"phase": "Succeeded", "targets": [support::target("api-7d9f8-x2b4q", "Succeeded", json!({"samples": 3}))],
           "findings": [{"pod": "api-7d9f8-x2b4q", "severity": "critical", "code": "FD_LIMIT_NEAR",
                         "message": "1004 of 1024 fds open (98%) \u{1b}]0;pwned\u{7}"}]})
}

/// A tmux server of this test's own, killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new() -> Self {
        Self {
            socket: format!("procshot-plugin-{}", std::process::id()),
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let output = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs (scripts/install-test-deps.sh installs it)");
        assert!(
            output.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The screen's text; with `escapes`, its colours too.
    fn screen(&self, escapes: bool) -> String {
        let mut args = vec!["capture-pane", "-p", "-t", "plugin"];
        if escapes {
            args.push("-e");
        }
        self.run(&args)
    }

    /// Waits until the screen shows `text`.
    async fn wait_for(&self, text: &str) -> String {
        let started = Instant::now();
        loop {
            let screen = self.screen(false);
            if screen.contains(text) {
                return screen;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{text:?} never showed:\n{screen}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_progress_redraws_in_place_and_findings_are_coloured() {
    let (router, status) = scripted();
    let server = support::ApiServer::start(router, None).await;
    let kubeconfig = server.kubeconfig("shop");
    let tmux = Tmux::new();
    let command = format!(
        "env KUBECONFIG={} NO_COLOR= {} capture api-7d9f8-x2b4q --name {NAME}; echo EXIT=$?; sleep 60",
        kubeconfig.display(),
        support::plugin().display()
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "plugin",
        "-x",
        "150",
        "-y",
        "30",
        &command,
    ]);

    let screen = tmux.wait_for("waiting for the operator").await;
    assert!(
        screen.contains("following it"),
        "stdout is a terminal: it follows by default\n{screen}"
    );
    *status.lock().unwrap() = Some(capturing());
    let screen = tmux.wait_for("pid 4242").await;
    // The block was redrawn: one session line, not one per read.
    assert_eq!(screen.matches("shop/api-leak").count(), 1, "{screen}");
    assert!(!screen.contains("waiting for the operator"), "{screen}");
    assert!(
        !screen.contains("[   "),
        "no plain progress lines on a terminal\n{screen}"
    );
    // Time goes on in the block while nothing changes.
    let before = screen
        .lines()
        .find(|l| l.contains("shop/api-leak Capturing"))
        .unwrap()
        .to_string();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let later = tmux.screen(false);
    let after = later
        .lines()
        .find(|l| l.contains("shop/api-leak Capturing"))
        .unwrap()
        .to_string();
    assert_ne!(before, after, "the spinner and clock move");

    *status.lock().unwrap() = Some(succeeded());
    let screen = tmux.wait_for("EXIT=").await;
    assert!(screen.contains("EXIT=3"), "{screen}");
    assert!(
        !screen.contains("Capturing"),
        "the live block is removed at the end\n{screen}"
    );
    assert!(screen.contains("shop/api-leak Succeeded"), "{screen}");
    // The finding is red, and what the target wrote reaches the screen inert.
    let colours = tmux.screen(true);
    let line = colours
        .lines()
        .find(|l| l.contains("FD_LIMIT_NEAR"))
        .unwrap();
    assert!(
        line.contains("\u{1b}[1m\u{1b}[31mCRITICAL") || line.contains("\u{1b}[1;31mCRITICAL"),
        "{line:?}"
    );
    assert!(line.contains("\\u{1b}]0;pwned\\u{7}"), "{line:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piped_the_same_session_gives_plain_lines_without_escapes() {
    let (router, status) = scripted();
    let server = support::ApiServer::start(router, None).await;
    let kubeconfig = server.kubeconfig("shop");
    let child = Command::new(support::plugin())
        .args(["capture", "api-7d9f8-x2b4q", "--name", NAME, "--wait"])
        .env("KUBECONFIG", &kubeconfig)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    *status.lock().unwrap() = Some(capturing());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    *status.lock().unwrap() = Some(succeeded());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let (stdout, stderr) = (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    );
    for text in [&stdout, &stderr] {
        assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text:?}");
    }
    let progress: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with('['))
        .map(|l| l.split_once("] ").unwrap().1)
        .collect();
    assert_eq!(
        progress,
        [
            "shop/api-leak Pending: waiting for the operator",
            "shop/api-leak Capturing",
            "api-7d9f8-x2b4q Capturing on worker-3, pid 4242",
            "shop/api-leak Succeeded",
            "api-7d9f8-x2b4q Succeeded on worker-3, 3 samples",
        ],
        "{stderr}"
    );
    assert!(
        stdout
            .contains("CRITICAL  FD_LIMIT_NEAR  1004 of 1024 fds open (98%) \\u{1b}]0;pwned\\u{7}"),
        "{stdout}"
    );
}
