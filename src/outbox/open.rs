//! Opening an outbox: the database (moved aside when damaged), the
//! files beside it, orphans left by a killed submit, staging a copy.

use super::*;

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
    pub(super) fn lost_its_database(dir: &Path) -> bool {
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
    pub(super) fn cut_short(dir: &Path) -> bool {
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

    pub(super) fn move_files_aside(dir: &Path) -> Result<PathBuf> {
        let aside = dir.join(format!("corrupt-{}", now_ms()));
        create_private_dir(&aside)?;
        fs::rename(dir.join(FILES_DIR), aside.join(FILES_DIR))
            .map_err(|e| Internal::io("cannot move the damaged attachment folder aside", e))?;
        sync_dir(dir)?;
        Ok(aside)
    }

    pub(super) fn move_aside(dir: &Path) -> Result<PathBuf> {
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

    pub(super) fn open_db(dir: &Path, policy: &Policy) -> Result<Outbox> {
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

    pub(crate) fn files_dir(&self) -> &Path {
        &self.files
    }
}
