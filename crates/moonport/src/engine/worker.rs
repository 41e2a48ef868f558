//! One worker thread: a compio runtime and a Lua VM that runs the script and
//! serves the connections its listeners accept. A reload gives the worker a
//! new VM (a new generation) while the old one drains beside it.

use std::cell::Cell;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;

use futures_util::future::{Either, select};

use super::reload::{Generation, READY_WAIT, Request};
use super::{Activity, Datagrams, Engine, Listeners, TaskSet, Trigger};
use crate::lua;
use crate::metrics::WorkerStats;

/// What the Lua bindings of one worker need from the engine: one per
/// generation (Lua state) on the worker.
pub struct WorkerCtx {
    /// 1-based, as Lua counts.
    pub id: usize,
    pub engine: Arc<Engine>,
    /// The script version this Lua state runs.
    pub generation: Arc<Generation>,
    /// What keeps this generation alive: its coroutines and listeners.
    pub activity: Rc<Activity>,
    /// This generation's coroutines, so the end of a drain can cancel them.
    pub tasks: Rc<TaskSet>,
    /// The worker's listening sockets, shared by its generations.
    pub listeners: Rc<Listeners>,
    /// Its UDP sockets at fixed ports, also handed over by reloads.
    pub datagrams: Rc<Datagrams>,
    /// True while a reload tries this generation: its listens take over at the commit.
    pub pending: Cell<bool>,
    /// Fired when a newer generation has taken over and this one drains.
    pub retired: Trigger,
    /// Counts this generation's `listen` calls, to pair them with other workers'.
    pub listen_seq: Cell<usize>,
    /// Coroutines alive in this Lua state, against `Config::max_coroutines`.
    pub coroutines: Cell<usize>,
    /// This worker's statistics, which `/metrics` shows.
    pub stats: Arc<WorkerStats>,
}

impl WorkerCtx {
    /// True once the process shuts down or a reload has replaced this
    /// generation: long waits for more work should end.
    pub fn stopping(&self) -> bool {
        self.engine.shutdown.is_fired() || self.retired.is_fired()
    }

    /// Completes when `stopping` becomes true.
    pub async fn stop(&self) {
        select(pin!(self.engine.shutdown.wait()), pin!(self.retired.wait())).await;
    }
}

pub fn run(engine: Arc<Engine>, id: usize) {
    crate::logging::set_worker(id);
    let runtime = match compio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("cannot start the I/O runtime: {e}");
            engine.fail();
            return;
        }
    };
    if id == 1 {
        report_driver(&engine, &runtime);
    }
    runtime.block_on(serve(engine, id));
}

fn report_driver(engine: &Engine, runtime: &compio::runtime::Runtime) {
    use compio::driver::DriverType;
    let driver = match runtime.driver_type() {
        DriverType::IoUring => "io_uring",
        DriverType::IOCP => "IOCP",
        DriverType::Poll => "poll",
    };
    engine.metrics.set_driver(driver);
    if driver == "poll" {
        tracing::warn!("I/O driver: polling fallback (io_uring unavailable); expect lower throughput");
    } else {
        tracing::info!("I/O driver: {driver}");
    }
}

/// One generation running on this worker.
struct Running {
    ctx: Rc<WorkerCtx>,
    /// Dropped last: the Lua state goes once its tasks are gone.
    _vm: lua::Vm,
}

/// What every generation on this worker shares.
struct Worker {
    id: usize,
    engine: Arc<Engine>,
    listeners: Rc<Listeners>,
    datagrams: Rc<Datagrams>,
    stats: Arc<WorkerStats>,
}

async fn serve(engine: Arc<Engine>, id: usize) {
    let stats = WorkerStats::new(id);
    stats.install();
    engine.metrics.add_worker(stats.clone());
    let (generation, requests) = engine.reloads.join();
    let worker = Worker {
        id,
        engine: engine.clone(),
        listeners: Rc::new(Listeners::default()),
        datagrams: Rc::new(Datagrams::default()),
        stats,
    };
    // The first generation's top-level error fails the process, as before
    // there were reloads.
    let mut current = match worker.start(generation, false, None) {
        Ok(running) => running,
        Err(e) => {
            tracing::error!("{e}");
            engine.fail();
            return;
        }
    };
    // Older generations still draining.
    let draining = Activity::new();
    // Runs until nothing is left to do, or a shutdown begins; reloads meanwhile.
    loop {
        let ended = async {
            select(pin!(current.ctx.activity.idle()), pin!(engine.shutdown.wait())).await;
        };
        let request = match select(pin!(ended), pin!(requests.recv())).await {
            Either::Left(_) => break,
            Either::Right((Ok(request), _)) => request,
            // The engine keeps the sending side while it runs.
            Either::Right((Err(_), _)) => break,
        };
        if let Some(next) = worker.reload(request).await {
            let old = std::mem::replace(&mut current, next);
            worker.drain(old, &draining);
        }
    }
    // No reloads for a worker on its way out.
    requests.close();
    drop(requests);
    let everything = async {
        current.ctx.activity.idle().await;
        draining.idle().await;
    };
    if engine.shutdown.is_fired() {
        // Listeners have stopped on the same signal; let open connections finish.
        if compio::time::timeout(engine.config.grace, everything).await.is_err() {
            tracing::info!("grace period over; closing the remaining connections");
        }
    } else {
        // The script has ended here, but an older generation may still drain.
        select(pin!(everything), pin!(engine.shutdown.wait())).await;
    }
}

impl Worker {
    /// Creates a generation's Lua state and starts its main chunk. `ready` hears
    /// how the main chunk ends while a reload waits for it; after that (or
    /// without it) a main chunk that fails fails the process.
    fn start(
        &self,
        generation: Arc<Generation>,
        pending: bool,
        ready: Option<async_channel::Sender<Option<String>>>,
    ) -> Result<Running, String> {
        let ctx = Rc::new(WorkerCtx {
            id: self.id,
            engine: self.engine.clone(),
            generation,
            activity: Activity::new(),
            tasks: TaskSet::new(),
            listeners: self.listeners.clone(),
            datagrams: self.datagrams.clone(),
            pending: Cell::new(pending),
            retired: Trigger::new(),
            listen_seq: Cell::new(0),
            coroutines: Cell::new(0),
            stats: self.stats.clone(),
        });
        let vm = lua::Vm::new(ctx.clone())?;
        // Weak: the main chunk's task belongs to the context's task set.
        let this = Rc::downgrade(&ctx);
        let engine = self.engine.clone();
        vm.start_script(move |error| {
            // Sent while a reload waits for the outcome.
            if let Some(ready) = &ready
                && ready.try_send(error.clone()).is_ok()
            {
                return;
            }
            let Some(error) = error else { return };
            tracing::error!("{error}");
            // Past that, a failing main chunk fails the process as the first one
            // does, unless it runs in a version that is not (or no longer) the
            // one serving: a reload's candidate, or one a newer version replaced.
            if this.upgrade().is_none_or(|ctx| !ctx.pending.get() && !ctx.retired.is_fired()) {
                engine.fail();
            }
        })?;
        Ok(Running { ctx, _vm: vm })
    }

    /// This worker's part in a reload: runs the new generation's top level,
    /// reports, and on the verdict commits (returns the new generation) or
    /// aborts (drops it).
    async fn reload(&self, request: Request) -> Option<Running> {
        let (engine, listeners) = (&self.engine, &self.listeners);
        let Request { generation, ready, verdict } = request;
        let number = generation.number;
        let (done_tx, done_rx) = async_channel::bounded(1);
        let next = match self.start(generation, true, Some(done_tx)) {
            Ok(next) => next,
            Err(e) => {
                let _ = ready.send(Err(e));
                return None;
            }
        };
        // The top level has gone well when it returns, or is still running
        // (waiting for something) after READY_WAIT.
        let outcome = match select(pin!(done_rx.recv()), pin!(compio::time::sleep(READY_WAIT))).await {
            Either::Left((Ok(Some(error)), _)) => Err(error),
            _ => Ok(()),
        };
        // From here on a failing main chunk is only logged until the commit,
        // then fails the process as the first one does.
        drop(done_rx);
        let _ = ready.send(outcome);
        let commit =
            matches!(select(pin!(verdict.recv()), pin!(engine.shutdown.wait())).await, Either::Left((Ok(true), _)));
        if !commit {
            listeners.abort(number);
            next.ctx.tasks.cancel_all();
            return None;
        }
        next.ctx.pending.set(false);
        listeners.commit(number, engine);
        self.datagrams.commit(number);
        let _ = ready.send(Ok(()));
        if self.id == 1 && next.ctx.listen_seq.get() > 0 {
            // A script that did not listen before may now.
            engine.start_other_workers();
        }
        Some(next)
    }

    /// Lets a replaced generation finish its connections and tasks for up to
    /// `--drain`, then cancels what is left and drops its Lua state.
    fn drain(&self, old: Running, draining: &Rc<Activity>) {
        old.ctx.retired.fire();
        let hold = draining.hold();
        let limit = self.engine.config.drain;
        compio::runtime::spawn(async move {
            let number = old.ctx.generation.number;
            if compio::time::timeout(limit, old.ctx.activity.idle()).await.is_err() {
                let n = old.ctx.tasks.cancel_all();
                tracing::info!("generation {number}: drain time over; closing its {n} remaining coroutines");
                old.ctx.activity.idle().await;
            }
            tracing::debug!("generation {number} has ended");
            drop(old);
            drop(hold);
        })
        .detach();
    }
}
