//! Configuration: where the outbox lives, which server and project to
//! deliver to, and the [`Policy`] that holds every limit.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Internal, Result};
use crate::transport::Transport;

mod destination;
mod policy;
mod server;
pub use destination::{AbcConfig, ApptentiveConfig, Destination};
pub use policy::{Durability, Policy};
pub(crate) use server::url_shape;
pub use server::{ApiKey, ServerConfig, CENTERCODE_MAX_UPLOAD};

/// The app that embeds the library, recorded with every report.
// Fields may be added in a minor release: build it with its
// constructor and set fields, never with a struct literal.
#[non_exhaustive]
#[derive(Debug, Clone, Default)]
pub struct AppInfo {
    /// App name, e.g. `WidgetPro`.
    pub name: Option<String>,
    /// App version, e.g. `2.3.1`.
    pub version: Option<String>,
    /// App build, e.g. `4512`.
    pub build: Option<String>,
    /// The user's locale (e.g. `en-US`); read from the environment when `None`.
    pub locale: Option<String>,
    /// The device model, when the app knows it (e.g. `Pixel 8`).
    pub device_model: Option<String>,
    /// What the platform tells the app about the device, under the keys of
    /// Apptentive's `device` block (see [`DEVICE_KEYS`]): on Android the
    /// `Build.*` values, on iOS the `UIDevice` ones. Each is recorded with
    /// every report as the context item `device.<key>`, and wins over what
    /// the library reads from the OS itself. Checked at open: a key not in
    /// the list, `uuid` (the library's own per-install id) or a value that
    /// is blank, has control characters or is over 256 characters is
    /// refused.
    pub device: BTreeMap<String, String>,
}

/// The keys of Apptentive's `device` block that [`AppInfo::device`] may
/// set. `uuid` is not among them: the device id is the library's own
/// random per-install UUID, never a hardware id.
pub const DEVICE_KEYS: &[&str] = &[
    "os_name",
    "os_version",
    "os_build",
    "manufacturer",
    "model",
    "board",
    "product",
    "brand",
    "cpu",
    "carrier",
    "current_carrier",
    "network_type",
    "build_type",
    "build_id",
    "bootloader_version",
    "radio_version",
];

/// Everything needed to open a [`Client`](crate::Client).
// Fields may be added in a minor release: build it with its
// constructor and set fields, never with a struct literal.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct Config {
    /// The outbox directory; created (owner-only) if missing.
    pub outbox_dir: PathBuf,
    /// Server, project, feedback source and API key.
    pub server: ServerConfig,
    /// The embedding app, recorded with every report.
    pub app: AppInfo,
    /// Limits and timeouts.
    pub policy: Policy,
    /// Which context items are sent, under which Centercode field names:
    /// keys are `library_version`, `os`, `arch`, `app_name`, `app_version`,
    /// `app_build`, `locale`, `device_model`, `seq`, `report_kind`, and
    /// `device.<key>` for the device items (`device.uuid`, the per-install
    /// id, and each of [`DEVICE_KEYS`], e.g. `device.os_version`). Empty by
    /// default: a field the feedback source does not define may be refused.
    pub context_fields: BTreeMap<String, String>,
    /// The file element that crash logs are bound to.
    pub crash_element_key: String,
    /// Whether the user has consented to sending; without it reports are
    /// kept but not sent. The stored choice, once made, wins over this.
    pub consent_default: bool,
    /// The app's own HTTP client, to send every request through instead of
    /// the library's (see [`Transport`]). Required in a build without the
    /// `builtin-http` feature.
    pub transport: Option<Arc<dyn Transport>>,
    /// Where reports go: Centercode (described by `server`, the default),
    /// or another server with its own settings.
    pub destination: Destination,
}

/// Why a build without its own HTTP stack cannot open without a transport.
pub(crate) const NO_HTTP_STACK: &str =
    "this build of fieldreport has no HTTP stack of its own (its `builtin-http` feature is \
     off): give it the app's transport";

/// The context items that `context_fields` may name, beside the device
/// items `device.<key>` (see `context_fields`).
pub const CONTEXT_ITEMS: &[&str] = &[
    "library_version",
    "os",
    "arch",
    "app_name",
    "app_version",
    "app_build",
    "locale",
    "device_model",
    "seq",
    "report_kind",
];

impl Config {
    /// A config with default policy for `outbox_dir` and `server`.
    pub fn new(outbox_dir: impl Into<PathBuf>, server: ServerConfig) -> Config {
        Config {
            outbox_dir: outbox_dir.into(),
            server,
            app: AppInfo::default(),
            policy: Policy::default(),
            context_fields: BTreeMap::new(),
            crash_element_key: "CrashLog".into(),
            consent_default: true,
            transport: None,
            destination: Destination::Centercode,
        }
    }

    /// A config with default policy that delivers to an ABC User Feedback
    /// server. Crash logs go as text into the channel's `crash_log` field.
    pub fn abc(outbox_dir: impl Into<PathBuf>, abc: AbcConfig) -> Config {
        Config::other(outbox_dir, Destination::Abc(abc))
    }

    /// A config with default policy that posts Apptentive records.
    pub fn apptentive(outbox_dir: impl Into<PathBuf>, apptentive: ApptentiveConfig) -> Config {
        Config::other(outbox_dir, Destination::Apptentive(apptentive))
    }

    fn other(outbox_dir: impl Into<PathBuf>, destination: Destination) -> Config {
        let (base, secret) = destination.other_server().unwrap_or_default();
        // `server` carries what every destination has (the origin the
        // secret is bound to, the secret itself for redaction and
        // `set_api_key`); its Centercode keys are unused.
        let server = ServerConfig::with_base_url(base, "-", "-", secret);
        Config {
            destination,
            ..Config::new(outbox_dir, server)
        }
    }

    /// The same config with this policy.
    pub fn with_policy(mut self, policy: Policy) -> Config {
        self.policy = policy;
        self
    }

    /// The same config with this app's name, version and so on.
    pub fn with_app(mut self, app: AppInfo) -> Config {
        self.app = app;
        self
    }

    /// Sends every request through the app's `transport` instead of the
    /// library's own HTTP stack.
    pub fn with_transport(mut self, transport: impl Transport + 'static) -> Config {
        self.transport = Some(Arc::new(transport));
        self
    }

    /// The destination reports are queued for, as the outbox records it:
    /// the server (its resolved base URL), the project and the form, not
    /// the API key (a new key must not strand the queue). Reports are only
    /// ever sent to the destination they were queued for.
    pub(crate) fn destination_name(&self, base_url: &str) -> String {
        if let Some(name) = self.destination.outbox_name() {
            return name;
        }
        format!(
            "centercode {base_url}/projects/{}/feedback/{}",
            self.server.project_key, self.server.feedback_type_key
        )
    }

    /// Checks the whole config; returns the resolved base URL.
    pub(crate) fn validate(&self) -> Result<String> {
        if self.outbox_dir.as_os_str().is_empty() {
            return Err(Internal::Config("outbox_dir is empty".into()));
        }
        let base = self.server.resolved_base_url()?;
        crate::model::context::check_device_items(&self.app.device).map_err(Internal::Config)?;
        if !matches!(self.destination, Destination::Centercode) {
            return self.validate_other(base);
        }
        for (what, value) in [
            ("project_key", &self.server.project_key),
            ("feedback_type_key", &self.server.feedback_type_key),
        ] {
            check_path_segment(what, value)?;
        }
        let key = self.server.api_key.expose();
        if key.is_empty() {
            return Err(Internal::Config("api_key is empty".into()));
        }
        if key.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(Internal::Config(
                "api_key contains whitespace or control characters".into(),
            ));
        }
        check_path_segment("crash_element_key", &self.crash_element_key)?;
        if self.server.lookup_key.is_some() != self.server.client_id_field.is_some() {
            return Err(Internal::Config(
                "client_id_field and lookup_key go together: set both or neither".into(),
            ));
        }
        if let Some(lookup) = &self.server.lookup_key {
            check_path_segment("lookup_key", lookup)?;
        }
        for (item, field) in &self.context_fields {
            let device_item = item
                .strip_prefix("device.")
                .is_some_and(|k| k == "uuid" || DEVICE_KEYS.contains(&k));
            if !CONTEXT_ITEMS.contains(&item.as_str()) && !device_item {
                return Err(Internal::Config(format!(
                    "context_fields: unknown item {item:?} (known: {}, and device.<key> for \
                     device.uuid and each key of DEVICE_KEYS)",
                    CONTEXT_ITEMS.join(", ")
                )));
            }
            if field.trim().is_empty() {
                return Err(Internal::Config(format!(
                    "context_fields: item {item:?} maps to an empty field name"
                )));
            }
        }
        self.policy.validate()?;
        self.check_stack(base)
    }

    /// The checks of a destination other than Centercode: its own settings
    /// were checked when made; `server` holds its base URL.
    fn validate_other(&self, base: String) -> Result<String> {
        if !self.context_fields.is_empty() {
            return Err(Internal::Config(format!(
                "context_fields name Centercode fields; a {} destination maps context in its own settings",
                self.destination.kind()
            )));
        }
        self.policy.validate()?;
        self.check_stack(base)
    }

    /// Whether this build can reach `base`; last, so that a problem in the
    /// config itself is told first.
    fn check_stack(&self, base: String) -> Result<String> {
        if self.transport.is_none() {
            if !cfg!(feature = "builtin-http") {
                return Err(Internal::Config(NO_HTTP_STACK.into()));
            }
            if base.starts_with("https://") && !cfg!(feature = "rustls") {
                return Err(Internal::Config(
                    "this build of fieldreport has no TLS (its `rustls` feature is off), so it \
                     cannot reach an https:// base URL; use a build with TLS or give it the \
                     app's transport"
                        .into(),
                ));
            }
        }
        Ok(base)
    }
}

/// Keys become URL path segments: keep them to what Centercode issues.
pub(crate) fn check_path_segment(what: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Internal::Config(format!("{what} is empty")));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || value == "."
        || value == ".."
    {
        return Err(Internal::Config(format!(
            "{what} {value:?} may hold only letters, digits, '-', '_' and '.'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(url: &str) -> ServerConfig {
        ServerConfig::with_base_url(url, "WidgetPro", "Mobile", "k")
    }

    #[test]
    fn company_builds_the_documented_url() {
        let s = ServerConfig::centercode("acme", "WidgetPro", "Mobile", "k");
        assert_eq!(
            s.resolved_base_url().unwrap(),
            "https://acme.centercode.com/api/v1"
        );
    }

    #[test]
    fn http_allowed_only_for_loopback_or_opt_in() {
        assert!(server("http://127.0.0.1:8080/api/v1")
            .resolved_base_url()
            .is_ok());
        assert!(server("http://localhost/api/v1")
            .resolved_base_url()
            .is_ok());
        assert!(server("http://[::1]:9/api/v1").resolved_base_url().is_ok());
        let err = server("http://example.com/api/v1")
            .resolved_base_url()
            .unwrap_err();
        assert!(matches!(err, Internal::Config(m) if m.contains("clear text")));
        let mut s = server("http://example.com/api/v1");
        s.allow_insecure_http = true;
        assert!(s.resolved_base_url().is_ok());
        assert!(server("ftp://example.com").resolved_base_url().is_err());
        assert!(server("https://").resolved_base_url().is_err());
        assert!(server("https://h/api?x=1").resolved_base_url().is_err());
    }

    struct NoTransport;
    impl Transport for NoTransport {
        fn send(
            &self,
            _: crate::transport::HttpRequest,
        ) -> std::result::Result<crate::transport::HttpResponse, crate::transport::TransportError>
        {
            Err(crate::transport::TransportError::NotSent("none".into()))
        }
    }

    #[test]
    fn a_build_without_an_http_stack_or_tls_says_so_at_open() {
        // Refused up front, not at the first delivery.
        let https = Config::new("/tmp/x", server("https://h/api/v1")).validate();
        let http = Config::new("/tmp/x", server("http://127.0.0.1:9/api")).validate();
        if !cfg!(feature = "builtin-http") {
            for r in [&https, &http] {
                assert!(
                    matches!(r, Err(Internal::Config(m)) if m.contains("no HTTP stack")),
                    "{r:?}"
                );
            }
        } else if !cfg!(feature = "rustls") {
            assert!(
                matches!(&https, Err(Internal::Config(m)) if m.contains("no TLS")),
                "{https:?}"
            );
            assert!(http.is_ok(), "{http:?}");
        } else {
            assert!(https.is_ok() && http.is_ok(), "{https:?} {http:?}");
        }
        // The app's transport does the TLS, whatever this build has.
        let cfg = Config::new("/tmp/x", server("https://h/api/v1")).with_transport(NoTransport);
        assert!(cfg.validate().is_ok());
        assert!(format!("{cfg:?}").contains("<app transport>"));
    }

    #[test]
    fn api_key_never_printed() {
        let s = ServerConfig::centercode("acme", "P", "T", "super-secret-123");
        let cfg = Config::new("/tmp/x", s);
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("super-secret-123"));
        assert!(dbg.contains("redacted"));
    }

    #[cfg(feature = "rustls")] // https:// URLs
    #[test]
    fn validation_names_the_problem() {
        let mut cfg = Config::new("/tmp/x", server("https://h/api/v1"));
        cfg.server.project_key = "a/b".into();
        let e = cfg.validate().unwrap_err();
        assert!(matches!(e, Internal::Config(m) if m.contains("project_key")));
        let mut cfg = Config::new("/tmp/x", server("https://h/api/v1"));
        cfg.context_fields.insert("shoe_size".into(), "Shoe".into());
        assert!(
            matches!(cfg.validate().unwrap_err(), Internal::Config(m) if m.contains("shoe_size"))
        );
        let mut cfg = Config::new("/tmp/x", server("https://h/api/v1"));
        cfg.policy.max_attachment_bytes = CENTERCODE_MAX_UPLOAD + 1;
        assert!(cfg.validate().is_err());
        let mut cfg = Config::new("/tmp/x", server("https://h/api/v1"));
        cfg.server.lookup_key = Some("L".into());
        assert!(cfg.validate().is_err());
        let cfg = Config::new("", server("https://h/api/v1"));
        assert!(cfg.validate().is_err());
    }
}

/// Property tests of configuration checks on arbitrary text: validation
/// never panics, plain http never goes anywhere but loopback without the
/// opt-in (judged by the HTTP stack's own URL parser), and accepted keys
/// are safe path segments. 512 cases each, 20 000 with `FIELDREPORT_FULL=1`.
#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[a-zA-Z0-9._-]{0,12}",
            "[ -~]{0,12}",
            Just(".".to_string()),
            Just("..".to_string()),
            "\\PC{0,10}",
        ]
    }

    /// URLs put together from pieces that have fooled URL checks before.
    fn url_like() -> impl Strategy<Value = String> {
        let scheme = prop_oneof![
            Just("http://"),
            Just("https://"),
            Just("HTTP://"),
            Just("ftp://"),
            Just(""),
            Just("http:/"),
            Just("http:///"),
            Just("http:\\\\"),
        ];
        let userinfo = prop_oneof![
            Just(""),
            Just("user@"),
            Just("127.0.0.1@"),
            Just("localhost@"),
            Just("evil.example@"),
            Just("a:b@"),
            Just("evil.example%2f@"),
            Just("evil.example\\@"),
            Just("@"),
        ];
        let host = prop_oneof![
            Just("localhost".to_string()),
            Just("LocalHost".to_string()),
            Just("127.0.0.1".to_string()),
            Just("127.9.9.9".to_string()),
            Just("[::1]".to_string()),
            Just("::1".to_string()),
            Just("[::ffff:127.0.0.1]".to_string()),
            Just("localhost.evil.example".to_string()),
            Just("127.0.0.1.nip.io".to_string()),
            Just("evil.example".to_string()),
            Just("10.0.0.1".to_string()),
            Just("0x7f.1".to_string()),
            Just("2130706433".to_string()),
            Just("[::1]evil.example".to_string()),
            Just(String::new()),
            "[a-z0-9.-]{1,15}",
            any::<String>(),
        ];
        let port = prop_oneof![
            Just(String::new()),
            Just(":8080".to_string()),
            Just(":".to_string()),
            ":[0-9]{1,6}",
        ];
        let path = prop_oneof![
            Just(String::new()),
            Just("/api/v1".to_string()),
            Just("/".to_string()),
            Just("\\@127.0.0.1/".to_string()),
            Just("/@127.0.0.1".to_string()),
            Just("#@127.0.0.1".to_string()),
            Just("?@127.0.0.1".to_string()),
            Just("%2f@127.0.0.1".to_string()),
            "/[ -~]{0,10}",
            any::<String>(),
        ];
        prop_oneof![
            4 => (scheme, userinfo, host, port, path)
                .prop_map(|(a, b, c, d, e)| format!("{a}{b}{c}{d}{e}")),
            1 => any::<String>(),
        ]
    }

    /// The host the HTTP stack would connect to for `url`, if it accepts it.
    #[cfg(feature = "builtin-http")]
    fn host_as_sent(url: &str) -> Option<String> {
        let uri: ureq::http::Uri = url.parse().ok()?;
        let host = uri.host()?;
        Some(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: crate::proptest_cases(),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn validation_never_panics(
            outbox in any::<String>(),
            base_url in prop::option::of(url_like()),
            company in prop::option::of(piece()),
            project in piece(),
            feedback_type in piece(),
            api_key in piece(),
            crash_key in piece(),
            client_id in prop::option::of(piece()),
            lookup in prop::option::of(piece()),
            insecure in any::<bool>(),
            context in prop::collection::vec((piece(), piece()), 0..3),
        ) {
            let mut server = ServerConfig::with_base_url("", project, feedback_type, api_key);
            server.base_url = base_url;
            server.company = company;
            server.allow_insecure_http = insecure;
            server.client_id_field = client_id;
            server.lookup_key = lookup;
            let mut cfg = Config::new(outbox, server);
            cfg.crash_element_key = crash_key;
            cfg.context_fields = context.into_iter().collect();
            if let Ok(base) = cfg.validate() {
                prop_assert!(!base.ends_with('/'));
                prop_assert!(base.starts_with("https://") || base.starts_with("http://"));
                for key in [&cfg.server.project_key, &cfg.server.feedback_type_key, &cfg.crash_element_key] {
                    prop_assert!(check_path_segment("key", key).is_ok());
                }
                let k = cfg.server.api_key.expose();
                prop_assert!(!k.is_empty() && !k.chars().any(|c| c.is_control() || c.is_whitespace()));
                prop_assert!(!cfg.outbox_dir.as_os_str().is_empty());
            }
        }

        #[test]
        fn plain_http_goes_only_to_loopback_unless_allowed(url in url_like()) {
            let server = ServerConfig::with_base_url(url.clone(), "WidgetPro", "Mobile", "k");
            let strict = server.resolved_base_url();
            if let Ok(base) = &strict {
                prop_assert!(!base.contains(['?', '#']) && !base.chars().any(char::is_whitespace));
                #[cfg(feature = "builtin-http")]
                if base.starts_with("http://") {
                    // Where the request would really go: the parser of the
                    // HTTP stack decides, not ours.
                    if let Some(host) = host_as_sent(&format!("{base}/projects/P/feedback/T?apiKey=k")) {
                        prop_assert!(server::is_loopback(&host), "{} goes to {} in clear text", base, host);
                    }
                }
            }
            // Opting in never refuses what was accepted without it.
            let mut insecure = server;
            insecure.allow_insecure_http = true;
            if strict.is_ok() {
                prop_assert!(insecure.resolved_base_url().is_ok());
            }
        }

        #[test]
        fn accepted_path_segments_are_plain(value in piece()) {
            if check_path_segment("key", &value).is_ok() {
                prop_assert!(!value.is_empty() && value != "." && value != "..");
                prop_assert!(value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')));
            }
        }

        #[test]
        fn company_names_make_the_documented_url(company in piece()) {
            let s = ServerConfig::centercode(company.clone(), "P", "T", "k");
            if let Ok(url) = s.resolved_base_url() {
                prop_assert_eq!(url, format!("https://{company}.centercode.com/api/v1"));
                prop_assert!(!company.is_empty() && company.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
            }
        }

        #[test]
        fn policy_validation_never_panics(
            counts in (any::<u32>(), any::<u64>(), any::<u64>(), any::<u32>(), any::<u32>()),
            millis in (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
            per_sec in any::<u32>(),
            upload_rate in any::<u64>(),
        ) {
            let mut p = Policy::default();
            (p.max_reports, p.max_bytes, p.max_attachment_bytes, p.max_attempts, p.max_summary_chars) = counts;
            p.retry_base = Duration::from_millis(millis.0);
            p.retry_max = Duration::from_millis(millis.1);
            p.connect_timeout = Duration::from_millis(millis.2);
            p.request_timeout = Duration::from_millis(millis.3);
            p.sender_interval = Duration::from_millis(millis.4);
            p.sender_flush_budget = Duration::from_millis(millis.5);
            p.max_requests_per_sec = per_sec;
            p.min_upload_bytes_per_sec = upload_rate;
            if p.validate().is_ok() {
                prop_assert!(p.max_reports > 0 && p.max_bytes > 0 && p.max_attempts > 0);
                prop_assert!(p.max_attachment_bytes > 0 && p.max_attachment_bytes <= CENTERCODE_MAX_UPLOAD);
                prop_assert!(!p.retry_base.is_zero() && p.retry_base <= p.retry_max);
                prop_assert!(p.min_upload_bytes_per_sec > 0);
            }
        }
    }
}
