//! `serve-tokio`: a plain Rust echo server on tokio, one of the peers the
//! benchmark suite compares moonport against (`bench/peers/start tokio`).
//!
//! Every connection reads into its own 64 KiB buffer and writes back what it
//! read, until EOF, exactly like `serve-compio`; only the runtime differs
//! (tokio: epoll readiness, compio: io_uring completions).
//!
//! Two layouts, `--threads N` workers in both:
//! - `multi` (the default): one tokio multi-thread runtime with exactly N
//!   worker threads and one listener; the accept loop is itself a task, so
//!   all work runs on those N workers. This is what a tokio user writes
//!   (`#[tokio::main]`), work stealing included, so it is the fair "what
//!   would you use instead" peer. At N = 1 it still pays for the multi-thread
//!   scheduler's cross-thread wake-ups, which is part of that choice.
//! - `per-core`: N threads, each with a current-thread runtime and its own
//!   `SO_REUSEPORT` listener on the same address: the same shape as
//!   `serve-compio` and moonport, for isolating the I/O model from the
//!   scheduler.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::serve::{bind_listener, join_threads};

/// Size of the per-connection read buffer (as in `serve-compio`).
const BUF_SIZE: usize = 64 * 1024;

/// How the N workers are arranged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Layout {
    /// One multi-thread runtime with N workers, one listener.
    Multi,
    /// N current-thread runtimes, one `SO_REUSEPORT` listener each.
    PerCore,
}

#[derive(Args, Debug)]
pub struct ServeTokioArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// Number of worker threads (default: number of cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Runtime layout: `multi` (one work-stealing runtime) or `per-core`.
    #[arg(long, value_enum, default_value_t = Layout::Multi)]
    layout: Layout,
}

pub fn run(args: ServeTokioArgs) -> Result<ExitCode, String> {
    let threads = args.threads.unwrap_or_else(crate::default_threads).max(1);
    let first = bind_listener(args.addr).map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let local = first.local_addr().map_err(|e| format!("cannot read local address: {e}"))?;
    match args.layout {
        Layout::Multi => run_multi(first, local, threads),
        Layout::PerCore => run_per_core(first, local, threads),
    }
}

fn announce(local: SocketAddr, threads: usize, layout: &str) {
    println!("listening on {local}");
    let _ = io::stdout().flush();
    eprintln!("serve-tokio: {threads} worker thread(s), {layout}, 64 KiB buffers");
}

fn run_multi(listener: std::net::TcpListener, local: SocketAddr, threads: usize) -> Result<ExitCode, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("serve-tokio")
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| format!("cannot create tokio runtime: {e}"))?;
    // Run the accept loop as a task on the workers, not on this thread, so
    // exactly `threads` threads do the work.
    let accept = rt.spawn(async move {
        let listener = TcpListener::from_std(listener).map_err(|e| format!("cannot register listener: {e}"))?;
        announce(local, threads, "one multi-thread runtime");
        accept_loop(listener).await
    });
    match rt.block_on(accept) {
        Ok(Ok(())) => Ok(ExitCode::SUCCESS),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("the accept task panicked".into()),
    }
}

fn run_per_core(first: std::net::TcpListener, local: SocketAddr, threads: usize) -> Result<ExitCode, String> {
    let listeners = crate::serve::shards(first, local, threads)?;
    let mut handles = Vec::with_capacity(threads);
    for (idx, listener) in listeners.into_iter().enumerate() {
        let handle = std::thread::Builder::new()
            .name(format!("serve-tokio-{idx}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .enable_time()
                    .build()
                    .map_err(|e| format!("cannot create tokio runtime: {e}"))?;
                rt.block_on(async move {
                    let listener =
                        TcpListener::from_std(listener).map_err(|e| format!("cannot register listener: {e}"))?;
                    accept_loop(listener).await
                })
            })
            .map_err(|e| format!("cannot spawn server thread: {e}"))?;
        handles.push(handle);
    }
    announce(local, threads, "current-thread runtime per thread, SO_REUSEPORT sharding");
    Ok(join_threads("serve-tokio", handles))
}

/// Accepts forever, one task per connection, on the current runtime.
async fn accept_loop(listener: TcpListener) -> Result<(), String> {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                tokio::spawn(echo_conn(stream));
            }
            Err(e) => {
                // E.g. EMFILE: report, back off briefly and keep serving.
                eprintln!("serve-tokio: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn echo_conn(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    // Reserved, not zeroed (as in `serve-compio`): an idle connection's
    // buffer costs address space, not resident memory, until data arrives.
    let mut buf: Vec<u8> = Vec::with_capacity(BUF_SIZE);
    loop {
        buf.clear();
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if stream.write_all(&buf).await.is_err() {
            break;
        }
    }
}
