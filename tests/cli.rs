//! The `fieldreport` command-line tool, as a test rig drives it.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use fieldreport::sandbox::{Fault, Sandbox};
use serde_json::Value;

fn cli(dir: &Path, sb: &Sandbox, args: &[&str]) -> Output {
    cli_to(dir, &sb.base_url(), sb.api_key(), args)
}

fn cli_to(dir: &Path, base_url: &str, api_key: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fieldreport"))
        .args(args)
        .env("FIELDREPORT_OUTBOX", dir)
        .env("FIELDREPORT_BASE_URL", base_url)
        .env("FIELDREPORT_PROJECT", "WidgetPro")
        .env("FIELDREPORT_FEEDBACK_TYPE", "Mobile")
        .env("FIELDREPORT_API_KEY", api_key)
        .output()
        .expect("run the cli")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn submit_crash_flush_status_with_exit_codes() {
    let sb = sandbox();
    let dir = tempdir();
    let shot = dir.path().join("shot.png");
    std::fs::write(&shot, b"not really a png").unwrap();
    let log = dir.path().join("crash.log");
    std::fs::write(&log, "fatal: disk on fire\nline 2\n").unwrap();
    let outbox = dir.path().join("outbox");

    let o = cli(
        &outbox,
        &sb,
        &[
            "submit",
            "--summary",
            "Rig test 17 failed",
            "--description",
            "see logs",
            "--field",
            "topic=23795",
            "--field",
            "build=nightly-3",
            "--attach",
            &format!("Screenshot={}", shot.display()),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "1");
    let o = cli(&outbox, &sb, &["crash", "--log", log.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "2");

    // Pending before the flush.
    let o = cli(&outbox, &sb, &["status", "--json"]);
    assert_eq!(o.status.code(), Some(3));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["pending"], 2);

    let o = cli(&outbox, &sb, &["flush", "--timeout", "20", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["receipts"].as_array().unwrap().len(), 2);
    assert_eq!(v["receipts"][0]["state"], "delivered");
    assert_eq!(v["receipts"][0]["serverKey"], "BUG-0001");
    let created = sb.feedback();
    assert_eq!(created[0].body["topic"], 23795);
    assert_eq!(created[0].body["build"], "nightly-3");
    assert_eq!(created[1].body["summary"], "fatal: disk on fire");
    assert_eq!(sb.uploads()[0].sha256_hex, sha256_hex(b"not really a png"));

    let o = cli(&outbox, &sb, &["status", "--id", "1", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["state"], "delivered");
    assert_eq!(v["attachments"][0]["state"], "uploaded");
}

#[test]
fn dead_and_pending_have_their_own_exit_codes() {
    let sb = sandbox();
    let dir = tempdir();
    let o = cli(dir.path(), &sb, &["submit", "--summary", "will die"]);
    assert_eq!(o.status.code(), Some(0));
    sb.inject(Fault::status(422));
    let o = cli(dir.path(), &sb, &["flush"]);
    assert_eq!(o.status.code(), Some(4), "{}", stdout(&o));
    assert!(stdout(&o).contains("dead"));
    let o = cli(dir.path(), &sb, &["submit", "--summary", "will wait"]);
    assert_eq!(o.status.code(), Some(0));
    let o = cli(dir.path(), &sb, &["purge", "1"]);
    assert_eq!(o.status.code(), Some(0));
    sb.inject(Fault::status(503));
    let o = cli(dir.path(), &sb, &["flush"]);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    assert!(stdout(&o).contains("stopped: server error 503"));
}

#[test]
fn bad_input_and_configuration_exit_2_and_change_nothing() {
    let sb = sandbox();
    let dir = tempdir();
    let outbox = dir.path().join("outbox");
    let cases: &[&[&str]] = &[
        &["submit"],
        &["submit", "--summary", ""],
        &[
            "submit",
            "--summary",
            "x",
            "--attach",
            "Screenshot=/nonexistent.png",
        ],
        &["submit", "--summary", "x", "--attach", "no-equals-sign"],
        &["submit", "--summary", "x", "--field", "novalue"],
        &["crash", "--log", "/nonexistent.log"],
        &["flush", "--timeout", "soon"],
        &["status", "--id", "x"],
        &["retry", "7"],
        &["frobnicate"],
        &["submit", "--bogus"],
    ];
    for args in cases {
        let o = cli(&outbox, &sb, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).trim().is_empty(), "{args:?} explains itself");
    }
    let o = cli(&outbox, &sb, &["status", "--json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["pending"], 0, "nothing was queued by bad input");
    // Missing configuration.
    let o = Command::new(env!("CARGO_BIN_EXE_fieldreport"))
        .args(["status"])
        .env_remove("FIELDREPORT_OUTBOX")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--outbox"));
    // http:// to a remote host is refused, naming the reason and the
    // option that allows it.
    let insecure = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_fieldreport"))
            .args([
                "--outbox",
                outbox.to_str().unwrap(),
                "--base-url",
                "http://example.com/api/v1",
            ])
            .args(["--project", "P", "--feedback-type", "T", "--api-key", "k"])
            .args(extra)
            .args(["submit", "--summary", "over plain http"])
            .env_remove("FIELDREPORT_BASE_URL")
            .output()
            .unwrap()
    };
    let o = insecure(&[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("clear text"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("add --allow-insecure-http"),
        "{}",
        stderr(&o)
    );
    // With the option, the report is queued (submit does not send).
    let o = insecure(&["--allow-insecure-http"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "1");
}

#[test]
fn the_api_key_is_not_printed_on_failure() {
    let dir = tempdir();
    let (url, key) = ("http://127.0.0.1:9/api/v1", "TOPSECRET-991");
    let o = cli_to(dir.path(), url, key, &["submit", "--summary", "x"]);
    assert_eq!(o.status.code(), Some(0));
    let o = cli_to(dir.path(), url, key, &["flush", "--json"]);
    assert_eq!(o.status.code(), Some(3));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(all.contains("network failure"), "{all}");
    assert!(!all.contains(key));
}

#[test]
fn demo_delivers_and_prints_keys() {
    let o = Command::new(env!("CARGO_BIN_EXE_fieldreport"))
        .arg("demo")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("delivered: BUG-0001 http://127.0.0.1:"),
        "{out}"
    );
    assert!(out.contains("BUG-0002"));
    assert!(out.contains("screenshot.png"));
    assert!(out.contains("crash.log.gz"));
}

#[test]
fn batch_queues_json_lines_all_or_nothing() {
    let sb = sandbox_unlimited();
    let dir = tempdir();
    let outbox = dir.path().join("outbox");
    let shot = dir.path().join("shot.png");
    std::fs::write(&shot, b"rig screenshot").unwrap();
    let log = dir.path().join("core.log");
    std::fs::write(&log, "SIGSEGV in worker 3\n").unwrap();
    let good = format!(
        "{}\n\n{}\n{}\n",
        serde_json::json!({"summary": "rig run 1", "fields": {"topic": 23795},
                           "attach": {"Screenshot": shot.display().to_string()}}),
        serde_json::json!({"crash_log": log.display().to_string()}),
        serde_json::json!({"summary": "rig run 3", "description": "ok"}),
    );
    let file = dir.path().join("good.jsonl");
    std::fs::write(&file, &good).unwrap();
    let o = cli(&outbox, &sb, &["batch", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "1\n2\n3\n");

    // One bad line (line 3: a missing file) refuses the whole batch.
    let bad = format!(
        "{}\n{}\n{}\n",
        serde_json::json!({"summary": "fine"}),
        serde_json::json!({"summary": "fine too"}),
        serde_json::json!({"summary": "broken", "attach": {"Screenshot": "/no/such/file"}}),
    );
    let file = dir.path().join("bad.jsonl");
    std::fs::write(&file, &bad).unwrap();
    let o = cli(&outbox, &sb, &["batch", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("batch item 2"), "{}", stderr(&o));
    assert!(stderr(&o).contains("line 3"), "{}", stderr(&o));

    // Malformed lines are refused before anything is read from disk.
    for (text, want) in [
        ("{\"summary\": 5}\n", "line 1: \"summary\" must be a string"),
        ("{\"summry\": \"typo\"}\n", "unknown key \"summry\""),
        ("{}\n", "\"summary\" is required"),
        ("not json\n", "line 1: not a JSON object"),
        (
            "{\"summary\": \"x\", \"attach\": [\"a\"]}\n",
            "\"attach\" must be an object",
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        let o = cli(&outbox, &sb, &["batch", file.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{text}");
        assert!(stderr(&o).contains(want), "{text}: {}", stderr(&o));
    }

    let o = cli(&outbox, &sb, &["status", "--json"]);
    let stats: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(stats["pending"], 3, "only the good batch: {stats}");
    let o = cli(&outbox, &sb, &["flush"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let fb = sb.feedback();
    assert_eq!(fb.len(), 3);
    assert_eq!(fb[0].body["topic"], 23795);
    assert_eq!(fb[1].body["summary"], "SIGSEGV in worker 3");
    assert_eq!(sb.uploads().len(), 2, "the screenshot and the crash log");
}

/// The CLI with the sandbox's environment plus `env`.
fn cli_with(dir: &Path, sb: &Sandbox, env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fieldreport"))
        .args(args)
        .env("FIELDREPORT_OUTBOX", dir)
        .env("FIELDREPORT_BASE_URL", sb.base_url())
        .env("FIELDREPORT_PROJECT", "WidgetPro")
        .env("FIELDREPORT_FEEDBACK_TYPE", "Mobile")
        .env("FIELDREPORT_API_KEY", sb.api_key())
        .envs(env.iter().copied())
        .output()
        .expect("run the cli")
}

/// Retries fast enough for a test to wait them out.
const FAST_RETRY: &[(&str, &str)] = &[
    ("FIELDREPORT_RETRY_BASE_SECS", "0.05"),
    ("FIELDREPORT_RETRY_MAX_SECS", "0.2"),
];

#[test]
fn a_rejected_attachment_has_its_own_exit_code_in_flush_and_status() {
    let sb = sandbox();
    let dir = tempdir();
    let core = dir.path().join("big50.bin");
    std::fs::write(&core, vec![7u8; 5000]).unwrap();
    let outbox = dir.path().join("outbox");
    let attach = format!("Capture={}", core.display());
    let o = cli(
        &outbox,
        &sb,
        &["submit", "--summary", "core dump", "--attach", &attach],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let o = cli(&outbox, &sb, &["flush"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(5), "{out}{}", stderr(&o));
    assert!(out.contains("report 1: delivered BUG-0001"), "{out}");
    assert!(out.contains("attachment rejected: big50.bin"), "{out}");
    assert!(out.contains("Capture"), "{out}");
    assert!(out.contains("attachments rejected: 1 report"), "{out}");
    assert!(sb.uploads().is_empty());

    // status says the same, for the queue and for the report.
    let o = cli(&outbox, &sb, &["status"]);
    assert_eq!(o.status.code(), Some(5), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("attachments rejected"),
        "{}",
        stdout(&o)
    );
    let o = cli(&outbox, &sb, &["status", "--json"]);
    assert_eq!(o.status.code(), Some(5));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["attachmentsRejected"], 1);
    assert_eq!(v["pending"], 0);
    let o = cli(&outbox, &sb, &["status", "--id", "1"]);
    assert_eq!(o.status.code(), Some(5));
    assert!(stdout(&o).contains("rejected"), "{}", stdout(&o));

    // A fully delivered report is still 0; purging the partial one clears 5.
    let o = cli(&outbox, &sb, &["submit", "--summary", "clean"]);
    assert_eq!(o.status.code(), Some(0));
    let o = cli(&outbox, &sb, &["flush", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["attachmentsRejected"], 0);
    assert_eq!(cli(&outbox, &sb, &["purge", "1"]).status.code(), Some(0));
    assert_eq!(cli(&outbox, &sb, &["status"]).status.code(), Some(0));
}

#[test]
fn the_sandbox_banner_and_help_list_the_file_elements() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_fieldreport"))
        .args(["sandbox", "--port", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let banner: Vec<String> = (0..4).map(|_| lines.next().unwrap().unwrap()).collect();
    child.kill().unwrap();
    child.wait().unwrap();
    // The line the bindings' tests parse.
    assert!(
        first.starts_with("Centercode sandbox listening at http://127.0.0.1:")
            && first.ends_with("/api/v1"),
        "{first}"
    );
    let banner = banner.join("\n");
    assert!(
        banner.contains("file elements: Screenshot (several files), CrashLog (one file), Log"),
        "{banner}"
    );
    assert!(banner.contains("feedback lookup: Lookup"), "{banner}");
    for args in [&["help"][..], &["sandbox", "--help"]] {
        let o = Command::new(env!("CARGO_BIN_EXE_fieldreport"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0));
        assert!(
            stdout(&o).contains("Screenshot"),
            "{args:?}: {}",
            stdout(&o)
        );
    }
}

#[test]
fn status_and_flush_refuse_a_directory_without_an_outbox() {
    let sb = sandbox();
    let dir = tempdir();
    let elsewhere = dir.path().join("typo");
    for args in [
        &["status"][..],
        &["flush"],
        &["retry", "1"],
        &["purge", "1"],
    ] {
        let o = cli(&elsewhere, &sb, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains("holds no outbox"), "{}", stderr(&o));
        assert!(!elsewhere.exists(), "{args:?} created nothing");
    }
    // An empty existing directory is no outbox either.
    let o = cli(dir.path(), &sb, &["status"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!dir.path().join("outbox.sqlite").exists());
}

#[test]
fn version_and_per_command_help_exit_0() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_fieldreport"))
            .args(args)
            .output()
            .unwrap()
    };
    let o = run(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        stdout(&o).trim(),
        format!("fieldreport {}", fieldreport::VERSION)
    );
    for args in [&["flush", "--help"][..], &["help", "flush"]] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        let out = stdout(&o);
        assert!(out.contains("--timeout"), "{args:?}: {out}");
        assert!(!out.contains("--summary"), "only flush's own: {out}");
    }
    let o = run(&["submit", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout(&o).contains("--attach <ELEMENT=PATH>"),
        "{}",
        stdout(&o)
    );
    // The global help lists every exit code and the rig's caps.
    let o = run(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    for want in [
        "5  reports delivered",
        "--max-outbox-bytes",
        "[default: 4GiB]",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
    // Usage errors are bad input (2), with a suggestion for a typo.
    let o = run(&["submit", "--sumary", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--summary"), "{}", stderr(&o));
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["completions", "bash"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("fieldreport"));
}

#[test]
fn options_go_before_or_after_the_command() {
    let sb = sandbox();
    let dir = tempdir();
    let outbox = dir.path().join("outbox");
    let ob = outbox.to_str().unwrap();
    let env_outbox = dir.path().join("not-this-one");
    let o = cli(
        &env_outbox,
        &sb,
        &["--outbox", ob, "submit", "--summary", "a"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = cli(
        &env_outbox,
        &sb,
        &["submit", "--summary", "b", "--outbox", ob],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "2", "the same outbox");
    assert!(!env_outbox.exists(), "the flag wins over the variable");
}

#[test]
fn company_and_a_base_url_conflict() {
    let sb = sandbox();
    let dir = tempdir();
    let o = cli(
        dir.path(),
        &sb,
        &["--company", "acme", "submit", "--summary", "x"],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("--company and FIELDREPORT_BASE_URL both say where to deliver"),
        "{err}"
    );
    let o = cli_with(
        dir.path(),
        &sb,
        &[("FIELDREPORT_COMPANY", "acme")],
        &["submit", "--summary", "x"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("FIELDREPORT_COMPANY and FIELDREPORT_BASE_URL"));
    // An empty variable is unset, as before.
    let o = cli_with(
        dir.path(),
        &sb,
        &[("FIELDREPORT_COMPANY", "")],
        &["submit", "--summary", "x"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn submit_crash_and_batch_print_json_when_asked() {
    let sb = sandbox();
    let dir = tempdir();
    let log = dir.path().join("crash.log");
    std::fs::write(&log, "boom\n").unwrap();
    let o = cli(dir.path(), &sb, &["submit", "--summary", "x", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v, serde_json::json!({"id": 1}));
    let o = cli(
        dir.path(),
        &sb,
        &["crash", "--log", log.to_str().unwrap(), "--json"],
    );
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v, serde_json::json!({"id": 2}));
    let file = dir.path().join("b.jsonl");
    std::fs::write(&file, "{\"summary\": \"a\"}\n{\"summary\": \"b\"}\n").unwrap();
    let o = cli(
        dir.path(),
        &sb,
        &["batch", file.to_str().unwrap(), "--json"],
    );
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v, serde_json::json!({"ids": [3, 4]}));
    // Commands without JSON output refuse the flag.
    let o = cli(dir.path(), &sb, &["purge", "1", "--json"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_missing_crash_log_is_named_as_one() {
    let sb = sandbox();
    let dir = tempdir();
    let o = cli(dir.path(), &sb, &["crash", "--log", "/nope"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("crash log /nope: No such file"), "{err}");
    assert!(!err.contains("attachment"), "{err}");
}

#[test]
fn a_report_that_can_never_fit_is_bad_input_naming_the_option() {
    let sb = sandbox_unlimited();
    let dir = tempdir();
    let outbox = dir.path().join("outbox");
    let core = dir.path().join("core");
    std::fs::write(&core, vec![1u8; 5000]).unwrap();
    let attach = format!("Log={}", core.display());
    let submit = ["submit", "--summary", "core", "--attach", &attach];

    let small = [("FIELDREPORT_MAX_OUTBOX_BYTES", "1000")];
    let o = cli_with(&outbox, &sb, &small, &submit);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("more than the outbox's cap of 1000 bytes"),
        "{err}"
    );
    assert!(err.contains("never fit: raise --max-outbox-bytes"), "{err}");
    // Raising the cap lets it in (the option, in a unit).
    let o = cli(
        &outbox,
        &sb,
        &[&submit[..], &["--max-outbox-bytes", "8KiB"]].concat(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let o = cli(
        &outbox,
        &sb,
        &[&submit[..], &["--max-attachment-bytes", "4kB"]].concat(),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o)
            .contains("raise --max-attachment-bytes (FIELDREPORT_MAX_ATTACHMENT_BYTES) to 5000"),
        "{}",
        stderr(&o)
    );
    // Past Centercode's limit the option cannot go; the library says so by name.
    let o = cli(&outbox, &sb, &["--max-attachment-bytes", "3GiB", "status"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--max-attachment-bytes must be between"),
        "{}",
        stderr(&o)
    );

    // A batch larger than the count cap.
    let file = dir.path().join("three.jsonl");
    std::fs::write(
        &file,
        "{\"summary\": \"a\"}\n{\"summary\": \"b\"}\n{\"summary\": \"c\"}\n",
    )
    .unwrap();
    let o = cli(
        &outbox,
        &sb,
        &["--max-reports", "2", "batch", file.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("raise --max-reports"), "{}", stderr(&o));

    let o = cli(&outbox, &sb, &["status", "--json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["pending"], 1, "only the report that fitted: {v}");
}

#[test]
fn a_flush_during_backoff_says_why_and_when_in_human_time() {
    let sb = sandbox();
    let dir = tempdir();
    let slow = [
        ("FIELDREPORT_RETRY_BASE_SECS", "600"),
        ("FIELDREPORT_RETRY_MAX_SECS", "1200"),
    ];
    let o = cli_with(dir.path(), &sb, &slow, &["submit", "--summary", "x"]);
    assert_eq!(o.status.code(), Some(0));
    let o = cli_with(dir.path(), &sb, &slow, &["status"]);
    assert!(stdout(&o).contains("next attempt: now"), "{}", stdout(&o));
    sb.inject(Fault::status(503));
    let o = cli_with(dir.path(), &sb, &slow, &["flush"]);
    assert_eq!(o.status.code(), Some(3));
    let o = cli_with(dir.path(), &sb, &slow, &["flush"]);
    assert_eq!(o.status.code(), Some(3));
    let out = stdout(&o);
    assert!(out.contains("nothing sent: no report is due yet"), "{out}");
    // Full jitter: anywhere up to 10 min away, in minutes or seconds.
    let next = out
        .lines()
        .find_map(|l| l.strip_prefix("next attempt: "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        next == "now" || (next.starts_with("in ") && next.ends_with(" UTC)")),
        "{next}"
    );
    let o = cli_with(dir.path(), &sb, &slow, &["status", "--id", "1"]);
    let out = stdout(&o);
    assert!(out.contains("attempts: 1, next attempt: "), "{out}");
    assert!(out.contains("submitted: "), "{out}");
    // JSON keeps Unix seconds.
    let o = cli_with(dir.path(), &sb, &slow, &["status", "--json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["nextAttemptAt"].as_u64().unwrap() > 1_700_000_000, "{v}");
}

#[test]
fn lookup_options_keep_a_lost_answer_from_making_a_duplicate() {
    for lookup in [true, false] {
        let sb = sandbox();
        let dir = tempdir();
        let mut env = FAST_RETRY.to_vec();
        if lookup {
            env.extend([
                ("FIELDREPORT_CLIENT_ID_FIELD", "ClientId"),
                ("FIELDREPORT_LOOKUP", "Lookup"),
            ]);
        }
        let o = cli_with(dir.path(), &sb, &env, &["submit", "--summary", "ambiguous"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        sb.inject(Fault::ActThenDrop);
        let mut code = None;
        for _ in 0..40 {
            let o = cli_with(dir.path(), &sb, &env, &["flush"]);
            code = o.status.code();
            if code == Some(0) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert_eq!(code, Some(0), "lookup {lookup}: delivered in the end");
        let o = cli_with(dir.path(), &sb, &env, &["status", "--json"]);
        let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
        if lookup {
            assert_eq!(sb.feedback().len(), 1, "found by lookup, not posted again");
            assert_eq!(v["ambiguousResends"], 0);
            assert!(sb.feedback()[0].body["ClientId"].is_string());
        } else {
            assert_eq!(sb.feedback().len(), 2, "without lookup, posted twice");
            assert_eq!(v["ambiguousResends"], 1);
            let o = cli_with(dir.path(), &sb, &env, &["status"]);
            assert!(stdout(&o).contains("--client-id-field and --lookup"));
        }
    }
    // One without the other is refused by name.
    let sb = sandbox();
    let dir = tempdir();
    let o = cli(
        dir.path(),
        &sb,
        &["--lookup", "Lookup", "submit", "--summary", "x"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--client-id-field and --lookup go together"),
        "{}",
        stderr(&o)
    );
}

/// `sandbox --kind abc|apptentive` serves that server's routes, with its
/// own way of taking the key, and says so in its banner.
#[test]
fn the_sandbox_stands_in_for_abc_and_apptentive() {
    use std::io::{BufRead, BufReader};
    let post = |url: String, headers: &[(&str, &str)], body: &str| -> (u16, String) {
        let mut req = ureq::post(url).config().http_status_as_error(false).build();
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut answer = req.send(body).unwrap();
        (
            answer.status().as_u16(),
            answer.body_mut().read_to_string().unwrap(),
        )
    };
    for kind in ["abc", "apptentive"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fieldreport"))
            .args(["sandbox", "--kind", kind, "--port", "0"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let second = lines.next().unwrap().unwrap();
        let base = first.rsplit(' ').next().unwrap().to_string();
        assert!(base.starts_with("http://127.0.0.1:"), "{first}");
        let (with_key, without_key, refused) = if kind == "abc" {
            assert!(
                first.starts_with("ABC User Feedback sandbox listening at"),
                "{first}"
            );
            assert!(second.contains("x-api-key"), "{second}");
            let key = second.split_whitespace().nth(4).unwrap().to_string();
            let url = format!("{base}/api/projects/1/channels/1/feedbacks");
            let json = ("Content-Type", "application/json");
            (
                post(
                    url.clone(),
                    &[json, ("x-api-key", &key)],
                    r#"{"message":"from the cli test"}"#,
                ),
                post(url, &[json], r#"{"message":"no key"}"#),
                403,
            )
        } else {
            assert!(
                first.starts_with("Apptentive sandbox listening at"),
                "{first}"
            );
            let token = second.rsplit(' ').next().unwrap().to_string();
            let url = format!("{base}/records");
            let json = ("Content-Type", "application/json");
            let auth = format!("OAuth {token}");
            let body = r#"{"feedback":{"feedback":"from the cli test","type":"bug"},"date":"12/07/2026 05:52PM+0000"}"#;
            (
                post(url.clone(), &[json, ("Authorization", &auth)], body),
                post(url, &[json], body),
                401,
            )
        };
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(with_key.0, 201, "{kind}: {}", with_key.1);
        assert!(with_key.1.contains("\"id\""), "{kind}: {}", with_key.1);
        assert_eq!(without_key.0, refused, "{kind}: {}", without_key.1);
    }
}

/// Runs the CLI with a terminal as its stdout and stderr (through
/// util-linux's `script`); `None` where `script` is not installed.
fn cli_on_a_terminal(dir: &Path, sb: &Sandbox, args: &str) -> Option<String> {
    let o = Command::new("script")
        .args([
            "-qec",
            &format!("{} {args}", env!("CARGO_BIN_EXE_fieldreport")),
            "/dev/null",
        ])
        .env("FIELDREPORT_OUTBOX", dir)
        .env("FIELDREPORT_BASE_URL", sb.base_url())
        .env("FIELDREPORT_PROJECT", "WidgetPro")
        .env("FIELDREPORT_FEEDBACK_TYPE", "Mobile")
        .env("FIELDREPORT_API_KEY", sb.api_key())
        .output()
        .ok()?;
    assert!(o.status.success(), "{}", stderr(&o));
    Some(stdout(&o))
}

#[test]
fn progress_shows_on_a_terminal_only_and_never_with_quiet_or_json() {
    let sb = sandbox();
    let dir = tempdir();
    let big = dir.path().join("big.bin");
    std::fs::write(&big, vec![7u8; 3 * 1024 * 1024]).unwrap();
    let attach = format!("Screenshot={}", big.display());
    let submit = |extra: &[&str]| {
        let mut args = vec!["submit", "--summary", "big", "--attach", &attach];
        args.extend_from_slice(extra);
        let o = cli(dir.path(), &sb, &args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        o
    };
    // stderr a pipe: nothing but what a script reads.
    let o = submit(&[]);
    assert_eq!(stderr(&o), "");
    let o = cli(dir.path(), &sb, &["flush"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "", "no progress on a pipe");
    assert_eq!(sb.uploads().len(), 1);

    // A terminal: the upload's bar, named, up to its size.
    submit(&[]);
    let Some(shown) = cli_on_a_terminal(dir.path(), &sb, "flush") else {
        eprintln!("`script` is not installed: the terminal half is not run");
        return;
    };
    assert!(shown.contains("report 2: big.bin"), "{shown}");
    assert!(shown.contains("3.00 MiB/3.00 MiB"), "{shown}");
    // --quiet and --json: none, even on a terminal.
    submit(&[]);
    let shown = cli_on_a_terminal(dir.path(), &sb, "--quiet flush").unwrap();
    assert!(!shown.contains("big.bin"), "{shown}");
    submit(&[]);
    let shown = cli_on_a_terminal(dir.path(), &sb, "flush --json").unwrap();
    assert!(!shown.contains("big.bin"), "{shown}");
    assert_eq!(sb.uploads().len(), 4);
}
