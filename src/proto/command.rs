//! Classifying what the user is about to send.
//!
//! The engine has to know when a typed line carries credentials or changes the connection
//! (STARTTLS, DATA) no matter how it was typed: lower case, extra spaces, tabs. Classification
//! is deliberately generous about what counts as `AUTH`, because a false positive costs one
//! confirmation and a false negative costs a password.

/// What a command line means to the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandKind {
    /// `EHLO` or `HELO` (or LMTP's `LHLO`): the reply describes the server's capabilities.
    Hello {
        /// Whether it was EHLO/LHLO (extended) rather than HELO.
        extended: bool,
    },
    /// `STARTTLS`: a 220 reply means the TLS handshake starts next.
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954).
    Auth {
        /// The SASL mechanism, upper-cased (empty if none was typed).
        mechanism: String,
        /// Whether an initial response followed the mechanism on the same line.
        has_initial_response: bool,
    },
    /// `DATA`: a 354 reply means message lines follow, ended by a lone dot.
    Data,
    /// `QUIT`.
    Quit,
    /// `MAIL FROM:`.
    Mail,
    /// `RCPT TO:`.
    Rcpt,
    /// Anything else; sent as typed.
    Other,
}

/// Why a line cannot be sent as one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// CR or LF inside the line would end it early and start another command on the wire,
    /// one the engine never classified (and so never showed to the credential guard).
    #[error(
        "a line cannot contain CR or LF: it would send a second, unchecked command; send each line separately"
    )]
    LineBreak,
}

/// Checks that `line` is exactly one line on the wire.
///
/// # Errors
/// [`LineError::LineBreak`] when it holds a CR or LF.
pub fn check_single_line(line: &str) -> Result<(), LineError> {
    if line.contains(['\r', '\n']) {
        Err(LineError::LineBreak)
    } else {
        Ok(())
    }
}

/// The initial response of an `AUTH` line (`AUTH PLAIN <response>` or `AUTH=PLAIN <response>`).
pub fn auth_initial_response(line: &str) -> Option<&str> {
    let (verb, rest) = split_verb(line);
    let mut words = rest.split_ascii_whitespace();
    if verb == "AUTH" {
        words.next()?;
    } else if !verb.starts_with("AUTH=") {
        return None;
    }
    words.next()
}

/// Splits a line into its verb (upper-cased) and the rest, ignoring surrounding whitespace.
pub fn split_verb(line: &str) -> (String, &str) {
    let trimmed = line.trim_start();
    let end = trimmed
        .find(|c: char| c.is_ascii_whitespace())
        .unwrap_or(trimmed.len());
    let (verb, rest) = trimmed.split_at(end);
    (verb.to_ascii_uppercase(), rest.trim())
}

/// Classifies a command line typed by a user or read from a scenario.
pub fn classify(line: &str) -> CommandKind {
    let (verb, rest) = split_verb(line);
    match verb.as_str() {
        "EHLO" | "LHLO" => CommandKind::Hello { extended: true },
        "HELO" => CommandKind::Hello { extended: false },
        "STARTTLS" => CommandKind::StartTls,
        "DATA" => CommandKind::Data,
        "QUIT" => CommandKind::Quit,
        "MAIL" => CommandKind::Mail,
        "RCPT" => CommandKind::Rcpt,
        // Some clients and servers accept the draft form `AUTH=LOGIN`; treat it as AUTH too.
        v if v == "AUTH" || v.starts_with("AUTH=") => {
            let mut words = rest.split_ascii_whitespace();
            let mechanism = match v.strip_prefix("AUTH=") {
                Some(inline) => inline.to_owned(),
                None => words.next().unwrap_or_default().to_ascii_uppercase(),
            };
            CommandKind::Auth {
                mechanism: mechanism.to_ascii_uppercase(),
                has_initial_response: words.next().is_some(),
            }
        }
        _ => CommandKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_in_any_spelling_is_auth() {
        for line in [
            "AUTH PLAIN",
            "auth plain",
            "  Auth\tLogin",
            "AUTH XOAUTH2 dXNlcj1h",
            "AUTH=LOGIN",
            "AUTH",
        ] {
            assert!(
                matches!(classify(line), CommandKind::Auth { .. }),
                "{line:?}"
            );
        }
        assert_eq!(
            classify("AUTH PLAIN AGFsaWNlAHNlY3JldA=="),
            CommandKind::Auth {
                mechanism: "PLAIN".into(),
                has_initial_response: true
            }
        );
        assert_eq!(
            classify("auth login"),
            CommandKind::Auth {
                mechanism: "LOGIN".into(),
                has_initial_response: false
            }
        );
    }

    #[test]
    fn initial_responses_in_both_spellings() {
        assert_eq!(auth_initial_response("AUTH PLAIN abc="), Some("abc="));
        assert_eq!(auth_initial_response("auth=plain  abc="), Some("abc="));
        assert_eq!(auth_initial_response("AUTH LOGIN"), None);
        assert_eq!(auth_initial_response("MAIL FROM:<a> b"), None);
    }

    #[test]
    fn line_breaks_are_refused() {
        assert_eq!(
            check_single_line("NOOP\r\nAUTH PLAIN AGFsaWNl"),
            Err(LineError::LineBreak)
        );
        assert_eq!(check_single_line("a\rb"), Err(LineError::LineBreak));
        assert_eq!(check_single_line("a\nb"), Err(LineError::LineBreak));
        assert_eq!(check_single_line("EHLO x"), Ok(()));
    }

    #[test]
    fn other_verbs() {
        assert_eq!(classify("starttls"), CommandKind::StartTls);
        assert_eq!(classify("EHLO x"), CommandKind::Hello { extended: true });
        assert_eq!(classify("helo x"), CommandKind::Hello { extended: false });
        assert_eq!(classify("DATA"), CommandKind::Data);
        assert_eq!(classify("MAIL FROM:<a@b>"), CommandKind::Mail);
        assert_eq!(classify("AUTHORIZE"), CommandKind::Other);
        assert_eq!(classify(""), CommandKind::Other);
        assert_eq!(classify("   "), CommandKind::Other);
    }
}
