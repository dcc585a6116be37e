//! The foreign error and its conversions to and from the core error.

use super::*;

/// The foreign mirror of [`crate::Error`]; see there for each variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldReportError {
    InvalidConfig { reason: String },
    InvalidInput { reason: String },
    AttachmentTooLarge { name: String, size: u64, limit: u64 },
    AttachmentUnreadable { name: String, reason: String },
    StorageFull,
    OutboxFull { reason: String },
    Storage { reason: String },
    NotFound { id: i64 },
    InvalidState { reason: String },
    Closed,
}

impl From<CoreError> for FieldReportError {
    fn from(e: CoreError) -> Self {
        // Exhaustive on purpose: a new core variant must be mirrored here
        // (and in uniffi.udl) before the crate compiles again.
        match e {
            CoreError::InvalidConfig { reason } => FieldReportError::InvalidConfig { reason },
            CoreError::InvalidInput { reason } => FieldReportError::InvalidInput { reason },
            CoreError::AttachmentTooLarge { name, size, limit } => {
                FieldReportError::AttachmentTooLarge { name, size, limit }
            }
            CoreError::AttachmentUnreadable { name, reason } => {
                FieldReportError::AttachmentUnreadable { name, reason }
            }
            CoreError::StorageFull => FieldReportError::StorageFull,
            CoreError::OutboxFull { reason } => FieldReportError::OutboxFull { reason },
            CoreError::Storage { reason } => FieldReportError::Storage { reason },
            CoreError::NotFound { id } => FieldReportError::NotFound { id },
            CoreError::InvalidState { reason } => FieldReportError::InvalidState { reason },
            CoreError::Closed => FieldReportError::Closed,
        }
    }
}

impl From<FieldReportError> for CoreError {
    fn from(e: FieldReportError) -> Self {
        match e {
            FieldReportError::InvalidConfig { reason } => CoreError::InvalidConfig { reason },
            FieldReportError::InvalidInput { reason } => CoreError::InvalidInput { reason },
            FieldReportError::AttachmentTooLarge { name, size, limit } => {
                CoreError::AttachmentTooLarge { name, size, limit }
            }
            FieldReportError::AttachmentUnreadable { name, reason } => {
                CoreError::AttachmentUnreadable { name, reason }
            }
            FieldReportError::StorageFull => CoreError::StorageFull,
            FieldReportError::OutboxFull { reason } => CoreError::OutboxFull { reason },
            FieldReportError::Storage { reason } => CoreError::Storage { reason },
            FieldReportError::NotFound { id } => CoreError::NotFound { id },
            FieldReportError::InvalidState { reason } => CoreError::InvalidState { reason },
            FieldReportError::Closed => CoreError::Closed,
        }
    }
}

/// The core error's message: one wording in every language.
impl fmt::Display for FieldReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&CoreError::from(self.clone()), f)
    }
}

impl std::error::Error for FieldReportError {}

pub(crate) type Result<T, E = FieldReportError> = std::result::Result<T, E>;

pub(crate) fn invalid_input(reason: impl Into<String>) -> FieldReportError {
    FieldReportError::InvalidInput {
        reason: reason.into(),
    }
}
