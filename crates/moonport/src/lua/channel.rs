//! `moonport.channel([capacity])` and `moonport.select(cases [, timeout])`:
//! passing Lua values between the coroutines of one worker, and waiting on
//! whichever of several sources is ready first.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use futures_util::future::{Either, select, select_all};
use mlua::{AnyUserData, IntoLuaMulti, Lua, MultiValue, Table, UserData, UserDataMethods, UserDataRef, Value};

use super::args::{self, Arg};
use super::room::{SubHandle, ended};
use crate::room::Recv;
use crate::sync::{Channel, TryRecvError, TrySendError};

const DEFAULT_CAPACITY: i64 = 64;

struct ChannelHandle(Rc<Channel<Value>>);

pub fn install(lua: &Lua, moonport: &Table) -> mlua::Result<()> {
    moonport.set(
        "channel",
        lua.create_function(|lua, cap: Value| {
            let cap = args::integer(lua, cap, Arg::new("channel", 1), (1, 1 << 24), Some(DEFAULT_CAPACITY))?;
            Ok(ChannelHandle(Rc::new(Channel::new(cap as usize))))
        })?,
    )?;
    moonport.set("select", lua.create_async_function(select_cases)?)?;
    Ok(())
}

fn not_nil(lua: &Lua, v: &Value, func: &str) -> mlua::Result<()> {
    if v.is_nil() {
        return Err(Arg::new(func, 1).error(lua, "nil cannot be sent (it would read as the end)"));
    }
    Ok(())
}

fn recv_result(lua: &Lua, r: Result<Value, TryRecvError>) -> mlua::Result<MultiValue> {
    match r {
        Ok(v) => v.into_lua_multi(lua),
        Err(TryRecvError::Closed) => (Value::Nil, "closed").into_lua_multi(lua),
        Err(TryRecvError::Empty) => (Value::Nil, "empty").into_lua_multi(lua),
    }
}

impl UserData for ChannelHandle {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_async_method("send", |lua, this: UserDataRef<Self>, v: Value| async move {
            not_nil(&lua, &v, "send")?;
            match this.0.send(v).await {
                Ok(()) => true.into_lua_multi(&lua),
                Err(_) => (Value::Nil, "closed").into_lua_multi(&lua),
            }
        });
        m.add_method("try_send", |lua, this, v: Value| {
            not_nil(lua, &v, "try_send")?;
            match this.0.try_send(v) {
                Ok(()) => true.into_lua_multi(lua),
                Err(TrySendError::Full(_)) => (Value::Nil, "full").into_lua_multi(lua),
                Err(TrySendError::Closed(_)) => (Value::Nil, "closed").into_lua_multi(lua),
            }
        });
        m.add_async_method("recv", |lua, this: UserDataRef<Self>, timeout: Value| async move {
            let timeout = args::timeout(&lua, timeout, Arg::new("recv", 1))?.flatten();
            let got = match timeout {
                None => Some(this.0.recv().await),
                Some(d) => compio::time::timeout(d, this.0.recv()).await.ok(),
            };
            match got {
                Some(Some(v)) => v.into_lua_multi(&lua),
                Some(None) => (Value::Nil, "closed").into_lua_multi(&lua),
                None => (Value::Nil, "timeout").into_lua_multi(&lua),
            }
        });
        m.add_method("try_recv", |lua, this, ()| recv_result(lua, this.0.try_recv()));
        m.add_method("close", |_, this, ()| {
            this.0.close();
            Ok(())
        });
        m.add_method("is_closed", |_, this, ()| Ok(this.0.is_closed()));
        m.add_meta_method("__len", |_, this, ()| Ok(this.0.len()));
    }
}

/// One source `select` can wait on.
enum Case {
    Channel(Rc<Channel<Value>>),
    Sub(std::sync::Arc<crate::room::Subscription>),
}

impl Case {
    fn ready(&self) -> Pin<Box<dyn Future<Output = ()> + '_>> {
        match self {
            Case::Channel(ch) => Box::pin(ch.ready()),
            Case::Sub(sub) => Box::pin(sub.ready()),
        }
    }

    /// Takes what made the case ready (`value` or `nil, err`); `None` if
    /// another coroutine took it first.
    fn take(&self, lua: &Lua) -> mlua::Result<Option<MultiValue>> {
        match self {
            Case::Channel(ch) => match ch.try_recv() {
                Err(TryRecvError::Empty) => Ok(None),
                r => recv_result(lua, r).map(Some),
            },
            Case::Sub(sub) => match sub.try_recv() {
                None => Ok(None),
                Some(Recv::Message(m)) => Ok(Some(lua.create_string(m.as_slice())?.into_lua_multi(lua)?)),
                other => ended(lua, other).map(Some),
            },
        }
    }
}

/// `moonport.select({a, b, ...} [, timeout])` → `case, value` (or
/// `case, nil, err` for a closed one), or `nil, "timeout"`.
async fn select_cases(lua: Lua, (cases, timeout): (Value, Value)) -> mlua::Result<MultiValue> {
    let arg = Arg::new("select", 1);
    let list = args::opt_table(&lua, cases, arg)?
        .ok_or_else(|| arg.error(&lua, "table of channels or subscriptions expected"))?;
    let timeout = args::timeout(&lua, timeout, Arg::new("select", 2))?.flatten();
    let mut uds: Vec<AnyUserData> = Vec::new();
    let mut cases: Vec<Case> = Vec::new();
    for v in list.sequence_values::<Value>() {
        let ud = match v? {
            Value::UserData(ud) if ud.is::<ChannelHandle>() || ud.is::<SubHandle>() => ud,
            other => {
                return Err(arg.error(&lua, format!("channel or subscription expected, got {}", other.type_name())));
            }
        };
        cases.push(match ud.borrow::<ChannelHandle>() {
            Ok(ch) => Case::Channel(ch.0.clone()),
            Err(_) => Case::Sub(ud.borrow::<SubHandle>()?.0.clone()),
        });
        uds.push(ud);
    }
    if cases.is_empty() {
        return Err(arg.error(&lua, "no cases to wait on"));
    }
    loop {
        let any = select_all(cases.iter().map(Case::ready));
        let index = match timeout {
            None => any.await.1,
            Some(d) => match select(any, Box::pin(compio::time::sleep(d))).await {
                Either::Left(((_, i, _), _)) => i,
                Either::Right(_) => return (Value::Nil, "timeout").into_lua_multi(&lua),
            },
        };
        // Another coroutine may have taken it first: then wait again.
        if let Some(taken) = cases[index].take(&lua)? {
            let mut out = MultiValue::new();
            out.push_back(Value::UserData(uds[index].clone()));
            out.extend(taken);
            return Ok(out);
        }
    }
}
