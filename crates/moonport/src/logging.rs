//! Log output: every line says which worker wrote it and, inside a
//! connection's coroutine, which peer the connection is with; as text for
//! people or as JSON lines for log collectors (`--log-format`).
//!
//! The worker id and the peer are a per-thread context rather than tracing
//! spans: a connection's context is set for each poll of its coroutine (two
//! stores of a thread-local), where entering a span on every poll would
//! cost the echo hot path a filter lock and span bookkeeping. Tasks inherit
//! the context of the coroutine that spawned them. Knows nothing of Lua.

use std::cell::Cell;
use std::fmt::{self, Write as _};
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::pin;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

thread_local! {
    /// The worker this thread runs; 0 off the workers.
    static WORKER: Cell<usize> = const { Cell::new(0) };
    /// The peer of the connection whose coroutine is running.
    static PEER: Cell<Option<SocketAddr>> = const { Cell::new(None) };
}

/// Marks this thread as worker `id` for its log lines.
pub fn set_worker(id: usize) {
    WORKER.set(id);
}

/// The peer of the connection being served right now, if any.
pub fn peer() -> Option<SocketAddr> {
    PEER.get()
}

/// Runs `f` with `peer` as the current connection (so that tasks it spawns
/// take it as theirs).
pub fn with_peer<R>(peer: SocketAddr, f: impl FnOnce() -> R) -> R {
    let outer = PEER.replace(Some(peer));
    let result = f();
    PEER.set(outer);
    result
}

/// Polls `fut` with `peer` as the current connection.
pub async fn in_conn<F: Future>(peer: Option<SocketAddr>, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    poll_fn(|cx| {
        let outer = PEER.replace(peer);
        let polled = fut.as_mut().poll(cx);
        PEER.set(outer);
        polled
    })
    .await
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `TIME LEVEL worker{id=N}:conn{peer=ADDR}: target: message key=value`.
    Text { ansi: bool },
    /// One JSON object a line: `ts`, `level`, `worker`, `peer` (when known),
    /// `target`, `message` and the event's other `fields`.
    Json,
}

/// Sends log lines to stderr in `format`, filtered by `filter`.
pub fn init(filter: tracing_subscriber::EnvFilter, format: LogFormat) {
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).event_format(format).init();
}

impl<S, N> FormatEvent<S, N> for LogFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut ts = String::new();
        SystemTime.format_time(&mut Writer::new(&mut ts))?;
        let meta = event.metadata();
        let target = fields.log_target.as_deref().unwrap_or(meta.target());
        let (worker, peer) = (WORKER.get(), PEER.get());
        match self {
            LogFormat::Json => {
                // Written key by key, so every line has them in this order.
                let level = meta.level().as_str().to_ascii_lowercase();
                write!(w, "{{\"ts\":{},\"level\":{}", json(&ts), json(&level))?;
                if worker > 0 {
                    write!(w, ",\"worker\":{worker}")?;
                }
                if let Some(peer) = peer {
                    write!(w, ",\"peer\":{}", json(&peer.to_string()))?;
                }
                write!(w, ",\"target\":{},\"message\":{}", json(target), json(&fields.message))?;
                if !fields.rest.is_empty() {
                    write!(w, ",\"fields\":{}", serde_json::Value::Object(fields.rest))?;
                }
                writeln!(w, "}}")
            }
            LogFormat::Text { ansi } => {
                write!(w, "{ts} ")?;
                let level = meta.level();
                match ansi.then(|| colour(level)) {
                    Some(c) => write!(w, "\x1b[{c}m{level:>5}\x1b[0m ")?,
                    None => write!(w, "{level:>5} ")?,
                }
                if worker > 0 {
                    write!(w, "worker{{id={worker}}}:")?;
                }
                if let Some(peer) = peer {
                    write!(w, "conn{{peer={peer}}}:")?;
                }
                if worker > 0 || peer.is_some() {
                    w.write_char(' ')?;
                }
                write!(w, "{target}: {}", fields.message)?;
                for (key, value) in &fields.rest {
                    match value {
                        serde_json::Value::String(s) => write!(w, " {key}={s}")?,
                        other => write!(w, " {key}={other}")?,
                    }
                }
                writeln!(w)
            }
        }
    }
}

/// A string as a JSON string literal.
fn json(s: &str) -> serde_json::Value {
    serde_json::Value::String(s.to_string())
}

/// ANSI colours of the levels, as tracing-subscriber's own format has them.
fn colour(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "31",
        Level::WARN => "33",
        Level::INFO => "32",
        Level::DEBUG => "34",
        _ => "35",
    }
}

/// An event's message and its other fields, as JSON values.
#[derive(Default)]
struct Fields {
    message: String,
    rest: serde_json::Map<String, serde_json::Value>,
    /// A record from the `log` crate (rustls logs that way) says its target
    /// in a field; the other `log.` fields (file, line) are left out.
    log_target: Option<String>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        if !field.name().starts_with("log.") {
            self.rest.insert(field.name().to_string(), value);
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.put(field, format!("{value:?}").into());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else if field.name() == "log.target" {
            self.log_target = Some(value.to_string());
        } else {
            self.put(field, value.into());
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
}
