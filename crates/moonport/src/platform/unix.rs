//! Unix backend of the platform boundary: SO_REUSEPORT sharding and RLIMIT_NOFILE.

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

pub fn error_kind(err: &io::Error) -> io::ErrorKind {
    err.kind()
}

pub fn enable_shutdown_signals() {}
