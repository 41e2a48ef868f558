//! Windows backend of the platform boundary: no SO_REUSEPORT, so one listener
//! hands accepted sockets to the workers; handles are limited by memory, not a
//! per-process table; errors from completion ports use Win32 codes; stream
//! sends are WSASend (Wine never completes a WriteFile that had to wait).

use std::io::{self, ErrorKind};

use compio::BufResult;
use compio::buf::IoBuf;
use compio::io::AsyncWriteExt;
use compio::net::TcpStream;
use windows_sys::Win32::Foundation::{
    ERROR_CONNECTION_ABORTED, ERROR_CONNECTION_INVALID, ERROR_CONNECTION_REFUSED, ERROR_GRACEFUL_DISCONNECT,
    ERROR_HOST_UNREACHABLE, ERROR_NETNAME_DELETED, ERROR_NETWORK_UNREACHABLE, ERROR_PORT_UNREACHABLE,
    ERROR_SEM_TIMEOUT, FALSE,
};
use windows_sys::Win32::System::Console::SetConsoleCtrlHandler;

use super::Sharding;

pub const SHARDING: Sharding = Sharding::HandOff;

pub fn prepare_listener(socket: &socket2::Socket, _shared: bool) -> io::Result<()> {
    // No SO_REUSEADDR: on Windows it does not mean "rebind despite TIME_WAIT"
    // as on Unix, but "let another socket bind the port this one listens on".
    let _ = socket;
    Ok(())
}

pub fn send_now(_sock: socket2::SockRef<'_>, _data: &[u8]) -> io::Result<usize> {
    Ok(0)
}

pub async fn write_all<B: IoBuf>(stream: &mut TcpStream, buf: B) -> BufResult<(), B> {
    // compio's vectored write is WSASend (its plain write is WriteFile).
    let BufResult(res, [buf]) = stream.write_vectored_all([buf]).await;
    BufResult(res, buf)
}

pub fn is_fd_exhausted(err: &io::Error) -> bool {
    // WSAEMFILE (10024) and WSAENOBUFS (10055): out of socket handles or buffers.
    matches!(err.raw_os_error(), Some(10024) | Some(10055))
}

pub fn raise_fd_limit() -> Option<u64> {
    None
}

pub fn error_kind(err: &io::Error) -> ErrorKind {
    let Some(code) = err.raw_os_error().and_then(|c| u32::try_from(c).ok()) else {
        return err.kind();
    };
    // What AcceptEx/ConnectEx/WSARecv/WSASend completions report: the NTSTATUS
    // of the operation turned into a Win32 error, not a WSAE* code.
    match code {
        ERROR_CONNECTION_REFUSED | ERROR_PORT_UNREACHABLE => ErrorKind::ConnectionRefused,
        // STATUS_CONNECTION_RESET and STATUS_LOCAL_DISCONNECT both map here.
        ERROR_NETNAME_DELETED => ErrorKind::ConnectionReset,
        ERROR_CONNECTION_ABORTED | ERROR_GRACEFUL_DISCONNECT => ErrorKind::ConnectionAborted,
        ERROR_CONNECTION_INVALID => ErrorKind::NotConnected,
        ERROR_SEM_TIMEOUT => ErrorKind::TimedOut,
        ERROR_NETWORK_UNREACHABLE => ErrorKind::NetworkUnreachable,
        ERROR_HOST_UNREACHABLE => ErrorKind::HostUnreachable,
        _ => err.kind(),
    }
}

pub fn enable_shutdown_signals() {
    // SetConsoleCtrlHandler(NULL, FALSE) clears the "ignore Ctrl-C" flag that
    // CREATE_NEW_PROCESS_GROUP sets; it fails harmlessly without a console.
    // SAFETY: a plain Win32 call with no pointers.
    unsafe {
        SetConsoleCtrlHandler(None, FALSE);
    }
}

pub fn on_reload_signal(_reload: Box<dyn Fn() + Send>) -> io::Result<()> {
    Ok(())
}

pub fn set_reuse_port(_sock: &socket2::Socket, _on: bool) -> io::Result<()> {
    Err(io::Error::from(ErrorKind::Unsupported))
}

pub fn reuse_port(_sock: &socket2::Socket) -> io::Result<bool> {
    Err(io::Error::from(ErrorKind::Unsupported))
}

pub fn fileno(sock: &socket2::Socket) -> i64 {
    use std::os::windows::io::AsRawSocket;
    sock.as_raw_socket() as i64
}

pub fn connect_in_progress(err: &io::Error) -> bool {
    // WSAEWOULDBLOCK (10035) is how a non-blocking connect says "in progress".
    err.raw_os_error() == Some(10035)
}

pub fn is_message_too_long(err: &io::Error) -> bool {
    // WSAEMSGSIZE from a synchronous call; ERROR_MORE_DATA (234) from a
    // completion that filled the buffer before the datagram ended.
    matches!(err.raw_os_error(), Some(10040) | Some(234))
}

pub fn dns_config_paths() -> (std::path::PathBuf, Option<std::path::PathBuf>) {
    let root = std::env::var_os("SystemRoot").unwrap_or_else(|| "C:\\Windows".into());
    (std::path::Path::new(&root).join("System32\\drivers\\etc\\hosts"), None)
}
