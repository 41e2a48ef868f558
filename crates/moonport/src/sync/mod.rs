//! Coordination between coroutines of one worker.

mod channel;

pub use channel::{Channel, TryRecvError, TrySendError};
