//! `.smtp` scenario files, in the notation of the RFC examples.
//!
//! ```text
//! # comments and blank lines are ignored
//! S: 220
//! C: EHLO client.example
//! S: 250 STARTTLS
//! C: STARTTLS
//! S: 220
//! ```
//!
//! `C:` sends a line; `S:` checks the reply to the line before it (the first `S:` checks the
//! greeting) against a code (`250`), a class pattern (`2xx`, `25x`) and optional text that must
//! appear, ignoring case, in some line of the reply. After `C: DATA`, the `C:` lines up to a
//! lone `.` are the message. A bare `C: AUTH PLAIN` (or LOGIN, XOAUTH2) is an exchange the
//! tool runs itself with the user's credentials; after an AUTH it does not run (CRAM-MD5, an
//! initial response, no mechanism), the `C:` lines that answer its challenges are SASL answers,
//! sent only while the server waits for one and hidden in the transcript. Parsing is strict
//! and every error names the file, the line and the fix, because a scenario with a typo must
//! never silently test something else.

use std::fmt;
use std::path::Path;

use crate::proto::command::{
    CommandKind, check_command_line, check_single_line, classify, split_verb,
};
use crate::proto::reply::Reply;
use crate::proto::sasl::Mechanism;

/// What a reply must look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// Each of the three digits, `None` where the pattern has `x`.
    digits: [Option<u8>; 3],
    /// Text that must appear in some line of the reply, ignoring case.
    pub text: Option<String>,
    /// The line in the scenario file.
    pub line: usize,
}

impl Expectation {
    /// Parses the part after `S:`, e.g. `250`, `2xx`, `25x STARTTLS`.
    ///
    /// # Errors
    /// A message explaining the accepted forms.
    pub fn parse(spec: &str, line: usize) -> Result<Self, String> {
        let spec = spec.trim();
        let (code, text) = match spec.split_once(char::is_whitespace) {
            Some((code, text)) => (code, Some(text.trim().to_owned()).filter(|t| !t.is_empty())),
            None => (spec, None),
        };
        let bad = || {
            format!(
                "expected a reply code after 'S:' such as 250, a class such as 2xx or 25x, \
                 optionally followed by text; found {code:?}"
            )
        };
        let bytes = code.as_bytes();
        if bytes.len() != 3 {
            return Err(bad());
        }
        let mut digits = [None; 3];
        for (index, byte) in bytes.iter().enumerate() {
            digits[index] = match byte {
                b'0'..=b'9' => Some(byte - b'0'),
                b'x' | b'X' if index > 0 => None,
                _ => return Err(bad()),
            };
        }
        if !matches!(digits[0], Some(2..=5)) {
            return Err(format!(
                "{} (SMTP reply codes start with 2, 3, 4 or 5)",
                bad()
            ));
        }
        Ok(Self { digits, text, line })
    }

    /// Whether the reply meets the expectation.
    pub fn matches(&self, reply: &Reply) -> bool {
        let code_ok = self
            .digits
            .iter()
            .enumerate()
            .all(|(position, digit)| digit.is_none_or(|d| d == reply.code.digit(position)));
        code_ok
            && self
                .text
                .as_deref()
                .is_none_or(|text| reply.contains_text(text))
    }

    /// Whether a 2xx reply would meet the code part (used to tell an expected refusal of
    /// STARTTLS from an expected success).
    pub fn expects_success(&self) -> bool {
        self.digits[0] == Some(2)
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for digit in self.digits {
            match digit {
                Some(d) => write!(f, "{d}")?,
                None => f.write_str("x")?,
            }
        }
        if let Some(text) = &self.text {
            write!(f, " {text:?}")?;
        }
        Ok(())
    }
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send a command line (STARTTLS and bare AUTH get the smart steps).
    Command(String),
    /// Send message lines after DATA; the final `.` is implied and sent by the runner.
    Message(Vec<String>),
}

/// One step: an action, the file line it came from, and what its reply must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The scenario line of the `C:` (for messages, of the closing `.`).
    pub line: usize,
    /// What to send.
    pub action: Action,
    /// The `S:` that follows, if any.
    pub expect: Option<Expectation>,
    /// Whether this `C:` line answers a SASL challenge of an exchange the scenario writes out
    /// (a mechanism the tool does not run itself, such as CRAM-MD5): it carries credentials,
    /// is sent only while the server waits for an answer, and is hidden in the transcript.
    pub sasl_answer: bool,
}

/// A parsed scenario.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scenario {
    /// Where it came from (for messages).
    pub name: String,
    /// The expectation on the greeting, from an `S:` before any `C:`.
    pub greeting: Option<Expectation>,
    /// The steps in order.
    pub steps: Vec<Step>,
}

/// The largest scenario file read, in bytes. Scenarios hold commands and short messages; a
/// file beyond this is refused before it is parsed (and never read further), so a wrong path
/// such as `/dev/zero` ends with an error instead of exhausting memory.
pub const MAX_SCENARIO_BYTES: u64 = 16 * 1024 * 1024;

/// A syntax error, naming the file, the line and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", if *.line > 0 { format!(":{line}") } else { String::new() })]
pub struct ScenarioError {
    /// The scenario file.
    pub file: String,
    /// The 1-based line number; 0 when the whole file is the problem (unreadable).
    pub line: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Scenario {
    /// Reads and parses a scenario file.
    ///
    /// # Errors
    /// [`ScenarioError`] for unreadable files (line 0) and syntax errors.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        use std::io::Read as _;
        let name = path.display().to_string();
        let unreadable = |e: std::io::Error| ScenarioError {
            file: name.clone(),
            line: 0,
            message: format!("cannot read the scenario: {e}"),
        };
        let file = std::fs::File::open(path).map_err(unreadable)?;
        let mut bytes = Vec::new();
        // One byte beyond the limit tells a file at the limit from a larger one; nothing more
        // is read, whatever the file (a device, a FIFO) would still give.
        file.take(MAX_SCENARIO_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(unreadable)?;
        if bytes.len() as u64 > MAX_SCENARIO_BYTES {
            return Err(ScenarioError {
                file: name,
                line: 0,
                message: format!(
                    "the file is larger than {} MiB, the limit for a scenario (commands and \
                     short messages); check that this is the scenario you meant",
                    MAX_SCENARIO_BYTES / (1024 * 1024)
                ),
            });
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            ScenarioError {
                file: name.clone(),
                line,
                message: "the scenario is not valid UTF-8; save it as UTF-8".to_owned(),
            }
        })?;
        Self::parse(&name, &text)
    }

    /// Parses scenario text; `name` is used in error messages.
    ///
    /// # Errors
    /// [`ScenarioError`] at the first syntax error.
    pub fn parse(name: &str, text: &str) -> Result<Self, ScenarioError> {
        let error = |line: usize, message: String| ScenarioError {
            file: name.to_owned(),
            line,
            message,
        };
        // Some editors start UTF-8 files with a byte-order mark; it is not content.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut scenario = Scenario {
            name: name.to_owned(),
            ..Scenario::default()
        };
        // A message being collected after `C: DATA`: its first line and its lines so far.
        let mut message: Option<(usize, Vec<String>)> = None;
        // Whether the latest reply-producing line already has its `S:`.
        let mut last_checked = false;
        let mut seen_command = false;
        // While the scenario writes out a SASL exchange itself (an AUTH the tool does not run:
        // another mechanism, an initial response, no mechanism), the lines that answer its
        // challenges.
        let mut in_exchange = false;

        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if let Some(content) = line.strip_prefix("C:") {
                let content = strip_separator(content);
                if let Some((start, lines)) = message.as_mut() {
                    if content == "." {
                        let lines = std::mem::take(lines);
                        scenario.steps.push(Step {
                            line: line_no,
                            action: Action::Message(lines),
                            expect: None,
                            sasl_answer: false,
                        });
                        message = None;
                        last_checked = false;
                    } else {
                        // Found now rather than after DATA was opened on the server.
                        if check_single_line(content).is_err() {
                            return Err(error(
                                line_no,
                                format!(
                                    "a carriage return (CR) inside a line of the message started \
                                     by DATA on line {start}: on the wire it would end the line \
                                     early; remove it or split the line into two 'C:' lines"
                                ),
                            ));
                        }
                        lines.push(content.to_owned());
                    }
                    continue;
                }
                // Commands (not message lines) are held to what the engine will send.
                if let Err(problem) = check_command_line(content) {
                    return Err(error(line_no, problem.to_string()));
                }
                // After a bare AUTH the tool runs the whole SASL exchange itself; a line that
                // is no SMTP command here is an answer written out by hand, and would be sent
                // as a command: unguarded and shown in full.
                if let Some(auth) = scenario.steps.last().filter(|s| s.expect.is_none())
                    && let Some(mechanism) = bare_auth(auth)
                    && !is_smtp_verb(&split_verb(content).0)
                {
                    return Err(error(line_no, scripted_sasl(mechanism.name(), auth.line)));
                }
                let sasl_answer = in_exchange && answers_challenge(scenario.steps.last(), content);
                // A DATA whose previous step is still unchecked is fine: its reply is shown.
                scenario.steps.push(Step {
                    line: line_no,
                    action: Action::Command(content.to_owned()),
                    expect: None,
                    sasl_answer,
                });
                seen_command = true;
                last_checked = false;
                if !sasl_answer {
                    in_exchange = false;
                    match classify(content) {
                        CommandKind::Data => message = Some((line_no, Vec::new())),
                        CommandKind::Auth { .. } => {
                            in_exchange = scenario.steps.last().and_then(bare_auth).is_none();
                        }
                        _ => {}
                    }
                }
                continue;
            }
            if let Some(spec) = line.strip_prefix("S:") {
                if let Some((start, lines)) = message.as_mut() {
                    // The `S:` right after `C: DATA` checks the 354; later ones are misplaced.
                    if lines.is_empty() && !last_checked {
                        let expect =
                            Expectation::parse(spec, line_no).map_err(|m| error(line_no, m))?;
                        if let Some(step) = scenario.steps.last_mut() {
                            step.expect = Some(expect);
                        }
                        last_checked = true;
                        continue;
                    }
                    return Err(error(
                        line_no,
                        format!(
                            "'S:' inside the message started by DATA on line {start}; message lines \
                             are 'C:' lines and the message ends with 'C: .' (put the 'S:' after it)"
                        ),
                    ));
                }
                let expect = Expectation::parse(spec, line_no).map_err(|m| error(line_no, m))?;
                if last_checked {
                    let previous = scenario
                        .steps
                        .last()
                        .and_then(|s| s.expect.as_ref())
                        .or(scenario.greeting.as_ref())
                        .map_or(0, |e| e.line);
                    return Err(error(
                        line_no,
                        format!(
                            "a second 'S:' for the same reply (line {previous} already checks it); one 'S:' per 'C:'"
                        ),
                    ));
                }
                if seen_command {
                    if let Some(step) = scenario.steps.last_mut() {
                        if let Some(mechanism) = bare_auth(step)
                            && expect.digits[0] == Some(3)
                        {
                            return Err(error(line_no, scripted_sasl(mechanism.name(), step.line)));
                        }
                        step.expect = Some(expect);
                    }
                } else {
                    scenario.greeting = Some(expect);
                }
                last_checked = true;
                continue;
            }
            let hint = match trimmed.get(..2) {
                Some("C:") | Some("S:") => " (remove the spaces before the prefix)",
                Some("c:") | Some("s:") => " (the prefixes are upper case: 'C:' and 'S:')",
                _ if trimmed.starts_with("C ") || trimmed.starts_with("S ") => {
                    " (a colon follows the letter: 'C:' or 'S:')"
                }
                _ => "",
            };
            let shown: String = line.chars().take(40).collect();
            return Err(error(
                line_no,
                format!(
                    "expected 'C:' (a line to send), 'S:' (the expected reply) or a '#' comment, found {shown:?}{hint}"
                ),
            ));
        }
        if let Some((start, _)) = message {
            return Err(error(
                start,
                "the message started by DATA here is never ended; add 'C: .' on a line of its own"
                    .to_owned(),
            ));
        }
        if scenario.greeting.is_none() && scenario.steps.is_empty() {
            // Running it would check nothing and pass: a verdict about nothing.
            return Err(error(
                0,
                "the scenario has no 'C:' or 'S:' line, so it has nothing to send or check; \
                 start with 'S: 220' to check the greeting"
                    .to_owned(),
            ));
        }
        Ok(scenario)
    }

    /// The bare `AUTH <MECH>` steps for the mechanisms the tool runs itself (PLAIN, LOGIN,
    /// XOAUTH2), which need credentials from the command line. AUTH lines for other
    /// mechanisms, or with their answers written out, need none.
    pub fn auth_steps(&self) -> impl Iterator<Item = (&Step, Mechanism)> {
        self.steps
            .iter()
            .filter_map(|step| bare_auth(step).map(|mechanism| (step, mechanism)))
    }
}

/// The text after `C:`: one space or tab separates it from the prefix, as after `S:`.
fn strip_separator(content: &str) -> &str {
    content.strip_prefix([' ', '\t']).unwrap_or(content)
}

/// Whether `content`, following `previous` inside a written-out SASL exchange, answers a
/// challenge: after an expected `334` (any `3xx`) it does whatever it says; after a reply
/// left unchecked it does unless it is an SMTP command (a cancelling `*` is an answer).
fn answers_challenge(previous: Option<&Step>, content: &str) -> bool {
    match previous.and_then(|step| step.expect.as_ref()) {
        Some(expect) => expect.digits[0] == Some(3),
        None => !is_smtp_verb(&split_verb(content).0),
    }
}

/// The mechanism of a bare `AUTH <MECH>` step the tool runs itself with `--user`.
fn bare_auth(step: &Step) -> Option<Mechanism> {
    match &step.action {
        Action::Command(line) if !step.sasl_answer => match classify(line) {
            CommandKind::Auth {
                mechanism,
                has_initial_response: false,
            } => Mechanism::from_name(&mechanism),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `verb` is an SMTP (or common extension) command.
fn is_smtp_verb(verb: &str) -> bool {
    matches!(
        verb,
        "EHLO"
            | "HELO"
            | "LHLO"
            | "MAIL"
            | "RCPT"
            | "DATA"
            | "BDAT"
            | "RSET"
            | "VRFY"
            | "EXPN"
            | "HELP"
            | "NOOP"
            | "QUIT"
            | "STARTTLS"
            | "AUTH"
            | "ETRN"
            | "ATRN"
            | "TURN"
    ) || verb.starts_with("AUTH=")
}

fn scripted_sasl(mechanism: &str, auth_line: usize) -> String {
    format!(
        "'C: AUTH {mechanism}' on line {auth_line} runs the whole SASL exchange itself with \
         --user and the password (never from the scenario); remove the 334 challenges and the \
         answer lines after it, and expect only the final reply, e.g. 'S: 235'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::reply::ReplyParser;

    fn reply(bytes: &[u8]) -> Reply {
        let mut parser = ReplyParser::default();
        parser.push(bytes);
        parser.next_reply().expect("parses").expect("complete")
    }

    const SUBMISSION: &str = "\
# submission over STARTTLS
S: 220
C: EHLO client.example
S: 250 STARTTLS
C: STARTTLS
S: 220
C: EHLO client.example
S: 250 AUTH
C: AUTH PLAIN
S: 235
C: MAIL FROM:<alice@lab.test>
S: 250
C: RCPT TO:<bob@lab.test>
S: 250
C: DATA
S: 354
C: Subject: hello
C:
C: .hidden line
C: .
S: 250
C: QUIT
S: 221
";

    #[test]
    fn the_issue_example_parses() {
        let scenario = Scenario::parse("sub.smtp", SUBMISSION).expect("parses");
        assert_eq!(scenario.greeting.as_ref().map(|e| e.line), Some(2));
        assert_eq!(scenario.steps.len(), 9);
        let message = &scenario.steps[7];
        assert_eq!(
            message.action,
            Action::Message(vec![
                "Subject: hello".into(),
                String::new(),
                ".hidden line".into()
            ])
        );
        assert_eq!(message.line, 20);
        assert_eq!(message.expect.as_ref().map(|e| e.line), Some(21));
        let data = &scenario.steps[6];
        assert_eq!(data.action, Action::Command("DATA".into()));
        assert_eq!(
            data.expect.as_ref().map(ToString::to_string).as_deref(),
            Some("354")
        );
        let auth: Vec<Mechanism> = scenario.auth_steps().map(|(_, m)| m).collect();
        assert_eq!(auth, vec![Mechanism::Plain]);
    }

    #[test]
    fn patterns_match_codes_and_text() {
        let r = reply(b"250-mail.example\r\n250 STARTTLS\r\n");
        let ok = |spec: &str| Expectation::parse(spec, 1).expect("valid").matches(&r);
        assert!(ok("250"));
        assert!(ok("2xx"));
        assert!(ok("25x"));
        assert!(ok("250 starttls"));
        assert!(ok("2XX mail.EXAMPLE"));
        assert!(!ok("251"));
        assert!(!ok("5xx"));
        assert!(!ok("250 AUTH"));
    }

    #[test]
    fn bad_patterns_explain_themselves() {
        for spec in ["99z", "2", "2500", "x50", "650", "abc", ""] {
            let err = Expectation::parse(spec, 1).expect_err(spec);
            assert!(err.contains("2xx"), "{err}");
        }
    }

    fn err(text: &str) -> ScenarioError {
        Scenario::parse("t.smtp", text).expect_err("should fail")
    }

    #[test]
    fn syntax_errors_name_file_line_and_fix() {
        let e = err("S: 220\nX: foo\n");
        assert_eq!((e.file.as_str(), e.line), ("t.smtp", 2));
        assert!(e.message.contains("'C:'"), "{}", e.message);
        assert!(err("c: EHLO x\n").message.contains("upper case"));
        assert!(err("C EHLO x\n").message.contains("colon"));
        assert!(err("  C: EHLO x\n").message.contains("remove the spaces"));
        assert!(
            err("C: AUTH\u{b}PLAIN AGFsaWNl\n")
                .message
                .contains("control character")
        );
        // SASL answers written out after a bare AUTH would be sent as commands.
        let e = err("C: AUTH PLAIN\nS: 334\nC: AGFsaWNlAHNlY3JldA==\nS: 235\n");
        assert_eq!(e.line, 2);
        assert!(
            e.message.contains("runs the whole SASL exchange"),
            "{}",
            e.message
        );
        let e = err("C: AUTH LOGIN\nC: YWxpY2U=\n");
        assert_eq!(e.line, 2);
        // A command after a bare AUTH is fine, and so is an exchange scripted for a mechanism
        // the tool does not run itself.
        assert!(Scenario::parse("t", "C: AUTH PLAIN\nC: MAIL FROM:<a@b>\n").is_ok());
        assert!(Scenario::parse("t", "C: AUTH CRAM-MD5\nS: 334\nC: abc\n").is_ok());
        let e = err("C: EHLO x\nS: 250\nS: 250\n");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("line 2"), "{}", e.message);
        let e = err("C: DATA\nS: 354\nC: body\n");
        assert_eq!(e.line, 1);
        assert!(e.message.contains("C: ."));
        let e = err("C: DATA\nS: 354\nC: body\nS: 250\nC: .\n");
        assert_eq!(e.line, 4);
        assert_eq!(err("S: 99z\n").line, 1);
        assert!(err("S: 220\nS: 220\n").message.contains("second"));
    }

    /// Arbitrary text never panics the parser: it parses or names a line within the text.
    #[test]
    fn random_text_never_panics() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let pieces = [
            "C: ",
            "S: ",
            "C:",
            "S:",
            "250",
            "2xx",
            "5x",
            "354",
            "334",
            "DATA",
            "AUTH PLAIN",
            "AUTH LOGIN",
            "STARTTLS",
            ".",
            "#",
            " ",
            "\n",
            "\r\n",
            "\t",
            "x",
            "é",
            "\u{1b}",
            "\u{202e}",
            "MAIL FROM:<a@b>",
            "AGFsaWNl",
        ];
        for _ in 0..3000 {
            let count = (next() % 40) as usize;
            let text: String = (0..count)
                .map(|_| pieces[(next() % pieces.len() as u64) as usize])
                .collect();
            match Scenario::parse("r.smtp", &text) {
                Ok(_) => {}
                Err(error) => assert!(error.line <= text.lines().count().max(1), "{error}"),
            }
        }
    }

    #[test]
    fn comments_blank_lines_and_crlf_are_fine() {
        let s = Scenario::parse("t", "# c\r\n\r\n  # indented\r\nC: NOOP\r\nS: 250 ok\r\n")
            .expect("parses");
        assert_eq!(s.steps.len(), 1);
        assert_eq!(
            s.steps[0]
                .expect
                .as_ref()
                .and_then(|e| e.text.clone())
                .as_deref(),
            Some("ok")
        );
    }

    #[test]
    fn message_keeps_hash_and_blank_lines() {
        let s = Scenario::parse(
            "t",
            "C: DATA\nC: # not a comment\n# a comment\n\nC:\nC: .\n",
        )
        .expect("parses");
        assert_eq!(
            s.steps[1].action,
            Action::Message(vec!["# not a comment".into(), String::new()])
        );
    }

    #[test]
    fn a_byte_order_mark_is_not_content() {
        let s = Scenario::parse("t", "\u{feff}S: 220\nC: QUIT\n").expect("parses");
        assert_eq!(s.greeting.map(|e| e.line), Some(1));
        // Only at the start: elsewhere it is text like any other.
        assert!(Scenario::parse("t", "S: 220\n\u{feff}C: QUIT\n").is_err());
    }

    #[test]
    fn a_tab_separates_after_either_prefix() {
        let s = Scenario::parse(
            "t",
            "C:\tNOOP\nS:\t250 ok\nC:  EHLO x\nC: DATA\nC:\t\tfolded\nC: .\n",
        )
        .expect("parses");
        assert_eq!(s.steps[0].action, Action::Command("NOOP".into()));
        assert_eq!(
            s.steps[0]
                .expect
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("250 \"ok\"")
        );
        // Only one separator goes: what follows it is the line (a folded header keeps its tab).
        assert_eq!(s.steps[1].action, Action::Command(" EHLO x".into()));
        assert_eq!(s.steps[3].action, Action::Message(vec!["\tfolded".into()]));
    }

    #[test]
    fn a_scenario_without_lines_has_nothing_to_check() {
        for text in ["", "\u{feff}", "# comment\n\n  \n", "\r\n"] {
            let e = err(text);
            assert_eq!(e.line, 0, "{text:?}");
            assert!(
                e.message.contains("nothing to send or check"),
                "{}",
                e.message
            );
        }
        assert!(Scenario::parse("t", "S: 220\n").is_ok());
        assert!(Scenario::parse("t", "C: QUIT\n").is_ok());
    }

    #[test]
    fn a_bare_cr_in_a_message_line_is_a_syntax_error() {
        let e = err("C: DATA\nS: 354\nC: one\rtwo\nC: .\n");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("carriage return"), "{}", e.message);
        assert!(e.message.contains("line 1"), "{}", e.message);
        // CRLF line endings are line endings, not content.
        assert!(Scenario::parse("t", "C: DATA\r\nC: one\r\nC: .\r\n").is_ok());
    }

    #[test]
    fn answers_of_a_written_out_exchange_are_marked() {
        let answers = |text: &str| -> Vec<bool> {
            Scenario::parse("t", text)
                .expect("parses")
                .steps
                .iter()
                .map(|s| s.sasl_answer)
                .collect()
        };
        // After an expected 3xx, the next line answers whatever it says.
        assert_eq!(
            answers("C: AUTH CRAM-MD5\nS: 334\nC: abc\nS: 235\nC: QUIT\n"),
            [false, true, false]
        );
        assert_eq!(
            answers("C: AUTH CRAM-MD5\nS: 334\nC: QUIT\n"),
            [false, true]
        );
        // Unchecked: an answer unless it is an SMTP command; `*` cancels and is an answer.
        assert_eq!(
            answers("C: AUTH DIGEST-MD5\nC: abc\nC: def\nS: 235\nC: MAIL FROM:<a@b>\n"),
            [false, true, true, false]
        );
        assert_eq!(answers("C: AUTH X\nC: *\nS: 501\n"), [false, true]);
        assert_eq!(answers("C: AUTH X\nC: QUIT\n"), [false, false]);
        // A refusal ends the exchange; an initial response or no mechanism opens one too.
        assert_eq!(answers("C: AUTH X\nS: 504\nC: abc\n"), [false, false]);
        assert_eq!(
            answers("C: AUTH LOGIN YWxpY2U=\nS: 334\nC: cGFzcw==\n"),
            [false, true]
        );
        assert_eq!(answers("C: AUTH\nS: 501\nC: NOOP\n"), [false, false]);
        // Not after an exchange the tool runs itself, nor outside any exchange.
        assert_eq!(answers("C: AUTH PLAIN\nS: 235\nC: NOOP\n"), [false, false]);
        assert_eq!(answers("C: NOOP\nC: abc\n"), [false, false]);
    }

    #[test]
    fn only_mechanisms_the_tool_runs_need_credentials() {
        let s = Scenario::parse(
            "t",
            "C: AUTH CRAM-MD5\nS: 504\nC: AUTH\nS: 501\nC: AUTH PLAIN AGFsaWNl\nS: 535\nC: AUTH login\nS: 235\n",
        )
        .expect("parses");
        let steps: Vec<(usize, Mechanism)> = s.auth_steps().map(|(s, m)| (s.line, m)).collect();
        assert_eq!(steps, [(7, Mechanism::Login)]);
    }

    #[test]
    fn files_beyond_the_size_limit_are_refused_without_reading_them_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("big.smtp");
        let file = std::fs::File::create(&path).expect("create");
        // Sparse: the size is there, the disk blocks are not.
        file.set_len(MAX_SCENARIO_BYTES + 1).expect("set_len");
        let e = Scenario::load(&path).expect_err("too big");
        assert_eq!(e.line, 0);
        assert!(e.message.contains("16 MiB"), "{}", e.message);
        file.set_len(0).expect("truncate");
        std::fs::write(&path, "S: 220\n").expect("write");
        assert!(Scenario::load(&path).is_ok());
    }

    #[test]
    fn unchecked_commands_are_allowed() {
        let s = Scenario::parse("t", "C: EHLO x\nC: NOOP\nS: 250\n").expect("parses");
        assert_eq!(s.steps[0].expect, None);
        assert!(s.steps[1].expect.is_some());
    }
}
