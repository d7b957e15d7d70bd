//! The client side of an SMTP session as a sans-IO state machine.
//!
//! [`ClientSession`] takes the user's intents (a command line, an AUTH exchange with stored
//! credentials, a SASL answer, message lines), the bytes the server sent, and the passage of
//! time as a value; it gives back the bytes to send ([`ClientSession::poll_transmit`]),
//! transcript events ([`ClientSession::poll_event`]) and the reply that completes each step
//! ([`ClientSession::take_completion`]). It owns the rustls connection too, so the STARTTLS
//! upgrade, the injection check at its boundary and the verification verdict are decided here,
//! byte by byte, and a test can drive all of it without a socket or a clock.
//!
//! The rules this tool exists for live here and nowhere else:
//! - every credential-bearing line (an `AUTH` command, an answer to a 334 that follows one,
//!   a line holding a configured secret in any form) passes [`guard::decide`];
//! - a reply is matched only to the command it answers: bytes that begin while nothing is
//!   outstanding are unasked, never the next command's reply;
//! - bytes after the 220 to STARTTLS and before the server's first TLS record are injection;
//! - what was learned before TLS (capabilities, a login, buffered bytes) is forgotten at it.
//!
//! The first fatal error is kept and returned again by every later call.

mod error;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::io::{Read as _, Write as _};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::ServerName;
use zeroize::{Zeroize, Zeroizing};

pub use self::error::{HandshakeFailure, SessionError};
use crate::guard::{self, Decision, GuardPolicy, OneTimeOverride, Protection, Refusal};
use crate::proto::command::{
    CommandKind, LineError, auth_initial_response, check_command_line, check_single_line, classify,
    split_verb,
};
use crate::proto::data::{END_OF_DATA, stuff_line};
use crate::proto::ehlo::Capabilities;
use crate::proto::escape::{escape_bytes, escape_str};
use crate::proto::params;
use crate::proto::reply::{Reply, ReplyClass, ReplyLimits, ReplyParser};
use crate::proto::sasl::{
    Mechanism, SaslClient, SaslError, credential_forms, plain_password, plain_user,
};
use crate::proto::xclient;
use crate::secret::{Credentials, Secret};
use crate::tls::{
    self, CertificateProblem, TlsInfo, VerdictSlot, Verification, describe_tls_error,
};
use crate::transcript::{Event, EventKind, GuardOutcome, Security, SentKind};

/// How the connection starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain TCP; TLS only when STARTTLS is sent and answered 220.
    StartTls,
    /// TLS from the first byte (RFC 8314 implicit TLS, usually port 465).
    Implicit,
}

/// What to do with a reply nobody asked for.
///
/// RFC 5321 has one command and one reply in step; a server that sends more has either lost
/// count or is being impersonated, and a tester that pairs the extra bytes with the next
/// command reports a verdict about the wrong reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UnaskedReplies {
    /// End the session with [`SessionError::OutOfStep`]: scripted runs and audits, whose
    /// verdicts depend on every reply being the answer to its command.
    #[default]
    Fatal,
    /// Show the reply as unasked and go on with the pairing unchanged, refusing credentials
    /// from then on: the interactive UI, where a person reads what happened.
    Show,
}

/// What the next line sent will mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Lines are commands.
    Command,
    /// After 354: lines are message content until a lone dot.
    Message,
    /// After 334: the next line answers a SASL challenge and carries credentials.
    SaslChallenge,
}

/// Identifies one step (a command and the reply that completes it).
pub type StepId = u64;

/// How many replies the server may send unasked, between two requests, before the session is
/// ended as a flood (only with [`UnaskedReplies::Show`]; otherwise the first one ends it).
pub const MAX_UNASKED_REPLIES: usize = 100;

/// Flush queued message lines once this much is waiting to be sent.
pub const FLUSH_THRESHOLD: usize = 64 * 1024;

/// Shortest secret form that is hidden or looked for in lines: hiding every "a" in every reply
/// would garble the transcript and protect nothing.
const MIN_SECRET_LEN: usize = 4;

/// Everything the core needs to run one connection.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// `host:port` as shown in messages.
    pub target: String,
    /// Plain with STARTTLS, or implicit TLS.
    pub tls_mode: TlsMode,
    /// Name used for SNI and certificate verification.
    pub server_name: String,
    /// The rustls configuration, whose verifier records its verdict in `verdict`.
    pub tls: Arc<rustls::ClientConfig>,
    /// Where the verifier leaves its verdict.
    pub verdict: VerdictSlot,
    /// Standing guard overrides.
    pub policy: GuardPolicy,
    /// Deadline for each reply and each TLS handshake.
    pub timeout: Duration,
    /// Bounds on replies.
    pub limits: ReplyLimits,
    /// What to do with replies nobody asked for.
    pub unasked: UnaskedReplies,
    /// Every form of the credentials the user configured (a password file or the
    /// environment; see [`crate::proto::sasl::credential_forms`]), known before they are used:
    /// a line holding one is a credential from the first byte.
    pub known_secrets: Vec<Secret>,
    /// How SASL exchanges run.
    pub sasl: SaslOptions,
    /// The client certificate presented when the server asks (`--cert`, `--key`); the
    /// identity EXTERNAL uses.
    pub client_identity: Option<tls::ClientIdentity>,
    /// Where the TLS layer writes the session's secrets (`--keylog`), shown in the warnings
    /// that say so; `None` when nothing is logged.
    pub key_log: Option<String>,
    /// The trust anchors the verifier of `tls` uses, in words, for the transcript
    /// ([`crate::tls::TrustSettings::anchors`]).
    pub anchors: String,
}

/// How the SASL exchanges of [`ClientSession::authenticate`] run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaslOptions {
    /// Send the first message on the AUTH line (RFC 4954 §4 initial response, SASL-IR);
    /// without it the mechanism waits for the server's empty 334 challenge. On by default.
    pub initial_response: bool,
    /// Run a mechanism the server's EHLO did not advertise (`smtptui run --force`), with a
    /// warning, to see what the server does with it.
    pub force: bool,
}

impl Default for SaslOptions {
    fn default() -> Self {
        Self {
            initial_response: true,
            force: false,
        }
    }
}

/// What a line handed to [`ClientSession::send_line`] became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// A command (or the final dot) went out; the step completes with its reply.
    Step(StepId),
    /// A message line was queued; replies come only after the final dot.
    Queued,
    /// The final dot of an LMTP message: one step per accepted recipient, in the order the
    /// recipients were given (RFC 2033 §4.2).
    Steps(Vec<StepId>),
}

/// A reply paired with the step it completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The step.
    pub step: StepId,
    /// The reply that completes it (for STARTTLS: the 220, given once TLS is up).
    pub reply: Reply,
}

/// What a sent command is waiting for, and what its reply will mean.
enum Pending {
    /// An ordinary command; EHLO's reply is read for capabilities, DATA's 354 opens a message.
    Command { kind: CommandKind, verb: String },
    /// STARTTLS: a 220 starts the handshake.
    StartTls,
    /// An `AUTH` line typed by the user: a 334 asks the user for an answer.
    TypedAuth { credential_sent: bool },
    /// A typed answer to a 334.
    TypedAnswer,
    /// An exchange run with stored credentials: a 334 is answered here.
    Exchange { client: Box<SaslClient> },
    /// `*` sent because the exchange could not go on; the session fails with this error.
    AbortedExchange(SaslError),
    /// `AUTH <MECH>` sent only to learn whether the server would run an exchange.
    Probe,
    /// `*` typed, or sent to cancel an exchange.
    Cancel,
    /// The final dot of a message (one per accepted recipient under LMTP).
    EndOfMessage,
    /// A BDAT chunk; the one with LAST ends the transaction (and under LMTP is answered
    /// once per accepted recipient).
    Chunk { last: bool },
}

/// A command sent whose reply has not come yet.
struct Outstanding {
    step: StepId,
    pending: Pending,
    /// What the deadline message says is awaited.
    waiting_for: String,
}

/// Where in the protocol the session is. Each state holds what only it needs.
enum State {
    /// Before the TCP connection is up.
    Connecting,
    /// Waiting for the 220 greeting.
    Greeting { step: StepId },
    /// The TLS handshake is running: implicit TLS (no go-ahead; the greeting follows), or
    /// after the 220 to STARTTLS (the go-ahead, which completes the step once TLS is up).
    Handshaking {
        step: StepId,
        go_ahead: Option<Reply>,
        /// TLS bytes received since the handshake began: the first ones decide whether the
        /// server answered with TLS at all.
        received: usize,
    },
    /// Nothing outstanding: a command may be sent.
    Ready,
    /// Commands were sent; their replies are awaited in order (more than one only for a
    /// pipelined group, RFC 2920).
    Awaiting { outstanding: VecDeque<Outstanding> },
    /// A 334 answered an AUTH: the next line is an answer. A probe's challenge is only
    /// ever cancelled.
    Challenge { probe: bool },
    /// DATA was answered 354: lines are message content until the final dot.
    Message,
    /// QUIT was answered or the session was closed.
    Closed,
    /// A fatal error ended the session; it is returned again by every later call.
    Failed(SessionError),
}

/// The client side of one SMTP connection, without I/O. See the module documentation.
pub struct ClientSession {
    settings: ClientSettings,
    server_name: ServerName<'static>,
    state: State,
    /// The TLS layer, from the moment the handshake starts.
    tls: Option<Box<rustls::ClientConnection>>,
    protection: Protection,
    tls_info: Option<TlsInfo>,
    capabilities: Option<Capabilities>,
    authenticated_as: Option<String>,
    parser: ReplyParser,
    /// The reply being assembled began while nothing was outstanding.
    unasked_begun: bool,
    /// Unasked replies since the last request.
    unasked_count: usize,
    /// The server has been out of step once: credentials are no longer sent.
    out_of_step: bool,
    /// The `Closed` event has been emitted.
    close_emitted: bool,
    /// The session speaks LMTP: its LHLO was accepted.
    lmtp: bool,
    /// Recipients accepted in the current transaction (LMTP answers the final dot once for
    /// each).
    recipients: usize,
    /// The current transaction's MAIL FROM carried SMTPUTF8.
    mail_smtputf8: bool,
    /// Every form of every secret sent so far, and of the configured credentials.
    secrets: Vec<KnownSecret>,
    transmit: Zeroizing<Vec<u8>>,
    /// Lines for the TLS layer not yet sealed into records.
    to_seal: Zeroizing<Vec<u8>>,
    events: VecDeque<Event>,
    completions: VecDeque<Completion>,
    next_step: StepId,
    /// When the outstanding wait ends, and what it is for.
    deadline: Option<(Instant, String)>,
    started: Instant,
    started_wall: SystemTime,
    now: Instant,
}

/// A secret form, and whether it has crossed to the server.
struct KnownSecret {
    value: Secret,
    sent: bool,
}

impl ClientSession {
    /// A session for one connection, before it is connected. Emits the `Connecting` event.
    ///
    /// `now` is the monotonic time of the call and `wall` the same moment on the wall clock;
    /// every later event is stamped from them and the `now` of the call that caused it.
    ///
    /// # Errors
    /// [`SessionError::TlsSetup`] when the server name cannot be used for TLS.
    pub fn new(
        settings: ClientSettings,
        now: Instant,
        wall: SystemTime,
    ) -> Result<Self, SessionError> {
        let server_name = tls::server_name(&settings.server_name)?;
        let mut session = Self {
            server_name,
            state: State::Connecting,
            tls: None,
            protection: Protection::Cleartext,
            tls_info: None,
            capabilities: None,
            authenticated_as: None,
            parser: ReplyParser::new(settings.limits),
            unasked_begun: false,
            unasked_count: 0,
            out_of_step: false,
            close_emitted: false,
            lmtp: false,
            recipients: 0,
            mail_smtputf8: false,
            secrets: Vec::new(),
            transmit: Zeroizing::new(Vec::new()),
            to_seal: Zeroizing::new(Vec::new()),
            events: VecDeque::new(),
            completions: VecDeque::new(),
            next_step: 0,
            deadline: None,
            started: now,
            started_wall: wall,
            now,
            settings,
        };
        for secret in session.settings.known_secrets.clone() {
            session.remember_secret(secret.expose(), false);
        }
        session.emit(EventKind::Connecting {
            target: session.settings.target.clone(),
            transport: match (
                session.settings.tls_mode,
                session.settings.target.starts_with("unix:"),
            ) {
                (TlsMode::StartTls, false) => "plain TCP; TLS only after STARTTLS".to_owned(),
                (TlsMode::StartTls, true) => {
                    "a UNIX domain socket, in cleartext; TLS only after STARTTLS".to_owned()
                }
                (TlsMode::Implicit, _) => "implicit TLS from the first byte".to_owned(),
            },
        });
        if let Some(identity) = session.settings.client_identity.clone() {
            session.emit(EventKind::Note(identity.describe()));
            if let Some(warning) = &identity.key_warning {
                session.emit(EventKind::Warning(warning.clone()));
            }
        }
        if let Some(path) = session.settings.key_log.clone() {
            session.emit(EventKind::Warning(format!(
                "TLS KEY LOG ON: the secrets of every TLS session on this connection are written \
                 to {}; with that file, anyone holding a capture of this session reads it all, \
                 credentials included. Delete the file when the capture has been studied",
                escape_str(&path)
            )));
        }
        Ok(session)
    }

    // ---------------------------------------------------------------------------------------
    // Events from the driver
    // ---------------------------------------------------------------------------------------

    /// The TCP connection is up: starts implicit TLS if configured and waits for the greeting.
    /// Returns the step the greeting completes.
    pub fn connected(&mut self, peer: String, local: String, now: Instant) -> StepId {
        self.now = now;
        self.emit(EventKind::Connected { peer, local });
        let step = self.new_step();
        match self.settings.tls_mode {
            TlsMode::StartTls => {
                self.state = State::Greeting { step };
                self.wait_for("the greeting".to_owned());
            }
            TlsMode::Implicit => {
                if let Err(error) = self.start_handshake() {
                    self.fail(error);
                    return step;
                }
                self.state = State::Handshaking {
                    step,
                    go_ahead: None,
                    received: 0,
                };
                self.wait_for("the TLS handshake".to_owned());
            }
        }
        step
    }

    /// Bytes arrived from the server.
    pub fn received(&mut self, bytes: &[u8], now: Instant) {
        self.now = now;
        if bytes.is_empty() || self.is_over() {
            return;
        }
        if self.tls.is_some() {
            self.received_tls(bytes);
        } else {
            self.received_plain(bytes);
        }
    }

    /// The server closed its side of the connection.
    pub fn eof(&mut self, now: Instant) {
        self.now = now;
        match &self.state {
            State::Closed | State::Failed(_) => {}
            State::Handshaking { .. } => {
                self.fail(SessionError::Handshake(HandshakeFailure::said(
                    "the server closed the connection during the handshake",
                )));
            }
            _ => {
                let mid_reply = self.parser.mid_reply();
                self.fail(SessionError::Closed { mid_reply });
            }
        }
    }

    /// Time has passed: ends the session with [`SessionError::Timeout`] if the outstanding
    /// wait is over its deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        let Some((deadline, waiting_for)) = &self.deadline else {
            return;
        };
        if now < *deadline || self.is_over() {
            return;
        }
        let waiting_for = waiting_for.clone();
        let pending = self.parser.buffered().len();
        let partial = if self.parser.mid_reply() {
            format!(" ({pending} byte(s) of an unfinished reply line received)")
        } else {
            String::new()
        };
        let silent_greeting = matches!(self.state, State::Greeting { .. })
            && self.tls.is_none()
            && !self.parser.mid_reply();
        let hint = if silent_greeting {
            "a server that speaks TLS from the first byte (implicit TLS, usually port 465) stays \
             silent until it sees a TLS ClientHello: try --tls implicit; otherwise raise \
             --timeout if the server is just slow"
        } else {
            "raise --timeout if the server is just slow"
        };
        self.fail(SessionError::Timeout {
            waiting_for,
            after: self.settings.timeout,
            partial,
            hint: hint.to_owned(),
        });
    }

    // ---------------------------------------------------------------------------------------
    // Intents from a front end
    // ---------------------------------------------------------------------------------------

    /// Sends one line as typed, with the meaning the current [`Phase`] gives it: a command
    /// (`STARTTLS` answered 220 upgrades, `DATA` answered 354 opens a message, `AUTH` passes the
    /// guard), a message line (dot-stuffed; a lone `.` ends the message), or an answer to a
    /// 334 (passes the guard; `*` cancels).
    ///
    /// # Errors
    /// Refusals ([`SessionError::Guard`], [`SessionError::Line`], ...) send nothing and leave
    /// the session as it was; fatal errors end it.
    pub fn send_line(
        &mut self,
        line: &str,
        one_time: OneTimeOverride,
        now: Instant,
    ) -> Result<Sent, SessionError> {
        self.begin_request(now)?;
        let phase = self.phase();
        let checked = match phase {
            // Message text may carry ESC (ISO-2022-JP), but never a line break.
            Phase::Message => check_single_line(line),
            Phase::Command | Phase::SaslChallenge => check_command_line(line),
        };
        if let Err(error) = checked {
            self.emit(EventKind::Warning(format!("not sent: {error}")));
            return Err(error.into());
        }
        match phase {
            Phase::Message if line == END_OF_DATA => self.end_message().map(|mut steps| {
                if steps.len() == 1 {
                    Sent::Step(steps.remove(0))
                } else {
                    Sent::Steps(steps)
                }
            }),
            Phase::Message => self.message_line(line).map(|()| Sent::Queued),
            Phase::SaslChallenge => self.typed_answer(line, one_time).map(Sent::Step),
            Phase::Command => self.command(line, one_time).map(Sent::Step),
        }
    }

    /// Sends `lines` as one pipelined group (RFC 2920): one write, each reply paired with its
    /// command in order, one step per line.
    ///
    /// Every check runs before anything is sent, and a failed one sends nothing: the server
    /// advertised PIPELINING (unless `force`); only the last line may be one whose reply
    /// changes what follows (EHLO, HELO, LHLO, DATA, QUIT and NOOP by RFC 2920 §3.1, AUTH by
    /// RFC 4954 §4, STARTTLS by RFC 3207 §4); BDAT is sent with its data, not as a line; and
    /// every line passes what it would pass alone, the credential guard included.
    ///
    /// # Errors
    /// [`SessionError::GroupRefused`] and the refusals of [`ClientSession::send_line`].
    pub fn pipeline(
        &mut self,
        lines: &[&str],
        one_time: OneTimeOverride,
        force: bool,
        now: Instant,
    ) -> Result<Vec<StepId>, SessionError> {
        self.begin_request(now)?;
        self.expect_ready()?;
        let refuse = |session: &mut Self, reason: String| {
            let error = SessionError::GroupRefused { reason };
            session.emit(EventKind::Warning(error.to_string()));
            Err(error)
        };
        if lines.is_empty() {
            return refuse(self, "the group is empty".to_owned());
        }
        let offered = self
            .capabilities
            .as_ref()
            .is_some_and(|c| c.has("PIPELINING"));
        if !offered && !force {
            return refuse(
                self,
                "the server's EHLO did not advertise PIPELINING; send the commands one by one, \
                 or force the group to see what the server does with it"
                    .to_owned(),
            );
        }
        let mut credentials = false;
        for (index, line) in lines.iter().enumerate() {
            if let Err(error) = check_command_line(line) {
                self.emit(EventKind::Warning(format!("not sent: {error}")));
                return Err(error.into());
            }
            let kind = classify(line);
            let verb = split_verb(line).0;
            let last = index + 1 == lines.len();
            let ends_a_group = matches!(
                kind,
                CommandKind::Hello { .. }
                    | CommandKind::Data
                    | CommandKind::Quit
                    | CommandKind::Auth { .. }
                    | CommandKind::StartTls
                    | CommandKind::Xclient
            ) || verb == "NOOP";
            if ends_a_group && !last {
                return refuse(
                    self,
                    format!(
                        "{} may only be the last command of a group (RFC 2920 §3.1, RFC 4954 \
                         §4, RFC 3207 §4): its reply decides what the next lines mean",
                        escape_str(&verb)
                    ),
                );
            }
            if verb == "BDAT" {
                return refuse(
                    self,
                    "BDAT carries its chunk of the message right behind it; send it with the \
                     BDAT notation, not as a line of a group"
                        .to_owned(),
                );
            }
            if kind == CommandKind::StartTls && self.tls.is_some() {
                return Err(SessionError::AlreadyTls);
            }
            if kind == CommandKind::Mail {
                self.check_requiretls(line)?;
            }
            match self.secret_use(line) {
                Some(SecretUse::AlreadySent) => {
                    self.emit(EventKind::Warning(
                        "not sent: a line of the group repeats credentials already sent in \
                         this session"
                            .to_owned(),
                    ));
                    return Err(SessionError::Line(LineError::RepeatsCredentials));
                }
                Some(SecretUse::NotYetSent) => credentials = true,
                None => credentials |= matches!(kind, CommandKind::Auth { .. }),
            }
        }
        if credentials {
            // Judged once for the group, before anything leaves; each line then records it.
            self.consult_guard(one_time)?;
        }
        let mut steps = Vec::with_capacity(lines.len());
        for line in lines {
            steps.push(self.command(line, one_time)?);
        }
        Ok(steps)
    }

    /// Sends STARTTLS; a 220 starts the handshake, and the step completes once TLS is up.
    /// Any other reply completes it at once and the connection stays in cleartext.
    ///
    /// # Errors
    /// [`SessionError::AlreadyTls`] on a TLS connection; the request errors of
    /// [`ClientSession::send_line`].
    pub fn starttls(&mut self, now: Instant) -> Result<StepId, SessionError> {
        self.begin_request(now)?;
        self.expect_ready()?;
        self.send_starttls()
    }

    /// Runs a whole SASL exchange with stored credentials, after the guard allows it and the
    /// server has advertised the mechanism. The transcript shows
    /// `AUTH PLAIN <credentials for USER hidden>`. The step completes with the final reply.
    ///
    /// # Errors
    /// [`SessionError::Guard`], [`SessionError::NotAdvertised`] and
    /// [`SessionError::CredentialsAfterOutOfStep`] send nothing.
    pub fn authenticate(
        &mut self,
        mechanism: Mechanism,
        credentials: Credentials,
        one_time: OneTimeOverride,
        now: Instant,
    ) -> Result<StepId, SessionError> {
        self.begin_request(now)?;
        self.expect_ready()?;
        // The guard first: where credentials would cross unprotected, that is what the user
        // must hear, whatever the server advertised.
        let consent = self.consult_guard(one_time)?;
        self.check_advertised(mechanism)?;
        if mechanism == Mechanism::External {
            self.check_client_identity()?;
        }
        self.record_consent(consent);
        if let Some(caveat) = mechanism.caveat() {
            self.emit(EventKind::Note(caveat.to_owned()));
        }
        if mechanism.needs_secret() {
            self.remember_credential_forms(&credentials);
        }
        let mut client = SaslClient::new(mechanism, credentials);
        let hidden = format!("<credentials for {} hidden>", escape_str(client.user()));
        match client.initial_response(self.settings.sasl.initial_response) {
            // EXTERNAL's message is only the authorization identity asked for: no secret.
            Some(response) if !mechanism.needs_secret() => {
                let line = format!("AUTH {} {}", mechanism.name(), response.expose());
                self.send(line.as_bytes(), escape_str(&line), SentKind::Command);
            }
            Some(response) => {
                self.remember_secret(response.expose(), true);
                let wire =
                    Zeroizing::new(format!("AUTH {} {}", mechanism.name(), response.expose()));
                self.send(
                    wire.as_bytes(),
                    format!("AUTH {} {hidden}", mechanism.name()),
                    SentKind::Credentials,
                );
            }
            None => {
                let line = format!("AUTH {}", mechanism.name());
                self.send(line.as_bytes(), line.clone(), SentKind::Command);
            }
        }
        Ok(self.await_reply(
            format!("the reply to AUTH {}", mechanism.name()),
            Pending::Exchange {
                client: Box::new(client),
            },
        ))
    }

    /// Sends an answer typed for a 334 challenge, but only while the server still waits for
    /// one: a front end that asked the user for a hidden answer uses this rather than
    /// [`ClientSession::send_line`], so an answer can never go out as a visible command.
    ///
    /// # Errors
    /// [`SessionError::NoChallenge`] when no challenge is pending, [`SessionError::Guard`] when
    /// the guard refuses (both send nothing).
    pub fn answer_challenge(
        &mut self,
        answer: &Secret,
        one_time: OneTimeOverride,
        now: Instant,
    ) -> Result<StepId, SessionError> {
        self.begin_request(now)?;
        if !matches!(self.state, State::Challenge { probe: false }) {
            self.emit(EventKind::Warning(SessionError::NoChallenge.to_string()));
            return Err(SessionError::NoChallenge);
        }
        if let Err(error) = check_command_line(answer.expose()) {
            self.emit(EventKind::Warning(format!("not sent: {error}")));
            return Err(error.into());
        }
        self.typed_answer(answer.expose(), one_time)
    }

    /// Asks whether the server would run a SASL exchange now without ever sending a
    /// credential: sends `AUTH <MECHANISM>` with no initial response. A 334 leaves the session
    /// in a challenge that can only be cancelled ([`ClientSession::cancel_exchange`]).
    ///
    /// The guard is not consulted because nothing secret can cross: the mechanism is typed,
    /// so no caller can smuggle a response into the line.
    ///
    /// # Errors
    /// The request errors of [`ClientSession::send_line`].
    pub fn probe_auth(
        &mut self,
        mechanism: Mechanism,
        now: Instant,
    ) -> Result<StepId, SessionError> {
        self.begin_request(now)?;
        self.expect_ready()?;
        let line = format!("AUTH {}", mechanism.name());
        self.send(line.as_bytes(), line.clone(), SentKind::Command);
        Ok(self.await_reply(format!("the reply to {line}"), Pending::Probe))
    }

    /// Cancels a pending challenge with `*` (RFC 4954 §4), which carries nothing.
    ///
    /// # Errors
    /// [`SessionError::NoChallenge`] when no challenge is pending.
    pub fn cancel_exchange(&mut self, now: Instant) -> Result<StepId, SessionError> {
        self.begin_request(now)?;
        if !matches!(self.state, State::Challenge { .. }) {
            return Err(SessionError::NoChallenge);
        }
        self.send(b"*", "*".to_owned(), SentKind::Command);
        Ok(self.await_reply(
            "the reply to the AUTH cancellation".to_owned(),
            Pending::Cancel,
        ))
    }

    /// The driver could not move bytes (connecting, reading, writing, or its own deadline on
    /// a write): the session ends with `error`, which is returned. A session that already
    /// failed keeps its first error and returns that.
    pub fn transport_failed(&mut self, error: SessionError, now: Instant) -> SessionError {
        self.now = now;
        self.fail(error)
    }

    /// Adds a front end's own event (an expectation result, a note) to the same transcript.
    pub fn record(&mut self, kind: EventKind, now: Instant) {
        self.now = now;
        self.emit(kind);
    }

    /// Ends the session from our side: queues TLS's close_notify if TLS is up and emits
    /// `Closed`. After a fatal error nothing is sent.
    pub fn close(&mut self, now: Instant) {
        self.now = now;
        if matches!(self.state, State::Failed(_)) {
            return;
        }
        self.seal();
        if let Some(conn) = self.tls.as_mut()
            && !conn.is_handshaking()
        {
            conn.send_close_notify();
            self.pump_tls_out();
        }
        self.state = State::Closed;
        self.deadline = None;
        if !std::mem::replace(&mut self.close_emitted, true) {
            self.emit(EventKind::Closed);
        }
    }

    // ---------------------------------------------------------------------------------------
    // Outputs polled by the driver
    // ---------------------------------------------------------------------------------------

    /// Bytes to write to the socket, if any. The buffer is zeroed when dropped: in cleartext
    /// (with an override) it may hold credentials.
    pub fn poll_transmit(&mut self) -> Option<Zeroizing<Vec<u8>>> {
        self.seal();
        if self.transmit.is_empty() {
            None
        } else {
            Some(std::mem::replace(
                &mut self.transmit,
                Zeroizing::new(Vec::new()),
            ))
        }
    }

    /// How many bytes wait to be written.
    pub fn pending_transmit(&self) -> usize {
        self.transmit.len() + self.to_seal.len()
    }

    /// The next transcript event, already redacted.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The completion of `step`, once its reply has arrived.
    pub fn take_completion(&mut self, step: StepId) -> Option<Reply> {
        let index = self.completions.iter().position(|c| c.step == step)?;
        self.completions.remove(index).map(|c| c.reply)
    }

    /// When the outstanding wait times out, if anything is outstanding.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadline.as_ref().map(|(at, _)| *at)
    }

    /// The fatal error that ended the session, if one did.
    pub fn failure(&self) -> Option<&SessionError> {
        match &self.state {
            State::Failed(error) => Some(error),
            _ => None,
        }
    }

    /// Whether the session can take no more requests (closed, QUIT answered, or failed).
    pub fn is_over(&self) -> bool {
        matches!(self.state, State::Closed | State::Failed(_))
    }

    /// Whether a reply is awaited (a command, the greeting or a handshake is outstanding).
    pub fn is_waiting(&self) -> bool {
        matches!(
            self.state,
            State::Greeting { .. } | State::Handshaking { .. } | State::Awaiting { .. }
        )
    }

    /// Unasked replies shown since the last request.
    pub fn unasked_replies(&self) -> usize {
        self.unasked_count
    }

    // ---------------------------------------------------------------------------------------
    // State, for front ends
    // ---------------------------------------------------------------------------------------

    /// The current protection, as the guard sees it.
    pub fn protection(&self) -> &Protection {
        &self.protection
    }

    /// Whether lines now cross inside TLS.
    pub fn security(&self) -> Security {
        match &self.tls {
            Some(conn) if !conn.is_handshaking() => Security::Tls,
            _ => Security::Cleartext,
        }
    }

    /// Details of the TLS session, once established.
    pub fn tls_info(&self) -> Option<&TlsInfo> {
        self.tls_info.as_ref()
    }

    /// Capabilities from the latest EHLO on the current transport (forgotten at TLS start).
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.capabilities.as_ref()
    }

    /// What the next line will mean.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Message => Phase::Message,
            State::Challenge { .. } => Phase::SaslChallenge,
            _ => Phase::Command,
        }
    }

    /// The user the server accepted with 235 in an exchange run with stored credentials.
    pub fn authenticated_as(&self) -> Option<&str> {
        self.authenticated_as.as_deref()
    }

    /// Whether the server has sent replies nobody asked for on this connection.
    pub fn is_out_of_step(&self) -> bool {
        self.out_of_step
    }

    /// The settings the session was made with.
    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    // ---------------------------------------------------------------------------------------
    // Requests
    // ---------------------------------------------------------------------------------------

    /// Common gate of every request: the sticky error, the end, an outstanding command, and
    /// (when unasked bytes are fatal) a reply that began unasked and is still arriving.
    fn begin_request(&mut self, now: Instant) -> Result<(), SessionError> {
        self.now = now;
        match &self.state {
            State::Failed(error) => return Err(error.clone()),
            State::Closed | State::Connecting => return Err(SessionError::Ended),
            State::Greeting { .. } | State::Handshaking { .. } | State::Awaiting { .. } => {
                return Err(SessionError::Busy);
            }
            State::Ready | State::Challenge { .. } | State::Message => {}
        }
        if self.unasked_begun && self.settings.unasked == UnaskedReplies::Fatal {
            let what = format!(
                "{} byte(s) (\"{}\")",
                self.parser.buffered().len(),
                self.preview(self.parser.buffered())
            );
            let when = self.unasked_moment();
            return Err(self.fail(SessionError::OutOfStep { what, when }));
        }
        // Unasked replies were shown as they came; a new request starts a new count.
        self.unasked_count = 0;
        self.completions.retain(|c| c.step != UNASKED_STEP);
        Ok(())
    }

    /// Requests that are commands need the command phase: not inside a message or a challenge.
    fn expect_ready(&self) -> Result<(), SessionError> {
        match self.state {
            State::Ready => Ok(()),
            State::Message => Err(SessionError::NoMessage),
            _ => Err(SessionError::Busy),
        }
    }

    fn command(&mut self, line: &str, one_time: OneTimeOverride) -> Result<StepId, SessionError> {
        let kind = classify(line);
        if !matches!(kind, CommandKind::Auth { .. }) {
            match self.secret_use(line) {
                Some(SecretUse::AlreadySent) => {
                    // A credential this session already sent, now typed as a command (a
                    // scenario that spells out the SASL answers after a bare AUTH): as a
                    // command it would be shown in full. Nothing crosses.
                    self.emit(EventKind::Warning(
                        "not sent: this line repeats credentials already sent in this session, \
                         as a command; a bare AUTH <MECH> runs the whole exchange, so remove \
                         the answer lines"
                            .to_owned(),
                    ));
                    return Err(SessionError::Line(LineError::RepeatsCredentials));
                }
                Some(SecretUse::NotYetSent) => return self.credential_line(line, one_time),
                None => {}
            }
        }
        let verb = split_verb(line).0;
        if matches!(kind, CommandKind::Mail | CommandKind::Rcpt) {
            self.check_requiretls(line)?;
            self.inspect_envelope(line);
        }
        if matches!(kind, CommandKind::Xclient | CommandKind::Xforward) {
            self.inspect_forwarding(line);
        }
        match kind {
            CommandKind::StartTls => self.send_starttls(),
            CommandKind::Auth {
                mechanism,
                has_initial_response,
            } => {
                self.check_guard(one_time)?;
                let display = if has_initial_response {
                    let response = auth_initial_response(line).unwrap_or_default();
                    match (mechanism.as_str(), plain_user(response)) {
                        ("PLAIN", Some(user)) => {
                            format!("AUTH PLAIN <credentials for {} hidden>", escape_str(&user))
                        }
                        _ => format!("AUTH {} <initial response hidden>", escape_str(&mechanism)),
                    }
                } else {
                    self.redact_text(escape_str(line))
                };
                if let Some(response) = auth_initial_response(line) {
                    self.remember_secret(response, true);
                    if let Some(password) = plain_password(response) {
                        let user = plain_user(response);
                        for form in credential_forms(user.as_deref(), &password) {
                            self.remember_secret(form.expose(), true);
                        }
                    }
                }
                let kind = if has_initial_response {
                    SentKind::Credentials
                } else {
                    SentKind::Command
                };
                self.send(line.as_bytes(), display, kind);
                Ok(self.await_reply(
                    format!("the reply to {verb}"),
                    Pending::TypedAuth {
                        // EXTERNAL sends no secret by design: a 235 to it is no warning.
                        credential_sent: has_initial_response
                            || mechanism.eq_ignore_ascii_case("EXTERNAL"),
                    },
                ))
            }
            kind => {
                self.send(line.as_bytes(), escape_str(line), SentKind::Command);
                let waiting_for = if verb.is_empty() {
                    "the reply to an empty line".to_owned()
                } else {
                    format!("the reply to {verb}")
                };
                Ok(self.await_reply(waiting_for, Pending::Command { kind, verb }))
            }
        }
    }

    /// A command that holds a configured secret (the password, its base64, or a SASL response
    /// built from it) before any exchange sent it: a credential, guarded and hidden.
    fn credential_line(
        &mut self,
        line: &str,
        one_time: OneTimeOverride,
    ) -> Result<StepId, SessionError> {
        self.check_guard(one_time)?;
        let display = self.redact_text(escape_str(&self.hide_forwarded_secrets(line)));
        self.mark_contained_secrets_sent(line);
        self.send(line.as_bytes(), display, SentKind::Credentials);
        let verb = self.redact_text(escape_str(&split_verb(line).0));
        Ok(self.await_reply(
            format!("the reply to {verb}"),
            Pending::Command {
                kind: CommandKind::Other,
                // Kept only in its hidden form: the verb itself may be the secret.
                verb,
            },
        ))
    }

    fn send_starttls(&mut self) -> Result<StepId, SessionError> {
        if self.tls.is_some() {
            return Err(SessionError::AlreadyTls);
        }
        self.send(b"STARTTLS", "STARTTLS".to_owned(), SentKind::Command);
        Ok(self.await_reply("the reply to STARTTLS".to_owned(), Pending::StartTls))
    }

    fn typed_answer(
        &mut self,
        line: &str,
        one_time: OneTimeOverride,
    ) -> Result<StepId, SessionError> {
        // "*" cancels the exchange (RFC 4954 §4) and carries nothing, so it needs no consent.
        if line.trim() == "*" {
            self.send(line.as_bytes(), "*".to_owned(), SentKind::Command);
            return Ok(self.await_reply(
                "the reply to the AUTH cancellation".to_owned(),
                Pending::Cancel,
            ));
        }
        if matches!(self.state, State::Challenge { probe: true }) {
            return Err(SessionError::NoChallenge);
        }
        self.check_guard(one_time)?;
        self.remember_secret(line.trim(), true);
        self.send(
            line.as_bytes(),
            "<SASL answer hidden>".to_owned(),
            SentKind::Credentials,
        );
        Ok(self.await_reply(
            "the reply to the SASL answer".to_owned(),
            Pending::TypedAnswer,
        ))
    }

    fn message_line(&mut self, line: &str) -> Result<(), SessionError> {
        let wire = stuff_line(line);
        let (display, kind) = match self.secret_use(line) {
            Some(_) => {
                self.check_guard(OneTimeOverride::None)?;
                self.mark_contained_secrets_sent(line);
                (self.redact_text(escape_str(&wire)), SentKind::Credentials)
            }
            None => (escape_str(&wire), SentKind::MessageLine),
        };
        self.send(wire.as_bytes(), display, kind);
        Ok(())
    }

    fn end_message(&mut self) -> Result<Vec<StepId>, SessionError> {
        self.send(b".", ".".to_owned(), SentKind::MessageLine);
        Ok(self.await_message_replies("the end of the message", || Pending::EndOfMessage))
    }

    /// The steps that the end of a message completes: one, or under LMTP one per accepted
    /// recipient, in the order the recipients were given (RFC 2033 §4.2; the same for BDAT
    /// LAST, RFC 3030 §4.2).
    fn await_message_replies(&mut self, what: &str, pending: impl Fn() -> Pending) -> Vec<StepId> {
        let replies = if self.lmtp { self.recipients.max(1) } else { 1 };
        (0..replies)
            .map(|index| {
                let waiting_for = if replies == 1 {
                    format!("the reply to {what}")
                } else {
                    format!(
                        "the reply for recipient {} of {replies} to {what}",
                        index + 1
                    )
                };
                self.await_reply(waiting_for, pending())
            })
            .collect()
    }

    /// Queues one line of a message read from a file: dot-stuffed, with no transcript event
    /// of its own (a front end records a summary of the whole body instead). The line is
    /// bytes, not text, and carries no line ending; a CR or LF inside it is refused.
    ///
    /// # Errors
    /// [`SessionError::NoMessage`] outside a message, [`SessionError::Line`] for a line break
    /// inside the line, the guard's refusal for a line holding a configured secret.
    pub fn message_data(&mut self, line: &[u8], now: Instant) -> Result<(), SessionError> {
        self.now = now;
        if !matches!(self.state, State::Message) {
            return match self.failure() {
                Some(error) => Err(error.clone()),
                None => Err(SessionError::NoMessage),
            };
        }
        if memchr::memchr2(b'\r', b'\n', line).is_some() {
            return Err(SessionError::Line(LineError::LineBreak));
        }
        if self
            .secrets
            .iter()
            .any(|s| holds_bytes(line, s.value.expose().as_bytes()))
        {
            self.check_guard(OneTimeOverride::None)?;
            for secret in &mut self.secrets {
                if holds_bytes(line, secret.value.expose().as_bytes()) {
                    secret.sent = true;
                }
            }
        }
        let target = if self.tls.is_some() {
            &mut self.to_seal
        } else {
            &mut self.transmit
        };
        if line.first() == Some(&b'.') {
            target.push(b'.');
        }
        target.extend_from_slice(line);
        target.extend_from_slice(b"\r\n");
        Ok(())
    }

    /// Queues a run of whole lines of a message read from a file, each ended by LF or CRLF
    /// (a last line without either is ended here): dot-stuffed, sent with CRLF, and with no
    /// transcript event (a front end records a summary of the body instead). The bulk form of
    /// [`ClientSession::message_data`] for large messages: the block is looked at once for
    /// secrets and carriage returns, not line by line.
    ///
    /// Secrets never span lines, so a caller that cuts a file only at line ends loses no
    /// match between two blocks.
    ///
    /// # Errors
    /// [`SessionError::NoMessage`] outside a message; [`SessionError::Line`] for a carriage
    /// return that no LF follows (nothing of the block is queued); the guard's refusal for a
    /// block holding a configured secret.
    pub fn message_lines(&mut self, block: &[u8], now: Instant) -> Result<(), SessionError> {
        self.now = now;
        if !matches!(self.state, State::Message) {
            return match self.failure() {
                Some(error) => Err(error.clone()),
                None => Err(SessionError::NoMessage),
            };
        }
        if memchr::memchr_iter(b'\r', block).any(|at| block.get(at + 1) != Some(&b'\n')) {
            return Err(SessionError::Line(LineError::LineBreak));
        }
        if self
            .secrets
            .iter()
            .any(|s| holds_bytes(block, s.value.expose().as_bytes()))
        {
            self.check_guard(OneTimeOverride::None)?;
            for secret in &mut self.secrets {
                if holds_bytes(block, secret.value.expose().as_bytes()) {
                    secret.sent = true;
                }
            }
        }
        let target = if self.tls.is_some() {
            &mut self.to_seal
        } else {
            &mut self.transmit
        };
        target.reserve(block.len() + block.len() / 32 + 2);
        let mut start = 0;
        while start < block.len() {
            let end = memchr::memchr(b'\n', &block[start..]).map_or(block.len(), |i| start + i);
            let mut line = &block[start..end];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            if line.first() == Some(&b'.') {
                target.push(b'.');
            }
            target.extend_from_slice(line);
            target.extend_from_slice(b"\r\n");
            start = end + 1;
        }
        Ok(())
    }

    /// Sends one BDAT chunk (RFC 3030): `BDAT <size>` (with `LAST` for the final one) and
    /// the bytes exactly as given, no dot-stuffing, no line ending added. The step completes
    /// with the server's reply to the chunk ([`Sent::Step`]); under LMTP the chunk with LAST
    /// is answered once per accepted recipient ([`Sent::Steps`] when there are several, RFC
    /// 3030 §4.2). The transcript shows the command and the size, not the bytes.
    ///
    /// # Errors
    /// [`SessionError::ExtensionNotOffered`] when the server did not advertise CHUNKING and
    /// `force` is false; the guard's refusal for a chunk holding a configured secret; the
    /// request errors of [`ClientSession::send_line`].
    pub fn bdat(
        &mut self,
        chunk: &[u8],
        last: bool,
        force: bool,
        now: Instant,
    ) -> Result<Sent, SessionError> {
        self.begin_request(now)?;
        self.expect_ready()?;
        let offered = self
            .capabilities
            .as_ref()
            .is_some_and(|c| c.has("CHUNKING"));
        if !offered && !force {
            let error = SessionError::ExtensionNotOffered {
                extension: "CHUNKING",
                what: "BDAT".to_owned(),
            };
            self.emit(EventKind::Warning(error.to_string()));
            return Err(error);
        }
        let secret = self
            .secrets
            .iter()
            .any(|s| holds_bytes(chunk, s.value.expose().as_bytes()));
        if secret {
            self.check_guard(OneTimeOverride::None)?;
            for known in &mut self.secrets {
                if holds_bytes(chunk, known.value.expose().as_bytes()) {
                    known.sent = true;
                }
            }
        }
        let command = if last {
            format!("BDAT {} LAST", chunk.len())
        } else {
            format!("BDAT {}", chunk.len())
        };
        let security = self.security();
        self.send(command.as_bytes(), command.clone(), SentKind::Command);
        let target = if self.tls.is_some() {
            &mut self.to_seal
        } else {
            &mut self.transmit
        };
        target.extend_from_slice(chunk);
        self.emit(EventKind::Sent {
            security,
            text: format!("<{} byte(s) of message data>", chunk.len()),
            kind: if secret {
                SentKind::Credentials
            } else {
                SentKind::MessageLine
            },
        });
        if !last {
            return Ok(Sent::Step(self.await_reply(
                format!("the reply to {command}"),
                Pending::Chunk { last: false },
            )));
        }
        let mut steps = self.await_message_replies(&command, || Pending::Chunk { last: true });
        Ok(if steps.len() == 1 {
            Sent::Step(steps.remove(0))
        } else {
            Sent::Steps(steps)
        })
    }

    /// Refuses a MAIL FROM with REQUIRETLS unless the connection is verified TLS: the
    /// parameter promises the message travels only that way (RFC 8689), starting here.
    fn check_requiretls(&mut self, line: &str) -> Result<(), SessionError> {
        let requires = params::parse(line)
            .and_then(Result::ok)
            .is_some_and(|command| command.verb == params::Verb::Mail && command.has("REQUIRETLS"));
        let why = match &self.protection {
            _ if !requires => return Ok(()),
            Protection::VerifiedTls => return Ok(()),
            Protection::Cleartext => "the connection is in cleartext".to_owned(),
            Protection::UnverifiedTls(problem) => format!(
                "the server's certificate was not verified ({})",
                problem.detail
            ),
        };
        let error = SessionError::RequireTls { why };
        self.emit(EventKind::Warning(error.to_string()));
        Err(error)
    }

    /// Warnings about a MAIL FROM or RCPT TO line before it is sent: parameters that break
    /// their RFC or need an extension the server did not advertise, a declared size over the
    /// server's limit, an address in UTF-8 without SMTPUTF8. The line is sent as typed.
    fn inspect_envelope(&mut self, line: &str) {
        let command = match params::parse(line) {
            None => return,
            Some(Err(error)) => {
                self.emit(EventKind::Warning(format!(
                    "{}; sent as typed, the server will likely refuse it",
                    escape_str(&error.to_string())
                )));
                return;
            }
            Some(Ok(command)) => command,
        };
        let mut warnings = Vec::new();
        if let Err(error) = params::validate(&command) {
            warnings.push(format!(
                "{}; sent as typed, the server will likely refuse it",
                escape_str(&error.to_string())
            ));
        }
        let capabilities = self.capabilities.as_ref();
        for param in &command.params {
            let Some(extension) = params::required_extension(param) else {
                continue;
            };
            if !capabilities.is_some_and(|c| c.has(extension)) {
                let keyword = param.keyword.to_ascii_uppercase();
                warnings.push(match capabilities {
                    None => format!(
                        "{keyword} needs the {extension} extension, and no EHLO on this \
                         connection has said what the server offers (send EHLO first)"
                    ),
                    Some(_) => format!(
                        "{keyword} needs the {extension} extension, which the server's EHLO did \
                         not advertise: expect a refusal (555, RFC 5321 §4.1.1.11)"
                    ),
                });
            }
        }
        if let (Some(declared), Some(limit)) = (
            command
                .param("SIZE")
                .and_then(|p| p.value)
                .and_then(|v| v.parse::<u64>().ok()),
            capabilities.and_then(Capabilities::size_limit),
        ) && limit > 0
            && declared > limit
        {
            warnings.push(format!(
                "SIZE={declared} is over the {limit} octets the server's EHLO advertised: expect \
                 the message refused (552 5.3.4, RFC 1870)"
            ));
        }
        if command.verb == params::Verb::Mail {
            self.mail_smtputf8 = command.has("SMTPUTF8");
        }
        if command.address_is_utf8() {
            let address = escape_str(command.address);
            if !capabilities.is_some_and(|c| c.has("SMTPUTF8")) {
                warnings.push(format!(
                    "<{address}> is an address in UTF-8 and the server did not advertise \
                     SMTPUTF8 (RFC 6531): expect it refused"
                ));
            } else if !self.mail_smtputf8 {
                warnings.push(format!(
                    "<{address}> is an address in UTF-8, and this transaction's MAIL FROM has no \
                     SMTPUTF8 parameter (RFC 6531 §3.4): expect it refused (553 5.6.7)"
                ));
            }
        }
        for warning in warnings {
            self.emit(EventKind::Warning(warning));
        }
    }

    /// EXTERNAL takes its identity from the client certificate: without one configured there
    /// is nothing for the server to take, and a server that did not ask for it has none.
    fn check_client_identity(&mut self) -> Result<(), SessionError> {
        let Some(identity) = &self.settings.client_identity else {
            let error = SessionError::NoClientCertificate;
            self.emit(EventKind::Warning(error.to_string()));
            return Err(error);
        };
        if self.tls.is_some() && !identity.was_asked() {
            self.emit(EventKind::Warning(
                "the server did not ask for a client certificate in the TLS handshake, so it \
                 has no identity for EXTERNAL: expect a refusal (Postfix: \
                 smtpd_tls_ask_ccert = yes)"
                    .to_owned(),
            ));
        }
        Ok(())
    }

    /// Warnings about an XCLIENT or XFORWARD line before it is sent (see
    /// [`xclient::warnings`]), and what an XCLIENT LOGIN claims. The line is sent as typed.
    fn inspect_forwarding(&mut self, line: &str) {
        let Some((forwarding, attributes)) = xclient::parse(line) else {
            return;
        };
        let mut warnings = xclient::warnings(forwarding, &attributes, self.capabilities.as_ref());
        let login = attributes
            .iter()
            .find(|a| a.name == "LOGIN")
            .and_then(|a| a.decoded.clone())
            .filter(|login| !login.starts_with('['));
        if forwarding == xclient::Forwarding::Xclient
            && let Some(login) = login
        {
            let login = self.redact_text(escape_str(&login));
            warnings.push(format!(
                "XCLIENT LOGIN={login} carries a login name, no password: a server that \
                 authorizes this client takes the session as authenticated as {login} without \
                 any credential checked"
            ));
        }
        for warning in warnings {
            self.emit(EventKind::Warning(warning));
        }
    }

    /// XCLIENT was accepted: the server starts over as if the client it names had just
    /// connected (Postfix's XCLIENT_README), so what this connection learned about the session
    /// is forgotten: the EHLO capabilities, a login, a transaction. The TLS layer stays.
    fn start_over(&mut self, code: u16) {
        self.capabilities = None;
        self.authenticated_as = None;
        self.lmtp = false;
        self.recipients = 0;
        self.mail_smtputf8 = false;
        let how = if code == 220 {
            "the server greets again (220) as if the client XCLIENT named had just connected"
                .to_owned()
        } else {
            format!(
                "the server accepted XCLIENT with {code} instead of the new 220 greeting \
                 XCLIENT_README describes (an old Postfix); the session still starts over"
            )
        };
        self.emit(EventKind::Note(format!(
            "{how}: its capabilities and any login are forgotten, send EHLO again{}",
            if self.tls.is_some() {
                "; TLS stays up"
            } else {
                ""
            }
        )));
    }

    fn check_advertised(&mut self, mechanism: Mechanism) -> Result<(), SessionError> {
        let advertised = match &self.capabilities {
            None => "no EHLO on this connection has said which AUTH mechanisms the server \
                     offers (send EHLO first)"
                .to_owned(),
            Some(capabilities) => {
                let offered = capabilities.auth_mechanisms();
                if offered
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case(mechanism.name()))
                {
                    return Ok(());
                }
                if offered.is_empty() {
                    "the server's EHLO did not advertise AUTH".to_owned()
                } else {
                    format!(
                        "the server's EHLO advertised only AUTH {}",
                        offered.join(" ")
                    )
                }
            }
        };
        if self.settings.sasl.force {
            self.emit(EventKind::Warning(format!(
                "AUTH {} forced: {advertised}",
                mechanism.name()
            )));
            return Ok(());
        }
        let error = SessionError::NotAdvertised {
            mechanism: mechanism.name().to_owned(),
            advertised,
        };
        self.emit(EventKind::Warning(error.to_string()));
        Err(error)
    }

    /// Asks the guard whether credentials may be sent now, and records its answer.
    fn check_guard(&mut self, one_time: OneTimeOverride) -> Result<(), SessionError> {
        let consent = self.consult_guard(one_time)?;
        self.record_consent(consent);
        Ok(())
    }

    /// Asks the guard; a refusal is recorded at once, an override only once the credentials
    /// really go out ([`Self::record_consent`]), so the transcript never announces a crossing
    /// that a later check stopped.
    fn consult_guard(
        &mut self,
        one_time: OneTimeOverride,
    ) -> Result<Option<GuardOutcome>, SessionError> {
        if self.out_of_step {
            let error = SessionError::CredentialsAfterOutOfStep;
            self.emit(EventKind::Warning(error.to_string()));
            return Err(error);
        }
        match guard::decide(&self.protection, self.settings.policy, one_time) {
            Decision::Allow => Ok(None),
            Decision::AllowedByOverride(refusal) => {
                // Which permission applied: a standing flag covers the case whatever was typed.
                let standing = match refusal {
                    Refusal::Cleartext => self.settings.policy.allow_cleartext_auth,
                    Refusal::Unverified(_) => self.settings.policy.allow_unverified_auth,
                };
                Ok(Some(GuardOutcome::Overridden {
                    refusal,
                    one_time: !standing,
                }))
            }
            Decision::Refuse(refusal) => {
                self.emit(EventKind::Guard(GuardOutcome::Refused(refusal.clone())));
                Err(SessionError::Guard(refusal))
            }
        }
    }

    fn record_consent(&mut self, consent: Option<GuardOutcome>) {
        if let Some(outcome) = consent {
            self.emit(EventKind::Guard(outcome));
        }
    }

    // ---------------------------------------------------------------------------------------
    // Bytes in
    // ---------------------------------------------------------------------------------------

    fn received_plain(&mut self, bytes: &[u8]) {
        if !self.parser.mid_reply() && !self.expects_reply() {
            self.unasked_begun = true;
        }
        self.parser.push(bytes);
        self.parse_replies();
    }

    fn received_tls(&mut self, bytes: &[u8]) {
        if let State::Handshaking {
            received, go_ahead, ..
        } = &mut self.state
        {
            // A TLS server's first record is a handshake message or an alert. Anything else
            // is not TLS: after a 220 to STARTTLS, cleartext slipped in before the handshake
            // (in the same read as the 220 or a later one, it is the same attack); with
            // implicit TLS, a server that speaks plain SMTP on this port.
            if *received == 0 && !matches!(bytes[0], 0x15 | 0x16) {
                let error = if go_ahead.is_some() {
                    SessionError::Injection {
                        bytes: bytes.len(),
                        preview: format!("\"{}\"", self.preview(bytes)),
                    }
                } else {
                    SessionError::Handshake(HandshakeFailure::said(format!(
                        "the server answered in cleartext (\"{}\"), not with TLS: this port \
                         speaks SMTP without TLS first; use --tls starttls",
                        self.preview(bytes)
                    )))
                };
                self.fail(error);
                return;
            }
            *received += bytes.len();
        }
        let mut rest = bytes;
        while !rest.is_empty() && !self.is_over() {
            let Some(conn) = self.tls.as_mut() else {
                return;
            };
            if let Err(error) = conn.read_tls(&mut rest) {
                self.fail(SessionError::Handshake(HandshakeFailure::said(format!(
                    "TLS records could not be read: {error}"
                ))));
                return;
            }
            let processed = conn.process_new_packets();
            let peer_closed = processed.as_ref().is_ok_and(|io| io.peer_has_closed());
            if let Err(error) = processed {
                // rustls queued an alert for the peer; it goes out before the error ends us.
                self.pump_tls_out();
                let failure = self.tls_failure(&error);
                self.fail(failure);
                return;
            }
            self.pump_tls_out();
            let handshake_done = matches!(self.state, State::Handshaking { .. })
                && !self.tls.as_ref().is_some_and(|c| c.is_handshaking());
            if handshake_done {
                self.handshake_complete();
                if self.is_over() {
                    return;
                }
            }
            let plaintext = self.take_plaintext();
            if !plaintext.is_empty() {
                self.received_plain(&plaintext);
            }
            if peer_closed {
                self.eof(self.now);
                return;
            }
        }
    }

    /// Decrypted bytes waiting in the TLS layer.
    fn take_plaintext(&mut self) -> Vec<u8> {
        let mut plaintext = Vec::new();
        if let Some(conn) = self.tls.as_mut() {
            let mut chunk = [0u8; 4096];
            loop {
                match conn.reader().read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => plaintext.extend_from_slice(&chunk[..n]),
                }
            }
        }
        plaintext
    }

    fn parse_replies(&mut self) {
        while !self.is_over() {
            let reply = match self.parser.next_reply() {
                Ok(Some(reply)) => reply,
                Ok(None) => return,
                Err(error) => {
                    self.fail(SessionError::Protocol(error));
                    return;
                }
            };
            let unasked = std::mem::take(&mut self.unasked_begun) || !self.expects_reply();
            let reply = self.redact_reply(reply);
            if unasked {
                self.on_unasked(reply);
                // Behind an unasked reply may come the reply to what is outstanding.
                self.unasked_begun = self.parser.mid_reply() && !self.expects_reply();
            } else {
                let earlier_outstanding = self.on_reply(reply);
                // Bytes that came with our reply came before anything we send in answer to
                // it: they can only be the replies to commands sent earlier (the rest of a
                // pipelined group), and otherwise answer nothing of ours.
                self.unasked_begun = self.parser.mid_reply() && !earlier_outstanding;
            }
        }
    }

    fn expects_reply(&self) -> bool {
        matches!(self.state, State::Greeting { .. } | State::Awaiting { .. })
    }

    /// In words, when unasked bytes arrived.
    fn unasked_moment(&self) -> String {
        match self.state {
            State::Message => "while the message was being sent, before its final dot",
            State::Challenge { .. } => "while a SASL challenge waited for its answer",
            _ if self.security() == Security::Tls && self.capabilities.is_none() => {
                "inside TLS before any command was sent there"
            }
            _ => "while no command was waiting for a reply",
        }
        .to_owned()
    }

    fn on_unasked(&mut self, reply: Reply) {
        let security = self.security();
        if reply.code.value() == 421 {
            // RFC 5321 §3.8: a server may say it is closing at any time. That is what it is,
            // not a reply out of step.
            self.emit(EventKind::Received {
                security,
                reply: reply.clone(),
            });
            if self.settings.unasked == UnaskedReplies::Fatal {
                self.fail(SessionError::ServiceClosing {
                    reply: reply.summary(),
                });
            } else {
                self.unasked_count += 1;
                self.completions.push_back(Completion {
                    step: UNASKED_STEP,
                    reply,
                });
            }
            return;
        }
        let when = self.unasked_moment();
        if self.settings.unasked == UnaskedReplies::Fatal {
            self.emit(EventKind::Unasked {
                security,
                reply: reply.clone(),
            });
            self.fail(SessionError::OutOfStep {
                what: format!("the reply \"{}\"", reply.summary()),
                when,
            });
            return;
        }
        self.out_of_step = true;
        self.unasked_count += 1;
        self.emit(EventKind::Unasked {
            security,
            reply: reply.clone(),
        });
        if reply.code.value() == 334 {
            self.emit(EventKind::Warning(
                "a 334 (SASL challenge) arrived that answers nothing sent; the next line is \
                 treated as a command, never as a SASL answer"
                    .to_owned(),
            ));
        }
        if let State::Challenge { .. } = self.state {
            // The challenge this answer was for is no longer what the server waits for.
            self.state = State::Ready;
        }
        if self.unasked_count > MAX_UNASKED_REPLIES {
            self.fail(SessionError::UnaskedFlood {
                limit: MAX_UNASKED_REPLIES,
            });
            return;
        }
        self.completions.push_back(Completion {
            step: UNASKED_STEP,
            reply,
        });
    }

    /// Pairs `reply` with the oldest outstanding command. Returns whether commands sent
    /// before it arrived still wait for their replies (the rest of a pipelined group).
    fn on_reply(&mut self, reply: Reply) -> bool {
        let security = self.security();
        self.emit(EventKind::Received {
            security,
            reply: reply.clone(),
        });
        let state = std::mem::replace(&mut self.state, State::Ready);
        self.deadline = None;
        let (first, rest) = match state {
            State::Greeting { step } => {
                self.complete(step, reply);
                return false;
            }
            State::Awaiting { mut outstanding } => match outstanding.pop_front() {
                Some(first) => (first, outstanding),
                None => return false,
            },
            other => {
                // Only reached for states that expect no reply, which parse_replies rules out.
                self.state = other;
                return false;
            }
        };
        self.answer(first.step, first.pending, reply);
        if rest.is_empty() || self.is_over() {
            return false;
        }
        // The rest of a pipelined group. Commands that change the state (DATA, AUTH,
        // STARTTLS, EHLO, QUIT) may only end a group, so nothing above changed it.
        let waiting_for = rest
            .front()
            .map(|o| o.waiting_for.clone())
            .unwrap_or_default();
        self.state = State::Awaiting { outstanding: rest };
        self.wait_for(waiting_for);
        true
    }

    /// What the reply to one sent command means.
    fn answer(&mut self, step: StepId, pending: Pending, reply: Reply) {
        let code = reply.code.value();
        match pending {
            Pending::Command { kind, verb } => {
                let accepted = reply.code.class() == ReplyClass::PositiveCompletion;
                match kind {
                    CommandKind::Hello { extended: true } => {
                        self.capabilities = Capabilities::from_ehlo_reply(&reply);
                        // LMTP is the protocol whose greeting command is LHLO (RFC 2033).
                        self.lmtp = accepted && verb == "LHLO";
                    }
                    CommandKind::Mail if accepted => self.recipients = 0,
                    CommandKind::Mail => self.mail_smtputf8 = false,
                    CommandKind::Other if accepted && verb == "RSET" => self.recipients = 0,
                    CommandKind::Rcpt if accepted => self.recipients += 1,
                    CommandKind::Data if code == 354 => self.state = State::Message,
                    CommandKind::Quit => self.state = State::Closed,
                    CommandKind::Xclient if accepted || code == 220 => self.start_over(code),
                    _ => {}
                }
                if code == 334 {
                    self.emit(EventKind::Warning(
                        "a 334 (SASL challenge) answered something that was not AUTH; the next \
                         line is treated as a command, never as a SASL answer"
                            .to_owned(),
                    ));
                }
                self.complete(step, reply);
            }
            Pending::StartTls if code == 220 => {
                let stray = self.parser.buffered().to_vec();
                if !stray.is_empty() {
                    self.fail(SessionError::Injection {
                        bytes: stray.len(),
                        preview: format!("\"{}\"", self.preview(&stray)),
                    });
                    return;
                }
                if let Err(error) = self.start_handshake() {
                    self.fail(error);
                    return;
                }
                self.state = State::Handshaking {
                    step,
                    go_ahead: Some(reply),
                    received: 0,
                };
                self.wait_for("the TLS handshake".to_owned());
            }
            Pending::StartTls => {
                let consequence = if self.settings.policy.allow_cleartext_auth {
                    "and --allow-cleartext-auth lets credentials cross in cleartext"
                } else {
                    "and credentials remain blocked by the guard"
                };
                self.emit(EventKind::Warning(format!(
                    "STARTTLS refused ({}): the connection stays in cleartext, {consequence}",
                    reply.summary()
                )));
                self.complete(step, reply);
            }
            Pending::TypedAuth { credential_sent } => {
                if code == 334 {
                    self.state = State::Challenge { probe: false };
                } else if code == 235 && !credential_sent {
                    self.warn_no_credential_used();
                }
                self.complete(step, reply);
            }
            Pending::TypedAnswer => {
                if code == 334 {
                    self.state = State::Challenge { probe: false };
                }
                self.complete(step, reply);
            }
            Pending::Exchange { mut client } => {
                let mechanism = client.mechanism();
                if code != 334 {
                    if code == 235 {
                        self.authenticated_as = Some(client.user().to_owned());
                        if !client.secret_sent() && mechanism.needs_secret() {
                            self.warn_no_credential_used();
                        }
                    }
                    self.complete(step, reply);
                    return;
                }
                let challenge = reply.texts().next().unwrap_or_default().to_vec();
                if let Some(error) = client.error_challenge(&challenge) {
                    let answer = if mechanism == Mechanism::OAuthBearer {
                        "answered with a single %x01 as RFC 7628 §3.2.3 requires"
                    } else {
                        "answered with an empty line"
                    };
                    let error = self.redact_text(error);
                    self.emit(EventKind::Note(format!(
                        "the server refused the token; its error challenge, decoded: {error} \
                         ({answer}; the final reply follows)"
                    )));
                }
                let pending = match client.respond(&challenge) {
                    Ok(answer) if !mechanism.needs_secret() => {
                        let shown = if answer.is_empty() {
                            "<empty response>".to_owned()
                        } else {
                            escape_str(answer.expose())
                        };
                        self.send(answer.expose().as_bytes(), shown, SentKind::Command);
                        Pending::Exchange { client }
                    }
                    Ok(answer)
                        if mechanism == Mechanism::OAuthBearer && answer.expose() == "AQ==" =>
                    {
                        self.send(
                            b"AQ==",
                            "AQ== (%x01: ends the failed OAUTHBEARER exchange)".to_owned(),
                            SentKind::Command,
                        );
                        Pending::Exchange { client }
                    }
                    Ok(answer) => {
                        let hidden =
                            format!("<credentials for {} hidden>", escape_str(client.user()));
                        self.remember_secret(answer.expose(), true);
                        self.send(answer.expose().as_bytes(), hidden, SentKind::Credentials);
                        Pending::Exchange { client }
                    }
                    Err(error) => {
                        // RFC 4954 §4: "*" cancels the exchange.
                        self.send(b"*", "*".to_owned(), SentKind::Command);
                        Pending::AbortedExchange(error)
                    }
                };
                let waiting_for = match pending {
                    Pending::AbortedExchange(_) => "the reply to the AUTH cancellation",
                    _ => "the reply to the AUTH answer",
                };
                self.queue_step(step, pending, waiting_for.to_owned());
            }
            Pending::AbortedExchange(error) => {
                self.fail(SessionError::Sasl(error));
            }
            Pending::Probe => {
                if code == 334 {
                    self.state = State::Challenge { probe: true };
                }
                self.complete(step, reply);
            }
            Pending::Cancel => {
                if code == 334 {
                    // A server that challenges again after "*": the challenge stands, and
                    // only another cancellation may answer it.
                    self.state = State::Challenge { probe: true };
                }
                self.complete(step, reply);
            }
            Pending::EndOfMessage | Pending::Chunk { last: true } => {
                self.recipients = 0;
                self.complete(step, reply);
            }
            Pending::Chunk { last: false } => {
                // A chunk without LAST leaves the transaction open, unless it failed: a failed
                // chunk ends it (RFC 3030 §2).
                if reply.code.class() != ReplyClass::PositiveCompletion {
                    self.recipients = 0;
                }
                self.complete(step, reply);
            }
        }
    }

    fn warn_no_credential_used(&mut self) {
        self.emit(EventKind::Warning(
            "the server accepted AUTH (235) before any credential was sent: no password was \
             checked, so this says nothing about the account; a server that authenticates \
             anyone this way accepts mail from anyone"
                .to_owned(),
        ));
    }

    fn complete(&mut self, step: StepId, reply: Reply) {
        self.completions.push_back(Completion { step, reply });
    }

    // ---------------------------------------------------------------------------------------
    // TLS
    // ---------------------------------------------------------------------------------------

    fn start_handshake(&mut self) -> Result<(), SessionError> {
        // Nothing from before the handshake carries over: not bytes, not a half-run exchange,
        // not a login (the server forgets it too, RFC 3207 §4.2).
        self.parser.clear();
        self.unasked_begun = false;
        self.authenticated_as = None;
        if let Some(identity) = &self.settings.client_identity {
            identity.forget_asked();
        }
        *self
            .settings
            .verdict
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        let mut conn =
            rustls::ClientConnection::new(self.settings.tls.clone(), self.server_name.clone())
                .map_err(|e| {
                    SessionError::Handshake(HandshakeFailure {
                        description: describe_tls_error(&e),
                        cause: Some(e),
                    })
                })?;
        // Our own flush threshold bounds what is queued; rustls need not refuse plaintext.
        conn.set_buffer_limit(None);
        self.tls = Some(Box::new(conn));
        self.pump_tls_out();
        Ok(())
    }

    fn take_verdict(&self) -> Option<Verification> {
        self.settings
            .verdict
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn tls_failure(&self, error: &rustls::Error) -> SessionError {
        match self.take_verdict() {
            Some(Verification::Failed(problem)) => SessionError::Certificate(problem),
            _ => SessionError::Handshake(HandshakeFailure {
                description: describe_tls_error(error),
                cause: Some(error.clone()),
            }),
        }
    }

    fn handshake_complete(&mut self) {
        let State::Handshaking { step, go_ahead, .. } =
            std::mem::replace(&mut self.state, State::Ready)
        else {
            return;
        };
        self.deadline = None;
        let verification = self.take_verdict().unwrap_or_else(|| {
            Verification::Failed(CertificateProblem {
                kind: crate::tls::ProblemKind::NotChecked.label(),
                detail: "the certificate was not checked".to_owned(),
            })
        });
        let Some(conn) = self.tls.as_ref() else {
            return;
        };
        let info = TlsInfo::from_connection(
            conn,
            &self.settings.server_name,
            verification.clone(),
            &self.settings.anchors,
        );
        self.protection = match verification {
            Verification::Verified => Protection::VerifiedTls,
            Verification::Failed(problem) => Protection::UnverifiedTls(problem),
        };
        self.tls_info = Some(info.clone());
        self.emit(EventKind::TlsEstablished(Box::new(info)));
        if let Some(identity) = self.settings.client_identity.clone() {
            self.emit(EventKind::Note(if identity.was_asked() {
                format!(
                    "the server asked for a client certificate: presented {} (SHA-256 {})",
                    identity.subject, identity.fingerprint
                )
            } else {
                "the server did not ask for a client certificate; none was presented".to_owned()
            }));
        }
        if self.capabilities.take().is_some() {
            // RFC 3207 §4.2: what the server said before TLS cannot be trusted now.
            self.emit(EventKind::Note(
                "capabilities learned before TLS are forgotten; send EHLO again (RFC 3207 §4.2)"
                    .to_owned(),
            ));
        }
        match go_ahead {
            // Implicit TLS: the greeting comes inside TLS.
            None => {
                self.state = State::Greeting { step };
                self.wait_for("the greeting".to_owned());
            }
            Some(reply) => self.complete(step, reply),
        }
    }

    /// Hands the lines queued for TLS to rustls in one piece, so they fill whole records.
    fn seal(&mut self) {
        if self.to_seal.is_empty() {
            return;
        }
        if let Some(conn) = self.tls.as_mut() {
            // With no buffer limit rustls takes everything.
            let _ = conn.writer().write_all(&self.to_seal);
        }
        self.to_seal.zeroize();
        self.to_seal.clear();
        self.pump_tls_out();
    }

    /// Moves whatever rustls wants to send into the transmit buffer.
    fn pump_tls_out(&mut self) {
        if let Some(conn) = self.tls.as_mut() {
            while conn.wants_write() {
                if conn.write_tls(&mut *self.transmit).is_err() {
                    break;
                }
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Bytes out
    // ---------------------------------------------------------------------------------------

    /// Queues one line (CRLF added) and records it as sent.
    fn send(&mut self, wire: &[u8], display: String, kind: SentKind) {
        let security = self.security();
        if kind == SentKind::Credentials
            && security == Security::Tls
            && let Some(path) = &self.settings.key_log
        {
            let warning = format!(
                "KEY LOG: the credentials below cross inside TLS, but the session's TLS secrets \
                 are in {}: a capture of this session plus that file reveals them",
                escape_str(path)
            );
            self.emit(EventKind::Warning(warning));
        }
        match self.tls.as_mut() {
            // Sealed into records only when the driver takes the bytes: one record per line
            // would cost a record header and a seal for every line of a long message.
            Some(_) => {
                self.to_seal.extend_from_slice(wire);
                self.to_seal.extend_from_slice(b"\r\n");
            }
            None => {
                self.transmit.extend_from_slice(wire);
                self.transmit.extend_from_slice(b"\r\n");
            }
        }
        self.emit(EventKind::Sent {
            security,
            text: display,
            kind,
        });
    }

    fn await_reply(&mut self, waiting_for: String, pending: Pending) -> StepId {
        let step = self.new_step();
        self.queue_step(step, pending, waiting_for);
        step
    }

    /// Adds `step` behind whatever is outstanding (a pipelined group), or makes it the one.
    fn queue_step(&mut self, step: StepId, pending: Pending, waiting_for: String) {
        let outstanding = Outstanding {
            step,
            pending,
            waiting_for,
        };
        match &mut self.state {
            State::Awaiting { outstanding: queue } => queue.push_back(outstanding),
            _ => {
                let waiting_for = outstanding.waiting_for.clone();
                self.state = State::Awaiting {
                    outstanding: VecDeque::from([outstanding]),
                };
                self.wait_for(waiting_for);
            }
        }
    }

    fn wait_for(&mut self, waiting_for: String) {
        self.deadline = Some((self.now + self.settings.timeout, waiting_for));
    }

    fn new_step(&mut self) -> StepId {
        self.next_step += 1;
        self.next_step
    }

    // ---------------------------------------------------------------------------------------
    // Secrets
    // ---------------------------------------------------------------------------------------

    fn remember_secret(&mut self, value: &str, sent: bool) {
        if value.len() < MIN_SECRET_LEN {
            return;
        }
        match self.secrets.iter_mut().find(|s| s.value.expose() == value) {
            Some(known) => known.sent |= sent,
            None => self.secrets.push(KnownSecret {
                value: Secret::new(value.to_owned()),
                sent,
            }),
        }
    }

    /// Every form in which these credentials can cross, as sent.
    fn remember_credential_forms(&mut self, credentials: &Credentials) {
        for form in credential_forms(Some(&credentials.user), &credentials.secret) {
            self.remember_secret(form.expose(), true);
        }
    }

    fn secret_use(&self, line: &str) -> Option<SecretUse> {
        let decoded = forwarded_values(line);
        let contained = self.secrets.iter().filter(|s| {
            holds(line, s.value.expose()) || decoded.iter().any(|d| holds(d, s.value.expose()))
        });
        let mut found = None;
        for secret in contained {
            if secret.sent {
                return Some(SecretUse::AlreadySent);
            }
            found = Some(SecretUse::NotYetSent);
        }
        found
    }

    fn mark_contained_secrets_sent(&mut self, line: &str) {
        let decoded = forwarded_values(line);
        for secret in &mut self.secrets {
            let value = secret.value.expose();
            if holds(line, value) || decoded.iter().any(|d| holds(d, value)) {
                secret.sent = true;
            }
        }
        // An xtext value that spells a secret is that secret as it crossed: a server that
        // echoes it (a 501 quoting the value) must find it hidden too.
        if let Some((_, attributes)) = xclient::parse(line) {
            let spelled: Vec<String> = attributes
                .iter()
                .filter(|a| {
                    a.decoded.as_deref().is_some_and(|value| {
                        self.secrets.iter().any(|s| holds(value, s.value.expose()))
                    })
                })
                .map(|a| a.raw.to_owned())
                .collect();
            for raw in spelled {
                self.remember_secret(&raw, true);
            }
        }
    }

    /// An XCLIENT or XFORWARD line with every attribute value whose xtext decoding holds a
    /// known secret replaced by `<hidden>` (the plain form is hidden by
    /// [`Self::redact_text`]); any other line as it is.
    fn hide_forwarded_secrets(&self, line: &str) -> String {
        let Some((forwarding, attributes)) = xclient::parse(line) else {
            return line.to_owned();
        };
        let mut shown = forwarding.verb().to_owned();
        for attribute in attributes {
            let secret = attribute
                .decoded
                .as_deref()
                .is_some_and(|value| self.secrets.iter().any(|s| holds(value, s.value.expose())));
            shown.push(' ');
            shown.push_str(&attribute.name);
            shown.push('=');
            shown.push_str(if secret { "<hidden>" } else { attribute.raw });
        }
        shown
    }

    fn redact_reply(&self, mut reply: Reply) -> Reply {
        for secret in &self.secrets {
            reply.redact(secret.value.expose().as_bytes());
        }
        reply
    }

    /// Replaces every known secret in `text` with `<hidden>`.
    fn redact_text(&self, mut text: String) -> String {
        for secret in &self.secrets {
            let secret = secret.value.expose();
            if holds(&text, secret) {
                text = text.replace(secret, "<hidden>");
            }
        }
        text
    }

    /// Like [`Self::redact_text`] for a quote of peer text that may have been cut short: a
    /// quote ending partway into a secret has that part hidden too.
    fn redact_quote(&self, text: String) -> String {
        let mut text = self.redact_text(text);
        for secret in &self.secrets {
            let secret = secret.value.expose();
            let cut = (1..secret.len())
                .rev()
                .filter(|&k| secret.is_char_boundary(k))
                .find(|&k| text.trim_end_matches('"').ends_with(&secret[..k]));
            if let Some(k) = cut {
                let keep = text.trim_end_matches('"').len() - k;
                text.truncate(keep);
                text.push_str("<hidden>");
            }
        }
        text
    }

    /// Peer bytes for an error message: escaped, bounded, and without known secrets.
    fn preview(&self, bytes: &[u8]) -> String {
        self.redact_quote(escape_bytes(&bytes[..bytes.len().min(60)]))
    }

    // ---------------------------------------------------------------------------------------
    // Ending
    // ---------------------------------------------------------------------------------------

    /// Records a fatal error once and keeps it. Returns it for the caller to pass on.
    fn fail(&mut self, error: SessionError) -> SessionError {
        if let State::Failed(first) = &self.state {
            return first.clone();
        }
        let error = self.redact_error(error);
        self.emit(EventKind::Error {
            kind: error.kind(),
            text: error.to_string(),
        });
        self.state = State::Failed(error.clone());
        self.deadline = None;
        self.parser.clear();
        error
    }

    /// Hides known secrets in the error variants that quote the peer's bytes.
    fn redact_error(&self, error: SessionError) -> SessionError {
        use crate::proto::reply::ReplyError;
        match error {
            SessionError::Protocol(ReplyError::Malformed { line }) => {
                SessionError::Protocol(ReplyError::Malformed {
                    line: self.redact_quote(line),
                })
            }
            other => other,
        }
    }

    fn emit(&mut self, kind: EventKind) {
        let elapsed = self.now.saturating_duration_since(self.started);
        self.events.push_back(Event {
            time: self.started_wall + elapsed,
            elapsed,
            kind,
        });
    }
}

impl Drop for ClientSession {
    fn drop(&mut self) {
        self.transmit.zeroize();
        self.to_seal.zeroize();
    }
}

impl std::fmt::Debug for ClientSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSession")
            .field("target", &self.settings.target)
            .field("phase", &self.phase())
            .field("security", &self.security())
            .field("failure", &self.failure())
            .finish_non_exhaustive()
    }
}

/// The step number under which unasked replies are completed, for drivers that wait for them
/// ([`ClientSession::take_completion`] with this id takes the oldest).
pub const UNASKED_STEP: StepId = 0;

/// Whether `text` holds `secret`. Every line of a message is checked against every known
/// secret form, so this must cost next to nothing when the answer is no: the first byte is
/// found with a vectorised scan and only those places are compared.
fn holds(text: &str, secret: &str) -> bool {
    holds_bytes(text.as_bytes(), secret.as_bytes())
}

/// [`holds`] for bytes that need not be text (a BDAT chunk, a line of a message file).
fn holds_bytes(text: &[u8], secret: &[u8]) -> bool {
    let Some(&first) = secret.first() else {
        return false;
    };
    memchr::memchr_iter(first, text).any(|at| text[at..].starts_with(secret))
}

/// The decoded attribute values of an XCLIENT or XFORWARD line (xtext can spell any byte as
/// `+XX`, so a secret can hide there from a plain search); nothing for any other line.
fn forwarded_values(line: &str) -> Vec<String> {
    xclient::parse(line)
        .map(|(_, attributes)| attributes.into_iter().filter_map(|a| a.decoded).collect())
        .unwrap_or_default()
}

/// How a line relates to the secrets the session knows.
enum SecretUse {
    /// It holds a secret that has already crossed.
    AlreadySent,
    /// It holds a configured secret that has not crossed yet.
    NotYetSent,
}
