//! Socket options by their classic names (`SO_REUSEADDR`, `TCP_NODELAY`, ...),
//! set and read on any socket moonport holds, whatever its state.

use std::io;
use std::time::Duration;

use socket2::SockRef;

use crate::platform;

/// The options scripts can set and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockOpt {
    ReuseAddr,
    ReusePort,
    KeepAlive,
    RecvBuf,
    SendBuf,
    Broadcast,
    NoDelay,
    V6Only,
    Linger,
}

/// An option's value: a switch, a size in bytes, or a linger time (`None` is off).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptValue {
    Bool(bool),
    Size(usize),
    Linger(Option<Duration>),
}

impl SockOpt {
    pub const ALL: [SockOpt; 9] = [
        SockOpt::ReuseAddr,
        SockOpt::ReusePort,
        SockOpt::KeepAlive,
        SockOpt::RecvBuf,
        SockOpt::SendBuf,
        SockOpt::Broadcast,
        SockOpt::NoDelay,
        SockOpt::V6Only,
        SockOpt::Linger,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SockOpt::ReuseAddr => "SO_REUSEADDR",
            SockOpt::ReusePort => "SO_REUSEPORT",
            SockOpt::KeepAlive => "SO_KEEPALIVE",
            SockOpt::RecvBuf => "SO_RCVBUF",
            SockOpt::SendBuf => "SO_SNDBUF",
            SockOpt::Broadcast => "SO_BROADCAST",
            SockOpt::NoDelay => "TCP_NODELAY",
            SockOpt::V6Only => "IPV6_V6ONLY",
            SockOpt::Linger => "SO_LINGER",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.name() == name)
    }

    /// Sets the option; the value's kind must match the option's.
    pub fn set(self, sock: SockRef<'_>, value: OptValue) -> io::Result<()> {
        use OptValue::*;
        match (self, value) {
            (SockOpt::ReuseAddr, Bool(on)) => sock.set_reuse_address(on),
            (SockOpt::ReusePort, Bool(on)) => platform::set_reuse_port(&sock, on),
            (SockOpt::KeepAlive, Bool(on)) => sock.set_keepalive(on),
            (SockOpt::RecvBuf, Size(n)) => sock.set_recv_buffer_size(n),
            (SockOpt::SendBuf, Size(n)) => sock.set_send_buffer_size(n),
            (SockOpt::Broadcast, Bool(on)) => sock.set_broadcast(on),
            (SockOpt::NoDelay, Bool(on)) => sock.set_tcp_nodelay(on),
            (SockOpt::V6Only, Bool(on)) => sock.set_only_v6(on),
            (SockOpt::Linger, Linger(d)) => sock.set_linger(d),
            _ => Err(io::Error::new(io::ErrorKind::InvalidInput, "wrong kind of value")),
        }
    }

    pub fn get(self, sock: SockRef<'_>) -> io::Result<OptValue> {
        use OptValue::*;
        Ok(match self {
            SockOpt::ReuseAddr => Bool(sock.reuse_address()?),
            SockOpt::ReusePort => Bool(platform::reuse_port(&sock)?),
            SockOpt::KeepAlive => Bool(sock.keepalive()?),
            SockOpt::RecvBuf => Size(sock.recv_buffer_size()?),
            SockOpt::SendBuf => Size(sock.send_buffer_size()?),
            SockOpt::Broadcast => Bool(sock.broadcast()?),
            SockOpt::NoDelay => Bool(sock.tcp_nodelay()?),
            SockOpt::V6Only => Bool(sock.only_v6()?),
            SockOpt::Linger => Linger(sock.linger()?),
        })
    }

    /// What kind of value the option takes.
    pub fn kind(self) -> OptKind {
        match self {
            SockOpt::RecvBuf | SockOpt::SendBuf => OptKind::Size,
            SockOpt::Linger => OptKind::Linger,
            _ => OptKind::Bool,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptKind {
    Bool,
    Size,
    Linger,
}
