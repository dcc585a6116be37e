//! # fieldreport
//!
//! Capture user feedback and crash logs in an app and deliver them, with
//! their attachments, to a Centercode feedback server — without losing
//! them to a killed process, a dead network or a rate-limiting server, and
//! without posting any of them twice.
//!
//! ```no_run
//! use std::time::Duration;
//! use fieldreport::{Attachment, Client, Config, CrashReport, Feedback, ServerConfig};
//!
//! # fn main() -> Result<(), fieldreport::Error> {
//! let server = ServerConfig::centercode("acme", "WidgetPro", "Mobile", "API-KEY");
//! let client = Client::open(Config::new("/data/app/feedback-outbox", server))?;
//!
//! // Durable on return; no network call.
//! let id = client.submit(
//!     Feedback::new("Lighting presets should be more robust")
//!         .description("I wish the app had more lighting presets.")
//!         .submitter("jim@example.com")
//!         .field("topic", 23795.into())
//!         .attach(Attachment::from_path("Screenshot", "/tmp/screen.png")),
//! )?;
//! client.submit_crash(CrashReport::from_text("thread 'main' panicked at ..."))?;
//!
//! // Deliver now (or call `client.start_sender()` once and let it run).
//! for receipt in client.flush(Duration::from_secs(30))?.receipts {
//!     println!("{} -> {:?} {:?}", receipt.id, receipt.state, receipt.server_key);
//! }
//! # let _ = id; Ok(()) }
//! ```
//!
//! ## The path of a report
//! `submit` copies attachments into the outbox (temp name, fsync, rename)
//! and commits the report in one SQLite transaction. `flush` posts the
//! feedback, stores the server's key and `fileElements` before anything
//! else, then uploads each attachment to its element, streamed from disk.
//! States: `Queued` → `Created` → `Delivered`; a permanent failure makes a
//! report `Dead` (kept, explained, retriable); a storage cap makes it
//! `Evicted` (counted, explained).
//!
//! ## Failures
//! Network errors, timeouts, 408, 429 and 5xx are retried with capped
//! exponential backoff and full jitter (429 waits for `X-Rate-Limit-Reset`
//! or `Retry-After`) and stop the flush. 400/404/413/415/422 make the report
//! dead with the server's `description` and `invalidParameters`. 401/403
//! pause all delivery, spending no attempt, until a new key is set or the
//! probe interval passes.
//!
//! ## Modules
//! [`config`] (what to open, and the [`Policy`] holding every limit),
//! [`report`] (what goes in and comes out), [`transport`] (the app's own
//! HTTP client, when it brings one), [`sandbox`] (a local Centercode
//! stand-in for tests and offline work). The C ABI lives in `ffi`.

#![warn(missing_docs)]

// The parts, dependencies pointing inward: `model` and `outbox` know no
// server; `delivery` is the one engine; `destinations` holds each server's
// translator; `http` sends; `ffi` and `foreign` are thin layers over
// `client`.
mod client;
pub mod config;
mod delivery;
mod destinations;
mod error;
/// The C ABI (`fieldreport_*` functions); the header is `bindings/c/fieldreport.h`.
pub mod ffi;
mod foreign;
mod http;
mod model;
mod outbox;
/// Local stand-ins for the destination servers (feature `sandbox`): for
/// tests and offline work, never part of the shipped library.
#[cfg(feature = "sandbox")]
pub mod sandbox;

pub use http::transport;
pub use model::report;
// Short paths for the crate's own use.
#[cfg(feature = "builtin-http")]
use http::resolver;
use http::server;
use model::{context, json};

pub use client::Client;
pub use config::{
    AbcConfig, ApiKey, AppInfo, ApptentiveConfig, Config, Destination, Durability, Policy,
    ServerConfig,
};
pub use error::Error;
pub use report::{
    Attachment, AttachmentSource, AttachmentState, AttachmentStatus, CrashLog, CrashReport,
    DeliveryError, Event, Feedback, FlushResult, InvalidParameter, Listener, Receipt, ReportFilter,
    ReportId, ReportKind, ReportState, ReportStatus, Stats, Submission,
};
pub use transport::{HttpBody, HttpRequest, HttpResponse, Transport, TransportError};

// The uniffi scaffolding is included in `foreign` (its record names would
// clash with the core types above); its `UniFfiTag` must be at the root.
use foreign::UniFfiTag;

/// The library's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Cases per property test in the library's own `proptests` modules: 512,
/// or 20 000 with `FIELDREPORT_FULL=1` (the full reliability run).
#[cfg(test)]
pub(crate) fn proptest_cases() -> u32 {
    let full = std::env::var("FIELDREPORT_FULL").is_ok_and(|v| !v.is_empty() && v != "0");
    if full {
        20_000
    } else {
        512
    }
}
