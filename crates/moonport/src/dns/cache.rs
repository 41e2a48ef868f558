//! A bounded cache of answers, positive and negative, each kept for the TTL
//! its server gave. One per worker, so lookups never contend for a lock.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::wire::{Reply, Rtype};

/// What is cached for a question: a reply that answers it, or that there is none.
pub type Entry = Option<Reply>;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    /// The servers asked, since different servers may answer differently.
    servers: String,
    name: String,
    rtype: Rtype,
}

pub struct Cache {
    entries: HashMap<Key, (Entry, Instant)>,
    capacity: usize,
}

impl Cache {
    pub fn new(capacity: usize) -> Self {
        Self { entries: HashMap::new(), capacity }
    }

    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        self.entries.clear();
    }

    pub fn get(&mut self, servers: &str, name: &str, rtype: Rtype) -> Option<Entry> {
        let key = Key { servers: servers.to_string(), name: name.to_string(), rtype };
        match self.entries.get(&key) {
            Some((entry, expires)) if *expires > Instant::now() => Some(entry.clone()),
            Some(_) => {
                self.entries.remove(&key);
                None
            }
            None => None,
        }
    }

    pub fn put(&mut self, servers: &str, name: &str, rtype: Rtype, entry: Entry, ttl: u32) {
        if self.capacity == 0 || ttl == 0 {
            return;
        }
        let now = Instant::now();
        if self.entries.len() >= self.capacity {
            self.entries.retain(|_, (_, expires)| *expires > now);
        }
        if self.entries.len() >= self.capacity {
            // Still full of live entries: drop the one closest to expiring.
            if let Some(key) = self.entries.iter().min_by_key(|(_, (_, e))| *e).map(|(k, _)| k.clone()) {
                self.entries.remove(&key);
            }
        }
        let key = Key { servers: servers.to_string(), name: name.to_string(), rtype };
        self.entries.insert(key, (entry, now + Duration::from_secs(u64::from(ttl))));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_expiring() {
        let mut cache = Cache::new(2);
        cache.put("s", "a", Rtype::A, None, 60);
        cache.put("s", "b", Rtype::A, None, 30);
        cache.put("s", "c", Rtype::A, None, 90);
        assert_eq!(cache.len(), 2);
        assert!(cache.get("s", "b", Rtype::A).is_none(), "the soonest to expire goes first");
        assert!(matches!(cache.get("s", "a", Rtype::A), Some(None)));
        assert!(cache.get("other", "a", Rtype::A).is_none());
        cache.put("s", "z", Rtype::A, None, 0);
        assert!(cache.get("s", "z", Rtype::A).is_none());
    }
}
