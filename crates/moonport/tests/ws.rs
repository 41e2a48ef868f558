//! `moonport.ws` against an independent peer (the `tungstenite` crate) and
//! against hand-made frames for what a correct client never sends: each
//! rule break gets its close code, and other clients carry on.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{IO_TIMEOUT, Moonport, Server};
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

fn server() -> Server {
    Moonport::new("ws_server.lua").workers(1).start()
}

fn client(addr: SocketAddr, path: &str, extra: &[(&'static str, &str)]) -> WebSocket<TcpStream> {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    for (k, v) in extra {
        req.headers_mut().insert(*k, v.parse().unwrap());
    }
    tungstenite::client::client(req, stream).expect("handshake").0
}

fn text(ws: &mut WebSocket<TcpStream>) -> String {
    match ws.read().expect("a message") {
        Message::Text(t) => t.to_string(),
        other => panic!("text expected, got {other:?}"),
    }
}

#[test]
fn echoes_and_shows_the_request() {
    let srv = server();
    let mut ws = client(srv.addr(), "/room/1?x=2", &[("x-test", "yes"), ("sec-websocket-protocol", "chat, other")]);
    ws.send(Message::text("hello")).unwrap();
    assert_eq!(text(&mut ws), "hello");
    ws.send(Message::binary(vec![0u8, 1, 255])).unwrap();
    assert_eq!(ws.read().unwrap(), Message::binary(vec![0u8, 1, 255]));
    ws.send(Message::text("whoami")).unwrap();
    assert_eq!(text(&mut ws), "GET /room/1 x=2 yes chat");
    let big = "é".repeat(2000);
    ws.send(Message::text(big.clone())).unwrap();
    assert_eq!(text(&mut ws), big);
    // A buffer goes out as is (large: without a copy), and a slice of it.
    ws.send(Message::text("buffer")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::binary(vec![b'b'; 100000]));
    assert_eq!(text(&mut ws), "bbb");
    // Pings both ways: ours is answered inside recv, the server's reaches us.
    ws.send(Message::Ping(b"p1".to_vec().into())).unwrap();
    assert_eq!(ws.read().unwrap(), Message::Pong(b"p1".to_vec().into()));
    ws.send(Message::text("ping")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::Ping(b"hello".to_vec().into()));
    assert_eq!(text(&mut ws), "pinged");
    // The client closes: the server answers with the same code and ends.
    ws.close(Some(CloseFrame { code: CloseCode::Away, reason: "done".into() })).unwrap();
    match ws.read() {
        Ok(Message::Close(Some(f))) => assert_eq!(u16::from(f.code), 1001),
        other => panic!("close expected, got {other:?}"),
    }
    assert!(srv.wait_log_until(IO_TIMEOUT, |_| srv.stdout().contains("closed by peer: 1001 done")));
}

#[test]
fn frames_stay_whole_when_sends_wait() {
    let srv = server();
    let mut ws = client(srv.addr(), "/", &[]);
    ws.send(Message::text("flood")).unwrap();
    // Not reading yet: the server's sends fill the socket buffers and wait.
    std::thread::sleep(Duration::from_millis(300));
    let mut next = [1u32, 1u32];
    loop {
        let msg = text(&mut ws);
        if msg == "flooded" {
            break;
        }
        let mut parts = msg.splitn(3, ' ');
        let (tag, i, pad) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap_or(""));
        let k = usize::from(tag == "b");
        assert_eq!(i.parse::<u32>().unwrap(), next[k], "{tag}'s messages in order");
        assert_eq!(pad.len(), 1000, "message {tag} {i} whole");
        next[k] += 1;
    }
    assert_eq!(next, [3001, 3001]);
}

#[test]
fn a_receive_that_times_out_goes_on_where_it_stopped() {
    let srv = server();
    let mut raw = Raw::upgrade(srv.addr());
    raw.frame(true, 1, b"slow", true);
    assert_eq!(raw.read_frame(), (1, b"slow".to_vec()));
    // Half a frame, then nothing for longer than the 0.2 s read timeout.
    let mut frame = vec![0x81, 0x80 | 5];
    frame.extend(KEY);
    frame.extend(b"hello".iter().enumerate().map(|(i, b)| b ^ KEY[i % 4]));
    raw.s.write_all(&frame[..5]).unwrap();
    assert_eq!(raw.read_frame(), (1, b"timed out".to_vec()));
    raw.s.write_all(&frame[5..]).unwrap();
    assert_eq!(raw.read_frame(), (1, b"hello".to_vec()));
}

#[test]
fn the_server_closes_with_code_and_reason() {
    let srv = server();
    let mut ws = client(srv.addr(), "/", &[]);
    ws.send(Message::text("bye")).unwrap();
    match ws.read().unwrap() {
        Message::Close(Some(f)) => assert_eq!((u16::from(f.code), f.reason.as_str()), (4000, "bye now")),
        other => panic!("close expected, got {other:?}"),
    }
    // tungstenite answers the close; the server's close() then returns true.
    let _ = ws.flush();
    assert!(srv.wait_log_until(IO_TIMEOUT, |_| srv.stdout().contains("close: \ttrue")));
    // A handler that just returns closes with 1000.
    let mut ws = client(srv.addr(), "/", &[]);
    ws.send(Message::text("return")).unwrap();
    match ws.read().unwrap() {
        Message::Close(Some(f)) => assert_eq!(u16::from(f.code), 1000),
        other => panic!("close expected, got {other:?}"),
    }
}

#[test]
fn rooms_attach_to_websockets() {
    let srv = Moonport::new("ws_server.lua").workers(2).start();
    let mut viewers: Vec<_> = (0..3).map(|_| client(srv.addr(), "/viewer", &[])).collect();
    for v in &mut viewers {
        assert_eq!(text(v), "ready");
    }
    let mut publisher = client(srv.addr(), "/", &[]);
    for i in 0..5 {
        publisher.send(Message::text(format!("pub frame {i}"))).unwrap();
    }
    for v in &mut viewers {
        for i in 0..5 {
            assert_eq!(text(v), format!("frame {i}"));
        }
    }
    // A viewer that goes away ends its attachment at the next message.
    drop(viewers.pop());
    publisher.send(Message::text("pub after")).unwrap();
    for v in &mut viewers {
        assert_eq!(text(v), "after");
    }
    assert!(srv.wait_log_until(IO_TIMEOUT, |_| srv.stdout().contains("attach ended: ")), "{}", srv.stdout());
}

#[test]
fn a_shutdown_says_going_away() {
    let mut srv = server();
    let mut ws = client(srv.addr(), "/", &[]);
    ws.send(Message::text("hi")).unwrap();
    assert_eq!(text(&mut ws), "hi");
    srv.terminate();
    match ws.read().unwrap() {
        Message::Close(Some(f)) => assert_eq!((u16::from(f.code), f.reason.as_str()), (1001, "server shutting down")),
        other => panic!("close expected, got {other:?}"),
    }
    let _ = ws.flush();
    assert!(srv.wait_exit(Duration::from_secs(10)).is_some(), "moonport exits after the close handshake");
    // The output pipe may still be draining after the exit (slow under Wine).
    let said = "closed by peer: 1001 server shutting down";
    assert!(srv.wait_log_until(IO_TIMEOUT, |_| srv.stdout().contains(said)), "{}", srv.stdout());
}

/// A client that writes frames by hand.
struct Raw {
    s: TcpStream,
}

const KEY: [u8; 4] = [1, 2, 3, 4];

impl Raw {
    fn upgrade(addr: SocketAddr) -> Raw {
        Raw::upgrade_with(addr, "").0
    }

    /// Upgrades with `extra` request header lines; returns the response head too.
    fn upgrade_with(addr: SocketAddr, extra: &str) -> (Raw, String) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let req = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        );
        s.write_all(req.as_bytes()).unwrap();
        let head = read_head(&mut s);
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        assert!(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "{head}");
        (Raw { s }, head)
    }

    fn frame(&mut self, fin: bool, opcode: u8, payload: &[u8], masked: bool) {
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        let m = if masked { 0x80 } else { 0 };
        match payload.len() {
            n @ 0..=125 => out.push(m | n as u8),
            n @ 126..=65535 => {
                out.push(m | 126);
                out.extend((n as u16).to_be_bytes());
            }
            n => {
                out.push(m | 127);
                out.extend((n as u64).to_be_bytes());
            }
        }
        if masked {
            out.extend(KEY);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ KEY[i % 4]));
        } else {
            out.extend(payload);
        }
        // The server may already have closed on an earlier frame.
        let _ = self.s.write_all(&out);
    }

    /// Reads one server frame: opcode and payload.
    fn read_frame(&mut self) -> (u8, Vec<u8>) {
        let (first, payload) = self.read_raw_frame();
        (first & 0xf, payload)
    }

    /// Reads one server frame: its first byte (FIN, RSV, opcode) and payload.
    fn read_raw_frame(&mut self) -> (u8, Vec<u8>) {
        let mut h = [0u8; 2];
        self.s.read_exact(&mut h).expect("a frame header");
        assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
        let len = match h[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                self.s.read_exact(&mut b).unwrap();
                u16::from_be_bytes(b) as usize
            }
            127 => {
                let mut b = [0u8; 8];
                self.s.read_exact(&mut b).unwrap();
                u64::from_be_bytes(b) as usize
            }
            n => n as usize,
        };
        let mut payload = vec![0u8; len];
        self.s.read_exact(&mut payload).unwrap();
        (h[0], payload)
    }

    /// Expects a close frame with `code`, then the end of the connection.
    fn expect_close(&mut self, code: u16) {
        let (op, payload) = self.read_frame();
        assert_eq!(op, 8, "close frame expected, got opcode {op} {payload:?}");
        assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), code, "{:?}", String::from_utf8_lossy(&payload));
        let mut rest = Vec::new();
        let _ = self.s.read_to_end(&mut rest);
        assert!(rest.is_empty(), "nothing after the close frame: {rest:?}");
    }
}

fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[test]
fn fragments_with_control_frames_between_them() {
    let srv = server();
    let mut raw = Raw::upgrade(srv.addr());
    let euro = "€".as_bytes();
    raw.frame(false, 1, &[b'a', euro[0]], true);
    raw.frame(true, 9, b"mid", true);
    raw.frame(false, 0, &euro[1..], true);
    raw.frame(true, 0, b"z", true);
    assert_eq!(raw.read_frame(), (10, b"mid".to_vec()));
    assert_eq!(raw.read_frame(), (1, "a€z".as_bytes().to_vec()));
    raw.frame(true, 8, &1000u16.to_be_bytes(), true);
    raw.expect_close(1000);
}

#[test]
fn permessage_deflate_when_enabled_and_offered() {
    use moonport::proto::ws::deflate::{Deflater, Inflater, Params};
    let srv = Moonport::new("ws_server.lua").workers(1).arg("deflate").start();
    let offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, permessage-deflate\r\n";
    let (mut raw, head) = Raw::upgrade_with(srv.addr(), offer);
    assert!(head.contains("Sec-WebSocket-Extensions: permessage-deflate\r\n"), "{head}");
    let mut ours = Deflater::new(Params::default());
    let mut theirs = Inflater::new();
    for _ in 0..2 {
        let text = "compress me ".repeat(50);
        let packed = ours.compress(text.as_bytes());
        assert!(packed.len() < 100);
        raw.frame(true, 0x40 | 1, &packed, true);
        let (first, payload) = raw.read_raw_frame();
        assert_eq!(first, 0x80 | 0x40 | 1, "FIN, RSV1 and text");
        assert_eq!(theirs.inflate(&payload, 1 << 20), Ok(Ok(text.into_bytes())));
    }
    // Uncompressed messages still pass.
    raw.frame(true, 1, b"plain", true);
    let (first, payload) = raw.read_raw_frame();
    assert_eq!(first & 0x40, 0x40, "the server compresses all it sends");
    assert_eq!(theirs.inflate(&payload, 100), Ok(Ok(b"plain".to_vec())));
    // An offer limiting the server's window is declined: no extension.
    let (mut raw, head) =
        Raw::upgrade_with(srv.addr(), "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n");
    assert!(!head.contains("Extensions"), "{head}");
    raw.frame(true, 0x40 | 1, &ours.compress(b"x"), true);
    raw.expect_close(1002);
}

#[test]
fn rule_breaks_get_their_close_codes_and_others_carry_on() {
    let srv = server();
    let mut bystander = client(srv.addr(), "/", &[]);
    type Send = Box<dyn Fn(&mut Raw)>;
    let cases: Vec<(&str, Send, u16)> = vec![
        ("unmasked frame", Box::new(|r| r.frame(true, 1, b"hi", false)), 1002),
        ("invalid utf-8", Box::new(|r| r.frame(true, 1, b"\xc3\x28", true)), 1007),
        (
            "invalid utf-8 across fragments",
            Box::new(|r| {
                r.frame(false, 1, b"ok\xe2\x82", true);
                r.frame(true, 0, b"\x28", true);
            }),
            1007,
        ),
        ("message too big", Box::new(|r| r.frame(true, 2, &[0; 5000], true)), 1009),
        (
            "fragments too big",
            Box::new(|r| {
                r.frame(false, 2, &[0; 2000], true);
                r.frame(false, 0, &[0; 2000], true);
                r.frame(false, 0, &[0; 2000], true);
            }),
            1009,
        ),
        ("reserved opcode", Box::new(|r| r.frame(true, 3, b"", true)), 1002),
        ("fragmented control frame", Box::new(|r| r.frame(false, 9, b"", true)), 1002),
        ("continuation without a message", Box::new(|r| r.frame(true, 0, b"x", true)), 1002),
        ("invalid close code", Box::new(|r| r.frame(true, 8, &1005u16.to_be_bytes(), true)), 1002),
    ];
    for (what, send, code) in cases {
        let mut raw = Raw::upgrade(srv.addr());
        send(&mut raw);
        raw.expect_close(code);
        let reason = what.split(" across").next().unwrap().replace("fragments", "message");
        assert!(
            srv.wait_log_until(IO_TIMEOUT, |log| log.contains(&format!("{reason}; closing with {code}"))),
            "{what}: no log line\n{}",
            srv.log()
        );
        bystander.send(Message::text(what)).unwrap();
        assert_eq!(text(&mut bystander), what);
    }
}

#[test]
fn requests_that_are_not_upgrades_get_http_errors() {
    let srv = server();
    let ask = |req: &[u8]| {
        let mut s = TcpStream::connect(srv.addr()).unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.write_all(req).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    let plain = ask(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(plain.starts_with("HTTP/1.1 426 ") && plain.contains("Sec-WebSocket-Version: 13"), "{plain}");
    assert!(ask(b"\x16\x03\x01\x02\x00\x01\r\n\r\n").starts_with("HTTP/1.1 400 "));
    let huge = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(4000));
    assert!(ask(huge.as_bytes()).starts_with("HTTP/1.1 431 "));
    let many: String = (0..100).map(|i| format!("h{i}: v\r\n")).collect();
    assert!(ask(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()).starts_with("HTTP/1.1 431 "));
}

#[test]
fn a_trickled_request_head_times_out() {
    let srv = server();
    let mut s = TcpStream::connect(srv.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    for b in b"GET / HTTP/1.1\r\nHost: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" {
        if s.write_all(&[*b]).is_err() {
            break;
        }
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if !out.is_empty() {
            break;
        }
    }
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

#[test]
fn sessions_count_against_the_coroutine_limit() {
    // One session is its coroutine and six more units: a limit of 10 serves
    // one, closes the second unserved, and serves again once the first is gone.
    let srv = Moonport::new("ws_server.lua").workers(1).option("--max-coroutines=10").start();
    let mut first = client(srv.addr(), "/", &[]);
    first.send(Message::text("one")).unwrap();
    assert_eq!(text(&mut first), "one");
    let refused = TcpStream::connect(srv.addr()).expect("connect");
    refused.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let req = format!("ws://{}/", srv.addr()).into_client_request().unwrap();
    assert!(tungstenite::client::client(req, refused).is_err(), "a second session must not be served");
    assert!(srv.wait_log("websocket connection closed unserved: ", Duration::from_secs(5)), "{}", srv.log());
    first.close(None).unwrap();
    let _ = first.read();
    drop(first);
    std::thread::sleep(Duration::from_millis(300));
    let mut again = client(srv.addr(), "/", &[]);
    again.send(Message::text("two")).unwrap();
    assert_eq!(text(&mut again), "two");
}
