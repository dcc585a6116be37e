//! The JSON documents the C layer hands out. Times are Unix milliseconds
//! (`*_ms`); absent values are `null`. Documented in `bindings/c/README.md`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::report::{
    AttachmentStatus, DeliveryError, Event, FlushResult, Receipt, ReportStatus, Stats,
};

/// Milliseconds since the Unix epoch (negative before it).
pub(crate) fn unix_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

pub(crate) fn delivery_error(e: &DeliveryError) -> Value {
    json!({
        "status": e.status,
        "message": e.message,
        "invalid_parameters": e.invalid_parameters.iter().map(|p| json!({
            "name": p.name,
            "description": p.description,
        })).collect::<Vec<_>>(),
    })
}

fn opt_error(e: &Option<DeliveryError>) -> Value {
    e.as_ref().map(delivery_error).unwrap_or(Value::Null)
}

fn attachment(a: &AttachmentStatus) -> Value {
    json!({
        "element_key": a.element_key,
        "file_name": a.file_name,
        "content_type": a.content_type,
        "size": a.size,
        "sha256": a.sha256,
        "state": a.state.as_str(),
        "reason": a.reason,
    })
}

pub(crate) fn report(r: &ReportStatus) -> Value {
    json!({
        "id": r.id,
        "client_id": r.client_id,
        "seq": r.seq,
        "kind": r.kind.as_str(),
        "state": r.state.as_str(),
        "summary": r.summary,
        "submitted_at_ms": unix_ms(r.submitted_at),
        "attempts": r.attempts,
        "next_attempt_at_ms": r.next_attempt_at.map(unix_ms),
        "server_key": r.server_key,
        "server_url": r.server_url,
        "last_error": opt_error(&r.last_error),
        "attachments": r.attachments.iter().map(attachment).collect::<Vec<_>>(),
        "context": r.context,
    })
}

pub(crate) fn stats(s: &Stats) -> Value {
    json!({
        "pending": s.pending,
        "delivered": s.delivered,
        "dead": s.dead,
        "bytes": s.bytes,
        "oldest_pending_age_secs": s.oldest_pending_age_secs,
        "last_error": opt_error(&s.last_error),
        "next_attempt_at_ms": s.next_attempt_at.map(unix_ms),
        "evicted": s.evicted,
        "evicted_feedback": s.evicted_feedback,
        "ambiguous_resends": s.ambiguous_resends,
        "crash_logs_cut": s.crash_logs_cut,
        "paused_for_auth": s.paused_for_auth,
        "consent": s.consent,
        "moved_aside": s.moved_aside,
    })
}

pub(crate) fn receipt(r: &Receipt) -> Value {
    json!({
        "id": r.id,
        "state": r.state.as_str(),
        "server_key": r.server_key,
        "server_url": r.server_url,
        "error": opt_error(&r.error),
        "rejected_attachments": r.rejected_attachments,
    })
}

pub(crate) fn flush(f: &FlushResult) -> Value {
    json!({
        "receipts": f.receipts.iter().map(receipt).collect::<Vec<_>>(),
        "pending": f.pending,
        "dead": f.dead,
        "stopped": f.stopped,
    })
}

pub(crate) fn event(e: &Event) -> Value {
    match e {
        Event::Delivered { receipt: r } => json!({
            "kind": "delivered",
            "id": r.id,
            "receipt": receipt(r),
        }),
        Event::AttachmentRejected {
            id,
            file_name,
            reason,
        } => json!({
            "kind": "attachment_rejected",
            "id": id,
            "file_name": file_name,
            "reason": reason,
        }),
        Event::Failed {
            id,
            error,
            retry_at,
        } => json!({
            "kind": "failed",
            "id": id,
            "error": delivery_error(error),
            "retry_at_ms": unix_ms(*retry_at),
        }),
        Event::Dead { id, error } => json!({
            "kind": "dead",
            "id": id,
            "error": delivery_error(error),
        }),
        Event::Evicted { id, reason } => json!({
            "kind": "evicted",
            "id": id,
            "reason": reason,
        }),
        Event::Paused { error } => json!({
            "kind": "paused",
            "error": delivery_error(error),
        }),
        Event::Progress {
            id,
            file_name,
            sent_bytes,
            total_bytes,
        } => json!({
            "kind": "progress",
            "id": id,
            "file_name": file_name,
            "sent_bytes": sent_bytes,
            "total_bytes": total_bytes,
        }),
    }
}

/// Replaces `secret` in every string of `v` (belt and braces: the library
/// never puts the key in what it reports, and this layer makes sure).
pub(crate) fn redact(v: &mut Value, secret: &str) {
    match v {
        Value::String(s) if s.contains(secret) => *s = super::redact(s, secret),
        Value::Array(items) => items.iter_mut().for_each(|i| redact(i, secret)),
        Value::Object(map) => map.values_mut().for_each(|i| redact(i, secret)),
        _ => {}
    }
}

/// The document as text, with `secret` removed.
pub(crate) fn to_text(mut v: Value, secret: &str) -> String {
    if secret.len() >= super::MIN_SECRET_LEN {
        redact(&mut v, secret);
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_removed_from_nested_strings() {
        let v = json!({"a": ["x s3cret y", {"b": "s3cret"}], "c": 1});
        let t = to_text(v, "s3cret");
        assert!(!t.contains("s3cret"));
        assert_eq!(t.matches("<redacted>").count(), 2);
    }

    #[test]
    fn times_are_unix_ms() {
        assert_eq!(
            unix_ms(UNIX_EPOCH + std::time::Duration::from_millis(1500)),
            1500
        );
        assert_eq!(
            unix_ms(UNIX_EPOCH - std::time::Duration::from_millis(2)),
            -2
        );
    }
}
