//! Asking one name server one question: over UDP from a fresh socket (a new
//! random source port per query, replies checked against the question), and
//! again over TCP when the reply did not fit in a datagram.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use compio::BufResult;
use compio::io::AsyncReadExt;
use compio::net::{TcpStream, UdpSocket};

use super::DnsError;
use super::wire::{self, Question, Reply};

/// The largest reply accepted over UDP: what we invite, with room to spare.
const UDP_READ: usize = 4096;

/// Sends `q` to `server` and waits for its reply until `deadline`.
pub async fn exchange(server: SocketAddr, q: &Question, deadline: Instant) -> Result<Reply, DnsError> {
    let query = q.encode()?;
    match super::within(deadline, udp(server, q, &query)).await? {
        Reply::Truncated => super::within(deadline, tcp(server, q, query)).await,
        reply => Ok(reply),
    }
}

async fn udp(server: SocketAddr, q: &Question, query: &[u8]) -> Result<Reply, DnsError> {
    let any = match server.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let socket = UdpSocket::bind(SocketAddr::new(any, 0)).await.map_err(io_error)?;
    let BufResult(sent, _) = socket.send_to(query.to_vec(), server).await;
    sent.map_err(io_error)?;
    let mut buf = Vec::with_capacity(UDP_READ);
    loop {
        buf.clear();
        let BufResult(res, back) = socket.recv_from(buf).await;
        buf = back;
        match res {
            Ok((n, from)) if from == server => {
                if let Some(reply) = wire::decode(&buf[..n], q) {
                    return Ok(reply);
                }
            }
            Ok(_) => {}
            // An ICMP "port unreachable" surfaces as a reset on Windows; like
            // the C resolver, wait on: the deadline decides.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Err(e) => return Err(io_error(e)),
        }
    }
}

async fn tcp(server: SocketAddr, q: &Question, query: Vec<u8>) -> Result<Reply, DnsError> {
    let mut stream = TcpStream::connect(server).await.map_err(io_error)?;
    let len = u16::try_from(query.len()).map_err(|_| DnsError::InvalidName)?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(&query);
    let BufResult(res, _) = crate::platform::write_all(&mut stream, framed).await;
    res.map_err(io_error)?;
    // compio reads into a Vec's spare capacity: exactly what is asked for.
    let BufResult(res, len) = stream.read_exact(Vec::with_capacity(2)).await;
    res.map_err(io_error)?;
    let len = u16::from_be_bytes([len[0], len[1]]);
    let BufResult(res, body) = stream.read_exact(Vec::with_capacity(usize::from(len))).await;
    res.map_err(io_error)?;
    match wire::decode(&body, q) {
        Some(Reply::Truncated) | None => Err(DnsError::Io("malformed reply over TCP".into())),
        Some(reply) => Ok(reply),
    }
}

fn io_error(e: io::Error) -> DnsError {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => DnsError::Refused,
        _ => DnsError::Io(e.to_string()),
    }
}
