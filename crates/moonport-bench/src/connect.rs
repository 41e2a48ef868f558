//! Opening client connections, shared by the load generators: many at once,
//! and with an optional per-connection preface (`--preface`/`--preface-until`)
//! for servers that take raw TCP only after a request, such as nginx with
//! `ngx.req.socket(true)` (see `bench/peers/README.md`).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use compio::BufResult;
use compio::io::{AsyncRead, AsyncWriteExt};
use compio::net::TcpStream;

/// How long one connection attempt may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest reply to a preface that is skipped before giving up.
const MAX_PREFACE_REPLY: usize = 64 * 1024;
/// Connections [`connect_ready`] opens at once, well below the usual listen
/// backlog of 1024: a burst of thousands of SYNs overflows a server's accept
/// queue, the dropped ones are retried after 1 s and 3 s, and the connect
/// timeout then fails them, which would measure the burst, not the server.
pub(crate) const CONNECT_BATCH: usize = 512;

/// Opens a connection per id concurrently on this thread's runtime. Each
/// failure is described (`"{who} {id}: ..."`) to `on_failure`; the rest are
/// returned with their ids.
pub(crate) async fn connect_all(
    addr: SocketAddr,
    ids: &[usize],
    who: &str,
    nodelay: bool,
    on_failure: impl FnMut(String),
) -> Vec<(usize, TcpStream)> {
    connect_from(addr, ids, who, nodelay, 0, on_failure).await
}

/// `connect_all`, from source address 127.0.0.(2 + id % sources) when
/// `sources` > 0 and the target is IPv4: all of 127.0.0.0/8 is this
/// machine's loopback, and each source address has its own ephemeral ports,
/// so tens of thousands of connections to one port do not run out of them.
pub(crate) async fn connect_from(
    addr: SocketAddr,
    ids: &[usize],
    who: &str,
    nodelay: bool,
    sources: u32,
    mut on_failure: impl FnMut(String),
) -> Vec<(usize, TcpStream)> {
    let tasks: Vec<_> = ids
        .iter()
        .map(|&id| {
            compio::runtime::spawn(async move {
                let connect = async move {
                    if sources == 0 || !addr.is_ipv4() {
                        return TcpStream::connect(addr).await;
                    }
                    let n = (id as u32) % sources;
                    let source = SocketAddr::from((
                        std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(127, 0, 0, 2)) + n),
                        0,
                    ));
                    TcpStream::bind_and_connect(source, addr).await
                };
                (id, compio::time::timeout(CONNECT_TIMEOUT, connect).await)
            })
        })
        .collect();
    let mut streams = Vec::with_capacity(ids.len());
    for task in tasks {
        let failure = match task.await {
            Ok((id, Ok(Ok(stream)))) => {
                if nodelay {
                    let _ = stream.set_nodelay(true);
                }
                streams.push((id, stream));
                continue;
            }
            Ok((id, Ok(Err(e)))) => format!("{who} {id}: connect to {addr} failed: {e}"),
            Ok((id, Err(_))) => format!("{who} {id}: connect to {addr} timed out after {CONNECT_TIMEOUT:?}"),
            Err(_) => "a connect task panicked".to_string(),
        };
        on_failure(failure);
    }
    streams
}

/// The server under test: `--addr`, and `--preface` for servers that want a
/// request first; flattened into the modes that drive an echo server.
#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    /// Target echo server; must be a loopback address (127.0.0.0/8 or ::1).
    #[arg(long)]
    addr: String,
    #[command(flatten)]
    preface: PrefaceArgs,
}

impl TargetArgs {
    /// The checked address, and the preface (leaked so that every
    /// connection task can borrow it for the rest of the process).
    pub(crate) fn resolve(self) -> Result<(SocketAddr, Option<&'static Preface>), String> {
        Ok((crate::target::resolve_loopback(&self.addr)?, self.preface.leak()))
    }
}

#[derive(Args, Debug, Clone)]
struct PrefaceArgs {
    /// Bytes sent once on every connection before the measured traffic, e.g.
    /// 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' for nginx-lua's raw socket.
    /// Escapes: \r \n \t \\ \xHH.
    #[arg(long, value_parser = parse_escaped)]
    preface: Option<Escaped>,
    /// After the preface, read and discard the server's reply up to and
    /// including this marker (same escapes), e.g. '\r\n\r\n'.
    #[arg(long, value_parser = parse_escaped, requires = "preface")]
    preface_until: Option<Escaped>,
}

impl PrefaceArgs {
    fn leak(self) -> Option<&'static Preface> {
        let send = self.preface?.0;
        Some(Box::leak(Box::new(Preface { send, until: self.preface_until.map(|u| u.0) })))
    }
}

/// Bytes given on the command line with backslash escapes.
#[derive(Clone, Debug)]
pub struct Escaped(Vec<u8>);

/// Parses `\r`, `\n`, `\t`, `\\` and `\xHH`; other bytes stand for themselves.
fn parse_escaped(s: &str) -> Result<Escaped, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let (byte, len) = match b.get(i + 1) {
            Some(b'r') => (b'\r', 2),
            Some(b'n') => (b'\n', 2),
            Some(b't') => (b'\t', 2),
            Some(b'\\') => (b'\\', 2),
            Some(b'x') => {
                let hex = s.get(i + 2..i + 4).ok_or("\\x needs two hex digits")?;
                (u8::from_str_radix(hex, 16).map_err(|_| format!("bad escape \\x{hex}"))?, 4)
            }
            _ => return Err(format!("unknown escape at byte {i} (use \\r \\n \\t \\\\ \\xHH)")),
        };
        out.push(byte);
        i += len;
    }
    if out.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(Escaped(out))
}

/// The per-connection preface and the reply marker to skip to.
pub(crate) struct Preface {
    send: Vec<u8>,
    until: Option<Vec<u8>>,
}

/// Sends the preface on every stream concurrently and skips each reply up to
/// the marker; a stream that fails (or takes longer than the connect
/// timeout) is dropped and described to `on_failure`.
pub(crate) async fn preface_all(
    streams: Vec<(usize, TcpStream)>,
    p: &'static Preface,
    mut on_failure: impl FnMut(String),
) -> Vec<(usize, TcpStream)> {
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|(id, mut stream)| {
            compio::runtime::spawn(async move {
                let res = compio::time::timeout(CONNECT_TIMEOUT, send_preface(&mut stream, p)).await;
                (id, stream, res)
            })
        })
        .collect();
    let mut ready = Vec::with_capacity(tasks.len());
    for task in tasks {
        let failure = match task.await {
            Ok((id, stream, Ok(Ok(())))) => {
                ready.push((id, stream));
                continue;
            }
            Ok((id, _, Ok(Err(e)))) => format!("conn {id}: preface: {e}"),
            Ok((id, _, Err(_))) => format!("conn {id}: no reply to the preface within {CONNECT_TIMEOUT:?}"),
            Err(_) => "a preface task panicked".to_string(),
        };
        on_failure(failure);
    }
    ready
}

/// Connects every id, a batch at a time, and sends the preface (if any) on
/// each; failures of either step are described to `on_failure`.
pub(crate) async fn connect_ready(
    addr: SocketAddr,
    ids: &[usize],
    preface: Option<&'static Preface>,
    mut on_failure: impl FnMut(String),
) -> Vec<(usize, TcpStream)> {
    let mut ready = Vec::with_capacity(ids.len());
    for batch in ids.chunks(CONNECT_BATCH) {
        let streams = connect_all(addr, batch, "conn", true, &mut on_failure).await;
        ready.extend(match preface {
            Some(p) => preface_all(streams, p, &mut on_failure).await,
            None => streams,
        });
    }
    ready
}

/// Writes the preface, then reads until the reply marker (if any) has
/// arrived; bytes after the marker would be mistaken for echoes, so they are
/// an error.
pub(crate) async fn send_preface(stream: &mut TcpStream, p: &'static Preface) -> Result<(), String> {
    let BufResult(res, _) = stream.write_all(&p.send[..]).await;
    res.map_err(|e| format!("write failed: {e}"))?;
    let Some(marker) = &p.until else { return Ok(()) };
    let mut seen: Vec<u8> = Vec::new();
    loop {
        let BufResult(res, buf) = stream.read(Vec::with_capacity(4096)).await;
        match res {
            Ok(0) => return Err("server closed the connection before the reply marker".into()),
            Ok(_) => seen.extend_from_slice(&buf),
            Err(e) => return Err(format!("read failed: {e}")),
        }
        if let Some(pos) = seen.windows(marker.len()).position(|w| w == &marker[..]) {
            return if pos + marker.len() == seen.len() {
                Ok(())
            } else {
                Err("unexpected bytes after the reply marker".into())
            };
        }
        if seen.len() > MAX_PREFACE_REPLY {
            return Err(format!("no reply marker in the first {MAX_PREFACE_REPLY} bytes"));
        }
    }
}
