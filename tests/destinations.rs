//! Destinations in the outbox: each report is sent only to the destination
//! it was queued for, back-off gates belong to one destination, and an
//! outbox of schema 6 (before destinations were recorded) upgrades and
//! delivers its reports unchanged.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use fieldreport::sandbox::Fault;
use fieldreport::{Attachment, AttachmentState, Feedback, ReportState};
use serde_json::{json, Value};

/// One destination's 429 holds back its own reports only: another
/// destination's, in the same outbox, go out meanwhile, and neither client
/// sends the other's reports.
#[test]
fn a_429_from_one_destination_never_stops_anothers_reports() {
    let (sa, sb_) = (sandbox(), sandbox());
    let dir = tempdir();
    let a = open(dir.path(), &sa);
    let b = open(dir.path(), &sb_);
    let a1 = a.submit(Feedback::new("for A")).unwrap();
    let b1 = b.submit(Feedback::new("for B")).unwrap();
    assert_eq!(a.stats().unwrap().pending, 1);
    assert_eq!(a.stats().unwrap().other_destinations, 1);
    sa.inject(Fault::rate_limited(600));
    let r = a.flush(Duration::from_secs(5)).unwrap();
    assert_eq!(r.stopped.as_deref(), Some("rate limited by the server"));
    let r = b.flush(Duration::from_secs(5)).unwrap();
    assert_eq!(r.receipts.len(), 1, "{r:?}");
    assert_eq!(b.report(b1).unwrap().state, ReportState::Delivered);
    assert_eq!(received_summaries(&sb_), ["for B"]);
    // A still waits for its server, without a request.
    let before = sa.requests().len();
    let r = a.flush(Duration::from_secs(5)).unwrap();
    assert!(r.receipts.is_empty());
    assert!(r.stopped.unwrap().contains("as the server asked"));
    assert_eq!(sa.requests().len(), before);
    assert_eq!(a.report(a1).unwrap().state, ReportState::Queued);
    assert!(a.stats().unwrap().next_attempt_at.is_some());
    assert_eq!(b.stats().unwrap().other_destinations, 1);
    assert!(
        b.stats().unwrap().next_attempt_at.is_none(),
        "A's wait is not B's"
    );
}

/// A config that names another server never sends the reports queued for
/// the old one (nor its new key to the old server): they are counted, and
/// go only when the app retargets them, or are purged.
#[test]
fn a_changed_config_never_sends_old_reports_elsewhere() {
    let (old, new) = (sandbox(), sandbox());
    let dir = tempdir();
    let (kept, dropped) = {
        let c = open(dir.path(), &old);
        (
            c.submit(Feedback::new("queued for the old server"))
                .unwrap(),
            c.submit(Feedback::new("to purge")).unwrap(),
        )
    };
    let c = open(dir.path(), &new);
    let r = c.flush(Duration::from_secs(5)).unwrap();
    assert!(r.receipts.is_empty());
    assert_eq!(r.pending, 0, "not this destination's");
    assert!(new.requests().is_empty() && old.requests().is_empty());
    let stats = c.stats().unwrap();
    assert_eq!((stats.pending, stats.other_destinations), (0, 2));
    // Explicitly: one purged, the other retargeted.
    c.purge(dropped).unwrap();
    assert_eq!(c.retarget_other_destinations().unwrap(), 1);
    assert_eq!(c.stats().unwrap().other_destinations, 0);
    let r = c.flush(Duration::from_secs(5)).unwrap();
    assert_eq!(r.receipts.len(), 1);
    assert_eq!(c.report(kept).unwrap().state, ReportState::Delivered);
    assert_eq!(received_summaries(&new), ["queued for the old server"]);
    assert!(old.requests().is_empty());
    // purge_other_destinations removes what another destination still has.
    let c_old = open(dir.path(), &old);
    c_old.submit(Feedback::new("left behind")).unwrap();
    drop(c_old);
    assert_eq!(c.stats().unwrap().other_destinations, 1);
    assert_eq!(c.purge_other_destinations().unwrap(), 1);
    assert_eq!(c.stats().unwrap().other_destinations, 0);
}

/// Schema 6 as released, frozen here (the V5 table rebuild plus V6's
/// column): the upgrade from it must keep working whatever comes later.
const FROZEN_V6: &str = "
CREATE TABLE reports (
    id INTEGER PRIMARY KEY, client_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,
    state TEXT NOT NULL, summary TEXT NOT NULL, payload TEXT NOT NULL, context TEXT NOT NULL,
    submitted_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0, create_sent_at INTEGER, server_id TEXT,
    server_key TEXT, server_url TEXT, file_elements TEXT, last_error TEXT, finished_at INTEGER,
    bytes INTEGER NOT NULL, resent_in_doubt INTEGER NOT NULL DEFAULT 0);
CREATE TABLE attachments (
    id INTEGER PRIMARY KEY, report_id INTEGER NOT NULL REFERENCES reports(id) ON DELETE CASCADE,
    position INTEGER NOT NULL, element_key TEXT NOT NULL, file_name TEXT NOT NULL,
    content_type TEXT NOT NULL, stored_name TEXT NOT NULL UNIQUE, size INTEGER NOT NULL,
    sha256 TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending', reason TEXT);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE INDEX attachments_report ON attachments(report_id, position);
CREATE INDEX reports_queue ON reports(state, submitted_at, bytes, next_attempt_at);
CREATE TRIGGER reports_id_floor AFTER DELETE ON reports
    WHEN old.id > coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'id_floor'), 0)
BEGIN
    INSERT INTO meta (key, value) VALUES ('id_floor', CAST(old.id AS TEXT))
        ON CONFLICT (key) DO UPDATE SET value = excluded.value;
END;
PRAGMA user_version = 6;
";

/// A schema-6 outbox holding a queued report (with an attachment), a
/// created one whose attachment is still to upload to its stored file
/// element, and a dead one: after the upgrade the queued report is posted
/// with its stored body unchanged, the created one resumes at its upload
/// (no second create), the dead one stays dead, and the old outbox-wide
/// rate window becomes this destination's.
#[test]
fn a_frozen_version_6_outbox_upgrades_and_delivers_unchanged() {
    let sb = sandbox();
    let dir = tempdir();
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    // The created report exists on the server: made there as version 6 did.
    let answer = ureq::post(format!(
        "{}/projects/WidgetPro/feedback/Mobile?apiKey={}",
        sb.base_url(),
        sb.api_key()
    ))
    .header("Content-Type", "application/json")
    .send(json!({"summary": "created by version 6"}).to_string())
    .unwrap()
    .body_mut()
    .read_to_string()
    .unwrap();
    let created: Value = serde_json::from_str(&answer).unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    let elements = created["fileElements"].to_string();
    let (q_bytes, c_bytes) = (b"queued copy".to_vec(), b"created copy".to_vec());
    std::fs::write(files.join("att-q"), &q_bytes).unwrap();
    std::fs::write(files.join("att-c"), &c_bytes).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let queued_body =
        r#"{"summary":"queued by version 6","topic":23795,"description":"as stored"}"#;
    {
        let c = rusqlite::Connection::open(dir.path().join("outbox.sqlite")).unwrap();
        c.execute_batch(FROZEN_V6).unwrap();
        c.execute_batch(&format!(
            "INSERT INTO reports (id, client_id, seq, kind, state, summary, payload, context, submitted_at, bytes)
               VALUES (1, 'c1', 1, 'feedback', 'queued', 'queued by version 6', '{queued_body}', '{{}}', {now}, 100);
             INSERT INTO reports (id, client_id, seq, kind, state, summary, payload, context, submitted_at, bytes,
                                  server_id, server_key, server_url, file_elements)
               VALUES (2, 'c2', 2, 'feedback', 'created', 'created by version 6', '{{\"summary\":\"created by version 6\"}}',
                       '{{}}', {now}, 100, '{id}', '{key}', 'u', '{elements}');
             INSERT INTO reports (id, client_id, seq, kind, state, summary, payload, context, submitted_at, bytes,
                                  last_error, finished_at)
               VALUES (3, 'c3', 3, 'feedback', 'dead', 'dead in version 6', '{{\"summary\":\"dead\"}}', '{{}}', {now}, 10,
                       '{{\"status\":400,\"message\":\"refused\",\"invalid_parameters\":[]}}', {now});
             INSERT INTO attachments (report_id, position, element_key, file_name, content_type, stored_name, size, sha256)
               VALUES (1, 0, 'Screenshot', 'q.png', 'image/png', 'att-q', {ql}, '{qh}'),
                      (2, 0, 'Log', 'c.log', 'text/plain', 'att-c', {cl}, '{ch}');
             INSERT INTO meta VALUES ('rate_window', '{now}');",
            id = created["id"].as_str().unwrap(),
            ql = q_bytes.len(),
            qh = sha256_hex(&q_bytes),
            cl = c_bytes.len(),
            ch = sha256_hex(&c_bytes),
        ))
        .unwrap();
    }
    let client = open(dir.path(), &sb);
    let db = dir.path().join("outbox.sqlite");
    assert_eq!(user_version(&db), current_schema_version());
    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let unbound: i64 = conn
        .query_row(
            "SELECT count(*) FROM reports WHERE destination = 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        unbound, 0,
        "the first Centercode client takes schema 6's reports"
    );
    let gates: Vec<String> = conn
        .prepare("SELECT key FROM meta WHERE key LIKE 'rate_window%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(gates.len(), 1);
    assert!(
        gates[0].starts_with("rate_window:") && gates[0] != "rate_window:0",
        "{gates:?}"
    );
    let stats = client.stats().unwrap();
    assert_eq!(
        (stats.pending, stats.dead, stats.other_destinations),
        (2, 1, 0)
    );

    let r = client.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(r.pending, 0, "{r:?}");
    let feedback = sb.feedback();
    assert_eq!(
        feedback.len(),
        2,
        "one create by version 6, one now: no second create"
    );
    let posted = &feedback[1].body;
    assert_eq!(
        posted,
        &serde_json::from_str::<Value>(queued_body).unwrap(),
        "the stored body, unchanged"
    );
    let uploads = sb.uploads();
    assert_eq!(uploads.len(), 2);
    let resumed = uploads.iter().find(|u| u.feedback_key == key).unwrap();
    assert_eq!(
        (resumed.element_key.as_str(), resumed.sha256_hex.clone()),
        ("Log", sha256_hex(&c_bytes))
    );
    assert!(uploads.iter().any(|u| u.sha256_hex == sha256_hex(&q_bytes)));
    for id in [1, 2] {
        let s = client.report(id).unwrap();
        assert_eq!(s.state, ReportState::Delivered);
        assert!(s
            .attachments
            .iter()
            .all(|a| a.state == AttachmentState::Uploaded));
    }
    let dead = client.report(3).unwrap();
    assert_eq!(dead.state, ReportState::Dead);
    assert_eq!(dead.last_error.unwrap().message, "refused");
    // New reports after the upgrade go to the same destination.
    let next = client
        .submit(Feedback::new("after").attach(Attachment::from_bytes(
            "Log",
            "n.log",
            b"n".to_vec(),
        )))
        .unwrap();
    client.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(client.report(next).unwrap().state, ReportState::Delivered);
}

/// A crash log over ABC's 1 MiB body limit is sent as its head and tail,
/// the field saying what was cut, and the cut is counted in `stats()`;
/// one that fits is sent whole and not counted.
#[test]
fn an_abc_crash_log_cut_to_fit_is_said_in_the_field_and_counted() {
    use fieldreport::sandbox::{Sandbox, SandboxConfig};
    use fieldreport::{AbcConfig, Config, CrashReport};
    let sb = Sandbox::start(SandboxConfig::abc()).unwrap();
    let dir = tempdir();
    let abc = AbcConfig::new(
        &sb.base_url(),
        "1",
        "1",
        sb.api_key(),
        &[("crash_log", "crash_log")],
    )
    .unwrap();
    let client = fieldreport::Client::open(Config::abc(dir.path(), abc)).unwrap();
    // Over 2 MB of text: the cut is judged on the log's own bytes.
    let big: String = (0..60_000)
        .map(|i| format!("frame {i:06} at 0x{:016x} in render_pass\n", i * 7919))
        .collect();
    assert!(big.len() > 2 * 1024 * 1024);
    client
        .submit_crash(CrashReport::from_text("small"))
        .unwrap();
    client.submit_crash(CrashReport::from_text(&big)).unwrap();
    let r = client.flush(Duration::from_secs(30)).unwrap();
    assert_eq!(r.pending, 0, "{r:?}");
    let created = sb.feedback();
    assert_eq!(created.len(), 2);
    assert_eq!(created[0].body["crash_log"], "small");
    let sent = created[1].body["crash_log"].as_str().unwrap();
    assert!(sent.starts_with("frame 000000"), "the head is kept");
    assert!(
        sent.trim_end().ends_with("in render_pass"),
        "the tail is kept"
    );
    assert!(
        sent.contains("bytes cut from the middle"),
        "the field says so"
    );
    assert!(sent.len() < 1024 * 1024);
    assert_eq!(client.stats().unwrap().crash_logs_cut, 1);
}
