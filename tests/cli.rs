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
    // http:// to a remote host is refused, naming the reason.
    let o = Command::new(env!("CARGO_BIN_EXE_fieldreport"))
        .args([
            "--outbox",
            outbox.to_str().unwrap(),
            "--base-url",
            "http://example.com/api/v1",
        ])
        .args([
            "--project",
            "P",
            "--feedback-type",
            "T",
            "--api-key",
            "k",
            "status",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("clear text"));
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
