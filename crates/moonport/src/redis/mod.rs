//! A Redis connection over moonport's own sockets: the core behind
//! `moonport.redis` and the cluster rooms' link (`room::cluster`).
//!
//! The wire format (RESP2) is the `redis-protocol` crate's: commands are
//! encoded as arrays of bulk strings with `encode_borrowed`, replies are
//! decoded with `decode_range`, which gives offsets into the read buffer, so
//! a reply is looked at where it arrived and copied at most once, into
//! whatever the caller makes of it (a Lua value, a room message). The socket
//! is a `net::TcpConn`, so reads and writes run on the worker's completion
//! runtime with its buffering, bounds and timeouts; no other runtime.

use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

use redis_protocol::resp2::decode::decode_range;
use redis_protocol::resp2::encode::encode_borrowed;
use redis_protocol::resp2::types::BorrowedFrame;

use crate::net::{self, NetError, TcpConn};

/// A decoded reply: offsets into the bytes it was decoded from.
pub use redis_protocol::resp2::types::RangeFrame as Frame;

/// Decodes the reply at the start of `buf`: `None` while it is incomplete,
/// else the reply and how many bytes it took.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, String> {
    decode_range(buf).map_err(|e| e.to_string())
}

/// The default port of `redis://host`.
pub const DEFAULT_PORT: u16 = 6379;

/// Where a `redis://[user[:password]@]host[:port][/db]` URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
    pub db: Option<u32>,
}

impl Target {
    pub fn parse(s: &str) -> Result<Self, String> {
        let url = url::Url::parse(s).map_err(|e| format!("invalid redis url {s:?}: {e}"))?;
        if url.scheme() != "redis" {
            return Err(format!("invalid redis url {s:?}: the scheme must be redis://"));
        }
        let host = match url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(h) => h.to_string(),
            None => return Err(format!("invalid redis url {s:?}: no host")),
        };
        let decode = |p: &str| percent_encoding::percent_decode_str(p).decode_utf8_lossy().into_owned();
        let user = Some(url.username()).filter(|u| !u.is_empty()).map(decode);
        let password = url.password().map(decode);
        let db = match url.path().trim_start_matches('/') {
            "" => None,
            n => Some(n.parse().map_err(|_| format!("invalid redis url {s:?}: the path must be a database number"))?),
        };
        Ok(Self { host, port: url.port().unwrap_or(DEFAULT_PORT), user, password, db })
    }
}

/// What a Redis call can fail with.
#[derive(Debug)]
pub enum RedisError {
    /// The connection failed ("closed", "timeout", "refused", ...).
    Net(NetError),
    /// The server replied with an error ("ERR unknown command ...").
    Server(String),
    /// The server sent bytes that are not RESP; the connection is closed.
    Protocol(String),
    /// A reply larger than the connection's limit; the connection is closed.
    TooLong,
}

impl RedisError {
    /// Whether the connection is still usable afterwards.
    pub fn is_fatal(&self) -> bool {
        match self {
            RedisError::Net(e) => e.is_fatal(),
            RedisError::Server(_) => false,
            RedisError::Protocol(_) | RedisError::TooLong => true,
        }
    }
}

impl fmt::Display for RedisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisError::Net(e) => e.fmt(f),
            RedisError::Server(msg) => f.write_str(msg),
            RedisError::Protocol(why) => write!(f, "protocol error: {why}"),
            RedisError::TooLong => f.write_str("too long"),
        }
    }
}

impl From<NetError> for RedisError {
    fn from(e: NetError) -> Self {
        RedisError::Net(e)
    }
}

/// Appends one command (an array of bulk strings) to `out`.
pub fn encode_command<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    let parts: Vec<BorrowedFrame> = args.iter().map(|a| BorrowedFrame::BulkString(a.as_ref())).collect();
    let frame = BorrowedFrame::Array(&parts);
    let at = out.len();
    out.resize(at + frame.encode_len(false), 0);
    // The slice was sized by the codec's own length, so encoding cannot run short.
    let n = encode_borrowed(&mut out[at..], &frame, false).unwrap_or(0);
    out.truncate(at + n);
}

/// The bytes of a string-like frame (simple, bulk or error string).
pub fn text<'a>(buf: &'a [u8], frame: &Frame) -> Option<&'a [u8]> {
    match frame {
        Frame::SimpleString((s, e)) | Frame::BulkString((s, e)) | Frame::Error((s, e)) => buf.get(*s..*e),
        _ => None,
    }
}

/// A connection to a Redis server.
#[derive(Clone)]
pub struct RedisConn {
    pub conn: TcpConn,
    /// The largest reply accepted; past it the connection is closed.
    max_reply: usize,
}

impl RedisConn {
    /// Connects to the first of `addrs` that answers and logs in as the
    /// target says (AUTH, SELECT), all before `deadline`.
    pub async fn connect(
        target: &Target,
        addrs: &[SocketAddr],
        deadline: Option<Instant>,
        read_chunk: usize,
        max_reply: usize,
    ) -> Result<Self, RedisError> {
        let conn = Self { conn: net::dial(addrs, deadline, read_chunk, None).await?, max_reply };
        let login = async {
            if let Some(password) = &target.password {
                match &target.user {
                    Some(user) => conn.call(&[b"AUTH", user.as_bytes(), password.as_bytes()]).await?,
                    None => conn.call(&[b"AUTH", password.as_bytes()]).await?,
                }
            }
            if let Some(db) = target.db {
                conn.call(&[b"SELECT".as_slice(), db.to_string().as_bytes()]).await?;
            }
            Ok::<(), RedisError>(())
        };
        let logged_in = match deadline {
            None => login.await,
            Some(at) => compio::time::timeout_at(at, login).await.unwrap_or(Err(RedisError::Net(NetError::Timeout))),
        };
        if let Err(e) = logged_in {
            conn.conn.close();
            return Err(e);
        }
        Ok(conn)
    }

    /// Sends one command and waits for its reply, which must not be an error.
    pub async fn call<A: AsRef<[u8]>>(&self, args: &[A]) -> Result<(), RedisError> {
        let mut out = Vec::new();
        encode_command(&mut out, args);
        self.send(out).await?;
        self.reply(|buf, frame| match frame {
            Frame::Error(_) => Err(RedisError::Server(String::from_utf8_lossy(text(buf, frame).unwrap_or(b"")).into())),
            _ => Ok(()),
        })
        .await?
    }

    /// Writes encoded commands (see `encode_command`) in one go.
    pub async fn send(&self, out: Vec<u8>) -> Result<(), RedisError> {
        self.conn.write_staged(out).await.map(drop).map_err(|e| self.failed(e.into()))
    }

    /// Waits for the next reply and hands it to `f` with its bytes, which
    /// its ranges point into; what `f` returns is the result. The reply is
    /// consumed either way. A broken stream closes the connection.
    pub async fn reply<T>(&self, f: impl FnOnce(&[u8], &Frame) -> T) -> Result<T, RedisError> {
        let mut guard = self.conn.begin_read().map_err(|e| self.failed(e.into()))?;
        let mut want = 1;
        loop {
            let buf = match guard.peek(want).await {
                Ok(buf) => buf,
                Err(e) => {
                    drop(guard);
                    return Err(self.failed(e.into()));
                }
            };
            match decode(buf) {
                Ok(Some((frame, used))) => {
                    let out = f(&buf[..used], &frame);
                    guard.advance(used);
                    return Ok(out);
                }
                Ok(None) if buf.len() >= self.max_reply => {
                    drop(guard);
                    return Err(self.failed(RedisError::TooLong));
                }
                // Incomplete: wait for at least one more byte.
                Ok(None) => want = buf.len() + 1,
                Err(e) => {
                    drop(guard);
                    return Err(self.failed(RedisError::Protocol(e)));
                }
            }
        }
    }

    /// Closes the connection after an error it cannot go on from.
    fn failed(&self, e: RedisError) -> RedisError {
        if e.is_fatal() {
            self.conn.close();
        }
        e
    }
}

/// Whether a frame is an error reply.
pub fn is_error(frame: &Frame) -> bool {
    matches!(frame, Frame::Error(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("redis://127.0.0.1").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.db), ("127.0.0.1", 6379, None));
        let t = Target::parse("redis://me:s%40cret@[::1]:7000/3").unwrap();
        assert_eq!(t.host, "::1");
        assert_eq!((t.port, t.db), (7000, Some(3)));
        assert_eq!((t.user.as_deref(), t.password.as_deref()), (Some("me"), Some("s@cret")));
        let t = Target::parse("redis://:pw@localhost").unwrap();
        assert_eq!((t.user, t.password.as_deref()), (None, Some("pw")));
        assert!(Target::parse("http://x").is_err());
        assert!(Target::parse("redis://x/abc").is_err());
        assert!(Target::parse("nonsense").is_err());
    }

    #[test]
    fn commands_encode_as_resp_arrays_and_replies_decode_in_place() {
        let mut out = Vec::new();
        encode_command(&mut out, &["SET", "k", "v w"]);
        encode_command(&mut out, &[b"GET".as_slice(), b"k"]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv w\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
        let reply = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n+OK";
        let (frame, used) = decode_range(reply).unwrap().unwrap();
        assert_eq!(used, reply.len() - 3);
        let Frame::Array(parts) = frame else { panic!("array expected") };
        let texts: Vec<&[u8]> = parts.iter().filter_map(|p| text(reply, p)).collect();
        assert_eq!(texts, [b"message".as_slice(), b"ch", b"hello"]);
        assert!(decode_range(b"$5\r\nhel").unwrap().is_none());
        assert!(decode_range(b"?what\r\n").is_err());
    }
}
