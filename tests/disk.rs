//! Storage limits: a disk that fills up (a small tmpfs, or an ext4 image on
//! a loop device where tmpfs cannot be mounted), and the outbox's own caps.
//!
//! On a full disk, `submit` refuses the report with `Error::StorageFull`
//! (ENOSPC while copying an attachment, SQLITE_FULL while committing), the
//! outbox is unchanged (no half-written copy is left), the reports already
//! accepted stay intact, and once space returns they are all delivered.
//!
//! Under the caps, crash reports are evicted oldest first, typed feedback
//! never (the new report is refused instead), and every eviction is counted
//! and heard.
//!
//! Mounting needs root (or CAP_SYS_ADMIN). Without it the full-disk test
//! prints `skipped: cannot mount (<reason>)` and checks what it can without
//! a mount: the byte cap (`Policy::max_bytes`) refuses with `OutboxFull`
//! and changes nothing.

mod common;
mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fieldreport::{
    Attachment, AttachmentState, Client, CrashReport, Error, Event, Feedback, ReportFilter,
    ReportId, ReportKind, ReportState,
};
use support::{figures, scale, Rng};

/// SHA-256 of every file in the outbox's attachment folder, sorted.
fn copies(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("files"))
        .expect("files/")
        .map(|e| common::sha256_hex(&std::fs::read(e.expect("entry").path()).expect("read")))
        .collect();
    v.sort();
    v
}

/// Writes `path` until the disk is full; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("filler");
    let chunk = vec![0x5au8; 64 * 1024];
    let mut n = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(k) => n += k as u64,
            Err(e) => {
                assert_eq!(
                    e.kind(),
                    std::io::ErrorKind::StorageFull,
                    "filling stopped for another reason: {e}"
                );
                break;
            }
        }
    }
    let _ = f.sync_all();
    std::fs::metadata(path).expect("filler").len().max(n)
}

/// Frees `bytes` at the end of the filler file.
fn free(filler: &Path, bytes: u64) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(filler)
        .expect("filler");
    let len = f.metadata().expect("filler").len();
    f.set_len(len.saturating_sub(bytes)).expect("shrink filler");
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_refuses_the_new_report_and_keeps_the_others() {
    let tmp = common::tempdir();
    let mnt = tmp.path().join("mnt");
    let mount = match support::Mount::small_fs(&mnt, 8) {
        Ok(m) => m,
        Err(reason) => {
            println!("skipped: cannot mount ({reason}); checking the byte cap instead");
            byte_cap_refuses_without_a_mount(tmp.path());
            figures("full_disk", &[("mounted", "false".into())]);
            return;
        }
    };
    println!("mounted an 8 MiB {} on {}", mount.how, mnt.display());
    let sb = common::sandbox_unlimited();
    let dir = mnt.join("outbox");
    let mut cfg = common::config(&dir, &sb);
    cfg.policy.max_requests_per_sec = 0;
    let client = Client::open(cfg.clone()).expect("open");
    let rec = common::Recorder::new();
    client.set_listener(Some(rec.clone()));

    // Reports accepted before the disk fills: id -> (summary, attachment SHA-256s).
    let mut accepted: BTreeMap<ReportId, (String, Vec<String>)> = BTreeMap::new();
    for n in 0..3u64 {
        let bytes = support::bytes_for(n, 0, 300_000);
        let sha = common::sha256_hex(&bytes);
        let summary = format!("before the disk filled {n}");
        let id = client
            .submit(Feedback::new(&summary).attach(Attachment::from_bytes(
                "Screenshot",
                format!("s{n}.png"),
                bytes,
            )))
            .expect("submit while there is room");
        accepted.insert(id, (summary, vec![sha]));
    }
    let crash_log = hex(&support::bytes_for(99, 0, 100_000));
    let crash = client
        .submit_crash(CrashReport {
            summary: Some("a crash before the disk filled".into()),
            ..CrashReport::from_text(crash_log)
        })
        .expect("crash while there is room");
    let crash_sha = client.report(crash).expect("crash").attachments[0]
        .sha256
        .clone();
    accepted.insert(
        crash,
        ("a crash before the disk filled".into(), vec![crash_sha]),
    );

    // Inputs that live outside the small disk.
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).expect("outside dir");
    let big_file = outside.join("big.bin");
    std::fs::write(&big_file, support::bytes_for(7, 0, 1_000_000)).expect("big file");
    let big_log = outside.join("crash.log");
    std::fs::write(&big_log, hex(&support::bytes_for(8, 0, 600_000))).expect("big log");

    // Fill the disk, then give back a little: room for small things only.
    let filler = mnt.join("filler");
    let filled = fill(&filler);
    free(&filler, 256 * 1024);
    println!("filler: {filled} bytes, then 256 KiB freed");

    let before = common::snapshot(&client, &dir);
    let copies_before = copies(&dir);
    let mut refused = Vec::new();
    let cases: Vec<(&str, Result<ReportId, Error>)> = vec![
        (
            "1 MB attachment from memory",
            client.submit(Feedback::new("does not fit").attach(Attachment::from_bytes(
                "Screenshot",
                "big.png",
                support::bytes_for(6, 0, 1_000_000),
            ))),
        ),
        (
            "1 MB attachment from a file",
            client.submit(
                Feedback::new("does not fit either")
                    .attach(Attachment::from_path("Screenshot", &big_file)),
            ),
        ),
        (
            "a small attachment that fits, then one that does not",
            client.submit(
                Feedback::new("half fits")
                    .attach(Attachment::from_bytes(
                        "Screenshot",
                        "small.png",
                        support::bytes_for(5, 0, 60_000),
                    ))
                    .attach(Attachment::from_path("Log", &big_file)),
            ),
        ),
        (
            "1.2 MB crash log (gzip does not shrink it enough)",
            client.submit_crash(CrashReport::from_file(&big_log)),
        ),
    ];
    for (what, result) in cases {
        assert_eq!(result, Err(Error::StorageFull), "{what}");
        refused.push(what);
        assert_eq!(
            common::snapshot(&client, &dir),
            before,
            "{what} changed the outbox"
        );
    }

    // Now completely full: the database itself cannot grow (SQLITE_FULL).
    fill(&filler);
    let mut db_refusals = 0;
    for i in 0..20 {
        let before = common::snapshot(&client, &dir);
        let summary = format!("a long description on a full disk {i}");
        match client.submit(Feedback::new(&summary).description("d".repeat(90_000))) {
            Err(Error::StorageFull) => {
                assert_eq!(
                    common::snapshot(&client, &dir),
                    before,
                    "a refused commit changed the outbox"
                );
                db_refusals += 1;
                break;
            }
            Ok(id) => {
                // It fitted in room the database had already: accepted, so kept.
                accepted.insert(id, (summary, vec![]));
            }
            Err(e) => panic!("a full database gave {e:?}, not StorageFull"),
        }
    }
    assert_eq!(db_refusals, 1, "the database never ran out of room");

    // Opening on a full disk: refused or harmless, never a loss.
    let second = Client::open(cfg.clone());
    let second_open = match &second {
        Ok(_) => "ok",
        Err(Error::StorageFull) => "storage_full",
        Err(e) => panic!("opening on a full disk gave {e:?}"),
    };
    drop(second);

    // The reports accepted earlier are intact, and nothing half-written lies about.
    for (id, (summary, shas)) in &accepted {
        let r = client
            .report(*id)
            .expect("an accepted report is still there");
        assert_eq!(&r.summary, summary);
        let got: Vec<String> = r.attachments.iter().map(|a| a.sha256.clone()).collect();
        assert_eq!(&got, shas, "report {id}");
    }
    let mut want: Vec<String> = accepted.values().flat_map(|(_, s)| s.clone()).collect();
    want.sort();
    assert_eq!(copies(&dir), copies_before, "attachment copies changed");
    assert_eq!(
        copies(&dir),
        want,
        "the copies are exactly the accepted attachments"
    );

    // Flushing on the full disk: the outbox's reserve is given up, so the
    // queued reports are delivered (and their copies deleted, which frees
    // the disk) without waiting for someone else to make room.
    assert!(dir.join("reserve").exists(), "a reserve was made at open");
    // The worst case: an empty write-ahead log (just checkpointed), so any
    // commit must grow a file on a disk with no room left. Without a
    // reserve (policy 0) the flush is refused, as it was before reserves
    // existed.
    std::fs::remove_file(&filler).expect("make room for the checkpoint");
    rusqlite::Connection::open(dir.join("outbox.sqlite"))
        .expect("db")
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
    fill(&filler);
    let mut without_reserve = cfg.clone();
    without_reserve.policy.disk_reserve_bytes = 0;
    let no_reserve = Client::open(without_reserve).expect("open");
    let without = no_reserve.flush(Duration::from_secs(20));
    assert_eq!(without.map(|r| r.pending), Err(Error::StorageFull));
    assert!(sb.requests().is_empty(), "a refused flush sent requests");
    drop(no_reserve);
    assert!(
        dir.join("reserve").exists(),
        "a client without one leaves it"
    );
    let r = client
        .flush(Duration::from_secs(20))
        .expect("flush on a full disk");
    assert_eq!(
        (r.pending, r.dead),
        (0, 0),
        "all delivered on a full disk: {r:?}"
    );
    assert_eq!(sb.feedback().len(), accepted.len(), "each created once");
    let flush_on_full = "delivered";
    // Submitting on the still full disk is refused as before, once the
    // database's own free room is used: the reserve (made again from what
    // the delivered copies freed) is for delivery, not for more reports.
    fill(&filler);
    assert!(dir.join("reserve").exists(), "made again after the flush");
    let mut refused_again = false;
    for i in 0..50 {
        let summary = format!("still no room {i}");
        match client.submit(Feedback::new(&summary).description("d".repeat(90_000))) {
            Ok(id) => {
                accepted.insert(id, (summary, vec![]));
            }
            Err(Error::StorageFull) => {
                refused_again = true;
                break;
            }
            Err(e) => panic!("a full disk gave {e:?}"),
        }
    }
    assert!(refused_again, "the database never ran out of room");
    assert!(
        dir.join("reserve").exists(),
        "a submit never takes the reserve"
    );
    println!("on a full disk: second open {second_open}, flush {flush_on_full}");

    // Space returns: the reserve is made again, and the refused report now fits.
    std::fs::remove_file(&filler).expect("remove filler");
    let again = client
        .submit(
            Feedback::new("does not fit, until now")
                .attach(Attachment::from_path("Screenshot", &big_file)),
        )
        .expect("submit once there is room");
    let r = common::drain(&client, 20);
    assert_eq!((r.pending, r.dead), (0, 0), "{r:?}");
    assert!(dir.join("reserve").exists(), "the reserve is back");
    for id in accepted.keys().chain([&again]) {
        let r = client.report(*id).expect("report");
        assert_eq!(r.state, ReportState::Delivered, "report {id}");
        assert!(r
            .attachments
            .iter()
            .all(|a| a.state == AttachmentState::Uploaded));
    }
    let uploads = sb.uploads();
    for (_, shas) in accepted.values() {
        for sha in shas {
            assert!(
                uploads.iter().any(|u| &u.sha256_hex == sha),
                "upload {sha} missing"
            );
        }
    }
    assert_eq!(sb.feedback().len(), accepted.len() + 1, "each created once");
    let stats = client.stats().expect("stats");
    assert_eq!(stats.evicted, 0, "a full disk evicts nothing");
    assert!(!rec
        .events()
        .iter()
        .any(|e| matches!(e, Event::Evicted { .. })));
    // Deleted on a helper thread, done by the time close returns.
    client.close();
    assert_eq!(
        std::fs::read_dir(dir.join("files"))
            .expect("files/")
            .count(),
        0,
        "delivered copies are removed"
    );
    drop(client);
    let fs = mount.how.replace(' ', "_");
    drop(mount);
    figures(
        "full_disk",
        &[
            ("mounted", "true".into()),
            ("fs", fs),
            ("accepted", (accepted.len() + 1).to_string()),
            ("delivered", (accepted.len() + 1).to_string()),
            (
                "refused_storage_full",
                (refused.len() + db_refusals).to_string(),
            ),
            ("lost", "0".into()),
            ("orphans", "0".into()),
            ("open_on_full_disk", second_open.into()),
            ("flush_on_full_disk", flush_on_full.into()),
            ("evicted", stats.evicted.to_string()),
        ],
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Without a mount: a report over the byte cap is refused and nothing changes.
fn byte_cap_refuses_without_a_mount(root: &Path) {
    let sb = common::sandbox_unlimited();
    let dir: PathBuf = root.join("capped");
    let mut cfg = common::config(&dir, &sb);
    cfg.policy.max_bytes = 500_000;
    let client = Client::open(cfg).expect("open");
    let kept = client
        .submit(Feedback::new("kept").attach(Attachment::from_bytes(
            "Screenshot",
            "k.png",
            support::bytes_for(1, 0, 300_000),
        )))
        .expect("fits");
    let before = common::snapshot(&client, &dir);
    let err = client
        .submit(Feedback::new("too much").attach(Attachment::from_bytes(
            "Screenshot",
            "t.png",
            support::bytes_for(2, 0, 300_000),
        )))
        .expect_err("over the cap");
    assert!(matches!(err, Error::OutboxFull { .. }), "{err:?}");
    assert_eq!(common::snapshot(&client, &dir), before);
    assert_eq!(
        client.report(kept).expect("kept").state,
        ReportState::Queued
    );
}

// ---------------------------------------------------------------------------
// Caps and eviction, randomized
// ---------------------------------------------------------------------------

/// `(kind, count, bytes)` of the reports that count against the caps,
/// read from the database (the byte figure of each row is not public).
fn held(dir: &Path) -> BTreeMap<String, (u64, u64)> {
    let c = rusqlite::Connection::open(dir.join("outbox.sqlite")).expect("db");
    let mut stmt = c
        .prepare(
            "SELECT kind, count(*), coalesce(sum(bytes),0) FROM reports
             WHERE state IN ('queued','created','dead') GROUP BY kind",
        )
        .expect("prepare");
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                (r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)? as u64),
            ))
        })
        .expect("query");
    rows.map(|r| r.expect("row")).collect()
}

#[test]
fn caps_evict_crashes_oldest_first_never_typed_feedback_and_count_every_eviction() {
    let mut rng = Rng::seeded(
        "FIELDREPORT_DISK_SEED",
        "caps_evict_crashes_oldest_first_never_typed_feedback_and_count_every_eviction",
    );
    let steps = scale(150, 2000);
    let sb = common::sandbox_unlimited();
    let tmp = common::tempdir();
    let dir = tmp.path().join("outbox");
    let mut cfg = common::config(&dir, &sb);
    cfg.policy.max_reports = rng.range(3, 10) as u32;
    cfg.policy.max_bytes = rng.range(60_000, 400_000);
    cfg.policy.max_requests_per_sec = 0;
    let (max_reports, max_bytes) = (cfg.policy.max_reports as u64, cfg.policy.max_bytes);
    println!("caps: {max_reports} reports, {max_bytes} bytes");
    let client = Client::open(cfg).expect("open");
    let rec = common::Recorder::new();
    client.set_listener(Some(rec.clone()));
    let mut kinds: BTreeMap<ReportId, ReportKind> = BTreeMap::new();
    let (mut accepted, mut refused, mut heard_evictions) = (0u64, 0u64, 0usize);
    let (mut feedback_refused, mut crash_refused) = (0u64, 0u64);

    let mut flushes = 0u64;
    for step in 0..steps {
        if rng.chance(8) {
            // Delivery makes room again.
            let r = client.flush(Duration::from_secs(30)).expect("flush");
            assert_eq!(r.pending, 0, "{r:?}");
            flushes += 1;
        }
        let is_crash = rng.chance(50);
        let size = if rng.chance(20) {
            0
        } else {
            rng.range(1, 90_000) as usize
        };
        let bytes = support::bytes_for(step, 0, size);
        let pending = |kind: ReportKind| -> Vec<ReportId> {
            let mut v: Vec<ReportId> = client
                .reports(&ReportFilter {
                    states: vec![ReportState::Queued],
                    kind: Some(kind),
                    limit: None,
                })
                .expect("list")
                .iter()
                .map(|r| r.id)
                .collect();
            v.sort();
            v
        };
        let crashes_before = pending(ReportKind::Crash);
        let held_before = held(&dir);
        let snap = common::snapshot(&client, &dir);
        let heard_before = rec.events().len();
        let result = if is_crash {
            let mut c = CrashReport::from_text(format!("crash {step}"));
            if size > 0 {
                c.attachments
                    .push(Attachment::from_bytes("Log", "core", bytes));
            }
            client.submit_crash(c)
        } else {
            let mut f = Feedback::new(format!("typed {step}"));
            if size > 0 {
                f = f.attach(Attachment::from_bytes("Screenshot", "s.png", bytes));
            }
            client.submit(f)
        };
        let evicted: Vec<ReportId> = rec.events()[heard_before..]
            .iter()
            .filter_map(|e| match e {
                Event::Evicted { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        heard_evictions += evicted.len();
        match result {
            Ok(id) => {
                accepted += 1;
                kinds.insert(
                    id,
                    if is_crash {
                        ReportKind::Crash
                    } else {
                        ReportKind::Feedback
                    },
                );
                for e in &evicted {
                    assert_eq!(
                        kinds.get(e),
                        Some(&ReportKind::Crash),
                        "step {step}: report {e} evicted, and it is not a crash report"
                    );
                    assert_eq!(
                        client.report(*e).expect("evicted report").state,
                        ReportState::Evicted
                    );
                }
                // Oldest first: every crash evicted now is older than every
                // crash that stayed.
                let stayed: Vec<ReportId> = crashes_before
                    .iter()
                    .filter(|c| !evicted.contains(c))
                    .copied()
                    .collect();
                if let (Some(newest_gone), Some(oldest_kept)) =
                    (evicted.iter().max(), stayed.iter().min())
                {
                    assert!(
                        newest_gone < oldest_kept,
                        "step {step}: crash {newest_gone} evicted while older crash {oldest_kept} stayed"
                    );
                }
                let s = client.stats().expect("stats");
                assert!(s.pending <= max_reports, "step {step}: {s:?}");
                assert!(s.bytes <= max_bytes, "step {step}: {s:?}");
            }
            Err(Error::OutboxFull { reason }) => {
                refused += 1;
                if is_crash {
                    crash_refused += 1
                } else {
                    feedback_refused += 1
                }
                assert!(
                    evicted.is_empty(),
                    "step {step}: a refused report evicted {evicted:?}"
                );
                assert_eq!(
                    common::snapshot(&client, &dir),
                    snap,
                    "step {step}: refused, yet changed"
                );
                // Refused only when evicting every crash would not have made room.
                let (fb_count, fb_bytes) = held_before.get("feedback").copied().unwrap_or((0, 0));
                let no_room = size as u64 > max_bytes
                    || fb_count >= max_reports
                    || fb_bytes + size as u64 + 4096 > max_bytes;
                assert!(
                    no_room,
                    "step {step}: refused ({reason}) though evicting crashes would make room: {held_before:?}"
                );
            }
            Err(e) => panic!("step {step}: {e:?}"),
        }
    }
    // What was not evicted is delivered.
    let r = client.flush(Duration::from_secs(60)).expect("flush");
    assert_eq!(r.pending, 0, "{r:?}");
    for (id, kind) in &kinds {
        let r = client
            .report(*id)
            .expect("an accepted report is never lost");
        match r.state {
            ReportState::Delivered => {}
            ReportState::Evicted => assert_eq!(*kind, ReportKind::Crash, "report {id}"),
            other => panic!("report {id} is {other:?}"),
        }
    }
    let stats = client.stats().expect("stats");
    let evicted_rows = client
        .reports(&ReportFilter {
            states: vec![ReportState::Evicted],
            ..Default::default()
        })
        .expect("list")
        .len();
    assert_eq!(
        stats.evicted, heard_evictions as u64,
        "every eviction counted"
    );
    assert_eq!(evicted_rows, heard_evictions, "every eviction recorded");
    assert_eq!(
        stats.evicted_feedback, 0,
        "typed feedback is never evicted for space"
    );
    assert_eq!(
        stats.delivered + stats.evicted,
        accepted,
        "each accepted report is delivered or evicted"
    );
    figures(
        "caps_eviction",
        &[
            ("seed", rng.seed.to_string()),
            ("submits", steps.to_string()),
            ("flushes", flushes.to_string()),
            ("accepted", accepted.to_string()),
            ("delivered", stats.delivered.to_string()),
            ("refused_outbox_full", refused.to_string()),
            ("refused_feedback", feedback_refused.to_string()),
            ("refused_crash", crash_refused.to_string()),
            ("evicted", stats.evicted.to_string()),
            ("evicted_feedback", stats.evicted_feedback.to_string()),
            ("evictions_heard", heard_evictions.to_string()),
            ("lost", "0".into()),
        ],
    );
}

/// An outbox written by an older version, on a disk that has filled up:
/// the upgrade (schema 5 copies the reports table) takes the room of the
/// disk reserve, so the outbox opens, instead of staying closed (and its
/// reports undelivered) until space returns. Without a reserve (policy 0)
/// the open is refused with `StorageFull` and the file is left as it was.
#[cfg(target_os = "linux")]
#[test]
fn an_upgrade_on_a_full_disk_takes_the_reserve() {
    let tmp = common::tempdir();
    let mnt = tmp.path().join("mnt");
    let mount = match support::Mount::small_fs(&mnt, 8) {
        Ok(m) => m,
        Err(reason) => {
            println!("skipped: cannot mount ({reason})");
            figures("upgrade_on_full_disk", &[("mounted", "false".into())]);
            return;
        }
    };
    println!("mounted an 8 MiB {} on {}", mount.how, mnt.display());
    let sb = common::sandbox_unlimited();
    let dir = mnt.join("outbox");
    let db = dir.join("outbox.sqlite");
    std::fs::create_dir_all(dir.join("files")).expect("outbox dir");
    let n: i64 = 120;
    // Held open to the end: its WAL index stays allocated, as an app's
    // would be (a shared-memory page first touched on a full tmpfs is a
    // SIGBUS, not an error).
    let holder = rusqlite::Connection::open(&db).expect("v1 database");
    holder.execute_batch(common::FROZEN_V1).expect("v1 schema");
    let _: String = holder
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .expect("wal");
    let description = "written before the upgrade ".repeat(110);
    for i in 1..=n {
        let payload =
            serde_json::json!({"summary": format!("old {i}"), "description": description});
        holder
            .execute(
                "INSERT INTO reports (client_id, seq, kind, state, summary, payload, context, submitted_at, bytes)
                 VALUES (?1, ?2, 'feedback', 'queued', ?3, ?4, '{}', ?5, ?6)",
                rusqlite::params![
                    format!("client-{i}"),
                    i,
                    format!("old {i}"),
                    payload.to_string(),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_millis() as i64,
                    payload.to_string().len() as i64
                ],
            )
            .expect("v1 row");
    }
    holder
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .expect("checkpoint");
    // The reserve that the older version made.
    std::fs::write(dir.join("reserve"), vec![0u8; 1 << 20]).expect("reserve");
    let filler = mnt.join("filler");
    let filled = fill(&filler);

    let mut cfg = common::config(&dir, &sb);
    cfg.policy.max_requests_per_sec = 0;
    let mut without = cfg.clone();
    without.policy.disk_reserve_bytes = 0;
    let refused = Client::open(without).err();
    assert_eq!(refused, Some(Error::StorageFull), "no reserve, no room");
    assert_eq!(
        common::user_version(&db),
        1,
        "the failed upgrade left it as it was"
    );
    assert!(dir.join("reserve").exists());

    let client = Client::open(cfg).expect("the upgrade takes the reserve's room");
    assert_eq!(common::user_version(&db), common::current_schema_version());
    assert!(!dir.join("reserve").exists(), "given up for the upgrade");
    assert_eq!(client.stats().expect("stats").pending, n as u64);
    // Space returns: every report written before the upgrade is delivered.
    free(&filler, filled);
    let r = client.flush(Duration::from_secs(60)).expect("flush");
    assert_eq!(r.pending, 0, "{r:?}");
    let summaries = common::received_summaries(&sb);
    assert_eq!(summaries.len() as i64, n);
    assert_eq!(summaries[0], "old 1");
    figures(
        "upgrade_on_full_disk",
        &[
            ("mounted", "true".into()),
            ("accepted", n.to_string()),
            ("delivered", summaries.len().to_string()),
            ("lost", "0".into()),
            ("open_without_reserve", "refused_storage_full".into()),
            ("open_with_reserve", "upgraded".into()),
        ],
    );
    drop(holder);
}
