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
use fieldreport::sandbox::Fault;
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
            Dest::Abc => {
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
            Dest::Abc => (
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
            Dest::Abc => assert_eq!(error.message, "a is unknown; b must be a number"),
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
            Dest::Abc => {
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
