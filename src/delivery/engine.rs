//! The delivery engine: one flush, oldest report first, each report
//! created, then its attachments uploaded; every answer judged by the
//! decisions in this module's siblings, every step committed before the next.

use std::fs::{self};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use super::create::CreateStep;
use super::one_request::OneRequest;
use crate::config::Destination;
use crate::delivery::sender::Deliver;
use crate::delivery::{self, RateWindow, Verdict};
use crate::destinations::centercode::CentercodeApi;
use crate::error::{Internal, Result};
use crate::outbox::{self, now_ms, Stored};
use crate::report::{
    AttachmentState, DeliveryError, Event, FlushResult, Receipt, ReportId, ReportState,
};

use crate::client::Inner;

/// How old a create's "about to leave" mark may be when the request leaves
/// before it is written again with the real time.
pub(super) const PREMARK_FRESH: Duration = Duration::from_secs(1);

/// The longest a server's own word (`Retry-After`) may hold delivery back.
const MAX_SERVER_WAIT: Duration = Duration::from_secs(24 * 3600);

/// The hand-off between consecutive reports of one flush: the commit that
/// finishes a report also records that the next report's create is about
/// to leave, so that each report costs one commit instead of two.
#[derive(Default)]
pub(super) struct Chain {
    /// When the previous report's commit marked this one as about to
    /// leave, if it did.
    pub(super) premarked_at: Option<Instant>,
    /// The report after it in this flush, if any.
    pub(super) next: Option<ReportId>,
    /// When this report's final commit marked `next`, if it did.
    pub(super) marked_next: Option<Instant>,
    /// This report's create is recorded as about to leave (by the previous
    /// commit or its own).
    pub(super) marked: bool,
    /// ...and the request went out (cleared otherwise if delivery fails).
    pub(super) sent: bool,
    /// The report was evicted or purged while it was being delivered.
    pub(super) gone: bool,
}

/// How one report's delivery ended in this flush.
struct Outcome {
    receipt: Receipt,
    /// Set when the batch must stop (network trouble, rate limit, paused key, budget).
    stop: Option<String>,
}

/// The delivery engine: the flush loop and each step of a report's
/// delivery, run over a client's shared state (the outbox, the server, the
/// listener). A type of its own, apart from the submit path's [`Inner`],
/// so that each reads on its own; it derefs to the state it runs over.
pub(crate) struct Engine<'a>(pub(crate) &'a Inner);

impl std::ops::Deref for Engine<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        self.0
    }
}

impl Engine<'_> {
    // ---- flush ----

    pub(crate) fn flush(&self, budget: Duration) -> Result<FlushResult> {
        let deadline = Instant::now() + budget;
        let mut result = FlushResult::default();
        // One flush per outbox: first among this process's threads...
        let Some(_gate) = wait_for(deadline, || match self.flush_gate.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }) else {
            return self.finish(
                result,
                Some("another flush is running in this process".into()),
            );
        };
        // ...then among processes.
        let lock = outbox::open_lock(&self.config.outbox_dir.join("flush.lock"))?;
        if wait_for(deadline, || lock.try_lock().ok()).is_none() {
            return self.finish(
                result,
                Some("another client or process is flushing this outbox".into()),
            );
        }
        if !self.consent()? {
            return self.finish(
                result,
                Some("no consent: reports are kept, not sent".into()),
            );
        }
        if !self.is_online() {
            return self.finish(result, Some("offline (as the app reported)".into()));
        }
        let (evictions, doomed) = self.ddb(|o| o.expire(&self.config.policy))?;
        outbox::remove_files(&doomed);
        for e in evictions {
            self.emit(Event::Evicted {
                id: e.id,
                reason: e.reason,
            });
        }
        let now = now_ms();
        if let Some(probe_at) = self.auth_paused()? {
            if now < probe_at {
                return self.finish(
                    result,
                    Some("paused: the server refused the API key (set a new key to resume)".into()),
                );
            }
        }
        let not_before = self.ddb(|o| o.meta_i64(&o.gate("not_before")))?;
        if now < not_before {
            return self.finish(
                result,
                Some(format!(
                    "waiting until {} as the server asked",
                    delivery::format_iso8601(outbox::from_ms(not_before))
                )),
            );
        }
        let mut window = self.ddb(|o| o.rate_window())?;
        let due = self.ddb(|o| o.steps().due(now))?;
        let mut due = due.into_iter().peekable();
        let mut stop = None;
        // A report whose create was marked as about to leave, and not sent.
        let mut premarked = None;
        while let Some(id) = due.next() {
            let marked_at = premarked.take().filter(|(m, _)| *m == id).map(|(_, at)| at);
            let mut chain = Chain {
                premarked_at: marked_at,
                next: due.peek().copied(),
                ..Chain::default()
            };
            stop = if Instant::now() >= deadline {
                Some("the time budget is spent".into())
            } else if self.is_closed() {
                Some("the client is closing".into())
            } else if !self.is_online() {
                Some("offline (as the app reported)".into())
            } else {
                None
            };
            if stop.is_some() {
                premarked = marked_at.map(|at| (id, at));
                break;
            }
            let outcome = match self.deliver(id, &mut window, deadline, &mut chain) {
                Ok(o) => o,
                Err(e) => {
                    if chain.marked && !chain.sent {
                        // Marked as about to leave, and it did not: it is
                        // not in doubt (best effort; the error is the news).
                        let _ = self.ddb(|o| o.steps().set_create_sent_cleared(id));
                    }
                    return Err(e);
                }
            };
            if let (Some(at), Some(next)) = (chain.marked_next, chain.next) {
                premarked = Some((next, at));
            }
            // None: evicted or purged since the flush began; nothing to say.
            let Some(outcome) = outcome else { continue };
            result.receipts.push(outcome.receipt);
            if outcome.stop.is_some() {
                stop = outcome.stop;
                break;
            }
        }
        if let Some((id, _)) = premarked {
            // Not sent after all: not in doubt.
            self.ddb(|o| o.steps().set_create_sent_cleared(id))?;
        }
        if self.requests_per_sec() > 0 && !result.receipts.is_empty() {
            // With the send times as they were, for the next flush.
            self.ddb(|o| o.save_rate_window(&window))?;
        }
        // Given up on a full disk: made again once there is room, counting
        // the room that the delivered copies leave (rare, so waiting here for
        // their deletion costs the usual flush nothing). Only by the flush
        // that holds the lock: another would take the room it works with.
        let reserve = self.config.policy.disk_reserve_bytes;
        if !outbox::has_reserve(&self.config.outbox_dir, reserve) {
            self.join_janitors();
            outbox::ensure_reserve(&self.config.outbox_dir, reserve);
        }
        self.finish(result, stop)
    }

    fn finish(&self, mut result: FlushResult, stopped: Option<String>) -> Result<FlushResult> {
        let (pending, dead) = self.ddb(|o| o.queries().count_pending_dead())?;
        result.pending = pending;
        result.dead = dead;
        result.stopped = stopped;
        Ok(result)
    }

    /// The most requests a second: the policy's, and for a server without
    /// a limit of its own (ABC) no more than our polite default.
    fn requests_per_sec(&self) -> u32 {
        let policy = self.config.policy.max_requests_per_sec;
        match &self.config.destination {
            Destination::Abc(abc) if policy > 0 => policy.min(abc.polite_rate_per_sec),
            _ => policy,
        }
    }

    /// Waits for the shared rate limit, then records the request.
    pub(super) fn pace(&self, window: &mut RateWindow) -> Result<()> {
        self.wait_turn(window);
        self.stamp(window)
    }

    /// Waits until the rate limit lets the next request go.
    pub(super) fn wait_turn(&self, window: &RateWindow) {
        let per_sec = self.requests_per_sec();
        loop {
            let wait = window.wait(per_sec, now_ms() as u64);
            if wait.is_zero() {
                break;
            }
            thread::sleep(wait);
        }
    }

    /// Records a request that leaves now. Nothing that waits (the disk, the
    /// outbox's lock) may come between this and the send: the server counts
    /// arrivals, so a request held up after its stamp squeezes the window.
    pub(super) fn stamp(&self, window: &mut RateWindow) -> Result<()> {
        let per_sec = self.requests_per_sec();
        if per_sec > 0 {
            window.record(per_sec, now_ms() as u64);
            self.ddb(|o| o.save_rate_window(window))?;
            // The save waits for the disk (an fsync, slow on some devices)
            // and the request leaves only after it: stamp it when it does,
            // or the server sees the requests closer than we spaced them.
            // (The flush saves the window again when it ends.)
            if let Some(last) = window.sent_ms.back_mut() {
                *last = (now_ms() as u64).max(*last);
            }
        }
        Ok(())
    }

    fn deliver(
        &self,
        id: ReportId,
        window: &mut RateWindow,
        deadline: Instant,
        chain: &mut Chain,
    ) -> Result<Option<Outcome>> {
        chain.marked = chain.premarked_at.is_some();
        let mut row = match self.ddb(|o| o.steps().load(id)) {
            Ok(row) => row,
            // Purged since the flush listed it.
            Err(Internal::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        // Evicted, dead or delivered since the flush listed it (another
        // client's submit or open can evict it): not ours to send.
        if !matches!(row.state, ReportState::Queued | ReportState::Created) {
            return Ok(None);
        }
        let mut receipt = Receipt {
            id,
            state: row.state,
            server_key: row.server_key.clone(),
            server_url: row.server_url.clone(),
            error: None,
            rejected_attachments: Vec::new(),
        };
        if row.state == ReportState::Queued {
            let stopped = if matches!(self.config.destination, Destination::Centercode) {
                CreateStep(self).create(&mut row, &mut receipt, window, chain)?
            } else {
                OneRequest(self).deliver_one_request(&row, &mut receipt, window, chain)?
            };
            if chain.gone {
                return Ok(None);
            }
            if let Some(stop) = stopped {
                return Ok(Some(Outcome {
                    receipt,
                    stop: Some(stop),
                }));
            }
            match receipt.state {
                // Nothing to upload: the create's commit finished it.
                ReportState::Delivered => return Ok(Some(self.delivered(receipt))),
                ReportState::Created => {}
                // Dead, or waiting for a retry that does not stop the batch.
                _ => {
                    return Ok(Some(Outcome {
                        receipt,
                        stop: None,
                    }))
                }
            }
        }
        // Upload what is pending, in order.
        let routes = self.routes(&row, &row.file_elements);
        let mut stop = None;
        for (att, route) in row.attachments.iter().zip(routes) {
            if att.state != AttachmentState::Pending {
                continue;
            }
            let url = match route {
                Ok(url) => url,
                Err(reason) => {
                    self.reject(id, att.id, &att.file_name, &reason, &mut receipt)?;
                    continue;
                }
            };
            if !copy_intact(&att.path, att.size) {
                let reason =
                    "the outbox copy of this attachment is missing or changed on disk".to_string();
                self.reject(id, att.id, &att.file_name, &reason, &mut receipt)?;
                continue;
            }
            if self.metered.load(Ordering::SeqCst)
                && att.size > self.config.policy.metered_max_upload_bytes
            {
                stop = Some("large attachments wait for an unmetered network".to_string());
                break;
            }
            if Instant::now() >= deadline {
                stop = Some("the time budget is spent".into());
                break;
            }
            self.pace(window)?;
            let meter = self.progress_meter(id, &att.file_name, att.size);
            let exchange = CentercodeApi(&self.server()).upload(
                &url,
                (&att.path, att.size),
                &att.file_name,
                &att.content_type,
                meter,
            );
            match delivery::judge(&exchange, SystemTime::now()) {
                Verdict::Success => self.ddb(|o| o.steps().mark_uploaded(att.id))?,
                Verdict::Permanent(e) => {
                    let reason = format!(
                        "the server refused it ({}): {}",
                        e.status.map(|s| s.to_string()).unwrap_or_default(),
                        e.message
                    );
                    self.reject(id, att.id, &att.file_name, &reason, &mut receipt)?;
                }
                Verdict::Retry { error, not_before } => {
                    let s = self.fail(id, row.attempts, error, not_before, &mut receipt)?;
                    return Ok(Some(Outcome { receipt, stop: s }));
                }
                Verdict::Unauthorized(error) => {
                    let s = self.pause(error, &mut receipt)?;
                    return Ok(Some(Outcome {
                        receipt,
                        stop: Some(s),
                    }));
                }
            }
        }
        if stop.is_some() {
            return Ok(Some(Outcome { receipt, stop }));
        }
        match self.ddb(|o| o.steps().mark_delivered(id, chain.next))? {
            Stored::Kept { doomed, marked } => {
                chain.marked_next = marked.then(Instant::now);
                self.discard_later(doomed);
            }
            // Evicted while its attachments were going up.
            Stored::Gone => return Ok(None),
        }
        receipt.state = ReportState::Delivered;
        Ok(Some(self.delivered(receipt)))
    }

    fn delivered(&self, mut receipt: Receipt) -> Outcome {
        receipt.error = None;
        self.emit(Event::Delivered {
            receipt: receipt.clone(),
        });
        Outcome {
            receipt,
            stop: None,
        }
    }

    fn reject(
        &self,
        id: ReportId,
        att_id: i64,
        file_name: &str,
        reason: &str,
        receipt: &mut Receipt,
    ) -> Result<()> {
        self.ddb(|o| o.steps().mark_rejected(att_id, reason))?;
        receipt
            .rejected_attachments
            .push(format!("{file_name}: {reason}"));
        self.emit(Event::AttachmentRejected {
            id,
            file_name: file_name.to_string(),
            reason: reason.to_string(),
        });
        Ok(())
    }

    /// Where each of `row`'s attachments goes among the server's file
    /// `elements`: a URL on the configured origin, or why not.
    pub(super) fn routes(
        &self,
        row: &crate::outbox::DeliveryRow,
        elements: &[crate::delivery::FileElement],
    ) -> Vec<std::result::Result<String, String>> {
        let keys: Vec<&str> = row
            .attachments
            .iter()
            .map(|a| a.element_key.as_str())
            .collect();
        crate::destinations::centercode::route_on_origin(&keys, elements, self.server().origin())
    }

    /// A failed attempt that may be retried: schedule it and stop the batch.
    pub(super) fn fail(
        &self,
        id: ReportId,
        attempts: u32,
        error: DeliveryError,
        not_before: Option<SystemTime>,
        receipt: &mut Receipt,
    ) -> Result<Option<String>> {
        let policy = &self.config.policy;
        let backoff = delivery::backoff(policy, attempts + 1, delivery::random_unit());
        let mut next = SystemTime::now() + backoff;
        if let Some(nb) = not_before {
            // A `Retry-After` date far ahead (a broken clock or header) would
            // hold every report back until then: cap it as the delta-seconds
            // form is capped.
            let nb = nb.min(SystemTime::now() + MAX_SERVER_WAIT);
            next = next.max(nb);
            // The server's word holds for every report of this destination, in
            // every process (another server's reports are not held back).
            self.ddb(|o| o.set_meta(&o.gate("not_before"), &outbox::to_ms(nb).to_string()))?;
        }
        self.schedule(id, &error, next, receipt)?;
        Ok(Some(match error.status {
            None => format!("network failure: {}", error.message),
            Some(429) => "rate limited by the server".to_string(),
            Some(s) => format!("server error {s}: {}", error.message),
        }))
    }

    /// Records a failed attempt and when to try again (dead after the last
    /// one allowed), and tells the listener.
    pub(super) fn schedule(
        &self,
        id: ReportId,
        error: &DeliveryError,
        next: SystemTime,
        receipt: &mut Receipt,
    ) -> Result<()> {
        let max = self.config.policy.max_attempts;
        let dead = self.ddb(|o| {
            o.steps()
                .record_failure(id, error, outbox::to_ms(next), max)
        })?;
        receipt.error = Some(error.clone());
        if dead {
            receipt.state = ReportState::Dead;
            let status = self.ddb(|o| o.queries().status(id))?;
            self.emit(Event::Dead {
                id,
                error: status.last_error.unwrap_or_else(|| error.clone()),
            });
        } else {
            self.emit(Event::Failed {
                id,
                error: error.clone(),
                retry_at: next,
            });
        }
        Ok(())
    }

    pub(super) fn kill(
        &self,
        id: ReportId,
        error: DeliveryError,
        receipt: &mut Receipt,
    ) -> Result<()> {
        let error = self.ddb(|o| o.steps().mark_dead(id, &error))?;
        receipt.state = ReportState::Dead;
        receipt.error = Some(error.clone());
        self.emit(Event::Dead { id, error });
        Ok(())
    }

    pub(super) fn pause(&self, error: DeliveryError, receipt: &mut Receipt) -> Result<String> {
        let fp = self.server().api_key().fingerprint();
        let probe_at = now_ms() + self.config.policy.auth_probe_interval.as_millis() as i64;
        self.ddb(|o| o.set_meta(&o.gate("auth_pause"), &format!("{fp}|{probe_at}")))?;
        receipt.error = Some(error.clone());
        let msg = format!(
            "paused: the server refused the API key ({}: {})",
            error.status.unwrap_or(0),
            error.message
        );
        self.emit(Event::Paused { error });
        Ok(msg)
    }

    /// When the sender should next wake for due work, if any is known.
    pub(crate) fn next_due(&self) -> Option<SystemTime> {
        self.db(|o| o.queries().stats())
            .ok()
            .and_then(|s| s.next_attempt_at)
    }
}

fn wait_for<T>(deadline: Instant, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn copy_intact(path: &Path, size: u64) -> bool {
    fs::metadata(path).map(|m| m.len() == size).unwrap_or(false)
}
