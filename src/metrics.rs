//! Counters for `GET /metrics` (Prometheus text format): verification outcomes by code, a latency
//! histogram, cache hits and misses. Plain atomics: recording costs a few nanoseconds on the hot path.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
];
/// The outcome codes counted (see `verify::Refusal::code`).
const OUTCOMES: [&str; 10] = [
    "ok",
    "missing",
    "malformed",
    "unknown",
    "disabled",
    "expired",
    "no_access",
    "forbidden",
    "rate_limited",
    "unavailable",
];

#[derive(Debug, Default)]
pub struct VerifyMetrics {
    outcomes: [AtomicU64; OUTCOMES.len()],
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
}

impl VerifyMetrics {
    pub fn observe(&self, outcome: &str, elapsed: Duration) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.outcomes[i].fetch_add(1, Ordering::Relaxed);
        }
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub fn cache_hit(&self) {
        self.cache_hits.fetch_add(1, Ordering::Relaxed);
    }

    pub fn cache_miss(&self) {
        self.cache_misses.fetch_add(1, Ordering::Relaxed);
    }

    /// The metrics in Prometheus text exposition format, with the pool's state appended by the caller.
    pub fn render(&self, cache_entries: usize, pool: (u32, u32, u32)) -> String {
        let mut out = String::with_capacity(2048);
        let _ = writeln!(
            out,
            "# HELP bms_verifications_total Access-code verifications by outcome."
        );
        let _ = writeln!(out, "# TYPE bms_verifications_total counter");
        for (name, value) in OUTCOMES.iter().zip(&self.outcomes) {
            let _ = writeln!(
                out,
                "bms_verifications_total{{outcome=\"{name}\"}} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP bms_verification_seconds Time to decide a verification."
        );
        let _ = writeln!(out, "# TYPE bms_verification_seconds histogram");
        let mut cumulative = 0;
        for (bound, value) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += value.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "bms_verification_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "bms_verification_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "bms_verification_seconds_sum {sum}");
        let _ = writeln!(out, "bms_verification_seconds_count {count}");
        let (hits, misses) = (
            self.cache_hits.load(Ordering::Relaxed),
            self.cache_misses.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP bms_verification_cache_requests_total Cache lookups by result."
        );
        let _ = writeln!(out, "# TYPE bms_verification_cache_requests_total counter");
        let _ = writeln!(
            out,
            "bms_verification_cache_requests_total{{result=\"hit\"}} {hits}"
        );
        let _ = writeln!(
            out,
            "bms_verification_cache_requests_total{{result=\"miss\"}} {misses}"
        );
        let ratio = if hits + misses == 0 {
            0.0
        } else {
            hits as f64 / (hits + misses) as f64
        };
        let _ = writeln!(
            out,
            "# HELP bms_verification_cache_hit_ratio Share of lookups answered from memory."
        );
        let _ = writeln!(out, "# TYPE bms_verification_cache_hit_ratio gauge");
        let _ = writeln!(out, "bms_verification_cache_hit_ratio {ratio}");
        let _ = writeln!(
            out,
            "# HELP bms_verification_cache_entries Codes (and unknown digests) cached."
        );
        let _ = writeln!(out, "# TYPE bms_verification_cache_entries gauge");
        let _ = writeln!(out, "bms_verification_cache_entries {cache_entries}");
        let (size, idle, max) = pool;
        let _ = writeln!(
            out,
            "# HELP bms_db_pool_connections Database pool connections by state."
        );
        let _ = writeln!(out, "# TYPE bms_db_pool_connections gauge");
        let _ = writeln!(out, "bms_db_pool_connections{{state=\"open\"}} {size}");
        let _ = writeln!(out, "bms_db_pool_connections{{state=\"idle\"}} {idle}");
        let _ = writeln!(out, "bms_db_pool_connections{{state=\"max\"}} {max}");
        out
    }
}

/// The shared store's health (`--redis-url`): whether it was reachable at the last operation, and
/// how many operations fell back to this instance's own counters.
pub fn render_shared_store(up: bool, fallbacks: u64) -> String {
    format!(
        "# HELP bms_shared_store_up Whether the shared store (Redis) answered the last operation.\n\
         # TYPE bms_shared_store_up gauge\n\
         bms_shared_store_up {}\n\
         # HELP bms_shared_store_fallbacks_total Operations counted on this instance alone because the shared store could not be reached.\n\
         # TYPE bms_shared_store_fallbacks_total counter\n\
         bms_shared_store_fallbacks_total {fallbacks}\n",
        u8::from(up)
    )
}
