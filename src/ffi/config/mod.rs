//! `fieldreport_config`: what to open, built one setter at a time.

use std::ffi::c_char;
use std::time::Duration;

use super::{
    fieldreport_status, guard, guard_value, handle_mut, opt_text, out, path, text, Fail, FfiResult,
};
use crate::config::{Config, Destination, Durability, Policy, ServerConfig};

mod other;
pub use other::*;

/// What `fieldreport_client_open` needs: the outbox directory, the
/// destination (Centercode, ABC User Feedback or Apptentive) with its
/// address and secret, and optional settings. Created by
/// `fieldreport_config_new` (Centercode), `fieldreport_config_new_abc` or
/// `fieldreport_config_new_apptentive`, freed by `fieldreport_config_free`;
/// the caller owns it. Centercode's setters only check their arguments'
/// form: the whole configuration is checked by `fieldreport_client_open`
/// (`FIELDREPORT_STATUS_INVALID_CONFIG`). ABC's and Apptentive's settings
/// are checked by their constructor and setters, which change nothing when
/// they refuse. A setter of one destination called on a config of another
/// returns `FIELDREPORT_STATUS_INVALID_CONFIG` and changes nothing. Use
/// from one thread at a time.
pub struct fieldreport_config {
    pub(crate) config: Config,
    /// ABC's `(role, field)` pairs set so far, in order: each
    /// `fieldreport_config_set_abc_field` rebuilds the checked map from
    /// them (an `AbcConfig` keeps only the result).
    abc_map: Vec<(String, String)>,
}

impl fieldreport_config {
    fn boxed(config: Config) -> *mut fieldreport_config {
        Box::into_raw(Box::new(fieldreport_config {
            config,
            abc_map: Vec::new(),
        }))
    }
}

/// A knob of the delivery policy, for `fieldreport_config_set_policy`. The
/// numbers are stable forever. Durations are in milliseconds. Each knob's
/// default is in parentheses.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum fieldreport_policy {
    /// Most undelivered reports kept; beyond it machine-made reports are
    /// evicted first (500).
    MaxReports = 1,
    /// Most bytes kept for undelivered reports (256 MiB).
    MaxBytes = 2,
    /// Undelivered reports older than this are evicted (30 days).
    MaxAgeMs = 3,
    /// Largest single attachment, at most 2 GiB - 1 (2 GiB - 1).
    MaxAttachmentBytes = 4,
    /// Most attachments on one report (32).
    MaxAttachments = 5,
    /// Longest summary in characters (1000).
    MaxSummaryChars = 6,
    /// Longest description in characters (100000).
    MaxDescriptionChars = 7,
    /// Most extra fields on one report (64).
    MaxFields = 8,
    /// Largest extra field value, as JSON bytes (65536).
    MaxFieldBytes = 9,
    /// First retry delay; doubles per attempt, with jitter (2 s).
    RetryBaseMs = 10,
    /// Cap on the retry delay (1 hour).
    RetryMaxMs = 11,
    /// Failed attempts before a report is dead (60).
    MaxAttempts = 12,
    /// Requests per second, shared by all threads and processes; 0 = no
    /// limit, for sandbox benchmarks only (10).
    MaxRequestsPerSec = 13,
    /// TCP connect timeout (15 s).
    ConnectTimeoutMs = 14,
    /// Timeout of a create request and of waiting for any answer (60 s).
    RequestTimeoutMs = 15,
    /// Slowest upload rate tolerated, bytes per second (16384).
    MinUploadBytesPerSec = 16,
    /// On a metered network, larger attachments wait (1 MiB).
    MeteredMaxUploadBytes = 17,
    /// While the API key is refused, one probe this often (1 hour).
    AuthProbeIntervalMs = 18,
    /// The background sender wakes at least this often (5 minutes).
    SenderIntervalMs = 19,
    /// Time budget of each background flush (2 minutes).
    SenderFlushBudgetMs = 20,
    /// How long delivered reports stay listed (7 days).
    KeepDeliveredMs = 21,
    /// How long a call waits for an outbox locked by another process (10 s).
    BusyTimeoutMs = 22,
    /// 0: submit survives power loss (fsync; the default). 1: submit
    /// survives a killed process, not necessarily power loss (faster).
    Durability = 23,
}

fn set_knob(p: &mut Policy, knob: i32, value: u64) -> FfiResult {
    let u32_of = |name: &str| {
        u32::try_from(value)
            .map_err(|_| Fail::config(format!("policy {name}: {value} is above 4294967295")))
    };
    let ms = Duration::from_millis(value);
    use fieldreport_policy as K;
    match knob {
        k if k == K::MaxReports as i32 => p.max_reports = u32_of("MAX_REPORTS")?,
        k if k == K::MaxBytes as i32 => p.max_bytes = value,
        k if k == K::MaxAgeMs as i32 => p.max_age = ms,
        k if k == K::MaxAttachmentBytes as i32 => p.max_attachment_bytes = value,
        k if k == K::MaxAttachments as i32 => p.max_attachments = u32_of("MAX_ATTACHMENTS")?,
        k if k == K::MaxSummaryChars as i32 => p.max_summary_chars = u32_of("MAX_SUMMARY_CHARS")?,
        k if k == K::MaxDescriptionChars as i32 => {
            p.max_description_chars = u32_of("MAX_DESCRIPTION_CHARS")?
        }
        k if k == K::MaxFields as i32 => p.max_fields = u32_of("MAX_FIELDS")?,
        k if k == K::MaxFieldBytes as i32 => p.max_field_bytes = u32_of("MAX_FIELD_BYTES")?,
        k if k == K::RetryBaseMs as i32 => p.retry_base = ms,
        k if k == K::RetryMaxMs as i32 => p.retry_max = ms,
        k if k == K::MaxAttempts as i32 => p.max_attempts = u32_of("MAX_ATTEMPTS")?,
        k if k == K::MaxRequestsPerSec as i32 => {
            p.max_requests_per_sec = u32_of("MAX_REQUESTS_PER_SEC")?
        }
        k if k == K::ConnectTimeoutMs as i32 => p.connect_timeout = ms,
        k if k == K::RequestTimeoutMs as i32 => p.request_timeout = ms,
        k if k == K::MinUploadBytesPerSec as i32 => p.min_upload_bytes_per_sec = value,
        k if k == K::MeteredMaxUploadBytes as i32 => p.metered_max_upload_bytes = value,
        k if k == K::AuthProbeIntervalMs as i32 => p.auth_probe_interval = ms,
        k if k == K::SenderIntervalMs as i32 => p.sender_interval = ms,
        k if k == K::SenderFlushBudgetMs as i32 => p.sender_flush_budget = ms,
        k if k == K::KeepDeliveredMs as i32 => p.keep_delivered = ms,
        k if k == K::BusyTimeoutMs as i32 => p.busy_timeout = ms,
        k if k == K::Durability as i32 => {
            p.durability = match value {
                0 => Durability::Full,
                1 => Durability::Normal,
                _ => {
                    return Err(Fail::config(format!(
                        "policy DURABILITY: {value} is neither 0 (full) nor 1 (normal)"
                    )))
                }
            }
        }
        _ => return Err(Fail::config(format!("unknown policy knob {knob}"))),
    }
    Ok(())
}

/// Runs `f` on the config behind `config`.
unsafe fn with_config(
    config: *mut fieldreport_config,
    f: impl FnOnce(&mut Config) -> FfiResult,
) -> fieldreport_status {
    guard(|| f(&mut handle_mut(config, "config")?.config))
}

/// Runs `f` on the config behind `config` if it delivers to Centercode;
/// `function` names the setter in the refusal.
unsafe fn with_centercode(
    config: *mut fieldreport_config,
    function: &str,
    f: impl FnOnce(&mut Config) -> FfiResult,
) -> fieldreport_status {
    with_config(config, |c| {
        if !matches!(c.destination, Destination::Centercode) {
            return Err(wrong_destination(function, "Centercode", c));
        }
        f(c)
    })
}

/// The refusal of a setter made for another destination than `c`'s.
fn wrong_destination(function: &str, applies_to: &str, c: &Config) -> Fail {
    Fail::config(format!(
        "{function} applies only to a config for {applies_to}; this one delivers to {}",
        c.destination.kind()
    ))
}

/// Creates a configuration that delivers to Centercode, with the
/// essentials; the server address is
/// added with `fieldreport_config_set_company` (hosted Centercode) or
/// `fieldreport_config_set_base_url` (anything else).
///
/// - `outbox_dir`: the directory of the outbox, created (owner-only) at
///   open if missing. Give each app its own.
/// - `project_key`: the Centercode project key, e.g. `"WidgetPro"`.
/// - `feedback_type_key`: the external feedback source's key, e.g. `"Mobile"`.
/// - `api_key`: the API key of that feedback source. It is copied; it never
///   appears in any message or JSON the library produces.
///
/// On success `*out_config` is a new handle that the caller owns and frees
/// with `fieldreport_config_free`; on failure it is NULL. The strings are
/// copied. Never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_config_new(
    outbox_dir: *const c_char,
    project_key: *const c_char,
    feedback_type_key: *const c_char,
    api_key: *const c_char,
    out_config: *mut *mut fieldreport_config,
) -> fieldreport_status {
    guard(|| {
        let out_config = out(out_config, "out_config", std::ptr::null_mut())?;
        let dir = path(outbox_dir, "outbox_dir")?;
        let project = text(project_key, "project_key")?;
        let feedback_type = text(feedback_type_key, "feedback_type_key")?;
        let key = text(api_key, "api_key")?;
        let server = ServerConfig {
            base_url: None,
            company: None,
            project_key: project.to_string(),
            feedback_type_key: feedback_type.to_string(),
            api_key: crate::ApiKey::new(key),
            allow_insecure_http: false,
            client_id_field: None,
            lookup_key: None,
        };
        *out_config = fieldreport_config::boxed(Config::new(dir, server));
        Ok(())
    })
}

/// Frees a configuration. `config` may be NULL. A client opened from it is
/// not affected (it keeps its own copy). Never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_config_free(config: *mut fieldreport_config) {
    guard_value((), || {
        if !config.is_null() {
            drop(Box::from_raw(config));
        }
    })
}

/// Delivers to the hosted Centercode API of `company` (its sub-domain, e.g.
/// `"acme"` for `https://acme.centercode.com/api/v1`). A base URL set with
/// `fieldreport_config_set_base_url` takes precedence. Centercode only (an
/// ABC or Apptentive config has its base URL from its constructor):
/// elsewhere `FIELDREPORT_STATUS_INVALID_CONFIG`. Copies the string; never
/// blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_config_set_company(
    config: *mut fieldreport_config,
    company: *const c_char,
) -> fieldreport_status {
    with_centercode(config, "fieldreport_config_set_company", |c| {
        c.server.company = Some(text(company, "company")?.to_string());
        Ok(())
    })
}

/// Delivers to an explicit API base URL, e.g. a sandbox
/// `"http://127.0.0.1:8480/api/v1"` or a proxy. `https://` is required
/// except to loopback hosts, unless `fieldreport_config_set_allow_insecure_http`
/// says otherwise. Centercode only (an ABC or Apptentive config has its
/// base URL from its constructor): elsewhere
/// `FIELDREPORT_STATUS_INVALID_CONFIG`. Copies the string; never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_config_set_base_url(
    config: *mut fieldreport_config,
    base_url: *const c_char,
) -> fieldreport_status {
    with_centercode(config, "fieldreport_config_set_base_url", |c| {
        c.server.base_url = Some(text(base_url, "base_url")?.to_string());
        Ok(())
    })
}

/// Allows `http://` to a host other than loopback (off by default: the API
/// key or token would travel in clear text). Applies to every destination.
/// Never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_config_set_allow_insecure_http(
    config: *mut fieldreport_config,
    allow: bool,
) -> fieldreport_status {
    with_config(config, |c| {
        c.server.allow_insecure_http = allow;
        Ok(())
    })
}

/// Sends each report's client id (a UUID) in the feedback field
/// `client_id_field`, and before re-sending a report whose answer was lost,
/// looks it up with the Project Feedback Lookup `lookup_key`: this closes
/// the one window in which a report could be created twice. Both or
/// neither: both NULL switches it off. Centercode only (ABC's counterpart
/// is the `client_id` role of `fieldreport_config_set_abc_field`):
/// elsewhere `FIELDREPORT_STATUS_INVALID_CONFIG`. Copies the strings; never
/// blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_config_set_client_id_lookup(
    config: *mut fieldreport_config,
    client_id_field: *const c_char,
    lookup_key: *const c_char,
) -> fieldreport_status {
    with_centercode(config, "fieldreport_config_set_client_id_lookup", |c| {
        let field = opt_text(client_id_field, "client_id_field")?;
        let lookup = opt_text(lookup_key, "lookup_key")?;
        c.server.client_id_field = field.map(str::to_string);
        c.server.lookup_key = lookup.map(str::to_string);
        Ok(())
    })
}

/// Describes the app, recorded with every report: `name` (e.g.
/// `"WidgetPro Desktop"`), `version` (`"2.3.1"`), `build` (`"4512"`). Each
/// may be NULL (unknown). Applies to every destination. Copies the strings;
/// never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_config_set_app(
    config: *mut fieldreport_config,
    name: *const c_char,
    version: *const c_char,
    build: *const c_char,
) -> fieldreport_status {
    with_config(config, |c| {
        let name = opt_text(name, "name")?;
        let version = opt_text(version, "version")?;
        let build = opt_text(build, "build")?;
        c.app.name = name.map(str::to_string);
        c.app.version = version.map(str::to_string);
        c.app.build = build.map(str::to_string);
        Ok(())
    })
}

/// Sets the user's locale (e.g. `"en-US"`) and the device model (e.g.
/// `"ThinkPad X1"`), recorded with every report. Each may be NULL: the
/// locale is then read from the environment, the model left out. Applies to
/// every destination. Copies the strings; never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_config_set_device(
    config: *mut fieldreport_config,
    locale: *const c_char,
    device_model: *const c_char,
) -> fieldreport_status {
    with_config(config, |c| {
        let locale = opt_text(locale, "locale")?;
        let model = opt_text(device_model, "device_model")?;
        c.app.locale = locale.map(str::to_string);
        c.app.device_model = model.map(str::to_string);
        Ok(())
    })
}

/// Sends a context item with every report, in the Centercode field
/// `field_name`. Items: `library_version`, `os`, `arch`, `app_name`,
/// `app_version`, `app_build`, `locale`, `device_model`, `seq`,
/// `report_kind` (an unknown one is refused at open). None is sent by
/// default, since a field the feedback source does not define may be
/// refused. `field_name` NULL stops sending `item`. Centercode only (ABC
/// maps context with `fieldreport_config_set_abc_field`; Apptentive sends
/// it in its own blocks): elsewhere `FIELDREPORT_STATUS_INVALID_CONFIG`.
/// Copies the strings; never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_config_set_context_field(
    config: *mut fieldreport_config,
    item: *const c_char,
    field_name: *const c_char,
) -> fieldreport_status {
    with_centercode(config, "fieldreport_config_set_context_field", |c| {
        let item = text(item, "item")?;
        match opt_text(field_name, "field_name")? {
            Some(field) => {
                c.context_fields.insert(item.to_string(), field.to_string());
            }
            None => {
                c.context_fields.remove(item);
            }
        }
        Ok(())
    })
}

/// The file element that crash logs are uploaded to (default `"CrashLog"`).
/// Centercode only (ABC takes the crash log in the `crash_log` role's
/// field): elsewhere `FIELDREPORT_STATUS_INVALID_CONFIG`. Copies the
/// string; never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_config_set_crash_element_key(
    config: *mut fieldreport_config,
    element_key: *const c_char,
) -> fieldreport_status {
    with_centercode(config, "fieldreport_config_set_crash_element_key", |c| {
        c.crash_element_key = text(element_key, "element_key")?.to_string();
        Ok(())
    })
}

/// Whether sending is allowed before the user has made a choice (default
/// true). Once `fieldreport_client_set_consent` has been called, the stored
/// choice wins. Apps that need opt-in pass false. Applies to every
/// destination. Never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_config_set_consent_default(
    config: *mut fieldreport_config,
    granted: bool,
) -> fieldreport_status {
    with_config(config, |c| {
        c.consent_default = granted;
        Ok(())
    })
}

/// Sets one policy knob: `knob` is a `FIELDREPORT_POLICY_*` constant,
/// `value` a count, a byte size or milliseconds as the constant says. An
/// unknown knob or a value out of the knob's range returns
/// `FIELDREPORT_STATUS_INVALID_CONFIG` at once; combinations (such as a
/// retry base above the retry cap) are checked at open. Applies to every
/// destination. Never blocks.
#[no_mangle]
pub unsafe extern "C" fn fieldreport_config_set_policy(
    config: *mut fieldreport_config,
    knob: i32,
    value: u64,
) -> fieldreport_status {
    with_config(config, |c| set_knob(&mut c.policy, knob, value))
}

#[cfg(test)]
mod tests;
