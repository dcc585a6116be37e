//! The delivery decisions, tested without a network.

use super::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::Policy;

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
