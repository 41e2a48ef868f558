//! Coroutine tasks and time: `moonport.spawn`, `sleep`, `now`, `worker_id`,
//! `workers`, `exiting`, `generation`; and `spawn`, which every coroutine the engine starts
//! (main chunk, connection handlers, tasks) goes through.
//!
//! Every coroutine Rust resumes runs inside `resumed`, which tells plain
//! (synchronous) bindings which coroutine is running (`current`): such a
//! binding can then start an operation, register the coroutine's waker with
//! it and have its Lua wrapper yield mlua's pending marker, waiting like an
//! asynchronous call without the cost of one (see `conn:read`).

use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::panic::AssertUnwindSafe;
use std::rc::Rc;

use futures_util::FutureExt;
use std::task::{Poll, Waker};

use mlua::{Function, IntoLuaMulti, Lua, MultiValue, Table, Value};

use super::{args, worker};

/// Registry key of the function that runs a coroutine body under xpcall, so
/// errors come back with a traceback instead of unwinding the worker.
const RUNNER: &str = "moonport.runner";

/// Runs `f(args...)` as a new coroutine on this worker's runtime. The worker
/// stays alive until it ends; `done` gets the error text if it failed.
pub fn spawn(
    lua: &Lua,
    f: Function,
    args: impl IntoLuaMulti,
    done: impl FnOnce(Option<String>) + 'static,
) -> mlua::Result<()> {
    let ctx = worker(lua)?;
    if ctx.tasks.is_cancelled() {
        return Err(mlua::Error::runtime("closed: this script version has ended"));
    }
    // Given back when the task ends, or is cancelled at the end of a drain.
    let slot = reserve(lua, 1)?;
    let runner: Function = lua.named_registry_value(RUNNER)?;
    // A recycled coroutine, terminated (its pending operations dropped) if
    // the task is dropped before it ends.
    let finished = resumed(runner.call_async::<(bool, Value)>((f, args)));
    let hold = ctx.activity.hold();
    // The new coroutine logs as part of the connection it was started for.
    let task = crate::logging::in_conn(crate::logging::peer(), async move {
        // A panic in a binding must not silently swallow the task: report it
        // as the task's failure (the main chunk's then fails the process).
        let error = match AssertUnwindSafe(finished).catch_unwind().await {
            Ok(Ok((true, _))) => None,
            Ok(Ok((false, err))) => Some(err.to_string().unwrap_or_else(|e| e.to_string())),
            Ok(Err(e)) => Some(e.to_string()),
            Err(panic) => Some(format!("internal error: {}", panic_message(&panic))),
        };
        if error.is_some() {
            slot.ctx.stats.lua_errors.add(1);
        }
        done(error);
        drop(slot);
        drop(hold);
    });
    // Cancelled with the rest of its generation when a reload's drain ends.
    ctx.tasks.spawn(task);
    Ok(())
}

/// The coroutine being resumed, as a plain binding sees it.
pub struct Current {
    /// Wakes the task resuming the coroutine: what an asynchronous call's
    /// future would have been polled with.
    pub waker: Waker,
    /// The coroutine's identity, alive while the future resuming it is: an
    /// operation the coroutine left waiting holds a `Weak` of it, which dies
    /// when the coroutine is cancelled while it waits (`moonport.timeout`,
    /// the end of a drain).
    pub owner: Rc<()>,
}

thread_local! {
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
}

/// Runs `f` with the coroutine being resumed on this thread, if any.
pub fn with_current<R>(f: impl FnOnce(Option<&Current>) -> R) -> R {
    CURRENT.with_borrow(|current| f(current.as_ref()))
}

/// Resumes a coroutine (a `call_async` future) with `with_current` telling
/// plain bindings about it while it runs.
pub async fn resumed<F: Future>(coroutine: F) -> F::Output {
    /// Takes this coroutine's `Current` back and puts back the one that was
    /// current before, also on a panic.
    struct Restore<'a> {
        before: Option<Current>,
        mine: &'a mut Option<Current>,
    }
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            *self.mine = CURRENT.replace(self.before.take());
        }
    }
    let mut coroutine = std::pin::pin!(coroutine);
    let mut mine: Option<Current> = None;
    poll_fn(|cx| {
        // Moved in and out, not cloned: the waker is cloned only when it changes.
        let current = match mine.take() {
            Some(c) if c.waker.will_wake(cx.waker()) => c,
            Some(c) => Current { waker: cx.waker().clone(), owner: c.owner },
            None => Current { waker: cx.waker().clone(), owner: Rc::new(()) },
        };
        let _restore = Restore { before: CURRENT.replace(Some(current)), mine: &mut mine };
        coroutine.as_mut().poll(cx)
    })
    .await
}

/// Part of the worker's coroutine budget: one unit per coroutine, and more
/// held by a connection that keeps more Lua values in Rust than a plain
/// coroutine does (an HTTP or WebSocket
/// session: its handler, its objects, a nested call): LuaJIT's 8000-slot cap
/// counts those too. Given back when dropped.
pub struct Reserved {
    ctx: std::rc::Rc<crate::engine::WorkerCtx>,
    units: usize,
}

/// Takes `units` of the budget, or fails like `spawn` past the limit.
pub fn reserve(lua: &Lua, units: usize) -> mlua::Result<Reserved> {
    let ctx = worker(lua)?;
    let limit = ctx.engine.config.max_coroutines;
    if ctx.coroutines.get() + units > limit {
        return Err(mlua::Error::runtime(format!("too many coroutines (this worker's limit is {limit})")));
    }
    ctx.coroutines.set(ctx.coroutines.get() + units);
    // The worker's statistics count every generation's coroutines together.
    ctx.stats.coroutines.add(units as u64);
    Ok(Reserved { ctx, units })
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.ctx.coroutines.set(self.ctx.coroutines.get() - self.units);
        self.ctx.stats.coroutines.sub(self.units as u64);
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("panic")
}

pub fn install(lua: &Lua, moonport: &Table) -> mlua::Result<()> {
    let runner: Function = lua
        .load("local xpcall, traceback = xpcall, debug.traceback\nreturn function(f, ...) return xpcall(f, traceback, ...) end")
        .set_name("=moonport.runner")
        .call(())?;
    lua.set_named_registry_value(RUNNER, runner)?;

    moonport.set(
        "spawn",
        lua.create_function(|lua, (f, rest): (Value, MultiValue)| {
            let f = args::function(lua, f, args::Arg::new("spawn", 1))?;
            let started = spawn(lua, f, rest, |error| {
                if let Some(error) = error {
                    tracing::error!("task failed: {error}");
                }
            });
            match started {
                Ok(()) => true.into_lua_multi(lua),
                Err(e) => (Value::Nil, e.to_string()).into_lua_multi(lua),
            }
        })?,
    )?;
    moonport.set(
        "sleep",
        lua.create_async_function(|lua, secs: Value| {
            let d = args::duration(&lua, secs, args::Arg::new("sleep", 1));
            async move {
                let d = d?;
                if d.is_zero() {
                    yield_now().await;
                } else {
                    compio::time::sleep(d).await;
                }
                Ok(())
            }
        })?,
    )?;
    moonport.set(
        "timeout",
        lua.create_async_function(|lua, (secs, f, rest): (Value, Value, MultiValue)| async move {
            let d = args::duration(&lua, secs, args::Arg::new("timeout", 1))?;
            let f = args::function(&lua, f, args::Arg::new("timeout", 2))?;
            // fn runs in its own coroutine so that, at the deadline, dropping it
            // cancels whatever it was waiting on.
            // (call_async terminates the coroutine when dropped, so its pending
            // operations are dropped too and a parked socket read is released.)
            let run = resumed(f.call_async::<MultiValue>(rest));
            match compio::time::timeout(d, run).await {
                Ok(results) => results,
                Err(_) => (Value::Nil, "timeout").into_lua_multi(&lua),
            }
        })?,
    )?;
    moonport.set("now", lua.create_function(|lua, ()| Ok(worker(lua)?.engine.epoch.elapsed().as_secs_f64()))?)?;
    // Wall-clock time, for timestamps that other processes compare (frame
    // capture times, logs); `now` is for intervals.
    moonport.set(
        "time",
        lua.create_function(|_, ()| {
            Ok(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()))
        })?,
    )?;
    moonport.set("worker_id", lua.create_function(|lua, ()| Ok(worker(lua)?.id))?)?;
    moonport.set("workers", lua.create_function(|lua, ()| Ok(worker(lua)?.engine.config.workers))?)?;
    moonport.set("exiting", lua.create_function(|lua, ()| Ok(worker(lua)?.stopping()))?)?;
    moonport.set("generation", lua.create_function(|lua, ()| Ok(worker(lua)?.generation.number))?)?;
    Ok(())
}

/// Lets every other ready coroutine run once before this one goes on.
async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}
