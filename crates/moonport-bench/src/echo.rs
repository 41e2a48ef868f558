//! `echo`: a completion-based ping-pong load generator on compio.
//!
//! Thread-per-core: `--threads` OS threads, each with its own compio runtime
//! (io_uring where available), with the connections split across them. Each
//! connection writes `--size` bytes, reads exactly `--size` bytes back,
//! checks they equal what was sent, and repeats until the run ends. Latency
//! of every round trip in the measurement window goes into an HDR histogram.
//!
//! `--preface` (with `--preface-until`) lets it drive servers that take raw
//! TCP only after a request, such as nginx with `ngx.req.socket(true)`: the
//! preface is sent once per connection and the reply skipped up to the
//! marker, during the connect phase, before the clock starts (see
//! `bench/peers/README.md`).
//!
//! Safety rails: the run is bounded in time (connect timeout, warm-up,
//! duration, and a grace period after which stuck connections are abandoned)
//! and only loopback targets are accepted (see [`crate::target`]).

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::connect::{CONNECT_TIMEOUT, connect_all};
use clap::Args;
use compio::BufResult;
use compio::buf::{IntoInner, IoBuf};
use compio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use compio::net::TcpStream;
use hdrhistogram::Histogram;

/// How long after the end of the run a connection may still be stuck in a
/// round trip before it is abandoned and counted as timed out.
const GRACE: Duration = Duration::from_secs(2);
/// Upper bound on the run length, so a typo cannot start an endless run.
const MAX_SECONDS: f64 = 3600.0;
/// Largest message size accepted.
const MAX_SIZE: usize = 16 * 1024 * 1024;
/// Highest latency the histogram tracks (larger values are clamped).
const HIST_MAX_NS: u64 = 60_000_000_000;
/// How many error messages each thread keeps to show the user.
const MAX_ERROR_SAMPLES: usize = 5;

#[derive(Args, Debug)]
pub struct EchoArgs {
    /// Target echo server; must be a loopback address (127.0.0.0/8 or ::1).
    #[arg(long)]
    addr: String,
    /// Number of concurrent connections.
    #[arg(long, default_value_t = 100)]
    conns: usize,
    /// Message size in bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Measurement duration in seconds (after warm-up).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Warm-up in seconds: traffic flows but is not measured.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Number of load-generator threads, each with its own runtime
    /// (default: number of cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Print one JSON line with the results instead of the text report.
    #[arg(long)]
    json: bool,
    /// Bytes sent once on every connection before the ping-pong, e.g.
    /// 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' for nginx-lua's raw socket.
    /// Escapes: \r \n \t \\ \xHH.
    #[arg(long, value_parser = parse_escaped)]
    preface: Option<Escaped>,
    /// After the preface, read and discard the server's reply up to and
    /// including this marker (same escapes), e.g. '\r\n\r\n'.
    #[arg(long, value_parser = parse_escaped, requires = "preface")]
    preface_until: Option<Escaped>,
    /// Speak WebSocket: upgrade each connection first, then send each
    /// message as one binary frame (masked with an all-zero key, so the
    /// generator spends nothing on masking) and expect it echoed as one.
    #[arg(long)]
    ws: bool,
}

/// Bytes given on the command line with backslash escapes.
#[derive(Clone, Debug)]
pub struct Escaped(Vec<u8>);

/// Parses `\r`, `\n`, `\t`, `\\` and `\xHH`; other bytes stand for themselves.
fn parse_escaped(s: &str) -> Result<Escaped, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let (byte, len) = match b.get(i + 1) {
            Some(b'r') => (b'\r', 2),
            Some(b'n') => (b'\n', 2),
            Some(b't') => (b'\t', 2),
            Some(b'\\') => (b'\\', 2),
            Some(b'x') => {
                let hex = s.get(i + 2..i + 4).ok_or("\\x needs two hex digits")?;
                (u8::from_str_radix(hex, 16).map_err(|_| format!("bad escape \\x{hex}"))?, 4)
            }
            _ => return Err(format!("unknown escape at byte {i} (use \\r \\n \\t \\\\ \\xHH)")),
        };
        out.push(byte);
        i += len;
    }
    if out.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(Escaped(out))
}

/// The per-connection preface and the reply marker to skip to.
struct Preface {
    send: Vec<u8>,
    until: Option<Vec<u8>>,
}

/// Longest reply to a preface that is skipped before giving up.
const MAX_PREFACE_REPLY: usize = 64 * 1024;

/// Error counters, per thread and then summed.
#[derive(Debug, Default, Clone, Copy)]
struct Errors {
    /// Connection attempts that failed or timed out.
    connect: u64,
    /// Read/write failures on an established connection.
    io: u64,
    /// Server closed the connection in the middle of the run.
    closed: u64,
    /// Echoed bytes differed from what was sent.
    mismatch: u64,
    /// Connections still stuck in a round trip after the grace period.
    timeout: u64,
    /// Connection tasks that panicked.
    panic: u64,
}

impl Errors {
    fn total(&self) -> u64 {
        self.connect + self.io + self.closed + self.mismatch + self.timeout + self.panic
    }

    fn add(&mut self, o: &Errors) {
        self.connect += o.connect;
        self.io += o.io;
        self.closed += o.closed;
        self.mismatch += o.mismatch;
        self.timeout += o.timeout;
        self.panic += o.panic;
    }
}

/// State shared by the connection tasks of one thread (single-threaded).
struct Shared {
    hist: RefCell<Histogram<u64>>,
    messages: Cell<u64>,
    errors: RefCell<Errors>,
    samples: RefCell<Vec<String>>,
}

impl Shared {
    fn note(&self, msg: String) {
        let mut s = self.samples.borrow_mut();
        if s.len() < MAX_ERROR_SAMPLES {
            s.push(msg);
        }
    }
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
    ws: bool,
    warmup: Duration,
    duration: Duration,
    /// Sent on each connection before the run (leaked: lives for the process).
    preface: Option<&'static Preface>,
}

pub fn run(args: EchoArgs) -> Result<ExitCode, String> {
    let addr = crate::target::resolve_loopback(&args.addr)?;
    if args.conns == 0 {
        return Err("--conns must be at least 1".into());
    }
    if args.size == 0 || args.size > MAX_SIZE {
        return Err(format!("--size must be between 1 and {MAX_SIZE} bytes"));
    }
    let duration = seconds("--duration", args.duration, false)?;
    let warmup = seconds("--warmup", args.warmup, true)?;
    let threads = args.threads.unwrap_or_else(crate::default_threads).clamp(1, args.conns);

    let preface: Option<&'static Preface> =
        args.preface.map(|p| &*Box::leak(Box::new(Preface { send: p.0, until: args.preface_until.map(|u| u.0) })));
    let plan = Plan { addr, size: args.size, ws: args.ws, warmup, duration, preface };
    // Every thread connects first; the clock starts once all have connected.
    let barrier = Arc::new(Barrier::new(threads));
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        // Connection i goes to thread i % threads.
        let ids: Vec<usize> = (t..args.conns).step_by(threads).collect();
        let barrier = Arc::clone(&barrier);
        let handle = std::thread::Builder::new()
            .name(format!("echo-{t}"))
            .spawn(move || load_thread(plan, ids, barrier))
            .map_err(|e| format!("cannot spawn load thread: {e}"))?;
        handles.push(handle);
    }

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

    if connected == 0 {
        return Err(format!(
            "could not connect to {addr}: {}",
            samples.first().map(String::as_str).unwrap_or("no connection")
        ));
    }
    for s in samples.iter().take(MAX_ERROR_SAMPLES) {
        eprintln!("moonport-bench echo: {s}");
    }

    let secs = duration.as_secs_f64();
    let report = Report {
        addr,
        driver: driver.map_or_else(|| "unknown".into(), driver_name),
        threads,
        conns: args.conns,
        connected,
        size: args.size,
        duration_s: secs,
        warmup_s: warmup.as_secs_f64(),
        messages,
        msgs_per_sec: messages as f64 / secs,
        mb_per_sec: (messages as f64 * args.size as f64) / 1e6 / secs,
        p50_us: us(hist.value_at_quantile(0.50)),
        p99_us: us(hist.value_at_quantile(0.99)),
        p999_us: us(hist.value_at_quantile(0.999)),
        max_us: us(hist.max()),
        mean_us: hist.mean() / 1000.0,
        errors,
    };
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    Ok(if errors.total() > 0 { ExitCode::from(2) } else { ExitCode::SUCCESS })
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

pub(crate) fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// Body of one load thread: connect its share, wait for the others, run.
fn load_thread(plan: Plan, ids: Vec<usize>, barrier: Arc<Barrier>) -> Result<ThreadResult, String> {
    let shared = Rc::new(Shared {
        hist: RefCell::new(new_histogram()),
        messages: Cell::new(0),
        errors: RefCell::new(Errors::default()),
        samples: RefCell::new(Vec::new()),
    });
    let rt = compio::runtime::Runtime::new();
    let streams = match &rt {
        Ok(rt) => rt.block_on(async {
            let streams = connect_all(plan.addr, &ids, "conn", true, |failure| {
                shared.errors.borrow_mut().connect += 1;
                shared.note(failure);
            })
            .await;
            match plan.preface {
                Some(p) => preface_all(streams, p, &shared).await,
                None => streams,
            }
        }),
        Err(_) => Vec::new(),
    };
    // Always reach the barrier, even on failure, so no thread waits forever.
    barrier.wait();
    let rt = rt.map_err(|e| format!("cannot create compio runtime: {e}"))?;
    let connected = streams.len();
    let driver = rt.driver_type();

    let start = Instant::now();
    let warm_end = start + plan.warmup;
    let end = warm_end + plan.duration;
    rt.block_on(async {
        let mut tasks = Vec::with_capacity(streams.len());
        for (id, stream) in streams {
            let shared = Rc::clone(&shared);
            tasks.push(compio::runtime::spawn(async move {
                let run = ping_pong(stream, id, plan, warm_end, end, &shared);
                if compio::time::timeout_at(end + GRACE, run).await.is_err() {
                    shared.errors.borrow_mut().timeout += 1;
                    shared.note(format!("conn {id}: no echo within {GRACE:?} after the end of the run; abandoned"));
                }
            }));
        }
        for task in tasks {
            if task.await.is_err() {
                shared.errors.borrow_mut().panic += 1;
                shared.note("a connection task panicked".into());
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
        samples: shared.samples.into_inner(),
    })
}

/// Sends the preface on every stream concurrently and skips each reply up to
/// the marker; a stream that fails (or takes longer than the connect
/// timeout) is dropped and counted as a connect error.
async fn preface_all(
    streams: Vec<(usize, TcpStream)>,
    p: &'static Preface,
    shared: &Shared,
) -> Vec<(usize, TcpStream)> {
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|(id, mut stream)| {
            compio::runtime::spawn(async move {
                let res = compio::time::timeout(CONNECT_TIMEOUT, send_preface(&mut stream, p)).await;
                (id, stream, res)
            })
        })
        .collect();
    let mut ready = Vec::with_capacity(tasks.len());
    for task in tasks {
        let failure = match task.await {
            Ok((id, stream, Ok(Ok(())))) => {
                ready.push((id, stream));
                continue;
            }
            Ok((id, _, Ok(Err(e)))) => format!("conn {id}: preface: {e}"),
            Ok((id, _, Err(_))) => format!("conn {id}: no reply to the preface within {CONNECT_TIMEOUT:?}"),
            Err(_) => "a preface task panicked".to_string(),
        };
        shared.errors.borrow_mut().connect += 1;
        shared.note(failure);
    }
    ready
}

/// Writes the preface, then reads until the reply marker (if any) has
/// arrived; bytes after the marker would be mistaken for echoes, so they are
/// an error.
async fn send_preface(stream: &mut TcpStream, p: &'static Preface) -> Result<(), String> {
    let BufResult(res, _) = stream.write_all(&p.send[..]).await;
    res.map_err(|e| format!("write failed: {e}"))?;
    let Some(marker) = &p.until else { return Ok(()) };
    let mut seen: Vec<u8> = Vec::new();
    loop {
        let BufResult(res, buf) = stream.read(Vec::with_capacity(4096)).await;
        match res {
            Ok(0) => return Err("server closed the connection before the reply marker".into()),
            Ok(_) => seen.extend_from_slice(&buf),
            Err(e) => return Err(format!("read failed: {e}")),
        }
        if let Some(pos) = seen.windows(marker.len()).position(|w| w == &marker[..]) {
            return if pos + marker.len() == seen.len() {
                Ok(())
            } else {
                Err("unexpected bytes after the reply marker".into())
            };
        }
        if seen.len() > MAX_PREFACE_REPLY {
            return Err(format!("no reply marker in the first {MAX_PREFACE_REPLY} bytes"));
        }
    }
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

/// One connection's ping-pong loop, until `end`.
async fn ping_pong(mut stream: TcpStream, id: usize, plan: Plan, warm_end: Instant, end: Instant, shared: &Shared) {
    if plan.ws
        && let Err(e) = ws_upgrade(&mut stream, plan.addr).await
    {
        io_failure(shared, id, "upgrade", &e);
        return;
    }
    let size = plan.size;
    // In WebSocket mode each message carries a frame header each way.
    let (ours, theirs) = if plan.ws { (ws_head(size, true), ws_head(size, false)) } else { (Vec::new(), Vec::new()) };
    let mut send = [ours.clone(), pattern(id, size)].concat();
    let want = theirs.len() + size;
    let mut recv: Vec<u8> = Vec::with_capacity(want);
    let mut seq: u64 = 0;
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        stamp(&mut send[ours.len()..], seq);
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
        if t1 > end {
            // Completed after the window closed: not part of the figures.
            break;
        }
        if recv.buf_len() != want || recv[..theirs.len()] != theirs[..] || recv[theirs.len()..] != send[ours.len()..] {
            let mut errs = shared.errors.borrow_mut();
            errs.mismatch += 1;
            if errs.mismatch == 1 {
                shared.note(format!("conn {id}: echoed bytes differ from what was sent (message #{seq})"));
            }
        } else if t0 >= warm_end {
            let ns = u64::try_from((t1 - t0).as_nanos()).unwrap_or(u64::MAX);
            shared.hist.borrow_mut().saturating_record(ns.max(1));
            shared.messages.set(shared.messages.get() + 1);
        }
        seq = seq.wrapping_add(1);
    }
}

fn io_failure(shared: &Shared, id: usize, what: &str, e: &io::Error) {
    let mut errs = shared.errors.borrow_mut();
    if e.kind() == io::ErrorKind::UnexpectedEof {
        errs.closed += 1;
        drop(errs);
        shared.note(format!("conn {id}: server closed the connection during {what}"));
    } else {
        errs.io += 1;
        drop(errs);
        shared.note(format!("conn {id}: {what} failed: {e}"));
    }
}

/// Final figures of a run.
struct Report {
    addr: SocketAddr,
    driver: String,
    threads: usize,
    conns: usize,
    connected: usize,
    size: usize,
    duration_s: f64,
    warmup_s: f64,
    messages: u64,
    msgs_per_sec: f64,
    mb_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
    mean_us: f64,
    errors: Errors,
}

impl Report {
    fn json(&self) -> String {
        let e = &self.errors;
        let mut s = String::with_capacity(512);
        let _ = write!(
            s,
            "{{\"addr\":\"{}\",\"driver\":\"{}\",\"threads\":{},\"conns\":{},\"connected\":{},\"size\":{},\
             \"duration_s\":{},\"warmup_s\":{},\"messages\":{},\"msgs_per_sec\":{:.1},\
             \"mb_per_sec\":{:.3},\"p50_us\":{:.1},\"p99_us\":{:.1},\"p999_us\":{:.1},\
             \"max_us\":{:.1},\"mean_us\":{:.1},\"errors\":{},\"connect_errors\":{},\
             \"io_errors\":{},\"closed\":{},\"mismatches\":{},\"timeouts\":{},\"panics\":{}}}",
            self.addr,
            self.driver,
            self.threads,
            self.conns,
            self.connected,
            self.size,
            self.duration_s,
            self.warmup_s,
            self.messages,
            self.msgs_per_sec,
            self.mb_per_sec,
            self.p50_us,
            self.p99_us,
            self.p999_us,
            self.max_us,
            self.mean_us,
            e.total(),
            e.connect,
            e.io,
            e.closed,
            e.mismatch,
            e.timeout,
            e.panic,
        );
        s
    }

    fn text(&self) -> String {
        let e = &self.errors;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "echo {}: {} conns ({} connected) on {} thread(s) ({} driver), {} B messages, {} s measured after {} s warm-up",
            self.addr, self.conns, self.connected, self.threads, self.driver, self.size, self.duration_s, self.warmup_s
        );
        let _ = writeln!(s, "  messages:   {} ({:.0} msg/s)", self.messages, self.msgs_per_sec);
        let _ =
            writeln!(s, "  throughput: {:.2} MB/s (payload echoed, each direction, 1 MB = 10^6 B)", self.mb_per_sec);
        let _ = writeln!(
            s,
            "  latency:    p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us (mean {:.1} us)",
            self.p50_us, self.p99_us, self.p999_us, self.max_us, self.mean_us
        );
        let _ = writeln!(
            s,
            "  errors:     {} (connect {}, io {}, closed {}, mismatch {}, timeout {}, panic {})",
            e.total(),
            e.connect,
            e.io,
            e.closed,
            e.mismatch,
            e.timeout,
            e.panic
        );
        s
    }
}
