//! `moonport.udp`: datagram sockets. `bind` gives a socket with `sendto` /
//! `recvfrom`, `connect` / `send` / `recv`, broadcast and multicast. The
//! receive and send helpers here also serve datagram `moonport.socket`s.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Deref;
use std::rc::Rc;

use mlua::{IntoLuaMulti, Lua, MultiValue, Table, UserData, UserDataMethods, UserDataRef, Value};
use socket2::SockRef;

use super::args::{self, Arg};
use super::buffer::Bytes;
use super::net::{self, Target};
use crate::net::addr::Family;
use crate::net::{MAX_DATAGRAM, NetError, Receives, UdpSock};

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let udp = lua.create_table()?;
    udp.set("bind", lua.create_async_function(bind)?)?;
    Ok(udp)
}

/// `nil, err`.
pub fn fail(lua: &Lua, e: impl ToString) -> mlua::Result<MultiValue> {
    (Value::Nil, e.to_string()).into_lua_multi(lua)
}

/// `moonport.udp.bind(host, port)` / `(endpoint)`; port 0 picks a free one.
async fn bind(lua: Lua, (host, port): (Value, Value)) -> mlua::Result<MultiValue> {
    let (target, _) = net::target(&lua, host, port, "bind", 1)?;
    let addr = match net::resolve(&lua, target, None).await {
        Ok(addrs) => addrs[0],
        Err(e) => return fail(&lua, e),
    };
    let ctx = super::worker(&lua)?;
    let generation = ctx.generation.number;
    // A fixed address an older version of the script has bound is shared
    // with it (a reload), its receives held until the reload commits.
    let sock = match ctx.datagrams.take_over(addr, generation) {
        Some(socket) => UdpSock::sharing(socket, if ctx.pending.get() { Receives::Held } else { Receives::Open }),
        None => match UdpSock::bind(addr).await {
            Ok(sock) => sock,
            Err(e) => return fail(&lua, e),
        },
    };
    let sock = Rc::new(sock);
    ctx.datagrams.add(addr, generation, &sock);
    lua.create_userdata(Udp(sock))?.into_lua_multi(&lua)
}

/// A `moonport.udp` socket, shared with the worker's record of bound
/// sockets, through which a reload hands it to the script's next version.
pub struct Udp(Rc<UdpSock>);

impl Deref for Udp {
    type Target = UdpSock;

    fn deref(&self) -> &UdpSock {
        &self.0
    }
}

/// The size limit argument of a receive.
pub fn max_arg(lua: &Lua, v: Value, arg: Arg) -> mlua::Result<usize> {
    Ok(args::integer(lua, v, arg, (1, MAX_DATAGRAM as i64), Some(MAX_DATAGRAM as i64))? as usize)
}

/// Receives one datagram: `data, endpoint` (`data` alone when `with_from` is
/// false); one larger than `max` gives `nil, "truncated", first_max_bytes, endpoint`.
pub async fn recv(lua: &Lua, sock: &UdpSock, max: usize, with_from: bool) -> mlua::Result<MultiValue> {
    match sock.recv(max).await {
        Ok(dg) => {
            let data = lua.create_string(&dg.data)?;
            let from = net::endpoint_value(lua, dg.from)?;
            match (dg.truncated, with_from) {
                (false, true) => (data, from).into_lua_multi(lua),
                (false, false) => data.into_lua_multi(lua),
                (true, _) => (Value::Nil, "truncated", data, from).into_lua_multi(lua),
            }
        }
        Err(e) => fail(lua, e),
    }
}

/// Sends one datagram (a string or a buffer, without a copy) to `to`, or to
/// the connected peer; returns the byte count.
pub async fn send(lua: &Lua, sock: &UdpSock, data: Bytes, to: Option<Target>) -> mlua::Result<MultiValue> {
    let to = match to {
        None => None,
        Some(target) => {
            let family = sock.local_addr().ok().map(|a| Family::of(&a.ip()));
            match net::resolve(lua, target, family).await {
                Ok(addrs) => Some(addrs[0]),
                Err(e) => return fail(lua, e),
            }
        }
    };
    let sent = match data {
        Bytes::Str(s) => sock.send(s.as_bytes().to_vec(), to).await,
        Bytes::Buf(chunk) => sock.send(chunk, to).await,
    };
    match sent {
        Ok(n) => n.into_lua_multi(lua),
        Err(e) => fail(lua, e),
    }
}

/// Fixes the peer of a datagram socket.
pub async fn connect(lua: &Lua, sock: &UdpSock, target: Target) -> mlua::Result<MultiValue> {
    let family = sock.local_addr().ok().map(|a| Family::of(&a.ip()));
    let addr = match net::resolve(lua, target, family).await {
        Ok(addrs) => addrs[0],
        Err(e) => return fail(lua, e),
    };
    match sock.connect(addr).await {
        Ok(()) => true.into_lua_multi(lua),
        Err(e) => fail(lua, e),
    }
}

/// Joins or leaves a multicast group: IPv4 on the interface with address
/// `iface` (default any), IPv6 on the interface with index `iface` (default 0).
fn membership(lua: &Lua, sock: &UdpSock, (group, iface): (Value, Value), join: bool) -> mlua::Result<MultiValue> {
    let func = if join { "join_multicast" } else { "leave_multicast" };
    let group_text = args::bytes(lua, group, Arg::new(func, 1))?.to_string_lossy();
    let Some(group) = crate::net::addr::parse_ip(&group_text) else {
        return Err(Arg::new(func, 1).error(lua, "IP address expected"));
    };
    let socket = match sock.socket() {
        Ok(s) => s,
        Err(e) => return fail(lua, e),
    };
    let s = SockRef::from(&socket);
    let result = match group {
        IpAddr::V4(g) => {
            let iface = match args::opt_bytes(lua, iface, Arg::new(func, 2))? {
                None => Ipv4Addr::UNSPECIFIED,
                Some(text) => text
                    .to_string_lossy()
                    .parse()
                    .map_err(|_| Arg::new(func, 2).error(lua, "IPv4 interface address expected"))?,
            };
            if join { s.join_multicast_v4(&g, &iface) } else { s.leave_multicast_v4(&g, &iface) }
        }
        IpAddr::V6(g) => {
            let index = args::integer(lua, iface, Arg::new(func, 2), (0, i64::from(u32::MAX)), Some(0))? as u32;
            if join { s.join_multicast_v6(&g, index) } else { s.leave_multicast_v6(&g, index) }
        }
    };
    match result {
        Ok(()) => true.into_lua_multi(lua),
        Err(e) => fail(lua, NetError::from(e)),
    }
}

/// Runs a socket option setter and answers `true` or `nil, err`.
fn setting(lua: &Lua, sock: &UdpSock, f: impl FnOnce(SockRef<'_>) -> std::io::Result<()>) -> mlua::Result<MultiValue> {
    match sock.socket() {
        Ok(socket) => match f(SockRef::from(&socket)) {
            Ok(()) => true.into_lua_multi(lua),
            Err(e) => fail(lua, NetError::from(e)),
        },
        Err(e) => fail(lua, e),
    }
}

fn address(lua: &Lua, addr: Result<SocketAddr, NetError>) -> mlua::Result<MultiValue> {
    match addr {
        Ok(a) => (a.ip().to_string(), a.port()).into_lua_multi(lua),
        Err(e) => fail(lua, e),
    }
}

impl UserData for Udp {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_async_method(
            "sendto",
            |lua, this: UserDataRef<Self>, (data, host, port): (Value, Value, Value)| async move {
                let data = Bytes::from_lua(&lua, data, Arg::new("sendto", 1))?;
                let (to, _) = net::target(&lua, host, port, "sendto", 2)?;
                send(&lua, &this, data, Some(to)).await
            },
        );
        m.add_async_method("send", |lua, this: UserDataRef<Self>, data: Value| async move {
            let data = Bytes::from_lua(&lua, data, Arg::new("send", 1))?;
            send(&lua, &this, data, None).await
        });
        m.add_async_method("recvfrom", |lua, this: UserDataRef<Self>, max: Value| async move {
            let max = max_arg(&lua, max, Arg::new("recvfrom", 1))?;
            recv(&lua, &this, max, true).await
        });
        m.add_async_method("recv", |lua, this: UserDataRef<Self>, max: Value| async move {
            let max = max_arg(&lua, max, Arg::new("recv", 1))?;
            recv(&lua, &this, max, false).await
        });
        m.add_async_method("connect", |lua, this: UserDataRef<Self>, (host, port): (Value, Value)| async move {
            let (target, _) = net::target(&lua, host, port, "connect", 1)?;
            connect(&lua, &this, target).await
        });
        m.add_method("set_broadcast", |lua, this, on: Value| {
            let on = args::boolean(lua, on, Arg::new("set_broadcast", 1), Some(true))?.unwrap_or(true);
            setting(lua, this, |s| s.set_broadcast(on))
        });
        m.add_method("join_multicast", |lua, this, a: (Value, Value)| membership(lua, this, a, true));
        m.add_method("leave_multicast", |lua, this, a: (Value, Value)| membership(lua, this, a, false));
        m.add_method("set_multicast_interface", |lua, this, iface: Value| {
            let arg = Arg::new("set_multicast_interface", 1);
            let text = args::bytes(lua, iface, arg)?.to_string_lossy();
            let iface: Ipv4Addr = text.parse().map_err(|_| arg.error(lua, "IPv4 interface address expected"))?;
            setting(lua, this, |s| s.set_multicast_if_v4(&iface))
        });
        m.add_method("set_multicast_loop", |lua, this, on: Value| {
            let on = args::boolean(lua, on, Arg::new("set_multicast_loop", 1), Some(true))?.unwrap_or(true);
            setting(lua, this, |s| s.set_multicast_loop_v4(on))
        });
        m.add_method("set_multicast_ttl", |lua, this, ttl: Value| {
            let ttl = args::integer(lua, ttl, Arg::new("set_multicast_ttl", 1), (0, 255), None)? as u32;
            setting(lua, this, |s| s.set_multicast_ttl_v4(ttl))
        });
        m.add_method("set_timeout", |lua, this, t: Value| {
            let t = args::timeout(lua, t, Arg::new("set_timeout", 1))?;
            this.set_timeout(t.flatten());
            Ok(())
        });
        m.add_method("local_addr", |lua, this, ()| address(lua, this.local_addr()));
        m.add_method("peer", |lua, this, ()| address(lua, this.peer_addr()));
        m.add_method("close", |lua, this, ()| {
            if this.is_closed() {
                return fail(lua, NetError::Closed);
            }
            this.close();
            true.into_lua_multi(lua)
        });
        m.add_meta_method("__tostring", |_, this, ()| {
            Ok(match this.local_addr() {
                Ok(a) => format!("udp({a})"),
                Err(_) => "udp(closed)".to_string(),
            })
        });
    }
}
