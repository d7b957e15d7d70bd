//! The server side of one SMTP session, sans-IO: bytes in, [`Output`]s out.
//!
//! The state machine never touches a socket or a clock. The tokio shell in the `listener`
//! module feeds it what it reads, performs what it asks (send these bytes, start
//! TLS now, close), and tells it when the client was silent too long. That keeps every reply
//! text and every limit testable byte for byte, and it means hostile input can only ever
//! produce a reply or a close, never a panic or an unbounded buffer.
//!
//! Texts and enhanced codes follow Postfix, so what students see here is what they will see on
//! a real server.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::accounts::Accounts;
use super::profile::{Policy, Profile, StartTlsBehaviour};
use crate::proto::command::{CommandKind, classify, split_verb};
use crate::proto::escape::escape_str;

/// Longest command line, CRLF included (RFC 5321 §4.5.3.1.4).
pub const COMMAND_LINE_LIMIT: usize = 512;
/// Longest message text line, CRLF included (RFC 5321 §4.5.3.1.6).
pub const TEXT_LINE_LIMIT: usize = 1000;
/// The message size advertised with SIZE and enforced (Postfix's default `message_size_limit`).
pub const SIZE_LIMIT: usize = 10_240_000;
/// After this many error replies the session is closed (Postfix `smtpd_hard_error_limit`).
pub const ERROR_LIMIT: u32 = 20;
/// Most recipients in one transaction.
pub const RECIPIENT_LIMIT: usize = 100;
/// The domain the lab receives mail for; everything else is relaying.
pub const LOCAL_DOMAIN: &str = "lab.test";

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
    /// The accepted recipients.
    pub to: Vec<String>,
    /// The content with dot-stuffing removed and CRLF line ends.
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
    /// Start the TLS handshake now, then call [`ServerSession::tls_started`].
    StartTls,
    /// Close the connection.
    Close,
    /// One line for the session log.
    Log(Direction, String),
    /// A message was accepted.
    Deliver(Message),
}

/// A line taken from the input buffer.
enum Line {
    Complete(Vec<u8>),
    TooLong,
}

/// What the next client line means.
enum Phase {
    Command,
    /// After 354: text lines until a lone dot.
    Data(DataState),
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
    line_too_long: bool,
}

enum SaslState {
    Plain,
    LoginUser,
    LoginPassword { user: String },
}

struct Transaction {
    from: String,
    to: Vec<String>,
}

/// One server-side SMTP session.
pub struct ServerSession {
    settings: Arc<ServerSettings>,
    policy: Policy,
    number: u64,
    input: Vec<u8>,
    /// An overlong line is being skipped up to its end.
    discarding: bool,
    phase: Phase,
    tls: bool,
    greeted: bool,
    authenticated_as: Option<String>,
    transaction: Option<Transaction>,
    errors: u32,
    messages: u32,
}

impl ServerSession {
    /// A session numbered `number` (unique in the lab, used for queue IDs and the log).
    /// `tls` is true when the connection is already under implicit TLS.
    pub fn new(settings: Arc<ServerSettings>, number: u64, tls: bool) -> Self {
        Self {
            policy: settings.profile.policy(),
            settings,
            number,
            input: Vec::new(),
            discarding: false,
            phase: Phase::Command,
            tls,
            greeted: false,
            authenticated_as: None,
            transaction: None,
            errors: 0,
            messages: 0,
        }
    }

    /// The banner, sent when the connection opens (after the handshake under implicit TLS).
    pub fn greeting(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        let text = format!("{} ESMTP", self.settings.host);
        self.reply(&mut out, 220, &text);
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

    /// The client sent nothing for too long: 421 and close (Postfix's text).
    pub fn timed_out(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        if !self.is_closed() {
            let text = format!("4.4.2 {} Error: timeout exceeded", self.settings.host);
            self.reply(&mut out, 421, &text);
            self.close(&mut out);
        }
        out
    }

    /// The TLS handshake after STARTTLS succeeded. Everything learned before it is forgotten
    /// (RFC 3207 §4.2): the client must say EHLO again and authenticate again.
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.greeted = false;
        self.authenticated_as = None;
        self.transaction = None;
        self.phase = Phase::Command;
    }

    /// Feeds bytes received from the client and returns what to do.
    pub fn receive(&mut self, bytes: &[u8]) -> Vec<Output> {
        let mut out = Vec::new();
        match self.phase {
            Phase::Closed => return out,
            Phase::AwaitingTls => {
                out.push(Output::Log(
                    Direction::Note,
                    format!("{} cleartext byte(s) after STARTTLS discarded", bytes.len()),
                ));
                return out;
            }
            _ => {}
        }
        self.input.extend_from_slice(bytes);
        // Each pass consumes a line or ends the loop, and the buffer only shrinks inside it.
        loop {
            let limit = match self.phase {
                Phase::Data(_) => TEXT_LINE_LIMIT,
                Phase::Command | Phase::Sasl(_) => COMMAND_LINE_LIMIT,
                Phase::AwaitingTls | Phase::Closed => break,
            };
            let Some(line) = self.take_line(limit) else {
                break;
            };
            self.handle_line(line, &mut out);
            if matches!(self.phase, Phase::Command | Phase::Sasl(_)) && self.errors >= ERROR_LIMIT {
                let text = format!("4.7.0 {} Error: too many errors", self.settings.host);
                self.reply(&mut out, 421, &text);
                self.close(&mut out);
            }
        }
        if matches!(self.phase, Phase::AwaitingTls) && !self.input.is_empty() {
            // Commands pipelined behind STARTTLS arrived in cleartext, where anyone could have
            // added them: they must not be executed inside TLS (RFC 3207 §4.2, the server side
            // of the STARTTLS command injection class of bugs).
            out.push(Output::Log(
                Direction::Note,
                format!(
                    "{} cleartext byte(s) pipelined after STARTTLS discarded",
                    self.input.len()
                ),
            ));
            self.input.clear();
        }
        if self.is_closed() {
            self.input.clear();
        }
        out
    }

    /// Takes the next line (without its line end) from the input, if one is complete. A bare
    /// LF ends a line too, as in Postfix. A line longer than `limit` is reported once and its
    /// rest skipped, so an endless line costs at most `limit` bytes of memory.
    fn take_line(&mut self, limit: usize) -> Option<Line> {
        if self.discarding {
            match self.input.iter().position(|&b| b == b'\n') {
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
        let window = self.input.len().min(limit);
        match self.input[..window].iter().position(|&b| b == b'\n') {
            Some(end) => {
                let mut line: Vec<u8> = self.input.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                Some(Line::Complete(line))
            }
            None if self.input.len() >= limit => {
                // Drop what is known to be the overlong line; its end may be further on.
                self.input.drain(..limit);
                self.discarding = true;
                Some(Line::TooLong)
            }
            None => None,
        }
    }

    fn handle_line(&mut self, line: Line, out: &mut Vec<Output>) {
        match std::mem::replace(&mut self.phase, Phase::Command) {
            Phase::Data(mut data) => {
                match line {
                    Line::TooLong => data.line_too_long = true,
                    Line::Complete(line) if line == b"." => {
                        self.finish_message(data, out);
                        return;
                    }
                    Line::Complete(line) => {
                        let text = line.strip_prefix(b".").unwrap_or(&line);
                        data.size = data.size.saturating_add(text.len() + 2);
                        if data.size > self.settings.size_limit {
                            // Keep reading to the dot, but stop keeping the bytes.
                            data.too_big = true;
                            data.content = Vec::new();
                        } else if !data.too_big {
                            data.content.extend_from_slice(text);
                            data.content.extend_from_slice(b"\r\n");
                        }
                    }
                }
                self.phase = Phase::Data(data);
            }
            Phase::Sasl(state) => match line {
                Line::TooLong => {
                    out.push(Output::Log(
                        Direction::Client,
                        "<overlong SASL answer>".into(),
                    ));
                    self.reply(out, 500, "5.5.2 Error: line too long");
                }
                Line::Complete(line) => {
                    out.push(Output::Log(Direction::Client, redacted_sasl(&line)));
                    self.sasl_answer(state, &line, out);
                }
            },
            Phase::Command => match line {
                Line::TooLong => {
                    out.push(Output::Log(
                        Direction::Client,
                        format!("<line longer than {COMMAND_LINE_LIMIT} bytes>"),
                    ));
                    self.reply(out, 500, "5.5.2 Error: line too long");
                }
                Line::Complete(line) => {
                    let text = String::from_utf8_lossy(&line).into_owned();
                    out.push(Output::Log(Direction::Client, redacted_command(&text)));
                    self.command(&text, out);
                }
            },
            // Unreachable through `receive`, which stops reading in these phases; kept total.
            phase @ (Phase::AwaitingTls | Phase::Closed) => self.phase = phase,
        }
    }

    fn command(&mut self, line: &str, out: &mut Vec<Output>) {
        let (verb, rest) = split_verb(line);
        match verb.as_str() {
            "EHLO" => self.ehlo(rest, out),
            "HELO" => {
                if rest.is_empty() {
                    self.reply(out, 501, "5.5.4 Syntax: HELO hostname");
                } else {
                    self.greeted = true;
                    self.transaction = None;
                    let host = self.settings.host.clone();
                    self.reply(out, 250, &host);
                }
            }
            "STARTTLS" => self.starttls(rest, out),
            "AUTH" => self.auth(rest, out),
            "MAIL" => self.mail(rest, out),
            "RCPT" => self.rcpt(rest, out),
            "DATA" => self.data(rest, out),
            "RSET" => {
                self.transaction = None;
                self.reply(out, 250, "2.0.0 Ok");
            }
            "NOOP" => self.reply(out, 250, "2.0.0 Ok"),
            "VRFY" => {
                if rest.is_empty() {
                    self.reply(out, 501, "5.5.4 Syntax: VRFY address");
                } else {
                    // Never confirm accounts: that is what address harvesters ask VRFY for.
                    self.reply(
                        out,
                        252,
                        "2.0.0 Cannot VRFY user, but will accept message and attempt delivery",
                    );
                }
            }
            "QUIT" => {
                self.reply(out, 221, "2.0.0 Bye");
                self.close(out);
            }
            "" => self.reply(out, 500, "5.5.2 Error: bad syntax"),
            _ => self.reply(out, 502, "5.5.2 Error: command not recognized"),
        }
    }

    fn ehlo(&mut self, rest: &str, out: &mut Vec<Output>) {
        if rest.is_empty() {
            self.reply(out, 501, "5.5.4 Syntax: EHLO hostname");
            return;
        }
        self.greeted = true;
        self.transaction = None;
        let mut lines = vec![
            self.settings.host.clone(),
            "PIPELINING".to_owned(),
            format!("SIZE {}", self.settings.size_limit),
        ];
        if !self.tls && self.policy.starttls != StartTlsBehaviour::Absent {
            lines.push("STARTTLS".to_owned());
        }
        if self.auth_enabled() {
            lines.push("AUTH PLAIN LOGIN".to_owned());
        }
        lines.push("ENHANCEDSTATUSCODES".to_owned());
        lines.push("8BITMIME".to_owned());
        self.reply_lines(out, 250, &lines);
    }

    fn auth_enabled(&self) -> bool {
        if self.tls {
            self.policy.auth_under_tls
        } else {
            self.policy.auth_in_cleartext
        }
    }

    /// The 530 of `smtpd_tls_security_level=encrypt`, when it applies. Returns whether it did.
    fn tls_required(&mut self, out: &mut Vec<Output>) -> bool {
        if self.policy.require_tls && !self.tls {
            self.reply(out, 530, "5.7.0 Must issue a STARTTLS command first");
            true
        } else {
            false
        }
    }

    fn starttls(&mut self, rest: &str, out: &mut Vec<Output>) {
        if self.tls {
            self.reply(out, 554, "5.5.1 Error: TLS already active");
            return;
        }
        let behaviour = self.policy.starttls;
        if behaviour == StartTlsBehaviour::Absent {
            self.reply(out, 502, "5.5.2 Error: command not recognized");
            return;
        }
        if !rest.is_empty() {
            self.reply(out, 501, "5.5.4 Syntax: STARTTLS");
            return;
        }
        match behaviour {
            StartTlsBehaviour::Refuse => {
                self.reply(out, 454, "4.7.0 TLS not available due to local problem");
            }
            StartTlsBehaviour::Inject => {
                // The forged reply rides in the same segment as the 220, exactly where an
                // attacker on the path would put it; a careful client drops the connection.
                let forged = format!(
                    "250-{}\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n",
                    self.settings.host
                );
                let mut bytes = b"220 2.0.0 Ready to start TLS\r\n".to_vec();
                bytes.extend_from_slice(forged.as_bytes());
                out.push(Output::Log(
                    Direction::Server,
                    "220 2.0.0 Ready to start TLS".to_owned(),
                ));
                out.push(Output::Log(
                    Direction::Note,
                    format!(
                        "injected in the same write, in cleartext: {}",
                        forged.lines().collect::<Vec<_>>().join(" | ")
                    ),
                ));
                out.push(Output::Send(bytes));
                out.push(Output::StartTls);
                self.phase = Phase::AwaitingTls;
            }
            StartTlsBehaviour::Honest | StartTlsBehaviour::Absent => {
                self.reply(out, 220, "2.0.0 Ready to start TLS");
                out.push(Output::StartTls);
                self.phase = Phase::AwaitingTls;
            }
        }
    }

    fn auth(&mut self, rest: &str, out: &mut Vec<Output>) {
        if !self.auth_enabled() {
            if !self.tls_required(out) {
                self.reply(out, 503, "5.5.1 Error: authentication not enabled");
            }
            return;
        }
        if !self.greeted {
            self.reply(out, 503, "5.5.1 Error: send EHLO first");
            return;
        }
        if self.authenticated_as.is_some() {
            self.reply(out, 503, "5.5.1 Error: already authenticated");
            return;
        }
        if self.transaction.is_some() {
            self.reply(out, 503, "5.5.1 Error: MAIL transaction in progress");
            return;
        }
        let mut words = rest.split_ascii_whitespace();
        let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
        let initial = words.next();
        if mechanism.is_empty() || words.next().is_some() {
            self.reply(out, 501, "5.5.4 Syntax: AUTH mechanism");
            return;
        }
        match (mechanism.as_str(), initial) {
            ("PLAIN", Some(response)) => {
                self.sasl_answer(SaslState::Plain, response.as_bytes(), out);
            }
            ("PLAIN", None) => {
                // Postfix sends the empty challenge with its trailing space.
                self.send_raw(out, "334 ");
                self.phase = Phase::Sasl(SaslState::Plain);
            }
            ("LOGIN", Some(user)) => {
                self.sasl_answer(SaslState::LoginUser, user.as_bytes(), out);
            }
            ("LOGIN", None) => {
                self.send_raw(out, "334 VXNlcm5hbWU6");
                self.phase = Phase::Sasl(SaslState::LoginUser);
            }
            _ => self.reply(
                out,
                535,
                "5.7.8 Error: authentication failed: Invalid authentication mechanism",
            ),
        }
    }

    fn sasl_answer(&mut self, state: SaslState, answer: &[u8], out: &mut Vec<Output>) {
        let answer = answer.trim_ascii();
        if answer == b"*" {
            self.reply(out, 501, "5.7.0 Authentication aborted");
            return;
        }
        // "=" is an empty initial response (RFC 4954 §4).
        let decoded = if answer == b"=" {
            Ok(zeroize::Zeroizing::new(Vec::new()))
        } else {
            BASE64.decode(answer).map(zeroize::Zeroizing::new)
        };
        let Ok(decoded) = decoded else {
            self.reply(out, 501, "5.5.2 Cannot decode response");
            return;
        };
        match state {
            SaslState::Plain => {
                let mut parts = decoded.split(|&b| b == 0);
                let (authzid, authcid, password) = (parts.next(), parts.next(), parts.next());
                let valid = match (authzid, authcid, password, parts.next()) {
                    (Some(authzid), Some(authcid), Some(password), None)
                        if authzid.is_empty() || authzid == authcid =>
                    {
                        std::str::from_utf8(authcid)
                            .ok()
                            .filter(|user| self.settings.accounts.check(user, password))
                    }
                    _ => None,
                };
                self.auth_result(valid.map(str::to_owned), out);
            }
            SaslState::LoginUser => match String::from_utf8(decoded.to_vec()) {
                Ok(user) if !user.is_empty() => {
                    self.send_raw(out, "334 UGFzc3dvcmQ6");
                    self.phase = Phase::Sasl(SaslState::LoginPassword { user });
                }
                _ => self.auth_result(None, out),
            },
            SaslState::LoginPassword { user } => {
                let valid = self.settings.accounts.check(&user, &decoded);
                self.auth_result(valid.then_some(user), out);
            }
        }
    }

    fn auth_result(&mut self, user: Option<String>, out: &mut Vec<Output>) {
        match user {
            Some(user) => {
                out.push(Output::Log(
                    Direction::Note,
                    format!("authenticated as {}", escape_str(&user)),
                ));
                self.authenticated_as = Some(user);
                self.reply(out, 235, "2.7.0 Authentication successful");
            }
            None => self.reply(
                out,
                535,
                "5.7.8 Error: authentication failed: authentication failure",
            ),
        }
    }

    fn mail(&mut self, rest: &str, out: &mut Vec<Output>) {
        if self.tls_required(out) {
            return;
        }
        if !self.greeted {
            self.reply(out, 503, "5.5.1 Error: send HELO/EHLO first");
            return;
        }
        if self.transaction.is_some() {
            self.reply(out, 503, "5.5.1 Error: nested MAIL command");
            return;
        }
        let Some((from, params)) = path_argument(rest, "FROM:") else {
            self.reply(out, 501, "5.5.4 Syntax: MAIL FROM:<address>");
            return;
        };
        for param in params.split_ascii_whitespace() {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            match key.to_ascii_uppercase().as_str() {
                "SIZE" => match value.parse::<u64>() {
                    Ok(size) if size > self.settings.size_limit as u64 => {
                        self.reply(out, 552, "5.3.4 Message size exceeds fixed limit");
                        return;
                    }
                    Ok(_) => {}
                    Err(_) => {
                        self.reply(out, 501, "5.5.4 Bad message size syntax");
                        return;
                    }
                },
                "BODY" if ["7BIT", "8BITMIME"].contains(&value.to_ascii_uppercase().as_str()) => {}
                _ => {
                    let text = format!("5.5.4 Unsupported option: {}", escape_str(param));
                    self.reply(out, 555, &text);
                    return;
                }
            }
        }
        self.transaction = Some(Transaction {
            from,
            to: Vec::new(),
        });
        self.reply(out, 250, "2.1.0 Ok");
    }

    fn rcpt(&mut self, rest: &str, out: &mut Vec<Output>) {
        if self.tls_required(out) {
            return;
        }
        if self.transaction.is_none() {
            self.reply(out, 503, "5.5.1 Error: need MAIL command");
            return;
        }
        let recipient = match path_argument(rest, "TO:") {
            Some((address, params)) if !address.is_empty() && params.is_empty() => address,
            _ => {
                self.reply(out, 501, "5.5.4 Syntax: RCPT TO:<address>");
                return;
            }
        };
        let local = recipient
            .rsplit_once('@')
            .is_none_or(|(_, domain)| domain.eq_ignore_ascii_case(LOCAL_DOMAIN));
        if !local && self.authenticated_as.is_none() {
            let text = format!("5.7.1 <{recipient}>: Relay access denied");
            self.reply(out, 554, &text);
            return;
        }
        let full = self
            .transaction
            .as_ref()
            .is_some_and(|t| t.to.len() >= RECIPIENT_LIMIT);
        if full {
            self.reply(out, 452, "4.5.3 Error: too many recipients");
            return;
        }
        if let Some(transaction) = self.transaction.as_mut() {
            transaction.to.push(recipient);
        }
        self.reply(out, 250, "2.1.5 Ok");
    }

    fn data(&mut self, rest: &str, out: &mut Vec<Output>) {
        if self.tls_required(out) {
            return;
        }
        if !rest.is_empty() {
            self.reply(out, 501, "5.5.4 Syntax: DATA");
            return;
        }
        match &self.transaction {
            None => self.reply(out, 503, "5.5.1 Error: need RCPT command"),
            Some(t) if t.to.is_empty() => {
                self.reply(out, 554, "5.5.1 Error: no valid recipients");
            }
            Some(_) => {
                self.reply(out, 354, "End data with <CR><LF>.<CR><LF>");
                self.phase = Phase::Data(DataState {
                    content: Vec::new(),
                    size: 0,
                    too_big: false,
                    line_too_long: false,
                });
            }
        }
    }

    fn finish_message(&mut self, data: DataState, out: &mut Vec<Output>) {
        out.push(Output::Log(
            Direction::Client,
            format!("<message, {} bytes> .", data.size),
        ));
        let Some(transaction) = self.transaction.take() else {
            // DATA is only entered with a transaction; answer sanely if that ever changes.
            self.reply(out, 503, "5.5.1 Error: need RCPT command");
            return;
        };
        if data.too_big {
            self.reply(out, 552, "5.3.4 Message size exceeds fixed limit");
            return;
        }
        if data.line_too_long {
            self.reply(out, 500, "5.5.2 Error: line too long");
            return;
        }
        self.messages += 1;
        // Postfix-like queue IDs: upper-case hex, unique per lab run.
        let id = format!(
            "{:07X}{:03X}",
            self.number & 0xFFF_FFFF,
            self.messages & 0xFFF
        );
        out.push(Output::Deliver(Message {
            id: id.clone(),
            profile: self.settings.profile,
            from: transaction.from,
            to: transaction.to,
            data: data.content,
            authenticated_as: self.authenticated_as.clone(),
            tls: self.tls,
        }));
        self.reply(out, 250, &format!("2.0.0 Ok: queued as {id}"));
    }

    fn close(&mut self, out: &mut Vec<Output>) {
        self.phase = Phase::Closed;
        out.push(Output::Close);
    }

    fn reply(&mut self, out: &mut Vec<Output>, code: u16, text: &str) {
        if code >= 400 {
            self.errors += 1;
        }
        self.send_raw(out, &format!("{code} {text}"));
    }

    fn send_raw(&mut self, out: &mut Vec<Output>, line: &str) {
        out.push(Output::Log(Direction::Server, line.to_owned()));
        out.push(Output::Send(format!("{line}\r\n").into_bytes()));
    }

    fn reply_lines(&mut self, out: &mut Vec<Output>, code: u16, lines: &[String]) {
        let mut bytes = String::new();
        for (index, line) in lines.iter().enumerate() {
            let separator = if index + 1 == lines.len() { ' ' } else { '-' };
            bytes.push_str(&format!("{code}{separator}{line}\r\n"));
        }
        out.push(Output::Log(
            Direction::Server,
            format!("{code} {}", lines.join(" | ")),
        ));
        out.push(Output::Send(bytes.into_bytes()));
    }
}

/// Parses `FROM:<address> params` / `TO:<address>`: the address (without brackets) and the
/// rest. The bracketless form is accepted as Postfix does by default.
fn path_argument(rest: &str, keyword: &str) -> Option<(String, String)> {
    let prefix = rest.get(..keyword.len())?;
    if !prefix.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = rest[keyword.len()..].trim_start();
    let (address, params) = if let Some(inner) = rest.strip_prefix('<') {
        let (address, params) = inner.split_once('>')?;
        (address, params)
    } else {
        let end = rest.find(' ').unwrap_or(rest.len());
        rest.split_at(end)
    };
    let valid = address.len() <= 254
        && !address
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '<' || c == '>');
    valid.then(|| (address.to_owned(), params.trim().to_owned()))
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
    use super::*;
    use crate::lab::accounts::{DEFAULT_PASSWORD, DEFAULT_USER};

    fn session(profile: Profile) -> ServerSession {
        let settings = ServerSettings {
            host: "lab.test".to_owned(),
            profile,
            accounts: Arc::new(Accounts::with_default()),
            size_limit: SIZE_LIMIT,
        };
        let tls = profile.policy().implicit_tls;
        let mut session = ServerSession::new(Arc::new(settings), 7, tls);
        session.greeting();
        session
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

    fn say(session: &mut ServerSession, line: &str) -> String {
        sent(&session.receive(format!("{line}\r\n").as_bytes()))
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

    #[test]
    fn banner() {
        let mut session = session(Profile::Mx);
        assert_eq!(sent(&session.greeting()), "220 lab.test ESMTP\r\n");
    }

    #[test]
    fn submission_refuses_everything_before_tls() {
        let mut s = session(Profile::Submission);
        let ehlo = say(&mut s, "EHLO client");
        assert!(ehlo.contains("250-STARTTLS\r\n"), "{ehlo}");
        assert!(!ehlo.contains("AUTH"), "{ehlo}");
        assert!(ehlo.starts_with("250-lab.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"));
        assert!(ehlo.ends_with("250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n"));
        let must = "530 5.7.0 Must issue a STARTTLS command first\r\n";
        assert_eq!(say(&mut s, "MAIL FROM:<a@lab.test>"), must);
        assert_eq!(say(&mut s, "RCPT TO:<a@lab.test>"), must);
        assert_eq!(
            say(&mut s, &format!("AUTH PLAIN {}", plain("x", "y"))),
            must
        );
        assert_eq!(say(&mut s, "DATA"), must);
        let out = s.receive(b"STARTTLS\r\n");
        assert_eq!(sent(&out), "220 2.0.0 Ready to start TLS\r\n");
        assert_eq!(out.last(), Some(&Output::StartTls));
    }

    #[test]
    fn full_submission_after_tls() {
        let mut s = session(Profile::Submission);
        say(&mut s, "EHLO client");
        say(&mut s, "STARTTLS");
        s.tls_started();
        assert_eq!(
            say(&mut s, "MAIL FROM:<a@lab.test>"),
            "503 5.5.1 Error: send HELO/EHLO first\r\n",
            "EHLO state is forgotten after TLS"
        );
        let ehlo = say(&mut s, "EHLO client");
        assert!(ehlo.contains("250-AUTH PLAIN LOGIN\r\n") && !ehlo.contains("STARTTLS"));
        assert_eq!(
            say(&mut s, "STARTTLS"),
            "554 5.5.1 Error: TLS already active\r\n"
        );
        assert_eq!(
            say(&mut s, "MAIL FROM:<student@lab.test>"),
            "250 2.1.0 Ok\r\n"
        );
        assert_eq!(
            say(&mut s, "RCPT TO:<x@example.com>"),
            "554 5.7.1 <x@example.com>: Relay access denied\r\n"
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
        assert_eq!(
            say(&mut s, "DATA"),
            "354 End data with <CR><LF>.<CR><LF>\r\n"
        );
        let out = s.receive(b"Subject: hi\r\n\r\n..leading dot\r\n.\r\n");
        assert_eq!(sent(&out), "250 2.0.0 Ok: queued as 0000007001\r\n");
        let message = out
            .iter()
            .find_map(|o| match o {
                Output::Deliver(m) => Some(m.clone()),
                _ => None,
            })
            .expect("delivered");
        assert_eq!(message.data, b"Subject: hi\r\n\r\n.leading dot\r\n");
        assert_eq!(message.to, ["x@example.com"]);
        assert_eq!(message.authenticated_as.as_deref(), Some(DEFAULT_USER));
        assert!(message.tls);
        let out = s.receive(b"QUIT\r\n");
        assert_eq!(sent(&out), "221 2.0.0 Bye\r\n");
        assert!(s.is_closed());
    }

    #[test]
    fn sasl_exchanges() {
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

        let mut s = session(Profile::Implicit);
        say(&mut s, "EHLO client");
        say(&mut s, "AUTH LOGIN");
        assert_eq!(say(&mut s, "*"), "501 5.7.0 Authentication aborted\r\n");
        say(&mut s, "AUTH PLAIN");
        assert_eq!(say(&mut s, "%%%"), "501 5.5.2 Cannot decode response\r\n");
        assert_eq!(
            say(&mut s, "AUTH CRAM-MD5"),
            "535 5.7.8 Error: authentication failed: Invalid authentication mechanism\r\n"
        );
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
        say(&mut s, "MAIL FROM:<>");
        assert_eq!(
            say(&mut s, "RCPT TO:<x@example.com>"),
            "554 5.7.1 <x@example.com>: Relay access denied\r\n"
        );
        assert_eq!(say(&mut s, "RCPT TO:<bob@LAB.test>"), "250 2.1.5 Ok\r\n");
        assert_eq!(
            say(&mut s, "VRFY bob"),
            "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery\r\n"
        );
    }

    #[test]
    fn legacy_and_strip_take_auth_in_cleartext() {
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
        }
        let mut s = session(Profile::Strip);
        assert_eq!(
            say(&mut s, "STARTTLS"),
            "502 5.5.2 Error: command not recognized\r\n"
        );
        let mut s = session(Profile::RefuseTls);
        assert_eq!(
            say(&mut s, "STARTTLS"),
            "454 4.7.0 TLS not available due to local problem\r\n"
        );
    }

    #[test]
    fn inject_sends_a_forged_reply_in_the_same_write() {
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
    }

    #[test]
    fn pipelined_commands_after_starttls_are_discarded() {
        let mut s = session(Profile::Submission);
        say(&mut s, "EHLO client");
        let out = s.receive(b"STARTTLS\r\nMAIL FROM:<evil@example.com>\r\n");
        assert_eq!(sent(&out), "220 2.0.0 Ready to start TLS\r\n");
        assert!(log(&out).contains("discarded"));
        s.tls_started();
        assert_eq!(say(&mut s, "NOOP"), "250 2.0.0 Ok\r\n");
    }

    #[test]
    fn limits() {
        let mut s = session(Profile::Mx);
        let long = format!("NOOP {}\r\n", "x".repeat(600));
        assert_eq!(
            sent(&s.receive(long.as_bytes())),
            "500 5.5.2 Error: line too long\r\n"
        );
        assert_eq!(say(&mut s, "NOOP"), "250 2.0.0 Ok\r\n");
        // An endless line in small pieces: one 500, and bounded memory.
        let mut replies = String::new();
        for _ in 0..100 {
            replies.push_str(&sent(&s.receive(&[b'y'; 100])));
            assert!(s.input.len() <= COMMAND_LINE_LIMIT);
        }
        assert_eq!(replies, "500 5.5.2 Error: line too long\r\n");
        assert_eq!(
            say(&mut s, ""),
            "",
            "the end of the long line is not a command"
        );
        assert_eq!(say(&mut s, ""), "500 5.5.2 Error: bad syntax\r\n");
        say(&mut s, "EHLO c");
        say(&mut s, "MAIL FROM:<a@lab.test> SIZE=99999999");
        say(&mut s, "MAIL FROM:<a@lab.test>");
        say(&mut s, "RCPT TO:<b@lab.test>");
        say(&mut s, "DATA");
        let out = s.receive(format!("{}\r\n.\r\n", "z".repeat(1200)).as_bytes());
        assert_eq!(sent(&out), "500 5.5.2 Error: line too long\r\n");
        assert!(!out.iter().any(|o| matches!(o, Output::Deliver(_))));
    }

    #[test]
    fn size_is_enforced() {
        let settings = ServerSettings {
            host: "lab.test".to_owned(),
            profile: Profile::Mx,
            accounts: Arc::new(Accounts::empty()),
            size_limit: 100,
        };
        let mut s = ServerSession::new(Arc::new(settings), 1, false);
        say(&mut s, "EHLO c");
        assert_eq!(
            say(&mut s, "MAIL FROM:<a@lab.test> SIZE=101"),
            "552 5.3.4 Message size exceeds fixed limit\r\n"
        );
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
    }

    #[test]
    fn too_many_errors_and_timeouts_close() {
        let mut s = session(Profile::Mx);
        let junk: Vec<u8> = (0..=255u8).cycle().take(8000).collect();
        let out = s.receive(&junk);
        let text = sent(&out);
        assert!(
            text.ends_with("421 4.7.0 lab.test Error: too many errors\r\n"),
            "{text}"
        );
        assert_eq!(out.last(), Some(&Output::Close));
        assert!(s.receive(b"NOOP\r\n").is_empty());

        let mut s = session(Profile::Mx);
        let out = s.timed_out();
        assert_eq!(sent(&out), "421 4.4.2 lab.test Error: timeout exceeded\r\n");
        assert!(s.is_closed());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: every profile, random bytes and fragments of commands.
        let pieces: [&[u8]; 12] = [
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
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for profile in Profile::ALL {
            let mut s = session(profile);
            for _ in 0..3000 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let piece = pieces[(seed % 12) as usize];
                if seed.is_multiple_of(5) {
                    s.receive(&seed.to_le_bytes());
                } else {
                    s.receive(piece);
                }
                if matches!(s.phase, Phase::AwaitingTls) {
                    s.tls_started();
                }
            }
        }
    }
}
