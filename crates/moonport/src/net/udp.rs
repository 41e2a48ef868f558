//! A UDP socket with bounded, truncation-aware receives and a receive timeout:
//! the core behind `moonport.udp` and datagram `moonport.socket`s.
//!
//! A receive asks the kernel for one byte more than the caller's limit, so a
//! datagram that did not fit is reported as truncated instead of silently cut.
//! As with TCP reads, a receive whose caller stops waiting stays parked in the
//! socket and the next receive takes its datagram: a timeout never drops one.
//!
//! A hot reload hands a bound socket to the script's new version: the new
//! version's handle shares the socket, its receives held until the reload
//! commits; the old version's handle then stops receiving, while its sends
//! still go out so that exchanges it has begun can finish.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use compio::BufResult;
use compio::buf::IoBuf;
use compio::net::UdpSocket;
use event_listener::Event;
use futures_util::future::{Either, select};

use super::NetError;
use crate::platform;

/// The largest datagram a receive can be asked for (the UDP maximum).
pub const MAX_DATAGRAM: usize = 65535;

type PendingRecv = Pin<Box<dyn Future<Output = BufResult<(usize, SocketAddr), Vec<u8>>>>>;

/// One received datagram: its first `max` bytes and whether more were cut off.
pub struct Datagram {
    pub data: Vec<u8>,
    pub from: SocketAddr,
    pub truncated: bool,
}

/// Whether a handle takes datagrams from its socket.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Receives {
    Open,
    /// Shared with a version of the script that still serves; waits for
    /// `Open` (a reload's commit).
    Held,
    /// Handed over to a newer version: receives end with `Closed`.
    Stopped,
}

pub struct UdpSock {
    /// `None` once closed.
    socket: RefCell<Option<UdpSocket>>,
    receives: Cell<Receives>,
    /// The receive in flight, parked when its caller gave up on it.
    pending: RefCell<Option<PendingRecv>>,
    receiving: Cell<bool>,
    /// Wakes a receive in flight when the socket is closed or stops
    /// receiving, and held receives when they may start.
    closed: Event,
    timeout: Cell<Option<Duration>>,
}

impl UdpSock {
    pub fn new(socket: UdpSocket) -> Self {
        Self::sharing(socket, Receives::Open)
    }

    /// A handle on `socket` (also another handle's socket) whose receives
    /// start as `receives` says.
    pub fn sharing(socket: UdpSocket, receives: Receives) -> Self {
        Self {
            socket: RefCell::new(Some(socket)),
            receives: Cell::new(receives),
            pending: RefCell::new(None),
            receiving: Cell::new(false),
            closed: Event::new(),
            timeout: Cell::new(None),
        }
    }

    /// Binds a new socket to `addr`.
    pub async fn bind(addr: SocketAddr) -> Result<Self, NetError> {
        Ok(Self::new(UdpSocket::bind(addr).await?))
    }

    pub fn socket(&self) -> Result<UdpSocket, NetError> {
        self.socket.borrow().clone().ok_or(NetError::Closed)
    }

    pub fn is_closed(&self) -> bool {
        self.socket.borrow().is_none()
    }

    pub fn set_timeout(&self, timeout: Option<Duration>) {
        self.timeout.set(timeout);
    }

    /// Fixes the peer: `send` goes there and only its datagrams are received.
    pub async fn connect(&self, addr: SocketAddr) -> Result<(), NetError> {
        Ok(self.socket()?.connect(addr).await?)
    }

    /// Sends one datagram to `to`, or to the connected peer when `None`.
    pub async fn send<B: IoBuf>(&self, data: B, to: Option<SocketAddr>) -> Result<usize, NetError> {
        let socket = self.socket()?;
        let BufResult(res, _) = match to {
            Some(addr) => socket.send_to(data, addr).await,
            None => socket.send(data).await,
        };
        Ok(res?)
    }

    /// Changes whether this handle receives; a receive in flight or held
    /// learns of it at once.
    pub fn set_receives(&self, receives: Receives) {
        self.receives.set(receives);
        if receives == Receives::Stopped {
            // A parked receive would take a datagram the new owner should get.
            self.pending.borrow_mut().take();
        }
        self.closed.notify(usize::MAX);
    }

    /// Waits, within the timeout, while receives are held.
    async fn unheld(&self) -> Result<(), NetError> {
        let open = async {
            loop {
                let changed = self.closed.listen();
                if self.receives.get() != Receives::Held || self.is_closed() {
                    break;
                }
                changed.await;
            }
        };
        match self.timeout.get() {
            None => open.await,
            Some(d) => compio::time::timeout(d, open).await.map_err(|_| NetError::Timeout)?,
        }
        Ok(())
    }

    /// Receives one datagram of at most `max` bytes, within the timeout.
    pub async fn recv(&self, max: usize) -> Result<Datagram, NetError> {
        self.unheld().await?;
        if self.receives.get() == Receives::Stopped {
            return Err(NetError::Closed);
        }
        if self.receiving.replace(true) {
            return Err(NetError::Busy);
        }
        let socket = self.socket();
        let mut guard = Receiving { sock: self, fut: self.pending.borrow_mut().take() };
        let closed = self.closed.listen();
        let fut = match (&mut guard.fut, socket) {
            (Some(parked), _) => parked,
            (slot, Ok(socket)) => slot
                .insert(Box::pin(async move { socket.recv_from(Vec::with_capacity(max.min(MAX_DATAGRAM) + 1)).await })),
            (_, Err(e)) => return Err(e),
        };
        let race = select(fut, closed);
        let waited = match self.timeout.get() {
            None => Ok(race.await),
            Some(d) => compio::time::timeout(d, race).await,
        };
        let BufResult(res, mut buf) = match waited {
            Ok(Either::Left((done, _))) => done,
            Ok(Either::Right(_)) => return Err(NetError::Closed),
            // The guard parks the receive for the next call.
            Err(_) => return Err(NetError::Timeout),
        };
        guard.fut = None;
        match res {
            Ok((n, from)) => {
                // A parked receive may have had a smaller buffer than this call
                // allows: a datagram that filled it may have been cut.
                let truncated = n > max || n >= buf.capacity();
                buf.truncate(n.min(max));
                Ok(Datagram { data: buf, from, truncated })
            }
            Err(e) if platform::is_message_too_long(&e) => Err(NetError::Truncated),
            Err(e) => Err(NetError::from(e)),
        }
    }

    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        Ok(self.socket()?.local_addr()?)
    }

    pub fn peer_addr(&self) -> Result<SocketAddr, NetError> {
        self.socket()?.peer_addr().map_err(not_connected)
    }

    /// Closes the socket; a receive in flight ends with `Closed`.
    pub fn close(&self) {
        // The descriptor closes once the receive in flight, woken here, lets go of it.
        self.socket.borrow_mut().take();
        self.pending.borrow_mut().take();
        self.closed.notify(usize::MAX);
    }
}

/// One `recv` in progress. However the call ends — a timeout, or its
/// coroutine cancelled by `moonport.timeout` or `select` — the socket is free
/// for the next receive, and a receive still in flight is parked for it.
struct Receiving<'a> {
    sock: &'a UdpSock,
    fut: Option<PendingRecv>,
}

impl Drop for Receiving<'_> {
    fn drop(&mut self) {
        // A handle that no longer receives lets go of the receive in
        // flight (cancelled), so it cannot take the new owner's datagram.
        if let Some(fut) = self.fut.take()
            && !self.sock.is_closed()
            && self.sock.receives.get() != Receives::Stopped
        {
            *self.sock.pending.borrow_mut() = Some(fut);
        }
        self.sock.receiving.set(false);
    }
}

impl Drop for UdpSock {
    fn drop(&mut self) {
        self.close();
    }
}

/// "not connected" in words, where the generic mapping would say "closed".
pub(super) fn not_connected(e: std::io::Error) -> NetError {
    if e.kind() == std::io::ErrorKind::NotConnected { NetError::Invalid("not connected") } else { NetError::from(e) }
}
