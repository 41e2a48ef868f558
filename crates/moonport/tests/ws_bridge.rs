//! `examples/vnc_bridge.lua` (and so `moonport.ws.bridge`) between an
//! independent WebSocket client (`tungstenite`) and a stand-in VNC server
//! (a TCP server that greets like RFB and echoes): tokens choose the target,
//! the allow-list holds, bad tokens and dead targets get clear answers, the
//! static files are served beside the bridge, and a shutdown says goodbye.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;

use common::{IO_TIMEOUT, Moonport, Server};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

const GREETING: &[u8] = b"RFB 003.008\n";

/// A stand-in VNC server on a thread: greets, then echoes every byte until
/// the peer closes, or closes itself after receiving `quit`.
fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
    let addr = listener.local_addr().expect("addr");
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            thread::spawn(move || {
                conn.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
                conn.write_all(GREETING).expect("greet");
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = conn.read(&mut buf) {
                    if &buf[..n] == b"quit" {
                        return;
                    }
                    if conn.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn start(upstream: SocketAddr, token_file: &std::path::Path) -> Server {
    Moonport::new("../../../../examples/vnc_bridge.lua")
        .workers(1)
        .arg("--port")
        .arg(0)
        .arg("--web")
        .arg(".")
        .arg("--target")
        .arg(format!("desktop={upstream}"))
        .arg("--target")
        .arg("down=127.0.0.1:1")
        .arg("--token-file")
        .arg(token_file.display())
        .arg("--allow")
        .arg(upstream)
        .start()
}

/// A WebSocket to `path` on the bridge, offering `protocol` if given.
fn open(addr: SocketAddr, path: &str, protocol: Option<&str>) -> Result<WebSocket<TcpStream>, u16> {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let mut req = format!("ws://{addr}{path}").into_client_request().expect("request");
    if let Some(p) = protocol {
        req.headers_mut().insert("sec-websocket-protocol", p.parse().expect("header"));
    }
    match tungstenite::client::client(req, stream) {
        Ok((ws, response)) => {
            let chosen = response.headers().get("sec-websocket-protocol").map(|v| v.to_str().unwrap_or("?"));
            assert_eq!(chosen, protocol, "subprotocol answered");
            Ok(ws)
        }
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => Err(r.status().as_u16()),
        Err(e) => panic!("handshake with {path}: {e}"),
    }
}

fn binary(ws: &mut WebSocket<TcpStream>) -> Vec<u8> {
    match ws.read().expect("a message") {
        Message::Binary(b) => b.to_vec(),
        other => panic!("binary expected, got {other:?}"),
    }
}

/// The close code and reason the bridge sent.
fn close_of(ws: &mut WebSocket<TcpStream>) -> (u16, String) {
    match ws.read().expect("a close") {
        Message::Close(Some(f)) => (u16::from(f.code), f.reason.to_string()),
        other => panic!("close expected, got {other:?}"),
    }
}

/// A plain HTTP GET; returns the whole response as text.
fn get(addr: SocketAddr, path: &str) -> String {
    let mut s = common::connect(addr);
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("response");
    out
}

#[test]
fn tokens_choose_the_target_and_bytes_pass_both_ways() {
    let up = upstream();
    let tokens = std::env::temp_dir().join(format!("moonport-vnc-tokens-{}", std::process::id()));
    // `lab` is allowed (same server); `elsewhere` names a port not on the allow-list.
    std::fs::write(&tokens, format!("# websockify's format\nlab: {up}\nelsewhere: 127.0.0.1:9\n")).expect("tokens");
    let srv = start(up, &tokens);
    let addr = srv.addr();

    // As websockify: the "binary" subprotocol, token in the query.
    let mut ws = open(addr, "/websockify?token=desktop", Some("binary")).expect("bridged");
    assert_eq!(binary(&mut ws), GREETING);
    ws.send(Message::binary(b"\x01\x02\x03".to_vec())).expect("send");
    assert_eq!(binary(&mut ws), b"\x01\x02\x03");
    // A big message arrives whole, in as many frames as the bridge likes.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    ws.send(Message::binary(big.clone())).expect("send big");
    let mut echoed = Vec::new();
    while echoed.len() < big.len() {
        echoed.extend(binary(&mut ws));
    }
    assert!(echoed == big, "the big message came back changed");

    // As noVNC 1.3: no subprotocol, token in the path; a token from the file.
    let mut other = open(addr, "/websockify/lab", None).expect("bridged by the token file");
    assert_eq!(binary(&mut other), GREETING);
    // The upstream ending closes the WebSocket normally.
    other.send(Message::binary(b"quit".to_vec())).expect("send");
    assert_eq!(close_of(&mut other), (1000, "upstream closed".to_string()));

    // Refusals before the upgrade, and a dead target after it.
    assert_eq!(open(addr, "/websockify?token=nope", None).err(), Some(403));
    assert_eq!(open(addr, "/websockify?token=elsewhere", None).err(), Some(403));
    srv.expect_log("127.0.0.1:9, which is not on the allow-list", IO_TIMEOUT);
    let mut dead = open(addr, "/websockify?token=down", Some("binary")).expect("upgraded");
    assert_eq!(close_of(&mut dead), (1011, "target unavailable".to_string()));

    // The first session carried on through all that; its close ends the bridge.
    ws.send(Message::binary(b"still here".to_vec())).expect("send");
    assert_eq!(binary(&mut ws), b"still here");
    ws.close(None).expect("close");
    srv.expect_log("ended: close 1005;", IO_TIMEOUT);

    // Files beside the bridge, and / leads to the noVNC page.
    let file = get(addr, "/harness.lua");
    assert!(file.starts_with("HTTP/1.1 200") && file.contains("function T.eq"), "{file}");
    assert!(get(addr, "/").contains("Location: /vnc.html"));

    // A shutdown tells a bridged browser it is going away.
    let mut last = open(addr, "/websockify?token=desktop", None).expect("bridged");
    assert_eq!(binary(&mut last), GREETING);
    srv.terminate();
    assert_eq!(close_of(&mut last), (1001, "server shutting down".to_string()));
    let _ = std::fs::remove_file(tokens);
}
