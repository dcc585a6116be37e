//! Apptentive's records API (`reference/apptentive-api.txt`, Records →
//! Creation): configuration, the record built from a report and the
//! meaning of the answers (sans-IO), plus (feature `sandbox`) a local
//! stand-in.

pub(crate) mod config;
pub(crate) mod translate;

#[cfg(feature = "sandbox")]
pub(crate) mod sandbox;
#[cfg(all(test, feature = "sandbox"))]
mod sandbox_tests;
