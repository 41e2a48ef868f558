//! `moonport.relay(a, b [, opts])` and `conn:pipe_to(other [, opts])`: bytes
//! pumped between connections inside Rust, while the calling coroutine waits.

use std::future::Future;

use mlua::{Lua, Table, UserDataRef, Value};

use super::args::{self, Arg};
use crate::net::{self, RelayOptions, TcpConn};

pub fn install(lua: &Lua, moonport: &Table) -> mlua::Result<()> {
    moonport.set(
        "relay",
        lua.create_async_function(|lua, (a, b, opts): (Value, Value, Value)| {
            // Arguments are checked, and the connections taken out of their
            // Lua objects, before the wait: a long relay holds no Lua value.
            let checked = (|| {
                let a = conn_arg(&lua, a, Arg::new("relay", 1))?;
                let b = conn_arg(&lua, b, Arg::new("relay", 2))?;
                if a.same(&b) {
                    return Err(Arg::new("relay", 2).error(&lua, "a connection cannot be relayed to itself"));
                }
                Ok((a, b, options(&lua, opts, Arg::new("relay", 3))?))
            })();
            async move {
                let (a, b, opts) = checked?;
                let out = net::relay(&a, &b, opts).await;
                Ok((out.forward, out.backward, out.end.to_string()))
            }
        })?,
    )
}

/// `conn:pipe_to(other [, opts])`: one way, `bytes, reason`.
pub fn pipe_to(
    lua: Lua,
    this: UserDataRef<TcpConn>,
    (other, opts): (Value, Value),
) -> impl Future<Output = mlua::Result<(u64, String)>> {
    let src = TcpConn::clone(&this);
    drop(this);
    let checked = (|| {
        let dst = conn_arg(&lua, other, Arg::new("pipe_to", 1))?;
        if src.same(&dst) {
            return Err(Arg::new("pipe_to", 1).error(&lua, "a connection cannot be piped to itself"));
        }
        Ok((dst, options(&lua, opts, Arg::new("pipe_to", 2))?))
    })();
    async move {
        let (dst, opts) = checked?;
        let (moved, end) = net::pipe(&src, &dst, opts).await;
        Ok((moved, end.to_string()))
    }
}

/// The connection in a `conn` argument (a clone: the Lua object is not kept).
pub fn conn_arg(lua: &Lua, v: Value, arg: Arg) -> mlua::Result<TcpConn> {
    match v {
        Value::UserData(ud) if ud.is::<TcpConn>() => Ok(TcpConn::clone(&*ud.borrow::<TcpConn>()?)),
        other => Err(arg.error(lua, format!("conn expected, got {}", other.type_name()))),
    }
}

fn options(lua: &Lua, v: Value, arg: Arg) -> mlua::Result<RelayOptions> {
    let opts = args::opt_table(lua, v, arg)?;
    let idle_timeout =
        args::timeout(lua, args::field(opts.as_ref(), "idle_timeout")?, arg.key("idle_timeout"))?.flatten();
    let max = args::field(opts.as_ref(), "max_bytes")?;
    let max_bytes = match max {
        Value::Nil => None,
        v => Some(args::integer(lua, v, arg.key("max_bytes"), (1, i64::MAX), None)? as u64),
    };
    Ok(RelayOptions { idle_timeout, max_bytes })
}
