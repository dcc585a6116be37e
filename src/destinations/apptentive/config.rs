//! An Apptentive destination's settings, checked when made.

use crate::destinations::{check_base_url, check_secret, DestinationConfigError};
use std::fmt;
use std::time::Duration;

/// The default per-record size limit: 32 MiB of JSON (about 24 MiB of files).
pub(crate) const DEFAULT_MAX_RECORD_BYTES: u64 = 32 * 1024 * 1024;

/// An Apptentive records destination: the API root and the OAuth token
/// (sent in the `Authorization` header only). Checked when made; its Debug
/// output never shows the token.
#[derive(Clone, PartialEq, Eq)]
pub struct ApptentiveConfig {
    /// The API root, e.g. `https://api.apptentive.com`.
    pub(crate) base_url: String,
    token: String,
    /// Largest record body sent; a larger report is refused at submit.
    pub(crate) max_record_bytes: u64,
    /// `feedback.type` of feedback; default `feedback`.
    pub(crate) feedback_type: String,
    /// `feedback.type` of crash reports; default `crash`.
    pub(crate) crash_type: String,
    /// Timeout of one exchange.
    pub(crate) timeout: Duration,
}

impl fmt::Debug for ApptentiveConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApptentiveConfig")
            .field("base_url", &self.base_url)
            .field("token", &"<redacted>")
            .field("max_record_bytes", &self.max_record_bytes)
            .field("feedback_type", &self.feedback_type)
            .field("crash_type", &self.crash_type)
            .finish_non_exhaustive()
    }
}

impl ApptentiveConfig {
    /// Checks and builds a destination with the default record limit
    /// (32 MiB) and types (`feedback`, `crash`).
    pub fn new(base_url: &str, token: &str) -> Result<ApptentiveConfig, crate::Error> {
        Self::checked(base_url, token).map_err(Into::into)
    }

    pub(crate) fn checked(
        base_url: &str,
        token: &str,
    ) -> Result<ApptentiveConfig, DestinationConfigError> {
        let base_url = check_base_url("base_url", base_url)?;
        check_secret("token", token)?;
        Ok(ApptentiveConfig {
            base_url,
            token: token.to_string(),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            feedback_type: "feedback".to_string(),
            crash_type: "crash".to_string(),
            timeout: Duration::from_secs(120),
        })
    }

    /// Sets the per-record size limit (at least 1 KiB): a report whose
    /// record (files base64-encoded) would be larger is refused at submit.
    pub fn with_max_record_bytes(mut self, n: u64) -> Result<ApptentiveConfig, crate::Error> {
        if n < 1024 {
            return Err(DestinationConfigError::new(
                "max_record_bytes",
                format!("must be at least 1024, got {n}"),
            )
            .into());
        }
        self.max_record_bytes = n;
        Ok(self)
    }

    /// Sets the `feedback.type` of feedback and of crash reports.
    pub fn with_types(
        mut self,
        feedback: &str,
        crash: &str,
    ) -> Result<ApptentiveConfig, crate::Error> {
        for (setting, v) in [("feedback_type", feedback), ("crash_type", crash)] {
            if v.trim().is_empty() {
                return Err(DestinationConfigError::new(setting, "is empty").into());
            }
        }
        self.feedback_type = feedback.to_string();
        self.crash_type = crash.to_string();
        Ok(self)
    }

    /// The token; for the `Authorization` header only.
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// The same destination with the app's newer token (`set_api_key`).
    pub(crate) fn with_key(&self, token: &str) -> ApptentiveConfig {
        ApptentiveConfig {
            token: token.to_string(),
            ..self.clone()
        }
    }

    /// The `Authorization` header's value; for that header only.
    pub(crate) fn authorization(&self) -> String {
        format!("OAuth {}", self.token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_get_specific_errors_and_the_token_stays_hidden() {
        let c = ApptentiveConfig::new("https://api.apptentive.com/", "TOKEN123").unwrap();
        assert_eq!(c.base_url, "https://api.apptentive.com");
        assert_eq!(c.authorization(), "OAuth TOKEN123");
        assert!(!format!("{c:?}").contains("TOKEN123"));
        assert!(ApptentiveConfig::new("api.apptentive.com", "t")
            .unwrap_err()
            .to_string()
            .contains(": base_url"));
        assert_eq!(
            ApptentiveConfig::new("https://h", "")
                .unwrap_err()
                .to_string(),
            "invalid configuration: token: is empty"
        );
        let e = c.clone().with_max_record_bytes(10).unwrap_err().to_string();
        assert!(e.contains("max_record_bytes: must be at least 1024"), "{e}");
        assert!(c
            .with_types("bug", "")
            .unwrap_err()
            .to_string()
            .contains(": crash_type"));
    }
}
