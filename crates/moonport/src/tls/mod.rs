//! TLS for TCP connections, on rustls with the `ring` provider (pure Rust
//! and assembly, so the Windows build needs no extra C toolchain).
//!
//! - [`config`] builds rustls configurations from the options scripts give
//!   (PEM certificates and keys as files or inline text, a custom CA, client
//!   certificate verification, ALPN) and caches client ones per worker.
//! - [`session`] is the record layer one connection runs its bytes through:
//!   `net::TcpConn` feeds it what arrives and sends what it produces, so a
//!   TLS connection reads, writes, relays and times out like a plain one.
//!
//! Knows nothing of Lua.

mod config;
mod session;

pub use config::{ClientAuth, ClientSettings, ServerSettings, client_config, server_config};
pub use session::{TlsInfo, TlsSession};

/// A client session to `name` with the configuration `s` describes (built
/// once per worker and reused).
pub fn client_session(s: &ClientSettings, name: &str) -> Result<TlsSession, String> {
    TlsSession::client(client_config(s)?, name)
}
