//! Echo servers: large transfers byte-exact over IPv4 and IPv6, and many
//! concurrent connections spread over the worker threads.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{Client, Moonport};
use rand::{Rng, RngCore};

const MIB: usize = 1024 * 1024;

/// Sends 1 MiB of random bytes in random-sized writes from one thread while
/// this one reads the echo, and checks it byte for byte.
fn echo_one_mib(host: &str, expect_ip: IpAddr) {
    let server = Moonport::new("echo.lua").workers(2).arg(host).start();
    assert_eq!(server.addr().ip(), expect_ip, "listener address");

    let mut client = Client::connect(server.addr());
    let local = client.stream().local_addr().unwrap();
    // The greeting shows what the server knows about both ends.
    let hello = client.line();
    assert_eq!(
        hello,
        format!("HELLO {} {} {} {}", local.ip(), local.port(), expect_ip, server.port()),
        "conn:peer() / conn:local_addr()"
    );

    let mut payload = vec![0u8; MIB];
    rand::rng().fill_bytes(&mut payload);
    let payload = Arc::new(payload);

    let mut writer = client.stream().try_clone().unwrap();
    let to_send = payload.clone();
    let sender = thread::spawn(move || {
        let mut rng = rand::rng();
        let mut off = 0;
        while off < to_send.len() {
            let n = rng.random_range(1..=64 * 1024).min(to_send.len() - off);
            writer.write_all(&to_send[off..off + n]).expect("write payload");
            off += n;
        }
        // Half-close: the server's read then reports "closed" and it ends the connection.
        writer.shutdown(std::net::Shutdown::Write).unwrap();
    });

    let mut received = Vec::with_capacity(MIB);
    let mut buf = vec![0u8; 64 * 1024];
    while received.len() < MIB {
        let n =
            client.reader.read(&mut buf).unwrap_or_else(|e| panic!("read echo after {} bytes: {e}", received.len()));
        assert!(n > 0, "server closed after echoing {} of {MIB} bytes", received.len());
        received.extend_from_slice(&buf[..n]);
    }
    sender.join().expect("sender thread");
    assert_eq!(received.len(), MIB, "echoed more bytes than sent");
    if let Some(i) = received.iter().zip(payload.iter()).position(|(a, b)| a != b) {
        panic!("echo differs from the payload at byte {i}");
    }
    // Nothing more, then the server closes its side.
    client.expect_closed();
}

#[test]
fn echo_1mib_ipv4() {
    echo_one_mib("127.0.0.1", "127.0.0.1".parse().unwrap());
}

#[test]
fn echo_1mib_ipv6() {
    // Fail loudly unless the environment explicitly says it has no IPv6 loopback.
    if std::env::var_os("MOONPORT_TEST_NO_IPV6").is_some() {
        eprintln!("MOONPORT_TEST_NO_IPV6 set: skipping the [::1] echo test");
        return;
    }
    if let Err(e) = TcpListener::bind("[::1]:0") {
        panic!("cannot bind [::1] in the test itself ({e}); set MOONPORT_TEST_NO_IPV6=1 to skip this test");
    }
    echo_one_mib("::1", "::1".parse().unwrap());
}

/// 2000 connections open at the same time on a 2-worker server: each gets its
/// line echoed with the id of the worker that served it, and both workers serve.
/// SO_REUSEPORT sharding exists on Unix only; Windows uses hand-off (below).
#[cfg(unix)]
#[test]
fn two_thousand_concurrent_connections_spread_over_workers() {
    two_thousand_connections("reuseport");
}

/// The hand-off path (one acceptor thread dealing connections to workers) is
/// the default where SO_REUSEPORT is missing; it must spread load just as well.
#[test]
fn two_thousand_concurrent_connections_with_handoff_sharding() {
    two_thousand_connections("handoff");
}

fn two_thousand_connections(sharding: &str) {
    const CONNS: usize = 2000;
    const THREADS: usize = 8;
    let limit = common::raise_own_nofile(CONNS as u64 + 512);
    assert!(limit >= CONNS as u64 + 64, "RLIMIT_NOFILE of the test process is only {limit}");

    let server = Moonport::new("worker_echo.lua").workers(2).option("--sharding").option(sharding).start();
    // Both workers must have joined the SO_REUSEPORT group before we connect.
    assert!(
        server.wait_log_until(Duration::from_secs(10), |log| log.contains("worker 1 of 2 ready")
            && log.contains("worker 2 of 2 ready")),
        "both workers should report ready\n{}",
        server.log()
    );
    let addr = server.addr();

    let started = Instant::now();
    // Everyone connects, then waits until all connections are open; everyone
    // exchanges, then waits until all are answered; only then do they close.
    let all_open = Arc::new(Barrier::new(THREADS));
    let all_answered = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (all_open, all_answered) = (all_open.clone(), all_answered.clone());
            thread::spawn(move || -> Result<BTreeMap<String, usize>, String> {
                let conns: Result<Vec<TcpStream>, String> = (0..CONNS / THREADS)
                    .map(|i| {
                        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
                            .map_err(|e| format!("thread {t} connect #{i}: {e}"))?;
                        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                        s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
                        Ok(s)
                    })
                    .collect();
                // Every thread reaches both barriers, whatever happened, so none waits forever.
                all_open.wait();
                let result = conns.and_then(|conns| exchange(t, &conns).map(|counts| (conns, counts)));
                all_answered.wait();
                result.map(|(_conns, counts)| counts)
            })
        })
        .collect();

    let mut per_worker: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for t in threads {
        match t.join().expect("client thread panicked") {
            Ok(counts) => counts.into_iter().for_each(|(w, n)| *per_worker.entry(w).or_insert(0) += n),
            Err(e) => failures.push(e),
        }
    }
    eprintln!("2000 connections ({sharding}) in {:?}: {per_worker:?}", started.elapsed());
    assert!(failures.is_empty(), "failures: {failures:?}\n--- log ---\n{}", server.log());
    assert_eq!(per_worker.values().sum::<usize>(), CONNS, "every connection answered: {per_worker:?}");
    assert_eq!(
        per_worker.keys().map(String::as_str).collect::<Vec<_>>(),
        ["1", "2"],
        "answers should come from exactly workers 1 and 2: {per_worker:?}"
    );
    assert!(!server.log().contains("ERROR"), "errors in the log:\n{}", server.log());
}

/// Sends one line on each connection, then reads every answer; returns how
/// many answers each worker id gave.
fn exchange(t: usize, conns: &[TcpStream]) -> Result<BTreeMap<String, usize>, String> {
    for (i, mut s) in conns.iter().enumerate() {
        s.write_all(format!("msg-{t}-{i}\n").as_bytes()).map_err(|e| format!("write {t}-{i}: {e}"))?;
    }
    let mut per_worker = BTreeMap::new();
    for (i, s) in conns.iter().enumerate() {
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).map_err(|e| format!("conn {t}-{i}: {e}"))?;
        let prefix = format!("msg-{t}-{i} ");
        let worker = line
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix('\n'))
            .ok_or_else(|| format!("conn {t}-{i}: unexpected answer {line:?}"))?;
        *per_worker.entry(worker.to_string()).or_insert(0) += 1;
    }
    Ok(per_worker)
}
