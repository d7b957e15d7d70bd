//! The probes: a short battery of sessions against one server that fills in
//! [`Observations`] for the judging in [`super::findings`].
//!
//! 1. The main session, through the engine: greeting, EHLO, the AUTH-before-TLS probe
//!    ([`Session::probe_auth_before_tls`], which can never carry a credential), `MAIL FROM:<>`
//!    then `RSET`, STARTTLS with the certificate verdict recorded rather than enforced, and
//!    EHLO inside TLS. A `421` at any step (RFC 5321 §3.8) or a fatal error stops it there,
//!    and the audit says so.
//! 2. Older-style TLS hellos on fresh connections ([`super::versions`]): after a failed
//!    handshake, what the server speaks at all; after one that worked, whether TLS 1.0 and
//!    1.1 are accepted too, which this client's own handshake cannot tell.
//! 3. The STARTTLS command injection probe on another connection ([`super::injection`]).
//! 4. For submission, implicit TLS on another port (465 unless told otherwise).
//! 5. Only when asked for ([`run_with_smuggling`]), the SMTP smuggling probe
//!    ([`super::smuggling`]), which sends real test messages to the address given.
//!
//! Every session's events land in one [`Recorder`], so `--transcript` shows all of them in
//! order. Nothing here decides what is good or bad.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use super::findings::{
    AuthProbeSeen, CutShort, EhloSeen, ImplicitSeen, InjectionSeen, Observations, ReplyBrief, Role,
    RoleChoice, StartTlsSeen, Vantage, VersionProbe,
};
use super::injection;
use super::smuggling::{self, Recipient, SmugglingSeen, Transport};
use super::versions::{self, HelloAnswer, TlsVersion};
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
    /// The server answered, but refused or ended the session before anything could be
    /// judged: a greeting other than 220, EHLO not answered 250, a `421`, or an endless,
    /// overlong or cut-off reply to EHLO.
    #[error("cannot audit {target}: {why}; nothing could be judged")]
    NothingJudged {
        /// `host:port`.
        target: String,
        /// What the server did.
        why: String,
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

    /// Appends an event made outside the engine (the raw-socket probes, section notes).
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

    /// The addresses of the first connection recorded from `index` on.
    fn connected_since(&self, index: usize) -> Option<Vantage> {
        let events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        events
            .iter()
            .skip(index)
            .find_map(|event| match &event.kind {
                EventKind::Connected { peer, local } => Some(Vantage {
                    peer: peer.parse::<SocketAddr>().ok()?.ip(),
                    local: local.parse::<SocketAddr>().ok()?.ip(),
                }),
                _ => None,
            })
    }

    fn len(&self) -> usize {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// A step of the main session that did not complete: the probes stop there.
struct Stop {
    during: String,
    why: String,
}

impl Stop {
    fn error(during: &str, error: &SessionError) -> Self {
        Self {
            during: during.to_owned(),
            why: error.to_string(),
        }
    }

    fn closing(during: &str, reply: &Reply) -> Self {
        Self {
            during: during.to_owned(),
            why: format!(
                "the server ended the session with {} (RFC 5321 §3.8)",
                reply.summary()
            ),
        }
    }
}

/// Which probes run besides the main session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Battery {
    /// Every probe.
    Full,
    /// Every probe but the STARTTLS command injection probe, which waits 1.5 s for an answer
    /// a careful server never sends: the domain audit's probe of each MX address, which
    /// points at the full host audit for that question.
    WithoutInjection,
}

/// Runs every probe against the server and returns what they saw.
///
/// # Errors
/// [`AuditError::Connect`] when the main session cannot be opened (no TCP connection, no
/// greeting) and [`AuditError::NothingJudged`] when the server refuses or ends it before its
/// first EHLO is answered; every later failure is recorded as an observation instead.
pub async fn run(config: AuditConfig, recorder: &Recorder) -> Result<Audit, AuditError> {
    run_battery(config, recorder, Battery::Full).await
}

/// [`run`] with a choice of probes.
///
/// # Errors
/// As for [`run`].
pub async fn run_battery(
    config: AuditConfig,
    recorder: &Recorder,
    battery: Battery,
) -> Result<Audit, AuditError> {
    run_probes(config, recorder, battery, None).await
}

/// [`run`], then the SMTP smuggling probe: real test messages to `to`, one per non-standard
/// end-of-data sequence, each on its own session (TLS where the main session had it).
///
/// # Errors
/// As for [`run`].
pub async fn run_with_smuggling(
    config: AuditConfig,
    recorder: &Recorder,
    to: &Recipient,
) -> Result<Audit, AuditError> {
    run_probes(config, recorder, Battery::Full, Some(to)).await
}

async fn run_probes(
    config: AuditConfig,
    recorder: &Recorder,
    battery: Battery,
    smuggling_to: Option<&Recipient>,
) -> Result<Audit, AuditError> {
    let mut session_config = config.session.clone();
    session_config.trust.continue_unverified = true;
    let target = format_target(&session_config.host, session_config.port);
    let implicit = session_config.tls_mode == TlsMode::Implicit;
    recorder.push(EventKind::Note(format!(
        "audit of {target}: main session (greeting, EHLO, AUTH and MAIL before TLS, STARTTLS)"
    )));
    let first_event = recorder.len();
    let mut seen = Observations {
        target: target.clone(),
        port: session_config.port,
        implicit,
        greeting: None,
        ehlo_before: None,
        auth_probe: None,
        mail_before_tls: None,
        starttls: if implicit {
            StartTlsSeen::NotApplicable
        } else {
            StartTlsSeen::NotReached
        },
        implicit_tls: None,
        ehlo_after: None,
        versions: VersionProbe::NotRun,
        injection: InjectionSeen::NotRun,
        implicit_probe: ImplicitSeen::NotRun,
        smuggling: SmugglingSeen::NotRun,
        cut_short: None,
        vantage: None,
    };
    let (mut session, greeting) = match Session::connect(session_config.clone(), recorder.sink())
        .await
    {
        Ok(opened) => opened,
        Err(error @ (SessionError::Handshake(_) | SessionError::Injection { .. })) if implicit => {
            // Implicit TLS that fails is a finding about the server, not a missing server.
            seen.vantage = recorder.connected_since(first_event);
            seen.starttls = handshake_failed(&error);
            if matches!(error, SessionError::Handshake(_)) {
                seen.versions = after_failure(&session_config, recorder).await;
            }
            if let Some(to) = smuggling_to {
                seen.smuggling = SmugglingSeen::NotStarted {
                    to: to.to_string(),
                    during: "the TLS handshake".to_owned(),
                    why: "implicit TLS did not work in the main session, so no test message \
                          was sent"
                        .to_owned(),
                    refusal: None,
                };
            }
            let role = RoleChoice::decide(config.role, session_config.port, false);
            return Ok(Audit {
                role,
                observations: seen,
            });
        }
        Err(source) => return Err(AuditError::Connect { target, source }),
    };
    seen.vantage = recorder.connected_since(first_event);
    if greeting.code.value() != 220 {
        session.close().await;
        return Err(AuditError::NothingJudged {
            target,
            why: format!(
                "the server greeted with {} instead of 220: it refuses sessions from here",
                greeting.summary()
            ),
        });
    }
    seen.greeting = Some(ReplyBrief::from(&greeting));
    seen.implicit_tls = session.tls_info().cloned().map(Box::new);

    let outcome = main_probes(&mut session, &mut seen).await;
    if seen.ehlo_before.is_none() {
        session.close().await;
        let why = match outcome {
            Err(stop) => format!("{} (in reply to {})", stop.why, stop.during),
            Ok(()) => "EHLO was not answered with 250".to_owned(),
        };
        return Err(AuditError::NothingJudged { target, why });
    }
    match outcome {
        Ok(()) => session.quit().await,
        Err(stop) => {
            seen.cut_short = Some(CutShort {
                during: stop.during,
                why: stop.why,
            });
            session.close().await;
        }
    }

    match &seen.starttls {
        StartTlsSeen::HandshakeFailed(_) => {
            seen.versions = after_failure(&session_config, recorder).await;
        }
        StartTlsSeen::Established(_) => {
            seen.versions = old_versions(&session_config, recorder).await;
        }
        _ if seen.implicit_tls.is_some() => {
            seen.versions = old_versions(&session_config, recorder).await;
        }
        _ => {}
    }

    if matches!(seen.starttls, StartTlsSeen::Established(_))
        && seen.cut_short.is_none()
        && battery == Battery::Full
    {
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
    if let Some(to) = smuggling_to {
        let transport = if implicit {
            Transport::Implicit
        } else {
            match &seen.starttls {
                StartTlsSeen::Established(_) => Transport::StartTls,
                StartTlsSeen::NotReached
                    if seen.ehlo_before.as_ref().is_some_and(|ehlo| ehlo.starttls) =>
                {
                    Transport::StartTls
                }
                _ => Transport::Cleartext,
            }
        };
        recorder.push(EventKind::Note(format!(
            "SMTP smuggling probe: one test message to {to} per end-of-data variant, each on \
             its own session"
        )));
        seen.smuggling =
            smuggling::probe(&session_config, EHLO_NAME, to, transport, recorder).await;
    }
    Ok(Audit {
        role,
        observations: seen,
    })
}

/// The main session's probes, in order; stops at the first fatal error or `421`.
async fn main_probes(session: &mut Session, seen: &mut Observations) -> Result<(), Stop> {
    let ehlo = format!("EHLO {EHLO_NAME}");
    let reply = send(session, &ehlo).await?;
    let Some(before) = session.capabilities().map(ehlo_seen) else {
        return Err(Stop {
            during: ehlo,
            why: format!("EHLO was answered with {}", reply.summary()),
        });
    };
    seen.ehlo_before = Some(before.clone());
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
    let auth_line = format!("AUTH {}", mechanism.name());
    let probe = session
        .probe_auth_before_tls(mechanism)
        .await
        .map_err(|e| Stop::error(&auth_line, &e))?;
    seen.auth_probe = Some(match probe {
        AuthProbe::Refused(reply) if reply.code.value() == 421 => {
            return Err(Stop::closing(&auth_line, &reply));
        }
        AuthProbe::Refused(reply) => AuthProbeSeen::Refused(ReplyBrief::from(&reply)),
        AuthProbe::Challenged { after_cancel, .. } => {
            if after_cancel.code.value() == 421 {
                seen.auth_probe = Some(AuthProbeSeen::Challenged {
                    mechanism: mechanism.name().to_owned(),
                });
                return Err(Stop::closing("the AUTH cancellation (*)", &after_cancel));
            }
            AuthProbeSeen::Challenged {
                mechanism: mechanism.name().to_owned(),
            }
        }
    });

    let mail = send(session, "MAIL FROM:<>").await?;
    seen.mail_before_tls = Some(ReplyBrief::from(&mail));
    if mail.code.value() / 100 == 2 {
        send(session, "RSET").await?;
    }

    if !before.starttls {
        seen.starttls = StartTlsSeen::NotOffered;
        return Ok(());
    }
    match session.starttls().await {
        Ok(reply) if reply.code.value() == 220 => {
            seen.starttls = match session.tls_info() {
                Some(info) => StartTlsSeen::Established(Box::new(info.clone())),
                None => {
                    StartTlsSeen::HandshakeFailed("no TLS details after the handshake".to_owned())
                }
            };
        }
        Ok(reply) if reply.code.value() == 421 => return Err(Stop::closing("STARTTLS", &reply)),
        Ok(reply) => {
            seen.starttls = StartTlsSeen::Refused(ReplyBrief::from(&reply));
            return Ok(());
        }
        Err(
            error @ (SessionError::Handshake(_)
            | SessionError::Injection { .. }
            | SessionError::Certificate(_)),
        ) => {
            seen.starttls = handshake_failed(&error);
            return Ok(());
        }
        Err(error) => return Err(Stop::error("STARTTLS", &error)),
    }
    send(session, &ehlo).await?;
    seen.ehlo_after = session.capabilities().map(ehlo_seen);
    if seen.ehlo_after.is_none() {
        return Err(Stop {
            during: format!("{ehlo} inside TLS"),
            why: "EHLO inside TLS was not answered with 250".to_owned(),
        });
    }
    Ok(())
}

fn handshake_failed(error: &SessionError) -> StartTlsSeen {
    match error {
        SessionError::Injection { .. } => StartTlsSeen::Injected(error.to_string()),
        _ => StartTlsSeen::HandshakeFailed(error.to_string()),
    }
}

/// After a failed handshake: what a hello offering TLS 1.0 to 1.2, with older cipher suites
/// too, gets.
async fn after_failure(config: &SessionConfig, recorder: &Recorder) -> VersionProbe {
    match versions::probe(config, EHLO_NAME, TlsVersion::TLS1_2, recorder).await {
        Ok(answer) => VersionProbe::AfterFailure(answer),
        Err(why) => VersionProbe::Inconclusive(why),
    }
}

/// After a handshake that worked: whether a hello offering at most TLS 1.1 is taken, and if
/// so, one offering at most TLS 1.0.
async fn old_versions(config: &SessionConfig, recorder: &Recorder) -> VersionProbe {
    let first = match versions::probe(config, EHLO_NAME, TlsVersion::TLS1_1, recorder).await {
        Ok(answer) => answer,
        Err(why) => return VersionProbe::Inconclusive(why),
    };
    let mut answers = vec![(TlsVersion::TLS1_1, first)];
    if let HelloAnswer::Accepted {
        version: TlsVersion::TLS1_1,
        ..
    } = first
    {
        // TLS 1.1 is taken; whether 1.0 is too only changes the wording, so a failure here
        // leaves the finding as it is.
        if let Ok(answer) = versions::probe(config, EHLO_NAME, TlsVersion::TLS1_0, recorder).await {
            answers.push((TlsVersion::TLS1_0, answer));
        }
    }
    VersionProbe::OldVersions(answers)
}

/// Sends a command; a `421` ends the probes (the server is closing, RFC 5321 §3.8), and so
/// does any fatal error.
async fn send(session: &mut Session, line: &str) -> Result<Reply, Stop> {
    let reply = match session.send_line(line, OneTimeOverride::None).await {
        Ok(Step::Reply(reply)) => reply,
        // Only message lines are queued, and the audit never sends DATA.
        Ok(Step::Queued | Step::Replies(_)) => {
            return Err(Stop::error(line, &SessionError::Ended));
        }
        Err(error) => return Err(Stop::error(line, &error)),
    };
    if reply.code.value() == 421 {
        return Err(Stop::closing(line, &reply));
    }
    Ok(reply)
}

fn ehlo_seen(caps: &Capabilities) -> EhloSeen {
    EhloSeen {
        greeting: caps.greeting.clone(),
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
            let result = match (greeting.code.value(), session.tls_info()) {
                (220, Some(info)) => ImplicitSeen::Works {
                    port,
                    tls: Box::new(info.clone()),
                },
                _ => ImplicitSeen::Failed {
                    port,
                    detail: format!("greeted inside TLS with {}", greeting.summary()),
                },
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
