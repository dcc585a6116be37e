//! The Centercode server a client talks to, and its API key.

use std::fmt;

use crate::error::{Internal, Result};

/// Centercode accepts uploads "under 2gb".
pub const CENTERCODE_MAX_UPLOAD: u64 = 2 * 1024 * 1024 * 1024 - 1;

/// An API key. Its `Debug` and `Display` never show the key itself.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }

    /// The key itself, for the one place that needs it: the query string.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A short, non-reversible fingerprint, to tell keys apart in state.
    pub(crate) fn fingerprint(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.0.as_bytes());
        digest[..6].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Which Centercode server, project and feedback source to deliver to.
// Fields may be added in a minor release: build it with its
// constructor and set fields, never with a struct literal.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Full API base URL, e.g. `https://acme.centercode.com/api/v1`. When
    /// `None`, it is built from `company`.
    pub base_url: Option<String>,
    /// The Centercode company (sub-domain); required when `base_url` is `None`.
    pub company: Option<String>,
    /// The configured project key (e.g. `WidgetPro`).
    pub project_key: String,
    /// The external feedback source's key (e.g. `Mobile`).
    pub feedback_type_key: String,
    /// The API key authorised for this feedback source.
    pub api_key: ApiKey,
    /// Allow `http://` to a host other than loopback. Off by default: the
    /// API key would travel in clear text.
    pub allow_insecure_http: bool,
    /// A feedback field in which each report's client id (a UUID) is sent.
    /// With `lookup_key` it closes the one ambiguous window (request sent,
    /// answer lost): before sending again, the report is looked up, and
    /// while twice `policy.request_timeout` has not passed since the lost
    /// create, a report not found is looked up again later rather than
    /// re-sent. A server that completes a create later still than that gets
    /// it twice, counted in `Stats::ambiguous_resends`.
    pub client_id_field: Option<String>,
    /// The Project Feedback Lookup element key used with `client_id_field`.
    pub lookup_key: Option<String>,
}

impl ServerConfig {
    /// A server config for a Centercode company's hosted API.
    pub fn centercode(
        company: impl Into<String>,
        project_key: impl Into<String>,
        feedback_type_key: impl Into<String>,
        api_key: impl Into<String>,
    ) -> ServerConfig {
        ServerConfig {
            base_url: None,
            company: Some(company.into()),
            ..ServerConfig::with_base_url("", project_key, feedback_type_key, api_key)
        }
    }

    /// A server config for an explicit base URL (a sandbox, a proxy).
    pub fn with_base_url(
        base_url: impl Into<String>,
        project_key: impl Into<String>,
        feedback_type_key: impl Into<String>,
        api_key: impl Into<String>,
    ) -> ServerConfig {
        ServerConfig {
            base_url: Some(base_url.into()),
            company: None,
            project_key: project_key.into(),
            feedback_type_key: feedback_type_key.into(),
            api_key: ApiKey::new(api_key),
            allow_insecure_http: false,
            client_id_field: None,
            lookup_key: None,
        }
    }

    /// The validated base URL, without a trailing slash.
    pub(crate) fn resolved_base_url(&self) -> Result<String> {
        let url = match (&self.base_url, &self.company) {
            (Some(url), _) => url.clone(),
            (None, Some(company)) => {
                if company.is_empty()
                    || !company
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-')
                {
                    return Err(Internal::Config(format!(
                        "company {company:?} is not a valid Centercode sub-domain"
                    )));
                }
                format!("https://{company}.centercode.com/api/v1")
            }
            (None, None) => {
                return Err(Internal::Config(
                    "either base_url or company is required".into(),
                ))
            }
        };
        let (scheme, host) =
            url_shape(&url).map_err(|why| Internal::Config(format!("base URL {url:?} {why}")))?;
        let url = url.trim_end_matches('/').to_string();
        if scheme == "http" && !is_loopback(&host) && !self.allow_insecure_http {
            return Err(Internal::Config(format!(
                "base URL uses http:// to {host}, which would send the API key in clear text; \
                 use https:// or set allow_insecure_http"
            )));
        }
        Ok(url)
    }
}

/// Checks what every destination's base URL must be, whatever its server:
/// http(s), a host, no user info, no query, fragment or spaces, and an
/// origin the key can be bound to. Returns the scheme and host; the error
/// says what is wrong (after the URL, e.g. "has no host"). One check, so
/// that every destination refuses the same URLs with the same words.
pub(crate) fn url_shape(url: &str) -> std::result::Result<(String, String), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("has no scheme (start it with https://)".into());
    };
    if scheme != "https" && scheme != "http" {
        return Err(format!("has scheme {scheme:?}: use https:// (or http://)"));
    }
    let authority = rest.split('/').next().unwrap_or("");
    // `https://good@evil/` reads as one host and connects to another,
    // and credentials belong in the key setting, never in a URL.
    if authority.contains('@') {
        return Err(
            "must not contain user info or credentials (`user@host`); the key has its own setting"
                .into(),
        );
    }
    let host = host_of(authority);
    if host.is_empty() {
        return Err("has no host".into());
    }
    if url.contains('?')
        || url.contains('#')
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err("must not contain a query, fragment, spaces or control characters".into());
    }
    // The key is bound to this origin; a URL it cannot be read from
    // would otherwise be refused only later, after the outbox opened.
    if crate::http::origin::Origin::of(url).is_none() {
        return Err("has no usable host and port".into());
    }
    Ok((scheme.to_string(), host.to_string()))
}

fn host_of(authority: &str) -> &str {
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    authority.split(':').next().unwrap_or("")
}

/// True for hosts that never leave the machine.
pub(crate) fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}
