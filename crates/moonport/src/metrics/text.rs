//! The Prometheus text exposition format, version 0.0.4: `# HELP` and
//! `# TYPE` lines, then one `name{label="value"} number` line per series.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use super::{Family, Kind, WorkerStats};

/// The engine's own per-worker metrics: name, help, kind and how to read one worker's value.
type Builtin = (&'static str, &'static str, Kind, fn(&WorkerStats) -> u64);

const BUILTINS: [Builtin; 7] = [
    (
        "moonport_tcp_connections_accepted_total",
        "TCP connections accepted by the worker's listeners.",
        Kind::Counter,
        |s| s.accepted.get(),
    ),
    (
        "moonport_tcp_connections_open",
        "TCP connections (accepted and outgoing) open on the worker.",
        Kind::Gauge,
        |s| s.open.get(),
    ),
    (
        "moonport_tcp_received_bytes_total",
        "Bytes received on TCP connections (as sent on the wire: ciphertext under TLS).",
        Kind::Counter,
        |s| s.bytes_received.get(),
    ),
    (
        "moonport_tcp_sent_bytes_total",
        "Bytes sent on TCP connections (as sent on the wire: ciphertext under TLS).",
        Kind::Counter,
        |s| s.bytes_sent.get(),
    ),
    (
        "moonport_lua_errors_total",
        "Coroutines (connection handlers, tasks, the main chunk) that ended with a Lua error.",
        Kind::Counter,
        |s| s.lua_errors.get(),
    ),
    (
        "moonport_room_dropped_messages_total",
        "Room messages dropped by the policy of a full subscriber queue, counted on the publishing worker.",
        Kind::Counter,
        |s| s.room_dropped.get(),
    ),
    ("moonport_coroutines", "Coroutines alive on the worker.", Kind::Gauge, |s| s.coroutines.get()),
];

fn header(out: &mut String, name: &str, help: &str, kind: Kind) {
    let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} {}", escape(help, false), kind.name());
}

/// The built-in metrics: one series per worker, then the driver and uptime.
pub(super) fn builtins(out: &mut String, workers: &[Arc<WorkerStats>], driver: Option<&str>, uptime: Duration) {
    let mut ids: Vec<usize> = workers.iter().map(|w| w.id).collect();
    ids.sort_unstable();
    ids.dedup();
    for (name, help, kind, read) in BUILTINS {
        header(out, name, help, kind);
        for id in &ids {
            // A worker id restarted keeps its counters going: its runs add up.
            let value: u64 = workers.iter().filter(|w| w.id == *id).map(|w| read(w)).sum();
            let _ = writeln!(out, "{name}{{worker=\"{id}\"}} {value}");
        }
    }
    if let Some(driver) = driver {
        header(out, "moonport_io_driver_info", "The I/O driver the workers run on.", Kind::Gauge);
        let _ = writeln!(out, "moonport_io_driver_info{{driver=\"{driver}\"}} 1");
    }
    header(out, "moonport_uptime_seconds", "Seconds since the process started.", Kind::Gauge);
    let _ = writeln!(out, "moonport_uptime_seconds {}", number(uptime.as_secs_f64()));
}

/// One script-registered metric with all its series.
pub(super) fn family(out: &mut String, family: &Family) {
    let spec = family.spec();
    header(out, &spec.name, &spec.help, spec.kind);
    for (values, series) in family.snapshot() {
        let labels = labels(&spec.labels, &values);
        match spec.kind {
            Kind::Counter | Kind::Gauge => {
                let _ = writeln!(out, "{}{} {}", spec.name, braces(&labels), number(series.get()));
            }
            Kind::Histogram => {
                let sep = if labels.is_empty() { "" } else { "," };
                let mut cumulative = 0;
                for (bound, count) in spec.buckets.iter().zip(series.buckets.iter()) {
                    cumulative += count.load(std::sync::atomic::Ordering::Relaxed);
                    let le = number(*bound);
                    let _ = writeln!(out, "{}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}", spec.name);
                }
                // Read once, so +Inf and _count agree even while observations go on.
                let count = series.count.load(std::sync::atomic::Ordering::Relaxed).max(cumulative);
                let _ = writeln!(out, "{}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}", spec.name);
                let _ = writeln!(out, "{}_sum{} {}", spec.name, braces(&labels), number(series.get()));
                let _ = writeln!(out, "{}_count{} {count}", spec.name, braces(&labels));
            }
        }
    }
}

/// `a="x",b="y"` (no braces).
fn labels(names: &[String], values: &[String]) -> String {
    let pairs: Vec<String> = names.iter().zip(values).map(|(n, v)| format!("{n}=\"{}\"", escape(v, true))).collect();
    pairs.join(",")
}

fn braces(labels: &str) -> String {
    if labels.is_empty() { String::new() } else { format!("{{{labels}}}") }
}

/// Help text escapes `\` and newlines; label values also `"`.
fn escape(s: &str, quote: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        v.to_string()
    }
}
