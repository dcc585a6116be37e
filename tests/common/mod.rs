//! Helpers shared by the integration tests: a sandbox, a fast policy, a
//! temporary outbox, hashing, and a recording listener.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fieldreport::sandbox::{Sandbox, SandboxConfig};
use fieldreport::{
    AbcConfig, ApptentiveConfig, Client, Config, Event, Listener, ReportFilter, ServerConfig,
};
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

/// One destination under test: the suites that hold for every server run
/// once per value (`Dest::ALL`), each against that destination's sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest {
    Centercode,
    Abc,
    /// ABC sending images by presigned upload (`with_presigned_images`).
    AbcPresigned,
    Apptentive,
}

impl Dest {
    /// Every destination fieldreport delivers to.
    pub const ALL: [Dest; 3] = [Dest::Centercode, Dest::Abc, Dest::Apptentive];
    /// The destinations other than Centercode, ABC in both image modes.
    pub const OTHERS: [Dest; 3] = [Dest::Abc, Dest::AbcPresigned, Dest::Apptentive];

    /// The name used in figures and child-process environments.
    pub fn name(self) -> &'static str {
        match self {
            Dest::Centercode => "centercode",
            Dest::Abc => "abc",
            Dest::AbcPresigned => "abc_presigned",
            Dest::Apptentive => "apptentive",
        }
    }

    /// The destination called `name` (as [`Dest::name`] writes it).
    pub fn from_name(name: &str) -> Option<Dest> {
        Dest::ALL.into_iter().find(|d| d.name() == name)
    }

    /// This destination's sandbox settings, as a test starts them.
    pub fn sandbox_config(self) -> SandboxConfig {
        match self {
            Dest::Centercode => SandboxConfig::default(),
            Dest::Abc | Dest::AbcPresigned => SandboxConfig::abc(),
            Dest::Apptentive => SandboxConfig::apptentive(),
        }
    }

    /// This destination's sandbox.
    pub fn sandbox(self) -> Sandbox {
        Sandbox::start(self.sandbox_config()).expect("sandbox starts")
    }

    /// The same, without the server's own rate limit (Centercode's 10 a
    /// second; the others have none).
    pub fn sandbox_unlimited(self) -> Sandbox {
        Sandbox::start(SandboxConfig {
            rate_limit_per_sec: None,
            ..self.sandbox_config()
        })
        .expect("sandbox starts")
    }

    /// A config for `dir` and `sb`, with the key `key`.
    pub fn config(self, dir: &std::path::Path, sb: &Sandbox, key: &str) -> Config {
        self.config_at(dir, &sb.base_url(), key)
    }

    /// A config for a sandbox known only by its URL (a child process of a
    /// test), with retries fast enough for tests. Centercode's is
    /// `config_at`'s; ABC maps every role its sandbox's channel has a field
    /// for, the client id included (so a lost answer is searched for).
    pub fn config_at(self, dir: &std::path::Path, base_url: &str, key: &str) -> Config {
        let mut c = match self {
            Dest::Centercode => return config_at(dir, base_url, key),
            Dest::Abc | Dest::AbcPresigned => Config::abc(
                dir,
                AbcConfig::new(
                    base_url,
                    "1",
                    "1",
                    key,
                    &[
                        ("description", "description"),
                        ("submitter", "submitter"),
                        ("crash_log", "crash_log"),
                        ("client_id", "client_id"),
                        ("images", "images"),
                        ("context.device.os_name", "os"),
                    ],
                )
                .map(|abc| match self {
                    Dest::AbcPresigned => abc.with_presigned_images(),
                    _ => abc,
                })
                .expect("ABC settings"),
            ),
            Dest::Apptentive => Config::apptentive(
                dir,
                ApptentiveConfig::new(base_url, key).expect("Apptentive settings"),
            ),
        };
        c.policy.retry_base = Duration::from_millis(20);
        c.policy.retry_max = Duration::from_millis(200);
        c.policy.request_timeout = Duration::from_secs(5);
        c.policy.connect_timeout = Duration::from_secs(2);
        c.app.version = Some("2.3.1".into());
        c
    }

    /// A client of `sb` in `dir`.
    pub fn open(self, dir: &std::path::Path, sb: &Sandbox) -> Client {
        Client::open(self.config(dir, sb, sb.api_key())).expect("client opens")
    }

    /// The status that means a refused key.
    pub fn refused_key_status(self) -> u16 {
        match self {
            Dest::Centercode | Dest::Apptentive => 401,
            Dest::Abc | Dest::AbcPresigned => 403,
        }
    }

    /// Whether a lost create answer is looked up before a re-send with
    /// `Dest::config`: ABC's client-id field is mapped; Apptentive cannot
    /// be asked; Centercode's lookup is not configured there.
    pub fn looks_up(self) -> bool {
        matches!(self, Dest::Abc | Dest::AbcPresigned)
    }

    /// The most requests a second the client sends with a policy of
    /// `per_sec`: ABC, which has no limit of its own, gets at most our
    /// polite default of 5.
    pub fn requests_per_sec(self, per_sec: u32) -> u32 {
        match self {
            Dest::Abc | Dest::AbcPresigned if per_sec > 0 => per_sec.min(5),
            _ => per_sec,
        }
    }

    /// The summary of a report as the server stored it (Apptentive's is
    /// the first line of `feedback.feedback`, which holds the description
    /// after it).
    pub fn summary_of(self, body: &serde_json::Value) -> String {
        let text = match self {
            Dest::Centercode => body["summary"].as_str(),
            Dest::Abc | Dest::AbcPresigned => body["message"].as_str(),
            Dest::Apptentive => body["feedback"]["feedback"].as_str(),
        };
        let text = text.unwrap_or_default();
        match self {
            Dest::Apptentive => text.lines().next().unwrap_or_default().to_string(),
            _ => text.to_string(),
        }
    }
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

/// The summaries of the feedback the sandbox received, in arrival order.
pub fn received_summaries(sb: &Sandbox) -> Vec<String> {
    sb.feedback()
        .iter()
        .map(|f| f.body["summary"].as_str().expect("a summary").to_string())
        .collect()
}

/// The schema version written in an outbox database (`PRAGMA user_version`).
pub fn user_version(db: &std::path::Path) -> i64 {
    rusqlite::Connection::open(db)
        .expect("open the database")
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version")
}

/// The schema version that this build writes: that of a fresh outbox.
pub fn current_schema_version() -> i64 {
    let dir = tempdir();
    let cfg = Config::new(
        dir.path(),
        ServerConfig::with_base_url("http://127.0.0.1:9/api/v1", "P", "T", "k"),
    );
    drop(Client::open(cfg).expect("a fresh outbox opens"));
    user_version(&dir.path().join("outbox.sqlite"))
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
    if files.len() > owned {
        println!(
            "snapshot: {} copies for {owned} attachments of undelivered reports after 10 s",
            files.len()
        );
    }
    (format!("{list:?}"), files)
}

/// Version 1 of the schema as released, frozen here: the upgrade path from
/// it must keep working whatever the current schema becomes.
pub const FROZEN_V1: &str = "
CREATE TABLE reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT, client_id TEXT NOT NULL UNIQUE, seq INTEGER NOT NULL,
    kind TEXT NOT NULL, state TEXT NOT NULL, summary TEXT NOT NULL, payload TEXT NOT NULL,
    context TEXT NOT NULL, submitted_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0, create_sent_at INTEGER, server_id TEXT,
    server_key TEXT, server_url TEXT, file_elements TEXT, last_error TEXT, finished_at INTEGER,
    bytes INTEGER NOT NULL);
CREATE TABLE attachments (
    id INTEGER PRIMARY KEY, report_id INTEGER NOT NULL REFERENCES reports(id) ON DELETE CASCADE,
    position INTEGER NOT NULL, element_key TEXT NOT NULL, file_name TEXT NOT NULL,
    content_type TEXT NOT NULL, stored_name TEXT NOT NULL UNIQUE, size INTEGER NOT NULL,
    sha256 TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending', reason TEXT);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
PRAGMA user_version = 1;
";
