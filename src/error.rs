//! Errors: a detailed internal enum for the library's own code, and the
//! small public [`Error`] that apps (and every binding) see. The two are
//! converted in one place, [`From<Internal> for Error`], so that the rules
//! (storage-full detection, secret redaction) live in one spot.

use std::fmt;
use std::io;

/// What went wrong, as the app sees it. Messages never contain the API key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot be used; nothing was opened.
    InvalidConfig {
        /// What is wrong with it.
        reason: String,
    },
    /// A report or call argument was refused; the outbox is unchanged.
    InvalidInput {
        /// What is wrong with it.
        reason: String,
    },
    /// An attachment is larger than the policy (or the server) accepts.
    AttachmentTooLarge {
        /// The attachment's file name.
        name: String,
        /// Its size in bytes.
        size: u64,
        /// The largest size accepted.
        limit: u64,
    },
    /// An attachment file could not be read (missing, a directory, no permission).
    AttachmentUnreadable {
        /// The path or name given.
        name: String,
        /// Why it could not be read.
        reason: String,
    },
    /// The disk is full; the report was not accepted and the outbox is unchanged.
    StorageFull,
    /// The outbox's caps are reached with reports that may not be evicted
    /// (feedback that a person typed); the new report was not accepted.
    OutboxFull {
        /// Which cap was hit.
        reason: String,
    },
    /// The outbox could not be read or written.
    Storage {
        /// What failed.
        reason: String,
    },
    /// No report with this local id exists in the outbox.
    NotFound {
        /// The local id asked for.
        id: i64,
    },
    /// The call does not apply to the report's current state.
    InvalidState {
        /// Why.
        reason: String,
    },
    /// The client has been closed.
    Closed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidConfig { reason } => write!(f, "invalid configuration: {reason}"),
            Error::InvalidInput { reason } => write!(f, "invalid input: {reason}"),
            Error::AttachmentTooLarge { name, size, limit } => write!(
                f,
                "attachment {name:?} is {size} bytes, over the limit of {limit} bytes"
            ),
            Error::AttachmentUnreadable { name, reason } => {
                write!(f, "attachment {name:?} cannot be read: {reason}")
            }
            Error::StorageFull => write!(f, "storage full: the disk has no room for this report"),
            Error::OutboxFull { reason } => write!(f, "outbox full: {reason}"),
            Error::Storage { reason } => write!(f, "outbox storage error: {reason}"),
            Error::NotFound { id } => write!(f, "no report with id {id}"),
            Error::InvalidState { reason } => write!(f, "invalid state: {reason}"),
            Error::Closed => write!(f, "the client is closed"),
        }
    }
}

impl std::error::Error for Error {}

/// The library's internal error: keeps the source errors for context.
#[derive(Debug)]
pub(crate) enum Internal {
    Sqlite(rusqlite::Error),
    Io {
        what: String,
        source: io::Error,
    },
    Config(String),
    Input(String),
    TooLarge {
        name: String,
        size: u64,
        limit: u64,
    },
    Unreadable {
        name: String,
        source: io::Error,
    },
    OutboxFull(String),
    NotFound(i64),
    State(String),
    Closed,
    /// An error about one report of a batch (`submit_many`): its index.
    InBatch {
        index: usize,
        source: Box<Internal>,
    },
}

pub(crate) type Result<T, E = Internal> = std::result::Result<T, E>;

impl Internal {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Internal {
        Internal::Io {
            what: what.into(),
            source,
        }
    }

    /// True when the underlying failure is a full disk.
    pub(crate) fn is_storage_full(&self) -> bool {
        match self {
            Internal::Sqlite(e) => {
                e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
                    || matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == 13)
            }
            Internal::Io { source, .. } => is_enospc(source),
            Internal::InBatch { source, .. } => source.is_storage_full(),
            _ => false,
        }
    }
}

fn is_enospc(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull || e.kind() == io::ErrorKind::QuotaExceeded
}

impl From<rusqlite::Error> for Internal {
    fn from(e: rusqlite::Error) -> Self {
        Internal::Sqlite(e)
    }
}

impl From<Internal> for Error {
    fn from(e: Internal) -> Self {
        if e.is_storage_full() {
            return Error::StorageFull;
        }
        match e {
            Internal::Sqlite(e) => Error::Storage {
                reason: format!("database: {e}"),
            },
            Internal::Io { what, source } => Error::Storage {
                reason: format!("{what}: {source}"),
            },
            Internal::Config(reason) => Error::InvalidConfig { reason },
            Internal::Input(reason) => Error::InvalidInput { reason },
            Internal::TooLarge { name, size, limit } => {
                Error::AttachmentTooLarge { name, size, limit }
            }
            Internal::Unreadable { name, source } => Error::AttachmentUnreadable {
                name,
                reason: source.to_string(),
            },
            Internal::OutboxFull(reason) => Error::OutboxFull { reason },
            Internal::NotFound(id) => Error::NotFound { id },
            Internal::State(reason) => Error::InvalidState { reason },
            Internal::Closed => Error::Closed,
            Internal::InBatch { index, source } => {
                // The kind of the item's error, its reason naming the item.
                let at = |reason: String| format!("batch item {index}: {reason}");
                match Error::from(*source) {
                    Error::InvalidConfig { reason } => Error::InvalidConfig { reason: at(reason) },
                    Error::InvalidInput { reason } => Error::InvalidInput { reason: at(reason) },
                    Error::AttachmentUnreadable { name, reason } => Error::AttachmentUnreadable {
                        name,
                        reason: at(reason),
                    },
                    Error::OutboxFull { reason } => Error::OutboxFull { reason: at(reason) },
                    Error::Storage { reason } => Error::Storage { reason: at(reason) },
                    Error::InvalidState { reason } => Error::InvalidState { reason: at(reason) },
                    other => other,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_becomes_storage_full() {
        let e = Internal::io("write", io::Error::from(io::ErrorKind::StorageFull));
        assert_eq!(Error::from(e), Error::StorageFull);
    }

    #[test]
    fn sqlite_full_becomes_storage_full() {
        let e = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        );
        assert_eq!(Error::from(Internal::from(e)), Error::StorageFull);
    }

    #[test]
    fn other_errors_keep_their_kind() {
        assert_eq!(
            Error::from(Internal::NotFound(7)),
            Error::NotFound { id: 7 }
        );
        let msg = Error::from(Internal::Input("summary is empty".into())).to_string();
        assert_eq!(msg, "invalid input: summary is empty");
    }

    #[test]
    fn batch_errors_keep_their_kind_and_name_the_item() {
        let e = Internal::InBatch {
            index: 3,
            source: Box::new(Internal::Input("summary is empty".into())),
        };
        assert_eq!(
            Error::from(e).to_string(),
            "invalid input: batch item 3: summary is empty"
        );
        let full = Internal::InBatch {
            index: 0,
            source: Box::new(Internal::io(
                "copy",
                io::Error::from(io::ErrorKind::StorageFull),
            )),
        };
        assert_eq!(Error::from(full), Error::StorageFull);
    }
}
