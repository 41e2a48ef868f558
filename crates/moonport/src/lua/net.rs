//! `moonport.net`: endpoint objects and address translation (`inet_addr`,
//! `inet_ntop`, `htons`, ...), plus the address arguments every networking
//! call shares: an endpoint, `"ip", port`, `"ip:port"` or `"name", port`.

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Instant;

use mlua::{IntoLuaMulti, Lua, MultiValue, Table, UserData, UserDataFields, UserDataMethods, Value};

use super::args::{self, Arg};
use crate::dns::{LookupOptions, Resolver};
use crate::net::addr::{self, Family};

const INVALID: &str = "invalid address";

/// A Lua endpoint: an IP address and a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint(pub SocketAddr);

impl UserData for Endpoint {
    fn add_fields<F: UserDataFields<Self>>(f: &mut F) {
        f.add_field_method_get("family", |_, this| Ok(Family::of(&this.0.ip()).name()));
        f.add_field_method_get("address", |_, this| Ok(this.0.ip().to_string()));
        f.add_field_method_get("port", |_, this| Ok(this.0.port()));
    }

    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_meta_method("__tostring", |_, this, ()| Ok(this.0.to_string()));
        m.add_meta_method("__eq", |_, this, other: Value| {
            Ok(matches!(other, Value::UserData(ud) if ud.borrow::<Endpoint>().is_ok_and(|o| *o == *this)))
        });
    }
}

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let net = lua.create_table()?;
    net.set("endpoint", lua.create_function(endpoint)?)?;
    net.set(
        "inet_addr",
        lua.create_function(|lua, text: Value| {
            let text = args::bytes(lua, text, Arg::new("inet_addr", 1))?;
            or_invalid(lua, addr::inet_addr(&text.to_string_lossy()))
        })?,
    )?;
    net.set(
        "inet_ntoa",
        lua.create_function(|lua, n: Value| {
            // LuaJIT's bit library yields signed 32-bit values: accept both readings.
            let n = args::integer(lua, n, Arg::new("inet_ntoa", 1), (i64::from(i32::MIN), i64::from(u32::MAX)), None)?;
            Ok(addr::inet_ntoa(n as u32).to_string())
        })?,
    )?;
    net.set(
        "inet_pton",
        lua.create_function(|lua, (family, text): (Value, Value)| {
            let family = family_arg(lua, family, Arg::new("inet_pton", 1))?;
            let text = args::bytes(lua, text, Arg::new("inet_pton", 2))?;
            let raw = addr::inet_pton(family, &text.to_string_lossy());
            or_invalid(lua, raw.map(|b| lua.create_string(b)).transpose()?)
        })?,
    )?;
    net.set(
        "inet_ntop",
        lua.create_function(|lua, (family, bytes): (Value, Value)| {
            let family = family_arg(lua, family, Arg::new("inet_ntop", 1))?;
            let bytes = args::bytes(lua, bytes, Arg::new("inet_ntop", 2))?;
            or_invalid(lua, addr::inet_ntop(family, &bytes.as_bytes()).map(|ip| ip.to_string()))
        })?,
    )?;
    net.set("htons", lua.create_function(|lua, n: Value| swap16(lua, n, "htons"))?)?;
    net.set("ntohs", lua.create_function(|lua, n: Value| swap16(lua, n, "ntohs"))?)?;
    net.set("htonl", lua.create_function(|lua, n: Value| swap32(lua, n, "htonl"))?)?;
    net.set("ntohl", lua.create_function(|lua, n: Value| swap32(lua, n, "ntohl"))?)?;
    Ok(net)
}

/// `value` or `nil, "invalid address"`.
fn or_invalid<T: mlua::IntoLua>(lua: &Lua, v: Option<T>) -> mlua::Result<MultiValue> {
    match v {
        Some(v) => v.into_lua_multi(lua),
        None => (Value::Nil, INVALID).into_lua_multi(lua),
    }
}

fn swap16(lua: &Lua, n: Value, func: &str) -> mlua::Result<u16> {
    let n = args::integer(lua, n, Arg::new(func, 1), (0, i64::from(u16::MAX)), None)? as u16;
    Ok(u16::from_ne_bytes(n.to_be_bytes()))
}

fn swap32(lua: &Lua, n: Value, func: &str) -> mlua::Result<u32> {
    let n = args::integer(lua, n, Arg::new(func, 1), (i64::from(i32::MIN), i64::from(u32::MAX)), None)? as u32;
    Ok(u32::from_ne_bytes(n.to_be_bytes()))
}

/// `moonport.net.endpoint(host, port)` or `("ip:port")`.
fn endpoint(lua: &Lua, (host, port): (Value, Value)) -> mlua::Result<MultiValue> {
    let text = args::bytes(lua, host, Arg::new("endpoint", 1))?.to_string_lossy();
    let parsed = match port {
        Value::Nil => addr::parse_endpoint(&text),
        port => {
            let port = args::integer(lua, port, Arg::new("endpoint", 2), (0, 65535), None)? as u16;
            addr::parse_ip(&text).map(|ip| SocketAddr::new(ip, port))
        }
    };
    or_invalid(lua, parsed.map(Endpoint))
}

/// An address family argument: `"inet"` / `"inet6"` (`moonport.AF_INET`, ...).
pub fn family_arg(lua: &Lua, v: Value, arg: Arg) -> mlua::Result<Family> {
    let name = args::bytes(lua, v, arg)?;
    Family::parse(&name.to_string_lossy()).ok_or_else(|| arg.error(lua, "\"inet\" or \"inet6\" expected"))
}

/// Where a call should go, before any name is resolved.
#[derive(Debug, Clone)]
pub enum Target {
    Addr(SocketAddr),
    /// `"*"`: the unspecified address of whatever family the socket has.
    Any(u16),
    Name(String, u16),
}

/// Reads the address arguments at `pos` (and `pos + 1` for the port): an
/// endpoint, `"ip:port"`, or a host (IP literal or name) and a port. Returns
/// the target and how many arguments it took.
pub fn target(lua: &Lua, host: Value, port: Value, func: &str, pos: usize) -> mlua::Result<(Target, usize)> {
    if let Value::UserData(ud) = &host
        && let Ok(ep) = ud.borrow::<Endpoint>()
    {
        return Ok((Target::Addr(ep.0), 1));
    }
    let text = args::bytes(lua, host, Arg::new(func, pos))?.to_string_lossy();
    if port.is_nil()
        && let Some(addr) = addr::parse_endpoint(&text)
    {
        return Ok((Target::Addr(addr), 1));
    }
    let port = args::integer(lua, port, Arg::new(func, pos + 1), (0, 65535), None)? as u16;
    if text == "*" {
        return Ok((Target::Any(port), 2));
    }
    Ok(match addr::parse_ip(&text) {
        Some(ip) => (Target::Addr(SocketAddr::new(ip, port)), 2),
        None => (Target::Name(text, port), 2),
    })
}

/// The addresses of a target, resolving a name with the worker's resolver;
/// `family` keeps only addresses a socket of that family can use.
pub async fn resolve(lua: &Lua, target: Target, family: Option<Family>) -> Result<Vec<SocketAddr>, String> {
    match target {
        Target::Addr(a) if family.is_none_or(|f| f == Family::of(&a.ip())) => Ok(vec![a]),
        Target::Addr(_) => Err("address family not supported".into()),
        Target::Any(port) => Ok(vec![match family {
            Some(Family::Inet6) => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)),
            _ => SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port)),
        }]),
        Target::Name(name, port) => {
            let opts = LookupOptions { family, ..LookupOptions::default() };
            let found = resolver(lua).map_err(|e| e.to_string())?.lookup(&name, &opts).await;
            found
                .map(|ent| ent.addrs.into_iter().map(|ip: IpAddr| SocketAddr::new(ip, port)).collect())
                .map_err(|e| e.to_string())
        }
    }
}

/// `resolve`, given up at `deadline` (`Err("timeout")`).
pub async fn resolve_until(lua: &Lua, target: Target, deadline: Option<Instant>) -> Result<Vec<SocketAddr>, String> {
    let resolving = resolve(lua, target, None);
    match deadline {
        None => resolving.await,
        Some(d) => compio::time::timeout_at(d, resolving).await.unwrap_or_else(|_| Err("timeout".into())),
    }
}

/// The worker's resolver, created with the Lua state.
pub fn resolver(lua: &Lua) -> mlua::Result<Rc<Resolver>> {
    lua.app_data_ref::<Rc<Resolver>>()
        .map(|r| r.clone())
        .ok_or_else(|| mlua::Error::runtime("moonport: Lua state has no resolver"))
}

/// An endpoint value for results (`recvfrom`, `accept`, `getsockname`).
pub fn endpoint_value(lua: &Lua, addr: SocketAddr) -> mlua::Result<Value> {
    lua.create_userdata(Endpoint(addr)).map(Value::UserData)
}
