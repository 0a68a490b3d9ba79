//! Parser for `/proc/PID/fdinfo/FD`: the common fields (pos, flags, mnt_id, ino) and the
//! lines specific to timerfd, eventfd, epoll, inotify, signalfd and pidfd. Pure: text in,
//! [`FdInfo`] out, so it is tested on inline samples.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Everything `fdinfo` says about one fd.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FdInfo {
    /// File offset.
    pub pos: u64,
    /// Open flags, in octal as the kernel prints them (`02004002`).
    pub flags: String,
    /// Mount id of the file (matches `/proc/PID/mountinfo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mnt_id: Option<u64>,
    /// Inode number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ino: Option<u64>,
    /// timerfd state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timerfd: Option<TimerfdInfo>,
    /// eventfd state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eventfd: Option<EventfdInfo>,
    /// The fds an epoll instance watches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub epoll_targets: Vec<EpollTarget>,
    /// The watches of an inotify instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inotify_watches: Vec<InotifyWatch>,
    /// A signalfd's signal mask, hex as printed by the kernel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signalfd_mask: Option<String>,
    /// The pid a pidfd refers to (`-1` once that process is reaped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pidfd_pid: Option<i64>,
    /// Any other `key: value` line, kept verbatim.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub other: BTreeMap<String, String>,
}

/// A timerfd's clock and timer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimerfdInfo {
    /// Clock id (0 realtime, 1 monotonic, 7 boottime, …).
    pub clockid: i32,
    /// Expirations not yet read.
    pub ticks: u64,
    /// Time to the next expiration, in nanoseconds.
    pub it_value_ns: u64,
    /// Repeat interval in nanoseconds (0: one-shot).
    pub it_interval_ns: u64,
}

/// An eventfd's counter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventfdInfo {
    /// The counter's value.
    pub count: u64,
    /// Whether the eventfd is in semaphore mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semaphore: Option<bool>,
}

/// One fd watched by an epoll instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EpollTarget {
    /// The watched fd number.
    pub fd: i32,
    /// Event mask, hex.
    pub events: String,
    /// Inode of the watched file, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ino: Option<String>,
}

/// One inotify watch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InotifyWatch {
    /// Watch descriptor.
    pub wd: i32,
    /// Inode watched, hex.
    pub ino: String,
    /// Event mask, hex.
    pub mask: String,
}

/// A line of `fdinfo` that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}: {text:?}")]
pub struct FdInfoError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub reason: &'static str,
    /// The offending line.
    pub text: String,
}

impl FdInfo {
    /// Parses the text of an fdinfo file.
    pub fn parse(text: &str) -> Result<Self, FdInfoError> {
        let mut info = FdInfo::default();
        let mut saw_flags = false;
        for (index, line) in text.lines().enumerate() {
            let err = |reason| FdInfoError {
                line: index + 1,
                reason,
                text: line.to_string(),
            };
            if line.trim().is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("tfd:") {
                info.epoll_targets
                    .push(parse_epoll_target(rest).ok_or_else(|| err("bad epoll target"))?);
                continue;
            }
            if let Some(rest) = line.strip_prefix("inotify ") {
                info.inotify_watches
                    .push(parse_inotify_watch(rest).ok_or_else(|| err("bad inotify watch"))?);
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                return Err(err("expected `key: value`"));
            };
            let value = value.trim();
            match key.trim() {
                "pos" => info.pos = value.parse().map_err(|_| err("pos is not a number"))?,
                "flags" => {
                    u32::from_str_radix(value, 8).map_err(|_| err("flags are not octal"))?;
                    info.flags = value.to_string();
                    saw_flags = true;
                }
                "mnt_id" => {
                    info.mnt_id = Some(value.parse().map_err(|_| err("mnt_id is not a number"))?)
                }
                "ino" => info.ino = Some(value.parse().map_err(|_| err("ino is not a number"))?),
                "clockid" => {
                    timer(&mut info).clockid =
                        value.parse().map_err(|_| err("clockid is not a number"))?
                }
                "ticks" => {
                    timer(&mut info).ticks =
                        value.parse().map_err(|_| err("ticks is not a number"))?
                }
                "it_value" => {
                    timer(&mut info).it_value_ns =
                        parse_timespec(value).ok_or_else(|| err("bad it_value"))?
                }
                "it_interval" => {
                    timer(&mut info).it_interval_ns =
                        parse_timespec(value).ok_or_else(|| err("bad it_interval"))?
                }
                "eventfd-count" => {
                    eventfd(&mut info).count = u64::from_str_radix(value, 16)
                        .map_err(|_| err("eventfd-count is not hex"))?
                }
                "eventfd-semaphore" => eventfd(&mut info).semaphore = Some(value == "1"),
                "sigmask" => info.signalfd_mask = Some(value.to_string()),
                "Pid" => {
                    info.pidfd_pid = Some(value.parse().map_err(|_| err("Pid is not a number"))?)
                }
                other => {
                    info.other.insert(other.to_string(), value.to_string());
                }
            }
        }
        if !saw_flags {
            return Err(FdInfoError {
                line: text.lines().count(),
                reason: "no flags line (truncated?)",
                text: text.lines().last().unwrap_or_default().to_string(),
            });
        }
        Ok(info)
    }
}

fn timer(info: &mut FdInfo) -> &mut TimerfdInfo {
    info.timerfd.get_or_insert_with(TimerfdInfo::default)
}

fn eventfd(info: &mut FdInfo) -> &mut EventfdInfo {
    info.eventfd.get_or_insert_with(EventfdInfo::default)
}

/// `(1, 500000000)` → nanoseconds.
fn parse_timespec(value: &str) -> Option<u64> {
    let inner = value.strip_prefix('(')?.strip_suffix(')')?;
    let (secs, nanos) = inner.split_once(',')?;
    let secs: u64 = secs.trim().parse().ok()?;
    let nanos: u64 = nanos.trim().parse().ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Splits `key:value key2:value2 …` (values may be separated from keys by spaces).
fn fields(text: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut tokens = text.split_whitespace().peekable();
    std::iter::from_fn(move || {
        let token = tokens.next()?;
        let (key, value) = token.split_once(':')?;
        if value.is_empty() {
            Some((key, tokens.next().unwrap_or_default()))
        } else {
            Some((key, value))
        }
    })
}

/// `        5 events:       19 data: 0  pos:0 ino:3ab sdev:e` (after `tfd:`).
fn parse_epoll_target(rest: &str) -> Option<EpollTarget> {
    let line = format!("tfd:{rest}");
    let mut target = EpollTarget::default();
    let mut saw_fd = false;
    let mut saw_events = false;
    for (key, value) in fields(&line) {
        match key {
            "tfd" => {
                target.fd = value.parse().ok()?;
                saw_fd = true;
            }
            "events" => {
                target.events = value.to_string();
                saw_events = true;
            }
            "ino" => target.ino = Some(value.to_string()),
            _ => {}
        }
    }
    (saw_fd && saw_events).then_some(target)
}

/// `wd:1 ino:1b3c sdev:800001 mask:300 ignored_mask:0 …` (after `inotify `).
fn parse_inotify_watch(rest: &str) -> Option<InotifyWatch> {
    let mut wd = None;
    let mut ino = None;
    let mut mask = None;
    for (key, value) in fields(rest) {
        match key {
            "wd" => wd = value.parse().ok(),
            "ino" => ino = Some(value.to_string()),
            "mask" => mask = Some(value.to_string()),
            _ => {}
        }
    }
    Some(InotifyWatch {
        wd: wd?,
        ino: ino?,
        mask: mask?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_file() {
        let info = FdInfo::parse("pos:\t5\nflags:\t0100002\nmnt_id:\t25\nino:\t1234567\n").unwrap();
        assert_eq!(info.pos, 5);
        assert_eq!(info.flags, "0100002");
        assert_eq!(info.mnt_id, Some(25));
        assert_eq!(info.ino, Some(1234567));
        assert!(info.timerfd.is_none() && info.other.is_empty());
    }

    #[test]
    fn timerfd() {
        let text = "pos:\t0\nflags:\t02\nmnt_id:\t16\nino:\t1057\nclockid: 1\nticks: 3\nsettime flags: 00\n\
                    it_value: (0, 499123456)\nit_interval: (1, 500000000)\n";
        let info = FdInfo::parse(text).unwrap();
        let timer = info.timerfd.unwrap();
        assert_eq!(timer.clockid, 1);
        assert_eq!(timer.ticks, 3);
        assert_eq!(timer.it_value_ns, 499_123_456);
        assert_eq!(timer.it_interval_ns, 1_500_000_000);
        assert_eq!(
            info.other.get("settime flags").map(String::as_str),
            Some("00")
        );
    }

    #[test]
    fn eventfd_count_is_hex() {
        let text = "pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t1057\neventfd-count:               2a\neventfd-id: 7\neventfd-semaphore: 0\n";
        let info = FdInfo::parse(text).unwrap();
        assert_eq!(
            info.eventfd,
            Some(EventfdInfo {
                count: 42,
                semaphore: Some(false)
            })
        );
    }

    #[test]
    fn epoll_targets() {
        let text = "pos:\t0\nflags:\t02\nmnt_id:\t16\nino:\t1057\n\
                    tfd:        5 events:       19 data:                5  pos:0 ino:421 sdev:f\n\
                    tfd:        7 events:       19 data:                7  pos:0 ino:421 sdev:f\n";
        let info = FdInfo::parse(text).unwrap();
        let fds: Vec<i32> = info.epoll_targets.iter().map(|t| t.fd).collect();
        assert_eq!(fds, [5, 7]);
        assert_eq!(info.epoll_targets[0].events, "19");
        assert_eq!(info.epoll_targets[0].ino.as_deref(), Some("421"));
    }

    #[test]
    fn inotify_signalfd_and_pidfd() {
        let inotify = "pos:\t0\nflags:\t02000000\nmnt_id:\t16\nino:\t1057\n\
                       inotify wd:1 ino:2a0c sdev:800001 mask:300 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:0c2a0000b1b2c3d4\n";
        let watches = FdInfo::parse(inotify).unwrap().inotify_watches;
        assert_eq!(
            watches,
            [InotifyWatch {
                wd: 1,
                ino: "2a0c".into(),
                mask: "300".into()
            }]
        );

        let signalfd = "pos:\t0\nflags:\t02\nmnt_id:\t16\nino:\t1057\nsigmask:\t0000000000000200\n";
        assert_eq!(
            FdInfo::parse(signalfd).unwrap().signalfd_mask.as_deref(),
            Some("0000000000000200")
        );

        let pidfd =
            "pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t1057\nPid:\t4242\nNSpid:\t4242\n";
        assert_eq!(FdInfo::parse(pidfd).unwrap().pidfd_pid, Some(4242));
    }

    #[test]
    fn malformed_and_truncated_input_is_an_error_with_the_line() {
        let err = FdInfo::parse("pos:\tfive\nflags:\t02\n").unwrap_err();
        assert_eq!(err.line, 1);
        assert_eq!(err.reason, "pos is not a number");

        let err = FdInfo::parse("pos:\t0\nflags:\t09\n").unwrap_err();
        assert_eq!(err.reason, "flags are not octal");

        let err = FdInfo::parse("pos:\t0\n").unwrap_err();
        assert_eq!(err.reason, "no flags line (truncated?)");

        let err = FdInfo::parse("pos:\t0\nflags:\t02\nit_interval: (1, 5\n").unwrap_err();
        assert_eq!((err.line, err.reason), (3, "bad it_interval"));

        let err = FdInfo::parse("pos:\t0\nflags:\t02\ntfd: x events: 19\n").unwrap_err();
        assert_eq!(err.reason, "bad epoll target");

        let err = FdInfo::parse("pos 0\n").unwrap_err();
        assert_eq!(err.reason, "expected `key: value`");

        assert!(FdInfo::parse("").is_err());
    }
}
