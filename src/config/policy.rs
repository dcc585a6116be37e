//! The one policy that holds every limit, each with why it is set so.

use std::time::Duration;

use super::CENTERCODE_MAX_UPLOAD;
use crate::error::{Internal, Result};

/// How hard `submit` works to make a report survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Survives process kill and power loss: SQLite `synchronous=FULL`,
    /// attachment files and their directory fsynced. The default.
    Full,
    /// Survives a process kill, not necessarily power loss: SQLite
    /// `synchronous=NORMAL` in WAL mode, no fsync of attachment files.
    Normal,
}

/// Every limit the library enforces, in one place.
// Fields may be added in a minor release: build it with its
// constructor and set fields, never with a struct literal.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct Policy {
    /// Most undelivered reports kept; beyond it, machine-made reports are
    /// evicted first. A few hundred reports is weeks of heavy use offline.
    pub max_reports: u32,
    /// Most bytes (bodies plus attachment copies) kept for undelivered
    /// reports. 256 MiB: a handful of core dumps on a test rig.
    pub max_bytes: u64,
    /// Undelivered reports older than this are evicted (and counted): a
    /// month-old report rarely helps anyone, and storage is the user's.
    pub max_age: Duration,
    /// Largest single attachment accepted at submit; Centercode's own limit
    /// is "under 2 GB", and this may not exceed it.
    pub max_attachment_bytes: u64,
    /// Most attachments on one report.
    pub max_attachments: u32,
    /// Longest summary, in characters: a summary is a title, not a log.
    pub max_summary_chars: u32,
    /// Longest description, in characters.
    pub max_description_chars: u32,
    /// Most extra fields on one report.
    pub max_fields: u32,
    /// Largest extra field value, as serialized JSON bytes.
    pub max_field_bytes: u32,
    /// First retry delay; doubles with each attempt (full jitter).
    pub retry_base: Duration,
    /// Cap on the retry delay, so a report is tried at least this often.
    pub retry_max: Duration,
    /// Attempts (failed deliveries that may retry) before a report is made
    /// `dead`; at the defaults, about two days of trying.
    pub max_attempts: u32,
    /// Client-side request rate, shared by creates and uploads across
    /// threads and processes; Centercode documents 10 per second per IP.
    /// `0` switches the limiter off (sandbox benchmarks only).
    pub max_requests_per_sec: u32,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Timeout for a create request and for waiting on any response.
    pub request_timeout: Duration,
    /// Slowest upload throughput tolerated, in bytes per second; an upload
    /// gets `request_timeout` plus its size over this rate.
    pub min_upload_bytes_per_sec: u64,
    /// On a metered network (as the app reports it), attachments larger
    /// than this wait for an unmetered one; reports without them still go.
    pub metered_max_upload_bytes: u64,
    /// While delivery is paused for a rejected API key (401/403), one probe
    /// is made this often; a new key resumes delivery at once.
    pub auth_probe_interval: Duration,
    /// How often the background sender wakes without being asked.
    pub sender_interval: Duration,
    /// Time budget of each background flush.
    pub sender_flush_budget: Duration,
    /// How long delivered and evicted reports stay listed before their rows
    /// are pruned (their attachment copies are removed on delivery).
    pub keep_delivered: Duration,
    /// How long a call waits on a database locked by another process.
    pub busy_timeout: Duration,
    /// Submit durability.
    pub durability: Durability,
    /// Disk space held in reserve in the outbox folder (a file of zeros,
    /// made at open while there is room). When the disk fills up, `submit`
    /// is refused but delivery gives the reserve up, so that the reports
    /// already queued can still be sent, and their copies deleted, which
    /// frees the disk. Made again once there is room. `0`: no reserve.
    pub disk_reserve_bytes: u64,
}

/// The longest duration any policy field may hold (100 years).
const MAX_POLICY_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_reports: 500,
            max_bytes: 256 * 1024 * 1024,
            max_age: Duration::from_secs(30 * 24 * 3600),
            max_attachment_bytes: CENTERCODE_MAX_UPLOAD,
            max_attachments: 32,
            max_summary_chars: 1_000,
            max_description_chars: 100_000,
            max_fields: 64,
            max_field_bytes: 64 * 1024,
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(3600),
            max_attempts: 60,
            max_requests_per_sec: 10,
            connect_timeout: Duration::from_secs(15),
            request_timeout: Duration::from_secs(60),
            min_upload_bytes_per_sec: 16 * 1024,
            metered_max_upload_bytes: 1024 * 1024,
            auth_probe_interval: Duration::from_secs(3600),
            sender_interval: Duration::from_secs(300),
            sender_flush_budget: Duration::from_secs(120),
            keep_delivered: Duration::from_secs(7 * 24 * 3600),
            busy_timeout: Duration::from_secs(10),
            durability: Durability::Full,
            disk_reserve_bytes: 1024 * 1024,
        }
    }
}

impl Policy {
    pub(super) fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Internal::Config(what.to_string()));
        if self.max_reports == 0 {
            return bad("policy.max_reports must be at least 1");
        }
        if self.max_bytes == 0 {
            return bad("policy.max_bytes must be at least 1");
        }
        if self.max_attachment_bytes == 0 || self.max_attachment_bytes > CENTERCODE_MAX_UPLOAD {
            return bad(
                "policy.max_attachment_bytes must be between 1 and 2 GB - 1 (Centercode's limit)",
            );
        }
        if self.max_summary_chars == 0 {
            return bad("policy.max_summary_chars must be at least 1");
        }
        if self.retry_base.is_zero() || self.retry_max < self.retry_base {
            return bad("policy.retry_base must be positive and not above retry_max");
        }
        if self.max_attempts == 0 {
            return bad("policy.max_attempts must be at least 1");
        }
        if self.connect_timeout.is_zero() || self.request_timeout.is_zero() {
            return bad("policy timeouts must be positive");
        }
        if self.min_upload_bytes_per_sec == 0 {
            return bad("policy.min_upload_bytes_per_sec must be positive");
        }
        if self.sender_interval.is_zero() || self.sender_flush_budget.is_zero() {
            return bad("policy.sender_interval and sender_flush_budget must be positive");
        }
        // Times are stored as milliseconds and added to the clock: a
        // duration beyond this would overflow them, or date a retry past the
        // year 9999 that the bindings' date types end at.
        for (name, d) in [
            ("max_age", self.max_age),
            ("retry_base", self.retry_base),
            ("retry_max", self.retry_max),
            ("connect_timeout", self.connect_timeout),
            ("request_timeout", self.request_timeout),
            ("auth_probe_interval", self.auth_probe_interval),
            ("sender_interval", self.sender_interval),
            ("sender_flush_budget", self.sender_flush_budget),
            ("keep_delivered", self.keep_delivered),
        ] {
            if d > MAX_POLICY_DURATION {
                return Err(Internal::Config(format!(
                    "policy.{name} must be at most 100 years"
                )));
            }
        }
        // The reserve is written at open; more than this would be a disk
        // filled on purpose.
        if self.disk_reserve_bytes > 64 * 1024 * 1024 {
            return bad("policy.disk_reserve_bytes must be at most 64 MiB");
        }
        // SQLite takes its busy timeout in milliseconds as a C int.
        if self.busy_timeout.as_millis() > i32::MAX as u128 {
            return bad("policy.busy_timeout must be at most 24 days (2,147,483,647 ms)");
        }
        Ok(())
    }
}
