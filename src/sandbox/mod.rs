//! Local stand-ins for the servers fieldreport delivers to: Centercode's
//! External Feedback API (the default, described below), the ABC User
//! Feedback server ([`SandboxConfig::abc`], its routes documented in
//! `src/destinations/abc/sandbox.rs`) and Apptentive's records API
//! ([`SandboxConfig::apptentive`], `src/destinations/apptentive/sandbox.rs`).
//! The HTTP server, the faults, the records and the control endpoints are
//! shared; the key check, the error body, the rate-limit default and the
//! routes depend on [`SandboxKind`].
//!
//! [`Sandbox`] answers the endpoints fieldreport talks to — *Create Feedback*,
//! *Upload File Attachment* and *Project Feedback Lookup* — the way the
//! published API reference documents them: the same paths under `/api/v1`,
//! the `apiKey` query parameter, the standard error body
//! `{"status":N,"description":"..."}` (with `invalidParameters` where the
//! reference shows them), and the `X-Rate-Limit-Limit`,
//! `X-Rate-Limit-Remaining` and `X-Rate-Limit-Reset` headers on every
//! response, with the documented limit of 10 requests per second.
//!
//! It records everything it receives so tests can check it
//! ([`Sandbox::feedback`], [`Sandbox::uploads`], [`Sandbox::requests`]) and can
//! be told to misbehave ([`Fault`]) to exercise retries, lost answers and
//! malformed responses.
//!
//! It is a small HTTP/1.1 server on `std::net`: one thread per connection,
//! keep-alive, `Content-Length` and `chunked` request bodies, no async
//! runtime. Upload bodies are parsed as a stream and hashed as they pass, so
//! memory stays flat whatever the file size.
//!
//! ```no_run
//! use fieldreport::sandbox::{Fault, Sandbox, SandboxConfig};
//!
//! let sandbox = Sandbox::start(SandboxConfig::default())?;
//! println!("server {} key {}", sandbox.base_url(), sandbox.api_key());
//! sandbox.inject(Fault::status(503)); // the next request gets a 503
//! // ... point a client at sandbox.base_url() and deliver ...
//! for created in sandbox.feedback() {
//!     println!("{} {}", created.key, created.body);
//! }
//! sandbox.stop();
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Control endpoints
//!
//! Tests running in another process (Python, Kotlin, C) steer the sandbox
//! over HTTP. These paths need no `apiKey`, are never rate limited, never
//! consume a fault and are not recorded in [`Sandbox::requests`]:
//!
//! | request | effect |
//! |---|---|
//! | `GET /_sandbox/state` | `{"kind":"centercode"/"abc"/"apptentive","feedback":[..],"uploads":[..],"requests":[{"method","path","status","fault"}],"pending_faults":N}` |
//! | `POST /_sandbox/faults` | appends faults, e.g. `[{"status":503},{"status":429,"retry_after":"1"},{"drop":true},{"act_then_drop":true},{"delay_ms":500},{"body":"{not json","status":201}]` |
//! | `DELETE /_sandbox/faults` | clears the fault queue |
//! | `POST /_sandbox/config` | `{"rate_limit_per_sec": null or N, "api_key": "..."}`; absent fields are left unchanged |
//!
//! A `status` fault also takes `"rate_limit_reset": "<ISO date>"`; a `body`
//! fault without `status` answers 200.
//!
//! # Behaviour worth knowing
//!
//! - Order of checks for an API request: take the next fault, count the
//!   request in the rate window (faulted requests count too), answer 429 if
//!   over the limit, then 401 for a wrong key, then route (404 / 405 / 415 /
//!   400 / 413 / 201).
//! - The rate window is fixed: it opens at the first request after the
//!   previous one expired and lasts one second; `X-Rate-Limit-Reset` is its
//!   end and `Retry-After` the whole seconds left (at least 1). With no limit,
//!   `X-Rate-Limit-Remaining` reports 2147483647.
//! - Urls in answers (`url`, `fileElements[].url`, `feedbackUrl`) use the
//!   request's `Host` header, so they work from an emulator or another host.
//! - The whole request body is read before answering, even for a rejection
//!   (streamed and discarded), so clients that write before they read still
//!   see the answer; a client that sent `Expect: 100-continue` is answered at
//!   once instead and the connection closed.
//! - Feedback lookup matches the feedback key or any top-level string field;
//!   as the reference's own example sends `find=BUG-0001?page=1`, a value
//!   with `?` that matches nothing is retried with the part before the `?`.

pub(crate) mod http;
pub(crate) mod multipart;

pub use crate::destinations::abc::sandbox::{AbcChannel, AbcField, AbcFieldFormat};
#[cfg(test)]
mod tests;

use http::*;
use serde::{Serialize, Serializer};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The body of every 401 answer.
pub(crate) const UNAUTHORIZED: &str = "Unauthorized: the API key is missing or invalid.";
/// The description of a 400 answer, as in the reference.
pub(crate) const INVALID_REQUEST: &str = "The specified request is invalid.";
/// Longest request line or header line accepted.
pub(crate) const MAX_LINE: usize = 16 * 1024;
/// Most bytes of header lines accepted in one request head.
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// Most header fields accepted in one request head.
pub(crate) const MAX_HEADERS: usize = 100;
/// Largest Create Feedback body accepted (413 above it).
pub(crate) const MAX_JSON_BODY: u64 = 32 * 1024 * 1024;
/// Largest control request body accepted.
pub(crate) const MAX_CONTROL_BODY: u64 = 1024 * 1024;
/// A string field longer than this many characters is an invalid parameter.
pub(crate) const MAX_FIELD_CHARS: usize = 100_000;
/// How much of an unread request body is read (and discarded) before an
/// answer is written: all of it, so that clients which write the whole body
/// before reading (ureq) see the answer, e.g. a 413, rather than a broken pipe.
pub(crate) const DRAIN_LIMIT: u64 = u64::MAX;
/// Room allowed for multipart framing when judging a Content-Length early.
pub(crate) const MULTIPART_SLACK: u64 = 1024 * 1024;
/// Read timeout of accepted sockets: how often a blocked reader checks for stop.
pub(crate) const READ_TICK: Duration = Duration::from_secs(1);
/// Silence tolerated in the middle of a request, in read ticks (seconds).
pub(crate) const STALL_TICKS: u32 = 30;
/// Write timeout of accepted sockets.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// `X-Rate-Limit-Remaining` reported when the rate limit is off.
pub(crate) const UNLIMITED_REMAINING: u32 = i32::MAX as u32;
/// Size of the multipart scanner's read buffer.
pub(crate) const SCAN_CHUNK: usize = 64 * 1024;

// ---------------------------------------------------------------------------
// Configuration and public records
// ---------------------------------------------------------------------------

/// How a [`Sandbox`] is set up. `SandboxConfig::default()` mirrors the
/// reference's examples: project `WidgetPro`, feedback type `Mobile`, file
/// elements `Screenshot`, `CrashLog` and `Log`, 10 requests per second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// TCP port to listen on; 0 picks a free port (see [`Sandbox::port`]).
    pub port: u16,
    /// Address to bind; default `127.0.0.1`.
    pub bind: IpAddr,
    /// The API key every API request must carry as `apiKey`; default `sandbox-key`.
    pub api_key: String,
    /// The project key in the paths; default `WidgetPro`.
    pub project: String,
    /// The feedback type key in the paths; default `Mobile`.
    pub feedback_type: String,
    /// The file elements configured for the feedback type, returned as
    /// `fileElements` by Create Feedback (omitted when empty).
    pub file_elements: Vec<FileElementSpec>,
    /// Requests allowed per one-second window; `None` = unlimited. Default `Some(10)`.
    pub rate_limit_per_sec: Option<u32>,
    /// Prefix of feedback keys; default `BUG` gives `BUG-0001`, `BUG-0002`, ...
    pub key_prefix: String,
    /// Key of the feedback record lookup (`feedbackRecordLookups/{key}`);
    /// `None` disables the endpoint. Default `Some("Lookup")`.
    pub lookup_key: Option<String>,
    /// Largest accepted attachment in bytes; larger uploads get 413.
    /// Default 2 GiB − 1 (Centercode accepts uploads "under 2gb").
    pub max_upload_bytes: u64,
    /// Which server this sandbox stands in for; default Centercode.
    pub kind: SandboxKind,
    /// The ABC channel served when `kind` is [`SandboxKind::Abc`].
    pub abc: AbcChannel,
    /// Largest Apptentive record body accepted (413 above it), when `kind`
    /// is [`SandboxKind::Apptentive`]. Default 64 MiB.
    pub apptentive_max_record_bytes: u64,
}

/// Which server a [`Sandbox`] stands in for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SandboxKind {
    /// Centercode's External Feedback API: `apiKey` query parameter, 401,
    /// `{"status","description"}` errors, 10 requests per second.
    #[default]
    Centercode,
    /// The ABC User Feedback server: `x-api-key` header, 403, NestJS error
    /// bodies, no rate limit.
    Abc,
    /// Apptentive's records API: `Authorization: OAuth <token>`, 401, 422.
    Apptentive,
}

impl SandboxKind {
    /// The kind's name in `GET /_sandbox/state`.
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxKind::Centercode => "centercode",
            SandboxKind::Abc => "abc",
            SandboxKind::Apptentive => "apptentive",
        }
    }
}

impl SandboxConfig {
    /// An ABC User Feedback sandbox: project 1, channel 1 ([`AbcChannel::default`]),
    /// key `sandbox-key` in `x-api-key`, no rate limit (ABC has none).
    pub fn abc() -> SandboxConfig {
        SandboxConfig {
            kind: SandboxKind::Abc,
            rate_limit_per_sec: None,
            ..SandboxConfig::default()
        }
    }

    /// An Apptentive records sandbox: token `sandbox-token` in
    /// `Authorization: OAuth <token>`, no rate limit (none is documented).
    pub fn apptentive() -> SandboxConfig {
        SandboxConfig {
            kind: SandboxKind::Apptentive,
            api_key: "sandbox-token".to_string(),
            rate_limit_per_sec: None,
            ..SandboxConfig::default()
        }
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            port: 0,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            api_key: "sandbox-key".to_string(),
            project: "WidgetPro".to_string(),
            feedback_type: "Mobile".to_string(),
            file_elements: vec![
                FileElementSpec::new("Screenshot", "Screenshot", true),
                FileElementSpec::new("CrashLog", "Crash Log", false),
                FileElementSpec::new("Log", "Log", true),
            ],
            rate_limit_per_sec: Some(10),
            key_prefix: "BUG".to_string(),
            lookup_key: Some("Lookup".to_string()),
            max_upload_bytes: 2 * 1024 * 1024 * 1024 - 1,
            kind: SandboxKind::Centercode,
            abc: AbcChannel::default(),
            apptentive_max_record_bytes: 64 * 1024 * 1024,
        }
    }
}

/// One file element of the feedback form, to which attachments are uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileElementSpec {
    /// The element key used in upload paths, e.g. `Screenshot`.
    pub key: String,
    /// The human title, e.g. `Crash Log`.
    pub title: String,
    /// Whether more than one attachment may be uploaded to this element.
    pub accepts_multiple: bool,
}

impl FileElementSpec {
    /// A file element with this key, title and multiplicity.
    pub fn new(key: impl Into<String>, title: impl Into<String>, accepts_multiple: bool) -> Self {
        FileElementSpec {
            key: key.into(),
            title: title.into(),
            accepts_multiple,
        }
    }
}

/// A feedback the sandbox created (answered, or acted on before a dropped answer).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreatedFeedback {
    /// The feedback id returned as `id` (UUID-shaped hex).
    pub id: String,
    /// The feedback key returned as `key`, e.g. `BUG-0001`.
    pub key: String,
    /// The view url returned as `url`.
    pub url: String,
    /// The JSON object that was posted.
    pub body: Value,
    /// When it was created; serialized as an ISO-8601 UTC string.
    #[serde(serialize_with = "serialize_time")]
    pub at: SystemTime,
}

/// An attachment the sandbox accepted. The file itself is not kept: only its
/// size and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceivedUpload {
    /// The attachment id returned as `id`.
    pub id: String,
    /// The feedback key from the upload path.
    pub feedback_key: String,
    /// The file element key from the upload path.
    pub element_key: String,
    /// The `filename` of the multipart `file` part.
    pub file_name: String,
    /// The `Content-Type` of the `file` part (`application/octet-stream` when absent).
    pub content_type: String,
    /// Bytes in the file.
    pub size: u64,
    /// Lower-case hex SHA-256 of the file.
    pub sha256_hex: String,
}

/// One API request the sandbox saw, answered or not. Control requests
/// (`/_sandbox/...`) and bytes that did not parse as an HTTP request are not
/// recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    /// The HTTP method.
    pub method: String,
    /// The request path without the query string (so without the API key).
    pub path: String,
    /// The status answered; 0 when no answer was sent (a [`Fault::Drop`] or
    /// [`Fault::ActThenDrop`], or a client that went away mid-request).
    pub status: u16,
    /// When the request head had been read.
    #[serde(skip)]
    pub at: Instant,
    /// The fault that shaped this answer, e.g. `status 503`, `drop`,
    /// `act_then_drop`, `delay 500ms`, `body 201`.
    pub fault: Option<String>,
}

/// A misbehaviour to inject. Faults wait in a FIFO queue; each API request
/// takes the one at the front (see [`Sandbox::inject`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status with a standard error body
    /// `{"status":N,"description":"..."}`, adding `Retry-After` and/or
    /// overriding `X-Rate-Limit-Reset` when given. The request is not acted on.
    Status {
        /// The status to answer.
        status: u16,
        /// Value of a `Retry-After` header, e.g. `"1"` or an HTTP date.
        retry_after: Option<String>,
        /// Value of the `X-Rate-Limit-Reset` header instead of the computed one.
        rate_limit_reset: Option<String>,
    },
    /// Read the request, then close the connection without answering. Not acted on.
    Drop,
    /// Act on the request (create the feedback, store the upload), then close
    /// the connection without answering: the client cannot know it succeeded.
    ActThenDrop,
    /// Sleep this long, then handle the request normally.
    Delay(Duration),
    /// Answer this status with this raw body (`Content-Type: application/json`
    /// whatever it holds). The request is not acted on.
    Body {
        /// The status to answer.
        status: u16,
        /// The raw body, e.g. truncated JSON.
        body: String,
    },
}

impl Fault {
    /// A [`Fault::Status`] with no extra headers.
    pub fn status(status: u16) -> Fault {
        Fault::Status {
            status,
            retry_after: None,
            rate_limit_reset: None,
        }
    }

    /// A 429 answer with `Retry-After: <secs>`.
    pub fn rate_limited(retry_after_secs: u64) -> Fault {
        Fault::Status {
            status: 429,
            retry_after: Some(retry_after_secs.to_string()),
            rate_limit_reset: None,
        }
    }

    /// A 429 answer whose `X-Rate-Limit-Reset` is `reset`.
    pub fn rate_limited_until(reset: SystemTime) -> Fault {
        Fault::Status {
            status: 429,
            retry_after: None,
            rate_limit_reset: Some(iso8601(reset)),
        }
    }

    /// The short name used in [`RequestRecord::fault`].
    fn label(&self) -> String {
        match self {
            Fault::Status { status, .. } => format!("status {status}"),
            Fault::Drop => "drop".to_string(),
            Fault::ActThenDrop => "act_then_drop".to_string(),
            Fault::Delay(d) => format!("delay {}ms", d.as_millis()),
            Fault::Body { status, .. } => format!("body {status}"),
        }
    }

    /// Parses one fault of the control endpoint's JSON form.
    fn from_json(v: &Value) -> Result<Fault, String> {
        let o = v
            .as_object()
            .ok_or_else(|| "each fault must be a JSON object".to_string())?;
        let flag = |k: &str| o.get(k).and_then(Value::as_bool).unwrap_or(false);
        let text = |k: &str| -> Result<Option<String>, String> {
            match o.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Number(n)) => Ok(Some(n.to_string())),
                Some(_) => Err(format!("{k} must be a string or a number")),
            }
        };
        let status = match o.get("status") {
            None | Some(Value::Null) => None,
            Some(s) => Some(
                s.as_u64()
                    .filter(|n| (100..=599).contains(n))
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or_else(|| {
                        "status must be an HTTP status between 100 and 599".to_string()
                    })?,
            ),
        };
        if flag("drop") {
            return Ok(Fault::Drop);
        }
        if flag("act_then_drop") {
            return Ok(Fault::ActThenDrop);
        }
        if let Some(d) = o.get("delay_ms") {
            let ms = d
                .as_u64()
                .ok_or_else(|| "delay_ms must be a non-negative integer".to_string())?;
            return Ok(Fault::Delay(Duration::from_millis(ms)));
        }
        if let Some(b) = o.get("body") {
            let body = match b {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            return Ok(Fault::Body {
                status: status.unwrap_or(200),
                body,
            });
        }
        if let Some(status) = status {
            return Ok(Fault::Status {
                status,
                retry_after: text("retry_after")?,
                rate_limit_reset: text("rate_limit_reset")?,
            });
        }
        Err("unknown fault: expected status, drop, act_then_drop, delay_ms or body".to_string())
    }
}

pub(crate) fn serialize_time<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&iso8601(*t))
}

// ---------------------------------------------------------------------------
// The server handle
// ---------------------------------------------------------------------------

/// A running sandbox server. Dropping it (or [`Sandbox::stop`]) shuts it down:
/// the listener closes and open connections are closed.
pub struct Sandbox {
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Binds the listener, starts the accept thread and returns at once.
    pub fn start(config: SandboxConfig) -> io::Result<Sandbox> {
        let listener = TcpListener::bind(SocketAddr::new(config.bind, config.port))?;
        let local = listener.local_addr()?;
        let shared = Arc::new(Shared {
            keys: KeyNode::new(config.api_key.clone()),
            state: Mutex::new(State {
                rate_limit: config.rate_limit_per_sec,
                window: None,
                window_count: 0,
                faults: VecDeque::new(),
                feedback: Vec::new(),
                uploads: Vec::new(),
                requests: Vec::new(),
                next_key: 1,
                presigned: Vec::new(),
            }),
            config,
            local,
            stopping: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            conn_threads: Mutex::new(Vec::new()),
            next_conn: AtomicU64::new(0),
            id_counter: AtomicU64::new(0),
        });
        let for_thread = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name("sandbox-accept".to_string())
            .spawn(move || accept_loop(for_thread, listener))?;
        Ok(Sandbox {
            shared,
            accept: Some(accept),
        })
    }

    /// The API base url, e.g. `http://127.0.0.1:40123/api/v1` for Centercode,
    /// the server root `http://127.0.0.1:40123` for ABC (routes under `/api`)
    /// and Apptentive (`/records`). A sandbox bound to an unspecified address
    /// (`0.0.0.0`, `::`) reports the loopback address.
    pub fn base_url(&self) -> String {
        match self.shared.config.kind {
            SandboxKind::Centercode => format!("http://{}/api/v1", self.shared.default_authority()),
            SandboxKind::Abc | SandboxKind::Apptentive => {
                format!("http://{}", self.shared.default_authority())
            }
        }
    }

    /// Which server this sandbox stands in for.
    pub fn kind(&self) -> SandboxKind {
        self.shared.config.kind
    }

    /// The port listened on (the one picked when the config said 0).
    pub fn port(&self) -> u16 {
        self.shared.local.port()
    }

    /// The API key currently accepted.
    pub fn api_key(&self) -> &str {
        self.shared.keys.current()
    }

    /// Appends a fault to the queue; each API request consumes the front one.
    pub fn inject(&self, fault: Fault) {
        self.shared.lock().faults.push_back(fault);
    }

    /// Empties the fault queue.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Faults still waiting in the queue.
    pub fn pending_faults(&self) -> usize {
        self.shared.lock().faults.len()
    }

    /// Changes the rate limit (requests per one-second window); `None` = unlimited.
    pub fn set_rate_limit(&self, per_sec: Option<u32>) {
        self.shared.lock().rate_limit = per_sec;
    }

    /// Replaces the accepted API key, to simulate a revoked or rotated key.
    pub fn set_api_key(&self, key: &str) {
        self.shared.keys.set(key);
    }

    /// Every feedback created, in order. For ABC, `id` and `key` are the
    /// numeric feedback id as text and `body` the feedback's data (with image
    /// urls the server put in its IMAGES fields); for Apptentive, `id` and
    /// `key` are the record id and `body` the posted record, each `file`
    /// value replaced by `{"size","sha256"}` of the decoded file (the files
    /// are in [`Sandbox::uploads`]).
    pub fn feedback(&self) -> Vec<CreatedFeedback> {
        self.shared.lock().feedback.clone()
    }

    /// Every upload accepted, in order. For ABC: each image of a multipart
    /// create (`feedback_key` the feedback id, `element_key` the IMAGES
    /// field) and each presigned PUT (`feedback_key` empty, `element_key`
    /// `presigned`, `file_name` the object key). For Apptentive: each decoded
    /// `file` entry (`feedback_key` the record id, `element_key` its reference).
    pub fn uploads(&self) -> Vec<ReceivedUpload> {
        self.shared.lock().uploads.clone()
    }

    /// Every API request seen, including rejected and faulted ones, in the
    /// order their answers were decided.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock().requests.clone()
    }

    /// Stops accepting, closes the listener and open connections, and joins
    /// the server's threads. Dropping the sandbox does the same.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Serves until the process ends (for the `fieldreport sandbox` command).
    pub fn run_forever(mut self) -> ! {
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        loop {
            thread::park();
        }
    }

    fn shutdown(&mut self) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        let shared = &self.shared;
        shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocked accept() with a connection of our own.
        let mut wake = shared.local;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        if TcpStream::connect_timeout(&wake, Duration::from_secs(2)).is_ok() {
            let _ = accept.join();
        }
        // No new connection can be registered now; close the open ones.
        let conns: Vec<TcpStream> = lock(&shared.conns).drain().map(|(_, s)| s).collect();
        for conn in &conns {
            let _ = conn.shutdown(Shutdown::Both);
        }
        let threads: Vec<JoinHandle<()>> = lock(&shared.conn_threads).drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.shutdown();
    }
}

// ---------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------

pub(crate) struct Shared {
    pub(crate) config: SandboxConfig,
    pub(crate) local: SocketAddr,
    pub(crate) keys: KeyNode,
    pub(crate) state: Mutex<State>,
    pub(crate) stopping: AtomicBool,
    pub(crate) conns: Mutex<HashMap<u64, TcpStream>>,
    pub(crate) conn_threads: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) next_conn: AtomicU64,
    pub(crate) id_counter: AtomicU64,
}

pub(crate) struct State {
    pub(crate) rate_limit: Option<u32>,
    /// Start of the current one-second window (monotonic and wall clock).
    pub(crate) window: Option<(Instant, SystemTime)>,
    pub(crate) window_count: u32,
    pub(crate) faults: VecDeque<Fault>,
    pub(crate) feedback: Vec<CreatedFeedback>,
    pub(crate) uploads: Vec<ReceivedUpload>,
    pub(crate) requests: Vec<RequestRecord>,
    pub(crate) next_key: u64,
    /// ABC: signatures of the presigned urls handed out, with their object keys.
    pub(crate) presigned: Vec<(String, String)>,
}

/// The rate-limit view of one answer.
pub(crate) struct RateInfo {
    pub(crate) remaining: u32,
    pub(crate) reset: SystemTime,
    pub(crate) limited: bool,
    pub(crate) retry_after_secs: u64,
    /// Whether answers carry Centercode's `X-Rate-Limit-*` headers.
    pub(crate) headers: bool,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// `host:port` to reach this server by default.
    pub(crate) fn default_authority(&self) -> String {
        let port = self.local.port();
        match self.local.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => format!("127.0.0.1:{port}"),
            IpAddr::V4(ip) => format!("{ip}:{port}"),
            IpAddr::V6(ip) if ip.is_unspecified() => format!("[::1]:{port}"),
            IpAddr::V6(ip) => format!("[{ip}]:{port}"),
        }
    }

    /// `http://host:port` as the client addressed us (its `Host` header), so
    /// that returned urls work from an emulator or another machine too.
    pub(crate) fn public_base(&self, head: &Head) -> String {
        if let Some(host) = head.header("host") {
            let host = host.trim();
            let plausible = !host.is_empty()
                && host.len() <= 255
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b));
            if plausible {
                return format!("http://{host}");
            }
        }
        format!("http://{}", self.default_authority())
    }

    /// Counts one API request (when `count`) in the fixed one-second window
    /// and says whether it is over the limit.
    pub(crate) fn rate_check(&self, count: bool) -> RateInfo {
        let now = Instant::now();
        let now_wall = SystemTime::now();
        let mut st = self.lock();
        let current = st
            .window
            .filter(|(start, _)| now.duration_since(*start) < Duration::from_secs(1));
        let (start, start_wall, used) = match current {
            Some((start, wall)) => (start, wall, st.window_count),
            None if count => {
                st.window = Some((now, now_wall));
                st.window_count = 0;
                (now, now_wall, 0)
            }
            None => (now, now_wall, 0),
        };
        let used = if count {
            st.window_count = used.saturating_add(1);
            st.window_count
        } else {
            used
        };
        let reset = start_wall + Duration::from_secs(1);
        let until_reset = (start + Duration::from_secs(1)).saturating_duration_since(now);
        let retry_after_secs = until_reset.as_secs() + u64::from(until_reset.subsec_nanos() > 0);
        let headers = self.config.kind == SandboxKind::Centercode;
        match st.rate_limit {
            None => RateInfo {
                remaining: UNLIMITED_REMAINING,
                reset,
                limited: false,
                retry_after_secs: retry_after_secs.max(1),
                headers,
            },
            Some(limit) => RateInfo {
                remaining: limit.saturating_sub(used),
                reset,
                limited: count && used > limit,
                retry_after_secs: retry_after_secs.max(1),
                headers,
            },
        }
    }

    pub(crate) fn next_fault(&self) -> Option<Fault> {
        self.lock().faults.pop_front()
    }

    pub(crate) fn record(&self, head: &Head, status: u16, fault: Option<String>, at: Instant) {
        self.lock().requests.push(RequestRecord {
            method: head.method.clone(),
            path: head.path.clone(),
            status,
            at,
            fault,
        });
    }

    /// 16 fresh pseudo-random bytes (unique per sandbox and call).
    pub(crate) fn fresh_bytes(&self) -> [u8; 16] {
        let n = self.id_counter.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let mut h = Sha256::new();
        h.update(n.to_le_bytes());
        h.update(nanos.to_le_bytes());
        h.update(self.local.port().to_le_bytes());
        h.update(std::process::id().to_le_bytes());
        let digest = h.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        out
    }

    pub(crate) fn fresh_uuid(&self) -> String {
        let mut b = self.fresh_bytes();
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h = hex(&b);
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }

    /// Sleeps, waking early when the sandbox stops.
    pub(crate) fn sleep(&self, d: Duration) {
        let deadline = Instant::now() + d;
        while !self.is_stopping() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}

/// An append-only chain of API keys; the last one is current. It lets
/// [`Sandbox::api_key`] hand out a `&str` while the key can still be rotated,
/// without locks or `unsafe`.
pub(crate) struct KeyNode {
    pub(crate) key: String,
    pub(crate) next: OnceLock<Box<KeyNode>>,
}

impl KeyNode {
    fn new(key: String) -> KeyNode {
        KeyNode {
            key,
            next: OnceLock::new(),
        }
    }

    fn last(&self) -> &KeyNode {
        let mut node = self;
        while let Some(next) = node.next.get() {
            node = next;
        }
        node
    }

    pub(crate) fn current(&self) -> &str {
        &self.last().key
    }

    fn set(&self, key: &str) {
        if self.current() == key {
            return;
        }
        let mut node = Box::new(KeyNode::new(key.to_string()));
        loop {
            match self.last().next.set(node) {
                Ok(()) => return,
                Err(back) => node = back,
            }
        }
    }
}

impl Drop for KeyNode {
    fn drop(&mut self) {
        // Unlink iteratively so a long chain cannot overflow the stack.
        let mut next = self.next.take();
        while let Some(mut node) = next {
            next = node.next.take();
        }
    }
}

// ---------------------------------------------------------------------------
// Control endpoints
// ---------------------------------------------------------------------------

pub(crate) fn handle_control(
    shared: &Shared,
    head: &Head,
    body: &mut Body<'_>,
) -> Result<Response, Abort> {
    let path = head.path.trim_end_matches('/');
    let method = head.method.as_str();
    match (method, path) {
        ("GET", "/_sandbox/state") => {
            let st = shared.lock();
            let requests: Vec<Value> = st
                .requests
                .iter()
                .map(|r| json!({"method": r.method, "path": r.path, "status": r.status, "fault": r.fault}))
                .collect();
            Ok(Response::json(
                200,
                &json!({
                    "kind": shared.config.kind.as_str(),
                    "feedback": st.feedback,
                    "uploads": st.uploads,
                    "requests": requests,
                    "pending_faults": st.faults.len(),
                }),
            ))
        }
        ("POST", "/_sandbox/faults") => {
            let value = match control_json(body)? {
                Ok(value) => value,
                Err(resp) => return Ok(resp),
            };
            let items = match value {
                Value::Array(items) => items,
                single => vec![single],
            };
            let parsed: Result<Vec<Fault>, String> = items.iter().map(Fault::from_json).collect();
            match parsed {
                Ok(faults) => {
                    let mut st = shared.lock();
                    st.faults.extend(faults);
                    Ok(Response::json(
                        200,
                        &json!({"pending_faults": st.faults.len()}),
                    ))
                }
                Err(why) => Ok(Response::invalid(&[("faults", &why)])),
            }
        }
        ("DELETE", "/_sandbox/faults") => {
            shared.lock().faults.clear();
            Ok(Response::json(200, &json!({"pending_faults": 0})))
        }
        ("POST", "/_sandbox/config") => {
            let value = match control_json(body)? {
                Ok(value) => value,
                Err(resp) => return Ok(resp),
            };
            let Some(o) = value.as_object() else {
                return Ok(Response::error(400, "The config must be a JSON object."));
            };
            let rate = match o.get("rate_limit_per_sec") {
                None => None,
                Some(Value::Null) => Some(None),
                Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                    Some(n) => Some(Some(n)),
                    None => {
                        return Ok(Response::invalid(&[(
                            "rate_limit_per_sec",
                            "Must be null or a non-negative integer.",
                        )]))
                    }
                },
            };
            let key = match o.get("api_key") {
                None => None,
                Some(Value::String(k)) if !k.is_empty() => Some(k.clone()),
                Some(_) => {
                    return Ok(Response::invalid(&[(
                        "api_key",
                        "Must be a non-empty string.",
                    )]))
                }
            };
            if let Some(key) = key {
                shared.keys.set(&key);
            }
            let mut st = shared.lock();
            if let Some(rate) = rate {
                st.rate_limit = rate;
            }
            Ok(Response::json(
                200,
                &json!({"rate_limit_per_sec": st.rate_limit, "pending_faults": st.faults.len()}),
            ))
        }
        (_, "/_sandbox/state") => Ok(method_not_allowed("GET")),
        (_, "/_sandbox/faults") => Ok(method_not_allowed("POST, DELETE")),
        (_, "/_sandbox/config") => Ok(method_not_allowed("POST")),
        _ => Ok(not_found()),
    }
}

/// Reads a control request's JSON body: the value, or the answer to give.
pub(crate) fn control_json(body: &mut Body<'_>) -> Result<Result<Value, Response>, Abort> {
    let bytes = match read_limited(body, MAX_CONTROL_BODY) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(Err(Response::error(413, describe(413)))),
        Err(e) => return body_error(&e).map(Err),
    };
    Ok(serde_json::from_slice(&bytes)
        .map_err(|_| Response::error(400, "The body is not valid JSON.")))
}
