//! Plain-language explanations of what the server said: reply codes (RFC 5321 §4.2), enhanced
//! status codes (RFC 3463, the IANA registry of RFC 5248), EHLO extensions, known situations
//! with what to do about them, and what a TLS upgrade negotiated.
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

/// The registered meaning of `subject.detail` (RFC 3463 §3.3 and the RFC 5248 registry),
/// for the codes a person meets most.
fn enhanced_detail(subject: u16, detail: u16) -> Option<&'static str> {
    Some(match (subject, detail) {
        (0, 0) => "Other undefined status",
        (1, 0) => "Other address status",
        (1, 1) => "Bad destination mailbox address (no such user)",
        (1, 2) => "Bad destination system address",
        (1, 3) => "Bad destination mailbox address syntax",
        (1, 7) => "Bad sender's mailbox address syntax",
        (1, 8) => "Bad sender's system address",
        (1, 10) => "Recipient address has null MX",
        (2, 0) => "Other or undefined mailbox status",
        (2, 1) => "Mailbox disabled, not accepting messages",
        (2, 2) => "Mailbox full",
        (2, 3) => "Message length exceeds administrative limit",
        (3, 0) => "Other or undefined mail system status",
        (3, 4) => "Message too big for system",
        (4, 0) => "Other or undefined network or routing status",
        (4, 7) => "Delivery time expired",
        (5, 0) => "Other or undefined protocol status",
        (5, 1) => "Invalid command",
        (5, 2) => "Syntax error",
        (5, 3) => "Too many recipients",
        (5, 4) => "Invalid command arguments",
        (6, 0) => "Other or undefined media error",
        (7, 0) => "Other or undefined security status",
        (7, 1) => "Delivery not authorized, message refused (e.g. relaying denied)",
        (7, 8) => "Authentication credentials invalid",
        (7, 9) => "Authentication mechanism is too weak",
        (7, 10) => "Encryption needed",
        (7, 11) => "Encryption required for requested authentication mechanism",
        (7, 12) => "A password transition is needed",
        (7, 13) => "User account disabled",
        (7, 14) => "Trust relationship required",
        _ => return None,
    })
}

/// One line describing an enhanced status code, e.g.
/// `5.7.0: permanent failure, security or policy: Other or undefined security status ...`.
pub fn enhanced(code: &EnhancedCode) -> String {
    let mut text = format!(
        "{code}: {}, {}",
        enhanced_class(code.class),
        enhanced_subject(code.subject)
    );
    if let Some(detail) = enhanced_detail(code.subject, code.detail) {
        text.push_str(": ");
        text.push_str(detail);
        if (code.subject, code.detail) == (7, 0) && code.class != 2 {
            // A hint for failures only: 235 2.7.0 is a successful AUTH, not a demand for one.
            text.push_str(" (often: TLS or authentication required)");
        }
    }
    text
}

/// Lines explaining an error that ended (or stopped) the session: what it means and what
/// to do next. Decided by the error's kind, never by its wording.
pub fn explain_error(kind: ErrorKind) -> Vec<String> {
    let lines: &[&str] = match kind {
        ErrorKind::Injection => &[
            "Response injection: bytes arrived in cleartext after the 220 to STARTTLS and before TLS began.",
            "They would have been read as replies inside TLS: an attacker on the path can plant a fake EHLO",
            "reply this way (CVE-2021-22947 class), or a server may pipeline wrongly. smtptui aborted the",
            "session; nothing more was sent and no credentials left. Find out which before trusting this path.",
        ],
        ErrorKind::OutOfStep => &[
            "The server sent replies nobody asked for, so its replies can no longer be matched to the",
            "commands they answer, and the session was ended. A server out of step has lost count, or is",
            "not the server it seems. :reconnect starts over; send one command at a time.",
        ],
        ErrorKind::Timeout => &[
            "The server did not answer in time (--timeout, default 30 s). A slow or overloaded server,",
            "a firewall that drops packets, or a tarpit can do this. :reconnect tries again.",
        ],
        ErrorKind::Closed => &[
            "The server hung up. Servers do this after a 421, after too many errors or unknown commands,",
            "when idle too long, or when a firewall or proxy drops the session. :reconnect starts a new one.",
        ],
        ErrorKind::Handshake | ErrorKind::Certificate => &[
            "TLS could not be set up. smtptui never falls back to cleartext after STARTTLS: the session is",
            "closed. Check the server's certificate and TLS settings (F3 shows what was received).",
        ],
        ErrorKind::Connect => &[
            "No connection: nothing listens there, a firewall refuses it, or the name or port is wrong.",
            "Port 25 is often blocked by home and cloud providers; submission uses 587 or 465.",
        ],
        ErrorKind::Network
        | ErrorKind::Protocol
        | ErrorKind::ServiceClosing
        | ErrorKind::TlsSetup
        | ErrorKind::Authentication
        | ErrorKind::Refused
        | ErrorKind::Scenario => {
            &["The session stopped with this error. :reconnect starts a new session."]
        }
    };
    lines.iter().map(|line| (*line).to_owned()).collect()
}

/// A recognised situation: what happened and what to do about it, in a few lines.
pub fn situation(reply: &Reply, command: Option<&str>) -> Vec<&'static str> {
    let code = reply.code.value();
    let text = |needle: &str| reply.contains_text(needle);
    let command = command.unwrap_or_default();
    if code == 530 && text("STARTTLS") {
        return vec![
            "The server requires TLS before this command: send STARTTLS, then EHLO again.",
            "Postfix says this with smtpd_tls_security_level=encrypt (TLS mandatory on this port)",
            "or smtpd_tls_auth_only=yes (no AUTH before TLS); it is the right setting for port 587.",
            "If AUTH was what you sent, the credentials already crossed in cleartext: change the password.",
        ];
    }
    if code == 530 {
        return vec![
            "The server wants authentication first (submission usually requires AUTH before MAIL).",
            "Postfix: smtpd_sender_restrictions or smtpd_relay_restrictions with permit_sasl_authenticated.",
        ];
    }
    if code == 535 {
        return vec![
            "The user name or password was rejected. Check both; some servers want the full address",
            "as user name. Repeated failures may get your address blocked for a while.",
        ];
    }
    if (code == 554 && command == "RCPT") || ((code == 550 || code == 554) && text("relay")) {
        return vec![
            "Relaying denied: the server accepts mail for its own domains only, unless you AUTH first",
            "(Postfix: smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination).",
        ];
    }
    if code == 503 && command == "AUTH" {
        return vec![
            "AUTH is not possible right now: already authenticated, or the server offers AUTH only after STARTTLS (send EHLO to see).",
        ];
    }
    if code == 503 {
        return vec![
            "Commands out of order: a transaction is EHLO, MAIL FROM, RCPT TO (one or more), DATA.",
        ];
    }
    if (code == 502 || code == 454) && command == "STARTTLS" {
        return vec![
            "The server cannot start TLS. smtptui stays in cleartext and keeps blocking credentials.",
            "Postfix needs smtpd_tls_cert_file, smtpd_tls_key_file and smtpd_tls_security_level=may or encrypt.",
        ];
    }
    if code == 220 && command == "STARTTLS" {
        return vec![
            "The server is ready for TLS; smtptui performs the handshake now. Send EHLO again afterwards:",
            "everything learned before TLS is forgotten (RFC 3207 §4.2).",
        ];
    }
    if code == 421 {
        return vec![
            "The server is closing the connection (shutting down, too many errors, or an idle timeout).",
            "Use :reconnect to start a new session.",
        ];
    }
    if code == 452 || (code == 552 && text("size")) {
        return vec![
            "A limit was hit: message size (see the SIZE extension) or the number of recipients.",
        ];
    }
    if code == 354 {
        return vec![
            "Type the message: headers, an empty line, the body; end with a line holding only a dot.",
        ];
    }
    if code == 235 {
        return vec![
            "You are authenticated; MAIL FROM may now use addresses your account may send as.",
        ];
    }
    Vec::new()
}

/// What an EHLO extension keyword means (with its RFC).
pub fn extension(keyword: &str) -> &'static str {
    match keyword.to_ascii_uppercase().as_str() {
        "STARTTLS" => "the connection can be upgraded to TLS (RFC 3207)",
        "AUTH" => "SMTP authentication with the listed SASL mechanisms (RFC 4954)",
        "SIZE" => "the largest message the server accepts, in bytes (RFC 1870)",
        "PIPELINING" => "several commands may be sent before reading the replies (RFC 2920)",
        "8BITMIME" => "message bodies may contain 8-bit data (RFC 6152)",
        "SMTPUTF8" => "UTF-8 addresses and headers (RFC 6531)",
        "ENHANCEDSTATUSCODES" => "replies carry codes like 5.7.0 (RFC 2034, RFC 3463)",
        "DSN" => "delivery status notifications on request (RFC 3461)",
        "CHUNKING" => "BDAT may replace DATA (RFC 3030)",
        "BINARYMIME" => "binary message bodies with BDAT (RFC 3030)",
        "VRFY" => "VRFY checks an address (often disabled to hide users)",
        "ETRN" => "a client may ask the server to flush its queue (RFC 1985)",
        "REQUIRETLS" => "the message may require TLS on every hop (RFC 8689)",
        "DELIVERBY" => "delivery deadlines (RFC 2852)",
        "MT-PRIORITY" => "message priorities (RFC 6710)",
        "HELP" => "HELP returns text for humans",
        "XCLIENT" | "XFORWARD" => "Postfix proxy extensions, for trusted clients only",
        _ => "an extension smtptui does not know (shown as advertised)",
    }
}

/// Lines explaining a reply: the code, the enhanced code, and the situation when recognised.
/// `command` is the verb of the command the reply answers (upper case), when known.
pub fn explain_reply(reply: &Reply, command: Option<&str>) -> Vec<String> {
    let code = reply.code.value();
    let mut lines = vec![format!("{code}: {}", reply_code(code))];
    if let Some(enhanced_code) = &reply.enhanced {
        lines.push(enhanced(enhanced_code));
        if enhanced_code.class != (code / 100) as u8 {
            lines.push(
                "The enhanced class disagrees with the reply code (RFC 3463 §2): the server is misconfigured."
                    .to_owned(),
            );
        }
    }
    lines.extend(situation(reply, command).into_iter().map(str::to_owned));
    if matches!(command, Some("EHLO" | "LHLO"))
        && code == 250
        && let Some(capabilities) = Capabilities::from_ehlo_reply(reply)
    {
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
            "5.1.1: permanent failure, addressing: Bad destination mailbox address (no such user)"
        );
        // The 'TLS or authentication required' hint belongs to failures, not to 235 2.7.0.
        let (code, _) = EnhancedCode::parse_prefix(b"2.7.0").expect("parses");
        assert_eq!(
            enhanced(&code),
            "2.7.0: success, security or policy: Other or undefined security status"
        );
        let (code, _) = EnhancedCode::parse_prefix(b"5.7.0").expect("parses");
        assert!(enhanced(&code).ends_with("(often: TLS or authentication required)"));
        let (code, _) = EnhancedCode::parse_prefix(b"4.9.99").expect("parses");
        assert_eq!(
            enhanced(&code),
            "4.9.99: persistent transient failure, unknown subject"
        );
    }

    #[test]
    fn class_mismatch_is_pointed_out() {
        let lines = explain_reply(&reply("250 5.0.0 odd\r\n"), None);
        assert!(lines.iter().any(|l| l.contains("disagrees")), "{lines:?}");
    }
}
