//! `moonport.socket(family, type, protocol)`: the Berkeley-style socket for
//! simple client code and tools, with the classic constants (`AF_INET`,
//! `SOCK_STREAM`, `SO_REUSEADDR`, ...) on the `moonport` table.
//!
//! Reads and writes go through the same code as `moonport.tcp` connections
//! and `moonport.udp` sockets, so all three behave alike.

use std::net::Shutdown;

use mlua::{IntoLuaMulti, Lua, MultiValue, Table, UserData, UserDataMethods, UserDataRef, Value};

use super::args::{self, Arg};
use super::buffer::Bytes;
use super::net::{self, family_arg};
use super::tcp::{self, DEFAULT_READ_BUFFER, DEFAULT_READ_MAX, ReadOp};
use super::udp;
use crate::net::{NetError, OptKind, OptValue, SockOpt, Socket, SocketKind};

const DEFAULT_BACKLOG: i64 = 128;

pub fn install(lua: &Lua, moonport: &Table) -> mlua::Result<()> {
    moonport.set("socket", lua.create_function(socket)?)?;
    for (name, value) in [
        ("AF_INET", "inet"),
        ("AF_INET6", "inet6"),
        ("SOCK_STREAM", "stream"),
        ("SOCK_DGRAM", "dgram"),
        ("IPPROTO_TCP", "tcp"),
        ("IPPROTO_UDP", "udp"),
    ] {
        moonport.set(name, value)?;
    }
    for opt in SockOpt::ALL {
        moonport.set(opt.name(), opt.name())?;
    }
    Ok(())
}

fn socket(lua: &Lua, (family, ty, proto): (Value, Value, Value)) -> mlua::Result<MultiValue> {
    let family = family_arg(lua, family, Arg::new("socket", 1))?;
    let ty = args::bytes(lua, ty, Arg::new("socket", 2))?;
    let kind = match ty.as_bytes().as_ref() {
        b"stream" => SocketKind::Stream,
        b"dgram" => SocketKind::Datagram,
        _ => return Err(Arg::new("socket", 2).error(lua, "\"stream\" or \"dgram\" expected")),
    };
    let proto = args::opt_bytes(lua, proto, Arg::new("socket", 3))?;
    match (kind, proto.as_ref().map(|p| p.as_bytes().to_vec()).as_deref()) {
        (_, None) | (SocketKind::Stream, Some(b"tcp")) | (SocketKind::Datagram, Some(b"udp")) => {}
        _ => return Err(Arg::new("socket", 3).error(lua, "protocol does not match the socket type")),
    }
    match Socket::new(family, kind) {
        Ok(s) => lua.create_userdata(s)?.into_lua_multi(lua),
        Err(e) => udp::fail(lua, e),
    }
}

/// `true` or `nil, err`.
fn done(lua: &Lua, r: Result<(), NetError>) -> mlua::Result<MultiValue> {
    match r {
        Ok(()) => true.into_lua_multi(lua),
        Err(e) => udp::fail(lua, e),
    }
}

fn option_arg(lua: &Lua, v: Value, arg: Arg) -> mlua::Result<SockOpt> {
    let name = args::bytes(lua, v, arg)?;
    SockOpt::parse(&name.to_string_lossy()).ok_or_else(|| arg.error(lua, "unknown socket option"))
}

fn option_value(lua: &Lua, opt: SockOpt, v: Value, arg: Arg) -> mlua::Result<OptValue> {
    Ok(match opt.kind() {
        OptKind::Bool => {
            OptValue::Bool(args::boolean(lua, v, arg, None)?.ok_or_else(|| arg.error(lua, "boolean expected"))?)
        }
        OptKind::Size => OptValue::Size(args::integer(lua, v, arg, (0, i64::from(i32::MAX)), None)? as usize),
        // false or nil turns lingering off; seconds turn it on.
        OptKind::Linger => match v {
            Value::Nil | Value::Boolean(false) => OptValue::Linger(None),
            v => OptValue::Linger(Some(args::duration(lua, v, arg)?)),
        },
    })
}

fn option_lua(lua: &Lua, v: OptValue) -> mlua::Result<MultiValue> {
    match v {
        OptValue::Bool(b) => b.into_lua_multi(lua),
        OptValue::Size(n) => n.into_lua_multi(lua),
        OptValue::Linger(None) => false.into_lua_multi(lua),
        OptValue::Linger(Some(d)) => d.as_secs_f64().into_lua_multi(lua),
    }
}

fn endpoint_or_fail(lua: &Lua, r: Result<std::net::SocketAddr, NetError>) -> mlua::Result<MultiValue> {
    match r {
        Ok(a) => net::endpoint_value(lua, a)?.into_lua_multi(lua),
        Err(e) => udp::fail(lua, e),
    }
}

impl UserData for Socket {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_async_method("bind", |lua, this: UserDataRef<Self>, (host, port): (Value, Value)| async move {
            let (target, _) = net::target(&lua, host, port, "bind", 1)?;
            match net::resolve(&lua, target, Some(this.family())).await {
                Ok(addrs) => done(&lua, this.bind(addrs[0])),
                Err(e) => udp::fail(&lua, e),
            }
        });
        m.add_method("listen", |lua, this, backlog: Value| {
            let backlog = args::integer(lua, backlog, Arg::new("listen", 1), (1, 65535), Some(DEFAULT_BACKLOG))?;
            done(lua, this.listen(backlog as i32))
        });
        m.add_async_method("accept", |lua, this: UserDataRef<Self>, ()| async move {
            match this.accept(DEFAULT_READ_BUFFER as usize).await {
                Ok((sock, peer)) => (lua.create_userdata(sock)?, net::endpoint_value(&lua, peer)?).into_lua_multi(&lua),
                Err(e) => udp::fail(&lua, e),
            }
        });
        m.add_async_method("connect", |lua, this: UserDataRef<Self>, (host, port): (Value, Value)| async move {
            let (target, _) = net::target(&lua, host, port, "connect", 1)?;
            let addr = match net::resolve(&lua, target, Some(this.family())).await {
                Ok(addrs) => addrs[0],
                Err(e) => return udp::fail(&lua, e),
            };
            done(&lua, this.connect(addr, DEFAULT_READ_BUFFER as usize).await)
        });
        m.add_async_method("send", |lua, this: UserDataRef<Self>, data: Value| async move {
            let data = Bytes::from_lua(&lua, data, Arg::new("send", 1))?;
            if this.kind() == SocketKind::Datagram {
                return match this.datagram() {
                    Ok(u) => udp::send(&lua, &u, data, None).await,
                    Err(e) => udp::fail(&lua, e),
                };
            }
            let conn = match this.stream() {
                Ok(c) => c,
                Err(e) => return udp::fail(&lua, e),
            };
            tcp::write(&lua, &conn, tcp::Outgoing::new(&conn, data, 0), 0).await
        });
        m.add_async_method("recv", |lua, this: UserDataRef<Self>, max: Value| async move {
            if this.kind() == SocketKind::Datagram {
                let max = udp::max_arg(&lua, max, Arg::new("recv", 1))?;
                return match this.datagram() {
                    Ok(u) => udp::recv(&lua, &u, max, false).await,
                    Err(e) => udp::fail(&lua, e),
                };
            }
            let max = args::integer(&lua, max, Arg::new("recv", 1), (1, i64::from(u32::MAX)), Some(DEFAULT_READ_MAX))?;
            match this.stream() {
                Ok(conn) => tcp::read(&lua, &conn, ReadOp::Some(max as usize)).await,
                Err(e) => udp::fail(&lua, e),
            }
        });
        m.add_async_method(
            "sendto",
            |lua, this: UserDataRef<Self>, (data, host, port): (Value, Value, Value)| async move {
                let data = Bytes::from_lua(&lua, data, Arg::new("sendto", 1))?;
                let (to, _) = net::target(&lua, host, port, "sendto", 2)?;
                match this.datagram() {
                    Ok(u) => udp::send(&lua, &u, data, Some(to)).await,
                    Err(e) => udp::fail(&lua, e),
                }
            },
        );
        m.add_async_method("recvfrom", |lua, this: UserDataRef<Self>, max: Value| async move {
            let max = udp::max_arg(&lua, max, Arg::new("recvfrom", 1))?;
            match this.datagram() {
                Ok(u) => udp::recv(&lua, &u, max, true).await,
                Err(e) => udp::fail(&lua, e),
            }
        });
        m.add_method("setoption", |lua, this, (name, value): (Value, Value)| {
            let opt = option_arg(lua, name, Arg::new("setoption", 1))?;
            let value = option_value(lua, opt, value, Arg::new("setoption", 2))?;
            done(lua, this.set_option(opt, value))
        });
        m.add_method("getoption", |lua, this, name: Value| {
            let opt = option_arg(lua, name, Arg::new("getoption", 1))?;
            match this.with_sock(|s| opt.get(s)) {
                Ok(v) => option_lua(lua, v),
                Err(e) => udp::fail(lua, e),
            }
        });
        m.add_async_method("shutdown", |lua, this: UserDataRef<Self>, how: Value| async move {
            let arg = Arg::new("shutdown", 1);
            let how = match args::opt_bytes(&lua, how, arg)?.as_ref().map(|h| h.as_bytes().to_vec()).as_deref() {
                None | Some(b"both") => Shutdown::Both,
                Some(b"read") => Shutdown::Read,
                Some(b"write") => Shutdown::Write,
                Some(_) => return Err(arg.error(&lua, "\"read\", \"write\" or \"both\" expected")),
            };
            done(&lua, this.shutdown(how).await)
        });
        m.add_method("settimeout", |lua, this, t: Value| {
            this.set_timeout(args::timeout(lua, t, Arg::new("settimeout", 1))?.flatten());
            Ok(())
        });
        m.add_method("getsockname", |lua, this, ()| endpoint_or_fail(lua, this.local_addr()));
        m.add_method("getpeername", |lua, this, ()| endpoint_or_fail(lua, this.peer_addr()));
        m.add_method("fileno", |lua, this, ()| match this.fileno() {
            Ok(fd) => fd.into_lua_multi(lua),
            Err(e) => udp::fail(lua, e),
        });
        m.add_method("close", |lua, this, ()| {
            if this.is_closed() {
                return udp::fail(lua, NetError::Closed);
            }
            this.close();
            true.into_lua_multi(lua)
        });
        m.add_meta_method("__tostring", |_, this, ()| {
            let kind = match this.kind() {
                SocketKind::Stream => "stream",
                SocketKind::Datagram => "dgram",
            };
            Ok(match this.local_addr() {
                Ok(a) => format!("socket({kind}, {a})"),
                Err(_) => format!("socket({kind})"),
            })
        });
    }
}
