//! The transcript: one event model for everything that happens in a session.
//!
//! The engine emits [`Event`]s; front ends only render them. Redaction happens before an
//! event exists: a [`EventKind::Sent`] line that carried credentials already reads
//! `AUTH PLAIN <credentials for alice hidden>`, so no sink (screen, file, JSON) can leak what
//! it never received. Server text is kept as raw bytes inside [`Reply`] and rendered only
//! through the escaping functions.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::guard::Refusal;
use crate::proto::escape::escape_str;
use crate::proto::reply::{Reply, ReplyClass};
use crate::tls::{TlsInfo, Verification};

/// How a line crossed the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Readable by anyone on the path.
    Cleartext,
    /// Inside TLS.
    Tls,
}

impl Security {
    /// The marker shown on every line: `plain` or `tls`.
    pub fn marker(self) -> &'static str {
        match self {
            Self::Cleartext => "plain",
            Self::Tls => "tls",
        }
    }
}

/// What a sent line was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SentKind {
    /// A command.
    Command,
    /// A line of message content after DATA (as sent, dot-stuffed).
    MessageLine,
    /// A line that carried credentials; its text is the redacted form.
    Credentials,
}

/// A guard decision worth recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardOutcome {
    /// Nothing was sent.
    Refused(Refusal),
    /// Sent anyway because the user explicitly allowed it.
    Overridden {
        /// Why it was unsafe.
        refusal: Refusal,
        /// Whether the permission was given for this one command (typed in a dialog) rather
        /// than for the whole session by a command-line flag.
        one_time: bool,
    },
}

/// Everything that can happen in a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// About to connect.
    Connecting {
        /// `host:port` as given.
        target: String,
        /// How: plain TCP, or implicit TLS.
        transport: String,
    },
    /// The TCP connection is up.
    Connected {
        /// The server's address.
        peer: String,
        /// Our address.
        local: String,
    },
    /// A line was sent.
    Sent {
        /// Cleartext or TLS.
        security: Security,
        /// The line as shown: escaped, and redacted when it carried credentials.
        text: String,
        /// What it was.
        kind: SentKind,
    },
    /// A reply was received.
    Received {
        /// Cleartext or TLS.
        security: Security,
        /// The reply, raw.
        reply: Reply,
    },
    /// A reply that answers nothing sent: it began while no command was waiting for one, so
    /// it is never taken as the next command's reply (RFC 5321 keeps commands and replies in
    /// step; a server out of step has lost count or is not the server it seems).
    Unasked {
        /// Cleartext or TLS.
        security: Security,
        /// The reply, raw.
        reply: Reply,
    },
    /// A TLS handshake completed.
    TlsEstablished(Box<TlsInfo>),
    /// The credential guard refused or was overridden.
    Guard(GuardOutcome),
    /// A scenario expectation was checked.
    Expectation {
        /// The scenario file line of the `S:` directive.
        line: usize,
        /// The expectation as written.
        expected: String,
        /// Whether it was met.
        met: bool,
        /// The reply it was checked against, summarised (escaped).
        got: String,
    },
    /// Informational note from the engine.
    Note(String),
    /// Something the user should notice.
    Warning(String),
    /// The session failed, or a step could not go on.
    Error {
        /// What kind of failure, for code that branches on it (the explain pane).
        kind: ErrorKind,
        /// What happened, in words.
        text: String,
    },
    /// The connection was closed.
    Closed,
}

/// What kind of failure an [`EventKind::Error`] reports.
///
/// Code that decides on a failure (what the explain pane says about it) branches on this, not
/// on the wording of the message, so rewording a message cannot change what is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No connection could be opened.
    Connect,
    /// A deadline passed.
    Timeout,
    /// Reading or writing the connection failed.
    Network,
    /// The server closed the connection.
    Closed,
    /// The server's bytes are not valid SMTP.
    Protocol,
    /// Bytes arrived between the 220 to STARTTLS and the TLS handshake.
    Injection,
    /// The server sent what no command asked for, so replies no longer match commands.
    OutOfStep,
    /// The server said, unasked, that it is closing the session (a 421).
    ServiceClosing,
    /// The server's certificate failed verification.
    Certificate,
    /// The TLS handshake failed.
    Handshake,
    /// TLS could not be set up on our side (a CA file, the configuration).
    TlsSetup,
    /// The SASL exchange went wrong.
    Authentication,
    /// A request was refused before anything was sent (the guard, a line that cannot be sent).
    Refused,
    /// A scenario step could not go on as written (`smtptui run`).
    Scenario,
}

/// What an [`EventKind::Unasked`] reply means, for every view of it.
pub const UNASKED_NOTE: &str = "unasked: this reply answers no command sent (the server is out of step); it is not taken as the reply to anything";

/// One transcript entry with when it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Wall-clock time.
    pub time: SystemTime,
    /// Time since the session started.
    pub elapsed: Duration,
    /// What happened.
    pub kind: EventKind,
}

/// ANSI styling for terminal output; empty strings when colour is off.
#[derive(Debug, Clone, Copy)]
pub struct Palette {
    enabled: bool,
}

impl Palette {
    /// A palette that colours only when `enabled`.
    pub fn new(enabled: bool) -> Self {
        Self { enabled }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.enabled {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

fn class_colour(class: ReplyClass) -> &'static str {
    match class {
        ReplyClass::PositiveCompletion => "32",
        ReplyClass::PositiveIntermediate => "36",
        ReplyClass::TransientNegative => "33",
        ReplyClass::PermanentNegative => "31",
        ReplyClass::Unknown => "35",
    }
}

impl Event {
    /// Renders the event as plain text lines (one per reply line), with elapsed time and the
    /// cleartext/TLS marker. Colour codes only when the palette is enabled.
    pub fn to_text_lines(&self, palette: Palette) -> Vec<String> {
        let time = format!("{:>8.3}", self.elapsed.as_secs_f64());
        let marker = |security: Security| {
            let code = match security {
                Security::Cleartext => "33",
                Security::Tls => "32",
            };
            palette.paint(code, &format!("{:<5}", security.marker()))
        };
        let blank = "     ";
        match &self.kind {
            EventKind::Connecting { target, transport } => {
                vec![format!(
                    "{time} {blank} .. connecting to {target} ({transport})"
                )]
            }
            EventKind::Connected { peer, local } => {
                vec![format!(
                    "{time} {blank} .. connected to {peer} from {local}"
                )]
            }
            EventKind::Sent {
                security,
                text,
                kind,
            } => {
                let body = match kind {
                    SentKind::Credentials => palette.paint("1;35", text),
                    _ => palette.paint("1", text),
                };
                vec![format!("{time} {} C: {body}", marker(*security))]
            }
            EventKind::Received { security, reply } | EventKind::Unasked { security, reply } => {
                let unasked = matches!(self.kind, EventKind::Unasked { .. });
                let colour = class_colour(reply.code.class());
                let direction = if unasked { "S?" } else { "S:" };
                let mut lines: Vec<String> = reply
                    .display_lines()
                    .iter()
                    .map(|line| {
                        format!(
                            "{time} {} {direction} {}",
                            marker(*security),
                            palette.paint(colour, line)
                        )
                    })
                    .collect();
                if unasked {
                    lines.push(format!(
                        "{time} {blank} {}",
                        palette.paint("1;31", &format!("!! {UNASKED_NOTE}"))
                    ));
                }
                if !reply.anomalies.is_empty() {
                    lines.push(format!(
                        "{time} {blank} {}",
                        palette.paint(
                            "33",
                            &format!(
                                "!! reply anomalies: {}",
                                reply.anomalies.descriptions().join("; ")
                            )
                        )
                    ));
                }
                lines
            }
            EventKind::TlsEstablished(info) => {
                let colour = if info.verification.is_verified() {
                    "1;32"
                } else {
                    "1;31"
                };
                let mut lines = vec![format!(
                    "{time} {} == {}",
                    marker(Security::Tls),
                    palette.paint(colour, &format!("TLS established: {}", info.summary()))
                )];
                if let Verification::Failed(problem) = &info.verification {
                    lines.push(format!(
                        "{time} {blank} {}",
                        palette.paint(
                            "1;31",
                            &format!("WARNING certificate not verified: {problem}")
                        )
                    ));
                }
                for (index, cert) in info.chain.iter().enumerate() {
                    let role = if index == 0 { "leaf" } else { "chain" };
                    let line = match &cert.parse_error {
                        Some(error) => format!("{role}[{index}]: unparsable certificate ({error})"),
                        None => format!(
                            "{role}[{index}]: subject {}; issuer {}; {}{}; valid until {} ({} days)",
                            escape_str(&cert.subject),
                            escape_str(&cert.issuer),
                            cert.key,
                            if cert.sans.is_empty() {
                                String::new()
                            } else {
                                format!("; {}", escape_str(&cert.sans.join(", ")))
                            },
                            cert.not_after,
                            cert.days_to_expiry
                        ),
                    };
                    lines.push(format!("{time} {blank}    {line}"));
                }
                lines
            }
            EventKind::Guard(GuardOutcome::Refused(refusal)) => {
                vec![format!(
                    "{time} {blank} {}",
                    palette.paint("1;31", &format!("!! REFUSED {refusal}"))
                )]
            }
            EventKind::Guard(GuardOutcome::Overridden { refusal, one_time }) => {
                let how = |flag: &str| {
                    if *one_time {
                        "override typed for this one command".to_owned()
                    } else {
                        flag.to_owned()
                    }
                };
                let why = match refusal {
                    Refusal::Cleartext => format!(
                        "credentials are being sent IN CLEARTEXT ({})",
                        how("--allow-cleartext-auth")
                    ),
                    Refusal::Unverified(problem) => format!(
                        "credentials are being sent to a peer whose certificate was NOT VERIFIED ({}) ({})",
                        problem.kind,
                        how("--insecure")
                    ),
                };
                vec![format!(
                    "{time} {blank} {}",
                    palette.paint("1;41;97", &format!("!! WARNING {why}"))
                )]
            }
            EventKind::Expectation {
                line,
                expected,
                met,
                got,
            } => {
                let text = if *met {
                    palette.paint(
                        "32",
                        &format!("ok   line {line}: expected {expected}, got {got}"),
                    )
                } else {
                    palette.paint(
                        "1;31",
                        &format!("FAIL line {line}: expected {expected}, got {got}"),
                    )
                };
                vec![format!("{time} {blank} {text}")]
            }
            EventKind::Note(text) => vec![format!("{time} {blank} .. {}", escape_str(text))],
            EventKind::Warning(text) => {
                vec![format!(
                    "{time} {blank} {}",
                    palette.paint("1;33", &format!("!! WARNING {}", escape_str(text)))
                )]
            }
            EventKind::Error { text, .. } => {
                vec![format!(
                    "{time} {blank} {}",
                    palette.paint("1;31", &format!("!! ERROR {}", escape_str(text)))
                )]
            }
            EventKind::Closed => vec![format!("{time} {blank} .. connection closed")],
        }
    }

    /// Renders the event as one JSON object (for `--json`).
    pub fn to_json(&self) -> Value {
        let time = time::OffsetDateTime::from(self.time)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let mut object = match &self.kind {
            EventKind::Connecting { target, transport } => {
                json!({"event": "connecting", "target": target, "transport": transport})
            }
            EventKind::Connected { peer, local } => {
                json!({"event": "connected", "peer": peer, "local": local})
            }
            EventKind::Sent {
                security,
                text,
                kind,
            } => json!({
                "event": "sent",
                "security": security_name(*security),
                "text": text,
                "kind": match kind {
                    SentKind::Command => "command",
                    SentKind::MessageLine => "message_line",
                    SentKind::Credentials => "credentials",
                },
                "redacted": *kind == SentKind::Credentials,
            }),
            EventKind::Received { security, reply } | EventKind::Unasked { security, reply } => {
                json!({
                    "event": if matches!(self.kind, EventKind::Unasked { .. }) { "unasked_reply" } else { "reply" },
                    "security": security_name(*security),
                    "code": reply.code.value(),
                    "class": reply.code.class().name(),
                    "enhanced": reply.enhanced.map(|e| e.to_string()),
                    "lines": reply.display_lines(),
                    "anomalies": reply.anomalies.descriptions(),
                })
            }
            EventKind::TlsEstablished(info) => json!({
                "event": "tls",
                "version": info.version,
                "cipher_suite": info.cipher_suite,
                "key_exchange": info.key_exchange,
                "server_name": info.server_name,
                "verified": info.verification.is_verified(),
                "verification_error": match &info.verification {
                    Verification::Verified => None,
                    Verification::Failed(problem) => Some(problem.detail.clone()),
                },
                "chain": info.chain.iter().map(|cert| json!({
                    "subject": cert.subject,
                    "issuer": cert.issuer,
                    "sans": cert.sans,
                    "not_before": cert.not_before,
                    "not_after": cert.not_after,
                    "days_to_expiry": cert.days_to_expiry,
                    "key": cert.key,
                    "serial": cert.serial,
                    "parse_error": cert.parse_error,
                })).collect::<Vec<_>>(),
            }),
            EventKind::Guard(outcome) => {
                let (decision, refusal) = match outcome {
                    GuardOutcome::Refused(r) => ("refused", r),
                    GuardOutcome::Overridden { refusal, .. } => ("overridden", refusal),
                };
                json!({"event": "guard", "decision": decision, "reason": refusal.to_string()})
            }
            EventKind::Expectation {
                line,
                expected,
                met,
                got,
            } => json!({
                "event": "expectation", "line": line, "expected": expected, "met": met, "got": got,
            }),
            EventKind::Note(text) => json!({"event": "note", "text": escape_str(text)}),
            EventKind::Warning(text) => json!({"event": "warning", "text": escape_str(text)}),
            EventKind::Error { text, .. } => json!({"event": "error", "text": escape_str(text)}),
            EventKind::Closed => json!({"event": "closed"}),
        };
        if let Value::Object(map) = &mut object {
            map.insert("time".into(), Value::String(time));
            map.insert(
                "elapsed".into(),
                json!((self.elapsed.as_secs_f64() * 1e6).round() / 1e6),
            );
        }
        object
    }
}

fn security_name(security: Security) -> &'static str {
    match security {
        Security::Cleartext => "cleartext",
        Security::Tls => "tls",
    }
}

/// Creates (or truncates) a file for a transcript or a recorded scenario, readable by its
/// owner only: it names servers, accounts and addresses even though no secret is in it.
///
/// A file that already exists keeps its inode, so the mode given at creation would not apply
/// to it: its permissions are set to owner-only (0600) on every open, before anything is
/// written, whatever they were.
///
/// # Errors
/// Whatever creating the file returns, or the error of setting its permissions (a file owned
/// by another user cannot be made private, and is not written).
pub fn create_private_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    make_private(&file)?;
    Ok(file)
}

/// Sets an open file's permissions to read and write by its owner only (0600 on Unix).
///
/// # Errors
/// The error of changing the permissions, with what was being done in its message.
pub fn make_private(file: &std::fs::File) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|error| {
                std::io::Error::new(
                    error.kind(),
                    format!("cannot make it readable by its owner only: {error}"),
                )
            })?;
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

/// Renders a whole list of events as plain text, for saving a transcript to a file.
pub fn render_plain(events: &[Event]) -> String {
    let mut out = String::new();
    for event in events {
        for line in event.to_text_lines(Palette::new(false)) {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}
