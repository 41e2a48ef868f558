//! `moonport-bench`: benchmarking tools for moonport.
//!
//! Subcommands (load generators only ever target loopback addresses):
//! - `echo`: a completion-based (compio/io_uring) ping-pong load generator;
//! - `serve-compio`: a plain Rust echo server on compio, the native baseline
//!   that the Lua-scripted moonport engine is compared against;
//! - `fanout`: one publisher and N viewers through a broadcast server
//!   (`examples/broadcast.lua`'s protocol): delivered messages/s, MB/s, lag,
//!   gaps;
//! - `relay`: stream throughput through a TCP relay into the tool's own sink;
//! - `serve-relay-compio`: a plain Rust compio relay, the native baseline.

mod connect;
mod echo;
mod fanout;
mod relay;
mod serve;
mod serve_tokio;
mod target;

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
    /// Native compio echo server (thread-per-core, SO_REUSEPORT sharding).
    ServeCompio(serve::ServeArgs),
    /// One publisher, N viewers through a loopback broadcast server.
    Fanout(fanout::FanoutArgs),
    /// Native tokio echo server (the tokio peer of the benchmark suite).
    ServeTokio(serve_tokio::ServeTokioArgs),
    /// Stream throughput through a loopback TCP relay into this tool's sink.
    Relay(relay::RelayArgs),
    /// Native compio TCP relay (thread-per-core, SO_REUSEPORT sharding).
    ServeRelayCompio(relay::ServeRelayArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Echo(args) => echo::run(args),
        Command::ServeCompio(args) => serve::run(args),
        Command::Fanout(args) => fanout::run(args),
        Command::ServeTokio(args) => serve_tokio::run(args),
        Command::Relay(args) => relay::run(args),
        Command::ServeRelayCompio(args) => relay::serve(args),
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
