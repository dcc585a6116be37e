//! The ABC sandbox's own tests: raw HTTP against a running sandbox.

use crate::sandbox::{AbcChannel, Fault, Sandbox, SandboxConfig};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub(crate) struct Answer {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// One request on a fresh connection, read to its end.
pub(crate) fn raw(
    sb: &Sandbox,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<Answer> {
    let mut s = TcpStream::connect(("127.0.0.1", sb.port())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    s.write_all(&bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let split = out.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some(Answer {
        status,
        head,
        body: out[split + 4..].to_vec(),
    })
}

const P: &str = "/api/projects/1/channels/1";

fn post_json(sb: &Sandbox, path: &str, key: Option<&str>, body: &Value) -> Answer {
    let mut h = vec![("Content-Type", "application/json")];
    if let Some(k) = key {
        h.push(("x-api-key", k));
    }
    raw(sb, "POST", path, &h, body.to_string().as_bytes()).unwrap()
}

fn start() -> Sandbox {
    Sandbox::start(SandboxConfig::abc()).unwrap()
}

#[test]
fn create_answers_201_with_a_numeric_id_and_records_the_data() {
    let sb = start();
    let a = post_json(
        &sb,
        &format!("{P}/feedbacks"),
        Some("sandbox-key"),
        &json!({"message": "hi", "rating": 3, "tags": ["ui"], "category": null, "seen_at": "2024-05-01T10:00:00Z", "issueNames": ["x"]}),
    );
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json(), json!({"id": 1}));
    assert!(
        !a.head.contains("X-Rate-Limit"),
        "ABC has no rate-limit headers: {}",
        a.head
    );
    let b = post_json(
        &sb,
        &format!("{P}/feedbacks"),
        Some("sandbox-key"),
        &json!({"message": "two"}),
    );
    assert_eq!(b.json(), json!({"id": 2}));
    let fb = sb.feedback();
    assert_eq!(fb.len(), 2);
    assert_eq!(fb[0].id, "1");
    assert_eq!(fb[0].body["issueNames"], json!(["x"]));
    let state = raw(&sb, "GET", "/_sandbox/state", &[], b"").unwrap().json();
    assert_eq!(state["kind"], "abc");
    assert_eq!(state["feedback"][1]["body"]["message"], "two");
}

#[test]
fn a_missing_or_wrong_key_is_403_and_a_bad_project_500() {
    let sb = start();
    for key in [None, Some("wrong")] {
        let a = post_json(
            &sb,
            &format!("{P}/feedbacks"),
            key,
            &json!({"message": "x"}),
        );
        assert_eq!(a.status, 403);
        assert_eq!(
            a.json(),
            json!({"message": "Forbidden resource", "error": "Forbidden", "statusCode": 403, "path": format!("{P}/feedbacks")})
        );
    }
    let a = post_json(
        &sb,
        "/api/projects/2/channels/1/feedbacks",
        Some("sandbox-key"),
        &json!({"message": "x"}),
    );
    assert_eq!(a.status, 403, "a key of another project");
    let a = post_json(
        &sb,
        "/api/projects/abc/channels/1/feedbacks",
        Some("sandbox-key"),
        &json!({"message": "x"}),
    );
    assert_eq!(a.status, 500);
    let a = post_json(
        &sb,
        "/api/projects/1/channels/9/feedbacks",
        Some("sandbox-key"),
        &json!({"message": "x"}),
    );
    assert_eq!(a.status, 400);
    assert_eq!(a.json()["message"], "channel is not found");
    let a = post_json(
        &sb,
        "/api/projects/1/channels/x/feedbacks",
        Some("sandbox-key"),
        &json!({}),
    );
    assert_eq!(
        a.json()["message"],
        "Validation failed (numeric string is expected)"
    );
    assert!(sb.feedback().is_empty());
    sb.set_api_key("rotated");
    assert_eq!(
        post_json(
            &sb,
            &format!("{P}/feedbacks"),
            Some("sandbox-key"),
            &json!({"message": "x"})
        )
        .status,
        403
    );
    assert_eq!(
        post_json(
            &sb,
            &format!("{P}/feedbacks"),
            Some("rotated"),
            &json!({"message": "x"})
        )
        .status,
        201
    );
}

#[test]
fn field_validation_follows_the_server() {
    let sb = start();
    let cases = [
        (json!({"nope": "x"}), "invalid field key: nope"),
        (json!({"id": 5}), "reserved field key is unavailable: id"),
        (
            json!({"rating": "5"}),
            "invalid value: (value: \"5\", type: number, fieldKey: rating)",
        ),
        (
            json!({"message": 5}),
            "invalid value: (value: 5, type: text, fieldKey: message)",
        ),
        (
            json!({"category": "other"}),
            "invalid value: (value: \"other\", type: select, fieldKey: category)",
        ),
        (
            json!({"tags": ["ui", "zzz"]}),
            "invalid value: (value: [\"ui\",\"zzz\"], type: multiSelect, fieldKey: tags)",
        ),
        (
            json!({"seen_at": "yesterday"}),
            "invalid value: (value: \"yesterday\", type: date, fieldKey: seen_at)",
        ),
        (
            json!({"images": "http://x"}),
            "invalid value: (value: \"http://x\", type: images, fieldKey: images)",
        ),
        (json!({"issueNames": "x"}), "issueNames must be array"),
    ];
    for (body, msg) in cases {
        let a = post_json(&sb, &format!("{P}/feedbacks"), Some("sandbox-key"), &body);
        assert_eq!(a.status, 400, "{body}");
        assert_eq!(
            a.json(),
            json!({"message": msg, "error": "Bad Request", "statusCode": 400, "path": format!("{P}/feedbacks")})
        );
    }
    assert!(sb.feedback().is_empty());
}

#[test]
fn body_errors_carry_response_and_come_before_the_key() {
    let sb = start();
    let big = json!({"message": "x".repeat(1024 * 1024)});
    let a = post_json(&sb, &format!("{P}/feedbacks"), None, &big);
    assert_eq!(a.status, 413);
    assert_eq!(
        a.json(),
        json!({"response": "Request body is too large", "path": format!("{P}/feedbacks")})
    );
    let a = raw(
        &sb,
        "POST",
        &format!("{P}/feedbacks"),
        &[
            ("Content-Type", "application/xml"),
            ("x-api-key", "sandbox-key"),
        ],
        b"<a/>",
    )
    .unwrap();
    assert_eq!(a.status, 415);
    assert_eq!(
        a.json()["response"],
        "Unsupported Media Type: application/xml"
    );
    let a = raw(
        &sb,
        "POST",
        &format!("{P}/feedbacks"),
        &[
            ("Content-Type", "application/json"),
            ("x-api-key", "sandbox-key"),
        ],
        b"{not json",
    )
    .unwrap();
    assert_eq!(a.status, 400);
    assert!(a.json()["response"].is_string());
    let a = raw(&sb, "POST", "/api/nowhere", &[], b"").unwrap();
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["message"], "Cannot POST /api/nowhere");
}

/// A part: name, optional (file name, type), bytes.
type PartSpec<'a> = (&'a str, Option<(&'a str, &'a str)>, &'a [u8]);

fn multipart(parts: &[PartSpec<'_>]) -> (String, Vec<u8>) {
    let b = "XyZsandboxBoundary";
    let mut out = Vec::new();
    for (name, file, data) in parts {
        out.extend_from_slice(
            format!("--{b}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes(),
        );
        match file {
            Some((fname, ct)) => out.extend_from_slice(
                format!("; filename=\"{fname}\"\r\nContent-Type: {ct}\r\n\r\n").as_bytes(),
            ),
            None if name.starts_with("json:") => unreachable!(),
            None => out.extend_from_slice(b"\r\n\r\n"),
        }
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{b}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={b}"), out)
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDRrest-of-png";

#[test]
fn multipart_create_stores_images_under_their_field() {
    let sb = start();
    let (ct, body) = multipart(&[
        ("message", None, b"with pics"),
        ("images", Some(("a.png", "image/png")), PNG),
        ("images", Some(("b.png", "image/png")), PNG),
    ]);
    let a = raw(
        &sb,
        "POST",
        &format!("{P}/feedbacks-with-images"),
        &[("Content-Type", &ct), ("x-api-key", "sandbox-key")],
        &body,
    )
    .unwrap();
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json(), json!({"id": 1}));
    let fb = &sb.feedback()[0];
    assert_eq!(fb.body["message"], "with pics");
    let urls = fb.body["images"].as_array().unwrap();
    assert_eq!(urls.len(), 2);
    assert!(urls[0].as_str().unwrap().contains("/s3/sandbox-images/1_"));
    let ups = sb.uploads();
    assert_eq!(ups.len(), 2);
    assert_eq!(
        (
            ups[0].feedback_key.as_str(),
            ups[0].element_key.as_str(),
            ups[0].size
        ),
        ("1", "images", PNG.len() as u64)
    );
    use sha2::Digest;
    assert_eq!(
        ups[0].sha256_hex,
        crate::sandbox::http::hex(&sha2::Sha256::digest(PNG))
    );
}

#[test]
fn multipart_refuses_non_images_lies_and_big_files() {
    let sb = start();
    let send = |parts: &[PartSpec<'_>]| {
        let (ct, body) = multipart(parts);
        raw(
            &sb,
            "POST",
            &format!("{P}/feedbacks-with-images"),
            &[("Content-Type", &ct), ("x-api-key", "sandbox-key")],
            &body,
        )
        .unwrap()
    };
    let a = send(&[
        ("message", None, b"m"),
        ("images", Some(("n.txt", "text/plain")), b"hello"),
    ]);
    assert_eq!(
        (a.status, a.json()["message"].clone()),
        (400, json!("Not Image File (text/plain)"))
    );
    let a = send(&[("images", Some(("n.png", "image/png")), b"not a png at all")]);
    assert_eq!(
        a.json()["message"],
        "Invalid file (sent type: image/png, detected type: [])"
    );
    let mut big = PNG.to_vec();
    big.resize(1024 * 1024 + 1, 0);
    let a = send(&[("images", Some(("big.png", "image/png")), &big)]);
    assert_eq!(a.status, 413);
    assert_eq!(
        a.json(),
        json!({"statusCode": 413, "message": "request file too large"})
    );
    let mut exact = PNG.to_vec();
    exact.resize(1024 * 1024, 0);
    assert_eq!(
        send(&[
            ("message", None, b"m"),
            ("images", Some(("ok.png", "image/png")), &exact)
        ])
        .status,
        201
    );
    let a = send(&[("message", None, b"m"), ("rating", None, b"4")]);
    assert_eq!(
        a.json()["message"],
        "invalid value: (value: \"4\", type: number, fieldKey: rating)",
        "fields are strings"
    );
    let a = raw(
        &sb,
        "POST",
        &format!("{P}/feedbacks-with-images"),
        &[
            ("Content-Type", "application/json"),
            ("x-api-key", "sandbox-key"),
        ],
        b"{}",
    )
    .unwrap();
    assert_eq!(a.status, 406);
    assert_eq!(sb.feedback().len(), 1);
}

#[test]
fn multipart_json_parts_are_parsed() {
    let sb = start();
    let b = "JsonPartBoundary";
    let body = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\nm\r\n--{b}\r\nContent-Disposition: form-data; name=\"rating\"\r\nContent-Type: application/json\r\n\r\n4\r\n--{b}--\r\n"
    );
    let a = raw(
        &sb,
        "POST",
        &format!("{P}/feedbacks-with-images"),
        &[
            (
                "Content-Type",
                &format!("multipart/form-data; boundary={b}"),
            ),
            ("x-api-key", "sandbox-key"),
        ],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(sb.feedback()[0].body["rating"], json!(4));
}

#[test]
fn presigned_url_put_and_checksum_enforcement() {
    let sb = start();
    let a = raw(
        &sb,
        "GET",
        &format!("{P}/image-upload-url?extension=png"),
        &[("x-api-key", "sandbox-key")],
        b"",
    )
    .unwrap();
    assert_eq!(a.status, 200);
    assert!(a
        .head
        .to_ascii_lowercase()
        .contains("content-type: text/plain"));
    let url = String::from_utf8(a.body).unwrap();
    assert!(url.contains("x-amz-checksum-crc32=AAAAAA%3D%3D"), "{url}");
    let target = url[url.find("/s3/").unwrap()..].to_string();
    let put = raw(&sb, "PUT", &target, &[("Content-Type", "image/png")], PNG).unwrap();
    assert_eq!(put.status, 200);
    assert!(put.head.contains("ETag"));
    let up = sb.uploads();
    assert_eq!(
        (up[0].element_key.as_str(), up[0].size),
        ("presigned", PNG.len() as u64)
    );
    // Neither the channel's key nor another credential goes to the store.
    for header in ["x-api-key", "Authorization"] {
        let leak = raw(&sb, "PUT", &target, &[(header, "sandbox-key")], PNG).unwrap();
        assert_eq!(leak.status, 400, "{header}");
        assert!(String::from_utf8_lossy(&leak.body).contains("InvalidArgument"));
    }
    assert_eq!(sb.uploads().len(), 1, "refused PUTs store nothing");
    let forged = target.replace("X-Amz-Signature=", "X-Amz-Signature=0");
    assert_eq!(raw(&sb, "PUT", &forged, &[], PNG).unwrap().status, 403);
    let a = raw(
        &sb,
        "GET",
        &format!("{P}/image-upload-url"),
        &[("x-api-key", "sandbox-key")],
        b"",
    )
    .unwrap();
    assert_eq!(
        a.json()["message"],
        "Extension is required in query parameter"
    );

    let strict = Sandbox::start(SandboxConfig {
        abc: AbcChannel {
            enforce_presigned_checksum: true,
            image_config: true,
            ..AbcChannel::default()
        },
        ..SandboxConfig::abc()
    })
    .unwrap();
    let a = raw(
        &strict,
        "GET",
        &format!("{P}/image-upload-url?extension=png"),
        &[("x-api-key", "sandbox-key")],
        b"",
    )
    .unwrap();
    let url = String::from_utf8(a.body).unwrap();
    let target = url[url.find("/s3/").unwrap()..].to_string();
    let put = raw(&strict, "PUT", &target, &[], PNG).unwrap();
    assert_eq!(put.status, 400);
    assert!(String::from_utf8_lossy(&put.body).contains("BadDigest"));
    let none = Sandbox::start(SandboxConfig {
        abc: AbcChannel {
            image_config: false,
            ..AbcChannel::default()
        },
        ..SandboxConfig::abc()
    })
    .unwrap();
    let a = raw(
        &none,
        "GET",
        &format!("{P}/image-upload-url?extension=png"),
        &[("x-api-key", "sandbox-key")],
        b"",
    )
    .unwrap();
    assert_eq!(a.json()["message"], "No image config in this channel");
}

#[test]
fn v2_search_finds_by_keyword_and_reports_dto_errors_as_arrays() {
    let sb = start();
    for (m, c) in [("a", "uuid-a"), ("b", "uuid-b")] {
        assert_eq!(
            post_json(
                &sb,
                &format!("{P}/feedbacks"),
                Some("sandbox-key"),
                &json!({"message": m, "client_id": c})
            )
            .status,
            201
        );
    }
    let path = "/api/v2/projects/1/channels/1/feedbacks/search";
    let q = |v: &str| json!({"queries": [{"key": "client_id", "value": v, "condition": "IS"}], "operator": "AND", "page": 1, "limit": 10});
    let a = post_json(&sb, path, Some("sandbox-key"), &q("uuid-b"));
    assert_eq!(a.status, 201);
    let v = a.json();
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    assert_eq!(v["items"][0]["id"], 2);
    assert_eq!(v["items"][0]["message"], "b");
    assert_eq!(v["meta"]["totalItems"], 1);
    assert_eq!(
        post_json(&sb, path, Some("sandbox-key"), &q("uuid-z")).json()["items"],
        json!([])
    );
    let a = post_json(
        &sb,
        path,
        Some("sandbox-key"),
        &json!({"limit": "x", "page": 0}),
    );
    assert_eq!(a.status, 400);
    let msgs = a.json()["message"].as_array().unwrap().clone();
    assert_eq!(msgs.len(), 3, "{msgs:?}");
    let a = post_json(
        &sb,
        path,
        Some("sandbox-key"),
        &json!({"queries": [{"key": "nope", "value": "x", "condition": "IS"}], "operator": "AND"}),
    );
    assert_eq!(a.json()["message"], "invalid key in query: nope");
    let a = post_json(
        &sb,
        path,
        Some("sandbox-key"),
        &json!({"queries": [{"key": "client_id", "value": 5, "condition": "IS"}], "operator": "AND"}),
    );
    assert_eq!(a.json()["message"], "client_id must be string");
    assert_eq!(post_json(&sb, path, None, &q("uuid-a")).status, 403);
}

#[test]
fn every_fault_kind_applies_to_abc() {
    let sb = start();
    let path = format!("{P}/feedbacks");
    sb.inject(Fault::status(503));
    let a = post_json(&sb, &path, Some("sandbox-key"), &json!({"message": "x"}));
    assert_eq!(a.status, 503);
    assert_eq!(a.json()["statusCode"], 503, "ABC's error shape");
    sb.inject(Fault::Body {
        status: 201,
        body: "{not json".into(),
    });
    assert_eq!(
        post_json(&sb, &path, Some("sandbox-key"), &json!({"message": "x"})).body,
        b"{not json"
    );
    sb.inject(Fault::Drop);
    let mut h = vec![
        ("Content-Type", "application/json"),
        ("x-api-key", "sandbox-key"),
    ];
    assert!(raw(&sb, "POST", &path, &h, br#"{"message":"x"}"#).is_none());
    assert!(
        sb.feedback().is_empty(),
        "faults before acting create nothing"
    );
    sb.inject(Fault::ActThenDrop);
    assert!(raw(&sb, "POST", &path, &h, br#"{"message":"acted"}"#).is_none());
    assert_eq!(sb.feedback().len(), 1, "acted, then dropped");
    sb.inject(Fault::Delay(Duration::from_millis(300)));
    let t = std::time::Instant::now();
    h.pop();
    assert_eq!(
        raw(&sb, "POST", &path, &h, br#"{"message":"x"}"#)
            .unwrap()
            .status,
        403
    );
    assert!(t.elapsed() >= Duration::from_millis(300));
    sb.set_rate_limit(Some(1));
    let h = [
        ("Content-Type", "application/json"),
        ("x-api-key", "sandbox-key"),
    ];
    let statuses: Vec<u16> = (0..3)
        .map(|_| {
            raw(&sb, "POST", &path, &h, br#"{"message":"x"}"#)
                .unwrap()
                .status
        })
        .collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    let recs = sb.requests();
    assert!(recs
        .iter()
        .any(|r| r.fault.as_deref() == Some("drop") && r.status == 0));
}
