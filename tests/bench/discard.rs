//! A tiny HTTP/1.1 server that answers Create Feedback as Centercode does
//! (a key and one `Log` file element pointing back here) and reads and
//! discards every upload: the client is then the only thing measured.
//! Handles keep-alive, `Content-Length`, chunked bodies and
//! `Expect: 100-continue` (curl sends it for large bodies).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

type Log = Arc<Mutex<Vec<Duration>>>;

pub struct Discard {
    port: u16,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<JoinHandle<()>>,
    /// Body bytes read and discarded, over all requests.
    pub bytes: Arc<AtomicU64>,
    /// For each upload: from its request line to its answer, as seen here.
    uploads: Log,
}

impl Discard {
    pub fn start() -> Discard {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind discard server");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let bytes = Arc::new(AtomicU64::new(0));
        let keys = Arc::new(AtomicU64::new(1));
        let uploads: Log = Arc::new(Mutex::new(Vec::new()));
        let (s, c, b, u) = (
            Arc::clone(&stop),
            Arc::clone(&conns),
            Arc::clone(&bytes),
            Arc::clone(&uploads),
        );
        let accept = thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                if let Ok(clone) = stream.try_clone() {
                    c.lock().unwrap().push(clone);
                }
                let (b, k, u) = (Arc::clone(&b), Arc::clone(&keys), Arc::clone(&u));
                thread::spawn(move || {
                    let _ = serve(stream, port, &b, &k, &u);
                });
            }
        });
        Discard {
            port,
            stop,
            conns,
            accept: Some(accept),
            bytes,
            uploads,
        }
    }

    /// The duration of the latest upload, as this server saw it.
    pub fn last_upload(&self) -> Option<Duration> {
        self.uploads.lock().unwrap().last().copied()
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1", self.port)
    }

    /// An upload URL, as a created feedback's `fileElements` would give.
    pub fn element_url(&self) -> String {
        format!(
            "{}/projects/WidgetPro/feedbackTypes/Mobile/feedback/BUG-0000/fileElements/Log?apiKey=sandbox-key",
            self.base_url()
        )
    }
}

impl Drop for Discard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    port: u16,
    bytes: &AtomicU64,
    keys: &AtomicU64,
    uploads: &Log,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(256 * 1024, stream);
    let mut sink = vec![0u8; 256 * 1024];
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let started = Instant::now();
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        let (mut length, mut chunked, mut expect, mut close) = (0u64, false, false, false);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            match name.as_str() {
                "content-length" => length = value.parse().unwrap_or(0),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "expect" => expect = value.eq_ignore_ascii_case("100-continue"),
                "connection" => close = value.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        if expect {
            writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let read = if chunked {
            read_chunked(&mut reader, &mut sink)?
        } else {
            discard(&mut reader, &mut sink, length)?
        };
        bytes.fetch_add(read, Ordering::Relaxed);
        let body = if path.contains("/fileElements/") {
            r#"{"id":"00000000-0000-4000-a000-000000000000","fileElementKey":"Log","fileName":"f","feedbackKey":"BUG-0000"}"#
                .to_string()
        } else if path.contains("/feedback/") {
            let key = format!("BUG-{:04}", keys.fetch_add(1, Ordering::Relaxed));
            format!(
                r#"{{"id":"{key}-id","key":"{key}","url":"http://127.0.0.1:{port}/view/{key}","fileElements":[{{"title":"Log","key":"Log","url":"http://127.0.0.1:{port}/api/v1/projects/WidgetPro/feedbackTypes/Mobile/feedback/{key}/fileElements/Log","acceptsMultipleAttachments":true}}]}}"#
            )
        } else {
            String::new()
        };
        let status = if body.is_empty() {
            "404 Not Found"
        } else {
            "201 Created"
        };
        write!(
            writer,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n{body}",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        )?;
        writer.flush()?;
        if path.contains("/fileElements/") {
            uploads.lock().unwrap().push(started.elapsed());
        }
        if close {
            return Ok(());
        }
    }
}

fn discard(r: &mut impl Read, sink: &mut [u8], mut left: u64) -> io::Result<u64> {
    let total = left;
    while left > 0 {
        let want = left.min(sink.len() as u64) as usize;
        let n = r.read(&mut sink[..want])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        left -= n as u64;
    }
    Ok(total)
}

fn read_chunked(r: &mut BufReader<TcpStream>, sink: &mut [u8]) -> io::Result<u64> {
    let mut total = 0;
    loop {
        let mut line = String::new();
        r.read_line(&mut line)?;
        let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        if size == 0 {
            // Trailers, then the final empty line.
            loop {
                let mut t = String::new();
                if r.read_line(&mut t)? == 0 || t.trim_end().is_empty() {
                    return Ok(total);
                }
            }
        }
        total += discard(r, sink, size)?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)?;
    }
}
