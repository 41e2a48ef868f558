//! A socket in the Berkeley style, for simple client code and tools: created
//! unbound, given options, then bound, and turned into a listener, a connected
//! stream or a datagram socket by the calls scripts know (`listen`, `connect`).
//!
//! Each state hands its work to the core type for it (`TcpConn` for a
//! connected stream, `UdpSock` for datagrams), so this convenience layer shares
//! their bounded reads, parking of abandoned reads and error words.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::time::Duration;

use compio::driver::SharedFd;
use compio::net::{PollFd, TcpListener, TcpStream, UdpSocket};
use event_listener::Event;
use futures_util::future::{Either, select};
use socket2::{Domain, Protocol, SockRef, Type};

use super::addr::Family;
use super::udp::not_connected;
use super::{NetError, OptValue, SockOpt, TcpConn, Timeouts, UdpSock};
use crate::platform;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    Stream,
    Datagram,
}

enum State {
    /// A stream socket before `listen` or `connect`.
    Fresh(socket2::Socket),
    /// In the middle of `connect`.
    Connecting,
    Listening(Rc<TcpListener>),
    Stream(Rc<TcpConn>),
    Datagram(Rc<UdpSock>),
    Closed,
}

pub struct Socket {
    state: RefCell<State>,
    family: Family,
    kind: SocketKind,
    /// Applies to connect, accept, sends and receives; `None` waits forever.
    timeout: Cell<Option<Duration>>,
    /// Wakes an accept or connect in flight when the socket is closed.
    closed: Event,
    /// An accept whose caller gave up (a timeout), parked for the next
    /// `accept`: cancelling it could lose a connection it was taking.
    pending_accept: RefCell<Option<PendingAccept>>,
    /// TCP_NODELAY as the script set it, if it did.
    nodelay: Cell<Option<bool>>,
}

type PendingAccept = Pin<Box<dyn Future<Output = io::Result<(TcpStream, SocketAddr)>>>>;

impl Socket {
    /// A new unbound socket. A datagram socket is ready for `sendto` at once.
    pub fn new(family: Family, kind: SocketKind) -> Result<Self, NetError> {
        let domain = match family {
            Family::Inet => Domain::IPV4,
            Family::Inet6 => Domain::IPV6,
        };
        let state = match kind {
            SocketKind::Stream => State::Fresh(socket2::Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?),
            SocketKind::Datagram => {
                let socket = socket2::Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
                socket.set_nonblocking(true)?;
                State::Datagram(Rc::new(UdpSock::new(UdpSocket::from_std(socket.into())?)))
            }
        };
        Ok(Self::with_state(state, family, kind))
    }

    fn with_state(state: State, family: Family, kind: SocketKind) -> Self {
        Self {
            state: RefCell::new(state),
            family,
            kind,
            timeout: Cell::new(None),
            closed: Event::new(),
            pending_accept: RefCell::new(None),
            nodelay: Cell::new(None),
        }
    }

    pub fn family(&self) -> Family {
        self.family
    }

    pub fn kind(&self) -> SocketKind {
        self.kind
    }

    /// Runs `f` on the descriptor, whatever the state (for options and addresses).
    pub fn with_sock<R>(&self, f: impl FnOnce(SockRef<'_>) -> io::Result<R>) -> Result<R, NetError> {
        let state = self.state.borrow();
        let result = match &*state {
            State::Fresh(s) => f(SockRef::from(s)),
            State::Listening(l) => f(SockRef::from(&**l)),
            State::Stream(c) => f(SockRef::from(&c.stream()?)),
            State::Datagram(u) => f(SockRef::from(&u.socket()?)),
            State::Connecting => return Err(NetError::Busy),
            State::Closed => return Err(NetError::Closed),
        };
        result.map_err(not_connected)
    }

    /// Sets an option; TCP_NODELAY is also remembered, for the connection
    /// `connect` or `accept` makes (which would otherwise turn Nagle off).
    pub fn set_option(&self, opt: SockOpt, value: OptValue) -> Result<(), NetError> {
        self.with_sock(|s| opt.set(s, value))?;
        if let (SockOpt::NoDelay, OptValue::Bool(on)) = (opt, value) {
            self.nodelay.set(Some(on));
        }
        Ok(())
    }

    /// Wraps a new connection, with this socket's timeout and TCP_NODELAY.
    fn conn(&self, stream: TcpStream, read_chunk: usize) -> TcpConn {
        let conn = TcpConn::new(stream, read_chunk);
        let timeout = self.timeout.get();
        conn.set_timeouts(Timeouts { send: timeout, read: timeout });
        if let Some(on) = self.nodelay.get() {
            let _ = conn.set_nodelay(on);
        }
        conn
    }

    pub fn bind(&self, addr: SocketAddr) -> Result<(), NetError> {
        self.with_sock(|s| s.bind(&addr.into()))
    }

    /// Starts listening; an unbound socket gets an ephemeral port, as in C.
    pub fn listen(&self, backlog: i32) -> Result<(), NetError> {
        let mut state = self.state.borrow_mut();
        let socket = match std::mem::replace(&mut *state, State::Closed) {
            State::Fresh(s) => s,
            other => {
                let err = match other {
                    State::Closed => NetError::Closed,
                    _ => NetError::Invalid("not a fresh stream socket"),
                };
                *state = other;
                return Err(err);
            }
        };
        let listener = socket
            .listen(backlog)
            .and_then(|()| socket.set_nonblocking(true))
            .and_then(|()| TcpListener::from_std(socket.into()));
        *state = State::Listening(Rc::new(listener?));
        Ok(())
    }

    /// Waits for a connection on a listening socket.
    pub async fn accept(&self, read_chunk: usize) -> Result<(Socket, SocketAddr), NetError> {
        let listener = match &*self.state.borrow() {
            State::Listening(l) => l.clone(),
            State::Closed => return Err(NetError::Closed),
            _ => return Err(NetError::Invalid("not listening")),
        };
        let mut accepting =
            self.pending_accept.borrow_mut().take().unwrap_or_else(|| Box::pin(async move { listener.accept().await }));
        let (stream, peer) = match self.until_closed(&mut accepting).await {
            Err(NetError::Timeout) => {
                *self.pending_accept.borrow_mut() = Some(accepting);
                return Err(NetError::Timeout);
            }
            other => other??,
        };
        let accepted =
            Self::with_state(State::Stream(Rc::new(self.conn(stream, read_chunk))), self.family, SocketKind::Stream);
        accepted.timeout.set(self.timeout.get());
        accepted.nodelay.set(self.nodelay.get());
        Ok((accepted, peer))
    }

    /// Connects a fresh stream socket (keeping the options and address it was
    /// given), or fixes the peer of a datagram socket.
    pub async fn connect(&self, addr: SocketAddr, read_chunk: usize) -> Result<(), NetError> {
        let socket = match self.begin_connect() {
            Ok(socket) => socket,
            Err(Ok(datagram)) => return datagram.connect(addr).await,
            Err(Err(e)) => return Err(e),
        };
        // A failed or abandoned connect (also a coroutine cancelled while in
        // it) leaves the socket closed, as C leaves it unusable.
        let _abandoned = AbandonConnect(self);
        let stream = self.until_closed(connect_stream(socket, addr)).await??;
        let conn = self.conn(stream, read_chunk);
        let mut state = self.state.borrow_mut();
        if matches!(*state, State::Connecting) {
            *state = State::Stream(Rc::new(conn));
        }
        Ok(())
    }

    /// Takes a fresh stream socket out for connecting; a datagram socket is
    /// returned as `Err(Ok(_))` to have its peer fixed instead.
    fn begin_connect(&self) -> Result<socket2::Socket, Result<Rc<UdpSock>, NetError>> {
        let mut state = self.state.borrow_mut();
        match &*state {
            State::Fresh(_) => match std::mem::replace(&mut *state, State::Connecting) {
                State::Fresh(s) => Ok(s),
                _ => unreachable!("checked above"),
            },
            State::Datagram(u) => Err(Ok(u.clone())),
            State::Closed => Err(Err(NetError::Closed)),
            State::Connecting => Err(Err(NetError::Busy)),
            _ => Err(Err(NetError::Invalid("already connected"))),
        }
    }

    /// Waits for `fut`, but no longer than the timeout, nor past `close()`.
    async fn until_closed<T>(&self, fut: impl Future<Output = io::Result<T>>) -> Result<io::Result<T>, NetError> {
        let fut = pin!(fut);
        let race = select(fut, self.closed.listen());
        let done = match self.timeout.get() {
            None => race.await,
            Some(d) => compio::time::timeout(d, race).await.map_err(|_| NetError::Timeout)?,
        };
        match done {
            Either::Left((result, _)) => Ok(result),
            Either::Right(_) => Err(NetError::Closed),
        }
    }

    /// The connected stream, for `send` and `recv`.
    pub fn stream(&self) -> Result<Rc<TcpConn>, NetError> {
        match &*self.state.borrow() {
            State::Stream(c) => Ok(c.clone()),
            State::Closed => Err(NetError::Closed),
            State::Datagram(_) => Err(NetError::Invalid("not a stream socket")),
            _ => Err(NetError::Invalid("not connected")),
        }
    }

    /// The datagram socket, for `sendto` and `recvfrom`.
    pub fn datagram(&self) -> Result<Rc<UdpSock>, NetError> {
        match &*self.state.borrow() {
            State::Datagram(u) => Ok(u.clone()),
            State::Closed => Err(NetError::Closed),
            _ => Err(NetError::Invalid("not a datagram socket")),
        }
    }

    pub fn set_timeout(&self, timeout: Option<Duration>) {
        self.timeout.set(timeout);
        match &*self.state.borrow() {
            State::Stream(c) => c.set_timeouts(Timeouts { send: timeout, read: timeout }),
            State::Datagram(u) => u.set_timeout(timeout),
            _ => {}
        }
    }

    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        self.with_sock(|s| s.local_addr())?.as_socket().ok_or(NetError::Invalid("no address"))
    }

    pub fn peer_addr(&self) -> Result<SocketAddr, NetError> {
        // Before connect, the descriptor says ENOTCONN: "not connected".
        self.with_sock(|s| s.peer_addr())?.as_socket().ok_or(NetError::Invalid("not connected"))
    }

    pub fn fileno(&self) -> Result<i64, NetError> {
        self.with_sock(|s| Ok(platform::fileno(&s)))
    }

    /// Shuts down one or both directions; queued writes go out before "write".
    pub async fn shutdown(&self, how: Shutdown) -> Result<(), NetError> {
        if how == Shutdown::Write
            && let Ok(conn) = self.stream()
        {
            return conn.shutdown_write().await;
        }
        self.with_sock(|s| s.shutdown(how))
    }

    pub fn is_closed(&self) -> bool {
        matches!(*self.state.borrow(), State::Closed)
    }

    /// Closes the socket; operations in flight end with "closed".
    pub fn close(&self) {
        self.pending_accept.borrow_mut().take();
        let state = std::mem::replace(&mut *self.state.borrow_mut(), State::Closed);
        match state {
            State::Stream(c) => c.close(),
            State::Datagram(u) => u.close(),
            _ => {}
        }
        self.closed.notify(usize::MAX);
    }
}

/// Closes a socket whose `connect` did not finish.
struct AbandonConnect<'a>(&'a Socket);

impl Drop for AbandonConnect<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state.borrow_mut();
        if matches!(*state, State::Connecting) {
            *state = State::Closed;
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.close();
    }
}

/// Connects an already created (maybe bound, with options) socket without
/// blocking the worker: a non-blocking `connect`, then a wait for the socket
/// to become writable, then its pending error.
async fn connect_stream(socket: socket2::Socket, addr: SocketAddr) -> io::Result<TcpStream> {
    socket.set_nonblocking(true)?;
    let socket = match socket.connect(&addr.into()) {
        Ok(()) => socket,
        Err(e) if platform::connect_in_progress(&e) => {
            let poll = PollFd::new(socket)?;
            poll.connect_ready().await?;
            SharedFd::try_unwrap(compio::buf::IntoInner::into_inner(poll))
                .map_err(|_| io::Error::other("socket still shared after connect"))?
        }
        Err(e) => return Err(e),
    };
    if let Some(e) = socket.take_error()? {
        return Err(e);
    }
    TcpStream::from_std(socket.into())
}
