//! The sandbox's own tests: raw HTTP against a running sandbox.

use super::http::*;
use super::multipart::*;
use super::*;

/// A bare HTTP/1.1 client over one connection.
struct Client {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

impl Client {
    fn connect(sb: &Sandbox) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", sb.port())).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Client { stream, reader }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Reads one final response (skipping 1xx); Err at end of stream.
    fn response(&mut self) -> io::Result<Resp> {
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let status: u16 = line
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("bad status line {line:?}"));
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                self.reader.read_line(&mut h)?;
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                let (n, v) = h.split_once(':').unwrap();
                headers.push((n.trim().to_string(), v.trim().to_string()));
            }
            if status < 200 {
                continue;
            }
            let len = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .map_or(0, |(_, v)| v.parse::<usize>().unwrap());
            let mut body = vec![0; len];
            self.reader.read_exact(&mut body)?;
            return Ok(Resp {
                status,
                headers,
                body,
            });
        }
    }

    fn request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        let mut head = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        self.send(&bytes);
        self.response().expect("response")
    }

    fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(self.reader.read(&mut buf), Ok(0) | Err(_))
    }
}

fn start() -> Sandbox {
    Sandbox::start(SandboxConfig::default()).expect("start sandbox")
}

fn create_path(sb: &Sandbox) -> String {
    format!(
        "/api/v1/projects/WidgetPro/feedback/Mobile?apiKey={}",
        sb.api_key()
    )
}

fn create(sb: &Sandbox, client: &mut Client, body: &Value) -> Resp {
    client.request(
        "POST",
        &create_path(sb),
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
}

fn upload_path(sb: &Sandbox, key: &str, element: &str) -> String {
    format!(
        "/api/v1/projects/WidgetPro/feedbackTypes/Mobile/feedback/{key}/fileElements/{element}?apiKey={}",
        sb.api_key()
    )
}

const BOUNDARY: &str = "----sandboxTestBoundary7MA4YWxk";

fn multipart(file_name: &str, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n")
            .as_bytes(),
    );
    out.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
             Content-Type: image/png\r\n\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(content);
    out.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    out
}

fn upload(sb: &Sandbox, client: &mut Client, key: &str, element: &str, content: &[u8]) -> Resp {
    let ct = format!("multipart/form-data; boundary={BOUNDARY}");
    client.request(
        "POST",
        &upload_path(sb, key, element),
        &[("Content-Type", &ct)],
        &multipart("shot.png", content),
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Content that contains near-boundaries, to exercise the scanner.
fn tricky_content(len: usize) -> Vec<u8> {
    let pattern = format!("\r\n--{}\r\n-", &BOUNDARY[..BOUNDARY.len() - 1]);
    let mut out = Vec::with_capacity(len);
    let mut i = 0u32;
    while out.len() < len {
        if i.is_multiple_of(97) {
            out.extend_from_slice(pattern.as_bytes());
        } else {
            out.push((i.wrapping_mul(31) % 251) as u8);
        }
        i += 1;
    }
    out.truncate(len);
    out
}

#[test]
fn sandbox_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Sandbox>();
}

#[test]
fn create_returns_201_with_file_elements_and_rate_headers() {
    let sb = start();
    assert_eq!(
        sb.base_url(),
        format!("http://127.0.0.1:{}/api/v1", sb.port())
    );
    let mut c = Client::connect(&sb);
    let r = create(
        &sb,
        &mut c,
        &json!({"summary": "WiFi not connecting", "topic": 23795}),
    );
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-rate-limit-limit"), Some("1s"));
    assert_eq!(r.header("x-rate-limit-remaining"), Some("9"));
    let reset = r.header("x-rate-limit-reset").unwrap();
    assert_eq!(reset.len(), 24, "{reset}");
    assert!(reset.ends_with('Z') && &reset[10..11] == "T" && &reset[19..20] == ".");
    let v = r.json();
    assert_eq!(v["key"], "BUG-0001");
    let id = v["id"].as_str().unwrap();
    assert_eq!(id.len(), 36);
    let url = v["url"].as_str().unwrap();
    assert!(
        url.starts_with("http://127.0.0.1/project/feedback/view.html?cap="),
        "{url}"
    );
    assert!(url.ends_with(&format!("&uf={}", id.replace('-', ""))));
    let elements = v["fileElements"].as_array().unwrap();
    assert_eq!(elements.len(), 3);
    assert_eq!(elements[1]["key"], "CrashLog");
    assert_eq!(elements[1]["title"], "Crash Log");
    assert_eq!(elements[1]["acceptsMultipleAttachments"], false);
    assert_eq!(
        elements[0]["url"],
        "http://127.0.0.1/api/v1/projects/WidgetPro/feedbackTypes/Mobile/feedback/BUG-0001/fileElements/Screenshot"
    );
    // Keep-alive: a second request on the same connection.
    let r = create(&sb, &mut c, &json!({"title": "Second"}));
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["key"], "BUG-0002");
    let fb = sb.feedback();
    assert_eq!(fb.len(), 2);
    assert_eq!(fb[0].body["topic"], 23795);
    assert_eq!(fb[1].key, "BUG-0002");
    let reqs = sb.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].path, "/api/v1/projects/WidgetPro/feedback/Mobile");
    assert_eq!(reqs[0].status, 201);
    assert_eq!(reqs[0].fault, None);
}

#[test]
fn no_file_elements_means_no_field() {
    let sb = Sandbox::start(SandboxConfig {
        file_elements: Vec::new(),
        key_prefix: "SUG".into(),
        ..SandboxConfig::default()
    })
    .unwrap();
    let mut c = Client::connect(&sb);
    let v = create(&sb, &mut c, &json!({"summary": "x"})).json();
    assert_eq!(v["key"], "SUG-0001");
    assert!(v.get("fileElements").is_none());
}

#[test]
fn wrong_or_missing_key_is_401_and_rotation_works() {
    let sb = start();
    let mut c = Client::connect(&sb);
    let body = json!({"summary": "x"}).to_string();
    let ct = [("Content-Type", "application/json")];
    for target in [
        "/api/v1/projects/WidgetPro/feedback/Mobile?apiKey=nope",
        "/api/v1/projects/WidgetPro/feedback/Mobile",
    ] {
        let r = c.request("POST", target, &ct, body.as_bytes());
        assert_eq!(r.status, 401);
        assert_eq!(
            r.json(),
            json!({"status": 401, "description": "Unauthorized: the API key is missing or invalid."})
        );
        assert!(r.header("x-rate-limit-remaining").is_some());
    }
    sb.set_api_key("rotated key");
    assert_eq!(sb.api_key(), "rotated key");
    let r = c.request(
        "POST",
        "/api/v1/projects/WidgetPro/feedback/Mobile?apiKey=sandbox-key",
        &ct,
        body.as_bytes(),
    );
    assert_eq!(r.status, 401);
    let r = c.request(
        "POST",
        "/api/v1/projects/WidgetPro/feedback/Mobile?apiKey=rotated%20key",
        &ct,
        body.as_bytes(),
    );
    assert_eq!(r.status, 201);
    assert!(sb.feedback().len() == 1);
    assert!(sb.requests().iter().all(|r| !r.path.contains("apiKey")));
}

#[test]
fn invalid_feedback_is_400_415_or_404() {
    let sb = start();
    sb.set_rate_limit(None);
    let mut c = Client::connect(&sb);
    let r = create(&sb, &mut c, &json!({"description": "no summary"}));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"status": 400, "description": "The specified request is invalid.",
               "invalidParameters": [{"name": "summary", "description": "A summary is required."}]})
    );
    let r = create(&sb, &mut c, &json!({"summary": "  "}));
    assert_eq!(r.status, 400);
    let long = "x".repeat(MAX_FIELD_CHARS + 1);
    let r = create(&sb, &mut c, &json!({"summary": "ok", "description": long}));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["invalidParameters"][0]["name"], "description");
    let r = create(&sb, &mut c, &json!(["not", "an", "object"]));
    assert_eq!(
        r.json(),
        json!({"status": 400, "description": "The specified request is invalid."})
    );
    let r = c.request(
        "POST",
        &create_path(&sb),
        &[("Content-Type", "application/json")],
        b"{\"summary\": tru",
    );
    assert_eq!(r.status, 400);
    let r = c.request(
        "POST",
        &create_path(&sb),
        &[("Content-Type", "text/plain")],
        b"{\"summary\":\"x\"}",
    );
    assert_eq!(r.status, 415);
    let r = c.request(
        "POST",
        &format!(
            "/api/v1/projects/Other/feedback/Mobile?apiKey={}",
            sb.api_key()
        ),
        &[("Content-Type", "application/json")],
        b"{\"summary\":\"x\"}",
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["status"], 404);
    let r = c.request("GET", &create_path(&sb), &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    let r = c.request(
        "GET",
        &format!("/api/v2/nothing?apiKey={}", sb.api_key()),
        &[],
        b"",
    );
    assert_eq!(r.status, 404);
    let r = create(&sb, &mut c, &json!({"summary": "finally", "ok": true}));
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["key"], "BUG-0001");
    assert_eq!(sb.feedback().len(), 1);
}

#[test]
fn multipart_upload_is_recorded_with_sha256_and_size() {
    let sb = start();
    let mut c = Client::connect(&sb);
    let v = create(&sb, &mut c, &json!({"summary": "with files"})).json();
    let content = tricky_content(300_000);
    let r = upload(&sb, &mut c, "BUG-0001", "Screenshot", &content);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let a = r.json();
    assert_eq!(a["fileElementKey"], "Screenshot");
    assert_eq!(a["fileName"], "shot.png");
    assert_eq!(a["feedbackKey"], "BUG-0001");
    assert_eq!(a["feedbackUrl"], v["url"]);
    assert_eq!(a["id"].as_str().unwrap().len(), 36);
    let ups = sb.uploads();
    assert_eq!(ups.len(), 1);
    assert_eq!(ups[0].size, content.len() as u64);
    assert_eq!(ups[0].sha256_hex, sha256_hex(&content));
    assert_eq!(ups[0].content_type, "image/png");
    assert_eq!(ups[0].element_key, "Screenshot");
    // An empty file is still a file.
    let r = upload(&sb, &mut c, "BUG-0001", "Screenshot", b"");
    assert_eq!(r.status, 201);
    assert_eq!(sb.uploads()[1].sha256_hex, sha256_hex(b""));
}

#[test]
fn chunked_upload_is_decoded() {
    let sb = start();
    let mut c = Client::connect(&sb);
    create(&sb, &mut c, &json!({"summary": "chunked"}));
    let content = tricky_content(200_000);
    let body = multipart("log.txt", &content);
    let mut raw = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=\"{BOUNDARY}\"\r\n\
         Transfer-Encoding: chunked\r\n\r\n",
        upload_path(&sb, "BUG-0001", "Log")
    )
    .into_bytes();
    let mut rest = body.as_slice();
    let mut size = 1;
    while !rest.is_empty() {
        let n = size.min(rest.len());
        raw.extend_from_slice(format!("{n:x};ext=1\r\n").as_bytes());
        raw.extend_from_slice(&rest[..n]);
        raw.extend_from_slice(b"\r\n");
        rest = &rest[n..];
        size = size * 3 + 1;
    }
    raw.extend_from_slice(b"0\r\nX-Trailer: yes\r\n\r\n");
    c.send(&raw);
    let r = c.response().unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let up = &sb.uploads()[0];
    assert_eq!(up.file_name, "log.txt");
    assert_eq!(up.size, content.len() as u64);
    assert_eq!(up.sha256_hex, sha256_hex(&content));
    // The connection is still usable.
    assert_eq!(
        create(&sb, &mut c, &json!({"summary": "after"})).status,
        201
    );
}

#[test]
fn large_upload_streams() {
    let sb = start();
    let mut c = Client::connect(&sb);
    create(&sb, &mut c, &json!({"summary": "big"}));
    let content: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    let r = upload(&sb, &mut c, "BUG-0001", "Log", &content);
    assert_eq!(r.status, 201);
    assert_eq!(sb.uploads()[0].size, content.len() as u64);
    assert_eq!(sb.uploads()[0].sha256_hex, sha256_hex(&content));
}

#[test]
fn upload_rejections() {
    let sb = Sandbox::start(SandboxConfig {
        max_upload_bytes: 1000,
        rate_limit_per_sec: None,
        ..SandboxConfig::default()
    })
    .unwrap();
    let mut c = Client::connect(&sb);
    create(&sb, &mut c, &json!({"summary": "x"}));
    // Single-attachment element.
    assert_eq!(
        upload(&sb, &mut c, "BUG-0001", "CrashLog", b"first").status,
        201
    );
    let r = upload(&sb, &mut c, "BUG-0001", "CrashLog", b"second");
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"status": 400, "description": "This file element accepts a single attachment."})
    );
    // Too large.
    let r = upload(&sb, &mut c, "BUG-0001", "Log", &[7u8; 1001]);
    assert_eq!(r.status, 413);
    assert_eq!(
        upload(&sb, &mut c, "BUG-0001", "Log", &[7u8; 1000]).status,
        201
    );
    // Unknown feedback or element.
    assert_eq!(upload(&sb, &mut c, "BUG-0009", "Log", b"x").status, 404);
    assert_eq!(upload(&sb, &mut c, "BUG-0001", "Video", b"x").status, 404);
    // Wrong content type.
    let r = c.request(
        "POST",
        &upload_path(&sb, "BUG-0001", "Log"),
        &[("Content-Type", "application/octet-stream")],
        b"raw",
    );
    assert_eq!(r.status, 415);
    // No part named file.
    let body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"a.txt\"\r\n\r\nabc\r\n--{BOUNDARY}--\r\n"
    );
    let ct = format!("multipart/form-data; boundary={BOUNDARY}");
    let r = c.request(
        "POST",
        &upload_path(&sb, "BUG-0001", "Log"),
        &[("Content-Type", &ct)],
        body.as_bytes(),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["invalidParameters"][0]["name"], "file");
    // A file part without a filename.
    let body =
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc\r\n--{BOUNDARY}--\r\n");
    let r = c.request(
        "POST",
        &upload_path(&sb, "BUG-0001", "Log"),
        &[("Content-Type", &ct)],
        body.as_bytes(),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["invalidParameters"][0]["name"], "file");
    // Truncated multipart.
    let r = c.request(
        "POST",
        &upload_path(&sb, "BUG-0001", "Log"),
        &[("Content-Type", &ct)],
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nab").as_bytes(),
    );
    assert_eq!(r.status, 400);
    let ups = sb.uploads();
    assert_eq!(ups.len(), 2, "{ups:?}");
    // The connection survived every rejection above.
    assert_eq!(
        create(&sb, &mut c, &json!({"summary": "still here"})).status,
        201
    );
}

#[test]
fn big_rejected_upload_is_read_then_answered() {
    let sb = Sandbox::start(SandboxConfig {
        max_upload_bytes: 1000,
        ..SandboxConfig::default()
    })
    .unwrap();
    let mut c = Client::connect(&sb);
    create(&sb, &mut c, &json!({"summary": "x"}));
    // The client writes all 3 MiB before reading; it still gets the 413
    // and the connection stays usable.
    let r = upload(&sb, &mut c, "BUG-0001", "Log", &vec![1u8; 3 << 20]);
    assert_eq!(r.status, 413);
    let r = upload(&sb, &mut c, "BUG-0404", "Log", &vec![1u8; 3 << 20]);
    assert_eq!(r.status, 404);
    assert_eq!(upload(&sb, &mut c, "BUG-0001", "Log", b"small").status, 201);
}

#[test]
fn concurrent_clients_get_unique_sequential_keys() {
    let sb = start();
    sb.set_rate_limit(None);
    let keys: Vec<String> = thread::scope(|s| {
        let workers: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let mut c = Client::connect(&sb);
                    (0..10)
                        .map(|_| {
                            let r = create(&sb, &mut c, &json!({"summary": "many"}));
                            assert_eq!(r.status, 201);
                            r.json()["key"].as_str().unwrap().to_string()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 80);
    assert_eq!(sorted.first().unwrap(), "BUG-0001");
    assert_eq!(sorted.last().unwrap(), "BUG-0080");
    let recorded: Vec<String> = sb.feedback().into_iter().map(|f| f.key).collect();
    assert_eq!(recorded, sorted);
}

#[test]
fn expect_100_continue_is_honoured() {
    let sb = start();
    let mut c = Client::connect(&sb);
    let body = json!({"summary": "patient"}).to_string();
    c.send(
        format!(
            "POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n\
             Content-Length: {}\r\n\r\n",
            create_path(&sb),
            body.len()
        )
        .as_bytes(),
    );
    let mut line = String::new();
    c.reader.read_line(&mut line).unwrap();
    assert_eq!(line, "HTTP/1.1 100 Continue\r\n");
    c.reader.read_line(&mut line).unwrap();
    c.send(body.as_bytes());
    assert_eq!(c.response().unwrap().status, 201);
}

#[test]
fn rate_limit_answers_429_with_headers() {
    let sb = start();
    sb.set_rate_limit(Some(3));
    let mut c = Client::connect(&sb);
    let statuses: Vec<Resp> = (0..5)
        .map(|_| create(&sb, &mut c, &json!({"summary": "spam"})))
        .collect();
    let codes: Vec<u16> = statuses.iter().map(|r| r.status).collect();
    assert_eq!(codes, [201, 201, 201, 429, 429]);
    assert_eq!(statuses[2].header("x-rate-limit-remaining"), Some("0"));
    let limited = &statuses[3];
    assert_eq!(limited.header("x-rate-limit-remaining"), Some("0"));
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert_eq!(limited.json()["status"], 429);
    assert!(limited.header("x-rate-limit-reset").is_some());
    assert_eq!(sb.feedback().len(), 3);
    thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        create(&sb, &mut c, &json!({"summary": "later"})).status,
        201
    );
    sb.set_rate_limit(None);
    for _ in 0..20 {
        let r = create(&sb, &mut c, &json!({"summary": "free"}));
        assert_eq!(r.status, 201);
    }
}

#[test]
fn fault_status_and_body() {
    let sb = start();
    let mut c = Client::connect(&sb);
    sb.inject(Fault::Status {
        status: 503,
        retry_after: Some("2".into()),
        rate_limit_reset: Some("2030-01-01T00:00:00.000Z".into()),
    });
    sb.inject(Fault::Body {
        status: 201,
        body: "{\"id\":\"abc\",\"ke".into(),
    });
    sb.inject(Fault::rate_limited(1));
    assert_eq!(sb.pending_faults(), 3);
    let r = create(&sb, &mut c, &json!({"summary": "a"}));
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("2"));
    assert_eq!(
        r.header("x-rate-limit-reset"),
        Some("2030-01-01T00:00:00.000Z")
    );
    assert_eq!(r.json()["status"], 503);
    let r = create(&sb, &mut c, &json!({"summary": "b"}));
    assert_eq!(r.status, 201);
    assert_eq!(r.body, b"{\"id\":\"abc\",\"ke");
    let r = create(&sb, &mut c, &json!({"summary": "c"}));
    assert_eq!(r.status, 429);
    assert_eq!(r.header("x-rate-limit-remaining"), Some("0"));
    assert!(sb.feedback().is_empty());
    let r = create(&sb, &mut c, &json!({"summary": "d"}));
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["key"], "BUG-0001");
    let faults: Vec<Option<String>> = sb.requests().into_iter().map(|r| r.fault).collect();
    assert_eq!(
        faults,
        [
            Some("status 503".into()),
            Some("body 201".into()),
            Some("status 429".into()),
            None
        ]
    );
    sb.inject(Fault::status(500));
    sb.clear_faults();
    assert_eq!(create(&sb, &mut c, &json!({"summary": "e"})).status, 201);
}

#[test]
fn fault_drop_and_act_then_drop() {
    let sb = start();
    sb.inject(Fault::Drop);
    let mut c = Client::connect(&sb);
    c.send(
        format!(
            "POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{{\"summary\":\"a\"}}",
            create_path(&sb)
        )
        .as_bytes(),
    );
    assert!(c.response().is_err());
    assert!(sb.feedback().is_empty());

    sb.inject(Fault::ActThenDrop);
    let mut c = Client::connect(&sb);
    create_raw_no_answer(&sb, &mut c);
    assert_eq!(sb.feedback().len(), 1);
    assert_eq!(sb.feedback()[0].key, "BUG-0001");

    let reqs = sb.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        (reqs[0].status, reqs[0].fault.as_deref()),
        (0, Some("drop"))
    );
    assert_eq!(
        (reqs[1].status, reqs[1].fault.as_deref()),
        (0, Some("act_then_drop"))
    );

    // Uploads too: ActThenDrop stores the attachment.
    sb.inject(Fault::ActThenDrop);
    let mut c = Client::connect(&sb);
    let ct = format!("multipart/form-data; boundary={BOUNDARY}");
    let body = multipart("a.bin", b"payload");
    let mut raw = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
        upload_path(&sb, "BUG-0001", "Log"),
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    c.send(&raw);
    assert!(c.response().is_err());
    assert_eq!(sb.uploads().len(), 1);
}

fn create_raw_no_answer(sb: &Sandbox, c: &mut Client) {
    let body = json!({"summary": "acted"}).to_string();
    c.send(
        format!(
            "POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            create_path(sb),
            body.len()
        )
        .as_bytes(),
    );
    assert!(c.response().is_err());
}

#[test]
fn fault_delay() {
    let sb = start();
    sb.inject(Fault::Delay(Duration::from_millis(300)));
    let mut c = Client::connect(&sb);
    let t = Instant::now();
    let r = create(&sb, &mut c, &json!({"summary": "slow"}));
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.status, 201);
    assert_eq!(sb.requests()[0].fault.as_deref(), Some("delay 300ms"));
    let t = Instant::now();
    assert_eq!(create(&sb, &mut c, &json!({"summary": "fast"})).status, 201);
    assert!(t.elapsed() < Duration::from_millis(300));
}

#[test]
fn lookup_found_and_not_found() {
    let sb = start();
    let mut c = Client::connect(&sb);
    create(&sb, &mut c, &json!({"summary": "first", "clientId": "aaa"}));
    create(
        &sb,
        &mut c,
        &json!({"summary": "WiFi Not Connecting", "clientId": "c 1/2", "count": 3, "gone": null}),
    );
    let lookup = |find: &str| {
        let mut c = Client::connect(&sb);
        c.request(
            "GET",
            &format!(
                "/api/v1/projects/WidgetPro/feedbackRecordLookups/Lookup?find={find}&apiKey={}",
                sb.api_key()
            ),
            &[],
            b"",
        )
    };
    let r = lookup("c%201%2F2");
    assert_eq!(r.status, 200);
    let data = r.json()["data"].as_array().unwrap().clone();
    assert_eq!(
        data[0],
        json!({"field": "ID", "dataType": "string", "computedValue": "BUG-0002", "values": ["BUG-0002"]})
    );
    assert_eq!(data[1]["field"], "Summary");
    assert_eq!(data[1]["computedValue"], "WiFi Not Connecting");
    let count = data.iter().find(|f| f["field"] == "count").unwrap();
    assert_eq!(
        count,
        &json!({"field": "count", "dataType": "integer", "computedValue": "3", "values": [3]})
    );
    let gone = data.iter().find(|f| f["field"] == "gone").unwrap();
    assert_eq!(gone["values"], json!([]));
    assert!(data
        .iter()
        .any(|f| f["field"] == "Date Added" && f["dataType"] == "date"));
    assert_eq!(
        lookup("BUG-0001").json()["data"][0]["computedValue"],
        "BUG-0001"
    );
    assert_eq!(
        lookup("BUG-0001?page=1").json()["data"][0]["computedValue"],
        "BUG-0001"
    );
    let r = lookup("nothing");
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"data": []}));
    let r = lookup("");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["invalidParameters"][0]["name"], "Find");
    let r = c.request(
        "GET",
        &format!(
            "/api/v1/projects/WidgetPro/feedbackRecordLookups/Other?find=aaa&apiKey={}",
            sb.api_key()
        ),
        &[],
        b"",
    );
    assert_eq!(r.status, 404);
}

#[test]
fn control_endpoints() {
    let sb = start();
    let mut c = Client::connect(&sb);
    let faults = json!([
        {"status": 503},
        {"status": 429, "retry_after": "1"},
        {"drop": true},
        {"act_then_drop": true},
        {"delay_ms": 10},
        {"body": "{not json", "status": 201}
    ]);
    let r = c.request(
        "POST",
        "/_sandbox/faults",
        &[],
        faults.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["pending_faults"], 6);
    assert_eq!(sb.pending_faults(), 6);
    let r = c.request("POST", "/_sandbox/faults", &[], b"[{\"status\": 42}]");
    assert_eq!(r.status, 400);
    assert_eq!(sb.pending_faults(), 6);
    let r = c.request("DELETE", "/_sandbox/faults", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(sb.pending_faults(), 0);

    c.request(
        "POST",
        "/_sandbox/faults",
        &[],
        b"[{\"status\":429,\"retry_after\":3}]",
    );
    let r = create(&sb, &mut c, &json!({"summary": "a"}));
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("3"));
    assert_eq!(
        create(&sb, &mut c, &json!({"summary": "b", "clientId": "x"})).status,
        201
    );

    let r = c.request(
        "POST",
        "/_sandbox/config",
        &[],
        b"{\"rate_limit_per_sec\": null, \"api_key\": \"k2\"}",
    );
    assert_eq!(r.status, 200);
    assert_eq!(sb.api_key(), "k2");
    let r = c.request(
        "POST",
        "/api/v1/projects/WidgetPro/feedback/Mobile?apiKey=sandbox-key",
        &[("Content-Type", "application/json")],
        b"{\"summary\":\"x\"}",
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("x-rate-limit-remaining"),
        Some(&*UNLIMITED_REMAINING.to_string())
    );

    let r = c.request("GET", "/_sandbox/state", &[], b"");
    assert_eq!(r.status, 200);
    let state = r.json();
    assert_eq!(state["feedback"].as_array().unwrap().len(), 1);
    assert_eq!(state["feedback"][0]["key"], "BUG-0001");
    assert_eq!(state["feedback"][0]["body"]["clientId"], "x");
    assert!(state["feedback"][0]["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(state["uploads"], json!([]));
    let requests = state["requests"].as_array().unwrap();
    assert_eq!(
        requests.len(),
        3,
        "control requests are not recorded: {requests:?}"
    );
    assert_eq!(
        requests[0],
        json!({"method": "POST", "path": "/api/v1/projects/WidgetPro/feedback/Mobile", "status": 429, "fault": "status 429"})
    );
    assert_eq!(requests[2]["status"], 401);
    assert_eq!(c.request("PUT", "/_sandbox/state", &[], b"").status, 405);
    assert_eq!(c.request("GET", "/_sandbox/nothing", &[], b"").status, 404);
}

#[test]
fn malformed_input_gets_400_not_a_panic() {
    let sb = start();
    for raw in [
        &b"BLAH\r\n\r\n"[..],
        b"GET nopath HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"POST /api/v1/x HTTP/1.1\r\nContent-Length: 12x\r\n\r\n",
        b"POST /api/v1/x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
    ] {
        let mut c = Client::connect(&sb);
        c.send(raw);
        let r = c.response().expect("an answer");
        assert!(r.status == 400 || r.status == 505, "{r:?}");
        assert!(c.is_closed());
    }
    // A bad chunk size inside an otherwise fine request.
    let mut c = Client::connect(&sb);
    c.send(
        format!(
            "POST {} HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            create_path(&sb)
        )
        .as_bytes(),
    );
    assert_eq!(c.response().unwrap().status, 400);
    // Binary garbage.
    let mut c = Client::connect(&sb);
    c.send(&[0xff, 0x00, 0x13, b'\n', b'\n']);
    assert_eq!(c.response().unwrap().status, 400);
    // Still serving.
    let mut c = Client::connect(&sb);
    assert_eq!(create(&sb, &mut c, &json!({"summary": "fine"})).status, 201);
}

#[test]
fn http_1_0_and_head_requests() {
    let sb = start();
    let mut c = Client::connect(&sb);
    c.send(format!("GET /api/v1/x?apiKey={} HTTP/1.0\r\n\r\n", sb.api_key()).as_bytes());
    assert_eq!(c.response().unwrap().status, 404);
    assert!(c.is_closed());
    let mut c = Client::connect(&sb);
    c.send(format!("HEAD /api/v1/x?apiKey={} HTTP/1.1\r\n\r\n", sb.api_key()).as_bytes());
    let mut head = String::new();
    loop {
        let mut line = String::new();
        c.reader.read_line(&mut line).unwrap();
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    assert!(head.starts_with("HTTP/1.1 404"));
    // No body followed: the next answer parses.
    let r = create(&sb, &mut c, &json!({"summary": "after head"}));
    assert_eq!(r.status, 201);
}

#[test]
fn stop_closes_everything() {
    let sb = start();
    let port = sb.port();
    let mut idle = Client::connect(&sb);
    assert_eq!(create(&sb, &mut idle, &json!({"summary": "x"})).status, 201);
    let t = Instant::now();
    sb.stop();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(idle.is_closed());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn drop_interrupts_a_delay() {
    let sb = start();
    sb.inject(Fault::Delay(Duration::from_secs(60)));
    let mut c = Client::connect(&sb);
    c.send(format!("GET /x?apiKey={} HTTP/1.1\r\n\r\n", sb.api_key()).as_bytes());
    thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    drop(sb);
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[test]
fn multipart_parser_handles_one_byte_reads() {
    struct Trickle<R>(R);
    impl<R: Read> Read for Trickle<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(1);
            self.0.read(&mut buf[..n])
        }
    }
    let content = tricky_content(5000);
    let mut body = b"preamble\r\n".to_vec();
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}  \r\ncontent-disposition: form-data; name=file; filename*=UTF-8''caf%C3%A9.txt\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(&content);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--").as_bytes());
    let file = parse_multipart(
        Trickle(io::Cursor::new(body)),
        BOUNDARY.as_bytes(),
        u64::MAX,
    )
    .unwrap();
    assert_eq!(file.file_name, "café.txt");
    assert_eq!(file.content_type, "application/octet-stream");
    assert_eq!(file.size, 5000);
    assert_eq!(file.sha256_hex, sha256_hex(&content));
}

#[test]
fn helpers() {
    assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    assert_eq!(
        iso8601(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
        "2023-11-14T22:13:20.123Z"
    );
    assert_eq!(
        iso8601(UNIX_EPOCH + Duration::from_secs(951_782_400)),
        "2000-02-29T00:00:00.000Z"
    );
    assert_eq!(
        iso8601(UNIX_EPOCH + Duration::from_secs(4_102_444_799)),
        "2099-12-31T23:59:59.000Z"
    );
    assert_eq!(percent_decode("a%20b+c%zz%4", true), "a b c%zz%4");
    assert_eq!(
        query_param("x=1&apiKey=a%2Bb&apiKey=2", "apiKey").as_deref(),
        Some("a+b")
    );
    assert_eq!(encode_segment("a b/ü"), "a%20b%2F%C3%BC");
    assert_eq!(
        multipart_boundary(Some("multipart/form-data; charset=utf-8; boundary=\"a;b\"")).as_deref(),
        Some("a;b")
    );
    assert_eq!(multipart_boundary(Some("multipart/form-data")), None);
    assert_eq!(
        header_params(" name=\"file\"; filename=\"we \\\"ird\\\".txt\""),
        [
            ("name".to_string(), "file".to_string()),
            ("filename".to_string(), "we \"ird\".txt".to_string())
        ]
    );
    assert_eq!(find(b"abcabd", b"abd"), Some(3));
    assert_eq!(find(b"ab", b"abd"), None);
    assert_eq!(parse_chunk_size(b"1A;x=y"), Some(26));
    assert_eq!(parse_chunk_size(b"-1"), None);
    let keys = KeyNode::new("a".into());
    keys.set("b");
    keys.set("b");
    keys.set("c");
    assert_eq!(keys.current(), "c");
    assert_eq!(
        Fault::from_json(&json!({"status": 429, "retry_after": 2})).unwrap(),
        Fault::Status {
            status: 429,
            retry_after: Some("2".into()),
            rate_limit_reset: None
        }
    );
    assert_eq!(
        Fault::from_json(&json!({"body": "x"})).unwrap(),
        Fault::Body {
            status: 200,
            body: "x".into()
        }
    );
    assert!(Fault::from_json(&json!({})).is_err());
}

/// The sandbox writes dates with its own code; both must agree, across
/// leap years and century years.
#[test]
fn the_sandboxs_dates_agree_with_the_librarys() {
    let mut t = 0u64;
    while t < 7_258_118_400_000 {
        let at = UNIX_EPOCH + Duration::from_millis(t);
        assert_eq!(iso8601(at), crate::delivery::format_iso8601(at), "{t}");
        t += 86_399_997 * 3 + 12_345;
    }
}
