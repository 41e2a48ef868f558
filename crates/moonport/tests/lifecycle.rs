//! How a moonport process begins and ends: client-mode scripts and their exit
//! codes, startup failures, and graceful shutdown on SIGTERM (on Windows: a
//! CTRL_BREAK_EVENT, see `Server::terminate`).

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::{Moonport, line_of};

const RUN_TIMEOUT: Duration = Duration::from_secs(10);

/// A one-connection server in the test: answers one line with "echo: LINE".
fn one_shot_echo_server() -> (SocketAddr, thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + RUN_TIMEOUT;
        let stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("test server accept: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(RUN_TIMEOUT)).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).expect("test server read");
        (&stream).write_all(format!("echo: {line}").as_bytes()).unwrap();
        line
    });
    (addr, handle)
}

#[test]
fn client_script_connects_prints_and_exits_0() {
    let (addr, server) = one_shot_echo_server();
    let out = Moonport::new("client.lua").arg("127.0.0.1").arg(addr.port()).run(RUN_TIMEOUT);
    assert_eq!(out.code(), Some(0), "exit code\n{out:?}");
    assert_eq!(
        out.stdout,
        format!("got: echo: hello from lua\npeer: 127.0.0.1 {}\ndone\n", addr.port()),
        "stdout\n--- stderr ---\n{}",
        out.stderr
    );
    assert_eq!(server.join().unwrap(), "hello from lua\n", "what the script sent");
}

#[test]
fn toplevel_error_exits_1_with_location() {
    let out = Moonport::new("toplevel_error.lua").run(RUN_TIMEOUT);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert_eq!(out.stdout, "before\n");
    let at = format!("toplevel_error.lua:{}: bad", line_of("toplevel_error.lua", "error(\"bad\")"));
    assert!(out.stderr.contains(&at), "stderr should contain {at:?}:\n{}", out.stderr);
    assert!(out.stderr.contains("stack traceback"), "stderr should have a traceback:\n{}", out.stderr);
}

#[test]
fn syntax_error_exits_1() {
    let out = Moonport::new("syntax_error.lua").run(RUN_TIMEOUT);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("syntax error"), "stderr:\n{}", out.stderr);
    assert!(out.stderr.contains("syntax_error.lua:2"), "the error should name the line:\n{}", out.stderr);
    assert_eq!(out.stdout, "");
}

#[test]
fn missing_script_exits_1() {
    let out = Moonport::new("no_such_script.lua").run(RUN_TIMEOUT);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("no_such_script.lua"), "stderr should name the file:\n{}", out.stderr);
}

#[test]
fn spawned_tasks_all_run_before_exit() {
    let out = Moonport::new("client_tasks.lua").workers(3).run(RUN_TIMEOUT);
    assert_eq!(out.code(), Some(0), "{out:?}");
    // Runs once, on worker 1 of 3 (a script that never listens starts no other workers).
    assert_eq!(out.stdout, "main done\t1\t3\nyielded\nfirst\nsecond\nthird\nfourth\n", "stderr:\n{}", out.stderr);
    assert!(
        out.elapsed >= Duration::from_millis(400),
        "the last task sleeps until 0.4 s; exited after {:?}",
        out.elapsed
    );
    assert!(out.elapsed < Duration::from_secs(3), "exit should follow the last task; took {:?}", out.elapsed);
}

#[test]
fn connect_to_closed_port_is_refused() {
    // A port nobody listens on: bind, note the port, close.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = Moonport::new("client_refused.lua").arg(port).run(RUN_TIMEOUT);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, "nil\trefused\n", "stderr:\n{}", out.stderr);
}

#[test]
fn top_level_bad_argument_exits_1_naming_the_function() {
    let out = Moonport::new("sleep_badarg.lua").run(RUN_TIMEOUT);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert_eq!(out.stdout, "before\n");
    let at = format!("sleep_badarg.lua:{}:", line_of("sleep_badarg.lua", "moonport.sleep(\"x\")"));
    assert!(out.stderr.contains(&at), "stderr should contain {at:?}:\n{}", out.stderr);
    assert!(out.stderr.contains("bad argument #1 to 'sleep'"), "stderr:\n{}", out.stderr);
}

/// Keeps trying to connect until one is refused; panics if that does not happen in time.
fn wait_refused(addr: SocketAddr, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => return,
            // With SO_REUSEPORT, a connection queued on one worker's listener as
            // it closes is reset rather than refused: also not served.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
            Err(e) => panic!("connect after SIGTERM: expected refused, got {e}"),
            Ok(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            Ok(_) => panic!("new connections still accepted {within:?} after SIGTERM"),
        }
    }
}

#[test]
fn sigterm_drains_open_connection_then_exits_0() {
    let mut server = Moonport::new("slow.lua").workers(2).grace(5.0).start();
    let mut c = server.client();
    c.send("req-1\n");
    // The handler is now in its 1 s sleep.
    server.expect_log("request: req-1", Duration::from_secs(5));
    let signalled = Instant::now();
    server.terminate();
    server.expect_log("shutting down", Duration::from_secs(5));
    wait_refused(server.addr(), Duration::from_secs(2));

    // The exchange in progress completes.
    assert_eq!(c.line(), "reply to req-1 exiting=true");
    let replied = signalled.elapsed();
    c.expect_closed();
    assert!(replied < Duration::from_secs(3), "reply came {replied:?} after SIGTERM");

    // The process ends soon after the last connection, well before the 5 s grace.
    let status = server
        .wait_exit(Duration::from_secs(4))
        .unwrap_or_else(|| panic!("still running {:?} after SIGTERM\n{}", signalled.elapsed(), server.log()));
    let exited = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "exit status {status}\n{}", server.log());
    assert!(
        exited < replied + Duration::from_millis(1500),
        "exited {exited:?} after SIGTERM, the last connection ended at {replied:?}"
    );
    assert!(!server.log().contains("grace period over"), "{}", server.log());
}

#[test]
fn sigterm_with_idle_connection_exits_after_grace() {
    let mut server = Moonport::new("idle.lua").workers(2).grace(1.0).start();
    let mut c = server.client();
    server.expect_log("idle connection accepted", Duration::from_secs(5));
    let signalled = Instant::now();
    server.terminate();
    let status = server
        .wait_exit(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("still running 5 s after SIGTERM with --grace 1\n{}", server.log()));
    let exited = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "exit status {status}\n{}", server.log());
    assert!(exited >= Duration::from_millis(900), "exited after {exited:?}, before the 1 s grace ended");
    assert!(exited < Duration::from_millis(2500), "exited {exited:?} after SIGTERM with --grace 1");
    assert!(server.log().contains("grace period over"), "{}", server.log());
    // The idle connection is gone with the process.
    c.expect_closed();
}
