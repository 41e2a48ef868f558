//! A response as the handler writes it: status and headers until the first
//! write, then a body framed by `Content-Length` when the handler gave one,
//! chunked otherwise (or up to the close for HTTP/1.0 clients). Tracks
//! whether the connection may carry another request afterwards.

use super::server::reason;
use crate::buf::Chunk;
use crate::net::{NetError, TcpConn};

/// Where the response stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Nothing sent: status and headers may still change.
    Pending,
    /// Head sent; body bytes go out as written.
    Body { chunked: bool },
    /// Complete.
    Done,
    /// The connection was taken over (a WebSocket upgrade).
    Upgraded,
}

/// What to write: bytes to copy or a buffer's shared storage.
pub enum Data<'a> {
    Bytes(&'a [u8]),
    Chunk(Chunk),
}

impl Data<'_> {
    fn len(&self) -> usize {
        match self {
            Data::Bytes(b) => b.len(),
            Data::Chunk(c) => c.as_slice().len(),
        }
    }
}

pub struct Response {
    pub status: u16,
    /// Names as the handler gave them; `set_header` replaces ignoring case.
    headers: Vec<(String, String)>,
    state: State,
    /// The request was HEAD: headers only.
    head_only: bool,
    /// HTTP/1.1 client: chunked coding is available.
    http11: bool,
    /// Whether the connection may serve another request after this one.
    keep_alive: bool,
    /// Body bytes sent, and how many were promised by Content-Length.
    sent: u64,
    promised: Option<u64>,
}

impl Response {
    pub fn new(head_only: bool, http11: bool, keep_alive: bool) -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            state: State::Pending,
            head_only,
            http11,
            keep_alive,
            sent: 0,
            promised: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the next request may follow on this connection.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive && self.state == State::Done
    }

    /// The connection must close after this response (an error, a body
    /// the server did not read).
    pub fn close_after(&mut self) {
        self.keep_alive = false;
    }

    pub fn mark_upgraded(&mut self) {
        self.state = State::Upgraded;
    }

    /// Sets (or with `None` removes) a header; `false` once the head is sent.
    pub fn set_header(&mut self, name: &str, value: Option<&str>) -> bool {
        if self.state != State::Pending {
            return false;
        }
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if let Some(v) = value {
            self.headers.push((name.to_string(), v.to_string()));
        }
        true
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The head, with framing headers chosen for a body of `known` length
    /// (when the whole body is given at once) or unknown.
    fn encode_head(&mut self, known: Option<u64>) -> Vec<u8> {
        let bodiless = matches!(self.status, 100..=199 | 204 | 304);
        let length = self.header("content-length").and_then(|v| v.trim().parse::<u64>().ok()).or(known);
        let chunked = length.is_none() && self.http11 && !bodiless;
        if length.is_none() && !chunked && !bodiless {
            // An HTTP/1.0 client learns where the body ends from the close.
            self.keep_alive = false;
        }
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status)).into_bytes();
        for (n, v) in &self.headers {
            let framing = n.eq_ignore_ascii_case("content-length")
                || n.eq_ignore_ascii_case("transfer-encoding")
                || n.eq_ignore_ascii_case("connection");
            if !framing {
                append_header(&mut out, n, v);
            }
        }
        if let Some(len) = length.filter(|_| !bodiless) {
            append_header(&mut out, "Content-Length", &len.to_string());
        } else if chunked {
            append_header(&mut out, "Transfer-Encoding", "chunked");
        }
        if !self.keep_alive {
            append_header(&mut out, "Connection", "close");
        } else if !self.http11 {
            append_header(&mut out, "Connection", "keep-alive");
        }
        out.extend_from_slice(b"\r\n");
        self.promised = length;
        self.state = if bodiless || self.head_only { State::Body { chunked: false } } else { State::Body { chunked } };
        out
    }

    /// Writes part of the body, sending the head first if it is not sent.
    pub async fn write(&mut self, conn: &TcpConn, data: Data<'_>) -> Result<usize, NetError> {
        let mut prefix = match self.state {
            State::Pending => self.encode_head(None),
            State::Body { .. } => Vec::new(),
            State::Done | State::Upgraded => return Err(NetError::Closed),
        };
        let len = data.len();
        if self.head_only || matches!(self.status, 100..=199 | 204 | 304) || len == 0 {
            if !prefix.is_empty() {
                conn.write(&prefix).await?;
            }
            return Ok(len);
        }
        if let Some(promised) = self.promised
            && self.sent + len as u64 > promised
        {
            // More than Content-Length said would break the next response.
            return Err(NetError::TooLong("body longer than content-length"));
        }
        let chunked = self.state == State::Body { chunked: true };
        if chunked {
            prefix.extend_from_slice(format!("{len:x}\r\n").as_bytes());
        }
        match data {
            Data::Bytes(b) => {
                conn.write_parts(&prefix, b).await?;
            }
            Data::Chunk(c) => {
                conn.write_chunk_after(&prefix, c).await?;
            }
        }
        if chunked {
            conn.write(b"\r\n").await?;
        }
        self.sent += len as u64;
        Ok(len)
    }

    /// Sends the whole response with `body` (status and headers as set).
    pub async fn send(&mut self, conn: &TcpConn, body: Data<'_>) -> Result<(), NetError> {
        if self.state == State::Pending && self.header("content-length").is_none() {
            let len = body.len() as u64;
            let head = self.encode_head(Some(len));
            let skip = self.head_only || matches!(self.status, 100..=199 | 204 | 304);
            match body {
                _ if skip => conn.write(&head).await?,
                Data::Bytes(b) => conn.write_parts(&head, b).await?,
                Data::Chunk(c) => conn.write_chunk_after(&head, c).await?,
            };
            self.sent = if skip { 0 } else { len };
        } else {
            self.write(conn, body).await?;
        }
        self.finish(conn).await
    }

    /// Ends the response: the head if nothing was written, the last chunk
    /// if chunked. A body shorter than its Content-Length closes the
    /// connection, since the client would wait for the rest.
    pub async fn finish(&mut self, conn: &TcpConn) -> Result<(), NetError> {
        match self.state {
            State::Pending => {
                let head = self.encode_head(Some(0));
                conn.write(&head).await?;
            }
            State::Body { chunked: true } if !self.head_only => {
                conn.write(b"0\r\n\r\n").await?;
            }
            State::Body { .. } => {}
            State::Done | State::Upgraded => return Ok(()),
        }
        let body_expected = !self.head_only && !matches!(self.status, 100..=199 | 204 | 304);
        if body_expected && self.promised.is_some_and(|p| p != self.sent) {
            self.keep_alive = false;
            conn.close();
        }
        self.state = State::Done;
        Ok(())
    }
}

/// Appends `name: value`, dropping CR and LF so a value cannot start a new
/// header (response splitting).
fn append_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend(name.bytes().filter(|b| !matches!(b, b'\r' | b'\n' | b':')));
    out.extend_from_slice(b": ");
    out.extend(value.bytes().filter(|b| !matches!(b, b'\r' | b'\n')));
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_choose_their_framing() {
        let mut r = Response::new(false, true, true);
        r.set_header("X-A", Some("1\r\nInjected: yes"));
        let head = String::from_utf8(r.encode_head(None)).unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("X-A: 1Injected: yes\r\n") && head.contains("Transfer-Encoding: chunked\r\n"), "{head}");
        assert_eq!(r.state(), State::Body { chunked: true });

        let mut r = Response::new(false, false, true);
        let head = String::from_utf8(r.encode_head(None)).unwrap();
        assert!(head.contains("Connection: close\r\n") && !head.contains("chunked"), "{head}");

        let mut r = Response::new(false, true, true);
        r.status = 404;
        let head = String::from_utf8(r.encode_head(Some(3))).unwrap();
        assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n") && head.contains("Content-Length: 3\r\n"), "{head}");
        assert!(!head.contains("Connection"), "{head}");
    }
}
