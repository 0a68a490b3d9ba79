//! Socket resolution: maps socket inodes to protocol, addresses, state and queues, read from
//! the target's own `/proc/PID/net/*` (so the target's network namespace, not procshot's).

use std::collections::HashMap;

use std::io::Read;

use procfs::net::{
    TcpNetEntries, TcpNetEntry, TcpState, UdpNetEntries, UdpNetEntry, UdpState, UnixNetEntries,
    UnixState,
};
use procfs::{FromBufRead, FromBufReadSI};
use serde::{Deserialize, Serialize};

use crate::error::CaptureError;
use crate::process::Target;

const WHAT: &str = "the socket tables";
/// Initial buffer for a net table: big enough for thousands of sockets in one read.
const TABLE_BUFFER: usize = 1 << 20;

/// The protocol family of a socket, as found in the target's net tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SocketProtocol {
    /// TCP over IPv4.
    Tcp,
    /// TCP over IPv6.
    Tcp6,
    /// UDP over IPv4.
    Udp,
    /// UDP over IPv6.
    Udp6,
    /// Unix domain socket.
    Unix,
    /// Netlink socket.
    Netlink,
    /// Not found in any table procshot reads (raw, packet, vsock, another namespace…).
    Unknown,
}

impl SocketProtocol {
    /// Short name for messages ("tcp", "unix").
    pub fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Tcp6 => "tcp6",
            Self::Udp => "udp",
            Self::Udp6 => "udp6",
            Self::Unix => "unix",
            Self::Netlink => "netlink",
            Self::Unknown => "unknown",
        }
    }
}

/// What the net tables say about one socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SocketInfo {
    /// Protocol family.
    pub protocol: SocketProtocol,
    /// Connection state (`ESTABLISHED`, `CLOSE_WAIT`, `LISTEN`, `UNCONN`, `CONNECTED`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Local address (`127.0.0.1:8080`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    /// Remote address (the peer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// Bytes queued for the application to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rx_queue: Option<u32>,
    /// Bytes queued for the peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_queue: Option<u32>,
    /// Unix sockets: the bound path (`@name` for abstract ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Unix sockets: stream, dgram or seqpacket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_type: Option<String>,
    /// Netlink sockets: the netlink protocol number (0 is NETLINK_ROUTE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netlink_protocol: Option<u32>,
}

impl SocketInfo {
    fn unknown() -> Self {
        Self {
            protocol: SocketProtocol::Unknown,
            state: None,
            local: None,
            remote: None,
            rx_queue: None,
            tx_queue: None,
            path: None,
            socket_type: None,
            netlink_protocol: None,
        }
    }

    /// The group an fd of this socket counts in: `tcp CLOSE_WAIT`, `unix CONNECTED`…
    pub fn group(&self) -> String {
        match &self.state {
            Some(state) => format!("{} {state}", self.protocol.name()),
            None => self.protocol.name().to_string(),
        }
    }
}

/// All sockets of the target's network namespace, by inode.
#[derive(Debug, Default)]
pub struct SocketTable {
    by_inode: HashMap<u64, SocketInfo>,
}

impl SocketTable {
    /// Reads `net/{tcp,tcp6,udp,udp6,unix,netlink}` of the target. A table that does not
    /// exist (IPv6 disabled, say) is skipped; any other failure is an error.
    pub fn read(target: &Target) -> Result<Self, CaptureError> {
        let mut table = Self::default();
        if let Some(TcpNetEntries(entries)) = read_table(target, "net/tcp")? {
            table.add_tcp(entries, SocketProtocol::Tcp);
        }
        if let Some(TcpNetEntries(entries)) = read_table(target, "net/tcp6")? {
            table.add_tcp(entries, SocketProtocol::Tcp6);
        }
        if let Some(UdpNetEntries(entries)) = read_table(target, "net/udp")? {
            table.add_udp(entries, SocketProtocol::Udp);
        }
        if let Some(UdpNetEntries(entries)) = read_table(target, "net/udp6")? {
            table.add_udp(entries, SocketProtocol::Udp6);
        }
        if let Some(text) = read_text(target, "net/unix")? {
            let UnixNetEntries(entries) = UnixNetEntries::from_buf_read(text.as_bytes())
                .map_err(|e| target.proc_error("net/unix", WHAT, e))?;
            for entry in entries {
                let socket_type = match entry.socket_type {
                    1 => "stream",
                    2 => "dgram",
                    5 => "seqpacket",
                    _ => "other",
                };
                let state = match entry.state {
                    UnixState::UNCONNECTED => "UNCONNECTED",
                    UnixState::CONNECTING => "CONNECTING",
                    UnixState::CONNECTED => "CONNECTED",
                    UnixState::DISCONNECTING => "DISCONNECTING",
                };
                table.by_inode.insert(
                    entry.inode,
                    SocketInfo {
                        protocol: SocketProtocol::Unix,
                        state: Some(state.to_string()),
                        path: entry.path.map(|p| p.display().to_string()),
                        socket_type: Some(socket_type.to_string()),
                        ..SocketInfo::unknown()
                    },
                );
            }
        }
        if let Some(text) = read_text(target, "net/netlink")? {
            let entries = parse_netlink(&text).map_err(|detail| CaptureError::Malformed {
                path: target.path("net/netlink"),
                detail,
            })?;
            for (inode, protocol) in entries {
                table.by_inode.insert(
                    inode,
                    SocketInfo {
                        protocol: SocketProtocol::Netlink,
                        netlink_protocol: Some(protocol),
                        ..SocketInfo::unknown()
                    },
                );
            }
        }
        Ok(table)
    }

    /// What is known of the socket with this inode; `Unknown` protocol when it is in no
    /// table procshot reads.
    pub fn lookup(&self, inode: u64) -> SocketInfo {
        self.by_inode
            .get(&inode)
            .cloned()
            .unwrap_or_else(SocketInfo::unknown)
    }

    fn add_tcp(&mut self, entries: Vec<TcpNetEntry>, protocol: SocketProtocol) {
        for entry in entries {
            self.by_inode.insert(
                entry.inode,
                SocketInfo {
                    protocol,
                    state: Some(tcp_state_name(&entry.state).to_string()),
                    local: Some(entry.local_address.to_string()),
                    remote: (entry.state != TcpState::Listen)
                        .then(|| entry.remote_address.to_string()),
                    rx_queue: Some(entry.rx_queue),
                    tx_queue: Some(entry.tx_queue),
                    ..SocketInfo::unknown()
                },
            );
        }
    }

    fn add_udp(&mut self, entries: Vec<UdpNetEntry>, protocol: SocketProtocol) {
        for entry in entries {
            let connected = entry.state == UdpState::Established;
            self.by_inode.insert(
                entry.inode,
                SocketInfo {
                    protocol,
                    state: Some(if connected { "ESTABLISHED" } else { "UNCONN" }.to_string()),
                    local: Some(entry.local_address.to_string()),
                    remote: connected.then(|| entry.remote_address.to_string()),
                    rx_queue: Some(entry.rx_queue),
                    tx_queue: Some(entry.tx_queue),
                    ..SocketInfo::unknown()
                },
            );
        }
    }
}

/// Reads a whole net table in few large reads (the kernel regenerates a table from its
/// start on every read call, so small reads cost dearly on big tables). `None` when the
/// table does not exist (IPv6 disabled, say).
fn read_text(target: &Target, file: &str) -> Result<Option<String>, CaptureError> {
    let mut handle = match target.process().open_relative(file) {
        Ok(handle) => handle,
        Err(procfs::ProcError::NotFound(_)) if target.is_alive() => return Ok(None),
        Err(e) => return Err(target.proc_error(file, WHAT, e)),
    };
    let mut text = String::with_capacity(TABLE_BUFFER);
    handle
        .read_to_string(&mut text)
        .map_err(|e| target.io_error(file, WHAT, e))?;
    Ok(Some(text))
}

/// Reads and parses an address-family table (`tcp`, `udp`…).
fn read_table<T: FromBufReadSI>(target: &Target, file: &str) -> Result<Option<T>, CaptureError> {
    let Some(text) = read_text(target, file)? else {
        return Ok(None);
    };
    T::from_buf_read(text.as_bytes(), procfs::current_system_info())
        .map(Some)
        .map_err(|e| target.proc_error(file, WHAT, e))
}

/// The kernel's name of a TCP state, as `ss` prints it but with underscores.
pub fn tcp_state_name(state: &TcpState) -> &'static str {
    match state {
        TcpState::Established => "ESTABLISHED",
        TcpState::SynSent => "SYN_SENT",
        TcpState::SynRecv => "SYN_RECV",
        TcpState::FinWait1 => "FIN_WAIT1",
        TcpState::FinWait2 => "FIN_WAIT2",
        TcpState::TimeWait => "TIME_WAIT",
        TcpState::Close => "CLOSE",
        TcpState::CloseWait => "CLOSE_WAIT",
        TcpState::LastAck => "LAST_ACK",
        TcpState::Listen => "LISTEN",
        TcpState::Closing => "CLOSING",
        TcpState::NewSynRecv => "NEW_SYN_RECV",
    }
}

/// Parses `/proc/PID/net/netlink` into `(inode, netlink protocol)` pairs.
pub fn parse_netlink(text: &str) -> Result<Vec<(u64, u32)>, String> {
    let mut lines = text.lines();
    let header = lines.next().ok_or("empty file")?;
    let columns: Vec<&str> = header.split_whitespace().collect();
    let inode_col = columns
        .iter()
        .position(|c| *c == "Inode")
        .ok_or("no Inode column in the header")?;
    let eth_col = columns
        .iter()
        .position(|c| *c == "Eth")
        .ok_or("no Eth column in the header")?;
    let mut entries = Vec::new();
    for (index, line) in lines.enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let bad = || {
            format!(
                "line {}: expected {} columns: {line:?}",
                index + 2,
                columns.len()
            )
        };
        let inode = fields
            .get(inode_col)
            .and_then(|f| f.parse().ok())
            .ok_or_else(bad)?;
        let protocol = fields
            .get(eth_col)
            .and_then(|f| f.parse().ok())
            .ok_or_else(bad)?;
        entries.push((inode, protocol));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NETLINK: &str = "sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode\n\
        ffff8b0c4a6e1000 0   4242       00000000 0        0        0     2        0        98765\n\
        ffff8b0c4a6e2000 15  1          00000001 0        0        0     2        0        1234\n";

    #[test]
    fn netlink_table() {
        assert_eq!(parse_netlink(NETLINK).unwrap(), [(98765, 0), (1234, 15)]);
    }

    #[test]
    fn malformed_netlink_tables_are_errors() {
        assert_eq!(parse_netlink("").unwrap_err(), "empty file");
        assert!(
            parse_netlink("sk Eth Pid\n")
                .unwrap_err()
                .contains("no Inode column")
        );
        let truncated = "sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode\nffff 0 4242\n";
        assert!(parse_netlink(truncated).unwrap_err().starts_with("line 2"));
    }

    #[test]
    fn socket_groups_name_protocol_and_state() {
        let info = SocketInfo {
            protocol: SocketProtocol::Tcp,
            state: Some("CLOSE_WAIT".into()),
            ..SocketInfo::unknown()
        };
        assert_eq!(info.group(), "tcp CLOSE_WAIT");
        assert_eq!(SocketInfo::unknown().group(), "unknown");
    }
}
