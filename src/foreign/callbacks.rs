//! What the app implements: the delivery listener and the HTTP transport, adapted to the core's traits.

use super::*;

/// Implemented in the foreign language; see `DeliveryListener` in uniffi.udl.
pub trait DeliveryListener: Send + Sync {
    /// One event.
    fn on_event(&self, event: Event) -> Result<(), ListenerError>;
}

/// Why a foreign listener failed; see `ListenerError` in uniffi.udl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerError {
    /// The listener's exception, as the foreign language prints it.
    Failed { reason: String },
}

impl fmt::Display for ListenerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenerError::Failed { reason } => f.write_str(reason),
        }
    }
}

impl std::error::Error for ListenerError {}

/// Any exception the listener throws. Declaring the callback as throwing
/// makes uniffi hand it over as a value instead of panicking, which would
/// print a Rust backtrace for an app bug.
impl From<uniffi::UnexpectedUniFFICallbackError> for ListenerError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        ListenerError::Failed { reason: e.reason }
    }
}

/// The longest line printed about a failed listener.
pub(crate) const MAX_LISTENER_LINE: usize = 300;

/// The one line printed for a listener's exception: its first line (a JVM
/// stack trace follows the message), cut to [`MAX_LISTENER_LINE`].
pub(crate) fn listener_failure_line(error: &ListenerError) -> String {
    let ListenerError::Failed { reason } = error;
    let mut first = reason.lines().next().unwrap_or("").trim().to_string();
    if first.is_empty() {
        first = "(no message)".to_string();
    }
    if first.len() > MAX_LISTENER_LINE {
        let mut cut = MAX_LISTENER_LINE;
        while !first.is_char_boundary(cut) {
            cut -= 1;
        }
        first.truncate(cut);
        first.push('…');
    }
    format!(
        "fieldreport: the DeliveryListener threw {first}; delivery goes on \
         (later exceptions of this listener are not shown)"
    )
}

/// Adapts a foreign listener to the core's [`core_report::Listener`]. An
/// exception is an app bug that must not stop delivery: the first one of
/// each listener is printed as one line on stderr, the rest are ignored.
pub(crate) struct ListenerAdapter {
    listener: Box<dyn DeliveryListener>,
    /// Whether an exception of this listener was printed already.
    reported: AtomicBool,
}

impl ListenerAdapter {
    pub(crate) fn new(listener: Box<dyn DeliveryListener>) -> Self {
        ListenerAdapter {
            listener,
            reported: AtomicBool::new(false),
        }
    }

    /// Delivers one event; returns the line to print for a failure, the
    /// first time only.
    pub(crate) fn deliver(&self, event: Event) -> Option<String> {
        let error = self.listener.on_event(event).err()?;
        if self.reported.swap(true, Ordering::Relaxed) {
            return None;
        }
        Some(listener_failure_line(&error))
    }
}

impl core_report::Listener for ListenerAdapter {
    fn on_event(&self, event: core_report::Event) {
        if let Some(line) = self.deliver(event.into()) {
            eprintln!("{line}");
        }
    }
}

/// Implemented in the foreign language; see `HttpTransport` in uniffi.udl.
pub trait HttpTransport: Send + Sync {
    /// Sends one request.
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError>;
}

/// One HTTP header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpHeader {
    pub name: String,
    pub value: String,
}

/// The foreign mirror of [`core_transport::HttpBody`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpBody {
    Empty,
    Bytes {
        data: Vec<u8>,
    },
    File {
        prefix: Vec<u8>,
        path: String,
        suffix: Vec<u8>,
    },
}

/// The foreign mirror of [`core_transport::HttpRequest`].
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<HttpHeader>,
    pub body: HttpBody,
    pub timeout_ms: u64,
}

impl HttpRequest {
    /// The core's form, whose `Debug` leaves the URL's query (the API key) out.
    pub(crate) fn to_core(&self) -> core_transport::HttpRequest {
        core_transport::HttpRequest {
            method: self.method.clone(),
            url: self.url.clone(),
            headers: self
                .headers
                .iter()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect(),
            body: match &self.body {
                HttpBody::Empty => core_transport::HttpBody::Empty,
                HttpBody::Bytes { data } => core_transport::HttpBody::Bytes(data.clone()),
                HttpBody::File {
                    prefix,
                    path,
                    suffix,
                } => core_transport::HttpBody::File {
                    prefix: prefix.clone(),
                    path: PathBuf::from(path),
                    suffix: suffix.clone(),
                },
            },
            timeout: Duration::from_millis(self.timeout_ms),
        }
    }
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_core(), f)
    }
}

impl fmt::Display for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The longest reason kept from a foreign exception (its stack trace, on
/// the JVM, can run to kilobytes).
pub(crate) const MAX_FOREIGN_REASON: usize = 1000;

/// The foreign mirror of [`core_transport::HttpResponse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<HttpHeader>,
    pub body: Vec<u8>,
}

/// The foreign mirror of [`core_transport::TransportError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    NotSent { reason: String },
    Failed { reason: String },
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&core_transport::TransportError::from(self.clone()), f)
    }
}

impl std::error::Error for TransportError {}

/// A foreign exception that is not a `TransportError`: it may have come
/// after the request left.
impl From<uniffi::UnexpectedUniFFICallbackError> for TransportError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        let mut reason = e.reason;
        if reason.len() > MAX_FOREIGN_REASON {
            let mut cut = MAX_FOREIGN_REASON;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
            reason.push('…');
        }
        TransportError::Failed { reason }
    }
}

impl From<TransportError> for core_transport::TransportError {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::NotSent { reason } => core_transport::TransportError::NotSent(reason),
            TransportError::Failed { reason } => core_transport::TransportError::Failed(reason),
        }
    }
}

pub(crate) fn headers_of(list: Vec<(String, String)>) -> Vec<HttpHeader> {
    list.into_iter()
        .map(|(name, value)| HttpHeader { name, value })
        .collect()
}

/// Adapts a foreign transport to the core's [`core_transport::Transport`].
pub(crate) struct TransportAdapter(pub(crate) Box<dyn HttpTransport>);

impl core_transport::Transport for TransportAdapter {
    fn send(
        &self,
        r: core_transport::HttpRequest,
    ) -> Result<core_transport::HttpResponse, core_transport::TransportError> {
        let body = match r.body {
            core_transport::HttpBody::Empty => HttpBody::Empty,
            core_transport::HttpBody::Bytes(data) => HttpBody::Bytes { data },
            core_transport::HttpBody::File {
                prefix,
                path,
                suffix,
            } => HttpBody::File {
                prefix,
                // The outbox's own file names: always UTF-8.
                path: path.to_string_lossy().into_owned(),
                suffix,
            },
        };
        let request = HttpRequest {
            method: r.method,
            url: r.url,
            headers: headers_of(r.headers),
            body,
            timeout_ms: u64::try_from(r.timeout.as_millis()).unwrap_or(u64::MAX),
        };
        let answer = self.0.send(request)?;
        Ok(core_transport::HttpResponse {
            status: answer.status,
            headers: answer
                .headers
                .into_iter()
                .map(|h| (h.name, h.value))
                .collect(),
            body: answer.body,
        })
    }
}
