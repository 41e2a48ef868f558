//! Protocol cores: parsing and building the formats scripts speak. Nothing
//! here knows about Lua. The formats themselves are pure functions on bytes;
//! the few files that do I/O (`ws/session.rs`, `http/server.rs`) drive a
//! `net::TcpConn` through its read and write calls.

pub mod http;
pub mod url;
pub mod ws;
