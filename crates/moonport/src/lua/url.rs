//! `moonport.url`: URL parsing and building by WHATWG rules (the `url`
//! crate), query strings (`application/x-www-form-urlencoded`), and
//! percent-escaping. Invalid input returns `nil, err` with the reason.

use mlua::{IntoLuaMulti, Lua, MultiValue, Table, Value};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode, utf8_percent_encode};

use super::args::{self, Arg};

/// Everything but RFC 3986's unreserved characters gets escaped.
const ESCAPE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

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
    let url = match url::Url::parse(&s) {
        Ok(url) => url,
        Err(e) => return (Value::Nil, e.to_string()).into_lua_multi(lua),
    };
    let t = lua.create_table()?;
    t.set("scheme", url.scheme())?;
    t.set("user", Some(url.username()).filter(|u| !u.is_empty()))?;
    t.set("password", url.password())?;
    // IPv6 hosts without brackets, ready for `moonport.tcp.connect`.
    t.set("host", url.host_str().map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string()))?;
    t.set("port", url.port_or_known_default())?;
    t.set("path", url.path())?;
    t.set("query", url.query())?;
    t.set("fragment", url.fragment())?;
    t.into_lua_multi(lua)
}

/// Assembles a URL from parts (as `parse` returns them) and normalizes it.
fn build(lua: &Lua, t: Value) -> mlua::Result<MultiValue> {
    let arg = Arg::new("build", 1);
    let t = args::opt_table(lua, t, arg)?.ok_or_else(|| arg.error(lua, "table expected, got nil"))?;
    let part = |key: &str| -> mlua::Result<Option<String>> {
        Ok(args::opt_bytes(lua, t.get(key)?, arg.key(key))?.map(|s| s.to_string_lossy()))
    };
    let Some(scheme) = part("scheme")? else {
        return (Value::Nil, "missing scheme").into_lua_multi(lua);
    };
    let mut s = format!("{scheme}:");
    let host = part("host")?;
    if let Some(host) = &host {
        s.push_str("//");
        if let Some(user) = part("user")? {
            s.push_str(&utf8_percent_encode(&user, ESCAPE).to_string());
            if let Some(password) = part("password")? {
                s.push(':');
                s.push_str(&utf8_percent_encode(&password, ESCAPE).to_string());
            }
            s.push('@');
        }
        if host.contains(':') && !host.starts_with('[') {
            s.push_str(&format!("[{host}]"));
        } else {
            s.push_str(host);
        }
        if let Value::Integer(_) | Value::Number(_) = t.get::<Value>("port")? {
            let port = args::integer(lua, t.get("port")?, arg.key("port"), (0, 65535), None)?;
            s.push_str(&format!(":{port}"));
        }
    }
    if let Some(path) = part("path")? {
        if host.is_some() && !path.is_empty() && !path.starts_with('/') {
            s.push('/');
        }
        s.push_str(&path);
    }
    if let Some(query) = part("query")? {
        s.push('?');
        s.push_str(&query);
    }
    if let Some(fragment) = part("fragment")? {
        s.push('#');
        s.push_str(&fragment);
    }
    match url::Url::parse(&s) {
        Ok(url) => url.to_string().into_lua_multi(lua),
        Err(e) => (Value::Nil, e.to_string()).into_lua_multi(lua),
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
            first => t.set(k.as_ref(), lua.create_sequence_from([first, Value::String(lua.create_string(v.as_ref())?)])?)?,
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
