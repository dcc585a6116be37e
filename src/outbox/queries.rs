//! Reading the outbox: one report, a listing, statistics.

use super::*;

impl Queries<'_> {
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
        stats.crash_logs_cut = self.meta_i64("crash_logs_cut")? as u64;
        stats.moved_aside = self.meta("moved_aside")?;
        stats.other_destinations = self.count_other_destinations()?;
        Ok(stats)
    }

    pub(crate) fn count_pending_dead(&self) -> Result<(u64, u64)> {
        let s = self.stats()?;
        Ok((s.pending, s.dead))
    }
}
