//! Messages read from files: what a file holds (scanned once, in pieces of any size, before
//! anything is sent) and its line endings made CRLF for the wire.
//!
//! SMTP messages are lines ended by CRLF (RFC 5321 §2.3.8). A file written on Unix ends its
//! lines with LF alone; both are line endings here and become CRLF. A carriage return that no
//! LF follows is neither: it is refused with the line it is on, because whatever the tool did
//! with it (send it bare, drop it, end the line there) would be a guess about the message.
//! Pure: bytes in, counts and bytes out, in bounded memory whatever the file's size.

use memchr::{memchr, memchr_iter, memchr2_iter};

/// How many of the first lines a [`MessageStats`] keeps, for the transcript's summary.
pub const SUMMARY_LINES: usize = 3;

/// How much of each of those lines is kept.
pub const SUMMARY_WIDTH: usize = 72;

/// The longest line SMTP allows, without its CRLF (RFC 5321 §4.5.3.1.6).
pub const MAX_TEXT_LINE: usize = 998;

/// What a message file holds, as the tool would send it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageStats {
    /// The file's size.
    pub bytes: u64,
    /// The size with every line ended by CRLF (what SIZE declares for DATA and for BDAT of
    /// the file with its line endings made CRLF).
    pub wire_bytes: u64,
    /// How many lines (a last line without a line ending counts).
    pub lines: u64,
    /// Lines ended by LF alone.
    pub lf_endings: u64,
    /// Whether the last line has no line ending.
    pub unterminated: bool,
    /// The first line (1-based) holding a CR that no LF follows.
    pub bare_cr: Option<u64>,
    /// The first line holding a NUL byte.
    pub nul: Option<u64>,
    /// The first line longer than [`MAX_TEXT_LINE`] octets, and its length.
    pub long_line: Option<(u64, u64)>,
    /// The longest line, in octets without its ending.
    pub longest: u64,
    /// Whether any byte is beyond ASCII (8BITMIME or BINARYMIME territory).
    pub eight_bit: bool,
    /// Whether the header section (up to the first empty line) holds bytes beyond ASCII:
    /// UTF-8 headers, which need SMTPUTF8 (RFC 6532).
    pub header_eight_bit: bool,
    /// The first [`SUMMARY_LINES`] lines, each cut at [`SUMMARY_WIDTH`] bytes.
    pub first_lines: Vec<Vec<u8>>,
}

/// `1234567` as `1,234,567`, for the sizes and line counts a summary of a message gives.
pub fn group_digits(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Reads a file's bytes in pieces and counts what [`MessageStats`] says.
#[derive(Debug, Clone, Default)]
pub struct Scanner {
    stats: MessageStats,
    /// Length of the line being read so far (without its ending).
    line_len: u64,
    /// The last byte of the previous piece was a CR, not yet known to be followed by LF.
    pending_cr: bool,
    /// Still in the header section.
    in_header: bool,
    /// The start of the current line, for the summary.
    summary: Vec<u8>,
}

impl Scanner {
    /// A scanner at the start of a file.
    pub fn new() -> Self {
        Self {
            in_header: true,
            ..Self::default()
        }
    }

    /// Counts the next piece of the file.
    pub fn feed(&mut self, piece: &[u8]) {
        if piece.is_empty() {
            return;
        }
        self.stats.bytes += piece.len() as u64;
        if !self.stats.eight_bit && !piece.is_ascii() {
            self.stats.eight_bit = true;
        }
        if self.stats.nul.is_none()
            && let Some(at) = memchr(0, piece)
        {
            self.stats.nul = Some(self.line_at(piece, at));
        }
        let mut start = 0;
        if std::mem::take(&mut self.pending_cr) {
            if piece[0] == b'\n' {
                self.end_line(&[], false);
                start = 1;
            } else {
                self.note_bare_cr();
                self.line_len += 1;
                self.keep_summary(b"\r");
            }
        }
        let mut line_start = start;
        let mut rest_end = piece.len();
        for at in memchr2_iter(b'\r', b'\n', &piece[start..]).map(|i| i + start) {
            if piece[at] == b'\n' {
                let crlf = at > line_start && piece[at - 1] == b'\r';
                let end = if crlf { at - 1 } else { at };
                self.line_len += (end - line_start) as u64;
                self.end_line(&piece[line_start..end], !crlf);
                line_start = at + 1;
            } else if at + 1 == piece.len() {
                // Whether an LF follows is for the next piece to say.
                self.pending_cr = true;
                rest_end = at;
            } else if piece[at + 1] != b'\n' {
                self.note_bare_cr();
            }
        }
        let rest = &piece[line_start..rest_end.max(line_start)];
        self.line_len += rest.len() as u64;
        self.keep_summary(rest);
        if self.in_header && !rest.is_ascii() {
            self.stats.header_eight_bit = true;
        }
    }

    /// The counts, once the whole file has been fed.
    pub fn finish(mut self) -> MessageStats {
        if std::mem::take(&mut self.pending_cr) {
            self.note_bare_cr();
            self.line_len += 1;
            self.keep_summary(b"\r");
        }
        if self.line_len > 0 {
            self.stats.unterminated = true;
            self.finish_line();
        }
        self.stats
    }

    /// The 1-based line of the byte at `at` of `piece`.
    fn line_at(&self, piece: &[u8], at: usize) -> u64 {
        self.stats.lines + 1 + memchr_iter(b'\n', &piece[..at]).count() as u64
    }

    fn note_bare_cr(&mut self) {
        if self.stats.bare_cr.is_none() {
            self.stats.bare_cr = Some(self.stats.lines + 1);
        }
    }

    fn keep_summary(&mut self, text: &[u8]) {
        if self.stats.first_lines.len() < SUMMARY_LINES && self.summary.len() < SUMMARY_WIDTH {
            let room = SUMMARY_WIDTH - self.summary.len();
            self.summary
                .extend_from_slice(&text[..text.len().min(room)]);
        }
    }

    /// The line ended; `text` is its last part (the earlier parts came in earlier pieces).
    fn end_line(&mut self, text: &[u8], lf_alone: bool) {
        self.keep_summary(text);
        if self.in_header && !text.is_ascii() {
            self.stats.header_eight_bit = true;
        }
        if lf_alone {
            self.stats.lf_endings += 1;
        }
        // A line with no text ends the header section (RFC 5322 §2.1).
        if self.line_len == 0 {
            self.in_header = false;
        }
        self.finish_line();
    }

    fn finish_line(&mut self) {
        self.stats.lines += 1;
        self.stats.wire_bytes += self.line_len + 2;
        self.stats.longest = self.stats.longest.max(self.line_len);
        if self.line_len > MAX_TEXT_LINE as u64 && self.stats.long_line.is_none() {
            self.stats.long_line = Some((self.stats.lines, self.line_len));
        }
        if self.stats.first_lines.len() < SUMMARY_LINES {
            self.stats
                .first_lines
                .push(std::mem::take(&mut self.summary));
        }
        self.summary.clear();
        self.line_len = 0;
    }
}

/// A CR that no LF follows, met while making line endings CRLF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a carriage return (CR) that no line feed (LF) follows")]
pub struct BareCr;

/// Makes the line endings of a file CRLF, in pieces of any size: LF alone becomes CRLF,
/// CRLF stays, a CR that no LF follows is refused.
#[derive(Debug, Clone, Default)]
pub struct Normaliser {
    /// The previous piece ended with a CR whose LF has not been seen yet.
    pending_cr: bool,
    /// The last byte written ended a line (or nothing was written yet).
    at_line_start: bool,
    /// Anything was written.
    wrote: bool,
}

impl Normaliser {
    /// A normaliser at the start of a file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `piece` to `out` with its line endings made CRLF.
    ///
    /// # Errors
    /// [`BareCr`] for a CR that no LF follows; `out` then holds the bytes before it.
    pub fn push(&mut self, piece: &[u8], out: &mut Vec<u8>) -> Result<(), BareCr> {
        if piece.is_empty() {
            return Ok(());
        }
        self.wrote = true;
        let mut start = 0;
        if std::mem::take(&mut self.pending_cr) {
            if piece[0] != b'\n' {
                return Err(BareCr);
            }
            out.extend_from_slice(b"\r\n");
            start = 1;
        }
        let mut copied = start;
        for at in memchr2_iter(b'\r', b'\n', &piece[start..]).map(|i| i + start) {
            if piece[at] == b'\n' {
                if at > start && piece[at - 1] == b'\r' {
                    continue;
                }
                out.extend_from_slice(&piece[copied..at]);
                out.extend_from_slice(b"\r\n");
                copied = at + 1;
            } else if at + 1 == piece.len() {
                out.extend_from_slice(&piece[copied..at]);
                copied = piece.len();
                self.pending_cr = true;
            } else if piece[at + 1] != b'\n' {
                out.extend_from_slice(&piece[copied..at]);
                return Err(BareCr);
            }
        }
        out.extend_from_slice(&piece[copied..]);
        self.at_line_start = self.pending_cr || piece.last() == Some(&b'\n');
        Ok(())
    }

    /// Ends the file: a last line without a line ending gets CRLF.
    ///
    /// # Errors
    /// [`BareCr`] when the file ends with a CR.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), BareCr> {
        if std::mem::take(&mut self.pending_cr) {
            return Err(BareCr);
        }
        if self.wrote && !self.at_line_start {
            out.extend_from_slice(b"\r\n");
            self.at_line_start = true;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every way of cutting `bytes` in two and three pieces scans the same.
    pub(crate) fn scan_cut_every_way(bytes: &[u8]) -> MessageStats {
        let mut whole = Scanner::new();
        whole.feed(bytes);
        let expected = whole.finish();
        for a in 0..=bytes.len() {
            for b in a..=bytes.len() {
                let mut scanner = Scanner::new();
                scanner.feed(&bytes[..a]);
                scanner.feed(&bytes[a..b]);
                scanner.feed(&bytes[b..]);
                assert_eq!(scanner.finish(), expected, "cut at {a} and {b}");
            }
        }
        expected
    }

    fn normalise_cut_every_way(bytes: &[u8]) -> Result<Vec<u8>, BareCr> {
        let run = |pieces: &[&[u8]]| {
            let mut normaliser = Normaliser::new();
            let mut out = Vec::new();
            for piece in pieces {
                normaliser.push(piece, &mut out)?;
            }
            normaliser.finish(&mut out)?;
            Ok(out)
        };
        let expected = run(&[bytes]);
        for a in 0..=bytes.len() {
            assert_eq!(run(&[&bytes[..a], &bytes[a..]]), expected, "cut at {a}");
        }
        expected
    }

    #[test]
    fn counts_lines_sizes_and_endings() {
        let stats = scan_cut_every_way(b"Subject: hi\r\nFrom: a@b\n\r\nbody\n.dot\r\nlast");
        assert_eq!(stats.lines, 6);
        assert_eq!(stats.lf_endings, 2);
        assert!(stats.unterminated);
        assert_eq!(stats.bytes, 40);
        // Every line with CRLF: 11+9+0+4+4+4 characters and six CRLFs.
        assert_eq!(stats.wire_bytes, 32 + 12);
        assert_eq!(stats.bare_cr, None);
        assert!(!stats.eight_bit);
        assert_eq!(
            stats.first_lines,
            [b"Subject: hi".to_vec(), b"From: a@b".to_vec(), Vec::new()]
        );
        assert_eq!(stats.longest, 11);
    }

    #[test]
    fn a_bare_cr_is_found_on_its_line() {
        assert_eq!(scan_cut_every_way(b"a\nb\rc\nd\n").bare_cr, Some(2));
        assert_eq!(scan_cut_every_way(b"a\r\nb\r").bare_cr, Some(2));
        assert_eq!(scan_cut_every_way(b"\r\r\n").bare_cr, Some(1));
        assert_eq!(scan_cut_every_way(b"a\r\n\r\n").bare_cr, None);
    }

    #[test]
    fn eight_bit_headers_nul_and_long_lines() {
        let stats = scan_cut_every_way("Subject: caf\u{e9}\n\nbody\n".as_bytes());
        assert!(stats.eight_bit && stats.header_eight_bit);
        let stats = scan_cut_every_way("Subject: x\n\ncaf\u{e9}\n".as_bytes());
        assert!(stats.eight_bit && !stats.header_eight_bit);
        let stats = scan_cut_every_way(b"a\nb\0c\n");
        assert_eq!(stats.nul, Some(2));
        let mut long = b"x\n".to_vec();
        long.extend(std::iter::repeat_n(b'y', 1000));
        long.extend_from_slice(b"\r\n");
        let mut scanner = Scanner::new();
        for piece in long.chunks(7) {
            scanner.feed(piece);
        }
        let stats = scanner.finish();
        assert_eq!(stats.long_line, Some((2, 1000)));
        assert_eq!(stats.first_lines[1].len(), SUMMARY_WIDTH);
    }

    #[test]
    fn digits_are_grouped_in_threes() {
        assert_eq!(group_digits(1_234_567), "1,234,567");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(0), "0");
    }

    #[test]
    fn empty_files_have_no_lines() {
        let stats = scan_cut_every_way(b"");
        assert_eq!((stats.lines, stats.wire_bytes), (0, 0));
        assert_eq!(normalise_cut_every_way(b""), Ok(Vec::new()));
    }

    #[test]
    fn line_endings_become_crlf_however_the_file_is_cut() {
        assert_eq!(
            normalise_cut_every_way(b"a\nb\r\n\nc"),
            Ok(b"a\r\nb\r\n\r\nc\r\n".to_vec())
        );
        assert_eq!(normalise_cut_every_way(b"a\r\n"), Ok(b"a\r\n".to_vec()));
        assert_eq!(normalise_cut_every_way(b"a\rb\n"), Err(BareCr));
        assert_eq!(normalise_cut_every_way(b"a\r"), Err(BareCr));
        let stats = scan_cut_every_way(b"a\nb\r\n\nc");
        assert_eq!(
            stats.wire_bytes,
            normalise_cut_every_way(b"a\nb\r\n\nc")
                .map(|v| v.len() as u64)
                .unwrap_or(0)
        );
    }
}
