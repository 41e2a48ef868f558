//! `serve-compio`: a plain Rust echo server on compio, the native baseline
//! that moonport (a Lua-scripted engine) is benchmarked against.
//!
//! Thread-per-core: each thread runs its own compio runtime and owns its own
//! listening socket bound to the same address with `SO_REUSEPORT`, so the
//! kernel shards incoming connections across threads. Every connection reads
//! into a reused 64 KiB buffer and writes back what it read.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use compio::BufResult;
use compio::io::{AsyncRead, AsyncWriteExt};
use compio::net::{TcpListener, TcpStream};
use socket2::{Domain, Protocol, Socket, Type};

/// Size of the per-connection read buffer.
const BUF_SIZE: usize = 64 * 1024;
/// Listen backlog for every sharded listener.
const BACKLOG: i32 = 1024;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port, shared by all threads).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// Number of threads, each with its own runtime and listener
    /// (default: number of cores).
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run(args: ServeArgs) -> Result<ExitCode, String> {
    let threads = args.threads.unwrap_or_else(crate::default_threads).max(1);

    // Bind every shard up front on this thread. With port 0 the first bind
    // picks the port; the other shards then bind to that same concrete port.
    let first = bind_listener(args.addr).map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let local = first.local_addr().map_err(|e| format!("cannot read local address: {e}"))?;
    let listeners = shards(first, local, threads)?;

    let mut handles = Vec::with_capacity(threads);
    for (idx, listener) in listeners.into_iter().enumerate() {
        let handle = std::thread::Builder::new()
            .name(format!("serve-{idx}"))
            .spawn(move || serve_thread(listener))
            .map_err(|e| format!("cannot spawn server thread: {e}"))?;
        handles.push(handle);
    }

    println!("listening on {local}");
    let _ = io::stdout().flush();
    eprintln!("serve-compio: {threads} thread(s), SO_REUSEPORT sharding, 64 KiB buffers");

    Ok(join_threads("serve-compio", handles))
}

/// Waits for a server's threads; failure if any thread failed or panicked.
pub(crate) fn join_threads(name: &str, handles: Vec<std::thread::JoinHandle<Result<(), String>>>) -> ExitCode {
    let mut failed = false;
    for handle in handles {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                eprintln!("{name}: thread failed: {e}");
                failed = true;
            }
            Err(_) => {
                eprintln!("{name}: thread panicked");
                failed = true;
            }
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// Creates a non-blocking listener with `SO_REUSEADDR` + `SO_REUSEPORT`.
/// `first` and `threads - 1` more listeners bound to its address, one per
/// thread, in one SO_REUSEPORT group.
pub(crate) fn shards(
    first: std::net::TcpListener,
    local: SocketAddr,
    threads: usize,
) -> Result<Vec<std::net::TcpListener>, String> {
    let mut listeners = vec![first];
    for _ in 1..threads {
        let l = bind_listener(local).map_err(|e| format!("cannot bind another SO_REUSEPORT shard on {local}: {e}"))?;
        listeners.push(l);
    }
    Ok(listeners)
}

pub(crate) fn bind_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

fn serve_thread(listener: std::net::TcpListener) -> Result<(), String> {
    let rt = compio::runtime::Runtime::new().map_err(|e| format!("cannot create compio runtime: {e}"))?;
    eprintln!(
        "serve-compio: {} uses the {:?} driver",
        std::thread::current().name().unwrap_or("thread"),
        rt.driver_type()
    );
    rt.block_on(async move {
        let listener =
            TcpListener::from_std(listener).map_err(|e| format!("cannot register listener with compio: {e}"))?;
        loop {
            match listener.accept().await {
                Ok((stream, _peer)) => {
                    compio::runtime::spawn(echo_conn(stream)).detach();
                }
                Err(e) => {
                    // E.g. EMFILE: report, back off briefly and keep serving.
                    eprintln!("serve-compio: accept failed: {e}");
                    compio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    })
}

async fn echo_conn(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(BUF_SIZE);
    loop {
        buf.clear();
        let BufResult(res, b) = stream.read(buf).await;
        buf = b;
        match res {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let BufResult(res, b) = stream.write_all(buf).await;
        buf = b;
        if res.is_err() {
            break;
        }
    }
}
