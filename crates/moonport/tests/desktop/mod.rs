//! What the desktop end-to-end tests (vnc.rs, screencast.rs) share: an X
//! server (Xvfb) on a display of its own, X clients, x11vnc, child processes
//! that are cleaned up when dropped, and the browser check scripts in
//! tests/browser (headless Chromium through Selenium) run with a deadline.
//!
//! Every tool is required, none is skipped: `scripts/setup` installs them by
//! package name (`scripts/setup-desktop`), and a missing one fails the test
//! with its name.

#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

pub const NOVNC: &str = "/usr/share/novnc";

/// A child process of the test, ended when dropped: SIGTERM (so Xvfb removes
/// its lock file), then SIGKILL if it lingers. With `group`, the signal goes
/// to the child's own process group (the browser and its driver too).
pub struct Proc {
    pub child: Child,
    group: bool,
}

impl Proc {
    pub fn spawn(cmd: &mut Command, group: bool) -> Self {
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
pub fn require_tools() {
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
        "missing for the desktop end-to-end tests: {}. scripts/setup installs them \
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
pub fn x_run(display: &str, program: &str, args: &[&str]) {
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

pub fn free_port() -> u16 {
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

/// A painted X desktop served by x11vnc on 127.0.0.1: a root window of one
/// colour and a terminal window of another, with text.
pub struct Desktop {
    pub display: String,
    pub vnc_port: u16,
    // Dropped in reverse order of starting: the VNC server, the clients,
    // then the X server.
    _x11vnc: Proc,
    _xterm: Proc,
    _xvfb: Proc,
}

impl Desktop {
    /// Colours are RRGGBB; `log` is where x11vnc writes.
    pub fn start(root: &str, window: &str, log: &Path) -> Self {
        let (xvfb, display) = start_xvfb();
        x_run(&display, "xsetroot", &["-solid", &format!("#{root}")]);
        let xterm = Proc::spawn(
            Command::new("xterm")
                .args(["-fa", "DejaVu Sans Mono", "-fs", "16", "-geometry", "50x10+120+120"])
                .args(["-bg", &format!("#{window}"), "-fg", "black", "-e", "sh", "-c"])
                .arg("echo 'Xvfb desktop, seen in Chromium'; echo 'through moonport'; exec sleep 300")
                .env("DISPLAY", &display)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            false,
        );
        // -nonap keeps x11vnc polling the screen at its usual rate instead of
        // napping while nothing changes.
        let vnc_port = free_port();
        let x11vnc = Proc::spawn(
            Command::new("x11vnc")
                .args(["-display", &display, "-localhost", "-nopw", "-forever", "-shared", "-nonap"])
                .args(["-rfbport", &vnc_port.to_string(), "-o", &log.display().to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            false,
        );
        wait_listening(SocketAddr::from(([127, 0, 0, 1], vnc_port)), "x11vnc", log);
        Self { display, vnc_port, _x11vnc: x11vnc, _xterm: xterm, _xvfb: xvfb }
    }

    /// Starts an X client on this display, ended when the result is dropped.
    pub fn client(&self, cmd: &mut Command) -> Proc {
        Proc::spawn(cmd.env("DISPLAY", &self.display).stdout(Stdio::null()).stderr(Stdio::null()), false)
    }
}

/// Runs `tests/browser/<script>` with `args` (its browsers in their own
/// process group, all ended on return) and returns its last stdout line;
/// fails with its output and `server_log()` if it fails or overruns `limit`.
#[track_caller]
pub fn browser_check(script: &str, args: &[String], limit: Duration, server_log: impl Fn() -> String) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser").join(script);
    let mut cmd = Command::new("python3");
    cmd.arg(&path).args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut browser = Proc::spawn(&mut cmd, true);
    let (stdout, stderr) = (browser.child.stdout.take(), browser.child.stderr.take());
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let err = thread::spawn(move || read_all(stderr));
        let out = read_all(stdout);
        let _ = tx.send((out, err.join().unwrap_or_default()));
    });
    let Ok((out, err)) = rx.recv_timeout(limit) else {
        drop(browser);
        panic!("{script} did not finish within {limit:?}\n--- server log ---\n{}", server_log());
    };
    let status = browser.child.wait().expect("the browser check's status");
    assert!(
        status.success(),
        "{script} failed ({status})\n--- its stdout ---\n{out}\n--- its stderr ---\n{err}\n--- server log ---\n{}",
        server_log()
    );
    out.trim().lines().last().unwrap_or_default().to_string()
}
