//! A bounded channel between tasks of one worker: `send` waits while it is
//! full, `recv` while it is empty; closing wakes everyone. Single-threaded
//! (it carries Lua values, which never leave their worker).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use event_listener::Event;

pub struct Channel<T> {
    queue: RefCell<VecDeque<T>>,
    capacity: usize,
    closed: Cell<bool>,
    /// Something was queued, or the channel closed.
    readable: Event,
    /// Room was made, or the channel closed.
    writable: Event,
}

#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError<T> {
    Full(T),
    Closed(T),
}

#[derive(Debug, PartialEq, Eq)]
pub enum TryRecvError {
    Empty,
    Closed,
}

impl<T> Channel<T> {
    pub fn new(capacity: usize) -> Self {
        Self {
            queue: RefCell::new(VecDeque::new()),
            capacity: capacity.max(1),
            closed: Cell::new(false),
            readable: Event::new(),
            writable: Event::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.queue.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// No more sends; receivers still get what is queued, then `Closed`.
    pub fn close(&self) {
        self.closed.set(true);
        self.readable.notify(usize::MAX);
        self.writable.notify(usize::MAX);
    }

    pub fn try_send(&self, v: T) -> Result<(), TrySendError<T>> {
        if self.closed.get() {
            return Err(TrySendError::Closed(v));
        }
        let mut q = self.queue.borrow_mut();
        if q.len() >= self.capacity {
            return Err(TrySendError::Full(v));
        }
        q.push_back(v);
        drop(q);
        self.readable.notify(1);
        Ok(())
    }

    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let v = self.queue.borrow_mut().pop_front();
        match v {
            Some(v) => {
                self.writable.notify(1);
                Ok(v)
            }
            None if self.closed.get() => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Waits for room; `Err(v)` gives the value back if the channel closed.
    pub async fn send(&self, mut v: T) -> Result<(), T> {
        loop {
            match self.try_send(v) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(back)) => return Err(back),
                Err(TrySendError::Full(back)) => v = back,
            }
            let listener = self.writable.listen();
            if self.closed.get() || self.len() < self.capacity {
                continue;
            }
            listener.await;
        }
    }

    /// Waits for a value; `None` once the channel is closed and drained.
    pub async fn recv(&self) -> Option<T> {
        loop {
            match self.try_recv() {
                Ok(v) => return Some(v),
                Err(TryRecvError::Closed) => return None,
                Err(TryRecvError::Empty) => {}
            }
            let listener = self.readable.listen();
            if !self.is_empty() || self.closed.get() {
                continue;
            }
            listener.await;
        }
    }

    /// Completes when a `recv` would not wait (a value, or the close).
    pub async fn ready(&self) {
        while self.is_empty() && !self.closed.get() {
            let listener = self.readable.listen();
            if !self.is_empty() || self.closed.get() {
                return;
            }
            listener.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_fifo_with_close() {
        let ch = Channel::new(2);
        assert_eq!(ch.try_send(1), Ok(()));
        assert_eq!(ch.try_send(2), Ok(()));
        assert_eq!(ch.try_send(3), Err(TrySendError::Full(3)));
        assert_eq!(ch.try_recv(), Ok(1));
        ch.close();
        assert_eq!(ch.try_send(4), Err(TrySendError::Closed(4)));
        assert_eq!(ch.try_recv(), Ok(2));
        assert_eq!(ch.try_recv(), Err(TryRecvError::Closed));
    }

    #[test]
    fn send_waits_for_room_and_recv_for_values() {
        compio::runtime::Runtime::new().expect("runtime").block_on(async {
            let ch = std::rc::Rc::new(Channel::new(1));
            let producer = {
                let ch = ch.clone();
                compio::runtime::spawn(async move {
                    for i in 0..100 {
                        ch.send(i).await.expect("open");
                    }
                    ch.close();
                })
            };
            let mut got = Vec::new();
            while let Some(v) = ch.recv().await {
                got.push(v);
            }
            let _ = producer.await;
            assert_eq!(got, (0..100).collect::<Vec<_>>());
        });
    }
}
