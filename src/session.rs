//! The session engine: a thin tokio layer that moves bytes between the network and the
//! sans-IO core, applies deadlines, performs the TLS upgrade, and enforces the credential guard.
//!
//! Front ends drive a [`Session`] with lines (as typed or read from a scenario) and receive
//! [`Event`]s through the sink given at connect time; they never see the socket. Every
//! credential-bearing line passes through [`guard::decide`] here, so no front end can send one
//! without the guard's consent.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use zeroize::Zeroize;

use crate::guard::{self, Decision, GuardPolicy, OneTimeOverride, Protection, Refusal};
use crate::proto::command::{
    CommandKind, LineError, auth_initial_response, check_command_line, check_single_line, classify,
    split_verb,
};
use crate::proto::data::{END_OF_DATA, stuff_line};
use crate::proto::ehlo::Capabilities;
use crate::proto::escape::{escape_bytes, escape_str};
use crate::proto::reply::{Reply, ReplyError, ReplyLimits, ReplyParser};
use crate::proto::sasl::{Mechanism, SaslClient, SaslError, plain_password, plain_user};
use crate::secret::{Credentials, Secret};
use crate::tls::{
    self, CertificateProblem, TlsInfo, TlsSetupError, TrustSettings, VerdictSlot, Verification,
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

/// Everything needed to open a session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Host name or IP address to connect to.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Plain with STARTTLS, or implicit TLS.
    pub tls_mode: TlsMode,
    /// Name used for SNI and certificate verification.
    pub server_name: String,
    /// Trust anchors and whether a failed verification may continue.
    pub trust: TrustSettings,
    /// Standing guard overrides.
    pub policy: GuardPolicy,
    /// Deadline for each reply, each TLS handshake, and the connection itself.
    pub timeout: Duration,
    /// Bounds on replies.
    pub limits: ReplyLimits,
}

/// Receives every event as it happens.
pub type EventSink = Box<dyn FnMut(Event) + Send>;

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// TCP connection failed.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// `host:port`.
        target: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A deadline passed.
    #[error(
        "timed out after {after:?} waiting for {waiting_for}{partial} (raise --timeout if the server is just slow)"
    )]
    Timeout {
        /// What we were waiting for.
        waiting_for: String,
        /// The deadline.
        after: Duration,
        /// A note about bytes already received, or empty.
        partial: String,
    },
    /// Reading or writing failed.
    #[error("network error: {0}")]
    Io(#[from] io::Error),
    /// The server closed the connection.
    #[error("the server closed the connection{}", if *.mid_reply { " in the middle of a reply" } else { "" })]
    Closed {
        /// Whether a reply was partly received.
        mid_reply: bool,
    },
    /// The server's bytes are not valid SMTP.
    #[error("protocol error: {0}")]
    Protocol(#[from] ReplyError),
    /// Bytes arrived between the 220 to STARTTLS and the TLS handshake.
    #[error(
        "response injection: {bytes} byte(s) arrived in cleartext after the 220 reply to STARTTLS \
         and before the TLS handshake ({preview}); they may have been injected by an attacker \
         and must not be trusted, so the session is aborted (RFC 3207 §6, CVE-2021-22947 class)"
    )]
    Injection {
        /// How many bytes.
        bytes: usize,
        /// The first bytes, escaped.
        preview: String,
    },
    /// Unasked bytes were waiting when STARTTLS was to be sent; they would pass for its reply.
    #[error(
        "{bytes} unasked byte(s) from the server are waiting and would be taken as the reply to \
         STARTTLS, so TLS is not started: the session is out of step with the server"
    )]
    OutOfStep {
        /// How many bytes were waiting.
        bytes: usize,
    },
    /// The certificate failed verification and `--insecure` was not given.
    #[error(
        "TLS certificate verification failed: {0}. Nothing more was sent (use --insecure only if you accept an unverified peer)"
    )]
    Certificate(CertificateProblem),
    /// The TLS handshake failed for another reason.
    #[error("TLS handshake failed: {0}")]
    Handshake(String),
    /// TLS could not be set up.
    #[error(transparent)]
    TlsSetup(#[from] TlsSetupError),
    /// The credential guard refused; nothing was sent. The session can go on.
    #[error(transparent)]
    Guard(Refusal),
    /// The SASL exchange went wrong.
    #[error("AUTH exchange failed: {0}")]
    Sasl(#[from] SaslError),
    /// The line cannot be sent as one line; nothing was sent. The session can go on.
    #[error(transparent)]
    Line(#[from] LineError),
    /// Message lines were offered but no DATA was answered 354; nothing was sent.
    #[error(
        "the server is not waiting for a message (DATA was not answered 354); nothing was sent"
    )]
    NoMessage,
    /// A SASL answer was offered but the server is not waiting for one; nothing was sent.
    #[error(
        "the server is no longer waiting for a SASL answer, so the answer was not sent \
         (it would have gone out as a command)"
    )]
    NoChallenge,
    /// STARTTLS on a connection that already has TLS (RFC 3207 §4.2 forbids it).
    #[error("TLS is already active; STARTTLS is not sent twice on one connection (RFC 3207 §4.2)")]
    AlreadyTls,
    /// An earlier fatal error ended the session.
    #[error("the session has already ended")]
    Ended,
}

impl SessionError {
    /// Whether the session can no longer be used.
    pub fn is_fatal(&self) -> bool {
        !matches!(
            self,
            Self::Guard(_) | Self::AlreadyTls | Self::Line(_) | Self::NoChallenge | Self::NoMessage
        )
    }
}

/// What sending a line produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The server replied.
    Reply(Reply),
    /// A message line was queued; replies come only after the final dot.
    Queued,
}

/// Where in the protocol the session is, which decides what a line means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Lines are commands.
    Command,
    /// After 354: lines are message content until a lone dot.
    Message,
    /// After 334: the next line answers a SASL challenge and carries credentials.
    SaslChallenge,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only while the stream is being moved into the TLS layer, or after a fatal error.
    Gone,
}

/// A live SMTP client session.
pub struct Session {
    config: SessionConfig,
    stream: Stream,
    parser: ReplyParser,
    sink: EventSink,
    started: Instant,
    tls_client: Arc<rustls::ClientConfig>,
    verdict: VerdictSlot,
    protection: Protection,
    tls_info: Option<TlsInfo>,
    capabilities: Option<Capabilities>,
    phase: Phase,
    authenticated_as: Option<String>,
    outgoing: Vec<u8>,
    read_buffer: Vec<u8>,
    /// Every form of every secret sent so far (password, its base64, the encoded SASL
    /// messages), hidden from replies that echo them.
    sent_secrets: Vec<Secret>,
    /// Set while the reply to STARTTLS is read: bytes after it are then judged by the
    /// injection check, not reported as an ordinary unasked reply.
    awaiting_tls_go_ahead: bool,
    /// Whether the last line sent was AUTH or a SASL answer: only then is a 334 a challenge
    /// whose answer carries credentials. A 334 to anything else is an anomaly, not a prompt.
    sasl_expected: bool,
    ended: bool,
}

/// Flush queued message lines once this much is buffered.
const FLUSH_THRESHOLD: usize = 64 * 1024;

impl Session {
    /// Connects, performs implicit TLS if configured, and reads the greeting.
    ///
    /// # Errors
    /// Any fatal [`SessionError`]: connection refused, timeout, TLS failure, protocol error.
    /// The error has already been emitted to the sink as an [`EventKind::Error`].
    pub async fn connect(
        config: SessionConfig,
        sink: EventSink,
    ) -> Result<(Self, Reply), SessionError> {
        let (tls_client, verdict) = tls::client_config(&config.trust)?;
        tls::server_name(&config.server_name)?;
        let mut session = Self {
            parser: ReplyParser::new(config.limits),
            config,
            stream: Stream::Gone,
            sink,
            started: Instant::now(),
            tls_client,
            verdict,
            protection: Protection::Cleartext,
            tls_info: None,
            capabilities: None,
            phase: Phase::Command,
            authenticated_as: None,
            outgoing: Vec::new(),
            read_buffer: vec![0; 16 * 1024],
            sent_secrets: Vec::new(),
            sasl_expected: false,
            awaiting_tls_go_ahead: false,
            ended: false,
        };
        let result = session.open().await;
        match result {
            Ok(greeting) => Ok((session, greeting)),
            Err(error) => Err(session.fail(error)),
        }
    }

    async fn open(&mut self) -> Result<Reply, SessionError> {
        let target = format_target(&self.config.host, self.config.port);
        self.emit(EventKind::Connecting {
            target: target.clone(),
            transport: match self.config.tls_mode {
                TlsMode::StartTls => "plain TCP; TLS only after STARTTLS".to_owned(),
                TlsMode::Implicit => "implicit TLS from the first byte".to_owned(),
            },
        });
        let host = self
            .config
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tcp = tokio::time::timeout(
            self.config.timeout,
            TcpStream::connect((host.as_str(), self.config.port)),
        )
        .await
        .map_err(|_| SessionError::Timeout {
            waiting_for: format!("the TCP connection to {target}"),
            after: self.config.timeout,
            partial: String::new(),
        })?
        .map_err(|source| SessionError::Connect {
            target: target.clone(),
            source,
        })?;
        // Interactive SMTP is many small lines; Nagle would only add latency.
        tcp.set_nodelay(true)?;
        let (peer, local) = (addr(tcp.peer_addr()), addr(tcp.local_addr()));
        self.emit(EventKind::Connected { peer, local });
        self.stream = Stream::Plain(tcp);
        if self.config.tls_mode == TlsMode::Implicit {
            self.handshake().await?;
        }
        self.read_reply("the greeting").await
    }

    /// The current protection, as the guard sees it.
    pub fn protection(&self) -> &Protection {
        &self.protection
    }

    /// Whether lines now cross inside TLS.
    pub fn security(&self) -> Security {
        match self.stream {
            Stream::Tls(_) => Security::Tls,
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
        self.phase
    }

    /// The user the server accepted with 235, if any.
    pub fn authenticated_as(&self) -> Option<&str> {
        self.authenticated_as.as_deref()
    }

    /// The configuration the session was opened with.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Adds a front end's own event (an expectation result, a note) to the same transcript.
    pub fn record(&mut self, kind: EventKind) {
        self.emit(kind);
    }

    /// Sends one line as typed and returns what it produced, with the smart steps a human
    /// expects: `STARTTLS` answered 220 upgrades the connection, `DATA` answered 354 switches to
    /// message lines (dot-stuffed, ended by a lone `.`), and any credential-bearing line (an
    /// `AUTH` command, or anything answering a 334) must pass the guard.
    ///
    /// # Errors
    /// [`SessionError::Guard`] when the guard refuses (nothing sent, the session goes on);
    /// other errors are fatal and already emitted as [`EventKind::Error`].
    pub async fn send_line(
        &mut self,
        line: &str,
        one_time: OneTimeOverride,
    ) -> Result<Step, SessionError> {
        self.ensure_alive()?;
        let checked = match self.phase {
            // Message text may carry ESC (ISO-2022-JP), but never a line break.
            Phase::Message => check_single_line(line),
            Phase::Command | Phase::SaslChallenge => check_command_line(line),
        };
        if let Err(error) = checked {
            self.emit(EventKind::Warning(format!("not sent: {error}")));
            return Err(error.into());
        }
        let result = match self.phase {
            Phase::Message => self.message_line(line).await,
            Phase::SaslChallenge => self.sasl_answer(line, one_time).await.map(Step::Reply),
            Phase::Command => self.command(line, one_time).await.map(Step::Reply),
        };
        result.map_err(|error| self.fail(error))
    }

    async fn command(
        &mut self,
        line: &str,
        one_time: OneTimeOverride,
    ) -> Result<Reply, SessionError> {
        let verb = split_verb(line).0;
        if !matches!(classify(line), CommandKind::Auth { .. })
            && self
                .sent_secrets
                .iter()
                .any(|secret| line.contains(secret.expose()))
        {
            // A credential this session already sent, now typed as a command (a scenario that
            // spells out the SASL answers after a bare AUTH): as a command it would bypass the
            // guard and be shown in full. It is refused, and nothing crosses.
            self.emit(EventKind::Warning(
                "not sent: this line repeats credentials already sent in this session, as a \
                 command; a bare AUTH <MECH> runs the whole exchange, so remove the answer lines"
                    .to_owned(),
            ));
            return Err(SessionError::Line(LineError::RepeatsCredentials));
        }
        match classify(line) {
            CommandKind::StartTls => self.starttls_inner().await,
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
                    escape_str(line)
                };
                if let Some(response) = auth_initial_response(line) {
                    self.remember_secret(response);
                    if let Some(password) = plain_password(response) {
                        self.remember_credentials_forms(password.expose());
                    }
                }
                let kind = if has_initial_response {
                    SentKind::Credentials
                } else {
                    SentKind::Command
                };
                self.queue_sasl(line.as_bytes(), display, kind);
                let reply = self.read_reply(&format!("the reply to {verb}")).await?;
                Ok(reply)
            }
            kind => {
                self.queue(line.as_bytes(), escape_str(line), SentKind::Command);
                let reply = self
                    .read_reply(&format!(
                        "the reply to {}",
                        if verb.is_empty() {
                            "an empty line".to_owned()
                        } else {
                            verb
                        }
                    ))
                    .await?;
                match kind {
                    CommandKind::Hello { extended: true } => {
                        self.capabilities = Capabilities::from_ehlo_reply(&reply);
                    }
                    CommandKind::Data if reply.code.value() == 354 => self.phase = Phase::Message,
                    _ => {}
                }
                Ok(reply)
            }
        }
    }

    async fn message_line(&mut self, line: &str) -> Result<Step, SessionError> {
        if line == END_OF_DATA {
            self.queue(b".", ".".to_owned(), SentKind::MessageLine);
            self.phase = Phase::Command;
            return self
                .read_reply("the reply to the end of the message")
                .await
                .map(Step::Reply);
        }
        let wire = stuff_line(line);
        let display = escape_str(&wire);
        self.queue(wire.as_bytes(), display, SentKind::MessageLine);
        if self.outgoing.len() >= FLUSH_THRESHOLD {
            self.flush().await?;
        }
        Ok(Step::Queued)
    }

    async fn sasl_answer(
        &mut self,
        line: &str,
        one_time: OneTimeOverride,
    ) -> Result<Reply, SessionError> {
        // "*" cancels the exchange (RFC 4954 §4) and carries nothing, so it needs no consent.
        let cancel = line.trim() == "*";
        if !cancel {
            self.check_guard(one_time)?;
            self.remember_secret(line.trim());
        }
        let (display, kind) = if cancel {
            ("*".to_owned(), SentKind::Command)
        } else {
            ("<SASL answer hidden>".to_owned(), SentKind::Credentials)
        };
        self.queue_sasl(line.as_bytes(), display, kind);
        self.read_reply("the reply to the SASL answer").await
    }

    /// Sends an answer typed for a 334 challenge, but only while the server still waits for
    /// one.
    ///
    /// A front end that asked the user for a hidden answer must use this rather than
    /// [`Session::send_line`]: if the server has moved on meanwhile (an unsolicited reply
    /// ended the exchange), `send_line` would send the typed secret as an ordinary, visible
    /// command. Here it is refused instead, and nothing crosses.
    ///
    /// # Errors
    /// [`SessionError::NoChallenge`] when no challenge is pending, [`SessionError::Guard`] when
    /// the guard refuses (both non-fatal, nothing sent); fatal errors otherwise.
    pub async fn answer_challenge(
        &mut self,
        answer: &Secret,
        one_time: OneTimeOverride,
    ) -> Result<Reply, SessionError> {
        self.ensure_alive()?;
        if self.phase != Phase::SaslChallenge {
            self.emit(EventKind::Warning(SessionError::NoChallenge.to_string()));
            return Err(SessionError::NoChallenge);
        }
        if let Err(error) = check_command_line(answer.expose()) {
            self.emit(EventKind::Warning(format!("not sent: {error}")));
            return Err(error.into());
        }
        let result = self.sasl_answer(answer.expose(), one_time).await;
        result.map_err(|error| self.fail(error))
    }

    /// Sends STARTTLS and, on a 220, checks for injected bytes and performs the handshake.
    ///
    /// Any reply other than 220 is returned as it is and the connection stays in cleartext
    /// (the guard keeps protecting credentials); callers must not treat that as secure.
    ///
    /// # Errors
    /// [`SessionError::AlreadyTls`] on a TLS connection; fatal errors for injection, handshake
    /// and certificate failures.
    pub async fn starttls(&mut self) -> Result<Reply, SessionError> {
        self.ensure_alive()?;
        let result = self.starttls_inner().await;
        result.map_err(|error| self.fail(error))
    }

    async fn starttls_inner(&mut self) -> Result<Reply, SessionError> {
        if matches!(self.stream, Stream::Tls(_)) {
            return Err(SessionError::AlreadyTls);
        }
        let stray = self.parser.buffered().len();
        if stray > 0 {
            // Those bytes would be read as the reply to STARTTLS: a 220 nobody sent for it.
            return Err(SessionError::OutOfStep { bytes: stray });
        }
        self.queue(b"STARTTLS", "STARTTLS".to_owned(), SentKind::Command);
        self.awaiting_tls_go_ahead = true;
        let reply = self.read_reply("the reply to STARTTLS").await;
        self.awaiting_tls_go_ahead = false;
        let reply = reply?;
        if reply.code.value() != 220 {
            self.warn_unasked_bytes();
            self.emit(EventKind::Warning(format!(
                "STARTTLS refused ({}): the connection stays in cleartext; credentials remain blocked by the guard",
                reply.summary()
            )));
            return Ok(reply);
        }
        self.check_injection()?;
        self.handshake().await?;
        Ok(reply)
    }

    /// Bytes received after the 220 but before the handshake would be read "inside TLS" by a
    /// naive client; they are refused instead, whether a whole reply or a fragment.
    fn check_injection(&mut self) -> Result<(), SessionError> {
        let mut stray = self.parser.buffered().to_vec();
        if let Stream::Plain(tcp) = &self.stream {
            let mut probe = [0u8; 512];
            // Non-blocking: whatever already sits in the socket buffer.
            while let Ok(n @ 1..) = tcp.try_read(&mut probe) {
                stray.extend_from_slice(&probe[..n]);
                if stray.len() > 4096 {
                    break;
                }
            }
        }
        if stray.is_empty() {
            return Ok(());
        }
        Err(SessionError::Injection {
            bytes: stray.len(),
            preview: format!("\"{}\"", escape_bytes(&stray[..stray.len().min(60)])),
        })
    }

    async fn handshake(&mut self) -> Result<(), SessionError> {
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(SessionError::AlreadyTls);
        };
        self.parser.clear();
        // Nothing from before the handshake carries over: not bytes, not a half-run exchange,
        // not a login (the server forgets it too, RFC 3207 §4.2).
        self.phase = Phase::Command;
        self.sasl_expected = false;
        self.authenticated_as = None;
        let name = tls::server_name(&self.config.server_name)?;
        *self.verdict.lock().unwrap_or_else(PoisonError::into_inner) = None;
        let connector = TlsConnector::from(self.tls_client.clone());
        let outcome = tokio::time::timeout(self.config.timeout, connector.connect(name, tcp)).await;
        let verdict = self
            .verdict
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let stream = match outcome {
            Err(_) => {
                return Err(SessionError::Timeout {
                    waiting_for: "the TLS handshake".to_owned(),
                    after: self.config.timeout,
                    partial: String::new(),
                });
            }
            Ok(Err(error)) => {
                return Err(match verdict {
                    Some(Verification::Failed(problem)) => SessionError::Certificate(problem),
                    _ => SessionError::Handshake(describe_handshake_error(&error)),
                });
            }
            Ok(Ok(stream)) => stream,
        };
        let verification = verdict.unwrap_or_else(|| {
            Verification::Failed(CertificateProblem {
                kind: "not checked",
                detail: "the certificate was not checked".to_owned(),
            })
        });
        let info = TlsInfo::from_connection(
            stream.get_ref().1,
            &self.config.server_name,
            verification.clone(),
        );
        self.protection = match verification {
            Verification::Verified => Protection::VerifiedTls,
            Verification::Failed(problem) => Protection::UnverifiedTls(problem),
        };
        self.stream = Stream::Tls(Box::new(stream));
        self.tls_info = Some(info.clone());
        self.emit(EventKind::TlsEstablished(Box::new(info)));
        if self.capabilities.take().is_some() {
            // RFC 3207 §4.2: what the server said before TLS cannot be trusted now.
            self.emit(EventKind::Note(
                "capabilities learned before TLS are forgotten; send EHLO again (RFC 3207 §4.2)"
                    .to_owned(),
            ));
        }
        Ok(())
    }

    /// Runs a SASL exchange with the given credentials, after the guard allows it.
    ///
    /// The transcript shows `AUTH PLAIN <credentials for USER hidden>`; the encoded secret
    /// exists only in the outgoing buffer, which is zeroed after it is written.
    ///
    /// # Errors
    /// [`SessionError::Guard`] when refused (nothing sent); fatal errors otherwise.
    pub async fn authenticate(
        &mut self,
        mechanism: Mechanism,
        credentials: Credentials,
        one_time: OneTimeOverride,
    ) -> Result<Reply, SessionError> {
        self.ensure_alive()?;
        let result = self
            .authenticate_inner(mechanism, credentials, one_time)
            .await;
        result.map_err(|error| self.fail(error))
    }

    async fn authenticate_inner(
        &mut self,
        mechanism: Mechanism,
        credentials: Credentials,
        one_time: OneTimeOverride,
    ) -> Result<Reply, SessionError> {
        self.check_guard(one_time)?;
        self.remember_credentials_forms(credentials.secret.expose());
        let mut client = SaslClient::new(mechanism, credentials);
        let user = escape_str(client.user());
        let hidden = format!("<credentials for {user} hidden>");
        match client.initial_response() {
            Some(response) => {
                self.remember_secret(response.expose());
                let mut wire =
                    format!("AUTH {} {}", mechanism.name(), response.expose()).into_bytes();
                self.queue_sasl(
                    &wire,
                    format!("AUTH {} {hidden}", mechanism.name()),
                    SentKind::Credentials,
                );
                wire.zeroize();
            }
            None => {
                let line = format!("AUTH {}", mechanism.name());
                self.queue_sasl(line.as_bytes(), line.clone(), SentKind::Command);
            }
        }
        let mut reply = self
            .read_reply(&format!("the reply to AUTH {}", mechanism.name()))
            .await?;
        while reply.code.value() == 334 {
            let challenge = reply.texts().next().unwrap_or_default().to_vec();
            match client.respond(&challenge) {
                Ok(answer) => self.queue_sasl(
                    answer.expose().as_bytes(),
                    hidden.clone(),
                    SentKind::Credentials,
                ),
                Err(error) => {
                    // RFC 4954 §4: "*" cancels the exchange.
                    self.queue(b"*", "*".to_owned(), SentKind::Command);
                    self.read_reply("the reply to the AUTH cancellation")
                        .await?;
                    return Err(error.into());
                }
            }
            reply = self.read_reply("the reply to the AUTH answer").await?;
        }
        if reply.code.value() == 235 {
            self.authenticated_as = Some(client.user().to_owned());
        }
        Ok(reply)
    }

    /// Leaves politely: QUIT, the 221, then close. Errors are ignored: the user is leaving
    /// either way. Inside a message it closes without QUIT (QUIT would be message text, and a
    /// server discards a message that never got its final dot); inside a SASL exchange it
    /// cancels with `*` first (QUIT would be taken as the answer).
    pub async fn quit(&mut self) {
        if self.ended {
            return;
        }
        match self.phase {
            // QUIT here would be message text. Closing without the final dot is how a client
            // abandons a message: the server discards what it received.
            Phase::Message => {}
            // QUIT here would be the SASL answer; cancel the exchange first (RFC 4954 §4).
            Phase::SaslChallenge => {
                self.queue(b"*", "*".to_owned(), SentKind::Command);
                if self
                    .read_reply("the reply to the AUTH cancellation")
                    .await
                    .is_ok()
                {
                    self.send_quit().await;
                }
            }
            Phase::Command => self.send_quit().await,
        }
        self.close().await;
    }

    async fn send_quit(&mut self) {
        self.queue(b"QUIT", "QUIT".to_owned(), SentKind::Command);
        let _ = self.read_reply("the reply to QUIT").await;
    }

    /// Closes the connection without QUIT.
    pub async fn close(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        match &mut self.stream {
            Stream::Plain(tcp) => {
                let _ = tcp.shutdown().await;
            }
            Stream::Tls(tls) => {
                let _ = tokio::time::timeout(Duration::from_secs(1), tls.shutdown()).await;
            }
            Stream::Gone => {}
        }
        self.stream = Stream::Gone;
        self.emit(EventKind::Closed);
    }

    /// Remembers a secret form so that replies echoing it are redacted. Very short values are
    /// skipped: hiding every "a" in every reply would garble the transcript and protect nothing.
    fn remember_secret(&mut self, value: &str) {
        if value.len() >= 4 && !self.sent_secrets.iter().any(|s| s.expose() == value) {
            self.sent_secrets.push(Secret::new(value.to_owned()));
        }
    }

    /// Remembers a password and its base64 form (what AUTH LOGIN sends).
    fn remember_credentials_forms(&mut self, password: &str) {
        self.remember_secret(password);
        let encoded = zeroize::Zeroizing::new(BASE64.encode(password));
        self.remember_secret(&encoded);
    }

    fn check_guard(&mut self, one_time: OneTimeOverride) -> Result<(), SessionError> {
        match guard::decide(&self.protection, self.config.policy, one_time) {
            Decision::Allow => Ok(()),
            Decision::AllowedByOverride(refusal) => {
                // Which permission applied: a standing flag covers the case whatever was typed.
                let standing = match refusal {
                    Refusal::Cleartext => self.config.policy.allow_cleartext_auth,
                    Refusal::Unverified(_) => self.config.policy.allow_unverified_auth,
                };
                self.emit(EventKind::Guard(GuardOutcome::Overridden {
                    refusal,
                    one_time: !standing,
                }));
                Ok(())
            }
            Decision::Refuse(refusal) => {
                self.emit(EventKind::Guard(GuardOutcome::Refused(refusal.clone())));
                Err(SessionError::Guard(refusal))
            }
        }
    }

    /// Queues a line that belongs to a SASL exchange, after which a 334 is a real challenge.
    fn queue_sasl(&mut self, wire: &[u8], display: String, kind: SentKind) {
        self.queue(wire, display, kind);
        self.sasl_expected = true;
    }

    fn queue(&mut self, wire: &[u8], display: String, kind: SentKind) {
        self.sasl_expected = false;
        self.outgoing.extend_from_slice(wire);
        self.outgoing.extend_from_slice(b"\r\n");
        let security = self.security();
        self.emit(EventKind::Sent {
            security,
            text: display,
            kind,
        });
    }

    async fn flush(&mut self) -> Result<(), SessionError> {
        if self.outgoing.is_empty() {
            return Ok(());
        }
        let deadline = self.config.timeout;
        let write = async {
            match &mut self.stream {
                Stream::Plain(tcp) => {
                    tcp.write_all(&self.outgoing).await?;
                    tcp.flush().await
                }
                Stream::Tls(tls) => {
                    tls.write_all(&self.outgoing).await?;
                    tls.flush().await
                }
                Stream::Gone => Err(io::Error::new(io::ErrorKind::NotConnected, "not connected")),
            }
        };
        let result = tokio::time::timeout(deadline, write).await;
        // The buffer may have held credentials: wipe it whatever happened.
        self.outgoing.zeroize();
        match result {
            Err(_) => Err(SessionError::Timeout {
                waiting_for: "the server to accept our data".to_owned(),
                after: deadline,
                partial: String::new(),
            }),
            Ok(result) => result.map_err(SessionError::from),
        }
    }

    async fn read_reply(&mut self, waiting_for: &str) -> Result<Reply, SessionError> {
        self.flush().await?;
        let deadline = tokio::time::Instant::now() + self.config.timeout;
        loop {
            if let Some(reply) = self.parser.next_reply()? {
                return Ok(self.accept_reply(reply));
            }
            let Ok(filled) = tokio::time::timeout_at(deadline, self.fill_parser()).await else {
                let pending = self.parser.buffered().len();
                return Err(SessionError::Timeout {
                    waiting_for: waiting_for.to_owned(),
                    after: self.config.timeout,
                    partial: if self.parser.mid_reply() {
                        format!(" ({pending} byte(s) of an unfinished reply line received)")
                    } else {
                        String::new()
                    },
                });
            };
            filled?;
        }
    }

    /// Reads whatever the transport has next into the parser. Cancel-safe: bytes are pushed
    /// only once a read has completed, so a dropped call loses nothing.
    ///
    /// # Errors
    /// [`SessionError::Closed`] when the server has closed the connection, or the read error.
    async fn fill_parser(&mut self) -> Result<(), SessionError> {
        self.ack_promptly();
        let buffer = &mut self.read_buffer;
        let n = match &mut self.stream {
            Stream::Plain(tcp) => tcp.read(buffer).await?,
            Stream::Tls(tls) => tls.read(buffer).await?,
            Stream::Gone => return Err(SessionError::Closed { mid_reply: false }),
        };
        if n == 0 {
            return Err(SessionError::Closed {
                mid_reply: self.parser.mid_reply(),
            });
        }
        self.parser.push(&self.read_buffer[..n]);
        Ok(())
    }

    /// Redacts echoed secrets, updates the phase and emits a reply that has been parsed.
    fn accept_reply(&mut self, mut reply: Reply) -> Reply {
        for secret in &self.sent_secrets {
            reply.redact(secret.expose().as_bytes());
        }
        let challenge = reply.code.value() == 334;
        let opens_challenge = challenge && self.sasl_expected;
        self.phase = match self.phase {
            _ if opens_challenge => Phase::SaslChallenge,
            Phase::Message => Phase::Message,
            _ => Phase::Command,
        };
        // Any other reply ends the exchange: a 334 arriving later, unasked, is not a prompt.
        if !challenge {
            self.sasl_expected = false;
        }
        let security = self.security();
        self.emit(EventKind::Received {
            security,
            reply: reply.clone(),
        });
        if challenge && !opens_challenge {
            self.emit(EventKind::Warning(
                "a 334 (SASL challenge) answered something that was not AUTH; the next line is \
                 treated as a command, never as a SASL answer"
                    .to_owned(),
            ));
        }
        if !self.awaiting_tls_go_ahead {
            self.warn_unasked_bytes();
        }
        reply
    }

    /// Commands are not pipelined, so one command gets one reply; bytes beyond it mean the
    /// server (or something on the path) answered what was never asked.
    fn warn_unasked_bytes(&mut self) {
        let extra = self.parser.buffered().len();
        if extra > 0 {
            self.emit(EventKind::Warning(format!(
                "the server sent {extra} byte(s) beyond this reply, unasked; they will be \
                 read as the reply to the next command"
            )));
        }
    }

    /// Waits, without a deadline, for a reply the client did not ask for, such as the `421`
    /// a server may send at any time (RFC 5321 §3.8) before it closes the connection.
    ///
    /// Interactive front ends call this while the user is thinking, so server bytes show up
    /// when they arrive instead of with the next command. It is cancel-safe: dropping the
    /// future between reads loses nothing (bytes already read stay in the parser and are
    /// part of the next reply, whichever call takes it), so it can sit in a `select!` next to
    /// the user's next command. The reply is emitted like any other.
    ///
    /// # Errors
    /// [`SessionError::Closed`] when the server closes the connection, and the other fatal
    /// errors of reading; all are emitted and end the session.
    pub async fn next_unsolicited(&mut self) -> Result<Reply, SessionError> {
        self.ensure_alive()?;
        let result = async {
            loop {
                if let Some(reply) = self.parser.next_reply()? {
                    return Ok(self.accept_reply(reply));
                }
                self.fill_parser().await?;
            }
        }
        .await;
        result.map_err(|error| self.fail(error))
    }

    /// Asks the kernel to acknowledge the next segment at once instead of delaying the ACK.
    ///
    /// Servers that write a reply in two small pieces without TCP_NODELAY (Postfix sends TLS
    /// session tickets and then the greeting) otherwise wait for our delayed ACK, adding 40 ms
    /// that belong to neither the server nor the network. Linux clears the flag after some
    /// operations, so it is set again before every read; elsewhere this does nothing.
    fn ack_promptly(&self) {
        #[cfg(target_os = "linux")]
        {
            let tcp = match &self.stream {
                Stream::Plain(tcp) => tcp,
                Stream::Tls(tls) => tls.get_ref().0,
                Stream::Gone => return,
            };
            // Only latency depends on it; a failure changes nothing else.
            let _ = tcp.set_quickack(true);
        }
    }

    fn ensure_alive(&self) -> Result<(), SessionError> {
        if self.ended {
            Err(SessionError::Ended)
        } else {
            Ok(())
        }
    }

    /// Records a fatal error once, closes the stream, and passes the error on.
    fn fail(&mut self, error: SessionError) -> SessionError {
        let error = self.redact_error(error);
        if error.is_fatal() && !self.ended {
            self.emit(EventKind::Error(error.to_string()));
            self.ended = true;
            self.stream = Stream::Gone;
            self.outgoing.zeroize();
        }
        error
    }

    /// Hides sent secrets in the error variants that quote the peer's bytes.
    fn redact_error(&self, error: SessionError) -> SessionError {
        match error {
            SessionError::Protocol(ReplyError::Malformed { line }) => {
                SessionError::Protocol(ReplyError::Malformed {
                    line: self.redact_text(line),
                })
            }
            SessionError::Injection { bytes, preview } => SessionError::Injection {
                bytes,
                preview: self.redact_text(preview),
            },
            other => other,
        }
    }

    /// Replaces every sent secret in `text` with `<hidden>`, and cuts a quote that was
    /// truncated in the middle of one (the quoted peer text is limited in length).
    fn redact_text(&self, mut text: String) -> String {
        for secret in &self.sent_secrets {
            let secret = secret.expose();
            if text.contains(secret) {
                text = text.replace(secret, "<hidden>");
            }
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

    fn emit(&mut self, kind: EventKind) {
        (self.sink)(Event {
            time: SystemTime::now(),
            elapsed: self.started.elapsed(),
            kind,
        });
    }
}

fn addr(result: io::Result<SocketAddr>) -> String {
    result
        .map(|a| a.to_string())
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

/// `host:port`, with brackets around IPv6 literals.
pub fn format_target(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn describe_handshake_error(error: &io::Error) -> String {
    let inner = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::InvalidMessage(_)) => format!(
            "the server sent bytes that are not TLS ({error}); after a 220 to STARTTLS that can \
             mean the server is not really ready for TLS, or bytes were injected on the path"
        ),
        Some(other) => other.to_string(),
        None if error.kind() == io::ErrorKind::UnexpectedEof => {
            "the server closed the connection during the handshake".to_owned()
        }
        None => error.to_string(),
    }
}

/// What a server did with an `AUTH` command that carried no credential (see
/// [`Session::probe_auth_before_tls`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthProbe {
    /// The server answered the `AUTH` line with something other than 334 (530, 538 and 503
    /// are the usual refusals): it would not start an exchange here.
    Refused(Reply),
    /// The server sent a 334 challenge, so it was ready to take credentials; the exchange was
    /// cancelled with `*` and `after_cancel` is its answer to that (normally 501).
    Challenged {
        /// The 334 challenge.
        challenge: Reply,
        /// The reply to the `*` cancellation.
        after_cancel: Reply,
    },
}

impl Session {
    /// Asks whether the server would run a SASL exchange now, without ever sending a
    /// credential: sends `AUTH <MECHANISM>` with no initial response and, if the server
    /// answers 334, cancels at once with `*` (RFC 4954 §4) and reads that reply.
    ///
    /// This is how an audit learns that a server accepts AUTH before TLS. The credential guard
    /// is not consulted because nothing secret can cross: the only bytes this method writes are
    /// `AUTH <MECHANISM>\r\n` and, after a 334, `*\r\n`; no answer to a challenge is ever
    /// formed, real or fake. The mechanism is typed so no caller can smuggle a response into
    /// the command line. A server that answers `*` with yet another 334 leaves the session in
    /// the challenge phase, where the guard refuses every further line: the probe never answers
    /// a second challenge.
    ///
    /// # Errors
    /// Fatal [`SessionError`]s (timeout, closed connection, protocol error), already emitted as
    /// [`EventKind::Error`].
    pub async fn probe_auth_before_tls(
        &mut self,
        mechanism: Mechanism,
    ) -> Result<AuthProbe, SessionError> {
        self.ensure_alive()?;
        let result = async {
            let line = format!("AUTH {}", mechanism.name());
            self.queue_sasl(line.as_bytes(), line.clone(), SentKind::Command);
            let challenge = self.read_reply(&format!("the reply to {line}")).await?;
            if challenge.code.value() != 334 {
                return Ok(AuthProbe::Refused(challenge));
            }
            self.queue(b"*", "*".to_owned(), SentKind::Command);
            let after_cancel = self
                .read_reply("the reply to the AUTH cancellation")
                .await?;
            Ok(AuthProbe::Challenged {
                challenge,
                after_cancel,
            })
        }
        .await;
        result.map_err(|error| self.fail(error))
    }
}
