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

/// Latency buckets counted: `BUCKETS`, then one for anything slower (`+Inf` only).
const SLOTS: usize = BUCKETS.len() + 1;

#[derive(Debug)]
pub struct VerifyMetrics {
    /// Verifications by outcome and by the first latency bucket they fall in: one increment per
    /// verification, where separate outcome, bucket and total counters took three. The totals by
    /// outcome, the cumulative buckets and the count are sums of these when rendered. The last row
    /// holds outcomes not in `OUTCOMES` (counted as verifications, not by outcome).
    counts: [[AtomicU64; SLOTS]; OUTCOMES.len() + 1],
    sum_nanos: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
}

impl Default for VerifyMetrics {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            sum_nanos: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
        }
    }
}

impl VerifyMetrics {
    pub fn observe(&self, outcome: &str, elapsed: Duration) {
        let row = OUTCOMES
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or(OUTCOMES.len());
        let secs = elapsed.as_secs_f64();
        let slot = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.counts[row][slot].fetch_add(1, Ordering::Relaxed);
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
        // A snapshot of the matrix: each total below is a sum of the same reads.
        let counts: Vec<[u64; SLOTS]> = self
            .counts
            .iter()
            .map(|row| std::array::from_fn(|slot| row[slot].load(Ordering::Relaxed)))
            .collect();
        let _ = writeln!(
            out,
            "# HELP bms_verifications_total Access-code verifications by outcome."
        );
        let _ = writeln!(out, "# TYPE bms_verifications_total counter");
        for (name, row) in OUTCOMES.iter().zip(&counts) {
            let _ = writeln!(
                out,
                "bms_verifications_total{{outcome=\"{name}\"}} {}",
                row.iter().sum::<u64>()
            );
        }
        let _ = writeln!(
            out,
            "# HELP bms_verification_seconds Time to decide a verification."
        );
        let _ = writeln!(out, "# TYPE bms_verification_seconds histogram");
        let mut cumulative = 0;
        for (slot, bound) in BUCKETS.iter().enumerate() {
            cumulative += counts.iter().map(|row| row[slot]).sum::<u64>();
            let _ = writeln!(
                out,
                "bms_verification_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count: u64 = counts.iter().flatten().sum();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> f64 {
        let prefix = format!("{series} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{series} missing in\n{text}"))
    }

    #[test]
    fn outcomes_buckets_and_count_are_sums_of_one_counter_per_verification() {
        let m = VerifyMetrics::default();
        m.observe("ok", Duration::from_micros(10));
        m.observe("ok", Duration::from_micros(300));
        m.observe("unknown", Duration::from_millis(2));
        m.observe("not-an-outcome", Duration::from_secs(2));
        let text = m.render(0, (0, 0, 0));
        assert_eq!(
            value(&text, r#"bms_verifications_total{outcome="ok"}"#),
            2.0
        );
        assert_eq!(
            value(&text, r#"bms_verifications_total{outcome="unknown"}"#),
            1.0
        );
        assert_eq!(
            value(&text, r#"bms_verifications_total{outcome="malformed"}"#),
            0.0
        );
        // Cumulative: 10 µs in the first bucket, 300 µs from 0.0005 on, 2 ms from 0.0025 on, the
        // two-second one only in +Inf.
        assert_eq!(
            value(&text, r#"bms_verification_seconds_bucket{le="0.00005"}"#),
            1.0
        );
        assert_eq!(
            value(&text, r#"bms_verification_seconds_bucket{le="0.0005"}"#),
            2.0
        );
        assert_eq!(
            value(&text, r#"bms_verification_seconds_bucket{le="0.0025"}"#),
            3.0
        );
        assert_eq!(
            value(&text, r#"bms_verification_seconds_bucket{le="0.5"}"#),
            3.0
        );
        assert_eq!(
            value(&text, r#"bms_verification_seconds_bucket{le="+Inf"}"#),
            4.0
        );
        assert_eq!(value(&text, "bms_verification_seconds_count"), 4.0);
        let sum = value(&text, "bms_verification_seconds_sum");
        assert!((sum - 2.00231).abs() < 1e-9, "{sum}");
    }
}
