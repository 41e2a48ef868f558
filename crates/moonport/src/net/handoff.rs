//! Listener sharding for platforms without SO_REUSEPORT: one thread accepts
//! and deals the connections to the workers in turn.
//!
//! The acceptor is a plain blocking thread, not a task on one worker's runtime,
//! so an accepted socket is not yet tied to any completion port and the worker
//! that receives it can register it with its own (an IOCP handle can belong to
//! one port only).

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_channel::{Receiver, Sender};

use super::listener::AcceptBackoff;

/// Connections waiting in one worker's queue before the acceptor skips it.
const QUEUE: usize = 256;

pub struct HandOff {
    /// Where the listener is bound: the acceptor is woken by connecting here.
    addr: SocketAddr,
    /// One queue per worker serving this listener.
    queues: Mutex<Vec<Sender<TcpStream>>>,
}

impl HandOff {
    /// Starts the acceptor thread for a bound listener.
    pub fn start(socket: TcpListener) -> io::Result<Arc<Self>> {
        socket.set_nonblocking(false)?;
        let this = Arc::new(Self { addr: socket.local_addr()?, queues: Mutex::new(Vec::new()) });
        let acceptor = this.clone();
        std::thread::Builder::new()
            .name(format!("moonport-accept-{}", this.addr.port()))
            .spawn(move || acceptor.accept_loop(socket))?;
        Ok(this)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Adds a worker; connections for it arrive on the returned queue.
    pub fn join(self: &Arc<Self>) -> HandOffQueue {
        let (tx, rx) = async_channel::bounded(QUEUE);
        self.lock().push(tx);
        HandOffQueue { rx, handoff: self.clone() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Sender<TcpStream>>> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn accept_loop(&self, socket: TcpListener) {
        let mut next = 0;
        let mut backoff = AcceptBackoff::default();
        loop {
            let stream = match socket.accept() {
                Ok((stream, _)) => stream,
                Err(e) => {
                    std::thread::sleep(backoff.pause_after(&e));
                    continue;
                }
            };
            let mut queues = self.lock();
            queues.retain(|q| !q.is_closed());
            if queues.is_empty() {
                // Every worker has stopped listening: closing the socket ends the listener.
                return;
            }
            // Round robin, skipping workers whose queue is full.
            let mut pending = Some(stream);
            for i in 0..queues.len() {
                let Some(stream) = pending.take() else { break };
                let slot = (next + i) % queues.len();
                match queues[slot].try_send(stream) {
                    Ok(()) => next = slot + 1,
                    Err(e) => pending = Some(e.into_inner()),
                }
            }
            if let Some(pending) = pending {
                // Every worker is behind: wait for one rather than queue without
                // bound; meanwhile new connections wait in the kernel's backlog.
                let queue = queues[next % queues.len()].clone();
                drop(queues);
                next += 1;
                let _ = queue.send_blocking(pending);
            }
        }
    }

    /// Unblocks the acceptor so it notices that no worker listens any more.
    fn wake_if_unused(&self) {
        if self.lock().iter().all(|q| q.is_closed()) {
            let mut addr = self.addr;
            if addr.ip().is_unspecified() {
                addr.set_ip(if addr.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
            }
            let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        }
    }
}

/// One worker's queue of handed-off connections.
pub struct HandOffQueue {
    rx: Receiver<TcpStream>,
    handoff: Arc<HandOff>,
}

impl HandOffQueue {
    /// The next connection, or `None` once the acceptor has stopped.
    pub async fn recv(&self) -> Option<TcpStream> {
        self.rx.recv().await.ok()
    }
}

impl Drop for HandOffQueue {
    fn drop(&mut self) {
        self.rx.close();
        self.handoff.wake_if_unused();
    }
}
