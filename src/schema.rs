//! The outbox schema and its migrations, keyed on `PRAGMA user_version`.
//! Each entry of [`MIGRATIONS`] takes the database from version `i` to
//! `i + 1`; an entry, once released, never changes.

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Internal, Result};

/// Version 1: reports, their attachments, and a key-value table for
/// outbox-wide state (sequence, counters, pause, consent).
const V1: &str = "
CREATE TABLE reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id TEXT NOT NULL UNIQUE,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    summary TEXT NOT NULL,
    payload TEXT NOT NULL,
    context TEXT NOT NULL,
    submitted_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    create_sent_at INTEGER,
    server_id TEXT,
    server_key TEXT,
    server_url TEXT,
    file_elements TEXT,
    last_error TEXT,
    finished_at INTEGER,
    bytes INTEGER NOT NULL
);
CREATE TABLE attachments (
    id INTEGER PRIMARY KEY,
    report_id INTEGER NOT NULL REFERENCES reports(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    element_key TEXT NOT NULL,
    file_name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    stored_name TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    reason TEXT
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
";

/// Version 2: indexes for the delivery scan and the listing, added once
/// outboxes grew past a few thousand rows.
const V2: &str = "
CREATE INDEX reports_due ON reports(state, next_attempt_at);
CREATE INDEX attachments_report ON attachments(report_id, position);
";

/// Version 3: a covering index for the caps query (count and bytes of the
/// undelivered reports, run by every submit) and for the age scan at open,
/// which otherwise read every queued row and its overflow pages. The
/// sequence number is now the row id (both grew by one per insert and
/// neither is reused); an outbox whose `meta.seq` ran ahead of its id
/// counter (never seen, but cheap to rule out) carries the counter forward.
const V3: &str = "
CREATE INDEX reports_age_size ON reports(state, submitted_at, bytes);
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'reports', 0 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'reports');
UPDATE sqlite_sequence
    SET seq = max(seq, coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'seq'), 0))
    WHERE name = 'reports';
DELETE FROM meta WHERE key = 'seq';
";

/// Version 4: one index for the queue instead of two. Every submit and
/// every delivery step wrote a page of each; the delivery scan reads the
/// undelivered entries of this one instead (covering: no row is read),
/// bounded by the outbox's caps.
const V4: &str = "
DROP INDEX reports_due;
DROP INDEX reports_age_size;
CREATE INDEX reports_queue ON reports(state, submitted_at, bytes, next_attempt_at);
";

/// Every migration, in order; the schema version is its length.
pub(crate) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4];

/// Brings the database up to `migrations.len()`, in one IMMEDIATE
/// transaction so that two processes opening at once do not both migrate.
pub(crate) fn migrate(conn: &mut Connection, migrations: &[&str]) -> Result<()> {
    let target = migrations.len() as u32;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current: u32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > target {
        return Err(Internal::State(format!(
            "the outbox was written by a newer fieldreport (schema version {current}, this build knows {target}); \
             it is left untouched"
        )));
    }
    for (i, sql) in migrations.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as u32)?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_database_reaches_current_version() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c, MIGRATIONS).unwrap();
        let v: u32 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v as usize, MIGRATIONS.len());
        // Idempotent.
        migrate(&mut c, MIGRATIONS).unwrap();
    }

    #[test]
    fn newer_schema_is_refused_and_untouched() {
        let mut c = Connection::open_in_memory().unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        let e = migrate(&mut c, MIGRATIONS).unwrap_err();
        assert!(matches!(e, Internal::State(m) if m.contains("newer")));
        let v: u32 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 99);
    }

    #[test]
    fn failed_migration_rolls_back() {
        let mut c = Connection::open_in_memory().unwrap();
        let broken: &[&str] = &[V1, "CREATE TABLE x(a); THIS IS NOT SQL;"];
        assert!(migrate(&mut c, broken).is_err());
        let v: u32 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 0, "nothing of the failed run is kept");
    }
}
