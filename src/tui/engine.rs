//! The engine task: owns the [`Session`] and runs one operation at a time, so networking never
//! blocks the screen. The UI sends [`Action`]s; the engine answers with [`EngineMsg`]s: every
//! transcript [`Event`] as it happens, a [`Status`] snapshot after each change, and a [`Done`]
//! when an action has finished.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::guard::{OneTimeOverride, Protection, Refusal};
use crate::proto::command::{CommandKind, classify, split_verb};
use crate::proto::reply::Reply;
use crate::proto::sasl::Mechanism;
use crate::secret::{Credentials, Secret};
use crate::session::{
    Phase, Session, SessionConfig, SessionError, Step, UnaskedReplies, format_target,
};
use crate::tls::TlsInfo;
use crate::transcript::{Event, EventKind, Security, SentKind};

/// What the UI asks the engine to do.
pub enum Action {
    /// Send one line as typed (command, message line or SASL answer), with the engine's
    /// smart steps (STARTTLS upgrades, DATA switches phase, the guard checks AUTH).
    Send {
        /// The line, without CRLF.
        line: String,
        /// An override the user gave for this one line in the guard dialog.
        one_time: OneTimeOverride,
    },
    /// Answer a pending 334 with a line typed into the hidden prompt. Sent only while the
    /// server still waits for it (see [`Session::answer_challenge`]).
    SaslAnswer {
        /// What the user typed, already base64 as the mechanism expects.
        answer: Secret,
        /// An override given in the guard dialog.
        one_time: OneTimeOverride,
    },
    /// Run a SASL exchange with credentials typed into the hidden prompt.
    Authenticate {
        /// PLAIN, LOGIN or XOAUTH2.
        mechanism: Mechanism,
        /// User and secret; dropped (and zeroed) when the exchange ends.
        credentials: Credentials,
        /// An override given in the guard dialog.
        one_time: OneTimeOverride,
    },
    /// Send the message lines after a 354 and the final dot.
    Message {
        /// The lines as typed; the engine dot-stuffs them.
        lines: Vec<String>,
    },
    /// Send command lines as one pipelined group (RFC 2920): one write, each reply paired
    /// with its command. Every rule of a group is checked before anything is sent (see
    /// [`Session::pipeline`]).
    Pipeline {
        /// The commands, in order.
        lines: Vec<String>,
        /// Send although the server did not advertise PIPELINING.
        force: bool,
    },
    /// After a 354: send the message read from a file, streamed in bounded memory with its
    /// line endings made CRLF and dot-stuffed, then the final dot; the transcript shows a
    /// summary of it, not its lines.
    SendFile {
        /// The file (`~` already expanded).
        path: std::path::PathBuf,
        /// The file as the user typed it, for the transcript.
        shown: String,
    },
    /// Add a front-end event (an expectation result, a guard refusal decided in the UI) to
    /// the same transcript.
    Record(EventKind),
    /// Send QUIT and close; the engine then answers [`EngineMsg::Finished`].
    Quit,
    /// Close the current connection (without QUIT) and connect again.
    Reconnect,
    /// Ask the lab for a student's exercises on a session of its own; the answer comes as
    /// notes.
    Exercises {
        /// The student ID, when known.
        student: Option<String>,
    },
}

/// How many replies the server may send unasked, between two user actions, before the
/// connection is closed as a flood.
pub use crate::proto::client::MAX_UNASKED_REPLIES;

/// How a typed line may appear in debug output: an AUTH with an inline response is shown
/// without it, because the response is the credential.
pub fn debug_line(line: &str) -> String {
    match classify(line) {
        CommandKind::Auth {
            mechanism,
            has_initial_response: true,
        } => format!("AUTH {mechanism} <credentials hidden>"),
        _ => line.to_owned(),
    }
}

impl std::fmt::Debug for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Send { line, one_time } => f
                .debug_struct("Send")
                .field("line", &debug_line(line))
                .field("one_time", one_time)
                .finish(),
            Self::SaslAnswer { answer, one_time } => f
                .debug_struct("SaslAnswer")
                .field("answer", answer)
                .field("one_time", one_time)
                .finish(),
            Self::Authenticate {
                mechanism,
                credentials,
                one_time,
            } => f
                .debug_struct("Authenticate")
                .field("mechanism", mechanism)
                .field("credentials", credentials)
                .field("one_time", one_time)
                .finish(),
            Self::Message { lines } => f
                .debug_struct("Message")
                .field("lines", &lines.len())
                .finish(),
            Self::Pipeline { lines, force } => f
                .debug_struct("Pipeline")
                .field(
                    "lines",
                    &lines.iter().map(|l| debug_line(l)).collect::<Vec<_>>(),
                )
                .field("force", force)
                .finish(),
            Self::SendFile { path, .. } => f.debug_struct("SendFile").field("path", path).finish(),
            Self::Record(kind) => f.debug_tuple("Record").field(kind).finish(),
            Self::Quit => f.write_str("Quit"),
            Self::Reconnect => f.write_str("Reconnect"),
            Self::Exercises { student } => f
                .debug_struct("Exercises")
                .field("student", student)
                .finish(),
        }
    }
}

/// A snapshot of the session for the status bar, completion and the guard pre-check.
#[derive(Debug, Clone)]
pub struct Status {
    /// `host:port`.
    pub target: String,
    /// Whether a session is open.
    pub connected: bool,
    /// What the next line means.
    pub phase: Phase,
    /// What protects the connection, as the guard sees it.
    pub protection: Protection,
    /// Whether lines cross inside TLS.
    pub security: Security,
    /// Extension keywords of the latest EHLO on the current transport.
    pub extensions: Vec<String>,
    /// AUTH mechanisms advertised.
    pub auth_mechanisms: Vec<String>,
    /// The user accepted with 235.
    pub authenticated_as: Option<String>,
    /// The negotiated TLS session.
    pub tls: Option<TlsInfo>,
}

impl Status {
    /// The state before the first connection.
    pub fn disconnected(target: String) -> Self {
        Self {
            target,
            connected: false,
            phase: Phase::Command,
            protection: Protection::Cleartext,
            security: Security::Cleartext,
            extensions: Vec::new(),
            auth_mechanisms: Vec::new(),
            authenticated_as: None,
            tls: None,
        }
    }

    fn of(session: &Session, target: String) -> Self {
        let capabilities = session.capabilities();
        Self {
            target,
            connected: true,
            phase: session.phase(),
            protection: session.protection().clone(),
            security: session.security(),
            extensions: capabilities
                .map(|c| c.extensions.iter().map(|e| e.keyword.clone()).collect())
                .unwrap_or_default(),
            auth_mechanisms: capabilities
                .map(|c| c.auth_mechanisms())
                .unwrap_or_default(),
            authenticated_as: session.authenticated_as().map(str::to_owned),
            tls: session.tls_info().cloned(),
        }
    }
}

/// What a request the guard refused was, so the UI can repeat it with an override.
#[derive(Clone)]
pub enum Retry {
    /// A typed line (an AUTH with an inline response).
    Line(String),
    /// An answer typed into the hidden prompt after a 334.
    Answer(Secret),
    /// A bare AUTH the UI runs with the credential prompt.
    Auth(Mechanism),
}

impl PartialEq for Retry {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Line(a), Self::Line(b)) => a == b,
            (Self::Answer(a), Self::Answer(b)) => a.expose() == b.expose(),
            (Self::Auth(a), Self::Auth(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Retry {}

impl std::fmt::Debug for Retry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Line(line) => f.debug_tuple("Line").field(&debug_line(line)).finish(),
            Self::Answer(answer) => f.debug_tuple("Answer").field(answer).finish(),
            Self::Auth(mechanism) => f.debug_tuple("Auth").field(mechanism).finish(),
        }
    }
}

/// What crossed the wire while one action ran, as the session recorded it (its `Sent`
/// events). The UI lets a typed line into its history only when it crossed as a command: a
/// line the session refused never crossed, and one it sent as a credential is never kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Crossed {
    /// Lines sent as commands.
    pub commands: usize,
    /// Lines that carried credentials (an AUTH with its response, SASL answers).
    pub credentials: usize,
    /// Lines of a message after DATA, and its final dot.
    pub message_lines: usize,
}

impl Crossed {
    /// Whether nothing at all was sent.
    pub fn nothing(&self) -> bool {
        *self == Self::default()
    }

    /// Whether only commands were sent, no credential and no message text.
    pub fn only_commands(&self) -> bool {
        self.commands > 0 && self.credentials == 0 && self.message_lines == 0
    }
}

/// Counts the session's `Sent` events for the action in progress; the event sink adds to it.
#[derive(Debug, Clone, Default)]
struct Tally(Arc<Mutex<Crossed>>);

impl Tally {
    fn note(&self, kind: &SentKind) {
        if let Ok(mut crossed) = self.0.lock() {
            match kind {
                SentKind::Command => crossed.commands += 1,
                SentKind::Credentials => crossed.credentials += 1,
                SentKind::MessageLine => crossed.message_lines += 1,
            }
        }
    }

    /// What crossed since the last call.
    fn take(&self) -> Crossed {
        self.0
            .lock()
            .map(|mut crossed| std::mem::take(&mut *crossed))
            .unwrap_or_default()
    }
}

/// How an action ended.
#[derive(Debug)]
pub enum Done {
    /// The server replied (also the greeting after a connect).
    Reply {
        /// The reply.
        reply: Reply,
        /// The verb of the command it answers (upper case), `None` for the greeting.
        command: Option<String>,
        /// What the action sent.
        crossed: Crossed,
    },
    /// A line was queued without a reply (message content).
    Queued,
    /// The credential guard refused; nothing was sent.
    GuardRefused {
        /// What to repeat if the user overrides.
        retry: Retry,
        /// Why.
        refusal: Refusal,
    },
    /// The action failed; the error is already in the transcript.
    Failed {
        /// Why, in words.
        reason: String,
        /// What the action sent before it failed (nothing, when the session refused it).
        crossed: Crossed,
    },
    /// A [`Action::Record`] was added.
    Recorded,
}

/// What the engine tells the UI.
#[derive(Debug)]
pub enum EngineMsg {
    /// A transcript event, as it happened.
    Event(Event),
    /// The session changed.
    Status(Box<Status>),
    /// An action finished.
    Done(Done),
    /// QUIT was handled (or there was nothing to quit); the UI may exit.
    Finished,
}

/// Runs the engine until the UI drops its sender or asks to quit: connects, then serves
/// actions one at a time and, while idle, shows whatever the server sends unasked.
///
/// A person reads the transcript, so replies nobody asked for are shown as unasked (and
/// credentials are refused from then on) instead of ending the session; the session still
/// ends when they flood in.
pub async fn run(
    mut config: SessionConfig,
    mut actions: UnboundedReceiver<Action>,
    out: UnboundedSender<EngineMsg>,
) {
    config.unasked = UnaskedReplies::Show;
    let target = format_target(&config.host, config.port);
    let tally = Tally::default();
    let mut session = connect(&config, &out, &target, &tally).await;
    loop {
        let action = match session.as_mut() {
            Some(live) => tokio::select! {
                action = actions.recv() => action,
                unsolicited = live.next_unsolicited() => {
                    if let Err(error) = unsolicited {
                        end_if_fatal(&mut session, &error, &out, &target);
                    } else {
                        status(session.as_ref(), &out, &target);
                    }
                    continue;
                }
            },
            None => actions.recv().await,
        };
        let Some(action) = action else {
            if let Some(live) = session.as_mut() {
                live.close().await;
            }
            return;
        };
        let done = match action {
            Action::Quit => {
                if let Some(mut live) = session.take() {
                    live.quit().await;
                }
                status(None, &out, &target);
                let _ = out.send(EngineMsg::Finished);
                return;
            }
            Action::Reconnect => {
                if let Some(mut live) = session.take() {
                    live.close().await;
                }
                session = connect(&config, &out, &target, &tally).await;
                continue;
            }
            Action::Exercises { student } => {
                let answer = crate::lab::status::fetch(config.clone(), student.as_deref()).await;
                for kind in crate::lab::status::notes(answer) {
                    if let Some(live) = session.as_mut() {
                        live.record(kind);
                    } else {
                        let _ = out.send(EngineMsg::Event(Event {
                            time: std::time::SystemTime::now(),
                            elapsed: std::time::Duration::ZERO,
                            kind,
                        }));
                    }
                }
                Done::Recorded
            }
            Action::Record(kind) => {
                if let Some(live) = session.as_mut() {
                    live.record(kind);
                } else {
                    // No session to stamp it: the UI still shows it.
                    let _ = out.send(EngineMsg::Event(Event {
                        time: std::time::SystemTime::now(),
                        elapsed: std::time::Duration::ZERO,
                        kind,
                    }));
                }
                Done::Recorded
            }
            other => match session.as_mut() {
                None => Done::Failed {
                    reason: "not connected: use :reconnect".to_owned(),
                    crossed: Crossed::default(),
                },
                Some(live) => {
                    tally.take();
                    let result = perform(live, other).await;
                    let crossed = tally.take();
                    match result {
                        Ok(done) => done.with(crossed),
                        Err((error, retry)) => match error {
                            SessionError::Guard(refusal) => match retry {
                                Some(retry) => Done::GuardRefused { retry, refusal },
                                None => Done::Failed {
                                    reason: refusal.to_string(),
                                    crossed,
                                },
                            },
                            error => {
                                let reason = error.to_string();
                                end_if_fatal(&mut session, &error, &out, &target);
                                Done::Failed { reason, crossed }
                            }
                        },
                    }
                }
            },
        };
        status(session.as_ref(), &out, &target);
        let _ = out.send(EngineMsg::Done(done));
    }
}

type Failure = (SessionError, Option<Retry>);

async fn perform(session: &mut Session, action: Action) -> Result<Done, Failure> {
    match action {
        Action::Send { line, one_time } => {
            let verb = split_verb(&line).0;
            let in_command = session.phase() == Phase::Command;
            let step = session
                .send_line(&line, one_time)
                .await
                .map_err(|e| (e, Some(Retry::Line(line.clone()))))?;
            let step = match step {
                // LMTP's replies per recipient are all in the transcript; the last one ends
                // the action.
                Step::Replies(mut replies) => match replies.pop() {
                    Some(reply) => Step::Reply(reply),
                    None => Step::Queued,
                },
                other => other,
            };
            match step {
                Step::Queued | Step::Replies(_) => Ok(Done::Queued),
                Step::Reply(reply) => {
                    if in_command && classify(&line) == CommandKind::Quit {
                        // The server closes after 221; so do we, instead of reporting its EOF.
                        session.close().await;
                    }
                    Ok(Done::Reply {
                        reply,
                        command: in_command.then_some(verb),
                        crossed: Crossed::default(),
                    })
                }
            }
        }
        Action::SaslAnswer { answer, one_time } => {
            let reply = session
                .answer_challenge(&answer, one_time)
                .await
                .map_err(|e| (e, Some(Retry::Answer(answer.clone()))))?;
            Ok(Done::Reply {
                reply,
                command: None,
                crossed: Crossed::default(),
            })
        }
        Action::Authenticate {
            mechanism,
            credentials,
            one_time,
        } => {
            let reply = session
                .authenticate(mechanism, credentials, one_time)
                .await
                .map_err(|e| (e, Some(Retry::Auth(mechanism))))?;
            Ok(Done::Reply {
                reply,
                command: Some("AUTH".to_owned()),
                crossed: Crossed::default(),
            })
        }
        Action::Message { lines } => {
            if session.phase() != Phase::Message {
                // Without a 354 these lines would be read as commands.
                return Err((SessionError::NoMessage, None));
            }
            for line in &lines {
                session
                    .send_line(line, OneTimeOverride::None)
                    .await
                    .map_err(|e| (e, None))?;
            }
            match session
                .send_line(".", OneTimeOverride::None)
                .await
                .map_err(|e| (e, None))?
            {
                Step::Reply(reply) => Ok(Done::Reply {
                    reply,
                    command: Some(".".to_owned()),
                    crossed: Crossed::default(),
                }),
                Step::Replies(mut replies) => match replies.pop() {
                    Some(reply) => Ok(Done::Reply {
                        reply,
                        command: Some(".".to_owned()),
                        crossed: Crossed::default(),
                    }),
                    None => Ok(Done::Queued),
                },
                Step::Queued => Ok(Done::Queued),
            }
        }
        Action::Pipeline { lines, force } => {
            let Some(last) = lines.last() else {
                return Ok(Done::Queued);
            };
            let verb = split_verb(last).0;
            let quit = classify(last) == CommandKind::Quit;
            session.record(EventKind::Note(format!(
                "sending {} commands as one pipelined group (RFC 2920): one write, each reply \
                 paired with its command in order",
                lines.len()
            )));
            let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
            let mut replies = session
                .pipeline(&refs, OneTimeOverride::None, force)
                .await
                .map_err(|e| (e, None))?;
            if quit {
                session.close().await;
            }
            match replies.pop() {
                Some(reply) => Ok(Done::Reply {
                    reply,
                    command: Some(verb),
                    crossed: Crossed::default(),
                }),
                None => Ok(Done::Queued),
            }
        }
        Action::SendFile { path, shown } => {
            match super::sendfile::send(session, &path, &shown)
                .await
                .map_err(|e| (e, None))?
            {
                super::sendfile::Outcome::Sent(reply) => Ok(Done::Reply {
                    reply,
                    command: Some(".".to_owned()),
                    crossed: Crossed::default(),
                }),
                super::sendfile::Outcome::Refused(reason) => Ok(Done::Failed {
                    reason,
                    crossed: Crossed::default(),
                }),
            }
        }
        Action::Record(_) | Action::Quit | Action::Reconnect | Action::Exercises { .. } => {
            Ok(Done::Recorded)
        }
    }
}

impl Done {
    /// The same ending, with what the action sent filled in.
    fn with(self, sent: Crossed) -> Self {
        match self {
            Self::Reply { reply, command, .. } => Self::Reply {
                reply,
                command,
                crossed: sent,
            },
            Self::Failed { reason, .. } => Self::Failed {
                reason,
                crossed: sent,
            },
            other => other,
        }
    }
}

async fn connect(
    config: &SessionConfig,
    out: &UnboundedSender<EngineMsg>,
    target: &str,
    tally: &Tally,
) -> Option<Session> {
    let sink_out = out.clone();
    let sink_tally = tally.clone();
    let sink = Box::new(move |event: Event| {
        if let EventKind::Sent { kind, .. } = &event.kind {
            sink_tally.note(kind);
        }
        let _ = sink_out.send(EngineMsg::Event(event));
    });
    match Session::connect(config.clone(), sink).await {
        Ok((session, greeting)) => {
            status(Some(&session), out, target);
            let _ = out.send(EngineMsg::Done(Done::Reply {
                reply: greeting,
                command: None,
                crossed: Crossed::default(),
            }));
            Some(session)
        }
        Err(error) => {
            status(None, out, target);
            let _ = out.send(EngineMsg::Done(Done::Failed {
                reason: error.to_string(),
                crossed: Crossed::default(),
            }));
            None
        }
    }
}

fn end_if_fatal(
    session: &mut Option<Session>,
    error: &SessionError,
    out: &UnboundedSender<EngineMsg>,
    target: &str,
) {
    if error.is_fatal() {
        // The session has recorded the error and closed its stream; it is of no further use.
        *session = None;
    }
    status(session.as_ref(), out, target);
}

fn status(session: Option<&Session>, out: &UnboundedSender<EngineMsg>, target: &str) {
    let status = match session {
        Some(session) => Status::of(session, target.to_owned()),
        None => Status::disconnected(target.to_owned()),
    };
    let _ = out.send(EngineMsg::Status(Box::new(status)));
}
