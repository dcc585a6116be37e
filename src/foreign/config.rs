//! The foreign `Config`, `AppInfo` and `Policy`, checked into the core's.

use super::*;

/// See `Config` in uniffi.udl.
#[derive(Clone)]
pub struct Config {
    pub outbox_dir: String,
    pub project_key: String,
    pub feedback_type_key: String,
    pub api_key: String,
    pub base_url: Option<String>,
    pub company: Option<String>,
    pub allow_insecure_http: bool,
    pub client_id_field: Option<String>,
    pub lookup_key: Option<String>,
    pub app: Option<AppInfo>,
    pub policy: Option<Policy>,
    pub context_fields: HashMap<String, String>,
    pub crash_element_key: Option<String>,
    pub consent_default: bool,
    pub abc: Option<AbcDestination>,
    pub apptentive: Option<ApptentiveDestination>,
}

/// Shown by foreign `toString()`/`__str__`/`description`: the core
/// config's `Debug`, which redacts the API key. A config the core refuses
/// (a bad destination setting) is shown field by field, the key redacted
/// all the same: printing it is how one finds what is wrong.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.clone().into_core() {
            Ok(core) => fmt::Debug::fmt(&core, f),
            Err(_) => f
                .debug_struct("Config")
                .field("outbox_dir", &self.outbox_dir)
                .field("project_key", &self.project_key)
                .field("feedback_type_key", &self.feedback_type_key)
                .field("api_key", &"<redacted>")
                .field("base_url", &self.base_url)
                .field("company", &self.company)
                .field("allow_insecure_http", &self.allow_insecure_http)
                .field("client_id_field", &self.client_id_field)
                .field("lookup_key", &self.lookup_key)
                .field("app", &self.app)
                .field("policy", &self.policy)
                .field("context_fields", &self.context_fields)
                .field("crash_element_key", &self.crash_element_key)
                .field("consent_default", &self.consent_default)
                .field("abc", &self.abc)
                .field("apptentive", &self.apptentive)
                .finish(),
        }
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl Config {
    /// The core config; refuses a destination setting that cannot be used
    /// (the core checks the rest at open).
    pub(crate) fn into_core(self) -> Result<core_config::Config> {
        let outbox = PathBuf::from(&self.outbox_dir);
        let mut c = match destination::chosen(&self)? {
            core_config::Destination::Centercode => self.centercode(),
            core_config::Destination::Abc(a) => core_config::Config::abc(outbox, a),
            core_config::Destination::Apptentive(a) => core_config::Config::apptentive(outbox, a),
        };
        if !matches!(c.destination, core_config::Destination::Centercode) {
            c.server.allow_insecure_http = self.allow_insecure_http;
            // Passed on so that the core's open refuses them, with its own
            // words, as it does for a Rust caller.
            c.context_fields = self.context_fields.clone().into_iter().collect();
        }
        if let Some(app) = self.app {
            c.app = core_config::AppInfo {
                name: app.name,
                version: app.version,
                build: app.build,
                locale: app.locale,
                device_model: app.device_model,
                device: app.device.into_iter().collect(),
            };
        }
        if let Some(p) = self.policy {
            p.apply(&mut c.policy);
        }
        c.consent_default = self.consent_default;
        Ok(c)
    }

    /// The Centercode config, as before other destinations existed.
    pub(crate) fn centercode(&self) -> core_config::Config {
        let this = self.clone();
        let server = core_config::ServerConfig {
            base_url: this.base_url,
            company: this.company,
            project_key: this.project_key,
            feedback_type_key: this.feedback_type_key,
            api_key: core_config::ApiKey::new(this.api_key),
            allow_insecure_http: this.allow_insecure_http,
            client_id_field: this.client_id_field,
            lookup_key: this.lookup_key,
        };
        let mut c = core_config::Config::new(PathBuf::from(this.outbox_dir), server);
        c.context_fields = this.context_fields.into_iter().collect();
        if let Some(k) = this.crash_element_key {
            c.crash_element_key = k;
        }
        c
    }
}

/// See `AppInfo` in uniffi.udl.
#[derive(Debug, Clone)]
pub struct AppInfo {
    pub name: Option<String>,
    pub version: Option<String>,
    pub build: Option<String>,
    pub locale: Option<String>,
    pub device_model: Option<String>,
    pub device: HashMap<String, String>,
}

/// See [`core_config::Durability`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    Full,
    Normal,
}

/// Overrides of [`core_config::Policy`]; `None` keeps the default.
#[derive(Debug, Clone)]
pub struct Policy {
    pub max_reports: Option<u32>,
    pub max_bytes: Option<u64>,
    pub max_age: Option<Duration>,
    pub max_attachment_bytes: Option<u64>,
    pub max_attachments: Option<u32>,
    pub max_summary_chars: Option<u32>,
    pub max_description_chars: Option<u32>,
    pub max_fields: Option<u32>,
    pub max_field_bytes: Option<u32>,
    pub retry_base: Option<Duration>,
    pub retry_max: Option<Duration>,
    pub max_attempts: Option<u32>,
    pub max_requests_per_sec: Option<u32>,
    pub connect_timeout: Option<Duration>,
    pub request_timeout: Option<Duration>,
    pub min_upload_bytes_per_sec: Option<u64>,
    pub metered_max_upload_bytes: Option<u64>,
    pub auth_probe_interval: Option<Duration>,
    pub sender_interval: Option<Duration>,
    pub sender_flush_budget: Option<Duration>,
    pub keep_delivered: Option<Duration>,
    pub busy_timeout: Option<Duration>,
    pub durability: Option<Durability>,
}

impl Policy {
    pub(crate) fn apply(self, p: &mut core_config::Policy) {
        fn set<T>(slot: &mut T, value: Option<T>) {
            if let Some(v) = value {
                *slot = v;
            }
        }
        set(&mut p.max_reports, self.max_reports);
        set(&mut p.max_bytes, self.max_bytes);
        set(&mut p.max_age, self.max_age);
        set(&mut p.max_attachment_bytes, self.max_attachment_bytes);
        set(&mut p.max_attachments, self.max_attachments);
        set(&mut p.max_summary_chars, self.max_summary_chars);
        set(&mut p.max_description_chars, self.max_description_chars);
        set(&mut p.max_fields, self.max_fields);
        set(&mut p.max_field_bytes, self.max_field_bytes);
        set(&mut p.retry_base, self.retry_base);
        set(&mut p.retry_max, self.retry_max);
        set(&mut p.max_attempts, self.max_attempts);
        set(&mut p.max_requests_per_sec, self.max_requests_per_sec);
        set(&mut p.connect_timeout, self.connect_timeout);
        set(&mut p.request_timeout, self.request_timeout);
        set(
            &mut p.min_upload_bytes_per_sec,
            self.min_upload_bytes_per_sec,
        );
        set(
            &mut p.metered_max_upload_bytes,
            self.metered_max_upload_bytes,
        );
        set(&mut p.auth_probe_interval, self.auth_probe_interval);
        set(&mut p.sender_interval, self.sender_interval);
        set(&mut p.sender_flush_budget, self.sender_flush_budget);
        set(&mut p.keep_delivered, self.keep_delivered);
        set(&mut p.busy_timeout, self.busy_timeout);
        set(
            &mut p.durability,
            self.durability.map(|d| match d {
                Durability::Full => core_config::Durability::Full,
                Durability::Normal => core_config::Durability::Normal,
            }),
        );
    }
}
