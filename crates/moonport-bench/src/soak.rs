//! `soak`: steady connection churn with a mix of work against the soak app
//! (`bench/soak.lua`), for bench/soak's long runs that watch the server's
//! memory and descriptors.
//!
//! Cycles start at a steady `--rate` (not as fast as the server goes: a soak
//! looks for growth over time, not for a peak), spread over `--concurrency`
//! tasks; cycle `k` is due at `k / rate` seconds and a late task runs its
//! next one at once. Cycle `k` does what `KINDS[k % KINDS.len()]` says:
//!
//! - `echo`: connect, three `ECHO` requests of varying sizes and a `VER`,
//!   close;
//! - `error`: one `ECHO`, then `ERR`, on which the app raises a Lua error:
//!   the connection must end (end of stream or reset) with no reply;
//! - `task_error`: `TERR` (a task the app spawns raises an error; the
//!   handler answers `OK`), one `ECHO`, close;
//! - `later`: `LATER` (a task the app spawns answers after a timer), close;
//! - `room`: two connections subscribe to a room of this cycle (`SUB`) and a
//!   third publishes three messages into it (`PUB`, each must reach both);
//!   the two must receive all three, then leave (`DONE`), and all close;
//! - `abort`: `LATER` and `SUB` (to a room nobody publishes to) sent at
//!   once, then the connection is reset (SO_LINGER 0) without waiting: the
//!   app's task then writes to a reset connection and its handler waits out
//!   the subscription on a dead one;
//! - `hold`: `HOLD` (the handler answers `OK`, then sleeps an hour) and the
//!   client leaves: the handler and its half-closed connection stay until
//!   the reload after next drains their generation and cancels them.
//!
//! `--skip KIND,...` leaves kinds out (echo cycles take their turns). Every
//! answer is checked; a wrong one, a failed connection or a cycle
//! longer than [`CYCLE_TIMEOUT`] counts as an error by kind. Closing is as in
//! `connect`: half-close, then wait for the server's close, so every cycle
//! ends only once the server has let the connection go. Loopback-only, and
//! from source addresses 127.0.0.2.. as `connect` (TIME_WAIT spreads over
//! them). `--progress N` prints the running totals to stderr every N
//! seconds, so a long run can be watched.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use compio::BufResult;
use compio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use compio::net::TcpStream;

use crate::report::{Header, Notes, RunArgs, counters};
use crate::window::Window;

/// Longest a cycle may take (a room cycle waits for three messages).
const CYCLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed cycle.
const BACKOFF: Duration = Duration::from_millis(10);
/// Longest answer line accepted.
const MAX_LINE: usize = 64 * 1024;

/// What one cycle does.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
enum Kind {
    Echo,
    Error,
    TaskError,
    Later,
    Room,
    Abort,
    Hold,
}

/// The mix, in the order cycles take it (20 cycles: 9 echo, 2 error,
/// 1 task error, 2 later, 4 room, 1 abort, 1 hold).
const KINDS: [Kind; 20] = {
    use Kind::*;
    [
        Echo, Room, Echo, Error, Echo, Later, Abort, Room, Echo, TaskError, Echo, Room, Echo, Error, Echo, Later, Hold,
        Room, Echo, Echo,
    ]
};

#[derive(Args, Debug)]
pub struct SoakArgs {
    /// The soak app (bench/soak.lua); must be a loopback address.
    #[arg(long)]
    addr: String,
    /// Cycles started per second, over all tasks.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Cycles in progress at most (tasks).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Kinds of cycle left out of the mix (comma-separated: echo cycles take
    /// their turns), to find which part of it makes something grow.
    #[arg(long, value_enum, value_delimiter = ',')]
    skip: Vec<Kind>,
    /// Print running totals to stderr every this many seconds (0: never).
    #[arg(long, default_value_t = 0.0)]
    progress: f64,
    #[command(flatten)]
    run: RunArgs,
}

counters!(
    /// Error counters, per thread and then summed.
    Errors {
        /// Connection attempts refused or failed.
        connect => "connect_errors",
        /// Cycles that did not finish within the cycle timeout.
        timeout => "timeouts",
        /// Reads or writes that failed, or an early end of stream.
        io => "io_errors",
        /// An answer other than the expected one.
        mismatch => "mismatches",
        /// A deliberate error that did not end its connection cleanly.
        unclean => "unclean_error_closes",
    }
);

/// How a cycle failed.
enum Failure {
    Connect(io::Error),
    Io(String),
    Mismatch(String),
    Unclean(String),
}

/// Totals of all threads, for `--progress` and the report.
#[derive(Default)]
struct Totals {
    cycles: AtomicU64,
    connections: AtomicU64,
    exchanges: AtomicU64,
    error_closes: AtomicU64,
    room_messages: AtomicU64,
    aborts: AtomicU64,
    held: AtomicU64,
    errors: AtomicU64,
}

impl Totals {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// State shared by the tasks of one thread (single-threaded).
struct Shared {
    errors: RefCell<Errors>,
    notes: Notes,
}

#[derive(Clone, Copy)]
struct Plan {
    addr: SocketAddr,
    start: Instant,
    /// Seconds between cycle starts.
    interval: f64,
    tasks: u64,
    /// The kinds of cycle left out (echo instead).
    skip: &'static [Kind],
    totals: &'static Totals,
}

pub fn run(args: SoakArgs) -> Result<ExitCode, String> {
    let addr = crate::target::resolve_loopback(&args.addr)?;
    if !(args.rate.is_finite() && args.rate > 0.0 && args.rate <= 100_000.0) {
        return Err("--rate must be between 0 and 100000 cycles/s".into());
    }
    if args.concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    let progress = crate::echo::seconds("--progress", args.progress, true)?;
    let (warmup, duration) = args.run.times()?;
    let threads = args.run.threads(args.concurrency);
    crate::raise_fd_limit();
    let totals: &'static Totals = Box::leak(Box::default());
    let start = Instant::now();
    let window = Window::new(start, warmup, duration);
    let skip = Vec::leak(args.skip);
    let plan = Plan { addr, start, interval: 1.0 / args.rate, tasks: args.concurrency as u64, skip, totals };

    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        let ids: Vec<u64> = (t as u64..plan.tasks).step_by(threads).collect();
        let handle = std::thread::Builder::new()
            .name(format!("soak-{t}"))
            .spawn(move || {
                let rt = compio::runtime::Runtime::new().map_err(|e| format!("cannot create compio runtime: {e}"))?;
                Ok::<_, String>(load_thread(&rt, plan, ids, window))
            })
            .map_err(|e| format!("cannot spawn load thread: {e}"))?;
        handles.push(handle);
    }
    let load_cpu_pct = if progress.is_zero() {
        window.cpu_pct()
    } else {
        let from = crate::cpu::sample_at(window.warm_end);
        let mut next = start + progress;
        while next < window.end {
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            eprintln!("moonport-bench soak: {:.0} s: {}", (next - start).as_secs_f64(), progress_line(totals));
            next += progress;
        }
        crate::cpu::sample_at(window.end).pct_since(&from)
    };

    let (mut errors, mut samples, mut driver) = (Errors::default(), Vec::new(), None);
    for handle in handles {
        let (d, e, s) = handle.join().map_err(|_| "a load thread panicked".to_string())??;
        errors.add(&e);
        samples.extend(s);
        driver = Some(d);
    }
    let cycles = Totals::get(&totals.cycles);
    if cycles == 0 {
        return Err(format!(
            "no cycle against {addr} completed: {}",
            samples.first().map(String::as_str).unwrap_or("no error recorded")
        ));
    }
    crate::report::show("soak", &samples);
    let head = Header::new("soak", addr, driver, threads, (warmup, duration));
    let report = Report {
        per_sec: cycles as f64 / head.duration_s,
        head,
        rate: args.rate,
        concurrency: args.concurrency,
        cycles,
        connections: Totals::get(&totals.connections),
        exchanges: Totals::get(&totals.exchanges),
        error_closes: Totals::get(&totals.error_closes),
        room_messages: Totals::get(&totals.room_messages),
        aborts: Totals::get(&totals.aborts),
        held: Totals::get(&totals.held),
        load_cpu_pct,
        errors,
    };
    Ok(crate::report::print(&args.run, &report))
}

fn progress_line(t: &Totals) -> String {
    format!(
        "{} cycles, {} connections, {} exchanges, {} deliberate-error closes, {} room messages, {} resets, {} held, \
         {} errors",
        Totals::get(&t.cycles),
        Totals::get(&t.connections),
        Totals::get(&t.exchanges),
        Totals::get(&t.error_closes),
        Totals::get(&t.room_messages),
        Totals::get(&t.aborts),
        Totals::get(&t.held),
        Totals::get(&t.errors),
    )
}

fn load_thread(
    rt: &compio::runtime::Runtime,
    plan: Plan,
    ids: Vec<u64>,
    window: Window,
) -> (compio::driver::DriverType, Errors, Vec<String>) {
    let shared = Rc::new(Shared { errors: RefCell::new(Errors::default()), notes: Notes::default() });
    rt.block_on(async {
        let tasks: Vec<_> = ids
            .into_iter()
            .map(|id| {
                let shared = Rc::clone(&shared);
                compio::runtime::spawn(async move { churn(plan, id, window, &shared).await })
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    });
    let errors = *shared.errors.borrow();
    (rt.driver_type(), errors, shared.notes.take())
}

/// One task's cycles: `id`, `id + tasks`, ... each at its due time, until
/// the end of the window.
async fn churn(plan: Plan, id: u64, window: Window, shared: &Shared) {
    let mut k = id;
    loop {
        let due = plan.start + Duration::from_secs_f64(k as f64 * plan.interval);
        if due >= window.end {
            return;
        }
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            compio::time::sleep(wait).await;
        }
        let counting = due >= window.warm_end;
        let kind = match KINDS[(k % KINDS.len() as u64) as usize] {
            kind if plan.skip.contains(&kind) => Kind::Echo,
            kind => kind,
        };
        let res = compio::time::timeout(CYCLE_TIMEOUT, cycle(plan, kind, k, counting)).await;
        k += plan.tasks;
        let failure = match res {
            Ok(Ok(())) => {
                if counting {
                    Totals::add(&plan.totals.cycles, 1);
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
            Ok(Err(Failure::Mismatch(e))) => {
                shared.errors.borrow_mut().mismatch += 1;
                e
            }
            Ok(Err(Failure::Unclean(e))) => {
                shared.errors.borrow_mut().unclean += 1;
                e
            }
            Err(_) => {
                shared.errors.borrow_mut().timeout += 1;
                format!("a cycle took longer than {CYCLE_TIMEOUT:?}")
            }
        };
        Totals::add(&plan.totals.errors, 1);
        shared.notes.note(failure);
        compio::time::sleep(BACKOFF).await;
    }
}

/// Adds `n` to a total if the cycle counts (started after the warm-up).
fn count(plan: Plan, counting: bool, total: fn(&Totals) -> &AtomicU64, n: u64) {
    if counting {
        Totals::add(total(plan.totals), n);
    }
}

async fn cycle(plan: Plan, kind: Kind, k: u64, counting: bool) -> Result<(), Failure> {
    let open = || async {
        let conn = Conn::open(plan.addr).await?;
        count(plan, counting, |t| &t.connections, 1);
        Ok::<_, Failure>(conn)
    };
    let exchanged = |n| count(plan, counting, |t| &t.exchanges, n);
    // Payloads of varying size, so the app's buffers see more than one shape.
    let payload = |i: u64| format!("{k}-{i}-{}", "x".repeat(((k * 7 + i * 131) % 600) as usize));
    match kind {
        Kind::Echo => {
            let mut c = open().await?;
            for i in 0..3 {
                let p = payload(i);
                c.ask(&format!("ECHO {p}"), &p).await?;
            }
            let v = c.ask_any("VER").await?;
            if !v.starts_with("v") {
                return Err(Failure::Mismatch(format!("VER answered {v:?}")));
            }
            exchanged(4);
            c.close().await
        }
        Kind::Error => {
            let mut c = open().await?;
            let p = payload(0);
            c.ask(&format!("ECHO {p}"), &p).await?;
            exchanged(1);
            c.send("ERR").await?;
            c.expect_closed().await?;
            count(plan, counting, |t| &t.error_closes, 1);
            Ok(())
        }
        Kind::TaskError => {
            let mut c = open().await?;
            c.ask("TERR", "OK").await?;
            let p = payload(0);
            c.ask(&format!("ECHO {p}"), &p).await?;
            exchanged(2);
            c.close().await
        }
        Kind::Later => {
            let mut c = open().await?;
            let p = payload(0);
            c.ask(&format!("LATER {} {p}", 5 + k % 40), &p).await?;
            exchanged(1);
            c.close().await
        }
        Kind::Room => {
            let room = format!("soak-{k}");
            let mut subs = [open().await?, open().await?];
            for s in &mut subs {
                s.ask(&format!("SUB {room} 3"), "OK").await?;
            }
            let mut publisher = open().await?;
            let msgs: Vec<String> = (0..3).map(payload).collect();
            for m in &msgs {
                publisher.ask(&format!("PUB {room} {m}"), "2").await?;
            }
            for s in &mut subs {
                for m in &msgs {
                    s.expect(&format!("MSG {m}")).await?;
                }
                s.expect("DONE").await?;
            }
            exchanged(5);
            count(plan, counting, |t| &t.room_messages, 6);
            let [a, b] = subs;
            a.close().await?;
            b.close().await?;
            publisher.close().await
        }
        Kind::Abort => {
            let mut c = open().await?;
            c.send(&format!("LATER 20 {}\nSUB soak-quiet-{k} 1", payload(0))).await?;
            c.reset();
            count(plan, counting, |t| &t.aborts, 1);
            Ok(())
        }
        Kind::Hold => {
            let mut c = open().await?;
            c.ask("HOLD", "OK").await?;
            exchanged(1);
            count(plan, counting, |t| &t.held, 1);
            Ok(())
        }
    }
}

/// A client connection of the line protocol, with what it has read ahead.
struct Conn {
    stream: TcpStream,
    /// Received bytes not yet taken as lines.
    pending: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Result<Self, Failure> {
        let stream = crate::storm::open(addr).await.map_err(Failure::Connect)?;
        let _ = stream.set_nodelay(true);
        Ok(Self { stream, pending: Vec::new() })
    }

    async fn send(&mut self, line: &str) -> Result<(), Failure> {
        let BufResult(res, _) = self.stream.write_all(format!("{line}\n").into_bytes()).await;
        res.map_err(|e| Failure::Io(format!("write failed: {e}")))
    }

    /// Reads more into `pending`; `Ok(0)` at end of stream.
    async fn fill(&mut self) -> io::Result<usize> {
        let BufResult(res, buf) = self.stream.read(Vec::with_capacity(4096)).await;
        if let Ok(n) = res {
            self.pending.extend_from_slice(&buf[..n]);
        }
        res
    }

    /// The next line, without its `\n`.
    async fn line(&mut self) -> Result<String, Failure> {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).take(end).collect();
                return String::from_utf8(line).map_err(|_| Failure::Mismatch("an answer is not UTF-8".into()));
            }
            if self.pending.len() > MAX_LINE {
                return Err(Failure::Mismatch(format!("an answer is longer than {MAX_LINE} bytes")));
            }
            match self.fill().await {
                Ok(0) => return Err(Failure::Io("the server closed the connection before answering".into())),
                Ok(_) => {}
                Err(e) => return Err(Failure::Io(format!("read failed: {e}"))),
            }
        }
    }

    async fn expect(&mut self, want: &str) -> Result<(), Failure> {
        let got = self.line().await?;
        if got != want {
            let show = |s: &str| s.chars().take(60).collect::<String>();
            return Err(Failure::Mismatch(format!("expected {:?}, got {:?}", show(want), show(&got))));
        }
        Ok(())
    }

    async fn ask(&mut self, req: &str, want: &str) -> Result<(), Failure> {
        self.send(req).await?;
        self.expect(want).await
    }

    async fn ask_any(&mut self, req: &str) -> Result<String, Failure> {
        self.send(req).await?;
        self.line().await
    }

    /// Ends the connection with a reset (SO_LINGER 0), not waiting for
    /// anything.
    fn reset(self) {
        let _ = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
    }

    /// Half-closes, then waits for the server's close; nothing more may come.
    async fn close(mut self) -> Result<(), Failure> {
        self.stream.shutdown().await.map_err(|e| Failure::Io(format!("shutdown failed: {e}")))?;
        match self.fill().await {
            Ok(0) if self.pending.is_empty() => Ok(()),
            Ok(_) => Err(Failure::Mismatch("bytes after the last answer".into())),
            Err(e) => Err(Failure::Io(format!("read until close failed: {e}"))),
        }
    }

    /// After a request that makes the app fail: the connection must end
    /// (end of stream, or a reset) without another byte.
    async fn expect_closed(mut self) -> Result<(), Failure> {
        match self.fill().await {
            Ok(0) if self.pending.is_empty() => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset && self.pending.is_empty() => Ok(()),
            Ok(_) => Err(Failure::Unclean("an answer to a request that raised a Lua error".into())),
            Err(e) => Err(Failure::Unclean(format!("after a Lua error: {e}"))),
        }
    }
}

struct Report {
    head: Header,
    rate: f64,
    concurrency: usize,
    cycles: u64,
    per_sec: f64,
    connections: u64,
    exchanges: u64,
    error_closes: u64,
    room_messages: u64,
    aborts: u64,
    held: u64,
    load_cpu_pct: Option<f64>,
    errors: Errors,
}

impl Report {
    /// The counts of the run: JSON name, text label, value.
    fn counts(&self) -> [(&'static str, &'static str, u64); 7] {
        [
            ("cycles", "cycles", self.cycles),
            ("connections", "connections", self.connections),
            ("exchanges", "exchanges", self.exchanges),
            ("error_closes", "deliberate-error closes", self.error_closes),
            ("room_messages", "room messages", self.room_messages),
            ("resets", "resets", self.aborts),
            ("held", "held", self.held),
        ]
    }
}

impl crate::report::Report for Report {
    fn json(&self) -> String {
        let counts: String = self.counts().iter().map(|(name, _, n)| format!("\"{name}\":{n},")).collect();
        format!(
            "{{{},\"rate\":{},\"concurrency\":{},{counts}\"cycles_per_sec\":{:.1},\"load_cpu_pct\":{},{}}}",
            self.head.json(),
            self.rate,
            self.concurrency,
            self.per_sec,
            crate::cpu::json(self.load_cpu_pct),
            self.errors.json(),
        )
    }

    fn text(&self) -> String {
        let what = format!(
            "{} cycles/s, at most {} at a time, mix of echo/error/task/timer/room/reset/hold",
            self.rate, self.concurrency
        );
        let counts: Vec<String> = self.counts().iter().map(|(_, label, n)| format!("{label} {n}")).collect();
        format!(
            "{}\x20 done:       {} ({:.1} cycles/s)\n{}{}",
            self.head.text(&what),
            counts.join(", "),
            self.per_sec,
            crate::cpu::text(self.load_cpu_pct),
            self.errors.text(),
        )
    }

    fn errors(&self) -> u64 {
        self.errors.total()
    }
}
