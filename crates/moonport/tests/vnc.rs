//! The VNC bridge end to end, with real and independent parts on both sides:
//! an X server (Xvfb) with a painted desktop, x11vnc serving it, moonport
//! running `examples/vnc_bridge.lua` (noVNC's files and the WebSocket
//! bridge), and headless Chromium running noVNC, driven through Selenium by
//! `tests/browser/novnc_check.py`. The browser must show the desktop's
//! colours, and a change on the display must reach it; the times are printed.
//!
//! Linux only (see tests/desktop for what it needs). `cargo test --release
//! -p moonport --test vnc -- --nocapture` prints the times and where the
//! browser's screenshot went (docs/screenshots/novnc.png is one).
#![cfg(target_os = "linux")]

mod common;
mod desktop;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::Moonport;
use desktop::{Desktop, NOVNC};

/// The desktop: the root window's colour, a window's, and the colours the
/// root is changed to while the browser watches (RRGGBB).
const ROOT: &str = "20a060";
const WINDOW: &str = "ffcc00";
const CHANGES: &str = "c03060,2060c0,c03060,2060c0,20a060";
/// How long the browser part may take, startup included.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(45);

#[test]
fn novnc_in_chromium_shows_the_xvfb_desktop_through_moonport() {
    desktop::require_tools();
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let started = Instant::now();
    let desk = Desktop::start(ROOT, WINDOW, &tmp.join("x11vnc.log"));

    let moonport = Moonport::new("../../../../examples/vnc_bridge.lua")
        .arg("--port")
        .arg(0)
        .arg("--web")
        .arg(NOVNC)
        .arg("--target")
        .arg(format!("desktop=127.0.0.1:{}", desk.vnc_port))
        .start();
    let port = moonport.port();
    println!(
        "desktop {}, x11vnc on {}, moonport on {port}: ready after {:?}",
        desk.display,
        desk.vnc_port,
        started.elapsed()
    );

    // noVNC 1.3's parameters: its own page, the bridge's host and port, and
    // the WebSocket path with the token (percent-encoded, as it is a query).
    let url = format!(
        "http://127.0.0.1:{port}/vnc.html?autoconnect=1&resize=off&host=127.0.0.1&port={port}\
         &path=websockify%3Ftoken%3Ddesktop"
    );
    let screenshot = tmp.join("novnc.png");
    let args = [url, "--display".into(), desk.display.clone(), "--root".into(), ROOT.into(), "--window".into()]
        .into_iter()
        .chain([WINDOW.into(), "--changes".into(), CHANGES.into(), "--screenshot".into()])
        .chain([screenshot.display().to_string()])
        .collect::<Vec<String>>();
    let out = desktop::browser_check("novnc_check.py", &args, BROWSER_TIMEOUT, || moonport.log());
    println!("novnc_check: {out}");
    assert!(out.contains("\"change_ms\""), "no change was measured: {out}");
    // The bridge, not something else, carried the session.
    moonport.expect_log("-> 127.0.0.1:", Duration::from_secs(1));
    println!("screenshot: {}; whole test {:?}", screenshot.display(), started.elapsed());
}
