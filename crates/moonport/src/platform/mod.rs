//! The platform boundary: everything that differs between Unix and Windows.
//!
//! The rest of the crate calls these functions and never uses `cfg(unix)` /
//! `cfg(windows)` itself, so the IOCP build stays honest. Each backend file
//! (`unix.rs`, `windows.rs`) exports the same names.

use std::io;
use std::net::SocketAddr;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as imp;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as imp;

/// How listeners are spread over worker threads on this platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharding {
    /// Every worker binds its own socket to the same address (SO_REUSEPORT) and
    /// the kernel balances new connections between them.
    ReusePort,
    /// One socket accepts and hands connections to the workers in turn.
    HandOff,
}

/// The sharding this platform supports natively.
pub const SHARDING: Sharding = imp::SHARDING;

/// Options for a listening socket.
#[derive(Debug, Clone, Copy)]
pub struct ListenOptions {
    pub backlog: i32,
    /// For IPv6 addresses: accept only IPv6 (true) or also v4-mapped IPv4 (false).
    pub ipv6_only: Option<bool>,
    /// Join a SO_REUSEPORT group so other workers can bind the same address.
    pub shared: bool,
}

/// Creates, binds and starts a listening TCP socket, non-blocking.
pub fn bind_listener(addr: SocketAddr, opts: ListenOptions) -> io::Result<std::net::TcpListener> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    if addr.is_ipv6()
        && let Some(only) = opts.ipv6_only
    {
        socket.set_only_v6(only)?;
    }
    imp::prepare_listener(&socket, opts.shared)?;
    socket.bind(&addr.into())?;
    socket.listen(opts.backlog)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// True when an accept failed because the process or system ran out of file
/// descriptors (EMFILE/ENFILE, WSAEMFILE): the listener backs off and retries.
pub fn is_fd_exhausted(err: &io::Error) -> bool {
    imp::is_fd_exhausted(err)
}

/// Raises the soft limit on open files to the hard limit, so a worker can hold as
/// many connections as the administrator allows. Returns the limit now in force.
pub fn raise_fd_limit() -> Option<u64> {
    imp::raise_fd_limit()
}
