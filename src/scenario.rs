//! `.smtp` scenario files, in the notation of the RFC examples.
//!
//! ```text
//! # comments and blank lines are ignored
//! S: 220
//! C: EHLO client.example
//! S: 250 STARTTLS
//! C: STARTTLS
//! S: 220
//! ```
//!
//! `C:` sends a line; `S:` checks the reply to the line before it (the first `S:` checks the
//! greeting) against a code (`250`), a class pattern (`2xx`, `25x`) and optional text that must
//! appear, ignoring case, in some line of the reply. After `C: DATA`, the `C:` lines up to a
//! lone `.` are the message. A bare `C: AUTH PLAIN` (or LOGIN, CRAM-MD5, XOAUTH2, OAUTHBEARER,
//! EXTERNAL) is an exchange the tool runs itself with the user's credentials (EXTERNAL with the
//! client certificate); after an AUTH it does not run (DIGEST-MD5, an initial response, no
//! mechanism), the `C:` lines that answer its challenges are SASL answers, sent only while the
//! server waits for one and hidden in the transcript.
//!
//! The extensions have their own lines, each one no earlier scenario could contain:
//!
//! ```text
//! PIPELINE                        # RFC 2920: the C: lines below go in one write,
//! C: MAIL FROM:<a@example.com>    # and the S: lines after them check their replies,
//! C: RCPT TO:<b@example.com>      # one per command, in order
//! C: DATA
//! S: 250
//! S: 250
//! S: 354
//! FILE message.eml                # a message line by line from a file, streamed
//! C: .
//! S: 250
//! C: BDAT LAST                    # RFC 3030: one chunk, the C: lines up to its S:
//! C: BDAT 65536 LAST              # or a file cut into chunks of that size
//! FILE RAW message.eml            # byte for byte (without RAW: line endings made CRLF)
//! S: 250                          # after the end of a message, one S: per LMTP recipient
//! ```
//!
//! Parsing is strict and every error names the file, the line and the fix, because a scenario
//! with a typo must never silently test something else.

pub mod builtin;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::proto::command::{
    CommandKind, check_command_line, check_single_line, classify, split_verb,
};
use crate::proto::message::{MessageStats, Scanner};
use crate::proto::params;
use crate::proto::reply::Reply;
use crate::proto::sasl::Mechanism;

/// What a reply must look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// Each of the three digits, `None` where the pattern has `x`.
    digits: [Option<u8>; 3],
    /// Text that must appear in some line of the reply, ignoring case.
    pub text: Option<String>,
    /// The line in the scenario file.
    pub line: usize,
}

impl Expectation {
    /// Parses the part after `S:`, e.g. `250`, `2xx`, `25x STARTTLS`.
    ///
    /// # Errors
    /// A message explaining the accepted forms.
    pub fn parse(spec: &str, line: usize) -> Result<Self, String> {
        let spec = spec.trim();
        let (code, text) = match spec.split_once(char::is_whitespace) {
            Some((code, text)) => (code, Some(text.trim().to_owned()).filter(|t| !t.is_empty())),
            None => (spec, None),
        };
        let bad = || {
            format!(
                "expected a reply code after 'S:' such as 250, a class such as 2xx or 25x, \
                 optionally followed by text; found {code:?}"
            )
        };
        let bytes = code.as_bytes();
        if bytes.len() != 3 {
            return Err(bad());
        }
        let mut digits = [None; 3];
        for (index, byte) in bytes.iter().enumerate() {
            digits[index] = match byte {
                b'0'..=b'9' => Some(byte - b'0'),
                b'x' | b'X' if index > 0 => None,
                _ => return Err(bad()),
            };
        }
        if !matches!(digits[0], Some(2..=5)) {
            return Err(format!(
                "{} (SMTP reply codes start with 2, 3, 4 or 5)",
                bad()
            ));
        }
        Ok(Self { digits, text, line })
    }

    /// Whether the reply meets the expectation.
    pub fn matches(&self, reply: &Reply) -> bool {
        let code_ok = self
            .digits
            .iter()
            .enumerate()
            .all(|(position, digit)| digit.is_none_or(|d| d == reply.code.digit(position)));
        code_ok
            && self
                .text
                .as_deref()
                .is_none_or(|text| reply.contains_text(text))
    }

    /// Whether a 2xx reply would meet the code part (used to tell an expected refusal of
    /// STARTTLS from an expected success).
    pub fn expects_success(&self) -> bool {
        self.digits[0] == Some(2)
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for digit in self.digits {
            match digit {
                Some(d) => write!(f, "{d}")?,
                None => f.write_str("x")?,
            }
        }
        if let Some(text) = &self.text {
            write!(f, " {text:?}")?;
        }
        Ok(())
    }
}

/// A message file named by a `FILE` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageFile {
    /// The path as written in the scenario.
    pub written: String,
    /// Where it is read from: relative paths are relative to the scenario's directory once
    /// [`Scenario::load`] has read the scenario.
    pub path: PathBuf,
    /// `FILE RAW`: sent byte for byte (BDAT only); otherwise every line ending becomes CRLF.
    pub raw: bool,
    /// The scenario line of the `FILE`.
    pub line: usize,
    /// What the file holds, once [`Scenario::check_files`] has read it.
    pub stats: Option<MessageStats>,
}

/// One part of a message sent after DATA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyPart {
    /// A `C:` line.
    Line(String),
    /// The lines of a file (`FILE`), dot-stuffed, each ended by CRLF.
    File(MessageFile),
}

/// What a BDAT step sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkContent {
    /// The `C:` lines after `C: BDAT`, each ended by CRLF: one chunk.
    Lines(Vec<String>),
    /// A file, cut into chunks of `size` bytes (the tool's choice when `None`).
    File {
        /// The file.
        file: MessageFile,
        /// The chunk size written on the BDAT line.
        size: Option<u64>,
    },
}

/// The chunk size used when a BDAT line with a file names none: large enough that the round
/// trips cost nothing next to the bytes, small enough to keep memory flat.
pub const DEFAULT_CHUNK_SIZE: u64 = 1024 * 1024;

/// The largest chunk size accepted on a BDAT line with a file: each chunk is held in memory
/// once while it is sent.
pub const MAX_CHUNK_SIZE: u64 = 16 * 1024 * 1024;

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send a command line (STARTTLS and bare AUTH get the smart steps).
    Command(String),
    /// Send message lines after DATA; the final `.` is implied and sent by the runner.
    Message(Vec<String>),
    /// Send a message after DATA that takes lines from files (`FILE`), then the final `.`.
    Body(Vec<BodyPart>),
    /// Send the commands in one write (RFC 2920); `step.expect` and `step.further` check
    /// their replies in order.
    Group {
        /// The command lines.
        lines: Vec<String>,
        /// `PIPELINE FORCE`: sent even when the server did not advertise PIPELINING.
        force: bool,
    },
    /// Send BDAT chunks (RFC 3030).
    Chunk {
        /// What the chunks hold.
        content: ChunkContent,
        /// Whether the last chunk carries LAST.
        last: bool,
    },
}

/// One step: an action, the file line it came from, and what its reply must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The scenario line of the `C:` (for messages, of the closing `.`; for a pipelined group,
    /// of `PIPELINE`; for BDAT, of the BDAT line).
    pub line: usize,
    /// What to send.
    pub action: Action,
    /// The `S:` that follows, if any.
    pub expect: Option<Expectation>,
    /// Further `S:` lines: for a pipelined group the replies to its second and later
    /// commands; after the end of a message (or BDAT LAST) the replies for the second and
    /// later recipients of an LMTP transaction (RFC 2033 §4.2).
    pub further: Vec<Expectation>,
    /// Whether this `C:` line answers a SASL challenge of an exchange the scenario writes out
    /// (a mechanism the tool does not run itself, such as DIGEST-MD5): it carries credentials,
    /// is sent only while the server waits for an answer, and is hidden in the transcript.
    pub sasl_answer: bool,
}

impl Step {
    fn new(line: usize, action: Action) -> Self {
        Self {
            line,
            action,
            expect: None,
            further: Vec::new(),
            sasl_answer: false,
        }
    }

    /// Every expectation of the step, in order.
    pub fn expectations(&self) -> impl Iterator<Item = &Expectation> {
        self.expect.iter().chain(&self.further)
    }

    /// The message files the step reads.
    pub fn files(&self) -> Vec<&MessageFile> {
        match &self.action {
            Action::Body(parts) => parts
                .iter()
                .filter_map(|part| match part {
                    BodyPart::File(file) => Some(file),
                    BodyPart::Line(_) => None,
                })
                .collect(),
            Action::Chunk {
                content: ChunkContent::File { file, .. },
                ..
            } => vec![file],
            _ => Vec::new(),
        }
    }

    fn files_mut(&mut self) -> Vec<&mut MessageFile> {
        match &mut self.action {
            Action::Body(parts) => parts
                .iter_mut()
                .filter_map(|part| match part {
                    BodyPart::File(file) => Some(file),
                    BodyPart::Line(_) => None,
                })
                .collect(),
            Action::Chunk {
                content: ChunkContent::File { file, .. },
                ..
            } => vec![file],
            _ => Vec::new(),
        }
    }

    /// The command lines the step sends (one, or a group's), for checks over commands.
    pub fn commands(&self) -> Vec<&str> {
        match &self.action {
            Action::Command(line) if !self.sasl_answer => vec![line.as_str()],
            Action::Group { lines, .. } => lines.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        }
    }
}

/// A parsed scenario.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scenario {
    /// Where it came from (for messages).
    pub name: String,
    /// The expectation on the greeting, from an `S:` before any `C:`.
    pub greeting: Option<Expectation>,
    /// The steps in order.
    pub steps: Vec<Step>,
}

/// The largest scenario file read, in bytes. Scenarios hold commands and short messages; a
/// file beyond this is refused before it is parsed (and never read further), so a wrong path
/// such as `/dev/zero` ends with an error instead of exhausting memory. Large messages come
/// from `FILE` lines, which are streamed.
pub const MAX_SCENARIO_BYTES: u64 = 16 * 1024 * 1024;

/// The longest line a message file sent after DATA may have: the file is sent line by line,
/// and a line is held whole in memory (SMTP itself allows 1000 octets, RFC 5321 §4.5.3.1.6).
pub const MAX_FILE_LINE: u64 = 1024 * 1024;

/// A syntax error, naming the file, the line and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", if *.line > 0 { format!(":{line}") } else { String::new() })]
pub struct ScenarioError {
    /// The scenario file.
    pub file: String,
    /// The 1-based line number; 0 when the whole file is the problem (unreadable).
    pub line: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Scenario {
    /// Reads and parses a scenario file, then reads every message file it names
    /// ([`Scenario::check_files`]), relative to the scenario's directory.
    ///
    /// # Errors
    /// [`ScenarioError`] for unreadable files (line 0), syntax errors, and message files that
    /// cannot be read or sent as written.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let name = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| ScenarioError {
            file: name.clone(),
            line: 0,
            message: format!("cannot read the scenario: {e}"),
        })?;
        Self::read(&name, file, path.parent().unwrap_or(Path::new("")))
    }

    /// Reads, parses and checks a scenario named `name` from `reader` (a file, standard
    /// input): at most [`MAX_SCENARIO_BYTES`] are read, the text must be UTF-8, and each
    /// `FILE` is resolved against `base` and checked as [`Scenario::check_files`] does.
    pub fn read(
        name: &str,
        reader: impl std::io::Read,
        base: &Path,
    ) -> Result<Self, ScenarioError> {
        use std::io::Read as _;
        let unreadable = |e: std::io::Error| ScenarioError {
            file: name.to_owned(),
            line: 0,
            message: format!("cannot read the scenario: {e}"),
        };
        let mut bytes = Vec::new();
        // One byte beyond the limit tells a file at the limit from a larger one; nothing more
        // is read, whatever the source (a device, a FIFO) would still give.
        reader
            .take(MAX_SCENARIO_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(unreadable)?;
        if bytes.len() as u64 > MAX_SCENARIO_BYTES {
            return Err(ScenarioError {
                file: name.to_owned(),
                line: 0,
                message: format!(
                    "the file is larger than {} MiB, the limit for a scenario (commands and \
                     short messages; a large message goes in a file of its own, sent with a \
                     FILE line); check that this is the scenario you meant",
                    MAX_SCENARIO_BYTES / (1024 * 1024)
                ),
            });
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            ScenarioError {
                file: name.to_owned(),
                line,
                message: "the scenario is not valid UTF-8; save it as UTF-8".to_owned(),
            }
        })?;
        let mut scenario = Self::parse(name, &text)?;
        scenario.check_files(base)?;
        Ok(scenario)
    }

    /// Resolves each `FILE` against `base` (the scenario's directory) and reads it once to
    /// learn what it holds: its size, lines and first lines for the transcript, SIZE and
    /// 8BITMIME for MAIL. A file that cannot be sent as written is an error here, before any
    /// connection: a carriage return that no LF follows (unless RAW), or a line too long to
    /// send line by line.
    ///
    /// # Errors
    /// [`ScenarioError`] naming the `FILE` line, the file, its line and the fix.
    pub fn check_files(&mut self, base: &Path) -> Result<(), ScenarioError> {
        let name = self.name.clone();
        for step in &mut self.steps {
            let chunked = matches!(step.action, Action::Chunk { .. });
            for file in step.files_mut() {
                let error = |message: String| ScenarioError {
                    file: name.clone(),
                    line: file.line,
                    message,
                };
                if file.path.is_relative() {
                    file.path = base.join(&file.path);
                }
                let stats = scan_file(&file.path).map_err(|e| {
                    error(format!(
                        "cannot read the message file {:?}: {e} (a relative path is relative to \
                         the scenario's directory)",
                        file.written
                    ))
                })?;
                if !file.raw
                    && let Some(at) = stats.bare_cr
                {
                    let fix = if chunked {
                        "write FILE RAW to send the file byte for byte"
                    } else {
                        "remove it, or send the file byte for byte with C: BDAT and FILE RAW"
                    };
                    return Err(error(format!(
                        "{}:{at}: a carriage return (CR) that no line feed follows; smtptui \
                         sends every line ending as CRLF and cannot tell what a CR alone means \
                         here: {fix}",
                        file.written
                    )));
                }
                if !chunked && stats.longest > MAX_FILE_LINE {
                    return Err(error(format!(
                        "{} has a line of {} bytes; a message after DATA is sent line by line \
                         and SMTP allows 1000 octets per line (RFC 5321 §4.5.3.1.6): wrap it, \
                         or send the file with C: BDAT",
                        file.written, stats.longest
                    )));
                }
                file.stats = Some(stats);
            }
        }
        Ok(())
    }

    /// Parses scenario text; `name` is used in error messages. `FILE` paths are kept as
    /// written and not read ([`Scenario::load`] does that).
    ///
    /// # Errors
    /// [`ScenarioError`] at the first syntax error.
    pub fn parse(name: &str, text: &str) -> Result<Self, ScenarioError> {
        // Some editors start UTF-8 files with a byte-order mark; it is not content.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut parser = Parser {
            name,
            scenario: Scenario {
                name: name.to_owned(),
                ..Scenario::default()
            },
            open: Open::Nothing,
            last_checked: false,
            seen_command: false,
            in_exchange: false,
            accepts_further: false,
        };
        for (index, raw) in text.lines().enumerate() {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            parser.line(index + 1, line)?;
        }
        parser.finish()
    }

    /// The bare `AUTH <MECH>` steps for the mechanisms the tool runs itself (PLAIN, LOGIN,
    /// CRAM-MD5, XOAUTH2, OAUTHBEARER, EXTERNAL), which need credentials from the command line
    /// (EXTERNAL: a client certificate). AUTH lines for other mechanisms, or with their answers
    /// written out, need none.
    pub fn auth_steps(&self) -> impl Iterator<Item = (&Step, Mechanism)> {
        self.steps
            .iter()
            .filter_map(|step| bare_auth(step).map(|mechanism| (step, mechanism)))
    }

    /// Holds every MAIL FROM and RCPT TO line to the RFCs of its parameters
    /// ([`crate::proto::params`]): a mistyped `NOTIFY=SUCESS` or an ENVID that is not xtext
    /// would otherwise test the server's answer to a typo. `smtptui run --literal` skips this.
    ///
    /// # Errors
    /// [`ScenarioError`] naming the line, what is wrong and how to write it.
    pub fn check_envelopes(&self) -> Result<(), ScenarioError> {
        for step in &self.steps {
            for command in step.commands() {
                let problem = match params::parse(command) {
                    None => None,
                    Some(Err(error)) => Some(error),
                    Some(Ok(parsed)) => params::validate(&parsed).err(),
                };
                if let Some(problem) = problem {
                    return Err(ScenarioError {
                        file: self.name.clone(),
                        line: step.line,
                        message: format!(
                            "{}: {problem} (or give --literal to send MAIL and RCPT lines \
                             exactly as written, to see what the server does with them)",
                            crate::proto::escape::escape_str(command)
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// Holds the scenario's greetings to the protocol: LMTP greets with LHLO (RFC 2033
    /// §4.1), SMTP with EHLO or HELO. A greeting of the other protocol passes only where an
    /// `S:` expects it refused (a test of the server's answer to it).
    ///
    /// # Errors
    /// [`ScenarioError`] naming the line and the fix.
    pub fn check_protocol(&self, lmtp: bool) -> Result<(), ScenarioError> {
        for step in &self.steps {
            let commands = step.commands();
            for (index, command) in commands.into_iter().enumerate() {
                let verb = split_verb(command).0;
                let expect = if index == 0 {
                    step.expect.as_ref()
                } else {
                    step.further.get(index - 1)
                };
                let refused = expect.is_some_and(|e| !e.expects_success());
                let wrong = if lmtp {
                    matches!(verb.as_str(), "EHLO" | "HELO")
                } else {
                    verb == "LHLO"
                };
                if wrong && !refused {
                    let message = if lmtp {
                        format!(
                            "{verb} in an LMTP scenario (--protocol lmtp): LMTP greets with \
                             LHLO (RFC 2033 §4.1); write 'C: LHLO client.example', or expect the \
                             refusal with an 'S:' line such as 'S: 500'"
                        )
                    } else {
                        "LHLO is the greeting of LMTP (RFC 2033) and the run is --protocol smtp: \
                         give --protocol lmtp to talk LMTP (port 24 by default), or greet with \
                         EHLO"
                            .to_owned()
                    };
                    return Err(ScenarioError {
                        file: self.name.clone(),
                        line: step.line,
                        message,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Reads a message file once, in pieces, and counts what it holds.
fn scan_file(path: &Path) -> std::io::Result<MessageStats> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    if !file.metadata()?.is_file() {
        // A device or a pipe could be endless, and is read twice: checked here, then sent.
        return Err(std::io::Error::other(
            "it is not a regular file (a message file is read twice: checked, then sent)",
        ));
    }
    let mut scanner = Scanner::new();
    let mut buffer = vec![0; 256 * 1024];
    loop {
        let read = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        scanner.feed(&buffer[..read]);
    }
    Ok(scanner.finish())
}

/// What the parser is in the middle of.
enum Open {
    /// Nothing: the next `C:` is a command.
    Nothing,
    /// A message after DATA (`start`: the DATA line), until `C: .`.
    Message { start: usize, parts: Vec<BodyPart> },
    /// `PIPELINE` on `start`: its `C:` lines so far, each with its line.
    Group {
        start: usize,
        force: bool,
        lines: Vec<(usize, String)>,
    },
    /// The `S:` lines of the group just pushed: how many commands it has, and the line of
    /// its DATA when it ends with one (a message follows the replies).
    GroupReplies {
        commands: usize,
        data_line: Option<usize>,
    },
    /// `C: BDAT` on `start`, up to the `S:` that checks its reply.
    Chunk {
        start: usize,
        size: Option<u64>,
        last: bool,
        lines: Vec<String>,
        file: Option<Box<MessageFile>>,
    },
}

struct Parser<'a> {
    name: &'a str,
    scenario: Scenario,
    open: Open,
    /// Whether the latest reply-producing line already has its `S:`.
    last_checked: bool,
    seen_command: bool,
    /// While the scenario writes out a SASL exchange itself (an AUTH the tool does not run:
    /// another mechanism, an initial response, no mechanism), the lines that answer its
    /// challenges.
    in_exchange: bool,
    /// The latest step ends a message: further `S:` lines check further LMTP recipients.
    accepts_further: bool,
}

impl Parser<'_> {
    fn error(&self, line: usize, message: impl Into<String>) -> ScenarioError {
        ScenarioError {
            file: self.name.to_owned(),
            line,
            message: message.into(),
        }
    }

    fn line(&mut self, line_no: usize, line: &str) -> Result<(), ScenarioError> {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return Ok(());
        }
        if let Some(content) = line.strip_prefix("C:") {
            return self.client_line(line_no, strip_separator(content));
        }
        if let Some(spec) = line.strip_prefix("S:") {
            return self.server_line(line_no, spec);
        }
        let (word, rest) = match line.split_once([' ', '\t']) {
            Some((word, rest)) => (word, rest.trim()),
            None => (line, ""),
        };
        match word {
            "PIPELINE" => return self.pipeline(line_no, rest),
            "FILE" => return self.file(line_no, rest),
            _ => {}
        }
        let hint = match trimmed.get(..2) {
            Some("C:") | Some("S:") => " (remove the spaces before the prefix)",
            Some("c:") | Some("s:") => " (the prefixes are upper case: 'C:' and 'S:')",
            _ if trimmed.starts_with("C ") || trimmed.starts_with("S ") => {
                " (a colon follows the letter: 'C:' or 'S:')"
            }
            _ if word.eq_ignore_ascii_case("PIPELINE:") || word.eq_ignore_ascii_case("FILE:") => {
                " (PIPELINE and FILE are written without a colon: 'FILE message.eml')"
            }
            _ if word.eq_ignore_ascii_case("PIPELINE") || word.eq_ignore_ascii_case("FILE") => {
                " (PIPELINE and FILE are upper case)"
            }
            _ => "",
        };
        let shown: String = line.chars().take(40).collect();
        Err(self.error(
            line_no,
            format!(
                "expected 'C:' (a line to send), 'S:' (the expected reply), PIPELINE, FILE or a \
                 '#' comment, found {shown:?}{hint}"
            ),
        ))
    }

    fn client_line(&mut self, line_no: usize, content: &str) -> Result<(), ScenarioError> {
        match &mut self.open {
            Open::Message { start, parts } => {
                let start = *start;
                if content == "." {
                    let parts = std::mem::take(parts);
                    let action = if parts.iter().all(|p| matches!(p, BodyPart::Line(_))) {
                        Action::Message(
                            parts
                                .into_iter()
                                .filter_map(|p| match p {
                                    BodyPart::Line(line) => Some(line),
                                    BodyPart::File(_) => None,
                                })
                                .collect(),
                        )
                    } else {
                        Action::Body(parts)
                    };
                    self.push(Step::new(line_no, action));
                    self.open = Open::Nothing;
                    self.accepts_further = true;
                    return Ok(());
                }
                // Found now rather than after DATA was opened on the server.
                if check_single_line(content).is_err() {
                    return Err(self.error(
                        line_no,
                        format!(
                            "a carriage return (CR) inside a line of the message started by DATA \
                             on line {start}: on the wire it would end the line early; remove it \
                             or split the line into two 'C:' lines"
                        ),
                    ));
                }
                parts.push(BodyPart::Line(content.to_owned()));
                return Ok(());
            }
            Open::Chunk {
                start, lines, file, ..
            } => {
                let start = *start;
                if file.is_some() {
                    return Err(self.error(
                        line_no,
                        format!(
                            "the BDAT on line {start} sends a file; its chunks hold the file and \
                             nothing else: put its 'S:' line right after the FILE line"
                        ),
                    ));
                }
                if check_single_line(content).is_err() {
                    return Err(self.error(
                        line_no,
                        format!(
                            "a carriage return (CR) inside a line of the chunk started by BDAT on \
                             line {start}; each 'C:' line is sent with CRLF: split the line, or \
                             send the bytes from a file with FILE RAW"
                        ),
                    ));
                }
                lines.push(content.to_owned());
                return Ok(());
            }
            Open::GroupReplies { commands, .. } => {
                let commands = *commands;
                let group = self.scenario.steps.last().map_or(0, |s| s.line);
                let given = self
                    .scenario
                    .steps
                    .last()
                    .map_or(0, |s| s.expectations().count());
                return Err(self.error(
                    line_no,
                    format!(
                        "the pipelined group on line {group} has {commands} commands but only \
                         {given} 'S:' line(s); give one 'S:' per command, in order, before the \
                         next 'C:' (the layout of RFC 2920's examples)"
                    ),
                ));
            }
            Open::Group { .. } | Open::Nothing => {}
        }
        // Commands (not message lines) are held to what the engine will send.
        if let Err(problem) = check_command_line(content) {
            return Err(self.error(line_no, problem.to_string()));
        }
        if let Open::Group { start, lines, .. } = &mut self.open {
            let start = *start;
            if let Some((previous_line, previous)) = lines.last() {
                let verb = split_verb(previous).0;
                if ends_a_group(previous) {
                    let previous_line = *previous_line;
                    return Err(self.error(
                        line_no,
                        format!(
                            "{verb} on line {previous_line} must be the last command of the \
                             pipelined group opened on line {start}: its reply decides what the \
                             next lines mean (RFC 2920 §3.1, RFC 4954 §4, RFC 3207 §4); put the \
                             group's 'S:' lines after it"
                        ),
                    ));
                }
            }
            let verb = split_verb(content).0;
            if verb == "BDAT" {
                return Err(self.error(
                    line_no,
                    format!(
                        "BDAT cannot be in the pipelined group opened on line {start}: it carries \
                         its chunk right behind it; write it after the group's 'S:' lines"
                    ),
                ));
            }
            if let CommandKind::Auth {
                mechanism,
                has_initial_response: false,
            } = classify(content)
                && Mechanism::from_name(&mechanism).is_some()
            {
                return Err(self.error(
                    line_no,
                    format!(
                        "'AUTH {mechanism}' runs its whole exchange with --user, which cannot be \
                         part of the pipelined group opened on line {start}; write it after the \
                         group's 'S:' lines"
                    ),
                ));
            }
            lines.push((line_no, content.to_owned()));
            return Ok(());
        }
        // After a bare AUTH the tool runs the whole SASL exchange itself; a line that is no
        // SMTP command here is an answer written out by hand, and would be sent as a command:
        // unguarded and shown in full.
        if let Some(auth) = self.scenario.steps.last().filter(|s| s.expect.is_none())
            && let Some(mechanism) = bare_auth(auth)
            && !is_smtp_verb(&split_verb(content).0)
        {
            return Err(self.error(line_no, scripted_sasl(mechanism.name(), auth.line)));
        }
        let sasl_answer =
            self.in_exchange && answers_challenge(self.scenario.steps.last(), content);
        if !sasl_answer && split_verb(content).0 == "BDAT" {
            let (size, last) = bdat_args(content).map_err(|m| self.error(line_no, m))?;
            self.open = Open::Chunk {
                start: line_no,
                size,
                last,
                lines: Vec::new(),
                file: None,
            };
            self.seen_command = true;
            self.last_checked = false;
            self.in_exchange = false;
            return Ok(());
        }
        // A DATA whose previous step is still unchecked is fine: its reply is shown.
        let mut step = Step::new(line_no, Action::Command(content.to_owned()));
        step.sasl_answer = sasl_answer;
        self.push(step);
        if !sasl_answer {
            self.in_exchange = false;
            match classify(content) {
                CommandKind::Data => {
                    self.open = Open::Message {
                        start: line_no,
                        parts: Vec::new(),
                    };
                }
                CommandKind::Auth { .. } => {
                    self.in_exchange = self.scenario.steps.last().and_then(bare_auth).is_none();
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Adds a step that sends something: its `S:` is still to come.
    fn push(&mut self, step: Step) {
        self.scenario.steps.push(step);
        self.seen_command = true;
        self.last_checked = false;
        self.accepts_further = false;
    }

    fn server_line(&mut self, line_no: usize, spec: &str) -> Result<(), ScenarioError> {
        let expect = || Expectation::parse(spec, line_no);
        match &mut self.open {
            Open::Message { start, parts } => {
                let start = *start;
                // The `S:` right after `C: DATA` checks the 354; later ones are misplaced.
                if parts.is_empty() && !self.last_checked {
                    let expect = expect().map_err(|m| self.error(line_no, m))?;
                    if let Some(step) = self.scenario.steps.last_mut() {
                        step.expect = Some(expect);
                    }
                    self.last_checked = true;
                    return Ok(());
                }
                return Err(self.error(
                    line_no,
                    format!(
                        "'S:' inside the message started by DATA on line {start}; message lines \
                         are 'C:' lines and the message ends with 'C: .' (put the 'S:' after it)"
                    ),
                ));
            }
            Open::Group { .. } => {
                let expect = expect().map_err(|m| self.error(line_no, m))?;
                let Open::Group {
                    start,
                    force,
                    lines,
                } = std::mem::replace(&mut self.open, Open::Nothing)
                else {
                    return Ok(());
                };
                if lines.len() < 2 {
                    return Err(self.error(
                        start,
                        "PIPELINE opens a group of at least two 'C:' lines sent in one write; \
                         for one command, leave out PIPELINE"
                            .to_owned(),
                    ));
                }
                let commands = lines.len();
                let data_line = lines
                    .last()
                    .filter(|(_, l)| classify(l) == CommandKind::Data)
                    .map(|(line, _)| *line);
                let auth_last = lines
                    .last()
                    .is_some_and(|(_, l)| matches!(classify(l), CommandKind::Auth { .. }));
                let mut step = Step::new(
                    start,
                    Action::Group {
                        lines: lines.into_iter().map(|(_, l)| l).collect(),
                        force,
                    },
                );
                step.expect = Some(expect);
                self.push(step);
                self.in_exchange = auth_last;
                self.open = Open::GroupReplies {
                    commands,
                    data_line,
                };
                return Ok(());
            }
            Open::GroupReplies {
                commands,
                data_line,
            } => {
                let (commands, data_line) = (*commands, *data_line);
                let expect = expect().map_err(|m| self.error(line_no, m))?;
                let Some(step) = self.scenario.steps.last_mut() else {
                    return Ok(());
                };
                step.further.push(expect);
                if step.further.len() + 1 == commands {
                    self.last_checked = true;
                    self.open = match data_line {
                        Some(start) => Open::Message {
                            start,
                            parts: Vec::new(),
                        },
                        None => Open::Nothing,
                    };
                }
                return Ok(());
            }
            Open::Chunk { .. } => {
                let expect = expect().map_err(|m| self.error(line_no, m))?;
                let Open::Chunk {
                    start,
                    size,
                    last,
                    lines,
                    file,
                } = std::mem::replace(&mut self.open, Open::Nothing)
                else {
                    return Ok(());
                };
                let content = match file {
                    Some(file) => ChunkContent::File { file: *file, size },
                    None => {
                        let counted: u64 = lines.iter().map(|l| l.len() as u64 + 2).sum();
                        if let Some(size) = size
                            && size != counted
                        {
                            return Err(self.error(
                                start,
                                format!(
                                    "BDAT {size} declares {size} bytes, but the {} 'C:' line(s) \
                                     after it hold {counted} (each line counts its CRLF); write \
                                     BDAT {counted}, or leave out the size and smtptui counts",
                                    lines.len()
                                ),
                            ));
                        }
                        ChunkContent::Lines(lines)
                    }
                };
                let mut step = Step::new(start, Action::Chunk { content, last });
                step.expect = Some(expect);
                self.push(step);
                self.last_checked = true;
                self.accepts_further = last;
                return Ok(());
            }
            Open::Nothing => {}
        }
        let expect = expect().map_err(|m| self.error(line_no, m))?;
        if self.last_checked {
            if self.accepts_further
                && let Some(step) = self.scenario.steps.last_mut()
            {
                // One reply per LMTP recipient after the end of a message.
                step.further.push(expect);
                return Ok(());
            }
            let previous = self
                .scenario
                .steps
                .last()
                .and_then(|s| s.expectations().last())
                .or(self.scenario.greeting.as_ref())
                .map_or(0, |e| e.line);
            return Err(self.error(
                line_no,
                format!(
                    "a second 'S:' for the same reply (line {previous} already checks it); one \
                     'S:' per 'C:' (several only after the end of a message, one per LMTP \
                     recipient, or after a PIPELINE group, one per command)"
                ),
            ));
        }
        if self.seen_command {
            if let Some(step) = self.scenario.steps.last()
                && let Some(mechanism) = bare_auth(step)
                && expect.digits[0] == Some(3)
            {
                return Err(self.error(line_no, scripted_sasl(mechanism.name(), step.line)));
            }
            if let Some(step) = self.scenario.steps.last_mut() {
                step.expect = Some(expect);
            }
        } else {
            self.scenario.greeting = Some(expect);
        }
        self.last_checked = true;
        Ok(())
    }

    fn pipeline(&mut self, line_no: usize, rest: &str) -> Result<(), ScenarioError> {
        let force = match rest {
            "" => false,
            "FORCE" => true,
            other => {
                return Err(self.error(
                    line_no,
                    format!(
                        "PIPELINE takes nothing or FORCE (to send the group even when the server \
                         did not advertise PIPELINING); found {:?}",
                        other.chars().take(40).collect::<String>()
                    ),
                ));
            }
        };
        let inside = match &self.open {
            Open::Nothing => None,
            Open::Message { start, .. } => Some(format!(
                "the message started by DATA on line {start}; end it with 'C: .' first"
            )),
            Open::Group { start, .. } => Some(format!(
                "the group opened on line {start}; give its 'S:' lines first"
            )),
            Open::GroupReplies { .. } => Some(
                "the replies of the group before it; give one 'S:' per command first".to_owned(),
            ),
            Open::Chunk { start, .. } => Some(format!(
                "the chunk started by BDAT on line {start}; give its 'S:' line first"
            )),
        };
        if let Some(inside) = inside {
            return Err(self.error(line_no, format!("PIPELINE inside {inside}")));
        }
        self.open = Open::Group {
            start: line_no,
            force,
            lines: Vec::new(),
        };
        self.in_exchange = false;
        Ok(())
    }

    fn file(&mut self, line_no: usize, rest: &str) -> Result<(), ScenarioError> {
        let (raw, path) = match rest.split_once([' ', '\t']) {
            Some(("RAW", path)) => (true, path.trim()),
            _ if rest == "RAW" => (true, ""),
            _ => (false, rest),
        };
        if path.is_empty() {
            return Err(self.error(
                line_no,
                "FILE needs the path of the message file: FILE message.eml (relative to the \
                 scenario's directory), or FILE RAW message.eml after a BDAT line"
                    .to_owned(),
            ));
        }
        let file = MessageFile {
            written: path.to_owned(),
            path: PathBuf::from(path),
            raw,
            line: line_no,
            stats: None,
        };
        match &mut self.open {
            Open::Message { start, parts } => {
                let start = *start;
                if raw {
                    return Err(self.error(
                        line_no,
                        format!(
                            "FILE RAW sends a file byte for byte, which only BDAT can: the \
                             message after DATA on line {start} is sent as lines ended by CRLF \
                             and dot-stuffed; write FILE without RAW, or send the message with \
                             'C: BDAT LAST' and FILE RAW"
                        ),
                    ));
                }
                parts.push(BodyPart::File(file));
                Ok(())
            }
            Open::Chunk {
                start,
                lines,
                file: slot,
                size,
                ..
            } => {
                let start = *start;
                if !lines.is_empty() || slot.is_some() {
                    return Err(self.error(
                        line_no,
                        format!(
                            "the BDAT on line {start} already has its content; a BDAT line takes \
                             either 'C:' lines or one FILE, then its 'S:'"
                        ),
                    ));
                }
                if let Some(size) = *size
                    && !(1..=MAX_CHUNK_SIZE).contains(&size)
                {
                    return Err(self.error(
                        start,
                        format!(
                            "with a FILE, the size on the BDAT line is the size of each chunk: \
                             from 1 to {MAX_CHUNK_SIZE} bytes; found {size} (leave it out and \
                             smtptui uses {DEFAULT_CHUNK_SIZE})"
                        ),
                    ));
                }
                *slot = Some(Box::new(file));
                Ok(())
            }
            _ => Err(self.error(
                line_no,
                "FILE belongs inside a message: after 'C: DATA' (and its 'S: 354'), before the \
                 closing 'C: .', or right after a 'C: BDAT' line"
                    .to_owned(),
            )),
        }
    }

    fn finish(mut self) -> Result<Scenario, ScenarioError> {
        match std::mem::replace(&mut self.open, Open::Nothing) {
            Open::Nothing => {}
            Open::Message { start, .. } => {
                return Err(self.error(
                    start,
                    "the message started by DATA here is never ended; add 'C: .' on a line of \
                     its own",
                ));
            }
            Open::Group {
                start,
                force,
                lines,
            } => {
                if lines.len() < 2 {
                    return Err(self.error(
                        start,
                        "PIPELINE opens a group of at least two 'C:' lines sent in one write; \
                         for one command, leave out PIPELINE",
                    ));
                }
                if lines
                    .last()
                    .is_some_and(|(_, l)| classify(l) == CommandKind::Data)
                {
                    return Err(self.error(
                        start,
                        "the group ends with DATA but no message follows; give the group's \
                         'S:' lines, then the message and 'C: .'",
                    ));
                }
                self.push(Step::new(
                    start,
                    Action::Group {
                        lines: lines.into_iter().map(|(_, l)| l).collect(),
                        force,
                    },
                ));
            }
            Open::GroupReplies { commands, .. } => {
                let (group, given) = self
                    .scenario
                    .steps
                    .last()
                    .map_or((0, 0), |s| (s.line, s.expectations().count()));
                return Err(self.error(
                    group,
                    format!(
                        "the pipelined group here has {commands} commands but only {given} 'S:' \
                         line(s); give one 'S:' per command, in order"
                    ),
                ));
            }
            Open::Chunk { start, .. } => {
                return Err(self.error(
                    start,
                    "the chunk started by BDAT here needs the 'S:' line that checks its reply \
                     after its content",
                ));
            }
        }
        if self.scenario.greeting.is_none() && self.scenario.steps.is_empty() {
            // Running it would check nothing and pass: a verdict about nothing.
            return Err(self.error(
                0,
                "the scenario has no 'C:' or 'S:' line, so it has nothing to send or check; \
                 start with 'S: 220' to check the greeting",
            ));
        }
        Ok(self.scenario)
    }
}

/// Whether `line`'s reply decides what the next lines mean, so it may only end a pipelined
/// group (RFC 2920 §3.1 for EHLO, HELO, DATA, QUIT and NOOP; RFC 4954 §4 for AUTH; RFC 3207
/// §4 for STARTTLS).
fn ends_a_group(line: &str) -> bool {
    matches!(
        classify(line),
        CommandKind::Hello { .. }
            | CommandKind::Data
            | CommandKind::Quit
            | CommandKind::Auth { .. }
            | CommandKind::StartTls
    ) || split_verb(line).0 == "NOOP"
}

/// The size and LAST of a `BDAT [SIZE] [LAST]` line.
fn bdat_args(line: &str) -> Result<(Option<u64>, bool), String> {
    let bad = |found: &str| {
        format!(
            "write 'C: BDAT [SIZE] [LAST]' (RFC 3030): an optional size in bytes (smtptui counts \
             it when left out) and LAST on the message's last chunk; found {found:?}"
        )
    };
    let (_, rest) = split_verb(line);
    let mut words = rest.split_ascii_whitespace();
    let mut size = None;
    let mut last = false;
    let mut word = words.next();
    if let Some(w) = word
        && w.bytes().all(|b| b.is_ascii_digit())
    {
        size = Some(w.parse::<u64>().map_err(|_| bad(w))?);
        word = words.next();
    }
    if let Some(w) = word {
        if !w.eq_ignore_ascii_case("LAST") {
            return Err(bad(w));
        }
        last = true;
    }
    if let Some(w) = words.next() {
        return Err(bad(w));
    }
    Ok((size, last))
}

/// The text after `C:`: one space or tab separates it from the prefix, as after `S:`.
fn strip_separator(content: &str) -> &str {
    content.strip_prefix([' ', '\t']).unwrap_or(content)
}

/// Whether `content`, following `previous` inside a written-out SASL exchange, answers a
/// challenge: after an expected `334` (any `3xx`) it does whatever it says; after a reply
/// left unchecked it does unless it is an SMTP command (a cancelling `*` is an answer).
fn answers_challenge(previous: Option<&Step>, content: &str) -> bool {
    match previous.and_then(|step| step.expect.as_ref()) {
        Some(expect) => expect.digits[0] == Some(3),
        None => !is_smtp_verb(&split_verb(content).0),
    }
}

/// The mechanism of a bare `AUTH <MECH>` step the tool runs itself with `--user`.
fn bare_auth(step: &Step) -> Option<Mechanism> {
    match &step.action {
        Action::Command(line) if !step.sasl_answer => match classify(line) {
            CommandKind::Auth {
                mechanism,
                has_initial_response: false,
            } => Mechanism::from_name(&mechanism),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `verb` is an SMTP (or common extension) command.
fn is_smtp_verb(verb: &str) -> bool {
    matches!(
        verb,
        "EHLO"
            | "HELO"
            | "LHLO"
            | "MAIL"
            | "RCPT"
            | "DATA"
            | "BDAT"
            | "RSET"
            | "VRFY"
            | "EXPN"
            | "HELP"
            | "NOOP"
            | "QUIT"
            | "STARTTLS"
            | "AUTH"
            | "ETRN"
            | "ATRN"
            | "TURN"
    ) || verb.starts_with("AUTH=")
}

fn scripted_sasl(mechanism: &str, auth_line: usize) -> String {
    format!(
        "'C: AUTH {mechanism}' on line {auth_line} runs the whole SASL exchange itself with \
         --user and the password (never from the scenario); remove the 334 challenges and the \
         answer lines after it, and expect only the final reply, e.g. 'S: 235'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::reply::ReplyParser;

    fn reply(bytes: &[u8]) -> Reply {
        let mut parser = ReplyParser::default();
        parser.push(bytes);
        parser.next_reply().expect("parses").expect("complete")
    }

    const SUBMISSION: &str = "\
# submission over STARTTLS
S: 220
C: EHLO client.example
S: 250 STARTTLS
C: STARTTLS
S: 220
C: EHLO client.example
S: 250 AUTH
C: AUTH PLAIN
S: 235
C: MAIL FROM:<alice@lab.test>
S: 250
C: RCPT TO:<bob@lab.test>
S: 250
C: DATA
S: 354
C: Subject: hello
C:
C: .hidden line
C: .
S: 250
C: QUIT
S: 221
";

    #[test]
    fn the_issue_example_parses() {
        let scenario = Scenario::parse("sub.smtp", SUBMISSION).expect("parses");
        assert_eq!(scenario.greeting.as_ref().map(|e| e.line), Some(2));
        assert_eq!(scenario.steps.len(), 9);
        let message = &scenario.steps[7];
        assert_eq!(
            message.action,
            Action::Message(vec![
                "Subject: hello".into(),
                String::new(),
                ".hidden line".into()
            ])
        );
        assert_eq!(message.line, 20);
        assert_eq!(message.expect.as_ref().map(|e| e.line), Some(21));
        let data = &scenario.steps[6];
        assert_eq!(data.action, Action::Command("DATA".into()));
        assert_eq!(
            data.expect.as_ref().map(ToString::to_string).as_deref(),
            Some("354")
        );
        let auth: Vec<Mechanism> = scenario.auth_steps().map(|(_, m)| m).collect();
        assert_eq!(auth, vec![Mechanism::Plain]);
    }

    #[test]
    fn patterns_match_codes_and_text() {
        let r = reply(b"250-mail.example\r\n250 STARTTLS\r\n");
        let ok = |spec: &str| Expectation::parse(spec, 1).expect("valid").matches(&r);
        assert!(ok("250"));
        assert!(ok("2xx"));
        assert!(ok("25x"));
        assert!(ok("250 starttls"));
        assert!(ok("2XX mail.EXAMPLE"));
        assert!(!ok("251"));
        assert!(!ok("5xx"));
        assert!(!ok("250 AUTH"));
    }

    #[test]
    fn bad_patterns_explain_themselves() {
        for spec in ["99z", "2", "2500", "x50", "650", "abc", ""] {
            let err = Expectation::parse(spec, 1).expect_err(spec);
            assert!(err.contains("2xx"), "{err}");
        }
    }

    fn err(text: &str) -> ScenarioError {
        Scenario::parse("t.smtp", text).expect_err("should fail")
    }

    #[test]
    fn syntax_errors_name_file_line_and_fix() {
        let e = err("S: 220\nX: foo\n");
        assert_eq!((e.file.as_str(), e.line), ("t.smtp", 2));
        assert!(e.message.contains("'C:'"), "{}", e.message);
        assert!(err("c: EHLO x\n").message.contains("upper case"));
        assert!(err("C EHLO x\n").message.contains("colon"));
        assert!(err("  C: EHLO x\n").message.contains("remove the spaces"));
        assert!(
            err("C: AUTH\u{b}PLAIN AGFsaWNl\n")
                .message
                .contains("control character")
        );
        // SASL answers written out after a bare AUTH would be sent as commands.
        let e = err("C: AUTH PLAIN\nS: 334\nC: AGFsaWNlAHNlY3JldA==\nS: 235\n");
        assert_eq!(e.line, 2);
        assert!(
            e.message.contains("runs the whole SASL exchange"),
            "{}",
            e.message
        );
        let e = err("C: AUTH LOGIN\nC: YWxpY2U=\n");
        assert_eq!(e.line, 2);
        // A command after a bare AUTH is fine, and so is an exchange scripted for a mechanism
        // the tool does not run itself.
        assert!(Scenario::parse("t", "C: AUTH PLAIN\nC: MAIL FROM:<a@b>\n").is_ok());
        assert!(Scenario::parse("t", "C: AUTH DIGEST-MD5\nS: 334\nC: abc\n").is_ok());
        let e = err("C: EHLO x\nS: 250\nS: 250\n");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("line 2"), "{}", e.message);
        let e = err("C: DATA\nS: 354\nC: body\n");
        assert_eq!(e.line, 1);
        assert!(e.message.contains("C: ."));
        let e = err("C: DATA\nS: 354\nC: body\nS: 250\nC: .\n");
        assert_eq!(e.line, 4);
        assert_eq!(err("S: 99z\n").line, 1);
        assert!(err("S: 220\nS: 220\n").message.contains("second"));
    }

    /// Arbitrary text never panics the parser: it parses or names a line within the text.
    #[test]
    fn random_text_never_panics() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let pieces = [
            "C: ",
            "S: ",
            "C:",
            "S:",
            "250",
            "2xx",
            "5x",
            "354",
            "334",
            "DATA",
            "AUTH PLAIN",
            "AUTH LOGIN",
            "STARTTLS",
            ".",
            "#",
            " ",
            "\n",
            "\r\n",
            "\t",
            "x",
            "é",
            "\u{1b}",
            "\u{202e}",
            "MAIL FROM:<a@b>",
            "AGFsaWNl",
        ];
        for _ in 0..3000 {
            let count = (next() % 40) as usize;
            let text: String = (0..count)
                .map(|_| pieces[(next() % pieces.len() as u64) as usize])
                .collect();
            match Scenario::parse("r.smtp", &text) {
                Ok(_) => {}
                Err(error) => assert!(error.line <= text.lines().count().max(1), "{error}"),
            }
        }
    }

    #[test]
    fn comments_blank_lines_and_crlf_are_fine() {
        let s = Scenario::parse("t", "# c\r\n\r\n  # indented\r\nC: NOOP\r\nS: 250 ok\r\n")
            .expect("parses");
        assert_eq!(s.steps.len(), 1);
        assert_eq!(
            s.steps[0]
                .expect
                .as_ref()
                .and_then(|e| e.text.clone())
                .as_deref(),
            Some("ok")
        );
    }

    #[test]
    fn message_keeps_hash_and_blank_lines() {
        let s = Scenario::parse(
            "t",
            "C: DATA\nC: # not a comment\n# a comment\n\nC:\nC: .\n",
        )
        .expect("parses");
        assert_eq!(
            s.steps[1].action,
            Action::Message(vec!["# not a comment".into(), String::new()])
        );
    }

    #[test]
    fn a_byte_order_mark_is_not_content() {
        let s = Scenario::parse("t", "\u{feff}S: 220\nC: QUIT\n").expect("parses");
        assert_eq!(s.greeting.map(|e| e.line), Some(1));
        // Only at the start: elsewhere it is text like any other.
        assert!(Scenario::parse("t", "S: 220\n\u{feff}C: QUIT\n").is_err());
    }

    #[test]
    fn a_tab_separates_after_either_prefix() {
        let s = Scenario::parse(
            "t",
            "C:\tNOOP\nS:\t250 ok\nC:  EHLO x\nC: DATA\nC:\t\tfolded\nC: .\n",
        )
        .expect("parses");
        assert_eq!(s.steps[0].action, Action::Command("NOOP".into()));
        assert_eq!(
            s.steps[0]
                .expect
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("250 \"ok\"")
        );
        // Only one separator goes: what follows it is the line (a folded header keeps its tab).
        assert_eq!(s.steps[1].action, Action::Command(" EHLO x".into()));
        assert_eq!(s.steps[3].action, Action::Message(vec!["\tfolded".into()]));
    }

    #[test]
    fn a_scenario_without_lines_has_nothing_to_check() {
        for text in ["", "\u{feff}", "# comment\n\n  \n", "\r\n"] {
            let e = err(text);
            assert_eq!(e.line, 0, "{text:?}");
            assert!(
                e.message.contains("nothing to send or check"),
                "{}",
                e.message
            );
        }
        assert!(Scenario::parse("t", "S: 220\n").is_ok());
        assert!(Scenario::parse("t", "C: QUIT\n").is_ok());
    }

    #[test]
    fn a_bare_cr_in_a_message_line_is_a_syntax_error() {
        let e = err("C: DATA\nS: 354\nC: one\rtwo\nC: .\n");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("carriage return"), "{}", e.message);
        assert!(e.message.contains("line 1"), "{}", e.message);
        // CRLF line endings are line endings, not content.
        assert!(Scenario::parse("t", "C: DATA\r\nC: one\r\nC: .\r\n").is_ok());
    }

    #[test]
    fn answers_of_a_written_out_exchange_are_marked() {
        let answers = |text: &str| -> Vec<bool> {
            Scenario::parse("t", text)
                .expect("parses")
                .steps
                .iter()
                .map(|s| s.sasl_answer)
                .collect()
        };
        // After an expected 3xx, the next line answers whatever it says.
        assert_eq!(
            answers("C: AUTH DIGEST-MD5\nS: 334\nC: abc\nS: 235\nC: QUIT\n"),
            [false, true, false]
        );
        assert_eq!(
            answers("C: AUTH DIGEST-MD5\nS: 334\nC: QUIT\n"),
            [false, true]
        );
        // Unchecked: an answer unless it is an SMTP command; `*` cancels and is an answer.
        assert_eq!(
            answers("C: AUTH DIGEST-MD5\nC: abc\nC: def\nS: 235\nC: MAIL FROM:<a@b>\n"),
            [false, true, true, false]
        );
        assert_eq!(answers("C: AUTH X\nC: *\nS: 501\n"), [false, true]);
        assert_eq!(answers("C: AUTH X\nC: QUIT\n"), [false, false]);
        // A refusal ends the exchange; an initial response or no mechanism opens one too.
        assert_eq!(answers("C: AUTH X\nS: 504\nC: abc\n"), [false, false]);
        assert_eq!(
            answers("C: AUTH LOGIN YWxpY2U=\nS: 334\nC: cGFzcw==\n"),
            [false, true]
        );
        assert_eq!(answers("C: AUTH\nS: 501\nC: NOOP\n"), [false, false]);
        // Not after an exchange the tool runs itself, nor outside any exchange.
        assert_eq!(answers("C: AUTH PLAIN\nS: 235\nC: NOOP\n"), [false, false]);
        assert_eq!(answers("C: NOOP\nC: abc\n"), [false, false]);
    }

    #[test]
    fn only_mechanisms_the_tool_runs_need_credentials() {
        let s = Scenario::parse(
            "t",
            "C: AUTH DIGEST-MD5\nS: 504\nC: AUTH\nS: 501\nC: AUTH PLAIN AGFsaWNl\nS: 535\nC: AUTH login\nS: 235\n",
        )
        .expect("parses");
        let steps: Vec<(usize, Mechanism)> = s.auth_steps().map(|(s, m)| (s.line, m)).collect();
        assert_eq!(steps, [(7, Mechanism::Login)]);
        let s = Scenario::parse(
            "t",
            "C: AUTH CRAM-MD5\nS: 235\nC: AUTH OAUTHBEARER\nS: 235\nC: AUTH EXTERNAL\nS: 235\n",
        )
        .expect("parses");
        let steps: Vec<(usize, Mechanism)> = s.auth_steps().map(|(s, m)| (s.line, m)).collect();
        assert_eq!(
            steps,
            [
                (1, Mechanism::CramMd5),
                (3, Mechanism::OAuthBearer),
                (5, Mechanism::External)
            ]
        );
        // The tool answers CRAM-MD5's challenge itself: a written-out one is an error.
        assert!(Scenario::parse("t", "C: AUTH CRAM-MD5\nS: 334\nC: abc\n").is_err());
    }

    #[test]
    fn files_beyond_the_size_limit_are_refused_without_reading_them_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("big.smtp");
        let file = std::fs::File::create(&path).expect("create");
        // Sparse: the size is there, the disk blocks are not.
        file.set_len(MAX_SCENARIO_BYTES + 1).expect("set_len");
        let e = Scenario::load(&path).expect_err("too big");
        assert_eq!(e.line, 0);
        assert!(e.message.contains("16 MiB"), "{}", e.message);
        file.set_len(0).expect("truncate");
        std::fs::write(&path, "S: 220\n").expect("write");
        assert!(Scenario::load(&path).is_ok());
    }

    #[test]
    fn unchecked_commands_are_allowed() {
        let s = Scenario::parse("t", "C: EHLO x\nC: NOOP\nS: 250\n").expect("parses");
        assert_eq!(s.steps[0].expect, None);
        assert!(s.steps[1].expect.is_some());
    }

    #[test]
    #[allow(clippy::panic)] // a failed match is a failed test
    fn a_pipelined_group_takes_its_replies_in_order_and_opens_the_message() {
        let s = Scenario::parse(
            "t",
            "PIPELINE\nC: MAIL FROM:<a@b>\nC: RCPT TO:<c@d>\nC: DATA\nS: 250\nS: 550 5.1.1\n\
             S: 354\nC: Subject: x\nFILE m.eml\nC: .\nS: 250\nC: QUIT\nC: NOOP\n",
        )
        .expect("parses");
        assert_eq!(s.steps.len(), 4);
        let group = &s.steps[0];
        assert_eq!(group.line, 1);
        assert_eq!(
            group.action,
            Action::Group {
                lines: vec![
                    "MAIL FROM:<a@b>".into(),
                    "RCPT TO:<c@d>".into(),
                    "DATA".into()
                ],
                force: false
            }
        );
        let lines: Vec<usize> = group.expectations().map(|e| e.line).collect();
        assert_eq!(lines, [5, 6, 7]);
        let Action::Body(parts) = &s.steps[1].action else {
            panic!("a message with a file: {:?}", s.steps[1].action);
        };
        assert_eq!(parts.len(), 2);
        assert!(matches!(&parts[1], BodyPart::File(f) if f.written == "m.eml" && f.line == 9));
        // Consecutive C: lines outside a group are still separate steps.
        assert_eq!(s.steps[2].action, Action::Command("QUIT".into()));
        assert_eq!(s.steps[3].action, Action::Command("NOOP".into()));
        let forced = Scenario::parse("t", "PIPELINE FORCE\nC: NOOP\nC: NOOP\n");
        assert!(forced.is_err(), "NOOP may only end a group");
        let forced = Scenario::parse("t", "PIPELINE FORCE\nC: RSET\nC: NOOP\n").expect("parses");
        assert!(matches!(
            forced.steps[0].action,
            Action::Group { force: true, .. }
        ));
        assert!(forced.steps[0].expect.is_none());
    }

    #[test]
    fn groups_breaking_the_rules_are_syntax_errors() {
        for (text, line, says) in [
            (
                "PIPELINE\nC: DATA\nC: NOOP\nS: 354\nS: 250\n",
                3,
                "DATA on line 2 must be the last",
            ),
            (
                "PIPELINE\nC: EHLO x\nC: MAIL FROM:<a@b>\n",
                3,
                "last command",
            ),
            (
                "PIPELINE\nC: RSET\nC: AUTH DIGEST-MD5\nC: NOOP\n",
                4,
                "AUTH on line 3",
            ),
            (
                "PIPELINE\nC: RSET\nC: STARTTLS\nC: NOOP\n",
                4,
                "STARTTLS on line 3",
            ),
            (
                "PIPELINE\nC: RSET\nC: BDAT 3 LAST\n",
                3,
                "BDAT cannot be in",
            ),
            (
                "PIPELINE\nC: RSET\nC: AUTH PLAIN\nS: 250\nS: 235\n",
                3,
                "runs its whole exchange",
            ),
            ("PIPELINE\nC: RSET\nS: 250\n", 1, "at least two"),
            (
                "PIPELINE\nC: RSET\nC: RSET\nS: 250\nC: NOOP\n",
                5,
                "only 1 'S:'",
            ),
            ("PIPELINE\nC: RSET\nC: RSET\nS: 250\n", 1, "only 1 'S:'"),
            (
                "PIPELINE\nC: RSET\nC: RSET\nS: 250\nS: 250\nS: 250\n",
                6,
                "a second 'S:'",
            ),
            ("PIPELINE now\n", 1, "FORCE"),
            ("C: DATA\nPIPELINE\n", 2, "inside the message"),
            ("PIPELINE\nPIPELINE\n", 2, "inside the group"),
            ("pipeline\n", 1, "upper case"),
            ("PIPELINE:\n", 1, "without a colon"),
            (
                "PIPELINE\nC: MAIL FROM:<a@b>\nC: DATA\n",
                1,
                "no message follows",
            ),
        ] {
            let e = err(text);
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.message.contains(says), "{text:?}: {e}");
        }
    }

    #[test]
    #[allow(clippy::panic)] // a failed match is a failed test
    fn bdat_takes_lines_or_a_file_up_to_its_reply() {
        let s = Scenario::parse(
            "t",
            "C: BDAT 9\nC: Subject\nS: 250\nC: BDAT\nC: a\nC: bc\nS: 250\nC: BDAT 4096 LAST\n\
             FILE RAW big.eml\nS: 250\nS: 452\nC: BDAT last\nS: 250\n",
        )
        .expect("parses");
        assert_eq!(
            s.steps[0].action,
            Action::Chunk {
                content: ChunkContent::Lines(vec!["Subject".into()]),
                last: false
            }
        );
        assert_eq!(s.steps[0].line, 1);
        assert_eq!(s.steps[0].expect.as_ref().map(|e| e.line), Some(3));
        assert!(matches!(
            &s.steps[1].action,
            Action::Chunk { content: ChunkContent::Lines(lines), last: false } if lines.len() == 2
        ));
        let Action::Chunk {
            content: ChunkContent::File { file, size },
            last: true,
        } = &s.steps[2].action
        else {
            panic!("a file in chunks: {:?}", s.steps[2].action);
        };
        assert_eq!(
            (file.raw, file.written.as_str(), *size),
            (true, "big.eml", Some(4096))
        );
        // After BDAT LAST, one S: per LMTP recipient.
        assert_eq!(s.steps[2].further.len(), 1);
        assert_eq!(
            s.steps[3].action,
            Action::Chunk {
                content: ChunkContent::Lines(Vec::new()),
                last: true
            }
        );
        for (text, line, says) in [
            ("C: BDAT 10 LAST\nC: Subject\nS: 250\n", 1, "BDAT 9"),
            ("C: BDAT LAST\nC: x\n", 1, "needs the 'S:'"),
            ("C: BDAT 3 MORE\n", 1, "BDAT [SIZE] [LAST]"),
            ("C: BDAT LAST 3\n", 1, "BDAT [SIZE] [LAST]"),
            ("C: BDAT\nC: x\nFILE m.eml\n", 3, "already has its content"),
            ("C: BDAT\nFILE m.eml\nC: x\n", 3, "nothing else"),
            ("C: BDAT 0 LAST\nFILE m.eml\n", 1, "size of each chunk"),
            ("C: BDAT LAST\nPIPELINE\n", 2, "inside the chunk"),
        ] {
            let e = err(text);
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.message.contains(says), "{text:?}: {e}");
        }
    }

    #[test]
    fn file_lines_belong_in_messages() {
        for (text, line, says) in [
            ("FILE m.eml\n", 1, "belongs inside a message"),
            ("C: DATA\nFILE\nC: .\n", 2, "needs the path"),
            ("C: DATA\nFILE RAW m.eml\nC: .\n", 2, "only BDAT"),
            ("C: DATA\nfile m.eml\nC: .\n", 2, "upper case"),
            ("C: DATA\nFILE: m.eml\nC: .\n", 2, "without a colon"),
        ] {
            let e = err(text);
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.message.contains(says), "{text:?}: {e}");
        }
        // A path with spaces is the rest of the line.
        let s = Scenario::parse("t", "C: DATA\nFILE my message.eml\nC: .\n").expect("parses");
        assert!(
            matches!(&s.steps[1].action, Action::Body(p) if matches!(&p[0], BodyPart::File(f) if f.written == "my message.eml"))
        );
    }

    #[test]
    fn several_replies_only_after_the_end_of_a_message() {
        let s = Scenario::parse(
            "t",
            "C: DATA\nS: 354\nC: x\nC: .\nS: 250\nS: 452 4.2.2\nS: 250\nC: QUIT\nS: 221\n",
        )
        .expect("parses");
        assert_eq!(s.steps[1].further.len(), 2);
        let e = err("C: NOOP\nS: 250\nS: 250\n");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("second"), "{}", e.message);
        let e = err("C: DATA\nC: x\nC: .\nS: 250\nC: NOOP\nS: 250\nS: 250\n");
        assert_eq!(e.line, 7);
    }

    #[test]
    fn message_files_are_read_before_anything_is_sent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let scenario = dir.path().join("s.smtp");
        let write = |text: &str| std::fs::write(&scenario, text).expect("write");
        std::fs::write(dir.path().join("ok.eml"), "Subject: x\n\nbody\n").expect("write");
        std::fs::write(dir.path().join("cr.eml"), "Subject: x\n\nbo\rdy\n").expect("write");
        write("C: DATA\nFILE ok.eml\nC: .\n");
        let s = Scenario::load(&scenario).expect("loads");
        let files = s.steps[1].files();
        let stats = files[0].stats.as_ref().expect("read");
        assert_eq!((stats.lines, stats.wire_bytes), (3, 20));
        assert_eq!(files[0].path, dir.path().join("ok.eml"));
        write("C: DATA\nS: 354\nFILE cr.eml\nC: .\n");
        let e = Scenario::load(&scenario).expect_err("bare CR");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("cr.eml:3"), "{}", e.message);
        assert!(e.message.contains("BDAT and FILE RAW"), "{}", e.message);
        write("C: BDAT LAST\nFILE RAW cr.eml\nS: 250\n");
        assert!(Scenario::load(&scenario).is_ok(), "RAW sends it as it is");
        write("C: DATA\nFILE /dev/zero\nC: .\n");
        let e = Scenario::load(&scenario).expect_err("a device");
        assert!(e.message.contains("not a regular file"), "{e}");
        write("C: DATA\nFILE missing.eml\nC: .\n");
        let e = Scenario::load(&scenario).expect_err("missing");
        assert!(
            e.message.contains("missing.eml") && e.message.contains("relative"),
            "{e}"
        );
    }

    #[test]
    fn protocol_and_envelopes_are_checked_on_request() {
        let smtp =
            Scenario::parse("t", "C: EHLO x\nS: 250\nC: MAIL FROM:<a@b> SIZE=x\n").expect("parses");
        assert!(smtp.check_protocol(false).is_ok());
        let e = smtp.check_protocol(true).expect_err("EHLO under LMTP");
        assert!(e.message.contains("LHLO"), "{e}");
        let e = smtp.check_envelopes().expect_err("SIZE=x");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("--literal"), "{e}");
        let lmtp = Scenario::parse("t", "C: LHLO x\nC: EHLO x\nS: 500\n").expect("parses");
        assert!(
            lmtp.check_protocol(true).is_ok(),
            "a refusal expected is a test"
        );
        assert!(lmtp.check_protocol(false).is_err());
    }
}
