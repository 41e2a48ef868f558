//! A small HTTP/1.1 client for scripts: one request per connection
//! (`Connection: close`), the whole response read into memory within a
//! size limit and a deadline, over `http://` or `https://` (the caller
//! brings the TLS session, configured as the script asked).

use std::net::SocketAddr;
use std::time::Duration;

use super::body::{self, BodyError, Chunked, Framing};
use super::{Head, Limits};
use crate::net::{self, NetError, TcpConn};
use crate::tls::TlsSession;

pub struct Request<'a> {
    pub method: &'a str,
    pub url: &'a str,
    /// Where the URL's host resolved to (see `origin`), tried in order.
    pub addrs: &'a [SocketAddr],
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    /// For everything: connecting, sending, and reading the response.
    pub timeout: Option<Duration>,
    /// Largest response body accepted.
    pub max_body: usize,
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

#[derive(Debug)]
pub enum ClientError {
    /// The URL cannot be used; says why.
    Url(&'static str),
    Net(NetError),
    /// The server's answer is not HTTP/1.x.
    Malformed,
    /// The response body (or head) is larger than allowed.
    TooLarge,
}

impl From<NetError> for ClientError {
    fn from(e: NetError) -> Self {
        ClientError::Net(e)
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Url(why) => f.write_str(why),
            ClientError::Net(e) => e.fmt(f),
            ClientError::Malformed => f.write_str("malformed response"),
            ClientError::TooLarge => f.write_str("response too large"),
        }
    }
}

const RESPONSE_LIMITS: Limits = Limits { max_head: 64 * 1024, max_headers: 128 };

/// Sends `req` and reads the response; `tls` (for `https://`) is the
/// session the connection's handshake runs.
pub async fn request(req: Request<'_>, tls: Option<TlsSession>) -> Result<Response, ClientError> {
    match req.timeout {
        None => exchange(&req, tls).await,
        Some(d) => compio::time::timeout(d, exchange(&req, tls)).await.unwrap_or(Err(NetError::Timeout.into())),
    }
}

/// Where a URL points: what to resolve and connect to, and whether over TLS.
pub struct Origin {
    /// Without IPv6 brackets.
    pub host: String,
    pub port: u16,
    pub https: bool,
}

pub fn origin(url: &str) -> Result<Origin, ClientError> {
    let url = parse(url)?;
    let host = url.host_str().ok_or(ClientError::Url("url has no host"))?;
    Ok(Origin {
        host: host.trim_start_matches('[').trim_end_matches(']').to_string(),
        port: url.port_or_known_default().unwrap_or(80),
        https: url.scheme() == "https",
    })
}

fn parse(url: &str) -> Result<url::Url, ClientError> {
    let url = url::Url::parse(url).map_err(|_| ClientError::Url("invalid url"))?;
    match url.scheme() {
        "http" | "https" if url.host_str().is_some() => Ok(url),
        _ => Err(ClientError::Url("invalid url")),
    }
}

async fn exchange(req: &Request<'_>, tls: Option<TlsSession>) -> Result<Response, ClientError> {
    let url = parse(req.url)?;
    let host = url.host_str().ok_or(ClientError::Url("url has no host"))?;
    let conn = net::dial(req.addrs, None, 16 * 1024, tls).await?;

    let mut head = format!("{} {}", req.method, &url[url::Position::BeforePath..url::Position::AfterQuery]);
    head.push_str(" HTTP/1.1\r\n");
    let has = |name: &str| req.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    if !has("host") {
        match url.port() {
            Some(p) => head.push_str(&format!("Host: {host}:{p}\r\n")),
            None => head.push_str(&format!("Host: {host}\r\n")),
        }
    }
    for (n, v) in req.headers {
        if n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("connection") {
            continue;
        }
        let clean = |s: &str| s.replace(['\r', '\n'], "");
        head.push_str(&format!("{}: {}\r\n", clean(n), clean(v)));
    }
    if !req.body.is_empty() || matches!(req.method, "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", req.body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    conn.write_parts(head.as_bytes(), req.body).await?;

    let (status, head) = loop {
        let (status, head) = read_response_head(&conn).await?;
        // Interim answers (100 Continue) come before the real one.
        if !(100..200).contains(&status) || status == 101 {
            break (status, head);
        }
    };
    let framing = body::response_framing(req.method, status, &head).map_err(|_| ClientError::Malformed)?;
    let body = read_body(&conn, framing, req.max_body).await?;
    Ok(Response { status, headers: head.headers, body })
}

/// Reads a response head (status and headers; `method` and `target` are
/// left empty in the `Head`).
pub async fn read_response_head(conn: &TcpConn) -> Result<(u16, Head), ClientError> {
    let mut guard = conn.begin_read()?;
    let mut need = 1;
    loop {
        let buf = guard.peek(need).await?;
        let mut slots = [httparse::EMPTY_HEADER; RESPONSE_LIMITS.max_headers];
        let mut res = httparse::Response::new(&mut slots);
        let window = &buf[..buf.len().min(RESPONSE_LIMITS.max_head)];
        match res.parse(window) {
            Ok(httparse::Status::Complete(n)) => {
                let status = res.code.ok_or(ClientError::Malformed)?;
                let headers = res.headers.iter().map(|h| (h.name.to_string(), h.value.to_vec())).collect();
                let head =
                    Head { method: String::new(), target: String::new(), version: res.version.unwrap_or(1), headers };
                guard.advance(n);
                return Ok((status, head));
            }
            Ok(httparse::Status::Partial) if window.len() < RESPONSE_LIMITS.max_head => need = buf.len() + 1,
            Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => return Err(ClientError::TooLarge),
            Err(_) => return Err(ClientError::Malformed),
        }
    }
}

async fn read_body(conn: &TcpConn, framing: Framing, max: usize) -> Result<Vec<u8>, ClientError> {
    let mut guard = conn.begin_read()?;
    match framing {
        Framing::None => Ok(Vec::new()),
        Framing::Length(n) if n > max as u64 => Err(ClientError::TooLarge),
        Framing::Length(n) => Ok(guard.read_exact(n as usize).await?.to_vec()),
        Framing::Chunked => {
            let mut decoder = Chunked::new(max as u64);
            let mut out = Vec::new();
            let mut need = 1;
            while !decoder.is_done() {
                let (used, more) = decoder.decode(guard.peek(need).await?, &mut out).map_err(|e| match e {
                    BodyError::TooLarge => ClientError::TooLarge,
                    BodyError::Malformed => ClientError::Malformed,
                })?;
                guard.advance(used);
                need = more;
            }
            Ok(out)
        }
        Framing::UntilClose => {
            let mut out = Vec::new();
            loop {
                match guard.read(64 * 1024).await {
                    Ok(bytes) if out.len() + bytes.len() > max => return Err(ClientError::TooLarge),
                    Ok(bytes) => out.extend_from_slice(bytes),
                    Err(NetError::Closed | NetError::Eof) => return Ok(out),
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}
