//! ABC User Feedback: the requests made from an [`Outgoing`] report and the
//! meaning of each answer, without any I/O of its own (files are read only
//! by the body reader, or through a reader handed in).
//!
//! A delivery is, by [`ImageMode`]:
//! - multipart (default): one `POST .../feedbacks-with-images` when the
//!   report has images ([`create_multipart_request`]), else one JSON create
//!   ([`create_json_request`]);
//! - presigned: per image `GET .../image-upload-url` ([`upload_url_request`],
//!   [`read_upload_url_answer`]) and `PUT` ([`put_image_request`],
//!   [`read_put_answer`]), then a JSON create carrying the object URLs
//!   ([`object_url`]).
//!
//! Before re-sending a create whose answer was lost, [`search_request`] and
//! [`read_search_answer`] look the report up by its client id.

use super::config::{AbcConfig, ImageMode};
use crate::destinations::body::{Outbound, Segment, StreamBody};
use crate::destinations::{
    common_verdict, error_messages, Outgoing, OutgoingAttachment, TranslateError, Verdict,
};
use crate::report::ReportKind;
use serde_json::{json, Map, Value};
use std::collections::VecDeque;
use std::io::{self, Read};

/// ABC's JSON body limit (Fastify's `bodyLimit` default), bytes.
pub(crate) const ABC_JSON_LIMIT: u64 = 1024 * 1024;
/// ABC's limit per image file (`@fastify/multipart`'s `fileSize` default), bytes.
pub(crate) const ABC_IMAGE_LIMIT: u64 = 1024 * 1024;
/// Room kept free in the JSON body besides the crash log (keys, quotes, marker).
const JSON_SLACK: u64 = 512;
/// Image types the server's magic-byte check is known to accept.
const IMAGE_TYPES: [&str; 5] = [
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/bmp",
];

/// What becomes of one attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AttachmentPlan {
    /// Sent as an image (a file part, or a presigned upload).
    Image,
    /// The crash log: its text goes into the crash-log field.
    CrashLog,
    /// Not sent; the feedback is still delivered. The reason names ABC's rule.
    Rejected {
        /// Why, for the app.
        reason: String,
    },
}

/// Decides, for each attachment in order, whether it is sent.
pub(crate) fn plan_attachments(
    cfg: &AbcConfig,
    attachments: &[OutgoingAttachment],
) -> Vec<AttachmentPlan> {
    attachments
        .iter()
        .map(|a| {
            let media = a.content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            if a.crash_log {
                return match cfg.map.crash_log {
                    Some(_) => AttachmentPlan::CrashLog,
                    None => AttachmentPlan::Rejected {
                        reason: format!(
                            "{}: ABC takes a crash log only as text in a TEXT field, and no crash_log field is mapped",
                            a.file_name
                        ),
                    },
                };
            }
            if !media.starts_with("image/") {
                return AttachmentPlan::Rejected {
                    reason: format!(
                        "{}: ABC accepts image files only (its rule: the part's type must be image/*), this is {}",
                        a.file_name, a.content_type
                    ),
                };
            }
            if !IMAGE_TYPES.contains(&media.as_str()) {
                return AttachmentPlan::Rejected {
                    reason: format!(
                        "{}: ABC checks an image's bytes against its type and knows {}; {} is not among them",
                        a.file_name,
                        IMAGE_TYPES.join(", "),
                        media
                    ),
                };
            }
            if a.size > ABC_IMAGE_LIMIT {
                return AttachmentPlan::Rejected {
                    reason: format!(
                        "{}: ABC's limit is {} bytes (1 MiB) per image, this one has {}",
                        a.file_name, ABC_IMAGE_LIMIT, a.size
                    ),
                };
            }
            if cfg.map.images.is_none() {
                return AttachmentPlan::Rejected {
                    reason: format!("{}: no IMAGES field is mapped (role images) for this ABC channel", a.file_name),
                };
            }
            AttachmentPlan::Image
        })
        .collect()
}

/// Refuses, at submit, what this destination can never deliver: a crash
/// report without a crash-log field, an extra field ABC reserves.
pub(crate) fn check_submit(cfg: &AbcConfig, report: &Outgoing<'_>) -> Result<(), TranslateError> {
    if report.kind == ReportKind::Crash && cfg.map.crash_log.is_none() {
        return Err(TranslateError::NoCrashLogField);
    }
    for (key, _) in report.fields {
        if key.trim().is_empty() {
            return Err(TranslateError::BadField(
                "an extra field has an empty key".to_string(),
            ));
        }
        if ["id", "ids", "issues", "issueIds", "updatedAt", "issueNames"].contains(&key.as_str()) {
            return Err(TranslateError::BadField(format!(
                "the field key {key:?} is reserved by ABC"
            )));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The crash log's text
// ---------------------------------------------------------------------------

/// A crash log as the TEXT field receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CrashText {
    /// The text: all of the log, or its head and tail around a marker.
    pub text: String,
    /// Bytes of the log left out (0 when it all fit).
    pub cut_bytes: u64,
    /// Bytes in the whole log.
    pub total_bytes: u64,
}

/// Bytes a character takes inside a JSON string.
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// The text of a (decompressed) crash log that fits in `max` bytes once
/// escaped in JSON: the whole log, or as much of its head and tail as fits,
/// around a marker saying how much was cut. Invalid UTF-8 is replaced.
pub(crate) fn crash_log_text<R: Read>(mut log: R, max: usize) -> io::Result<CrashText> {
    let tail_cap = max / 2 + 4;
    let mut head: Vec<u8> = Vec::with_capacity(max.min(1 << 20) + 1);
    let mut tail: VecDeque<u8> = VecDeque::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match log.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        let mut chunk = &buf[..n];
        if head.len() <= max {
            let room = (max + 1 - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..room]);
            chunk = &chunk[room..];
        }
        tail.extend(chunk);
        while tail.len() > tail_cap {
            tail.pop_front();
        }
    }
    let whole = String::from_utf8_lossy(&head);
    if head.len() as u64 == total && whole.chars().map(escaped_len).sum::<usize>() <= max {
        return Ok(CrashText {
            text: whole.into_owned(),
            cut_bytes: 0,
            total_bytes: total,
        });
    }
    // Head and tail, each within half of what the marker leaves.
    let marker_room = 160;
    let half = max.saturating_sub(marker_room) / 2;
    let mut head_text = String::new();
    let mut used = 0;
    for c in whole.chars() {
        let l = escaped_len(c);
        if used + l > half {
            break;
        }
        used += l;
        head_text.push(c);
    }
    let mut last: Vec<u8> = head.iter().copied().chain(tail.iter().copied()).collect();
    let keep_from = last.len().saturating_sub(tail_cap);
    last.drain(..keep_from);
    // Start on a character boundary.
    let start = last
        .iter()
        .position(|b| (b & 0xC0) != 0x80)
        .unwrap_or(last.len());
    let tail_src = String::from_utf8_lossy(&last[start..]);
    let mut tail_chars: Vec<char> = Vec::new();
    let mut used = 0;
    for c in tail_src.chars().rev() {
        let l = escaped_len(c);
        if used + l > half {
            break;
        }
        used += l;
        tail_chars.push(c);
    }
    tail_chars.reverse();
    let tail_text: String = tail_chars.into_iter().collect();
    let kept = (head_text.len() + tail_text.len()) as u64;
    let cut = total.saturating_sub(kept);
    let text = format!(
        "{head_text}\n\n[... fieldreport: {cut} of {total} bytes cut from the middle of this crash log to fit ABC's 1 MiB body limit ...]\n\n{tail_text}"
    );
    Ok(CrashText {
        text,
        cut_bytes: cut,
        total_bytes: total,
    })
}

/// A reader of a gzip-compressed crash log's text.
pub(crate) fn gunzip<R: Read>(compressed: R) -> impl Read {
    flate2::read::GzDecoder::new(compressed)
}

// ---------------------------------------------------------------------------
// Create
// ---------------------------------------------------------------------------

fn insert(data: &mut Map<String, Value>, key: &str, value: Value) -> Result<(), TranslateError> {
    if data.contains_key(key) {
        return Err(TranslateError::FieldClash(key.to_string()));
    }
    data.insert(key.to_string(), value);
    Ok(())
}

/// The feedback's fields, without images and crash log.
fn base_data(cfg: &AbcConfig, report: &Outgoing<'_>) -> Result<Map<String, Value>, TranslateError> {
    check_submit(cfg, report)?;
    let m = &cfg.map;
    let mut data = Map::new();
    insert(
        &mut data,
        &m.summary,
        Value::String(report.summary.to_string()),
    )?;
    let optional = [
        (&m.description, report.description),
        (&m.submitter, report.submitter),
        (&m.client_id, Some(report.client_id)),
    ];
    for (field, value) in optional {
        if let (Some(field), Some(value)) = (field, value) {
            insert(&mut data, field, Value::String(value.to_string()))?;
        }
    }
    for (item, field) in &m.context {
        let (block, key) = item.split_once('.').unwrap_or((item, ""));
        if let Some(v) = report.context.get(block).and_then(|b| b.get(key)) {
            if !v.is_null() {
                insert(&mut data, field, v.clone())?;
            }
        }
    }
    for (key, value) in report.fields {
        insert(&mut data, key, value.clone())?;
    }
    Ok(data)
}

/// Bytes left for the crash log's escaped text in a JSON create carrying
/// these image URLs.
pub(crate) fn crash_budget(
    cfg: &AbcConfig,
    report: &Outgoing<'_>,
    image_urls: &[String],
) -> Result<usize, TranslateError> {
    let mut data = base_data(cfg, report)?;
    if let Some(field) = &cfg.map.crash_log {
        insert(&mut data, field, Value::String(String::new()))?;
    }
    add_images_and_issues(cfg, &mut data, image_urls)?;
    let used = serde_json::to_vec(&data)
        .map(|v| v.len() as u64)
        .unwrap_or(u64::MAX);
    let left = ABC_JSON_LIMIT
        .saturating_sub(used)
        .saturating_sub(JSON_SLACK);
    Ok(usize::try_from(left).unwrap_or(0))
}

fn add_images_and_issues(
    cfg: &AbcConfig,
    data: &mut Map<String, Value>,
    image_urls: &[String],
) -> Result<(), TranslateError> {
    if !image_urls.is_empty() {
        let field = cfg.map.images.as_deref().unwrap_or("images");
        insert(data, field, json!(image_urls))?;
    }
    if !cfg.issue_names.is_empty() {
        insert(data, "issueNames", json!(cfg.issue_names))?;
    }
    Ok(())
}

fn headers(cfg: &AbcConfig, content_type: Option<&str>, len: Option<u64>) -> Vec<(String, String)> {
    let mut h = vec![
        ("x-api-key".to_string(), cfg.api_key().to_string()),
        ("Accept".to_string(), "application/json".to_string()),
    ];
    if let Some(ct) = content_type {
        h.push(("Content-Type".to_string(), ct.to_string()));
    }
    if let Some(len) = len {
        h.push(("Content-Length".to_string(), len.to_string()));
    }
    h
}

/// `POST .../feedbacks` with the report as JSON (and, in presigned mode,
/// the uploaded images' object URLs). `crash` is the crash log's text for
/// a crash report (see [`crash_log_text`] with [`crash_budget`]).
pub(crate) fn create_json_request(
    cfg: &AbcConfig,
    report: &Outgoing<'_>,
    crash: Option<&CrashText>,
    image_urls: &[String],
) -> Result<Outbound, TranslateError> {
    let mut data = base_data(cfg, report)?;
    if let (Some(field), Some(crash)) = (&cfg.map.crash_log, crash) {
        insert(&mut data, field, Value::String(crash.text.clone()))?;
    }
    add_images_and_issues(cfg, &mut data, image_urls)?;
    let body = serde_json::to_vec(&data).unwrap_or_default();
    if body.len() as u64 > ABC_JSON_LIMIT {
        return Err(TranslateError::TooLarge {
            size: body.len() as u64,
            limit: ABC_JSON_LIMIT,
        });
    }
    Ok(Outbound {
        method: "POST".to_string(),
        url: format!("{}/feedbacks", cfg.channel_url()),
        headers: headers(cfg, Some("application/json"), Some(body.len() as u64)),
        body: StreamBody::bytes(body),
        timeout: cfg.timeout,
    })
}

/// A name or file name inside a part's `Content-Disposition`: quotes and
/// line breaks percent-encoded, as browsers do.
fn disposition_value(s: &str) -> String {
    s.replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// `POST .../feedbacks-with-images`: every field a part (strings as text,
/// other values as `application/json` parts, which the server parses), each
/// image a file part named after the IMAGES field. `images` are the
/// attachments [`plan_attachments`] marked [`AttachmentPlan::Image`].
pub(crate) fn create_multipart_request(
    cfg: &AbcConfig,
    report: &Outgoing<'_>,
    crash: Option<&CrashText>,
    images: &[&OutgoingAttachment],
) -> Result<Outbound, TranslateError> {
    let mut data = base_data(cfg, report)?;
    if let (Some(field), Some(crash)) = (&cfg.map.crash_log, crash) {
        insert(&mut data, field, Value::String(crash.text.clone()))?;
    }
    add_images_and_issues(cfg, &mut data, &[])?;
    let boundary = format!("----fieldreport-{}", report.client_id.replace('-', ""));
    let mut body = StreamBody::empty();
    for (key, value) in &data {
        let name = disposition_value(key);
        match value {
            Value::String(s) => {
                body.push_bytes(
                    format!(
                        "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                    )
                    .as_bytes(),
                );
                body.push_bytes(s.as_bytes());
            }
            other => {
                body.push_bytes(
                    format!(
                        "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\nContent-Type: application/json\r\n\r\n"
                    )
                    .as_bytes(),
                );
                body.push_bytes(other.to_string().as_bytes());
            }
        }
        body.push_bytes(b"\r\n");
    }
    let field = disposition_value(cfg.map.images.as_deref().unwrap_or("images"));
    for image in images {
        body.push_bytes(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n",
                disposition_value(&image.file_name),
                image.content_type
            )
            .as_bytes(),
        );
        body.push(Segment::File {
            path: image.path.clone(),
            len: image.size,
        });
        body.push_bytes(b"\r\n");
    }
    body.push_bytes(format!("--{boundary}--\r\n").as_bytes());
    Ok(Outbound {
        method: "POST".to_string(),
        url: format!("{}/feedbacks-with-images", cfg.channel_url()),
        headers: headers(
            cfg,
            Some(&format!("multipart/form-data; boundary={boundary}")),
            Some(body.len()),
        ),
        body,
        timeout: cfg.timeout,
    })
}

/// The create to send, by image mode: multipart when it carries images,
/// JSON otherwise (`image_urls` are the presigned uploads' object URLs).
pub(crate) fn create_request(
    cfg: &AbcConfig,
    report: &Outgoing<'_>,
    crash: Option<&CrashText>,
    images: &[&OutgoingAttachment],
    image_urls: &[String],
) -> Result<Outbound, TranslateError> {
    match cfg.image_mode {
        ImageMode::Multipart if !images.is_empty() => {
            create_multipart_request(cfg, report, crash, images)
        }
        _ => create_json_request(cfg, report, crash, image_urls),
    }
}

/// What a create's answer means: 201 `{"id": N}` is delivered with `N`.
pub(crate) fn read_create_answer(
    status: u16,
    _headers: &[(String, String)],
    body: &[u8],
) -> Verdict {
    if (200..300).contains(&status) {
        let id = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("id").and_then(Value::as_u64));
        return match id {
            Some(id) => Verdict::Delivered {
                reference: id.to_string(),
            },
            None => Verdict::Retry {
                reason: format!("HTTP {status} without a numeric id"),
                maybe_acted: true,
            },
        };
    }
    // ABC answers a refused key with 403; a 401 (a proxy's) means the same.
    common_verdict(status, body, &[401, 403])
}

// ---------------------------------------------------------------------------
// Presigned uploads
// ---------------------------------------------------------------------------

fn extension(a: &OutgoingAttachment) -> String {
    let from_name = a
        .file_name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .filter(|e| !e.is_empty() && e.len() <= 5 && e.bytes().all(|b| b.is_ascii_alphanumeric()));
    from_name.unwrap_or_else(|| {
        match a.content_type.split(';').next().unwrap_or("").trim() {
            "image/jpeg" => "jpg",
            "image/gif" => "gif",
            "image/webp" => "webp",
            "image/bmp" => "bmp",
            _ => "png",
        }
        .to_string()
    })
}

/// `GET .../image-upload-url?extension=<ext>` for this image.
pub(crate) fn upload_url_request(cfg: &AbcConfig, image: &OutgoingAttachment) -> Outbound {
    Outbound {
        method: "GET".to_string(),
        url: format!(
            "{}/image-upload-url?extension={}",
            cfg.channel_url(),
            extension(image)
        ),
        headers: headers(cfg, None, None),
        body: StreamBody::empty(),
        timeout: cfg.timeout,
    }
}

/// The presigned URL from `image-upload-url`'s answer (a bare string, or a
/// JSON string), or the verdict when there is none.
pub(crate) fn read_upload_url_answer(
    status: u16,
    _headers: &[(String, String)],
    body: &[u8],
) -> Result<String, Verdict> {
    if !(200..300).contains(&status) {
        return Err(common_verdict(status, body, &[401, 403]));
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let url = serde_json::from_str::<String>(text).unwrap_or_else(|_| text.to_string());
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url)
    } else {
        Err(Verdict::Retry {
            reason: format!("HTTP {status} without a presigned url"),
            maybe_acted: false,
        })
    }
}

/// `PUT <presigned>` with the image's bytes; no key (the URL is signed).
pub(crate) fn put_image_request(
    presigned: &str,
    image: &OutgoingAttachment,
    timeout: std::time::Duration,
) -> Outbound {
    Outbound {
        method: "PUT".to_string(),
        url: presigned.to_string(),
        headers: vec![
            ("Content-Type".to_string(), image.content_type.clone()),
            ("Content-Length".to_string(), image.size.to_string()),
        ],
        body: StreamBody {
            segments: vec![Segment::File {
                path: image.path.clone(),
                len: image.size,
            }],
        },
        timeout,
    }
}

/// What the store's answer to the PUT means: `Ok` when stored. A refusal
/// (S3's XML `<Message>` kept) is dead for this image; 5xx retries.
pub(crate) fn read_put_answer(status: u16, body: &[u8]) -> Result<(), Verdict> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    if status == 408 || status == 429 || status >= 500 {
        return Err(Verdict::Retry {
            reason: format!("image store HTTP {status}"),
            maybe_acted: false,
        });
    }
    let text = String::from_utf8_lossy(body);
    let pick = |tag: &str| {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&close)? + start;
        Some(text[start..end].to_string())
    };
    let messages: Vec<String> = [pick("Code"), pick("Message")]
        .into_iter()
        .flatten()
        .collect();
    Err(Verdict::Dead {
        status,
        messages: if messages.is_empty() {
            error_messages(body)
        } else {
            messages
        },
    })
}

/// The object URL of a presigned URL: without its query string.
pub(crate) fn object_url(presigned: &str) -> String {
    presigned.split(['?', '#']).next().unwrap_or("").to_string()
}

// ---------------------------------------------------------------------------
// Looking a report up
// ---------------------------------------------------------------------------

/// `POST /api/v2/projects/{p}/channels/{c}/feedbacks/search` for the
/// report's client id, or `None` when no client-id field is mapped.
pub(crate) fn search_request(cfg: &AbcConfig, client_id: &str) -> Option<Outbound> {
    let field = cfg.map.client_id.as_ref()?;
    let body = serde_json::to_vec(&json!({
        "queries": [{"key": field, "value": client_id, "condition": "IS"}],
        "operator": "AND",
        "page": 1,
        "limit": 10,
    }))
    .unwrap_or_default();
    Some(Outbound {
        method: "POST".to_string(),
        url: format!(
            "{}/api/v2/projects/{}/channels/{}/feedbacks/search",
            cfg.base_url, cfg.project_id, cfg.channel_id
        ),
        headers: headers(cfg, Some("application/json"), Some(body.len() as u64)),
        body: StreamBody::bytes(body),
        timeout: cfg.timeout,
    })
}

/// What a search found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SearchVerdict {
    /// The report is there: its feedback id.
    Found {
        /// ABC's numeric id, as text.
        id: String,
    },
    /// Not there: it may be sent again.
    NotFound,
    /// No usable answer.
    Failed(Verdict),
}

/// Reads a search answer (201 `{items, meta}`): an item whose client-id
/// field equals `client_id` is the report.
pub(crate) fn read_search_answer(
    cfg: &AbcConfig,
    client_id: &str,
    status: u16,
    body: &[u8],
) -> SearchVerdict {
    if !(200..300).contains(&status) {
        return SearchVerdict::Failed(common_verdict(status, body, &[401, 403]));
    }
    let Some(field) = cfg.map.client_id.as_deref() else {
        return SearchVerdict::NotFound;
    };
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return SearchVerdict::Failed(Verdict::Retry {
            reason: format!("search answer HTTP {status} is not JSON"),
            maybe_acted: false,
        });
    };
    let Some(items) = v.get("items").and_then(Value::as_array) else {
        return SearchVerdict::Failed(Verdict::Retry {
            reason: format!("search answer HTTP {status} has no items"),
            maybe_acted: false,
        });
    };
    items
        .iter()
        .find(|item| item.get(field).and_then(Value::as_str) == Some(client_id))
        .and_then(|item| item.get("id").and_then(Value::as_u64))
        .map_or(SearchVerdict::NotFound, |id| SearchVerdict::Found {
            id: id.to_string(),
        })
}

#[cfg(test)]
mod tests;
