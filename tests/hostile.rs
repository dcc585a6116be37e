//! Hostile files: what the outbox does when its files are damaged, missing,
//! replaced or not writable, or shared with another process. Each case has
//! one defined behaviour (the table in RELIABILITY.md), never panics, and
//! loses no report that was not itself destroyed; a database that cannot
//! be read is moved aside, never deleted.
//!
//! The read-only cases run a re-executed copy of this binary as another
//! user (`setpriv --reuid=65534`), since root ignores permission bits, and
//! mount a read-only bind mount over the outbox (which binds root too).
//! Where neither is possible the case prints `skipped: ...` and says why.
//! The cases already in tests/outbox.rs (a file that is not SQLite, a
//! newer schema, an attachment copy truncated) are not repeated here.
#![cfg(unix)]

mod common;
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fieldreport::sandbox::Sandbox;
use fieldreport::{
    Attachment, AttachmentState, Client, Config, Error, Feedback, ReportFilter, ReportId,
    ReportState,
};
use support::{figures, ChildProc};

const ROLE_VAR: &str = "FIELDREPORT_HOSTILE_ROLE";
const DIR_VAR: &str = "FIELDREPORT_HOSTILE_DIR";
const URL_VAR: &str = "FIELDREPORT_HOSTILE_URL";
const KEY_VAR: &str = "FIELDREPORT_HOSTILE_KEY";
/// The unprivileged user the read-only cases run as (`nobody`).
const NOBODY: u32 = 65534;

fn config_for(dir: &Path, url: &str, key: &str) -> Config {
    let mut c = common::config_at(dir, url, key);
    c.policy.max_requests_per_sec = 0;
    c
}

fn fast(dir: &Path, sb: &Sandbox) -> Config {
    config_for(dir, &sb.base_url(), sb.api_key())
}

/// A report with one small attachment whose bytes are a function of `n`.
fn report(n: u64) -> Feedback {
    Feedback::new(format!("hostile {n}"))
        .description("x".repeat(2000))
        .attach(Attachment::from_bytes(
            "Screenshot",
            format!("h{n}.png"),
            support::bytes_for(n, 0, 100 + n as usize),
        ))
}

fn report_sha(n: u64) -> String {
    common::sha256_hex(&support::bytes_for(n, 0, 100 + n as usize))
}

/// SHA-256 of every file in a folder, sorted.
fn copies(files: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(files)
        .map(|d| {
            d.map(|e| common::sha256_hex(&std::fs::read(e.expect("entry").path()).expect("read")))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Delivers everything, then checks that reports `ns` (by summary) were
/// delivered whole and created once each.
fn deliver_and_check(client: &Client, sb: &Sandbox, ns: &[u64]) {
    let r = common::drain(client, 20);
    assert_eq!((r.pending, r.dead), (0, 0), "{r:?}");
    for n in ns {
        let summary = format!("hostile {n}");
        let created: Vec<_> = sb
            .feedback()
            .into_iter()
            .filter(|f| f.body["summary"] == summary.as_str())
            .collect();
        assert_eq!(created.len(), 1, "{summary} created once");
        let sha = report_sha(*n);
        assert!(
            sb.uploads()
                .iter()
                .any(|u| u.feedback_key == created[0].key && u.sha256_hex == sha),
            "{summary}: its attachment arrived whole"
        );
    }
}

// ---------------------------------------------------------------------------
// Child role
// ---------------------------------------------------------------------------

/// Child role: what the re-executed binary does, by `FIELDREPORT_HOSTILE_ROLE`:
/// `submit:<a>:<b>` submits reports a..b; `reopen` opens the outbox and
/// tries a submit and a flush; `hold:<a>:<b>` submits a..b, says `holding`,
/// and on `more:<c>:<d>` submits c..d, until told `quit`. Without the
/// variable it returns at once (passes trivially).
#[test]
fn child_role_hostile() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set"));
    let dir = PathBuf::from(env(DIR_VAR));
    let cfg = config_for(&dir, &env(URL_VAR), &env(KEY_VAR));
    let range = |spec: &str| -> (u64, u64) {
        let mut it = spec.split(':').map(|x| x.parse::<u64>().expect("number"));
        (it.next().expect("from"), it.next().expect("to"))
    };
    let submit = |client: &Client, (a, b): (u64, u64)| {
        for n in a..b {
            match client.submit(report(n)) {
                Ok(id) => support::tell_parent(&format!("id {id} n {n}")),
                Err(e) => support::tell_parent(&format!("submit-err {e:?}")),
            }
        }
    };
    if let Some(spec) = role.strip_prefix("submit:") {
        let client = Client::open(cfg).expect("open");
        submit(&client, range(spec));
        support::tell_parent("done");
    } else if role == "reopen" {
        match Client::open(cfg) {
            Err(e) => support::tell_parent(&format!("open-err {e:?}")),
            Ok(client) => {
                support::tell_parent("open-ok");
                match client.submit(report(500)) {
                    Ok(id) => support::tell_parent(&format!("submit-ok {id}")),
                    Err(e) => support::tell_parent(&format!("submit-err {e:?}")),
                }
                match client.flush(Duration::from_secs(30)) {
                    Ok(r) => support::tell_parent(&format!("flush-ok pending={}", r.pending)),
                    Err(e) => support::tell_parent(&format!("flush-err {e:?}")),
                }
            }
        }
        support::tell_parent("done");
    } else if let Some(spec) = role.strip_prefix("hold:") {
        let client = Client::open(cfg).expect("open");
        submit(&client, range(spec));
        support::tell_parent("holding");
        loop {
            let line = support::hear_parent();
            if let Some(spec) = line.strip_prefix("more:") {
                submit(&client, range(spec));
                support::tell_parent("holding");
            } else {
                break;
            }
        }
        support::tell_parent("done");
    } else {
        panic!("unknown role {role}");
    }
}

fn child_env(role: &str, dir: &Path, sb: &Sandbox) -> Vec<(&'static str, String)> {
    vec![
        (ROLE_VAR, role.to_string()),
        (DIR_VAR, dir.display().to_string()),
        (URL_VAR, sb.base_url()),
        (KEY_VAR, sb.api_key().to_string()),
    ]
}

/// Runs a child to its end; every line it printed.
fn run_child(wrapper: &[&str], role: &str, dir: &Path, sb: &Sandbox, log: PathBuf) -> Vec<String> {
    let mut child = ChildProc::spawn(
        wrapper,
        "child_role_hostile",
        &child_env(role, dir, sb),
        log,
    );
    let mut lines = Vec::new();
    while let Some(line) = child.next_line() {
        let done = line == "done";
        lines.push(line);
        if done {
            break;
        }
    }
    let status = child.wait();
    assert!(
        status.success() && lines.last().map(String::as_str) == Some("done"),
        "child {role}: {status:?} {lines:?}; stderr:\n{}",
        child.stderr_text()
    );
    lines
}

// ---------------------------------------------------------------------------
// 1. Truncated database
// ---------------------------------------------------------------------------

#[test]
fn a_truncated_database_is_moved_aside_with_its_files_or_read_whole() {
    const REPORTS: u64 = 30;
    type Cut = fn(u64) -> u64;
    let cuts: Vec<(&str, Cut)> = vec![
        ("to zero bytes", |_| 0),
        ("inside the header", |_| 50),
        ("after the header", |_| 100),
        ("after page 1", |_| 4096),
        ("after page 2", |_| 8192),
        ("mid-page, halfway", |l| l / 2 + 100),
        ("at a page boundary, halfway", |l| l / 2 / 4096 * 4096),
        ("without its last page", |l| l - 4096),
        ("by one byte", |l| l - 1),
    ];
    let mut outcomes = Vec::new();
    for (what, cut) in cuts {
        let sb = common::sandbox_unlimited();
        let tmp = common::tempdir();
        let dir = tmp.path().join("outbox");
        {
            let client = Client::open(fast(&dir, &sb)).expect("open");
            for n in 0..REPORTS {
                client.submit(report(n)).expect("submit");
            }
        }
        let db = dir.join("outbox.sqlite");
        {
            let c = rusqlite::Connection::open(&db).expect("db");
            c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .expect("checkpoint");
        }
        let len = std::fs::metadata(&db).expect("db").len();
        let to = cut(len);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&db)
            .expect("db")
            .set_len(to)
            .expect("truncate");
        let damaged = std::fs::read(&db).expect("db");
        let files_before = copies(&dir.join("files"));
        assert_eq!(files_before.len() as u64, REPORTS);

        let client = Client::open(fast(&dir, &sb))
            .unwrap_or_else(|e| panic!("{what}: open failed instead of recovering: {e}"));
        let outcome = match client.moved_aside() {
            Some(aside) => {
                // Kept, not deleted: the damaged database and every copy.
                assert_eq!(
                    std::fs::read(aside.join("outbox.sqlite")).expect("aside db"),
                    damaged,
                    "{what}"
                );
                assert_eq!(
                    copies(&aside.join("files")),
                    files_before,
                    "{what}: copies kept"
                );
                assert!(
                    client
                        .reports(&ReportFilter::default())
                        .expect("list")
                        .is_empty(),
                    "{what}"
                );
                "moved_aside"
            }
            None => {
                // Read as it is: then every report must be there, whole.
                let listed = client.reports(&ReportFilter::default()).expect("list");
                assert_eq!(
                    listed.len() as u64,
                    REPORTS,
                    "{what}: reports silently lost"
                );
                for r in &listed {
                    let n: u64 = r.summary["hostile ".len()..].parse().expect("counter");
                    assert_eq!(r.attachments[0].sha256, report_sha(n), "{what}");
                }
                deliver_and_check(&client, &sb, &(0..REPORTS).collect::<Vec<_>>());
                "read_whole"
            }
        };
        // Either way the outbox works.
        client
            .submit(report(1000))
            .expect("submit after the damage");
        deliver_and_check(&client, &sb, &[1000]);
        println!("truncated {what} ({len} -> {to} bytes): {outcome}");
        outcomes.push(format!("{}:{outcome}", what.replace([' ', ','], "_")));
    }
    figures(
        "hostile_truncated_db",
        &[
            ("cases", outcomes.len().to_string()),
            ("outcomes", outcomes.join(",")),
            ("lost", "0".into()),
        ],
    );
}

/// A file that starts like SQLite and then is garbage.
#[test]
fn garbage_behind_an_sqlite_header_is_moved_aside() {
    let sb = common::sandbox_unlimited();
    let tmp = common::tempdir();
    let dir = tmp.path().join("outbox");
    std::fs::create_dir_all(&dir).expect("dir");
    let mut bytes = b"SQLite format 3\0".to_vec();
    bytes.extend(support::bytes_for(3, 0, 20_000));
    std::fs::write(dir.join("outbox.sqlite"), &bytes).expect("write");
    let client = Client::open(fast(&dir, &sb)).expect("open");
    let aside = client.moved_aside().expect("moved aside").to_path_buf();
    assert_eq!(
        std::fs::read(aside.join("outbox.sqlite")).expect("kept"),
        bytes
    );
    client.submit(report(1)).expect("submit");
    deliver_and_check(&client, &sb, &[1]);
    figures(
        "hostile_sqlite_header_garbage",
        &[("behaviour", "moved_aside".into()), ("lost", "0".into())],
    );
}

// ---------------------------------------------------------------------------
// 2. Something else where the database should be
// ---------------------------------------------------------------------------

#[test]
fn a_directory_or_fifo_where_the_database_should_be_is_moved_aside() {
    for what in ["directory", "fifo"] {
        let sb = common::sandbox_unlimited();
        let tmp = common::tempdir();
        let dir = tmp.path().join("outbox");
        std::fs::create_dir_all(&dir).expect("dir");
        let db = dir.join("outbox.sqlite");
        if what == "directory" {
            std::fs::create_dir_all(db.join("inside")).expect("dir");
            std::fs::write(db.join("inside/keep.txt"), b"keep me").expect("write");
        } else {
            support::run("mkfifo", &[db.to_str().expect("utf-8")]).expect("mkfifo");
        }
        // Opening must neither fail forever nor block on the FIFO.
        let (tx, rx) = std::sync::mpsc::channel();
        let cfg = fast(&dir, &sb);
        std::thread::spawn(move || {
            let _ = tx.send(Client::open(cfg));
        });
        let client = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{what}: open blocked"))
            .unwrap_or_else(|e| panic!("{what}: open failed: {e}"));
        let aside = client.moved_aside().expect("moved aside").to_path_buf();
        let kept = aside.join("outbox.sqlite");
        if what == "directory" {
            assert_eq!(
                std::fs::read(kept.join("inside/keep.txt")).expect("kept"),
                b"keep me"
            );
        } else {
            use std::os::unix::fs::FileTypeExt;
            assert!(std::fs::symlink_metadata(&kept)
                .expect("kept")
                .file_type()
                .is_fifo());
        }
        client.submit(report(1)).expect("submit");
        deliver_and_check(&client, &sb, &[1]);
        println!(
            "a {what} at outbox.sqlite: moved aside to {}",
            aside.display()
        );
    }
    figures(
        "hostile_not_a_file",
        &[
            ("cases", "directory,fifo".into()),
            ("behaviour", "moved_aside".into()),
            ("lost", "0".into()),
        ],
    );
}

/// `files` replaced by a regular file: the file is kept aside (never
/// deleted), a fresh folder made, and every report delivered; the copies
/// that were lost with the folder are rejected with their reason.
#[test]
fn a_file_where_the_attachment_folder_should_be_is_moved_aside() {
    let sb = common::sandbox_unlimited();
    let tmp = common::tempdir();
    let dir = tmp.path().join("outbox");
    let (plain, with_copy) = {
        let client = Client::open(fast(&dir, &sb)).expect("open");
        let plain = client
            .submit(Feedback::new("no attachment"))
            .expect("submit");
        let with_copy = client
            .submit(
                Feedback::new("its copy is lost").attach(Attachment::from_bytes(
                    "Screenshot",
                    "a.png",
                    vec![1; 3000],
                )),
            )
            .expect("submit");
        (plain, with_copy)
    };
    std::fs::remove_dir_all(dir.join("files")).expect("rm files");
    std::fs::write(dir.join("files"), b"not a folder").expect("write");
    let client = Client::open(fast(&dir, &sb)).expect("opens, with the file moved aside");
    let aside = client.moved_aside().expect("says where").to_path_buf();
    assert_eq!(
        std::fs::read(aside.join("files")).expect("kept"),
        b"not a folder"
    );
    assert!(dir.join("files").is_dir(), "a fresh folder");
    assert_eq!(
        client.stats().expect("stats").moved_aside,
        Some(aside.display().to_string())
    );
    let r = common::drain(&client, 10);
    assert_eq!((r.pending, r.dead), (0, 0), "{r:?}");
    assert_eq!(
        client.report(plain).expect("report").state,
        ReportState::Delivered
    );
    let lost = client.report(with_copy).expect("report");
    assert_eq!(lost.state, ReportState::Delivered);
    assert_eq!(lost.attachments[0].state, AttachmentState::Rejected);
    assert!(lost.attachments[0]
        .reason
        .as_deref()
        .is_some_and(|r| r.contains("missing")));
    assert_eq!(sb.feedback().len(), 2);
    figures(
        "hostile_files_not_a_folder",
        &[("behaviour", "moved_aside".into()), ("lost", "0".into())],
    );
}

// ---------------------------------------------------------------------------
// 3. An attachment copy deleted behind the library's back
// ---------------------------------------------------------------------------

#[test]
fn a_deleted_attachment_copy_is_rejected_and_the_rest_delivered() {
    let sb = common::sandbox_unlimited();
    let tmp = common::tempdir();
    let client = Client::open(fast(tmp.path(), &sb)).expect("open");
    let id = client
        .submit(
            Feedback::new("one copy goes missing")
                .attach(Attachment::from_bytes("Screenshot", "a.png", vec![1; 3000]))
                .attach(Attachment::from_bytes("Screenshot", "b.png", vec![2; 4000])),
        )
        .expect("submit");
    let other = client.submit(report(1)).expect("submit");
    // Delete the copy of a.png (3000 bytes).
    let victim = std::fs::read_dir(tmp.path().join("files"))
        .expect("files")
        .map(|e| e.expect("entry").path())
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.len() == 3000))
        .expect("the copy of a.png");
    std::fs::remove_file(&victim).expect("delete");
    let r = client.flush(Duration::from_secs(20)).expect("flush");
    assert_eq!((r.pending, r.dead), (0, 0), "{r:?}");
    let s = client.report(id).expect("report");
    assert_eq!(s.state, ReportState::Delivered);
    assert_eq!(s.attachments[0].state, AttachmentState::Rejected);
    assert!(s.attachments[0]
        .reason
        .as_deref()
        .is_some_and(|r| r.contains("missing or changed")));
    assert_eq!(s.attachments[1].state, AttachmentState::Uploaded);
    assert_eq!(
        client.report(other).expect("other").state,
        ReportState::Delivered
    );
    assert_eq!(sb.uploads().len(), 2, "b.png and the other report's file");
    figures(
        "hostile_deleted_copy",
        &[
            ("behaviour", "attachment_rejected_report_delivered".into()),
            ("lost", "0".into()),
        ],
    );
}

// ---------------------------------------------------------------------------
// 4. A read-only outbox
// ---------------------------------------------------------------------------

/// Why `setpriv` cannot run this binary as `nobody` here, if it cannot.
fn cannot_run_as_nobody(tmp: &Path) -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "test",
            "-x",
        ])
        .arg(&exe)
        .output();
    match out {
        Err(e) => return Some(format!("setpriv: {e}")),
        Ok(o) if !o.status.success() => {
            return Some(format!(
                "nobody cannot execute {} ({}) {}",
                exe.display(),
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        }
        Ok(_) => {}
    }
    if let Err(e) = std::os::unix::fs::chown(tmp, Some(NOBODY), Some(NOBODY)) {
        return Some(format!("chown: {e}"));
    }
    None
}

const AS_NOBODY: &[&str] = &[
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
];

#[test]
fn a_read_only_outbox_directory_is_repaired_or_refused_and_nothing_is_lost() {
    let sb = common::sandbox_unlimited();
    let tmp = common::tempdir();
    let dir = tmp.path().join("outbox");
    if let Some(why) = cannot_run_as_nobody(tmp.path()) {
        println!("skipped: cannot run a child as another user ({why})");
        figures("hostile_read_only_dir", &[("ran", "false".into())]);
        return;
    }
    let log = |name: &str| tmp.path().join(format!("{name}.stderr"));
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;

    // The app's user (nobody) makes an outbox with two reports.
    let lines = run_child(AS_NOBODY, "submit:0:2", &dir, &sb, log("prepare"));
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("id ")).count(),
        2,
        "{lines:?}"
    );

    // (a) chmod 0500 on the app's own outbox: the next open makes it
    // owner-only again (0700), as it always does, and everything works.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o500)).expect("chmod");
    let lines = run_child(AS_NOBODY, "reopen", &dir, &sb, log("chmod-own"));
    assert_eq!(lines[0], "open-ok", "{lines:?}");
    assert!(lines[1].starts_with("submit-ok"), "{lines:?}");
    assert!(lines[2].starts_with("flush-ok"), "{lines:?}");
    assert_eq!(mode(&dir), 0o700, "the open restored owner-only access");
    deliver_and_check_as_root(&dir, &sb, &[0, 1, 500]);

    // (b) An outbox folder the app cannot write and cannot chmod (owned by
    // root, 0555): refused with a storage error; nothing changes.
    let lines = run_child(AS_NOBODY, "submit:2:4", &dir, &sb, log("prepare-2"));
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("id ")).count(),
        2,
        "{lines:?}"
    );
    let db_before = std::fs::read(dir.join("outbox.sqlite")).expect("db");
    std::os::unix::fs::chown(&dir, Some(0), Some(0)).expect("chown root");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    let lines = run_child(AS_NOBODY, "reopen", &dir, &sb, log("not-writable"));
    assert!(
        lines[0].starts_with("open-err Storage"),
        "expected a storage error, got {lines:?}"
    );
    println!("open of a folder the app cannot write: {}", lines[0]);
    assert_eq!(
        std::fs::read(dir.join("outbox.sqlite")).expect("db"),
        db_before
    );
    assert_eq!(mode(&dir), 0o555);
    // Given back to the app, it opens and delivers the waiting reports.
    std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).expect("chown back");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let lines = run_child(AS_NOBODY, "reopen", &dir, &sb, log("given-back"));
    assert_eq!(lines[0], "open-ok", "{lines:?}");
    deliver_and_check_as_root(&dir, &sb, &[2, 3]);
    figures(
        "hostile_read_only_dir",
        &[
            ("ran", "true".into()),
            ("own_dir_chmod_0500", "repaired_to_0700".into()),
            ("foreign_dir_0555", "refused_storage_error".into()),
            ("lost", "0".into()),
        ],
    );
}

/// Checks delivery from a fresh client in this (root) process once the
/// children are done with the outbox.
fn deliver_and_check_as_root(dir: &Path, sb: &Sandbox, ns: &[u64]) {
    let client = Client::open(fast(dir, sb)).expect("open as root");
    deliver_and_check(&client, sb, ns);
    drop(client);
    // Files SQLite made as root would lock the app out: hand them back.
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        let _ = std::os::unix::fs::chown(entry.path(), Some(NOBODY), Some(NOBODY));
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_read_only_mount_refuses_writes_and_loses_nothing() {
    let sb = common::sandbox_unlimited();
    let tmp = common::tempdir();
    let dir = tmp.path().join("outbox");
    let held = Client::open(fast(&dir, &sb)).expect("open");
    held.submit(report(0)).expect("submit");
    held.submit(report(1)).expect("submit");
    let closed_dir_db = dir.join("outbox.sqlite");
    let mount = match support::Mount::read_only_bind(&dir) {
        Ok(m) => m,
        Err(why) => {
            println!("skipped: cannot mount read-only ({why})");
            figures("hostile_read_only_mount", &[("ran", "false".into())]);
            return;
        }
    };
    // A client open before the mount went read-only: its writes are refused.
    let submit = held.submit(report(2));
    assert!(matches!(submit, Err(Error::Storage { .. })), "{submit:?}");
    let flush = held.flush(Duration::from_secs(10));
    assert!(
        matches!(flush, Err(Error::Storage { .. })),
        "a flush on a read-only outbox: {flush:?}"
    );
    assert!(sb.requests().is_empty(), "nothing was sent");
    // A new client cannot open it.
    let open = Client::open(fast(&dir, &sb));
    assert!(
        matches!(open, Err(Error::Storage { .. })),
        "{:?}",
        open.as_ref().err()
    );
    println!(
        "read-only mount: submit {:?}; flush {:?}; open {:?}",
        submit.err(),
        flush.err(),
        open.err()
    );
    drop(held);
    drop(mount);
    assert!(closed_dir_db.exists());
    let client = Client::open(fast(&dir, &sb)).expect("open once writable");
    deliver_and_check(&client, &sb, &[0, 1]);
    assert_eq!(sb.feedback().len(), 2);
    figures(
        "hostile_read_only_mount",
        &[
            ("ran", "true".into()),
            ("open", "refused_storage_error".into()),
            ("submit_when_open", "refused_storage_error".into()),
            ("flush_when_open", "refused_storage_error".into()),
            ("lost", "0".into()),
        ],
    );
}

// ---------------------------------------------------------------------------
// 5. An outbox another process has open
// ---------------------------------------------------------------------------

#[test]
fn an_outbox_open_in_another_process_is_shared() {
    let sb = common::sandbox_unlimited();
    let tmp = common::tempdir();
    let dir = tmp.path().join("outbox");
    let mut child = ChildProc::spawn(
        &[],
        "child_role_hostile",
        &child_env("hold:0:5", &dir, &sb),
        tmp.path().join("hold.stderr"),
    );
    let mut child_ids: Vec<ReportId> = Vec::new();
    let read_until_holding = |child: &mut ChildProc, ids: &mut Vec<ReportId>| loop {
        let line = child.next_line().expect("a line from the child");
        if line == "holding" {
            break;
        }
        let id = line
            .strip_prefix("id ")
            .and_then(|r| r.split(' ').next())
            .and_then(|x| x.parse().ok())
            .unwrap_or_else(|| panic!("child: {line}; stderr:\n{}", child.stderr_text()));
        ids.push(id);
    };
    read_until_holding(&mut child, &mut child_ids);
    // The child holds its client open: this process opens the same outbox.
    let client = Client::open(fast(&dir, &sb)).expect("open beside another process");
    let mut mine = Vec::new();
    for n in 100..105 {
        mine.push(
            client
                .submit(report(n))
                .expect("submit beside another process"),
        );
    }
    // Both submit while this process flushes.
    child.say("more:5:10");
    let flushing = std::thread::scope(|s| {
        let h = s.spawn(|| {
            let mut receipts = 0;
            for _ in 0..10 {
                receipts += client
                    .flush(Duration::from_secs(20))
                    .expect("flush")
                    .receipts
                    .len();
            }
            receipts
        });
        for n in 105..110 {
            mine.push(client.submit(report(n)).expect("submit while flushing"));
        }
        read_until_holding(&mut child, &mut child_ids);
        h.join().expect("flusher")
    });
    child.say("quit");
    assert_eq!(child.next_line().as_deref(), Some("done"));
    assert!(child.wait().success(), "{}", child.stderr_text());
    let all: Vec<u64> = (0..10).chain(100..110).collect();
    deliver_and_check(&client, &sb, &all);
    assert_eq!(sb.feedback().len(), 20, "each report created once");
    for id in child_ids.iter().chain(&mine) {
        assert_eq!(
            client.report(*id).expect("report").state,
            ReportState::Delivered
        );
    }
    let seqs: std::collections::BTreeSet<i64> = client
        .reports(&ReportFilter::default())
        .expect("list")
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(
        seqs,
        (1..=20).collect(),
        "one sequence across both processes"
    );
    println!("two processes: 20 reports, {flushing} receipts in the concurrent flushes");
    figures(
        "hostile_shared_outbox",
        &[
            ("accepted", "20".into()),
            ("delivered", "20".into()),
            ("duplicates", (sb.feedback().len() - 20).to_string()),
            ("lost", "0".into()),
        ],
    );
}
