//! A local stand-in for Centercode's External Feedback API.
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
//! | `GET /_sandbox/state` | `{"feedback":[..],"uploads":[..],"requests":[{"method","path","status","fault"}],"pending_faults":N}` |
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

use serde::{Serialize, Serializer};
use serde_json::{json, Map, Value};
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
const UNAUTHORIZED: &str = "Unauthorized: the API key is missing or invalid.";
/// The description of a 400 answer, as in the reference.
const INVALID_REQUEST: &str = "The specified request is invalid.";
/// Longest request line or header line accepted.
const MAX_LINE: usize = 16 * 1024;
/// Most bytes of header lines accepted in one request head.
const MAX_HEAD: usize = 64 * 1024;
/// Most header fields accepted in one request head.
const MAX_HEADERS: usize = 100;
/// Largest Create Feedback body accepted (413 above it).
const MAX_JSON_BODY: u64 = 32 * 1024 * 1024;
/// Largest control request body accepted.
const MAX_CONTROL_BODY: u64 = 1024 * 1024;
/// A string field longer than this many characters is an invalid parameter.
const MAX_FIELD_CHARS: usize = 100_000;
/// How much of an unread request body is read (and discarded) before an
/// answer is written: all of it, so that clients which write the whole body
/// before reading (ureq) see the answer, e.g. a 413, rather than a broken pipe.
const DRAIN_LIMIT: u64 = u64::MAX;
/// Room allowed for multipart framing when judging a Content-Length early.
const MULTIPART_SLACK: u64 = 1024 * 1024;
/// Read timeout of accepted sockets: how often a blocked reader checks for stop.
const READ_TICK: Duration = Duration::from_secs(1);
/// Silence tolerated in the middle of a request, in read ticks (seconds).
const STALL_TICKS: u32 = 30;
/// Write timeout of accepted sockets.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// `X-Rate-Limit-Remaining` reported when the rate limit is off.
const UNLIMITED_REMAINING: u32 = i32::MAX as u32;
/// Size of the multipart scanner's read buffer.
const SCAN_CHUNK: usize = 64 * 1024;

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

fn serialize_time<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
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

    /// The API base url, e.g. `http://127.0.0.1:40123/api/v1`. A sandbox bound
    /// to an unspecified address (`0.0.0.0`, `::`) reports the loopback address.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v1", self.shared.default_authority())
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

    /// Every feedback created, in order.
    pub fn feedback(&self) -> Vec<CreatedFeedback> {
        self.shared.lock().feedback.clone()
    }

    /// Every upload accepted, in order.
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

struct Shared {
    config: SandboxConfig,
    local: SocketAddr,
    keys: KeyNode,
    state: Mutex<State>,
    stopping: AtomicBool,
    conns: Mutex<HashMap<u64, TcpStream>>,
    conn_threads: Mutex<Vec<JoinHandle<()>>>,
    next_conn: AtomicU64,
    id_counter: AtomicU64,
}

struct State {
    rate_limit: Option<u32>,
    /// Start of the current one-second window (monotonic and wall clock).
    window: Option<(Instant, SystemTime)>,
    window_count: u32,
    faults: VecDeque<Fault>,
    feedback: Vec<CreatedFeedback>,
    uploads: Vec<ReceivedUpload>,
    requests: Vec<RequestRecord>,
    next_key: u64,
}

/// The rate-limit view of one answer.
struct RateInfo {
    remaining: u32,
    reset: SystemTime,
    limited: bool,
    retry_after_secs: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// `host:port` to reach this server by default.
    fn default_authority(&self) -> String {
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
    fn public_base(&self, head: &Head) -> String {
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
    fn rate_check(&self, count: bool) -> RateInfo {
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
        match st.rate_limit {
            None => RateInfo {
                remaining: UNLIMITED_REMAINING,
                reset,
                limited: false,
                retry_after_secs: retry_after_secs.max(1),
            },
            Some(limit) => RateInfo {
                remaining: limit.saturating_sub(used),
                reset,
                limited: count && used > limit,
                retry_after_secs: retry_after_secs.max(1),
            },
        }
    }

    fn next_fault(&self) -> Option<Fault> {
        self.lock().faults.pop_front()
    }

    fn record(&self, head: &Head, status: u16, fault: Option<String>, at: Instant) {
        self.lock().requests.push(RequestRecord {
            method: head.method.clone(),
            path: head.path.clone(),
            status,
            at,
            fault,
        });
    }

    /// 16 fresh pseudo-random bytes (unique per sandbox and call).
    fn fresh_bytes(&self) -> [u8; 16] {
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

    fn fresh_uuid(&self) -> String {
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
    fn sleep(&self, d: Duration) {
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
struct KeyNode {
    key: String,
    next: OnceLock<Box<KeyNode>>,
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

    fn current(&self) -> &str {
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
// Accepting and serving connections
// ---------------------------------------------------------------------------

fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let accepted = listener.accept();
        if shared.is_stopping() {
            break;
        }
        match accepted {
            Ok((stream, _)) => spawn_connection(&shared, stream),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Out of descriptors or similar: back off a little and go on.
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn spawn_connection(shared: &Arc<Shared>, stream: TcpStream) {
    let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let Ok(registered) = stream.try_clone() else {
        return;
    };
    lock(&shared.conns).insert(id, registered);
    let for_thread = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name("sandbox-conn".to_string())
        .spawn(move || {
            serve_connection(&for_thread, stream);
            lock(&for_thread.conns).remove(&id);
        });
    let mut threads = lock(&shared.conn_threads);
    threads.retain(|t| !t.is_finished());
    match spawned {
        Ok(handle) => threads.push(handle),
        Err(_) => {
            drop(threads);
            lock(&shared.conns).remove(&id);
        }
    }
}

/// Reads from a socket whose read timeout is [`READ_TICK`], retrying on
/// timeouts until the sandbox stops or `patience` ticks pass without a byte.
struct SocketReader {
    stream: TcpStream,
    shared: Arc<Shared>,
    patience: Option<u32>,
}

impl Read for SocketReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut waited = 0u32;
        loop {
            match self.stream.read(buf) {
                Ok(n) => return Ok(n),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if self.shared.is_stopping() {
                        return Err(io::Error::new(
                            io::ErrorKind::ConnectionAborted,
                            "sandbox stopping",
                        ));
                    }
                    waited += 1;
                    if self.patience.is_some_and(|p| waited >= p) {
                        return Err(io::Error::new(io::ErrorKind::TimedOut, "client stalled"));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

type ConnReader = BufReader<SocketReader>;

fn serve_connection(shared: &Arc<Shared>, stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(READ_TICK));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let Ok(writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::with_capacity(
        SCAN_CHUNK,
        SocketReader {
            stream,
            shared: Arc::clone(shared),
            patience: None,
        },
    );
    while !shared.is_stopping() {
        reader.get_mut().patience = None;
        let head = match read_head(&mut reader) {
            Ok(head) => head,
            Err(HeadError::Closed) => break,
            Err(HeadError::Bad(status, why)) => {
                let resp = Response::error(status, why);
                let rate = shared.rate_check(false);
                let _ = write_response(&writer, resp, &rate, false, ConnHeader::Close);
                linger(&writer);
                break;
            }
        };
        reader.get_mut().patience = Some(STALL_TICKS);
        if !handle_request(shared, &mut reader, &writer, &head) {
            break;
        }
    }
    let _ = writer.shutdown(Shutdown::Both);
}

/// Handles one request; returns whether the connection stays open.
fn handle_request(
    shared: &Shared,
    reader: &mut ConnReader,
    writer: &TcpStream,
    head: &Head,
) -> bool {
    let arrived = Instant::now();
    let control = head.path == "/_sandbox" || head.path.starts_with("/_sandbox/");
    let framing = match head.framing() {
        Ok(framing) => framing,
        Err(why) => {
            // The end of the body cannot be found: answer and close.
            let rate = shared.rate_check(false);
            if !control {
                shared.record(head, 400, None, arrived);
            }
            let _ = write_response(
                writer,
                Response::error(400, why),
                &rate,
                false,
                ConnHeader::Close,
            );
            linger(writer);
            return false;
        }
    };
    let expect_continue = head.minor == 1
        && head
            .header("expect")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"));
    let mut body = Body::new(reader, writer, framing, expect_continue);

    if control {
        let rate = shared.rate_check(false);
        return match handle_control(shared, head, &mut body) {
            Ok(resp) => finish(writer, head, &mut body, resp, &rate),
            Err(Abort) => false,
        };
    }

    let fault = shared.next_fault();
    let label = fault.as_ref().map(Fault::label);
    if let Some(Fault::Delay(d)) = &fault {
        shared.sleep(*d);
    }
    let rate = shared.rate_check(true);
    match fault {
        Some(Fault::Drop) => {
            let _ = body.drain(u64::MAX);
            shared.record(head, 0, label, arrived);
            return false;
        }
        Some(Fault::Status {
            status,
            retry_after,
            rate_limit_reset,
        }) => {
            let mut resp = Response::error(status, describe(status));
            if let Some(v) = retry_after {
                resp.set_header("Retry-After", &v);
            }
            if let Some(v) = rate_limit_reset {
                resp.set_header("X-Rate-Limit-Reset", &v);
            }
            if status == 429 {
                resp.set_header("X-Rate-Limit-Remaining", "0");
            }
            shared.record(head, status, label, arrived);
            return finish(writer, head, &mut body, resp, &rate);
        }
        Some(Fault::Body { status, body: text }) => {
            let resp = Response::raw(status, text.into_bytes());
            shared.record(head, status, label, arrived);
            return finish(writer, head, &mut body, resp, &rate);
        }
        _ => {}
    }
    let act_then_drop = matches!(fault, Some(Fault::ActThenDrop));

    let outcome = if rate.limited {
        let mut resp = Response::error(429, describe(429));
        resp.set_header("Retry-After", &rate.retry_after_secs.to_string());
        Ok(resp)
    } else if query_param(&head.query, "apiKey").as_deref() != Some(shared.keys.current()) {
        Ok(Response::error(401, UNAUTHORIZED))
    } else {
        route(shared, head, &mut body)
    };
    match outcome {
        Err(Abort) => {
            shared.record(head, 0, label, arrived);
            false
        }
        Ok(_) if act_then_drop => {
            shared.record(head, 0, label, arrived);
            let _ = body.drain(DRAIN_LIMIT);
            false
        }
        Ok(resp) => {
            shared.record(head, resp.status, label, arrived);
            finish(writer, head, &mut body, resp, &rate)
        }
    }
}

/// Writes the answer, draining or abandoning what is left of the request
/// body; returns whether the connection stays open.
fn finish(
    writer: &TcpStream,
    head: &Head,
    body: &mut Body<'_>,
    resp: Response,
    rate: &RateInfo,
) -> bool {
    let mut close = head.wants_close() || resp.close;
    if !body.finished() {
        let unasked = body.expect_continue && !body.continue_sent;
        if unasked || body.failed.is_some() || !body.drain(DRAIN_LIMIT) {
            close = true;
        }
    }
    let conn = if close {
        ConnHeader::Close
    } else if head.minor == 0 {
        ConnHeader::KeepAlive
    } else {
        ConnHeader::None
    };
    let written = write_response(writer, resp, rate, head.method == "HEAD", conn).is_ok();
    if close {
        if !body.finished() {
            linger(writer);
        }
        return false;
    }
    written
}

/// Half-closes, then reads and discards for a moment, so that the client
/// reads our answer rather than a reset caused by its unread bytes.
fn linger(stream: &TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut buf = [0u8; 16 * 1024];
    let mut total = 0usize;
    let mut s = stream;
    while Instant::now() < deadline && total < 64 * 1024 * 1024 {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => break,
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP request heads
// ---------------------------------------------------------------------------

struct Head {
    method: String,
    path: String,
    query: String,
    minor: u8,
    headers: Vec<(String, String)>,
}

enum HeadError {
    /// The client went away (or never sent a request).
    Closed,
    /// Not a request we can parse: answer this status and close.
    Bad(u16, &'static str),
}

enum Framing {
    Length(u64),
    Chunked,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.header_values(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    fn wants_close(&self) -> bool {
        self.has_token("connection", "close")
            || (self.minor == 0 && !self.has_token("connection", "keep-alive"))
    }

    fn framing(&self) -> Result<Framing, &'static str> {
        let codings: Vec<&str> = self
            .header_values("transfer-encoding")
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        if let Some(last) = codings.last() {
            return if last.eq_ignore_ascii_case("chunked") {
                Ok(Framing::Chunked)
            } else {
                Err("Unsupported Transfer-Encoding.")
            };
        }
        let mut length = None;
        for v in self
            .header_values("content-length")
            .flat_map(|v| v.split(','))
        {
            let v = v.trim();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err("Invalid Content-Length.");
            }
            let n: u64 = v.parse().map_err(|_| "Invalid Content-Length.")?;
            if length.is_some_and(|l| l != n) {
                return Err("Conflicting Content-Length headers.");
            }
            length = Some(n);
        }
        Ok(Framing::Length(length.unwrap_or(0)))
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Reads one line (LF or CRLF terminated, terminator removed). `Ok(None)` at
/// a clean end of input; `InvalidData` when longer than `max`.
fn read_line<R: BufRead + ?Sized>(r: &mut R, max: usize) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    loop {
        let avail = r.fill_buf()?;
        if avail.is_empty() {
            return if line.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        if let Some(i) = avail.iter().position(|&b| b == b'\n') {
            if line.len() + i > max {
                return Err(invalid_data("line too long"));
            }
            line.extend_from_slice(&avail[..i]);
            r.consume(i + 1);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Some(line));
        }
        let n = avail.len();
        if line.len() + n > max {
            return Err(invalid_data("line too long"));
        }
        line.extend_from_slice(avail);
        r.consume(n);
    }
}

fn invalid_data(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn read_head(r: &mut ConnReader) -> Result<Head, HeadError> {
    let mut blank_lines = 0;
    let line = loop {
        match read_line(r, MAX_LINE) {
            Ok(Some(line)) if line.is_empty() => {
                blank_lines += 1;
                if blank_lines > 8 {
                    return Err(HeadError::Bad(400, "Malformed request."));
                }
            }
            Ok(Some(line)) => break line,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(HeadError::Bad(414, "The request line is too long."))
            }
            Ok(None) | Err(_) => return Err(HeadError::Closed),
        }
    };
    let bad = HeadError::Bad(400, "Malformed request line.");
    let text =
        std::str::from_utf8(&line).map_err(|_| HeadError::Bad(400, "Malformed request line."))?;
    let mut parts = text.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad);
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(bad);
    }
    let minor = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        v if v.starts_with("HTTP/") => {
            return Err(HeadError::Bad(505, "HTTP version not supported."))
        }
        _ => return Err(bad),
    };
    // Absolute-form targets (as sent to proxies) keep only their path.
    let target = match target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    if !target.starts_with('/') {
        return Err(bad);
    }
    let target = target.split('#').next().unwrap_or(target);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));

    let mut headers = Vec::new();
    let mut total = 0usize;
    loop {
        let line = match read_line(r, MAX_LINE) {
            Ok(Some(line)) => line,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(HeadError::Bad(431, "Request header fields too large."))
            }
            Ok(None) | Err(_) => return Err(HeadError::Closed),
        };
        if line.is_empty() {
            break;
        }
        total += line.len();
        if total > MAX_HEAD || headers.len() >= MAX_HEADERS {
            return Err(HeadError::Bad(431, "Request header fields too large."));
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(HeadError::Bad(
                400,
                "Folded header lines are not supported.",
            ));
        }
        let text = String::from_utf8_lossy(&line);
        let Some((name, value)) = text.split_once(':') else {
            return Err(HeadError::Bad(400, "Malformed header line."));
        };
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(HeadError::Bad(400, "Malformed header line."));
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    Ok(Head {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        minor,
        headers,
    })
}

// ---------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------

enum BodyState {
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkDataEnd,
    Done,
}

/// The body of one request, decoded from its framing. Sends
/// `100 Continue` before the first read when the client asked for it.
struct Body<'a> {
    reader: &'a mut ConnReader,
    writer: &'a TcpStream,
    state: BodyState,
    declared: Option<u64>,
    expect_continue: bool,
    continue_sent: bool,
    failed: Option<io::ErrorKind>,
}

impl<'a> Body<'a> {
    fn new(
        reader: &'a mut ConnReader,
        writer: &'a TcpStream,
        framing: Framing,
        expect: bool,
    ) -> Body<'a> {
        let (state, declared) = match framing {
            Framing::Length(0) => (BodyState::Done, Some(0)),
            Framing::Length(n) => (BodyState::Length(n), Some(n)),
            Framing::Chunked => (BodyState::ChunkSize, None),
        };
        let expect_continue = expect && !matches!(state, BodyState::Done);
        Body {
            reader,
            writer,
            state,
            declared,
            expect_continue,
            continue_sent: false,
            failed: None,
        }
    }

    fn finished(&self) -> bool {
        matches!(self.state, BodyState::Done)
    }

    /// Reads and discards up to `limit` bytes; true when the body is complete.
    fn drain(&mut self, limit: u64) -> bool {
        let mut buf = [0u8; 16 * 1024];
        let mut seen = 0u64;
        while !self.finished() {
            if seen >= limit {
                return false;
            }
            match self.read(&mut buf) {
                Ok(0) => return self.finished(),
                Ok(n) => seen += n as u64,
                Err(_) => return false,
            }
        }
        true
    }

    fn read_data(&mut self, buf: &mut [u8], rem: u64) -> io::Result<usize> {
        let want = buf.len().min(usize::try_from(rem).unwrap_or(usize::MAX));
        let n = self.reader.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(n)
    }

    fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.state {
                BodyState::Done => return Ok(0),
                BodyState::Length(rem) => {
                    let n = self.read_data(buf, rem)?;
                    let rem = rem - n as u64;
                    self.state = if rem == 0 {
                        BodyState::Done
                    } else {
                        BodyState::Length(rem)
                    };
                    return Ok(n);
                }
                BodyState::ChunkData(rem) => {
                    let n = self.read_data(buf, rem)?;
                    let rem = rem - n as u64;
                    self.state = if rem == 0 {
                        BodyState::ChunkDataEnd
                    } else {
                        BodyState::ChunkData(rem)
                    };
                    return Ok(n);
                }
                BodyState::ChunkSize => {
                    let line =
                        read_line(&mut *self.reader, 1024)?.ok_or(io::ErrorKind::UnexpectedEof)?;
                    let size =
                        parse_chunk_size(&line).ok_or_else(|| invalid_data("bad chunk size"))?;
                    if size > 0 {
                        self.state = BodyState::ChunkData(size);
                        continue;
                    }
                    let mut trailer_bytes = 0;
                    loop {
                        let t = read_line(&mut *self.reader, MAX_LINE)?
                            .ok_or(io::ErrorKind::UnexpectedEof)?;
                        if t.is_empty() {
                            break;
                        }
                        trailer_bytes += t.len();
                        if trailer_bytes > MAX_HEAD {
                            return Err(invalid_data("trailers too large"));
                        }
                    }
                    self.state = BodyState::Done;
                    return Ok(0);
                }
                BodyState::ChunkDataEnd => {
                    let line =
                        read_line(&mut *self.reader, 1024)?.ok_or(io::ErrorKind::UnexpectedEof)?;
                    if !line.is_empty() {
                        return Err(invalid_data("chunk longer than its size"));
                    }
                    self.state = BodyState::ChunkSize;
                }
            }
        }
    }
}

impl Read for Body<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(kind) = self.failed {
            return Err(io::Error::new(kind, "the request body could not be read"));
        }
        if buf.is_empty() || self.finished() {
            return Ok(0);
        }
        if self.expect_continue && !self.continue_sent {
            self.continue_sent = true;
            let mut w = self.writer;
            if let Err(e) = w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n") {
                self.failed = Some(e.kind());
                return Err(e);
            }
        }
        self.read_body(buf)
            .inspect_err(|e| self.failed = Some(e.kind()))
    }
}

fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(line).ok()?;
    let size = text.split(';').next()?.trim();
    if size.is_empty() || size.len() > 16 || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(size, 16).ok()
}

/// Reads the whole body if it has at most `limit` bytes (`Ok(None)` if more).
fn read_limited(body: &mut Body<'_>, limit: u64) -> io::Result<Option<Vec<u8>>> {
    if body.declared.is_some_and(|n| n > limit) {
        return Ok(None);
    }
    let mut out = Vec::new();
    body.take(limit + 1).read_to_end(&mut out)?;
    Ok((out.len() as u64 <= limit).then_some(out))
}

/// The request cannot be answered (the client went away): close silently.
struct Abort;

/// The answer to a body that could not be read: 400 for a malformed body,
/// silence for a broken connection.
fn body_error(e: &io::Error) -> Result<Response, Abort> {
    if e.kind() == io::ErrorKind::InvalidData {
        Ok(Response::error(400, "The request body is malformed.").closing())
    } else {
        Err(Abort)
    }
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    close: bool,
}

enum ConnHeader {
    None,
    KeepAlive,
    Close,
}

impl Response {
    fn raw(status: u16, body: Vec<u8>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".to_string(), "application/json".to_string())],
            body,
            close: false,
        }
    }

    fn json(status: u16, v: &Value) -> Response {
        Response::raw(status, serde_json::to_vec(v).unwrap_or_default())
    }

    fn error(status: u16, description: &str) -> Response {
        Response::json(
            status,
            &json!({"status": status, "description": description}),
        )
    }

    fn invalid(params: &[(&str, &str)]) -> Response {
        let params: Vec<Value> = params
            .iter()
            .map(|(name, description)| json!({"name": name, "description": description}))
            .collect();
        Response::json(
            400,
            &json!({"status": 400, "description": INVALID_REQUEST, "invalidParameters": params}),
        )
    }

    fn closing(mut self) -> Response {
        self.close = true;
        self
    }

    fn set_header(&mut self, name: &str, value: &str) {
        let value: String = value.chars().filter(|c| !c.is_control()).collect();
        match self
            .headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value,
            None => self.headers.push((name.to_string(), value)),
        }
    }

    fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }
}

fn write_response(
    writer: &TcpStream,
    mut resp: Response,
    rate: &RateInfo,
    head_only: bool,
    conn: ConnHeader,
) -> io::Result<()> {
    let rate_headers = [
        ("X-Rate-Limit-Limit", "1s".to_string()),
        ("X-Rate-Limit-Remaining", rate.remaining.to_string()),
        ("X-Rate-Limit-Reset", iso8601(rate.reset)),
    ];
    for (name, value) in rate_headers {
        if !resp.has_header(name) {
            resp.set_header(name, &value);
        }
    }
    let no_body = resp.status < 200 || resp.status == 204 || resp.status == 304;
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (name, value) in &resp.headers {
        if no_body && name.eq_ignore_ascii_case("content-type") {
            continue;
        }
        let _ = write!(head, "{name}: {value}\r\n");
    }
    if !no_body {
        let _ = write!(head, "Content-Length: {}\r\n", resp.body.len());
    }
    match conn {
        ConnHeader::None => {}
        ConnHeader::KeepAlive => head.push_str("Connection: keep-alive\r\n"),
        ConnHeader::Close => head.push_str("Connection: close\r\n"),
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if !no_body && !head_only {
        out.extend_from_slice(&resp.body);
    }
    let mut w = writer;
    w.write_all(&out)?;
    w.flush()
}

fn reason(status: u16) -> &'static str {
    crate::delivery::reason_phrase(status).unwrap_or("Unknown")
}

/// The `description` of a standard error body for this status.
fn describe(status: u16) -> &'static str {
    match status {
        400 => INVALID_REQUEST,
        401 => UNAUTHORIZED,
        403 => "Forbidden: the API key is not authorized for this endpoint.",
        404 => "The requested resource was not found.",
        405 => "The requested method is not allowed for this resource.",
        408 => "The request timed out.",
        413 => "The request is too large.",
        415 => "The request content type is not supported.",
        429 => "Too many requests: the rate limit has been exceeded.",
        500 => "An unexpected error occurred.",
        502 => "Bad gateway.",
        503 => "The service is temporarily unavailable.",
        504 => "The gateway timed out.",
        _ => reason(status),
    }
}

// ---------------------------------------------------------------------------
// Routing and the API endpoints
// ---------------------------------------------------------------------------

fn not_found() -> Response {
    Response::error(404, describe(404))
}

fn method_not_allowed(allow: &str) -> Response {
    let mut resp = Response::error(405, describe(405));
    resp.set_header("Allow", allow);
    resp
}

fn route(shared: &Shared, head: &Head, body: &mut Body<'_>) -> Result<Response, Abort> {
    let segments: Vec<String> = head
        .path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s, false))
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match segments.as_slice() {
        ["api", "v1", "projects", project, "feedback", ftype] => {
            if head.method != "POST" {
                return Ok(method_not_allowed("POST"));
            }
            create_feedback(shared, head, body, project, ftype)
        }
        ["api", "v1", "projects", project, "feedbackTypes", ftype, "feedback", key, "fileElements", element] =>
        {
            if head.method != "POST" {
                return Ok(method_not_allowed("POST"));
            }
            upload_attachment(shared, head, body, &[project, ftype, key, element])
        }
        ["api", "v1", "projects", project, "feedbackRecordLookups", lookup] => {
            if head.method != "GET" {
                return Ok(method_not_allowed("GET"));
            }
            Ok(lookup_feedback(shared, head, project, lookup))
        }
        _ => Ok(not_found()),
    }
}

/// The media type of a Content-Type value, lower-cased, without parameters.
fn media_type(content_type: Option<&str>) -> String {
    content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn create_feedback(
    shared: &Shared,
    head: &Head,
    body: &mut Body<'_>,
    project: &str,
    ftype: &str,
) -> Result<Response, Abort> {
    let cfg = &shared.config;
    if project != cfg.project || ftype != cfg.feedback_type {
        return Ok(not_found());
    }
    if media_type(head.header("content-type")) != "application/json" {
        return Ok(Response::error(
            415,
            "The request content type is not supported: use application/json.",
        ));
    }
    let bytes = match read_limited(body, MAX_JSON_BODY) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(Response::error(413, describe(413))),
        Err(e) => return body_error(&e),
    };
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok(Response::error(400, INVALID_REQUEST));
    };

    let mut problems: Vec<(String, String)> = Vec::new();
    let present = |name: &str| {
        fields
            .get(name)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.trim().is_empty())
    };
    if !present("summary") && !present("title") {
        problems.push(("summary".to_string(), "A summary is required.".to_string()));
    }
    for (name, value) in &fields {
        if let Value::String(s) = value {
            if s.chars().count() > MAX_FIELD_CHARS {
                problems.push((
                    name.clone(),
                    format!(
                        "The value exceeds the maximum length of {MAX_FIELD_CHARS} characters."
                    ),
                ));
            }
        }
    }
    if !problems.is_empty() {
        let params: Vec<(&str, &str)> = problems
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_str()))
            .collect();
        return Ok(Response::invalid(&params));
    }

    let base = shared.public_base(head);
    let id = shared.fresh_uuid();
    let cap = hex(&shared.fresh_bytes());
    let url = format!(
        "{base}/project/feedback/view.html?cap={cap}&uf={}",
        id.replace('-', "")
    );
    let key = {
        let mut st = shared.lock();
        let key = format!("{}-{:04}", cfg.key_prefix, st.next_key);
        st.next_key += 1;
        st.feedback.push(CreatedFeedback {
            id: id.clone(),
            key: key.clone(),
            url: url.clone(),
            body: Value::Object(fields),
            at: SystemTime::now(),
        });
        key
    };
    let mut answer = Map::new();
    answer.insert("id".to_string(), Value::String(id));
    answer.insert("key".to_string(), Value::String(key.clone()));
    answer.insert("url".to_string(), Value::String(url));
    if !cfg.file_elements.is_empty() {
        let elements: Vec<Value> = cfg
            .file_elements
            .iter()
            .map(|e| {
                json!({
                    "title": e.title,
                    "key": e.key,
                    "url": format!(
                        "{base}/api/v1/projects/{}/feedbackTypes/{}/feedback/{}/fileElements/{}",
                        encode_segment(&cfg.project),
                        encode_segment(&cfg.feedback_type),
                        encode_segment(&key),
                        encode_segment(&e.key)
                    ),
                    "acceptsMultipleAttachments": e.accepts_multiple,
                })
            })
            .collect();
        answer.insert("fileElements".to_string(), Value::Array(elements));
    }
    Ok(Response::json(201, &Value::Object(answer)))
}

fn single_attachment() -> Response {
    Response::error(400, "This file element accepts a single attachment.")
}

/// `target` is `[project, feedback type, feedback key, element key]`.
fn upload_attachment(
    shared: &Shared,
    head: &Head,
    body: &mut Body<'_>,
    target: &[&str; 4],
) -> Result<Response, Abort> {
    let [project, ftype, key, element] = *target;
    let cfg = &shared.config;
    let spec = cfg.file_elements.iter().find(|e| e.key == element);
    let (feedback_url, taken) = {
        let st = shared.lock();
        let url = st
            .feedback
            .iter()
            .find(|f| f.key == key)
            .map(|f| f.url.clone());
        let taken = st
            .uploads
            .iter()
            .any(|u| u.feedback_key == key && u.element_key == element);
        (url, taken)
    };
    let (Some(spec), Some(feedback_url)) = (spec, feedback_url) else {
        return Ok(not_found());
    };
    if project != cfg.project || ftype != cfg.feedback_type {
        return Ok(not_found());
    }
    let Some(boundary) = multipart_boundary(head.header("content-type")) else {
        return Ok(Response::error(
            415,
            "The request content type is not supported: use multipart/form-data with a boundary.",
        ));
    };
    if body
        .declared
        .is_some_and(|n| n > cfg.max_upload_bytes.saturating_add(MULTIPART_SLACK))
    {
        return Ok(Response::error(
            413,
            "The file exceeds the maximum upload size.",
        ));
    }
    if !spec.accepts_multiple && taken {
        return Ok(single_attachment());
    }
    let file = match parse_multipart(&mut *body, boundary.as_bytes(), cfg.max_upload_bytes) {
        Ok(file) => file,
        Err(MultipartError::Io(e)) => return body_error(&e),
        Err(MultipartError::TooLarge) => {
            return Ok(Response::error(
                413,
                "The file exceeds the maximum upload size.",
            ))
        }
        Err(MultipartError::Bad(why)) => return Ok(Response::invalid(&[("file", &why)])),
    };
    let id = shared.fresh_uuid();
    {
        let mut st = shared.lock();
        let taken = st
            .uploads
            .iter()
            .any(|u| u.feedback_key == key && u.element_key == element);
        if !spec.accepts_multiple && taken {
            return Ok(single_attachment());
        }
        st.uploads.push(ReceivedUpload {
            id: id.clone(),
            feedback_key: key.to_string(),
            element_key: element.to_string(),
            file_name: file.file_name.clone(),
            content_type: file.content_type,
            size: file.size,
            sha256_hex: file.sha256_hex,
        });
    }
    Ok(Response::json(
        201,
        &json!({
            "id": id,
            "fileElementKey": element,
            "fileName": file.file_name,
            "feedbackKey": key,
            "feedbackUrl": feedback_url,
        }),
    ))
}

fn lookup_feedback(shared: &Shared, head: &Head, project: &str, lookup: &str) -> Response {
    let cfg = &shared.config;
    if project != cfg.project || cfg.lookup_key.as_deref() != Some(lookup) {
        return not_found();
    }
    let find = query_param(&head.query, "find").unwrap_or_default();
    if find.is_empty() {
        return Response::invalid(&[("Find", "A lookup query is required.")]);
    }
    let st = shared.lock();
    let matches = |f: &&CreatedFeedback, value: &str| {
        f.key == value
            || f.body
                .as_object()
                .is_some_and(|o| o.values().any(|v| v.as_str() == Some(value)))
    };
    // The reference's own example reads `find=BUG-0001?page=1`: accept that too.
    let found = st.feedback.iter().find(|f| matches(f, &find)).or_else(|| {
        let (before, _) = find.split_once('?')?;
        st.feedback.iter().find(|f| matches(f, before))
    });
    let data = found.map(lookup_record).unwrap_or_default();
    Response::json(200, &json!({ "data": data }))
}

/// The fields of one feedback in the shape of the reference's record lookup.
fn lookup_record(f: &CreatedFeedback) -> Vec<Value> {
    fn field(name: &str, data_type: &str, computed: String, values: Vec<Value>) -> Value {
        json!({"field": name, "dataType": data_type, "computedValue": computed, "values": values})
    }
    let empty = Map::new();
    let body = f.body.as_object().unwrap_or(&empty);
    let summary = ["summary", "title"]
        .iter()
        .find_map(|k| {
            body.get(*k)
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
        })
        .unwrap_or("");
    let mut out = vec![
        field(
            "ID",
            "string",
            f.key.clone(),
            vec![Value::String(f.key.clone())],
        ),
        field(
            "Summary",
            "string",
            summary.to_string(),
            vec![Value::String(summary.to_string())],
        ),
    ];
    for (name, value) in body {
        if name == "summary" || name == "title" {
            continue;
        }
        out.push(match value {
            Value::Null => field(name, "string", String::new(), Vec::new()),
            Value::String(s) => field(name, "string", s.clone(), vec![value.clone()]),
            Value::Bool(b) => field(name, "boolean", b.to_string(), vec![value.clone()]),
            Value::Number(n) if n.is_i64() || n.is_u64() => {
                field(name, "integer", n.to_string(), vec![value.clone()])
            }
            Value::Number(n) => field(name, "decimal", n.to_string(), vec![value.clone()]),
            other => field(
                name,
                "string",
                other.to_string(),
                vec![Value::String(other.to_string())],
            ),
        });
    }
    let added = iso8601(f.at);
    let added = added.get(..19).unwrap_or(&added).to_string();
    out.push(field(
        "Date Added",
        "date",
        added.clone(),
        vec![Value::String(added)],
    ));
    out
}

// ---------------------------------------------------------------------------
// Control endpoints
// ---------------------------------------------------------------------------

fn handle_control(shared: &Shared, head: &Head, body: &mut Body<'_>) -> Result<Response, Abort> {
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
fn control_json(body: &mut Body<'_>) -> Result<Result<Value, Response>, Abort> {
    let bytes = match read_limited(body, MAX_CONTROL_BODY) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(Err(Response::error(413, describe(413)))),
        Err(e) => return body_error(&e).map(Err),
    };
    Ok(serde_json::from_slice(&bytes)
        .map_err(|_| Response::error(400, "The body is not valid JSON.")))
}

// ---------------------------------------------------------------------------
// Streaming multipart/form-data
// ---------------------------------------------------------------------------

/// What was learned of the `file` part.
#[derive(Debug)]
struct FilePart {
    file_name: String,
    content_type: String,
    size: u64,
    sha256_hex: String,
}

#[derive(Debug)]
enum MultipartError {
    /// Reading the body failed.
    Io(io::Error),
    /// The body is not acceptable; the text says why.
    Bad(String),
    /// The file is larger than allowed.
    TooLarge,
}

impl From<io::Error> for MultipartError {
    fn from(e: io::Error) -> Self {
        MultipartError::Io(e)
    }
}

/// The boundary of a `multipart/form-data` Content-Type, if it is one.
fn multipart_boundary(content_type: Option<&str>) -> Option<String> {
    let ct = content_type?;
    if media_type(Some(ct)) != "multipart/form-data" {
        return None;
    }
    let params = ct.split_once(';').map_or("", |(_, p)| p);
    let boundary = header_params(params)
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| value)?;
    (!boundary.is_empty() && boundary.len() <= 200).then_some(boundary)
}

/// Parses `; name=value; name="quoted \"value\""` parameter lists.
fn header_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ';' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ';' {
                break;
            }
            name.push(c);
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' if matches!(chars.peek(), Some('"') | Some('\\')) => {
                            if let Some(escaped) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        c => value.push(c),
                    }
                }
                while chars.peek().is_some_and(|c| *c != ';') {
                    chars.next();
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ';' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
                value = value.trim().to_string();
            }
        }
        out.push((name.trim().to_string(), value));
    }
    out
}

/// A look-ahead buffer over the body for finding boundaries in a stream.
struct Scanner<R> {
    src: R,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
}

impl<R: Read> Scanner<R> {
    fn new(src: R, needle_len: usize) -> Scanner<R> {
        let mut buf = vec![0u8; SCAN_CHUNK + needle_len + 2];
        // The first delimiter has no CRLF before it: pretend it had.
        buf[..2].copy_from_slice(b"\r\n");
        Scanner {
            src,
            buf,
            pos: 0,
            end: 2,
        }
    }

    /// Reads more input; false at the end of the body.
    fn fill(&mut self) -> Result<bool, MultipartError> {
        if self.pos > 0 && (self.end == self.buf.len() || self.pos == self.end) {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.end == self.buf.len() {
            return Err(MultipartError::Bad(
                "a multipart header line is too long".to_string(),
            ));
        }
        loop {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(MultipartError::Io(e)),
            }
        }
    }

    /// Makes at least `n` bytes available; false if the body ends first.
    fn want(&mut self, n: usize) -> Result<bool, MultipartError> {
        while self.end - self.pos < n {
            if !self.fill()? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn read_line(&mut self, max: usize) -> Result<Vec<u8>, MultipartError> {
        let mut searched = 0;
        loop {
            let avail = &self.buf[self.pos..self.end];
            if let Some(i) = find(&avail[searched..], b"\r\n") {
                let line = avail[..searched + i].to_vec();
                self.pos += searched + i + 2;
                return Ok(line);
            }
            searched = avail.len().saturating_sub(1);
            if searched > max {
                return Err(MultipartError::Bad(
                    "a multipart header line is too long".to_string(),
                ));
            }
            if !self.fill()? {
                return Err(MultipartError::Bad(
                    "the multipart body ends inside a part header".to_string(),
                ));
            }
        }
    }

    /// Passes everything before the next `needle` to `sink` and consumes the needle.
    fn stream_until(
        &mut self,
        needle: &[u8],
        sink: &mut dyn FnMut(&[u8]) -> Result<(), MultipartError>,
    ) -> Result<(), MultipartError> {
        let keep = needle.len() - 1;
        loop {
            let avail = &self.buf[self.pos..self.end];
            if let Some(i) = find(avail, needle) {
                sink(&avail[..i])?;
                self.pos += i + needle.len();
                return Ok(());
            }
            if avail.len() > keep {
                let emit = avail.len() - keep;
                sink(&avail[..emit])?;
                self.pos += emit;
            }
            if !self.fill()? {
                return Err(MultipartError::Bad(
                    "the multipart body ends before its closing boundary".to_string(),
                ));
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut from = 0;
    while from + needle.len() <= hay.len() {
        let i = from
            + hay[from..=hay.len() - needle.len()]
                .iter()
                .position(|&b| b == first)?;
        if &hay[i..i + needle.len()] == needle {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

/// Streams a multipart/form-data body, hashing the one part named `file`.
fn parse_multipart<R: Read>(
    src: R,
    boundary: &[u8],
    max_file: u64,
) -> Result<FilePart, MultipartError> {
    let mut needle = b"\r\n--".to_vec();
    needle.extend_from_slice(boundary);
    let mut scan = Scanner::new(src, needle.len());
    let mut preamble = 0usize;
    scan.stream_until(&needle, &mut |bytes| {
        preamble += bytes.len();
        if preamble > 64 * 1024 {
            return Err(MultipartError::Bad(
                "no multipart boundary found".to_string(),
            ));
        }
        Ok(())
    })?;

    let mut file: Option<FilePart> = None;
    loop {
        if !scan.want(2)? {
            return Err(MultipartError::Bad(
                "the multipart body ends after a boundary".to_string(),
            ));
        }
        if &scan.buf[scan.pos..scan.pos + 2] == b"--" {
            break; // the closing delimiter; the epilogue is left to be drained
        }
        let rest = scan.read_line(256)?;
        if !rest.iter().all(|b| *b == b' ' || *b == b'\t') {
            return Err(MultipartError::Bad(
                "malformed multipart boundary line".to_string(),
            ));
        }

        let mut name = None;
        let mut file_name = None;
        let mut content_type = None;
        let mut header_bytes = 0;
        loop {
            let line = scan.read_line(MAX_LINE)?;
            if line.is_empty() {
                break;
            }
            header_bytes += line.len();
            if header_bytes > MAX_HEAD {
                return Err(MultipartError::Bad(
                    "the part headers are too large".to_string(),
                ));
            }
            let line = String::from_utf8_lossy(&line);
            let Some((hname, hvalue)) = line.split_once(':') else {
                return Err(MultipartError::Bad("malformed part header".to_string()));
            };
            let hname = hname.trim();
            if hname.eq_ignore_ascii_case("content-disposition") {
                let params_text = hvalue.split_once(';').map_or("", |(_, p)| p);
                let mut plain_name = None;
                let mut extended_name = None;
                for (pname, pvalue) in header_params(params_text) {
                    match pname.to_ascii_lowercase().as_str() {
                        "name" => name = Some(pvalue),
                        "filename" => plain_name = Some(pvalue),
                        "filename*" => extended_name = decode_ext_value(&pvalue),
                        _ => {}
                    }
                }
                file_name = extended_name.or(plain_name);
            } else if hname.eq_ignore_ascii_case("content-type") {
                content_type = Some(hvalue.trim().to_string());
            }
        }

        let is_file = name.as_deref() == Some("file");
        if is_file && file.is_some() {
            return Err(MultipartError::Bad(
                "more than one part is named file".to_string(),
            ));
        }
        match file_name.filter(|n| !n.is_empty()) {
            Some(file_name) if is_file => {
                let mut hasher = Sha256::new();
                let mut size = 0u64;
                scan.stream_until(&needle, &mut |bytes| {
                    size += bytes.len() as u64;
                    if size > max_file {
                        return Err(MultipartError::TooLarge);
                    }
                    hasher.update(bytes);
                    Ok(())
                })?;
                file = Some(FilePart {
                    file_name,
                    content_type: content_type
                        .filter(|c| !c.is_empty())
                        .unwrap_or_else(|| "application/octet-stream".to_string()),
                    size,
                    sha256_hex: hex(&hasher.finalize()),
                });
            }
            _ if is_file => {
                return Err(MultipartError::Bad(
                    "the file part has no filename".to_string(),
                ))
            }
            _ => scan.stream_until(&needle, &mut |_| Ok(()))?,
        }
    }
    file.ok_or_else(|| MultipartError::Bad("A file is required.".to_string()))
}

/// Decodes an RFC 5987 `charset'lang'percent-encoded` value (UTF-8 or Latin-1).
fn decode_ext_value(v: &str) -> Option<String> {
    let mut parts = v.splitn(3, '\'');
    let charset = parts.next()?;
    let _language = parts.next()?;
    let encoded = parts.next()?;
    let bytes = percent_decode_bytes(encoded, false);
    if charset.eq_ignore_ascii_case("utf-8") {
        String::from_utf8(bytes).ok()
    } else if charset.eq_ignore_ascii_case("iso-8859-1") {
        Some(bytes.iter().map(|&b| char::from(b)).collect())
    } else {
        None
    }
}

// ---------------------------------------------------------------------------
// Small helpers: query strings, percent-encoding, hex, dates
// ---------------------------------------------------------------------------

/// The first value of a query parameter, percent-decoded (`+` is a space).
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k, true) == name).then(|| percent_decode(v, true))
    })
}

fn percent_decode_bytes(s: &str, plus_is_space: bool) -> Vec<u8> {
    fn hex_val(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_val);
            let lo = bytes.get(i + 2).copied().and_then(hex_val);
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(if b == b'+' && plus_is_space { b' ' } else { b });
        i += 1;
    }
    out
}

fn percent_decode(s: &str, plus_is_space: bool) -> String {
    String::from_utf8_lossy(&percent_decode_bytes(s, plus_is_space)).into_owned()
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC, as the library parses it.
fn iso8601(t: SystemTime) -> String {
    crate::delivery::format_iso8601(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bare HTTP/1.1 client over one connection.
    struct Client {
        stream: TcpStream,
        reader: BufReader<TcpStream>,
    }

    #[derive(Debug)]
    struct Resp {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Resp {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }

        fn json(&self) -> Value {
            serde_json::from_slice(&self.body).unwrap_or_else(|e| {
                panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body))
            })
        }
    }

    impl Client {
        fn connect(sb: &Sandbox) -> Client {
            let stream = TcpStream::connect(("127.0.0.1", sb.port())).expect("connect");
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let reader = BufReader::new(stream.try_clone().unwrap());
            Client { stream, reader }
        }

        fn send(&mut self, bytes: &[u8]) {
            self.stream.write_all(bytes).expect("send");
        }

        /// Reads one final response (skipping 1xx); Err at end of stream.
        fn response(&mut self) -> io::Result<Resp> {
            loop {
                let mut line = String::new();
                if self.reader.read_line(&mut line)? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                let status: u16 = line
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("bad status line {line:?}"));
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    self.reader.read_line(&mut h)?;
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    let (n, v) = h.split_once(':').unwrap();
                    headers.push((n.trim().to_string(), v.trim().to_string()));
                }
                if status < 200 {
                    continue;
                }
                let len = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .map_or(0, |(_, v)| v.parse::<usize>().unwrap());
                let mut body = vec![0; len];
                self.reader.read_exact(&mut body)?;
                return Ok(Resp {
                    status,
                    headers,
                    body,
                });
            }
        }

        fn request(
            &mut self,
            method: &str,
            target: &str,
            headers: &[(&str, &str)],
            body: &[u8],
        ) -> Resp {
            let mut head = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
            for (n, v) in headers {
                head.push_str(&format!("{n}: {v}\r\n"));
            }
            head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
            let mut bytes = head.into_bytes();
            bytes.extend_from_slice(body);
            self.send(&bytes);
            self.response().expect("response")
        }

        fn is_closed(&mut self) -> bool {
            let mut buf = [0u8; 1];
            matches!(self.reader.read(&mut buf), Ok(0) | Err(_))
        }
    }

    fn start() -> Sandbox {
        Sandbox::start(SandboxConfig::default()).expect("start sandbox")
    }

    fn create_path(sb: &Sandbox) -> String {
        format!(
            "/api/v1/projects/WidgetPro/feedback/Mobile?apiKey={}",
            sb.api_key()
        )
    }

    fn create(sb: &Sandbox, client: &mut Client, body: &Value) -> Resp {
        client.request(
            "POST",
            &create_path(sb),
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
    }

    fn upload_path(sb: &Sandbox, key: &str, element: &str) -> String {
        format!(
            "/api/v1/projects/WidgetPro/feedbackTypes/Mobile/feedback/{key}/fileElements/{element}?apiKey={}",
            sb.api_key()
        )
    }

    const BOUNDARY: &str = "----sandboxTestBoundary7MA4YWxk";

    fn multipart(file_name: &str, content: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n"
            )
            .as_bytes(),
        );
        out.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
                 Content-Type: image/png\r\n\r\n"
            )
            .as_bytes(),
        );
        out.extend_from_slice(content);
        out.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        out
    }

    fn upload(sb: &Sandbox, client: &mut Client, key: &str, element: &str, content: &[u8]) -> Resp {
        let ct = format!("multipart/form-data; boundary={BOUNDARY}");
        client.request(
            "POST",
            &upload_path(sb, key, element),
            &[("Content-Type", &ct)],
            &multipart("shot.png", content),
        )
    }

    fn sha256_hex(bytes: &[u8]) -> String {
        hex(&Sha256::digest(bytes))
    }

    /// Content that contains near-boundaries, to exercise the scanner.
    fn tricky_content(len: usize) -> Vec<u8> {
        let pattern = format!("\r\n--{}\r\n-", &BOUNDARY[..BOUNDARY.len() - 1]);
        let mut out = Vec::with_capacity(len);
        let mut i = 0u32;
        while out.len() < len {
            if i.is_multiple_of(97) {
                out.extend_from_slice(pattern.as_bytes());
            } else {
                out.push((i.wrapping_mul(31) % 251) as u8);
            }
            i += 1;
        }
        out.truncate(len);
        out
    }

    #[test]
    fn sandbox_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Sandbox>();
    }

    #[test]
    fn create_returns_201_with_file_elements_and_rate_headers() {
        let sb = start();
        assert_eq!(
            sb.base_url(),
            format!("http://127.0.0.1:{}/api/v1", sb.port())
        );
        let mut c = Client::connect(&sb);
        let r = create(
            &sb,
            &mut c,
            &json!({"summary": "WiFi not connecting", "topic": 23795}),
        );
        assert_eq!(r.status, 201, "{r:?}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("x-rate-limit-limit"), Some("1s"));
        assert_eq!(r.header("x-rate-limit-remaining"), Some("9"));
        let reset = r.header("x-rate-limit-reset").unwrap();
        assert_eq!(reset.len(), 24, "{reset}");
        assert!(reset.ends_with('Z') && &reset[10..11] == "T" && &reset[19..20] == ".");
        let v = r.json();
        assert_eq!(v["key"], "BUG-0001");
        let id = v["id"].as_str().unwrap();
        assert_eq!(id.len(), 36);
        let url = v["url"].as_str().unwrap();
        assert!(
            url.starts_with("http://127.0.0.1/project/feedback/view.html?cap="),
            "{url}"
        );
        assert!(url.ends_with(&format!("&uf={}", id.replace('-', ""))));
        let elements = v["fileElements"].as_array().unwrap();
        assert_eq!(elements.len(), 3);
        assert_eq!(elements[1]["key"], "CrashLog");
        assert_eq!(elements[1]["title"], "Crash Log");
        assert_eq!(elements[1]["acceptsMultipleAttachments"], false);
        assert_eq!(
            elements[0]["url"],
            "http://127.0.0.1/api/v1/projects/WidgetPro/feedbackTypes/Mobile/feedback/BUG-0001/fileElements/Screenshot"
        );
        // Keep-alive: a second request on the same connection.
        let r = create(&sb, &mut c, &json!({"title": "Second"}));
        assert_eq!(r.status, 201);
        assert_eq!(r.json()["key"], "BUG-0002");
        let fb = sb.feedback();
        assert_eq!(fb.len(), 2);
        assert_eq!(fb[0].body["topic"], 23795);
        assert_eq!(fb[1].key, "BUG-0002");
        let reqs = sb.requests();
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].path, "/api/v1/projects/WidgetPro/feedback/Mobile");
        assert_eq!(reqs[0].status, 201);
        assert_eq!(reqs[0].fault, None);
    }

    #[test]
    fn no_file_elements_means_no_field() {
        let sb = Sandbox::start(SandboxConfig {
            file_elements: Vec::new(),
            key_prefix: "SUG".into(),
            ..SandboxConfig::default()
        })
        .unwrap();
        let mut c = Client::connect(&sb);
        let v = create(&sb, &mut c, &json!({"summary": "x"})).json();
        assert_eq!(v["key"], "SUG-0001");
        assert!(v.get("fileElements").is_none());
    }

    #[test]
    fn wrong_or_missing_key_is_401_and_rotation_works() {
        let sb = start();
        let mut c = Client::connect(&sb);
        let body = json!({"summary": "x"}).to_string();
        let ct = [("Content-Type", "application/json")];
        for target in [
            "/api/v1/projects/WidgetPro/feedback/Mobile?apiKey=nope",
            "/api/v1/projects/WidgetPro/feedback/Mobile",
        ] {
            let r = c.request("POST", target, &ct, body.as_bytes());
            assert_eq!(r.status, 401);
            assert_eq!(
                r.json(),
                json!({"status": 401, "description": "Unauthorized: the API key is missing or invalid."})
            );
            assert!(r.header("x-rate-limit-remaining").is_some());
        }
        sb.set_api_key("rotated key");
        assert_eq!(sb.api_key(), "rotated key");
        let r = c.request(
            "POST",
            "/api/v1/projects/WidgetPro/feedback/Mobile?apiKey=sandbox-key",
            &ct,
            body.as_bytes(),
        );
        assert_eq!(r.status, 401);
        let r = c.request(
            "POST",
            "/api/v1/projects/WidgetPro/feedback/Mobile?apiKey=rotated%20key",
            &ct,
            body.as_bytes(),
        );
        assert_eq!(r.status, 201);
        assert!(sb.feedback().len() == 1);
        assert!(sb.requests().iter().all(|r| !r.path.contains("apiKey")));
    }

    #[test]
    fn invalid_feedback_is_400_415_or_404() {
        let sb = start();
        sb.set_rate_limit(None);
        let mut c = Client::connect(&sb);
        let r = create(&sb, &mut c, &json!({"description": "no summary"}));
        assert_eq!(r.status, 400);
        assert_eq!(
            r.json(),
            json!({"status": 400, "description": "The specified request is invalid.",
                   "invalidParameters": [{"name": "summary", "description": "A summary is required."}]})
        );
        let r = create(&sb, &mut c, &json!({"summary": "  "}));
        assert_eq!(r.status, 400);
        let long = "x".repeat(MAX_FIELD_CHARS + 1);
        let r = create(&sb, &mut c, &json!({"summary": "ok", "description": long}));
        assert_eq!(r.status, 400);
        assert_eq!(r.json()["invalidParameters"][0]["name"], "description");
        let r = create(&sb, &mut c, &json!(["not", "an", "object"]));
        assert_eq!(
            r.json(),
            json!({"status": 400, "description": "The specified request is invalid."})
        );
        let r = c.request(
            "POST",
            &create_path(&sb),
            &[("Content-Type", "application/json")],
            b"{\"summary\": tru",
        );
        assert_eq!(r.status, 400);
        let r = c.request(
            "POST",
            &create_path(&sb),
            &[("Content-Type", "text/plain")],
            b"{\"summary\":\"x\"}",
        );
        assert_eq!(r.status, 415);
        let r = c.request(
            "POST",
            &format!(
                "/api/v1/projects/Other/feedback/Mobile?apiKey={}",
                sb.api_key()
            ),
            &[("Content-Type", "application/json")],
            b"{\"summary\":\"x\"}",
        );
        assert_eq!(r.status, 404);
        assert_eq!(r.json()["status"], 404);
        let r = c.request("GET", &create_path(&sb), &[], b"");
        assert_eq!(r.status, 405);
        assert_eq!(r.header("allow"), Some("POST"));
        let r = c.request(
            "GET",
            &format!("/api/v2/nothing?apiKey={}", sb.api_key()),
            &[],
            b"",
        );
        assert_eq!(r.status, 404);
        let r = create(&sb, &mut c, &json!({"summary": "finally", "ok": true}));
        assert_eq!(r.status, 201);
        assert_eq!(r.json()["key"], "BUG-0001");
        assert_eq!(sb.feedback().len(), 1);
    }

    #[test]
    fn multipart_upload_is_recorded_with_sha256_and_size() {
        let sb = start();
        let mut c = Client::connect(&sb);
        let v = create(&sb, &mut c, &json!({"summary": "with files"})).json();
        let content = tricky_content(300_000);
        let r = upload(&sb, &mut c, "BUG-0001", "Screenshot", &content);
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let a = r.json();
        assert_eq!(a["fileElementKey"], "Screenshot");
        assert_eq!(a["fileName"], "shot.png");
        assert_eq!(a["feedbackKey"], "BUG-0001");
        assert_eq!(a["feedbackUrl"], v["url"]);
        assert_eq!(a["id"].as_str().unwrap().len(), 36);
        let ups = sb.uploads();
        assert_eq!(ups.len(), 1);
        assert_eq!(ups[0].size, content.len() as u64);
        assert_eq!(ups[0].sha256_hex, sha256_hex(&content));
        assert_eq!(ups[0].content_type, "image/png");
        assert_eq!(ups[0].element_key, "Screenshot");
        // An empty file is still a file.
        let r = upload(&sb, &mut c, "BUG-0001", "Screenshot", b"");
        assert_eq!(r.status, 201);
        assert_eq!(sb.uploads()[1].sha256_hex, sha256_hex(b""));
    }

    #[test]
    fn chunked_upload_is_decoded() {
        let sb = start();
        let mut c = Client::connect(&sb);
        create(&sb, &mut c, &json!({"summary": "chunked"}));
        let content = tricky_content(200_000);
        let body = multipart("log.txt", &content);
        let mut raw = format!(
            "POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=\"{BOUNDARY}\"\r\n\
             Transfer-Encoding: chunked\r\n\r\n",
            upload_path(&sb, "BUG-0001", "Log")
        )
        .into_bytes();
        let mut rest = body.as_slice();
        let mut size = 1;
        while !rest.is_empty() {
            let n = size.min(rest.len());
            raw.extend_from_slice(format!("{n:x};ext=1\r\n").as_bytes());
            raw.extend_from_slice(&rest[..n]);
            raw.extend_from_slice(b"\r\n");
            rest = &rest[n..];
            size = size * 3 + 1;
        }
        raw.extend_from_slice(b"0\r\nX-Trailer: yes\r\n\r\n");
        c.send(&raw);
        let r = c.response().unwrap();
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let up = &sb.uploads()[0];
        assert_eq!(up.file_name, "log.txt");
        assert_eq!(up.size, content.len() as u64);
        assert_eq!(up.sha256_hex, sha256_hex(&content));
        // The connection is still usable.
        assert_eq!(
            create(&sb, &mut c, &json!({"summary": "after"})).status,
            201
        );
    }

    #[test]
    fn large_upload_streams() {
        let sb = start();
        let mut c = Client::connect(&sb);
        create(&sb, &mut c, &json!({"summary": "big"}));
        let content: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
        let r = upload(&sb, &mut c, "BUG-0001", "Log", &content);
        assert_eq!(r.status, 201);
        assert_eq!(sb.uploads()[0].size, content.len() as u64);
        assert_eq!(sb.uploads()[0].sha256_hex, sha256_hex(&content));
    }

    #[test]
    fn upload_rejections() {
        let sb = Sandbox::start(SandboxConfig {
            max_upload_bytes: 1000,
            rate_limit_per_sec: None,
            ..SandboxConfig::default()
        })
        .unwrap();
        let mut c = Client::connect(&sb);
        create(&sb, &mut c, &json!({"summary": "x"}));
        // Single-attachment element.
        assert_eq!(
            upload(&sb, &mut c, "BUG-0001", "CrashLog", b"first").status,
            201
        );
        let r = upload(&sb, &mut c, "BUG-0001", "CrashLog", b"second");
        assert_eq!(r.status, 400);
        assert_eq!(
            r.json(),
            json!({"status": 400, "description": "This file element accepts a single attachment."})
        );
        // Too large.
        let r = upload(&sb, &mut c, "BUG-0001", "Log", &[7u8; 1001]);
        assert_eq!(r.status, 413);
        assert_eq!(
            upload(&sb, &mut c, "BUG-0001", "Log", &[7u8; 1000]).status,
            201
        );
        // Unknown feedback or element.
        assert_eq!(upload(&sb, &mut c, "BUG-0009", "Log", b"x").status, 404);
        assert_eq!(upload(&sb, &mut c, "BUG-0001", "Video", b"x").status, 404);
        // Wrong content type.
        let r = c.request(
            "POST",
            &upload_path(&sb, "BUG-0001", "Log"),
            &[("Content-Type", "application/octet-stream")],
            b"raw",
        );
        assert_eq!(r.status, 415);
        // No part named file.
        let body = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"a.txt\"\r\n\r\nabc\r\n--{BOUNDARY}--\r\n"
        );
        let ct = format!("multipart/form-data; boundary={BOUNDARY}");
        let r = c.request(
            "POST",
            &upload_path(&sb, "BUG-0001", "Log"),
            &[("Content-Type", &ct)],
            body.as_bytes(),
        );
        assert_eq!(r.status, 400);
        assert_eq!(r.json()["invalidParameters"][0]["name"], "file");
        // A file part without a filename.
        let body =
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc\r\n--{BOUNDARY}--\r\n");
        let r = c.request(
            "POST",
            &upload_path(&sb, "BUG-0001", "Log"),
            &[("Content-Type", &ct)],
            body.as_bytes(),
        );
        assert_eq!(r.status, 400);
        assert_eq!(r.json()["invalidParameters"][0]["name"], "file");
        // Truncated multipart.
        let r = c.request(
            "POST",
            &upload_path(&sb, "BUG-0001", "Log"),
            &[("Content-Type", &ct)],
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nab").as_bytes(),
        );
        assert_eq!(r.status, 400);
        let ups = sb.uploads();
        assert_eq!(ups.len(), 2, "{ups:?}");
        // The connection survived every rejection above.
        assert_eq!(
            create(&sb, &mut c, &json!({"summary": "still here"})).status,
            201
        );
    }

    #[test]
    fn big_rejected_upload_is_read_then_answered() {
        let sb = Sandbox::start(SandboxConfig {
            max_upload_bytes: 1000,
            ..SandboxConfig::default()
        })
        .unwrap();
        let mut c = Client::connect(&sb);
        create(&sb, &mut c, &json!({"summary": "x"}));
        // The client writes all 3 MiB before reading; it still gets the 413
        // and the connection stays usable.
        let r = upload(&sb, &mut c, "BUG-0001", "Log", &vec![1u8; 3 << 20]);
        assert_eq!(r.status, 413);
        let r = upload(&sb, &mut c, "BUG-0404", "Log", &vec![1u8; 3 << 20]);
        assert_eq!(r.status, 404);
        assert_eq!(upload(&sb, &mut c, "BUG-0001", "Log", b"small").status, 201);
    }

    #[test]
    fn concurrent_clients_get_unique_sequential_keys() {
        let sb = start();
        sb.set_rate_limit(None);
        let keys: Vec<String> = thread::scope(|s| {
            let workers: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        let mut c = Client::connect(&sb);
                        (0..10)
                            .map(|_| {
                                let r = create(&sb, &mut c, &json!({"summary": "many"}));
                                assert_eq!(r.status, 201);
                                r.json()["key"].as_str().unwrap().to_string()
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect()
        });
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 80);
        assert_eq!(sorted.first().unwrap(), "BUG-0001");
        assert_eq!(sorted.last().unwrap(), "BUG-0080");
        let recorded: Vec<String> = sb.feedback().into_iter().map(|f| f.key).collect();
        assert_eq!(recorded, sorted);
    }

    #[test]
    fn expect_100_continue_is_honoured() {
        let sb = start();
        let mut c = Client::connect(&sb);
        let body = json!({"summary": "patient"}).to_string();
        c.send(
            format!(
                "POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n\
                 Content-Length: {}\r\n\r\n",
                create_path(&sb),
                body.len()
            )
            .as_bytes(),
        );
        let mut line = String::new();
        c.reader.read_line(&mut line).unwrap();
        assert_eq!(line, "HTTP/1.1 100 Continue\r\n");
        c.reader.read_line(&mut line).unwrap();
        c.send(body.as_bytes());
        assert_eq!(c.response().unwrap().status, 201);
    }

    #[test]
    fn rate_limit_answers_429_with_headers() {
        let sb = start();
        sb.set_rate_limit(Some(3));
        let mut c = Client::connect(&sb);
        let statuses: Vec<Resp> = (0..5)
            .map(|_| create(&sb, &mut c, &json!({"summary": "spam"})))
            .collect();
        let codes: Vec<u16> = statuses.iter().map(|r| r.status).collect();
        assert_eq!(codes, [201, 201, 201, 429, 429]);
        assert_eq!(statuses[2].header("x-rate-limit-remaining"), Some("0"));
        let limited = &statuses[3];
        assert_eq!(limited.header("x-rate-limit-remaining"), Some("0"));
        assert_eq!(limited.header("retry-after"), Some("1"));
        assert_eq!(limited.json()["status"], 429);
        assert!(limited.header("x-rate-limit-reset").is_some());
        assert_eq!(sb.feedback().len(), 3);
        thread::sleep(Duration::from_millis(1100));
        assert_eq!(
            create(&sb, &mut c, &json!({"summary": "later"})).status,
            201
        );
        sb.set_rate_limit(None);
        for _ in 0..20 {
            let r = create(&sb, &mut c, &json!({"summary": "free"}));
            assert_eq!(r.status, 201);
        }
    }

    #[test]
    fn fault_status_and_body() {
        let sb = start();
        let mut c = Client::connect(&sb);
        sb.inject(Fault::Status {
            status: 503,
            retry_after: Some("2".into()),
            rate_limit_reset: Some("2030-01-01T00:00:00.000Z".into()),
        });
        sb.inject(Fault::Body {
            status: 201,
            body: "{\"id\":\"abc\",\"ke".into(),
        });
        sb.inject(Fault::rate_limited(1));
        assert_eq!(sb.pending_faults(), 3);
        let r = create(&sb, &mut c, &json!({"summary": "a"}));
        assert_eq!(r.status, 503);
        assert_eq!(r.header("retry-after"), Some("2"));
        assert_eq!(
            r.header("x-rate-limit-reset"),
            Some("2030-01-01T00:00:00.000Z")
        );
        assert_eq!(r.json()["status"], 503);
        let r = create(&sb, &mut c, &json!({"summary": "b"}));
        assert_eq!(r.status, 201);
        assert_eq!(r.body, b"{\"id\":\"abc\",\"ke");
        let r = create(&sb, &mut c, &json!({"summary": "c"}));
        assert_eq!(r.status, 429);
        assert_eq!(r.header("x-rate-limit-remaining"), Some("0"));
        assert!(sb.feedback().is_empty());
        let r = create(&sb, &mut c, &json!({"summary": "d"}));
        assert_eq!(r.status, 201);
        assert_eq!(r.json()["key"], "BUG-0001");
        let faults: Vec<Option<String>> = sb.requests().into_iter().map(|r| r.fault).collect();
        assert_eq!(
            faults,
            [
                Some("status 503".into()),
                Some("body 201".into()),
                Some("status 429".into()),
                None
            ]
        );
        sb.inject(Fault::status(500));
        sb.clear_faults();
        assert_eq!(create(&sb, &mut c, &json!({"summary": "e"})).status, 201);
    }

    #[test]
    fn fault_drop_and_act_then_drop() {
        let sb = start();
        sb.inject(Fault::Drop);
        let mut c = Client::connect(&sb);
        c.send(
            format!(
                "POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{{\"summary\":\"a\"}}",
                create_path(&sb)
            )
            .as_bytes(),
        );
        assert!(c.response().is_err());
        assert!(sb.feedback().is_empty());

        sb.inject(Fault::ActThenDrop);
        let mut c = Client::connect(&sb);
        create_raw_no_answer(&sb, &mut c);
        assert_eq!(sb.feedback().len(), 1);
        assert_eq!(sb.feedback()[0].key, "BUG-0001");

        let reqs = sb.requests();
        assert_eq!(reqs.len(), 2);
        assert_eq!(
            (reqs[0].status, reqs[0].fault.as_deref()),
            (0, Some("drop"))
        );
        assert_eq!(
            (reqs[1].status, reqs[1].fault.as_deref()),
            (0, Some("act_then_drop"))
        );

        // Uploads too: ActThenDrop stores the attachment.
        sb.inject(Fault::ActThenDrop);
        let mut c = Client::connect(&sb);
        let ct = format!("multipart/form-data; boundary={BOUNDARY}");
        let body = multipart("a.bin", b"payload");
        let mut raw = format!(
            "POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
            upload_path(&sb, "BUG-0001", "Log"),
            body.len()
        )
        .into_bytes();
        raw.extend_from_slice(&body);
        c.send(&raw);
        assert!(c.response().is_err());
        assert_eq!(sb.uploads().len(), 1);
    }

    fn create_raw_no_answer(sb: &Sandbox, c: &mut Client) {
        let body = json!({"summary": "acted"}).to_string();
        c.send(
            format!(
                "POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                create_path(sb),
                body.len()
            )
            .as_bytes(),
        );
        assert!(c.response().is_err());
    }

    #[test]
    fn fault_delay() {
        let sb = start();
        sb.inject(Fault::Delay(Duration::from_millis(300)));
        let mut c = Client::connect(&sb);
        let t = Instant::now();
        let r = create(&sb, &mut c, &json!({"summary": "slow"}));
        assert!(t.elapsed() >= Duration::from_millis(300));
        assert_eq!(r.status, 201);
        assert_eq!(sb.requests()[0].fault.as_deref(), Some("delay 300ms"));
        let t = Instant::now();
        assert_eq!(create(&sb, &mut c, &json!({"summary": "fast"})).status, 201);
        assert!(t.elapsed() < Duration::from_millis(300));
    }

    #[test]
    fn lookup_found_and_not_found() {
        let sb = start();
        let mut c = Client::connect(&sb);
        create(&sb, &mut c, &json!({"summary": "first", "clientId": "aaa"}));
        create(
            &sb,
            &mut c,
            &json!({"summary": "WiFi Not Connecting", "clientId": "c 1/2", "count": 3, "gone": null}),
        );
        let lookup = |find: &str| {
            let mut c = Client::connect(&sb);
            c.request(
                "GET",
                &format!(
                    "/api/v1/projects/WidgetPro/feedbackRecordLookups/Lookup?find={find}&apiKey={}",
                    sb.api_key()
                ),
                &[],
                b"",
            )
        };
        let r = lookup("c%201%2F2");
        assert_eq!(r.status, 200);
        let data = r.json()["data"].as_array().unwrap().clone();
        assert_eq!(
            data[0],
            json!({"field": "ID", "dataType": "string", "computedValue": "BUG-0002", "values": ["BUG-0002"]})
        );
        assert_eq!(data[1]["field"], "Summary");
        assert_eq!(data[1]["computedValue"], "WiFi Not Connecting");
        let count = data.iter().find(|f| f["field"] == "count").unwrap();
        assert_eq!(
            count,
            &json!({"field": "count", "dataType": "integer", "computedValue": "3", "values": [3]})
        );
        let gone = data.iter().find(|f| f["field"] == "gone").unwrap();
        assert_eq!(gone["values"], json!([]));
        assert!(data
            .iter()
            .any(|f| f["field"] == "Date Added" && f["dataType"] == "date"));
        assert_eq!(
            lookup("BUG-0001").json()["data"][0]["computedValue"],
            "BUG-0001"
        );
        assert_eq!(
            lookup("BUG-0001?page=1").json()["data"][0]["computedValue"],
            "BUG-0001"
        );
        let r = lookup("nothing");
        assert_eq!(r.status, 200);
        assert_eq!(r.json(), json!({"data": []}));
        let r = lookup("");
        assert_eq!(r.status, 400);
        assert_eq!(r.json()["invalidParameters"][0]["name"], "Find");
        let r = c.request(
            "GET",
            &format!(
                "/api/v1/projects/WidgetPro/feedbackRecordLookups/Other?find=aaa&apiKey={}",
                sb.api_key()
            ),
            &[],
            b"",
        );
        assert_eq!(r.status, 404);
    }

    #[test]
    fn control_endpoints() {
        let sb = start();
        let mut c = Client::connect(&sb);
        let faults = json!([
            {"status": 503},
            {"status": 429, "retry_after": "1"},
            {"drop": true},
            {"act_then_drop": true},
            {"delay_ms": 10},
            {"body": "{not json", "status": 201}
        ]);
        let r = c.request(
            "POST",
            "/_sandbox/faults",
            &[],
            faults.to_string().as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["pending_faults"], 6);
        assert_eq!(sb.pending_faults(), 6);
        let r = c.request("POST", "/_sandbox/faults", &[], b"[{\"status\": 42}]");
        assert_eq!(r.status, 400);
        assert_eq!(sb.pending_faults(), 6);
        let r = c.request("DELETE", "/_sandbox/faults", &[], b"");
        assert_eq!(r.status, 200);
        assert_eq!(sb.pending_faults(), 0);

        c.request(
            "POST",
            "/_sandbox/faults",
            &[],
            b"[{\"status\":429,\"retry_after\":3}]",
        );
        let r = create(&sb, &mut c, &json!({"summary": "a"}));
        assert_eq!(r.status, 429);
        assert_eq!(r.header("retry-after"), Some("3"));
        assert_eq!(
            create(&sb, &mut c, &json!({"summary": "b", "clientId": "x"})).status,
            201
        );

        let r = c.request(
            "POST",
            "/_sandbox/config",
            &[],
            b"{\"rate_limit_per_sec\": null, \"api_key\": \"k2\"}",
        );
        assert_eq!(r.status, 200);
        assert_eq!(sb.api_key(), "k2");
        let r = c.request(
            "POST",
            "/api/v1/projects/WidgetPro/feedback/Mobile?apiKey=sandbox-key",
            &[("Content-Type", "application/json")],
            b"{\"summary\":\"x\"}",
        );
        assert_eq!(r.status, 401);
        assert_eq!(
            r.header("x-rate-limit-remaining"),
            Some(&*UNLIMITED_REMAINING.to_string())
        );

        let r = c.request("GET", "/_sandbox/state", &[], b"");
        assert_eq!(r.status, 200);
        let state = r.json();
        assert_eq!(state["feedback"].as_array().unwrap().len(), 1);
        assert_eq!(state["feedback"][0]["key"], "BUG-0001");
        assert_eq!(state["feedback"][0]["body"]["clientId"], "x");
        assert!(state["feedback"][0]["at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(state["uploads"], json!([]));
        let requests = state["requests"].as_array().unwrap();
        assert_eq!(
            requests.len(),
            3,
            "control requests are not recorded: {requests:?}"
        );
        assert_eq!(
            requests[0],
            json!({"method": "POST", "path": "/api/v1/projects/WidgetPro/feedback/Mobile", "status": 429, "fault": "status 429"})
        );
        assert_eq!(requests[2]["status"], 401);
        assert_eq!(c.request("PUT", "/_sandbox/state", &[], b"").status, 405);
        assert_eq!(c.request("GET", "/_sandbox/nothing", &[], b"").status, 404);
    }

    #[test]
    fn malformed_input_gets_400_not_a_panic() {
        let sb = start();
        for raw in [
            &b"BLAH\r\n\r\n"[..],
            b"GET nopath HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
            b"POST /api/v1/x HTTP/1.1\r\nContent-Length: 12x\r\n\r\n",
            b"POST /api/v1/x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
        ] {
            let mut c = Client::connect(&sb);
            c.send(raw);
            let r = c.response().expect("an answer");
            assert!(r.status == 400 || r.status == 505, "{r:?}");
            assert!(c.is_closed());
        }
        // A bad chunk size inside an otherwise fine request.
        let mut c = Client::connect(&sb);
        c.send(
            format!(
                "POST {} HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                create_path(&sb)
            )
            .as_bytes(),
        );
        assert_eq!(c.response().unwrap().status, 400);
        // Binary garbage.
        let mut c = Client::connect(&sb);
        c.send(&[0xff, 0x00, 0x13, b'\n', b'\n']);
        assert_eq!(c.response().unwrap().status, 400);
        // Still serving.
        let mut c = Client::connect(&sb);
        assert_eq!(create(&sb, &mut c, &json!({"summary": "fine"})).status, 201);
    }

    #[test]
    fn http_1_0_and_head_requests() {
        let sb = start();
        let mut c = Client::connect(&sb);
        c.send(format!("GET /api/v1/x?apiKey={} HTTP/1.0\r\n\r\n", sb.api_key()).as_bytes());
        assert_eq!(c.response().unwrap().status, 404);
        assert!(c.is_closed());
        let mut c = Client::connect(&sb);
        c.send(format!("HEAD /api/v1/x?apiKey={} HTTP/1.1\r\n\r\n", sb.api_key()).as_bytes());
        let mut head = String::new();
        loop {
            let mut line = String::new();
            c.reader.read_line(&mut line).unwrap();
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        assert!(head.starts_with("HTTP/1.1 404"));
        // No body followed: the next answer parses.
        let r = create(&sb, &mut c, &json!({"summary": "after head"}));
        assert_eq!(r.status, 201);
    }

    #[test]
    fn stop_closes_everything() {
        let sb = start();
        let port = sb.port();
        let mut idle = Client::connect(&sb);
        assert_eq!(create(&sb, &mut idle, &json!({"summary": "x"})).status, 201);
        let t = Instant::now();
        sb.stop();
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert!(idle.is_closed());
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    }

    #[test]
    fn drop_interrupts_a_delay() {
        let sb = start();
        sb.inject(Fault::Delay(Duration::from_secs(60)));
        let mut c = Client::connect(&sb);
        c.send(format!("GET /x?apiKey={} HTTP/1.1\r\n\r\n", sb.api_key()).as_bytes());
        thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        drop(sb);
        assert!(t.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn multipart_parser_handles_one_byte_reads() {
        struct Trickle<R>(R);
        impl<R: Read> Read for Trickle<R> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(1);
                self.0.read(&mut buf[..n])
            }
        }
        let content = tricky_content(5000);
        let mut body = b"preamble\r\n".to_vec();
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}  \r\ncontent-disposition: form-data; name=file; filename*=UTF-8''caf%C3%A9.txt\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&content);
        body.extend_from_slice(format!("\r\n--{BOUNDARY}--").as_bytes());
        let file = parse_multipart(
            Trickle(io::Cursor::new(body)),
            BOUNDARY.as_bytes(),
            u64::MAX,
        )
        .unwrap();
        assert_eq!(file.file_name, "café.txt");
        assert_eq!(file.content_type, "application/octet-stream");
        assert_eq!(file.size, 5000);
        assert_eq!(file.sha256_hex, sha256_hex(&content));
    }

    #[test]
    fn helpers() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            iso8601(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            iso8601(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            iso8601(UNIX_EPOCH + Duration::from_secs(4_102_444_799)),
            "2099-12-31T23:59:59.000Z"
        );
        assert_eq!(percent_decode("a%20b+c%zz%4", true), "a b c%zz%4");
        assert_eq!(
            query_param("x=1&apiKey=a%2Bb&apiKey=2", "apiKey").as_deref(),
            Some("a+b")
        );
        assert_eq!(encode_segment("a b/ü"), "a%20b%2F%C3%BC");
        assert_eq!(
            multipart_boundary(Some("multipart/form-data; charset=utf-8; boundary=\"a;b\""))
                .as_deref(),
            Some("a;b")
        );
        assert_eq!(multipart_boundary(Some("multipart/form-data")), None);
        assert_eq!(
            header_params(" name=\"file\"; filename=\"we \\\"ird\\\".txt\""),
            [
                ("name".to_string(), "file".to_string()),
                ("filename".to_string(), "we \"ird\".txt".to_string())
            ]
        );
        assert_eq!(find(b"abcabd", b"abd"), Some(3));
        assert_eq!(find(b"ab", b"abd"), None);
        assert_eq!(parse_chunk_size(b"1A;x=y"), Some(26));
        assert_eq!(parse_chunk_size(b"-1"), None);
        let keys = KeyNode::new("a".into());
        keys.set("b");
        keys.set("b");
        keys.set("c");
        assert_eq!(keys.current(), "c");
        assert_eq!(
            Fault::from_json(&json!({"status": 429, "retry_after": 2})).unwrap(),
            Fault::Status {
                status: 429,
                retry_after: Some("2".into()),
                rate_limit_reset: None
            }
        );
        assert_eq!(
            Fault::from_json(&json!({"body": "x"})).unwrap(),
            Fault::Body {
                status: 200,
                body: "x".into()
            }
        );
        assert!(Fault::from_json(&json!({})).is_err());
    }
}
