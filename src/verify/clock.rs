//! The time of day on the verification path, read at most once a millisecond per worker. A decision
//! needs it only to compare with expiry dates and to date the usage counters, where a millisecond
//! is nothing; a fresh read with its conversion to a calendar date costs about as much as the cache
//! lookup, on every request.

use std::cell::Cell;
use std::time::{Duration, Instant};

use time::PrimitiveDateTime;

/// How old the time handed out may be.
const RESOLUTION: Duration = Duration::from_millis(1);

thread_local! {
    /// This thread's last reading: when (monotonic) and what (UTC).
    static LAST: Cell<Option<(Instant, PrimitiveDateTime)>> = const { Cell::new(None) };
}

/// The UTC time at `now` (an instant just read), to within `RESOLUTION`: this thread's last reading
/// if it was taken less than that before `now`, else a new one.
pub fn wall_time(now: Instant) -> PrimitiveDateTime {
    LAST.with(|last| match last.get() {
        Some((at, wall))
            if now
                .checked_duration_since(at)
                .is_some_and(|d| d < RESOLUTION) =>
        {
            wall
        }
        _ => {
            let wall = crate::db::now();
            last.set(Some((now, wall)));
            wall
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_is_reused_within_the_resolution_only() {
        let start = Instant::now();
        let first = wall_time(start);
        assert_eq!(wall_time(start + Duration::from_micros(500)), first);
        // Older than the resolution, or taken before the instant asked about: read again.
        std::thread::sleep(Duration::from_millis(3));
        let later = wall_time(Instant::now());
        assert!(later > first, "{later} after {first}");
        assert!(
            wall_time(start) >= later,
            "an instant before the reading is read anew"
        );
    }
}
