//! Progress events: an upload of a few MB reports its bytes as they go, to
//! every destination that streams a file (Centercode's attachment upload,
//! ABC's one request with its images, ABC's presigned PUT, Apptentive's one
//! request with a base64 file), starting at 0 and ending exactly once at
//! the total; a small file reports nothing.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use fieldreport::sandbox::{Sandbox, SandboxConfig};
use fieldreport::{
    AbcConfig, ApptentiveConfig, Attachment, Client, Config, Event, Feedback, ReportId, ReportState,
};

/// Bytes of the big attachment: several MiB, over the 1 MiB threshold.
const BIG: usize = 6 * 1024 * 1024;

/// The progress events heard, as `(id, file name, sent, total)`.
fn progress(events: &[Event]) -> Vec<(ReportId, String, u64, u64)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Progress {
                id,
                file_name,
                sent_bytes,
                total_bytes,
            } => Some((*id, file_name.clone(), *sent_bytes, *total_bytes)),
            _ => None,
        })
        .collect()
}

/// Checks one upload's events: from 0, rising, ending once at `total`, and
/// heard before the report's `Delivered`.
fn check(events: &[Event], id: ReportId, name: &str, total: u64) {
    let seen: Vec<_> = progress(events)
        .into_iter()
        .filter(|p| p.0 == id && p.1 == name)
        .collect();
    assert!(seen.len() >= 2, "{name}: {seen:?}");
    assert_eq!(seen[0].2, 0, "{name}: starts at 0: {seen:?}");
    assert!(seen.iter().all(|p| p.3 == total), "{name}: {seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0].2 < w[1].2),
        "{name}: rises: {seen:?}"
    );
    assert_eq!(seen.last().unwrap().2, total, "{name}: ends at total");
    let last_progress = events
        .iter()
        .rposition(|e| matches!(e, Event::Progress { id: i, .. } if *i == id))
        .unwrap();
    let delivered = events
        .iter()
        .position(|e| matches!(e, Event::Delivered { receipt } if receipt.id == id))
        .expect("delivered");
    assert!(last_progress < delivered);
}

fn deliver(client: &Client, fb: Feedback) -> (ReportId, Vec<Event>) {
    let rec = Recorder::new();
    client.set_listener(Some(rec.clone() as Arc<dyn fieldreport::Listener>));
    let id = client.submit(fb).unwrap();
    let r = client.flush(Duration::from_secs(60)).unwrap();
    assert_eq!(r.pending, 0, "{r:?}");
    assert_eq!(client.report(id).unwrap().state, ReportState::Delivered);
    (id, rec.events())
}

fn big_png() -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    b.resize(BIG, 7);
    b
}

#[test]
fn a_centercode_upload_reports_progress_ending_at_its_size_and_a_small_one_none() {
    let sb = sandbox();
    let dir = tempdir();
    let client = open(dir.path(), &sb);
    let (id, events) = deliver(
        &client,
        Feedback::new("big")
            .attach(Attachment::from_bytes("Screenshot", "big.png", big_png()))
            .attach(Attachment::from_bytes("Log", "small.txt", vec![b'a'; 1000])),
    );
    check(&events, id, "big.png", BIG as u64);
    assert!(
        progress(&events).iter().all(|p| p.1 == "big.png"),
        "{events:?}"
    );
    assert_eq!(sb.uploads().len(), 2);
}

fn abc(dir: &std::path::Path, sb: &Sandbox, presigned: bool) -> Client {
    let cfg = AbcConfig::new(
        &sb.base_url(),
        "1",
        "1",
        sb.api_key(),
        &[("description", "description"), ("images", "images")],
    )
    .map(|c| {
        if presigned {
            c.with_presigned_images()
        } else {
            c
        }
    })
    .unwrap();
    let mut c = Config::abc(dir, cfg);
    c.policy.request_timeout = Duration::from_secs(10);
    Client::open(c).unwrap()
}

#[test]
fn abcs_presigned_put_reports_the_files_progress() {
    // ABC takes images of 1 MiB at most, the least that reports progress.
    let sb = Sandbox::start(SandboxConfig::abc()).unwrap();
    let dir = tempdir();
    let client = abc(dir.path(), &sb, true);
    let mut png = big_png();
    png.truncate(1024 * 1024);
    let (id, events) = deliver(
        &client,
        Feedback::new("big image")
            .description("d")
            .attach(Attachment::from_bytes("images", "big.png", png)),
    );
    // The PUT carries the file alone.
    check(&events, id, "big.png", 1024 * 1024);
}

#[test]
fn abcs_one_request_reports_its_images_progress_under_their_names() {
    // ABC takes at most 1 MiB per image in its multipart request: three
    // images of just under that make a body of about 3 MB.
    let sb = Sandbox::start(SandboxConfig::abc()).unwrap();
    let dir = tempdir();
    let client = abc(dir.path(), &sb, false);
    let image = |name: &str| {
        let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
        b.resize(1_000_000, 3);
        Attachment::from_bytes("images", name, b)
    };
    let (id, events) = deliver(
        &client,
        Feedback::new("three images")
            .description("d")
            .attach(image("a.png"))
            .attach(image("b.png"))
            .attach(image("c.png")),
    );
    let total = progress(&events).last().map(|p| p.3).unwrap_or(0);
    // The whole multipart body: the images and their framing.
    assert!(total > 3_000_000, "{total}");
    check(&events, id, "a.png, b.png, c.png", total);
}

#[test]
fn apptentives_base64_request_reports_progress() {
    let sb = Sandbox::start(SandboxConfig::apptentive()).unwrap();
    let dir = tempdir();
    let mut c = Config::apptentive(
        dir.path(),
        ApptentiveConfig::new(&sb.base_url(), sb.api_key()).unwrap(),
    );
    c.policy.request_timeout = Duration::from_secs(10);
    let client = Client::open(c).unwrap();
    let (id, events) = deliver(
        &client,
        Feedback::new("big log").attach(Attachment::from_bytes("log", "big.log", vec![b'x'; BIG])),
    );
    let total = progress(&events).last().map(|p| p.3).unwrap_or(0);
    // Base64 makes the request at least 4/3 of the file.
    assert!(total >= BIG as u64 * 4 / 3, "{total}");
    check(&events, id, "big.log", total);
}
