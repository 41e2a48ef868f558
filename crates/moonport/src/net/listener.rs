//! Accepting TCP connections: address resolution for `listen`, and the accept
//! loop with its back-off when the process runs out of file descriptors.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::pin::pin;
use std::time::{Duration, Instant};

use compio::net::{TcpListener, TcpStream};
use futures_util::future::{Either, select};

use super::handoff::HandOffQueue;
use crate::metrics::with_worker;
use crate::platform;

/// How long accepting pauses after running out of file descriptors: long
/// enough not to spin, short enough to recover quickly once fds free up.
const FD_BACKOFF: Duration = Duration::from_millis(50);

/// Turns a `listen` host (IP literal, `"*"`, or a name) and port into an address.
/// Names resolve through the system resolver once, at listen time.
pub fn resolve_listen_addr(host: &str, port: u16) -> io::Result<SocketAddr> {
    if host == "*" {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port).to_socket_addrs()?.next().ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not found"))
}

/// Where one worker's new connections come from.
pub enum AcceptLoop {
    /// Its own socket in the SO_REUSEPORT group.
    Socket(TcpListener),
    /// Its queue from a shared acceptor thread.
    HandOff(HandOffQueue),
}

impl AcceptLoop {
    pub fn socket(listener: std::net::TcpListener) -> io::Result<Self> {
        Ok(Self::Socket(TcpListener::from_std(listener)?))
    }

    /// The next connection; `None` once the source has ended.
    async fn next(&self) -> Option<io::Result<(TcpStream, SocketAddr)>> {
        match self {
            Self::Socket(listener) => Some(listener.accept().await),
            Self::HandOff(queue) => {
                let stream = queue.recv().await?;
                Some(stream.peer_addr().and_then(|peer| Ok((TcpStream::from_std(stream)?, peer))))
            }
        }
    }

    /// Accepts until `stop` completes, handing each connection to `on_conn`.
    pub async fn run(self, stop: impl Future<Output = ()>, mut on_conn: impl FnMut(TcpStream, SocketAddr)) {
        let mut stop = pin!(stop);
        let mut backoff = AcceptBackoff::default();
        loop {
            // The stop signal goes first, so nothing is accepted once it has fired.
            let accept = pin!(self.next());
            let result = match select(stop.as_mut(), accept).await {
                Either::Right((Some(result), _)) => result,
                Either::Right((None, _)) | Either::Left(_) => return,
            };
            match result {
                Ok((stream, peer)) => {
                    with_worker(|s| s.accepted.add(1));
                    on_conn(stream, peer)
                }
                Err(e) => compio::time::sleep(backoff.pause_after(&e)).await,
            }
        }
    }
}

/// What an accept loop does after a failed accept: log (at most once a
/// second, so a flood of failures cannot flood the log) and pause, long when
/// out of descriptors, briefly otherwise, but never spin.
#[derive(Default)]
pub struct AcceptBackoff {
    last_warning: Option<Instant>,
}

impl AcceptBackoff {
    pub fn pause_after(&mut self, e: &io::Error) -> Duration {
        let exhausted = platform::is_fd_exhausted(e);
        if self.last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            self.last_warning = Some(Instant::now());
            if exhausted {
                tracing::warn!("accept: {e}; pausing new connections until descriptors free up");
            } else {
                tracing::warn!("accept: {e}");
            }
        }
        if exhausted { FD_BACKOFF } else { Duration::from_millis(1) }
    }
}
