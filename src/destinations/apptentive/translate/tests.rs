use super::*;
use crate::destinations::OutgoingAttachment;
use serde_json::json;
use std::io::Read;
use std::time::{Duration, UNIX_EPOCH};

fn cfg() -> ApptentiveConfig {
    ApptentiveConfig::new("http://app.test", "TOKEN").unwrap()
}

#[test]
fn the_record_carries_blocks_date_data_and_base64_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("shot.png");
    std::fs::write(&p, b"foobar!").unwrap();
    let atts = vec![
        OutgoingAttachment {
            key: "screenshot".into(),
            file_name: "shot.png".into(),
            content_type: "image/png".into(),
            path: p.clone(),
            size: 7,
            crash_log: false,
        },
        OutgoingAttachment {
            key: "screenshot".into(),
            file_name: "s2.png".into(),
            content_type: "image/png".into(),
            path: p,
            size: 7,
            crash_log: false,
        },
    ];
    let mut ctx = Map::new();
    ctx.insert(
        "device".into(),
        json!({"os_name": "iOS", "os_version": "17.1"}),
    );
    ctx.insert(
        "app_version".into(),
        json!({"version": "3.2", "build_number": "88"}),
    );
    ctx.insert("client".into(), json!({"language": "Rust"}));
    ctx.insert("user".into(), json!({"name": "Ann"}));
    let fields = vec![("plan".to_string(), json!("pro"))];
    let r = Outgoing {
        client_id: "uuid-1",
        kind: ReportKind::Crash,
        summary: "Crashed",
        description: Some("on launch"),
        submitter: Some("ann@example.com"),
        fields: &fields,
        context: &ctx,
        attachments: &atts,
        submitted_at: UNIX_EPOCH + Duration::from_secs(1_332_534_389),
    };
    let req = record_request(&cfg(), &r).unwrap();
    assert_eq!(req.url, "http://app.test/records");
    assert_eq!(req.header("authorization"), Some("OAuth TOKEN"));
    assert!(!format!("{req:?}").contains("TOKEN"));
    let mut bytes = Vec::new();
    req.body.reader().read_to_end(&mut bytes).unwrap();
    assert_eq!(
        req.header("content-length"),
        Some(bytes.len().to_string().as_str())
    );
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        v,
        json!({
            "feedback": {"feedback": "Crashed\n\non launch", "type": "crash"},
            "device": {"os_name": "iOS", "os_version": "17.1"},
            "app_version": {"version": "3.2", "build_number": "88"},
            "client": {"language": "Rust"},
            "user": {"name": "Ann", "email": "ann@example.com"},
            "data": {"plan": "pro", "client_id": "uuid-1"},
            "date": "03/23/2012 08:26PM+0000",
            "file": {"screenshot": "Zm9vYmFyIQ==", "screenshot_2": "Zm9vYmFyIQ=="}
        })
    );
    assert_eq!(check_submit(&cfg(), &r).unwrap(), bytes.len() as u64);
    let small = cfg().with_max_record_bytes(1024).unwrap();
    let big = vec![OutgoingAttachment {
        size: 5000,
        ..atts[0].clone()
    }];
    let r2 = Outgoing {
        attachments: &big,
        ..r.clone()
    };
    assert!(matches!(
        check_submit(&small, &r2),
        Err(TranslateError::TooLarge { limit: 1024, .. })
    ));
    assert!(record_request(&small, &r2).is_err());
}

#[test]
fn answers_mean_what_apptentive_documents() {
    assert_eq!(
        read_record_answer(
            201,
            &[],
            br#"{"id":"4f6cdc75a902915fa80002f3","summary":"x"}"#
        ),
        Verdict::Delivered {
            reference: "4f6cdc75a902915fa80002f3".into()
        }
    );
    assert!(matches!(
        read_record_answer(201, &[], b"{}"),
        Verdict::Retry {
            maybe_acted: true,
            ..
        }
    ));
    assert!(matches!(
        read_record_answer(401, &[], b"{}"),
        Verdict::Pause { .. }
    ));
    assert_eq!(
        read_record_answer(422, &[], br#"{"errors":["feedback can't be blank"]}"#),
        Verdict::Dead {
            status: 422,
            messages: vec!["feedback can't be blank".into()]
        }
    );
    assert_eq!(
        read_record_answer(422, &[], b"Unprocessable: no feedback"),
        Verdict::Dead {
            status: 422,
            messages: vec!["Unprocessable: no feedback".into()]
        }
    );
    assert!(matches!(
        read_record_answer(500, &[], b""),
        Verdict::Retry {
            maybe_acted: false,
            ..
        }
    ));
}
