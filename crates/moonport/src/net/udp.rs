//! A UDP socket with bounded, truncation-aware receives and a receive timeout:
//! the core behind `moonport.udp` and datagram `moonport.socket`s.
//!
//! A receive asks the kernel for one byte more than the caller's limit, so a
//! datagram that did not fit is reported as truncated instead of silently cut.
//! As with TCP reads, a receive whose caller stops waiting stays parked in the
//! socket and the next receive takes its datagram: a timeout never drops one.

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

pub struct UdpSock {
    /// `None` once closed.
    socket: RefCell<Option<UdpSocket>>,
    /// The receive in flight, parked when its caller gave up on it.
    pending: RefCell<Option<PendingRecv>>,
    receiving: Cell<bool>,
    /// Wakes a receive in flight when the socket is closed.
    closed: Event,
    timeout: Cell<Option<Duration>>,
}

impl UdpSock {
    pub fn new(socket: UdpSocket) -> Self {
        Self {
            socket: RefCell::new(Some(socket)),
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

    /// Receives one datagram of at most `max` bytes, within the timeout.
    pub async fn recv(&self, max: usize) -> Result<Datagram, NetError> {
        if self.receiving.replace(true) {
            return Err(NetError::Busy);
        }
        let result = self.recv_inner(max).await;
        self.receiving.set(false);
        result
    }

    async fn recv_inner(&self, max: usize) -> Result<Datagram, NetError> {
        let socket = self.socket()?;
        let closed = self.closed.listen();
        let mut fut = self.pending.borrow_mut().take().unwrap_or_else(|| {
            let buf = Vec::with_capacity(max.min(MAX_DATAGRAM) + 1);
            Box::pin(async move { socket.recv_from(buf).await })
        });
        let waited = {
            let race = select(&mut fut, closed);
            match self.timeout.get() {
                None => Ok(race.await),
                Some(d) => compio::time::timeout(d, race).await,
            }
        };
        let BufResult(res, mut buf) = match waited {
            Ok(Either::Left((done, _))) => done,
            Ok(Either::Right(_)) => return Err(NetError::Closed),
            Err(_) => {
                // Parked for the next receive, unless the socket was closed meanwhile.
                if !self.is_closed() {
                    *self.pending.borrow_mut() = Some(fut);
                }
                return Err(NetError::Timeout);
            }
        };
        match res {
            Ok((n, from)) => {
                buf.truncate(n);
                let truncated = n > max;
                buf.truncate(max);
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
        Ok(self.socket()?.peer_addr()?)
    }

    /// Closes the socket; a receive in flight ends with `Closed`.
    pub fn close(&self) {
        // The descriptor closes once the receive in flight, woken here, lets go of it.
        self.socket.borrow_mut().take();
        self.pending.borrow_mut().take();
        self.closed.notify(usize::MAX);
    }
}

impl Drop for UdpSock {
    fn drop(&mut self) {
        self.close();
    }
}
