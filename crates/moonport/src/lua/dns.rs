//! `moonport.dns`: `resolve`, `gethostbyname`, `reverse` and `configure`,
//! over the worker's asynchronous resolver (`crate::dns`).

use std::net::SocketAddr;

use mlua::{IntoLuaMulti, Lua, MultiValue, Table, Value};

use super::args::{self, Arg};
use super::net::{Endpoint, family_arg, resolver};
use crate::dns::config::{normalize, parse_nameserver};
use crate::dns::{HostEnt, LookupOptions};
use crate::net::addr::{Family, parse_ip};

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let dns = lua.create_table()?;
    dns.set("resolve", lua.create_async_function(resolve)?)?;
    dns.set("gethostbyname", lua.create_async_function(gethostbyname)?)?;
    dns.set("reverse", lua.create_async_function(reverse)?)?;
    dns.set("configure", lua.create_function(configure)?)?;
    Ok(dns)
}

fn name_arg(lua: &Lua, v: Value, func: &str) -> mlua::Result<String> {
    Ok(args::bytes(lua, v, Arg::new(func, 1))?.to_string_lossy())
}

/// One name server, or a list: `"ip"`, `"ip:port"`, `"[ip6]:port"` or endpoints.
fn nameservers(lua: &Lua, v: Value, arg: Arg) -> mlua::Result<Option<Vec<SocketAddr>>> {
    let one = |v: Value| -> mlua::Result<SocketAddr> {
        if let Value::UserData(ud) = &v
            && let Ok(ep) = ud.borrow::<Endpoint>()
        {
            return Ok(ep.0);
        }
        let text = args::bytes(lua, v, arg)?.to_string_lossy();
        parse_nameserver(&text).ok_or_else(|| arg.error(lua, format!("not a name server address: {text}")))
    };
    match v {
        Value::Nil => Ok(None),
        Value::Table(t) => {
            let list = t.sequence_values::<Value>().map(|v| one(v?)).collect::<mlua::Result<Vec<_>>>()?;
            if list.is_empty() {
                return Err(arg.error(lua, "at least one name server expected"));
            }
            Ok(Some(list))
        }
        v => Ok(Some(vec![one(v)?])),
    }
}

fn lookup_options(lua: &Lua, opts: Value, func: &str, pos: usize) -> mlua::Result<LookupOptions> {
    let arg = Arg::new(func, pos);
    let opts = args::opt_table(lua, opts, arg)?;
    let opts = opts.as_ref();
    let family = match args::field(opts, "family")? {
        Value::Nil => None,
        v => Some(family_arg(lua, v, arg.key("family"))?),
    };
    let timeout = positive_seconds(lua, args::field(opts, "timeout")?, arg.key("timeout"))?;
    let nameservers = nameservers(lua, args::field(opts, "nameserver")?, arg.key("nameserver"))?;
    Ok(LookupOptions { family, timeout, nameservers })
}

/// A timeout for a lookup: seconds above zero (a lookup cannot wait forever), or nil.
fn positive_seconds(lua: &Lua, v: Value, arg: Arg) -> mlua::Result<Option<std::time::Duration>> {
    if v.is_nil() {
        return Ok(None);
    }
    let d = args::duration(lua, v, arg)?;
    if d.is_zero() {
        return Err(arg.error(lua, "seconds must be above 0"));
    }
    Ok(Some(d))
}

async fn lookup(lua: &Lua, name: &str, opts: &LookupOptions) -> Result<HostEnt, String> {
    resolver(lua).map_err(|e| e.to_string())?.lookup(name, opts).await.map_err(|e| e.to_string())
}

/// `resolve(name [, opts])` → `{ "ip", ... }` | `nil, err`.
async fn resolve(lua: Lua, (name, opts): (Value, Value)) -> mlua::Result<MultiValue> {
    let name = name_arg(&lua, name, "resolve")?;
    let opts = lookup_options(&lua, opts, "resolve", 2)?;
    match lookup(&lua, &name, &opts).await {
        Ok(ent) => lua.create_sequence_from(ent.addrs.iter().map(|ip| ip.to_string()))?.into_lua_multi(&lua),
        Err(e) => (Value::Nil, e).into_lua_multi(&lua),
    }
}

/// `gethostbyname(name [, opts])` → `{ name =, aliases = {}, addresses = {} }`,
/// IPv4 unless `opts.family` says otherwise, as C's hostent.
async fn gethostbyname(lua: Lua, (name, opts): (Value, Value)) -> mlua::Result<MultiValue> {
    let name = name_arg(&lua, name, "gethostbyname")?;
    let mut opts = lookup_options(&lua, opts, "gethostbyname", 2)?;
    opts.family.get_or_insert(Family::Inet);
    match lookup(&lua, &name, &opts).await {
        Ok(ent) => {
            let t = lua.create_table()?;
            t.set("name", ent.name)?;
            t.set("aliases", lua.create_sequence_from(ent.aliases)?)?;
            t.set("addresses", lua.create_sequence_from(ent.addrs.iter().map(|ip| ip.to_string()))?)?;
            t.into_lua_multi(&lua)
        }
        Err(e) => (Value::Nil, e).into_lua_multi(&lua),
    }
}

/// `reverse(ip [, opts])` → `name` | `nil, err`.
async fn reverse(lua: Lua, (ip, opts): (Value, Value)) -> mlua::Result<MultiValue> {
    let text = name_arg(&lua, ip, "reverse")?;
    let Some(ip) = parse_ip(&text) else {
        return (Value::Nil, "invalid address").into_lua_multi(&lua);
    };
    let opts = lookup_options(&lua, opts, "reverse", 2)?;
    match resolver(&lua)?.reverse(ip, &opts).await {
        Ok(name) => name.into_lua_multi(&lua),
        Err(e) => (Value::Nil, e.to_string()).into_lua_multi(&lua),
    }
}

/// `configure{ nameserver =, search =, ndots =, timeout =, attempts =, cache_size = }`
/// changes this worker's resolver; fields left out keep their values.
fn configure(lua: &Lua, opts: Value) -> mlua::Result<()> {
    let arg = Arg::new("configure", 1);
    let Some(opts) = args::opt_table(lua, opts, arg)? else {
        return Err(arg.error(lua, "table expected, got nil"));
    };
    let opts = Some(&opts);
    let resolver = resolver(lua)?;
    let mut s = resolver.settings();
    if let Some(list) = nameservers(lua, args::field(opts, "nameserver")?, arg.key("nameserver"))? {
        s.nameservers = list;
    }
    match args::field(opts, "search")? {
        Value::Nil => {}
        Value::Table(t) => {
            s.search = t
                .sequence_values::<mlua::LuaString>()
                .map(|d| d.map(|d| normalize(&d.to_string_lossy())))
                .collect::<mlua::Result<_>>()?;
        }
        _ => return Err(arg.key("search").error(lua, "list of domains expected")),
    }
    s.ndots =
        args::integer(lua, args::field(opts, "ndots")?, arg.key("ndots"), (0, 15), Some(s.ndots as i64))? as usize;
    if let Some(t) = positive_seconds(lua, args::field(opts, "timeout")?, arg.key("timeout"))? {
        s.timeout = t;
    }
    s.attempts =
        args::integer(lua, args::field(opts, "attempts")?, arg.key("attempts"), (1, 5), Some(s.attempts as i64))?
            as usize;
    let cache_size = args::field(opts, "cache_size")?;
    if !cache_size.is_nil() {
        let size = args::integer(lua, cache_size, arg.key("cache_size"), (0, 1 << 20), None)?;
        resolver.set_cache_size(size as usize);
    }
    resolver.configure(s);
    Ok(())
}
