//! `fieldreport_feedback` and `fieldreport_crash`: reports built one call
//! at a time, then submitted with `fieldreport_client_submit` /
//! `fieldreport_client_submit_crash`.

use std::ffi::c_char;

use serde_json::Value;

use super::fieldreport_status;
use super::{guard, guard_value, handle_mut, opt_text, out, path, text, Fail, FfiResult};
use crate::report::{Attachment, CrashLog, CrashReport, Feedback};

/// What feedback and crash reports share: the optional parts.
#[derive(Default)]
pub(crate) struct Extras {
    description: Option<String>,
    submitter: Option<String>,
    fields: Vec<(String, Value)>,
    attachments: Vec<Attachment>,
}

impl Extras {
    fn set_field(&mut self, name: &str, value: Value) {
        match self.fields.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((name.to_string(), value)),
        }
    }
}

/// Feedback a person wrote: a summary plus optional description,
/// submitter, extra fields and attachments. Created by
/// `fieldreport_feedback_new`, freed by `fieldreport_feedback_free`; the
/// caller owns it. Submitting does not consume it: it can be submitted
/// again (as a new report) or changed after a refusal and submitted again.
/// Setters only check their arguments' form; the report as a whole is
/// checked by `fieldreport_client_submit`. Use from one thread at a time.
pub struct fieldreport_feedback {
    summary: String,
    extras: Extras,
}

impl fieldreport_feedback {
    pub(crate) fn to_feedback(&self) -> Feedback {
        let e = &self.extras;
        Feedback {
            summary: self.summary.clone(),
            description: e.description.clone(),
            submitter: e.submitter.clone(),
            fields: e.fields.clone(),
            attachments: e.attachments.clone(),
        }
    }
}

/// The log of a crashed run, with optional summary, description, extra
/// fields and more attachments. The log is gzip-compressed at submit and
/// uploaded to the crash file element. Created by
/// `fieldreport_crash_new_text` or `fieldreport_crash_new_file`, freed by
/// `fieldreport_crash_free`; the caller owns it. Submitting does not consume
/// it. Use from one thread at a time.
pub struct fieldreport_crash {
    log: CrashLog,
    summary: Option<String>,
    file_name: Option<String>,
    extras: Extras,
}

impl fieldreport_crash {
    pub(crate) fn to_crash(&self) -> CrashReport {
        let e = &self.extras;
        CrashReport {
            log: self.log.clone(),
            summary: self.summary.clone(),
            description: e.description.clone(),
            submitter: e.submitter.clone(),
            file_name: self.file_name.clone(),
            fields: e.fields.clone(),
            attachments: e.attachments.clone(),
        }
    }
}

// ---- shared bodies ----

unsafe fn field_name<'a>(name: *const c_char) -> FfiResult<&'a str> {
    text(name, "name")
}

unsafe fn parse_json(json: *const c_char) -> FfiResult<Value> {
    let json = text(json, "json")?;
    serde_json::from_str(json).map_err(|e| Fail::input(format!("json is not valid JSON: {e}")))
}

unsafe fn file_attachment(
    element_key: *const c_char,
    file_path: *const c_char,
    file_name: *const c_char,
    content_type: *const c_char,
) -> FfiResult<Attachment> {
    let key = text(element_key, "element_key")?;
    let p = path(file_path, "path")?;
    let name = opt_text(file_name, "file_name")?;
    let ctype = opt_text(content_type, "content_type")?;
    let mut a = Attachment::from_path(key, p);
    a.file_name = name.map(str::to_string);
    a.content_type = ctype.map(str::to_string);
    Ok(a)
}

unsafe fn bytes_attachment(
    element_key: *const c_char,
    file_name: *const c_char,
    data: *const u8,
    len: usize,
    content_type: *const c_char,
) -> FfiResult<Attachment> {
    let key = text(element_key, "element_key")?;
    let name = text(file_name, "file_name")?;
    let ctype = opt_text(content_type, "content_type")?;
    let bytes = if len == 0 {
        Vec::new()
    } else if data.is_null() {
        return Err(Fail::new(
            fieldreport_status::NullArgument,
            "data is NULL but len is not 0",
        ));
    } else {
        std::slice::from_raw_parts(data, len).to_vec()
    };
    let mut a = Attachment::from_bytes(key, name, bytes);
    a.content_type = ctype.map(str::to_string);
    Ok(a)
}

unsafe fn with_feedback(
    feedback: *mut fieldreport_feedback,
    f: impl FnOnce(&mut fieldreport_feedback) -> FfiResult,
) -> fieldreport_status {
    guard(|| f(handle_mut(feedback, "feedback")?))
}

unsafe fn with_crash(
    crash: *mut fieldreport_crash,
    f: impl FnOnce(&mut fieldreport_crash) -> FfiResult,
) -> fieldreport_status {
    guard(|| f(handle_mut(crash, "crash")?))
}

// ---- feedback ----

/// Creates feedback with `summary`: one line saying what it is about
/// (required; an empty or multi-line summary is refused at submit).
/// On success `*out_feedback` is a new handle that the caller owns and frees
/// with `fieldreport_feedback_free`; on failure it is NULL. Copies the
/// string; never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_feedback_new(
    summary: *const c_char,
    out_feedback: *mut *mut fieldreport_feedback,
) -> fieldreport_status {
    guard(|| {
        let out_feedback = out(out_feedback, "out_feedback", std::ptr::null_mut())?;
        let summary = text(summary, "summary")?;
        *out_feedback = Box::into_raw(Box::new(fieldreport_feedback {
            summary: summary.to_string(),
            extras: Extras::default(),
        }));
        Ok(())
    })
}

/// Frees feedback. `feedback` may be NULL. Reports already submitted from
/// it are not affected. Never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_feedback_free(feedback: *mut fieldreport_feedback) {
    guard_value((), || {
        if !feedback.is_null() {
            drop(Box::from_raw(feedback));
        }
    })
}

/// Sets the details (any length up to the policy's limit, several lines
/// allowed). `description` may be NULL to remove it. Copies the string;
/// never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_feedback_set_description(
    feedback: *mut fieldreport_feedback,
    description: *const c_char,
) -> fieldreport_status {
    with_feedback(feedback, |f| {
        f.extras.description = opt_text(description, "description")?.map(str::to_string);
        Ok(())
    })
}

/// Sets the submitter's e-mail or login. `submitter` may be NULL for
/// anonymous feedback (the default). Copies the string; never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_feedback_set_submitter(
    feedback: *mut fieldreport_feedback,
    submitter: *const c_char,
) -> fieldreport_status {
    with_feedback(feedback, |f| {
        f.extras.submitter = opt_text(submitter, "submitter")?.map(str::to_string);
        Ok(())
    })
}

/// Sets the extra field `name` of the project's feedback source to a string
/// value, replacing an earlier value of the same field. Fields are sent as
/// they are; `summary`, `description`, `submitter` and the configured client
/// id field are refused at submit (they have their own, checked, places).
/// Copies the strings; never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_feedback_set_field_string(
    feedback: *mut fieldreport_feedback,
    name: *const c_char,
    value: *const c_char,
) -> fieldreport_status {
    with_feedback(feedback, |f| {
        let name = field_name(name)?;
        let value = text(value, "value")?;
        f.extras.set_field(name, Value::from(value));
        Ok(())
    })
}

/// Sets the extra field `name` to an integer (e.g. a topic id: `23795`).
/// Copies the name; never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_feedback_set_field_int(
    feedback: *mut fieldreport_feedback,
    name: *const c_char,
    value: i64,
) -> fieldreport_status {
    with_feedback(feedback, |f| {
        f.extras.set_field(field_name(name)?, Value::from(value));
        Ok(())
    })
}

/// Sets the extra field `name` to any JSON value given as text (`"true"`,
/// `"[1,2]"`, `"{\"a\":1}"`). Malformed JSON returns
/// `FIELDREPORT_STATUS_INVALID_INPUT` and changes nothing. Copies the
/// strings; never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_feedback_set_field_json(
    feedback: *mut fieldreport_feedback,
    name: *const c_char,
    json: *const c_char,
) -> fieldreport_status {
    with_feedback(feedback, |f| {
        let name = field_name(name)?;
        let value = parse_json(json)?;
        f.extras.set_field(name, value);
        Ok(())
    })
}

/// Adds the file at `path` as an attachment to the file element
/// `element_key` (e.g. `"Screenshot"`). The file is read and copied into the
/// outbox at submit, not now: a missing or unreadable file is reported by
/// `fieldreport_client_submit` (`FIELDREPORT_STATUS_ATTACHMENT_UNREADABLE`),
/// and the app may delete the file once submit returned. `file_name` (the
/// name the server sees) may be NULL for the path's own file name;
/// `content_type` may be NULL to guess it from the file name. Copies the
/// strings; never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_feedback_attach_file(
    feedback: *mut fieldreport_feedback,
    element_key: *const c_char,
    path: *const c_char,
    file_name: *const c_char,
    content_type: *const c_char,
) -> fieldreport_status {
    with_feedback(feedback, |f| {
        let a = file_attachment(element_key, path, file_name, content_type)?;
        f.extras.attachments.push(a);
        Ok(())
    })
}

/// Adds `len` bytes at `data` as an attachment named `file_name` to the file
/// element `element_key`. The bytes are copied now; the caller keeps
/// `data`. `data` may be NULL when `len` is 0. `content_type` may be NULL
/// to guess it from the file name. Never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_feedback_attach_bytes(
    feedback: *mut fieldreport_feedback,
    element_key: *const c_char,
    file_name: *const c_char,
    data: *const u8,
    len: usize,
    content_type: *const c_char,
) -> fieldreport_status {
    with_feedback(feedback, |f| {
        let a = bytes_attachment(element_key, file_name, data, len, content_type)?;
        f.extras.attachments.push(a);
        Ok(())
    })
}

// ---- crash ----

/// Creates a crash report from the log text `log` (a panic message, a
/// backtrace, the tail of a log file). The summary defaults to the log's
/// first meaningful line. On success `*out_crash` is a new handle that the
/// caller owns and frees with `fieldreport_crash_free`; on failure it is
/// NULL. Copies the string; never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_crash_new_text(
    log: *const c_char,
    out_crash: *mut *mut fieldreport_crash,
) -> fieldreport_status {
    guard(|| {
        let out_crash = out(out_crash, "out_crash", std::ptr::null_mut())?;
        let log = text(log, "log")?;
        *out_crash = new_crash(CrashLog::Text(log.to_string()));
        Ok(())
    })
}

/// Creates a crash report from the log file at `path`, typically written by
/// the crashed run and found at the next start. The file is read (streamed,
/// compressed) at submit; the app may delete it once submit returned. On
/// success `*out_crash` is a new handle that the caller owns and frees with
/// `fieldreport_crash_free`; on failure it is NULL. Never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_crash_new_file(
    path: *const c_char,
    out_crash: *mut *mut fieldreport_crash,
) -> fieldreport_status {
    guard(|| {
        let out_crash = out(out_crash, "out_crash", std::ptr::null_mut())?;
        let p = super::path(path, "path")?;
        *out_crash = new_crash(CrashLog::File(p));
        Ok(())
    })
}

fn new_crash(log: CrashLog) -> *mut fieldreport_crash {
    Box::into_raw(Box::new(fieldreport_crash {
        log,
        summary: None,
        file_name: None,
        extras: Extras::default(),
    }))
}

/// Frees a crash report. `crash` may be NULL. Never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_crash_free(crash: *mut fieldreport_crash) {
    guard_value((), || {
        if !crash.is_null() {
            drop(Box::from_raw(crash));
        }
    })
}

/// Sets the one-line summary instead of the log's first meaningful line.
/// `summary` may be NULL to go back to that default. Copies the string;
/// never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_crash_set_summary(
    crash: *mut fieldreport_crash,
    summary: *const c_char,
) -> fieldreport_status {
    with_crash(crash, |c| {
        c.summary = opt_text(summary, "summary")?.map(str::to_string);
        Ok(())
    })
}

/// Sets the details instead of the default (a description of the device and
/// app). `description` may be NULL to go back to the default. Copies the
/// string; never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_crash_set_description(
    crash: *mut fieldreport_crash,
    description: *const c_char,
) -> fieldreport_status {
    with_crash(crash, |c| {
        c.extras.description = opt_text(description, "description")?.map(str::to_string);
        Ok(())
    })
}

/// Sets the submitter's e-mail or login; `submitter` may be NULL
/// (anonymous, the default). Copies the string; never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_crash_set_submitter(
    crash: *mut fieldreport_crash,
    submitter: *const c_char,
) -> fieldreport_status {
    with_crash(crash, |c| {
        c.extras.submitter = opt_text(submitter, "submitter")?.map(str::to_string);
        Ok(())
    })
}

/// Sets the name of the uploaded log before `.gz` is appended (default
/// `"crash.log"`); `file_name` may be NULL for that default. Copies the
/// string; never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_crash_set_file_name(
    crash: *mut fieldreport_crash,
    file_name: *const c_char,
) -> fieldreport_status {
    with_crash(crash, |c| {
        c.file_name = opt_text(file_name, "file_name")?.map(str::to_string);
        Ok(())
    })
}

/// As `fieldreport_feedback_set_field_string`, for a crash report.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_crash_set_field_string(
    crash: *mut fieldreport_crash,
    name: *const c_char,
    value: *const c_char,
) -> fieldreport_status {
    with_crash(crash, |c| {
        let name = field_name(name)?;
        let value = text(value, "value")?;
        c.extras.set_field(name, Value::from(value));
        Ok(())
    })
}

/// As `fieldreport_feedback_set_field_int`, for a crash report.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_crash_set_field_int(
    crash: *mut fieldreport_crash,
    name: *const c_char,
    value: i64,
) -> fieldreport_status {
    with_crash(crash, |c| {
        c.extras.set_field(field_name(name)?, Value::from(value));
        Ok(())
    })
}

/// As `fieldreport_feedback_set_field_json`, for a crash report.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_crash_set_field_json(
    crash: *mut fieldreport_crash,
    name: *const c_char,
    json: *const c_char,
) -> fieldreport_status {
    with_crash(crash, |c| {
        let name = field_name(name)?;
        let value = parse_json(json)?;
        c.extras.set_field(name, value);
        Ok(())
    })
}

/// As `fieldreport_feedback_attach_file`, for a crash report (a core dump,
/// a screenshot, another log).
#[no_mangle]
pub unsafe extern "C" fn fieldreport_crash_attach_file(
    crash: *mut fieldreport_crash,
    element_key: *const c_char,
    path: *const c_char,
    file_name: *const c_char,
    content_type: *const c_char,
) -> fieldreport_status {
    with_crash(crash, |c| {
        let a = file_attachment(element_key, path, file_name, content_type)?;
        c.extras.attachments.push(a);
        Ok(())
    })
}

/// As `fieldreport_feedback_attach_bytes`, for a crash report.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_crash_attach_bytes(
    crash: *mut fieldreport_crash,
    element_key: *const c_char,
    file_name: *const c_char,
    data: *const u8,
    len: usize,
    content_type: *const c_char,
) -> fieldreport_status {
    with_crash(crash, |c| {
        let a = bytes_attachment(element_key, file_name, data, len, content_type)?;
        c.extras.attachments.push(a);
        Ok(())
    })
}
