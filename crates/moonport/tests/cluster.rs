//! Cluster rooms through examples/broadcast.lua with scope "cluster": two or
//! three moonport processes joined over a real redis-server on 127.0.0.1.
//! A frame published on one node reaches the viewers of every node, each
//! publisher's frames stay in order, a Redis crash and restart mid-stream
//! leaves local viewers served and the others resumed in order with the gap
//! reported, a stalled Redis (SIGSTOP) holds up no local viewer and the
//! stream catches up in order, and processes share one port (SO_REUSEPORT
//! across processes).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::broadcast::{self, connect, frame, read_frame, wait_viewers};
use common::{Moonport, Redis, Server};

const CHANNEL: &str = "moonport:room:broadcast";

/// A node: broadcast.lua in cluster scope, on the given ports (0: any).
fn node(redis: &Redis, pub_port: u16, view_port: u16) -> (Server, SocketAddr, SocketAddr) {
    let server = Moonport::new(broadcast::SCRIPT)
        .option("--cluster")
        .option(&redis.url())
        .workers(2)
        .arg(pub_port)
        .arg(view_port)
        .arg("drop_oldest")
        .arg("cluster")
        .start();
    server.expect_log("connected to redis", Duration::from_secs(10));
    let (pub_addr, view_addr) = broadcast::ports(&server);
    (server, pub_addr, view_addr)
}

/// Waits until Redis counts `n` subscribers to the room's channel: one per
/// process, however many viewers each has.
fn wait_subscribers(redis: &Redis, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let count = redis.numsub(CHANNEL);
        if count == n {
            return;
        }
        assert!(Instant::now() < deadline, "redis counts {count} subscribers to {CHANNEL}, want {n}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Reads `n` frames on a thread; fewer if the frames stop coming.
fn collect(mut s: TcpStream, n: usize) -> thread::JoinHandle<Vec<String>> {
    thread::spawn(move || {
        (0..n).map_while(|_| read_frame(&mut s).ok()).map(|f| String::from_utf8(f).expect("utf-8")).collect()
    })
}

#[test]
#[cfg_attr(windows, ignore = "needs redis-server, which the Windows test run under Wine does not have")]
fn a_frame_published_on_one_node_reaches_the_viewers_of_all_three_in_order() {
    const VIEWERS: usize = 20;
    const FRAMES: usize = 200;
    let redis = Redis::start();
    let nodes: Vec<_> = (0..3).map(|_| node(&redis, 0, 0)).collect();
    wait_subscribers(&redis, 3);
    let mut viewers = Vec::new();
    for (_, pub_addr, view_addr) in &nodes {
        let mine: Vec<TcpStream> = (0..VIEWERS).map(|_| connect(*view_addr)).collect();
        wait_viewers(&mut connect(*pub_addr), VIEWERS as u32);
        viewers.extend(mine);
    }
    let readers: Vec<_> = viewers.into_iter().map(|v| collect(v, FRAMES)).collect();
    let frames: Vec<String> = (0..FRAMES).map(|i| format!("frame {i} {}", "x".repeat(i * 13))).collect();
    let mut publisher = connect(nodes[1].1);
    for f in &frames {
        publisher.write_all(&frame(f.as_bytes())).expect("publish");
    }
    for (i, r) in readers.into_iter().enumerate() {
        assert_eq!(r.join().expect("viewer"), frames, "viewer {i} (node {}) got another sequence", i / VIEWERS);
    }
    for (server, _, _) in &nodes {
        assert!(!server.log().contains("lost in transit"), "a node reported lost messages:\n{}", server.log());
    }
}

#[test]
#[cfg_attr(windows, ignore = "needs redis-server, which the Windows test run under Wine does not have")]
fn publishers_on_two_nodes_interleave_but_each_stays_in_order_everywhere() {
    const FRAMES: usize = 300;
    let redis = Redis::start();
    let nodes: Vec<_> = (0..3).map(|_| node(&redis, 0, 0)).collect();
    wait_subscribers(&redis, 3);
    let mut viewers = Vec::new();
    for (_, pub_addr, view_addr) in &nodes {
        let mine: Vec<TcpStream> = (0..3).map(|_| connect(*view_addr)).collect();
        wait_viewers(&mut connect(*pub_addr), 3);
        viewers.extend(mine);
    }
    let readers: Vec<_> = viewers.into_iter().map(|v| collect(v, 2 * FRAMES)).collect();
    let publishers: Vec<_> = [("a", nodes[0].1), ("b", nodes[1].1)]
        .into_iter()
        .map(|(name, addr)| {
            thread::spawn(move || {
                let mut p = connect(addr);
                for i in 0..FRAMES {
                    p.write_all(&frame(format!("{name} {i}").as_bytes())).expect("publish");
                    // Paced: a burst of more than the viewers' queue (256
                    // frames in broadcast.lua) would meet drop_oldest.
                    thread::sleep(Duration::from_millis(2));
                }
            })
        })
        .collect();
    for p in publishers {
        p.join().expect("publisher");
    }
    for (v, r) in readers.into_iter().enumerate() {
        let got = r.join().expect("viewer");
        for name in ["a", "b"] {
            let seq: Vec<usize> =
                got.iter().filter_map(|f| f.strip_prefix(&format!("{name} "))?.parse().ok()).collect();
            assert_eq!(seq, (0..FRAMES).collect::<Vec<_>>(), "viewer {v}: publisher {name}'s frames\n{got:?}");
        }
    }
}

#[test]
#[cfg_attr(windows, ignore = "needs redis-server, which the Windows test run under Wine does not have")]
fn a_redis_restart_mid_stream_keeps_local_viewers_served_and_resumes_in_order_with_the_gap_counted() {
    let mut redis = Redis::start();
    let port = redis.port;
    let (a, a_pub, a_view) = node(&redis, 0, 0);
    let (b, b_pub, b_view) = node(&redis, 0, 0);
    wait_subscribers(&redis, 2);
    let local = connect(a_view);
    wait_viewers(&mut connect(a_pub), 1);
    let remote = connect(b_view);
    wait_viewers(&mut connect(b_pub), 1);

    // A publisher on node A sends numbered frames until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut p = connect(a_pub);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                p.write_all(&frame(i.to_string().as_bytes())).expect("publish");
                i += 1;
                thread::sleep(Duration::from_millis(5));
            }
            i
        })
    };
    // Viewers report each frame number with when it arrived.
    let watch = |mut s: TcpStream| {
        let (tx, rx) = mpsc::channel::<(u64, Instant)>();
        thread::spawn(move || {
            while let Ok(f) = read_frame(&mut s) {
                let n = String::from_utf8_lossy(&f).parse().expect("number");
                if tx.send((n, Instant::now())).is_err() {
                    break;
                }
            }
        });
        rx
    };
    let (local, remote) = (watch(local), watch(remote));
    let drain = |rx: &mpsc::Receiver<(u64, Instant)>, got: &mut Vec<(u64, Instant)>| got.extend(rx.try_iter());
    let (mut local_got, mut remote_got) = (Vec::new(), Vec::new());

    thread::sleep(Duration::from_millis(500));
    redis.kill();
    let killed = Instant::now();
    a.expect_log("lost redis", Duration::from_secs(10));
    b.expect_log("lost redis", Duration::from_secs(10));
    thread::sleep(Duration::from_millis(1000));
    drain(&local, &mut local_got);
    drain(&remote, &mut remote_got);
    let local_during = local_got.iter().filter(|(_, t)| *t > killed + Duration::from_millis(300)).count();
    assert!(local_during > 50, "node A's own viewer got only {local_during} frames while Redis was down");
    let redis = Redis::start_on(port);
    b.expect_log("reconnected to redis", Duration::from_secs(15));
    a.expect_log("reconnected to redis", Duration::from_secs(15));
    wait_subscribers(&redis, 2);
    thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::Relaxed);
    let sent = publisher.join().expect("publisher");
    thread::sleep(Duration::from_millis(500));
    drain(&local, &mut local_got);
    drain(&remote, &mut remote_got);

    // The local viewer saw every frame; the remote one a prefix, a gap, and
    // frames again, never out of order.
    let local: Vec<u64> = local_got.iter().map(|(n, _)| *n).collect();
    assert_eq!(local, (0..sent).collect::<Vec<_>>(), "node A's own viewer missed or reordered frames");
    let remote: Vec<u64> = remote_got.iter().map(|(n, _)| *n).collect();
    assert!(remote.windows(2).all(|w| w[0] < w[1]), "node B's viewer got frames out of order: {remote:?}");
    let missing = sent as usize - remote.len();
    assert!(missing > 0, "node B cannot have received what was published while Redis was down");
    assert!(remote.last().is_some_and(|&n| n + 20 > sent), "node B did not resume: last {:?} of {sent}", remote.last());
    b.expect_log("lost in transit", Duration::from_secs(5));
    // What B reports lost is what its viewer missed after the first frame it got.
    let first = remote.first().copied().unwrap_or(0) as usize;
    let logged: usize = b
        .log()
        .lines()
        .filter(|l| l.contains("lost in transit"))
        .filter_map(|l| l.split("room broadcast: ").nth(1)?.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert_eq!(logged, missing - first, "node B's lost count disagrees with what its viewer missed\n{}", b.log());
}

#[cfg(unix)]
#[test]
fn a_stalled_redis_never_holds_up_local_viewers_and_the_stream_catches_up_in_order() {
    let redis = Redis::start();
    let (_a, a_pub, a_view) = node(&redis, 0, 0);
    let (_b, b_pub, b_view) = node(&redis, 0, 0);
    wait_subscribers(&redis, 2);
    let mut local = connect(a_view);
    wait_viewers(&mut connect(a_pub), 1);
    let remote = connect(b_view);
    wait_viewers(&mut connect(b_pub), 1);
    const FRAMES: u64 = 200;
    let remote = collect(remote, FRAMES as usize);
    let mut publisher = connect(a_pub);
    // Redis stops answering (SIGSTOP) for the middle of the stream.
    for i in 0..FRAMES {
        if i == 50 {
            redis.signal(libc::SIGSTOP);
        }
        let sent = Instant::now();
        publisher.write_all(&frame(i.to_string().as_bytes())).expect("publish");
        let got = read_frame(&mut local).expect("local frame");
        assert_eq!(String::from_utf8_lossy(&got), i.to_string());
        assert!(sent.elapsed() < Duration::from_millis(500), "frame {i} took {:?} locally", sent.elapsed());
        thread::sleep(Duration::from_millis(5));
    }
    redis.signal(libc::SIGCONT);
    let remote = remote.join().expect("remote viewer");
    assert_eq!(remote, (0..FRAMES).map(|i| i.to_string()).collect::<Vec<_>>(), "node B after the stall");
}

#[test]
#[cfg_attr(windows, ignore = "Windows has no SO_REUSEPORT: a second process cannot bind the port (docs/windows.md)")]
fn two_processes_share_one_port_and_a_cluster_room_joins_their_viewers() {
    const VIEWERS: usize = 40;
    const FRAMES: usize = 50;
    let redis = Redis::start();
    let (pub_port, view_port) = (common::free_port(), common::free_port());
    let (_a, pub_addr, view_addr) = node(&redis, pub_port, view_port);
    let (_b, _, _) = node(&redis, pub_port, view_port);
    wait_subscribers(&redis, 2);
    // Each viewer says when its first frame (a probe) came: it is attached,
    // on whichever process the kernel gave it to, and gets all that follows.
    let (attached, attached_rx) = mpsc::channel();
    let readers: Vec<_> = (0..VIEWERS)
        .map(|_| {
            let mut v = connect(view_addr);
            let attached = attached.clone();
            thread::spawn(move || {
                let (mut got, mut told) = (Vec::new(), false);
                while got.len() < FRAMES {
                    let f = read_frame(&mut v).expect("frame");
                    if f == b"probe" {
                        if !std::mem::replace(&mut told, true) {
                            let _ = attached.send(());
                        }
                    } else {
                        got.push(String::from_utf8(f).expect("utf-8"));
                    }
                }
                got
            })
        })
        .collect();
    let mut publisher = connect(pub_addr);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut ready = 0;
    while ready < VIEWERS {
        assert!(Instant::now() < deadline, "only {ready} of {VIEWERS} viewers attached");
        publisher.write_all(&frame(b"probe")).expect("probe");
        thread::sleep(Duration::from_millis(20));
        ready += attached_rx.try_iter().count();
    }
    // The publisher's process holds some of the viewers, the other the rest.
    publisher.write_all(&0u32.to_be_bytes()).expect("count query");
    let mut n = [0; 4];
    publisher.read_exact(&mut n).expect("count answer");
    let here = u32::from_be_bytes(n) as usize;
    assert!(here > 0 && here < VIEWERS, "one process has {here} of {VIEWERS} viewers: the port was not shared");
    let frames: Vec<String> = (0..FRAMES).map(|i| format!("shared {i}")).collect();
    for f in &frames {
        publisher.write_all(&frame(f.as_bytes())).expect("publish");
    }
    for r in readers {
        assert_eq!(r.join().expect("viewer"), frames);
    }
}
