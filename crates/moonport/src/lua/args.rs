//! Argument checks for the bindings. A wrong argument is a programmer mistake,
//! so it raises a Lua error that names the function and the script's line,
//! in the words of Lua's own `bad argument #1 to 'f' (...)`.

use std::time::Duration;

use mlua::{Function, Lua, Table, Value};

/// Which argument is being checked, for the error message.
#[derive(Debug, Clone, Copy)]
pub struct Arg<'a> {
    pub func: &'a str,
    pub pos: usize,
    /// The field when the argument is an options table.
    pub key: Option<&'a str>,
}

impl<'a> Arg<'a> {
    pub fn new(func: &'a str, pos: usize) -> Self {
        Self { func, pos, key: None }
    }

    pub fn key(self, key: &'a str) -> Self {
        Self { key: Some(key), ..self }
    }

    pub fn error(self, lua: &Lua, msg: impl std::fmt::Display) -> mlua::Error {
        let Arg { func, pos, key } = self;
        let key = key.map(|k| format!("{k}: ")).unwrap_or_default();
        mlua::Error::runtime(format!("{}bad argument #{pos} to '{func}' ({key}{msg})", location(lua)))
    }

    fn expected(self, lua: &Lua, what: &str, got: &Value) -> mlua::Error {
        self.error(lua, format!("{what} expected, got {}", got.type_name()))
    }
}

/// `file:line: ` of the innermost script function on the stack, skipping
/// mlua's internal async trampoline and moonport's own Lua wrappers.
pub fn location(lua: &Lua) -> String {
    for level in 1..8 {
        let found = lua.inspect_stack(level, |d| {
            let src = d.source().short_src.map(|s| s.into_owned()).unwrap_or_default();
            (src, d.current_line())
        });
        match found {
            None => break,
            Some((src, Some(line))) if !src.contains("__mlua") && src != super::INTERNAL_CHUNK[1..] => {
                return format!("{src}:{line}: ");
            }
            Some(_) => continue,
        }
    }
    String::new()
}

pub fn function(lua: &Lua, v: Value, arg: Arg) -> mlua::Result<Function> {
    match v {
        Value::Function(f) => Ok(f),
        other => Err(arg.expected(lua, "function", &other)),
    }
}

/// A table, or `None` for nil.
pub fn opt_table(lua: &Lua, v: Value, arg: Arg) -> mlua::Result<Option<Table>> {
    match v {
        Value::Nil => Ok(None),
        Value::Table(t) => Ok(Some(t)),
        other => Err(arg.expected(lua, "table", &other)),
    }
}

/// A string, or a number converted as Lua's own string functions do.
pub fn bytes(lua: &Lua, v: Value, arg: Arg) -> mlua::Result<mlua::LuaString> {
    match v {
        Value::String(s) => Ok(s),
        Value::Integer(_) | Value::Number(_) => {
            let what = v.type_name();
            lua.coerce_string(v)?.ok_or_else(|| arg.error(lua, format!("string expected, got {what}")))
        }
        other => Err(arg.expected(lua, "string", &other)),
    }
}

/// A string or nil.
pub fn opt_bytes(lua: &Lua, v: Value, arg: Arg) -> mlua::Result<Option<mlua::LuaString>> {
    match v {
        Value::Nil => Ok(None),
        v => bytes(lua, v, arg).map(Some),
    }
}

/// An integer within `min..=max`; nil gives `default` when there is one.
pub fn integer(lua: &Lua, v: Value, arg: Arg, range: (i64, i64), default: Option<i64>) -> mlua::Result<i64> {
    let n = match (v, default) {
        (Value::Nil, Some(d)) => return Ok(d),
        (Value::Integer(i), _) => i as f64,
        (Value::Number(n), _) => n,
        (other, _) => return Err(arg.expected(lua, "integer", &other)),
    };
    let (min, max) = range;
    if n.fract() != 0.0 || n < min as f64 || n > max as f64 {
        return Err(arg.error(lua, format!("integer {min}..{max} expected, got {n}")));
    }
    Ok(n as i64)
}

/// A boolean; nil gives `default`.
pub fn boolean(lua: &Lua, v: Value, arg: Arg, default: Option<bool>) -> mlua::Result<Option<bool>> {
    match v {
        Value::Nil => Ok(default),
        Value::Boolean(b) => Ok(Some(b)),
        other => Err(arg.expected(lua, "boolean", &other)),
    }
}

/// Seconds as a non-negative number.
pub fn duration(lua: &Lua, v: Value, arg: Arg) -> mlua::Result<Duration> {
    let secs = match v {
        Value::Integer(i) => i as f64,
        Value::Number(n) => n,
        other => return Err(arg.expected(lua, "number of seconds", &other)),
    };
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(arg.error(lua, format!("seconds must be between 0 and 1e9, got {secs}")));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A timeout in seconds: nil leaves it as it is (`None`), 0 turns it off
/// (`Some(None)`).
pub fn timeout(lua: &Lua, v: Value, arg: Arg) -> mlua::Result<Option<Option<Duration>>> {
    match v {
        Value::Nil => Ok(None),
        v => {
            let d = duration(lua, v, arg)?;
            Ok(Some((!d.is_zero()).then_some(d)))
        }
    }
}

/// `opts[key]`, or nil when there is no options table.
pub fn field(opts: Option<&Table>, key: &str) -> mlua::Result<Value> {
    opts.map_or(Ok(Value::Nil), |t| t.get(key))
}
