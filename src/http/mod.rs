//! The HTTP layer: the app's own client ([`transport`]), the builtin one
//! (ureq, with a caching name resolver), and the one place that sends a
//! request through either.

pub(crate) mod origin;
pub(crate) mod progress;
#[cfg(feature = "builtin-http")]
pub(crate) mod resolver;
pub(crate) mod server;
pub mod transport;
