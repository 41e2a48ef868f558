//! `moonport.http`: what the HTTP server and the WebSocket upgrade share —
//! the limit and timeout options of a listener, and the `req` table a
//! handler gets (`method`, `path`, `query`, `target`, `version`, and
//! `headers`, whose lookups ignore case).

use std::time::Duration;

use mlua::{Function, Lua, Table, Value};

use super::args::{self, Arg};
use crate::proto::http::{Head, Limits};

/// Registry key of the function that gives a headers table its
/// case-insensitive lookups.
const CASELESS: &str = "moonport.http.caseless";

const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// A listener's bounds on each request.
#[derive(Debug, Clone, Copy)]
pub struct HttpOptions {
    pub limits: Limits,
    /// From the first byte of a request head to its end.
    pub header_timeout: Option<Duration>,
}

impl HttpOptions {
    pub fn from_lua(lua: &Lua, opts: Option<&Table>, arg: Arg) -> mlua::Result<Self> {
        let d = Limits::default();
        let size = |key: &'static str, range: (i64, i64), default: usize| -> mlua::Result<usize> {
            Ok(args::integer(lua, args::field(opts, key)?, arg.key(key), range, Some(default as i64))? as usize)
        };
        let limits = Limits {
            max_head: size("max_header", (64, 1 << 24), d.max_head)?,
            max_headers: size("max_headers", (1, 10_000), d.max_headers)?,
        };
        let timeout = |key: &'static str, default: Duration| -> mlua::Result<Option<Duration>> {
            Ok(args::timeout(lua, args::field(opts, key)?, arg.key(key))?.unwrap_or(Some(default)))
        };
        Ok(Self { limits, header_timeout: timeout("header_timeout", DEFAULT_HEADER_TIMEOUT)? })
    }
}

pub fn install(lua: &Lua, _moonport: &Table) -> mlua::Result<()> {
    let caseless: Function = lua
        .load(
            "local mt = { __index = function(t, k) if type(k) == 'string' then return rawget(t, k:lower()) end end }\n\
             return function(t) return setmetatable(t, mt) end",
        )
        .set_name("=moonport.http")
        .call(())?;
    lua.set_named_registry_value(CASELESS, caseless)
}

/// The `req` table for a request head. Headers are stored under lowercase
/// names; repeated ones are joined with ", " (RFC 9110 §5.3).
pub fn request_table(lua: &Lua, head: &Head) -> mlua::Result<Table> {
    let req = lua.create_table()?;
    req.set("method", head.method.as_str())?;
    req.set("target", head.target.as_str())?;
    req.set("path", head.path())?;
    req.set("query", head.query())?;
    req.set("version", if head.version == 0 { "1.0" } else { "1.1" })?;
    let headers = lua.create_table()?;
    for (name, value) in &head.headers {
        let name = name.to_ascii_lowercase();
        let joined = match headers.raw_get::<Option<mlua::LuaString>>(name.as_str())? {
            Some(prev) => [&prev.as_bytes()[..], b", ", value].concat(),
            None => value.clone(),
        };
        headers.raw_set(name, lua.create_string(joined)?)?;
    }
    let caseless: Function = lua.named_registry_value(CASELESS)?;
    req.set("headers", caseless.call::<Value>(headers)?)?;
    Ok(req)
}
