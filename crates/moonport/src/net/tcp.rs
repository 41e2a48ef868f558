//! A TCP connection with buffered, bounded reads, serialized writes and
//! timeouts: the core behind the Lua `conn` object.
//!
//! compio takes buffers by value, so the read buffer travels into each read
//! operation and comes back with the new bytes appended. A read whose caller
//! stops waiting (a timeout, `moonport.timeout`, `select`) is not cancelled: it
//! stays parked in the connection and the next read picks up its result, so
//! giving up on a read never loses bytes that were already received.
//!
//! A connection may carry TLS (`start_tls`, at accept or connect time or
//! later for STARTTLS protocols): then reads receive ciphertext into a
//! buffer of their own and the session decrypts it into the read buffer, and
//! every write is sealed on its way out, so everything above (line reads,
//! relays, zero-copy buffers, timeouts) works the same on both.
//!
//! A read may also be driven by a caller that polls instead of awaiting (a
//! plain call from Lua, `begin_read_by`): each call polls the read once and
//! returns, and between calls the read waits parked (`ReadGuard::park`) for
//! its owner, with its timeout; other readers get `Busy` meanwhile, until the
//! owner comes back or is gone.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::Context;
use std::time::{Duration, Instant};

use compio::BufResult;
use compio::buf::{IntoInner, IoBuf, Uninit};
use compio::driver::op::{BufResultExt, Recv};
use compio::driver::{SharedFd, ToSharedFd};
use compio::io::AsyncWrite;
use compio::net::TcpStream;
use futures_util::lock::Mutex;

use super::NetError;
use crate::buf::Chunk;
use crate::metrics::with_worker;
use crate::tls::{TlsInfo, TlsSession};

/// Deadlines for the operations of one connection; `None` waits forever.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timeouts {
    pub send: Option<Duration>,
    pub read: Option<Duration>,
}

/// A socket read in flight: compio's operation future itself, boxed once
/// per read. (The `AsyncReadExt` futures around it were over 400 bytes: the
/// first thing touched when the read completes, and at thousands of
/// connections a cache miss each time.)
type PendingRead = Pin<Box<dyn Future<Output = BufResult<usize, Recv<Uninit<Vec<u8>>, SharedFd<socket2::Socket>>>>>>;

/// A read left waiting by a caller that polls it (see the module comment).
struct Parked {
    /// Dead once the owner stopped waiting for good (a cancelled coroutine).
    owner: Weak<()>,
    /// Fires at the read timeout, counted from when the read was first parked.
    timer: Option<Pin<Box<dyn Future<Output = ()>>>>,
}

impl Parked {
    /// Whether a live caller other than `by` is waiting.
    fn held_against(&self, by: Option<&Rc<()>>) -> bool {
        self.owner.upgrade().is_some_and(|owner| by.is_none_or(|by| !Rc::ptr_eq(&owner, by)))
    }
}

/// The smallest read: what an idle connection's parked read holds.
const MIN_READ: usize = 2048;

/// The most a bulk reader (a relay, a `conn:read(n)` asking for more) lets
/// reads grow to when the connection's `read_buffer` is smaller: at the
/// default 16 KiB a relay makes four times the reads and writes, and moved
/// about half the bytes per second that 64 KiB reads do (docs/benchmarks.md).
pub const BULK_READ: usize = 64 * 1024;

/// Received bytes not yet handed to the script.
struct Reader {
    /// Bytes `pos..len` are unconsumed; the spare capacity receives the next read.
    buf: Vec<u8>,
    pos: usize,
    /// The read in flight, parked here so that a caller giving up on it
    /// (a timeout, a cancelled coroutine) loses nothing; it owns `buf` until
    /// it completes.
    pending: Option<PendingRead>,
    eof: bool,
    /// How much the next read asks for: it doubles (up to the connection's
    /// `read_chunk`) while reads come back full, and halves (down to
    /// `MIN_READ`) while they come back mostly empty. So a busy stream reads
    /// in big chunks and an idle connection's parked read holds little memory.
    chunk: usize,
    /// Spare capacity the read in flight was given.
    asked: usize,
    /// On a TLS connection, what reads receive before it is decrypted into `buf`.
    cipher: Vec<u8>,
}

impl Reader {
    fn new() -> Self {
        Self { buf: Vec::new(), pos: 0, pending: None, eof: false, chunk: MIN_READ, asked: 0, cipher: Vec::new() }
    }

    /// Hands a buffer to a read operation: the read buffer, with unconsumed
    /// bytes moved to the front and at least half a chunk of spare capacity
    /// after them; or on a TLS connection the ciphertext buffer, emptied.
    fn take_for_read(&mut self, tls: bool) -> Result<Vec<u8>, NetError> {
        if self.eof {
            return Err(NetError::Eof);
        }
        let buf = if tls {
            self.cipher.clear();
            &mut self.cipher
        } else {
            self.compact();
            &mut self.buf
        };
        // A buffer smaller than the chunk grows to it (asking for its spare
        // half, as this did before, halved every read of a busy stream); one
        // holding leftover bytes grows only when less than half a chunk is
        // left after them.
        if buf.capacity() < self.chunk || buf.capacity() - buf.len() < self.chunk / 2 {
            buf.reserve(self.chunk);
        }
        self.asked = buf.capacity() - buf.len();
        Ok(mem::take(buf))
    }

    /// Moves unconsumed bytes to the front of the read buffer.
    fn compact(&mut self) {
        if self.pos == self.buf.len() {
            self.buf.clear();
            // A burst or a big read_exact may have grown the buffer: give the memory back.
            if self.buf.capacity() > 2 * self.chunk {
                self.buf = Vec::new();
            }
        } else if self.pos > 0 {
            self.buf.drain(..self.pos);
        }
        self.pos = 0;
    }

    /// Adapts the next read's size to how much this one brought.
    fn adapt(&mut self, got: usize, max_chunk: usize) {
        if got >= self.asked {
            self.chunk = (self.chunk * 2).min(max_chunk);
        } else if got < self.chunk / 4 {
            self.chunk = (self.chunk / 2).max(MIN_READ.min(max_chunk));
        }
    }
}

/// A connection; clones share it (a reference count), so a Lua object, a
/// task driving it and the engine closing it after its handler can all hold
/// it without holding the Lua object.
#[derive(Clone)]
pub struct TcpConn(Rc<Conn>);

impl TcpConn {
    /// Whether both are the same connection.
    pub fn same(&self, other: &TcpConn) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl std::ops::Deref for TcpConn {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        &self.0
    }
}

/// The shared state of a `TcpConn`.
pub struct Conn {
    /// `None` once closed; cloned (a refcount) into each operation.
    stream: RefCell<Option<TcpStream>>,
    /// Taken out by the reading coroutine for the duration of a read, so a
    /// second concurrent reader sees `Busy` instead of interleaved data.
    reader: RefCell<Option<Reader>>,
    /// The read a polling caller is waiting for, between its polls.
    parked: RefCell<Option<Parked>>,
    /// Writers queue on this lock so each `write` lands whole, in call order.
    writer: Mutex<()>,
    /// A staging buffer kept between writes, so copying a string for the
    /// kernel does not allocate each time.
    spare: RefCell<Vec<u8>>,
    timeouts: Cell<Timeouts>,
    /// The most one read asks the kernel for: the per-connection buffer size.
    read_chunk: usize,
    /// The TLS session once `start_tls` began; borrowed only between awaits.
    /// Boxed: a session is over a kilobyte, which plain connections need not carry.
    tls: RefCell<Option<Box<Tls>>>,
}

/// A connection's TLS state.
struct Tls {
    session: TlsSession,
    /// Sealed records on their way out, kept between writes like `spare`.
    out: Vec<u8>,
}

/// How long a closing TLS connection waits to send its `close_notify`.
const CLOSE_NOTIFY_WAIT: Duration = Duration::from_secs(1);

/// Staging buffers above this size are released after a write, so one large
/// write does not pin memory for the connection's lifetime.
const KEEP_WRITE_BUF: usize = 64 * 1024;

impl TcpConn {
    /// Wraps a connected stream. Nagle's algorithm is turned off, as request /
    /// response protocols want; `set_nodelay(false)` turns it back on.
    pub fn new(stream: TcpStream, read_chunk: usize) -> Self {
        let _ = stream.set_nodelay(true);
        with_worker(|s| s.open.add(1));
        Self(Rc::new(Conn {
            stream: RefCell::new(Some(stream)),
            reader: RefCell::new(Some(Reader::new())),
            parked: RefCell::new(None),
            writer: Mutex::new(()),
            spare: RefCell::new(Vec::new()),
            timeouts: Cell::new(Timeouts::default()),
            read_chunk: read_chunk.max(512),
            tls: RefCell::new(None),
        }))
    }

    /// Closes the connection, first telling a TLS peer that this is the end
    /// of the stream (`close_notify`) if that can be sent within a second,
    /// so it can tell a finished stream from a cut one. A plain connection
    /// closes at once.
    pub fn finish(&self) {
        if self.tls.borrow().is_none() || self.is_closed() {
            return self.close();
        }
        let conn = self.clone();
        compio::runtime::spawn(async move {
            let notify = async {
                let _queue = conn.writer.lock().await;
                conn.send_close_notify().await
            };
            let _ = compio::time::timeout(CLOSE_NOTIFY_WAIT, notify).await;
            conn.close();
        })
        .detach();
    }
}

impl Conn {
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts.get()
    }

    pub fn set_timeouts(&self, t: Timeouts) {
        self.timeouts.set(t);
    }

    pub fn stream(&self) -> Result<TcpStream, NetError> {
        self.stream.borrow().clone().ok_or(NetError::Closed)
    }

    pub fn is_closed(&self) -> bool {
        self.stream.borrow().is_none()
    }

    /// Starts a read; the guard gives the reader back when dropped.
    pub fn begin_read(&self) -> Result<ReadGuard<'_>, NetError> {
        let deadline = self.timeouts.get().read.map(|d| Instant::now() + d);
        self.take_reader(None, deadline)
    }

    /// Starts (or goes on with) a read for `owner`, a caller that polls it
    /// once per call instead of awaiting it: the guard's waits do not time
    /// out, `ReadGuard::park` keeps the read waiting between the polls.
    pub fn begin_read_by(&self, owner: &Rc<()>) -> Result<ReadGuard<'_>, NetError> {
        self.take_reader(Some(owner), None)
    }

    fn take_reader(&self, by: Option<&Rc<()>>, deadline: Option<Instant>) -> Result<ReadGuard<'_>, NetError> {
        let stream = self.stream()?;
        {
            let mut parked = self.parked.borrow_mut();
            match parked.as_ref() {
                Some(p) if p.held_against(by) => return Err(NetError::Busy),
                // Its owner is gone: the read (and what it brings) is the next reader's.
                Some(p) if p.owner.strong_count() == 0 => *parked = None,
                _ => {}
            }
        }
        let reader = self.reader.borrow_mut().take().ok_or(NetError::Busy)?;
        Ok(ReadGuard { conn: self, stream, reader: Some(reader), deadline, max_chunk: self.read_chunk })
    }

    /// Runs a TLS handshake over the connection and makes it a TLS one: from
    /// then on reads give decrypted bytes and writes are sealed. Bytes already
    /// received and not yet read count as the start of the handshake (a
    /// STARTTLS peer may send its hello right after the command's answer).
    /// A failed or timed-out handshake closes the connection.
    pub async fn start_tls(&self, session: TlsSession, deadline: Option<Instant>) -> Result<(), NetError> {
        if self.tls.borrow().is_some() {
            return Err(NetError::Invalid("already tls"));
        }
        let result = {
            let handshake = self.handshake(session);
            match deadline {
                None => handshake.await,
                Some(at) => compio::time::timeout_at(at, handshake).await.unwrap_or(Err(NetError::Timeout)),
            }
        };
        if result.is_err() {
            self.close();
        }
        result
    }

    async fn handshake(&self, session: TlsSession) -> Result<(), NetError> {
        let _queue = self.writer.lock().await;
        let mut guard = self.begin_read()?;
        guard.deadline = None;
        *self.tls.borrow_mut() = Some(Box::new(Tls { session, out: Vec::new() }));
        let raw = guard.take_buffered().to_vec();
        let mut result = guard.decrypt(&raw).map(drop);
        while result.is_ok() {
            // Alerts are sent too: the peer learns why the handshake failed.
            self.flush_tls().await?;
            if !self.tls.borrow().as_ref().is_some_and(|t| t.session.is_handshaking()) {
                return Ok(());
            }
            result = match guard.fill_once().await {
                Ok(_) => Ok(()),
                Err(NetError::Eof) => Err(NetError::Tls("handshake: connection closed by peer".into())),
                Err(e) => Err(e),
            };
        }
        let _ = self.flush_tls().await;
        result
    }

    /// What the TLS handshake agreed on; `None` on a plain connection.
    pub fn tls_info(&self) -> Option<TlsInfo> {
        self.tls.borrow().as_ref().map(|t| t.session.info())
    }

    /// Sends what the TLS session has queued by itself (handshake messages,
    /// alerts); the caller holds the write queue.
    async fn flush_tls(&self) -> Result<(), NetError> {
        self.send_from_session(|session, out| {
            session.take_output(out);
            Ok(())
        })
        .await
    }

    /// Lets `produce` write records with the TLS session into the spare
    /// records buffer, then sends them; the caller holds the write queue.
    /// Does nothing on a plain connection.
    async fn send_from_session(
        &self,
        produce: impl FnOnce(&mut TlsSession, &mut Vec<u8>) -> Result<(), NetError>,
    ) -> Result<(), NetError> {
        let out = {
            let mut tls = self.tls.borrow_mut();
            let Some(t) = tls.as_mut() else { return Ok(()) };
            let mut out = mem::take(&mut t.out);
            out.clear();
            produce(&mut t.session, &mut out)?;
            out
        };
        self.send_sealed(out).await
    }

    /// Sends records from the TLS session and keeps their buffer for the next ones.
    async fn send_sealed(&self, out: Vec<u8>) -> Result<(), NetError> {
        if out.is_empty() {
            return Ok(());
        }
        let out = self.send_raw(out).await?;
        if out.capacity() <= KEEP_WRITE_BUF
            && let Some(t) = self.tls.borrow_mut().as_mut()
        {
            t.out = out;
        }
        Ok(())
    }

    /// Queues and sends `close_notify`; the caller holds the write queue.
    async fn send_close_notify(&self) -> Result<(), NetError> {
        self.send_from_session(|session, out| {
            session.close(out);
            Ok(())
        })
        .await
    }

    /// Writes all of `data`, waiting behind earlier writers. Returns `data.len()`.
    pub async fn write(&self, data: &[u8]) -> Result<usize, NetError> {
        self.write_staged(self.stage(data)).await
    }

    /// Sends what the socket takes of `data` right now, without an operation
    /// or a wait, when nothing else is being written and the connection is
    /// plain: most writes fit the socket buffer and are done here. Returns
    /// the count sent (0: none, the caller takes the waiting path for the
    /// rest, which then queues behind any writer that came in between).
    pub fn try_write(&self, data: &[u8]) -> Result<usize, NetError> {
        if data.is_empty() || self.tls.borrow().is_some() {
            return Ok(0);
        }
        let Some(_queue) = self.writer.try_lock() else { return Ok(0) };
        let stream = self.stream.borrow();
        let stream = stream.as_ref().ok_or(NetError::Closed)?;
        let sent = crate::platform::send_now(socket2::SockRef::from(stream), data).map_err(NetError::from)?;
        with_worker(|s| s.bytes_sent.add(sent as u64));
        Ok(sent)
    }

    /// Copies `data` for a later `write_staged`, so the caller can let go of
    /// it before waiting (a Lua string, say).
    pub fn stage(&self, data: &[u8]) -> Vec<u8> {
        let mut buf = mem::take(&mut *self.spare.borrow_mut());
        buf.clear();
        buf.extend_from_slice(data);
        buf
    }

    /// Writes bytes from `stage`, waiting behind earlier writers; returns their count.
    pub async fn write_staged(&self, buf: Vec<u8>) -> Result<usize, NetError> {
        let _queue = self.writer.lock().await;
        let len = buf.len();
        let buf = self.send_all(buf).await?;
        if buf.capacity() <= KEEP_WRITE_BUF {
            *self.spare.borrow_mut() = buf;
        }
        Ok(len)
    }

    /// Writes `head` then `body` with no other writer's bytes between them
    /// (a protocol's frame header and its payload). Returns `body.len()`.
    pub async fn write_parts(&self, head: &[u8], body: &[u8]) -> Result<usize, NetError> {
        let mut buf = self.stage(head);
        buf.extend_from_slice(body);
        self.write_staged(buf).await.map(|_| body.len())
    }

    /// `write_parts` with a buffer's bytes as the body: a large one goes to
    /// the kernel without a copy, right after the head.
    pub async fn write_chunk_after(&self, head: &[u8], chunk: Chunk) -> Result<usize, NetError> {
        let len = chunk.as_slice().len();
        // Below this, one copy costs less than a second send.
        if len <= 16 * 1024 {
            return self.write_parts(head, chunk.as_slice()).await;
        }
        let _queue = self.writer.lock().await;
        let buf = self.send_all(self.stage(head)).await?;
        if buf.capacity() <= KEEP_WRITE_BUF {
            *self.spare.borrow_mut() = buf;
        }
        self.send_all(chunk).await?;
        Ok(len)
    }

    /// Writes a buffer's bytes without copying them: the kernel reads the
    /// shared storage, which the chunk keeps alive and unchanged.
    pub async fn write_chunk(&self, chunk: Chunk) -> Result<usize, NetError> {
        let _queue = self.writer.lock().await;
        let len = chunk.as_slice().len();
        self.send_all(chunk).await?;
        Ok(len)
    }

    /// Sends all of `buf` (sealed first on a TLS connection) within the send
    /// timeout; the caller holds the write queue. Returns the buffer.
    pub(super) async fn send_all<B: IoBuf>(&self, buf: B) -> Result<B, NetError> {
        if self.tls.borrow().is_none() {
            return self.send_raw(buf).await;
        }
        self.send_from_session(|session, out| session.send(buf.as_slice(), out).map_err(NetError::Tls)).await?;
        Ok(buf)
    }

    /// Sends all of `buf` as it is within the send timeout. A timeout leaves
    /// the stream in an unknown state (part may have gone), so it closes the
    /// connection.
    async fn send_raw<B: IoBuf>(&self, buf: B) -> Result<B, NetError> {
        let mut stream = self.stream()?;
        let BufResult(res, buf) = match self.timeouts.get().send {
            None => crate::platform::write_all(&mut stream, buf).await,
            Some(d) => match compio::time::timeout(d, crate::platform::write_all(&mut stream, buf)).await {
                Ok(done) => done,
                Err(_) => {
                    self.close();
                    return Err(NetError::Timeout);
                }
            },
        };
        res.map_err(NetError::from)?;
        with_worker(|s| s.bytes_sent.add(buf.as_slice().len() as u64));
        Ok(buf)
    }

    /// Waits for earlier writers, then holds off later ones while the guard
    /// lives: a relay owns the sending side this way.
    pub(super) async fn lock_writer(&self) -> impl Drop + '_ {
        self.writer.lock().await
    }

    /// Half-closes the sending side once queued writes are done; reads go on.
    pub async fn shutdown_write(&self) -> Result<(), NetError> {
        let _queue = self.writer.lock().await;
        self.shutdown_locked().await
    }

    /// `shutdown_write` for a caller holding the write queue: a TLS
    /// connection sends `close_notify` first.
    pub(super) async fn shutdown_locked(&self) -> Result<(), NetError> {
        let mut stream = self.stream()?;
        self.send_close_notify().await?;
        stream.shutdown().await.map_err(NetError::from)
    }

    /// Closes the connection now. Operations in flight finish with `Closed`;
    /// the socket is released as soon as they have.
    pub fn close(&self) {
        if let Some(stream) = self.stream.borrow_mut().take() {
            // Wakes reads and writes still in flight so they drop their handles.
            let _ = socket2::SockRef::from(&stream).shutdown(std::net::Shutdown::Both);
            with_worker(|s| s.open.sub(1));
        }
        // Frees the read buffer and cancels a read parked by a timeout.
        self.reader.borrow_mut().take();
        self.parked.borrow_mut().take();
    }

    pub fn peer_addr(&self) -> Result<SocketAddr, NetError> {
        Ok(self.stream()?.peer_addr()?)
    }

    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        Ok(self.stream()?.local_addr()?)
    }

    pub fn set_nodelay(&self, on: bool) -> Result<(), NetError> {
        Ok(self.stream()?.set_nodelay(on)?)
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.close();
    }
}

/// Exclusive access to a connection's received bytes for one read call.
pub struct ReadGuard<'a> {
    conn: &'a Conn,
    stream: TcpStream,
    /// Always `Some` until the guard is dropped.
    reader: Option<Reader>,
    deadline: Option<Instant>,
    /// The most one read asks for: the connection's `read_chunk`, unless
    /// the caller raised it (`reads_up_to`).
    max_chunk: usize,
}

impl ReadGuard<'_> {
    fn reader(&mut self) -> &mut Reader {
        self.reader.as_mut().expect("reader present until drop")
    }

    /// Lets the reads of this guard grow to `n` bytes when the connection's
    /// own `read_chunk` is smaller (a relay moves bulk data in fewer, bigger
    /// reads; they still start small and grow only while they come back full).
    pub fn reads_up_to(&mut self, n: usize) {
        self.max_chunk = self.max_chunk.max(n);
    }

    fn available(&mut self) -> usize {
        let r = self.reader();
        r.buf.len() - r.pos
    }

    /// Consumes and returns the next `n` buffered bytes.
    fn consume(&mut self, n: usize, skip: usize) -> &[u8] {
        let r = self.reader.as_mut().expect("reader present until drop");
        let start = r.pos;
        r.pos += n + skip;
        &r.buf[start..start + n]
    }

    /// Receives more bytes into the buffer: `Eof` at end of stream.
    ///
    /// The read operation lives in the reader, not in this future: if the
    /// caller stops waiting (a timeout, `moonport.timeout`, `select`, a
    /// cancelled coroutine), the operation stays parked and the next read
    /// collects its bytes, so giving up on a read never loses data.
    async fn fill(&mut self) -> Result<(), NetError> {
        while self.fill_once().await? == 0 {}
        Ok(())
    }

    /// One read from the socket; returns how many bytes it added to the
    /// buffer, which on a TLS connection may be none (a partial record).
    async fn fill_once(&mut self) -> Result<usize, NetError> {
        let chunk = self.max_chunk;
        let deadline = self.deadline;
        let tls = self.conn.tls.borrow().is_some();
        let r = self.reader.as_mut().expect("reader present until drop");
        if r.pending.is_none() {
            let buf = r.take_for_read(tls)?;
            let op = Recv::new(self.stream.to_shared_fd(), buf.uninit());
            r.pending = Some(Box::pin(compio::runtime::submit(op)));
        }
        let Some(pending) = r.pending.as_mut() else { unreachable!("a read was just parked") };
        let done = match deadline {
            None => pending.await,
            Some(at) => compio::time::timeout_at(at, pending).await.map_err(|_| NetError::Timeout)?,
        };
        r.pending = None;
        let BufResult(res, buf) = done.into_inner().map_advanced().map_buffer(Uninit::into_inner);
        // Checked again: a read parked before `start_tls` brings ciphertext too.
        let tls = self.conn.tls.borrow().is_some();
        let r = self.reader();
        if tls {
            r.cipher = buf;
        } else {
            r.buf = buf;
        }
        let n = match res {
            Ok(0) => {
                r.eof = true;
                return Err(NetError::Eof);
            }
            Ok(n) => n,
            Err(e) => return Err(NetError::from(e)),
        };
        with_worker(|s| s.bytes_received.add(n as u64));
        r.adapt(n, chunk);
        if !tls {
            return Ok(n);
        }
        let cipher = mem::take(&mut r.cipher);
        let got = self.decrypt(&cipher);
        self.reader().cipher = cipher;
        got
    }

    /// Decrypts received ciphertext onto the end of the read buffer; returns
    /// the plaintext byte count. The peer's `close_notify` is end of stream.
    fn decrypt(&mut self, cipher: &[u8]) -> Result<usize, NetError> {
        let conn = self.conn;
        let r = self.reader.as_mut().expect("reader present until drop");
        r.compact();
        let before = r.buf.len();
        let mut tls = conn.tls.borrow_mut();
        let Some(t) = tls.as_mut() else { return Ok(0) };
        if t.session.receive(cipher, &mut r.buf).map_err(NetError::Tls)? {
            r.eof = true;
        }
        Ok(r.buf.len() - before)
    }

    /// Waits until at least `min` bytes are buffered and returns all of them,
    /// consuming nothing: the caller `advance`s past what it used.
    pub async fn peek(&mut self, min: usize) -> Result<&[u8], NetError> {
        while self.available() < min {
            self.fill().await?;
        }
        let r = self.reader();
        Ok(&r.buf[r.pos..])
    }

    pub fn advance(&mut self, n: usize) {
        let r = self.reader();
        r.pos = (r.pos + n).min(r.buf.len());
    }

    /// Returns what is buffered, or what the next read brings: 1..=max bytes.
    pub async fn read(&mut self, max: usize) -> Result<&[u8], NetError> {
        self.peek(1).await?;
        let n = self.available().min(max);
        Ok(self.consume(n, 0))
    }

    /// Returns exactly `n` bytes, waiting for as many reads as that takes.
    pub async fn read_exact(&mut self, n: usize) -> Result<&[u8], NetError> {
        self.peek(n).await?;
        Ok(self.consume(n, 0))
    }

    /// Returns the bytes before the next `delim` and consumes the delimiter.
    /// More than `max` bytes before it is `TooLong(what)`; those bytes stay
    /// buffered, so the caller may still drain them with `read`.
    pub async fn read_until(&mut self, delim: &[u8], max: usize, what: &'static str) -> Result<&[u8], NetError> {
        debug_assert!(!delim.is_empty());
        // Where the search resumes: bytes before it hold no complete delimiter.
        let mut scanned = 0;
        loop {
            let r = self.reader();
            let data = &r.buf[r.pos..];
            if let Some(i) = find(&data[scanned..], delim).map(|i| i + scanned) {
                if i > max {
                    return Err(NetError::TooLong(what));
                }
                return Ok(self.consume(i, delim.len()));
            }
            // A delimiter may straddle the end of what has arrived so far.
            scanned = data.len().saturating_sub(delim.len() - 1);
            if scanned > max {
                return Err(NetError::TooLong(what));
            }
            self.fill().await?;
        }
    }

    /// Moves the read buffer out, with the offset where its unconsumed bytes
    /// start, so they can go to a write without a copy; `restore_vec` gives
    /// the allocation back afterwards.
    pub fn take_vec(&mut self) -> (Vec<u8>, usize) {
        let r = self.reader();
        let pos = mem::replace(&mut r.pos, 0);
        (mem::take(&mut r.buf), pos)
    }

    pub fn restore_vec(&mut self, mut vec: Vec<u8>) {
        vec.clear();
        let r = self.reader();
        if r.buf.is_empty() && r.pending.is_none() {
            r.buf = vec;
        }
    }

    /// After a poll of a read (`begin_read_by`) came back pending: keeps the
    /// read waiting for `owner` until it polls again, and polls the read
    /// timeout, which counts from the first park. `Timeout` once it passed
    /// (the read stays in flight for the next reader, as after any timeout).
    pub fn park(&mut self, owner: &Rc<()>, cx: &mut Context<'_>) -> Result<(), NetError> {
        let mut parked = self.conn.parked.borrow_mut();
        let p = parked.get_or_insert_with(|| Parked {
            owner: Rc::downgrade(owner),
            timer: self.conn.timeouts.get().read.map(|d| Box::pin(compio::time::sleep(d)) as Pin<Box<_>>),
        });
        if p.timer.as_mut().is_some_and(|t| t.as_mut().poll(cx).is_ready()) {
            *parked = None;
            return Err(NetError::Timeout);
        }
        Ok(())
    }

    /// Ends a read polled by its owner (`begin_read_by`): it is no longer parked.
    pub fn unpark(&mut self) {
        self.conn.parked.borrow_mut().take();
    }

    /// Consumes and returns everything buffered, e.g. the partial data left
    /// when the peer closed in the middle of a `read_exact`.
    pub fn take_buffered(&mut self) -> &[u8] {
        let n = self.available();
        self.consume(n, 0)
    }
}

impl Drop for ReadGuard<'_> {
    fn drop(&mut self) {
        if !self.conn.is_closed() {
            *self.conn.reader.borrow_mut() = self.reader.take();
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if let [byte] = needle { memchr::memchr(*byte, haystack) } else { memchr::memmem::find(haystack, needle) }
}

/// Connects to the first of `addrs` that accepts, trying them in order, all
/// before `deadline`.
pub async fn connect(addrs: &[SocketAddr], deadline: Option<Instant>) -> Result<TcpStream, NetError> {
    let mut last = NetError::Invalid("no address");
    for addr in addrs {
        let attempt = TcpStream::connect(*addr);
        let result = match deadline {
            None => attempt.await,
            Some(d) => {
                compio::time::timeout_at(d, attempt).await.unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
            }
        };
        match result.map_err(NetError::from) {
            Ok(stream) => return Ok(stream),
            Err(NetError::Timeout) => return Err(NetError::Timeout),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Connects (see `connect`) and, given a TLS session, runs its handshake,
/// all before `deadline`.
pub async fn dial(
    addrs: &[SocketAddr],
    deadline: Option<Instant>,
    read_chunk: usize,
    tls: Option<TlsSession>,
) -> Result<TcpConn, NetError> {
    let conn = TcpConn::new(connect(addrs, deadline).await?, read_chunk);
    if let Some(session) = tls {
        conn.start_tls(session, deadline).await?;
    }
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Grows a reader's chunk the way a stream of full reads does.
    fn grown_to(max_chunk: usize) -> Reader {
        let mut r = Reader::new();
        while r.chunk < max_chunk {
            let buf = r.take_for_read(false).expect("not at eof");
            r.buf = buf;
            let asked = r.asked;
            r.adapt(asked, max_chunk);
        }
        r
    }

    #[test]
    fn a_busy_stream_reads_whole_chunks() {
        let mut r = grown_to(BULK_READ);
        assert_eq!(r.chunk, BULK_READ);
        // An empty buffer smaller than the chunk grows to it: asking for
        // only its spare half would halve every read from here on.
        let buf = r.take_for_read(false).expect("not at eof");
        assert!(r.asked >= BULK_READ, "asked for {} of a {} chunk", r.asked, BULK_READ);
        r.buf = buf;
    }

    #[test]
    fn mostly_empty_reads_shrink_the_chunk_and_free_the_buffer() {
        let mut r = grown_to(BULK_READ);
        for _ in 0..8 {
            r.buf = r.take_for_read(false).expect("not at eof");
            r.adapt(10, BULK_READ);
        }
        assert_eq!(r.chunk, MIN_READ);
        r.buf = r.take_for_read(false).expect("not at eof");
        assert!(r.buf.capacity() <= 2 * MIN_READ, "an idle read holds {} bytes", r.buf.capacity());
    }
}
