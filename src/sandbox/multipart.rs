//! A streaming `multipart/form-data` parser: file parts are hashed as they
//! pass, so memory stays flat whatever the file size.

use super::http::*;
use super::*;

// ---------------------------------------------------------------------------
// Streaming multipart/form-data
// ---------------------------------------------------------------------------

/// What was learned of the `file` part.
#[derive(Debug)]
pub(crate) struct FilePart {
    pub(crate) file_name: String,
    pub(crate) content_type: String,
    pub(crate) size: u64,
    pub(crate) sha256_hex: String,
}

#[derive(Debug)]
pub(crate) enum MultipartError {
    /// Reading the body failed.
    Io(io::Error),
    /// The body is not acceptable; the text says why.
    Bad(String),
    /// The file is larger than allowed.
    TooLarge,
}

impl From<io::Error> for MultipartError {
    fn from(e: io::Error) -> Self {
        MultipartError::Io(e)
    }
}

/// The boundary of a `multipart/form-data` Content-Type, if it is one.
pub(crate) fn multipart_boundary(content_type: Option<&str>) -> Option<String> {
    let ct = content_type?;
    if media_type(Some(ct)) != "multipart/form-data" {
        return None;
    }
    let params = ct.split_once(';').map_or("", |(_, p)| p);
    let boundary = header_params(params)
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| value)?;
    (!boundary.is_empty() && boundary.len() <= 200).then_some(boundary)
}

/// Parses `; name=value; name="quoted \"value\""` parameter lists.
pub(crate) fn header_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ';' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ';' {
                break;
            }
            name.push(c);
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' if matches!(chars.peek(), Some('"') | Some('\\')) => {
                            if let Some(escaped) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        c => value.push(c),
                    }
                }
                while chars.peek().is_some_and(|c| *c != ';') {
                    chars.next();
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ';' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
                value = value.trim().to_string();
            }
        }
        out.push((name.trim().to_string(), value));
    }
    out
}

/// A look-ahead buffer over the body for finding boundaries in a stream.
pub(crate) struct Scanner<R> {
    pub(crate) src: R,
    pub(crate) buf: Vec<u8>,
    pub(crate) pos: usize,
    pub(crate) end: usize,
}

impl<R: Read> Scanner<R> {
    pub(crate) fn new(src: R, needle_len: usize) -> Scanner<R> {
        let mut buf = vec![0u8; SCAN_CHUNK + needle_len + 2];
        // The first delimiter has no CRLF before it: pretend it had.
        buf[..2].copy_from_slice(b"\r\n");
        Scanner {
            src,
            buf,
            pos: 0,
            end: 2,
        }
    }

    /// Reads more input; false at the end of the body.
    pub(crate) fn fill(&mut self) -> Result<bool, MultipartError> {
        if self.pos > 0 && (self.end == self.buf.len() || self.pos == self.end) {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.end == self.buf.len() {
            return Err(MultipartError::Bad(
                "a multipart header line is too long".to_string(),
            ));
        }
        loop {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(MultipartError::Io(e)),
            }
        }
    }

    /// Makes at least `n` bytes available; false if the body ends first.
    pub(crate) fn want(&mut self, n: usize) -> Result<bool, MultipartError> {
        while self.end - self.pos < n {
            if !self.fill()? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    pub(crate) fn read_line(&mut self, max: usize) -> Result<Vec<u8>, MultipartError> {
        let mut searched = 0;
        loop {
            let avail = &self.buf[self.pos..self.end];
            if let Some(i) = find(&avail[searched..], b"\r\n") {
                let line = avail[..searched + i].to_vec();
                self.pos += searched + i + 2;
                return Ok(line);
            }
            searched = avail.len().saturating_sub(1);
            if searched > max {
                return Err(MultipartError::Bad(
                    "a multipart header line is too long".to_string(),
                ));
            }
            if !self.fill()? {
                return Err(MultipartError::Bad(
                    "the multipart body ends inside a part header".to_string(),
                ));
            }
        }
    }

    /// Passes everything before the next `needle` to `sink` and consumes the needle.
    pub(crate) fn stream_until(
        &mut self,
        needle: &[u8],
        sink: &mut dyn FnMut(&[u8]) -> Result<(), MultipartError>,
    ) -> Result<(), MultipartError> {
        let keep = needle.len() - 1;
        loop {
            let avail = &self.buf[self.pos..self.end];
            if let Some(i) = find(avail, needle) {
                sink(&avail[..i])?;
                self.pos += i + needle.len();
                return Ok(());
            }
            if avail.len() > keep {
                let emit = avail.len() - keep;
                sink(&avail[..emit])?;
                self.pos += emit;
            }
            if !self.fill()? {
                return Err(MultipartError::Bad(
                    "the multipart body ends before its closing boundary".to_string(),
                ));
            }
        }
    }
}

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut from = 0;
    while from + needle.len() <= hay.len() {
        let i = from
            + hay[from..=hay.len() - needle.len()]
                .iter()
                .position(|&b| b == first)?;
        if &hay[i..i + needle.len()] == needle {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

/// A scanner over a multipart body, past its preamble (at most 64 KiB) and
/// its first boundary, and the delimiter (`CRLF--boundary`) that ends
/// each part.
pub(crate) fn past_preamble<R: Read>(
    src: R,
    boundary: &[u8],
) -> Result<(Scanner<R>, Vec<u8>), MultipartError> {
    let mut needle = b"\r\n--".to_vec();
    needle.extend_from_slice(boundary);
    let mut scan = Scanner::new(src, needle.len());
    let mut preamble = 0usize;
    scan.stream_until(&needle, &mut |bytes| {
        preamble += bytes.len();
        if preamble > 64 * 1024 {
            return Err(MultipartError::Bad(
                "no multipart boundary found".to_string(),
            ));
        }
        Ok(())
    })?;
    Ok((scan, needle))
}

/// Streams a multipart/form-data body, hashing the one part named `file`.
pub(crate) fn parse_multipart<R: Read>(
    src: R,
    boundary: &[u8],
    max_file: u64,
) -> Result<FilePart, MultipartError> {
    let (mut scan, needle) = past_preamble(src, boundary)?;

    let mut file: Option<FilePart> = None;
    loop {
        if !scan.want(2)? {
            return Err(MultipartError::Bad(
                "the multipart body ends after a boundary".to_string(),
            ));
        }
        if &scan.buf[scan.pos..scan.pos + 2] == b"--" {
            break; // the closing delimiter; the epilogue is left to be drained
        }
        let rest = scan.read_line(256)?;
        if !rest.iter().all(|b| *b == b' ' || *b == b'\t') {
            return Err(MultipartError::Bad(
                "malformed multipart boundary line".to_string(),
            ));
        }

        let mut name = None;
        let mut file_name = None;
        let mut content_type = None;
        let mut header_bytes = 0;
        loop {
            let line = scan.read_line(MAX_LINE)?;
            if line.is_empty() {
                break;
            }
            header_bytes += line.len();
            if header_bytes > MAX_HEAD {
                return Err(MultipartError::Bad(
                    "the part headers are too large".to_string(),
                ));
            }
            let line = String::from_utf8_lossy(&line);
            let Some((hname, hvalue)) = line.split_once(':') else {
                return Err(MultipartError::Bad("malformed part header".to_string()));
            };
            let hname = hname.trim();
            if hname.eq_ignore_ascii_case("content-disposition") {
                let params_text = hvalue.split_once(';').map_or("", |(_, p)| p);
                let mut plain_name = None;
                let mut extended_name = None;
                for (pname, pvalue) in header_params(params_text) {
                    match pname.to_ascii_lowercase().as_str() {
                        "name" => name = Some(pvalue),
                        "filename" => plain_name = Some(pvalue),
                        "filename*" => extended_name = decode_ext_value(&pvalue),
                        _ => {}
                    }
                }
                file_name = extended_name.or(plain_name);
            } else if hname.eq_ignore_ascii_case("content-type") {
                content_type = Some(hvalue.trim().to_string());
            }
        }

        let is_file = name.as_deref() == Some("file");
        if is_file && file.is_some() {
            return Err(MultipartError::Bad(
                "more than one part is named file".to_string(),
            ));
        }
        match file_name.filter(|n| !n.is_empty()) {
            Some(file_name) if is_file => {
                let mut hasher = Sha256::new();
                let mut size = 0u64;
                scan.stream_until(&needle, &mut |bytes| {
                    size += bytes.len() as u64;
                    if size > max_file {
                        return Err(MultipartError::TooLarge);
                    }
                    hasher.update(bytes);
                    Ok(())
                })?;
                file = Some(FilePart {
                    file_name,
                    content_type: content_type
                        .filter(|c| !c.is_empty())
                        .unwrap_or_else(|| "application/octet-stream".to_string()),
                    size,
                    sha256_hex: hex(&hasher.finalize()),
                });
            }
            _ if is_file => {
                return Err(MultipartError::Bad(
                    "the file part has no filename".to_string(),
                ))
            }
            _ => scan.stream_until(&needle, &mut |_| Ok(()))?,
        }
    }
    file.ok_or_else(|| MultipartError::Bad("A file is required.".to_string()))
}

/// Decodes an RFC 5987 `charset'lang'percent-encoded` value (UTF-8 or Latin-1).
pub(crate) fn decode_ext_value(v: &str) -> Option<String> {
    let mut parts = v.splitn(3, '\'');
    let charset = parts.next()?;
    let _language = parts.next()?;
    let encoded = parts.next()?;
    let bytes = percent_decode_bytes(encoded, false);
    if charset.eq_ignore_ascii_case("utf-8") {
        String::from_utf8(bytes).ok()
    } else if charset.eq_ignore_ascii_case("iso-8859-1") {
        Some(bytes.iter().map(|&b| char::from(b)).collect())
    } else {
        None
    }
}
