//! Counts what keeps a worker alive: its main chunk, spawned tasks, open
//! listeners and connections being served.
//!
//! A worker whose count falls to zero has nothing left to do and exits; this is
//! how a client script ends by itself, and how a graceful shutdown knows that
//! every connection has finished.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::{Poll, Waker};

#[derive(Debug, Default)]
pub struct Activity {
    count: Cell<usize>,
    /// Wakers of tasks waiting for the count to reach zero.
    idle_waiters: RefCell<Vec<Waker>>,
}

/// Keeps the worker alive while held.
#[derive(Debug)]
pub struct Hold(Rc<Activity>);

impl Activity {
    pub fn new() -> Rc<Self> {
        Rc::new(Self::default())
    }

    pub fn hold(self: &Rc<Self>) -> Hold {
        self.count.set(self.count.get() + 1);
        Hold(self.clone())
    }

    /// Completes when nothing holds the worker any more.
    pub async fn idle(&self) {
        std::future::poll_fn(|cx| {
            if self.count.get() == 0 {
                Poll::Ready(())
            } else {
                self.idle_waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let left = self.0.count.get() - 1;
        self.0.count.set(left);
        if left == 0 {
            for waker in self.0.idle_waiters.take() {
                waker.wake();
            }
        }
    }
}
