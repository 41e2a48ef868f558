//! Networking core: TCP connections, listeners and their errors, on compio.
//!
//! Nothing here knows about Lua; the bindings in `crate::lua` wrap these types.

mod error;
mod handoff;
mod listener;
mod relay;
mod tcp;

pub use error::NetError;
pub use handoff::HandOff;
pub use listener::{AcceptLoop, resolve_listen_addr};
pub use relay::{RelayEnd, RelayOptions, RelayOutcome, pipe, relay};
pub use tcp::{ReadGuard, TcpConn, Timeouts, connect};
