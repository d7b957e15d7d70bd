//! The input line: what is typed, what it is for ([`Prompt`], some of which hide it), Tab
//! completion, and the history with its rule that a line is remembered only once the engine
//! says it crossed as a command.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use zeroize::Zeroize as _;

use super::commands::{Command, LOCAL};
use super::engine::{Crossed, Status};
use super::history::{History, may_remember};
use super::line::EditLine;
use crate::guard::OneTimeOverride;
use crate::proto::sasl::Mechanism;

/// SMTP verbs offered by Tab completion, besides the extensions the server advertised.
const VERBS: [&str; 14] = [
    "EHLO",
    "HELO",
    "STARTTLS",
    "AUTH",
    "MAIL FROM:<",
    "RCPT TO:<",
    "DATA",
    "RSET",
    "NOOP",
    "QUIT",
    "VRFY",
    "HELP",
    "BDAT",
    "ETRN",
];

/// What the input line is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// Commands to the server, or `:` local commands.
    Command,
    /// After 334 to an AUTH the UI does not run itself: a hidden SASL answer.
    SaslAnswer,
    /// Asking the user name for AUTH.
    User {
        /// The mechanism to run.
        mechanism: Mechanism,
        /// The override given in the guard dialog, if any.
        one_time: OneTimeOverride,
    },
    /// Asking the password, hidden.
    Password {
        /// The mechanism to run.
        mechanism: Mechanism,
        /// The user name typed before.
        user: String,
        /// The override given in the guard dialog, if any.
        one_time: OneTimeOverride,
    },
}

impl Prompt {
    /// Whether what is typed is a secret: never shown, never kept, wiped when dropped.
    pub fn hides(&self) -> bool {
        matches!(self, Self::Password { .. } | Self::SaslAnswer)
    }
}

/// Tab completion in progress: the candidates and the one shown.
#[derive(Debug, Clone)]
struct Completion {
    candidates: Vec<String>,
    index: usize,
}

/// The input line with its history and completion.
pub struct InputLine {
    line: EditLine,
    history: History,
    completion: Option<Completion>,
    /// A command line typed but not yet sent: a bare AUTH waits here through its prompts.
    held: Option<String>,
    /// The typed line the action in flight carries, and whether that action is an AUTH
    /// exchange run with the prompt. It enters the history only once the engine says how it
    /// crossed ([`InputLine::settle`]): a line the engine refused, or sent as a credential,
    /// never does.
    in_flight: Option<(String, bool)>,
}

impl std::fmt::Debug for InputLine {
    /// Never the text: it may be a password or a SASL answer.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputLine")
            .field(
                "text",
                &format_args!("<{} characters>", self.line.text().chars().count()),
            )
            .finish_non_exhaustive()
    }
}

impl InputLine {
    /// An empty line over `history`.
    pub fn new(history: History) -> Self {
        Self {
            line: EditLine::default(),
            history,
            completion: None,
            held: None,
            in_flight: None,
        }
    }

    /// What is typed.
    pub fn text(&self) -> &str {
        self.line.text()
    }

    /// The text and the cursor in it.
    pub fn line(&self) -> &EditLine {
        &self.line
    }

    /// Whether nothing is typed.
    pub fn is_empty(&self) -> bool {
        self.line.is_empty()
    }

    /// Takes the line's own keys: characters are typed at the cursor, the editing keys move it
    /// and delete, and on the command line Tab completes and Up/Down walk the history.
    /// `command` is what the key asks for in the command table. Returns whether the key was
    /// taken.
    pub fn on_key(&mut self, key: KeyEvent, command: Option<Command>, status: &Status) -> bool {
        let line = &mut self.line;
        match command {
            Some(Command::CursorLeft) => line.left(),
            Some(Command::CursorRight) => line.right(),
            Some(Command::WordLeft) => line.word_left(),
            Some(Command::WordRight) => line.word_right(),
            Some(Command::LineStart) => line.home(),
            Some(Command::LineEnd) => line.end(),
            Some(Command::DeleteBack) => line.delete_back(),
            Some(Command::DeleteForward) => line.delete_forward(),
            Some(Command::DeleteWordBack) => line.delete_word_back(),
            Some(Command::DeleteToStart) => line.delete_to_start(),
            Some(Command::DeleteToEnd) => line.delete_to_end(),
            Some(Command::Complete) => self.complete(status),
            Some(Command::Older) => {
                if let Some(older) = self.history.older(self.line.text()) {
                    let older = older.to_owned();
                    self.line.set(&older);
                }
            }
            Some(Command::Newer) => {
                if let Some(newer) = self.history.newer() {
                    let newer = newer.to_owned();
                    self.line.set(&newer);
                }
            }
            Some(_) => return false,
            None => match key.code {
                KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                    line.insert(c);
                }
                _ => return false,
            },
        }
        true
    }

    /// Inserts pasted text at the cursor.
    pub fn push_str(&mut self, text: &str) {
        self.line.insert_str(text);
    }

    /// Wipes the line (it may hold a secret).
    pub fn clear(&mut self) {
        self.line.clear();
    }

    /// Takes the line out, leaving it empty.
    pub fn take(&mut self) -> String {
        self.line.take()
    }

    /// Puts back a line that was not sent, to be sent later.
    pub fn restore(&mut self, mut line: String) {
        self.line.set(&line);
        line.zeroize();
    }

    /// Forgets the completion in progress (any key but Tab).
    pub fn end_completion(&mut self) {
        self.completion = None;
    }

    /// Remembers a known local command (never sent, so nothing decides about it later).
    pub fn remember_local(&mut self, line: &str) {
        self.history.push(line);
    }

    /// Holds a typed command line until the engine says how it crossed; a line that may not
    /// be stored (an AUTH with its credentials) is not held.
    pub fn hold(&mut self, line: &str) {
        self.drop_held();
        if may_remember(line) {
            self.held = Some(line.to_owned());
        }
    }

    /// Takes the held line out (the guard's safe way keeps the typed AUTH through STARTTLS and
    /// EHLO, and holds it again for its AUTH).
    pub fn take_held(&mut self) -> Option<String> {
        self.held.take()
    }

    /// Whether a typed line is held.
    pub fn holds(&self) -> bool {
        self.held.is_some()
    }

    /// Forgets the held line: it will not be sent as typed.
    pub fn drop_held(&mut self) {
        if let Some(mut line) = self.held.take() {
            line.zeroize();
        }
    }

    /// An action sending `line` leaves: the held line rides with it only if it is that line
    /// (the guard dialog's STARTTLS, for one, is not the AUTH line that was typed).
    pub fn carry(&mut self, line: &str) {
        self.in_flight = match self.held.take() {
            Some(held) if held == line => Some((held, false)),
            Some(mut other) => {
                other.zeroize();
                None
            }
            None => None,
        };
    }

    /// An AUTH exchange run with the prompt leaves: the bare AUTH line typed before the
    /// prompts, if it came from one, rides with it.
    pub fn carry_auth(&mut self) {
        self.in_flight = self.held.take().map(|line| (line, true));
    }

    /// Decides the history of the typed line the finished action carried, from what the
    /// engine says crossed: a plain line only when it went out as a command and nothing but
    /// commands; a bare `AUTH <MECH>` (its credentials were typed into the prompt, not into
    /// the line) once its exchange began. Anything else is wiped: it may be a secret typed at
    /// the wrong prompt.
    pub fn settle(&mut self, crossed: Crossed) {
        if let Some((mut line, auth_exchange)) = self.in_flight.take() {
            let keep = if auth_exchange {
                !crossed.nothing()
            } else {
                crossed.only_commands()
            };
            if keep {
                self.history.push(&line);
            }
            line.zeroize();
        }
    }

    /// Tab: completes the verb, an advertised extension, an AUTH mechanism or a local command;
    /// pressing it again cycles through the candidates.
    fn complete(&mut self, status: &Status) {
        if let Some(completion) = &mut self.completion {
            completion.index = (completion.index + 1) % completion.candidates.len().max(1);
            if let Some(candidate) = completion.candidates.get(completion.index) {
                self.line.set(candidate);
            }
            return;
        }
        let typed = self.line.text().to_owned();
        let upper = typed.to_ascii_uppercase();
        let mut candidates: Vec<String> = if typed.starts_with(':') {
            LOCAL
                .iter()
                .map(|local| local.completion())
                .filter(|c| c.starts_with(typed.as_str()))
                .collect()
        } else if let Some(prefix) = upper.strip_prefix("AUTH ") {
            status
                .auth_mechanisms
                .iter()
                .filter(|m| m.starts_with(prefix.trim()))
                .map(|m| format!("AUTH {m}"))
                .collect()
        } else if let Some(space) = typed.rfind(' ')
            && (upper.starts_with("MAIL FROM:") || upper.starts_with("RCPT TO:"))
        {
            // Parameters the server advertised, after the address.
            let (head, partial) = typed.split_at(space + 1);
            let partial = partial.to_ascii_uppercase();
            let mail = upper.starts_with("MAIL");
            status
                .extensions
                .iter()
                .flat_map(|ext| parameters(ext, mail))
                .filter(|p| p.starts_with(&partial))
                .map(|p| format!("{head}{p}"))
                .collect()
        } else {
            // Verbs only: most EHLO keywords (SIZE, PIPELINING, 8BITMIME...) are not commands.
            VERBS
                .iter()
                .map(|v| (*v).to_owned())
                .chain(
                    status
                        .extensions
                        .iter()
                        .filter(|e| matches!(e.as_str(), "EXPN" | "ATRN"))
                        .cloned(),
                )
                .filter(|c| c.starts_with(&upper))
                .collect()
        };
        candidates.dedup();
        if let Some(first) = candidates.first() {
            self.line.set(first);
            self.completion = Some(Completion {
                candidates,
                index: 0,
            });
        }
    }
}

/// The MAIL FROM (`mail`) or RCPT TO parameters an advertised extension allows, for Tab.
fn parameters(extension: &str, mail: bool) -> &'static [&'static str] {
    match (extension, mail) {
        ("SIZE", true) => &["SIZE="],
        ("8BITMIME", true) => &["BODY=8BITMIME"],
        ("BINARYMIME", true) => &["BODY=BINARYMIME"],
        ("SMTPUTF8", true) => &["SMTPUTF8"],
        ("REQUIRETLS", true) => &["REQUIRETLS"],
        ("DSN", true) => &["RET=HDRS", "RET=FULL", "ENVID="],
        ("DSN", false) => &["NOTIFY=SUCCESS,FAILURE", "NOTIFY=NEVER", "ORCPT=rfc822;"],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(line: &mut InputLine, text: &str) {
        let status = Status::disconnected("x:25".to_owned());
        for c in text.chars() {
            line.on_key(KeyEvent::from(KeyCode::Char(c)), None, &status);
        }
    }

    #[test]
    fn debug_never_shows_the_text() {
        let mut line = InputLine::new(History::in_memory());
        typed(&mut line, "hunter2");
        assert!(!format!("{line:?}").contains("hunter2"));
    }

    /// A held line reaches the history only when what crossed was commands only.
    #[test]
    fn only_lines_that_crossed_as_commands_are_remembered() {
        let mut line = InputLine::new(History::in_memory());
        let status = Status::disconnected("x:25".to_owned());
        let commands = Crossed {
            commands: 1,
            ..Crossed::default()
        };
        let credential = Crossed {
            credentials: 1,
            ..Crossed::default()
        };
        for (text, crossed) in [
            ("NOOP one", commands),
            ("hunter2", Crossed::default()),
            ("NOOP hunter2", credential),
        ] {
            line.hold(text);
            line.carry(text);
            line.settle(crossed);
        }
        // A line held but sent as something else (the guard's STARTTLS) is not kept either.
        line.hold("AUTH PLAIN");
        line.carry("STARTTLS");
        line.settle(commands);
        let up = KeyEvent::from(KeyCode::Up);
        line.on_key(up, Some(Command::Older), &status);
        assert_eq!(line.text(), "NOOP one");
        line.on_key(up, Some(Command::Older), &status);
        assert_eq!(line.text(), "NOOP one", "nothing older");
    }
}
