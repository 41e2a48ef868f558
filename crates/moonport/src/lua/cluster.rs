//! `moonport.cluster`: joining this process to a cluster (the Lua form of
//! `--cluster`) and the state of its link to Redis. Rooms opened with
//! `{ scope = "cluster" }` then span every process of the cluster; the core
//! is `room::cluster`.

use std::sync::atomic::Ordering;

use mlua::{Lua, Table, Value};

use super::args::{self, Arg};
use super::worker;
use crate::room::OUTBOX_LIMITS;

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let m = lua.create_table()?;
    m.set("join", lua.create_function(join)?)?;
    m.set("status", lua.create_function(status)?)?;
    Ok(m)
}

/// `join(url [, opts])`: once per process; every worker may call it with
/// the same URL (they all run the script).
fn join(lua: &Lua, (url, opts): (Value, Value)) -> mlua::Result<bool> {
    let arg = Arg::new("join", 1);
    let url = args::bytes(lua, url, arg)?.to_string_lossy();
    let arg = Arg::new("join", 2);
    let opts = args::opt_table(lua, opts, arg)?;
    let limits = super::room::queue_bounds(lua, opts.as_ref(), arg, OUTBOX_LIMITS)?;
    worker(lua)?.engine.join_cluster(&url, limits).map_err(|e| Arg::new("join", 1).error(lua, e))?;
    Ok(true)
}

/// `status()` → nil when not in a cluster, else the link's state and counters.
fn status(lua: &Lua, (): ()) -> mlua::Result<Value> {
    let Some(cluster) = worker(lua)?.engine.cluster() else { return Ok(Value::Nil) };
    let t = lua.create_table()?;
    t.set("url", cluster.url())?;
    t.set("node", format!("{:016x}", cluster.node()))?;
    t.set("connected", cluster.is_connected())?;
    let s = &cluster.stats;
    for (key, n) in [
        ("sent", &s.sent),
        ("unsent", &s.unsent),
        ("received", &s.received),
        ("lost", &s.lost),
        ("reconnects", &s.reconnects),
    ] {
        t.set(key, n.load(Ordering::Relaxed))?;
    }
    Ok(Value::Table(t))
}
