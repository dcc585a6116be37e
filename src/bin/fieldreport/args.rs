//! The command line, declared with clap's derive: every command, option and
//! `FIELDREPORT_*` variable, and the value types that check them.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use fieldreport::Policy;
use serde_json::Value;

/// The outbox byte cap of a rig unless it says otherwise: a core dump of
/// Centercode's largest ("under 2 GB") with the room to spare for the logs
/// and reports beside it. The library's own default (256 MiB) is a phone's.
pub const RIG_MAX_OUTBOX_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// The largest attachment Centercode accepts, the library's default limit.
pub fn centercode_max_upload() -> u64 {
    Policy::default().max_attachment_bytes
}

const AFTER_HELP: &str = "\
Every option above the commands may come before or after the command; each
is also read from the FIELDREPORT_* variable shown (an empty one counts as
unset).

EXIT CODES
  0  done: every report and every attachment delivered (flush, status),
     or the command succeeded
  1  failure: storage or unexpected error
  2  bad configuration or input (nothing was changed), including a report
     that can never fit the caps (the message names the option to raise)
  3  reports still pending (flush, status)
  4  dead reports in the outbox (flush, status)
  5  reports delivered, but some of their attachments were rejected
     (flush: in this flush; status: among the reports still listed)
  When several apply, the first of 4, 5, 3 wins.";

/// `fieldreport`: queue feedback and crash logs, deliver them to Centercode,
/// an ABC User Feedback server or Apptentive.
#[derive(Parser, Debug)]
#[command(
    name = "fieldreport",
    version,
    about = "Queue feedback and crash logs, deliver them to Centercode, ABC User Feedback or Apptentive",
    arg_required_else_help = true,
    after_help = AFTER_HELP,
)]
pub struct Cli {
    /// Where the reports go and where they wait.
    #[command(flatten)]
    pub server: ServerOpts,
    /// The limits a rig tunes.
    #[command(flatten)]
    pub policy: PolicyOpts,
    /// No progress display on stderr (shown only on a terminal, and never
    /// with --json)
    #[arg(long, short = 'q', global = true, env = "FIELDREPORT_QUIET")]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The outbox and the server: required by every command that opens an outbox.
#[derive(Args, Debug)]
#[command(next_help_heading = "Outbox and server")]
pub struct ServerOpts {
    /// The server the reports go to
    #[arg(long, global = true, env = "FIELDREPORT_DESTINATION", value_enum,
          default_value_t = DestinationArg::Centercode)]
    pub destination: DestinationArg,
    /// Outbox directory (created by submit, crash and batch)
    #[arg(long, global = true, env = "FIELDREPORT_OUTBOX", value_name = "DIR")]
    pub outbox: Option<PathBuf>,
    /// API base URL (a sandbox, a proxy); conflicts with --company
    #[arg(long, global = true, env = "FIELDREPORT_BASE_URL", value_name = "URL")]
    pub base_url: Option<String>,
    /// Centercode company, for https://NAME.centercode.com/api/v1
    #[arg(long, global = true, env = "FIELDREPORT_COMPANY", value_name = "NAME")]
    pub company: Option<String>,
    /// Project: Centercode's project key, or ABC's numeric project id
    #[arg(long, global = true, env = "FIELDREPORT_PROJECT", value_name = "KEY")]
    pub project: Option<String>,
    /// ABC: the numeric channel id
    #[arg(long, global = true, env = "FIELDREPORT_CHANNEL", value_name = "N")]
    pub channel: Option<String>,
    /// ABC: the channel field that receives a part of each report; ROLE is
    /// summary, description, submitter, crash_log, client_id, images, or a
    /// context item as BLOCK.KEY (device.os_name, app_version.version,
    /// client.version, ...). FIELDREPORT_MAP takes comma-separated pairs
    #[arg(long = "map", global = true, env = "FIELDREPORT_MAP", value_name = "ROLE=FIELD",
          value_delimiter = ',', value_parser = parse_map)]
    pub map: Vec<(String, String)>,
    /// ABC: how images are sent: multipart (one create with the files), or
    /// presigned (each PUT to the URL ABC signs, for a store that does not
    /// enforce the empty-body checksum in it)
    #[arg(long, global = true, env = "FIELDREPORT_ABC_IMAGES", value_enum,
          default_value_t = AbcImagesArg::Multipart, value_name = "HOW")]
    pub abc_images: AbcImagesArg,
    /// Feedback source (feedback type) key
    #[arg(
        long,
        global = true,
        env = "FIELDREPORT_FEEDBACK_TYPE",
        value_name = "KEY"
    )]
    pub feedback_type: Option<String>,
    /// API key (never printed)
    #[arg(
        long,
        global = true,
        env = "FIELDREPORT_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub api_key: Option<String>,
    /// Allow http:// to a host other than loopback (the API key then travels
    /// in clear text)
    #[arg(
        long,
        global = true,
        env = "FIELDREPORT_ALLOW_INSECURE_HTTP",
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    pub allow_insecure_http: bool,
    /// Feedback field that carries each report's UUID; with --lookup, an
    /// answer lost after a create is looked up instead of posted again
    #[arg(
        long,
        global = true,
        env = "FIELDREPORT_CLIENT_ID_FIELD",
        value_name = "FIELD"
    )]
    pub client_id_field: Option<String>,
    /// Project Feedback Lookup key used with --client-id-field
    #[arg(long, global = true, env = "FIELDREPORT_LOOKUP", value_name = "KEY")]
    pub lookup: Option<String>,
}

/// The `Policy` limits a rig tunes; defaults are a rig's (see each).
#[derive(Args, Debug)]
#[command(next_help_heading = "Limits (SIZE: bytes, or with kB MB GB KiB MiB GiB)")]
pub struct PolicyOpts {
    /// Most bytes kept for undelivered reports; a report larger than this
    /// is refused (exit 2)
    #[arg(long, global = true, env = "FIELDREPORT_MAX_OUTBOX_BYTES", value_name = "SIZE",
          default_value_t = ByteSize(RIG_MAX_OUTBOX_BYTES))]
    pub max_outbox_bytes: ByteSize,
    /// Most undelivered reports kept
    #[arg(long, global = true, env = "FIELDREPORT_MAX_REPORTS", value_name = "N",
          default_value_t = Policy::default().max_reports)]
    pub max_reports: u32,
    /// Undelivered reports older than this are evicted
    #[arg(long, global = true, env = "FIELDREPORT_MAX_AGE_DAYS", value_name = "DAYS",
          default_value_t = Secs(Policy::default().max_age.as_secs_f64() / 86_400.0))]
    pub max_age_days: Secs,
    /// Largest attachment; at most Centercode's limit (under 2 GB)
    #[arg(long, global = true, env = "FIELDREPORT_MAX_ATTACHMENT_BYTES", value_name = "SIZE",
          default_value_t = ByteSize(centercode_max_upload()))]
    pub max_attachment_bytes: ByteSize,
    /// Most attachments on one report
    #[arg(long, global = true, env = "FIELDREPORT_MAX_ATTACHMENTS", value_name = "N",
          default_value_t = Policy::default().max_attachments)]
    pub max_attachments: u32,
    /// Failed attempts before a report is dead
    #[arg(long, global = true, env = "FIELDREPORT_MAX_ATTEMPTS", value_name = "N",
          default_value_t = Policy::default().max_attempts)]
    pub max_attempts: u32,
    /// First retry delay, doubled at each attempt (full jitter)
    #[arg(long, global = true, env = "FIELDREPORT_RETRY_BASE_SECS", value_name = "SECS",
          default_value_t = Secs(Policy::default().retry_base.as_secs_f64()))]
    pub retry_base_secs: Secs,
    /// Longest retry delay
    #[arg(long, global = true, env = "FIELDREPORT_RETRY_MAX_SECS", value_name = "SECS",
          default_value_t = Secs(Policy::default().retry_max.as_secs_f64()))]
    pub retry_max_secs: Secs,
    /// Timeout of a request's answer (an upload also gets its size over
    /// 16 KiB/s)
    #[arg(long, global = true, env = "FIELDREPORT_REQUEST_TIMEOUT_SECS", value_name = "SECS",
          default_value_t = Secs(Policy::default().request_timeout.as_secs_f64()))]
    pub request_timeout_secs: Secs,
    /// TCP connect timeout
    #[arg(long, global = true, env = "FIELDREPORT_CONNECT_TIMEOUT_SECS", value_name = "SECS",
          default_value_t = Secs(Policy::default().connect_timeout.as_secs_f64()))]
    pub connect_timeout_secs: Secs,
    /// Requests per second, shared by every process on this outbox
    /// (Centercode allows 10); 0 switches the limiter off
    #[arg(long, global = true, env = "FIELDREPORT_MAX_REQUESTS_PER_SEC", value_name = "N",
          default_value_t = Policy::default().max_requests_per_sec)]
    pub max_requests_per_sec: u32,
    /// full: a submit survives a power cut; normal: a process kill only
    #[arg(long, global = true, env = "FIELDREPORT_DURABILITY", value_enum,
          default_value_t = DurabilityArg::Full)]
    pub durability: DurabilityArg,
}

/// `--durability`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    /// Survives a power cut (fsync everything).
    Full,
    /// Survives a process kill.
    Normal,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Queue feedback; prints the local report id
    Submit(SubmitArgs),
    /// Queue a crash log (gzip-compressed, bound to CrashLog); prints the id
    Crash(CrashArgs),
    /// Queue many reports at once, all or nothing, from JSON Lines
    #[command(long_about = BATCH_HELP)]
    Batch(BatchArgs),
    /// Deliver what is due
    Flush(FlushArgs),
    /// Queue statistics, or one report
    Status(StatusArgs),
    /// Put a dead report back in the queue
    Retry {
        /// The local report id
        id: i64,
    },
    /// Delete one report
    Purge {
        /// The local report id
        id: i64,
    },
    /// Run the local Centercode sandbox (key sandbox-key, project WidgetPro,
    /// feedback type Mobile)
    Sandbox(SandboxArgs),
    /// Start a sandbox (of the --destination's kind), submit a feedback
    /// with a screenshot and a crash log, flush, print the created keys
    Demo,
    /// Print a shell completion script (e.g. `fieldreport completions bash
    /// > /etc/bash_completion.d/fieldreport`)
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
}

const BATCH_HELP: &str = "\
Queue many reports at once, all or nothing, from a JSON Lines file (- for
stdin); prints one id a line.

Each line is an object: {\"summary\": S, \"description\": D, \"submitter\": E,
\"fields\": {NAME: VALUE}, \"attach\": {ELEMENT: PATH or [PATH, ...]}}; with
\"crash_log\": PATH it is a crash report (summary optional). Blank lines are
skipped; unknown keys are refused.";

/// What `submit` and `crash` share.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Longer text
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// Who reports it (an e-mail address)
    #[arg(long, value_name = "EMAIL")]
    pub submitter: Option<String>,
    /// A field of the feedback source; a VALUE that parses as JSON (23795,
    /// true, "x") is sent as that JSON value, anything else as a string
    #[arg(long = "field", value_name = "NAME=VALUE", value_parser = parse_field)]
    pub fields: Vec<(String, Value)>,
    /// A file bound to a file element of the feedback source
    #[arg(long = "attach", value_name = "ELEMENT=PATH", value_parser = parse_attach)]
    pub attachments: Vec<(String, PathBuf)>,
    /// Print {"id": N} instead of the bare id
    #[arg(long)]
    pub json: bool,
}

/// `submit`.
#[derive(Args, Debug)]
pub struct SubmitArgs {
    /// The title
    #[arg(long, value_name = "TEXT")]
    pub summary: String,
    #[command(flatten)]
    pub report: ReportArgs,
}

/// `crash`.
#[derive(Args, Debug)]
pub struct CrashArgs {
    /// The crash log file
    #[arg(long, value_name = "PATH")]
    pub log: PathBuf,
    /// The title (default: the log's first line)
    #[arg(long, value_name = "TEXT")]
    pub summary: Option<String>,
    #[command(flatten)]
    pub report: ReportArgs,
}

/// `batch`.
#[derive(Args, Debug)]
pub struct BatchArgs {
    /// The JSON Lines file, or - for stdin
    pub file: String,
    /// Print {"ids": [...]} instead of one id a line
    #[arg(long)]
    pub json: bool,
}

/// `flush`.
#[derive(Args, Debug)]
pub struct FlushArgs {
    /// Time budget
    #[arg(long, value_name = "SECS", default_value_t = Secs(60.0))]
    pub timeout: Secs,
    /// Print the receipts as JSON
    #[arg(long)]
    pub json: bool,
}

/// `status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// One report instead of the queue
    #[arg(long, value_name = "N")]
    pub id: Option<i64>,
    /// Print JSON (times as Unix seconds)
    #[arg(long)]
    pub json: bool,
}

/// `sandbox`.
#[derive(Args, Debug)]
pub struct SandboxArgs {
    /// TCP port on 127.0.0.1; 0 picks a free one
    #[arg(long, default_value_t = 8480)]
    pub port: u16,
    /// Which server to stand in for
    #[arg(long, value_enum, default_value_t = SandboxKindArg::Centercode)]
    pub kind: SandboxKindArg,
}

/// The servers reports can go to.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestinationArg {
    /// Centercode (--company or --base-url, --project, --feedback-type)
    Centercode,
    /// an ABC User Feedback server (--base-url of its root, --project N,
    /// --channel N, --map ROLE=FIELD)
    Abc,
    /// Apptentive's records API (--base-url, --api-key with the OAuth token)
    Apptentive,
}

/// How an ABC destination sends images.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbcImagesArg {
    /// the files in one multipart create (POST .../feedbacks-with-images)
    Multipart,
    /// each file PUT to a presigned URL, then a JSON create with their URLs
    Presigned,
}

fn parse_map(spec: &str) -> Result<(String, String), String> {
    let (role, field) = spec
        .split_once('=')
        .ok_or_else(|| format!("{spec:?} must be ROLE=FIELD"))?;
    Ok((role.trim().to_string(), field.trim().to_string()))
}

/// The servers a sandbox can stand in for.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SandboxKindArg {
    /// Centercode's External Feedback API
    Centercode,
    /// the ABC User Feedback server
    Abc,
    /// Apptentive's records API
    Apptentive,
}

fn parse_field(spec: &str) -> Result<(String, Value), String> {
    let (name, raw) = spec
        .split_once('=')
        .ok_or_else(|| format!("{spec:?} must be NAME=VALUE"))?;
    let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::from(raw));
    Ok((name.to_string(), value))
}

fn parse_attach(spec: &str) -> Result<(String, PathBuf), String> {
    let (element, path) = spec
        .split_once('=')
        .ok_or_else(|| format!("{spec:?} must be ELEMENT=PATH"))?;
    Ok((element.to_string(), PathBuf::from(path)))
}

/// A number of bytes, written plain or with a unit (`500MB`, `4GiB`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

const UNITS: &[(&str, u64)] = &[
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("kB", 1_000),
    ("B", 1),
];

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (number, unit) = UNITS
            .iter()
            .find_map(|(name, n)| s.strip_suffix(name).map(|rest| (rest.trim(), *n)))
            .unwrap_or((s, 1));
        let bad = || format!("{s:?} is not a size (bytes, or a number with kB MB GB KiB MiB GiB)");
        let n: u64 = number.parse().map_err(|_| bad())?;
        n.checked_mul(unit).map(ByteSize).ok_or_else(bad)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The largest binary unit that divides it: what a person wrote.
        for (name, n) in &UNITS[..3] {
            if self.0 >= *n && self.0.is_multiple_of(*n) {
                return write!(f, "{}{name}", self.0 / n);
            }
        }
        write!(f, "{}", self.0)
    }
}

/// A non-negative, finite number of seconds (or days, for `--max-age-days`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Secs(pub f64);

impl Secs {
    /// As a duration of seconds; `None` when too long to represent.
    pub fn secs(self) -> Option<Duration> {
        Duration::try_from_secs_f64(self.0).ok()
    }
    /// As a duration of days.
    pub fn days(self) -> Option<Duration> {
        Duration::try_from_secs_f64(self.0 * 86_400.0).ok()
    }
}

impl FromStr for Secs {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(Secs)
            .ok_or_else(|| format!("{s:?} is not a number (0 or more)"))
    }
}

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_parse_with_and_without_units() {
        for (text, want) in [
            ("1000", 1000),
            ("4GiB", 4 << 30),
            ("500 MB", 500_000_000),
            ("2kB", 2000),
            ("3KiB", 3072),
            ("7B", 7),
        ] {
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(want)), "{text}");
        }
        for bad in ["", "-1", "1.5GiB", "4TB", "lots", "99999999999GiB"] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad}");
        }
        assert_eq!(ByteSize(4 << 30).to_string(), "4GiB");
        assert_eq!(ByteSize(2_147_483_647).to_string(), "2147483647");
        assert_eq!(ByteSize(1536).to_string(), "1536");
    }

    #[test]
    fn seconds_refuse_negatives_and_nan() {
        assert_eq!("2.5".parse::<Secs>(), Ok(Secs(2.5)));
        for bad in ["-1", "NaN", "inf", "soon", ""] {
            assert!(bad.parse::<Secs>().is_err(), "{bad}");
        }
        assert_eq!(Secs(1e300).secs(), None);
        assert_eq!(Secs(1.0).days(), Some(Duration::from_secs(86_400)));
    }

    #[test]
    fn the_rig_defaults_fit_a_2_gb_core() {
        let cli = Cli::try_parse_from(["fieldreport", "status"]).unwrap();
        let max = cli.policy.max_outbox_bytes.0;
        let core = cli.policy.max_attachment_bytes.0;
        assert_eq!(core, centercode_max_upload());
        assert!(
            max > core + 64 * 1024 * 1024,
            "{max} leaves room beside {core}"
        );
    }
}
