//! Many connections on one worker. Every coroutine a worker runs holds one
//! slot of mlua's reference stack, which LuaJIT caps at 8000 per Lua state;
//! waiting calls must hold none beyond that, or a worker falls over at a few
//! thousand connections. Past `--max-coroutines` new connections are closed
//! with a warning and the others carry on.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{Moonport, connect, raise_own_nofile};

const ECHO: &str = "plain_echo.lua";

/// Every connection sends a distinct message and must get exactly it back.
fn echo_all(conns: &mut [std::net::TcpStream]) -> usize {
    for (i, c) in conns.iter_mut().enumerate() {
        c.write_all(format!("{i:08}").as_bytes()).expect("send");
    }
    let mut answered = 0;
    for (i, c) in conns.iter_mut().enumerate() {
        let mut buf = [0u8; 8];
        if c.read_exact(&mut buf).is_ok() && buf == *format!("{i:08}").as_bytes() {
            answered += 1;
        }
    }
    answered
}

#[test]
fn one_worker_serves_4000_connections_at_once() {
    const N: usize = 4000;
    assert!(raise_own_nofile(N as u64 + 100) > N as u64, "the test needs {N} descriptors");
    let moonport = Moonport::new(ECHO).workers(1);
    // Windows has no per-process descriptor limit to raise.
    #[cfg(unix)]
    let moonport = moonport.nofile_limit(N as u64 + 200);
    let server = moonport.start();
    let mut conns: Vec<_> = (0..N).map(|_| connect(server.addr())).collect();
    // Twice: the second round has every connection writing at once again.
    assert_eq!(echo_all(&mut conns), N, "{}", server.log());
    assert_eq!(echo_all(&mut conns), N, "{}", server.log());
    assert!(!server.log().contains("ERROR"), "{}", server.log());
}

#[test]
fn past_the_coroutine_limit_new_connections_are_closed_and_the_rest_go_on() {
    let server = Moonport::new(ECHO).workers(1).option("--max-coroutines=50").start();
    let mut served: Vec<_> = (0..50).map(|_| connect(server.addr())).collect();
    assert_eq!(echo_all(&mut served), 50);
    let mut refused = connect(server.addr());
    let mut buf = [0u8; 1];
    assert!(matches!(refused.read(&mut buf), Ok(0) | Err(_)), "a connection past the limit is closed");
    assert!(server.wait_log("closed unserved: ", Duration::from_secs(5)), "{}", server.log());
    assert!(server.log().contains("too many coroutines (this worker's limit is 50)"), "{}", server.log());
    // The first fifty still work, and a freed slot serves a new connection.
    assert_eq!(echo_all(&mut served), 50);
    drop(served.pop());
    std::thread::sleep(Duration::from_millis(200));
    let mut again = vec![connect(server.addr())];
    assert_eq!(echo_all(&mut again), 1, "{}", server.log());
}
