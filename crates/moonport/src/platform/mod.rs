//! The platform boundary: everything that differs between Unix and Windows.
//!
//! The rest of the crate calls these functions and never uses `cfg(unix)` /
//! `cfg(windows)` itself, so the IOCP build stays honest. Each backend file
//! (`unix.rs`, `windows.rs`) exports the same names.

use std::io;
use std::net::SocketAddr;

use compio::BufResult;
use compio::buf::IoBuf;
use compio::net::TcpStream;

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

/// Sends what a connected stream socket takes right now, never waiting:
/// `Ok(0)` when it takes nothing now, or when this platform has no cheap way
/// to know (Windows: the socket belongs to the completion port, and every
/// send goes through it). Lets a write that fits the socket buffer skip the
/// asynchronous operation and the coroutine's wait.
pub fn send_now(sock: socket2::SockRef<'_>, data: &[u8]) -> io::Result<usize> {
    imp::send_now(sock, data)
}

/// Writes all of `buf` to a connected stream, waiting for socket buffer
/// space as needed. On Windows the sends are WSASend, not the WriteFile that
/// compio's plain `write` issues on a socket: under Wine (8.0) an overlapped
/// WriteFile on a socket that has to wait for buffer space never completes,
/// which stalled every stream larger than the socket buffers
/// (docs/windows.md). WSASend is the native socket call on Windows too.
pub async fn write_all<B: IoBuf>(stream: &mut TcpStream, buf: B) -> BufResult<(), B> {
    imp::write_all(stream, buf).await
}

/// The kind of an I/O error, with the codes std does not classify mapped to
/// the kind they mean. On Windows, an operation that completes through the I/O
/// completion port reports a Win32 error (ERROR_CONNECTION_REFUSED,
/// ERROR_NETNAME_DELETED, ...) rather than the WSAE* code a synchronous call
/// gives, and std leaves most of those uncategorized.
pub fn error_kind(err: &io::Error) -> io::ErrorKind {
    imp::error_kind(err)
}

/// Makes sure the shutdown signals reach this process before the handler is
/// installed. On Unix the handler itself overrides an inherited SIG_IGN. On
/// Windows a process started in a new console process group inherits "ignore
/// Ctrl-C"; a server that installs a Ctrl-C handler wants it, so it is turned
/// back on (Ctrl-Break and close/logoff/shutdown events are never ignored).
pub fn enable_shutdown_signals() {
    imp::enable_shutdown_signals()
}

/// Calls `reload` on a thread of its own whenever the process is asked to
/// reload its script by signal: SIGHUP on Unix. Windows has no such signal
/// (`moonport reload` goes through the control listener there): a no-op.
pub fn on_reload_signal(reload: Box<dyn Fn() + Send>) -> io::Result<()> {
    imp::on_reload_signal(reload)
}

/// Raises the soft limit on open files to the hard limit, so a worker can hold as
/// many connections as the administrator allows. Returns the limit now in force.
pub fn raise_fd_limit() -> Option<u64> {
    imp::raise_fd_limit()
}

/// SO_REUSEPORT, where the platform has it ("not supported" elsewhere).
pub fn set_reuse_port(sock: &socket2::Socket, on: bool) -> io::Result<()> {
    imp::set_reuse_port(sock, on)
}

pub fn reuse_port(sock: &socket2::Socket) -> io::Result<bool> {
    imp::reuse_port(sock)
}

/// The descriptor number a script sees from `fileno()`: the fd on Unix, the
/// SOCKET handle on Windows.
pub fn fileno(sock: &socket2::Socket) -> i64 {
    imp::fileno(sock)
}

/// True when a non-blocking `connect` has started and completes later
/// (EINPROGRESS on Unix, WSAEWOULDBLOCK on Windows).
pub fn connect_in_progress(err: &io::Error) -> bool {
    imp::connect_in_progress(err)
}

/// True when a datagram did not fit: EMSGSIZE on a send; on Windows also a
/// receive into a buffer smaller than the datagram (WSAEMSGSIZE, or
/// ERROR_MORE_DATA from the completion port).
pub fn is_message_too_long(err: &io::Error) -> bool {
    imp::is_message_too_long(err)
}

/// Where the system keeps its DNS configuration: the hosts file, and the
/// resolver configuration listing name servers (`None` where the platform
/// keeps it elsewhere, as Windows does in the registry).
pub fn dns_config_paths() -> (std::path::PathBuf, Option<std::path::PathBuf>) {
    imp::dns_config_paths()
}
