//! The client core and the lab's server joined in memory: a whole SMTP session, STARTTLS
//! and TLS included, with no socket and no clock.
//!
//! [`Pair`] moves bytes between a [`ClientSession`] and a [`ServerSession`] (wrapped in a
//! rustls server connection once TLS starts) until neither has anything left to say. The
//! bytes from server to client can be cut into pieces of chosen sizes, so a test can check
//! that no outcome depends on how the network happened to split them; time is a value the
//! test moves. Everything the server received outside TLS is kept, so a test can prove that
//! no credential crossed in cleartext. Tests and fuzz targets drive it; it is the
//! quinn-proto `Pair` idea for SMTP.

use std::io::{Read as _, Write as _};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::accounts::{Accounts, DEFAULT_PASSWORD, DEFAULT_USER};
use super::certs::LabPki;
use super::profile::Profile;
use super::server::{Direction, Message, Output, ServerSession, ServerSettings};
use crate::guard::GuardPolicy;
use crate::proto::client::{
    ClientSession, ClientSettings, SessionError, StepId, TlsMode, UnaskedReplies,
};
use crate::proto::reply::{Reply, ReplyLimits};
use crate::secret::{Credentials, Secret};
use crate::tls::TrustSettings;
use crate::transcript::Event;

/// The workshop account's credentials, as a client would be given them.
pub fn workshop_credentials() -> Credentials {
    Credentials {
        user: DEFAULT_USER.to_owned(),
        secret: Secret::new(DEFAULT_PASSWORD.to_owned()),
    }
}

/// A client and a lab server of one profile, connected in memory.
pub struct Pair {
    /// The client core under test.
    pub client: ClientSession,
    /// The lab's server session.
    pub server: ServerSession,
    server_tls: Option<Box<rustls::ServerConnection>>,
    server_config: Arc<rustls::ServerConfig>,
    to_server: Vec<u8>,
    to_client: Vec<u8>,
    /// The time every input is stamped with; tests move it to reach deadlines.
    pub now: Instant,
    /// The sizes in which server bytes are handed to the client, used in turn (a size
    /// larger than what is waiting hands all of it).
    pub cuts: Vec<usize>,
    next_cut: usize,
    /// Whether server bytes are delivered at all (off: they wait, as on a stalled network).
    pub deliver: bool,
    /// Every byte the server received outside TLS.
    pub cleartext_to_server: Vec<u8>,
    /// Every transcript event of the client, in order.
    pub events: Vec<Event>,
    /// The server's log.
    pub log: Vec<(Direction, String)>,
    /// Messages the server accepted.
    pub delivered: Vec<Message>,
    server_closed: bool,
    eof_delivered: bool,
}

impl Pair {
    /// A pair whose server presents the leaf of `pki` and whose client trusts its CA and
    /// verifies the name `localhost`. `adjust` may change the client's settings (overrides,
    /// unasked replies, known secrets) before the connection starts.
    ///
    /// # Errors
    /// [`SessionError::TlsSetup`] when the client's TLS configuration cannot be built.
    pub fn new(
        pki: &LabPki,
        profile: Profile,
        adjust: impl FnOnce(&mut ClientSettings),
    ) -> Result<Self, SessionError> {
        let (tls, verdict) = crate::tls::client_config(&TrustSettings {
            extra_roots: vec![pki.ca_der.clone()],
            continue_unverified: false,
            client_identity: None,
            roots: Default::default(),
        })?;
        let implicit = profile == Profile::Implicit;
        let mut settings = ClientSettings {
            target: format!("lab:{}", profile.name()),
            tls_mode: if implicit {
                TlsMode::Implicit
            } else {
                TlsMode::StartTls
            },
            server_name: "localhost".to_owned(),
            tls,
            verdict,
            policy: GuardPolicy::default(),
            timeout: Duration::from_secs(30),
            limits: ReplyLimits::default(),
            unasked: UnaskedReplies::Fatal,
            known_secrets: Vec::new(),
            sasl: Default::default(),
            client_identity: None,
            key_log: None,
            anchors: "the lab CA".to_owned(),
        };
        adjust(&mut settings);
        let now = Instant::now();
        let client = ClientSession::new(settings, now, SystemTime::UNIX_EPOCH)?;
        let server_settings = Arc::new(ServerSettings::new(
            "lab.test",
            profile,
            Arc::new(Accounts::with_default()),
        ));
        let server = ServerSession::new(server_settings, 1, implicit);
        Ok(Self {
            client,
            server,
            server_tls: None,
            server_config: pki.server_config.clone(),
            to_server: Vec::new(),
            to_client: Vec::new(),
            now,
            cuts: vec![usize::MAX],
            next_cut: 0,
            deliver: true,
            cleartext_to_server: Vec::new(),
            events: Vec::new(),
            log: Vec::new(),
            delivered: Vec::new(),
            server_closed: false,
            eof_delivered: false,
        })
    }

    /// Opens the connection and runs until the greeting is in; returns the greeting step.
    pub fn connect(&mut self) -> StepId {
        let step = self
            .client
            .connected("lab".to_owned(), "client".to_owned(), self.now);
        if self.server.is_tls() {
            self.start_server_tls();
        } else {
            let greeting = self.server.greeting();
            self.apply(greeting);
        }
        self.drive();
        step
    }

    /// Runs a client request, then moves bytes until both sides are quiet, and returns the
    /// reply completing it (or why there is none).
    ///
    /// # Errors
    /// The request's refusal, or the fatal error that ended the session.
    pub fn step(
        &mut self,
        request: impl FnOnce(&mut ClientSession, Instant) -> Result<StepId, SessionError>,
    ) -> Result<Reply, SessionError> {
        let step = request(&mut self.client, self.now);
        self.drive();
        let step = step?;
        if let Some(error) = self.client.failure() {
            return Err(error.clone());
        }
        self.client.take_completion(step).ok_or(SessionError::Busy)
    }

    /// Moves bytes both ways until neither side has anything left to send.
    pub fn drive(&mut self) {
        loop {
            let mut moved = false;
            while let Some(bytes) = self.client.poll_transmit() {
                self.to_server.extend_from_slice(&bytes);
            }
            if !self.to_server.is_empty() {
                let bytes = std::mem::take(&mut self.to_server);
                self.server_receive(&bytes);
                moved = true;
            }
            if self.deliver && !self.to_client.is_empty() {
                let cut = self.cuts.get(self.next_cut).copied().unwrap_or(usize::MAX);
                self.next_cut = (self.next_cut + 1) % self.cuts.len().max(1);
                let n = cut.clamp(1, self.to_client.len());
                let piece: Vec<u8> = self.to_client.drain(..n).collect();
                self.client.received(&piece, self.now);
                moved = true;
            }
            if self.deliver
                && self.server_closed
                && self.to_client.is_empty()
                && !self.eof_delivered
            {
                self.eof_delivered = true;
                self.client.eof(self.now);
                moved = true;
            }
            while let Some(event) = self.client.poll_event() {
                self.events.push(event);
            }
            if !moved {
                return;
            }
        }
    }

    /// Puts bytes on the way to the client as if the server (or someone on the path) sent
    /// them now, in cleartext: the network, not the server session, is hostile.
    pub fn inject_to_client(&mut self, bytes: &[u8]) {
        self.to_client.extend_from_slice(bytes);
    }

    /// Whether the server's TLS handshake has completed.
    pub fn server_has_tls(&self) -> bool {
        self.server_tls
            .as_ref()
            .is_some_and(|c| !c.is_handshaking())
    }

    fn server_receive(&mut self, bytes: &[u8]) {
        if self.server_closed {
            return;
        }
        let Some(conn) = self.server_tls.as_mut() else {
            self.cleartext_to_server.extend_from_slice(bytes);
            let outputs = self.server.receive(bytes);
            self.apply(outputs);
            return;
        };
        let was_handshaking = conn.is_handshaking();
        let mut rest = bytes;
        let mut plaintext = Vec::new();
        while !rest.is_empty() {
            if conn.read_tls(&mut rest).is_err() || conn.process_new_packets().is_err() {
                self.flush_server_tls();
                self.server_closed = true;
                self.log
                    .push((Direction::Note, "the TLS layer failed".to_owned()));
                return;
            }
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = conn.reader().read(&mut chunk) {
                plaintext.extend_from_slice(&chunk[..n]);
            }
        }
        let handshake_done = was_handshaking && !conn.is_handshaking();
        self.flush_server_tls();
        if handshake_done {
            if self.server.is_tls() && !self.server_greeted() {
                let greeting = self.server.greeting();
                self.apply(greeting);
            } else {
                self.server.tls_started();
            }
        }
        if !plaintext.is_empty() {
            let outputs = self.server.receive(&plaintext);
            self.apply(outputs);
        }
    }

    /// For implicit TLS the greeting follows the first handshake; afterwards the session
    /// has spoken.
    fn server_greeted(&self) -> bool {
        self.log
            .iter()
            .any(|(direction, _)| *direction == Direction::Server)
    }

    fn apply(&mut self, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Send(bytes) => match self.server_tls.as_mut() {
                    Some(conn) => {
                        let _ = conn.writer().write_all(&bytes);
                        self.flush_server_tls();
                    }
                    None => self.to_client.extend_from_slice(&bytes),
                },
                Output::StartTls => self.start_server_tls(),
                // There is no clock here: a wait is over as soon as it is asked for.
                Output::Wait(_) => self.server.waited(),
                Output::Close => self.server_closed = true,
                Output::Log(direction, text) => self.log.push((direction, text)),
                Output::Deliver(message) => self.delivered.push(message),
            }
        }
    }

    fn start_server_tls(&mut self) {
        match rustls::ServerConnection::new(self.server_config.clone()) {
            Ok(conn) => self.server_tls = Some(Box::new(conn)),
            Err(_) => self.server_closed = true,
        }
    }

    fn flush_server_tls(&mut self) {
        if let Some(conn) = self.server_tls.as_mut() {
            while conn.wants_write() {
                if conn.write_tls(&mut self.to_client).is_err() {
                    break;
                }
            }
        }
    }
}
