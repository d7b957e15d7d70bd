//! The server side of one SMTP session, sans-IO: bytes in, [`Output`]s out.
//!
//! The state machine never touches a socket or a clock. The tokio shell in the `listener`
//! module feeds it what it reads, performs what it asks (send these bytes, let this much time
//! pass, start TLS now, close), and tells it what it saw of the connection (a TLS handshake
//! that did not happen, a client silent too long). That keeps every reply text and every limit
//! testable byte for byte, and it means hostile input can only ever produce a reply or a
//! close, never a panic or an unbounded buffer.
//!
//! The replies are those of the Postfix that Debian ships (3.7, with Cyrus SASL), command by
//! command, so what students see here is what they will see on a real server; a test compares
//! the two over the network (`tests/lab_postfix.rs`). Along the way the session records what
//! the client did that matters ([`Conduct`]), from which [`ServerSession::verdict`] judges it.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use zeroize::Zeroizing;

use super::accounts::Accounts;
use super::activity::{self, Activity};
use super::classroom::ClassBoard;
use super::grade::{self, GradeBoard, SessionFacts, Ticket};
use super::profile::{Policy, Profile, StartTlsBehaviour};
use super::triggers::{self, Extension, Extensions, SeenOnce, Trigger};
use super::verdict::{self, Conduct, CredentialCheck, InjectionResponse, TlsFailure, Verdict};
use crate::proto::command::{CommandKind, classify};
use crate::proto::escape::escape_str;

/// Longest command line Postfix reads (`line_length_limit`); the rest of a longer line is
/// skipped, and what was read is taken as the command.
pub const LINE_LIMIT: usize = 2048;
/// The message size advertised with SIZE and enforced (Postfix's default `message_size_limit`).
pub const SIZE_LIMIT: usize = 10_240_000;
/// After this many errors the session is closed (Postfix `smtpd_hard_error_limit`).
pub const ERROR_LIMIT: u32 = 20;
/// After this many errors every reply waits [`ServerSettings::error_sleep`] first (Postfix
/// `smtpd_soft_error_limit`).
pub const SOFT_ERROR_LIMIT: u32 = 10;
/// Commands that may be repeated freely before each one counts as an error (Postfix
/// `smtpd_junk_command_limit`: HELO, EHLO, NOOP, RSET, VRFY, ETRN).
pub const JUNK_LIMIT: u32 = 100;
/// Most recipients in one transaction (Postfix `smtpd_recipient_limit`).
pub const RECIPIENT_LIMIT: usize = 1000;
/// The domain the lab receives mail for; everything else is relaying.
pub const LOCAL_DOMAIN: &str = "lab.test";
/// Postfix's `smtpd_error_sleep_time` default.
pub const ERROR_SLEEP: Duration = Duration::from_secs(1);
/// How long the `inject` profile holds its real reply to the first EHLO inside TLS: a client
/// that sends its next command in that time answered the forged reply instead.
pub const INJECT_HOLD: Duration = Duration::from_secs(1);

/// The `slow` profile's delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlowTimings {
    /// Before the greeting.
    pub greeting: Duration,
    /// Before every reply.
    pub reply: Duration,
}

impl Default for SlowTimings {
    fn default() -> Self {
        Self {
            greeting: Duration::from_secs(2),
            reply: Duration::from_secs(1),
        }
    }
}

/// What is shared by every session of one listener.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// The host name in the banner, EHLO reply and 421s.
    pub host: String,
    /// The behaviour.
    pub profile: Profile,
    /// Who may authenticate.
    pub accounts: Arc<Accounts>,
    /// Largest accepted message in bytes.
    pub size_limit: usize,
    /// What greylisting and the `slow` profile remember between sessions (shared by the lab).
    pub seen: Arc<SeenOnce>,
    /// The wait before each reply once a client made [`SOFT_ERROR_LIMIT`] errors (zero: none).
    pub error_sleep: Duration,
    /// The `slow` profile's delays.
    pub slow: SlowTimings,
    /// How long the `inject` profile holds its reply to the first EHLO inside TLS.
    pub inject_hold: Duration,
    /// Whether [`Output::Log`] lines are produced (off when nobody reads them; verdicts are
    /// made either way).
    pub log: bool,
    /// The classroom that answers `XEXERCISES` (the lab's own extension); without one the
    /// command is unknown, as on Postfix.
    pub class: Option<Arc<ClassBoard>>,
    /// SMTPUTF8 support (RFC 6531), as Postfix's `smtputf8_enable`: the EHLO keyword and the
    /// MAIL parameter, UTF-8 domains in addresses that declare it, and command lines that are
    /// not valid UTF-8 refused. Off, the lab answers as a Postfix with it off.
    pub smtputf8: bool,
    /// REQUIRETLS support (RFC 8689), as Postfix 3.11's `requiretls_enable`: the EHLO keyword
    /// and the MAIL parameter, inside TLS only.
    pub requiretls: bool,
    /// The grade profile's board: it gives each session its trial at EHLO and takes its
    /// outcome at the end (`None` elsewhere).
    pub grade: Option<Arc<GradeBoard>>,
}

impl ServerSettings {
    /// Settings for `profile` with Postfix's defaults: its size limit and error sleep, the
    /// `slow` timings, a fresh memory, logging on.
    pub fn new(host: &str, profile: Profile, accounts: Arc<Accounts>) -> Self {
        Self {
            host: host.to_owned(),
            profile,
            accounts,
            size_limit: SIZE_LIMIT,
            seen: Arc::default(),
            error_sleep: ERROR_SLEEP,
            slow: SlowTimings::default(),
            inject_hold: INJECT_HOLD,
            log: true,
            class: None,
            smtputf8: true,
            requiretls: true,
            grade: None,
        }
    }
}

/// Who a session log line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// What the client sent (redacted where it carried credentials).
    Client,
    /// What the server answered.
    Server,
    /// A remark by the lab itself.
    Note,
}

/// A message accepted with `250 2.0.0 Ok: queued as ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The queue ID given in the 250 reply.
    pub id: String,
    /// The profile of the listener that accepted it.
    pub profile: Profile,
    /// The reverse path (empty for the null sender `<>`).
    pub from: String,
    /// The recipients it was delivered to (under LMTP, those whose reply at the end of the
    /// message was 250).
    pub to: Vec<String>,
    /// The parameters each recipient in `to` was given with (`NOTIFY=…`, `ORCPT=…`, as
    /// sent), one string each, empty for none.
    pub recipient_parameters: Vec<String>,
    /// The MAIL FROM parameters the lab took (`SIZE=…`, `BODY=8BITMIME`, `SMTPUTF8`,
    /// `REQUIRETLS`, `RET=…`, `ENVID=…`, `AUTH=…`), as sent.
    pub parameters: Vec<String>,
    /// MAIL FROM declared SMTPUTF8 (RFC 6531): addresses and headers may be UTF-8.
    pub smtputf8: bool,
    /// MAIL FROM asked for REQUIRETLS (RFC 8689): the message may only travel on over TLS
    /// with a verified certificate.
    pub requiretls: bool,
    /// The content: with dot-stuffing removed and CRLF line ends after DATA, as sent after
    /// BDAT (with a final CRLF added when missing).
    pub data: Vec<u8>,
    /// The authenticated user, if any.
    pub authenticated_as: Option<String>,
    /// Whether the message arrived under TLS.
    pub tls: bool,
}

/// What the shell must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Write these bytes (one reply, or a forged one in the same write for `inject`).
    Send(Vec<u8>),
    /// Let this much time pass before carrying out the outputs after it, having written what
    /// came before. Bytes the client sends meanwhile are given to
    /// [`ServerSession::receive`] at once (their outputs come after the pending ones); when
    /// the time is over, call [`ServerSession::waited`].
    Wait(Duration),
    /// Start the TLS handshake now, then call [`ServerSession::tls_started`] (or
    /// [`ServerSession::tls_failed`]).
    StartTls,
    /// Close the connection.
    Close,
    /// One line for the session log.
    Log(Direction, String),
    /// A message was accepted.
    Deliver(Message),
}

/// A command or SASL line taken from the input buffer.
struct Line {
    bytes: Vec<u8>,
    /// Longer than [`LINE_LIMIT`]: cut there, the rest skipped.
    truncated: bool,
}

/// What the next client bytes mean.
enum Phase {
    Command,
    /// After 354: text lines until a lone dot.
    Data(DataState),
    /// After BDAT: this many raw bytes of the chunk are still to come.
    Chunk {
        remaining: usize,
        last: bool,
    },
    /// After 334: the next line answers a SASL challenge.
    Sasl(SaslState),
    /// After our 220 to STARTTLS: nothing more is read in cleartext.
    AwaitingTls,
    Closed,
}

struct DataState {
    content: Vec<u8>,
    size: usize,
    too_big: bool,
    /// The next byte starts a line (a lone dot there ends the message).
    at_line_start: bool,
    /// The line before ended in a bare LF.
    after_bare_lf: bool,
}

enum SaslState {
    Plain,
    LoginUser,
    LoginPassword {
        user: String,
    },
    /// CRAM-MD5: the nonce sent, which the answer's HMAC covers.
    CramMd5 {
        nonce: String,
    },
    /// OAUTHBEARER: the client's message with the token.
    OAuthBearer,
    /// OAUTHBEARER after the error challenge: only `%x01` may come, then 535.
    OAuthBearerRefused,
    /// EXTERNAL without an initial response: the authorization identity comes now.
    External,
}

struct Transaction {
    from: String,
    /// The MAIL FROM parameters taken, as sent.
    parameters: Vec<String>,
    smtputf8: bool,
    requiretls: bool,
    recipients: Vec<Recipient>,
}

impl Transaction {
    /// The reply the first `data-…` recipient chose for the end of the message (SMTP has one
    /// reply for all recipients).
    fn data_reply(&self) -> Option<&triggers::ChosenReply> {
        self.recipients.iter().find_map(|r| r.data_reply.as_ref())
    }
}

/// A recipient accepted with 250 to RCPT.
struct Recipient {
    address: String,
    /// Its parameters as sent, joined by spaces.
    parameters: String,
    /// The reply its `data-…` local part chose for the end of the message.
    data_reply: Option<triggers::ChosenReply>,
}

/// A BDAT transfer in progress (RFC 3030): chunks until one marked LAST.
struct Bdat {
    content: Vec<u8>,
    size: usize,
    too_big: bool,
    /// An earlier chunk was refused: the rest are read and discarded.
    failed: bool,
}

/// An AUTH the server did not take (refused, or discarded behind STARTTLS) whose answers a
/// client may send anyway, without waiting for a 334: those lines are credentials, never
/// logged and judged as such.
struct StraySasl {
    /// `PLAIN` or `LOGIN`.
    mechanism: &'static str,
    /// For LOGIN: the account name already sent.
    user: Option<String>,
    /// How many more lines may be answers.
    left: u8,
}

/// The lab's own command: the exercises and progress of the student of this session.
pub const EXERCISES_VERB: &str = "XEXERCISES";

/// How many verbs of a pipelined group its log line names.
const GROUP_VERBS_SHOWN: usize = 12;

/// The commands the lab knows (Postfix's, without XCLIENT and XFORWARD).
const KNOWN_COMMANDS: [&str; 13] = [
    "HELO", "EHLO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "VRFY",
    "ETRN", "QUIT",
];

/// Why a [`Output::Wait`] was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WaitPurpose {
    /// Before the greeting (`slow`).
    Greeting,
    /// Before the real reply to the first EHLO inside TLS (`inject`).
    InjectHold,
    /// Before a reply (`slow`, or the error tarpit).
    Pace,
}

/// The outcome of decoding a SASL response the way Cyrus SASL does.
enum SaslDecoded {
    Bytes(Zeroizing<Vec<u8>>),
    /// Not a multiple of four characters: Cyrus asks for more.
    Incomplete,
    /// Characters outside base64.
    Invalid,
}

/// One server-side SMTP session.
pub struct ServerSession {
    settings: Arc<ServerSettings>,
    policy: Policy,
    number: u64,
    peer: Option<IpAddr>,
    input: Vec<u8>,
    /// An overlong line is being skipped up to its end.
    discarding: bool,
    phase: Phase,
    tls: bool,
    /// EHLO was used (rather than HELO or nothing).
    esmtp: bool,
    /// Extensions the client's EHLO name turned off.
    off: Extensions,
    authenticated_as: Option<String>,
    /// The common name of the client certificate presented in this TLS session (verified
    /// against the lab CA by the handshake): the identity AUTH EXTERNAL takes.
    client_identity: Option<String>,
    transaction: Option<Transaction>,
    bdat: Option<Bdat>,
    errors: u32,
    junk: u32,
    messages: u32,
    waits: VecDeque<WaitPurpose>,
    hold_used: bool,
    stray_sasl: Option<StraySasl>,
    conduct: Conduct,
    activity: Activity,
    /// The command being answered (an index in [`activity::VERBS`]), for the activity's
    /// record of replies.
    answering: Option<usize>,
    /// The commands of each verb in the current pipelined group.
    group: [u16; activity::VERBS.len()],
    /// More input was waiting behind the last command: the next one is in its group.
    in_group: bool,
    /// The size declared with `SIZE=` (Postfix's `msg_size`): kept through a MAIL refused
    /// for another reason, until the transaction is reset, as Postfix keeps it.
    declared_size: u64,
    /// An `AUTH=` sender was given (Postfix's `sasl_sender`), kept the same way.
    auth_sender: bool,
    /// How many commands were taken from the input in the current [`Self::receive`], and
    /// the verbs of the first few: more than one arrived in one write, a pipelined group,
    /// which the log shows as one.
    read_commands: usize,
    read_verbs: Vec<String>,
    /// The grade profile's trial for this session, once the client named itself.
    grade_ticket: Option<Ticket>,
    /// What the grade needs beyond [`Conduct`]: the 4xx given, the envelopes tried.
    grade_facts: SessionFacts,
}

impl ServerSession {
    /// A session numbered `number` (unique in the lab, used for queue IDs and the log).
    /// `tls` is true when the connection is (about to be) under implicit TLS.
    pub fn new(settings: Arc<ServerSettings>, number: u64, tls: bool) -> Self {
        Self {
            policy: settings.profile.policy(),
            settings,
            number,
            peer: None,
            input: Vec::new(),
            discarding: false,
            phase: Phase::Command,
            tls,
            esmtp: false,
            off: Extensions::default(),
            authenticated_as: None,
            client_identity: None,
            transaction: None,
            bdat: None,
            errors: 0,
            junk: 0,
            messages: 0,
            waits: VecDeque::new(),
            hold_used: false,
            stray_sasl: None,
            conduct: Conduct {
                tls,
                ..Conduct::default()
            },
            activity: Activity {
                tls,
                ..Activity::default()
            },
            answering: None,
            group: [0; activity::VERBS.len()],
            in_group: false,
            declared_size: 0,
            auth_sender: false,
            read_commands: 0,
            read_verbs: Vec::new(),
            grade_ticket: None,
            grade_facts: SessionFacts::default(),
        }
    }

    /// The grade profile's trial for this session, once the client said EHLO or HELO.
    pub fn grade_ticket(&self) -> Option<&Ticket> {
        self.grade_ticket.as_ref()
    }

    /// The ticket and what the session showed of the trial, for the grade board.
    pub fn grade_facts(&self) -> Option<(&Ticket, SessionFacts)> {
        let ticket = self.grade_ticket.as_ref()?;
        let tls_failure = self.conduct.tls_failure.as_ref().map(|f| match f {
            TlsFailure::Closed => "the client closed the connection instead".to_owned(),
            TlsFailure::TimedOut => "the client never started it".to_owned(),
            TlsFailure::NotTls => "the client sent cleartext instead".to_owned(),
            TlsFailure::Alert(alert) => format!("the client sent the alert {alert}"),
            TlsFailure::Other(how) => how.clone(),
        });
        Some((
            ticket,
            SessionFacts {
                starttls_offered: self.conduct.starttls_offered,
                starttls_refused: self.conduct.starttls_refused,
                tls: self.conduct.tls,
                tls_failure,
                messages_tls: self.conduct.messages_in_tls,
                messages_cleartext: self.conduct.messages_in_cleartext,
                ..self.grade_facts.clone()
            },
        ))
    }

    /// The grade profile: the first EHLO or HELO names the sender, and its next trial
    /// decides this session's STARTTLS.
    fn grade_assign(&mut self, name: &str, out: &mut Vec<Output>) {
        if self.grade_ticket.is_some() {
            return;
        }
        let (Some(board), Some(peer)) = (self.settings.grade.clone(), self.peer) else {
            return;
        };
        let ticket = board.assign(peer, name);
        match ticket.trial {
            Some(grade::Trial::Stripped) => self.policy.starttls = StartTlsBehaviour::Absent,
            Some(grade::Trial::Refused) => self.policy.starttls = StartTlsBehaviour::Refuse,
            _ => {}
        }
        let note = match ticket.trial {
            Some(trial) => format!("grading trial {trial}: {}", trial.describe()),
            None => "grading done for this sender: served as an honest MX".to_owned(),
        };
        self.log(out, Direction::Note, note);
        self.grade_ticket = Some(ticket);
    }

    /// Tells the session the client's address (greylisting and the `slow` profile remember
    /// attempts per client address).
    pub fn set_peer(&mut self, peer: IpAddr) {
        self.peer = Some(peer);
    }

    /// The banner, sent when the connection opens (after the handshake under implicit TLS).
    pub fn greeting(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        if self.policy.slow {
            self.wait(&mut out, self.settings.slow.greeting, WaitPurpose::Greeting);
        }
        let protocol = if self.policy.lmtp { "LMTP" } else { "ESMTP" };
        let line = format!("220 {} {protocol}", self.settings.host);
        self.emit(&mut out, line);
        out
    }

    /// Whether the session has ended; the shell then closes the connection.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// Whether TLS is active.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// What the client did so far, as the server saw it.
    pub fn conduct(&self) -> &Conduct {
        &self.conduct
    }

    /// What the client did so far, as the exercises see it.
    pub fn activity(&self) -> &Activity {
        &self.activity
    }

    /// The session's number in the lab.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The judgement on what the client did so far (logged when the session ends).
    pub fn verdict(&self) -> Verdict {
        verdict::judge(self.settings.profile, &self.conduct)
    }

    /// The client sent nothing for too long: 421 and close (Postfix's text).
    pub fn timed_out(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        if !self.is_closed() {
            self.answering = None;
            let text = format!("4.4.2 {} Error: timeout exceeded", self.settings.host);
            self.reply(&mut out, 421, &text);
            self.close(&mut out);
        }
        out
    }

    /// A [`Output::Wait`] is over.
    pub fn waited(&mut self) {
        if self.waits.pop_front() == Some(WaitPurpose::InjectHold)
            && self.conduct.injection.is_none()
        {
            // Silent all through the hold, while a forged reply sat in its buffer.
            self.conduct.injection = Some(InjectionResponse::WaitedForRealReply);
        }
    }

    /// The client certificate the TLS handshake received (its common name), on a profile
    /// that asks for one; `None` when the client presented none.
    #[must_use = "the log line is among the outputs"]
    pub fn client_certificate(&mut self, identity: Option<String>) -> Vec<Output> {
        let mut out = Vec::new();
        if let Some(name) = &identity {
            self.log(
                &mut out,
                Direction::Note,
                format!(
                    "client certificate CN={} (verified against the lab CA): AUTH EXTERNAL is offered",
                    escape_str(name)
                ),
            );
        }
        self.client_identity = identity;
        out
    }

    /// The TLS handshake after STARTTLS succeeded. Everything learned before it is forgotten
    /// (RFC 3207 §4.2): the client must say EHLO again and authenticate again.
    pub fn tls_started(&mut self) {
        self.client_identity = None;
        self.tls = true;
        self.conduct.tls = true;
        self.activity.tls_started(true);
        self.esmtp = false;
        self.off = Extensions::default();
        self.authenticated_as = None;
        self.reset_transaction();
        self.phase = Phase::Command;
    }

    /// The TLS handshake the server expected (implicit, or after its 220 to STARTTLS) did not
    /// happen. The session is over.
    pub fn tls_failed(&mut self, failure: TlsFailure) {
        if self.conduct.injected
            && self.conduct.injection.is_none()
            && failure == TlsFailure::Closed
        {
            self.conduct.injection = Some(InjectionResponse::ClosedBeforeHandshake);
        }
        self.tls = false;
        self.conduct.tls = false;
        self.activity.tls = self.activity.starttls;
        self.conduct.tls_failure = Some(failure);
        self.phase = Phase::Closed;
        self.input.clear();
    }

    /// Feeds bytes received from the client and returns what to do.
    pub fn receive(&mut self, bytes: &[u8]) -> Vec<Output> {
        let mut out = Vec::new();
        if bytes.is_empty() {
            return out;
        }
        if self.waits.contains(&WaitPurpose::Greeting) {
            self.conduct.spoke_before_greeting = true;
        }
        match self.phase {
            Phase::Closed => return out,
            Phase::AwaitingTls => {
                self.cleartext_after_starttls(bytes, &mut out);
                return out;
            }
            _ => {}
        }
        self.input.extend_from_slice(bytes);
        self.read_commands = 0;
        self.read_verbs.clear();
        self.process(&mut out);
        if self.read_commands > 1 && self.settings.log {
            self.show_group(&mut out);
        }
        out
    }

    /// Several commands came in one write (a pipelined group, RFC 2920): the log shows them
    /// as the wire carried them, the group's lines together under a line that names it, then
    /// the replies. What the server sent, and when, is unchanged.
    fn show_group(&mut self, out: &mut Vec<Output>) {
        let (client, rest): (Vec<Output>, Vec<Output>) = std::mem::take(out)
            .into_iter()
            .partition(|o| matches!(o, Output::Log(Direction::Client, _)));
        let more = if self.read_commands > self.read_verbs.len() {
            " ..."
        } else {
            ""
        };
        let note = format!(
            "pipelined group: {} commands in one write ({}{more})",
            self.read_commands,
            self.read_verbs.join(" "),
        );
        out.push(Output::Log(Direction::Note, escape_str(&note)));
        out.extend(client);
        out.extend(rest);
    }

    /// Handles every complete unit of input (line, chunk, data segment) in the buffer.
    fn process(&mut self, out: &mut Vec<Output>) {
        // Each pass consumes input or ends the loop.
        loop {
            match &self.phase {
                Phase::Chunk { .. } => {
                    if !self.take_chunk(out) {
                        break;
                    }
                }
                Phase::Data(_) => {
                    if !self.take_data(out) {
                        break;
                    }
                }
                Phase::Command | Phase::Sasl(_) => {
                    let Some(line) = self.take_line() else {
                        break;
                    };
                    let command = matches!(self.phase, Phase::Command);
                    self.handle_line(line, out);
                    if command && matches!(self.phase, Phase::Command) && self.errors >= ERROR_LIMIT
                    {
                        let text = format!("4.7.0 {} Error: too many errors", self.settings.host);
                        self.reply(out, 421, &text);
                        self.close(out);
                    }
                }
                Phase::AwaitingTls => {
                    if !self.input.is_empty() {
                        // Commands pipelined behind STARTTLS arrived in cleartext, where anyone
                        // could have added them: they must not be executed inside TLS (RFC 3207
                        // §4.2, the server side of the STARTTLS command injection bugs).
                        let pending = std::mem::take(&mut self.input);
                        self.cleartext_after_starttls(&pending, out);
                    }
                    break;
                }
                Phase::Closed => {
                    self.input.clear();
                    break;
                }
            }
        }
    }

    /// Takes the next command or SASL line, without its line end. A bare LF ends a line too,
    /// as in Postfix; a line longer than [`LINE_LIMIT`] is cut there and its rest skipped, so
    /// an endless line costs at most that much memory.
    fn take_line(&mut self) -> Option<Line> {
        if self.discarding {
            match memchr::memchr(b'\n', &self.input) {
                Some(end) => {
                    self.input.drain(..=end);
                    self.discarding = false;
                }
                None => {
                    self.input.clear();
                    return None;
                }
            }
        }
        let window = self.input.len().min(LINE_LIMIT);
        match memchr::memchr(b'\n', &self.input[..window]) {
            Some(end) => {
                let mut bytes: Vec<u8> = self.input.drain(..=end).collect();
                bytes.pop();
                if bytes.last() == Some(&b'\r') {
                    bytes.pop();
                }
                Some(Line {
                    bytes,
                    truncated: false,
                })
            }
            None if self.input.len() >= LINE_LIMIT => {
                let bytes: Vec<u8> = self.input.drain(..LINE_LIMIT).collect();
                self.discarding = true;
                Some(Line {
                    bytes,
                    truncated: true,
                })
            }
            None => None,
        }
    }

    /// Message text after DATA: whole lines, and overlong ones in pieces (Postfix keeps them
    /// whole too). Returns whether input was consumed.
    fn take_data(&mut self, out: &mut Vec<Output>) -> bool {
        let Phase::Data(data) = &mut self.phase else {
            return false;
        };
        let size_limit = self.settings.size_limit;
        let (piece, line_end, bare_lf) = match memchr::memchr(b'\n', &self.input) {
            Some(end) => {
                let mut piece: Vec<u8> = self.input.drain(..=end).collect();
                piece.pop();
                let crlf = piece.last() == Some(&b'\r');
                if crlf {
                    piece.pop();
                }
                (piece, true, !crlf)
            }
            None if self.input.len() >= LINE_LIMIT => {
                (std::mem::take(&mut self.input), false, false)
            }
            None => return false,
        };
        let after_bare_lf = std::mem::replace(&mut data.after_bare_lf, bare_lf);
        if data.at_line_start && line_end && piece == b"." && (bare_lf || after_bare_lf) {
            // As Postfix with smtpd_forbid_bare_newline = normalize (its default from 3.9):
            // only <CR><LF>.<CR><LF> ends the message, and a dot line next to a bare LF is
            // dropped, so <LF>.<LF> from a careless relay cannot end it early and have the
            // lines behind it run as commands (SMTP smuggling).
            return true;
        }
        if data.at_line_start && line_end && piece == b"." {
            let Phase::Data(data) = std::mem::replace(&mut self.phase, Phase::Command) else {
                return false;
            };
            self.finish_data(data, out);
            return true;
        }
        let text = if data.at_line_start {
            piece.strip_prefix(b".").unwrap_or(&piece)
        } else {
            &piece[..]
        };
        data.size = data
            .size
            .saturating_add(text.len() + if line_end { 2 } else { 0 });
        if data.size > size_limit {
            // Keep reading to the dot, but stop keeping the bytes.
            data.too_big = true;
            data.content = Vec::new();
        } else if !data.too_big {
            data.content.extend_from_slice(text);
            if line_end {
                data.content.extend_from_slice(b"\r\n");
            }
        }
        data.at_line_start = line_end;
        true
    }

    /// Raw chunk bytes after BDAT. Returns whether the chunk advanced.
    fn take_chunk(&mut self, out: &mut Vec<Output>) -> bool {
        let Phase::Chunk { remaining, last } = self.phase else {
            return false;
        };
        if remaining > 0 && self.input.is_empty() {
            return false;
        }
        let n = remaining.min(self.input.len());
        let size_limit = self.settings.size_limit;
        if let Some(bdat) = self.bdat.as_mut() {
            bdat.size = bdat.size.saturating_add(n);
            if bdat.size > size_limit {
                bdat.too_big = true;
                bdat.content = Vec::new();
            } else if !bdat.failed && !bdat.too_big {
                bdat.content.extend_from_slice(&self.input[..n]);
            }
        }
        self.input.drain(..n);
        if remaining > n {
            self.phase = Phase::Chunk {
                remaining: remaining - n,
                last,
            };
            return true;
        }
        self.phase = Phase::Command;
        self.finish_chunk(n, last, out);
        true
    }

    fn handle_line(&mut self, line: Line, out: &mut Vec<Output>) {
        match std::mem::replace(&mut self.phase, Phase::Command) {
            Phase::Sasl(state) => {
                self.log(out, Direction::Client, redacted_sasl(&line.bytes));
                self.sasl_answer(state, &line.bytes, out);
            }
            Phase::Command => {
                // Postfix reads commands as C strings: a NUL ends the command.
                let end = memchr::memchr(0, &line.bytes).unwrap_or(line.bytes.len());
                let text = String::from_utf8_lossy(&line.bytes[..end]).into_owned();
                let stray = self.stray_answer(&text);
                if self.settings.log {
                    let mut shown = if stray {
                        "<SASL answer hidden>".to_owned()
                    } else {
                        redacted_command(&String::from_utf8_lossy(&line.bytes))
                    };
                    if line.truncated {
                        shown.push_str(&format!(" <cut at {LINE_LIMIT} bytes, the rest skipped>"));
                    }
                    out.push(Output::Log(Direction::Client, shown));
                }
                self.conduct.commands += 1;
                self.read_commands += 1;
                if self.settings.log && self.read_verbs.len() < GROUP_VERBS_SHOWN {
                    let verb = text.split_ascii_whitespace().next().unwrap_or("(empty)");
                    let verb: String = verb.chars().take(16).collect();
                    self.read_verbs.push(verb.to_ascii_uppercase());
                }
                if self.settings.smtputf8 && std::str::from_utf8(&line.bytes).is_err() {
                    // Postfix with smtputf8_enable protects its internals from malformed
                    // UTF-8: the line is refused before it is parsed.
                    self.answering = None;
                    self.reply(out, 500, "5.5.2 Error: bad UTF-8 syntax");
                } else {
                    self.command(&text, out);
                }
            }
            // `process` never takes lines in the other phases; kept total.
            phase => self.phase = phase,
        }
        self.note_credentials();
    }

    /// Keeps the activity's record of whose valid credentials arrived in step with the
    /// conduct's (a few entries at most).
    fn note_credentials(&mut self) {
        let valid = self
            .conduct
            .cleartext_credentials
            .iter()
            .rev()
            .find_map(|c| match &c.check {
                CredentialCheck::Valid(account) => Some(account.clone()),
                _ => None,
            });
        if let Some(account) = valid {
            self.activity.credentials_for(&account);
        }
    }

    /// Whether a command line is really the answer to an AUTH the server did not take: then
    /// it is judged as the credential it is (and the caller hides it from the log).
    fn stray_answer(&mut self, line: &str) -> bool {
        let Some(stray) = self.stray_sasl.as_mut() else {
            return false;
        };
        let word = line.split_ascii_whitespace().next().unwrap_or("");
        if word.is_empty()
            || line.split_ascii_whitespace().count() > 1
            || activity::verb_index(word).is_some()
        {
            self.stray_sasl = None;
            return false;
        }
        stray.left = stray.left.saturating_sub(1);
        let mechanism = stray.mechanism;
        let decoded = match sasl_decode(word.as_bytes()) {
            SaslDecoded::Bytes(decoded) => Some(decoded),
            _ => None,
        };
        let check = match (mechanism, stray.user.take(), decoded) {
            ("LOGIN", None, Some(user)) => {
                stray.user = Some(String::from_utf8_lossy(&user).into_owned());
                CredentialCheck::AccountNameOnly
            }
            ("LOGIN", Some(user), Some(password)) => {
                if self.settings.accounts.check(&user, &password) {
                    CredentialCheck::Valid(user)
                } else {
                    CredentialCheck::Invalid
                }
            }
            ("PLAIN", _, Some(decoded)) => match self.plain_account(&decoded) {
                Ok(account) => CredentialCheck::Valid(account),
                Err(_) => CredentialCheck::Invalid,
            },
            _ => CredentialCheck::Invalid,
        };
        if self.stray_sasl.as_ref().is_some_and(|s| s.left == 0) {
            self.stray_sasl = None;
        }
        if !self.tls {
            match self.conduct.cleartext_credentials.last_mut() {
                Some(last)
                    if last.check == CredentialCheck::AccountNameOnly
                        && check != CredentialCheck::AccountNameOnly =>
                {
                    last.check = check;
                }
                _ => self.conduct.credentials(mechanism, check, true),
            }
        }
        true
    }

    /// Remembers an AUTH the server did not take, so that answers sent after it anyway are
    /// recognised as credentials.
    fn expect_stray_answers(&mut self, args: &[&str]) {
        let mechanism = match args.first().map(|m| m.to_ascii_uppercase()).as_deref() {
            Some("PLAIN") => "PLAIN",
            Some("LOGIN") => "LOGIN",
            _ => return,
        };
        let user = match (mechanism, args.get(1)) {
            ("LOGIN", Some(initial)) => match sasl_decode(initial.as_bytes()) {
                SaslDecoded::Bytes(user) => Some(String::from_utf8_lossy(&user).into_owned()),
                _ => return,
            },
            (_, Some(_)) => return,
            _ => None,
        };
        let left = if mechanism == "LOGIN" && user.is_none() {
            2
        } else {
            1
        };
        self.stray_sasl = Some(StraySasl {
            mechanism,
            user,
            left,
        });
    }

    fn command(&mut self, line: &str, out: &mut Vec<Output>) {
        let mut words = smtp_words(line).into_iter();
        let Some(first) = words.next() else {
            self.reply(out, 500, "5.5.2 Error: bad syntax");
            return;
        };
        let args: Vec<&str> = words.collect();
        let verb = first.to_ascii_uppercase();
        if verb == EXERCISES_VERB
            && let Some(class) = self.settings.class.clone()
        {
            self.note_group(&verb);
            self.exercises(&class, &args, out);
            return;
        }
        if !self.knows(&verb) {
            if is_header(first) || is_forbidden(first) {
                // Postfix's answer to HTTP requests and mail text sent as commands.
                self.reply(out, 221, "2.7.0 Error: I can break rules, too. Goodbye.");
                self.close(out);
            } else {
                self.reply(out, 500, "5.5.2 Error: command not recognized");
            }
            return;
        }
        self.note_group(&verb);
        if self.conduct.starttls_refused && !self.tls && verb != "STARTTLS" {
            self.conduct.after_refusal(&verb);
        }
        if self.waits.contains(&WaitPurpose::InjectHold) && self.conduct.injection.is_none() {
            self.conduct.injection = Some(InjectionResponse::ActedOnInjectedReply(verb.clone()));
        }
        self.note_pipelining(&verb);
        if self.policy.require_tls
            && !self.tls
            && !matches!(
                verb.as_str(),
                "HELO" | "EHLO" | "LHLO" | "STARTTLS" | "NOOP" | "QUIT"
            )
        {
            if verb == "AUTH" {
                self.note_cleartext_auth(&args, true);
                self.expect_stray_answers(&args);
            }
            self.reply(out, 530, "5.7.0 Must issue a STARTTLS command first");
            return;
        }
        match verb.as_str() {
            "EHLO" | "LHLO" => self.ehlo(&verb, &args, out),
            "HELO" => self.helo(&args, out),
            "STARTTLS" => self.starttls(&args, out),
            "AUTH" => self.auth(&args, out),
            "MAIL" => self.mail(&args, out),
            "RCPT" => self.rcpt(&args, out),
            "DATA" => self.data(&args, out),
            "BDAT" => self.bdat(&args, out),
            "RSET" => {
                if args.is_empty() {
                    self.reset_transaction();
                    self.reply(out, 250, "2.0.0 Ok");
                } else {
                    self.reply(out, 501, "5.5.4 Syntax: RSET");
                }
            }
            "NOOP" => self.reply(out, 250, "2.0.0 Ok"),
            "VRFY" => self.vrfy(&args, out),
            "ETRN" => self.etrn(&args, out),
            _ => {
                self.reply(out, 221, "2.0.0 Bye");
                self.close(out);
            }
        }
        if matches!(
            verb.as_str(),
            "HELO" | "EHLO" | "LHLO" | "NOOP" | "RSET" | "VRFY" | "ETRN"
        ) {
            self.junk += 1;
            if self.junk > JUNK_LIMIT {
                self.errors += 1;
            }
        }
    }

    /// Postfix's "improper command pipelining": more input already waiting after a command
    /// that must end a pipelined group, or after any command when pipelining is not offered.
    fn note_pipelining(&mut self, verb: &str) {
        if self.conduct.improper_pipelining.is_some()
            || self.input.is_empty()
            || matches!(verb, "BDAT" | "STARTTLS" | "QUIT")
        {
            return;
        }
        let pipelining = self.esmtp && !self.off.contains(Extension::Pipelining);
        let ends_group = matches!(verb, "EHLO" | "HELO" | "LHLO" | "DATA" | "NOOP" | "VRFY");
        if ends_group || !pipelining {
            self.conduct.improper_pipelining = Some(verb.to_owned());
        }
    }

    /// Counts the command in its pipelined group (the commands sent before the reply to the
    /// one before them), for the activity; sets the verb being answered.
    fn note_group(&mut self, verb: &str) {
        let index = activity::verb_index(verb);
        self.answering = index;
        self.activity.verb(verb);
        if !self.in_group {
            self.group = [0; activity::VERBS.len()];
        }
        if let Some(index) = index {
            let count = self.group[index].saturating_add(1);
            self.group[index] = count;
            self.activity.pipelined(index, count);
        }
        self.in_group = !self.input.is_empty();
    }

    /// `XEXERCISES [STUDENT-ID]`: the lab's own extension, answered in every state (it is
    /// not mail): the exercises and the progress of the student this session belongs to.
    fn exercises(&mut self, class: &ClassBoard, args: &[&str], out: &mut Vec<Output>) {
        self.activity.exercise_queries = self.activity.exercise_queries.saturating_add(1);
        self.junk += 1;
        if self.junk > JUNK_LIMIT {
            self.errors += 1;
        }
        if args.len() > 1 {
            self.reply(out, 501, "5.5.4 Syntax: XEXERCISES [STUDENT-ID]");
            return;
        }
        let lines = class.exercises_reply(
            self.settings.profile,
            self.number,
            &self.activity,
            args.first().copied(),
        );
        self.reply_lines(out, 250, &lines);
    }

    fn offers(&self, extension: Extension) -> bool {
        !self.off.contains(extension)
    }

    /// Whether the verb is a command of this server: Postfix's, with LHLO in place of EHLO
    /// and HELO under LMTP (RFC 2033 §4.1).
    fn knows(&self, verb: &str) -> bool {
        match verb {
            "LHLO" => self.policy.lmtp,
            "EHLO" | "HELO" => !self.policy.lmtp,
            _ => KNOWN_COMMANDS.contains(&verb),
        }
    }

    /// Forgets the transaction (MAIL, RCPT, a BDAT transfer) and the declared size, as
    /// Postfix's `mail_reset` does.
    fn reset_transaction(&mut self) {
        self.transaction = None;
        self.bdat = None;
        self.declared_size = 0;
        self.auth_sender = false;
    }

    /// Whether SMTPUTF8 is on and offered on this session.
    fn utf8_offered(&self) -> bool {
        self.settings.smtputf8 && self.offers(Extension::SmtpUtf8)
    }

    fn ehlo(&mut self, verb: &str, args: &[&str], out: &mut Vec<Output>) {
        let Some(name) = args.first() else {
            let text = format!("Syntax: {verb} hostname");
            self.reply(out, 501, &text);
            return;
        };
        self.esmtp = true;
        self.reset_transaction();
        self.activity.name(name);
        self.grade_assign(name, out);
        self.off = triggers::extensions_turned_off(name);
        let mut lines = vec![self.settings.host.clone()];
        for extension in Extension::ALL {
            if !self.offers(extension) {
                continue;
            }
            match extension {
                Extension::Size => lines.push(format!("SIZE {}", self.settings.size_limit)),
                Extension::StartTls => {
                    if !self.tls && self.policy.starttls != StartTlsBehaviour::Absent {
                        self.conduct.starttls_offered = true;
                        lines.push("STARTTLS".to_owned());
                    }
                }
                Extension::Auth => {
                    if self.auth_enabled() {
                        lines.push(format!("AUTH {}", self.mechanisms()));
                    }
                }
                Extension::SmtpUtf8 => {
                    if self.settings.smtputf8 {
                        lines.push("SMTPUTF8".to_owned());
                    }
                }
                // The option is only for sessions protected by TLS (RFC 8689): offered
                // inside TLS only, as Postfix 3.11 and Exim do.
                Extension::RequireTls => {
                    if self.settings.requiretls && self.tls {
                        lines.push("REQUIRETLS".to_owned());
                    }
                }
                other => lines.push(other.keyword().to_owned()),
            }
        }
        if self.conduct.injected && self.tls && !self.hold_used {
            // The real reply waits a moment: a client that speaks meanwhile is answering
            // the forged one it already has.
            self.hold_used = true;
            self.wait(out, self.settings.inject_hold, WaitPurpose::InjectHold);
        }
        self.reply_lines(out, 250, &lines);
    }

    fn helo(&mut self, args: &[&str], out: &mut Vec<Output>) {
        if args.is_empty() {
            self.reply(out, 501, "Syntax: HELO hostname");
            return;
        }
        self.esmtp = false;
        self.off = Extensions::default();
        self.reset_transaction();
        if let Some(name) = args.first() {
            self.activity.name(name);
            self.grade_assign(name, out);
        }
        let host = self.settings.host.clone();
        self.reply(out, 250, &host);
    }

    /// The SASL mechanisms advertised: PLAIN and LOGIN everywhere AUTH is, as Postfix with
    /// Cyrus has them; submission and legacy add CRAM-MD5 and OAUTHBEARER, so each can be
    /// taught (and on legacy, its leak in cleartext shown).
    fn mechanisms(&self) -> &'static str {
        if self.external_offered() {
            "PLAIN LOGIN CRAM-MD5 OAUTHBEARER EXTERNAL"
        } else if self.teaches_more_mechanisms() {
            "PLAIN LOGIN CRAM-MD5 OAUTHBEARER"
        } else {
            "PLAIN LOGIN"
        }
    }

    /// EXTERNAL only where the handshake proved an identity (RFC 4422 appendix A).
    fn external_offered(&self) -> bool {
        self.tls && self.policy.asks_client_certificate && self.client_identity.is_some()
    }

    /// EXTERNAL: the certificate's identity, if it is an account and the authorization
    /// identity asked for (empty: the certificate's own) is the same.
    fn external(&mut self, authzid: &[u8], out: &mut Vec<Output>) {
        let identity = self.client_identity.clone().unwrap_or_default();
        if !authzid.is_empty() && authzid != identity.as_bytes() {
            self.auth_failed(out, "authorization failure");
        } else if self.settings.accounts.users().any(|user| user == identity) {
            self.authenticated(identity, out);
        } else {
            self.auth_failed(out, "no account for this client certificate");
        }
    }

    fn teaches_more_mechanisms(&self) -> bool {
        matches!(self.settings.profile, Profile::Submission | Profile::Legacy)
    }

    fn auth_enabled(&self) -> bool {
        let enabled = if self.tls {
            self.policy.auth_under_tls
        } else {
            self.policy.auth_in_cleartext
        };
        enabled && self.offers(Extension::Auth)
    }

    fn starttls(&mut self, args: &[&str], out: &mut Vec<Output>) {
        if !args.is_empty() {
            self.reply(out, 501, "5.5.4 Syntax: STARTTLS");
            return;
        }
        if self.tls {
            self.reply(out, 554, "5.5.1 Error: TLS already active");
            return;
        }
        let behaviour = self.policy.starttls;
        if behaviour == StartTlsBehaviour::Absent || !self.offers(Extension::StartTls) {
            self.reply(out, 502, "5.5.1 Error: command not implemented");
            return;
        }
        match behaviour {
            StartTlsBehaviour::Refuse => {
                self.conduct.starttls_refused = true;
                self.reply(out, 454, "4.7.0 TLS not available due to local problem");
            }
            StartTlsBehaviour::Inject => {
                // The forged reply rides in the same segment as the 220, exactly where an
                // attacker on the path would put it; a careful client drops the connection.
                let forged = format!(
                    "250-{}\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n",
                    self.settings.host
                );
                self.pace(out);
                self.activity
                    .reply(self.answering, 220, "2.0.0 Ready to start TLS");
                let mut bytes = b"220 2.0.0 Ready to start TLS\r\n".to_vec();
                bytes.extend_from_slice(forged.as_bytes());
                self.log(
                    out,
                    Direction::Server,
                    "220 2.0.0 Ready to start TLS".to_owned(),
                );
                self.log(
                    out,
                    Direction::Note,
                    format!(
                        "injected in the same write, in cleartext: {}",
                        forged.lines().collect::<Vec<_>>().join(" | ")
                    ),
                );
                out.push(Output::Send(bytes));
                out.push(Output::StartTls);
                self.conduct.injected = true;
                self.phase = Phase::AwaitingTls;
            }
            StartTlsBehaviour::Honest | StartTlsBehaviour::Absent => {
                self.reply(out, 220, "2.0.0 Ready to start TLS");
                out.push(Output::StartTls);
                self.phase = Phase::AwaitingTls;
            }
        }
    }

    /// Bytes that arrived in cleartext after the 220 to STARTTLS: never executed, but judged
    /// (an AUTH among them crossed the wire) and logged, redacted.
    fn cleartext_after_starttls(&mut self, bytes: &[u8], out: &mut Vec<Output>) {
        self.conduct.cleartext_after_starttls = self
            .conduct
            .cleartext_after_starttls
            .saturating_add(bytes.len());
        if self.conduct.injected && self.conduct.injection.is_none() {
            self.conduct.injection = Some(InjectionResponse::CleartextBeforeHandshake);
        }
        let text = String::from_utf8_lossy(bytes);
        let mut shown = Vec::new();
        for line in text.lines().take(8) {
            let line = line.trim_end_matches('\r');
            if self.stray_answer(line) {
                shown.push("<SASL answer hidden>".to_owned());
                continue;
            }
            if let CommandKind::Auth { .. } = classify(line) {
                let args: Vec<&str> = line.split_ascii_whitespace().skip(1).collect();
                self.note_cleartext_auth(&args, true);
                self.expect_stray_answers(&args);
            }
            let verb = line.split_ascii_whitespace().next().unwrap_or("");
            if KNOWN_COMMANDS.iter().any(|k| k.eq_ignore_ascii_case(verb)) {
                shown.push(redacted_command(line));
            } else {
                // Not a command: whatever it is (a password?), it stays off the projector.
                shown.push("<not a command, hidden>".to_owned());
            }
        }
        self.log(
            out,
            Direction::Note,
            format!(
                "{} cleartext byte(s) after STARTTLS discarded: {}",
                bytes.len(),
                shown.join(" | ")
            ),
        );
    }

    /// Records credentials carried by an AUTH command's initial response outside TLS.
    fn note_cleartext_auth(&mut self, args: &[&str], refused: bool) {
        if self.tls {
            return;
        }
        let (Some(mechanism), Some(response)) = (args.first(), args.get(1)) else {
            return;
        };
        if *response == "=" {
            return;
        }
        let check = match mechanism.to_ascii_uppercase().as_str() {
            "PLAIN" => match sasl_decode(response.as_bytes()) {
                SaslDecoded::Bytes(decoded) => match self.plain_account(&decoded) {
                    Ok(account) => CredentialCheck::Valid(account),
                    Err(_) => CredentialCheck::Invalid,
                },
                _ => CredentialCheck::Invalid,
            },
            "LOGIN" => CredentialCheck::AccountNameOnly,
            "OAUTHBEARER" => match sasl_decode(response.as_bytes()) {
                SaslDecoded::Bytes(decoded) => match self.oauthbearer_account(&decoded) {
                    (Some(account), true) => CredentialCheck::Valid(account),
                    _ => CredentialCheck::Invalid,
                },
                _ => CredentialCheck::Invalid,
            },
            _ => CredentialCheck::Invalid,
        };
        self.conduct.credentials(mechanism, check, refused);
    }

    fn auth(&mut self, args: &[&str], out: &mut Vec<Output>) {
        if !self.auth_enabled() {
            self.note_cleartext_auth(args, true);
            self.expect_stray_answers(args);
            self.reply(out, 503, "5.5.1 Error: authentication not enabled");
            return;
        }
        if self.transaction.is_some() {
            self.reply(out, 503, "5.5.1 Error: MAIL transaction in progress");
            return;
        }
        if self.authenticated_as.is_some() {
            self.reply(out, 503, "5.5.1 Error: already authenticated");
            return;
        }
        if args.is_empty() || args.len() > 2 {
            self.reply(out, 501, "5.5.4 Syntax: AUTH mechanism");
            return;
        }
        let mechanism = args[0].to_ascii_uppercase();
        match (mechanism.as_str(), args.get(1)) {
            // An empty initial response leaves Cyrus wanting more, and Postfix gives up.
            ("PLAIN" | "LOGIN", Some(&"=")) => {
                self.auth_failed(out, "another step is needed in authentication");
            }
            ("PLAIN", Some(response)) => {
                self.sasl_answer(SaslState::Plain, response.as_bytes(), out);
            }
            ("PLAIN", None) => {
                // Postfix sends the empty challenge with its trailing space.
                self.reply(out, 334, "");
                self.phase = Phase::Sasl(SaslState::Plain);
            }
            ("LOGIN", Some(user)) => {
                self.sasl_answer(SaslState::LoginUser, user.as_bytes(), out);
            }
            ("LOGIN", None) => {
                self.reply(out, 334, "VXNlcm5hbWU6");
                self.phase = Phase::Sasl(SaslState::LoginUser);
            }
            ("CRAM-MD5", None) if self.teaches_more_mechanisms() => {
                let nonce = format!("<{}.{}@{}>", random_hex(8), self.number, self.settings.host);
                self.reply(out, 334, &BASE64.encode(&nonce));
                self.phase = Phase::Sasl(SaslState::CramMd5 { nonce });
            }
            // CRAM-MD5 has no initial response: the client speaks second.
            ("CRAM-MD5", Some(_)) if self.teaches_more_mechanisms() => {
                self.auth_failed(out, "bad protocol / cancel");
            }
            ("OAUTHBEARER", Some(response)) if self.teaches_more_mechanisms() => {
                self.sasl_answer(SaslState::OAuthBearer, response.as_bytes(), out);
            }
            ("OAUTHBEARER", None) if self.teaches_more_mechanisms() => {
                self.reply(out, 334, "");
                self.phase = Phase::Sasl(SaslState::OAuthBearer);
            }
            ("EXTERNAL", Some(&"=")) if self.external_offered() => self.external(b"", out),
            ("EXTERNAL", Some(response)) if self.external_offered() => {
                self.sasl_answer(SaslState::External, response.as_bytes(), out);
            }
            ("EXTERNAL", None) if self.external_offered() => {
                self.reply(out, 334, "");
                self.phase = Phase::Sasl(SaslState::External);
            }
            _ => self.auth_failed(out, "no mechanism available"),
        }
    }

    /// CRAM-MD5 (RFC 2195): `user hex(HMAC-MD5(password, nonce))`. The server needs the
    /// password itself to check it.
    fn cram_md5_account(&self, nonce: &str, decoded: &[u8]) -> Option<String> {
        use hmac::{Hmac, Mac as _};
        let space = decoded.iter().rposition(|&b| b == b' ')?;
        let (user, digest) = (&decoded[..space], &decoded[space + 1..]);
        let user = std::str::from_utf8(user).ok()?;
        let password = self.settings.accounts.password(user)?;
        let mut mac = Hmac::<md5::Md5>::new_from_slice(password.expose().as_bytes()).ok()?;
        mac.update(nonce.as_bytes());
        let expected: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        super::accounts::same_bytes(expected.as_bytes(), &digest.to_ascii_lowercase())
            .then(|| user.to_owned())
    }

    /// OAUTHBEARER (RFC 7628 §3.1): the account from the GS2 header's `a=` and the token
    /// from `auth=Bearer`; `None` for the account when the message does not parse.
    fn oauthbearer_account(&self, decoded: &[u8]) -> (Option<String>, bool) {
        let text = String::from_utf8_lossy(decoded);
        let mut fields = text.split('\x01');
        let header = fields.next().unwrap_or_default();
        let user = header
            .split(',')
            .find_map(|part| part.strip_prefix("a="))
            .map(|name| name.replace("=2C", ",").replace("=3D", "="));
        let token = fields.find_map(|field| {
            field.strip_prefix("auth=").and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
        });
        let valid = match (&user, token) {
            (Some(user), Some(token)) => self.settings.accounts.check_token(user, token.as_bytes()),
            _ => false,
        };
        (user, valid)
    }

    fn auth_failed(&mut self, out: &mut Vec<Output>, why: &str) {
        let text = format!("5.7.8 Error: authentication failed: {why}");
        self.reply(out, 535, &text);
    }

    /// The account a PLAIN response authenticates, or the Cyrus SASL reply refusing it.
    fn plain_account(&self, decoded: &[u8]) -> Result<String, (u16, &'static str)> {
        let parts: Vec<&[u8]> = decoded.split(|&b| b == 0).collect();
        let [authzid, authcid, password] = parts.as_slice() else {
            return Err((535, "bad protocol / cancel"));
        };
        if authcid.is_empty() {
            return Err((454, "generic failure"));
        }
        let user = String::from_utf8_lossy(authcid).into_owned();
        if (!authzid.is_empty() && authzid != authcid)
            || !self.settings.accounts.check(&user, password)
        {
            return Err((535, "authentication failure"));
        }
        Ok(user)
    }

    fn sasl_answer(&mut self, state: SaslState, answer: &[u8], out: &mut Vec<Output>) {
        let answer = answer.trim_ascii();
        if answer == b"*" {
            self.reply(out, 501, "5.7.0 Authentication aborted");
            return;
        }
        let decoded = match sasl_decode(answer) {
            SaslDecoded::Bytes(decoded) => decoded,
            SaslDecoded::Incomplete => {
                self.auth_failed(out, "another step is needed in authentication");
                return;
            }
            SaslDecoded::Invalid => {
                self.auth_failed(out, "bad protocol / cancel");
                return;
            }
        };
        match state {
            SaslState::Plain => {
                let result = self.plain_account(&decoded);
                if !self.tls {
                    let check = match &result {
                        Ok(account) => CredentialCheck::Valid(account.clone()),
                        Err(_) => CredentialCheck::Invalid,
                    };
                    self.conduct.credentials("PLAIN", check, false);
                }
                match result {
                    Ok(account) => self.authenticated(account, out),
                    Err((454, why)) => {
                        let text = format!("4.7.0 Temporary authentication failure: {why}");
                        self.reply(out, 454, &text);
                    }
                    Err((_, why)) => self.auth_failed(out, why),
                }
            }
            SaslState::LoginUser => {
                let user = String::from_utf8_lossy(&decoded).into_owned();
                if !self.tls {
                    self.conduct
                        .credentials("LOGIN", CredentialCheck::AccountNameOnly, false);
                }
                self.reply(out, 334, "UGFzc3dvcmQ6");
                self.phase = Phase::Sasl(SaslState::LoginPassword { user });
            }
            SaslState::CramMd5 { nonce } => {
                let account = self.cram_md5_account(&nonce, &decoded);
                if !self.tls {
                    // No password crossed, but the user name did, and the answer can be
                    // attacked offline: a credential seen on the wire all the same.
                    let check = match &account {
                        Some(account) => CredentialCheck::Valid(account.clone()),
                        None => CredentialCheck::Invalid,
                    };
                    self.conduct.credentials("CRAM-MD5", check, false);
                }
                match account {
                    Some(account) => self.authenticated(account, out),
                    None => self.auth_failed(out, "authentication failure"),
                }
            }
            SaslState::OAuthBearer => {
                let (user, valid) = self.oauthbearer_account(&decoded);
                if !self.tls {
                    // A bearer token read off the wire works for anyone until it expires.
                    let check = match (&user, valid) {
                        (Some(user), true) => CredentialCheck::Valid(user.clone()),
                        _ => CredentialCheck::Invalid,
                    };
                    self.conduct.credentials("OAUTHBEARER", check, false);
                }
                match user {
                    Some(user) if valid => self.authenticated(user, out),
                    // RFC 7628 §3.2.2: the error as a JSON challenge; the client must answer
                    // %x01 before the final refusal.
                    _ => {
                        let error = r#"{"status":"invalid_token","scope":"mail"}"#;
                        self.reply(out, 334, &BASE64.encode(error));
                        self.phase = Phase::Sasl(SaslState::OAuthBearerRefused);
                    }
                }
            }
            SaslState::External => self.external(&decoded, out),
            SaslState::OAuthBearerRefused => {
                let why = if decoded.as_slice() == [1] {
                    "invalid token"
                } else {
                    "bad protocol / cancel"
                };
                self.auth_failed(out, why);
            }
            SaslState::LoginPassword { user } => {
                let valid = !user.is_empty() && self.settings.accounts.check(&user, &decoded);
                if !self.tls {
                    let check = if valid {
                        CredentialCheck::Valid(user.clone())
                    } else {
                        CredentialCheck::Invalid
                    };
                    // The account name recorded a step ago is now a whole credential.
                    match self.conduct.cleartext_credentials.last_mut() {
                        Some(last) if last.check == CredentialCheck::AccountNameOnly => {
                            last.check = check;
                        }
                        _ => self.conduct.credentials("LOGIN", check, false),
                    }
                }
                if valid {
                    self.authenticated(user, out);
                } else {
                    self.auth_failed(out, "authentication failure");
                }
            }
        }
    }

    fn authenticated(&mut self, user: String, out: &mut Vec<Output>) {
        self.log(
            out,
            Direction::Note,
            format!("authenticated as {}", escape_str(&user)),
        );
        if self.tls {
            self.conduct.authenticated_in_tls = Some(user.clone());
        }
        self.activity.authenticated(&user);
        self.authenticated_as = Some(user);
        self.reply(out, 235, "2.7.0 Authentication successful");
    }

    fn mail(&mut self, args: &[&str], out: &mut Vec<Output>) {
        if self.transaction.is_some() {
            self.reply(out, 503, "5.5.1 Error: nested MAIL command");
            return;
        }
        if self.bdat.is_some() {
            self.reply(out, 503, "5.5.1 Error: MAIL after BDAT");
            return;
        }
        let (from, params) = match path_argument(args, "FROM:") {
            Ok(path) => path,
            Err(PathError::Syntax) => {
                self.reply(out, 501, "5.5.4 Syntax: MAIL FROM:<address>");
                return;
            }
            Err(PathError::Address) => {
                self.reply(out, 501, "5.1.7 Bad sender address syntax");
                return;
            }
        };
        // SMTPUTF8 decides which addresses are valid, so it is looked for first (as Postfix
        // does): without it a domain must be ASCII (RFC 6531 §3.2).
        let smtputf8 =
            self.utf8_offered() && params.iter().any(|p| p.eq_ignore_ascii_case("SMTPUTF8"));
        if !smtputf8 && has_utf8_domain(&from) {
            self.reply(out, 501, "5.1.7 Bad sender address syntax");
            return;
        }
        let mut requiretls = false;
        let (mut ret, mut envid) = (false, false);
        for param in &params {
            let upper = param.to_ascii_uppercase();
            let value = param.split_once('=').map_or("", |(_, value)| value);
            let refusal = if upper == "BODY=8BITMIME" || upper == "BODY=7BIT" {
                None
            } else if upper.starts_with("SIZE=") {
                match declared_size(value) {
                    Err(()) => Some((501, "5.5.4 Bad message size syntax")),
                    Ok(None) => Some((552, "5.3.4 Message size exceeds file system imposed limit")),
                    Ok(Some(size)) => {
                        // Kept even when a later parameter refuses the command, as Postfix
                        // keeps it (until RSET, EHLO or the end of a transaction).
                        self.declared_size = size;
                        None
                    }
                }
            } else if upper == "SMTPUTF8" && self.utf8_offered() {
                None
            } else if upper == "REQUIRETLS"
                && self.settings.requiretls
                && self.tls
                && self.offers(Extension::RequireTls)
            {
                requiretls = true;
                None
            } else if upper.starts_with("AUTH=") {
                // RFC 4954 §5: the authenticated sender; only one. Postfix remembers it even
                // when the command is refused, until the transaction is reset.
                if value == "<>" {
                    None
                } else if std::mem::replace(&mut self.auth_sender, true) {
                    Some((503, "5.5.4 Error: multiple AUTH= options"))
                } else {
                    None
                }
            } else if upper.starts_with("RET=") || upper.starts_with("ENVID=") {
                let is_ret = upper.starts_with("RET=");
                if !self.offers(Extension::Dsn) {
                    Some((501, "5.7.1 DSN support is disabled"))
                } else if is_ret {
                    let valid = ["FULL", "HDRS"].contains(&value.to_ascii_uppercase().as_str());
                    (std::mem::replace(&mut ret, true) || !valid)
                        .then_some((501, "5.5.4 Bad RET parameter syntax"))
                } else {
                    (std::mem::replace(&mut envid, true) || !is_envid(value))
                        .then_some((501, "5.5.4 Bad ENVID parameter syntax"))
                }
            } else {
                let text = format!("5.5.4 Unsupported option: {param}");
                self.reply(out, 555, &text);
                return;
            };
            if let Some((code, text)) = refusal {
                self.reply(out, code, text);
                return;
            }
        }
        if self.declared_size > self.settings.size_limit as u64 {
            self.reply(out, 552, "5.3.4 Message size exceeds fixed limit");
            return;
        }
        self.transaction = Some(Transaction {
            from,
            parameters: params.iter().map(|p| (*p).to_owned()).collect(),
            smtputf8,
            requiretls,
            recipients: Vec::new(),
        });
        self.reply(out, 250, "2.1.0 Ok");
    }

    /// The restriction a recipient meets: the relaying rules (the fault triggers come after).
    /// The bare `postmaster` is always accepted, as RFC 5321 §4.5.1 requires and Postfix does.
    fn recipient_refusal(&self, recipient: &str) -> Option<(u16, String)> {
        if recipient.eq_ignore_ascii_case("postmaster") {
            return None;
        }
        if self.authenticated_as.is_none() {
            if self.policy.auth_required_for_mail {
                return Some((
                    554,
                    self.rejection(format!(
                        "5.7.1 <{recipient}>: Recipient address rejected: Access denied"
                    )),
                ));
            }
            // The grade profile is the MX of whatever test domain the sender delivers to.
            if !is_local(recipient) && self.settings.profile != Profile::Grade {
                return Some((
                    554,
                    self.rejection(format!("5.7.1 <{recipient}>: Relay access denied")),
                ));
            }
        }
        None
    }

    /// A restriction's refusal as Postfix's `smtpd_check_reject` words it: at most 510
    /// bytes with its code, and what it echoes made printable, a space for each byte that is
    /// not (a byte outside ASCII too, unless SMTPUTF8 support is on).
    fn rejection(&self, text: String) -> String {
        let utf8 = self.settings.smtputf8;
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            let printable = if c.is_ascii() {
                !c.is_ascii_control()
            } else {
                utf8 && !c.is_control()
            };
            if out.len() + c.len_utf8() > 506 {
                break;
            }
            if printable {
                out.push(c);
            } else {
                out.extend(std::iter::repeat_n(' ', c.len_utf8()));
            }
        }
        out
    }

    fn rcpt(&mut self, args: &[&str], out: &mut Vec<Output>) {
        if self.transaction.is_none() {
            self.reply(out, 503, "5.5.1 Error: need MAIL command");
            return;
        }
        if self.bdat.is_some() {
            self.reply(out, 503, "5.5.1 Error: RCPT after BDAT");
            return;
        }
        let (recipient, params) = match path_argument(args, "TO:") {
            Ok((recipient, _)) if recipient.is_empty() => {
                self.reply(out, 501, "5.1.3 Bad recipient address syntax");
                return;
            }
            Ok(path) => path,
            Err(PathError::Syntax) => {
                self.reply(out, 501, "5.5.4 Syntax: RCPT TO:<address>");
                return;
            }
            Err(PathError::Address) => {
                self.reply(out, 501, "5.1.3 Bad recipient address syntax");
                return;
            }
        };
        let smtputf8 = self.transaction.as_ref().is_some_and(|t| t.smtputf8);
        if !smtputf8 && has_utf8_domain(&recipient) {
            self.reply(out, 501, "5.1.3 Bad recipient address syntax");
            return;
        }
        let (mut notify, mut orcpt) = (false, false);
        for param in &params {
            let upper = param.to_ascii_uppercase();
            let value = param.split_once('=').map_or("", |(_, value)| value);
            let refusal = if upper.starts_with("NOTIFY=") || upper.starts_with("ORCPT=") {
                if !self.offers(Extension::Dsn) {
                    Some((501, "5.7.1 DSN support is disabled"))
                } else if upper.starts_with("NOTIFY=") {
                    (std::mem::replace(&mut notify, true) || !is_notify(value))
                        .then_some((501, "5.5.4 Error: Bad NOTIFY parameter syntax"))
                } else {
                    (std::mem::replace(&mut orcpt, true) || !is_orcpt(value))
                        .then_some((501, "5.5.4 Error: Bad ORCPT parameter syntax"))
                }
            } else {
                let text = format!("5.5.4 Unsupported option: {param}");
                self.reply(out, 555, &text);
                return;
            };
            if let Some((code, text)) = refusal {
                self.reply(out, code, text);
                return;
            }
        }
        let full = self
            .transaction
            .as_ref()
            .is_some_and(|t| t.recipients.len() >= RECIPIENT_LIMIT);
        if full {
            self.reply(out, 452, "4.5.3 Error: too many recipients");
            return;
        }
        if let Some((code, text)) = self.recipient_refusal(&recipient) {
            self.reply(out, code, &text);
            return;
        }
        if let Some(ticket) = &self.grade_ticket {
            let from = self
                .transaction
                .as_ref()
                .map_or(String::new(), |t| t.from.clone());
            self.grade_facts.envelope(&from, &recipient);
            if ticket.trial == Some(grade::Trial::TempFail) {
                self.grade_facts.tempfailed = self.grade_facts.tempfailed.saturating_add(1);
                let text = self.rejection(format!(
                    "4.7.1 <{recipient}>: Recipient address rejected: try again later (a temporary failure on purpose)"
                ));
                self.reply(out, 450, &text);
                return;
            }
        }
        let mut data_reply = None;
        match triggers::trigger(&recipient) {
            Some(Trigger::Rcpt(chosen)) => {
                let text = self.rejection(format!(
                    "{} <{recipient}>: Recipient address rejected: {}",
                    chosen.enhanced,
                    triggers::meaning(&chosen.enhanced)
                ));
                self.reply(out, chosen.code, &text);
                if chosen.code == 421 {
                    self.close(out);
                }
                return;
            }
            Some(Trigger::Greylist) => {
                let key = format!(
                    "greylist {} {} {}",
                    self.peer.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                    self.transaction
                        .as_ref()
                        .map_or(String::new(), |t| t.from.to_ascii_lowercase()),
                    recipient.to_ascii_lowercase()
                );
                if self.settings.seen.first_time(&key) {
                    let text = self.rejection(format!(
                        "4.7.1 <{recipient}>: Recipient address rejected: Greylisted, please try again later"
                    ));
                    self.reply(out, 450, &text);
                    return;
                }
            }
            Some(Trigger::Data(chosen)) => data_reply = Some(chosen),
            None => {}
        }
        if let Some(transaction) = self.transaction.as_mut() {
            transaction.recipients.push(Recipient {
                address: recipient,
                parameters: params.join(" "),
                data_reply,
            });
        }
        self.reply(out, 250, "2.1.5 Ok");
    }

    fn data(&mut self, args: &[&str], out: &mut Vec<Output>) {
        if self.bdat.is_some() {
            self.reply(out, 503, "5.5.1 Error: DATA after BDAT");
            return;
        }
        match &self.transaction {
            None => self.reply(out, 503, "5.5.1 Error: need RCPT command"),
            Some(t) if t.recipients.is_empty() => {
                self.reply(out, 554, "5.5.1 Error: no valid recipients");
            }
            Some(_) if !args.is_empty() => self.reply(out, 501, "5.5.4 Syntax: DATA"),
            Some(_) => {
                self.reply(out, 354, "End data with <CR><LF>.<CR><LF>");
                self.phase = Phase::Data(DataState {
                    content: Vec::new(),
                    size: 0,
                    too_big: false,
                    at_line_start: true,
                    after_bare_lf: false,
                });
            }
        }
    }

    fn bdat(&mut self, args: &[&str], out: &mut Vec<Output>) {
        let size = match args {
            [size] | [size, _] if size.bytes().all(|b| b.is_ascii_digit()) => size.parse().ok(),
            _ => None,
        };
        let last = match args.get(1) {
            None => Some(false),
            Some(word) if word.eq_ignore_ascii_case("LAST") => Some(true),
            Some(_) => None,
        };
        let (Some(size), Some(last)) = (size, last) else {
            // The chunk's end cannot be known: the session cannot go on.
            self.reply(out, 521, "5.5.4 Syntax: BDAT count [LAST]");
            self.close(out);
            return;
        };
        let chunking = self.offers(Extension::Chunking);
        let bdat = self.bdat.get_or_insert(Bdat {
            content: Vec::new(),
            size: 0,
            too_big: false,
            failed: false,
        });
        if !chunking {
            bdat.failed = true;
        }
        self.phase = Phase::Chunk {
            remaining: size,
            last,
        };
    }

    /// A whole chunk was read: answer it, and end the transfer after LAST.
    fn finish_chunk(&mut self, chunk: usize, last: bool, out: &mut Vec<Output>) {
        self.answering = activity::verb_index("BDAT");
        let Some(mut bdat) = self.bdat.take() else {
            return;
        };
        let refusal = if bdat.failed {
            Some(if self.offers(Extension::Chunking) {
                (
                    551,
                    format!("5.0.0 Discarded {chunk} bytes after earlier error"),
                )
            } else {
                (502, "5.5.1 Error: command not implemented".to_owned())
            })
        } else {
            match &self.transaction {
                None => Some((503, "5.5.1 Error: need RCPT command".to_owned())),
                Some(t) if t.recipients.is_empty() => {
                    Some((554, "5.5.1 Error: no valid recipients".to_owned()))
                }
                Some(_) if bdat.too_big => {
                    Some((552, "5.3.4 Message size exceeds fixed limit".to_owned()))
                }
                Some(_) => None,
            }
        };
        if let Some((code, text)) = refusal {
            self.reply(out, code, &text);
            if last {
                // The refused transfer is over, and its transaction with it.
                self.reset_transaction();
            } else {
                bdat.failed = true;
                self.bdat = Some(bdat);
            }
            return;
        }
        if !last {
            let text = format!("2.0.0 Ok: {} bytes", bdat.size);
            self.bdat = Some(bdat);
            self.reply(out, 250, &text);
            return;
        }
        let mut content = bdat.content;
        if !content.is_empty() && content.last() != Some(&b'\n') {
            content.extend_from_slice(b"\r\n");
        }
        let size = content.len();
        self.finish_message(
            content,
            |id| format!("Ok: {size} bytes queued as {id}"),
            out,
        );
    }

    fn finish_data(&mut self, data: DataState, out: &mut Vec<Output>) {
        self.answering = activity::verb_index("DATA");
        self.log(
            out,
            Direction::Client,
            format!("<message, {} bytes> .", data.size),
        );
        if data.too_big {
            self.reset_transaction();
            self.reply(out, 552, "5.3.4 Message size exceeds fixed limit");
            return;
        }
        self.finish_message(data.content, |id| format!("Ok: queued as {id}"), out);
    }

    /// The end of a message (the dot, or BDAT LAST): the reply a `data-` recipient chose, the
    /// `slow` profile's dropped first attempt, or delivery. `accepted` gives the text of the
    /// 250 for a queue ID, after its enhanced code. Under LMTP every accepted recipient gets
    /// its own reply, in the order of the RCPT commands (RFC 2033 §4.2).
    fn finish_message(
        &mut self,
        content: Vec<u8>,
        accepted: impl Fn(&str) -> String,
        out: &mut Vec<Output>,
    ) {
        let transaction = self.transaction.take();
        self.reset_transaction();
        let Some(transaction) = transaction else {
            self.reply(out, 503, "5.5.1 Error: need RCPT command");
            return;
        };
        if self.policy.lmtp {
            self.finish_lmtp(transaction, content, accepted, out);
            return;
        }
        if let Some(chosen) = transaction.data_reply().cloned() {
            let text = format!(
                "{} Error: message not accepted: {}",
                chosen.enhanced,
                triggers::meaning(&chosen.enhanced)
            );
            self.reply(out, chosen.code, &text);
            if chosen.code == 421 {
                self.close(out);
            }
            return;
        }
        if self.policy.slow {
            let mut recipients: Vec<String> = transaction
                .recipients
                .iter()
                .map(|r| r.address.to_ascii_lowercase())
                .collect();
            recipients.sort();
            let key = format!(
                "slow {} {} {}",
                self.peer.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                transaction.from.to_ascii_lowercase(),
                recipients.join(",")
            );
            if self.settings.seen.first_time(&key) {
                self.log(
                    out,
                    Direction::Note,
                    "dropped the connection at the end of the message, without a reply (slow: the first attempt of each message is dropped; the retry is accepted)".to_owned(),
                );
                self.close(out);
                return;
            }
        }
        let recipients = transaction.recipients.iter().collect();
        let id = self.deliver(&transaction, recipients, content, out);
        let text = format!("2.0.0 {}", accepted(&id));
        self.reply(out, 250, &text);
    }

    /// LMTP's end of a message: delivered to every recipient whose local part chose no other
    /// reply, then one reply per recipient, in order.
    fn finish_lmtp(
        &mut self,
        transaction: Transaction,
        content: Vec<u8>,
        accepted: impl Fn(&str) -> String,
        out: &mut Vec<Output>,
    ) {
        let delivered: Vec<&Recipient> = transaction
            .recipients
            .iter()
            .filter(|r| r.data_reply.is_none())
            .collect();
        let id = if delivered.is_empty() {
            String::new()
        } else {
            self.deliver(&transaction, delivered, content, out)
        };
        for recipient in &transaction.recipients {
            let address = &recipient.address;
            match &recipient.data_reply {
                None => {
                    let text = format!("2.0.0 <{address}> {}", accepted(&id));
                    self.reply(out, 250, &text);
                }
                Some(chosen) => {
                    let text = format!(
                        "{} <{address}>: Error: message not accepted: {}",
                        chosen.enhanced,
                        triggers::meaning(&chosen.enhanced)
                    );
                    self.reply(out, chosen.code, &text);
                    if chosen.code == 421 {
                        // A 421 ends the session: the recipients after it get no reply.
                        self.close(out);
                        return;
                    }
                }
            }
        }
    }

    /// Hands a message to the store for `recipients` and returns its queue ID.
    fn deliver(
        &mut self,
        transaction: &Transaction,
        recipients: Vec<&Recipient>,
        content: Vec<u8>,
        out: &mut Vec<Output>,
    ) -> String {
        self.messages += 1;
        self.junk = 0;
        let to: Vec<String> = recipients.iter().map(|r| r.address.clone()).collect();
        self.activity
            .delivered(&to, self.tls, self.authenticated_as.is_some());
        if self.tls {
            self.conduct.messages_in_tls += 1;
        } else {
            self.conduct.messages_in_cleartext += 1;
        }
        // Postfix-like queue IDs: upper-case hex, unique per lab run.
        let id = format!(
            "{:07X}{:03X}",
            self.number & 0xFFF_FFFF,
            self.messages & 0xFFF
        );
        out.push(Output::Deliver(Message {
            id: id.clone(),
            profile: self.settings.profile,
            from: transaction.from.clone(),
            to,
            recipient_parameters: recipients.iter().map(|r| r.parameters.clone()).collect(),
            parameters: transaction.parameters.clone(),
            smtputf8: transaction.smtputf8,
            requiretls: transaction.requiretls,
            data: content,
            authenticated_as: self.authenticated_as.clone(),
            tls: self.tls,
        }));
        id
    }

    fn vrfy(&mut self, args: &[&str], out: &mut Vec<Output>) {
        // RFC 6531 §3.7.4.1: `VRFY address SMTPUTF8` allows a UTF-8 address.
        let (args, smtputf8) = match args.split_last() {
            Some((last, rest)) if self.utf8_offered() && last.eq_ignore_ascii_case("SMTPUTF8") => {
                (rest, true)
            }
            _ => (args, false),
        };
        match args {
            [] => {
                // Postfix names the option wherever SMTPUTF8 support is on.
                let text = if self.settings.smtputf8 {
                    "5.5.4 Syntax: VRFY address [SMTPUTF8]"
                } else {
                    "5.5.4 Syntax: VRFY address"
                };
                self.reply(out, 501, text);
            }
            [address] => {
                let bare = address
                    .strip_prefix('<')
                    .and_then(|a| a.strip_suffix('>'))
                    .unwrap_or(address);
                if !smtputf8 && has_utf8_domain(bare) {
                    self.reply(out, 501, "5.1.3 Bad recipient address syntax");
                } else if let Some((code, text)) = self.recipient_refusal(bare) {
                    self.reply(out, code, &text);
                } else {
                    // Never confirm accounts: Postfix answers 252 for every address it would
                    // take mail for.
                    let text = format!("2.0.0 {address}");
                    self.reply(out, 252, &text);
                }
            }
            _ => self.reply(out, 501, "5.1.3 Bad recipient address syntax"),
        }
    }

    fn etrn(&mut self, args: &[&str], out: &mut Vec<Output>) {
        match args {
            [domain] => {
                let domain = domain.trim_start_matches(['@', '#']);
                let text = format!("<{domain}>: service unavailable");
                self.reply(out, 459, &text);
            }
            _ => self.reply(out, 500, "Syntax: ETRN domain"),
        }
    }

    fn close(&mut self, out: &mut Vec<Output>) {
        self.phase = Phase::Closed;
        out.push(Output::Close);
    }

    fn wait(&mut self, out: &mut Vec<Output>, duration: Duration, purpose: WaitPurpose) {
        if duration.is_zero() {
            if purpose == WaitPurpose::InjectHold {
                // No time to speak in: judged by what the client sends next, like the rest.
                self.waits.push_back(purpose);
                out.push(Output::Wait(duration));
            }
            return;
        }
        self.waits.push_back(purpose);
        out.push(Output::Wait(duration));
    }

    /// The waits before a reply: the error tarpit, and the `slow` profile's delay.
    fn pace(&mut self, out: &mut Vec<Output>) {
        if self.errors >= SOFT_ERROR_LIMIT {
            self.wait(out, self.settings.error_sleep, WaitPurpose::Pace);
        }
        if self.policy.slow {
            self.wait(out, self.settings.slow.reply, WaitPurpose::Pace);
        }
    }

    fn reply(&mut self, out: &mut Vec<Output>, code: u16, text: &str) {
        self.pace(out);
        let text = self.without_enhanced_code(text);
        self.activity.reply(self.answering, code, text);
        let line = if text.is_empty() && code != 334 {
            code.to_string()
        } else {
            format!("{code} {text}")
        };
        self.emit(out, line);
        if code >= 400 {
            self.errors += 1;
        }
    }

    /// With ENHANCEDSTATUSCODES turned off, replies lose their `d.d.d` prefix (as Postfix
    /// does when the keyword is discarded).
    fn without_enhanced_code<'t>(&self, text: &'t str) -> &'t str {
        if self.offers(Extension::EnhancedStatusCodes) {
            return text;
        }
        let (code, rest) = text.split_once(' ').unwrap_or((text, ""));
        let parts: Vec<&str> = code.split('.').collect();
        let enhanced = parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if enhanced { rest } else { text }
    }

    fn emit(&mut self, out: &mut Vec<Output>, line: String) {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.log(out, Direction::Server, line);
        out.push(Output::Send(bytes));
    }

    /// Every log line is escaped here, at its source: replies can echo what the client sent
    /// (a recipient with control characters in it), and the log goes to a projector.
    fn log(&self, out: &mut Vec<Output>, direction: Direction, text: String) {
        if self.settings.log {
            out.push(Output::Log(direction, escape_str(&text)));
        }
    }

    fn reply_lines(&mut self, out: &mut Vec<Output>, code: u16, lines: &[String]) {
        self.pace(out);
        self.activity.reply(self.answering, code, "");
        let mut bytes = String::new();
        for (index, line) in lines.iter().enumerate() {
            let separator = if index + 1 == lines.len() { ' ' } else { '-' };
            bytes.push_str(&format!("{code}{separator}{line}\r\n"));
        }
        self.log(
            out,
            Direction::Server,
            format!("{code} {}", lines.join(" | ")),
        );
        out.push(Output::Send(bytes.into_bytes()));
        if code >= 400 {
            self.errors += 1;
        }
    }
}

/// Splits a command into words at spaces and tabs, as Postfix's tokenizer does: a quoted
/// string or an address in angle brackets is one word even with spaces inside.
fn smtp_words(line: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut start = None;
    let mut quoted = false;
    let mut bracketed = false;
    let mut escaped = false;
    for (index, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            ' ' | '\t' if !quoted && !bracketed => {
                if let Some(begin) = start.take() {
                    words.push(&line[begin..index]);
                }
                continue;
            }
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => bracketed = true,
            '>' if !quoted => bracketed = false,
            _ => {}
        }
        if start.is_none() {
            start = Some(index);
        }
    }
    if let Some(begin) = start {
        words.push(&line[begin..]);
    }
    words
}

/// `bytes` random bytes in hex (a CRAM-MD5 nonce's unpredictable part).
fn random_hex(bytes: usize) -> String {
    use ring::rand::SecureRandom as _;
    let mut buffer = vec![0u8; bytes];
    let _ = ring::rand::SystemRandom::new().fill(&mut buffer);
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes a SASL response as Cyrus SASL's `sasl_decode64` does: a length that is not a
/// multiple of four asks for more, characters outside base64 are a protocol error.
fn sasl_decode(text: &[u8]) -> SaslDecoded {
    if !text.len().is_multiple_of(4) {
        return SaslDecoded::Incomplete;
    }
    match BASE64.decode(text) {
        Ok(bytes) => SaslDecoded::Bytes(Zeroizing::new(bytes)),
        Err(_) => SaslDecoded::Invalid,
    }
}

/// Why a MAIL or RCPT argument was refused.
enum PathError {
    /// No `FROM:` / `TO:` or nothing after it: the command's syntax reply.
    Syntax,
    /// An address that does not parse: the bad-address reply.
    Address,
}

/// Parses the words after MAIL or RCPT: `FROM:<address> params` (also `FROM: <address>` and
/// the bracketless form, as Postfix accepts by default). Returns the address without its
/// brackets (and without an RFC 5321 source route) and the parameters.
fn path_argument<'a>(args: &[&'a str], keyword: &str) -> Result<(String, Vec<&'a str>), PathError> {
    let Some(first) = args.first() else {
        return Err(PathError::Syntax);
    };
    let prefix = first.get(..keyword.len()).ok_or(PathError::Syntax)?;
    if !prefix.eq_ignore_ascii_case(keyword) {
        return Err(PathError::Syntax);
    }
    let attached = &first[keyword.len()..];
    let (path, params) = if attached.is_empty() {
        match args.get(1) {
            Some(path) => (*path, &args[2..]),
            None => return Err(PathError::Syntax),
        }
    } else {
        (attached, &args[1..])
    };
    let inner = match path.strip_prefix('<') {
        Some(rest) => rest.strip_suffix('>').ok_or(PathError::Address)?,
        None => path,
    };
    // A source route (`@relay:user@domain`) is ignored, as RFC 5321 §C allows.
    let inner = match inner.strip_prefix('@') {
        Some(route) => route.split_once(':').map_or(inner, |(_, address)| address),
        None => inner,
    };
    let mut quoted = false;
    let mut escaped = false;
    for c in inner.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' | '>' | ' ' | '\t' if !quoted => return Err(PathError::Address),
            c if c.is_control() => return Err(PathError::Address),
            _ => {}
        }
    }
    if quoted {
        return Err(PathError::Address);
    }
    Ok((unquoted(inner), params.to_vec()))
}

/// An address in the form Postfix keeps and echoes: quotes and their escapes removed
/// (`"a b"@lab.test` is `a b@lab.test`).
fn unquoted(address: &str) -> String {
    let mut out = String::with_capacity(address.len());
    let mut quoted = false;
    let mut escaped = false;
    for c in address.chars() {
        if escaped {
            out.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c => out.push(c),
        }
    }
    out
}

/// Whether an address is for the lab's own domain (an address without a domain is local, as
/// Postfix appends its own).
fn is_local(address: &str) -> bool {
    address.rsplit_once('@').is_none_or(|(_, domain)| {
        domain
            .trim_end_matches('.')
            .eq_ignore_ascii_case(LOCAL_DOMAIN)
    })
}

/// The xtext of RFC 3461 §4 decoded as Postfix's `xtext_unquote` does: every `+` must start
/// a two-digit hex escape; other bytes stand for themselves. `None` when an escape is broken.
fn xtext_decode(value: &str) -> Option<Vec<u8>> {
    let bytes = value.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'+' {
            let hex = bytes.get(i + 1..i + 3)?;
            let text = std::str::from_utf8(hex).ok()?;
            decoded.push(u8::from_str_radix(text, 16).ok()?);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    Some(decoded)
}

/// `ENVID=` (RFC 3461 §4.4): xtext that decodes to printable ASCII, at least one character.
fn is_envid(value: &str) -> bool {
    xtext_decode(value).is_some_and(|d| !d.is_empty() && d.iter().all(|b| (0x20..0x7f).contains(b)))
}

/// `NOTIFY=NEVER` or a list of SUCCESS, FAILURE and DELAY (RFC 3461 §4.1), read as Postfix
/// reads it: empty items between commas are skipped, and at least one is needed.
fn is_notify(value: &str) -> bool {
    let words: Vec<String> = value
        .split(',')
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_uppercase)
        .collect();
    if words.iter().any(|w| w == "NEVER") {
        return words.iter().all(|w| w == "NEVER");
    }
    !words.is_empty()
        && words
            .iter()
            .all(|w| ["SUCCESS", "FAILURE", "DELAY"].contains(&w.as_str()))
}

/// `ORCPT=addr-type;address` (RFC 3461 §4.2): a type, and the address as xtext, or as the
/// `\x{HEX}` escapes of RFC 6533 when the type is `utf-8`.
fn is_orcpt(value: &str) -> bool {
    let Some((kind, address)) = value.split_once(';') else {
        return false;
    };
    if kind.is_empty() {
        return false;
    }
    if kind.eq_ignore_ascii_case("utf-8") {
        uxtext_valid(address)
    } else {
        xtext_decode(address).is_some()
    }
}

/// The `utf-8` address type's encoding (RFC 6533 §3), checked as Postfix's `uxtext_unquote`
/// does: each `\x{HEX}` is a code point up to U+10FFFF.
fn uxtext_valid(value: &str) -> bool {
    let mut rest = value;
    while let Some(at) = rest.find("\\x{") {
        let after = &rest[at + 3..];
        let Some(end) = after.find('}') else {
            return false;
        };
        let hex = &after[..end];
        let valid = hex.bytes().all(|b| b.is_ascii_hexdigit())
            && (hex.trim_start_matches('0').len() <= 6)
            && u32::from_str_radix(if hex.is_empty() { "0" } else { hex }, 16)
                .is_ok_and(|c| c <= 0x10_FFFF);
        if !valid {
            return false;
        }
        rest = &after[end + 1..];
    }
    true
}

/// A `SIZE=` value as Postfix reads it: `Err` when it is not all digits, `Ok(None)` when it
/// does not fit a file size (more than 2^63 - 1), the size otherwise.
fn declared_size(value: &str) -> Result<Option<u64>, ()> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    Ok(value
        .parse::<u64>()
        .ok()
        .filter(|&size| size <= i64::MAX as u64))
}

/// Whether the address has a domain that is not ASCII: without SMTPUTF8, a server may not
/// take it (RFC 6531 §3.2). A UTF-8 local part Postfix has always let through.
fn has_utf8_domain(address: &str) -> bool {
    address
        .rsplit_once('@')
        .is_some_and(|(_, domain)| !domain.is_ascii())
}

/// Postfix's `is_header`: a word that looks like a message header name with its colon
/// (`Subject:`, `From:x`): mail text sent as commands.
fn is_header(word: &str) -> bool {
    word.split_once(':')
        .is_some_and(|(name, _)| !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b)))
}

/// Postfix's default `smtpd_forbidden_commands`: CONNECT, GET, POST, and anything not starting
/// with a letter.
fn is_forbidden(word: &str) -> bool {
    ["CONNECT", "GET", "POST"]
        .iter()
        .any(|f| f.eq_ignore_ascii_case(word))
        || !word.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
}

/// The log form of a command line: AUTH keeps its mechanism and hides any initial response.
fn redacted_command(line: &str) -> String {
    // The client-side classifier is deliberately generous about what is AUTH (AUTH=PLAIN,
    // odd separators), so the log hides everything it would hide.
    match classify(line) {
        CommandKind::Auth {
            mechanism,
            has_initial_response,
        } => {
            let mechanism = escape_str(&mechanism);
            if has_initial_response {
                format!("AUTH {mechanism} <credentials hidden>")
            } else {
                format!("AUTH {mechanism}")
            }
        }
        _ => escape_str(line),
    }
}

/// The log form of an answer to a SASL challenge: only whether it was a cancellation.
fn redacted_sasl(line: &[u8]) -> String {
    if line.trim_ascii() == b"*" {
        "*".to_owned()
    } else {
        "<SASL answer hidden>".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::accounts::{DEFAULT_PASSWORD, DEFAULT_USER};
    use crate::lab::verdict::Level;

    fn settings(profile: Profile) -> ServerSettings {
        let mut settings =
            ServerSettings::new("lab.test", profile, Arc::new(Accounts::with_default()));
        settings.error_sleep = Duration::ZERO;
        settings
    }

    fn session_with(settings: ServerSettings) -> ServerSession {
        let tls = settings.profile.policy().implicit_tls;
        let mut session = ServerSession::new(Arc::new(settings), 7, tls);
        session.greeting();
        session.waits.clear();
        session
    }

    fn session(profile: Profile) -> ServerSession {
        session_with(settings(profile))
    }

    fn sent(outputs: &[Output]) -> String {
        outputs
            .iter()
            .filter_map(|o| match o {
                Output::Send(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
                _ => None,
            })
            .collect()
    }

    /// Sends a line and returns the replies, finishing every wait at once.
    fn say(session: &mut ServerSession, line: &str) -> String {
        let out = session.receive(format!("{line}\r\n").as_bytes());
        for output in &out {
            if matches!(output, Output::Wait(_)) {
                session.waited();
            }
        }
        sent(&out)
    }

    fn plain(user: &str, password: &str) -> String {
        BASE64.encode(format!("\0{user}\0{password}"))
    }

    fn log(outputs: &[Output]) -> String {
        outputs
            .iter()
            .filter_map(|o| match o {
                Output::Log(_, text) => Some(text.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn delivered(outputs: &[Output]) -> Option<Message> {
        outputs.iter().find_map(|o| match o {
            Output::Deliver(m) => Some(m.clone()),
            _ => None,
        })
    }

    #[test]
    fn the_log_hides_auth_in_every_spelling() {
        for line in [
            "AUTH PLAIN AHN0dWRlbnQAcHc=",
            "auth=plain AHN0dWRlbnQAcHc=",
            "AUTH\u{b}PLAIN AHN0dWRlbnQAcHc=",
            "  Auth\tPlain AHN0dWRlbnQAcHc=",
        ] {
            let shown = redacted_command(line);
            assert!(
                !shown.contains("AHN0dWRlbnQAcHc="),
                "{line:?} logged as {shown:?}"
            );
            assert!(shown.contains("<credentials hidden>"), "{shown:?}");
        }
        assert_eq!(redacted_command("AUTH LOGIN"), "AUTH LOGIN");
        assert_eq!(redacted_command("MAIL FROM:<a@b>"), "MAIL FROM:<a@b>");
    }

    #[test]
    fn banner() {
        let mut session = session(Profile::Mx);
        assert_eq!(sent(&session.greeting()), "220 lab.test ESMTP\r\n");
    }

    #[test]
    fn ehlo_lists_what_postfix_lists_in_its_order() {
        let mut s = session(Profile::Legacy);
        assert_eq!(
            say(&mut s, "EHLO client"),
            "250-lab.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n\
             250-STARTTLS\r\n250-AUTH PLAIN LOGIN CRAM-MD5 OAUTHBEARER\r\n\
             250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n\
             250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
        );
        // A long EHLO argument is fine: Postfix reads 2048 bytes.
        let long = format!("EHLO {}", "x".repeat(600));
        assert!(say(&mut s, &long).starts_with("250-lab.test\r\n"));
        assert_eq!(say(&mut s, "EHLO"), "501 Syntax: EHLO hostname\r\n");
        assert_eq!(say(&mut s, "HELO"), "501 Syntax: HELO hostname\r\n");
        assert_eq!(say(&mut s, "HELO a b"), "250 lab.test\r\n");
    }

    #[test]
    fn submission_refuses_everything_but_five_commands_before_tls() {
        let mut s = session(Profile::Submission);
        let ehlo = say(&mut s, "EHLO client");
        assert!(ehlo.contains("250-STARTTLS\r\n"), "{ehlo}");
        assert!(!ehlo.contains("AUTH"), "{ehlo}");
        let must = "530 5.7.0 Must issue a STARTTLS command first\r\n";
        for line in [
            "MAIL FROM:<a@lab.test>",
            "RCPT TO:<a@lab.test>",
            "DATA",
            "VRFY bob",
            "RSET",
            "BDAT 5",
            "ETRN lab.test",
            &format!("AUTH PLAIN {}", plain("x", "y")),
        ] {
            assert_eq!(say(&mut s, line), must, "{line}");
        }
        // BDAT's chunk was not read: the next line is a command again.
        assert_eq!(say(&mut s, "NOOP"), "250 2.0.0 Ok\r\n");
        assert_eq!(
            say(&mut s, "HELP"),
            "500 5.5.2 Error: command not recognized\r\n"
        );
        let out = s.receive(b"STARTTLS\r\n");
        assert_eq!(sent(&out), "220 2.0.0 Ready to start TLS\r\n");
        assert_eq!(out.last(), Some(&Output::StartTls));
        // The AUTH refused with 530 still carried a password across the wire.
        assert_eq!(s.conduct().cleartext_credentials.len(), 1);
        assert!(s.conduct().cleartext_credentials[0].refused);
    }

    #[test]
    fn full_submission_after_tls() {
        let mut s = session(Profile::Submission);
        say(&mut s, "EHLO client");
        say(&mut s, "STARTTLS");
        s.tls_started();
        let ehlo = say(&mut s, "EHLO client");
        assert!(
            ehlo.contains("250-AUTH PLAIN LOGIN CRAM-MD5 OAUTHBEARER\r\n")
                && !ehlo.contains("STARTTLS")
        );
        assert_eq!(
            say(&mut s, "STARTTLS"),
            "554 5.5.1 Error: TLS already active\r\n"
        );
        assert_eq!(
            say(&mut s, "MAIL FROM:<student@lab.test>"),
            "250 2.1.0 Ok\r\n"
        );
        assert_eq!(
            say(&mut s, "RCPT TO:<bob@lab.test>"),
            "554 5.7.1 <bob@lab.test>: Recipient address rejected: Access denied\r\n",
            "submission takes no recipient without AUTH"
        );
        say(&mut s, "RSET");
        assert_eq!(
            say(
                &mut s,
                &format!("AUTH PLAIN {}", plain(DEFAULT_USER, "wrong"))
            ),
            "535 5.7.8 Error: authentication failed: authentication failure\r\n"
        );
        let out = s.receive(
            format!("AUTH PLAIN {}\r\n", plain(DEFAULT_USER, DEFAULT_PASSWORD)).as_bytes(),
        );
        assert_eq!(sent(&out), "235 2.7.0 Authentication successful\r\n");
        assert!(log(&out).contains("AUTH PLAIN <credentials hidden>"));
        assert!(!log(&out).contains(&plain(DEFAULT_USER, DEFAULT_PASSWORD)));
        assert_eq!(
            say(&mut s, "AUTH LOGIN"),
            "503 5.5.1 Error: already authenticated\r\n"
        );
        assert_eq!(
            say(&mut s, "DATA"),
            "503 5.5.1 Error: need RCPT command\r\n"
        );
        assert_eq!(
            say(&mut s, "RCPT TO:<x@example.com>"),
            "503 5.5.1 Error: need MAIL command\r\n"
        );
        say(
            &mut s,
            "MAIL FROM:<student@lab.test> SIZE=100 BODY=8BITMIME",
        );
        assert_eq!(
            say(&mut s, "MAIL FROM:<student@lab.test>"),
            "503 5.5.1 Error: nested MAIL command\r\n"
        );
        assert_eq!(
            say(&mut s, "DATA"),
            "554 5.5.1 Error: no valid recipients\r\n"
        );
        assert_eq!(say(&mut s, "RCPT TO:<x@example.com>"), "250 2.1.5 Ok\r\n");
        assert_eq!(say(&mut s, "DATA x"), "501 5.5.4 Syntax: DATA\r\n");
        assert_eq!(
            say(&mut s, "DATA"),
            "354 End data with <CR><LF>.<CR><LF>\r\n"
        );
        let out = s.receive(b"Subject: hi\r\n\r\n..leading dot\r\n.\r\n");
        assert_eq!(sent(&out), "250 2.0.0 Ok: queued as 0000007001\r\n");
        let message = delivered(&out).expect("delivered");
        assert_eq!(message.data, b"Subject: hi\r\n\r\n.leading dot\r\n");
        assert_eq!(message.to, ["x@example.com"]);
        assert_eq!(message.authenticated_as.as_deref(), Some(DEFAULT_USER));
        assert!(message.tls);
        let out = s.receive(b"QUIT\r\n");
        assert_eq!(sent(&out), "221 2.0.0 Bye\r\n");
        assert!(s.is_closed());
        let verdict = s.verdict();
        assert_eq!(verdict.level, Level::Ok, "{verdict}");
        assert!(
            verdict
                .to_string()
                .contains("authenticated as student@lab.test")
        );
    }

    #[test]
    fn sasl_exchanges_answer_as_cyrus_does() {
        let mut s = session(Profile::Implicit);
        say(&mut s, "EHLO client");
        assert_eq!(say(&mut s, "AUTH PLAIN"), "334 \r\n");
        let out = s.receive(format!("{}\r\n", plain(DEFAULT_USER, DEFAULT_PASSWORD)).as_bytes());
        assert_eq!(sent(&out), "235 2.7.0 Authentication successful\r\n");
        assert!(log(&out).contains("<SASL answer hidden>"));

        let mut s = session(Profile::Implicit);
        say(&mut s, "EHLO client");
        assert_eq!(say(&mut s, "AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n");
        assert_eq!(
            say(&mut s, &BASE64.encode(DEFAULT_USER)),
            "334 UGFzc3dvcmQ6\r\n"
        );
        assert_eq!(
            say(&mut s, &BASE64.encode(DEFAULT_PASSWORD)),
            "235 2.7.0 Authentication successful\r\n"
        );

        let failed = |why: &str| format!("535 5.7.8 Error: authentication failed: {why}\r\n");
        let mut s = session(Profile::Implicit);
        say(&mut s, "EHLO client");
        for (lines, reply) in [
            (
                &["AUTH LOGIN", "*"][..],
                "501 5.7.0 Authentication aborted\r\n".to_owned(),
            ),
            (
                &["AUTH PLAIN", "%%%"],
                failed("another step is needed in authentication"),
            ),
            (&["AUTH PLAIN", "!!!!"], failed("bad protocol / cancel")),
            (&["AUTH PLAIN", ""], failed("bad protocol / cancel")),
            (
                &["AUTH PLAIN ="],
                failed("another step is needed in authentication"),
            ),
            (
                &["AUTH LOGIN ="],
                failed("another step is needed in authentication"),
            ),
            (&["AUTH PLAIN bm9udWw="], failed("bad protocol / cancel")),
            (&["AUTH CRAM-MD5"], failed("no mechanism available")),
            (&["AUTH"], "501 5.5.4 Syntax: AUTH mechanism\r\n".to_owned()),
            (
                &["AUTH PLAIN a b"],
                "501 5.5.4 Syntax: AUTH mechanism\r\n".to_owned(),
            ),
            (
                &["AUTH PLAIN AABwdw=="],
                "454 4.7.0 Temporary authentication failure: generic failure\r\n".to_owned(),
            ),
        ] {
            let mut replies = String::new();
            for line in lines {
                replies = say(&mut s, line);
            }
            assert_eq!(replies, reply, "{lines:?}");
        }
        // An empty account name is asked for its password, as Cyrus does.
        assert_eq!(say(&mut s, "AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n");
        assert_eq!(say(&mut s, ""), "334 UGFzc3dvcmQ6\r\n");
        assert_eq!(say(&mut s, "eA=="), failed("authentication failure"));
    }

    #[test]
    fn cram_md5_and_oauthbearer_are_taught_on_submission_and_legacy() {
        use hmac::{Hmac, Mac as _};
        let failed = |why: &str| format!("535 5.7.8 Error: authentication failed: {why}\r\n");
        for profile in [Profile::Submission, Profile::Legacy] {
            let mut s = session(profile);
            say(&mut s, "EHLO client");
            if profile == Profile::Submission {
                say(&mut s, "STARTTLS");
                s.tls_started();
            }
            let ehlo = say(&mut s, "EHLO client");
            assert!(
                ehlo.contains("250-AUTH PLAIN LOGIN CRAM-MD5 OAUTHBEARER\r\n"),
                "{ehlo}"
            );
            // CRAM-MD5: the HMAC-MD5 of the nonce keyed with the password.
            let challenge = say(&mut s, "AUTH CRAM-MD5");
            let nonce = BASE64
                .decode(challenge.trim_end().trim_start_matches("334 "))
                .expect("base64 nonce");
            assert!(nonce.starts_with(b"<") && nonce.ends_with(b"@lab.test>"));
            let answer = |password: &str| {
                let mut mac =
                    Hmac::<md5::Md5>::new_from_slice(password.as_bytes()).expect("any key");
                mac.update(&nonce);
                let hex: String = mac
                    .finalize()
                    .into_bytes()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                BASE64.encode(format!("{DEFAULT_USER} {hex}"))
            };
            assert_eq!(
                say(&mut s, &answer("wrong")),
                failed("authentication failure")
            );
            say(&mut s, "AUTH CRAM-MD5");
            let mut s2 = session(profile);
            say(&mut s2, "EHLO client");
            if profile == Profile::Submission {
                say(&mut s2, "STARTTLS");
                s2.tls_started();
                say(&mut s2, "EHLO client");
            }
            // OAUTHBEARER: a wrong token gets the JSON error challenge, %x01, then 535.
            let token = s2
                .settings
                .accounts
                .token(DEFAULT_USER)
                .expect("token")
                .expose()
                .to_owned();
            let bearer = |token: &str| {
                BASE64.encode(format!(
                    "n,a={DEFAULT_USER},\x01auth=Bearer {token}\x01\x01"
                ))
            };
            assert_eq!(
                say(&mut s2, &format!("AUTH OAUTHBEARER {}", bearer("nope"))),
                "334 eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJtYWlsIn0=\r\n"
            );
            assert_eq!(say(&mut s2, "AQ=="), failed("invalid token"));
            let out = s2.receive(format!("AUTH OAUTHBEARER {}\r\n", bearer(&token)).as_bytes());
            assert_eq!(sent(&out), "235 2.7.0 Authentication successful\r\n");
            assert!(!log(&out).contains(&token));
            let verdict = s2.verdict().to_string();
            if profile == Profile::Legacy {
                assert!(
                    verdict.contains("sent valid credentials for student@lab.test in cleartext (AUTH OAUTHBEARER)")
                        && verdict.contains("bearer token read off the wire"),
                    "{verdict}"
                );
            } else {
                assert!(!verdict.contains("cleartext"), "{verdict}");
            }
        }
        // The CRAM-MD5 answer with the right password, in cleartext on legacy: accepted, and
        // the verdict says what the answer still gives away.
        let mut s = session(Profile::Legacy);
        say(&mut s, "EHLO client");
        let challenge = say(&mut s, "AUTH CRAM-MD5");
        let nonce = BASE64
            .decode(challenge.trim_end().trim_start_matches("334 "))
            .expect("base64 nonce");
        let mut mac = Hmac::<md5::Md5>::new_from_slice(DEFAULT_PASSWORD.as_bytes()).expect("key");
        mac.update(&nonce);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            say(&mut s, &BASE64.encode(format!("{DEFAULT_USER} {hex}"))),
            "235 2.7.0 Authentication successful\r\n"
        );
        let verdict = s.verdict().to_string();
        assert!(
            verdict.contains("(AUTH CRAM-MD5)") && verdict.contains("cracked offline"),
            "{verdict}"
        );
        // Other profiles keep Postfix's PLAIN LOGIN only.
        let mut s = session(Profile::Implicit);
        assert!(say(&mut s, "EHLO client").contains("250-AUTH PLAIN LOGIN\r\n"));
        assert_eq!(
            say(&mut s, "AUTH CRAM-MD5"),
            failed("no mechanism available")
        );
    }

    #[test]
    fn external_takes_the_client_certificates_account_only() {
        let failed = |why: &str| format!("535 5.7.8 Error: authentication failed: {why}\r\n");
        let start = |identity: Option<&str>| {
            let mut s = session(Profile::Submission);
            say(&mut s, "EHLO client");
            say(&mut s, "STARTTLS");
            s.tls_started();
            let _ = s.client_certificate(identity.map(str::to_owned));
            let ehlo = say(&mut s, "EHLO client");
            (s, ehlo)
        };
        // No certificate: not offered, and refused as an unknown mechanism.
        let (mut s, ehlo) = start(None);
        assert!(!ehlo.contains("EXTERNAL"), "{ehlo}");
        assert_eq!(
            say(&mut s, "AUTH EXTERNAL ="),
            failed("no mechanism available")
        );
        // The workshop certificate: with an empty authorization identity, or its own.
        let (mut s, ehlo) = start(Some(DEFAULT_USER));
        assert!(
            ehlo.contains("AUTH PLAIN LOGIN CRAM-MD5 OAUTHBEARER EXTERNAL"),
            "{ehlo}"
        );
        assert_eq!(
            say(&mut s, "AUTH EXTERNAL ="),
            "235 2.7.0 Authentication successful\r\n"
        );
        let (mut s, _) = start(Some(DEFAULT_USER));
        assert_eq!(say(&mut s, "AUTH EXTERNAL"), "334 \r\n");
        assert_eq!(say(&mut s, ""), "235 2.7.0 Authentication successful\r\n");
        // Asking to be someone else, or a certificate for no account: refused.
        let (mut s, _) = start(Some(DEFAULT_USER));
        assert_eq!(
            say(
                &mut s,
                &format!("AUTH EXTERNAL {}", BASE64.encode("root@lab.test"))
            ),
            failed("authorization failure")
        );
        let (mut s, _) = start(Some("stranger"));
        assert_eq!(
            say(&mut s, "AUTH EXTERNAL ="),
            failed("no account for this client certificate")
        );
        // Other profiles never ask.
        assert!(!Profile::Implicit.policy().asks_client_certificate);
    }

    #[test]
    fn mx_relays_nothing_and_has_no_auth() {
        let mut s = session(Profile::Mx);
        let ehlo = say(&mut s, "EHLO client");
        assert!(ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"));
        assert_eq!(
            say(&mut s, "AUTH PLAIN"),
            "503 5.5.1 Error: authentication not enabled\r\n"
        );
        // MAIL needs no HELO in Postfix's default configuration.
        let mut s = session(Profile::Mx);
        say(&mut s, "MAIL FROM:<>");
        assert_eq!(
            say(&mut s, "RCPT TO:<x@example.com>"),
            "554 5.7.1 <x@example.com>: Relay access denied\r\n"
        );
        assert_eq!(say(&mut s, "RCPT TO:<bob@LAB.test>"), "250 2.1.5 Ok\r\n");
        assert_eq!(say(&mut s, "RCPT TO: <postmaster>"), "250 2.1.5 Ok\r\n");
        assert_eq!(
            say(
                &mut s,
                "RCPT TO:<\"a b\"@lab.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;a@lab.test"
            ),
            "250 2.1.5 Ok\r\n"
        );
        for (line, reply) in [
            ("RCPT TO:<>", "501 5.1.3 Bad recipient address syntax"),
            (
                "RCPT TO:<bob@lab.test",
                "501 5.1.3 Bad recipient address syntax",
            ),
            ("RCPT TO:", "501 5.5.4 Syntax: RCPT TO:<address>"),
            (
                "RCPT TO:<b@lab.test> FOO=1",
                "555 5.5.4 Unsupported option: FOO=1",
            ),
            (
                "RCPT TO:<b@lab.test> NOTIFY=SOMETIMES",
                "501 5.5.4 Error: Bad NOTIFY parameter syntax",
            ),
            ("VRFY bob", "252 2.0.0 bob"),
            ("VRFY <bob@lab.test>", "252 2.0.0 <bob@lab.test>"),
            (
                "VRFY x@example.com",
                "554 5.7.1 <x@example.com>: Relay access denied",
            ),
            ("VRFY a b", "501 5.1.3 Bad recipient address syntax"),
            ("ETRN", "500 Syntax: ETRN domain"),
            ("ETRN @lab.test", "459 <lab.test>: service unavailable"),
            ("RSET x", "501 5.5.4 Syntax: RSET"),
            ("NOOP x", "250 2.0.0 Ok"),
        ] {
            assert_eq!(say(&mut s, line), format!("{reply}\r\n"), "{line}");
        }
    }

    #[test]
    fn mail_parameters() {
        // As a Postfix with smtputf8_enable=no (the lab's SMTPUTF8 switched off).
        let mut settings = settings(Profile::Mx);
        settings.smtputf8 = false;
        let mut s = session_with(settings);
        say(&mut s, "EHLO c");
        for (line, reply) in [
            ("MAIL", "501 5.5.4 Syntax: MAIL FROM:<address>"),
            ("MAIL FROM:", "501 5.5.4 Syntax: MAIL FROM:<address>"),
            (
                "MAIL FROM:<a b@lab.test>",
                "501 5.1.7 Bad sender address syntax",
            ),
            (
                "MAIL FROM:<a@lab.test> FOO=bar",
                "555 5.5.4 Unsupported option: FOO=bar",
            ),
            (
                "MAIL FROM:<a@lab.test> BODY=BINARYMIME",
                "555 5.5.4 Unsupported option: BODY=BINARYMIME",
            ),
            (
                "MAIL FROM:<a@lab.test> SMTPUTF8",
                "555 5.5.4 Unsupported option: SMTPUTF8",
            ),
            (
                "MAIL FROM:<a@ex\u{e4}mple.com>",
                "501 5.1.7 Bad sender address syntax",
            ),
            (
                "MAIL FROM:<a@lab.test> SIZE=abc",
                "501 5.5.4 Bad message size syntax",
            ),
            (
                "MAIL FROM:<a@lab.test> SIZE=",
                "501 5.5.4 Bad message size syntax",
            ),
            (
                "MAIL FROM:<a@lab.test> SIZE",
                "555 5.5.4 Unsupported option: SIZE",
            ),
            (
                "MAIL FROM:<a@lab.test> RET=FOO",
                "501 5.5.4 Bad RET parameter syntax",
            ),
            (
                "MAIL FROM:<a@lab.test> RET=HDRS RET=FULL",
                "501 5.5.4 Bad RET parameter syntax",
            ),
            (
                "MAIL FROM:<a@lab.test> ENVID=a+2",
                "501 5.5.4 Bad ENVID parameter syntax",
            ),
            (
                "MAIL FROM:<a@lab.test> ENVID=+00",
                "501 5.5.4 Bad ENVID parameter syntax",
            ),
            (
                "MAIL FROM:<a@lab.test> AUTH=<x> AUTH=<y>",
                "503 5.5.4 Error: multiple AUTH= options",
            ),
            (
                "MAIL FROM:<a@lab.test> REQUIRETLS",
                "555 5.5.4 Unsupported option: REQUIRETLS",
            ),
            (
                "MAIL FROM:<a@lab.test> SIZE=99999999999999999999",
                "552 5.3.4 Message size exceeds file system imposed limit",
            ),
            // The limit is checked after every parameter was read.
            (
                "MAIL FROM:<a@lab.test> SIZE=99999999 FOO=1",
                "555 5.5.4 Unsupported option: FOO=1",
            ),
            // ... but the size it declared stays, as on Postfix, until RSET.
            (
                "MAIL FROM:<a@lab.test>",
                "552 5.3.4 Message size exceeds fixed limit",
            ),
            ("RSET", "250 2.0.0 Ok"),
            (
                "MAIL FROM:<a@lab.test> BODY=8BITMIME RET=HDRS ENVID=a=b+2B AUTH=<>",
                "250 2.1.0 Ok",
            ),
        ] {
            assert_eq!(say(&mut s, line), format!("{reply}\r\n"), "{line}");
        }
    }

    /// SMTPUTF8 on (the default), as Postfix with smtputf8_enable=yes answers (seen on 3.7).
    #[test]
    fn smtputf8_allows_utf8_domains_only_where_declared() {
        let mut s = session(Profile::Mx);
        assert!(say(&mut s, "EHLO ex\u{e4}mple").contains("250-SMTPUTF8\r\n"));
        for (line, reply) in [
            ("VRFY", "501 5.5.4 Syntax: VRFY address [SMTPUTF8]"),
            ("VRFY bob SMTPUTF8", "252 2.0.0 bob"),
            (
                "VRFY bob@ex\u{e4}mple.com",
                "501 5.1.3 Bad recipient address syntax",
            ),
            (
                "VRFY bob@ex\u{e4}mple.com SMTPUTF8",
                "554 5.7.1 <bob@ex\u{e4}mple.com>: Relay access denied",
            ),
            (
                "MAIL FROM:<a@ex\u{e4}mple.com>",
                "501 5.1.7 Bad sender address syntax",
            ),
            // A UTF-8 local part was always let through.
            ("MAIL FROM:<j\u{f6}s\u{e9}@lab.test>", "250 2.1.0 Ok"),
            (
                "RCPT TO:<b@ex\u{e4}mple.com>",
                "501 5.1.3 Bad recipient address syntax",
            ),
            ("RCPT TO:<\u{fc}@lab.test>", "250 2.1.5 Ok"),
            ("RSET", "250 2.0.0 Ok"),
            ("MAIL FROM:<a@ex\u{e4}mple.com> SMTPUTF8", "250 2.1.0 Ok"),
            (
                "RCPT TO:<b@l\u{e4}b.test>",
                "554 5.7.1 <b@l\u{e4}b.test>: Relay access denied",
            ),
            ("RCPT TO:<b@lab.test>", "250 2.1.5 Ok"),
            ("RSET", "250 2.0.0 Ok"),
            // The declaration lasts for its transaction only.
            (
                "MAIL FROM:<a@ex\u{e4}mple.com> SMTPUTF8 FOO=1",
                "555 5.5.4 Unsupported option: FOO=1",
            ),
            (
                "MAIL FROM:<a@ex\u{e4}mple.com>",
                "501 5.1.7 Bad sender address syntax",
            ),
        ] {
            assert_eq!(say(&mut s, line), format!("{reply}\r\n"), "{line}");
        }
        // Lines that are not UTF-8 are refused before they are read as commands.
        let out = s.receive(b"NOOP \xff\r\nMAIL FROM:<a\xe9@lab.test>\r\n");
        assert_eq!(
            sent(&out),
            "500 5.5.2 Error: bad UTF-8 syntax\r\n500 5.5.2 Error: bad UTF-8 syntax\r\n"
        );
        // The delivered message says it was declared.
        say(
            &mut s,
            "MAIL FROM:<j\u{f6}s\u{e9}@ex\u{e4}mple.com> SMTPUTF8 BODY=8BITMIME",
        );
        say(
            &mut s,
            "RCPT TO:<\u{fc}@lab.test> NOTIFY=SUCCESS,FAILURE ORCPT=utf-8;\\x{FC}@lab.test",
        );
        say(&mut s, "DATA");
        let out = s.receive("Subject: gr\u{fc}\u{df}e\r\n\r\n\u{e4}\r\n.\r\n".as_bytes());
        let message = delivered(&out).expect("delivered");
        assert!(message.smtputf8 && !message.requiretls);
        assert_eq!(message.parameters, ["SMTPUTF8", "BODY=8BITMIME"]);
        assert_eq!(
            message.recipient_parameters,
            ["NOTIFY=SUCCESS,FAILURE ORCPT=utf-8;\\x{FC}@lab.test"]
        );
        assert_eq!(
            message.data,
            "Subject: gr\u{fc}\u{df}e\r\n\r\n\u{e4}\r\n".as_bytes()
        );
    }

    #[test]
    fn dsn_parameters_as_postfix_reads_them() {
        let mut s = session(Profile::Mx);
        say(&mut s, "EHLO c");
        say(&mut s, "MAIL FROM:<a@lab.test>");
        for (line, reply) in [
            ("RCPT TO:<b@lab.test> NOTIFY=SUCCESS,,DELAY", "250 2.1.5 Ok"),
            ("RCPT TO:<b@lab.test> NOTIFY=never", "250 2.1.5 Ok"),
            (
                "RCPT TO:<b@lab.test> NOTIFY=NEVER,DELAY",
                "501 5.5.4 Error: Bad NOTIFY parameter syntax",
            ),
            (
                "RCPT TO:<b@lab.test> NOTIFY=SUCCESS NOTIFY=DELAY",
                "501 5.5.4 Error: Bad NOTIFY parameter syntax",
            ),
            (
                "RCPT TO:<b@lab.test> NOTIFY=",
                "501 5.5.4 Error: Bad NOTIFY parameter syntax",
            ),
            (
                "RCPT TO:<b@lab.test> ORCPT=;x",
                "501 5.5.4 Error: Bad ORCPT parameter syntax",
            ),
            ("RCPT TO:<b@lab.test> ORCPT=rfc822;", "250 2.1.5 Ok"),
            (
                "RCPT TO:<b@lab.test> ORCPT=utf-8;a\\x{E9}@b",
                "250 2.1.5 Ok",
            ),
            (
                "RCPT TO:<b@lab.test> ORCPT=utf-8;a\\x{ZZ}@b",
                "501 5.5.4 Error: Bad ORCPT parameter syntax",
            ),
            (
                "RCPT TO:<b@lab.test> ORCPT=utf-8;a\\x{110000}@b",
                "501 5.5.4 Error: Bad ORCPT parameter syntax",
            ),
            (
                "RCPT TO:<b@lab.test> ORCPT=rfc822;a+2",
                "501 5.5.4 Error: Bad ORCPT parameter syntax",
            ),
            (
                "RCPT TO:<b@lab.test> ORCPT=rfc822;a ORCPT=rfc822;b",
                "501 5.5.4 Error: Bad ORCPT parameter syntax",
            ),
            (
                "RCPT TO:<b@lab.test> ORCPT",
                "555 5.5.4 Unsupported option: ORCPT",
            ),
        ] {
            assert_eq!(say(&mut s, line), format!("{reply}\r\n"), "{line}");
        }
        // With DSN turned off by the EHLO name, DSN parameters are refused as Postfix does.
        say(&mut s, "EHLO no-dsn.lab.test");
        assert_eq!(
            say(&mut s, "MAIL FROM:<a@lab.test> RET=FULL"),
            "501 5.7.1 DSN support is disabled\r\n"
        );
    }

    #[test]
    fn requiretls_is_offered_and_taken_inside_tls_only() {
        let mut s = session(Profile::Mx);
        assert!(!say(&mut s, "EHLO c").contains("REQUIRETLS"));
        assert_eq!(
            say(&mut s, "MAIL FROM:<a@lab.test> REQUIRETLS"),
            "555 5.5.4 Unsupported option: REQUIRETLS\r\n"
        );
        say(&mut s, "STARTTLS");
        s.tls_started();
        let ehlo = say(&mut s, "EHLO c");
        assert!(
            ehlo.ends_with("250-CHUNKING\r\n250 REQUIRETLS\r\n"),
            "{ehlo}"
        );
        assert_eq!(
            say(&mut s, "MAIL FROM:<a@lab.test> REQUIRETLS"),
            "250 2.1.0 Ok\r\n"
        );
        say(&mut s, "RCPT TO:<b@lab.test>");
        let out = s.receive(b"BDAT 4 LAST\r\nhi\r\n");
        let message = delivered(&out).expect("delivered");
        assert!(message.requiretls && message.tls);
        // Turned off by the lab's setting or by the EHLO name.
        let mut settings = settings(Profile::Mx);
        settings.requiretls = false;
        let mut s = session_with(settings);
        say(&mut s, "STARTTLS");
        s.tls_started();
        assert!(!say(&mut s, "EHLO c").contains("REQUIRETLS"));
        let mut s = session(Profile::Mx);
        say(&mut s, "STARTTLS");
        s.tls_started();
        assert!(!say(&mut s, "EHLO no-requiretls.lab.test").contains("REQUIRETLS"));
        assert_eq!(
            say(&mut s, "MAIL FROM:<a@lab.test> REQUIRETLS"),
            "555 5.5.4 Unsupported option: REQUIRETLS\r\n"
        );
    }

    #[test]
    fn lmtp_answers_lhlo_and_each_recipient() {
        let mut s = session(Profile::Lmtp);
        assert_eq!(sent(&s.greeting()), "220 lab.test LMTP\r\n");
        for verb in ["EHLO", "HELO"] {
            assert_eq!(
                say(&mut s, &format!("{verb} c")),
                "500 5.5.2 Error: command not recognized\r\n"
            );
        }
        assert_eq!(say(&mut s, "LHLO"), "501 Syntax: LHLO hostname\r\n");
        let lhlo = say(&mut s, "LHLO c");
        assert!(
            lhlo.starts_with("250-lab.test\r\n250-PIPELINING\r\n"),
            "{lhlo}"
        );
        assert!(
            lhlo.contains("250-STARTTLS\r\n") && !lhlo.contains("AUTH"),
            "{lhlo}"
        );
        // One group: the sender, three recipients (one refused at RCPT), the message.
        let out = s.receive(
            b"MAIL FROM:<a@lab.test>\r\nRCPT TO:<b@lab.test>\r\nRCPT TO:<x@example.com>\r\n\
              RCPT TO:<data-452@lab.test>\r\nRCPT TO:<c@lab.test>\r\nDATA\r\n",
        );
        assert!(sent(&out).ends_with("354 End data with <CR><LF>.<CR><LF>\r\n"));
        let out = s.receive(b"Subject: x\r\n\r\nhi\r\n.\r\n");
        assert_eq!(
            sent(&out),
            "250 2.0.0 <b@lab.test> Ok: queued as 0000007001\r\n\
             452 4.2.2 <data-452@lab.test>: Error: message not accepted: Mailbox full\r\n\
             250 2.0.0 <c@lab.test> Ok: queued as 0000007001\r\n"
        );
        let message = delivered(&out).expect("delivered");
        assert_eq!(message.to, ["b@lab.test", "c@lab.test"]);
        // BDAT LAST ends a message too: one reply per recipient.
        say(&mut s, "MAIL FROM:<a@lab.test>");
        say(&mut s, "RCPT TO:<b@lab.test>");
        say(&mut s, "RCPT TO:<data-550@lab.test>");
        let out = s.receive(b"BDAT 3 LAST\r\nhi\n");
        assert_eq!(
            sent(&out),
            "250 2.0.0 <b@lab.test> Ok: 3 bytes queued as 0000007002\r\n\
             550 5.1.1 <data-550@lab.test>: Error: message not accepted: User unknown in local recipient table\r\n"
        );
        // Every recipient refused: nothing is delivered.
        say(&mut s, "MAIL FROM:<a@lab.test>");
        say(&mut s, "RCPT TO:<data-451@lab.test>");
        say(&mut s, "DATA");
        let out = s.receive(b"hi\r\n.\r\n");
        assert!(delivered(&out).is_none());
        assert!(
            sent(&out).starts_with("451 4.3.0 <data-451@lab.test>: "),
            "{}",
            sent(&out)
        );
        // LHLO offered PIPELINING, and the group ended with DATA: pipelined as RFC 2920 allows.
        assert_eq!(s.conduct().improper_pipelining, None);
    }

    #[test]
    fn a_pipelined_group_is_logged_as_one() {
        let mut s = session(Profile::Mx);
        say(&mut s, "EHLO c");
        let out = s.receive(
            b"MAIL FROM:<a@lab.test>\r\nRCPT TO:<b@lab.test>\r\nRCPT TO:<x@example.com>\r\nDATA\r\n",
        );
        let lines: Vec<String> = out
            .iter()
            .filter_map(|o| match o {
                Output::Log(direction, text) => Some(format!("{direction:?} {text}")),
                _ => None,
            })
            .collect();
        assert_eq!(
            lines,
            [
                "Note pipelined group: 4 commands in one write (MAIL RCPT RCPT DATA)",
                "Client MAIL FROM:<a@lab.test>",
                "Client RCPT TO:<b@lab.test>",
                "Client RCPT TO:<x@example.com>",
                "Client DATA",
                "Server 250 2.1.0 Ok",
                "Server 250 2.1.5 Ok",
                "Server 554 5.7.1 <x@example.com>: Relay access denied",
                "Server 354 End data with <CR><LF>.<CR><LF>",
            ]
        );
        // The replies go out as they did, in order.
        assert_eq!(
            sent(&out),
            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n554 5.7.1 <x@example.com>: Relay access denied\r\n\
             354 End data with <CR><LF>.<CR><LF>\r\n"
        );
        // One command in a write is no group.
        let out = s.receive(b"hi\r\n.\r\n");
        assert!(!log(&out).contains("pipelined"), "{}", log(&out));
    }

    #[test]
    fn unknown_and_forbidden_commands() {
        let mut s = session(Profile::Mx);
        assert_eq!(
            say(&mut s, "EXPN bob"),
            "500 5.5.2 Error: command not recognized\r\n"
        );
        assert_eq!(say(&mut s, "  "), "500 5.5.2 Error: bad syntax\r\n");
        assert_eq!(say(&mut s, "\0NOOP"), "500 5.5.2 Error: bad syntax\r\n");
        for line in ["GET / HTTP/1.0", "Subject: hi", "123", "FROM:<a@b>", "."] {
            let mut s = session(Profile::Mx);
            assert_eq!(
                say(&mut s, line),
                "221 2.7.0 Error: I can break rules, too. Goodbye.\r\n",
                "{line}"
            );
            assert!(s.is_closed(), "{line}");
        }
    }

    #[test]
    fn legacy_and_strip_take_auth_in_cleartext_and_say_so() {
        for profile in [Profile::Legacy, Profile::Strip, Profile::RefuseTls] {
            let mut s = session(profile);
            let ehlo = say(&mut s, "EHLO client");
            assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{profile}");
            assert_eq!(ehlo.contains("STARTTLS"), profile != Profile::Strip);
            assert_eq!(
                say(
                    &mut s,
                    &format!("AUTH PLAIN {}", plain(DEFAULT_USER, DEFAULT_PASSWORD))
                ),
                "235 2.7.0 Authentication successful\r\n"
            );
            let verdict = s.verdict();
            assert_eq!(verdict.level, Level::Alarm, "{profile}");
            assert!(
                verdict
                    .to_string()
                    .contains("sent valid credentials for student@lab.test in cleartext"),
                "{verdict}"
            );
            assert!(!verdict.to_string().contains(DEFAULT_PASSWORD));
        }
        let mut s = session(Profile::Strip);
        assert_eq!(
            say(&mut s, "STARTTLS"),
            "502 5.5.1 Error: command not implemented\r\n"
        );
        let mut s = session(Profile::RefuseTls);
        assert_eq!(
            say(&mut s, "STARTTLS"),
            "454 4.7.0 TLS not available due to local problem\r\n"
        );
        say(&mut s, "EHLO again");
        say(&mut s, "AUTH LOGIN");
        say(&mut s, &BASE64.encode(DEFAULT_USER));
        say(&mut s, &BASE64.encode("wrong"));
        let line = s.verdict().to_string();
        assert!(
            line.starts_with("!! ATTACK WORKED: sent credentials in cleartext (AUTH LOGIN) to the refuse-tls profile; they were not valid"),
            "{line}"
        );
        assert!(
            line.contains("continued in cleartext after the refused STARTTLS (EHLO, AUTH)"),
            "{line}"
        );
    }

    #[test]
    fn inject_sends_a_forged_reply_and_judges_what_the_client_did() {
        let mut s = session(Profile::Inject);
        say(&mut s, "EHLO client");
        let out = s.receive(b"STARTTLS\r\n");
        let sends: Vec<_> = out
            .iter()
            .filter(|o| matches!(o, Output::Send(_)))
            .collect();
        assert_eq!(sends.len(), 1);
        let text = sent(&out);
        assert!(
            text.starts_with("220 2.0.0 Ready to start TLS\r\n250-lab.test\r\n"),
            "{text}"
        );
        assert_eq!(out.last(), Some(&Output::StartTls));

        // A client that took the forged reply for the answer to its EHLO inside TLS sends its
        // next command while the real one is held back.
        s.tls_started();
        let out = s.receive(b"EHLO client\r\n");
        assert!(out.iter().any(|o| matches!(o, Output::Wait(_))));
        s.receive(b"AUTH LOGIN\r\n");
        s.waited();
        assert_eq!(
            s.conduct().injection,
            Some(InjectionResponse::ActedOnInjectedReply("AUTH".into()))
        );
        assert!(
            s.verdict()
                .to_string()
                .starts_with("!! ATTACK WORKED: believed the injected reply: sent AUTH")
        );

        // A client that waits.
        let mut s = session(Profile::Inject);
        say(&mut s, "EHLO client");
        say(&mut s, "STARTTLS");
        s.tls_started();
        say(&mut s, "EHLO client");
        assert_eq!(
            s.conduct().injection,
            Some(InjectionResponse::WaitedForRealReply)
        );
        assert_eq!(s.verdict().level, Level::Ok);

        // A client that pipelines on in cleartext.
        let mut s = session(Profile::Inject);
        say(&mut s, "EHLO client");
        let out = s.receive(b"STARTTLS\r\nEHLO client\r\n");
        assert!(
            log(&out).contains("discarded: EHLO client"),
            "{}",
            log(&out)
        );
        assert_eq!(
            s.conduct().injection,
            Some(InjectionResponse::CleartextBeforeHandshake)
        );

        // A client that hangs up instead of starting TLS.
        let mut s = session(Profile::Inject);
        say(&mut s, "EHLO client");
        say(&mut s, "STARTTLS");
        s.tls_failed(TlsFailure::Closed);
        assert_eq!(
            s.conduct().injection,
            Some(InjectionResponse::ClosedBeforeHandshake)
        );
    }

    #[test]
    fn pipelined_commands_after_starttls_are_discarded_and_credentials_among_them_judged() {
        let mut s = session(Profile::Submission);
        say(&mut s, "EHLO client");
        let out = s.receive(
            format!(
                "STARTTLS\r\nAUTH PLAIN {}\r\n",
                plain(DEFAULT_USER, DEFAULT_PASSWORD)
            )
            .as_bytes(),
        );
        assert_eq!(sent(&out), "220 2.0.0 Ready to start TLS\r\n");
        let logged = log(&out);
        assert!(
            logged.contains("discarded: AUTH PLAIN <credentials hidden>"),
            "{logged}"
        );
        assert!(!logged.contains(&plain(DEFAULT_USER, DEFAULT_PASSWORD)));
        assert_eq!(
            s.conduct().cleartext_credentials[0].check,
            CredentialCheck::Valid(DEFAULT_USER.into())
        );
        s.tls_started();
        assert_eq!(say(&mut s, "NOOP"), "250 2.0.0 Ok\r\n");
    }

    #[test]
    fn answers_to_a_refused_auth_are_credentials_never_logged() {
        let user = BASE64.encode(DEFAULT_USER);
        let password = BASE64.encode(DEFAULT_PASSWORD);
        // Pipelined behind an AUTH LOGIN that submission refuses before TLS.
        let mut s = session(Profile::Submission);
        let out = s.receive(
            format!("EHLO c\r\nAUTH LOGIN\r\n{user}\r\n{password}\r\nQUIT\r\n").as_bytes(),
        );
        let logged = log(&out);
        assert!(
            !logged.contains(&user) && !logged.contains(&password),
            "{logged}"
        );
        assert_eq!(
            logged.matches("<SASL answer hidden>").count(),
            2,
            "{logged}"
        );
        assert!(
            sent(&out).contains("500 5.5.2 Error: command not recognized"),
            "as Postfix answers them"
        );
        let verdict = s.verdict().to_string();
        assert!(
            verdict.starts_with(
                "!! DANGER: sent valid credentials for student@lab.test in cleartext (AUTH LOGIN)"
            ),
            "{verdict}"
        );
        // Behind STARTTLS, discarded unread.
        let mut s = session(Profile::Mx);
        say(&mut s, "EHLO c");
        let plain = plain(DEFAULT_USER, DEFAULT_PASSWORD);
        let out =
            s.receive(format!("STARTTLS\r\nAUTH PLAIN\r\n{plain}\r\nsecret words\r\n").as_bytes());
        let logged = log(&out);
        assert!(
            !logged.contains(&plain) && !logged.contains("secret"),
            "{logged}"
        );
        assert!(
            logged.contains("AUTH PLAIN | <SASL answer hidden> | <not a command, hidden>"),
            "{logged}"
        );
        assert_eq!(
            s.conduct().cleartext_credentials[0].check,
            CredentialCheck::Valid(DEFAULT_USER.into())
        );
        // A command after a refused AUTH is a command again.
        let mut s = session(Profile::Mx);
        let out = s.receive(b"AUTH PLAIN\r\nNOOP\r\n");
        assert!(log(&out).contains("NOOP"));
        assert!(s.conduct().cleartext_credentials.is_empty());
    }

    #[test]
    fn long_lines_are_cut_as_postfix_cuts_them() {
        let mut s = session(Profile::Mx);
        let long = format!("NOOP {}\r\n", "x".repeat(3000));
        let out = s.receive(long.as_bytes());
        assert_eq!(sent(&out), "250 2.0.0 Ok\r\n");
        assert!(log(&out).contains("<cut at 2048 bytes, the rest skipped>"));
        assert_eq!(say(&mut s, "NOOP"), "250 2.0.0 Ok\r\n");
        // An endless line in small pieces: one reply, and bounded memory.
        let mut replies = String::new();
        for _ in 0..100 {
            replies.push_str(&sent(&s.receive(&[b'y'; 100])));
            assert!(s.input.len() <= LINE_LIMIT);
        }
        assert_eq!(replies, "500 5.5.2 Error: command not recognized\r\n");
        assert_eq!(
            say(&mut s, ""),
            "",
            "the end of the long line is not a command"
        );
        // Long lines in a message are kept whole.
        say(&mut s, "MAIL FROM:<a@lab.test>");
        say(&mut s, "RCPT TO:<b@lab.test>");
        say(&mut s, "DATA");
        let line = "z".repeat(5000);
        let out = s.receive(format!("{line}\r\n.\r\n").as_bytes());
        assert!(sent(&out).starts_with("250 2.0.0 Ok: queued as"));
        assert_eq!(
            delivered(&out).expect("delivered").data,
            format!("{line}\r\n").into_bytes()
        );
    }

    #[test]
    fn size_is_enforced() {
        let mut settings = settings(Profile::Mx);
        settings.size_limit = 100;
        let mut s = session_with(settings);
        say(&mut s, "EHLO c");
        assert_eq!(
            say(&mut s, "MAIL FROM:<a@lab.test> SIZE=101"),
            "552 5.3.4 Message size exceeds fixed limit\r\n"
        );
        // Postfix keeps the declared size after the refusal: the next MAIL, even without
        // SIZE, is refused again until RSET (seen on Postfix 3.7).
        assert_eq!(
            say(&mut s, "MAIL FROM:<a@lab.test>"),
            "552 5.3.4 Message size exceeds fixed limit\r\n"
        );
        assert_eq!(say(&mut s, "RSET"), "250 2.0.0 Ok\r\n");
        say(&mut s, "MAIL FROM:<a@lab.test>");
        say(&mut s, "RCPT TO:<b@lab.test>");
        say(&mut s, "DATA");
        for _ in 0..10 {
            s.receive(format!("{}\r\n", "z".repeat(50)).as_bytes());
        }
        assert_eq!(
            say(&mut s, "."),
            "552 5.3.4 Message size exceeds fixed limit\r\n"
        );
        assert_eq!(say(&mut s, "MAIL FROM:<a@lab.test>"), "250 2.1.0 Ok\r\n");
    }

    #[test]
    fn bdat_chunks() {
        let mut s = session(Profile::Mx);
        say(&mut s, "EHLO c");
        say(&mut s, "MAIL FROM:<a@lab.test>");
        say(&mut s, "RCPT TO:<bob@lab.test>");
        assert_eq!(
            sent(&s.receive(b"BDAT 5\r\nhello")),
            "250 2.0.0 Ok: 5 bytes\r\n"
        );
        assert_eq!(say(&mut s, "DATA"), "503 5.5.1 Error: DATA after BDAT\r\n");
        assert_eq!(
            say(&mut s, "MAIL FROM:<a@lab.test>"),
            "503 5.5.1 Error: nested MAIL command\r\n"
        );
        let out = s.receive(b"BDAT 2 LAST\r\nab");
        assert_eq!(sent(&out), "250 2.0.0 Ok: 9 bytes queued as 0000007001\r\n");
        assert_eq!(delivered(&out).expect("delivered").data, b"helloab\r\n");
        // The chunk may arrive in pieces, and may hold anything, line ends included.
        say(&mut s, "MAIL FROM:<a@lab.test>");
        say(&mut s, "RCPT TO:<bob@lab.test>");
        assert_eq!(sent(&s.receive(b"BDAT 6 last\r\nQU")), "");
        let out = s.receive(b"IT\r\n");
        assert_eq!(sent(&out), "250 2.0.0 Ok: 6 bytes queued as 0000007002\r\n");
        // Without recipients the chunk is read and refused; later chunks are discarded.
        say(&mut s, "MAIL FROM:<a@lab.test>");
        assert_eq!(
            sent(&s.receive(b"BDAT 3\r\nabc")),
            "554 5.5.1 Error: no valid recipients\r\n"
        );
        assert_eq!(
            sent(&s.receive(b"BDAT 2 LAST\r\nab")),
            "551 5.0.0 Discarded 2 bytes after earlier error\r\n"
        );
        assert_eq!(say(&mut s, "MAIL FROM:<a@lab.test>"), "250 2.1.0 Ok\r\n");
        assert_eq!(say(&mut s, "RSET"), "250 2.0.0 Ok\r\n");
        assert_eq!(
            sent(&s.receive(b"BDAT 1\r\nq")),
            "503 5.5.1 Error: need RCPT command\r\n"
        );
        // A count that cannot be read ends the session: the chunk's end is unknown.
        for bad in [
            "BDAT",
            "BDAT x",
            "BDAT 5 FOO",
            "BDAT -1",
            "BDAT 99999999999999999999999",
        ] {
            let mut s = session(Profile::Mx);
            assert_eq!(
                say(&mut s, bad),
                "521 5.5.4 Syntax: BDAT count [LAST]\r\n",
                "{bad}"
            );
            assert!(s.is_closed());
        }
    }

    #[test]
    fn fault_triggers() {
        let mut s = session(Profile::Mx);
        s.set_peer(IpAddr::from([127, 0, 0, 9]));
        say(&mut s, "EHLO c");
        say(&mut s, "MAIL FROM:<a@lab.test>");
        assert_eq!(
            say(&mut s, "RCPT TO:<rcpt-550-5.1.1@lab.test>"),
            "550 5.1.1 <rcpt-550-5.1.1@lab.test>: Recipient address rejected: User unknown in local recipient table\r\n"
        );
        assert_eq!(
            say(&mut s, "RCPT TO:<rcpt-452-4.2.2@lab.test>"),
            "452 4.2.2 <rcpt-452-4.2.2@lab.test>: Recipient address rejected: Mailbox full\r\n"
        );
        assert_eq!(
            say(&mut s, "RCPT TO:<greylist@lab.test>"),
            "450 4.7.1 <greylist@lab.test>: Recipient address rejected: Greylisted, please try again later\r\n"
        );
        assert_eq!(
            say(&mut s, "RCPT TO:<greylist@lab.test>"),
            "250 2.1.5 Ok\r\n",
            "the retry"
        );
        assert_eq!(
            say(&mut s, "RCPT TO:<data-554@lab.test>"),
            "250 2.1.5 Ok\r\n"
        );
        say(&mut s, "DATA");
        assert_eq!(
            sent(&s.receive(b"hi\r\n.\r\n")),
            "554 5.7.1 Error: message not accepted: Access denied\r\n"
        );
        // A 421 closes, as a real one does.
        say(&mut s, "MAIL FROM:<a@lab.test>");
        assert!(say(&mut s, "RCPT TO:<rcpt-421@lab.test>").starts_with("421 4.3.0 "));
        assert!(s.is_closed());
        // Relaying is checked first: a trigger does not open the relay.
        let mut s = session(Profile::Mx);
        say(&mut s, "MAIL FROM:<a@lab.test>");
        assert_eq!(
            say(&mut s, "RCPT TO:<rcpt-550@example.com>"),
            "554 5.7.1 <rcpt-550@example.com>: Relay access denied\r\n"
        );
    }

    #[test]
    fn ehlo_names_turn_extensions_off() {
        let mut s = session(Profile::Legacy);
        let ehlo = say(&mut s, "EHLO no-pipelining.no-chunking.no-auth.lab.test");
        assert!(
            !ehlo.contains("PIPELINING") && !ehlo.contains("CHUNKING") && !ehlo.contains("AUTH"),
            "{ehlo}"
        );
        assert!(ehlo.contains("STARTTLS"), "{ehlo}");
        assert_eq!(
            say(&mut s, "AUTH PLAIN"),
            "503 5.5.1 Error: authentication not enabled\r\n"
        );
        say(&mut s, "EHLO no-enhancedstatuscodes.no-starttls.lab.test");
        assert_eq!(say(&mut s, "NOOP"), "250 Ok\r\n");
        assert_eq!(
            say(&mut s, "STARTTLS"),
            "502 Error: command not implemented\r\n"
        );
        // Pipelining where it was not offered is noticed.
        let mut s = session(Profile::Mx);
        say(&mut s, "EHLO no-pipelining.lab.test");
        s.receive(b"MAIL FROM:<a@lab.test>\r\nRCPT TO:<b@lab.test>\r\n");
        assert_eq!(s.conduct().improper_pipelining.as_deref(), Some("MAIL"));
        assert_eq!(s.verdict().level, Level::Warning);
    }

    #[test]
    fn slow_waits_and_drops_the_first_attempt() {
        let settings = Arc::new(settings(Profile::Slow));
        let mut s = ServerSession::new(settings.clone(), 1, false);
        let out = s.greeting();
        assert_eq!(out.first(), Some(&Output::Wait(Duration::from_secs(2))));
        // Bytes before the greeting is out are noticed.
        s.receive(b"EHLO early\r\n");
        assert!(s.conduct().spoke_before_greeting);
        let session_run = |number| {
            let mut s = ServerSession::new(settings.clone(), number, false);
            s.greeting();
            s.waited();
            let out = s.receive(b"MAIL FROM:<a@lab.test>\r\n");
            assert!(out.contains(&Output::Wait(Duration::from_secs(1))));
            s.waited();
            say(&mut s, "RCPT TO:<b@lab.test>");
            say(&mut s, "DATA");
            let out = s.receive(b"hi\r\n.\r\n");
            (sent(&out), s.is_closed())
        };
        assert_eq!(
            session_run(2),
            (String::new(), true),
            "the first attempt is dropped"
        );
        let (reply, closed) = session_run(3);
        assert!(
            reply.starts_with("250 2.0.0 Ok: queued as") && !closed,
            "{reply}"
        );
    }

    #[test]
    fn too_many_errors_and_timeouts_close() {
        let mut s = session(Profile::Mx);
        let mut junk = String::new();
        for _ in 0..25 {
            junk.push_str("FOO\r\n");
        }
        let out = s.receive(junk.as_bytes());
        let text = sent(&out);
        assert_eq!(text.matches("500 5.5.2").count(), 20);
        assert!(
            text.ends_with("421 4.7.0 lab.test Error: too many errors\r\n"),
            "{text}"
        );
        assert_eq!(out.last(), Some(&Output::Close));
        assert!(s.receive(b"NOOP\r\n").is_empty());

        // With Postfix's error sleep, every reply after the tenth error waits first.
        let mut settings = settings(Profile::Mx);
        settings.error_sleep = ERROR_SLEEP;
        let mut s = session_with(settings);
        let out = s.receive(junk.as_bytes());
        assert_eq!(
            out.iter().filter(|o| matches!(o, Output::Wait(_))).count(),
            11,
            "the 11th to 20th error replies and the 421"
        );

        let mut s = session(Profile::Mx);
        let out = s.timed_out();
        assert_eq!(sent(&out), "421 4.4.2 lab.test Error: timeout exceeded\r\n");
        assert!(s.is_closed());
    }

    #[test]
    fn junk_commands_count_after_a_hundred() {
        let mut s = session(Profile::Mx);
        for _ in 0..100 {
            assert_eq!(say(&mut s, "NOOP"), "250 2.0.0 Ok\r\n");
        }
        assert_eq!(s.errors, 0);
        say(&mut s, "NOOP");
        assert_eq!(s.errors, 1);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: every profile, random bytes and fragments of commands.
        let pieces: [&[u8]; 14] = [
            b"EHLO x\r\n",
            b"STARTTLS\r\n",
            b"AUTH PLAIN\r\n",
            b"AUTH LOGIN =\r\n",
            b"MAIL FROM:<",
            b">\r\n",
            b"RCPT TO:<a@lab.test>\r\n",
            b"DATA\r\n",
            b".\r\n",
            b"\n",
            b"\0\xff*",
            b"=\r\n",
            b"BDAT 3\r\n",
            b"RCPT TO:<greylist@lab.test>\r\n",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for profile in Profile::ALL {
            let mut s = session(profile);
            for _ in 0..3000 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let piece = pieces[(seed % 14) as usize];
                let out = if seed.is_multiple_of(5) {
                    s.receive(&seed.to_le_bytes())
                } else {
                    s.receive(piece)
                };
                for output in out {
                    if matches!(output, Output::Wait(_)) {
                        s.waited();
                    }
                }
                if matches!(s.phase, Phase::AwaitingTls) {
                    s.tls_started();
                }
                let _ = s.verdict();
            }
        }
    }

    /// Found by the lab_server fuzz target: a reply that echoes a recipient with a control
    /// character in it reached the session's log unescaped.
    #[test]
    fn a_reply_echoing_control_characters_is_logged_escaped() {
        let mut session = session(Profile::Legacy);
        let out = session.receive(b"EHLO x\r\nVRFY L\x06\r\n");
        let logged = log(&out);
        assert!(logged.contains("Recipient address rejected"), "{logged}");
        assert!(logged.contains("\\x06"), "{logged}");
        assert!(
            !logged.chars().any(|c| c.is_control() && c != '\n'),
            "{logged:?}"
        );
    }
}

#[cfg(test)]
mod class_tests {
    use super::*;
    use crate::lab::classroom::Classroom;
    use crate::lab::exercise::Exercises;
    use crate::lab::roster::Roster;
    use crate::lab::verdict::Level;

    fn with_class(profile: Profile) -> ServerSession {
        let roster = Roster::parse("r", "alice\nbob\n").expect("roster");
        let board = ClassBoard::new(Classroom::new(
            roster,
            Exercises::builtin().expect("exercises"),
            vec![(Profile::Submission, 2587), (Profile::Mx, 2525)],
        ));
        let mut settings =
            ServerSettings::new("lab.test", profile, Arc::new(Accounts::with_default()));
        settings.error_sleep = Duration::ZERO;
        settings.class = Some(Arc::new(board));
        let mut session = ServerSession::new(Arc::new(settings), 3, false);
        session.greeting();
        session
    }

    fn say(session: &mut ServerSession, text: &str) -> String {
        session
            .receive(text.as_bytes())
            .iter()
            .filter_map(|o| match o {
                Output::Send(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn xexercises_is_answered_before_tls_and_changes_no_verdict() {
        let mut session = with_class(Profile::Submission);
        say(&mut session, "EHLO alice\r\n");
        let reply = say(&mut session, "XEXERCISES\r\n");
        assert!(
            reply.starts_with("250-Exercises for alice: 0 of 9 done\r\n"),
            "{reply}"
        );
        assert!(reply.contains("\r\n250 "), "{reply}");
        assert!(reply.lines().all(|l| l.len() <= 512), "{reply}");
        let reply = say(&mut session, "MAIL FROM:<alice@lab.test>\r\n");
        assert!(reply.starts_with("530 5.7.0"), "{reply}");
        let reply = say(&mut session, "xexercises bob\r\n");
        assert!(
            reply.starts_with("250-Exercises for bob: 0 of 9"),
            "{reply}"
        );
        // The 530 of this session already counts for alice.
        let reply = say(&mut session, "XEXERCISES\r\n");
        assert!(
            reply.contains("[done] Provoke and explain 530 5.7.0"),
            "{reply}"
        );
        assert_eq!(
            say(&mut session, "XEXERCISES a b\r\n"),
            "501 5.5.4 Syntax: XEXERCISES [STUDENT-ID]\r\n"
        );
        assert_eq!(session.verdict().level, Level::Ok);
        assert_eq!(session.activity().exercise_queries, 4);
    }

    #[test]
    fn without_a_class_xexercises_is_unknown_as_on_postfix() {
        let settings =
            ServerSettings::new("lab.test", Profile::Mx, Arc::new(Accounts::with_default()));
        let mut session = ServerSession::new(Arc::new(settings), 1, false);
        session.greeting();
        assert_eq!(
            say(&mut session, "XEXERCISES\r\n"),
            "500 5.5.2 Error: command not recognized\r\n"
        );
    }

    #[test]
    fn after_a_refused_starttls_asking_is_not_carrying_on() {
        let mut session = with_class(Profile::RefuseTls);
        say(&mut session, "EHLO bob\r\n");
        say(&mut session, "STARTTLS\r\n");
        say(&mut session, "XEXERCISES\r\n");
        say(&mut session, "QUIT\r\n");
        let verdict = session.verdict();
        assert_eq!(verdict.level, Level::Ok, "{verdict}");
    }

    #[test]
    fn the_activity_records_names_replies_groups_and_deliveries() {
        let mut session = with_class(Profile::Mx);
        say(&mut session, "EHLO alice.no-chunking.lab.test\r\n");
        // MAIL and three RCPTs in one write: one pipelined group; DATA waits.
        say(
            &mut session,
            "MAIL FROM:<a@lab.test>\r\nRCPT TO:<b@lab.test>\r\nRCPT TO:<c@lab.test>\r\nRCPT TO:<greylist@lab.test>\r\n",
        );
        say(&mut session, "RCPT TO:<d@lab.test>\r\n");
        say(&mut session, "DATA\r\n");
        say(&mut session, "Subject: x\r\n\r\nhi\r\n.\r\n");
        let activity = session.activity();
        assert_eq!(activity.names, vec!["alice.no-chunking.lab.test"]);
        let rcpt = activity::verb_index("RCPT").expect("verb");
        assert_eq!(activity.pipelined[rcpt], 3);
        assert!(
            activity
                .replies
                .iter()
                .any(|r| r.code == 450 && r.enhanced == Some([4, 7, 1]) && r.verb == Some(rcpt))
        );
        let data = activity::verb_index("DATA").expect("verb");
        assert!(
            activity
                .replies
                .iter()
                .any(|r| r.code == 250 && r.verb == Some(data))
        );
        assert_eq!(activity.deliveries.len(), 1);
        assert_eq!(
            activity.deliveries[0].recipients,
            vec!["b@lab.test", "c@lab.test", "d@lab.test"]
        );
        assert!(!activity.tls && activity.authenticated.is_none());
    }

    #[test]
    fn a_stray_answer_named_xexercises_is_a_command() {
        let mut session = with_class(Profile::Submission);
        say(&mut session, "EHLO bob\r\nAUTH LOGIN\r\n");
        let reply = say(&mut session, "XEXERCISES\r\n");
        assert!(reply.starts_with("250-"), "{reply}");
        assert!(session.conduct().cleartext_credentials.is_empty());
    }
}
