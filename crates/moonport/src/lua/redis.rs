//! `moonport.redis`: a Redis client for scripts, in the style of
//! lua-resty-redis. `client:get("k")`, `client:call("SET", "k", "v")`, any
//! command by name; `client:pipeline{...}` sends many commands in one write;
//! `subscribe` and `read_reply` do pub/sub. Replies come back as Lua values
//! (a status or bulk string, an integer, an array table, `moonport.redis.null`);
//! an error reply is `nil, "ERR ..."`. The core is `crate::redis`.

use std::cell::{Cell, RefCell};
use std::collections::{HashSet, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use mlua::{
    IntoLuaMulti, Lua, LuaSerdeExt, MetaMethod, MultiValue, Table, UserData, UserDataMethods, UserDataRef, Value,
};

use super::args::{self, Arg};
use super::net::Target as NetTarget;
use crate::net::{NetError, Timeouts};
use crate::redis::{self, Frame, RedisConn, RedisError, Target};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MAX_REPLY: i64 = 64 << 20;
/// Pub/sub messages that arrived while a `subscribe` waited for its
/// confirmations, kept for `read_reply`; past this the connection fails.
const MAX_PUSHED: usize = 65536;

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let m = lua.create_table()?;
    m.set("connect", lua.create_async_function(connect)?)?;
    m.set("null", lua.null())?;
    Ok(m)
}

struct Client {
    conn: RedisConn,
    /// One command (or pipeline) at a time: a second coroutine gets "busy"
    /// rather than the first one's reply.
    busy: Cell<bool>,
    /// Pub/sub messages read while a `subscribe` waited for its
    /// confirmations, as raw replies, for `read_reply`.
    pushed: RefCell<VecDeque<Vec<u8>>>,
    /// Channels, patterns and shard channels subscribed, from the server's
    /// confirmations: an unsubscribe from all of a kind gets one per name.
    subscribed: RefCell<[HashSet<Vec<u8>>; 3]>,
}

#[derive(Clone)]
struct RedisClient(Rc<Client>);

/// Frees the client for the next command when the current one ends.
struct Turn<'a>(&'a Cell<bool>);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

impl Client {
    fn turn(&self) -> Option<Turn<'_>> {
        (!self.busy.replace(true)).then_some(Turn(&self.busy))
    }
}

/// `connect(url [, opts])` → client | nil, err.
async fn connect(lua: Lua, (url, opts): (Value, Value)) -> mlua::Result<MultiValue> {
    let arg = Arg::new("connect", 1);
    let url = args::bytes(&lua, url, arg)?.to_string_lossy();
    let target = Target::parse(&url).map_err(|e| arg.error(&lua, e))?;
    let arg = Arg::new("connect", 2);
    let opts = args::opt_table(&lua, opts, arg)?;
    let timeout = match args::timeout(&lua, args::field(opts.as_ref(), "timeout")?, arg.key("timeout"))? {
        None => Some(DEFAULT_TIMEOUT),
        Some(t) => t,
    };
    let max_reply = args::integer(
        &lua,
        args::field(opts.as_ref(), "max_reply")?,
        arg.key("max_reply"),
        (1024, i64::MAX),
        Some(DEFAULT_MAX_REPLY),
    )? as usize;
    let read_buffer = args::integer(
        &lua,
        args::field(opts.as_ref(), "read_buffer")?,
        arg.key("read_buffer"),
        (512, 16 << 20),
        Some(super::tcp::DEFAULT_READ_BUFFER),
    )? as usize;
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    let addrs = match super::net::resolve_until(&lua, NetTarget::Name(target.host.clone(), target.port), deadline).await
    {
        Ok(addrs) => addrs,
        Err(e) => return (Value::Nil, e).into_lua_multi(&lua),
    };
    match RedisConn::connect(&target, &addrs, deadline, read_buffer, max_reply).await {
        Ok(conn) => {
            conn.conn.set_timeouts(Timeouts { send: timeout, read: timeout });
            let client = Client {
                conn,
                busy: Cell::new(false),
                pushed: RefCell::new(VecDeque::new()),
                subscribed: RefCell::new(Default::default()),
            };
            lua.create_userdata(RedisClient(Rc::new(client)))?.into_lua_multi(&lua)
        }
        Err(e) => (Value::Nil, e.to_string()).into_lua_multi(&lua),
    }
}

/// A reply as a Lua value; an error reply inside an array (EXEC's, say) is
/// `{false, "ERR ..."}`, as lua-resty-redis has it.
fn value(lua: &Lua, buf: &[u8], frame: &Frame) -> mlua::Result<Value> {
    Ok(match frame {
        Frame::Integer(i) => Value::Integer(*i as _),
        Frame::Null => lua.null(),
        Frame::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for item in items {
                t.raw_push(value(lua, buf, item)?)?;
            }
            Value::Table(t)
        }
        Frame::Error(_) => {
            let t = lua.create_table()?;
            t.raw_push(false)?;
            t.raw_push(lua.create_string(redis::text(buf, frame).unwrap_or(b""))?)?;
            Value::Table(t)
        }
        _ => Value::String(lua.create_string(redis::text(buf, frame).unwrap_or(b""))?),
    })
}

/// A top-level reply as the script gets it: the value, or `nil, "ERR ..."`.
fn reply_values(lua: &Lua, buf: &[u8], frame: &Frame) -> mlua::Result<MultiValue> {
    match frame {
        Frame::Error(_) => {
            let msg = lua.create_string(redis::text(buf, frame).unwrap_or(b""))?;
            (Value::Nil, msg).into_lua_multi(lua)
        }
        _ => value(lua, buf, frame)?.into_lua_multi(lua),
    }
}

/// `nil, err` for a failed call. A failure in the middle of a command
/// leaves replies unread, so the connection is closed: later calls say
/// "closed".
fn failed(lua: &Lua, client: &Client, e: RedisError, fatal: bool) -> mlua::Result<MultiValue> {
    if fatal || e.is_fatal() {
        client.conn.conn.close();
    }
    (Value::Nil, e.to_string()).into_lua_multi(lua)
}

/// Command arguments as bytes: strings, or numbers as Lua prints them.
fn command_args(
    lua: &Lua,
    name: Option<&[u8]>,
    values: MultiValue,
    func: &str,
    first: usize,
) -> mlua::Result<Vec<Vec<u8>>> {
    let mut out: Vec<Vec<u8>> = name.map(|n| vec![n.to_vec()]).unwrap_or_default();
    for (i, v) in values.into_iter().enumerate() {
        out.push(args::bytes(lua, v, Arg::new(func, first + i))?.as_bytes().to_vec());
    }
    if out.is_empty() {
        return Err(Arg::new(func, first).error(lua, "command name expected"));
    }
    Ok(out)
}

/// The kind of subscription a pub/sub verb (or confirmation) is about, and
/// whether it subscribes: `None` for other commands.
fn pubsub_kind(verb: &[u8]) -> Option<(usize, bool)> {
    match verb.to_ascii_lowercase().as_slice() {
        b"subscribe" => Some((0, true)),
        b"psubscribe" => Some((1, true)),
        b"ssubscribe" => Some((2, true)),
        b"unsubscribe" => Some((0, false)),
        b"punsubscribe" => Some((1, false)),
        b"sunsubscribe" => Some((2, false)),
        _ => None,
    }
}

impl Client {
    /// How many confirmations a pub/sub command gets: one per name given,
    /// or for an unsubscribe from all, one per name subscribed (at least one).
    fn confirmations(&self, args: &[Vec<u8>]) -> Option<usize> {
        let (kind, _) = pubsub_kind(&args[0])?;
        let named = args.len() - 1;
        Some(if named > 0 { named } else { self.subscribed.borrow()[kind].len().max(1) })
    }

    /// Notes what a confirmation says is now (un)subscribed.
    fn confirmed(&self, buf: &[u8], frame: &Frame) {
        let Frame::Array(items) = frame else { return };
        let (Some(verb), Some(name)) = (items.first().and_then(|v| redis::text(buf, v)), items.get(1)) else { return };
        let (Some((kind, on)), Some(name)) = (pubsub_kind(verb), redis::text(buf, name)) else { return };
        let set = &mut self.subscribed.borrow_mut()[kind];
        if on {
            set.insert(name.to_vec());
        } else {
            set.remove(name);
        }
    }
}

/// Whether a reply is a pub/sub message rather than a confirmation.
fn is_push(buf: &[u8], frame: &Frame) -> bool {
    let Frame::Array(items) = frame else { return false };
    matches!(items.first().and_then(|k| redis::text(buf, k)), Some(b"message" | b"pmessage" | b"smessage"))
}

/// Sends one command and reads its reply (or its confirmations).
async fn command(lua: &Lua, client: &Client, args: Vec<Vec<u8>>) -> mlua::Result<MultiValue> {
    let Some(_turn) = client.turn() else { return (Value::Nil, "busy").into_lua_multi(lua) };
    let mut out = client.conn.conn.stage(&[]);
    redis::encode_command(&mut out, &args);
    if let Err(e) = client.conn.send(out).await {
        return failed(lua, client, e, true);
    }
    let Some(expect) = client.confirmations(&args) else {
        return match client.conn.reply(|buf, frame| reply_values(lua, buf, frame)).await {
            Ok(values) => values,
            Err(e) => failed(lua, client, e, true),
        };
    };
    // Pub/sub: messages of channels already subscribed may come before the
    // confirmations; they wait in `pushed` for read_reply.
    let mut left = expect;
    loop {
        let read = client.conn.reply(|buf, frame| {
            if is_push(buf, frame) {
                // `buf` is exactly this reply's bytes.
                return Ok(Err(buf.to_vec()));
            }
            client.confirmed(buf, frame);
            reply_values(lua, buf, frame).map(Ok)
        });
        let result = match read.await {
            Ok(r) => r?,
            Err(e) => return failed(lua, client, e, true),
        };
        match result {
            Err(raw) => {
                let mut pushed = client.pushed.borrow_mut();
                if pushed.len() >= MAX_PUSHED {
                    drop(pushed);
                    return failed(lua, client, RedisError::TooLong, true);
                }
                pushed.push_back(raw);
            }
            Ok(values) => {
                left -= 1;
                if left == 0 {
                    return Ok(values);
                }
            }
        }
    }
}

impl UserData for RedisClient {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_async_method("call", |lua, this: UserDataRef<Self>, values: MultiValue| {
            let client = this.0.clone();
            drop(this);
            let args = command_args(&lua, None, values, "call", 1);
            async move { command(&lua, &client, args?).await }
        });
        m.add_async_method("pipeline", |lua, this: UserDataRef<Self>, cmds: Value| {
            let client = this.0.clone();
            drop(this);
            let encoded = pipeline_commands(&lua, cmds);
            async move {
                let (out, n) = encoded?;
                pipeline(&lua, &client, out, n).await
            }
        });
        m.add_async_method("read_reply", |lua, this: UserDataRef<Self>, timeout: Value| {
            let client = this.0.clone();
            drop(this);
            let timeout = args::timeout(&lua, timeout, Arg::new("read_reply", 1));
            async move { read_reply(&lua, &client, timeout?).await }
        });
        m.add_method("set_timeout", |lua, this, secs: Value| {
            let t = args::timeout(lua, secs, Arg::new("set_timeout", 1))?.flatten();
            this.0.conn.conn.set_timeouts(Timeouts { send: t, read: t });
            Ok(())
        });
        m.add_method("close", |_, this, ()| {
            this.0.conn.conn.close();
            Ok(())
        });
        // Any other method is the command of that name: client:hset(...).
        m.add_meta_function(MetaMethod::Index, |lua, (_, key): (Value, Value)| {
            let Value::String(name) = key else { return Ok(Value::Nil) };
            command_function(lua, &name.as_bytes()).map(Value::Function)
        });
        m.add_meta_method("__tostring", |_, this, ()| {
            Ok(match this.0.conn.conn.peer_addr() {
                Ok(addr) => format!("redis({addr})"),
                Err(_) => "redis(closed)".to_string(),
            })
        });
    }
}

/// The method for command `name`, made once per Lua state and name.
fn command_function(lua: &Lua, name: &[u8]) -> mlua::Result<mlua::Function> {
    let cache: Table = match lua.named_registry_value("moonport.redis.commands")? {
        Value::Table(t) => t,
        _ => {
            let t = lua.create_table()?;
            lua.set_named_registry_value("moonport.redis.commands", &t)?;
            t
        }
    };
    let key = lua.create_string(name)?;
    if let Value::Function(f) = cache.raw_get(&key)? {
        return Ok(f);
    }
    let verb = name.to_vec();
    let f = lua.create_async_function(move |lua, (this, values): (UserDataRef<RedisClient>, MultiValue)| {
        let client = this.0.clone();
        drop(this);
        let func = String::from_utf8_lossy(&verb).into_owned();
        let args = command_args(&lua, Some(&verb), values, &func, 1);
        async move { command(&lua, &client, args?).await }
    })?;
    cache.raw_set(key, &f)?;
    Ok(f)
}

/// `pipeline{{"SET", "k", 1}, {"GET", "k"}}`: the commands encoded in one buffer.
fn pipeline_commands(lua: &Lua, cmds: Value) -> mlua::Result<(Vec<u8>, usize)> {
    let arg = Arg::new("pipeline", 1);
    let Value::Table(cmds) = cmds else {
        return Err(arg.error(lua, format!("table expected, got {}", cmds.type_name())));
    };
    let mut out = Vec::new();
    let mut n = 0;
    for cmd in cmds.sequence_values::<Value>() {
        let Value::Table(cmd) = cmd? else { return Err(arg.error(lua, "each command must be a table")) };
        let args =
            command_args(lua, None, cmd.sequence_values::<Value>().collect::<mlua::Result<_>>()?, "pipeline", 1)?;
        redis::encode_command(&mut out, &args);
        n += 1;
    }
    Ok((out, n))
}

/// Sends encoded commands in one write, then reads a reply for each.
async fn pipeline(lua: &Lua, client: &Client, out: Vec<u8>, n: usize) -> mlua::Result<MultiValue> {
    let Some(_turn) = client.turn() else { return (Value::Nil, "busy").into_lua_multi(lua) };
    if n > 0
        && let Err(e) = client.conn.send(out).await
    {
        return failed(lua, client, e, true);
    }
    let results = lua.create_table_with_capacity(n, 0)?;
    for _ in 0..n {
        match client.conn.reply(|buf, frame| value(lua, buf, frame)).await {
            Ok(v) => results.raw_push(v?)?,
            Err(e) => return failed(lua, client, e, true),
        }
    }
    results.into_lua_multi(lua)
}

/// The next reply: a pub/sub message after `subscribe`. A timeout here is
/// not fatal: nothing was half read.
async fn read_reply(lua: &Lua, client: &Client, timeout: Option<Option<Duration>>) -> mlua::Result<MultiValue> {
    let Some(_turn) = client.turn() else { return (Value::Nil, "busy").into_lua_multi(lua) };
    if let Some(raw) = client.pushed.borrow_mut().pop_front() {
        return match redis::decode(&raw) {
            Ok(Some((frame, _))) => reply_values(lua, &raw, &frame),
            _ => (Value::Nil, "protocol error").into_lua_multi(lua),
        };
    }
    let conn = &client.conn;
    let saved = conn.conn.timeouts();
    if let Some(t) = timeout {
        conn.conn.set_timeouts(Timeouts { read: t, ..saved });
    }
    let result = conn.reply(|buf, frame| reply_values(lua, buf, frame)).await;
    conn.conn.set_timeouts(saved);
    match result {
        Ok(values) => values,
        Err(RedisError::Net(NetError::Timeout)) => (Value::Nil, "timeout").into_lua_multi(lua),
        Err(e) => failed(lua, client, e, false),
    }
}
