//! Unix backend of the platform boundary: SO_REUSEPORT sharding, RLIMIT_NOFILE
//! and sends that never wait (MSG_DONTWAIT).

use std::io;

use super::Sharding;

pub const SHARDING: Sharding = Sharding::ReusePort;

pub fn prepare_listener(socket: &socket2::Socket, shared: bool) -> io::Result<()> {
    // SO_REUSEADDR lets a restarted server bind while old connections sit in TIME_WAIT.
    socket.set_reuse_address(true)?;
    if shared {
        socket.set_reuse_port(true)?;
    }
    Ok(())
}

pub fn is_fd_exhausted(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

pub fn raise_fd_limit() -> Option<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    Some(lim.rlim_cur)
}

pub fn send_now(sock: socket2::SockRef<'_>, data: &[u8]) -> io::Result<usize> {
    // No SIGPIPE for a peer that has gone: the error comes back as EPIPE.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    const FLAGS: libc::c_int = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    const FLAGS: libc::c_int = libc::MSG_DONTWAIT;
    match sock.send_with_flags(data, FLAGS) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => Ok(0),
        r => r,
    }
}

pub fn error_kind(err: &io::Error) -> io::ErrorKind {
    err.kind()
}

pub fn enable_shutdown_signals() {}

pub fn set_reuse_port(sock: &socket2::Socket, on: bool) -> io::Result<()> {
    sock.set_reuse_port(on)
}

pub fn reuse_port(sock: &socket2::Socket) -> io::Result<bool> {
    sock.reuse_port()
}

pub fn fileno(sock: &socket2::Socket) -> i64 {
    use std::os::fd::AsRawFd;
    i64::from(sock.as_raw_fd())
}

pub fn connect_in_progress(err: &io::Error) -> bool {
    err.raw_os_error() == Some(libc::EINPROGRESS)
}

pub fn is_message_too_long(err: &io::Error) -> bool {
    err.raw_os_error() == Some(libc::EMSGSIZE)
}

pub fn dns_config_paths() -> (std::path::PathBuf, Option<std::path::PathBuf>) {
    ("/etc/hosts".into(), Some("/etc/resolv.conf".into()))
}
