//! Delivery against the sandbox: the happy path, every status class, the
//! ambiguous window, restarts, routing, the rate limit, the sender.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use fieldreport::sandbox::{Fault, Sandbox, SandboxConfig};
use fieldreport::{Attachment, AttachmentState, Client, CrashReport, Event, Feedback, ReportState};
use serde_json::json;

fn feedback(summary: &str) -> Feedback {
    Feedback::new(summary)
}

#[test]
fn feedback_and_crash_arrive_byte_identical() {
    let sb = sandbox();
    let dir = tempdir();
    let mut cfg = config(dir.path(), &sb);
    cfg.context_fields
        .insert("app_name".into(), "AppName".into());
    cfg.context_fields.insert("seq".into(), "Sequence".into());
    let client = Client::open(cfg).unwrap();
    let shot: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let file = dir.path().join("screen.png");
    std::fs::write(&file, &shot).unwrap();
    let id = client
        .submit(
            feedback("Lighting presets should be more robust")
                .description("More presets, please.\nLine two.")
                .submitter("jim@example.com")
                .field("topic", json!(23795))
                .field("title", json!("Lighting presets"))
                .attach(Attachment::from_path("Screenshot", &file))
                .attach(Attachment::from_bytes(
                    "Screenshot",
                    "second.png",
                    b"second".to_vec(),
                )),
        )
        .unwrap();
    // The app's copy may go away: the outbox has its own.
    std::fs::remove_file(&file).unwrap();
    let log = "\n=====\nthread 'main' panicked at src/lib.rs:1\nbacktrace...\n";
    let crash = client.submit_crash(CrashReport::from_text(log)).unwrap();

    let result = client.flush(Duration::from_secs(30)).unwrap();
    assert_eq!(result.pending, 0, "{result:?}");
    assert_eq!(result.receipts.len(), 2);
    for r in &result.receipts {
        assert_eq!(r.state, ReportState::Delivered);
        assert!(r.server_key.as_deref().unwrap().starts_with("BUG-"));
        assert!(r.server_url.is_some());
    }

    let created = sb.feedback();
    assert_eq!(created.len(), 2);
    let body = &created[0].body;
    assert_eq!(body["summary"], "Lighting presets should be more robust");
    assert_eq!(body["description"], "More presets, please.\nLine two.");
    assert_eq!(body["submitter"], "jim@example.com");
    assert_eq!(body["topic"], 23795);
    assert_eq!(body["title"], "Lighting presets");
    assert_eq!(body["AppName"], "tests");
    assert_eq!(body["Sequence"], 1);
    assert!(body.get("apiKey").is_none());
    assert_eq!(
        created[1].body["summary"],
        "thread 'main' panicked at src/lib.rs:1"
    );
    assert_eq!(created[1].body["Sequence"], 2);

    let uploads = sb.uploads();
    assert_eq!(uploads.len(), 3);
    assert_eq!(uploads[0].file_name, "screen.png");
    assert_eq!(uploads[0].content_type, "image/png");
    assert_eq!(uploads[0].sha256_hex, sha256_hex(&shot));
    assert_eq!(uploads[0].size, shot.len() as u64);
    assert_eq!(uploads[1].sha256_hex, sha256_hex(b"second"));
    assert_eq!(uploads[2].file_name, "crash.log.gz");
    assert_eq!(uploads[2].element_key, "CrashLog");
    assert_eq!(uploads[2].content_type, "application/gzip");
    // The crash log arrives gzip-compressed: same bytes as gzipping it here.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, log.as_bytes()).unwrap();
    assert_eq!(uploads[2].sha256_hex, sha256_hex(&gz.finish().unwrap()));

    let status = client.report(id).unwrap();
    assert_eq!(status.state, ReportState::Delivered);
    assert_eq!(status.seq, 1);
    assert_eq!(status.context["os"], std::env::consts::OS);
    assert!(status
        .attachments
        .iter()
        .all(|a| a.state == AttachmentState::Uploaded));
    assert_eq!(
        client.report(crash).unwrap().summary,
        "thread 'main' panicked at src/lib.rs:1"
    );
    let stats = client.stats().unwrap();
    assert_eq!((stats.pending, stats.delivered, stats.dead), (0, 2, 0));
    // Delivered copies are removed from the outbox, off the flush's path:
    // at the latest when the client closes.
    client.close();
    let left = std::fs::read_dir(dir.path().join("files")).unwrap().count();
    assert_eq!(left, 0);
}

/// A process that ends before deleting a delivered copy leaves it behind;
/// the next open sweeps it, and keeps the copies of undelivered reports.
#[test]
fn delivered_copies_left_behind_are_swept_at_open() {
    let sb = sandbox();
    let dir = tempdir();
    let client = open(dir.path(), &sb);
    let sent = client
        .submit(feedback("sent").attach(Attachment::from_bytes("Screenshot", "a.png", vec![1; 10])))
        .unwrap();
    client.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(client.report(sent).unwrap().state, ReportState::Delivered);
    client.close();
    drop(client);
    // As if the deletion had not happened before the process ended.
    let stale = dir.path().join("files/att-stale-delivered");
    std::fs::write(&stale, b"copy of a delivered report").unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("outbox.sqlite")).unwrap();
    conn.execute(
        "INSERT INTO attachments (report_id, position, element_key, file_name, content_type, stored_name, size, sha256)
         VALUES (?1, 1, 'Screenshot', 'b.png', 'image/png', 'att-stale-delivered', 26, '')",
        [sent],
    )
    .unwrap();
    drop(conn);
    let client = open(dir.path(), &sb);
    let queued = client
        .submit(feedback("queued").attach(Attachment::from_bytes(
            "Screenshot",
            "q.png",
            vec![2; 10],
        )))
        .unwrap();
    drop(client);
    let client = open(dir.path(), &sb);
    assert!(!stale.exists(), "the delivered copy is swept at open");
    let left: Vec<_> = std::fs::read_dir(dir.path().join("files"))
        .unwrap()
        .collect();
    assert_eq!(left.len(), 1, "the queued report's copy stays");
    assert_eq!(client.report(queued).unwrap().attachments.len(), 1);
}

#[test]
fn bad_request_makes_the_report_dead_with_invalid_parameters() {
    let sb = sandbox();
    let dir = tempdir();
    let client = open(dir.path(), &sb);
    let rec = Recorder::new();
    client.set_listener(Some(rec.clone()));
    let id = client.submit(feedback("one")).unwrap();
    let ok = client.submit(feedback("two")).unwrap();
    sb.inject(Fault::Body {
        status: 400,
        body: r#"{"status":400,"description":"The specified request is invalid.","invalidParameters":[{"name":"topic","description":"Topic is required."}]}"#.into(),
    });
    let r = client.flush(Duration::from_secs(10)).unwrap();
    // A permanent failure does not stop the batch.
    assert_eq!(r.receipts.len(), 2);
    assert_eq!(r.dead, 1);
    let dead = client.report(id).unwrap();
    assert_eq!(dead.state, ReportState::Dead);
    let err = dead.last_error.unwrap();
    assert_eq!(err.status, Some(400));
    assert_eq!(err.message, "The specified request is invalid.");
    assert_eq!(err.invalid_parameters[0].name, "topic");
    assert_eq!(client.report(ok).unwrap().state, ReportState::Delivered);
    assert!(rec
        .events()
        .iter()
        .any(|e| matches!(e, Event::Dead { id: i, .. } if *i == id)));
    // A dead report is kept and can be retried.
    client.retry(id).unwrap();
    let r = client.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(r.receipts[0].state, ReportState::Delivered);
    assert_eq!(sb.feedback().len(), 2);
    // Retrying a report that is not dead is refused.
    assert!(matches!(
        client.retry(id),
        Err(fieldreport::Error::InvalidState { .. })
    ));
}

#[test]
fn every_permanent_status_kills_only_its_report() {
    for status in [404u16, 405, 413, 415, 422] {
        let sb = sandbox();
        let dir = tempdir();
        let client = open(dir.path(), &sb);
        let id = client.submit(feedback("x")).unwrap();
        sb.inject(Fault::status(status));
        client.flush(Duration::from_secs(10)).unwrap();
        let s = client.report(id).unwrap();
        assert_eq!(s.state, ReportState::Dead, "{status}");
        assert_eq!(s.last_error.unwrap().status, Some(status));
    }
}

#[test]
fn unauthorized_pauses_without_spending_attempts_and_resumes_with_a_new_key() {
    let sb = sandbox();
    let dir = tempdir();
    let mut cfg = config(dir.path(), &sb);
    cfg.server.api_key = fieldreport::ApiKey::new("wrong-key-123");
    let client = Client::open(cfg.clone()).unwrap();
    let rec = Recorder::new();
    client.set_listener(Some(rec.clone()));
    let a = client.submit(feedback("a")).unwrap();
    let b = client.submit(feedback("b")).unwrap();
    let r = client.flush(Duration::from_secs(10)).unwrap();
    assert!(r.stopped.as_deref().unwrap().contains("paused"), "{r:?}");
    assert_eq!(r.receipts.len(), 1, "the batch stops at the 401");
    assert_eq!(r.pending, 2);
    assert!(client.stats().unwrap().paused_for_auth);
    assert_eq!(client.report(a).unwrap().attempts, 0);
    assert!(rec
        .events()
        .iter()
        .any(|e| matches!(e, Event::Paused { .. })));
    // Paused: no request at all.
    let before = sb.requests().len();
    let r = client.flush(Duration::from_secs(10)).unwrap();
    assert!(r.stopped.unwrap().contains("paused"));
    assert_eq!(sb.requests().len(), before);
    // The pause is stored: a restart with the same key stays paused.
    drop(client);
    let client = Client::open(cfg.clone()).unwrap();
    client.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(sb.requests().len(), before);
    // A new key resumes at once, nothing lost.
    client.set_api_key(sb.api_key()).unwrap();
    let r = client.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(r.pending, 0, "{r:?}");
    assert_eq!(client.report(b).unwrap().state, ReportState::Delivered);
    assert_eq!(sb.feedback().len(), 2);
    assert!(!client.stats().unwrap().paused_for_auth);
}

#[test]
fn forbidden_also_pauses() {
    let sb = sandbox();
    let dir = tempdir();
    let client = open(dir.path(), &sb);
    client.submit(feedback("a")).unwrap();
    sb.inject(Fault::status(403));
    let r = client.flush(Duration::from_secs(10)).unwrap();
    assert!(r.stopped.unwrap().contains("paused"));
    assert_eq!(r.pending, 1);
}

#[test]
fn rate_limited_waits_for_the_reset() {
    let sb = sandbox();
    let dir = tempdir();
    let client = open(dir.path(), &sb);
    let id = client.submit(feedback("a")).unwrap();
    let reset = SystemTime::now() + Duration::from_millis(1500);
    sb.inject(Fault::rate_limited_until(reset));
    let r = client.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(r.stopped.as_deref(), Some("rate limited by the server"));
    let s = client.report(id).unwrap();
    assert_eq!(s.state, ReportState::Queued);
    assert!(s.next_attempt_at.unwrap() >= reset - Duration::from_millis(5));
    // Before the reset nothing is sent.
    let before = sb.requests().len();
    let r = client.flush(Duration::from_secs(10)).unwrap();
    assert!(r.stopped.unwrap().starts_with("waiting until"));
    assert_eq!(sb.requests().len(), before);
    while SystemTime::now() < reset + Duration::from_millis(50) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = client.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(r.pending, 0, "{r:?}");
    assert_eq!(sb.feedback().len(), 1);
}

#[test]
fn server_errors_and_dropped_connections_are_retried_and_stop_the_batch() {
    let sb = sandbox();
    let dir = tempdir();
    let client = open(dir.path(), &sb);
    let rec = Recorder::new();
    client.set_listener(Some(rec.clone()));
    for i in 0..3 {
        client.submit(feedback(&format!("r{i}"))).unwrap();
    }
    for fault in [
        Fault::status(500),
        Fault::status(503),
        Fault::Drop,
        Fault::status(408),
    ] {
        sb.inject(fault);
        let r = client.flush(Duration::from_secs(10)).unwrap();
        assert_eq!(r.receipts.len(), 1, "stops at the first failure: {r:?}");
        assert!(r.receipts[0].error.is_some());
        assert!(r.stopped.is_some());
        assert_eq!(r.pending, 3);
        std::thread::sleep(Duration::from_millis(250));
    }
    let r = drain(&client, 10);
    assert_eq!(r.pending, 0);
    assert_eq!(
        sb.feedback().len(),
        3,
        "no duplicate from answered failures"
    );
    assert_eq!(
        client.stats().unwrap().ambiguous_resends,
        1,
        "only the dropped one"
    );
    assert!(
        rec.events()
            .iter()
            .filter(|e| matches!(e, Event::Failed { .. }))
            .count()
            >= 4
    );
}

#[test]
fn a_lost_create_answer_without_lookup_is_resent_and_counted() {
    let sb = sandbox();
    let dir = tempdir();
    let client = open(dir.path(), &sb);
    client.submit(feedback("ambiguous")).unwrap();
    sb.inject(Fault::ActThenDrop);
    client.flush(Duration::from_secs(10)).unwrap();
    let r = drain(&client, 10);
    assert_eq!(r.pending, 0);
    // The documented limit: the server has it twice, and we say so.
    assert_eq!(sb.feedback().len(), 2);
    assert_eq!(client.stats().unwrap().ambiguous_resends, 1);
}

/// A report that dies after one of its creates may have reached the
/// server says so: its reason is not only the last refusal.
#[test]
fn a_report_refused_after_a_lost_create_answer_says_the_server_may_have_it() {
    let sb = sandbox();
    let dir = tempdir();
    let client = open(dir.path(), &sb);
    let rec = Recorder::new();
    client.set_listener(Some(rec.clone()));
    let id = client
        .submit(feedback("refused after a lost answer"))
        .unwrap();
    // The create acts and its answer is lost; the one sent again is
    // answered 500 (that attempt is not in doubt), the next is refused.
    sb.inject(Fault::ActThenDrop);
    sb.inject(Fault::status(500));
    sb.inject(Fault::status(422));
    let r = drain(&client, 10);
    assert_eq!(r.pending, 0, "{r:?}");
    let s = client.report(id).unwrap();
    assert_eq!(s.state, ReportState::Dead);
    let e = s.last_error.unwrap();
    assert_eq!(e.status, Some(422));
    assert!(
        e.message.contains("the server may have the feedback"),
        "{}",
        e.message
    );
    let dead: Vec<String> = rec
        .events()
        .into_iter()
        .filter_map(|ev| match ev {
            Event::Dead { id: d, error } if d == id => Some(error.message),
            _ => None,
        })
        .collect();
    assert_eq!(
        dead,
        vec![e.message.clone()],
        "the listener hears the same reason"
    );
    assert_eq!(sb.feedback().len(), 1, "the first attempt's copy");
    assert_eq!(client.stats().unwrap().ambiguous_resends, 1);

    // Refused at once: nothing of the kind is said.
    let plain = client.submit(feedback("refused at once")).unwrap();
    sb.inject(Fault::status(422));
    client.flush(Duration::from_secs(10)).unwrap();
    let e = client.report(plain).unwrap().last_error.unwrap();
    assert_eq!(client.report(plain).unwrap().state, ReportState::Dead);
    assert!(!e.message.contains("may have"), "{}", e.message);
}

/// The same when the attempt that used up the last one allowed is the
/// create whose answer was lost.
#[test]
fn a_report_given_up_on_a_lost_create_answer_says_the_server_may_have_it() {
    let sb = sandbox();
    let dir = tempdir();
    let mut cfg = config(dir.path(), &sb);
    cfg.policy.max_attempts = 1;
    let client = Client::open(cfg).unwrap();
    let id = client.submit(feedback("given up")).unwrap();
    sb.inject(Fault::ActThenDrop);
    client.flush(Duration::from_secs(10)).unwrap();
    let s = client.report(id).unwrap();
    assert_eq!(s.state, ReportState::Dead);
    let message = s.last_error.unwrap().message;
    assert!(message.starts_with("gave up after 1 attempts"), "{message}");
    assert!(
        message.contains("the server may have the feedback"),
        "{message}"
    );
    assert_eq!(sb.feedback().len(), 1);
}

#[test]
fn a_lost_create_answer_with_lookup_is_not_resent() {
    let sb = sandbox();
    let dir = tempdir();
    let mut cfg = config(dir.path(), &sb);
    cfg.server.client_id_field = Some("ClientId".into());
    cfg.server.lookup_key = Some("Lookup".into());
    let client = Client::open(cfg).unwrap();
    let data = vec![42u8; 10_000];
    let id = client
        .submit(feedback("ambiguous").attach(Attachment::from_bytes(
            "Screenshot",
            "s.png",
            data.clone(),
        )))
        .unwrap();
    sb.inject(Fault::ActThenDrop);
    client.flush(Duration::from_secs(10)).unwrap();
    let r = drain(&client, 10);
    assert_eq!(r.pending, 0, "{r:?}");
    assert_eq!(sb.feedback().len(), 1, "found by lookup, not posted again");
    let status = client.report(id).unwrap();
    assert_eq!(status.server_key.as_deref(), Some("BUG-0001"));
    assert_eq!(sb.feedback()[0].body["ClientId"], status.client_id);
    assert_eq!(sb.uploads().len(), 1);
    assert_eq!(sb.uploads()[0].sha256_hex, sha256_hex(&data));
    assert_eq!(client.stats().unwrap().ambiguous_resends, 0);
}

#[test]
fn restart_resumes_at_the_first_attachment_not_uploaded() {
    let sb = sandbox();
    let dir = tempdir();
    let parts: Vec<Vec<u8>> = (0..3).map(|i| vec![i as u8; 50_000 + i]).collect();
    {
        let client = open(dir.path(), &sb);
        let mut f = feedback("three files");
        for (i, p) in parts.iter().enumerate() {
            f = f.attach(Attachment::from_bytes(
                "Screenshot",
                format!("p{i}.png"),
                p.clone(),
            ));
        }
        client.submit(f).unwrap();
        // Create and first upload succeed; the second upload is dropped.
        sb.inject(Fault::Delay(Duration::ZERO));
        sb.inject(Fault::Delay(Duration::ZERO));
        sb.inject(Fault::Drop);
        let r = client.flush(Duration::from_secs(10)).unwrap();
        assert_eq!(r.receipts[0].state, ReportState::Created);
        assert!(r.stopped.is_some());
    }
    let client = open(dir.path(), &sb);
    let r = drain(&client, 10);
    assert_eq!(r.pending, 0);
    assert_eq!(sb.feedback().len(), 1, "never created twice");
    let ups = sb.uploads();
    assert_eq!(ups.len(), 3, "each attachment once");
    for (u, p) in ups.iter().zip(&parts) {
        assert_eq!(u.sha256_hex, sha256_hex(p));
    }
}

#[test]
fn attachments_without_a_matching_element_are_rejected_and_the_rest_delivered() {
    let sb = sandbox();
    let dir = tempdir();
    let client = open(dir.path(), &sb);
    let rec = Recorder::new();
    client.set_listener(Some(rec.clone()));
    let id = client
        .submit(
            feedback("routing")
                .attach(Attachment::from_bytes("Video", "v.mp4", b"v".to_vec()))
                .attach(Attachment::from_bytes("CrashLog", "a.log", b"a".to_vec()))
                .attach(Attachment::from_bytes("CrashLog", "b.log", b"b".to_vec()))
                .attach(Attachment::from_bytes("Screenshot", "s.png", b"s".to_vec())),
        )
        .unwrap();
    let r = client.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(r.receipts[0].state, ReportState::Delivered);
    assert_eq!(r.receipts[0].rejected_attachments.len(), 2);
    let s = client.report(id).unwrap();
    let states: Vec<_> = s.attachments.iter().map(|a| a.state).collect();
    assert_eq!(
        states,
        [
            AttachmentState::Rejected,
            AttachmentState::Uploaded,
            AttachmentState::Rejected,
            AttachmentState::Uploaded
        ]
    );
    assert!(s.attachments[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("Video"));
    assert!(s.attachments[2]
        .reason
        .as_deref()
        .unwrap()
        .contains("single"));
    assert_eq!(sb.uploads().len(), 2);
    assert_eq!(
        rec.events()
            .iter()
            .filter(|e| matches!(e, Event::AttachmentRejected { .. }))
            .count(),
        2
    );
}

#[test]
fn a_server_without_file_elements_rejects_attachments_but_keeps_the_feedback() {
    let sb = Sandbox::start(SandboxConfig {
        file_elements: vec![],
        ..SandboxConfig::default()
    })
    .unwrap();
    let dir = tempdir();
    let client = open(dir.path(), &sb);
    let id = client
        .submit(feedback("no elements").attach(Attachment::from_bytes(
            "Screenshot",
            "s.png",
            b"s".to_vec(),
        )))
        .unwrap();
    client.flush(Duration::from_secs(10)).unwrap();
    let s = client.report(id).unwrap();
    assert_eq!(s.state, ReportState::Delivered);
    assert_eq!(s.attachments[0].state, AttachmentState::Rejected);
}

#[test]
fn an_upload_refused_by_the_server_is_rejected_alone() {
    let sb = sandbox();
    let dir = tempdir();
    let client = open(dir.path(), &sb);
    let id = client
        .submit(
            feedback("refused upload")
                .attach(Attachment::from_bytes("Screenshot", "a.png", b"a".to_vec()))
                .attach(Attachment::from_bytes("Screenshot", "b.png", b"b".to_vec())),
        )
        .unwrap();
    sb.inject(Fault::Delay(Duration::ZERO)); // the create
    sb.inject(Fault::status(413)); // first upload
    client.flush(Duration::from_secs(10)).unwrap();
    let s = client.report(id).unwrap();
    assert_eq!(s.state, ReportState::Delivered);
    assert_eq!(s.attachments[0].state, AttachmentState::Rejected);
    assert!(s.attachments[0].reason.as_deref().unwrap().contains("413"));
    assert_eq!(s.attachments[1].state, AttachmentState::Uploaded);
}

#[test]
fn a_created_answer_without_a_key_is_not_resent() {
    let sb = sandbox();
    let dir = tempdir();
    let client = open(dir.path(), &sb);
    let id = client.submit(feedback("truncated answer")).unwrap();
    sb.inject(Fault::Body {
        status: 201,
        body: "{\"id\":\"8203093f\",\"ke".into(),
    });
    client.flush(Duration::from_secs(10)).unwrap();
    let s = client.report(id).unwrap();
    assert_eq!(s.state, ReportState::Dead);
    assert!(s.last_error.unwrap().message.contains("duplicate"));
}

#[test]
fn the_client_side_rate_limit_keeps_under_ten_per_second() {
    let sb = sandbox();
    let dir = tempdir();
    let client = open(dir.path(), &sb);
    for i in 0..24 {
        client.submit(feedback(&format!("burst {i}"))).unwrap();
    }
    let r = drain(&client, 5);
    assert_eq!(r.pending, 0);
    let reqs = sb.requests();
    assert!(
        reqs.iter().all(|r| r.status != 429),
        "the server never had to refuse"
    );
    let times: Vec<Instant> = reqs.iter().map(|r| r.at).collect();
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..]
            .iter()
            .take_while(|u| u.duration_since(*t) < Duration::from_millis(1000))
            .count();
        assert!(in_window <= 10, "{in_window} requests within one second");
    }
}

#[test]
fn without_consent_nothing_is_sent_until_given() {
    let sb = sandbox();
    let dir = tempdir();
    let mut cfg = config(dir.path(), &sb);
    cfg.consent_default = false;
    let client = Client::open(cfg).unwrap();
    client.submit(feedback("wait for consent")).unwrap();
    let r = client.flush(Duration::from_secs(5)).unwrap();
    assert!(r.stopped.unwrap().starts_with("no consent"));
    assert!(sb.requests().is_empty());
    assert!(!client.stats().unwrap().consent);
    client.set_consent(true).unwrap();
    assert_eq!(client.flush(Duration::from_secs(5)).unwrap().pending, 0);
    // Revoking and purging removes everything.
    client.submit(feedback("later")).unwrap();
    client.set_consent(false).unwrap();
    client.purge_all().unwrap();
    assert_eq!(client.stats().unwrap().pending, 0);
    assert!(client.reports(&Default::default()).unwrap().is_empty());
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn background_sender_delivers_on_submit_and_when_back_online() {
    let sb = sandbox();
    let dir = tempdir();
    let mut cfg = config(dir.path(), &sb);
    cfg.policy.sender_interval = Duration::from_secs(3600); // only wake-ups
    let client = Client::open(cfg).unwrap();
    client.start_sender().unwrap();
    client.start_sender().unwrap(); // idempotent
    client.submit(feedback("on submit")).unwrap();
    wait_until("delivery on submit", || sb.feedback().len() == 1);
    client.set_online(false);
    // A flush that began before the hint may still be finishing; it holds
    // only what was due when it began.
    std::thread::sleep(Duration::from_millis(300));
    client.submit(feedback("while offline")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sb.feedback().len(), 1, "nothing sent while offline");
    client.set_online(true);
    wait_until("delivery when back online", || sb.feedback().len() == 2);
    // Retries are woken by their due time, not the interval.
    sb.inject(Fault::status(503));
    client.submit(feedback("after a 503")).unwrap();
    wait_until("retry after backoff", || sb.feedback().len() == 3);
    client.stop_sender();
    client.submit(feedback("sender stopped")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sb.feedback().len(), 3);
    client.close();
    assert!(matches!(
        client.submit(feedback("closed")),
        Err(fieldreport::Error::Closed)
    ));
}

#[test]
fn metered_network_holds_large_attachments_only() {
    let sb = sandbox();
    let dir = tempdir();
    let client = open(dir.path(), &sb);
    client.set_metered(true);
    let small = client.submit(feedback("small")).unwrap();
    let big = client
        .submit(feedback("big").attach(Attachment::from_bytes(
            "Screenshot",
            "big.png",
            vec![1; 2_000_000],
        )))
        .unwrap();
    client.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(client.report(small).unwrap().state, ReportState::Delivered);
    assert_eq!(client.report(big).unwrap().state, ReportState::Created);
    assert!(sb.uploads().is_empty());
    client.set_metered(false);
    client.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(client.report(big).unwrap().state, ReportState::Delivered);
}

#[test]
fn flush_budget_is_respected_between_requests() {
    let sb = sandbox();
    let dir = tempdir();
    let client = open(dir.path(), &sb);
    for i in 0..5 {
        client.submit(feedback(&format!("slow {i}"))).unwrap();
    }
    for _ in 0..5 {
        sb.inject(Fault::Delay(Duration::from_millis(300)));
    }
    let r = client.flush(Duration::from_millis(500)).unwrap();
    assert!(r.receipts.len() < 5, "{r:?}");
    assert_eq!(r.stopped.as_deref(), Some("the time budget is spent"));
    assert!(r.pending > 0);
}

#[test]
fn retries_give_up_after_max_attempts_and_keep_the_report() {
    let sb = sandbox();
    let dir = tempdir();
    let mut cfg = config(dir.path(), &sb);
    cfg.policy.max_attempts = 3;
    cfg.policy.retry_base = Duration::from_millis(1);
    cfg.policy.retry_max = Duration::from_millis(1);
    let client = Client::open(cfg).unwrap();
    let id = client.submit(feedback("doomed")).unwrap();
    for _ in 0..3 {
        sb.inject(Fault::status(500));
    }
    for _ in 0..3 {
        client.flush(Duration::from_secs(5)).unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    let s = client.report(id).unwrap();
    assert_eq!(s.state, ReportState::Dead);
    assert_eq!(s.attempts, 3);
    assert!(s
        .last_error
        .unwrap()
        .message
        .contains("gave up after 3 attempts"));
}

#[test]
fn a_refused_connection_is_not_a_possible_duplicate() {
    let sb = sandbox();
    let dir = tempdir();
    let mut cfg = config(dir.path(), &sb);
    // Nothing listens on the discard port here.
    cfg.server.base_url = Some("http://127.0.0.1:9/api/v1".into());
    let client = Client::open(cfg).unwrap();
    let id = client.submit(feedback("offline")).unwrap();
    for _ in 0..2 {
        let r = client.flush(Duration::from_secs(5)).unwrap();
        assert!(r.stopped.unwrap().starts_with("network failure"));
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(client.report(id).unwrap().attempts, 2);
    assert_eq!(client.stats().unwrap().ambiguous_resends, 0);
}

#[test]
fn no_wake_up_of_the_background_sender_is_lost() {
    // With an hour-long timer, only wake-ups can deliver: a lost one would
    // leave the last reports waiting for the hour.
    let sb = sandbox_unlimited();
    let dir = tempdir();
    let mut cfg = config(dir.path(), &sb);
    cfg.policy.sender_interval = Duration::from_secs(3600);
    cfg.policy.max_requests_per_sec = 0;
    let client = std::sync::Arc::new(Client::open(cfg).unwrap());
    client.start_sender().unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let client = std::sync::Arc::clone(&client);
            s.spawn(move || {
                for i in 0..25u32 {
                    client.submit(feedback(&format!("wake {t}-{i}"))).unwrap();
                    if i.is_multiple_of(5) {
                        std::thread::sleep(Duration::from_millis(3));
                    }
                }
            });
        }
    });
    wait_until("every report delivered by wake-ups alone", || {
        client.stats().unwrap().pending == 0
    });
    assert_eq!(sb.feedback().len(), 100);
    client.stop_sender();
}

/// Stops the flush after the first delivered report, as an app going
/// offline would.
struct OfflineAfterFirst(std::sync::Mutex<Option<Arc<Client>>>);

impl fieldreport::Listener for OfflineAfterFirst {
    fn on_event(&self, event: Event) {
        if matches!(event, Event::Delivered { .. }) {
            if let Some(c) = self.0.lock().unwrap().take() {
                c.set_online(false);
            }
        }
    }
}

/// The commit that finishes a report also marks the next report's create
/// as about to leave; a flush that stops before sending it clears the mark,
/// so the next flush does not take it for a create in doubt.
#[test]
fn a_flush_that_stops_early_leaves_no_create_in_doubt() {
    let sb = sandbox();
    let dir = tempdir();
    let client = Arc::new(open(dir.path(), &sb));
    for n in 0..3 {
        client.submit(feedback(&format!("report {n}"))).unwrap();
    }
    let stopper = Arc::new(OfflineAfterFirst(std::sync::Mutex::new(Some(Arc::clone(
        &client,
    )))));
    client.set_listener(Some(stopper));
    let r = client.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(r.receipts.len(), 1, "{r:?}");
    assert_eq!(r.stopped.as_deref(), Some("offline (as the app reported)"));
    let in_doubt: i64 = rusqlite::Connection::open(dir.path().join("outbox.sqlite"))
        .unwrap()
        .query_row(
            "SELECT count(*) FROM reports WHERE create_sent_at IS NOT NULL AND state = 'queued'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(in_doubt, 0, "the unsent report is not marked as sent");
    client.set_listener(None);
    client.set_online(true);
    let r = drain(&client, 5);
    assert_eq!(r.pending, 0, "{r:?}");
    assert_eq!(sb.feedback().len(), 3);
    assert_eq!(client.stats().unwrap().ambiguous_resends, 0);
}

fn lookup_client(dir: &std::path::Path, sb: &Sandbox) -> Client {
    let mut cfg = config(dir, sb);
    cfg.server.client_id_field = Some("ClientId".into());
    cfg.server.lookup_key = Some("Lookup".into());
    cfg.policy.request_timeout = Duration::from_secs(1);
    Client::open(cfg).unwrap()
}

/// A create that times out but that the server completes a little later
/// (within twice the request timeout) is found by the lookup, not re-sent,
/// even when the next attempt comes before the server finished.
#[test]
fn a_late_create_is_waited_for_and_found_by_lookup() {
    let sb = sandbox();
    let dir = tempdir();
    // A 2 s timeout and a 3 s server: the next attempt (at about 2.1 s)
    // comes well before the server finishes, which is well inside the wait
    // (twice the timeout), however late a loaded machine runs each step.
    let mut cfg = config(dir.path(), &sb);
    cfg.server.client_id_field = Some("ClientId".into());
    cfg.server.lookup_key = Some("Lookup".into());
    cfg.policy.request_timeout = Duration::from_secs(2);
    let client = Client::open(cfg).unwrap();
    let id = client.submit(feedback("slow server")).unwrap();
    sb.inject(Fault::Delay(Duration::from_millis(3000)));
    let r = client.flush(Duration::from_secs(10)).unwrap();
    assert!(r.receipts[0].error.is_some(), "timed out: {r:?}");
    // Retried at once, before the server has created it: looked up, not found, waited for.
    std::thread::sleep(Duration::from_millis(100));
    let r = client.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(r.pending, 1, "{r:?}");
    let why = r.receipts[0]
        .error
        .as_ref()
        .expect("explained")
        .message
        .clone();
    assert!(why.contains("may still be in progress"), "{why}");
    let r = drain(&client, 40);
    assert_eq!(r.pending, 0, "{r:?}");
    assert_eq!(sb.feedback().len(), 1, "created once");
    assert_eq!(
        client.report(id).unwrap().server_key.as_deref(),
        Some("BUG-0001")
    );
    assert_eq!(client.stats().unwrap().ambiguous_resends, 0);
}

/// A create that the server completes later than that is sent again: the
/// duplicate is counted, not hidden.
#[test]
fn a_create_completed_after_the_wait_is_a_counted_duplicate() {
    let sb = sandbox();
    let dir = tempdir();
    let client = lookup_client(dir.path(), &sb);
    client.submit(feedback("very slow server")).unwrap();
    sb.inject(Fault::Delay(Duration::from_millis(4000)));
    client.flush(Duration::from_secs(10)).unwrap();
    let r = drain(&client, 20);
    assert_eq!(r.pending, 0, "{r:?}");
    // The delayed create lands after the re-sent one.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sb.feedback().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(sb.feedback().len(), 2, "the documented limit");
    assert_eq!(
        client.stats().unwrap().ambiguous_resends,
        1,
        "and it is counted"
    );
}

/// A lookup answered with an empty success (204) is "not found", explained
/// and waited on; it neither loops silently nor duplicates.
#[test]
fn an_empty_lookup_answer_is_not_found_and_explained() {
    let sb = sandbox();
    let dir = tempdir();
    let client = lookup_client(dir.path(), &sb);
    let rec = Recorder::new();
    client.set_listener(Some(rec.clone()));
    client.submit(feedback("lookup says nothing")).unwrap();
    sb.inject(Fault::ActThenDrop);
    client.flush(Duration::from_secs(10)).unwrap();
    sb.inject(Fault::Body {
        status: 204,
        body: String::new(),
    });
    std::thread::sleep(Duration::from_millis(250));
    let r = client.flush(Duration::from_secs(10)).unwrap();
    let why = &r.receipts[0].error.as_ref().expect("explained").message;
    assert!(why.contains("not found by the record lookup"), "{why}");
    assert!(rec
        .events()
        .iter()
        .any(|e| matches!(e, Event::Failed { error, .. } if error.message == *why)));
    let r = drain(&client, 20);
    assert_eq!(r.pending, 0, "{r:?}");
    assert_eq!(sb.feedback().len(), 1, "found on the next lookup");
    assert_eq!(client.stats().unwrap().ambiguous_resends, 0);
}

#[test]
fn the_client_id_field_cannot_be_set_as_an_extra_field() {
    let sb = sandbox();
    let dir = tempdir();
    let client = lookup_client(dir.path(), &sb);
    let err = client
        .submit(feedback("spoof").field("ClientId", json!("not-mine")))
        .unwrap_err();
    assert!(
        matches!(&err, fieldreport::Error::InvalidInput { reason } if reason.contains("client id")),
        "{err:?}"
    );
    assert_eq!(client.stats().unwrap().pending, 0);
}

/// Runs `act` on the client when the first report is delivered (as an app
/// submitting or purging from its listener, or another client, would).
struct OnFirstDelivered {
    client: std::sync::Mutex<Option<Arc<Client>>>,
    act: fn(&Client),
    events: std::sync::Mutex<Vec<Event>>,
}

impl fieldreport::Listener for OnFirstDelivered {
    fn on_event(&self, event: Event) {
        if matches!(event, Event::Delivered { .. }) {
            if let Some(c) = self.client.lock().unwrap().take() {
                (self.act)(&c);
            }
        }
        self.events.lock().unwrap().push(event);
    }
}

fn flush_while(
    act: fn(&Client),
) -> (
    Sandbox,
    tempfile::TempDir,
    Arc<Client>,
    Vec<i64>,
    Vec<Event>,
) {
    let sb = sandbox();
    let dir = tempdir();
    let mut cfg = config(dir.path(), &sb);
    cfg.policy.max_reports = 3;
    let client = Arc::new(Client::open(cfg).unwrap());
    let ids = vec![
        client.submit(feedback("typed first")).unwrap(),
        client
            .submit_crash(CrashReport::from_text("crash one"))
            .unwrap(),
        client
            .submit_crash(CrashReport::from_text("crash two"))
            .unwrap(),
    ];
    let listener = Arc::new(OnFirstDelivered {
        client: std::sync::Mutex::new(Some(Arc::clone(&client))),
        act,
        events: std::sync::Mutex::new(Vec::new()),
    });
    client.set_listener(Some(listener.clone()));
    client
        .flush(Duration::from_secs(10))
        .expect("the flush goes on");
    client.set_listener(None);
    let events = listener.events.lock().unwrap().clone();
    (sb, dir, client, ids, events)
}

/// A report evicted while a flush is under way (here by submits from the
/// listener; another client or process can do the same) is not sent, and
/// keeps its eviction record: it is never shown as delivered.
#[test]
fn a_report_evicted_during_a_flush_is_not_sent_nor_marked_delivered() {
    let (sb, _dir, client, ids, events) = flush_while(|c| {
        c.submit_crash(CrashReport::from_text("crash three"))
            .unwrap();
        // Over the cap of 3: the oldest crash ("crash one") is evicted.
        c.submit_crash(CrashReport::from_text("crash four"))
            .unwrap();
    });
    let evicted = client.report(ids[1]).unwrap();
    assert_eq!(evicted.state, ReportState::Evicted);
    assert!(evicted.last_error.unwrap().message.contains("evicted"));
    assert!(!events
        .iter()
        .any(|e| matches!(e, Event::Delivered { receipt } if receipt.id == ids[1])));
    let sent = common::received_summaries(&sb);
    assert_eq!(
        sent,
        ["typed first", "crash two"],
        "the evicted one was not sent"
    );
    assert_eq!(client.report(ids[2]).unwrap().state, ReportState::Delivered);
}

/// A report purged while a flush is under way is skipped; the flush goes on.
#[test]
fn a_report_purged_during_a_flush_is_skipped() {
    let (sb, _dir, client, ids, _events) = flush_while(|c| {
        c.purge(2).unwrap();
    });
    assert!(matches!(
        client.report(ids[1]),
        Err(fieldreport::Error::NotFound { .. })
    ));
    assert_eq!(client.report(ids[2]).unwrap().state, ReportState::Delivered);
    assert_eq!(sb.feedback().len(), 2);
    assert_eq!(client.stats().unwrap().pending, 0);
}

/// Sleeps in the listener when the first report is delivered, and notes
/// when it woke (unix ms).
struct SlowListener(std::sync::Mutex<Option<u128>>);

impl fieldreport::Listener for SlowListener {
    fn on_event(&self, event: Event) {
        if matches!(&event, Event::Delivered { receipt } if receipt.id == 1) {
            std::thread::sleep(Duration::from_millis(1500));
            *self.0.lock().unwrap() = Some(
                SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis(),
            );
        }
    }
}

/// The next report's create is marked as about to leave by the previous
/// report's commit; when a slow listener holds it up, the mark is written
/// again with the time the request really leaves (the lookup's wait counts
/// from it).
#[test]
fn a_create_held_up_after_its_mark_is_marked_again_when_it_leaves() {
    let sb = sandbox();
    let dir = tempdir();
    let client = open(dir.path(), &sb);
    client.submit(feedback("first")).unwrap();
    let second = client.submit(feedback("second")).unwrap();
    let listener = Arc::new(SlowListener(std::sync::Mutex::new(None)));
    client.set_listener(Some(listener.clone()));
    let r = client.flush(Duration::from_secs(20)).unwrap();
    assert_eq!(r.pending, 0, "{r:?}");
    let woke = listener.0.lock().unwrap().expect("the listener ran");
    let sent_at: i64 = rusqlite::Connection::open(dir.path().join("outbox.sqlite"))
        .unwrap()
        .query_row(
            "SELECT create_sent_at FROM reports WHERE id = ?1",
            [second],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        sent_at as u128 >= woke,
        "marked at {sent_at}, before the listener let it go at {woke}"
    );
}

/// The API key goes to the configured server's origin only: a file element
/// URL that the server hands back on another host, scheme or port gets no
/// request at all, and its attachment is rejected with the reason, while
/// one on the same origin is uploaded as usual.
#[test]
fn an_element_url_on_another_origin_gets_no_request_and_no_key() {
    let sb = sandbox();
    let elsewhere = sandbox();
    let dir = tempdir();
    let client = open(dir.path(), &sb);
    let rec = Recorder::new();
    client.set_listener(Some(rec.clone()));
    let id = client
        .submit(
            feedback("elements elsewhere")
                .attach(Attachment::from_bytes("Screenshot", "a.png", b"a".to_vec()))
                .attach(Attachment::from_bytes("Log", "b.log", b"b".to_vec())),
        )
        .unwrap();
    let same = format!(
        "{}/projects/WidgetPro/feedbackTypes/Mobile/feedback/BUG-0042/fileElements/Log",
        sb.base_url()
    );
    let other = format!(
        "{}/projects/WidgetPro/feedbackTypes/Mobile/feedback/BUG-0042/fileElements/Screenshot",
        elsewhere.base_url()
    );
    sb.inject(Fault::Body {
        status: 201,
        body: json!({
            "id": "0c1d", "key": "BUG-0042", "url": "https://example.invalid/BUG-0042",
            "fileElements": [
                {"key": "Screenshot", "title": "Screenshot", "url": other, "acceptsMultipleAttachments": true},
                {"key": "Log", "title": "Log", "url": same, "acceptsMultipleAttachments": true}
            ]
        })
        .to_string(),
    });
    let r = client.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(r.receipts[0].state, ReportState::Delivered);
    let rejected = &r.receipts[0].rejected_attachments;
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert!(
        rejected[0].starts_with("a.png: ") && rejected[0].contains("refused"),
        "{rejected:?}"
    );
    assert!(
        rejected[0].contains(&format!("http://127.0.0.1:{}", elsewhere.port())),
        "the reason names the other origin: {rejected:?}"
    );
    assert!(elsewhere.requests().is_empty(), "no request went elsewhere");
    // The same-origin element was tried, with the key, as usual (the
    // faulted create made no feedback there, so the sandbox says 404).
    assert!(rejected[1].starts_with("b.log: ") && rejected[1].contains("(404)"));
    assert!(sb
        .requests()
        .iter()
        .any(|q| q.path.ends_with("/BUG-0042/fileElements/Log") && q.status == 404));
    let status = client.report(id).unwrap();
    let states: Vec<AttachmentState> = status.attachments.iter().map(|a| a.state).collect();
    assert_eq!(
        states,
        [AttachmentState::Rejected, AttachmentState::Rejected]
    );
    assert!(rec
        .events()
        .iter()
        .any(|e| matches!(e, Event::AttachmentRejected { file_name, .. } if file_name == "a.png")));
}
