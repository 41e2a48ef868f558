//! Moving bytes between two connections inside Rust, with no Lua per chunk:
//! the core of `moonport.relay` and `conn:pipe_to`.
//!
//! Each direction hands the source's read buffer straight to the write on
//! the other side (no copy), waits for it, and reads again. End of stream on
//! one side half-closes the other (shutdown of its sending side), so
//! protocols that signal "done" by closing keep working through the relay.

use std::cell::Cell;
use std::pin::pin;
use std::time::{Duration, Instant};

use compio::buf::{IntoInner, IoBuf};
use futures_util::future::{Either, select};

use super::tcp::BULK_READ;
use super::{NetError, TcpConn};

#[derive(Debug, Clone, Copy, Default)]
pub struct RelayOptions {
    /// End when no byte has moved either way for this long.
    pub idle_timeout: Option<Duration>,
    /// End once this many bytes have moved in one direction.
    pub max_bytes: Option<u64>,
}

/// Why a relay ended.
#[derive(Debug)]
pub enum RelayEnd {
    /// Every direction reached end of stream.
    Eof,
    Idle,
    Limit,
    Error(NetError),
}

impl std::fmt::Display for RelayEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RelayEnd::Eof => f.write_str("eof"),
            RelayEnd::Idle => f.write_str("idle"),
            RelayEnd::Limit => f.write_str("limit"),
            RelayEnd::Error(e) => e.fmt(f),
        }
    }
}

/// Byte counts of a finished relay, and why it ended.
#[derive(Debug)]
pub struct RelayOutcome {
    pub forward: u64,
    pub backward: u64,
    pub end: RelayEnd,
}

/// Shared by the directions of one relay.
struct Progress {
    last_activity: Cell<Instant>,
    max_bytes: Option<u64>,
}

/// Pumps `src` → `dst` until end of stream (then half-closes `dst`).
async fn pump(src: &TcpConn, dst: &TcpConn, moved: &Cell<u64>, progress: &Progress) -> Result<(), RelayEnd> {
    let mut guard = src.begin_read().map_err(RelayEnd::Error)?;
    guard.reads_up_to(BULK_READ);
    let _sending = dst.lock_writer().await;
    loop {
        match guard.peek(1).await {
            Ok(_) => {}
            Err(NetError::Eof) => {
                // End of stream: pass it on, and let the other direction finish.
                return dst.shutdown_locked().await.map_err(RelayEnd::Error);
            }
            Err(e) => return Err(RelayEnd::Error(e)),
        }
        let (vec, start) = guard.take_vec();
        let n = (vec.len() - start) as u64;
        let slice = dst.send_all(vec.slice(start..)).await.map_err(RelayEnd::Error)?;
        guard.restore_vec(slice.into_inner());
        moved.set(moved.get() + n);
        progress.last_activity.set(Instant::now());
        if progress.max_bytes.is_some_and(|max| moved.get() >= max) {
            return Err(RelayEnd::Limit);
        }
    }
}

/// Completes when nothing has moved for `idle` since `last_activity`; never
/// without a timeout. The WebSocket bridge watches its directions with it too.
pub(crate) async fn idle_watch(idle: Option<Duration>, last_activity: &Cell<Instant>) {
    let Some(idle) = idle else { return std::future::pending().await };
    loop {
        let quiet_until = last_activity.get() + idle;
        if Instant::now() >= quiet_until {
            return;
        }
        compio::time::sleep_until(quiet_until).await;
    }
}

/// Relays both ways between `a` and `b` until both directions end, one
/// fails, the relay idles out, or a direction reaches `max_bytes`.
pub async fn relay(a: &TcpConn, b: &TcpConn, opts: RelayOptions) -> RelayOutcome {
    let (forward, backward) = (Cell::new(0), Cell::new(0));
    let progress = Progress { last_activity: Cell::new(Instant::now()), max_bytes: opts.max_bytes };
    let both = async {
        let ab = pin!(pump(a, b, &forward, &progress));
        let ba = pin!(pump(b, a, &backward, &progress));
        // The first direction to end decides, unless it ended cleanly.
        let rest = match select(ab, ba).await {
            Either::Left((Ok(()), rest)) => Either::Left(rest),
            Either::Right((Ok(()), rest)) => Either::Right(rest),
            Either::Left((Err(e), _)) | Either::Right((Err(e), _)) => return e,
        };
        match rest.await {
            Ok(()) => RelayEnd::Eof,
            Err(e) => e,
        }
    };
    let end = match select(pin!(both), pin!(idle_watch(opts.idle_timeout, &progress.last_activity))).await {
        Either::Left((end, _)) => end,
        Either::Right(((), _)) => RelayEnd::Idle,
    };
    RelayOutcome { forward: forward.get(), backward: backward.get(), end }
}

/// One way only: `src` → `dst` until end of stream.
pub async fn pipe(src: &TcpConn, dst: &TcpConn, opts: RelayOptions) -> (u64, RelayEnd) {
    let moved = Cell::new(0);
    let progress = Progress { last_activity: Cell::new(Instant::now()), max_bytes: opts.max_bytes };
    let one = pin!(pump(src, dst, &moved, &progress));
    let end = match select(one, pin!(idle_watch(opts.idle_timeout, &progress.last_activity))).await {
        Either::Left((Ok(()), _)) => RelayEnd::Eof,
        Either::Left((Err(e), _)) => e,
        Either::Right(((), _)) => RelayEnd::Idle,
    };
    (moved.get(), end)
}
