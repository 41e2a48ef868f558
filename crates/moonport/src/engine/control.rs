//! The control listener (`moonport run --control ADDR`): how `moonport
//! reload` reaches a running process on every platform (Windows has no
//! SIGHUP).
//!
//! One line each way on a plain TCP connection: the client sends `reload`,
//! the process answers `ok generation N` or `error: WHY` and closes. It runs
//! on a thread of its own with blocking sockets, one request at a time (a
//! reload waits for every worker anyway), so it answers even while the
//! workers are busy. Anyone who can connect can make the process re-read its
//! script, hence a loopback address.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use super::Engine;

/// How long a client may take to send its request.
const REQUEST_WAIT: Duration = Duration::from_secs(5);
/// Longest request line read.
const MAX_REQUEST: u64 = 64;
/// How long `moonport reload` waits for the answer: longer than a reload
/// may take (`reload::READY_WAIT` plus the wait for a silent worker).
const ANSWER_WAIT: Duration = Duration::from_secs(30);

/// Starts the control listener when `--control` asks for one.
pub(super) fn start(engine: &Arc<Engine>) -> Result<(), String> {
    let Some(addr) = engine.config.control else { return Ok(()) };
    let listener = TcpListener::bind(addr).map_err(|e| format!("control listener on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let engine = engine.clone();
    std::thread::Builder::new()
        .name("moonport-control".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => answer(&engine, stream),
                    Err(e) => {
                        tracing::warn!("control listener: {e}");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        })
        .map_err(|e| format!("cannot start the control listener: {e}"))?;
    tracing::info!("control listener on {bound} (moonport reload --control {bound})");
    Ok(())
}

fn answer(engine: &Engine, stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(REQUEST_WAIT));
    let _ = stream.set_write_timeout(Some(REQUEST_WAIT));
    let mut line = String::new();
    let _ = BufReader::new((&stream).take(MAX_REQUEST)).read_line(&mut line);
    let reply = match line.trim() {
        "reload" => match engine.reload() {
            Ok(n) => format!("ok generation {n}\n"),
            Err(e) => format!("error: {e}\n"),
        },
        other => format!("error: unknown request {other:?} (expected \"reload\")\n"),
    };
    let _ = (&stream).write_all(reply.as_bytes());
}

/// `moonport reload`: asks the process whose control listener is at `addr`
/// to reload; its answer (`generation N`) or why the reload was rejected.
pub fn request_reload(addr: SocketAddr) -> Result<String, String> {
    let stream = TcpStream::connect_timeout(&addr, REQUEST_WAIT).map_err(|e| format!("cannot reach {addr}: {e}"))?;
    let _ = stream.set_read_timeout(Some(ANSWER_WAIT));
    (&stream).write_all(b"reload\n").map_err(|e| format!("{addr}: {e}"))?;
    let mut reply = String::new();
    (&stream).read_to_string(&mut reply).map_err(|e| format!("{addr}: no answer: {e}"))?;
    let reply = reply.trim_end();
    if reply.is_empty() {
        return Err(format!("{addr} closed the connection without an answer"));
    }
    match reply.strip_prefix("ok ") {
        Some(ok) => Ok(ok.to_string()),
        None => Err(reply.strip_prefix("error: ").unwrap_or(reply).to_string()),
    }
}
