//! The progress display on stderr: a bar per upload (from the library's
//! `Event::Progress`) during `flush`, a spinner while `submit`, `crash` or
//! `batch` copy big files into the outbox. Only when stderr is a terminal,
//! and never with `--quiet` or `--json`: a rig script's stderr stays clean.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fieldreport::{Client, Event, Listener, ReportId};
use indicatif::{ProgressBar, ProgressStyle};

/// Copies below this are quick enough to show nothing (the library's
/// threshold for upload progress too).
const SHOW_FROM: u64 = 1024 * 1024;

/// Whether to draw: not asked to be quiet, not printing JSON, and stderr a
/// terminal.
pub fn wanted(quiet: bool, json: bool) -> bool {
    !quiet && !json && std::io::stderr().is_terminal()
}

/// Draws one bar per upload as the client reports it.
#[derive(Default)]
struct Bars(Mutex<Option<(ReportId, String, ProgressBar)>>);

impl Listener for Bars {
    fn on_event(&self, event: Event) {
        let Event::Progress {
            id,
            file_name,
            sent_bytes,
            total_bytes,
        } = event
        else {
            return;
        };
        let mut current = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let same = matches!(&*current, Some((i, n, _)) if *i == id && *n == file_name);
        if !same {
            // A new upload; one that failed part way leaves its bar.
            if let Some((_, _, old)) = current.take() {
                old.abandon();
            }
            let bar = ProgressBar::new(total_bytes).with_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(format!("report {id}: {file_name}"));
            *current = Some((id, file_name, bar));
        }
        if let Some((_, _, bar)) = current.as_ref() {
            bar.set_position(sent_bytes);
            if sent_bytes >= total_bytes {
                bar.finish();
                *current = None;
            }
        }
    }
}

/// Shows upload bars for `client`'s flush when `show`.
pub fn uploads(client: &Client, show: bool) {
    if show {
        client.set_listener(Some(Arc::new(Bars::default())));
    }
}

/// Runs `work` (a submit) with a spinner naming the big files it copies
/// into the outbox, when `show` and they add up to 1 MiB or more. The
/// library reports no progress of its own for this copy (it runs at disk
/// speed); the spinner says the command is busy and with what.
pub fn ingest<T>(show: bool, files: &[PathBuf], work: impl FnOnce() -> T) -> T {
    let sizes: u64 = files
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    if !show || sizes < SHOW_FROM {
        return work();
    }
    let spinner = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    spinner.set_message(format!(
        "copying {} into the outbox ({})",
        files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        indicatif::HumanBytes(sizes)
    ));
    spinner.enable_steady_tick(Duration::from_millis(100));
    let out = work();
    spinner.finish_and_clear();
    out
}
