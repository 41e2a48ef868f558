//! `moonport.log`: `debug`, `info`, `warn`, `error`. Each joins its arguments
//! with spaces (as `tostring` shows them) and logs the line with the script's
//! file:line and the worker id, filtered by `--log-level` / `RUST_LOG`.

use mlua::{Lua, Table, Value, Variadic};
use tracing::Level;

use super::{args, join};

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let log = lua.create_table()?;
    for (name, level) in
        [("debug", Level::DEBUG), ("info", Level::INFO), ("warn", Level::WARN), ("error", Level::ERROR)]
    {
        log.set(
            name,
            lua.create_function(move |lua, values: Variadic<Value>| {
                // Skip the formatting work for lines the filter drops.
                if !enabled(level) {
                    return Ok(());
                }
                let at = args::location(lua);
                let msg = join(lua, &values, " ")?;
                emit(level, &format!("{at}{msg}"));
                Ok(())
            })?,
        )?;
    }
    Ok(log)
}

fn enabled(level: Level) -> bool {
    match level {
        Level::DEBUG => tracing::enabled!(target: "lua", Level::DEBUG),
        Level::INFO => tracing::enabled!(target: "lua", Level::INFO),
        Level::WARN => tracing::enabled!(target: "lua", Level::WARN),
        _ => tracing::enabled!(target: "lua", Level::ERROR),
    }
}

// tracing needs the level as a constant at each call site.
fn emit(level: Level, line: &str) {
    match level {
        Level::DEBUG => tracing::debug!(target: "lua", "{line}"),
        Level::INFO => tracing::info!(target: "lua", "{line}"),
        Level::WARN => tracing::warn!(target: "lua", "{line}"),
        _ => tracing::error!(target: "lua", "{line}"),
    }
}
