//! The ABC User Feedback server (`reference/abc-user-feedback-api.txt`,
//! and its source, `line/abc-user-feedback`): configuration, the requests
//! built from a report and the meaning of the answers (sans-IO), plus
//! (feature `sandbox`) a local stand-in.

pub(crate) mod config;
pub(crate) mod translate;

#[cfg(feature = "sandbox")]
pub(crate) mod sandbox;
#[cfg(all(test, feature = "sandbox"))]
pub(crate) mod sandbox_tests;
