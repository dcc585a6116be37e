//! The command line with `--destination abc|apptentive`: the same commands
//! and exit codes as for Centercode, each destination's own options, and
//! options that belong to another destination refused.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use fieldreport::sandbox::{Sandbox, SandboxConfig};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR-sample-image-bytes";

fn run(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fieldreport"));
    c.args(args).env("FIELDREPORT_OUTBOX", dir);
    for var in [
        "FIELDREPORT_BASE_URL",
        "FIELDREPORT_PROJECT",
        "FIELDREPORT_FEEDBACK_TYPE",
        "FIELDREPORT_API_KEY",
        "FIELDREPORT_DESTINATION",
        "FIELDREPORT_CHANNEL",
        "FIELDREPORT_MAP",
        "FIELDREPORT_ABC_IMAGES",
        "FIELDREPORT_COMPANY",
    ] {
        c.env_remove(var);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn abc_from_the_command_line_with_a_field_map_from_the_environment() {
    let sb = Sandbox::start(SandboxConfig::abc()).unwrap();
    let dir = tempdir();
    let shot = dir.path().join("shot.png");
    std::fs::write(&shot, PNG).unwrap();
    let base = sb.base_url();
    let env = [
        ("FIELDREPORT_DESTINATION", "abc"),
        ("FIELDREPORT_BASE_URL", base.as_str()),
        ("FIELDREPORT_API_KEY", sb.api_key()),
        ("FIELDREPORT_PROJECT", "1"),
        ("FIELDREPORT_CHANNEL", "1"),
        (
            "FIELDREPORT_MAP",
            "description=description,crash_log=crash_log,client_id=client_id,images=images,device.os_name=os",
        ),
    ];
    let outbox = dir.path().join("outbox");
    let shot_arg = format!("images={}", shot.display());
    let o = run(
        &outbox,
        &env,
        &[
            "submit",
            "--summary",
            "Button is off",
            "--attach",
            &shot_arg,
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let log = dir.path().join("crash.log");
    std::fs::write(&log, "SIGSEGV in draw()\n#0 0x00 in draw\n").unwrap();
    let o = run(&outbox, &env, &["crash", "--log", log.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run(&outbox, &env, &["flush"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let created = sb.feedback();
    assert_eq!(created.len(), 2);
    assert_eq!(created[0].body["message"], "Button is off");
    assert_eq!(created[0].body["os"], std::env::consts::OS);
    assert_eq!(created[0].body["images"].as_array().unwrap().len(), 1);
    assert!(created[1].body["crash_log"]
        .as_str()
        .unwrap()
        .contains("SIGSEGV in draw()"));
    assert!(!text(&o).contains(sb.api_key()));
}

#[test]
fn abc_images_by_presigned_upload_from_the_flag_or_the_environment() {
    for by_env in [false, true] {
        let sb = Sandbox::start(SandboxConfig::abc()).unwrap();
        let dir = tempdir();
        let shot = dir.path().join("shot.png");
        std::fs::write(&shot, PNG).unwrap();
        let base = sb.base_url();
        let mut env = vec![
            ("FIELDREPORT_DESTINATION", "abc"),
            ("FIELDREPORT_BASE_URL", base.as_str()),
            ("FIELDREPORT_API_KEY", sb.api_key()),
            ("FIELDREPORT_PROJECT", "1"),
            ("FIELDREPORT_CHANNEL", "1"),
            ("FIELDREPORT_MAP", "images=images"),
        ];
        let mut flag: Vec<&str> = vec!["--abc-images", "presigned"];
        if by_env {
            env.push(("FIELDREPORT_ABC_IMAGES", "presigned"));
            flag.clear();
        }
        let outbox = dir.path().join("outbox");
        let shot_arg = format!("images={}", shot.display());
        let submit = [
            flag.as_slice(),
            &["submit", "--summary", "Presigned", "--attach", &shot_arg],
        ]
        .concat();
        let o = run(&outbox, &env, &submit);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let o = run(&outbox, &env, &[flag.as_slice(), &["flush"]].concat());
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let uploads = sb.uploads();
        assert_eq!(uploads.len(), 1, "by_env {by_env}");
        assert_eq!(uploads[0].element_key, "presigned", "by_env {by_env}");
        assert_eq!(uploads[0].sha256_hex, sha256_hex(PNG));
        let created = sb.feedback();
        assert_eq!(created.len(), 1);
        let url = created[0].body["images"][0].as_str().unwrap();
        assert!(
            url.ends_with(&format!("/{}", uploads[0].file_name)),
            "{url}"
        );
        assert!(
            !text(&o).contains("X-Amz-Signature") && !text(&o).contains(sb.api_key()),
            "{}",
            text(&o)
        );
    }
}

#[test]
fn apptentive_from_the_command_line() {
    let sb = Sandbox::start(SandboxConfig::apptentive()).unwrap();
    let dir = tempdir();
    let base = sb.base_url();
    let env = [
        ("FIELDREPORT_BASE_URL", base.as_str()),
        ("FIELDREPORT_API_KEY", sb.api_key()),
    ];
    let o = run(
        dir.path(),
        &env,
        &[
            "--destination",
            "apptentive",
            "submit",
            "--summary",
            "Hello",
            "--field",
            "rating=5",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run(dir.path(), &env, &["--destination", "apptentive", "flush"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let created = sb.feedback();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].body["data"]["rating"], 5);
    // The token never shows, even in a failure.
    let o = run(
        dir.path(),
        &[
            ("FIELDREPORT_BASE_URL", base.as_str()),
            ("FIELDREPORT_API_KEY", "wrong-token"),
        ],
        &["--destination", "apptentive", "submit", "--summary", "x"],
    );
    assert_eq!(o.status.code(), Some(0));
    let o = run(
        dir.path(),
        &[
            ("FIELDREPORT_BASE_URL", base.as_str()),
            ("FIELDREPORT_API_KEY", "wrong-token"),
        ],
        &["--destination", "apptentive", "flush"],
    );
    assert_eq!(
        o.status.code(),
        Some(3),
        "paused: still pending: {}",
        text(&o)
    );
    assert!(!text(&o).contains("wrong-token"), "{}", text(&o));
}

#[test]
fn a_misfit_option_or_a_bad_setting_exits_2_and_names_it() {
    let dir = tempdir();
    let outbox = dir.path().join("never");
    let base = [
        ("FIELDREPORT_BASE_URL", "http://127.0.0.1:4000"),
        ("FIELDREPORT_API_KEY", "k"),
    ];
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "--destination",
                "abc",
                "--project",
                "1",
                "submit",
                "--summary",
                "x",
            ],
            "--channel",
        ),
        (
            &[
                "--destination",
                "abc",
                "--project",
                "one",
                "--channel",
                "1",
                "submit",
                "--summary",
                "x",
            ],
            "project_id",
        ),
        (
            &[
                "--destination",
                "abc",
                "--project",
                "1",
                "--channel",
                "1",
                "--map",
                "colour=c",
                "submit",
                "--summary",
                "x",
            ],
            "unknown role",
        ),
        (
            &[
                "--destination",
                "abc",
                "--project",
                "1",
                "--channel",
                "1",
                "--feedback-type",
                "Mobile",
                "submit",
                "--summary",
                "x",
            ],
            "--feedback-type does not apply to --destination abc",
        ),
        (
            &[
                "--destination",
                "apptentive",
                "--channel",
                "1",
                "submit",
                "--summary",
                "x",
            ],
            "--channel does not apply to --destination apptentive",
        ),
        (
            &[
                "--project",
                "P",
                "--feedback-type",
                "T",
                "--map",
                "summary=m",
                "submit",
                "--summary",
                "x",
            ],
            "--map does not apply to --destination centercode",
        ),
        (
            &[
                "--destination",
                "apptentive",
                "--abc-images",
                "presigned",
                "submit",
                "--summary",
                "x",
            ],
            "--abc-images does not apply to --destination apptentive",
        ),
        (
            &[
                "--project",
                "P",
                "--feedback-type",
                "T",
                "--abc-images",
                "multipart",
                "submit",
                "--summary",
                "x",
            ],
            "--abc-images does not apply to --destination centercode",
        ),
        (
            &[
                "--destination",
                "abc",
                "--project",
                "1",
                "--channel",
                "1",
                "--abc-images",
                "s3",
                "submit",
                "--summary",
                "x",
            ],
            "invalid value 's3' for '--abc-images <HOW>'",
        ),
    ];
    for (args, word) in cases {
        let o = run(&outbox, &base, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(word), "{args:?}: {}", text(&o));
        assert!(!outbox.exists(), "{args:?}: nothing is created");
    }
    // The variable is refused as the option is, and named.
    let o = run(
        &outbox,
        &[
            ("FIELDREPORT_BASE_URL", "http://127.0.0.1:4000"),
            ("FIELDREPORT_API_KEY", "k"),
            ("FIELDREPORT_ABC_IMAGES", "presigned"),
        ],
        &["--destination", "apptentive", "submit", "--summary", "x"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("FIELDREPORT_ABC_IMAGES does not apply to --destination apptentive"),
        "{}",
        text(&o)
    );
    assert!(!outbox.exists());
}

#[test]
fn the_demo_runs_against_each_kind_of_sandbox() {
    for destination in ["abc", "apptentive"] {
        let o = Command::new(env!("CARGO_BIN_EXE_fieldreport"))
            .args(["demo", "--destination", destination])
            .env_remove("FIELDREPORT_DESTINATION")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{destination}: {}", text(&o));
        let out = text(&o);
        assert!(out.contains(&format!("sandbox ({destination})")), "{out}");
        assert_eq!(out.matches(" delivered: ").count(), 2, "{out}");
        assert!(out.contains("demo: all reports delivered"), "{out}");
    }
}
