//! The self-checking examples run as a user would start them.

mod common;

use std::time::Duration;

use common::Moonport;

#[test]
fn tiles_example_streams_and_verifies_every_tile() {
    for workers in [1, 2] {
        let out = Moonport::new("../../../../examples/tiles.lua").workers(workers).run(Duration::from_secs(60));
        assert_eq!(out.code(), Some(0), "workers={workers}\n{}\n{}", out.stdout, out.stderr);
        assert_eq!(
            out.stdout.trim_end(),
            "tiles ok: 960 tiles, 10961892 pixel bytes, adler32 0xe889f63c",
            "workers={workers}\n{}",
            out.stderr
        );
    }
}

#[test]
fn udp_echo_example_returns_every_datagram_to_its_sender() {
    let server = Moonport::new("../../../../examples/udp_echo.lua").arg(0).start();
    let addr = server.addr();
    let clients: Vec<std::net::UdpSocket> =
        (0..3).map(|_| std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a client")).collect();
    for (i, c) in clients.iter().enumerate() {
        c.set_read_timeout(Some(common::IO_TIMEOUT)).expect("timeout");
        for n in 0..20 {
            let msg = format!("client {i} datagram {n} {}", "x".repeat(n * 50));
            c.send_to(msg.as_bytes(), addr).expect("send");
            let mut buf = [0u8; 2048];
            let (len, from) = c.recv_from(&mut buf).expect("echo arrives");
            assert_eq!(from, addr);
            assert_eq!(&buf[..len], msg.as_bytes());
        }
    }
    // A big datagram (60 000 bytes) comes back whole.
    let big: Vec<u8> = (0..60_000u32).map(|i| (i % 251) as u8).collect();
    clients[0].send_to(&big, addr).expect("send big");
    let mut buf = vec![0u8; 65_536];
    let (len, _) = clients[0].recv_from(&mut buf).expect("big echo");
    assert_eq!(&buf[..len], &big[..]);
}
