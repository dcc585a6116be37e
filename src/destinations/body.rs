//! Request bodies built from pieces, streamed with an exact length known in
//! advance: bytes, a file's bytes, or a file's bytes base64-encoded on the
//! fly (Apptentive's `file` values inside JSON, ABC's multipart with several
//! image parts). Memory stays flat whatever the files' sizes.

use crate::transport::HttpBody;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::time::Duration;

/// Raw bytes read from a file per base64 step (a multiple of 3).
const B64_RAW_CHUNK: usize = 48 * 1024;
/// Raw bytes read from a file per plain step.
const FILE_CHUNK: usize = 64 * 1024;

/// One piece of a [`StreamBody`].
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// These bytes.
    Bytes(Vec<u8>),
    /// Exactly `len` bytes of the file (shorter is an error).
    File {
        /// The file, opened when the body is read.
        path: PathBuf,
        /// Its size when the request was built.
        len: u64,
    },
    /// The file's `len` bytes, standard base64 with padding.
    Base64File {
        /// The file, opened when the body is read.
        path: PathBuf,
        /// Its size (raw bytes) when the request was built.
        len: u64,
    },
}

impl Segment {
    /// Bytes this piece adds to the body.
    pub(crate) fn len(&self) -> u64 {
        match self {
            Segment::Bytes(b) => b.len() as u64,
            Segment::File { len, .. } => *len,
            Segment::Base64File { len, .. } => base64_len(*len),
        }
    }
}

/// Length of the base64 encoding (with padding) of `n` bytes.
pub(crate) fn base64_len(n: u64) -> u64 {
    n.div_ceil(3) * 4
}

/// A body made of [`Segment`]s.
#[derive(Clone, PartialEq, Eq, Default)]
pub(crate) struct StreamBody {
    /// The pieces, sent in order.
    pub segments: Vec<Segment>,
}

impl StreamBody {
    /// An empty body.
    pub(crate) fn empty() -> StreamBody {
        StreamBody::default()
    }

    /// A body of these bytes.
    pub(crate) fn bytes(b: Vec<u8>) -> StreamBody {
        StreamBody {
            segments: vec![Segment::Bytes(b)],
        }
    }

    /// Appends bytes, merging with a preceding bytes piece.
    pub(crate) fn push_bytes(&mut self, b: &[u8]) {
        if let Some(Segment::Bytes(last)) = self.segments.last_mut() {
            last.extend_from_slice(b);
        } else {
            self.segments.push(Segment::Bytes(b.to_vec()));
        }
    }

    /// Appends a piece.
    pub(crate) fn push(&mut self, s: Segment) {
        match s {
            Segment::Bytes(b) => self.push_bytes(&b),
            other => self.segments.push(other),
        }
    }

    /// The exact number of bytes [`StreamBody::reader`] yields.
    pub(crate) fn len(&self) -> u64 {
        self.segments.iter().map(Segment::len).sum()
    }

    /// Whether the body has no bytes.
    #[cfg(test)]
    #[cfg_attr(not(feature = "builtin-http"), allow(dead_code))]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A reader over the whole body; files are opened as they are reached.
    pub(crate) fn reader(&self) -> BodyReader {
        BodyReader {
            segments: self.segments.clone(),
            index: 0,
            state: PieceState::Start,
            out: Vec::new(),
            out_pos: 0,
            peak_buffer: 0,
        }
    }

    /// The body as the project's [`HttpBody`], when its shape fits one:
    /// nothing, bytes, or bytes + one plain file + bytes.
    pub(crate) fn to_http_body(&self) -> Option<HttpBody> {
        match self.segments.as_slice() {
            [] => Some(HttpBody::Empty),
            [Segment::Bytes(b)] => Some(HttpBody::Bytes(b.clone())),
            [Segment::File { path, .. }] => Some(HttpBody::File {
                prefix: Vec::new(),
                path: path.clone(),
                suffix: Vec::new(),
            }),
            [Segment::Bytes(p), Segment::File { path, .. }, Segment::Bytes(s)] => {
                Some(HttpBody::File {
                    prefix: p.clone(),
                    path: path.clone(),
                    suffix: s.clone(),
                })
            }
            _ => None,
        }
    }
}

impl fmt::Debug for StreamBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "StreamBody({} bytes in {} pieces)",
            self.len(),
            self.segments.len()
        )
    }
}

enum PieceState {
    Start,
    Bytes(usize),
    File { file: File, left: u64, base64: bool },
}

/// Reads a [`StreamBody`]: yields exactly [`StreamBody::len`] bytes, or an
/// error when a file is shorter than announced.
pub(crate) struct BodyReader {
    segments: Vec<Segment>,
    index: usize,
    state: PieceState,
    out: Vec<u8>,
    out_pos: usize,
    peak_buffer: usize,
}

impl BodyReader {
    /// The largest capacity its working buffer reached (for tests of flat memory).
    #[cfg(test)]
    pub(crate) fn peak_buffer(&self) -> usize {
        self.peak_buffer
    }

    /// Refills `out` from the current piece; false at the end of the body.
    fn refill(&mut self) -> io::Result<bool> {
        loop {
            let Some(segment) = self.segments.get(self.index) else {
                return Ok(false);
            };
            match &mut self.state {
                PieceState::Start => {
                    self.state = match segment {
                        Segment::Bytes(_) => PieceState::Bytes(0),
                        Segment::File { path, len } => PieceState::File {
                            file: File::open(path)?,
                            left: *len,
                            base64: false,
                        },
                        Segment::Base64File { path, len } => PieceState::File {
                            file: File::open(path)?,
                            left: *len,
                            base64: true,
                        },
                    };
                }
                PieceState::Bytes(_) => {
                    // Bytes pieces are copied straight from the segment in `read`.
                    return Ok(true);
                }
                PieceState::File { file, left, base64 } => {
                    if *left == 0 {
                        self.index += 1;
                        self.state = PieceState::Start;
                        continue;
                    }
                    let chunk = if *base64 { B64_RAW_CHUNK } else { FILE_CHUNK };
                    let want = usize::try_from((*left).min(chunk as u64)).unwrap_or(chunk);
                    let mut raw = vec![0u8; want];
                    file.read_exact(&mut raw).map_err(|e| {
                        if e.kind() == io::ErrorKind::UnexpectedEof {
                            io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "an attachment is shorter than when the request was built",
                            )
                        } else {
                            e
                        }
                    })?;
                    *left -= want as u64;
                    self.out.clear();
                    self.out_pos = 0;
                    if *base64 {
                        encode_base64_into(&raw, &mut self.out);
                    } else {
                        self.out = raw;
                    }
                    self.peak_buffer = self.peak_buffer.max(self.out.capacity());
                    return Ok(true);
                }
            }
        }
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if let PieceState::Bytes(pos) = &mut self.state {
                let Some(Segment::Bytes(b)) = self.segments.get(self.index) else {
                    unreachable!("a bytes state stands on a bytes piece");
                };
                if *pos < b.len() {
                    let n = buf.len().min(b.len() - *pos);
                    buf[..n].copy_from_slice(&b[*pos..*pos + n]);
                    *pos += n;
                    return Ok(n);
                }
                self.index += 1;
                self.state = PieceState::Start;
                continue;
            }
            if self.out_pos < self.out.len() {
                let n = buf.len().min(self.out.len() - self.out_pos);
                buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
                self.out_pos += n;
                return Ok(n);
            }
            if !self.refill()? {
                return Ok(0);
            }
        }
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Appends the standard base64 (with padding) of `raw` to `out`.
pub(crate) fn encode_base64_into(raw: &[u8], out: &mut Vec<u8>) {
    out.reserve(raw.len().div_ceil(3) * 4);
    for c in raw.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        out.push(B64[(n >> 18) as usize & 63]);
        out.push(B64[(n >> 12) as usize & 63]);
        out.push(if c.len() > 1 {
            B64[(n >> 6) as usize & 63]
        } else {
            b'='
        });
        out.push(if c.len() > 2 {
            B64[n as usize & 63]
        } else {
            b'='
        });
    }
}

/// A request with a streamed body, as a destination's translator builds it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Outbound {
    /// `GET`, `POST` or `PUT`.
    pub method: String,
    /// The full URL (no secret in it, except a presigned URL's signature).
    pub url: String,
    /// Headers, `Content-Type` and `Content-Length` among them when there is a body.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: StreamBody,
    /// How long the whole exchange may take.
    pub timeout: Duration,
}

impl Outbound {
    /// A header's value (name in any case).
    #[cfg(test)]
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The project's request type, when the body has a shape it can carry.
    #[cfg(test)]
    pub(crate) fn to_http_request(&self) -> Option<crate::transport::HttpRequest> {
        Some(crate::transport::HttpRequest {
            method: self.method.clone(),
            url: self.url.clone(),
            headers: self.headers.clone(),
            body: self.body.to_http_body()?,
            timeout: self.timeout,
        })
    }
}

impl fmt::Debug for Outbound {
    // Secrets stay out: key headers are masked, the query (a presigned
    // URL's signature) is left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(n, v)| {
                let secret =
                    n.eq_ignore_ascii_case("authorization") || n.eq_ignore_ascii_case("x-api-key");
                (
                    n.clone(),
                    if secret {
                        "<redacted>".to_string()
                    } else {
                        v.clone()
                    },
                )
            })
            .collect();
        f.debug_struct("Outbound")
            .field("method", &self.method)
            .field("url", &self.url.split('?').next().unwrap_or(""))
            .field("headers", &headers)
            .field("body", &self.body)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use std::io::Write;

    fn reference_b64(raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_base64_into(raw, &mut out);
        out
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(reference_b64(raw.as_bytes()), enc.as_bytes(), "{raw}");
            assert_eq!(base64_len(raw.len() as u64), enc.len() as u64);
        }
    }

    #[test]
    fn segments_stream_in_order_with_the_announced_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        let data: Vec<u8> = (0..100_003u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let mut body = StreamBody::bytes(b"{\"a\":\"".to_vec());
        body.push(Segment::Base64File {
            path: path.clone(),
            len: data.len() as u64,
        });
        body.push_bytes(b"\",\"raw\":");
        body.push(Segment::File {
            path: path.clone(),
            len: data.len() as u64,
        });
        body.push_bytes(b"}");
        let mut out = Vec::new();
        body.reader().read_to_end(&mut out).unwrap();
        assert_eq!(out.len() as u64, body.len());
        let mut want = b"{\"a\":\"".to_vec();
        want.extend(reference_b64(&data));
        want.extend_from_slice(b"\",\"raw\":");
        want.extend_from_slice(&data);
        want.push(b'}');
        assert_eq!(out, want);
        assert!(
            body.to_http_body().is_none(),
            "two files do not fit HttpBody"
        );
    }

    #[test]
    fn a_shrunk_file_is_an_error_not_a_short_body() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        std::fs::write(&path, b"12345").unwrap();
        let body = StreamBody {
            segments: vec![Segment::Base64File { path, len: 10 }],
        };
        let err = body.reader().read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn a_20_mb_file_streams_as_base64_in_flat_memory_with_the_exact_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.bin");
        let mut f = File::create(&path).unwrap();
        let mut raw_hash = Sha256::new();
        let mut block = vec![0u8; 1 << 20];
        for i in 0..20u32 {
            for (j, b) in block.iter_mut().enumerate() {
                *b = (j as u32 ^ i.wrapping_mul(2_654_435_761)) as u8;
            }
            raw_hash.update(&block);
            f.write_all(&block).unwrap();
        }
        // One odd byte so the padding path is taken too.
        f.write_all(&[0xAB]).unwrap();
        raw_hash.update([0xAB]);
        drop(f);
        let len = 20 * (1 << 20) + 1;
        let mut body = StreamBody::bytes(br#"{"file":{"log":""#.to_vec());
        body.push(Segment::Base64File { path, len });
        body.push_bytes(b"\"}}");
        let announced = body.len();
        let mut reader = body.reader();
        // Decode as it streams (in the sandbox's independent decoder's
        // spirit: 4 characters at a time) and hash, keeping nothing.
        let mut buf = vec![0u8; 8191];
        let mut total = 0u64;
        let mut b64_tail: Vec<u8> = Vec::new();
        let mut decoded_hash = Sha256::new();
        let head_len = br#"{"file":{"log":""#.len() as u64;
        let b64_len = base64_len(len);
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            for &c in &buf[..n] {
                if total >= head_len && total < head_len + b64_len {
                    b64_tail.push(c);
                    if b64_tail.len() == 4 {
                        let s = std::str::from_utf8(&b64_tail).unwrap();
                        #[cfg(feature = "sandbox")]
                        decoded_hash.update(
                            crate::destinations::apptentive::sandbox::decode_base64(s).unwrap(),
                        );
                        #[cfg(not(feature = "sandbox"))]
                        let _ = s;
                        b64_tail.clear();
                    }
                }
                total += 1;
            }
        }
        assert_eq!(total, announced);
        assert_eq!(announced, head_len + 4 * len.div_ceil(3) + 3);
        assert!(
            reader.peak_buffer() <= 128 * 1024,
            "peak {}",
            reader.peak_buffer()
        );
        #[cfg(feature = "sandbox")]
        assert_eq!(decoded_hash.finalize(), raw_hash.finalize());
    }

    #[test]
    fn debug_hides_keys_and_query() {
        let o = Outbound {
            method: "PUT".into(),
            url: "http://h/s3/b/o?X-Amz-Signature=SIG".into(),
            headers: vec![
                ("Authorization".into(), "OAuth TOKEN".into()),
                ("x-api-key".into(), "KEY".into()),
            ],
            body: StreamBody::empty(),
            timeout: Duration::from_secs(1),
        };
        let shown = format!("{o:?}");
        for secret in ["TOKEN", "KEY\"", "SIG"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
