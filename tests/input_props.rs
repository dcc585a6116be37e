//! Property tests of what an app hands to `submit`, through the public API:
//! arbitrary summaries, descriptions, submitters, extra fields (names and
//! JSON values), attachment names and content types. Each input is either
//! refused with `InvalidInput` and leaves the outbox exactly as it was, or
//! accepted, read back identical (the summary trimmed, as documented), and
//! delivered to the sandbox with exactly the fields given. Whether it is
//! accepted is checked against an independent model of the documented
//! rules, so a refusal must also be the right one.
//!
//! 256 cases normally, 2048 with `FIELDREPORT_FULL=1`; proptest prints a
//! minimal failing input, and `PROPTEST_CASES` overrides the count.

mod common;
mod support;

use std::path::Path;
use std::time::Duration;

use fieldreport::sandbox::Sandbox;
use fieldreport::{Attachment, Client, Error, Feedback, ReportState};
use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestCaseError, TestRunner};
use serde_json::{Map, Value};

#[derive(Debug, Clone)]
struct Input {
    summary: String,
    description: Option<String>,
    submitter: Option<String>,
    fields: Vec<(String, Value)>,
    attachment: Option<(String, Option<String>)>,
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>(),
        3 => "[ -~]{0,40}",
        1 => "[ \t]{0,3}[a-z]{0,5}[\n\r\x00]?[a-z]{0,5}[ \t]{0,3}",
        1 => "\\PC{0,20}",
        1 => Just(String::new()),
    ]
}

/// Lengths on both sides of a limit, as strings of one repeated character.
fn around(limit: usize, c: char) -> impl Strategy<Value = String> {
    (limit - 3..=limit + 3).prop_map(move |n| c.to_string().repeat(n))
}

fn float() -> impl Strategy<Value = f64> {
    // Only floats that JSON text carries exactly (serde_json's default
    // parser may round the last bit of others, on either side).
    any::<f64>().prop_filter("finite, round-trips", |f| {
        f.is_finite()
            && serde_json::to_string(f)
                .ok()
                .and_then(|s| serde_json::from_str::<f64>(&s).ok())
                == Some(*f)
    })
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        2 => Just(Value::Null),
        2 => any::<bool>().prop_map(Value::from),
        2 => any::<i64>().prop_map(Value::from),
        2 => any::<u64>().prop_map(Value::from),
        2 => float().prop_map(Value::from),
        4 => text().prop_map(Value::from),
        1 => around(65_534, 'v').prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z]{1,6}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z_]{1,12}",
        2 => text(),
        1 => Just("summary".to_string()),
        1 => Just("description".to_string()),
        1 => around(128, 'n'),
    ]
}

fn input() -> impl Strategy<Value = Input> {
    (
        prop_oneof![4 => text(), 1 => around(1000, 's')],
        prop::option::of(prop_oneof![4 => text(), 1 => around(100_000, 'd')]),
        prop::option::of(prop_oneof![4 => text(), 1 => around(320, 'u')]),
        prop::collection::vec((field_name(), json()), 0..4),
        prop::option::of((
            prop_oneof![3 => "[a-zA-Z0-9 ._\"-]{1,20}", 1 => text(), 1 => around(255, 'f')],
            prop::option::of(prop_oneof![
                2 => "[a-z]{1,10}/[a-z0-9.+-]{1,15}",
                1 => text()
            ]),
        )),
    )
        .prop_map(
            |(summary, description, submitter, fields, attachment)| Input {
                summary,
                description,
                submitter,
                fields,
                attachment,
            },
        )
}

/// The documented media type rule: `type/subtype` of HTTP token
/// characters, then optional `;` parameters without control characters;
/// nothing around it; at most 200 bytes.
fn media_type_ok(t: &str) -> bool {
    const TCHAR: &str = "!#$%&'*+-.^_`|~";
    let is_token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || TCHAR.as_bytes().contains(&b))
    };
    if t.len() > 200 || t.starts_with(char::is_whitespace) || t.ends_with(char::is_whitespace) {
        return false;
    }
    let mut parts = t.splitn(2, ';');
    let essence = parts.next().unwrap_or("");
    if parts
        .next()
        .is_some_and(|p| p.chars().any(char::is_control))
    {
        return false;
    }
    let essence = essence.trim_end();
    match essence.split_once('/') {
        Some((a, b)) => is_token(a) && is_token(b),
        None => false,
    }
}

/// A NUL in any string of a JSON value, keys included.
fn nul_anywhere(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(nul_anywhere),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || nul_anywhere(v)),
        _ => false,
    }
}

/// The documented rules, written again independently of the library.
fn should_accept(i: &Input) -> bool {
    let text_ok = |s: &str, max: usize| !s.contains('\0') && s.chars().count() <= max;
    if i.summary.trim().is_empty() || i.summary.contains(['\n', '\r']) {
        return false;
    }
    if !text_ok(&i.summary, 1000) {
        return false;
    }
    if let Some(d) = &i.description {
        if !text_ok(d, 100_000) {
            return false;
        }
    }
    if let Some(s) = &i.submitter {
        if s.trim().is_empty() || !text_ok(s, 320) {
            return false;
        }
    }
    for (k, (name, value)) in i.fields.iter().enumerate() {
        if name.trim().is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return false;
        }
        if i.fields[..k].iter().any(|(n, _)| n == name) {
            return false;
        }
        // The standard fields have their own places.
        if ["summary", "description", "submitter"].contains(&name.as_str()) {
            return false;
        }
        if value.to_string().len() > 64 * 1024 {
            return false;
        }
        if nul_anywhere(value) {
            return false;
        }
    }
    if let Some((name, content_type)) = &i.attachment {
        if name.trim().is_empty()
            || name.len() > 255
            || name.contains(['/', '\\', '\0'])
            || name.chars().any(char::is_control)
        {
            return false;
        }
        if let Some(t) = content_type {
            if !media_type_ok(t) {
                return false;
            }
        }
    }
    true
}

/// The JSON object the server must receive for an accepted input.
fn expected_body(i: &Input) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("summary".into(), Value::from(i.summary.trim()));
    if let Some(d) = &i.description {
        m.insert("description".into(), Value::from(d.as_str()));
    }
    if let Some(s) = &i.submitter {
        m.insert("submitter".into(), Value::from(s.as_str()));
    }
    for (k, v) in &i.fields {
        m.insert(k.clone(), v.clone());
    }
    m
}

/// How one input ended.
#[derive(Clone, Copy)]
enum Outcome {
    Refused,
    Delivered,
}

fn check(client: &Client, sb: &Sandbox, dir: &Path, i: &Input) -> Result<Outcome, TestCaseError> {
    let mut f = Feedback {
        summary: i.summary.clone(),
        description: i.description.clone(),
        submitter: i.submitter.clone(),
        fields: i.fields.clone(),
        attachments: Vec::new(),
    };
    let bytes = b"attachment bytes".to_vec();
    if let Some((name, content_type)) = &i.attachment {
        let mut a = Attachment::from_bytes("Screenshot", name.clone(), bytes.clone());
        a.content_type = content_type.clone();
        f = f.attach(a);
    }
    let before = common::snapshot(client, dir);
    let created_before = sb.feedback().len();
    let accept = should_accept(i);
    let outcome;
    match client.submit(f) {
        Err(e) => {
            outcome = Outcome::Refused;
            prop_assert!(
                matches!(&e, Error::InvalidInput { reason } if !reason.is_empty()),
                "refused with {e:?}"
            );
            prop_assert!(!accept, "refused, but the rules accept it: {e}");
            prop_assert_eq!(
                common::snapshot(client, dir),
                before,
                "a refusal changed the outbox"
            );
        }
        Ok(id) => {
            prop_assert!(accept, "accepted, but the rules refuse it");
            let status = client.report(id).expect("report");
            prop_assert_eq!(&status.summary, i.summary.trim());
            if let Some((name, content_type)) = &i.attachment {
                let a = &status.attachments[0];
                prop_assert_eq!(&a.file_name, name);
                if let Some(t) = content_type {
                    prop_assert_eq!(&a.content_type, t);
                }
                prop_assert_eq!(a.size, bytes.len() as u64);
            }
            let r = client.flush(Duration::from_secs(30)).expect("flush");
            prop_assert_eq!(r.pending, 0, "{:?}", r);
            let want = expected_body(i);
            let status = client.report(id).expect("report");
            let created = sb.feedback();
            // Every accepted input is delivered: the summary that the server
            // requires is checked at submit and cannot be replaced by a field.
            outcome = Outcome::Delivered;
            prop_assert_eq!(status.state, ReportState::Delivered);
            prop_assert_eq!(created.len(), created_before + 1);
            let body = created.last().expect("created").body.clone();
            prop_assert_eq!(&body, &Value::Object(want), "the server got other fields");
            if let Some((name, content_type)) = &i.attachment {
                let u = sb.uploads().last().cloned().expect("an upload");
                prop_assert_eq!(&u.file_name, &name.replace('"', "%22"));
                if let Some(t) = content_type {
                    prop_assert_eq!(&u.content_type, t);
                }
                prop_assert_eq!(u.sha256_hex, common::sha256_hex(&bytes));
            }
            // Keep the outbox small: each case's snapshot lists it all.
            client.purge(id).expect("purge");
        }
    }
    Ok(outcome)
}

#[test]
fn any_feedback_input_is_refused_unchanged_or_delivered_identical() {
    let sb = common::sandbox_unlimited();
    let tmp = common::tempdir();
    let mut cfg = common::config(tmp.path(), &sb);
    cfg.policy.max_requests_per_sec = 0;
    let client = Client::open(cfg).expect("open");
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(support::scale(256, 2048));
    let mut runner = TestRunner::new(PropConfig {
        cases,
        failure_persistence: None,
        ..PropConfig::default()
    });
    // Refused, delivered (per the last run of each case).
    let counts = std::cell::Cell::new([0u32; 2]);
    let result = runner.run(&input(), |i| {
        let outcome = check(&client, &sb, tmp.path(), &i)?;
        let mut c = counts.get();
        c[outcome as usize] += 1;
        counts.set(c);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let [refused, delivered] = counts.get();
    support::figures(
        "input_props",
        &[
            ("cases", cases.to_string()),
            ("accepted", delivered.to_string()),
            ("delivered", delivered.to_string()),
            ("dead", "0".into()),
            ("refused_invalid_input", refused.to_string()),
            ("lost", "0".into()),
        ],
    );
}
