//! `moonport.json`: JSON text to Lua values and back, on serde_json.
//!
//! `null` is `moonport.json.null` (mlua's null sentinel), so a decoded
//! object keeps keys whose value is null, and arrays come back with mlua's
//! array metatable (also set by `moonport.json.array`), so `[]` re-encodes
//! as `[]`, not `{}`. Integers too big for a Lua number to hold exactly can
//! come back as strings. Invalid input or an unencodable value is
//! `nil, err`; a wrong argument type is a Lua error.

use mlua::{Integer, IntoLuaMulti, Lua, LuaSerdeExt, MultiValue, Table, Value};
use serde_json::{Map, Number, Value as Json};

use super::args::{self, Arg};
use crate::buf::Buffer;

/// Nesting deeper than this is refused both ways (a cycle when encoding).
const MAX_DEPTH: usize = 128;

/// The largest integer every Lua number type holds exactly: LuaJIT's are doubles.
#[cfg(feature = "luajit")]
const EXACT: u64 = 1 << 53;
#[cfg(not(feature = "luajit"))]
const EXACT: u64 = i64::MAX as u64;

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let json = lua.create_table()?;
    json.set("encode", lua.create_function(encode)?)?;
    json.set("decode", lua.create_function(decode)?)?;
    json.set("null", lua.null())?;
    json.set(
        "array",
        lua.create_function(|lua, t: Value| {
            let t = args::opt_table(lua, t, Arg::new("array", 1))?.map_or_else(|| lua.create_table(), Ok)?;
            t.set_metatable(Some(lua.array_metatable()))?;
            Ok(t)
        })?,
    )?;
    Ok(json)
}

fn encode(lua: &Lua, (value, opts): (Value, Value)) -> mlua::Result<MultiValue> {
    let opts = args::opt_table(lua, opts, Arg::new("encode", 2))?;
    let pretty = args::boolean(lua, args::field(opts.as_ref(), "pretty")?, Arg::new("encode", 2).key("pretty"), None)?
        .unwrap_or(false);
    let json = match to_json(lua, &value, 0) {
        Ok(json) => json,
        Err(why) => return (Value::Nil, why).into_lua_multi(lua),
    };
    let text = if pretty { serde_json::to_string_pretty(&json) } else { serde_json::to_string(&json) };
    match text {
        Ok(text) => text.into_lua_multi(lua),
        Err(e) => (Value::Nil, e.to_string()).into_lua_multi(lua),
    }
}

fn to_json(lua: &Lua, v: &Value, depth: usize) -> Result<Json, String> {
    if depth > MAX_DEPTH {
        return Err(format!("cannot encode: nested deeper than {MAX_DEPTH} (a cycle?)"));
    }
    Ok(match v {
        Value::Nil => Json::Null,
        Value::LightUserData(p) if p.0.is_null() => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Integer(i) => Json::from(*i),
        Value::Number(n) => number(*n)?,
        Value::String(s) => {
            Json::String(s.to_str().map_err(|_| "cannot encode: a string is not valid UTF-8".to_string())?.to_string())
        }
        Value::Table(t) => table(lua, t, depth)?,
        Value::UserData(ud) if ud.is::<Buffer>() => {
            let buf = ud.borrow::<Buffer>().map_err(|e| e.to_string())?;
            let text = std::str::from_utf8(buf.as_slice())
                .map_err(|_| "cannot encode: a buffer is not valid UTF-8".to_string())?;
            Json::String(text.to_string())
        }
        other => return Err(format!("cannot encode a {}", other.type_name())),
    })
}

/// Whole numbers print without a fraction, as Lua prints them.
fn number(n: f64) -> Result<Json, String> {
    if !n.is_finite() {
        return Err(format!("cannot encode {n}"));
    }
    if n.fract() == 0.0 && n.abs() <= EXACT as f64 {
        return Ok(Json::from(n as i64));
    }
    Ok(Number::from_f64(n).map_or(Json::Null, Json::Number))
}

/// A table is an array when it carries the array metatable or its keys are
/// exactly 1..n (n > 0); anything else is an object, whose number keys
/// become strings, as most Lua JSON libraries do.
fn table(lua: &Lua, t: &Table, depth: usize) -> Result<Json, String> {
    let marked = t.metatable().is_some_and(|m| m == lua.array_metatable());
    let len = t.raw_len();
    let mut count = 0usize;
    for pair in t.pairs::<Value, Value>() {
        pair.map_err(|e| e.to_string())?;
        count += 1;
    }
    if marked || (len > 0 && count == len) {
        let mut items = Vec::with_capacity(len);
        for i in 1..=len {
            let v: Value = t.raw_get(i).map_err(|e| e.to_string())?;
            items.push(to_json(lua, &v, depth + 1)?);
        }
        return Ok(Json::Array(items));
    }
    let mut map = Map::new();
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair.map_err(|e| e.to_string())?;
        let key = match &k {
            Value::String(s) => {
                s.to_str().map_err(|_| "cannot encode: a key is not valid UTF-8".to_string())?.to_string()
            }
            Value::Integer(i) => i.to_string(),
            Value::Number(n) => number(*n)?.to_string(),
            other => return Err(format!("cannot encode a {} key", other.type_name())),
        };
        map.insert(key, to_json(lua, &v, depth + 1)?);
    }
    Ok(Json::Object(map))
}

fn decode(lua: &Lua, (text, opts): (Value, Value)) -> mlua::Result<MultiValue> {
    let text = args::bytes(lua, text, Arg::new("decode", 1))?;
    let opts = args::opt_table(lua, opts, Arg::new("decode", 2))?;
    let arg = Arg::new("decode", 2).key("big_integers");
    let big_as_string = match args::opt_bytes(lua, args::field(opts.as_ref(), "big_integers")?, arg)? {
        None => false,
        Some(s) if s.as_bytes().as_ref() == b"string" => true,
        Some(s) if s.as_bytes().as_ref() == b"number" => false,
        Some(s) => return Err(arg.error(lua, format!("\"string\" or \"number\" expected, got \"{}\"", s.display()))),
    };
    // serde_json's own recursion limit (128) bounds the nesting here.
    let json: Json = match serde_json::from_slice(&text.as_bytes()) {
        Ok(json) => json,
        Err(e) => return (Value::Nil, format!("invalid JSON: {e}")).into_lua_multi(lua),
    };
    to_lua(lua, &json, big_as_string)?.into_lua_multi(lua)
}

/// Whether a number was written as an integer (serde_json keeps its digits).
fn is_integer(n: &Number) -> bool {
    !n.to_string().contains(['.', 'e', 'E'])
}

fn to_lua(lua: &Lua, json: &Json, big_as_string: bool) -> mlua::Result<Value> {
    Ok(match json {
        Json::Null => lua.null(),
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => {
            let exact = n.as_i64().filter(|i| i.unsigned_abs() <= EXACT).map(|i| i as Integer);
            match (exact, n.as_f64()) {
                (Some(i), _) => Value::Integer(i),
                // Beyond what a Lua number holds exactly: the digits, or the nearest number.
                (None, _) if big_as_string && is_integer(n) => Value::String(lua.create_string(n.to_string())?),
                (None, Some(f)) => Value::Number(f),
                (None, None) => Value::Nil,
            }
        }
        Json::String(s) => Value::String(lua.create_string(s)?),
        Json::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, item, big_as_string)?)?;
            }
            t.set_metatable(Some(lua.array_metatable()))?;
            Value::Table(t)
        }
        Json::Object(map) => {
            let t = lua.create_table_with_capacity(0, map.len())?;
            for (k, v) in map {
                t.raw_set(k.as_str(), to_lua(lua, v, big_as_string)?)?;
            }
            Value::Table(t)
        }
    })
}
