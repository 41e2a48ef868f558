//! `moonport.http` over real sockets: requests written by hand (so bad ones
//! can be too), responses parsed here; static files, upgrades to WebSocket
//! through `http.listen`, and the Lua client against the same server.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{IO_TIMEOUT, Moonport, Server};
use tungstenite::Message;

/// A directory with files for the static handler, and a secret beside it.
fn site() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("moonport-http-{}-{}", std::process::id(), rand::random::<u32>()));
    let www = dir.join("www");
    std::fs::create_dir_all(www.join("sub")).unwrap();
    std::fs::write(www.join("hello.txt"), "hello, world\n").unwrap();
    std::fs::write(www.join("index.html"), "<h1>hi</h1>").unwrap();
    std::fs::write(www.join("sub/app.js"), "console.log(1)").unwrap();
    std::fs::write(dir.join("secret"), "secret").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(dir.join("secret"), www.join("link")).unwrap();
    dir
}

fn server() -> (Server, PathBuf) {
    let dir = site();
    let srv = Moonport::new("http_server.lua").workers(1).arg(dir.display()).start();
    (srv, dir)
}

#[derive(Debug)]
struct Resp {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn conn(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

fn read_byte(s: &mut TcpStream) -> Option<u8> {
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(1) => Some(b[0]),
        _ => None,
    }
}

fn read_line(s: &mut TcpStream) -> String {
    let mut line = Vec::new();
    while !line.ends_with(b"\r\n") {
        match read_byte(s) {
            Some(b) => line.push(b),
            None => break,
        }
    }
    String::from_utf8_lossy(&line).trim_end().to_string()
}

/// Reads one response; `head_request` responses have no body.
fn read_resp(s: &mut TcpStream, head_request: bool) -> Resp {
    let mut head = String::new();
    loop {
        let line = read_line(s);
        if line.is_empty() {
            break;
        }
        head.push_str(&line);
        head.push('\n');
    }
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("no status in {head:?}"));
    let mut resp = Resp { status, head, body: Vec::new() };
    if head_request || status == 304 {
        return resp;
    }
    if resp.header("transfer-encoding").as_deref() == Some("chunked") {
        loop {
            let size = usize::from_str_radix(&read_line(s), 16).unwrap();
            let mut chunk = vec![0u8; size];
            s.read_exact(&mut chunk).unwrap();
            resp.body.extend(chunk);
            read_line(s);
            if size == 0 {
                break;
            }
        }
    } else if let Some(n) = resp.header("content-length") {
        let mut body = vec![0u8; n.parse().unwrap()];
        s.read_exact(&mut body).unwrap();
        resp.body = body;
    } else {
        s.read_to_end(&mut resp.body).unwrap();
    }
    resp
}

fn ask(addr: SocketAddr, raw: &str) -> Resp {
    let mut s = conn(addr);
    s.write_all(raw.as_bytes()).unwrap();
    read_resp(&mut s, raw.starts_with("HEAD "))
}

fn get(addr: SocketAddr, path: &str, extra: &str) -> Resp {
    ask(addr, &format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n"))
}

/// Whether the server closed the connection (EOF within the timeout).
fn closed(s: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).is_ok() && rest.is_empty()
}

#[test]
fn requests_on_a_kept_alive_connection() {
    let (srv, _dir) = server();
    let mut s = conn(srv.addr());
    s.write_all(b"GET /echo?a=1 HTTP/1.1\r\nHost: t\r\nx-test: one\r\n\r\n").unwrap();
    let r = read_resp(&mut s, false);
    assert_eq!((r.status, r.text().as_str()), (200, "GET /echo a=1 one 0 "));
    assert_eq!(r.header("content-type").as_deref(), Some("text/plain"));
    // A fixed-length body, then a chunked one, on the same connection.
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello").unwrap();
    assert_eq!(read_resp(&mut s, false).text(), "POST /echo - - 5 hello");
    s.write_all(b"PUT /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n")
        .unwrap();
    assert_eq!(read_resp(&mut s, false).text(), "PUT /echo - - 5 abcde");
    // Expect: 100-continue is answered before the body is sent.
    s.write_all(b"POST /echo HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n").unwrap();
    assert_eq!(read_line(&mut s), "HTTP/1.1 100 Continue");
    assert_eq!(read_line(&mut s), "");
    s.write_all(b"body").unwrap();
    assert_eq!(read_resp(&mut s, false).text(), "POST /echo - - 4 body");
    // Streamed writes go out chunked.
    s.write_all(b"GET /stream HTTP/1.1\r\n\r\n").unwrap();
    let r = read_resp(&mut s, false);
    assert_eq!((r.header("transfer-encoding").as_deref(), r.text().as_str()), (Some("chunked"), "abb"));
    s.write_all(b"GET /status HTTP/1.1\r\n\r\n").unwrap();
    let r = read_resp(&mut s, false);
    assert_eq!((r.status, r.header("x-custom").as_deref(), r.text().as_str()), (201, Some("v"), "created 201"));
    // HEAD: the same headers, no body.
    s.write_all(b"HEAD /echo HTTP/1.1\r\n\r\n").unwrap();
    let r = read_resp(&mut s, true);
    assert_eq!(r.header("content-length").as_deref(), Some("17"));
    // Pipelined requests are answered in order.
    s.write_all(b"GET /echo?p=1 HTTP/1.1\r\n\r\nGET /echo?p=2 HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!(read_resp(&mut s, false).text(), "GET /echo p=1 - 0 ");
    let last = read_resp(&mut s, false);
    assert_eq!((last.text().as_str(), last.header("connection").as_deref()), ("GET /echo p=2 - 0 ", Some("close")));
    assert!(closed(&mut s));
    // HTTP/1.0 closes after the response unless asked to keep alive.
    let mut s = conn(srv.addr());
    s.write_all(b"GET /stream HTTP/1.0\r\n\r\n").unwrap();
    let r = read_resp(&mut s, false);
    assert_eq!((r.text().as_str(), r.header("transfer-encoding")), ("abb", None));
    assert!(closed(&mut s));
}

#[test]
fn bad_requests_get_their_status_and_others_carry_on() {
    let (srv, _dir) = server();
    let addr = srv.addr();
    let mut bystander = conn(addr);
    let big_headers: String = (0..30).map(|i| format!("h{i}: v\r\n")).collect();
    let cases = [
        ("POST /echo HTTP/1.1\r\nContent-Length: 5000\r\n\r\n".to_string(), 413),
        (
            format!("POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n100\r\n{}\r\n400\r\n", "x".repeat(256)),
            413,
        ),
        ("POST /echo HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n".to_string(), 400),
        ("POST /echo HTTP/1.1\r\nContent-Length: abc\r\n\r\n".to_string(), 400),
        ("POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_string(), 400),
        (format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(3000)), 431),
        (format!("GET / HTTP/1.1\r\n{big_headers}\r\n"), 431),
        ("\x16\x03\x01\x00\x25\x01\r\n\r\n".to_string(), 400),
        ("GET / HTTP/2.0\r\n\r\n".to_string(), 505),
        ("GET /error HTTP/1.1\r\n\r\n".to_string(), 500),
    ];
    for (raw, want) in cases {
        let mut s = conn(addr);
        s.write_all(raw.as_bytes()).unwrap();
        let r = read_resp(&mut s, false);
        assert_eq!(r.status, want, "{raw:?}: {r:?}");
        assert_eq!(r.header("connection").as_deref(), Some("close"), "{raw:?}");
        assert!(closed(&mut s), "{raw:?}");
        bystander.write_all(b"GET /echo HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(read_resp(&mut bystander, false).status, 200);
    }
    assert!(srv.wait_log("answered 431", IO_TIMEOUT), "{}", srv.log());
    assert!(srv.wait_log("boom", IO_TIMEOUT), "{}", srv.log());
}

#[test]
fn slow_and_idle_clients_are_let_go() {
    let (srv, _dir) = server();
    // A head trickled byte by byte gets 408 after header_timeout (1 s).
    let mut s = conn(srv.addr());
    let started = Instant::now();
    for b in b"GET /echo HTTP/1.1\r\nX-Slow: ".iter().chain([b'a'; 40].iter()) {
        if s.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = read_resp(&mut s, false);
    assert_eq!(r.status, 408);
    assert!(started.elapsed() < Duration::from_secs(4));
    // A kept-alive connection with nothing more to ask is closed silently
    // after idle_timeout (2 s).
    let mut s = conn(srv.addr());
    s.write_all(b"GET /echo HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(read_resp(&mut s, false).status, 200);
    let idle = Instant::now();
    assert!(closed(&mut s));
    assert!(idle.elapsed() >= Duration::from_millis(1500), "{:?}", idle.elapsed());
}

#[test]
fn static_files() {
    let (srv, _dir) = server();
    let a = srv.addr();
    let r = get(a, "/static/hello.txt", "");
    assert_eq!((r.status, r.text().as_str()), (200, "hello, world\n"));
    assert_eq!(r.header("content-type").as_deref(), Some("text/plain; charset=utf-8"));
    let etag = r.header("etag").unwrap();
    assert_eq!(get(a, "/static/hello.txt", &format!("If-None-Match: {etag}\r\n")).status, 304);
    let part = get(a, "/static/hello.txt", "Range: bytes=7-11\r\n");
    assert_eq!((part.status, part.text().as_str()), (206, "world"));
    assert_eq!(part.header("content-range").as_deref(), Some("bytes 7-11/13"));
    let tail = get(a, "/static/hello.txt", "Range: bytes=-6\r\n");
    assert_eq!(tail.text(), "world\n");
    assert_eq!(get(a, "/static/hello.txt", "Range: bytes=50-\r\n").status, 416);
    let js = get(a, "/static/sub/app.js", "");
    assert_eq!(js.header("content-type").as_deref(), Some("text/javascript; charset=utf-8"));
    assert_eq!(get(a, "/static/", "").text(), "<h1>hi</h1>");
    let head = ask(a, "HEAD /static/hello.txt HTTP/1.1\r\n\r\n");
    assert_eq!((head.status, head.header("content-length").as_deref()), (200, Some("13")));
    assert_eq!(ask(a, "POST /static/hello.txt HTTP/1.1\r\n\r\n").status, 405);
    assert_eq!(get(a, "/static/nope", "").status, 404);
    for evil in
        ["/static/../secret", "/static/%2e%2e/secret", "/static/sub/..%2f..%2f..%2fsecret", "/static/%2E%2E%5Csecret"]
    {
        let r = get(a, evil, "");
        assert!(matches!(r.status, 400 | 403 | 404), "{evil}: {}", r.status);
        assert!(!r.text().contains("secret"), "{evil}");
    }
    #[cfg(unix)]
    assert_eq!(get(a, "/static/link", "").status, 403);
    assert_eq!(get(a, "/file", "").text(), "hello, world\n");
}

#[test]
fn websocket_upgrade_inside_an_http_handler() {
    let (srv, _dir) = server();
    let stream = conn(srv.addr());
    let (mut ws, _) = tungstenite::client::client(format!("ws://{}/ws", srv.addr()), stream).expect("upgrade");
    ws.send(Message::text("x")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("ws x"));
    ws.close(None).unwrap();
    // A plain GET on the same route is refused by upgrade().
    let r = get(srv.addr(), "/ws", "");
    assert_eq!(r.status, 426);
    assert!(srv.wait_log_until(IO_TIMEOUT, |_| srv.stdout().contains("upgrade failed: websocket upgrade expected")));
}

#[test]
fn the_lua_client() {
    let (srv, _dir) = server();
    let r = ask(srv.addr(), &format!("GET /client HTTP/1.1\r\nHost: {}\r\n\r\n", srv.addr()));
    assert_eq!(r.text(), "200 text/plain POST /echo x=1 c 2 hi | abb | nil refused", "{r:?}");
}

#[test]
fn a_shutdown_does_not_wait_for_idle_kept_alive_connections() {
    let (mut srv, _dir) = server();
    let mut s = conn(srv.addr());
    s.write_all(b"GET /echo HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(read_resp(&mut s, false).status, 200);
    let asked = Instant::now();
    srv.terminate();
    assert!(srv.wait_exit(Duration::from_secs(10)).is_some());
    // Well within the 5 s grace period the idle connection would otherwise get.
    assert!(asked.elapsed() < Duration::from_secs(3), "{:?}", asked.elapsed());
    assert!(closed(&mut s));
}
