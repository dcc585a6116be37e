//! The Centercode client: Create Feedback, Upload File Attachment and
//! Project Feedback Lookup over a blocking `ureq` agent. It does I/O only;
//! what an answer means is decided in `delivery.rs`.

use std::fs::File;
use std::io::{Cursor, Read};
use std::path::Path;
use std::time::Duration;

use crate::config::{ApiKey, Policy};
use crate::delivery::{Answer, Exchange};
use crate::resolver::CachingResolver;

/// Answers larger than this are cut: Centercode's answers are small, and a
/// misbehaving proxy must not make us buffer megabytes.
const MAX_ANSWER_BYTES: u64 = 1024 * 1024;

pub(crate) struct Server {
    agent: ureq::Agent,
    /// The agent's resolver, told to forget when a request fails.
    resolver: CachingResolver,
    base_url: String,
    project: String,
    feedback_type: String,
    api_key: ApiKey,
    request_timeout: Duration,
    min_upload_rate: u64,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("base_url", &self.base_url)
            .field("project", &self.project)
            .field("feedback_type", &self.feedback_type)
            .field("api_key", &self.api_key)
            .finish()
    }
}

impl Server {
    pub(crate) fn new(
        base_url: String,
        project: String,
        feedback_type: String,
        api_key: ApiKey,
        policy: &Policy,
    ) -> Server {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(policy.connect_timeout))
            .timeout_recv_response(Some(policy.request_timeout))
            .timeout_recv_body(Some(policy.request_timeout))
            .user_agent(concat!("fieldreport/", env!("CARGO_PKG_VERSION")))
            .build();
        let resolver = CachingResolver::default();
        let agent = ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::default(),
            resolver.clone(),
        );
        Server {
            agent,
            resolver,
            base_url,
            project,
            feedback_type,
            api_key,
            request_timeout: policy.request_timeout,
            min_upload_rate: policy.min_upload_bytes_per_sec,
        }
    }

    pub(crate) fn set_api_key(&mut self, key: ApiKey) {
        self.api_key = key;
    }

    pub(crate) fn api_key(&self) -> &ApiKey {
        &self.api_key
    }

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
        let result = self
            .agent
            .post(self.with_key(&url))
            .config()
            .timeout_global(Some(self.request_timeout * 2))
            .build()
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .send(body);
        self.finish(result)
    }

    /// POST one file as `multipart/form-data` field `file` to an element URL
    /// returned by the server, streaming it from disk.
    pub(crate) fn upload(
        &self,
        element_url: &str,
        path: &Path,
        file_name: &str,
        content_type: &str,
    ) -> Exchange {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => return Exchange::Transport(format!("cannot open the outbox copy: {e}")),
        };
        let size = match file.metadata() {
            Ok(m) => m.len(),
            Err(e) => return Exchange::Transport(format!("cannot stat the outbox copy: {e}")),
        };
        let body = Multipart::new(file_name, content_type);
        let length = body.length(size);
        let content_type_header = format!("multipart/form-data; boundary={}", body.boundary);
        let reader = body.reader(file.take(size));
        let send_budget = self.request_timeout + Duration::from_secs(size / self.min_upload_rate);
        let result = self
            .agent
            .post(self.with_key(element_url))
            .config()
            .timeout_send_body(Some(send_budget))
            .build()
            .header("Content-Type", content_type_header)
            .header("Content-Length", length.to_string())
            .header("Accept", "application/json")
            .send(ureq::SendBody::from_owned_reader(reader));
        self.finish(result)
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
        let result = self
            .agent
            .get(self.with_key(&url))
            .config()
            .timeout_global(Some(self.request_timeout * 2))
            .build()
            .header("Accept", "application/json")
            .call();
        match self.finish(result) {
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

    fn finish(&self, result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Exchange {
        match result {
            Ok(mut response) => {
                let header = |name: &str| {
                    response
                        .headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                let retry_after = header("Retry-After");
                let rate_limit_reset = header("X-Rate-Limit-Reset");
                let status = response.status().as_u16();
                let mut body = String::new();
                let read = response
                    .body_mut()
                    .as_reader()
                    .take(MAX_ANSWER_BYTES)
                    .read_to_string(&mut body);
                if let Err(e) = read {
                    if (200..300).contains(&status) {
                        // A success whose body was cut off: treat as a lost answer.
                        return Exchange::Transport(
                            self.redact(&format!("the answer ({status}) was cut off: {e}")),
                        );
                    }
                    body.clear();
                }
                Exchange::Answer(Answer {
                    status,
                    retry_after,
                    rate_limit_reset,
                    body,
                })
            }
            Err(e) => {
                self.resolver.forget();
                if never_sent(&e) {
                    Exchange::NotSent(self.redact(&e.to_string()))
                } else {
                    Exchange::Transport(self.redact(&e.to_string()))
                }
            }
        }
    }

    /// Removes the API key from any text that may leave the library.
    pub(crate) fn redact(&self, text: &str) -> String {
        redact(text, &self.api_key)
    }
}

/// True for failures before the request could reach the server.
fn never_sent(e: &ureq::Error) -> bool {
    use ureq::Timeout;
    match e {
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed | ureq::Error::Tls(_) => true,
        // An https:// URL (a file element's) in a build without TLS.
        ureq::Error::TlsRequired => true,
        #[cfg(feature = "rustls")]
        ureq::Error::Rustls(_) => true,
        ureq::Error::Timeout(t) => matches!(t, Timeout::Resolve | Timeout::Connect),
        ureq::Error::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::HostUnreachable
                | std::io::ErrorKind::NetworkUnreachable
                | std::io::ErrorKind::AddrNotAvailable
        ),
        _ => false,
    }
}

/// Removes an API key, raw or percent-encoded, from text.
pub(crate) fn redact(text: &str, key: &ApiKey) -> String {
    let raw = key.expose();
    if raw.is_empty() {
        return text.to_string();
    }
    text.replace(raw, "<redacted>")
        .replace(&percent_encode(raw), "<redacted>")
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
    head: Vec<u8>,
    tail: Vec<u8>,
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

    pub(crate) fn reader<R: Read + Send + 'static>(self, file: R) -> impl Read + Send + 'static {
        Cursor::new(self.head)
            .chain(file)
            .chain(Cursor::new(self.tail))
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
        let mut out = Vec::new();
        m.reader(Cursor::new(b"hello".to_vec()))
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out.len() as u64, len);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.contains("name=\"file\"; filename=\"shot %221%22.png\""));
        assert!(text.contains("\r\n\r\nhello\r\n"));
        assert!(text.ends_with(&format!("--{boundary}--\r\n")));
    }

    #[test]
    fn redaction_covers_raw_and_encoded_keys() {
        let key = ApiKey::new("s3cr3t/+key");
        let text = "GET /x?apiKey=s3cr3t%2F%2Bkey failed; key s3cr3t/+key";
        let r = redact(text, &key);
        assert!(!r.contains("s3cr3t"));
        assert_eq!(r.matches("<redacted>").count(), 2);
    }

    #[test]
    fn lookup_answer_parsing() {
        let body = r#"{"data":[{"field":"ID","dataType":"string","computedValue":"BUG-0001","values":["BUG-0001"]}]}"#;
        assert_eq!(lookup_key_of(body), Some("BUG-0001".into()));
        assert_eq!(lookup_key_of(r#"{"data":[]}"#), None);
        assert_eq!(lookup_key_of("nope"), None);
    }
}
