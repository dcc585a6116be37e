//! An ABC User Feedback destination's settings, checked when made.

use crate::destinations::{check_base_url, check_secret, DestinationConfigError};
use std::fmt;
use std::time::Duration;

/// How images reach the server; both are driven by the engine, chosen with
/// [`AbcConfig::with_presigned_images`] (see there why multipart is the
/// default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum ImageMode {
    /// `POST .../feedbacks-with-images`, the images as file parts (default).
    #[default]
    Multipart,
    /// Per image `GET .../image-upload-url` and a key-less `PUT` of its
    /// bytes to the presigned URL (`src/delivery/presigned.rs`), then the
    /// object URLs in a JSON create. Needs the channel's S3 config and a
    /// store that does not enforce the empty-body checksum ABC signs.
    Presigned,
}

/// Where each part of a report goes: the channel's field keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AbcFieldMap {
    /// The summary's field; default `message`.
    pub summary: String,
    /// The description's field, if any.
    pub description: Option<String>,
    /// The submitter's field, if any.
    pub submitter: Option<String>,
    /// A TEXT field for the crash log; without one crash reports are refused.
    pub crash_log: Option<String>,
    /// A KEYWORD field for the report's UUID: lets a lost answer be looked up.
    pub client_id: Option<String>,
    /// The IMAGES field that receives images; without one images are rejected.
    pub images: Option<String>,
    /// Context items: `(block.key, field)`, e.g. `("device.os_name", "os")`.
    pub context: Vec<(String, String)>,
}

impl Default for AbcFieldMap {
    fn default() -> Self {
        AbcFieldMap {
            summary: "message".to_string(),
            description: None,
            submitter: None,
            crash_log: None,
            client_id: None,
            images: None,
            context: Vec::new(),
        }
    }
}

/// An [ABC User Feedback](https://github.com/line/abc-user-feedback)
/// destination: the server's root, the numeric project and channel, the
/// API key (sent in the `x-api-key` header only), and which channel field
/// receives each part of a report. Checked when made; its Debug output
/// never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct AbcConfig {
    /// The server's root, e.g. `https://feedback.example.com` (routes are under `/api`).
    pub(crate) base_url: String,
    /// The numeric project id.
    pub(crate) project_id: u64,
    /// The numeric channel id.
    pub(crate) channel_id: u64,
    api_key: String,
    /// Field keys for each part of a report.
    pub(crate) map: AbcFieldMap,
    /// Issue names attached to every feedback (`issueNames`).
    pub(crate) issue_names: Vec<String>,
    /// How images are sent.
    pub(crate) image_mode: ImageMode,
    /// Timeout of one exchange.
    pub(crate) timeout: Duration,
    /// Requests per second we allow ourselves (ABC has no limit of its own).
    pub(crate) polite_rate_per_sec: u32,
}

impl fmt::Debug for AbcConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbcConfig")
            .field("base_url", &self.base_url)
            .field("project_id", &self.project_id)
            .field("channel_id", &self.channel_id)
            .field("api_key", &"<redacted>")
            .field("map", &self.map)
            .field("issue_names", &self.issue_names)
            .field("image_mode", &self.image_mode)
            .finish_non_exhaustive()
    }
}

fn numeric_id(setting: &str, v: &str) -> Result<u64, DestinationConfigError> {
    let v = v.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DestinationConfigError::new(
            setting,
            format!("must be a number (ABC's ids are numeric), got {v:?}"),
        ));
    }
    match v.parse::<u64>() {
        Ok(0) => Err(DestinationConfigError::new(setting, "must be at least 1")),
        Ok(n) if n <= i64::MAX as u64 => Ok(n),
        _ => Err(DestinationConfigError::new(setting, "is too large")),
    }
}

fn field_key(role: &str, key: &str) -> Result<String, DestinationConfigError> {
    let key = key.trim();
    let setting = format!("map.{role}");
    if key.is_empty() {
        return Err(DestinationConfigError::new(&setting, "names no field"));
    }
    if [
        "id",
        "ids",
        "issues",
        "issueIds",
        "createdAt",
        "updatedAt",
        "issueNames",
    ]
    .contains(&key)
    {
        return Err(DestinationConfigError::new(
            &setting,
            format!("{key:?} is a key ABC reserves"),
        ));
    }
    Ok(key.to_string())
}

/// Checks `(role, field key)` pairs and builds the map they describe.
fn field_map(map: &[(&str, &str)]) -> Result<AbcFieldMap, DestinationConfigError> {
    let mut fields = AbcFieldMap::default();
    let mut seen: Vec<String> = Vec::new();
    for (role, key) in map {
        let key = field_key(role, key)?;
        let slot = match *role {
            "summary" => {
                fields.summary = key.clone();
                None
            }
            "description" => Some(&mut fields.description),
            "submitter" => Some(&mut fields.submitter),
            "crash_log" => Some(&mut fields.crash_log),
            "client_id" => Some(&mut fields.client_id),
            "images" => Some(&mut fields.images),
            // A context item by block and key, with or without `context.`
            // in front (the CLI's `--map device.os_name=os`).
            r if r.contains('.') => {
                let item = r.strip_prefix("context.").unwrap_or(r);
                let ok = item
                    .split_once('.')
                    .is_some_and(|(b, k)| !b.is_empty() && !k.is_empty());
                if !ok {
                    return Err(DestinationConfigError::new(
                        &format!("map.{r}"),
                        "a context role is <block>.<key> (or context.<block>.<key>), e.g. device.os_name",
                    ));
                }
                fields.context.push((item.to_string(), key.clone()));
                None
            }
            other => {
                return Err(DestinationConfigError::new(
                    &format!("map.{other}"),
                    "unknown role: use summary, description, submitter, crash_log, client_id, images or <block>.<key>",
                ))
            }
        };
        if let Some(slot) = slot {
            if slot.is_some() {
                return Err(DestinationConfigError::new(
                    &format!("map.{role}"),
                    "is given twice",
                ));
            }
            *slot = Some(key.clone());
        }
        if seen.contains(&key) && *role != "summary" {
            return Err(DestinationConfigError::new(
                &format!("map.{role}"),
                format!("the field {key:?} already receives another role"),
            ));
        }
        seen.push(key);
    }
    Ok(fields)
}

/// The default polite rate: ABC has no limit, we still pace ourselves.
pub(crate) const ABC_POLITE_RATE: u32 = 5;

impl AbcConfig {
    /// Checks and builds a destination. `base_url` is the server's root
    /// (`http://host:4000`); `map` gives `(role, field key)` pairs, where a
    /// role is `summary` (default field `message`), `description`,
    /// `submitter`, `crash_log` (a TEXT field; without it crash reports are
    /// refused at submit), `client_id` (a KEYWORD field: lets a lost answer
    /// be looked up instead of posting twice), `images` (the IMAGES field;
    /// without it attachments are rejected) or a context item by block and
    /// key, `device.os_name` (also written `context.device.os_name`).
    pub fn new(
        base_url: &str,
        project_id: &str,
        channel_id: &str,
        api_key: &str,
        map: &[(&str, &str)],
    ) -> Result<AbcConfig, crate::Error> {
        Self::checked(base_url, project_id, channel_id, api_key, map).map_err(Into::into)
    }

    pub(crate) fn checked(
        base_url: &str,
        project_id: &str,
        channel_id: &str,
        api_key: &str,
        map: &[(&str, &str)],
    ) -> Result<AbcConfig, DestinationConfigError> {
        let base_url = check_base_url("base_url", base_url)?;
        let project_id = numeric_id("project_id", project_id)?;
        let channel_id = numeric_id("channel_id", channel_id)?;
        check_secret("api_key", api_key)?;
        let fields = field_map(map)?;
        Ok(AbcConfig {
            base_url,
            project_id,
            channel_id,
            api_key: api_key.to_string(),
            map: fields,
            issue_names: Vec::new(),
            image_mode: ImageMode::Multipart,
            timeout: Duration::from_secs(60),
            polite_rate_per_sec: ABC_POLITE_RATE,
        })
    }

    /// Sets the issue names sent as `issueNames` with every feedback (each
    /// non-empty).
    pub fn with_issue_names(mut self, names: &[&str]) -> Result<AbcConfig, crate::Error> {
        if names.iter().any(|n| n.trim().is_empty()) {
            return Err(
                DestinationConfigError::new("issue_names", "an issue name is empty").into(),
            );
        }
        self.issue_names = names.iter().map(|n| n.to_string()).collect();
        Ok(self)
    }

    /// The same destination with its field map rebuilt from `map`
    /// (checked as by [`AbcConfig::new`]), everything else kept: lets the C
    /// layer set one role at a time and refuse a bad one without change.
    pub(crate) fn with_map(
        &self,
        map: &[(&str, &str)],
    ) -> Result<AbcConfig, DestinationConfigError> {
        Ok(AbcConfig {
            map: field_map(map)?,
            ..self.clone()
        })
    }

    /// The same destination sending images by presigned upload instead of
    /// multipart: per image, `GET .../image-upload-url`, a `PUT` of its
    /// bytes to the URL ABC signs (another origin, S3's: it gets no API
    /// key), then the object URLs in the IMAGES field of a JSON create.
    ///
    /// Multipart (`POST .../feedbacks-with-images`) stays the default:
    /// the presigned URL ABC signs carries the checksum of an empty body
    /// (`x-amz-checksum-crc32=AAAAAA==`), which S3-compatible stores that
    /// enforce it refuse for real bytes, and the route needs the channel's
    /// S3 (image) config. Choose it only for a store that does not enforce
    /// that checksum. The rules are those of multipart (images only, 1 MiB each); an image
    /// the store refuses is rejected with the store's words, and the
    /// feedback is still delivered.
    pub fn with_presigned_images(self) -> AbcConfig {
        self.with_image_mode(ImageMode::Presigned)
    }

    /// Chooses how images are sent.
    pub(crate) fn with_image_mode(mut self, mode: ImageMode) -> AbcConfig {
        self.image_mode = mode;
        self
    }

    /// The key, for the `x-api-key` header only.
    pub(crate) fn api_key(&self) -> &str {
        &self.api_key
    }

    /// The same destination with the app's newer key (`set_api_key`).
    pub(crate) fn with_key(&self, key: &str) -> AbcConfig {
        AbcConfig {
            api_key: key.to_string(),
            ..self.clone()
        }
    }

    /// `{base}/api/projects/{p}/channels/{c}`.
    pub(crate) fn channel_url(&self) -> String {
        format!(
            "{}/api/projects/{}/channels/{}",
            self.base_url, self.project_id, self.channel_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(r: Result<AbcConfig, DestinationConfigError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn a_good_config_maps_every_role() {
        let c = AbcConfig::checked(
            "https://abc.example/",
            "12",
            "3",
            "k-1",
            &[
                ("summary", "title"),
                ("description", "description"),
                ("submitter", "submitter"),
                ("crash_log", "crash_log"),
                ("client_id", "client_id"),
                ("images", "images"),
                ("context.device.os_name", "os"),
                ("app_version.build_number", "build"),
            ],
        )
        .unwrap();
        assert_eq!(
            c.channel_url(),
            "https://abc.example/api/projects/12/channels/3"
        );
        assert_eq!(c.map.summary, "title");
        assert_eq!(c.map.crash_log.as_deref(), Some("crash_log"));
        assert_eq!(
            c.map.context,
            vec![
                ("device.os_name".to_string(), "os".to_string()),
                ("app_version.build_number".to_string(), "build".to_string())
            ]
        );
        assert_eq!(c.image_mode, ImageMode::Multipart);
        let d = AbcConfig::checked("http://h", "1", "1", "k", &[]).unwrap();
        assert_eq!(d.map.summary, "message", "default summary field");
        assert!(!format!("{c:?}").contains("k-1"));
    }

    #[test]
    fn each_bad_value_gets_its_own_error() {
        let ok_map: &[(&str, &str)] = &[];
        assert!(err(AbcConfig::checked("http://h", "abc", "1", "k", ok_map))
            .starts_with("project_id: must be a number"));
        assert!(err(AbcConfig::checked("http://h", "1x", "1", "k", ok_map)).contains("project_id"));
        assert!(
            err(AbcConfig::checked("http://h", "1", "-2", "k", ok_map)).starts_with("channel_id")
        );
        assert!(err(AbcConfig::checked("http://h", "0", "1", "k", ok_map)).contains("at least 1"));
        assert!(err(AbcConfig::checked("http://h", "1", "1", "", ok_map))
            .starts_with("api_key: is empty"));
        assert!(err(AbcConfig::checked("h", "1", "1", "k", ok_map)).starts_with("base_url"));
        let e = err(AbcConfig::checked(
            "http://h",
            "1",
            "1",
            "k",
            &[("title", "x")],
        ));
        assert!(e.starts_with("map.title: unknown role"), "{e}");
        let e = err(AbcConfig::checked(
            "http://h",
            "1",
            "1",
            "k",
            &[("client_id", "id")],
        ));
        assert!(e.contains("reserves"), "{e}");
        let e = err(AbcConfig::checked(
            "http://h",
            "1",
            "1",
            "k",
            &[("context.device", "os")],
        ));
        assert!(e.contains("context.<block>.<key>"), "{e}");
        let e = err(AbcConfig::checked(
            "http://h",
            "1",
            "1",
            "k",
            &[("submitter", "a"), ("client_id", "a")],
        ));
        assert!(e.contains("another role"), "{e}");
        let e = AbcConfig::checked("http://h", "1", "1", "k", &[])
            .unwrap()
            .with_issue_names(&[" "]);
        assert_eq!(
            e.unwrap_err().to_string(),
            "invalid configuration: issue_names: an issue name is empty"
        );
    }
}
