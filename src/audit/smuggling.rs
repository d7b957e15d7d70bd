//! The SMTP smuggling probe: `smtptui audit HOST --smuggling-to ADDRESS`.
//!
//! SMTP smuggling (SEC Consult, December 2023; CVE-2023-51764 for Postfix, CVE-2023-51765 for
//! Sendmail, CVE-2023-51766 for Exim) needs two servers that disagree on where a message ends.
//! An attacker sends, through a relay that passes a non-standard end-of-data sequence
//! unchanged, one message holding that sequence with SMTP commands of its own behind it; a
//! receiving server that takes the sequence for the end of the message runs those commands and
//! queues a second message the relay never sent, spoofed and passing the relay's SPF. RFC 5321
//! §4.1.1.4 ends a message only with `<CR><LF>.<CR><LF>`.
//!
//! The probe sends real mail, so it runs only when asked, to the address given. For each
//! variant of [`EndOfData::ALL`], on a session of its own (TLS when the server offers it; no
//! AUTH, so never a credential), it sends `MAIL FROM:<>`, `RCPT TO`, `DATA`, then in one write
//! ([`payload`]): a short message holding the variant, a smuggled `MAIL FROM:<>`, `RCPT TO` to
//! the same address, `DATA` and a second message whose subject says SMUGGLED, the real
//! `<CR><LF>.<CR><LF>`, and `QUIT`. Every reply up to the one to `QUIT` is read and judged by
//! [`classify`]: one reply for the whole message means the server kept the variant inside it;
//! more mean it ended the message at the variant and answered the smuggled commands.
//!
//! Taking a variant is a failure only where real relays produce it ([`EndOfData::relays`]): a
//! relay that dot-stuffs never sends `<CR><LF>.<LF>`, which is why scanners testing it drew
//! the false-positive complaints of January 2024.
//!
//! Everything down to [`classify`] is pure. [`probe`] runs the sessions on raw sockets, as the
//! STARTTLS injection probe does: the engine refuses to send a bare CR or LF, the very guard
//! that keeps a user's own lines from smuggling anything.

use std::fmt;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use super::findings::ReplyBrief;
use super::probe::Recorder;
use super::raw;
use crate::proto::escape::escape_bytes;
use crate::proto::reply::{Reply, ReplyParser};
use crate::session::SessionConfig;
use crate::tls::{self, CertificateProblem, ProblemKind, TlsInfo, Verification};
use crate::transcript::{EventKind, Security, SentKind};

/// The domain of the probe's own names (Message-IDs, the From: header). `.invalid` is reserved
/// (RFC 6761), so it can never be mistaken for a real domain.
pub const PROBE_DOMAIN: &str = "smtptui-audit.invalid";

/// The most replies read after the message: a server that ran the smuggled commands answers
/// five (the message, MAIL, RCPT, DATA, the smuggled message) and then `QUIT`.
pub const MAX_ANSWERS: usize = 16;

/// An end-of-data sequence other than `<CR><LF>.<CR><LF>` that a relay could pass on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndOfData {
    /// `<LF>.<LF>`: a dot line between bare line feeds.
    LfDotLf,
    /// `<LF>.<CR><LF>`: a bare line feed before the dot, CRLF after it.
    LfDotCrLf,
    /// `<CR><LF>.<LF>`: CRLF before the dot, a bare line feed after it.
    CrLfDotLf,
    /// `<CR>.<CR>`: bare carriage returns around the dot.
    CrDotCr,
}

/// What is known about relays passing one end-of-data variant, from the 2023-2026 disclosures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relays {
    /// Whether real senders or relays are known to pass the sequence unchanged, so that a
    /// server ending a message there can be sent smuggled mail: then taking it fails;
    /// otherwise it is a warning (a violation of RFC 5321 no relay is known to deliver).
    pub known: bool,
    /// What is known, with its sources, worded to follow "relays passing it: "; what is
    /// not known is said so.
    pub said: &'static str,
}

impl EndOfData {
    /// Every variant, in the order probed and reported.
    pub const ALL: [EndOfData; 4] = [
        EndOfData::LfDotLf,
        EndOfData::LfDotCrLf,
        EndOfData::CrLfDotLf,
        EndOfData::CrDotCr,
    ];

    /// The bytes sent.
    pub fn bytes(self) -> &'static [u8] {
        match self {
            Self::LfDotLf => b"\n.\n",
            Self::LfDotCrLf => b"\n.\r\n",
            Self::CrLfDotLf => b"\r\n.\n",
            Self::CrDotCr => b"\r.\r",
        }
    }

    /// The sequence as written in the disclosures: `<LF>.<CR><LF>`.
    pub fn notation(self) -> &'static str {
        match self {
            Self::LfDotLf => "<LF>.<LF>",
            Self::LfDotCrLf => "<LF>.<CR><LF>",
            Self::CrLfDotLf => "<CR><LF>.<LF>",
            Self::CrDotCr => "<CR>.<CR>",
        }
    }

    /// A name for identifiers: `lf-dot-crlf`.
    pub fn slug(self) -> &'static str {
        match self {
            Self::LfDotLf => "lf-dot-lf",
            Self::LfDotCrLf => "lf-dot-crlf",
            Self::CrLfDotLf => "crlf-dot-lf",
            Self::CrDotCr => "cr-dot-cr",
        }
    }

    /// Which relays are known to pass the sequence, and the sources. Every claim here names
    /// a source a reader can check; what is not documented is said so.
    pub fn relays(self) -> Relays {
        match self {
            Self::LfDotLf => Relays {
                known: true,
                said: "the lettre library before 0.11.24 for raw and unencoded bodies, which \
                       did not dot-stuff after a bare LF or CR (RUSTSEC-2026-0561 names \
                       <LF>.<LF>); .NET's SmtpClient until dotnet/runtime pull request 132823 \
                       (2026), which did not dot-stuff after a bare LF; which mail services \
                       pass it is not documented",
            },
            Self::LfDotCrLf => Relays {
                known: true,
                said: "Exchange Online and GMX until they fixed their outbound servers in 2023 \
                       (SEC Consult's 2023 write-up \"SMTP Smuggling - Spoofing E-Mails \
                       Worldwide\"; SMTP-Smuggling-Tools README and issue 6); the lettre \
                       library before 0.11.24 and .NET's SmtpClient until dotnet/runtime pull \
                       request 132823, neither of which dot-stuffed after a bare LF \
                       (RUSTSEC-2026-0561; the pull request)",
            },
            Self::CrLfDotLf => Relays {
                known: false,
                said: "none is known: a client that dot-stuffs doubles a dot after <CR><LF> \
                       and sends <CR><LF>..<LF> instead (Wietse Venema in smtpsmug issue 8; \
                       SEC Consult dropped such sequences from its scanner, \
                       SMTP-Smuggling-Tools issue 6)",
            },
            Self::CrDotCr => Relays {
                known: true,
                said: "Dovecot CE 2.3.0 to 2.4.4 when it relays (submission relay, Sieve \
                       redirect), which did not dot-stuff after a bare CR (CVE-2026-33604, \
                       fixed in 2.4.5); the lettre library before 0.11.24, which did not \
                       dot-stuff after a bare LF or CR (RUSTSEC-2026-0561)",
            },
        }
    }
}

impl fmt::Display for EndOfData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.notation())
    }
}

/// The address the test messages go to, checked: `local@domain` in printable ASCII, nothing
/// that could end a command line or the angle brackets around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient(String);

impl Recipient {
    /// Reads `--smuggling-to`: `user@example.com`, or `<user@example.com>`.
    ///
    /// # Errors
    /// A sentence naming what is wrong and the form wanted.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let bare = trimmed
            .strip_prefix('<')
            .and_then(|t| t.strip_suffix('>'))
            .unwrap_or(trimmed);
        let wanted = "give a mail address the server accepts mail for, as user@example.com";
        if bare.is_empty() {
            return Err(format!("the address is empty; {wanted}"));
        }
        if let Some(c) = bare.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(format!(
                "{trimmed:?} holds {}; {wanted} (ASCII, without spaces)",
                if c.is_ascii_whitespace() || c.is_ascii_control() {
                    "a space or control character".to_owned()
                } else {
                    format!("{c:?}, which is not ASCII")
                }
            ));
        }
        if bare.contains(['<', '>']) {
            return Err(format!("{trimmed:?} has an angle bracket inside; {wanted}"));
        }
        let Some((local, domain)) = bare.rsplit_once('@') else {
            return Err(format!("{trimmed:?} has no @; {wanted}"));
        };
        if local.is_empty() || domain.is_empty() || domain.contains('@') {
            return Err(format!(
                "{trimmed:?} needs a local part and a domain; {wanted}"
            ));
        }
        // RFC 5321 §4.5.3.1.3: a path is at most 256 octets, angle brackets included.
        if bare.len() > 254 {
            return Err(format!(
                "the address is {} characters long, more than the 254 RFC 5321 allows; {wanted}",
                bare.len()
            ));
        }
        Ok(Self(bare.to_owned()))
    }

    /// The address, without angle brackets.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The Message-IDs of one variant's messages, so that the mailbox and the server's log can
/// tell them apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageIds {
    /// The message the variant sits in.
    pub outer: String,
    /// The message behind the variant: it exists on its own only if the server ran the
    /// smuggled commands.
    pub smuggled: String,
}

impl MessageIds {
    /// The IDs for a variant in the run marked `nonce` (without angle brackets).
    pub fn new(variant: EndOfData, nonce: &str) -> Self {
        Self {
            outer: format!(
                "smtptui-smuggling.{}.{nonce}@{PROBE_DOMAIN}",
                variant.slug()
            ),
            smuggled: format!("smtptui-smuggled.{}.{nonce}@{PROBE_DOMAIN}", variant.slug()),
        }
    }
}

/// Everything written in one go after the `354`: the message with the variant in it, the
/// smuggled commands and message, the real `<CR><LF>.<CR><LF>`, and `QUIT`. No line begins
/// with a dot but the variant's own, so no dot-stuffing is needed.
pub fn payload(variant: EndOfData, to: &Recipient, ids: &MessageIds, date: &str) -> Vec<u8> {
    let notation = variant.notation();
    let from = format!("smtptui audit <smtptui-audit@{PROBE_DOMAIN}>");
    let mut out = format!(
        "From: {from}\r\n\
         To: <{to}>\r\n\
         Subject: smtptui smuggling probe: {notation}\r\n\
         Date: {date}\r\n\
         Message-ID: <{outer}>\r\n\
         \r\n\
         smtptui audit --smuggling-to sent this message to test whether the server\r\n\
         ends a message at {notation} instead of <CR><LF>.<CR><LF> alone. That\r\n\
         sequence follows, then harmless commands: a server that ends the message\r\n\
         there runs them, and queues a second message whose subject says SMUGGLED.",
        outer = ids.outer,
    )
    .into_bytes();
    out.extend_from_slice(variant.bytes());
    out.extend_from_slice(
        format!(
            "MAIL FROM:<>\r\n\
             RCPT TO:<{to}>\r\n\
             DATA\r\n\
             From: {from}\r\n\
             To: <{to}>\r\n\
             Subject: smtptui smuggling probe: SMUGGLED after {notation}\r\n\
             Date: {date}\r\n\
             Message-ID: <{smuggled}>\r\n\
             \r\n\
             This message was smuggled: the server ended the message before it at\r\n\
             {notation} and ran the commands that followed as SMTP commands.\r\n\
             .\r\n\
             QUIT\r\n",
            smuggled = ids.smuggled,
        )
        .as_bytes(),
    );
    out
}

/// How the reading of the answers stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// `QUIT` was answered with `221`.
    Quit,
    /// The server closed the connection before answering `QUIT`.
    Closed,
    /// Nothing more came within the wait.
    Silent,
    /// More than [`MAX_ANSWERS`] replies.
    TooMany,
    /// A read failed, or the bytes were no reply within the limits: why.
    Broken(String),
}

/// The replies read after the one write, before the answer to `QUIT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answers {
    /// In order; the `221` to `QUIT` is not among them.
    pub replies: Vec<ReplyBrief>,
    /// How the reading stopped.
    pub ending: Ending,
}

/// What one variant did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// One reply, a `2xx`: one message, with the variant and the smuggled commands inside it.
    KeptInside(ReplyBrief),
    /// One reply, a `4xx` or `5xx`, then the `221` to `QUIT`: the message was refused and none
    /// of the smuggled commands was answered (Postfix's `smtpd_forbid_bare_newline = reject`
    /// does this).
    Refused(ReplyBrief),
    /// More than one reply: the server ended the message at the variant and answered the
    /// smuggled commands as commands.
    Ended {
        /// The reply that ended the first message.
        first: ReplyBrief,
        /// The replies to what followed.
        after: Vec<ReplyBrief>,
        /// Whether a `354` was followed by a `2xx`: the smuggled message was accepted.
        second_queued: bool,
    },
    /// The probe could not tell: why.
    Inconclusive(String),
}

impl Outcome {
    /// Whether the server took the variant for the end of the message.
    pub fn ended_early(&self) -> bool {
        matches!(self, Self::Ended { .. })
    }
}

/// Judges the answers to one write. A single answer to the whole message, acceptance or
/// refusal, is only conclusive with the `221` to `QUIT` behind it: a server that ended the
/// message early and then dropped what followed would answer once and never reach the `QUIT`.
pub fn classify(answers: &Answers) -> Outcome {
    let ending = match &answers.ending {
        Ending::Quit => "answered QUIT".to_owned(),
        Ending::Closed => "closed the connection before answering QUIT".to_owned(),
        Ending::Silent => "then said nothing more, not even to QUIT".to_owned(),
        Ending::TooMany => format!("sent more than {MAX_ANSWERS} replies"),
        Ending::Broken(why) => format!("then the reading failed ({why})"),
    };
    match answers.replies.as_slice() {
        [first, second, rest @ ..] => Outcome::Ended {
            first: first.clone(),
            after: std::iter::once(second).chain(rest).cloned().collect(),
            second_queued: std::iter::once(second)
                .chain(rest)
                .zip(rest)
                .any(|(before, next)| before.code == 354 && next.code / 100 == 2),
        },
        [only] if only.code / 100 == 2 && answers.ending == Ending::Quit => {
            Outcome::KeptInside(only.clone())
        }
        [only] if matches!(only.code / 100, 4 | 5) && answers.ending == Ending::Quit => {
            Outcome::Refused(only.clone())
        }
        [only] => Outcome::Inconclusive(format!(
            "the server answered the message with {} and {ending}: it may have ended the \
             message early and dropped what followed",
            only.summary
        )),
        [] => Outcome::Inconclusive(match &answers.ending {
            Ending::Closed => {
                "the server closed the connection without answering the message".to_owned()
            }
            Ending::Silent => "the server did not answer the message".to_owned(),
            Ending::Broken(why) => format!("no reply to the message could be read: {why}"),
            Ending::Quit | Ending::TooMany => {
                "the server answered QUIT but not the message".to_owned()
            }
        }),
    }
}

/// How the probe's sessions are protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TLS from the first byte, as the audited connection.
    Implicit,
    /// STARTTLS, as the server offers it.
    StartTls,
    /// Cleartext: no STARTTLS offered, or it did not work in the main session.
    Cleartext,
}

/// What the smuggling probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmugglingSeen {
    /// Not asked for (no `--smuggling-to`).
    NotRun,
    /// The first session could not reach the point of sending a message.
    NotStarted {
        /// The address given.
        to: String,
        /// The step: `RCPT TO:<...>`, `the TLS handshake`, ...
        during: String,
        /// What happened, in words.
        why: String,
        /// The refusal, when the server answered the step with one.
        refusal: Option<ReplyBrief>,
    },
    /// The variants were sent.
    Ran {
        /// The address given.
        to: String,
        /// How the sessions were protected.
        transport: Transport,
        /// The TLS version and certificate verdict of the first session with TLS.
        tls: Option<String>,
        /// What marks this run's Message-IDs ([`MessageIds::new`]).
        nonce: String,
        /// Each variant with what it did, in [`EndOfData::ALL`] order.
        variants: Vec<(EndOfData, Outcome)>,
    },
}

// ---------------------------------------------------------------------------------------------
// The sessions
// ---------------------------------------------------------------------------------------------

/// Both kinds of stream behind one type once TLS is decided.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A step before the message that did not go through.
struct Setup {
    during: String,
    why: String,
    refusal: Option<ReplyBrief>,
}

impl Setup {
    fn failed(during: &str, why: impl Into<String>) -> Self {
        Self {
            during: during.to_owned(),
            why: why.into(),
            refusal: None,
        }
    }

    fn refused(during: &str, reply: &Reply) -> Self {
        Self {
            during: during.to_owned(),
            why: format!("answered {}", reply.summary()),
            refusal: Some(ReplyBrief::from(reply)),
        }
    }
}

/// What one read brought.
enum Read {
    Reply(Reply),
    Silent,
    Closed,
    Failed(String),
}

/// One connection: the stream and what has been read but not yet taken as a reply.
struct Conn<S> {
    io: S,
    parser: ReplyParser,
    security: Security,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn new(io: S, security: Security, config: &SessionConfig) -> Self {
        Self {
            io,
            parser: ReplyParser::new(config.limits),
            security,
        }
    }

    /// Reads one reply within `wait`, bounded by the parser's limits.
    async fn read(&mut self, wait: Duration, recorder: &Recorder) -> Read {
        let deadline = tokio::time::Instant::now() + wait;
        let mut buffer = [0u8; 4096];
        loop {
            match self.parser.next_reply() {
                Ok(Some(reply)) => {
                    recorder.push(EventKind::Received {
                        security: self.security,
                        reply: reply.clone(),
                    });
                    return Read::Reply(reply);
                }
                Ok(None) => {}
                Err(error) => return Read::Failed(error.to_string()),
            }
            match tokio::time::timeout_at(deadline, self.io.read(&mut buffer)).await {
                Err(_) => return Read::Silent,
                Ok(Ok(0)) => return Read::Closed,
                Ok(Ok(n)) => self.parser.push(buffer.get(..n).unwrap_or_default()),
                // A TLS peer that closes without close_notify has closed all the same.
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Read::Closed,
                Ok(Err(e)) => return Read::Failed(format!("read failed: {e}")),
            }
        }
    }

    /// A reply to something just sent; silence and a closed connection are failures here.
    async fn reply(
        &mut self,
        config: &SessionConfig,
        recorder: &Recorder,
        during: &str,
    ) -> Result<Reply, Setup> {
        match self.read(config.timeout, recorder).await {
            Read::Reply(reply) => Ok(reply),
            Read::Silent => Err(Setup::failed(
                during,
                format!("no reply within {:?}", config.timeout),
            )),
            Read::Closed => Err(Setup::failed(during, "the server closed the connection")),
            Read::Failed(why) => Err(Setup::failed(during, why)),
        }
    }

    /// Sends one command line and reads its reply.
    async fn command(
        &mut self,
        config: &SessionConfig,
        recorder: &Recorder,
        line: &str,
    ) -> Result<Reply, Setup> {
        raw::write(
            &mut self.io,
            format!("{line}\r\n").as_bytes(),
            config.timeout,
        )
        .await
        .map_err(|why| Setup::failed(line, why))?;
        raw::sent(recorder, self.security, line);
        self.reply(config, recorder, line).await
    }

    /// The 220 greeting, then EHLO answered 250.
    async fn greet(
        &mut self,
        config: &SessionConfig,
        ehlo_name: &str,
        recorder: &Recorder,
        greeting: bool,
    ) -> Result<(), Setup> {
        if greeting {
            let reply = self.reply(config, recorder, "the greeting").await?;
            if reply.code.value() != 220 {
                return Err(Setup::refused("the greeting", &reply));
            }
        }
        let ehlo = format!("EHLO {ehlo_name}");
        let reply = self.command(config, recorder, &ehlo).await?;
        if reply.code.value() != 250 {
            return Err(Setup::refused(&ehlo, &reply));
        }
        Ok(())
    }

    /// Says QUIT and closes, whatever the server answers.
    async fn leave(mut self, config: &SessionConfig, recorder: &Recorder) {
        let wait = config.timeout.min(Duration::from_secs(2));
        if raw::write(&mut self.io, b"QUIT\r\n", wait).await.is_ok() {
            raw::sent(recorder, self.security, "QUIT");
            let _ = self.read(wait, recorder).await;
        }
        self.close().await;
        recorder.push(EventKind::Closed);
    }

    async fn close(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.io.shutdown()).await;
    }
}

/// The TLS handshake over `io`, the verdict recorded rather than enforced (the audit judges
/// the certificate on its main session; no credential crosses here).
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    config: &SessionConfig,
    io: S,
    recorder: &Recorder,
) -> Result<(tokio_rustls::client::TlsStream<S>, TlsInfo), Setup> {
    let during = "the TLS handshake";
    let mut trust = config.trust.clone();
    trust.continue_unverified = true;
    let (client, verdict) =
        tls::client_config(&trust).map_err(|e| Setup::failed(during, e.to_string()))?;
    let name =
        tls::server_name(&config.server_name).map_err(|e| Setup::failed(during, e.to_string()))?;
    let stream =
        match tokio::time::timeout(config.timeout, TlsConnector::from(client).connect(name, io))
            .await
        {
            Err(_) => return Err(Setup::failed(during, "timed out")),
            Ok(Err(error)) => return Err(Setup::failed(during, error.to_string())),
            Ok(Ok(stream)) => stream,
        };
    let verification = verdict
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .unwrap_or_else(|| {
            Verification::Failed(CertificateProblem {
                kind: ProblemKind::NotChecked.label(),
                detail: "the certificate was not checked".to_owned(),
            })
        });
    let info = TlsInfo::from_connection(
        stream.get_ref().1,
        &config.server_name,
        verification,
        &trust.anchors(),
    );
    recorder.push(EventKind::TlsEstablished(Box::new(info.clone())));
    Ok((stream, info))
}

/// Opens a session ready for `MAIL`: greeting, EHLO, and TLS as `transport` says.
async fn open(
    config: &SessionConfig,
    ehlo_name: &str,
    transport: Transport,
    recorder: &Recorder,
) -> Result<(Conn<Box<dyn Io>>, Option<TlsInfo>), Setup> {
    let tcp = raw::connect(config, recorder)
        .await
        .map_err(|why| Setup::failed("the connection", why))?;
    match transport {
        Transport::Implicit => {
            let (stream, info) = handshake(config, tcp, recorder).await?;
            let mut conn = Conn::new(Box::new(stream) as Box<dyn Io>, Security::Tls, config);
            conn.greet(config, ehlo_name, recorder, true).await?;
            Ok((conn, Some(info)))
        }
        Transport::Cleartext => {
            let mut conn = Conn::new(Box::new(tcp) as Box<dyn Io>, Security::Cleartext, config);
            conn.greet(config, ehlo_name, recorder, true).await?;
            Ok((conn, None))
        }
        Transport::StartTls => {
            let mut clear = Conn::new(tcp, Security::Cleartext, config);
            clear.greet(config, ehlo_name, recorder, true).await?;
            let reply = clear.command(config, recorder, "STARTTLS").await?;
            if reply.code.value() != 220 {
                return Err(Setup::refused("STARTTLS", &reply));
            }
            if !clear.parser.buffered().is_empty() {
                // Nothing received before the handshake is trusted after it (RFC 3207 §4.2).
                return Err(Setup::failed(
                    "STARTTLS",
                    format!(
                        "{} byte(s) followed the 220 in cleartext (something on the path \
                         injected them)",
                        clear.parser.buffered().len()
                    ),
                ));
            }
            let (stream, info) = handshake(config, clear.io, recorder).await?;
            let mut conn = Conn::new(Box::new(stream) as Box<dyn Io>, Security::Tls, config);
            conn.greet(config, ehlo_name, recorder, false).await?;
            Ok((conn, Some(info)))
        }
    }
}

/// The payload as transcript lines: split at CRLF, a bare CR or LF escaped as every control
/// byte is (`\x0d`, `\x0a`).
fn shown_lines(bytes: &[u8]) -> Vec<String> {
    let mut lines: Vec<String> = bytes
        .split_inclusive(|&b| b == b'\n')
        .fold(vec![Vec::new()], |mut lines: Vec<Vec<u8>>, piece| {
            if let Some(last) = lines.last_mut() {
                last.extend_from_slice(piece);
                if last.ends_with(b"\r\n") {
                    last.truncate(last.len() - 2);
                    lines.push(Vec::new());
                }
            }
            lines
        })
        .iter()
        .map(|line| escape_bytes(line))
        .collect();
    if lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines
}

/// Reads every reply after the write, up to the `221` to QUIT.
async fn answers<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    config: &SessionConfig,
    recorder: &Recorder,
) -> Answers {
    let mut replies = Vec::new();
    let ending = loop {
        if replies.len() > MAX_ANSWERS {
            break Ending::TooMany;
        }
        match conn.read(config.timeout, recorder).await {
            Read::Reply(reply) if reply.code.value() == 221 => break Ending::Quit,
            Read::Reply(reply) => replies.push(ReplyBrief::from(&reply)),
            Read::Silent => break Ending::Silent,
            Read::Closed => break Ending::Closed,
            Read::Failed(why) => break Ending::Broken(why),
        }
    };
    Answers { replies, ending }
}

/// One variant on its own session. `Err` when the message could not be sent at all.
async fn one(
    config: &SessionConfig,
    ehlo_name: &str,
    to: &Recipient,
    transport: Transport,
    variant: EndOfData,
    stamp: (&str, &str),
    recorder: &Recorder,
) -> Result<(Outcome, Option<TlsInfo>), Setup> {
    let (nonce, date) = stamp;
    let (mut conn, tls) = open(config, ehlo_name, transport, recorder).await?;
    let rcpt = format!("RCPT TO:<{to}>");
    for (line, class) in [("MAIL FROM:<>", 2), (rcpt.as_str(), 2), ("DATA", 3)] {
        let reply = conn.command(config, recorder, line).await?;
        if reply.code.value() / 100 != class {
            conn.leave(config, recorder).await;
            return Err(Setup::refused(line, &reply));
        }
    }
    let bytes = payload(variant, to, &MessageIds::new(variant, nonce), date);
    if let Err(why) = raw::write(&mut conn.io, &bytes, config.timeout).await {
        conn.close().await;
        recorder.push(EventKind::Closed);
        return Ok((
            Outcome::Inconclusive(format!("the message could not be sent: {why}")),
            tls,
        ));
    }
    let lines = shown_lines(&bytes);
    let count = lines.len();
    for (index, line) in lines.into_iter().enumerate() {
        // The last line is the QUIT, the rest message text (smuggled commands included).
        let kind = if index + 1 == count {
            SentKind::Command
        } else {
            SentKind::MessageLine
        };
        recorder.push(EventKind::Sent {
            security: conn.security,
            text: line,
            kind,
        });
    }
    let answers = answers(&mut conn, config, recorder).await;
    conn.close().await;
    recorder.push(EventKind::Closed);
    Ok((classify(&answers), tls))
}

/// What marks this run's Message-IDs: the time, the process and a counter, in hex.
fn nonce() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{:x}{:05x}.{:x}.{:x}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The Date: header value (RFC 5322), now.
fn date() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_else(|_| "Thu, 01 Jan 1970 00:00:00 +0000".to_owned())
}

/// Runs every variant against the server. Never fails: a first session that cannot send its
/// message makes [`SmugglingSeen::NotStarted`], a later one an inconclusive variant.
pub async fn probe(
    config: &SessionConfig,
    ehlo_name: &str,
    to: &Recipient,
    transport: Transport,
    recorder: &Recorder,
) -> SmugglingSeen {
    let nonce = nonce();
    let date = date();
    let mut variants = Vec::new();
    let mut tls = None;
    for variant in EndOfData::ALL {
        recorder.push(EventKind::Note(format!(
            "smuggling probe, {variant}: a message to {to} with {variant} and MAIL FROM, RCPT \
             TO and DATA behind it, then <CR><LF>.<CR><LF> and QUIT, in one write"
        )));
        match one(
            config,
            ehlo_name,
            to,
            transport,
            variant,
            (&nonce, &date),
            recorder,
        )
        .await
        {
            Ok((outcome, info)) => {
                if tls.is_none() {
                    tls = info.map(|info| info.summary());
                }
                variants.push((variant, outcome));
            }
            Err(setup) if variants.is_empty() => {
                recorder.push(EventKind::Warning(format!(
                    "smuggling probe: {} at {}; no test message was sent",
                    setup.why, setup.during
                )));
                return SmugglingSeen::NotStarted {
                    to: to.to_string(),
                    during: setup.during,
                    why: setup.why,
                    refusal: setup.refusal,
                };
            }
            Err(setup) => variants.push((
                variant,
                Outcome::Inconclusive(format!(
                    "this variant's session did not get to send its message: {} at {}",
                    setup.why, setup.during
                )),
            )),
        }
    }
    SmugglingSeen::Ran {
        to: to.to_string(),
        transport,
        tls,
        nonce,
        variants,
    }
}

#[cfg(test)]
#[allow(clippy::panic)] // panicking is how a test fails
mod tests {
    use super::*;

    fn brief(code: u16) -> ReplyBrief {
        ReplyBrief {
            code,
            enhanced: None,
            summary: format!("{code} text"),
        }
    }

    fn answers(codes: &[u16], ending: Ending) -> Answers {
        Answers {
            replies: codes.iter().map(|&c| brief(c)).collect(),
            ending,
        }
    }

    #[test]
    fn the_variant_sits_between_the_text_and_the_smuggled_commands() {
        let to = Recipient::parse("bob@lab.test").expect("address");
        for variant in EndOfData::ALL {
            let ids = MessageIds::new(variant, "n1");
            let bytes = payload(variant, &to, &ids, "Wed, 02 Dec 2026 10:00:00 +0000");
            let mut expected = b"second message whose subject says SMUGGLED.".to_vec();
            expected.extend_from_slice(variant.bytes());
            expected.extend_from_slice(b"MAIL FROM:<>\r\nRCPT TO:<bob@lab.test>\r\nDATA\r\n");
            assert!(
                bytes.windows(expected.len()).any(|w| w == expected),
                "{variant}: {}",
                String::from_utf8_lossy(&bytes)
            );
            assert!(bytes.ends_with(b"commands.\r\n.\r\nQUIT\r\n"), "{variant}");
            // Apart from the variant, every line ends in CRLF and none starts with a dot.
            let text = String::from_utf8_lossy(&bytes).replacen(
                std::str::from_utf8(variant.bytes()).expect("ascii"),
                "\r\n",
                1,
            );
            let lines: Vec<&str> = text.split("\r\n").collect();
            assert!(lines.iter().all(|l| !l.contains(['\r', '\n'])), "{variant}");
            let dots = lines.iter().filter(|l| l.starts_with('.')).count();
            assert_eq!(dots, 1, "{variant}: only the real end starts with a dot");
            let s = String::from_utf8_lossy(&bytes);
            assert!(s.contains("Message-ID: <smtptui-smuggling."), "{s}");
            assert!(
                s.contains(&format!("Message-ID: <{}>", ids.smuggled)),
                "{s}"
            );
        }
    }

    #[test]
    fn one_answer_with_quit_keeps_it_inside_and_more_answers_end_it() {
        assert!(matches!(
            classify(&answers(&[250], Ending::Quit)),
            Outcome::KeptInside(_)
        ));
        assert!(matches!(
            classify(&answers(&[550], Ending::Quit)),
            Outcome::Refused(_)
        ));
        // A refusal and then a closed connection: where the server stopped reading is unknown.
        assert!(matches!(
            classify(&answers(&[421], Ending::Closed)),
            Outcome::Inconclusive(_)
        ));
        match classify(&answers(&[250, 250, 250, 354, 250], Ending::Quit)) {
            Outcome::Ended { second_queued, .. } => assert!(second_queued),
            other => panic!("{other:?}"),
        }
        // The smuggled DATA refused for pipelining: ended early all the same, nothing queued.
        match classify(&answers(&[250, 554], Ending::Closed)) {
            Outcome::Ended {
                second_queued,
                after,
                ..
            } => {
                assert!(!second_queued);
                assert_eq!(after.len(), 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_answer_without_the_quit_or_no_answer_is_never_conclusive() {
        for ending in [Ending::Closed, Ending::Silent, Ending::Broken("x".into())] {
            assert!(
                matches!(
                    classify(&answers(&[250], ending.clone())),
                    Outcome::Inconclusive(_)
                ),
                "{ending:?}"
            );
            assert!(
                matches!(
                    classify(&answers(&[], ending.clone())),
                    Outcome::Inconclusive(_)
                ),
                "{ending:?}"
            );
        }
        assert!(matches!(
            classify(&answers(&[], Ending::Quit)),
            Outcome::Inconclusive(_)
        ));
        assert!(matches!(
            classify(&answers(&[354], Ending::Quit)),
            Outcome::Inconclusive(_)
        ));
    }

    #[test]
    fn the_transcript_shows_bare_line_ends_escaped_and_crlf_as_line_breaks() {
        assert_eq!(
            shown_lines(b"a\r\nb\n.\nMAIL\r\nc\r.\rd\r\n"),
            ["a", "b\\x0a.\\x0aMAIL", "c\\x0d.\\x0dd"]
        );
    }

    #[test]
    fn addresses_are_checked_before_anything_is_sent() {
        assert_eq!(
            Recipient::parse(" <bob@lab.test> ").map(|r| r.to_string()),
            Ok("bob@lab.test".to_owned())
        );
        for bad in [
            "",
            "bob",
            "@lab.test",
            "bob@",
            "bob@lab.test\r\nRCPT TO:<x@y>",
            "bob smith@lab.test",
            "bob<x>@lab.test",
            "bøb@lab.test",
        ] {
            let error = Recipient::parse(bad).expect_err(bad);
            assert!(error.contains("user@example.com"), "{bad}: {error}");
        }
        assert!(Recipient::parse(&format!("{}@lab.test", "a".repeat(250))).is_err());
    }

    #[test]
    fn only_the_sequence_no_dot_stuffing_relay_can_send_is_not_a_failure() {
        let counted: Vec<_> = EndOfData::ALL
            .into_iter()
            .filter(|v| v.relays().known)
            .collect();
        assert_eq!(
            counted,
            [EndOfData::LfDotLf, EndOfData::LfDotCrLf, EndOfData::CrDotCr]
        );
        for variant in EndOfData::ALL {
            assert!(!variant.relays().said.is_empty());
        }
    }
}
