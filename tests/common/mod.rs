//! Helpers shared by the integration tests: a sandbox, a fast policy, a
//! temporary outbox, hashing, and a recording listener.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fieldreport::sandbox::{Sandbox, SandboxConfig};
use fieldreport::{Client, Config, Event, Listener, ReportFilter, ServerConfig};
use sha2::{Digest, Sha256};

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn sandbox() -> Sandbox {
    Sandbox::start(SandboxConfig::default()).expect("sandbox starts")
}

pub fn sandbox_unlimited() -> Sandbox {
    Sandbox::start(SandboxConfig {
        rate_limit_per_sec: None,
        ..SandboxConfig::default()
    })
    .expect("sandbox starts")
}

/// A config for `dir` and `sb` with retries fast enough for tests.
pub fn config(dir: &std::path::Path, sb: &Sandbox) -> Config {
    config_at(dir, &sb.base_url(), sb.api_key())
}

/// The same, for a sandbox known only by its URL and key (a child process
/// of a test).
pub fn config_at(dir: &std::path::Path, base_url: &str, api_key: &str) -> Config {
    let mut c = Config::new(
        dir,
        ServerConfig::with_base_url(base_url, "WidgetPro", "Mobile", api_key),
    );
    c.policy.retry_base = Duration::from_millis(20);
    c.policy.retry_max = Duration::from_millis(200);
    c.policy.request_timeout = Duration::from_secs(5);
    c.policy.connect_timeout = Duration::from_secs(2);
    c.app.name = Some("tests".into());
    c
}

pub fn open(dir: &std::path::Path, sb: &Sandbox) -> Client {
    Client::open(config(dir, sb)).expect("client opens")
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("fieldreport-test-")
        .tempdir()
        .expect("tempdir")
}

/// Flushes until nothing is pending (waiting out backoff), at most `tries` times.
pub fn drain(client: &Client, tries: u32) -> fieldreport::FlushResult {
    let mut last = client.flush(Duration::from_secs(20)).expect("flush");
    for _ in 0..tries {
        if last.pending == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
        last = client.flush(Duration::from_secs(20)).expect("flush");
    }
    last
}

#[derive(Default)]
pub struct Recorder(pub Mutex<Vec<Event>>);

impl Listener for Recorder {
    fn on_event(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

impl Recorder {
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder::default())
    }
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }
}

/// Everything observable about an outbox: its report rows and the names of
/// its attachment copies. Equal before and after a refused call.
///
/// A flush deletes delivered reports' copies on a helper thread, so the
/// copies are read once only the undelivered reports' remain (or after
/// ten seconds, and then the comparison shows what is left over).
pub fn snapshot(client: &Client, dir: &std::path::Path) -> (String, Vec<String>) {
    let list = client.reports(&ReportFilter::default()).expect("list");
    let owned: usize = list
        .iter()
        .filter(|r| {
            matches!(
                r.state,
                fieldreport::ReportState::Queued
                    | fieldreport::ReportState::Created
                    | fieldreport::ReportState::Dead
            )
        })
        .map(|r| r.attachments.len())
        .sum();
    let read = || {
        let mut files: Vec<String> = std::fs::read_dir(dir.join("files"))
            .expect("files/")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        files
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut files = read();
    while files.len() > owned && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        files = read();
    }
    (format!("{list:?}"), files)
}
