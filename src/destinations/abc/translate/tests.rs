use super::*;
use crate::destinations::OutgoingAttachment;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::UNIX_EPOCH;

pub(crate) fn cfg() -> AbcConfig {
    AbcConfig::new(
        "http://abc.test",
        "1",
        "1",
        "KEY",
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

fn att(name: &str, ct: &str, size: u64, crash: bool) -> OutgoingAttachment {
    OutgoingAttachment {
        key: "k".into(),
        file_name: name.into(),
        content_type: ct.into(),
        path: PathBuf::from("/nonexistent"),
        size,
        crash_log: crash,
    }
}

fn report<'a>(
    fields: &'a [(String, Value)],
    ctx: &'a Map<String, Value>,
    atts: &'a [OutgoingAttachment],
    kind: ReportKind,
) -> Outgoing<'a> {
    Outgoing {
        client_id: "0b5e7a4c-1111-4222-8333-444455556666",
        kind,
        summary: "It broke",
        description: Some("Details"),
        submitter: Some("ann@example.com"),
        fields,
        context: ctx,
        attachments: atts,
        submitted_at: UNIX_EPOCH,
    }
}

#[test]
fn attachments_are_planned_by_abc_rules() {
    let c = cfg();
    let plans = plan_attachments(
        &c,
        &[
            att("a.png", "image/png", 10, false),
            att("notes.txt", "text/plain", 10, false),
            att("big.jpg", "image/jpeg", ABC_IMAGE_LIMIT + 1, false),
            att("exact.jpg", "image/jpeg", ABC_IMAGE_LIMIT, false),
            att("v.svg", "image/svg+xml", 10, false),
            att("crash.log.gz", "application/gzip", 10, true),
        ],
    );
    assert_eq!(plans[0], AttachmentPlan::Image);
    assert!(
        matches!(&plans[1], AttachmentPlan::Rejected { reason } if reason.contains("image files only") && reason.contains("text/plain"))
    );
    assert!(matches!(&plans[2], AttachmentPlan::Rejected { reason } if reason.contains("1 MiB")));
    assert_eq!(plans[3], AttachmentPlan::Image);
    assert!(
        matches!(&plans[4], AttachmentPlan::Rejected { reason } if reason.contains("bytes against its type"))
    );
    assert_eq!(plans[5], AttachmentPlan::CrashLog);
    let no_images = AbcConfig::new("http://h", "1", "1", "k", &[]).unwrap();
    let plans = plan_attachments(
        &no_images,
        &[
            att("a.png", "image/png", 1, false),
            att("c.gz", "x", 1, true),
        ],
    );
    assert!(
        matches!(&plans[0], AttachmentPlan::Rejected { reason } if reason.contains("no IMAGES field"))
    );
    assert!(
        matches!(&plans[1], AttachmentPlan::Rejected { reason } if reason.contains("crash_log"))
    );
}

#[test]
fn a_crash_report_needs_a_crash_log_field() {
    let no_crash = AbcConfig::new("http://h", "1", "1", "k", &[]).unwrap();
    let ctx = Map::new();
    let r = report(&[], &ctx, &[], ReportKind::Crash);
    assert_eq!(
        check_submit(&no_crash, &r),
        Err(TranslateError::NoCrashLogField)
    );
    assert!(TranslateError::NoCrashLogField
        .to_string()
        .contains("crash_log"));
    assert!(check_submit(&cfg(), &r).is_ok());
    let fields = vec![("id".to_string(), json!(1))];
    let r = report(&fields, &ctx, &[], ReportKind::Feedback);
    assert!(matches!(
        check_submit(&cfg(), &r),
        Err(TranslateError::BadField(_))
    ));
}

#[test]
fn the_json_create_carries_every_mapped_part() {
    let c = cfg().with_issue_names(&["Release 3"]).unwrap();
    let fields = vec![
        ("rating".to_string(), json!(4)),
        ("tags".to_string(), json!(["ui"])),
    ];
    let mut ctx = Map::new();
    ctx.insert(
        "device".into(),
        json!({"os_name": "Android", "model": "Pixel"}),
    );
    let r = report(&fields, &ctx, &[], ReportKind::Feedback);
    let req = create_json_request(&c, &r, None, &["http://s3/b/o.png".to_string()]).unwrap();
    assert_eq!(req.method, "POST");
    assert_eq!(
        req.url,
        "http://abc.test/api/projects/1/channels/1/feedbacks"
    );
    assert_eq!(req.header("x-api-key"), Some("KEY"));
    assert!(!req.url.contains("KEY"));
    let http = req.to_http_request().unwrap();
    let crate::transport::HttpBody::Bytes(bytes) = http.body else {
        panic!("bytes body")
    };
    assert_eq!(
        req.header("content-length"),
        Some(bytes.len().to_string().as_str())
    );
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        v,
        json!({
            "message": "It broke", "description": "Details", "submitter": "ann@example.com",
            "client_id": "0b5e7a4c-1111-4222-8333-444455556666", "os": "Android",
            "rating": 4, "tags": ["ui"], "images": ["http://s3/b/o.png"], "issueNames": ["Release 3"]
        })
    );
    let clash = vec![("message".to_string(), json!("x"))];
    let r = report(&clash, &ctx, &[], ReportKind::Feedback);
    assert_eq!(
        create_json_request(&c, &r, None, &[]).unwrap_err(),
        TranslateError::FieldClash("message".into())
    );
}

#[test]
fn the_multipart_create_streams_images_and_types_its_fields() {
    let dir = tempfile::tempdir().unwrap();
    let p1 = dir.path().join("a.png");
    std::fs::write(&p1, b"\x89PNG\r\n\x1a\nAAAA").unwrap();
    let mut img = att("a \"b\".png", "image/png", 12, false);
    img.path = p1;
    let fields = vec![("rating".to_string(), json!(4))];
    let ctx = Map::new();
    let r = report(&fields, &ctx, &[], ReportKind::Feedback);
    let req = create_multipart_request(&cfg(), &r, None, &[&img, &img]).unwrap();
    assert!(req.url.ends_with("/feedbacks-with-images"));
    let ct = req.header("content-type").unwrap().to_string();
    let boundary = ct.split("boundary=").nth(1).unwrap().to_string();
    let mut bytes = Vec::new();
    req.body.reader().read_to_end(&mut bytes).unwrap();
    assert_eq!(
        req.header("content-length"),
        Some(bytes.len().to_string().as_str())
    );
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("name=\"message\"\r\n\r\nIt broke\r\n"),
        "{text}"
    );
    assert!(
        text.contains("name=\"rating\"\r\nContent-Type: application/json\r\n\r\n4\r\n"),
        "{text}"
    );
    assert_eq!(
        text.matches("name=\"images\"; filename=\"a %22b%22.png\"")
            .count(),
        2,
        "{text}"
    );
    assert!(text.ends_with(&format!("--{boundary}--\r\n")));
    assert!(
        req.to_http_request().is_none(),
        "several files need the streamed body"
    );
}

#[test]
fn crash_log_text_keeps_head_and_tail_within_the_limit() {
    let small = crash_log_text(&b"short\nlog"[..], 1000).unwrap();
    assert_eq!(
        small,
        CrashText {
            text: "short\nlog".into(),
            cut_bytes: 0,
            total_bytes: 9
        }
    );

    let mut log = String::new();
    for i in 0..100_000 {
        log.push_str(&format!("line {i} \"quoted\"\tand tabbed\n"));
    }
    let max = 64 * 1024;
    let t = crash_log_text(log.as_bytes(), max).unwrap();
    let escaped = serde_json::to_string(&t.text).unwrap().len() - 2;
    assert!(escaped <= max, "{escaped} > {max}");
    assert!(escaped > max * 9 / 10, "uses most of the room: {escaped}");
    assert!(t.text.starts_with("line 0 \"quoted\""));
    assert!(t.text.ends_with("line 99999 \"quoted\"\tand tabbed\n"));
    assert_eq!(t.total_bytes, log.len() as u64);
    assert!(t.cut_bytes > 0 && t.cut_bytes < t.total_bytes);
    assert!(t
        .text
        .contains(&format!("{} of {} bytes cut", t.cut_bytes, t.total_bytes)));
    // Multi-byte characters are never split.
    let wide = "é€😀".repeat(50_000);
    let t = crash_log_text(wide.as_bytes(), 10_000).unwrap();
    assert!(!t.text.contains('\u{FFFD}'));
}

#[test]
fn a_gzip_crash_log_is_read_through_gunzip_and_fits_the_body() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for i in 0..200_000 {
        writeln!(gz, "frame {i}: at com.example.Foo.bar(Foo.kt:{i})").unwrap();
    }
    let compressed = gz.finish().unwrap();
    let c = cfg();
    let ctx = Map::new();
    let r = report(&[], &ctx, &[], ReportKind::Crash);
    let budget = crash_budget(&c, &r, &[]).unwrap();
    let crash = crash_log_text(gunzip(&compressed[..]), budget).unwrap();
    assert!(crash.cut_bytes > 0);
    let req = create_json_request(&c, &r, Some(&crash), &[]).unwrap();
    assert!(req.body.len() <= ABC_JSON_LIMIT, "{}", req.body.len());
    assert!(req.body.len() > ABC_JSON_LIMIT - 4096);
}

#[test]
fn create_answers_mean_what_abc_means() {
    assert_eq!(
        read_create_answer(201, &[], br#"{"id":42}"#),
        Verdict::Delivered {
            reference: "42".into()
        }
    );
    assert!(matches!(
        read_create_answer(201, &[], b"{}"),
        Verdict::Retry {
            maybe_acted: true,
            ..
        }
    ));
    let forbidden =
        br#"{"message":"Forbidden resource","error":"Forbidden","statusCode":403,"path":"/x"}"#;
    assert!(
        matches!(read_create_answer(403, &[], forbidden), Verdict::Pause { reason } if reason.contains("Forbidden resource"))
    );
    let arr = br#"{"message":["limit must not be less than 1","limit must be a number"],"error":"Bad Request","statusCode":400}"#;
    assert_eq!(
        read_create_answer(400, &[], arr),
        Verdict::Dead {
            status: 400,
            messages: vec![
                "limit must not be less than 1".into(),
                "limit must be a number".into()
            ]
        }
    );
    assert_eq!(
        read_create_answer(
            413,
            &[],
            br#"{"response":"Request body is too large","path":"/x"}"#
        ),
        Verdict::Dead {
            status: 413,
            messages: vec!["Request body is too large".into()]
        }
    );
    assert!(matches!(
        read_create_answer(503, &[], b""),
        Verdict::Retry {
            maybe_acted: false,
            ..
        }
    ));
    assert!(matches!(
        read_create_answer(500, &[], b"{}"),
        Verdict::Retry { .. }
    ));
    assert!(matches!(
        Verdict::no_answer(true, "reset"),
        Verdict::Retry {
            maybe_acted: true,
            ..
        }
    ));
}

#[test]
fn presigned_helpers_and_search() {
    let c = cfg().with_image_mode(ImageMode::Presigned);
    let img = att("shot.JPG", "image/jpeg", 5, false);
    let req = upload_url_request(&c, &img);
    assert_eq!(
        req.url,
        "http://abc.test/api/projects/1/channels/1/image-upload-url?extension=jpg"
    );
    assert_eq!(req.method, "GET");
    let url = "http://s3/b/1_1_5.png?X-Amz-Signature=abc&x-amz-checksum-crc32=AAAAAA%3D%3D";
    assert_eq!(
        read_upload_url_answer(200, &[], url.as_bytes()).unwrap(),
        url
    );
    assert_eq!(
        read_upload_url_answer(200, &[], format!("\"{url}\"").as_bytes()).unwrap(),
        url
    );
    assert!(matches!(
        read_upload_url_answer(
            400,
            &[],
            br#"{"message":"No image config in this channel"}"#
        ),
        Err(Verdict::Dead { .. })
    ));
    assert_eq!(object_url(url), "http://s3/b/1_1_5.png");
    let put = put_image_request(url, &img, c.timeout);
    assert_eq!(put.method, "PUT");
    assert!(
        put.header("x-api-key").is_none(),
        "the key never goes to the store"
    );
    assert!(read_put_answer(200, b"").is_ok());
    let xml = b"<Error><Code>BadDigest</Code><Message>The CRC32 did not match.</Message></Error>";
    assert_eq!(
        read_put_answer(400, xml),
        Err(Verdict::Dead {
            status: 400,
            messages: vec!["BadDigest".into(), "The CRC32 did not match.".into()]
        })
    );

    let s = search_request(&c, "uuid-1").unwrap();
    assert_eq!(
        s.url,
        "http://abc.test/api/v2/projects/1/channels/1/feedbacks/search"
    );
    let crate::transport::HttpBody::Bytes(b) = s.to_http_request().unwrap().body else {
        panic!()
    };
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        v,
        json!({"queries":[{"key":"client_id","value":"uuid-1","condition":"IS"}],"operator":"AND","page":1,"limit":10})
    );
    let found =
        br#"{"items":[{"id":7,"client_id":"other"},{"id":9,"client_id":"uuid-1"}],"meta":{}}"#;
    assert_eq!(
        read_search_answer(&c, "uuid-1", 201, found),
        SearchVerdict::Found { id: "9".into() }
    );
    assert_eq!(
        read_search_answer(&c, "uuid-2", 201, found),
        SearchVerdict::NotFound
    );
    assert!(matches!(
        read_search_answer(&c, "u", 403, b"{}"),
        SearchVerdict::Failed(Verdict::Pause { .. })
    ));
    assert!(matches!(
        read_search_answer(&c, "u", 201, b"nope"),
        SearchVerdict::Failed(Verdict::Retry { .. })
    ));
    let no_id = AbcConfig::new("http://h", "1", "1", "k", &[]).unwrap();
    assert!(search_request(&no_id, "u").is_none());
}
