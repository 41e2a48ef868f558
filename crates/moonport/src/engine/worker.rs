//! One worker thread: a compio runtime and a Lua VM that runs the script and
//! serves the connections its listeners accept.

use std::cell::Cell;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;

use futures_util::future::select;

use super::{Activity, Engine};
use crate::lua;
use crate::metrics::WorkerStats;

/// What the Lua bindings of one worker need from the engine.
pub struct WorkerCtx {
    /// 1-based, as Lua counts.
    pub id: usize,
    pub engine: Arc<Engine>,
    pub activity: Rc<Activity>,
    /// Counts this worker's `listen` calls, to pair them with other workers'.
    pub listen_seq: Cell<usize>,
    /// Coroutines alive on this worker, against `Config::max_coroutines`.
    pub coroutines: Cell<usize>,
    /// This worker's statistics, which `/metrics` shows.
    pub stats: Arc<WorkerStats>,
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

async fn serve(engine: Arc<Engine>, id: usize) {
    let stats = WorkerStats::new(id);
    stats.install();
    engine.metrics.add_worker(stats.clone());
    let ctx = Rc::new(WorkerCtx {
        id,
        engine: engine.clone(),
        activity: Activity::new(),
        listen_seq: Cell::new(0),
        coroutines: Cell::new(0),
        stats,
    });
    let vm = match lua::Vm::new(ctx.clone()) {
        Ok(vm) => vm,
        Err(e) => {
            tracing::error!("{e}");
            engine.fail();
            return;
        }
    };
    if let Err(e) = vm.start_script() {
        tracing::error!("{e}");
        engine.fail();
        return;
    }
    // Runs until nothing is left to do, or a shutdown begins.
    select(pin!(ctx.activity.idle()), pin!(engine.shutdown.wait())).await;
    if engine.shutdown.is_fired() {
        // Listeners have stopped on the same signal; let open connections finish.
        if compio::time::timeout(engine.config.grace, ctx.activity.idle()).await.is_err() {
            tracing::info!("grace period over; closing the remaining connections");
        }
    }
}
