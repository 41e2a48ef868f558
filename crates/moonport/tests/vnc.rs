//! The VNC bridge end to end, with real and independent parts on both sides:
//! an X server (Xvfb) with a painted desktop, x11vnc serving it, moonport
//! running `examples/vnc_bridge.lua` (noVNC's files and the WebSocket
//! bridge), and headless Chromium running noVNC, driven through Selenium by
//! `tests/browser/novnc_check.py`. The browser must show the desktop's
//! colours, and a change on the display must reach it; the times are printed.
//!
//! Linux only. Every tool is required, none is skipped: `scripts/setup`
//! installs them by package name (`scripts/setup-desktop`), and a missing one
//! fails the test with its name. `cargo test --release -p moonport --test vnc
//! -- --nocapture` prints the times and where the browser's screenshot went
//! (docs/screenshots/novnc.png is one).
#![cfg(target_os = "linux")]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::Moonport;

/// The desktop: the root window's colour, a window's, and the colours the
/// root is changed to while the browser watches (RRGGBB).
const ROOT: &str = "20a060";
const WINDOW: &str = "ffcc00";
const CHANGES: &str = "c03060,2060c0,c03060,2060c0,20a060";
/// How long the browser part may take, startup included.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(45);
const NOVNC: &str = "/usr/share/novnc";

/// A child process of the test, ended when dropped: SIGTERM (so Xvfb removes
/// its lock file), then SIGKILL if it lingers. With `group`, the signal goes
/// to the child's own process group (the browser and its driver too).
struct Proc {
    child: Child,
    group: bool,
}

impl Proc {
    fn spawn(cmd: &mut Command, group: bool) -> Self {
        use std::os::unix::process::CommandExt;
        if group {
            cmd.process_group(0);
        }
        let what = format!("{cmd:?}");
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Self { child, group }
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child, or on the process group it leads.
        unsafe { libc::kill(if self.group { -pid } else { pid }, sig) };
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                if self.group {
                    // Whatever else is left in the group (a browser process).
                    self.signal(libc::SIGKILL);
                }
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Fails with the names of what is missing and how to get it.
fn require_tools() {
    let on_path = |tool: &str| {
        std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
    };
    let mut missing: Vec<String> = ["Xvfb", "x11vnc", "xsetroot", "xterm", "chromium", "chromedriver", "python3"]
        .into_iter()
        .filter(|t| !on_path(t))
        .map(String::from)
        .collect();
    if !Path::new(NOVNC).join("vnc.html").is_file() {
        missing.push(format!("noVNC ({NOVNC}/vnc.html)"));
    }
    let selenium = Command::new("python3").args(["-c", "import selenium"]).stderr(Stdio::null()).status();
    if !selenium.is_ok_and(|s| s.success()) {
        missing.push("the Python module selenium".into());
    }
    assert!(
        missing.is_empty(),
        "missing for the VNC end-to-end test: {}. scripts/setup installs them \
         (Debian: xvfb x11vnc x11-xserver-utils xterm chromium chromium-driver novnc; PyPI: selenium)",
        missing.join(", ")
    );
}

/// Starts Xvfb on a display it picks itself (`-displayfd`) and returns it
/// once the server is ready, as `:N`.
fn start_xvfb() -> (Proc, String) {
    let mut xvfb = Proc::spawn(
        Command::new("Xvfb")
            .args(["-displayfd", "1", "-screen", "0", "960x600x24", "-nolisten", "tcp", "-noreset"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
        false,
    );
    let stdout = xvfb.child.stdout.take().expect("Xvfb's stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(10)).expect("Xvfb reports its display within 10 s");
    let n: u32 = line.trim().parse().unwrap_or_else(|_| panic!("Xvfb wrote {line:?} for its display number"));
    (xvfb, format!(":{n}"))
}

/// Runs an X client to its end and checks that it succeeded.
#[track_caller]
fn x_run(display: &str, program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).env("DISPLAY", display).status();
    assert!(status.as_ref().is_ok_and(|s| s.success()), "{program} {args:?} on {display}: {status:?}");
}

/// Everything a child writes to a pipe, until it closes.
fn read_all(pipe: Option<impl Read>) -> String {
    let mut text = String::new();
    if let Some(mut p) = pipe {
        let _ = p.read_to_string(&mut text);
    }
    text
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// Waits until something accepts connections on `addr`.
#[track_caller]
fn wait_listening(addr: SocketAddr, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} does not listen on {addr} after 10 s; its log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn novnc_in_chromium_shows_the_xvfb_desktop_through_moonport() {
    require_tools();
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let started = Instant::now();

    // The desktop: a coloured root window and a coloured terminal with text.
    let (_xvfb, display) = start_xvfb();
    x_run(&display, "xsetroot", &["-solid", &format!("#{ROOT}")]);
    let _xterm = Proc::spawn(
        Command::new("xterm")
            .args(["-fa", "DejaVu Sans Mono", "-fs", "16", "-geometry", "50x10+120+120"])
            .args(["-bg", &format!("#{WINDOW}"), "-fg", "black", "-e", "sh", "-c"])
            .arg("echo 'Xvfb desktop, seen in Chromium'; echo 'through noVNC and moonport'; exec sleep 120")
            .env("DISPLAY", &display)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        false,
    );

    // x11vnc serves it on loopback; -nonap keeps it polling the screen at
    // its usual rate instead of napping while nothing changes.
    let vnc_port = free_port();
    let vnc_log = tmp.join("x11vnc.log");
    let _x11vnc = Proc::spawn(
        Command::new("x11vnc")
            .args(["-display", &display, "-localhost", "-nopw", "-forever", "-shared", "-nonap"])
            .args(["-rfbport", &vnc_port.to_string(), "-o", &vnc_log.display().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        false,
    );
    wait_listening(SocketAddr::from(([127, 0, 0, 1], vnc_port)), "x11vnc", &vnc_log);

    let moonport = Moonport::new("../../../../examples/vnc_bridge.lua")
        .arg("--port")
        .arg(0)
        .arg("--web")
        .arg(NOVNC)
        .arg("--target")
        .arg(format!("desktop=127.0.0.1:{vnc_port}"))
        .start();
    let port = moonport.port();
    println!("desktop {display}, x11vnc on {vnc_port}, moonport on {port}: ready after {:?}", started.elapsed());

    // noVNC 1.3's parameters: its own page, the bridge's host and port, and
    // the WebSocket path with the token (percent-encoded, as it is a query).
    let url = format!(
        "http://127.0.0.1:{port}/vnc.html?autoconnect=1&resize=off&host=127.0.0.1&port={port}\
         &path=websockify%3Ftoken%3Ddesktop"
    );
    let screenshot = tmp.join("novnc.png");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/novnc_check.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script).arg(&url).args(["--display", &display, "--root", ROOT, "--window", WINDOW]);
    cmd.args(["--changes", CHANGES]).arg("--screenshot").arg(&screenshot);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut browser = Proc::spawn(&mut cmd, true);
    let (stdout, stderr) = (browser.child.stdout.take(), browser.child.stderr.take());
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let err = thread::spawn(move || read_all(stderr));
        let out = read_all(stdout);
        let _ = tx.send((out, err.join().unwrap_or_default()));
    });
    let Ok((out, err)) = rx.recv_timeout(BROWSER_TIMEOUT) else {
        drop(browser);
        panic!("the browser check did not finish within {BROWSER_TIMEOUT:?}\n--- moonport log ---\n{}", moonport.log());
    };
    let status = browser.child.wait().expect("the browser check's status");
    println!("novnc_check: {}", out.trim());
    assert!(
        status.success(),
        "the browser check failed ({status})\n--- its stdout ---\n{out}\n--- its stderr ---\n{err}\n--- moonport log ---\n{}",
        moonport.log()
    );
    assert!(out.contains("\"change_ms\""), "no change was measured: {out}");
    // The bridge, not something else, carried the session.
    moonport.expect_log("-> 127.0.0.1:", Duration::from_secs(1));
    println!("screenshot: {}; whole test {:?}", screenshot.display(), started.elapsed());
}
