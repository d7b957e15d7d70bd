//! The headless scenario runner behind `smtptui run`.
//!
//! It drives a [`Session`] step by step from a [`Scenario`], records each expectation's result
//! in the same transcript, and turns the outcome into the documented exit status.

use crate::guard::OneTimeOverride;
use crate::proto::command::{CommandKind, LineError, classify};
use crate::proto::reply::Reply;
use crate::proto::sasl::Mechanism;
use crate::scenario::{Action, Expectation, Scenario, Step};
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

/// Replays `scenario` against the server in `config`, emitting every event to `sink`.
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
    let (session, greeting) = match Session::connect(config, sink).await {
        Ok(pair) => pair,
        Err(error) => return Outcome::from_error(error, None),
    };
    let mut replay = Replay {
        session,
        credentials: credentials.as_ref(),
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
        // Does nothing after a fatal error: the session knows it is no longer usable.
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
    checked: usize,
    /// The latest reply received, to say what came instead of a challenge or a 354.
    last_reply: Reply,
    /// Whether the scenario sent QUIT itself (it is then not sent again).
    quit_sent: bool,
}

impl Replay<'_> {
    async fn run(&mut self, scenario: &Scenario, greeting: &Reply) -> Outcome {
        if let Some(expect) = &scenario.greeting
            && !self.check(expect, greeting)
        {
            return Outcome::ExpectationFailed { line: expect.line };
        }
        let mut skip_message = false;
        for step in &scenario.steps {
            let reply = match &step.action {
                Action::Message(lines) => {
                    if std::mem::take(&mut skip_message) {
                        self.session.record(EventKind::Note(format!(
                            "DATA was refused as expected; the message ending on line {} is not sent",
                            step.line
                        )));
                        continue;
                    }
                    let replies = match send_message(&mut self.session, lines).await {
                        Ok(replies) => replies,
                        Err(error) => return Outcome::from_error(error, Some(step.line)),
                    };
                    // LMTP answers once per accepted recipient: the expectation holds only
                    // if it holds for every one of them.
                    let Some((last, earlier)) = replies.split_last() else {
                        continue;
                    };
                    if let Some(expect) = &step.expect {
                        for reply in earlier {
                            if !self.check(expect, reply) {
                                return Outcome::ExpectationFailed { line: expect.line };
                            }
                        }
                    }
                    self.last_reply = last.clone();
                    last.clone()
                }
                Action::Command(line) if step.sasl_answer => {
                    match self.answer(line, step.line).await {
                        Ok(reply) => reply,
                        Err(outcome) => return outcome,
                    }
                }
                Action::Command(line) => {
                    let kind = classify(line);
                    let reply = match self.command(line, &kind, step.line).await {
                        Ok(reply) => reply,
                        Err(outcome) => return outcome,
                    };
                    match kind {
                        CommandKind::StartTls if reply.code.value() != 220 => {
                            match self.starttls_refused(step, &reply) {
                                Some(outcome) => return outcome,
                                None => continue,
                            }
                        }
                        CommandKind::Data if reply.code.value() != 354 => {
                            let Some(expect) = &step.expect else {
                                return self.data_refused(step, &reply);
                            };
                            if !self.check(expect, &reply) {
                                return Outcome::ExpectationFailed { line: expect.line };
                            }
                            skip_message = true;
                            continue;
                        }
                        _ => {}
                    }
                    reply
                }
            };
            if let Some(expect) = &step.expect
                && !self.check(expect, &reply)
            {
                return Outcome::ExpectationFailed { line: expect.line };
            }
        }
        Outcome::Passed {
            checked: self.checked,
        }
    }

    /// Sends a command step: a bare AUTH the tool runs gets the whole exchange, anything
    /// else goes as written.
    async fn command(
        &mut self,
        line: &str,
        kind: &CommandKind,
        scenario_line: usize,
    ) -> Result<Reply, Outcome> {
        if self.session.phase() == Phase::SaslChallenge {
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
            return Err(Outcome::StepFailed {
                line: scenario_line,
                reason,
            });
        }
        let mechanism = match kind {
            CommandKind::Auth {
                mechanism,
                has_initial_response: false,
            } => Mechanism::from_name(mechanism),
            _ => None,
        };
        let result = match (mechanism, self.credentials) {
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

    /// STARTTLS not answered 220: the connection stays in cleartext. That passes only when
    /// the scenario expected this refusal (`S: 454`, `S: 5xx`); `None` then goes on.
    fn starttls_refused(&mut self, step: &Step, reply: &Reply) -> Option<Outcome> {
        match &step.expect {
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
                    line: Some(step.line),
                    reason,
                })
            }
        }
    }

    /// DATA not answered 354 with no `S:` for it: the message cannot be sent.
    fn data_refused(&mut self, step: &Step, reply: &Reply) -> Outcome {
        let reason = format!(
            "the server did not accept DATA ({}), so the message after line {} was not sent; \
             to test this refusal, expect it with an 'S:' line after 'C: DATA' (such as 'S: {}')",
            reply.summary(),
            step.line,
            reply.code
        );
        self.session.record(EventKind::Error {
            kind: ErrorKind::Scenario,
            text: reason.clone(),
        });
        Outcome::StepFailed {
            line: step.line,
            reason,
        }
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

/// Sends a message and its final dot; returns the replies to the dot: one for SMTP, one per
/// accepted recipient for LMTP.
async fn send_message(session: &mut Session, lines: &[String]) -> Result<Vec<Reply>, SessionError> {
    for line in lines {
        // A lone "." inside the message is impossible here: the scenario parser ends the
        // message there. Every other line is dot-stuffed by the session.
        session.send_line(line, OneTimeOverride::None).await?;
    }
    match session.send_line(".", OneTimeOverride::None).await? {
        session::Step::Reply(reply) => Ok(vec![reply]),
        session::Step::Replies(replies) => Ok(replies),
        session::Step::Queued => Err(SessionError::Protocol(
            crate::proto::reply::ReplyError::Malformed {
                line: "internal: the final dot was taken as message content".to_owned(),
            },
        )),
    }
}
