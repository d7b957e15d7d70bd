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

/// What a display row shows. Each view draws the row's direction marker from it: the text
/// transcript and the screen use the same markers except where noted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    /// Connection progress, a note, the end of the connection (`..`).
    Info,
    /// A line the client sent (`C:`).
    Sent,
    /// A line of a server reply (`S:`; `S?` for a reply nobody asked for). `first` is false
    /// for the lines after the first, which the screen marks `│` to show they belong together.
    Reply {
        /// Whether the reply answers no command.
        unasked: bool,
        /// Whether this is the reply's first line.
        first: bool,
    },
    /// The TLS handshake completed (`==`).
    Tls,
    /// A detail of the row above it: a certificate of the chain (no marker).
    Detail,
    /// Something to notice: a warning, an error, a guard decision, an anomaly (`!!`).
    Alarm,
    /// A warning about the row above it (an unverified certificate under the TLS upgrade):
    /// `!!` on screen; the text transcript writes it without a marker, under that row.
    Caveat,
    /// A scenario expectation was checked: `ok` or `FAIL` in the text transcript; `ok` or
    /// `!!` on screen, with `pass` or `FAIL` before the text.
    Check {
        /// Whether it was met.
        met: bool,
    },
}

impl RowKind {
    /// The direction marker in the text transcript.
    pub fn text_marker(self) -> &'static str {
        match self {
            Self::Info => "..",
            Self::Sent => "C:",
            Self::Reply { unasked: false, .. } => "S:",
            Self::Reply { unasked: true, .. } => "S?",
            Self::Tls => "==",
            Self::Detail => "  ",
            Self::Alarm => "!!",
            Self::Caveat => "",
            Self::Check { met: true } => "ok  ",
            Self::Check { met: false } => "FAIL",
        }
    }

    /// Whether the text transcript colours the marker with the text (alarms and checks read
    /// as one coloured phrase) rather than the text alone.
    fn paints_marker(self) -> bool {
        matches!(self, Self::Alarm | Self::Check { .. })
    }
}

/// How a row should look. Each view maps it to its own means: ANSI colours in the text
/// transcript, ratatui styles on screen (with bold and reverse only, without colour).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// The terminal's own colours.
    Plain,
    /// Less important than what is around it (notes).
    Quiet,
    /// A command sent.
    Command,
    /// A line of message content sent.
    MessageLine,
    /// A line that carried credentials (its text is already redacted).
    Credentials,
    /// A reply line, coloured by its class.
    Reply(ReplyClass),
    /// Verified TLS.
    Secure,
    /// An expectation met.
    Pass,
    /// A minor irregularity (reply anomalies).
    Caution,
    /// A warning.
    Warning,
    /// A failure, a refusal, an unverified peer.
    Alarm,
    /// Credentials sent where the guard would have stopped them, by the user's override: the
    /// loudest tone there is.
    Override,
}

impl Tone {
    /// The ANSI SGR parameters of the tone in the text transcript, if it is coloured.
    fn ansi(self) -> Option<&'static str> {
        Some(match self {
            Self::Plain | Self::Quiet => return None,
            Self::Command | Self::MessageLine => "1",
            Self::Credentials => "1;35",
            Self::Reply(class) => class_colour(class),
            Self::Secure => "1;32",
            Self::Pass => "32",
            Self::Caution => "33",
            Self::Warning => "1;33",
            Self::Alarm => "1;31",
            Self::Override => "1;41;97",
        })
    }
}

/// One display row of an event: what the text transcript prints as one line and the screen
/// shows as one row (before wrapping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// What the row shows.
    pub kind: RowKind,
    /// How the line crossed, for rows that show a line on the wire (and the TLS upgrade);
    /// `None` for rows about the session itself.
    pub security: Option<Security>,
    /// The text, escaped: no control character from the peer is left in it.
    pub text: String,
    /// A shorter wording for the screen, where the full text would wrap over several rows of
    /// the transcript pane and the screen says the rest elsewhere (the guard dialog, F3).
    pub brief: Option<String>,
    /// How it should look.
    pub tone: Tone,
}

impl Row {
    fn new(kind: RowKind, security: Option<Security>, text: String, tone: Tone) -> Self {
        Self {
            kind,
            security,
            text,
            brief: None,
            tone,
        }
    }

    fn note(kind: RowKind, text: String, tone: Tone) -> Self {
        Self::new(kind, None, text, tone)
    }

    fn with_brief(mut self, brief: String) -> Self {
        self.brief = Some(brief);
        self
    }

    /// The text the screen shows: the brief wording where there is one.
    pub fn screen_text(&self) -> &str {
        self.brief.as_deref().unwrap_or(&self.text)
    }
}

/// An event as every view shows it: the rows that the text transcript prints and the screen
/// draws, and the fields of its JSON line. Each view renders this, never the event itself, so
/// the views cannot disagree on what an event says nor on how many rows it takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Presentation {
    /// The event's name in JSON lines (`"event"`).
    pub name: &'static str,
    /// The display rows, in order.
    pub rows: Vec<Row>,
    /// The JSON fields besides `event`, `time` and `elapsed`, in order.
    pub fields: Vec<(&'static str, Value)>,
}

/// Presents an event for every view (see [`Presentation`]).
pub fn present(kind: &EventKind) -> Presentation {
    build(kind, true)
}

/// The display rows of an event: [`present`] without the JSON fields, for the screen, which
/// draws rows often and never writes JSON.
pub fn rows(kind: &EventKind) -> Vec<Row> {
    build(kind, false).rows
}

/// The JSON fields of an event, in order.
type Fields = Vec<(&'static str, Value)>;

/// Presents `kind`; its JSON fields only when `with_fields`.
fn build(kind: &EventKind, with_fields: bool) -> Presentation {
    let fields = |make: &dyn Fn() -> Fields| {
        if with_fields { make() } else { Vec::new() }
    };
    let (name, rows, fields) = match kind {
        EventKind::Connecting { target, transport } => (
            "connecting",
            vec![Row::note(
                RowKind::Info,
                format!("connecting to {target} ({transport})"),
                Tone::Plain,
            )],
            fields(&|| vec![("target", json!(target)), ("transport", json!(transport))]),
        ),
        EventKind::Connected { peer, local } => (
            "connected",
            vec![Row::note(
                RowKind::Info,
                format!("connected to {peer} from {local}"),
                Tone::Plain,
            )],
            fields(&|| vec![("peer", json!(peer)), ("local", json!(local))]),
        ),
        EventKind::Sent {
            security,
            text,
            kind,
        } => (
            "sent",
            vec![Row::new(
                RowKind::Sent,
                Some(*security),
                text.clone(),
                match kind {
                    SentKind::Command => Tone::Command,
                    SentKind::MessageLine => Tone::MessageLine,
                    SentKind::Credentials => Tone::Credentials,
                },
            )],
            fields(&|| {
                vec![
                    ("security", json!(security_name(*security))),
                    ("text", json!(text)),
                    (
                        "kind",
                        json!(match kind {
                            SentKind::Command => "command",
                            SentKind::MessageLine => "message_line",
                            SentKind::Credentials => "credentials",
                        }),
                    ),
                    ("redacted", json!(*kind == SentKind::Credentials)),
                ]
            }),
        ),
        EventKind::Received { security, reply } | EventKind::Unasked { security, reply } => {
            let unasked = matches!(kind, EventKind::Unasked { .. });
            let lines = reply.display_lines();
            let anomalies = reply.anomalies.descriptions();
            let json = fields(&|| {
                vec![
                    ("security", json!(security_name(*security))),
                    ("code", json!(reply.code.value())),
                    ("class", json!(reply.code.class().name())),
                    ("enhanced", json!(reply.enhanced.map(|e| e.to_string()))),
                    ("lines", json!(lines)),
                    ("anomalies", json!(anomalies)),
                ]
            });
            let tone = Tone::Reply(reply.code.class());
            let mut rows: Vec<Row> = lines
                .into_iter()
                .enumerate()
                .map(|(index, line)| {
                    let kind = RowKind::Reply {
                        unasked,
                        first: index == 0,
                    };
                    Row::new(kind, Some(*security), line, tone)
                })
                .collect();
            if unasked {
                rows.push(Row::note(
                    RowKind::Alarm,
                    UNASKED_NOTE.to_owned(),
                    Tone::Alarm,
                ));
            }
            if !anomalies.is_empty() {
                rows.push(Row::note(
                    RowKind::Alarm,
                    format!("reply anomalies: {}", anomalies.join("; ")),
                    Tone::Caution,
                ));
            }
            (if unasked { "unasked_reply" } else { "reply" }, rows, json)
        }
        EventKind::TlsEstablished(info) => present_tls(info, with_fields),
        EventKind::Guard(outcome) => present_guard(outcome, with_fields),
        EventKind::Expectation {
            line,
            expected,
            met,
            got,
        } => (
            "expectation",
            vec![Row::note(
                RowKind::Check { met: *met },
                format!("line {line}: expected {expected}, got {got}"),
                if *met { Tone::Pass } else { Tone::Alarm },
            )],
            fields(&|| {
                vec![
                    ("line", json!(line)),
                    ("expected", json!(expected)),
                    ("met", json!(met)),
                    ("got", json!(got)),
                ]
            }),
        ),
        EventKind::Note(text) => {
            let text = escape_str(text);
            (
                "note",
                vec![Row::note(RowKind::Info, text.clone(), Tone::Quiet)],
                fields(&|| vec![("text", json!(text))]),
            )
        }
        EventKind::Warning(text) => {
            let text = escape_str(text);
            (
                "warning",
                vec![Row::note(
                    RowKind::Alarm,
                    format!("WARNING {text}"),
                    Tone::Warning,
                )],
                fields(&|| vec![("text", json!(text))]),
            )
        }
        EventKind::Error { text, .. } => {
            let text = escape_str(text);
            (
                "error",
                vec![Row::note(
                    RowKind::Alarm,
                    format!("ERROR {text}"),
                    Tone::Alarm,
                )],
                fields(&|| vec![("text", json!(text))]),
            )
        }
        EventKind::Closed => (
            "closed",
            vec![Row::note(
                RowKind::Info,
                "connection closed".to_owned(),
                Tone::Plain,
            )],
            Vec::new(),
        ),
    };
    Presentation { name, rows, fields }
}

type Parts = (&'static str, Vec<Row>, Fields);

fn present_tls(info: &TlsInfo, with_fields: bool) -> Parts {
    let verified = info.verification.is_verified();
    let mut rows = vec![Row::new(
        RowKind::Tls,
        Some(Security::Tls),
        format!("TLS established: {}", info.summary()),
        if verified { Tone::Secure } else { Tone::Alarm },
    )];
    if let Verification::Failed(problem) = &info.verification {
        rows.push(
            Row::note(
                RowKind::Caveat,
                format!("WARNING certificate not verified: {problem}"),
                Tone::Alarm,
            )
            .with_brief(format!("CERTIFICATE NOT VERIFIED: {problem}")),
        );
    }
    for (index, cert) in info.chain.iter().enumerate() {
        let role = if index == 0 { "leaf" } else { "chain" };
        let row = match &cert.parse_error {
            Some(error) => Row::note(
                RowKind::Detail,
                format!("{role}[{index}]: unparsable certificate ({error})"),
                Tone::Plain,
            ),
            None => Row::note(
                RowKind::Detail,
                format!(
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
                Tone::Plain,
            )
            .with_brief(format!(
                "{role}[{index}] {} (issuer {}), {} days left",
                escape_str(&cert.subject),
                escape_str(&cert.issuer),
                cert.days_to_expiry
            )),
        };
        rows.push(row);
    }
    if !with_fields {
        return ("tls", rows, Vec::new());
    }
    let fields = vec![
        ("version", json!(info.version)),
        ("cipher_suite", json!(info.cipher_suite)),
        ("key_exchange", json!(info.key_exchange)),
        ("server_name", json!(info.server_name)),
        ("verified", json!(verified)),
        ("trust", json!(info.anchors)),
        (
            "verification_error",
            json!(match &info.verification {
                Verification::Verified => None,
                Verification::Failed(problem) => Some(problem.detail.clone()),
            }),
        ),
        (
            "chain",
            Value::Array(
                info.chain
                    .iter()
                    .map(|cert| {
                        json!({
                            "sha256": cert.sha256_fingerprint(),
                            "subject": cert.subject,
                            "issuer": cert.issuer,
                            "sans": cert.sans,
                            "not_before": cert.not_before,
                            "not_after": cert.not_after,
                            "days_to_expiry": cert.days_to_expiry,
                            "key": cert.key,
                            "serial": cert.serial,
                            "parse_error": cert.parse_error,
                        })
                    })
                    .collect(),
            ),
        ),
    ];
    ("tls", rows, fields)
}

fn present_guard(outcome: &GuardOutcome, with_fields: bool) -> Parts {
    let (row, decision, refusal) = match outcome {
        GuardOutcome::Refused(refusal) => (
            Row::note(RowKind::Alarm, format!("REFUSED {refusal}"), Tone::Alarm).with_brief(
                match refusal {
                    Refusal::Cleartext => "GUARD: AUTH stopped, nothing sent: no TLS, the \
                                           credentials would be readable on the path"
                        .to_owned(),
                    Refusal::Unverified(problem) => format!(
                        "GUARD: AUTH stopped, nothing sent: certificate not verified ({})",
                        problem.kind
                    ),
                },
            ),
            "refused",
            refusal,
        ),
        GuardOutcome::Overridden { refusal, one_time } => {
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
            let brief = match refusal {
                Refusal::Cleartext => "GUARD OVERRIDDEN: credentials sent IN CLEARTEXT at your \
                                       explicit request"
                    .to_owned(),
                Refusal::Unverified(problem) => format!(
                    "GUARD OVERRIDDEN: credentials sent to an UNVERIFIED peer ({})",
                    problem.kind
                ),
            };
            (
                Row::note(RowKind::Alarm, format!("WARNING {why}"), Tone::Override)
                    .with_brief(brief),
                "overridden",
                refusal,
            )
        }
    };
    let fields = if with_fields {
        vec![
            ("decision", json!(decision)),
            ("reason", json!(refusal.to_string())),
        ]
    } else {
        Vec::new()
    };
    ("guard", vec![row], fields)
}

impl Event {
    /// Renders the event as plain text lines (one per [`Row`]: a reply takes one per line),
    /// with elapsed time and the cleartext/TLS marker. Colour codes only when the palette is
    /// enabled.
    pub fn to_text_lines(&self, palette: Palette) -> Vec<String> {
        let time = format!("{:>8.3}", self.elapsed.as_secs_f64());
        present(&self.kind)
            .rows
            .iter()
            .map(|row| {
                let marker = match row.security {
                    Some(security) => palette.paint(
                        match security {
                            Security::Cleartext => "33",
                            Security::Tls => "32",
                        },
                        &format!("{:<5}", security.marker()),
                    ),
                    None => "     ".to_owned(),
                };
                let direction = row.kind.text_marker();
                let paint = |text: &str| match row.tone.ansi() {
                    Some(code) => palette.paint(code, text),
                    None => text.to_owned(),
                };
                let body = if direction.is_empty() {
                    paint(&row.text)
                } else if row.kind.paints_marker() {
                    paint(&format!("{direction} {}", row.text))
                } else {
                    format!("{direction} {}", paint(&row.text))
                };
                format!("{time} {marker} {body}")
            })
            .collect()
    }

    /// Renders the event as one JSON object (for `--json`).
    pub fn to_json(&self) -> Value {
        let time = time::OffsetDateTime::from(self.time)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let presentation = present(&self.kind);
        let mut object = serde_json::Map::new();
        object.insert("event".into(), Value::from(presentation.name));
        for (name, value) in presentation.fields {
            object.insert(name.into(), value);
        }
        object.insert("time".into(), Value::String(time));
        object.insert(
            "elapsed".into(),
            json!((self.elapsed.as_secs_f64() * 1e6).round() / 1e6),
        );
        Value::Object(object)
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
