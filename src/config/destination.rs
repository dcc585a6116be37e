//! Which server a client delivers to. Centercode is described by
//! [`Config::server`](crate::Config::server); the others carry their own
//! settings, checked when made.

pub use crate::destinations::abc::config::AbcConfig;
pub use crate::destinations::apptentive::config::ApptentiveConfig;

/// The server a client's reports go to. Each report records the
/// destination it was queued for and is only ever sent there.
// Variants may be added in a minor release.
#[non_exhaustive]
#[derive(Debug, Clone, Default)]
pub enum Destination {
    /// Centercode, as [`Config::server`](crate::Config::server) describes it.
    #[default]
    Centercode,
    /// An ABC User Feedback server.
    Abc(AbcConfig),
    /// Apptentive's records API.
    Apptentive(ApptentiveConfig),
}

impl Destination {
    /// `centercode`, `abc` or `apptentive`.
    pub fn kind(&self) -> &'static str {
        match self {
            Destination::Centercode => "centercode",
            Destination::Abc(_) => "abc",
            Destination::Apptentive(_) => "apptentive",
        }
    }

    /// The base URL and secret of a destination other than Centercode.
    pub(crate) fn other_server(&self) -> Option<(&str, &str)> {
        match self {
            Destination::Centercode => None,
            Destination::Abc(c) => Some((&c.base_url, c.api_key())),
            Destination::Apptentive(c) => Some((&c.base_url, c.token())),
        }
    }

    /// The name the outbox records reports under: the server and the
    /// place on it, never the secret (a new key must not strand the queue).
    pub(crate) fn outbox_name(&self) -> Option<String> {
        match self {
            Destination::Centercode => None,
            Destination::Abc(c) => Some(format!(
                "abc {}/api/projects/{}/channels/{}",
                c.base_url, c.project_id, c.channel_id
            )),
            Destination::Apptentive(c) => Some(format!("apptentive {}/records", c.base_url)),
        }
    }
}
