//! A worker's UDP sockets bound at fixed ports, which a reload hands to the
//! new version of the script, as `listeners` does for TCP: the new version's
//! `moonport.udp.bind` at the same address shares the socket instead of
//! failing with "address in use", so no datagram meets a closed port.
//!
//! While the reload is tried, the new handle's receives are held (the old
//! version still receives everything). At the commit the new handle starts
//! receiving and the old one stops; the old version's sends still work, so
//! replies it owes go out while it drains. At an abort the new handle goes
//! with its Lua state and the socket stays the old version's alone.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};

use compio::net::UdpSocket;

use crate::net::{Receives, UdpSock};

struct Bound {
    /// What `bind` asked for, which a later version's `bind` matches.
    requested: SocketAddr,
    generation: u64,
    sock: Weak<UdpSock>,
}

/// One worker's bound UDP sockets, shared by its generations.
#[derive(Default)]
pub struct Datagrams {
    all: RefCell<Vec<Bound>>,
}

impl Datagrams {
    /// An older generation's open socket bound at `requested`, for
    /// `generation` to share. Port 0 asks for a fresh port: never shared.
    pub fn take_over(&self, requested: SocketAddr, generation: u64) -> Option<UdpSocket> {
        if requested.port() == 0 {
            return None;
        }
        self.prune();
        self.all
            .borrow()
            .iter()
            .filter(|b| b.requested == requested && b.generation < generation)
            .filter_map(|b| b.sock.upgrade()?.socket().ok())
            .next()
    }

    /// Remembers a socket `generation` bound (or shares) at `requested`.
    pub fn add(&self, requested: SocketAddr, generation: u64, sock: &Rc<UdpSock>) {
        if requested.port() != 0 {
            self.all.borrow_mut().push(Bound { requested, generation, sock: Rc::downgrade(sock) });
        }
    }

    /// A reload succeeded: `generation`'s handles receive, and older
    /// handles on the same addresses stop.
    pub fn commit(&self, generation: u64) {
        self.prune();
        let all = self.all.borrow();
        for new in all.iter().filter(|b| b.generation == generation) {
            for old in all.iter().filter(|b| b.requested == new.requested && b.generation < generation) {
                if let Some(sock) = old.sock.upgrade() {
                    sock.set_receives(Receives::Stopped);
                }
            }
            if let Some(sock) = new.sock.upgrade() {
                sock.set_receives(Receives::Open);
            }
        }
    }

    /// Forgets sockets whose handles are gone (closed by a script or
    /// dropped with their Lua state).
    fn prune(&self) {
        self.all.borrow_mut().retain(|b| b.sock.upgrade().is_some_and(|s| !s.is_closed()));
    }
}
