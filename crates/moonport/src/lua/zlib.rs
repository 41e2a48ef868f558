//! `moonport.zlib`: DEFLATE compression of strings and buffers, in the zlib,
//! gzip or raw format (flate2 underneath), for scripts that pack data for
//! peers: screen tiles a browser inflates with `DecompressionStream`, gzip
//! bodies, compressed protocol frames. Inflating is bounded (`max`), so a
//! small hostile input cannot expand into an unbounded string.

use std::io::Read;

use flate2::Compression;
use mlua::{IntoLuaMulti, Lua, MultiValue, Table, Value};

use super::args::{self, Arg};
use super::buffer::Bytes;

/// Default bound on what `decompress` produces.
const DEFAULT_MAX: i64 = 64 * 1024 * 1024;

#[derive(Clone, Copy)]
enum Format {
    Zlib,
    Gzip,
    Raw,
}

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let zlib = lua.create_table()?;
    zlib.set("compress", lua.create_function(compress)?)?;
    zlib.set("decompress", lua.create_function(decompress)?)?;
    Ok(zlib)
}

fn format(lua: &Lua, opts: Option<&Table>, arg: Arg) -> mlua::Result<Format> {
    let arg = arg.key("format");
    match args::opt_bytes(lua, args::field(opts, "format")?, arg)? {
        None => Ok(Format::Zlib),
        Some(s) => match &*s.as_bytes() {
            b"zlib" => Ok(Format::Zlib),
            b"gzip" => Ok(Format::Gzip),
            b"raw" => Ok(Format::Raw),
            other => Err(arg.error(
                lua,
                format!("\"zlib\", \"gzip\" or \"raw\" expected, got {:?}", String::from_utf8_lossy(other)),
            )),
        },
    }
}

/// `compress(data [, opts])` → string. `opts.level` 0..9 (default 6: zlib's
/// own default; 1 is several times faster for screen content).
fn compress(lua: &Lua, (data, opts): (Value, Value)) -> mlua::Result<mlua::LuaString> {
    let data = Bytes::from_lua(lua, data, Arg::new("compress", 1))?;
    let arg = Arg::new("compress", 2);
    let opts = args::opt_table(lua, opts, arg)?;
    let level = args::integer(lua, args::field(opts.as_ref(), "level")?, arg.key("level"), (0, 9), Some(6))?;
    let level = Compression::new(level as u32);
    let format = format(lua, opts.as_ref(), arg)?;
    let out = data.with(|bytes| {
        let mut out = Vec::with_capacity(bytes.len() / 4 + 64);
        let read = match format {
            Format::Zlib => flate2::read::ZlibEncoder::new(bytes, level).read_to_end(&mut out),
            Format::Gzip => flate2::read::GzEncoder::new(bytes, level).read_to_end(&mut out),
            Format::Raw => flate2::read::DeflateEncoder::new(bytes, level).read_to_end(&mut out),
        };
        read.map(|_| out)
    });
    // Reading from a slice into a Vec cannot fail.
    lua.create_string(out.map_err(mlua::Error::external)?)
}

/// `decompress(data [, opts])` → string | `nil, err`: `"too large"` past
/// `opts.max` bytes, `"invalid compressed data: ..."` for corrupt input.
fn decompress(lua: &Lua, (data, opts): (Value, Value)) -> mlua::Result<MultiValue> {
    let data = Bytes::from_lua(lua, data, Arg::new("decompress", 1))?;
    let arg = Arg::new("decompress", 2);
    let opts = args::opt_table(lua, opts, arg)?;
    let max =
        args::integer(lua, args::field(opts.as_ref(), "max")?, arg.key("max"), (0, i64::MAX / 2), Some(DEFAULT_MAX))?;
    let format = format(lua, opts.as_ref(), arg)?;
    let result = data.with(|bytes| {
        let limit = max as u64 + 1;
        let mut out = Vec::new();
        let read = match format {
            Format::Zlib => flate2::read::ZlibDecoder::new(bytes).take(limit).read_to_end(&mut out),
            Format::Gzip => flate2::read::GzDecoder::new(bytes).take(limit).read_to_end(&mut out),
            Format::Raw => flate2::read::DeflateDecoder::new(bytes).take(limit).read_to_end(&mut out),
        };
        read.map(|_| out)
    });
    match result {
        Ok(out) if out.len() as i64 > max => (Value::Nil, "too large").into_lua_multi(lua),
        Ok(out) => lua.create_string(out)?.into_lua_multi(lua),
        Err(e) => (Value::Nil, format!("invalid compressed data: {e}")).into_lua_multi(lua),
    }
}
