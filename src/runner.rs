//! The headless scenario runner behind `smtptui run`.
//!
//! It drives a [`Session`] step by step from a [`Scenario`], records each expectation's result
//! in the same transcript, and turns the outcome into the documented exit status.

use crate::guard::OneTimeOverride;
use crate::proto::command::{CommandKind, LineError, classify};
use crate::proto::reply::Reply;
use crate::proto::sasl::Mechanism;
use crate::scenario::{Action, Expectation, Scenario};
use crate::secret::Credentials;
use crate::session::{EventSink, Session, SessionConfig, SessionError, Step};
use crate::transcript::EventKind;

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
            Self::ExpectationFailed { .. } => exit::EXPECTATION_FAILED,
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

/// Replays `scenario` against the server in `config`, emitting every event to `sink`.
///
/// `credentials` serve the bare `AUTH <MECH>` steps; the caller checks beforehand that they
/// exist when the scenario needs them.
pub async fn run(
    scenario: &Scenario,
    config: SessionConfig,
    credentials: Option<Credentials>,
    sink: EventSink,
) -> Outcome {
    let (mut session, greeting) = match Session::connect(config, sink).await {
        Ok(pair) => pair,
        Err(error) => return Outcome::from_error(error, None),
    };
    let outcome = replay(&mut session, scenario, greeting, credentials.as_ref()).await;
    session.close().await;
    outcome
}

async fn replay(
    session: &mut Session,
    scenario: &Scenario,
    greeting: Reply,
    credentials: Option<&Credentials>,
) -> Outcome {
    let mut checked = 0;
    if let Some(expect) = &scenario.greeting {
        checked += 1;
        if !check(session, expect, &greeting) {
            return Outcome::ExpectationFailed { line: expect.line };
        }
    }
    let mut skip_message = false;
    for step in &scenario.steps {
        let reply = match &step.action {
            Action::Message(lines) => {
                if std::mem::take(&mut skip_message) {
                    session.record(EventKind::Note(format!(
                        "DATA was refused as expected; the message ending on line {} is not sent",
                        step.line
                    )));
                    continue;
                }
                match send_message(session, lines).await {
                    Ok(reply) => reply,
                    Err(error) => return Outcome::from_error(error, Some(step.line)),
                }
            }
            Action::Command(line) => {
                let kind = classify(line);
                let result = match (&kind, credentials) {
                    (
                        CommandKind::Auth {
                            mechanism,
                            has_initial_response: false,
                        },
                        Some(credentials),
                    ) => match Mechanism::from_name(mechanism) {
                        Some(mechanism) => {
                            session
                                .authenticate(mechanism, credentials.clone(), OneTimeOverride::None)
                                .await
                        }
                        None => send_command(session, line).await,
                    },
                    _ => send_command(session, line).await,
                };
                let reply = match result {
                    Ok(reply) => reply,
                    Err(error) => return Outcome::from_error(error, Some(step.line)),
                };
                let met = step.expect.as_ref().is_none_or(|e| e.matches(&reply));
                match kind {
                    CommandKind::StartTls if reply.code.value() != 220 => {
                        if let Some(expect) = &step.expect {
                            checked += 1;
                            check(session, expect, &reply);
                        }
                        if !met || step.expect.is_none() {
                            let reason = format!(
                                "STARTTLS refused by the server ({}); smtptui does not continue in cleartext \
                                 when TLS was asked for (expect the refusal with an 'S:' line to test it)",
                                reply.summary()
                            );
                            session.record(EventKind::Error(reason.clone()));
                            return Outcome::Failure {
                                line: Some(step.line),
                                reason,
                            };
                        }
                        continue;
                    }
                    CommandKind::Data if reply.code.value() != 354 => {
                        if let Some(expect) = &step.expect {
                            checked += 1;
                            if !check(session, expect, &reply) {
                                return Outcome::ExpectationFailed { line: expect.line };
                            }
                            skip_message = true;
                            continue;
                        }
                        session.record(EventKind::Error(format!(
                            "the server did not accept DATA ({}); the message cannot be sent",
                            reply.summary()
                        )));
                        return Outcome::ExpectationFailed { line: step.line };
                    }
                    _ => {}
                }
                reply
            }
        };
        if let Some(expect) = &step.expect {
            checked += 1;
            if !check(session, expect, &reply) {
                return Outcome::ExpectationFailed { line: expect.line };
            }
        }
    }
    Outcome::Passed { checked }
}

async fn send_command(session: &mut Session, line: &str) -> Result<Reply, SessionError> {
    match session.send_line(line, OneTimeOverride::None).await? {
        Step::Reply(reply) => Ok(reply),
        // A command step only runs in the command phase, where every line gets a reply; a
        // queued line here would mean the session is inside a message the scenario never began.
        Step::Queued => Err(SessionError::Protocol(
            crate::proto::reply::ReplyError::Malformed {
                line: "internal: a command was taken as message content".to_owned(),
            },
        )),
    }
}

async fn send_message(session: &mut Session, lines: &[String]) -> Result<Reply, SessionError> {
    for line in lines {
        // A lone "." inside the message is impossible here: the scenario parser ends the
        // message there. Every other line is dot-stuffed by the session.
        session.send_line(line, OneTimeOverride::None).await?;
    }
    send_command(session, ".").await
}

fn check(session: &mut Session, expect: &Expectation, reply: &Reply) -> bool {
    let met = expect.matches(reply);
    session.record(EventKind::Expectation {
        line: expect.line,
        expected: expect.to_string(),
        met,
        got: reply.summary(),
    });
    met
}
