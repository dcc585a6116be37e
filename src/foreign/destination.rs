//! The foreign `Config`'s destinations other than Centercode: the
//! `AbcDestination` and `ApptentiveDestination` records of `uniffi.udl`,
//! turned into the core's checked [`Destination`]. Kept apart from
//! `foreign/mod.rs` so that each destination's rules read in one place.

use std::collections::HashMap;

use super::{Config, FieldReportError};
use crate::config::{AbcConfig, ApptentiveConfig, Destination};
use crate::destinations::DestinationConfigError;

/// See `AbcDestination` in uniffi.udl.
#[derive(Debug, Clone)]
pub struct AbcDestination {
    pub base_url: String,
    pub project_id: String,
    pub channel_id: String,
    pub map: HashMap<String, String>,
    pub issue_names: Vec<String>,
    pub presigned_images: bool,
}

/// See `ApptentiveDestination` in uniffi.udl.
#[derive(Debug, Clone)]
pub struct ApptentiveDestination {
    pub base_url: String,
    pub max_record_bytes: Option<u64>,
    pub feedback_type: Option<String>,
    pub crash_type: Option<String>,
}

fn invalid_config(reason: String) -> FieldReportError {
    FieldReportError::InvalidConfig { reason }
}

/// A destination's complaint, named as the foreign `Config` spells the
/// setting: `abc.project_id`, but `api_key` for the secret, which lives in
/// `Config.api_key` whatever the destination calls it.
fn named(record: &str, e: DestinationConfigError) -> FieldReportError {
    let setting = match e.setting.as_str() {
        "api_key" | "token" => "api_key".to_string(),
        other => format!("{record}.{other}"),
    };
    invalid_config(format!("{setting}: {}", e.message))
}

/// The same for a check that reports a core error (its reason starts with
/// the setting's name).
fn named_core(record: &str, e: crate::Error) -> FieldReportError {
    match e {
        crate::Error::InvalidConfig { reason } => invalid_config(format!("{record}.{reason}")),
        other => other.into(),
    }
}

impl AbcDestination {
    fn into_core(self, api_key: &str) -> Result<AbcConfig, FieldReportError> {
        // Sorted by role: a record has no order, and the same config must
        // always get the same error.
        let mut pairs: Vec<(&str, &str)> = self
            .map
            .iter()
            .map(|(role, field)| (role.as_str(), field.as_str()))
            .collect();
        pairs.sort_unstable();
        let config = AbcConfig::checked(
            &self.base_url,
            &self.project_id,
            &self.channel_id,
            api_key,
            &pairs,
        )
        .map_err(|e| named("abc", e))?;
        let config = if self.presigned_images {
            config.with_presigned_images()
        } else {
            config
        };
        if self.issue_names.is_empty() {
            return Ok(config);
        }
        let names: Vec<&str> = self.issue_names.iter().map(String::as_str).collect();
        config
            .with_issue_names(&names)
            .map_err(|e| named_core("abc", e))
    }
}

impl ApptentiveDestination {
    fn into_core(self, token: &str) -> Result<ApptentiveConfig, FieldReportError> {
        let mut config =
            ApptentiveConfig::checked(&self.base_url, token).map_err(|e| named("apptentive", e))?;
        if let Some(n) = self.max_record_bytes {
            config = config
                .with_max_record_bytes(n)
                .map_err(|e| named_core("apptentive", e))?;
        }
        if self.feedback_type.is_some() || self.crash_type.is_some() {
            // One left null keeps its default.
            let feedback = self
                .feedback_type
                .unwrap_or_else(|| config.feedback_type.clone());
            let crash = self.crash_type.unwrap_or_else(|| config.crash_type.clone());
            config = config
                .with_types(&feedback, &crash)
                .map_err(|e| named_core("apptentive", e))?;
        }
        Ok(config)
    }
}

/// The destination a foreign config names: Centercode when neither `abc`
/// nor `apptentive` is set. Refuses both at once, and a Centercode-only
/// setting given with another destination, which would otherwise be
/// silently ignored.
pub(super) fn chosen(config: &Config) -> Result<Destination, FieldReportError> {
    let (name, destination) = match (&config.abc, &config.apptentive) {
        (None, None) => return Ok(Destination::Centercode),
        (Some(_), Some(_)) => {
            return Err(invalid_config(
                "abc and apptentive are both set: a client delivers to one destination, \
                 set at most one of them"
                    .into(),
            ))
        }
        (Some(abc), None) => (
            "abc",
            Destination::Abc(abc.clone().into_core(&config.api_key)?),
        ),
        (None, Some(a)) => (
            "apptentive",
            Destination::Apptentive(a.clone().into_core(&config.api_key)?),
        ),
    };
    let centercode_only = [
        ("project_key", !config.project_key.is_empty()),
        ("feedback_type_key", !config.feedback_type_key.is_empty()),
        ("base_url", config.base_url.is_some()),
        ("company", config.company.is_some()),
        ("client_id_field", config.client_id_field.is_some()),
        ("lookup_key", config.lookup_key.is_some()),
        ("crash_element_key", config.crash_element_key.is_some()),
    ];
    if let Some((setting, _)) = centercode_only.iter().find(|(_, set)| *set) {
        let hint = if *setting == "base_url" {
            format!("; give the server in {name}.base_url")
        } else {
            String::new()
        };
        return Err(invalid_config(format!(
            "{setting} is a Centercode setting and must be left unset when {name} is set{hint}"
        )));
    }
    Ok(destination)
}

#[cfg(test)]
mod tests {
    use super::super::tests::config;
    use super::super::FieldReportClient;
    use super::*;
    use crate::destinations::abc::config::ImageMode;

    fn abc() -> AbcDestination {
        AbcDestination {
            base_url: "http://127.0.0.1:9".into(),
            project_id: "1".into(),
            channel_id: "2".into(),
            map: HashMap::from([
                ("images".to_string(), "images".to_string()),
                ("crash_log".to_string(), "crash_log".to_string()),
            ]),
            issue_names: vec!["mobile".into()],
            presigned_images: true,
        }
    }

    fn apptentive() -> ApptentiveDestination {
        ApptentiveDestination {
            base_url: "http://127.0.0.1:9".into(),
            max_record_bytes: Some(4096),
            feedback_type: None,
            crash_type: Some("fatal".into()),
        }
    }

    /// A foreign config for `dest` with the Centercode settings cleared.
    fn other(dest: impl FnOnce(&mut Config)) -> Config {
        let mut c = config("/tmp/x");
        c.project_key.clear();
        c.feedback_type_key.clear();
        c.base_url = None;
        dest(&mut c);
        c
    }

    fn reason(r: Result<Destination, FieldReportError>) -> String {
        match r {
            Err(FieldReportError::InvalidConfig { reason }) => reason,
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn each_destination_is_built_with_its_settings() {
        let c = other(|c| c.abc = Some(abc()));
        match chosen(&c).unwrap() {
            Destination::Abc(a) => {
                assert_eq!(a.project_id, 1);
                assert_eq!(a.channel_id, 2);
                assert_eq!(a.api_key(), "very-secret-key-42");
                assert_eq!(a.map.images.as_deref(), Some("images"));
                assert_eq!(a.map.crash_log.as_deref(), Some("crash_log"));
                assert_eq!(a.issue_names, ["mobile"]);
                assert_eq!(a.image_mode, ImageMode::Presigned);
            }
            other => panic!("expected ABC, got {other:?}"),
        }
        let c = other(|c| c.apptentive = Some(apptentive()));
        match chosen(&c).unwrap() {
            Destination::Apptentive(a) => {
                assert_eq!(a.token(), "very-secret-key-42");
                assert_eq!(a.max_record_bytes, 4096);
                assert_eq!(a.feedback_type, "feedback", "null keeps the default");
                assert_eq!(a.crash_type, "fatal");
            }
            other => panic!("expected Apptentive, got {other:?}"),
        }
        assert!(matches!(
            chosen(&config("/tmp/x")).unwrap(),
            Destination::Centercode
        ));
    }

    #[test]
    fn bad_settings_are_named_as_the_foreign_config_spells_them() {
        let c = other(|c| {
            c.abc = Some(AbcDestination {
                project_id: "twelve".into(),
                ..abc()
            })
        });
        assert!(
            reason(chosen(&c)).starts_with("abc.project_id: must be a number"),
            "{}",
            reason(chosen(&c))
        );
        let c = other(|c| {
            c.abc = Some(AbcDestination {
                issue_names: vec![" ".into()],
                ..abc()
            })
        });
        assert_eq!(
            reason(chosen(&c)),
            "abc.issue_names: an issue name is empty"
        );
        let mut c = other(|c| c.apptentive = Some(apptentive()));
        c.api_key.clear();
        assert_eq!(reason(chosen(&c)), "api_key: is empty");
        let c = other(|c| {
            c.apptentive = Some(ApptentiveDestination {
                max_record_bytes: Some(10),
                ..apptentive()
            })
        });
        assert!(reason(chosen(&c)).starts_with("apptentive.max_record_bytes: must be at least"));
    }

    #[test]
    fn printing_never_shows_the_key_even_when_the_config_is_refused() {
        let good = other(|c| c.abc = Some(abc()));
        let bad = other(|c| {
            c.abc = Some(AbcDestination {
                project_id: "x".into(),
                ..abc()
            })
        });
        for c in [good, bad] {
            for text in [format!("{c}"), format!("{c:?}")] {
                assert!(!text.contains("very-secret-key-42"), "{text}");
                assert!(text.contains("redacted"), "{text}");
                assert!(text.contains("channel_id"), "{text}");
            }
        }
    }

    #[test]
    fn centercode_still_refuses_an_empty_project_key_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path().to_str().unwrap());
        c.project_key.clear();
        match FieldReportClient::new(c).err() {
            Some(FieldReportError::InvalidConfig { reason }) => {
                assert_eq!(reason, "project_key is empty")
            }
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    /// The whole way: a foreign config opens a client that delivers to the
    /// ABC sandbox, and `set_api_key` reaches ABC's key.
    #[cfg(all(feature = "sandbox", feature = "builtin-http"))]
    #[test]
    fn a_foreign_abc_config_delivers_to_the_sandbox() {
        use crate::sandbox::{Sandbox, SandboxConfig};
        let sb = Sandbox::start(SandboxConfig::abc()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut c = other(|c| {
            c.abc = Some(AbcDestination {
                base_url: sb.base_url(),
                // The sandbox's channel.
                channel_id: "1".into(),
                ..abc()
            })
        });
        c.outbox_dir = dir.path().join("outbox").to_str().unwrap().into();
        c.api_key = "stale-key".into();
        let client = FieldReportClient::new(c).unwrap();
        client.set_api_key(sb.api_key().to_string()).unwrap();
        let id = client
            .submit(super::super::Feedback {
                summary: "from the foreign layer".into(),
                description: None,
                submitter: None,
                fields: Vec::new(),
                attachments: Vec::new(),
            })
            .unwrap();
        client.flush(std::time::Duration::from_secs(10)).unwrap();
        let status = client.report(id).unwrap();
        assert_eq!(
            status.state,
            super::super::ReportState::Delivered,
            "{:?}",
            status.last_error
        );
        let created = sb.feedback();
        assert_eq!(created.len(), 1);
        assert_eq!(status.server_key.as_deref(), Some(created[0].id.as_str()));
        assert_eq!(created[0].body["message"], "from the foreign layer");
    }

    #[test]
    fn both_destinations_or_a_centercode_setting_with_another_are_refused() {
        let c = other(|c| {
            c.abc = Some(abc());
            c.apptentive = Some(apptentive());
        });
        assert!(reason(chosen(&c)).contains("at most one"));
        let mut c = other(|c| c.abc = Some(abc()));
        c.project_key = "WidgetPro".into();
        assert!(reason(chosen(&c)).starts_with("project_key is a Centercode setting"));
        let mut c = other(|c| c.apptentive = Some(apptentive()));
        c.base_url = Some("http://127.0.0.1:9".into());
        assert!(reason(chosen(&c)).contains("apptentive.base_url"));
    }
}
