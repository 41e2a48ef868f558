//! The admin listener: `GET /metrics` (the Prometheus text exposition,
//! format 0.0.4) and `GET /health` (`200 ok` while serving, `503 draining`
//! once a shutdown has begun), over moonport's own HTTP code.
//!
//! It runs on a thread of its own with its own compio runtime, so a scrape
//! never waits behind a busy worker and still answers while the workers
//! drain; its traffic counts in no worker's statistics.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::Engine;
use crate::net::{AcceptLoop, TcpConn};
use crate::platform::{self, ListenOptions};
use crate::proto::http::body::{Framing, request_framing};
use crate::proto::http::response::{Data, Response};
use crate::proto::http::server::{read_head, send_error};
use crate::proto::http::{Head, Limits};

/// Admin connections open at once; more are closed as they arrive.
const MAX_CONNECTIONS: usize = 64;
/// How long a kept-alive connection may wait for its next request.
const IDLE: Duration = Duration::from_secs(60);
/// How long a request head may take once it has begun.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
const READ_BUFFER: usize = 4096;

impl Engine {
    /// Starts the admin listener on `addr`, once: later calls (every worker
    /// runs the script) get the address it already runs on.
    pub fn start_admin(self: &Arc<Self>, addr: SocketAddr) -> io::Result<SocketAddr> {
        let mut running = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(bound) = *running {
            return Ok(bound);
        }
        let listener = platform::bind_listener(addr, ListenOptions { backlog: 64, ipv6_only: None, shared: false })?;
        let bound = listener.local_addr()?;
        let engine = self.clone();
        std::thread::Builder::new().name("moonport-admin".into()).spawn(
            move || match compio::runtime::Runtime::new() {
                Ok(runtime) => runtime.block_on(serve(engine, listener)),
                Err(e) => tracing::error!("admin: cannot start its I/O runtime: {e}"),
            },
        )?;
        tracing::info!("admin endpoint http://{bound} (/metrics, /health)");
        *running = Some(bound);
        Ok(bound)
    }
}

async fn serve(engine: Arc<Engine>, listener: std::net::TcpListener) {
    let accept = match AcceptLoop::socket(listener) {
        Ok(accept) => accept,
        Err(e) => return tracing::error!("admin: {e}"),
    };
    let open = Rc::new(Cell::new(0usize));
    accept
        .run(std::future::pending(), |stream, _| {
            // Past the limit the stream is dropped, which closes it.
            if open.get() >= MAX_CONNECTIONS {
                return;
            }
            open.set(open.get() + 1);
            let (engine, open) = (engine.clone(), open.clone());
            compio::runtime::spawn(async move {
                serve_conn(&engine, TcpConn::new(stream, READ_BUFFER)).await;
                open.set(open.get() - 1);
            })
            .detach();
        })
        .await;
}

/// Answers requests on one connection until it closes or asks to.
async fn serve_conn(engine: &Engine, conn: TcpConn) {
    loop {
        let head = match read_head(&conn, Limits::default(), Some(IDLE), Some(HEAD_TIMEOUT)).await {
            Ok(head) => head,
            Err(e) => {
                if let Some(status) = e.status() {
                    let _ = send_error(&conn, status, &e.to_string(), "").await;
                }
                break;
            }
        };
        // No admin request has a body: one that comes with one is answered,
        // then the connection closes instead of reading it.
        let bodiless = matches!(request_framing(&head), Ok(Framing::None | Framing::Length(0)));
        let mut res = Response::new(head.method == "HEAD", head.version == 1, head.keep_alive() && bodiless);
        let (status, content_type, body) = answer(engine, &head);
        res.status = status;
        res.set_header("Content-Type", Some(content_type));
        if status == 405 {
            res.set_header("Allow", Some("GET, HEAD"));
        }
        if res.send(&conn, Data::Bytes(body.as_bytes())).await.is_err() || !res.keep_alive() {
            break;
        }
    }
    conn.close();
}

fn answer(engine: &Engine, head: &Head) -> (u16, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    if head.method != "GET" && head.method != "HEAD" {
        return (405, TEXT, "method not allowed\n".into());
    }
    match head.path() {
        "/metrics" => (200, "text/plain; version=0.0.4; charset=utf-8", engine.metrics.render()),
        "/health" if engine.shutdown.is_fired() => (503, TEXT, "draining\n".into()),
        "/health" => (200, TEXT, "ok\n".into()),
        _ => (404, TEXT, "not found (try /metrics or /health)\n".into()),
    }
}
