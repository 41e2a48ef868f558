//! Stream throughput through a TCP relay, and a native compio relay to
//! compare against.
//!
//! - `relay`: this tool is both ends. It listens on `--sink` as the relay's
//!   upstream (accepts, reads, discards, counts bytes), opens `--conns`
//!   connections to the relay at `--addr` and pushes `--chunk`-byte writes
//!   through them for the warm-up plus `--duration`. Throughput is the bytes
//!   the sink received during the measured window. At the end every client
//!   half-closes; once the sink has seen end of stream on every connection,
//!   the bytes received must equal the bytes sent (else: a mismatch error).
//!   The relay under test is started first with the sink's address as its
//!   upstream, e.g. `moonport run examples/tcp_proxy.lua 0 127.0.0.1:SINKPORT`;
//!   it only connects upstream when a client arrives, so the sink need only
//!   exist while this command runs.
//! - `serve-relay-compio`: a plain Rust relay on compio, thread-per-core with
//!   `SO_REUSEPORT` shards like `serve-compio`; per connection it connects
//!   upstream and copies both ways with owned buffers, passing end of stream
//!   on as a half-close.
//!
//! Loopback-only and bounded in time, as `echo`.

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::pin::pin;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::connect::{CONNECT_TIMEOUT, connect_all};
use clap::Args;
use compio::BufResult;
use compio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use compio::net::{TcpListener, TcpStream};
use futures_util::future::{Either, select};
use socket2::{Domain, Protocol, Socket, Type};

use crate::echo::driver_name;
use crate::report::{RunArgs, SharedNotes};

/// After the end of the run: how long the clients' writes may still be stuck,
/// and then how long the sink may wait for every end of stream.
const GRACE: Duration = Duration::from_secs(5);
/// Largest write / buffer size accepted.
const MAX_CHUNK: usize = 16 * 1024 * 1024;
/// The sink's read size.
const SINK_BUF: usize = 256 * 1024;
/// The sink's listen backlog.
const SINK_BACKLOG: i32 = 1024;
/// How long to wait for the sink port to be free (see [`bind_sink`]).
const SINK_BIND_WAIT: Duration = Duration::from_secs(5);

#[derive(Args, Debug)]
pub struct RelayArgs {
    /// The relay under test (loopback only).
    #[arg(long)]
    addr: String,
    /// Where this tool listens as the relay's upstream (loopback, a fixed
    /// port: the relay under test was started with this address).
    #[arg(long)]
    sink: String,
    /// Number of connections through the relay.
    #[arg(long, default_value_t = 4)]
    conns: usize,
    /// Bytes per client write.
    #[arg(long, default_value_t = 64 * 1024)]
    chunk: usize,
    /// `--threads` share the clients; the first one also runs the sink.
    #[command(flatten)]
    run: RunArgs,
}

/// Error counters.
#[derive(Debug, Default)]
struct Errors {
    connect: AtomicU64,
    /// Read/write failures (clients or sink).
    io: AtomicU64,
    /// Client writes still stuck after the grace period.
    timeout: AtomicU64,
    /// Sink connections without an end of stream within the grace period.
    unfinished: AtomicU64,
    /// Bytes received differ from bytes sent.
    mismatch: AtomicU64,
}

impl Errors {
    fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::SeqCst)
    }

    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::SeqCst);
    }

    fn total(&self) -> u64 {
        [&self.connect, &self.io, &self.timeout, &self.unfinished, &self.mismatch].into_iter().map(Self::get).sum()
    }
}

/// Shared by all threads of a `relay` run.
struct Shared {
    /// Bytes the sink received, all connections.
    received: AtomicU64,
    /// Bytes the clients wrote (complete writes only).
    sent: AtomicU64,
    /// Client connections established.
    connected: AtomicUsize,
    /// Sink connections that reached end of stream or failed.
    sink_done: AtomicUsize,
    /// Every thread and the main thread meet here once the clients connected.
    start: Barrier,
    errors: Errors,
    notes: SharedNotes,
}

#[derive(Clone, Copy)]
struct Plan {
    addr: SocketAddr,
    chunk: usize,
    warmup: Duration,
    duration: Duration,
}

pub fn run(args: RelayArgs) -> Result<ExitCode, String> {
    let addr = crate::target::resolve_loopback(&args.addr)?;
    let sink = crate::target::resolve_loopback(&args.sink)?;
    if addr == sink {
        return Err("--addr and --sink must differ".into());
    }
    if args.conns == 0 {
        return Err("--conns must be at least 1".into());
    }
    if args.chunk == 0 || args.chunk > MAX_CHUNK {
        return Err(format!("--chunk must be between 1 and {MAX_CHUNK} bytes"));
    }
    let (warmup, duration) = args.run.times()?;
    let threads = args.run.threads(usize::MAX);

    let mut sink_listener = Some(bind_sink(sink)?);
    let shared = Arc::new(Shared {
        received: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        connected: AtomicUsize::new(0),
        sink_done: AtomicUsize::new(0),
        start: Barrier::new(threads + 1),
        errors: Errors::default(),
        notes: SharedNotes::default(),
    });
    let plan = Plan { addr, chunk: args.chunk, warmup, duration };

    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        let ids: Vec<usize> = (t..args.conns).step_by(threads).collect();
        let listener = sink_listener.take();
        let shared = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name(format!("relay-{t}"))
            .spawn(move || load_thread(plan, ids, listener, &shared))
            .map_err(|e| format!("cannot spawn load thread: {e}"))?;
        handles.push(handle);
    }

    shared.start.wait();
    let window = crate::window::Window::new(Instant::now(), warmup, duration);
    let from = crate::cpu::sample_at(window.warm_end);
    let before = shared.received.load(Ordering::SeqCst);
    let to = crate::cpu::sample_at(window.end);
    let after = shared.received.load(Ordering::SeqCst);

    let mut driver = None;
    let mut failure = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok(d)) => driver = Some(d),
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some("a load thread panicked".into()),
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let connected = shared.connected.load(Ordering::SeqCst);
    if connected == 0 {
        let samples = shared.notes.take();
        return Err(format!(
            "could not connect to {addr}: {}",
            samples.first().map(String::as_str).unwrap_or("no connection")
        ));
    }
    let (sent, received) = (shared.sent.load(Ordering::SeqCst), shared.received.load(Ordering::SeqCst));
    let e = &shared.errors;
    // Only a run that ended cleanly can be held to an exact count.
    if e.total() == 0 && sent != received {
        Errors::bump(&e.mismatch);
        shared.notes.note(format!("the sink received {received} bytes but the clients sent {sent}"));
    }
    crate::report::show("relay", &shared.notes.take());

    let secs = duration.as_secs_f64();
    let bytes = after - before;
    let report = Report {
        addr,
        sink,
        driver: driver.map_or_else(|| "unknown".into(), driver_name),
        threads,
        conns: args.conns,
        connected,
        chunk: args.chunk,
        duration_s: secs,
        warmup_s: warmup.as_secs_f64(),
        bytes,
        mb_per_sec: bytes as f64 / 1e6 / secs,
        sent,
        received,
        load_cpu_pct: to.pct_since(&from),
    };
    if args.run.is_json() {
        println!("{}", report.json(e));
    } else {
        print!("{}", report.text(e));
    }
    Ok(if e.total() > 0 { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

/// Binds the sink: one listener, and deliberately without `SO_REUSEPORT`.
/// A previous run's listener can outlive its process for a moment (io_uring
/// releases the files of cancelled operations asynchronously after exit);
/// with `SO_REUSEPORT` this run would share the port with it, and the relay's
/// upstream connections that the kernel hands to the dying listener would be
/// reset. Without it, the bind waits until the old listener is gone.
fn bind_sink(addr: SocketAddr) -> Result<std::net::TcpListener, String> {
    let bind = || -> io::Result<std::net::TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(SINK_BACKLOG)?;
        Ok(socket.into())
    };
    let deadline = Instant::now() + SINK_BIND_WAIT;
    loop {
        match bind() {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(format!("cannot listen on the sink address {addr}: {e}")),
        }
    }
}

/// One load thread: its share of the clients and, on the first thread, the
/// sink (all upstream connections are read there).
fn load_thread(
    plan: Plan,
    ids: Vec<usize>,
    listener: Option<std::net::TcpListener>,
    shared: &Arc<Shared>,
) -> Result<compio::driver::DriverType, String> {
    let rt = compio::runtime::Runtime::new();
    let clients = match &rt {
        Ok(rt) => rt.block_on(async {
            match listener.map(TcpListener::from_std) {
                None => {}
                Some(Ok(l)) => {
                    compio::runtime::spawn(sink_accept(l, Arc::clone(shared))).detach();
                }
                Some(Err(e)) => {
                    Errors::bump(&shared.errors.io);
                    shared.notes.note(format!("cannot register the sink listener with compio: {e}"));
                }
            }
            connect_all(plan.addr, &ids, "conn", false, |failure| {
                Errors::bump(&shared.errors.connect);
                shared.notes.note(failure);
            })
            .await
        }),
        Err(_) => Vec::new(),
    };
    shared.connected.fetch_add(clients.len(), Ordering::SeqCst);
    // Always reach the barrier, even on failure, so no thread waits forever.
    shared.start.wait();
    let rt = rt.map_err(|e| format!("cannot create compio runtime: {e}"))?;
    let end = Instant::now() + plan.warmup + plan.duration;
    rt.block_on(async {
        let tasks: Vec<_> = clients
            .iter()
            .map(|(id, stream)| {
                let (id, stream, shared) = (*id, stream.clone(), Arc::clone(shared));
                compio::runtime::spawn(async move {
                    if compio::time::timeout_at(end + GRACE, push(stream, id, plan.chunk, end, &shared)).await.is_err()
                    {
                        Errors::bump(&shared.errors.timeout);
                        shared.notes.note(format!("conn {id}: write still stuck {GRACE:?} after the end of the run"));
                    }
                })
            })
            .collect();
        for task in tasks {
            if task.await.is_err() {
                Errors::bump(&shared.errors.io);
                shared.notes.note("a client task panicked".into());
            }
        }
        // Keep the sink (and the clients' sockets) up until every relayed
        // connection has ended, or the grace period is over.
        let deadline = Instant::now() + GRACE;
        let total = shared.connected.load(Ordering::SeqCst);
        while shared.sink_done.load(Ordering::SeqCst) < total {
            if Instant::now() >= deadline {
                let missing = total - shared.sink_done.load(Ordering::SeqCst).min(total);
                // Only one thread reports it.
                if shared.errors.unfinished.fetch_max(missing as u64, Ordering::SeqCst) == 0 {
                    shared.notes.note(format!(
                        "{missing} relayed connection(s) without end of stream at the sink {GRACE:?} after the clients finished"
                    ));
                }
                break;
            }
            compio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    drop(clients);
    Ok(rt.driver_type())
}

/// One client: write chunks until `end`, then half-close.
async fn push(mut stream: TcpStream, id: usize, chunk: usize, end: Instant, shared: &Shared) {
    let mut buf: Vec<u8> = (0..chunk).map(|i| (i.wrapping_mul(31) ^ id) as u8).collect();
    while Instant::now() < end {
        let BufResult(res, b) = stream.write_all(buf).await;
        buf = b;
        if let Err(e) = res {
            Errors::bump(&shared.errors.io);
            shared.notes.note(format!("conn {id}: write failed: {e}"));
            return;
        }
        shared.sent.fetch_add(chunk as u64, Ordering::SeqCst);
    }
    if let Err(e) = stream.shutdown().await {
        Errors::bump(&shared.errors.io);
        shared.notes.note(format!("conn {id}: shutdown failed: {e}"));
    }
}

async fn sink_accept(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => compio::runtime::spawn(sink(stream, Arc::clone(&shared))).detach(),
            Err(e) => {
                shared.notes.note(format!("sink: accept failed: {e}"));
                compio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Reads and discards until end of stream, counting the bytes.
async fn sink(mut stream: TcpStream, shared: Arc<Shared>) {
    let mut buf: Vec<u8> = Vec::with_capacity(SINK_BUF);
    loop {
        buf.clear();
        let BufResult(res, b) = stream.read(buf).await;
        buf = b;
        match res {
            Ok(0) => break,
            Ok(n) => {
                shared.received.fetch_add(n as u64, Ordering::SeqCst);
            }
            Err(e) => {
                Errors::bump(&shared.errors.io);
                shared.notes.note(format!("sink: read failed: {e}"));
                break;
            }
        }
    }
    shared.sink_done.fetch_add(1, Ordering::SeqCst);
}

struct Report {
    addr: SocketAddr,
    sink: SocketAddr,
    driver: String,
    threads: usize,
    conns: usize,
    connected: usize,
    chunk: usize,
    duration_s: f64,
    warmup_s: f64,
    bytes: u64,
    mb_per_sec: f64,
    sent: u64,
    received: u64,
    load_cpu_pct: Option<f64>,
}

impl Report {
    fn json(&self, e: &Errors) -> String {
        let mut s = String::with_capacity(512);
        let _ = write!(
            s,
            "{{\"mode\":\"relay\",\"addr\":\"{}\",\"sink\":\"{}\",\"driver\":\"{}\",\"threads\":{},\"conns\":{},\"connected\":{},\
             \"chunk\":{},\"duration_s\":{},\"warmup_s\":{},\"bytes\":{},\"mb_per_sec\":{:.3},\"sent\":{},\
             \"received\":{},\"load_cpu_pct\":{},\"errors\":{},\"connect_errors\":{},\"io_errors\":{},\"timeouts\":{},\
             \"unfinished\":{},\"mismatches\":{}}}",
            self.addr,
            self.sink,
            self.driver,
            self.threads,
            self.conns,
            self.connected,
            self.chunk,
            self.duration_s,
            self.warmup_s,
            self.bytes,
            self.mb_per_sec,
            self.sent,
            self.received,
            crate::cpu::json(self.load_cpu_pct),
            e.total(),
            Errors::get(&e.connect),
            Errors::get(&e.io),
            Errors::get(&e.timeout),
            Errors::get(&e.unfinished),
            Errors::get(&e.mismatch),
        );
        s
    }

    fn text(&self, e: &Errors) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "relay {} -> sink {}: {} conns ({} connected) on {} thread(s) ({} driver), {} B writes, \
             {} s measured after {} s warm-up",
            self.addr,
            self.sink,
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
            "  throughput: {:.2} MB/s through the relay ({} bytes in the window, 1 MB = 10^6 B)",
            self.mb_per_sec, self.bytes
        );
        let _ = writeln!(s, "  totals:     {} bytes sent, {} received by the sink", self.sent, self.received);
        s.push_str(&crate::cpu::text(self.load_cpu_pct));
        let _ = writeln!(
            s,
            "  errors:     {} (connect {}, io {}, timeout {}, unfinished {}, mismatch {})",
            e.total(),
            Errors::get(&e.connect),
            Errors::get(&e.io),
            Errors::get(&e.timeout),
            Errors::get(&e.unfinished),
            Errors::get(&e.mismatch),
        );
        s
    }
}

// --- serve-relay-compio --------------------------------------------------------

#[derive(Args, Debug)]
pub struct ServeRelayArgs {
    /// Address to listen on (port 0 picks a free port, shared by all threads).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// Where every connection is relayed to (loopback only).
    #[arg(long)]
    upstream: String,
    /// Number of threads, each with its own runtime and listener
    /// (default: number of cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Bytes per read, each direction of each connection.
    #[arg(long, default_value_t = 64 * 1024)]
    buf: usize,
}

pub fn serve(args: ServeRelayArgs) -> Result<ExitCode, String> {
    let upstream = crate::target::resolve_loopback(&args.upstream)?;
    let threads = args.threads.unwrap_or_else(crate::default_threads).max(1);
    if args.buf == 0 || args.buf > MAX_CHUNK {
        return Err(format!("--buf must be between 1 and {MAX_CHUNK} bytes"));
    }
    let first = crate::serve::bind_listener(args.addr).map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let local = first.local_addr().map_err(|e| format!("cannot read local address: {e}"))?;
    let mut listeners = vec![first];
    for _ in 1..threads {
        let l = crate::serve::bind_listener(local)
            .map_err(|e| format!("cannot bind another SO_REUSEPORT shard on {local}: {e}"))?;
        listeners.push(l);
    }
    let mut handles = Vec::with_capacity(threads);
    for (idx, listener) in listeners.into_iter().enumerate() {
        let buf = args.buf;
        let handle = std::thread::Builder::new()
            .name(format!("relay-{idx}"))
            .spawn(move || relay_thread(listener, upstream, buf))
            .map_err(|e| format!("cannot spawn relay thread: {e}"))?;
        handles.push(handle);
    }
    println!("listening on {local}");
    let _ = io::stdout().flush();
    eprintln!(
        "serve-relay-compio: {threads} thread(s), SO_REUSEPORT sharding, {} B buffers, upstream {upstream}",
        args.buf
    );
    Ok(crate::serve::join_threads("serve-relay-compio", handles))
}

fn relay_thread(listener: std::net::TcpListener, upstream: SocketAddr, buf: usize) -> Result<(), String> {
    let rt = compio::runtime::Runtime::new().map_err(|e| format!("cannot create compio runtime: {e}"))?;
    eprintln!(
        "serve-relay-compio: {} uses the {:?} driver",
        std::thread::current().name().unwrap_or("thread"),
        rt.driver_type()
    );
    rt.block_on(async move {
        let listener =
            TcpListener::from_std(listener).map_err(|e| format!("cannot register listener with compio: {e}"))?;
        loop {
            match listener.accept().await {
                Ok((client, _peer)) => compio::runtime::spawn(relay_conn(client, upstream, buf)).detach(),
                Err(e) => {
                    eprintln!("serve-relay-compio: accept failed: {e}");
                    compio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    })
}

/// One relayed connection: both directions until both reached end of stream,
/// or until either fails.
async fn relay_conn(client: TcpStream, upstream: SocketAddr, buf: usize) {
    let server = match compio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(upstream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            eprintln!("serve-relay-compio: upstream {upstream}: {e}");
            return;
        }
        Err(_) => {
            eprintln!("serve-relay-compio: upstream {upstream}: connect timed out");
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let forward = pin!(copy(&client, &server, buf));
    let backward = pin!(copy(&server, &client, buf));
    match select(forward, backward).await {
        Either::Left((Ok(()), rest)) => {
            let _ = rest.await;
        }
        Either::Right((Ok(()), rest)) => {
            let _ = rest.await;
        }
        // One direction failed: drop both connections.
        Either::Left((Err(_), _)) | Either::Right((Err(_), _)) => {}
    }
}

/// Copies `src` to `dst` with one owned buffer until end of stream, which it
/// passes on as a half-close.
async fn copy(mut src: &TcpStream, mut dst: &TcpStream, size: usize) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(size);
    loop {
        buf.clear();
        let BufResult(res, b) = src.read(buf).await;
        buf = b;
        if res? == 0 {
            return dst.shutdown().await;
        }
        let BufResult(res, b) = dst.write_all(buf).await;
        buf = b;
        res?;
    }
}
