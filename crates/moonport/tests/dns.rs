//! moonport.dns against a real DNS server: dnslib's zone server (PyPI, put
//! there by scripts/setup) on 127.0.0.1 serves tests/dns/zone.txt, and the
//! Lua suite tests/lua/dns_test.lua resolves through it. The resolve example
//! is checked against the same server.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::Moonport;

/// The DNS server process, killed when dropped.
struct DnsServer {
    child: Child,
    port: u16,
}

impl DnsServer {
    fn start() -> Self {
        let mut child = Command::new("python3")
            .arg(dns_dir().join("server.py"))
            .arg(dns_dir().join("zone.txt"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs (scripts/setup installs it with dnslib)");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        BufReader::new(stdout).read_line(&mut line).expect("read the DNS server's port");
        let port = line.trim().parse().unwrap_or_else(|_| panic!("DNS server did not start: {line:?}"));
        Self { child, port }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dns_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("dns")
}

#[test]
#[cfg_attr(windows, ignore = "the DNS server is a Linux python3 program the tests cannot start under Wine")]
fn dns_module_against_a_real_server() {
    let server = DnsServer::start();
    let out = Moonport::new("dns_test.lua").workers(1).arg(server.port).run(Duration::from_secs(30));
    assert_eq!(out.code(), Some(0), "--- stdout ---\n{}\n--- stderr ---\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(" passed, 0 failed"), "no tally:\n{}", out.stdout);
}

#[test]
#[cfg_attr(windows, ignore = "the DNS server is a Linux python3 program the tests cannot start under Wine")]
fn resolve_example_prints_records_like_dig() {
    let server = DnsServer::start();
    let at = format!("@127.0.0.1:{}", server.port);
    let run = |args: &[&str]| {
        let mut m = Moonport::new("../../../../examples/resolve.lua").workers(1);
        for a in args {
            m = m.arg(a);
        }
        m.run(Duration::from_secs(20))
    };
    let out = run(&["alias.example.test", &at]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("alias.example.test\tCNAME\twww.example.test"), "{}", out.stdout);
    assert!(out.stdout.contains("www.example.test\tA\t192.0.2.10"), "{}", out.stdout);
    assert!(out.stdout.contains("www.example.test\tAAAA\t2001:db8::10"), "{}", out.stdout);

    let out = run(&["-x", "192.0.2.10", &at]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("192.0.2.10\tPTR\twww.example.test"), "{}", out.stdout);

    let out = run(&["nope.example.test", &at]);
    assert_eq!(out.code(), Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("nope.example.test: not found"), "{}", out.stderr);

    // The hosts file needs no server at all.
    let out = run(&["localhost"]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("localhost\tA\t127.0.0.1"), "{}", out.stdout);
}
