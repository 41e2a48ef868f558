//! Opening many client connections at once, shared by the load generators.

use std::net::SocketAddr;
use std::time::Duration;

use compio::net::TcpStream;

/// How long one connection attempt may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a connection per id concurrently on this thread's runtime. Each
/// failure is described (`"{who} {id}: ..."`) to `on_failure`; the rest are
/// returned with their ids.
pub(crate) async fn connect_all(
    addr: SocketAddr,
    ids: &[usize],
    who: &str,
    nodelay: bool,
    mut on_failure: impl FnMut(String),
) -> Vec<(usize, TcpStream)> {
    let tasks: Vec<_> = ids
        .iter()
        .map(|&id| {
            compio::runtime::spawn(async move {
                (id, compio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await)
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
