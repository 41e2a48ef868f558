//! Rooms through examples/broadcast.lua: one publisher fans out to thousands
//! of viewers on all workers, and a viewer that stops reading neither slows
//! the others nor grows without bound.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use common::broadcast::{self, connect, frame, read_frame, wait_viewers};
use common::{Moonport, Server};

fn start(workers: usize, policy: &str) -> (Server, SocketAddr, SocketAddr) {
    let server = Moonport::new(broadcast::SCRIPT).workers(workers).arg(0).arg(0).arg(policy).start();
    let (pub_addr, view_addr) = broadcast::ports(&server);
    (server, pub_addr, view_addr)
}

#[test]
fn one_publisher_two_thousand_viewers_on_all_workers_get_the_identical_sequence() {
    const VIEWERS: usize = 2000;
    const FRAMES: usize = 50;
    common::raise_own_nofile(VIEWERS as u64 + 512);
    let (_server, pub_addr, view_addr) = start(2, "drop_oldest");
    let viewers: Vec<TcpStream> = (0..VIEWERS).map(|_| connect(view_addr)).collect();
    let mut publisher = connect(pub_addr);
    wait_viewers(&mut publisher, VIEWERS as u32);
    let frames: Vec<Vec<u8>> = (0..FRAMES).map(|i| format!("frame {i} {}", "x".repeat(i * 7)).into_bytes()).collect();
    for f in &frames {
        publisher.write_all(&frame(f)).expect("publish");
    }
    let readers: Vec<_> = viewers
        .chunks(VIEWERS / 8)
        .map(|chunk| chunk.iter().map(|s| s.try_clone().expect("clone")).collect::<Vec<_>>())
        .map(|mut chunk| {
            let frames = frames.clone();
            thread::spawn(move || {
                for (v, s) in chunk.iter_mut().enumerate() {
                    for (i, want) in frames.iter().enumerate() {
                        let got = read_frame(s).unwrap_or_else(|e| panic!("viewer {v} frame {i}: {e}"));
                        assert_eq!(&got, want, "viewer {v} frame {i}");
                    }
                }
            })
        })
        .collect();
    for r in readers {
        r.join().expect("every viewer got every frame, in order");
    }
}

/// Publishes in lockstep with two fast viewers while a third never reads.
/// The fast viewers come back too: they must stay connected, or their own
/// departures would be the first "viewer left" lines in the log.
fn slow_viewer_run(policy: &str) -> (Server, TcpStream, [TcpStream; 2]) {
    const FRAMES: usize = 800;
    let (server, pub_addr, view_addr) = start(2, policy);
    let mut fast = [connect(view_addr), connect(view_addr)];
    let slow = connect(view_addr);
    let mut publisher = connect(pub_addr);
    wait_viewers(&mut publisher, 3);
    let payload = vec![7u8; 64 * 1024];
    for i in 0..FRAMES {
        let mut p = payload.clone();
        p[..8].copy_from_slice(&(i as u64).to_be_bytes());
        publisher.write_all(&frame(&p)).expect("publish");
        for f in fast.iter_mut() {
            let got = read_frame(f).unwrap_or_else(|e| panic!("fast viewer, frame {i}: {e}"));
            assert_eq!(got, p, "fast viewer, frame {i}");
        }
    }
    (server, slow, fast)
}

#[test]
fn a_viewer_that_stops_reading_loses_oldest_frames_and_never_slows_the_others() {
    let (server, slow, _fast) = slow_viewer_run("drop_oldest");
    drop(slow);
    // Its attach notices at the next write and reports what the policy dropped.
    let (pub_addr, _) = (server.addr(), ());
    let mut publisher = connect(pub_addr);
    for _ in 0..3 {
        publisher.write_all(&frame(b"tick")).expect("publish");
    }
    assert!(server.wait_log("viewer left", Duration::from_secs(10)), "{}", server.log());
    let log = server.log();
    let missed: u64 = log
        .lines()
        .find(|l| l.contains("viewer left"))
        .and_then(|l| l.rsplit("missed=").next())
        .and_then(|n| n.trim().parse().ok())
        .expect("missed count in the log");
    assert!(missed > 0, "the slow viewer's queue should have dropped frames:\n{log}");
}

#[test]
fn a_viewer_that_stops_reading_is_disconnected_under_the_disconnect_policy() {
    let (server, slow, _fast) = slow_viewer_run("disconnect");
    assert!(server.wait_log("viewer left: overflow", Duration::from_secs(10)), "{}", server.log());
    expect_end_of_stream(slow);
}

/// What the kernel had already buffered is readable, then end of stream.
fn expect_end_of_stream(mut slow: TcpStream) {
    use std::io::Read;
    let mut sink = Vec::new();
    let r = slow.read_to_end(&mut sink);
    assert!(r.is_ok() || matches!(r, Err(ref e) if e.kind() == std::io::ErrorKind::ConnectionReset), "{r:?}");
}
