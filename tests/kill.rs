//! Process-kill and concurrency tests: a submit, a batch (`submit_many`) or
//! a flush killed with SIGKILL at a random moment loses nothing that was
//! acknowledged, never leaves part of a batch, and never creates a report
//! twice outside the one documented ambiguous window; two flushers on one
//! outbox (two clients in one process, or two processes) exclude each other.
//! The flush kill storm runs for every destination (`common::Dest`): ABC
//! searches its client-id field before a re-send and must never hold a
//! report twice; Apptentive cannot be asked, so a re-send after a kill is
//! counted in `ambiguous_resends`. (A submit makes no request and stores
//! the report neutral, whatever the destination: the submit storms need no
//! destination of their own.)
//!
//! The child processes are this test binary itself, re-executed with
//! `--exact <child_role_...> --nocapture --test-threads=1` and
//! `FIELDREPORT_KILL_CHILD=<role>` in the environment, through
//! `support::ChildProc`. The `child_role_*` "tests" below are those roles:
//! without that variable they return at once, so in a normal run they pass
//! trivially and test nothing.
//!
//! The parent's random choices (kill moments, delays) come from a seed that
//! is printed; set `FIELDREPORT_KILL_SEED` to reuse one (the kill moments
//! still depend on scheduling, so a replay is close, not exact).
#![cfg(unix)]

mod common;
mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::Dest;
use fieldreport::sandbox::{Fault, Sandbox};
use fieldreport::{
    Attachment, AttachmentState, Client, Config, CrashReport, Feedback, ReportFilter, ReportId,
    ReportKind, ReportState, ReportStatus, Submission,
};
use serde_json::json;
use support::{bytes_for, killed_by_sigkill, mix, tell_parent, ChildProc, Rng, CHILD_TIMEOUT};

/// Which role a re-executed test binary plays.
const ROLE_VAR: &str = "FIELDREPORT_KILL_CHILD";
/// The outbox directory a child opens.
const DIR_VAR: &str = "FIELDREPORT_KILL_DIR";
/// The sandbox base URL a flushing child delivers to.
const URL_VAR: &str = "FIELDREPORT_KILL_URL";
/// The sandbox API key a flushing child uses.
const KEY_VAR: &str = "FIELDREPORT_KILL_KEY";
/// The destination (`common::Dest::name`) a flushing child delivers to;
/// Centercode when unset.
const DEST_VAR: &str = "FIELDREPORT_KILL_DEST";
/// The first counter a submitting child uses.
const START_VAR: &str = "FIELDREPORT_KILL_START";
/// Replays the parent's random choices.
const SEED_VAR: &str = "FIELDREPORT_KILL_SEED";

// ---------------------------------------------------------------------------
// Deterministic content
// ---------------------------------------------------------------------------

/// The shape of the reports one test submits: how many attachments report
/// `n` has and how large each is, both functions of `n` alone, so that the
/// parent can recompute what a child submitted.
#[derive(Clone, Copy)]
struct Shape {
    summary_prefix: &'static str,
    count: fn(u64) -> usize,
    size: fn(u64, usize) -> usize,
    /// PNG files (by name and first bytes) for ABC, which takes images
    /// only, in a `rating` field (its channel refuses unknown fields);
    /// otherwise `.bin` files and a `counter` field.
    abc: bool,
}

impl Shape {
    /// The name of attachment `i` of report `n`.
    fn file_name(&self, n: u64, i: usize) -> String {
        format!("att-{n}-{i}.{}", if self.abc { "png" } else { "bin" })
    }

    /// The bytes of attachment `i` of report `n`.
    fn bytes(&self, n: u64, i: usize) -> Vec<u8> {
        let mut b = bytes_for(n, i, (self.size)(n, i));
        if self.abc {
            let magic = b"\x89PNG\r\n\x1a\n";
            let head = magic.len().min(b.len());
            b[..head].copy_from_slice(&magic[..head]);
        }
        b
    }

    fn summary(&self, n: u64) -> String {
        format!("{} {n}", self.summary_prefix)
    }

    /// The counter of a report, read back from its summary.
    fn counter_of(&self, summary: &str) -> Option<u64> {
        summary
            .strip_prefix(self.summary_prefix)?
            .strip_prefix(' ')?
            .parse()
            .ok()
    }

    fn feedback(&self, n: u64) -> Feedback {
        let mut f = Feedback::new(self.summary(n))
            .description(format!("counter {n}"))
            .field(if self.abc { "rating" } else { "counter" }, json!(n));
        for i in 0..(self.count)(n) {
            // Both elements accept several files.
            let element = if i % 2 == 0 { "Screenshot" } else { "Log" };
            f = f.attach(Attachment::from_bytes(
                element,
                self.file_name(n, i),
                self.bytes(n, i),
            ));
        }
        f
    }
}

/// Reports killed mid-submit: 1 or 2 attachments; one in four is 1–2 MB,
/// the rest up to 64 KiB.
const SUBMIT_SHAPE: Shape = Shape {
    summary_prefix: "kill test",
    count: |n| 1 + (mix(n ^ 0xa77a) % 2) as usize,
    size: |n, i| {
        let r = mix(n.wrapping_mul(31).wrapping_add(i as u64) ^ 0x5123);
        if r.is_multiple_of(4) {
            1_000_000 + (r >> 8) as usize % 1_000_000
        } else {
            1 + (r >> 8) as usize % 65_536
        }
    },
    abc: false,
};

/// Reports whose flush is killed: 2 to 4 attachments; one in three is
/// 1–3 MB, the rest up to 256 KiB.
const FLUSH_SHAPE: Shape = Shape {
    summary_prefix: "flush kill test",
    count: |n| 2 + (mix(n ^ 0xf1a5) % 3) as usize,
    size: |n, i| {
        let r = mix(n.wrapping_mul(17).wrapping_add(i as u64) ^ 0x9fe1);
        if r.is_multiple_of(3) {
            1_000_000 + (r >> 8) as usize % 2_000_000
        } else {
            1 + (r >> 8) as usize % 262_144
        }
    },
    abc: false,
};

/// `FLUSH_SHAPE` within ABC's rules: PNG images of at most 1 MiB each;
/// one in three 0.5–1 MB, the rest up to 256 KiB.
const ABC_FLUSH_SHAPE: Shape = Shape {
    summary_prefix: "flush kill test",
    count: FLUSH_SHAPE.count,
    size: |n, i| {
        let r = mix(n.wrapping_mul(17).wrapping_add(i as u64) ^ 0x9fe1);
        if r.is_multiple_of(3) {
            500_000 + (r >> 8) as usize % 500_000
        } else {
            8 + (r >> 8) as usize % 262_144
        }
    },
    abc: true,
};

/// Small reports with one attachment up to 32 KiB.
const SMALL_SHAPE: Shape = Shape {
    summary_prefix: "concurrent test",
    count: |_| 1,
    size: |n, _| 1 + mix(n ^ 0x5a11) as usize % 32_768,
    abc: false,
};

/// The batches of `sigkill_during_submit_many_keeps_batches_whole`, each a
/// function of its number `b` alone so that the parent can recompute what a
/// child submitted: batch `b` holds `batch_len(b)` reports (2 to 8); report
/// `i` of it is a crash report one time in four, feedback otherwise, and
/// has 0 to 2 attachments besides a crash report's log.
const BATCH_PREFIX: &str = "kill batch";

/// How many reports batch `b` holds: 2 to 8.
fn batch_len(b: u64) -> usize {
    2 + (mix(b ^ 0xba7c) % 7) as usize
}

/// The number report `i` of batch `b` draws its content from.
fn batch_key(b: u64, i: usize) -> u64 {
    b * 16 + i as u64
}

/// `kill batch <b> item <i> of <len>`: names the batch and the index.
fn batch_summary(b: u64, i: usize) -> String {
    format!("{BATCH_PREFIX} {b} item {i} of {}", batch_len(b))
}

/// `(batch, index, batch length)`, read back from a summary.
fn parse_batch_summary(summary: &str) -> Option<(u64, usize, usize)> {
    let rest = summary.strip_prefix(BATCH_PREFIX)?.strip_prefix(' ')?;
    match rest.split(' ').collect::<Vec<_>>().as_slice() {
        [b, "item", i, "of", len] => Some((b.parse().ok()?, i.parse().ok()?, len.parse().ok()?)),
        _ => None,
    }
}

fn batch_is_crash(b: u64, i: usize) -> bool {
    mix(batch_key(b, i) ^ 0xc7a5).is_multiple_of(4)
}

/// The sizes of the attachments of report `i` of batch `b` (a crash
/// report's log aside): 0 to 2 of them; one in four is 100–400 KB, the
/// rest up to 32 KiB.
fn batch_attachment_sizes(b: u64, i: usize) -> Vec<usize> {
    let key = batch_key(b, i);
    (0..(mix(key ^ 0xa77b) % 3) as usize)
        .map(|j| {
            let r = mix(key.wrapping_mul(29).wrapping_add(j as u64) ^ 0x5113);
            if r.is_multiple_of(4) {
                100_000 + (r >> 8) as usize % 300_000
            } else {
                1 + (r >> 8) as usize % 32_768
            }
        })
        .collect()
}

fn batch_attachment_name(b: u64, i: usize, j: usize) -> String {
    format!("batch-{b}-{i}-{j}.bin")
}

/// The log of report `i` of batch `b` when it is a crash report: its
/// summary, then up to 40 KB of hex lines.
fn batch_crash_log(b: u64, i: usize) -> String {
    use std::fmt::Write as _;
    let key = batch_key(b, i);
    let mut log = batch_summary(b, i);
    log.push('\n');
    for line in bytes_for(key, 99, 1 + mix(key ^ 0x10c) as usize % 20_000).chunks(32) {
        for byte in line {
            let _ = write!(log, "{byte:02x}");
        }
        log.push('\n');
    }
    log
}

/// Report `i` of batch `b`, as a child submits it.
fn batch_submission(b: u64, i: usize) -> Submission {
    let key = batch_key(b, i);
    let attachments = batch_attachment_sizes(b, i)
        .into_iter()
        .enumerate()
        .map(|(j, size)| {
            let element = if j % 2 == 0 { "Screenshot" } else { "Log" };
            Attachment::from_bytes(
                element,
                batch_attachment_name(b, i, j),
                bytes_for(key, j, size),
            )
        })
        .collect();
    if batch_is_crash(b, i) {
        let mut c = CrashReport::from_text(batch_crash_log(b, i));
        c.summary = Some(batch_summary(b, i));
        c.file_name = Some(format!("crash-{b}-{i}.log"));
        c.attachments = attachments;
        c.into()
    } else {
        let mut f = Feedback::new(batch_summary(b, i))
            .field("batch", json!(b))
            .field("index", json!(i));
        f.attachments = attachments;
        f.into()
    }
}

/// How many attachment copies batch `b` makes (crash logs included).
fn batch_copies(b: u64) -> usize {
    (0..batch_len(b))
        .map(|i| batch_attachment_sizes(b, i).len() + usize::from(batch_is_crash(b, i)))
        .sum()
}

/// `(file name, size, SHA-256)` of the attachments of report `i` of batch
/// `b`, in order, a crash report's log aside.
fn batch_expected(b: u64, i: usize) -> Vec<(String, u64, String)> {
    batch_attachment_sizes(b, i)
        .into_iter()
        .enumerate()
        .map(|(j, size)| {
            let bytes = bytes_for(batch_key(b, i), j, size);
            (
                batch_attachment_name(b, i, j),
                size as u64,
                common::sha256_hex(&bytes),
            )
        })
        .collect()
}

/// Size and SHA-256 of every attachment of a report, recomputed (and cached).
#[derive(Default)]
struct Expected(HashMap<(u64, usize), (u64, String)>);

impl Expected {
    fn attachments(&mut self, shape: &Shape, n: u64) -> Vec<(u64, String)> {
        (0..(shape.count)(n))
            .map(|i| {
                self.0
                    .entry((n, i))
                    .or_insert_with(|| {
                        let b = shape.bytes(n, i);
                        (b.len() as u64, common::sha256_hex(&b))
                    })
                    .clone()
            })
            .collect()
    }
}

/// Asserts that a report's attachments are exactly those of counter `n`.
fn assert_attachments(r: &ReportStatus, shape: &Shape, n: u64, expected: &mut Expected) {
    let want = expected.attachments(shape, n);
    assert_eq!(
        r.attachments.len(),
        want.len(),
        "report {} (counter {n}) has {} attachments, expected {}",
        r.id,
        r.attachments.len(),
        want.len()
    );
    for (i, (a, (size, sha))) in r.attachments.iter().zip(&want).enumerate() {
        assert_eq!(
            a.file_name,
            shape.file_name(n, i),
            "report {} attachment {i}",
            r.id
        );
        assert_eq!(
            (&a.size, &a.sha256),
            (size, sha),
            "report {} (counter {n}) attachment {i}: size/sha256 differ from what was submitted",
            r.id
        );
    }
}

// ---------------------------------------------------------------------------
// Configs
// ---------------------------------------------------------------------------

/// `common::config` with the client-side request limiter off (the sandboxes
/// here are unlimited too), so that the tests stay fast.
fn fast_config(dir: &Path, sb: &Sandbox) -> Config {
    dest_config(Dest::Centercode, dir, sb)
}

/// `fast_config` for destination `dest`.
fn dest_config(dest: Dest, dir: &Path, sb: &Sandbox) -> Config {
    fast_policy(dest, dest.config(dir, sb, sb.api_key()))
}

/// No client-side request limiter; where a lost answer is looked up (ABC),
/// a request timeout of 2 s rather than 5, since the search waits out
/// twice the timeout after an answer a kill cut off.
fn fast_policy(dest: Dest, mut c: Config) -> Config {
    c.policy.max_requests_per_sec = 0;
    if dest.looks_up() {
        c.policy.request_timeout = Duration::from_secs(2);
    }
    c
}

/// The child's config: the same policy as `fast_config`, for a sandbox known
/// only by URL and key, of the destination named in `FIELDREPORT_KILL_DEST`.
fn child_config(dir: &Path, base_url: &str, api_key: &str) -> Config {
    let dest = match std::env::var(DEST_VAR) {
        Ok(name) => Dest::from_name(&name).unwrap_or_else(|| panic!("{DEST_VAR}={name}")),
        Err(_) => Dest::Centercode,
    };
    fast_policy(dest, dest.config_at(dir, base_url, api_key))
}

/// Room for every report the submit storms make in their full run (the
/// default caps would evict crash reports and refuse typed feedback).
fn roomy(mut c: Config) -> Config {
    c.policy.max_reports = 100_000;
    c.policy.max_bytes = 4 << 30;
    c
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

// ---------------------------------------------------------------------------
// Child roles (trivially passing unless re-executed by a parent test)
// ---------------------------------------------------------------------------

/// The body of a submitting child role: returns at once unless
/// `FIELDREPORT_KILL_CHILD` is `role`. Otherwise opens the outbox (no
/// server: submitting makes no network call), says `ready`, then runs
/// `step` for each number from `FIELDREPORT_KILL_START` on and prints the
/// line it returns, until killed; it stops after a step's error, and after
/// 500 steps or `CHILD_TIMEOUT`, so that a child whose parent died does not
/// run forever.
fn submit_until_killed(role: &str, mut step: impl FnMut(&Client, u64) -> Result<String, String>) {
    if std::env::var(ROLE_VAR).as_deref() != Ok(role) {
        return;
    }
    let dir = PathBuf::from(env(DIR_VAR));
    let start: u64 = env(START_VAR).parse().expect("start number");
    let client = Client::open(roomy(child_config(&dir, &env(URL_VAR), &env(KEY_VAR))))
        .expect("child opens the outbox");
    tell_parent("ready");
    let give_up = Instant::now() + CHILD_TIMEOUT;
    for n in start..start + 500 {
        if Instant::now() > give_up {
            break;
        }
        match step(&client, n) {
            Ok(line) => tell_parent(&line),
            Err(line) => {
                tell_parent(&line);
                return;
            }
        }
    }
}

/// Child role of `sigkill_during_submit_loses_nothing_printed`: submits
/// reports with counters from `FIELDREPORT_KILL_START` on, printing
/// `id=<id> n=<counter>` once each `submit` has returned, until killed.
/// Without `FIELDREPORT_KILL_CHILD=submit` it returns at once (passes
/// trivially).
#[test]
fn child_role_submitter() {
    submit_until_killed("submit", |client, n| {
        match client.submit(SUBMIT_SHAPE.feedback(n)) {
            Ok(id) => Ok(format!("id={id} n={n}")),
            Err(e) => Err(format!("error n={n} {e}")),
        }
    });
}

/// Child role of `sigkill_during_submit_many_keeps_batches_whole`: submits
/// batches numbered from `FIELDREPORT_KILL_START` on with `submit_many`,
/// printing `batch=<b> ids=<id>,<id>,...` once each has returned, until
/// killed. Without `FIELDREPORT_KILL_CHILD=batch` it returns at once (passes
/// trivially).
#[test]
fn child_role_batch_submitter() {
    submit_until_killed("batch", |client, b| {
        let batch = (0..batch_len(b)).map(|i| batch_submission(b, i)).collect();
        match client.submit_many(batch) {
            Ok(ids) => {
                let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
                Ok(format!("batch={b} ids={}", ids.join(",")))
            }
            Err(e) => Err(format!("error batch={b} {e}")),
        }
    });
}

/// Child role of the flush tests: opens the outbox, says `flushing`, flushes
/// once to the sandbox in `FIELDREPORT_KILL_URL`, and says how it ended.
/// Without `FIELDREPORT_KILL_CHILD=flush` it returns at once (passes
/// trivially).
#[test]
fn child_role_flusher() {
    if std::env::var(ROLE_VAR).as_deref() != Ok("flush") {
        return;
    }
    let dir = PathBuf::from(env(DIR_VAR));
    let client = Client::open(child_config(&dir, &env(URL_VAR), &env(KEY_VAR)))
        .expect("child opens the outbox");
    tell_parent("flushing");
    match client.flush(CHILD_TIMEOUT) {
        Ok(r) => tell_parent(&format!(
            "done pending={} dead={} receipts={} stopped={:?}",
            r.pending,
            r.dead,
            r.receipts.len(),
            r.stopped
        )),
        Err(e) => tell_parent(&format!("error {e}")),
    }
}

// ---------------------------------------------------------------------------
// Running children
// ---------------------------------------------------------------------------

/// The environment of a submitting child (`role` `submit` or `batch`) on the
/// outbox in `dir`, numbering its reports or batches from `start`. It
/// queues for `sb`, the destination the parent delivers to (reports are
/// only ever sent to the one they were queued for); it never sends.
fn submitter_env(role: &str, dir: &Path, start: u64, sb: &Sandbox) -> Vec<(&'static str, String)> {
    vec![
        (ROLE_VAR, role.to_string()),
        (DIR_VAR, dir.display().to_string()),
        (START_VAR, start.to_string()),
        (URL_VAR, sb.base_url()),
        (KEY_VAR, sb.api_key().to_string()),
    ]
}

/// One kill of a submit storm: runs the child `role_test`; once it is ready
/// and has printed `target` lines, waits `delay` (to land in the middle of
/// the next submit, or just after it), SIGKILLs it, and returns every line
/// it printed. `who` names it in failures.
fn submit_then_kill(
    role_test: &str,
    envs: &[(&str, String)],
    stderr: PathBuf,
    target: u64,
    delay: Duration,
    who: &str,
) -> Vec<String> {
    let mut child = ChildProc::spawn(&[], role_test, envs, stderr);
    child.expect_line("ready");
    let mut lines = Vec::new();
    while (lines.len() as u64) < target {
        match child.next_line() {
            Some(line) => lines.push(line),
            None => panic!(
                "{who} stopped early after {lines:?}; its stderr:\n{}",
                child.stderr_text()
            ),
        }
    }
    thread::sleep(delay);
    let (status, rest) = child.kill();
    assert!(
        killed_by_sigkill(status),
        "{who} should have died of SIGKILL, not {status:?}; stderr:\n{}",
        child.stderr_text()
    );
    lines.extend(rest);
    lines
}

fn flusher_env(dir: &Path, sb: &Sandbox) -> Vec<(&'static str, String)> {
    dest_flusher_env(Dest::Centercode, dir, sb)
}

/// `flusher_env` for a child delivering to destination `dest`.
fn dest_flusher_env(dest: Dest, dir: &Path, sb: &Sandbox) -> Vec<(&'static str, String)> {
    vec![
        (ROLE_VAR, "flush".to_string()),
        (DEST_VAR, dest.name().to_string()),
        (DIR_VAR, dir.display().to_string()),
        (URL_VAR, sb.base_url()),
        (KEY_VAR, sb.api_key().to_string()),
    ]
}

// ---------------------------------------------------------------------------
// Checks against the sandbox
// ---------------------------------------------------------------------------

/// How many feedback the sandbox created per summary.
fn created_per_summary(sb: &Sandbox) -> BTreeMap<String, usize> {
    dest_created_per_summary(Dest::Centercode, sb)
}

/// How many reports a sandbox of destination `dest` holds per summary.
fn dest_created_per_summary(dest: Dest, sb: &Sandbox) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for f in sb.feedback() {
        let summary = dest.summary_of(&f.body);
        assert!(
            !summary.is_empty(),
            "created feedback {} has no summary: {}",
            f.key,
            f.body
        );
        *counts.entry(summary).or_insert(0) += 1;
    }
    counts
}

/// Uploads the sandbox received, per feedback key: `(size, sha256)`, sorted.
fn uploads_per_key(sb: &Sandbox) -> HashMap<String, Vec<(u64, String)>> {
    let mut m: HashMap<String, Vec<(u64, String)>> = HashMap::new();
    for u in sb.uploads() {
        m.entry(u.feedback_key.clone())
            .or_default()
            .push((u.size, u.sha256_hex.clone()));
    }
    for v in m.values_mut() {
        v.sort();
    }
    m
}

/// Every report in the outbox, with its counter (read from its summary).
fn reports_by_counter(client: &Client, shape: &Shape) -> BTreeMap<u64, ReportStatus> {
    let mut by_counter = BTreeMap::new();
    for r in client
        .reports(&ReportFilter::default())
        .expect("list reports")
    {
        let n = shape
            .counter_of(&r.summary)
            .unwrap_or_else(|| panic!("report {} has an unexpected summary {:?}", r.id, r.summary));
        if let Some(other) = by_counter.insert(n, r) {
            panic!("two reports (one is {}) have counter {n}", other.id);
        }
    }
    by_counter
}

/// Asserts that every report is delivered, created exactly once, and that
/// each attachment arrived exactly once and byte-identical, and nothing else.
fn assert_delivered_exactly_once(
    client: &Client,
    sb: &Sandbox,
    shape: &Shape,
    expected: &mut Expected,
) -> usize {
    let reports: Vec<_> = reports_by_counter(client, shape)
        .into_iter()
        .map(|(n, r)| (n.to_string(), r, expected.attachments(shape, n)))
        .collect();
    assert_each_delivered_once(sb, &reports)
}

/// A report to check: a label naming it in failures, its status, and the
/// `(size, sha256)` of the attachments it must have.
type Deliverable = (String, ReportStatus, Vec<(u64, String)>);

/// Asserts that each report is delivered, created exactly once, that each
/// attachment arrived exactly once and byte-identical, and that the sandbox
/// has nothing else. Returns how many reports.
fn assert_each_delivered_once(sb: &Sandbox, reports: &[Deliverable]) -> usize {
    let created = created_per_summary(sb);
    let uploads = uploads_per_key(sb);
    let mut total_attachments = 0;
    for (label, r, want) in reports {
        assert_eq!(r.state, ReportState::Delivered, "report {} ({label})", r.id);
        assert_eq!(
            created.get(&r.summary),
            Some(&1),
            "report {} ({label}) must be created exactly once",
            r.id
        );
        assert!(
            r.attachments
                .iter()
                .all(|a| a.state == AttachmentState::Uploaded),
            "report {} ({label}) has attachments not uploaded: {:?}",
            r.id,
            r.attachments
        );
        let key = r
            .server_key
            .as_deref()
            .expect("a delivered report has a key");
        let mut want = want.clone();
        want.sort();
        total_attachments += want.len();
        assert_eq!(
            uploads.get(key).cloned().unwrap_or_default(),
            want,
            "uploads of report {} ({label}, {key}) must be its attachments, once each",
            r.id
        );
    }
    assert_eq!(
        sb.feedback().len(),
        reports.len(),
        "the sandbox created feedback that is not in the outbox: {created:?}"
    );
    assert_eq!(sb.uploads().len(), total_attachments, "uploads in all");
    reports.len()
}

/// SHA-256 of every file in the outbox's attachment folder, sorted.
fn outbox_files(dir: &Path) -> Vec<(u64, String)> {
    let mut v: Vec<(u64, String)> = std::fs::read_dir(dir.join("files"))
        .expect("the outbox has a files/ folder")
        .map(|e| {
            let bytes = std::fs::read(e.expect("dir entry").path()).expect("read a copy");
            (bytes.len() as u64, common::sha256_hex(&bytes))
        })
        .collect();
    v.sort();
    v
}

/// Parses a submitter's `id=<id> n=<counter>` line.
fn parse_id_line(line: &str) -> Option<(ReportId, u64)> {
    let mut it = line.split(' ');
    let id = it.next()?.strip_prefix("id=")?.parse().ok()?;
    let n = it.next()?.strip_prefix("n=")?.parse().ok()?;
    Some((id, n))
}

// ---------------------------------------------------------------------------
// 1. SIGKILL during submit
// ---------------------------------------------------------------------------

#[test]
fn sigkill_during_submit_loses_nothing_printed() {
    // More kills in the full run (FIELDREPORT_FULL=1).
    let rounds: u64 = support::scale(5, 40);
    let shape = SUBMIT_SHAPE;
    let mut rng = Rng::seeded(SEED_VAR, "sigkill_during_submit_loses_nothing_printed");
    let tmp = common::tempdir();
    let dir = tmp.path().join("outbox");
    // Report id -> counter, for every id a child printed.
    let mut printed: BTreeMap<ReportId, u64> = BTreeMap::new();

    // Where the children queue for, and where the reports go after the kills.
    let sb = common::sandbox_unlimited();
    for round in 0..rounds {
        let target = rng.range(3, 15);
        // Killed somewhere in the middle of the next submit (copying,
        // fsyncing, committing) or just after it.
        let delay = Duration::from_micros(rng.range(0, 40_000));
        let lines = submit_then_kill(
            "child_role_submitter",
            &submitter_env("submit", &dir, round * 10_000, &sb),
            tmp.path().join(format!("submit-{round}.stderr")),
            target,
            delay,
            &format!("child {round}"),
        );
        let n_before = printed.len();
        for line in &lines {
            let (id, n) =
                parse_id_line(line).unwrap_or_else(|| panic!("child {round} printed {line:?}"));
            assert!(
                n >= round * 10_000 && n < (round + 1) * 10_000,
                "counter {n} in round {round}"
            );
            assert!(
                printed.insert(id, n).is_none(),
                "report id {id} was returned twice"
            );
        }
        println!(
            "round {round}: killed after {} ids (+{:?}), {} printed in all",
            target,
            delay,
            printed.len() - n_before
        );
    }

    // Copies a killed submit left behind (swept by the next open).
    let left_on_disk = std::fs::read_dir(dir.join("files"))
        .map(|d| d.count())
        .unwrap_or(0);
    let client = Client::open(fast_config(&dir, &sb)).expect("open after the kills");
    let mut expected = Expected::default();

    // Every id a child printed is there, queued, with its attachments intact.
    for (&id, &n) in &printed {
        let r = client
            .report(id)
            .unwrap_or_else(|e| panic!("printed report {id} (counter {n}) is lost: {e}"));
        assert_eq!(r.state, ReportState::Queued, "report {id}");
        assert_eq!(r.summary, shape.summary(n), "report {id}");
        assert_attachments(&r, &shape, n, &mut expected);
    }

    // Every report in the outbox is whole; at most one per round was
    // committed and not printed (killed between commit and print).
    let reports = reports_by_counter(&client, &shape);
    let printed_counters: HashSet<u64> = printed.values().copied().collect();
    let unprinted: Vec<u64> = reports
        .keys()
        .filter(|n| !printed_counters.contains(n))
        .copied()
        .collect();
    assert!(
        unprinted.len() as u64 <= rounds,
        "more committed-but-unprinted reports than kills: {unprinted:?}"
    );
    let mut want_files = Vec::new();
    for (&n, r) in &reports {
        assert_eq!(r.state, ReportState::Queued, "report {}", r.id);
        assert_attachments(r, &shape, n, &mut expected);
        want_files.extend(expected.attachments(&shape, n));
    }
    want_files.sort();
    // Opening swept the copies of killed submits: the attachment folder
    // holds exactly the committed reports' copies, each complete.
    assert_eq!(
        outbox_files(&dir),
        want_files,
        "the outbox's attachment copies differ from the committed attachments"
    );
    println!(
        "{} reports printed, {} in the outbox ({} committed but not printed), {} attachment copies \
         ({} files before the sweep)",
        printed.len(),
        reports.len(),
        unprinted.len(),
        want_files.len(),
        left_on_disk
    );

    // Everything is delivered, once, byte-identical.
    let result = common::drain(&client, 20);
    assert_eq!(
        (result.pending, result.dead),
        (0, 0),
        "after drain: {result:?}"
    );
    let delivered = assert_delivered_exactly_once(&client, &sb, &shape, &mut expected);
    assert_eq!(delivered, reports.len());
    assert_eq!(client.stats().expect("stats").ambiguous_resends, 0);
    support::figures(
        "kill_submit",
        &[
            ("kills", rounds.to_string()),
            ("acknowledged", printed.len().to_string()),
            ("accepted", reports.len().to_string()),
            ("committed_unacknowledged", unprinted.len().to_string()),
            ("delivered", delivered.to_string()),
            ("lost", "0".into()),
            ("duplicates", (sb.feedback().len() - delivered).to_string()),
            (
                "orphans_swept",
                left_on_disk.saturating_sub(want_files.len()).to_string(),
            ),
        ],
    );
}

// ---------------------------------------------------------------------------
// 2. SIGKILL during flush
// ---------------------------------------------------------------------------

#[test]
fn sigkill_during_flush_never_creates_twice() {
    flush_kill_storm(Dest::Centercode);
}

/// ABC searches its client-id field before a re-send: a kill never leaves
/// a report on the server twice.
#[test]
fn sigkill_during_flush_to_abc_never_creates_twice() {
    flush_kill_storm(Dest::Abc);
}

/// Apptentive cannot be asked: a report whose answer a kill cut off is
/// sent again, and counted as a possible duplicate.
#[test]
fn sigkill_during_flush_to_apptentive_counts_every_duplicate() {
    flush_kill_storm(Dest::Apptentive);
}

/// Child processes flushing to `dest` are killed mid-delivery, then the
/// parent drains: every report is delivered with each attachment whole,
/// and a report the server holds twice is counted in `ambiguous_resends`.
/// Centercode's row is `kill_flush`; the others' `kill_flush_<name>`.
fn flush_kill_storm(dest: Dest) {
    // More reports and kills in the full run (FIELDREPORT_FULL=1).
    let n_reports: u64 = support::scale(12, 40);
    let rounds: usize = support::scale(4, 30);
    let shape = match dest {
        Dest::Abc | Dest::AbcPresigned => ABC_FLUSH_SHAPE,
        Dest::Centercode | Dest::Apptentive => FLUSH_SHAPE,
    };
    let name = match dest {
        Dest::Centercode => "kill_flush".to_string(),
        _ => format!("kill_flush_{}", dest.name()),
    };
    let mut rng = Rng::seeded(SEED_VAR, &name);
    let tmp = common::tempdir();
    let dir = tmp.path().join("outbox");
    let sb = dest.sandbox_unlimited();
    let client = Client::open(dest_config(dest, &dir, &sb)).expect("open");
    for n in 0..n_reports {
        client.submit(shape.feedback(n)).expect("submit");
    }

    let mut killed_mid_flush = 0;
    for round in 0..rounds {
        // Every request of this round is slow, so the kill lands mid-delivery.
        sb.clear_faults();
        for _ in 0..rng.range(8, 12) {
            sb.inject(Fault::Delay(Duration::from_millis(rng.range(200, 400))));
        }
        let mut child = ChildProc::spawn(
            &[],
            "child_role_flusher",
            &dest_flusher_env(dest, &dir, &sb),
            tmp.path().join(format!("flush-{round}.stderr")),
        );
        child.expect_line("flushing");
        let delay = Duration::from_millis(rng.range(50, 1500));
        thread::sleep(delay);
        let (status, rest) = child.kill();
        assert!(
            rest.iter().all(|l| !l.starts_with("error")),
            "child {round} failed: {rest:?}; stderr:\n{}",
            child.stderr_text()
        );
        let finished = rest.iter().any(|l| l.starts_with("done"));
        if !finished {
            assert!(killed_by_sigkill(status), "child {round}: {status:?}");
            killed_mid_flush += 1;
        }
        let mut states: BTreeMap<String, usize> = BTreeMap::new();
        for r in client.reports(&ReportFilter::default()).expect("list") {
            *states.entry(format!("{:?}", r.state)).or_default() += 1;
        }
        println!(
            "round {round}: killed {delay:?} into the flush (finished first: {finished}); \
             states {states:?}; sandbox: {} created, {} uploads",
            sb.feedback().len(),
            sb.uploads().len()
        );
        if states.get("Delivered") == Some(&(n_reports as usize)) {
            break;
        }
    }
    assert!(
        killed_mid_flush >= 1,
        "{dest:?}: no flush was killed mid-delivery: the test exercised nothing"
    );

    sb.clear_faults();
    // Up to 15 s: long enough for a search that waits out twice the timeout.
    let result = common::drain(&client, 60);
    assert_eq!(
        (result.pending, result.dead),
        (0, 0),
        "{dest:?} after drain: {result:?}"
    );

    let mut expected = Expected::default();
    let reports = reports_by_counter(&client, &shape);
    assert_eq!(reports.len() as u64, n_reports);
    let created = dest_created_per_summary(dest, &sb);
    let uploads = uploads_per_key(&sb);
    let stats = client.stats().expect("stats");
    let mut duplicates = 0;
    let mut duplicate_uploads = 0;
    let mut keys = HashSet::new();
    for (&n, r) in &reports {
        assert_eq!(r.state, ReportState::Delivered, "report {} ({n})", r.id);
        let count = created.get(&r.summary).copied().unwrap_or(0);
        assert!(count >= 1, "report {} ({n}) was never created", r.id);
        duplicates += count - 1;
        let key = r.server_key.clone().expect("a delivered report has a key");
        let feedback = sb
            .feedback()
            .into_iter()
            .find(|f| f.key == key)
            .unwrap_or_else(|| panic!("report {} has key {key} the sandbox never made", r.id));
        assert_eq!(dest.summary_of(&feedback.body), r.summary, "{key}");
        assert!(
            r.attachments
                .iter()
                .all(|a| a.state == AttachmentState::Uploaded),
            "report {} ({n}) is delivered with attachments not uploaded: {:?}",
            r.id,
            r.attachments
        );
        // Each attachment arrived whole at least once, and nothing else
        // (no truncated or foreign file) arrived for this report.
        let want = expected.attachments(&shape, n);
        let got = uploads.get(&key).cloned().unwrap_or_default();
        for (i, w) in want.iter().enumerate() {
            assert!(
                got.contains(w),
                "report {} ({n}, {key}) attachment {i} {w:?} never arrived whole; got {got:?}",
                r.id
            );
        }
        for g in &got {
            assert!(
                want.contains(g),
                "report {} ({n}, {key}) received an upload that is none of its attachments: {g:?}",
                r.id
            );
        }
        duplicate_uploads += got.len() - want.len();
        keys.insert(key);
    }
    // Feedback created twice gets no uploads: only stored keys are used.
    // (ABC and Apptentive send the files with the report: a report posted
    // twice has them twice, one copy under a key no report stored.)
    let extra_copies: HashSet<String> = sb
        .feedback()
        .into_iter()
        .filter(|f| !keys.contains(&f.key))
        .map(|f| f.key)
        .collect();
    for u in sb.uploads() {
        assert!(
            keys.contains(&u.feedback_key)
                || (dest != Dest::Centercode && extra_copies.contains(&u.feedback_key)),
            "upload to {}, a key no report stored",
            u.feedback_key
        );
    }
    assert_eq!(
        created.values().sum::<usize>(),
        sb.feedback().len(),
        "created feedback without a summary"
    );
    assert!(
        created.keys().all(|s| shape.counter_of(s).is_some()),
        "unexpected feedback: {created:?}"
    );
    println!(
        "{dest:?}: {killed_mid_flush} flushes killed mid-delivery; {} feedback created for {n_reports} reports: \
         {duplicates} duplicates, {} ambiguous resends counted; {duplicate_uploads} attachments uploaded twice",
        sb.feedback().len(),
        stats.ambiguous_resends
    );
    assert!(
        duplicates as u64 <= stats.ambiguous_resends,
        "{dest:?}: {duplicates} duplicate feedback but only {} ambiguous resends counted: {created:?}",
        stats.ambiguous_resends
    );
    if dest == Dest::Abc {
        assert_eq!(duplicates, 0, "ABC is searched before a re-send");
    }
    let mut line: Vec<(&str, String)> = Vec::new();
    // Centercode's row keeps the keys it always had.
    if dest != Dest::Centercode {
        line.push(("destination", dest.name().to_string()));
    }
    if dest.looks_up() {
        // How often a cut-off answer was looked up instead of re-sent.
        let searches = sb
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/feedbacks/search"))
            .count();
        line.push(("searches", searches.to_string()));
    }
    line.extend([
        ("kills", killed_mid_flush.to_string()),
        ("accepted", n_reports.to_string()),
        ("delivered", reports.len().to_string()),
        ("lost", "0".into()),
        ("duplicates", duplicates.to_string()),
        ("ambiguous_resends", stats.ambiguous_resends.to_string()),
        ("duplicate_uploads", duplicate_uploads.to_string()),
    ]);
    support::figures(&name, &line);
}

// ---------------------------------------------------------------------------
// 3. Two clients on one outbox in one process
// ---------------------------------------------------------------------------

#[test]
fn two_clients_flushing_one_outbox_post_each_report_once() {
    const REPORTS: u64 = 30;
    let shape = SMALL_SHAPE;
    let mut rng = Rng::seeded(
        SEED_VAR,
        "two_clients_flushing_one_outbox_post_each_report_once",
    );
    let tmp = common::tempdir();
    let dir = tmp.path().join("outbox");
    let sb = common::sandbox_unlimited();
    let clients = [
        Arc::new(Client::open(fast_config(&dir, &sb)).expect("open a")),
        Arc::new(Client::open(fast_config(&dir, &sb)).expect("open b")),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));

    let flushers: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(c, client)| {
            let client = Arc::clone(client);
            let stop = Arc::clone(&stop);
            let errors = Arc::clone(&errors);
            let budget = Duration::from_millis(rng.range(100, 400));
            thread::spawn(move || {
                let mut flushes = 0;
                let mut receipts = 0;
                while !stop.load(Ordering::SeqCst) {
                    match client.flush(budget) {
                        Ok(r) => receipts += r.receipts.len(),
                        Err(e) => errors.lock().unwrap().push(format!("flush {c}: {e}")),
                    }
                    flushes += 1;
                    thread::sleep(Duration::from_millis(2));
                }
                (flushes, receipts)
            })
        })
        .collect();
    let submitters: Vec<_> = (0..4u64)
        .map(|t| {
            let clients = clients.clone();
            let errors = Arc::clone(&errors);
            let pause = Duration::from_millis(rng.range(20, 60));
            thread::spawn(move || {
                for n in (t..REPORTS).step_by(4) {
                    let client = &clients[(n % 2) as usize];
                    if let Err(e) = client.submit(shape.feedback(n)) {
                        errors.lock().unwrap().push(format!("submit {n}: {e}"));
                    }
                    thread::sleep(pause);
                }
            })
        })
        .collect();
    for s in submitters {
        s.join().expect("submitter");
    }
    stop.store(true, Ordering::SeqCst);
    for (c, f) in flushers.into_iter().enumerate() {
        let (flushes, receipts) = f.join().expect("flusher");
        println!("client {c}: {flushes} flushes, {receipts} receipts");
    }
    let errors = errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "errors while flushing: {errors:?}");

    let result = common::drain(&clients[0], 20);
    assert_eq!(
        (result.pending, result.dead),
        (0, 0),
        "after drain: {result:?}"
    );
    let mut expected = Expected::default();
    let delivered = assert_delivered_exactly_once(&clients[0], &sb, &shape, &mut expected);
    assert_eq!(delivered as u64, REPORTS);
    let created = created_per_summary(&sb);
    assert_eq!(created.len() as u64, REPORTS, "{created:?}");
    for (c, client) in clients.iter().enumerate() {
        let stats = client.stats().expect("stats");
        assert_eq!(
            (stats.pending, stats.dead, stats.delivered),
            (0, 0, REPORTS),
            "client {c}: {stats:?}"
        );
        assert_eq!(stats.ambiguous_resends, 0, "client {c}");
    }
    support::figures(
        "concurrency_two_clients",
        &[
            ("accepted", REPORTS.to_string()),
            ("delivered", delivered.to_string()),
            ("lost", "0".into()),
            (
                "duplicates",
                (sb.feedback().len() as u64 - REPORTS).to_string(),
            ),
        ],
    );
}

// ---------------------------------------------------------------------------
// 4. A second process is kept out of a flush
// ---------------------------------------------------------------------------

#[test]
fn second_process_flushing_same_outbox_is_excluded() {
    const REPORTS: u64 = 6;
    const DELAYS: usize = 12;
    let shape = SMALL_SHAPE;
    let tmp = common::tempdir();
    let dir = tmp.path().join("outbox");
    let sb = common::sandbox_unlimited();
    let client = Client::open(fast_config(&dir, &sb)).expect("open");
    for n in 1000..1000 + REPORTS {
        client.submit(shape.feedback(n)).expect("submit");
    }
    // The child's flush: 12 requests of 400 ms each at least.
    for _ in 0..DELAYS {
        sb.inject(Fault::Delay(Duration::from_millis(400)));
    }
    let mut child = ChildProc::spawn(
        &[],
        "child_role_flusher",
        &flusher_env(&dir, &sb),
        tmp.path().join("flush.stderr"),
    );
    child.expect_line("flushing");
    // Once the child's first request reached the sandbox, it holds the lock.
    let deadline = Instant::now() + CHILD_TIMEOUT;
    while sb.pending_faults() == DELAYS {
        assert!(
            Instant::now() < deadline,
            "the child never sent a request; stderr:\n{}",
            child.stderr_text()
        );
        thread::sleep(Duration::from_millis(10));
    }

    let r = client
        .flush(Duration::from_millis(500))
        .expect("flush in the parent");
    println!(
        "parent flush while the child flushes: {:?}; {} faults left",
        r.stopped,
        sb.pending_faults()
    );
    assert!(
        r.stopped
            .as_deref()
            .is_some_and(|s| s.contains("another client or process is flushing")),
        "the parent's flush should be excluded: {r:?}"
    );
    assert!(r.receipts.is_empty(), "the parent worked on reports: {r:?}");

    let status = child.wait();
    let lines = child.rest();
    assert!(
        status.success(),
        "child: {status:?}; stderr:\n{}",
        child.stderr_text()
    );
    assert_eq!(
        lines,
        vec![format!(
            "done pending=0 dead=0 receipts={REPORTS} stopped=None"
        )],
        "the child delivers everything"
    );
    let stats = client.stats().expect("stats");
    assert_eq!(
        (stats.pending, stats.dead, stats.delivered),
        (0, 0, REPORTS)
    );
    let mut expected = Expected::default();
    let delivered = assert_delivered_exactly_once(&client, &sb, &shape, &mut expected);
    assert_eq!(delivered as u64, REPORTS);
    // Nothing is left for the parent to send.
    let again = client.flush(Duration::from_secs(5)).expect("flush");
    assert!(again.receipts.is_empty(), "{again:?}");
    assert_eq!(sb.feedback().len() as u64, REPORTS);
}

// ---------------------------------------------------------------------------
// 5. SIGKILL during submit_many
// ---------------------------------------------------------------------------

/// Parses a batch submitter's `batch=<b> ids=<id>,<id>,...` line.
fn parse_batch_line(line: &str) -> Option<(u64, Vec<ReportId>)> {
    let (b, ids) = line.strip_prefix("batch=")?.split_once(" ids=")?;
    let ids = ids
        .split(',')
        .map(|id| id.parse().ok())
        .collect::<Option<Vec<ReportId>>>()?;
    Some((b.parse().ok()?, ids))
}

#[test]
fn sigkill_during_submit_many_keeps_batches_whole() {
    // More kills in the full run (FIELDREPORT_FULL=1).
    let rounds: u64 = support::scale(5, 40);
    let mut rng = Rng::seeded(SEED_VAR, "sigkill_during_submit_many_keeps_batches_whole");
    let seed = rng.seed;
    let tmp = common::tempdir();
    let dir = tmp.path().join("outbox");
    // Batch -> the ids a child printed for it, once `submit_many` returned.
    let mut printed: BTreeMap<u64, Vec<ReportId>> = BTreeMap::new();
    // Per round: the batches it printed (they are its first ones, in order).
    let mut printed_per_round: Vec<u64> = Vec::new();
    // Per round: the copies in files/ beyond the printed batches' after the
    // kill (of the batch it was killed in; swept by the next open).
    let mut left_per_round: Vec<usize> = Vec::new();

    // Where the children queue for, and where the reports go after the kills.
    let sb = common::sandbox_unlimited();
    for round in 0..rounds {
        let start = round * 10_000;
        let target = rng.range(1, 5);
        // Killed somewhere in the next batch (building it, copying its
        // attachments, committing) or just after it.
        let delay = Duration::from_micros(rng.range(0, 60_000));
        let lines = submit_then_kill(
            "child_role_batch_submitter",
            &submitter_env("batch", &dir, start, &sb),
            tmp.path().join(format!("batch-{round}.stderr")),
            target,
            delay,
            &format!("seed {seed}: child {round}"),
        );
        let mut count = 0;
        for line in &lines {
            let (b, ids) = parse_batch_line(line)
                .unwrap_or_else(|| panic!("seed {seed}: child {round} printed {line:?}"));
            assert_eq!(
                b,
                start + count,
                "seed {seed}: child {round} printed batches out of order"
            );
            assert_eq!(
                ids.len(),
                batch_len(b),
                "seed {seed}: batch {b} returned {ids:?}"
            );
            assert!(
                printed.insert(b, ids).is_none(),
                "seed {seed}: batch {b} printed twice"
            );
            count += 1;
        }
        printed_per_round.push(count);
        let on_disk = std::fs::read_dir(dir.join("files"))
            .map(|d| d.count())
            .unwrap_or(0);
        let acknowledged: usize = printed.keys().map(|&b| batch_copies(b)).sum();
        assert!(
            on_disk >= acknowledged,
            "seed {seed}: after kill {round}, {on_disk} copies in files/ for {acknowledged} \
             attachments of acknowledged batches"
        );
        left_per_round.push(on_disk - acknowledged);
        println!(
            "round {round}: killed {delay:?} after its batch line {target}, {count} batches \
             printed, {} copies left of the batch it was in",
            on_disk - acknowledged
        );
    }
    let mut all_printed_ids = HashSet::new();
    for ids in printed.values() {
        for id in ids {
            assert!(
                all_printed_ids.insert(*id),
                "seed {seed}: report id {id} returned twice: {printed:?}"
            );
        }
    }

    let client = Client::open(roomy(fast_config(&dir, &sb))).expect("open after the kills");

    // Every report in the outbox, by batch, in id order.
    let mut batches: BTreeMap<u64, Vec<(usize, ReportStatus)>> = BTreeMap::new();
    for r in client
        .reports(&ReportFilter::default())
        .expect("list reports")
    {
        let (b, i, len) = parse_batch_summary(&r.summary)
            .unwrap_or_else(|| panic!("seed {seed}: report {} has summary {:?}", r.id, r.summary));
        assert_eq!(len, batch_len(b), "seed {seed}: report {}", r.id);
        batches.entry(b).or_default().push((i, r));
    }
    // No batch is there in part: each has all its items, once each, in
    // order, with consecutive ids.
    let mut partial = Vec::new();
    for (&b, items) in batches.iter_mut() {
        items.sort_by_key(|(_, r)| r.id);
        let indices: Vec<usize> = items.iter().map(|(i, _)| *i).collect();
        let ids: Vec<ReportId> = items.iter().map(|(_, r)| r.id).collect();
        if indices != (0..batch_len(b)).collect::<Vec<_>>() {
            partial.push(format!("batch {b}: items {indices:?} (ids {ids:?})"));
            continue;
        }
        let first = ids[0];
        assert!(
            ids.iter()
                .enumerate()
                .all(|(i, &id)| id == first + i as ReportId),
            "seed {seed}: batch {b} has ids {ids:?}, not consecutive"
        );
    }
    assert!(
        partial.is_empty(),
        "seed {seed}: batches stored in part in the outbox: {partial:?}"
    );

    // Every printed batch is there whole, with the ids it was given; each
    // round committed at most one batch it did not print: the one it was
    // killed in, right after the last one it printed.
    for (b, ids) in &printed {
        let got: Option<Vec<ReportId>> = batches
            .get(b)
            .map(|items| items.iter().map(|(_, r)| r.id).collect());
        assert_eq!(
            got.as_ref(),
            Some(ids),
            "seed {seed}: printed batch {b} is lost or has other ids in the outbox"
        );
    }
    let mut unprinted = Vec::new();
    for &b in batches.keys().filter(|b| !printed.contains_key(b)) {
        let round = b / 10_000;
        assert!(
            round < rounds && b == round * 10_000 + printed_per_round[round as usize],
            "seed {seed}: batch {b} was committed but is not the one its child was killed in"
        );
        unprinted.push(b);
    }
    // Kills that landed inside a batch, at the latest between its commit
    // and its line: those that left copies of it behind (whole, partial or
    // committed) or committed it unprinted. Kills before its first copy are
    // not counted.
    let kills_mid_batch = (0..rounds)
        .filter(|&round| {
            left_per_round[round as usize] > 0 || unprinted.iter().any(|&b| b / 10_000 == round)
        })
        .count();
    let orphans_swept = left_per_round.iter().sum::<usize>()
        - unprinted.iter().map(|&b| batch_copies(b)).sum::<usize>();
    assert!(
        kills_mid_batch >= 1,
        "seed {seed}: no kill landed inside a batch: the test exercised nothing"
    );
    // One sequence without gaps: a killed batch took no numbers.
    let mut seqs: Vec<i64> = batches.values().flatten().map(|(_, r)| r.seq).collect();
    seqs.sort();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "seed {seed}: the outbox's sequence has gaps"
    );

    // Every report is queued with exactly its attachments; a crash report's
    // log copy unpacks to the log it was given.
    let copies: HashMap<String, PathBuf> = std::fs::read_dir(dir.join("files"))
        .expect("files/")
        .map(|e| {
            let path = e.expect("dir entry").path();
            let bytes = std::fs::read(&path).expect("read a copy");
            (common::sha256_hex(&bytes), path)
        })
        .collect();
    let mut want_files = Vec::new();
    let mut reports = 0;
    let mut crashes = 0;
    for (&b, items) in &batches {
        for (i, r) in items {
            let i = *i;
            reports += 1;
            assert_eq!(r.state, ReportState::Queued, "seed {seed}: report {}", r.id);
            let mut atts = r.attachments.as_slice();
            if batch_is_crash(b, i) {
                crashes += 1;
                assert_eq!(r.kind, ReportKind::Crash, "seed {seed}: report {}", r.id);
                let log = atts.first().unwrap_or_else(|| {
                    panic!("seed {seed}: crash report {} has no attachments", r.id)
                });
                assert_eq!(
                    (log.element_key.as_str(), log.file_name.clone()),
                    ("CrashLog", format!("crash-{b}-{i}.log.gz")),
                    "seed {seed}: report {}",
                    r.id
                );
                let path = copies.get(&log.sha256).unwrap_or_else(|| {
                    panic!("seed {seed}: report {}: no copy of its crash log", r.id)
                });
                let mut text = String::new();
                std::io::Read::read_to_string(
                    &mut flate2::read::GzDecoder::new(
                        std::fs::File::open(path).expect("open the log copy"),
                    ),
                    &mut text,
                )
                .expect("the log copy unpacks");
                assert!(
                    text == batch_crash_log(b, i),
                    "seed {seed}: report {}: the crash log copy differs from the log",
                    r.id
                );
                atts = &atts[1..];
            } else {
                assert_eq!(r.kind, ReportKind::Feedback, "seed {seed}: report {}", r.id);
            }
            let got: Vec<(String, u64, String)> = atts
                .iter()
                .map(|a| (a.file_name.clone(), a.size, a.sha256.clone()))
                .collect();
            assert_eq!(
                got,
                batch_expected(b, i),
                "seed {seed}: report {} (batch {b} item {i}): attachments differ from what was submitted",
                r.id
            );
            want_files.extend(r.attachments.iter().map(|a| (a.size, a.sha256.clone())));
        }
    }
    want_files.sort();
    // Opening swept the copies of killed batches: the attachment folder
    // holds exactly the committed reports' copies, each complete.
    assert_eq!(
        outbox_files(&dir),
        want_files,
        "seed {seed}: the outbox's attachment copies differ from the committed attachments"
    );
    println!(
        "{} batches printed, {} in the outbox ({unprinted:?} committed but not printed): \
         {reports} reports ({crashes} crash reports), {} attachment copies; {kills_mid_batch} \
         kills landed inside a batch, {orphans_swept} copies of killed batches swept",
        printed.len(),
        batches.len(),
        want_files.len(),
    );

    // Everything is delivered, once, byte-identical; no batch in part on
    // the server either.
    let result = common::drain(&client, 20);
    assert_eq!(
        (result.pending, result.dead),
        (0, 0),
        "seed {seed}: after drain: {result:?}"
    );
    let created = created_per_summary(&sb);
    let mut on_server: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for summary in created.keys() {
        let (b, i, _) = parse_batch_summary(summary)
            .unwrap_or_else(|| panic!("seed {seed}: the sandbox has feedback {summary:?}"));
        on_server.entry(b).or_default().push(i);
    }
    for (b, indices) in &mut on_server {
        indices.sort();
        assert_eq!(
            *indices,
            (0..batch_len(*b)).collect::<Vec<_>>(),
            "seed {seed}: batch {b} is on the server in part"
        );
    }
    assert!(
        on_server.keys().eq(batches.keys()),
        "seed {seed}: the server has other batches than the outbox"
    );
    // Each delivered once, with the attachments it was stored with (checked
    // above against what was submitted).
    let delivered_reports: Vec<_> = batches
        .iter()
        .flat_map(|(b, items)| items.iter().map(move |(i, r)| (*b, *i, r.id)))
        .map(|(b, i, id)| {
            let r = client.report(id).expect("report");
            let want = r
                .attachments
                .iter()
                .map(|a| (a.size, a.sha256.clone()))
                .collect();
            (format!("seed {seed}: batch {b} item {i}"), r, want)
        })
        .collect();
    let delivered = assert_each_delivered_once(&sb, &delivered_reports);
    assert_eq!(client.stats().expect("stats").ambiguous_resends, 0);
    // Delivered reports' copies are deleted (`close` waits for that).
    client.close();
    assert_eq!(
        outbox_files(&dir),
        Vec::new(),
        "seed {seed}: copies left after delivery"
    );
    support::figures(
        "kill_batch",
        &[
            ("kills", rounds.to_string()),
            ("batches_acknowledged", printed.len().to_string()),
            (
                "batches_committed_unacknowledged",
                unprinted.len().to_string(),
            ),
            ("batches_partial", partial.len().to_string()),
            ("accepted", reports.to_string()),
            ("delivered", delivered.to_string()),
            ("lost", "0".into()),
            ("duplicates", (sb.feedback().len() - delivered).to_string()),
            ("kills_mid_batch", kills_mid_batch.to_string()),
            ("orphans_swept", orphans_swept.to_string()),
        ],
    );
}
