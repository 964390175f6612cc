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

/// A moment as a page shows it: `<time datetime="2026-11-27T14:05:00Z">2026-11-27 14:05 UTC</time>`.
/// The text is UTC; `app.js` rewrites it in the browser's time zone (the `datetime` stays exact, and
/// without scripts the UTC text stands). "Never" for a moment that has not happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moment {
    at: Option<PrimitiveDateTime>,
    with_time: bool,
}

impl Moment {
    /// Date and time to the minute.
    pub fn datetime(at: &PrimitiveDateTime) -> Self {
        Self {
            at: Some(*at),
            with_time: true,
        }
    }

    /// The date only (a key's creation, a code's expiry).
    pub fn date(at: &PrimitiveDateTime) -> Self {
        Self {
            at: Some(*at),
            with_time: false,
        }
    }

    /// Date and time, or "Never".
    pub fn or_never(at: &Option<PrimitiveDateTime>) -> Self {
        Self {
            at: *at,
            with_time: true,
        }
    }
}

impl std::fmt::Display for Moment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(at) = &self.at else {
            return f.write_str("Never");
        };
        let (kind, text) = if self.with_time {
            ("datetime", datetime(at))
        } else {
            ("date", date(at))
        };
        // Only digits, dashes, colons and "UTC" are written: nothing here needs escaping.
        write!(
            f,
            r#"<time datetime="{}" data-local="{kind}">{text}</time>"#,
            crate::db::rfc3339(at)
        )
    }
}

/// The markup above is built from formatted numbers only, so templates print it as it is.
impl askama::filters::HtmlSafe for Moment {}
