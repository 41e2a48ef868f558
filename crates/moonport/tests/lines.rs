//! Delimited and timed reads: read_line / read_until limits, delimiters split
//! across TCP segments, end of stream in the middle of a record, read timeouts.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{Client, Moonport, Server};

const TRICKLE: Duration = Duration::from_millis(15);

fn lines_server() -> Server {
    Moonport::new("lines.lua").workers(1).start()
}

/// A client of lines.lua in the given mode ("line 8", "until 10", ...).
fn client(server: &Server, mode: &str) -> Client {
    let mut c = server.client();
    c.send(format!("{mode}\n"));
    c
}

#[test]
fn read_line_limits_and_crlf() {
    let server = lines_server();
    let mut c = client(&server, "line 8");

    // Exactly max bytes: accepted, also when the newline comes in a later segment.
    c.send("12345678\n");
    assert_eq!(c.line(), "OK 8 12345678");
    c.send("abcdefgh");
    thread::sleep(Duration::from_millis(100));
    c.send("\n");
    assert_eq!(c.line(), "OK 8 abcdefgh", "a max-length line whose \\n arrives later");

    // \r\n and \n are both stripped; a bare \r inside a line is kept.
    c.send("crlf\r\n");
    assert_eq!(c.line(), "OK 4 crlf");
    c.send("a\rb\n");
    assert_eq!(c.line(), "OK 3 a\\rb");
    c.send("\n");
    assert_eq!(c.line(), "OK 0 ", "an empty line");
    c.send("\r\n");
    assert_eq!(c.line(), "OK 0 ", "an empty CRLF line");
    // max counts the bytes before the \n, a \r included (docs/lua-api.md).
    c.send("1234567\r\n");
    assert_eq!(c.line(), "OK 7 1234567");
    c.send("12345678\r\n");
    assert_eq!(c.line(), "ERR line too long 1234 5");

    // max + 1 bytes: too long; the bytes stay buffered, readable with conn:read.
    c.send("123456789\n");
    assert_eq!(c.line(), "ERR line too long 1234 5", "read(4) after the error gets the line's first bytes");
    // The connection is still good.
    c.send("after\n");
    assert_eq!(c.line(), "OK 5 after");

    // A long line arriving in pieces, the newline much later: nothing is lost.
    c.send("0123456789");
    thread::sleep(Duration::from_millis(100));
    c.send("ABC\nok\n");
    assert_eq!(c.line(), "ERR line too long 0123 9");
    assert_eq!(c.line(), "OK 2 ok");

    c.shutdown_write();
    c.expect_closed();
    server.expect_log("eof: line err=closed partial=[]", Duration::from_secs(5));
}

#[test]
fn read_line_at_end_of_stream_returns_partial() {
    let server = lines_server();
    let mut c = client(&server, "line 100");
    c.send("complete\npartial li");
    assert_eq!(c.line(), "OK 8 complete");
    c.shutdown_write();
    c.expect_closed();
    server.expect_log("eof: line err=closed partial=[partial li]", Duration::from_secs(5));
}

#[test]
fn read_until_multibyte_delimiter_split_across_segments() {
    let server = lines_server();
    let mut c = client(&server, "until 64");

    // The whole record at once.
    c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(c.line(), "OK 23 GET / HTTP/1.1\\r\\nHost: a");

    // The delimiter byte by byte, each in its own segment.
    c.send("GET /b HTTP/1.1\r\nHost: b");
    c.send_trickle(b"\r\n\r\n", TRICKLE);
    assert_eq!(c.line(), "OK 24 GET /b HTTP/1.1\\r\\nHost: b");

    // Partial delimiters inside the record are data.
    c.send_trickle(b"x\r\ny\r\n\rz\r\n\r\n", TRICKLE);
    assert_eq!(c.line(), "OK 8 x\\r\\ny\\r\\n\\rz");

    // Two records in one segment.
    c.send("one\r\n\r\ntwo\r\n\r\n");
    assert_eq!(c.line(), "OK 3 one");
    assert_eq!(c.line(), "OK 3 two");
}

#[test]
fn read_until_limits() {
    let server = lines_server();
    let mut c = client(&server, "until 10");

    // Exactly max bytes before a delimiter that trickles in: accepted.
    c.send("0123456789");
    c.send_trickle(b"\r\n\r\n", TRICKLE);
    assert_eq!(c.line(), "OK 10 0123456789");

    // max + 1 bytes: "too long", with the bytes kept for conn:read.
    c.send("0123456789A\r\n\r\n");
    assert_eq!(c.line(), "ERR too long 0123 7");
    c.send("next\r\n\r\n");
    assert_eq!(c.line(), "OK 4 next");

    // End of stream in the middle of a record.
    c.send("half a rec\r\n");
    thread::sleep(Duration::from_millis(50));
    c.shutdown_write();
    c.expect_closed();
    server.expect_log("eof: until err=closed partial=[half a rec\\r\\n]", Duration::from_secs(5));
}

#[test]
fn read_exact_at_end_of_stream_returns_partial() {
    let server = lines_server();
    let mut c = client(&server, "exact 6");
    c.send("abc");
    thread::sleep(Duration::from_millis(50));
    c.send("def");
    assert_eq!(c.line(), "OK 6 abcdef");
    c.send("ghij");
    c.shutdown_write();
    c.expect_closed();
    server.expect_log("eof: exact err=closed partial=[ghij]", Duration::from_secs(5));
}

/// Parses "<tag> <data> <err> <secs>" from timeouts.lua.
fn timed(line: &str, tag: &str) -> (String, String, f64) {
    let rest = line.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')).unwrap_or_else(|| panic!("{line:?}"));
    let mut parts = rest.rsplitn(3, ' ');
    let secs: f64 = parts.next().unwrap().parse().unwrap_or_else(|_| panic!("{line:?}"));
    let err = parts.next().unwrap_or_else(|| panic!("{line:?}")).to_string();
    let data = parts.next().unwrap_or_else(|| panic!("{line:?}")).to_string();
    (data, err, secs)
}

#[test]
fn read_timeout_keeps_connection_and_bytes() {
    let server = Moonport::new("timeouts.lua").workers(1).start();
    let mut c = server.client();

    // 1: nothing sent: the read times out after ~0.2 s.
    let (data, err, secs) = timed(&c.line(), "first");
    assert_eq!((data.as_str(), err.as_str()), ("nil", "timeout"));
    assert!((0.15..1.0).contains(&secs), "first read timed out after {secs} s, expected ~0.2");

    // 2: the next read gets what we send, even in two segments.
    c.send("hello");
    thread::sleep(Duration::from_millis(50));
    c.send(" world");
    let (data, err, _) = timed(&c.line(), "second");
    assert_eq!((data.as_str(), err.as_str()), ("hello world", "nil"));

    // 3: a line without its newline times out...
    c.send("abc");
    let (data, err, secs) = timed(&c.line(), "third");
    assert_eq!((data.as_str(), err.as_str()), ("nil", "timeout"));
    assert!((0.15..1.0).contains(&secs), "third read timed out after {secs} s, expected ~0.2");
    // 4: ... and keeps the bytes that did arrive.
    c.send("def\n");
    let (data, err, _) = timed(&c.line(), "fourth");
    assert_eq!((data.as_str(), err.as_str()), ("abcdef", "nil"), "bytes received before the timeout were lost");

    // 5: timeout 0 = none: a read waits longer than the old 0.2 s.
    let sent_at = Instant::now();
    thread::sleep(Duration::from_millis(500));
    c.send("late\n");
    let (data, err, secs) = timed(&c.line(), "fifth");
    assert_eq!((data.as_str(), err.as_str()), ("late", "nil"));
    assert!(secs >= 0.4, "the read returned after {secs} s ({:?} since we started waiting)", sent_at.elapsed());
    c.expect_closed();
}
