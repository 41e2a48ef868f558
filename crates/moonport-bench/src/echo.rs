//! `echo`: a completion-based ping-pong load generator on compio.
//!
//! Thread-per-core: `--threads` OS threads, each with its own compio runtime
//! (io_uring where available), with the connections split across them. Each
//! connection writes `--size` bytes, reads exactly `--size` bytes back,
//! checks they equal what was sent, and repeats until the run ends. Latency
//! of every round trip in the measurement window goes into an HDR histogram.
//! With `--pipeline N` each round trip carries N messages, written at once
//! (each stamped with its own sequence number) and all awaited before the
//! next N: messages/s counts every message, latency is per round trip.
//!
//! `--preface` (with `--preface-until`) lets it drive servers that take raw
//! TCP only after a request, such as nginx with `ngx.req.socket(true)`: the
//! preface is sent once per connection and the reply skipped up to the
//! marker, during the connect phase, before the clock starts (see
//! `bench/peers/README.md`). `--ws` speaks WebSocket instead of raw TCP.
//!
//! Safety rails: the run is bounded in time (connect timeout, warm-up,
//! duration, and a grace period after which stuck connections are abandoned)
//! and only loopback targets are accepted (see [`crate::target`]).

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::connect::{Preface, TargetArgs, connect_ready};
use crate::report::{Header, Latency, Notes, RunArgs, check_connected, counters};
use crate::window::{Gate, Window};
use clap::Args;
use compio::BufResult;
use compio::buf::{IntoInner, IoBuf};
use compio::io::{AsyncReadExt, AsyncWriteExt};
use compio::net::TcpStream;
use hdrhistogram::Histogram;

/// How long after the end of the run a connection may still be stuck in a
/// round trip before it is abandoned and counted as timed out.
const GRACE: Duration = Duration::from_secs(2);
/// Upper bound on the run length, so a typo cannot start an endless run.
const MAX_SECONDS: f64 = 3600.0;
/// Largest message size accepted, and largest batch with `--pipeline`.
const MAX_SIZE: usize = 16 * 1024 * 1024;
/// Highest latency the histogram tracks (larger values are clamped).
const HIST_MAX_NS: u64 = 60_000_000_000;

#[derive(Args, Debug)]
pub struct EchoArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Number of concurrent connections.
    #[arg(long, default_value_t = 100)]
    conns: usize,
    /// Message size in bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Messages in flight per connection: each round trip writes this many
    /// messages at once and waits for all of them (1: plain ping-pong).
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    #[command(flatten)]
    run: RunArgs,
    /// Speak WebSocket: upgrade each connection first, then send each
    /// message as one binary frame (masked with an all-zero key, so the
    /// generator spends nothing on masking) and expect it echoed as one.
    #[arg(long)]
    ws: bool,
}

counters!(
    /// Error counters, per thread and then summed.
    Errors {
        /// Connection attempts that failed or timed out.
        connect => "connect_errors",
        /// Read/write failures on an established connection.
        io => "io_errors",
        /// Server closed the connection in the middle of the run.
        closed => "closed",
        /// Echoed bytes differed from what was sent.
        mismatch => "mismatches",
        /// Connections still stuck in a round trip after the grace period.
        timeout => "timeouts",
        /// Connection tasks that panicked.
        panic => "panics",
    }
);

/// State shared by the connection tasks of one thread (single-threaded).
struct Shared {
    hist: RefCell<Histogram<u64>>,
    messages: Cell<u64>,
    errors: RefCell<Errors>,
    notes: Notes,
}

/// What one thread hands back.
struct ThreadResult {
    driver: compio::driver::DriverType,
    hist: Histogram<u64>,
    messages: u64,
    connected: usize,
    errors: Errors,
    samples: Vec<String>,
}

/// Run parameters shared by every connection.
#[derive(Clone, Copy)]
struct Plan {
    addr: SocketAddr,
    size: usize,
    pipeline: usize,
    ws: bool,
    /// Sent on each connection before the run (leaked: lives for the process).
    preface: Option<&'static Preface>,
}

pub fn run(args: EchoArgs) -> Result<ExitCode, String> {
    let (addr, preface) = args.target.resolve()?;
    if args.conns == 0 {
        return Err("--conns must be at least 1".into());
    }
    if args.size == 0 || args.size > MAX_SIZE {
        return Err(format!("--size must be between 1 and {MAX_SIZE} bytes"));
    }
    if args.pipeline == 0 || args.pipeline.saturating_mul(args.size) > MAX_SIZE {
        return Err(format!("--pipeline must be at least 1, and --pipeline x --size at most {MAX_SIZE} bytes"));
    }
    let (warmup, duration) = args.run.times()?;
    let threads = args.run.threads(args.conns);

    let plan = Plan { addr, size: args.size, pipeline: args.pipeline, ws: args.ws, preface };
    // Every thread connects first; the clock starts once all have connected.
    let gate = Arc::new(Gate::new(threads));
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        // Connection i goes to thread i % threads.
        let ids: Vec<usize> = (t..args.conns).step_by(threads).collect();
        let gate = Arc::clone(&gate);
        let handle = std::thread::Builder::new()
            .name(format!("echo-{t}"))
            .spawn(move || load_thread(plan, ids, &gate, warmup, duration))
            .map_err(|e| format!("cannot spawn load thread: {e}"))?;
        handles.push(handle);
    }
    let load_cpu_pct = Window::new(gate.open(), warmup, duration).cpu_pct();

    let mut hist = new_histogram();
    let mut messages = 0u64;
    let mut connected = 0usize;
    let mut errors = Errors::default();
    let mut samples = Vec::new();
    let mut driver = None;
    for handle in handles {
        let r = handle.join().map_err(|_| "a load thread panicked".to_string())??;
        hist.add(&r.hist).map_err(|e| format!("cannot merge histograms: {e}"))?;
        messages += r.messages;
        driver = Some(r.driver);
        connected += r.connected;
        errors.add(&r.errors);
        samples.extend(r.samples);
    }

    let head = Header::new("echo", addr, driver, threads, (warmup, duration));
    check_connected(&head, connected, &samples)?;
    let secs = head.duration_s;
    let report = Report {
        head,
        conns: args.conns,
        connected,
        size: args.size,
        pipeline: args.pipeline,
        ws: args.ws,
        messages,
        msgs_per_sec: messages as f64 / secs,
        mb_per_sec: (messages as f64 * args.size as f64) / 1e6 / secs,
        latency: Latency::of(&hist),
        mean_us: hist.mean() / 1000.0,
        load_cpu_pct,
        errors,
    };
    Ok(crate::report::print(&args.run, &report))
}

pub(crate) fn seconds(name: &str, v: f64, zero_ok: bool) -> Result<Duration, String> {
    let ok = v.is_finite() && v <= MAX_SECONDS && if zero_ok { v >= 0.0 } else { v > 0.0 };
    if !ok {
        let lo = if zero_ok { "0 <= " } else { "0 < " };
        return Err(format!("{name} must satisfy {lo}seconds <= {MAX_SECONDS}"));
    }
    Ok(Duration::from_secs_f64(v))
}

pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_NS, 3).expect("static histogram bounds are valid")
}

pub(crate) fn driver_name(d: compio::driver::DriverType) -> String {
    match d {
        compio::driver::DriverType::IoUring => "io_uring".into(),
        compio::driver::DriverType::Poll => "poll".into(),
        other => format!("{other:?}"),
    }
}

/// Body of one load thread: connect its share, wait for the others, run.
fn load_thread(
    plan: Plan,
    ids: Vec<usize>,
    gate: &Gate,
    warmup: Duration,
    duration: Duration,
) -> Result<ThreadResult, String> {
    let shared = Rc::new(Shared {
        hist: RefCell::new(new_histogram()),
        messages: Cell::new(0),
        errors: RefCell::new(Errors::default()),
        notes: Notes::default(),
    });
    let rt = compio::runtime::Runtime::new();
    let streams = match &rt {
        Ok(rt) => rt.block_on(connect_ready(plan.addr, &ids, plan.preface, |failure| {
            shared.errors.borrow_mut().connect += 1;
            shared.notes.note(failure);
        })),
        Err(_) => Vec::new(),
    };
    // Always reach the gate, even on failure, so no thread waits forever.
    let window = Window::new(gate.wait(), warmup, duration);
    let rt = rt.map_err(|e| format!("cannot create compio runtime: {e}"))?;
    let connected = streams.len();
    let driver = rt.driver_type();

    rt.block_on(async {
        let mut tasks = Vec::with_capacity(streams.len());
        for (id, stream) in streams {
            let shared = Rc::clone(&shared);
            tasks.push(compio::runtime::spawn(async move {
                let run = ping_pong(stream, id, plan, window, &shared);
                if compio::time::timeout_at(window.end + GRACE, run).await.is_err() {
                    shared.errors.borrow_mut().timeout += 1;
                    shared
                        .notes
                        .note(format!("conn {id}: no echo within {GRACE:?} after the end of the run; abandoned"));
                }
            }));
        }
        for task in tasks {
            if task.await.is_err() {
                shared.errors.borrow_mut().panic += 1;
                shared.notes.note("a connection task panicked".into());
            }
        }
    });

    let shared = Rc::try_unwrap(shared).map_err(|_| "connection tasks still hold shared state".to_string())?;
    Ok(ThreadResult {
        driver,
        hist: shared.hist.into_inner(),
        messages: shared.messages.get(),
        connected,
        errors: shared.errors.into_inner(),
        samples: shared.notes.take(),
    })
}

/// Fills the payload with a per-connection pattern.
fn pattern(id: usize, size: usize) -> Vec<u8> {
    (0..size).map(|i| (i.wrapping_mul(31).wrapping_add(id.wrapping_mul(7))) as u8).collect()
}

/// Stamps the sequence number into the first bytes, so a stale or
/// reordered echo is detected as a mismatch.
fn stamp(buf: &mut [u8], seq: u64) {
    let bytes = seq.to_le_bytes();
    let n = buf.len().min(bytes.len());
    buf[..n].copy_from_slice(&bytes[..n]);
}

/// A WebSocket binary frame header for `size` bytes; a client's is masked
/// (with the key 0, which leaves the payload as it is).
fn ws_head(size: usize, masked: bool) -> Vec<u8> {
    let m = if masked { 0x80 } else { 0 };
    let mut h = vec![0x82];
    match size {
        0..=125 => h.push(m | size as u8),
        126..=65535 => {
            h.push(m | 126);
            h.extend((size as u16).to_be_bytes());
        }
        _ => {
            h.push(m | 127);
            h.extend((size as u64).to_be_bytes());
        }
    }
    if masked {
        h.extend([0u8; 4]);
    }
    h
}

/// The WebSocket opening handshake, checked only for its status line.
async fn ws_upgrade(stream: &mut TcpStream, addr: SocketAddr) -> io::Result<()> {
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    let BufResult(res, _) = stream.write_all(req.into_bytes()).await;
    res?;
    // Byte by byte: nothing after the head may be read here.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 4096 {
            return Err(io::Error::other("handshake response too long"));
        }
        let BufResult(res, byte) = stream.read_exact(Vec::with_capacity(1)).await;
        res?;
        head.extend_from_slice(&byte);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err(io::Error::other(format!("upgrade refused: {}", String::from_utf8_lossy(&head))));
    }
    Ok(())
}

/// One connection's ping-pong loop, until the end of the window.
async fn ping_pong(mut stream: TcpStream, id: usize, plan: Plan, window: Window, shared: &Shared) {
    if plan.ws
        && let Err(e) = ws_upgrade(&mut stream, plan.addr).await
    {
        io_failure(shared, id, "upgrade", &e);
        return;
    }
    let (size, n) = (plan.size, plan.pipeline);
    // In WebSocket mode each message carries a frame header each way.
    let (ours, theirs) = if plan.ws { (ws_head(size, true), ws_head(size, false)) } else { (Vec::new(), Vec::new()) };
    let (out_len, in_len) = (ours.len() + size, theirs.len() + size);
    let payload = pattern(id, size);
    let mut send: Vec<u8> = (0..n).flat_map(|_| ours.iter().chain(&payload).copied()).collect();
    let want = in_len * n;
    let mut recv: Vec<u8> = Vec::with_capacity(want);
    let mut seq: u64 = 0;
    loop {
        let t0 = Instant::now();
        if t0 >= window.end {
            break;
        }
        for (k, msg) in send.chunks_mut(out_len).enumerate() {
            stamp(&mut msg[ours.len()..], seq.wrapping_add(k as u64));
        }
        let BufResult(res, buf) = stream.write_all(send).await;
        send = buf;
        if let Err(e) = res {
            io_failure(shared, id, "write", &e);
            return;
        }
        recv.clear();
        let BufResult(res, buf) = stream.read_exact(recv.slice(..want)).await;
        recv = buf.into_inner();
        if let Err(e) = res {
            io_failure(shared, id, "read", &e);
            return;
        }
        let t1 = Instant::now();
        if t1 > window.end {
            // Completed after the window closed: not part of the figures.
            break;
        }
        let echoed = recv.buf_len() == want
            && recv
                .chunks(in_len)
                .zip(send.chunks(out_len))
                .all(|(got, sent)| got[..theirs.len()] == theirs[..] && got[theirs.len()..] == sent[ours.len()..]);
        if !echoed {
            let mut errs = shared.errors.borrow_mut();
            errs.mismatch += 1;
            if errs.mismatch == 1 {
                shared.notes.note(format!("conn {id}: echoed bytes differ from what was sent (messages from #{seq})"));
            }
        } else if t0 >= window.warm_end {
            let ns = u64::try_from((t1 - t0).as_nanos()).unwrap_or(u64::MAX);
            shared.hist.borrow_mut().saturating_record(ns.max(1));
            shared.messages.set(shared.messages.get() + n as u64);
        }
        seq = seq.wrapping_add(n as u64);
    }
}

fn io_failure(shared: &Shared, id: usize, what: &str, e: &io::Error) {
    let mut errs = shared.errors.borrow_mut();
    if e.kind() == io::ErrorKind::UnexpectedEof {
        errs.closed += 1;
        drop(errs);
        shared.notes.note(format!("conn {id}: server closed the connection during {what}"));
    } else {
        errs.io += 1;
        drop(errs);
        shared.notes.note(format!("conn {id}: {what} failed: {e}"));
    }
}

/// Final figures of a run.
struct Report {
    head: Header,
    conns: usize,
    connected: usize,
    size: usize,
    pipeline: usize,
    ws: bool,
    messages: u64,
    msgs_per_sec: f64,
    mb_per_sec: f64,
    latency: Latency,
    mean_us: f64,
    load_cpu_pct: Option<f64>,
    errors: Errors,
}

impl crate::report::Report for Report {
    fn json(&self) -> String {
        format!(
            "{{{},\"conns\":{},\"connected\":{},\"size\":{},\"pipeline\":{},\"ws\":{},\"messages\":{},\
             \"msgs_per_sec\":{:.1},\"mb_per_sec\":{:.3},{},\"mean_us\":{:.1},\"load_cpu_pct\":{},{}}}",
            self.head.json(),
            self.conns,
            self.connected,
            self.size,
            self.pipeline,
            self.ws,
            self.messages,
            self.msgs_per_sec,
            self.mb_per_sec,
            self.latency.json(),
            self.mean_us,
            crate::cpu::json(self.load_cpu_pct),
            self.errors.json(),
        )
    }

    fn text(&self) -> String {
        let pipeline =
            if self.pipeline > 1 { format!(", {} in flight per connection", self.pipeline) } else { String::new() };
        let ws = if self.ws { " over WebSocket" } else { "" };
        let what =
            format!("{} conns ({} connected), {} B messages{pipeline}{ws}", self.conns, self.connected, self.size);
        format!(
            "{}\
             \x20 messages:   {} ({:.0} msg/s)\n\
             \x20 throughput: {:.2} MB/s (payload echoed, each direction, 1 MB = 10^6 B)\n\
             \x20 latency:    {} (mean {:.1} us)\n{}{}",
            self.head.text(&what),
            self.messages,
            self.msgs_per_sec,
            self.mb_per_sec,
            self.latency.text(),
            self.mean_us,
            crate::cpu::text(self.load_cpu_pct),
            self.errors.text(),
        )
    }

    fn errors(&self) -> u64 {
        self.errors.total()
    }
}
