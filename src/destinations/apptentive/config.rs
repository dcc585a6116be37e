//! An Apptentive destination's settings, checked when made.

use crate::destinations::{check_base_url, check_secret, DestinationConfigError};
use std::fmt;
use std::time::Duration;

/// The default per-record size limit: 32 MiB of JSON (about 24 MiB of files).
pub(crate) const DEFAULT_MAX_RECORD_BYTES: u64 = 32 * 1024 * 1024;

/// A checked Apptentive destination. Its Debug output never shows the token.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ApptentiveConfig {
    /// The API root, e.g. `https://api.apptentive.com`.
    pub base_url: String,
    token: String,
    /// Largest record body sent; a larger report is refused at submit.
    pub max_record_bytes: u64,
    /// `feedback.type` of feedback; default `feedback`.
    pub feedback_type: String,
    /// `feedback.type` of crash reports; default `crash`.
    pub crash_type: String,
    /// Timeout of one exchange.
    pub timeout: Duration,
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
    /// Checks and builds a destination with the default limit and types.
    pub(crate) fn new(
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

    /// Sets the per-record size limit (at least 1 KiB).
    pub(crate) fn with_max_record_bytes(
        mut self,
        n: u64,
    ) -> Result<ApptentiveConfig, DestinationConfigError> {
        if n < 1024 {
            return Err(DestinationConfigError::new(
                "max_record_bytes",
                format!("must be at least 1024, got {n}"),
            ));
        }
        self.max_record_bytes = n;
        Ok(self)
    }

    /// Sets the `feedback.type` of feedback and of crash reports.
    pub(crate) fn with_types(
        mut self,
        feedback: &str,
        crash: &str,
    ) -> Result<ApptentiveConfig, DestinationConfigError> {
        for (setting, v) in [("feedback_type", feedback), ("crash_type", crash)] {
            if v.trim().is_empty() {
                return Err(DestinationConfigError::new(setting, "is empty"));
            }
        }
        self.feedback_type = feedback.to_string();
        self.crash_type = crash.to_string();
        Ok(self)
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
            .starts_with("base_url"));
        assert_eq!(
            ApptentiveConfig::new("https://h", "")
                .unwrap_err()
                .to_string(),
            "token: is empty"
        );
        let e = c.clone().with_max_record_bytes(10).unwrap_err().to_string();
        assert!(
            e.starts_with("max_record_bytes: must be at least 1024"),
            "{e}"
        );
        assert!(c
            .with_types("bug", "")
            .unwrap_err()
            .to_string()
            .starts_with("crash_type"));
    }
}
