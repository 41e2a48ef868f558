//! The wire protocol of examples/broadcast.lua, for the tests that run it
//! (rooms.rs, cluster.rs): frames are a 4-byte big-endian length and the
//! payload; a zero-length frame from the publisher asks for the viewer count.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use super::Server;

/// The script, relative to the tests' working directory (`tests/lua/`).
pub const SCRIPT: &str = "../../../../examples/broadcast.lua";

/// The publisher and viewer addresses the server logged.
pub fn ports(server: &Server) -> (SocketAddr, SocketAddr) {
    assert!(server.wait_log("viewer port", Duration::from_secs(10)), "no ports logged\n{}", server.log());
    let log = server.log();
    let line = log.lines().find(|l| l.contains("publisher port")).expect("ports line");
    let nums: Vec<u16> = line.split(|c: char| !c.is_ascii_digit()).filter_map(|s| s.parse().ok()).collect();
    let (pub_port, view_port) = (nums[nums.len() - 2], nums[nums.len() - 1]);
    (SocketAddr::from(([127, 0, 0, 1], pub_port)), SocketAddr::from(([127, 0, 0, 1], view_port)))
}

pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

pub fn read_frame(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0; 4];
    s.read_exact(&mut len)?;
    let mut payload = vec![0; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut payload)?;
    Ok(payload)
}

/// Asks the server how many viewers it has, until it has `want`.
pub fn wait_viewers(publisher: &mut TcpStream, want: u32) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        publisher.write_all(&0u32.to_be_bytes()).expect("count query");
        let mut n = [0; 4];
        publisher.read_exact(&mut n).expect("count answer");
        let n = u32::from_be_bytes(n);
        if n == want {
            return;
        }
        assert!(Instant::now() < deadline, "only {n} of {want} viewers attached");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A client with a 20 s read timeout.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    s
}
