//! An HTTP stack supplied by the app. By default fieldreport sends its
//! requests itself (ureq, with rustls for TLS). An app may instead hand it
//! a [`Transport`]: its own HTTP client (OkHttp or `HttpURLConnection` on
//! Android, URLSession on Apple platforms), which then does the TLS, follows
//! the platform's proxy and VPN settings and certificate pinning, and lets
//! a mobile build leave out the bundled HTTP and TLS stack (about 0.6 MB of
//! the library, BENCHMARKS.md). Every delivery rule stays in the library: a
//! transport sends one request and says what came back, nothing more.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// One request for the app's transport to send, exactly as given: no
/// retries, no redirects followed, no caching, no cookies.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// The full URL. It carries the API key in its query string (as
    /// Centercode requires): never log it.
    pub url: String,
    /// Headers to send, among them `Content-Type` and `Content-Length` when
    /// there is a body.
    pub headers: Vec<(String, String)>,
    /// What to send after the headers.
    pub body: HttpBody,
    /// How long the whole exchange may take before the transport gives up.
    pub timeout: Duration,
}

/// The body of an [`HttpRequest`].
#[derive(Clone, PartialEq, Eq)]
pub enum HttpBody {
    /// No body (a lookup).
    Empty,
    /// These bytes (the feedback's JSON).
    Bytes(Vec<u8>),
    /// `prefix`, then the file's bytes, then `suffix`: a `multipart/form-data`
    /// upload of an attachment. Stream the file: it may be hundreds of MB.
    /// The `Content-Length` header already counts all three parts.
    File {
        /// Sent before the file (the part's headers).
        prefix: Vec<u8>,
        /// The outbox's copy of the attachment; read it, never change it.
        path: PathBuf,
        /// Sent after the file (the closing boundary).
        suffix: Vec<u8>,
    },
}

/// What the server answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The answer's headers (names in any case). The library reads
    /// `Retry-After` and `X-Rate-Limit-Reset`.
    pub headers: Vec<(String, String)>,
    /// The answer's body. The library reads at most its first MiB.
    pub body: Vec<u8>,
}

/// Why a transport has no answer to give. Which of the two it is decides
/// whether a report can be sent again without risk of a duplicate, so when
/// in doubt say [`TransportError::Failed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// The request certainly never reached the server: the name did not
    /// resolve, the connection was refused, or the TLS handshake failed.
    NotSent(String),
    /// The request may have reached the server: a timeout or a connection
    /// lost after sending began, or anything the transport cannot place.
    Failed(String),
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::NotSent(m) => write!(f, "not sent: {m}"),
            TransportError::Failed(m) => write!(f, "failed: {m}"),
        }
    }
}

impl std::error::Error for TransportError {}

/// An HTTP client supplied by the app; see the module docs. Called from
/// the thread that flushes (the caller of `flush`, or the background
/// sender), one request at a time per client. Must not call back into the
/// client.
pub trait Transport: Send + Sync {
    /// Sends `request` and returns the server's answer, whatever its status.
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError>;
}

/// A shared transport (the app keeps a handle, e.g. to count requests).
impl<T: Transport + ?Sized> Transport for std::sync::Arc<T> {
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        (**self).send(request)
    }
}

impl fmt::Debug for dyn Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<app transport>")
    }
}

impl fmt::Debug for HttpRequest {
    // The URL carries the API key: only its path is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url.split('?').next().unwrap_or(""))
            .field("headers", &self.headers)
            .field("body", &self.body)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl fmt::Debug for HttpBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpBody::Empty => f.write_str("Empty"),
            HttpBody::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            HttpBody::File {
                prefix,
                path,
                suffix,
            } => write!(
                f,
                "File({} + {:?} + {} bytes)",
                prefix.len(),
                path,
                suffix.len()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_leaves_the_query_out() {
        let r = HttpRequest {
            method: "GET".into(),
            url: "http://h/api/x?find=1&apiKey=SECRET".into(),
            headers: vec![],
            body: HttpBody::Bytes(b"{}".to_vec()),
            timeout: Duration::from_secs(1),
        };
        let shown = format!("{r:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("http://h/api/x"), "{shown}");
        assert!(shown.contains("Bytes(2 bytes)"), "{shown}");
    }
}
