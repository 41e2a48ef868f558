//! An HTTP/1.x request head: parsed by `httparse` from the bytes received so
//! far, within limits on its size and header count, into owned values the
//! server and the WebSocket handshake can look at.

/// Bounds on what a client may send before its request is refused.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of request line and headers together (431 beyond).
    pub max_head: usize,
    /// Number of header lines (431 beyond).
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_head: 16 * 1024, max_headers: 64 }
    }
}

/// Why a head was refused, with the status to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// 431: head bigger than `max_head`, or more than `max_headers` lines.
    TooLarge,
    /// 400: not HTTP.
    Malformed,
    /// 505: HTTP but not 1.0 or 1.1.
    Version,
}

impl HeadError {
    pub fn status(self) -> u16 {
        match self {
            HeadError::TooLarge => 431,
            HeadError::Malformed => 400,
            HeadError::Version => 505,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    /// The request target as sent: path and query, still percent-encoded.
    pub target: String,
    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// In arrival order, names as sent; look them up with `header`.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Head {
    /// Parses a complete head at the start of `buf`: `Ok(None)` until all of
    /// it has arrived, otherwise the head and its length in bytes.
    pub fn parse(buf: &[u8], limits: Limits) -> Result<Option<(Head, usize)>, HeadError> {
        // httparse needs room for every header up front; one more than the
        // limit tells "too many" apart from "malformed".
        let mut slots = vec![httparse::EMPTY_HEADER; limits.max_headers + 1];
        let mut req = httparse::Request::new(&mut slots);
        let window = &buf[..buf.len().min(limits.max_head)];
        match req.parse(window) {
            Ok(httparse::Status::Complete(n)) => {
                if req.headers.len() > limits.max_headers {
                    return Err(HeadError::TooLarge);
                }
                let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
                    return Err(HeadError::Malformed);
                };
                if version > 1 {
                    return Err(HeadError::Version);
                }
                let headers = req.headers.iter().map(|h| (h.name.to_string(), h.value.to_vec())).collect();
                Ok(Some((Head { method: method.to_string(), target: path.to_string(), version, headers }, n)))
            }
            Ok(httparse::Status::Partial) if window.len() < limits.max_head => Ok(None),
            Ok(httparse::Status::Partial) => Err(HeadError::TooLarge),
            Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooLarge),
            Err(httparse::Error::Version) => Err(HeadError::Version),
            Err(_) => Err(HeadError::Malformed),
        }
    }

    /// The first value of header `name`, ignoring case.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    /// Whether any `name` header lists `token` among its comma-separated
    /// values, ignoring case (`Connection: keep-alive, Upgrade`).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    }

    /// The path part of the target, before any `?`.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// The query string after `?`, without it.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// Whether the connection stays open after this request's response.
    pub fn keep_alive(&self) -> bool {
        if self.version == 0 {
            self.has_token("connection", "keep-alive")
        } else {
            !self.has_token("connection", "close")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_request_and_finds_headers_in_any_case() {
        let raw = b"GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n\r\nrest";
        let (head, n) = Head::parse(raw, Limits::default()).unwrap().unwrap();
        assert_eq!(n, raw.len() - 4);
        assert_eq!((head.method.as_str(), head.path(), head.query()), ("GET", "/a/b", Some("x=1")));
        assert_eq!(head.header("HOST"), Some(&b"h"[..]));
        assert!(head.has_token("connection", "upgrade"));
        assert!(head.keep_alive());
    }

    #[test]
    fn partial_heads_wait_and_limits_refuse() {
        let limits = Limits { max_head: 64, max_headers: 2 };
        assert_eq!(Head::parse(b"GET / HTTP/1.1\r\nHo", limits), Ok(None));
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(100));
        assert_eq!(Head::parse(long.as_bytes(), limits), Err(HeadError::TooLarge));
        assert_eq!(Head::parse(&long.as_bytes()[..70], limits), Err(HeadError::TooLarge));
        let many = b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n";
        assert_eq!(Head::parse(many, limits), Err(HeadError::TooLarge));
        assert_eq!(Head::parse(b"\x16\x03\x01\x00\x00\r\n\r\n", limits), Err(HeadError::Malformed));
        assert!(!Head::parse(b"GET / HTTP/1.0\r\n\r\n", limits).unwrap().unwrap().0.keep_alive());
    }
}
