//! Reading the outbox (one report, a listing, statistics), outbox-wide
//! and per-destination state in `meta`, the destination binding.

use super::*;

impl Outbox {
    pub(crate) fn status(&self, id: ReportId) -> Result<ReportStatus> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {STATUS_COLUMNS} FROM reports WHERE id = ?1"
        ))?;
        let status = stmt
            .query_row(params![id], status_of_row)
            .optional()?
            .ok_or(Internal::NotFound(id))?;
        self.with_attachments(status)
    }

    pub(crate) fn list(&self, filter: &ReportFilter) -> Result<Vec<ReportStatus>> {
        let mut sql = format!("SELECT {STATUS_COLUMNS} FROM reports WHERE 1=1");
        if !filter.states.is_empty() {
            let states: Vec<String> = filter
                .states
                .iter()
                .map(|s| format!("'{}'", s.as_str()))
                .collect();
            sql.push_str(&format!(" AND state IN ({})", states.join(",")));
        }
        if let Some(kind) = filter.kind {
            sql.push_str(&format!(" AND kind = '{}'", kind.as_str()));
        }
        sql.push_str(" ORDER BY id DESC");
        if let Some(limit) = filter.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        let mut stmt = self.conn.prepare(&sql)?;
        let rows: Vec<ReportStatus> = stmt
            .query_map([], status_of_row)?
            .collect::<rusqlite::Result<_>>()?;
        rows.into_iter().map(|s| self.with_attachments(s)).collect()
    }

    pub(super) fn with_attachments(&self, mut status: ReportStatus) -> Result<ReportStatus> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT element_key, file_name, content_type, size, sha256, state, reason
             FROM attachments WHERE report_id = ?1 ORDER BY position",
        )?;
        status.attachments = stmt
            .query_map(params![status.id], |r| {
                Ok(AttachmentStatus {
                    element_key: r.get(0)?,
                    file_name: r.get(1)?,
                    content_type: r.get(2)?,
                    size: r.get::<_, i64>(3)? as u64,
                    sha256: r.get(4)?,
                    state: AttachmentState::parse(&r.get::<_, String>(5)?)
                        .unwrap_or(AttachmentState::Pending),
                    reason: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(status)
    }

    pub(crate) fn stats(&self) -> Result<Stats> {
        let mut stats = Stats::default();
        let mut stmt = self.conn.prepare_cached(
            "SELECT state, count(*), coalesce(sum(bytes),0), min(submitted_at), min(next_attempt_at)
             FROM reports WHERE destination = ?1 GROUP BY state",
        )?;
        let now = now_ms();
        let rows = stmt.query_map(params![self.dest], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, Option<i64>>(4)?,
            ))
        })?;
        let mut oldest: Option<i64> = None;
        let mut next: Option<i64> = None;
        for row in rows {
            let (state, count, bytes, min_submitted, min_next) = row?;
            match state.as_str() {
                "queued" | "created" => {
                    stats.pending += count;
                    stats.bytes += bytes;
                    oldest = oldest.min(min_submitted).or(oldest).or(min_submitted);
                    next = next.min(min_next).or(next).or(min_next);
                }
                "dead" => {
                    stats.dead += count;
                    stats.bytes += bytes;
                }
                "delivered" => stats.delivered += count,
                _ => {}
            }
        }
        stats.oldest_pending_age_secs = oldest.map(|t| ((now - t).max(0) / 1000) as u64);
        let not_before = self.meta_i64(&self.gate("not_before"))?;
        stats.next_attempt_at = next.map(|n| from_ms(n.max(not_before)));
        stats.last_error = self
            .meta("last_error")?
            .and_then(|s| serde_json::from_str(&s).ok());
        stats.evicted = self.meta_i64("evicted")? as u64;
        stats.evicted_feedback = self.meta_i64("evicted_feedback")? as u64;
        stats.ambiguous_resends = self.meta_i64("ambiguous_resends")? as u64;
        stats.moved_aside = self.meta("moved_aside")?;
        stats.other_destinations = self.count_other_destinations()?;
        Ok(stats)
    }

    /// Binds this connection to a destination, by name (registered on
    /// first use). With `adopt_legacy`, reports queued before destinations
    /// were recorded (schema 6 and older, all Centercode's) and their gates
    /// become this destination's, in one transaction.
    pub(crate) fn bind(&mut self, name: &str, adopt_legacy: bool) -> Result<()> {
        let tx = Tx::write(&self.conn)?;
        tx.execute(
            "INSERT INTO destinations (name) VALUES (?1) ON CONFLICT (name) DO NOTHING",
            params![name],
        )?;
        let id: i64 = tx.query_row(
            "SELECT id FROM destinations WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )?;
        if adopt_legacy {
            tx.execute(
                "UPDATE reports SET destination = ?1 WHERE destination = 0",
                params![id],
            )?;
            for gate in GATES {
                tx.execute(
                    "UPDATE OR IGNORE meta SET key = ?2 WHERE key = ?1",
                    params![format!("{gate}:0"), format!("{gate}:{id}")],
                )?;
                tx.execute(
                    "DELETE FROM meta WHERE key = ?1",
                    params![format!("{gate}:0")],
                )?;
            }
        }
        tx.commit()?;
        self.dest = id;
        Ok(())
    }

    /// The meta key of one of this destination's gates.
    pub(crate) fn gate(&self, name: &str) -> String {
        debug_assert!(GATES.contains(&name));
        format!("{name}:{}", self.dest)
    }

    /// Undelivered reports (queued or created) waiting for a destination
    /// other than this one, which this client never sends.
    pub(crate) fn count_other_destinations(&self) -> Result<u64> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM reports WHERE state IN ('queued','created') AND destination != ?1",
            )?
            .query_row(params![self.dest], |r| r.get::<_, i64>(0))? as u64)
    }

    /// Queues the reports waiting for other destinations for this one
    /// instead: the app's explicit choice (they were not created anywhere
    /// yet, or only partly: a created report keeps its server key and
    /// goes on uploading there, so only queued ones move). Only reports
    /// stored in a form this destination reads move: Centercode's request
    /// bodies (and every report older than schema 7) between Centercode
    /// destinations, the neutral form between the others. Returns how many.
    pub(crate) fn retarget_other_destinations(&self) -> Result<u64> {
        Ok(self.conn.execute(
            "UPDATE reports SET destination = ?1
             WHERE state = 'queued' AND destination != ?1 AND create_sent_at IS NULL
               AND (destination = 0 OR coalesce((SELECT name LIKE 'centercode %' FROM destinations WHERE id = reports.destination), 1))
                   = coalesce((SELECT name LIKE 'centercode %' FROM destinations WHERE id = ?1), 1)",
            params![self.dest],
        )? as u64)
    }

    /// The ids of undelivered reports waiting for other destinations.
    pub(crate) fn other_destination_ids(&self) -> Result<Vec<ReportId>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id FROM reports WHERE state IN ('queued','created') AND destination != ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![self.dest], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub(crate) fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
            .query_row(params![key], |r| r.get(0))
            .optional()?)
    }

    pub(crate) fn meta_i64(&self, key: &str) -> Result<i64> {
        Ok(self.meta(key)?.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    pub(crate) fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![key, value])?;
        Ok(())
    }

    /// This install's device id: a random v4 UUID made the first time it is
    /// asked for and kept in `meta` with the outbox (never derived from the
    /// hardware). `INSERT OR IGNORE` lets two processes opening a new
    /// outbox at once agree on one.
    pub(crate) fn device_id(&self) -> Result<String> {
        self.conn
            .prepare_cached("INSERT OR IGNORE INTO meta (key, value) VALUES ('device_id', ?1)")?
            .execute(params![super::random_id()])?;
        Ok(self.meta("device_id")?.unwrap_or_default())
    }

    /// The shared request window, persisted so that the next process (or
    /// the next flush) continues the same one-second budget.
    pub(crate) fn rate_window(&self) -> Result<RateWindow> {
        let sent_ms = self
            .meta(&self.gate("rate_window"))?
            .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
            .unwrap_or_default();
        Ok(RateWindow { sent_ms })
    }

    /// Saves the shared rate window. Not synced, even with
    /// `Durability::Full`: it has to survive a crash of this process (a
    /// commit in the OS's cache does), and after a power loss the restart
    /// takes longer than the one second the window covers. At the default
    /// policy that is one fsync per request fewer.
    pub(crate) fn save_rate_window(&self, w: &RateWindow) -> Result<()> {
        let s: Vec<String> = w.sent_ms.iter().map(|x| x.to_string()).collect();
        let value = s.join(",");
        if self.durability != Durability::Full {
            return self.set_meta(&self.gate("rate_window"), &value);
        }
        self.conn
            .prepare_cached("PRAGMA synchronous = NORMAL")?
            .execute([])?;
        let saved = self.set_meta(&self.gate("rate_window"), &value);
        // Restored whatever happened: every other commit stays synced.
        self.conn
            .prepare_cached("PRAGMA synchronous = FULL")?
            .execute([])?;
        saved
    }

    pub(crate) fn count_pending_dead(&self) -> Result<(u64, u64)> {
        let s = self.stats()?;
        Ok((s.pending, s.dead))
    }
}
