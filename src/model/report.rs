//! The report model: what an app submits, and what it can learn back.

use std::path::PathBuf;
use std::time::SystemTime;

/// A report's local id in its outbox: stable, never reused.
pub type ReportId = i64;

/// Where an attachment's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachmentSource {
    /// A file on disk; it is copied into the outbox at submit, so the app
    /// may delete or change it afterwards.
    Path(PathBuf),
    /// Bytes in memory.
    Bytes(Vec<u8>),
}

/// A file to upload with a report, bound to a Centercode file element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The file element key configured on the feedback source (`Screenshot`).
    pub element_key: String,
    /// The file name the server sees; defaults to the path's file name.
    pub file_name: Option<String>,
    /// MIME type; guessed from the file name when `None`.
    pub content_type: Option<String>,
    /// The bytes.
    pub source: AttachmentSource,
}

impl Attachment {
    /// An attachment read from `path` at submit.
    pub fn from_path(element_key: impl Into<String>, path: impl Into<PathBuf>) -> Attachment {
        Attachment {
            element_key: element_key.into(),
            file_name: None,
            content_type: None,
            source: AttachmentSource::Path(path.into()),
        }
    }

    /// An attachment from bytes, with the file name the server will see.
    pub fn from_bytes(
        element_key: impl Into<String>,
        file_name: impl Into<String>,
        bytes: Vec<u8>,
    ) -> Attachment {
        Attachment {
            element_key: element_key.into(),
            file_name: Some(file_name.into()),
            content_type: None,
            source: AttachmentSource::Bytes(bytes),
        }
    }

    /// Sets the MIME type.
    pub fn with_content_type(mut self, content_type: impl Into<String>) -> Attachment {
        self.content_type = Some(content_type.into());
        self
    }
}

/// Feedback a person wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Feedback {
    /// One line: what it is about. Required.
    pub summary: String,
    /// The details.
    pub description: Option<String>,
    /// The submitter's e-mail or login, when known; otherwise anonymous.
    pub submitter: Option<String>,
    /// Extra fields of the project's feedback source, sent as they are
    /// (`topic: 23795`, `title: "..."`). `summary`, `description`,
    /// `submitter` and the configured client id field are refused here:
    /// they have their own, checked, places.
    pub fields: Vec<(String, serde_json::Value)>,
    /// Files to upload.
    pub attachments: Vec<Attachment>,
}

impl Feedback {
    /// Feedback with a summary.
    pub fn new(summary: impl Into<String>) -> Feedback {
        Feedback {
            summary: summary.into(),
            ..Feedback::default()
        }
    }

    /// Sets the description.
    pub fn description(mut self, description: impl Into<String>) -> Feedback {
        self.description = Some(description.into());
        self
    }

    /// Sets the submitter.
    pub fn submitter(mut self, submitter: impl Into<String>) -> Feedback {
        self.submitter = Some(submitter.into());
        self
    }

    /// Adds an extra field.
    pub fn field(mut self, name: impl Into<String>, value: serde_json::Value) -> Feedback {
        self.fields.push((name.into(), value));
        self
    }

    /// Adds an attachment.
    pub fn attach(mut self, attachment: Attachment) -> Feedback {
        self.attachments.push(attachment);
        self
    }
}

/// The crash log of a run that is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrashLog {
    /// The log as text.
    Text(String),
    /// The log in a file (streamed, so a large log costs no memory).
    File(PathBuf),
}

/// A crash report: the log is gzip-compressed and bound to the crash element.
#[derive(Debug, Clone, PartialEq)]
pub struct CrashReport {
    /// The log.
    pub log: CrashLog,
    /// One line; defaults to the log's first meaningful line.
    pub summary: Option<String>,
    /// Details; defaults to a description of the device and app context.
    pub description: Option<String>,
    /// The submitter, when known.
    pub submitter: Option<String>,
    /// Name of the log file as uploaded, before `.gz` is appended;
    /// defaults to `crash.log`.
    pub file_name: Option<String>,
    /// Extra fields, as for [`Feedback::fields`].
    pub fields: Vec<(String, serde_json::Value)>,
    /// More files (a core dump, a screenshot).
    pub attachments: Vec<Attachment>,
}

impl CrashReport {
    /// A crash report from log text.
    pub fn from_text(log: impl Into<String>) -> CrashReport {
        CrashReport::new(CrashLog::Text(log.into()))
    }

    /// A crash report from a log file.
    pub fn from_file(path: impl Into<PathBuf>) -> CrashReport {
        CrashReport::new(CrashLog::File(path.into()))
    }

    fn new(log: CrashLog) -> CrashReport {
        CrashReport {
            log,
            summary: None,
            description: None,
            submitter: None,
            file_name: None,
            fields: Vec::new(),
            attachments: Vec::new(),
        }
    }
}

/// One report of a batch given to [`Client::submit_many`](crate::Client::submit_many).
#[derive(Debug, Clone, PartialEq)]
pub enum Submission {
    /// Feedback a person wrote.
    Feedback(Feedback),
    /// A crash report.
    Crash(CrashReport),
}

impl From<Feedback> for Submission {
    fn from(f: Feedback) -> Self {
        Submission::Feedback(f)
    }
}

impl From<CrashReport> for Submission {
    fn from(c: CrashReport) -> Self {
        Submission::Crash(c)
    }
}

/// Where a report is on its way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportState {
    /// Durable in the outbox; not yet created on the server.
    Queued,
    /// Created on the server (key stored); attachments may still be uploading.
    Created,
    /// Created and every attachment uploaded or rejected.
    Delivered,
    /// Failed permanently; kept with the reason until retried or purged.
    Dead,
    /// Removed by a storage cap before delivery; kept as a record of the loss.
    Evicted,
}

impl ReportState {
    /// The state's name, as stored in the outbox and shown in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportState::Queued => "queued",
            ReportState::Created => "created",
            ReportState::Delivered => "delivered",
            ReportState::Dead => "dead",
            ReportState::Evicted => "evicted",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<ReportState> {
        Some(match s {
            "queued" => ReportState::Queued,
            "created" => ReportState::Created,
            "delivered" => ReportState::Delivered,
            "dead" => ReportState::Dead,
            "evicted" => ReportState::Evicted,
            _ => return None,
        })
    }
}

/// Where one attachment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttachmentState {
    /// Not uploaded yet.
    Pending,
    /// Uploaded.
    Uploaded,
    /// Refused (by the server, or no matching file element); see the reason.
    Rejected,
}

impl AttachmentState {
    /// The state's name, as stored in the outbox and shown in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            AttachmentState::Pending => "pending",
            AttachmentState::Uploaded => "uploaded",
            AttachmentState::Rejected => "rejected",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<AttachmentState> {
        Some(match s {
            "pending" => AttachmentState::Pending,
            "uploaded" => AttachmentState::Uploaded,
            "rejected" => AttachmentState::Rejected,
            _ => return None,
        })
    }
}

/// Whether a report was typed by a person or made by a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportKind {
    /// Feedback a person wrote: evicted last.
    Feedback,
    /// A crash log: machine-made, evicted first.
    Crash,
}

impl ReportKind {
    /// The kind's name, as stored in the outbox and shown in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Feedback => "feedback",
            ReportKind::Crash => "crash",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<ReportKind> {
        match s {
            "feedback" => Some(ReportKind::Feedback),
            "crash" => Some(ReportKind::Crash),
            _ => None,
        }
    }
}

/// A server error's detail on one parameter (`invalidParameters`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InvalidParameter {
    /// The parameter's name.
    pub name: String,
    /// What the server said of it.
    pub description: String,
}

/// Why the last attempt failed, as far as it is known.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeliveryError {
    /// The HTTP status, when a response came back.
    pub status: Option<u16>,
    /// What happened: the server's `description`, or the network error.
    pub message: String,
    /// The server's `invalidParameters`, when given.
    pub invalid_parameters: Vec<InvalidParameter>,
}

/// One attachment's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentStatus {
    /// File element key.
    pub element_key: String,
    /// File name as uploaded.
    pub file_name: String,
    /// MIME type.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    /// Where it is.
    pub state: AttachmentState,
    /// Why it was rejected, when it was.
    pub reason: Option<String>,
}

/// Everything known about one report.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportStatus {
    /// Local id.
    pub id: ReportId,
    /// The client id (a UUID) sent when `client_id_field` is configured.
    pub client_id: String,
    /// Per-outbox sequence number: gaps on the server side reveal loss.
    pub seq: i64,
    /// Typed feedback or crash.
    pub kind: ReportKind,
    /// Where it is.
    pub state: ReportState,
    /// The summary.
    pub summary: String,
    /// When it was submitted.
    pub submitted_at: SystemTime,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When the next attempt is due, for queued or created reports.
    pub next_attempt_at: Option<SystemTime>,
    /// The server's key (e.g. `BUG-0042`) once created.
    pub server_key: Option<String>,
    /// The server's URL of the feedback once created.
    pub server_url: Option<String>,
    /// The last error, if any.
    pub last_error: Option<DeliveryError>,
    /// The attachments.
    pub attachments: Vec<AttachmentStatus>,
    /// The context recorded at submit (JSON object).
    pub context: serde_json::Value,
}

/// The outcome of one report in a flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Local id.
    pub id: ReportId,
    /// State after the flush.
    pub state: ReportState,
    /// The server's key once created.
    pub server_key: Option<String>,
    /// The server's URL once created.
    pub server_url: Option<String>,
    /// The error of this flush's attempt, if it failed.
    pub error: Option<DeliveryError>,
    /// Attachments rejected in this flush, with reasons.
    pub rejected_attachments: Vec<String>,
}

/// What a flush did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FlushResult {
    /// One receipt per report that was worked on.
    pub receipts: Vec<Receipt>,
    /// Reports still waiting (queued or created) after the flush.
    pub pending: u64,
    /// Dead reports in the outbox after the flush.
    pub dead: u64,
    /// Why the flush stopped before everything due was sent, if it did:
    /// a network failure, a rate limit, a paused key, the budget, no
    /// consent, another flush running.
    pub stopped: Option<String>,
}

/// Which reports to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportFilter {
    /// Only these states; all when empty.
    pub states: Vec<ReportState>,
    /// Only this kind.
    pub kind: Option<ReportKind>,
    /// At most this many, newest first; all when `None`.
    pub limit: Option<u32>,
}

/// Queue statistics.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stats {
    /// Reports waiting (queued or created).
    pub pending: u64,
    /// Reports delivered and still listed.
    pub delivered: u64,
    /// Dead reports.
    pub dead: u64,
    /// Bytes held for undelivered reports (bodies and attachment copies).
    pub bytes: u64,
    /// Age of the oldest waiting report, in seconds.
    pub oldest_pending_age_secs: Option<u64>,
    /// The most recent delivery error.
    pub last_error: Option<DeliveryError>,
    /// When the next attempt is due.
    pub next_attempt_at: Option<SystemTime>,
    /// Reports evicted by the caps since the outbox was created.
    pub evicted: u64,
    /// Of those, typed feedback (only ever after every machine-made report).
    pub evicted_feedback: u64,
    /// Creates re-sent after a lost answer (possible duplicates on the server).
    pub ambiguous_resends: u64,
    /// Crash logs delivered cut to fit the destination's limit (ABC's 1 MiB
    /// body): their head and tail were sent, with a line in the field saying
    /// how many bytes were cut from the middle.
    pub crash_logs_cut: u64,
    /// Delivery is paused because the server refused the API key.
    pub paused_for_auth: bool,
    /// The user's consent to sending.
    pub consent: bool,
    /// When the outbox was found corrupt and moved aside at open: where to.
    pub moved_aside: Option<String>,
    /// Undelivered reports queued for another destination than the one
    /// configured (another server, project or form): never sent by this
    /// client; see `Client::retarget_other_destinations` and
    /// `Client::purge_other_destinations`.
    pub other_destinations: u64,
}

/// What the listener hears. New kinds may be added (progress was, and
/// crash capture will add more): match with a wildcard arm.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A report was created and all its attachments uploaded or rejected.
    Delivered {
        /// The receipt.
        receipt: Receipt,
    },
    /// An attachment was refused; the rest of its report goes on.
    AttachmentRejected {
        /// The report.
        id: ReportId,
        /// The attachment's file name.
        file_name: String,
        /// Why.
        reason: String,
    },
    /// An attempt failed and will be retried.
    Failed {
        /// The report.
        id: ReportId,
        /// What went wrong.
        error: DeliveryError,
        /// When it will be tried again.
        retry_at: SystemTime,
    },
    /// A report failed permanently and is kept as `dead`.
    Dead {
        /// The report.
        id: ReportId,
        /// What went wrong.
        error: DeliveryError,
    },
    /// A report was evicted by a storage cap.
    Evicted {
        /// The report.
        id: ReportId,
        /// Which cap.
        reason: String,
    },
    /// Delivery is paused: the server refused the API key.
    Paused {
        /// The server's answer.
        error: DeliveryError,
    },
    /// Bytes of an upload handed to the connection so far: one event when
    /// sending starts (at 0), then at most four a second, then exactly one
    /// at `total_bytes` once every byte is handed over (an upload that
    /// fails never reports its total). Only for uploads of 1 MiB or more.
    /// With an app's [`Transport`](crate::transport::Transport), which
    /// shows nothing while it sends, only the event at the total comes,
    /// when the transport returns an answer.
    Progress {
        /// The report.
        id: ReportId,
        /// The attachment's file name; for a destination that sends the
        /// report and its files in one request, the names of the files in
        /// it, joined by `", "`.
        file_name: String,
        /// Bytes handed over so far.
        sent_bytes: u64,
        /// Bytes to send: the file's size, or the whole request's for a
        /// one-request destination (its files base64-encoded where the
        /// destination wants that).
        total_bytes: u64,
    },
}

/// Hears of deliveries and failures. Called on the thread that flushes
/// (the app's, or the background sender's), after the outbox is updated;
/// keep it quick. A panic in it is caught and ignored.
pub trait Listener: Send + Sync {
    /// One event.
    fn on_event(&self, event: Event);
}
