//! moonport: an engine for Lua-scripted network services on completion-based
//! I/O (io_uring on Linux, IOCP on Windows, through compio).
//!
//! # Layout
//!
//! Dependencies point down this list:
//!
//! - [`lua`]: the Lua API, one file per Lua module (`tcp.rs` is
//!   `moonport.tcp`). Converts values, maps errors to `nil, err`, and yields
//!   the calling coroutine while the core waits. Knows nothing of sockets.
//! - [`buf`]: byte buffers (bounded, cheaply sliced, shareable with the
//!   kernel for zero-copy writes) and typed decoding. Knows nothing of Lua.
//! - [`net`]: the networking core (connections with bounded buffered reads,
//!   the accept loop, error kinds). Knows nothing of Lua.
//! - [`tls`]: TLS sessions and their configurations (rustls); the record
//!   layer `net::TcpConn` runs a TLS connection's bytes through. Knows
//!   nothing of Lua or sockets.
//! - [`dns`]: asynchronous name resolution over the worker's own sockets
//!   (hosts file, resolv.conf, a per-worker cache). Knows nothing of Lua.
//! - [`room`]: pub/sub rooms shared by all workers, with bounded
//!   per-subscriber queues and slow-consumer policies. Knows nothing of Lua.
//!   A cluster room also spans processes and machines over Redis pub/sub
//!   (`room::cluster`, through [`redis`]).
//! - [`redis`]: a Redis connection (RESP through the `redis-protocol` crate)
//!   over `net`'s sockets, for `moonport.redis` and the cluster link.
//!   Knows nothing of Lua.
//! - [`sync`]: coordination between the coroutines of one worker
//!   (channels). Knows nothing of Lua.
//! - [`proto`]: protocol formats: URLs, HTTP/1.1 (requests, bodies,
//!   responses, static files, a client) and WebSocket (frames, handshake,
//!   message assembly). Knows nothing of Lua; the parsers are pure, and
//!   the few session files drive a `net::TcpConn`.
//! - [`engine`]: worker threads (one compio runtime and one Lua VM each),
//!   listener sharding across them, what keeps a worker alive, shutdown,
//!   the admin listener (`/metrics`, `/health`), and hot reload (a new
//!   Lua VM per worker, listeners handed over).
//! - [`metrics`]: process-wide counters, gauges and histograms (the
//!   script's and the engine's own per-worker statistics) and their
//!   Prometheus text. The layers above count into them.
//! - [`logging`]: log lines as text or JSON, carrying the worker and the
//!   connection's peer they come from (a context the layers above set).
//! - `platform`: the only place with `cfg(unix)` / `cfg(windows)`: socket
//!   options for sharding, fd limits, platform error codes.
//!
//! `main.rs` is the command line: `moonport run app.lua`, `moonport reload`.

pub mod buf;
pub mod dns;
pub mod engine;
pub mod logging;
pub mod lua;
pub mod metrics;
pub mod net;
mod platform;
pub mod proto;
pub mod redis;
pub mod room;
pub mod sync;
pub mod tls;
