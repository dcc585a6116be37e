//! The outbox: bad input changes nothing, caps and eviction, corruption,
//! schema upgrades, orphans, permissions, and secrets.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use fieldreport::{
    ApiKey, Attachment, Client, Config, CrashReport, Error, Event, Feedback, ReportFilter,
    ReportKind, ReportState, ServerConfig,
};
use serde_json::json;

#[test]
fn bad_input_gets_a_specific_error_and_changes_nothing() {
    let sb = sandbox();
    let dir = tempdir();
    let mut cfg = config(dir.path(), &sb);
    cfg.policy.max_attachment_bytes = 1000;
    let client = Client::open(cfg).unwrap();
    client.submit(Feedback::new("a good one")).unwrap();
    let before = snapshot(&client, dir.path());
    let big = dir.path().join("big.bin");
    std::fs::write(&big, vec![0u8; 1001]).unwrap();
    let empty_log = dir.path().join("empty.log");
    std::fs::write(&empty_log, b"").unwrap();
    let ok_att = || Attachment::from_bytes("Screenshot", "ok.png", b"fine".to_vec());

    let cases: Vec<(&str, Result<i64, Error>)> = vec![
        ("empty summary", client.submit(Feedback::new("  "))),
        ("two-line summary", client.submit(Feedback::new("a\nb"))),
        ("NUL in summary", client.submit(Feedback::new("a\0b"))),
        (
            "huge summary",
            client.submit(Feedback::new("x".repeat(1001))),
        ),
        (
            "huge description",
            client.submit(Feedback::new("s").description("d".repeat(100_001))),
        ),
        (
            "empty submitter",
            client.submit(Feedback::new("s").submitter("")),
        ),
        (
            "empty field name",
            client.submit(Feedback::new("s").field("", json!(1))),
        ),
        (
            "duplicate field",
            client.submit(Feedback::new("s").field("a", json!(1)).field("a", json!(2))),
        ),
        (
            "summary as an extra field",
            client.submit(Feedback::new("s").field("summary", json!(5))),
        ),
        (
            "description as an extra field",
            client.submit(Feedback::new("s").field("description", json!("other"))),
        ),
        (
            "absurd field value",
            client.submit(Feedback::new("s").field("blob", json!("x".repeat(70_000)))),
        ),
        (
            "missing file",
            client.submit(
                Feedback::new("s")
                    .attach(ok_att())
                    .attach(Attachment::from_path("Screenshot", "/nonexistent/x.png")),
            ),
        ),
        (
            "directory",
            client.submit(
                Feedback::new("s")
                    .attach(ok_att())
                    .attach(Attachment::from_path("Screenshot", dir.path())),
            ),
        ),
        (
            "device",
            client.submit(
                Feedback::new("s")
                    .attach(ok_att())
                    .attach(Attachment::from_path("Screenshot", "/dev/null")),
            ),
        ),
        (
            "too large file",
            client.submit(
                Feedback::new("s")
                    .attach(ok_att())
                    .attach(Attachment::from_path("Screenshot", &big)),
            ),
        ),
        (
            "too large bytes",
            client.submit(Feedback::new("s").attach(Attachment::from_bytes(
                "Screenshot",
                "b",
                vec![0; 1001],
            ))),
        ),
        (
            "bad element key",
            client.submit(Feedback::new("s").attach(Attachment::from_bytes(
                "../x",
                "a.png",
                vec![1],
            ))),
        ),
        (
            "bytes without name",
            client.submit(Feedback::new("s").attach(Attachment {
                file_name: None,
                ..ok_att()
            })),
        ),
        (
            "slash in name",
            client.submit(Feedback::new("s").attach(Attachment::from_bytes(
                "Screenshot",
                "a/b.png",
                vec![1],
            ))),
        ),
        (
            "bad content type",
            client.submit(Feedback::new("s").attach(ok_att().with_content_type("png"))),
        ),
        (
            "empty crash text",
            client.submit_crash(CrashReport::from_text(" \n ")),
        ),
        (
            "empty crash file",
            client.submit_crash(CrashReport::from_file(&empty_log)),
        ),
        (
            "missing crash file",
            client.submit_crash(CrashReport::from_file("/nonexistent/crash.log")),
        ),
        (
            "crash log is a directory",
            client.submit_crash(CrashReport::from_file(dir.path())),
        ),
    ];
    for (what, result) in cases {
        let err = result.expect_err(what);
        let ok = match what {
            "missing file"
            | "directory"
            | "device"
            | "missing crash file"
            | "crash log is a directory" => {
                matches!(err, Error::AttachmentUnreadable { .. })
            }
            "too large file" | "too large bytes" => {
                matches!(
                    err,
                    Error::AttachmentTooLarge {
                        size: 1001,
                        limit: 1000,
                        ..
                    }
                )
            }
            _ => matches!(err, Error::InvalidInput { .. }),
        };
        assert!(ok, "{what}: unexpected error {err:?}");
        assert!(!err.to_string().is_empty());
        assert_eq!(
            snapshot(&client, dir.path()),
            before,
            "{what} changed the outbox"
        );
    }
    // Not found and wrong state are specific too.
    assert_eq!(client.report(999).unwrap_err(), Error::NotFound { id: 999 });
    assert_eq!(client.purge(999).unwrap_err(), Error::NotFound { id: 999 });
    assert!(matches!(client.retry(1), Err(Error::InvalidState { .. })));
    assert!(matches!(
        client.set_api_key("has space"),
        Err(Error::InvalidInput { .. })
    ));
    assert_eq!(snapshot(&client, dir.path()), before);
}

#[test]
fn bad_config_is_refused_at_open_and_creates_nothing() {
    let dir = tempdir();
    let outbox = dir.path().join("never");
    let base =
        || ServerConfig::with_base_url("https://h.example/api/v1", "WidgetPro", "Mobile", "k");
    let mut zero_cap = Config::new(&outbox, base());
    zero_cap.policy.max_reports = 0;
    let mut long_busy = Config::new(&outbox, base());
    long_busy.policy.busy_timeout = Duration::from_secs(25 * 24 * 3600);
    let mut endless_retry = Config::new(&outbox, base());
    endless_retry.policy.retry_base = Duration::MAX;
    endless_retry.policy.retry_max = Duration::MAX;
    let mut ageless = Config::new(&outbox, base());
    ageless.policy.max_age = Duration::from_secs(u64::MAX / 2);
    let mut unknown_item = Config::new(&outbox, base());
    unknown_item
        .context_fields
        .insert("mood".into(), "Mood".into());
    let mut serial = Config::new(&outbox, base());
    serial
        .app
        .device
        .insert("serial".into(), "R58M12ABCDE".into());
    let mut app_uuid = Config::new(&outbox, base());
    app_uuid
        .app
        .device
        .insert("uuid".into(), "a hardware id".into());
    let mut blank_model = Config::new(&outbox, base());
    blank_model.app.device.insert("model".into(), " ".into());
    let server = |s: ServerConfig| Config::new(&outbox, s);
    let cases: Vec<(&str, Config)> = vec![
        (
            "plain http to a remote host",
            server(ServerConfig::with_base_url(
                "http://h.example/api/v1",
                "P",
                "T",
                "k",
            )),
        ),
        (
            "user info in the base URL",
            server(ServerConfig::with_base_url(
                "https://user@h.example/api/v1",
                "P",
                "T",
                "k",
            )),
        ),
        (
            "a port that is not a number",
            server(ServerConfig::with_base_url(
                "https://h.example:x/api/v1",
                "P",
                "T",
                "k",
            )),
        ),
        (
            "no company nor url",
            server({
                let mut s = base();
                s.base_url = None;
                s
            }),
        ),
        (
            "bad company",
            server(ServerConfig::centercode("a.b/c", "P", "T", "k")),
        ),
        (
            "empty key",
            server({
                let mut s = base();
                s.api_key = ApiKey::new("");
                s
            }),
        ),
        (
            "project with slash",
            server({
                let mut s = base();
                s.project_key = "a/b".into();
                s
            }),
        ),
        (
            "empty type",
            server({
                let mut s = base();
                s.feedback_type_key = "".into();
                s
            }),
        ),
        ("zero cap", zero_cap),
        ("busy timeout over SQLite's int", long_busy),
        ("retry delays past the year 9999", endless_retry),
        ("max age that overflows the clock", ageless),
        ("unknown context item", unknown_item),
        ("unknown device item", serial),
        ("a device uuid set by the app", app_uuid),
        ("a blank device item", blank_model),
    ];
    for (what, cfg) in cases {
        let err = Client::open(cfg).expect_err(what);
        assert!(
            matches!(err, Error::InvalidConfig { .. }),
            "{what}: {err:?}"
        );
        assert!(!outbox.exists(), "{what} created the outbox");
    }
    // Explicit opt-in allows plain http.
    let mut s = ServerConfig::with_base_url("http://h.example/api/v1", "P", "T", "k");
    s.allow_insecure_http = true;
    assert!(Client::open(Config::new(&outbox, s)).is_ok());
}

#[test]
fn caps_evict_machine_made_reports_first_and_count_it() {
    let sb = sandbox();
    let dir = tempdir();
    let mut cfg = config(dir.path(), &sb);
    cfg.policy.max_reports = 4;
    let client = Client::open(cfg).unwrap();
    let rec = Recorder::new();
    client.set_listener(Some(rec.clone()));
    let c1 = client
        .submit_crash(CrashReport::from_text("crash one"))
        .unwrap();
    let f1 = client.submit(Feedback::new("typed one")).unwrap();
    let c2 = client
        .submit_crash(CrashReport::from_text("crash two"))
        .unwrap();
    let f2 = client.submit(Feedback::new("typed two")).unwrap();
    // Full: the next typed feedback evicts the oldest crash, not the newest.
    let f3 = client.submit(Feedback::new("typed three")).unwrap();
    assert_eq!(client.report(c1).unwrap().state, ReportState::Evicted);
    assert_eq!(client.report(c2).unwrap().state, ReportState::Queued);
    // Then the newest crash goes too.
    let f4 = client.submit(Feedback::new("typed four")).unwrap();
    assert_eq!(client.report(c2).unwrap().state, ReportState::Evicted);
    assert!(client
        .report(c2)
        .unwrap()
        .last_error
        .unwrap()
        .message
        .contains("evicted"));
    // Only typed feedback left: a new report is refused, none is evicted.
    let err = client.submit(Feedback::new("typed five")).unwrap_err();
    assert!(matches!(err, Error::OutboxFull { .. }), "{err:?}");
    let err = client
        .submit_crash(CrashReport::from_text("crash three"))
        .unwrap_err();
    assert!(matches!(err, Error::OutboxFull { .. }));
    for id in [f1, f2, f3, f4] {
        assert_eq!(client.report(id).unwrap().state, ReportState::Queued);
    }
    let stats = client.stats().unwrap();
    assert_eq!(stats.evicted, 2);
    assert_eq!(stats.evicted_feedback, 0);
    let evicted: Vec<i64> = rec
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::Evicted { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(evicted, vec![c1, c2]);
    // Evicted crash files are gone from disk.
    assert_eq!(
        std::fs::read_dir(dir.path().join("files")).unwrap().count(),
        0
    );
}

#[test]
fn byte_cap_evicts_crashes_by_size() {
    let sb = sandbox();
    let dir = tempdir();
    let mut cfg = config(dir.path(), &sb);
    cfg.policy.max_bytes = 150_000;
    let client = Client::open(cfg).unwrap();
    let noise = |seed: u32| -> Vec<u8> {
        (0..60_000u32)
            .map(|i| {
                (i.wrapping_mul(2_654_435_761u32)
                    .wrapping_add(seed.wrapping_mul(40_503))
                    >> 24) as u8
            })
            .collect()
    };
    let c1 = client
        .submit_crash(CrashReport {
            attachments: vec![Attachment::from_bytes("Log", "core", noise(1))],
            ..CrashReport::from_text("crash")
        })
        .unwrap();
    let f1 = client
        .submit(Feedback::new("typed").attach(Attachment::from_bytes(
            "Screenshot",
            "s.png",
            noise(2),
        )))
        .unwrap();
    let f2 = client
        .submit(Feedback::new("typed 2").attach(Attachment::from_bytes(
            "Screenshot",
            "s.png",
            noise(3),
        )))
        .unwrap();
    assert_eq!(client.report(c1).unwrap().state, ReportState::Evicted);
    assert_eq!(client.report(f1).unwrap().state, ReportState::Queued);
    assert_eq!(client.report(f2).unwrap().state, ReportState::Queued);
    assert!(client.stats().unwrap().bytes <= 150_000);
    // A single report larger than the whole cap is refused outright.
    let err = client
        .submit(Feedback::new("too big").attach(Attachment::from_bytes(
            "Screenshot",
            "x",
            vec![0; 200_000],
        )))
        .unwrap_err();
    assert!(matches!(err, Error::OutboxFull { .. }));
}

#[test]
fn max_age_evicts_and_counts_typed_feedback_too() {
    let sb = sandbox();
    let dir = tempdir();
    let mut cfg = config(dir.path(), &sb);
    let client = Client::open(cfg.clone()).unwrap();
    let id = client.submit(Feedback::new("old words")).unwrap();
    drop(client);
    std::thread::sleep(Duration::from_millis(30));
    cfg.policy.max_age = Duration::from_millis(10);
    let client = Client::open(cfg).unwrap();
    let s = client.report(id).unwrap();
    assert_eq!(s.state, ReportState::Evicted);
    let stats = client.stats().unwrap();
    assert_eq!((stats.evicted, stats.evicted_feedback), (1, 1));
    assert!(sb.requests().is_empty());
}

#[test]
fn a_corrupt_database_is_moved_aside_and_a_fresh_outbox_opens() {
    let sb = sandbox();
    let dir = tempdir();
    std::fs::create_dir_all(dir.path()).unwrap();
    let garbage = b"this is not an SQLite database, just some bytes that got here".repeat(100);
    std::fs::write(dir.path().join("outbox.sqlite"), &garbage).unwrap();
    let client = open(dir.path(), &sb);
    let aside = client.moved_aside().expect("moved aside").to_path_buf();
    assert_eq!(
        std::fs::read(aside.join("outbox.sqlite")).unwrap(),
        garbage,
        "kept, not deleted"
    );
    assert_eq!(
        client.stats().unwrap().moved_aside.as_deref(),
        Some(aside.to_str().unwrap())
    );
    let id = client.submit(Feedback::new("after the accident")).unwrap();
    assert_eq!(client.flush(Duration::from_secs(10)).unwrap().pending, 0);
    assert_eq!(client.report(id).unwrap().state, ReportState::Delivered);
}

#[test]
fn a_truncated_database_is_moved_aside() {
    let sb = sandbox();
    let dir = tempdir();
    {
        let client = open(dir.path(), &sb);
        for i in 0..50 {
            client
                .submit(Feedback::new(format!("r{i}")).description("x".repeat(2000)))
                .unwrap();
        }
    }
    let db = dir.path().join("outbox.sqlite");
    // Fold the WAL in, then cut the file in the middle of a page.
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    let len = std::fs::metadata(&db).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    f.set_len(len / 2 + 100).unwrap();
    drop(f);
    let client = Client::open(config(dir.path(), &sb));
    match client {
        Ok(c) => {
            // SQLite may read a truncated file as valid up to its end; then
            // every listed report must still read back whole.
            if c.moved_aside().is_none() {
                for r in c.reports(&ReportFilter::default()).unwrap() {
                    assert!(r.summary.starts_with('r'));
                }
            }
            c.submit(Feedback::new("still works")).unwrap();
        }
        Err(e) => panic!("open failed instead of recovering: {e}"),
    }
}

#[test]
fn a_newer_schema_is_refused_and_left_untouched() {
    let sb = sandbox();
    let dir = tempdir();
    drop(open(dir.path(), &sb));
    let db = dir.path().join("outbox.sqlite");
    rusqlite::Connection::open(&db)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let err = Client::open(config(dir.path(), &sb)).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidState { reason } if reason.contains("newer")),
        "{err:?}"
    );
    assert_eq!(common::user_version(&db), 99);
}

/// The sequence continues after an upgrade: from the row id counter, or
/// from `meta.seq` if that ever ran ahead of it (version 3 takes `seq` from
/// the id).
#[test]
fn a_frozen_version_1_outbox_is_upgraded_and_delivered() {
    for (stored_seq, next_seq) in [(1, 2), (41, 42)] {
        let sb = sandbox();
        let dir = tempdir();
        std::fs::create_dir_all(dir.path().join("files")).unwrap();
        let bytes = b"attachment written by version 1".to_vec();
        std::fs::write(dir.path().join("files/att-v1"), &bytes).unwrap();
        {
            let c = rusqlite::Connection::open(dir.path().join("outbox.sqlite")).unwrap();
            c.execute_batch(common::FROZEN_V1).unwrap();
            c.execute_batch(&format!(
                "INSERT INTO reports (client_id, seq, kind, state, summary, payload, context, submitted_at, bytes)
                 VALUES ('c1', {stored_seq}, 'feedback', 'queued', 'from v1', '{{\"summary\":\"from v1\"}}', '{{}}', {}, 100);
                 INSERT INTO attachments (report_id, position, element_key, file_name, content_type, stored_name, size, sha256)
                 VALUES (1, 0, 'Screenshot', 'v1.png', 'image/png', 'att-v1', {}, '{}');
                 INSERT INTO meta VALUES ('seq', '{stored_seq}');",
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis(),
                bytes.len(),
                sha256_hex(&bytes)
            ))
            .unwrap();
        }
        let client = open(dir.path(), &sb);
        assert_eq!(
            common::user_version(&dir.path().join("outbox.sqlite")),
            common::current_schema_version(),
            "upgraded to the current version"
        );
        let indexes: Vec<String> = rusqlite::Connection::open(dir.path().join("outbox.sqlite"))
            .unwrap()
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'reports' AND sql IS NOT NULL")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            indexes,
            ["reports_queue"],
            "one queue index, the two it replaced dropped, no unique index on client_id"
        );
        let check: String = rusqlite::Connection::open(dir.path().join("outbox.sqlite"))
            .unwrap()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        let next = client.submit(Feedback::new("after upgrade")).unwrap();
        let status = client.report(next).unwrap();
        assert_eq!(status.seq, next_seq, "the sequence continues");
        assert_eq!(status.context["seq"], next_seq, "and the context says so");
        let r = client.flush(Duration::from_secs(10)).unwrap();
        assert_eq!(r.pending, 0, "{r:?}");
        assert_eq!(sb.feedback()[0].body["summary"], "from v1");
        assert_eq!(sb.feedback()[1].body["summary"], "after upgrade");
        assert_eq!(sb.uploads()[0].sha256_hex, sha256_hex(&bytes));
    }
}

#[test]
fn orphan_files_are_removed_at_open_and_owned_ones_kept() {
    let sb = sandbox();
    let dir = tempdir();
    let id = {
        let client = open(dir.path(), &sb);
        client
            .submit(Feedback::new("keep my file").attach(Attachment::from_bytes(
                "Screenshot",
                "k.png",
                b"k".to_vec(),
            )))
            .unwrap()
    };
    std::fs::write(
        dir.path().join("files/att-orphan"),
        b"left by a killed submit",
    )
    .unwrap();
    std::fs::write(dir.path().join("files/.tmp-att-half"), b"half").unwrap();
    let client = open(dir.path(), &sb);
    let names: Vec<String> = std::fs::read_dir(dir.path().join("files"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with("att-") && names[0] != "att-orphan");
    client.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(client.report(id).unwrap().state, ReportState::Delivered);
}

#[test]
fn an_attachment_copy_damaged_behind_our_back_is_rejected_not_retried_forever() {
    let sb = sandbox();
    let dir = tempdir();
    let client = open(dir.path(), &sb);
    let id = client
        .submit(
            Feedback::new("damaged")
                .attach(Attachment::from_bytes("Screenshot", "a.png", vec![1; 1000]))
                .attach(Attachment::from_bytes("Screenshot", "b.png", vec![2; 1000])),
        )
        .unwrap();
    let first = std::fs::read_dir(dir.path().join("files"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&first)
        .unwrap()
        .set_len(10)
        .unwrap();
    let r = client.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(r.pending, 0);
    let s = client.report(id).unwrap();
    assert_eq!(s.state, ReportState::Delivered);
    let rejected: Vec<_> = s
        .attachments
        .iter()
        .filter(|a| a.reason.is_some())
        .collect();
    assert_eq!(rejected.len(), 1);
    assert!(rejected[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("missing or changed"));
    assert_eq!(sb.uploads().len(), 1);
}

#[cfg(unix)]
#[test]
fn outbox_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let sb = sandbox();
    let dir = tempdir();
    let outbox = dir.path().join("outbox");
    let client = open(&outbox, &sb);
    client
        .submit(Feedback::new("private").attach(Attachment::from_bytes(
            "Screenshot",
            "p.png",
            vec![1],
        )))
        .unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&outbox), 0o700);
    assert_eq!(mode(&outbox.join("files")), 0o700);
    for entry in std::fs::read_dir(&outbox)
        .unwrap()
        .chain(std::fs::read_dir(outbox.join("files")).unwrap())
    {
        let p = entry.unwrap().path();
        if p.is_file() {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }
}

#[test]
fn the_api_key_appears_nowhere_but_the_query_string() {
    let secret = "SECRET-KEY-7f3a9c";
    let sb = sandbox();
    sb.set_api_key(secret);
    let dir = tempdir();
    let mut cfg = config(dir.path(), &sb);
    cfg.server.api_key = ApiKey::new(secret);
    let client = Client::open(cfg.clone()).unwrap();
    let rec = Recorder::new();
    client.set_listener(Some(rec.clone()));
    client.submit(Feedback::new("one")).unwrap();
    client.submit_crash(CrashReport::from_text("boom")).unwrap();
    sb.inject(fieldreport::sandbox::Fault::Drop);
    client.flush(Duration::from_secs(10)).unwrap();
    sb.set_api_key("rotated");
    std::thread::sleep(Duration::from_millis(250));
    client.flush(Duration::from_secs(10)).unwrap();
    // And against a port where nothing listens, so the transport error text
    // (which may quote the URL) is exercised.
    let dead_dir = tempdir();
    let mut dead_cfg = cfg.clone();
    dead_cfg.outbox_dir = dead_dir.path().to_path_buf();
    dead_cfg.server.base_url = Some("http://127.0.0.1:9/api/v1".into());
    let dead = Client::open(dead_cfg).unwrap();
    dead.submit(Feedback::new("unreachable")).unwrap();
    let r = dead.flush(Duration::from_secs(10)).unwrap();
    let mut texts = vec![
        format!("{cfg:?}"),
        format!("{client:?}"),
        format!("{:?}", client.stats().unwrap()),
        format!("{:?}", client.reports(&ReportFilter::default()).unwrap()),
        format!("{:?}", rec.events()),
        format!("{r:?}"),
        format!("{:?}", dead.stats().unwrap()),
    ];
    assert!(r.receipts[0].error.is_some());
    for d in [dir.path(), dead_dir.path()] {
        for name in ["outbox.sqlite", "outbox.sqlite-wal"] {
            if let Ok(b) = std::fs::read(d.join(name)) {
                texts.push(String::from_utf8_lossy(&b).into_owned());
            }
        }
    }
    for t in &texts {
        assert!(
            !t.contains(secret),
            "the key leaked into: {}",
            &t[..t.len().min(300)]
        );
    }
}

#[test]
fn many_threads_submit_while_flushes_run() {
    let sb = sandbox_unlimited();
    let dir = tempdir();
    let mut cfg = config(dir.path(), &sb);
    cfg.policy.max_requests_per_sec = 0;
    let client = Arc::new(Client::open(cfg).unwrap());
    let mut ids = Vec::new();
    std::thread::scope(|s| {
        let flusher = {
            let client = Arc::clone(&client);
            s.spawn(move || {
                for _ in 0..20 {
                    client.flush(Duration::from_secs(5)).unwrap();
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        let submitters: Vec<_> = (0..4)
            .map(|t| {
                let client = Arc::clone(&client);
                s.spawn(move || {
                    (0..15)
                        .map(|i| {
                            client
                                .submit(Feedback::new(format!("t{t} r{i}")).attach(
                                    Attachment::from_bytes(
                                        "Screenshot",
                                        "s.png",
                                        vec![t as u8; 5000 + i],
                                    ),
                                ))
                                .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in submitters {
            ids.extend(h.join().unwrap());
        }
        flusher.join().unwrap();
    });
    let r = drain(&client, 10);
    assert_eq!(r.pending, 0);
    assert_eq!(ids.len(), 60);
    let mut summaries = common::received_summaries(&sb);
    summaries.sort();
    summaries.dedup();
    assert_eq!(summaries.len(), 60);
    assert_eq!(sb.feedback().len(), 60, "no report posted twice");
    assert_eq!(sb.uploads().len(), 60);
    // Sequence numbers are unique and without gaps.
    let mut seqs: Vec<i64> = ids
        .iter()
        .map(|id| client.report(*id).unwrap().seq)
        .collect();
    seqs.sort();
    assert_eq!(seqs, (1..=60).collect::<Vec<_>>());
}

#[test]
fn listing_filters_by_state_and_kind() {
    let sb = sandbox();
    let dir = tempdir();
    let client = open(dir.path(), &sb);
    client.submit(Feedback::new("f")).unwrap();
    let c = client.submit_crash(CrashReport::from_text("c")).unwrap();
    let crashes = client
        .reports(&ReportFilter {
            kind: Some(ReportKind::Crash),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(crashes.len(), 1);
    assert_eq!(crashes[0].id, c);
    client.flush(Duration::from_secs(5)).unwrap();
    let delivered = client
        .reports(&ReportFilter {
            states: vec![ReportState::Delivered],
            limit: Some(1),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].id, c, "newest first");
    client.purge(c).unwrap();
    assert!(matches!(client.report(c), Err(Error::NotFound { .. })));
}

#[test]
fn crash_from_a_file_streams_and_takes_its_summary_from_the_log() {
    let sb = sandbox();
    let dir = tempdir();
    let client = open(dir.path(), &sb);
    let log = dir.path().join("crash.txt");
    let mut text = String::from("\n\n----\nSIGSEGV in render_frame at 0xdeadbeef\n");
    for i in 0..20_000 {
        text.push_str(&format!("frame {i}: something\n"));
    }
    std::fs::write(&log, &text).unwrap();
    let id = client
        .submit_crash(CrashReport {
            file_name: Some("render.log".into()),
            ..CrashReport::from_file(&log)
        })
        .unwrap();
    let s = client.report(id).unwrap();
    assert_eq!(s.summary, "SIGSEGV in render_frame at 0xdeadbeef");
    assert_eq!(s.kind, ReportKind::Crash);
    assert_eq!(s.attachments[0].file_name, "render.log.gz");
    assert!(s.attachments[0].size < text.len() as u64 / 5, "compressed");
    client.flush(Duration::from_secs(10)).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
    assert_eq!(
        sb.uploads()[0].sha256_hex,
        sha256_hex(&gz.finish().unwrap())
    );
    let body = &sb.feedback()[0].body;
    assert!(body["description"]
        .as_str()
        .unwrap()
        .contains("Crash report from tests"));
}

/// The caps are counted again when another client (another connection,
/// as another process would be) changed the outbox since this client's last
/// submit, and when this client's own flush delivered some: no stale count
/// lets the outbox grow past its cap or refuses a report that fits.
#[test]
fn caps_see_what_another_client_and_a_flush_changed() {
    let sb = sandbox();
    let dir = tempdir();
    let mut cfg = config(dir.path(), &sb);
    cfg.policy.max_reports = 4;
    let a = Client::open(cfg.clone()).unwrap();
    let b = Client::open(cfg).unwrap();
    let crash = a.submit_crash(CrashReport::from_text("old crash")).unwrap();
    a.submit(Feedback::new("a1")).unwrap();
    a.submit(Feedback::new("a2")).unwrap();
    // The fourth, through the other connection: full now.
    b.submit(Feedback::new("b1")).unwrap();
    // a's own count says 3; the real one is 4: the crash must make room.
    a.submit(Feedback::new("a3")).unwrap();
    assert_eq!(a.report(crash).unwrap().state, ReportState::Evicted);
    assert_eq!(a.stats().unwrap().pending, 4);
    let err = b.submit(Feedback::new("b2")).unwrap_err();
    assert!(matches!(err, Error::OutboxFull { .. }), "{err:?}");
    // Delivered by a flush of the same client: room again.
    let r = a.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(r.pending, 0, "{r:?}");
    for n in 0..4 {
        a.submit(Feedback::new(format!("after {n}"))).unwrap();
    }
    let err = a.submit(Feedback::new("one too many")).unwrap_err();
    assert!(matches!(err, Error::OutboxFull { .. }), "{err:?}");
    assert_eq!(a.stats().unwrap().pending, 4);
}

/// Ids (and the `seq` the context carries) are never reused, even after
/// the newest reports are purged, in this process or the next.
#[test]
fn ids_are_not_reused_after_the_newest_reports_are_purged() {
    let sb = sandbox();
    let dir = tempdir();
    let (a, last) = {
        let client = open(dir.path(), &sb);
        let a = client.submit(Feedback::new("a")).unwrap();
        let b = client.submit(Feedback::new("b")).unwrap();
        client.purge(b).unwrap();
        let c = client.submit(Feedback::new("c")).unwrap();
        assert_eq!(c, b + 1, "the purged newest id is not taken again");
        assert_eq!(client.report(c).unwrap().seq, c);
        client.purge_all().unwrap();
        (a, c)
    };
    assert!(a < last);
    let client = open(dir.path(), &sb);
    let d = client
        .submit(Feedback::new("d").attach(Attachment::from_bytes(
            "Screenshot",
            "d.png",
            b"png".to_vec(),
        )))
        .unwrap();
    assert_eq!(d, last + 1, "nor after purge_all and a reopen");
    assert_eq!(client.report(d).unwrap().context["seq"], d);
    // Foreign keys are back on after the open's migration: a purge takes
    // the attachment rows with the report.
    client.purge(d).unwrap();
    let orphans: i64 = rusqlite::Connection::open(dir.path().join("outbox.sqlite"))
        .unwrap()
        .query_row("SELECT count(*) FROM attachments", [], |r| r.get(0))
        .unwrap();
    assert_eq!(orphans, 0);
}

/// The device id is a random v4 UUID kept with the outbox: the same across
/// opens of one outbox, another for another outbox on the same machine (so
/// not derived from the hardware), recorded with every report and sent
/// under the field a Centercode config maps it to.
#[test]
fn the_device_id_is_random_per_install_and_kept_with_the_outbox() {
    let sb = sandbox();
    let (one, two) = (tempdir(), tempdir());
    let device_id = |dir: &Path| {
        let mut cfg = config(dir, &sb);
        cfg.context_fields
            .insert("device.uuid".into(), "DeviceId".into());
        let client = Client::open(cfg).unwrap();
        let id = client.submit(Feedback::new("which device?")).unwrap();
        let ctx = client.report(id).unwrap().context;
        client.flush(Duration::from_secs(10)).unwrap();
        ctx["device.uuid"].as_str().unwrap().to_string()
    };
    let first = device_id(one.path());
    assert_eq!(device_id(one.path()), first, "a second open keeps the id");
    let other = device_id(two.path());
    assert_ne!(other, first, "another outbox has its own");

    for id in [&first, &other] {
        let parts: Vec<&str> = id.split('-').collect();
        let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
        assert_eq!(lens, [8, 4, 4, 4, 12], "{id}");
        assert!(
            id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()),
            "{id}"
        );
        assert!(parts[2].starts_with('4'), "version 4: {id}");
        assert!("89ab".contains(&parts[3][..1]), "variant 10: {id}");
    }
    // Nothing of the machine's own id is in it.
    if let Ok(machine) = std::fs::read_to_string("/etc/machine-id") {
        let machine = machine.trim();
        assert!(!machine.is_empty() && !first.replace('-', "").contains(machine));
    }

    let sent: Vec<String> = sb
        .feedback()
        .iter()
        .map(|f| f.body["DeviceId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sent, [first.clone(), first, other]);
}
