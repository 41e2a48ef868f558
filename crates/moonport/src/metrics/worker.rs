//! The engine's own statistics of one worker: connections, bytes, Lua
//! errors, room drops, coroutines.
//!
//! Only the worker's own thread writes them (relaxed atomic adds on memory no
//! other thread writes, so they cost about what a plain add does); a scrape
//! reads them from another thread. The networking core finds its worker's
//! statistics through a thread-local set when the worker starts, so no
//! connection needs to carry a handle; threads that are not workers (the
//! admin listener, the hand-off acceptor) count nothing.

use std::cell::OnceCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct WorkerStats {
    /// 1-based, as Lua counts.
    pub id: usize,
    pub accepted: Count,
    /// TCP connections (accepted and dialled) not yet closed.
    pub open: Count,
    pub bytes_received: Count,
    pub bytes_sent: Count,
    /// Coroutines that ended with a Lua error.
    pub lua_errors: Count,
    /// Room messages a subscriber's queue policy dropped, counted on the
    /// publishing worker.
    pub room_dropped: Count,
    pub coroutines: Count,
}

/// One statistic.
#[derive(Debug, Default)]
pub struct Count(AtomicU64);

impl Count {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn sub(&self, n: u64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }

    pub fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

thread_local! {
    static CURRENT: OnceCell<Arc<WorkerStats>> = const { OnceCell::new() };
}

impl WorkerStats {
    pub fn new(id: usize) -> Arc<Self> {
        Arc::new(Self { id, ..Self::default() })
    }

    /// Makes these the statistics that this thread's work counts into.
    pub fn install(self: &Arc<Self>) {
        CURRENT.with(|c| {
            let _ = c.set(self.clone());
        });
    }
}

/// Runs `f` on this thread's worker statistics; does nothing off a worker.
pub fn with_worker(f: impl FnOnce(&WorkerStats)) {
    // `try_with`: a connection may close while the thread's locals are torn down.
    let _ = CURRENT.try_with(|c| {
        if let Some(stats) = c.get() {
            f(stats);
        }
    });
}
