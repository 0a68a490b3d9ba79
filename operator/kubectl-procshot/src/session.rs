//! Building the DebugSession `capture` creates, from the command line and the resolved
//! target. Pure: no API calls, so `--dry-run=client` prints exactly what would be sent.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use kube::api::ObjectMeta;
use procshot_operator::api::{
    CaptureKind, DebugSession, DebugSessionSpec, GoPprofSpec, TargetSpec,
};

use crate::cli::CaptureArgs;
use crate::error::Error;

/// Label on every session the plugin creates.
pub const CREATED_BY_LABEL: &str = "procshot.dev/created-by";
/// Its value.
pub const CREATED_BY: &str = "kubectl-procshot";
/// Annotation naming the user who asked for the session (as the API server knows them).
pub const REQUESTED_BY_ANNOTATION: &str = "procshot.dev/requested-by";
/// Longest session name the CRD accepts (capture pod names are derived from it).
const MAX_NAME: usize = 52;
/// The timeout the CRD defaults to.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// The capture names, in the order captures run.
pub fn capture_names() -> Vec<&'static str> {
    CaptureKind::ALL.iter().map(|kind| kind.name()).collect()
}

/// The session for `args` on `target`, named `name`, in `namespace`.
pub fn build(
    args: &CaptureArgs,
    target: TargetSpec,
    name: &str,
    namespace: &str,
    requested_by: Option<&str>,
) -> Result<DebugSession, Error> {
    let mut captures = if args.capture.is_empty() {
        CaptureKind::DEFAULT.to_vec()
    } else {
        args.capture.clone()
    };
    let go_pprof = args.go_pprof.as_deref().map(parse_pprof).transpose()?;
    if go_pprof.is_some() {
        captures.push(CaptureKind::Goroutines);
    }
    if args.core {
        captures.push(CaptureKind::Core);
    }
    captures.sort();
    captures.dedup();
    let mut labels = BTreeMap::new();
    labels.insert(CREATED_BY_LABEL.to_string(), CREATED_BY.to_string());
    let annotations = requested_by
        .map(|user| BTreeMap::from([(REQUESTED_BY_ANNOTATION.to_string(), user.to_string())]));
    let spec = DebugSessionSpec {
        target,
        capture: captures.clone(),
        samples: args.samples,
        interval: (args.samples > 1).then(|| duration(args.interval)),
        timeout: duration(args.timeout.unwrap_or(DEFAULT_TIMEOUT)),
        ttl_seconds_after_finished: args.ttl.map(|ttl| ttl.as_secs() as i64),
        output: args.destination(),
        go_pprof,
        core: None,
    };
    let mut session = DebugSession::new(name, spec);
    session.metadata = ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        labels: Some(labels),
        annotations,
        ..ObjectMeta::default()
    };
    Ok(session)
}

/// `--go-pprof PORT` or `HOST:PORT` (`[::1]:6060` for IPv6).
fn parse_pprof(text: &str) -> Result<GoPprofSpec, Error> {
    let bad = || {
        Error::Usage(format!(
            "--go-pprof {text:?}: give the port of the pod's pprof endpoint (6060), or \
             HOST:PORT as seen inside the pod (127.0.0.1:6060)"
        ))
    };
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (
            Some(host.trim_start_matches('[').trim_end_matches(']')),
            port,
        ),
        None => (None, text),
    };
    let port: u16 = port.parse().map_err(|_| bad())?;
    if port == 0 || host.is_some_and(str::is_empty) {
        return Err(bad());
    }
    Ok(GoPprofSpec {
        port,
        host: host.map(str::to_string),
    })
}

/// A duration as the CRD's pattern takes it (`5m`, `90s`, `1500ms`).
pub fn duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// A fresh session name: `PREFIX-xxxxx` (five random letters and digits), the prefix cut
/// so that the name fits the CRD's 52 characters.
pub fn generated_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut random = RandomState::new().hash_one(std::time::SystemTime::now());
    let suffix: String = (0..5)
        .map(|_| {
            let c = ALPHABET[(random % ALPHABET.len() as u64) as usize] as char;
            random /= ALPHABET.len() as u64;
            c
        })
        .collect();
    let prefix: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(MAX_NAME - suffix.len() - 1)
        .collect();
    let prefix = prefix.trim_matches('-');
    if prefix.is_empty() {
        format!("procshot-{suffix}")
    } else {
        format!("{prefix}-{suffix}")
    }
}

/// Checks a `--name` against what the CRD accepts.
pub fn check_name(name: &str) -> Result<(), Error> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "--name {name:?}: a DebugSession name is at most {MAX_NAME} lowercase letters, \
             digits, '-' and '.', starting and ending with a letter or digit"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_names_are_in_the_order_captures_run() {
        assert_eq!(
            capture_names(),
            ["fds", "threads", "memory", "goroutines", "stacks", "core"]
        );
    }

    #[test]
    fn durations_use_the_largest_whole_unit() {
        for (ms, text) in [
            (300_000, "5m"),
            (90_000, "90s"),
            (1_500, "1500ms"),
            (7_200_000, "2h"),
        ] {
            assert_eq!(duration(Duration::from_millis(ms)), text);
        }
    }

    #[test]
    fn generated_names_fit_and_differ() {
        let long = "a-very-long-pod-name-from-a-statefulset-of-many-replicas-0";
        let name = generated_name(long);
        assert!(name.len() <= MAX_NAME, "{name}");
        check_name(&name).unwrap();
        assert!(name.starts_with("a-very-long-pod"), "{name}");
        assert_ne!(generated_name("api"), generated_name("api"));
        assert!(generated_name("API_x").starts_with("api-x-"));
        assert!(check_name("Bad_Name").is_err());
    }

    #[test]
    fn pprof_takes_a_port_or_host_and_port() {
        assert_eq!(
            parse_pprof("6060").unwrap().address().to_string(),
            "127.0.0.1:6060"
        );
        assert_eq!(
            parse_pprof("0.0.0.0:6060").unwrap().address().to_string(),
            "0.0.0.0:6060"
        );
        assert_eq!(
            parse_pprof("[::1]:6060").unwrap().address().to_string(),
            "[::1]:6060"
        );
        for bad in ["", "x", "0", ":6060", "70000"] {
            assert!(parse_pprof(bad).is_err(), "{bad}");
        }
    }
}
