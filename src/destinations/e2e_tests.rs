//! End to end without the engine: each translator's requests, sent with
//! ureq to the matching sandbox, and the real answers read back.

use super::abc::config::{AbcConfig, ImageMode};
use super::abc::translate::*;
use super::apptentive::config::ApptentiveConfig;
use super::apptentive::translate::{read_record_answer, record_request};
use super::body::Outbound;
use super::{Outgoing, OutgoingAttachment, Verdict};
use crate::report::ReportKind;
use crate::sandbox::{Fault, Sandbox, SandboxConfig};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

/// Sends one request; `None` when no answer came.
fn send(req: &Outbound) -> Option<(u16, Vec<u8>)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut b = ureq::http::Request::builder()
        .method(req.method.as_str())
        .uri(&req.url);
    for (n, v) in &req.headers {
        b = b.header(n, v);
    }
    let reader = req.body.reader();
    let result = if req.body.is_empty() && req.method == "GET" {
        agent.run(b.body(()).unwrap())
    } else {
        agent.run(b.body(ureq::SendBody::from_owned_reader(reader)).unwrap())
    };
    let mut resp = result.ok()?;
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_vec().ok()?;
    Some((status, body))
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR-sample-image-bytes";

fn file(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn attachment(path: std::path::PathBuf, name: &str, ct: &str, crash: bool) -> OutgoingAttachment {
    let size = std::fs::metadata(&path).unwrap().len();
    OutgoingAttachment {
        key: if crash {
            "crash_log".into()
        } else {
            "attachment".into()
        },
        file_name: name.into(),
        content_type: ct.into(),
        path,
        size,
        crash_log: crash,
    }
}

fn gz(dir: &Path, lines: usize) -> std::path::PathBuf {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for i in 0..lines {
        writeln!(e, "#{i} 0x{i:08x} in com.example.App.main(App.kt:{i})").unwrap();
    }
    file(dir, "crash.log.gz", &e.finish().unwrap())
}

fn abc_cfg(sb: &Sandbox, key: &str) -> AbcConfig {
    AbcConfig::new(
        &sb.base_url(),
        "1",
        "1",
        key,
        &[
            ("description", "description"),
            ("submitter", "submitter"),
            ("crash_log", "crash_log"),
            ("client_id", "client_id"),
            ("images", "images"),
            ("context.device.os_name", "os"),
        ],
    )
    .unwrap()
}

#[test]
fn abc_end_to_end() {
    let sb = Sandbox::start(SandboxConfig::abc()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = abc_cfg(&sb, "sandbox-key");
    let atts = vec![
        attachment(
            file(dir.path(), "shot.png", PNG),
            "shot.png",
            "image/png",
            false,
        ),
        attachment(
            file(dir.path(), "notes.txt", b"plain notes"),
            "notes.txt",
            "text/plain",
            false,
        ),
    ];
    let mut ctx = Map::new();
    ctx.insert("device".into(), json!({"os_name": "Android"}));
    let fields = vec![
        ("rating".to_string(), json!(5)),
        ("tags".to_string(), json!(["ui"])),
    ];
    let report = Outgoing {
        client_id: "11111111-2222-4333-8444-555555555555",
        kind: ReportKind::Feedback,
        summary: "Button is off",
        description: Some("By 3px"),
        submitter: Some("ann@example.com"),
        fields: &fields,
        context: &ctx,
        attachments: &atts,
        submitted_at: SystemTime::now(),
    };

    // Multipart: the image goes, the text file is rejected, the feedback is delivered.
    let plans = plan_attachments(&cfg, &atts);
    assert_eq!(plans[0], AttachmentPlan::Image);
    assert!(matches!(&plans[1], AttachmentPlan::Rejected { .. }));
    let images: Vec<&OutgoingAttachment> = atts
        .iter()
        .zip(&plans)
        .filter(|(_, p)| **p == AttachmentPlan::Image)
        .map(|(a, _)| a)
        .collect();
    let req = create_request(&cfg, &report, None, &images, &[]).unwrap();
    let (status, body) = send(&req).unwrap();
    assert_eq!(
        read_create_answer(status, &[], &body),
        Verdict::Delivered {
            reference: "1".into()
        }
    );
    let fb = &sb.feedback()[0];
    assert_eq!(fb.body["message"], "Button is off");
    assert_eq!(fb.body["rating"], 5, "a JSON part arrives as a number");
    assert_eq!(fb.body["tags"], json!(["ui"]));
    assert_eq!(fb.body["os"], "Android");
    assert_eq!(fb.body["images"].as_array().unwrap().len(), 1);
    let up = &sb.uploads()[0];
    assert_eq!(
        up.sha256_hex,
        crate::sandbox::http::hex(&Sha256::digest(PNG))
    );

    // Found again by its client id.
    let search = search_request(&cfg, report.client_id).unwrap();
    let (status, body) = send(&search).unwrap();
    assert_eq!(
        read_search_answer(&cfg, report.client_id, status, &body),
        SearchVerdict::Found { id: "1".into() }
    );

    // A crash report: its log's head and tail in the TEXT field, within 1 MiB.
    let crash_atts = vec![attachment(
        gz(dir.path(), 60_000),
        "crash.log.gz",
        "application/gzip",
        true,
    )];
    let crash = Outgoing {
        kind: ReportKind::Crash,
        summary: "SIGSEGV",
        attachments: &crash_atts,
        client_id: "22222222-2222-4333-8444-555555555555",
        ..report.clone()
    };
    assert_eq!(
        plan_attachments(&cfg, &crash_atts),
        vec![AttachmentPlan::CrashLog]
    );
    let budget = crash_budget(&cfg, &crash, &[]).unwrap();
    let text = crash_log_text(
        gunzip(std::fs::File::open(&crash_atts[0].path).unwrap()),
        budget,
    )
    .unwrap();
    assert!(text.cut_bytes > 0, "a 3 MB log is cut");
    let req = create_json_request(&cfg, &crash, Some(&text), &[]).unwrap();
    let (status, body) = send(&req).unwrap();
    assert_eq!(
        read_create_answer(status, &[], &body),
        Verdict::Delivered {
            reference: "2".into()
        }
    );
    let stored = sb.feedback()[1].body["crash_log"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(stored.starts_with("#0 0x00000000") && stored.contains("bytes cut from the middle"));
    assert!(stored.trim_end().ends_with("App.kt:59999)"));

    // Presigned: upload, then the object URL in a JSON create.
    let pcfg = abc_cfg(&sb, "sandbox-key").with_image_mode(ImageMode::Presigned);
    let (status, body) = send(&upload_url_request(&pcfg, &atts[0])).unwrap();
    let presigned = read_upload_url_answer(status, &[], &body).unwrap();
    let (status, body) = send(&put_image_request(&presigned, &atts[0], pcfg.timeout)).unwrap();
    assert!(read_put_answer(status, &body).is_ok());
    let third = Outgoing {
        client_id: "33333333-2222-4333-8444-555555555555",
        ..report.clone()
    };
    let req = create_request(&pcfg, &third, None, &images, &[object_url(&presigned)]).unwrap();
    assert!(
        req.url.ends_with("/feedbacks"),
        "presigned mode creates with JSON"
    );
    let (status, body) = send(&req).unwrap();
    assert_eq!(
        read_create_answer(status, &[], &body),
        Verdict::Delivered {
            reference: "3".into()
        }
    );
    assert_eq!(
        sb.feedback()[2].body["images"],
        json!([object_url(&presigned)])
    );
}

#[test]
fn abc_failure_paths() {
    let sb = Sandbox::start(SandboxConfig::abc()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ctx = Map::new();
    let report = Outgoing {
        client_id: "44444444-2222-4333-8444-555555555555",
        kind: ReportKind::Feedback,
        summary: "s",
        description: None,
        submitter: None,
        fields: &[],
        context: &ctx,
        attachments: &[],
        submitted_at: SystemTime::now(),
    };
    // 403 pauses.
    let bad_key = abc_cfg(&sb, "not-the-key");
    let (status, body) = send(&create_json_request(&bad_key, &report, None, &[]).unwrap()).unwrap();
    assert!(
        matches!(read_create_answer(status, &[], &body), Verdict::Pause { reason } if reason.contains("403"))
    );
    // 400 for an unknown field: dead with the server's message.
    let cfg = abc_cfg(&sb, "sandbox-key");
    let fields = vec![("nope".to_string(), json!("x"))];
    let r = Outgoing {
        fields: &fields,
        ..report.clone()
    };
    let (status, body) = send(&create_json_request(&cfg, &r, None, &[]).unwrap()).unwrap();
    assert_eq!(
        read_create_answer(status, &[], &body),
        Verdict::Dead {
            status: 400,
            messages: vec!["invalid field key: nope".into()]
        }
    );
    // 400 with a message array (a fault replaying the DTO answer): every message kept.
    sb.inject(Fault::Body {
        status: 400,
        body: r#"{"message":["a must be x","b must be y"],"error":"Bad Request","statusCode":400}"#
            .into(),
    });
    let (status, body) = send(&create_json_request(&cfg, &report, None, &[]).unwrap()).unwrap();
    assert_eq!(
        read_create_answer(status, &[], &body),
        Verdict::Dead {
            status: 400,
            messages: vec!["a must be x".into(), "b must be y".into()]
        }
    );
    // 413: an image over 1 MiB sent anyway (the plan would have rejected it).
    let mut big = PNG.to_vec();
    big.resize(2 * 1024 * 1024, 7);
    let a = attachment(
        file(dir.path(), "big.png", &big),
        "big.png",
        "image/png",
        false,
    );
    assert!(matches!(
        &plan_attachments(&cfg, std::slice::from_ref(&a))[0],
        AttachmentPlan::Rejected { .. }
    ));
    let (status, body) =
        send(&create_multipart_request(&cfg, &report, None, &[&a]).unwrap()).unwrap();
    assert_eq!(
        read_create_answer(status, &[], &body),
        Verdict::Dead {
            status: 413,
            messages: vec!["request file too large".into()]
        }
    );
    // 5xx retries; a lost answer after acting is found by the search.
    sb.inject(Fault::status(502));
    let (status, body) = send(&create_json_request(&cfg, &report, None, &[]).unwrap()).unwrap();
    assert!(matches!(
        read_create_answer(status, &[], &body),
        Verdict::Retry {
            maybe_acted: false,
            ..
        }
    ));
    sb.inject(Fault::ActThenDrop);
    assert!(send(&create_json_request(&cfg, &report, None, &[]).unwrap()).is_none());
    assert!(matches!(
        Verdict::no_answer(true, "connection closed"),
        Verdict::Retry {
            maybe_acted: true,
            ..
        }
    ));
    let (status, body) = send(&search_request(&cfg, report.client_id).unwrap()).unwrap();
    assert!(matches!(
        read_search_answer(&cfg, report.client_id, status, &body),
        SearchVerdict::Found { .. }
    ));
    let sb_count = sb.feedback().len();
    assert_eq!(sb_count, 1, "only the act-then-drop create exists");
}

#[test]
fn apptentive_end_to_end() {
    let sb = Sandbox::start(SandboxConfig::apptentive()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = ApptentiveConfig::new(&sb.base_url(), "sandbox-token").unwrap();
    let big: Vec<u8> = (0..3_000_001u32).map(|i| (i % 253) as u8).collect();
    let atts = vec![
        attachment(
            file(dir.path(), "shot.png", PNG),
            "shot.png",
            "image/png",
            false,
        ),
        attachment(
            file(dir.path(), "notes.bin", &big),
            "notes.bin",
            "application/octet-stream",
            false,
        ),
        attachment(
            gz(dir.path(), 1000),
            "crash.log.gz",
            "application/gzip",
            true,
        ),
    ];
    let mut ctx = Map::new();
    ctx.insert(
        "device".into(),
        json!({"os_name": "iOS", "model": "iPhone15,2"}),
    );
    ctx.insert("app_version".into(), json!({"version": "1.2.3"}));
    let fields = vec![("plan".to_string(), json!("pro"))];
    let report = Outgoing {
        client_id: "55555555-2222-4333-8444-555555555555",
        kind: ReportKind::Crash,
        summary: "Crash on launch",
        description: Some("every time"),
        submitter: Some("bob@example.com"),
        fields: &fields,
        context: &ctx,
        attachments: &atts,
        submitted_at: SystemTime::now(),
    };
    let req = record_request(&cfg, &report).unwrap();
    let (status, body) = send(&req).unwrap();
    let verdict = read_record_answer(status, &[], &body);
    let Verdict::Delivered { reference } = verdict else {
        panic!("{verdict:?}: {}", String::from_utf8_lossy(&body))
    };
    let rec = &sb.feedback()[0];
    assert_eq!(rec.id, reference);
    assert_eq!(
        rec.body["feedback"],
        json!({"feedback": "Crash on launch\n\nevery time", "type": "crash"})
    );
    assert_eq!(rec.body["user"]["email"], "bob@example.com");
    assert_eq!(rec.body["data"]["client_id"], report.client_id);
    let ups = sb.uploads();
    assert_eq!(ups.len(), 3);
    for (up, a) in ups.iter().zip(&atts) {
        let bytes = std::fs::read(&a.path).unwrap();
        assert_eq!(
            up.sha256_hex,
            crate::sandbox::http::hex(&Sha256::digest(&bytes)),
            "{}",
            a.file_name
        );
    }

    // 401 pauses, 422 is dead with the server's text.
    let wrong = ApptentiveConfig::new(&sb.base_url(), "wrong").unwrap();
    let (status, body) = send(&record_request(&wrong, &report).unwrap()).unwrap();
    assert!(matches!(
        read_record_answer(status, &[], &body),
        Verdict::Pause { .. }
    ));
    let blank = Outgoing {
        summary: " ",
        description: None,
        attachments: &[],
        ..report.clone()
    };
    let (status, body) = send(&record_request(&cfg, &blank).unwrap()).unwrap();
    assert_eq!(
        read_record_answer(status, &[], &body),
        Verdict::Dead {
            status: 422,
            messages: vec!["feedback can't be blank".into()]
        }
    );
    sb.inject(Fault::status(503));
    let (status, body) = send(&record_request(&cfg, &blank).unwrap()).unwrap();
    assert!(matches!(
        read_record_answer(status, &[], &body),
        Verdict::Retry { .. }
    ));
    let _: Option<Value> = None;
}
