//! `fieldreport`: the command-line tool for test rigs and for trying the
//! library. Run `fieldreport help` (or `fieldreport COMMAND --help`).
//!
//! - `args`: the command line (clap derive), options and their variables;
//! - `setup`: from options to an open client;
//! - `fail`: exit codes, and library errors as a rig reads them;
//! - `queue`, `deliver`, `sandbox`: the commands;
//! - `output`, `human`: JSON shapes, and times for people.

mod args;
mod deliver;
mod fail;
mod human;
mod output;
mod progress;
mod queue;
mod sandbox;
mod setup;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use args::{Cli, Command};
use fail::{bad_input, Fail, EXIT_BAD_INPUT, EXIT_OK};
use setup::Outbox;

fn main() -> ExitCode {
    scrub_empty_variables();
    let command = Cli::command()
        .after_help(format!(
            "{}\n\nTHE SANDBOX (fieldreport sandbox) OFFERS\n  {}",
            Cli::command()
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default(),
            sandbox::offers().replace('\n', "\n  ")
        ))
        .mut_subcommand("sandbox", |c| {
            c.after_help(format!(
                "It offers:\n  {}",
                sandbox::offers().replace('\n', "\n  ")
            ))
        });
    let matches = match command.try_get_matches() {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            // Help and version are answers (0); every usage error is bad
            // input (2), whatever clap's own code for it.
            return ExitCode::from(if e.use_stderr() {
                EXIT_BAD_INPUT
            } else {
                EXIT_OK
            });
        }
    };
    let result = Cli::from_arg_matches(&matches)
        .map_err(|e| bad_input(e.to_string()))
        .and_then(|cli| run(&cli, &matches));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(Fail(code, msg)) => {
            eprintln!("fieldreport: {msg}");
            ExitCode::from(code)
        }
    }
}

/// An empty `FIELDREPORT_*` variable counts as unset (as it always has):
/// `FIELDREPORT_COMPANY= fieldreport ...` must not conflict or fail to parse.
fn scrub_empty_variables() {
    for (name, value) in std::env::vars_os() {
        if value.is_empty() && name.to_string_lossy().starts_with("FIELDREPORT_") {
            // Still single-threaded: nothing else reads the environment.
            std::env::remove_var(name);
        }
    }
}

fn run(cli: &Cli, matches: &clap::ArgMatches) -> Result<u8, Fail> {
    let open = |outbox| setup::open(&cli.server, &cli.policy, matches, outbox);
    match &cli.command {
        Command::Sandbox(a) => sandbox::sandbox(a),
        Command::Demo => sandbox::demo(cli.server.destination),
        Command::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "fieldreport",
                &mut std::io::stdout(),
            );
            Ok(EXIT_OK)
        }
        Command::Submit(a) => {
            let client = open(Outbox::Create)?;
            let files: Vec<_> = a
                .report
                .attachments
                .iter()
                .map(|(_, p)| p.clone())
                .collect();
            let show = progress::wanted(cli.quiet, a.report.json);
            progress::ingest(show, &files, || queue::submit(&client, a))
        }
        Command::Crash(a) => {
            let client = open(Outbox::Create)?;
            let mut files = vec![a.log.clone()];
            files.extend(a.report.attachments.iter().map(|(_, p)| p.clone()));
            let show = progress::wanted(cli.quiet, a.report.json);
            progress::ingest(show, &files, || queue::crash(&client, a))
        }
        Command::Batch(a) => queue::batch(&open(Outbox::Create)?, a),
        Command::Flush(a) => {
            let client = open(Outbox::MustExist)?;
            progress::uploads(&client, progress::wanted(cli.quiet, a.json));
            deliver::flush(&client, a)
        }
        Command::Status(a) => deliver::status(&open(Outbox::MustExist)?, a),
        Command::Retry { id } => {
            open(Outbox::MustExist)?.retry(*id)?;
            Ok(EXIT_OK)
        }
        Command::Purge { id } => {
            open(Outbox::MustExist)?.purge(*id)?;
            Ok(EXIT_OK)
        }
    }
}
