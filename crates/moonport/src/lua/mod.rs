//! Lua bindings: one file per Lua module, each a thin layer that converts
//! values, maps errors to `nil, err` and yields the calling coroutine while the
//! Rust core waits on I/O.
//!
//! `Vm` is one worker's Lua state with the `moonport` module installed (also
//! reachable as the global `moonport` and through `require("moonport")`).

mod args;
mod buffer;
mod channel;
mod cluster;
mod dns;
mod http;
mod json;
mod log;
mod metrics;
mod net;
mod redis;
mod relay;
mod room;
mod socket;
mod task;
mod tcp;
mod tls;
mod udp;
mod url;
mod ws;
mod zlib;

use std::rc::Rc;

use mlua::{Function, Lua, MultiValue, Table, Value, Variadic};

use crate::engine::WorkerCtx;

pub use task::spawn;

/// One worker's Lua state.
pub struct Vm {
    lua: Lua,
    ctx: Rc<WorkerCtx>,
}

impl Vm {
    pub fn new(ctx: Rc<WorkerCtx>) -> Result<Self, String> {
        // SAFETY: loads the full standard library, including LuaJIT's `ffi` and
        // `debug`, which scripts are meant to use; we run only the user's own script.
        let lua = unsafe { Lua::unsafe_new() };
        lua.set_app_data(ctx.clone());
        lua.set_app_data(Rc::new(crate::dns::Resolver::new()));
        install(&lua, &ctx).map_err(|e| format!("cannot set up the Lua state: {e}"))?;
        Ok(Self { lua, ctx })
    }

    /// Compiles this generation's script and starts its main chunk as the
    /// first task. A syntax error is returned; `done` hears how the main
    /// chunk ends (its error text, with file:line, if it failed).
    pub fn start_script(&self, done: impl FnOnce(Option<String>) + 'static) -> Result<(), String> {
        let ctx = &self.ctx;
        let config = &ctx.engine.config;
        let script = config.script.display().to_string();
        let main = self.lua.load(&ctx.generation.source).set_name(format!("@{script}")).into_function().map_err(
            |e| match e {
                mlua::Error::SyntaxError { message, .. } => format!("syntax error: {message}"),
                other => format!("cannot load {script}: {other}"),
            },
        )?;
        let args = config
            .args
            .iter()
            .map(|a| self.lua.create_string(a).map(Value::String))
            .collect::<mlua::Result<MultiValue>>()
            .map_err(|e| e.to_string())?;
        spawn(&self.lua, main, args, done).map_err(|e| e.to_string())
    }
}

/// Chunk name of the Lua wrappers the bindings define (fast paths in front
/// of asynchronous calls); error locations skip their frames.
const INTERNAL_CHUNK: &str = "=[moonport]";

/// The worker a Lua state belongs to.
pub(crate) fn worker(lua: &Lua) -> mlua::Result<Rc<WorkerCtx>> {
    lua.app_data_ref::<Rc<WorkerCtx>>()
        .map(|ctx| ctx.clone())
        .ok_or_else(|| mlua::Error::runtime("moonport: Lua state has no worker"))
}

fn install(lua: &Lua, ctx: &WorkerCtx) -> mlua::Result<()> {
    let moonport = lua.create_table()?;
    moonport.set("tcp", tcp::module(lua)?)?;
    moonport.set("log", log::module(lua)?)?;
    moonport.set("buffer", buffer::module(lua)?)?;
    moonport.set("url", url::module(lua)?)?;
    moonport.set("net", net::module(lua)?)?;
    moonport.set("udp", udp::module(lua)?)?;
    moonport.set("dns", dns::module(lua)?)?;
    moonport.set("json", json::module(lua)?)?;
    moonport.set("zlib", zlib::module(lua)?)?;
    moonport.set("redis", redis::module(lua)?)?;
    moonport.set("cluster", cluster::module(lua)?)?;
    socket::install(lua, &moonport)?;
    task::install(lua, &moonport)?;
    relay::install(lua, &moonport)?;
    room::install(lua, &moonport)?;
    channel::install(lua, &moonport)?;
    http::install(lua, &moonport)?;
    ws::install(lua, &moonport)?;
    metrics::install(lua, &moonport)?;

    let globals = lua.globals();
    globals.set("moonport", &moonport)?;
    let package: Table = globals.get("package")?;
    let loaded: Table = package.get("loaded")?;
    loaded.set("moonport", &moonport)?;

    // `require` looks next to the script, then in --lua-path, then in
    // LUA_PATH (which the Lua library itself read) and the defaults.
    let config = &ctx.engine.config;
    let dir = config.script.parent().map(|d| d.display().to_string()).unwrap_or_default();
    let dir = if dir.is_empty() { ".".to_string() } else { dir };
    let mut search = vec![format!("{dir}/?.lua;{dir}/?/init.lua")];
    for entry in &config.lua_path {
        search.push(if entry.contains('?') { entry.clone() } else { format!("{entry}/?.lua;{entry}/?/init.lua") });
    }
    let path: String = package.get("path")?;
    search.push(path);
    package.set("path", search.join(";"))?;

    // `arg` as the standalone interpreter sets it: arg[0] is the script.
    let arg = lua.create_table()?;
    arg.set(0, config.script.display().to_string())?;
    for (i, a) in config.args.iter().enumerate() {
        arg.set(i + 1, a.as_str())?;
    }
    globals.set("arg", arg)?;

    globals.set("print", lua.create_function(print)?)?;
    Ok(())
}

/// `print` through Rust's line-buffered stdout, so output reaches a pipe as
/// each line is printed instead of when the C library's buffer fills.
fn print(lua: &Lua, values: Variadic<Value>) -> mlua::Result<()> {
    use std::io::Write;
    let line = join(lua, &values, "\t")?;
    let mut out = std::io::stdout().lock();
    // A closed stdout must not kill the script.
    let _ = writeln!(out, "{line}");
    Ok(())
}

/// Joins values as `tostring` shows them.
pub(crate) fn join(lua: &Lua, values: &[Value], sep: &str) -> mlua::Result<String> {
    let tostring: Function = lua.globals().get("tostring")?;
    let mut line = String::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            line.push_str(sep);
        }
        match v {
            Value::String(s) => line.push_str(&s.to_string_lossy()),
            other => line.push_str(&tostring.call::<mlua::LuaString>(other)?.to_string_lossy()),
        }
    }
    Ok(line)
}
