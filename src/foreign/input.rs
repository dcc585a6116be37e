//! What goes in: fields, attachments, feedback, crash reports and batches.

use super::*;

/// An extra field as JSON text.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub json_value: String,
}

impl Field {
    pub(crate) fn into_core(self) -> Result<(String, serde_json::Value)> {
        match serde_json::from_str(&self.json_value) {
            Ok(v) => Ok((self.name, v)),
            Err(e) => Err(invalid_input(format!(
                "field {:?}: json_value is not JSON text ({e}); \
                 a string value must be quoted, e.g. \"\\\"text\\\"\"",
                self.name
            ))),
        }
    }
}

pub(crate) fn fields_into_core(fields: Vec<Field>) -> Result<Vec<(String, serde_json::Value)>> {
    fields.into_iter().map(Field::into_core).collect()
}

/// An attachment from a path or from bytes.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub element_key: String,
    pub path: Option<String>,
    pub data: Option<Vec<u8>>,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
}

impl Attachment {
    pub(crate) fn into_core(self) -> Result<core_report::Attachment> {
        let source = match (self.path, self.data) {
            (Some(p), None) => core_report::AttachmentSource::Path(PathBuf::from(p)),
            (None, Some(b)) => core_report::AttachmentSource::Bytes(b),
            (Some(_), Some(_)) => {
                return Err(invalid_input(format!(
                    "attachment for element {:?} has both path and data: give exactly one",
                    self.element_key
                )))
            }
            (None, None) => {
                return Err(invalid_input(format!(
                    "attachment for element {:?} has neither path nor data: give exactly one",
                    self.element_key
                )))
            }
        };
        Ok(core_report::Attachment {
            element_key: self.element_key,
            file_name: self.file_name,
            content_type: self.content_type,
            source,
        })
    }
}

pub(crate) fn attachments_into_core(list: Vec<Attachment>) -> Result<Vec<core_report::Attachment>> {
    list.into_iter().map(Attachment::into_core).collect()
}

/// Feedback a person wrote.
#[derive(Debug, Clone)]
pub struct Feedback {
    pub summary: String,
    pub description: Option<String>,
    pub submitter: Option<String>,
    pub fields: Vec<Field>,
    pub attachments: Vec<Attachment>,
}

impl Feedback {
    pub(crate) fn into_core(self) -> Result<core_report::Feedback> {
        Ok(core_report::Feedback {
            summary: self.summary,
            description: self.description,
            submitter: self.submitter,
            fields: fields_into_core(self.fields)?,
            attachments: attachments_into_core(self.attachments)?,
        })
    }
}

/// A crash report from text or a file.
#[derive(Debug, Clone)]
pub struct CrashReport {
    pub text: Option<String>,
    pub path: Option<String>,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub submitter: Option<String>,
    pub file_name: Option<String>,
    pub fields: Vec<Field>,
    pub attachments: Vec<Attachment>,
}

impl CrashReport {
    pub(crate) fn into_core(self) -> Result<core_report::CrashReport> {
        let log = match (self.text, self.path) {
            (Some(t), None) => core_report::CrashLog::Text(t),
            (None, Some(p)) => core_report::CrashLog::File(PathBuf::from(p)),
            (Some(_), Some(_)) => {
                return Err(invalid_input(
                    "crash report has both text and path: give exactly one",
                ))
            }
            (None, None) => {
                return Err(invalid_input(
                    "crash report has neither text nor path: give exactly one",
                ))
            }
        };
        Ok(core_report::CrashReport {
            log,
            summary: self.summary,
            description: self.description,
            submitter: self.submitter,
            file_name: self.file_name,
            fields: fields_into_core(self.fields)?,
            attachments: attachments_into_core(self.attachments)?,
        })
    }
}

/// One report of a batch; see [`core_report::Submission`].
#[derive(Debug, Clone)]
pub enum Submission {
    Feedback { feedback: Feedback },
    Crash { crash: CrashReport },
}

impl Submission {
    pub(crate) fn into_core(self) -> Result<core_report::Submission> {
        Ok(match self {
            Submission::Feedback { feedback } => {
                core_report::Submission::Feedback(feedback.into_core()?)
            }
            Submission::Crash { crash } => core_report::Submission::Crash(crash.into_core()?),
        })
    }
}

/// Converts a batch, naming the item a conversion error is about the way
/// the core names it (`batch item N: ` before the reason, same kind).
pub(crate) fn batch_into_core(reports: Vec<Submission>) -> Result<Vec<core_report::Submission>> {
    reports
        .into_iter()
        .enumerate()
        .map(|(index, r)| r.into_core().map_err(|e| in_batch(index, e)))
        .collect()
}

/// `e`, about item `index` of a batch: the reason (when it has one) starts
/// with `batch item N: `, as in the core's errors about a batch item.
pub(crate) fn in_batch(index: usize, e: FieldReportError) -> FieldReportError {
    let at = |reason: String| format!("batch item {index}: {reason}");
    match e {
        FieldReportError::InvalidConfig { reason } => {
            FieldReportError::InvalidConfig { reason: at(reason) }
        }
        FieldReportError::InvalidInput { reason } => {
            FieldReportError::InvalidInput { reason: at(reason) }
        }
        FieldReportError::AttachmentUnreadable { name, reason } => {
            FieldReportError::AttachmentUnreadable {
                name,
                reason: at(reason),
            }
        }
        FieldReportError::OutboxFull { reason } => {
            FieldReportError::OutboxFull { reason: at(reason) }
        }
        FieldReportError::Storage { reason } => FieldReportError::Storage { reason: at(reason) },
        FieldReportError::InvalidState { reason } => {
            FieldReportError::InvalidState { reason: at(reason) }
        }
        other => other,
    }
}
