//! fieldreport's benchmarks: `cargo bench --bench fieldreport` prints one
//! table in which every figure sits beside a baseline measured in the same
//! run, on the same disk, and their ratio. The machine is shared and noisy,
//! so absolute times drift; the ratios are what to compare across runs.
//!
//! `FIELDREPORT_BENCH_QUICK=1` (or `-- --quick`) shrinks every size for a CI
//! smoke run. Other arguments select sections by name: `submit`, `large`,
//! `upload`, `drain`, `destinations` (a drain per destination, in
//! `destinations.rs`), `open`, `memory`, `size`.
//!
//! Memory figures come from child processes (this binary re-executed with
//! `FIELDREPORT_BENCH_CHILD=<role>`), reading their own `VmHWM`/`VmRSS`, so
//! that the parent's servers and buffers do not pollute them. Sizes are
//! measured by `tests/bench/size.sh`, which this binary reads back.

// Cargo also sees this file as the integration test `bench` (it is
// `tests/<dir>/main.rs`); under the test harness `main` is not the entry.
#![cfg_attr(test, allow(dead_code, unused_imports))]

mod destinations;
mod discard;
mod util;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use fieldreport::sandbox::{Sandbox, SandboxConfig};
use fieldreport::{
    Attachment, Client, Config, Durability, Feedback, ReportState, ServerConfig, Submission,
};
use rusqlite::{params, Connection, TransactionBehavior};

use discard::Discard;
use util::*;

/// A base URL that is never contacted (sections that make no request).
const UNUSED_URL: &str = "http://127.0.0.1:9/api/v1";
const API_KEY: &str = "sandbox-key";
const MIB: u64 = 1024 * 1024;

/// Sizes and repetitions of one run.
struct Plan {
    quick: bool,
    small_n: usize,
    small_round: usize,
    large_bytes: u64,
    large_reps: usize,
    upload_reps: usize,
    drain_n: usize,
    drain_reps: usize,
    dest_n: usize,
    dest_reps: usize,
    open_n: usize,
    open_reps: usize,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                quick,
                small_n: 200,
                small_round: 25,
                large_bytes: 16 * MIB,
                large_reps: 2,
                upload_reps: 2,
                drain_n: 200,
                drain_reps: 1,
                dest_n: 100,
                dest_reps: 1,
                open_n: 20_000,
                open_reps: 3,
            }
        } else {
            Plan {
                quick,
                small_n: 1000,
                small_round: 25,
                large_bytes: 100 * MIB,
                large_reps: 7,
                upload_reps: 7,
                drain_n: 1000,
                drain_reps: 3,
                dest_n: 300,
                dest_reps: 3,
                open_n: 100_000,
                open_reps: 7,
            }
        }
    }

    fn large_label(&self) -> String {
        format!("{} MiB", self.large_bytes / MIB)
    }
}

/// One line of the table.
struct Row {
    figure: String,
    ours: String,
    base: String,
    ratio: String,
    goal: String,
    met: Option<bool>,
}

impl Row {
    /// A speed figure: `ratio` is the baseline's time over ours (equally,
    /// our throughput over the baseline's); 1.00 means as fast.
    fn speed(figure: String, ours: String, base: String, ratio: f64, goal: Option<f64>) -> Row {
        Row {
            figure,
            ours,
            base,
            ratio: format!("{ratio:.2}"),
            goal: goal.map(|g| format!("≥ {g:.2}")).unwrap_or_default(),
            met: goal.map(|g| ratio >= g),
        }
    }

    /// An absolute figure with a ceiling; `ratio` is ours over the baseline.
    fn ceiling(
        figure: String,
        ours: String,
        base: String,
        ratio: Option<f64>,
        goal: String,
        met: Option<bool>,
    ) -> Row {
        Row {
            figure,
            ours,
            base,
            ratio: ratio
                .map(|r| format!("×{r:.2}"))
                .unwrap_or_else(|| "—".into()),
            goal,
            met,
        }
    }
}

fn main() {
    if let Ok(role) = std::env::var(CHILD_ENV) {
        child(&role);
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick")
        || std::env::var("FIELDREPORT_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let on = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    let plan = Plan::new(quick);

    let root = match std::env::var_os("FIELDREPORT_BENCH_DIR") {
        Some(d) => PathBuf::from(d),
        None => std::env::temp_dir(),
    };
    fs::create_dir_all(&root).expect("bench dir");
    let work = tempfile::Builder::new()
        .prefix("fieldreport-bench-")
        .tempdir_in(&root)
        .expect("bench temp dir");
    let started = Instant::now();
    eprintln!(
        "fieldreport bench ({}), working in {}",
        if quick { "quick" } else { "full" },
        work.path().display()
    );

    let big = work.path().join("attachment.bin");
    if on("large") || on("upload") || on("memory") {
        make_file(&big, plan.large_bytes);
    }

    let mut rows = Vec::new();
    let mut curl_peak_kib = None;
    if on("submit") {
        eprintln!("== submit (4 KB feedback)");
        rows.extend(bench_submit_small(&plan, work.path(), 0));
        rows.extend(bench_submit_small(&plan, work.path(), 450));
    }
    if on("large") {
        eprintln!("== submit ({} attachment)", plan.large_label());
        rows.extend(bench_submit_large(&plan, work.path(), &big));
    }
    if on("upload") {
        eprintln!("== upload (discard server)");
        let d = Discard::start();
        let (r, peak) = bench_upload(&plan, work.path(), &big, Target::Discard(&d));
        rows.extend(r);
        curl_peak_kib = peak;
        eprintln!("== upload (sandbox)");
        let sb = Sandbox::start(SandboxConfig {
            rate_limit_per_sec: None,
            ..SandboxConfig::default()
        })
        .expect("sandbox");
        rows.extend(bench_upload(&plan, work.path(), &big, Target::Sandbox(&sb)).0);
    }
    if on("progress") {
        if !big.exists() {
            make_file(&big, plan.large_bytes);
        }
        eprintln!("== progress (discard server, listener hearing progress or none)");
        rows.extend(bench_progress(&plan, work.path(), &big, &Discard::start()));
    }
    if on("drain") {
        eprintln!("== drain ({} small reports)", plan.drain_n);
        rows.extend(bench_drain(&plan, work.path()));
    }
    if on("destinations") {
        eprintln!(
            "== destinations ({} reports with an image, each destination)",
            plan.dest_n
        );
        rows.extend(destinations::bench_destinations(
            plan.dest_n,
            plan.dest_reps,
            work.path(),
        ));
    }
    if on("open") {
        eprintln!("== open ({} pending reports)", plan.open_n);
        rows.extend(bench_open(&plan, work.path()));
    }
    if on("memory") {
        eprintln!("== memory");
        rows.extend(bench_memory(&plan, work.path(), &big, curl_peak_kib));
    }
    if on("size") {
        rows.extend(size_rows());
    }

    let table = render(&rows);
    let elapsed = started.elapsed().as_secs_f64();
    println!();
    println!(
        "fieldreport benchmarks ({} run, {elapsed:.0} s); ratio: speed = baseline time ÷ fieldreport time, memory = fieldreport ÷ baseline",
        if quick { "quick" } else { "full" }
    );
    println!();
    print!("{table}");
    let out_dir = target_dir().join("bench");
    let _ = fs::create_dir_all(&out_dir);
    let doc = format!(
        "{table}\n{} run, {elapsed:.0} s, working directory {}\n\n{}",
        if quick { "Quick" } else { "Full" },
        root.display(),
        machine_info(&root)
    );
    let file = out_dir.join(if quick {
        "results-quick.md"
    } else {
        "results.md"
    });
    if fs::write(&file, doc).is_ok() {
        println!(
            "\n(table and machine description written to {})",
            file.display()
        );
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn render(rows: &[Row]) -> String {
    let mut s = String::from(
        "| figure | fieldreport | baseline (same run) | ratio | goal | met |\n|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {met} |\n",
            r.figure, r.ours, r.base, r.ratio, r.goal
        ));
    }
    s
}

fn machine_info(dir: &Path) -> String {
    let d = dir.display();
    let script = format!(
        "echo '$ nproc'; nproc; echo '$ free -h'; free -h; echo '$ lscpu | head -n 15'; lscpu | head -n 15; \
         echo '$ df -h {d}'; df -h {d}; echo '$ findmnt -T {d}'; findmnt -T {d} 2>/dev/null; \
         echo '$ lsblk -d -o NAME,ROTA,SIZE,MODEL'; lsblk -d -o NAME,ROTA,SIZE,MODEL 2>/dev/null; \
         echo '$ uname -r'; uname -r; echo '$ rustc -V'; rustc -V 2>/dev/null; echo '$ curl --version | head -1'; curl --version 2>/dev/null | head -1"
    );
    let out = Command::new("sh").arg("-c").arg(script).output();
    match out {
        Ok(o) => format!("```\n{}```\n", String::from_utf8_lossy(&o.stdout)),
        Err(e) => format!("(machine description unavailable: {e})\n"),
    }
}

fn config(outbox: &Path, base_url: &str) -> Config {
    Config::new(
        outbox,
        ServerConfig::with_base_url(base_url, "WidgetPro", "Mobile", API_KEY),
    )
}

fn ms(secs: f64) -> String {
    format!("{:.2} ms", secs * 1e3)
}

fn mb(kib: f64) -> String {
    format!("{:.1} MB", kib_to_mb(kib))
}

/// A small report as a test rig would send it: a title and a few lines.
fn small_feedback(i: usize) -> (Feedback, String) {
    let summary = format!("Test {i} failed on rig 7");
    let description = prose(300, i);
    let json = serde_json::json!({ "summary": summary, "description": description }).to_string();
    (Feedback::new(summary).description(description), json)
}

fn median_of(v: &[f64]) -> f64 {
    let mut s = Samples::default();
    s.0.extend_from_slice(v);
    s.median()
}

// ---------------------------------------------------------------------------
// submit: a 4 KB feedback, no attachment, default durability
// ---------------------------------------------------------------------------

/// `prefill`: reports already queued (the state of a device that has been
/// offline a while); each timed round's reports are removed after it.
fn bench_submit_small(plan: &Plan, work: &Path, prefill: usize) -> Vec<Row> {
    let dir = work.join(format!("submit-small-{prefill}"));
    fs::create_dir_all(&dir).unwrap();
    let description = prose(4000, 1);
    if prefill > 0 {
        let mut cfg = config(&dir.join("outbox"), UNUSED_URL);
        cfg.policy.durability = Durability::Normal;
        let setup = Client::open(cfg).expect("client opens");
        for i in 0..prefill {
            setup
                .submit(Feedback::new(format!("Queued {i}")).description(description.clone()))
                .expect("prefill");
        }
    }
    let client = Client::open(config(&dir.join("outbox"), UNUSED_URL)).expect("client opens");
    let summary = |i: usize| format!("Lighting preset {i} should be more robust");
    // What fieldreport stores as the report's body, for the bare insert.
    let payload =
        serde_json::json!({ "summary": summary(0), "description": description }).to_string();

    let mut conn = Connection::open(dir.join("bare.sqlite")).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch("CREATE TABLE bare (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
        .unwrap();
    for _ in 0..prefill {
        conn.execute("INSERT INTO bare (payload) VALUES (?1)", params![payload])
            .unwrap();
    }

    let fr_round = |n: usize, out: Option<&mut Samples>| {
        let mut local = Samples::default();
        let mut ids = Vec::new();
        for i in 0..n {
            let f = Feedback::new(summary(i)).description(description.clone());
            let (r, d) = timed(|| client.submit(f));
            ids.push(r.expect("submit"));
            local.push(d);
        }
        for id in ids {
            client.purge(id).unwrap();
        }
        if let Some(out) = out {
            out.0.extend(local.0);
        }
    };
    let mut bare_round = |n: usize, out: Option<&mut Samples>| {
        let mut local = Samples::default();
        for _ in 0..n {
            let (r, d) = timed(|| -> rusqlite::Result<()> {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                tx.prepare_cached("INSERT INTO bare (payload) VALUES (?1)")?
                    .execute(params![payload])?;
                tx.commit()
            });
            r.expect("bare insert");
            local.push(d);
        }
        conn.execute(
            "DELETE FROM bare WHERE id IN (SELECT id FROM bare ORDER BY id DESC LIMIT ?1)",
            params![n as i64],
        )
        .unwrap();
        if let Some(out) = out {
            out.0.extend(local.0);
        }
    };
    // Warm up both paths (statement caches, WAL file growth).
    fr_round(10, None);
    bare_round(10, None);
    let (mut ours, mut base) = (Samples::default(), Samples::default());
    for r in 0..plan.small_n / plan.small_round {
        if r % 2 == 0 {
            fr_round(plan.small_round, Some(&mut ours));
            bare_round(plan.small_round, Some(&mut base));
        } else {
            bare_round(plan.small_round, Some(&mut base));
            fr_round(plan.small_round, Some(&mut ours));
        }
    }
    let n = ours.len();
    let (tp_ours, tp_base) = (n as f64 / ours.sum(), base.len() as f64 / base.sum());
    // The batch API against the same inserts, a round per commit,
    // alternated round by round.
    let (mut many, mut batched) = (Samples::default(), Samples::default());
    if prefill == 0 {
        for r in 0..plan.small_n / plan.small_round {
            for pass in 0..2 {
                if (pass == 0) == (r % 2 == 0) {
                    let items: Vec<Submission> = (0..plan.small_round)
                        .map(|i| {
                            Feedback::new(summary(i))
                                .description(description.clone())
                                .into()
                        })
                        .collect();
                    let (ids, d) = timed(|| client.submit_many(items));
                    many.push(d);
                    for id in ids.expect("submit_many") {
                        client.purge(id).unwrap();
                    }
                } else {
                    let (r, d) = timed(|| -> rusqlite::Result<()> {
                        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                        for _ in 0..plan.small_round {
                            tx.prepare_cached("INSERT INTO bare (payload) VALUES (?1)")?
                                .execute(params![payload])?;
                        }
                        tx.commit()
                    });
                    r.expect("batched insert");
                    batched.push(d);
                    conn.execute("DELETE FROM bare", []).unwrap();
                }
            }
        }
    }
    if prefill > 0 {
        return vec![Row::speed(
            format!("submit 4 KB feedback with {prefill} already queued: throughput"),
            format!("{tp_ours:.0} reports/s"),
            format!("{tp_base:.0} inserts/s into {prefill} rows"),
            tp_ours / tp_base,
            Some(0.8),
        )];
    }
    let what = format!(
        "submit 4 KB feedback ({} B body, Durability::Full)",
        payload.len()
    );
    vec![
        Row::speed(
            format!("{what}: median latency"),
            ms(ours.median()),
            format!("{} bare INSERT+COMMIT", ms(base.median())),
            base.median() / ours.median(),
            None,
        ),
        Row::speed(
            format!("{what}: p99 latency"),
            ms(ours.percentile(99.0)),
            ms(base.percentile(99.0)),
            base.percentile(99.0) / ours.percentile(99.0),
            None,
        ),
        Row::speed(
            format!("{what}: throughput ({n} each)"),
            format!("{tp_ours:.0} reports/s"),
            format!("{tp_base:.0} inserts/s"),
            tp_ours / tp_base,
            Some(0.8),
        ),
        Row::speed(
            format!(
                "`submit_many` of {} such reports a call: throughput",
                plan.small_round
            ),
            format!(
                "{:.0} reports/s",
                (many.len() * plan.small_round) as f64 / many.sum()
            ),
            format!(
                "{:.0} inserts/s, bare INSERTs, {} per COMMIT",
                (batched.len() * plan.small_round) as f64 / batched.sum(),
                plan.small_round
            ),
            batched.sum() / many.sum(),
            Some(0.8),
        ),
        Row::speed(
            format!(
                "`submit_many` of {} a call, against one bare INSERT+COMMIT per report",
                plan.small_round
            ),
            format!(
                "{:.0} reports/s",
                (many.len() * plan.small_round) as f64 / many.sum()
            ),
            format!("{tp_base:.0} inserts/s"),
            (many.len() * plan.small_round) as f64 / many.sum() / tp_base,
            None,
        ),
    ]
}

// ---------------------------------------------------------------------------
// submit: a large attachment from a file
// ---------------------------------------------------------------------------

/// Submits one small report with a 4 KiB attachment: the copy-in and (once
/// flushed) the upload paths run once before anything is timed.
fn submit_warm_up(client: &Client) {
    client
        .submit(Feedback::new("warm-up").attach(Attachment::from_bytes(
            "Log",
            "w.txt",
            vec![7; 4096],
        )))
        .unwrap();
}

fn bench_submit_large(plan: &Plan, work: &Path, big: &Path) -> Vec<Row> {
    let dir = work.join("submit-large");
    fs::create_dir_all(&dir).unwrap();
    let client = Client::open(config(&dir.join("outbox"), UNUSED_URL)).expect("client opens");
    submit_warm_up(&client);
    client.purge_all().unwrap();
    let copy = dir.join("copy.bin");
    let (mut ours, mut base) = (Samples::default(), Samples::default());
    for rep in 0..plan.large_reps {
        for pass in 0..2 {
            sync_all();
            if (pass == 0) == (rep % 2 == 0) {
                let f = Feedback::new("large attachment").attach(Attachment::from_path("Log", big));
                let (r, d) = timed(|| client.submit(f));
                r.expect("submit large");
                ours.push(d);
                client.purge_all().unwrap();
            } else {
                let (r, d) = timed(|| -> std::io::Result<()> {
                    fs::copy(big, &copy)?;
                    File::open(&copy)?.sync_all()
                });
                r.expect("copy");
                base.push(d);
                fs::remove_file(&copy).unwrap();
            }
        }
    }
    let mbps = |s: f64| plan.large_bytes as f64 / 1e6 / s;
    vec![Row::speed(
        format!("submit a {} attachment from a file", plan.large_label()),
        format!("{:.3} s ({:.0} MB/s)", ours.median(), mbps(ours.median())),
        format!(
            "{:.3} s ({:.0} MB/s) fs::copy + fsync",
            base.median(),
            mbps(base.median())
        ),
        base.median() / ours.median(),
        Some(0.8),
    )]
}

// ---------------------------------------------------------------------------
// upload: flush of one report with a large attachment, against curl -F
// ---------------------------------------------------------------------------

enum Target<'a> {
    Discard(&'a Discard),
    Sandbox(&'a Sandbox),
}

/// Runs curl; returns its own `time_total` and its peak RSS (polled).
fn curl_upload(file: &Path, url: &str) -> (Duration, u64) {
    let mut child = Command::new("curl")
        .args([
            "-sS",
            "--noproxy",
            "*",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{time_total}",
        ])
        .arg("-F")
        .arg(format!(
            "file=@{};type=application/octet-stream",
            file.display()
        ))
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl runs (apt-get install curl)");
    let pid = child.id();
    let mut peak = 0;
    while child.try_wait().expect("wait for curl").is_none() {
        if let Some(k) = proc_status_kib(Some(pid), "VmHWM") {
            peak = peak.max(k);
        }
        thread::sleep(Duration::from_millis(2));
    }
    let out = child.wait_with_output().expect("curl output");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut parts = text.split_whitespace();
    let code = parts.next().unwrap_or("");
    assert!(
        out.status.success() && code == "201",
        "curl upload failed: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secs: f64 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .expect("curl time_total");
    (Duration::from_secs_f64(secs), peak)
}

/// A bare ureq agent, and the sandbox's Create Feedback URL with the key.
fn bare_agent(sb: &Sandbox) -> (ureq::Agent, String) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!(
        "{}/projects/WidgetPro/feedback/Mobile?apiKey={API_KEY}",
        sb.base_url()
    );
    (agent, url)
}

/// An element URL for curl on the sandbox: one feedback created by hand.
fn sandbox_element_url(sb: &Sandbox) -> String {
    let (agent, url) = bare_agent(sb);
    let mut resp = agent
        .post(&url)
        .header("Content-Type", "application/json")
        .send(r#"{"summary":"curl's uploads go here"}"#)
        .expect("create for curl");
    let body = resp.body_mut().read_to_string().unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let el = v["fileElements"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["key"] == "Log"))
        .expect("a Log element");
    format!("{}?apiKey={API_KEY}", el["url"].as_str().unwrap())
}

fn bench_upload(
    plan: &Plan,
    work: &Path,
    big: &Path,
    target: Target<'_>,
) -> (Vec<Row>, Option<u64>) {
    let (name, base_url, element_url) = match &target {
        Target::Discard(d) => ("a discard server", d.base_url(), d.element_url()),
        Target::Sandbox(sb) => ("the sandbox", sb.base_url(), sandbox_element_url(sb)),
    };
    let dir = work.join(format!(
        "upload-{}",
        if matches!(target, Target::Discard(_)) {
            "discard"
        } else {
            "sandbox"
        }
    ));
    fs::create_dir_all(&dir).unwrap();
    let mut cfg = config(&dir.join("outbox"), &base_url);
    cfg.policy.max_requests_per_sec = 0;
    let client = Client::open(cfg).expect("client opens");
    // Warm up: a small report through the same paths; curl once.
    submit_warm_up(&client);
    client.flush(Duration::from_secs(30)).unwrap();
    let small = dir.join("small.bin");
    fs::write(&small, vec![7u8; 4096]).unwrap();
    curl_upload(&small, &element_url);

    let (mut ours, mut base) = (Samples::default(), Samples::default());
    let (mut ours_srv, mut base_srv) = (Samples::default(), Samples::default());
    let server_time = || match &target {
        Target::Discard(d) => d.last_upload(),
        Target::Sandbox(_) => None,
    };
    let mut curl_peak = 0;
    for rep in 0..plan.upload_reps {
        for pass in 0..2 {
            if (pass == 0) == (rep % 2 == 0) {
                let id = client
                    .submit(Feedback::new("large upload").attach(Attachment::from_path("Log", big)))
                    .expect("submit large");
                sync_all();
                let (r, d) = timed(|| client.flush(Duration::from_secs(300)));
                let r = r.expect("flush");
                assert_eq!(
                    client.report(id).unwrap().state,
                    ReportState::Delivered,
                    "{r:?}"
                );
                ours.push(d);
                if let Some(t) = server_time() {
                    ours_srv.push(t);
                }
            } else {
                sync_all();
                let (d, peak) = curl_upload(big, &element_url);
                base.push(d);
                curl_peak = curl_peak.max(peak);
                if let Some(t) = server_time() {
                    base_srv.push(t);
                }
            }
        }
    }
    let mbps = |s: f64| plan.large_bytes as f64 / 1e6 / s;
    let row = Row::speed(
        format!(
            "flush: one report + {} attachment to {name}",
            plan.large_label()
        ),
        format!("{:.0} MB/s ({:.3} s)", mbps(ours.median()), ours.median()),
        format!(
            "{:.0} MB/s ({:.3} s) curl -F",
            mbps(base.median()),
            base.median()
        ),
        base.median() / ours.median(),
        Some(0.8),
    );
    let mut rows = vec![row];
    if ours_srv.len() > 0 && base_srv.len() > 0 {
        rows.push(Row::speed(
            format!("  of which the upload request alone, timed by {name}"),
            format!(
                "{:.0} MB/s ({:.3} s)",
                mbps(ours_srv.median()),
                ours_srv.median()
            ),
            format!(
                "{:.0} MB/s ({:.3} s) curl -F",
                mbps(base_srv.median()),
                base_srv.median()
            ),
            base_srv.median() / ours_srv.median(),
            None,
        ));
    }
    (rows, Some(curl_peak))
}

// ---------------------------------------------------------------------------
// progress: the same upload with a listener hearing Event::Progress, and
// without one (no meter at all), alternated
// ---------------------------------------------------------------------------

/// Counts the progress events it hears.
#[derive(Default)]
struct ProgressCount(std::sync::atomic::AtomicU64);

impl fieldreport::Listener for ProgressCount {
    fn on_event(&self, event: fieldreport::Event) {
        if matches!(event, fieldreport::Event::Progress { .. }) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

fn bench_progress(plan: &Plan, work: &Path, big: &Path, d: &Discard) -> Vec<Row> {
    let dir = work.join("upload-progress");
    fs::create_dir_all(&dir).unwrap();
    let mut cfg = config(&dir.join("outbox"), &d.base_url());
    cfg.policy.max_requests_per_sec = 0;
    let client = Client::open(cfg).expect("client opens");
    submit_warm_up(&client);
    client.flush(Duration::from_secs(30)).unwrap();
    let heard = std::sync::Arc::new(ProgressCount::default());
    let (mut with, mut without) = (Samples::default(), Samples::default());
    // Twice the upload section's repetitions: the difference sought is small.
    for rep in 0..plan.upload_reps * 2 {
        for pass in 0..2 {
            let listening = (pass == 0) == (rep % 2 == 0);
            client.set_listener(if listening {
                Some(heard.clone() as std::sync::Arc<dyn fieldreport::Listener>)
            } else {
                None
            });
            let id = client
                .submit(Feedback::new("large upload").attach(Attachment::from_path("Log", big)))
                .expect("submit large");
            sync_all();
            let (r, t) = timed(|| client.flush(Duration::from_secs(300)));
            r.expect("flush");
            assert_eq!(client.report(id).unwrap().state, ReportState::Delivered);
            if listening {
                with.push(t);
            } else {
                without.push(t);
            }
        }
    }
    let events = heard.0.load(std::sync::atomic::Ordering::Relaxed);
    let mbps = |s: f64| plan.large_bytes as f64 / 1e6 / s;
    vec![Row::speed(
        format!(
            "flush of a {} attachment to a discard server, a listener hearing progress ({} events in {} uploads)",
            plan.large_label(),
            events,
            with.len()
        ),
        format!("{:.0} MB/s ({:.3} s)", mbps(with.median()), with.median()),
        format!(
            "{:.0} MB/s ({:.3} s) no listener",
            mbps(without.median()),
            without.median()
        ),
        without.median() / with.median(),
        Some(0.95),
    )]
}

// ---------------------------------------------------------------------------
// drain: many small queued reports to the sandbox, rate limits off
// ---------------------------------------------------------------------------

fn unlimited_sandbox() -> Sandbox {
    Sandbox::start(SandboxConfig {
        rate_limit_per_sec: None,
        ..SandboxConfig::default()
    })
    .expect("sandbox")
}

/// Seconds for fieldreport to deliver `n` queued reports.
fn drain_fieldreport(n: usize, dir: &Path, durability: Durability) -> f64 {
    let sb = unlimited_sandbox();
    let mut cfg = config(dir, &sb.base_url());
    cfg.policy.max_requests_per_sec = 0;
    cfg.policy.max_reports = (n as u32) * 2 + 10;
    // Queue fast (not measured), then reopen at the durability measured.
    cfg.policy.durability = Durability::Normal;
    {
        let setup = Client::open(cfg.clone()).expect("client opens");
        for i in 0..n {
            setup.submit(small_feedback(i).0).expect("submit");
        }
    }
    cfg.policy.durability = durability;
    let client = Client::open(cfg).expect("client opens");
    sync_all();
    let t = Instant::now();
    let mut last = None;
    for _ in 0..5 {
        let r = client.flush(Duration::from_secs(600)).expect("flush");
        let done = r.pending == 0;
        last = Some(r);
        if done {
            break;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let r = last.unwrap();
    assert_eq!(r.pending, 0, "drain incomplete: {:?}", r.stopped);
    assert_eq!(sb.feedback().len(), n);
    secs
}

/// Seconds for a bare ureq loop to post the same JSON bodies.
fn drain_bare(n: usize) -> f64 {
    let sb = unlimited_sandbox();
    let bodies: Vec<String> = (0..n).map(|i| small_feedback(i).1).collect();
    let (agent, url) = bare_agent(&sb);
    let t = Instant::now();
    bare_post_all(&agent, &url, &bodies);
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(sb.feedback().len(), n);
    secs
}

/// The timed part of [`drain_bare`] (its own function, for
/// `--toggle-collect`).
#[inline(never)]
fn bare_post_all(agent: &ureq::Agent, url: &str, bodies: &[String]) {
    for body in bodies {
        bare_post(agent, url, body);
    }
}

/// One bare create: the JSON posted, a 201 required, its answer read.
fn bare_post(agent: &ureq::Agent, url: &str, body: &str) -> String {
    let mut resp = agent
        .post(url)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .send(body)
        .expect("post");
    assert_eq!(resp.status().as_u16(), 201);
    resp.body_mut().read_to_string().expect("answer")
}

/// Seconds for the least that an outbox with a durable "about to leave"
/// record must do per report, written bare: read the queued body, then in
/// one commit record the previous report's server key and mark this one as
/// leaving, then post it over the same kept-alive connection. The same
/// pragmas as fieldreport's outbox (WAL, `synchronous` as given), no index,
/// no eviction, no accounting. This is the floor that any fieldreport drain
/// at that durability sits above.
fn drain_bare_outbox(n: usize, dir: &Path, durability: Durability) -> f64 {
    let sb = unlimited_sandbox();
    fs::create_dir_all(dir).unwrap();
    let db = dir.join("bare-outbox.sqlite");
    let _ = fs::remove_file(&db);
    let mut conn = Connection::open(&db).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    conn.execute_batch(
        "CREATE TABLE q (id INTEGER PRIMARY KEY, body TEXT NOT NULL,
                         sent_at INTEGER, server_key TEXT)",
    )
    .unwrap();
    {
        let tx = conn.transaction().unwrap();
        for i in 0..n {
            tx.execute(
                "INSERT INTO q (body) VALUES (?1)",
                params![small_feedback(i).1],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    let sync = match durability {
        Durability::Full => "FULL",
        _ => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync).unwrap();
    let (agent, url) = bare_agent(&sb);
    sync_all();
    let t = Instant::now();
    bare_outbox_post_all(&mut conn, &agent, &url, n);
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(sb.feedback().len(), n);
    secs
}

/// The timed part of [`drain_bare_outbox`] (its own function, for
/// `--toggle-collect`).
#[inline(never)]
fn bare_outbox_post_all(conn: &mut Connection, agent: &ureq::Agent, url: &str, n: usize) {
    #[derive(serde::Deserialize)]
    struct Answer {
        key: String,
    }
    let mut previous: Option<(i64, String)> = None;
    for id in 1..=n as i64 {
        let body: String = conn
            .prepare_cached("SELECT body FROM q WHERE id = ?1")
            .unwrap()
            .query_row(params![id], |r| r.get(0))
            .unwrap();
        let tx = conn.transaction().unwrap();
        if let Some((prev, key)) = previous.take() {
            tx.prepare_cached("UPDATE q SET server_key = ?2 WHERE id = ?1")
                .unwrap()
                .execute(params![prev, key])
                .unwrap();
        }
        tx.prepare_cached("UPDATE q SET sent_at = 1 WHERE id = ?1")
            .unwrap()
            .execute(params![id])
            .unwrap();
        tx.commit().unwrap();
        let answer: Answer = serde_json::from_str(&bare_post(agent, url, &body)).unwrap();
        previous = Some((id, answer.key));
    }
    if let Some((prev, key)) = previous {
        conn.execute(
            "UPDATE q SET server_key = ?2 WHERE id = ?1",
            params![prev, key],
        )
        .unwrap();
    }
}

fn bench_drain(plan: &Plan, work: &Path) -> Vec<Row> {
    let n = plan.drain_n;
    // Seconds per run: fieldreport Full, Normal; the bare ureq loop; the
    // bare outbox loop at Full, Normal. Interleaved, rotating the order.
    let mut secs: [Vec<f64>; 5] = Default::default();
    // Warm-up of every code path.
    drain_fieldreport(20, &work.join("drain-warm"), Durability::Full);
    drain_bare(20);
    drain_bare_outbox(20, &work.join("drain-warm-bare"), Durability::Full);
    for rep in 0..plan.drain_reps {
        for k in 0..5 {
            let which = (k + rep) % 5;
            let dir = work.join(format!("drain-{which}-{rep}"));
            secs[which].push(match which {
                0 => drain_fieldreport(n, &dir, Durability::Full),
                1 => drain_fieldreport(n, &dir, Durability::Normal),
                2 => drain_bare(n),
                3 => drain_bare_outbox(n, &dir, Durability::Full),
                _ => drain_bare_outbox(n, &dir, Durability::Normal),
            });
        }
    }
    let rate = |i: usize| n as f64 / median_of(&secs[i]);
    let (full, normal, bare, floor_full, floor_normal) =
        (rate(0), rate(1), rate(2), rate(3), rate(4));
    let per_s = |r: f64| format!("{r:.0} reports/s");
    let base = format!("{bare:.0} reports/s bare ureq loop");
    vec![
        Row::speed(
            format!("drain {n} small queued reports to the sandbox (Durability::Full, default)"),
            per_s(full),
            base.clone(),
            full / bare,
            Some(0.8),
        ),
        Row::speed(
            format!("drain {n} small queued reports (Durability::Normal, for comparison)"),
            per_s(normal),
            base,
            normal / bare,
            None,
        ),
        Row::speed(
            "drain, Full, against its floor: a bare outbox loop, one synced commit per report"
                .into(),
            per_s(full),
            format!("{floor_full:.0} reports/s bare outbox loop (Full)"),
            full / floor_full,
            None,
        ),
        Row::speed(
            "drain, Normal, against its floor: a bare outbox loop, one commit per report".into(),
            per_s(normal),
            format!("{floor_normal:.0} reports/s bare outbox loop (Normal)"),
            normal / floor_normal,
            None,
        ),
    ]
}

// ---------------------------------------------------------------------------
// open: an outbox holding many pending reports
// ---------------------------------------------------------------------------

fn open_config(outbox: &Path) -> Config {
    let mut cfg = config(outbox, UNUSED_URL);
    cfg.policy.max_reports = u32::MAX;
    cfg.policy.max_bytes = u64::MAX / 2;
    cfg
}

/// Builds an outbox of `n` pending small reports: one submitted through
/// the library (so the schema and row shape are the library's own), then
/// copied `n - 1` times in one SQL statement.
fn build_big_outbox(outbox: &Path, n: usize) {
    let mut cfg = open_config(outbox);
    cfg.policy.durability = Durability::Normal;
    {
        let c = Client::open(cfg).expect("client opens");
        c.submit(small_feedback(0).0).expect("submit");
    }
    let conn = Connection::open(outbox.join("outbox.sqlite")).unwrap();
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;
         WITH RECURSIVE c(x) AS (SELECT 2 UNION ALL SELECT x + 1 FROM c WHERE x < {n})
         INSERT INTO reports (client_id, seq, kind, state, summary, payload, context, submitted_at, bytes)
           SELECT r.client_id || '-' || x, x, r.kind, r.state, r.summary, r.payload, r.context, r.submitted_at, r.bytes
           FROM c, (SELECT * FROM reports ORDER BY id LIMIT 1) r;
         UPDATE meta SET value = '{n}' WHERE key = 'seq';
         COMMIT;"
    ))
    .unwrap();
    let _: (i64, i64, i64) = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    let pending: i64 = conn
        .query_row(
            "SELECT count(*) FROM reports WHERE state = 'queued'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(pending as usize, n);
}

/// The baseline open: the same file, pragmas and schema check, and the
/// count of pending reports an app would show.
fn bare_open(db: &Path) -> rusqlite::Result<(Connection, i64)> {
    let conn = Connection::open(db)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let _: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    let _: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let n = conn.query_row(
        "SELECT count(*) FROM reports WHERE state IN ('queued','created')",
        [],
        |r| r.get(0),
    )?;
    Ok((conn, n))
}

fn bench_open(plan: &Plan, work: &Path) -> Vec<Row> {
    let outbox = work.join("open").join("outbox");
    let (_, d) = timed(|| build_big_outbox(&outbox, plan.open_n));
    eprintln!("   built in {:.1} s", d.as_secs_f64());
    let o = outbox.to_str().unwrap();
    let (mut ours_t, mut base_t, mut ours_m, mut base_m) = (vec![], vec![], vec![], vec![]);
    // One warm-up of each (first open after the build checkpoints the WAL).
    run_child("open", &[o, "fr"]);
    run_child("open", &[o, "bare"]);
    for rep in 0..plan.open_reps {
        for pass in 0..2 {
            let which = if (pass == 0) == (rep % 2 == 0) {
                "fr"
            } else {
                "bare"
            };
            let r = run_child("open", &[o, which]);
            let (t, m) = if which == "fr" {
                (&mut ours_t, &mut ours_m)
            } else {
                (&mut base_t, &mut base_m)
            };
            t.push(r["secs"]);
            m.push(r["growth_kib"]);
        }
    }
    let (ot, bt) = (median_of(&ours_t), median_of(&base_t));
    let (om, bm) = (median_of(&ours_m), median_of(&base_m));
    let n = plan.open_n;
    vec![
        Row::speed(
            format!("Client::open, outbox holding {n} pending reports: time (fresh process)"),
            ms(ot),
            format!("{} rusqlite open + pragmas + pending count", ms(bt)),
            bt / ot,
            None,
        ),
        Row::ceiling(
            format!("Client::open, {n} pending: time, absolute"),
            ms(ot),
            String::new(),
            None,
            "< 100 ms".into(),
            Some(ot < 0.1),
        ),
        Row::ceiling(
            format!("Client::open, {n} pending: peak RSS growth"),
            mb(om),
            mb(bm),
            Some(om / bm.max(1.0)),
            "< 10 MB".into(),
            Some(kib_to_mb(om) < 10.0),
        ),
    ]
}

// ---------------------------------------------------------------------------
// memory: child processes
// ---------------------------------------------------------------------------

fn bench_memory(plan: &Plan, work: &Path, big: &Path, curl_peak_kib: Option<u64>) -> Vec<Row> {
    let mut bare_hwm = Vec::new();
    let mut idle_hwm = Vec::new();
    for rep in 0..3 {
        let dir = work.join(format!("idle-{rep}"));
        bare_hwm.push(run_child("bare", &[])["hwm_kib"]);
        idle_hwm.push(run_child("idle", &[dir.to_str().unwrap()])["hwm_kib"]);
    }
    let (bare, idle) = (median_of(&bare_hwm), median_of(&idle_hwm));
    let d = Discard::start();
    let dir = work.join("memory-large");
    let r = run_child(
        "large",
        &[dir.to_str().unwrap(), big.to_str().unwrap(), &d.base_url()],
    );
    let label = plan.large_label();
    let mut rows = vec![
        Row::ceiling(
            "peak RSS, client idle (open + background sender)".into(),
            mb(idle),
            format!("{} same binary, no client", mb(bare)),
            Some(idle / bare),
            "< 20 MB".into(),
            Some(kib_to_mb(idle) < 20.0),
        ),
        Row::ceiling(
            format!("peak RSS growth, submit of a {label} file"),
            mb(r["submit_growth_kib"]),
            format!("{} fs::copy + fsync", mb(r["copy_growth_kib"])),
            None,
            "< 16 MB".into(),
            Some(kib_to_mb(r["submit_growth_kib"]) < 16.0),
        ),
        Row::ceiling(
            format!("peak RSS growth, flush (upload) of {label}"),
            mb(r["flush_growth_kib"]),
            String::new(),
            None,
            "flat (< 16 MB)".into(),
            Some(kib_to_mb(r["flush_growth_kib"]) < 16.0),
        ),
    ];
    let peak = r["flush_peak_kib"];
    rows.push(Row::ceiling(
        format!("peak RSS during the {label} upload"),
        mb(peak),
        curl_peak_kib
            .map(|c| format!("{} curl -F", mb(c as f64)))
            .unwrap_or_default(),
        curl_peak_kib.map(|c| peak / c as f64),
        "< 20 MB".into(),
        Some(kib_to_mb(peak) < 20.0),
    ));
    rows
}

/// The child roles; each prints one `RESULT` line.
fn child(role: &str) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match role {
        "bare" => report(&[("hwm_kib", hwm_kib() as f64), ("rss_kib", rss_kib() as f64)]),
        "idle" => {
            let client = Client::open(config(Path::new(&args[0]), UNUSED_URL)).expect("open");
            client.start_sender().expect("sender");
            thread::sleep(Duration::from_millis(500));
            report(&[("hwm_kib", hwm_kib() as f64), ("rss_kib", rss_kib() as f64)]);
            drop(client);
        }
        "open" => {
            let (outbox, which) = (Path::new(&args[0]), args[1].as_str());
            reset_peak();
            let rss0 = rss_kib();
            let (secs, hwm) = if which == "fr" {
                let (c, d) = timed(|| Client::open(open_config(outbox)));
                let c = c.expect("open");
                let hwm = hwm_kib();
                drop(c);
                (d, hwm)
            } else {
                let (c, d) = timed(|| bare_open(&outbox.join("outbox.sqlite")));
                let c = c.expect("open");
                let hwm = hwm_kib();
                drop(c);
                (d, hwm)
            };
            report(&[
                ("secs", secs.as_secs_f64()),
                ("growth_kib", hwm.saturating_sub(rss0) as f64),
            ]);
        }
        "large" => {
            let (dir, file, base_url) = (Path::new(&args[0]), Path::new(&args[1]), &args[2]);
            let mut cfg = config(&dir.join("outbox"), base_url);
            cfg.policy.max_requests_per_sec = 0;
            let client = Client::open(cfg).expect("open");
            submit_warm_up(&client);
            client.flush(Duration::from_secs(30)).unwrap();
            assert!(reset_peak(), "cannot reset VmHWM (/proc/self/clear_refs)");
            let r0 = rss_kib();
            let copy = dir.join("copy.bin");
            fs::copy(file, &copy).unwrap();
            File::open(&copy).unwrap().sync_all().unwrap();
            let copy_growth = hwm_kib().saturating_sub(r0);
            fs::remove_file(&copy).unwrap();
            reset_peak();
            let r1 = rss_kib();
            let id = client
                .submit(Feedback::new("large").attach(Attachment::from_path("Log", file)))
                .expect("submit");
            let submit_growth = hwm_kib().saturating_sub(r1);
            reset_peak();
            let r2 = rss_kib();
            client.flush(Duration::from_secs(300)).expect("flush");
            let flush_peak = hwm_kib();
            assert_eq!(client.report(id).unwrap().state, ReportState::Delivered);
            report(&[
                ("copy_growth_kib", copy_growth as f64),
                ("submit_growth_kib", submit_growth as f64),
                ("flush_growth_kib", flush_peak.saturating_sub(r2) as f64),
                ("flush_peak_kib", flush_peak as f64),
            ]);
        }
        role if role.starts_with("profile-") => profile(role, &args),
        other => panic!("unknown child role {other}"),
    }
}

/// Roles for profilers: one fieldreport path, self-contained (its own temp
/// dir and server), no baseline. For example, instructions per submit:
///
/// ```sh
/// FIELDREPORT_BENCH_CHILD=profile-submit valgrind --tool=callgrind \
///   --toggle-collect='*Client::submit*' target/release/deps/fieldreport-<hash> 200
/// ```
///
/// `profile-submit [n] [already queued]`, `profile-large [MiB] [reps]`, `profile-upload [MiB]
/// [reps]`, `profile-drain [n] [full|normal]`, `profile-bare-drain [n]`,
/// `profile-bare-outbox [n] [full|normal]`, `profile-open [n]`.
fn profile(role: &str, args: &[String]) {
    let arg = |i: usize, default: usize| -> usize {
        args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
    };
    let work = tempfile::Builder::new()
        .prefix("fieldreport-profile-")
        .tempdir()
        .unwrap();
    let dir = work.path();
    let t = Instant::now();
    match role {
        "profile-submit" => {
            let description = prose(4000, 1);
            let prefill = arg(1, 0);
            if prefill > 0 {
                let mut cfg = config(&dir.join("outbox"), UNUSED_URL);
                cfg.policy.durability = Durability::Normal;
                let setup = Client::open(cfg).unwrap();
                for i in 0..prefill {
                    setup
                        .submit(
                            Feedback::new(format!("Queued {i}")).description(description.clone()),
                        )
                        .unwrap();
                }
            }
            let client = Client::open(config(&dir.join("outbox"), UNUSED_URL)).unwrap();
            let mut ids = Vec::new();
            for i in 0..arg(0, 200) {
                ids.push(
                    client
                        .submit(
                            Feedback::new(format!("Report {i}")).description(description.clone()),
                        )
                        .unwrap(),
                );
                if ids.len() == 25 {
                    for id in ids.drain(..) {
                        client.purge(id).unwrap();
                    }
                }
            }
        }
        "profile-large" | "profile-upload" => {
            let big = dir.join("big.bin");
            make_file(&big, arg(0, 100) as u64 * MIB);
            let d = Discard::start();
            let mut cfg = config(&dir.join("outbox"), &d.base_url());
            cfg.policy.max_requests_per_sec = 0;
            let client = Client::open(cfg).unwrap();
            for _ in 0..arg(1, 1) {
                let f = Feedback::new("large").attach(Attachment::from_path("Log", &big));
                let (r, ds) = timed(|| client.submit(f));
                r.unwrap();
                if role == "profile-upload" {
                    let (r, df) = timed(|| client.flush(Duration::from_secs(300)));
                    r.unwrap();
                    eprintln!(
                        "submit {:.3} s, flush {:.3} s",
                        ds.as_secs_f64(),
                        df.as_secs_f64()
                    );
                } else {
                    eprintln!("submit {:.3} s", ds.as_secs_f64());
                    client.purge_all().unwrap();
                }
            }
        }
        "profile-drain" | "profile-bare-outbox" => {
            let n = arg(0, 1000);
            let durability = match args.get(1).map(String::as_str) {
                Some("normal") => Durability::Normal,
                _ => Durability::Full,
            };
            let secs = if role == "profile-drain" {
                drain_fieldreport(n, &dir.join("outbox"), durability)
            } else {
                drain_bare_outbox(n, &dir.join("bare"), durability)
            };
            eprintln!("{n} reports in {secs:.3} s: {:.0}/s", n as f64 / secs);
        }
        "profile-bare-drain" => {
            let n = arg(0, 1000);
            let secs = drain_bare(n);
            eprintln!("{n} posts in {secs:.3} s: {:.0}/s", n as f64 / secs);
        }
        "profile-open" => {
            let outbox = dir.join("outbox");
            build_big_outbox(&outbox, arg(0, 100_000));
            let (c, d) = timed(|| Client::open(open_config(&outbox)));
            c.unwrap();
            eprintln!("open {:.1} ms", d.as_secs_f64() * 1e3);
        }
        other => panic!("unknown profile role {other}"),
    }
    eprintln!("{role}: {:.3} s", t.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------
// size: read back from tests/bench/size.sh
// ---------------------------------------------------------------------------

fn size_rows() -> Vec<Row> {
    let file = target_dir().join("bench").join("size.tsv");
    let Ok(text) = fs::read_to_string(&file) else {
        return vec![Row::ceiling(
            "size: release-small cdylib".into(),
            "not measured: run `bash tests/bench/size.sh` first".into(),
            String::new(),
            None,
            "≤ 1,000,000 B gzip".into(),
            None,
        )];
    };
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('\t'))
            .unwrap_or("")
            .to_string()
    };
    let stale = fs::metadata(&file)
        .and_then(|m| m.modified())
        .map(|built| newest_source() > built)
        .unwrap_or(true);
    let note = if stale {
        " (**stale**: sources changed since size.sh ran)"
    } else {
        ""
    };
    let goal = 1_000_000u64;
    let mut rows = Vec::new();
    // The goal is the mobile build's: the build the README recommends for
    // mobile apps, where every kilobyte counts.
    for (build, prefix, goal_of_build) in [
        ("default build (its own HTTP client and TLS)", "", false),
        (
            "mobile build (no HTTP stack of its own; the app's transport)",
            "mobile_",
            true,
        ),
    ] {
        let bytes: u64 = get(&format!("{prefix}stripped_bytes")).parse().unwrap_or(0);
        let gz: u64 = get(&format!("{prefix}gzip_bytes")).parse().unwrap_or(0);
        let ceiling: u64 = get(&format!("{prefix}ceiling_gzip_bytes"))
            .parse()
            .unwrap_or(0);
        rows.push(Row::ceiling(
            format!(
                "size, {build}: {} cdylib, profile {}, strip --strip-unneeded{note}",
                get("target"),
                get("profile")
            ),
            format!("{bytes} B"),
            String::new(),
            None,
            String::new(),
            None,
        ));
        rows.push(Row::ceiling(
            format!("size, {build}: the same, gzip -9"),
            format!("{gz} B"),
            format!("CI ceiling {ceiling} B"),
            None,
            if goal_of_build {
                "≤ 1,000,000 B".into()
            } else {
                String::new()
            },
            goal_of_build.then_some(gz <= goal),
        ));
    }
    rows
}

fn newest_source() -> std::time::SystemTime {
    fn walk(p: &Path, newest: &mut std::time::SystemTime) {
        if let Ok(m) = fs::metadata(p) {
            if m.is_dir() {
                if let Ok(rd) = fs::read_dir(p) {
                    for e in rd.flatten() {
                        walk(&e.path(), newest);
                    }
                }
            } else if let Ok(t) = m.modified() {
                *newest = (*newest).max(t);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut newest = std::time::UNIX_EPOCH;
    for p in ["src", "Cargo.toml", "Cargo.lock", "build.rs", "uniffi.udl"] {
        walk(&root.join(p), &mut newest);
    }
    newest
}
