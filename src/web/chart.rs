//! The 30-day request chart of a key page, drawn on the server as SVG (no chart library, no CDN).

use std::fmt::Write;

use time::Date;

/// Bars of requests per day; the markup is ours and contains only numbers and dates.
pub fn requests_per_day(days: &[(Date, i64)]) -> String {
    const WIDTH: usize = 600;
    const HEIGHT: usize = 120;
    const AXIS: usize = 18;
    let max = days.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let total: i64 = days.iter().map(|(_, n)| *n).sum();
    let slot = WIDTH as f64 / days.len().max(1) as f64;
    let mut svg = String::with_capacity(4096);
    let _ = write!(
        svg,
        r#"<svg class="usage-chart" viewBox="0 0 {WIDTH} {h}" role="img" aria-label="{total} requests in the last 30 days, at most {max} in a day" preserveAspectRatio="none" xmlns="http://www.w3.org/2000/svg">"#,
        h = HEIGHT + AXIS
    );
    for (i, (day, n)) in days.iter().enumerate() {
        let height = (*n as f64 / max as f64 * HEIGHT as f64).round();
        let x = i as f64 * slot + 1.0;
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{height:.1}" rx="2"><title>{day}: {n} requests</title></rect>"#,
            y = HEIGHT as f64 - height,
            w = (slot - 2.0).max(1.0),
        );
    }
    if let (Some((first, _)), Some((last, _))) = (days.first(), days.last()) {
        let _ = write!(
            svg,
            r#"<text x="0" y="{y}">{first}</text><text x="{WIDTH}" y="{y}" text-anchor="end">{last}</text>"#,
            y = HEIGHT + AXIS - 4
        );
    }
    svg.push_str("</svg>");
    svg
}
