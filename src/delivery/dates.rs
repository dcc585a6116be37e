//! The dates servers send and we send: `Retry-After` (seconds or an HTTP
//! date), ISO 8601 reset times, and our own ISO 8601 timestamps.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `Retry-After`: delta-seconds or an HTTP-date (RFC 9110).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<SystemTime> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(now + Duration::from_secs(secs.min(24 * 3600)));
    }
    parse_http_date(value)
}

/// ISO 8601 UTC date-time as Centercode sends it: `2026-11-23T01:02:03Z`,
/// with optional fraction and `Z`/`+hh:mm`/`+hhmm` offset.
pub(crate) fn parse_iso8601(value: &str) -> Option<SystemTime> {
    let v = value.trim();
    if v.len() < 19 || !v.is_ascii() {
        return None;
    }
    let (date, rest) = v.split_at(10);
    let d: Vec<&str> = date.split('-').collect();
    if d.len() != 3 || !(rest.starts_with('T') || rest.starts_with(' ')) {
        return None;
    }
    let (y, mo, da) = (num(d[0], 4)?, num(d[1], 2)?, num(d[2], 2)?);
    let time = &rest[1..];
    let (h, mi, s) = (
        num(time.get(0..2)?, 2)?,
        num(time.get(3..5)?, 2)?,
        num(time.get(6..8)?, 2)?,
    );
    if time.get(2..3)? != ":" || time.get(5..6)? != ":" {
        return None;
    }
    let mut tail = &time[8..];
    let mut nanos = 0u64;
    if let Some(frac) = tail.strip_prefix('.') {
        let digits: String = frac.chars().take_while(|c| c.is_ascii_digit()).collect();
        if digits.is_empty() {
            return None;
        }
        let scaled: String = digits.chars().chain("000000000".chars()).take(9).collect();
        nanos = scaled.parse().ok()?;
        tail = &frac[digits.len()..];
    }
    let offset_secs: i64 = match tail {
        "" | "Z" | "z" => 0,
        t if t.starts_with('+') || t.starts_with('-') => {
            let sign = if t.starts_with('-') { -1 } else { 1 };
            let hm = t[1..].replace(':', "");
            if hm.len() != 4 {
                return None;
            }
            sign * (num(&hm[..2], 2)? as i64 * 3600 + num(&hm[2..], 2)? as i64 * 60)
        }
        _ => return None,
    };
    let secs = unix_seconds(y, mo, da, h, mi, s)? - offset_secs;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(nanos))
}

/// IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) fn parse_http_date(value: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    if parts.len() != 6 || !parts[0].ends_with(',') || parts[5] != "GMT" {
        return None;
    }
    let day = num(parts[1], 2)?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[2])? as u32
        + 1;
    let year = num(parts[3], 4)?;
    let t: Vec<&str> = parts[4].split(':').collect();
    if t.len() != 3 {
        return None;
    }
    let secs = unix_seconds(
        year,
        month,
        day,
        num(t[0], 2)?,
        num(t[1], 2)?,
        num(t[2], 2)?,
    )?;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

fn num(s: &str, width: usize) -> Option<u32> {
    if s.len() != width || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Seconds since 1970 of a UTC civil date-time (days-from-civil algorithm).
fn unix_seconds(y: u32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<i64> {
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let (y, mo, d) = (y as i64, mo as i64, d as i64);
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h as i64 * 3600 + mi as i64 * 60 + s as i64)
}

/// Formats a time as ISO 8601 UTC with milliseconds.
pub(crate) fn format_iso8601(t: SystemTime) -> String {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // civil-from-days
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60,
        ms.rem_euclid(1000)
    )
}
