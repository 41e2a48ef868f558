//! `moonport.ws`: WebSocket servers and clients. `listen` accepts connections, checks
//! each upgrade request and runs the handler with a `ws` object and the
//! request; `ws:recv()` returns whole messages (pings are answered inside),
//! `send_text` / `send_binary` send strings or buffers (a buffer without a
//! copy), and `close` runs the close handshake. Failures are `nil, err`; a
//! peer breaking the protocol gets its close code and the error names the
//! rule (`"unmasked frame"`, `"invalid utf-8"`, `"message too big"`).
//! `connect` opens a client session with the same object, and `bridge` pumps
//! a session to and from a TCP connection natively (websockify's job).

use std::cell::RefCell;
use std::future::Future;
use std::pin::{Pin, pin};

use futures_util::future::{Either, select};
use mlua::{
    AnyUserData, Function, IntoLuaMulti, Lua, MultiValue, Table, UserData, UserDataMethods, UserDataRef, Value,
};

use super::args::{self, Arg};
use super::buffer::Bytes;
use super::http::{self, HttpOptions, Res};
use super::task::Reserved;
use crate::net::{TcpConn, Timeouts};
use crate::proto::http::response::{Data, State};
use crate::proto::http::{client, server};
use crate::proto::ws::bridge::{BridgeEnd, BridgeOptions};
use crate::proto::ws::session::Payload;
use crate::proto::ws::{Event, Kind, Received, Role, Session, WsError, code, handshake};
use crate::room::Subscription;

/// Largest message accepted unless `max_message` says otherwise.
const DEFAULT_MAX_MESSAGE: i64 = 1 << 20;
/// How long `connect` may take, TCP and handshake together.
const DEFAULT_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub fn install(lua: &Lua, moonport: &Table) -> mlua::Result<()> {
    let ws = lua.create_table()?;
    ws.set("listen", lua.create_function(listen)?)?;
    ws.set("upgrade", lua.create_async_function(upgrade)?)?;
    ws.set("connect", lua.create_async_function(connect)?)?;
    ws.set("bridge", lua.create_async_function(bridge)?)?;
    moonport.set("ws", ws)
}

/// What a WebSocket listener needs besides the HTTP limits.
#[derive(Debug, Clone)]
struct WsOptions {
    http: HttpOptions,
    max_message: usize,
    /// Subprotocols spoken, in order of preference.
    protocols: Vec<String>,
    /// Whether permessage-deflate may be negotiated.
    deflate: bool,
}

impl WsOptions {
    fn from_lua(lua: &Lua, opts: Option<&Table>, arg: Arg) -> mlua::Result<Self> {
        let max_message = args::integer(
            lua,
            args::field(opts, "max_message")?,
            arg.key("max_message"),
            (1, 1 << 40),
            Some(DEFAULT_MAX_MESSAGE),
        )? as usize;
        let mut protocols = Vec::new();
        if let Some(list) = args::opt_table(lua, args::field(opts, "protocols")?, arg.key("protocols"))? {
            for v in list.sequence_values::<Value>() {
                protocols.push(args::bytes(lua, v?, arg.key("protocols"))?.to_string_lossy());
            }
        }
        let deflate =
            args::boolean(lua, args::field(opts, "deflate")?, arg.key("deflate"), Some(false))?.unwrap_or(false);
        Ok(Self { http: HttpOptions::from_lua(lua, opts, arg)?, max_message, protocols, deflate })
    }
}

fn listen(lua: &Lua, (opts, handler): (Value, Value)) -> mlua::Result<MultiValue> {
    let arg = Arg::new("listen", 1);
    let table = args::opt_table(lua, opts.clone(), arg)?;
    let ws_opts = WsOptions::from_lua(lua, table.as_ref(), arg)?;
    let handler = args::function(lua, handler, Arg::new("listen", 2))?;
    let serve = lua.create_async_function(move |lua, conn: AnyUserData| {
        let (handler, opts) = (handler.clone(), ws_opts.clone());
        async move { serve(lua, conn, handler, opts).await }
    })?;
    let tcp_listen: Function = lua.named_registry_value(http::TCP_LISTEN)?;
    tcp_listen.call((opts, serve))
}

fn server_session(opts: &WsOptions, deflate: Option<crate::proto::ws::deflate::Params>) -> Session {
    let session = Session::new(Role::Server, opts.max_message);
    match deflate {
        Some(params) => session.with_deflate(params),
        None => session,
    }
}

/// One connection of `ws.listen`: the upgrade, then the handler.
async fn serve(lua: Lua, conn_ud: AnyUserData, handler: Function, opts: WsOptions) -> mlua::Result<()> {
    let conn: UserDataRef<TcpConn> = conn_ud.borrow()?;
    let _budget = match super::task::reserve(&lua, SESSION_UNITS) {
        Ok(units) => units,
        Err(e) => {
            tracing::warn!("websocket connection closed unserved: {e}");
            conn.close();
            return Ok(());
        }
    };
    let http = opts.http;
    let head = match server::read_head(&conn, http.limits, http.header_timeout, http.header_timeout).await {
        Ok(head) => head,
        Err(e) => return http::refuse_request(&conn, e).await,
    };
    let accepted = match handshake::check(&head, &opts.protocols, opts.deflate) {
        Ok(a) => a,
        Err(r) => {
            let extra = if r.status == 426 { "Sec-WebSocket-Version: 13\r\n" } else { "" };
            let _ = server::send_error(&conn, r.status, r.reason, extra).await;
            return Ok(());
        }
    };
    if conn.write(handshake::response(&accepted).as_bytes()).await.is_err() {
        return Ok(());
    }
    drop(conn);
    let req = http::request_table(&lua, &head)?;
    let ws = lua.create_userdata(Ws::new(conn_ud, server_session(&opts, accepted.deflate), accepted.protocol, None))?;
    let result = super::task::resumed(handler.call_async::<()>((ws.clone(), req))).await;
    finish(&ws, result.is_ok()).await?;
    result
}

/// Ends a session whose handler returned without closing it: 1000 after a
/// normal return, 1001 after an error.
pub(super) async fn finish(ws: &AnyUserData, ok: bool) -> mlua::Result<()> {
    let ws: UserDataRef<Ws> = ws.borrow()?;
    if !ws.session.is_closing() {
        let code = if ok { code::NORMAL } else { code::GOING_AWAY };
        let conn: UserDataRef<TcpConn> = ws.conn.borrow()?;
        let _ = ws.session.close(&conn, Some(code), b"").await;
    }
    Ok(())
}

/// `moonport.ws.upgrade(req, res [, opts])`: the request of an HTTP handler
/// becomes a WebSocket, or gets an error response and `nil, err`.
async fn upgrade(lua: Lua, (_req, res, opts): (Value, Value, Value)) -> mlua::Result<MultiValue> {
    let res_ud = match res {
        Value::UserData(ud) if ud.is::<Res>() => ud,
        other => return Err(Arg::new("upgrade", 2).error(&lua, format!("res expected, got {}", other.type_name()))),
    };
    let arg = Arg::new("upgrade", 3);
    let table = args::opt_table(&lua, opts, arg)?;
    let opts = WsOptions::from_lua(&lua, table.as_ref(), arg)?;
    let budget = match super::task::reserve(&lua, SESSION_UNITS) {
        Ok(units) => units,
        Err(e) => return (Value::Nil, e.to_string()).into_lua_multi(&lua),
    };
    let res: UserDataRef<Res> = res_ud.borrow()?;
    let conn: UserDataRef<TcpConn> = res.conn.borrow()?;
    let mut response = res.response.lock().await;
    if response.state() != State::Pending {
        return (Value::Nil, "response already started").into_lua_multi(&lua);
    }
    let accepted = match handshake::check(&res.head, &opts.protocols, opts.deflate) {
        Ok(a) => a,
        Err(r) => {
            response.status = r.status;
            response.close_after();
            if r.status == 426 {
                response.set_header("Sec-WebSocket-Version", Some("13"));
            }
            let body = format!("{}\n", r.reason);
            let _ = response.send(&conn, Data::Bytes(body.as_bytes())).await;
            return (Value::Nil, r.reason).into_lua_multi(&lua);
        }
    };
    response.mark_upgraded();
    if let Err(e) = conn.write(handshake::response(&accepted).as_bytes()).await {
        return (Value::Nil, e.to_string()).into_lua_multi(&lua);
    }
    let session = server_session(&opts, accepted.deflate);
    let ws = lua.create_userdata(Ws::new(res.conn.clone(), session, accepted.protocol, Some(budget)))?;
    *res.ws.borrow_mut() = Some(ws.clone());
    ws.into_lua_multi(&lua)
}

/// `moonport.ws.connect(url [, opts])`: a client session to a `ws://` URL.
async fn connect(lua: Lua, (url, opts): (Value, Value)) -> mlua::Result<MultiValue> {
    let url_text = args::bytes(&lua, url, Arg::new("connect", 1))?.to_string_lossy();
    let arg = Arg::new("connect", 2);
    let table = args::opt_table(&lua, opts, arg)?;
    let opts = WsOptions::from_lua(&lua, table.as_ref(), arg)?;
    let timeout = args::timeout(&lua, args::field(table.as_ref(), "timeout")?, arg.key("timeout"))?
        .unwrap_or(Some(DEFAULT_CONNECT_TIMEOUT));
    let mut extra = Vec::new();
    if let Some(h) = args::opt_table(&lua, args::field(table.as_ref(), "headers")?, arg.key("headers"))? {
        for pair in h.pairs::<Value, Value>() {
            let (k, v) = pair?;
            let k = args::bytes(&lua, k, arg.key("headers"))?.to_string_lossy();
            extra.push((k, args::bytes(&lua, v, arg.key("headers"))?.to_string_lossy()));
        }
    }
    let fail = |why: String| (Value::Nil, why).into_lua_multi(&lua);
    let url = match url::Url::parse(&url_text) {
        Ok(u) if matches!(u.scheme(), "ws" | "wss") && u.host_str().is_some() => u,
        _ => return fail("invalid url".into()),
    };
    let host = url.host_str().unwrap_or_default().to_string();
    let secure = url.scheme() == "wss";
    // The url crate knows ws:// is 80 and wss:// 443.
    let port = url.port_or_known_default().unwrap_or(80);
    let tls = match super::tls::url_session(&lua, args::field(table.as_ref(), "tls")?, arg.key("tls"), secure, &host)? {
        Ok(tls) => tls,
        Err(why) => return fail(why),
    };
    let host_header = url.port().map_or_else(|| host.clone(), |p| format!("{host}:{p}"));
    let target = url[url::Position::BeforePath..url::Position::AfterQuery].to_string();
    let key = handshake::client_key();
    let dest = super::http::target(&host, port);
    let dial = async {
        let addrs = super::net::resolve(&lua, dest, None).await?;
        let conn = crate::net::dial(&addrs, None, 16 * 1024, tls).await.map_err(|e| e.to_string())?;
        let request = handshake::client_request(&host_header, &target, &key, &opts.protocols, &extra);
        conn.write(request.as_bytes()).await.map_err(|e| e.to_string())?;
        let (status, head) = client::read_response_head(&conn).await.map_err(|e| e.to_string())?;
        let protocol = handshake::check_response(status, &head, &key, &opts.protocols)?;
        Ok::<_, String>((conn, protocol))
    };
    let dialed = match timeout {
        None => dial.await,
        Some(d) => compio::time::timeout(d, dial).await.unwrap_or_else(|_| Err("timeout".to_string())),
    };
    let (conn, protocol) = match dialed {
        Ok(d) => d,
        Err(why) => return fail(why),
    };
    let ws = Ws::new(lua.create_userdata(conn)?, Session::new(Role::Client, opts.max_message), protocol, None);
    lua.create_userdata(ws)?.into_lua_multi(&lua)
}

pub(super) fn is_ws(ud: &AnyUserData) -> bool {
    ud.is::<Ws>()
}

/// `room:attach(ws)`: sends every message of `sub` as a frame, natively,
/// until the session ends or the room's policy lets the subscriber go
/// (then the connection is closed). Returns the reason.
pub(super) async fn attach(ws: &AnyUserData, sub: &Subscription, text: bool) -> mlua::Result<String> {
    let ws: UserDataRef<Ws> = ws.borrow()?;
    let conn: UserDataRef<TcpConn> = ws.conn.borrow()?;
    let kind = if text { Kind::Text } else { Kind::Binary };
    let (session, sink) = (&ws.session, &*conn);
    let send = move |msg| async move {
        session.send(sink, kind, Payload::Chunk(msg)).await.map(drop).map_err(|e| e.to_string())
    };
    Ok(super::room::feed(sub, || conn.close(), send).await)
}

/// The Lua `ws` object: a session and the connection it runs on.
struct Ws {
    /// The `TcpConn` userdata, which the listener closes when the handler ends.
    conn: AnyUserData,
    session: Session,
    protocol: Option<String>,
    /// For `ws.upgrade`: the session's share of the worker's coroutine budget
    /// (`ws.listen` holds it for the whole connection instead).
    _budget: Option<Reserved>,
    /// Wakes a `recv` waiting in a plain call when the server shuts down
    /// (made at its first wait).
    shutdown: RefCell<Option<Pin<Box<dyn Future<Output = ()>>>>>,
}

impl Ws {
    fn new(conn: AnyUserData, session: Session, protocol: Option<String>, budget: Option<Reserved>) -> Self {
        Self { conn, session, protocol, _budget: budget, shutdown: RefCell::new(None) }
    }
}

/// What a WebSocket session counts for against `--max-coroutines`, beyond its
/// connection's coroutine: the Lua values it keeps in Rust while it waits
/// (the connection and ws objects, the handler and its nested call, and those
/// of a call in progress), so that LuaJIT's 8000 slots are never exhausted.
pub(super) const SESSION_UNITS: usize = 6;

/// `nil, err` for a failed operation.
fn fail(lua: &Lua, e: WsError) -> mlua::Result<MultiValue> {
    (Value::Nil, e.to_string()).into_lua_multi(lua)
}

async fn send(lua: Lua, this: UserDataRef<Ws>, kind: Kind, data: Value, func: &str) -> mlua::Result<MultiValue> {
    let data = Bytes::from_lua(&lua, data, Arg::new(func, 1))?;
    let conn: UserDataRef<TcpConn> = this.conn.borrow()?;
    let sent = match &data {
        Bytes::Str(s) => this.session.send(&conn, kind, Payload::Bytes(&s.as_bytes())).await,
        Bytes::Buf(chunk) => this.session.send(&conn, kind, Payload::Chunk(chunk.clone())).await,
    };
    match sent {
        Ok(n) => n.into_lua_multi(&lua),
        Err(e) => fail(&lua, e),
    }
}

/// `ws:send_text` / `ws:send_binary`: like `conn:write` (`super::tcp::WRITE`),
/// a Lua function that first makes a plain call handing the whole frame to
/// the socket (`Session::plain_frame`, `TcpConn::try_write`), and only when
/// that could not send all of it waits in an asynchronous call for the rest,
/// or for the whole message when it needs `Session::send` (compression, a
/// client's masking, a large buffer).
struct SendMethod(Kind, &'static str);

impl mlua::IntoLua for SendMethod {
    fn into_lua(self, lua: &Lua) -> mlua::Result<Value> {
        let SendMethod(kind, func) = self;
        let try_send = lua.create_function(move |lua, (this, data): (UserDataRef<Ws>, Value)| {
            let data = Bytes::from_lua(lua, data, Arg::new(func, 1))?;
            let frame = match data.with(|bytes| this.session.plain_frame(kind, bytes)) {
                Ok(Some(frame)) => frame,
                Ok(None) => return (false, 0).into_lua_multi(lua),
                Err(e) => return fail(lua, e),
            };
            let conn: UserDataRef<TcpConn> = this.conn.borrow()?;
            match conn.try_write(&frame) {
                Ok(n) if n == frame.len() => data.with(<[u8]>::len).into_lua_multi(lua),
                Ok(n) => (false, n).into_lua_multi(lua),
                Err(e) => fail(lua, e.into()),
            }
        })?;
        let wait_send =
            lua.create_async_function(move |lua, (this, data, sent): (UserDataRef<Ws>, Value, usize)| async move {
                if sent == 0 {
                    return send(lua, this, kind, data, func).await;
                }
                // Part of the frame went out: the rest follows before any other writer's bytes.
                let data = Bytes::from_lua(&lua, data, Arg::new(func, 1))?;
                let len = data.with(<[u8]>::len);
                let frame = match data.with(|bytes| this.session.plain_frame(kind, bytes)) {
                    Ok(Some(frame)) => frame,
                    Ok(None) => return fail(&lua, crate::net::NetError::Closed.into()),
                    Err(e) => return fail(&lua, e),
                };
                let mut rest = frame;
                rest.drain(..sent);
                let conn = TcpConn::clone(&*this.conn.borrow::<TcpConn>()?);
                match conn.write_staged(rest).await {
                    Ok(_) => len.into_lua_multi(&lua),
                    Err(e) => fail(&lua, e.into()),
                }
            })?;
        lua.load(super::tcp::WRITE).set_name(super::INTERNAL_CHUNK).call((try_send, wait_send))
    }
}

/// `ws:recv`: a plain call polls the session for its next event (`try_recv`)
/// and returns a data message, or leaves the coroutine waiting for more bytes
/// the way `conn:read` does; pings, closes, rule breaks and a server
/// shutting down go to the asynchronous `wait_recv`, which answers them.
struct RecvMethod;

impl mlua::IntoLua for RecvMethod {
    fn into_lua(self, lua: &Lua) -> mlua::Result<Value> {
        let try_recv = lua.create_function(|lua, this: UserDataRef<Ws>| try_recv(lua, &this))?;
        let wait_recv = lua.create_async_function(|lua, this: UserDataRef<Ws>| async move {
            let conn: UserDataRef<TcpConn> = this.conn.borrow()?;
            let engine = super::worker(&lua)?.engine.clone();
            // A server shutting down tells its peers (1001) instead of letting
            // the grace period end with a bare TCP close. Stopping a receive
            // midway loses nothing: the decoder keeps its place.
            let received = match select(pin!(this.session.recv(&conn)), pin!(engine.shutdown.wait())).await {
                Either::Left((r, _)) => r,
                Either::Right(_) => {
                    const WHY: &str = "server shutting down";
                    let _ = this.session.close(&conn, Some(code::GOING_AWAY), WHY.as_bytes()).await;
                    return (WHY, "close", code::GOING_AWAY).into_lua_multi(&lua);
                }
            };
            match received {
                Ok(Received::Message(kind, data)) => message(&lua, kind, &data),
                // 1005: "no status received", as browsers report it.
                Ok(Received::Close(reason)) => {
                    let (code, reason) = reason.unwrap_or((1005, String::new()));
                    (reason, "close", code).into_lua_multi(&lua)
                }
                Err(e) => fail(&lua, e),
            }
        })?;
        super::tcp::polled_method(lua, try_recv, Some(wait_recv))
    }
}

/// A data message as `ws:recv` returns it: the bytes and their kind.
fn message(lua: &Lua, kind: Kind, data: &[u8]) -> mlua::Result<MultiValue> {
    let kind = if kind == Kind::Text { "text" } else { "binary" };
    (lua.create_string(data)?, kind).into_lua_multi(lua)
}

/// One poll of `ws:recv` (see `RecvMethod`): the message, `false` when the
/// coroutine must wait for bytes (the read is parked with its waker, and the
/// session listens for the server's shutdown), `true` when `wait_recv` must
/// finish the call.
fn try_recv(lua: &Lua, this: &Ws) -> mlua::Result<MultiValue> {
    let ctx = super::worker(lua)?;
    let conn: UserDataRef<TcpConn> = this.conn.borrow()?;
    super::task::with_current(|current| {
        let Some(current) = current else { return true.into_lua_multi(lua) };
        let mut guard = match conn.begin_read_by(&current.owner) {
            Ok(guard) => guard,
            Err(e) => return fail(lua, e.into()),
        };
        if this.session.is_closing() || ctx.engine.shutdown.is_fired() {
            // The read this call may have parked is `wait_recv`'s now.
            guard.unpark();
            return true.into_lua_multi(lua);
        }
        let mut cx = std::task::Context::from_waker(&current.waker);
        let polled = pin!(this.session.next_event(&conn, &mut guard)).poll(&mut cx);
        let found = match polled {
            std::task::Poll::Ready(found) => found,
            std::task::Poll::Pending => {
                if let Err(e) = guard.park(&current.owner, &mut cx) {
                    return fail(lua, e.into());
                }
                let mut shutdown = this.shutdown.borrow_mut();
                let engine = ctx.engine.clone();
                let shutdown = shutdown.get_or_insert_with(|| Box::pin(async move { engine.shutdown.wait().await }));
                if shutdown.as_mut().poll(&mut cx).is_pending() {
                    return false.into_lua_multi(lua);
                }
                // Fired meanwhile: `wait_recv` says goodbye.
                guard.unpark();
                return true.into_lua_multi(lua);
            }
        };
        guard.unpark();
        match found {
            Ok(Ok(Event::Message(kind, data))) => message(lua, kind, &data),
            Ok(found) => {
                drop(guard);
                this.session.leave(found);
                true.into_lua_multi(lua)
            }
            Err(e) => fail(lua, e),
        }
    })
}

impl UserData for Ws {
    fn add_fields<F: mlua::UserDataFields<Self>>(f: &mut F) {
        f.add_field("recv", RecvMethod);
        f.add_field("send_text", SendMethod(Kind::Text, "send_text"));
        f.add_field("send_binary", SendMethod(Kind::Binary, "send_binary"));
    }

    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_async_method("ping", |lua, this: UserDataRef<Self>, data: Value| async move {
            let data = args::opt_bytes(&lua, data, Arg::new("ping", 1))?;
            let data = data.as_ref().map(|d| d.as_bytes().to_vec()).unwrap_or_default();
            if data.len() > 125 {
                return Err(Arg::new("ping", 1).error(&lua, "at most 125 bytes"));
            }
            let conn: UserDataRef<TcpConn> = this.conn.borrow()?;
            match this.session.ping(&conn, &data).await {
                Ok(_) => true.into_lua_multi(&lua),
                Err(e) => fail(&lua, e),
            }
        });
        m.add_async_method("close", |lua, this: UserDataRef<Self>, (code, reason): (Value, Value)| async move {
            let code = match code {
                Value::Nil => None,
                v => {
                    let c = args::integer(&lua, v, Arg::new("close", 1), (1000, 4999), None)? as u16;
                    if !crate::proto::ws::close_code_valid(c) {
                        return Err(Arg::new("close", 1).error(&lua, format!("{c} is not a close code one may send")));
                    }
                    Some(c)
                }
            };
            let reason = args::opt_bytes(&lua, reason, Arg::new("close", 2))?;
            let reason = reason.as_ref().map(|r| r.as_bytes().to_vec()).unwrap_or_default();
            if code.is_none() && !reason.is_empty() {
                return Err(Arg::new("close", 2).error(&lua, "a reason needs a code"));
            }
            let conn: UserDataRef<TcpConn> = this.conn.borrow()?;
            match this.session.close(&conn, code, &reason).await {
                Ok(()) => true.into_lua_multi(&lua),
                Err(e) => fail(&lua, e),
            }
        });
        m.add_method("protocol", |_, this, ()| Ok(this.protocol.clone()));
        m.add_method("peer", |lua, this, ()| {
            let conn: UserDataRef<TcpConn> = this.conn.borrow()?;
            match conn.peer_addr() {
                Ok(a) => (a.ip().to_string(), a.port()).into_lua_multi(lua),
                Err(e) => (Value::Nil, e.to_string()).into_lua_multi(lua),
            }
        });
        m.add_method("set_timeouts", |lua, this, (send, read): (Value, Value)| {
            let conn: UserDataRef<TcpConn> = this.conn.borrow()?;
            let mut t: Timeouts = conn.timeouts();
            if let Some(send) = args::timeout(lua, send, Arg::new("set_timeouts", 1))? {
                t.send = send;
            }
            if let Some(read) = args::timeout(lua, read, Arg::new("set_timeouts", 2))? {
                t.read = read;
            }
            conn.set_timeouts(t);
            Ok(())
        });
        m.add_meta_method("__tostring", |_, this, ()| {
            let peer = this.conn.borrow::<TcpConn>().ok().and_then(|c| c.peer_addr().ok());
            Ok(match peer {
                Some(peer) => format!("ws({peer})"),
                None => "ws(closed)".to_string(),
            })
        });
    }
}

/// `moonport.ws.bridge(ws, conn [, opts])`: the WebSocket and the TCP
/// connection pumped into each other natively until one side ends; returns
/// `ws_to_tcp, tcp_to_ws, reason [, code]`.
async fn bridge(lua: Lua, (ws, conn, opts): (Value, Value, Value)) -> mlua::Result<MultiValue> {
    let ws = match ws {
        Value::UserData(ud) if ud.is::<Ws>() => ud,
        other => return Err(Arg::new("bridge", 1).error(&lua, format!("ws expected, got {}", other.type_name()))),
    };
    let tcp = super::relay::conn_arg(&lua, conn, Arg::new("bridge", 2))?;
    let arg = Arg::new("bridge", 3);
    let idle_timeout = {
        let opts = args::opt_table(&lua, opts, arg)?;
        args::timeout(&lua, args::field(opts.as_ref(), "idle_timeout")?, arg.key("idle_timeout"))?.flatten()
    };
    let engine = super::worker(&lua)?.engine.clone();
    // The session lives in the ws object, so its reference is held for the
    // bridge's life: one Lua value, as for a `recv` in progress (within
    // SESSION_UNITS). The connections are plain Rust clones.
    let this: UserDataRef<Ws> = ws.borrow()?;
    let ws_conn = TcpConn::clone(&*this.conn.borrow::<TcpConn>()?);
    drop(ws);
    if ws_conn.same(&tcp) {
        return Err(Arg::new("bridge", 2).error(&lua, "a connection cannot be bridged to itself"));
    }
    let options = BridgeOptions { idle_timeout };
    let out = crate::proto::ws::bridge::bridge(&this.session, &ws_conn, &tcp, options, engine.shutdown.wait()).await;
    let code = match out.end {
        BridgeEnd::Close(code) => Some(code),
        _ => None,
    };
    (out.to_tcp, out.to_ws, out.end.to_string(), code).into_lua_multi(&lua)
}
