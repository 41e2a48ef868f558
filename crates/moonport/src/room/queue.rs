//! One subscriber's bounded queue, shared between the publishing workers and
//! the worker that receives.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use event_listener::Event;

use crate::buf::Chunk;
use crate::metrics::with_worker;

/// What to do with a message that does not fit in a full queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Drop the oldest queued messages to make room.
    DropOldest,
    /// Drop everything queued and keep only the newest (a viewer skips to
    /// the latest frame).
    KeepLatest,
    /// End the subscription: the subscriber is too slow to keep.
    Disconnect,
}

/// How much one subscriber may have queued.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub messages: usize,
    pub bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { messages: 64, bytes: 8 << 20 }
    }
}

/// What a receive found.
pub enum Recv {
    Message(Chunk),
    /// The subscription was closed (by its owner, or the room went away).
    Closed,
    /// The `Disconnect` policy ended the subscription.
    Overflow,
}

struct Queue {
    messages: VecDeque<Chunk>,
    bytes: usize,
}

pub struct Subscription {
    queue: Mutex<Queue>,
    limits: Limits,
    policy: Policy,
    missed: AtomicU64,
    closed: AtomicBool,
    overflowed: AtomicBool,
    /// Wakes the receiver when a message arrives or the subscription ends.
    ready: Event,
}

impl Subscription {
    pub fn new(limits: Limits, policy: Policy) -> Self {
        Self {
            queue: Mutex::new(Queue { messages: VecDeque::new(), bytes: 0 }),
            limits: Limits { messages: limits.messages.max(1), bytes: limits.bytes },
            policy,
            missed: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            overflowed: AtomicBool::new(false),
            ready: Event::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Messages dropped by the policy so far.
    pub fn missed(&self) -> u64 {
        self.missed.load(Ordering::Relaxed)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.lock().messages.clear();
        self.ready.notify(usize::MAX);
    }

    /// Queues a message, applying the policy when full; false if the
    /// subscription is (or just became) closed.
    pub(super) fn push(&self, msg: Chunk) -> bool {
        if self.is_closed() {
            return false;
        }
        let len = msg.as_slice().len();
        let mut q = self.lock();
        let fits = |q: &Queue| {
            q.messages.is_empty() || (q.messages.len() < self.limits.messages && q.bytes + len <= self.limits.bytes)
        };
        if !fits(&q) {
            match self.policy {
                Policy::Disconnect => {
                    // The message that did not fit, and the queue `close` clears.
                    let dropped = q.messages.len() as u64 + 1;
                    with_worker(|s| s.room_dropped.add(dropped));
                    drop(q);
                    self.overflowed.store(true, Ordering::Release);
                    self.close();
                    return false;
                }
                Policy::KeepLatest => {
                    self.missed.fetch_add(q.messages.len() as u64, Ordering::Relaxed);
                    with_worker(|s| s.room_dropped.add(q.messages.len() as u64));
                    q.messages.clear();
                    q.bytes = 0;
                }
                Policy::DropOldest => {
                    while !fits(&q) {
                        let Some(old) = q.messages.pop_front() else { break };
                        q.bytes -= old.as_slice().len();
                        self.missed.fetch_add(1, Ordering::Relaxed);
                        with_worker(|s| s.room_dropped.add(1));
                    }
                }
            }
        }
        q.bytes += len;
        q.messages.push_back(msg);
        drop(q);
        self.ready.notify(1);
        true
    }

    /// The next message if one is queued, the end if the subscription has
    /// ended, or `None` to wait.
    pub fn try_recv(&self) -> Option<Recv> {
        if let Some(msg) = {
            let mut q = self.lock();
            let msg = q.messages.pop_front();
            if let Some(m) = &msg {
                q.bytes -= m.as_slice().len();
            }
            msg
        } {
            return Some(Recv::Message(msg));
        }
        if self.overflowed.load(Ordering::Acquire) {
            Some(Recv::Overflow)
        } else if self.is_closed() {
            Some(Recv::Closed)
        } else {
            None
        }
    }

    /// Completes when a receive would not wait (a message, or the end).
    pub async fn ready(&self) {
        loop {
            let listener = self.ready.listen();
            if !self.lock().messages.is_empty() || self.is_closed() {
                return;
            }
            listener.await;
        }
    }

    /// Completes once the subscription has ended (closed, or by its policy).
    pub async fn ended(&self) {
        while !self.is_closed() {
            let listener = self.ready.listen();
            if self.is_closed() {
                return;
            }
            listener.await;
        }
    }

    /// Waits for the next message or the end of the subscription.
    pub async fn recv(&self) -> Recv {
        loop {
            if let Some(r) = self.try_recv() {
                return r;
            }
            // Listen before checking again, so a push in between is not missed.
            let listener = self.ready.listen();
            if let Some(r) = self.try_recv() {
                return r;
            }
            listener.await;
        }
    }
}
