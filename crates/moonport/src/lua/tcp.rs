//! `moonport.tcp`: `listen` and `connect`, the listener object and the `conn`
//! object. Expected failures return `nil, err` (`"closed"`, `"timeout"`, ...);
//! after a fatal one (`NetError::is_fatal`: not a timeout, `"busy"`, a too-long
//! line or the end of the peer's stream) the connection is closed and later
//! calls fail fast with `"closed"`. After end of stream it stays writable.

use mlua::{
    AnyUserData, Function, IntoLuaMulti, Lua, MultiValue, Table, UserData, UserDataMethods, UserDataRef, Value,
};
use std::future::Future;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::time::Duration;

use super::args::{self, Arg};
use super::buffer::Bytes;
use super::{spawn, worker};
use crate::buf::Buffer;
use crate::engine::{self, OnConn};
use crate::net::{self, BULK_READ, NetError, ReadGuard, TcpConn, Timeouts};
use crate::platform::ListenOptions;

/// Bytes one read asks the kernel for, per connection (`read_buffer` option).
pub(super) const DEFAULT_READ_BUFFER: i64 = 16 * 1024;
const MAX_READ_BUFFER: i64 = 16 * 1024 * 1024;
/// Longest line `read_line` / `read_until` accept unless told otherwise.
const DEFAULT_MAX_LINE: i64 = 64 * 1024;
pub(super) const DEFAULT_READ_MAX: i64 = 64 * 1024;
const DEFAULT_BACKLOG: i64 = 1024;
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let tcp = lua.create_table()?;
    tcp.set("listen", lua.create_function(listen)?)?;
    tcp.set("connect", lua.create_async_function(connect)?)?;
    Ok(tcp)
}

/// `nil, err [, partial]`; a fatal error closes the connection first.
fn fail(lua: &Lua, conn: Option<&TcpConn>, e: NetError, partial: Option<mlua::LuaString>) -> mlua::Result<MultiValue> {
    if e.is_fatal()
        && let Some(conn) = conn
    {
        conn.close();
    }
    (Value::Nil, e.to_string(), partial).into_lua_multi(lua)
}

/// The Lua listener object: one worker's share of a listening address, as
/// one generation of the script serves it.
struct Listener {
    addr: SocketAddr,
    /// Weak: the listener holds this generation's handler, which holds its Lua state.
    listener: Weak<engine::Listener>,
    generation: u64,
}

impl UserData for Listener {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_method("port", |_, this, ()| Ok(this.addr.port()));
        m.add_method("close", |_, this, ()| {
            Ok(this.listener.upgrade().is_some_and(|listener| listener.release(this.generation)))
        });
        m.add_meta_method("__tostring", |_, this, ()| Ok(format!("listener({})", this.addr)));
    }
}

fn listen(lua: &Lua, (opts, handler): (Value, Value)) -> mlua::Result<MultiValue> {
    let arg = Arg::new("listen", 1);
    let opts = args::opt_table(lua, opts, arg)?;
    let opts = opts.as_ref();
    // `host` may also be an endpoint, which brings its port.
    let (host, endpoint_port) = match args::field(opts, "host")? {
        Value::UserData(ud) if ud.is::<super::net::Endpoint>() => {
            let ep = ud.borrow::<super::net::Endpoint>()?.0;
            (ep.ip().to_string(), Some(i64::from(ep.port())))
        }
        v => (
            args::opt_bytes(lua, v, arg.key("host"))?.map_or_else(|| "0.0.0.0".to_string(), |h| h.to_string_lossy()),
            None,
        ),
    };
    let port =
        args::integer(lua, args::field(opts, "port")?, arg.key("port"), (0, 65535), endpoint_port.or(Some(0)))? as u16;
    let backlog =
        args::integer(lua, args::field(opts, "backlog")?, arg.key("backlog"), (1, 65535), Some(DEFAULT_BACKLOG))?;
    let ipv6_only = args::boolean(lua, args::field(opts, "ipv6_only")?, arg.key("ipv6_only"), None)?;
    let read_buffer = read_buffer_option(lua, opts, arg)?;
    let tls = match super::tls::server_option(lua, args::field(opts, "tls")?, arg.key("tls"))? {
        None => None,
        Some(Ok(tls)) => Some(tls),
        Some(Err(why)) => {
            tracing::error!("listen on {host}:{port}: tls: {why}");
            return fail(lua, None, NetError::Tls(why), None);
        }
    };
    // Shared, not cloned, by connections still in their TLS handshake: each
    // clone of a Lua function would take a slot of the reference stack.
    let handler = Rc::new(args::function(lua, handler, Arg::new("listen", 2))?);

    let ctx = worker(lua)?;
    let listen_opts = ListenOptions { backlog: backlog as i32, ipv6_only, shared: true };
    let lua_ = lua.clone();
    let on_conn: OnConn = Rc::new(move |stream, peer| {
        let conn = TcpConn::new(stream, read_buffer);
        match &tls {
            None => serve_conn(&lua_, &handler, conn, peer),
            Some(tls) => accept_tls(&lua_, &handler, tls, conn, peer),
        }
    });
    let listened =
        net::resolve_listen_addr(&host, port).and_then(|addr| ctx.listeners.listen(&ctx, addr, listen_opts, on_conn));
    ctx.listen_seq.set(ctx.listen_seq.get() + 1);
    let (listener, first) = match listened {
        Ok(listened) => listened,
        Err(e) => {
            let e = NetError::from(e);
            tracing::error!("listen on {host}:{port}: {e}");
            return fail(lua, None, e, None);
        }
    };
    if first {
        tracing::info!("listening on {}", listener.addr);
    }
    // A generation a reload is still trying starts no workers: the commit does.
    if ctx.id == 1 && !ctx.pending.get() {
        ctx.engine.start_other_workers();
    }
    let addr = listener.addr;
    lua.create_userdata(Listener { addr, listener: Rc::downgrade(&listener), generation: ctx.generation.number })?
        .into_lua_multi(lua)
}

fn read_buffer_option(lua: &Lua, opts: Option<&Table>, arg: Arg) -> mlua::Result<usize> {
    let v = args::field(opts, "read_buffer")?;
    Ok(args::integer(lua, v, arg.key("read_buffer"), (512, MAX_READ_BUFFER), Some(DEFAULT_READ_BUFFER))? as usize)
}

/// Runs the TLS handshake of an accepted connection in a task of its own,
/// then its handler. A failed handshake is logged, and the handler never runs.
fn accept_tls(lua: &Lua, handler: &Rc<Function>, tls: &super::tls::ServerTls, conn: TcpConn, peer: SocketAddr) {
    let session = match crate::tls::TlsSession::server(tls.config.clone()) {
        Ok(s) => s,
        Err(e) => return tracing::error!("connection {peer}: tls: {e}"),
    };
    let deadline = tls.handshake_timeout.map(|d| std::time::Instant::now() + d);
    let (lua, handler) = (lua.clone(), handler.clone());
    compio::runtime::spawn(crate::logging::in_conn(Some(peer), async move {
        match conn.start_tls(session, deadline).await {
            Ok(()) => serve_conn(&lua, &handler, conn, peer),
            Err(e) => tracing::info!("connection {peer}: tls handshake failed: {e}"),
        }
    }))
    .detach();
}

/// Runs the handler for one accepted connection in a new coroutine; the
/// connection closes when the handler returns or fails.
fn serve_conn(lua: &Lua, handler: &Function, conn: TcpConn, peer: SocketAddr) {
    let closer = conn.clone();
    let refused = conn.clone();
    let ud = match lua.create_userdata(conn) {
        Ok(ud) => ud,
        Err(e) => return tracing::error!("connection {peer}: {e}"),
    };
    // The handler's coroutine (and the tasks it spawns) log with the peer.
    let started = crate::logging::with_peer(peer, || {
        spawn(lua, handler.clone(), ud, move |error| {
            if let Some(error) = error {
                tracing::error!("connection {peer}: {error}");
            }
            closer.finish();
        })
    });
    if let Err(e) = started {
        refused.close();
        warn_not_served(peer, &e);
    }
}

/// Logs a connection closed unserved (the worker is at its coroutine limit),
/// at most once a second: a flood of them must not flood the log too.
fn warn_not_served(peer: SocketAddr, e: &mlua::Error) {
    thread_local! {
        static LAST: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) };
        static SKIPPED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }
    let now = std::time::Instant::now();
    if LAST.get().is_some_and(|t| now - t < Duration::from_secs(1)) {
        SKIPPED.set(SKIPPED.get() + 1);
        return;
    }
    LAST.set(Some(now));
    let skipped = SKIPPED.replace(0);
    tracing::warn!("connection {peer} closed unserved: {e} (and {skipped} more since the last warning)");
}

/// `connect(host, port [, opts])` or `connect(endpoint [, opts])`: tries each
/// address a name resolves to, in order, within the timeout.
async fn connect(lua: Lua, (host, port, opts): (Value, Value, Value)) -> mlua::Result<MultiValue> {
    let func = "connect";
    // An endpoint or "ip:port" takes one argument, and the options follow it.
    let port_or_opts = if let Value::Table(_) = port { Value::Nil } else { port.clone() };
    let (target, taken) = super::net::target(&lua, host, port_or_opts, func, 1)?;
    let opts = if taken == 1 { port } else { opts };
    let arg = Arg::new(func, taken + 1);
    let opts = args::opt_table(&lua, opts, arg)?;
    let timeout = match args::timeout(&lua, args::field(opts.as_ref(), "timeout")?, arg.key("timeout"))? {
        None => Some(DEFAULT_CONNECT_TIMEOUT),
        Some(t) => t,
    };
    let read_buffer = read_buffer_option(&lua, opts.as_ref(), arg)?;
    let tls = super::tls::client_option(&lua, args::field(opts.as_ref(), "tls")?, arg.key("tls"))?;
    // The certificate must name what the script asked for: the host name, or the address.
    // Only a TLS connect needs the name as text: plain ones skip making it.
    let session = tls.map(|tls| match &target {
        super::net::Target::Name(host, _) => tls.session(host),
        super::net::Target::Addr(addr) => tls.session(&addr.ip().to_string()),
        super::net::Target::Any(_) => tls.session(&std::net::Ipv4Addr::UNSPECIFIED.to_string()),
    });
    let session = match session.transpose() {
        Ok(s) => s,
        Err(why) => return fail(&lua, None, NetError::Tls(why), None),
    };
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    let addrs = match super::net::resolve_until(&lua, target, deadline).await {
        Ok(addrs) => addrs,
        Err(e) => return (Value::Nil, e).into_lua_multi(&lua),
    };
    match net::dial(&addrs, deadline, read_buffer, session).await {
        Ok(conn) => lua.create_userdata(conn)?.into_lua_multi(&lua),
        Err(e) => fail(&lua, None, e, None),
    }
}

/// What a read call waits for.
pub(super) enum ReadOp {
    Some(usize),
    Exact(usize),
    /// Append 1..=max bytes to a buffer; returns the count.
    Into {
        buf: AnyUserData,
        max: usize,
    },
    /// Append exactly n bytes to a buffer.
    ExactInto {
        buf: AnyUserData,
        n: usize,
    },
    /// Up to a delimiter, then strip a trailing `\r` when it is a line.
    Until {
        delim: Vec<u8>,
        max: usize,
        line: bool,
    },
}

/// A read awaited to the end (the LuaSocket-style `receive`).
pub(super) async fn read(lua: &Lua, conn: &TcpConn, op: ReadOp) -> mlua::Result<MultiValue> {
    match conn.begin_read() {
        Ok(mut guard) => read_with(lua, conn, &mut guard, &op).await,
        Err(e) => fail(lua, Some(conn), e, None),
    }
}

/// The conn's read methods (and `ws:recv`): a Lua function around each
/// plain call (see `try_read`) that yields while the call says the read must
/// wait, the way mlua's asynchronous calls wait, then calls it again. An
/// asynchronous call costs a future and a userdata each time, a plain one
/// neither. A plain call that finds work it cannot finish without waiting
/// in the middle (`ws:recv` answering a ping) says so, and the method then
/// makes the asynchronous call `wait`.
const READ: &str = r#"
local yield, pending = ...
return function(try, wait)
  -- Passes the results on as they are (their count too): `false` alone
  -- means the read is parked and the coroutine waits for it, `true` alone
  -- that `wait` must finish it.
  local function finish(self, a, b, r, ...)
    if r == true then return wait(self, a, b) end
    if r ~= false then return r, ... end
    yield(pending)
    return finish(self, a, b, try(self, a, b))
  end
  return function(self, a, b)
    return finish(self, a, b, try(self, a, b))
  end
end
"#;

/// A method made of the plain call `try` and, for what it leaves, the
/// asynchronous `wait` (see `READ`).
pub(super) fn polled_method(lua: &Lua, try_call: Function, wait: Option<Function>) -> mlua::Result<Value> {
    let coroutine: Table = lua.globals().get("coroutine")?;
    let yield_: Function = coroutine.get("yield")?;
    let make: Function = lua.load(READ).set_name(super::INTERNAL_CHUNK).call((yield_, Lua::poll_pending()))?;
    make.call((try_call, wait))
}

/// The plain call behind one read method: arguments to what it reads.
type ReadArgs = fn(&Lua, Value, Value) -> mlua::Result<ReadOp>;

/// Makes a conn read method (see `READ`) when the connection metatable is built.
struct ReadMethod(ReadArgs);

impl mlua::IntoLua for ReadMethod {
    fn into_lua(self, lua: &Lua) -> mlua::Result<Value> {
        let args = self.0;
        let try_read = lua.create_function(move |lua, (this, a, b): (UserDataRef<TcpConn>, Value, Value)| {
            let op = args(lua, a, b)?;
            try_read(lua, &this, &op)
        })?;
        polled_method(lua, try_read, None)
    }
}

/// One step of a read, without waiting: the result when the bytes are
/// buffered or the socket has them, else `false` after leaving the read
/// parked with the running coroutine's waker, which the read (or its
/// timeout) wakes.
fn try_read(lua: &Lua, conn: &TcpConn, op: &ReadOp) -> mlua::Result<MultiValue> {
    super::task::with_current(|current| {
        let Some(current) = current else {
            return Err(mlua::Error::runtime("conn: a read must run in a coroutine"));
        };
        let mut guard = match conn.begin_read_by(&current.owner) {
            Ok(guard) => guard,
            Err(e) => return fail(lua, Some(conn), e, None),
        };
        let mut cx = std::task::Context::from_waker(&current.waker);
        let polled = std::pin::pin!(read_with(lua, conn, &mut guard, op)).poll(&mut cx);
        match polled {
            std::task::Poll::Ready(result) => {
                guard.unpark();
                result
            }
            std::task::Poll::Pending => match guard.park(&current.owner, &mut cx) {
                Ok(()) => false.into_lua_multi(lua),
                Err(e) => {
                    drop(guard);
                    fail(lua, Some(conn), e, None)
                }
            },
        }
    })
}

async fn read_with(lua: &Lua, conn: &TcpConn, guard: &mut ReadGuard<'_>, op: &ReadOp) -> mlua::Result<MultiValue> {
    let result = match op {
        ReadOp::Into { buf, max } => return read_into(lua, conn, guard, buf, *max, false).await,
        ReadOp::ExactInto { buf, n } => return read_into(lua, conn, guard, buf, *n, true).await,
        ReadOp::Some(max) => {
            guard.reads_up_to((*max).min(BULK_READ));
            guard.read(*max).await
        }
        ReadOp::Exact(n) => guard.read_exact(*n).await,
        ReadOp::Until { delim, max, line } => {
            let what = if *line { "line too long" } else { "too long" };
            guard.read_until(delim, *max, what).await
        }
    };
    match result {
        Ok(mut bytes) => {
            if let ReadOp::Until { line: true, .. } = op
                && let [rest @ .., b'\r'] = bytes
            {
                bytes = rest;
            }
            lua.create_string(bytes)?.into_lua_multi(lua)
        }
        Err(e) => {
            // Whatever arrived before the peer closed goes back as the third value.
            let partial = match (op, &e) {
                (ReadOp::Some(_) | ReadOp::Into { .. } | ReadOp::ExactInto { .. }, _) => None,
                (_, NetError::Closed | NetError::Eof | NetError::Reset) => {
                    Some(lua.create_string(guard.take_buffered())?)
                }
                _ => None,
            };
            fail(lua, Some(conn), e, partial)
        }
    }
}

/// Appends received bytes to a buffer, consuming them only once they are in
/// it, so a full buffer loses nothing: they stay for the next read.
async fn read_into(
    lua: &Lua,
    conn: &TcpConn,
    guard: &mut ReadGuard<'_>,
    buf: &AnyUserData,
    max: usize,
    exact: bool,
) -> mlua::Result<MultiValue> {
    let room = {
        let b = buf.borrow::<Buffer>()?;
        b.max() - b.len()
    };
    let want = if exact { max } else { max.min(room) };
    if want > room || (room == 0 && max > 0) {
        return (Value::Nil, "buffer full").into_lua_multi(lua);
    }
    if !exact {
        guard.reads_up_to(want.min(BULK_READ));
    }
    let n = match guard.peek(if exact { want } else { 1 }).await {
        Ok(bytes) => {
            let n = if exact { want } else { bytes.len().min(want) };
            if buf.borrow_mut::<Buffer>()?.extend(&bytes[..n]).is_err() {
                return (Value::Nil, "buffer full").into_lua_multi(lua);
            }
            n
        }
        Err(e) => return fail(lua, Some(conn), e, None),
    };
    guard.advance(n);
    n.into_lua_multi(lua)
}

/// What a write sends, taken out of its Lua value so the wait holds none.
pub(super) enum Outgoing {
    Staged(Vec<u8>),
    Chunk(crate::buf::Chunk),
}

impl Outgoing {
    /// What is left of `data` after its first `sent` bytes.
    pub(super) fn new(conn: &TcpConn, data: Bytes, sent: usize) -> Self {
        match data {
            Bytes::Buf(chunk) if sent == 0 => Outgoing::Chunk(chunk),
            data => data.with(|bytes| Outgoing::Staged(conn.stage(bytes.get(sent..).unwrap_or_default()))),
        }
    }
}

/// `conn:write`: a Lua function that sends at once what the socket takes
/// (`try_write`: no operation, no wait, no copy; most writes end there) and
/// only otherwise waits for the rest (`wait_write`, queued behind other
/// writers). An asynchronous call costs a future and a userdata each time,
/// a plain one neither. `ws:send_text` / `send_binary` are made the same way.
pub(super) const WRITE: &str = r#"
local try_write, wait_write = ...
-- `false, sent`: the rest must wait; other results are passed on as they are.
local function finish(self, data, n, ...)
  if n == false then return wait_write(self, data, ...) end
  return n, ...
end
return function(self, data)
  return finish(self, data, try_write(self, data))
end
"#;

/// Makes `conn:write` (see `WRITE`) when the connection metatable is built.
struct WriteMethod;

impl mlua::IntoLua for WriteMethod {
    fn into_lua(self, lua: &Lua) -> mlua::Result<Value> {
        let try_write = lua.create_function(try_write)?;
        let wait_write = lua.create_async_function(wait_write)?;
        lua.load(WRITE).set_name(super::INTERNAL_CHUNK).call((try_write, wait_write))
    }
}

/// `n` when all of `data` went out now, `false, sent` when the rest must
/// wait, `nil, err` on failure.
fn try_write(lua: &Lua, (this, data): (UserDataRef<TcpConn>, Value)) -> mlua::Result<MultiValue> {
    let data = Bytes::from_lua(lua, data, Arg::new("write", 1))?;
    match data.with(|bytes| this.try_write(bytes).map(|n| (n, bytes.len()))) {
        Ok((n, len)) if n == len => n.into_lua_multi(lua),
        Ok((sent, _)) => (false, sent).into_lua_multi(lua),
        Err(e) => fail(lua, Some(&this), e, None),
    }
}

/// Writes what `try_write` could not send now; returns the whole count.
fn wait_write(
    lua: Lua,
    (this, data, sent): (UserDataRef<TcpConn>, Value, usize),
) -> impl Future<Output = mlua::Result<MultiValue>> {
    let conn = TcpConn::clone(&this);
    drop(this);
    let data = Bytes::from_lua(&lua, data, Arg::new("write", 1)).map(|d| Outgoing::new(&conn, d, sent));
    async move { write(&lua, &conn, data?, sent).await }
}

/// Writes a string (copied once), or a buffer without a copy; returns the
/// byte count, counting the `sent` bytes that went out before.
pub(super) async fn write(lua: &Lua, conn: &TcpConn, data: Outgoing, sent: usize) -> mlua::Result<MultiValue> {
    let result = match data {
        Outgoing::Staged(buf) => conn.write_staged(buf).await,
        Outgoing::Chunk(chunk) => conn.write_chunk(chunk).await,
    };
    match result {
        Ok(n) => (n + sent).into_lua_multi(lua),
        Err(e) => fail(lua, Some(conn), e, None),
    }
}

fn size(lua: &Lua, v: Value, arg: Arg, min: i64, default: Option<i64>) -> mlua::Result<usize> {
    Ok(args::integer(lua, v, arg, (min, i64::from(u32::MAX)), default)? as usize)
}

/// The async methods clone the connection (a reference count) and let go of
/// its Lua object before they wait: every Lua value Rust holds takes a slot of
/// mlua's reference stack, which LuaJIT caps at 8000 per state, so a waiting
/// call must not hold one (see `lua::task` for the per-worker limit).
impl UserData for TcpConn {
    fn add_fields<F: mlua::UserDataFields<Self>>(f: &mut F) {
        f.add_field("write", WriteMethod);
        f.add_field(
            "read",
            ReadMethod(|lua, max, _| Ok(ReadOp::Some(size(lua, max, Arg::new("read", 1), 1, Some(DEFAULT_READ_MAX))?))),
        );
        f.add_field(
            "read_exact",
            ReadMethod(|lua, n, _| Ok(ReadOp::Exact(size(lua, n, Arg::new("read_exact", 1), 0, None)?))),
        );
        f.add_field(
            "read_line",
            ReadMethod(|lua, max, _| {
                let max = size(lua, max, Arg::new("read_line", 1), 1, Some(DEFAULT_MAX_LINE))?;
                Ok(ReadOp::Until { delim: b"\n".to_vec(), max, line: true })
            }),
        );
        f.add_field(
            "read_until",
            ReadMethod(|lua, delim, max| {
                let delim = args::bytes(lua, delim, Arg::new("read_until", 1))?;
                if delim.as_bytes().is_empty() {
                    return Err(Arg::new("read_until", 1).error(lua, "delimiter must not be empty"));
                }
                let max = size(lua, max, Arg::new("read_until", 2), 1, Some(DEFAULT_MAX_LINE))?;
                Ok(ReadOp::Until { delim: delim.as_bytes().to_vec(), max, line: false })
            }),
        );
        f.add_field(
            "read_into",
            ReadMethod(|lua, buf, max| {
                let buf = buffer_arg(lua, buf, Arg::new("read_into", 1))?;
                let max = size(lua, max, Arg::new("read_into", 2), 1, Some(DEFAULT_READ_MAX))?;
                Ok(ReadOp::Into { buf, max })
            }),
        );
        f.add_field(
            "read_exact_into",
            ReadMethod(|lua, buf, n| {
                let buf = buffer_arg(lua, buf, Arg::new("read_exact_into", 1))?;
                let n = size(lua, n, Arg::new("read_exact_into", 2), 0, None)?;
                Ok(ReadOp::ExactInto { buf, n })
            }),
        );
    }

    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_async_method("shutdown", |lua, this: UserDataRef<Self>, how: Value| {
            let this = TcpConn::clone(&this);
            async move {
                let how = args::bytes(&lua, how, Arg::new("shutdown", 1))?;
                if how.as_bytes().as_ref() != b"write" {
                    return Err(Arg::new("shutdown", 1).error(&lua, "\"write\" expected"));
                }
                match this.shutdown_write().await {
                    Ok(()) => true.into_lua_multi(&lua),
                    Err(e) => fail(&lua, Some(&this), e, None),
                }
            }
        });
        m.add_async_method("pipe_to", super::relay::pipe_to);
        m.add_async_method("starttls", |lua, this: UserDataRef<Self>, opts: Value| {
            let this = TcpConn::clone(&this);
            async move { starttls(&lua, &this, opts).await }
        });
        m.add_method("tls_info", |lua, this, ()| match this.tls_info() {
            Some(info) => super::tls::info_table(lua, info).map(Value::Table),
            None => Ok(Value::Nil),
        });
        m.add_method("close", |lua, this, ()| {
            if this.is_closed() {
                return fail(lua, None, NetError::Closed, None);
            }
            this.finish();
            true.into_lua_multi(lua)
        });
        m.add_method("set_timeouts", |lua, this, (connect, send, read): (Value, Value, Value)| {
            let func = "set_timeouts";
            // A connection is already connected: `connect` is checked, and only
            // `moonport.tcp.connect`'s `timeout` option uses it.
            args::timeout(lua, connect, Arg::new(func, 1))?;
            let mut t: Timeouts = this.timeouts();
            if let Some(send) = args::timeout(lua, send, Arg::new(func, 2))? {
                t.send = send;
            }
            if let Some(read) = args::timeout(lua, read, Arg::new(func, 3))? {
                t.read = read;
            }
            this.set_timeouts(t);
            Ok(())
        });
        m.add_method("peer", |lua, this, ()| address(lua, this, this.peer_addr()));
        m.add_method("local_addr", |lua, this, ()| address(lua, this, this.local_addr()));
        m.add_method("set_nodelay", |lua, this, on: Value| {
            let on = args::boolean(lua, on, Arg::new("set_nodelay", 1), Some(true))?.unwrap_or(true);
            match this.set_nodelay(on) {
                Ok(()) => true.into_lua_multi(lua),
                Err(e) => fail(lua, Some(this), e, None),
            }
        });
        m.add_meta_method("__tostring", |_, this, ()| {
            Ok(match this.peer_addr() {
                Ok(peer) => format!("conn({peer})"),
                Err(_) => "conn(closed)".to_string(),
            })
        });
    }
}

/// `conn:starttls([opts])`: a TLS handshake on a connection that has been
/// plain so far, as the client (the `tls` option of `connect`; the name
/// checked defaults to the peer's address) or, with `server = true`, as the
/// server (the `tls` option of `listen`). The read timeout bounds it.
async fn starttls(lua: &Lua, conn: &TcpConn, opts: Value) -> mlua::Result<MultiValue> {
    let arg = Arg::new("starttls", 1);
    let server = match &opts {
        Value::Table(t) => args::boolean(lua, t.get("server")?, arg.key("server"), Some(false))?.unwrap_or(false),
        _ => false,
    };
    let session = if server {
        match super::tls::server_option(lua, opts, arg)? {
            Some(Ok(tls)) => crate::tls::TlsSession::server(tls.config),
            Some(Err(why)) => Err(why),
            None => unreachable!("a table was given"),
        }
    } else {
        let opts = if opts.is_nil() { Value::Boolean(true) } else { opts };
        let Some(tls) = super::tls::client_option(lua, opts, arg)? else {
            return Err(arg.error(lua, "tls options expected, got false"));
        };
        match conn.peer_addr() {
            Ok(peer) => tls.session(&peer.ip().to_string()),
            Err(e) => return fail(lua, None, e, None),
        }
    };
    let session = match session {
        Ok(s) => s,
        Err(why) => return fail(lua, None, NetError::Tls(why), None),
    };
    let deadline = conn.timeouts().read.map(|d| std::time::Instant::now() + d);
    match conn.start_tls(session, deadline).await {
        Ok(()) => true.into_lua_multi(lua),
        Err(e) => fail(lua, Some(conn), e, None),
    }
}

fn buffer_arg(lua: &Lua, v: Value, arg: Arg) -> mlua::Result<AnyUserData> {
    match v {
        Value::UserData(ud) if ud.is::<Buffer>() => Ok(ud),
        other => Err(arg.error(lua, format!("buffer expected, got {}", other.type_name()))),
    }
}

/// `"ip", port` or `nil, err`.
fn address(lua: &Lua, conn: &TcpConn, addr: Result<SocketAddr, NetError>) -> mlua::Result<MultiValue> {
    match addr {
        Ok(a) => (a.ip().to_string(), a.port()).into_lua_multi(lua),
        Err(e) => fail(lua, Some(conn), e, None),
    }
}
