//! Delivery steps, each one statement or one transaction: what is due,
//! a report as delivery needs it, and every state change the engine records.

use super::*;

impl Steps<'_> {
    /// Reports due for delivery, oldest first.
    pub(crate) fn due(&self, now: i64) -> Result<Vec<ReportId>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id FROM reports WHERE state IN ('queued','created') AND next_attempt_at <= ?1 AND destination = ?2
             ORDER BY id",
        )?;
        let rows = stmt.query_map(params![now, self.dest], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The row and its attachments, read in one transaction (an eviction
    /// between the two reads would show a queued report without its
    /// attachments).
    pub(crate) fn load(&self, id: ReportId) -> Result<DeliveryRow> {
        let tx = Tx::read(&self.conn)?;
        let row = self
            .conn
            .prepare_cached(
                "SELECT id, client_id, state, payload, attempts, create_sent_at, server_key, server_url, file_elements
                 FROM reports WHERE id = ?1",
            )?
            .query_row(
                params![id],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, u32>(4)?,
                        r.get::<_, Option<i64>>(5)?,
                        r.get::<_, Option<String>>(6)?,
                        r.get::<_, Option<String>>(7)?,
                        r.get::<_, Option<String>>(8)?,
                    ))
                },
            )
            .optional()?
            .ok_or(Internal::NotFound(id))?;
        let file_elements = row
            .8
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, element_key, file_name, content_type, stored_name, size, state
             FROM attachments WHERE report_id = ?1 ORDER BY position",
        )?;
        let attachments = stmt
            .query_map(params![id], |r| {
                Ok(AttachmentRow {
                    id: r.get(0)?,
                    element_key: r.get(1)?,
                    file_name: r.get(2)?,
                    content_type: r.get(3)?,
                    path: self.files.join(r.get::<_, String>(4)?),
                    size: r.get::<_, i64>(5)? as u64,
                    state: AttachmentState::parse(&r.get::<_, String>(6)?)
                        .unwrap_or(AttachmentState::Pending),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        drop(stmt);
        tx.commit()?;
        Ok(DeliveryRow {
            id: row.0,
            client_id: row.1,
            state: ReportState::parse(&row.2).unwrap_or(ReportState::Queued),
            payload: row.3,
            attempts: row.4,
            create_sent_at: row.5,
            server_key: row.6,
            server_url: row.7,
            file_elements,
            attachments,
        })
    }

    /// What a translator needs besides the delivery row: the report's
    /// kind, its stored context items and when it was submitted.
    pub(crate) fn load_neutral(
        &self,
        id: ReportId,
    ) -> Result<(ReportKind, serde_json::Map<String, serde_json::Value>, i64)> {
        let (kind, context, at) = self
            .conn
            .prepare_cached("SELECT kind, context, submitted_at FROM reports WHERE id = ?1")?
            .query_row(params![id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .optional()?
            .ok_or(Internal::NotFound(id))?;
        let kind = ReportKind::parse(&kind).unwrap_or(ReportKind::Feedback);
        Ok((kind, serde_json::from_str(&context).unwrap_or_default(), at))
    }

    /// Marks that a create is about to be sent: if no answer is stored
    /// afterwards, the next attempt knows the server may have it. `false`
    /// when the report is no longer queued (evicted or purged meanwhile):
    /// then it must not be sent.
    pub(crate) fn mark_create_sent(&self, id: ReportId) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached(
                "UPDATE reports SET create_sent_at = ?2 WHERE id = ?1 AND state = 'queued'",
            )?
            .execute(params![id, now_ms()])?;
        Ok(n == 1)
    }

    /// Stores the server's answer to a create, and the routing decision of
    /// each attachment (rejections with their reasons), in one transaction.
    /// With `delivered` (nothing left to upload) the same commit finishes
    /// the report, and returns its attachment copies to delete; `next` is
    /// pre-marked as in [`Outbox::mark_delivered`]. `crash_log_cut` counts,
    /// in the same commit, a crash log the request carried cut to fit.
    pub(crate) fn store_created(
        &self,
        id: ReportId,
        created: &Created,
        routes: &[(i64, Result<String, String>)],
        delivered: bool,
        next: Option<ReportId>,
        crash_log_cut: bool,
    ) -> Result<Stored> {
        let tx = Tx::write(&self.conn)?;
        let changed = if delivered {
            // One update of the row (and of its index entries), not two.
            // The file elements are not kept: nothing is left to upload
            // (serializing them was a twentieth of a delivered report's
            // instructions).
            tx.prepare_cached(
                "UPDATE reports SET state = 'delivered', server_id = ?2, server_key = ?3, server_url = ?4,
                        last_error = NULL, finished_at = ?5, bytes = 0
                 WHERE id = ?1 AND state = 'queued'",
            )?
            .execute(params![id, created.id, created.key, created.url, now_ms()])?
        } else {
            let elements =
                serde_json::to_string(&created.file_elements).unwrap_or_else(|_| "[]".into());
            tx.prepare_cached(
                "UPDATE reports SET state = 'created', server_id = ?2, server_key = ?3, server_url = ?4,
                        file_elements = ?5, last_error = NULL WHERE id = ?1 AND state = 'queued'",
            )?
            .execute(params![id, created.id, created.key, created.url, elements])?
        };
        if changed == 0 {
            // Evicted (or purged) while its create was out: the row keeps
            // its eviction record, and learns where the server has it.
            tx.execute(
                "UPDATE reports SET server_id = ?2, server_key = ?3, server_url = ?4 WHERE id = ?1",
                params![id, created.id, created.key, created.url],
            )?;
            tx.commit()?;
            return Ok(Stored::Gone);
        }
        for (att_id, route) in routes {
            match route {
                Err(reason) => {
                    tx.execute(
                        "UPDATE attachments SET state = 'rejected', reason = ?2 WHERE id = ?1",
                        params![att_id, reason],
                    )?;
                }
                // A report delivered in one request took its files with it.
                Ok(_) if delivered => {
                    tx.execute(
                        "UPDATE attachments SET state = 'uploaded' WHERE id = ?1 AND state = 'pending'",
                        params![att_id],
                    )?;
                }
                Ok(_) => {}
            }
        }
        if crash_log_cut {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('crash_logs_cut', '1')
                 ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
                [],
            )?;
        }
        let (doomed, marked) = if delivered {
            // Copies of attachments rejected by routing (none without any).
            let doomed = if routes.is_empty() {
                Vec::new()
            } else {
                attachment_paths_where(&tx, &self.files, "r.id = ?1", id)?
            };
            (doomed, premark_tx(&tx, next)?)
        } else {
            (Vec::new(), false)
        };
        tx.commit()?;
        Ok(Stored::Kept { doomed, marked })
    }

    /// The create's answer came back (an error): it is no longer in doubt.
    pub(crate) fn set_create_sent_cleared(&self, id: ReportId) -> Result<()> {
        self.conn.execute(
            "UPDATE reports SET create_sent_at = NULL WHERE id = ?1",
            params![id],
        )?;
        Ok(())
    }

    pub(crate) fn mark_uploaded(&self, att_id: i64) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE attachments SET state = 'uploaded' WHERE id = ?1")?
            .execute(params![att_id])?;
        Ok(())
    }

    pub(crate) fn mark_rejected(&self, att_id: i64, reason: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE attachments SET state = 'rejected', reason = ?2 WHERE id = ?1",
            params![att_id, reason],
        )?;
        Ok(())
    }

    /// Marks a report delivered and returns its attachment copies, to
    /// delete. The same commit marks the create of `next` (a queued report
    /// not in doubt) as about to be sent, saving its own fsync; the second
    /// value says whether it did. The caller sends that create next, or
    /// clears the mark.
    pub(crate) fn mark_delivered(&self, id: ReportId, next: Option<ReportId>) -> Result<Stored> {
        let tx = Tx::write(&self.conn)?;
        let Some(doomed) = finish_tx(&tx, &self.files, id)? else {
            return Ok(Stored::Gone);
        };
        let marked = premark_tx(&tx, next)?;
        tx.commit()?;
        Ok(Stored::Kept { doomed, marked })
    }

    /// Records a failed attempt; returns `true` when it was the last one
    /// allowed and the report is now dead.
    pub(crate) fn record_failure(
        &self,
        id: ReportId,
        error: &DeliveryError,
        next_attempt_at: i64,
        max_attempts: u32,
    ) -> Result<bool> {
        // One transaction: retried whole on a full disk, never counted twice.
        let tx = Tx::write(&self.conn)?;
        let attempts: Option<u32> = tx
            .query_row(
                "UPDATE reports SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3
                 WHERE id = ?1 AND state IN ('queued','created') RETURNING attempts",
                params![id, next_attempt_at, error_json(error)],
                |r| r.get(0),
            )
            .optional()?;
        // Evicted or purged while it was being sent: nothing to record.
        let Some(attempts) = attempts else {
            return Ok(false);
        };
        set_meta_tx(&tx, "last_error", &error_json(error))?;
        let dead = attempts >= max_attempts;
        if dead {
            let mut e = error.clone();
            e.message = format!(
                "gave up after {attempts} attempts; last error: {}",
                e.message
            );
            mark_dead_tx(&tx, id, &e)?;
        }
        tx.commit()?;
        Ok(dead)
    }

    /// Makes a report dead; returns its reason as stored (see [`mark_dead_tx`]).
    pub(crate) fn mark_dead(&self, id: ReportId, error: &DeliveryError) -> Result<DeliveryError> {
        let tx = Tx::write(&self.conn)?;
        let stored = mark_dead_tx(&tx, id, error)?;
        tx.commit()?;
        Ok(stored)
    }

    /// Counts a create sent again while an earlier one is in doubt (its
    /// answer lost), outbox-wide and on the report, in one commit.
    pub(crate) fn note_resent_in_doubt(&self, id: ReportId) -> Result<()> {
        let tx = Tx::write(&self.conn)?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('ambiguous_resends', '1')
             ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
            [],
        )?;
        tx.execute(
            "UPDATE reports SET resent_in_doubt = 1 WHERE id = ?1",
            params![id],
        )?;
        tx.commit()
    }

    /// Puts a dead report back in the queue, where it left off.
    pub(crate) fn retry(&self, id: ReportId) -> Result<()> {
        let state = self.state_of(id)?;
        if state != ReportState::Dead {
            return Err(Internal::State(format!(
                "report {id} is {}, only a dead report can be retried",
                state.as_str()
            )));
        }
        self.conn.execute(
            "UPDATE reports SET state = CASE WHEN server_key IS NULL THEN 'queued' ELSE 'created' END,
                    attempts = 0, next_attempt_at = 0, finished_at = NULL WHERE id = ?1",
            params![id],
        )?;
        Ok(())
    }

    pub(super) fn state_of(&self, id: ReportId) -> Result<ReportState> {
        let s: Option<String> = self
            .conn
            .query_row(
                "SELECT state FROM reports WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()?;
        s.and_then(|s| ReportState::parse(&s))
            .ok_or(Internal::NotFound(id))
    }
}
