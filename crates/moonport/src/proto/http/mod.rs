//! HTTP/1.1: request heads parsed with `httparse` within limits (`request`),
//! body framing and the chunked coding (`body`), responses as they are
//! written (`response`), static files (`files`), the server side on a
//! `TcpConn` (`server`) and a small client (`client`).

pub mod body;
pub mod client;
pub mod files;
pub mod request;
pub mod response;
pub mod server;

pub use request::{Head, HeadError, Limits};
