//! `moonport.http`: an HTTP/1.1 server (`listen`), a static file handler
//! (`static`) and a small client (`request`). A handler gets `req`, a table
//! (`method`, `path`, `query`, `target`, `version`, `body`, and `headers`,
//! whose lookups ignore case), and `res`, whose `status` and headers are set
//! before the first `write` / `send`. Connections are kept alive between
//! requests; limits on heads, bodies and time answer 431 / 413 / 408.
//! `moonport.ws.upgrade(req, res)` turns a request into a WebSocket.

use std::cell::RefCell;
use std::path::PathBuf;
use std::pin::pin;
use std::time::Duration;

use futures_util::future::{Either, select};
use futures_util::lock::Mutex;
use mlua::{
    AnyUserData, Function, IntoLuaMulti, Lua, MultiValue, Table, UserData, UserDataFields, UserDataMethods,
    UserDataRef, Value,
};

use super::args::{self, Arg};
use super::buffer::Bytes;
use crate::net::{NetError, TcpConn};
use crate::proto::http::body::{self, Framing};
use crate::proto::http::files::{self, Conditions};
use crate::proto::http::response::{Data, Response, State};
use crate::proto::http::server::{self, ReadError};
use crate::proto::http::{Head, Limits, client};

/// Registry key of the function that gives a headers table its
/// case-insensitive lookups.
const CASELESS: &str = "moonport.http.caseless";
/// Registry key of `moonport.tcp.listen`, which `http.listen` builds on.
pub(super) const TCP_LISTEN: &str = "moonport.http.tcp_listen";

const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MAX_BODY: i64 = 1 << 20;
const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_CLIENT_MAX_BODY: i64 = 64 << 20;

/// A listener's bounds on each request.
#[derive(Debug, Clone, Copy)]
pub struct HttpOptions {
    pub limits: Limits,
    /// From the first byte of a request head to its end.
    pub header_timeout: Option<Duration>,
    /// Waiting for the next request on a kept-alive connection.
    pub idle_timeout: Option<Duration>,
    /// Receiving a request body.
    pub body_timeout: Option<Duration>,
    pub max_body: usize,
}

impl HttpOptions {
    pub fn from_lua(lua: &Lua, opts: Option<&Table>, arg: Arg) -> mlua::Result<Self> {
        let d = Limits::default();
        let size = |key: &'static str, range: (i64, i64), default: i64| -> mlua::Result<usize> {
            Ok(args::integer(lua, args::field(opts, key)?, arg.key(key), range, Some(default))? as usize)
        };
        let limits = Limits {
            max_head: size("max_header", (64, 1 << 24), d.max_head as i64)?,
            max_headers: size("max_headers", (1, 10_000), d.max_headers as i64)?,
        };
        let timeout = |key: &'static str, default: Duration| -> mlua::Result<Option<Duration>> {
            Ok(args::timeout(lua, args::field(opts, key)?, arg.key(key))?.unwrap_or(Some(default)))
        };
        Ok(Self {
            limits,
            header_timeout: timeout("header_timeout", DEFAULT_HEADER_TIMEOUT)?,
            idle_timeout: timeout("idle_timeout", DEFAULT_IDLE_TIMEOUT)?,
            body_timeout: timeout("body_timeout", DEFAULT_BODY_TIMEOUT)?,
            max_body: size("max_body", (0, 1 << 40), DEFAULT_MAX_BODY)?,
        })
    }
}

pub fn install(lua: &Lua, moonport: &Table) -> mlua::Result<()> {
    let caseless: Function = lua
        .load(
            "local mt = { __index = function(t, k) if type(k) == 'string' then return rawget(t, k:lower()) end end }\n\
             return function(t) return setmetatable(t, mt) end",
        )
        .set_name("=moonport.http")
        .call(())?;
    lua.set_named_registry_value(CASELESS, caseless)?;
    let tcp: Table = moonport.get("tcp")?;
    lua.set_named_registry_value(TCP_LISTEN, tcp.get::<Function>("listen")?)?;

    let http = lua.create_table()?;
    http.set("listen", lua.create_function(listen)?)?;
    http.set("static", lua.create_function(static_handler)?)?;
    http.set("request", lua.create_async_function(request)?)?;
    moonport.set("http", http)
}

/// A headers table whose lookups ignore case: names stored in lowercase,
/// repeated ones joined with ", " (RFC 9110 §5.3).
fn headers_table(lua: &Lua, headers: &[(String, Vec<u8>)]) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        let joined = match t.raw_get::<Option<mlua::LuaString>>(name.as_str())? {
            Some(prev) => [&prev.as_bytes()[..], b", ", value].concat(),
            None => value.clone(),
        };
        t.raw_set(name, lua.create_string(joined)?)?;
    }
    let caseless: Function = lua.named_registry_value(CASELESS)?;
    caseless.call::<Value>(t)
}

/// The `req` table for a request head (without `body`).
pub fn request_table(lua: &Lua, head: &Head) -> mlua::Result<Table> {
    let req = lua.create_table()?;
    req.set("method", head.method.as_str())?;
    req.set("target", head.target.as_str())?;
    req.set("path", head.path())?;
    req.set("query", head.query())?;
    req.set("version", if head.version == 0 { "1.0" } else { "1.1" })?;
    req.set("headers", headers_table(lua, &head.headers)?)?;
    Ok(req)
}

/// Answers a request that could not be read, when there is anyone to
/// answer; the connection ends either way.
pub async fn refuse_request(conn: &TcpConn, e: ReadError) -> mlua::Result<()> {
    let Some(status) = e.status() else { return Ok(()) };
    if let Ok(peer) = conn.peer_addr() {
        tracing::info!("http {peer}: {e}, answered {status}");
    }
    let _ = server::send_error(conn, status, server::reason(status), "").await;
    Ok(())
}

fn listen(lua: &Lua, (opts, handler): (Value, Value)) -> mlua::Result<MultiValue> {
    let arg = Arg::new("listen", 1);
    let table = args::opt_table(lua, opts.clone(), arg)?;
    let http = HttpOptions::from_lua(lua, table.as_ref(), arg)?;
    let handler = args::function(lua, handler, Arg::new("listen", 2))?;
    let serve = lua.create_async_function(move |lua, conn: AnyUserData| {
        let handler = handler.clone();
        async move { serve(lua, conn, handler, http).await }
    })?;
    let tcp_listen: Function = lua.named_registry_value(TCP_LISTEN)?;
    tcp_listen.call((opts, serve))
}

/// One connection: requests one after another while both sides keep it alive.
async fn serve(lua: Lua, conn_ud: AnyUserData, handler: Function, opts: HttpOptions) -> mlua::Result<()> {
    let ctx = super::worker(&lua)?;
    // Like a WebSocket session, an HTTP connection keeps several Lua values
    // in Rust (its objects, the handler and its nested call): see `ws::SESSION_UNITS`.
    let _budget = match super::task::reserve(&lua, super::ws::SESSION_UNITS) {
        Ok(units) => units,
        Err(e) => {
            tracing::warn!("http connection closed unserved: {e}");
            conn_ud.borrow::<TcpConn>()?.close();
            return Ok(());
        }
    };
    let mut idle = opts.header_timeout;
    loop {
        let conn: UserDataRef<TcpConn> = conn_ud.borrow()?;
        // A shutdown, or a reload that replaced this script version, ends the
        // wait for the next request (the read is parked in the connection, so
        // stopping it is safe): the client's next connection gets the new code.
        let reading = server::read_head(&conn, opts.limits, idle, opts.header_timeout);
        let head = match select(pin!(reading), pin!(ctx.stop())).await {
            Either::Left((Ok(head), _)) => head,
            Either::Left((Err(e), _)) => return refuse_request(&conn, e).await,
            Either::Right(_) => return Ok(()),
        };
        idle = opts.idle_timeout;
        let framing = match body::request_framing(&head) {
            Ok(f) => f,
            Err(e) => return refuse_request(&conn, ReadError::Body(e)).await,
        };
        if framing != Framing::None && head.has_token("expect", "100-continue") {
            if matches!(framing, Framing::Length(n) if n > opts.max_body as u64) {
                return refuse_request(&conn, ReadError::Body(body::BodyError::TooLarge)).await;
            }
            if conn.write(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err() {
                return Ok(());
            }
        }
        let body = match server::read_body(&conn, framing, opts.max_body, opts.body_timeout).await {
            Ok(b) => b,
            Err(e) => return refuse_request(&conn, e).await,
        };
        let req = request_table(&lua, &head)?;
        req.set("body", lua.create_string(body)?)?;
        // During a shutdown or a drain each connection ends after its current request.
        let keep_alive = head.keep_alive() && !ctx.stopping();
        let response = Response::new(head.method == "HEAD", head.version == 1, keep_alive);
        drop(conn);
        let res = lua.create_userdata(Res {
            conn: conn_ud.clone(),
            head,
            response: Mutex::new(response),
            ws: RefCell::new(None),
        })?;
        let result = super::task::resumed(handler.call_async::<()>((req, res.clone()))).await;
        let res: UserDataRef<Res> = res.borrow()?;
        let conn: UserDataRef<TcpConn> = conn_ud.borrow()?;
        let mut response = res.response.lock().await;
        if let Err(e) = result {
            if response.state() == State::Pending {
                response.status = 500;
                response.close_after();
                let _ = response.send(&conn, Data::Bytes(b"internal server error\n")).await;
            }
            return Err(e);
        }
        if response.state() == State::Upgraded {
            let ws = res.ws.borrow_mut().take();
            if let Some(ws) = ws {
                super::ws::finish(&ws, true).await?;
            }
            return Ok(());
        }
        if response.finish(&conn).await.is_err() || !response.keep_alive() || conn.is_closed() {
            return Ok(());
        }
    }
}

/// The Lua `res` object.
pub(super) struct Res {
    /// The connection's `TcpConn` userdata.
    pub(super) conn: AnyUserData,
    /// The request it answers: static files and upgrades look at it.
    pub(super) head: Head,
    /// Locked across writes, which wait on the socket.
    pub(super) response: Mutex<Response>,
    /// The WebSocket this request became, closed politely when the handler ends.
    pub(super) ws: RefCell<Option<AnyUserData>>,
}

fn busy(lua: &Lua, func: &str) -> mlua::Error {
    mlua::Error::runtime(format!("{}{func}: response busy in another coroutine", args::location(lua)))
}

fn res_fail(lua: &Lua, e: NetError) -> mlua::Result<MultiValue> {
    (Value::Nil, e.to_string()).into_lua_multi(lua)
}

impl UserData for Res {
    fn add_fields<F: UserDataFields<Self>>(f: &mut F) {
        f.add_field_method_get("status", |lua, this| {
            Ok(this.response.try_lock().ok_or_else(|| busy(lua, "status"))?.status)
        });
        f.add_field_method_set("status", |lua, this, v: Value| {
            let code = args::integer(lua, v, Arg::new("status", 1), (100, 999), None)? as u16;
            let mut r = this.response.try_lock().ok_or_else(|| busy(lua, "status"))?;
            if r.state() != State::Pending {
                return Err(Arg::new("status", 1).error(lua, "response already started"));
            }
            r.status = code;
            Ok(())
        });
    }

    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_method("header", |lua, this, (name, value): (Value, Value)| {
            let name = args::bytes(lua, name, Arg::new("header", 1))?.to_string_lossy();
            let value = args::opt_bytes(lua, value, Arg::new("header", 2))?.map(|v| v.to_string_lossy());
            let mut r = this.response.try_lock().ok_or_else(|| busy(lua, "header"))?;
            if !r.set_header(&name, value.as_deref()) {
                return Err(Arg::new("header", 1).error(lua, "response already started"));
            }
            Ok(())
        });
        m.add_async_method("write", |lua, this: UserDataRef<Self>, data: Value| async move {
            let data = Bytes::from_lua(&lua, data, Arg::new("write", 1))?;
            let conn: UserDataRef<TcpConn> = this.conn.borrow()?;
            let mut r = this.response.lock().await;
            let written = match &data {
                Bytes::Str(s) => r.write(&conn, Data::Bytes(&s.as_bytes())).await,
                Bytes::Buf(c) => r.write(&conn, Data::Chunk(c.clone())).await,
            };
            match written {
                Ok(n) => n.into_lua_multi(&lua),
                Err(e) => res_fail(&lua, e),
            }
        });
        m.add_async_method("send", |lua, this: UserDataRef<Self>, data: Value| async move {
            let data = match data {
                Value::Nil => None,
                v => Some(Bytes::from_lua(&lua, v, Arg::new("send", 1))?),
            };
            let conn: UserDataRef<TcpConn> = this.conn.borrow()?;
            let mut r = this.response.lock().await;
            let sent = match &data {
                None => r.finish(&conn).await,
                Some(Bytes::Str(s)) => r.send(&conn, Data::Bytes(&s.as_bytes())).await,
                Some(Bytes::Buf(c)) => r.send(&conn, Data::Chunk(c.clone())).await,
            };
            match sent {
                Ok(()) => true.into_lua_multi(&lua),
                Err(e) => res_fail(&lua, e),
            }
        });
        m.add_async_method("send_file", |lua, this: UserDataRef<Self>, path: Value| async move {
            let path = PathBuf::from(args::bytes(&lua, path, Arg::new("send_file", 1))?.to_string_lossy());
            match send_file(&this, &path).await {
                Ok(()) => true.into_lua_multi(&lua),
                Err(e) => res_fail(&lua, e),
            }
        });
        m.add_meta_method("__tostring", |_, this, ()| Ok(format!("res({} {})", this.head.method, this.head.target)));
    }
}

async fn send_file(res: &Res, path: &std::path::Path) -> Result<(), NetError> {
    let conn: UserDataRef<TcpConn> = res.conn.borrow().map_err(|_| NetError::Closed)?;
    let mut r = res.response.lock().await;
    if r.state() != State::Pending {
        return Err(NetError::TooLong("response already started"));
    }
    let cond = Conditions {
        range: res.head.header("range").and_then(|v| std::str::from_utf8(v).ok()),
        if_none_match: res.head.header("if-none-match").and_then(|v| std::str::from_utf8(v).ok()),
    };
    files::send(&conn, &mut r, path, cond).await
}

/// `moonport.http.static(root [, opts])`: a handler serving files under
/// `root`; `opts.prefix` is a leading part of the path to strip first.
fn static_handler(lua: &Lua, (root, opts): (Value, Value)) -> mlua::Result<Function> {
    let arg = Arg::new("static", 1);
    let root = args::bytes(lua, root, arg)?.to_string_lossy();
    let root = match std::fs::canonicalize(&root) {
        Ok(r) if r.is_dir() => r,
        _ => return Err(arg.error(lua, format!("{root}: no such directory"))),
    };
    let opts = args::opt_table(lua, opts, Arg::new("static", 2))?;
    let prefix = args::opt_bytes(lua, args::field(opts.as_ref(), "prefix")?, Arg::new("static", 2).key("prefix"))?
        .map(|p| p.to_string_lossy().trim_end_matches('/').to_string())
        .unwrap_or_default();
    lua.create_async_function(move |lua, (_req, res): (Value, Value)| {
        let (root, prefix) = (root.clone(), prefix.clone());
        async move {
            let res = match res {
                Value::UserData(ud) if ud.is::<Res>() => ud,
                other => {
                    return Err(
                        Arg::new("static handler", 2).error(&lua, format!("res expected, got {}", other.type_name()))
                    );
                }
            };
            let res: UserDataRef<Res> = res.borrow()?;
            let status = if !matches!(res.head.method.as_str(), "GET" | "HEAD") {
                res.response.lock().await.set_header("Allow", Some("GET, HEAD"));
                405
            } else {
                let path = res.head.path();
                let rest = path.strip_prefix(prefix.as_str()).filter(|r| r.is_empty() || r.starts_with('/'));
                match rest.map_or(Err(404), |rest| files::resolve(&root, rest)) {
                    Ok(path) => {
                        return match send_file(&res, &path).await {
                            Ok(()) => true.into_lua_multi(&lua),
                            Err(e) => res_fail(&lua, e),
                        };
                    }
                    Err(status) => status,
                }
            };
            let conn: UserDataRef<TcpConn> = res.conn.borrow()?;
            let mut r = res.response.lock().await;
            r.status = status;
            r.set_header("Content-Type", Some("text/plain; charset=utf-8"));
            let body = format!("{}\n", server::reason(status));
            match r.send(&conn, Data::Bytes(body.as_bytes())).await {
                Ok(()) => true.into_lua_multi(&lua),
                Err(e) => res_fail(&lua, e),
            }
        }
    })
}

/// Where a URL's host and port lead: an address, or a name to resolve.
pub(super) fn target(host: &str, port: u16) -> super::net::Target {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => super::net::Target::Addr(std::net::SocketAddr::new(ip, port)),
        Err(_) => super::net::Target::Name(host.to_string(), port),
    }
}

/// `moonport.http.request{ method, url, headers, body, timeout, max_body }`.
async fn request(lua: Lua, opts: Value) -> mlua::Result<MultiValue> {
    let arg = Arg::new("request", 1);
    let opts = match opts {
        Value::Table(t) => t,
        Value::String(s) => {
            let t = lua.create_table()?;
            t.set("url", s)?;
            t
        }
        other => return Err(arg.error(&lua, format!("table expected, got {}", other.type_name()))),
    };
    let url = args::bytes(&lua, opts.get("url")?, arg.key("url"))?.to_string_lossy();
    let body = match opts.get::<Value>("body")? {
        Value::Nil => None,
        v => Some(Bytes::from_lua(&lua, v, arg.key("body"))?),
    };
    let method = match args::opt_bytes(&lua, opts.get("method")?, arg.key("method"))? {
        Some(m) => m.to_string_lossy().to_ascii_uppercase(),
        None if body.is_some() => "POST".to_string(),
        None => "GET".to_string(),
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(arg.key("method").error(&lua, "an HTTP method expected"));
    }
    let mut headers = Vec::new();
    if let Some(t) = args::opt_table(&lua, opts.get("headers")?, arg.key("headers"))? {
        for pair in t.pairs::<Value, Value>() {
            let (k, v) = pair?;
            let k = args::bytes(&lua, k, arg.key("headers"))?.to_string_lossy();
            let v = args::bytes(&lua, v, arg.key("headers"))?.to_string_lossy();
            headers.push((k, v));
        }
    }
    let timeout =
        args::timeout(&lua, opts.get("timeout")?, arg.key("timeout"))?.unwrap_or(Some(DEFAULT_CLIENT_TIMEOUT));
    let max_body =
        args::integer(&lua, opts.get("max_body")?, arg.key("max_body"), (0, 1 << 40), Some(DEFAULT_CLIENT_MAX_BODY))?;
    let body_bytes = body.as_ref().map(|b| b.with(<[u8]>::to_vec)).unwrap_or_default();
    let fail = |e: String| (Value::Nil, e).into_lua_multi(&lua);
    let origin = match client::origin(&url) {
        Ok(o) => o,
        Err(e) => return fail(e.to_string()),
    };
    let tls = match super::tls::url_session(&lua, opts.get("tls")?, arg.key("tls"), origin.https, &origin.host)? {
        Ok(tls) => tls,
        Err(why) => return fail(why),
    };
    let resolving = super::net::resolve(&lua, target(&origin.host, origin.port), None);
    let addrs = match timeout {
        None => resolving.await,
        Some(d) => compio::time::timeout(d, resolving).await.unwrap_or_else(|_| Err("timeout".into())),
    };
    let addrs = match addrs {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let req = client::Request {
        method: &method,
        url: &url,
        addrs: &addrs,
        headers: &headers,
        body: &body_bytes,
        timeout,
        max_body: max_body as usize,
    };
    match client::request(req, tls).await {
        Ok(r) => {
            let t = lua.create_table()?;
            t.set("status", r.status)?;
            t.set("headers", headers_table(&lua, &r.headers)?)?;
            t.set("body", lua.create_string(r.body)?)?;
            t.into_lua_multi(&lua)
        }
        Err(e) => (Value::Nil, e.to_string()).into_lua_multi(&lua),
    }
}
