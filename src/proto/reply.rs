//! SMTP reply parsing (RFC 5321 §4.2), incremental and bounded.
//!
//! The parser is fed whatever bytes the transport produced and hands back complete replies.
//! It never blocks and never allocates without bound: a peer that sends an endless line, an
//! endless multi-line reply or a huge reply gets a [`ReplyError`] once a [`ReplyLimits`] bound
//! is crossed. Deadlines are the transport's business; this module has no clock.

use std::fmt;

use super::escape::escape_bytes;

/// Bounds on what one reply may contain before the parser gives up on the peer.
///
/// RFC 5321 §4.5.3.1.5 limits a reply line to 512 octets, but real servers and middleboxes
/// sometimes exceed it, so the hard line limit is generous and a line over 512 octets is only
/// flagged (see [`Anomalies::overlong_line`]). The other bounds exist so that a hostile server
/// cannot make the client buffer without end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyLimits {
    /// Longest accepted line, in bytes, without its line ending.
    pub max_line_len: usize,
    /// Most lines accepted in one multi-line reply.
    pub max_lines: usize,
    /// Most bytes accepted in one reply, line endings included.
    pub max_reply_bytes: usize,
}

impl Default for ReplyLimits {
    fn default() -> Self {
        Self {
            max_line_len: 4096,
            max_lines: 512,
            max_reply_bytes: 256 * 1024,
        }
    }
}

/// What [`Reply::redact`] puts in place of a secret.
const REDACTED: &[u8] = b"<hidden>";

/// The RFC 5321 line length limit for replies (512 octets including CRLF).
pub const RFC_REPLY_LINE_LIMIT: usize = 510;

/// A three-digit SMTP reply code such as 250.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplyCode(u16);

impl ReplyCode {
    /// Builds a code from its numeric value; `None` unless it has exactly three digits.
    pub fn new(value: u16) -> Option<Self> {
        (100..=999).contains(&value).then_some(Self(value))
    }

    /// The numeric value, for example 250.
    pub fn value(self) -> u16 {
        self.0
    }

    /// The first digit, which says whether the command succeeded (RFC 5321 §4.2.1).
    pub fn class(self) -> ReplyClass {
        match self.0 / 100 {
            2 => ReplyClass::PositiveCompletion,
            3 => ReplyClass::PositiveIntermediate,
            4 => ReplyClass::TransientNegative,
            5 => ReplyClass::PermanentNegative,
            _ => ReplyClass::Unknown,
        }
    }

    /// Whether SMTP defines replies of this form (RFC 5321 §4.2): the first digit 2 to 5
    /// (there are no 1yz replies in SMTP) and the second 0 to 5.
    pub fn is_defined(self) -> bool {
        matches!(self.digit(0), 2..=5) && self.digit(1) <= 5
    }

    /// The digit at `position` (0, 1 or 2).
    pub fn digit(self, position: usize) -> u8 {
        let digits = [self.0 / 100, (self.0 / 10) % 10, self.0 % 10];
        // The index is clamped so a wrong position cannot panic; callers pass 0..3.
        digits[position.min(2)] as u8
    }
}

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03}", self.0)
    }
}

/// What the first digit of a reply code says about the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyClass {
    /// 2xx: the requested action was completed.
    PositiveCompletion,
    /// 3xx: accepted, the server waits for more (354 after DATA, 334 during AUTH).
    PositiveIntermediate,
    /// 4xx: not done this time; trying again later may work.
    TransientNegative,
    /// 5xx: not done, and repeating the same command will not help.
    PermanentNegative,
    /// 1xx or 6xx to 9xx: not defined for SMTP.
    Unknown,
}

impl ReplyClass {
    /// A short lower-case name for transcripts and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::PositiveCompletion => "positive",
            Self::PositiveIntermediate => "intermediate",
            Self::TransientNegative => "transient",
            Self::PermanentNegative => "permanent",
            Self::Unknown => "unknown",
        }
    }
}

/// An enhanced status code `class.subject.detail` (RFC 3463), such as `5.7.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedCode {
    /// 2 success, 4 persistent transient failure, 5 permanent failure.
    pub class: u8,
    /// What the status is about: 7 is security or policy, 1 addressing, and so on.
    pub subject: u16,
    /// The detail within the subject.
    pub detail: u16,
}

impl EnhancedCode {
    /// Parses an enhanced code at the start of `text`, followed by a space or the end.
    ///
    /// Returns the code and the length of the prefix it took (without the space).
    pub fn parse_prefix(text: &[u8]) -> Option<(Self, usize)> {
        let end = text.iter().position(|&b| b == b' ').unwrap_or(text.len());
        let token = std::str::from_utf8(&text[..end]).ok()?;
        let mut parts = token.split('.');
        let class: u8 = parse_digits(parts.next()?, 1)?;
        let subject: u16 = parse_digits(parts.next()?, 3)?;
        let detail: u16 = parse_digits(parts.next()?, 3)?;
        if parts.next().is_some() || !matches!(class, 2 | 4 | 5) {
            return None;
        }
        Some((
            Self {
                class,
                subject,
                detail,
            },
            end,
        ))
    }
}

fn parse_digits<T: std::str::FromStr>(part: &str, max_len: usize) -> Option<T> {
    if part.is_empty() || part.len() > max_len || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// Departures from RFC 5321 that the parser tolerated, kept so front ends can show them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Anomalies {
    /// A line ended with LF alone instead of CRLF.
    pub bare_lf: bool,
    /// A carriage return appeared inside a line, not followed by LF.
    pub bare_cr: bool,
    /// Some text was not valid UTF-8 (shown as `\xNN` escapes).
    pub non_utf8: bool,
    /// Some text held control characters or escape sequences (shown escaped).
    pub control_chars: bool,
    /// A line was longer than the 512 octets RFC 5321 allows.
    pub overlong_line: bool,
    /// The enhanced status code's class disagrees with the reply code (RFC 3463 §2).
    pub enhanced_class_mismatch: bool,
    /// The reply code is not one SMTP defines: RFC 5321 §4.2 allows only 2 to 5 as the first
    /// digit and 0 to 5 as the second (`100`, `999` and `260` are not SMTP replies).
    pub undefined_code: bool,
}

impl Anomalies {
    /// True when nothing was tolerated.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Human-readable descriptions of each anomaly present.
    pub fn descriptions(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.bare_lf {
            out.push("line ended with a bare LF instead of CRLF");
        }
        if self.bare_cr {
            out.push("bare CR inside a line");
        }
        if self.non_utf8 {
            out.push("bytes that are not UTF-8");
        }
        if self.control_chars {
            out.push("control characters or escape sequences (shown escaped)");
        }
        if self.overlong_line {
            out.push("line longer than the 512 octets of RFC 5321");
        }
        if self.enhanced_class_mismatch {
            out.push("enhanced status class disagrees with the reply code");
        }
        if self.undefined_code {
            out.push(
                "a reply code SMTP does not define (RFC 5321 §4.2: first digit 2 to 5, \
                 second 0 to 5)",
            );
        }
        out
    }
}

/// One complete server reply: a code, optional enhanced code, and its lines exactly as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The reply code shared by every line.
    pub code: ReplyCode,
    /// The enhanced status code from the first line's text, when present.
    pub enhanced: Option<EnhancedCode>,
    /// Each line's raw bytes, code and separator included, line ending excluded.
    raw_lines: Vec<Vec<u8>>,
    /// What the parser tolerated while reading this reply.
    pub anomalies: Anomalies,
}

impl Reply {
    /// The lines as received, without line endings (for exact transcripts).
    pub fn raw_lines(&self) -> &[Vec<u8>] {
        &self.raw_lines
    }

    /// The text of each line after the code and its separator (may be empty).
    pub fn texts(&self) -> impl Iterator<Item = &[u8]> {
        self.raw_lines
            .iter()
            .map(|line| line.get(4..).unwrap_or(&[]))
    }

    /// Each line escaped for display: never contains control characters.
    pub fn display_lines(&self) -> Vec<String> {
        self.raw_lines
            .iter()
            .map(|line| escape_bytes(line))
            .collect()
    }

    /// The reply's texts joined by spaces, escaped, for one-line summaries.
    pub fn summary(&self) -> String {
        let joined: Vec<String> = self.texts().map(escape_bytes).collect();
        format!("{} {}", self.code, joined.join(" "))
            .trim_end()
            .to_owned()
    }

    /// Whether some line's text contains `needle`, ignoring ASCII case.
    pub fn contains_text(&self, needle: &str) -> bool {
        let needle = needle.to_ascii_lowercase();
        self.texts().any(|text| {
            String::from_utf8_lossy(text)
                .to_ascii_lowercase()
                .contains(&needle)
        })
    }

    /// Replaces every occurrence of `secret` in the reply's lines with `<hidden>`.
    ///
    /// A server can echo what it received (a hostile one on purpose); a secret the client
    /// sent must not come back onto the screen that way. Returns whether anything was hidden.
    pub fn redact(&mut self, secret: &[u8]) -> bool {
        if secret.is_empty() {
            return false;
        }
        let mut hidden = false;
        for line in &mut self.raw_lines {
            let mut start = 0;
            while let Some(offset) = line[start..]
                .windows(secret.len())
                .position(|window| window == secret)
            {
                let at = start + offset;
                line.splice(at..at + secret.len(), REDACTED.iter().copied());
                start = at + REDACTED.len();
                hidden = true;
            }
        }
        hidden
    }

    /// The number of bytes the reply occupied on the wire, counting CRLF per line.
    pub fn wire_len(&self) -> usize {
        self.raw_lines.iter().map(|line| line.len() + 2).sum()
    }
}

/// Why a peer's bytes could not be read as an SMTP reply. Every variant is fatal for the session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// A line did not start with three digits followed by space, hyphen or end of line.
    #[error(
        "malformed reply line {line:?}: a reply line starts with a three-digit code followed by a space, a hyphen or the end of the line"
    )]
    Malformed {
        /// The offending line, escaped.
        line: String,
    },
    /// A continuation line carried a different code (RFC 5321 §4.2.1 requires the same code).
    #[error("reply code changed from {first} to {then} inside one multi-line reply")]
    CodeChanged {
        /// The code of the first line.
        first: ReplyCode,
        /// The code that appeared later.
        then: ReplyCode,
    },
    /// A line exceeded [`ReplyLimits::max_line_len`].
    #[error("reply line too long: more than {limit} bytes without a line ending")]
    LineTooLong {
        /// The limit that was crossed.
        limit: usize,
    },
    /// A multi-line reply exceeded [`ReplyLimits::max_lines`].
    #[error("reply has too many lines: more than {limit} in one reply")]
    TooManyLines {
        /// The limit that was crossed.
        limit: usize,
    },
    /// A reply exceeded [`ReplyLimits::max_reply_bytes`].
    #[error("reply too large: more than {limit} bytes in one reply")]
    TooLarge {
        /// The limit that was crossed.
        limit: usize,
    },
}

/// Incremental reply parser: push bytes with [`ReplyParser::push`], take replies with
/// [`ReplyParser::next_reply`]. `Ok(None)` means more bytes are needed.
#[derive(Debug, Default)]
pub struct ReplyParser {
    limits: ReplyLimits,
    buffer: Vec<u8>,
    /// Lines of the reply being assembled, and what they have cost so far.
    pending: Vec<Vec<u8>>,
    pending_code: Option<ReplyCode>,
    pending_bytes: usize,
    pending_anomalies: Anomalies,
}

impl ReplyParser {
    /// A parser with the given limits.
    pub fn new(limits: ReplyLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Appends bytes received from the peer.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes received but not yet part of a complete reply line.
    ///
    /// After the 220 to STARTTLS this must be empty: anything here was sent before the TLS
    /// handshake and must not be read as if it came through TLS (RFC 3207 §6).
    pub fn buffered(&self) -> &[u8] {
        &self.buffer
    }

    /// Whether a reply has started (some lines read) but is not complete.
    pub fn mid_reply(&self) -> bool {
        !self.pending.is_empty() || !self.buffer.is_empty()
    }

    /// Forgets every buffered byte and partial reply (used when the transport changes).
    pub fn clear(&mut self) {
        self.buffer.clear();
        self.reset_pending();
    }

    fn reset_pending(&mut self) {
        self.pending.clear();
        self.pending_code = None;
        self.pending_bytes = 0;
        self.pending_anomalies = Anomalies::default();
    }

    /// Returns the next complete reply, `Ok(None)` if more bytes are needed.
    ///
    /// # Errors
    /// A [`ReplyError`] when the bytes cannot be an SMTP reply or exceed the limits. The parser
    /// should not be used after an error; the session is over.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, ReplyError> {
        loop {
            let Some(newline) = self.buffer.iter().position(|&b| b == b'\n') else {
                if self.buffer.len() > self.limits.max_line_len + 1 {
                    return Err(ReplyError::LineTooLong {
                        limit: self.limits.max_line_len,
                    });
                }
                return Ok(None);
            };
            let mut line: Vec<u8> = self.buffer.drain(..=newline).collect();
            line.pop(); // the LF
            if line.last() == Some(&b'\r') {
                line.pop();
            } else {
                self.pending_anomalies.bare_lf = true;
            }
            if line.len() > self.limits.max_line_len {
                return Err(ReplyError::LineTooLong {
                    limit: self.limits.max_line_len,
                });
            }
            self.pending_bytes += line.len() + 2;
            if self.pending_bytes > self.limits.max_reply_bytes {
                return Err(ReplyError::TooLarge {
                    limit: self.limits.max_reply_bytes,
                });
            }
            if self.pending.len() >= self.limits.max_lines {
                return Err(ReplyError::TooManyLines {
                    limit: self.limits.max_lines,
                });
            }
            let (code, last) = parse_line_head(&line)?;
            match self.pending_code {
                Some(first) if first != code => {
                    return Err(ReplyError::CodeChanged { first, then: code });
                }
                _ => self.pending_code = Some(code),
            }
            note_text_anomalies(&line, &mut self.pending_anomalies);
            self.pending.push(line);
            if last {
                return Ok(Some(self.finish(code)));
            }
        }
    }

    fn finish(&mut self, code: ReplyCode) -> Reply {
        let raw_lines = std::mem::take(&mut self.pending);
        let mut anomalies = self.pending_anomalies;
        self.reset_pending();
        let enhanced = raw_lines
            .first()
            .and_then(|line| line.get(4..))
            .and_then(EnhancedCode::parse_prefix)
            .map(|(code, _)| code);
        if let Some(enhanced) = enhanced {
            anomalies.enhanced_class_mismatch = enhanced.class != code.digit(0);
        }
        anomalies.undefined_code = !code.is_defined();
        Reply {
            code,
            enhanced,
            raw_lines,
            anomalies,
        }
    }
}

/// Reads the code and whether this is the last line (`250 ` or bare `250`, not `250-`).
fn parse_line_head(line: &[u8]) -> Result<(ReplyCode, bool), ReplyError> {
    let malformed = || ReplyError::Malformed {
        line: escape_bytes(&line[..line.len().min(80)]),
    };
    let digits = line.get(..3).ok_or_else(malformed)?;
    if !digits.iter().all(u8::is_ascii_digit) || digits[0] == b'0' {
        return Err(malformed());
    }
    let value = digits
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    let code = ReplyCode::new(value).ok_or_else(malformed)?;
    match line.get(3) {
        None | Some(b' ') => Ok((code, true)),
        Some(b'-') => Ok((code, false)),
        Some(_) => Err(malformed()),
    }
}

fn note_text_anomalies(line: &[u8], anomalies: &mut Anomalies) {
    if line.len() > RFC_REPLY_LINE_LIMIT {
        anomalies.overlong_line = true;
    }
    if line.contains(&b'\r') {
        anomalies.bare_cr = true;
    }
    match std::str::from_utf8(line) {
        Ok(text) => {
            if text.chars().any(super::escape::needs_escape) {
                anomalies.control_chars = true;
            }
        }
        Err(_) => {
            anomalies.non_utf8 = true;
            if line.iter().any(|&b| b < 0x20 || b == 0x7f) {
                anomalies.control_chars = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Reply>, ReplyError> {
        let mut parser = ReplyParser::default();
        parser.push(input);
        let mut out = Vec::new();
        while let Some(reply) = parser.next_reply()? {
            out.push(reply);
        }
        Ok(out)
    }

    #[test]
    fn single_line_with_enhanced_code() {
        let replies =
            parse_all(b"530 5.7.0 Must issue a STARTTLS command first\r\n").expect("parses");
        assert_eq!(replies.len(), 1);
        let reply = &replies[0];
        assert_eq!(reply.code.value(), 530);
        assert_eq!(reply.code.class(), ReplyClass::PermanentNegative);
        assert_eq!(
            reply.enhanced,
            Some(EnhancedCode {
                class: 5,
                subject: 7,
                detail: 0
            })
        );
        assert!(reply.anomalies.is_empty());
        assert!(reply.contains_text("must issue a starttls"));
    }

    #[test]
    fn multi_line_reply_is_one_reply() {
        let replies =
            parse_all(b"250-mail.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n").expect("parses");
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0].raw_lines().len(), 3);
        let texts: Vec<&[u8]> = replies[0].texts().collect();
        assert_eq!(
            texts,
            vec![&b"mail.example"[..], b"PIPELINING", b"STARTTLS"]
        );
    }

    #[test]
    fn bare_code_without_text_is_valid() {
        let replies = parse_all(b"250\r\n").expect("parses");
        assert_eq!(replies[0].code.value(), 250);
        assert_eq!(replies[0].texts().next(), Some(&b""[..]));
        assert_eq!(replies[0].enhanced, None);
    }

    #[test]
    fn needs_more_data_until_the_last_line() {
        let mut parser = ReplyParser::default();
        parser.push(b"250-first\r\n250 se");
        assert_eq!(parser.next_reply(), Ok(None));
        assert!(parser.mid_reply());
        parser.push(b"cond\r");
        assert_eq!(parser.next_reply(), Ok(None));
        parser.push(b"\n");
        let reply = parser.next_reply().expect("parses").expect("complete");
        assert_eq!(reply.raw_lines().len(), 2);
        assert!(!parser.mid_reply());
    }

    #[test]
    fn byte_at_a_time_gives_the_same_reply() {
        let input = b"220-hello\r\n220 ESMTP ready\r\n";
        let mut parser = ReplyParser::default();
        let mut got = None;
        for byte in input {
            parser.push(&[*byte]);
            if let Some(reply) = parser.next_reply().expect("parses") {
                got = Some(reply);
            }
        }
        assert_eq!(got, parse_all(input).expect("parses").pop());
    }

    #[test]
    fn code_change_inside_a_reply_is_an_error() {
        assert_eq!(
            parse_all(b"250-a\r\n251 b\r\n"),
            Err(ReplyError::CodeChanged {
                first: ReplyCode(250),
                then: ReplyCode(251)
            })
        );
    }

    #[test]
    fn malformed_lines_are_errors_not_panics() {
        for input in [
            &b"hello\r\n"[..],
            b"25\r\n",
            b"2500 x\r\n",
            b"250x\r\n",
            b"\r\n",
            b" \n",
            b"abc def\r\n",
            b"099 zero\r\n",
        ] {
            assert!(
                matches!(parse_all(input), Err(ReplyError::Malformed { .. })),
                "{input:?}"
            );
        }
    }

    #[test]
    fn bare_lf_and_cr_and_non_utf8_are_tolerated_and_flagged() {
        let replies = parse_all(b"250-a\n250-b\rc\r\n250 \xff\xfe\r\n").expect("parses");
        let anomalies = replies[0].anomalies;
        assert!(anomalies.bare_lf);
        assert!(anomalies.bare_cr);
        assert!(anomalies.non_utf8);
        assert_eq!(replies[0].display_lines()[2], "250 \\xff\\xfe");
    }

    #[test]
    fn escape_sequences_are_flagged_and_never_displayed_raw() {
        let replies = parse_all(b"220 \x1b[31mred\x1b]0;title\x07 ESMTP\r\n").expect("parses");
        assert!(replies[0].anomalies.control_chars);
        let shown = replies[0].display_lines().join("");
        assert!(!shown.contains('\x1b'));
        assert!(!shown.contains('\x07'));
        assert!(shown.contains("\\x1b[31mred"));
    }

    #[test]
    fn overlong_line_without_newline_is_refused_early() {
        let mut parser = ReplyParser::new(ReplyLimits {
            max_line_len: 100,
            ..ReplyLimits::default()
        });
        parser.push(&[b'2'; 50]);
        assert_eq!(parser.next_reply(), Ok(None));
        parser.push(&[b'x'; 60]);
        assert_eq!(
            parser.next_reply(),
            Err(ReplyError::LineTooLong { limit: 100 })
        );
    }

    #[test]
    fn endless_multi_line_reply_hits_the_line_limit() {
        let mut parser = ReplyParser::new(ReplyLimits {
            max_lines: 10,
            ..ReplyLimits::default()
        });
        for _ in 0..20 {
            parser.push(b"250-more\r\n");
        }
        assert_eq!(
            parser.next_reply(),
            Err(ReplyError::TooManyLines { limit: 10 })
        );
    }

    #[test]
    fn huge_reply_hits_the_byte_limit() {
        let mut parser = ReplyParser::new(ReplyLimits {
            max_reply_bytes: 1000,
            ..ReplyLimits::default()
        });
        let line = format!("250-{}\r\n", "y".repeat(300));
        for _ in 0..5 {
            parser.push(line.as_bytes());
        }
        assert_eq!(
            parser.next_reply(),
            Err(ReplyError::TooLarge { limit: 1000 })
        );
    }

    #[test]
    fn overlong_but_within_hard_limit_is_flagged() {
        let line = format!("250 {}\r\n", "z".repeat(600));
        let replies = parse_all(line.as_bytes()).expect("parses");
        assert!(replies[0].anomalies.overlong_line);
    }

    #[test]
    fn enhanced_code_parsing() {
        assert_eq!(
            EnhancedCode::parse_prefix(b"2.0.0 Ok"),
            Some((
                EnhancedCode {
                    class: 2,
                    subject: 0,
                    detail: 0
                },
                5
            ))
        );
        assert_eq!(EnhancedCode::parse_prefix(b"3.0.0 no"), None);
        assert_eq!(EnhancedCode::parse_prefix(b"5.7"), None);
        assert_eq!(EnhancedCode::parse_prefix(b"5.7.1.2 x"), None);
        assert_eq!(EnhancedCode::parse_prefix(b"5.1234.1 x"), None);
        assert_eq!(EnhancedCode::parse_prefix(b"Ok 2.0.0"), None);
        assert_eq!(EnhancedCode::parse_prefix(b""), None);
        let replies = parse_all(b"250 5.0.0 odd\r\n").expect("parses");
        assert!(replies[0].anomalies.enhanced_class_mismatch);
    }

    #[test]
    fn redaction_hides_every_occurrence() {
        let mut replies =
            parse_all(b"535-you sent hunter2\r\n535 hunter2hunter2 rejected\r\n").expect("parses");
        let reply = &mut replies[0];
        assert!(reply.redact(b"hunter2"));
        assert_eq!(
            reply.display_lines(),
            vec!["535-you sent <hidden>", "535 <hidden><hidden> rejected"]
        );
        assert!(!reply.redact(b"hunter2"));
        assert!(!reply.redact(b""));
    }

    /// Arbitrary bytes, pushed in arbitrary pieces, give replies or errors but never a panic,
    /// and never more lines than the limits allow.
    #[test]
    fn random_input_never_panics() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"0123456789 -\r\n\x1bxyz\xff";
        let limits = ReplyLimits {
            max_line_len: 64,
            max_lines: 8,
            max_reply_bytes: 300,
        };
        for _ in 0..2000 {
            let mut parser = ReplyParser::new(limits);
            let len = (next() % 400) as usize;
            let input: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 4 == 0 {
                        (r >> 8) as u8
                    } else {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    }
                })
                .collect();
            let mut rest = &input[..];
            'feed: while !rest.is_empty() {
                let take = 1 + (next() as usize % rest.len().min(37));
                parser.push(&rest[..take]);
                rest = &rest[take..];
                loop {
                    match parser.next_reply() {
                        Ok(Some(reply)) => assert!(reply.raw_lines().len() <= limits.max_lines),
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
            }
        }
    }

    #[test]
    fn codes_smtp_does_not_define_are_flagged() {
        for input in [
            &b"100 x\r\n"[..],
            b"199\r\n",
            b"999 x\r\n",
            b"650 x\r\n",
            b"260 x\r\n",
            b"590 x\r\n",
        ] {
            let replies = parse_all(input).expect("parses");
            assert!(replies[0].anomalies.undefined_code, "{input:?}");
            assert!(
                replies[0]
                    .anomalies
                    .descriptions()
                    .iter()
                    .any(|d| d.contains("RFC 5321")),
                "{input:?}"
            );
        }
        for input in [
            &b"220 x\r\n"[..],
            b"354 go\r\n",
            b"421 bye\r\n",
            b"554 no\r\n",
            b"250\r\n",
        ] {
            let replies = parse_all(input).expect("parses");
            assert!(replies[0].anomalies.is_empty(), "{input:?}");
        }
    }

    #[test]
    fn pipelined_replies_come_out_in_order() {
        let replies =
            parse_all(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data\r\n").expect("parses");
        let codes: Vec<u16> = replies.iter().map(|r| r.code.value()).collect();
        assert_eq!(codes, vec![250, 250, 354]);
    }
}
