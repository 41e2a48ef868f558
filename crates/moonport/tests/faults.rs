//! Faults a server must survive: a failing handler, a peer that resets the
//! connection in the middle of a large write, wrong argument types, and
//! running out of file descriptors.

mod common;

use std::io::Read;
use std::time::Duration;

use common::{Client, Moonport, line_of};

#[test]
fn handler_error_closes_only_its_connection() {
    let mut server = Moonport::new("handler_error.lua").workers(2).start();
    let mut others: Vec<Client> = (0..4).map(|_| server.client()).collect();
    for (i, c) in others.iter_mut().enumerate() {
        c.send(format!("before {i}\n"));
        assert_eq!(c.line(), format!("before {i}"));
    }

    let mut doomed = server.client();
    doomed.send("fine\n");
    assert_eq!(doomed.line(), "fine");
    doomed.send("boom\n");
    doomed.expect_closed();

    let at = format!("handler_error.lua:{}: boom", line_of("handler_error.lua", "error(\"boom\")"));
    server.expect_log(&at, Duration::from_secs(5));
    // The traceback may reach the pipe in a later read than the first line.
    server.expect_log("stack traceback", Duration::from_secs(5));
    let log = server.log();
    assert!(log.contains("ERROR"), "the error should be logged at ERROR:\n{log}");

    // The other connections, and new ones, are served as before.
    for (i, c) in others.iter_mut().enumerate() {
        c.send(format!("after {i}\n"));
        assert_eq!(c.line(), format!("after {i}"));
    }
    for i in 0..4 {
        let mut c = server.client();
        c.send(format!("new {i}\n"));
        assert_eq!(c.line(), format!("new {i}"));
    }
    server.assert_running();
}

#[test]
fn peer_reset_during_large_write() {
    let mut server = Moonport::new("flood.lua").workers(2).start();
    // Connections that must stay healthy throughout.
    let mut bystander = server.client();
    bystander.send("hi\n");
    assert_eq!(bystander.line(), "hi");

    for round in 0..3 {
        let mut c = server.client();
        c.send("flood\n");
        // Take some of the flood so the server is surely in its write loop.
        let mut got = 0;
        let mut buf = vec![0u8; 64 * 1024];
        while got < 1024 * 1024 {
            let n = c.reader.read(&mut buf).expect("read flood");
            assert!(n > 0, "server closed during the flood (round {round})");
            got += n;
        }
        common::set_linger_zero(c.stream());
        drop(c); // RST

        let failures = round + 1;
        assert!(
            server.wait_log_until(Duration::from_secs(10), |log| log.matches("flood write failed").count() >= failures),
            "the handler's write should fail after the reset (round {round})\n{}",
            server.log()
        );
        bystander.send(format!("still here {round}\n"));
        assert_eq!(bystander.line(), format!("still here {round}"));
    }

    let log = server.log();
    for line in log.lines().filter(|l| l.contains("flood write failed")) {
        assert!(
            line.contains("flood write failed: reset") || line.contains("flood write failed: closed"),
            "write error should be \"reset\" or \"closed\": {line}"
        );
    }
    for line in log.lines().filter(|l| l.contains("write after failure")) {
        assert!(line.contains("write after failure: nil closed"), "a write after a fatal error: {line}");
    }
    assert!(!log.contains("flood finished"), "a flood ran to the end despite the reset:\n{log}");
    assert!(!log.contains("panicked"), "{log}");

    let mut fresh = server.client();
    fresh.send("fresh\n");
    assert_eq!(fresh.line(), "fresh");
    server.assert_running();
}

#[test]
fn handler_bad_argument_is_logged_with_location() {
    let mut server = Moonport::new("read_badarg.lua").workers(1).start();
    let mut c = server.client();
    c.send("bad\n");
    c.expect_closed();
    let at = format!(
        "read_badarg.lua:{}: bad argument #1 to 'read' (integer expected, got table)",
        line_of("read_badarg.lua", "conn:read({})")
    );
    server.expect_log(&at, Duration::from_secs(5));

    let mut c = server.client();
    c.send("good\n");
    assert_eq!(c.line(), "ok good");
    server.assert_running();
}

/// Unix only: it lowers the child's RLIMIT_NOFILE to provoke EMFILE. Windows
/// has no per-process socket handle limit to lower (docs/windows.md).
#[cfg(unix)]
#[test]
fn accept_backs_off_when_out_of_file_descriptors() {
    use std::net::TcpStream;
    use std::thread;
    use std::time::Instant;

    const LIMIT: u64 = 64;
    const CLIENTS: usize = 100;
    let started = Instant::now();
    let mut server = Moonport::new("line_echo.lua").workers(1).nofile_limit(LIMIT).start();
    let addr = server.addr();

    // More connections than the server has descriptors: the kernel completes
    // the handshakes (backlog), the server accepts until it runs out.
    let mut clients: Vec<TcpStream> = (0..CLIENTS).map(|_| common::connect(addr)).collect();
    server.expect_log("accept:", Duration::from_secs(5));
    thread::sleep(Duration::from_millis(1500));
    server.assert_running();

    // Connections accepted before the limit are served meanwhile.
    let mut first = Client { reader: std::io::BufReader::new(clients.remove(0)) };
    first.send("early\n");
    assert_eq!(first.line(), "early", "a connection accepted before EMFILE should still be served");

    // Free the descriptors: the server accepts (and serves) again.
    drop(first);
    drop(clients);
    let mut c = Client::connect(addr);
    c.send("after\n");
    assert_eq!(c.line(), "after", "a new connection after the clients closed should be served");
    server.assert_running();

    let log = server.log();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("accept:")).collect();
    assert!(
        warnings[0].contains("WARN") && warnings[0].to_lowercase().contains("too many open files"),
        "the warning should say why: {}",
        warnings[0]
    );
    // At most one warning a second (plus one for the partial second).
    let allowed = started.elapsed().as_secs() as usize + 1;
    assert!(
        warnings.len() <= allowed,
        "{} accept warnings in {:?}, expected at most one per second:\n{}",
        warnings.len(),
        started.elapsed(),
        warnings.join("\n")
    );
}
