//! Observability through the real binary: metrics a script keeps and the
//! engine's own, scraped over HTTP from the admin listener (`--admin` or
//! `moonport.admin`), its health check through a shutdown, JSON log lines,
//! and the `moonport.metrics` Lua API's checks (`tests/lua/metrics_test.lua`).

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Moonport, http_get, line_of};

const WAIT: Duration = Duration::from_secs(10);

/// `/metrics` as series name (with labels) → value.
fn scrape(addr: SocketAddr) -> BTreeMap<String, f64> {
    let (status, head, body) = http_get(addr, "GET", "/metrics");
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("Content-Type: text/plain; version=0.0.4"), "{head}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("sample line {l:?}"));
            (series.to_string(), value.parse().unwrap_or_else(|_| panic!("value in {l:?}")))
        })
        .collect()
}

/// The sum of a built-in metric over the workers, and how many workers have it above zero.
fn over_workers(samples: &BTreeMap<String, f64>, name: &str) -> (f64, usize) {
    let values: Vec<f64> =
        samples.iter().filter(|(k, _)| k.starts_with(&format!("{name}{{worker=\""))).map(|(_, v)| *v).collect();
    (values.iter().sum(), values.iter().filter(|v| **v > 0.0).count())
}

/// Scrapes until `done` holds, so counts that follow a client's close can settle.
fn scrape_until(addr: SocketAddr, mut done: impl FnMut(&BTreeMap<String, f64>) -> bool) -> BTreeMap<String, f64> {
    let deadline = Instant::now() + WAIT;
    loop {
        let samples = scrape(addr);
        if done(&samples) || Instant::now() > deadline {
            return samples;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn script_and_engine_metrics_add_up_over_two_workers() {
    let server = Moonport::new("metrics_app.lua").workers(2).option("--admin").option("127.0.0.1:0").start();
    server.expect_log("worker 2 ready", WAIT);
    let admin = server.admin_addr();
    let before = scrape(admin);
    assert_eq!(over_workers(&before, "moonport_tcp_connections_accepted_total").0, 0.0);
    assert_eq!(before.get("test_sessions"), Some(&0.0), "{before:?}");
    assert!(before.keys().any(|k| k.starts_with("moonport_io_driver_info{driver=")), "{before:?}");

    // 20 connections, each with a line for every histogram bucket.
    let lines = ["abc".to_string(), "#a comment..".to_string(), "x".repeat(40), "y".repeat(100)];
    let mut bytes = 0;
    for _ in 0..20 {
        let mut c = server.client();
        for line in &lines {
            c.send(format!("{line}\n"));
            assert_eq!(&c.line(), line);
            bytes += line.len() + 1;
        }
    }
    // A handler's coroutine ends a moment after its connection is closed.
    let after = scrape_until(admin, |s| {
        over_workers(s, "moonport_tcp_connections_open").0 == 0.0
            && over_workers(s, "moonport_coroutines").0 == 0.0
            && s.get("test_sessions") == Some(&0.0)
    });
    let show = format!("{after:#?}");
    assert_eq!(after.get("test_messages_total{kind=\"text\"}"), Some(&60.0), "{show}");
    assert_eq!(after.get("test_messages_total{kind=\"comment\"}"), Some(&20.0), "{show}");
    for (le, count) in [("4", 20.0), ("16", 40.0), ("64", 60.0), ("+Inf", 80.0)] {
        assert_eq!(after.get(&format!("test_line_bytes_bucket{{le=\"{le}\"}}")), Some(&count), "le={le}\n{show}");
    }
    assert_eq!(after.get("test_line_bytes_count"), Some(&80.0), "{show}");
    assert_eq!(after.get("test_line_bytes_sum"), Some(&(20.0 * (3.0 + 12.0 + 40.0 + 100.0))), "{show}");
    assert_eq!(after.get("test_sessions"), Some(&0.0), "{show}");

    // Both workers served, and the engine counted every connection and byte.
    assert_eq!(over_workers(&after, "moonport_tcp_connections_accepted_total"), (20.0, 2), "{show}");
    assert_eq!(over_workers(&after, "moonport_tcp_received_bytes_total").0, bytes as f64, "{show}");
    assert_eq!(over_workers(&after, "moonport_tcp_sent_bytes_total").0, bytes as f64, "{show}");
    assert_eq!(over_workers(&after, "moonport_tcp_connections_open").0, 0.0, "{show}");
    assert_eq!(over_workers(&after, "moonport_coroutines").0, 0.0, "{show}");
    assert_eq!(over_workers(&after, "moonport_lua_errors_total").0, 0.0, "{show}");

    // A handler error is counted, and its log line names the worker, the
    // connection's peer and the script's line.
    let mut c = server.client();
    let peer = c.stream().local_addr().unwrap();
    c.send("boom\n");
    c.expect_closed();
    let errors = scrape_until(admin, |s| over_workers(s, "moonport_lua_errors_total").0 == 1.0);
    assert_eq!(over_workers(&errors, "moonport_lua_errors_total").0, 1.0, "{errors:#?}");
    let at = format!("metrics_app.lua:{}: boom on purpose", line_of("metrics_app.lua", "error(\"boom on purpose\")"));
    server.expect_log(&at, WAIT);
    let log = server.log();
    let line = log.lines().find(|l| l.contains(&at)).unwrap();
    assert!(line.contains(" ERROR worker{id="), "{line}");
    assert!(line.contains(&format!(":conn{{peer={peer}}}: ")), "{line}");
}

#[test]
fn health_says_ok_while_serving_and_503_while_draining() {
    let server =
        Moonport::new("metrics_app.lua").workers(1).grace(10.0).option("--admin").option("127.0.0.1:0").start();
    let admin = server.admin_addr();
    let (status, _, body) = http_get(admin, "GET", "/health");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert_eq!(http_get(admin, "GET", "/nothing-here").0, 404);
    let (status, head, _) = http_get(admin, "POST", "/metrics");
    assert_eq!(status, 405);
    assert!(head.contains("Allow: GET, HEAD"), "{head}");

    // A connection still open keeps the process draining after the signal.
    let mut c = server.client();
    c.send("hello\n");
    assert_eq!(c.line(), "hello");
    server.terminate();
    server.expect_log("shutting down", WAIT);
    let (status, _, body) = http_get(admin, "GET", "/health");
    assert_eq!((status, body.as_str()), (503, "draining\n"));
    // Metrics are still served while draining.
    assert_eq!(scrape(admin).get("test_sessions"), Some(&1.0));
}

#[test]
fn json_log_lines_carry_worker_and_peer_and_the_script_starts_the_admin() {
    let server = Moonport::new("metrics_app.lua").workers(2).option("--log-format").option("json").arg("admin").start();
    let admin = server.admin_addr();
    // No --admin: the script started it, and got its address back.
    let said = format!("admin from the script on {admin}");
    let deadline = Instant::now() + WAIT;
    while !server.stdout().contains(&said) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(server.stdout().contains(&said), "{}", server.stdout());

    let mut c = server.client();
    let peer = c.stream().local_addr().unwrap().to_string();
    c.send("hello\n");
    assert_eq!(c.line(), "hello");
    c.send("boom\n");
    c.expect_closed();
    server.expect_log("boom on purpose", WAIT);

    let lines: Vec<serde_json::Value> = server
        .log()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    for line in &lines {
        for key in ["ts", "level", "target", "message"] {
            assert!(line[key].is_string(), "{key} in {line}");
        }
    }
    let find = |needle: &str| {
        lines
            .iter()
            .find(|l| l["message"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("no log line with {needle:?} in {lines:#?}"))
    };
    let echo = find(&format!("metrics_app.lua:{}: echoing 5 bytes", line_of("metrics_app.lua", "\"echoing\"")));
    assert_eq!((echo["level"].as_str(), echo["target"].as_str()), (Some("info"), Some("lua")), "{echo}");
    assert_eq!(echo["peer"].as_str(), Some(peer.as_str()), "{echo}");
    let worker = echo["worker"].as_u64().unwrap_or_else(|| panic!("worker in {echo}"));
    assert!((1..=2).contains(&worker), "{echo}");

    let at = format!("metrics_app.lua:{}: boom on purpose", line_of("metrics_app.lua", "error(\"boom on purpose\")"));
    let error = find(&at);
    assert_eq!(error["level"].as_str(), Some("error"), "{error}");
    assert_eq!(error["peer"].as_str(), Some(peer.as_str()), "{error}");
    assert_eq!(error["worker"].as_u64(), Some(worker), "{error}");
    // Lines from outside a connection have a worker but no peer.
    let ready = find("worker 1 ready");
    assert_eq!((ready["worker"].as_u64(), ready.get("peer")), (Some(1), None), "{ready}");

    let errors = scrape_until(admin, |s| over_workers(s, "moonport_lua_errors_total").0 == 1.0);
    assert_eq!(over_workers(&errors, "moonport_lua_errors_total").0, 1.0, "{errors:#?}");
}

#[test]
fn lua_api_registers_updates_and_refuses_mistakes() {
    let out = Moonport::new("metrics_test.lua")
        .workers(1)
        .option("--metrics-max-series")
        .option("12")
        .run(Duration::from_secs(30));
    assert_eq!(out.code(), Some(0), "--- stdout ---\n{}\n--- stderr ---\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(" passed, 0 failed"), "{}", out.stdout);
}
