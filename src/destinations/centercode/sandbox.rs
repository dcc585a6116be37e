//! Centercode's routes in the sandbox: Create Feedback, Upload File
//! Attachment and Project Feedback Lookup, answered as the reference
//! documents them.

use crate::sandbox::http::*;
use crate::sandbox::multipart::*;
use crate::sandbox::*;
use serde_json::{json, Map, Value};
use std::time::SystemTime;

// ---------------------------------------------------------------------------
// Routing and the API endpoints
// ---------------------------------------------------------------------------

pub(crate) fn route(shared: &Shared, head: &Head, body: &mut Body<'_>) -> Result<Response, Abort> {
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

pub(crate) fn create_feedback(
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

pub(crate) fn single_attachment() -> Response {
    Response::error(400, "This file element accepts a single attachment.")
}

/// `target` is `[project, feedback type, feedback key, element key]`.
pub(crate) fn upload_attachment(
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

pub(crate) fn lookup_feedback(
    shared: &Shared,
    head: &Head,
    project: &str,
    lookup: &str,
) -> Response {
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
pub(crate) fn lookup_record(f: &CreatedFeedback) -> Vec<Value> {
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
