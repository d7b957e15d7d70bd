//! The session engine's tokio driver: it moves bytes between a TCP socket and the sans-IO
//! [`ClientSession`], and applies the deadlines the core asks for. It takes no protocol
//! decision: classification, the credential guard, reply pairing, STARTTLS and TLS itself
//! all live in [`crate::proto::client`].
//!
//! Front ends drive a [`Session`] with lines (as typed or read from a scenario) and receive
//! [`Event`]s through the sink given at connect time; they never see the socket.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
#[cfg(unix)]
use tokio::net::UnixStream;

use crate::guard::{GuardPolicy, OneTimeOverride, Protection};
use crate::proto::client::{
    ClientSession, ClientSettings, FLUSH_THRESHOLD, Sent, StepId, UNASKED_STEP,
};
pub use crate::proto::client::{Phase, SaslOptions, SessionError, TlsMode, UnaskedReplies};
use crate::proto::ehlo::Capabilities;
use crate::proto::proxy::{ProxyHeader, ProxyVersion};
use crate::proto::reply::{Reply, ReplyLimits};
use crate::proto::sasl::Mechanism;
use crate::secret::{Credentials, Secret};
use crate::tls::{self, TlsChoices, TlsInfo, TrustSettings};
use crate::transcript::{Event, EventKind, Security};

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
    /// What a reply nobody asked for does: ends the session (scripts, audits) or is shown as
    /// unasked (the interactive UI).
    pub unasked: UnaskedReplies,
    /// Every form of the credentials configured before the session (password file or
    /// environment; see [`crate::proto::sasl::credential_forms`]): a line that holds one is a
    /// credential from the start, guarded and hidden.
    pub known_secrets: Vec<Secret>,
    /// How SASL exchanges run: initial response or not, and whether a mechanism the server did
    /// not advertise may be forced.
    pub sasl: SaslOptions,
    /// How the connection is made under SMTP: address family, local address, a PROXY header,
    /// the TLS versions and suites offered, a key log. The default is the plain way.
    pub transport: Transport,
}

/// How the connection is made under SMTP (`-4`/`-6`, `--local-addr`, `--proxy-protocol`,
/// `--tls-min`/`--tls-max`/`--cipher`, `--keylog`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transport {
    /// Connect only over this address family.
    pub family: Option<AddressFamily>,
    /// Bind the connection to this local address first (port 0: any port).
    pub local: Option<SocketAddr>,
    /// Send a PROXY protocol header before the first SMTP byte.
    pub proxy: Option<ProxyRequest>,
    /// TLS versions and suites offered, and the key log.
    pub tls: TlsChoices,
}

/// An IP address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressFamily {
    /// IPv4 only (`-4`).
    V4,
    /// IPv6 only (`-6`).
    V6,
}

/// The PROXY header a session sends first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyRequest {
    /// Version 1 (text) or 2 (binary).
    pub version: ProxyVersion,
    /// The client address the header claims.
    pub source: SocketAddr,
    /// The destination it names; the server's address as connected when `None`.
    pub destination: Option<SocketAddr>,
}

/// Receives every event as it happens.
pub type EventSink = Box<dyn FnMut(Event) + Send>;

/// What sending a line produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The server replied.
    Reply(Reply),
    /// A message line was queued; replies come only after the final dot.
    Queued,
    /// The final dot of an LMTP message: one reply per accepted recipient, in their order.
    Replies(Vec<Reply>),
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

/// The connection under the core: TCP, or a UNIX domain socket (`unix:/path`, where LMTP
/// servers usually listen).
enum Socket {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

impl Socket {
    async fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(tcp) => {
                ack_promptly(tcp);
                tcp.read(buffer).await
            }
            #[cfg(unix)]
            Self::Unix(unix) => unix.read(buffer).await,
        }
    }

    fn try_read(&self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(tcp) => tcp.try_read(buffer),
            #[cfg(unix)]
            Self::Unix(unix) => unix.try_read(buffer),
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Self::Tcp(tcp) => {
                tcp.write_all(bytes).await?;
                tcp.flush().await
            }
            #[cfg(unix)]
            Self::Unix(unix) => {
                unix.write_all(bytes).await?;
                unix.flush().await
            }
        }
    }

    /// The server's address, for a PROXY header's destination (none for a UNIX socket).
    fn peer(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp(tcp) => tcp.peer_addr().ok(),
            #[cfg(unix)]
            Self::Unix(_) => None,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Self::Tcp(tcp) => tcp.shutdown().await,
            #[cfg(unix)]
            Self::Unix(unix) => unix.shutdown().await,
        }
    }
}

/// A live SMTP client session: the core, its socket, and the sink its events go to.
pub struct Session {
    config: SessionConfig,
    core: ClientSession,
    tcp: Option<Socket>,
    sink: EventSink,
    read_buffer: Vec<u8>,
}

impl Session {
    /// Connects, performs implicit TLS if configured, and reads the greeting.
    ///
    /// # Errors
    /// Any fatal [`SessionError`]: connection refused, timeout, TLS failure, protocol error.
    /// Once the attempt has begun, the error has already been emitted to the sink as an
    /// [`EventKind::Error`].
    pub async fn connect(
        config: SessionConfig,
        sink: EventSink,
    ) -> Result<(Self, Reply), SessionError> {
        let (tls_client, verdict) = tls::client_config_with(&config.trust, &config.transport.tls)?;
        let target = format_target(&config.host, config.port);
        let settings = ClientSettings {
            target: target.clone(),
            tls_mode: config.tls_mode,
            server_name: config.server_name.clone(),
            tls: tls_client,
            verdict,
            policy: config.policy,
            timeout: config.timeout,
            limits: config.limits,
            unasked: config.unasked,
            known_secrets: config.known_secrets.clone(),
            sasl: config.sasl,
            client_identity: config.trust.client_identity.clone(),
            key_log: config
                .transport
                .tls
                .key_log
                .as_ref()
                .map(|path| path.display().to_string()),
            anchors: config.trust.anchors(),
        };
        let core = ClientSession::new(settings, Instant::now(), SystemTime::now())?;
        let mut session = Self {
            config,
            core,
            tcp: None,
            sink,
            read_buffer: vec![0; 16 * 1024],
        };
        if let Some(offer) = session.config.transport.tls.describe() {
            session.core.record(EventKind::Note(offer), Instant::now());
        }
        session.flush_events();
        let socket = match tokio::time::timeout(session.config.timeout, open(&session.config)).await
        {
            Err(_) => Err(SessionError::Timeout {
                waiting_for: format!("the connection to {target}"),
                after: session.config.timeout,
                partial: String::new(),
                hint: "raise --timeout if the network is just slow".to_owned(),
            }),
            Ok(result) => result,
        };
        let (mut socket, peer, local) = match socket {
            Ok(opened) => opened,
            Err(error) => return Err(session.transport_failed(error)),
        };
        // A PROXY header goes before any SMTP byte, and before the TLS of implicit TLS: it is
        // what a load balancer in front of the server would have written.
        let proxy = match session.config.transport.proxy {
            Some(request) => {
                match send_proxy_header(&mut socket, request, session.config.timeout).await {
                    Ok(header) => Some(header),
                    Err(error) => return Err(session.transport_failed(error)),
                }
            }
            None => None,
        };
        session.tcp = Some(socket);
        let greeting = session.core.connected(peer, local, Instant::now());
        if let Some(header) = proxy {
            session
                .core
                .record(EventKind::Note(header.describe()), Instant::now());
        }
        let greeting = session.finish(greeting).await?;
        Ok((session, greeting))
    }

    /// The current protection, as the guard sees it.
    pub fn protection(&self) -> &Protection {
        self.core.protection()
    }

    /// Whether lines now cross inside TLS.
    pub fn security(&self) -> Security {
        self.core.security()
    }

    /// Details of the TLS session, once established.
    pub fn tls_info(&self) -> Option<&TlsInfo> {
        self.core.tls_info()
    }

    /// Capabilities from the latest EHLO on the current transport (forgotten at TLS start).
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.core.capabilities()
    }

    /// What the next line will mean.
    pub fn phase(&self) -> Phase {
        self.core.phase()
    }

    /// The user the server accepted with 235, if any.
    pub fn authenticated_as(&self) -> Option<&str> {
        self.core.authenticated_as()
    }

    /// Whether the server has sent replies nobody asked for on this connection (then no
    /// credential is sent on it any more).
    pub fn is_out_of_step(&self) -> bool {
        self.core.is_out_of_step()
    }

    /// Whether the session can take more requests.
    pub fn is_usable(&self) -> bool {
        !self.core.is_over()
    }

    /// The configuration the session was opened with.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Adds a front end's own event (an expectation result, a note) to the same transcript.
    pub fn record(&mut self, kind: EventKind) {
        self.core.record(kind, Instant::now());
        self.flush_events();
    }

    /// Sends one line as typed and returns what it produced, with the smart steps a human
    /// expects: `STARTTLS` answered 220 upgrades the connection, `DATA` answered 354 switches to
    /// message lines (dot-stuffed, ended by a lone `.`), and any credential-bearing line (an
    /// `AUTH` command, anything answering a 334, a line holding a configured secret) must
    /// pass the guard.
    ///
    /// # Errors
    /// [`SessionError::Guard`] and the other refusals send nothing and the session goes on;
    /// other errors are fatal and already emitted as [`EventKind::Error`].
    pub async fn send_line(
        &mut self,
        line: &str,
        one_time: OneTimeOverride,
    ) -> Result<Step, SessionError> {
        // Message lines are queued without a reply; looking for unasked bytes before each
        // would cost a scheduler turn per line. The final dot and every command look.
        if self.core.phase() != Phase::Message || line == "." {
            self.take_arrived_bytes().await;
        }
        let sent = self.core.send_line(line, one_time, Instant::now());
        self.flush_events();
        self.finish_sent(sent?).await
    }

    /// Waits for what a sent line or chunk is answered with.
    async fn finish_sent(&mut self, sent: Sent) -> Result<Step, SessionError> {
        match sent {
            Sent::Step(step) => self.finish(step).await.map(Step::Reply),
            Sent::Steps(steps) => {
                let mut replies = Vec::with_capacity(steps.len());
                for step in steps {
                    replies.push(self.finish(step).await?);
                }
                Ok(Step::Replies(replies))
            }
            Sent::Queued => {
                if self.core.pending_transmit() >= FLUSH_THRESHOLD {
                    self.transmit().await?;
                }
                Ok(Step::Queued)
            }
        }
    }

    /// Sends `lines` as one pipelined group (RFC 2920) and returns each line's reply, in
    /// order; see [`ClientSession::pipeline`] for the rules checked before anything is sent.
    /// A group ending in DATA answered 354 leaves the session in the message phase.
    ///
    /// # Errors
    /// [`SessionError::GroupRefused`] and the other refusals send nothing; fatal errors end the
    /// session.
    pub async fn pipeline(
        &mut self,
        lines: &[&str],
        one_time: OneTimeOverride,
        force: bool,
    ) -> Result<Vec<Reply>, SessionError> {
        self.take_arrived_bytes().await;
        let steps = self.core.pipeline(lines, one_time, force, Instant::now());
        self.flush_events();
        let mut replies = Vec::new();
        for step in steps? {
            replies.push(self.finish(step).await?);
        }
        Ok(replies)
    }

    /// Sends one BDAT chunk (RFC 3030) and returns the server's reply to it
    /// ([`Step::Reply`]), or under LMTP the reply for each accepted recipient to the chunk
    /// with LAST ([`Step::Replies`]); see [`ClientSession::bdat`].
    ///
    /// # Errors
    /// [`SessionError::ExtensionNotOffered`] and the other refusals send nothing; fatal errors
    /// end the session.
    pub async fn bdat(
        &mut self,
        chunk: &[u8],
        last: bool,
        force: bool,
    ) -> Result<Step, SessionError> {
        self.take_arrived_bytes().await;
        let sent = self.core.bdat(chunk, last, force, Instant::now());
        self.flush_events();
        self.finish_sent(sent?).await
    }

    /// Queues a run of whole lines of a message read from a file (see
    /// [`ClientSession::message_lines`]), writing once enough is queued, so a message of any
    /// size goes through in bounded memory.
    ///
    /// # Errors
    /// As [`ClientSession::message_lines`]; a failed write is fatal.
    pub async fn message_lines(&mut self, block: &[u8]) -> Result<(), SessionError> {
        let queued = self.core.message_lines(block, Instant::now());
        self.flush_events();
        queued?;
        if self.core.pending_transmit() >= FLUSH_THRESHOLD {
            self.transmit().await?;
        }
        Ok(())
    }

    /// Queues one line of a message read from a file (no transcript event per line; see
    /// [`ClientSession::message_data`]), writing once enough is queued, so a message of any
    /// size goes through in bounded memory.
    ///
    /// # Errors
    /// As [`ClientSession::message_data`]; a failed write is fatal.
    pub async fn message_data(&mut self, line: &[u8]) -> Result<(), SessionError> {
        let queued = self.core.message_data(line, Instant::now());
        self.flush_events();
        queued?;
        if self.core.pending_transmit() >= FLUSH_THRESHOLD {
            self.transmit().await?;
        }
        Ok(())
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
        self.take_arrived_bytes().await;
        let step = self.core.answer_challenge(answer, one_time, Instant::now());
        self.flush_events();
        self.finish(step?).await
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
        self.take_arrived_bytes().await;
        let step = self.core.starttls(Instant::now());
        self.flush_events();
        self.finish(step?).await
    }

    /// Runs a SASL exchange with the given credentials, after the guard allows it and the
    /// server's EHLO has advertised the mechanism.
    ///
    /// The transcript shows `AUTH PLAIN <credentials for USER hidden>`; the encoded secret
    /// exists only in the outgoing buffer, which is zeroed after it is written.
    ///
    /// # Errors
    /// [`SessionError::Guard`] and [`SessionError::NotAdvertised`] when refused (nothing
    /// sent); fatal errors otherwise.
    pub async fn authenticate(
        &mut self,
        mechanism: Mechanism,
        credentials: Credentials,
        one_time: OneTimeOverride,
    ) -> Result<Reply, SessionError> {
        self.take_arrived_bytes().await;
        let step = self
            .core
            .authenticate(mechanism, credentials, one_time, Instant::now());
        self.flush_events();
        self.finish(step?).await
    }

    /// Asks whether the server would run a SASL exchange now, without ever sending a
    /// credential: sends `AUTH <MECHANISM>` with no initial response and, if the server
    /// answers 334, cancels at once with `*` (RFC 4954 §4) and reads that reply.
    ///
    /// This is how an audit learns that a server accepts AUTH before TLS. Nothing secret can
    /// cross: the only bytes written are `AUTH <MECHANISM>\r\n` and, after a 334, `*\r\n`.
    /// A server that answers `*` with yet another 334 leaves the session in a challenge that
    /// only a cancellation may answer: the probe never answers one.
    ///
    /// # Errors
    /// Fatal [`SessionError`]s (timeout, closed connection, protocol error), already emitted as
    /// [`EventKind::Error`].
    pub async fn probe_auth_before_tls(
        &mut self,
        mechanism: Mechanism,
    ) -> Result<AuthProbe, SessionError> {
        self.take_arrived_bytes().await;
        let step = self.core.probe_auth(mechanism, Instant::now());
        self.flush_events();
        let challenge = self.finish(step?).await?;
        if challenge.code.value() != 334 {
            return Ok(AuthProbe::Refused(challenge));
        }
        let step = self.core.cancel_exchange(Instant::now());
        self.flush_events();
        let after_cancel = self.finish(step?).await?;
        Ok(AuthProbe::Challenged {
            challenge,
            after_cancel,
        })
    }

    /// Waits, without a deadline, for a reply the client did not ask for, such as the `421`
    /// a server may send at any time (RFC 5321 §3.8) before it closes the connection.
    ///
    /// Interactive front ends call this while the user is thinking, so server bytes show up
    /// when they arrive instead of with the next command. It is cancel-safe: dropping the
    /// future between reads loses nothing, so it can sit in a `select!` next to the user's
    /// next command. With [`UnaskedReplies::Fatal`] an unasked reply other than a 421 ends the
    /// session instead.
    ///
    /// # Errors
    /// [`SessionError::Closed`] when the server closes the connection, and the other fatal
    /// errors of reading; all are emitted and end the session.
    pub async fn next_unsolicited(&mut self) -> Result<Reply, SessionError> {
        loop {
            self.flush_events();
            if let Some(error) = self.core.failure() {
                return Err(error.clone());
            }
            if let Some(reply) = self.core.take_completion(UNASKED_STEP) {
                return Ok(reply);
            }
            if self.core.is_over() {
                return Err(SessionError::Ended);
            }
            self.read_once().await;
        }
    }

    /// Leaves politely: QUIT, its reply, then close. Errors are ignored: the user is leaving
    /// either way. Inside a message it closes without QUIT (QUIT would be message text, and a
    /// server discards a message that never got its final dot); inside a SASL exchange it
    /// cancels with `*` first (QUIT would be taken as the answer).
    pub async fn quit(&mut self) {
        if self.core.is_over() {
            return;
        }
        self.take_arrived_bytes().await;
        match self.core.phase() {
            // Closing without the final dot is how a client abandons a message.
            Phase::Message => {}
            Phase::SaslChallenge => {
                let cancelled = self.core.cancel_exchange(Instant::now());
                self.flush_events();
                if let Ok(step) = cancelled
                    && self.finish(step).await.is_ok()
                {
                    let _ = self.send_line("QUIT", OneTimeOverride::None).await;
                }
            }
            Phase::Command => {
                let _ = self.send_line("QUIT", OneTimeOverride::None).await;
            }
        }
        self.close().await;
    }

    /// Closes the connection without QUIT (sending TLS's close_notify when TLS is up).
    pub async fn close(&mut self) {
        if self.core.failure().is_none() {
            self.core.close(Instant::now());
            self.flush_events();
            if let Some(bytes) = self.core.poll_transmit()
                && let Some(tcp) = self.tcp.as_mut()
            {
                let _ = tokio::time::timeout(Duration::from_secs(1), tcp.write_all(&bytes)).await;
            }
        }
        if let Some(mut tcp) = self.tcp.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), tcp.shutdown()).await;
        }
    }

    // ---------------------------------------------------------------------------------------
    // Moving bytes
    // ---------------------------------------------------------------------------------------

    /// Drives the core until `step` completes or the session fails.
    async fn finish(&mut self, step: StepId) -> Result<Reply, SessionError> {
        loop {
            self.transmit().await?;
            self.flush_events();
            // A failure wins over a completion queued just before it (bytes unasked right
            // behind a TLS handshake fail the session that the 220 to STARTTLS began).
            if let Some(error) = self.core.failure() {
                return Err(error.clone());
            }
            if let Some(reply) = self.core.take_completion(step) {
                return Ok(reply);
            }
            if self.core.is_over() {
                return Err(SessionError::Ended);
            }
            self.read_once().await;
        }
    }

    /// Writes everything the core has queued, within the session's deadline.
    async fn transmit(&mut self) -> Result<(), SessionError> {
        while let Some(bytes) = self.core.poll_transmit() {
            let Some(tcp) = self.tcp.as_mut() else {
                return Err(self.transport_failed(SessionError::Closed { mid_reply: false }));
            };
            match tokio::time::timeout(self.config.timeout, tcp.write_all(&bytes)).await {
                Err(_) => {
                    return Err(self.transport_failed(SessionError::Timeout {
                        waiting_for: "the server to accept our data".to_owned(),
                        after: self.config.timeout,
                        partial: String::new(),
                        hint: "raise --timeout if the server is just slow".to_owned(),
                    }));
                }
                Ok(Err(error)) => return Err(self.transport_failed(error.into())),
                Ok(Ok(())) => {}
            }
        }
        Ok(())
    }

    /// Reads once into the core, up to the core's deadline (none while idle). Cancel-safe:
    /// the core sees bytes only once a read has completed.
    async fn read_once(&mut self) {
        let Some(tcp) = self.tcp.as_mut() else {
            self.core.eof(Instant::now());
            return;
        };
        let read = tcp.read(&mut self.read_buffer);
        let result = match self.core.next_deadline() {
            Some(deadline) => {
                match tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), read).await
                {
                    Ok(result) => result,
                    Err(_) => {
                        self.core.handle_timeout(Instant::now());
                        return;
                    }
                }
            }
            None => read.await,
        };
        let now = Instant::now();
        match result {
            Ok(0) => self.core.eof(now),
            Ok(n) => self.core.received(&self.read_buffer[..n], now),
            Err(error) => {
                self.core.transport_failed(error.into(), now);
            }
        }
    }

    /// Hands the core whatever the server has sent by now, without waiting: bytes that
    /// arrived before a request cannot be the reply to it, and the core must know that
    /// before the request's own reply comes.
    async fn take_arrived_bytes(&mut self) {
        // One scheduler turn lets the runtime notice sockets that became readable.
        tokio::task::yield_now().await;
        while let Some(tcp) = self.tcp.as_ref() {
            if self.core.is_over() {
                break;
            }
            match tcp.try_read(&mut self.read_buffer) {
                Ok(0) => {
                    self.core.eof(Instant::now());
                    break;
                }
                Ok(n) => self.core.received(&self.read_buffer[..n], Instant::now()),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => {
                    self.core.transport_failed(error.into(), Instant::now());
                    break;
                }
            }
        }
        self.flush_events();
    }

    fn transport_failed(&mut self, error: SessionError) -> SessionError {
        let error = self.core.transport_failed(error, Instant::now());
        self.flush_events();
        self.tcp = None;
        error
    }

    fn flush_events(&mut self) {
        while let Some(event) = self.core.poll_event() {
            (self.sink)(event);
        }
    }
}

/// Asks the kernel to acknowledge the next segment at once instead of delaying the ACK.
///
/// Servers that write a reply in two small pieces without TCP_NODELAY (Postfix sends TLS
/// session tickets and then the greeting) otherwise wait for our delayed ACK, adding 40 ms
/// that belong to neither the server nor the network. Linux clears the flag after some
/// operations, so it is set again before every read; elsewhere this does nothing.
fn ack_promptly(tcp: &TcpStream) {
    #[cfg(target_os = "linux")]
    {
        // Only latency depends on it; a failure changes nothing else.
        let _ = tcp.set_quickack(true);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = tcp;
}

/// Opens the socket `config` names: `unix:/path` or a host and port. Returns it with the
/// peer's and our own address, in words.
async fn open(config: &SessionConfig) -> Result<(Socket, String, String), SessionError> {
    let target = format_target(&config.host, config.port);
    let failed = |source: io::Error| SessionError::Connect {
        target: target.clone(),
        source: Arc::new(source),
    };
    #[cfg(unix)]
    if let Some(path) = config.host.strip_prefix("unix:") {
        let unix = UnixStream::connect(path).await.map_err(failed)?;
        return Ok((
            Socket::Unix(unix),
            format!("unix:{path}"),
            "a local socket".to_owned(),
        ));
    }
    let host = config.host.trim_start_matches('[').trim_end_matches(']');
    let tcp = connect_tcp(host, config.port, &config.transport)
        .await
        .map_err(failed)?;
    // Interactive SMTP is many small lines; Nagle would only add latency.
    tcp.set_nodelay(true)?;
    let (peer, local) = (addr(tcp.peer_addr()), addr(tcp.local_addr()));
    Ok((Socket::Tcp(tcp), peer, local))
}

/// Connects to the first address of `host` that works, of the family asked for, from the
/// local address asked for.
async fn connect_tcp(host: &str, port: u16, transport: &Transport) -> io::Result<TcpStream> {
    if transport.family.is_none() && transport.local.is_none() {
        return TcpStream::connect((host, port)).await;
    }
    let family = transport.family.or(match transport.local {
        Some(SocketAddr::V4(_)) => Some(AddressFamily::V4),
        Some(SocketAddr::V6(_)) => Some(AddressFamily::V6),
        None => None,
    });
    let wanted = |address: &SocketAddr| match family {
        Some(AddressFamily::V4) => address.is_ipv4(),
        Some(AddressFamily::V6) => address.is_ipv6(),
        None => true,
    };
    let candidates: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await?
        .filter(wanted)
        .collect();
    if candidates.is_empty() {
        let family = match family {
            Some(AddressFamily::V6) => "IPv6",
            _ => "IPv4",
        };
        let why = if transport.family.is_some() {
            format!("{host} has no {family} address (asked for with -4 or -6)")
        } else {
            format!("{host} has no {family} address, the family of --local-addr")
        };
        return Err(io::Error::new(io::ErrorKind::AddrNotAvailable, why));
    }
    let mut last = None;
    for address in candidates {
        let socket = if address.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        if let Some(local) = transport.local {
            socket.bind(local).map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!(
                        "cannot use the local address {local} (--local-addr): {error}; give an \
                         address of this machine, and a port no other socket uses"
                    ),
                )
            })?;
        }
        match socket.connect(address).await {
            Ok(tcp) => return Ok(tcp),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::NotConnected)))
}

/// Writes the PROXY header `request` asks for (its destination defaulting to the server's
/// address) and returns it, for the transcript.
async fn send_proxy_header(
    socket: &mut Socket,
    request: ProxyRequest,
    timeout: Duration,
) -> Result<ProxyHeader, SessionError> {
    let destination = request
        .destination
        .or_else(|| socket.peer())
        .ok_or_else(|| {
            SessionError::Io(Arc::new(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a PROXY header over a UNIX socket needs --proxy-dest ADDR:PORT",
            )))
        })?;
    let header = ProxyHeader::new(request.version, request.source, destination).map_err(|e| {
        SessionError::Io(Arc::new(io::Error::new(
            io::ErrorKind::InvalidInput,
            e.to_string(),
        )))
    })?;
    match tokio::time::timeout(timeout, socket.write_all(&header.to_bytes())).await {
        Ok(Ok(())) => Ok(header),
        Ok(Err(error)) => Err(error.into()),
        Err(_) => Err(SessionError::Timeout {
            waiting_for: "the server to accept the PROXY header".to_owned(),
            after: timeout,
            partial: String::new(),
            hint: "raise --timeout if the server is just slow".to_owned(),
        }),
    }
}

fn addr(result: io::Result<SocketAddr>) -> String {
    result
        .map(|a| a.to_string())
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

/// `host:port`, with brackets around IPv6 literals; a `unix:/path` socket as it is.
pub fn format_target(host: &str, port: u16) -> String {
    if host.starts_with("unix:") {
        host.to_owned()
    } else if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
