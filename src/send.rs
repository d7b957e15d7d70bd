//! `smtptui send`: a one-line message, built as a scenario that `smtptui run` replays.
//!
//! A swaks-style command line (`--from`, `--to`, `--header`, `--body`, `--attach`, `--auth`)
//! becomes a [`Plan`]; [`Plan::scenario_text`] writes the `.smtp` scenario for it in the
//! notation of [`crate::scenario`], and that text is what the runner parses and runs, with the
//! same guard, verdicts and exit codes as any scenario file. `--print-scenario` prints the very
//! same text, so a one-liner becomes a file to keep.
//!
//! The message is built here (RFC 5322 headers with `Date` and `Message-ID`, a MIME
//! `multipart/mixed` for attachments, base64 at 76 columns, a boundary no part contains) and
//! written into the scenario as `C:` lines after `DATA`. Everything in this module is pure:
//! the clock, the random bytes and the attachment readers come from the caller.

use std::fmt::Write as _;
use std::io::Read;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::scenario::MAX_SCENARIO_BYTES;

/// The longest line RFC 5321 §4.5.3.1.6 lets a message carry, without its CRLF.
const MAX_TEXT_LINE: usize = 998;

/// A reason the command line cannot become a message, naming the option and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SendError(pub String);

impl From<SendError> for String {
    fn from(error: SendError) -> Self {
        error.0
    }
}

fn error(message: impl Into<String>) -> SendError {
    SendError(message.into())
}

/// How the message goes after DATA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Lines built here (headers, blank line, body), written into the scenario as `C:` lines.
    Lines(Vec<String>),
    /// A whole message from a file (`--data FILE`), sent by a `FILE` line: streamed, line
    /// endings made CRLF, dot-stuffed. The path is written as given (make it absolute for a
    /// scenario meant to be replayed from elsewhere).
    File(String),
}

/// Everything a `send` session does, ready to be written as a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The EHLO name.
    pub ehlo: String,
    /// Whether the scenario sends STARTTLS (required: a refusal stops the run).
    pub starttls: bool,
    /// The AUTH mechanism to run (a bare `AUTH <MECH>` the runner carries out with `--user`
    /// and the password from its usual sources), if any.
    pub auth: Option<String>,
    /// The envelope sender; empty for the null sender `<>`.
    pub from: String,
    /// The envelope recipients, in order (To, Cc and Bcc).
    pub recipients: Vec<String>,
    /// Whether MAIL, RCPT and DATA go as one pipelined group (RFC 2920).
    pub pipeline: bool,
    /// The message.
    pub content: Content,
    /// Comment lines put at the top of the scenario (without `#`): how it was made and how to
    /// replay it.
    pub comments: Vec<String>,
}

impl Plan {
    /// The scenario, in the notation of [`crate::scenario`]: greeting, EHLO, STARTTLS and
    /// EHLO again when asked, AUTH, the envelope (pipelined when asked), the message, QUIT.
    /// Every reply is checked, so a refusal fails on its own line.
    pub fn scenario_text(&self) -> String {
        let mut out = String::new();
        for comment in &self.comments {
            let _ = writeln!(out, "# {comment}");
        }
        let ehlo = &self.ehlo;
        out.push_str("S: 220\n");
        if self.starttls {
            let _ = write!(
                out,
                "C: EHLO {ehlo}\nS: 250 STARTTLS\nC: STARTTLS\nS: 220\n"
            );
        }
        let _ = writeln!(out, "C: EHLO {ehlo}");
        match &self.auth {
            Some(mechanism) => {
                let _ = write!(out, "S: 250 AUTH\nC: AUTH {mechanism}\nS: 235\n");
            }
            None => out.push_str("S: 250\n"),
        }
        let mail = format!("MAIL FROM:<{}>", self.from);
        let rcpts: Vec<String> = self
            .recipients
            .iter()
            .map(|to| format!("RCPT TO:<{to}>"))
            .collect();
        if self.pipeline {
            out.push_str("PIPELINE\n");
            let _ = writeln!(out, "C: {mail}");
            for rcpt in &rcpts {
                let _ = writeln!(out, "C: {rcpt}");
            }
            out.push_str("C: DATA\nS: 250\n");
            for _ in &rcpts {
                out.push_str("S: 25x\n");
            }
            out.push_str("S: 354\n");
        } else {
            let _ = write!(out, "C: {mail}\nS: 250\n");
            for rcpt in &rcpts {
                let _ = write!(out, "C: {rcpt}\nS: 25x\n");
            }
            out.push_str("C: DATA\nS: 354\n");
        }
        match &self.content {
            Content::Lines(lines) => {
                for line in lines {
                    if line.is_empty() {
                        out.push_str("C:\n");
                    } else {
                        let _ = writeln!(out, "C: {line}");
                    }
                }
            }
            Content::File(path) => {
                let _ = writeln!(out, "FILE {path}");
            }
        }
        out.push_str("C: .\nS: 250\nC: QUIT\nS: 221\n");
        out
    }
}

/// Checks an address for the envelope: no angle brackets inside, no spaces or control
/// characters (they would change the command line). `<>` or an empty string is the null
/// sender, allowed only where `null_ok`. Surrounding `<...>` are removed.
///
/// # Errors
/// [`SendError`] naming the option and what is wrong.
pub fn envelope_address(option: &str, address: &str, null_ok: bool) -> Result<String, SendError> {
    let trimmed = address.trim();
    let inner = trimmed
        .strip_prefix('<')
        .and_then(|a| a.strip_suffix('>'))
        .unwrap_or(trimmed);
    if inner.is_empty() {
        return if null_ok {
            Ok(String::new())
        } else {
            Err(error(format!(
                "{option} {address:?}: give a mail address (the null address <> is only a sender)"
            )))
        };
    }
    if let Some(c) = inner
        .chars()
        .find(|&c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>'))
    {
        return Err(error(format!(
            "{option} {:?}: a mail address cannot hold {:?}; give it as local@domain",
            crate::proto::escape::escape_str(address),
            crate::proto::escape::escape_str(&c.to_string()),
        )));
    }
    Ok(inner.to_owned())
}

/// swaks's spellings of `smtptui send` options, rewritten into smtptui's before the command
/// line is parsed (`args` are the words after `send`): `--h-NAME VALUE` (or `--h-NAME=VALUE`)
/// is `--header 'NAME: VALUE'`; `-tls` and a bare `--tls` are `--tls starttls`; `-tlsc` is
/// `--tls-on-connect`; `-au`, `--auth-user` are `--user`; `-ah` is `--add-header`;
/// `--tls-ca-path` is `--ca-file`; `--tls-sni` is `--servername`. A password option (`-ap`,
/// `--auth-password`) is refused with the way smtptui takes one. Everything after `--` is left
/// alone.
///
/// # Errors
/// A message for a password on the command line, or a `--h-NAME` without its value.
pub fn swaks_spellings(args: Vec<std::ffi::OsString>) -> Result<Vec<std::ffi::OsString>, String> {
    use std::ffi::OsString;
    let mut out: Vec<OsString> = Vec::with_capacity(args.len());
    let mut words = args.into_iter().peekable();
    while let Some(word) = words.next() {
        let Some(text) = word.to_str().map(str::to_owned) else {
            out.push(word);
            continue;
        };
        let renamed = match text.as_str() {
            "--" => {
                out.push(word);
                out.extend(words.by_ref());
                break;
            }
            "-ap" | "--auth-password" | "--ap" => {
                return Err(format!(
                    "{text}: smtptui takes no password on the command line (other users of this \
                     machine see it, and it stays in your shell history): give --password-file \
                     PATH or ${}",
                    crate::secret::PASSWORD_ENV
                ));
            }
            "-tls" => Some("--tls"),
            "-tlsc" => Some("--tls-on-connect"),
            "-au" | "--auth-user" => Some("--user"),
            "-ah" => Some("--add-header"),
            "--tls-ca-path" => Some("--ca-file"),
            "--tls-sni" => Some("--servername"),
            _ => None,
        };
        if let Some(name) = renamed {
            out.push(name.into());
            if name == "--tls" {
                let has_value = words.peek().and_then(|w| w.to_str()).is_some_and(|w| {
                    matches!(
                        w.to_ascii_lowercase().as_str(),
                        "auto" | "starttls" | "implicit"
                    )
                });
                if !has_value {
                    out.push("starttls".into());
                }
            }
            continue;
        }
        if text == "--tls" {
            out.push(word);
            // A value of --tls is a word; a host, an address or another option is not one
            // (swaks's --tls takes none).
            let has_value = words
                .peek()
                .and_then(|w| w.to_str())
                .is_some_and(|w| !w.starts_with('-') && !w.contains(['.', ':', '@', '/']));
            if !has_value {
                out.push("starttls".into());
            }
            continue;
        }
        if let Some(rest) = text.strip_prefix("--h-") {
            let (name, value) = match rest.split_once('=') {
                Some((name, value)) => (name.to_owned(), value.to_owned()),
                None => {
                    let value =
                        words
                            .next()
                            .and_then(|w| w.into_string().ok())
                            .ok_or_else(|| {
                                format!("{text}: give the header's value after it ({text} VALUE)")
                            })?;
                    (rest.to_owned(), value)
                }
            };
            out.push("--header".into());
            out.push(format!("{name}: {value}").into());
            continue;
        }
        out.push(word);
    }
    Ok(out)
}

/// Splits a `--to` value on commas, as swaks does (`--to a@x,b@y`).
pub fn split_addresses(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|a| !a.is_empty())
}

/// One header line given by `--header` or `--add-header`: `Name: value`.
///
/// # Errors
/// [`SendError`] when there is no colon, the name is not printable ASCII without spaces
/// (RFC 5322 §2.2), or the value holds a line break or is too long for one line.
pub fn parse_header(option: &str, text: &str) -> Result<(String, String), SendError> {
    let shown = crate::proto::escape::escape_str(text);
    let Some((name, value)) = text.split_once(':') else {
        return Err(error(format!(
            "{option} {shown:?}: write the header as 'Name: value', e.g. {option} 'X-Test: yes'"
        )));
    };
    let name = name.trim();
    if name.is_empty() || !name.bytes().all(|b| (33..=126).contains(&b) && b != b':') {
        return Err(error(format!(
            "{option} {shown:?}: a header name is printable ASCII without spaces (RFC 5322 §2.2)"
        )));
    }
    let value = value.trim();
    if value.contains(['\r', '\n']) {
        return Err(error(format!(
            "{option} {shown:?}: a line break in a header value would start a new header (or \
             the body); give each header with its own {option}"
        )));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(error(format!(
            "{option} {shown:?}: a header value cannot hold control characters"
        )));
    }
    if name.len() + 2 + value.len() > MAX_TEXT_LINE {
        return Err(error(format!(
            "{option} {name}: the header is longer than the {MAX_TEXT_LINE} octets a line may \
             have (RFC 5322 §2.1.1)"
        )));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// An attachment: its name in the message, its type, and where its bytes come from.
pub struct Attachment {
    /// The file name shown in the message (`filename=`), usually the file's own name.
    pub name: String,
    /// The MIME type ([`content_type_for`] of the name unless given).
    pub content_type: String,
    /// The bytes, read once, in pieces.
    pub reader: Box<dyn Read>,
    /// The size in bytes, when known, to refuse a message too large before reading it.
    pub size: Option<u64>,
}

impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachment")
            .field("name", &self.name)
            .field("content_type", &self.content_type)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// The MIME type for a file name, from its extension; `application/octet-stream` when the
/// extension is unknown or missing.
pub fn content_type_for(name: &str) -> &'static str {
    let extension = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "txt" | "text" | "log" => "text/plain",
        "html" | "htm" => "text/html",
        "csv" => "text/csv",
        "md" => "text/markdown",
        "ics" => "text/calendar",
        "css" => "text/css",
        "xml" => "application/xml",
        "json" => "application/json",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        "7z" => "application/x-7z-compressed",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "odt" => "application/vnd.oasis.opendocument.text",
        "pem" | "crt" => "application/x-pem-file",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "ico" => "image/vnd.microsoft.icon",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "ogg" => "audio/ogg",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        _ => "application/octet-stream",
    }
}

/// What the message is built from.
#[derive(Debug)]
pub struct MessageSpec {
    /// The `From:` header value (the envelope sender unless a `--header From:` replaces it);
    /// none for the null sender.
    pub from: Option<String>,
    /// The `To:` recipients.
    pub to: Vec<String>,
    /// The `Cc:` recipients.
    pub cc: Vec<String>,
    /// `--header`: replaces a header of the same name (ignoring case), or is added.
    pub headers: Vec<(String, String)>,
    /// `--add-header`: always added, after every other header.
    pub added: Vec<(String, String)>,
    /// The body, as bytes (any encoding; not UTF-8 or not fit to send as lines means
    /// quoted-printable).
    pub body: Vec<u8>,
    /// The attachments, in order.
    pub attachments: Vec<Attachment>,
    /// The `Date:` header value.
    pub date: String,
    /// The domain of the `Message-ID` (right of the `@`).
    pub id_domain: String,
    /// Random bytes for the `Message-ID` and the MIME boundary.
    pub random: [u8; 16],
}

/// The `Date:` value for a moment, as RFC 5322 §3.3 writes it (`Tue, 1 Dec 2026 10:00:00 +0000`).
pub fn date_header(moment: time::OffsetDateTime) -> String {
    moment
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_else(|_| "Thu, 1 Jan 1970 00:00:00 +0000".to_owned())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// How the body text goes.
enum BodyEncoding {
    /// As it is: ASCII (`7bit`) or UTF-8 (`8bit`), every line fit to send.
    Lines { eight_bit: bool },
    /// Quoted-printable: not UTF-8, control characters, a line over 998 octets, a carriage
    /// return alone, or a line of one dot (which the scenario notation reads as the end).
    QuotedPrintable,
}

fn body_encoding(body: &[u8]) -> BodyEncoding {
    let Ok(text) = std::str::from_utf8(body) else {
        return BodyEncoding::QuotedPrintable;
    };
    let fit = body_lines(text).all(|line| {
        line.len() <= MAX_TEXT_LINE
            && line != "."
            && !line.chars().any(|c| c.is_control() && c != '\t')
            && !line.contains(['\u{2028}', '\u{2029}', '\u{85}'])
    });
    if fit {
        BodyEncoding::Lines {
            eight_bit: !text.is_ascii(),
        }
    } else {
        BodyEncoding::QuotedPrintable
    }
}

/// The lines of a body: split on LF, a CR before it dropped, no empty last line for a final
/// line ending.
fn body_lines(text: &str) -> impl Iterator<Item = &str> {
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    text.split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
}

/// Quoted-printable (RFC 2045 §6.7) of `body`, line by line: each LF or CRLF is a hard line
/// break, lines are cut with soft breaks at 76 columns, and `.` at the start of a line is
/// encoded so no line is a lone dot.
pub fn quoted_printable(body: &[u8]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut input: &[u8] = body;
    if input.ends_with(b"\n") {
        input = &input[..input.len() - 1];
        if input.ends_with(b"\r") {
            input = &input[..input.len() - 1];
        }
    }
    for raw in input.split(|&b| b == b'\n') {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let mut line = String::new();
        for (index, &byte) in raw.iter().enumerate() {
            let last = index + 1 == raw.len();
            let literal = match byte {
                b'=' => false,
                b'.' if line.is_empty() => false,
                b' ' | b'\t' => !last,
                33..=126 => true,
                _ => false,
            };
            let piece = if literal {
                char::from(byte).to_string()
            } else {
                format!("={byte:02X}")
            };
            if line.len() + piece.len() > 75 {
                line.push('=');
                lines.push(std::mem::take(&mut line));
                if piece == "." {
                    line.push_str("=2E");
                    continue;
                }
            }
            line.push_str(&piece);
        }
        lines.push(line);
    }
    lines
}

/// A parameter value for a MIME header: quoted where plain ASCII allows, or RFC 2231's
/// `name*=utf-8''...` form otherwise.
fn mime_parameter(name: &str, value: &str) -> String {
    let plain = value
        .bytes()
        .all(|b| (32..=126).contains(&b) && b != b'"' && b != b'\\');
    if plain {
        format!("{name}=\"{value}\"")
    } else {
        let mut encoded = String::new();
        for byte in value.bytes() {
            if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
                encoded.push(char::from(byte));
            } else {
                let _ = write!(encoded, "%{byte:02X}");
            }
        }
        format!("{name}*=utf-8''{encoded}")
    }
}

/// Room the scenario keeps for everything other than the attachments' base64 lines.
const SCENARIO_RESERVE: u64 = 256 * 1024;

/// The largest message written into a scenario as `C:` lines: beyond it the message goes into
/// a file the scenario names with a `FILE` line, and is streamed from there.
pub const INLINE_LIMIT: u64 = MAX_SCENARIO_BYTES - SCENARIO_RESERVE;

impl MessageSpec {
    /// About how many bytes the message takes in a scenario (base64 of the attachments whose
    /// size is known, each line with its `C: ` and line ending; the body at worst
    /// quoted-printable), to choose between [`build_message`] and [`write_message`] before
    /// reading anything.
    pub fn estimated_size(&self) -> u64 {
        let attachments: u64 = self
            .attachments
            .iter()
            .filter_map(|a| a.size)
            .map(|size| size.div_ceil(3) * 4 * 80 / 76)
            .sum();
        attachments + self.body.len() as u64 * 3
    }
}

/// The message as lines (no line endings), for a scenario: what [`write_message`] writes.
///
/// # Errors
/// [`SendError`] when an attachment cannot be read or a header cannot be written as given,
/// or when the message would make the scenario larger than `smtptui run` reads
/// ([`INLINE_LIMIT`]; [`write_message`] into a file has no such bound).
pub fn build_message(spec: MessageSpec) -> Result<Vec<String>, SendError> {
    if spec.estimated_size() > INLINE_LIMIT {
        return Err(too_large());
    }
    let mut lines = Vec::new();
    let mut total = 0u64;
    write_message(spec, &mut |line: &str| {
        total += line.len() as u64 + 4;
        if total > INLINE_LIMIT {
            return Err(too_large());
        }
        lines.push(line.to_owned());
        Ok(())
    })?;
    Ok(lines)
}

/// Writes the message line by line (without line endings) to `out`: headers, blank line,
/// body, and for attachments a `multipart/mixed` with the body as its first part and each
/// attachment base64-encoded at 76 columns, read in pieces, so memory stays flat whatever
/// their size. The boundary appears in no part.
///
/// # Errors
/// [`SendError`] when an attachment cannot be read, a header cannot be written as given, or
/// `out` fails.
pub fn write_message(
    spec: MessageSpec,
    out: &mut dyn FnMut(&str) -> Result<(), SendError>,
) -> Result<(), SendError> {
    let MessageSpec {
        from,
        to,
        cc,
        headers: replacing,
        added,
        body,
        attachments,
        date,
        id_domain,
        random,
    } = spec;
    let mut headers: Vec<(String, String)> = vec![("Date".into(), date)];
    if let Some(from) = from {
        headers.push(("From".into(), from));
    }
    if !to.is_empty() {
        headers.push(("To".into(), to.join(", ")));
    }
    if !cc.is_empty() {
        headers.push(("Cc".into(), cc.join(", ")));
    }
    headers.push(("Subject".into(), "test message from smtptui".into()));
    headers.push((
        "Message-ID".into(),
        format!("<{}@{id_domain}>", hex(&random[..12])),
    ));
    for (name, value) in replacing {
        match headers
            .iter_mut()
            .find(|(have, _)| have.eq_ignore_ascii_case(&name))
        {
            Some(slot) => *slot = (name, value),
            None => headers.push((name, value)),
        }
    }
    headers.extend(added);

    let encoding = body_encoding(&body);
    let (body_lines_out, transfer, charset): (Vec<String>, &str, bool) = match encoding {
        BodyEncoding::Lines { eight_bit } => {
            let text = String::from_utf8_lossy(&body);
            let lines = body_lines(&text).map(str::to_owned).collect();
            (lines, if eight_bit { "8bit" } else { "7bit" }, eight_bit)
        }
        BodyEncoding::QuotedPrintable => (
            quoted_printable(&body),
            "quoted-printable",
            std::str::from_utf8(&body).is_ok(),
        ),
    };
    let text_type = if charset {
        "text/plain; charset=utf-8"
    } else {
        "text/plain"
    };
    let has_header = |name: &str| headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(name));
    if attachments.is_empty() {
        let needs_mime = transfer != "7bit";
        if needs_mime && has_header("Content-Transfer-Encoding") {
            return Err(error(format!(
                "--header Content-Transfer-Encoding: the body goes {transfer} (it is not plain \
                 ASCII in lines of at most {MAX_TEXT_LINE} octets), and smtptui writes that \
                 header itself; leave it out"
            )));
        }
        for (name, value) in &headers {
            out(&format!("{name}: {value}"))?;
        }
        if !has_header("MIME-Version") && (needs_mime || has_header("Content-Type")) {
            out("MIME-Version: 1.0")?;
        }
        if needs_mime {
            if !has_header("Content-Type") {
                out(&format!("Content-Type: {text_type}"))?;
            }
            out(&format!("Content-Transfer-Encoding: {transfer}"))?;
        }
        out("")?;
        for line in &body_lines_out {
            out(line)?;
        }
        return Ok(());
    }
    if let Some((name, _)) = headers.iter().find(|(name, _)| {
        ["MIME-Version", "Content-Type", "Content-Transfer-Encoding"]
            .iter()
            .any(|mime| name.eq_ignore_ascii_case(mime))
    }) {
        return Err(error(format!(
            "--header {name}: with --attach the message is multipart/mixed and smtptui writes \
             its MIME headers itself; leave {name} out"
        )));
    }

    let mut boundary = format!("=_smtptui_{}", hex(&random));
    // Base64 and quoted-printable never hold "=_"; only a body sent as it is could.
    let mut attempt = 0u32;
    while body_lines_out.iter().any(|line| line.contains(&boundary)) {
        attempt += 1;
        boundary = format!("=_smtptui_{}_{attempt}", hex(&random));
    }
    for (name, value) in &headers {
        out(&format!("{name}: {value}"))?;
    }
    out("MIME-Version: 1.0")?;
    out(&format!(
        "Content-Type: multipart/mixed; boundary=\"{boundary}\""
    ))?;
    out("")?;
    out("This is a multi-part message in MIME format.")?;
    out(&format!("--{boundary}"))?;
    out(&format!("Content-Type: {text_type}"))?;
    out(&format!("Content-Transfer-Encoding: {transfer}"))?;
    out("")?;
    for line in &body_lines_out {
        out(line)?;
    }
    for mut attachment in attachments {
        out(&format!("--{boundary}"))?;
        let mut content_type = attachment.content_type.clone();
        if !attachment.name.is_empty() {
            let _ = write!(
                content_type,
                "; {}",
                mime_parameter("name", &attachment.name)
            );
        }
        out(&format!("Content-Type: {content_type}"))?;
        let disposition = if attachment.name.is_empty() {
            "attachment".to_owned()
        } else {
            format!(
                "attachment; {}",
                mime_parameter("filename", &attachment.name)
            )
        };
        out(&format!("Content-Disposition: {disposition}"))?;
        out("Content-Transfer-Encoding: base64")?;
        out("")?;
        // 57 bytes make one line of 76 base64 characters: read whole lines' worth at a time.
        let mut buffer = vec![0u8; 57 * 1024];
        let mut filled = 0;
        loop {
            let read = match attachment.reader.read(&mut buffer[filled..]) {
                Ok(read) => read,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(error(format!(
                        "--attach {}: cannot read it: {e}",
                        attachment.name
                    )));
                }
            };
            filled += read;
            let at_end = read == 0;
            if filled == buffer.len() || (at_end && filled > 0) {
                let encoded = B64.encode(&buffer[..filled]);
                for piece in encoded.as_bytes().chunks(76) {
                    out(&String::from_utf8_lossy(piece))?;
                }
                filled = 0;
            }
            if at_end {
                break;
            }
        }
    }
    out(&format!("--{boundary}--"))
}

fn too_large() -> SendError {
    error(format!(
        "the message is larger than a scenario holds ({} MiB, the limit of smtptui run): give \
         --save-message FILE to write it into a file the scenario sends from, streamed",
        MAX_SCENARIO_BYTES / (1024 * 1024)
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::scenario::{Action, Scenario};

    fn spec(body: &[u8]) -> MessageSpec {
        MessageSpec {
            from: Some("alice@example.com".into()),
            to: vec!["bob@lab.test".into()],
            cc: Vec::new(),
            headers: Vec::new(),
            added: Vec::new(),
            body: body.to_vec(),
            attachments: Vec::new(),
            date: "Tue, 1 Dec 2026 00:00:00 +0000".into(),
            id_domain: "example.com".into(),
            random: [7; 16],
        }
    }

    fn plan(content: Content) -> Plan {
        Plan {
            ehlo: "client.example".into(),
            starttls: true,
            auth: Some("PLAIN".into()),
            from: "alice@example.com".into(),
            recipients: vec!["bob@lab.test".into(), "carol@lab.test".into()],
            pipeline: false,
            content,
            comments: vec!["made by a test".into()],
        }
    }

    #[test]
    fn a_plain_ascii_message_has_no_mime_headers() {
        let lines = build_message(spec(b"Hello Bob.\nSecond line.\n")).unwrap();
        assert_eq!(
            lines,
            [
                "Date: Tue, 1 Dec 2026 00:00:00 +0000",
                "From: alice@example.com",
                "To: bob@lab.test",
                "Subject: test message from smtptui",
                "Message-ID: <070707070707070707070707@example.com>",
                "",
                "Hello Bob.",
                "Second line.",
            ]
        );
    }

    #[test]
    fn headers_replace_by_name_or_are_added() {
        let mut spec = spec(b"x");
        spec.headers = vec![
            ("subject".into(), "Custom".into()),
            ("X-Test".into(), "yes".into()),
        ];
        spec.added = vec![("Subject".into(), "second".into())];
        let lines = build_message(spec).unwrap();
        assert!(lines.contains(&"subject: Custom".to_owned()), "{lines:?}");
        assert!(
            !lines
                .iter()
                .any(|l| l.contains("test message from smtptui"))
        );
        let x = lines.iter().position(|l| l == "X-Test: yes").unwrap();
        let added = lines.iter().position(|l| l == "Subject: second").unwrap();
        assert!(x < added);
    }

    #[test]
    fn a_body_that_cannot_go_as_lines_goes_quoted_printable() {
        let lines = build_message(spec(b"one\n.\nlatin1 caf\xe9\n")).unwrap();
        assert!(lines.contains(&"Content-Transfer-Encoding: quoted-printable".to_owned()));
        assert!(lines.contains(&"Content-Type: text/plain".to_owned()));
        assert!(lines.contains(&"=2E".to_owned()), "{lines:?}");
        assert!(lines.contains(&"latin1 caf=E9".to_owned()), "{lines:?}");
        // A UTF-8 body that fits goes 8bit with its charset.
        let lines = build_message(spec("caf\u{e9}\n".as_bytes())).unwrap();
        assert!(lines.contains(&"Content-Transfer-Encoding: 8bit".to_owned()));
        assert!(lines.contains(&"Content-Type: text/plain; charset=utf-8".to_owned()));
    }

    #[test]
    fn quoted_printable_cuts_long_lines_and_keeps_trailing_space_visible() {
        let long = "a".repeat(200);
        let lines = quoted_printable(format!("{long}\nend \n").as_bytes());
        assert!(lines.iter().all(|l| l.len() <= 76), "{lines:?}");
        assert_eq!(lines.last().unwrap(), "end=20");
        let joined: String = lines[..lines.len() - 1]
            .iter()
            .map(|l| l.trim_end_matches('='))
            .collect();
        assert_eq!(joined, long);
        // A dot that would start a soft-broken line is encoded too.
        let dots = ".".repeat(100);
        for line in quoted_printable(dots.as_bytes()) {
            assert!(!line.starts_with('.'), "{line}");
        }
    }

    #[test]
    fn attachments_are_base64_at_76_columns_under_a_boundary_found_nowhere() {
        let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let mut spec = spec(b"see attached\n");
        spec.attachments.push(Attachment {
            name: "report.pdf".into(),
            content_type: content_type_for("report.pdf").into(),
            reader: Box::new(std::io::Cursor::new(data.clone())),
            size: Some(data.len() as u64),
        });
        spec.attachments.push(Attachment {
            name: "caf\u{e9} \"x\".bin".into(),
            content_type: content_type_for("x.unknownext").into(),
            reader: Box::new(std::io::Cursor::new(Vec::new())),
            size: Some(0),
        });
        let lines = build_message(spec).unwrap();
        let boundary = "=_smtptui_07070707070707070707070707070707";
        assert!(lines.contains(&format!(
            "Content-Type: multipart/mixed; boundary=\"{boundary}\""
        )));
        assert_eq!(lines.last().unwrap(), &format!("--{boundary}--"));
        assert!(lines.contains(&"Content-Type: application/pdf; name=\"report.pdf\"".to_owned()));
        assert!(lines.contains(
            &"Content-Disposition: attachment; filename*=utf-8''caf%C3%A9%20%22x%22.bin".to_owned()
        ));
        let start = lines
            .iter()
            .position(|l| l == "Content-Transfer-Encoding: base64")
            .unwrap()
            + 2;
        let end = start
            + lines[start..]
                .iter()
                .position(|l| l.starts_with("--"))
                .unwrap();
        let encoded = &lines[start..end];
        assert!(encoded[..encoded.len() - 1].iter().all(|l| l.len() == 76));
        assert_eq!(B64.decode(encoded.concat()).unwrap(), data);
        let parts = lines.iter().filter(|l| l.contains(boundary)).count();
        assert_eq!(parts, 1 + 3 + 1, "header, three part starts, the end");
    }

    #[test]
    fn a_body_holding_the_boundary_gets_another() {
        let mut spec = spec(b"--=_smtptui_07070707070707070707070707070707\n");
        spec.attachments.push(Attachment {
            name: "a.txt".into(),
            content_type: "text/plain".into(),
            reader: Box::new(std::io::Cursor::new(b"x".to_vec())),
            size: Some(1),
        });
        let lines = build_message(spec).unwrap();
        assert!(lines.iter().any(|l| l.ends_with("_1\"")), "{lines:?}");
    }

    #[test]
    fn attachments_too_large_for_a_scenario_are_refused_before_reading() {
        let mut spec = spec(b"x");
        spec.attachments.push(Attachment {
            name: "big.iso".into(),
            content_type: "application/octet-stream".into(),
            reader: Box::new(std::io::empty()),
            size: Some(MAX_SCENARIO_BYTES),
        });
        let error = build_message(spec).unwrap_err();
        assert!(error.0.contains("--save-message FILE"), "{error}");
    }

    #[test]
    fn the_scenario_parses_and_runs_each_step_with_its_expectation() {
        let message = build_message(spec(b"Hi.\n")).unwrap();
        let text = plan(Content::Lines(message)).scenario_text();
        let scenario = Scenario::parse("send", &text).unwrap();
        let commands: Vec<String> = scenario
            .steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::Command(line) => Some(line.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            commands,
            [
                "EHLO client.example",
                "STARTTLS",
                "EHLO client.example",
                "AUTH PLAIN",
                "MAIL FROM:<alice@example.com>",
                "RCPT TO:<bob@lab.test>",
                "RCPT TO:<carol@lab.test>",
                "DATA",
                "QUIT",
            ]
        );
        assert!(scenario.steps.iter().all(|s| s.expect.is_some()));
        assert_eq!(scenario.auth_steps().count(), 1);
        assert!(text.starts_with("# made by a test\nS: 220\n"));
    }

    #[test]
    fn a_pipelined_plan_is_one_group_with_a_reply_per_command() {
        let mut plan = plan(Content::File("/tmp/message.eml".into()));
        plan.pipeline = true;
        plan.starttls = false;
        plan.auth = None;
        let scenario = Scenario::parse("send", &plan.scenario_text()).unwrap();
        let group = scenario
            .steps
            .iter()
            .find(|s| matches!(s.action, Action::Group { .. }))
            .unwrap();
        assert_eq!(group.commands().len(), 4);
        assert_eq!(group.further.len(), 3);
        assert_eq!(
            scenario
                .steps
                .iter()
                .map(|s| s.files().len())
                .sum::<usize>(),
            1
        );
    }

    #[test]
    fn addresses_and_headers_are_checked() {
        assert_eq!(envelope_address("--from", "<>", true).unwrap(), "");
        assert_eq!(
            envelope_address("--to", "<bob@lab.test>", false).unwrap(),
            "bob@lab.test"
        );
        assert!(envelope_address("--to", "", false).is_err());
        assert!(envelope_address("--to", "bob@lab.test> NOTIFY=NEVER", false).is_err());
        assert!(envelope_address("--to", "bob@lab.test\r\nRSET", false).is_err());
        assert_eq!(
            split_addresses("a@x, b@y,").collect::<Vec<_>>(),
            ["a@x", "b@y"]
        );
        assert!(parse_header("--header", "X-A: b\r\nBcc: c").is_err());
        assert!(parse_header("--header", "no colon").is_err());
        assert!(parse_header("--header", "Bad Name: x").is_err());
        assert_eq!(
            parse_header("--header", "X-A:  b ").unwrap(),
            ("X-A".into(), "b".into())
        );
    }

    #[test]
    fn mime_headers_given_by_hand_are_completed_or_refused() {
        // A Content-Type of one's own gets its MIME-Version, and the encoding the body needs.
        let mut given = spec("caf\u{e9}".as_bytes());
        given.headers = vec![("Content-Type".into(), "text/plain; charset=utf-8".into())];
        let lines = build_message(given).unwrap();
        assert!(lines.contains(&"MIME-Version: 1.0".to_owned()), "{lines:?}");
        assert!(lines.contains(&"Content-Transfer-Encoding: 8bit".to_owned()));
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with("Content-Type"))
                .count(),
            1
        );
        // An encoding of one's own that the body cannot go in is refused.
        let mut wrong = spec(b"latin1 caf\xe9");
        wrong.headers = vec![("Content-Transfer-Encoding".into(), "7bit".into())];
        assert!(build_message(wrong).is_err());
        // With attachments smtptui writes the MIME headers.
        let mut multipart = spec(b"x");
        multipart.headers = vec![("content-type".into(), "text/html".into())];
        multipart.attachments.push(Attachment {
            name: "a.txt".into(),
            content_type: "text/plain".into(),
            reader: Box::new(std::io::Cursor::new(b"x".to_vec())),
            size: Some(1),
        });
        let error = build_message(multipart).unwrap_err();
        assert!(error.0.contains("content-type"), "{error}");
    }

    #[test]
    fn swaks_spellings_become_smtptui_options() {
        let words =
            |list: &[&str]| -> Vec<std::ffi::OsString> { list.iter().map(Into::into).collect() };
        let rewritten = swaks_spellings(words(&[
            "mx.example.com",
            "--h-Subject",
            "hello there",
            "--h-X-Test=1",
            "-tls",
            "-au",
            "alice",
            "--tls-sni",
            "mail.example.com",
            "-ah",
            "X-A: b",
            "--",
            "--h-Kept",
        ]))
        .unwrap();
        assert_eq!(
            rewritten,
            words(&[
                "mx.example.com",
                "--header",
                "Subject: hello there",
                "--header",
                "X-Test: 1",
                "--tls",
                "starttls",
                "--user",
                "alice",
                "--servername",
                "mail.example.com",
                "--add-header",
                "X-A: b",
                "--",
                "--h-Kept",
            ])
        );
        // --tls keeps a value of its own, and takes starttls before another option.
        assert_eq!(
            swaks_spellings(words(&["--tls", "implicit", "--tls", "--auth"])).unwrap(),
            words(&["--tls", "implicit", "--tls", "starttls", "--auth"])
        );
        assert_eq!(
            swaks_spellings(words(&["--tls"])).unwrap(),
            words(&["--tls", "starttls"])
        );
        assert_eq!(
            swaks_spellings(words(&["--tls", "mx.example.com:587"])).unwrap(),
            words(&["--tls", "starttls", "mx.example.com:587"])
        );
        let refused = swaks_spellings(words(&["-ap", "hunter2"])).unwrap_err();
        assert!(refused.contains("--password-file"), "{refused}");
        assert!(!refused.contains("hunter2"));
        assert!(swaks_spellings(words(&["--h-Subject"])).is_err());
    }

    #[test]
    fn content_types_come_from_the_extension() {
        assert_eq!(content_type_for("a.PDF"), "application/pdf");
        assert_eq!(content_type_for("photo.jpeg"), "image/jpeg");
        assert_eq!(content_type_for("README"), "application/octet-stream");
        assert_eq!(content_type_for("x.weird"), "application/octet-stream");
    }
}
