//! `moonport.room(name [, opts])`: pub/sub rooms shared by all workers, and
//! with `{ scope = "cluster" }` by every process of the cluster. `publish`
//! shares one copy of the bytes with every subscriber; each subscription has
//! a bounded queue and a policy for when it is full; `attach` feeds a room to
//! a connection natively.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{Either, select};
use mlua::{IntoLuaMulti, Lua, MultiValue, UserData, UserDataMethods, UserDataRef, Value};

use super::args::{self, Arg};
use super::buffer::{Bytes, DEFAULT_MAX};
use super::worker;
use crate::buf::Buffer;
use crate::room::{Limits, Policy, Recv, Room, Subscription};

struct RoomHandle(Arc<Room>);

/// Closes its subscription when the script lets go of it.
pub(super) struct SubHandle(pub(super) Arc<Subscription>);

impl Drop for SubHandle {
    fn drop(&mut self) {
        self.0.close();
    }
}

pub fn install(lua: &Lua, moonport: &mlua::Table) -> mlua::Result<()> {
    moonport.set(
        "room",
        lua.create_function(|lua, (name, opts): (Value, Value)| {
            let name = args::bytes(lua, name, Arg::new("room", 1))?.to_string_lossy();
            let arg = Arg::new("room", 2);
            let opts = args::opt_table(lua, opts, arg)?;
            let engine = &worker(lua)?.engine;
            let scope = args::opt_bytes(lua, args::field(opts.as_ref(), "scope")?, arg.key("scope"))?;
            match scope.as_ref().map(|s| s.as_bytes().to_vec()).as_deref() {
                None | Some(b"local") => Ok(RoomHandle(engine.rooms.get(&name))),
                Some(b"cluster") => match engine.cluster() {
                    Some(cluster) => Ok(RoomHandle(engine.rooms.get_cluster(&name, &cluster))),
                    None => Err(arg.key("scope").error(
                        lua,
                        "not in a cluster: run with --cluster redis://host:port or call moonport.cluster.join(url) first",
                    )),
                },
                Some(_) => Err(arg.key("scope").error(lua, "\"local\" or \"cluster\" expected")),
            }
        })?,
    )
}

/// The `queue` (messages) and `bytes` bounds of an options table, with
/// their defaults: a subscription's, or the cluster link's.
pub(super) fn queue_bounds(lua: &Lua, opts: Option<&mlua::Table>, arg: Arg, defaults: Limits) -> mlua::Result<Limits> {
    let messages = args::integer(
        lua,
        args::field(opts, "queue")?,
        arg.key("queue"),
        (1, 1 << 24),
        Some(defaults.messages as i64),
    )?;
    let bytes =
        args::integer(lua, args::field(opts, "bytes")?, arg.key("bytes"), (1, i64::MAX), Some(defaults.bytes as i64))?;
    Ok(Limits { messages: messages as usize, bytes: bytes as usize })
}

fn subscription_options(lua: &Lua, v: Value, arg: Arg) -> mlua::Result<(Limits, Policy)> {
    let opts = args::opt_table(lua, v, arg)?;
    let limits = queue_bounds(lua, opts.as_ref(), arg, Limits::default())?;
    let policy = match args::opt_bytes(lua, args::field(opts.as_ref(), "policy")?, arg.key("policy"))? {
        None => Policy::DropOldest,
        Some(p) => match p.as_bytes().as_ref() {
            b"drop_oldest" => Policy::DropOldest,
            b"keep_latest" => Policy::KeepLatest,
            b"disconnect" => Policy::Disconnect,
            _ => {
                return Err(arg
                    .key("policy")
                    .error(lua, "\"drop_oldest\", \"keep_latest\" or \"disconnect\" expected"));
            }
        },
    };
    Ok((limits, policy))
}

impl UserData for RoomHandle {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_method("name", |_, this, ()| Ok(this.0.name().to_string()));
        m.add_method("count", |_, this, ()| Ok(this.0.count()));
        m.add_method("stats", |lua, this, ()| {
            let t = lua.create_table()?;
            t.set("subscribers", this.0.count())?;
            let Some(bridge) = this.0.bridge() else {
                t.set("scope", "local")?;
                return Ok(t);
            };
            t.set("scope", "cluster")?;
            t.set("connected", bridge.cluster().is_connected())?;
            let s = &bridge.stats;
            for (key, n) in
                [("unsent", &s.unsent), ("received", &s.received), ("lost", &s.lost), ("duplicates", &s.duplicates)]
            {
                t.set(key, n.load(std::sync::atomic::Ordering::Relaxed))?;
            }
            Ok(t)
        });
        m.add_method("publish", |lua, this, data: Value| {
            let chunk = match Bytes::from_lua(lua, data, Arg::new("publish", 1))? {
                Bytes::Buf(chunk) => chunk,
                // One copy into shared storage; every subscriber then shares it.
                Bytes::Str(s) => Buffer::from_slice(&s.as_bytes(), usize::MAX).chunk(),
            };
            Ok(this.0.publish(chunk))
        });
        m.add_method("subscribe", |lua, this, opts: Value| {
            let (limits, policy) = subscription_options(lua, opts, Arg::new("subscribe", 1))?;
            Ok(SubHandle(this.0.subscribe(limits, policy)))
        });
        m.add_async_method("attach", |lua, this: UserDataRef<Self>, (conn, opts): (Value, Value)| {
            // Checked and taken out of their Lua objects before the wait: an
            // attached viewer holds no Lua value while it waits.
            let room = this.0.clone();
            drop(this);
            // A WebSocket gets each message as one frame, of `opts.kind`.
            let ws = match &conn {
                Value::UserData(ud) if super::ws::is_ws(ud) => Some(ud.clone()),
                _ => None,
            };
            let checked = match ws {
                Some(_) => ws_kind(&lua, &opts).map(|text| (None, text)),
                None => super::relay::conn_arg(&lua, conn, Arg::new("attach", 1)).map(|conn| (Some(conn), false)),
            }
            .and_then(|(conn, text)| Ok((conn, text, subscription_options(&lua, opts, Arg::new("attach", 2))?)));
            async move {
                let (conn, text, (limits, policy)) = checked?;
                let sub = SubHandle(room.subscribe(limits, policy));
                let (Some(conn), None) = (conn, &ws) else {
                    let Some(ws) = ws else { unreachable!("either a conn or a ws was checked") };
                    let reason = super::ws::attach(&ws, &sub.0, text).await?;
                    return Ok((reason, sub.0.missed()));
                };
                let reason = feed(
                    &sub.0,
                    || conn.close(),
                    |msg| {
                        let conn = conn.clone();
                        async move { conn.write_chunk(msg).await.map(drop).map_err(|e| e.to_string()) }
                    },
                )
                .await;
                Ok((reason, sub.0.missed()))
            }
        });
        m.add_meta_method("__tostring", |_, this, ()| Ok(format!("room({})", this.0.name())));
    }
}

/// `opts.kind` of `attach` for a WebSocket: `true` for text frames.
fn ws_kind(lua: &Lua, opts: &Value) -> mlua::Result<bool> {
    let arg = Arg::new("attach", 2);
    let kind = match opts {
        Value::Table(t) => args::opt_bytes(lua, t.get("kind")?, arg.key("kind"))?,
        _ => None,
    };
    match kind.as_ref().map(|k| k.as_bytes().to_vec()).as_deref() {
        None | Some(b"binary") => Ok(false),
        Some(b"text") => Ok(true),
        Some(_) => Err(arg.key("kind").error(lua, "\"text\" or \"binary\" expected")),
    }
}

/// Delivers a subscription's messages to a viewer with `send` until the
/// viewer fails (its error is the reason) or the room lets it go: "closed",
/// or "overflow" under the disconnect policy, after `close` shuts it. A
/// viewer stuck in a send still meets the policy meanwhile.
pub(super) async fn feed<F, Fut>(sub: &Subscription, close: impl FnOnce(), mut send: F) -> String
where
    F: FnMut(crate::buf::Chunk) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    loop {
        match sub.recv().await {
            Recv::Message(msg) => match select(pin!(send(msg)), pin!(sub.ended())).await {
                Either::Left((Ok(()), _)) | Either::Right(_) => {}
                Either::Left((Err(e), _)) => return e,
            },
            Recv::Closed => return "closed".to_string(),
            Recv::Overflow => {
                // Too slow for this room: the policy says let it go.
                close();
                return "overflow".to_string();
            }
        }
    }
}

/// Waits for the next message, within `timeout` if given.
async fn next(sub: &Subscription, timeout: Option<Duration>) -> Option<Recv> {
    match timeout {
        None => Some(sub.recv().await),
        Some(d) => compio::time::timeout(d, sub.recv()).await.ok(),
    }
}

pub(super) fn ended(lua: &Lua, r: Option<Recv>) -> mlua::Result<MultiValue> {
    let err = match r {
        None => "timeout",
        Some(Recv::Overflow) => "overflow",
        _ => "closed",
    };
    (Value::Nil, err).into_lua_multi(lua)
}

impl UserData for SubHandle {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_async_method("recv", |lua, this: UserDataRef<Self>, timeout: Value| async move {
            let timeout = args::timeout(&lua, timeout, Arg::new("recv", 1))?.flatten();
            match next(&this.0, timeout).await {
                Some(Recv::Message(msg)) => lua.create_string(msg.as_slice())?.into_lua_multi(&lua),
                other => ended(&lua, other),
            }
        });
        m.add_async_method("recv_buffer", |lua, this: UserDataRef<Self>, timeout: Value| async move {
            let timeout = args::timeout(&lua, timeout, Arg::new("recv_buffer", 1))?.flatten();
            match next(&this.0, timeout).await {
                Some(Recv::Message(msg)) => msg.into_buffer(DEFAULT_MAX).into_lua_multi(&lua),
                other => ended(&lua, other),
            }
        });
        m.add_method("missed", |_, this, ()| Ok(this.0.missed()));
        m.add_method("close", |_, this, ()| {
            this.0.close();
            Ok(())
        });
    }
}
