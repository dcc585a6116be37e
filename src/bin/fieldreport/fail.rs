//! Exit codes, and the library's errors as a rig should read them: the
//! code to act on and, where an option would fix it, that option's name.

use fieldreport::Error;

use crate::args::centercode_max_upload;

/// Done: every report and every attachment delivered, or the command succeeded.
pub const EXIT_OK: u8 = 0;
/// Storage or unexpected failure.
pub const EXIT_FAILURE: u8 = 1;
/// Bad configuration or input; nothing was changed.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Reports still pending.
pub const EXIT_PENDING: u8 = 3;
/// Dead reports in the outbox.
pub const EXIT_DEAD: u8 = 4;
/// Reports delivered with some of their attachments rejected.
pub const EXIT_ATTACHMENTS_REJECTED: u8 = 5;

/// A failed command: its exit code and what to print.
#[derive(Debug)]
pub struct Fail(pub u8, pub String);

/// A bad-input failure (exit 2).
pub fn bad_input(msg: impl Into<String>) -> Fail {
    Fail(EXIT_BAD_INPUT, msg.into())
}

/// The exit code of a queue: dead first, then rejected attachments, then
/// pending (permanent losses before what a later flush may still send).
pub fn exit_for(pending: u64, dead: u64, rejected: u64) -> u8 {
    if dead > 0 {
        EXIT_DEAD
    } else if rejected > 0 {
        EXIT_ATTACHMENTS_REJECTED
    } else if pending > 0 {
        EXIT_PENDING
    } else {
        EXIT_OK
    }
}

/// The library's names for what the CLI sets with an option.
const OPTION_NAMES: &[(&str, &str)] = &[
    ("policy.max_bytes", "--max-outbox-bytes"),
    ("policy.max_reports", "--max-reports"),
    ("policy.max_attachment_bytes", "--max-attachment-bytes"),
    ("policy.retry_base", "--retry-base-secs"),
    ("policy.retry_max", "--retry-max-secs"),
    ("retry_max", "--retry-max-secs"),
    ("policy.max_attempts", "--max-attempts"),
    (
        "policy timeouts",
        "--request-timeout-secs and --connect-timeout-secs",
    ),
    ("policy.max_age", "--max-age-days"),
    ("policy.request_timeout", "--request-timeout-secs"),
    ("policy.connect_timeout", "--connect-timeout-secs"),
    ("client_id_field", "--client-id-field"),
    ("lookup_key", "--lookup"),
    ("set allow_insecure_http", "add --allow-insecure-http"),
];

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        match &e {
            Error::InvalidConfig { .. } => {
                let mut msg = e.to_string();
                for (library, cli) in OPTION_NAMES {
                    msg = msg.replace(library, cli);
                }
                bad_input(msg)
            }
            Error::AttachmentTooLarge { size, limit, .. } => {
                let hint = if *size > centercode_max_upload() {
                    "; Centercode accepts files under 2 GB: compress or split it".to_string()
                } else {
                    format!(
                        "; raise --max-attachment-bytes (FIELDREPORT_MAX_ATTACHMENT_BYTES) to {size} or more (at most {}, Centercode's limit)",
                        centercode_max_upload().max(*limit)
                    )
                };
                bad_input(format!("{e}{hint}"))
            }
            Error::OutboxFull { reason } => match never_fits(reason) {
                Some(hint) => bad_input(format!("{e}; it can never fit: {hint}")),
                // Full right now, of feedback that is never evicted: a flush
                // (or a purge) makes room.
                None => Fail(
                    EXIT_FAILURE,
                    format!("{e}; deliver what is queued (flush) or purge, or raise --max-outbox-bytes / --max-reports"),
                ),
            },
            Error::InvalidInput { .. }
            | Error::AttachmentUnreadable { .. }
            | Error::NotFound { .. }
            | Error::InvalidState { .. } => bad_input(e.to_string()),
            _ => Fail(EXIT_FAILURE, e.to_string()),
        }
    }
}

/// For an `OutboxFull` that no emptying of the outbox would cure, the
/// option to raise. The library tells the two apart only in its wording:
/// a report or batch "more than the outbox's cap" is larger than the cap
/// itself, whereas a full outbox "holds its cap". tests/cli.rs checks both.
fn never_fits(reason: &str) -> Option<String> {
    if !reason.contains("more than the outbox's cap of") {
        return None;
    }
    Some(if reason.trim_end().ends_with("reports") {
        "raise --max-reports (FIELDREPORT_MAX_REPORTS) or send a smaller batch".into()
    } else {
        "raise --max-outbox-bytes (FIELDREPORT_MAX_OUTBOX_BYTES) above the size the report needs"
            .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_put_losses_before_waiting() {
        assert_eq!(exit_for(0, 0, 0), EXIT_OK);
        assert_eq!(exit_for(2, 0, 0), EXIT_PENDING);
        assert_eq!(exit_for(2, 0, 1), EXIT_ATTACHMENTS_REJECTED);
        assert_eq!(exit_for(2, 1, 1), EXIT_DEAD);
    }

    #[test]
    fn a_report_over_the_cap_is_bad_input_naming_the_option() {
        let e = Error::OutboxFull {
            reason:
                "the report needs 524288028 bytes, more than the outbox's cap of 268435456 bytes"
                    .into(),
        };
        let Fail(code, msg) = e.into();
        assert_eq!(code, EXIT_BAD_INPUT);
        assert!(msg.contains("--max-outbox-bytes"), "{msg}");
        let e = Error::OutboxFull {
            reason: "the outbox holds its cap of 500 reports in feedback that people typed, which is never evicted to make room".into(),
        };
        let Fail(code, msg) = e.into();
        assert_eq!(code, EXIT_FAILURE, "full right now is not bad input");
        assert!(msg.contains("flush"), "{msg}");
    }

    #[test]
    fn config_errors_name_the_cli_options() {
        let e = Error::InvalidConfig {
            reason: "client_id_field and lookup_key go together: set both or neither".into(),
        };
        let Fail(code, msg) = e.into();
        assert_eq!(code, EXIT_BAD_INPUT);
        assert!(
            msg.contains("--client-id-field and --lookup go together"),
            "{msg}"
        );
    }
}
