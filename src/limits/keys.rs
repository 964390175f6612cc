//! Admitting requests against each key's limits, in this process: a GCRA arrival time per key for
//! the per-minute limit, a count for the current UTC day. One short lock per limited request; keys
//! without limits never reach here.
//!
//! With a shared store, the sync loop (`limits::shared`) takes what was admitted since its last turn
//! (`take_pending`) and, once the store has added it to every instance's total, sets the key's state
//! to that total plus what was admitted meanwhile (`absorb`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::gcra::Gcra;
use super::{RateLimit, RateStatus, Window};

/// Keys tracked before idle ones are dropped.
const MAX_KEYS: usize = 100_000;
const SECONDS_PER_DAY: u32 = 86_400;

/// The UTC day a request falls on, and the seconds left in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Today {
    pub day: i32,
    pub seconds_left: u32,
}

impl Today {
    pub fn of(at: time::PrimitiveDateTime) -> Self {
        let (h, m, s) = at.time().as_hms();
        let elapsed = u32::from(h) * 3600 + u32::from(m) * 60 + u32::from(s);
        Self {
            day: at.date().to_julian_day(),
            seconds_left: SECONDS_PER_DAY - elapsed,
        }
    }
}

#[derive(Debug)]
struct KeyState {
    /// The limits the key was last admitted under (for the sync loop, which has no grant).
    limit: RateLimit,
    /// The GCRA arrival time, in microseconds of `KeyLimiter::epoch`.
    tat: i64,
    /// Admitted since the last sync.
    minute_pending: u32,
    day: i32,
    /// Admitted today by every instance, as far as this one knows.
    day_count: u64,
    day_pending: u32,
}

/// What one key admitted since the last sync, for the shared store.
#[derive(Debug, Clone)]
pub struct Pending {
    pub key: Arc<str>,
    /// The key's per-minute rate, when it has one.
    pub gcra: Option<Gcra>,
    pub minute: u32,
    /// The key's per-day limit is counted on this day.
    pub day: Option<i32>,
    pub day_count: u32,
}

/// Every key's counters in this process.
pub struct KeyLimiter {
    epoch: Instant,
    burst_share: f64,
    states: Mutex<HashMap<Arc<str>, KeyState>>,
}

impl KeyLimiter {
    pub fn new(burst_share: f64) -> Self {
        Self {
            epoch: Instant::now(),
            burst_share,
            states: Mutex::new(HashMap::new()),
        }
    }

    fn now(&self) -> i64 {
        i64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(i64::MAX)
    }

    fn states(&self) -> MutexGuard<'_, HashMap<Arc<str>, KeyState>> {
        // Only counters are behind this lock: after a panic elsewhere they are still usable.
        self.states.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn gcra(&self, per_minute: u32) -> Gcra {
        Gcra::per_minute(per_minute, self.burst_share)
    }

    /// Admits one request of `key` under `limit` (not `RateLimit::NONE`): `Ok` with what is left,
    /// or `Err` with how long to wait. A refused request uses up nothing.
    pub fn admit(
        &self,
        key: &Arc<str>,
        limit: RateLimit,
        today: Today,
    ) -> Result<RateStatus, RateStatus> {
        let now = self.now();
        let mut states = self.states();
        if states.len() >= MAX_KEYS && !states.contains_key(&**key) {
            // Idle keys only: a key's count for today must outlive its quiet minutes.
            states.retain(|_, s| s.tat > now || (s.day == today.day && s.day_count > 0));
        }
        let state = states.entry(key.clone()).or_insert(KeyState {
            limit,
            tat: now,
            minute_pending: 0,
            day: today.day,
            day_count: 0,
            day_pending: 0,
        });
        if state.day != today.day {
            state.day = today.day;
            state.day_count = 0;
            state.day_pending = 0;
        }
        let mut tat = state.tat;
        let minute = limit.per_minute.map(|per_minute| {
            let admission = self.gcra(per_minute).admit(&mut tat, now);
            (per_minute, admission)
        });
        let day_left = limit
            .per_day
            .map(|per_day| u64::from(per_day).saturating_sub(state.day_count));
        let allowed = minute.is_none_or(|(_, a)| a.allowed) && day_left.is_none_or(|left| left > 0);
        if allowed {
            state.limit = limit;
            state.tat = tat;
            state.day_count += 1;
            state.minute_pending = state.minute_pending.saturating_add(1);
            state.day_pending = state.day_pending.saturating_add(1);
        }
        drop(states);
        let seconds =
            |micros: i64| u32::try_from((micros.max(0) + 999_999) / 1_000_000).unwrap_or(u32::MAX);
        let minute_window = minute.map(|(per_minute, a)| Window {
            quota: per_minute,
            seconds: 60,
            remaining: if allowed { a.remaining } else { 0 },
            reset: seconds(a.reset),
        });
        let day_window = limit.per_day.zip(day_left).map(|(per_day, left)| Window {
            quota: per_day,
            seconds: SECONDS_PER_DAY,
            remaining: u32::try_from(if allowed { left - 1 } else { left }).unwrap_or(u32::MAX),
            reset: today.seconds_left,
        });
        let status = RateStatus {
            minute: minute_window,
            day: day_window,
            retry_after: 0,
        };
        if allowed {
            return Ok(status);
        }
        let minute_wait = minute
            .filter(|(_, a)| !a.allowed)
            .map_or(0, |(_, a)| seconds(a.retry_after));
        let day_wait = if day_left == Some(0) {
            today.seconds_left
        } else {
            0
        };
        Err(RateStatus {
            retry_after: minute_wait.max(day_wait).max(1),
            ..status
        })
    }

    /// What every key admitted since the last call (and zeroes it), for the shared store.
    pub fn take_pending(&self) -> Vec<Pending> {
        let mut states = self.states();
        let mut out = Vec::new();
        for (key, state) in states.iter_mut() {
            if state.minute_pending == 0 && state.day_pending == 0 {
                continue;
            }
            let limit = state.limit;
            out.push(Pending {
                key: key.clone(),
                gcra: limit.per_minute.map(|m| self.gcra(m)),
                minute: std::mem::take(&mut state.minute_pending),
                day: limit.per_day.map(|_| state.day),
                day_count: std::mem::take(&mut state.day_pending),
            });
        }
        out
    }

    /// The shared totals for a key after a sync: `ahead` microseconds of arrival time beyond now
    /// (every instance's requests), and today's count. What this instance admitted since is added.
    pub fn absorb(&self, key: &str, ahead: Option<i64>, day_total: Option<(i32, u64)>) {
        let now = self.now();
        let mut states = self.states();
        let Some(state) = states.get_mut(key) else {
            return;
        };
        if let (Some(ahead), Some(per_minute)) = (ahead, state.limit.per_minute) {
            let since = i64::from(state.minute_pending) * self.gcra(per_minute).interval;
            state.tat = now + ahead.max(0) + since;
        }
        if let Some((day, total)) = day_total
            && day == state.day
        {
            state.day_count = total + u64::from(state.day_pending);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Today {
        Today {
            day: 2_460_000,
            seconds_left: 3_600,
        }
    }

    #[test]
    fn a_day_limit_counts_to_its_end() {
        let limiter = KeyLimiter::new(1.0);
        let key: Arc<str> = Arc::from("key_a");
        let limit = RateLimit {
            per_minute: None,
            per_day: Some(3),
        };
        for left in [2, 1, 0] {
            let status = limiter.admit(&key, limit, today()).unwrap();
            assert_eq!(status.day.unwrap().remaining, left);
        }
        let refused = limiter.admit(&key, limit, today()).unwrap_err();
        assert_eq!(refused.retry_after, 3_600, "until the day ends");
        let tomorrow = Today {
            day: today().day + 1,
            seconds_left: 86_400,
        };
        assert!(limiter.admit(&key, limit, tomorrow).is_ok());
    }

    #[test]
    fn keys_are_limited_apart_and_refusals_use_nothing() {
        let limiter = KeyLimiter::new(0.0);
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("key_a"), Arc::from("key_b"));
        let limit = RateLimit {
            per_minute: Some(60),
            per_day: Some(100),
        };
        let first = limiter.admit(&a, limit, today()).unwrap();
        assert_eq!(first.minute.unwrap().remaining, 0);
        assert_eq!(first.day.unwrap().remaining, 99);
        let refused = limiter.admit(&a, limit, today()).unwrap_err();
        assert_eq!(refused.retry_after, 1);
        assert_eq!(refused.day.unwrap().remaining, 99, "a refusal uses nothing");
        assert!(limiter.admit(&b, limit, today()).is_ok());
    }

    #[test]
    fn absorbing_the_shared_total_counts_other_instances() {
        let limiter = KeyLimiter::new(1.0);
        let key: Arc<str> = Arc::from("key_a");
        let limit = RateLimit {
            per_minute: Some(60),
            per_day: Some(10),
        };
        limiter.admit(&key, limit, today()).unwrap();
        let pending = limiter.take_pending();
        assert_eq!(pending.len(), 1);
        assert_eq!((pending[0].minute, pending[0].day_count), (1, 1));
        assert!(limiter.take_pending().is_empty(), "taken once");
        // The other instances used the rest of the minute and 9 of the day.
        limiter.absorb(&key, Some(60_000_000), Some((today().day, 10)));
        let refused = limiter.admit(&key, limit, today()).unwrap_err();
        assert_eq!(refused.day.unwrap().remaining, 0);
        assert_eq!(refused.minute.unwrap().remaining, 0);
    }
}
