//! The `destinations` section: a drain per destination. N queued reports,
//! each a small feedback with a 2 KB PNG, flushed to that destination's
//! sandbox, beside a bare ureq loop that sends each report as that server
//! takes it over one kept-alive connection, with the bodies built before
//! the clock starts: Centercode a JSON create, then a multipart upload to
//! the element URL it answers; ABC one multipart `feedbacks-with-images`
//! (text parts and the image part); Apptentive one JSON record with the
//! image in base64. Same sandboxes, rate limits off (the client's too), a
//! fresh sandbox per run, runs interleaved.

use std::path::Path;
use std::time::{Duration, Instant};

use fieldreport::sandbox::{Sandbox, SandboxConfig};
use fieldreport::{
    AbcConfig, ApptentiveConfig, Attachment, Client, Config, Durability, Feedback, ServerConfig,
};

use crate::{median_of, small_feedback, Row, API_KEY};

/// The three destinations, as the rows name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dest {
    Centercode,
    Abc,
    Apptentive,
}

const ALL: [Dest; 3] = [Dest::Centercode, Dest::Abc, Dest::Apptentive];

/// The attachment of every report: a PNG signature, then filler.
fn png() -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    b.extend((0..2040u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    b
}

impl Dest {
    fn label(self) -> &'static str {
        match self {
            Dest::Centercode => "Centercode (create, then upload)",
            Dest::Abc => "ABC (one multipart create with the image)",
            Dest::Apptentive => "Apptentive (one record, the file in base64)",
        }
    }

    fn sandbox(self) -> Sandbox {
        let cfg = match self {
            Dest::Centercode => SandboxConfig::default(),
            Dest::Abc => SandboxConfig::abc(),
            Dest::Apptentive => SandboxConfig::apptentive(),
        };
        Sandbox::start(SandboxConfig {
            rate_limit_per_sec: None,
            ..cfg
        })
        .expect("sandbox")
    }

    fn config(self, dir: &Path, sb: &Sandbox) -> Config {
        let mut c = match self {
            Dest::Centercode => Config::new(
                dir,
                ServerConfig::with_base_url(sb.base_url(), "WidgetPro", "Mobile", API_KEY),
            ),
            Dest::Abc => Config::abc(
                dir,
                AbcConfig::new(
                    &sb.base_url(),
                    "1",
                    "1",
                    sb.api_key(),
                    &[("description", "description"), ("images", "images")],
                )
                .expect("ABC settings"),
            ),
            Dest::Apptentive => Config::apptentive(
                dir,
                ApptentiveConfig::new(&sb.base_url(), sb.api_key()).expect("Apptentive settings"),
            ),
        };
        // ABC's polite default (5 a second) applies only under a policy limit.
        c.policy.max_requests_per_sec = 0;
        c
    }
}

/// Seconds for fieldreport to deliver `n` queued reports to `dest`.
fn drain_fieldreport(dest: Dest, n: usize, dir: &Path) -> f64 {
    let sb = dest.sandbox();
    let mut cfg = dest.config(dir, &sb);
    cfg.policy.max_reports = (n as u32) * 2 + 10;
    // Queue fast (not measured), then reopen with the default durability.
    cfg.policy.durability = Durability::Normal;
    {
        let setup = Client::open(cfg.clone()).expect("client opens");
        for i in 0..n {
            let f: Feedback =
                small_feedback(i)
                    .0
                    .attach(Attachment::from_bytes("Screenshot", "shot.png", png()));
            setup.submit(f).expect("submit");
        }
    }
    cfg.policy.durability = Durability::Full;
    let client = Client::open(cfg).expect("client opens");
    crate::sync_all();
    let t = Instant::now();
    let mut last = None;
    for _ in 0..5 {
        let r = client.flush(Duration::from_secs(600)).expect("flush");
        let done = r.pending == 0;
        last = Some(r);
        if done {
            break;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let r = last.expect("a flush");
    assert_eq!(r.pending, 0, "{dest:?}: drain incomplete: {:?}", r.stopped);
    assert_eq!(sb.feedback().len(), n, "{dest:?}");
    assert_eq!(sb.uploads().len(), n, "{dest:?}: one file each");
    secs
}

/// A multipart body with `boundary`: text parts, then one file part.
fn multipart(boundary: &str, texts: &[(&str, &str)], file_part: &str, file: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, value) in texts {
        b.extend(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .bytes(),
        );
    }
    b.extend(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{file_part}\"; \
             filename=\"shot.png\"\r\nContent-Type: image/png\r\n\r\n"
        )
        .bytes(),
    );
    b.extend_from_slice(file);
    b.extend(format!("\r\n--{boundary}--\r\n").bytes());
    b
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

const BOUNDARY: &str = "bench-boundary-7f3a9c";

/// Posts `body` and requires a 201; returns the answer.
fn post(agent: &ureq::Agent, url: &str, headers: &[(&str, String)], body: &[u8]) -> String {
    let mut req = agent.post(url);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let mut resp = req.send(body).expect("post");
    assert_eq!(resp.status().as_u16(), 201, "{url}");
    resp.body_mut().read_to_string().expect("answer")
}

/// Seconds for a bare ureq loop to send the same `n` reports to `dest`.
fn drain_bare(dest: Dest, n: usize) -> f64 {
    let sb = dest.sandbox();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let file = png();
    let base = sb.base_url();
    let multi = format!("multipart/form-data; boundary={BOUNDARY}");
    let json = "application/json".to_string();
    let t = match dest {
        Dest::Centercode => {
            let url = format!("{base}/projects/WidgetPro/feedback/Mobile?apiKey={API_KEY}");
            let creates: Vec<String> = (0..n).map(|i| small_feedback(i).1).collect();
            let upload = multipart(BOUNDARY, &[], "file", &file);
            let t = Instant::now();
            for body in &creates {
                let answer = post(
                    &agent,
                    &url,
                    &[("Content-Type", json.clone())],
                    body.as_bytes(),
                );
                let v: serde_json::Value = serde_json::from_str(&answer).expect("JSON answer");
                let element = v["fileElements"]
                    .as_array()
                    .and_then(|a| a.iter().find(|e| e["key"] == "Screenshot"))
                    .and_then(|e| e["url"].as_str())
                    .expect("a Screenshot element");
                post(
                    &agent,
                    &format!("{element}?apiKey={API_KEY}"),
                    &[("Content-Type", multi.clone())],
                    &upload,
                );
            }
            t
        }
        Dest::Abc => {
            let url = format!("{base}/api/projects/1/channels/1/feedbacks-with-images");
            let bodies: Vec<Vec<u8>> = (0..n)
                .map(|i| {
                    let v: serde_json::Value =
                        serde_json::from_str(&small_feedback(i).1).expect("JSON");
                    let texts = [
                        ("message", v["summary"].as_str().unwrap()),
                        ("description", v["description"].as_str().unwrap()),
                    ];
                    multipart(BOUNDARY, &texts, "images", &file)
                })
                .collect();
            let headers = [
                ("Content-Type", multi.clone()),
                ("x-api-key", sb.api_key().to_string()),
            ];
            let t = Instant::now();
            for body in &bodies {
                post(&agent, &url, &headers, body);
            }
            t
        }
        Dest::Apptentive => {
            let url = format!("{base}/records");
            let encoded = base64(&file);
            let bodies: Vec<String> = (0..n)
                .map(|i| {
                    let v: serde_json::Value =
                        serde_json::from_str(&small_feedback(i).1).expect("JSON");
                    let text = format!(
                        "{}\n\n{}",
                        v["summary"].as_str().unwrap(),
                        v["description"].as_str().unwrap()
                    );
                    serde_json::json!({
                        "feedback": {"feedback": text, "type": "feedback"},
                        "file": {"Screenshot": encoded},
                    })
                    .to_string()
                })
                .collect();
            let headers = [
                ("Content-Type", json.clone()),
                ("Authorization", format!("OAuth {}", sb.api_key())),
            ];
            let t = Instant::now();
            for body in &bodies {
                post(&agent, &url, &headers, body.as_bytes());
            }
            t
        }
    };
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(sb.feedback().len(), n, "{dest:?}");
    assert_eq!(sb.uploads().len(), n, "{dest:?}: one file each");
    let got = &sb.uploads()[0];
    assert_eq!(
        got.size,
        file.len() as u64,
        "{dest:?}: the file arrived whole"
    );
    secs
}

/// One row per destination: fieldreport's drain (default durability)
/// against the bare loop, `reps` runs each, interleaved in a rotating order.
pub fn bench_destinations(n: usize, reps: usize, work: &Path) -> Vec<Row> {
    // fieldreport and bare per destination: six series.
    let mut secs: Vec<Vec<f64>> = vec![Vec::new(); 6];
    for dest in ALL {
        // Warm-up of every code path.
        drain_fieldreport(dest, 10, &work.join(format!("dest-warm-{dest:?}")));
        drain_bare(dest, 10);
    }
    for rep in 0..reps {
        for k in 0..6 {
            let which = (k + rep) % 6;
            let dest = ALL[which / 2];
            let dir = work.join(format!("dest-{which}-{rep}"));
            secs[which].push(if which % 2 == 0 {
                drain_fieldreport(dest, n, &dir)
            } else {
                drain_bare(dest, n)
            });
        }
    }
    ALL.iter()
        .enumerate()
        .map(|(d, dest)| {
            let ours = n as f64 / median_of(&secs[2 * d]);
            let bare = n as f64 / median_of(&secs[2 * d + 1]);
            Row::speed(
                format!(
                    "drain {n} queued reports with a 2 KB image to {} (Durability::Full)",
                    dest.label()
                ),
                format!("{ours:.0} reports/s"),
                format!("{bare:.0} reports/s bare ureq loop, same requests"),
                ours / bare,
                None,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_pads_as_the_standard_says() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
