//! `moonport.buffer`: byte buffers with typed writers, and readers with a
//! position. Writers append and return the buffer, so calls chain; growing
//! past the buffer's maximum raises `buffer full`. Readers return
//! `nil, "short buffer"` without moving when too few bytes remain, so a
//! caller can wait for more and try again.

use std::ops::Range;

#[cfg(feature = "luajit")]
use mlua::Function;
use mlua::{AnyUserData, IntoLuaMulti, Lua, MultiValue, Table, UserData, UserDataMethods, Value};

use super::args::{self, Arg};
use crate::buf::{self, Buffer, Cursor, Decoded, Endian, Num, Short};

/// Longest a buffer may grow unless `moonport.buffer.new` says otherwise.
pub const DEFAULT_MAX: usize = 64 * 1024 * 1024;
const DEFAULT_CAPACITY: usize = 256;

/// Largest integer a LuaJIT number (a double) holds exactly: 64-bit values
/// beyond ±2^53 are refused there.
const LUAJIT_EXACT: u128 = 1 << 53;

/// Whether `i` survives the trip through a Lua number unchanged: always with
/// Lua 5.4's 64-bit integers, within ±2^53 with LuaJIT's doubles.
fn exact(i: i128) -> bool {
    !cfg!(feature = "luajit") || i.unsigned_abs() <= LUAJIT_EXACT
}

/// Encodes a Lua number as `num` into `out`.
fn encode(lua: &Lua, num: Num, v: &Value, endian: Endian, arg: Arg, out: &mut Vec<u8>) -> mlua::Result<()> {
    let float = match *v {
        Value::Integer(i) => i as f64,
        Value::Number(n) => n,
        ref other => return Err(arg.error(lua, format!("number expected, got {}", other.type_name()))),
    };
    if num.is_float() {
        num.put_float(float, endian, out);
        return Ok(());
    }
    let int: i128 = match *v {
        Value::Integer(i) => i.into(),
        _ if float.fract() == 0.0 && float.abs() < 1.9e19 => float as i128,
        _ => return Err(arg.error(lua, format!("integer expected, got {float}"))),
    };
    num.put_int(int, endian, out).map_err(|_| arg.error(lua, format!("{int} out of range for {num:?}")))
}

/// Decodes one value; `Ok(None)` (position unmoved) for a 64-bit integer
/// this Lua cannot hold exactly.
fn decode(num: Num, cur: &mut Cursor, endian: Endian) -> Result<Option<Value>, Short> {
    let start = cur.pos();
    match num.get(cur, endian)? {
        Decoded::Float(f) => Ok(Some(Value::Number(f))),
        // Lua 5.4 integers are i64: u64 values past i64::MAX wrap, as in string.unpack.
        Decoded::Int(i) if exact(i) => Ok(Some(Value::Integer(i as i64))),
        Decoded::Int(_) => {
            cur.rewind(start);
            Ok(None)
        }
    }
}

/// A length prefix for `write_lstring` / `read_lstring`.
enum Prefix {
    Fixed(Num, Endian),
    Varint,
}

fn prefix(lua: &Lua, v: Value, arg: Arg) -> mlua::Result<Prefix> {
    let kind = args::bytes(lua, v, arg)?;
    let kind = kind.to_str()?;
    let (num, endian) = match &*kind {
        "varint" => return Ok(Prefix::Varint),
        "u8" => (Num::U8, Endian::Big),
        "u16le" => (Num::U16, Endian::Little),
        "u16be" | "u16" => (Num::U16, Endian::Big),
        "u32le" => (Num::U32, Endian::Little),
        "u32be" | "u32" => (Num::U32, Endian::Big),
        "u64le" => (Num::U64, Endian::Little),
        "u64be" | "u64" => (Num::U64, Endian::Big),
        other => {
            return Err(arg.error(
                lua,
                format!("length prefix \"{other}\": u8, u16le, u16be, u32le, u32be, u64le, u64be or varint expected"),
            ));
        }
    };
    Ok(Prefix::Fixed(num, endian))
}

/// Lua's `string.sub` index rules: 1-based, negative counts from the end,
/// clamped to the buffer.
fn sub_range(len: usize, i: Option<i64>, j: Option<i64>) -> Range<usize> {
    let len_i = len as i64;
    let norm = |k: i64| if k < 0 { (len_i + k + 1).max(0) } else { k };
    let start = norm(i.unwrap_or(1)).max(1);
    let end = norm(j.unwrap_or(-1)).min(len_i);
    if start > end { 0..0 } else { (start - 1) as usize..end as usize }
}

fn opt_index(lua: &Lua, v: Value, arg: Arg) -> mlua::Result<Option<i64>> {
    match v {
        Value::Nil => Ok(None),
        v => args::integer(lua, v, arg, (i64::MIN / 2, i64::MAX / 2), None).map(Some),
    }
}

/// Bytes from a string or a buffer, for `append` and `write_string`.
pub enum Bytes {
    Str(mlua::LuaString),
    Buf(crate::buf::Chunk),
}

impl Bytes {
    pub fn from_lua(lua: &Lua, v: Value, arg: Arg) -> mlua::Result<Self> {
        match v {
            Value::UserData(ud) if ud.is::<Buffer>() => Ok(Bytes::Buf(ud.borrow::<Buffer>()?.chunk())),
            v => args::bytes(lua, v, arg).map(Bytes::Str),
        }
    }

    pub fn with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Bytes::Str(s) => f(&s.as_bytes()),
            Bytes::Buf(c) => f(c.as_slice()),
        }
    }
}

fn full(lua: &Lua, func: &str) -> mlua::Error {
    mlua::Error::runtime(format!("{}{func}: buffer full", args::location(lua)))
}

/// Appends encoded bytes to the buffer in `ud`, raising `buffer full`.
fn append(lua: &Lua, ud: &AnyUserData, func: &str, bytes: &[u8]) -> mlua::Result<()> {
    ud.borrow_mut::<Buffer>()?.extend(bytes).map_err(|_| full(lua, func))
}

impl UserData for Buffer {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_meta_method("__len", |_, this, ()| Ok(this.len()));
        m.add_meta_method("__eq", |_, this, other: AnyUserData| {
            Ok(other.borrow::<Buffer>().is_ok_and(|o| *this == *o))
        });
        m.add_meta_method("__tostring", |_, this, ()| Ok(format!("buffer({} bytes)", this.len())));
        m.add_method("capacity", |_, this, ()| Ok(this.capacity()));
        m.add_method_mut("clear", |_, this, ()| {
            this.clear();
            Ok(())
        });
        m.add_method("tostring", |lua, this, (i, j): (Value, Value)| {
            let r = sub_range(
                this.len(),
                opt_index(lua, i, Arg::new("tostring", 1))?,
                opt_index(lua, j, Arg::new("tostring", 2))?,
            );
            lua.create_string(&this.as_slice()[r])
        });
        m.add_method("byte", |lua, this, i: Value| {
            let i = args::integer(lua, i, Arg::new("byte", 1), (i64::MIN / 2, i64::MAX / 2), Some(1))?;
            let r = sub_range(this.len(), Some(i), Some(i));
            Ok(this.as_slice().get(r).and_then(|b| b.first().copied()))
        });
        m.add_method("slice", |lua, this, (i, j): (Value, Value)| {
            let r = sub_range(
                this.len(),
                opt_index(lua, i, Arg::new("slice", 1))?,
                opt_index(lua, j, Arg::new("slice", 2))?,
            );
            Ok(this.slice(r))
        });
        m.add_method("find", |lua, this, (needle, init): (Value, Value)| {
            let needle = Bytes::from_lua(lua, needle, Arg::new("find", 1))?;
            let init = args::integer(lua, init, Arg::new("find", 2), (i64::MIN / 2, i64::MAX / 2), Some(1))?;
            let from = sub_range(this.len(), Some(init), None).start;
            let hay = &this.as_slice()[from.min(this.len())..];
            Ok(needle.with(|n| memchr::memmem::find(hay, n)).map(|at| from + at + 1))
        });
        m.add_function("append", |lua, (ud, data): (AnyUserData, Value)| {
            let data = Bytes::from_lua(lua, data, Arg::new("append", 1))?;
            data.with(|bytes| append(lua, &ud, "append", bytes))?;
            Ok(ud)
        });
        m.add_function("write_string", |lua, (ud, data): (AnyUserData, Value)| {
            let data = Bytes::from_lua(lua, data, Arg::new("write_string", 1))?;
            data.with(|bytes| append(lua, &ud, "write_string", bytes))?;
            Ok(ud)
        });
        m.add_function("write_lstring", |lua, (ud, data, kind): (AnyUserData, Value, Value)| {
            let data = Bytes::from_lua(lua, data, Arg::new("write_lstring", 1))?;
            let mut head = Vec::with_capacity(10);
            let len = data.with(<[u8]>::len);
            match prefix(lua, kind, Arg::new("write_lstring", 2))? {
                Prefix::Varint => buf::encode_uvarint(len as u64, &mut head),
                Prefix::Fixed(num, endian) => {
                    encode(lua, num, &Value::Integer(len as i64), endian, Arg::new("write_lstring", 1), &mut head)?
                }
            }
            let mut this = ud.borrow_mut::<Buffer>()?;
            let total = head.len() + len;
            this.extend_with(total, |v| {
                v.extend_from_slice(&head);
                data.with(|bytes| v.extend_from_slice(bytes));
            })
            .map_err(|_| full(lua, "write_lstring"))?;
            drop(this);
            Ok(ud)
        });
        m.add_function("write_varint", |lua, (ud, v): (AnyUserData, Value)| {
            let n = args::integer(lua, v, Arg::new("write_varint", 1), (0, i64::MAX), None)?;
            let mut out = Vec::with_capacity(10);
            buf::encode_uvarint(n as u64, &mut out);
            append(lua, &ud, "write_varint", &out)?;
            Ok(ud)
        });
        m.add_function("write_svarint", |lua, (ud, v): (AnyUserData, Value)| {
            let n = args::integer(lua, v, Arg::new("write_svarint", 1), (i64::MIN, i64::MAX), None)?;
            let mut out = Vec::with_capacity(10);
            buf::encode_svarint(n, &mut out);
            append(lua, &ud, "write_svarint", &out)?;
            Ok(ud)
        });
        for (name, num, endian) in typed_names() {
            let func = format!("write_{name}");
            m.add_function(func.clone(), move |lua, (ud, v): (AnyUserData, Value)| {
                let mut out = Vec::with_capacity(8);
                encode(lua, num, &v, endian, Arg::new(&func, 1), &mut out)?;
                append(lua, &ud, &func, &out)?;
                Ok(ud)
            });
        }
        #[cfg(feature = "luajit")]
        m.add_method_mut("ptr", |lua, this, ()| {
            let cast: Function = lua.named_registry_value(FFI_CAST)?;
            let bytes = this.as_mut_slice();
            let ptr = mlua::LightUserData(bytes.as_mut_ptr().cast());
            cast.call::<MultiValue>((ptr, bytes.len()))
        });
    }
}

/// Registry key of `function(p, n) return ffi.cast("uint8_t*", p), n end`.
#[cfg(feature = "luajit")]
const FFI_CAST: &str = "moonport.buffer.ffi_cast";

/// Method suffixes for every typed value: `u8`, `u16`, `u16_le`, `u16_be`, ...
/// Unsuffixed multi-byte names are big-endian (network order).
fn typed_names() -> Vec<(String, Num, Endian)> {
    let mut out = Vec::new();
    for (name, num) in Num::ALL {
        out.push((name.to_string(), num, Endian::Big));
        if num.size() > 1 {
            out.push((format!("{name}_le"), num, Endian::Little));
            out.push((format!("{name}_be"), num, Endian::Big));
        }
    }
    out
}

/// A read position over a buffer. It sees bytes appended to the buffer after
/// it was made, so a stream decoder can wait for more and go on.
struct Reader {
    buf: AnyUserData,
    pos: usize,
}

const SHORT: &str = "short buffer";

impl Reader {
    /// Runs a decode at the position; moves only if it succeeds.
    fn decode<T>(&mut self, f: impl FnOnce(&mut Cursor) -> Result<T, Short>) -> mlua::Result<Result<T, Short>> {
        let buf = self.buf.borrow::<Buffer>()?;
        let mut cur = Cursor::new(buf.as_slice(), self.pos);
        let out = f(&mut cur);
        if out.is_ok() {
            self.pos = cur.pos();
        }
        Ok(out)
    }
}

fn short(lua: &Lua, reason: &str) -> mlua::Result<MultiValue> {
    (Value::Nil, reason).into_lua_multi(lua)
}

impl UserData for Reader {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        for (name, num, endian) in typed_names() {
            m.add_method_mut(format!("read_{name}"), move |lua, this, ()| {
                match this.decode(|c| decode(num, c, endian))? {
                    Ok(Some(v)) => v.into_lua_multi(lua),
                    Ok(None) => short(lua, "integer too large"),
                    Err(Short) => short(lua, SHORT),
                }
            });
        }
        m.add_method_mut("read_varint", |lua, this, ()| varint(lua, this, |c| c.uvarint().map(|v| v as i64)));
        m.add_method_mut("read_svarint", |lua, this, ()| varint(lua, this, |c| c.svarint()));
        m.add_method_mut("read_bytes", |lua, this, n: Value| {
            let n = args::integer(lua, n, Arg::new("read_bytes", 1), (0, i64::MAX), None)? as usize;
            match this.decode(|c| c.take(n).map(|b| lua.create_string(b)))? {
                Ok(s) => s?.into_lua_multi(lua),
                Err(Short) => short(lua, SHORT),
            }
        });
        m.add_method_mut("read_slice", |lua, this, n: Value| {
            let n = args::integer(lua, n, Arg::new("read_slice", 1), (0, i64::MAX), None)? as usize;
            let start = this.pos;
            match this.decode(|c| c.take(n).map(<[u8]>::len))? {
                Ok(len) => this.buf.borrow::<Buffer>()?.slice(start..start + len).into_lua_multi(lua),
                Err(Short) => short(lua, SHORT),
            }
        });
        m.add_method_mut("read_lstring", |lua, this, kind: Value| {
            let kind = prefix(lua, kind, Arg::new("read_lstring", 1))?;
            let read = this.decode(|c| {
                let len = match kind {
                    Prefix::Varint => c.uvarint().map_err(|_| Short)?,
                    Prefix::Fixed(num, endian) => match decode(num, c, endian)? {
                        Some(Value::Integer(n)) => n as u64,
                        _ => u64::MAX,
                    },
                };
                c.take(usize::try_from(len).map_err(|_| Short)?).map(|b| lua.create_string(b))
            })?;
            match read {
                Ok(s) => s?.into_lua_multi(lua),
                Err(Short) => short(lua, SHORT),
            }
        });
        m.add_method("remaining", |_, this, ()| Ok(this.buf.borrow::<Buffer>()?.len().saturating_sub(this.pos)));
        m.add_method("tell", |_, this, ()| Ok(this.pos));
        m.add_method_mut("seek", |lua, this, pos: Value| {
            let len = this.buf.borrow::<Buffer>()?.len();
            let pos = args::integer(lua, pos, Arg::new("seek", 1), (0, i64::MAX), None)? as usize;
            if pos > len {
                return short(lua, SHORT);
            }
            this.pos = pos;
            pos.into_lua_multi(lua)
        });
        m.add_method_mut("skip", |lua, this, n: Value| {
            let n = args::integer(lua, n, Arg::new("skip", 1), (0, i64::MAX), None)? as usize;
            match this.decode(|c| c.take(n).map(|_| ()))? {
                Ok(()) => this.pos.into_lua_multi(lua),
                Err(Short) => short(lua, SHORT),
            }
        });
        m.add_method_mut("compact", |_, this, ()| {
            this.buf.borrow_mut::<Buffer>()?.discard_front(this.pos);
            this.pos = 0;
            Ok(())
        });
        m.add_method("buffer", |_, this, ()| Ok(this.buf.clone()));
    }
}

fn varint(
    lua: &Lua,
    this: &mut Reader,
    f: impl FnOnce(&mut Cursor) -> Result<i64, Option<Short>>,
) -> mlua::Result<MultiValue> {
    let mut malformed = false;
    let read = this.decode(|c| {
        f(c).map_err(|e| {
            malformed = e.is_none();
            Short
        })
    })?;
    match read {
        Ok(v) if exact(v as i128) => v.into_lua_multi(lua),
        Ok(_) => short(lua, "integer too large"),
        Err(_) if malformed => short(lua, "malformed varint"),
        Err(_) => short(lua, SHORT),
    }
}

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    #[cfg(feature = "luajit")]
    {
        let cast: Function = lua
            .load("local ffi = require('ffi')\nreturn function(p, n) return ffi.cast('uint8_t*', p), n end")
            .set_name("=moonport.buffer")
            .call(())?;
        lua.set_named_registry_value(FFI_CAST, cast)?;
    }
    let m = lua.create_table()?;
    m.set(
        "new",
        lua.create_function(|lua, (capacity, max): (Value, Value)| {
            let max = args::integer(lua, max, Arg::new("new", 2), (0, i64::MAX), Some(DEFAULT_MAX as i64))? as usize;
            let cap = args::integer(lua, capacity, Arg::new("new", 1), (0, i64::MAX), Some(DEFAULT_CAPACITY as i64))?;
            Ok(Buffer::with_capacity(cap as usize, max))
        })?,
    )?;
    m.set(
        "from",
        lua.create_function(|lua, (data, max): (Value, Value)| {
            let data = Bytes::from_lua(lua, data, Arg::new("from", 1))?;
            let max = args::integer(lua, max, Arg::new("from", 2), (0, i64::MAX), Some(DEFAULT_MAX as i64))? as usize;
            Ok(data.with(|b| Buffer::from_slice(b, max)))
        })?,
    )?;
    m.set(
        "reader",
        lua.create_function(|lua, (buf, pos): (Value, Value)| {
            let buf = match buf {
                Value::UserData(ud) if ud.is::<Buffer>() => ud,
                other => {
                    return Err(Arg::new("reader", 1).error(lua, format!("buffer expected, got {}", other.type_name())));
                }
            };
            let pos = args::integer(lua, pos, Arg::new("reader", 2), (0, i64::MAX), Some(0))? as usize;
            Ok(Reader { buf, pos })
        })?,
    )?;
    m.set("is_buffer", lua.create_function(|_, v: Value| Ok(matches!(v, Value::UserData(ud) if ud.is::<Buffer>())))?)?;
    Ok(m)
}
