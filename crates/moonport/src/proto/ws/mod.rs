//! WebSocket (RFC 6455): the frame format (`frame`), the opening handshake
//! (`handshake`), turning frames into messages with every receive-side rule
//! checked (`message`), and a session that runs them over a `TcpConn`
//! (`session`: pings answered, the close handshake, frames written whole),
//! and the optional permessage-deflate compression (`deflate`); `bridge`
//! pumps a session to and from a TCP connection (websockify's job).
//!
//! Only `session` and `bridge` do I/O; the others are pure and tested on bytes.

pub mod bridge;
pub mod deflate;
pub mod frame;
pub mod handshake;
pub mod message;
pub mod session;

pub use message::{Decoder, Event, Kind, Role};
pub use session::{Received, Session, WsError};

/// Close codes this implementation sends (RFC 6455 §7.4.1).
pub mod code {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL: u16 = 1002;
    pub const INVALID_DATA: u16 = 1007;
    pub const TOO_BIG: u16 = 1009;
    /// Also for a failed upstream: 1014 "Bad Gateway" would say it better,
    /// but browsers and libraries refuse it as unassigned.
    pub const INTERNAL: u16 = 1011;
}

/// Whether a peer may send `code` in a close frame: the registered codes
/// (1004-1006 and 1015 are reserved for reporting, never sent) and the
/// ranges for libraries (3000-3999) and applications (4000-4999).
pub fn close_code_valid(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A broken receive-side rule: the close code to answer with and a short
/// reason, which is also the error the script sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation {
    pub code: u16,
    pub reason: &'static str,
}

impl Violation {
    pub const fn protocol(reason: &'static str) -> Self {
        Self { code: code::PROTOCOL, reason }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason)
    }
}
