//! A one-shot signal that any thread can fire and any task can await.
//!
//! Used for process shutdown (fired by the Ctrl-C handler, awaited by every
//! worker's accept loops) and for closing one listener from Lua.

use std::sync::atomic::{AtomicBool, Ordering};

use event_listener::Event;

#[derive(Debug, Default)]
pub struct Trigger {
    fired: AtomicBool,
    event: Event,
}

impl Trigger {
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires the trigger; returns true for the call that fired it first.
    pub fn fire(&self) -> bool {
        let first = !self.fired.swap(true, Ordering::SeqCst);
        self.event.notify(usize::MAX);
        first
    }

    pub fn is_fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// Completes once the trigger has fired (at once if it already has).
    pub async fn wait(&self) {
        loop {
            if self.is_fired() {
                return;
            }
            // Register before re-checking so a fire between check and listen is not missed.
            let listener = self.event.listen();
            if self.is_fired() {
                return;
            }
            listener.await;
        }
    }
}
