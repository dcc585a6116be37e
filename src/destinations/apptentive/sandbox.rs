//! Apptentive's records API in the sandbox: `POST /records`.
//!
//! Followed from the reference (`reference/apptentive-api.txt`): the token
//! in `Authorization: OAuth <token>` or the `oauth_token` query parameter,
//! 401 for a missing or wrong one, 201 with the created record (`id`, a
//! 24-hex-digit id, and a `Location` header), 422 for an incomplete record,
//! JSON both ways; the record's blocks `feedback`, `user`, `device`,
//! `app_version`, `client`, `data`, `file` (reference → base64) and `date`
//! (`%m/%d/%Y %I:%M%p%z`).
//!
//! Guessed (the reference shows no error bodies and no limits):
//! - Error bodies are `{"errors":["<text>"]}`.
//! - 422 when the body is not an object, `feedback.feedback` is missing or
//!   blank, a block (`feedback`, `user`, `device`, `app_version`, `client`,
//!   `data`, `file`) is not an object, a `file` value is not valid base64,
//!   or `date` is not in the documented format. (The reference says a date
//!   in another format is merely not filterable; the sandbox refuses it so
//!   that a wrong date cannot pass unnoticed.)
//! - 415 for a body that is not `application/json`, 400 for one that does
//!   not parse, 413 above `SandboxConfig::apptentive_max_record_bytes`.
//! - No rate limit (none is documented).

use crate::sandbox::http::*;
use crate::sandbox::*;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::time::SystemTime;

/// The error body: `{"errors":[text]}`.
pub(crate) fn error(status: u16, text: &str) -> Response {
    Response::json(status, &json!({ "errors": [text] }))
}

pub(crate) fn route(shared: &Shared, head: &Head, body: &mut Body<'_>) -> Result<Response, Abort> {
    let path = head.path.trim_end_matches('/');
    if path != "/records" {
        return Ok(error(404, "Not found"));
    }
    if head.method != "POST" {
        let mut resp = error(405, describe(405));
        resp.set_header("Allow", "POST");
        return Ok(resp);
    }
    let token = head
        .header("authorization")
        .and_then(|v| v.trim().strip_prefix("OAuth "))
        .map(|t| t.trim().to_string())
        .or_else(|| query_param(&head.query, "oauth_token"));
    if token.as_deref() != Some(shared.keys.current()) {
        return Ok(error(
            401,
            "The provided API token is either incorrect or does not have permission.",
        ));
    }
    if media_type(head.header("content-type")) != "application/json" {
        return Ok(error(415, "Use Content-Type: application/json."));
    }
    let bytes = match read_limited(body, shared.config.apptentive_max_record_bytes) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(error(413, "The record is too large.")),
        Err(e) => return body_error(&e),
    };
    let Ok(value) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok(error(400, "The body is not valid JSON."));
    };
    drop(bytes);
    let Value::Object(mut record) = value else {
        return Ok(error(422, "The record must be a JSON object."));
    };
    if let Err(why) = validate(&record) {
        return Ok(error(422, &why));
    }
    let id = hex(&shared.fresh_bytes())[..24].to_string();
    // The files are kept as size and hash only.
    let mut uploads = Vec::new();
    if let Some(Value::Object(files)) = record.get_mut("file") {
        for (reference, v) in files.iter_mut() {
            let decoded = decode_base64(v.as_str().unwrap_or("")).unwrap_or_default();
            let sha = hex(&Sha256::digest(&decoded));
            uploads.push(ReceivedUpload {
                id: shared.fresh_uuid(),
                feedback_key: id.clone(),
                element_key: reference.clone(),
                file_name: reference.clone(),
                content_type: "application/octet-stream".to_string(),
                size: decoded.len() as u64,
                sha256_hex: sha.clone(),
            });
            *v = json!({"size": decoded.len(), "sha256": sha});
        }
    }
    let base = shared.public_base(head);
    let url = format!("{base}/records/{id}");
    let feedback = record.get("feedback").cloned().unwrap_or(Value::Null);
    let answer = json!({
        "id": id,
        "summary": feedback.get("feedback").and_then(Value::as_str).unwrap_or(""),
        "device": record.get("device").cloned().unwrap_or(json!({})),
        "user": record.get("user").cloned().unwrap_or(json!({})),
        "feedback": {
            "feedback": feedback.get("feedback"),
            "type": feedback.get("type"),
            "source": null,
        },
        "date": iso8601(SystemTime::now()),
        "data": record.get("data").cloned().unwrap_or(json!({})),
        "archived": false,
    });
    {
        let mut st = shared.lock();
        st.feedback.push(CreatedFeedback {
            id: id.clone(),
            key: id.clone(),
            url: url.clone(),
            body: Value::Object(record),
            at: SystemTime::now(),
        });
        st.uploads.extend(uploads);
    }
    let mut resp = Response::json(201, &answer);
    resp.set_header("Location", &url);
    Ok(resp)
}

fn validate(record: &Map<String, Value>) -> Result<(), String> {
    for block in [
        "feedback",
        "user",
        "device",
        "app_version",
        "client",
        "data",
        "file",
    ] {
        match record.get(block) {
            None | Some(Value::Object(_)) => {}
            Some(_) => return Err(format!("{block} must be an object")),
        }
    }
    let text = record
        .get("feedback")
        .and_then(|f| f.get("feedback"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if text.trim().is_empty() {
        return Err("feedback can't be blank".to_string());
    }
    if let Some(date) = record.get("date") {
        if !date.as_str().is_some_and(is_record_date) {
            return Err("date must be in %m/%d/%Y %I:%M%p%z format".to_string());
        }
    }
    if let Some(Value::Object(files)) = record.get("file") {
        for (reference, v) in files {
            if v.as_str().is_none_or(|s| decode_base64(s).is_none()) {
                return Err(format!("file {reference} is not valid base64"));
            }
        }
    }
    Ok(())
}

/// `MM/DD/YYYY HH:MMAM+0000` (23 bytes): `%m/%d/%Y %I:%M%p%z`.
pub(crate) fn is_record_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 23 {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = &s[r];
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (Some(m), Some(d), Some(_y), Some(h), Some(min)) =
        (num(0..2), num(3..5), num(6..10), num(11..13), num(14..16))
    else {
        return false;
    };
    b[2] == b'/'
        && b[5] == b'/'
        && b[10] == b' '
        && b[13] == b':'
        && (1..=12).contains(&m)
        && (1..=31).contains(&d)
        && (1..=12).contains(&h)
        && min < 60
        && (&s[16..18] == "AM" || &s[16..18] == "PM")
        && (b[18] == b'+' || b[18] == b'-')
        && num(19..23).is_some()
}

/// Standard base64 with padding; `None` if malformed. Written apart from
/// the client's encoder so that a mistake there shows up here.
pub(crate) fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(4) {
        return None;
    }
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    for (i, quad) in b.chunks(4).enumerate() {
        let last = i == b.len() / 4 - 1;
        let pad = quad.iter().rev().take_while(|c| **c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            n = n << 6 | val(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}
