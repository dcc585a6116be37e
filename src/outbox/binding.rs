//! The destination this connection is bound to, its back-off gates, and
//! the outbox-wide state kept in `meta` (the shared rate window among it).

use super::*;

impl Outbox {
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

    /// This install's device id: a random v4 UUID made the first time it
    /// is asked for and kept in `meta` with the outbox (never derived from
    /// the hardware). `INSERT OR IGNORE` lets two processes opening a new
    /// outbox at once agree on one. A full disk must not stop `open`: if
    /// the id cannot be stored, this process uses one of its own and a
    /// later open stores one.
    pub(crate) fn device_id(&self) -> Result<String> {
        if let Some(id) = self.meta("device_id")? {
            return Ok(id);
        }
        let made = super::random_id();
        let stored = self
            .conn
            .prepare_cached("INSERT OR IGNORE INTO meta (key, value) VALUES ('device_id', ?1)")
            .and_then(|mut s| s.execute(params![made]));
        match stored {
            Ok(_) => Ok(self.meta("device_id")?.unwrap_or(made)),
            Err(_) => Ok(made),
        }
    }
}
