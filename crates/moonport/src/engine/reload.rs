//! Hot reload: every worker starts the script anew while the old version
//! finishes what it has begun.
//!
//! A reload (SIGHUP, or `moonport reload` through the control listener)
//! re-reads the script and runs it as a new *generation* in a fresh Lua state
//! on every worker, in two phases. First each worker runs the new top level
//! beside the old generation, which keeps serving: its `listen` calls only
//! reserve the sockets they will take over. When every worker reports that
//! the top level went well, the reload commits: each worker hands its
//! listeners to the new generation, and the old one drains (its connections
//! and tasks run on until they end or `--drain` passes). If any worker
//! reports an error (a syntax error, a top-level error), every worker drops
//! the new generation and the old one carries on as if nothing happened.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_channel::{Receiver, Sender};

use super::Engine;

/// How long a new top level may run before it counts as started: one that
/// is still waiting for something then (a top-level loop) is let go on.
pub const READY_WAIT: Duration = Duration::from_secs(3);
/// How long the reload waits for a worker's answer beyond `READY_WAIT`
/// before it gives up on it (a worker stuck in a Lua loop that never yields).
const ANSWER_WAIT: Duration = Duration::from_secs(10);

/// One version of the script.
pub struct Generation {
    /// 1 for the script the process started with, then +1 per reload that
    /// took effect (`moonport.generation()`).
    pub number: u64,
    pub source: String,
}

/// A worker's part in one reload.
pub struct Request {
    pub generation: Arc<Generation>,
    /// Where the worker says whether the new top level went well, and then
    /// that it has committed.
    pub ready: mpsc::Sender<Result<(), String>>,
    /// Where it then learns whether to commit (true) or abort.
    pub verdict: Receiver<bool>,
}

/// The reload state of the process.
pub struct Reloads {
    inner: Mutex<Inner>,
}

struct Inner {
    current: Arc<Generation>,
    /// One per worker that serves the script, to ask it to reload.
    workers: Vec<Sender<Request>>,
}

impl Reloads {
    pub fn new(source: String) -> Self {
        let current = Arc::new(Generation { number: 1, source });
        Self { inner: Mutex::new(Inner { current, workers: Vec::new() }) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a starting worker: it runs the returned generation and gets
    /// reload requests on the returned queue. (Under the same lock as a
    /// reload, so a worker starting meanwhile runs the version it commits.)
    pub fn join(&self) -> (Arc<Generation>, Receiver<Request>) {
        // One request at a time: a reload waits for every worker's answer.
        let (tx, rx) = async_channel::bounded(1);
        let mut inner = self.lock();
        inner.workers.push(tx);
        (inner.current.clone(), rx)
    }
}

impl Engine {
    /// Re-reads the script and replaces the running version with it on every
    /// worker. Returns the new generation's number, or why the old version
    /// keeps running. Blocks until the workers have answered; one reload at a
    /// time.
    pub fn reload(&self) -> Result<u64, String> {
        let result = self.try_reload();
        match &result {
            Ok(n) => tracing::info!("reloaded {}: generation {n} serves new connections", self.config.script.display()),
            Err(e) => tracing::error!("reload rejected, the running version carries on: {e}"),
        }
        result
    }

    fn try_reload(&self) -> Result<u64, String> {
        let mut inner = self.reloads.lock();
        if self.shutdown.is_fired() {
            return Err("shutting down".into());
        }
        let source = std::fs::read_to_string(&self.config.script)
            .map_err(|e| format!("cannot read {}: {e}", self.config.script.display()))?;
        let generation = Arc::new(Generation { number: inner.current.number + 1, source });
        // Workers that have ended dropped their queues.
        inner.workers.retain(|w| !w.is_closed());
        let mut asked = Vec::new();
        for worker in &inner.workers {
            let (ready, answer) = mpsc::channel();
            let (decide, verdict) = async_channel::bounded(1);
            if worker.try_send(Request { generation: generation.clone(), ready, verdict }).is_ok() {
                asked.push((answer, decide));
            }
        }
        if asked.is_empty() {
            return Err("no worker is serving the script".into());
        }
        let mut error = None;
        for (answer, _) in &asked {
            let failed = match answer.recv_timeout(READY_WAIT + ANSWER_WAIT) {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e,
                Err(mpsc::RecvTimeoutError::Disconnected) => "a worker stopped during the reload".into(),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    "a worker did not answer (busy in a loop that never yields?)".into()
                }
            };
            error.get_or_insert(failed);
        }
        let commit = error.is_none();
        if commit {
            inner.current = generation.clone();
        }
        for (_, decide) in &asked {
            let _ = decide.try_send(commit);
        }
        if commit {
            // Answered once every worker serves new connections with the new version.
            for (answer, _) in &asked {
                let _ = answer.recv_timeout(ANSWER_WAIT);
            }
        }
        match error {
            None => Ok(generation.number),
            Some(e) => Err(e),
        }
    }
}
