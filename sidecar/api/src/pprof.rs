//! Where a Go program serves `net/http/pprof`.

use std::fmt;
use std::str::FromStr;

/// Where a program serves `net/http/pprof`, as seen from inside its network namespace:
/// `HOST:PORT` (`127.0.0.1:6060`, `[::1]:6060`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PprofAddress(String);

impl PprofAddress {
    /// The endpoint at `port` on `host` (default `127.0.0.1`); an IPv6 host is bracketed.
    pub fn new(host: Option<&str>, port: u16) -> Self {
        let host = host.unwrap_or("127.0.0.1");
        if host.contains(':') && !host.starts_with('[') {
            Self(format!("[{host}]:{port}"))
        } else {
            Self(format!("{host}:{port}"))
        }
    }

    /// `host:port`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `http://host:port/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.0)
    }
}

impl fmt::Display for PprofAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for PprofAddress {
    type Err = String;

    /// `6060` (meaning `127.0.0.1:6060`), `HOST:6060`, `[::1]:6060`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bad = || {
            format!(
                "{s:?} is not a pprof address: give PORT (127.0.0.1:PORT inside the target's \
                 network namespace) or HOST:PORT, for example 6060 or 127.0.0.1:6060"
            )
        };
        if let Ok(port) = s.parse::<u16>() {
            return Ok(Self(format!("127.0.0.1:{port}")));
        }
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        if host.is_empty() || host.contains('/') || port.parse::<u16>().is_err() {
            return Err(bad());
        }
        Ok(Self(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_default_to_loopback() {
        assert_eq!(
            "6060".parse::<PprofAddress>().unwrap().as_str(),
            "127.0.0.1:6060"
        );
        assert_eq!(
            "10.0.0.7:8080"
                .parse::<PprofAddress>()
                .unwrap()
                .url("/debug/pprof/heap"),
            "http://10.0.0.7:8080/debug/pprof/heap"
        );
        assert_eq!(
            "[::1]:6060".parse::<PprofAddress>().unwrap().as_str(),
            "[::1]:6060"
        );
        for bad in ["", "http://x:1/", "host", "host:port", ":6060", "70000"] {
            assert!(bad.parse::<PprofAddress>().is_err(), "{bad}");
        }
    }

    #[test]
    fn built_addresses_parse_back() {
        for (host, port, text) in [
            (None, 6060, "127.0.0.1:6060"),
            (Some("fd00::1"), 6060, "[fd00::1]:6060"),
            (Some("[::1]"), 1, "[::1]:1"),
            (Some("pprof.local"), 8080, "pprof.local:8080"),
        ] {
            let address = PprofAddress::new(host, port);
            assert_eq!(address.as_str(), text);
            assert_eq!(text.parse::<PprofAddress>(), Ok(address));
        }
    }
}
