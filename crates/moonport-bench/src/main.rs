//! `moonport-bench`: benchmarking tools for moonport.
//!
//! Subcommands (load generators only ever target loopback addresses):
//! - `echo`: a completion-based (compio/io_uring) ping-pong load generator,
//!   one message or `--pipeline N` in flight per connection, raw TCP or
//!   WebSocket (`--ws`);
//! - `stream`: bulk throughput per connection through an echo server
//!   (e.g. 64 KiB writes), MB/s;
//! - `connect`: a connection storm, connections/s with and without one
//!   request each;
//! - `serve-compio`: a plain Rust echo server on compio, the native baseline
//!   that the Lua-scripted moonport engine is compared against;
//! - `fanout`: one publisher and N viewers through a broadcast server
//!   (`examples/broadcast.lua`'s protocol): delivered messages/s, MB/s, lag,
//!   gaps;
//! - `hold`: N idle connections held open: the server's memory per
//!   connection, and whether every one still answers;
//! - `relay`: stream throughput through a TCP relay into the tool's own sink;
//! - `serve-relay-compio`: a plain Rust compio relay, the native baseline;
//! - `soak`: steady connection churn with a mix of echo, Lua errors, timers
//!   and rooms against `bench/soak.lua`, for long runs (bench/soak).
//!
//! Every load generator also reports its own CPU use over the measured
//! window (`load_cpu_pct`, see [`cpu`]): it shares the machine with the
//! server under test.

mod connect;
mod cpu;
mod echo;
mod fanout;
mod hold;
mod relay;
mod report;
mod serve;
mod serve_tokio;
mod soak;
mod storm;
mod stream;
mod target;
mod window;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "moonport-bench", version, about = "Benchmark tools for moonport")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Ping-pong load generator against a loopback echo server.
    Echo(echo::EchoArgs),
    /// Bulk throughput through a loopback echo server.
    Stream(stream::StreamArgs),
    /// Connection storm against a loopback echo server.
    Connect(storm::ConnectArgs),
    /// Native compio echo server (thread-per-core, SO_REUSEPORT sharding).
    ServeCompio(serve::ServeArgs),
    /// One publisher, N viewers through a loopback broadcast server.
    Fanout(fanout::FanoutArgs),
    /// Hold N idle connections; report the server's RSS per connection.
    Hold(hold::HoldArgs),
    /// Native tokio echo server (the tokio peer of the benchmark suite).
    ServeTokio(serve_tokio::ServeTokioArgs),
    /// Stream throughput through a loopback TCP relay into this tool's sink.
    Relay(relay::RelayArgs),
    /// Native compio TCP relay (thread-per-core, SO_REUSEPORT sharding).
    ServeRelayCompio(relay::ServeRelayArgs),
    /// Steady connection churn with a mix of work against bench/soak.lua.
    Soak(soak::SoakArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Echo(args) => echo::run(args),
        Command::Stream(args) => stream::run(args),
        Command::Connect(args) => storm::run(args),
        Command::ServeCompio(args) => serve::run(args),
        Command::Fanout(args) => fanout::run(args),
        Command::Hold(args) => hold::run(args),
        Command::ServeTokio(args) => serve_tokio::run(args),
        Command::Relay(args) => relay::run(args),
        Command::ServeRelayCompio(args) => relay::serve(args),
        Command::Soak(args) => soak::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("moonport-bench: error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Number of threads to use when the user did not say: one per core.
pub(crate) fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Raises this process's soft limit on open files to the hard limit: holding
/// thousands of connections needs a descriptor each.
pub(crate) fn raise_fd_limit() {
    #[cfg(unix)]
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
