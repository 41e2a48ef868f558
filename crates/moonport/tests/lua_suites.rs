//! Runs the Lua-side test suites (`tests/lua/*_test.lua`) through the real
//! binary: each is a client script that exercises one Lua module, prints
//! `N passed, M failed`, and exits 1 if anything failed.

mod common;

use std::time::Duration;

use common::Moonport;

fn run_suite(script: &str) {
    let out = Moonport::new(script).workers(1).run(Duration::from_secs(30));
    assert_eq!(out.code(), Some(0), "{script} failed\n--- stdout ---\n{}\n--- stderr ---\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(" passed, 0 failed"), "{script} printed no tally:\n{}", out.stdout);
}

#[test]
fn buffer_module() {
    run_suite("buffer_test.lua");
}

#[test]
fn url_module() {
    run_suite("url_test.lua");
}

#[test]
fn relay_module() {
    run_suite("relay_test.lua");
}

#[test]
#[cfg_attr(windows, ignore = "needs redis-server, which the Windows test run under Wine does not have")]
fn redis_module_and_cluster_rooms_from_lua() {
    let redis = common::Redis::start();
    let out = Moonport::new("redis_test.lua")
        .workers(1)
        .arg(redis.url())
        .arg(common::free_port())
        .run(Duration::from_secs(30));
    assert_eq!(
        out.code(),
        Some(0),
        "redis_test.lua failed\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.stdout,
        out.stderr
    );
    assert!(out.stdout.contains(" passed, 0 failed"), "redis_test.lua printed no tally:\n{}", out.stdout);
}

#[test]
fn room_module() {
    run_suite("room_test.lua");
}

#[test]
fn channel_select_and_timeout() {
    run_suite("channel_test.lua");
}

#[test]
fn net_module() {
    run_suite("net_test.lua");
}

#[test]
fn udp_module() {
    run_suite("udp_test.lua");
}

#[test]
fn socket_module() {
    run_suite("socket_test.lua");
}

#[test]
fn ws_and_http_modules() {
    run_suite("ws_test.lua");
}

#[test]
fn json_module() {
    run_suite("json_test.lua");
}

#[test]
fn zlib_module_and_wall_clock() {
    run_suite("zlib_test.lua");
}
