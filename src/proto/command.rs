//! Classifying what the user is about to send.
//!
//! The engine has to know when a typed line carries credentials or changes the connection
//! (STARTTLS, DATA) no matter how it was typed: lower case, extra spaces, tabs. Classification
//! is deliberately generous about what counts as `AUTH`, because a false positive costs one
//! confirmation and a false negative costs a password.

use super::escape::{escape_str, needs_escape};

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
    /// Postfix's `XCLIENT`: a 220 reply means the session starts over as the client named.
    Xclient,
    /// Postfix's `XFORWARD`: what the server logs for the next message.
    Xforward,
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
    /// A control character in a command: no SMTP command needs one, and servers split words
    /// on some (vertical tab, form feed) that a reader of the line would not see as spaces.
    #[error(
        "a command cannot contain the control character {0}; type the command with plain spaces"
    )]
    ControlCharacter(String),
    /// The line repeats credentials the session already sent (see the engine).
    #[error(
        "the line repeats credentials already sent in this session; a bare AUTH <MECH> runs the \
         whole exchange, so the answers must not be sent again as commands"
    )]
    RepeatsCredentials,
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

/// Checks a command or SASL line: one line, and no control character other than TAB.
///
/// Message content after DATA is only held to [`check_single_line`]: 7-bit encodings such
/// as ISO-2022-JP legitimately carry ESC in message text.
///
/// # Errors
/// [`LineError`] naming the first offending character.
pub fn check_command_line(line: &str) -> Result<(), LineError> {
    check_single_line(line)?;
    // Invisible format characters (zero-width spaces, bidi marks) could hide a verb from a
    // reader as well: no command needs them either.
    let invisible = |c: char| needs_escape(c) || matches!(c, '\u{200b}'..='\u{200d}' | '\u{2060}');
    match line
        .chars()
        .find(|&c| c != '\t' && (c.is_control() || invisible(c)))
    {
        Some(c) => Err(LineError::ControlCharacter(escape_str(&c.to_string()))),
        None => Ok(()),
    }
}

/// Whether `c` separates words for the purpose of recognising a verb. Servers split on C's
/// `isspace()` (space, TAB, LF, VT, FF, CR); every other control character counts too, so a
/// verb can never hide behind an unusual separator.
fn is_separator(c: char) -> bool {
    c.is_whitespace() || c.is_control()
}

/// The words of `text`, split as [`is_separator`] says.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(is_separator).filter(|w| !w.is_empty())
}

/// The initial response of an `AUTH` line (`AUTH PLAIN <response>` or `AUTH=PLAIN <response>`).
pub fn auth_initial_response(line: &str) -> Option<&str> {
    let (verb, rest) = split_verb(line);
    let mut words = words(rest);
    if verb == "AUTH" {
        words.next()?;
    } else if !verb.starts_with("AUTH=") {
        return None;
    }
    words.next()
}

/// Splits a line into its verb (upper-cased) and the rest, ignoring surrounding whitespace
/// and control characters.
pub fn split_verb(line: &str) -> (String, &str) {
    let trimmed = line.trim_start_matches(is_separator);
    let end = trimmed.find(is_separator).unwrap_or(trimmed.len());
    let (verb, rest) = trimmed.split_at(end);
    (verb.to_ascii_uppercase(), rest.trim_matches(is_separator))
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
        "XCLIENT" => CommandKind::Xclient,
        "XFORWARD" => CommandKind::Xforward,
        // Some clients and servers accept the draft form `AUTH=LOGIN`; treat it as AUTH too.
        v if v == "AUTH" || v.starts_with("AUTH=") => {
            let mut words = words(rest);
            let mechanism = match v.strip_prefix("AUTH=") {
                Some(inline) => inline.to_owned(),
                None => words.next().unwrap_or_default().to_ascii_uppercase(),
            };
            CommandKind::Auth {
                mechanism: mechanism.to_ascii_uppercase(),
                has_initial_response: words.next().is_some(),
            }
        }
        // Anything else that starts with AUTH and a non-alphanumeric character is treated as
        // AUTH as well: a false positive costs a confirmation, a false negative a password.
        v if v.starts_with("AUTH") && !v[4..].starts_with(|c: char| c.is_ascii_alphanumeric()) => {
            CommandKind::Auth {
                mechanism: String::new(),
                has_initial_response: true,
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

    /// Every byte C's isspace() accepts, and every other control character, between AUTH and
    /// the mechanism: the line is either refused before sending or classified as AUTH.
    #[test]
    fn no_separator_hides_auth() {
        for code in (0u32..0x20).chain([0x7f, 0x85, 0xa0, 0x2028]) {
            let Some(c) = char::from_u32(code) else {
                continue;
            };
            let line = format!("AUTH{c}PLAIN AGFsaWNlAHNlY3JldA==");
            let refused = check_command_line(&line).is_err();
            let auth = matches!(classify(&line), CommandKind::Auth { .. });
            assert!(refused || auth, "{line:?}");
            assert!(auth, "classified as AUTH even where refused: {line:?}");
        }
        assert!(matches!(
            classify("AUTH\u{b}PLAIN x"),
            CommandKind::Auth {
                has_initial_response: true,
                ..
            }
        ));
        assert!(matches!(classify("AUTH:PLAIN x"), CommandKind::Auth { .. }));
        assert_eq!(classify("AUTHORIZE x"), CommandKind::Other);
    }

    #[test]
    fn control_characters_are_refused_in_commands_only() {
        assert!(matches!(
            check_command_line("AUTH\u{b}PLAIN x"),
            Err(LineError::ControlCharacter(_))
        ));
        assert!(matches!(
            check_command_line("NOOP\u{1b}[2J"),
            Err(LineError::ControlCharacter(_))
        ));
        assert_eq!(check_command_line("EHLO\tx"), Ok(()));
        assert!(check_command_line("\u{feff}AUTH PLAIN x").is_err());
        assert!(check_command_line("\u{200b}AUTH PLAIN x").is_err());
        assert_eq!(check_command_line("EHLO café.example"), Ok(()));
        assert_eq!(check_single_line("\u{1b}$B$3$s\u{1b}(B"), Ok(()));
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
