//! Pub/sub rooms shared by every worker of the process.
//!
//! A room is found by name in the process-wide [`Rooms`] registry, so
//! `moonport.room("screen-42")` on any worker is the same room. A message is
//! published once as refcounted bytes ([`Chunk`]) and every subscriber's queue
//! holds a reference, never a copy. Each subscription has its own bounded
//! queue, and what happens when it is full is the subscriber's [`Policy`]: a
//! slow subscriber never slows the publisher or the other subscribers.
//!
//! A room of scope cluster ([`Rooms::get_cluster`]) also spans the other
//! processes of a cluster, over Redis pub/sub ([`cluster`]): its messages go
//! to the local subscribers at once and to the other nodes through the
//! process's one link, and what the other nodes publish arrives once per
//! process and is shared the same way. The scope is part of a room's
//! identity: a local and a cluster room of the same name are two rooms.

pub mod cluster;
mod queue;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use cluster::{Cluster, OUTBOX_LIMITS};
pub use queue::{Limits, Policy, Recv, Subscription};

use crate::buf::Chunk;
use cluster::Bridge;

/// Every room of the process, by scope and name. A room lives while a
/// script holds it or anyone is subscribed.
#[derive(Default)]
pub struct Rooms {
    local: Mutex<HashMap<String, Arc<Room>>>,
    cluster: Mutex<HashMap<String, Arc<Room>>>,
}

impl Rooms {
    /// The local room called `name`, created on first use.
    pub fn get(&self, name: &str) -> Arc<Room> {
        Self::find(&self.local, name, |_| None)
    }

    /// The cluster room called `name`, created on first use with a bridge
    /// to `cluster`.
    pub fn get_cluster(&self, name: &str, cluster: &Arc<Cluster>) -> Arc<Room> {
        Self::find(&self.cluster, name, |room| Some(cluster.bridge(room, name)))
    }

    fn find(
        map: &Mutex<HashMap<String, Arc<Room>>>,
        name: &str,
        bridge: impl FnOnce(&std::sync::Weak<Room>) -> Option<Bridge>,
    ) -> Arc<Room> {
        let mut rooms = map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(room) = rooms.get(name) {
            return room.clone();
        }
        // Forget rooms nobody holds or listens to, so names do not pile up.
        rooms.retain(|_, r| Arc::strong_count(r) > 1 || r.count() > 0);
        let room = Arc::new_cyclic(|weak| Room {
            name: name.to_string(),
            subscribers: Mutex::new(Vec::new()),
            cluster: bridge(weak),
        });
        rooms.insert(name.to_string(), room.clone());
        room
    }
}

pub struct Room {
    name: String,
    subscribers: Mutex<Vec<Arc<Subscription>>>,
    /// The link to the other nodes, for a room of scope cluster.
    cluster: Option<Bridge>,
}

impl Room {
    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Subscription>>> {
        self.subscribers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The link to the other nodes, for a cluster room.
    pub fn bridge(&self) -> Option<&Bridge> {
        self.cluster.as_ref()
    }

    /// Queues `msg` for every open local subscription and, in a cluster
    /// room, sends it to the other nodes; returns how many local
    /// subscriptions took it. Holding the room's lock while queueing keeps
    /// each publisher's messages in order for every subscriber, here and on
    /// the other nodes.
    pub fn publish(&self, msg: Chunk) -> usize {
        let mut subs = self.lock();
        if let Some(bridge) = &self.cluster {
            bridge.send(&msg);
        }
        Self::queue(&mut subs, msg)
    }

    /// A message from another node, as it arrived from Redis.
    fn receive(&self, payload: &[u8]) {
        let Some(bridge) = &self.cluster else { return };
        let Some(body) = bridge.accept(payload) else { return };
        let msg = Bridge::chunk(body);
        Self::queue(&mut self.lock(), msg);
    }

    fn queue(subs: &mut Vec<Arc<Subscription>>, msg: Chunk) -> usize {
        subs.retain(|s| !s.is_closed());
        subs.iter().filter(|s| s.push(msg.clone())).count()
    }

    pub fn subscribe(self: &Arc<Self>, limits: Limits, policy: Policy) -> Arc<Subscription> {
        let sub = Arc::new(Subscription::new(limits, policy));
        self.lock().push(sub.clone());
        sub
    }

    /// Open subscriptions, on all workers.
    pub fn count(&self) -> usize {
        let mut subs = self.lock();
        subs.retain(|s| !s.is_closed());
        subs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::Buffer;

    fn msg(s: &str) -> Chunk {
        Buffer::from_slice(s.as_bytes(), 1 << 20).chunk()
    }

    fn take(sub: &Subscription) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(Recv::Message(m)) = sub.try_recv() {
            out.push(String::from_utf8_lossy(m.as_slice()).into_owned());
        }
        out
    }

    #[test]
    fn same_name_same_room_and_every_subscriber_gets_every_message() {
        let rooms = Rooms::default();
        let a = rooms.get("r").subscribe(Limits::default(), Policy::DropOldest);
        let b = rooms.get("r").subscribe(Limits::default(), Policy::DropOldest);
        assert_eq!(rooms.get("r").count(), 2);
        assert_eq!(rooms.get("r").publish(msg("1")), 2);
        rooms.get("r").publish(msg("2"));
        assert_eq!(take(&a), ["1", "2"]);
        assert_eq!(take(&b), ["1", "2"]);
        b.close();
        assert_eq!(rooms.get("r").count(), 1);
    }

    #[test]
    fn policies_bound_the_queue() {
        let room = Rooms::default().get("r");
        let limits = Limits { messages: 2, bytes: 1 << 20 };
        let oldest = room.subscribe(limits, Policy::DropOldest);
        let latest = room.subscribe(limits, Policy::KeepLatest);
        let strict = room.subscribe(limits, Policy::Disconnect);
        for m in ["1", "2", "3", "4"] {
            room.publish(msg(m));
        }
        assert_eq!(take(&oldest), ["3", "4"]);
        assert_eq!(oldest.missed(), 2);
        // Full at "3": the backlog goes, the newest stays and the queue refills.
        assert_eq!(take(&latest), ["3", "4"]);
        assert_eq!(latest.missed(), 2);
        assert!(strict.is_closed());
        assert!(matches!(strict.try_recv(), Some(Recv::Overflow)));
        assert_eq!(room.count(), 2);
    }

    #[test]
    fn byte_limit_counts_too() {
        let room = Rooms::default().get("r");
        let sub = room.subscribe(Limits { messages: 100, bytes: 10 }, Policy::DropOldest);
        room.publish(msg("aaaaaa"));
        room.publish(msg("bbbbbb"));
        assert_eq!(take(&sub), ["bbbbbb"]);
        assert_eq!(sub.missed(), 1);
        // A message larger than the byte limit still gets through an empty queue.
        room.publish(msg("cccccccccccccccc"));
        assert_eq!(take(&sub), ["cccccccccccccccc"]);
    }
}
