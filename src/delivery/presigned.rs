//! ABC's presigned image upload, driven before the create: per image
//! `GET .../image-upload-url` (ABC's route, with the key), then a `PUT` of
//! its bytes to the URL ABC signed (the store's origin: no key, no
//! credential header, see `Server::send_presigned`). Each request is paced
//! like any other.
//!
//! These steps leave nothing in the outbox: a `PUT` to a presigned URL is
//! idempotent (S3 replaces the object) and an object no feedback refers to
//! harms nobody, so an attempt cut off before its create simply uploads
//! again, with fresh URLs. The create stays the one step that must not be
//! repeated blindly, and is marked as about to leave right before it goes.

use std::time::SystemTime;

use super::one_request::OneRequest;
use super::{Exchange, RateWindow};
use crate::destinations::abc::config::AbcConfig;
use crate::destinations::abc::translate as abc;
use crate::destinations::{OutgoingAttachment, Verdict as Said};
use crate::error::Result;
use crate::http::server::without_query;
use crate::report::ReportId;

/// What became of a report's images before its create.
pub(super) enum Uploads {
    /// Every image is settled: the object URLs for the IMAGES field, and
    /// the images refused (index into the attachments, and why).
    Done {
        urls: Vec<String>,
        refused: Vec<(usize, String)>,
    },
    /// A step got no usable answer: this attempt ends before the create.
    Stopped {
        /// A retry (5xx, 429, no answer) or a pause (the key refused).
        said: Said,
        /// The status answered, if any.
        status: Option<u16>,
        /// The answer's `Retry-After`, read.
        retry_after: Option<SystemTime>,
    },
}

impl OneRequest<'_, '_> {
    /// Uploads `images` (index into the report's attachments, and the
    /// file) by presigned URL. A refusal of one image (a 4xx from the
    /// store, or from ABC's upload-URL route other than a refused key)
    /// rejects that image and the others go on: the store's refusal is
    /// about the object (its checksum, size or signature), not about the
    /// feedback, which is still delivered. Anything else stops the attempt.
    pub(super) fn upload_presigned(
        &self,
        id: ReportId,
        cfg: &AbcConfig,
        images: &[(usize, &OutgoingAttachment)],
        window: &mut RateWindow,
    ) -> Result<Uploads> {
        let mut urls = Vec::new();
        let mut refused = Vec::new();
        for (i, image) in images {
            self.pace(window)?;
            let exchange = self
                .server()
                .send_outbound(&abc::upload_url_request(cfg, image), None);
            let presigned = match &exchange {
                Exchange::Answer(a) => {
                    match abc::read_upload_url_answer(a.status, &[], a.body.as_bytes()) {
                        Ok(url) => url,
                        Err(Said::Dead { status, messages }) => {
                            refused.push((
                                *i,
                                format!(
                                    "ABC gave no presigned upload URL for it (HTTP {status}{})",
                                    words(&messages)
                                ),
                            ));
                            continue;
                        }
                        Err(said) => return Ok(stopped(said, &exchange, "")),
                    }
                }
                Exchange::Transport(m) | Exchange::NotSent(m) => {
                    // A GET that may have reached ABC changes nothing there.
                    return Ok(stopped(Said::no_answer(false, m), &exchange, ""));
                }
            };
            self.pace(window)?;
            let put = abc::put_image_request(&presigned, image, cfg.timeout);
            let meter = self.progress_meter(id, &image.file_name, image.size);
            let exchange = self.server().send_presigned(&put, meter);
            match &exchange {
                Exchange::Answer(a) => match abc::read_put_answer(a.status, a.body.as_bytes()) {
                    Ok(()) => urls.push(abc::object_url(&presigned)),
                    Err(Said::Dead { status, messages }) => {
                        let messages: Vec<String> = messages
                            .iter()
                            .map(|m| without_query(m, &presigned))
                            .collect();
                        refused.push((*i, store_refusal(status, &messages)));
                    }
                    Err(said) => return Ok(stopped(said, &exchange, &presigned)),
                },
                // The transport's words are already without the signature.
                Exchange::Transport(m) | Exchange::NotSent(m) => {
                    return Ok(stopped(
                        Said::no_answer(false, &format!("the image store: {m}")),
                        &exchange,
                        &presigned,
                    ));
                }
            }
        }
        Ok(Uploads::Done { urls, refused })
    }
}

/// An attempt stopped by `said`, with the answer's status and
/// `Retry-After`; a reason never shows the presigned URL's signature.
fn stopped(said: Said, exchange: &Exchange, presigned: &str) -> Uploads {
    let said = match said {
        Said::Retry {
            reason,
            maybe_acted,
        } => Said::Retry {
            reason: format!(
                "before the create, uploading an image: {}",
                without_query(&reason, presigned)
            ),
            maybe_acted,
        },
        other => other,
    };
    let (status, retry_after) = match exchange {
        Exchange::Answer(a) => (
            Some(a.status),
            a.retry_after
                .as_deref()
                .and_then(|v| super::parse_retry_after(v, SystemTime::now())),
        ),
        _ => (None, None),
    };
    Uploads::Stopped {
        said,
        status,
        retry_after,
    }
}

/// `": m1; m2"`, or nothing when there are no messages.
fn words(messages: &[String]) -> String {
    if messages.is_empty() {
        String::new()
    } else {
        format!(": {}", messages.join("; "))
    }
}

/// Why the store's refusal rejects an image, with a hint where the
/// refusal is the empty-body checksum ABC signs.
fn store_refusal(status: u16, messages: &[String]) -> String {
    let mut reason = format!(
        "ABC's image store refused the presigned upload (HTTP {status}{})",
        words(messages)
    );
    let text = messages.join(" ").to_ascii_lowercase();
    if text.contains("baddigest") || text.contains("checksum") || text.contains("crc32") {
        reason.push_str(
            "; the URL ABC signs carries the checksum of an empty body, which this store \
             enforces: send images by multipart (the default) to this server",
        );
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_refusal_names_the_store_and_hints_at_the_checksum() {
        let r = store_refusal(
            400,
            &[
                "BadDigest".to_string(),
                "The CRC32 you specified did not match".to_string(),
            ],
        );
        assert!(
            r.starts_with("ABC's image store refused the presigned upload (HTTP 400: BadDigest;"),
            "{r}"
        );
        assert!(r.contains("multipart"), "{r}");
        let r = store_refusal(403, &["AccessDenied".to_string()]);
        assert_eq!(
            r,
            "ABC's image store refused the presigned upload (HTTP 403: AccessDenied)"
        );
        assert_eq!(words(&[]), "");
    }

    #[test]
    fn a_stopped_attempt_keeps_the_servers_word_and_never_the_signature() {
        let url = "http://s3.example/b/o.png?X-Amz-Signature=s3cr";
        let exchange = Exchange::Answer(super::super::Answer {
            status: 503,
            retry_after: Some("7".into()),
            rate_limit_reset: None,
            body: String::new(),
        });
        let said = Said::Retry {
            reason: format!("image store HTTP 503 at {url}"),
            maybe_acted: false,
        };
        match stopped(said, &exchange, url) {
            Uploads::Stopped {
                said: Said::Retry { reason, .. },
                status,
                retry_after,
            } => {
                assert!(!reason.contains("s3cr"), "{reason}");
                assert!(reason.starts_with("before the create, uploading an image: "));
                assert_eq!(status, Some(503));
                let wait = retry_after
                    .unwrap()
                    .duration_since(SystemTime::now())
                    .unwrap();
                assert!(wait.as_secs() <= 7 && wait.as_secs() >= 5, "{wait:?}");
            }
            _ => panic!("a retry"),
        }
    }
}
