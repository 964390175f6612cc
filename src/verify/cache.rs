//! The in-process cache in front of the database: what an access code's digest grants, or that no
//! code has it. Bounded in size; entries expire (a safety net behind the explicit invalidations).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use time::PrimitiveDateTime;

use crate::policies::Rule;

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

/// Another account's link to the code's key.
#[derive(Debug, Clone)]
pub struct LinkGrant {
    pub link_key_id: Arc<str>,
    pub policies: PolicySet,
}

/// Everything a request with one access code needs, loaded in one go.
#[derive(Debug, Clone)]
pub struct CodeEntry {
    pub code_id: Arc<str>,
    pub key_id: Arc<str>,
    pub account_id: Arc<str>,
    pub enabled: bool,
    pub expires_at: PrimitiveDateTime,
    pub own: PolicySet,
    /// By the linking account's id.
    pub links: HashMap<String, LinkGrant>,
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

pub struct CodeCache {
    map: RwLock<HashMap<[u8; 32], Slot>>,
    max_entries: usize,
    ttl: Duration,
    negative_ttl: Duration,
}

impl CodeCache {
    pub fn new(max_entries: usize, ttl: Duration, negative_ttl: Duration) -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            max_entries,
            ttl,
            negative_ttl,
        }
    }

    pub fn get(&self, digest: &[u8; 32]) -> Option<Cached> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        match map.get(digest)? {
            Slot::Found(entry, at) if at.elapsed() < self.ttl => Some(Cached::Found(entry.clone())),
            Slot::Unknown(at) if at.elapsed() < self.negative_ttl => Some(Cached::Unknown),
            _ => None,
        }
    }

    pub fn insert(&self, digest: [u8; 32], value: Cached) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
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
        map.retain(|_, slot| match slot {
            Slot::Found(entry, _) => !entry.depends_on(key_id),
            Slot::Unknown(_) => false,
        });
    }

    pub fn clear(&self) {
        self.map.write().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
