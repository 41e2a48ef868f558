//! `fanout`: one publisher, N viewers, through a broadcast server that speaks
//! the protocol of `examples/broadcast.lua`.
//!
//! Wire format (both ports): a frame is a 4-byte big-endian length, then that
//! many payload bytes. The publisher's frames go unchanged to every viewer. A
//! zero-length frame from the publisher is not broadcast: the server answers
//! it with the number of viewers (4 bytes, big-endian).
//!
//! Every payload starts with the message's sequence number, its send time
//! (nanoseconds since the tool started) and a tag unique to the run (three
//! little-endian u64) and, when there is room, ends with the sequence number
//! again, so a viewer measures the lag from send to receipt, sees gaps
//! (messages the server dropped for it, e.g. by the `drop_oldest` policy:
//! expected under overload, and reported, not errors), reordering and torn
//! frames, and skips frames of an earlier run that the server may still be
//! draining from its socket buffers (counted as `stale`).
//!
//! Sequence of a run: the viewers connect (thread-per-core, one compio runtime
//! per thread); the publisher connects and asks for the viewer count until the
//! server reports every connected viewer; then it publishes as fast as the
//! server reads (TCP backpressure is the only pacing), batching small messages
//! into writes of about 64 KiB, for the warm-up plus the measured duration.
//! Messages delivered during the measured window are counted, summed over the
//! viewers. Bounded in time and loopback-only, as `echo`.
//!
//! For more viewers than one process may hold open (and a server of several
//! processes: a cluster), the run splits over processes: `--role viewers`
//! processes each connect their share (from 127.0.0.x source addresses with
//! `--sources`), `--role publisher` publishes, and all of them start at the
//! wall-clock instant `--start-at`, which also stamps the messages, so a
//! viewer measures lag against the publisher of another process. `--rate`
//! paces the publisher (messages per second) instead of publishing as fast
//! as the server reads. The script that starts them adds the reports up
//! (bench/cluster).

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use crate::connect::{CONNECT_BATCH, CONNECT_TIMEOUT, connect_from};
use clap::Args;
use compio::BufResult;
use compio::buf::{IntoInner, IoBuf};
use compio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use compio::net::TcpStream;
use hdrhistogram::Histogram;

use crate::echo::{driver_name, new_histogram, seconds};
use crate::report::{Latency, Notes, RunArgs};
use crate::window::Window;

/// Largest payload accepted (the broadcast example refuses frames > 16 MiB).
const MAX_SIZE: usize = 16 * 1024 * 1024;
/// Smallest payload: sequence number, timestamp and run tag.
const MIN_SIZE: usize = 24;
/// Payloads at least this long also carry the sequence number at their end.
const TAIL_MIN_SIZE: usize = 32;
/// Small messages are batched into writes of about this many bytes.
const BATCH_BYTES: usize = 64 * 1024;
/// Run tag of the frames sent to flush out viewers of an earlier run that
/// the server still counts; viewers skip them (real runs never use 0).
const PURGE_TAG: u64 = 0;
/// Pause between viewer-count queries while waiting for the viewers.
const POLL: Duration = Duration::from_millis(20);

#[derive(Args, Debug)]
pub struct FanoutArgs {
    /// Viewer port of the broadcast server (loopback only).
    #[arg(long)]
    viewer_addr: String,
    /// Publisher port of the broadcast server (loopback only).
    #[arg(long)]
    pub_addr: String,
    /// Number of viewers.
    #[arg(long, default_value_t = 100)]
    viewers: usize,
    /// Payload bytes per message (the 4-byte length prefix comes on top).
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// How long to wait for the server to report every viewer, in seconds.
    #[arg(long, default_value_t = 30.0)]
    ready_timeout: f64,
    /// Bytes each viewer read asks for.
    #[arg(long, default_value_t = 64 * 1024)]
    read_buffer: usize,
    /// Messages per second the publisher sends, one at a time (0: as fast
    /// as the server reads, in batches).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// What this process does: "all" (viewers and publisher), "viewers" or
    /// "publisher" (a run split over processes; needs --start-at).
    #[arg(long, default_value = "all")]
    role: String,
    /// Wall-clock start of a split run, in seconds since the Unix epoch:
    /// every process of the run starts its warm-up then.
    #[arg(long)]
    start_at: Option<f64>,
    /// Viewers connect from this many source addresses, 127.0.0.2 and up
    /// (0: the kernel picks 127.0.0.1).
    #[arg(long, default_value_t = 0)]
    sources: u32,
    /// `--threads` are the viewers' threads; the publisher has one more.
    #[command(flatten)]
    run: RunArgs,
}

/// Error counters, per thread and then summed.
#[derive(Debug, Default, Clone, Copy)]
struct Errors {
    /// Connection attempts that failed or timed out.
    connect: u64,
    /// Read/write failures on an established connection.
    io: u64,
    /// Server closed a viewer (or the publisher) during the run.
    closed: u64,
    /// Frames of the wrong length, or torn (head and tail disagree).
    mismatch: u64,
    /// Frames older than one already received by the same viewer.
    reorder: u64,
    /// Tasks that panicked.
    panic: u64,
}

impl Errors {
    fn total(&self) -> u64 {
        self.connect + self.io + self.closed + self.mismatch + self.reorder + self.panic
    }

    fn add(&mut self, o: &Errors) {
        self.connect += o.connect;
        self.io += o.io;
        self.closed += o.closed;
        self.mismatch += o.mismatch;
        self.reorder += o.reorder;
        self.panic += o.panic;
    }
}

/// Run parameters shared by every thread.
#[derive(Clone, Copy)]
struct Plan {
    viewer_addr: SocketAddr,
    pub_addr: SocketAddr,
    size: usize,
    read_buffer: usize,
    warmup: Duration,
    duration: Duration,
    ready_timeout: Duration,
    /// Messages per second, or 0 for as fast as the server reads.
    rate: f64,
    sources: u32,
    /// A split run: the viewer count cannot be asked for, the window starts
    /// at `base`.
    split: bool,
    /// Timestamps are nanoseconds since this instant (in a split run, the
    /// `--start-at` instant, which every process of the run agrees on).
    base: Instant,
    /// Marks this run's messages (never [`PURGE_TAG`]).
    tag: u64,
}

impl Plan {
    fn ns(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Shared between the threads while the run is set up.
struct Sync {
    /// Viewer threads and the publisher thread meet here once all viewers
    /// have connected (or failed to).
    connected: Barrier,
    /// Viewers that connected, over all threads.
    viewers: AtomicUsize,
    /// The publisher sets the window (or leaves it `None` on failure), then
    /// everybody (the main thread too) meets here again.
    start: Barrier,
    /// The time frame of the run, fixed by the publisher once every viewer is in.
    window: Mutex<Option<Window>>,
}

/// State shared by the viewer tasks of one thread (single-threaded).
struct Shared {
    hist: RefCell<Histogram<u64>>,
    delivered: Cell<u64>,
    gaps: Cell<u64>,
    stale: Cell<u64>,
    per_viewer: RefCell<Vec<u64>>,
    errors: RefCell<Errors>,
    notes: Notes,
}

impl Shared {
    fn new() -> Self {
        Self {
            hist: RefCell::new(new_histogram()),
            delivered: Cell::new(0),
            gaps: Cell::new(0),
            stale: Cell::new(0),
            per_viewer: RefCell::new(Vec::new()),
            errors: RefCell::new(Errors::default()),
            notes: Notes::default(),
        }
    }
}

/// What one viewer thread hands back.
struct ViewerResult {
    driver: Option<compio::driver::DriverType>,
    hist: Histogram<u64>,
    delivered: u64,
    gaps: u64,
    stale: u64,
    per_viewer: Vec<u64>,
    connected: usize,
    errors: Errors,
    samples: Vec<String>,
}

/// What the publisher thread hands back.
struct PubResult {
    /// Messages sent during the measured window.
    published: u64,
    errors: Errors,
    samples: Vec<String>,
    /// Why the run could not start, if it could not.
    failure: Option<String>,
}

pub fn run(args: FanoutArgs) -> Result<ExitCode, String> {
    let viewer_addr = crate::target::resolve_loopback(&args.viewer_addr)?;
    let pub_addr = crate::target::resolve_loopback(&args.pub_addr)?;
    if args.viewers == 0 {
        return Err("--viewers must be at least 1".into());
    }
    if !(MIN_SIZE..=MAX_SIZE).contains(&args.size) {
        return Err(format!("--size must be between {MIN_SIZE} and {MAX_SIZE} bytes"));
    }
    if !(512..=MAX_SIZE).contains(&args.read_buffer) {
        return Err(format!("--read-buffer must be between 512 and {MAX_SIZE} bytes"));
    }
    let (warmup, duration) = args.run.times()?;
    let ready_timeout = seconds("--ready-timeout", args.ready_timeout, false)?;
    if !(args.rate.is_finite() && args.rate >= 0.0) {
        return Err("--rate must be a number of messages per second >= 0".into());
    }
    let (viewers_here, publisher_here) = match args.role.as_str() {
        "all" => (true, true),
        "viewers" => (true, false),
        "publisher" => (false, true),
        other => return Err(format!("--role must be all, viewers or publisher (got {other:?})")),
    };
    let split = !(viewers_here && publisher_here);
    let (base, tag) = match (split, args.start_at) {
        (false, _) => (Instant::now(), run_tag()),
        (true, None) => return Err("--role viewers / publisher needs --start-at".into()),
        (true, Some(at)) => start_instant(at)?,
    };
    let threads = if viewers_here { args.run.threads(args.viewers) } else { 0 };

    let plan = Plan {
        viewer_addr,
        pub_addr,
        size: args.size,
        read_buffer: args.read_buffer,
        warmup,
        duration,
        ready_timeout,
        rate: args.rate,
        sources: args.sources,
        split,
        base,
        tag,
    };
    let sync = Arc::new(Sync {
        connected: Barrier::new(threads + 1),
        viewers: AtomicUsize::new(0),
        start: Barrier::new(threads + 2),
        window: Mutex::new(None),
    });

    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        // Viewer i goes to thread i % threads.
        let ids: Vec<usize> = (t..args.viewers).step_by(threads).collect();
        let sync = Arc::clone(&sync);
        let handle = std::thread::Builder::new()
            .name(format!("viewers-{t}"))
            .spawn(move || viewer_thread(plan, ids, &sync))
            .map_err(|e| format!("cannot spawn viewer thread: {e}"))?;
        handles.push(handle);
    }
    let publisher = {
        let sync = Arc::clone(&sync);
        std::thread::Builder::new()
            .name("publisher".into())
            .spawn(move || if publisher_here { publisher_thread(plan, &sync) } else { clock_thread(plan, &sync) })
            .map_err(|e| format!("cannot spawn publisher thread: {e}"))?
    };

    // The main thread only measures the generator's CPU use over the window.
    sync.start.wait();
    let window = *sync.window.lock().unwrap_or_else(|p| p.into_inner());
    let load_cpu_pct = window.and_then(|w| w.cpu_pct());

    let mut hist = new_histogram();
    let (mut delivered, mut gaps, mut stale, mut connected) = (0u64, 0u64, 0u64, 0usize);
    let mut per_viewer = Vec::with_capacity(args.viewers);
    let mut errors = Errors::default();
    let mut samples = Vec::new();
    let mut driver = None;
    let mut thread_failure = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok(r)) => {
                hist.add(&r.hist).map_err(|e| format!("cannot merge histograms: {e}"))?;
                delivered += r.delivered;
                gaps += r.gaps;
                stale += r.stale;
                connected += r.connected;
                per_viewer.extend(r.per_viewer);
                errors.add(&r.errors);
                samples.extend(r.samples);
                driver = driver.or(r.driver);
            }
            Ok(Err(e)) => thread_failure = Some(e),
            Err(_) => thread_failure = Some("a viewer thread panicked".into()),
        }
    }
    let p = publisher.join().map_err(|_| "the publisher thread panicked".to_string())?;
    errors.add(&p.errors);
    samples.extend(p.samples);
    if let Some(e) = thread_failure {
        return Err(e);
    }
    if connected == 0 && viewers_here {
        return Err(format!(
            "no viewer could connect to {viewer_addr}: {}",
            samples.first().map(String::as_str).unwrap_or("no connection")
        ));
    }
    if let Some(why) = p.failure {
        crate::report::show("fanout", &samples);
        return Err(why);
    }
    crate::report::show("fanout", &samples);

    let secs = duration.as_secs_f64();
    let expected = p.published as f64 * connected as f64;
    let report = Report {
        viewer_addr,
        pub_addr,
        driver: driver.map_or_else(|| "unknown".into(), driver_name),
        threads,
        viewers: args.viewers,
        connected,
        size: args.size,
        duration_s: secs,
        warmup_s: warmup.as_secs_f64(),
        published: p.published,
        published_per_sec: p.published as f64 / secs,
        delivered,
        msgs_per_sec: delivered as f64 / secs,
        mb_per_sec: delivered as f64 * args.size as f64 / 1e6 / secs,
        delivery_ratio: if expected > 0.0 { delivered as f64 / expected } else { 0.0 },
        min_viewer: per_viewer.iter().copied().min().unwrap_or(0),
        max_viewer: per_viewer.iter().copied().max().unwrap_or(0),
        gaps,
        stale,
        lag: Latency::of(&hist),
        load_cpu_pct,
        errors,
    };
    Ok(crate::report::print(&args.run, &report))
}

/// The instant of `--start-at` (Unix seconds) on this process's monotonic
/// clock, and the run tag every process of a split run derives from it.
fn start_instant(at: f64) -> Result<(Instant, u64), String> {
    let now_wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| "the system clock is before 1970".to_string())?
        .as_secs_f64();
    if !at.is_finite() || (at - now_wall).abs() > 3600.0 {
        return Err(format!("--start-at {at} is not within an hour of now ({now_wall:.0})"));
    }
    let now = Instant::now();
    let base = if at >= now_wall {
        now + Duration::from_secs_f64(at - now_wall)
    } else {
        now.checked_sub(Duration::from_secs_f64(now_wall - at)).unwrap_or(now)
    };
    Ok((base, ((at * 1e9) as u64) | 1))
}

/// Stands in for the publisher in a `--role viewers` process: reports the
/// viewers connected, then opens the window at `--start-at`.
fn clock_thread(plan: Plan, sync: &Sync) -> PubResult {
    sync.connected.wait();
    let late = Instant::now().saturating_duration_since(plan.base);
    eprintln!("fanout: {} viewers connected", sync.viewers.load(Ordering::SeqCst));
    if !late.is_zero() {
        eprintln!("fanout: the viewers connected {late:.1?} after --start-at: the warm-up was that much shorter");
    }
    let wait = plan.base.saturating_duration_since(Instant::now());
    std::thread::sleep(wait);
    *sync.window.lock().unwrap_or_else(|p| p.into_inner()) = Some(Window::new(plan.base, plan.warmup, plan.duration));
    sync.start.wait();
    PubResult { published: 0, errors: Errors::default(), samples: Vec::new(), failure: None }
}

/// A tag that another run (earlier, or of another process) is unlikely to use.
fn run_tag() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    (nanos ^ (u64::from(std::process::id()) << 40)) | 1
}

/// Body of one viewer thread: connect its share, wait for the publisher to
/// start the run, receive until its end.
fn viewer_thread(plan: Plan, ids: Vec<usize>, sync: &Sync) -> Result<ViewerResult, String> {
    let shared = Rc::new(Shared::new());
    let rt = compio::runtime::Runtime::new();
    let streams = match &rt {
        // A batch at a time: a burst of thousands of SYNs would overflow
        // the server's accept queue (see connect::CONNECT_BATCH).
        Ok(rt) => rt.block_on(async {
            let mut streams = Vec::with_capacity(ids.len());
            for batch in ids.chunks(CONNECT_BATCH) {
                streams.extend(
                    connect_from(plan.viewer_addr, batch, "viewer", false, plan.sources, |failure| {
                        shared.errors.borrow_mut().connect += 1;
                        shared.notes.note(failure);
                    })
                    .await,
                );
            }
            streams
        }),
        Err(_) => Vec::new(),
    };
    sync.viewers.fetch_add(streams.len(), Ordering::SeqCst);
    // Always reach both barriers, even on failure, so no thread waits forever.
    sync.connected.wait();
    sync.start.wait();
    let rt = rt.map_err(|e| format!("cannot create compio runtime: {e}"))?;
    let connected = streams.len();
    let window = *sync.window.lock().unwrap_or_else(|p| p.into_inner());

    if let Some(window) = window {
        rt.block_on(async {
            let mut tasks = Vec::with_capacity(streams.len());
            for (id, stream) in streams {
                let shared = Rc::clone(&shared);
                tasks.push(compio::runtime::spawn(async move {
                    let count = Cell::new(0u64);
                    let _ = compio::time::timeout_at(window.end, view(stream, id, plan, window, &count, &shared)).await;
                    shared.per_viewer.borrow_mut().push(count.get());
                }));
            }
            for task in tasks {
                if task.await.is_err() {
                    shared.errors.borrow_mut().panic += 1;
                    shared.notes.note("a viewer task panicked".into());
                }
            }
        });
    }

    let shared = Rc::try_unwrap(shared).map_err(|_| "viewer tasks still hold shared state".to_string())?;
    Ok(ViewerResult {
        driver: Some(rt.driver_type()),
        hist: shared.hist.into_inner(),
        delivered: shared.delivered.get(),
        gaps: shared.gaps.get(),
        stale: shared.stale.get(),
        per_viewer: shared.per_viewer.into_inner(),
        connected,
        errors: shared.errors.into_inner(),
        samples: shared.notes.take(),
    })
}

/// A complete frame as a viewer saw it (only the parts that matter).
struct Frame {
    len: usize,
    seq: u64,
    sent_ns: u64,
    tag: u64,
    /// The sequence number at the end of the payload, if the payload has one.
    tail_seq: Option<u64>,
}

/// Streaming frame decoder that keeps only the head and tail of each
/// payload, so a viewer needs no buffer the size of a message.
#[derive(Default)]
struct Decoder {
    header: [u8; 4],
    header_len: usize,
    len: usize,
    pos: usize,
    head: [u8; MIN_SIZE],
    tail: [u8; 8],
}

impl Decoder {
    /// Feeds received bytes; calls `done` for every frame they complete.
    /// Returns an error for a length no server of this protocol sends.
    fn feed(&mut self, mut data: &[u8], mut done: impl FnMut(Frame)) -> Result<(), String> {
        while !data.is_empty() {
            if self.header_len < 4 {
                let n = (4 - self.header_len).min(data.len());
                self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
                self.header_len += n;
                data = &data[n..];
                if self.header_len == 4 {
                    self.len = u32::from_be_bytes(self.header) as usize;
                    self.pos = 0;
                    if self.len == 0 || self.len > MAX_SIZE {
                        return Err(format!("frame length {} out of range", self.len));
                    }
                }
                continue;
            }
            let n = (self.len - self.pos).min(data.len());
            let (pos, end) = (self.pos, self.pos + n);
            // Head: payload bytes 0..MIN_SIZE.
            if pos < MIN_SIZE {
                let hi = end.min(MIN_SIZE);
                self.head[pos..hi].copy_from_slice(&data[..hi - pos]);
            }
            // Tail: the last 8 payload bytes.
            let tail_start = self.len.saturating_sub(8);
            let lo = pos.max(tail_start);
            if lo < end {
                self.tail[lo - tail_start..end - tail_start].copy_from_slice(&data[lo - pos..n]);
            }
            self.pos = end;
            data = &data[n..];
            if self.pos == self.len {
                self.header_len = 0;
                let word = |i: usize| {
                    let b = self.head.get(i..i + 8).and_then(|b| b.try_into().ok()).unwrap_or([0; 8]);
                    if self.len >= i + 8 { u64::from_le_bytes(b) } else { 0 }
                };
                done(Frame {
                    len: self.len,
                    seq: word(0),
                    sent_ns: word(8),
                    tag: word(16),
                    tail_seq: (self.len >= TAIL_MIN_SIZE).then(|| u64::from_le_bytes(self.tail)),
                });
            }
        }
        Ok(())
    }
}

/// One viewer: read frames until the end of the window (the caller cuts it
/// off there), check them, and count what arrived during the window.
async fn view(mut stream: TcpStream, id: usize, plan: Plan, window: Window, count: &Cell<u64>, shared: &Shared) {
    let mut buf: Vec<u8> = Vec::with_capacity(plan.read_buffer);
    let mut decoder = Decoder::default();
    let mut next_seq: u64 = 0;
    loop {
        buf.clear();
        let BufResult(res, b) = stream.read(buf).await;
        buf = b;
        match res {
            Ok(0) => {
                shared.errors.borrow_mut().closed += 1;
                shared.notes.note(format!("viewer {id}: server closed the connection during the run"));
                return;
            }
            Ok(_) => {}
            Err(e) => {
                shared.errors.borrow_mut().io += 1;
                shared.notes.note(format!("viewer {id}: read failed: {e}"));
                return;
            }
        }
        let now = Instant::now();
        let counting = now >= window.warm_end;
        let now_ns = plan.ns(now);
        let fed = decoder.feed(&buf, |f| {
            if f.len >= MIN_SIZE && f.tag != plan.tag {
                // A flush frame, or a message of an earlier run.
                shared.stale.set(shared.stale.get() + 1);
                return;
            }
            if f.len != plan.size || f.tail_seq.is_some_and(|t| t != f.seq) {
                let mut errs = shared.errors.borrow_mut();
                errs.mismatch += 1;
                if errs.mismatch == 1 {
                    drop(errs);
                    shared.notes.note(format!(
                        "viewer {id}: bad frame ({} B, seq {}, tail seq {:?}; expected {} B with equal seqs)",
                        f.len, f.seq, f.tail_seq, plan.size
                    ));
                }
                return;
            }
            if f.seq < next_seq {
                let mut errs = shared.errors.borrow_mut();
                errs.reorder += 1;
                if errs.reorder == 1 {
                    drop(errs);
                    shared.notes.note(format!("viewer {id}: message #{} after #{}", f.seq, next_seq - 1));
                }
                return;
            }
            if counting {
                shared.gaps.set(shared.gaps.get() + (f.seq - next_seq));
                shared.delivered.set(shared.delivered.get() + 1);
                count.set(count.get() + 1);
                shared.hist.borrow_mut().saturating_record(now_ns.saturating_sub(f.sent_ns).max(1));
            }
            next_seq = f.seq + 1;
        });
        if let Err(e) = fed {
            shared.errors.borrow_mut().mismatch += 1;
            shared.notes.note(format!("viewer {id}: {e}; giving up on this viewer"));
            return;
        }
    }
}

/// Body of the publisher thread: once the viewers are connected, wait until
/// the server counts them all, fix the window, then publish until its end.
fn publisher_thread(plan: Plan, sync: &Sync) -> PubResult {
    let mut out = PubResult { published: 0, errors: Errors::default(), samples: Vec::new(), failure: None };
    sync.connected.wait();
    let expected = sync.viewers.load(Ordering::SeqCst);
    let rt = match compio::runtime::Runtime::new() {
        Ok(rt) => Ok(rt),
        Err(e) => Err(format!("cannot create compio runtime: {e}")),
    };
    let ready = match &rt {
        Err(e) => Err(e.clone()),
        // Split: the viewers are other processes'; the run starts on the clock.
        Ok(rt) if plan.split => rt.block_on(connect_publisher(plan)),
        Ok(_) if expected == 0 => Err("no viewer connected".to_string()),
        Ok(rt) => rt.block_on(get_ready(plan, expected)),
    };
    let stream = match ready {
        Ok(stream) => {
            if plan.split {
                std::thread::sleep(plan.base.saturating_duration_since(Instant::now()));
            }
            let window = Window::new(Instant::now(), plan.warmup, plan.duration);
            *sync.window.lock().unwrap_or_else(|p| p.into_inner()) = Some(window);
            Some((stream, window))
        }
        Err(e) => {
            out.failure = Some(e);
            None
        }
    };
    // Always reach the barrier, so the viewer threads never wait forever.
    sync.start.wait();
    let (Ok(rt), Some((stream, window))) = (rt, stream) else { return out };
    rt.block_on(async {
        let published = Cell::new(0u64);
        let run = publish(stream, plan, window, &published);
        match compio::time::timeout_at(window.end, run).await {
            // Cut off at the end of the window: the normal way out.
            Err(_) => {}
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                if e.kind() == io::ErrorKind::UnexpectedEof || e.kind() == io::ErrorKind::BrokenPipe {
                    out.errors.closed += 1;
                } else {
                    out.errors.io += 1;
                }
                out.samples.push(format!("publisher: write failed: {e}"));
            }
        }
        out.published = published.get();
    });
    out
}

/// Connects the publisher.
async fn connect_publisher(plan: Plan) -> Result<TcpStream, String> {
    let addr = plan.pub_addr;
    match compio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => Err(format!("publisher: connect to {addr} failed: {e}")),
        Err(_) => Err(format!("publisher: connect to {addr} timed out after {CONNECT_TIMEOUT:?}")),
    }
}

/// Connects the publisher and asks for the viewer count until the server
/// reports `expected`. Viewers left over from an earlier run are only noticed
/// by the server when it next writes to them, so while the count is too high
/// it publishes small flush frames (which viewers skip) to clear them out.
async fn get_ready(plan: Plan, expected: usize) -> Result<TcpStream, String> {
    let mut stream = connect_publisher(plan).await?;
    let deadline = Instant::now() + plan.ready_timeout;
    let mut purge = Vec::with_capacity(4 + MIN_SIZE);
    purge.extend_from_slice(&(MIN_SIZE as u32).to_be_bytes());
    purge.extend_from_slice(&[0u8; MIN_SIZE - 8]);
    purge.extend_from_slice(&PURGE_TAG.to_le_bytes());
    let mut last = None;
    loop {
        let count = match compio::time::timeout_at(deadline, viewer_count(&mut stream)).await {
            Ok(Ok(n)) => n as usize,
            Ok(Err(e)) => return Err(format!("publisher: viewer-count query failed: {e}")),
            Err(_) => break,
        };
        last = Some(count);
        if count == expected {
            return Ok(stream);
        }
        if count > expected {
            let BufResult(res, b) = stream.write_all(purge).await;
            purge = b;
            if let Err(e) = res {
                return Err(format!("publisher: write failed: {e}"));
            }
        }
        if Instant::now() + POLL >= deadline {
            break;
        }
        compio::time::sleep(POLL).await;
    }
    Err(format!(
        "the server reported {} viewer(s), not the {expected} connected, within {:?}",
        last.map_or_else(|| "no".to_string(), |n| n.to_string()),
        plan.ready_timeout
    ))
}

/// Sends a zero-length frame and reads the viewer count the server answers.
async fn viewer_count(stream: &mut TcpStream) -> io::Result<u32> {
    let BufResult(res, _) = stream.write_all(vec![0u8; 4]).await;
    res?;
    let BufResult(res, buf) = stream.read_exact(Vec::with_capacity(4).slice(..4)).await;
    res?;
    let buf = buf.into_inner();
    let bytes: [u8; 4] = buf[..].try_into().map_err(|_| io::Error::other("short count reply"))?;
    Ok(u32::from_be_bytes(bytes))
}

/// Publishes until cut off, as fast as the server takes the bytes, or one
/// message at a time at `plan.rate`. Messages whose write started in the
/// measured window and completed are counted.
async fn publish(mut stream: TcpStream, plan: Plan, window: Window, published: &Cell<u64>) -> io::Result<()> {
    let frame = 4 + plan.size;
    let per_batch = if plan.rate > 0.0 { 1 } else { (BATCH_BYTES / frame).max(1) };
    let start = Instant::now();
    let mut batch: Vec<u8> = (0..per_batch * frame).map(|i| (i % 251) as u8).collect();
    for k in 0..per_batch {
        batch[k * frame..k * frame + 4].copy_from_slice(&(plan.size as u32).to_be_bytes());
    }
    let mut seq: u64 = 0;
    loop {
        if plan.rate > 0.0 {
            compio::time::sleep_until(start + Duration::from_secs_f64(seq as f64 / plan.rate)).await;
        }
        let now = Instant::now();
        let ts = plan.ns(now);
        for k in 0..per_batch {
            let p = &mut batch[k * frame + 4..(k + 1) * frame];
            p[..8].copy_from_slice(&seq.to_le_bytes());
            p[8..16].copy_from_slice(&ts.to_le_bytes());
            p[16..24].copy_from_slice(&plan.tag.to_le_bytes());
            if plan.size >= TAIL_MIN_SIZE {
                p[plan.size - 8..].copy_from_slice(&seq.to_le_bytes());
            }
            seq += 1;
        }
        let BufResult(res, b) = stream.write_all(batch).await;
        batch = b;
        res?;
        if now >= window.warm_end {
            published.set(published.get() + per_batch as u64);
        }
    }
}

/// Final figures of a run.
struct Report {
    viewer_addr: SocketAddr,
    pub_addr: SocketAddr,
    driver: String,
    threads: usize,
    viewers: usize,
    connected: usize,
    size: usize,
    duration_s: f64,
    warmup_s: f64,
    published: u64,
    published_per_sec: f64,
    delivered: u64,
    msgs_per_sec: f64,
    mb_per_sec: f64,
    delivery_ratio: f64,
    min_viewer: u64,
    max_viewer: u64,
    gaps: u64,
    stale: u64,
    /// Publisher send to viewer receipt.
    lag: Latency,
    load_cpu_pct: Option<f64>,
    errors: Errors,
}

impl crate::report::Report for Report {
    fn errors(&self) -> u64 {
        self.errors.total()
    }

    fn json(&self) -> String {
        let e = &self.errors;
        let mut s = String::with_capacity(768);
        let _ = write!(
            s,
            "{{\"mode\":\"fanout\",\"viewer_addr\":\"{}\",\"pub_addr\":\"{}\",\"driver\":\"{}\",\"threads\":{},\"viewers\":{},\
             \"connected\":{},\"size\":{},\"duration_s\":{},\"warmup_s\":{},\"published\":{},\
             \"published_per_sec\":{:.1},\"delivered\":{},\"msgs_per_sec\":{:.1},\"mb_per_sec\":{:.3},\
             \"delivery_ratio\":{:.4},\"min_viewer_msgs\":{},\"max_viewer_msgs\":{},\"gaps\":{},\"stale\":{},\
             {},\"load_cpu_pct\":{},\"errors\":{},\
             \"connect_errors\":{},\"io_errors\":{},\"closed\":{},\"mismatches\":{},\"reordered\":{},\
             \"panics\":{}}}",
            self.viewer_addr,
            self.pub_addr,
            self.driver,
            self.threads,
            self.viewers,
            self.connected,
            self.size,
            self.duration_s,
            self.warmup_s,
            self.published,
            self.published_per_sec,
            self.delivered,
            self.msgs_per_sec,
            self.mb_per_sec,
            self.delivery_ratio,
            self.min_viewer,
            self.max_viewer,
            self.gaps,
            self.stale,
            self.lag.json(),
            crate::cpu::json(self.load_cpu_pct),
            e.total(),
            e.connect,
            e.io,
            e.closed,
            e.mismatch,
            e.reorder,
            e.panic,
        );
        s
    }

    fn text(&self) -> String {
        let e = &self.errors;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "fanout: publisher {}, viewers {}: {} viewers ({} connected) on {} thread(s) ({} driver), \
             {} B messages, {} s measured after {} s warm-up",
            self.pub_addr,
            self.viewer_addr,
            self.viewers,
            self.connected,
            self.threads,
            self.driver,
            self.size,
            self.duration_s,
            self.warmup_s
        );
        let _ = writeln!(s, "  published:  {} ({:.0} msg/s)", self.published, self.published_per_sec);
        let _ = writeln!(
            s,
            "  delivered:  {} ({:.0} msg/s summed over viewers, {:.2} MB/s of payload, 1 MB = 10^6 B)",
            self.delivered, self.msgs_per_sec, self.mb_per_sec
        );
        let _ = writeln!(
            s,
            "              per viewer: min {}, max {}; delivered / (published x viewers) = {:.3}",
            self.min_viewer, self.max_viewer, self.delivery_ratio
        );
        let _ = writeln!(s, "  lag:        {} (publisher send -> viewer receipt)", self.lag.text());
        let _ = writeln!(
            s,
            "  gaps:       {} messages missed by viewers (dropped by the server's queue policy); \
             {} stale frames (earlier runs, flushes) skipped",
            self.gaps, self.stale
        );
        s.push_str(&crate::cpu::text(self.load_cpu_pct));
        let _ = writeln!(
            s,
            "  errors:     {} (connect {}, io {}, closed {}, mismatch {}, reordered {}, panic {})",
            e.total(),
            e.connect,
            e.io,
            e.closed,
            e.mismatch,
            e.reorder,
            e.panic
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::{Decoder, Frame};

    fn frame(seq: u64, size: usize) -> Vec<u8> {
        let mut f = (size as u32).to_be_bytes().to_vec();
        let mut p: Vec<u8> = (0..size).map(|i| i as u8).collect();
        p[..8].copy_from_slice(&seq.to_le_bytes());
        p[8..16].copy_from_slice(&(seq * 10).to_le_bytes());
        p[16..24].copy_from_slice(&7u64.to_le_bytes());
        if size >= 32 {
            p[size - 8..].copy_from_slice(&seq.to_le_bytes());
        }
        f.extend(p);
        f
    }

    #[test]
    fn decodes_frames_split_anywhere() {
        for size in [24, 31, 32, 33, 1024] {
            let mut wire = Vec::new();
            for seq in 0..5 {
                wire.extend(frame(seq, size));
            }
            for chunk in [1, 3, 7, 16, 1000, wire.len()] {
                let mut d = Decoder::default();
                let mut got: Vec<(usize, u64, u64, u64, Option<u64>)> = Vec::new();
                for part in wire.chunks(chunk) {
                    d.feed(part, |f: Frame| got.push((f.len, f.seq, f.sent_ns, f.tag, f.tail_seq))).unwrap();
                }
                let want: Vec<_> =
                    (0..5).map(|s| (size, s, s * 10, 7, if size >= 32 { Some(s) } else { None })).collect();
                assert_eq!(got, want, "size {size}, chunk {chunk}");
            }
        }
    }

    #[test]
    fn refuses_zero_length() {
        let mut d = Decoder::default();
        assert!(d.feed(&[0, 0, 0, 0], |_| {}).is_err());
    }
}
