//! `submit_many`: all or nothing, ids in order, caps applied to the batch,
//! a batch never evicting its own reports, and delivery as for single
//! submits.

mod common;

use std::time::Duration;

use common::*;
use fieldreport::{
    Attachment, Client, CrashReport, Error, Feedback, ReportKind, ReportState, Submission,
};

fn shot(n: u8) -> Attachment {
    Attachment::from_bytes(
        "Screenshot",
        format!("shot-{n}.png"),
        vec![n; 1000 + n as usize],
    )
}

#[test]
fn a_batch_is_stored_in_order_and_delivered_byte_identical() {
    let sb = sandbox_unlimited();
    let dir = tempdir();
    let client = open(dir.path(), &sb);
    let before = client.submit(Feedback::new("single, before")).unwrap();
    let batch: Vec<Submission> = vec![
        Feedback::new("batch 0").attach(shot(0)).into(),
        CrashReport::from_text("panic: batch 1\nat main.rs:1").into(),
        Feedback::new("batch 2").into(),
        Feedback::new("batch 3")
            .attach(shot(3))
            .attach(shot(4))
            .into(),
    ];
    let ids = client.submit_many(batch).unwrap();
    assert_eq!(ids.len(), 4);
    for (n, id) in ids.iter().enumerate() {
        assert_eq!(*id, before + 1 + n as i64, "ids follow each other");
        let r = client.report(*id).unwrap();
        assert_eq!(r.seq, *id, "seq is the id");
        assert_eq!(r.context["seq"], *id);
        assert_eq!(r.state, ReportState::Queued);
    }
    assert_eq!(client.report(ids[1]).unwrap().kind, ReportKind::Crash);
    assert_eq!(client.report(ids[3]).unwrap().attachments.len(), 2);
    assert_eq!(client.submit_many(Vec::new()).unwrap(), Vec::<i64>::new());

    let r = drain(&client, 10);
    assert_eq!((r.pending, r.dead), (0, 0), "{r:?}");
    let summaries = common::received_summaries(&sb);
    assert_eq!(
        summaries,
        [
            "single, before",
            "batch 0",
            "panic: batch 1",
            "batch 2",
            "batch 3"
        ]
    );
    let uploads = sb.uploads();
    for n in [0u8, 3, 4] {
        let want = sha256_hex(&vec![n; 1000 + n as usize]);
        assert!(uploads.iter().any(|u| u.sha256_hex == want), "shot {n}");
    }
}

#[test]
fn one_bad_report_refuses_the_batch_names_it_and_changes_nothing() {
    let sb = sandbox();
    let dir = tempdir();
    let client = open(dir.path(), &sb);
    client
        .submit(Feedback::new("already there").attach(shot(9)))
        .unwrap();
    let before = snapshot(&client, dir.path());
    let missing = dir.path().join("no-such-file.bin");
    let cases: Vec<(Vec<Submission>, &str)> = vec![
        (
            vec![
                Feedback::new("fine").attach(shot(1)).into(),
                Feedback::new("also fine").attach(shot(2)).into(),
                Feedback::new("   ").into(),
            ],
            "batch item 2: ",
        ),
        (
            vec![
                Feedback::new("fine").attach(shot(1)).into(),
                Feedback::new("unreadable")
                    .attach(Attachment::from_path("Screenshot", &missing))
                    .into(),
            ],
            "batch item 1: ",
        ),
        (
            vec![
                CrashReport::from_text("").into(),
                Feedback::new("fine").into(),
            ],
            "batch item 0: ",
        ),
    ];
    for (batch, want) in cases {
        let err = client.submit_many(batch).unwrap_err();
        assert!(err.to_string().contains(want), "{err} should name {want:?}");
        assert!(
            matches!(
                err,
                Error::InvalidInput { .. } | Error::AttachmentUnreadable { .. }
            ),
            "{err:?}"
        );
        assert_eq!(
            snapshot(&client, dir.path()),
            before,
            "nothing of the batch stays, no copy left behind: {err}"
        );
    }
    // The outbox still takes reports, and the ids carry on without a gap
    // (a refused batch takes no sequence numbers).
    let id = client.submit(Feedback::new("after")).unwrap();
    assert_eq!(client.report(id).unwrap().seq, 2);
}

#[test]
fn a_batch_over_the_caps_is_refused_whole_and_never_evicts_its_own() {
    let sb = sandbox();
    let dir = tempdir();
    let mut cfg = config(dir.path(), &sb);
    cfg.policy.max_reports = 5;
    let client = Client::open(cfg).unwrap();

    // Larger than the cap: refused before anything is copied.
    let six: Vec<Submission> = (0..6)
        .map(|n| Feedback::new(format!("f{n}")).into())
        .collect();
    let err = client.submit_many(six).unwrap_err();
    assert!(matches!(err, Error::OutboxFull { .. }), "{err:?}");
    assert!(err.to_string().contains("batch of 6"), "{err}");

    // Two old crashes, then a batch of four that needs one of their places:
    // the oldest crash is evicted, as for single submits.
    let c1 = client
        .submit_crash(CrashReport::from_text("old crash one"))
        .unwrap();
    let c2 = client
        .submit_crash(CrashReport::from_text("old crash two"))
        .unwrap();
    let batch: Vec<Submission> = (0..4)
        .map(|n| CrashReport::from_text(format!("batch crash {n}")).into())
        .collect();
    let ids = client.submit_many(batch).unwrap();
    assert_eq!(client.report(c1).unwrap().state, ReportState::Evicted);
    assert_eq!(client.report(c2).unwrap().state, ReportState::Queued);
    for id in &ids {
        assert_eq!(client.report(*id).unwrap().state, ReportState::Queued);
    }

    // Four typed reports and room for one more: a batch of two crashes.
    // The second could only fit by evicting the first, a report of its own
    // batch: refused whole instead.
    client.purge_all().unwrap();
    for n in 0..4 {
        client.submit(Feedback::new(format!("typed {n}"))).unwrap();
    }
    let before = snapshot(&client, dir.path());
    let err = client
        .submit_many(vec![
            CrashReport::from_text("new crash x").into(),
            CrashReport::from_text("new crash y").into(),
        ])
        .unwrap_err();
    assert!(matches!(err, Error::OutboxFull { .. }), "{err:?}");
    assert!(err.to_string().contains("batch item 1: "), "{err}");
    assert!(
        err.to_string()
            .contains("1 reports before it in this batch"),
        "{err}"
    );
    assert_eq!(snapshot(&client, dir.path()), before, "rolled back");
    assert_eq!(client.stats().unwrap().evicted, 1, "only c1, earlier");
}

#[test]
fn a_closed_client_refuses_a_batch() {
    let sb = sandbox();
    let dir = tempdir();
    let client = open(dir.path(), &sb);
    client.close();
    let err = client
        .submit_many(vec![Feedback::new("late").into()])
        .unwrap_err();
    assert_eq!(err, Error::Closed);
}

#[test]
fn the_background_sender_delivers_a_batch() {
    let sb = sandbox_unlimited();
    let dir = tempdir();
    let client = open(dir.path(), &sb);
    client.start_sender().unwrap();
    let batch: Vec<Submission> = (0..20)
        .map(|n| Feedback::new(format!("rig report {n}")).into())
        .collect();
    client.submit_many(batch).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while client.stats().unwrap().delivered < 20 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(client.stats().unwrap().delivered, 20);
    assert_eq!(sb.feedback().len(), 20);
}
