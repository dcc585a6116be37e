//! What comes out: states, statuses, receipts, flush results, statistics, events.

use super::*;

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
    pub crash_logs_cut: u64,
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
            crash_logs_cut: s.crash_logs_cut,
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
    Progress {
        id: i64,
        file_name: String,
        sent_bytes: u64,
        total_bytes: u64,
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
            E::Progress {
                id,
                file_name,
                sent_bytes,
                total_bytes,
            } => Event::Progress {
                id,
                file_name,
                sent_bytes,
                total_bytes,
            },
        }
    }
}
