//! The uniffi layer: the records, enums, error and callback interface that
//! `uniffi.udl` declares, and `FieldReportClient`, a thin wrapper over
//! [`crate::Client`]. Everything here converts to and from the core types;
//! nothing in the core knows of uniffi.
//!
//! The scaffolding is included in this module, not at the crate root,
//! because the UDL's names (`Config`, `Feedback`, `Attachment`, ...) are
//! the names foreign code should see, and they would clash with the core
//! types of the same names re-exported at the crate root.
//!
//! Panics: uniffi catches a panic in any exported call and raises it in the
//! foreign language as an internal error (this needs `panic = "unwind"`).

// Shared by the parts below, each of which starts with `use super::*`:
// the scaffolding sees every UDL name here, as one module.
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config as core_config;
use crate::report as core_report;
use crate::transport as core_transport;
use crate::Error as CoreError;

mod callbacks;
mod client;
mod config;
mod destination;
mod error;
mod input;
mod output;
#[cfg(test)]
mod tests;
pub use callbacks::*;
pub use client::*;
pub use config::*;
pub use destination::{AbcDestination, ApptentiveDestination};
pub use error::*;
pub use input::*;
pub use output::*;

uniffi::include_scaffolding!("uniffi");

/// The library's version.
fn version() -> String {
    crate::VERSION.to_string()
}
