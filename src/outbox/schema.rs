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

/// Version 5: the reports table rebuilt without `AUTOINCREMENT` and
/// without the unique index on `client_id`, two of the pages that every
/// submit wrote besides the row's (`client_id` is 128 random bits, made
/// here, and never looked up locally; the sequence table was rewritten by
/// every insert). Ids are still never reused: the highest id ever deleted
/// is kept in `meta.id_floor` by a trigger (deletions are rare: purge and
/// the retention of delivered rows), and an insert takes the next id above
/// both it and the highest row. Done as SQLite documents a table rebuild,
/// with foreign keys off (see [`migrate`]) so that dropping the old table
/// does not cascade to the attachments. The sequence row left for
/// `reports` (2^40, never read by this version) is for a process of an
/// older version still running across the upgrade, which takes its next
/// id from it: its next submit takes an id above every other, the one
/// after fails on the primary key, and neither reuses an id. (2^40, not
/// more: ids and `seq` must stay exact as JSON numbers, below 2^53.)
const V5: &str = "
CREATE TABLE reports_v5 (
    id INTEGER PRIMARY KEY,
    client_id TEXT NOT NULL,
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
INSERT INTO reports_v5 (id, client_id, seq, kind, state, summary, payload, context, submitted_at,
        attempts, next_attempt_at, create_sent_at, server_id, server_key, server_url, file_elements,
        last_error, finished_at, bytes)
    SELECT id, client_id, seq, kind, state, summary, payload, context, submitted_at,
        attempts, next_attempt_at, create_sent_at, server_id, server_key, server_url, file_elements,
        last_error, finished_at, bytes
    FROM reports;
INSERT INTO meta (key, value)
    SELECT 'id_floor', CAST(max(
        coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'reports'), 0),
        coalesce((SELECT max(id) FROM reports), 0)) AS TEXT)
    WHERE true
    ON CONFLICT (key) DO UPDATE SET value = excluded.value;
DROP TABLE reports;
ALTER TABLE reports_v5 RENAME TO reports;
CREATE INDEX reports_queue ON reports(state, submitted_at, bytes, next_attempt_at);
INSERT INTO sqlite_sequence (name, seq) VALUES ('reports', 1099511627776);
CREATE TRIGGER reports_id_floor AFTER DELETE ON reports
    WHEN old.id > coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'id_floor'), 0)
BEGIN
    INSERT INTO meta (key, value) VALUES ('id_floor', CAST(old.id AS TEXT))
        ON CONFLICT (key) DO UPDATE SET value = excluded.value;
END;
";

/// Version 6: whether a report was sent again after a create whose answer
/// was lost (so the server may hold a copy from that earlier attempt),
/// which its dead reason must then say. Existing rows start at 0: before
/// this version only the outbox-wide counter kept that.
const V6: &str = "
ALTER TABLE reports ADD COLUMN resent_in_doubt INTEGER NOT NULL DEFAULT 0;
";

/// Version 7: destinations. Each report records the server it was queued
/// for (an id into `destinations`, whose `name` says which server, project
/// and form), and is only ever sent there; `progress` holds a
/// destination's own record of how far a report got (opaque to the
/// outbox). The queue index gains the destination so that the delivery
/// scan stays covering. The back-off gates (`not_before`, the refused key's
/// `auth_pause`, the `rate_window`) become per destination (`name:id`).
/// Reports queued before this version did not record where they were
/// going: they keep destination 0, "Centercode, as configured then", and
/// the first Centercode client that opens the outbox takes them and their
/// gates (every outbox before this version delivered to Centercode only).
const V7: &str = "
CREATE TABLE destinations (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
ALTER TABLE reports ADD COLUMN destination INTEGER NOT NULL DEFAULT 0;
ALTER TABLE reports ADD COLUMN progress TEXT;
DROP INDEX reports_queue;
CREATE INDEX reports_queue ON reports(state, submitted_at, bytes, next_attempt_at, destination);
UPDATE meta SET key = key || ':0' WHERE key IN ('not_before', 'auth_pause', 'rate_window');
";

/// Every migration, in order; the schema version is its length.
pub(crate) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6, V7];

/// Brings the database up to `migrations.len()`, in one IMMEDIATE
/// transaction so that two processes opening at once do not both migrate.
pub(crate) fn migrate(conn: &mut Connection, migrations: &[&str]) -> Result<()> {
    // A table rebuild drops the old table: with foreign keys on, that
    // would delete every attachment row by cascade. The setting cannot
    // change inside a transaction, so it is off around it and restored.
    let foreign_keys: bool = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
    conn.pragma_update(None, "foreign_keys", false)?;
    let migrated = migrate_tx(conn, migrations);
    conn.pragma_update(None, "foreign_keys", foreign_keys)?;
    migrated
}

fn migrate_tx(conn: &mut Connection, migrations: &[&str]) -> Result<()> {
    let target = migrations.len() as u32;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current: u32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > target {
        return Err(Internal::State(format!(
            "the outbox was written by a newer fieldreport (schema version {current}, this build knows {target}); \
             it is left untouched"
        )));
    }
    if current == target {
        return Ok(());
    }
    // What a rebuild copies must still hold together: no attachment row
    // may lose its report (rows already orphaned by some other writer are
    // not the upgrade's doing, and do not stop it).
    let dangling = |tx: &Connection| -> Result<i64> {
        Ok(tx.query_row(
            "SELECT count(*) FROM pragma_foreign_key_check('attachments')",
            [],
            |r| r.get(0),
        )?)
    };
    let before = if current > 0 { dangling(&tx)? } else { 0 };
    for (i, sql) in migrations.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as u32)?;
    }
    let after = dangling(&tx)?;
    if after > before {
        return Err(Internal::State(format!(
            "the outbox upgrade would have left {} attachment rows without their report; it was rolled back",
            after - before
        )));
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

    /// A process of version 3 or 4 takes its next id from the sequence
    /// table: after the rebuild that id is above every other, and the
    /// current way (above the highest row and the highest deleted id)
    /// continues after it.
    #[test]
    fn an_older_process_after_the_rebuild_does_not_reuse_ids() {
        let mut c = Connection::open_in_memory().unwrap();
        let fk_before: bool = c
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        migrate(&mut c, &MIGRATIONS[..4]).unwrap();
        let insert = |c: &Connection, id: i64| {
            c.execute(
                "INSERT INTO reports (id, client_id, seq, kind, state, summary, payload, context, submitted_at, bytes)
                 VALUES (?1, ?1, ?1, 'feedback', 'queued', 's', '{}', '{}', 0, 2)",
                [id],
            )
            .unwrap();
        };
        insert(&c, 1);
        insert(&c, 2);
        c.execute("DELETE FROM reports WHERE id = 2", []).unwrap();
        migrate(&mut c, MIGRATIONS).unwrap();
        let old_next: i64 = c
            .query_row(
                "SELECT coalesce(max(seq), 0) + 1 FROM sqlite_sequence WHERE name = 'reports'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(old_next, (1 << 40) + 1);
        let floor: String = c
            .query_row("SELECT value FROM meta WHERE key = 'id_floor'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(floor, "2", "the deleted id 2 is carried over");
        insert(&c, old_next);
        let next: i64 = c
            .query_row(
                "SELECT max(coalesce((SELECT max(id) FROM reports), 0),
                            coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'id_floor'), 0)) + 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(next, old_next + 1);
        let fk: bool = c
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, fk_before, "left as it was before the migration");
    }

    /// An attachment row orphaned by some other writer (foreign keys are
    /// off by default in a plain connection) does not stop an upgrade, nor
    /// the opens after it: only rows the upgrade itself orphaned would.
    #[test]
    fn an_orphan_left_by_another_writer_does_not_stop_the_upgrade() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c, &MIGRATIONS[..4]).unwrap();
        c.pragma_update(None, "foreign_keys", false).unwrap();
        c.execute(
            "INSERT INTO attachments (report_id, position, element_key, file_name, content_type, stored_name, size, sha256)
             VALUES (77, 0, 'Log', 'x.log', 'text/plain', 'att-x', 1, 'ab')",
            [],
        )
        .unwrap();
        migrate(&mut c, MIGRATIONS).unwrap();
        migrate(&mut c, MIGRATIONS).unwrap();
        let v: u32 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v as usize, MIGRATIONS.len());
        // A migration that does orphan rows is rolled back.
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c, MIGRATIONS).unwrap();
        c.execute_batch(
            "INSERT INTO reports (id, client_id, seq, kind, state, summary, payload, context, submitted_at, bytes)
                 VALUES (1, 'c', 1, 'feedback', 'queued', 's', '{}', '{}', 0, 2);
             INSERT INTO attachments (report_id, position, element_key, file_name, content_type, stored_name, size, sha256)
                 VALUES (1, 0, 'Log', 'y.log', 'text/plain', 'att-y', 1, 'ab');",
        )
        .unwrap();
        let mut broken: Vec<&str> = MIGRATIONS.to_vec();
        broken.push("DELETE FROM reports;");
        let e = migrate(&mut c, &broken).unwrap_err();
        assert!(
            matches!(&e, Internal::State(m) if m.contains("without their report")),
            "{e:?}"
        );
        let reports: i64 = c
            .query_row("SELECT count(*) FROM reports", [], |r| r.get(0))
            .unwrap();
        assert_eq!(reports, 1, "rolled back");
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
