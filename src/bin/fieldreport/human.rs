//! Times and spans for people: `in 4 min (16:31:54 UTC)`, `now`, `none`.
//! (`--json` keeps Unix seconds for machines.)

use std::time::{SystemTime, UNIX_EPOCH};

/// When something will happen: `now` if due, else `in 4 min (16:31:54
/// UTC)`, with the date when it is not today (UTC); `none` without a time.
pub fn when(t: Option<SystemTime>, now: SystemTime) -> String {
    let Some(t) = t else {
        return "none".into();
    };
    match t.duration_since(now) {
        Ok(ahead) if ahead.as_secs() > 0 => {
            format!("in {} ({})", span(ahead.as_secs()), clock(t, now))
        }
        _ => "now".into(),
    }
}

/// How long ago: `3 min ago (16:20:11 UTC)`, `just now`.
pub fn ago(t: SystemTime, now: SystemTime) -> String {
    match now.duration_since(t) {
        Ok(past) if past.as_secs() > 0 => {
            format!("{} ago ({})", span(past.as_secs()), clock(t, now))
        }
        _ => "just now".into(),
    }
}

/// A span of seconds in the largest units that matter: `42 s`, `4 min`,
/// `2 h 5 min`, `3 days 4 h`.
pub fn span(secs: u64) -> String {
    const MIN: u64 = 60;
    const HOUR: u64 = 3600;
    const DAY: u64 = 86_400;
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    if secs < MIN {
        format!("{secs} s")
    } else if secs < HOUR {
        // To the nearest minute: "in 4 min" for 3 min 40 s.
        format!("{} min", (secs + MIN / 2) / MIN)
    } else if secs < DAY {
        let (h, m) = (secs / HOUR, (secs % HOUR) / MIN);
        if m == 0 {
            format!("{h} h")
        } else {
            format!("{h} h {m} min")
        }
    } else {
        let (d, h) = (secs / DAY, (secs % DAY) / HOUR);
        let days = plural(d, "day", "days");
        if h == 0 {
            days
        } else {
            format!("{days} {h} h")
        }
    }
}

/// `16:31:54 UTC` on the same UTC day as `now`, else `2026-11-30 16:31:54 UTC`.
fn clock(t: SystemTime, now: SystemTime) -> String {
    let secs = unix(t);
    let (day, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let time = format!(
        "{:02}:{:02}:{:02} UTC",
        rest / 3600,
        (rest % 3600) / 60,
        rest % 60
    );
    if day == unix(now).div_euclid(86_400) {
        time
    } else {
        let (y, m, d) = civil_date(day);
        format!("{y:04}-{m:02}-{d:02} {time}")
    }
}

/// Seconds since the Unix epoch, negative before it.
fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (the
/// well-known era arithmetic: 400-year eras of 146 097 days, years starting
/// in March so that the leap day comes last).
fn civil_date(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn when_says_now_in_and_none() {
        // 2026-12-08 16:27:54 UTC.
        let now = at(1_796_747_274);
        assert_eq!(when(None, now), "none");
        assert_eq!(when(Some(UNIX_EPOCH), now), "now", "a zero time is due");
        assert_eq!(when(Some(now), now), "now");
        assert_eq!(
            when(Some(now + Duration::from_secs(240)), now),
            "in 4 min (16:31:54 UTC)"
        );
        assert_eq!(
            when(Some(now + Duration::from_secs(9)), now),
            "in 9 s (16:28:03 UTC)"
        );
        assert_eq!(
            when(Some(now + Duration::from_secs(2 * 86_400 + 3600)), now),
            "in 2 days 1 h (2026-12-10 17:27:54 UTC)"
        );
        assert_eq!(
            ago(now - Duration::from_secs(7500), now),
            "2 h 5 min ago (14:22:54 UTC)"
        );
        assert_eq!(ago(now, now), "just now");
    }

    #[test]
    fn spans_round_to_the_units_that_matter() {
        assert_eq!(span(0), "0 s");
        assert_eq!(span(59), "59 s");
        assert_eq!(span(60), "1 min");
        assert_eq!(span(220), "4 min");
        assert_eq!(span(3600), "1 h");
        assert_eq!(span(86_400), "1 day");
        assert_eq!(span(86_400 * 3 + 7200), "3 days 2 h");
    }

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(-1), (1969, 12, 31));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(19_782), (2024, 2, 29));
        assert_eq!(civil_date(19_783), (2024, 3, 1));
        assert_eq!(civil_date(2_932_896), (9999, 12, 31));
    }
}
