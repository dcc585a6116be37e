//! Delivery to the destinations other than Centercode, through the Client
//! and the one engine, each case run against every such destination's
//! sandbox (the cases that mean the same for every server against
//! Centercode's too): delivered with the server's reference, retried,
//! paused on a refused key, dead with the server's words, and never posted
//! twice when an answer is lost and the server can be asked. The fault
//! storm of every destination is in `tests/faults.rs`, the kill storm in
//! `tests/kill.rs`.

mod common;

use std::time::Duration;

use common::*;
use fieldreport::sandbox::{Fault, Sandbox, SandboxConfig};
use fieldreport::{
    AbcConfig, ApptentiveConfig, Attachment, AttachmentState, Client, Config, CrashReport, Error,
    Feedback, ReportState,
};
use serde_json::json;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR-sample-image-bytes";

fn feedback_with_files() -> Feedback {
    Feedback::new("Button is off")
        .description("By 3px")
        .submitter("ann@example.com")
        .field("rating", json!(5))
        .attach(Attachment::from_bytes(
            "screenshot",
            "shot.png",
            PNG.to_vec(),
        ))
        .attach(Attachment::from_bytes(
            "log",
            "notes.txt",
            b"plain notes".to_vec(),
        ))
}

#[test]
fn feedback_and_crash_reports_are_delivered_with_the_servers_reference() {
    for dest in Dest::OTHERS {
        let sb = dest.sandbox();
        let dir = tempdir();
        let client = dest.open(dir.path(), &sb);
        let fb = client.submit(feedback_with_files()).unwrap();
        let crash = client
            .submit_crash(CrashReport::from_text(
                "SIGSEGV in render()\n#0 0xdead in draw\n",
            ))
            .unwrap();
        let r = client.flush(Duration::from_secs(20)).unwrap();
        assert_eq!(r.receipts.len(), 2, "{dest:?}: {r:?}");
        assert_eq!(r.pending, 0, "{dest:?}");
        let created = sb.feedback();
        assert_eq!(created.len(), 2, "{dest:?}: one request each, no duplicate");
        let status = client.report(fb).unwrap();
        assert_eq!(status.state, ReportState::Delivered, "{dest:?}");
        assert_eq!(status.server_key.as_deref(), Some(created[0].id.as_str()));
        assert_eq!(dest.summary_of(&created[0].body), "Button is off");
        assert_eq!(client.report(crash).unwrap().state, ReportState::Delivered);
        let states: Vec<AttachmentState> = status.attachments.iter().map(|a| a.state).collect();
        let uploads = sb.uploads();
        match dest {
            Dest::Abc | Dest::AbcPresigned => {
                // ABC takes images only: the text file is rejected, with ABC's rule.
                assert_eq!(
                    states,
                    [AttachmentState::Uploaded, AttachmentState::Rejected]
                );
                let rejected = &r.receipts[0].rejected_attachments;
                assert_eq!(rejected.len(), 1);
                assert!(
                    rejected[0].starts_with("notes.txt: ABC accepts image files only"),
                    "{rejected:?}"
                );
                assert_eq!(created[0].body["rating"], 5);
                assert_eq!(created[0].body["client_id"], status.client_id.as_str());
                assert_eq!(created[0].body["os"], std::env::consts::OS);
                let log = created[1].body["crash_log"].as_str().unwrap();
                assert!(log.contains("SIGSEGV in render()"), "{log}");
                assert_eq!(uploads.len(), 1);
                assert_eq!(uploads[0].sha256_hex, sha256_hex(PNG));
                // A multipart create's file part, or a PUT to the store.
                let how = match dest {
                    Dest::AbcPresigned => "presigned",
                    _ => "images",
                };
                assert_eq!(uploads[0].element_key, how);
            }
            Dest::Centercode => unreachable!("the other destinations only"),
            Dest::Apptentive => {
                assert_eq!(
                    states,
                    [AttachmentState::Uploaded, AttachmentState::Uploaded]
                );
                assert!(r.receipts[0].rejected_attachments.is_empty());
                let rec = &created[0].body;
                assert_eq!(rec["data"]["rating"], 5);
                assert_eq!(rec["data"]["client_id"], status.client_id.as_str());
                assert_eq!(rec["user"]["email"], "ann@example.com");
                assert_eq!(rec["app_version"]["version"], "2.3.1");
                assert_eq!(rec["device"]["os_name"], std::env::consts::OS);
                assert_eq!(created[1].body["feedback"]["type"], "crash");
                let shas: Vec<&str> = uploads.iter().map(|u| u.sha256_hex.as_str()).collect();
                assert!(shas.contains(&sha256_hex(PNG).as_str()), "{uploads:?}");
                assert_eq!(uploads.len(), 3, "two files and the crash log");
            }
        }
    }
}

#[test]
fn a_server_error_is_retried_and_delivered_once() {
    for dest in Dest::ALL {
        let sb = dest.sandbox();
        let dir = tempdir();
        let client = dest.open(dir.path(), &sb);
        let id = client.submit(Feedback::new("retried")).unwrap();
        sb.inject(Fault::status(503));
        let r = client.flush(Duration::from_secs(10)).unwrap();
        assert!(r.stopped.unwrap().contains("503"), "{dest:?}");
        assert_eq!(client.report(id).unwrap().state, ReportState::Queued);
        drain(&client, 20);
        assert_eq!(client.report(id).unwrap().state, ReportState::Delivered);
        assert_eq!(sb.feedback().len(), 1, "{dest:?}");
        assert_eq!(client.stats().unwrap().ambiguous_resends, 0);
    }
}

#[test]
fn a_refused_key_pauses_delivery_until_a_new_key_is_set() {
    for dest in Dest::ALL {
        let sb = dest.sandbox();
        let dir = tempdir();
        let client = Client::open(dest.config(dir.path(), &sb, "wrong-key")).unwrap();
        let id = client.submit(Feedback::new("held")).unwrap();
        let r = client.flush(Duration::from_secs(10)).unwrap();
        let stopped = r.stopped.unwrap();
        assert!(stopped.starts_with("paused"), "{dest:?}: {stopped}");
        assert!(!stopped.contains("wrong-key"), "the key never shows");
        let seen = sb.requests();
        assert_eq!(seen.last().unwrap().status, dest.refused_key_status());
        assert!(client.stats().unwrap().paused_for_auth);
        // Paused: no request until the app gives a new key.
        let before = sb.requests().len();
        client.flush(Duration::from_secs(5)).unwrap();
        assert_eq!(sb.requests().len(), before, "{dest:?}");
        client.set_api_key(sb.api_key()).unwrap();
        client.flush(Duration::from_secs(10)).unwrap();
        assert_eq!(
            client.report(id).unwrap().state,
            ReportState::Delivered,
            "{dest:?}"
        );
    }
}

#[test]
fn a_refusal_is_dead_with_every_message_the_server_gave() {
    for dest in Dest::OTHERS {
        let sb = dest.sandbox();
        let dir = tempdir();
        let client = dest.open(dir.path(), &sb);
        let id = client.submit(Feedback::new("refused")).unwrap();
        let (status, body) = match dest {
            Dest::Abc | Dest::AbcPresigned => (
                400,
                r#"{"message":["a is unknown","b must be a number"],"error":"Bad Request","statusCode":400,"path":"/x"}"#,
            ),
            Dest::Apptentive => (422, r#"{"errors":["feedback can't be blank"]}"#),
            Dest::Centercode => unreachable!("the other destinations only"),
        };
        sb.inject(Fault::Body {
            status,
            body: body.into(),
        });
        client.flush(Duration::from_secs(10)).unwrap();
        let report = client.report(id).unwrap();
        assert_eq!(report.state, ReportState::Dead, "{dest:?}");
        let error = report.last_error.unwrap();
        assert_eq!(error.status, Some(status));
        match dest {
            Dest::Abc | Dest::AbcPresigned => {
                assert_eq!(error.message, "a is unknown; b must be a number")
            }
            Dest::Apptentive => assert_eq!(error.message, "feedback can't be blank"),
            Dest::Centercode => unreachable!("the other destinations only"),
        }
        assert!(sb.feedback().is_empty());
    }
}

/// The answer to a request that the server acted on is lost. ABC is asked
/// (the client-id field is mapped) and the report is found, not posted
/// again; Apptentive cannot be asked (nor Centercode without its lookup
/// configured), so the report is sent again and counted as a possible
/// duplicate.
#[test]
fn a_lost_answer_is_looked_up_where_the_server_allows_it() {
    for dest in Dest::ALL {
        let sb = dest.sandbox();
        let dir = tempdir();
        let mut config = dest.config(dir.path(), &sb, sb.api_key());
        // The search waits out twice the request timeout before re-sending.
        config.policy.request_timeout = Duration::from_millis(300);
        let client = Client::open(config).unwrap();
        let id = client.submit(Feedback::new("in doubt")).unwrap();
        sb.inject(Fault::ActThenDrop);
        let r = client.flush(Duration::from_secs(10)).unwrap();
        assert!(r.stopped.is_some(), "{dest:?}: {r:?}");
        assert_eq!(sb.feedback().len(), 1);
        drain(&client, 20);
        let report = client.report(id).unwrap();
        assert_eq!(report.state, ReportState::Delivered, "{dest:?}");
        let stats = client.stats().unwrap();
        match dest {
            Dest::Abc | Dest::AbcPresigned => {
                assert_eq!(
                    sb.feedback().len(),
                    1,
                    "found by its client id, not posted twice"
                );
                assert_eq!(
                    report.server_key.as_deref(),
                    Some(sb.feedback()[0].id.as_str())
                );
                assert_eq!(stats.ambiguous_resends, 0);
            }
            Dest::Centercode | Dest::Apptentive => {
                assert_eq!(
                    sb.feedback().len(),
                    2,
                    "sent again: the server cannot be asked"
                );
                assert_eq!(stats.ambiguous_resends, 1);
            }
        }
    }
}

#[test]
fn what_a_destination_can_never_take_is_refused_at_submit_and_nothing_is_stored() {
    let sb = Dest::Abc.sandbox();
    let dir = tempdir();
    let no_crash_field = AbcConfig::new(&sb.base_url(), "1", "1", sb.api_key(), &[]).unwrap();
    let client = Client::open(Config::abc(dir.path(), no_crash_field)).unwrap();
    let e = client
        .submit_crash(CrashReport::from_text("boom"))
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidInput { reason } if reason.contains("crash_log")),
        "{e}"
    );
    assert_eq!(client.stats().unwrap().pending, 0);

    let sb = Dest::Apptentive.sandbox();
    let dir = tempdir();
    let small = ApptentiveConfig::new(&sb.base_url(), sb.api_key())
        .unwrap()
        .with_max_record_bytes(4096)
        .unwrap();
    let client = Client::open(Config::apptentive(dir.path(), small)).unwrap();
    let e = client
        .submit(Feedback::new("big").attach(Attachment::from_bytes("f", "f.bin", vec![7; 8192])))
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidInput { reason } if reason.contains("4096")),
        "{e}"
    );
    assert_eq!(client.stats().unwrap().pending, 0);
    let files = std::fs::read_dir(dir.path().join("files"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(files, 0, "the staged copy is gone");
}

#[test]
fn bad_settings_get_a_specific_error_and_open_nothing() {
    let dir = tempdir();
    let outbox = dir.path().join("never");
    let cases: Vec<(Result<Config, Error>, &str)> = vec![
        (
            AbcConfig::new("http://127.0.0.1:4000", "first", "1", "k", &[])
                .map(|c| Config::abc(&outbox, c)),
            "project_id",
        ),
        (
            AbcConfig::new("http://127.0.0.1:4000", "1", "1", "k", &[("colour", "c")])
                .map(|c| Config::abc(&outbox, c)),
            "unknown role",
        ),
        (
            AbcConfig::new("ftp://h", "1", "1", "k", &[]).map(|c| Config::abc(&outbox, c)),
            "base_url",
        ),
        (
            ApptentiveConfig::new("https://api.example", "has space")
                .map(|c| Config::apptentive(&outbox, c)),
            "token",
        ),
        (
            // A remote server over plain http would carry the key in clear text.
            AbcConfig::new("http://abc.example:4000", "1", "1", "k", &[])
                .map(|c| Config::abc(&outbox, c)),
            "clear text",
        ),
    ];
    for (made, word) in cases {
        let e = made.and_then(Client::open).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidConfig { reason } if reason.contains(word)),
            "{word}: {e}"
        );
        assert!(!outbox.exists(), "{word}: nothing is opened");
    }
}

/// Reports queued for Centercode stay Centercode's: an ABC client in the
/// same outbox counts them and never sends them, nor can it take them.
#[test]
fn a_centercode_report_is_never_sent_to_another_kind_of_server() {
    let cc = sandbox();
    let abc = Dest::Abc.sandbox();
    let dir = tempdir();
    let id = open(dir.path(), &cc)
        .submit(Feedback::new("for Centercode"))
        .unwrap();
    let client = Dest::Abc.open(dir.path(), &abc);
    assert_eq!(client.stats().unwrap().other_destinations, 1);
    assert_eq!(client.retarget_other_destinations().unwrap(), 0);
    client.flush(Duration::from_secs(5)).unwrap();
    assert!(abc.requests().is_empty());
    assert_eq!(client.report(id).unwrap().state, ReportState::Queued);
}

const PNG2: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR-a-second-image";

fn presigned_config(dir: &std::path::Path, sb: &Sandbox, key: &str) -> Config {
    Dest::AbcPresigned.config(dir, sb, key)
}

fn is_put(r: &fieldreport::sandbox::RequestRecord) -> bool {
    r.method == "PUT" && r.path.starts_with("/s3/")
}

fn is_upload_url(r: &fieldreport::sandbox::RequestRecord) -> bool {
    r.path.ends_with("/image-upload-url")
}

/// The object key a presigned URL names, from the IMAGES field's value.
fn object_of(url: &serde_json::Value) -> String {
    let url = url.as_str().unwrap();
    assert!(!url.contains('?'), "an object URL has no query: {url}");
    url.rsplit('/').next().unwrap().to_string()
}

#[test]
fn presigned_images_are_put_to_the_store_and_their_object_urls_sent() {
    let sb = Dest::Abc.sandbox();
    let dir = tempdir();
    let client = Client::open(presigned_config(dir.path(), &sb, sb.api_key())).unwrap();
    let fb = client
        .submit(feedback_with_files().attach(Attachment::from_bytes(
            "screenshot",
            "second.png",
            PNG2.to_vec(),
        )))
        .unwrap();
    let r = client.flush(Duration::from_secs(20)).unwrap();
    assert_eq!(r.pending, 0, "{r:?}");
    let status = client.report(fb).unwrap();
    assert_eq!(status.state, ReportState::Delivered);
    let states: Vec<AttachmentState> = status.attachments.iter().map(|a| a.state).collect();
    assert_eq!(
        states,
        [
            AttachmentState::Uploaded,
            AttachmentState::Rejected,
            AttachmentState::Uploaded
        ]
    );
    let rejected = &r.receipts[0].rejected_attachments;
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(
        rejected[0].starts_with("notes.txt: ABC accepts image files only"),
        "{rejected:?}"
    );
    // The bytes are at the store, each image once, in order.
    let uploads = sb.uploads();
    assert_eq!(uploads.len(), 2, "{uploads:?}");
    assert!(uploads.iter().all(|u| u.element_key == "presigned"));
    assert_eq!(uploads[0].sha256_hex, sha256_hex(PNG));
    assert_eq!(uploads[1].sha256_hex, sha256_hex(PNG2));
    assert_eq!(uploads[0].content_type, "image/png");
    // The feedback came by JSON, its IMAGES field holding the object URLs.
    let created = sb.feedback();
    assert_eq!(created.len(), 1);
    let images = created[0].body["images"].as_array().unwrap();
    let objects: Vec<String> = images.iter().map(object_of).collect();
    assert_eq!(
        objects,
        [uploads[0].file_name.clone(), uploads[1].file_name.clone()]
    );
    assert!(images[0]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}/s3/sandbox-images/", sb.base_url())));
    assert_eq!(created[0].body["message"], "Button is off");
    // Every request in order; the PUTs were taken, which the sandbox's
    // store refuses when they carry the x-api-key header (or any other
    // credential): they carried none.
    let seen: Vec<(String, String, u16)> = sb
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.path.clone(), r.status))
        .collect();
    let kinds: Vec<&str> = sb
        .requests()
        .iter()
        .map(|r| {
            if is_upload_url(r) {
                "url"
            } else if is_put(r) {
                "put"
            } else if r.path.ends_with("/feedbacks") {
                "create"
            } else {
                "other"
            }
        })
        .collect();
    assert_eq!(kinds, ["url", "put", "url", "put", "create"], "{seen:?}");
    assert!(
        seen.iter().all(|(_, _, s)| (200..300).contains(s)),
        "{seen:?}"
    );
    // The signature shows nowhere the app can read.
    let shown = format!("{r:?} {status:?} {:?}", client.stats().unwrap());
    assert!(!shown.contains("X-Amz-Signature"), "{shown}");
}

/// The presigned URL ABC hands out names another origin (its S3 store):
/// the bytes go there, without the key.
#[test]
fn a_presigned_url_of_another_origin_gets_the_bytes_and_never_the_key() {
    use std::io::{Read, Write};
    let abc = Dest::Abc.sandbox();
    let store = Dest::Abc.sandbox();
    // A URL the store signed (its own upload-URL route stands in for ABC's
    // S3 configuration).
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", store.port())).unwrap();
    write!(
        conn,
        "GET /api/projects/1/channels/1/image-upload-url?extension=png HTTP/1.1\r\n\
         Host: 127.0.0.1:{}\r\nx-api-key: {}\r\nConnection: close\r\n\r\n",
        store.port(),
        store.api_key()
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let signed = answer.split("\r\n\r\n").nth(1).unwrap().trim().to_string();
    assert!(signed.starts_with(&store.base_url()), "{signed}");
    assert_ne!(store.base_url(), abc.base_url(), "two origins");
    // ABC answers the upload-URL request with it.
    abc.inject(Fault::Body {
        status: 200,
        body: signed.clone(),
    });
    let dir = tempdir();
    let client = Client::open(presigned_config(dir.path(), &abc, abc.api_key())).unwrap();
    let id = client
        .submit(Feedback::new("cross-origin").attach(Attachment::from_bytes(
            "screenshot",
            "shot.png",
            PNG.to_vec(),
        )))
        .unwrap();
    client.flush(Duration::from_secs(20)).unwrap();
    assert_eq!(client.report(id).unwrap().state, ReportState::Delivered);
    let stored = store.uploads();
    assert_eq!(stored.len(), 1, "the store took the PUT (it refuses a key)");
    assert_eq!(stored[0].sha256_hex, sha256_hex(PNG));
    assert!(abc.uploads().is_empty() && !abc.requests().iter().any(is_put));
    let object = signed.split('?').next().unwrap();
    assert_eq!(abc.feedback()[0].body["images"], json!([object]));
}

#[test]
fn a_failed_presigned_step_is_retried_and_the_feedback_created_once() {
    let sb = Dest::Abc.sandbox();
    let dir = tempdir();
    let client = Client::open(presigned_config(dir.path(), &sb, sb.api_key())).unwrap();
    let id = client
        .submit(
            Feedback::new("retried upload").attach(Attachment::from_bytes(
                "screenshot",
                "shot.png",
                PNG.to_vec(),
            )),
        )
        .unwrap();
    // The upload URL: a 503 whose Retry-After holds every report back.
    sb.inject(Fault::Status {
        status: 503,
        retry_after: Some("1".into()),
        rate_limit_reset: None,
    });
    let r = client.flush(Duration::from_secs(10)).unwrap();
    assert!(r.stopped.as_deref().unwrap().contains("503"), "{r:?}");
    assert_eq!(client.report(id).unwrap().state, ReportState::Queued);
    let before = sb.requests().len();
    let r = client.flush(Duration::from_secs(10)).unwrap();
    assert!(
        r.stopped.as_deref().unwrap().starts_with("waiting until"),
        "{r:?}"
    );
    assert_eq!(sb.requests().len(), before, "Retry-After is honoured");
    std::thread::sleep(Duration::from_millis(1100));
    // Then the PUT: a 503, then taken with its answer lost.
    sb.inject(Fault::Delay(Duration::ZERO));
    sb.inject(Fault::status(503));
    sb.inject(Fault::Delay(Duration::ZERO));
    sb.inject(Fault::ActThenDrop);
    let last = drain(&client, 20);
    assert_eq!(last.pending, 0, "{last:?}");
    assert_eq!(sb.pending_faults(), 0);
    assert_eq!(client.report(id).unwrap().state, ReportState::Delivered);
    let created = sb.feedback();
    assert_eq!(created.len(), 1, "created exactly once");
    assert_eq!(client.stats().unwrap().ambiguous_resends, 0);
    let requests = sb.requests();
    let puts: Vec<u16> = requests
        .iter()
        .filter(|r| is_put(r))
        .map(|r| r.status)
        .collect();
    assert_eq!(puts, [503, 0, 200], "each failed PUT done again");
    assert_eq!(requests.iter().filter(|r| is_upload_url(r)).count(), 4);
    // The lost PUT stored an object too; the feedback names the last one.
    let uploads = sb.uploads();
    assert_eq!(uploads.len(), 2);
    assert_eq!(
        object_of(&created[0].body["images"][0]),
        uploads[1].file_name
    );
}

#[test]
fn presigned_refusals_pause_on_the_key_and_reject_an_image_the_store_refuses() {
    // A refused key on the upload-URL route pauses, as on the create.
    let sb = Dest::Abc.sandbox();
    let dir = tempdir();
    let client = Client::open(presigned_config(dir.path(), &sb, "wrong-key")).unwrap();
    let with_image = || {
        Feedback::new("held").attach(Attachment::from_bytes(
            "screenshot",
            "shot.png",
            PNG.to_vec(),
        ))
    };
    let id = client.submit(with_image()).unwrap();
    let r = client.flush(Duration::from_secs(10)).unwrap();
    let stopped = r.stopped.unwrap();
    assert!(stopped.starts_with("paused"), "{stopped}");
    assert!(!stopped.contains("wrong-key"));
    let seen = sb.requests();
    assert_eq!(seen.len(), 1);
    assert!(is_upload_url(&seen[0]) && seen[0].status == 403);
    assert!(client.stats().unwrap().paused_for_auth);
    client.set_api_key(sb.api_key()).unwrap();
    client.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(client.report(id).unwrap().state, ReportState::Delivered);

    // A store that enforces the empty-body checksum ABC signs refuses the
    // bytes: the image is rejected with its words, the feedback delivered.
    let strict = Sandbox::start(SandboxConfig {
        abc: fieldreport::sandbox::AbcChannel {
            enforce_presigned_checksum: true,
            ..Default::default()
        },
        ..SandboxConfig::abc()
    })
    .unwrap();
    let dir = tempdir();
    let client = Client::open(presigned_config(dir.path(), &strict, strict.api_key())).unwrap();
    let id = client.submit(with_image()).unwrap();
    let r = client.flush(Duration::from_secs(10)).unwrap();
    let report = client.report(id).unwrap();
    assert_eq!(report.state, ReportState::Delivered, "{r:?}");
    assert_eq!(report.attachments[0].state, AttachmentState::Rejected);
    let rejected = &r.receipts[0].rejected_attachments;
    assert_eq!(rejected.len(), 1);
    assert!(
        rejected[0].starts_with(
            "shot.png: ABC's image store refused the presigned upload (HTTP 400: BadDigest;"
        ),
        "{rejected:?}"
    );
    assert!(rejected[0].contains("multipart"), "{rejected:?}");
    assert!(!rejected[0].contains("X-Amz"), "{rejected:?}");
    let created = strict.feedback();
    assert_eq!(created.len(), 1);
    assert!(
        created[0].body.get("images").is_none(),
        "{:?}",
        created[0].body
    );
}
