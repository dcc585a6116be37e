//! Server-fault storm: many reports (with attachments) delivered through
//! many flush rounds while the sandbox answers 429 (with reset headers),
//! 500, 503, drops connections before and after acting, answers later than
//! the client's timeout, sends malformed or truncated JSON (on 201 and on
//! errors), a 201 without `fileElements`, and 404 on uploads.
//!
//! The storm is one function run for every destination (`common::Dest`):
//! Centercode (create, then one upload per attachment; with and without
//! its record lookup), ABC (one create carrying the images, its client-id
//! field searched before a re-send) and Apptentive (one record carrying
//! every file, which cannot be looked up). The faults that only Centercode's
//! answers can carry (a 201 without `fileElements`, 404 on an upload) are
//! Centercode's only.
//!
//! Checked at the end of every storm:
//! - **no loss**: every submitted report is `Delivered` (the server has it,
//!   with every attachment not rejected, byte-identical) or `Dead` with a
//!   reason; none is missing or stuck;
//! - **duplicates** on the server ≤ `stats().ambiguous_resends`;
//! - **bounded traffic**: per report, requests ≤ deliveries tried × (one
//!   create, one lookup if configured, one per attachment), and deliveries
//!   tried ≤ `policy.max_attempts`; in any one-second window of the
//!   sandbox's request times, at most `policy.max_requests_per_sec` requests;
//! - **a flush stops at the first network failure**: in every round whose
//!   flush met a retryable failure, no request followed it in that flush.
//!
//! Requests are attributed to reports exactly for uploads (the feedback key
//! is in the path) and by time for creates and lookups (the listener hears
//! an event that names the report after every delivery tried; the flush is
//! sequential, so each request falls before its report's event).
//!
//! The seed is printed; `FIELDREPORT_FAULT_SEED=<seed>` replays it (the
//! faults and reports are the same; scheduling may differ slightly).
//! `FIELDREPORT_FULL=1` runs the long version.

mod common;
mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::Dest;
use fieldreport::sandbox::{Fault, RequestRecord, Sandbox};
use fieldreport::{
    Attachment, AttachmentState, Client, CrashReport, Event, Feedback, Listener, ReportFilter,
    ReportId, ReportState, ReportStatus,
};
use serde_json::json;
use support::{figures, scale, wait_for, Rng};

/// The client's request timeout in these tests; `Slow` faults answer later.
const TIMEOUT: Duration = Duration::from_millis(300);
const MAX_ATTEMPTS: u32 = 12;
/// The client-side rate limit under test (the policy's default).
const PER_SEC: u32 = 10;

// ---------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Kind {
    /// No fault (a zero delay): lets a request through.
    Pass,
    RateLimitedReset,
    RateLimitedRetryAfter,
    Error500,
    Error503,
    Drop,
    ActThenDrop,
    Slow,
    MalformedError,
    MalformedRefusal,
    NotFound,
    CreatedMalformed,
    CreatedNoElements,
}

use Kind::*;

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Pass => "pass",
            RateLimitedReset => "429_reset",
            RateLimitedRetryAfter => "429_retry_after",
            Error500 => "500",
            Error503 => "503",
            Drop => "drop",
            ActThenDrop => "act_then_drop",
            Slow => "slow",
            MalformedError => "malformed_error",
            MalformedRefusal => "malformed_400",
            NotFound => "404",
            CreatedMalformed => "201_malformed",
            CreatedNoElements => "201_no_file_elements",
        }
    }

    /// Whatever request meets it fails in a way that is retried later, so
    /// the flush must stop there.
    fn stops(self) -> bool {
        matches!(
            self,
            RateLimitedReset
                | RateLimitedRetryAfter
                | Error500
                | Error503
                | Drop
                | ActThenDrop
                | Slow
                | MalformedError
        )
    }
}

/// Faults that mean the same on a create, an upload or a lookup.
const ANY_REQUEST: &[(Kind, u64)] = &[
    (RateLimitedReset, 3),
    (RateLimitedRetryAfter, 1),
    (Error500, 3),
    (Error503, 3),
    (Drop, 3),
    (ActThenDrop, 3),
    (Slow, 2),
    (MalformedError, 3),
    (MalformedRefusal, 1),
    (NotFound, 1),
];

const BROKEN_ERROR_BODIES: &[&str] = &[
    "{\"status\":50",
    "<html><body>Bad Gateway</body></html>",
    "",
    "null",
    "{\"description\":",
    "[1,2",
    "{\"status\":503,\"description\":17}",
    "\u{1}\u{2}garbage",
];

/// Centercode's: some of them look like a create answer with a piece
/// missing.
const BROKEN_CREATED_BODIES: &[&str] = &[
    "{\"id\":\"8203093f\",\"ke",
    "{",
    "",
    "{\"id\":\"x\"}",
    "not json",
    "{\"id\":\"\",\"key\":\"\"}",
    "[]",
    "{\"key\":\"BUG-9\"}",
];

/// A 201 that no destination can read a reference from (ABC wants a
/// numeric `id`, Apptentive a string `id`).
const UNREADABLE_CREATED_BODIES: &[&str] = &[
    "{\"id\":",
    "{",
    "",
    "not json",
    "[]",
    "null",
    "{\"key\":\"BUG-9\"}",
];

/// Queues the faults of `plan` at the sandbox, then `passes` harmless ones
/// (a request after a stop would take one); returns how many were queued.
fn queue_plan(
    sb: &Sandbox,
    plan: &[Kind],
    passes: usize,
    rng: &mut Rng,
    fabricated: &mut Vec<String>,
) -> usize {
    queue_plan_for(Dest::Centercode, sb, plan, passes, rng, fabricated)
}

/// `queue_plan`, with the 201 bodies of destination `dest`.
fn queue_plan_for(
    dest: Dest,
    sb: &Sandbox,
    plan: &[Kind],
    passes: usize,
    rng: &mut Rng,
    fabricated: &mut Vec<String>,
) -> usize {
    for &k in plan {
        sb.inject(make_fault(dest, k, rng, fabricated));
    }
    for _ in 0..passes {
        sb.inject(make_fault(dest, Pass, rng, fabricated));
    }
    plan.len() + passes
}

fn make_fault(dest: Dest, kind: Kind, rng: &mut Rng, fabricated: &mut Vec<String>) -> Fault {
    match kind {
        Pass => Fault::Delay(Duration::ZERO),
        RateLimitedReset => Fault::rate_limited_until(
            SystemTime::now() + Duration::from_millis(rng.range(150, 700)),
        ),
        RateLimitedRetryAfter => Fault::rate_limited(1),
        Error500 => Fault::status(500),
        Error503 => Fault::status(503),
        Drop => Fault::Drop,
        ActThenDrop => Fault::ActThenDrop,
        Slow => Fault::Delay(TIMEOUT + Duration::from_millis(rng.range(150, 450))),
        MalformedError => Fault::Body {
            status: *rng.pick(&[500, 502, 503, 504, 429]),
            body: rng.pick(BROKEN_ERROR_BODIES).to_string(),
        },
        MalformedRefusal => Fault::Body {
            status: 400,
            body: rng.pick(BROKEN_ERROR_BODIES).to_string(),
        },
        NotFound => Fault::status(404),
        CreatedMalformed => Fault::Body {
            status: 201,
            body: rng
                .pick(if dest == Dest::Centercode {
                    BROKEN_CREATED_BODIES
                } else {
                    UNREADABLE_CREATED_BODIES
                })
                .to_string(),
        },
        CreatedNoElements => {
            assert_eq!(dest, Dest::Centercode, "a Centercode answer");
            let key = format!("FAB-{:04}", fabricated.len() + 1);
            let body = json!({
                "id": format!("fab-{}", fabricated.len() + 1),
                "key": key,
                "url": format!("https://example.invalid/{key}"),
            })
            .to_string();
            fabricated.push(key);
            Fault::Body { status: 201, body }
        }
    }
}

// ---------------------------------------------------------------------------
// What the next request of a flush will be
// ---------------------------------------------------------------------------

#[derive(Debug, PartialEq, Eq)]
enum Next {
    Create,
    Upload,
    Unknown,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The first request the next flush will send, read from the outbox
/// database, when it is certain: a fault that only makes sense on a create
/// (a 201 body) or an upload is placed only there.
fn predict(db: &Path, lookup: bool) -> Next {
    let Ok(c) = rusqlite::Connection::open(db) else {
        return Next::Unknown;
    };
    let _ = c.busy_timeout(Duration::from_secs(10));
    let now = now_ms();
    let not_before: i64 = c
        .query_row("SELECT value FROM meta WHERE key = 'not_before'", [], |r| {
            r.get::<_, String>(0)
        })
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if not_before > now {
        return Next::Unknown;
    }
    let first = |at: i64| {
        c.query_row(
            "SELECT id, state, create_sent_at FROM reports
             WHERE state IN ('queued','created') AND next_attempt_at <= ?1 ORDER BY id LIMIT 1",
            [at],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                ))
            },
        )
        .ok()
    };
    // The same report comes first now and for a while: the flush about to
    // start sees it first too.
    let (Some(a), Some(b)) = (first(now), first(now + 1500)) else {
        return Next::Unknown;
    };
    if a.0 != b.0 {
        return Next::Unknown;
    }
    match a.1.as_str() {
        "queued" if a.2.is_some() && lookup => Next::Unknown,
        "queued" => Next::Create,
        "created" => {
            let pending: i64 = c
                .query_row(
                    "SELECT count(*) FROM attachments WHERE report_id = ?1 AND state = 'pending'",
                    [a.0],
                    |r| r.get(0),
                )
                .unwrap_or(0);
            if pending > 0 {
                Next::Upload
            } else {
                Next::Unknown
            }
        }
        _ => Next::Unknown,
    }
}

// ---------------------------------------------------------------------------
// The listener: when each delivery tried ended, and for which report
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Heard {
    Failed,
    Dead,
    Delivered,
    Rejected,
}

#[derive(Default)]
struct Ear(Mutex<Vec<(Instant, ReportId, Heard)>>);

impl Listener for Ear {
    fn on_event(&self, event: Event) {
        let (id, what) = match event {
            Event::Failed { id, .. } => (id, Heard::Failed),
            Event::Dead { id, .. } => (id, Heard::Dead),
            Event::Delivered { receipt } => (receipt.id, Heard::Delivered),
            Event::AttachmentRejected { id, .. } => (id, Heard::Rejected),
            _ => return,
        };
        self.0.lock().unwrap().push((Instant::now(), id, what));
    }
}

// ---------------------------------------------------------------------------
// Requests as the sandbox saw them
// ---------------------------------------------------------------------------

#[derive(Debug, PartialEq, Eq)]
enum Request {
    Create,
    Lookup,
    Upload { key: String },
}

fn classify(dest: Dest, r: &RequestRecord) -> Request {
    match dest {
        Dest::Centercode => {}
        Dest::Abc | Dest::AbcPresigned => {
            assert_eq!(
                r.method, "POST",
                "unexpected request {} {}",
                r.method, r.path
            );
            if r.path.ends_with("/feedbacks/search") {
                return Request::Lookup;
            }
            assert!(
                r.path.ends_with("/channels/1/feedbacks")
                    || r.path.ends_with("/channels/1/feedbacks-with-images"),
                "unexpected request {} {}",
                r.method,
                r.path
            );
            return Request::Create;
        }
        Dest::Apptentive => {
            assert!(
                r.method == "POST" && r.path == "/records",
                "unexpected request {} {}",
                r.method,
                r.path
            );
            return Request::Create;
        }
    }
    if let Some(at) = r.path.find("/fileElements/") {
        let before = &r.path[..at];
        let key = before
            .rsplit_once("/feedback/")
            .map(|(_, k)| k.to_string())
            .unwrap_or_else(|| panic!("upload path without a feedback key: {}", r.path));
        return Request::Upload { key };
    }
    if r.path.contains("/feedbackRecordLookups/") {
        return Request::Lookup;
    }
    assert!(
        r.method == "POST" && r.path.ends_with("/projects/WidgetPro/feedback/Mobile"),
        "unexpected request {} {}",
        r.method,
        r.path
    );
    Request::Create
}

/// Every request, its time from the first, status, path and fault.
fn timeline(requests: &[RequestRecord]) -> String {
    let mut sorted: Vec<&RequestRecord> = requests.iter().collect();
    sorted.sort_by_key(|r| r.at);
    let Some(first) = sorted.first().map(|r| r.at) else {
        return String::new();
    };
    sorted
        .iter()
        .map(|r| {
            format!(
                "{:>9.4}s {} {} {:?}\n",
                r.at.duration_since(first).as_secs_f64(),
                r.status,
                r.path,
                r.fault
            )
        })
        .collect()
}

/// The most requests in any one-second window.
fn peak_per_second(times: &[Instant]) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort();
    let mut peak = 0;
    let mut lo = 0;
    for hi in 0..sorted.len() {
        while sorted[hi].duration_since(sorted[lo]) >= Duration::from_secs(1) {
            lo += 1;
        }
        peak = peak.max(hi - lo + 1);
    }
    peak
}

// ---------------------------------------------------------------------------
// The storm
// ---------------------------------------------------------------------------

/// What was submitted for one report.
struct Submitted {
    summary: String,
    /// Feedback attachments as given: name, size, SHA-256. (A crash log's
    /// gzip copy is checked against its outbox record instead.)
    given: Vec<(String, u64, String)>,
}

fn submit_one(
    dest: Dest,
    client: &Client,
    rng: &mut Rng,
    variant: &str,
    n: u64,
) -> (ReportId, Submitted) {
    let summary = format!("storm {variant} {n}");
    let mut given = Vec::new();
    let mut attachments = Vec::new();
    let count = if n % 5 == 4 {
        rng.range(0, 1)
    } else {
        rng.range(0, 3)
    };
    for i in 0..count as usize {
        let size = if rng.chance(10) {
            rng.range(100_000, 300_000)
        } else {
            rng.range(1, 48 * 1024)
        } as usize;
        let mut bytes = support::bytes_for(n, i, size);
        // Screenshots are PNG (by name and first bytes), so that ABC, which
        // takes images only, takes them; logs are not.
        let (element, name) = if i % 2 == 0 {
            let magic = b"\x89PNG\r\n\x1a\n";
            let head = magic.len().min(bytes.len());
            bytes[..head].copy_from_slice(&magic[..head]);
            ("Screenshot", format!("att-{n}-{i}.png"))
        } else {
            ("Log", format!("att-{n}-{i}.bin"))
        };
        given.push((name.clone(), size as u64, common::sha256_hex(&bytes)));
        attachments.push(Attachment::from_bytes(element, name, bytes));
    }
    let id = if n % 5 == 4 {
        client
            .submit_crash(CrashReport {
                summary: Some(summary.clone()),
                attachments,
                ..CrashReport::from_text(format!(
                    "thread 'main' panicked at storm {n}\n{}",
                    "frame\n".repeat(200)
                ))
            })
            .expect("submit a crash")
    } else {
        let mut f = Feedback::new(summary.clone())
            .description(format!("report {n} of the storm"))
            // ABC refuses a field its channel does not have.
            .field(
                if dest == Dest::Abc {
                    "rating"
                } else {
                    "counter"
                },
                json!(n),
            );
        for a in attachments {
            f = f.attach(a);
        }
        client.submit(f).expect("submit feedback")
    };
    (id, Submitted { summary, given })
}

struct Storm {
    name: &'static str,
    dest: Dest,
    lookup: bool,
    reports: u64,
    rounds: u64,
}

/// The storms of destination `dest` (the match makes a new destination
/// name its storms): Centercode's with and without its record lookup (the
/// rows `fault_storm` and `fault_storm_lookup`), ABC's with its client-id
/// search, Apptentive's without any (it cannot be asked).
fn storms_of(dest: Dest) -> Vec<Storm> {
    let (reports, rounds) = (scale(24, 150), scale(40, 300));
    let one = |name, lookup| Storm {
        name,
        dest,
        lookup,
        reports,
        rounds,
    };
    match dest {
        Dest::Centercode => vec![one("fault_storm", false), one("fault_storm_lookup", true)],
        Dest::Abc => vec![one("fault_storm_abc", true)],
        // Presigned uploads add requests this storm does not classify; their
        // faults are tested in other_destinations.rs.
        Dest::AbcPresigned => Vec::new(),
        Dest::Apptentive => vec![one("fault_storm_apptentive", false)],
    }
}

fn storm(spec: Storm) {
    let dest = spec.dest;
    let mut rng = Rng::seeded("FIELDREPORT_FAULT_SEED", spec.name);
    // The client's own limit is what is under test; the sandbox's 429s
    // would only blur which faults were injected.
    let sb = dest.sandbox_unlimited();
    let tmp = common::tempdir();
    let dir = tmp.path().join("outbox");
    let mut cfg = dest.config(&dir, &sb, sb.api_key());
    cfg.policy.request_timeout = TIMEOUT;
    cfg.policy.retry_base = Duration::from_millis(20);
    cfg.policy.retry_max = Duration::from_millis(200);
    cfg.policy.max_attempts = MAX_ATTEMPTS;
    cfg.policy.max_requests_per_sec = PER_SEC;
    let per_sec = dest.requests_per_sec(PER_SEC);
    match dest {
        Dest::Centercode if spec.lookup => {
            cfg.server.client_id_field = Some("ClientId".into());
            cfg.server.lookup_key = Some("Lookup".into());
        }
        Dest::Centercode => {}
        _ => assert_eq!(spec.lookup, dest.looks_up(), "{}", spec.name),
    }
    let lookups = u64::from(spec.lookup);
    // Only Centercode sends attachments in requests of their own.
    let separate_uploads = dest == Dest::Centercode;
    let client = Client::open(cfg).expect("open");
    let ear = Arc::new(Ear::default());
    client.set_listener(Some(ear.clone()));
    let db = dir.join("outbox.sqlite");

    let mut submitted: BTreeMap<ReportId, Submitted> = BTreeMap::new();
    let mut fabricated: Vec<String> = Vec::new();
    let mut consumed_by_kind: BTreeMap<Kind, u64> = BTreeMap::new();
    let mut stop_checks = 0u64;
    let mut slow_consumed = 0usize;
    let mut next_n = 0u64;
    let started = Instant::now();
    // Kinds not met yet are preferred, so that a short run meets them all.
    let unmet = |consumed: &BTreeMap<Kind, u64>, kinds: &[Kind]| -> Vec<Kind> {
        kinds
            .iter()
            .filter(|k| !consumed.contains_key(k))
            .copied()
            .collect()
    };

    for round in 0..spec.rounds {
        // Reports keep arriving during the first four fifths of the storm.
        let due = (spec.reports * (round + 1))
            .div_ceil(spec.rounds * 4 / 5)
            .min(spec.reports);
        while next_n < due {
            let (id, s) = submit_one(dest, &client, &mut rng, spec.name, next_n);
            submitted.insert(id, s);
            next_n += 1;
        }
        let mut plan: Vec<Kind> = Vec::new();
        // A 201 without `fileElements` is a Centercode answer.
        let created_kinds: &[Kind] = if separate_uploads {
            &[CreatedMalformed, CreatedNoElements]
        } else {
            &[CreatedMalformed]
        };
        match predict(&db, spec.lookup) {
            Next::Create => {
                let fresh = unmet(&consumed_by_kind, created_kinds);
                if !fresh.is_empty() && rng.chance(70) {
                    plan.push(*rng.pick(&fresh));
                } else if rng.chance(30) {
                    plan.push(*rng.pick(created_kinds));
                }
            }
            Next::Upload => {
                if !consumed_by_kind.contains_key(&NotFound) || rng.chance(30) {
                    plan.push(NotFound);
                }
            }
            Next::Unknown => {}
        }
        for _ in 0..rng.weighted(&[(0u64, 1), (1, 3), (2, 2), (3, 1)]) {
            // One request a report (ABC, Apptentive) reaches fewer passes
            // in a round than Centercode's create and uploads.
            for _ in 0..rng.range(0, if separate_uploads { 4 } else { 1 }) {
                plan.push(Pass);
            }
            let all: Vec<Kind> = ANY_REQUEST.iter().map(|(k, _)| *k).collect();
            let fresh = unmet(&consumed_by_kind, &all);
            plan.push(if !fresh.is_empty() && rng.chance(50) {
                *rng.pick(&fresh)
            } else {
                rng.weighted(ANY_REQUEST)
            });
        }
        // Passes after the plan: any request after a stop would take one.
        let queued = queue_plan_for(dest, &sb, &plan, 300, &mut rng, &mut fabricated);
        let result = client.flush(Duration::from_secs(300)).expect("flush");
        let consumed = queued - sb.pending_faults();
        sb.clear_faults();
        assert!(
            consumed < queued,
            "round {round}: the flush took every queued fault"
        );
        assert_ne!(
            result.stopped.as_deref(),
            Some("the time budget is spent"),
            "round {round}"
        );
        for &k in plan.iter().take(consumed) {
            if k != Pass {
                *consumed_by_kind.entry(k).or_default() += 1;
            }
        }
        // A flush stops at the first failure that is retried.
        if let Some(p) = plan.iter().position(|k| k.stops()) {
            if p < consumed {
                assert_eq!(
                    consumed,
                    p + 1,
                    "round {round}: {} requests after a {:?} that must stop the flush (plan {plan:?}); {result:?}",
                    consumed - p - 1,
                    plan[p]
                );
                assert!(result.stopped.is_some(), "round {round}: {result:?}");
                stop_checks += 1;
            }
        }
        // Let answers held back by `Slow` faults finish: the server acts on
        // them late, and a lookup must not race one.
        slow_consumed += plan.iter().take(consumed).filter(|k| **k == Slow).count();
        wait_for(
            "delayed requests to be answered",
            Duration::from_secs(30),
            || {
                sb.requests()
                    .iter()
                    .filter(|r| {
                        r.fault
                            .as_deref()
                            .is_some_and(|f| f != "delay 0ms" && f.starts_with("delay "))
                    })
                    .count()
                    >= slow_consumed
            },
        );
        // Sometimes past the backoff, sometimes not.
        thread::sleep(Duration::from_millis(rng.range(0, 300)));
    }
    assert_eq!(next_n, spec.reports, "every report was submitted");

    // Calm: deliver what is left (waiting out backoff and server waits).
    sb.clear_faults();
    let deadline = Instant::now() + Duration::from_secs(scale(180, 900));
    loop {
        let r = client.flush(Duration::from_secs(300)).expect("flush");
        if r.pending == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reports still pending after the storm: {r:?}"
        );
        thread::sleep(Duration::from_millis(100));
    }
    let elapsed = started.elapsed();

    // ---- no loss ----
    let reports: HashMap<ReportId, ReportStatus> = client
        .reports(&ReportFilter::default())
        .expect("list")
        .into_iter()
        .map(|r| (r.id, r))
        .collect();
    let server_feedback = sb.feedback();
    let uploads = sb.uploads();
    let mut problems: Vec<String> = Vec::new();
    let mut delivered = 0u64;
    let mut delivered_fabricated = 0u64;
    let mut dead_by_reason: BTreeMap<&str, u64> = BTreeMap::new();
    let mut dead_on_server = 0u64;
    let mut rejected_by_reason: BTreeMap<&str, u64> = BTreeMap::new();
    let mut duplicate_uploads = 0u64;
    let mut attachments_total = 0u64;
    for (id, s) in &submitted {
        let Some(r) = reports.get(id) else {
            problems.push(format!("report {id} ({}) is missing", s.summary));
            continue;
        };
        attachments_total += r.attachments.len() as u64;
        if r.summary != s.summary {
            problems.push(format!("report {id}: summary {:?}", r.summary));
        }
        // What was given is what the outbox holds.
        let offset = r.attachments.len() - s.given.len();
        for ((name, size, sha), a) in s.given.iter().zip(&r.attachments[offset..]) {
            if (&a.file_name, a.size, &a.sha256) != (name, *size, sha) {
                problems.push(format!("report {id}: attachment {name} recorded as {a:?}"));
            }
        }
        for a in &r.attachments {
            if a.state == AttachmentState::Rejected {
                let reason = a.reason.as_deref().unwrap_or("");
                let class = if reason.is_empty() {
                    problems.push(format!(
                        "report {id}: {} rejected without a reason",
                        a.file_name
                    ));
                    "none"
                } else if reason.contains("no file elements") {
                    "no_file_elements"
                } else if reason.contains("(404)") {
                    "404"
                } else if reason.contains("(400)") {
                    "400"
                } else if reason.contains("ABC accepts image files only") {
                    "abc_images_only"
                } else {
                    "other"
                };
                *rejected_by_reason.entry(class).or_default() += 1;
            }
        }
        let on_server: Vec<_> = server_feedback
            .iter()
            .filter(|f| dest.summary_of(&f.body) == s.summary)
            .collect();
        match r.state {
            ReportState::Delivered => {
                delivered += 1;
                let key = r.server_key.clone().unwrap_or_default();
                if fabricated.contains(&key) {
                    // The sandbox answered 201 without acting (a `Body`
                    // fault): nothing to find there; the attachments had
                    // no element to go to.
                    delivered_fabricated += 1;
                    if r.attachments
                        .iter()
                        .any(|a| a.state != AttachmentState::Rejected)
                    {
                        problems.push(format!("report {id}: attachments of {key} not rejected"));
                    }
                    continue;
                }
                let Some(stored) = on_server.iter().find(|f| f.key == key) else {
                    problems.push(format!(
                        "report {id} is delivered as {key:?}, which the server does not have"
                    ));
                    continue;
                };
                let mut got: Vec<(u64, String)> = uploads
                    .iter()
                    .filter(|u| u.feedback_key == key)
                    .map(|u| (u.size, u.sha256_hex.clone()))
                    .collect();
                for (i, a) in r.attachments.iter().enumerate() {
                    match a.state {
                        // ABC takes a crash log as text in its field (head
                        // and tail when long), not as a file.
                        AttachmentState::Uploaded if dest == Dest::Abc && i < offset => {
                            let text = stored.body["crash_log"].as_str().unwrap_or("");
                            if !text.contains("panicked at storm") {
                                problems.push(format!(
                                    "report {id} ({key}): the crash log field holds {text:?}"
                                ));
                            }
                        }
                        AttachmentState::Uploaded => {
                            match got.iter().position(|g| *g == (a.size, a.sha256.clone())) {
                                Some(i) => {
                                    got.swap_remove(i);
                                }
                                None => problems.push(format!(
                                    "report {id} ({key}): {} is uploaded but the server has no such file",
                                    a.file_name
                                )),
                            }
                        }
                        AttachmentState::Rejected => {}
                        AttachmentState::Pending => problems.push(format!(
                            "report {id} is delivered with {} pending",
                            a.file_name
                        )),
                    }
                }
                // What is left arrived more than once (a lost upload answer
                // sent again) or belongs to a rejected attachment; never a
                // stranger's file.
                for g in &got {
                    if !r
                        .attachments
                        .iter()
                        .any(|a| (a.size, &a.sha256) == (g.0, &g.1))
                    {
                        problems.push(format!("report {id} ({key}): the server got a file that is none of its attachments"));
                    }
                }
                duplicate_uploads += got.len() as u64;
            }
            ReportState::Dead => {
                let message = r
                    .last_error
                    .as_ref()
                    .map(|e| e.message.clone())
                    .unwrap_or_default();
                let class = if message.is_empty() {
                    problems.push(format!("report {id} is dead without a reason"));
                    "none"
                } else if message.contains("gave up after") {
                    "max_attempts"
                } else if message.contains("not sent again") {
                    "unreadable_201"
                } else if r
                    .last_error
                    .as_ref()
                    .and_then(|e| e.status)
                    .is_some_and(|s| (400..500).contains(&s))
                {
                    "refused_4xx"
                } else {
                    "other"
                };
                *dead_by_reason.entry(class).or_default() += 1;
                if !on_server.is_empty() {
                    dead_on_server += 1;
                    // Dead, yet the server has it: the reason must say it may.
                    if !message.contains("the server may have the feedback")
                        && !message.contains("the server accepted the feedback")
                    {
                        problems.push(format!(
                            "report {id} is dead and on the server, and its reason does not say so: {message}"
                        ));
                    }
                }
            }
            other => problems.push(format!("report {id} ended {other:?}")),
        }
    }
    // Nothing on the server that was never submitted; uploads only to
    // keys that reports hold (or, where the files travel with the report,
    // to a copy of a report the server holds twice: counted below).
    for f in &server_feedback {
        if !submitted
            .values()
            .any(|s| dest.summary_of(&f.body) == s.summary)
        {
            problems.push(format!(
                "the server has feedback nobody submitted: {}",
                f.body
            ));
        }
    }
    let keys: HashMap<String, ReportId> = reports
        .values()
        .filter_map(|r| r.server_key.clone().map(|k| (k, r.id)))
        .collect();
    for u in &uploads {
        if !keys.contains_key(&u.feedback_key)
            && (separate_uploads || !server_feedback.iter().any(|f| f.key == u.feedback_key))
        {
            problems.push(format!(
                "an upload to {}, a key no report holds",
                u.feedback_key
            ));
        }
    }
    let lost = problems.len();
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );

    // ---- duplicates ----
    let mut per_summary: HashMap<String, u64> = HashMap::new();
    for f in &server_feedback {
        *per_summary.entry(dest.summary_of(&f.body)).or_default() += 1;
    }
    let duplicates: u64 = per_summary.values().map(|c| c - 1).sum();
    let stats = client.stats().expect("stats");
    println!(
        "{}: {duplicates} duplicate feedback on the server, {} ambiguous resends counted",
        spec.name, stats.ambiguous_resends
    );
    assert!(
        duplicates <= stats.ambiguous_resends,
        "{duplicates} duplicates but only {} ambiguous resends counted",
        stats.ambiguous_resends
    );
    // ABC is searched before a re-send: a duplicate only where the search
    // itself was refused (a 4xx other than 429 and 403, which are retried
    // and pause), which sends the report again, counted.
    let refused_searches = sb
        .requests()
        .iter()
        .filter(|r| {
            r.path.ends_with("/feedbacks/search")
                && (400..500).contains(&r.status)
                && r.status != 429
                && r.status != 403
        })
        .count() as u64;
    if dest == Dest::Abc {
        assert!(
            duplicates <= refused_searches,
            "ABC is searched before a re-send: {duplicates} duplicates, \
             {refused_searches} searches refused"
        );
    }

    // ---- bounded traffic ----
    let requests = sb.requests();
    let events = ear.0.lock().unwrap().clone();
    let mut per_report: HashMap<ReportId, u64> = HashMap::new();
    for r in &requests {
        let id = match classify(dest, r) {
            Request::Upload { key } => *keys
                .get(&key)
                .unwrap_or_else(|| panic!("upload to {key}, which no report holds")),
            Request::Create | Request::Lookup => {
                let i = events.partition_point(|e| e.0 < r.at);
                events
                    .get(i)
                    .unwrap_or_else(|| panic!("a request with no outcome heard after it: {r:?}"))
                    .1
            }
        };
        *per_report.entry(id).or_default() += 1;
    }
    let mut tries: HashMap<ReportId, u64> = HashMap::new();
    for (_, id, what) in &events {
        if *what != Heard::Rejected {
            *tries.entry(*id).or_default() += 1;
        }
    }
    let mut max_requests = 0u64;
    let mut max_bound = 0u64;
    for (id, r) in &reports {
        let sent = per_report.get(id).copied().unwrap_or(0);
        let tried = tries.get(id).copied().unwrap_or(0);
        let per_try = 1
            + lookups
            + if separate_uploads {
                r.attachments.len() as u64
            } else {
                0
            };
        let bound = u64::from(MAX_ATTEMPTS) * per_try;
        assert!(
            tried <= u64::from(MAX_ATTEMPTS),
            "report {id}: delivered or tried {tried} times, more than max_attempts {MAX_ATTEMPTS}"
        );
        assert!(
            sent <= tried * per_try,
            "report {id}: {sent} requests in {tried} tries of at most {per_try} requests each"
        );
        assert!(
            sent <= bound,
            "report {id}: {sent} requests, over the policy's bound {bound}"
        );
        if sent > max_requests {
            max_requests = sent;
            max_bound = bound;
        }
    }
    let times: Vec<Instant> = requests.iter().map(|r| r.at).collect();
    let peak = peak_per_second(&times);
    assert!(
        peak <= per_sec as usize,
        "{peak} requests reached the server within one second (limit {per_sec}):\n{}",
        timeline(&requests)
    );

    let faults: u64 = consumed_by_kind.values().sum();
    let mut line: Vec<(&str, String)> = Vec::new();
    // Centercode's rows keep the keys they always had.
    if dest != Dest::Centercode {
        line.push(("destination", dest.name().to_string()));
    }
    if dest == Dest::Abc {
        line.push(("refused_searches", refused_searches.to_string()));
    }
    line.extend([
        ("seed", rng.seed.to_string()),
        ("lookup", spec.lookup.to_string()),
        ("rounds", spec.rounds.to_string()),
        ("accepted", submitted.len().to_string()),
        ("attachments", attachments_total.to_string()),
        ("delivered", delivered.to_string()),
        (
            "delivered_on_fabricated_201",
            delivered_fabricated.to_string(),
        ),
        ("dead", dead_by_reason.values().sum::<u64>().to_string()),
        (
            "dead_reasons",
            dead_by_reason
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("dead_but_on_server", dead_on_server.to_string()),
        ("lost", lost.to_string()),
        ("duplicates", duplicates.to_string()),
        ("ambiguous_resends", stats.ambiguous_resends.to_string()),
        ("duplicate_uploads", duplicate_uploads.to_string()),
        (
            "rejected_attachments",
            rejected_by_reason
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("faults", faults.to_string()),
        ("requests", requests.len().to_string()),
        ("max_requests_per_report", max_requests.to_string()),
        ("bound_for_that_report", max_bound.to_string()),
        ("peak_requests_per_sec", peak.to_string()),
        ("rate_limit", per_sec.to_string()),
        ("stop_checks", stop_checks.to_string()),
        ("secs", elapsed.as_secs().to_string()),
    ]);
    let kinds: Vec<(String, String)> = consumed_by_kind
        .iter()
        .map(|(k, v)| (format!("fault_{}", k.name()), v.to_string()))
        .collect();
    for (k, v) in &kinds {
        line.push((k.as_str(), v.clone()));
    }
    figures(spec.name, &line);
}

/// Runs the storms of `dest` whose lookup setting is `lookup`.
fn storms(dest: Dest, lookup: bool) {
    let mut ran = 0;
    for spec in storms_of(dest).into_iter().filter(|s| s.lookup == lookup) {
        storm(spec);
        ran += 1;
    }
    assert!(ran > 0, "{dest:?} has no storm with lookup {lookup}");
}

// One test per storm, so that the storms run side by side.

#[test]
fn storm_without_lookup_loses_nothing_and_counts_every_duplicate() {
    storms(Dest::Centercode, false);
}

#[test]
fn storm_with_lookup_loses_nothing_and_posts_nothing_twice() {
    storms(Dest::Centercode, true);
}

#[test]
fn abc_storm_loses_nothing_and_posts_nothing_twice() {
    storms(Dest::Abc, true);
}

#[test]
fn apptentive_storm_loses_nothing_and_counts_every_duplicate() {
    storms(Dest::Apptentive, false);
}

// ---------------------------------------------------------------------------
// One known fault, one flush
// ---------------------------------------------------------------------------

/// For each fault that is retried, on a create and on an upload: the flush
/// sends exactly the requests before it and the one that met it, and stops.
#[test]
fn a_flush_stops_at_the_first_network_failure() {
    let mut rng = Rng::seeded(
        "FIELDREPORT_FAULT_SEED",
        "a_flush_stops_at_the_first_network_failure",
    );
    let mut checked = 0;
    let mut fabricated = Vec::new();
    for kind in [
        RateLimitedReset,
        RateLimitedRetryAfter,
        Error500,
        Error503,
        Drop,
        ActThenDrop,
        Slow,
        MalformedError,
    ] {
        for on_upload in [false, true] {
            let sb = common::sandbox_unlimited();
            let tmp = common::tempdir();
            let mut cfg = common::config(tmp.path(), &sb);
            cfg.policy.request_timeout = TIMEOUT;
            cfg.policy.max_requests_per_sec = 0;
            let client = Client::open(cfg).expect("open");
            // Create, create, then the fault on the third create; or
            // create, then the fault on the first upload.
            let plan: Vec<Kind> = if on_upload {
                client
                    .submit(
                        Feedback::new("two files")
                            .attach(Attachment::from_bytes("Screenshot", "a.png", vec![1; 5000]))
                            .attach(Attachment::from_bytes("Log", "b.log", vec![2; 5000])),
                    )
                    .expect("submit");
                vec![Pass, kind]
            } else {
                vec![Pass, Pass, kind]
            };
            // Four reports in all, so that one is always left untouched.
            for i in 0..(4 - usize::from(on_upload)) {
                client
                    .submit(Feedback::new(format!("plain {i}")))
                    .expect("submit");
            }
            let queued = queue_plan(&sb, &plan, 20, &mut rng, &mut fabricated);
            let r = client.flush(Duration::from_secs(60)).expect("flush");
            let consumed = queued - sb.pending_faults();
            let what = format!(
                "{kind:?} on {}",
                if on_upload { "an upload" } else { "a create" }
            );
            assert_eq!(
                consumed,
                plan.len(),
                "{what}: requests sent in the flush; {r:?}"
            );
            // The sandbox's own count agrees (a slow answer is recorded late).
            wait_for(
                "the sandbox to record every request",
                Duration::from_secs(10),
                || sb.requests().len() >= plan.len(),
            );
            assert_eq!(
                sb.requests().len(),
                plan.len(),
                "{what}: {:?}",
                sb.requests()
            );
            assert!(r.stopped.is_some(), "{what}: {r:?}");
            let last = r.receipts.last().expect("a receipt");
            assert!(last.error.is_some(), "{what}: {r:?}");
            let (receipts, delivered) = if on_upload { (1, 0) } else { (3, 2) };
            assert_eq!(r.receipts.len(), receipts, "{what}: {r:?}");
            assert_eq!(r.pending, 4 - delivered, "{what}: {r:?}");
            checked += 1;
        }
    }
    println!("{checked} single flushes stopped at their one fault");
}

/// A `Retry-After` date far in the future (a broken clock or header) holds
/// delivery back at most a day, not until that date.
#[test]
fn a_retry_after_date_far_ahead_is_capped() {
    for status in [429, 503] {
        let sb = common::sandbox_unlimited();
        let tmp = common::tempdir();
        let client = common::open(tmp.path(), &sb);
        let id = client.submit(Feedback::new("patient")).expect("submit");
        sb.inject(Fault::Status {
            status,
            retry_after: Some("Fri, 31 Dec 9999 23:59:59 GMT".into()),
            rate_limit_reset: None,
        });
        let r = client.flush(Duration::from_secs(10)).expect("flush");
        assert!(r.stopped.is_some(), "{r:?}");
        let day = SystemTime::now() + Duration::from_secs(24 * 3600 + 60);
        let next = client
            .report(id)
            .expect("report")
            .next_attempt_at
            .expect("next attempt");
        assert!(
            next <= day,
            "{status}: next attempt {next:?} is more than a day away"
        );
        let due = client.stats().expect("stats").next_attempt_at.expect("due");
        assert!(due <= day, "{status}: the outbox waits until {due:?}");
    }
}
