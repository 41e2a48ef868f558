//! examples/chat.lua as users would try it: clients on different workers
//! talk in a room, rooms are separate, and commands work.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Moonport;

struct Chatter {
    out: TcpStream,
    lines: BufReader<TcpStream>,
}

impl Chatter {
    fn connect(addr: std::net::SocketAddr) -> Self {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let lines = BufReader::new(s.try_clone().expect("clone"));
        let mut c = Chatter { out: s, lines };
        assert!(c.line().starts_with("welcome"));
        c
    }

    fn say(&mut self, text: &str) {
        self.out.write_all(format!("{text}\n").as_bytes()).expect("send");
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.lines.read_line(&mut l).expect("a line within 5 s");
        l.trim_end().to_string()
    }

    fn expect_suffix(&mut self, suffix: &str) {
        self.expect_with(suffix, |l| l.ends_with(suffix));
    }

    fn expect(&mut self, want: &str) {
        self.expect_with(want, |l| l == want);
    }

    /// Reads lines until one matches; fails on end of stream or after 5 s.
    /// Lines skipped on the way must not come from another room.
    fn expect_with(&mut self, want: &str, matches: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            let l = self.line();
            if matches(&l) {
                return;
            }
            assert!(!l.contains("carol> secret"), "a line from another room leaked: {l:?}");
            assert!(!l.is_empty(), "connection ended waiting for {want:?}; saw {seen:?}");
            seen.push(l);
        }
        panic!("no {want:?}; saw {seen:?}");
    }
}

#[test]
fn rooms_carry_lines_between_clients_on_all_workers() {
    let mut server = Moonport::new("../../../../examples/chat.lua").workers(2).arg(0).start();
    let addr = server.addr();
    let mut alice = Chatter::connect(addr);
    alice.say("/nick alice");
    alice.expect_suffix(" is now alice");
    let mut bob = Chatter::connect(addr);
    bob.say("/nick bob");
    alice.expect_suffix(" is now bob");
    bob.expect_suffix(" is now bob");

    bob.say("hi alice");
    alice.expect("<bob> hi alice");
    bob.expect("<bob> hi alice");
    alice.say("/who");
    alice.expect("* 2 here");

    // Another room is separate.
    let mut carol = Chatter::connect(addr);
    carol.say("/nick carol");
    carol.expect_suffix(" is now carol");
    carol.say("/join other");
    carol.expect("* carol joined other (1 here)");
    carol.say("secret");
    carol.expect("<carol> secret");
    bob.say("after");
    alice.expect("<bob> after");
    alice.say("/who");
    alice.expect("* 2 here");

    // Leaving is announced.
    bob.say("/quit");
    alice.expect("* bob left");
    server.assert_running();
}
