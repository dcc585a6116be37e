//! The files beside the database: owner-only folders and files, staged
//! copies (temp name, hashed while copied, fsynced, renamed), the disk
//! reserve, the lock files.

use super::*;

/// Creates a directory (and parents) readable by the owner only.
pub(super) fn create_private_dir(path: &Path) -> Result<()> {
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

pub(super) fn private_file_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

pub(super) fn sync_dir(path: &Path) -> Result<()> {
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
    pub(super) keep: bool,
}

impl Staged {
    pub(super) fn keep(&mut self) {
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
pub(super) struct Tee<W: Write> {
    pub(super) inner: W,
    pub(super) hasher: Sha256,
    pub(super) count: u64,
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
pub(super) const STAGE_CHUNK: usize = 256 * 1024;

/// Reads until `buf` is full or the input ends; the bytes read.
pub(super) fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
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
pub(super) const EARLY_SYNC_BYTES: u64 = 8 * 1024 * 1024;

/// What [`copy_hashing`] copied: bytes, their hash, and how the early
/// syncs went (an error there must fail the copy: the final fsync on the
/// same file description may not report it again).
pub(super) type Copied = (u64, Sha256, io::Result<()>);

/// Copies `reader` to `out` in large chunks and hashes what was written.
/// Past the first chunk, SHA-256 (about 1.5 GB/s) runs on a second thread
/// so that it overlaps the reads and writes instead of adding to them, and
/// with `early_sync` (a handle on the file behind `out`) a third thread
/// starts the disk writes while the copy goes on, as `fs::copy` followed by
/// an fsync cannot. At most four chunks are in flight: memory stays flat.
pub(super) fn copy_hashing(
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
pub(super) const RESERVE_NAME: &str = "reserve";

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
pub(super) fn copy_error(e: io::Error, name: &str) -> Internal {
    if e.kind() == io::ErrorKind::StorageFull || e.kind() == io::ErrorKind::QuotaExceeded {
        Internal::io("cannot copy the attachment", e)
    } else {
        Internal::Unreadable {
            name: name.to_string(),
            source: e,
        }
    }
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
