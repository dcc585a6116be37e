//! Property tests of everything here that reads what a server sends:
//! answers to creates, error bodies, statuses, rate-limit and retry
//! headers; and of the decisions built on them (backoff, the rate window,
//! routing). 512 cases each, 20 000 with `FIELDREPORT_FULL=1`.

use super::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::Policy;
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

fn answer(status: u16, body: String, retry_after: Option<String>, reset: Option<String>) -> Answer {
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
