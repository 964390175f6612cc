//! The in-process cache in front of the database: what an access code's digest grants, or that no
//! code has it. Bounded in size; entries expire (a safety net behind the explicit invalidations).
//!
//! A lookup races the changes it could miss: it may read a row just before a revocation commits and
//! come back after the revocation has invalidated the cache. So every invalidation moves a
//! *generation* on, and a lookup's answer is cached only if no invalidation happened since the lookup
//! began (`generation()` before reading, `insert(…, seen)` after) — a revoked code is never put back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use time::PrimitiveDateTime;

use crate::limits::RateLimit;
use crate::policies::Rule;
use crate::usage::Tally;

/// What a set of policies allows: their names (to report) and their rules (to match).
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    pub names: Arc<[String]>,
    pub rules: Arc<[Rule]>,
}

impl PolicySet {
    pub fn allows(&self, method: &str, path: &str, account: &str) -> bool {
        self.rules.iter().any(|r| r.matches(method, path, account))
    }
}

/// An answer the API layer rendered for one grant of an entry (the ping API's body), kept with the
/// entry: everything it says is fixed for the entry's life, and any change to the code, its key or a
/// link replaces the entry, and the memo with it. Rendered on first use, then shared (a reference
/// count, no copy) by every request with the same grant.
pub type AnswerMemo = std::sync::OnceLock<actix_web::web::Bytes>;

/// Another account's link to the code's key.
#[derive(Debug)]
pub struct LinkGrant {
    /// The linking account.
    pub account_id: Arc<str>,
    pub link_key_id: Arc<str>,
    pub policies: PolicySet,
    /// The linking account's limits for the link.
    pub rate: RateLimit,
    /// The answer for a request on the linking account.
    pub answer: AnswerMemo,
    /// Requests on the linking account not yet written (`usage`).
    pub tally: Tally,
}

/// Everything a request with one access code needs, loaded in one go.
#[derive(Debug)]
pub struct CodeEntry {
    pub code_id: Arc<str>,
    pub key_id: Arc<str>,
    pub account_id: Arc<str>,
    pub enabled: bool,
    pub expires_at: PrimitiveDateTime,
    pub own: PolicySet,
    /// The key's own limits.
    pub rate: RateLimit,
    /// By the linking account's id. Shared: a grant on a linking account holds its link.
    pub links: HashMap<Arc<str>, Arc<LinkGrant>>,
    /// The answer for a request on the key's own account.
    pub own_answer: AnswerMemo,
    /// Requests on the key's own account not yet written (`usage`).
    pub own_tally: Tally,
    /// Whether the usage recorder has this entry in its queue for the flusher.
    pub usage_queued: AtomicBool,
}

impl CodeEntry {
    /// Whether a change to the key `key_id` (an own key or a link) may change what this entry grants.
    fn depends_on(&self, key_id: &str) -> bool {
        &*self.key_id == key_id || self.links.values().any(|l| &*l.link_key_id == key_id)
    }
}

#[derive(Debug, Clone)]
enum Slot {
    Found(Arc<CodeEntry>, Instant),
    /// No code has this digest (cached briefly: a flood of one wrong secret stays off the database).
    Unknown(Instant),
}

/// A cache lookup's answer.
#[derive(Debug, Clone)]
pub enum Cached {
    Found(Arc<CodeEntry>),
    Unknown,
}

/// Hashes a digest by its first eight bytes. The digests are HMAC outputs under the server's secret
/// pepper: uniformly spread, and not choosable by a client, so hashing them again (SipHash over 32
/// bytes on every request) buys nothing.
#[derive(Default, Clone, Copy)]
pub struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(word);
    }

    // The slice's length prefix: the same for every digest.
    fn write_usize(&mut self, _: usize) {}
}

type DigestMap<V> = HashMap<[u8; 32], V, std::hash::BuildHasherDefault<DigestHasher>>;

pub struct CodeCache {
    map: RwLock<DigestMap<Slot>>,
    /// Moved on by every invalidation, under the map's write lock.
    generation: AtomicU64,
    max_entries: usize,
    ttl: Duration,
    negative_ttl: Duration,
}

impl CodeCache {
    pub fn new(max_entries: usize, ttl: Duration, negative_ttl: Duration) -> Self {
        Self {
            map: RwLock::new(DigestMap::default()),
            generation: AtomicU64::new(0),
            max_entries,
            ttl,
            negative_ttl,
        }
    }

    /// What the cache knows about the digest at `now` (an instant the caller just read: one clock
    /// read serves the whole verification).
    pub fn get(&self, digest: &[u8; 32], now: Instant) -> Option<Cached> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        match map.get(digest)? {
            Slot::Found(entry, at) if now.saturating_duration_since(*at) < self.ttl => {
                Some(Cached::Found(entry.clone()))
            }
            Slot::Unknown(at) if now.saturating_duration_since(*at) < self.negative_ttl => {
                Some(Cached::Unknown)
            }
            _ => None,
        }
    }

    /// The current generation: read it before a lookup, and give it to `insert`.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Caches a lookup's answer, unless the cache was invalidated since the lookup began (`seen`):
    /// the answer may then predate the change that invalidated it.
    pub fn insert(&self, digest: [u8; 32], value: Cached, seen: u64) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if self.generation.load(Ordering::Acquire) != seen {
            return;
        }
        if map.len() >= self.max_entries {
            // Bounded: drop what has expired, and if that is not enough, start over (entries reload
            // on demand; a full cache is rare and this keeps the structure simple).
            let (ttl, negative_ttl) = (self.ttl, self.negative_ttl);
            map.retain(|_, slot| match slot {
                Slot::Found(_, at) => at.elapsed() < ttl,
                Slot::Unknown(at) => at.elapsed() < negative_ttl,
            });
            if map.len() >= self.max_entries {
                map.clear();
            }
        }
        let slot = match value {
            Cached::Found(entry) => Slot::Found(entry, Instant::now()),
            Cached::Unknown => Slot::Unknown(Instant::now()),
        };
        map.insert(digest, slot);
    }

    /// Forgets everything that depends on the key, and every negative answer (a new code may now
    /// have one of those digests).
    pub fn invalidate_key(&self, key_id: &str) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.retain(|_, slot| match slot {
            Slot::Found(entry, _) => !entry.depends_on(key_id),
            Slot::Unknown(_) => false,
        });
    }

    pub fn clear(&self) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.clear();
    }

    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key_id: &str) -> Cached {
        Cached::Found(Arc::new(CodeEntry {
            code_id: Arc::from("code_1"),
            key_id: Arc::from(key_id),
            account_id: Arc::from("acc_1"),
            enabled: true,
            expires_at: crate::db::now(),
            own: PolicySet::default(),
            rate: RateLimit::NONE,
            links: HashMap::new(),
            own_answer: AnswerMemo::default(),
            own_tally: Tally::default(),
            usage_queued: AtomicBool::new(false),
        }))
    }

    #[test]
    fn a_lookup_that_began_before_an_invalidation_is_not_cached() {
        let cache = CodeCache::new(10, Duration::from_secs(60), Duration::from_secs(10));
        // A lookup begins, a revocation of its key invalidates, then the (stale) answer arrives.
        let seen = cache.generation();
        cache.invalidate_key("key_1");
        cache.insert([1; 32], entry("key_1"), seen);
        assert!(
            cache.get(&[1; 32], Instant::now()).is_none(),
            "a revoked code was put back"
        );
        // A lookup that began after it is cached.
        let seen = cache.generation();
        cache.insert([1; 32], entry("key_1"), seen);
        assert!(cache.get(&[1; 32], Instant::now()).is_some());
        // clear() counts as an invalidation too.
        let seen = cache.generation();
        cache.clear();
        cache.insert([2; 32], Cached::Unknown, seen);
        assert!(cache.get(&[2; 32], Instant::now()).is_none());
    }
}
