//! The 30-day request chart of a key page. The bars are an SVG that may stretch to any width (so it
//! holds nothing but rectangles and hairlines); the scale and the dates are HTML beside and under it,
//! so text never stretches or shrinks with the chart. No chart library, no CDN, no inline style (the
//! CSP forbids it). The markup holds only numbers and dates.

use std::fmt::Write;

use time::Date;

/// The chart's height in SVG units (the SVG is drawn 1:1 in height by the stylesheet).
const HEIGHT: f64 = 100.0;

/// The top of the scale: a round number a little above `max` (1, 2, 4, 6 or 8 times a power of ten, so
/// that its half, the middle gridline, is whole too), at least 4, so that one small day does not fill
/// the whole height.
fn scale_top(max: i64) -> i64 {
    let wanted = (max as f64 * 1.1).max(4.0);
    let mut magnitude = 1.0_f64;
    while magnitude * 10.0 <= wanted {
        magnitude *= 10.0;
    }
    [1.0, 2.0, 4.0, 6.0, 8.0, 10.0]
        .iter()
        .map(|step| step * magnitude)
        .find(|top| *top >= wanted)
        .unwrap_or(magnitude * 10.0)
        .ceil() as i64
}

/// `950`, `1.2k`, `25k`, `3M`: short enough for the scale's labels.
fn compact(n: f64) -> String {
    let short = |value: f64, unit: &str| {
        if value < 10.0 && value.fract() != 0.0 {
            format!("{value:.1}{unit}")
        } else {
            format!("{}{unit}", value.round())
        }
    };
    match n {
        n if n >= 1e6 => short(n / 1e6, "M"),
        n if n >= 1e3 => short(n / 1e3, "k"),
        n => short(n, ""),
    }
}

/// The chart of `days` (oldest first), or a sentence when there were no requests.
pub fn requests_per_day(days: &[(Date, i64)]) -> String {
    let total: i64 = days.iter().map(|(_, n)| *n).sum();
    let (Some((first, _)), Some((last, _))) = (days.first(), days.last()) else {
        return String::new();
    };
    if total == 0 {
        return format!(
            r#"<p class="chart-empty">No requests between {first} and {last}. Requests made with this key's access codes appear here, one bar per day.</p>"#
        );
    }
    let max = days.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let top = scale_top(max);
    let slot = 100.0 / days.len() as f64;
    let mut html = String::with_capacity(8192);
    let _ = write!(
        html,
        r#"<figure class="chart"><div class="chart-plot"><div class="chart-scale" aria-hidden="true"><span>{}</span><span>{}</span><span>0</span></div>"#,
        compact(top as f64),
        compact(top as f64 / 2.0),
    );
    let _ = write!(
        html,
        r#"<svg class="chart-bars" viewBox="0 0 100 {HEIGHT}" preserveAspectRatio="none" role="img" aria-label="Requests per day from {first} to {last}: {total} in all, at most {max} in a day" xmlns="http://www.w3.org/2000/svg">"#
    );
    for y in [0.0, HEIGHT / 2.0, HEIGHT] {
        let _ = write!(
            html,
            r#"<line class="grid" x1="0" x2="100" y1="{y}" y2="{y}" vector-effect="non-scaling-stroke"/>"#
        );
    }
    for (i, (day, n)) in days.iter().enumerate() {
        let height = *n as f64 / top as f64 * HEIGHT;
        let _ = write!(
            html,
            r#"<rect x="{x:.3}" y="{y:.3}" width="{w:.3}" height="{height:.3}"><title>{day}: {n} request{s}</title></rect>"#,
            x = i as f64 * slot + slot * 0.15,
            y = HEIGHT - height,
            w = slot * 0.7,
            s = if *n == 1 { "" } else { "s" },
        );
    }
    let middle = days[days.len() / 2].0;
    let _ = write!(
        html,
        r#"</svg></div><div class="chart-dates" aria-hidden="true"><span>{first}</span><span class="chart-middle">{middle}</span><span>{last}</span></div>"#
    );
    // The same numbers as a table, for screen readers and for reading exact values.
    html.push_str(r#"<details class="chart-table"><summary>Show the days with requests</summary><table><thead><tr><th scope="col">Day</th><th scope="col">Requests</th></tr></thead><tbody>"#);
    for (day, n) in days.iter().filter(|(_, n)| *n > 0) {
        let _ = write!(html, "<tr><td>{day}</td><td>{n}</td></tr>");
    }
    html.push_str("</tbody></table></details></figure>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_is_round_and_above_the_highest_day() {
        for (max, top) in [
            (0, 4),
            (1, 4),
            (3, 4),
            (4, 6),
            (9, 10),
            (10, 20),
            (95, 200),
            (1234, 2000),
            (5000, 6000),
        ] {
            assert_eq!(scale_top(max), top, "max {max}");
        }
        assert_eq!(compact(2.5), "2.5");
        assert_eq!(compact(950.0), "950");
        assert_eq!(compact(1200.0), "1.2k");
        assert_eq!(compact(25_000.0), "25k");
        assert_eq!(compact(2_500_000.0), "2.5M");
    }

    #[test]
    fn no_requests_is_a_sentence_not_an_empty_box() {
        let day = time::macros::date!(2026 - 11 - 01);
        let days: Vec<(Date, i64)> = (0..30)
            .map(|i| (day + time::Duration::days(i), 0))
            .collect();
        let html = requests_per_day(&days);
        assert!(html.starts_with(
            r#"<p class="chart-empty">No requests between 2026-11-01 and 2026-11-30"#
        ));
        let mut busy = days.clone();
        busy[3].1 = 7;
        let html = requests_per_day(&busy);
        assert!(html.contains("<title>2026-11-04: 7 requests</title>"));
        assert_eq!(html.matches("<rect").count(), 30);
        assert!(
            html.contains("<span>8</span><span>4</span><span>0</span>"),
            "{html}"
        );
    }
}
