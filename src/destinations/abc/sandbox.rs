//! The ABC User Feedback server's routes in the sandbox, as its NestJS +
//! Fastify source (`line/abc-user-feedback`, `apps/api/src`) implements them.
//!
//! | route | answer |
//! |---|---|
//! | `POST /api/projects/{p}/channels/{c}/feedbacks` (JSON) | 201 `{"id":N}` |
//! | `POST /api/projects/{p}/channels/{c}/feedbacks-with-images` (multipart) | 201 `{"id":N}` |
//! | `GET /api/projects/{p}/channels/{c}/image-upload-url?extension=png` | 200, the presigned url as text |
//! | `PUT /s3/{bucket}/{object}?X-Amz-...` (the presigned url) | 200, empty, `ETag` |
//! | `POST /api/v2/projects/{p}/channels/{c}/feedbacks/search` (JSON) | 201 `{"items":[..],"meta":{..}}` |
//!
//! Read from the source and followed:
//! - The key is the `x-api-key` header (`ApiKeyAuthGuard`); a missing or
//!   wrong key, or a key of another project, makes the guard say no: 403
//!   `{"message":"Forbidden resource","error":"Forbidden","statusCode":403,"path":..}`.
//!   The guard runs `parseInt(projectId)` before asking the database: a
//!   project id that is not a number gets a 500 (given a key).
//! - `HttpExceptionFilter`: an exception whose response is an object is sent
//!   as that object plus `statusCode` and `path` (`request.url`, so with the
//!   query); one whose response is a string is sent as `{"response","path"}`.
//!   `BadRequestException('text')` gives `{"message":"text","error":"Bad
//!   Request","statusCode":400,"path"}`; a DTO that fails `ValidationPipe`
//!   gives `message` as an array of strings (the search route's `limit` and
//!   `page`).
//! - Create (`FeedbackService.create`): `issueNames` must be an array; a key
//!   in `id, ids, issues, issueIds, updatedAt` is `reserved field key is
//!   unavailable: k`; a key that is no field of the channel is `invalid field
//!   key: k`; a value of the wrong type is `invalid value: (value: <JSON>,
//!   type: <format>, fieldKey: k)` (`validateValue`: text/keyword strings,
//!   number a number, select null or an option key, multiSelect an array of
//!   option keys, date null or a parsable date that is not a number, images
//!   an array). Only the first problem is reported (the service throws at
//!   the first): the create route's `message` is a string.
//! - A channel of another project is 400 `Invalid channel id`; an unknown
//!   channel 400 `{"code":"ChannelNotFound","message":"channel is not found"}`;
//!   a channel id that is not a number 400 `Validation failed (numeric string
//!   is expected)` (`ParseIntPipe`, after the guard).
//! - Multipart (`createWithImageFiles`): a file part whose type does not
//!   contain `image` is 400 `Not Image File (<type>)`; its bytes must match
//!   the declared type (`magic-bytes.js`), else 400 `Invalid file (sent type:
//!   <type>, detected type: [..])`; each file is stored under its part name,
//!   the urls `{endpoint}/{bucket}/{channel}_{ms}_{filename}` of one part
//!   name form the value of that field; other parts are fields.
//! - `image-upload-url`: `extension` missing is 400 `Extension is required
//!   in query parameter`; a channel without image config 400 `No image config
//!   in this channel`; otherwise the url (`{project}_{channel}_{ms}.{ext}`,
//!   expiring in an hour) as a bare string.
//! - Search v2: `queries[].key` must be a field (or `ids`/`issueIds`) else
//!   400 `invalid key in query: k`; a KEYWORD/TEXT/SELECT value must be a
//!   string (`k must be string`), NUMBER a number, MULTI_SELECT an array;
//!   conditions `IS` (equal), `CONTAINS` (substring), `BETWEEN`; queries are
//!   joined by `operator`. A POST without `@HttpCode` answers 201.
//!
//! Guessed (not readable from the source; to check against a real server):
//! - Errors raised by Fastify while it reads the body are sent as
//!   `{"response": "<text>", "path"}`: 413 `Request body is too large` above
//!   1 MiB (Fastify's `bodyLimit` default), 415 `Unsupported Media Type:
//!   <type>`, 400 `Body is not valid JSON` (the real text is the JSON
//!   parser's own message, which varies) and 400 `Body cannot be empty when
//!   content-type is set to 'application/json'`. These checks come before
//!   the key check, as Fastify parses bodies before Nest's guards run.
//! - A file over 1 MiB (`@fastify/multipart`'s default `fileSize`) is 413
//!   `{"statusCode":413,"message":"request file too large"}` (Nest's answer
//!   to a non-Nest error that has a status, without `path`); a multipart
//!   field over 1 MiB is refused the same way with `request field too large`;
//!   more than 1000 parts is 413 `reach parts limit`.
//! - A multipart field sent with `Content-Type: application/json` that does
//!   not parse is 406 `a request field is not a valid JSON as declared by
//!   its Content-Type`; a non-multipart body on the multipart route is 406
//!   `the request is not multipart`.
//! - The magic-byte detection knows PNG, JPEG, GIF, WebP and BMP only.
//! - DATE values: ISO-8601 dates (`2024-05-01`, with an optional time and
//!   zone) are accepted; JavaScript's `Date.parse` accepts more forms.
//! - The presigned PUT target is S3's: it needs no `x-api-key`, checks the
//!   signature it handed out (403 `SignatureDoesNotMatch` in S3's XML
//!   otherwise) and answers 200 with an `ETag` (the sandbox's is a SHA-256
//!   prefix, S3's an MD5). With `enforce_presigned_checksum` it refuses a
//!   non-empty body as S3-compatible stores that check
//!   `x-amz-checksum-crc32=AAAAAA==` do (400 `BadDigest`). A PUT with an
//!   `Authorization` header is 400 `InvalidArgument` (S3: one auth
//!   mechanism only). The sandbox's own check, not S3's (which ignores
//!   headers it did not sign): a PUT carrying `x-api-key` is 400
//!   `InvalidArgument`, as the channel's key must never reach the store.
//! - Search results: newest first; each item is the feedback's data plus
//!   `id`, `createdAt`, `updatedAt` and `issues` (`[]`); a request without
//!   `operator` joins its queries with OR.
//! - An unknown route is 404 `{"message":"Cannot <METHOD> <path>","error":
//!   "Not Found","statusCode":404,"path"}`.

use crate::sandbox::http::*;
use crate::sandbox::multipart::*;
use crate::sandbox::*;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::io::{self, Read};
use std::time::{SystemTime, UNIX_EPOCH};

/// ABC's JSON body limit (Fastify's default `bodyLimit`).
pub(crate) const ABC_BODY_LIMIT: u64 = 1024 * 1024;
/// ABC's per-file limit in a multipart create (`@fastify/multipart`'s default).
pub(crate) const ABC_FILE_LIMIT: u64 = 1024 * 1024;
/// Most parts in one multipart body (`@fastify/multipart`'s default).
const ABC_MAX_PARTS: usize = 1000;
/// Largest object accepted by the sandbox's presigned PUT target.
const S3_MAX_OBJECT: u64 = 64 * 1024 * 1024;

/// The format of an ABC channel field (`FieldFormatEnum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbcFieldFormat {
    /// `text`: a string.
    Text,
    /// `keyword`: a string (searchable exactly).
    Keyword,
    /// `number`: a JSON number.
    Number,
    /// `date`: null or a date string.
    Date,
    /// `select`: null or one option key.
    Select,
    /// `multiSelect`: an array of option keys.
    MultiSelect,
    /// `images`: an array of image urls.
    Images,
}

impl AbcFieldFormat {
    /// The format's name as the server writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            AbcFieldFormat::Text => "text",
            AbcFieldFormat::Keyword => "keyword",
            AbcFieldFormat::Number => "number",
            AbcFieldFormat::Date => "date",
            AbcFieldFormat::Select => "select",
            AbcFieldFormat::MultiSelect => "multiSelect",
            AbcFieldFormat::Images => "images",
        }
    }
}

/// One field of an ABC channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbcField {
    /// The field key used in bodies, e.g. `message`.
    pub key: String,
    /// Its format.
    pub format: AbcFieldFormat,
    /// The option keys of a SELECT or MULTI_SELECT field.
    pub options: Vec<String>,
}

impl AbcField {
    /// A field without options.
    pub fn new(key: impl Into<String>, format: AbcFieldFormat) -> AbcField {
        AbcField {
            key: key.into(),
            format,
            options: Vec::new(),
        }
    }

    /// A SELECT or MULTI_SELECT field with these option keys.
    pub fn with_options(
        key: impl Into<String>,
        format: AbcFieldFormat,
        options: &[&str],
    ) -> AbcField {
        AbcField {
            key: key.into(),
            format,
            options: options.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// The ABC project and channel an ABC sandbox serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbcChannel {
    /// The project id; default 1.
    pub project_id: u64,
    /// The channel id; default 1.
    pub channel_id: u64,
    /// The channel's fields. `createdAt` (DATE) is always there too, as on a
    /// real channel. Default: `message` TEXT, `description` TEXT, `submitter`
    /// KEYWORD, `crash_log` TEXT, `client_id` KEYWORD, `images` IMAGES,
    /// `app_version` KEYWORD, `os` KEYWORD, `rating` NUMBER, `seen_at` DATE,
    /// `category` SELECT (`bug`, `idea`, `praise`), `tags` MULTI_SELECT
    /// (`ui`, `crash`, `network`).
    pub fields: Vec<AbcField>,
    /// Whether the channel has an image (S3) config: without it the presigned
    /// url route answers 400. Default true.
    pub image_config: bool,
    /// The bucket named in image urls; default `sandbox-images`.
    pub bucket: String,
    /// Refuse a non-empty presigned PUT, as stores that check the signed
    /// empty-body checksum do. Default false.
    pub enforce_presigned_checksum: bool,
}

impl Default for AbcChannel {
    fn default() -> Self {
        use AbcFieldFormat::*;
        AbcChannel {
            project_id: 1,
            channel_id: 1,
            fields: vec![
                AbcField::new("message", Text),
                AbcField::new("description", Text),
                AbcField::new("submitter", Keyword),
                AbcField::new("crash_log", Text),
                AbcField::new("client_id", Keyword),
                AbcField::new("images", Images),
                AbcField::new("app_version", Keyword),
                AbcField::new("os", Keyword),
                AbcField::new("rating", Number),
                AbcField::new("seen_at", Date),
                AbcField::with_options("category", Select, &["bug", "idea", "praise"]),
                AbcField::with_options("tags", MultiSelect, &["ui", "crash", "network"]),
            ],
            image_config: true,
            bucket: "sandbox-images".to_string(),
            enforce_presigned_checksum: false,
        }
    }
}

impl AbcChannel {
    fn field(&self, key: &str) -> Option<AbcField> {
        if key == "createdAt" {
            return Some(AbcField::new("createdAt", AbcFieldFormat::Date));
        }
        self.fields.iter().find(|f| f.key == key).cloned()
    }
}

// ---------------------------------------------------------------------------
// Error bodies
// ---------------------------------------------------------------------------

fn request_url(head: &Head) -> String {
    if head.query.is_empty() {
        head.path.clone()
    } else {
        format!("{}?{}", head.path, head.query)
    }
}

/// `BadRequestException`-style body: `{message, error, statusCode, path}`.
pub(crate) fn nest_error(status: u16, text: &str, head: &Head) -> Response {
    nest_message(status, Value::String(text.to_string()), head)
}

fn nest_message(status: u16, message: Value, head: &Head) -> Response {
    Response::json(
        status,
        &json!({"message": message, "error": reason(status), "statusCode": status, "path": request_url(head)}),
    )
}

/// An error raised with a string response (Fastify's body errors).
fn string_response(status: u16, text: &str, head: &Head) -> Response {
    Response::json(
        status,
        &json!({"response": text, "path": request_url(head)}),
    )
}

/// An error that is no Nest `HttpException` but has a status.
fn plain_error(status: u16, text: &str) -> Response {
    Response::json(status, &json!({"statusCode": status, "message": text}))
}

fn forbidden(head: &Head) -> Response {
    nest_error(403, "Forbidden resource", head)
}

fn s3_error(status: u16, code: &str, text: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{text}</Message></Error>"
    );
    let mut r = Response::raw(status, body.into_bytes());
    r.set_header("Content-Type", "application/xml");
    r
}

// ---------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------

pub(crate) fn route(shared: &Shared, head: &Head, body: &mut Body<'_>) -> Result<Response, Abort> {
    let segments: Vec<String> = head
        .path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s, false))
        .collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = head.method.as_str();
    match (method, seg.as_slice()) {
        ("POST", ["api", "projects", p, "channels", c, "feedbacks"]) => {
            let data = match read_json(head, body)? {
                Ok(v) => v,
                Err(resp) => return Ok(resp),
            };
            if let Err(resp) = guard_and_channel(shared, head, p, c) {
                return Ok(resp);
            }
            Ok(create(shared, head, data, Vec::new()))
        }
        ("POST", ["api", "projects", p, "channels", c, "feedbacks-with-images"]) => {
            if let Err(resp) = guard_and_channel(shared, head, p, c) {
                return Ok(resp);
            }
            create_with_images(shared, head, body)
        }
        ("GET", ["api", "projects", p, "channels", c, "image-upload-url"]) => {
            if let Err(resp) = guard_and_channel(shared, head, p, c) {
                return Ok(resp);
            }
            Ok(upload_url(shared, head))
        }
        ("POST", ["api", "v2", "projects", p, "channels", c, "feedbacks", "search"]) => {
            let data = match read_json(head, body)? {
                Ok(v) => v,
                Err(resp) => return Ok(resp),
            };
            if let Err(resp) = guard_and_channel(shared, head, p, c) {
                return Ok(resp);
            }
            Ok(search(shared, head, &data))
        }
        ("PUT", ["s3", bucket, object]) => presigned_put(shared, head, body, bucket, object),
        _ => Ok(nest_error(
            404,
            &format!("Cannot {} {}", head.method, head.path),
            head,
        )),
    }
}

/// Fastify's body parsing: content type, size, JSON.
fn read_json(head: &Head, body: &mut Body<'_>) -> Result<Result<Value, Response>, Abort> {
    let ct = media_type(head.header("content-type"));
    let text_plain = ct == "text/plain";
    if ct != "application/json" && !text_plain {
        let shown = head.header("content-type").unwrap_or("").trim().to_string();
        return Ok(Err(string_response(
            415,
            &format!("Unsupported Media Type: {shown}"),
            head,
        )));
    }
    let bytes = match read_limited(body, ABC_BODY_LIMIT) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(Err(string_response(413, "Request body is too large", head))),
        Err(e) => return body_error(&e).map(Err),
    };
    if text_plain {
        return Ok(Ok(Value::String(
            String::from_utf8_lossy(&bytes).into_owned(),
        )));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Err(string_response(
            400,
            "Body cannot be empty when content-type is set to 'application/json'",
            head,
        )));
    }
    Ok(serde_json::from_slice(&bytes)
        .map_err(|_| string_response(400, "Body is not valid JSON", head)))
}

/// `ApiKeyAuthGuard`, then `ParseIntPipe` on the channel, then the channel lookup.
fn guard_and_channel(shared: &Shared, head: &Head, p: &str, c: &str) -> Result<(), Response> {
    let cfg = &shared.config.abc;
    let Some(key) = head.header("x-api-key").filter(|k| !k.is_empty()) else {
        return Err(forbidden(head));
    };
    // parseInt: leading digits (after optional spaces and a sign); NaN otherwise.
    let digits: String = p
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let Ok(project) = digits.parse::<u64>() else {
        return Err(plain_error(500, "Internal server error"));
    };
    if key != shared.keys.current() || project != cfg.project_id {
        return Err(forbidden(head));
    }
    let Ok(channel) = c.parse::<u64>() else {
        return Err(nest_error(
            400,
            "Validation failed (numeric string is expected)",
            head,
        ));
    };
    if channel != cfg.channel_id {
        return Err(Response::json(
            400,
            &json!({"code": "ChannelNotFound", "message": "channel is not found", "statusCode": 400, "path": request_url(head)}),
        ));
    }
    // The numeric project (e.g. `1` for `01`) is the channel's own.
    Ok(())
}

// ---------------------------------------------------------------------------
// Create
// ---------------------------------------------------------------------------

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if !(digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10))
    {
        return false;
    }
    let month: u32 = s[5..7].parse().unwrap_or(0);
    let day: u32 = s[8..10].parse().unwrap_or(0);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return false;
    }
    let rest = &s[10..];
    if rest.is_empty() {
        return true;
    }
    let Some(time) = rest.strip_prefix('T').or_else(|| rest.strip_prefix(' ')) else {
        return false;
    };
    let t = time.as_bytes();
    let ok_hm =
        t.len() >= 5 && t[2] == b':' && t[..2].iter().chain(&t[3..5]).all(u8::is_ascii_digit);
    ok_hm
        && time[5..]
            .bytes()
            .all(|c| c.is_ascii_digit() || b":.+-Z".contains(&c))
}

fn valid_value(field: &AbcField, v: &Value) -> bool {
    match field.format {
        AbcFieldFormat::Number => v.is_number(),
        AbcFieldFormat::Text | AbcFieldFormat::Keyword => v.is_string(),
        AbcFieldFormat::Select => {
            v.is_null()
                || v.as_str()
                    .is_some_and(|s| field.options.iter().any(|o| o == s))
        }
        AbcFieldFormat::MultiSelect => v.as_array().is_some_and(|a| {
            a.iter().all(|x| {
                x.as_str()
                    .is_some_and(|s| field.options.iter().any(|o| o == s))
            })
        }),
        AbcFieldFormat::Date => v.is_null() || v.as_str().is_some_and(is_date),
        AbcFieldFormat::Images => v.is_array(),
    }
}

/// `FeedbackService.create`: the first problem, or the data to store.
fn validate(channel: &AbcChannel, data: &Map<String, Value>) -> Result<(), String> {
    if let Some(names) = data.get("issueNames") {
        if !names.is_array() && !names.is_null() {
            return Err("issueNames must be array".to_string());
        }
    }
    for (key, value) in data {
        if key == "issueNames" {
            continue;
        }
        if ["id", "ids", "issues", "issueIds", "updatedAt"].contains(&key.as_str()) {
            return Err(format!("reserved field key is unavailable: {key}"));
        }
        let Some(field) = channel.field(key) else {
            return Err(format!("invalid field key: {key}"));
        };
        if !valid_value(&field, value) {
            return Err(format!(
                "invalid value: (value: {value}, type: {}, fieldKey: {key})",
                field.format.as_str()
            ));
        }
    }
    Ok(())
}

fn create(shared: &Shared, head: &Head, data: Value, images: Vec<ReceivedUpload>) -> Response {
    let data = match data {
        Value::Object(o) => o,
        // A string body spreads into its characters: `{"0": ...}`.
        Value::String(s) if !s.is_empty() => {
            return nest_error(400, "invalid field key: 0", head);
        }
        Value::String(_) | Value::Null => Map::new(),
        Value::Array(a) if a.is_empty() => Map::new(),
        Value::Array(_) => return nest_error(400, "invalid field key: 0", head),
        _ => Map::new(),
    };
    if let Err(why) = validate(&shared.config.abc, &data) {
        return nest_error(400, &why, head);
    }
    let mut st = shared.lock();
    let id = st.next_key;
    st.next_key += 1;
    st.feedback.push(CreatedFeedback {
        id: id.to_string(),
        key: id.to_string(),
        url: String::new(),
        body: Value::Object(data),
        at: SystemTime::now(),
    });
    for mut image in images {
        image.feedback_key = id.to_string();
        st.uploads.push(image);
    }
    Response::json(201, &json!({ "id": id }))
}

/// The types `magic-bytes.js` would report for these first bytes (the
/// image types only).
pub(crate) fn detect_image(first: &[u8]) -> Vec<&'static str> {
    let mut out = Vec::new();
    if first.starts_with(b"\x89PNG\r\n\x1a\n") {
        out.push("image/png");
    }
    if first.starts_with(&[0xFF, 0xD8, 0xFF]) {
        out.push("image/jpeg");
    }
    if first.starts_with(b"GIF87a") || first.starts_with(b"GIF89a") {
        out.push("image/gif");
    }
    if first.len() >= 12 && &first[..4] == b"RIFF" && &first[8..12] == b"WEBP" {
        out.push("image/webp");
    }
    if first.starts_with(b"BM") {
        out.push("image/bmp");
    }
    out
}

enum Part {
    Field(String, Value),
    File(String, ReceivedUpload),
}

fn multipart_fail(e: MultipartError, head: &Head) -> Result<Response, Abort> {
    match e {
        MultipartError::Io(e) => body_error(&e),
        MultipartError::TooLarge => Ok(plain_error(413, "request file too large")),
        MultipartError::Bad(why) if why.starts_with('\u{1}') => {
            // A refusal already phrased as the server's answer.
            let (status, text) = why[1..].split_once(' ').unwrap_or(("400", ""));
            let status: u16 = status.parse().unwrap_or(400);
            Ok(if status == 400 {
                nest_error(400, text, head)
            } else {
                plain_error(status, text)
            })
        }
        MultipartError::Bad(why) => Ok(plain_error(400, &why)),
    }
}

/// A refusal carried through the parser as `MultipartError::Bad`.
fn refuse(status: u16, text: &str) -> MultipartError {
    MultipartError::Bad(format!("\u{1}{status} {text}"))
}

fn create_with_images(
    shared: &Shared,
    head: &Head,
    body: &mut Body<'_>,
) -> Result<Response, Abort> {
    let Some(boundary) = multipart_boundary(head.header("content-type")) else {
        return Ok(plain_error(406, "the request is not multipart"));
    };
    let parts = match parse_parts(&mut *body, boundary.as_bytes(), shared) {
        Ok(parts) => parts,
        Err(e) => return multipart_fail(e, head),
    };
    let cfg = &shared.config.abc;
    let base = shared.public_base(head);
    let mut data = Map::new();
    let mut images = Vec::new();
    for part in parts {
        match part {
            Part::Field(name, value) => {
                data.insert(name, value);
            }
            Part::File(name, upload) => {
                let ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis();
                let url = format!(
                    "{base}/s3/{}/{}_{ms}_{}",
                    cfg.bucket,
                    cfg.channel_id,
                    encode_segment(&upload.file_name)
                );
                let slot = data
                    .entry(name.clone())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if !slot.is_array() {
                    *slot = Value::Array(Vec::new());
                }
                if let Value::Array(a) = slot {
                    a.push(Value::String(url));
                }
                images.push(upload);
            }
        }
    }
    Ok(create(shared, head, Value::Object(data), images))
}

fn parse_parts<R: Read>(
    src: R,
    boundary: &[u8],
    shared: &Shared,
) -> Result<Vec<Part>, MultipartError> {
    let (mut scan, needle) = past_preamble(src, boundary)?;
    let mut parts = Vec::new();
    loop {
        if !scan.want(2)? {
            return Err(MultipartError::Bad(
                "the multipart body ends after a boundary".to_string(),
            ));
        }
        if &scan.buf[scan.pos..scan.pos + 2] == b"--" {
            break;
        }
        let _ = scan.read_line(256)?;
        if parts.len() >= ABC_MAX_PARTS {
            return Err(refuse(413, "reach parts limit"));
        }
        let (mut name, mut file_name, mut content_type) = (None, None, None);
        loop {
            let line = scan.read_line(MAX_LINE)?;
            if line.is_empty() {
                break;
            }
            let line = String::from_utf8_lossy(&line);
            let Some((hname, hvalue)) = line.split_once(':') else {
                return Err(MultipartError::Bad("malformed part header".to_string()));
            };
            if hname.trim().eq_ignore_ascii_case("content-disposition") {
                let params = hvalue.split_once(';').map_or("", |(_, p)| p);
                for (pname, pvalue) in header_params(params) {
                    match pname.to_ascii_lowercase().as_str() {
                        "name" => name = Some(pvalue),
                        "filename" => file_name = Some(pvalue),
                        _ => {}
                    }
                }
            } else if hname.trim().eq_ignore_ascii_case("content-type") {
                content_type = Some(hvalue.trim().to_string());
            }
        }
        let name = name.unwrap_or_default();
        match file_name {
            Some(file_name) => {
                let mime = content_type.unwrap_or_else(|| "application/octet-stream".to_string());
                if !mime.contains("image") {
                    return Err(refuse(400, &format!("Not Image File ({mime})")));
                }
                let mut hasher = Sha256::new();
                let mut size = 0u64;
                let mut first = Vec::with_capacity(16);
                scan.stream_until(&needle, &mut |bytes| {
                    size += bytes.len() as u64;
                    if size > ABC_FILE_LIMIT {
                        return Err(MultipartError::TooLarge);
                    }
                    let want = 16usize.saturating_sub(first.len()).min(bytes.len());
                    first.extend_from_slice(&bytes[..want]);
                    hasher.update(bytes);
                    Ok(())
                })?;
                let detected = detect_image(&first);
                if !detected.contains(&mime.as_str()) {
                    return Err(refuse(
                        400,
                        &format!(
                            "Invalid file (sent type: {mime}, detected type: {})",
                            serde_json::to_string(&detected).unwrap_or_default()
                        ),
                    ));
                }
                parts.push(Part::File(
                    name.clone(),
                    ReceivedUpload {
                        id: shared.fresh_uuid(),
                        feedback_key: String::new(),
                        element_key: name,
                        file_name,
                        content_type: mime,
                        size,
                        sha256_hex: hex(&hasher.finalize()),
                    },
                ));
            }
            None => {
                let mut value = Vec::new();
                let mut too_large = false;
                scan.stream_until(&needle, &mut |bytes| {
                    if value.len() as u64 + bytes.len() as u64 > ABC_BODY_LIMIT {
                        too_large = true;
                    } else {
                        value.extend_from_slice(bytes);
                    }
                    Ok(())
                })?;
                if too_large {
                    return Err(refuse(413, "request field too large"));
                }
                let text = String::from_utf8_lossy(&value).into_owned();
                let json_part = content_type
                    .as_deref()
                    .is_some_and(|c| media_type(Some(c)) == "application/json");
                let value = if json_part {
                    serde_json::from_str(&text).map_err(|_| {
                        refuse(
                            406,
                            "a request field is not a valid JSON as declared by its Content-Type",
                        )
                    })?
                } else {
                    Value::String(text)
                };
                parts.push(Part::Field(name, value));
            }
        }
    }
    Ok(parts)
}

// ---------------------------------------------------------------------------
// Presigned upload
// ---------------------------------------------------------------------------

fn upload_url(shared: &Shared, head: &Head) -> Response {
    let cfg = &shared.config.abc;
    let extension = query_param(&head.query, "extension").unwrap_or_default();
    if extension.is_empty() {
        return nest_error(400, "Extension is required in query parameter", head);
    }
    if !cfg.image_config {
        return nest_error(400, "No image config in this channel", head);
    }
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let object = format!("{}_{}_{ms}.{}", cfg.project_id, cfg.channel_id, extension);
    let signature = hex(&shared.fresh_bytes()) + &hex(&shared.fresh_bytes());
    let now = iso8601(SystemTime::now());
    let amz_date: String = now[..19]
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect::<String>()
        + "Z";
    let url = format!(
        "{}/s3/{}/{}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Content-Sha256=UNSIGNED-PAYLOAD\
         &X-Amz-Credential=SANDBOX%2F{}%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date={amz_date}\
         &X-Amz-Expires=3600&X-Amz-Signature={signature}&X-Amz-SignedHeaders=host\
         &x-amz-acl=public-read&x-amz-checksum-crc32=AAAAAA%3D%3D&x-amz-sdk-checksum-algorithm=CRC32&x-id=PutObject",
        shared.public_base(head),
        cfg.bucket,
        encode_segment(&object),
        &amz_date[..8],
    );
    shared.lock().presigned.push((signature, object));
    let mut resp = Response::raw(200, url.into_bytes());
    resp.set_header("Content-Type", "text/plain; charset=utf-8");
    resp
}

fn presigned_put(
    shared: &Shared,
    head: &Head,
    body: &mut Body<'_>,
    bucket: &str,
    object: &str,
) -> Result<Response, Abort> {
    let cfg = &shared.config.abc;
    let signature = query_param(&head.query, "X-Amz-Signature").unwrap_or_default();
    let known = shared
        .lock()
        .presigned
        .iter()
        .any(|(s, o)| *s == signature && o == object);
    if bucket != cfg.bucket || !known {
        return Ok(s3_error(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        ));
    }
    if head.header("authorization").is_some() {
        return Ok(s3_error(
            400,
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified",
        ));
    }
    if head.header("x-api-key").is_some() {
        // Not S3's rule: the sandbox catches a key sent to the store.
        return Ok(s3_error(
            400,
            "InvalidArgument",
            "fieldreport sandbox: the ABC API key (x-api-key) was sent to the image store",
        ));
    }
    if body.declared.is_some_and(|n| n > S3_MAX_OBJECT) {
        return Ok(s3_error(
            400,
            "EntityTooLarge",
            "Your proposed upload exceeds the maximum allowed size.",
        ));
    }
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; SCAN_CHUNK];
    loop {
        match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                size += n as u64;
                if size > S3_MAX_OBJECT {
                    return Ok(s3_error(
                        400,
                        "EntityTooLarge",
                        "Your proposed upload exceeds the maximum allowed size.",
                    ));
                }
                hasher.update(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return body_error(&e),
        }
    }
    if cfg.enforce_presigned_checksum && size > 0 {
        return Ok(s3_error(
            400,
            "BadDigest",
            "The CRC32 you specified did not match the calculated checksum.",
        ));
    }
    let sha = hex(&hasher.finalize());
    shared.lock().uploads.push(ReceivedUpload {
        id: shared.fresh_uuid(),
        feedback_key: String::new(),
        element_key: "presigned".to_string(),
        file_name: object.to_string(),
        content_type: head
            .header("content-type")
            .unwrap_or("application/octet-stream")
            .trim()
            .to_string(),
        size,
        sha256_hex: sha.clone(),
    });
    let mut resp = Response::raw(200, Vec::new());
    resp.set_header("ETag", &format!("\"{}\"", &sha[..32]));
    resp.headers
        .retain(|(n, _)| !n.eq_ignore_ascii_case("content-type"));
    Ok(resp)
}

// ---------------------------------------------------------------------------
// Search v2
// ---------------------------------------------------------------------------

fn search(shared: &Shared, head: &Head, data: &Value) -> Response {
    let empty = Map::new();
    let o = data.as_object().unwrap_or(&empty);
    // ValidationPipe on the DTO: every message, as an array.
    let mut messages = Vec::new();
    for name in ["limit", "page"] {
        match o.get(name) {
            None | Some(Value::Null) => {}
            Some(v) => {
                let n = v.as_f64();
                if n.is_none_or(|n| n < 1.0) {
                    messages.push(Value::String(format!("{name} must not be less than 1")));
                }
                if n.is_none() {
                    messages.push(Value::String(format!(
                        "{name} must be a number conforming to the specified constraints"
                    )));
                }
            }
        }
    }
    if !messages.is_empty() {
        return nest_message(400, Value::Array(messages), head);
    }
    let limit = o.get("limit").and_then(Value::as_f64).unwrap_or(10.0) as usize;
    let page = o.get("page").and_then(Value::as_f64).unwrap_or(1.0) as usize;
    let queries: Vec<Value> = match o.get("queries") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return plain_error(500, "Internal server error"),
    };
    let channel = &shared.config.abc;
    for q in &queries {
        let key = q.get("key").and_then(Value::as_str).unwrap_or("");
        let value = q.get("value").unwrap_or(&Value::Null);
        if key == "ids" || key == "issueIds" {
            if !value.is_array() {
                return nest_error(400, &format!("{key} must be array"), head);
            }
            continue;
        }
        let Some(field) = channel.field(key) else {
            return nest_error(400, &format!("invalid key in query: {key}"), head);
        };
        let ok = match field.format {
            AbcFieldFormat::Keyword | AbcFieldFormat::Text | AbcFieldFormat::Select => {
                value.is_string()
            }
            AbcFieldFormat::Number => value.is_number(),
            AbcFieldFormat::MultiSelect | AbcFieldFormat::Images => value.is_array(),
            AbcFieldFormat::Date => value.get("gte").is_some() && value.get("lt").is_some(),
        };
        if !ok {
            let kind = match field.format {
                AbcFieldFormat::Number => "number",
                AbcFieldFormat::MultiSelect | AbcFieldFormat::Images => "array of string",
                AbcFieldFormat::Date => "DateTimeRange",
                _ => "string",
            };
            return nest_error(400, &format!("{key} must be {kind}"), head);
        }
    }
    let and = o.get("operator").and_then(Value::as_str) == Some("AND");
    let st = shared.lock();
    let matches = |f: &CreatedFeedback| {
        let results = queries.iter().map(|q| {
            let key = q.get("key").and_then(Value::as_str).unwrap_or("");
            let cond = q
                .get("condition")
                .and_then(Value::as_str)
                .unwrap_or("CONTAINS");
            let want = q.get("value").unwrap_or(&Value::Null);
            if key == "ids" {
                return want.as_array().is_some_and(|a| {
                    a.iter().any(|v| {
                        v.as_u64().map(|n| n.to_string()).as_deref() == Some(f.id.as_str())
                            || v.as_str() == Some(&f.id)
                    })
                });
            }
            let have = f.body.get(key).unwrap_or(&Value::Null);
            match (cond, have, want) {
                ("CONTAINS", Value::String(h), Value::String(w)) => h.contains(w.as_str()),
                ("BETWEEN", Value::String(h), w) => {
                    let gte = w.get("gte").and_then(Value::as_str).unwrap_or("");
                    let lt = w.get("lt").and_then(Value::as_str).unwrap_or("\u{10ffff}");
                    h.as_str() >= gte && h.as_str() < lt
                }
                (_, h, w) => h == w,
            }
        });
        let results: Vec<bool> = results.collect();
        if results.is_empty() {
            true
        } else if and {
            results.iter().all(|b| *b)
        } else {
            results.iter().any(|b| *b)
        }
    };
    let found: Vec<&CreatedFeedback> = st.feedback.iter().rev().filter(|f| matches(f)).collect();
    let total = found.len();
    let limit = limit.max(1);
    let items: Vec<Value> = found
        .iter()
        .skip((page.max(1) - 1) * limit)
        .take(limit)
        .map(|f| {
            let mut item = f.body.as_object().cloned().unwrap_or_default();
            item.remove("issueNames");
            let at = iso8601(f.at);
            item.insert("id".to_string(), json!(f.id.parse::<u64>().unwrap_or(0)));
            item.entry("createdAt".to_string())
                .or_insert_with(|| Value::String(at.clone()));
            item.insert("updatedAt".to_string(), Value::String(at));
            item.insert("issues".to_string(), json!([]));
            Value::Object(item)
        })
        .collect();
    Response::json(
        201,
        &json!({
            "items": items,
            "meta": {
                "itemCount": items.len(),
                "totalItems": total,
                "itemsPerPage": limit,
                "totalPages": total.div_ceil(limit),
                "currentPage": page.max(1),
            }
        }),
    )
}
