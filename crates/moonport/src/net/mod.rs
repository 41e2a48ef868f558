//! Networking core: TCP connections and listeners, UDP sockets, Berkeley-style
//! sockets, address translation and socket options, on compio.
//!
//! Nothing here knows about Lua; the bindings in `crate::lua` wrap these types.

pub mod addr;
mod error;
mod handoff;
mod listener;
mod options;
mod relay;
mod socket;
mod tcp;
mod udp;

pub use error::NetError;
pub use handoff::HandOff;
pub use listener::{AcceptLoop, resolve_listen_addr};
pub use options::{OptKind, OptValue, SockOpt};
pub(crate) use relay::idle_watch;
pub use relay::{RelayEnd, RelayOptions, RelayOutcome, pipe, relay};
pub use socket::{Socket, SocketKind};
pub use tcp::{BULK_READ, ReadGuard, TcpConn, Timeouts, connect, dial};
pub use udp::{Datagram, MAX_DATAGRAM, Receives, UdpSock};
