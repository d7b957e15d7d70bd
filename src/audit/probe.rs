//! The probes: a short battery of sessions against one server that fills in
//! [`Observations`] for the judging in [`super::findings`].
//!
//! 1. The main session, through the engine: greeting, EHLO, the AUTH-before-TLS probe
//!    ([`Session::probe_auth_before_tls`], which can never carry a credential), `MAIL FROM:<>`
//!    then `RSET`, STARTTLS with the certificate verdict recorded rather than enforced, and
//!    EHLO inside TLS.
//! 2. The STARTTLS command injection probe on a second connection ([`super::injection`]).
//! 3. For submission, implicit TLS on another port (465 unless told otherwise).
//!
//! Every session's events land in one [`Recorder`], so `--transcript` shows all of them in
//! order. Nothing here decides what is good or bad.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use super::findings::{
    AuthProbeSeen, EhloSeen, ImplicitSeen, InjectionSeen, Observations, ReplyBrief, Role,
    RoleChoice, StartTlsSeen,
};
use super::injection;
use crate::guard::OneTimeOverride;
use crate::proto::ehlo::Capabilities;
use crate::proto::reply::Reply;
use crate::proto::sasl::Mechanism;
use crate::session::{
    AuthProbe, EventSink, Session, SessionConfig, SessionError, Step, TlsMode, format_target,
};
use crate::transcript::{Event, EventKind};

/// The name the audit gives in EHLO. `.invalid` is reserved (RFC 6761), so it can never be
/// mistaken for a real host.
pub const EHLO_NAME: &str = "smtptui-audit.invalid";

/// The longest the implicit-TLS probe waits: it is a side question, and a filtered port
/// should not hold the whole audit for the full `--timeout`.
const IMPLICIT_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// What to audit and how.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// The main session. The audit forces `trust.continue_unverified` on, so a bad
    /// certificate becomes a finding instead of ending the audit; the credential guard is
    /// untouched (and never needed: no credential is ever sent).
    pub session: SessionConfig,
    /// `--role`, if given.
    pub role: Option<Role>,
    /// Where to probe implicit TLS: `Some(port)` from `--implicit-port`, `None` for the
    /// default (465, and only for a submission server).
    pub implicit_port: Option<u16>,
    /// `--no-implicit`: skip the implicit-TLS probe.
    pub no_implicit: bool,
}

/// The result of a finished audit.
#[derive(Debug, Clone)]
pub struct Audit {
    /// The role the findings were judged against, and how it was decided.
    pub role: RoleChoice,
    /// What the probes saw.
    pub observations: Observations,
}

/// Why no audit could be made at all.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The server could not be reached or did not greet.
    #[error("cannot audit {target}: {source}")]
    Connect {
        /// `host:port`.
        target: String,
        /// What the engine said.
        source: SessionError,
    },
}

/// Collects the events of every probe session, in order, for `--transcript`.
#[derive(Debug, Clone)]
pub struct Recorder {
    events: Arc<Mutex<Vec<Event>>>,
    started: std::time::Instant,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// An empty recorder; elapsed times in raw-socket events count from now.
    pub fn new() -> Self {
        Self {
            events: Arc::default(),
            started: std::time::Instant::now(),
        }
    }

    /// A sink for a [`Session`] that appends to this recorder.
    pub fn sink(&self) -> EventSink {
        let events = self.events.clone();
        Box::new(move |event| {
            events
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(event);
        })
    }

    /// Appends an event made outside the engine (the raw-socket probe, section notes).
    pub fn push(&self, kind: EventKind) {
        let elapsed = self.started.elapsed();
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Event {
                time: SystemTime::now(),
                elapsed,
                kind,
            });
    }

    /// A copy of everything recorded so far.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Runs every probe against the server and returns what they saw.
///
/// # Errors
/// [`AuditError::Connect`] when the main session cannot be opened (no TCP connection, no
/// greeting); every later failure is recorded as an observation instead.
pub async fn run(config: AuditConfig, recorder: &Recorder) -> Result<Audit, AuditError> {
    let mut session_config = config.session.clone();
    session_config.trust.continue_unverified = true;
    let target = format_target(&session_config.host, session_config.port);
    let implicit = session_config.tls_mode == TlsMode::Implicit;
    recorder.push(EventKind::Note(format!(
        "audit of {target}: main session (greeting, EHLO, AUTH and MAIL before TLS, STARTTLS)"
    )));
    let (mut session, greeting) = match Session::connect(session_config.clone(), recorder.sink())
        .await
    {
        Ok(opened) => opened,
        Err(source @ (SessionError::Handshake(_) | SessionError::Injection { .. })) if implicit => {
            // Implicit TLS that fails is a finding about the server, not a missing server.
            let observations = Observations {
                target: target.clone(),
                port: session_config.port,
                implicit,
                greeting: ReplyBrief {
                    code: 0,
                    summary: "no greeting: the TLS handshake failed".to_owned(),
                },
                ehlo_before: None,
                auth_probe: None,
                mail_before_tls: None,
                starttls: handshake_failed(&source),
                implicit_tls: None,
                ehlo_after: None,
                injection: InjectionSeen::NotRun,
                implicit_probe: ImplicitSeen::NotRun,
                aborted: None,
            };
            let role = RoleChoice::decide(config.role, session_config.port, false);
            return Ok(Audit { role, observations });
        }
        Err(source) => return Err(AuditError::Connect { target, source }),
    };
    let mut seen = Observations {
        target: target.clone(),
        port: session_config.port,
        implicit,
        greeting: ReplyBrief::from(&greeting),
        ehlo_before: None,
        auth_probe: None,
        mail_before_tls: None,
        starttls: StartTlsSeen::NotApplicable,
        implicit_tls: session.tls_info().cloned().map(Box::new),
        ehlo_after: None,
        injection: InjectionSeen::NotRun,
        implicit_probe: ImplicitSeen::NotRun,
        aborted: None,
    };
    if greeting.code.value() == 220 {
        if let Err(error) = main_probes(&mut session, &mut seen).await {
            seen.aborted = Some(error.to_string());
        }
        session.quit().await;
    } else {
        session.close().await;
    }

    if matches!(seen.starttls, StartTlsSeen::Established(_)) {
        recorder.push(EventKind::Note(
            "STARTTLS command injection probe: STARTTLS and NOOP in one write; a careful server \
             discards the NOOP"
                .to_owned(),
        ));
        seen.injection = injection::probe(&session_config, EHLO_NAME, recorder).await;
    }

    let auth_anywhere = [&seen.ehlo_before, &seen.ehlo_after]
        .into_iter()
        .flatten()
        .any(|ehlo| !ehlo.auth_mechanisms.is_empty());
    let role = RoleChoice::decide(config.role, session_config.port, auth_anywhere);

    let implicit_port = match config.implicit_port {
        _ if config.no_implicit || implicit => None,
        Some(port) => Some(port),
        None if role.role == Role::Submission && session_config.port != 465 => Some(465),
        None => None,
    };
    if let Some(port) = implicit_port {
        recorder.push(EventKind::Note(format!(
            "implicit TLS probe on port {port} (RFC 8314)"
        )));
        seen.implicit_probe = implicit_probe(&session_config, port, recorder).await;
    }
    Ok(Audit {
        role,
        observations: seen,
    })
}

/// The main session's probes, in order; stops at the first fatal error.
async fn main_probes(session: &mut Session, seen: &mut Observations) -> Result<(), SessionError> {
    let ehlo = format!("EHLO {EHLO_NAME}");
    send(session, &ehlo).await?;
    let before = session.capabilities().map(ehlo_seen);
    seen.ehlo_before = before.clone();
    let Some(before) = before else {
        return Ok(());
    };
    if seen.implicit {
        return Ok(());
    }

    // LOGIN answers with a 334 prompt for the user name and PLAIN with an empty 334, so either
    // shows whether the server would take credentials; LOGIN is the usual one to work.
    let mechanism = if before.auth_mechanisms.is_empty()
        || before.auth_mechanisms.iter().any(|m| m == "LOGIN")
        || !before.auth_mechanisms.iter().any(|m| m == "PLAIN")
    {
        Mechanism::Login
    } else {
        Mechanism::Plain
    };
    seen.auth_probe = Some(match session.probe_auth_before_tls(mechanism).await? {
        AuthProbe::Refused(reply) => AuthProbeSeen::Refused(ReplyBrief::from(&reply)),
        AuthProbe::Challenged { .. } => AuthProbeSeen::Challenged {
            mechanism: mechanism.name().to_owned(),
        },
    });

    let mail = send(session, "MAIL FROM:<>").await?;
    if mail.code.value() / 100 == 2 {
        send(session, "RSET").await?;
    }
    seen.mail_before_tls = Some(ReplyBrief::from(&mail));

    if !before.starttls {
        seen.starttls = StartTlsSeen::NotOffered;
        return Ok(());
    }
    match session.starttls().await {
        Ok(reply) if reply.code.value() == 220 => {
            seen.starttls = match session.tls_info() {
                Some(info) => StartTlsSeen::Established(Box::new(info.clone())),
                None => StartTlsSeen::HandshakeFailed {
                    detail: "no TLS details after the handshake".to_owned(),
                    no_modern_version: false,
                },
            };
        }
        Ok(reply) => {
            seen.starttls = StartTlsSeen::Refused(ReplyBrief::from(&reply));
            return Ok(());
        }
        Err(error @ (SessionError::Handshake(_) | SessionError::Injection { .. })) => {
            seen.starttls = handshake_failed(&error);
            return Ok(());
        }
        Err(error) => return Err(error),
    }
    send(session, &ehlo).await?;
    seen.ehlo_after = session.capabilities().map(ehlo_seen);
    Ok(())
}

/// Whether a handshake error says the server offers no TLS version rustls accepts (1.2, 1.3).
/// rustls reports it as a `protocol_version` alert from the server or as an incompatible peer,
/// so the error text is what tells.
fn handshake_failed(error: &SessionError) -> StartTlsSeen {
    let detail = error.to_string();
    let no_modern_version =
        matches!(error, SessionError::Handshake(failure) if failure.no_common_version());
    StartTlsSeen::HandshakeFailed {
        detail,
        no_modern_version,
    }
}

async fn send(session: &mut Session, line: &str) -> Result<Reply, SessionError> {
    match session.send_line(line, OneTimeOverride::None).await? {
        Step::Reply(reply) => Ok(reply),
        // Only message lines are queued, and the audit never sends DATA.
        Step::Queued => Err(SessionError::Ended),
    }
}

fn ehlo_seen(caps: &Capabilities) -> EhloSeen {
    EhloSeen {
        extensions: caps
            .extensions
            .iter()
            .map(|ext| {
                if ext.params.is_empty() {
                    ext.keyword.clone()
                } else {
                    format!("{} {}", ext.keyword, ext.params.join(" "))
                }
            })
            .collect(),
        auth_mechanisms: caps.auth_mechanisms(),
        starttls: caps.has("STARTTLS"),
    }
}

async fn implicit_probe(base: &SessionConfig, port: u16, recorder: &Recorder) -> ImplicitSeen {
    let mut config = base.clone();
    config.port = port;
    config.tls_mode = TlsMode::Implicit;
    config.trust.continue_unverified = true;
    config.timeout = config.timeout.min(IMPLICIT_PROBE_TIMEOUT);
    match Session::connect(config, recorder.sink()).await {
        Ok((mut session, greeting)) => {
            let summary = session
                .tls_info()
                .map(|info| format!("{} {}", info.version, info.cipher_suite))
                .unwrap_or_default();
            let result = if greeting.code.value() == 220 {
                ImplicitSeen::Works { port, summary }
            } else {
                ImplicitSeen::Failed {
                    port,
                    detail: format!("greeted inside TLS with {}", greeting.summary()),
                }
            };
            session.quit().await;
            result
        }
        Err(SessionError::Connect { .. }) => ImplicitSeen::NothingListening { port },
        Err(SessionError::Timeout { waiting_for, .. })
            if waiting_for.starts_with("the TCP connection") =>
        {
            ImplicitSeen::NothingListening { port }
        }
        Err(error) => ImplicitSeen::Failed {
            port,
            detail: error.to_string(),
        },
    }
}
