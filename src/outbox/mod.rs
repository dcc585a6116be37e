//! The outbox: an SQLite database (WAL) beside a folder of attachment
//! copies. Every write that the app relies on commits before returning.
//!
//! Files: `outbox.sqlite` (+ `-wal`, `-shm`), `files/` (attachment copies,
//! named by a random id), `ingest.lock` (held shared while a submit copies
//! files, exclusively while orphans are swept), `flush.lock` (one flush at a
//! time across processes).
//!
//! Parts: the store itself, [`Outbox`] (`open.rs`: opening and upgrading;
//! `binding.rs`: the destination, its gates and `meta`; this file:
//! inserting, expiring, purging), and two views of it, [`Queries`] (what
//! is read) and [`Steps`] (what delivery writes); `files.rs` stages
//! attachment copies and keeps the locks and the disk reserve.

mod binding;
mod files;
mod open;
mod queries;
pub(crate) mod schema;
mod steps;

use files::*;
pub(crate) use files::{
    ensure_reserve, has_reserve, open_lock, release_reserve_after, remove_files, stage, Staged,
};

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::config::{Durability, Policy};
use crate::delivery::{Created, FileElement, RateWindow};
use crate::error::{Internal, Result};
use crate::report::{
    AttachmentState, AttachmentStatus, DeliveryError, ReportFilter, ReportId, ReportKind,
    ReportState, ReportStatus, Stats,
};

const DB_NAME: &str = "outbox.sqlite";
const FILES_DIR: &str = "files";
const TMP_PREFIX: &str = ".tmp-";

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    to_ms(SystemTime::now())
}

pub(crate) fn to_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(crate) fn from_ms(ms: i64) -> SystemTime {
    // Stored times come from this clock plus bounded policy durations; a
    // damaged or edited row is kept within what every binding's date type
    // holds (up to the end of 9999).
    const END_OF_9999_MS: i64 = 253_402_300_799_000;
    UNIX_EPOCH + Duration::from_millis(ms.clamp(0, END_OF_9999_MS) as u64)
}

/// A random UUID (version 4 layout): two SipHash outputs under the
/// standard library's per-thread random keys (seeded by the OS, stepped for
/// every `RandomState`), over the time and the process id (a forked child
/// inherits its parent's keys).
pub(crate) fn random_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut n: u128 = 0;
    for half in 0..2u8 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(nanos);
        h.write_u32(std::process::id());
        h.write_u8(half);
        n = (n << 64) | u128::from(h.finish());
    }
    // Version 4, variant 10.
    n = (n & !(0xf << 76)) | (0x4 << 76);
    n = (n & !(0x3 << 62)) | (0x2 << 62);
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A transaction begun and committed with cached statements: rusqlite's
/// `Transaction` parses `BEGIN IMMEDIATE` and `COMMIT` anew each time, a
/// fifth of a small submit's instructions. Rolls back on drop unless
/// committed.
struct Tx<'c> {
    conn: &'c Connection,
    open: bool,
}

impl<'c> Tx<'c> {
    /// A write transaction. IMMEDIATE takes the write lock at once, so that
    /// a reader upgrading later cannot fail with `SQLITE_BUSY` (the busy
    /// handler waits for BEGIN instead).
    fn write(conn: &'c Connection) -> Result<Tx<'c>> {
        Self::begin(conn, "BEGIN IMMEDIATE")
    }

    /// A read transaction: several reads that see one state of the outbox.
    fn read(conn: &'c Connection) -> Result<Tx<'c>> {
        Self::begin(conn, "BEGIN")
    }

    fn begin(conn: &'c Connection, sql: &str) -> Result<Tx<'c>> {
        if !conn.is_autocommit() {
            // Only a ROLLBACK that failed in a drop can leave one open:
            // statements meant to commit on their own would join it.
            conn.execute_batch("ROLLBACK")?;
        }
        conn.prepare_cached(sql)?.execute([])?;
        Ok(Tx { conn, open: true })
    }

    fn commit(mut self) -> Result<()> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        self.open = false;
        Ok(())
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        // After a failed COMMIT the transaction may still be open.
        if self.open && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// A new report for [`Outbox::insert`].
#[derive(Debug)]
pub(crate) struct NewReport {
    pub client_id: String,
    pub kind: ReportKind,
    pub summary: String,
    pub payload: serde_json::Map<String, serde_json::Value>,
    pub context: serde_json::Map<String, serde_json::Value>,
    /// Context item name to field name: filled into the payload once the
    /// sequence number is known.
    pub context_fields: Vec<(String, String)>,
    pub attachments: Vec<NewAttachment>,
}

#[derive(Debug)]
pub(crate) struct NewAttachment {
    pub element_key: String,
    pub file_name: String,
    pub content_type: String,
    pub staged: Staged,
}

/// What a commit that stores a delivery step found.
#[derive(Debug)]
pub(crate) enum Stored {
    /// Stored; the attachment copies to delete, and whether the next
    /// report's create was marked as about to leave.
    Kept { doomed: Vec<PathBuf>, marked: bool },
    /// The report is no longer being delivered (evicted or purged since it
    /// was loaded): nothing changed but, after a create, its server key.
    Gone,
}

/// One attachment as delivery needs it.
#[derive(Debug, Clone)]
pub(crate) struct AttachmentRow {
    pub id: i64,
    pub element_key: String,
    pub file_name: String,
    pub content_type: String,
    pub path: PathBuf,
    pub size: u64,
    pub state: AttachmentState,
}

/// One report as delivery needs it.
#[derive(Debug, Clone)]
pub(crate) struct DeliveryRow {
    pub id: ReportId,
    pub client_id: String,
    pub state: ReportState,
    pub payload: String,
    pub attempts: u32,
    pub create_sent_at: Option<i64>,
    pub server_key: Option<String>,
    pub server_url: Option<String>,
    pub file_elements: Vec<FileElement>,
    pub attachments: Vec<AttachmentRow>,
}

/// What a report was evicted for, returned so that the listener hears of it.
#[derive(Debug, Clone)]
pub(crate) struct Eviction {
    pub id: ReportId,
    pub reason: String,
}

pub(crate) struct Outbox {
    conn: Connection,
    dir: PathBuf,
    files: PathBuf,
    durability: Durability,
    /// The caps totals as this connection's last insert left them.
    caps_cache: Option<CapsCache>,
    /// The destination this client delivers to (`destinations.id`), set by
    /// [`Outbox::bind`]: new reports are queued for it, and only its
    /// reports are delivered.
    dest: i64,
}

/// Undelivered reports and their bytes after this connection's last insert:
/// valid while no other connection has committed (`PRAGMA data_version`
/// unchanged) and this one has changed no row since (`total_changes`
/// unchanged). Saves summing every queued row's size at each submit.
#[derive(Clone, Copy)]
struct CapsCache {
    data_version: i64,
    total_changes: u64,
    count: u64,
    bytes: u64,
}

/// Reading reports and statistics ([`queries`](self) file): a view of
/// the outbox, so that the store and what is read of it are each a type
/// a reader can hold in mind.
pub(crate) struct Queries<'a>(&'a Outbox);

/// The steps of a report's delivery, each one commit (`steps.rs`): the
/// delivery engine's view of the outbox.
pub(crate) struct Steps<'a>(&'a Outbox);

impl std::ops::Deref for Queries<'_> {
    type Target = Outbox;
    fn deref(&self) -> &Outbox {
        self.0
    }
}

impl std::ops::Deref for Steps<'_> {
    type Target = Outbox;
    fn deref(&self) -> &Outbox {
        self.0
    }
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").field("dir", &self.dir).finish()
    }
}

/// The back-off gates, kept per destination in `meta` as `name:id`: a
/// 429's wait, a refused key's pause, the shared rate window.
const GATES: [&str; 3] = ["not_before", "auth_pause", "rate_window"];

/// True for SQLite's "this is not a database / it is damaged" errors.
fn is_corruption(e: &Internal) -> bool {
    matches!(
        e,
        Internal::Sqlite(err) if matches!(
            err.sqlite_error_code(),
            Some(rusqlite::ErrorCode::NotADatabase) | Some(rusqlite::ErrorCode::DatabaseCorrupt)
        )
    )
}

impl Outbox {
    /// What is read of the outbox.
    pub(crate) fn queries(&self) -> Queries<'_> {
        Queries(self)
    }

    /// What delivery writes to the outbox.
    pub(crate) fn steps(&self) -> Steps<'_> {
        Steps(self)
    }

    /// Commits reports and their attachment rows in one transaction, after
    /// evicting what the caps require for each; all or nothing. The staged
    /// files become owned by the rows only if the transaction commits. An
    /// error about one report is an [`Internal::InBatch`] naming it.
    pub(crate) fn insert_many(
        &mut self,
        mut reports: Vec<NewReport>,
        policy: &Policy,
    ) -> Result<(Vec<ReportId>, Vec<Eviction>, Vec<PathBuf>)> {
        if self.durability == Durability::Full && reports.iter().any(|r| !r.attachments.is_empty())
        {
            sync_dir(&self.files)?;
        }
        let now = now_ms();
        let tx = Tx::write(&self.conn)?;
        // The sequence number is the row id, known before the insert
        // because the context carries it: above every row and every id
        // ever deleted (schema V5), so never reused.
        let first: i64 = tx
            .prepare_cached(
                "SELECT max(coalesce((SELECT max(id) FROM reports), 0),
                            coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'id_floor'), 0)) + 1",
            )?
            .query_row([], |r| r.get(0))?;
        let mut ids = Vec::with_capacity(reports.len());
        // Undelivered reports and their bytes: as the last insert left them
        // if nothing has changed since, else read (once per batch).
        let data_version: i64 = tx
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?;
        let mut totals = self
            .caps_cache
            .filter(|c| {
                c.data_version == data_version && c.total_changes == self.conn.total_changes()
            })
            .map(|c| (c.count, c.bytes));
        let mut evictions = Vec::new();
        let mut doomed = Vec::new();
        for (index, report) in reports.iter_mut().enumerate() {
            let seq = first + index as i64;
            let in_batch = |source| Internal::InBatch {
                index,
                source: Box::new(source),
            };
            report
                .context
                .insert("seq".into(), serde_json::Value::from(seq));
            for (item, field) in &report.context_fields {
                if let Some(v) = report.context.get(item) {
                    report.payload.insert(field.clone(), v.clone());
                }
            }
            let payload = crate::json::object_to_string(&report.payload);
            let context = crate::json::object_to_string(&report.context);
            let att_bytes: u64 = report.attachments.iter().map(|a| a.staged.size).sum();
            let bytes = payload.len() as u64 + att_bytes;
            let (e, d) = make_room(
                &tx,
                &self.files,
                policy,
                report.kind,
                bytes,
                first,
                &mut totals,
            )
            .map_err(in_batch)?;
            evictions.extend(e);
            doomed.extend(d);
            tx.prepare_cached(
                "INSERT INTO reports (id, client_id, seq, kind, state, summary, payload, context, submitted_at, bytes, destination)
                 VALUES (?2, ?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                report.client_id,
                seq,
                report.kind.as_str(),
                report.summary,
                payload,
                context,
                now,
                bytes as i64,
                self.dest
            ])?;
            for (pos, a) in report.attachments.iter().enumerate() {
                tx.prepare_cached(
                    "INSERT INTO attachments (report_id, position, element_key, file_name, content_type, stored_name, size, sha256)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    seq,
                    pos as i64,
                    a.element_key,
                    a.file_name,
                    a.content_type,
                    a.staged.stored_name,
                    a.staged.size as i64,
                    a.staged.sha256
                ])?;
            }
            ids.push(seq);
        }
        tx.commit()?;
        self.caps_cache = totals.map(|(count, bytes)| CapsCache {
            data_version,
            total_changes: self.conn.total_changes(),
            count,
            bytes,
        });
        for report in &mut reports {
            for a in &mut report.attachments {
                a.staged.keep();
            }
        }
        Ok((ids, evictions, doomed))
    }

    /// Evicts undelivered reports older than `max_age` and prunes finished
    /// rows older than `keep_delivered`. Returns the evictions and the files
    /// to delete (after the commit).
    pub(crate) fn expire(&mut self, policy: &Policy) -> Result<(Vec<Eviction>, Vec<PathBuf>)> {
        let now = now_ms();
        let cutoff = now - policy.max_age.as_millis() as i64;
        let tx = Tx::write(&self.conn)?;
        let old: Vec<(i64, String)> = {
            let mut stmt = tx.prepare_cached(
                "SELECT id, kind FROM reports WHERE state IN ('queued','created','dead') AND submitted_at < ?1",
            )?;
            let rows = stmt.query_map(params![cutoff], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut evictions = Vec::new();
        let mut doomed = Vec::new();
        for (id, kind) in old {
            let reason = format!(
                "older than the outbox's max age of {} days",
                policy.max_age.as_secs() / 86_400
            );
            doomed.extend(evict(&tx, &self.files, id, &kind, &reason)?);
            evictions.push(Eviction { id, reason });
        }
        let keep_cutoff = now - policy.keep_delivered.as_millis() as i64;
        for path in attachment_paths_where(
            &tx,
            &self.files,
            "r.state IN ('delivered','evicted') AND r.finished_at < ?1",
            keep_cutoff,
        )? {
            doomed.push(path);
        }
        tx.execute(
            "DELETE FROM reports WHERE state IN ('delivered','evicted') AND finished_at < ?1",
            params![keep_cutoff],
        )?;
        tx.commit()?;
        Ok((evictions, doomed))
    }

    /// Deletes one report (or all, with `None`); returns files to delete.
    pub(crate) fn purge(&mut self, id: Option<ReportId>) -> Result<Vec<PathBuf>> {
        let tx = Tx::write(&self.conn)?;
        let doomed = match id {
            Some(id) => {
                let doomed = attachment_paths_where(&tx, &self.files, "r.id = ?1", id)?;
                if tx.execute("DELETE FROM reports WHERE id = ?1", params![id])? == 0 {
                    return Err(Internal::NotFound(id));
                }
                doomed
            }
            None => {
                let doomed = attachment_paths_where(&tx, &self.files, "?1 = ?1", 0)?;
                tx.execute("DELETE FROM reports", [])?;
                doomed
            }
        };
        tx.commit()?;
        Ok(doomed)
    }
}

const STATUS_COLUMNS: &str = "id, client_id, seq, kind, state, summary, submitted_at, attempts, next_attempt_at, server_key, server_url, last_error, context";

fn status_of_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ReportStatus> {
    let state = ReportState::parse(&r.get::<_, String>(4)?).unwrap_or(ReportState::Queued);
    let next: i64 = r.get(8)?;
    Ok(ReportStatus {
        id: r.get(0)?,
        client_id: r.get(1)?,
        seq: r.get(2)?,
        kind: ReportKind::parse(&r.get::<_, String>(3)?).unwrap_or(ReportKind::Feedback),
        state,
        summary: r.get(5)?,
        submitted_at: from_ms(r.get(6)?),
        attempts: r.get(7)?,
        next_attempt_at: matches!(state, ReportState::Queued | ReportState::Created)
            .then(|| from_ms(next)),
        server_key: r.get(9)?,
        server_url: r.get(10)?,
        last_error: r
            .get::<_, Option<String>>(11)?
            .and_then(|s| serde_json::from_str(&s).ok()),
        attachments: Vec::new(),
        context: serde_json::from_str(&r.get::<_, String>(12)?).unwrap_or_default(),
    })
}

fn error_json(e: &DeliveryError) -> String {
    serde_json::to_string(e).unwrap_or_default()
}

fn meta_i64(tx: &Connection, key: &str) -> Result<i64> {
    let v: Option<String> = tx
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row(params![key], |r| r.get(0))
        .optional()?;
    Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
}

fn set_meta_tx(tx: &Connection, key: &str, value: &str) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, value])?;
    Ok(())
}

/// Sets a created report delivered; returns its attachment copies, to
/// delete, or `None` if it is not `created` any more (evicted meanwhile).
fn finish_tx(tx: &Connection, files: &Path, id: ReportId) -> Result<Option<Vec<PathBuf>>> {
    let n = tx
        .prepare_cached(
            "UPDATE reports SET state = 'delivered', finished_at = ?2, bytes = 0, last_error = NULL
             WHERE id = ?1 AND state = 'created'",
        )?
        .execute(params![id, now_ms()])?;
    if n == 0 {
        return Ok(None);
    }
    Ok(Some(attachment_paths_where(tx, files, "r.id = ?1", id)?))
}

/// Makes a report being delivered dead with its reason (not one that was
/// evicted or purged meanwhile), and returns the reason as stored. When a
/// create of the report went out and its answer was lost (the last one,
/// still in doubt, or an earlier one before it was sent again) and no key
/// was stored, the reason says that the server may have it after all.
fn mark_dead_tx(tx: &Connection, id: ReportId, error: &DeliveryError) -> Result<DeliveryError> {
    let in_doubt: bool = tx
        .query_row(
            "SELECT (resent_in_doubt = 1 OR create_sent_at IS NOT NULL) AND server_key IS NULL
             FROM reports WHERE id = ?1",
            params![id],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(false);
    let mut stored = error.clone();
    // A 2xx answer (unreadable) says itself that the server accepted it.
    if in_doubt && !error.status.is_some_and(|s| (200..300).contains(&s)) {
        stored.message.push_str(
            "; a create of this report was sent and its answer lost, \
             so the server may have the feedback from that attempt",
        );
    }
    tx.execute(
        "UPDATE reports SET state = 'dead', last_error = ?2, finished_at = ?3
         WHERE id = ?1 AND state IN ('queued','created')",
        params![id, error_json(&stored), now_ms()],
    )?;
    set_meta_tx(tx, "last_error", &error_json(&stored))?;
    Ok(stored)
}

/// Marks the create of `next` as about to be sent, if it is queued and not
/// already in doubt.
fn premark_tx(tx: &Connection, next: Option<ReportId>) -> Result<bool> {
    let Some(next) = next else {
        return Ok(false);
    };
    let n = tx
        .prepare_cached(
            "UPDATE reports SET create_sent_at = ?2
             WHERE id = ?1 AND state = 'queued' AND create_sent_at IS NULL",
        )?
        .execute(params![next, now_ms()])?;
    Ok(n == 1)
}

fn attachment_paths_where(
    tx: &Connection,
    files: &Path,
    condition: &str,
    arg: i64,
) -> Result<Vec<PathBuf>> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT a.stored_name FROM attachments a JOIN reports r ON r.id = a.report_id WHERE {condition}"
    ))?;
    let rows = stmt.query_map(params![arg], |r| r.get::<_, String>(0))?;
    let names: Vec<String> = rows.collect::<rusqlite::Result<_>>()?;
    Ok(names.into_iter().map(|n| files.join(n)).collect())
}

/// Turns a report into an eviction record: its attachment rows go (the
/// files after commit), the row stays with state `evicted` and its reason.
fn evict(
    tx: &Connection,
    files: &Path,
    id: ReportId,
    kind: &str,
    reason: &str,
) -> Result<Vec<PathBuf>> {
    let doomed = attachment_paths_where(tx, files, "r.id = ?1", id)?;
    tx.execute("DELETE FROM attachments WHERE report_id = ?1", params![id])?;
    let error = DeliveryError {
        status: None,
        message: format!("evicted: {reason}"),
        invalid_parameters: Vec::new(),
    };
    tx.execute(
        "UPDATE reports SET state = 'evicted', payload = '{}', bytes = 0, finished_at = ?2, last_error = ?3 WHERE id = ?1",
        params![id, now_ms(), error_json(&error)],
    )?;
    let n = meta_i64(tx, "evicted")? + 1;
    set_meta_tx(tx, "evicted", &n.to_string())?;
    if kind == ReportKind::Feedback.as_str() {
        let n = meta_i64(tx, "evicted_feedback")? + 1;
        set_meta_tx(tx, "evicted_feedback", &n.to_string())?;
    }
    Ok(doomed)
}

/// Evicts machine-made reports until a new report of `incoming_bytes` fits
/// the caps: crash reports oldest first, the newest crash last; typed
/// feedback never (the new report is refused instead).
///
/// Only reports with ids below `first_new` are candidates: a batch never
/// evicts its own reports. `totals` carries the undelivered count and bytes
/// from one report of a batch to the next (`None`: read them).
fn make_room(
    tx: &Connection,
    files: &Path,
    policy: &Policy,
    incoming: ReportKind,
    incoming_bytes: u64,
    first_new: i64,
    totals: &mut Option<(u64, u64)>,
) -> Result<(Vec<Eviction>, Vec<PathBuf>)> {
    if incoming_bytes > policy.max_bytes {
        return Err(Internal::OutboxFull(format!(
            "the report needs {incoming_bytes} bytes, more than the outbox's cap of {} bytes",
            policy.max_bytes
        )));
    }
    let mut evictions = Vec::new();
    let mut doomed = Vec::new();
    loop {
        let (count, bytes) = match *totals {
            Some(t) => t,
            None => {
                let (count, bytes): (i64, i64) = tx
                    .prepare_cached(
                        "SELECT count(*), coalesce(sum(bytes),0) FROM reports WHERE state IN ('queued','created','dead')",
                    )?
                    .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                (count as u64, bytes as u64)
            }
        };
        let over_count = count >= policy.max_reports as u64;
        let over_bytes = bytes + incoming_bytes > policy.max_bytes;
        if !over_count && !over_bytes {
            // The report goes in: the caller's running totals count it.
            *totals = Some((count + 1, bytes + incoming_bytes));
            return Ok((evictions, doomed));
        }
        // Read again after an eviction.
        *totals = None;
        // Crash reports, oldest first; while older crashes remain, the
        // newest is spared (unless the newcomer is itself a crash).
        let victim: Option<i64> = tx
            .query_row(
                "SELECT id FROM reports WHERE kind = 'crash' AND state IN ('queued','created','dead') AND id < ?2
                 ORDER BY (id = (SELECT max(id) FROM reports
                                 WHERE kind = 'crash' AND state IN ('queued','created','dead') AND id < ?2) AND ?1 = 0), id
                 LIMIT 1",
                params![(incoming == ReportKind::Crash) as i64, first_new],
                |r| r.get(0),
            )
            .optional()?;
        let Some(victim) = victim else {
            let which = if over_count {
                format!("{} reports", policy.max_reports)
            } else {
                format!("{} bytes", policy.max_bytes)
            };
            let batch_before: i64 = tx.query_row(
                "SELECT count(*) FROM reports WHERE id >= ?1",
                params![first_new],
                |r| r.get(0),
            )?;
            let also = if batch_before > 0 {
                format!(" and the {batch_before} reports before it in this batch")
            } else {
                String::new()
            };
            return Err(Internal::OutboxFull(format!(
                "the outbox holds its cap of {which} in feedback that people typed, which is never evicted to make room{also}"
            )));
        };
        let reason = if over_count {
            format!("outbox reached its cap of {} reports", policy.max_reports)
        } else {
            format!("outbox reached its cap of {} bytes", policy.max_bytes)
        };
        doomed.extend(evict(tx, files, victim, "crash", &reason)?);
        evictions.push(Eviction { id: victim, reason });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rate window's commit is not synced, and every commit after it
    /// is again (`PRAGMA synchronous` back to FULL, 2).
    #[test]
    fn the_rate_window_is_saved_unsynced_and_full_sync_restored() {
        let dir = tempfile::tempdir().unwrap();
        let policy = Policy::default();
        assert_eq!(policy.durability, Durability::Full);
        let (outbox, _) = Outbox::open(dir.path(), &policy).unwrap();
        let sync = |o: &Outbox| -> i64 {
            o.conn
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(sync(&outbox), 2);
        let mut w = crate::delivery::RateWindow::default();
        w.sent_ms.push_back(1_700_000_000_000);
        w.sent_ms.push_back(1_700_000_000_100);
        outbox.save_rate_window(&w).unwrap();
        assert_eq!(sync(&outbox), 2);
        assert_eq!(outbox.rate_window().unwrap().sent_ms, w.sent_ms);
    }

    /// Ids are UUIDs of version 4, variant 10, and do not repeat, also
    /// across threads started at the same moment.
    #[test]
    fn random_ids_are_v4_uuids_and_unique() {
        let ids: Vec<String> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..5000).map(|_| random_id()).collect::<Vec<_>>()))
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let unique: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        for id in &ids {
            let parts: Vec<&str> = id.split('-').collect();
            let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
            assert_eq!(lens, [8, 4, 4, 4, 12], "{id}");
            assert!(
                id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()),
                "{id}"
            );
            assert!(parts[2].starts_with('4'), "{id}");
            assert!("89ab".contains(&parts[3][..1]), "{id}");
        }
    }

    /// The chunked, threaded copy writes and hashes exactly its input, at
    /// every size around the chunk boundaries, with and without early syncs.
    #[test]
    fn copy_hashing_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let sizes = [
            0,
            1,
            STAGE_CHUNK - 1,
            STAGE_CHUNK,
            STAGE_CHUNK + 1,
            3 * STAGE_CHUNK + 5,
            EARLY_SYNC_BYTES as usize + 3 * STAGE_CHUNK + 7,
        ];
        for (i, size) in sizes.into_iter().enumerate() {
            let data: Vec<u8> = (0..size).map(|j| (j * 31 + j / 7) as u8).collect();
            for sync in [false, true] {
                let path = dir.path().join(format!("copy-{i}-{sync}"));
                let mut out = File::create(&path).unwrap();
                let early = sync.then(|| out.try_clone().unwrap());
                let (count, hasher, synced) =
                    copy_hashing(&mut io::Cursor::new(&data), &mut out, early).unwrap();
                synced.unwrap();
                drop(out);
                assert_eq!(count, size as u64);
                assert_eq!(hasher.finalize(), Sha256::digest(&data), "size {size}");
                assert!(fs::read(&path).unwrap() == data, "size {size}");
            }
        }
    }
}
