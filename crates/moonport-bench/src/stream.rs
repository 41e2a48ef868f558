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

use std::cell::RefCell;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Args;
use compio::BufResult;
use compio::buf::IntoInner;
use compio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use compio::net::TcpStream;

use crate::connect::{TargetArgs, connect_ready};
use crate::report::{Header, Notes, RunArgs, check_connected, counters};
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

#[derive(Args, Debug)]
pub struct StreamArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Number of concurrent connections.
    #[arg(long, default_value_t = 1)]
    conns: usize,
    /// Bytes per write.
    #[arg(long, default_value_t = 64 * 1024)]
    chunk: usize,
    #[command(flatten)]
    run: RunArgs,
}

counters!(
    /// Error counters, per thread and then summed.
    Errors {
        /// Connection attempts (or prefaces) that failed or timed out.
        connect => "connect_errors",
        /// Read/write failures.
        io => "io_errors",
        /// Bytes came back other than sent, or not all of them (e.g. the
        /// server closed early).
        mismatch => "mismatches",
        /// Writes or drains still stuck after the grace period.
        timeout => "timeouts",
    }
);

/// What the connections of one thread share (single-threaded).
#[derive(Default)]
struct Local {
    errors: RefCell<Errors>,
    notes: Notes,
}

impl Local {
    /// Counts an error of the kind `kind` picks and keeps its message.
    fn fail(&self, kind: fn(&mut Errors) -> &mut u64, msg: String) {
        *kind(&mut self.errors.borrow_mut()) += 1;
        self.notes.note(msg);
    }
}

pub fn run(args: StreamArgs) -> Result<ExitCode, String> {
    let (addr, preface) = args.target.resolve()?;
    if args.conns == 0 {
        return Err("--conns must be at least 1".into());
    }
    if args.chunk == 0 || args.chunk > MAX_CHUNK {
        return Err(format!("--chunk must be between 1 and {MAX_CHUNK} bytes"));
    }
    let (warmup, duration) = args.run.times()?;
    let threads = args.run.threads(args.conns);

    // Bytes echoed back so far, all connections (sampled by this thread).
    let received = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(Gate::new(threads));
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        let ids: Vec<usize> = (t..args.conns).step_by(threads).collect();
        let (gate, received) = (Arc::clone(&gate), Arc::clone(&received));
        let chunk = args.chunk;
        let handle = std::thread::Builder::new()
            .name(format!("stream-{t}"))
            .spawn(move || {
                let local = Rc::new(Local::default());
                let rt = compio::runtime::Runtime::new();
                let streams = match &rt {
                    Ok(rt) => rt.block_on(connect_ready(addr, &ids, preface, |failure| {
                        local.fail(|e| &mut e.connect, failure);
                    })),
                    Err(_) => Vec::new(),
                };
                // Always reach the gate, even on failure, so no thread waits forever.
                let window = Window::new(gate.wait(), warmup, duration);
                let rt = rt.map_err(|e| format!("cannot create compio runtime: {e}"))?;
                let connected = streams.len();
                rt.block_on(async {
                    let tasks: Vec<_> = streams
                        .into_iter()
                        .map(|(id, stream)| {
                            let (local, received) = (Rc::clone(&local), Arc::clone(&received));
                            compio::runtime::spawn(conn(stream, id, chunk, window, local, received))
                        })
                        .collect();
                    for task in tasks {
                        if task.await.is_err() {
                            local.fail(|e| &mut e.io, "a connection task panicked".into());
                        }
                    }
                });
                Ok::<_, String>((rt.driver_type(), connected, *local.errors.borrow(), local.notes.take()))
            })
            .map_err(|e| format!("cannot spawn load thread: {e}"))?;
        handles.push(handle);
    }

    let window = Window::new(gate.open(), warmup, duration);
    let from = crate::cpu::sample_at(window.warm_end);
    let before = received.load(Ordering::SeqCst);
    let to = crate::cpu::sample_at(window.end);
    let bytes = received.load(Ordering::SeqCst) - before;

    let (mut driver, mut connected, mut errors, mut samples) = (None, 0, Errors::default(), Vec::new());
    for handle in handles {
        let (d, c, e, s) = handle.join().map_err(|_| "a load thread panicked".to_string())??;
        driver = Some(d);
        connected += c;
        errors.add(&e);
        samples.extend(s);
    }
    let head = Header::new("stream", addr, driver, threads, (warmup, duration));
    check_connected(&head, connected, &samples)?;
    let mb_per_sec = bytes as f64 / 1e6 / head.duration_s;
    let report = Report {
        head,
        conns: args.conns,
        connected,
        chunk: args.chunk,
        bytes,
        mb_per_sec,
        mb_per_sec_per_conn: mb_per_sec / connected as f64,
        load_cpu_pct: to.pct_since(&from),
        errors,
    };
    Ok(crate::report::print(&args.run, &report))
}

/// The pattern byte at stream offset `i`.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i % PERIOD) * 7 + 3) as u8).collect()
}

/// One connection: a writer task and the reader (this task), then the
/// byte-count check.
async fn conn(stream: TcpStream, id: usize, chunk: usize, window: Window, local: Rc<Local>, received: Arc<AtomicU64>) {
    let writer = {
        let (stream, local) = (stream.clone(), Rc::clone(&local));
        compio::runtime::spawn(async move {
            match compio::time::timeout_at(window.end + GRACE, push(stream, chunk, window)).await {
                Ok(Ok(sent)) => Some(sent),
                Ok(Err(e)) => {
                    local.fail(|e| &mut e.io, format!("conn {id}: write failed: {e}"));
                    None
                }
                Err(_) => {
                    let msg = format!("conn {id}: write still stuck {GRACE:?} after the end of the run");
                    local.fail(|e| &mut e.timeout, msg);
                    None
                }
            }
        })
    };
    let got = compio::time::timeout_at(window.end + 2 * GRACE, pull(stream, id, &local, &received)).await;
    let sent = writer.await.ok().flatten();
    match (sent, got) {
        (Some(sent), Ok(Some(got))) if sent != got => {
            local.fail(|e| &mut e.mismatch, format!("conn {id}: sent {sent} bytes, {got} came back"));
        }
        (Some(_), Err(_)) => {
            let msg = format!("conn {id}: the echo did not end within {GRACE:?} of the last write");
            local.fail(|e| &mut e.timeout, msg);
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
async fn pull(mut stream: TcpStream, id: usize, local: &Local, total: &AtomicU64) -> Option<u64> {
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
                local.fail(|e| &mut e.io, format!("conn {id}: read failed: {e}"));
                return None;
            }
        };
        let off = (received % PERIOD as u64) as usize;
        if buf[..n] != want[off..off + n] {
            local.fail(
                |e| &mut e.mismatch,
                format!("conn {id}: echoed bytes differ from what was sent (at offset {received})"),
            );
            return None;
        }
        received += n as u64;
        total.fetch_add(n as u64, Ordering::Relaxed);
    }
}

struct Report {
    head: Header,
    conns: usize,
    connected: usize,
    chunk: usize,
    bytes: u64,
    mb_per_sec: f64,
    mb_per_sec_per_conn: f64,
    load_cpu_pct: Option<f64>,
    errors: Errors,
}

impl crate::report::Report for Report {
    fn json(&self) -> String {
        format!(
            "{{{},\"conns\":{},\"connected\":{},\"chunk\":{},\"bytes\":{},\"mb_per_sec\":{:.3},\
             \"mb_per_sec_per_conn\":{:.3},\"load_cpu_pct\":{},{}}}",
            self.head.json(),
            self.conns,
            self.connected,
            self.chunk,
            self.bytes,
            self.mb_per_sec,
            self.mb_per_sec_per_conn,
            crate::cpu::json(self.load_cpu_pct),
            self.errors.json(),
        )
    }

    fn text(&self) -> String {
        let what = format!("{} conns ({} connected), {} B writes", self.conns, self.connected, self.chunk);
        format!(
            "{}\
             \x20 throughput: {:.2} MB/s echoed back ({:.2} MB/s per connection; as much went out; 1 MB = 10^6 B)\n{}{}",
            self.head.text(&what),
            self.mb_per_sec,
            self.mb_per_sec_per_conn,
            crate::cpu::text(self.load_cpu_pct),
            self.errors.text(),
        )
    }

    fn errors(&self) -> u64 {
        self.errors.total()
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
