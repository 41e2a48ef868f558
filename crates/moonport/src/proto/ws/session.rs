//! A WebSocket session over a `TcpConn`, after the handshake: receiving
//! messages through the `Decoder` (answering pings on the way), sending
//! frames whole, and the close handshake. Rule breaks by the peer are
//! answered with their close code, logged, and end the connection.
//!
//! One coroutine may receive while others send: the connection's read guard
//! and write queue keep them apart. State is kept in cells and the decoder is
//! only borrowed between awaits, so a receive abandoned by a timeout resumes
//! where it stopped.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use super::Violation;
use super::deflate::{Deflater, Params};
use super::frame::{self, MAX_HEADER};
use super::message::{Decoder, Event, Kind, Role, Step};
use crate::buf::Chunk;
use crate::net::{NetError, ReadGuard, TcpConn};

/// How long `close` waits for the peer's close frame before dropping the
/// connection anyway.
const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// The largest message `plain_frame` copies into a frame of its own; above
/// it one more copy would cost more than the wait it saves.
const PLAIN_FRAME: usize = 16 * 1024;

/// What `recv` returns.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    Message(Kind, Vec<u8>),
    /// The peer closed, with its code and reason if it gave them; the close
    /// was answered and the connection is closed.
    Close(Option<(u16, String)>),
}

#[derive(Debug)]
pub enum WsError {
    Net(NetError),
    /// The peer broke the protocol; the session closed with `Violation::code`.
    Protocol(Violation),
}

impl From<NetError> for WsError {
    fn from(e: NetError) -> Self {
        WsError::Net(e)
    }
}

impl std::fmt::Display for WsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WsError::Net(e) => e.fmt(f),
            WsError::Protocol(v) => v.fmt(f),
        }
    }
}

/// What to send: bytes to copy, or a buffer's shared storage to send as is.
pub enum Payload<'a> {
    Bytes(&'a [u8]),
    Chunk(Chunk),
}

pub struct Session {
    role: Role,
    decoder: RefCell<Decoder>,
    /// Our close frame went out: nothing but reading may follow.
    close_sent: Cell<bool>,
    /// The peer's close frame arrived: the session is over.
    close_received: Cell<bool>,
    /// Set when permessage-deflate was negotiated: data messages go out
    /// compressed.
    deflater: Option<RefCell<Deflater>>,
    /// What a caller polling `next_event` found and left for `recv` to
    /// finish (a control frame to answer, a rule break to close with).
    found: RefCell<Option<Found>>,
}

/// One thing `next_event` finds in the stream.
pub type Found = Result<Event, Violation>;

impl Session {
    pub fn new(role: Role, max_message: usize) -> Self {
        Self {
            role,
            decoder: RefCell::new(Decoder::new(role, max_message)),
            close_sent: Cell::new(false),
            close_received: Cell::new(false),
            deflater: None,
            found: RefCell::new(None),
        }
    }

    /// Compresses and inflates messages, as negotiated with `params`.
    pub fn with_deflate(mut self, params: Params) -> Self {
        let decoder = self.decoder.into_inner().with_deflate();
        self.decoder = RefCell::new(decoder);
        self.deflater = Some(RefCell::new(Deflater::new(params)));
        self
    }

    /// Whether either side has started closing.
    pub fn is_closing(&self) -> bool {
        self.close_sent.get() || self.close_received.get()
    }

    /// Waits for the next message. Pings are answered and pongs dropped on
    /// the way; a close frame is answered and ends the session.
    pub async fn recv(&self, conn: &TcpConn) -> Result<Received, WsError> {
        if self.close_received.get() && self.found.borrow().is_none() {
            return Err(NetError::Closed.into());
        }
        let mut guard = conn.begin_read()?;
        // Taken once the read is ours, so a failed start loses nothing left here.
        let mut found = self.found.take();
        loop {
            let next = match found.take() {
                Some(f) => f,
                None => self.next_event(conn, &mut guard).await?,
            };
            match next {
                Ok(Event::Message(kind, data)) => return Ok(Received::Message(kind, data)),
                Ok(Event::Ping(data)) => {
                    if !self.close_sent.get() {
                        self.send_frame(conn, frame::PONG, Payload::Bytes(&data)).await?;
                    }
                }
                Ok(Event::Pong(_)) => {}
                Ok(Event::Close(reason)) => {
                    self.close_received.set(true);
                    drop(guard);
                    if !self.close_sent.get() {
                        // Echo the peer's code, as §5.5.1 suggests.
                        let body = reason.as_ref().map(|(c, _)| c.to_be_bytes().to_vec()).unwrap_or_default();
                        self.close_sent.set(true);
                        let _ = self.send_frame(conn, frame::CLOSE, Payload::Bytes(&body)).await;
                    }
                    // The server closes the TCP connection first (§7.1.1).
                    conn.close();
                    return Ok(Received::Close(reason));
                }
                Err(v) => {
                    drop(guard);
                    return Err(self.violated(conn, v).await);
                }
            }
        }
    }

    /// Reads and decodes up to the next event (or rule break) of the stream.
    /// Its only wait is for bytes, so a caller may stop polling it at any
    /// point and lose nothing: the decoder keeps its place and the socket
    /// read stays parked. A caller that polls it instead of `recv` leaves
    /// what is not a data message to `recv` (`leave`). A peer gone without
    /// a close frame ends the session here.
    pub async fn next_event(&self, conn: &TcpConn, guard: &mut ReadGuard<'_>) -> Result<Found, WsError> {
        let mut need = 1;
        loop {
            let decoded = match guard.peek(need).await {
                Ok(input) => self.decoder.borrow_mut().decode(input),
                Err(e @ (NetError::Eof | NetError::Closed | NetError::Reset)) => {
                    conn.close();
                    self.close_received.set(true);
                    return Err(WsError::Net(if matches!(e, NetError::Eof) { NetError::Closed } else { e }));
                }
                Err(e) => return Err(e.into()),
            };
            let (used, step) = match decoded {
                Ok(d) => d,
                Err(v) => return Ok(Err(v)),
            };
            guard.advance(used);
            match step {
                Step::More(n) => need = n,
                Step::Event(event) => return Ok(Ok(event)),
            }
        }
    }

    /// Leaves what `next_event` found for the next `recv` to finish.
    pub fn leave(&self, found: Found) {
        *self.found.borrow_mut() = Some(found);
    }

    /// Answers a rule break: a close frame with its code, then the end.
    async fn violated(&self, conn: &TcpConn, v: Violation) -> WsError {
        if let Ok(peer) = conn.peer_addr() {
            tracing::info!("websocket {peer}: {}; closing with {}", v.reason, v.code);
        }
        if !self.close_sent.get() {
            self.close_sent.set(true);
            let _ = self.send_frame(conn, frame::CLOSE, Payload::Bytes(&close_body(v.code, v.reason.as_bytes()))).await;
        }
        self.close_received.set(true);
        conn.close();
        WsError::Protocol(v)
    }

    /// Sends one message as a single frame.
    pub async fn send(&self, conn: &TcpConn, kind: Kind, data: Payload<'_>) -> Result<usize, WsError> {
        if self.is_closing() {
            return Err(NetError::Closed.into());
        }
        let opcode = if kind == Kind::Text { frame::TEXT } else { frame::BINARY };
        match &self.deflater {
            None => self.send_frame(conn, opcode, data).await,
            Some(deflater) => {
                let compressed = match &data {
                    Payload::Bytes(b) => deflater.borrow_mut().compress(b),
                    Payload::Chunk(c) => deflater.borrow_mut().compress(c.as_slice()),
                };
                // RSV1 on the frame says it is compressed.
                self.send_frame(conn, opcode | 0x40, Payload::Bytes(&compressed)).await.map(|_| match &data {
                    Payload::Bytes(b) => b.len(),
                    Payload::Chunk(c) => c.as_slice().len(),
                })
            }
        }
    }

    /// The frame `send` would write for `data`, built before sending so a
    /// caller can hand it to the socket without waiting (`TcpConn::try_write`):
    /// for a server's uncompressed messages up to `PLAIN_FRAME` bytes. `None`
    /// for the rest, which go through `send`: a client masks every frame with
    /// a fresh key, compression carries state from message to message, and a
    /// large buffer is sent without copying it into a frame.
    pub fn plain_frame(&self, kind: Kind, data: &[u8]) -> Result<Option<Vec<u8>>, WsError> {
        if self.is_closing() {
            return Err(NetError::Closed.into());
        }
        if self.role == Role::Client || self.deflater.is_some() || data.len() > PLAIN_FRAME {
            return Ok(None);
        }
        let opcode = if kind == Kind::Text { frame::TEXT } else { frame::BINARY };
        let mut head = [0u8; MAX_HEADER];
        let n = frame::encode_header(opcode, None, data.len(), &mut head);
        let mut out = Vec::with_capacity(n + data.len());
        out.extend_from_slice(&head[..n]);
        out.extend_from_slice(data);
        Ok(Some(out))
    }

    pub async fn ping(&self, conn: &TcpConn, data: &[u8]) -> Result<usize, WsError> {
        if self.is_closing() {
            return Err(NetError::Closed.into());
        }
        if data.len() > 125 {
            return Err(WsError::Protocol(Violation::protocol("control frame too long")));
        }
        self.send_frame(conn, frame::PING, Payload::Bytes(data)).await
    }

    /// Starts the close handshake with `code` (none: an empty close frame),
    /// waits a little for the peer's answer unless another coroutine is
    /// receiving (it will see the answer), and closes the connection.
    pub async fn close(&self, conn: &TcpConn, code: Option<u16>, reason: &[u8]) -> Result<(), WsError> {
        if self.close_sent.get() {
            return Err(NetError::Closed.into());
        }
        self.close_sent.set(true);
        let body = code.map(|c| close_body(c, reason)).unwrap_or_default();
        let sent = self.send_frame(conn, frame::CLOSE, Payload::Bytes(&body)).await;
        if sent.is_err() || self.close_received.get() {
            conn.close();
            return sent.map(|_| ());
        }
        let drain = async {
            loop {
                match self.recv(conn).await {
                    Ok(Received::Message(..)) => continue,
                    Err(WsError::Net(NetError::Busy)) => return false,
                    _ => return true,
                }
            }
        };
        let done = compio::time::timeout(CLOSE_WAIT, drain).await.unwrap_or(true);
        if done {
            conn.close();
        }
        Ok(())
    }

    async fn send_frame(&self, conn: &TcpConn, opcode: u8, data: Payload<'_>) -> Result<usize, WsError> {
        let len = match &data {
            Payload::Bytes(b) => b.len(),
            Payload::Chunk(c) => c.as_slice().len(),
        };
        let mask = match self.role {
            Role::Server => None,
            // A client masks; the key need not be secret from the script,
            // only unpredictable to what sits between it and the server.
            Role::Client => Some(mask_key()),
        };
        let mut head = [0u8; MAX_HEADER];
        let n = frame::encode_header(opcode, mask, len, &mut head);
        let sent = match (data, mask) {
            (Payload::Bytes(b), None) => conn.write_parts(&head[..n], b).await,
            (Payload::Chunk(c), None) => conn.write_chunk_after(&head[..n], c).await,
            (data, Some(key)) => {
                let mut masked = match data {
                    Payload::Bytes(b) => b.to_vec(),
                    Payload::Chunk(c) => c.as_slice().to_vec(),
                };
                frame::apply_mask(&mut masked, key, 0);
                conn.write_parts(&head[..n], &masked).await
            }
        };
        sent.map_err(WsError::Net)
    }
}

/// A close frame's body: the code, then the reason cut to fit 125 bytes
/// without splitting a character.
fn close_body(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut cut = reason.len().min(123);
    while cut > 0 && std::str::from_utf8(&reason[..cut]).is_err() {
        cut -= 1;
    }
    let mut body = code.to_be_bytes().to_vec();
    body.extend_from_slice(&reason[..cut]);
    body
}

/// A fresh masking key from the standard library's per-process random
/// hasher seed mixed with a counter and the time.
pub(super) fn mask_key() -> [u8; 4] {
    use std::hash::{BuildHasher, Hasher};
    thread_local! { static N: Cell<u64> = const { Cell::new(0) }; }
    let n = N.with(|n| {
        n.set(n.get() + 1);
        n.get()
    });
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    (h.finish() as u32).to_ne_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ws::code;

    #[test]
    fn close_reasons_are_cut_on_character_boundaries() {
        let reason = "é".repeat(100);
        let body = close_body(code::NORMAL, reason.as_bytes());
        assert!(body.len() <= 125);
        assert!(std::str::from_utf8(&body[2..]).is_ok());
        assert_eq!(&body[..2], &1000u16.to_be_bytes());
    }
}
