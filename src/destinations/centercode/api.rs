//! Centercode's External Feedback API as requests: Create Feedback,
//! Upload File Attachment (a one-part multipart body streamed from the
//! outbox copy) and Project Feedback Lookup, with the key in `apiKey=`
//! as Centercode requires, sent over the server's backend
//! ([`crate::http::server`]), which knows no Centercode route.

use std::path::Path;
use std::time::Duration;

use crate::delivery::Exchange;
use crate::http::origin::Origin;
use crate::http::progress::Meter;
use crate::http::server::{headers, percent_encode, Server, Upload};
use crate::transport::{HttpBody, HttpRequest};

/// Centercode's requests, made over a [`Server`] (whose backend, key and
/// limits it uses; it derefs to it).
pub(crate) struct CentercodeApi<'a>(pub(crate) &'a Server);

impl std::ops::Deref for CentercodeApi<'_> {
    type Target = Server;
    fn deref(&self) -> &Server {
        self.0
    }
}

impl CentercodeApi<'_> {
    fn with_key(&self, url: &str) -> String {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}apiKey={}", percent_encode(self.api_key.expose()))
    }

    /// POST the feedback JSON to `projects/{p}/feedback/{type}`.
    pub(crate) fn create_feedback(&self, body: &str) -> Exchange {
        let url = format!(
            "{}/projects/{}/feedback/{}",
            self.base_url, self.project, self.feedback_type
        );
        self.send(
            HttpRequest {
                method: "POST".into(),
                url: self.with_key(&url),
                headers: headers(&[
                    ("Content-Type", "application/json"),
                    ("Content-Length", &body.len().to_string()),
                ]),
                body: HttpBody::Bytes(body.as_bytes().to_vec()),
                timeout: self.request_timeout * 2,
            },
            None,
            None,
        )
    }

    /// POST one file as `multipart/form-data` field `file` to an element URL
    /// returned by the server, streaming it from disk. `size` is the copy's
    /// recorded size, which the request announces. `meter` hears of the
    /// file's bytes (not the multipart framing) as they go.
    pub(crate) fn upload(
        &self,
        element_url: &str,
        (path, size): (&Path, u64),
        file_name: &str,
        content_type: &str,
        meter: Option<Meter>,
    ) -> Exchange {
        // The engine routes only same-origin element URLs here; this is
        // the last guard before the key would leave with the request.
        if Origin::of(element_url).as_ref() != Some(&self.origin) {
            return Exchange::NotSent(
                "refused: the element URL is not on the configured server's origin".into(),
            );
        }
        let body = Multipart::new(file_name, content_type);
        let length = body.length(size);
        let send_budget = self.request_timeout + Duration::from_secs(size / self.min_upload_rate);
        self.send(
            HttpRequest {
                method: "POST".into(),
                url: self.with_key(element_url),
                headers: headers(&[
                    (
                        "Content-Type",
                        &format!("multipart/form-data; boundary={}", body.boundary),
                    ),
                    ("Content-Length", &length.to_string()),
                ]),
                body: HttpBody::File {
                    prefix: body.head,
                    path: path.to_path_buf(),
                    suffix: body.tail,
                },
                // Sending, then the answer.
                timeout: send_budget + self.request_timeout,
            },
            Some(Upload {
                send_budget,
                file_len: size,
            }),
            meter,
        )
    }

    /// GET the Project Feedback Lookup for `find`; the feedback key found, if any.
    pub(crate) fn lookup(&self, lookup_key: &str, find: &str) -> Result<Option<String>, Exchange> {
        let url = format!(
            "{}/projects/{}/feedbackRecordLookups/{}?find={}",
            self.base_url,
            self.project,
            lookup_key,
            percent_encode(find)
        );
        let exchange = self.send(
            HttpRequest {
                method: "GET".into(),
                url: self.with_key(&url),
                headers: headers(&[]),
                body: HttpBody::Empty,
                timeout: self.request_timeout * 2,
            },
            None,
            None,
        );
        match exchange {
            // Any success: a 204 or an empty body is "not found".
            Exchange::Answer(a) if (200..300).contains(&a.status) => Ok(lookup_key_of(&a.body)),
            other => Err(other),
        }
    }

    /// The base URL of a feedback's file elements, built as Centercode
    /// documents it (used when a lookup recovered a lost create answer).
    pub(crate) fn element_url(&self, feedback_key: &str, element_key: &str) -> String {
        format!(
            "{}/projects/{}/feedbackTypes/{}/feedback/{}/fileElements/{}",
            self.base_url, self.project, self.feedback_type, feedback_key, element_key
        )
    }
}

/// The feedback key in a lookup answer: the `ID` field's computed value.
fn lookup_key_of(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v.get("data")?
        .as_array()?
        .iter()
        .find(|f| f.get("field").and_then(|x| x.as_str()) == Some("ID"))
        .and_then(|f| f.get("computedValue"))
        .and_then(|x| x.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A one-part `multipart/form-data` body: head, the file, tail. Built by
/// hand so that the length is exact and the file streams.
pub(crate) struct Multipart {
    pub boundary: String,
    pub head: Vec<u8>,
    pub tail: Vec<u8>,
}

impl Multipart {
    pub(crate) fn new(file_name: &str, content_type: &str) -> Multipart {
        let boundary = format!(
            "fieldreport-{:016x}{:016x}",
            (crate::delivery::random_unit() * u64::MAX as f64) as u64,
            (crate::delivery::random_unit() * u64::MAX as f64) as u64
        );
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n",
            quote_filename(file_name),
            content_type.replace(['\r', '\n'], "")
        )
        .into_bytes();
        let tail = format!("\r\n--{boundary}--\r\n").into_bytes();
        Multipart {
            boundary,
            head,
            tail,
        }
    }

    pub(crate) fn length(&self, file_size: u64) -> u64 {
        self.head.len() as u64 + file_size + self.tail.len() as u64
    }
}

/// A file name inside a quoted header parameter: no quotes, backslashes or
/// line breaks (WHATWG's form encoding escapes these the same way).
fn quote_filename(name: &str) -> String {
    name.replace('\\', "\\\\")
        .replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_length_is_exact() {
        let m = Multipart::new("shot \"1\".png", "image/png");
        let boundary = m.boundary.clone();
        let len = m.length(5);
        // What either backend sends: head, file, tail.
        let out = [m.head.as_slice(), b"hello", m.tail.as_slice()].concat();
        assert_eq!(out.len() as u64, len);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.contains("name=\"file\"; filename=\"shot %221%22.png\""));
        assert!(text.contains("\r\n\r\nhello\r\n"));
        assert!(text.ends_with(&format!("--{boundary}--\r\n")));
    }

    #[test]
    fn lookup_answer_parsing() {
        let body = r#"{"data":[{"field":"ID","dataType":"string","computedValue":"BUG-0001","values":["BUG-0001"]}]}"#;
        assert_eq!(lookup_key_of(body), Some("BUG-0001".into()));
        assert_eq!(lookup_key_of(r#"{"data":[]}"#), None);
        assert_eq!(lookup_key_of("nope"), None);
    }
}
