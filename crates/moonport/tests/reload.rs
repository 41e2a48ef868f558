//! Hot reload with connections open: `moonport reload --control ADDR` (every
//! platform) and SIGHUP (Unix). Old connections finish on the old version,
//! new ones get the new one, a client connecting in a loop through the
//! reload is never refused, the drain time closes stragglers, a broken
//! script is rejected while the old version keeps serving, and room
//! subscribers outlive the version that attached them.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{Client, Moonport, Server};

/// The test server, written out per version: `VERSION` becomes "v1", "v2", ...
const APP: &str = r#"
local moonport = require("moonport")
local V = "VERSION"
moonport.tcp.listen({ host = "127.0.0.1", port = 0 }, function(conn)
  while true do
    local line = conn:read_line()
    if not line then break end
    if line == "view" then
      conn:write(V .. ":viewing\n")
      moonport.room("news"):attach(conn)
      break
    elseif line:sub(1, 4) == "pub " then
      local n = moonport.room("news"):publish(V .. ":" .. line:sub(5) .. "\n")
      conn:write(V .. ":published to " .. n .. "\n")
    elseif line == "wait" then
      while not moonport.exiting() do moonport.sleep(0.02) end
      conn:write(V .. ":retired\n")
    elseif line == "count" then
      conn:write(V .. ":" .. moonport.room("news"):count() .. " subscribed\n")
    elseif line == "gen" then
      conn:write(V .. ":generation " .. moonport.generation() .. "\n")
    else
      conn:write(V .. ":" .. line .. "\n")
    end
  end
end)
"#;

/// A script in a directory of its own, rewritten as the test goes.
struct Script {
    dir: PathBuf,
    path: PathBuf,
}

impl Script {
    fn new(test: &str, text: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("moonport-reload-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("app.lua");
        let script = Self { dir, path };
        script.write(text);
        script
    }

    fn app(test: &str, version: &str) -> Self {
        Self::new(test, &APP.replace("VERSION", version))
    }

    fn write(&self, text: &str) {
        std::fs::write(&self.path, text).unwrap();
    }

    fn write_app(&self, version: &str) {
        self.write(&APP.replace("VERSION", version));
    }

    fn start(&self, options: &[&str]) -> Running {
        let mut moonport =
            Moonport::new(self.path.to_str().unwrap()).workers(2).option("--control").option("127.0.0.1:0");
        for option in options {
            moonport = moonport.option(option);
        }
        let server = moonport.start();
        let mut control = None;
        let found = server.wait_log_until(Duration::from_secs(5), |log| {
            control = log.lines().find_map(|line| {
                let rest = &line[line.find("control listener on ")? + "control listener on ".len()..];
                rest.split_whitespace().next()?.parse::<SocketAddr>().ok()
            });
            control.is_some()
        });
        assert!(found, "no control listener in the log:\n{}", server.log());
        Running { server, control: control.unwrap() }
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Running {
    server: Server,
    control: SocketAddr,
}

/// What `moonport reload` said.
struct Reloaded {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Running {
    /// Runs `moonport reload --control ADDR`.
    fn reload(&self) -> Reloaded {
        let out = Command::new(env!("CARGO_BIN_EXE_moonport"))
            .args(["reload", "--control", &self.control.to_string()])
            .output()
            .expect("run moonport reload");
        Reloaded {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    #[track_caller]
    fn reload_ok(&self, generation: u64) {
        let out = self.reload();
        assert!(out.ok, "moonport reload failed: {}\n--- server log ---\n{}", out.stderr, self.server.log());
        assert!(out.stdout.contains(&format!("generation {generation}")), "reload said {:?}", out.stdout);
    }

    /// Waits until the room "news" has `n` subscribers (a viewer subscribes
    /// just after it answers "viewing").
    #[track_caller]
    fn wait_subscribers(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let answer = self.ask("count");
            if answer.ends_with(&format!(":{n} subscribed")) {
                return;
            }
            assert!(Instant::now() < deadline, "still {answer:?}, not {n} subscribers");
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// A new connection's answer to `line`.
    fn ask(&self, line: &str) -> String {
        let mut client = self.server.client();
        client.send(format!("{line}\n"));
        client.line()
    }
}

/// Connects again and again (each connection one echo) until stopped;
/// `versions` gets the answers' version prefixes in order; returns the failures.
fn connect_loop(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    versions: Arc<Mutex<Vec<String>>>,
) -> thread::JoinHandle<Vec<String>> {
    thread::spawn(move || {
        let mut failures = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            let answer = (|| -> std::io::Result<String> {
                use std::io::{BufRead, BufReader, Write};
                let stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
                stream.set_read_timeout(Some(Duration::from_secs(5)))?;
                (&stream).write_all(b"ping\n")?;
                let mut line = String::new();
                BufReader::new(&stream).read_line(&mut line)?;
                Ok(line)
            })();
            match answer {
                Ok(line) if line.ends_with(":ping\n") => {
                    versions.lock().unwrap().push(line[..line.find(':').unwrap()].to_string())
                }
                Ok(line) => failures.push(format!("answer {line:?}")),
                Err(e) => failures.push(e.to_string()),
            }
        }
        failures
    })
}

/// The whole round: connections open on v1 (one per worker, at least), a
/// client connecting in a loop, the script rewritten to v2 and reloaded by
/// `reload`; old connections answer v1, new ones v2, and nothing failed.
fn reload_with_connections_open(test: &str, sharding: Option<&str>, reload: impl FnOnce(&Running)) {
    let script = Script::app(test, "v1");
    let options: Vec<&str> = sharding.map(|s| vec!["--sharding", s]).unwrap_or_default();
    let app = script.start(&options);
    let mut old: Vec<Client> = (0..6).map(|_| app.server.client()).collect();
    for (i, client) in old.iter_mut().enumerate() {
        client.send(format!("hello {i}\n"));
        assert_eq!(client.line(), format!("v1:hello {i}"));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let versions = Arc::new(Mutex::new(Vec::new()));
    let looping = connect_loop(app.server.addr(), stop.clone(), versions.clone());
    thread::sleep(Duration::from_millis(200));
    script.write_app("v2");
    reload(&app);
    // Once the reload has answered, every new connection gets v2 (the one
    // under way at that moment may still have been v1's).
    let reloaded = versions.lock().unwrap().len() + 1;
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let failures = looping.join().unwrap();
    assert!(failures.is_empty(), "connections failed during the reload: {failures:?}\n{}", app.server.log());
    let versions = versions.lock().unwrap();
    assert!(versions.len() > reloaded, "the loop made no connection after the reload");
    assert_eq!(versions[0], "v1", "the loop began before the reload");
    assert!(versions[reloaded..].iter().all(|v| v == "v2"), "a v1 answer after the reload: {versions:?}");

    for (i, client) in old.iter_mut().enumerate() {
        client.send(format!("again {i}\n"));
        assert_eq!(client.line(), format!("v1:again {i}"), "an old connection runs the old code");
    }
    assert_eq!(app.ask("gen"), "v2:generation 2");
    assert_eq!(app.ask("hi"), "v2:hi");
}

fn by_control(app: &Running) {
    app.reload_ok(2);
}

#[test]
fn reload_by_command_keeps_old_connections_on_the_old_version() {
    reload_with_connections_open("command", None, by_control);
}

#[test]
fn reload_by_command_with_handoff_sharding() {
    reload_with_connections_open("handoff", Some("handoff"), by_control);
}

#[test]
#[cfg_attr(windows, ignore = "no SO_REUSEPORT on Windows")]
fn reload_by_command_with_reuseport_sharding() {
    reload_with_connections_open("reuseport", Some("reuseport"), by_control);
}

#[test]
#[cfg_attr(windows, ignore = "no SIGHUP on Windows: `moonport reload` is the way there")]
fn reload_by_sighup() {
    reload_with_connections_open("sighup", None, |app| {
        #[cfg(unix)]
        app.server.signal(libc::SIGHUP);
        app.server.expect_log("generation 2 serves new connections", Duration::from_secs(10));
    });
}

#[test]
fn a_broken_script_is_rejected_and_the_old_version_keeps_serving() {
    let script = Script::app("broken", "v1");
    let app = script.start(&[]);
    let mut open = app.server.client();
    open.send("before\n");
    assert_eq!(open.line(), "v1:before");

    // A syntax error: the error names the file and line.
    script.write("local moonport = require('moonport')\nlocal x = = 1\n");
    let out = app.reload();
    assert!(!out.ok, "a syntax error must fail the reload: {}", out.stdout);
    assert!(out.stderr.contains("syntax error") && out.stderr.contains("app.lua:2"), "stderr: {}", out.stderr);

    // An error at the top level (after a listen, which must not take over).
    script.write(&APP.replace("VERSION", "v2").replace("end)\n", "end)\nerror('refusing to start')\n"));
    let out = app.reload();
    assert!(!out.ok, "a top-level error must fail the reload: {}", out.stdout);
    let line = APP.lines().count() + 1;
    assert!(out.stderr.contains(&format!("app.lua:{line}: refusing to start")), "stderr: {}", out.stderr);
    app.server.expect_log("reload rejected", Duration::from_secs(5));

    // v1 carries on, for old and new connections.
    open.send("after\n");
    assert_eq!(open.line(), "v1:after");
    assert_eq!(app.ask("new"), "v1:new");
    assert_eq!(app.ask("gen"), "v1:generation 1");

    // A good version then takes the next number.
    script.write_app("v2");
    app.reload_ok(2);
    assert_eq!(app.ask("gen"), "v2:generation 2");
    open.send("still\n");
    assert_eq!(open.line(), "v1:still");
}

#[test]
fn the_drain_time_closes_stragglers_and_exiting_tells_old_handlers() {
    let script = Script::app("drain", "v1");
    let app = script.start(&["--drain", "1.5"]);
    let mut waiter = app.server.client();
    waiter.send("wait\n");
    let mut straggler = app.server.client();
    straggler.send("one\n");
    assert_eq!(straggler.line(), "v1:one");

    script.write_app("v2");
    let reloaded = Instant::now();
    app.reload_ok(2);
    // A handler watching moonport.exiting() learns its version was replaced.
    assert_eq!(waiter.line(), "v1:retired");
    // Within the drain time the straggler is served by v1...
    straggler.send("two\n");
    assert_eq!(straggler.line(), "v1:two");
    // ...then closed.
    straggler.expect_closed();
    let closed_after = reloaded.elapsed();
    assert!(closed_after >= Duration::from_millis(1400), "closed after {closed_after:?}, before the drain time");
    app.server.expect_log("generation 1: drain time over", Duration::from_secs(5));
    assert_eq!(app.ask("after"), "v2:after");
}

#[test]
fn room_subscribers_outlive_the_version_that_attached_them() {
    let script = Script::app("rooms", "v1");
    let app = script.start(&[]);
    let mut viewer = app.server.client();
    viewer.send("view\n");
    assert_eq!(viewer.line(), "v1:viewing");
    app.wait_subscribers(1);
    let mut publisher = app.server.client();
    publisher.send("pub first\n");
    assert_eq!(publisher.line(), "v1:published to 1");
    assert_eq!(viewer.line(), "v1:first");

    script.write_app("v2");
    app.reload_ok(2);
    let mut new_viewer = app.server.client();
    new_viewer.send("view\n");
    assert_eq!(new_viewer.line(), "v2:viewing");
    app.wait_subscribers(2);
    // New code publishes; the viewer attached by the old code still gets it.
    let mut publisher = app.server.client();
    publisher.send("pub second\n");
    assert_eq!(publisher.line(), "v2:published to 2");
    assert_eq!(viewer.line(), "v2:second");
    assert_eq!(new_viewer.line(), "v2:second");
}

#[test]
fn a_port_the_new_version_no_longer_listens_on_closes() {
    port_no_longer_listened_on("ports", &[]);
}

#[test]
fn a_port_the_new_version_no_longer_listens_on_closes_with_handoff() {
    port_no_longer_listened_on("ports-handoff", &["--sharding", "handoff"]);
}

fn port_no_longer_listened_on(test: &str, options: &[&str]) {
    let two = APP.replace("VERSION", "v1")
        + "moonport.tcp.listen({ host = '127.0.0.1', port = 0 }, function(c) c:write('second\\n') end)\n";
    let script = Script::new(test, &two);
    let app = script.start(options);
    let mut ports = Vec::new();
    let both = app.server.wait_log_until(Duration::from_secs(5), |log| {
        ports = log
            .lines()
            .filter_map(|l| l.split("listening on ").nth(1)?.split_whitespace().next()?.parse::<SocketAddr>().ok())
            .collect();
        ports.len() == 2
    });
    assert!(both, "two listeners expected:\n{}", app.server.log());
    let second = ports[1];
    assert_eq!(Client::connect(second).line(), "second");
    script.write_app("v2");
    app.reload_ok(2);
    // Its accept loops (or the hand-off acceptor thread) end right after the
    // reload has answered, and the socket closes with them.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect_timeout(&second, Duration::from_secs(1)).is_ok() {
        assert!(Instant::now() < deadline, "the second port is still open 5 s after the reload");
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(app.ask("x"), "v2:x");
}

#[test]
fn idle_http_keepalive_connections_of_the_old_version_close() {
    let http = |v: &str| {
        format!("moonport.http.listen({{ host = '127.0.0.1', port = 0 }}, function(req, res) res:send('{v}') end)\n")
    };
    let script = Script::new("http", &http("v1"));
    let app = script.start(&[]);
    let mut client = app.server.client();
    let get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    client.send(get);
    let head = read_response(&mut client);
    assert!(head.ends_with("v1"), "response: {head:?}");

    script.write(&http("v2"));
    app.reload_ok(2);
    // The idle kept-alive connection closes, so the client's next request
    // goes to a new connection and the new version.
    client.expect_closed();
    let mut fresh = app.server.client();
    fresh.send(get);
    assert!(read_response(&mut fresh).ends_with("v2"));
}

/// Reads one HTTP response with a Content-Length body; returns it whole.
fn read_response(client: &mut Client) -> String {
    use std::io::Read;
    let mut head = String::new();
    loop {
        let line = client.line();
        if line.trim_end().is_empty() {
            break;
        }
        head.push_str(&line);
        head.push('\n');
    }
    let len: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .expect("content-length");
    let mut body = vec![0; len];
    client.reader.read_exact(&mut body).unwrap();
    head + &String::from_utf8_lossy(&body)
}

/// A UDP service at a fixed port: `VERSION` and `PORT` are filled in. "slow"
/// is answered half a second later, from a task of its own.
const UDP_APP: &str = r#"
local moonport = require("moonport")
local V = "VERSION"
local udp = assert(moonport.udp.bind("127.0.0.1", PORT))
moonport.log.info("udp listening on 127.0.0.1:" .. PORT)
moonport.spawn(function()
  while true do
    local data, from = udp:recvfrom()
    if not data then break end -- "closed": a newer version receives now
    if data == "slow" then
      moonport.spawn(function()
        moonport.sleep(0.5)
        udp:sendto(V .. ":slow", from)
      end)
    else
      udp:sendto(V .. ":" .. data, from)
    end
  end
end)
"#;

/// Sends `request` and returns the answer, sending again after 300 ms
/// without one (UDP may drop a datagram; `resent` counts it).
fn udp_ask(client: &std::net::UdpSocket, request: &str, resent: &mut usize) -> String {
    let mut buf = [0u8; 512];
    for _ in 0..10 {
        client.send(request.as_bytes()).unwrap();
        match client.recv(&mut buf) {
            Ok(n) => return String::from_utf8_lossy(&buf[..n]).into_owned(),
            Err(_) => *resent += 1,
        }
    }
    panic!("no answer to {request:?}");
}

#[test]
fn a_udp_socket_at_a_fixed_port_is_handed_to_the_new_version() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app_text = |version: &str| UDP_APP.replace("VERSION", version).replace("PORT", &port.to_string());
    let script = Script::new("udp", &app_text("v1"));
    let app = script.start(&[]);
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client.connect(("127.0.0.1", port)).unwrap();
    client.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut resent = 0;
    assert_eq!(udp_ask(&client, "a", &mut resent), "v1:a");

    // Requests in a loop from a second client while the reload happens.
    let stop = Arc::new(AtomicBool::new(false));
    let looping = {
        let stop = stop.clone();
        thread::spawn(move || {
            let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            client.connect(("127.0.0.1", port)).unwrap();
            client.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
            let (mut answers, mut resent) = (Vec::new(), 0);
            for i in 0.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let answer = udp_ask(&client, &format!("n{i}"), &mut resent);
                assert!(answer.ends_with(&format!(":n{i}")), "answer {answer:?} to n{i}");
                answers.push(answer[..2].to_string());
            }
            (answers, resent)
        })
    };
    client.send(b"slow").unwrap();
    thread::sleep(Duration::from_millis(100));
    script.write(&app_text("v2"));
    app.reload_ok(2);
    // The new version answers, and the old one still sends what it owes.
    client.send(b"b").unwrap();
    client.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut answers: Vec<String> = (0..2)
        .map(|_| {
            let mut buf = [0u8; 512];
            let n = client.recv(&mut buf).expect("an answer to b or slow");
            String::from_utf8_lossy(&buf[..n]).into_owned()
        })
        .collect();
    answers.sort();
    assert_eq!(answers, ["v1:slow", "v2:b"]);
    thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    let (answers, resent_in_loop) = looping.join().unwrap();
    let first_v2 = answers.iter().position(|v| v == "v2").expect("the loop got a v2 answer");
    assert!(first_v2 > 0 && answers[first_v2..].iter().all(|v| v == "v2"), "{answers:?}");
    // At most the datagram that met the switch itself may be lost.
    assert!(resent + resent_in_loop <= 1, "{resent} + {resent_in_loop} requests went unanswered");
    assert_eq!(app.server.log().matches("address in use").count(), 0, "{}", app.server.log());
}
