//! `stream`: bulk throughput per connection through an echo server.
//!
//! Every connection writes `--chunk`-byte writes as fast as the server takes
//! them while a second task on the same connection reads the echo back (so
//! the server is never stalled by a full send buffer). MB/s counts the bytes
//! that came back during the measured window; as many went the other way.
//! The bytes follow a fixed pattern by stream offset, so every read is
//! checked against what was sent (one `memcmp`), and at the end every
//! connection half-closes, reads until the server closes, and must have
//! received exactly as many bytes as it sent.
//!
//! Thread-per-core like `echo`, with `--preface` for nginx-lua; bounded in
//! time (a writer stuck for the grace period is abandoned, and so is a
//! drain) and loopback-only.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use compio::BufResult;
use compio::buf::IntoInner;
use compio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use compio::net::TcpStream;

use crate::connect::{PrefaceArgs, connect_ready};
use crate::echo::{driver_name, seconds};
use crate::window::{Gate, Window};

/// After the end of the run: how long a write may still be stuck, and then
/// how long the echo of the last bytes may take to come back.
const GRACE: Duration = Duration::from_secs(5);
/// Largest write accepted.
const MAX_CHUNK: usize = 16 * 1024 * 1024;
/// Bytes each read asks for.
const READ_BUF: usize = 256 * 1024;
/// Period of the byte pattern (a prime, so it never lines up with a chunk).
const PERIOD: usize = 251;
/// How many error messages are kept to show the user.
const MAX_ERROR_SAMPLES: usize = 5;

#[derive(Args, Debug)]
pub struct StreamArgs {
    /// Target echo server; must be a loopback address (127.0.0.0/8 or ::1).
    #[arg(long)]
    addr: String,
    /// Number of concurrent connections.
    #[arg(long, default_value_t = 1)]
    conns: usize,
    /// Bytes per write.
    #[arg(long, default_value_t = 64 * 1024)]
    chunk: usize,
    /// Measurement duration in seconds (after warm-up).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Warm-up in seconds: bytes flow but are not counted.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Number of load-generator threads, each with its own runtime
    /// (default: number of cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Print one JSON line with the results instead of the text report.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    preface: PrefaceArgs,
}

/// Error counters, shared by all threads.
#[derive(Debug, Default)]
struct Errors {
    /// Connection attempts (or prefaces) that failed or timed out.
    connect: AtomicU64,
    /// Read/write failures.
    io: AtomicU64,
    /// Bytes came back other than sent, or not all of them (e.g. the server
    /// closed early).
    mismatch: AtomicU64,
    /// Writes or drains still stuck after the grace period.
    timeout: AtomicU64,
}

impl Errors {
    fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn total(&self) -> u64 {
        [&self.connect, &self.io, &self.mismatch, &self.timeout].into_iter().map(Self::get).sum()
    }
}

/// Shared by all threads of a run.
struct Shared {
    /// Bytes echoed back so far, all connections (sampled by the main thread).
    received: AtomicU64,
    connected: AtomicUsize,
    errors: Errors,
    samples: Mutex<Vec<String>>,
}

impl Shared {
    fn note(&self, msg: String) {
        let mut s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if s.len() < MAX_ERROR_SAMPLES {
            s.push(msg);
        }
    }
}

pub fn run(args: StreamArgs) -> Result<ExitCode, String> {
    let addr = crate::target::resolve_loopback(&args.addr)?;
    if args.conns == 0 {
        return Err("--conns must be at least 1".into());
    }
    if args.chunk == 0 || args.chunk > MAX_CHUNK {
        return Err(format!("--chunk must be between 1 and {MAX_CHUNK} bytes"));
    }
    let duration = seconds("--duration", args.duration, false)?;
    let warmup = seconds("--warmup", args.warmup, true)?;
    let threads = args.threads.unwrap_or_else(crate::default_threads).clamp(1, args.conns);
    let preface = args.preface.leak();

    let shared = Arc::new(Shared {
        received: AtomicU64::new(0),
        connected: AtomicUsize::new(0),
        errors: Errors::default(),
        samples: Mutex::new(Vec::new()),
    });
    let gate = Arc::new(Gate::new(threads));
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        let ids: Vec<usize> = (t..args.conns).step_by(threads).collect();
        let (gate, shared) = (Arc::clone(&gate), Arc::clone(&shared));
        let chunk = args.chunk;
        let handle = std::thread::Builder::new()
            .name(format!("stream-{t}"))
            .spawn(move || {
                let rt = compio::runtime::Runtime::new();
                let streams = match &rt {
                    Ok(rt) => rt.block_on(connect_ready(addr, &ids, preface, |failure| {
                        Errors::bump(&shared.errors.connect);
                        shared.note(failure);
                    })),
                    Err(_) => Vec::new(),
                };
                shared.connected.fetch_add(streams.len(), Ordering::SeqCst);
                // Always reach the gate, even on failure, so no thread waits forever.
                let window = Window::new(gate.wait(), warmup, duration);
                let rt = rt.map_err(|e| format!("cannot create compio runtime: {e}"))?;
                rt.block_on(async {
                    let tasks: Vec<_> = streams
                        .into_iter()
                        .map(|(id, stream)| {
                            compio::runtime::spawn(conn(stream, id, chunk, window, Arc::clone(&shared)))
                        })
                        .collect();
                    for task in tasks {
                        if task.await.is_err() {
                            Errors::bump(&shared.errors.io);
                            shared.note("a connection task panicked".into());
                        }
                    }
                });
                Ok::<_, String>(rt.driver_type())
            })
            .map_err(|e| format!("cannot spawn load thread: {e}"))?;
        handles.push(handle);
    }

    let window = Window::new(gate.open(), warmup, duration);
    let from = crate::cpu::sample_at(window.warm_end);
    let before = shared.received.load(Ordering::SeqCst);
    let to = crate::cpu::sample_at(window.end);
    let bytes = shared.received.load(Ordering::SeqCst) - before;

    let mut driver = None;
    for handle in handles {
        driver = Some(handle.join().map_err(|_| "a load thread panicked".to_string())??);
    }
    let connected = shared.connected.load(Ordering::SeqCst);
    let samples = shared.samples.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if connected == 0 {
        return Err(format!(
            "could not connect to {addr}: {}",
            samples.first().map(String::as_str).unwrap_or("no connection")
        ));
    }
    for s in &samples {
        eprintln!("moonport-bench stream: {s}");
    }
    let secs = duration.as_secs_f64();
    let mb_per_sec = bytes as f64 / 1e6 / secs;
    let report = Report {
        addr,
        driver: driver.map_or_else(|| "unknown".into(), driver_name),
        threads,
        conns: args.conns,
        connected,
        chunk: args.chunk,
        duration_s: secs,
        warmup_s: warmup.as_secs_f64(),
        bytes,
        mb_per_sec,
        mb_per_sec_per_conn: mb_per_sec / connected as f64,
        load_cpu_pct: to.pct_since(&from),
    };
    let e = &shared.errors;
    if args.json {
        println!("{}", report.json(e));
    } else {
        print!("{}", report.text(e));
    }
    Ok(if e.total() > 0 { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

/// The pattern byte at stream offset `i`.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i % PERIOD) * 7 + 3) as u8).collect()
}

/// One connection: a writer task and the reader (this task), then the
/// byte-count check.
async fn conn(stream: TcpStream, id: usize, chunk: usize, window: Window, shared: Arc<Shared>) {
    let writer = {
        let (stream, shared) = (stream.clone(), Arc::clone(&shared));
        compio::runtime::spawn(async move {
            match compio::time::timeout_at(window.end + GRACE, push(stream, chunk, window)).await {
                Ok(Ok(sent)) => Some(sent),
                Ok(Err(e)) => {
                    Errors::bump(&shared.errors.io);
                    shared.note(format!("conn {id}: write failed: {e}"));
                    None
                }
                Err(_) => {
                    Errors::bump(&shared.errors.timeout);
                    shared.note(format!("conn {id}: write still stuck {GRACE:?} after the end of the run"));
                    None
                }
            }
        })
    };
    let received = compio::time::timeout_at(window.end + 2 * GRACE, pull(stream, id, &shared)).await;
    let sent = writer.await.ok().flatten();
    match (sent, received) {
        (Some(sent), Ok(Some(received))) if sent != received => {
            Errors::bump(&shared.errors.mismatch);
            shared.note(format!("conn {id}: sent {sent} bytes, {received} came back"));
        }
        (Some(_), Err(_)) => {
            Errors::bump(&shared.errors.timeout);
            shared.note(format!("conn {id}: the echo did not end within {GRACE:?} of the last write"));
        }
        _ => {}
    }
}

/// Writes `chunk`-byte writes until the end of the window, then half-closes;
/// returns the bytes written.
async fn push(mut stream: TcpStream, chunk: usize, window: Window) -> std::io::Result<u64> {
    let mut buf = pattern(chunk + PERIOD);
    let mut sent: u64 = 0;
    while std::time::Instant::now() < window.end {
        let off = (sent % PERIOD as u64) as usize;
        let BufResult(res, b) = stream.write_all(compio::buf::IoBuf::slice(buf, off..off + chunk)).await;
        buf = b.into_inner();
        res?;
        sent += chunk as u64;
    }
    stream.shutdown().await?;
    Ok(sent)
}

/// Reads until the server closes, checking every byte against the pattern
/// and counting them; returns the total, or `None` after a failure (noted).
async fn pull(mut stream: TcpStream, id: usize, shared: &Shared) -> Option<u64> {
    let want = pattern(READ_BUF + PERIOD);
    let mut buf: Vec<u8> = Vec::with_capacity(READ_BUF);
    let mut received: u64 = 0;
    loop {
        buf.clear();
        let BufResult(res, b) = stream.read(buf).await;
        buf = b;
        let n = match res {
            Ok(0) => return Some(received),
            Ok(n) => n,
            Err(e) => {
                Errors::bump(&shared.errors.io);
                shared.note(format!("conn {id}: read failed: {e}"));
                return None;
            }
        };
        let off = (received % PERIOD as u64) as usize;
        if buf[..n] != want[off..off + n] {
            Errors::bump(&shared.errors.mismatch);
            shared.note(format!("conn {id}: echoed bytes differ from what was sent (at offset {received})"));
            return None;
        }
        received += n as u64;
        shared.received.fetch_add(n as u64, Ordering::Relaxed);
    }
}

struct Report {
    addr: SocketAddr,
    driver: String,
    threads: usize,
    conns: usize,
    connected: usize,
    chunk: usize,
    duration_s: f64,
    warmup_s: f64,
    bytes: u64,
    mb_per_sec: f64,
    mb_per_sec_per_conn: f64,
    load_cpu_pct: Option<f64>,
}

impl Report {
    fn json(&self, e: &Errors) -> String {
        let mut s = String::with_capacity(512);
        let _ = write!(
            s,
            "{{\"mode\":\"stream\",\"addr\":\"{}\",\"driver\":\"{}\",\"threads\":{},\"conns\":{},\"connected\":{},\
             \"chunk\":{},\"duration_s\":{},\"warmup_s\":{},\"bytes\":{},\"mb_per_sec\":{:.3},\
             \"mb_per_sec_per_conn\":{:.3},\"load_cpu_pct\":{},\"errors\":{},\"connect_errors\":{},\
             \"io_errors\":{},\"mismatches\":{},\"timeouts\":{}}}",
            self.addr,
            self.driver,
            self.threads,
            self.conns,
            self.connected,
            self.chunk,
            self.duration_s,
            self.warmup_s,
            self.bytes,
            self.mb_per_sec,
            self.mb_per_sec_per_conn,
            crate::cpu::json(self.load_cpu_pct),
            e.total(),
            Errors::get(&e.connect),
            Errors::get(&e.io),
            Errors::get(&e.mismatch),
            Errors::get(&e.timeout),
        );
        s
    }

    fn text(&self, e: &Errors) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "stream {}: {} conns ({} connected) on {} thread(s) ({} driver), {} B writes, \
             {} s measured after {} s warm-up",
            self.addr,
            self.conns,
            self.connected,
            self.threads,
            self.driver,
            self.chunk,
            self.duration_s,
            self.warmup_s
        );
        let _ = writeln!(
            s,
            "  throughput: {:.2} MB/s echoed back ({:.2} MB/s per connection; as much went out; 1 MB = 10^6 B)",
            self.mb_per_sec, self.mb_per_sec_per_conn
        );
        s.push_str(&crate::cpu::text(self.load_cpu_pct));
        let _ = writeln!(
            s,
            "  errors:     {} (connect {}, io {}, mismatch {}, timeout {})",
            e.total(),
            Errors::get(&e.connect),
            Errors::get(&e.io),
            Errors::get(&e.mismatch),
            Errors::get(&e.timeout),
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::{PERIOD, pattern};

    #[test]
    fn pattern_depends_on_offset_only() {
        let long = pattern(3 * PERIOD + 10);
        // A write that starts at offset k of the stream uses pattern[k % PERIOD..].
        for k in [0, 1, 250, 251, 700] {
            let off = k % PERIOD;
            assert_eq!(&long[k..k + 10], &pattern(PERIOD + 10)[off..off + 10]);
        }
    }
}
