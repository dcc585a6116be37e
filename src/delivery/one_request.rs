//! Delivery to a destination whose report goes in one request (ABC,
//! Apptentive): the translator builds it from the report stored neutral;
//! the engine marks it as about to leave, sends it, and stores what the
//! translator reads from the answer. A request whose answer was lost is
//! looked up first where the server allows it (ABC's search on the
//! client-id field), else sent again and counted as a possible duplicate.
//! An ABC destination sending images by presigned upload uploads them
//! first (`presigned.rs`), then creates with their object URLs.

use std::fs::File;
use std::time::SystemTime;

use super::engine::{Chain, Engine};
use super::presigned::Uploads;
use super::{Created, Exchange, RateWindow};
use crate::config::Destination;
use crate::context;
use crate::destinations::abc::translate as abc;
use crate::destinations::body::{Outbound, Segment};
use crate::destinations::plug::{self, Neutral};
use crate::destinations::{Outgoing, OutgoingAttachment, Verdict as Said};
use crate::error::Result;
use crate::http::progress::Meter;
use crate::outbox::{self, now_ms, DeliveryRow, Stored};
use crate::report::{DeliveryError, Event, Receipt, ReportId, ReportState};

/// Delivery in one request (ABC, Apptentive), over the engine (it derefs
/// to it); `presigned.rs` adds ABC's image uploads before the request.
pub(super) struct OneRequest<'e, 'a>(pub(super) &'e Engine<'a>);

impl<'a> std::ops::Deref for OneRequest<'_, 'a> {
    type Target = Engine<'a>;
    fn deref(&self) -> &Engine<'a> {
        self.0
    }
}

impl OneRequest<'_, '_> {
    /// The configured destination, with the key the app set last.
    fn destination_now(&self) -> Destination {
        let key = self.server().api_key().expose().to_string();
        match &self.config.destination {
            Destination::Abc(c) => Destination::Abc(c.with_key(&key)),
            Destination::Apptentive(c) => Destination::Apptentive(c.with_key(&key)),
            other => other.clone(),
        }
    }

    /// Delivers one report in one request. Returns `Some(reason)` when the
    /// batch must stop; otherwise `receipt.state` says where the report is.
    pub(super) fn deliver_one_request(
        &self,
        row: &DeliveryRow,
        receipt: &mut Receipt,
        window: &mut RateWindow,
        chain: &mut Chain,
    ) -> Result<Option<String>> {
        let id = row.id;
        let dest = self.destination_now();
        let Some(neutral) = Neutral::parse(&row.payload) else {
            let error = plain_error(None, "the stored report cannot be read as a neutral report");
            return self.kill(id, error, receipt).map(|_| None);
        };
        let (kind, flat, submitted_ms) = self.ddb(|o| o.steps().load_neutral(id))?;
        let blocks = context::blocks(&flat);
        let files = plug::outgoing_files(
            kind,
            row.attachments.iter().map(|a| {
                (
                    a.element_key.as_str(),
                    a.file_name.as_str(),
                    a.content_type.as_str(),
                    a.path.as_path(),
                    a.size,
                )
            }),
        );
        let report = Outgoing {
            client_id: &row.client_id,
            kind,
            summary: &neutral.summary,
            description: neutral.description.as_deref(),
            submitter: neutral.submitter.as_deref(),
            fields: &neutral.fields,
            context: &blocks,
            attachments: &files,
            submitted_at: outbox::from_ms(submitted_ms),
        };
        // An earlier request went out and no answer was stored: look it up
        // first; sending it again is counted as a possible duplicate when
        // it happens, not before (an upload failing first sends nothing).
        let resend_in_doubt = row.create_sent_at.is_some();
        if resend_in_doubt {
            if let Some(stop) = self.look_up_first(&dest, row, &report, receipt, window, chain)? {
                return Ok(stop);
            }
        }
        // ABC's presigned images go before the create.
        let (image_urls, refused) = match &dest {
            Destination::Abc(cfg) => {
                let images = plug::presigned_images(&dest, &files);
                if images.is_empty() {
                    (Vec::new(), Vec::new())
                } else {
                    match self.upload_presigned(id, cfg, &images, window)? {
                        Uploads::Done { urls, refused } => (urls, refused),
                        Uploads::Stopped {
                            said,
                            status,
                            retry_after,
                        } => return self.upload_stopped(row, said, status, retry_after, receipt),
                    }
                }
            }
            _ => (Vec::new(), Vec::new()),
        };
        let crash = match (&dest, files.first()) {
            (Destination::Abc(cfg), Some(log)) if log.crash_log && cfg.map.crash_log.is_some() => {
                let budget = abc::crash_budget(cfg, &report, &image_urls).unwrap_or(0);
                File::open(&log.path)
                    .and_then(|f| abc::crash_log_text(abc::gunzip(f), budget))
                    .ok()
            }
            _ => None,
        };
        let (request, mut left_out) =
            match plug::request(&dest, &report, crash.as_ref(), &image_urls) {
                Ok(r) => r,
                Err(e) => {
                    let error = plain_error(None, &format!("cannot be sent: {e}"));
                    return self.kill(id, error, receipt).map(|_| None);
                }
            };
        left_out.extend(refused);
        left_out.sort_by_key(|(i, _)| *i);
        if resend_in_doubt {
            self.ddb(|o| o.steps().note_resent_in_doubt(id))?;
        }
        if !self.ddb(|o| o.steps().mark_create_sent(id))? {
            // Evicted or purged since it was loaded: not sent.
            chain.gone = true;
            return Ok(None);
        }
        chain.marked = true;
        self.pace(window)?;
        chain.sent = true;
        let meter = self.request_meter(id, &request, &files);
        let exchange = self.server().send_outbound(&request, meter);
        let (said, status, retry_after) = match &exchange {
            Exchange::Answer(a) => (
                plug::read_answer(&dest, a.status, &[], a.body.as_bytes()),
                Some(a.status),
                a.retry_after
                    .as_deref()
                    .and_then(|v| super::parse_retry_after(v, SystemTime::now())),
            ),
            Exchange::Transport(m) => (Said::no_answer(true, m), None, None),
            Exchange::NotSent(m) => (Said::no_answer(false, m), None, None),
        };
        match said {
            Said::Delivered { reference } => {
                let cut = crash.as_ref().is_some_and(|c| c.cut_bytes > 0);
                self.store_delivered(row, &reference, &left_out, cut, receipt, chain)?;
                Ok(None)
            }
            other => self.judge_said(row, other, status, retry_after, receipt),
        }
    }

    /// A progress meter for a request that carries files (the whole
    /// request's bytes, named after the files in it); `None` for one
    /// without a file.
    fn request_meter(
        &self,
        id: ReportId,
        request: &Outbound,
        files: &[OutgoingAttachment],
    ) -> Option<Meter> {
        let names: Vec<&str> = request
            .body
            .segments
            .iter()
            .filter_map(|s| match s {
                Segment::File { path, .. } | Segment::Base64File { path, .. } => files
                    .iter()
                    .find(|f| &f.path == path)
                    .map(|f| f.file_name.as_str()),
                Segment::Bytes(_) => None,
            })
            .collect();
        if names.is_empty() {
            return None;
        }
        self.progress_meter(id, &names.join(", "), request.body.len())
    }

    /// Before sending again a request whose answer was lost: look the
    /// report up where the destination allows it. `Some(stop)` when this
    /// attempt ends here (found, or to look again later); `None` when the
    /// request is to be sent again (the caller counts it as a possible
    /// duplicate when it does).
    fn look_up_first(
        &self,
        dest: &Destination,
        row: &DeliveryRow,
        report: &Outgoing<'_>,
        receipt: &mut Receipt,
        window: &mut RateWindow,
        chain: &mut Chain,
    ) -> Result<Option<Option<String>>> {
        let id = row.id;
        let search = match dest {
            Destination::Abc(cfg) => abc::search_request(cfg, &row.client_id).map(|r| (cfg, r)),
            _ => None,
        };
        let Some((cfg, request)) = search else {
            return Ok(None);
        };
        self.pace(window)?;
        let exchange = self.server().send_outbound(&request, None);
        let found = match &exchange {
            Exchange::Answer(a) => {
                abc::read_search_answer(cfg, &row.client_id, a.status, a.body.as_bytes())
            }
            Exchange::Transport(m) | Exchange::NotSent(m) => {
                abc::SearchVerdict::Failed(Said::no_answer(false, m))
            }
        };
        match found {
            abc::SearchVerdict::Found { id: reference } => {
                let left_out = plug::abc_left_out(cfg, report.attachments);
                // Whether the lost request's crash log was cut is not
                // known here: it is not counted.
                self.store_delivered(row, &reference, &left_out, false, receipt, chain)?;
                Ok(Some(None))
            }
            abc::SearchVerdict::NotFound => {
                // A request cut off after it left may still be in the
                // server's hands: until twice the request timeout has
                // passed since it was sent, look again later.
                let sent = row.create_sent_at.unwrap_or(0);
                let settled =
                    sent.saturating_add(2 * self.config.policy.request_timeout.as_millis() as i64);
                if now_ms() < settled {
                    let error = plain_error(
                        None,
                        "not found by the search, but the request sent earlier may still be in \
                         progress on the server: looking again before sending it a second time",
                    );
                    self.schedule(id, &error, outbox::from_ms(settled), receipt)?;
                    return Ok(Some(None));
                }
                Ok(None)
            }
            abc::SearchVerdict::Failed(Said::Pause { reason }) => {
                let s = self.pause(plain_error(Some(403), &reason), receipt)?;
                Ok(Some(Some(s)))
            }
            abc::SearchVerdict::Failed(Said::Retry { reason, .. }) => {
                let error =
                    plain_error(None, &format!("the search before sending again: {reason}"));
                Ok(Some(self.fail(id, row.attempts, error, None, receipt)?))
            }
            abc::SearchVerdict::Failed(_) => {
                // A search the server refuses must not kill the report:
                // send it again, counted as a possible duplicate.
                Ok(None)
            }
        }
    }

    /// Stores a delivered report with the server's reference; the
    /// attachments left out are recorded as rejected, with their reasons;
    /// a crash log sent `cut` is counted in the same commit.
    fn store_delivered(
        &self,
        row: &DeliveryRow,
        reference: &str,
        left_out: &[(usize, String)],
        cut: bool,
        receipt: &mut Receipt,
        chain: &mut Chain,
    ) -> Result<()> {
        let routes: Vec<(i64, std::result::Result<String, String>)> = row
            .attachments
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let reason = left_out
                    .iter()
                    .find(|(j, _)| *j == i)
                    .map(|(_, r)| r.clone());
                (a.id, reason.map_or(Ok(String::new()), Err))
            })
            .collect();
        let created = Created {
            id: reference.to_string(),
            key: reference.to_string(),
            url: None,
            file_elements: Vec::new(),
        };
        match self.ddb(|o| {
            o.steps()
                .store_created(row.id, &created, &routes, true, None, cut)
        })? {
            Stored::Kept { doomed, .. } => self.discard_later(doomed),
            Stored::Gone => {
                chain.gone = true;
                return Ok(());
            }
        }
        receipt.state = ReportState::Delivered;
        receipt.server_key = Some(reference.to_string());
        for (i, reason) in left_out {
            let name = &row.attachments[*i].file_name;
            receipt
                .rejected_attachments
                .push(format!("{name}: {reason}"));
            self.emit(Event::AttachmentRejected {
                id: row.id,
                file_name: name.clone(),
                reason: reason.clone(),
            });
        }
        Ok(())
    }

    /// Ends an attempt whose presigned uploads stopped before the create:
    /// the create did not leave, so its "about to leave" mark is left as
    /// it was (set only by an earlier attempt, whose create stays in doubt).
    fn upload_stopped(
        &self,
        row: &DeliveryRow,
        said: Said,
        status: Option<u16>,
        retry_after: Option<SystemTime>,
        receipt: &mut Receipt,
    ) -> Result<Option<String>> {
        match said {
            Said::Pause { reason } => self.pause(plain_error(status, &reason), receipt).map(Some),
            Said::Retry { reason, .. } => self.fail(
                row.id,
                row.attempts,
                plain_error(status, &reason),
                retry_after,
                receipt,
            ),
            // Refusals reject an image and never stop the uploads; kept
            // retryable should one come here.
            other => {
                let error = plain_error(status, &format!("before the create: {other:?}"));
                self.fail(row.id, row.attempts, error, retry_after, receipt)
            }
        }
    }

    /// Acts on an answer that is not a delivery.
    fn judge_said(
        &self,
        row: &DeliveryRow,
        said: Said,
        status: Option<u16>,
        retry_after: Option<SystemTime>,
        receipt: &mut Receipt,
    ) -> Result<Option<String>> {
        let id = row.id;
        let maybe_acted = matches!(
            said,
            Said::Retry {
                maybe_acted: true,
                ..
            }
        );
        if !maybe_acted {
            // The server did not act: the request is not in doubt.
            self.ddb(|o| o.steps().set_create_sent_cleared(id))?;
        }
        match said {
            Said::Delivered { .. } => Ok(None),
            Said::Retry { reason, .. } => {
                let error = plain_error(status, &reason);
                self.fail(id, row.attempts, error, retry_after, receipt)
            }
            Said::Pause { reason } => self.pause(plain_error(status, &reason), receipt).map(Some),
            Said::Dead { status, messages } => {
                let error = DeliveryError {
                    status: Some(status),
                    message: if messages.is_empty() {
                        format!("refused (HTTP {status})")
                    } else {
                        messages.join("; ")
                    },
                    invalid_parameters: Vec::new(),
                };
                self.kill(id, error, receipt).map(|_| None)
            }
        }
    }
}

fn plain_error(status: Option<u16>, message: &str) -> DeliveryError {
    DeliveryError {
        status,
        message: message.to_string(),
        invalid_parameters: Vec::new(),
    }
}
