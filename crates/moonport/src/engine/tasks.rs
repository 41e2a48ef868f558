//! The coroutines of one script generation on a worker, kept so that the end
//! of a reload's drain can cancel the ones still running.
//!
//! Each task is spawned detached from the caller but its handle stays here
//! until it ends; `cancel_all` drops the handles, which cancels the tasks
//! (the runtime drops their futures, and with them their Lua coroutines and
//! the worker's holds they kept).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;

#[derive(Default)]
pub struct TaskSet {
    next_id: Cell<u64>,
    live: RefCell<HashMap<u64, compio::runtime::JoinHandle<()>>>,
    /// Set by `cancel_all`: later spawns are refused.
    cancelled: Cell<bool>,
}

impl TaskSet {
    pub fn new() -> Rc<Self> {
        Rc::new(Self::default())
    }

    /// Spawns `task` on the worker's runtime as a member of this set; once
    /// the set has been cancelled, `task` is dropped unrun.
    pub fn spawn(self: &Rc<Self>, task: impl Future<Output = ()> + 'static) {
        if self.cancelled.get() {
            return;
        }
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        // Weak: the handle lives in the set, so a strong reference from the
        // task back to the set would keep both alive forever.
        let set = Rc::downgrade(self);
        let handle = compio::runtime::spawn(async move {
            task.await;
            if let Some(handle) = set.upgrade().and_then(|set| set.live.borrow_mut().remove(&id)) {
                handle.detach();
            }
        });
        // The task has not run yet (spawning only schedules it), so it cannot
        // have tried to remove itself before this insert.
        self.live.borrow_mut().insert(id, handle);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.get()
    }

    /// Cancels every task still running; returns how many there were.
    pub fn cancel_all(&self) -> usize {
        self.cancelled.set(true);
        let live = self.live.take();
        let n = live.len();
        drop(live);
        n
    }
}
