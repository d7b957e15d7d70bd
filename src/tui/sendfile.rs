//! `:send-file FILE` in the message editor: the message read from a file and streamed after
//! the 354, in bounded memory whatever the file's size.
//!
//! The file is read twice. The first pass only counts ([`Scanner`]): its size, its lines,
//! their endings, its first lines for the transcript's summary, and what would make it unfit
//! to send. Nothing is sent unless the whole file is fit, so a file refused is a file of which
//! no byte left. The second pass sends it line by line ([`Lines`]): every line ending made
//! CRLF (a file written on Unix ends its lines with LF alone, RFC 5321 §2.3.8 wants CRLF), every
//! line dot-stuffed by the session, and the final dot. A carriage return that no line feed
//! follows is refused, never guessed about: sent bare it is what SMTP smuggling is made of.
//!
//! The transcript shows one summary of the body (size, lines, endings, first lines), not
//! every line, and warnings for what a server may refuse (lines over 998 octets, NUL bytes,
//! 8-bit bytes without 8BITMIME, a message over the advertised SIZE).

use std::path::Path;

use tokio::io::AsyncReadExt;

use memchr::memchr2_iter;

use crate::proto::escape::{escape_bytes, escape_str};
use crate::proto::message::{MessageStats, Scanner, group_digits};
use crate::proto::reply::Reply;
use crate::session::{Phase, Session, SessionError, Step};
use crate::transcript::{ErrorKind, EventKind};

/// How much of the file is read at a time.
const PIECE: usize = 64 * 1024;
/// The longest line sent; a longer one (a binary file, `/dev/zero`) refuses the file.
pub const MAX_LINE: usize = 1024 * 1024;
/// Why a line could not be taken from the file while sending: it changed since it was
/// checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    /// A CR that no LF follows.
    BareCr,
    /// A line longer than [`MAX_LINE`].
    TooLong,
}

/// Cuts a file's bytes, in pieces of any size, into lines without their endings (CRLF or LF),
/// holding at most one line at a time.
#[derive(Debug, Clone, Default)]
pub struct Lines {
    carry: Vec<u8>,
    pending_cr: bool,
}

impl Lines {
    /// Gives every line completed by `piece` to `line`, in order.
    ///
    /// # Errors
    /// [`Changed`] for a bare CR or a line longer than [`MAX_LINE`]; `line`'s own error.
    pub fn feed<E>(
        &mut self,
        piece: &[u8],
        mut line: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<Result<(), E>, Changed> {
        if piece.is_empty() {
            return Ok(Ok(()));
        }
        let mut start = 0;
        if std::mem::take(&mut self.pending_cr) {
            if piece.first() != Some(&b'\n') {
                return Err(Changed::BareCr);
            }
            start = 1;
            if let Err(e) = line(&std::mem::take(&mut self.carry)) {
                return Ok(Err(e));
            }
        }
        let mut line_start = start;
        for at in memchr2_iter(b'\r', b'\n', &piece[start..]).map(|i| i + start) {
            if piece[at] == b'\n' {
                let end = if at > line_start && piece[at - 1] == b'\r' {
                    at - 1
                } else {
                    at
                };
                let sent = if self.carry.is_empty() {
                    line(&piece[line_start..end])
                } else {
                    self.carry.extend_from_slice(&piece[line_start..end]);
                    let whole = std::mem::take(&mut self.carry);
                    line(&whole)
                };
                if let Err(e) = sent {
                    return Ok(Err(e));
                }
                line_start = at + 1;
            } else if at + 1 == piece.len() {
                self.keep(&piece[line_start..at])?;
                self.pending_cr = true;
                return Ok(Ok(()));
            } else if piece[at + 1] != b'\n' {
                return Err(Changed::BareCr);
            }
        }
        self.keep(&piece[line_start..])?;
        Ok(Ok(()))
    }

    /// The last line, when the file does not end with a line ending.
    ///
    /// # Errors
    /// [`Changed::BareCr`] when the file ends with a CR.
    pub fn finish(self) -> Result<Option<Vec<u8>>, Changed> {
        if self.pending_cr {
            return Err(Changed::BareCr);
        }
        Ok((!self.carry.is_empty()).then_some(self.carry))
    }

    fn keep(&mut self, bytes: &[u8]) -> Result<(), Changed> {
        if self.carry.len() + bytes.len() > MAX_LINE {
            return Err(Changed::TooLong);
        }
        self.carry.extend_from_slice(bytes);
        Ok(())
    }
}

/// How a `:send-file` ended.
#[derive(Debug)]
pub enum Outcome {
    /// The message went, and the server answered its final dot (the last reply, under LMTP).
    Sent(Reply),
    /// Nothing was sent (the file could not be read, or is unfit to send); why, in words.
    Refused(String),
}

/// The transcript's summary of the file: size, lines, endings, first lines.
pub fn summary(shown: &str, stats: &MessageStats) -> String {
    let mut how = if stats.lf_endings > 0 {
        format!(
            "every line ending sent as CRLF; {} of them LF alone in the file",
            group_digits(stats.lf_endings)
        )
    } else {
        "line endings CRLF".to_owned()
    };
    if stats.unterminated {
        how.push_str("; a line ending added after the last line");
    }
    let first = if stats.first_lines.is_empty() {
        "the file is empty".to_owned()
    } else {
        let lines: Vec<String> = stats
            .first_lines
            .iter()
            .map(|line| format!("\"{}\"", escape_bytes(line)))
            .collect();
        format!("first lines: {}", lines.join(", "))
    };
    format!(
        "message from {}: {} bytes, {} lines ({how}); {first}",
        escape_str(shown),
        group_digits(stats.wire_bytes),
        group_digits(stats.lines)
    )
}

/// Why a file checked as `stats` is not sent, if so.
pub fn unfit(stats: &MessageStats) -> Option<String> {
    if let Some(line) = stats.bare_cr {
        return Some(format!(
            "line {line} holds a carriage return (CR) that no line feed (LF) follows: SMTP \
             has no place for it (RFC 5321 §2.3.8), and a bare CR or LF in a message is what \
             SMTP smuggling is made of; fix the file"
        ));
    }
    if stats.longest > MAX_LINE as u64 {
        return Some(format!(
            "a line is {} bytes long: not a mail message (SMTP allows 998 octets a line; \
             binary content needs base64 in MIME)",
            group_digits(stats.longest)
        ));
    }
    None
}

/// The warnings about a fit file, for what a server may refuse.
fn warnings(session: &Session, stats: &MessageStats) -> Vec<String> {
    let mut warnings = Vec::new();
    if let Some((line, length)) = stats.long_line {
        warnings.push(format!(
            "line {line} is {} octets long; SMTP allows 998 (RFC 5321 §4.5.3.1.6): servers \
             may refuse the message or break the line",
            group_digits(length)
        ));
    }
    if let Some(line) = stats.nul {
        warnings.push(format!(
            "line {line} holds a NUL byte, which mail servers may refuse or drop"
        ));
    }
    let capabilities = session.capabilities();
    if stats.eight_bit && !capabilities.is_some_and(|c| c.has("8BITMIME")) {
        warnings.push(
            "the file holds bytes beyond ASCII and the server did not advertise 8BITMIME \
             (RFC 6152): it may refuse or mangle them"
                .to_owned(),
        );
    }
    let limit = capabilities
        .and_then(|c| c.extensions.iter().find(|e| e.keyword == "SIZE"))
        .and_then(|size| size.params.first())
        .and_then(|limit| limit.parse::<u64>().ok())
        .filter(|&limit| limit > 0);
    if let Some(limit) = limit
        && stats.wire_bytes > limit
    {
        warnings.push(format!(
            "the message ({} bytes) is larger than the {} bytes the server's SIZE allows: \
             expect 552",
            group_digits(stats.wire_bytes),
            group_digits(limit)
        ));
    }
    warnings
}

/// Reads the whole file once and counts it.
async fn scan(path: &Path) -> std::io::Result<MessageStats> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut scanner = Scanner::new();
    let mut buffer = vec![0u8; PIECE];
    loop {
        let n = file.read(&mut buffer).await?;
        if n == 0 {
            return Ok(scanner.finish());
        }
        scanner.feed(&buffer[..n]);
    }
}

/// Sends the message in `path` after a 354, as the module documentation says.
///
/// # Errors
/// The session's errors; a file that changed while it was sent, or could no longer be read,
/// abandons the message: the connection is closed without the final dot (the server then
/// discards what it received), and [`SessionError::Ended`] is returned.
pub async fn send(
    session: &mut Session,
    path: &Path,
    shown: &str,
) -> Result<Outcome, SessionError> {
    if session.phase() != Phase::Message {
        return Err(SessionError::NoMessage);
    }
    let refuse = |session: &mut Session, why: String| {
        session.record(EventKind::Warning(format!(
            "not sent: {}: {why}; nothing of it was sent, the message is still open",
            escape_str(shown)
        )));
        Ok(Outcome::Refused(why))
    };
    let stats = match scan(path).await {
        Ok(stats) => stats,
        Err(error) => return refuse(session, format!("cannot read it: {error}")),
    };
    if let Some(why) = unfit(&stats) {
        return refuse(session, why);
    }
    session.record(EventKind::Note(summary(shown, &stats)));
    for warning in warnings(session, &stats) {
        session.record(EventKind::Warning(warning));
    }
    match stream(session, path, stats.bytes).await {
        Ok(Ok(())) => {}
        Ok(Err(why)) => {
            session.record(EventKind::Error {
                kind: ErrorKind::Scenario,
                text: format!(
                    "the message from {} was abandoned: {why}; the connection was closed \
                     without the final dot, so the server discards what it received",
                    escape_str(shown)
                ),
            });
            session.close().await;
            return Err(SessionError::Ended);
        }
        Err(error) => return Err(error),
    }
    match session
        .send_line(".", crate::guard::OneTimeOverride::None)
        .await?
    {
        Step::Reply(reply) => Ok(Outcome::Sent(reply)),
        Step::Replies(mut replies) => replies.pop().map(Outcome::Sent).ok_or(SessionError::Ended),
        Step::Queued => Err(SessionError::Ended),
    }
}

/// The second pass: every line of the file to the session. `Ok(Err(why))` when the file is
/// no longer what was checked.
async fn stream(
    session: &mut Session,
    path: &Path,
    checked: u64,
) -> Result<Result<(), String>, SessionError> {
    let changed = |what: Changed| match what {
        Changed::BareCr => "the file changed while it was sent (a bare CR appeared)".to_owned(),
        Changed::TooLong => "the file changed while it was sent (a line grew too long)".to_owned(),
    };
    let mut file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(error) => return Ok(Err(format!("the file could not be read again: {error}"))),
    };
    let mut lines = Lines::default();
    let mut buffer = vec![0u8; PIECE];
    let mut read: u64 = 0;
    // A piece's lines are collected first, then sent: the session is async, the splitter not.
    let mut pending: Vec<Vec<u8>> = Vec::new();
    loop {
        let n = match file.read(&mut buffer).await {
            Ok(n) => n,
            Err(error) => return Ok(Err(format!("the file could not be read: {error}"))),
        };
        if n == 0 {
            break;
        }
        read += n as u64;
        let fed = lines.feed(&buffer[..n], |line| {
            pending.push(line.to_vec());
            Ok::<(), ()>(())
        });
        if let Err(what) = fed {
            return Ok(Err(changed(what)));
        }
        for line in pending.drain(..) {
            session.message_data(&line).await?;
        }
    }
    match lines.finish() {
        Ok(Some(last)) => session.message_data(&last).await?,
        Ok(None) => {}
        Err(what) => return Ok(Err(changed(what))),
    }
    if read != checked {
        session.record(EventKind::Warning(format!(
            "the file changed while it was sent: {} bytes were read, {} when it was checked",
            group_digits(read),
            group_digits(checked)
        )));
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::message::tests::scan_cut_every_way;

    fn lines_cut_every_way(bytes: &[u8]) -> Result<Vec<Vec<u8>>, Changed> {
        let run = |pieces: &[&[u8]]| {
            let mut lines = Lines::default();
            let mut out = Vec::new();
            for piece in pieces {
                let _ = lines.feed(piece, |line| {
                    out.push(line.to_vec());
                    Ok::<(), ()>(())
                })?;
            }
            if let Some(last) = lines.finish()? {
                out.push(last);
            }
            Ok(out)
        };
        let expected = run(&[bytes]);
        for a in 0..=bytes.len() {
            for b in a..=bytes.len() {
                assert_eq!(
                    run(&[&bytes[..a], &bytes[a..b], &bytes[b..]]),
                    expected,
                    "cut at {a} and {b}"
                );
            }
        }
        expected
    }

    #[test]
    fn counts_lines_sizes_and_endings_however_read() {
        let stats = scan_cut_every_way(b"Subject: hi\r\nFrom: a@b\n\r\nbody\n.dot\r\nlast");
        assert_eq!(stats.lines, 6);
        assert_eq!(stats.lf_endings, 2);
        assert!(stats.unterminated);
        assert_eq!(stats.bytes, 40);
        assert_eq!(stats.wire_bytes, 32 + 12);
        assert_eq!(stats.bare_cr, None);
        assert_eq!(
            stats.first_lines,
            [b"Subject: hi".to_vec(), b"From: a@b".to_vec(), Vec::new()]
        );
        assert_eq!(unfit(&stats), None);
        let bare = scan_cut_every_way(b"one\r\ntwo\rthree\r\n");
        assert_eq!(bare.bare_cr, Some(2));
        assert!(unfit(&bare).is_some_and(|why| why.contains("line 2")));
        let ends_with_cr = scan_cut_every_way(b"one\r");
        assert_eq!(ends_with_cr.bare_cr, Some(1));
        let odd = scan_cut_every_way(b"a\0b\n\xc3\xa9\n");
        assert_eq!((odd.nul, odd.eight_bit), (Some(1), true));
        let empty = scan_cut_every_way(b"");
        assert_eq!((empty.lines, empty.wire_bytes), (0, 0));
    }

    #[test]
    fn lines_come_out_without_their_endings_however_read() {
        assert_eq!(
            lines_cut_every_way(b"Subject: hi\r\nFrom: a@b\n\r\n.dot\r\nlast"),
            Ok(vec![
                b"Subject: hi".to_vec(),
                b"From: a@b".to_vec(),
                Vec::new(),
                b".dot".to_vec(),
                b"last".to_vec(),
            ])
        );
        assert_eq!(lines_cut_every_way(b"a\rb\n"), Err(Changed::BareCr));
        assert_eq!(lines_cut_every_way(b"a\r"), Err(Changed::BareCr));
        assert_eq!(lines_cut_every_way(b""), Ok(Vec::new()));
        let mut lines = Lines::default();
        let long = vec![b'x'; MAX_LINE + 1];
        assert_eq!(
            lines.feed(&long, |_| Ok::<(), ()>(())),
            Err(Changed::TooLong)
        );
    }

    #[test]
    fn the_summary_says_size_lines_endings_and_first_lines() {
        let mut scanner = Scanner::new();
        scanner.feed(b"Subject: \x1b[31mhi\nFrom: a@b\n\nbody\n");
        let stats = scanner.finish();
        assert_eq!(
            summary("mail.eml", &stats),
            "message from mail.eml: 37 bytes, 4 lines (every line ending sent as CRLF; 4 of \
             them LF alone in the file); first lines: \"Subject: \\x1b[31mhi\", \"From: a@b\", \"\""
        );
    }
}
