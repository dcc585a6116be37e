//! Apptentive: the record made from an [`Outgoing`] report and the meaning
//! of the answer, without I/O of its own. The record's files are streamed
//! base64-encoded inside the JSON body ([`crate::destinations::body`]), so
//! its exact size is known before sending and memory stays flat.
//!
//! The record: `feedback` {`feedback`: summary and description, `type`},
//! `user` (the context's `user` block, plus the submitter as `email` when it
//! looks like one, else as `name`), `device`, `app_version` and `client`
//! (the context's blocks), `data` (the extra fields and `client_id`), `date`
//! (`%m/%d/%Y %I:%M%p%z`, UTC) and `file` {key: base64}. A crash log goes
//! as stored: gzip-compressed.

use super::config::ApptentiveConfig;
use crate::destinations::body::{Outbound, Segment, StreamBody};
use crate::destinations::{common_verdict, us_date, Outgoing, TranslateError, Verdict};
use crate::report::ReportKind;
use serde_json::{Map, Value};

/// The JSON of the record without its files, and the unique keys of the files.
fn record_head(
    cfg: &ApptentiveConfig,
    report: &Outgoing<'_>,
) -> Result<(Vec<u8>, Vec<String>), TranslateError> {
    let mut text = report.summary.to_string();
    if let Some(d) = report.description.filter(|d| !d.trim().is_empty()) {
        text.push_str("\n\n");
        text.push_str(d);
    }
    let kind = match report.kind {
        ReportKind::Feedback => &cfg.feedback_type,
        ReportKind::Crash => &cfg.crash_type,
    };
    let mut record = Map::new();
    let mut feedback = Map::new();
    feedback.insert("feedback".into(), Value::String(text));
    feedback.insert("type".into(), Value::String(kind.clone()));
    record.insert("feedback".into(), Value::Object(feedback));
    for block in ["device", "app_version", "client"] {
        if let Some(Value::Object(o)) = report.context.get(block) {
            record.insert(block.into(), Value::Object(o.clone()));
        }
    }
    let mut user = match report.context.get("user") {
        Some(Value::Object(o)) => o.clone(),
        _ => Map::new(),
    };
    if let Some(s) = report.submitter.filter(|s| !s.trim().is_empty()) {
        let slot = if s.contains('@') { "email" } else { "name" };
        user.entry(slot.to_string())
            .or_insert_with(|| Value::String(s.to_string()));
    }
    if !user.is_empty() {
        record.insert("user".into(), Value::Object(user));
    }
    let mut data = Map::new();
    for (k, v) in report.fields {
        if k == "client_id" {
            return Err(TranslateError::FieldClash(k.clone()));
        }
        data.insert(k.clone(), v.clone());
    }
    data.insert(
        "client_id".into(),
        Value::String(report.client_id.to_string()),
    );
    record.insert("data".into(), Value::Object(data));
    record.insert("date".into(), Value::String(us_date(report.submitted_at)));
    let mut keys: Vec<String> = Vec::new();
    for a in report.attachments {
        let base = if a.key.trim().is_empty() {
            "file".to_string()
        } else {
            a.key.clone()
        };
        let mut key = base.clone();
        let mut n = 2;
        while keys.contains(&key) {
            key = format!("{base}_{n}");
            n += 1;
        }
        keys.push(key);
    }
    Ok((
        serde_json::to_vec(&Value::Object(record)).unwrap_or_default(),
        keys,
    ))
}

/// The record's body: JSON head, then each file's base64 inside `file`.
fn record_body(
    cfg: &ApptentiveConfig,
    report: &Outgoing<'_>,
) -> Result<StreamBody, TranslateError> {
    let (mut head, keys) = record_head(cfg, report)?;
    if report.attachments.is_empty() {
        return Ok(StreamBody::bytes(head));
    }
    head.pop(); // the closing brace; the object always has fields
    let mut body = StreamBody::bytes(head);
    body.push_bytes(b",\"file\":{");
    for (i, (a, key)) in report.attachments.iter().zip(&keys).enumerate() {
        if i > 0 {
            body.push_bytes(b",");
        }
        body.push_bytes(serde_json::to_string(key).unwrap_or_default().as_bytes());
        body.push_bytes(b":\"");
        body.push(Segment::Base64File {
            path: a.path.clone(),
            len: a.size,
        });
        body.push_bytes(b"\"");
    }
    body.push_bytes(b"}}");
    Ok(body)
}

/// The record's exact size in bytes; refuses, at submit, a report whose
/// record exceeds the configured limit.
pub(crate) fn check_submit(
    cfg: &ApptentiveConfig,
    report: &Outgoing<'_>,
) -> Result<u64, TranslateError> {
    let size = record_body(cfg, report)?.len();
    if size > cfg.max_record_bytes {
        return Err(TranslateError::TooLarge {
            size,
            limit: cfg.max_record_bytes,
        });
    }
    Ok(size)
}

/// `POST {base}/records` with the record, streamed.
pub(crate) fn record_request(
    cfg: &ApptentiveConfig,
    report: &Outgoing<'_>,
) -> Result<Outbound, TranslateError> {
    check_submit(cfg, report)?;
    let body = record_body(cfg, report)?;
    Ok(Outbound {
        method: "POST".to_string(),
        url: format!("{}/records", cfg.base_url),
        headers: vec![
            ("Authorization".to_string(), cfg.authorization()),
            ("Content-Type".to_string(), "application/json".to_string()),
            ("Accept".to_string(), "application/json".to_string()),
            ("Content-Length".to_string(), body.len().to_string()),
        ],
        body,
        timeout: cfg.timeout,
    })
}

/// What the answer means: 201 with the record's `id` is delivered, 401
/// pauses, 422 is dead with the server's text, 5xx retries.
pub(crate) fn read_record_answer(
    status: u16,
    _headers: &[(String, String)],
    body: &[u8],
) -> Verdict {
    if (200..300).contains(&status) {
        let id = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string))
            .filter(|id| !id.is_empty());
        return match id {
            Some(reference) => Verdict::Delivered { reference },
            None => Verdict::Retry {
                reason: format!("HTTP {status} without a record id"),
                maybe_acted: true,
            },
        };
    }
    common_verdict(status, body, &[401])
}

#[cfg(test)]
mod tests;
