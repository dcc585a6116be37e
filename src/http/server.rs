//! The server a client talks to, as a backend: one request sent over a
//! blocking `ureq` agent or the app's own [`Transport`], with the key
//! bound to the configured origin and redacted from every message. It
//! knows no route: Centercode's requests are built in
//! `destinations/centercode/api.rs`, the others' by their translators
//! ([`Server::send_outbound`]). It does I/O only; what an answer means is
//! decided in `delivery/`.

#[cfg(feature = "builtin-http")]
use std::fs::File;
#[cfg(feature = "builtin-http")]
use std::io::Cursor;
use std::io::Read;
#[cfg(feature = "builtin-http")]
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ApiKey, Policy};
use crate::delivery::{Answer, Exchange};
use crate::destinations::body::Outbound;
use crate::error::Internal;
use crate::http::origin::Origin;
use crate::http::progress::Meter;
#[cfg(feature = "builtin-http")]
use crate::http::progress::Metered;
#[cfg(feature = "builtin-http")]
use crate::resolver::CachingResolver;
use crate::transport::{HttpBody, HttpRequest, HttpResponse, Transport, TransportError};

/// Answers larger than this are cut: Centercode's answers are small, and a
/// misbehaving proxy must not make us buffer megabytes.
const MAX_ANSWER_BYTES: u64 = 1024 * 1024;

/// Who sends the requests.
enum Backend {
    /// The library's own HTTP stack.
    #[cfg(feature = "builtin-http")]
    Builtin {
        agent: ureq::Agent,
        /// The agent's resolver, told to forget when a request fails.
        resolver: CachingResolver,
    },
    /// The app's.
    App(Arc<dyn Transport>),
}

const USER_AGENT: &str = concat!("fieldreport/", env!("CARGO_PKG_VERSION"));

/// What an upload adds to its request, for the builtin backend (a build
/// without it only passes it along).
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "builtin-http"), allow(dead_code))]
pub(crate) struct Upload {
    /// The time allowed for sending the body.
    pub(crate) send_budget: Duration,
    /// The size of the file that the request's `Content-Length` counts.
    pub(crate) file_len: u64,
}

/// An outbox copy read to exactly its announced length: a copy whose size
/// differs is refused before anything is sent, and one that shrinks while
/// it is read fails the request (ureq would otherwise wait on a body that
/// never comes until the send budget runs out).
#[cfg(feature = "builtin-http")]
struct ExactFile {
    file: File,
    left: u64,
}

#[cfg(feature = "builtin-http")]
impl ExactFile {
    fn open(path: &Path, expected: Option<u64>) -> std::io::Result<ExactFile> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        if let Some(expected) = expected.filter(|&e| e != len) {
            return Err(std::io::Error::other(format!(
                "it is {len} bytes, not the {expected} recorded"
            )));
        }
        Ok(ExactFile { file, left: len })
    }
}

#[cfg(feature = "builtin-http")]
impl Read for ExactFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the outbox copy ended {} bytes early", self.left),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

pub(crate) struct Server {
    backend: Backend,
    pub(crate) base_url: String,
    /// The configured server's origin: the only one the key is sent to.
    pub(crate) origin: Origin,
    pub(crate) project: String,
    pub(crate) feedback_type: String,
    pub(crate) api_key: ApiKey,
    pub(crate) request_timeout: Duration,
    pub(crate) min_upload_rate: u64,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match self.backend {
            #[cfg(feature = "builtin-http")]
            Backend::Builtin { .. } => "builtin",
            Backend::App(_) => "app",
        };
        f.debug_struct("Server")
            .field("backend", &backend)
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
        transport: Option<Arc<dyn Transport>>,
    ) -> Result<Server, Internal> {
        let backend = match transport {
            Some(t) => Backend::App(t),
            #[cfg(feature = "builtin-http")]
            None => {
                let config = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_connect(Some(policy.connect_timeout))
                    .timeout_recv_response(Some(policy.request_timeout))
                    .timeout_recv_body(Some(policy.request_timeout))
                    .build();
                let resolver = CachingResolver::default();
                let agent = ureq::Agent::with_parts(
                    config,
                    ureq::unversioned::transport::DefaultConnector::default(),
                    resolver.clone(),
                );
                Backend::Builtin { agent, resolver }
            }
            #[cfg(not(feature = "builtin-http"))]
            None => return Err(Internal::Config(crate::config::NO_HTTP_STACK.into())),
        };
        let origin = Origin::of(&base_url)
            .ok_or_else(|| Internal::Config("base_url is not an absolute http(s) URL".into()))?;
        Ok(Server {
            backend,
            origin,
            base_url,
            project,
            feedback_type,
            api_key,
            request_timeout: policy.request_timeout,
            min_upload_rate: policy.min_upload_bytes_per_sec,
        })
    }

    pub(crate) fn set_api_key(&mut self, key: ApiKey) {
        self.api_key = key;
    }

    pub(crate) fn api_key(&self) -> &ApiKey {
        &self.api_key
    }

    /// The configured server's origin.
    pub(crate) fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Sends one request, described once, through whichever backend this
    /// server has. A transport gets `request.timeout` for the whole
    /// exchange, and so does ureq for a create or a lookup. For an upload
    /// ureq takes its two parts separately (the agent's receive timeouts
    /// bound each wait for the answer): `upload.send_budget` bounds sending
    /// the body.
    #[cfg_attr(not(feature = "builtin-http"), allow(unused_variables))]
    pub(crate) fn send(
        &self,
        request: HttpRequest,
        upload: Option<Upload>,
        meter: Option<Meter>,
    ) -> Exchange {
        match &self.backend {
            #[cfg(feature = "builtin-http")]
            Backend::Builtin { agent, resolver } => {
                self.send_builtin(agent, resolver, request, upload, meter)
            }
            Backend::App(t) => self.send_app(t, request, meter),
        }
    }

    /// One request through the app's transport. A panic in a Rust
    /// transport is taken as a failure after sending: the request may have
    /// left. The transport streams the body itself, unseen: `meter` hears
    /// only of its end, when an answer came back.
    fn send_app(
        &self,
        transport: &Arc<dyn Transport>,
        request: HttpRequest,
        meter: Option<Meter>,
    ) -> Exchange {
        let sent =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| transport.send(request)));
        if let (Some(mut meter), Ok(Ok(_))) = (meter, &sent) {
            meter.finish();
        }
        let outcome = sent.unwrap_or_else(|_| {
            Err(TransportError::Failed(
                "the app's transport panicked".into(),
            ))
        });
        answer_of(outcome, |m| self.redact(m))
    }

    /// Sends a destination's request as its translator built it (the
    /// secret in a header). Only to the configured origin: a request for
    /// anywhere else gets no answer and leaves nothing. `meter` hears of
    /// the body's bytes as they go.
    pub(crate) fn send_outbound(&self, out: &Outbound, meter: Option<Meter>) -> Exchange {
        if Origin::of(&out.url).as_ref() != Some(&self.origin) {
            return Exchange::NotSent(
                "refused: the request is not for the configured server's origin".into(),
            );
        }
        self.dispatch(out, meter)
    }

    /// Sends an upload to a presigned URL (ABC's S3 store): any http(s)
    /// origin, as the URL's signature is its authority, and so never a
    /// credential header. Whatever the transport says back is stripped of
    /// the URL's query (the signature): it may reach a log or the app.
    pub(crate) fn send_presigned(&self, out: &Outbound, meter: Option<Meter>) -> Exchange {
        if Origin::of(&out.url).is_none() {
            return Exchange::NotSent("refused: the presigned URL is not an http(s) URL".into());
        }
        if out.headers.iter().any(|(name, _)| {
            ["x-api-key", "authorization", "cookie"]
                .iter()
                .any(|h| name.trim().eq_ignore_ascii_case(h))
        }) {
            return Exchange::NotSent(
                "refused: a presigned upload carries no key or credential header".into(),
            );
        }
        match self.dispatch(out, meter) {
            Exchange::NotSent(m) => Exchange::NotSent(without_query(&m, &out.url)),
            Exchange::Transport(m) => Exchange::Transport(without_query(&m, &out.url)),
            answer => answer,
        }
    }

    /// Sends a translator's request through this server's backend.
    fn dispatch(&self, out: &Outbound, meter: Option<Meter>) -> Exchange {
        let mut headers = out.headers.clone();
        headers.push(("User-Agent".to_string(), USER_AGENT.to_string()));
        match &self.backend {
            // Streamed: a body with base64-encoded files is read as it goes.
            #[cfg(feature = "builtin-http")]
            Backend::Builtin { agent, resolver } => self.run_builtin(
                agent,
                resolver,
                (&out.method, &out.url, &headers, out.timeout),
                match meter {
                    Some(m) => {
                        ureq::SendBody::from_owned_reader(Metered::new(out.body.reader(), m))
                    }
                    None => ureq::SendBody::from_owned_reader(out.body.reader()),
                },
                None,
            ),
            Backend::App(t) => {
                // The app's transport takes the shapes `HttpBody` has; any
                // other body (several files, base64) is read into memory,
                // bounded by the destination's own request limit.
                let body = match out.body.to_http_body() {
                    Some(b) => b,
                    None => {
                        let mut bytes = Vec::with_capacity(out.body.len() as usize);
                        if let Err(e) = out.body.reader().read_to_end(&mut bytes) {
                            return Exchange::NotSent(format!("the outbox copy: {e}"));
                        }
                        HttpBody::Bytes(bytes)
                    }
                };
                self.send_app(
                    t,
                    HttpRequest {
                        method: out.method.clone(),
                        url: out.url.clone(),
                        headers,
                        body,
                        timeout: out.timeout,
                    },
                    meter,
                )
            }
        }
    }

    #[cfg(feature = "builtin-http")]
    fn send_builtin(
        &self,
        agent: &ureq::Agent,
        resolver: &CachingResolver,
        request: HttpRequest,
        upload: Option<Upload>,
        meter: Option<Meter>,
    ) -> Exchange {
        let HttpRequest {
            method,
            url,
            headers,
            body,
            timeout,
        } = request;
        let body = match body {
            HttpBody::Empty => ureq::SendBody::none(),
            HttpBody::Bytes(bytes) => ureq::SendBody::from_owned_reader(Cursor::new(bytes)),
            HttpBody::File {
                prefix,
                path,
                suffix,
            } => match ExactFile::open(&path, upload.map(|u| u.file_len)) {
                // Only the file's bytes are counted: the size the app knows.
                Ok(file) => match meter {
                    Some(m) => ureq::SendBody::from_owned_reader(
                        Cursor::new(prefix)
                            .chain(Metered::new(file, m))
                            .chain(Cursor::new(suffix)),
                    ),
                    None => ureq::SendBody::from_owned_reader(
                        Cursor::new(prefix).chain(file).chain(Cursor::new(suffix)),
                    ),
                },
                // Nothing has left yet.
                Err(e) => return Exchange::NotSent(format!("the outbox copy: {e}")),
            },
        };
        self.run_builtin(
            agent,
            resolver,
            (&method, &url, &headers, timeout),
            body,
            upload,
        )
    }

    /// Runs one request on the builtin agent and reads its answer.
    #[cfg(feature = "builtin-http")]
    fn run_builtin(
        &self,
        agent: &ureq::Agent,
        resolver: &CachingResolver,
        (method, url, headers, timeout): (&str, &str, &[(String, String)], Duration),
        body: ureq::SendBody<'_>,
        upload: Option<Upload>,
    ) -> Exchange {
        let mut builder = ureq::http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let built = match builder.body(body) {
            Ok(r) => r,
            Err(e) => return Exchange::NotSent(self.redact(&format!("a bad request: {e}"))),
        };
        let config = agent.configure_request(built);
        let built = match upload {
            Some(u) => config.timeout_send_body(Some(u.send_budget)),
            None => config.timeout_global(Some(timeout)),
        }
        .build();
        match agent.run(built) {
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
                // Sized from the start: reading into a growing buffer
                // took several reads through ureq's layers per answer.
                let expected = header("Content-Length")
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
                    .min(MAX_ANSWER_BYTES);
                let mut body = String::with_capacity(expected as usize);
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
                resolver.forget();
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

/// The headers every request carries, then `extra`.
pub(crate) fn headers(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut all = vec![
        ("Accept".to_string(), "application/json".to_string()),
        ("User-Agent".to_string(), USER_AGENT.to_string()),
    ];
    all.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    all
}

/// What the app's transport brought back, as the delivery rules read it.
/// `redact` takes the API key out of the transport's own words.
pub(crate) fn answer_of(
    outcome: Result<HttpResponse, TransportError>,
    redact: impl Fn(&str) -> String,
) -> Exchange {
    match outcome {
        // A 1xx is interim: the final answer is still to come, and the
        // server may act on the request, so it is no answer.
        Ok(r) if (200..=999).contains(&r.status) => {
            let header = |name: &str| {
                r.headers
                    .iter()
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.trim().to_string())
            };
            let cut = r.body.len().min(MAX_ANSWER_BYTES as usize);
            Exchange::Answer(Answer {
                status: r.status,
                retry_after: header("Retry-After"),
                rate_limit_reset: header("X-Rate-Limit-Reset"),
                body: String::from_utf8_lossy(&r.body[..cut]).into_owned(),
            })
        }
        // Not an HTTP status: something answered, but what is unknown.
        Ok(r) => Exchange::Transport(format!(
            "the app's transport returned status {}, which is not a final HTTP status",
            r.status
        )),
        Err(TransportError::NotSent(m)) => {
            Exchange::NotSent(redact(&format!("the app's transport: {m}")))
        }
        Err(TransportError::Failed(m)) => {
            Exchange::Transport(redact(&format!("the app's transport: {m}")))
        }
    }
}

/// True for failures before the request could reach the server.
#[cfg(feature = "builtin-http")]
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

/// `text` without `url`'s query (a presigned URL's signature): the URL
/// becomes its object URL, and the query alone is masked wherever it shows.
pub(crate) fn without_query(text: &str, url: &str) -> String {
    let Some((object, query)) = url.split_once('?') else {
        return text.to_string();
    };
    let query = query.split('#').next().unwrap_or("");
    if query.is_empty() {
        return text.to_string();
    }
    text.replace(url, object)
        .replace(query, "<signature redacted>")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_app_transports_answer_is_read_as_the_builtin_ones() {
        let key = ApiKey::new("s3cr3t");
        let r = |m: &str| redact(m, &key);
        let answer = |status, headers: &[(&str, &str)], body: Vec<u8>| {
            answer_of(
                Ok(HttpResponse {
                    status,
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    body,
                }),
                r,
            )
        };
        match answer(
            429,
            &[
                ("retry-after", " 7 "),
                ("X-RATE-LIMIT-RESET", "2026-01-01T00:00:00Z"),
            ],
            vec![b'x'; MAX_ANSWER_BYTES as usize + 10],
        ) {
            Exchange::Answer(a) => {
                assert_eq!(a.status, 429);
                assert_eq!(a.retry_after.as_deref(), Some("7"));
                assert_eq!(a.rate_limit_reset.as_deref(), Some("2026-01-01T00:00:00Z"));
                assert_eq!(a.body.len(), MAX_ANSWER_BYTES as usize);
            }
            other => panic!("{other:?}"),
        }
        // Bytes that are not UTF-8 do not lose the answer.
        assert!(
            matches!(answer(201, &[], vec![0xff, b'{']), Exchange::Answer(a) if a.status == 201)
        );
        for status in [0, 99, 100, 199, 1000] {
            assert!(matches!(
                answer(status, &[], vec![]),
                Exchange::Transport(_)
            ));
        }
        let not_sent = answer_of(Err(TransportError::NotSent("x?apiKey=s3cr3t".into())), r);
        assert!(
            matches!(&not_sent, Exchange::NotSent(m) if !m.contains("s3cr3t")),
            "{not_sent:?}"
        );
        let failed = answer_of(Err(TransportError::Failed("s3cr3t".into())), r);
        assert!(
            matches!(&failed, Exchange::Transport(m) if m.contains("<redacted>")),
            "{failed:?}"
        );
    }

    #[cfg(feature = "builtin-http")]
    #[test]
    fn an_outbox_copy_is_read_to_exactly_its_recorded_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("copy");
        std::fs::write(&path, vec![7u8; 100_000]).unwrap();
        let mut all = Vec::new();
        ExactFile::open(&path, Some(100_000))
            .unwrap()
            .read_to_end(&mut all)
            .unwrap();
        assert_eq!(all, vec![7u8; 100_000]);
        // A copy that changed size is refused before anything is read.
        let e = ExactFile::open(&path, Some(99_999)).err().unwrap();
        assert!(e.to_string().contains("not the 99999 recorded"), "{e}");
        // One that shrinks while it is read fails instead of stalling.
        let mut exact = ExactFile::open(&path, Some(100_000)).unwrap();
        let mut buf = vec![0u8; 1000];
        exact.read_exact(&mut buf).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(5000)
            .unwrap();
        let e = exact.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        assert!(e.to_string().contains("95000 bytes early"), "{e}");
    }

    #[test]
    fn a_presigned_urls_query_never_shows() {
        let url = "http://s3.example/b/o.png?X-Amz-Signature=abc123&X-Amz-Date=1";
        let text = format!("cannot reach {url}; query X-Amz-Signature=abc123&X-Amz-Date=1");
        let clean = without_query(&text, url);
        assert!(!clean.contains("abc123"), "{clean}");
        assert!(clean.contains("http://s3.example/b/o.png"), "{clean}");
        assert_eq!(without_query("no url here", url), "no url here");
        assert_eq!(without_query("x", "http://h/o"), "x");
    }

    #[cfg(feature = "builtin-http")]
    #[test]
    fn a_presigned_upload_goes_to_any_origin_but_never_with_a_key() {
        let policy = Policy::default();
        let server = Server::new(
            "http://127.0.0.1:9".into(),
            String::new(),
            String::new(),
            ApiKey::new("k"),
            &policy,
            None,
        )
        .unwrap();
        let put = |url: &str, headers: &[(&str, &str)]| Outbound {
            method: "PUT".into(),
            url: url.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: crate::destinations::body::StreamBody::empty(),
            timeout: Duration::from_secs(1),
        };
        for header in ["x-api-key", "Authorization", " COOKIE"] {
            let e =
                server.send_presigned(&put("http://127.0.0.1:9/b/o?sig=1", &[(header, "k")]), None);
            assert!(
                matches!(&e, Exchange::NotSent(m) if m.contains("no key")),
                "{header}: {e:?}"
            );
        }
        let e = server.send_presigned(&put("ftp://h/o?sig=1", &[]), None);
        assert!(
            matches!(&e, Exchange::NotSent(m) if m.contains("not an http")),
            "{e:?}"
        );
        // Another origin is allowed (port 1 refuses the connection here);
        // what comes back never shows the signature.
        let e = server.send_presigned(
            &put("http://127.0.0.1:1/b/o?X-Amz-Signature=s3cr", &[]),
            None,
        );
        match e {
            Exchange::NotSent(m) | Exchange::Transport(m) => {
                assert!(!m.contains("s3cr") && !m.starts_with("refused:"), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn redaction_covers_raw_and_encoded_keys() {
        let key = ApiKey::new("s3cr3t/+key");
        let text = "GET /x?apiKey=s3cr3t%2F%2Bkey failed; key s3cr3t/+key";
        let r = redact(text, &key);
        assert!(!r.contains("s3cr3t"));
        assert_eq!(r.matches("<redacted>").count(), 2);
    }
}
