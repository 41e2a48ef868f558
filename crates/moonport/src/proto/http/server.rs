//! The server side of HTTP/1.1 on a `TcpConn`: reading a request head within
//! its limits and deadline, and the short error responses (400, 408, 413,
//! 431, ...) that end a connection whose client misbehaved.

use std::time::Duration;

use super::body::{BodyError, Chunked, Framing};
use super::{Head, HeadError, Limits};
use crate::net::{NetError, TcpConn};

#[derive(Debug)]
pub enum ReadError {
    /// No request began within the idle timeout: close without a word.
    Idle,
    Net(NetError),
    Bad(HeadError),
    Body(BodyError),
}

impl ReadError {
    /// The status to answer with, if the client is still there to hear it.
    pub fn status(&self) -> Option<u16> {
        match self {
            ReadError::Bad(e) => Some(e.status()),
            ReadError::Body(BodyError::Malformed) => Some(400),
            ReadError::Body(BodyError::TooLarge) => Some(413),
            ReadError::Net(NetError::Timeout) => Some(408),
            ReadError::Net(_) | ReadError::Idle => None,
        }
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReadError::Idle => "idle",
            ReadError::Net(NetError::Timeout) => "request too slow",
            ReadError::Net(e) => return e.fmt(f),
            ReadError::Bad(HeadError::TooLarge) => "request head too large",
            ReadError::Bad(HeadError::Malformed) => "malformed request",
            ReadError::Bad(HeadError::Version) => "unsupported HTTP version",
            ReadError::Body(BodyError::TooLarge) => "request body too large",
            ReadError::Body(BodyError::Malformed) => "malformed request body",
        })
    }
}

impl From<NetError> for ReadError {
    fn from(e: NetError) -> Self {
        ReadError::Net(e)
    }
}

/// Reads the next request head. `idle` bounds the wait for its first byte
/// (a keep-alive connection between requests), `timeout` the time from
/// then until the head is complete, so a client trickling bytes
/// (slowloris) cannot hold the connection; both end in `Timeout`.
pub async fn read_head(
    conn: &TcpConn,
    limits: Limits,
    idle: Option<Duration>,
    timeout: Option<Duration>,
) -> Result<Head, ReadError> {
    let mut guard = conn.begin_read()?;
    let first = guard.peek(1);
    match idle {
        None => first.await.map(|_| ())?,
        Some(d) => compio::time::timeout(d, first).await.map_err(|_| ReadError::Idle)?.map(|_| ())?,
    }
    let rest = async {
        let mut need = 1;
        loop {
            let parsed = Head::parse(guard.peek(need).await?, limits).map_err(ReadError::Bad)?;
            match parsed {
                Some((head, n)) => {
                    guard.advance(n);
                    return Ok(head);
                }
                None => need = guard.peek(0).await?.len() + 1,
            }
        }
    };
    match timeout {
        None => rest.await,
        Some(d) => compio::time::timeout(d, rest).await.map_err(|_| NetError::Timeout)?,
    }
}

/// Reads a whole request body of at most `max` bytes within `timeout`.
pub async fn read_body(
    conn: &TcpConn,
    framing: Framing,
    max: usize,
    timeout: Option<Duration>,
) -> Result<Vec<u8>, ReadError> {
    let read = async {
        let mut guard = conn.begin_read()?;
        match framing {
            Framing::None | Framing::UntilClose => Ok(Vec::new()),
            Framing::Length(n) if n > max as u64 => Err(ReadError::Body(BodyError::TooLarge)),
            Framing::Length(n) => Ok(guard.read_exact(n as usize).await?.to_vec()),
            Framing::Chunked => {
                let mut decoder = Chunked::new(max as u64);
                let mut body = Vec::new();
                let mut need = 1;
                loop {
                    let (used, more) = decoder.decode(guard.peek(need).await?, &mut body).map_err(ReadError::Body)?;
                    guard.advance(used);
                    if decoder.is_done() {
                        return Ok(body);
                    }
                    need = more;
                }
            }
        }
    };
    match timeout {
        None => read.await,
        Some(d) => compio::time::timeout(d, read).await.map_err(|_| NetError::Timeout)?,
    }
}

/// The standard reason phrase for `status`.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        416 => "Range Not Satisfiable",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Sends a short plain-text error response that closes the connection;
/// `extra` is more header lines, each ending in CRLF.
pub async fn send_error(conn: &TcpConn, status: u16, body: &str, extra: &str) -> Result<(), NetError> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        reason(status),
        body.len() + 1
    );
    conn.write_parts(head.as_bytes(), format!("{body}\n").as_bytes()).await?;
    linger(conn).await;
    Ok(())
}

/// Closes after an error response without losing it: closing a socket with
/// unread bytes makes the kernel send a reset, which can wipe the response
/// from the client's buffer before it is read. So the sending side is shut
/// and what the client still sends is read and dropped, for a short while.
pub async fn linger(conn: &TcpConn) {
    if conn.shutdown_write().await.is_err() {
        return;
    }
    let drain = async {
        let Ok(mut guard) = conn.begin_read() else { return };
        let mut budget = 256 * 1024usize;
        while let Ok(bytes) = guard.read(64 * 1024).await {
            budget = budget.saturating_sub(bytes.len());
            if budget == 0 {
                break;
            }
        }
    };
    let _ = compio::time::timeout(Duration::from_secs(1), drain).await;
    conn.close();
}
