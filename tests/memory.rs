//! Attachments are copied in and uploaded as streams: the peak memory of a
//! process that submits and delivers a large file does not grow with it,
//! for each destination (Centercode: a 96 MiB upload; Apptentive: a 20 MB
//! file base64-encoded inside the record as it is sent; ABC: a 20 MB crash
//! log whose head and tail go into a text field).
//! Measured in a child process (this test binary re-executed) so that other
//! tests do not disturb the figure; Linux only (`VmHWM`).
#![cfg(target_os = "linux")]

mod common;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use common::*;
use fieldreport::sandbox::{Sandbox, SandboxConfig};
use fieldreport::{
    AbcConfig, ApptentiveConfig, Attachment, Client, Config, CrashReport, Feedback, ReportState,
    ServerConfig,
};

const CHILD_ENV: &str = "FIELDREPORT_MEMORY_CHILD";
const SIZE: u64 = 96 * 1024 * 1024;

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// The child's role: only does something when re-executed by the parent.
#[test]
fn child_role_large_upload() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.splitn(4, '|');
    let (kind, dir, file, base) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let mut cfg = match kind {
        "abc" => Config::abc(
            dir,
            AbcConfig::new(base, "1", "1", "sandbox-key", &[("crash_log", "crash_log")]).unwrap(),
        ),
        "apptentive" => {
            Config::apptentive(dir, ApptentiveConfig::new(base, "sandbox-token").unwrap())
        }
        _ => Config::new(
            dir,
            ServerConfig::with_base_url(base, "WidgetPro", "Mobile", "sandbox-key"),
        ),
    };
    cfg.policy.request_timeout = Duration::from_secs(60);
    let client = Client::open(cfg).unwrap();
    // Warm up: one small report through the same paths, then measure.
    client
        .submit(Feedback::new("warm-up").attach(Attachment::from_bytes(
            "Log",
            "w.txt",
            vec![1; 4096],
        )))
        .unwrap();
    client.flush(Duration::from_secs(30)).unwrap();
    let before = peak_rss_kib();
    let id = if kind == "abc" {
        client.submit_crash(CrashReport::from_file(file)).unwrap()
    } else {
        client
            .submit(Feedback::new("large").attach(Attachment::from_path("Log", file)))
            .unwrap()
    };
    let after_submit = peak_rss_kib();
    let r = client.flush(Duration::from_secs(120)).unwrap();
    assert_eq!(
        client.report(id).unwrap().state,
        ReportState::Delivered,
        "{r:?}"
    );
    let after_flush = peak_rss_kib();
    println!("PEAK_KIB {before} {after_submit} {after_flush}");
}

/// Peak memory of a child that submits and delivers `size` bytes to the
/// sandbox `sb` of `kind`: before, after submit, after delivery (KiB).
fn measure(kind: &str, sb: &Sandbox, size: u64) -> Vec<u64> {
    let dir = tempdir();
    let file = dir.path().join("large.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        // Text lines, so that a crash log compresses as a real one does.
        let chunk: Vec<u8> = (0..1024 * 1024u32)
            .map(|i| {
                if i % 64 == 63 {
                    b'\n'
                } else {
                    b'a' + (i % 23) as u8
                }
            })
            .collect();
        for _ in 0..size / chunk.len() as u64 {
            f.write_all(&chunk).unwrap();
        }
    }
    let outbox = dir.path().join("outbox");
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_role_large_upload",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            CHILD_ENV,
            format!(
                "{kind}|{}|{}|{}",
                outbox.display(),
                file.display(),
                sb.base_url()
            ),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{kind}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("PEAK_KIB ").map(|(_, v)| v.trim()))
        .unwrap_or_else(|| panic!("the child reports its peak: {stdout}"));
    let v: Vec<u64> = line.split(' ').map(|x| x.parse().unwrap()).collect();
    let growth_mib = (v[2].saturating_sub(v[0])) as f64 / 1024.0;
    println!(
        "{kind}: {} MiB: peak RSS {} KiB before, {} KiB after submit, {} KiB after delivery (+{growth_mib:.1} MiB)",
        size / (1024 * 1024),
        v[0],
        v[1],
        v[2]
    );
    assert!(
        growth_mib < 16.0,
        "{kind}: peak memory grew by {growth_mib:.1} MiB for a {} MiB file",
        size / (1024 * 1024)
    );
    v
}

#[test]
fn memory_stays_flat_for_a_large_attachment() {
    let sb = sandbox_unlimited();
    measure("centercode", &sb, SIZE);
    let up = &sb.uploads()[1];
    assert_eq!(up.size, SIZE);
}

#[test]
fn memory_stays_flat_for_a_large_file_to_each_other_destination() {
    const MB20: u64 = 20 * 1024 * 1024;
    let sb = Sandbox::start(SandboxConfig::apptentive()).unwrap();
    measure("apptentive", &sb, MB20);
    // The record carried the whole file, decoded byte-identical by the sandbox.
    let up = sb.uploads().into_iter().find(|u| u.size == MB20);
    assert!(up.is_some(), "{:?}", sb.uploads());
    let sb = Sandbox::start(SandboxConfig::abc()).unwrap();
    measure("abc", &sb, MB20);
    let created = sb.feedback();
    let text = created.last().unwrap().body["crash_log"]
        .as_str()
        .unwrap()
        .len();
    assert!(
        text > 512 * 1024 && text <= 1024 * 1024,
        "head and tail of the log: {text} bytes"
    );
}
