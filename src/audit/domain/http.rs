//! The HTTP/1.1 of the MTA-STS policy fetch, sans-IO: [`request`] gives the bytes of one GET
//! (`Connection: close`), and a [`ResponseReader`] takes whatever bytes arrive
//! ([`feed`](ResponseReader::feed)) and the end of the stream
//! ([`finish`](ResponseReader::finish)), and gives the response once it is complete.
//!
//! Everything the peer drives is bounded: the status line and headers together
//! ([`Limits::head`]), the body ([`Limits::body`], checked against `Content-Length` before
//! any of it arrives), chunk-size and trailer lines, and interim 1xx responses. The body is
//! delimited as RFC 9112 §6.3 says: `Transfer-Encoding: chunked`, else `Content-Length`,
//! else the end of the connection. The reader never looks at a clock; the caller's deadline
//! bounds the time.

use std::fmt;

use crate::proto::escape::escape_bytes;

/// How much of a response the reader accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The status line and headers together, in bytes.
    pub head: usize,
    /// The body, in bytes (after removing any chunked framing).
    pub body: usize,
}

/// The most interim (1xx) responses accepted before the final one.
const MAX_INTERIM: usize = 4;
/// The longest chunk-size or trailer line.
const MAX_CHUNK_LINE: usize = 1024;
/// The most trailer bytes after the last chunk.
const MAX_TRAILERS: usize = 4096;

/// The bytes of `GET PATH` to `HOST` over HTTP/1.1, asking the server to close the
/// connection after the response.
pub fn request(host: &str, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: smtptui/{}\r\nAccept: text/plain\r\n\
         Connection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes()
}

/// The status line and headers of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// The reason phrase, escaped for display.
    pub reason: String,
    /// The header fields in order: names in lower case, values without surrounding
    /// whitespace, as sent (bytes that are not UTF-8 replaced). Escape before display.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first value of a header field (the name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header field.
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status line and headers.
    pub head: Head,
    /// The body, without any chunked framing.
    pub body: Vec<u8>,
}

/// Why a response could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The status line and headers are longer than the limit.
    #[error("the response headers are longer than {0} bytes")]
    HeadTooLarge(usize),
    /// The body is longer than the limit.
    #[error("the body is longer than {0} bytes")]
    BodyTooLarge(usize),
    /// The bytes are not an HTTP/1.x response.
    #[error("not a valid HTTP/1.1 response: {0}")]
    Malformed(String),
    /// The connection ended before the response was complete.
    #[error("the connection ended before the response was complete")]
    Truncated,
}

/// What [`ResponseReader::feed`] made of the bytes so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The response is not complete yet.
    NeedMore,
    /// The response is complete; bytes after it are ignored.
    Done(Response),
}

/// Where the body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// After this many more bytes.
    Length(usize),
    /// Chunked transfer coding, in this phase.
    Chunked(Chunk),
    /// At the end of the connection.
    UntilClose,
}

/// Where the chunked decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading a chunk-size line.
    Size,
    /// This many data bytes of the current chunk remain.
    Data(usize),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines after the last chunk, this many bytes read so far.
    Trailers(usize),
}

enum State {
    /// Reading the status line and headers; `scanned` bytes of the buffer hold no end yet.
    Head { scanned: usize, interim: usize },
    /// Reading the body.
    Body { head: Head, framing: Framing },
    /// The response was given out, or an error was.
    Over,
}

/// Reads one HTTP/1.1 response from bytes fed in as they arrive.
pub struct ResponseReader {
    limits: Limits,
    state: State,
    /// Bytes not consumed yet: the head being read, or undecoded chunked framing.
    pending: Vec<u8>,
    body: Vec<u8>,
}

impl fmt::Debug for ResponseReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseReader")
            .field("pending", &self.pending.len())
            .field("body", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl ResponseReader {
    /// A reader for one response within these limits.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            state: State::Head {
                scanned: 0,
                interim: 0,
            },
            pending: Vec::new(),
            body: Vec::new(),
        }
    }

    /// The status line and headers, once they are read.
    pub fn head(&self) -> Option<&Head> {
        match &self.state {
            State::Body { head, .. } => Some(head),
            _ => None,
        }
    }

    /// Takes the next bytes of the stream.
    ///
    /// # Errors
    /// [`HttpError`] when the bytes cannot be a response within the limits; the reader is
    /// then spent.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Progress, HttpError> {
        let result = self.advance(bytes);
        if !matches!(result, Ok(Progress::NeedMore)) {
            self.state = State::Over;
        }
        result
    }

    /// The stream has ended: the response, if the end completes it.
    ///
    /// # Errors
    /// [`HttpError::Truncated`] when the response was not complete, or the error that
    /// already ended the reading.
    pub fn finish(self) -> Result<Response, HttpError> {
        match self.state {
            State::Body {
                head,
                framing: Framing::UntilClose,
            } => Ok(Response {
                head,
                body: self.body,
            }),
            _ => Err(HttpError::Truncated),
        }
    }

    fn advance(&mut self, bytes: &[u8]) -> Result<Progress, HttpError> {
        let State::Head { scanned, interim } = &mut self.state else {
            return match self.state {
                State::Body { .. } => self.body_bytes(bytes),
                _ => Err(HttpError::Truncated),
            };
        };
        self.pending.extend_from_slice(bytes);
        let Some(end) = head_end(&self.pending, *scanned) else {
            if self.pending.len() > self.limits.head {
                return Err(HttpError::HeadTooLarge(self.limits.head));
            }
            *scanned = self.pending.len().saturating_sub(3);
            return Ok(Progress::NeedMore);
        };
        if end > self.limits.head {
            return Err(HttpError::HeadTooLarge(self.limits.head));
        }
        let head = parse_head(&self.pending[..end])?;
        self.pending.drain(..end);
        if (100..200).contains(&head.status) {
            // An interim response (100 Continue, 103 Early Hints): the final one follows.
            let interim = *interim + 1;
            if interim > MAX_INTERIM {
                return Err(HttpError::Malformed(format!(
                    "more than {MAX_INTERIM} interim 1xx responses"
                )));
            }
            self.state = State::Head {
                scanned: 0,
                interim,
            };
            return self.advance(&[]);
        }
        let framing = framing(&head, self.limits)?;
        let rest = std::mem::take(&mut self.pending);
        self.state = State::Body { head, framing };
        self.body_bytes(&rest)
    }

    /// Body bytes for the current framing.
    fn body_bytes(&mut self, bytes: &[u8]) -> Result<Progress, HttpError> {
        let State::Body { framing, .. } = &mut self.state else {
            return Ok(Progress::NeedMore);
        };
        match framing {
            Framing::Length(remaining) => {
                let take = bytes.len().min(*remaining);
                self.body.extend_from_slice(&bytes[..take]);
                *remaining -= take;
                if *remaining > 0 {
                    return Ok(Progress::NeedMore);
                }
            }
            Framing::UntilClose => {
                if self.body.len() + bytes.len() > self.limits.body {
                    return Err(HttpError::BodyTooLarge(self.limits.body));
                }
                self.body.extend_from_slice(bytes);
                return Ok(Progress::NeedMore);
            }
            Framing::Chunked(_) => {
                self.pending.extend_from_slice(bytes);
                if !self.dechunk()? {
                    return Ok(Progress::NeedMore);
                }
            }
        }
        let State::Body { head, .. } = std::mem::replace(&mut self.state, State::Over) else {
            return Ok(Progress::NeedMore);
        };
        Ok(Progress::Done(Response {
            head,
            body: std::mem::take(&mut self.body),
        }))
    }

    /// Decodes what `pending` holds of the chunked body; `true` once the last chunk and
    /// the trailers are read.
    fn dechunk(&mut self) -> Result<bool, HttpError> {
        let State::Body {
            framing: Framing::Chunked(phase),
            ..
        } = &mut self.state
        else {
            return Ok(false);
        };
        let mut at = 0;
        let done = loop {
            let rest = &self.pending[at..];
            match phase {
                Chunk::Size => {
                    let Some(line) = line(rest, MAX_CHUNK_LINE, "a chunk-size line")? else {
                        break false;
                    };
                    at += line.len();
                    let text = String::from_utf8_lossy(line);
                    let digits = text.trim_end().split(';').next().unwrap_or("").trim();
                    let size = usize::from_str_radix(digits, 16)
                        .ok()
                        .filter(|_| !digits.is_empty() && digits.len() <= 8)
                        .ok_or_else(|| {
                            HttpError::Malformed(format!(
                                "chunk size `{}` is not a hex number",
                                escape_bytes(digits.as_bytes())
                            ))
                        })?;
                    if size == 0 {
                        *phase = Chunk::Trailers(0);
                    } else if self.body.len() + size > self.limits.body {
                        return Err(HttpError::BodyTooLarge(self.limits.body));
                    } else {
                        *phase = Chunk::Data(size);
                    }
                }
                Chunk::Data(remaining) => {
                    if rest.is_empty() {
                        break false;
                    }
                    let take = rest.len().min(*remaining);
                    self.body.extend_from_slice(&rest[..take]);
                    at += take;
                    *remaining -= take;
                    if *remaining == 0 {
                        *phase = Chunk::DataEnd;
                    }
                }
                Chunk::DataEnd => {
                    let Some(line) = line(rest, 2, "the end of a chunk")? else {
                        break false;
                    };
                    if line != b"\r\n" && line != b"\n" {
                        return Err(HttpError::Malformed(
                            "a chunk's data is longer than its size".to_owned(),
                        ));
                    }
                    at += line.len();
                    *phase = Chunk::Size;
                }
                Chunk::Trailers(read) => {
                    let Some(line) = line(rest, MAX_CHUNK_LINE, "a trailer line")? else {
                        break false;
                    };
                    at += line.len();
                    *read += line.len();
                    if *read > MAX_TRAILERS {
                        return Err(HttpError::Malformed(format!(
                            "more than {MAX_TRAILERS} bytes of trailers"
                        )));
                    }
                    if line == b"\r\n" || line == b"\n" {
                        break true;
                    }
                }
            }
        };
        self.pending.drain(..at);
        Ok(done)
    }
}

/// The next line of `bytes` with its line end, `None` when it is not complete yet.
fn line<'a>(bytes: &'a [u8], max: usize, what: &str) -> Result<Option<&'a [u8]>, HttpError> {
    match memchr::memchr(b'\n', bytes) {
        Some(end) if end < max => Ok(Some(&bytes[..=end])),
        None if bytes.len() < max => Ok(None),
        _ => Err(HttpError::Malformed(format!(
            "{what} is longer than {max} bytes"
        ))),
    }
}

/// Where the head ends (just after its empty line), searching from `from`.
fn head_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(nl) = memchr::memchr(b'\n', &bytes[at..]) {
        let nl = at + nl;
        let next = &bytes[nl + 1..];
        if next.starts_with(b"\r\n") {
            return Some(nl + 3);
        }
        if next.starts_with(b"\n") {
            return Some(nl + 2);
        }
        at = nl + 1;
    }
    None
}

fn parse_head(bytes: &[u8]) -> Result<Head, HttpError> {
    let malformed = |why: String| HttpError::Malformed(why);
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    let reason = parts.next().unwrap_or_default();
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0") {
        return Err(malformed(format!(
            "the status line `{}` is not HTTP/1.1",
            escape_bytes(status_line.as_bytes())
        )));
    }
    let status = code
        .parse::<u16>()
        .ok()
        .filter(|c| code.len() == 3 && (100..600).contains(c))
        .ok_or_else(|| {
            malformed(format!(
                "the status code `{}` is not three digits",
                escape_bytes(code.as_bytes())
            ))
        })?;
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            return Err(malformed(
                "a header line is folded (obsolete, RFC 9112 §5.2)".to_owned(),
            ));
        }
        let (name, value) = line.split_once(':').ok_or_else(|| {
            malformed(format!(
                "the header line `{}` has no colon",
                escape_bytes(line.as_bytes())
            ))
        })?;
        if name.is_empty() || !name.bytes().all(is_token) {
            return Err(malformed(format!(
                "`{}` is not a header name",
                escape_bytes(name.as_bytes())
            )));
        }
        headers.push((
            name.to_ascii_lowercase(),
            value.trim_matches([' ', '\t']).to_owned(),
        ));
    }
    Ok(Head {
        status,
        reason: escape_bytes(reason.as_bytes()),
        headers,
    })
}

/// RFC 9110 §5.6.2's token characters.
fn is_token(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// How the body of a final response is delimited (RFC 9112 §6.3).
fn framing(head: &Head, limits: Limits) -> Result<Framing, HttpError> {
    if matches!(head.status, 204 | 304) {
        return Ok(Framing::Length(0));
    }
    let codings: Vec<String> = head
        .all("transfer-encoding")
        .flat_map(|v| v.split(','))
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty())
        .collect();
    if !codings.is_empty() {
        // Nothing but chunked was asked for (no Accept-Encoding, no TE).
        return if codings == ["chunked"] {
            Ok(Framing::Chunked(Chunk::Size))
        } else {
            Err(HttpError::Malformed(format!(
                "unsupported transfer coding `{}`",
                escape_bytes(codings.join(", ").as_bytes())
            )))
        };
    }
    let lengths: Vec<&str> = head
        .all("content-length")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let Some(first) = lengths.first() else {
        return Ok(Framing::UntilClose);
    };
    if lengths.iter().any(|l| l != first) {
        return Err(HttpError::Malformed(
            "Content-Length values disagree".to_owned(),
        ));
    }
    let length = first
        .parse::<u64>()
        .ok()
        .filter(|_| first.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            HttpError::Malformed(format!(
                "Content-Length `{}` is not a number",
                escape_bytes(first.as_bytes())
            ))
        })?;
    match usize::try_from(length) {
        Ok(length) if length <= limits.body => Ok(Framing::Length(length)),
        _ => Err(HttpError::BodyTooLarge(limits.body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        head: 512,
        body: 64,
    };

    /// Feeds `bytes` cut every `step` bytes, then ends the stream.
    fn read(bytes: &[u8], step: usize) -> Result<Response, HttpError> {
        let mut reader = ResponseReader::new(LIMITS);
        for chunk in bytes.chunks(step.max(1)) {
            match reader.feed(chunk)? {
                Progress::Done(response) => return Ok(response),
                Progress::NeedMore => {}
            }
        }
        reader.finish()
    }

    /// Every way of cutting the bytes gives the same result.
    fn read_all_ways(bytes: &[u8]) -> Result<Response, HttpError> {
        let whole = read(bytes, bytes.len());
        for step in 1..bytes.len() {
            assert_eq!(read(bytes, step), whole, "cut every {step} bytes");
        }
        whole
    }

    #[test]
    fn content_length_body() {
        let response = read_all_ways(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello+ignored",
        )
        .expect("response");
        assert_eq!(response.head.status, 200);
        assert_eq!(response.head.reason, "OK");
        assert_eq!(response.head.header("CONTENT-type"), Some("text/plain"));
        assert_eq!(response.body, b"hello");
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers() {
        let response = read_all_ways(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n1\r\n!\r\n0\r\nX-T: 1\r\n\r\n",
        )
        .expect("response");
        assert_eq!(response.body, b"hello!");
    }

    #[test]
    fn body_until_close_and_bare_line_feeds() {
        let response =
            read_all_ways(b"HTTP/1.0 200 OK\nContent-Type: text/plain\n\nmode: enforce\n")
                .expect("response");
        assert_eq!(response.body, b"mode: enforce\n");
    }

    #[test]
    fn interim_responses_are_skipped_and_bounded() {
        let response = read_all_ways(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        )
        .expect("response");
        assert_eq!(response.head.status, 404);
        let many = "HTTP/1.1 103 Early Hints\r\n\r\n".repeat(5);
        assert!(matches!(
            read(many.as_bytes(), 7),
            Err(HttpError::Malformed(_))
        ));
    }

    #[test]
    fn limits_hold_whatever_the_peer_sends() {
        let long_head = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(600));
        assert_eq!(
            read(long_head.as_bytes(), 10),
            Err(HttpError::HeadTooLarge(512))
        );
        // An endless head without its empty line.
        let mut reader = ResponseReader::new(LIMITS);
        let mut result = Ok(Progress::NeedMore);
        for _ in 0..100 {
            result = reader.feed(b"X-Header: value\r\n");
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(HttpError::HeadTooLarge(512)));
        assert_eq!(
            read(b"HTTP/1.1 200 OK\r\nContent-Length: 65\r\n\r\n", 100),
            Err(HttpError::BodyTooLarge(64))
        );
        let until_close = [b"HTTP/1.1 200 OK\r\n\r\n".as_slice(), &[b'a'; 65]].concat();
        assert_eq!(read(&until_close, 9), Err(HttpError::BodyTooLarge(64)));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n";
        let mut body = chunked.to_vec();
        body.extend_from_slice(&[b'a'; 64]);
        body.extend_from_slice(b"\r\n1\r\na\r\n0\r\n\r\n");
        assert_eq!(read(&body, 5), Err(HttpError::BodyTooLarge(64)));
        let endless_size = [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".as_slice(),
            &[b'0'; 2000],
        ]
        .concat();
        assert!(matches!(
            read(&endless_size, 3),
            Err(HttpError::Malformed(_))
        ));
    }

    #[test]
    fn truncation_is_an_error_unless_the_body_runs_to_the_close() {
        assert_eq!(
            read(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", 4),
            Err(HttpError::Truncated)
        );
        assert_eq!(
            read(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
                4
            ),
            Err(HttpError::Truncated)
        );
        assert_eq!(read(b"HTTP/1.1 200 O", 4), Err(HttpError::Truncated));
        assert_eq!(read(b"", 4), Err(HttpError::Truncated));
    }

    #[test]
    fn malformed_responses() {
        for bytes in [
            b"SMTP/1.0 220 hello\r\n\r\n".as_slice(),
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nA: b\r\n  folded\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n",
        ] {
            assert!(
                matches!(read(bytes, 3), Err(HttpError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn the_head_is_known_before_the_body() {
        let mut reader = ResponseReader::new(LIMITS);
        assert_eq!(
            reader
                .feed(b"HTTP/1.1 301 Moved\r\nLocation: https://x/\r\nContent-Length: 60\r\n\r\n"),
            Ok(Progress::NeedMore)
        );
        let head = reader.head().expect("head");
        assert_eq!(head.status, 301);
        assert_eq!(head.header("location"), Some("https://x/"));
    }

    #[test]
    fn control_characters_in_the_reason_are_escaped() {
        let response =
            read(b"HTTP/1.1 200 \x1b[2JOK\r\nContent-Length: 0\r\n\r\n", 50).expect("response");
        assert_eq!(response.head.reason, "\\x1b[2JOK");
    }

    #[test]
    fn the_request_asks_for_one_response() {
        let bytes = request("mta-sts.example.com", "/.well-known/mta-sts.txt");
        let text = String::from_utf8(bytes).expect("ascii");
        assert!(
            text.starts_with(
                "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.example.com\r\n"
            )
        );
        assert!(text.ends_with("Connection: close\r\n\r\n"));
    }
}
