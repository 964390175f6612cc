//! Counting failures per key (an email, a client IP) in a sliding window, to slow down password
//! guessing. Kept in memory: each instance throttles on its own, which bounds guessing per instance
//! without a database write per failed attempt.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Most keys tracked at once; past this, expired entries are dropped, then the oldest.
const MAX_ENTRIES: usize = 100_000;

/// Refuses a key after `max_failures` failures within `window`, until the window has passed.
#[derive(Debug)]
pub struct FailureThrottle<K = String> {
    max_failures: u32,
    window: Duration,
    entries: Mutex<HashMap<K, Entry>>,
    /// How many keys are tracked: lets `check` skip the lock entirely while nobody is failing (the
    /// verification hot path calls it on every request).
    tracked: AtomicUsize,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    window_start: Instant,
}

impl<K: Hash + Eq + Clone> FailureThrottle<K> {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            entries: Mutex::new(HashMap::new()),
            tracked: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Entry>> {
        // A panic while holding this lock leaves only counters behind: keep using them.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `Err(wait)` when the key is locked out, with how long until it may try again.
    pub fn check<Q>(&self, key: &Q) -> Result<(), Duration>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        let now = Instant::now();
        match self.lock().get(key) {
            Some(e) if e.failures >= self.max_failures => {
                let elapsed = now.duration_since(e.window_start);
                if elapsed < self.window {
                    Err(self.window - elapsed)
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// Counts one failure for the key.
    pub fn record_failure<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(key) {
            let window = self.window;
            entries.retain(|_, e| now.duration_since(e.window_start) < window);
            if entries.len() >= MAX_ENTRIES
                && let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.window_start)
                    .map(|(k, _)| k.clone())
            {
                entries.remove::<K>(&oldest);
            }
        }
        let entry = entries.entry(key.to_owned()).or_insert(Entry {
            failures: 0,
            window_start: now,
        });
        if now.duration_since(entry.window_start) >= self.window {
            *entry = Entry {
                failures: 0,
                window_start: now,
            };
        }
        entry.failures = entry.failures.saturating_add(1);
        self.tracked.store(entries.len(), Ordering::Relaxed);
    }

    /// Forgets the key's failures (after a success).
    pub fn reset<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut entries = self.lock();
        entries.remove(key);
        self.tracked.store(entries.len(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_the_limit_and_unlocks_after_the_window() {
        let t: FailureThrottle = FailureThrottle::new(3, Duration::from_millis(200));
        for _ in 0..3 {
            assert!(t.check("a").is_ok());
            t.record_failure("a");
        }
        assert!(t.check("a").is_err());
        assert!(t.check("b").is_ok(), "other keys are not affected");
        std::thread::sleep(Duration::from_millis(250));
        assert!(t.check("a").is_ok());
    }

    #[test]
    fn reset_forgets_failures() {
        let t: FailureThrottle = FailureThrottle::new(1, Duration::from_secs(60));
        t.record_failure("a");
        assert!(t.check("a").is_err());
        t.reset("a");
        assert!(t.check("a").is_ok());
    }
}
