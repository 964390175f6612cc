//! Per-key rate limits: what an owner sets on a key (`RateLimit`), how a request is admitted against
//! it (`keys::KeyLimiter`, GCRA per minute and a count per UTC day), and what the answer tells the
//! client (`RateStatus`, written as the IETF `RateLimit` / `RateLimit-Policy` headers).
//!
//! Counting is in this process's memory; with a shared store (`shared`, Redis) every instance adds
//! what it admitted in short batches and takes back the total, so all instances count together.

pub mod gcra;
pub mod keys;
pub mod shared;

use std::fmt::Write as _;

/// Most requests a minute an owner may set (the verification path does ~100k/s per core).
pub const MAX_PER_MINUTE: u32 = 100_000_000;
/// Most requests a day an owner may set (fits the stored 32-bit column).
pub const MAX_PER_DAY: u32 = 2_000_000_000;
/// The share of the per-minute limit that may come at once, by default.
pub const DEFAULT_BURST_SHARE: f64 = 0.25;

/// A key's limits; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RateLimit {
    pub per_minute: Option<u32>,
    pub per_day: Option<u32>,
}

impl RateLimit {
    pub const NONE: RateLimit = RateLimit {
        per_minute: None,
        per_day: None,
    };

    /// From the stored columns (a value outside the accepted range is no limit: it was never stored
    /// by this code).
    pub fn from_columns(per_minute: Option<i32>, per_day: Option<i32>) -> Self {
        let positive = |v: Option<i32>| v.and_then(|v| u32::try_from(v).ok()).filter(|v| *v > 0);
        Self {
            per_minute: positive(per_minute),
            per_day: positive(per_day),
        }
    }

    /// The stored columns.
    pub fn columns(&self) -> (Option<i32>, Option<i32>) {
        let column = |v: Option<u32>| v.and_then(|v| i32::try_from(v).ok());
        (column(self.per_minute), column(self.per_day))
    }

    pub fn is_none(&self) -> bool {
        self.per_minute.is_none() && self.per_day.is_none()
    }

    /// For audit summaries and pages: "600 per minute, 100000 per day", or "none".
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [(self.per_minute, "minute"), (self.per_day, "day")]
            .into_iter()
            .filter_map(|(v, per)| v.map(|v| format!("{v} per {per}")))
            .collect();
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// A limit as typed in a form: empty is no limit, else a whole number from 1 to `max`.
pub fn parse_limit(raw: &str, max: u32) -> Result<Option<u32>, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let digits = raw.replace([',', '_', ' '], "");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("Enter a whole number of requests, or leave the field empty.".to_owned());
    }
    match digits.parse::<u64>() {
        Ok(0) => Err("Enter at least 1, or leave the field empty for no limit.".to_owned()),
        Ok(v) if v <= u64::from(max) => Ok(u32::try_from(v).ok()),
        // Digits only: too large for any number type is too large for the limit.
        _ => Err(format!("Enter at most {max}.")),
    }
}

/// One window of a limit as the client hears about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Requests allowed per window.
    pub quota: u32,
    /// The window, in seconds.
    pub seconds: u32,
    /// Requests that may be made now.
    pub remaining: u32,
    /// Seconds until the quota is whole again.
    pub reset: u32,
}

/// What a limited request was told: its windows, and when refused how long to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateStatus {
    pub minute: Option<Window>,
    pub day: Option<Window>,
    /// Seconds to wait; 0 when the request was allowed.
    pub retry_after: u32,
}

impl RateStatus {
    fn windows(&self) -> impl Iterator<Item = (&'static str, Window)> {
        [("minute", self.minute), ("day", self.day)]
            .into_iter()
            .filter_map(|(name, w)| w.map(|w| (name, w)))
    }

    /// The `RateLimit-Policy` field (draft-ietf-httpapi-ratelimit-headers): `"minute";q=600;w=60`.
    pub fn policy_header(&self) -> String {
        let mut out = String::new();
        for (name, w) in self.windows() {
            if !out.is_empty() {
                out.push_str(", ");
            }
            let _ = write!(out, "\"{name}\";q={};w={}", w.quota, w.seconds);
        }
        out
    }

    /// The `RateLimit` field: `"minute";r=42;t=3` for each window.
    pub fn limit_header(&self) -> String {
        let mut out = String::new();
        for (name, w) in self.windows() {
            if !out.is_empty() {
                out.push_str(", ");
            }
            let _ = write!(out, "\"{name}\";r={};t={}", w.remaining, w.reset);
        }
        out
    }

    /// The window that refused the request, for the message.
    pub fn exhausted(&self) -> Option<(&'static str, Window)> {
        self.windows().find(|(_, w)| w.remaining == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_as_typed() {
        assert_eq!(parse_limit("", MAX_PER_MINUTE), Ok(None));
        assert_eq!(parse_limit(" 600 ", MAX_PER_MINUTE), Ok(Some(600)));
        assert_eq!(parse_limit("100,000", MAX_PER_DAY), Ok(Some(100_000)));
        assert!(parse_limit("0", MAX_PER_MINUTE).is_err());
        assert!(parse_limit("-5", MAX_PER_MINUTE).is_err());
        assert!(parse_limit("1.5", MAX_PER_MINUTE).is_err());
        assert!(parse_limit("100000001", MAX_PER_MINUTE).is_err());
        assert!(parse_limit("99999999999999999999999", MAX_PER_MINUTE).is_err());
    }

    #[test]
    fn headers_name_each_window() {
        let status = RateStatus {
            minute: Some(Window {
                quota: 600,
                seconds: 60,
                remaining: 0,
                reset: 2,
            }),
            day: Some(Window {
                quota: 10_000,
                seconds: 86_400,
                remaining: 9_000,
                reset: 3_600,
            }),
            retry_after: 1,
        };
        assert_eq!(
            status.policy_header(),
            "\"minute\";q=600;w=60, \"day\";q=10000;w=86400"
        );
        assert_eq!(
            status.limit_header(),
            "\"minute\";r=0;t=2, \"day\";r=9000;t=3600"
        );
        assert_eq!(status.exhausted().map(|(n, _)| n), Some("minute"));
        assert_eq!(
            RateLimit::from_columns(Some(600), None).describe(),
            "600 per minute"
        );
        assert_eq!(RateLimit::from_columns(Some(0), Some(-1)), RateLimit::NONE);
    }
}
