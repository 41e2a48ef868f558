//! Agreement between workers on where each listener binds, and how its
//! connections are spread over them.
//!
//! Every worker runs the script, so every worker calls `listen` for the same
//! listeners in the same order. The first worker to reach a listener binds it
//! (which fixes the port when 0 was asked for) and records it; the others find
//! the record and either bind the same address into the same SO_REUSEPORT group,
//! or join the hand-off acceptor, depending on the sharding in force. A
//! reload's new generation counts its `listen` calls afresh; it binds here
//! only the addresses no older generation listens on (`Listeners` hands it
//! the others).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::net::{AcceptLoop, HandOff};
use crate::platform::{self, ListenOptions, Sharding};

/// What the first worker to bind a listener left for the others.
enum Shared {
    Port(SocketAddr),
    HandOff(Arc<HandOff>),
}

#[derive(Default)]
pub struct ListenRegistry {
    /// (script generation, n-th `listen` call of a worker in it, address
    /// asked for) → the bound listener.
    bound: Mutex<HashMap<(u64, usize, SocketAddr), Shared>>,
}

/// A listener as one worker sees it.
pub struct Bound {
    pub accept: AcceptLoop,
    pub addr: SocketAddr,
    /// True for the first worker to bind this listener (it logs the address).
    pub first: bool,
}

impl ListenRegistry {
    /// Binds, or joins, the `seq`-th listener of the calling worker's `generation`.
    pub fn bind(
        &self,
        sharding: Sharding,
        generation: u64,
        seq: usize,
        requested: SocketAddr,
        opts: ListenOptions,
    ) -> io::Result<Bound> {
        // Held across the bind so two workers never both bind port 0 anew.
        let mut bound = self.bound.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (generation, seq, requested);
        match (sharding, bound.get(&key)) {
            (Sharding::ReusePort, existing) => {
                let (addr, first) = match existing {
                    Some(Shared::Port(addr)) => (*addr, false),
                    _ => (requested, true),
                };
                let socket = platform::bind_listener(addr, ListenOptions { shared: true, ..opts })?;
                let addr = socket.local_addr()?;
                if first {
                    bound.insert(key, Shared::Port(addr));
                }
                Ok(Bound { accept: AcceptLoop::socket(socket)?, addr, first })
            }
            (Sharding::HandOff, Some(Shared::HandOff(handoff))) => {
                Ok(Bound { accept: AcceptLoop::HandOff(handoff.join()), addr: handoff.local_addr(), first: false })
            }
            (Sharding::HandOff, _) => {
                let socket = platform::bind_listener(requested, ListenOptions { shared: false, ..opts })?;
                let handoff = HandOff::start(socket)?;
                bound.insert(key, Shared::HandOff(handoff.clone()));
                Ok(Bound { accept: AcceptLoop::HandOff(handoff.join()), addr: handoff.local_addr(), first: true })
            }
        }
    }
}
