//! A WebSocket ↔ TCP bridge, as websockify runs it in front of a VNC server:
//! every data message the WebSocket peer sends goes to the TCP side as raw
//! bytes, and whatever the TCP side sends goes back as binary frames, with
//! no Lua per message. The session does the framing, unmasking, pings and
//! the close handshake; closing either side closes the other.
//!
//! Memory stays bounded because each direction waits for its write before
//! reading more: at most one message (`max_message`) is on its way to the
//! TCP side, and at most one read buffer (the connection's `read_buffer`)
//! is on its way to the WebSocket peer.

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::time::{Duration, Instant};

use futures_util::future::select;

use super::session::Payload;
use super::{Kind, Received, Session, WsError, code};
use crate::net::{NetError, TcpConn, idle_watch};

#[derive(Debug, Clone, Copy, Default)]
pub struct BridgeOptions {
    /// End when no byte has moved either way for this long.
    pub idle_timeout: Option<Duration>,
}

/// Why a bridge ended. Whatever the reason, both connections are closed.
#[derive(Debug)]
pub enum BridgeEnd {
    /// The WebSocket peer closed, with this code (1005 when it gave none).
    Close(u16),
    /// The TCP side ended its stream; the peer was sent 1000.
    Eof,
    /// Nothing moved for the idle timeout; the peer was sent 1000.
    Idle,
    /// The stop signal came (a server shutdown); the peer was sent 1001.
    Stopped,
    /// The WebSocket side failed: a broken rule (answered with its close
    /// code), a reset, a timeout.
    Ws(WsError),
    /// The TCP side failed; the peer was sent 1011.
    Tcp(NetError),
}

impl std::fmt::Display for BridgeEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BridgeEnd::Close(_) => f.write_str("close"),
            BridgeEnd::Eof => f.write_str("eof"),
            BridgeEnd::Idle => f.write_str("idle"),
            BridgeEnd::Stopped => f.write_str("shutdown"),
            BridgeEnd::Ws(e) => write!(f, "ws: {e}"),
            BridgeEnd::Tcp(e) => write!(f, "tcp: {e}"),
        }
    }
}

/// Byte counts of a finished bridge (payload bytes, without frame headers),
/// and why it ended.
#[derive(Debug)]
pub struct BridgeOutcome {
    pub to_tcp: u64,
    pub to_ws: u64,
    pub end: BridgeEnd,
}

/// Runs the bridge between the WebSocket `session` on `ws` and `tcp` until
/// either side closes or fails, the bridge idles out, or `stop` completes.
pub async fn bridge(
    session: &Session,
    ws: &TcpConn,
    tcp: &TcpConn,
    opts: BridgeOptions,
    stop: impl Future<Output = ()>,
) -> BridgeOutcome {
    let pump = Pump {
        session,
        ws,
        tcp,
        to_tcp: Cell::new(0),
        to_ws: Cell::new(0),
        last_activity: Cell::new(Instant::now()),
        sending: Cell::new(false),
    };
    // The first to finish decides; the others are dropped before the closing
    // starts, so the close handshake can read from the WebSocket again.
    let end = first(
        first(pump.upstream(), pump.downstream()),
        first(
            async {
                idle_watch(opts.idle_timeout, &pump.last_activity).await;
                BridgeEnd::Idle
            },
            async {
                stop.await;
                BridgeEnd::Stopped
            },
        ),
    )
    .await;
    let farewell = match &end {
        // A frame cut off midway: a close frame after it would be garbage.
        _ if pump.sending.get() => None,
        BridgeEnd::Eof => Some((code::NORMAL, "upstream closed")),
        BridgeEnd::Idle => Some((code::NORMAL, "idle")),
        BridgeEnd::Stopped => Some((code::GOING_AWAY, "server shutting down")),
        BridgeEnd::Tcp(_) => Some((code::INTERNAL, "upstream failed")),
        // The session has answered the peer's close or rule break already,
        // or its connection is broken.
        BridgeEnd::Close(_) | BridgeEnd::Ws(_) => None,
    };
    tcp.close();
    if let Some((code, reason)) = farewell {
        let _ = session.close(ws, Some(code), reason.as_bytes()).await;
    }
    ws.close();
    BridgeOutcome { to_tcp: pump.to_tcp.get(), to_ws: pump.to_ws.get(), end }
}

/// Whichever of `a` and `b` completes first.
async fn first<T>(a: impl Future<Output = T>, b: impl Future<Output = T>) -> T {
    select(pin!(a), pin!(b)).await.factor_first().0
}

/// What the two directions of one bridge share.
struct Pump<'a> {
    session: &'a Session,
    ws: &'a TcpConn,
    tcp: &'a TcpConn,
    to_tcp: Cell<u64>,
    to_ws: Cell<u64>,
    last_activity: Cell<Instant>,
    /// A frame to the WebSocket peer is being written.
    sending: Cell<bool>,
}

impl Pump<'_> {
    fn moved(&self, counter: &Cell<u64>, n: usize) {
        counter.set(counter.get() + n as u64);
        self.last_activity.set(Instant::now());
    }

    /// WebSocket → TCP: each data message's payload, as is.
    async fn upstream(&self) -> BridgeEnd {
        loop {
            match self.session.recv(self.ws).await {
                // Text is passed on too (its UTF-8 bytes): websockify's clients
                // send binary, but a text-speaking client loses nothing.
                Ok(Received::Message(_, data)) => {
                    let n = data.len();
                    // The message's own buffer goes to the kernel: no copy.
                    if let Err(e) = self.tcp.write_staged(data).await {
                        return BridgeEnd::Tcp(e);
                    }
                    self.moved(&self.to_tcp, n);
                }
                Ok(Received::Close(reason)) => return BridgeEnd::Close(reason.map_or(1005, |(c, _)| c)),
                Err(e) => return BridgeEnd::Ws(e),
            }
        }
    }

    /// TCP → WebSocket: whatever one read brings, as one binary frame.
    async fn downstream(&self) -> BridgeEnd {
        let mut guard = match self.tcp.begin_read() {
            Ok(g) => g,
            Err(e) => return BridgeEnd::Tcp(e),
        };
        loop {
            let data = match guard.peek(1).await {
                Ok(data) => data,
                Err(NetError::Eof) => return BridgeEnd::Eof,
                Err(e) => return BridgeEnd::Tcp(e),
            };
            let n = data.len();
            self.sending.set(true);
            let sent = self.session.send(self.ws, Kind::Binary, Payload::Bytes(data)).await;
            self.sending.set(false);
            if let Err(e) = sent {
                return BridgeEnd::Ws(e);
            }
            guard.advance(n);
            self.moved(&self.to_ws, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream as StdStream;
    use std::thread;

    use tungstenite::protocol::{CloseFrame, Role as PeerRole, frame::coding::CloseCode};
    use tungstenite::{Message, WebSocket};

    use super::*;
    use crate::proto::ws::{Role, Violation};

    const IO_TIMEOUT: Duration = Duration::from_secs(5);
    /// The TCP side's read buffer: no frame to the browser may be larger.
    const READ_CHUNK: usize = 16 * 1024;

    type Browser = WebSocket<StdStream>;

    /// A connection accepted by compio, and the blocking std client of it.
    async fn pair() -> (TcpConn, StdStream) {
        let listener = compio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        // The kernel completes the handshake from the backlog: no accept needed first.
        let client = StdStream::connect(listener.local_addr().expect("addr")).expect("connect");
        client.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        let (stream, _) = listener.accept().await.expect("accept");
        (TcpConn::new(stream, READ_CHUNK), client)
    }

    /// Runs a bridge between a tungstenite client (`browser`, on its own
    /// thread) and a plain TCP peer (`upstream`, on another), and returns
    /// how it ended. `stop_after` fires the stop signal.
    fn run(
        opts: BridgeOptions,
        stop_after: Option<Duration>,
        browser: impl FnOnce(Browser) + Send + 'static,
        upstream: impl FnOnce(StdStream) + Send + 'static,
    ) -> BridgeOutcome {
        compio::runtime::Runtime::new().expect("runtime").block_on(async {
            let (ws, ws_peer) = pair().await;
            let (tcp, tcp_peer) = pair().await;
            let b = thread::spawn(move || browser(WebSocket::from_raw_socket(ws_peer, PeerRole::Client, None)));
            let u = thread::spawn(move || upstream(tcp_peer));
            let session = Session::new(Role::Server, 1 << 20);
            let stop = async {
                match stop_after {
                    Some(d) => compio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            let out = bridge(&session, &ws, &tcp, opts, stop).await;
            b.join().expect("browser side");
            u.join().expect("upstream side");
            out
        })
    }

    fn expect_close(b: &mut Browser, code: u16, reason: &str) {
        loop {
            match b.read().expect("a frame") {
                Message::Close(Some(f)) => {
                    assert_eq!((u16::from(f.code), f.reason.as_str()), (code, reason));
                    return;
                }
                Message::Binary(_) => continue,
                other => panic!("close expected, got {other:?}"),
            }
        }
    }

    fn expect_eof(mut s: StdStream) {
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).expect("end of stream");
        assert!(rest.is_empty(), "unexpected bytes: {rest:?}");
    }

    #[test]
    fn bytes_cross_both_ways_and_a_close_ends_both_sides() {
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let down = big.clone();
        let out = run(
            BridgeOptions::default(),
            None,
            move |mut b| {
                b.send(Message::binary(b"hello".to_vec())).expect("send");
                b.send(Message::text("world")).expect("send");
                b.send(Message::binary(big)).expect("send big");
                // The upstream's bytes come back as binary frames no larger
                // than one read of the TCP side.
                let mut got = Vec::new();
                while got.len() < down.len() {
                    match b.read().expect("a frame") {
                        Message::Binary(data) => {
                            assert!(data.len() <= READ_CHUNK, "frame of {} bytes", data.len());
                            got.extend_from_slice(&data);
                        }
                        other => panic!("binary expected, got {other:?}"),
                    }
                }
                assert!(got == down, "the bytes came back changed");
                b.close(Some(CloseFrame { code: CloseCode::Away, reason: "bye".into() })).expect("close");
                expect_close(&mut b, 1001, "");
            },
            |mut u| {
                let mut got = vec![0; 10 + 300_000];
                u.read_exact(&mut got).expect("bytes from the browser");
                assert_eq!(&got[..10], b"helloworld");
                // Echo the big message: the same bytes, cut differently.
                u.write_all(&got[10..]).expect("write");
                expect_eof(u);
            },
        );
        assert!(matches!(out.end, BridgeEnd::Close(1001)), "{:?}", out.end);
        assert_eq!((out.to_tcp, out.to_ws), (300_010, 300_000));
        assert_eq!(out.end.to_string(), "close");
    }

    #[test]
    fn upstream_end_of_stream_closes_the_websocket_with_1000() {
        let out = run(
            BridgeOptions::default(),
            None,
            |mut b| {
                assert_eq!(b.read().expect("data"), Message::binary(b"RFB 003.008\n".to_vec()));
                expect_close(&mut b, 1000, "upstream closed");
            },
            |mut u| u.write_all(b"RFB 003.008\n").expect("write"),
        );
        assert!(matches!(out.end, BridgeEnd::Eof), "{:?}", out.end);
        assert_eq!((out.to_tcp, out.to_ws), (0, 12));
    }

    #[test]
    fn a_broken_rule_gets_its_close_code_and_closes_upstream() {
        let out = run(
            BridgeOptions::default(),
            None,
            |mut b| {
                // An unmasked frame, which a client must never send.
                b.get_mut().write_all(&[0x82, 0x01, b'x']).expect("write");
                expect_close(&mut b, 1002, "unmasked frame");
            },
            expect_eof,
        );
        match out.end {
            BridgeEnd::Ws(WsError::Protocol(Violation { code: 1002, .. })) => {}
            other => panic!("protocol error expected, got {other:?}"),
        }
        assert_eq!(out.to_tcp, 0);
    }

    #[test]
    fn stop_and_idle_say_goodbye_to_the_browser() {
        let out = run(
            BridgeOptions::default(),
            Some(Duration::from_millis(100)),
            |mut b| expect_close(&mut b, 1001, "server shutting down"),
            expect_eof,
        );
        assert!(matches!(out.end, BridgeEnd::Stopped), "{:?}", out.end);
        assert_eq!(out.end.to_string(), "shutdown");

        let started = Instant::now();
        let opts = BridgeOptions { idle_timeout: Some(Duration::from_millis(300)) };
        let out = run(
            opts,
            None,
            |mut b| {
                // Traffic keeps it alive; then silence ends it.
                for _ in 0..3 {
                    b.send(Message::binary(b"k".to_vec())).expect("send");
                    thread::sleep(Duration::from_millis(150));
                }
                expect_close(&mut b, 1000, "idle");
            },
            |mut u| {
                let mut got = [0; 3];
                u.read_exact(&mut got).expect("keys");
                expect_eof(u);
            },
        );
        assert!(matches!(out.end, BridgeEnd::Idle), "{:?}", out.end);
        // Without the traffic it would have ended after 300 ms.
        assert!(started.elapsed() >= Duration::from_millis(550), "ended after {:?}", started.elapsed());
    }

    #[test]
    #[cfg_attr(
        windows,
        ignore = "Wine ends a pending read at a linger-0 close as end of stream, not reset (docs/windows.md)"
    )]
    fn a_failed_upstream_is_an_internal_error() {
        let out = run(
            BridgeOptions::default(),
            None,
            |mut b| expect_close(&mut b, 1011, "upstream failed"),
            |u| {
                // SO_LINGER 0: close sends RST, so the bridge's read fails.
                socket2::SockRef::from(&u).set_linger(Some(Duration::ZERO)).expect("linger");
            },
        );
        assert!(matches!(out.end, BridgeEnd::Tcp(NetError::Reset)), "{:?}", out.end);
        assert_eq!(out.end.to_string(), "tcp: reset");
    }
}
