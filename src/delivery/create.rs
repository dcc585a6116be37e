//! Centercode's first step: create the feedback (after looking up a
//! report whose create answer was lost), store what the server gave back,
//! and route each attachment to its file element. The engine then uploads.

use super::engine::{Chain, Engine, PREMARK_FRESH};
use crate::delivery::{self, Created, Exchange, FileElement, RateWindow, Verdict};
use crate::destinations::centercode::CentercodeApi;
use crate::error::Result;
use crate::outbox::{self, now_ms, Stored};
use crate::report::{AttachmentState, DeliveryError, Event, Receipt, ReportState};
use std::time::{Instant, SystemTime};

/// Centercode's create step, over the engine (it derefs to it): a type of
/// its own so that the engine's loop and each destination's steps are each
/// one a reader can hold in mind.
pub(super) struct CreateStep<'e, 'a>(pub(super) &'e Engine<'a>);

impl<'a> std::ops::Deref for CreateStep<'_, 'a> {
    type Target = Engine<'a>;
    fn deref(&self) -> &Engine<'a> {
        self.0
    }
}

impl CreateStep<'_, '_> {
    /// Creates the feedback on the server. Returns `Some(reason)` when the
    /// batch must stop; otherwise `receipt.state` says where the report is.
    pub(super) fn create(
        &self,
        row: &mut crate::outbox::DeliveryRow,
        receipt: &mut Receipt,
        window: &mut RateWindow,
        chain: &mut Chain,
    ) -> Result<Option<String>> {
        let id = row.id;
        if row.create_sent_at.is_some() && chain.premarked_at.is_none() {
            // An earlier create went out and no answer was stored: the
            // server may have the feedback.
            if let Some(lookup_key) = self.config.server.lookup_key.clone() {
                self.pace(window)?;
                let found = CentercodeApi(&self.server()).lookup(&lookup_key, &row.client_id);
                match found {
                    Ok(Some(key)) => {
                        let created = self.recovered(&key, row);
                        return self
                            .store_created(row, &created, receipt, chain)
                            .map(|_| None);
                    }
                    Ok(None) => {
                        // A create cut off after it left may still be in the
                        // server's hands (a slow database, a queue): until
                        // twice the request timeout has passed since it was
                        // sent, look again later rather than send it twice.
                        let sent = row.create_sent_at.unwrap_or(0);
                        let settled = sent.saturating_add(
                            2 * self.config.policy.request_timeout.as_millis() as i64,
                        );
                        if now_ms() < settled {
                            let error = DeliveryError {
                                status: None,
                                message: "not found by the record lookup, but the create sent earlier may still be \
                                          in progress on the server: looking again before sending it a second time"
                                    .into(),
                                invalid_parameters: Vec::new(),
                            };
                            self.schedule(id, &error, outbox::from_ms(settled), receipt)?;
                            return Ok(None);
                        }
                        // Sent again: a duplicate if the server still
                        // creates the first one, later than that.
                        self.ddb(|o| o.steps().note_resent_in_doubt(id))?;
                    }
                    Err(exchange) => {
                        return self.judge_failure(row, &exchange, receipt, true);
                    }
                }
            } else {
                self.ddb(|o| o.steps().note_resent_in_doubt(id))?;
            }
        }
        if chain.premarked_at.is_none() {
            if !self.ddb(|o| o.steps().mark_create_sent(id))? {
                // Evicted or purged since it was loaded: not sent.
                chain.gone = true;
                return Ok(None);
            }
            chain.marked = true;
        }
        self.wait_turn(window);
        // Marked by the previous report's commit, then held up (listener
        // callbacks, the rate limit): mark it again with the time it
        // really leaves, which the lookup's wait counts from. Before the
        // stamp: this commit waits for the disk.
        if chain
            .premarked_at
            .is_some_and(|at| at.elapsed() > PREMARK_FRESH)
            && !self.ddb(|o| o.steps().mark_create_sent(id))?
        {
            chain.gone = true;
            return Ok(None);
        }
        self.stamp(window)?;
        chain.sent = true;
        let exchange = CentercodeApi(&self.server()).create_feedback(&row.payload);
        if let Exchange::Answer(a) = &exchange {
            if (200..300).contains(&a.status) {
                return match delivery::parse_created(&a.body) {
                    Some(created) => self
                        .store_created(row, &created, receipt, chain)
                        .map(|_| None),
                    None => {
                        let error = DeliveryError {
                            status: Some(a.status),
                            message: "the server accepted the feedback but its answer has no readable id and key"
                                .into(),
                            invalid_parameters: Vec::new(),
                        };
                        if self.config.server.lookup_key.is_some() {
                            // The next attempt looks it up by client id.
                            self.fail(id, row.attempts, error, None, receipt)
                        } else {
                            let mut error = error;
                            error.message.push_str(
                                "; not sent again, to avoid a duplicate (retry() re-sends it)",
                            );
                            self.kill(id, error, receipt).map(|_| None)
                        }
                    }
                };
            }
        }
        self.judge_failure(row, &exchange, receipt, false)
    }

    /// Handles a failed create or lookup.
    fn judge_failure(
        &self,
        row: &crate::outbox::DeliveryRow,
        exchange: &Exchange,
        receipt: &mut Receipt,
        is_lookup: bool,
    ) -> Result<Option<String>> {
        let id = row.id;
        // With an answer, or when the request never left, the server did
        // not act: the create is not in doubt any more. A request cut off
        // after it went out stays in doubt.
        if matches!(exchange, Exchange::Answer(_) | Exchange::NotSent(_)) && !is_lookup {
            self.ddb(|o| o.steps().set_create_sent_cleared(id))?;
        }
        match delivery::judge(exchange, SystemTime::now()) {
            Verdict::Success => Ok(None),
            Verdict::Retry { error, not_before } => {
                self.fail(id, row.attempts, error, not_before, receipt)
            }
            Verdict::Permanent(error) => {
                if is_lookup {
                    // A broken lookup must not kill the report: fall back
                    // to sending it again, counted as a possible duplicate.
                    self.ddb(|o| o.steps().note_resent_in_doubt(id))?;
                    self.ddb(|o| o.steps().set_create_sent_cleared(id))?;
                    let retry = DeliveryError {
                        message: format!(
                            "record lookup failed ({}); the create will be sent again",
                            error.message
                        ),
                        ..error
                    };
                    return self
                        .fail(id, row.attempts, retry, None, receipt)
                        .map(|_| None);
                }
                self.kill(id, error, receipt).map(|_| None)
            }
            Verdict::Unauthorized(error) => self.pause(error, receipt).map(Some),
        }
    }

    fn recovered(&self, key: &str, row: &crate::outbox::DeliveryRow) -> Created {
        let server = self.server();
        let mut elements: Vec<FileElement> = Vec::new();
        for a in &row.attachments {
            if !elements.iter().any(|e| e.key == a.element_key) {
                elements.push(FileElement {
                    key: a.element_key.clone(),
                    title: None,
                    url: CentercodeApi(&server).element_url(key, &a.element_key),
                    accepts_multiple: true,
                });
            }
        }
        Created {
            id: String::new(),
            key: key.to_string(),
            url: None,
            file_elements: elements,
        }
    }

    /// Stores a create's answer and updates `row` to match. A report with
    /// nothing left to upload is finished by the same commit
    /// (`receipt.state` is then `Delivered`).
    fn store_created(
        &self,
        row: &mut crate::outbox::DeliveryRow,
        created: &Created,
        receipt: &mut Receipt,
        chain: &mut Chain,
    ) -> Result<()> {
        let routes = self.routes(row, &created.file_elements);
        let pairs: Vec<(i64, std::result::Result<String, String>)> = row
            .attachments
            .iter()
            .map(|a| a.id)
            .zip(routes.iter().cloned())
            .collect();
        let finished = row
            .attachments
            .iter()
            .zip(&routes)
            .all(|(a, r)| a.state != AttachmentState::Pending || r.is_err());
        let next = if finished { chain.next } else { None };
        match self.ddb(|o| {
            o.steps()
                .store_created(row.id, created, &pairs, finished, next, false)
        })? {
            Stored::Kept { doomed, marked } => {
                chain.marked_next = marked.then(Instant::now);
                self.discard_later(doomed);
            }
            Stored::Gone => {
                chain.gone = true;
                return Ok(());
            }
        }
        row.state = ReportState::Created;
        row.server_key = Some(created.key.clone());
        row.server_url = created.url.clone();
        row.file_elements = created.file_elements.clone();
        receipt.state = if finished {
            ReportState::Delivered
        } else {
            ReportState::Created
        };
        receipt.server_key = Some(created.key.clone());
        receipt.server_url = created.url.clone();
        for (a, r) in row.attachments.iter_mut().zip(routes) {
            if let Err(reason) = r {
                a.state = AttachmentState::Rejected;
                receipt
                    .rejected_attachments
                    .push(format!("{}: {reason}", a.file_name));
                self.emit(Event::AttachmentRejected {
                    id: row.id,
                    file_name: a.file_name.clone(),
                    reason,
                });
            }
        }
        Ok(())
    }
}
