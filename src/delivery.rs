//! Delivery decisions, free of I/O: what a server answer means, when to try
//! again, which attachment goes to which file element. The flush loop in
//! `client.rs` does the I/O and asks these functions what to do.

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

/// The error of an answer: the server's description when its body has one.
pub(crate) fn error_of(answer: &Answer) -> DeliveryError {
    let parsed: Option<ErrorBody> = serde_json::from_str(&answer.body).ok();
    let (message, invalid_parameters) = match parsed {
        Some(ErrorBody {
            description: Some(d),
            invalid_parameters,
        }) => (d, invalid_parameters),
        Some(ErrorBody {
            description: None,
            invalid_parameters,
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

/// A file element offered by the server for a created feedback.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub(crate) struct FileElement {
    pub key: String,
    #[serde(default)]
    pub title: Option<String>,
    pub url: String,
    #[serde(rename = "acceptsMultipleAttachments", default)]
    pub accepts_multiple: bool,
}

/// The parts of a 201 Create Feedback answer that delivery needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Created {
    pub id: String,
    pub key: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(rename = "fileElements", default)]
    pub file_elements: Vec<FileElement>,
}

/// Reads a 201 body; `None` when it lacks the id or key.
pub(crate) fn parse_created(body: &str) -> Option<Created> {
    let created: Created = serde_json::from_str(body).ok()?;
    if created.key.trim().is_empty() || created.id.trim().is_empty() {
        return None;
    }
    Some(created)
}

/// For each attachment (by element key, in order), the element URL to post
/// to, or the reason it is rejected: the server offers no such element, or
/// the element takes a single file and an earlier attachment has it.
pub(crate) fn route_attachments(
    element_keys: &[&str],
    elements: &[FileElement],
) -> Vec<Result<String, String>> {
    let mut taken: Vec<&str> = Vec::new();
    element_keys
        .iter()
        .map(|key| {
            let Some(el) = elements.iter().find(|e| e.key == *key) else {
                let offered: Vec<&str> = elements.iter().map(|e| e.key.as_str()).collect();
                return Err(if offered.is_empty() {
                    format!("the server offers no file elements for this feedback, so {key:?} cannot be uploaded")
                } else {
                    format!(
                        "the server offers no file element {key:?} (offered: {})",
                        offered.join(", ")
                    )
                });
            };
            if !el.accepts_multiple && taken.contains(key) {
                return Err(format!(
                    "file element {key:?} accepts a single attachment and an earlier one has it"
                ));
            }
            taken.push(key);
            Ok(el.url.clone())
        })
        .collect()
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
        let oldest = self.sent_ms[self.sent_ms.len() - per_sec as usize];
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
