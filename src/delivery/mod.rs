//! Delivery decisions, free of I/O: what a server answer means, when to try
//! again, which attachment goes to which file element. The flush loop in
//! `client.rs` does the I/O and asks these functions what to do.

pub(crate) mod engine;
mod one_request;
mod presigned;
// Centercode's create answer and routing, read by the engine and the tests
// below until the engine asks the destination through its translator.
#[cfg(test)]
use crate::destinations::centercode::route_attachments;
pub(crate) use crate::destinations::centercode::{parse_created, Created, FileElement};
pub(crate) mod sender;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::config::Policy;
use crate::report::{DeliveryError, InvalidParameter};

/// A response as the decisions need it: status, the two timing headers, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub rate_limit_reset: Option<String>,
    pub body: String,
}

/// One exchange with the server: an answer, or no answer at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Exchange {
    Answer(Answer),
    /// Reset, timed out, cut off after the request went out: no
    /// (complete) answer, and the server may have acted.
    Transport(String),
    /// The request never left: name resolution, connect or TLS handshake
    /// failed. The server cannot have acted.
    NotSent(String),
}

/// What the answer means for the report and for the rest of the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// 2xx: the request did what was asked.
    Success,
    /// Try this report again later; stop the batch (the link or the server
    /// is in trouble). `not_before` is the server's own word, if it gave one.
    Retry {
        error: DeliveryError,
        not_before: Option<SystemTime>,
    },
    /// Will never succeed as it is: keep it, with the server's reasons.
    Permanent(DeliveryError),
    /// The API key was refused: pause everything, spend no attempt.
    Unauthorized(DeliveryError),
}

/// Centercode's error body: `{"status":400,"description":"...","invalidParameters":[...]}`.
#[derive(Deserialize)]
struct ErrorBody {
    description: Option<String>,
    #[serde(rename = "invalidParameters", default)]
    invalid_parameters: Vec<InvalidParameter>,
}

/// Turns an exchange into a verdict.
pub(crate) fn judge(exchange: &Exchange, now: SystemTime) -> Verdict {
    let answer = match exchange {
        Exchange::Transport(message) | Exchange::NotSent(message) => {
            return Verdict::Retry {
                error: DeliveryError {
                    status: None,
                    message: message.clone(),
                    invalid_parameters: Vec::new(),
                },
                not_before: None,
            }
        }
        Exchange::Answer(a) => a,
    };
    if (200..300).contains(&answer.status) {
        return Verdict::Success;
    }
    let error = error_of(answer);
    match answer.status {
        401 | 403 => Verdict::Unauthorized(error),
        429 => Verdict::Retry {
            error,
            not_before: wait_until(answer, now),
        },
        408 | 500..=599 => Verdict::Retry {
            not_before: answer
                .retry_after
                .as_deref()
                .and_then(|v| parse_retry_after(v, now)),
            error,
        },
        // 400, 404, 405, 409, 410, 413, 415, 422 and any other client error:
        // sending the same request again cannot help.
        _ => Verdict::Permanent(error),
    }
}

/// The error of an answer: the server's description when its body has a
/// non-blank one, else the status's reason phrase (a message is never empty).
pub(crate) fn error_of(answer: &Answer) -> DeliveryError {
    let parsed: Option<ErrorBody> = serde_json::from_str(&answer.body).ok();
    let (message, invalid_parameters) = match parsed {
        Some(ErrorBody {
            description: Some(d),
            invalid_parameters,
        }) if !d.trim().is_empty() => (d, invalid_parameters),
        Some(ErrorBody {
            invalid_parameters, ..
        }) => (
            reason_phrase(answer.status)
                .unwrap_or("Unexpected status")
                .to_string(),
            invalid_parameters,
        ),
        None => (
            reason_phrase(answer.status)
                .unwrap_or("Unexpected status")
                .to_string(),
            Vec::new(),
        ),
    };
    DeliveryError {
        status: Some(answer.status),
        message,
        invalid_parameters,
    }
}

/// The standard reason phrase of a status, where it has one.
pub(crate) fn reason_phrase(status: u16) -> Option<&'static str> {
    Some(match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => return None,
    })
}

/// When a 429 lets us go again: `X-Rate-Limit-Reset` first, then
/// `Retry-After`; one second when neither is readable (the documented window).
fn wait_until(answer: &Answer, now: SystemTime) -> Option<SystemTime> {
    let from_reset = answer
        .rate_limit_reset
        .as_deref()
        .and_then(parse_iso8601)
        // A reset far in the future is a broken clock or header: cap it.
        .map(|t| t.min(now + Duration::from_secs(3600)));
    let from_retry = answer
        .retry_after
        .as_deref()
        .and_then(|v| parse_retry_after(v, now));
    Some(
        from_reset
            .into_iter()
            .chain(from_retry)
            .max()
            .unwrap_or(now + Duration::from_secs(1)),
    )
}

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

/// Delay before the next attempt: full jitter over a capped exponential,
/// `random(0 ..= min(retry_max, retry_base * 2^(attempts-1)))`, never below
/// 100 ms so that a zero draw does not spin. `unit` is uniform in [0, 1).
pub(crate) fn backoff(policy: &Policy, attempts: u32, unit: f64) -> Duration {
    let exp = attempts.saturating_sub(1).min(30);
    let ceiling = policy
        .retry_base
        .saturating_mul(1u32 << exp)
        .min(policy.retry_max);
    let unit = unit.clamp(0.0, 1.0);
    ceiling.mul_f64(unit).max(Duration::from_millis(100))
}

/// A uniform draw in [0, 1) from the standard library's random hasher keys.
pub(crate) fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Added to the one-second window: requests leave here at the limit's pace
/// but reach the server with uneven delays (a new connection's handshake,
/// then kept-alive ones), which can squeeze eleven into its window.
const RATE_MARGIN_MS: u64 = 100;

/// A client-side limit of `per_sec` requests in any one-second window,
/// kept as the send times of the last `per_sec` requests (unix ms, so the
/// window can be persisted and shared with the next process).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RateWindow {
    pub sent_ms: std::collections::VecDeque<u64>,
}

impl RateWindow {
    /// How long to wait before the next request may go at `now_ms`.
    pub fn wait(&self, per_sec: u32, now_ms: u64) -> Duration {
        if per_sec == 0 || (self.sent_ms.len() as u32) < per_sec {
            return Duration::ZERO;
        }
        // A send time ahead of now means the clock was set back: count it
        // as now, so the wait is never longer than one window.
        let oldest = self.sent_ms[self.sent_ms.len() - per_sec as usize].min(now_ms);
        Duration::from_millis((oldest + 1000 + RATE_MARGIN_MS).saturating_sub(now_ms))
    }

    /// Records a request sent at `now_ms`.
    pub fn record(&mut self, per_sec: u32, now_ms: u64) {
        self.sent_ms.push_back(now_ms);
        while self.sent_ms.len() > per_sec.max(1) as usize {
            self.sent_ms.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_set_back_never_makes_the_rate_window_wait_longer_than_a_window() {
        let mut w = RateWindow::default();
        let later = 10_000_000u64;
        for i in 0..10 {
            w.record(10, later + i);
        }
        // The clock went back an hour: wait at most one window.
        let wait = w.wait(10, later - 3_600_000);
        assert!(
            wait <= Duration::from_millis(1000 + RATE_MARGIN_MS),
            "{wait:?}"
        );
        assert!(!wait.is_zero(), "still a full window of sends");
    }

    fn answer(status: u16, body: &str) -> Exchange {
        Exchange::Answer(Answer {
            status,
            retry_after: None,
            rate_limit_reset: None,
            body: body.into(),
        })
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_000_000)
    }

    #[test]
    fn success_statuses() {
        assert_eq!(judge(&answer(201, "{}"), now()), Verdict::Success);
        assert_eq!(judge(&answer(200, ""), now()), Verdict::Success);
    }

    #[test]
    fn permanent_statuses_keep_invalid_parameters() {
        let body = r#"{"status":400,"description":"The specified request is invalid.","invalidParameters":[{"name":"summary","description":"A summary is required."}]}"#;
        match judge(&answer(400, body), now()) {
            Verdict::Permanent(e) => {
                assert_eq!(e.status, Some(400));
                assert_eq!(e.message, "The specified request is invalid.");
                assert_eq!(e.invalid_parameters[0].name, "summary");
            }
            v => panic!("{v:?}"),
        }
        for s in [404, 405, 413, 415, 422] {
            assert!(
                matches!(judge(&answer(s, "x"), now()), Verdict::Permanent(_)),
                "{s}"
            );
        }
    }

    #[test]
    fn auth_pauses() {
        for s in [401, 403] {
            assert!(matches!(
                judge(&answer(s, ""), now()),
                Verdict::Unauthorized(_)
            ));
        }
    }

    #[test]
    fn transient_statuses_retry() {
        for s in [408, 500, 502, 503, 504] {
            assert!(
                matches!(judge(&answer(s, ""), now()), Verdict::Retry { .. }),
                "{s}"
            );
        }
        let v = judge(&Exchange::Transport("connection reset".into()), now());
        assert!(matches!(v, Verdict::Retry { error, not_before: None } if error.status.is_none()));
        let v = judge(&Exchange::NotSent("connection refused".into()), now());
        assert!(
            matches!(v, Verdict::Retry { error, not_before: None } if error.message == "connection refused")
        );
    }

    #[test]
    fn rate_limited_waits_for_reset_then_retry_after() {
        let reset = format_iso8601(now() + Duration::from_secs(3));
        let ex = Exchange::Answer(Answer {
            status: 429,
            retry_after: Some("1".into()),
            rate_limit_reset: Some(reset),
            body: String::new(),
        });
        match judge(&ex, now()) {
            Verdict::Retry { not_before, .. } => {
                assert_eq!(not_before, Some(now() + Duration::from_secs(3)))
            }
            v => panic!("{v:?}"),
        }
        let ex = Exchange::Answer(Answer {
            status: 429,
            retry_after: Some("7".into()),
            rate_limit_reset: None,
            body: String::new(),
        });
        assert!(
            matches!(judge(&ex, now()), Verdict::Retry { not_before: Some(t), .. } if t == now() + Duration::from_secs(7))
        );
        // Unreadable headers: wait the documented one-second window.
        let ex = Exchange::Answer(Answer {
            status: 429,
            retry_after: Some("soon".into()),
            rate_limit_reset: Some("garbage".into()),
            body: String::new(),
        });
        assert!(
            matches!(judge(&ex, now()), Verdict::Retry { not_before: Some(t), .. } if t == now() + Duration::from_secs(1))
        );
    }

    #[test]
    fn dates_parse_and_round_trip() {
        let t = parse_iso8601("2026-11-23T01:02:03Z").unwrap();
        assert_eq!(format_iso8601(t), "2026-11-23T01:02:03.000Z");
        let t2 = parse_iso8601("2026-11-23T02:02:03.250+01:00").unwrap();
        assert_eq!(format_iso8601(t2), "2026-11-23T01:02:03.250Z");
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
        for bad in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-11-23",
            "2026-11-23T1:02:03Z",
            "2026-11-23T01:02:03+1",
        ] {
            assert_eq!(parse_iso8601(bad), None, "{bad}");
        }
        assert_eq!(parse_http_date("yesterday"), None);
        assert_eq!(
            parse_retry_after("120", now()),
            Some(now() + Duration::from_secs(120))
        );
    }

    #[test]
    fn backoff_is_capped_full_jitter() {
        let p = Policy::default();
        assert_eq!(backoff(&p, 1, 0.999_999), p.retry_base.mul_f64(0.999_999));
        assert_eq!(backoff(&p, 1, 0.0), Duration::from_millis(100));
        assert!(backoff(&p, 3, 0.5) <= p.retry_base * 4);
        assert_eq!(backoff(&p, 40, 1.0), p.retry_max);
        for _ in 0..100 {
            let u = random_unit();
            assert!((0.0..1.0).contains(&u));
        }
    }

    #[test]
    fn created_body_needs_key_and_id() {
        let c = parse_created(r#"{"id":"x","key":"BUG-1","url":"u","fileElements":[{"title":"S","key":"Screenshot","url":"e","acceptsMultipleAttachments":true}]}"#).unwrap();
        assert_eq!(c.key, "BUG-1");
        assert_eq!(c.file_elements.len(), 1);
        assert!(parse_created(r#"{"id":"x","key":"BUG-2"}"#)
            .unwrap()
            .file_elements
            .is_empty());
        assert!(parse_created(r#"{"id":"x"}"#).is_none());
        assert!(parse_created(r#"{"id":"x","key":""}"#).is_none());
        assert!(parse_created("{trunc").is_none());
    }

    #[test]
    fn attachments_routed_by_key_and_multiplicity() {
        let els = vec![
            FileElement {
                key: "Screenshot".into(),
                title: None,
                url: "s".into(),
                accepts_multiple: true,
            },
            FileElement {
                key: "CrashLog".into(),
                title: None,
                url: "c".into(),
                accepts_multiple: false,
            },
        ];
        let r = route_attachments(
            &["Screenshot", "CrashLog", "Screenshot", "CrashLog", "Video"],
            &els,
        );
        assert_eq!(r[0], Ok("s".into()));
        assert_eq!(r[1], Ok("c".into()));
        assert_eq!(r[2], Ok("s".into()));
        assert!(r[3].as_ref().unwrap_err().contains("single attachment"));
        assert!(r[4]
            .as_ref()
            .unwrap_err()
            .contains("no file element \"Video\""));
        let none = route_attachments(&["Screenshot"], &[]);
        assert!(none[0].as_ref().unwrap_err().contains("no file elements"));
    }

    #[test]
    fn rate_window_spaces_requests() {
        let mut w = RateWindow::default();
        for i in 0..10 {
            assert_eq!(w.wait(10, 1000 + i), Duration::ZERO);
            w.record(10, 1000 + i);
        }
        assert_eq!(
            w.wait(10, 1010),
            Duration::from_millis(990 + RATE_MARGIN_MS)
        );
        assert_eq!(w.wait(10, 2000 + RATE_MARGIN_MS), Duration::ZERO);
        assert_eq!(w.wait(0, 1010), Duration::ZERO);
        assert_eq!(w.sent_ms.len(), 10);
    }
}

/// Property tests of everything here that reads what a server sends:
/// answers to creates, error bodies, statuses, rate-limit and retry
/// headers; and of the decisions built on them (backoff, the rate window,
/// routing). 512 cases each, 20 000 with `FIELDREPORT_FULL=1`.
#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_000_000)
    }

    /// Text near the shapes the date parsers look for, and anything at all.
    fn date_like() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,12})?(Z|z|[+-][0-9]{2}:?[0-9]{2}|[+-][0-9]{1,5})?",
            "[0-9]{1,4}-[0-9]{1,3}-[0-9]{1,3}T[0-9:.]{0,14}[Z+-]?[0-9:]{0,6}",
            "(Mon|Sun|Xyz), [0-9]{1,3} (Jan|Feb|Nov|Dec|Foo) [0-9]{3,5} [0-9]{1,2}:[0-9]{2}:[0-9]{2}( GMT| UTC|)",
            "[ \t]{0,2}[+-]?[0-9]{1,25}[ \t]{0,2}",
            "[ -~]{0,40}",
            "\\PC{0,30}",
        ]
    }

    fn created_json() -> impl Strategy<Value = String> {
        (
            "\\PC{0,12}",
            "\\PC{0,12}",
            prop::option::of("\\PC{0,20}"),
            prop::collection::vec(("[A-Za-z]{0,8}", "\\PC{0,20}", any::<bool>()), 0..3),
        )
            .prop_map(|(id, key, url, elements)| {
                let elements: Vec<serde_json::Value> = elements
                    .into_iter()
                    .map(|(k, u, m)| {
                        json!({"title": "T", "key": k, "url": u, "acceptsMultipleAttachments": m})
                    })
                    .collect();
                json!({"id": id, "key": key, "url": url, "fileElements": elements}).to_string()
            })
    }

    fn error_json() -> impl Strategy<Value = String> {
        (
            any::<u16>(),
            prop::option::of(any::<String>()),
            prop::collection::vec((any::<String>(), any::<String>()), 0..3),
        )
            .prop_map(|(status, description, params)| {
                let params: Vec<serde_json::Value> = params
                    .into_iter()
                    .map(|(n, d)| json!({"name": n, "description": d}))
                    .collect();
                json!({"status": status, "description": description, "invalidParameters": params})
                    .to_string()
            })
    }

    /// What a server (or a proxy in front of it) might send as a body:
    /// valid answers, those answers cut short, other JSON, anything.
    fn body_like() -> impl Strategy<Value = String> {
        let cut = |s: String, at: prop::sample::Index| {
            let bytes = s.as_bytes();
            String::from_utf8_lossy(&bytes[..at.index(bytes.len() + 1)]).into_owned()
        };
        prop_oneof![
            any::<String>(),
            created_json(),
            error_json(),
            (created_json(), any::<prop::sample::Index>()).prop_map(move |(s, i)| cut(s, i)),
            (error_json(), any::<prop::sample::Index>()).prop_map(move |(s, i)| cut(s, i)),
            "[\\[\\]{}\":,0-9a-z ]{0,40}",
            Just("null".to_string()),
            Just("{\"description\":\"\"}".to_string()),
        ]
    }

    fn answer(
        status: u16,
        body: String,
        retry_after: Option<String>,
        reset: Option<String>,
    ) -> Answer {
        Answer {
            status,
            retry_after,
            rate_limit_reset: reset,
            body,
        }
    }

    /// IMF-fixdate of `t` (the weekday is not checked by the parser).
    fn http_date(t: SystemTime) -> String {
        let iso = format_iso8601(t);
        let month = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ][iso[5..7].parse::<usize>().unwrap() - 1];
        format!(
            "Mon, {} {month} {} {} GMT",
            &iso[8..10],
            &iso[0..4],
            &iso[11..19]
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: crate::proptest_cases(),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn date_parsers_never_panic(s in date_like()) {
            let _ = parse_iso8601(&s);
            let _ = parse_http_date(&s);
            let _ = parse_retry_after(&s, now());
        }

        #[test]
        fn iso8601_round_trips(ms in 0u64..253_402_300_800_000) {
            let t = UNIX_EPOCH + Duration::from_millis(ms);
            let text = format_iso8601(t);
            prop_assert_eq!(parse_iso8601(&text), Some(t), "{}", text);
        }

        #[test]
        fn iso8601_offsets_shift_the_instant(ms in 0u64..253_402_300_800_000, hours in 0u64..14, minutes in 0u64..60, east in any::<bool>()) {
            let t = UNIX_EPOCH + Duration::from_millis(ms);
            let text = format_iso8601(t);
            let offset = Duration::from_secs(hours * 3600 + minutes * 60);
            // The same wall-clock reading with an offset is another instant.
            let sign = if east { '+' } else { '-' };
            let shifted = format!("{}{sign}{hours:02}:{minutes:02}", &text[..text.len() - 1]);
            let want = if east { t.checked_sub(offset) } else { t.checked_add(offset) };
            if let Some(want) = want.filter(|w| *w >= UNIX_EPOCH) {
                prop_assert_eq!(parse_iso8601(&shifted), Some(want), "{}", shifted);
            }
        }

        #[test]
        fn http_dates_round_trip(secs in 0u64..253_402_300_800) {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            let text = http_date(t);
            prop_assert_eq!(parse_http_date(&text), Some(t), "{}", &text);
            prop_assert_eq!(parse_retry_after(&text, now()), Some(t));
        }

        #[test]
        fn delta_seconds_wait_at_most_a_day(secs in any::<u64>(), pad in "[ \t]{0,2}") {
            let t = parse_retry_after(&format!("{pad}{secs}{pad}"), now()).expect("delta-seconds");
            prop_assert!(t >= now());
            prop_assert!(t <= now() + Duration::from_secs(24 * 3600));
        }

        #[test]
        fn created_parser_keeps_its_promise(body in body_like()) {
            if let Some(c) = parse_created(&body) {
                prop_assert!(!c.id.trim().is_empty() && !c.key.trim().is_empty(), "{:?}", c);
            }
        }

        #[test]
        fn created_answers_read_back(id in "\\PC{1,12}", key in "\\PC{1,12}", url in prop::option::of("\\PC{0,20}"), elements in prop::collection::vec(("[A-Za-z]{1,8}", "\\PC{0,20}", any::<bool>()), 0..3)) {
            let body = json!({
                "id": id, "key": key, "url": url,
                "fileElements": elements.iter().map(|(k, u, m)| json!({"key": k, "url": u, "acceptsMultipleAttachments": m})).collect::<Vec<_>>(),
            }).to_string();
            let parsed = parse_created(&body);
            if id.trim().is_empty() || key.trim().is_empty() {
                prop_assert!(parsed.is_none());
            } else {
                let c = parsed.expect("a complete answer parses");
                prop_assert_eq!(&c.id, &id);
                prop_assert_eq!(&c.key, &key);
                prop_assert_eq!(&c.url, &url);
                prop_assert_eq!(c.file_elements.len(), elements.len());
                for (e, (k, u, m)) in c.file_elements.iter().zip(&elements) {
                    prop_assert_eq!((&e.key, &e.url, e.accepts_multiple), (k, u, *m));
                }
            }
        }

        #[test]
        fn every_answer_gets_the_verdict_of_its_status(
            status in prop_oneof![any::<u16>(), 100u16..600, Just(429u16), Just(401u16)],
            body in body_like(),
            retry_after in prop::option::of(date_like()),
            reset in prop::option::of(date_like()),
        ) {
            let a = answer(status, body, retry_after, reset);
            let e = error_of(&a);
            prop_assert_eq!(e.status, Some(status));
            let v = judge(&Exchange::Answer(a.clone()), now());
            match status {
                200..=299 => prop_assert_eq!(v, Verdict::Success),
                401 | 403 => prop_assert!(matches!(v, Verdict::Unauthorized(_)), "{:?}", v),
                429 => match v {
                    Verdict::Retry { not_before: Some(t), .. } => {
                        // Never a wait in the past; the reset header at most an
                        // hour, delta-seconds at most a day (a date form is
                        // capped by the client, see `Inner::fail`).
                        prop_assert!(t >= now() || a.rate_limit_reset.is_some() || a.retry_after.is_some());
                        if a.retry_after.as_deref().and_then(|r| parse_http_date(r.trim())).is_none() {
                            prop_assert!(t <= now() + Duration::from_secs(24 * 3600), "{:?}", t);
                        }
                    }
                    other => prop_assert!(false, "429 gave {:?}", other),
                },
                408 | 500..=599 => prop_assert!(matches!(v, Verdict::Retry { .. }), "{:?}", v),
                _ => prop_assert!(matches!(v, Verdict::Permanent(_)), "{:?}", v),
            }
        }

        #[test]
        fn error_bodies_keep_the_servers_words(status in 400u16..600, description in any::<String>(), params in prop::collection::vec((any::<String>(), any::<String>()), 0..3)) {
            let body = json!({
                "status": status,
                "description": description,
                "invalidParameters": params.iter().map(|(n, d)| json!({"name": n, "description": d})).collect::<Vec<_>>(),
            }).to_string();
            let e = error_of(&answer(status, body, None, None));
            if description.trim().is_empty() {
                prop_assert!(!e.message.trim().is_empty());
            } else {
                prop_assert_eq!(&e.message, &description);
            }
            prop_assert_eq!(e.invalid_parameters.len(), params.len());
            for (p, (n, d)) in e.invalid_parameters.iter().zip(&params) {
                prop_assert_eq!((&p.name, &p.description), (n, d));
            }
        }

        #[test]
        fn unreadable_error_bodies_still_say_something(status in any::<u16>(), body in body_like()) {
            let e = error_of(&answer(status, body, None, None));
            prop_assert!(!e.message.trim().is_empty());
        }

        #[test]
        fn no_answer_is_always_retried(message in any::<String>(), sent in any::<bool>()) {
            let ex = if sent { Exchange::Transport(message.clone()) } else { Exchange::NotSent(message.clone()) };
            match judge(&ex, now()) {
                Verdict::Retry { error, not_before: None } => {
                    prop_assert_eq!(error.status, None);
                    prop_assert_eq!(error.message, message);
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }

        #[test]
        fn backoff_stays_within_its_bounds(
            attempts in any::<u32>(),
            unit in prop_oneof![0.0f64..1.0, prop::num::f64::NORMAL | prop::num::f64::ZERO | prop::num::f64::INFINITE],
            base_ms in 1u64..100_000,
            max_ms in 1u64..10_000_000,
        ) {
            let p = Policy {
                retry_base: Duration::from_millis(base_ms),
                retry_max: Duration::from_millis(max_ms.max(base_ms)),
                ..Policy::default()
            };
            let d = backoff(&p, attempts, unit);
            prop_assert!(d >= Duration::from_millis(100));
            prop_assert!(d <= p.retry_max.max(Duration::from_millis(100)));
        }

        #[test]
        fn the_rate_window_never_lets_more_through(per_sec in 1u32..20, gaps in prop::collection::vec(0u64..400, 1..120)) {
            let mut w = RateWindow::default();
            let mut now = 1_000_000u64;
            let mut sent = Vec::new();
            for gap in gaps {
                now += gap;
                now += w.wait(per_sec, now).as_millis() as u64;
                prop_assert_eq!(w.wait(per_sec, now), Duration::ZERO);
                w.record(per_sec, now);
                sent.push(now);
            }
            let n = per_sec as usize;
            for i in n..sent.len() {
                prop_assert!(sent[i] - sent[i - n] >= 1000 + RATE_MARGIN_MS, "{:?}", sent);
            }
        }

        #[test]
        fn routing_respects_keys_and_multiplicity(keys in prop::collection::vec("[A-C]", 0..8), elements in prop::collection::vec(("[A-D]", any::<bool>()), 0..4)) {
            let elements: Vec<FileElement> = elements
                .into_iter()
                .enumerate()
                .map(|(i, (key, multiple))| FileElement { url: format!("u{i}"), key, title: None, accepts_multiple: multiple })
                .collect();
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            let routes = route_attachments(&refs, &elements);
            prop_assert_eq!(routes.len(), keys.len());
            let mut used: Vec<&str> = Vec::new();
            for (key, route) in keys.iter().zip(&routes) {
                let first = elements.iter().find(|e| &e.key == key);
                match (first, route) {
                    (None, r) => prop_assert!(r.is_err()),
                    (Some(e), Ok(url)) => {
                        prop_assert_eq!(url, &e.url);
                        prop_assert!(e.accepts_multiple || !used.contains(&key.as_str()));
                        used.push(key);
                    }
                    (Some(e), Err(_)) => prop_assert!(!e.accepts_multiple && used.contains(&key.as_str())),
                }
            }
        }
    }
}
