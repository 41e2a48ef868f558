//! The engine: configuration, worker threads, and process shutdown.
//!
//! `run` starts worker 1, which runs the script. The first `listen` on worker 1
//! starts the other workers (thread-per-core), each with its own compio runtime
//! and Lua VM, which run the same script and bind the same listeners. A script
//! that never listens (a client or a tool) thus runs once, on one worker.
//!
//! The process ends when every worker has nothing left to do, or on SIGINT /
//! SIGTERM: listeners stop, connections get `grace` to finish, then it exits.
//! An admin listener (`--admin`), on a thread of its own, serves the
//! metrics and a health check meanwhile.
//! SIGHUP (Unix) or `moonport reload` (through the `--control` listener)
//! reloads the script without closing a listener (`reload`).

mod activity;
mod admin;
mod control;
mod datagrams;
mod listeners;
mod ports;
mod reload;
mod tasks;
mod trigger;
mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use crate::platform::{SHARDING as DEFAULT_SHARDING, Sharding};
pub use activity::{Activity, Hold};
pub use control::request_reload;
pub use datagrams::Datagrams;
pub use listeners::{Listener, Listeners, OnConn};
pub use ports::{Bound, ListenRegistry};
pub use reload::{Generation, Reloads};
pub use tasks::TaskSet;
pub use trigger::Trigger;
pub use worker::WorkerCtx;

/// What `moonport run` was asked to do.
#[derive(Debug, Clone)]
pub struct Config {
    pub script: PathBuf,
    /// Arguments after the script name, given to it as `arg` and `...`.
    pub args: Vec<String>,
    pub workers: usize,
    /// How long connections may take to finish after a shutdown signal.
    pub grace: Duration,
    pub sharding: Sharding,
    /// Most coroutines (connection handlers and tasks) alive at once on one
    /// worker; past it new connections are closed and `spawn` fails.
    pub max_coroutines: usize,
    /// `--lua-path` entries: directories or `?` templates, searched by
    /// `require` after the script's directory.
    pub lua_path: Vec<String>,
    /// `--admin`: where to serve `/metrics` and `/health` from the start.
    pub admin: Option<SocketAddr>,
    /// Most metric series (label combinations over all metrics).
    pub max_series: usize,
    /// `--cluster redis://...`: the Redis that bridges cluster rooms.
    pub cluster: Option<String>,
    /// How long a generation replaced by a reload may take to finish its
    /// connections and tasks before they are closed.
    pub drain: Duration,
    /// `--control`: where `moonport reload` reaches this process.
    pub control: Option<SocketAddr>,
}

/// The default `drain`.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(30);

/// The default `max_coroutines`. Each live coroutine holds one slot of mlua's
/// reference stack, which LuaJIT caps at 8000 per Lua state (LUAI_MAXCSTACK);
/// the rest is left for the values calls hold while they wait. Lua 5.4 allows
/// a million slots.
pub const DEFAULT_MAX_COROUTINES: usize = if cfg!(feature = "luajit") { 6000 } else { 500_000 };

/// State shared by all workers of the process.
pub struct Engine {
    pub config: Config,
    /// The script version every worker runs, and the reloads that replace it.
    pub reloads: Reloads,
    pub shutdown: Trigger,
    pub ports: ListenRegistry,
    /// Pub/sub rooms, shared by all workers.
    pub rooms: crate::room::Rooms,
    /// The link to the cluster's Redis, once joined (`--cluster` or
    /// `moonport.cluster.join`).
    cluster: Mutex<Option<Arc<crate::room::Cluster>>>,
    /// Start of the process: the zero of `moonport.now()`.
    pub epoch: Instant,
    /// Every metric of the process, the script's and the engine's.
    pub metrics: crate::metrics::Registry,
    /// Where the admin listener runs, once started.
    admin: Mutex<Option<SocketAddr>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    others_started: AtomicBool,
    failed: AtomicBool,
}

impl Engine {
    /// Marks the run as failed (exit code 1) and stops every worker.
    pub fn fail(&self) {
        self.failed.store(true, Ordering::SeqCst);
        self.shutdown.fire();
    }

    /// The cluster this process has joined, if any.
    pub fn cluster(&self) -> Option<Arc<crate::room::Cluster>> {
        self.cluster.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Joins the cluster at `url`, once per process: joining the same URL
    /// again (as every worker running the script does) is a no-op, another
    /// URL is an error.
    pub fn join_cluster(&self, url: &str, limits: crate::room::Limits) -> Result<Arc<crate::room::Cluster>, String> {
        let mut cluster = self.cluster.lock().unwrap_or_else(|p| p.into_inner());
        match &*cluster {
            Some(c) if c.url() == url => Ok(c.clone()),
            Some(c) => Err(format!("this process already joined the cluster at {}", c.url())),
            None => {
                let joined = crate::room::Cluster::start(url, limits)?;
                *cluster = Some(joined.clone());
                Ok(joined)
            }
        }
    }

    /// Starts workers 2..=N, once; called by worker 1's first `listen`.
    pub fn start_other_workers(self: &Arc<Self>) {
        if self.others_started.swap(true, Ordering::SeqCst) {
            return;
        }
        for id in 2..=self.config.workers {
            self.spawn_worker(id);
        }
    }

    fn spawn_worker(self: &Arc<Self>, id: usize) {
        let engine = self.clone();
        let spawned =
            std::thread::Builder::new().name(format!("moonport-worker-{id}")).spawn(move || worker::run(engine, id));
        match spawned {
            Ok(handle) => self.threads.lock().unwrap_or_else(|p| p.into_inner()).push(handle),
            Err(e) => {
                tracing::error!("cannot start worker {id}: {e}");
                self.fail();
            }
        }
    }
}

/// Runs a script to the end; the exit code says whether it succeeded.
pub fn run(config: Config) -> ExitCode {
    let source = match std::fs::read_to_string(&config.script) {
        Ok(source) => source,
        Err(e) => {
            tracing::error!("cannot read {}: {e}", config.script.display());
            return ExitCode::FAILURE;
        }
    };
    if let Some(limit) = crate::platform::raise_fd_limit() {
        tracing::debug!("open file limit: {limit}");
    }
    let admin = config.admin;
    let metrics = crate::metrics::Registry::new(config.max_series);
    let engine = Arc::new(Engine {
        config,
        reloads: Reloads::new(source),
        shutdown: Trigger::new(),
        ports: ListenRegistry::default(),
        rooms: Default::default(),
        cluster: Mutex::new(None),
        epoch: Instant::now(),
        metrics,
        admin: Mutex::new(None),
        threads: Mutex::new(Vec::new()),
        others_started: AtomicBool::new(false),
        failed: AtomicBool::new(false),
    });
    if let Some(url) = engine.config.cluster.clone()
        && let Err(e) = engine.join_cluster(&url, crate::room::OUTBOX_LIMITS)
    {
        tracing::error!("--cluster: {e}");
        return ExitCode::FAILURE;
    }
    install_signal_handler(&engine);
    if let Err(e) = control::start(&engine) {
        tracing::error!("{e}");
        return ExitCode::FAILURE;
    }
    if let Some(addr) = admin
        && let Err(e) = engine.start_admin(addr)
    {
        tracing::error!("admin listener on {addr}: {e}");
        return ExitCode::FAILURE;
    }
    engine.spawn_worker(1);
    // Worker 1 adds the other workers before it ends, so popping until empty joins all.
    loop {
        let next = engine.threads.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let Some(handle) = next else { break };
        if handle.join().is_err() {
            engine.fail();
        }
    }
    if engine.failed.load(Ordering::SeqCst) { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// SIGHUP: reload (Unix). First SIGINT/SIGTERM: graceful shutdown. Second: exit at once. On Windows
/// the same for Ctrl-C and Ctrl-Break; closing the console, logoff and system
/// shutdown also start a graceful shutdown, but Windows ends the process once
/// the handler has returned, so connections get no grace there (docs/windows.md).
fn install_signal_handler(engine: &Arc<Engine>) {
    crate::platform::enable_shutdown_signals();
    let stopping = engine.clone();
    let presses = AtomicUsize::new(0);
    let installed = ctrlc::set_handler(move || {
        if presses.fetch_add(1, Ordering::SeqCst) == 0 {
            // Fired before the line is logged, so whoever reads the line sees the shutdown (`/health` too).
            stopping.shutdown.fire();
            tracing::info!(
                "shutting down: no new connections, {:?} for open ones to finish (signal again to exit now)",
                stopping.config.grace
            );
        } else {
            std::process::exit(130);
        }
    });
    if let Err(e) = installed {
        tracing::warn!("cannot install the shutdown signal handler: {e}");
    }
    let engine = engine.clone();
    // The reload runs on the signal's own thread, which may wait for the workers.
    if let Err(e) = crate::platform::on_reload_signal(Box::new(move || drop(engine.reload()))) {
        tracing::warn!("cannot install the reload signal handler: {e}");
    }
}
