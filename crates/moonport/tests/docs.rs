//! The Lua in `docs/guide.md` and `docs/coming-from.md` runs as written.
//!
//! A ```lua block right after a `<!-- test: NAME -->` line is written to
//! `NAME.lua` in a scratch folder and run by the real binary from there. A
//! client snippet runs to its end and must print, line for line, what its
//! `-->` comments say (runs of spaces and tabs count as one space). A server
//! snippet is started with port 0 and spoken to over 127.0.0.1 by the test
//! below of the same name. Every Lua block of the two files is either tested
//! or says why not (`<!-- not tested: REASON -->`), and every tested block
//! has its test here, so no snippet goes stale unnoticed.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Client, IO_TIMEOUT, Moonport, Server, http_get};
use tungstenite::Message;

const DOCS: [&str; 2] = ["guide.md", "coming-from.md"];
const TESTED: &str = "<!-- test: ";
const EXCUSED: &str = "<!-- not tested: ";
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// A marked Lua block: its name (from `<!-- test: NAME -->`, or `None` when
/// excused), the file it is in, and its code.
struct Block {
    name: Option<String>,
    doc: &'static str,
    code: String,
}

fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

/// Every ```lua block of the docs; panics on one without a marker on the line before.
fn blocks() -> Vec<Block> {
    let mut found = Vec::new();
    for doc in DOCS {
        let text = std::fs::read_to_string(docs_dir().join(doc)).unwrap_or_else(|e| panic!("read docs/{doc}: {e}"));
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            if lines[i].trim_end() != "```lua" {
                i += 1;
                continue;
            }
            let marker = if i > 0 { lines[i - 1].trim() } else { "" };
            let name = if let Some(rest) = marker.strip_prefix(TESTED) {
                Some(
                    rest.strip_suffix("-->")
                        .unwrap_or_else(|| panic!("docs/{doc}:{i}: unclosed marker"))
                        .trim()
                        .to_string(),
                )
            } else if marker.starts_with(EXCUSED) {
                None
            } else {
                panic!(
                    "docs/{doc}:{}: a ```lua block needs `{TESTED}NAME -->` or `{EXCUSED}REASON -->` on the line before",
                    i + 1
                )
            };
            let end = (i + 1..lines.len())
                .find(|&j| lines[j].trim_end() == "```")
                .unwrap_or_else(|| panic!("docs/{doc}:{}: unclosed code block", i + 1));
            found.push(Block { name, doc, code: lines[i + 1..end].join("\n") + "\n" });
            i = end + 1;
        }
    }
    found
}

fn code(name: &str) -> String {
    let mut hits = blocks().into_iter().filter(|b| b.name.as_deref() == Some(name));
    let block = hits.next().unwrap_or_else(|| panic!("no `{TESTED}{name} -->` block in docs/"));
    assert!(hits.next().is_none(), "two blocks are called {name}");
    block.code
}

/// What a client snippet says it prints: the text after each `-->`, in order.
fn promised_output(code: &str) -> Vec<String> {
    code.lines().filter_map(|l| l.split_once("-->").map(|(_, said)| normalize(said))).collect()
}

fn normalize(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A folder the snippets are written to and run in; removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("moonport-docs-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the scratch folder");
        Self(dir)
    }

    /// Writes the snippet NAME to NAME.lua and returns a `moonport run` of it.
    fn snippet(&self, name: &str) -> Moonport {
        let file = format!("{name}.lua");
        std::fs::write(self.0.join(&file), code(name)).expect("write the snippet");
        Moonport::new(&file).dir(&self.0)
    }

    /// Starts a server snippet on a free port (its first argument), plus `args`.
    fn server(&self, name: &str, args: &[&dyn ToString]) -> Server {
        args.iter().fold(self.snippet(name).workers(2).arg(0), |m, a| m.arg(a.to_string())).start()
    }

    /// Runs a client snippet with `args` and checks it printed what its `-->` comments say.
    #[track_caller]
    fn client(&self, name: &str, args: &[&dyn ToString]) {
        let out = args.iter().fold(self.snippet(name), |m, a| m.arg(a.to_string())).run(RUN_LIMIT);
        assert_eq!(
            out.code(),
            Some(0),
            "{name} failed\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.stdout,
            out.stderr
        );
        let printed: Vec<String> = out.stdout.lines().map(normalize).collect();
        assert_eq!(
            printed,
            promised_output(&code(name)),
            "{name} printed otherwise than its --> comments say\n{}",
            out.stderr
        );
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn every_lua_block_is_marked_and_every_tested_one_has_a_test() {
    let names: Vec<String> = blocks().into_iter().filter_map(|b| b.name.map(|n| format!("{}: {n}", b.doc))).collect();
    // The tests of this file, by snippet name: keep in step with the functions below.
    let tests = [
        "guide.md: guide-echo",
        "guide.md: guide-lines",
        "guide.md: guide-client",
        "guide.md: guide-chat",
        "guide.md: guide-frames",
        "guide.md: guide-web",
        "guide.md: guide-web-client",
        "guide.md: guide-tls",
        "guide.md: guide-tls-client",
        "guide.md: guide-proxy",
        "guide.md: guide-bridge",
        "guide.md: guide-latest",
        "guide.md: guide-metrics",
        "coming-from.md: from-copas",
        "coming-from.md: from-luasocket",
        "coming-from.md: from-openresty",
        "coming-from.md: from-openresty-threads",
        "coming-from.md: from-berkeley-tcp",
        "coming-from.md: from-berkeley-udp",
        "coming-from.md: from-addresses",
        "coming-from.md: from-binary",
    ];
    assert_eq!(names, tests, "the docs' tested blocks and this file's tests differ");
}

#[test]
fn the_output_promised_by_a_client_is_checked() {
    // The check itself: a snippet edited to print something else must fail.
    let scratch = Scratch::new("promise");
    std::fs::write(scratch.0.join("wrong.lua"), "print('hello')  --> goodbye\n").expect("write");
    let out = Moonport::new("wrong.lua").dir(&scratch.0).run(RUN_LIMIT);
    assert_eq!(out.code(), Some(0));
    let printed: Vec<String> = out.stdout.lines().map(normalize).collect();
    assert_ne!(printed, promised_output("print('hello')  --> goodbye\n"));
    assert_eq!(promised_output("x()  -->  a\tb \n-- no arrow\n"), ["a b"]);
}

// --- docs/guide.md ------------------------------------------------------------

#[test]
fn guide_echo() {
    let scratch = Scratch::new("echo");
    let server = scratch.server("guide-echo", &[]);
    let mut c = server.client();
    c.send("hello\n");
    assert_eq!(c.line(), "hello");
    c.shutdown_write();
    c.expect_closed();
}

#[test]
fn guide_lines() {
    let scratch = Scratch::new("lines");
    let server = scratch.server("guide-lines", &[&0.5]);
    let mut c = server.client();
    for (ask, answer) in [("PING", "+PONG"), ("ECHO hi there", "hi there"), ("NOPE", "-ERR unknown command")] {
        c.send(format!("{ask}\n"));
        assert_eq!(c.line(), answer, "answer to {ask}");
    }
    c.send(format!("ECHO {}\n", "x".repeat(300)));
    assert_eq!(c.line(), "-ERR line too long");
    c.expect_closed();

    let mut quiet = server.client();
    let started = Instant::now();
    assert_eq!(quiet.line(), "-ERR idle");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(400) && waited < Duration::from_secs(3), "idle after {waited:?}");
    quiet.expect_closed();

    let mut leaving = server.client();
    leaving.send("QUIT\n");
    assert_eq!(leaving.line(), "+BYE");
    leaving.expect_closed();
}

#[test]
fn guide_client() {
    let scratch = Scratch::new("client");
    let server = scratch.server("guide-lines", &[]);
    scratch.client("guide-client", &[&server.port()]);
}

/// Reads lines until one equals `want`; panics (with what came) when it does not.
#[track_caller]
fn read_until_line(c: &mut Client, want: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let line = c.line();
        if line == want {
            return seen;
        }
        seen.push(line);
        assert!(seen.len() < 100, "no {want:?} among {seen:?}");
    }
}

#[test]
fn guide_chat() {
    let scratch = Scratch::new("chat");
    let server = scratch.server("guide-chat", &[]);
    let (mut bob, mut ann, mut cy) = (server.client(), server.client(), server.client());
    bob.send("/nick bob\n/join dev\n");
    read_until_line(&mut bob, "bob joined dev");
    ann.send("/nick ann\n/join dev\n");
    // bob hears ann arrive, so both are in "dev" now.
    read_until_line(&mut bob, "ann joined dev");
    ann.send("hello dev\n");
    read_until_line(&mut bob, "<ann> hello dev");
    read_until_line(&mut ann, "<ann> hello dev");
    // cy stayed in the lobby: he hears his own line, not theirs.
    cy.send("/nick cy\nstill here\n");
    let heard = read_until_line(&mut cy, "<cy> still here");
    assert!(heard.iter().all(|l| !l.contains("hello dev")), "the lobby heard {heard:?}");
    // And bob, who left the lobby, no longer hears it.
    std::thread::sleep(Duration::from_millis(100));
    bob.send("back to work\n");
    let heard = read_until_line(&mut bob, "<bob> back to work");
    assert!(heard.iter().all(|l| !l.contains("still here")), "bob still hears the lobby: {heard:?}");
}

/// One frame of the guide's binary protocol: u32 big-endian length, payload.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

#[test]
fn guide_frames() {
    let scratch = Scratch::new("frames");
    let server = scratch.server("guide-frames", &[]);
    let mut c = server.client();
    let expect = |c: &mut Client, want: &[u8]| {
        let mut got = vec![0u8; want.len()];
        c.reader.read_exact(&mut got).expect("an answer frame");
        assert_eq!(got, want);
    };
    c.send(frame(b"hello"));
    expect(&mut c, &frame(b"HELLO"));
    // Two frames in one write, then one cut into single bytes.
    c.send([frame(b"one"), frame(b"two")].concat());
    expect(&mut c, &[frame(b"ONE"), frame(b"TWO")].concat());
    c.send_trickle(&frame(b"slow"), Duration::from_millis(5));
    expect(&mut c, &frame(b"SLOW"));
    let big = vec![b'a'; 64 * 1024];
    c.send(frame(&big));
    expect(&mut c, &frame(&vec![b'A'; 64 * 1024]));
    // A length over the limit: the server hangs up without waiting for it.
    c.send(1_000_000u32.to_be_bytes());
    c.expect_closed();
}

#[test]
fn guide_web() {
    let scratch = Scratch::new("web");
    let server = scratch.server("guide-web", &[]);
    let (status, head, body) = http_get(server.addr(), "GET", "/");
    assert_eq!(status, 200, "{head}");
    assert!(body.contains("new WebSocket"), "{body}");
    assert_eq!(http_get(server.addr(), "GET", "/nothing").0, 404);
    scratch.client("guide-web-client", &[&server.port()]);
}

#[test]
fn guide_tls() {
    let scratch = Scratch::new("tls");
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("a self-signed certificate");
    std::fs::write(scratch.0.join("server.pem"), made.cert.pem()).expect("write server.pem");
    std::fs::write(scratch.0.join("server.key"), made.signing_key.serialize_pem()).expect("write server.key");
    let server = scratch.server("guide-tls", &[]);
    scratch.client("guide-tls-client", &[&server.port()]);
    // A plain client gets no echo: the port speaks TLS only.
    let mut plain = server.client();
    plain.send("hello\n");
    let mut buf = [0u8; 64];
    let n = plain.reader.read(&mut buf).unwrap_or(0);
    assert!(!buf[..n].starts_with(b"hello"), "plain text echoed over the TLS port");
}

#[test]
fn guide_proxy() {
    let scratch = Scratch::new("proxy");
    let echo = scratch.server("guide-echo", &[]);
    let proxy = scratch.server("guide-proxy", &[&echo.port()]);
    let mut c = proxy.client();
    c.send("through\n");
    assert_eq!(c.line(), "through");
    // The client's half-close reaches the echo server, whose close comes back.
    c.shutdown_write();
    c.expect_closed();
    proxy.expect_log("8 bytes up, 8 down, eof", IO_TIMEOUT);
}

#[test]
fn guide_bridge() {
    let scratch = Scratch::new("bridge");
    let echo = scratch.server("guide-echo", &[]);
    let bridge = scratch.server("guide-bridge", &[&echo.port()]);
    let mut ws = ws_client(bridge.addr());
    for part in ["over the ", "bridge"] {
        // A pause between messages: the bridge is not idle yet.
        std::thread::sleep(Duration::from_millis(200));
        ws.send(Message::binary(part.as_bytes().to_vec())).expect("send");
        let mut echoed = Vec::new();
        while echoed.len() < part.len() {
            match ws.read().expect("read") {
                Message::Binary(b) => echoed.extend_from_slice(&b),
                other => panic!("expected binary frames, got {other:?}"),
            }
        }
        assert_eq!(echoed, part.as_bytes());
    }
    ws.close(None).expect("close");
    while ws.read().is_ok() {}
    bridge.expect_log("15 bytes up, 15 down, close", IO_TIMEOUT);

    // A target that refuses: the browser is told so with 1011.
    let closed_port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let nowhere = scratch.server("guide-bridge", &[&closed_port]);
    match ws_client(nowhere.addr()).read().expect("a close frame") {
        Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1011, "{frame:?}"),
        other => panic!("expected a close with 1011, got {other:?}"),
    }
}

fn ws_client(addr: std::net::SocketAddr) -> tungstenite::WebSocket<std::net::TcpStream> {
    tungstenite::client::client(format!("ws://{addr}/"), common::connect(addr)).expect("WebSocket handshake").0
}

#[test]
fn guide_latest() {
    Scratch::new("latest").client("guide-latest", &[]);
}

#[test]
fn guide_metrics() {
    let scratch = Scratch::new("metrics");
    let server = scratch.snippet("guide-metrics").workers(2).option("--admin").option("127.0.0.1:0").arg(0).start();
    let admin = server.admin_addr();
    for _ in 0..2 {
        let mut c = server.client();
        c.send("12345\n");
        assert_eq!(c.line(), "12345");
    }
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let (status, _, body) = http_get(admin, "GET", "/metrics");
        assert_eq!(status, 200);
        if body.lines().any(|l| l == "echo_bytes_total 12") {
            break;
        }
        assert!(Instant::now() < deadline, "no `echo_bytes_total 12` in\n{body}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// --- docs/coming-from.md ------------------------------------------------------

#[test]
fn from_copas_and_luasocket() {
    let scratch = Scratch::new("copas");
    let server = scratch.server("from-copas", &[]);
    let mut c = server.client();
    c.send("hi\n");
    assert_eq!(c.line(), "> hi");
    c.send(format!("{}\n", "x".repeat(2000)));
    c.expect_closed();
    scratch.client("from-luasocket", &[&server.port()]);
}

#[test]
fn from_openresty() {
    let scratch = Scratch::new("openresty");
    let server = scratch.server("from-openresty", &[]);
    let mut c = server.client();
    c.send("Host: x\r\nLength: 5\r\n\r\nhel");
    c.send("lo");
    assert_eq!(c.line(), "got 5 bytes");
    let mut bad = server.client();
    bad.send("Length: 100000\r\n\r\n");
    bad.expect_closed();
    server.expect_log("bad request", IO_TIMEOUT);
    scratch.client("from-openresty-threads", &[&server.port()]);
}

#[test]
fn from_berkeley_tcp() {
    Scratch::new("berkeley-tcp").client("from-berkeley-tcp", &[]);
}

#[test]
fn from_berkeley_udp() {
    Scratch::new("berkeley-udp").client("from-berkeley-udp", &[]);
}

#[test]
fn from_addresses() {
    Scratch::new("addresses").client("from-addresses", &[]);
}

#[test]
fn from_binary() {
    Scratch::new("binary").client("from-binary", &[]);
}
