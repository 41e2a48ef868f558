//! Agreement between workers on where each listener binds.
//!
//! Every worker runs the script, so every worker calls `listen` for the same
//! listeners in the same order. The first worker to bind a listener records
//! the address it got (which matters for port 0), and the others bind that same
//! address, so all of them join one SO_REUSEPORT group and the kernel spreads
//! connections over the workers.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;

use crate::platform::{self, ListenOptions};

#[derive(Debug, Default)]
pub struct ListenRegistry {
    /// (n-th `listen` call of a worker, address asked for) → address bound.
    bound: Mutex<HashMap<(usize, SocketAddr), SocketAddr>>,
}

/// A socket bound for one worker.
pub struct Bound {
    pub socket: std::net::TcpListener,
    pub addr: SocketAddr,
    /// True for the first worker to bind this listener (it logs the address).
    pub first: bool,
}

impl ListenRegistry {
    /// Binds the `seq`-th listener of the calling worker.
    pub fn bind(&self, seq: usize, requested: SocketAddr, opts: ListenOptions) -> io::Result<Bound> {
        // Held across the bind so two workers never both bind port 0 anew.
        let mut bound = self.bound.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (seq, requested);
        let (addr, first) = match bound.get(&key) {
            Some(addr) => (*addr, false),
            None => (requested, true),
        };
        let socket = platform::bind_listener(addr, ListenOptions { shared: true, ..opts })?;
        let addr = socket.local_addr()?;
        if first {
            bound.insert(key, addr);
        }
        Ok(Bound { socket, addr, first })
    }
}
