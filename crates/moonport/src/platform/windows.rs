//! Windows backend of the platform boundary: no SO_REUSEPORT, so one listener
//! hands accepted sockets to the workers; handles are limited by memory, not a
//! per-process table.

use std::io;

use super::Sharding;

pub const SHARDING: Sharding = Sharding::HandOff;

pub fn prepare_listener(socket: &socket2::Socket, _shared: bool) -> io::Result<()> {
    // SO_EXCLUSIVEADDRUSE semantics are the safe default on Windows: never let
    // another process steal the port, so no SO_REUSEADDR here.
    let _ = socket;
    Ok(())
}

pub fn is_fd_exhausted(err: &io::Error) -> bool {
    // WSAEMFILE (10024) and WSAENOBUFS (10055): out of socket handles or buffers.
    matches!(err.raw_os_error(), Some(10024) | Some(10055))
}

pub fn raise_fd_limit() -> Option<u64> {
    None
}
