//! `examples/screencast` end to end: Xvfb with a painted desktop, x11vnc
//! serving it, moonport capturing it through its own RFB client, cutting it
//! into zlib tiles and fanning frames out through a room, and viewers:
//!
//! - two headless Chromium browsers at once on the viewer page (Selenium,
//!   `tests/browser/screencast_check.py`): both must show the desktop, and
//!   colour changes on the display must reach both (times printed);
//! - a viewer that stops reading while the screen changes fast: it must
//!   not build a queue but skip (a gap in the sequence numbers), get a
//!   keyframe when it asks, and never hold back a viewer that keeps up.
//!
//! Linux only (see tests/desktop for what it needs). `cargo test --release
//! -p moonport --test screencast -- --nocapture` prints the figures and
//! where the screenshot went (docs/screenshots/screencast.png is one).
#![cfg(target_os = "linux")]

mod common;
mod desktop;

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{Moonport, Server};
use desktop::Desktop;
use tungstenite::{Message, WebSocket};

const ROOT: &str = "20a060";
const WINDOW: &str = "ffcc00";
const CHANGES: &str = "c03060,2060c0,c03060,2060c0,20a060";
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);
const DELTA: u8 = 1;
const KEYFRAME: u8 = 2;

/// The desktop (x11vnc logging to `x11vnc_log` in the tests' scratch
/// directory) and the screencast capturing it, viewers queued up to `queue`
/// frames.
fn start(x11vnc_log: &str, queue: usize) -> (Desktop, Server) {
    desktop::require_tools();
    let desk = Desktop::start(ROOT, WINDOW, &PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(x11vnc_log));
    let server = Moonport::new("../../../../examples/screencast/server.lua")
        .workers(2)
        .arg("--port")
        .arg(0)
        .arg("--vnc")
        .arg(format!("127.0.0.1:{}", desk.vnc_port))
        .arg("--queue")
        .arg(queue)
        .start();
    server.expect_log("capturing 127.0.0.1:", Duration::from_secs(10));
    (desk, server)
}

#[test]
fn two_browsers_watch_the_xvfb_desktop() {
    let (desk, server) = start("x11vnc-screencast.log", 8);
    let screenshot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screencast.png");
    let url = format!("http://127.0.0.1:{}/", server.port());
    let args: Vec<String> =
        [&url, "--display", &desk.display, "--root", ROOT, "--window", WINDOW, "--changes", CHANGES]
            .into_iter()
            .map(String::from)
            .chain(["--viewers".into(), "2".into(), "--screenshot".into(), screenshot.display().to_string()])
            .collect();
    let out = desktop::browser_check("screencast_check.py", &args, BROWSER_TIMEOUT, || server.log());
    println!("screencast_check: {out}");
    assert!(out.contains("\"change_ms\""), "no change was measured: {out}");
    println!("screenshot: {}", screenshot.display());
}

/// A viewer of the frames, speaking the page's protocol.
struct Viewer {
    ws: WebSocket<TcpStream>,
}

/// One received frame's header.
#[derive(Debug, Clone, Copy)]
struct Frame {
    kind: u8,
    seq: u32,
    tiles: u32,
    bytes: usize,
}

impl Viewer {
    /// With a small receive buffer, so a viewer that stops reading is
    /// noticed by the server after little data.
    fn connect(addr: SocketAddr, small_buffer: bool) -> Self {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
        if small_buffer {
            sock.set_recv_buffer_size(16 * 1024).expect("SO_RCVBUF");
        }
        sock.connect(&addr.into()).expect("connect");
        let stream: TcpStream = sock.into();
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let (ws, _) = tungstenite::client::client(format!("ws://{addr}/ws"), stream).expect("upgrade");
        Self { ws }
    }

    fn ask_keyframe(&mut self) {
        self.ws.send(Message::text("key")).expect("send key");
    }

    fn next(&mut self) -> Frame {
        loop {
            match self.ws.read().expect("a frame") {
                Message::Binary(b) => {
                    assert!(b.len() >= 21, "short frame: {} bytes", b.len());
                    let seq = u32::from_le_bytes([b[1], b[2], b[3], b[4]]);
                    let tiles = u32::from_le_bytes([b[17], b[18], b[19], b[20]]);
                    return Frame { kind: b[0], seq, tiles, bytes: b.len() };
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected message {other:?}"),
            }
        }
    }

    /// Asks for a keyframe (again every second) until one comes.
    fn keyframe(&mut self) -> Frame {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut asked = Instant::now();
        self.ask_keyframe();
        loop {
            assert!(Instant::now() < deadline, "no keyframe within 10 s");
            let f = self.next();
            if f.kind == KEYFRAME {
                return f;
            }
            if asked.elapsed() > Duration::from_secs(1) {
                self.ask_keyframe();
                asked = Instant::now();
            }
        }
    }
}

#[test]
fn a_slow_viewer_skips_to_the_latest_frame_and_holds_no_one_back() {
    let (desk, server) = start("x11vnc-slow.log", 4);
    let addr = server.addr();

    let mut slow = Viewer::connect(addr, true);
    let first = slow.keyframe();
    assert!(first.tiles >= 150, "a keyframe has every tile of 960x600: {first:?}");

    // A viewer that keeps up, reading all along.
    let stop = Arc::new(AtomicBool::new(false));
    let fast_bytes = Arc::new(AtomicUsize::new(0));
    let fast = {
        let (stop, fast_bytes) = (stop.clone(), fast_bytes.clone());
        thread::spawn(move || {
            let mut v = Viewer::connect(addr, false);
            let mut last = v.keyframe().seq;
            let (mut frames, mut gaps) = (0u32, 0u32);
            while !stop.load(Ordering::Relaxed) {
                let f = v.next();
                if f.kind == DELTA {
                    frames += 1;
                    fast_bytes.fetch_add(f.bytes, Ordering::Relaxed);
                    if f.seq != last + 1 {
                        gaps += 1;
                    }
                    last = f.seq;
                }
            }
            (frames, gaps)
        })
    };

    // Text scrolling over the whole screen: most tiles change in every frame.
    let noise = desk.client(
        Command::new("xterm")
            .args(["-fa", "DejaVu Sans Mono", "-fs", "9", "-geometry", "200x60+0+0", "-e", "sh", "-c"])
            .arg("while :; do head -c 4000 /dev/urandom | base64; done"),
    );
    // The slow viewer reads nothing while more is published than the kernel's
    // socket buffers (at most 4 MiB to send on Linux by default) and the
    // server's queue for it could hold.
    let paused = Instant::now();
    while fast_bytes.load(Ordering::Relaxed) < 12_000_000 {
        assert!(paused.elapsed() < Duration::from_secs(60), "the screen does not change fast enough");
        thread::sleep(Duration::from_millis(100));
    }
    println!("the slow viewer paused for {:?}", paused.elapsed());

    // Then it gets what its socket held, then a jump: the frames it missed
    // were dropped, not queued.
    let before = Instant::now();
    let mut last = first.seq;
    let mut received = 0;
    let gap = loop {
        assert!(before.elapsed() < Duration::from_secs(20), "no gap after {received} frames: frames were queued");
        let f = slow.next();
        if f.kind != DELTA {
            continue;
        }
        received += 1;
        if f.seq != last + 1 {
            break (last, f.seq);
        }
        last = f.seq;
    };
    // Asked for, a keyframe brings the whole current picture.
    let key = slow.keyframe();
    // The fast viewer stops while the screen still changes: a frame is on its
    // way to end its last read (with the noise gone first, it could wait for
    // one that never comes).
    stop.store(true, Ordering::Relaxed);
    let Ok((frames, gaps)) = fast.join() else {
        panic!("the fast viewer failed; server log:\n{}", server.log());
    };
    drop(noise);
    println!(
        "slow viewer: {received} frames after its pause, then a jump from {} to {}, keyframe at {} ({} tiles); \
         fast viewer: {frames} frames ({} MB), {gaps} gaps",
        gap.0,
        gap.1,
        key.seq,
        key.tiles,
        fast_bytes.load(Ordering::Relaxed) / 1_000_000
    );
    assert!(key.seq >= gap.1, "the keyframe ({}) is from before the jump ({})", key.seq, gap.1);
    assert!(key.tiles >= 150, "a keyframe has every tile: {key:?}");
    assert!(gap.1 - gap.0 > 4, "the jump skipped frames: {gap:?}");
    assert!(frames > 20, "the screen changed while the slow viewer paused: {frames} frames");
    assert_eq!(gaps, 0, "the viewer that keeps up missed frames");
}
