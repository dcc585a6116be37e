//! Delivery through the app's own HTTP client (`Config::transport`): the
//! same reports, attachments and failure rules as with the builtin one.
//! The transport here is a small HTTP/1.1 client on `std::net`, so these
//! tests also run in a build with no HTTP stack of its own
//! (`--no-default-features`).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use fieldreport::sandbox::Fault;
use fieldreport::{
    Attachment, AttachmentState, Client, CrashReport, Feedback, HttpBody, HttpRequest,
    HttpResponse, ReportState, Transport, TransportError,
};

/// What the transport was asked to send.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    /// `None` for an empty body; the file's path for a file body.
    file: Option<std::path::PathBuf>,
    timeout: Duration,
}

/// A minimal HTTP/1.1 client: one connection per request, the body
/// streamed (a file body through `io::copy`), the answer read to its
/// length. Header names of the answer are lower-cased, as HTTP/2 stacks
/// give them.
#[derive(Default)]
struct StdTransport {
    seen: Mutex<Vec<Seen>>,
}

fn http_error(e: std::io::Error) -> TransportError {
    TransportError::Failed(e.to_string())
}

impl StdTransport {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Transport for StdTransport {
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let rest = request
            .url
            .strip_prefix("http://")
            .ok_or_else(|| TransportError::NotSent(format!("not http: {}", request.url)))?;
        let (authority, target) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        self.seen.lock().unwrap().push(Seen {
            method: request.method.clone(),
            path: target.split('?').next().unwrap_or("").to_string(),
            headers: request.headers.clone(),
            file: match &request.body {
                HttpBody::File { path, .. } => Some(path.clone()),
                _ => None,
            },
            timeout: request.timeout,
        });
        // Connecting is the last step before which nothing was sent.
        let mut conn = TcpStream::connect(authority)
            .map_err(|e| TransportError::NotSent(format!("connect to {authority}: {e}")))?;
        conn.set_read_timeout(Some(request.timeout)).ok();
        let mut head = format!(
            "{} {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n",
            request.method
        );
        for (k, v) in &request.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        conn.write_all(head.as_bytes()).map_err(http_error)?;
        match &request.body {
            HttpBody::Empty => {}
            HttpBody::Bytes(b) => conn.write_all(b).map_err(http_error)?,
            HttpBody::File {
                prefix,
                path,
                suffix,
            } => {
                conn.write_all(prefix).map_err(http_error)?;
                let mut file = std::fs::File::open(path).map_err(http_error)?;
                std::io::copy(&mut file, &mut conn).map_err(http_error)?;
                conn.write_all(suffix).map_err(http_error)?;
            }
        }
        let mut reader = BufReader::new(conn);
        let mut line = String::new();
        reader.read_line(&mut line).map_err(http_error)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| TransportError::Failed(format!("no status line: {line:?}")))?;
        let mut headers = Vec::new();
        let mut length = None;
        loop {
            line.clear();
            reader.read_line(&mut line).map_err(http_error)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
                if k == "content-length" {
                    length = v.parse::<u64>().ok();
                }
                headers.push((k, v));
            }
        }
        let mut body = Vec::new();
        match length {
            Some(n) => reader.take(n).read_to_end(&mut body),
            None => reader.read_to_end(&mut body),
        }
        .map_err(http_error)?;
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

/// Wraps a transport to change what it says for the first `times` creates.
struct Twist {
    inner: Arc<StdTransport>,
    times: AtomicUsize,
    how: fn(&StdTransport, HttpRequest) -> Result<HttpResponse, TransportError>,
}

impl Twist {
    /// `how` answers the first create; the rest go through untouched.
    fn once(how: fn(&StdTransport, HttpRequest) -> Result<HttpResponse, TransportError>) -> Twist {
        Twist {
            inner: Arc::new(StdTransport::default()),
            times: AtomicUsize::new(1),
            how,
        }
    }
}

impl Transport for Twist {
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let is_create = request.method == "POST" && matches!(request.body, HttpBody::Bytes(_));
        if is_create
            && self
                .times
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return (self.how)(&self.inner, request);
        }
        self.inner.send(request)
    }
}

fn with_transport(
    dir: &std::path::Path,
    sb: &fieldreport::sandbox::Sandbox,
    t: impl Transport + 'static,
) -> Client {
    Client::open(config(dir, sb).with_transport(t)).expect("client opens")
}

#[test]
fn reports_and_attachments_arrive_through_the_apps_transport() {
    let sb = sandbox();
    let dir = tempdir();
    let transport = Arc::new(StdTransport::default());
    let client = with_transport(dir.path(), &sb, Arc::clone(&transport));
    let shot: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let file = dir.path().join("screen.png");
    std::fs::write(&file, &shot).unwrap();
    let id = client
        .submit(
            Feedback::new("Through the app's HTTP stack")
                .description("One line.\nTwo lines.")
                .attach(Attachment::from_path("Screenshot", &file)),
        )
        .unwrap();
    let log = "thread 'main' panicked at src/lib.rs:1\n";
    let crash = client.submit_crash(CrashReport::from_text(log)).unwrap();
    let result = client.flush(Duration::from_secs(30)).unwrap();
    assert_eq!(result.pending, 0, "{result:?}");
    for r in [id, crash] {
        let status = client.report(r).unwrap();
        assert_eq!(status.state, ReportState::Delivered, "{status:?}");
        assert!(status
            .attachments
            .iter()
            .all(|a| a.state == AttachmentState::Uploaded));
    }

    let created = sb.feedback();
    assert_eq!(created.len(), 2);
    assert_eq!(created[0].body["summary"], "Through the app's HTTP stack");
    assert_eq!(created[0].body["description"], "One line.\nTwo lines.");
    let uploads = sb.uploads();
    assert_eq!(uploads.len(), 2);
    assert_eq!(uploads[0].sha256_hex, sha256_hex(&shot));
    assert_eq!(uploads[0].file_name, "screen.png");
    assert_eq!(uploads[0].content_type, "image/png");
    assert_eq!(uploads[1].element_key, "CrashLog");
    assert_eq!(uploads[1].content_type, "application/gzip");

    // Every request went through the transport, none around it.
    let seen = transport.seen();
    assert_eq!(seen.len(), sb.requests().len());
    assert_eq!(seen.len(), 4, "{seen:?}");
    let header = |s: &Seen, name: &str| {
        s.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    for s in &seen {
        assert_eq!(s.method, "POST");
        assert!(header(s, "User-Agent").unwrap().starts_with("fieldreport/"));
        assert!(s.timeout > Duration::ZERO);
    }
    // An attachment is handed over as the outbox's file, to stream, with
    // a Content-Length that counts the multipart framing around it.
    let upload = &seen[1];
    let path = upload.file.as_ref().expect("a file body");
    assert!(path.starts_with(dir.path().join("files")), "{path:?}");
    let length: u64 = header(upload, "Content-Length").unwrap().parse().unwrap();
    assert!(length > shot.len() as u64 && length < shot.len() as u64 + 1024);
    assert!(header(upload, "Content-Type")
        .unwrap()
        .starts_with("multipart/form-data; boundary="));
    assert_eq!(
        header(&seen[0], "Content-Type").unwrap(),
        "application/json"
    );
    assert!(
        seen[0]
            .path
            .ends_with("/projects/WidgetPro/feedback/Mobile"),
        "{seen:?}"
    );
    assert!(upload.path.contains("/fileElements/"), "{seen:?}");
}

#[test]
fn not_sent_is_retried_without_doubt_and_failed_is_counted_as_a_possible_duplicate() {
    let sb = sandbox();
    // NotSent: nothing reached the server; the next flush sends it once.
    let dir = tempdir();
    let client = with_transport(
        dir.path(),
        &sb,
        Twist::once(|_, _| Err(TransportError::NotSent("no route to host".into()))),
    );
    let id = client.submit(Feedback::new("not sent first")).unwrap();
    let first = client.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(first.pending, 1);
    let status = client.report(id).unwrap();
    assert_eq!(status.state, ReportState::Queued);
    let error = status.last_error.expect("the failure is explained");
    assert!(error.message.contains("no route to host"), "{error:?}");
    drain(&client, 20);
    assert_eq!(client.report(id).unwrap().state, ReportState::Delivered);
    assert_eq!(received_summaries(&sb), ["not sent first"]);
    assert_eq!(client.stats().unwrap().ambiguous_resends, 0);

    // Failed after the request left: the feedback is on the server, the
    // answer is lost. Without a lookup the resend is counted.
    let dir = tempdir();
    let client = with_transport(
        dir.path(),
        &sb,
        Twist::once(|inner, request| {
            inner.send(request)?;
            Err(TransportError::Failed("connection reset".into()))
        }),
    );
    let id = client.submit(Feedback::new("answer lost")).unwrap();
    client.flush(Duration::from_secs(10)).unwrap();
    drain(&client, 20);
    assert_eq!(client.report(id).unwrap().state, ReportState::Delivered);
    let twice = received_summaries(&sb)
        .iter()
        .filter(|s| *s == "answer lost")
        .count();
    assert_eq!(twice, 2);
    assert_eq!(client.stats().unwrap().ambiguous_resends, 1);
}

#[test]
fn a_lost_answer_is_looked_up_through_the_transport_not_sent_twice() {
    let sb = sandbox();
    let dir = tempdir();
    let mut cfg = config(dir.path(), &sb).with_transport(Twist::once(|inner, request| {
        inner.send(request)?;
        Err(TransportError::Failed(
            "timed out reading the answer".into(),
        ))
    }));
    cfg.server.client_id_field = Some("ClientId".into());
    cfg.server.lookup_key = Some("Lookup".into());
    let client = Client::open(cfg).unwrap();
    let id = client.submit(Feedback::new("looked up")).unwrap();
    client.flush(Duration::from_secs(10)).unwrap();
    drain(&client, 20);
    assert_eq!(client.report(id).unwrap().state, ReportState::Delivered);
    assert_eq!(received_summaries(&sb), ["looked up"]);
    assert_eq!(client.stats().unwrap().ambiguous_resends, 0);
    assert!(sb
        .requests()
        .iter()
        .any(|r| r.method == "GET" && r.path.contains("feedbackRecordLookups")));
}

#[test]
fn rate_limit_headers_in_any_case_are_obeyed() {
    let sb = sandbox();
    let dir = tempdir();
    let client = with_transport(dir.path(), &sb, StdTransport::default());
    sb.inject(Fault::Status {
        status: 429,
        retry_after: Some("30".into()),
        rate_limit_reset: None,
    });
    let id = client.submit(Feedback::new("rate limited")).unwrap();
    let result = client.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(result.pending, 1);
    // The sandbox's reset (a second away) and Retry-After (30 s), read from
    // lower-cased header names: the later one holds delivery back.
    std::thread::sleep(Duration::from_millis(1500));
    let again = client.flush(Duration::from_secs(10)).unwrap();
    assert!(again.receipts.is_empty(), "{again:?}");
    assert_eq!(client.report(id).unwrap().state, ReportState::Queued);
    assert_eq!(sb.requests().len(), 1);
}

#[test]
fn the_transports_words_are_redacted_and_its_failures_never_crash_a_flush() {
    let sb = sandbox();
    let dir = tempdir();
    let key = sb.api_key().to_string();
    // A transport that quotes the URL (with the key) in its error.
    struct Quoting;
    impl Transport for Quoting {
        fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
            Err(TransportError::Failed(format!(
                "cannot reach {}",
                request.url
            )))
        }
    }
    let client = with_transport(dir.path(), &sb, Quoting);
    let id = client.submit(Feedback::new("quoted")).unwrap();
    client.flush(Duration::from_secs(10)).unwrap();
    let error = client.report(id).unwrap().last_error.expect("explained");
    assert!(error.message.contains("cannot reach"), "{error:?}");
    assert!(!error.message.contains(&key), "{error:?}");
    assert!(error.message.contains("<redacted>"), "{error:?}");
    client.close();

    // A transport that panics, and one that invents a status: the flush
    // returns, the report waits for its next attempt, the cause is told.
    struct Panicking;
    impl Transport for Panicking {
        fn send(&self, _: HttpRequest) -> Result<HttpResponse, TransportError> {
            panic!("a bug in the app's transport")
        }
    }
    struct NoStatus;
    impl Transport for NoStatus {
        fn send(&self, _: HttpRequest) -> Result<HttpResponse, TransportError> {
            Ok(HttpResponse {
                status: 0,
                headers: vec![],
                body: vec![],
            })
        }
    }
    let (one, two) = (tempdir(), tempdir());
    for (client, why) in [
        (with_transport(one.path(), &sb, Panicking), "panicked"),
        (
            with_transport(two.path(), &sb, NoStatus),
            "not a final HTTP status",
        ),
    ] {
        let id = client.submit(Feedback::new("odd transport")).unwrap();
        let result = client.flush(Duration::from_secs(10)).unwrap();
        assert_eq!(result.pending, 1);
        let status = client.report(id).unwrap();
        assert_eq!(status.state, ReportState::Queued);
        let error = status.last_error.expect("explained");
        assert!(error.message.contains(why), "{error:?}");
    }
    assert!(sb.feedback().is_empty());
}
