//! The generic cell rate algorithm: one "theoretical arrival time" per key instead of a window of
//! counters. Requests are spaced one emission interval apart on average, and up to `burst` may come
//! at once; the state is a single number, which is what makes it cheap to share (`limits::shared`).
//!
//! Times are microseconds on any clock both sides agree on (a local monotonic clock, or the shared
//! store's clock): only differences matter.

/// A rate: `per_minute` requests a minute, up to `burst` of them at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// Microseconds between requests at the steady rate.
    pub interval: i64,
    /// Requests allowed at once (at least 1).
    pub burst: i64,
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    pub allowed: bool,
    /// Requests that could be made right now after this one.
    pub remaining: u32,
    /// Microseconds until the whole burst is available again.
    pub reset: i64,
    /// Refused only: microseconds until one request would be allowed.
    pub retry_after: i64,
}

impl Gcra {
    /// `per_minute` requests a minute; `burst_share` of them (at least one) may come at once.
    pub fn per_minute(per_minute: u32, burst_share: f64) -> Self {
        let per_minute = i64::from(per_minute.max(1));
        let burst = ((per_minute as f64) * burst_share).round() as i64;
        Self {
            interval: (60_000_000 / per_minute).max(1),
            burst: burst.clamp(1, per_minute),
        }
    }

    /// How far ahead of `now` the arrival time may run: the burst's worth of intervals.
    fn tolerance(&self) -> i64 {
        self.burst * self.interval
    }

    /// Decides one request at `now` with the key's arrival time `tat` (updated when allowed).
    pub fn admit(&self, tat: &mut i64, now: i64) -> Admission {
        let next = (*tat).max(now) + self.interval;
        let ahead = next - now;
        if ahead > self.tolerance() {
            let current = (*tat).max(now) - now;
            return Admission {
                allowed: false,
                remaining: 0,
                reset: current,
                retry_after: ahead - self.tolerance(),
            };
        }
        *tat = next;
        Admission {
            allowed: true,
            remaining: u32::try_from((self.tolerance() - ahead) / self.interval).unwrap_or(0),
            reset: ahead,
            retry_after: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_steady_rate() {
        // 60 a minute, a quarter at once: 15 immediately, then one a second.
        let g = Gcra::per_minute(60, 0.25);
        assert_eq!(g.burst, 15);
        let mut tat = 0;
        let now = 1_000_000_000;
        for i in 0..15 {
            let a = g.admit(&mut tat, now);
            assert!(a.allowed, "request {i} of the burst");
            assert_eq!(a.remaining, 14 - i);
        }
        let refused = g.admit(&mut tat, now);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, 1_000_000, "one interval to wait");
        // Not an instant early, then exactly one.
        assert!(!g.admit(&mut tat, now + 999_999).allowed);
        assert!(g.admit(&mut tat, now + 1_000_000).allowed);
        assert!(!g.admit(&mut tat, now + 1_000_000).allowed);
    }

    #[test]
    fn the_long_run_rate_is_the_limit() {
        let g = Gcra::per_minute(600, 0.1);
        let mut tat = 0;
        let mut allowed = 0;
        // Ten requests every 10 ms for a minute: 6,000 asked, 600 + the burst of 60 let in.
        for step in 0..6_000 {
            let now = step * 10_000;
            for _ in 0..10 {
                allowed += i64::from(g.admit(&mut tat, now).allowed);
            }
        }
        assert!((600..=661).contains(&allowed), "{allowed}");
    }

    #[test]
    fn burst_is_at_least_one_and_at_most_the_limit() {
        assert_eq!(Gcra::per_minute(1, 0.1).burst, 1);
        assert_eq!(Gcra::per_minute(10, 5.0).burst, 10);
        assert_eq!(Gcra::per_minute(1, 0.1).interval, 60_000_000);
    }
}
