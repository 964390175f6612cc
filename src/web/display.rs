//! How values are written on pages: dates and times, counts. One place, so every page agrees.

use time::PrimitiveDateTime;
use time::macros::format_description;

/// `2026-11-27 14:05 UTC`
pub fn datetime(t: &PrimitiveDateTime) -> String {
    t.format(format_description!(
        "[year]-[month]-[day] [hour]:[minute] UTC"
    ))
    .unwrap_or_default()
}

/// `2026-11-27`
pub fn date(t: &PrimitiveDateTime) -> String {
    t.format(format_description!("[year]-[month]-[day]"))
        .unwrap_or_default()
}

/// A time that may never have happened: `Never` when absent.
pub fn datetime_or_never(t: &Option<PrimitiveDateTime>) -> String {
    t.as_ref().map_or_else(|| "Never".to_owned(), datetime)
}
