//! The errors a network operation reports, with the short strings scripts see
//! (`nil, "timeout"`), in the style of OpenResty's cosockets.

use std::fmt;
use std::io;

#[derive(Debug)]
pub enum NetError {
    /// The connection was closed locally, or by the peer in a way that ends
    /// both directions.
    Closed,
    /// The peer finished sending (end of stream). Reads say "closed" from now
    /// on, but the connection stays open for writing: a half-close.
    Eof,
    /// The peer reset the connection.
    Reset,
    /// The operation's deadline passed.
    Timeout,
    /// Nobody listens at the address connected to.
    Refused,
    /// Another coroutine is already reading this connection.
    Busy,
    /// A delimited read found no delimiter within its limit; says what was too long.
    TooLong(&'static str),
    /// The call does not fit the socket's state ("not connected", ...).
    Invalid(&'static str),
    /// A datagram was larger than the receive limit.
    Truncated,
    /// The TLS layer failed (a bad certificate, a protocol error), as rustls says it.
    Tls(String),
    /// Any other I/O failure, described by the OS.
    Io(io::Error),
}

impl NetError {
    /// Whether the connection can still be used after this error.
    pub fn is_fatal(&self) -> bool {
        !matches!(
            self,
            NetError::Eof
                | NetError::Timeout
                | NetError::Busy
                | NetError::TooLong(_)
                | NetError::Truncated
                | NetError::Invalid(_)
        )
    }
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NetError::Closed | NetError::Eof => "closed",
            NetError::Reset => "reset",
            NetError::Timeout => "timeout",
            NetError::Refused => "refused",
            NetError::Busy => "busy",
            NetError::TooLong(what) | NetError::Invalid(what) => what,
            NetError::Truncated => "truncated",
            NetError::Tls(why) => return write!(f, "tls: {why}"),
            NetError::Io(e) => return io_message(e, f),
        })
    }
}

fn io_message(e: &io::Error, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    use io::ErrorKind::*;
    match crate::platform::error_kind(e) {
        HostUnreachable | NetworkUnreachable => f.write_str("unreachable"),
        AddrInUse => f.write_str("address in use"),
        AddrNotAvailable => f.write_str("address not available"),
        PermissionDenied => f.write_str("permission denied"),
        Unsupported => f.write_str("not supported"),
        _ if crate::platform::is_message_too_long(e) => f.write_str("message too long"),
        _ => write!(f, "{e}"),
    }
}

impl std::error::Error for NetError {}

impl From<io::Error> for NetError {
    fn from(e: io::Error) -> Self {
        use io::ErrorKind::*;
        match crate::platform::error_kind(&e) {
            ConnectionReset => NetError::Reset,
            // WriteZero: a send that took none of a non-empty buffer, which is how
            // a send on a reset connection completes under Wine (docs/windows.md).
            BrokenPipe | ConnectionAborted | NotConnected | UnexpectedEof | WriteZero => NetError::Closed,
            TimedOut => NetError::Timeout,
            ConnectionRefused => NetError::Refused,
            _ => NetError::Io(e),
        }
    }
}
