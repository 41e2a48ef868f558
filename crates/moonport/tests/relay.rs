//! `moonport.relay` through examples/tcp_proxy.lua: bytes arrive exactly,
//! half-closes pass through both ways, and the relay reports what it moved.

mod common;

use std::hash::{DefaultHasher, Hasher};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use common::Moonport;
use rand::RngCore;

const PROXY: &str = "../../../../examples/tcp_proxy.lua";

/// An upstream that reads until end of stream, then answers with the length
/// and hash of what it got and closes.
fn hashing_upstream() -> (u16, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
    let port = listener.local_addr().expect("upstream addr").port();
    let handle = thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("upstream accept");
        s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
        let mut hasher = DefaultHasher::new();
        let mut total = 0u64;
        let mut buf = vec![0; 1 << 16];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    hasher.write(&buf[..n]);
                    total += n as u64;
                }
                Err(e) => panic!("upstream read: {e}"),
            }
        }
        s.write_all(format!("{total} {:x}\n", hasher.finish()).as_bytes()).expect("upstream answer");
    });
    (port, handle)
}

#[test]
fn hundred_mib_through_the_relay_arrive_exactly_with_half_close() {
    const SIZE: usize = 100 << 20;
    let (up_port, upstream) = hashing_upstream();
    let server = Moonport::new(PROXY).workers(2).arg(0).arg(format!("127.0.0.1:{up_port}")).start();

    let mut data = vec![0u8; SIZE];
    rand::rng().fill_bytes(&mut data);
    let mut expect = DefaultHasher::new();
    expect.write(&data);

    let mut client = TcpStream::connect(server.addr()).expect("connect to proxy");
    client.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let writer = {
        let mut c = client.try_clone().expect("clone");
        thread::spawn(move || {
            c.write_all(&data).expect("send 100 MiB");
            // Half-close: the upstream sees end of stream and answers.
            c.shutdown(Shutdown::Write).expect("shutdown write");
        })
    };
    let mut answer = String::new();
    client.read_to_string(&mut answer).expect("answer, then end of stream from the proxy");
    writer.join().expect("writer");
    upstream.join().expect("upstream");
    assert_eq!(answer, format!("{SIZE} {:x}\n", expect.finish()), "length and hash seen upstream");
    server
        .expect_log(&format!("relay done: {SIZE} bytes up, {} bytes down, eof", answer.len()), Duration::from_secs(5));
}

#[test]
fn unreachable_upstream_closes_the_client_and_logs_why() {
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let server = Moonport::new(PROXY).workers(1).arg(0).arg(format!("127.0.0.1:{port}")).start();
    let mut client = TcpStream::connect(server.addr()).expect("connect to proxy");
    client.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).expect("closed by the proxy");
    assert!(rest.is_empty());
    server.expect_log("refused", Duration::from_secs(5));
}
