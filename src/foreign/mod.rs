//! The uniffi layer: the records, enums, error and callback interface that
//! `uniffi.udl` declares, and `FieldReportClient`, a thin wrapper over
//! [`crate::Client`]. Everything here converts to and from the core types;
//! nothing in the core knows of uniffi.
//!
//! The scaffolding is included in this module, not at the crate root,
//! because the UDL's names (`Config`, `Feedback`, `Attachment`, ...) are
//! the names foreign code should see, and they would clash with the core
//! types of the same names re-exported at the crate root.
//!
//! Panics: uniffi catches a panic in any exported call and raises it in the
//! foreign language as an internal error (this needs `panic = "unwind"`).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config as core_config;
use crate::report as core_report;
use crate::transport as core_transport;
use crate::Error as CoreError;

mod destination;
pub use destination::{AbcDestination, ApptentiveDestination};

uniffi::include_scaffolding!("uniffi");

/// The library's version.
fn version() -> String {
    crate::VERSION.to_string()
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// The foreign mirror of [`crate::Error`]; see there for each variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldReportError {
    InvalidConfig { reason: String },
    InvalidInput { reason: String },
    AttachmentTooLarge { name: String, size: u64, limit: u64 },
    AttachmentUnreadable { name: String, reason: String },
    StorageFull,
    OutboxFull { reason: String },
    Storage { reason: String },
    NotFound { id: i64 },
    InvalidState { reason: String },
    Closed,
}

impl From<CoreError> for FieldReportError {
    fn from(e: CoreError) -> Self {
        // Exhaustive on purpose: a new core variant must be mirrored here
        // (and in uniffi.udl) before the crate compiles again.
        match e {
            CoreError::InvalidConfig { reason } => FieldReportError::InvalidConfig { reason },
            CoreError::InvalidInput { reason } => FieldReportError::InvalidInput { reason },
            CoreError::AttachmentTooLarge { name, size, limit } => {
                FieldReportError::AttachmentTooLarge { name, size, limit }
            }
            CoreError::AttachmentUnreadable { name, reason } => {
                FieldReportError::AttachmentUnreadable { name, reason }
            }
            CoreError::StorageFull => FieldReportError::StorageFull,
            CoreError::OutboxFull { reason } => FieldReportError::OutboxFull { reason },
            CoreError::Storage { reason } => FieldReportError::Storage { reason },
            CoreError::NotFound { id } => FieldReportError::NotFound { id },
            CoreError::InvalidState { reason } => FieldReportError::InvalidState { reason },
            CoreError::Closed => FieldReportError::Closed,
        }
    }
}

impl From<FieldReportError> for CoreError {
    fn from(e: FieldReportError) -> Self {
        match e {
            FieldReportError::InvalidConfig { reason } => CoreError::InvalidConfig { reason },
            FieldReportError::InvalidInput { reason } => CoreError::InvalidInput { reason },
            FieldReportError::AttachmentTooLarge { name, size, limit } => {
                CoreError::AttachmentTooLarge { name, size, limit }
            }
            FieldReportError::AttachmentUnreadable { name, reason } => {
                CoreError::AttachmentUnreadable { name, reason }
            }
            FieldReportError::StorageFull => CoreError::StorageFull,
            FieldReportError::OutboxFull { reason } => CoreError::OutboxFull { reason },
            FieldReportError::Storage { reason } => CoreError::Storage { reason },
            FieldReportError::NotFound { id } => CoreError::NotFound { id },
            FieldReportError::InvalidState { reason } => CoreError::InvalidState { reason },
            FieldReportError::Closed => CoreError::Closed,
        }
    }
}

/// The core error's message: one wording in every language.
impl fmt::Display for FieldReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&CoreError::from(self.clone()), f)
    }
}

impl std::error::Error for FieldReportError {}

type Result<T, E = FieldReportError> = std::result::Result<T, E>;

fn invalid_input(reason: impl Into<String>) -> FieldReportError {
    FieldReportError::InvalidInput {
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------

/// See `Config` in uniffi.udl.
#[derive(Clone)]
pub struct Config {
    pub outbox_dir: String,
    pub project_key: String,
    pub feedback_type_key: String,
    pub api_key: String,
    pub base_url: Option<String>,
    pub company: Option<String>,
    pub allow_insecure_http: bool,
    pub client_id_field: Option<String>,
    pub lookup_key: Option<String>,
    pub app: Option<AppInfo>,
    pub policy: Option<Policy>,
    pub context_fields: HashMap<String, String>,
    pub crash_element_key: Option<String>,
    pub consent_default: bool,
    pub abc: Option<AbcDestination>,
    pub apptentive: Option<ApptentiveDestination>,
}

/// Shown by foreign `toString()`/`__str__`/`description`: the core
/// config's `Debug`, which redacts the API key. A config the core refuses
/// (a bad destination setting) is shown field by field, the key redacted
/// all the same: printing it is how one finds what is wrong.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.clone().into_core() {
            Ok(core) => fmt::Debug::fmt(&core, f),
            Err(_) => f
                .debug_struct("Config")
                .field("outbox_dir", &self.outbox_dir)
                .field("project_key", &self.project_key)
                .field("feedback_type_key", &self.feedback_type_key)
                .field("api_key", &"<redacted>")
                .field("base_url", &self.base_url)
                .field("company", &self.company)
                .field("allow_insecure_http", &self.allow_insecure_http)
                .field("client_id_field", &self.client_id_field)
                .field("lookup_key", &self.lookup_key)
                .field("app", &self.app)
                .field("policy", &self.policy)
                .field("context_fields", &self.context_fields)
                .field("crash_element_key", &self.crash_element_key)
                .field("consent_default", &self.consent_default)
                .field("abc", &self.abc)
                .field("apptentive", &self.apptentive)
                .finish(),
        }
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl Config {
    /// The core config; refuses a destination setting that cannot be used
    /// (the core checks the rest at open).
    fn into_core(self) -> Result<core_config::Config> {
        let outbox = PathBuf::from(&self.outbox_dir);
        let mut c = match destination::chosen(&self)? {
            core_config::Destination::Centercode => self.centercode(),
            core_config::Destination::Abc(a) => core_config::Config::abc(outbox, a),
            core_config::Destination::Apptentive(a) => core_config::Config::apptentive(outbox, a),
        };
        if !matches!(c.destination, core_config::Destination::Centercode) {
            c.server.allow_insecure_http = self.allow_insecure_http;
            // Passed on so that the core's open refuses them, with its own
            // words, as it does for a Rust caller.
            c.context_fields = self.context_fields.clone().into_iter().collect();
        }
        if let Some(app) = self.app {
            c.app = core_config::AppInfo {
                name: app.name,
                version: app.version,
                build: app.build,
                locale: app.locale,
                device_model: app.device_model,
                device: app.device.into_iter().collect(),
            };
        }
        if let Some(p) = self.policy {
            p.apply(&mut c.policy);
        }
        c.consent_default = self.consent_default;
        Ok(c)
    }

    /// The Centercode config, as before other destinations existed.
    fn centercode(&self) -> core_config::Config {
        let this = self.clone();
        let server = core_config::ServerConfig {
            base_url: this.base_url,
            company: this.company,
            project_key: this.project_key,
            feedback_type_key: this.feedback_type_key,
            api_key: core_config::ApiKey::new(this.api_key),
            allow_insecure_http: this.allow_insecure_http,
            client_id_field: this.client_id_field,
            lookup_key: this.lookup_key,
        };
        let mut c = core_config::Config::new(PathBuf::from(this.outbox_dir), server);
        c.context_fields = this.context_fields.into_iter().collect();
        if let Some(k) = this.crash_element_key {
            c.crash_element_key = k;
        }
        c
    }
}

/// See `AppInfo` in uniffi.udl.
#[derive(Debug, Clone)]
pub struct AppInfo {
    pub name: Option<String>,
    pub version: Option<String>,
    pub build: Option<String>,
    pub locale: Option<String>,
    pub device_model: Option<String>,
    pub device: HashMap<String, String>,
}

/// See [`core_config::Durability`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    Full,
    Normal,
}

/// Overrides of [`core_config::Policy`]; `None` keeps the default.
#[derive(Debug, Clone)]
pub struct Policy {
    pub max_reports: Option<u32>,
    pub max_bytes: Option<u64>,
    pub max_age: Option<Duration>,
    pub max_attachment_bytes: Option<u64>,
    pub max_attachments: Option<u32>,
    pub max_summary_chars: Option<u32>,
    pub max_description_chars: Option<u32>,
    pub max_fields: Option<u32>,
    pub max_field_bytes: Option<u32>,
    pub retry_base: Option<Duration>,
    pub retry_max: Option<Duration>,
    pub max_attempts: Option<u32>,
    pub max_requests_per_sec: Option<u32>,
    pub connect_timeout: Option<Duration>,
    pub request_timeout: Option<Duration>,
    pub min_upload_bytes_per_sec: Option<u64>,
    pub metered_max_upload_bytes: Option<u64>,
    pub auth_probe_interval: Option<Duration>,
    pub sender_interval: Option<Duration>,
    pub sender_flush_budget: Option<Duration>,
    pub keep_delivered: Option<Duration>,
    pub busy_timeout: Option<Duration>,
    pub durability: Option<Durability>,
}

impl Policy {
    fn apply(self, p: &mut core_config::Policy) {
        fn set<T>(slot: &mut T, value: Option<T>) {
            if let Some(v) = value {
                *slot = v;
            }
        }
        set(&mut p.max_reports, self.max_reports);
        set(&mut p.max_bytes, self.max_bytes);
        set(&mut p.max_age, self.max_age);
        set(&mut p.max_attachment_bytes, self.max_attachment_bytes);
        set(&mut p.max_attachments, self.max_attachments);
        set(&mut p.max_summary_chars, self.max_summary_chars);
        set(&mut p.max_description_chars, self.max_description_chars);
        set(&mut p.max_fields, self.max_fields);
        set(&mut p.max_field_bytes, self.max_field_bytes);
        set(&mut p.retry_base, self.retry_base);
        set(&mut p.retry_max, self.retry_max);
        set(&mut p.max_attempts, self.max_attempts);
        set(&mut p.max_requests_per_sec, self.max_requests_per_sec);
        set(&mut p.connect_timeout, self.connect_timeout);
        set(&mut p.request_timeout, self.request_timeout);
        set(
            &mut p.min_upload_bytes_per_sec,
            self.min_upload_bytes_per_sec,
        );
        set(
            &mut p.metered_max_upload_bytes,
            self.metered_max_upload_bytes,
        );
        set(&mut p.auth_probe_interval, self.auth_probe_interval);
        set(&mut p.sender_interval, self.sender_interval);
        set(&mut p.sender_flush_budget, self.sender_flush_budget);
        set(&mut p.keep_delivered, self.keep_delivered);
        set(&mut p.busy_timeout, self.busy_timeout);
        set(
            &mut p.durability,
            self.durability.map(|d| match d {
                Durability::Full => core_config::Durability::Full,
                Durability::Normal => core_config::Durability::Normal,
            }),
        );
    }
}

// ---------------------------------------------------------------------------
// What goes in
// ---------------------------------------------------------------------------

/// An extra field as JSON text.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub json_value: String,
}

impl Field {
    fn into_core(self) -> Result<(String, serde_json::Value)> {
        match serde_json::from_str(&self.json_value) {
            Ok(v) => Ok((self.name, v)),
            Err(e) => Err(invalid_input(format!(
                "field {:?}: json_value is not JSON text ({e}); \
                 a string value must be quoted, e.g. \"\\\"text\\\"\"",
                self.name
            ))),
        }
    }
}

fn fields_into_core(fields: Vec<Field>) -> Result<Vec<(String, serde_json::Value)>> {
    fields.into_iter().map(Field::into_core).collect()
}

/// An attachment from a path or from bytes.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub element_key: String,
    pub path: Option<String>,
    pub data: Option<Vec<u8>>,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
}

impl Attachment {
    fn into_core(self) -> Result<core_report::Attachment> {
        let source = match (self.path, self.data) {
            (Some(p), None) => core_report::AttachmentSource::Path(PathBuf::from(p)),
            (None, Some(b)) => core_report::AttachmentSource::Bytes(b),
            (Some(_), Some(_)) => {
                return Err(invalid_input(format!(
                    "attachment for element {:?} has both path and data: give exactly one",
                    self.element_key
                )))
            }
            (None, None) => {
                return Err(invalid_input(format!(
                    "attachment for element {:?} has neither path nor data: give exactly one",
                    self.element_key
                )))
            }
        };
        Ok(core_report::Attachment {
            element_key: self.element_key,
            file_name: self.file_name,
            content_type: self.content_type,
            source,
        })
    }
}

fn attachments_into_core(list: Vec<Attachment>) -> Result<Vec<core_report::Attachment>> {
    list.into_iter().map(Attachment::into_core).collect()
}

/// Feedback a person wrote.
#[derive(Debug, Clone)]
pub struct Feedback {
    pub summary: String,
    pub description: Option<String>,
    pub submitter: Option<String>,
    pub fields: Vec<Field>,
    pub attachments: Vec<Attachment>,
}

impl Feedback {
    fn into_core(self) -> Result<core_report::Feedback> {
        Ok(core_report::Feedback {
            summary: self.summary,
            description: self.description,
            submitter: self.submitter,
            fields: fields_into_core(self.fields)?,
            attachments: attachments_into_core(self.attachments)?,
        })
    }
}

/// A crash report from text or a file.
#[derive(Debug, Clone)]
pub struct CrashReport {
    pub text: Option<String>,
    pub path: Option<String>,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub submitter: Option<String>,
    pub file_name: Option<String>,
    pub fields: Vec<Field>,
    pub attachments: Vec<Attachment>,
}

impl CrashReport {
    fn into_core(self) -> Result<core_report::CrashReport> {
        let log = match (self.text, self.path) {
            (Some(t), None) => core_report::CrashLog::Text(t),
            (None, Some(p)) => core_report::CrashLog::File(PathBuf::from(p)),
            (Some(_), Some(_)) => {
                return Err(invalid_input(
                    "crash report has both text and path: give exactly one",
                ))
            }
            (None, None) => {
                return Err(invalid_input(
                    "crash report has neither text nor path: give exactly one",
                ))
            }
        };
        Ok(core_report::CrashReport {
            log,
            summary: self.summary,
            description: self.description,
            submitter: self.submitter,
            file_name: self.file_name,
            fields: fields_into_core(self.fields)?,
            attachments: attachments_into_core(self.attachments)?,
        })
    }
}

/// One report of a batch; see [`core_report::Submission`].
#[derive(Debug, Clone)]
pub enum Submission {
    Feedback { feedback: Feedback },
    Crash { crash: CrashReport },
}

impl Submission {
    fn into_core(self) -> Result<core_report::Submission> {
        Ok(match self {
            Submission::Feedback { feedback } => {
                core_report::Submission::Feedback(feedback.into_core()?)
            }
            Submission::Crash { crash } => core_report::Submission::Crash(crash.into_core()?),
        })
    }
}

/// Converts a batch, naming the item a conversion error is about the way
/// the core names it (`batch item N: ` before the reason, same kind).
fn batch_into_core(reports: Vec<Submission>) -> Result<Vec<core_report::Submission>> {
    reports
        .into_iter()
        .enumerate()
        .map(|(index, r)| r.into_core().map_err(|e| in_batch(index, e)))
        .collect()
}

/// `e`, about item `index` of a batch: the reason (when it has one) starts
/// with `batch item N: `, as in the core's errors about a batch item.
fn in_batch(index: usize, e: FieldReportError) -> FieldReportError {
    let at = |reason: String| format!("batch item {index}: {reason}");
    match e {
        FieldReportError::InvalidConfig { reason } => {
            FieldReportError::InvalidConfig { reason: at(reason) }
        }
        FieldReportError::InvalidInput { reason } => {
            FieldReportError::InvalidInput { reason: at(reason) }
        }
        FieldReportError::AttachmentUnreadable { name, reason } => {
            FieldReportError::AttachmentUnreadable {
                name,
                reason: at(reason),
            }
        }
        FieldReportError::OutboxFull { reason } => {
            FieldReportError::OutboxFull { reason: at(reason) }
        }
        FieldReportError::Storage { reason } => FieldReportError::Storage { reason: at(reason) },
        FieldReportError::InvalidState { reason } => {
            FieldReportError::InvalidState { reason: at(reason) }
        }
        other => other,
    }
}

// ---------------------------------------------------------------------------
// What comes out
// ---------------------------------------------------------------------------

/// See [`core_report::ReportState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportState {
    Queued,
    Created,
    Delivered,
    Dead,
    Evicted,
}

impl From<core_report::ReportState> for ReportState {
    fn from(s: core_report::ReportState) -> Self {
        match s {
            core_report::ReportState::Queued => ReportState::Queued,
            core_report::ReportState::Created => ReportState::Created,
            core_report::ReportState::Delivered => ReportState::Delivered,
            core_report::ReportState::Dead => ReportState::Dead,
            core_report::ReportState::Evicted => ReportState::Evicted,
        }
    }
}

impl From<ReportState> for core_report::ReportState {
    fn from(s: ReportState) -> Self {
        match s {
            ReportState::Queued => core_report::ReportState::Queued,
            ReportState::Created => core_report::ReportState::Created,
            ReportState::Delivered => core_report::ReportState::Delivered,
            ReportState::Dead => core_report::ReportState::Dead,
            ReportState::Evicted => core_report::ReportState::Evicted,
        }
    }
}

/// See [`core_report::AttachmentState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttachmentState {
    Pending,
    Uploaded,
    Rejected,
}

impl From<core_report::AttachmentState> for AttachmentState {
    fn from(s: core_report::AttachmentState) -> Self {
        match s {
            core_report::AttachmentState::Pending => AttachmentState::Pending,
            core_report::AttachmentState::Uploaded => AttachmentState::Uploaded,
            core_report::AttachmentState::Rejected => AttachmentState::Rejected,
        }
    }
}

/// See [`core_report::ReportKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportKind {
    Feedback,
    Crash,
}

impl From<core_report::ReportKind> for ReportKind {
    fn from(k: core_report::ReportKind) -> Self {
        match k {
            core_report::ReportKind::Feedback => ReportKind::Feedback,
            core_report::ReportKind::Crash => ReportKind::Crash,
        }
    }
}

impl From<ReportKind> for core_report::ReportKind {
    fn from(k: ReportKind) -> Self {
        match k {
            ReportKind::Feedback => core_report::ReportKind::Feedback,
            ReportKind::Crash => core_report::ReportKind::Crash,
        }
    }
}

/// See [`core_report::InvalidParameter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidParameter {
    pub name: String,
    pub description: String,
}

/// See [`core_report::DeliveryError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryError {
    pub status: Option<u16>,
    pub message: String,
    pub invalid_parameters: Vec<InvalidParameter>,
}

impl From<core_report::DeliveryError> for DeliveryError {
    fn from(e: core_report::DeliveryError) -> Self {
        DeliveryError {
            status: e.status,
            message: e.message,
            invalid_parameters: e
                .invalid_parameters
                .into_iter()
                .map(|p| InvalidParameter {
                    name: p.name,
                    description: p.description,
                })
                .collect(),
        }
    }
}

/// See [`core_report::AttachmentStatus`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentStatus {
    pub element_key: String,
    pub file_name: String,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
    pub state: AttachmentState,
    pub reason: Option<String>,
}

impl From<core_report::AttachmentStatus> for AttachmentStatus {
    fn from(a: core_report::AttachmentStatus) -> Self {
        AttachmentStatus {
            element_key: a.element_key,
            file_name: a.file_name,
            content_type: a.content_type,
            size: a.size,
            sha256: a.sha256,
            state: a.state.into(),
            reason: a.reason,
        }
    }
}

/// See [`core_report::ReportStatus`]; the context is JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportStatus {
    pub id: i64,
    pub client_id: String,
    pub seq: i64,
    pub kind: ReportKind,
    pub state: ReportState,
    pub summary: String,
    pub submitted_at: SystemTime,
    pub attempts: u32,
    pub next_attempt_at: Option<SystemTime>,
    pub server_key: Option<String>,
    pub server_url: Option<String>,
    pub last_error: Option<DeliveryError>,
    pub attachments: Vec<AttachmentStatus>,
    pub context_json: String,
}

impl From<core_report::ReportStatus> for ReportStatus {
    fn from(s: core_report::ReportStatus) -> Self {
        ReportStatus {
            id: s.id,
            client_id: s.client_id,
            seq: s.seq,
            kind: s.kind.into(),
            state: s.state.into(),
            summary: s.summary,
            submitted_at: s.submitted_at,
            attempts: s.attempts,
            next_attempt_at: s.next_attempt_at,
            server_key: s.server_key,
            server_url: s.server_url,
            last_error: s.last_error.map(Into::into),
            attachments: s.attachments.into_iter().map(Into::into).collect(),
            context_json: s.context.to_string(),
        }
    }
}

/// See [`core_report::Receipt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub id: i64,
    pub state: ReportState,
    pub server_key: Option<String>,
    pub server_url: Option<String>,
    pub error: Option<DeliveryError>,
    pub rejected_attachments: Vec<String>,
}

impl From<core_report::Receipt> for Receipt {
    fn from(r: core_report::Receipt) -> Self {
        Receipt {
            id: r.id,
            state: r.state.into(),
            server_key: r.server_key,
            server_url: r.server_url,
            error: r.error.map(Into::into),
            rejected_attachments: r.rejected_attachments,
        }
    }
}

/// See [`core_report::FlushResult`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlushResult {
    pub receipts: Vec<Receipt>,
    pub pending: u64,
    pub dead: u64,
    pub stopped: Option<String>,
}

impl From<core_report::FlushResult> for FlushResult {
    fn from(r: core_report::FlushResult) -> Self {
        FlushResult {
            receipts: r.receipts.into_iter().map(Into::into).collect(),
            pending: r.pending,
            dead: r.dead,
            stopped: r.stopped,
        }
    }
}

/// See [`core_report::ReportFilter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFilter {
    pub states: Vec<ReportState>,
    pub kind: Option<ReportKind>,
    pub limit: Option<u32>,
}

impl From<ReportFilter> for core_report::ReportFilter {
    fn from(f: ReportFilter) -> Self {
        core_report::ReportFilter {
            states: f.states.into_iter().map(Into::into).collect(),
            kind: f.kind.map(Into::into),
            limit: f.limit,
        }
    }
}

/// See [`core_report::Stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub pending: u64,
    pub delivered: u64,
    pub dead: u64,
    pub bytes: u64,
    pub oldest_pending_age_secs: Option<u64>,
    pub last_error: Option<DeliveryError>,
    pub next_attempt_at: Option<SystemTime>,
    pub evicted: u64,
    pub evicted_feedback: u64,
    pub ambiguous_resends: u64,
    pub paused_for_auth: bool,
    pub consent: bool,
    pub moved_aside: Option<String>,
}

impl From<core_report::Stats> for Stats {
    fn from(s: core_report::Stats) -> Self {
        Stats {
            pending: s.pending,
            delivered: s.delivered,
            dead: s.dead,
            bytes: s.bytes,
            oldest_pending_age_secs: s.oldest_pending_age_secs,
            last_error: s.last_error.map(Into::into),
            next_attempt_at: s.next_attempt_at,
            evicted: s.evicted,
            evicted_feedback: s.evicted_feedback,
            ambiguous_resends: s.ambiguous_resends,
            paused_for_auth: s.paused_for_auth,
            consent: s.consent,
            moved_aside: s.moved_aside,
        }
    }
}

/// See [`core_report::Event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Delivered {
        receipt: Receipt,
    },
    AttachmentRejected {
        id: i64,
        file_name: String,
        reason: String,
    },
    Failed {
        id: i64,
        error: DeliveryError,
        retry_at: SystemTime,
    },
    Dead {
        id: i64,
        error: DeliveryError,
    },
    Evicted {
        id: i64,
        reason: String,
    },
    Paused {
        error: DeliveryError,
    },
}

impl From<core_report::Event> for Event {
    fn from(e: core_report::Event) -> Self {
        use core_report::Event as E;
        match e {
            E::Delivered { receipt } => Event::Delivered {
                receipt: receipt.into(),
            },
            E::AttachmentRejected {
                id,
                file_name,
                reason,
            } => Event::AttachmentRejected {
                id,
                file_name,
                reason,
            },
            E::Failed {
                id,
                error,
                retry_at,
            } => Event::Failed {
                id,
                error: error.into(),
                retry_at,
            },
            E::Dead { id, error } => Event::Dead {
                id,
                error: error.into(),
            },
            E::Evicted { id, reason } => Event::Evicted { id, reason },
            E::Paused { error } => Event::Paused {
                error: error.into(),
            },
        }
    }
}

// ---------------------------------------------------------------------------
// The listener and the client
// ---------------------------------------------------------------------------

/// Implemented in the foreign language; see `DeliveryListener` in uniffi.udl.
pub trait DeliveryListener: Send + Sync {
    /// One event.
    fn on_event(&self, event: Event) -> Result<(), ListenerError>;
}

/// Why a foreign listener failed; see `ListenerError` in uniffi.udl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerError {
    /// The listener's exception, as the foreign language prints it.
    Failed { reason: String },
}

impl fmt::Display for ListenerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenerError::Failed { reason } => f.write_str(reason),
        }
    }
}

impl std::error::Error for ListenerError {}

/// Any exception the listener throws. Declaring the callback as throwing
/// makes uniffi hand it over as a value instead of panicking, which would
/// print a Rust backtrace for an app bug.
impl From<uniffi::UnexpectedUniFFICallbackError> for ListenerError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        ListenerError::Failed { reason: e.reason }
    }
}

/// The longest line printed about a failed listener.
const MAX_LISTENER_LINE: usize = 300;

/// The one line printed for a listener's exception: its first line (a JVM
/// stack trace follows the message), cut to [`MAX_LISTENER_LINE`].
fn listener_failure_line(error: &ListenerError) -> String {
    let ListenerError::Failed { reason } = error;
    let mut first = reason.lines().next().unwrap_or("").trim().to_string();
    if first.is_empty() {
        first = "(no message)".to_string();
    }
    if first.len() > MAX_LISTENER_LINE {
        let mut cut = MAX_LISTENER_LINE;
        while !first.is_char_boundary(cut) {
            cut -= 1;
        }
        first.truncate(cut);
        first.push('…');
    }
    format!(
        "fieldreport: the DeliveryListener threw {first}; delivery goes on \
         (later exceptions of this listener are not shown)"
    )
}

/// Adapts a foreign listener to the core's [`core_report::Listener`]. An
/// exception is an app bug that must not stop delivery: the first one of
/// each listener is printed as one line on stderr, the rest are ignored.
struct ListenerAdapter {
    listener: Box<dyn DeliveryListener>,
    /// Whether an exception of this listener was printed already.
    reported: AtomicBool,
}

impl ListenerAdapter {
    fn new(listener: Box<dyn DeliveryListener>) -> Self {
        ListenerAdapter {
            listener,
            reported: AtomicBool::new(false),
        }
    }

    /// Delivers one event; returns the line to print for a failure, the
    /// first time only.
    fn deliver(&self, event: Event) -> Option<String> {
        let error = self.listener.on_event(event).err()?;
        if self.reported.swap(true, Ordering::Relaxed) {
            return None;
        }
        Some(listener_failure_line(&error))
    }
}

impl core_report::Listener for ListenerAdapter {
    fn on_event(&self, event: core_report::Event) {
        if let Some(line) = self.deliver(event.into()) {
            eprintln!("{line}");
        }
    }
}

/// Implemented in the foreign language; see `HttpTransport` in uniffi.udl.
pub trait HttpTransport: Send + Sync {
    /// Sends one request.
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError>;
}

/// One HTTP header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpHeader {
    pub name: String,
    pub value: String,
}

/// The foreign mirror of [`core_transport::HttpBody`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpBody {
    Empty,
    Bytes {
        data: Vec<u8>,
    },
    File {
        prefix: Vec<u8>,
        path: String,
        suffix: Vec<u8>,
    },
}

/// The foreign mirror of [`core_transport::HttpRequest`].
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<HttpHeader>,
    pub body: HttpBody,
    pub timeout_ms: u64,
}

impl HttpRequest {
    /// The core's form, whose `Debug` leaves the URL's query (the API key) out.
    fn to_core(&self) -> core_transport::HttpRequest {
        core_transport::HttpRequest {
            method: self.method.clone(),
            url: self.url.clone(),
            headers: self
                .headers
                .iter()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect(),
            body: match &self.body {
                HttpBody::Empty => core_transport::HttpBody::Empty,
                HttpBody::Bytes { data } => core_transport::HttpBody::Bytes(data.clone()),
                HttpBody::File {
                    prefix,
                    path,
                    suffix,
                } => core_transport::HttpBody::File {
                    prefix: prefix.clone(),
                    path: PathBuf::from(path),
                    suffix: suffix.clone(),
                },
            },
            timeout: Duration::from_millis(self.timeout_ms),
        }
    }
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_core(), f)
    }
}

impl fmt::Display for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The longest reason kept from a foreign exception (its stack trace, on
/// the JVM, can run to kilobytes).
const MAX_FOREIGN_REASON: usize = 1000;

/// The foreign mirror of [`core_transport::HttpResponse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<HttpHeader>,
    pub body: Vec<u8>,
}

/// The foreign mirror of [`core_transport::TransportError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    NotSent { reason: String },
    Failed { reason: String },
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&core_transport::TransportError::from(self.clone()), f)
    }
}

impl std::error::Error for TransportError {}

/// A foreign exception that is not a `TransportError`: it may have come
/// after the request left.
impl From<uniffi::UnexpectedUniFFICallbackError> for TransportError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        let mut reason = e.reason;
        if reason.len() > MAX_FOREIGN_REASON {
            let mut cut = MAX_FOREIGN_REASON;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
            reason.push('…');
        }
        TransportError::Failed { reason }
    }
}

impl From<TransportError> for core_transport::TransportError {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::NotSent { reason } => core_transport::TransportError::NotSent(reason),
            TransportError::Failed { reason } => core_transport::TransportError::Failed(reason),
        }
    }
}

fn headers_of(list: Vec<(String, String)>) -> Vec<HttpHeader> {
    list.into_iter()
        .map(|(name, value)| HttpHeader { name, value })
        .collect()
}

/// Adapts a foreign transport to the core's [`core_transport::Transport`].
struct TransportAdapter(Box<dyn HttpTransport>);

impl core_transport::Transport for TransportAdapter {
    fn send(
        &self,
        r: core_transport::HttpRequest,
    ) -> Result<core_transport::HttpResponse, core_transport::TransportError> {
        let body = match r.body {
            core_transport::HttpBody::Empty => HttpBody::Empty,
            core_transport::HttpBody::Bytes(data) => HttpBody::Bytes { data },
            core_transport::HttpBody::File {
                prefix,
                path,
                suffix,
            } => HttpBody::File {
                prefix,
                // The outbox's own file names: always UTF-8.
                path: path.to_string_lossy().into_owned(),
                suffix,
            },
        };
        let request = HttpRequest {
            method: r.method,
            url: r.url,
            headers: headers_of(r.headers),
            body,
            timeout_ms: u64::try_from(r.timeout.as_millis()).unwrap_or(u64::MAX),
        };
        let answer = self.0.send(request)?;
        Ok(core_transport::HttpResponse {
            status: answer.status,
            headers: answer
                .headers
                .into_iter()
                .map(|h| (h.name, h.value))
                .collect(),
            body: answer.body,
        })
    }
}

/// The foreign handle on a [`crate::Client`].
pub struct FieldReportClient {
    inner: crate::Client,
}

impl FieldReportClient {
    fn new(config: Config) -> Result<Self> {
        Ok(FieldReportClient {
            inner: crate::Client::open(config.into_core()?)?,
        })
    }

    fn open_with_transport(config: Config, transport: Box<dyn HttpTransport>) -> Result<Self> {
        let mut core = config.into_core()?;
        core.transport = Some(Arc::new(TransportAdapter(transport)));
        Ok(FieldReportClient {
            inner: crate::Client::open(core)?,
        })
    }

    fn submit(&self, feedback: Feedback) -> Result<i64> {
        Ok(self.inner.submit(feedback.into_core()?)?)
    }

    fn submit_crash(&self, crash: CrashReport) -> Result<i64> {
        Ok(self.inner.submit_crash(crash.into_core()?)?)
    }

    fn submit_many(&self, reports: Vec<Submission>) -> Result<Vec<i64>> {
        Ok(self.inner.submit_many(batch_into_core(reports)?)?)
    }

    fn flush(&self, budget: Duration) -> Result<FlushResult> {
        Ok(self.inner.flush(budget)?.into())
    }

    fn report(&self, id: i64) -> Result<ReportStatus> {
        Ok(self.inner.report(id)?.into())
    }

    fn reports(&self, filter: ReportFilter) -> Result<Vec<ReportStatus>> {
        let list = self.inner.reports(&filter.into())?;
        Ok(list.into_iter().map(Into::into).collect())
    }

    fn stats(&self) -> Result<Stats> {
        Ok(self.inner.stats()?.into())
    }

    fn retry(&self, id: i64) -> Result<()> {
        Ok(self.inner.retry(id)?)
    }

    fn purge(&self, id: i64) -> Result<()> {
        Ok(self.inner.purge(id)?)
    }

    fn purge_all(&self) -> Result<()> {
        Ok(self.inner.purge_all()?)
    }

    fn set_consent(&self, granted: bool) -> Result<()> {
        Ok(self.inner.set_consent(granted)?)
    }

    fn set_online(&self, online: bool) {
        self.inner.set_online(online);
    }

    fn set_metered(&self, metered: bool) {
        self.inner.set_metered(metered);
    }

    fn set_api_key(&self, api_key: String) -> Result<()> {
        Ok(self.inner.set_api_key(&api_key)?)
    }

    fn set_listener(&self, listener: Option<Box<dyn DeliveryListener>>) {
        self.inner.set_listener(
            listener.map(|l| Arc::new(ListenerAdapter::new(l)) as Arc<dyn core_report::Listener>),
        );
    }

    fn start_sender(&self) -> Result<()> {
        Ok(self.inner.start_sender()?)
    }

    fn stop_sender(&self) {
        self.inner.stop_sender();
    }

    fn close(&self) {
        self.inner.close();
    }

    fn moved_aside(&self) -> Option<String> {
        self.inner
            .moved_aside()
            .map(|p| p.to_string_lossy().into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn config(dir: &str) -> Config {
        Config {
            outbox_dir: dir.into(),
            project_key: "WidgetPro".into(),
            feedback_type_key: "Mobile".into(),
            api_key: "very-secret-key-42".into(),
            base_url: Some("http://127.0.0.1:9/api/v1".into()),
            company: None,
            allow_insecure_http: false,
            client_id_field: None,
            lookup_key: None,
            app: None,
            policy: None,
            context_fields: HashMap::new(),
            crash_element_key: None,
            consent_default: true,
            abc: None,
            apptentive: None,
        }
    }

    #[test]
    fn config_never_prints_the_api_key() {
        let c = config("/tmp/x");
        for text in [format!("{c}"), format!("{c:?}")] {
            assert!(!text.contains("very-secret-key-42"), "{text}");
            assert!(text.contains("redacted"), "{text}");
        }
    }

    #[test]
    fn policy_overrides_only_what_is_set() {
        let mut c = config("/tmp/x");
        c.policy = Some(Policy {
            max_reports: Some(7),
            max_bytes: None,
            max_age: None,
            max_attachment_bytes: None,
            max_attachments: None,
            max_summary_chars: None,
            max_description_chars: None,
            max_fields: None,
            max_field_bytes: None,
            retry_base: Some(Duration::from_millis(10)),
            retry_max: None,
            max_attempts: None,
            max_requests_per_sec: Some(0),
            connect_timeout: None,
            request_timeout: None,
            min_upload_bytes_per_sec: None,
            metered_max_upload_bytes: None,
            auth_probe_interval: None,
            sender_interval: None,
            sender_flush_budget: None,
            keep_delivered: None,
            busy_timeout: None,
            durability: Some(Durability::Normal),
        });
        let core = c.into_core().unwrap();
        let d = core_config::Policy::default();
        assert_eq!(core.policy.max_reports, 7);
        assert_eq!(core.policy.retry_base, Duration::from_millis(10));
        assert_eq!(core.policy.max_requests_per_sec, 0);
        assert_eq!(core.policy.durability, core_config::Durability::Normal);
        assert_eq!(core.policy.max_bytes, d.max_bytes);
        assert_eq!(core.policy.retry_max, d.retry_max);
        assert_eq!(core.crash_element_key, "CrashLog");
    }

    #[test]
    fn fields_must_be_json_text() {
        let ok = Field {
            name: "topic".into(),
            json_value: "23795".into(),
        };
        assert_eq!(ok.into_core().unwrap().1, serde_json::json!(23795));
        let bad = Field {
            name: "title".into(),
            json_value: "not quoted".into(),
        };
        let e = bad.into_core().unwrap_err();
        assert!(
            matches!(&e, FieldReportError::InvalidInput { reason } if reason.contains("\"title\"")),
            "{e:?}"
        );
    }

    #[test]
    fn attachment_needs_exactly_one_source() {
        let a = |path: Option<&str>, data: Option<Vec<u8>>| Attachment {
            element_key: "Screenshot".into(),
            path: path.map(Into::into),
            data,
            file_name: Some("a.png".into()),
            content_type: None,
        };
        assert!(a(Some("/tmp/a.png"), None).into_core().is_ok());
        assert!(a(None, Some(vec![1])).into_core().is_ok());
        for bad in [a(None, None), a(Some("/tmp/a.png"), Some(vec![1]))] {
            assert!(matches!(
                bad.into_core(),
                Err(FieldReportError::InvalidInput { .. })
            ));
        }
    }

    #[test]
    fn errors_keep_the_core_wording() {
        let e = FieldReportError::from(CoreError::InvalidInput {
            reason: "summary is empty".into(),
        });
        assert_eq!(e.to_string(), "invalid input: summary is empty");
        assert_eq!(
            FieldReportError::from(CoreError::NotFound { id: 3 }),
            FieldReportError::NotFound { id: 3 }
        );
    }

    fn feedback(summary: &str) -> Feedback {
        Feedback {
            summary: summary.into(),
            description: None,
            submitter: None,
            fields: Vec::new(),
            attachments: Vec::new(),
        }
    }

    fn crash_text(text: Option<&str>) -> CrashReport {
        CrashReport {
            text: text.map(Into::into),
            path: None,
            summary: None,
            description: None,
            submitter: None,
            file_name: None,
            fields: Vec::new(),
            attachments: Vec::new(),
        }
    }

    #[test]
    fn a_batch_item_that_does_not_convert_is_named() {
        let batch = vec![
            Submission::Feedback {
                feedback: feedback("fine"),
            },
            Submission::Crash {
                crash: crash_text(None),
            },
        ];
        match batch_into_core(batch) {
            Err(FieldReportError::InvalidInput { reason }) => {
                assert!(reason.starts_with("batch item 1: "), "{reason}");
                assert!(reason.contains("neither text nor path"), "{reason}");
            }
            other => panic!("expected InvalidInput, got {other:?}"),
        }
        let e = in_batch(2, FieldReportError::NotFound { id: 9 });
        assert_eq!(e, FieldReportError::NotFound { id: 9 });
    }

    /// A foreign transport that never reaches anything.
    struct Unplugged;
    impl HttpTransport for Unplugged {
        fn send(&self, _: HttpRequest) -> Result<HttpResponse, TransportError> {
            Err(TransportError::NotSent {
                reason: "unplugged".into(),
            })
        }
    }

    #[test]
    fn submit_many_is_all_or_nothing_with_ids_in_order() {
        let dir = tempfile::tempdir().unwrap();
        // Through a transport: this also runs in a build without HTTP.
        let client = FieldReportClient::open_with_transport(
            config(dir.path().to_str().unwrap()),
            Box::new(Unplugged),
        )
        .unwrap();
        let ids = client
            .submit_many(vec![
                Submission::Feedback {
                    feedback: feedback("first"),
                },
                Submission::Crash {
                    crash: crash_text(Some("panic: second")),
                },
            ])
            .unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[1], ids[0] + 1);
        assert_eq!(client.report(ids[0]).unwrap().kind, ReportKind::Feedback);
        assert_eq!(client.report(ids[1]).unwrap().kind, ReportKind::Crash);
        assert_eq!(client.submit_many(Vec::new()).unwrap(), Vec::<i64>::new());

        // The core's own refusal of item 1 (a blank summary), after item 0
        // converted and was checked: nothing of the batch is stored.
        let refused = client.submit_many(vec![
            Submission::Feedback {
                feedback: feedback("would be fine"),
            },
            Submission::Feedback {
                feedback: feedback("   "),
            },
        ]);
        match refused {
            Err(FieldReportError::InvalidInput { reason }) => {
                assert!(reason.starts_with("batch item 1: "), "{reason}")
            }
            other => panic!("expected InvalidInput, got {other:?}"),
        }
        assert_eq!(client.stats().unwrap().pending, 2);
    }

    #[test]
    fn bad_config_is_invalid_config() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path().to_str().unwrap());
        c.project_key = "a/b".into();
        match FieldReportClient::new(c) {
            Err(FieldReportError::InvalidConfig { reason }) => {
                assert!(reason.contains("project_key"), "{reason}");
                assert!(!reason.contains("very-secret-key-42"));
            }
            other => panic!("expected InvalidConfig, got {:?}", other.err()),
        }
    }

    /// A listener that fails on every event, as a foreign one whose
    /// exception uniffi hands over.
    struct Throwing {
        calls: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl DeliveryListener for Throwing {
        fn on_event(&self, _: Event) -> Result<(), ListenerError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            Err(uniffi::UnexpectedUniFFICallbackError::new(
                "java.lang.IllegalStateException: listener bug\n\tat App.onEvent(App.kt:12)\n\tat x.y(z)",
            )
            .into())
        }
    }

    #[test]
    fn a_throwing_listener_gives_one_line_once() {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let adapter = ListenerAdapter::new(Box::new(Throwing {
            calls: calls.clone(),
        }));
        let event = || Event::Evicted {
            id: 1,
            reason: "cap".into(),
        };
        let line = adapter
            .deliver(event())
            .expect("the first exception is reported");
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.contains("java.lang.IllegalStateException: listener bug"),
            "{line}"
        );
        assert!(
            !line.contains("App.kt"),
            "the stack trace is left out: {line}"
        );
        // Every later event still reaches the listener, silently.
        assert_eq!(adapter.deliver(event()), None);
        assert_eq!(adapter.deliver(event()), None);
        assert_eq!(calls.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_listener_failure_line_is_bounded() {
        let long = ListenerError::Failed {
            reason: "é".repeat(1000),
        };
        let line = listener_failure_line(&long);
        assert!(line.len() < MAX_LISTENER_LINE + 200, "{}", line.len());
        assert!(line.contains('…'));
        let empty = ListenerError::Failed {
            reason: "\n\tat x".into(),
        };
        assert!(listener_failure_line(&empty).contains("(no message)"));
    }
}
