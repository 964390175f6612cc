//! Counting failures per key (an email, a client IP) in a window that opens at the first failure, to
//! slow down guessing. Kept in memory, without a database write per failed attempt; with a shared
//! store (`limits::shared`) the counts of every instance are added up there — in batches for the
//! verification path (`take_pending` / `absorb`), at once for sign-in (`SharedThrottle`).

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
    /// Failures counted since the shared store last heard of them.
    pending: u32,
}

impl Entry {
    /// A window opening at `now`, with nothing counted yet.
    fn opened(now: Instant) -> Self {
        Self {
            failures: 0,
            window_start: now,
            pending: 0,
        }
    }
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
        self.check_at(key, Instant::now())
    }

    /// `check` at `now`, an instant the caller just read (the verification path reads the clock once).
    pub fn check_at<Q>(&self, key: &Q, now: Instant) -> Result<(), Duration>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        match self.lock().get(key).and_then(|e| self.wait(e, now)) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// How long until the entry is under the limit again, if it is over it at `now`.
    fn wait(&self, e: &Entry, now: Instant) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(e.window_start);
        (e.failures >= self.max_failures && elapsed < self.window).then(|| self.window - elapsed)
    }

    /// A failure that is refused outright when the key is over its limit: `Err(wait)` then, as from
    /// `check_at`, and nothing counted (as when a caller checks first and counts only what it
    /// refuses otherwise); else counted. One lock where `check_at` + `record_failure_at` take two.
    pub fn fail_unless_over<Q>(&self, key: &Q, now: Instant) -> Result<(), Duration>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut entries = self.lock();
        if let Some(e) = entries.get_mut(key) {
            if let Some(wait) = self.wait(e, now) {
                return Err(wait);
            }
            self.bump(e, now);
            return Ok(());
        }
        self.count(&mut entries, key, now);
        Ok(())
    }

    /// Counts one failure for the key.
    pub fn record_failure<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.record_failure_at(key, Instant::now());
    }

    /// `record_failure` at `now`, an instant the caller just read.
    pub fn record_failure_at<Q>(&self, key: &Q, now: Instant)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.count(&mut self.lock(), key, now);
    }

    fn count<Q>(&self, entries: &mut HashMap<K, Entry>, key: &Q, now: Instant)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
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
        match entries.get_mut(key) {
            Some(entry) => self.bump(entry, now),
            None => {
                let mut entry = Entry::opened(now);
                self.bump(&mut entry, now);
                entries.insert(key.to_owned(), entry);
            }
        }
        self.tracked.store(entries.len(), Ordering::Relaxed);
    }

    /// One more failure in the entry's window, or the first of a new one if it has passed.
    fn bump(&self, entry: &mut Entry, now: Instant) {
        if now.saturating_duration_since(entry.window_start) >= self.window {
            *entry = Entry::opened(now);
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.pending = entry.pending.saturating_add(1);
    }

    /// The failures counted since the last call, per key (and zeroes them), for the shared store.
    pub fn take_pending(&self) -> Vec<(K, u32)> {
        let mut entries = self.lock();
        entries
            .iter_mut()
            .filter(|(_, e)| e.pending > 0)
            .map(|(k, e)| (k.clone(), std::mem::take(&mut e.pending)))
            .collect()
    }

    /// Every instance's total for the key, with the time left in its window; failures counted here
    /// since are added.
    pub fn absorb(&self, key: &K, total: u32, left: Duration) {
        let now = Instant::now();
        let mut entries = self.lock();
        if let Some(entry) = entries.get_mut(key) {
            entry.failures = total.saturating_add(entry.pending);
            let elapsed = self.window.saturating_sub(left);
            entry.window_start = now.checked_sub(elapsed).unwrap_or(entry.window_start);
        }
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

/// A throttle whose counts live in the shared store when there is one (sign-in: every attempt asks
/// it, so N instances give no more guesses than one), and in this instance otherwise or while the
/// store cannot be reached. The local counts are kept in step either way, to fall back on. Blocking
/// when shared: call it on the blocking pool.
#[derive(Debug)]
pub struct SharedThrottle {
    local: FailureThrottle,
    /// The store's name for these counters (`login-email`, …).
    scope: &'static str,
}

impl SharedThrottle {
    pub fn new(scope: &'static str, max_failures: u32, window: Duration) -> Self {
        Self {
            local: FailureThrottle::new(max_failures, window),
            scope,
        }
    }

    /// `Err(wait)` when the key is locked out.
    pub fn check(
        &self,
        store: Option<&crate::limits::shared::SharedStore>,
        key: &str,
    ) -> Result<(), Duration> {
        match store.and_then(|s| s.failures(self.scope, key)) {
            Some((failures, left)) if failures >= self.local.max_failures && !left.is_zero() => {
                Err(left)
            }
            Some(_) => Ok(()),
            None => self.local.check(key),
        }
    }

    pub fn record_failure(&self, store: Option<&crate::limits::shared::SharedStore>, key: &str) {
        self.local.record_failure(key);
        // Sent to the store right here, never by a sync loop: nothing is left pending.
        self.local.take_pending();
        if let Some(store) = store {
            store.add_failures(self.scope, &[(key.to_owned(), 1)], self.local.window);
        }
    }

    pub fn reset(&self, store: Option<&crate::limits::shared::SharedStore>, key: &str) {
        self.local.reset(key);
        if let Some(store) = store {
            store.reset_failures(self.scope, key);
        }
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
    fn failing_unless_over_counts_like_check_then_record() {
        let t: FailureThrottle = FailureThrottle::new(2, Duration::from_millis(200));
        let now = Instant::now();
        assert!(t.fail_unless_over("a", now).is_ok());
        assert!(
            t.fail_unless_over("a", now).is_ok(),
            "the second failure reaches the limit"
        );
        let wait = t.fail_unless_over("a", now).unwrap_err();
        assert!(wait <= Duration::from_millis(200) && wait > Duration::ZERO);
        assert_eq!(
            t.take_pending(),
            vec![("a".to_owned(), 2)],
            "a refused failure is not counted"
        );
        assert!(
            t.fail_unless_over("b", now).is_ok(),
            "other keys are not affected"
        );
        // After the window, a new one opens with this failure.
        let later = now + Duration::from_millis(250);
        assert!(t.fail_unless_over("a", later).is_ok());
        assert!(t.check_at("a", later).is_ok());
    }

    #[test]
    fn reset_forgets_failures() {
        let t: FailureThrottle = FailureThrottle::new(1, Duration::from_secs(60));
        t.record_failure("a");
        assert!(t.check("a").is_err());
        t.reset("a");
        assert!(t.check("a").is_ok());
    }

    #[test]
    fn shared_totals_are_absorbed_with_what_came_since() {
        let t: FailureThrottle = FailureThrottle::new(5, Duration::from_secs(60));
        t.record_failure("a");
        assert_eq!(t.take_pending(), vec![("a".to_owned(), 1)]);
        assert!(t.take_pending().is_empty());
        t.record_failure("a");
        // Other instances counted 3 more (the store's total includes the first failure here).
        t.absorb(&"a".to_owned(), 4, Duration::from_secs(30));
        assert!(
            t.check("a").is_err(),
            "4 shared + 1 pending reach the limit"
        );
    }
}
