//! The measured window of a run, shared by the load threads and the main
//! thread: every load thread connects its share, then all start on the same
//! instant, and the main thread samples the generator's CPU use over exactly
//! that window.

use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

/// Warm-up end and run end.
#[derive(Clone, Copy)]
pub(crate) struct Window {
    pub(crate) warm_end: Instant,
    pub(crate) end: Instant,
}

impl Window {
    pub(crate) fn new(start: Instant, warmup: Duration, duration: Duration) -> Self {
        Self { warm_end: start + warmup, end: start + warmup + duration }
    }

    /// On the main thread: sleeps through the window and returns the
    /// process's CPU use over its measured part, in % of one core.
    pub(crate) fn cpu_pct(&self) -> Option<f64> {
        let from = crate::cpu::sample_at(self.warm_end);
        crate::cpu::sample_at(self.end).pct_since(&from)
    }
}

/// Where the load threads wait for each other and for the main thread.
pub(crate) struct Gate {
    /// Every load thread and the main thread meet here once connected.
    connected: Barrier,
    /// ... and here once the main thread has fixed the start.
    go: Barrier,
    start: Mutex<Option<Instant>>,
}

impl Gate {
    pub(crate) fn new(threads: usize) -> Self {
        Self { connected: Barrier::new(threads + 1), go: Barrier::new(threads + 1), start: Mutex::new(None) }
    }

    /// On a load thread, once its connections are open (or failed: it must
    /// come here in any case): waits for the others and returns the start.
    pub(crate) fn wait(&self) -> Instant {
        self.connected.wait();
        self.go.wait();
        self.start.lock().unwrap_or_else(|p| p.into_inner()).unwrap_or_else(Instant::now)
    }

    /// On the main thread: waits until every load thread has connected, then
    /// starts the run now.
    pub(crate) fn open(&self) -> Instant {
        self.connected.wait();
        let start = Instant::now();
        *self.start.lock().unwrap_or_else(|p| p.into_inner()) = Some(start);
        self.go.wait();
        start
    }
}
