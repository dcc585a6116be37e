//! The outbox: an SQLite database (WAL) beside a folder of attachment
//! copies. Every write that the app relies on commits before returning.
//!
//! Files: `outbox.sqlite` (+ `-wal`, `-shm`), `files/` (attachment copies,
//! named by a random id), `ingest.lock` (held shared while a submit copies
//! files, exclusively while orphans are swept), `flush.lock` (one flush at a
//! time across processes).

pub(crate) mod schema;

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

/// Creates a directory (and parents) readable by the owner only.
fn create_private_dir(path: &Path) -> Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(path)
        .map_err(|e| Internal::io(format!("cannot create {}", path.display()), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

fn private_file_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

fn sync_dir(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(path)
            .and_then(|d| d.sync_all())
            .map_err(|e| Internal::io(format!("cannot sync {}", path.display()), e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// A file copied into `files/`, not yet owned by a committed row. Dropping
/// it removes the file, so a failed submit leaves nothing behind.
#[derive(Debug)]
pub(crate) struct Staged {
    pub path: PathBuf,
    pub stored_name: String,
    pub size: u64,
    pub sha256: String,
    keep: bool,
}

impl Staged {
    fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Counts and hashes bytes as they pass.
struct Tee<W: Write> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Bytes read at a time when copying an attachment in.
const STAGE_CHUNK: usize = 256 * 1024;

/// Reads until `buf` is full or the input ends; the bytes read.
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// With `early_sync`, written data is handed to the disk each time this
/// much more has been written, so that the final fsync finds little left.
const EARLY_SYNC_BYTES: u64 = 8 * 1024 * 1024;

/// What [`copy_hashing`] copied: bytes, their hash, and how the early
/// syncs went (an error there must fail the copy: the final fsync on the
/// same file description may not report it again).
type Copied = (u64, Sha256, io::Result<()>);

/// Copies `reader` to `out` in large chunks and hashes what was written.
/// Past the first chunk, SHA-256 (about 1.5 GB/s) runs on a second thread
/// so that it overlaps the reads and writes instead of adding to them, and
/// with `early_sync` (a handle on the file behind `out`) a third thread
/// starts the disk writes while the copy goes on, as `fs::copy` followed by
/// an fsync cannot. At most four chunks are in flight: memory stays flat.
fn copy_hashing(
    reader: &mut dyn Read,
    out: &mut dyn Write,
    early_sync: Option<File>,
) -> io::Result<Copied> {
    let mut first = vec![0u8; STAGE_CHUNK];
    let n = read_full(reader, &mut first)?;
    out.write_all(&first[..n])?;
    if n < STAGE_CHUNK {
        let mut hasher = Sha256::new();
        hasher.update(&first[..n]);
        return Ok((n as u64, hasher, Ok(())));
    }
    std::thread::scope(|scope| {
        let (tick, ticks) = std::sync::mpsc::channel::<()>();
        let syncing = early_sync.and_then(|file| {
            std::thread::Builder::new()
                .name("fieldreport-sync".into())
                .spawn_scoped(scope, move || -> io::Result<()> {
                    while ticks.recv().is_ok() {
                        while ticks.try_recv().is_ok() {}
                        file.sync_data()?;
                    }
                    Ok(())
                })
                .ok()
        });
        let (to_hasher, inbox) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
        let (give_back, spare) = std::sync::mpsc::channel::<Vec<u8>>();
        let spawned = std::thread::Builder::new()
            .name("fieldreport-hash".into())
            .spawn_scoped(scope, move || {
                let mut hasher = Sha256::new();
                for chunk in inbox {
                    hasher.update(&chunk);
                    let _ = give_back.send(chunk);
                }
                hasher
            });
        let Ok(hashing) = spawned else {
            // No thread to be had: hash on this one.
            let mut hasher = Sha256::new();
            hasher.update(&first);
            let mut count = n as u64;
            loop {
                let n = read_full(reader, &mut first)?;
                if n == 0 {
                    return Ok((count, hasher, Ok(())));
                }
                out.write_all(&first[..n])?;
                hasher.update(&first[..n]);
                count += n as u64;
            }
        };
        let mut count = n as u64;
        let mut unsynced = count;
        let mut written = first;
        let copied = loop {
            if to_hasher.send(written).is_err() {
                break Err(io::Error::other("the hashing thread stopped"));
            }
            let mut buf = spare.try_recv().unwrap_or_default();
            buf.resize(STAGE_CHUNK, 0);
            let n = match read_full(reader, &mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) => break Err(e),
            };
            buf.truncate(n);
            if let Err(e) = out.write_all(&buf) {
                break Err(e);
            }
            count += n as u64;
            unsynced += n as u64;
            if unsynced >= EARLY_SYNC_BYTES {
                let _ = tick.send(());
                unsynced = 0;
            }
            written = buf;
        };
        drop(to_hasher);
        drop(tick);
        let hasher = hashing
            .join()
            .map_err(|_| io::Error::other("the hashing thread panicked"))?;
        let synced = match syncing {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the sync thread panicked"))),
            None => Ok(()),
        };
        copied.map(|_| (count, hasher, synced))
    })
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
    /// Opens (creating if needed) the outbox in `dir`. A database that is
    /// not SQLite or is damaged is moved aside, with the attachment folder,
    /// and a fresh outbox is opened; the second value says where it went.
    pub(crate) fn open(dir: &Path, policy: &Policy) -> Result<(Outbox, Option<PathBuf>)> {
        create_private_dir(dir)?;
        // Something other than a folder where the attachment copies belong
        // (a file, a FIFO): kept aside, and the database opened as it is;
        // reports whose copies were there deliver without them, each
        // rejected attachment with its reason.
        let files_aside = match fs::symlink_metadata(dir.join(FILES_DIR)) {
            Ok(m) if !m.is_dir() => Some(Self::move_files_aside(dir)?),
            _ => None,
        };
        let lost = if Self::lost_its_database(dir) {
            Some("the outbox database is not a database file")
        } else if Self::cut_short(dir) {
            Some("the outbox database was cut short")
        } else {
            None
        };
        let opened = match lost {
            Some(why) => Err(Internal::State(why.into())),
            None => Self::open_db(dir, policy),
        };
        match opened {
            Ok(o) => {
                if let Some(aside) = &files_aside {
                    o.set_meta("moved_aside", &aside.display().to_string())?;
                }
                Ok((o, files_aside))
            }
            Err(e) if lost.is_some() || is_corruption(&e) => {
                let aside = Self::move_aside(dir)?;
                let o = Self::open_db(dir, policy)?;
                o.set_meta("moved_aside", &aside.display().to_string())?;
                Ok((o, Some(aside)))
            }
            Err(e) => Err(e),
        }
    }

    /// True when the database path holds something that is not a database
    /// file (a directory, a FIFO, a socket), or an empty file, without a
    /// write-ahead log, beside attachment copies: a database emptied behind
    /// our back. Opened as it is, the first would fail forever (or block)
    /// and the second would pass for a fresh outbox whose copies the orphan
    /// sweep then deletes; both are moved aside like a corrupt database.
    fn lost_its_database(dir: &Path) -> bool {
        let Ok(meta) = fs::metadata(dir.join(DB_NAME)) else {
            return false;
        };
        if !meta.is_file() {
            return true;
        }
        let wal_empty = fs::metadata(dir.join(format!("{DB_NAME}-wal")))
            .map(|m| m.len() == 0)
            .unwrap_or(true);
        meta.len() == 0
            && wal_empty
            && fs::read_dir(dir.join(FILES_DIR)).is_ok_and(|mut entries| {
                entries.any(|e| {
                    e.is_ok_and(|e| !e.file_name().to_string_lossy().starts_with(TMP_PREFIX))
                })
            })
    }

    /// True when the database file ends inside a page while its write-ahead
    /// log is empty. SQLite writes whole pages, so only a truncation behind
    /// our back leaves that; SQLite itself would read the last page as zeros
    /// and fail later, mid-delivery, instead of now.
    fn cut_short(dir: &Path) -> bool {
        let path = dir.join(DB_NAME);
        let Ok(meta) = fs::metadata(&path) else {
            return false;
        };
        let wal_empty = fs::metadata(dir.join(format!("{DB_NAME}-wal")))
            .map(|m| m.len() == 0)
            .unwrap_or(true);
        let mut header = [0u8; 18];
        let Ok(()) = File::open(&path).and_then(|mut f| f.read_exact(&mut header)) else {
            return false;
        };
        // Bytes 16-17: the page size, big-endian; 1 stands for 65536.
        let page_size = match u16::from_be_bytes([header[16], header[17]]) {
            1 => 65_536,
            n => u64::from(n),
        };
        wal_empty
            && header.starts_with(b"SQLite format 3\0")
            && page_size.is_power_of_two()
            && page_size >= 512
            && meta.len() % page_size != 0
    }

    fn move_files_aside(dir: &Path) -> Result<PathBuf> {
        let aside = dir.join(format!("corrupt-{}", now_ms()));
        create_private_dir(&aside)?;
        fs::rename(dir.join(FILES_DIR), aside.join(FILES_DIR))
            .map_err(|e| Internal::io("cannot move the damaged attachment folder aside", e))?;
        sync_dir(dir)?;
        Ok(aside)
    }

    fn move_aside(dir: &Path) -> Result<PathBuf> {
        let stamp = now_ms();
        let aside = dir.join(format!("corrupt-{stamp}"));
        create_private_dir(&aside)?;
        for name in [
            DB_NAME.to_string(),
            format!("{DB_NAME}-wal"),
            format!("{DB_NAME}-shm"),
            FILES_DIR.to_string(),
        ] {
            let from = dir.join(&name);
            if from.exists() {
                fs::rename(&from, aside.join(&name))
                    .map_err(|e| Internal::io(format!("cannot move {name} aside"), e))?;
            }
        }
        sync_dir(dir)?;
        Ok(aside)
    }

    fn open_db(dir: &Path, policy: &Policy) -> Result<Outbox> {
        let files = dir.join(FILES_DIR);
        create_private_dir(&files)?;
        let db_path = dir.join(DB_NAME);
        if !db_path.exists() {
            // Create it ourselves so that it is owner-only from the start;
            // SQLite gives the -wal and -shm files the same mode.
            match private_file_options().open(&db_path) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Internal::io("cannot create the outbox database", e)),
            }
        }
        let mut conn = Connection::open(&db_path)?;
        conn.busy_timeout(policy.busy_timeout)?;
        // Reading the schema fails here for a file that is not SQLite.
        let _: i64 = conn.query_row("PRAGMA schema_version", [], |r| r.get(0))?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Internal::State(format!(
                "the outbox database could not switch to WAL mode (got {mode})"
            )));
        }
        let sync = match policy.durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", sync)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // rusqlite clears a cached statement's bindings when it goes back to
        // the cache, and SQLite then re-prepares, on its next use, every
        // statement whose plan could depend on a bound value (any `col = ?`
        // on an index): without the query planner stability guarantee,
        // `prepare_cached` parses the SQL again each time.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        if let Err(e) = schema::migrate(&mut conn, schema::MIGRATIONS) {
            // An upgrade needs room (schema 5 copies the reports table): on
            // a full disk the reserve kept for delivery makes it, or the
            // outbox would stay closed, and undelivered, until space returns.
            // Not when the whole database is larger than the reserve: the
            // copy would not fit either, and the reserve would be gone.
            let fits = e.is_storage_full() && {
                let db_bytes: i64 = conn.query_row(
                    "SELECT page_count * page_size FROM pragma_page_count, pragma_page_size",
                    [],
                    |r| r.get(0),
                )?;
                db_bytes.max(0) as u64 <= policy.disk_reserve_bytes
            };
            if !(fits && release_reserve_after(&e, dir, policy.disk_reserve_bytes)) {
                return Err(e);
            }
            schema::migrate(&mut conn, schema::MIGRATIONS)?;
        }
        // A damaged page shows up on the first real read; check the tables.
        conn.query_row("SELECT count(*) FROM reports", [], |r| r.get::<_, i64>(0))?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Outbox {
            conn,
            dir: dir.to_path_buf(),
            files,
            durability: policy.durability,
            caps_cache: None,
            dest: 0,
        })
    }

    /// Removes files in `files/` that no undelivered report owns: left by a
    /// submit that was killed between copying and committing, or by a
    /// process that ended before it deleted a delivered report's copies.
    /// Skipped while another submit (in any process) is copying files.
    pub(crate) fn sweep_orphans(&self) -> Result<usize> {
        let lock = open_lock(&self.dir.join("ingest.lock"))?;
        if lock.try_lock().is_err() {
            return Ok(0);
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT 1 FROM attachments a JOIN reports r ON r.id = a.report_id
                 WHERE a.stored_name = ?1 AND r.state != 'delivered'",
        )?;
        let mut removed = 0;
        let entries = fs::read_dir(&self.files)
            .map_err(|e| Internal::io("cannot list the attachment folder", e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let owned = !name.starts_with(TMP_PREFIX) && stmt.exists(params![name]).unwrap_or(true);
            if !owned && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Copies `reader` into a new file in `files/`, hashing as it goes and
    /// refusing more than `limit` bytes; fsynced and renamed into place.
    pub(crate) fn stage(
        files_dir: &Path,
        durability: Durability,
        reader: &mut dyn Read,
        limit: u64,
        name_for_errors: &str,
        gzip: bool,
    ) -> Result<Staged> {
        let stored_name = format!("att-{}", random_id());
        let tmp = files_dir.join(format!("{TMP_PREFIX}{stored_name}"));
        let file = private_file_options()
            .open(&tmp)
            .map_err(|e| Internal::io("cannot create an attachment copy", e))?;
        let mut guard = Staged {
            path: tmp.clone(),
            stored_name: stored_name.clone(),
            size: 0,
            sha256: String::new(),
            keep: false,
        };
        let mut tee = Tee {
            inner: io::BufWriter::with_capacity(256 * 1024, file),
            hasher: Sha256::new(),
            count: 0,
        };
        let mut limited = reader.take(if gzip { u64::MAX } else { limit + 1 });
        let copy_result = if gzip {
            let mut enc = flate2::write::GzEncoder::new(&mut tee, flate2::Compression::default());
            io::copy(&mut limited, &mut enc).and_then(|_| enc.finish().map(|_| Ok(())))
        } else {
            // Not on Apple platforms, where every fsync is an F_FULLFSYNC
            // (a drive cache flush): there the copy is synced once, below.
            let early_sync = match durability {
                Durability::Full if cfg!(any(target_os = "linux", target_os = "android")) => {
                    tee.inner.get_ref().try_clone().ok()
                }
                _ => None,
            };
            copy_hashing(&mut limited, &mut tee.inner, early_sync).map(|(count, hasher, synced)| {
                tee.count = count;
                tee.hasher = hasher;
                synced
            })
        };
        copy_result
            .map_err(|e| copy_error(e, name_for_errors))?
            .map_err(|e| Internal::io("cannot sync an attachment copy", e))?;
        if tee.count > limit {
            return Err(Internal::TooLarge {
                name: name_for_errors.to_string(),
                size: tee.count,
                limit,
            });
        }
        let file = tee
            .inner
            .into_inner()
            .map_err(|e| Internal::io("cannot write an attachment copy", e.into_error()))?;
        if durability == Durability::Full {
            file.sync_all()
                .map_err(|e| Internal::io("cannot sync an attachment copy", e))?;
        }
        drop(file);
        let final_path = files_dir.join(&stored_name);
        fs::rename(&tmp, &final_path)
            .map_err(|e| Internal::io("cannot rename an attachment copy", e))?;
        guard.path = final_path;
        guard.size = tee.count;
        guard.sha256 = tee
            .hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(guard)
    }

    pub(crate) fn files_dir(&self) -> &Path {
        &self.files
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
    /// pre-marked as in [`Outbox::mark_delivered`].
    pub(crate) fn store_created(
        &mut self,
        id: ReportId,
        created: &Created,
        routes: &[(i64, Result<String, String>)],
        delivered: bool,
        next: Option<ReportId>,
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
            if let Err(reason) = route {
                tx.execute(
                    "UPDATE attachments SET state = 'rejected', reason = ?2 WHERE id = ?1",
                    params![att_id, reason],
                )?;
            }
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
    pub(crate) fn mark_delivered(
        &mut self,
        id: ReportId,
        next: Option<ReportId>,
    ) -> Result<Stored> {
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

    fn state_of(&self, id: ReportId) -> Result<ReportState> {
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

    fn with_attachments(&self, mut status: ReportStatus) -> Result<ReportStatus> {
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
    /// goes on uploading there, so only queued ones move). Returns how many.
    pub(crate) fn retarget_other_destinations(&self) -> Result<u64> {
        Ok(self.conn.execute(
            "UPDATE reports SET destination = ?1
             WHERE state = 'queued' AND destination != ?1 AND create_sent_at IS NULL",
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

    pub(crate) fn count_pending_dead(&self) -> Result<(u64, u64)> {
        let s = self.stats()?;
        Ok((s.pending, s.dead))
    }
}

pub(crate) fn open_lock(path: &Path) -> Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
        .map_err(|e| Internal::io(format!("cannot open {}", path.display()), e))
}

/// Name of the disk reserve in the outbox folder (see
/// [`Policy::disk_reserve_bytes`]).
const RESERVE_NAME: &str = "reserve";

/// Makes the disk reserve if it is missing and there is room: real blocks
/// (zeros written, not a sparse file), synced. On a full disk it leaves
/// nothing behind and says so.
pub(crate) fn ensure_reserve(dir: &Path, bytes: u64) -> bool {
    if has_reserve(dir, bytes) {
        return true;
    }
    let path = dir.join(RESERVE_NAME);
    // Left by a process killed while making one (a minute old: not one
    // that another process is writing now).
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let stale = e
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .is_some_and(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(60));
            if stale
                && e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{TMP_PREFIX}{RESERVE_NAME}-"))
            {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    // A name of its own: two processes making it at once must not write
    // into, or delete, each other's file.
    let tmp = dir.join(format!("{TMP_PREFIX}{RESERVE_NAME}-{}", random_id()));
    let made = (|| -> io::Result<()> {
        let mut f = private_file_options().open(&tmp)?;
        let zeros = vec![0u8; 64 * 1024];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            f.write_all(&zeros[..n])?;
            left -= n as u64;
        }
        f.sync_all()?;
        fs::rename(&tmp, &path)
    })();
    if made.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    made.is_ok()
}

/// True when the reserve is in place at its full size (or none is wanted).
pub(crate) fn has_reserve(dir: &Path, bytes: u64) -> bool {
    bytes == 0 || fs::metadata(dir.join(RESERVE_NAME)).is_ok_and(|m| m.len() >= bytes)
}

/// After a step failed on a full disk, gives the disk reserve (of policy
/// size `bytes`) up so that the step can be tried once more; `true` if it
/// did, `false` for any other failure or when there was no reserve.
pub(crate) fn release_reserve_after(e: &Internal, dir: &Path, bytes: u64) -> bool {
    e.is_storage_full() && bytes > 0 && fs::remove_file(dir.join(RESERVE_NAME)).is_ok()
}

/// Deletes files after the transaction that disowned them committed.
pub(crate) fn remove_files(paths: &[PathBuf]) {
    for p in paths {
        let _ = fs::remove_file(p);
    }
}

/// A full disk is ours to report as such; any other failure while copying
/// is reported against the caller's file.
fn copy_error(e: io::Error, name: &str) -> Internal {
    if e.kind() == io::ErrorKind::StorageFull || e.kind() == io::ErrorKind::QuotaExceeded {
        Internal::io("cannot copy the attachment", e)
    } else {
        Internal::Unreadable {
            name: name.to_string(),
            source: e,
        }
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
