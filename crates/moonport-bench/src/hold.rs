//! `hold`: opens N idle connections to an echo server, keeps them, and
//! reports what each costs the server in resident memory (from
//! /proc/PID/status), then checks that every one of them still answers.
//!
//! Connections are opened in batches so the server's accept queue never
//! overflows (an overflowing queue drops SYNs, and the client's retries then
//! take seconds); the batch size is a knob. The run is bounded: connects time
//! out, the hold has a fixed length, and the final echo check has a deadline.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::Args;
use compio::BufResult;
use compio::io::{AsyncReadExt, AsyncWriteExt};
use compio::net::TcpStream;

use crate::connect::connect_all;

/// How long the final check waits for all echoes.
const ANSWER_DEADLINE: Duration = Duration::from_secs(20);
/// Pause after connecting before RSS is read, so the server has accepted
/// (and started a handler for) every connection.
const SETTLE: Duration = Duration::from_secs(1);

#[derive(Args, Debug)]
pub struct HoldArgs {
    /// Target echo server; must be a loopback address (127.0.0.0/8 or ::1).
    #[arg(long)]
    addr: String,
    /// Connections to open and hold.
    #[arg(long, default_value_t = 1000)]
    conns: usize,
    /// The server's process id, to read its resident memory (Linux).
    #[arg(long)]
    pid: Option<u32>,
    /// Seconds to hold the connections idle before checking them.
    #[arg(long, default_value_t = 2.0)]
    hold: f64,
    /// Connections opened concurrently; keep it below the server's backlog.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Print one JSON line instead of the text report.
    #[arg(long)]
    json: bool,
}

pub fn run(args: HoldArgs) -> Result<ExitCode, String> {
    let addr = crate::target::resolve_loopback(&args.addr)?;
    if args.conns == 0 || args.batch == 0 {
        return Err("--conns and --batch must be at least 1".into());
    }
    if !(0.0..=600.0).contains(&args.hold) {
        return Err("--hold must be between 0 and 600 seconds".into());
    }
    crate::raise_fd_limit();
    let runtime = compio::runtime::Runtime::new().map_err(|e| format!("cannot start a runtime: {e}"))?;
    runtime.block_on(hold(addr, args))
}

async fn hold(addr: SocketAddr, args: HoldArgs) -> Result<ExitCode, String> {
    let rss = |pid: Option<u32>| pid.and_then(resident_kib);
    let rss_before = rss(args.pid);
    let started = crate::cpu::Sample::now();
    let mut streams = Vec::with_capacity(args.conns);
    let mut failures = 0usize;
    let mut first_failure = None;
    let ids: Vec<usize> = (0..args.conns).collect();
    for chunk in ids.chunks(args.batch) {
        let opened = connect_all(addr, chunk, "connection", true, |msg| {
            failures += 1;
            first_failure.get_or_insert(msg);
        })
        .await;
        streams.extend(opened.into_iter().map(|(_, s)| s));
    }
    let connected = crate::cpu::Sample::now();
    let connect_secs = connected.seconds_since(&started);
    if streams.is_empty() {
        return Err(first_failure.unwrap_or_else(|| "no connection".into()));
    }
    compio::time::sleep(SETTLE).await;
    let rss_held = rss(args.pid);
    compio::time::sleep(Duration::from_secs_f64(args.hold)).await;

    // Every connection sends one small message and must get it back.
    let answered = Rc::new(Cell::new(0usize));
    let checks: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, stream)| {
            let answered = answered.clone();
            compio::runtime::spawn(async move {
                if echo_once(stream, i).await.is_ok() {
                    answered.set(answered.get() + 1);
                }
            })
        })
        .collect();
    let opened = checks.len();
    let _ = compio::time::timeout(ANSWER_DEADLINE, async {
        for check in checks {
            let _ = check.await;
        }
    })
    .await;
    let rss_after = rss(args.pid);

    let per_conn = |after: Option<u64>| match (rss_before, after) {
        (Some(b), Some(a)) => Some((a.saturating_sub(b) * 1024) as f64 / opened as f64),
        _ => None,
    };
    let report = Report {
        conns: args.conns,
        opened,
        failed: failures,
        connect_secs,
        connects_per_sec: opened as f64 / connect_secs,
        load_cpu_pct: connected.pct_since(&started),
        rss_before_kib: rss_before,
        rss_held_kib: rss_held,
        rss_after_kib: rss_after,
        idle_bytes_per_conn: per_conn(rss_held),
        active_bytes_per_conn: per_conn(rss_after),
        answered: answered.get(),
    };
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text(addr));
        if let Some(f) = first_failure {
            eprintln!("moonport-bench hold: first failure: {f}");
        }
    }
    Ok(if report.answered == args.conns { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Writes an 8-byte message naming the connection and reads it back.
async fn echo_once(mut stream: TcpStream, i: usize) -> io::Result<()> {
    let msg = (i as u64).to_be_bytes().to_vec();
    let BufResult(res, msg) = stream.write_all(msg).await;
    res?;
    let BufResult(res, back) = stream.read_exact(Vec::with_capacity(msg.len())).await;
    res?;
    if back != msg {
        return Err(io::Error::other("echo differs"));
    }
    Ok(())
}

/// VmRSS of a process in KiB, where /proc has it.
fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

struct Report {
    conns: usize,
    opened: usize,
    failed: usize,
    connect_secs: f64,
    connects_per_sec: f64,
    /// The generator's CPU use while connecting (the rest is idle).
    load_cpu_pct: Option<f64>,
    rss_before_kib: Option<u64>,
    rss_held_kib: Option<u64>,
    rss_after_kib: Option<u64>,
    idle_bytes_per_conn: Option<f64>,
    active_bytes_per_conn: Option<f64>,
    answered: usize,
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "null".into(), |v| v.to_string())
}

impl Report {
    fn text(&self, addr: SocketAddr) -> String {
        let kib = |v: Option<u64>| v.map_or_else(|| "n/a".into(), |v| format!("{v} KiB"));
        let per = |v: Option<f64>| v.map_or_else(|| "n/a (no --pid)".into(), |v| format!("{v:.0} B"));
        format!(
            "hold {addr}: {} of {} connections open ({} failed) in {:.2} s ({:.0} connects/s)\n\
             load gen: {}% of one core while connecting\n\
             server RSS: {} before, {} holding them idle, {} after one echo each\n\
             per connection: {} idle, {} after one echo\n\
             answered the final echo: {} of {}\n",
            self.opened,
            self.conns,
            self.failed,
            self.connect_secs,
            self.connects_per_sec,
            self.load_cpu_pct.map_or_else(|| "?".into(), |p| format!("{p:.0}")),
            kib(self.rss_before_kib),
            kib(self.rss_held_kib),
            kib(self.rss_after_kib),
            per(self.idle_bytes_per_conn),
            per(self.active_bytes_per_conn),
            self.answered,
            self.opened,
        )
    }

    fn json(&self) -> String {
        format!(
            "{{\"mode\":\"hold\",\"conns\":{},\"opened\":{},\"failed\":{},\"connect_secs\":{:.3},\
             \"connects_per_sec\":{:.1},\"load_cpu_pct\":{},\"rss_before_kib\":{},\"rss_held_kib\":{},\"rss_after_kib\":{},\
             \"idle_bytes_per_conn\":{},\"active_bytes_per_conn\":{},\"answered\":{}}}",
            self.conns,
            self.opened,
            self.failed,
            self.connect_secs,
            self.connects_per_sec,
            crate::cpu::json(self.load_cpu_pct),
            opt(self.rss_before_kib),
            opt(self.rss_held_kib),
            opt(self.rss_after_kib),
            opt(self.idle_bytes_per_conn.map(|v| v.round())),
            opt(self.active_bytes_per_conn.map(|v| v.round())),
            self.answered,
        )
    }
}
