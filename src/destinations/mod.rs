//! The servers fieldreport delivers to, one folder each: how a stored
//! report becomes that server's requests, and what its answers mean, plus
//! (feature `sandbox`) a local stand-in for it.
//!
//! The translators (`abc`, `apptentive`) are sans-IO: they read a neutral
//! [`Outgoing`] report and build [`body::Outbound`] requests, and they read
//! an answer's status, headers and body into a [`Verdict`]. Sending, storing
//! and retrying are the delivery engine's.

pub(crate) mod abc;
pub(crate) mod apptentive;
pub(crate) mod body;
pub(crate) mod centercode;
pub(crate) mod plug;

#[cfg(all(test, feature = "sandbox", feature = "builtin-http"))]
mod e2e_tests;

use crate::report::ReportKind;
use serde_json::{Map, Value};
use std::fmt;
use std::path::PathBuf;
use std::time::SystemTime;

/// A report as every destination reads it: stored neutral, translated when
/// sent. Borrowed from the outbox's row for the time of one translation.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing<'a> {
    /// The report's UUID, made at submit; the key for finding it again.
    pub client_id: &'a str,
    /// Feedback or a crash report.
    pub kind: ReportKind,
    /// The one-line summary (a crash's title).
    pub summary: &'a str,
    /// The longer text, if any.
    pub description: Option<&'a str>,
    /// Who sent it (an e-mail address or a name), if known.
    pub submitter: Option<&'a str>,
    /// Extra fields, as the app gave them: `(field key, JSON value)`.
    pub fields: &'a [(String, Value)],
    /// Context blocks, each a JSON object: `device`, `app_version`,
    /// `client`, `user` (the shapes of Apptentive's record blocks).
    pub context: &'a Map<String, Value>,
    /// The files, in the order given.
    pub attachments: &'a [OutgoingAttachment],
    /// When the report was submitted.
    pub submitted_at: SystemTime,
}

/// One file of an [`Outgoing`] report, as the outbox keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutgoingAttachment {
    /// The attachment's key (a Centercode file element, an Apptentive file
    /// reference).
    pub key: String,
    /// The file's name as the app gave it.
    pub file_name: String,
    /// Its media type, e.g. `image/png`.
    pub content_type: String,
    /// The outbox's copy.
    pub path: PathBuf,
    /// Bytes in that copy.
    pub size: u64,
    /// Whether this is the report's crash log, stored gzip-compressed.
    pub crash_log: bool,
}

/// What an answer (or its absence) means for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Done: the server's reference (ABC's numeric id, Apptentive's record id).
    Delivered {
        /// The reference, as text.
        reference: String,
    },
    /// Try again later.
    Retry {
        /// Why, for the log.
        reason: String,
        /// Whether the server may have acted (the answer was lost or
        /// unreadable): look the report up before sending it again.
        maybe_acted: bool,
    },
    /// The key was refused: stop delivering to this destination until the
    /// app gives a new one.
    Pause {
        /// Why, for the app.
        reason: String,
    },
    /// The server will never take this request: give the report up.
    Dead {
        /// The status answered.
        status: u16,
        /// Every message the server gave, in its order.
        messages: Vec<String>,
    },
}

impl Verdict {
    /// No answer came. `sent` says whether the request may have reached the
    /// server (`TransportError::Failed`) or certainly did not (`NotSent`).
    pub(crate) fn no_answer(sent: bool, why: &str) -> Verdict {
        Verdict::Retry {
            reason: format!("no answer: {why}"),
            maybe_acted: sent,
        }
    }
}

/// A destination's setting that cannot be used; says which and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DestinationConfigError {
    /// The setting, e.g. `project_id`.
    pub setting: String,
    /// What is wrong with it (never the secret itself).
    pub message: String,
}

impl DestinationConfigError {
    pub(crate) fn new(setting: &str, message: impl Into<String>) -> Self {
        DestinationConfigError {
            setting: setting.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for DestinationConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting, self.message)
    }
}

impl std::error::Error for DestinationConfigError {}

impl From<DestinationConfigError> for crate::Error {
    fn from(e: DestinationConfigError) -> Self {
        crate::Error::InvalidConfig {
            reason: e.to_string(),
        }
    }
}

/// Why a report cannot be turned into a destination's requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TranslateError {
    /// A crash report for an ABC destination without a crash-log field.
    NoCrashLogField,
    /// The request would exceed the destination's size limit.
    TooLarge {
        /// Its size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// Two parts of the report write the same field.
    FieldClash(String),
    /// An extra field's key is not allowed (empty, or reserved).
    BadField(String),
}

impl fmt::Display for TranslateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TranslateError::NoCrashLogField => f.write_str(
                "this ABC destination has no crash-log field (map the role crash_log to a TEXT field): it cannot take crash reports",
            ),
            TranslateError::TooLarge { size, limit } => write!(
                f,
                "the request would be {size} bytes, over this destination's limit of {limit} bytes"
            ),
            TranslateError::FieldClash(k) => write!(f, "the field {k:?} is set twice"),
            TranslateError::BadField(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for TranslateError {}

/// Checks a destination's base URL: `http` or `https`, a host, no
/// credentials, query or fragment. Returns it without a trailing `/`.
pub(crate) fn check_base_url(setting: &str, url: &str) -> Result<String, DestinationConfigError> {
    let url = url.trim();
    crate::config::url_shape(url).map_err(|why| DestinationConfigError::new(setting, why))?;
    Ok(url.trim_end_matches('/').to_string())
}

/// Checks a secret sent in a header: not empty, no spaces or control
/// characters. The message never shows the secret.
pub(crate) fn check_secret(setting: &str, secret: &str) -> Result<(), DestinationConfigError> {
    if secret.is_empty() {
        return Err(DestinationConfigError::new(setting, "is empty"));
    }
    if secret
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || !c.is_ascii())
    {
        return Err(DestinationConfigError::new(
            setting,
            "must be printable ASCII without spaces",
        ));
    }
    Ok(())
}

/// The messages of an error body: `message` (a string or an array of
/// strings), `response`, `errors` (a string or array), `error`; or the body
/// as text (its first 2000 characters) when it has none of these.
pub(crate) fn error_messages(body: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(body) {
        for key in ["message", "response", "errors"] {
            match o.get(key) {
                Some(Value::String(s)) => out.push(s.clone()),
                Some(Value::Array(a)) => out.extend(a.iter().map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })),
                _ => {}
            }
        }
        if out.is_empty() {
            if let Some(Value::String(s)) = o.get("error") {
                out.push(s.clone());
            }
        }
    }
    if out.is_empty() {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if !text.is_empty() {
            out.push(text.chars().take(2000).collect());
        }
    }
    out
}

/// The verdict for statuses every destination reads alike: 408, 429 and
/// 5xx retry, other 3xx/4xx are dead with the server's messages.
/// `pause` is the status that means a refused key.
pub(crate) fn common_verdict(status: u16, body: &[u8], pause: &[u16]) -> Verdict {
    let messages = error_messages(body);
    if pause.contains(&status) {
        let detail = messages.first().cloned().unwrap_or_default();
        return Verdict::Pause {
            reason: format!("the server refused the key (HTTP {status}): {detail}"),
        };
    }
    if status == 408 || status == 429 || status >= 500 {
        return Verdict::Retry {
            reason: format!("HTTP {status}: {}", messages.join("; ")),
            maybe_acted: false,
        };
    }
    Verdict::Dead { status, messages }
}

/// `%m/%d/%Y %I:%M%p%z` in UTC, e.g. `03/23/2012 08:26PM+0000`.
pub(crate) fn us_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days to civil date (proleptic Gregorian), after H. Hinnant's algorithm.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (hour, minute) = (rem / 3600, rem / 60 % 60);
    let (h12, ampm) = match hour {
        0 => (12, "AM"),
        1..=11 => (hour, "AM"),
        12 => (12, "PM"),
        _ => (hour - 12, "PM"),
    };
    format!("{month:02}/{day:02}/{year:04} {h12:02}:{minute:02}{ampm}+0000")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn us_date_matches_the_documented_format() {
        // 2012-03-23 20:26:29 UTC, the reference's example record.
        let t = UNIX_EPOCH + Duration::from_secs(1_332_534_389);
        assert_eq!(us_date(t), "03/23/2012 08:26PM+0000");
        assert_eq!(us_date(UNIX_EPOCH), "01/01/1970 12:00AM+0000");
        // Noon and a leap day.
        let t = UNIX_EPOCH + Duration::from_secs(951_825_600);
        assert_eq!(us_date(t), "02/29/2000 12:00PM+0000");
    }

    #[test]
    fn error_messages_reads_every_shape() {
        assert_eq!(
            error_messages(br#"{"message":["a","b"],"error":"Bad Request","statusCode":400}"#),
            vec!["a", "b"]
        );
        assert_eq!(
            error_messages(br#"{"message":"one","statusCode":400}"#),
            vec!["one"]
        );
        assert_eq!(
            error_messages(br#"{"response":"Request body is too large","path":"/x"}"#),
            vec!["Request body is too large"]
        );
        assert_eq!(
            error_messages(br#"{"errors":["feedback can't be blank"]}"#),
            vec!["feedback can't be blank"]
        );
        assert_eq!(error_messages(b"plain text"), vec!["plain text"]);
        assert!(error_messages(b"").is_empty());
    }

    #[test]
    fn base_url_and_secret_checks_say_what_is_wrong() {
        assert_eq!(
            check_base_url("base_url", "https://h.example/").unwrap(),
            "https://h.example"
        );
        for (bad, why) in [
            ("ftp://h", "http"),
            ("https://", "no host"),
            ("https://u:p@h", "credentials"),
            ("https://h/?a=1", "query"),
            ("https://h /x", "spaces"),
        ] {
            let e = check_base_url("base_url", bad).unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
        assert!(check_secret("api_key", "")
            .unwrap_err()
            .to_string()
            .contains("empty"));
        let e = check_secret("api_key", "se cret").unwrap_err().to_string();
        assert!(!e.contains("se cret") && e.contains("spaces"), "{e}");
        assert!(check_secret("api_key", "ok-KEY_1").is_ok());
    }
}
