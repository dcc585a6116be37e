//! From the options to an open [`Client`]: the server, the policy, and the
//! checks that only the CLI can make (where a value came from, whether the
//! directory holds an outbox at all).

use clap::parser::ValueSource;
use clap::ArgMatches;
use fieldreport::{AbcConfig, ApptentiveConfig, Client, Config, Durability, Policy, ServerConfig};

use crate::args::{AbcImagesArg, DestinationArg, DurabilityArg, PolicyOpts, ServerOpts};
use crate::fail::{bad_input, Fail};

/// The outbox's database file: its presence tells an outbox from any other
/// directory (the library's own name for it, which an upgrade keeps).
const OUTBOX_DB: &str = "outbox.sqlite";

/// Whether a command may create the outbox.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Outbox {
    /// submit, crash, batch: the first report makes the outbox.
    Create,
    /// flush, status, retry, purge: a directory without an outbox is a
    /// mistyped path, not an empty queue.
    MustExist,
}

/// Opens the client that the options describe.
pub fn open(
    server: &ServerOpts,
    policy: &PolicyOpts,
    matches: &ArgMatches,
    outbox: Outbox,
) -> Result<Client, Fail> {
    let config = config(server, policy, matches)?;
    if outbox == Outbox::MustExist && !config.outbox_dir.join(OUTBOX_DB).exists() {
        return Err(bad_input(format!(
            "{} holds no outbox (no {OUTBOX_DB}): check --outbox (FIELDREPORT_OUTBOX); \
             submit, crash and batch create one",
            config.outbox_dir.display()
        )));
    }
    Ok(Client::open(config)?)
}

fn required<'a>(value: &'a Option<String>, option: &str, var: &str) -> Result<&'a str, Fail> {
    value
        .as_deref()
        .ok_or_else(|| bad_input(format!("{option} (or {var}) is required")))
}

/// Where a global option's value came from, wherever clap recorded it.
fn source(matches: &ArgMatches, id: &str) -> Option<ValueSource> {
    matches.value_source(id).or_else(|| {
        matches
            .subcommand()
            .and_then(|(_, sub)| sub.value_source(id))
    })
}

fn named(matches: &ArgMatches, id: &str, option: &str, var: &str) -> String {
    match source(matches, id) {
        Some(ValueSource::EnvVariable) => var.to_string(),
        _ => option.to_string(),
    }
}

/// The library configuration.
pub fn config(
    server: &ServerOpts,
    policy: &PolicyOpts,
    matches: &ArgMatches,
) -> Result<Config, Fail> {
    let outbox = server
        .outbox
        .as_ref()
        .ok_or_else(|| bad_input("--outbox (or FIELDREPORT_OUTBOX) is required"))?;
    let mut config = match server.destination {
        DestinationArg::Centercode => centercode(server, matches, outbox)?,
        other => other_destination(server, matches, outbox, other)?,
    };
    config.policy = rig_policy(policy)?;
    config.app.name = Some("fieldreport-cli".into());
    config.app.version = Some(fieldreport::VERSION.into());
    Ok(config)
}

/// Options that belong to another destination are refused, not ignored:
/// a rig that passes them expects them to mean something.
fn refuse_foreign(
    matches: &ArgMatches,
    destination: &str,
    foreign: &[(&str, &str, &str)],
) -> Result<(), Fail> {
    for (id, option, var) in foreign {
        if matches!(
            source(matches, id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            let named = named(matches, id, option, var);
            return Err(bad_input(format!(
                "{named} does not apply to --destination {destination}"
            )));
        }
    }
    Ok(())
}

/// An ABC or Apptentive destination.
fn other_destination(
    server: &ServerOpts,
    matches: &ArgMatches,
    outbox: &std::path::Path,
    destination: DestinationArg,
) -> Result<Config, Fail> {
    let base = required(&server.base_url, "--base-url", "FIELDREPORT_BASE_URL")?;
    let key = required(&server.api_key, "--api-key", "FIELDREPORT_API_KEY")?;
    let centercode_only = [
        ("company", "--company", "FIELDREPORT_COMPANY"),
        (
            "feedback_type",
            "--feedback-type",
            "FIELDREPORT_FEEDBACK_TYPE",
        ),
        (
            "client_id_field",
            "--client-id-field",
            "FIELDREPORT_CLIENT_ID_FIELD",
        ),
        ("lookup", "--lookup", "FIELDREPORT_LOOKUP"),
    ];
    let mut config = match destination {
        DestinationArg::Abc => {
            refuse_foreign(matches, "abc", &centercode_only)?;
            let project = required(&server.project, "--project", "FIELDREPORT_PROJECT")?;
            let channel = required(&server.channel, "--channel", "FIELDREPORT_CHANNEL")?;
            // Roles as the CLI names them (`device.os_name`): the library
            // reads the same names.
            let roles: Vec<(&str, &str)> = server
                .map
                .iter()
                .map(|(r, f)| (r.as_str(), f.as_str()))
                .collect();
            let abc = AbcConfig::new(base, project, channel, key, &roles)?;
            let abc = match server.abc_images {
                AbcImagesArg::Multipart => abc,
                AbcImagesArg::Presigned => abc.with_presigned_images(),
            };
            Config::abc(outbox, abc)
        }
        _ => {
            let mut foreign = centercode_only.to_vec();
            foreign.extend([
                ("project", "--project", "FIELDREPORT_PROJECT"),
                ("channel", "--channel", "FIELDREPORT_CHANNEL"),
                ("map", "--map", "FIELDREPORT_MAP"),
                ("abc_images", "--abc-images", "FIELDREPORT_ABC_IMAGES"),
            ]);
            refuse_foreign(matches, "apptentive", &foreign)?;
            Config::apptentive(outbox, ApptentiveConfig::new(base, key)?)
        }
    };
    config.server.allow_insecure_http = server.allow_insecure_http;
    Ok(config)
}

/// A Centercode destination.
fn centercode(
    server: &ServerOpts,
    matches: &ArgMatches,
    outbox: &std::path::Path,
) -> Result<Config, Fail> {
    refuse_foreign(
        matches,
        "centercode",
        &[
            ("channel", "--channel", "FIELDREPORT_CHANNEL"),
            ("map", "--map", "FIELDREPORT_MAP"),
            ("abc_images", "--abc-images", "FIELDREPORT_ABC_IMAGES"),
        ],
    )?;
    let project = required(&server.project, "--project", "FIELDREPORT_PROJECT")?;
    let feedback_type = required(
        &server.feedback_type,
        "--feedback-type",
        "FIELDREPORT_FEEDBACK_TYPE",
    )?;
    let api_key = required(&server.api_key, "--api-key", "FIELDREPORT_API_KEY")?;
    let mut server_config = match (&server.base_url, &server.company) {
        (Some(_), Some(_)) => {
            let company = named(matches, "company", "--company", "FIELDREPORT_COMPANY");
            let base = named(matches, "base_url", "--base-url", "FIELDREPORT_BASE_URL");
            return Err(bad_input(format!(
                "{company} and {base} both say where to deliver: give only one \
                 (a company means https://NAME.centercode.com/api/v1; \
                 a base URL, any other server)"
            )));
        }
        (Some(url), None) => ServerConfig::with_base_url(url, project, feedback_type, api_key),
        (None, Some(company)) => ServerConfig::centercode(company, project, feedback_type, api_key),
        (None, None) => {
            return Err(bad_input(
                "--base-url (FIELDREPORT_BASE_URL) or --company (FIELDREPORT_COMPANY) is required",
            ))
        }
    };
    server_config.allow_insecure_http = server.allow_insecure_http;
    server_config.client_id_field = server.client_id_field.clone();
    server_config.lookup_key = server.lookup.clone();
    Ok(Config::new(outbox, server_config))
}

/// The library's policy with the rig's limits; the library checks them at
/// open (its complaints are renamed to these options, see `fail`).
pub fn rig_policy(p: &PolicyOpts) -> Result<Policy, Fail> {
    let too_long = |option: &str| bad_input(format!("{option} is too long"));
    let mut policy = Policy::default();
    policy.max_bytes = p.max_outbox_bytes.0;
    policy.max_reports = p.max_reports;
    policy.max_age = p
        .max_age_days
        .days()
        .ok_or_else(|| too_long("--max-age-days"))?;
    policy.max_attachment_bytes = p.max_attachment_bytes.0;
    policy.max_attachments = p.max_attachments;
    policy.max_attempts = p.max_attempts;
    policy.retry_base = p
        .retry_base_secs
        .secs()
        .ok_or_else(|| too_long("--retry-base-secs"))?;
    policy.retry_max = p
        .retry_max_secs
        .secs()
        .ok_or_else(|| too_long("--retry-max-secs"))?;
    policy.request_timeout = p
        .request_timeout_secs
        .secs()
        .ok_or_else(|| too_long("--request-timeout-secs"))?;
    policy.connect_timeout = p
        .connect_timeout_secs
        .secs()
        .ok_or_else(|| too_long("--connect-timeout-secs"))?;
    policy.max_requests_per_sec = p.max_requests_per_sec;
    policy.durability = match p.durability {
        DurabilityArg::Full => Durability::Full,
        DurabilityArg::Normal => Durability::Normal,
    };
    Ok(policy)
}
