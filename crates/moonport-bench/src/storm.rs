//! `connect`: a connection storm against an echo server.
//!
//! `--concurrency` tasks (split over `--threads` runtimes) each loop: open a
//! connection, optionally (`--request`) send one `--size`-byte message and
//! read its echo, then half-close and wait until the server closes too, and
//! again, until the run ends. Reports completed cycles per second and the
//! latency of each cycle in an HDR histogram.
//!
//! Waiting for the server's close is what makes a cycle cost the server
//! something: a connect completes when the kernel answers the SYN, before
//! the server has accepted anything, so a client that merely connected and
//! closed would fill the listen queue faster than any server accepts, and
//! then stall for a second on every dropped SYN. This way each cycle ends
//! only once the server has accepted the connection, seen its end and
//! closed it.
//!
//! The client closes first, so its side holds the TIME_WAIT state of every
//! connection. Linux reuses those ports for new loopback connections
//! (`net.ipv4.tcp_tw_reuse`, default 2), but with one source address its
//! search for a usable ephemeral port among tens of thousands in TIME_WAIT
//! (`__inet_hash_connect`) became the generator's main cost in perf and
//! capped every server at the same rate. So against an IPv4 target the
//! connections come from source addresses 127.0.0.2 to 127.0.0.251 in turn
//! (all of 127.0.0.0/8 is this machine's loopback), each with its own port
//! space.
//!
//! A failed cycle is counted by kind and the task pauses briefly before the
//! next, so a refusing server is not spun against. Bounded in time (every
//! cycle has the connect timeout) and loopback-only, as `echo`.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use compio::BufResult;
use compio::buf::{IntoInner, IoBuf};
use compio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use compio::net::TcpStream;
use hdrhistogram::Histogram;

use crate::connect::{CONNECT_TIMEOUT, Preface, TargetArgs, send_preface};
use crate::echo::new_histogram;
use crate::report::{Header, Latency, Notes, RunArgs, counters};
use crate::window::{Gate, Window};

/// Pause after a failed cycle.
const BACKOFF: Duration = Duration::from_millis(10);
/// Largest request accepted.
const MAX_SIZE: usize = 1024 * 1024;

#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// With a preface, every cycle sends it (and skips the reply) before the
    /// request, as a client of such a server must.
    #[command(flatten)]
    target: TargetArgs,
    /// Connection cycles in progress at once.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Send one message on every connection and wait for its echo before
    /// closing (without it: connect, then close).
    #[arg(long)]
    request: bool,
    /// Size of that message in bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    #[command(flatten)]
    run: RunArgs,
}

counters!(
    /// Error counters, per thread and then summed.
    Errors {
        /// Connection attempts refused or failed.
        connect => "connect_errors",
        /// Cycles that did not finish within the connect timeout.
        timeout => "timeouts",
        /// Preface or request failures on an established connection.
        io => "io_errors",
        /// The echo differed from the request.
        mismatch => "mismatches",
    }
);

/// How a cycle failed.
enum Failure {
    Connect(io::Error),
    Io(String),
    Mismatch,
}

/// State shared by the tasks of one thread (single-threaded).
struct Shared {
    hist: RefCell<Histogram<u64>>,
    cycles: Cell<u64>,
    errors: RefCell<Errors>,
    notes: Notes,
}

/// What one thread hands back.
struct ThreadResult {
    driver: compio::driver::DriverType,
    hist: Histogram<u64>,
    cycles: u64,
    errors: Errors,
    samples: Vec<String>,
}

#[derive(Clone, Copy)]
struct Plan {
    addr: SocketAddr,
    /// The request (leaked: lives for the process).
    request: Option<&'static [u8]>,
    preface: Option<&'static Preface>,
}

pub fn run(args: ConnectArgs) -> Result<ExitCode, String> {
    let (addr, preface) = args.target.resolve()?;
    if args.concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    if args.size == 0 || args.size > MAX_SIZE {
        return Err(format!("--size must be between 1 and {MAX_SIZE} bytes"));
    }
    let (warmup, duration) = args.run.times()?;
    let threads = args.run.threads(args.concurrency);
    let request = args.request.then(|| &*Vec::leak((0..args.size).map(|i| (i * 13 + 5) as u8).collect()));
    let plan = Plan { addr, request, preface };

    let gate = Arc::new(Gate::new(threads));
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        let tasks = (t..args.concurrency).step_by(threads).count();
        let gate = Arc::clone(&gate);
        let handle = std::thread::Builder::new()
            .name(format!("connect-{t}"))
            .spawn(move || {
                let rt = compio::runtime::Runtime::new();
                // Nothing to set up: every thread is ready at once.
                let window = Window::new(gate.wait(), warmup, duration);
                let rt = rt.map_err(|e| format!("cannot create compio runtime: {e}"))?;
                Ok::<_, String>(load_thread(&rt, plan, tasks, window))
            })
            .map_err(|e| format!("cannot spawn load thread: {e}"))?;
        handles.push(handle);
    }
    let load_cpu_pct = Window::new(gate.open(), warmup, duration).cpu_pct();

    let mut hist = new_histogram();
    let (mut cycles, mut errors, mut samples, mut driver) = (0u64, Errors::default(), Vec::new(), None);
    for handle in handles {
        let r = handle.join().map_err(|_| "a load thread panicked".to_string())??;
        hist.add(&r.hist).map_err(|e| format!("cannot merge histograms: {e}"))?;
        cycles += r.cycles;
        errors.add(&r.errors);
        samples.extend(r.samples);
        driver = Some(r.driver);
    }
    if cycles == 0 {
        return Err(format!(
            "no connection to {addr} completed: {}",
            samples.first().map(String::as_str).unwrap_or("no error recorded")
        ));
    }
    let head = Header::new("connect", addr, driver, threads, (warmup, duration));
    crate::report::show("connect", &samples);
    let secs = head.duration_s;
    let report = Report {
        head,
        concurrency: args.concurrency,
        request: plan.request.map(<[u8]>::len),
        preface: plan.preface.is_some(),
        cycles,
        per_sec: cycles as f64 / secs,
        latency: Latency::of(&hist),
        load_cpu_pct,
        errors,
    };
    Ok(crate::report::print(&args.run, &report))
}

fn load_thread(rt: &compio::runtime::Runtime, plan: Plan, tasks: usize, window: Window) -> ThreadResult {
    let shared = Rc::new(Shared {
        hist: RefCell::new(new_histogram()),
        cycles: Cell::new(0),
        errors: RefCell::new(Errors::default()),
        notes: Notes::default(),
    });
    rt.block_on(async {
        let tasks: Vec<_> = (0..tasks)
            .map(|_| {
                let shared = Rc::clone(&shared);
                compio::runtime::spawn(async move { storm(plan, window, &shared).await })
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    });
    ThreadResult {
        driver: rt.driver_type(),
        hist: shared.hist.borrow().clone(),
        cycles: shared.cycles.get(),
        errors: *shared.errors.borrow(),
        samples: shared.notes.take(),
    }
}

/// One task's cycles until the end of the window.
async fn storm(plan: Plan, window: Window, shared: &Shared) {
    while Instant::now() < window.end {
        let t0 = Instant::now();
        let res = compio::time::timeout(CONNECT_TIMEOUT, cycle(plan)).await;
        let t1 = Instant::now();
        let failure = match res {
            Ok(Ok(())) => {
                if t0 >= window.warm_end && t1 <= window.end {
                    let ns = u64::try_from((t1 - t0).as_nanos()).unwrap_or(u64::MAX);
                    shared.hist.borrow_mut().saturating_record(ns.max(1));
                    shared.cycles.set(shared.cycles.get() + 1);
                }
                continue;
            }
            Ok(Err(Failure::Connect(e))) => {
                shared.errors.borrow_mut().connect += 1;
                format!("connect to {} failed: {e}", plan.addr)
            }
            Ok(Err(Failure::Io(e))) => {
                shared.errors.borrow_mut().io += 1;
                e
            }
            Ok(Err(Failure::Mismatch)) => {
                shared.errors.borrow_mut().mismatch += 1;
                "the echo differs from the request".into()
            }
            Err(_) => {
                shared.errors.borrow_mut().timeout += 1;
                format!("a connection cycle took longer than {CONNECT_TIMEOUT:?}")
            }
        };
        shared.notes.note(failure);
        compio::time::sleep(BACKOFF).await;
    }
}

/// Source addresses used in turn against an IPv4 target (see the module doc).
const SOURCES: u32 = 250;
/// The next source address to use, over all threads.
static NEXT_SOURCE: AtomicU32 = AtomicU32::new(0);

/// Opens a connection, from the next source address for an IPv4 target
/// (also `soak`'s connections).
pub(crate) async fn open(addr: SocketAddr) -> io::Result<TcpStream> {
    if !addr.is_ipv4() {
        return TcpStream::connect(addr).await;
    }
    let n = NEXT_SOURCE.fetch_add(1, Ordering::Relaxed) % SOURCES;
    let source = SocketAddr::from((Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 2)) + n), 0));
    TcpStream::bind_and_connect(source, addr).await
}

/// Connect, preface, request, half-close, wait for the server's close
/// (dropping the stream then closes it).
async fn cycle(plan: Plan) -> Result<(), Failure> {
    let mut stream = open(plan.addr).await.map_err(Failure::Connect)?;
    if let Some(p) = plan.preface {
        send_preface(&mut stream, p).await.map_err(|e| Failure::Io(format!("preface: {e}")))?;
    }
    if let Some(msg) = plan.request {
        let _ = stream.set_nodelay(true);
        let BufResult(res, _) = stream.write_all(msg).await;
        res.map_err(|e| Failure::Io(format!("write failed: {e}")))?;
        let BufResult(res, back) = stream.read_exact(Vec::with_capacity(msg.len()).slice(..msg.len())).await;
        res.map_err(|e| Failure::Io(format!("read failed: {e}")))?;
        if back.into_inner() != msg {
            return Err(Failure::Mismatch);
        }
    }
    stream.shutdown().await.map_err(|e| Failure::Io(format!("shutdown failed: {e}")))?;
    // Whatever the server still says (nothing, for an echo) until it closes.
    let mut buf = Vec::with_capacity(512);
    loop {
        buf.clear();
        let BufResult(res, b) = stream.read(buf).await;
        buf = b;
        match res {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(Failure::Io(format!("read until close failed: {e}"))),
        }
    }
}

struct Report {
    head: Header,
    concurrency: usize,
    request: Option<usize>,
    preface: bool,
    cycles: u64,
    per_sec: f64,
    latency: Latency,
    load_cpu_pct: Option<f64>,
    errors: Errors,
}

impl crate::report::Report for Report {
    fn json(&self) -> String {
        format!(
            "{{{},\"concurrency\":{},\"request\":{},\"size\":{},\"preface\":{},\"connects\":{},\
             \"connects_per_sec\":{:.1},{},\"load_cpu_pct\":{},{}}}",
            self.head.json(),
            self.concurrency,
            self.request.is_some(),
            self.request.unwrap_or(0),
            self.preface,
            self.cycles,
            self.per_sec,
            self.latency.json(),
            crate::cpu::json(self.load_cpu_pct),
            self.errors.json(),
        )
    }

    fn text(&self) -> String {
        let cycle = match self.request {
            Some(n) => format!("connect, {n} B request and its echo, close, the server's close"),
            None => "connect, close, the server's close".into(),
        };
        let preface = if self.preface { " (after the preface)" } else { "" };
        let what = format!("{} at a time, each cycle: {cycle}{preface}", self.concurrency);
        format!(
            "{}\
             \x20 cycles:     {} ({:.0} connections/s)\n\
             \x20 latency:    {} (one cycle)\n{}{}",
            self.head.text(&what),
            self.cycles,
            self.per_sec,
            self.latency.text(),
            crate::cpu::text(self.load_cpu_pct),
            self.errors.text(),
        )
    }

    fn errors(&self) -> u64 {
        self.errors.total()
    }
}
