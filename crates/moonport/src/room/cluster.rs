//! Cluster rooms: rooms that span processes and machines over Redis pub/sub.
//!
//! A process joins a cluster with one [`Cluster`]: a link thread with its own
//! compio runtime that holds two Redis connections, a publisher (pipelined
//! `PUBLISH`es) and a subscriber (one `SUBSCRIBE` per cluster room of the
//! process, whatever its number of viewers). A room of scope cluster has a
//! [`Bridge`] to it. A message published on this node goes to the local
//! subscribers at once, as in any room, and through a bounded queue to the
//! link; the worker never waits for Redis, so a slow or missing Redis costs
//! local viewers nothing. A message from Redis is copied once out of the read
//! buffer and published into the local room, where its viewers share it.
//!
//! Every message carries a small header: the node that published it, the
//! publishing room instance (its stream) and that stream's sequence number.
//! A node drops its own messages when Redis echoes them back, and counts a
//! jump in a stream's sequence as messages lost (Redis pub/sub keeps nothing
//! for a disconnected subscriber) and a step back as a duplicate; nothing is
//! reordered. A payload without the header (published by another Redis
//! client) is delivered as it is.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use event_listener::Event;
use futures_util::future::select_all;

use super::{Limits, Room};
use crate::buf::{Buffer, Chunk};
use crate::dns::{LookupOptions, Resolver};
use crate::net::NetError;
use crate::redis::{self, Frame, RedisConn, RedisError, Target};

/// Redis channel of the cluster room `name`: this prefix, then the name.
pub const CHANNEL_PREFIX: &str = "moonport:room:";
const MAGIC: &[u8; 4] = b"mpc1";
/// Magic, node id, stream id, sequence number.
const HEADER: usize = 4 + 8 + 8 + 8;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often the link checks that Redis still answers, and how long an
/// unanswered command may wait before the link counts Redis as gone.
const PING_EVERY: Duration = Duration::from_secs(2);
const STALLED_AFTER: Duration = Duration::from_secs(10);
/// The link's read buffer and the largest reply (a message) it accepts.
const READ_CHUNK: usize = 256 * 1024;
const MAX_MESSAGE: usize = 512 << 20;
/// Publishes written to Redis in one go at most.
const BATCH_BYTES: usize = 256 * 1024;
/// Publishing streams a room remembers the last sequence number of.
const MAX_STREAMS: usize = 4096;

/// How much may wait on its way to Redis, for the whole process, unless
/// `moonport.cluster.join` says otherwise.
pub const OUTBOX_LIMITS: Limits = Limits { messages: 4096, bytes: 64 << 20 };

/// Counters of the link, for `moonport.cluster.status()`.
#[derive(Debug, Default)]
pub struct LinkStats {
    /// Messages written to Redis.
    pub sent: AtomicU64,
    /// Messages not sent: Redis was unreachable or the queue to it was full.
    pub unsent: AtomicU64,
    /// Messages from other nodes delivered into local rooms.
    pub received: AtomicU64,
    /// Messages of other nodes that never arrived (sequence gaps).
    pub lost: AtomicU64,
    /// Successful connections after the first.
    pub reconnects: AtomicU64,
}

/// This process's membership in a cluster: the link to Redis.
pub struct Cluster {
    url: String,
    target: Target,
    /// Tells this node's messages from others' when Redis echoes them.
    node: u64,
    limits: Limits,
    out: async_channel::Sender<Outgoing>,
    /// Bytes in `out`, against `limits.bytes`.
    queued_bytes: AtomicUsize,
    /// The cluster rooms of the process by name: what the subscriber
    /// connection should be subscribed to.
    rooms: Mutex<HashMap<String, Weak<Room>>>,
    /// Wakes the link when `rooms` changes.
    changed: Event,
    connected: AtomicBool,
    next_stream: AtomicU64,
    pub stats: LinkStats,
}

/// A message on its way to Redis.
struct Outgoing {
    channel: Arc<str>,
    head: [u8; HEADER],
    body: Chunk,
}

impl Cluster {
    /// Joins the cluster at `url` (`redis://host:port`): starts the link
    /// thread, which connects in the background and keeps reconnecting.
    pub fn start(url: &str, limits: Limits) -> Result<Arc<Self>, String> {
        let target = Target::parse(url)?;
        let (out, queue) = async_channel::bounded(limits.messages.max(1));
        let cluster = Arc::new(Self {
            url: url.to_string(),
            target,
            node: rand::random(),
            limits,
            out,
            queued_bytes: AtomicUsize::new(0),
            rooms: Mutex::new(HashMap::new()),
            changed: Event::new(),
            connected: AtomicBool::new(false),
            next_stream: AtomicU64::new(1),
            stats: LinkStats::default(),
        });
        let link = cluster.clone();
        std::thread::Builder::new()
            .name("moonport-cluster".into())
            .spawn(move || {
                let _span = tracing::info_span!("cluster").entered();
                match compio::runtime::Runtime::new() {
                    Ok(runtime) => runtime.block_on(link.run(queue)),
                    Err(e) => tracing::error!("cannot start the cluster link's I/O runtime: {e}"),
                }
            })
            .map_err(|e| format!("cannot start the cluster link: {e}"))?;
        Ok(cluster)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn node(&self) -> u64 {
        self.node
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// The room's side of the link, for a new cluster room; the link
    /// subscribes to its channel.
    pub(super) fn bridge(self: &Arc<Self>, room: &Weak<Room>, name: &str) -> Bridge {
        self.lock_rooms().insert(name.to_string(), room.clone());
        self.changed.notify(usize::MAX);
        Bridge {
            cluster: self.clone(),
            room: room.clone(),
            name: name.to_string(),
            channel: format!("{CHANNEL_PREFIX}{name}").into(),
            stream: self.next_stream.fetch_add(1, Ordering::Relaxed),
            seq: AtomicU64::new(0),
            seen: Mutex::new(HashMap::new()),
            stats: RoomStats::default(),
        }
    }

    fn lock_rooms(&self) -> std::sync::MutexGuard<'_, HashMap<String, Weak<Room>>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a message that will not reach Redis.
    fn unsent(&self, bridge: &Bridge) {
        bridge.stats.unsent.fetch_add(1, Ordering::Relaxed);
        self.stats.unsent.fetch_add(1, Ordering::Relaxed);
    }

    /// The link: connect, serve until the connection breaks, back off, again.
    async fn run(self: Arc<Self>, queue: async_channel::Receiver<Outgoing>) {
        let resolver = Resolver::new();
        let mut backoff = BACKOFF_FIRST;
        let mut state = LinkState::default();
        loop {
            state.up = false;
            let Err(err) = self.session(&queue, &resolver, &mut state).await;
            self.connected.store(false, Ordering::Release);
            if state.up {
                // The link was serving: say so once, then retry quietly.
                tracing::warn!("lost redis at {}: {err}; local rooms keep serving, reconnecting", self.url);
                state.down_since = Some(Instant::now());
                backoff = BACKOFF_FIRST;
            } else if !state.warned {
                tracing::warn!("cannot reach redis at {}: {err}; retrying with backoff", self.url);
                state.down_since.get_or_insert_with(Instant::now);
            } else {
                tracing::debug!("redis at {} still unreachable: {err}", self.url);
            }
            state.warned = true;
            // Jitter, so nodes that lost Redis together do not come back in step.
            let jitter = 0.75 + rand::random::<f64>() * 0.5;
            compio::time::sleep(backoff.mul_f64(jitter)).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// One connection to Redis, from connecting to the error that ends it.
    async fn session(
        &self,
        queue: &async_channel::Receiver<Outgoing>,
        resolver: &Resolver,
        state: &mut LinkState,
    ) -> Result<Infallible, RedisError> {
        let deadline = Some(Instant::now() + CONNECT_TIMEOUT);
        let addrs = resolver
            .lookup(&self.target.host, &LookupOptions::default())
            .await
            .map_err(|e| RedisError::Net(NetError::Io(std::io::Error::other(e.to_string()))))?
            .addrs
            .into_iter()
            .map(|ip| std::net::SocketAddr::new(ip, self.target.port))
            .collect::<Vec<_>>();
        let publisher = RedisConn::connect(&self.target, &addrs, deadline, READ_CHUNK, MAX_MESSAGE).await?;
        let subscriber = RedisConn::connect(&self.target, &addrs, deadline, READ_CHUNK, MAX_MESSAGE).await?;
        // What was queued before the link came up is stale: it counts as not sent.
        while let Ok(msg) = queue.try_recv() {
            self.dequeued(&msg);
            self.stats.unsent.fetch_add(1, Ordering::Relaxed);
        }
        let subscribed = RefCell::new(HashSet::new());
        let rooms = self.subscribe(&subscriber, &subscribed).await?;
        self.connected.store(true, Ordering::Release);
        state.up = true;
        state.warned = false;
        match state.down_since.take() {
            Some(since) if state.ever => {
                self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    "reconnected to redis at {} after {:.1}s; resubscribed {rooms} rooms; so far {} messages not sent, {} lost",
                    self.url,
                    since.elapsed().as_secs_f64(),
                    self.stats.unsent.load(Ordering::Relaxed),
                    self.stats.lost.load(Ordering::Relaxed)
                );
            }
            _ => tracing::info!("connected to redis at {} as node {:016x}", self.url, self.node),
        }
        state.ever = true;

        let health = Health::default();
        let loops: Vec<LinkLoop<'_>> = vec![
            Box::pin(self.publish_loop(&publisher, queue, &health)),
            Box::pin(self.replies_loop(&publisher, &health)),
            Box::pin(self.ping_loop(&publisher, &health)),
            Box::pin(self.receive_loop(&subscriber)),
            Box::pin(self.subscriptions_loop(&subscriber, &subscribed)),
        ];
        let (result, _, _) = select_all(loops).await;
        publisher.conn.close();
        subscriber.conn.close();
        result
    }

    fn dequeued(&self, msg: &Outgoing) {
        self.queued_bytes.fetch_sub(msg.body.as_slice().len(), Ordering::Relaxed);
    }

    /// Writes queued messages as pipelined PUBLISHes, in queue order.
    async fn publish_loop(
        &self,
        conn: &RedisConn,
        queue: &async_channel::Receiver<Outgoing>,
        health: &Health,
    ) -> Result<Infallible, RedisError> {
        let mut payload = Vec::new();
        loop {
            // The cluster holds the sender, so the queue never closes while the link runs.
            let Ok(first) = queue.recv().await else { return Err(RedisError::Net(NetError::Closed)) };
            let mut out = conn.conn.stage(&[]);
            let mut count = 0;
            let mut next = Some(first);
            while let Some(msg) = next {
                self.dequeued(&msg);
                payload.clear();
                payload.extend_from_slice(&msg.head);
                payload.extend_from_slice(msg.body.as_slice());
                redis::encode_command(&mut out, &[b"PUBLISH".as_slice(), msg.channel.as_bytes(), &payload]);
                count += 1;
                next = if out.len() < BATCH_BYTES { queue.try_recv().ok() } else { None };
            }
            health.sent(count);
            if let Err(e) = conn.send(out).await {
                // Taken off the queue but never written whole: not sent.
                self.stats.unsent.fetch_add(count, Ordering::Relaxed);
                return Err(e);
            }
            self.stats.sent.fetch_add(count, Ordering::Relaxed);
        }
    }

    /// Reads the publisher connection's replies (subscriber counts, PONGs).
    async fn replies_loop(&self, conn: &RedisConn, health: &Health) -> Result<Infallible, RedisError> {
        loop {
            let error = conn.reply(|buf, frame| {
                redis::is_error(frame)
                    .then(|| String::from_utf8_lossy(redis::text(buf, frame).unwrap_or(b"")).into_owned())
            });
            if let Some(e) = error.await? {
                // A refused PUBLISH (a read-only replica, an ACL): the link cannot work.
                return Err(RedisError::Server(e));
            }
            health.answered();
        }
    }

    /// Sends a PING now and then; a Redis that stops answering (a dead host,
    /// a stopped server) ends the session instead of leaving it hanging.
    async fn ping_loop(&self, conn: &RedisConn, health: &Health) -> Result<Infallible, RedisError> {
        loop {
            compio::time::sleep(PING_EVERY).await;
            if health.stalled() {
                return Err(RedisError::Net(NetError::Timeout));
            }
            let mut out = conn.conn.stage(&[]);
            redis::encode_command(&mut out, &["PING"]);
            health.sent(1);
            conn.send(out).await?;
        }
    }

    /// Reads the subscriber connection: messages go into their rooms.
    async fn receive_loop(&self, conn: &RedisConn) -> Result<Infallible, RedisError> {
        loop {
            conn.reply(|buf, frame| self.deliver(buf, frame)).await?;
        }
    }

    /// Keeps the subscriptions in step with the process's cluster rooms.
    async fn subscriptions_loop(
        &self,
        conn: &RedisConn,
        subscribed: &RefCell<HashSet<String>>,
    ) -> Result<Infallible, RedisError> {
        loop {
            let changed = self.changed.listen();
            self.subscribe(conn, subscribed).await?;
            changed.await;
        }
    }

    /// Subscribes to the rooms' channels not yet subscribed and unsubscribes
    /// from those of rooms gone; returns how many rooms are subscribed.
    async fn subscribe(&self, conn: &RedisConn, subscribed: &RefCell<HashSet<String>>) -> Result<usize, RedisError> {
        // Every entry counts, also a room still being made (its weak
        // reference cannot be upgraded yet); a room's bridge removes its
        // entry when the room goes.
        let wanted: HashSet<String> = self.lock_rooms().keys().map(|name| format!("{CHANNEL_PREFIX}{name}")).collect();
        let (add, remove): (Vec<String>, Vec<String>) = {
            let current = subscribed.borrow();
            (wanted.difference(&current).cloned().collect(), current.difference(&wanted).cloned().collect())
        };
        let mut out = Vec::new();
        for (verb, channels) in [("SUBSCRIBE", &add), ("UNSUBSCRIBE", &remove)] {
            if !channels.is_empty() {
                let args: Vec<&[u8]> =
                    std::iter::once(verb.as_bytes()).chain(channels.iter().map(|c| c.as_bytes())).collect();
                redis::encode_command(&mut out, &args);
            }
        }
        if !out.is_empty() {
            conn.send(out).await?;
        }
        *subscribed.borrow_mut() = wanted;
        Ok(subscribed.borrow().len())
    }

    /// Hands a frame from the subscriber connection to its room: only
    /// `message` pushes carry data; subscription confirmations need nothing.
    fn deliver(&self, buf: &[u8], frame: &Frame) {
        let Frame::Array(parts) = frame else { return };
        let [kind, channel, payload] = parts.as_slice() else { return };
        if redis::text(buf, kind) != Some(b"message") {
            return;
        }
        let (Some(channel), Some(payload)) = (redis::text(buf, channel), redis::text(buf, payload)) else { return };
        let Some(name) = channel.strip_prefix(CHANNEL_PREFIX.as_bytes()) else { return };
        let room = self.lock_rooms().get(String::from_utf8_lossy(name).as_ref()).and_then(Weak::upgrade);
        if let Some(room) = room {
            room.receive(payload);
        }
    }
}

/// One of a session's loops; it ends only with the error that ends the session.
type LinkLoop<'a> = Pin<Box<dyn Future<Output = Result<Infallible, RedisError>> + 'a>>;

/// What the link remembers across sessions, for its log lines.
#[derive(Default)]
struct LinkState {
    /// The current session got as far as serving.
    up: bool,
    /// Some session ever did.
    ever: bool,
    /// The outage has been logged.
    warned: bool,
    down_since: Option<Instant>,
}

/// Whether the publisher connection's commands get answers.
#[derive(Default)]
struct Health {
    outstanding: Cell<u64>,
    /// When the oldest unanswered command was sent, or the last answer came.
    since: Cell<Option<Instant>>,
}

impl Health {
    fn sent(&self, n: u64) {
        if self.outstanding.get() == 0 {
            self.since.set(Some(Instant::now()));
        }
        self.outstanding.set(self.outstanding.get() + n);
    }

    fn answered(&self) {
        self.outstanding.set(self.outstanding.get().saturating_sub(1));
        self.since.set(Some(Instant::now()));
    }

    fn stalled(&self) -> bool {
        self.outstanding.get() > 0 && self.since.get().is_some_and(|t| t.elapsed() > STALLED_AFTER)
    }
}

/// Counters of one cluster room, for `room:stats()`.
#[derive(Debug, Default)]
pub struct RoomStats {
    pub unsent: AtomicU64,
    pub received: AtomicU64,
    pub lost: AtomicU64,
    pub duplicates: AtomicU64,
}

/// A cluster room's side of the link.
pub struct Bridge {
    cluster: Arc<Cluster>,
    /// The room this bridge belongs to, to tell its entry in the cluster's
    /// map from that of a newer room of the same name.
    room: Weak<Room>,
    name: String,
    channel: Arc<str>,
    /// This room instance's publishing stream; a room made again after it
    /// was dropped starts a new stream, so its sequence may start over.
    stream: u64,
    /// The last sequence number sent; advanced under the room's lock, so
    /// the order of numbers is the order local subscribers saw.
    seq: AtomicU64,
    /// The last sequence number delivered, per (node, stream).
    seen: Mutex<HashMap<(u64, u64), u64>>,
    pub stats: RoomStats,
}

impl Bridge {
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Sends a message published on this node to Redis, or counts it as
    /// unsent; never waits. The caller holds the room's lock.
    pub(super) fn send(&self, msg: &Chunk) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let cluster = &*self.cluster;
        if !cluster.is_connected() {
            return cluster.unsent(self);
        }
        let len = msg.as_slice().len();
        if cluster.queued_bytes.fetch_add(len, Ordering::Relaxed) + len > cluster.limits.bytes {
            cluster.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            return cluster.unsent(self);
        }
        let mut head = [0u8; HEADER];
        head[..4].copy_from_slice(MAGIC);
        head[4..12].copy_from_slice(&cluster.node.to_be_bytes());
        head[12..20].copy_from_slice(&self.stream.to_be_bytes());
        head[20..].copy_from_slice(&seq.to_be_bytes());
        if cluster.out.try_send(Outgoing { channel: self.channel.clone(), head, body: msg.clone() }).is_err() {
            cluster.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            cluster.unsent(self);
        }
    }

    /// What of a payload from Redis goes to the local subscribers: its body,
    /// unless it is this node's own echo or a duplicate. Counts gaps.
    pub(super) fn accept<'a>(&self, payload: &'a [u8]) -> Option<&'a [u8]> {
        let cluster = &*self.cluster;
        let Some((head, body)) = payload.split_first_chunk::<HEADER>().filter(|(h, _)| h.starts_with(MAGIC)) else {
            // Not from a moonport node: delivered as it is.
            return Some(payload);
        };
        let word = |at: usize| u64::from_be_bytes(head[at..at + 8].try_into().unwrap_or_default());
        let (node, stream, seq) = (word(4), word(12), word(20));
        if node == cluster.node {
            return None;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_STREAMS && !seen.contains_key(&(node, stream)) {
            // Forget a stream (most likely of a room long gone) to stay bounded.
            let any = seen.keys().next().copied();
            any.map(|k| seen.remove(&k));
        }
        let last = seen.entry((node, stream)).or_insert(0);
        if seq <= *last {
            self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let first_seen = *last == 0;
        let gap = seq - *last - 1;
        *last = seq;
        drop(seen);
        if gap > 0 && !first_seen {
            self.stats.lost.fetch_add(gap, Ordering::Relaxed);
            cluster.stats.lost.fetch_add(gap, Ordering::Relaxed);
            tracing::warn!("room {}: {gap} messages from node {node:016x} were lost in transit", self.name);
        }
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        cluster.stats.received.fetch_add(1, Ordering::Relaxed);
        Some(body)
    }

    /// Copies a message body out of the link's read buffer, once for all
    /// the local subscribers.
    pub(super) fn chunk(body: &[u8]) -> Chunk {
        Buffer::from_slice(body, usize::MAX).chunk()
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let mut rooms = self.cluster.lock_rooms();
        // Only if no newer room of that name took the place meanwhile.
        if rooms.get(&self.name).is_some_and(|r| r.ptr_eq(&self.room)) {
            rooms.remove(&self.name);
        }
        drop(rooms);
        self.cluster.changed.notify(usize::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::{Policy, Recv, Rooms};

    fn payload(node: u64, stream: u64, seq: u64, body: &str) -> Vec<u8> {
        let mut p = MAGIC.to_vec();
        for word in [node, stream, seq] {
            p.extend_from_slice(&word.to_be_bytes());
        }
        p.extend_from_slice(body.as_bytes());
        p
    }

    #[test]
    fn remote_messages_are_delivered_once_in_order_with_gaps_counted_and_echoes_dropped() {
        // Nothing listens on port 1: the link keeps retrying in the background.
        let cluster = Cluster::start("redis://127.0.0.1:1", OUTBOX_LIMITS).unwrap();
        let rooms = Rooms::default();
        let room = rooms.get_cluster("r", &cluster);
        let sub = room.subscribe(Limits::default(), Policy::DropOldest);
        for p in [
            payload(7, 1, 1, "a"),
            payload(7, 1, 2, "b"),
            payload(7, 1, 5, "c"),
            payload(7, 1, 5, "dup"),
            payload(7, 1, 4, "late"),
            payload(cluster.node(), 1, 1, "echo"),
            payload(8, 3, 9, "other publisher, first seen"),
            b"raw".to_vec(),
        ] {
            room.receive(&p);
        }
        let mut got = Vec::new();
        while let Some(Recv::Message(m)) = sub.try_recv() {
            got.push(String::from_utf8_lossy(m.as_slice()).into_owned());
        }
        assert_eq!(got, ["a", "b", "c", "other publisher, first seen", "raw"]);
        let stats = &room.bridge().unwrap().stats;
        assert_eq!(stats.lost.load(Ordering::Relaxed), 2);
        assert_eq!(stats.duplicates.load(Ordering::Relaxed), 2);
        assert_eq!(stats.received.load(Ordering::Relaxed), 4);
        // The link is down: a local publish reaches local subscribers and
        // counts as not sent.
        assert_eq!(room.publish(Bridge::chunk(b"local")), 1);
        assert_eq!(stats.unsent.load(Ordering::Relaxed), 1);
        // The room's channel is wanted while the room lives, and not after.
        assert!(cluster.lock_rooms().contains_key("r"));
        drop((room, sub));
        drop(rooms);
        assert!(!cluster.lock_rooms().contains_key("r"));
    }
}
