//! HTTP/1.1 over the TLS stream: one GET per connection (`Connection: close`), and a strict,
//! bounded response reader. Everything the server sends is untrusted input until the quorum
//! key signs it, and bounded before it is stored.

use std::io::{self, Read};

use tessera_core::fetch::{HeaderField, SELECTED_HEADERS};

use crate::url::HttpsUrl;

/// Largest response head (status line and headers).
pub const MAX_HEAD: usize = 16 * 1024;

/// Most headers in a response head.
const MAX_HEADERS: usize = 100;

/// Longest chunk-size line or trailer line of a chunked body.
const MAX_LINE: usize = 1024;

/// Headers a caller may add to a request; the fetcher sets the rest itself.
pub const CALLER_HEADERS: [&str; 3] = ["accept", "accept-language", "authorization"];

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    #[error("connection: {0}")]
    Io(#[from] io::Error),
    #[error("the response head is larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("the connection ended before the response was complete")]
    Truncated,
    #[error("malformed response: {0}")]
    Malformed(String),
    #[error("the response body is larger than the {limit}-byte limit")]
    BodyTooLarge { limit: usize },
    #[error(
        "request header {0:?} is not one a caller may set (accept, accept-language, authorization)"
    )]
    Header(String),
}

/// The request head the fetcher sends, as header fields (Host first) and as bytes.
pub fn request(
    url: &HttpsUrl,
    extra: &[HeaderField],
) -> Result<(Vec<HeaderField>, Vec<u8>), HttpError> {
    let mut headers = vec![
        field("host", &url.host_header()),
        field(
            "user-agent",
            concat!("tessera-fetcher/", env!("CARGO_PKG_VERSION")),
        ),
        field("accept-encoding", "identity"),
        field("connection", "close"),
    ];
    for h in extra {
        let name = h.name.to_ascii_lowercase();
        let printable = h.value.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
        if !CALLER_HEADERS.contains(&name.as_str()) || !printable || h.value.len() > 4096 {
            return Err(HttpError::Header(h.name.chars().take(64).collect()));
        }
        headers.push(field(&name, &h.value));
    }
    let mut bytes = format!("GET {} HTTP/1.1\r\n", url.target()).into_bytes();
    for h in &headers {
        bytes.extend_from_slice(format!("{}: {}\r\n", h.name, h.value).as_bytes());
    }
    bytes.extend_from_slice(b"\r\n");
    Ok((headers, bytes))
}

fn field(name: &str, value: &str) -> HeaderField {
    HeaderField {
        name: name.to_owned(),
        value: value.to_owned(),
    }
}

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The [`SELECTED_HEADERS`] received, in order (values that are not UTF-8 are left out).
    pub headers: Vec<HeaderField>,
    pub body: Vec<u8>,
}

enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

/// Reads one response from `r`: a head of at most [`MAX_HEAD`] bytes, then a body of at most
/// `limit` bytes framed by Content-Length, chunked coding, or the end of the stream. The end of
/// the stream is only a valid end when `r` says so with `Ok(0)` (rustls does so only after the
/// server's `close_notify`); an error or a short body is never a response.
pub fn read_response<R: Read>(r: &mut R, limit: usize) -> Result<Response, HttpError> {
    let mut buf = Vec::with_capacity(4096);
    let head_len = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() >= MAX_HEAD {
            return Err(HttpError::HeadTooLarge);
        }
        let mut chunk = [0u8; 4096];
        let want = chunk.len().min(MAX_HEAD + 4 - buf.len());
        let n = read_some(r, &mut chunk[..want])?;
        if n == 0 {
            return Err(HttpError::Truncated);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    if head_len > MAX_HEAD {
        return Err(HttpError::HeadTooLarge);
    }
    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut raw);
    match parsed.parse(&buf[..head_len]) {
        Ok(httparse::Status::Complete(n)) if n == head_len => {}
        Ok(_) => return Err(HttpError::Malformed("incomplete head".into())),
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    }
    if parsed.version != Some(1) {
        return Err(HttpError::Malformed("not an HTTP/1.1 response".into()));
    }
    let status = parsed.code.unwrap_or(0);
    if !(200..=599).contains(&status) {
        return Err(HttpError::Malformed(format!(
            "status {status} is not a final response"
        )));
    }
    let mut headers = Vec::new();
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    for h in parsed.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        if name == "content-length" {
            let v = std::str::from_utf8(h.value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or_else(|| HttpError::Malformed("invalid Content-Length".into()))?;
            if length.is_some_and(|l| l != v) {
                return Err(HttpError::Malformed("conflicting Content-Length".into()));
            }
            length = Some(v);
        }
        if name == "transfer-encoding" {
            let v = std::str::from_utf8(h.value).unwrap_or_default();
            // Only chunked is understood, and it must be the only coding.
            if transfer_encoding || !v.trim().eq_ignore_ascii_case("chunked") {
                return Err(HttpError::Malformed(format!(
                    "unsupported Transfer-Encoding {v:?}"
                )));
            }
            transfer_encoding = true;
            chunked = true;
        }
        if SELECTED_HEADERS.contains(&name.as_str())
            && let Ok(v) = std::str::from_utf8(h.value)
        {
            headers.push(HeaderField {
                name,
                value: v.to_owned(),
            });
        }
    }
    let framing = match (status, chunked, length) {
        (204 | 304, _, _) => Framing::None,
        (_, true, Some(_)) => {
            return Err(HttpError::Malformed(
                "both Transfer-Encoding and Content-Length".into(),
            ));
        }
        (_, true, None) => Framing::Chunked,
        (_, false, Some(n)) => Framing::Length(n),
        (_, false, None) => Framing::UntilClose,
    };
    let mut rest = Leftover {
        buf: buf.split_off(head_len),
        pos: 0,
        inner: r,
    };
    let body = match framing {
        Framing::None => Vec::new(),
        Framing::Length(n) => {
            if n > limit {
                return Err(HttpError::BodyTooLarge { limit });
            }
            let mut body = vec![0u8; n];
            let mut got = 0;
            while got < n {
                let k = rest.read_some(&mut body[got..])?;
                if k == 0 {
                    return Err(HttpError::Truncated);
                }
                got += k;
            }
            body
        }
        Framing::Chunked => read_chunked(&mut rest, limit)?,
        Framing::UntilClose => {
            let mut body = Vec::new();
            let mut chunk = [0u8; 16 * 1024];
            loop {
                let k = rest.read_some(&mut chunk)?;
                if k == 0 {
                    break;
                }
                if body.len() + k > limit {
                    return Err(HttpError::BodyTooLarge { limit });
                }
                body.extend_from_slice(&chunk[..k]);
            }
            body
        }
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A read that retries on `Interrupted` and turns an unexpected end (rustls's report of a
/// connection closed without `close_notify`) into [`HttpError::Truncated`].
fn read_some<R: Read>(r: &mut R, out: &mut [u8]) -> Result<usize, HttpError> {
    loop {
        match r.read(out) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(HttpError::Truncated);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The bytes read past the head, then the stream.
struct Leftover<'a, R> {
    buf: Vec<u8>,
    pos: usize,
    inner: &'a mut R,
}

impl<R: Read> Leftover<'_, R> {
    fn read_some(&mut self, out: &mut [u8]) -> Result<usize, HttpError> {
        if self.pos < self.buf.len() {
            let n = out.len().min(self.buf.len() - self.pos);
            out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        read_some(self.inner, out)
    }

    fn byte(&mut self) -> Result<u8, HttpError> {
        let mut b = [0u8; 1];
        if self.read_some(&mut b)? == 0 {
            return Err(HttpError::Truncated);
        }
        Ok(b[0])
    }

    /// One CRLF-terminated line, without the CRLF, of at most [`MAX_LINE`] bytes.
    fn line(&mut self) -> Result<Vec<u8>, HttpError> {
        let mut line = Vec::new();
        loop {
            let b = self.byte()?;
            if b == b'\n' {
                if line.pop() != Some(b'\r') {
                    return Err(HttpError::Malformed("bare LF in chunked body".into()));
                }
                return Ok(line);
            }
            if line.len() >= MAX_LINE {
                return Err(HttpError::Malformed("chunk line too long".into()));
            }
            line.push(b);
        }
    }
}

fn read_chunked<R: Read>(r: &mut Leftover<'_, R>, limit: usize) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    loop {
        let line = r.line()?;
        let size = line.split(|&b| b == b';').next().unwrap_or_default();
        let size = std::str::from_utf8(size)
            .ok()
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= 8 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .ok_or_else(|| HttpError::Malformed("invalid chunk size".into()))?;
        if size == 0 {
            break;
        }
        if body.len() + size > limit {
            return Err(HttpError::BodyTooLarge { limit });
        }
        let start = body.len();
        body.resize(start + size, 0);
        let mut got = 0;
        while got < size {
            let k = r.read_some(&mut body[start + got..])?;
            if k == 0 {
                return Err(HttpError::Truncated);
            }
            got += k;
        }
        if !r.line()?.is_empty() {
            return Err(HttpError::Malformed("chunk not followed by CRLF".into()));
        }
    }
    // Trailers are read and dropped; at most a head's worth.
    let mut trailer_bytes = 0;
    loop {
        let line = r.line()?;
        if line.is_empty() {
            break;
        }
        trailer_bytes += line.len();
        if trailer_bytes > MAX_HEAD {
            return Err(HttpError::HeadTooLarge);
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8], limit: usize) -> Result<Response, HttpError> {
        read_response(&mut io::Cursor::new(bytes.to_vec()), limit)
    }

    #[test]
    fn bodies_by_length_chunks_and_close() {
        let r = parse(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Other: 1\r\nContent-Length: 5\r\n\r\nhello",
            100,
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"hello");
        assert_eq!(r.headers.len(), 2);
        assert_eq!(r.headers[0].name, "content-type");
        let r = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n1\r\n!\r\n0\r\nT: v\r\n\r\n",
            100,
        )
        .unwrap();
        assert_eq!(r.body, b"hello!");
        let r = parse(b"HTTP/1.1 404 Not Found\r\n\r\ngone", 100).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"gone"[..]));
    }

    #[test]
    fn short_oversize_and_ambiguous_responses_are_refused() {
        assert!(matches!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello", 100),
            Err(HttpError::Truncated)
        ));
        assert!(matches!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n", 100),
            Err(HttpError::BodyTooLarge { .. })
        ));
        assert!(matches!(
            parse(b"HTTP/1.1 200 OK\r\n\r\n0123456789", 5),
            Err(HttpError::BodyTooLarge { .. })
        ));
        assert!(matches!(
            parse(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
                100
            ),
            Err(HttpError::Truncated)
        ));
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\na",
            b"HTTP/1.0 200 OK\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffff\r\n",
        ] {
            assert!(
                matches!(parse(bad, 100), Err(HttpError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut huge = b"HTTP/1.1 200 OK\r\n".to_vec();
        huge.extend(std::iter::repeat_n(b'a', MAX_HEAD + 10));
        assert!(matches!(parse(&huge, 100), Err(HttpError::HeadTooLarge)));
    }

    #[test]
    fn the_request_names_the_host_and_closes() {
        let url = HttpsUrl::parse("https://example.com:8443/x?y").unwrap();
        let (headers, bytes) = request(
            &url,
            &[HeaderField {
                name: "Accept".into(),
                value: "application/json".into(),
            }],
        )
        .unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("GET /x?y HTTP/1.1\r\nhost: example.com:8443\r\n"));
        assert!(text.contains("connection: close\r\n"));
        assert!(text.ends_with("accept: application/json\r\n\r\n"));
        assert_eq!(headers[0].name, "host");
        for (name, value) in [("host", "evil"), ("accept", "a\r\nX: y"), ("cookie", "x")] {
            let extra = [HeaderField {
                name: name.into(),
                value: value.into(),
            }];
            assert!(request(&url, &extra).is_err(), "{name}: {value:?}");
        }
    }
}
