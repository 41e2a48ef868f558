//! HTTP/1.1: request heads parsed with `httparse` within limits (`request`)
//! and the server side that reads them from a `TcpConn` (`server`).

pub mod request;
pub mod server;

pub use request::{Head, HeadError, Limits};
