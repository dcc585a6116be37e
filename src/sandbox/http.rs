//! The sandboxes' HTTP/1.1 server: connections, request heads and bodies,
//! responses, and the order of checks every API request goes through.

use super::*;

// ---------------------------------------------------------------------------
// Accepting and serving connections
// ---------------------------------------------------------------------------

pub(crate) fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let accepted = listener.accept();
        if shared.is_stopping() {
            break;
        }
        match accepted {
            Ok((stream, _)) => spawn_connection(&shared, stream),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Out of descriptors or similar: back off a little and go on.
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

pub(crate) fn spawn_connection(shared: &Arc<Shared>, stream: TcpStream) {
    let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let Ok(registered) = stream.try_clone() else {
        return;
    };
    lock(&shared.conns).insert(id, registered);
    let for_thread = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name("sandbox-conn".to_string())
        .spawn(move || {
            serve_connection(&for_thread, stream);
            lock(&for_thread.conns).remove(&id);
        });
    let mut threads = lock(&shared.conn_threads);
    threads.retain(|t| !t.is_finished());
    match spawned {
        Ok(handle) => threads.push(handle),
        Err(_) => {
            drop(threads);
            lock(&shared.conns).remove(&id);
        }
    }
}

/// Reads from a socket whose read timeout is [`READ_TICK`], retrying on
/// timeouts until the sandbox stops or `patience` ticks pass without a byte.
pub(crate) struct SocketReader {
    pub(crate) stream: TcpStream,
    pub(crate) shared: Arc<Shared>,
    pub(crate) patience: Option<u32>,
}

impl Read for SocketReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut waited = 0u32;
        loop {
            match self.stream.read(buf) {
                Ok(n) => return Ok(n),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if self.shared.is_stopping() {
                        return Err(io::Error::new(
                            io::ErrorKind::ConnectionAborted,
                            "sandbox stopping",
                        ));
                    }
                    waited += 1;
                    if self.patience.is_some_and(|p| waited >= p) {
                        return Err(io::Error::new(io::ErrorKind::TimedOut, "client stalled"));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

pub(crate) type ConnReader = BufReader<SocketReader>;

pub(crate) fn serve_connection(shared: &Arc<Shared>, stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(READ_TICK));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let Ok(writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::with_capacity(
        SCAN_CHUNK,
        SocketReader {
            stream,
            shared: Arc::clone(shared),
            patience: None,
        },
    );
    while !shared.is_stopping() {
        reader.get_mut().patience = None;
        let head = match read_head(&mut reader) {
            Ok(head) => head,
            Err(HeadError::Closed) => break,
            Err(HeadError::Bad(status, why)) => {
                let resp = Response::error(status, why);
                let rate = shared.rate_check(false);
                let _ = write_response(&writer, resp, &rate, false, ConnHeader::Close);
                linger(&writer);
                break;
            }
        };
        reader.get_mut().patience = Some(STALL_TICKS);
        if !handle_request(shared, &mut reader, &writer, &head) {
            break;
        }
    }
    let _ = writer.shutdown(Shutdown::Both);
}

/// Handles one request; returns whether the connection stays open.
pub(crate) fn handle_request(
    shared: &Shared,
    reader: &mut ConnReader,
    writer: &TcpStream,
    head: &Head,
) -> bool {
    let arrived = Instant::now();
    let control = head.path == "/_sandbox" || head.path.starts_with("/_sandbox/");
    let framing = match head.framing() {
        Ok(framing) => framing,
        Err(why) => {
            // The end of the body cannot be found: answer and close.
            let rate = shared.rate_check(false);
            if !control {
                shared.record(head, 400, None, arrived);
            }
            let _ = write_response(
                writer,
                Response::error(400, why),
                &rate,
                false,
                ConnHeader::Close,
            );
            linger(writer);
            return false;
        }
    };
    let expect_continue = head.minor == 1
        && head
            .header("expect")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"));
    let mut body = Body::new(reader, writer, framing, expect_continue);

    if control {
        let rate = shared.rate_check(false);
        return match handle_control(shared, head, &mut body) {
            Ok(resp) => finish(writer, head, &mut body, resp, &rate),
            Err(Abort) => false,
        };
    }

    let fault = shared.next_fault();
    let label = fault.as_ref().map(Fault::label);
    if let Some(Fault::Delay(d)) = &fault {
        shared.sleep(*d);
    }
    let rate = shared.rate_check(true);
    match fault {
        Some(Fault::Drop) => {
            let _ = body.drain(u64::MAX);
            shared.record(head, 0, label, arrived);
            return false;
        }
        Some(Fault::Status {
            status,
            retry_after,
            rate_limit_reset,
        }) => {
            let mut resp = kind_error(shared, head, status, describe(status));
            if let Some(v) = retry_after {
                resp.set_header("Retry-After", &v);
            }
            if let Some(v) = rate_limit_reset {
                resp.set_header("X-Rate-Limit-Reset", &v);
            }
            if status == 429 && rate.headers {
                resp.set_header("X-Rate-Limit-Remaining", "0");
            }
            shared.record(head, status, label, arrived);
            return finish(writer, head, &mut body, resp, &rate);
        }
        Some(Fault::Body { status, body: text }) => {
            let resp = Response::raw(status, text.into_bytes());
            shared.record(head, status, label, arrived);
            return finish(writer, head, &mut body, resp, &rate);
        }
        _ => {}
    }
    let act_then_drop = matches!(fault, Some(Fault::ActThenDrop));

    let outcome = if rate.limited {
        let mut resp = kind_error(shared, head, 429, describe(429));
        resp.set_header("Retry-After", &rate.retry_after_secs.to_string());
        Ok(resp)
    } else {
        match shared.config.kind {
            SandboxKind::Centercode => {
                if query_param(&head.query, "apiKey").as_deref() != Some(shared.keys.current()) {
                    Ok(Response::error(401, UNAUTHORIZED))
                } else {
                    crate::destinations::centercode::sandbox::route(shared, head, &mut body)
                }
            }
            // These check their key inside their routes: ABC's guard runs
            // after routing and, for JSON routes, after the body is parsed.
            SandboxKind::Abc => crate::destinations::abc::sandbox::route(shared, head, &mut body),
            SandboxKind::Apptentive => {
                crate::destinations::apptentive::sandbox::route(shared, head, &mut body)
            }
        }
    };
    match outcome {
        Err(Abort) => {
            shared.record(head, 0, label, arrived);
            false
        }
        Ok(_) if act_then_drop => {
            shared.record(head, 0, label, arrived);
            let _ = body.drain(DRAIN_LIMIT);
            false
        }
        Ok(resp) => {
            shared.record(head, resp.status, label, arrived);
            finish(writer, head, &mut body, resp, &rate)
        }
    }
}

/// Writes the answer, draining or abandoning what is left of the request
/// body; returns whether the connection stays open.
pub(crate) fn finish(
    writer: &TcpStream,
    head: &Head,
    body: &mut Body<'_>,
    resp: Response,
    rate: &RateInfo,
) -> bool {
    let mut close = head.wants_close() || resp.close;
    if !body.finished() {
        let unasked = body.expect_continue && !body.continue_sent;
        if unasked || body.failed.is_some() || !body.drain(DRAIN_LIMIT) {
            close = true;
        }
    }
    let conn = if close {
        ConnHeader::Close
    } else if head.minor == 0 {
        ConnHeader::KeepAlive
    } else {
        ConnHeader::None
    };
    let written = write_response(writer, resp, rate, head.method == "HEAD", conn).is_ok();
    if close {
        if !body.finished() {
            linger(writer);
        }
        return false;
    }
    written
}

/// Half-closes, then reads and discards for a moment, so that the client
/// reads our answer rather than a reset caused by its unread bytes.
pub(crate) fn linger(stream: &TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut buf = [0u8; 16 * 1024];
    let mut total = 0usize;
    let mut s = stream;
    while Instant::now() < deadline && total < 64 * 1024 * 1024 {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => break,
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP request heads
// ---------------------------------------------------------------------------

pub(crate) struct Head {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) minor: u8,
    pub(crate) headers: Vec<(String, String)>,
}

pub(crate) enum HeadError {
    /// The client went away (or never sent a request).
    Closed,
    /// Not a request we can parse: answer this status and close.
    Bad(u16, &'static str),
}

pub(crate) enum Framing {
    Length(u64),
    Chunked,
}

impl Head {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn has_token(&self, name: &str, token: &str) -> bool {
        self.header_values(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    pub(crate) fn wants_close(&self) -> bool {
        self.has_token("connection", "close")
            || (self.minor == 0 && !self.has_token("connection", "keep-alive"))
    }

    pub(crate) fn framing(&self) -> Result<Framing, &'static str> {
        let codings: Vec<&str> = self
            .header_values("transfer-encoding")
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        if let Some(last) = codings.last() {
            return if last.eq_ignore_ascii_case("chunked") {
                Ok(Framing::Chunked)
            } else {
                Err("Unsupported Transfer-Encoding.")
            };
        }
        let mut length = None;
        for v in self
            .header_values("content-length")
            .flat_map(|v| v.split(','))
        {
            let v = v.trim();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err("Invalid Content-Length.");
            }
            let n: u64 = v.parse().map_err(|_| "Invalid Content-Length.")?;
            if length.is_some_and(|l| l != n) {
                return Err("Conflicting Content-Length headers.");
            }
            length = Some(n);
        }
        Ok(Framing::Length(length.unwrap_or(0)))
    }
}

pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Reads one line (LF or CRLF terminated, terminator removed). `Ok(None)` at
/// a clean end of input; `InvalidData` when longer than `max`.
pub(crate) fn read_line<R: BufRead + ?Sized>(r: &mut R, max: usize) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    loop {
        let avail = r.fill_buf()?;
        if avail.is_empty() {
            return if line.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        if let Some(i) = avail.iter().position(|&b| b == b'\n') {
            if line.len() + i > max {
                return Err(invalid_data("line too long"));
            }
            line.extend_from_slice(&avail[..i]);
            r.consume(i + 1);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Some(line));
        }
        let n = avail.len();
        if line.len() + n > max {
            return Err(invalid_data("line too long"));
        }
        line.extend_from_slice(avail);
        r.consume(n);
    }
}

pub(crate) fn invalid_data(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

pub(crate) fn read_head(r: &mut ConnReader) -> Result<Head, HeadError> {
    let mut blank_lines = 0;
    let line = loop {
        match read_line(r, MAX_LINE) {
            Ok(Some(line)) if line.is_empty() => {
                blank_lines += 1;
                if blank_lines > 8 {
                    return Err(HeadError::Bad(400, "Malformed request."));
                }
            }
            Ok(Some(line)) => break line,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(HeadError::Bad(414, "The request line is too long."))
            }
            Ok(None) | Err(_) => return Err(HeadError::Closed),
        }
    };
    let bad = HeadError::Bad(400, "Malformed request line.");
    let text =
        std::str::from_utf8(&line).map_err(|_| HeadError::Bad(400, "Malformed request line."))?;
    let mut parts = text.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad);
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(bad);
    }
    let minor = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        v if v.starts_with("HTTP/") => {
            return Err(HeadError::Bad(505, "HTTP version not supported."))
        }
        _ => return Err(bad),
    };
    // Absolute-form targets (as sent to proxies) keep only their path.
    let target = match target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    if !target.starts_with('/') {
        return Err(bad);
    }
    let target = target.split('#').next().unwrap_or(target);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));

    let mut headers = Vec::new();
    let mut total = 0usize;
    loop {
        let line = match read_line(r, MAX_LINE) {
            Ok(Some(line)) => line,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(HeadError::Bad(431, "Request header fields too large."))
            }
            Ok(None) | Err(_) => return Err(HeadError::Closed),
        };
        if line.is_empty() {
            break;
        }
        total += line.len();
        if total > MAX_HEAD || headers.len() >= MAX_HEADERS {
            return Err(HeadError::Bad(431, "Request header fields too large."));
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(HeadError::Bad(
                400,
                "Folded header lines are not supported.",
            ));
        }
        let text = String::from_utf8_lossy(&line);
        let Some((name, value)) = text.split_once(':') else {
            return Err(HeadError::Bad(400, "Malformed header line."));
        };
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(HeadError::Bad(400, "Malformed header line."));
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    Ok(Head {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        minor,
        headers,
    })
}

// ---------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------

pub(crate) enum BodyState {
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkDataEnd,
    Done,
}

/// The body of one request, decoded from its framing. Sends
/// `100 Continue` before the first read when the client asked for it.
pub(crate) struct Body<'a> {
    pub(crate) reader: &'a mut ConnReader,
    pub(crate) writer: &'a TcpStream,
    pub(crate) state: BodyState,
    pub(crate) declared: Option<u64>,
    pub(crate) expect_continue: bool,
    pub(crate) continue_sent: bool,
    pub(crate) failed: Option<io::ErrorKind>,
}

impl<'a> Body<'a> {
    pub(crate) fn new(
        reader: &'a mut ConnReader,
        writer: &'a TcpStream,
        framing: Framing,
        expect: bool,
    ) -> Body<'a> {
        let (state, declared) = match framing {
            Framing::Length(0) => (BodyState::Done, Some(0)),
            Framing::Length(n) => (BodyState::Length(n), Some(n)),
            Framing::Chunked => (BodyState::ChunkSize, None),
        };
        let expect_continue = expect && !matches!(state, BodyState::Done);
        Body {
            reader,
            writer,
            state,
            declared,
            expect_continue,
            continue_sent: false,
            failed: None,
        }
    }

    pub(crate) fn finished(&self) -> bool {
        matches!(self.state, BodyState::Done)
    }

    /// Reads and discards up to `limit` bytes; true when the body is complete.
    pub(crate) fn drain(&mut self, limit: u64) -> bool {
        let mut buf = [0u8; 16 * 1024];
        let mut seen = 0u64;
        while !self.finished() {
            if seen >= limit {
                return false;
            }
            match self.read(&mut buf) {
                Ok(0) => return self.finished(),
                Ok(n) => seen += n as u64,
                Err(_) => return false,
            }
        }
        true
    }

    pub(crate) fn read_data(&mut self, buf: &mut [u8], rem: u64) -> io::Result<usize> {
        let want = buf.len().min(usize::try_from(rem).unwrap_or(usize::MAX));
        let n = self.reader.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(n)
    }

    pub(crate) fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.state {
                BodyState::Done => return Ok(0),
                BodyState::Length(rem) => {
                    let n = self.read_data(buf, rem)?;
                    let rem = rem - n as u64;
                    self.state = if rem == 0 {
                        BodyState::Done
                    } else {
                        BodyState::Length(rem)
                    };
                    return Ok(n);
                }
                BodyState::ChunkData(rem) => {
                    let n = self.read_data(buf, rem)?;
                    let rem = rem - n as u64;
                    self.state = if rem == 0 {
                        BodyState::ChunkDataEnd
                    } else {
                        BodyState::ChunkData(rem)
                    };
                    return Ok(n);
                }
                BodyState::ChunkSize => {
                    let line =
                        read_line(&mut *self.reader, 1024)?.ok_or(io::ErrorKind::UnexpectedEof)?;
                    let size =
                        parse_chunk_size(&line).ok_or_else(|| invalid_data("bad chunk size"))?;
                    if size > 0 {
                        self.state = BodyState::ChunkData(size);
                        continue;
                    }
                    let mut trailer_bytes = 0;
                    loop {
                        let t = read_line(&mut *self.reader, MAX_LINE)?
                            .ok_or(io::ErrorKind::UnexpectedEof)?;
                        if t.is_empty() {
                            break;
                        }
                        trailer_bytes += t.len();
                        if trailer_bytes > MAX_HEAD {
                            return Err(invalid_data("trailers too large"));
                        }
                    }
                    self.state = BodyState::Done;
                    return Ok(0);
                }
                BodyState::ChunkDataEnd => {
                    let line =
                        read_line(&mut *self.reader, 1024)?.ok_or(io::ErrorKind::UnexpectedEof)?;
                    if !line.is_empty() {
                        return Err(invalid_data("chunk longer than its size"));
                    }
                    self.state = BodyState::ChunkSize;
                }
            }
        }
    }
}

impl Read for Body<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(kind) = self.failed {
            return Err(io::Error::new(kind, "the request body could not be read"));
        }
        if buf.is_empty() || self.finished() {
            return Ok(0);
        }
        if self.expect_continue && !self.continue_sent {
            self.continue_sent = true;
            let mut w = self.writer;
            if let Err(e) = w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n") {
                self.failed = Some(e.kind());
                return Err(e);
            }
        }
        self.read_body(buf)
            .inspect_err(|e| self.failed = Some(e.kind()))
    }
}

pub(crate) fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(line).ok()?;
    let size = text.split(';').next()?.trim();
    if size.is_empty() || size.len() > 16 || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(size, 16).ok()
}

/// Reads the whole body if it has at most `limit` bytes (`Ok(None)` if more).
pub(crate) fn read_limited(body: &mut Body<'_>, limit: u64) -> io::Result<Option<Vec<u8>>> {
    if body.declared.is_some_and(|n| n > limit) {
        return Ok(None);
    }
    let mut out = Vec::new();
    body.take(limit + 1).read_to_end(&mut out)?;
    Ok((out.len() as u64 <= limit).then_some(out))
}

/// The request cannot be answered (the client went away): close silently.
pub(crate) struct Abort;

/// The answer to a body that could not be read: 400 for a malformed body,
/// silence for a broken connection.
pub(crate) fn body_error(e: &io::Error) -> Result<Response, Abort> {
    if e.kind() == io::ErrorKind::InvalidData {
        Ok(Response::error(400, "The request body is malformed.").closing())
    } else {
        Err(Abort)
    }
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    pub(crate) close: bool,
}

pub(crate) enum ConnHeader {
    None,
    KeepAlive,
    Close,
}

impl Response {
    pub(crate) fn raw(status: u16, body: Vec<u8>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".to_string(), "application/json".to_string())],
            body,
            close: false,
        }
    }

    pub(crate) fn json(status: u16, v: &Value) -> Response {
        Response::raw(status, serde_json::to_vec(v).unwrap_or_default())
    }

    pub(crate) fn error(status: u16, description: &str) -> Response {
        Response::json(
            status,
            &json!({"status": status, "description": description}),
        )
    }

    pub(crate) fn invalid(params: &[(&str, &str)]) -> Response {
        let params: Vec<Value> = params
            .iter()
            .map(|(name, description)| json!({"name": name, "description": description}))
            .collect();
        Response::json(
            400,
            &json!({"status": 400, "description": INVALID_REQUEST, "invalidParameters": params}),
        )
    }

    pub(crate) fn closing(mut self) -> Response {
        self.close = true;
        self
    }

    pub(crate) fn set_header(&mut self, name: &str, value: &str) {
        let value: String = value.chars().filter(|c| !c.is_control()).collect();
        match self
            .headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value,
            None => self.headers.push((name.to_string(), value)),
        }
    }

    pub(crate) fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }
}

pub(crate) fn write_response(
    writer: &TcpStream,
    mut resp: Response,
    rate: &RateInfo,
    head_only: bool,
    conn: ConnHeader,
) -> io::Result<()> {
    let rate_headers = [
        ("X-Rate-Limit-Limit", "1s".to_string()),
        ("X-Rate-Limit-Remaining", rate.remaining.to_string()),
        ("X-Rate-Limit-Reset", iso8601(rate.reset)),
    ];
    for (name, value) in rate_headers {
        if rate.headers && !resp.has_header(name) {
            resp.set_header(name, &value);
        }
    }
    let no_body = resp.status < 200 || resp.status == 204 || resp.status == 304;
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (name, value) in &resp.headers {
        if no_body && name.eq_ignore_ascii_case("content-type") {
            continue;
        }
        let _ = write!(head, "{name}: {value}\r\n");
    }
    if !no_body {
        let _ = write!(head, "Content-Length: {}\r\n", resp.body.len());
    }
    match conn {
        ConnHeader::None => {}
        ConnHeader::KeepAlive => head.push_str("Connection: keep-alive\r\n"),
        ConnHeader::Close => head.push_str("Connection: close\r\n"),
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if !no_body && !head_only {
        out.extend_from_slice(&resp.body);
    }
    let mut w = writer;
    w.write_all(&out)?;
    w.flush()
}

pub(crate) fn reason(status: u16) -> &'static str {
    // The sandbox's own table, not the library's: a wrong phrase in either
    // shows up as a difference in the tests.
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// The `description` of a standard error body for this status.
pub(crate) fn describe(status: u16) -> &'static str {
    match status {
        400 => INVALID_REQUEST,
        401 => UNAUTHORIZED,
        403 => "Forbidden: the API key is not authorized for this endpoint.",
        404 => "The requested resource was not found.",
        405 => "The requested method is not allowed for this resource.",
        408 => "The request timed out.",
        413 => "The request is too large.",
        415 => "The request content type is not supported.",
        429 => "Too many requests: the rate limit has been exceeded.",
        500 => "An unexpected error occurred.",
        502 => "Bad gateway.",
        503 => "The service is temporarily unavailable.",
        504 => "The gateway timed out.",
        _ => reason(status),
    }
}

// ---------------------------------------------------------------------------
// Small helpers: query strings, percent-encoding, hex, dates
// ---------------------------------------------------------------------------

/// The first value of a query parameter, percent-decoded (`+` is a space).
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k, true) == name).then(|| percent_decode(v, true))
    })
}

pub(crate) fn percent_decode_bytes(s: &str, plus_is_space: bool) -> Vec<u8> {
    pub(crate) fn hex_val(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_val);
            let lo = bytes.get(i + 2).copied().and_then(hex_val);
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(if b == b'+' && plus_is_space { b' ' } else { b });
        i += 1;
    }
    out
}

pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> String {
    String::from_utf8_lossy(&percent_decode_bytes(s, plus_is_space)).into_owned()
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC. Written here rather than borrowed
/// from the library (a plain walk over years and months, not the library's
/// day arithmetic), so that a mistake in the library's date code cannot
/// hide behind the same mistake in the server it is tested against.
pub(crate) fn iso8601(t: SystemTime) -> String {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let (mut days, rem) = ((ms / 86_400_000) as u64, (ms % 86_400_000) as u64);
    let leap = |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let mut year = 1970;
    loop {
        let len = if leap(year) { 366 } else { 365 };
        if days < len {
            break;
        }
        days -= len;
        year += 1;
    }
    let months = [
        31,
        if leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let mut month = 0;
    while days >= months[month] {
        days -= months[month];
        month += 1;
    }
    format!(
        "{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        month + 1,
        days + 1,
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// An error answer in the error-body shape of the sandbox's kind.
pub(crate) fn kind_error(shared: &Shared, head: &Head, status: u16, text: &str) -> Response {
    match shared.config.kind {
        SandboxKind::Centercode => Response::error(status, text),
        SandboxKind::Abc => crate::destinations::abc::sandbox::nest_error(status, text, head),
        SandboxKind::Apptentive => crate::destinations::apptentive::sandbox::error(status, text),
    }
}

pub(crate) fn not_found() -> Response {
    Response::error(404, describe(404))
}

pub(crate) fn method_not_allowed(allow: &str) -> Response {
    let mut resp = Response::error(405, describe(405));
    resp.set_header("Allow", allow);
    resp
}

/// The media type of a Content-Type value, lower-cased, without parameters.
pub(crate) fn media_type(content_type: Option<&str>) -> String {
    content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}
