//! Plain-language explanations of what the server said: reply codes (RFC 5321 §4.2), enhanced
//! status codes (RFC 3463, the IANA registry of RFC 5248), EHLO extensions and the MAIL FROM
//! and RCPT TO parameters they bring, known situations with what to do about them (the
//! extensions' own among them: pipelined groups, BDAT chunks, LMTP's replies per recipient,
//! SMTPUTF8, SIZE, DSN, REQUIRETLS), and what a TLS upgrade negotiated.
//!
//! Pure tables and functions: no I/O, no terminal. Front ends show the lines as they are.

use crate::guard::GuardPolicy;
use crate::proto::ehlo::Capabilities;
use crate::proto::reply::{EnhancedCode, Reply};
use crate::tls::{TlsInfo, Verification};
use crate::transcript::ErrorKind;

/// What a reply code means, from RFC 5321 §4.2.2 and §4.2.3 (and RFC 4954 for 235/334/530/535).
pub fn reply_code(code: u16) -> &'static str {
    match code {
        211 => "System status or help reply.",
        214 => "Help message for a human reader.",
        220 => "Service ready (greeting), or ready to start TLS after STARTTLS.",
        221 => "Service closing the transmission channel (answer to QUIT).",
        235 => "Authentication succeeded (RFC 4954).",
        250 => "Requested action okay, completed.",
        251 => "User not local; the server will forward the message.",
        252 => "Cannot verify the user, but will accept the message and attempt delivery.",
        334 => "Server challenge during AUTH: the next line answers it (base64, RFC 4954).",
        354 => "Start mail input: send the message, end it with a line holding only a dot.",
        421 => {
            "Service not available, closing the channel: the server is going away (may come at any time, RFC 5321 §3.8)."
        }
        432 => "A password transition is needed (RFC 4954).",
        450 => {
            "Mailbox unavailable for now (busy, or blocked by policy such as greylisting); try later."
        }
        451 => "Local error in processing; the server gave up this time, try later.",
        452 => "Insufficient system storage, or too many recipients in this transaction.",
        454 => "Temporary authentication failure, or TLS not available for now.",
        455 => "Server unable to accommodate the parameters.",
        500 => "Syntax error, command unrecognised (or the line was too long).",
        501 => "Syntax error in parameters or arguments.",
        502 => "Command not implemented.",
        503 => "Bad sequence of commands: something else must come first.",
        504 => "Command parameter not implemented (e.g. an AUTH mechanism the server lacks).",
        530 => "Authentication or encryption required before this command.",
        534 => "The authentication mechanism is too weak for this server's policy.",
        535 => "Authentication credentials invalid.",
        538 => "Encryption required for the requested authentication mechanism.",
        550 => "Mailbox unavailable (not found, no access, or rejected by policy).",
        551 => "User not local; the server will not forward.",
        552 => "Exceeded storage allocation (message too big for the mailbox or the server).",
        553 => "Mailbox name not allowed (syntax, or not permitted to send as this address).",
        554 => "Transaction failed (or, as a greeting, no SMTP service here).",
        555 => "MAIL FROM or RCPT TO parameters not recognised or not implemented.",
        _ => match code / 100 {
            2 => "Positive completion: the action was done.",
            3 => "Positive intermediate: the server waits for more from you.",
            4 => "Transient failure: not done this time; the same command may work later.",
            5 => "Permanent failure: not done, and repeating it unchanged will not help.",
            _ => "Not a valid SMTP reply class (SMTP codes start with 2, 3, 4 or 5).",
        },
    }
}

/// What the class digit of an enhanced status code says (RFC 3463 §3.1).
fn enhanced_class(class: u8) -> &'static str {
    match class {
        2 => "success",
        4 => "persistent transient failure",
        5 => "permanent failure",
        _ => "unknown class",
    }
}

/// What the subject digit says (RFC 3463 §3.2).
fn enhanced_subject(subject: u16) -> &'static str {
    match subject {
        0 => "other or undefined status",
        1 => "addressing",
        2 => "mailbox",
        3 => "mail system",
        4 => "network and routing",
        5 => "mail delivery protocol",
        6 => "message content or media",
        7 => "security or policy",
        _ => "unknown subject",
    }
}

/// Every enumerated code of the IANA registry "Simple Mail Transfer Protocol (SMTP) Enhanced
/// Status Codes" (<https://www.iana.org/assignments/smtp-enhanced-status-codes>, set up by
/// RFC 5248 with the codes of RFC 3463, and the additions of RFC 3886, 4468, 4954, 5248, 6531,
/// 6710, 7293, 7372, 7504, 7505, 8617 and 8689 up to X.7.30): subject, detail and the
/// registry's title. [`enhanced_detail`] must explain every one; a test walks this list.
pub const IANA_REGISTRY: &[(u16, u16, &str)] = &[
    (0, 0, "Other undefined Status"),
    (1, 0, "Other address status"),
    (1, 1, "Bad destination mailbox address"),
    (1, 2, "Bad destination system address"),
    (1, 3, "Bad destination mailbox address syntax"),
    (1, 4, "Destination mailbox address ambiguous"),
    (1, 5, "Destination address valid"),
    (1, 6, "Destination mailbox has moved, No forwarding address"),
    (1, 7, "Bad sender's mailbox address syntax"),
    (1, 8, "Bad sender's system address"),
    (1, 9, "Message relayed to non-compliant mailer"),
    (1, 10, "Recipient address has null MX"),
    (2, 0, "Other or undefined mailbox status"),
    (2, 1, "Mailbox disabled, not accepting messages"),
    (2, 2, "Mailbox full"),
    (2, 3, "Message length exceeds administrative limit"),
    (2, 4, "Mailing list expansion problem"),
    (3, 0, "Other or undefined mail system status"),
    (3, 1, "Mail system full"),
    (3, 2, "System not accepting network messages"),
    (3, 3, "System not capable of selected features"),
    (3, 4, "Message too big for system"),
    (3, 5, "System incorrectly configured"),
    (3, 6, "Requested priority was changed"),
    (4, 0, "Other or undefined network or routing status"),
    (4, 1, "No answer from host"),
    (4, 2, "Bad connection"),
    (4, 3, "Directory server failure"),
    (4, 4, "Unable to route"),
    (4, 5, "Mail system congestion"),
    (4, 6, "Routing loop detected"),
    (4, 7, "Delivery time expired"),
    (5, 0, "Other or undefined protocol status"),
    (5, 1, "Invalid command"),
    (5, 2, "Syntax error"),
    (5, 3, "Too many recipients"),
    (5, 4, "Invalid command arguments"),
    (5, 5, "Wrong protocol version"),
    (5, 6, "Authentication Exchange line is too long"),
    (6, 0, "Other or undefined media error"),
    (6, 1, "Media not supported"),
    (6, 2, "Conversion required and prohibited"),
    (6, 3, "Conversion required but not supported"),
    (6, 4, "Conversion with loss performed"),
    (6, 5, "Conversion Failed"),
    (6, 6, "Message content not available"),
    (
        6,
        7,
        "Non-ASCII addresses not permitted for that sender/recipient",
    ),
    (
        6,
        8,
        "UTF-8 string reply is required, but not permitted by the SMTP client",
    ),
    (
        6,
        9,
        "UTF-8 header message cannot be transferred to one or more recipients",
    ),
    (6, 10, "(deprecated: a duplicate of X.6.8)"),
    (7, 0, "Other or undefined security status"),
    (7, 1, "Delivery not authorized, message refused"),
    (7, 2, "Mailing list expansion prohibited"),
    (7, 3, "Security conversion required but not possible"),
    (7, 4, "Security features not supported"),
    (7, 5, "Cryptographic failure"),
    (7, 6, "Cryptographic algorithm not supported"),
    (7, 7, "Message integrity failure"),
    (7, 8, "Authentication credentials invalid"),
    (7, 9, "Authentication mechanism is too weak"),
    (7, 10, "Encryption Needed"),
    (
        7,
        11,
        "Encryption required for requested authentication mechanism",
    ),
    (7, 12, "A password transition is needed"),
    (7, 13, "User Account Disabled"),
    (7, 14, "Trust relationship required"),
    (7, 15, "Priority Level is too low"),
    (7, 16, "Message is too big for the specified priority"),
    (7, 17, "Mailbox owner has changed"),
    (7, 18, "Domain owner has changed"),
    (7, 19, "RRVS test cannot be completed"),
    (7, 20, "No passing DKIM signature found"),
    (7, 21, "No acceptable DKIM signature found"),
    (7, 22, "No valid author-matched DKIM signature found"),
    (7, 23, "SPF validation failed"),
    (7, 24, "SPF validation error"),
    (7, 25, "Reverse DNS validation failed"),
    (7, 26, "Multiple authentication checks failed"),
    (7, 27, "Sender address has null MX"),
    (7, 28, "Mail flood detected"),
    (7, 29, "ARC validation failure"),
    (7, 30, "REQUIRETLS support required"),
];

/// The registry's title of `subject.detail`, if the registry has it.
fn registered_title(subject: u16, detail: u16) -> Option<&'static str> {
    IANA_REGISTRY
        .iter()
        .find(|(s, d, _)| (*s, *d) == (subject, detail))
        .map(|(_, _, title)| *title)
}

/// What `subject.detail` means in practice, and what to do about it, in a sentence or two.
/// Every code of [`IANA_REGISTRY`] has one.
pub fn enhanced_detail(subject: u16, detail: u16) -> Option<&'static str> {
    Some(match (subject, detail) {
        (0, 0) => {
            "Only the class is known: the server gives no reason more precise than failure or success; its text may say more."
        }
        (1, 0) => {
            "Something about an address (sender or recipient) is the reason, without saying what."
        }
        (1, 1) => {
            "No such mailbox: the part before the @ is unknown at the destination. Check the spelling; a server that says this for every address may hide its users."
        }
        (1, 2) => {
            "The domain after the @ does not exist or takes no mail: check it (a typo, or a domain without MX or address records)."
        }
        (1, 3) => {
            "The recipient address is not valid syntax: write it as RCPT TO:<user@example.com>, with the angle brackets and no spaces."
        }
        (1, 4) => {
            "The address matches more than one mailbox at the destination: use the full, exact address."
        }
        (1, 5) => {
            "The recipient address was accepted: this is the success a 250 to RCPT TO carries."
        }
        (1, 6) => {
            "The mailbox existed but has moved, and no forwarding address is known: the person must be reached some other way."
        }
        (1, 7) => {
            "The sender address is not valid syntax: write MAIL FROM:<you@example.com>, or MAIL FROM:<> for a bounce."
        }
        (1, 8) => {
            "The sender's domain does not exist or cannot take replies, so a bounce could not be returned: use a sender address in a real domain."
        }
        (1, 9) => {
            "The address was valid, but the message went on to a system that cannot report more about its delivery."
        }
        (1, 10) => {
            "The recipient's domain publishes a null MX (RFC 7505): it states that it accepts no mail at all. Do not retry."
        }
        (2, 0) => "Something about the recipient's mailbox, not the address, is the reason.",
        (2, 1) => {
            "The mailbox exists but does not take messages now (disabled, suspended); it may come back, or not."
        }
        (2, 2) => {
            "The recipient's mailbox is over its quota. As 4.2.2 a retry later may work once they delete mail; the sender cannot fix it."
        }
        (2, 3) => {
            "The message is larger than this mailbox accepts, though the server as a whole might take it: send it smaller, or as a link."
        }
        (2, 4) => "The address is a mailing list that could not be expanded to its members.",
        (3, 0) => {
            "Something on the receiving mail system (not the address, not the mailbox) is the reason; its text may say what."
        }
        (3, 1) => {
            "The receiving system's storage is full: a retry later may work; nothing to fix on the sender's side."
        }
        (3, 2) => {
            "The receiving host takes no messages now (shutting down, overloaded, maintenance; 521 or 556 when it never does)."
        }
        (3, 3) => {
            "The message needs a feature the receiving system lacks (for example 8-bit content to a 7-bit-only hop)."
        }
        (3, 4) => {
            "The message is larger than the server's limit (the SIZE in its EHLO reply says how large it may be): send it smaller."
        }
        (3, 5) => {
            "The receiving system is misconfigured for this message: its administrator has to fix it."
        }
        (3, 6) => {
            "The message was taken, but with another priority than the MT-PRIORITY asked for (RFC 6710)."
        }
        (4, 0) => "A network or routing problem without a more precise reason.",
        (4, 1) => {
            "The next host did not answer the connection (down, busy, or filtered): a retry later may work."
        }
        (4, 2) => {
            "The connection to the next host broke or timed out before the transaction finished: a retry may work."
        }
        (4, 3) => {
            "A directory server, usually DNS, failed, so the next hop could not be looked up: a retry later may work."
        }
        (4, 4) => "No route to the destination: DNS has no usable MX or address for the domain.",
        (4, 5) => "The mail system is congested and delays delivery: a retry later may work.",
        (4, 6) => {
            "A routing loop: the message went round between systems too often (wrong MX records, or forwarding rules that point at each other)."
        }
        (4, 7) => {
            "The message was too old to keep trying (its queue lifetime ran out): it will not be delivered."
        }
        (5, 0) => {
            "An SMTP protocol problem without a more precise reason; also carried by many ordinary replies, such as 250 2.5.0 to RSET."
        }
        (5, 1) => {
            "The command is not valid here: unknown, out of order, or not allowed in this state."
        }
        (5, 2) => {
            "The command could not be parsed: check its syntax (MAIL FROM:<...>, RCPT TO:<...>)."
        }
        (5, 3) => {
            "Too many recipients in one transaction: send the rest in another transaction after this one."
        }
        (5, 4) => {
            "The command's arguments are wrong: an unknown parameter, a value out of range, or an extension the server did not offer."
        }
        (5, 5) => "The two sides could not agree on a protocol version.",
        (5, 6) => {
            "An AUTH line (the base64 answer) was longer than the server accepts for this mechanism."
        }
        (6, 0) => "Something about the message content is the reason, without a more precise one.",
        (6, 1) => "The content's media type is not supported on the way to the recipient.",
        (6, 2) => "The content would have to be converted, and the sender or a policy forbids it.",
        (6, 3) => {
            "The content would have to be converted (for example 8-bit to 7-bit) and no system on the way can do it."
        }
        (6, 4) => "The message was delivered, but converting it lost some of its content.",
        (6, 5) => "A conversion the message needed failed.",
        (6, 6) => {
            "Content the server was to fetch from elsewhere (BURL, RFC 4468) could not be had."
        }
        (6, 7) => {
            "An address with non-ASCII characters is not permitted here: the server does not offer SMTPUTF8, or not for this address (RFC 6531)."
        }
        (6, 8) => {
            "Showing the mailbox needs a UTF-8 reply, and the client did not ask for SMTPUTF8."
        }
        (6, 9) => {
            "The message has UTF-8 headers that cannot go on to a recipient without SMTPUTF8 on the way."
        }
        (6, 10) => "A deprecated duplicate of X.6.8: a reply in UTF-8 was needed and not allowed.",
        (7, 0) => {
            "A security or policy reason without a more precise one: most often TLS or AUTH must come first (530 5.7.0), or, on a 235, that AUTH succeeded."
        }
        (7, 1) => {
            "Refused by policy: on RCPT usually relaying denied (the server does not take mail for that domain from you), otherwise a block list or a filter. On a 450 it is usually greylisting: retry in a few minutes."
        }
        (7, 2) => "The sender may not post to this mailing list.",
        (7, 3) => {
            "The message needed a conversion between secure-mail formats that was not possible."
        }
        (7, 4) => "The message asks for a security feature the server does not support.",
        (7, 5) => {
            "A system that was to check or decrypt the message lacked the key, or the key was not valid."
        }
        (7, 6) => {
            "A system that was to check or decrypt the message does not support its algorithm."
        }
        (7, 7) => "The message could not be checked: it was altered or damaged on the way.",
        (7, 8) => {
            "The user name or password was wrong (or the account may not log in this way). Check both; repeated failures may get your address blocked."
        }
        (7, 9) => {
            "This AUTH mechanism is too weak for the server's policy for this user: use another one it offers."
        }
        (7, 10) => {
            "Encryption is needed first: the session must be inside TLS before this mechanism may be used. Send STARTTLS, then EHLO and AUTH again."
        }
        (7, 11) => {
            "This AUTH mechanism may only run on an encrypted connection: STARTTLS first. If the credentials already went, they crossed in cleartext: change the password."
        }
        (7, 12) => {
            "The account must log in once with another mechanism (usually PLAIN, inside TLS) before this one works."
        }
        (7, 13) => {
            "The credentials were right but the account is disabled: only its administrator can enable it again."
        }
        (7, 14) => {
            "The server needs a trust relationship with another server to fetch the content (BURL) and has none."
        }
        (7, 15) => "The MT-PRIORITY asked for is below what the server accepts now (RFC 6710).",
        (7, 16) => "The message is too big for the priority asked for (RFC 6710).",
        (7, 17) => {
            "The mailbox changed owner since the time the sender gave (RRVS, RFC 7293): the message is not delivered to the new owner."
        }
        (7, 18) => {
            "The recipient's domain changed owner since the time the sender gave (RRVS, RFC 7293)."
        }
        (7, 19) => {
            "The server cannot check the RRVS time asked for (RFC 7293): the sender decides whether to send without it."
        }
        (7, 20) => "No valid DKIM signature: the receiving policy requires one (RFC 7372).",
        (7, 21) => {
            "DKIM signatures passed, but none is acceptable to the receiving policy (RFC 7372)."
        }
        (7, 22) => {
            "No valid DKIM signature from the domain of the From address (RFC 7372): sign with the author's domain."
        }
        (7, 23) => {
            "SPF failed: the sending host is not allowed to send for the sender's domain (RFC 7208, 7372). Send through a server the domain lists."
        }
        (7, 24) => {
            "Checking SPF failed with an error (a broken or unreachable SPF record): the sender's domain must fix it."
        }
        (7, 25) => {
            "The client's address failed the reverse DNS check: its PTR record is missing or does not match the name it resolves to."
        }
        (7, 26) => {
            "Several authentication checks failed (SPF, DKIM, reverse DNS), without saying which."
        }
        (7, 27) => {
            "The sender's domain publishes a null MX, so no bounce could reach it: the server refuses mail from it (RFC 7505)."
        }
        (7, 28) => {
            "The message looks like part of a flood of similar messages, and was refused as abuse."
        }
        (7, 29) => {
            "The ARC chain of the message did not validate (RFC 8617): a forwarder's signatures are broken."
        }
        (7, 30) => {
            "The message asked for REQUIRETLS (RFC 8689) and a hop on the way could not promise TLS for it, so it was not passed on in cleartext."
        }
        _ => return None,
    })
}

/// One line describing an enhanced status code, e.g.
/// `5.7.0: permanent failure, security or policy: Other or undefined security status`.
pub fn enhanced(code: &EnhancedCode) -> String {
    let mut text = format!(
        "{code}: {}, {}",
        enhanced_class(code.class),
        enhanced_subject(code.subject)
    );
    if let Some(title) = registered_title(code.subject, code.detail) {
        text.push_str(": ");
        text.push_str(title);
    } else if code.subject <= 7 {
        text.push_str(": a detail the registry does not define");
    }
    text
}

/// Paragraphs explaining an error that ended (or stopped) the session: what it means and what
/// to do next. Decided by the error's kind, never by its wording.
pub fn explain_error(kind: ErrorKind) -> Vec<String> {
    let paragraphs: &[&str] = match kind {
        ErrorKind::Injection => &[
            "Response injection: bytes arrived in cleartext after the 220 to STARTTLS and before TLS began. \
             They would have been read as replies inside TLS: an attacker on the path can plant a fake EHLO \
             reply this way (CVE-2021-22947 class), or a server may pipeline wrongly.",
            "smtptui aborted the session; nothing more was sent and no credentials left. Find out which \
             before trusting this path (the lab's inject profile shows the attack).",
        ],
        ErrorKind::OutOfStep => &[
            "The server sent replies nobody asked for, so its replies can no longer be matched to the \
             commands they answer, and the session was ended. A server out of step has lost count, or is \
             not the server it seems. :reconnect starts over; send one command at a time.",
        ],
        ErrorKind::Timeout => &[
            "The server did not answer in time (--timeout, default 30 s). A slow or overloaded server, \
             a firewall that drops packets, or a tarpit can do this. :reconnect tries again.",
        ],
        ErrorKind::Closed => &[
            "The server hung up. Servers do this after a 421, after too many errors or unknown commands, \
             when idle too long, or when a firewall or proxy drops the session. :reconnect starts a new one.",
        ],
        ErrorKind::ServiceClosing => &[
            "The server said 421 without being asked and closed the session: it is shutting down, \
             overloaded, or gave up on this client (too many errors, an idle timeout). Nothing sent \
             after it arrives; :reconnect starts a new session, later if it is overloaded.",
        ],
        ErrorKind::Handshake | ErrorKind::Certificate => &[
            "TLS could not be set up. smtptui never falls back to cleartext after STARTTLS: the session is \
             closed. Check the server's certificate and TLS settings (F3 shows what was received).",
        ],
        ErrorKind::Connect => &[
            "No connection: nothing listens there, a firewall refuses it, or the name or port is wrong. \
             Port 25 is often blocked by home and cloud providers; submission uses 587 or 465.",
        ],
        ErrorKind::Network
        | ErrorKind::Protocol
        | ErrorKind::TlsSetup
        | ErrorKind::Authentication
        | ErrorKind::Refused
        | ErrorKind::Scenario => {
            &["The session stopped with this error. :reconnect starts a new session."]
        }
    };
    paragraphs.iter().map(|p| (*p).to_owned()).collect()
}

/// What the explain pane knows about the session beyond the reply itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Context {
    /// The server's port, which tells an MX (25) from submission (587, 465).
    pub port: Option<u16>,
    /// Whether the connection is inside TLS.
    pub tls: bool,
}

/// What a server is for, as far as the client can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Port 25: mail between servers, for its own domains.
    Mx,
    /// Port 587 or 465: users' mail, after AUTH.
    Submission,
    /// Another port.
    Unknown,
}

impl Context {
    fn role(&self) -> Role {
        match self.port.map(|port| port % 1000) {
            Some(25 | 525) => Role::Mx,
            Some(587 | 465) => Role::Submission,
            _ => Role::Unknown,
        }
    }
}

/// A recognised situation: what happened and what to do about it, as paragraphs.
pub fn situation(reply: &Reply, command: Option<&str>) -> Vec<String> {
    situation_in(reply, command, &Context::default())
}

/// [`situation`] with what is known of the session.
fn situation_in(reply: &Reply, command: Option<&str>, context: &Context) -> Vec<String> {
    let code = reply.code.value();
    let text = |needle: &str| reply.contains_text(needle);
    let command = command.unwrap_or_default();
    let enhanced = reply.enhanced.map(|e| (e.class, e.subject, e.detail));
    let owned = |paragraphs: &[&str]| paragraphs.iter().map(|p| (*p).to_owned()).collect();
    if code == 530 && text("STARTTLS") {
        return owned(&[
            "The server requires TLS before this command: send STARTTLS, then EHLO again. \
             Postfix says this with smtpd_tls_security_level=encrypt (TLS mandatory on this port) \
             or smtpd_tls_auth_only=yes (no AUTH before TLS); it is the right setting for port 587.",
            "If AUTH was what you sent, the credentials already crossed in cleartext: change the password.",
        ]);
    }
    if code == 530 {
        return owned(&[
            "The server wants authentication first (submission usually requires AUTH before MAIL). \
             Postfix: smtpd_sender_restrictions or smtpd_relay_restrictions with permit_sasl_authenticated.",
        ]);
    }
    if code == 535 {
        return owned(&[
            "The user name or password was rejected. Check both; some servers want the full address \
             as user name. Repeated failures may get your address blocked for a while.",
        ]);
    }
    if code == 334 {
        return challenge(reply);
    }
    if command == "STARTTLS" && code != 220 {
        return owned(&[
            "The server did not start TLS, so the session stays in cleartext. smtptui keeps blocking \
             credentials, and you should send nothing private on it.",
            "A server that offers STARTTLS and then refuses it (454 or 502) is suspect: an attacker \
             on the path can answer in the server's place to keep the session readable, and hope the \
             client goes on in cleartext (the lab's refuse-tls profile plays this). Do not go on: try \
             again later, or from another network, and ask the server's administrator.",
            "If it is really the server: Postfix needs smtpd_tls_cert_file, smtpd_tls_key_file and \
             smtpd_tls_security_level=may or encrypt.",
        ]);
    }
    if code == 450 && (enhanced == Some((4, 7, 1)) || text("greylist") || text("try again later")) {
        return owned(&[
            "Most likely greylisting: the server refuses the first attempt of an unknown \
             (client address, sender, recipient) triple with a temporary 450 and accepts the same \
             message on a retry a few minutes later. Real mail servers retry by themselves; by hand, \
             send the same MAIL FROM and RCPT TO again later. This is not 'relaying denied', which is \
             permanent (5.7.1 with a 5xx).",
        ]);
    }
    let relay_denied = (code == 554 && command == "RCPT")
        || ((code == 550 || code == 554) && (text("relay") || enhanced == Some((5, 7, 1))));
    if relay_denied {
        let role = context.role();
        let mut paragraphs = vec![
            "Relaying denied: the server takes mail for its own domains only, unless the client is \
             allowed to relay (it authenticated, or its address is trusted)."
                .to_owned(),
        ];
        if role != Role::Submission {
            paragraphs.push(
                "On an MX (port 25) that is right: it receives mail for its domains, and sending to \
                 other domains goes through your own provider's submission server (port 587 with \
                 STARTTLS and AUTH, or 465). Postfix: smtpd_relay_restrictions = permit_mynetworks, \
                 permit_sasl_authenticated, reject_unauth_destination."
                    .to_owned(),
            );
        }
        if role != Role::Mx {
            paragraphs.push(
                "On submission (587 or 465): authenticate first, STARTTLS then EHLO then AUTH, and \
                 send MAIL FROM with an address your account may use; without AUTH a submission \
                 server relays for nobody."
                    .to_owned(),
            );
        }
        return paragraphs;
    }
    if code == 503 && command == "AUTH" {
        return owned(&[
            "AUTH is not possible right now: already authenticated, or the server offers AUTH only after STARTTLS (send EHLO to see).",
        ]);
    }
    if code == 503 {
        return owned(&[
            "Commands out of order: a transaction is EHLO, MAIL FROM, RCPT TO (one or more), DATA.",
        ]);
    }
    if code == 220 && command == "STARTTLS" {
        return owned(&[
            "The server is ready for TLS; smtptui performs the handshake now. Send EHLO again afterwards: \
             everything learned before TLS is forgotten (RFC 3207 §4.2).",
        ]);
    }
    if code == 421 {
        return owned(&[
            "The server is closing the connection now, and every command after this would go \
             nowhere: it is shutting down, overloaded (too many sessions), or gave up on this client \
             (too many errors or unknown commands, an idle timeout). A 421 may come at any time, \
             even as the answer to another command (RFC 5321 §3.8).",
            "Use :reconnect to start a new session; after an error limit, send fewer wrong commands.",
        ]);
    }
    if code == 452 || (code == 552 && text("size")) {
        return owned(&[
            "A limit was hit: message size (see the SIZE extension) or the number of recipients.",
        ]);
    }
    if code == 354 {
        return owned(&[
            "Type the message: headers, an empty line, the body; end with a line holding only a dot.",
        ]);
    }
    if code == 235 {
        return owned(&[
            "You are authenticated; MAIL FROM may now use addresses your account may send as.",
        ]);
    }
    Vec::new()
}

/// A 334 challenge decoded: what the server asks for (`Username:`, `Password:`, a CRAM-MD5
/// nonce, an OAuth 2.0 error), shown escaped.
fn challenge(reply: &Reply) -> Vec<String> {
    use base64::Engine as _;
    let encoded: Vec<u8> = reply.texts().next().unwrap_or_default().to_vec();
    let encoded = String::from_utf8_lossy(&encoded).trim().to_owned();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&encoded)
        .unwrap_or_default();
    let what = if raw.starts_with(b"{") && raw.windows(8).any(|w| w == b"\"status\"") {
        Some(
            "This is an OAuth 2.0 error (RFC 7628 §3.2.2, the JSON also used for XOAUTH2): the \
             server refused the token (invalid_token: expired, revoked or for another account; \
             insufficient_scope: the token lacks the mail scope). OAUTHBEARER must answer it with \
             a single %x01 (AQ==), XOAUTH2 with an empty line; the server then sends its final \
             refusal. Get a fresh token from the identity provider.",
        )
    } else if raw.starts_with(b"<") && raw.ends_with(b">") && raw.contains(&b'@') {
        Some(
            "This is a CRAM-MD5 nonce (RFC 2195): the answer is the user name and the HMAC-MD5 \
             of this nonce keyed with the password, which smtptui computes. CRAM-MD5 is \
             obsolete: the server must store the password itself to check the answer.",
        )
    } else {
        None
    };
    let decoded = if encoded.is_empty() {
        "nothing: it waits for the initial response (an empty challenge)".to_owned()
    } else {
        match base64::engine::general_purpose::STANDARD.decode(&encoded) {
            Ok(bytes) if std::str::from_utf8(&bytes).is_ok() => {
                format!("'{}'", crate::proto::escape::escape_bytes(&bytes))
            }
            Ok(bytes) => format!("{} bytes of binary data", bytes.len()),
            Err(_) => "not valid base64: the server is not following RFC 4954".to_owned(),
        }
    };
    let mut lines = vec![format!(
        "The server's challenge, decoded from base64: {decoded}."
    )];
    lines.extend(what.map(str::to_owned));
    lines.push(
        "The answer is a base64 line typed into the hidden prompt (it is a credential: never \
         shown, never stored); * cancels the exchange."
            .to_owned(),
    );
    lines
}

/// What a SASL mechanism (RFC 4422) sends, what it protects and what it costs, for the AUTH
/// line of an EHLO reply and for a reply to AUTH.
pub fn mechanism(name: &str) -> &'static str {
    match name.to_ascii_uppercase().as_str() {
        "PLAIN" => {
            "user and password in one base64 message (RFC 4616): readable by anyone on the path, \
             so only inside TLS with a verified certificate; smtptui sends it on the AUTH line \
             (initial response) unless --no-sasl-ir"
        }
        "LOGIN" => {
            "user, then password, each base64 in answer to a prompt (not standardized): the same \
             exposure as PLAIN, in two steps"
        }
        "CRAM-MD5" => {
            "obsolete (RFC 2195): the answer is an HMAC-MD5 of the server's nonce keyed with the \
             password; no password crosses, but the user name does, a captured answer can be \
             cracked offline, a fake server cannot be told apart, and the server must store the \
             password itself (or an equivalent key) to check it; smtptui guards it like PLAIN"
        }
        "DIGEST-MD5" => "obsolete (RFC 6331 moved it to Historic); smtptui does not run it",
        "SCRAM-SHA-1" | "SCRAM-SHA-256" | "SCRAM-SHA-1-PLUS" | "SCRAM-SHA-256-PLUS" => {
            "salted challenge-response (RFC 5802, 7677): neither the password nor an equivalent \
             crosses or is stored; -PLUS binds it to the TLS channel. smtptui does not run it"
        }
        "XOAUTH2" => {
            "an OAuth 2.0 access token for the user (Google, Microsoft): a bearer token, which \
             anyone who sees it can use until it expires, so only inside verified TLS; a refused \
             token comes back as a JSON error in a 334, answered with an empty line"
        }
        "OAUTHBEARER" => {
            "the standard form of an OAuth 2.0 bearer token (RFC 7628): as sensitive as a \
             password until it expires; a refused token comes back as a JSON error in a 334 \
             (shown decoded), answered with %x01 before the final refusal. The token comes from \
             --password-file or $SMTPTUI_PASSWORD, never the command line"
        }
        "EXTERNAL" => {
            "the identity proved outside SASL, here the TLS client certificate (--cert, --key; \
             RFC 4422 appendix A): nothing secret crosses in the exchange, and the server must \
             have asked for the certificate in the handshake (Postfix: smtpd_tls_ask_ccert)"
        }
        "GSSAPI" => "Kerberos (RFC 4752); smtptui does not run it",
        "NTLM" => "Microsoft's NTLM: weak hashes, relayable; smtptui does not run it",
        "ANONYMOUS" => "no identity at all (RFC 4505): nothing to authenticate",
        _ => "a mechanism smtptui does not know",
    }
}

// ---------------------------------------------------------------------------------------------
// Extensions and their parameters
// ---------------------------------------------------------------------------------------------

/// What an EHLO extension keyword means (with its RFC), and how it is used.
pub fn extension(keyword: &str) -> &'static str {
    match keyword.to_ascii_uppercase().as_str() {
        "STARTTLS" => "the connection can be upgraded to TLS (RFC 3207)",
        "AUTH" => "SMTP authentication with the listed SASL mechanisms (RFC 4954)",
        "SIZE" => {
            "the largest message the server accepts, in bytes (RFC 1870): declare yours with \
             MAIL FROM:<...> SIZE=n, and one too big is refused at once (552), before a byte of \
             it is sent"
        }
        "PIPELINING" => {
            "several commands may be sent before reading the replies, which come back in order \
             (RFC 2920): paste them and press p; EHLO, DATA, AUTH, STARTTLS and QUIT may only \
             end a group"
        }
        "8BITMIME" => {
            "the body may hold bytes beyond ASCII when MAIL FROM says BODY=8BITMIME (RFC 6152)"
        }
        "SMTPUTF8" => {
            "UTF-8 in addresses and headers (RFC 6531, 6532), for a message whose MAIL FROM \
             ends with SMTPUTF8"
        }
        "ENHANCEDSTATUSCODES" => "replies carry codes like 5.7.0 (RFC 2034, RFC 3463)",
        "DSN" => {
            "delivery status notifications on request (RFC 3461): RET= and ENVID= on MAIL \
             FROM, NOTIFY= and ORCPT= on RCPT TO"
        }
        "CHUNKING" => {
            "BDAT n [LAST] may replace DATA: the message in chunks of n bytes each, sent as \
             they are, no dot-stuffing and no final dot; each chunk is answered (RFC 3030)"
        }
        "BINARYMIME" => {
            "binary bodies, declared with BODY=BINARYMIME and sent with BDAT only (RFC 3030)"
        }
        "VRFY" => "VRFY checks an address (often disabled to hide users)",
        "ETRN" => "a client may ask the server to flush its queue (RFC 1985)",
        "REQUIRETLS" => {
            "MAIL FROM:<...> REQUIRETLS: the message may travel on only over TLS with a \
             verified certificate, or it comes back (RFC 8689); offered inside TLS only"
        }
        "DELIVERBY" => "MAIL FROM:<...> BY=seconds;R|N asks for delivery in time (RFC 2852)",
        "MT-PRIORITY" => "MAIL FROM:<...> MT-PRIORITY=-9..9 asks for a priority (RFC 6710)",
        "HELP" => "HELP returns text for humans",
        "XCLIENT" => {
            "Postfix's XCLIENT (XCLIENT_README), offered only to clients in \
             smtpd_authorized_xclient_hosts: XCLIENT NAME=... ADDR=... LOGIN=... makes the \
             server start over as if that client had connected, to test its access rules; it \
             greets again with 220, so send EHLO again (TLS stays up). The words after it are \
             the attributes it takes"
        }
        "XFORWARD" => {
            "Postfix's XFORWARD (XFORWARD_README), offered only to clients in \
             smtpd_authorized_xforward_hosts: XFORWARD NAME=... ADDR=... tells the server whom \
             a content filter got the next message from, for its logs; answered 250, nothing \
             else changes. The words after it are the attributes it takes"
        }
        _ => "an extension smtptui does not know (shown as advertised)",
    }
}

/// What one MAIL FROM or RCPT TO parameter asks for, in a sentence (`SIZE=20000`,
/// `BODY=8BITMIME`, `NOTIFY=SUCCESS,FAILURE`, ...).
pub fn parameter(param: &str) -> String {
    let (key, value) = match param.split_once('=') {
        Some((key, value)) => (key.to_ascii_uppercase(), Some(value)),
        None => (param.to_ascii_uppercase(), None),
    };
    match (key.as_str(), value) {
        ("SIZE", Some(size)) if size.bytes().all(|b| b.is_ascii_digit()) && !size.is_empty() => {
            format!(
                "SIZE={size}: the message will be about {size} bytes (RFC 1870); a server \
                 whose limit is smaller refuses it now, with 552, not after it was sent"
            )
        }
        ("SIZE", _) => "SIZE= takes the message's size in bytes, digits only (RFC 1870)".to_owned(),
        ("BODY", Some(body)) => match body.to_ascii_uppercase().as_str() {
            "7BIT" => "BODY=7BIT: the body is ASCII only, the default (RFC 6152)".to_owned(),
            "8BITMIME" => "BODY=8BITMIME: the body may hold bytes beyond ASCII (RFC 6152); the \
                           server must have offered 8BITMIME"
                .to_owned(),
            "BINARYMIME" => "BODY=BINARYMIME: a binary body, which only BDAT can carry (RFC \
                             3030); the server must have offered BINARYMIME and CHUNKING"
                .to_owned(),
            _ => format!("BODY={body}: not a body type of RFC 6152 or 3030"),
        },
        ("SMTPUTF8", None) => "SMTPUTF8: the addresses and headers of this message may be UTF-8 \
                               (RFC 6531); without it a server refuses a domain that is not \
                               ASCII, and a server that did not offer SMTPUTF8 refuses the \
                               parameter (555)"
            .to_owned(),
        ("REQUIRETLS", None) => "REQUIRETLS: every hop must take the message over TLS with a \
                                 verified certificate, or return it (RFC 8689); only for a \
                                 session inside TLS, where the server offers it"
            .to_owned(),
        ("RET", Some(ret)) => match ret.to_ascii_uppercase().as_str() {
            "FULL" => {
                "RET=FULL: a failure report returns the whole message (RFC 3461 §4.3)".to_owned()
            }
            "HDRS" => "RET=HDRS: a failure report returns only the message's headers (RFC \
                       3461 §4.3)"
                .to_owned(),
            _ => format!("RET={ret}: RET takes FULL or HDRS (RFC 3461 §4.3)"),
        },
        ("ENVID", Some(id)) => format!(
            "ENVID={id}: an envelope ID of the sender's choosing, quoted in delivery reports \
             (RFC 3461 §4.4); written as xtext: '+', '=' and bytes outside ASCII as +XX"
        ),
        ("NOTIFY", Some(when)) => {
            let when = when.to_ascii_uppercase();
            let what = if when.split(',').any(|w| w == "NEVER") {
                "never send a delivery report for this recipient".to_owned()
            } else {
                let cases: Vec<&str> = when
                    .split(',')
                    .filter_map(|w| match w {
                        "SUCCESS" => Some("when delivered"),
                        "FAILURE" => Some("when it fails"),
                        "DELAY" => Some("when delayed"),
                        _ => None,
                    })
                    .collect();
                format!("send a delivery report {}", cases.join(", "))
            };
            format!(
                "NOTIFY={when}: {what} (RFC 3461 §4.1; NEVER alone, or SUCCESS, FAILURE, DELAY)"
            )
        }
        ("ORCPT", Some(original)) => format!(
            "ORCPT={original}: the recipient as the first client gave it (type;address in \
             xtext, RFC 3461 §4.2), quoted in delivery reports"
        ),
        ("AUTH", Some(sender)) => format!(
            "AUTH={sender}: the authenticated sender this message is submitted for (RFC 4954 \
             §5); <> for none"
        ),
        ("MT-PRIORITY", Some(priority)) => {
            format!("MT-PRIORITY={priority}: a priority from -9 to 9 (RFC 6710)")
        }
        ("BY", Some(by)) => {
            format!(
                "BY={by}: deliver within that many seconds, R to return, N to notify (RFC 2852)"
            )
        }
        _ => format!(
            "{param}: a parameter smtptui does not know; a server that does not know it \
             either refuses the command (555)"
        ),
    }
}

/// The parameters after the address of a MAIL FROM or RCPT TO line, each explained; empty
/// for another line, or one without parameters.
pub fn parameters(line: &str) -> Vec<String> {
    let (verb, _) = crate::proto::command::split_verb(line);
    if verb != "MAIL" && verb != "RCPT" {
        return Vec::new();
    }
    // The words after the path: the path ends at its '>' (or is the first word).
    let after_colon = line
        .split_once(':')
        .map_or("", |(_, rest)| rest)
        .trim_start();
    let rest = match after_colon.find('>') {
        Some(end) => &after_colon[end + 1..],
        None => after_colon
            .split_once(char::is_whitespace)
            .map_or("", |(_, rest)| rest),
    };
    let params: Vec<String> = rest.split_whitespace().map(parameter).collect();
    if params.is_empty() {
        return params;
    }
    let mut lines = vec!["Parameters sent:".to_owned()];
    lines.extend(params.into_iter().map(|p| format!("  {p}")));
    lines
}

/// The first line's text after its enhanced status code, if it has one.
fn after_enhanced(reply: &Reply) -> &[u8] {
    let text = reply.texts().next().unwrap_or_default();
    if reply.enhanced.is_none() {
        return text;
    }
    match text.iter().position(|&b| b == b' ') {
        Some(space) => &text[space + 1..],
        None => &[],
    }
}

/// What a reply means for the extension its command used: a pipelined group, BDAT, LMTP,
/// SMTPUTF8, SIZE, DSN, REQUIRETLS. `line` is the command line it answers, as shown.
fn extension_situation(reply: &Reply, line: &str) -> Vec<String> {
    let code = reply.code.value();
    let text = |needle: &str| reply.contains_text(needle);
    let (verb, _) = crate::proto::command::split_verb(line);
    let upper = line.to_ascii_uppercase();
    let mut paragraphs = Vec::new();
    let mut say = |text: &str| paragraphs.push(text.to_owned());
    match (verb.as_str(), code) {
        ("EHLO" | "HELO", 500 | 502) => say(
            "A server that does not know EHLO may speak LMTP (RFC 2033: a mailbox server on \
             port 24 or a UNIX socket), whose greeting command is LHLO: try LHLO.",
        ),
        ("LHLO", 500 | 502) => {
            say("LHLO is LMTP's greeting (RFC 2033); this server speaks SMTP: send EHLO.")
        }
        ("LHLO", 250) => say(
            "LMTP (RFC 2033): after the message's final dot the server answers once for each \
             recipient it accepted, in the order of the RCPT TO lines, so each mailbox can take \
             or refuse the message on its own.",
        ),
        ("BDAT", 250) if upper.contains("LAST") => say(
            "The last chunk was taken: the message is complete (RFC 3030). BDAT has no final \
             dot and no dot-stuffing: the bytes went as they are.",
        ),
        ("BDAT", 250) => {
            say("The chunk was taken (RFC 3030); send the next one, and LAST with the final chunk.")
        }
        ("BDAT", 521) => say(
            "The size in BDAT could not be read, so the server cannot know where the chunk \
             ends: it closes the session. BDAT takes the chunk's size in bytes, then LAST for \
             the final chunk.",
        ),
        ("BDAT", 400..=599) => say(
            "A refused chunk ends the transfer (RFC 3030 §2): the chunks sent after it are read \
             and discarded, and with LAST the transaction is over. Send RSET, then MAIL FROM \
             again.",
        ),
        (".", _) if after_enhanced(reply).starts_with(b"<") => {
            let named = after_enhanced(reply);
            let recipient = named
                .split(|&b| b == b'>')
                .next()
                .map(|t| String::from_utf8_lossy(t.get(1..).unwrap_or_default()).into_owned())
                .unwrap_or_default();
            let outcome = match code {
                200..=299 => "delivered to that mailbox",
                400..=499 => "not delivered to that mailbox for now; it may take it later",
                _ => "refused by that mailbox",
            };
            say(&format!(
                "Under LMTP the end of the message is answered once for each accepted \
                 recipient, in the order of the RCPT TO lines (RFC 2033 §4.2). This reply is \
                 for <{}>: {outcome}. The other recipients have their own replies.",
                crate::proto::escape::escape_str(&recipient)
            ));
        }
        (_, 555) => say(
            "The server does not take a parameter of this command, and refused the whole \
             command: look for the extension in its EHLO reply (SMTPUTF8, REQUIRETLS, DSN, \
             8BITMIME, SIZE...), or send the command without it. REQUIRETLS is only offered \
             inside TLS.",
        ),
        ("MAIL", 552) if upper.contains("SIZE=") => say(
            "The SIZE you declared is more than the server takes (its EHLO says how much): the \
             message was refused before a byte of it was sent (RFC 1870). Postfix keeps a size \
             declared in a refused MAIL FROM until RSET: send RSET before trying again.",
        ),
        (_, 553)
            if text("SMTPUTF8")
                || reply
                    .enhanced
                    .is_some_and(|e| (e.subject, e.detail) == (6, 7)) =>
        {
            say(
                "The address holds characters beyond ASCII: declare SMTPUTF8 at the end of MAIL \
             FROM (where the server offers it, RFC 6531).",
            )
        }
        ("MAIL" | "RCPT" | "VRFY", 501) if !line.is_ascii() && !upper.contains("SMTPUTF8") => say(
            "A domain beyond ASCII needs SMTPUTF8 (RFC 6531 §3.2): end MAIL FROM with SMTPUTF8, \
             where the server offers it; a UTF-8 local part Postfix lets through without it.",
        ),
        (_, 500) if text("UTF-8") => say(
            "The line was not valid UTF-8: a server with SMTPUTF8 refuses such lines before \
             reading them. Send text in UTF-8.",
        ),
        ("MAIL" | "RCPT", 501) if text("DSN") => {
            say("DSN parameters (RET, ENVID, NOTIFY, ORCPT) need DSN in the server's EHLO reply.")
        }
        ("MAIL" | "RCPT", 501) if text("parameter syntax") => say(
            "A DSN parameter is malformed, or given twice (RFC 3461): RET=FULL or HDRS, \
             ENVID= and ORCPT=type;address in xtext, NOTIFY=NEVER or a list of SUCCESS, \
             FAILURE and DELAY.",
        ),
        ("XCLIENT", 220) => say(
            "XCLIENT was accepted: the server has started over as if the client it names had \
             just connected, and this 220 is its new greeting (Postfix's XCLIENT_README). It \
             forgot the EHLO, any AUTH and any transaction, and now applies its rules to the \
             named client: send EHLO again. A TLS layer under the session stays up. With \
             LOGIN= the server takes the session as authenticated as that name, though no \
             password was checked: that is why only trusted hosts may send XCLIENT.",
        ),
        ("XCLIENT" | "XFORWARD", 550) => say(
            "The server does not trust this client with the command: Postfix allows XCLIENT \
             only from smtpd_authorized_xclient_hosts and XFORWARD only from \
             smtpd_authorized_xforward_hosts (and then lists it in its EHLO reply).",
        ),
        ("XCLIENT" | "XFORWARD", 501) => say(
            "An attribute was not understood: each is NAME=value with the value in xtext (+2B \
             for '+', +3D for '='), [UNAVAILABLE] when unknown, and only attributes the \
             server's EHLO line lists (XCLIENT: NAME ADDR PORT PROTO HELO LOGIN DESTADDR \
             DESTPORT; XFORWARD: NAME ADDR PORT PROTO HELO IDENT SOURCE).",
        ),
        ("XCLIENT" | "XFORWARD", 503) => say(
            "Not inside a mail transaction: send it before MAIL FROM, or after the message (or \
             RSET).",
        ),
        ("XFORWARD", 250) => say(
            "The server will log the next message as coming from the client XFORWARD named \
             (Postfix's XFORWARD_README); its access rules still judge this connection. The \
             attributes last until the end of that message.",
        ),
        ("MAIL", 250) if upper.contains("REQUIRETLS") => say(
            "The server takes the REQUIRETLS obligation: it will pass the message on only over \
             TLS with a verified certificate, or return it (RFC 8689).",
        ),
        ("MAIL", 503) if text("AUTH=") => say(
            "One AUTH= per message (RFC 4954 §5). Postfix keeps one given in a refused MAIL \
             FROM until RSET.",
        ),
        _ => {}
    }
    if code == 530 && text("REQUIRETLS")
        || reply
            .enhanced
            .is_some_and(|e| (e.subject, e.detail) == (7, 30))
    {
        paragraphs.push(
            "REQUIRETLS is needed for this message (RFC 8689): it may travel only over TLS \
             with a verified certificate. STARTTLS first; the server offers REQUIRETLS inside \
             TLS only."
                .to_owned(),
        );
    }
    paragraphs
}

/// Paragraphs explaining a reply: the code, the enhanced code, and the situation when
/// recognised. `command` is the verb of the command the reply answers (upper case), when known.
pub fn explain_reply(reply: &Reply, command: Option<&str>) -> Vec<String> {
    explain_reply_in(reply, command, &Context::default())
}

/// [`explain_reply`] with what is known of the session: the port (MX or submission advice)
/// and whether STARTTLS went missing from the EHLO reply.
pub fn explain_reply_in(reply: &Reply, command: Option<&str>, context: &Context) -> Vec<String> {
    let code = reply.code.value();
    let mut lines = vec![format!("{code}: {}", reply_code(code))];
    // What to do comes before the registry's words, so a small pane shows it first.
    lines.extend(situation_in(reply, command, context));
    if let Some(enhanced_code) = &reply.enhanced {
        lines.push(enhanced(enhanced_code));
        if let Some(detail) = enhanced_detail(enhanced_code.subject, enhanced_code.detail) {
            lines.push(detail.to_owned());
        }
        if enhanced_code.class != (code / 100) as u8 {
            lines.push(
                "The enhanced class disagrees with the reply code (RFC 3463 §2): the server is misconfigured."
                    .to_owned(),
            );
        }
    }
    if matches!(command, Some("EHLO" | "LHLO"))
        && code == 250
        && let Some(capabilities) = Capabilities::from_ehlo_reply(reply)
    {
        if !context.tls && !capabilities.has("STARTTLS") {
            lines.push(stripped_starttls(context, capabilities.has("AUTH")).to_owned());
        }
        lines.push("Extensions advertised:".to_owned());
        for ext in &capabilities.extensions {
            let params = if ext.params.is_empty() {
                String::new()
            } else {
                format!(" {}", ext.params.join(" "))
            };
            lines.push(format!(
                "  {}{params}: {}",
                ext.keyword,
                extension(&ext.keyword)
            ));
            if ext.keyword.eq_ignore_ascii_case("AUTH") {
                for name in &ext.params {
                    lines.push(format!("    {name}: {}", mechanism(name)));
                }
            }
        }
        if !capabilities.has("STARTTLS") && !capabilities.has("AUTH") {
            lines.push(
                "Neither STARTTLS nor AUTH: on TLS already, or a server for incoming mail only."
                    .to_owned(),
            );
        }
    }
    if !reply.anomalies.is_empty() {
        lines.push(format!(
            "Not RFC 5321 conformant: {}.",
            reply.anomalies.descriptions().join("; ")
        ));
    }
    lines
}

/// [`explain_reply_in`] for a reply whose command line is known (`line`, as the transcript
/// shows it): what the reply means for the extension the command used comes after the
/// reply code, and the parameters the line sent are explained at the end.
pub fn explain_reply_to(reply: &Reply, line: Option<&str>, context: &Context) -> Vec<String> {
    let verb = line.map(|line| crate::proto::command::split_verb(line).0);
    let mut lines = explain_reply_in(reply, verb.as_deref(), context);
    if let Some(line) = line
        && verb.as_deref() == Some("AUTH")
        && let Some(name) = line.split_whitespace().nth(1)
    {
        lines.push(format!("AUTH {name}: {}", mechanism(name)));
    }
    if let Some(line) = line {
        let advice = extension_situation(reply, line);
        let at = 1.min(lines.len());
        lines.splice(at..at, advice);
        lines.extend(parameters(line));
    }
    lines
}

/// What a cleartext EHLO reply without STARTTLS means, by where it came from.
fn stripped_starttls(context: &Context, offers_auth: bool) -> &'static str {
    match (context.role(), offers_auth) {
        (Role::Submission, _) | (_, true) => {
            "STARTTLS is missing, on a server that takes AUTH. A submission server should offer \
             it: an attacker on the path may have removed it from this reply (STARTTLS \
             stripping, the lab's strip profile) to get your password in cleartext. Send no \
             credentials; smtptui's guard blocks them. Try STARTTLS anyway: a real server that \
             supports it answers 220."
        }
        (Role::Mx, false) => {
            "No STARTTLS: mail to this MX would cross in cleartext. Many MXes still lack it; \
             one that had it before and lost it may have been stripped by an attacker on the path \
             (the lab's strip profile)."
        }
        (Role::Unknown, false) => {
            "No STARTTLS: this session cannot be encrypted. If the server should have it, an \
             attacker on the path may have removed it from this reply (STARTTLS stripping)."
        }
    }
}

/// Lines explaining a TLS upgrade: what was negotiated and what the certificate says.
/// `policy` is the standing guard policy from the command line: with `--insecure` an
/// unverified certificate no longer blocks AUTH, and the lines say so.
pub fn explain_tls(info: &TlsInfo, policy: GuardPolicy) -> Vec<String> {
    let mut lines = vec![format!(
        "TLS {} with {}{}.",
        info.version.trim_start_matches("TLSv"),
        info.cipher_suite,
        info.key_exchange
            .as_deref()
            .map(|group| format!(", key exchange {group}"))
            .unwrap_or_default()
    )];
    match &info.verification {
        Verification::Verified => lines.push(format!(
            "Certificate verified for {}: the chain leads to a trusted root and the name matches.",
            info.server_name
        )),
        Verification::Failed(problem) => {
            lines.push(format!("CERTIFICATE NOT VERIFIED: {problem}."));
            lines.push(if policy.allow_unverified_auth {
                "The traffic is encrypted, but the peer may not be the server you meant. \
                 --insecure is on: AUTH is NOT blocked, and credentials would go to this peer. \
                 Fix trust with --ca-file or --servername."
                    .to_owned()
            } else {
                "The traffic is encrypted, but the peer may not be the server you meant. AUTH is \
                 blocked unless you override it for one command. Fix trust with --ca-file or \
                 --servername."
                    .to_owned()
            });
        }
    }
    if let Some(leaf) = info.chain.first() {
        lines.push(format!(
            "Leaf: {}; issued by {}; {} days left.",
            leaf.subject, leaf.issuer, leaf.days_to_expiry
        ));
    }
    lines.push(
        "Next: EHLO. After STARTTLS it must be sent again, because what the server said before \
         TLS is forgotten (RFC 3207 §4.2); with implicit TLS it is simply the first command."
            .to_owned(),
    );
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::reply::{ReplyLimits, ReplyParser};

    fn reply(wire: &str) -> Reply {
        let mut parser = ReplyParser::new(ReplyLimits::default());
        parser.push(wire.as_bytes());
        parser
            .next_reply()
            .expect("valid reply")
            .expect("complete reply")
    }

    #[test]
    fn starttls_required_names_the_postfix_settings() {
        let lines = explain_reply(
            &reply("530 5.7.0 Must issue a STARTTLS command first\r\n"),
            Some("AUTH"),
        );
        let all = lines.join("\n");
        assert!(
            all.starts_with("530: Authentication or encryption required"),
            "{all}"
        );
        assert!(
            all.contains("5.7.0: permanent failure, security or policy"),
            "{all}"
        );
        assert!(all.contains("smtpd_tls_security_level=encrypt"), "{all}");
        assert!(all.contains("smtpd_tls_auth_only=yes"), "{all}");
    }

    #[test]
    fn every_ehlo_extension_is_explained() {
        let lines = explain_reply(
            &reply("250-lab.test\r\n250-SIZE 1000\r\n250-STARTTLS\r\n250 FROBNICATE\r\n"),
            Some("EHLO"),
        );
        let all = lines.join("\n");
        assert!(all.contains("SIZE 1000: the largest message"), "{all}");
        assert!(
            all.contains("STARTTLS: the connection can be upgraded"),
            "{all}"
        );
        assert!(
            all.contains("FROBNICATE: an extension smtptui does not know"),
            "{all}"
        );
    }

    #[test]
    fn codes_fall_back_to_their_class() {
        assert!(reply_code(299).starts_with("Positive completion"));
        assert!(reply_code(479).starts_with("Transient failure"));
        assert!(reply_code(599).starts_with("Permanent failure"));
        assert!(reply_code(199).starts_with("Not a valid"));
    }

    #[test]
    fn enhanced_codes_read_as_words() {
        let (code, _) = EnhancedCode::parse_prefix(b"5.1.1").expect("parses");
        assert_eq!(
            enhanced(&code),
            "5.1.1: permanent failure, addressing: Bad destination mailbox address"
        );
        let (code, _) = EnhancedCode::parse_prefix(b"2.7.0").expect("parses");
        assert_eq!(
            enhanced(&code),
            "2.7.0: success, security or policy: Other or undefined security status"
        );
        let (code, _) = EnhancedCode::parse_prefix(b"4.9.99").expect("parses");
        assert_eq!(
            enhanced(&code),
            "4.9.99: persistent transient failure, unknown subject"
        );
        let (code, _) = EnhancedCode::parse_prefix(b"5.7.99").expect("parses");
        assert!(enhanced(&code).ends_with("a detail the registry does not define"));
    }

    /// Every code of the IANA registry has a title and an explanation, and none outside it
    /// pretends to be registered.
    #[test]
    fn every_registered_code_is_explained() {
        assert_eq!(IANA_REGISTRY.len(), 81, "the registry up to X.7.30");
        for &(subject, detail, title) in IANA_REGISTRY {
            let explanation = enhanced_detail(subject, detail).unwrap_or_default();
            assert!(
                !explanation.is_empty(),
                "X.{subject}.{detail} ({title}) is not explained"
            );
            assert!(
                explanation.ends_with('.'),
                "X.{subject}.{detail}: {explanation}"
            );
            let code = EnhancedCode {
                class: 5,
                subject,
                detail,
            };
            assert!(enhanced(&code).ends_with(title), "X.{subject}.{detail}");
        }
        for subject in 0..=7 {
            for detail in 0..=40 {
                let registered = registered_title(subject, detail).is_some();
                assert_eq!(
                    enhanced_detail(subject, detail).is_some(),
                    registered,
                    "X.{subject}.{detail}"
                );
            }
        }
    }

    #[test]
    fn the_attack_lessons_are_taught() {
        let submission = Context {
            port: Some(587),
            tls: false,
        };
        let mx = Context {
            port: Some(25),
            ..submission
        };
        let all = |lines: Vec<String>| lines.join(" ");
        // A refused STARTTLS may be an attacker forcing cleartext.
        let refused = all(explain_reply(
            &reply("454 4.7.0 TLS not available due to local problem\r\n"),
            Some("STARTTLS"),
        ));
        assert!(refused.contains("attacker on the path"), "{refused}");
        assert!(refused.contains("refuse-tls"), "{refused}");
        // STARTTLS missing from EHLO where it should be.
        let stripped = all(explain_reply_in(
            &reply("250-lab.test\r\n250 AUTH PLAIN LOGIN\r\n"),
            Some("EHLO"),
            &submission,
        ));
        assert!(stripped.contains("STARTTLS stripping"), "{stripped}");
        let inside_tls = all(explain_reply_in(
            &reply("250-lab.test\r\n250 AUTH PLAIN LOGIN\r\n"),
            Some("EHLO"),
            &Context {
                tls: true,
                ..submission
            },
        ));
        assert!(!inside_tls.contains("stripping"), "{inside_tls}");
        // 334 challenges decoded.
        let challenge = all(explain_reply(&reply("334 VXNlcm5hbWU6\r\n"), Some("AUTH")));
        assert!(challenge.contains("'Username:'"), "{challenge}");
        let oauth = all(explain_reply(
            &reply("334 eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0=\r\n"),
            Some("AUTH"),
        ));
        assert!(
            oauth.contains("invalid_token") && oauth.contains("%x01"),
            "{oauth}"
        );
        let cram = all(explain_reply(
            &reply("334 PDEyMzQ1QGxhYi50ZXN0Pg==\r\n"),
            Some("AUTH"),
        ));
        assert!(cram.contains("CRAM-MD5 nonce"), "{cram}");
        // Each mechanism of an EHLO's AUTH line, and the one an AUTH line used.
        let ehlo = all(explain_reply_in(
            &reply("250-lab.test\r\n250 AUTH PLAIN CRAM-MD5 OAUTHBEARER EXTERNAL\r\n"),
            Some("EHLO"),
            &Context {
                tls: true,
                ..submission
            },
        ));
        for says in ["obsolete", "RFC 7628", "client certificate", "RFC 4616"] {
            assert!(ehlo.contains(says), "{says}: {ehlo}");
        }
        let answered = all(explain_reply_to(
            &reply("235 2.7.0 ok\r\n"),
            Some("AUTH CRAM-MD5"),
            &Context::default(),
        ));
        assert!(answered.contains("AUTH CRAM-MD5: obsolete"), "{answered}");
        // 4.7.1 on a 450 is greylisting, not relaying denied.
        let grey = all(explain_reply(
            &reply("450 4.7.1 <a@b>: Recipient address rejected: Greylisted\r\n"),
            Some("RCPT"),
        ));
        assert!(grey.contains("greylisting"), "{grey}");
        assert!(!grey.starts_with("Relaying denied"), "{grey}");
        // Relay denied: different advice on an MX and on submission.
        let denied = reply("554 5.7.1 <x@example.com>: Relay access denied\r\n");
        let on_mx = all(explain_reply_in(&denied, Some("RCPT"), &mx));
        let on_submission = all(explain_reply_in(&denied, Some("RCPT"), &submission));
        assert!(
            on_mx.contains("your own provider's submission server"),
            "{on_mx}"
        );
        assert!(!on_mx.contains("authenticate first"), "{on_mx}");
        assert!(
            on_submission.contains("authenticate first"),
            "{on_submission}"
        );
        assert!(
            !on_submission.contains("your own provider"),
            "{on_submission}"
        );
        // A 421 that closes the session.
        let closing = all(explain_reply(
            &reply("421 4.4.2 lab.test Error: timeout exceeded\r\n"),
            None,
        ));
        assert!(closing.contains("closing the connection"), "{closing}");
        assert!(closing.contains(":reconnect"), "{closing}");
    }

    /// Every extension the lab and the tools speak is explained, with how to use it.
    #[test]
    fn each_extension_says_what_it_is_and_how_it_is_used() {
        for (keyword, says) in [
            ("PIPELINING", "press p"),
            ("SIZE", "SIZE=n"),
            ("8BITMIME", "BODY=8BITMIME"),
            ("SMTPUTF8", "ends with SMTPUTF8"),
            ("DSN", "NOTIFY= and ORCPT="),
            ("CHUNKING", "BDAT n [LAST]"),
            ("BINARYMIME", "BODY=BINARYMIME"),
            ("REQUIRETLS", "inside TLS only"),
            ("DELIVERBY", "BY="),
            ("MT-PRIORITY", "MT-PRIORITY="),
        ] {
            let text = extension(keyword);
            assert!(text.contains(says), "{keyword}: {text}");
            assert!(text.contains("RFC"), "{keyword}: {text}");
        }
    }

    #[test]
    fn xclient_and_xforward_are_explained_with_what_their_replies_mean() {
        assert!(extension("XCLIENT").contains("send EHLO again"));
        assert!(extension("xforward").contains("smtpd_authorized_xforward_hosts"));
        let context = Context::default();
        for (line, wire, says) in [
            (
                "XCLIENT ADDR=192.0.2.66",
                "220 mail.example ESMTP\r\n",
                "send EHLO again",
            ),
            (
                "XCLIENT LOGIN=bob",
                "220 mail.example ESMTP\r\n",
                "no password was checked",
            ),
            (
                "XCLIENT ADDR=192.0.2.66",
                "550 5.7.0 Error: insufficient authorization\r\n",
                "smtpd_authorized_xclient_hosts",
            ),
            (
                "XFORWARD ADDR=192.0.2.77",
                "250 2.0.0 Ok\r\n",
                "log the next message",
            ),
            (
                "XFORWARD BOGUS=1",
                "501 5.5.4 Bad XFORWARD attribute name: BOGUS\r\n",
                "NAME=value",
            ),
        ] {
            let text = explain_reply_to(&reply(wire), Some(line), &context).join("\n");
            assert!(text.contains(says), "{line} / {wire}: {text}");
        }
    }

    #[test]
    fn each_parameter_is_explained_and_a_line_lists_its_own() {
        for (param, says) in [
            ("SIZE=20000", "about 20000 bytes"),
            ("SIZE=x", "digits only"),
            ("BODY=8BITMIME", "beyond ASCII"),
            ("BODY=7BIT", "ASCII only"),
            ("BODY=BINARYMIME", "only BDAT"),
            ("BODY=9BIT", "not a body type"),
            ("smtputf8", "may be UTF-8"),
            ("REQUIRETLS", "verified certificate"),
            ("RET=HDRS", "only the message's headers"),
            ("RET=FULL", "the whole message"),
            ("ENVID=abc", "envelope ID"),
            ("NOTIFY=SUCCESS,DELAY", "when delivered, when delayed"),
            ("NOTIFY=NEVER", "never send"),
            ("ORCPT=rfc822;a@b", "first client gave it"),
            ("AUTH=<>", "authenticated sender"),
            ("MT-PRIORITY=3", "RFC 6710"),
            ("BY=120;R", "RFC 2852"),
            ("FROBNICATE=1", "does not know"),
        ] {
            let text = parameter(param);
            assert!(text.contains(says), "{param}: {text}");
        }
        let listed = parameters("MAIL FROM:<a b@c> SIZE=10 SMTPUTF8");
        assert_eq!(listed.len(), 3, "{listed:?}");
        assert!(listed[1].contains("SIZE=10") && listed[2].contains("SMTPUTF8"));
        assert_eq!(parameters("RCPT TO:bob@lab.test NOTIFY=NEVER").len(), 2);
        assert!(parameters("MAIL FROM:<a@b>").is_empty());
        assert!(parameters("NOOP SIZE=1").is_empty());
    }

    #[test]
    fn replies_are_explained_for_the_extension_their_command_used() {
        let all = |wire: &str, line: &str| {
            explain_reply_to(&reply(wire), Some(line), &Context::default()).join(" ")
        };
        let lmtp = all(
            "452 4.2.2 <b@lab.test>: Error: message not accepted: Mailbox full\r\n",
            ".",
        );
        assert!(lmtp.contains("This reply is for <b@lab.test>"), "{lmtp}");
        assert!(lmtp.contains("RFC 2033"), "{lmtp}");
        let plain_end = all("250 2.0.0 Ok: queued as X\r\n", ".");
        assert!(!plain_end.contains("RFC 2033"), "{plain_end}");
        assert!(all("500 5.5.2 Error: command not recognized\r\n", "EHLO x").contains("try LHLO"));
        assert!(all("500 5.5.2 Error: command not recognized\r\n", "LHLO x").contains("send EHLO"));
        assert!(all("250 2.0.0 Ok: 3 bytes\r\n", "BDAT 3").contains("the next one"));
        assert!(all("250 2.0.0 Ok: 3 bytes queued as X\r\n", "BDAT 3 LAST").contains("complete"));
        assert!(all("554 5.5.1 Error: no valid recipients\r\n", "BDAT 3").contains("RSET"));
        let unsupported = all(
            "555 5.5.4 Unsupported option: REQUIRETLS\r\n",
            "MAIL FROM:<a@lab.test> REQUIRETLS",
        );
        assert!(unsupported.contains("inside TLS"), "{unsupported}");
        assert!(unsupported.contains("Parameters sent:"), "{unsupported}");
        // What to do comes right after the code, before the registry's words.
        let lines = explain_reply_to(
            &reply("552 5.3.4 Message size exceeds fixed limit\r\n"),
            Some("MAIL FROM:<a@lab.test> SIZE=99999999"),
            &Context::default(),
        );
        assert!(lines[1].contains("RSET"), "{lines:?}");
        assert!(
            all(
                "501 5.1.7 Bad sender address syntax\r\n",
                "MAIL FROM:<a@\u{e4}.de>"
            )
            .contains("SMTPUTF8")
        );
        assert!(all("500 5.5.2 Error: bad UTF-8 syntax\r\n", "NOOP").contains("UTF-8"));
        assert!(
            all(
                "501 5.5.4 Error: Bad NOTIFY parameter syntax\r\n",
                "RCPT TO:<a@b> NOTIFY=X"
            )
            .contains("NOTIFY=NEVER or a list")
        );
        assert!(all("250 2.1.0 Ok\r\n", "MAIL FROM:<a@b> REQUIRETLS").contains("obligation"));
        assert!(all("250-lab.test\r\n250 PIPELINING\r\n", "LHLO me").contains("once for each"));
    }

    #[test]
    fn class_mismatch_is_pointed_out() {
        let lines = explain_reply(&reply("250 5.0.0 odd\r\n"), None);
        assert!(lines.iter().any(|l| l.contains("disagrees")), "{lines:?}");
    }
}
