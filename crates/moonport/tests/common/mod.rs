//! Shared helpers for the integration tests: run `moonport` on a script from
//! `tests/lua/`, wait for its listeners, capture its output, and talk to it
//! over plain blocking sockets with timeouts.
//!
//! Every wait here is bounded, and a spawned server is killed when its
//! `Server` handle is dropped (also when a test panics).

#![allow(dead_code)]

pub mod broadcast;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Socket timeout used by the test clients: generous, but every read ends.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a server gets to print `listening on ...`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

pub fn lua_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("lua")
}

/// The 1-based line of `script` (in `tests/lua/`) that contains `needle`, so
/// tests can check `file:line` in error messages without hard-coding numbers.
pub fn line_of(script: &str, needle: &str) -> usize {
    let text = std::fs::read_to_string(lua_dir().join(script)).expect("read test script");
    let hits: Vec<usize> = text.lines().enumerate().filter(|(_, l)| l.contains(needle)).map(|(i, _)| i + 1).collect();
    assert_eq!(hits.len(), 1, "{needle:?} should occur on exactly one line of {script}");
    hits[0]
}

/// Text captured from one of the child's pipes, growing as it arrives.
#[derive(Default)]
pub struct Captured {
    text: Mutex<String>,
    grew: Condvar,
    /// Set when the pipe reached EOF.
    done: Mutex<bool>,
}

impl Captured {
    fn drain(self: Arc<Self>, pipe: impl Read + Send + 'static) -> thread::JoinHandle<()> {
        thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let mut text = self.text.lock().unwrap();
                        text.push_str(&String::from_utf8_lossy(&line));
                        self.grew.notify_all();
                    }
                }
            }
            *self.done.lock().unwrap() = true;
            let _guard = self.text.lock().unwrap();
            self.grew.notify_all();
        })
    }

    pub fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for the captured text; returns whether it did in time.
    pub fn wait_until(&self, timeout: Duration, mut pred: impl FnMut(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut text = self.text.lock().unwrap();
        loop {
            if pred(&text) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            // Short steps, so predicates that look at more than the text are re-checked.
            let step = (deadline - now).min(Duration::from_millis(50));
            text = self.grew.wait_timeout(text, step).unwrap().0;
        }
    }
}

/// A `moonport run` invocation being put together.
pub struct Moonport {
    script: String,
    options: Vec<String>,
    args: Vec<String>,
    nofile: Option<u64>,
    env: Vec<(String, String)>,
    /// Where the child runs; `tests/lua/` unless `dir` says otherwise.
    dir: Option<PathBuf>,
}

impl Moonport {
    /// `script` is a file name in `tests/lua/`. The child runs in that
    /// directory and gets the bare file name, so messages read `name.lua:LINE`.
    pub fn new(script: &str) -> Self {
        Self {
            script: script.to_string(),
            options: Vec::new(),
            args: Vec::new(),
            nofile: None,
            env: Vec::new(),
            dir: None,
        }
    }

    /// Runs the child in `dir` instead of `tests/lua/` (the script name is
    /// then relative to `dir`, and so are the files the script opens).
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// `--workers N` (placed before the script).
    pub fn workers(mut self, n: usize) -> Self {
        self.options.extend(["--workers".to_string(), n.to_string()]);
        self
    }

    /// `--grace SECS` (placed before the script).
    pub fn grace(mut self, secs: f64) -> Self {
        self.options.extend(["--grace".to_string(), secs.to_string()]);
        self
    }

    pub fn option(mut self, opt: &str) -> Self {
        self.options.push(opt.to_string());
        self
    }

    /// An environment variable for the child.
    pub fn env(mut self, key: &str, value: impl ToString) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// An argument for the script (`arg[i]` / `...`).
    pub fn arg(mut self, a: impl ToString) -> Self {
        self.args.push(a.to_string());
        self
    }

    /// Lowers RLIMIT_NOFILE (soft and hard) for the child only. Unix only:
    /// Windows has no per-process limit on socket handles to lower.
    #[cfg(unix)]
    pub fn nofile_limit(mut self, n: u64) -> Self {
        self.nofile = Some(n);
        self
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_moonport"));
        cmd.current_dir(self.dir.clone().unwrap_or_else(lua_dir));
        cmd.arg("run");
        cmd.args(&self.options);
        cmd.arg(&self.script);
        cmd.args(&self.args);
        // --log-level decides; a RUST_LOG from the environment would override it.
        cmd.env_remove("RUST_LOG");
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        platform::prepare_child(&mut cmd, self.nofile);
        cmd
    }

    fn spawn(&self) -> (Child, Arc<Captured>, Arc<Captured>) {
        let mut child = self.command().spawn().expect("spawn moonport");
        let stderr = Arc::new(Captured::default());
        let stdout = Arc::new(Captured::default());
        stderr.clone().drain(child.stderr.take().unwrap());
        stdout.clone().drain(child.stdout.take().unwrap());
        (child, stderr, stdout)
    }

    /// Starts a server script and waits for its first `listening on ADDR` line.
    pub fn start(self) -> Server {
        let (child, stderr, stdout) = self.spawn();
        let mut server = Server { child, addr: None, stderr, stdout };
        let mut addr = None;
        let found = server.stderr.wait_until(STARTUP_TIMEOUT, |log| {
            addr = parse_listening(log);
            addr.is_some()
        });
        if !found {
            let status = server.child.try_wait().ok().flatten();
            panic!(
                "moonport did not report `listening on` within {STARTUP_TIMEOUT:?} (exit: {status:?})\n--- stderr ---\n{}\n--- stdout ---\n{}",
                server.log(),
                server.stdout()
            );
        }
        server.addr = addr;
        server
    }

    /// Starts the script without waiting for anything.
    pub fn start_unlistened(self) -> Server {
        let (child, stderr, stdout) = self.spawn();
        Server { child, addr: None, stderr, stdout }
    }

    /// Runs a script that should end by itself within `timeout`.
    pub fn run(self, timeout: Duration) -> Finished {
        let started = Instant::now();
        let mut server = self.start_unlistened();
        let status = server.wait_exit(timeout).unwrap_or_else(|| {
            panic!(
                "moonport did not exit within {timeout:?}\n--- stderr ---\n{}\n--- stdout ---\n{}",
                server.log(),
                server.stdout()
            )
        });
        let elapsed = started.elapsed();
        // The pipes close when the process exits; let the drain threads catch up.
        server.stderr.wait_until(Duration::from_secs(2), |_| *server.stderr.done.lock().unwrap());
        server.stdout.wait_until(Duration::from_secs(2), |_| *server.stdout.done.lock().unwrap());
        Finished { status, stdout: server.stdout(), stderr: server.log(), elapsed }
    }
}

fn parse_listening(log: &str) -> Option<SocketAddr> {
    log.lines().find_map(|line| {
        let rest = &line[line.find("listening on ")? + "listening on ".len()..];
        // The address ends at a space, or at the quote closing a JSON log line's message.
        rest.split(|c: char| c.is_whitespace() || c == '"').next()?.parse().ok()
    })
}

/// A script that ran to the end.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// A running moonport process; killed on drop.
pub struct Server {
    child: Child,
    addr: Option<SocketAddr>,
    stderr: Arc<Captured>,
    stdout: Arc<Captured>,
}

impl Server {
    /// The address of the first listener the server reported.
    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("server reported a listening address")
    }

    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Everything written to stderr (the log) so far.
    pub fn log(&self) -> String {
        self.stderr.text()
    }

    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    /// Waits for `needle` to appear in the log.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        self.stderr.wait_until(timeout, |log| log.contains(needle))
    }

    /// Waits for the log to satisfy `pred`.
    pub fn wait_log_until(&self, timeout: Duration, pred: impl FnMut(&str) -> bool) -> bool {
        self.stderr.wait_until(timeout, pred)
    }

    /// Like `wait_log`, but panics with the whole log when `needle` does not come.
    #[track_caller]
    pub fn expect_log(&self, needle: &str, timeout: Duration) {
        assert!(
            self.wait_log(needle, timeout),
            "log does not contain {needle:?} after {timeout:?}\n--- log ---\n{}",
            self.log()
        );
    }

    /// Sends a Unix signal to the process.
    #[cfg(unix)]
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill({}, {sig}) failed: {}", self.pid(), std::io::Error::last_os_error());
    }

    /// Asks the process to shut down gracefully, as a service manager would:
    /// SIGTERM on Unix; on Windows a console control event to the child's
    /// process group (the child was started in a group of its own).
    pub fn terminate(&self) {
        platform::terminate(&self.child);
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Panics (with the log) if the process has exited.
    #[track_caller]
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!("moonport exited unexpectedly with {status}\n--- log ---\n{}", self.log());
        }
    }

    /// A client connected to the server's first listener.
    pub fn client(&self) -> Client {
        Client::connect(self.addr())
    }

    /// The admin listener's address (`--admin`, `moonport.admin`), from its log line.
    #[track_caller]
    pub fn admin_addr(&self) -> SocketAddr {
        const MARK: &str = "admin endpoint http://";
        self.expect_log(MARK, STARTUP_TIMEOUT);
        let log = self.log();
        let rest = &log[log.find(MARK).unwrap() + MARK.len()..];
        rest.split_whitespace().next().unwrap().parse().unwrap()
    }
}

/// One HTTP/1.1 request on a fresh connection: status, head and body.
#[track_caller]
pub fn http_get(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut s = connect(addr);
    write!(s, "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read the HTTP response");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no end of head in {raw:?}"));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("status line: {head}"));
    (status, head.to_string(), body.to_string())
}

impl Drop for Server {
    fn drop(&mut self) {
        // MOONPORT_TEST_SHOW_LOG=1 (with --nocapture) shows what each server logged.
        if std::env::var_os("MOONPORT_TEST_SHOW_LOG").is_some() {
            eprintln!("--- moonport log ---\n{}--- moonport stdout ---\n{}", self.log(), self.stdout());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking TCP stream with timeouts on every read and write.
#[track_caller]
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// A line-oriented test client.
pub struct Client {
    pub reader: BufReader<TcpStream>,
}

impl Client {
    #[track_caller]
    pub fn connect(addr: SocketAddr) -> Self {
        Self { reader: BufReader::new(connect(addr)) }
    }

    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    #[track_caller]
    pub fn send(&mut self, data: impl AsRef<[u8]>) {
        self.reader.get_mut().write_all(data.as_ref()).expect("client write");
    }

    /// Sends `data` one byte at a time with a pause after each, so every byte
    /// arrives in its own TCP segment.
    pub fn send_trickle(&mut self, data: &[u8], pause: Duration) {
        for b in data {
            self.send([*b]);
            thread::sleep(pause);
        }
    }

    /// The next line without its `\n`; panics on EOF, error or timeout.
    #[track_caller]
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => panic!("connection closed while waiting for a line"),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                panic!("no answer line from the server within {IO_TIMEOUT:?} (got so far: {line:?})")
            }
            Err(e) => panic!("reading a line: {e} (got so far: {line:?})"),
        }
        assert!(line.ends_with('\n'), "line cut short by EOF: {line:?}");
        line.pop();
        line
    }

    /// Asserts the server closes the connection (EOF or reset) without
    /// sending anything more, within the read timeout.
    #[track_caller]
    pub fn expect_closed(&mut self) {
        let mut buf = [0u8; 256];
        match self.reader.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("expected the connection to close, got {:?}", String::from_utf8_lossy(&buf[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("expected the connection to close, got error {e}"),
        }
    }

    pub fn shutdown_write(&self) {
        self.stream().shutdown(Shutdown::Write).expect("shutdown(Write)");
    }
}

/// Raises this test process's soft RLIMIT_NOFILE towards `want` (bounded by
/// the hard limit); returns the soft limit now in force. On Windows, where
/// sockets are handles limited only by memory, returns `want`.
pub fn raise_own_nofile(want: u64) -> u64 {
    platform::raise_own_nofile(want)
}

/// Makes `close` send RST instead of FIN (SO_LINGER with a zero timeout).
#[track_caller]
pub fn set_linger_zero(s: &TcpStream) {
    platform::set_linger_zero(s)
}

/// What the helpers above do differently on Unix and Windows.
#[cfg(unix)]
mod platform {
    use std::net::TcpStream;
    use std::os::fd::AsRawFd;
    use std::process::{Child, Command};

    pub fn prepare_child(cmd: &mut Command, nofile: Option<u64>) {
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe and touches only this struct.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit { rlim_cur: n, rlim_max: n };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
    }

    #[track_caller]
    pub fn terminate(child: &Child) {
        let pid = child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill({pid}, SIGTERM) failed: {}", std::io::Error::last_os_error());
    }

    pub fn raise_own_nofile(want: u64) -> u64 {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: plain getrlimit/setrlimit on a local struct.
        unsafe {
            assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
            let target = want.min(lim.rlim_max);
            if lim.rlim_cur < target {
                let raised = libc::rlimit { rlim_cur: target, rlim_max: lim.rlim_max };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    lim = raised;
                }
            }
        }
        lim.rlim_cur
    }

    #[track_caller]
    pub fn set_linger_zero(s: &TcpStream) {
        let linger = libc::linger { l_onoff: 1, l_linger: 0 };
        // SAFETY: setsockopt on a socket we own, with a correctly sized value.
        let rc = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
    }
}

#[cfg(windows)]
mod platform {
    use std::net::TcpStream;
    use std::os::windows::io::AsRawSocket;
    use std::os::windows::process::CommandExt;
    use std::process::{Child, Command};

    use windows_sys::Win32::Networking::WinSock::{LINGER, SO_LINGER, SOCKET, SOL_SOCKET, WSAGetLastError, setsockopt};
    use windows_sys::Win32::System::Console::{CTRL_BREAK_EVENT, CTRL_C_EVENT, GenerateConsoleCtrlEvent};
    use windows_sys::Win32::System::Threading::CREATE_NEW_PROCESS_GROUP;

    pub fn prepare_child(cmd: &mut Command, nofile: Option<u64>) {
        assert!(nofile.is_none(), "no per-process handle limit to lower on Windows");
        // A console process group of its own, so a CTRL_BREAK_EVENT can be sent
        // to this child alone (CTRL_C_EVENT cannot target a group).
        cmd.creation_flags(CREATE_NEW_PROCESS_GROUP);
    }

    /// CTRL_BREAK_EVENT to the child's process group is how a Windows service
    /// manager or console stops one program gracefully. Wine 8 implements only
    /// CTRL_C_EVENT (CTRL_BREAK_EVENT fails with ERROR_INVALID_HANDLE), which it
    /// also delivers to one process group; moonport handles both, and turns
    /// Ctrl-C back on that CREATE_NEW_PROCESS_GROUP turned off. Both need a
    /// console shared with the child: scripts/wine/run provides one.
    #[track_caller]
    pub fn terminate(child: &Child) {
        // The group id of a process started with CREATE_NEW_PROCESS_GROUP is its pid.
        let group = child.id();
        // SAFETY: plain Win32 calls with a process group id.
        if unsafe { GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, group) } != 0 {
            return;
        }
        let break_err = std::io::Error::last_os_error();
        // SAFETY: as above.
        let ok = unsafe { GenerateConsoleCtrlEvent(CTRL_C_EVENT, group) };
        assert_ne!(
            ok,
            0,
            "GenerateConsoleCtrlEvent to group {group}: CTRL_BREAK_EVENT failed ({break_err}), CTRL_C_EVENT failed ({}); \
             is the test process attached to a console?",
            std::io::Error::last_os_error()
        );
    }

    pub fn raise_own_nofile(want: u64) -> u64 {
        want
    }

    #[track_caller]
    pub fn set_linger_zero(s: &TcpStream) {
        let linger = LINGER { l_onoff: 1, l_linger: 0 };
        // SAFETY: setsockopt on a socket we own, with a correctly sized value.
        let rc = unsafe {
            setsockopt(
                s.as_raw_socket() as SOCKET,
                SOL_SOCKET,
                SO_LINGER,
                (&linger as *const LINGER).cast(),
                std::mem::size_of::<LINGER>() as i32,
            )
        };
        // SAFETY: reads this thread's last Winsock error.
        assert_eq!(rc, 0, "SO_LINGER: WSA error {}", unsafe { WSAGetLastError() });
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; tests that need it bind it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A real `redis-server` on 127.0.0.1 (scripts/setup installs Debian's
/// redis-server package), with no persistence; killed on drop.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
}

impl Redis {
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// Starts on `port`: a restart after `kill` uses the same one.
    pub fn start_on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (run scripts/setup to install it)");
        let redis = Self { child: Some(child), port };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while redis.ping().is_err() {
            assert!(Instant::now() < deadline, "redis-server did not answer on port {port}");
            thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Sends one inline command and returns the first line of the reply.
    pub fn command(&self, cmd: &str) -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        s.write_all(format!("{cmd}\r\n").as_bytes())?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line)?;
        Ok(line.trim_end().to_string())
    }

    /// `PUBSUB NUMSUB channel`: how many connections subscribe to it.
    pub fn numsub(&self, channel: &str) -> usize {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else { return 0 };
        let _ = s.set_read_timeout(Some(IO_TIMEOUT));
        if s.write_all(format!("PUBSUB NUMSUB {channel}\r\n").as_bytes()).is_err() {
            return 0;
        }
        // *2, $len, the channel, :count
        let lines: Vec<String> = BufReader::new(s).lines().take(4).map_while(Result::ok).collect();
        lines.get(3).and_then(|l| l.strip_prefix(':')?.parse().ok()).unwrap_or(0)
    }

    fn ping(&self) -> std::io::Result<()> {
        match self.command("PING")?.as_str() {
            "+PONG" => Ok(()),
            other => Err(std::io::Error::other(other.to_string())),
        }
    }

    /// Sends a signal to the server (SIGSTOP makes it a Redis that answers nothing).
    #[cfg(unix)]
    pub fn signal(&self, sig: libc::c_int) {
        if let Some(child) = &self.child {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, sig) };
        }
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
