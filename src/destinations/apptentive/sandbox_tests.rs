//! The Apptentive sandbox's own tests: raw HTTP against a running sandbox.

use crate::destinations::abc::sandbox_tests::raw;
use crate::sandbox::{Fault, Sandbox, SandboxConfig, SandboxKind};
use serde_json::{json, Value};

fn start() -> Sandbox {
    Sandbox::start(SandboxConfig::apptentive()).unwrap()
}

fn post(sb: &Sandbox, auth: Option<&str>, body: &Value) -> (u16, Value, String) {
    let mut h = vec![("Content-Type", "application/json")];
    let value;
    if let Some(a) = auth {
        value = a.to_string();
        h.push(("Authorization", value.as_str()));
    }
    let a = raw(sb, "POST", "/records", &h, body.to_string().as_bytes()).unwrap();
    let v = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
    (a.status, v, a.head)
}

#[test]
fn a_record_is_created_with_its_files_decoded() {
    let sb = start();
    assert_eq!(sb.kind(), SandboxKind::Apptentive);
    assert_eq!(sb.base_url(), format!("http://127.0.0.1:{}", sb.port()));
    let (status, v, head) = post(
        &sb,
        Some("OAuth sandbox-token"),
        &json!({
            "feedback": {"feedback": "Great app!", "type": "praise"},
            "user": {"name": "Ann"}, "device": {"os_name": "iOS"},
            "date": "03/23/2012 08:26PM+0000",
            "file": {"screenshot": "Zm9vYmFy"}
        }),
    );
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 24);
    assert!(head.contains(&format!("/records/{id}")), "Location: {head}");
    assert_eq!(v["feedback"]["type"], "praise");
    let fb = &sb.feedback()[0];
    assert_eq!(fb.id, id);
    assert_eq!(fb.body["file"]["screenshot"]["size"], 6);
    let up = &sb.uploads()[0];
    assert_eq!(
        (up.feedback_key.as_str(), up.element_key.as_str(), up.size),
        (id.as_str(), "screenshot", 6)
    );
    let state = raw(&sb, "GET", "/_sandbox/state", &[], b"").unwrap().body;
    let state: Value = serde_json::from_slice(&state).unwrap();
    assert_eq!(state["kind"], "apptentive");
}

#[test]
fn the_token_is_checked_and_401_answered() {
    let sb = start();
    let body = json!({"feedback": {"feedback": "x"}});
    assert_eq!(post(&sb, None, &body).0, 401);
    assert_eq!(post(&sb, Some("OAuth wrong"), &body).0, 401);
    assert_eq!(post(&sb, Some("Bearer sandbox-token"), &body).0, 401);
    let a = raw(
        &sb,
        "POST",
        "/records?oauth_token=sandbox-token",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(a.status, 201, "the documented query parameter works too");
    assert_eq!(sb.feedback().len(), 1);
}

#[test]
fn incomplete_records_are_422_with_the_reason() {
    let sb = start();
    let auth = Some("OAuth sandbox-token");
    for (body, why) in [
        (json!({"user": {"name": "x"}}), "feedback can't be blank"),
        (
            json!({"feedback": {"feedback": "x"}, "device": "iOS"}),
            "device must be an object",
        ),
        (
            json!({"feedback": {"feedback": "x"}, "date": "2012-03-23"}),
            "date must be in %m/%d/%Y %I:%M%p%z format",
        ),
        (
            json!({"feedback": {"feedback": "x"}, "file": {"log": "not base64!"}}),
            "file log is not valid base64",
        ),
        (json!([1]), "The record must be a JSON object."),
    ] {
        let (status, v, _) = post(&sb, auth, &body);
        assert_eq!((status, v), (422, json!({"errors": [why]})), "{body}");
    }
    let a = raw(
        &sb,
        "POST",
        "/records",
        &[
            ("Authorization", "OAuth sandbox-token"),
            ("Content-Type", "text/plain"),
        ],
        b"x",
    )
    .unwrap();
    assert_eq!(a.status, 415);
    let a = raw(
        &sb,
        "POST",
        "/records",
        &[
            ("Authorization", "OAuth sandbox-token"),
            ("Content-Type", "application/json"),
        ],
        b"{x",
    )
    .unwrap();
    assert_eq!(a.status, 400);
    assert_eq!(raw(&sb, "GET", "/records", &[], b"").unwrap().status, 405);
    assert_eq!(raw(&sb, "POST", "/surveys", &[], b"").unwrap().status, 404);
    assert!(sb.feedback().is_empty());
}

#[test]
fn the_record_size_limit_is_413() {
    let sb = Sandbox::start(SandboxConfig {
        apptentive_max_record_bytes: 1000,
        ..SandboxConfig::apptentive()
    })
    .unwrap();
    let (status, _, _) = post(
        &sb,
        Some("OAuth sandbox-token"),
        &json!({"feedback": {"feedback": "x".repeat(2000)}}),
    );
    assert_eq!(status, 413);
}

#[test]
fn every_fault_kind_applies_to_apptentive() {
    let sb = start();
    let body = json!({"feedback": {"feedback": "x"}});
    let auth = Some("OAuth sandbox-token");
    sb.inject(Fault::status(500));
    let (s, v, _) = post(&sb, auth, &body);
    assert_eq!((s, v["errors"].is_array()), (500, true));
    sb.inject(Fault::Body {
        status: 422,
        body: "plain words".into(),
    });
    assert_eq!(post(&sb, auth, &body).0, 422);
    sb.inject(Fault::Drop);
    assert!(raw(
        &sb,
        "POST",
        "/records",
        &[
            ("Authorization", "OAuth sandbox-token"),
            ("Content-Type", "application/json")
        ],
        body.to_string().as_bytes()
    )
    .is_none());
    assert!(sb.feedback().is_empty());
    sb.inject(Fault::ActThenDrop);
    assert!(raw(
        &sb,
        "POST",
        "/records",
        &[
            ("Authorization", "OAuth sandbox-token"),
            ("Content-Type", "application/json")
        ],
        body.to_string().as_bytes()
    )
    .is_none());
    assert_eq!(sb.feedback().len(), 1);
    sb.inject(Fault::Delay(std::time::Duration::from_millis(200)));
    assert_eq!(post(&sb, auth, &body).0, 201);
    sb.inject(Fault::rate_limited(2));
    let a = raw(&sb, "POST", "/records", &[], b"").unwrap();
    assert_eq!(a.status, 429);
    assert!(a.head.contains("Retry-After: 2"));
}
