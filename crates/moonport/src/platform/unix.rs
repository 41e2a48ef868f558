//! Unix backend of the platform boundary: SO_REUSEPORT sharding, RLIMIT_NOFILE,
//! sends that never wait (MSG_DONTWAIT), and SIGHUP for reloads.

use std::io;
use std::sync::atomic::{AtomicI32, Ordering};

use compio::BufResult;
use compio::buf::IoBuf;
use compio::io::AsyncWriteExt;
use compio::net::TcpStream;

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

pub async fn write_all<B: IoBuf>(stream: &mut TcpStream, buf: B) -> BufResult<(), B> {
    stream.write_all(buf).await
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

/// The write end of the pipe the SIGHUP handler wakes the reload thread through.
static SIGHUP_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_sighup(_: libc::c_int) {
    let fd = SIGHUP_PIPE.load(Ordering::Relaxed);
    // write(2) is async-signal-safe; a full pipe (signals far faster than
    // reloads) drops the byte, which loses nothing: a reload is pending anyway.
    // SAFETY: writes one byte from a live local to our own pipe.
    unsafe { libc::write(fd, [1u8].as_ptr().cast(), 1) };
}

pub fn on_reload_signal(reload: Box<dyn Fn() + Send>) -> io::Result<()> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe/fcntl/sigaction on descriptors and structs we own.
    unsafe {
        if libc::pipe(fds.as_mut_ptr()) != 0 {
            return Err(io::Error::last_os_error());
        }
        for fd in fds {
            // Not inherited by programs the script starts.
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
        libc::fcntl(fds[1], libc::F_SETFL, libc::O_NONBLOCK);
    }
    SIGHUP_PIPE.store(fds[1], Ordering::Relaxed);
    let read_end = fds[0];
    std::thread::Builder::new().name("moonport-sighup".into()).spawn(move || {
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: reads into a local buffer of the given length.
            let n = unsafe { libc::read(read_end, buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                // Several signals waiting in the pipe make one reload.
                reload();
            } else if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            } else {
                return;
            }
        }
    })?;
    // SAFETY: installs a handler that only calls write(2).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sighup as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(libc::SIGHUP, &action, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

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
