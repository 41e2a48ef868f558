//! `moonport.metrics`: `counter`, `gauge` and `histogram` register
//! process-wide metrics (every worker registering a name gets the same
//! metric, so a scrape sees what all workers did) and `text()` renders them
//! all as Prometheus text; `moonport.admin{ listen = "ip:port" }` starts the
//! admin listener that serves them on `/metrics`.
//!
//! A metric object keeps this worker's series by label values, so an update
//! takes no lock: only a label combination's first use on a worker does.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use mlua::{IntoLuaMulti, Lua, MultiValue, Table, UserData, UserDataMethods, Value};

use super::args::{self, Arg};
use super::worker;
use crate::metrics::{DEFAULT_BUCKETS, Family, Kind, Series, Spec};

pub fn install(lua: &Lua, moonport: &Table) -> mlua::Result<()> {
    let metrics = lua.create_table()?;
    metrics.set(
        "counter",
        lua.create_function(|lua, (name, help, labels): (Value, Value, Value)| {
            register(lua, Kind::Counter, "counter", (name, help, labels, Value::Nil)).map(Counter)
        })?,
    )?;
    metrics.set(
        "gauge",
        lua.create_function(|lua, (name, help, labels): (Value, Value, Value)| {
            register(lua, Kind::Gauge, "gauge", (name, help, labels, Value::Nil)).map(Gauge)
        })?,
    )?;
    metrics.set(
        "histogram",
        lua.create_function(|lua, spec: (Value, Value, Value, Value)| {
            register(lua, Kind::Histogram, "histogram", spec).map(Histogram)
        })?,
    )?;
    metrics.set("text", lua.create_function(|lua, ()| Ok(worker(lua)?.engine.metrics.render()))?)?;
    moonport.set("metrics", metrics)?;
    moonport.set("admin", lua.create_function(admin)?)?;
    Ok(())
}

/// `counter(name [, help [, labels]])` and the like: the process-wide family,
/// wrapped for this worker.
fn register(
    lua: &Lua,
    kind: Kind,
    func: &str,
    (name, help, labels, buckets): (Value, Value, Value, Value),
) -> mlua::Result<Metric> {
    let name = args::bytes(lua, name, Arg::new(func, 1))?.to_string_lossy();
    let help = args::opt_bytes(lua, help, Arg::new(func, 2))?.map(|h| h.to_string_lossy()).unwrap_or_default();
    let labels = match args::opt_table(lua, labels, Arg::new(func, 3))? {
        None => Vec::new(),
        Some(t) => t
            .sequence_values::<Value>()
            .map(|v| Ok(args::bytes(lua, v?, Arg::new(func, 3))?.to_string_lossy()))
            .collect::<mlua::Result<_>>()?,
    };
    let buckets = match args::opt_table(lua, buckets, Arg::new(func, 4))? {
        None if kind == Kind::Histogram => DEFAULT_BUCKETS.to_vec(),
        None => Vec::new(),
        Some(t) => t
            .sequence_values::<Value>()
            .map(|v| number(lua, v?, Arg::new(func, 4), None))
            .collect::<mlua::Result<_>>()?,
    };
    let spec = Spec { kind, name, help, labels, buckets };
    let family = worker(lua)?.engine.metrics.register(spec).map_err(|e| Arg::new(func, 1).error(lua, e))?;
    Ok(Metric { family, series: RefCell::default(), key: RefCell::default() })
}

/// A number (integers too); nil gives `default` when there is one. NaN is refused.
fn number(lua: &Lua, v: Value, arg: Arg, default: Option<f64>) -> mlua::Result<f64> {
    let n = match (v, default) {
        (Value::Nil, Some(d)) => d,
        (Value::Integer(i), _) => i as f64,
        (Value::Number(n), _) if !n.is_nan() => n,
        (Value::Number(_), _) => return Err(arg.error(lua, "number expected, got nan")),
        (other, _) => return Err(arg.error(lua, format!("number expected, got {}", other.type_name()))),
    };
    Ok(n)
}

/// One worker's handle on a family.
struct Metric {
    family: Arc<Family>,
    /// This worker's series, by their label values joined into one key.
    series: RefCell<HashMap<Vec<u8>, Arc<Series>>>,
    /// Where a call's key is put together, kept so a lookup does not allocate.
    key: RefCell<Vec<u8>>,
}

impl Metric {
    /// The series for the label values an update names (a list, in the
    /// order the labels were registered; nil for a metric without labels).
    fn series(&self, lua: &Lua, labels: Value, arg: Arg) -> mlua::Result<Arc<Series>> {
        let values = match args::opt_table(lua, labels, arg)? {
            None => Vec::new(),
            Some(t) => t
                .sequence_values::<Value>()
                .map(|v| args::bytes(lua, v?, arg))
                .collect::<mlua::Result<Vec<mlua::LuaString>>>()?,
        };
        let mut key = self.key.borrow_mut();
        key.clear();
        for v in &values {
            // Length-prefixed, so ("a,b") and ("a", "b") stay apart.
            let bytes = v.as_bytes();
            key.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            key.extend_from_slice(&bytes);
        }
        if let Some(series) = self.series.borrow().get(key.as_slice()) {
            return Ok(series.clone());
        }
        let values = values.iter().map(|v| v.to_string_lossy()).collect();
        let series = self.family.series(values).map_err(|e| arg.error(lua, e))?;
        self.series.borrow_mut().insert(key.clone(), series.clone());
        Ok(series)
    }

    fn name(&self) -> String {
        format!("{}({})", self.family.spec().kind.name(), self.family.spec().name)
    }
}

struct Counter(Metric);
struct Gauge(Metric);
struct Histogram(Metric);

impl UserData for Counter {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_method("inc", |lua, this, (n, labels): (Value, Value)| {
            let n = number(lua, n, Arg::new("inc", 1), Some(1.0))?;
            if n < 0.0 {
                return Err(Arg::new("inc", 1).error(lua, format!("a counter only goes up, got {n}")));
            }
            this.0.series(lua, labels, Arg::new("inc", 2))?.add(n);
            Ok(())
        });
        m.add_meta_method("__tostring", |_, this, ()| Ok(this.0.name()));
    }
}

impl UserData for Gauge {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_method("set", |lua, this, (v, labels): (Value, Value)| {
            let v = number(lua, v, Arg::new("set", 1), None)?;
            this.0.series(lua, labels, Arg::new("set", 2))?.set(v);
            Ok(())
        });
        for (name, sign) in [("inc", 1.0), ("dec", -1.0)] {
            m.add_method(name, move |lua, this, (n, labels): (Value, Value)| {
                let n = number(lua, n, Arg::new(name, 1), Some(1.0))?;
                this.0.series(lua, labels, Arg::new(name, 2))?.add(sign * n);
                Ok(())
            });
        }
        m.add_meta_method("__tostring", |_, this, ()| Ok(this.0.name()));
    }
}

impl UserData for Histogram {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_method("observe", |lua, this, (v, labels): (Value, Value)| {
            let v = number(lua, v, Arg::new("observe", 1), None)?;
            this.0.series(lua, labels, Arg::new("observe", 2))?.observe(v);
            Ok(())
        });
        m.add_meta_method("__tostring", |_, this, ()| Ok(this.0.name()));
    }
}

/// `moonport.admin{ listen = "ip:port" }`: starts the admin listener unless
/// it runs already; returns the address it is on (`ip, port`) or `nil, err`.
fn admin(lua: &Lua, opts: Value) -> mlua::Result<MultiValue> {
    let arg = Arg::new("admin", 1);
    let Some(opts) = args::opt_table(lua, opts, arg)? else {
        return Err(arg.error(lua, "table expected, got nil"));
    };
    let listen = args::bytes(lua, opts.get("listen")?, arg.key("listen"))?.to_string_lossy();
    let Ok(addr) = listen.parse() else {
        return Err(arg.key("listen").error(lua, format!("\"ip:port\" expected, got {listen:?}")));
    };
    match worker(lua)?.engine.start_admin(addr) {
        Ok(bound) => (bound.ip().to_string(), bound.port()).into_lua_multi(lua),
        Err(e) => (Value::Nil, crate::net::NetError::from(e).to_string()).into_lua_multi(lua),
    }
}
