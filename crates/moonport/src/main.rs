//! The `moonport` command: `moonport run app.lua [args...]`, and `moonport
//! reload` to make a running one re-read its script.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use moonport::engine::Sharding;
use moonport::logging::LogFormat;
use tracing_subscriber::EnvFilter;

// Coroutines, Lua strings and I/O operations allocate and free small blocks at
// a high rate on every worker; mimalloc's per-thread heaps handle that far
// better than the system allocator.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "moonport", version, about = "Lua-scripted network services on io_uring / IOCP")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a Lua script: a server (it listens) or a client/tool (it runs to the end).
    Run(Box<Run>),
    /// Make a running `moonport run --control ADDR` re-read its script: new
    /// connections get the new version, open ones finish on the old. Exits 1
    /// with the error when the new version fails to load (the old one keeps running).
    Reload {
        /// The `--control` address of the running process.
        #[arg(long, value_name = "ADDR")]
        control: SocketAddr,
    },
}

#[derive(Args)]
struct Run {
    /// The Lua script to run.
    script: PathBuf,
    /// Arguments given to the script as `arg[1..]` and `...`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
    /// Worker threads, each with its own I/O runtime and Lua VM (default: one per core).
    #[arg(long, short = 'w')]
    workers: Option<usize>,
    /// Seconds open connections get to finish after SIGINT/SIGTERM.
    #[arg(long, default_value_t = 5.0)]
    grace: f64,
    /// How listeners spread connections over workers: "reuseport" (a socket
    /// per worker, the kernel balances; Unix) or "handoff" (one acceptor deals
    /// connections out; the default where SO_REUSEPORT is missing).
    #[arg(long)]
    sharding: Option<String>,
    /// Most coroutines alive at once per worker (connection handlers and
    /// tasks); past it new connections are closed. LuaJIT's default is 6000.
    #[arg(long, default_value_t = moonport::engine::DEFAULT_MAX_COROUTINES)]
    max_coroutines: usize,
    /// Where `require` also looks for Lua modules, before LUA_PATH and the
    /// defaults: directories (DIR/?.lua and DIR/?/init.lua) or `?` templates,
    /// separated by `;`. May be given more than once.
    #[arg(long, value_name = "PATHS")]
    lua_path: Vec<String>,
    /// Join a cluster: rooms of scope "cluster" span every process started
    /// with the same Redis (redis://[user:password@]host[:port][/db]).
    #[arg(long, value_name = "URL")]
    cluster: Option<String>,
    /// error, warn, info, debug or trace; RUST_LOG, when set, takes precedence.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// "text" (for people) or "json" (one JSON object a line: ts, level,
    /// worker, peer, target, message, fields).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Serve /metrics (Prometheus text) and /health over HTTP on this
    /// address, e.g. 127.0.0.1:9145.
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
    /// Most metric series (label combinations over all metrics) scripts may create.
    #[arg(long, default_value_t = moonport::metrics::DEFAULT_MAX_SERIES)]
    metrics_max_series: usize,
    /// Seconds the connections and tasks of a script version replaced by a
    /// reload get to finish before they are closed.
    #[arg(long, default_value_t = moonport::engine::DEFAULT_DRAIN.as_secs_f64())]
    drain: f64,
    /// Where `moonport reload` reaches this process (e.g. 127.0.0.1:7070;
    /// anyone who can connect can trigger a reload: keep it on loopback).
    #[arg(long, value_name = "ADDR")]
    control: Option<SocketAddr>,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(options) => run(*options),
        Command::Reload { control } => reload(control),
    }
}

fn run(options: Run) -> ExitCode {
    let Run {
        script,
        args,
        workers,
        grace,
        sharding,
        max_coroutines,
        lua_path,
        cluster,
        log_level,
        log_format,
        admin,
        metrics_max_series,
        drain,
        control,
    } = options;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| EnvFilter::try_new(spec).ok())
        .or_else(|| EnvFilter::try_new(&log_level).ok());
    let Some(filter) = filter else {
        eprintln!("moonport: invalid --log-level {log_level:?}");
        return ExitCode::FAILURE;
    };
    let format = match log_format.as_str() {
        "json" => LogFormat::Json,
        _ => LogFormat::Text { ansi: std::io::IsTerminal::is_terminal(&std::io::stderr()) },
    };
    moonport::logging::init(filter, format);

    for (flag, secs) in [("--grace", grace), ("--drain", drain)] {
        if !(secs.is_finite() && secs >= 0.0) {
            eprintln!("moonport: {flag} must be a number of seconds >= 0");
            return ExitCode::FAILURE;
        }
    }
    let sharding = match sharding.as_deref() {
        None => moonport::engine::DEFAULT_SHARDING,
        Some("handoff") => Sharding::HandOff,
        Some("reuseport") if moonport::engine::DEFAULT_SHARDING == Sharding::ReusePort => Sharding::ReusePort,
        Some(other) => {
            eprintln!("moonport: --sharding {other:?} is not available here (use \"handoff\" or \"reuseport\")");
            return ExitCode::FAILURE;
        }
    };
    let workers = workers.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).max(1);
    moonport::engine::run(moonport::engine::Config {
        script,
        args,
        workers,
        grace: Duration::from_secs_f64(grace),
        sharding,
        max_coroutines: max_coroutines.max(1),
        lua_path: lua_path.iter().flat_map(|p| p.split(';')).filter(|p| !p.is_empty()).map(str::to_string).collect(),
        admin,
        max_series: metrics_max_series,
        cluster,
        drain: Duration::from_secs_f64(drain),
        control,
    })
}

/// `moonport reload`: prints what the running process answered.
fn reload(control: SocketAddr) -> ExitCode {
    match moonport::engine::request_reload(control) {
        Ok(answer) => {
            println!("reloaded: {answer}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("moonport reload: {e}");
            ExitCode::FAILURE
        }
    }
}
