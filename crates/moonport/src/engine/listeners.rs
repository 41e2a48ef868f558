//! A worker's listening sockets, which outlive script generations: a reload
//! hands each socket to the new generation instead of closing and binding
//! again, so there is no moment where connections are refused.
//!
//! A listener is served by one generation at a time (its *claim*: the
//! connection handler, and a hold on that generation's activity). A `listen`
//! of a newer generation at the same requested address takes the socket
//! over; while a reload is only being tried, the new claim waits beside the
//! current one and takes over at the commit (or is dropped at an abort). The
//! accept loop runs on the worker and looks up the current claim for each
//! connection, so it never stops during a hand-over.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;

use compio::net::TcpStream;
use futures_util::future::select;

use super::{Bound, Engine, Hold, Trigger, WorkerCtx};
use crate::net::AcceptLoop;
use crate::platform::ListenOptions;

/// What a generation does with an accepted connection.
pub type OnConn = Rc<dyn Fn(TcpStream, SocketAddr)>;

/// A generation's right to a listener's connections.
struct Claim {
    generation: u64,
    on_conn: OnConn,
    /// The generation lives while it serves a listener.
    _hold: Hold,
}

pub struct Listener {
    /// What `listen` asked for, which a later generation's `listen` matches.
    requested: SocketAddr,
    pub addr: SocketAddr,
    /// The generation serving its connections now.
    current: RefCell<Option<Claim>>,
    /// A generation being tried by a reload, which takes over at the commit.
    next: RefCell<Option<Claim>>,
    /// The socket (or hand-off queue) until its accept loop starts.
    accept: RefCell<Option<AcceptLoop>>,
    stop: Trigger,
}

/// One worker's listeners.
#[derive(Default)]
pub struct Listeners {
    all: RefCell<Vec<Rc<Listener>>>,
}

impl Listener {
    fn claimed_by(&self, generation: u64) -> bool {
        let by = |c: &RefCell<Option<Claim>>| c.borrow().as_ref().is_some_and(|c| c.generation == generation);
        by(&self.current) || by(&self.next)
    }

    /// Gives up `generation`'s claim (the script closed its listener); the
    /// socket closes when no generation is left to serve it. False when
    /// `generation` had no claim.
    pub fn release(&self, generation: u64) -> bool {
        let released = [&self.current, &self.next].into_iter().any(|slot| {
            let mine = slot.borrow().as_ref().is_some_and(|c| c.generation == generation);
            mine && slot.take().is_some()
        });
        if self.current.borrow().is_none() && self.next.borrow().is_none() {
            self.close();
        }
        released
    }

    fn close(&self) {
        self.stop.fire();
        // A socket whose accept loop never started closes here.
        self.accept.take();
    }

    fn dispatch(&self, stream: TcpStream, peer: SocketAddr) {
        // Cloned out, so the handler may release the claim.
        let on_conn = self.current.borrow().as_ref().map(|c| c.on_conn.clone());
        // With no generation serving it (closed midway through a reload), the
        // connection is dropped, which closes it.
        if let Some(on_conn) = on_conn {
            on_conn(stream, peer);
        }
    }
}

impl Listeners {
    /// Serves connections to `requested` with `on_conn` in `ctx`'s
    /// generation: takes over the socket an older generation listens on at
    /// the same requested address, or binds a new one. The bool is true when
    /// this call bound the address first in the process (it logs it).
    pub fn listen(
        &self,
        ctx: &WorkerCtx,
        requested: SocketAddr,
        opts: ListenOptions,
        on_conn: OnConn,
    ) -> io::Result<(Rc<Listener>, bool)> {
        let generation = ctx.generation.number;
        let pending = ctx.pending.get();
        let claim = Claim { generation, on_conn, _hold: ctx.activity.hold() };
        self.all.borrow_mut().retain(|l| !l.stop.is_fired());
        let older = self.all.borrow().iter().find(|l| l.requested == requested && !l.claimed_by(generation)).cloned();
        if let Some(listener) = older {
            let slot = if pending { &listener.next } else { &listener.current };
            slot.replace(Some(claim));
            return Ok((listener, false));
        }
        let seq = ctx.listen_seq.get();
        let Bound { accept, addr, first } =
            ctx.engine.ports.bind(ctx.engine.config.sharding, generation, seq, requested, opts)?;
        let (current, next) = if pending { (None, Some(claim)) } else { (Some(claim), None) };
        let listener = Rc::new(Listener {
            requested,
            addr,
            current: RefCell::new(current),
            next: RefCell::new(next),
            accept: RefCell::new(Some(accept)),
            stop: Trigger::new(),
        });
        self.all.borrow_mut().push(listener.clone());
        if !pending {
            start(&listener, &ctx.engine);
        }
        Ok((listener, first))
    }

    /// A reload succeeded: `generation` takes over the listeners it claimed,
    /// and those no longer listened on close.
    pub fn commit(&self, generation: u64, engine: &std::sync::Arc<Engine>) {
        for listener in self.all.borrow().iter() {
            match listener.next.take() {
                Some(claim) => {
                    listener.current.replace(Some(claim));
                    start(listener, engine);
                }
                None if !listener.claimed_by(generation) => listener.close(),
                None => {}
            }
        }
    }

    /// A reload failed: `generation`'s claims go, and sockets it bound close.
    pub fn abort(&self, generation: u64) {
        for listener in self.all.borrow().iter() {
            listener.release(generation);
        }
    }
}

/// Starts a listener's accept loop, once; it runs until the listener is
/// closed or the process shuts down.
fn start(listener: &Rc<Listener>, engine: &std::sync::Arc<Engine>) {
    let Some(accept) = listener.accept.take() else { return };
    let (listener, engine) = (listener.clone(), engine.clone());
    compio::runtime::spawn(async move {
        let stop = async {
            select(pin!(listener.stop.wait()), pin!(engine.shutdown.wait())).await;
        };
        accept.run(stop, |stream, peer| listener.dispatch(stream, peer)).await;
        // The generations it served may end now.
        listener.current.take();
        listener.next.take();
        listener.stop.fire();
    })
    .detach();
}
