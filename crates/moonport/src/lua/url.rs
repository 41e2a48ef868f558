//! `moonport.url`: URL parsing and building by WHATWG rules (the `url`
//! crate), query strings (`application/x-www-form-urlencoded`), and
//! percent-escaping. Invalid input returns `nil, err` with the reason.

use mlua::{IntoLuaMulti, Lua, MultiValue, Table, Value};
use percent_encoding::percent_decode;

use super::args::{self, Arg};
use crate::proto::url::{self, ESCAPE};

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let m = lua.create_table()?;
    m.set("parse", lua.create_function(parse)?)?;
    m.set("build", lua.create_function(build)?)?;
    m.set("parse_query", lua.create_function(parse_query)?)?;
    m.set("encode_query", lua.create_function(encode_query)?)?;
    m.set(
        "escape",
        lua.create_function(|lua, s: Value| {
            let s = args::bytes(lua, s, Arg::new("escape", 1))?;
            let bytes = s.as_bytes();
            Ok(percent_encoding::percent_encode(&bytes, ESCAPE).to_string())
        })?,
    )?;
    m.set(
        "unescape",
        lua.create_function(|lua, s: Value| {
            let s = args::bytes(lua, s, Arg::new("unescape", 1))?;
            let decoded: Vec<u8> = percent_decode(&s.as_bytes()).collect();
            lua.create_string(decoded)
        })?,
    )?;
    Ok(m)
}

fn parse(lua: &Lua, s: Value) -> mlua::Result<MultiValue> {
    let s = args::bytes(lua, s, Arg::new("parse", 1))?.to_str()?.to_string();
    let p = match url::parse(&s) {
        Ok(p) => p,
        Err(e) => return (Value::Nil, e).into_lua_multi(lua),
    };
    let t = lua.create_table()?;
    t.set("scheme", p.scheme)?;
    t.set("user", p.user)?;
    t.set("password", p.password)?;
    t.set("host", p.host)?;
    t.set("port", p.port)?;
    t.set("path", p.path)?;
    t.set("query", p.query)?;
    t.set("fragment", p.fragment)?;
    t.into_lua_multi(lua)
}

/// Assembles a URL from parts (as `parse` returns them) and normalizes it.
fn build(lua: &Lua, t: Value) -> mlua::Result<MultiValue> {
    let arg = Arg::new("build", 1);
    let t = args::opt_table(lua, t, arg)?.ok_or_else(|| arg.error(lua, "table expected, got nil"))?;
    let part = |key: &str| -> mlua::Result<Option<String>> {
        Ok(args::opt_bytes(lua, t.get(key)?, arg.key(key))?.map(|s| s.to_string_lossy()))
    };
    let port = match t.get::<Value>("port")? {
        Value::Nil => None,
        v => Some(args::integer(lua, v, arg.key("port"), (0, 65535), None)? as u16),
    };
    let parts = url::Parts {
        scheme: part("scheme")?,
        user: part("user")?,
        password: part("password")?,
        host: part("host")?,
        port,
        path: part("path")?,
        query: part("query")?,
        fragment: part("fragment")?,
    };
    match url::build(&parts) {
        Ok(s) => s.into_lua_multi(lua),
        Err(e) => (Value::Nil, e).into_lua_multi(lua),
    }
}

/// `a=1&b=2&a=3` → `{ a = {"1", "3"}, b = "2" }`: a repeated key becomes an array.
fn parse_query(lua: &Lua, q: Value) -> mlua::Result<Table> {
    let q = args::bytes(lua, q, Arg::new("parse_query", 1))?;
    let bytes = q.as_bytes();
    let bytes = bytes.strip_prefix(b"?").unwrap_or(&bytes);
    let t = lua.create_table()?;
    for (k, v) in form_urlencoded::parse(bytes) {
        match t.get::<Value>(k.as_ref())? {
            Value::Nil => t.set(k.as_ref(), v.as_ref())?,
            Value::Table(list) => list.push(v.as_ref())?,
            first => {
                t.set(k.as_ref(), lua.create_sequence_from([first, Value::String(lua.create_string(v.as_ref())?)])?)?
            }
        }
    }
    Ok(t)
}

/// The inverse of `parse_query`; keys in sorted order, so the result is stable.
fn encode_query(lua: &Lua, t: Value) -> mlua::Result<String> {
    let arg = Arg::new("encode_query", 1);
    let t = args::opt_table(lua, t, arg)?.ok_or_else(|| arg.error(lua, "table expected, got nil"))?;
    let mut pairs: Vec<(String, Vec<String>)> = Vec::new();
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair?;
        let key = args::bytes(lua, k, arg.key("key"))?.to_string_lossy();
        let values = match v {
            Value::Table(list) => list
                .sequence_values::<Value>()
                .map(|v| scalar(lua, v?, arg.key(&key)))
                .collect::<mlua::Result<Vec<_>>>()?,
            v => vec![scalar(lua, v, arg.key(&key))?],
        };
        pairs.push((key, values));
    }
    pairs.sort();
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, values) in &pairs {
        for v in values {
            out.append_pair(k, v);
        }
    }
    Ok(out.finish())
}

fn scalar(lua: &Lua, v: Value, arg: Arg) -> mlua::Result<String> {
    match v {
        Value::Boolean(b) => Ok(b.to_string()),
        v => Ok(args::bytes(lua, v, arg)?.to_string_lossy()),
    }
}
