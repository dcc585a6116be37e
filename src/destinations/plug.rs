//! The destinations whose report is one request (ABC, Apptentive), behind
//! one face for the engine: what is refused at submit, the request to send,
//! and what its answer means. The neutral form a report is stored in for
//! them lives here too: the outbox keeps it as text and knows no server.

use super::abc::translate as abc;
use super::apptentive::translate as apptentive;
use super::body::Outbound;
use super::{Outgoing, OutgoingAttachment, TranslateError, Verdict};
use crate::config::Destination;
use crate::report::ReportKind;
use serde_json::{Map, Value};
use std::path::Path;

/// The files of a report as the translators read them, in order, from
/// `(attachment key, file name, media type, outbox copy, size)`: the first
/// file of a crash report is its crash log. One rule for the submit
/// path's checks and the engine's requests.
pub(crate) fn outgoing_files<'a>(
    kind: ReportKind,
    files: impl IntoIterator<Item = (&'a str, &'a str, &'a str, &'a Path, u64)>,
) -> Vec<OutgoingAttachment> {
    files
        .into_iter()
        .enumerate()
        .map(
            |(i, (key, file_name, content_type, path, size))| OutgoingAttachment {
                key: key.to_string(),
                file_name: file_name.to_string(),
                content_type: content_type.to_string(),
                path: path.to_path_buf(),
                size,
                crash_log: kind == ReportKind::Crash && i == 0,
            },
        )
        .collect()
}

/// The parts of a report a translator reads, stored at submit as JSON:
/// `{"summary", "description"?, "submitter"?, "fields": [[key, value], ...]}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Neutral {
    pub summary: String,
    pub description: Option<String>,
    pub submitter: Option<String>,
    pub fields: Vec<(String, Value)>,
}

impl Neutral {
    /// The stored form, as an object for the outbox's insert.
    pub(crate) fn to_map(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("summary".into(), Value::from(self.summary.as_str()));
        if let Some(d) = &self.description {
            m.insert("description".into(), Value::from(d.as_str()));
        }
        if let Some(s) = &self.submitter {
            m.insert("submitter".into(), Value::from(s.as_str()));
        }
        let fields = self
            .fields
            .iter()
            .map(|(k, v)| Value::Array(vec![Value::from(k.as_str()), v.clone()]))
            .collect();
        m.insert("fields".into(), Value::Array(fields));
        m
    }

    /// Reads the stored form back; `None` for text that is not one (a row
    /// queued for Centercode, or damaged).
    pub(crate) fn parse(text: &str) -> Option<Neutral> {
        let v: Value = serde_json::from_str(text).ok()?;
        let o = v.as_object()?;
        let text_of = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
        let fields = o
            .get("fields")?
            .as_array()?
            .iter()
            .map(|pair| match pair.as_array().map(Vec::as_slice) {
                Some([Value::String(k), v]) => Some((k.clone(), v.clone())),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Neutral {
            summary: text_of("summary")?,
            description: text_of("description"),
            submitter: text_of("submitter"),
            fields,
        })
    }
}

/// Refuses, at submit, what the destination can never take (a crash
/// report without a crash-log field, a record over its size limit, a
/// reserved field). Centercode's checks are the submit path's own.
pub(crate) fn check_submit(
    dest: &Destination,
    report: &Outgoing<'_>,
) -> Result<(), TranslateError> {
    match dest {
        Destination::Centercode => Ok(()),
        Destination::Abc(cfg) => abc::check_submit(cfg, report),
        Destination::Apptentive(cfg) => apptentive::check_submit(cfg, report).map(|_| ()),
    }
}

/// The one request that delivers `report`, and the attachments that do
/// not go with it (index into `report.attachments`, and why).
/// `crash` is an ABC crash log's text, read by the engine; `image_urls`
/// the object URLs of the images uploaded first in ABC's presigned mode
/// (see [`presigned_images`]; images refused by the store are the
/// engine's to add to what is left out).
pub(crate) fn request(
    dest: &Destination,
    report: &Outgoing<'_>,
    crash: Option<&abc::CrashText>,
    image_urls: &[String],
) -> Result<(Outbound, Vec<(usize, String)>), TranslateError> {
    match dest {
        Destination::Centercode => Err(TranslateError::BadField(
            "Centercode reports are delivered by create and upload".into(),
        )),
        Destination::Abc(cfg) => {
            let plans = abc::plan_attachments(cfg, report.attachments);
            let mut images = Vec::new();
            let mut left_out = Vec::new();
            for (i, (a, plan)) in report.attachments.iter().zip(plans).enumerate() {
                match plan {
                    abc::AttachmentPlan::Image => images.push(a),
                    abc::AttachmentPlan::CrashLog if crash.is_some() => {}
                    abc::AttachmentPlan::CrashLog => left_out.push((
                        i,
                        format!(
                            "{}: the outbox copy of the crash log cannot be read",
                            a.file_name
                        ),
                    )),
                    abc::AttachmentPlan::Rejected { reason } => {
                        left_out.push((i, without_name(&a.file_name, reason)))
                    }
                }
            }
            let req = abc::create_request(cfg, report, crash, &images, image_urls)?;
            Ok((req, left_out))
        }
        Destination::Apptentive(cfg) => Ok((apptentive::record_request(cfg, report)?, Vec::new())),
    }
}

/// The images to upload before the create, with their index into
/// `attachments`: for an ABC destination in presigned mode, those its
/// rules accept (images only, 1 MiB each); none otherwise.
pub(crate) fn presigned_images<'r>(
    dest: &Destination,
    attachments: &'r [OutgoingAttachment],
) -> Vec<(usize, &'r OutgoingAttachment)> {
    match dest {
        Destination::Abc(cfg) if cfg.image_mode == super::abc::config::ImageMode::Presigned => {
            abc::plan_attachments(cfg, attachments)
                .into_iter()
                .zip(attachments)
                .enumerate()
                .filter(|(_, (plan, _))| *plan == abc::AttachmentPlan::Image)
                .map(|(i, (_, a))| (i, a))
                .collect()
        }
        _ => Vec::new(),
    }
}

/// The attachments an ABC destination leaves out, and why (for a report
/// found by a search: what its request would have left out).
pub(crate) fn abc_left_out(
    cfg: &super::abc::config::AbcConfig,
    attachments: &[super::OutgoingAttachment],
) -> Vec<(usize, String)> {
    abc::plan_attachments(cfg, attachments)
        .into_iter()
        .enumerate()
        .filter_map(|(i, p)| match p {
            abc::AttachmentPlan::Rejected { reason } => {
                Some((i, without_name(&attachments[i].file_name, reason)))
            }
            _ => None,
        })
        .collect()
}

/// A reason without the file name in front: the receipt names the file.
fn without_name(name: &str, reason: String) -> String {
    match reason.strip_prefix(&format!("{name}: ")) {
        Some(rest) => rest.to_string(),
        None => reason,
    }
}

/// What the answer to [`request`] means.
pub(crate) fn read_answer(
    dest: &Destination,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> Verdict {
    match dest {
        Destination::Abc(_) => abc::read_create_answer(status, headers, body),
        Destination::Apptentive(_) => apptentive::read_record_answer(status, headers, body),
        Destination::Centercode => super::common_verdict(status, body, &[401]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_neutral_form_reads_back_as_written_and_refuses_other_text() {
        let n = Neutral {
            summary: "Crash on launch".into(),
            description: Some("line one\nline two".into()),
            submitter: None,
            fields: vec![("rating".into(), json!(5)), ("tags".into(), json!(["a"]))],
        };
        let text = serde_json::to_string(&Value::Object(n.to_map())).unwrap();
        assert_eq!(Neutral::parse(&text), Some(n));
        // A Centercode body has no `fields` array: it is not a neutral report.
        assert_eq!(Neutral::parse(r#"{"summary":"x","rating":5}"#), None);
        assert_eq!(Neutral::parse(r#"{"summary":"x","fields":[[1,2]]}"#), None);
        assert_eq!(Neutral::parse("not json"), None);
    }
}
