//! `moonport-bench`: benchmarking tools for moonport.
//!
//! Two subcommands:
//! - `echo`: a completion-based (compio/io_uring) ping-pong load generator
//!   that only ever targets loopback addresses;
//! - `serve-compio`: a plain Rust echo server on compio, the native baseline
//!   that the Lua-scripted moonport engine is compared against.

mod echo;
mod serve;
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Echo(args) => echo::run(args),
        Command::ServeCompio(args) => serve::run(args),
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
