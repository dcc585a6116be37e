//! The `--json` shapes (machine values: Unix seconds, camelCase keys) and
//! the one-line text of a delivery error.

use std::time::{SystemTime, UNIX_EPOCH};

use fieldreport::{AttachmentState, DeliveryError, FlushResult, ReportStatus, Stats};
use serde_json::{json, Value};

/// Seconds since the Unix epoch (0 before it).
pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A delivery error on one line: status, message, invalid parameters.
pub fn error_text(e: &DeliveryError) -> String {
    let mut s = match e.status {
        Some(st) => format!("{st} {}", e.message),
        None => e.message.clone(),
    };
    for p in &e.invalid_parameters {
        s.push_str(&format!("; {}: {}", p.name, p.description));
    }
    s
}

fn error_json(e: &Option<DeliveryError>) -> Value {
    match e {
        None => Value::Null,
        Some(e) => json!({
            "status": e.status,
            "message": e.message,
            "invalidParameters": e.invalid_parameters.iter()
                .map(|p| json!({"name": p.name, "description": p.description}))
                .collect::<Vec<_>>(),
        }),
    }
}

/// Reports of a flush whose attachments were rejected in it.
pub fn rejected_in(r: &FlushResult) -> u64 {
    r.receipts
        .iter()
        .filter(|rc| !rc.rejected_attachments.is_empty())
        .count() as u64
}

/// Whether a report has a rejected attachment.
pub fn has_rejected(r: &ReportStatus) -> bool {
    r.attachments
        .iter()
        .any(|a| a.state == AttachmentState::Rejected)
}

/// `flush --json`.
pub fn flush_json(r: &FlushResult, next_attempt_at: Option<SystemTime>) -> Value {
    json!({
        "receipts": r.receipts.iter().map(|rc| json!({
            "id": rc.id,
            "state": rc.state.as_str(),
            "serverKey": rc.server_key,
            "serverUrl": rc.server_url,
            "error": error_json(&rc.error),
            "rejectedAttachments": rc.rejected_attachments,
        })).collect::<Vec<_>>(),
        "pending": r.pending,
        "dead": r.dead,
        "attachmentsRejected": rejected_in(r),
        "stopped": r.stopped,
        "nextAttemptAt": next_attempt_at.map(unix),
    })
}

/// `status --id N --json`, and each report of `status --json`.
pub fn report_json(r: &ReportStatus) -> Value {
    json!({
        "id": r.id,
        "clientId": r.client_id,
        "seq": r.seq,
        "kind": format!("{:?}", r.kind).to_lowercase(),
        "state": r.state.as_str(),
        "summary": r.summary,
        "submittedAt": unix(r.submitted_at),
        "attempts": r.attempts,
        "nextAttemptAt": r.next_attempt_at.map(unix),
        "serverKey": r.server_key,
        "serverUrl": r.server_url,
        "lastError": error_json(&r.last_error),
        "attachments": r.attachments.iter().map(|a| json!({
            "elementKey": a.element_key,
            "fileName": a.file_name,
            "contentType": a.content_type,
            "size": a.size,
            "sha256": a.sha256,
            "state": a.state.as_str(),
            "reason": a.reason,
        })).collect::<Vec<_>>(),
        "context": r.context,
    })
}

/// `status --json` without its report list.
pub fn stats_json(s: &Stats, attachments_rejected: u64) -> Value {
    json!({
        "pending": s.pending,
        "delivered": s.delivered,
        "dead": s.dead,
        "attachmentsRejected": attachments_rejected,
        "bytes": s.bytes,
        "oldestPendingAgeSecs": s.oldest_pending_age_secs,
        "lastError": error_json(&s.last_error),
        "nextAttemptAt": s.next_attempt_at.map(unix),
        "evicted": s.evicted,
        "evictedFeedback": s.evicted_feedback,
        "ambiguousResends": s.ambiguous_resends,
        "crashLogsCut": s.crash_logs_cut,
        "pausedForAuth": s.paused_for_auth,
        "consent": s.consent,
        "movedAside": s.moved_aside,
    })
}
