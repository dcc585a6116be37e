//! The constructors and setters of a `fieldreport_config` that delivers
//! to ABC User Feedback or Apptentive; Centercode's are in `mod.rs`.

use std::ffi::c_char;

use super::{fieldreport_config, wrong_destination};
use crate::config::{Config, Destination};
use crate::destinations::abc::config::ImageMode;
use crate::ffi::{
    fieldreport_status, guard, handle_mut, opt_text, out, path, text, Fail, FfiResult,
};
use crate::{AbcConfig, ApptentiveConfig};

/// Creates a configuration that delivers to an ABC User Feedback server.
///
/// - `outbox_dir`: the directory of the outbox, created (owner-only) at
///   open if missing. Give each app its own.
/// - `base_url`: the server's root, e.g. `"https://feedback.example.com"`
///   (its routes are under `/api`); `http://` only to loopback hosts unless
///   `fieldreport_config_set_allow_insecure_http` allows it.
/// - `project_id`, `channel_id`: the numeric ids, as decimal text, e.g.
///   `"1"`.
/// - `api_key`: the API key, sent in the `x-api-key` header only. It is
///   copied; it never appears in any message or JSON the library produces.
///
/// The summary goes to the channel's field `message` until
/// `fieldreport_config_set_abc_field` says otherwise; the other parts of a
/// report are sent only once mapped to a field with it.
///
/// These arguments are checked here: a malformed URL, an id that is not a
/// positive number, or an empty key returns
/// `FIELDREPORT_STATUS_INVALID_CONFIG` with a message naming the argument
/// (`"project_id: must be a number ..."`). On success `*out_config` is a new
/// handle that the caller owns and frees with `fieldreport_config_free`; on
/// failure it is NULL. The strings are copied. Never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_config_new_abc(
    outbox_dir: *const c_char,
    base_url: *const c_char,
    project_id: *const c_char,
    channel_id: *const c_char,
    api_key: *const c_char,
    out_config: *mut *mut fieldreport_config,
) -> fieldreport_status {
    guard(|| {
        let out_config = out(out_config, "out_config", std::ptr::null_mut())?;
        let dir = path(outbox_dir, "outbox_dir")?;
        let base = text(base_url, "base_url")?;
        let project = text(project_id, "project_id")?;
        let channel = text(channel_id, "channel_id")?;
        let key = text(api_key, "api_key")?;
        let abc = AbcConfig::checked(base, project, channel, key, &[])
            .map_err(|e| Fail::from_error(e.into(), key))?;
        *out_config = fieldreport_config::boxed(Config::abc(dir, abc));
        Ok(())
    })
}

/// Creates a configuration that delivers to Apptentive's records API.
///
/// - `outbox_dir`: the directory of the outbox, created (owner-only) at
///   open if missing. Give each app its own.
/// - `base_url`: the API root, e.g. `"https://api.apptentive.com"`.
/// - `token`: the OAuth token, sent in the `Authorization` header only. It
///   is copied; it never appears in any message or JSON the library
///   produces.
///
/// A record may be at most 32 MiB (see
/// `fieldreport_config_set_apptentive_max_record_bytes`); feedback and
/// crash reports get the types `"feedback"` and `"crash"` (see
/// `fieldreport_config_set_apptentive_types`).
///
/// A malformed URL or an empty token returns
/// `FIELDREPORT_STATUS_INVALID_CONFIG` with a message naming the argument.
/// On success `*out_config` is a new handle that the caller owns and frees
/// with `fieldreport_config_free`; on failure it is NULL. The strings are
/// copied. Never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_config_new_apptentive(
    outbox_dir: *const c_char,
    base_url: *const c_char,
    token: *const c_char,
    out_config: *mut *mut fieldreport_config,
) -> fieldreport_status {
    guard(|| {
        let out_config = out(out_config, "out_config", std::ptr::null_mut())?;
        let dir = path(outbox_dir, "outbox_dir")?;
        let base = text(base_url, "base_url")?;
        let token = text(token, "token")?;
        let apptentive = ApptentiveConfig::checked(base, token)
            .map_err(|e| Fail::from_error(e.into(), token))?;
        *out_config = fieldreport_config::boxed(Config::apptentive(dir, apptentive));
        Ok(())
    })
}

/// Runs `f` on the ABC settings of `config` (and its role pairs);
/// `function` names the setter in the refusal.
unsafe fn with_abc(
    config: *mut fieldreport_config,
    function: &str,
    f: impl FnOnce(&mut AbcConfig, &mut Vec<(String, String)>) -> FfiResult,
) -> fieldreport_status {
    guard(|| {
        let cfg = handle_mut(config, "config")?;
        match &mut cfg.config.destination {
            Destination::Abc(abc) => f(abc, &mut cfg.abc_map),
            _ => Err(wrong_destination(function, "ABC", &cfg.config)),
        }
    })
}

/// Runs `f` on the Apptentive settings of `config`; `function` names the
/// setter in the refusal.
unsafe fn with_apptentive(
    config: *mut fieldreport_config,
    function: &str,
    f: impl FnOnce(&mut ApptentiveConfig) -> FfiResult,
) -> fieldreport_status {
    guard(|| {
        let cfg = handle_mut(config, "config")?;
        match &mut cfg.config.destination {
            Destination::Apptentive(a) => f(a),
            _ => Err(wrong_destination(function, "Apptentive", &cfg.config)),
        }
    })
}

/// Sends one part of every report to the ABC channel's field `field`.
/// `role` is one of:
///
/// - `"summary"` (the field `"message"` until set),
/// - `"description"`, `"submitter"`,
/// - `"crash_log"`: a TEXT field; without it crash reports are refused at
///   submit,
/// - `"client_id"`: a KEYWORD field for each report's UUID; with it a
///   report whose answer was lost is looked up instead of posted twice,
/// - `"images"`: the IMAGES field; without it attachments are rejected,
/// - `"context.<block>.<key>"`: a context item, e.g.
///   `"context.device.os_name"`, `"context.app_release.version"`.
///
/// Setting a role again replaces its field; `field` NULL stops sending it
/// (the summary goes back to `"message"`). An unknown role, a key ABC
/// reserves (such as `"id"`), or a field that already receives another
/// role returns `FIELDREPORT_STATUS_INVALID_CONFIG` with a message naming
/// the role, and changes nothing. ABC only: elsewhere
/// `FIELDREPORT_STATUS_INVALID_CONFIG`. Copies the strings; never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_config_set_abc_field(
    config: *mut fieldreport_config,
    role: *const c_char,
    field: *const c_char,
) -> fieldreport_status {
    with_abc(config, "fieldreport_config_set_abc_field", |abc, pairs| {
        let role = text(role, "role")?;
        let field = opt_text(field, "field")?;
        let mut next: Vec<(String, String)> = pairs.clone();
        match (next.iter().position(|(r, _)| r == role), field) {
            (Some(i), Some(f)) => next[i].1 = f.to_string(),
            (Some(i), None) => {
                next.remove(i);
            }
            (None, Some(f)) => next.push((role.to_string(), f.to_string())),
            // Clearing a role never set: still refuse an unknown one, by
            // checking it alone with a placeholder field.
            (None, None) => {
                abc.with_map(&[(role, "message")])
                    .map_err(|e| Fail::from_error(e.into(), abc.api_key()))?;
            }
        }
        let borrowed: Vec<(&str, &str)> =
            next.iter().map(|(r, f)| (r.as_str(), f.as_str())).collect();
        let rebuilt = abc
            .with_map(&borrowed)
            .map_err(|e| Fail::from_error(e.into(), abc.api_key()))?;
        *abc = rebuilt;
        *pairs = next;
        Ok(())
    })
}

/// Sends the issue names `names` (an array of `count` strings, each
/// non-empty) with every feedback, as ABC's `issueNames`; `count` 0 (with
/// `names` NULL or not) sends none. An empty name returns
/// `FIELDREPORT_STATUS_INVALID_CONFIG` and changes nothing. ABC only:
/// elsewhere `FIELDREPORT_STATUS_INVALID_CONFIG`. Copies the strings; never
/// blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_config_set_abc_issue_names(
    config: *mut fieldreport_config,
    names: *const *const c_char,
    count: usize,
) -> fieldreport_status {
    with_abc(
        config,
        "fieldreport_config_set_abc_issue_names",
        |abc, _| {
            let ptrs: &[*const c_char] = if count == 0 {
                &[]
            } else if names.is_null() {
                return Err(Fail::new(
                    fieldreport_status::NullArgument,
                    format!("names is NULL but count is {count}"),
                ));
            } else {
                std::slice::from_raw_parts(names, count)
            };
            let mut list = Vec::with_capacity(ptrs.len());
            for (i, p) in ptrs.iter().enumerate() {
                list.push(text(*p, &format!("names[{i}]"))?);
            }
            let rebuilt = abc
                .clone()
                .with_issue_names(&list)
                .map_err(|e| Fail::from_error(e, abc.api_key()))?;
            *abc = rebuilt;
            Ok(())
        },
    )
}

/// Sends images by presigned upload when `presigned` is true: per image
/// `GET .../image-upload-url`, a `PUT` of the bytes to the URL it returns
/// (with no key), then the object URLs in a JSON create. The default,
/// false, sends them as file parts of one multipart create: the presigned
/// URL ABC signs carries an empty body's checksum, which S3-compatible
/// stores that enforce it refuse for real bytes, and it needs the channel's
/// S3 config. ABC only: elsewhere `FIELDREPORT_STATUS_INVALID_CONFIG`.
/// Never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_config_set_abc_presigned_images(
    config: *mut fieldreport_config,
    presigned: bool,
) -> fieldreport_status {
    with_abc(
        config,
        "fieldreport_config_set_abc_presigned_images",
        |abc, _| {
            abc.image_mode = if presigned {
                ImageMode::Presigned
            } else {
                ImageMode::Multipart
            };
            Ok(())
        },
    )
}

/// The largest Apptentive record sent, in bytes, at least 1024 (default
/// 32 MiB): a report whose record (files base64-encoded) would be larger is
/// refused at submit with `FIELDREPORT_STATUS_ATTACHMENT_TOO_LARGE`. A
/// smaller value returns `FIELDREPORT_STATUS_INVALID_CONFIG` and changes
/// nothing. Apptentive only: elsewhere `FIELDREPORT_STATUS_INVALID_CONFIG`.
/// Never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_config_set_apptentive_max_record_bytes(
    config: *mut fieldreport_config,
    max_bytes: u64,
) -> fieldreport_status {
    with_apptentive(
        config,
        "fieldreport_config_set_apptentive_max_record_bytes",
        |a| {
            *a = a
                .clone()
                .with_max_record_bytes(max_bytes)
                .map_err(|e| Fail::from_error(e, a.token()))?;
            Ok(())
        },
    )
}

/// The Apptentive `feedback.type` of feedback (default `"feedback"`) and
/// of crash reports (default `"crash"`). An empty one returns
/// `FIELDREPORT_STATUS_INVALID_CONFIG` and changes nothing. Apptentive
/// only: elsewhere `FIELDREPORT_STATUS_INVALID_CONFIG`. Copies the strings;
/// never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_config_set_apptentive_types(
    config: *mut fieldreport_config,
    feedback_type: *const c_char,
    crash_type: *const c_char,
) -> fieldreport_status {
    with_apptentive(config, "fieldreport_config_set_apptentive_types", |a| {
        let feedback = text(feedback_type, "feedback_type")?;
        let crash = text(crash_type, "crash_type")?;
        *a = a
            .clone()
            .with_types(feedback, crash)
            .map_err(|e| Fail::from_error(e, a.token()))?;
        Ok(())
    })
}
