//! The headless scenario runner behind `smtptui run`.
//!
//! It drives a [`Session`] step by step from a [`Scenario`], records each expectation's result
//! in the same transcript, and turns the outcome into the documented exit status. Pipelined
//! groups go in one write with each reply checked against its own `S:`; messages from files
//! are streamed in bounded memory (a summary in the transcript, not every line); MAIL FROM
//! gets the parameters the server advertised and the transaction needs (SIZE, BODY,
//! SMTPUTF8) unless [`RunOptions::literal`] says otherwise.

pub mod batch;
pub mod bench;
pub mod bench_view;
pub mod junit;

use std::io::Read as _;

use crate::guard::OneTimeOverride;
use crate::proto::command::{CommandKind, LineError, classify, split_verb};
use crate::proto::escape::{escape_bytes, escape_str};
use crate::proto::message::{MAX_TEXT_LINE, MessageStats, Normaliser, group_digits};
use crate::proto::params::{self, Added};
use crate::proto::reply::{Reply, ReplyClass};
use crate::proto::sasl::Mechanism;
use crate::scenario::{
    Action, BodyPart, ChunkContent, DEFAULT_CHUNK_SIZE, Expectation, MAX_FILE_LINE, MessageFile,
    Scenario, Step,
};
use crate::secret::{Credentials, Secret};
use crate::session::{self, EventSink, Phase, Session, SessionConfig, SessionError};
use crate::transcript::{ErrorKind, EventKind};

/// Exit statuses of `smtptui run`, part of the command-line contract.
pub mod exit {
    /// Every expectation was met.
    pub const PASSED: i32 = 0;
    /// An expectation failed.
    pub const EXPECTATION_FAILED: i32 = 1;
    /// Usage or scenario syntax error.
    pub const USAGE: i32 = 2;
    /// Connection, TLS, timeout or protocol failure (response injection included).
    pub const FAILURE: i32 = 3;
    /// The credential guard refused to send credentials.
    pub const GUARD: i32 = 4;
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every step ran and every expectation was met.
    Passed {
        /// How many expectations were checked.
        checked: usize,
    },
    /// The expectation on this scenario line was not met.
    ExpectationFailed {
        /// The `S:` line.
        line: usize,
    },
    /// A step could not go as the scenario needs although no `S:` line said what to expect:
    /// DATA not answered 354 before a message, a SASL answer the server did not ask for, a
    /// command while the server waits for a SASL answer.
    StepFailed {
        /// The scenario line of the step.
        line: usize,
        /// What happened, and how to write the scenario to test it.
        reason: String,
    },
    /// The session failed (network, TLS, protocol, injection, timeout).
    Failure {
        /// The scenario line being run, if the failure happened at a step.
        line: Option<usize>,
        /// What went wrong.
        reason: String,
    },
    /// The credential guard refused; nothing was sent.
    GuardRefused {
        /// The scenario line whose credentials were refused.
        line: usize,
        /// The guard's explanation.
        reason: String,
    },
}

impl Outcome {
    /// The process exit status for this outcome.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Passed { .. } => exit::PASSED,
            Self::ExpectationFailed { .. } | Self::StepFailed { .. } => exit::EXPECTATION_FAILED,
            Self::Failure { .. } => exit::FAILURE,
            Self::GuardRefused { .. } => exit::GUARD,
        }
    }

    /// One line for the end of the output.
    pub fn summary(&self, scenario: &str) -> String {
        match self {
            Self::Passed { checked } => format!("PASS {scenario}: {checked} expectation(s) met"),
            Self::ExpectationFailed { line } => {
                format!("FAIL {scenario}: the expectation on line {line} was not met")
            }
            Self::StepFailed { line, reason } => format!("FAIL {scenario}:{line}: {reason}"),
            Self::Failure {
                line: Some(line),
                reason,
            } => format!("ERROR {scenario}:{line}: {reason}"),
            Self::Failure { line: None, reason } => format!("ERROR {scenario}: {reason}"),
            Self::GuardRefused { line, reason } => format!("REFUSED {scenario}:{line}: {reason}"),
        }
    }
}

impl Outcome {
    /// The outcome of a session error raised while running scenario line `line`.
    fn from_error(error: SessionError, line: Option<usize>) -> Self {
        match (error, line) {
            (SessionError::Guard(refusal), Some(line)) => Self::GuardRefused {
                line,
                reason: refusal.to_string(),
            },
            // Credentials repeated as a command are held back by the same rule as the guard.
            (error @ SessionError::Line(LineError::RepeatsCredentials), Some(line)) => {
                Self::GuardRefused {
                    line,
                    reason: error.to_string(),
                }
            }
            (other, line) => Self::Failure {
                line,
                reason: other.to_string(),
            },
        }
    }
}

/// How `smtptui run` treats the extensions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// `--force`: send pipelined groups and BDAT even when the server did not advertise
    /// PIPELINING or CHUNKING, to see what it does with them.
    pub force: bool,
    /// `--literal`: send MAIL FROM exactly as written, with no SIZE, BODY or SMTPUTF8 added.
    pub literal: bool,
}

/// Replays `scenario` against the server in `config`, emitting every event to `sink`, with
/// the default [`RunOptions`].
///
/// `credentials` serve the bare `AUTH <MECH>` steps; the caller checks beforehand that they
/// exist when the scenario needs them. When the run stops early (an unmet expectation, a
/// refusal) on a connection that is still usable, the session ends politely with QUIT.
pub async fn run(
    scenario: &Scenario,
    config: SessionConfig,
    credentials: Option<Credentials>,
    sink: EventSink,
) -> Outcome {
    run_with(scenario, config, credentials, RunOptions::default(), sink).await
}

/// [`run`] with explicit [`RunOptions`].
pub async fn run_with(
    scenario: &Scenario,
    config: SessionConfig,
    credentials: Option<Credentials>,
    options: RunOptions,
    sink: EventSink,
) -> Outcome {
    let (session, greeting) = match Session::connect(config, sink).await {
        Ok(pair) => pair,
        Err(error) => return Outcome::from_error(error, None),
    };
    let mut replay = Replay {
        session,
        credentials: credentials.as_ref(),
        options,
        checked: 0,
        last_reply: greeting.clone(),
        quit_sent: false,
    };
    let outcome = replay.run(scenario, &greeting).await;
    let leave_politely = !matches!(outcome, Outcome::Passed { .. })
        && !replay.quit_sent
        // A 421 means the server is closing the connection (RFC 5321 §3.8).
        && replay.last_reply.code.value() != 421;
    if leave_politely {
        // Does nothing after a fatal error: the session knows it is no longer usable. Inside
        // a message it closes without the final dot, which abandons the message.
        replay.session.quit().await;
    } else {
        replay.session.close().await;
    }
    outcome
}

/// A scenario being replayed on one session.
struct Replay<'a> {
    session: Session,
    credentials: Option<&'a Credentials>,
    options: RunOptions,
    checked: usize,
    /// The latest reply received, to say what came instead of a challenge or a 354.
    last_reply: Reply,
    /// Whether the scenario sent QUIT itself (it is then not sent again).
    quit_sent: bool,
}

/// What the last command of a step asks of the steps after it.
enum After {
    /// Go on.
    Next,
    /// DATA was refused as the scenario expected: the message after it is not sent.
    SkipMessage,
}

impl Replay<'_> {
    async fn run(&mut self, scenario: &Scenario, greeting: &Reply) -> Outcome {
        if let Some(expect) = &scenario.greeting
            && !self.check(expect, greeting)
        {
            return Outcome::ExpectationFailed { line: expect.line };
        }
        let mut skip_message = false;
        for (index, step) in scenario.steps.iter().enumerate() {
            let result = match &step.action {
                Action::Message(_) | Action::Body(_) => {
                    if std::mem::take(&mut skip_message) {
                        self.session.record(EventKind::Note(format!(
                            "DATA was refused as expected; the message ending on line {} is not sent",
                            step.line
                        )));
                        continue;
                    }
                    self.message(step).await
                }
                Action::Command(line) if step.sasl_answer => {
                    match self.answer(line, step.line).await {
                        Ok(reply) => self.expect_one(step.expect.as_ref(), &reply),
                        Err(outcome) => Err(outcome),
                    }
                }
                Action::Command(line) => {
                    let line = self.with_parameters(line, scenario, index);
                    self.command_step(step, &line).await
                }
                Action::Group { lines, force } => {
                    let lines: Vec<String> = lines
                        .iter()
                        .map(|line| self.with_parameters(line, scenario, index))
                        .collect();
                    self.group(step, &lines, *force).await
                }
                Action::Chunk { content, last } => self.chunks(step, content, *last).await,
            };
            match result {
                Ok(After::Next) => {}
                Ok(After::SkipMessage) => skip_message = true,
                Err(outcome) => return outcome,
            }
        }
        Outcome::Passed {
            checked: self.checked,
        }
    }

    /// A single command and its `S:`.
    async fn command_step(&mut self, step: &Step, line: &str) -> Result<After, Outcome> {
        let kind = classify(line);
        let reply = self.command(line, &kind, step.line).await?;
        self.after_command(step.line, &kind, step.expect.as_ref(), &reply)
    }

    /// Checks the reply to a command (alone, or the last of a group) with what its kind
    /// means for the run: STARTTLS not answered 220, DATA not answered 354.
    fn after_command(
        &mut self,
        line: usize,
        kind: &CommandKind,
        expect: Option<&Expectation>,
        reply: &Reply,
    ) -> Result<After, Outcome> {
        match kind {
            CommandKind::StartTls if reply.code.value() != 220 => {
                match self.starttls_refused(line, expect, reply) {
                    Some(outcome) => Err(outcome),
                    None => Ok(After::Next),
                }
            }
            CommandKind::Data if reply.code.value() != 354 => {
                let Some(expect) = expect else {
                    return Err(self.data_refused(line, reply));
                };
                if !self.check(expect, reply) {
                    return Err(Outcome::ExpectationFailed { line: expect.line });
                }
                Ok(After::SkipMessage)
            }
            _ => self.expect_one(expect, reply),
        }
    }

    fn expect_one(
        &mut self,
        expect: Option<&Expectation>,
        reply: &Reply,
    ) -> Result<After, Outcome> {
        match expect {
            Some(expect) if !self.check(expect, reply) => {
                Err(Outcome::ExpectationFailed { line: expect.line })
            }
            _ => Ok(After::Next),
        }
    }

    /// A pipelined group (RFC 2920): one write, each reply checked against its own `S:`.
    async fn group(
        &mut self,
        step: &Step,
        lines: &[String],
        force: bool,
    ) -> Result<After, Outcome> {
        self.expect_command_phase(step.line)?;
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let force = force || self.options.force;
        let replies = self
            .session
            .pipeline(&refs, OneTimeOverride::None, force)
            .await;
        if lines.iter().any(|l| classify(l) == CommandKind::Quit) {
            self.quit_sent = true;
        }
        let replies = replies.map_err(|error| Outcome::from_error(error, Some(step.line)))?;
        let expectations: Vec<Option<&Expectation>> = (0..lines.len())
            .map(|i| {
                if i == 0 {
                    step.expect.as_ref()
                } else {
                    step.further.get(i - 1)
                }
            })
            .collect();
        let Some(((last_line, last_reply), earlier)) = lines
            .iter()
            .zip(&replies)
            .collect::<Vec<_>>()
            .split_last()
            .map(|(last, earlier)| (*last, earlier.to_vec()))
        else {
            return Ok(After::Next);
        };
        for (index, (_, reply)) in earlier.iter().enumerate() {
            self.expect_one(expectations[index], reply)?;
        }
        self.last_reply = last_reply.clone();
        let kind = classify(last_line);
        let last_expect = expectations.last().copied().flatten();
        self.after_command(step.line, &kind, last_expect, last_reply)
    }

    /// A written-out SASL answer, a bare AUTH or a STARTTLS in the middle of an exchange
    /// needs the command phase; a group never answers a challenge.
    fn expect_command_phase(&mut self, scenario_line: usize) -> Result<(), Outcome> {
        if self.session.phase() != Phase::SaslChallenge {
            return Ok(());
        }
        // Sent now, the line would be taken as the answer (and hidden as one).
        let reason = format!(
            "the server is waiting for an answer to its SASL challenge ({}), but line \
             {scenario_line} is a command; write the answer (or 'C: *' to cancel) after the \
             AUTH line",
            self.last_reply.summary()
        );
        self.session.record(EventKind::Error {
            kind: ErrorKind::Scenario,
            text: reason.clone(),
        });
        Err(Outcome::StepFailed {
            line: scenario_line,
            reason,
        })
    }

    /// Sends a command step: a bare AUTH the tool runs gets the whole exchange, anything
    /// else goes as written.
    async fn command(
        &mut self,
        line: &str,
        kind: &CommandKind,
        scenario_line: usize,
    ) -> Result<Reply, Outcome> {
        self.expect_command_phase(scenario_line)?;
        let mechanism = match kind {
            CommandKind::Auth {
                mechanism,
                has_initial_response: false,
            } => Mechanism::from_name(mechanism),
            _ => None,
        };
        let result = match (mechanism, self.credentials) {
            (Some(Mechanism::External), _) => {
                let label = match &self.session.config().trust.client_identity {
                    Some(identity) => identity.subject.clone(),
                    None => "no client certificate".to_owned(),
                };
                self.session
                    .authenticate(
                        Mechanism::External,
                        crate::proto::sasl::external_credentials(label),
                        OneTimeOverride::None,
                    )
                    .await
            }
            (Some(mechanism), Some(credentials)) => {
                self.session
                    .authenticate(mechanism, credentials.clone(), OneTimeOverride::None)
                    .await
            }
            (Some(mechanism), None) => {
                // The command line checks this before connecting; never send the bare AUTH
                // without them, or the next lines would be taken as its answers.
                return Err(Outcome::Failure {
                    line: Some(scenario_line),
                    reason: format!(
                        "'AUTH {}' needs credentials: give --user (and the password)",
                        mechanism.name()
                    ),
                });
            }
            (None, _) => send_command(&mut self.session, line).await,
        };
        if kind == &CommandKind::Quit {
            self.quit_sent = true;
        }
        let reply = result.map_err(|error| Outcome::from_error(error, Some(scenario_line)))?;
        self.last_reply = reply.clone();
        Ok(reply)
    }

    /// Sends a written-out SASL answer, only while the server waits for one: otherwise the
    /// credential-bearing line would go out as a visible command.
    async fn answer(&mut self, line: &str, scenario_line: usize) -> Result<Reply, Outcome> {
        if self.session.phase() != Phase::SaslChallenge {
            let reason = format!(
                "line {scenario_line} answers a SASL challenge, but the server is not waiting \
                 for one (it answered {}); the answer was not sent",
                self.last_reply.summary()
            );
            self.session.record(EventKind::Error {
                kind: ErrorKind::Scenario,
                text: reason.clone(),
            });
            return Err(Outcome::StepFailed {
                line: scenario_line,
                reason,
            });
        }
        let answer = Secret::new(line.to_owned());
        let reply = self
            .session
            .answer_challenge(&answer, OneTimeOverride::None)
            .await
            .map_err(|error| Outcome::from_error(error, Some(scenario_line)))?;
        self.last_reply = reply.clone();
        Ok(reply)
    }

    /// The message after DATA: its lines and files, then the final dot, whose replies (one,
    /// or one per LMTP recipient) are checked.
    async fn message(&mut self, step: &Step) -> Result<After, Outcome> {
        let failed = |error| Outcome::from_error(error, Some(step.line));
        match &step.action {
            Action::Message(lines) => {
                for line in lines {
                    // A lone "." inside the message is impossible here: the scenario parser
                    // ends the message there. Every other line is dot-stuffed by the session.
                    self.session
                        .send_line(line, OneTimeOverride::None)
                        .await
                        .map_err(failed)?;
                }
            }
            Action::Body(parts) => {
                for part in parts {
                    match part {
                        BodyPart::Line(line) => {
                            self.session
                                .send_line(line, OneTimeOverride::None)
                                .await
                                .map_err(failed)?;
                        }
                        BodyPart::File(file) => self.stream_file(file).await?,
                    }
                }
            }
            _ => return Ok(After::Next),
        }
        let replies = match self
            .session
            .send_line(".", OneTimeOverride::None)
            .await
            .map_err(failed)?
        {
            session::Step::Reply(reply) => vec![reply],
            session::Step::Replies(replies) => replies,
            session::Step::Queued => {
                return Err(Outcome::Failure {
                    line: Some(step.line),
                    reason: "internal: the final dot was taken as message content".to_owned(),
                });
            }
        };
        self.check_end(step, &replies)
    }

    /// Sends a message file line by line after DATA: read in blocks, cut at line ends,
    /// dot-stuffed and made CRLF by the session, written whenever enough is queued. Memory
    /// stays flat whatever the file's size.
    async fn stream_file(&mut self, file: &MessageFile) -> Result<(), Outcome> {
        let stats = self.summarise(file)?;
        let mut reader = open_file(file)?;
        let mut buffer = vec![0u8; READ_BLOCK];
        let mut carry: Vec<u8> = Vec::new();
        let failed = |error: SessionError| match error {
            SessionError::Line(LineError::LineBreak) => Outcome::Failure {
                line: Some(file.line),
                reason: format!(
                    "{} changed since it was checked: it now holds a carriage return that no \
                     line feed follows; the message was abandoned without its final dot",
                    file.written
                ),
            },
            other => Outcome::from_error(other, Some(file.line)),
        };
        let mut sent: u64 = 0;
        loop {
            let read = read_some(&mut reader, &mut buffer).map_err(|e| unreadable(file, &e))?;
            if read == 0 {
                break;
            }
            sent += read as u64;
            let data = &buffer[..read];
            let Some(last_end) = memchr::memrchr(b'\n', data) else {
                carry.extend_from_slice(data);
                if carry.len() as u64 > MAX_FILE_LINE + 2 {
                    return Err(changed(file));
                }
                continue;
            };
            let mut whole = &data[..=last_end];
            if !carry.is_empty() {
                let first_end = memchr::memchr(b'\n', whole).unwrap_or(last_end);
                carry.extend_from_slice(&whole[..=first_end]);
                self.session.message_lines(&carry).await.map_err(failed)?;
                carry.clear();
                whole = &whole[first_end + 1..];
            }
            if !whole.is_empty() {
                self.session.message_lines(whole).await.map_err(failed)?;
            }
            carry.extend_from_slice(&data[last_end + 1..]);
        }
        if !carry.is_empty() {
            self.session.message_lines(&carry).await.map_err(failed)?;
        }
        if sent != stats.bytes {
            // Sent as read; the summary and any SIZE declared were for the file as checked.
            self.session.record(EventKind::Warning(format!(
                "{} changed while it was sent: {sent} bytes were read, {} when it was checked",
                file.written, stats.bytes
            )));
        }
        Ok(())
    }

    /// BDAT (RFC 3030): the `C:` lines as one chunk, or a file cut into chunks, each reply
    /// checked; the step's `S:` checks the reply to the last chunk (one per LMTP recipient
    /// with LAST), or the first reply that refused a chunk, after which nothing more is sent.
    async fn chunks(
        &mut self,
        step: &Step,
        content: &ChunkContent,
        last: bool,
    ) -> Result<After, Outcome> {
        self.expect_command_phase(step.line)?;
        let force = self.options.force;
        let failed = |error| Outcome::from_error(error, Some(step.line));
        let final_step = match content {
            ChunkContent::Lines(lines) => {
                let mut chunk = Vec::with_capacity(lines.iter().map(|l| l.len() + 2).sum());
                for line in lines {
                    chunk.extend_from_slice(line.as_bytes());
                    chunk.extend_from_slice(b"\r\n");
                }
                self.session
                    .bdat(&chunk, last, force)
                    .await
                    .map_err(failed)?
            }
            ChunkContent::File { file, size } => {
                self.summarise(file)?;
                let size = usize::try_from(size.unwrap_or(DEFAULT_CHUNK_SIZE))
                    .unwrap_or(usize::MAX)
                    .max(1);
                let mut chunks = ChunkReader::new(open_file(file)?, file.raw);
                loop {
                    let (chunk, is_final) = chunks.next(size).map_err(|e| match e {
                        ChunkError::Io(e) => unreadable(file, &e),
                        ChunkError::BareCr => changed(file),
                    })?;
                    let sent = self
                        .session
                        .bdat(&chunk, last && is_final, force)
                        .await
                        .map_err(failed)?;
                    if is_final {
                        break sent;
                    }
                    let session::Step::Reply(reply) = &sent else {
                        break sent;
                    };
                    self.last_reply = reply.clone();
                    if reply.code.class() != ReplyClass::PositiveCompletion {
                        // A refused chunk ends the transaction (RFC 3030 §2): nothing more
                        // is sent, and this is the reply the step's S: checks.
                        self.session.record(EventKind::Note(format!(
                            "the server refused a chunk of {}; the rest is not sent",
                            file.written
                        )));
                        return self.expect_one(step.expect.as_ref(), reply);
                    }
                }
            }
        };
        let replies = match final_step {
            session::Step::Reply(reply) => vec![reply],
            session::Step::Replies(replies) => replies,
            session::Step::Queued => Vec::new(),
        };
        self.check_end(step, &replies)
    }

    /// Checks the replies to the end of a message: one `S:` holds for every reply (one per
    /// accepted LMTP recipient), or several check them one by one, in order.
    fn check_end(&mut self, step: &Step, replies: &[Reply]) -> Result<After, Outcome> {
        if let Some(last) = replies.last() {
            self.last_reply = last.clone();
        }
        let expectations: Vec<&Expectation> = step.expectations().collect();
        if expectations.len() <= 1 {
            for reply in replies {
                self.expect_one(expectations.first().copied(), reply)?;
            }
            return Ok(After::Next);
        }
        for (expect, reply) in expectations.iter().zip(replies) {
            self.expect_one(Some(expect), reply)?;
        }
        if expectations.len() != replies.len() {
            let first = expectations.first().map_or(0, |e| e.line);
            let last = expectations.last().map_or(0, |e| e.line);
            let reason = format!(
                "lines {first}-{last} expect {} replies to the end of the message, one per \
                 recipient of an LMTP transaction (RFC 2033 §4.2), but the server sent {} (an \
                 LMTP server answers once per accepted recipient, an SMTP server once)",
                expectations.len(),
                replies.len()
            );
            self.session.record(EventKind::Error {
                kind: ErrorKind::Scenario,
                text: reason.clone(),
            });
            return Err(Outcome::StepFailed {
                line: first,
                reason,
            });
        }
        Ok(After::Next)
    }

    /// Records what a message file holds before it is sent (the transcript shows this, not
    /// its lines), with what the server may make of it.
    fn summarise(&mut self, file: &MessageFile) -> Result<MessageStats, Outcome> {
        let stats = match &file.stats {
            Some(stats) => stats.clone(),
            None => {
                let mut copy = Scenario {
                    name: String::new(),
                    greeting: None,
                    steps: vec![Step {
                        line: file.line,
                        action: Action::Body(vec![BodyPart::File(file.clone())]),
                        expect: None,
                        further: Vec::new(),
                        sasl_answer: false,
                    }],
                };
                copy.check_files(std::path::Path::new(""))
                    .map_err(|e| Outcome::Failure {
                        line: Some(file.line),
                        reason: e.message,
                    })?;
                copy.steps
                    .first()
                    .and_then(|s| s.files().first().and_then(|f| f.stats.clone()))
                    .unwrap_or_default()
            }
        };
        self.session
            .record(EventKind::Note(describe_file(file, &stats)));
        if let Some((line, length)) = stats.long_line
            && !file.raw
        {
            self.session.record(EventKind::Warning(format!(
                "{}:{line} is {length} octets long, over the {MAX_TEXT_LINE} SMTP allows for a \
                 line (RFC 5321 §4.5.3.1.6): the server may refuse the message or fold the line",
                file.written
            )));
        }
        if let Some(line) = stats.nul {
            self.session.record(EventKind::Warning(format!(
                "{}:{line} holds a NUL byte, which no SMTP message may carry outside BINARYMIME \
                 (RFC 6152 §2)",
                file.written
            )));
        }
        Ok(stats)
    }

    /// `line` with the MAIL FROM parameters the server advertised and the transaction needs
    /// (SIZE of the message, BODY=8BITMIME for 8-bit content, SMTPUTF8 for addresses or
    /// headers in UTF-8), unless the run is literal or the line already has them. The
    /// transcript says what was added and why.
    fn with_parameters(&mut self, line: &str, scenario: &Scenario, index: usize) -> String {
        let Some(Ok(command)) = params::parse(line) else {
            return line.to_owned();
        };
        if command.verb != params::Verb::Mail {
            return line.to_owned();
        }
        let facts = transaction(scenario, index, line);
        let capabilities = self.session.capabilities().cloned().unwrap_or_default();
        let offered = |keyword: &str| capabilities.has(keyword);
        let mut added = Vec::new();
        let mut warnings = Vec::new();
        if let Some(size) = facts.size {
            let limit = capabilities.size_limit().filter(|&l| l > 0);
            if offered("SIZE") && !command.has("SIZE") && !self.options.literal {
                added.push(Added {
                    keyword: "SIZE",
                    value: Some(size.to_string()),
                });
            } else if let Some(limit) = limit
                && size > limit
                && !command.has("SIZE")
            {
                warnings.push(format!(
                    "the message is {size} octets, over the {limit} the server's EHLO \
                     advertised (SIZE, RFC 1870): expect it refused"
                ));
            }
        }
        if facts.eight_bit && !command.has("BODY") {
            if facts.binary && offered("BINARYMIME") && !self.options.literal {
                added.push(Added {
                    keyword: "BODY",
                    value: Some("BINARYMIME".to_owned()),
                });
            } else if offered("8BITMIME") && !self.options.literal {
                added.push(Added {
                    keyword: "BODY",
                    value: Some("8BITMIME".to_owned()),
                });
            } else if !offered("8BITMIME") {
                warnings.push(
                    "the message holds bytes beyond ASCII and the server did not advertise \
                     8BITMIME (RFC 6152): it may refuse or damage them"
                        .to_owned(),
                );
            }
        }
        let utf8 = facts.utf8_addresses || facts.utf8_headers;
        if utf8 && !command.has("SMTPUTF8") {
            if offered("SMTPUTF8") && !self.options.literal {
                added.push(Added {
                    keyword: "SMTPUTF8",
                    value: None,
                });
            } else if !offered("SMTPUTF8") && facts.utf8_headers {
                warnings.push(
                    "the message's header holds UTF-8 and the server did not advertise \
                     SMTPUTF8 (RFC 6532): it may refuse the message"
                        .to_owned(),
                );
            }
        }
        for warning in warnings {
            self.session.record(EventKind::Warning(warning));
        }
        if added.is_empty() {
            return line.to_owned();
        }
        let names: Vec<String> = added.iter().map(ToString::to_string).collect();
        self.session.record(EventKind::Note(format!(
            "added to MAIL FROM: {} (the server advertised them and the transaction needs them; \
             --literal sends MAIL FROM as written)",
            names.join(" ")
        )));
        params::with_params(line, &added)
    }
    /// STARTTLS not answered 220: the connection stays in cleartext. That passes only when
    /// the scenario expected this refusal (`S: 454`, `S: 5xx`); `None` then goes on.
    fn starttls_refused(
        &mut self,
        line: usize,
        expect: Option<&Expectation>,
        reply: &Reply,
    ) -> Option<Outcome> {
        match expect {
            Some(expect) if !expect.expects_success() => {
                if self.check(expect, reply) {
                    None
                } else {
                    Some(Outcome::ExpectationFailed { line: expect.line })
                }
            }
            expect => {
                if let Some(expect) = expect {
                    self.check(expect, reply);
                }
                let reason = format!(
                    "STARTTLS was not answered 220 ({}), so TLS did not start; smtptui does not \
                     continue in cleartext when TLS was asked for (expect the refusal with an \
                     'S:' line, such as 'S: 454', to test it)",
                    reply.summary()
                );
                self.session.record(EventKind::Error {
                    kind: ErrorKind::Scenario,
                    text: reason.clone(),
                });
                Some(Outcome::Failure {
                    line: Some(line),
                    reason,
                })
            }
        }
    }

    /// DATA not answered 354 with no `S:` for it: the message cannot be sent.
    fn data_refused(&mut self, line: usize, reply: &Reply) -> Outcome {
        let reason = format!(
            "the server did not accept DATA ({}), so the message after line {} was not sent; \
             to test this refusal, expect it with an 'S:' line after 'C: DATA' (such as 'S: {}')",
            reply.summary(),
            line,
            reply.code
        );
        self.session.record(EventKind::Error {
            kind: ErrorKind::Scenario,
            text: reason.clone(),
        });
        Outcome::StepFailed { line, reason }
    }

    fn check(&mut self, expect: &Expectation, reply: &Reply) -> bool {
        self.checked += 1;
        let met = expect.matches(reply);
        self.session.record(EventKind::Expectation {
            line: expect.line,
            expected: expect.to_string(),
            met,
            got: reply.summary(),
        });
        met
    }
}

async fn send_command(session: &mut Session, line: &str) -> Result<Reply, SessionError> {
    match session.send_line(line, OneTimeOverride::None).await? {
        session::Step::Reply(reply) => Ok(reply),
        // A command step only runs in the command phase, where every line gets a reply; a
        // queued line here would mean the session is inside a message the scenario never began.
        session::Step::Queued | session::Step::Replies(_) => Err(SessionError::Protocol(
            crate::proto::reply::ReplyError::Malformed {
                line: "internal: a command was taken as message content".to_owned(),
            },
        )),
    }
}

/// How much of a message file is read at a time.
const READ_BLOCK: usize = 256 * 1024;

fn open_file(file: &MessageFile) -> Result<std::fs::File, Outcome> {
    std::fs::File::open(&file.path).map_err(|e| unreadable(file, &e))
}

fn read_some(reader: &mut std::fs::File, buffer: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match reader.read(buffer) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

fn unreadable(file: &MessageFile, error: &std::io::Error) -> Outcome {
    Outcome::Failure {
        line: Some(file.line),
        reason: format!("cannot read the message file {:?}: {error}", file.written),
    }
}

fn changed(file: &MessageFile) -> Outcome {
    Outcome::Failure {
        line: Some(file.line),
        reason: format!(
            "{} changed since it was checked (it now holds a carriage return that no line feed \
             follows, or a line too long to send); the message was abandoned",
            file.written
        ),
    }
}

/// The transcript's summary of a message file: size, lines, endings, first lines.
fn describe_file(file: &MessageFile, stats: &MessageStats) -> String {
    let how = if file.raw {
        "sent byte for byte".to_owned()
    } else if stats.lf_endings > 0 {
        format!(
            "every line ending sent as CRLF; {} of them LF alone in the file",
            group_digits(stats.lf_endings)
        )
    } else {
        "line endings CRLF".to_owned()
    };
    let first: Vec<String> = stats
        .first_lines
        .iter()
        .map(|line| format!("\"{}\"", escape_bytes(line)))
        .collect();
    let first = if first.is_empty() {
        "the file is empty".to_owned()
    } else {
        format!("first lines: {}", first.join(", "))
    };
    let size = if file.raw || stats.wire_bytes == stats.bytes {
        format!("{} bytes", group_digits(stats.bytes))
    } else {
        format!(
            "{} bytes as sent ({} in the file)",
            group_digits(stats.wire_bytes),
            group_digits(stats.bytes)
        )
    };
    format!(
        "message from {}: {size}, {} lines ({how}); {first}",
        escape_str(&file.written),
        group_digits(stats.lines)
    )
}

/// What a mail transaction of the scenario will send, as far as MAIL FROM's parameters care.
#[derive(Debug, Default, PartialEq, Eq)]
struct Transaction {
    /// The message's size with CRLF line endings, when the scenario holds the message.
    size: Option<u64>,
    /// Bytes beyond ASCII in the message.
    eight_bit: bool,
    /// Sent byte for byte with BDAT from a file (BINARYMIME territory).
    binary: bool,
    /// An envelope address in UTF-8.
    utf8_addresses: bool,
    /// The message's header in UTF-8.
    utf8_headers: bool,
}

/// The transaction that the MAIL FROM `mail` of step `index` opens: its recipients up to the
/// message, and the message (lines after DATA, or the BDAT chunks up to LAST).
fn transaction(scenario: &Scenario, index: usize, mail: &str) -> Transaction {
    let mut facts = Transaction {
        utf8_addresses: !mail.is_ascii(),
        ..Transaction::default()
    };
    let ends = |line: &str| {
        matches!(
            classify(line),
            CommandKind::Mail
                | CommandKind::Quit
                | CommandKind::Hello { .. }
                | CommandKind::StartTls
        ) || split_verb(line).0 == "RSET"
    };
    let mut size: u64 = 0;
    let mut header = true;
    let text = |line: &str, size: &mut u64, header: &mut bool, facts: &mut Transaction| {
        *size += line.len() as u64 + 2;
        if !line.is_ascii() {
            facts.eight_bit = true;
            facts.utf8_headers |= *header;
        }
        if line.is_empty() {
            *header = false;
        }
    };
    for (offset, step) in scenario.steps.iter().enumerate().skip(index) {
        let commands = step.commands();
        // The lines of the MAIL's own step after it (a group), then whole steps.
        let after_mail: Vec<&str> = if offset == index {
            commands
                .iter()
                .skip_while(|l| classify(l) != CommandKind::Mail)
                .skip(1)
                .copied()
                .collect()
        } else {
            commands
        };
        for line in after_mail {
            if ends(line) {
                return facts;
            }
            if classify(line) == CommandKind::Rcpt && !line.is_ascii() {
                facts.utf8_addresses = true;
            }
        }
        match &step.action {
            Action::Message(lines) => {
                for line in lines {
                    text(line, &mut size, &mut header, &mut facts);
                }
                facts.size = Some(size);
                return facts;
            }
            Action::Body(parts) => {
                for part in parts {
                    match part {
                        BodyPart::Line(line) => text(line, &mut size, &mut header, &mut facts),
                        BodyPart::File(file) => {
                            let stats = file.stats.clone().unwrap_or_default();
                            size += stats.wire_bytes;
                            facts.eight_bit |= stats.eight_bit;
                            facts.utf8_headers |= header && stats.header_eight_bit;
                            // A file holds the rest of the message, its body included.
                            header = false;
                        }
                    }
                }
                facts.size = Some(size);
                return facts;
            }
            Action::Chunk { content, last } => {
                match content {
                    ChunkContent::Lines(lines) => {
                        for line in lines {
                            text(line, &mut size, &mut header, &mut facts);
                        }
                    }
                    ChunkContent::File { file, .. } => {
                        let stats = file.stats.clone().unwrap_or_default();
                        size += if file.raw {
                            stats.bytes
                        } else {
                            stats.wire_bytes
                        };
                        facts.eight_bit |= stats.eight_bit;
                        facts.binary |= file.raw;
                        facts.utf8_headers |= header && stats.header_eight_bit;
                        header = false;
                    }
                }
                if *last {
                    facts.size = Some(size);
                    return facts;
                }
            }
            Action::Command(_) | Action::Group { .. } => {}
        }
    }
    facts
}

/// A BDAT chunk reader: the file's bytes, with line endings made CRLF unless raw, handed out
/// in chunks of a given size; the last chunk is known as such (one read ahead).
struct ChunkReader {
    file: std::fs::File,
    raw: bool,
    normaliser: Normaliser,
    pending: Vec<u8>,
    buffer: Vec<u8>,
    eof: bool,
}

#[derive(Debug)]
enum ChunkError {
    Io(std::io::Error),
    BareCr,
}

impl ChunkReader {
    fn new(file: std::fs::File, raw: bool) -> Self {
        Self {
            file,
            raw,
            normaliser: Normaliser::new(),
            pending: Vec::new(),
            buffer: vec![0; READ_BLOCK],
            eof: false,
        }
    }

    /// The next chunk of at most `size` bytes, and whether it is the last.
    fn next(&mut self, size: usize) -> Result<(Vec<u8>, bool), ChunkError> {
        while !self.eof && self.pending.len() <= size {
            let read = read_some(&mut self.file, &mut self.buffer).map_err(ChunkError::Io)?;
            if read == 0 {
                self.eof = true;
                if !self.raw {
                    self.normaliser
                        .finish(&mut self.pending)
                        .map_err(|_| ChunkError::BareCr)?;
                }
                break;
            }
            if self.raw {
                self.pending.extend_from_slice(&self.buffer[..read]);
            } else {
                self.normaliser
                    .push(&self.buffer[..read], &mut self.pending)
                    .map_err(|_| ChunkError::BareCr)?;
            }
        }
        if self.eof && self.pending.len() <= size {
            return Ok((std::mem::take(&mut self.pending), true));
        }
        let rest = self.pending.split_off(size);
        Ok((std::mem::replace(&mut self.pending, rest), false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(text: &str) -> Transaction {
        let scenario = Scenario::parse("t", text).expect("parses");
        let index = scenario
            .steps
            .iter()
            .position(|s| s.commands().iter().any(|l| l.starts_with("MAIL")))
            .expect("a MAIL");
        let mail = scenario.steps[index]
            .commands()
            .into_iter()
            .find(|l| l.starts_with("MAIL"))
            .expect("a MAIL")
            .to_owned();
        transaction(&scenario, index, &mail)
    }

    #[test]
    fn a_transaction_is_read_up_to_its_message() {
        let t = facts(
            "C: MAIL FROM:<a@b>\nC: RCPT TO:<j\u{f6}rg@b>\nC: DATA\nC: Subject: x\nC:\nC: caf\u{e9}\nC: .\n",
        );
        assert_eq!(
            t,
            Transaction {
                size: Some(12 + 2 + 7),
                eight_bit: true,
                binary: false,
                utf8_addresses: true,
                utf8_headers: false,
            }
        );
        let t = facts(
            "PIPELINE\nC: MAIL FROM:<a@b>\nC: RCPT TO:<c@d>\nC: DATA\nS: 250\nS: 250\nS: 354\nC: Subject: caf\u{e9}\nC: .\n",
        );
        assert!(t.utf8_headers && t.eight_bit && !t.utf8_addresses);
        // RSET ends it before any message.
        let t = facts(
            "C: MAIL FROM:<a@b>\nC: RSET\nC: MAIL FROM:<a@b>\nC: RCPT TO:<\u{e9}@b>\nC: DATA\nC: x\nC: .\n",
        );
        assert_eq!(t, Transaction::default());
        let t = facts(
            "C: MAIL FROM:<a@b>\nC: RCPT TO:<c@d>\nC: BDAT\nC: a\nS: 250\nC: BDAT LAST\nC: bc\nS: 250\n",
        );
        assert_eq!(t.size, Some(3 + 4));
    }

    #[test]
    fn chunks_are_cut_at_the_size_and_the_last_is_known() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.eml");
        std::fs::write(&path, b"ab\ncd\n").expect("write");
        let open = || std::fs::File::open(&path).expect("open");
        let mut reader = ChunkReader::new(open(), false);
        let mut chunks = Vec::new();
        loop {
            let (chunk, last) = reader.next(3).expect("reads");
            chunks.push((chunk, last));
            if last {
                break;
            }
        }
        assert_eq!(
            chunks,
            [
                (b"ab\r".to_vec(), false),
                (b"\ncd".to_vec(), false),
                (b"\r\n".to_vec(), true)
            ]
        );
        let mut reader = ChunkReader::new(open(), true);
        assert!(matches!(reader.next(100), Ok((ref c, true)) if c == b"ab\ncd\n"));
        assert_eq!(group_digits(1_073_741_824), "1,073,741,824");
        assert_eq!(group_digits(12), "12");
    }
}
