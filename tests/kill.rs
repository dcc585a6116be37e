//! Process-kill and concurrency tests: a submit or a flush killed with
//! SIGKILL at a random moment loses nothing that was acknowledged and never
//! creates a report twice outside the one documented ambiguous window; two
//! flushers on one outbox (two clients in one process, or two processes)
//! exclude each other.
//!
//! The child processes are this test binary itself, re-executed with
//! `--exact <child_role_...> --nocapture --test-threads=1` and
//! `FIELDREPORT_KILL_CHILD=<role>` in the environment. The `child_role_*`
//! "tests" below are those roles: without that variable they return at once,
//! so in a normal run they pass trivially and test nothing.
//!
//! The parent's random choices (kill moments, delays) come from a seed that
//! is printed; set `FIELDREPORT_KILL_SEED` to reuse one (the kill moments
//! still depend on scheduling, so a replay is close, not exact).
#![cfg(unix)]

mod common;
mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fieldreport::sandbox::{Fault, Sandbox};
use fieldreport::{
    Attachment, AttachmentState, Client, Config, Feedback, ReportFilter, ReportId, ReportState,
    ReportStatus, ServerConfig,
};
use serde_json::json;

/// Which role a re-executed test binary plays.
const ROLE_VAR: &str = "FIELDREPORT_KILL_CHILD";
/// The outbox directory a child opens.
const DIR_VAR: &str = "FIELDREPORT_KILL_DIR";
/// The sandbox base URL a flushing child delivers to.
const URL_VAR: &str = "FIELDREPORT_KILL_URL";
/// The sandbox API key a flushing child uses.
const KEY_VAR: &str = "FIELDREPORT_KILL_KEY";
/// The first counter a submitting child uses.
const START_VAR: &str = "FIELDREPORT_KILL_START";
/// Prefix of every line a child prints for the parent (libtest may print
/// `test child_role_... ... ` in front of it on the same line).
const MARK: &str = "KILLTEST ";
/// Generous bound on any wait for a child; never reached when things work.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Deterministic content and randomness
// ---------------------------------------------------------------------------

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// The SplitMix64 finalizer: a good 64-bit mix.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The parent's source of random choices.
struct Rng(u64);

impl Rng {
    fn seeded(test: &str) -> Rng {
        let seed = std::env::var("FIELDREPORT_KILL_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0);
                mix(nanos ^ (u64::from(std::process::id()) << 32))
            });
        println!("{test}: seed {seed} (FIELDREPORT_KILL_SEED={seed} reuses it)");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// `size` bytes that are a pure function of `(n, i)`: attachment `i` of the
/// report with counter `n`.
fn bytes_for(n: u64, i: usize, size: usize) -> Vec<u8> {
    let mut state = mix(n.wrapping_mul(0x1_0000).wrapping_add(i as u64 + 1));
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        state = state.wrapping_add(GOLDEN);
        out.extend_from_slice(&mix(state).to_le_bytes());
    }
    out.truncate(size);
    out
}

/// The shape of the reports one test submits: how many attachments report
/// `n` has and how large each is, both functions of `n` alone, so that the
/// parent can recompute what a child submitted.
#[derive(Clone, Copy)]
struct Shape {
    summary_prefix: &'static str,
    count: fn(u64) -> usize,
    size: fn(u64, usize) -> usize,
}

impl Shape {
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
            .field("counter", json!(n));
        for i in 0..(self.count)(n) {
            // Both elements accept several files.
            let element = if i % 2 == 0 { "Screenshot" } else { "Log" };
            f = f.attach(Attachment::from_bytes(
                element,
                format!("att-{n}-{i}.bin"),
                bytes_for(n, i, (self.size)(n, i)),
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
};

/// Small reports with one attachment up to 32 KiB.
const SMALL_SHAPE: Shape = Shape {
    summary_prefix: "concurrent test",
    count: |_| 1,
    size: |n, _| 1 + mix(n ^ 0x5a11) as usize % 32_768,
};

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
                        let b = bytes_for(n, i, (shape.size)(n, i));
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
            format!("att-{n}-{i}.bin"),
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
    let mut c = common::config(dir, sb);
    c.policy.max_requests_per_sec = 0;
    c
}

/// The child's config: the same policy as `fast_config`, for a sandbox known
/// only by URL and key.
fn child_config(dir: &Path, base_url: &str, api_key: &str) -> Config {
    let mut c = Config::new(
        dir,
        ServerConfig::with_base_url(base_url, "WidgetPro", "Mobile", api_key),
    );
    c.policy.retry_base = Duration::from_millis(20);
    c.policy.retry_max = Duration::from_millis(200);
    c.policy.request_timeout = Duration::from_secs(5);
    c.policy.connect_timeout = Duration::from_secs(2);
    c.policy.max_requests_per_sec = 0;
    c.app.name = Some("tests".into());
    c
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

/// Prints one line for the parent and flushes it out of the process at once.
fn tell_parent(line: &str) {
    let mut out = std::io::stdout().lock();
    // The leading newline ends libtest's "test name ... " line.
    writeln!(out, "\n{MARK}{line}").expect("stdout");
    out.flush().expect("stdout flush");
}

// ---------------------------------------------------------------------------
// Child roles (trivially passing unless re-executed by a parent test)
// ---------------------------------------------------------------------------

/// Child role of `sigkill_during_submit_loses_nothing_printed`: submits
/// reports with counters from `FIELDREPORT_KILL_START` on, printing each id
/// once `submit` has returned, until killed. Without
/// `FIELDREPORT_KILL_CHILD=submit` it returns at once (passes trivially).
#[test]
fn child_role_submitter() {
    if std::env::var(ROLE_VAR).as_deref() != Ok("submit") {
        return;
    }
    let dir = PathBuf::from(env(DIR_VAR));
    let start: u64 = env(START_VAR).parse().expect("start counter");
    // Submit makes no network call: the server is never contacted.
    let client = Client::open(child_config(
        &dir,
        "http://127.0.0.1:9/api/v1",
        "offline-key",
    ))
    .expect("child opens the outbox");
    tell_parent("ready");
    let give_up = Instant::now() + CHILD_TIMEOUT;
    // Bounded, so that a child whose parent died does not run forever.
    for n in start..start + 500 {
        if Instant::now() > give_up {
            break;
        }
        match client.submit(SUBMIT_SHAPE.feedback(n)) {
            Ok(id) => tell_parent(&format!("id={id} n={n}")),
            Err(e) => {
                tell_parent(&format!("error n={n} {e}"));
                return;
            }
        }
    }
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

/// A re-executed copy of this binary playing one role. Dropping it kills
/// and reaps the child if it is still running.
struct ChildProc {
    child: Child,
    lines: mpsc::Receiver<String>,
    reader: Option<thread::JoinHandle<()>>,
    stderr: PathBuf,
}

impl ChildProc {
    fn spawn(role_test: &str, envs: &[(&str, String)], stderr: PathBuf) -> ChildProc {
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = Command::new(exe);
        cmd.args(["--exact", role_test, "--nocapture", "--test-threads=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr).expect("stderr file"));
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn child");
        let out = child.stdout.take().expect("child stdout");
        let (tx, rx) = mpsc::channel();
        let reader = thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find(MARK) {
                    if tx.send(line[at + MARK.len()..].to_string()).is_err() {
                        break;
                    }
                }
            }
        });
        ChildProc {
            child,
            lines: rx,
            reader: Some(reader),
            stderr,
        }
    }

    fn stderr_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(&self.stderr) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// The next line from the child, or `None` once its stdout is closed.
    fn next_line(&mut self) -> Option<String> {
        match self.lines.recv_timeout(CHILD_TIMEOUT) {
            Ok(line) => Some(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                "child printed nothing for {CHILD_TIMEOUT:?}; its stderr:\n{}",
                self.stderr_text()
            ),
        }
    }

    /// Waits for a line equal to `want`; panics on anything else first.
    fn expect_line(&mut self, want: &str) {
        match self.next_line() {
            Some(line) if line == want => {}
            other => panic!(
                "expected {want:?} from the child, got {other:?}; its stderr:\n{}",
                self.stderr_text()
            ),
        }
    }

    /// Reaps the child, then returns every line it printed not read yet.
    fn finish(&mut self, status: ExitStatus) -> (ExitStatus, Vec<String>) {
        if let Some(r) = self.reader.take() {
            r.join().expect("reader thread");
        }
        (status, self.lines.try_iter().collect())
    }

    /// SIGKILLs the child (by its pid), reaps it, and returns its exit status
    /// and the lines it printed before dying that were not read yet.
    fn kill(&mut self) -> (ExitStatus, Vec<String>) {
        let _ = self.child.kill();
        let status = self.child.wait().expect("wait for the killed child");
        self.finish(status)
    }

    /// Waits for the child to exit on its own.
    fn wait(&mut self) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + CHILD_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return self.finish(status);
            }
            if Instant::now() > deadline {
                let _ = self.kill();
                panic!(
                    "child did not finish within {CHILD_TIMEOUT:?}; its stderr:\n{}",
                    self.stderr_text()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn was_sigkilled(status: ExitStatus) -> bool {
    status.signal() == Some(9)
}

fn flusher_env(dir: &Path, sb: &Sandbox) -> Vec<(&'static str, String)> {
    vec![
        (ROLE_VAR, "flush".to_string()),
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
    let mut counts = BTreeMap::new();
    for f in sb.feedback() {
        let summary = f.body["summary"]
            .as_str()
            .unwrap_or_else(|| panic!("created feedback {} has no summary: {}", f.key, f.body))
            .to_string();
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
    let reports = reports_by_counter(client, shape);
    let created = created_per_summary(sb);
    let uploads = uploads_per_key(sb);
    let mut total_attachments = 0;
    for (&n, r) in &reports {
        assert_eq!(r.state, ReportState::Delivered, "report {} ({n})", r.id);
        assert_eq!(
            created.get(&r.summary),
            Some(&1),
            "report {} ({n}) must be created exactly once",
            r.id
        );
        assert!(
            r.attachments
                .iter()
                .all(|a| a.state == AttachmentState::Uploaded),
            "report {} ({n}) has attachments not uploaded: {:?}",
            r.id,
            r.attachments
        );
        let key = r
            .server_key
            .as_deref()
            .expect("a delivered report has a key");
        let mut want = expected.attachments(shape, n);
        want.sort();
        total_attachments += want.len();
        assert_eq!(
            uploads.get(key).cloned().unwrap_or_default(),
            want,
            "uploads of report {} ({n}, {key}) must be its attachments, once each",
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
    let mut rng = Rng::seeded("sigkill_during_submit_loses_nothing_printed");
    let tmp = common::tempdir();
    let dir = tmp.path().join("outbox");
    // Report id -> counter, for every id a child printed.
    let mut printed: BTreeMap<ReportId, u64> = BTreeMap::new();

    for round in 0..rounds {
        let mut child = ChildProc::spawn(
            "child_role_submitter",
            &[
                (ROLE_VAR, "submit".to_string()),
                (DIR_VAR, dir.display().to_string()),
                (START_VAR, (round * 10_000).to_string()),
            ],
            tmp.path().join(format!("submit-{round}.stderr")),
        );
        child.expect_line("ready");
        let target = rng.range(3, 15);
        let delay = Duration::from_micros(rng.range(0, 40_000));
        let mut lines = Vec::new();
        while (lines.len() as u64) < target {
            match child.next_line() {
                Some(line) => lines.push(line),
                None => panic!(
                    "child {round} stopped early after {lines:?}; its stderr:\n{}",
                    child.stderr_text()
                ),
            }
        }
        // Kill it somewhere in the middle of the next submit (copying,
        // fsyncing, committing) or just after it.
        thread::sleep(delay);
        let (status, rest) = child.kill();
        assert!(
            was_sigkilled(status),
            "child {round} should have died of SIGKILL, not {status:?}; stderr:\n{}",
            child.stderr_text()
        );
        let n_before = printed.len();
        for line in lines.iter().chain(&rest) {
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
    let sb = common::sandbox_unlimited();
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
    // More reports and kills in the full run (FIELDREPORT_FULL=1).
    let n_reports: u64 = support::scale(12, 40);
    let rounds: usize = support::scale(4, 30);
    let shape = FLUSH_SHAPE;
    let mut rng = Rng::seeded("sigkill_during_flush_never_creates_twice");
    let tmp = common::tempdir();
    let dir = tmp.path().join("outbox");
    let sb = common::sandbox_unlimited();
    let client = Client::open(fast_config(&dir, &sb)).expect("open");
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
            "child_role_flusher",
            &flusher_env(&dir, &sb),
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
            assert!(was_sigkilled(status), "child {round}: {status:?}");
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
        "no flush was killed mid-delivery: the test exercised nothing"
    );

    sb.clear_faults();
    let result = common::drain(&client, 20);
    assert_eq!(
        (result.pending, result.dead),
        (0, 0),
        "after drain: {result:?}"
    );

    let mut expected = Expected::default();
    let reports = reports_by_counter(&client, &shape);
    assert_eq!(reports.len() as u64, n_reports);
    let created = created_per_summary(&sb);
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
        assert_eq!(feedback.body["summary"], json!(r.summary), "{key}");
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
    for u in sb.uploads() {
        assert!(
            keys.contains(&u.feedback_key),
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
        "{killed_mid_flush} flushes killed mid-delivery; {} feedback created for {n_reports} reports: \
         {duplicates} duplicates, {} ambiguous resends counted; {duplicate_uploads} attachments uploaded twice",
        sb.feedback().len(),
        stats.ambiguous_resends
    );
    assert!(
        duplicates as u64 <= stats.ambiguous_resends,
        "{duplicates} duplicate feedback but only {} ambiguous resends counted: {created:?}",
        stats.ambiguous_resends
    );
    support::figures(
        "kill_flush",
        &[
            ("kills", killed_mid_flush.to_string()),
            ("accepted", n_reports.to_string()),
            ("delivered", reports.len().to_string()),
            ("lost", "0".into()),
            ("duplicates", duplicates.to_string()),
            ("ambiguous_resends", stats.ambiguous_resends.to_string()),
            ("duplicate_uploads", duplicate_uploads.to_string()),
        ],
    );
}

// ---------------------------------------------------------------------------
// 3. Two clients on one outbox in one process
// ---------------------------------------------------------------------------

#[test]
fn two_clients_flushing_one_outbox_post_each_report_once() {
    const REPORTS: u64 = 30;
    let shape = SMALL_SHAPE;
    let mut rng = Rng::seeded("two_clients_flushing_one_outbox_post_each_report_once");
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

    let (status, lines) = child.wait();
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
