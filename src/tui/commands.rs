//! The one table of what a user can ask of the UI: every key binding and every `:` command,
//! with the words that describe them.
//!
//! Key presses are looked up here ([`lookup`]), `:` lines are parsed here ([`parse_local`]),
//! Tab completes from here, and the help screen ([`help_lines`]) and the README's list
//! ([`readme_list`]) are generated from here, so what the keys do and what the help says
//! cannot drift apart. The credential guard's dialog and the full-screen views (help,
//! certificate) take a few keys of their own, which their boxes name.

use std::fmt::Write as _;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

// Short names for the table below.
use Command as C;
use Context::{Anywhere, CommandLine, EmptyCommandLine, EmptyLine, MessageEditor, Typing};
use Modifiers::{Alt, Any, Ctrl, Plain, Shift};

/// Something the user can ask for with a key or a `:` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Send the line, answer the prompt, or (on an empty line in step mode) run the next step.
    Submit,
    /// Complete the command line: a verb, an advertised parameter, a mechanism, a `:` command.
    Complete,
    /// The previous line of the history.
    Older,
    /// The next line of the history, and then the line being typed.
    Newer,
    /// Move the cursor one character left.
    CursorLeft,
    /// Move the cursor one character right.
    CursorRight,
    /// Move the cursor to the start of the word before it.
    WordLeft,
    /// Move the cursor to the end of the word after it.
    WordRight,
    /// Move the cursor to the start of the line.
    LineStart,
    /// Move the cursor to the end of the line.
    LineEnd,
    /// Delete the character before the cursor.
    DeleteBack,
    /// Delete the character at the cursor.
    DeleteForward,
    /// Delete back to the previous space.
    DeleteWordBack,
    /// Delete from the start of the line to the cursor.
    DeleteToStart,
    /// Delete from the cursor to the end of the line.
    DeleteToEnd,
    /// Scroll the transcript up by a page.
    PageUp,
    /// Scroll the transcript down by a page.
    PageDown,
    /// Scroll the transcript up by one row.
    RowUp,
    /// Scroll the transcript down by one row.
    RowDown,
    /// Show the top of the transcript.
    Top,
    /// Show the bottom of the transcript and follow new rows.
    Follow,
    /// Scroll the explain pane up by a page.
    ExplainUp,
    /// Scroll the explain pane down by a page.
    ExplainDown,
    /// Show the help.
    Help,
    /// Show or hide the explain pane.
    Explain,
    /// Show the certificate chain.
    Certificate,
    /// Show or hide the practice server's own log (`smtptui demo`).
    LabLog,
    /// Cancel the prompt (a SASL exchange with `*`), or leave (QUIT first).
    Escape,
    /// Leave at once.
    LeaveNow,
    /// End the message being written (as a lone `.` does).
    EndMessage,
    /// In the message editor, before any line is written: send the message from a file.
    SendFile,
    /// Write the redacted transcript to a file.
    Save,
    /// Start recording the session as a scenario into a file (`:record stop` ends it).
    Record,
    /// Load a scenario to step through.
    Load,
    /// Send the next step of the loaded scenario.
    Next,
    /// Close the connection and open a new one.
    Reconnect,
    /// Hide the transcript so far.
    ClearTranscript,
    /// Leave (QUIT first when connected).
    Quit,
    /// Ask the lab for the student's exercises and progress (on a session of its own).
    Exercises,
}

/// Which modifier keys a binding needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modifiers {
    /// Whatever is held.
    Any,
    /// Neither Shift, Ctrl nor Alt.
    Plain,
    /// Ctrl, with or without others.
    Ctrl,
    /// Shift, with or without others.
    Shift,
    /// Alt, with or without others.
    Alt,
}

impl Modifiers {
    fn accepts(self, held: KeyModifiers) -> bool {
        match self {
            Self::Any => true,
            Self::Plain => {
                !held.intersects(KeyModifiers::SHIFT | KeyModifiers::CONTROL | KeyModifiers::ALT)
            }
            Self::Ctrl => held.contains(KeyModifiers::CONTROL),
            Self::Shift => held.contains(KeyModifiers::SHIFT),
            Self::Alt => held.contains(KeyModifiers::ALT),
        }
    }
}

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// Everywhere on the main screen.
    Anywhere,
    /// On the command line (not a prompt, not the message editor).
    CommandLine,
    /// On the command line with nothing typed.
    EmptyCommandLine,
    /// With nothing typed, at any prompt.
    EmptyLine,
    /// With something typed, at any prompt.
    Typing,
    /// In the message editor.
    MessageEditor,
}

/// What a key lookup needs to know about the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Situation {
    /// The input line takes commands (no prompt, no message editor).
    pub command_line: bool,
    /// The message editor is open.
    pub message: bool,
    /// Nothing is typed on the input line.
    pub empty: bool,
}

impl Context {
    fn holds(self, situation: Situation) -> bool {
        match self {
            Self::Anywhere => true,
            Self::CommandLine => situation.command_line,
            Self::EmptyCommandLine => situation.command_line && situation.empty,
            Self::EmptyLine => situation.empty,
            Self::Typing => !situation.empty,
            Self::MessageEditor => situation.message,
        }
    }
}

/// One key that asks for a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// The key.
    pub code: KeyCode,
    /// The modifiers it needs.
    pub modifiers: Modifiers,
    /// Where it applies.
    pub context: Context,
    /// What it asks for.
    pub command: Command,
}

const fn bind(code: KeyCode, modifiers: Modifiers, context: Context, command: Command) -> Binding {
    Binding {
        code,
        modifiers,
        context,
        command,
    }
}

/// A line of the key list: keys that belong together, and what they do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyEntry {
    /// The keys as the help and the README name them.
    pub keys: &'static str,
    /// What they do, in a few words.
    pub does: &'static str,
    /// The bindings behind it.
    pub bindings: &'static [Binding],
}

/// Every key of the main screen, in the order the help lists them. Besides these, other
/// characters are typed into the input line at the cursor.
pub const KEYS: &[KeyEntry] = &[
    KeyEntry {
        keys: "Enter",
        does: "send; empty: next step",
        bindings: &[bind(KeyCode::Enter, Any, Anywhere, C::Submit)],
    },
    KeyEntry {
        keys: "Tab",
        does: "complete verb, param",
        bindings: &[bind(KeyCode::Tab, Any, CommandLine, C::Complete)],
    },
    KeyEntry {
        keys: "Up/Down",
        does: "history (no secrets)",
        bindings: &[
            bind(KeyCode::Up, Plain, CommandLine, C::Older),
            bind(KeyCode::Down, Plain, CommandLine, C::Newer),
        ],
    },
    KeyEntry {
        keys: "Left/Right",
        does: "move the cursor",
        bindings: &[
            bind(KeyCode::Left, Plain, Anywhere, C::CursorLeft),
            bind(KeyCode::Right, Plain, Anywhere, C::CursorRight),
        ],
    },
    KeyEntry {
        keys: "Ctrl-Left/Right",
        does: "word left/right",
        bindings: &[
            bind(KeyCode::Left, Ctrl, Anywhere, C::WordLeft),
            bind(KeyCode::Right, Ctrl, Anywhere, C::WordRight),
        ],
    },
    KeyEntry {
        keys: "Alt-B/F",
        does: "word left/right",
        bindings: &[
            bind(KeyCode::Char('b'), Alt, Anywhere, C::WordLeft),
            bind(KeyCode::Char('f'), Alt, Anywhere, C::WordRight),
        ],
    },
    KeyEntry {
        keys: "Ctrl-A/E",
        does: "line start/end",
        bindings: &[
            bind(KeyCode::Char('a'), Ctrl, Anywhere, C::LineStart),
            bind(KeyCode::Char('e'), Ctrl, Anywhere, C::LineEnd),
        ],
    },
    KeyEntry {
        keys: "Home/End",
        does: "same, or top/tail",
        bindings: &[
            bind(KeyCode::Home, Plain, Typing, C::LineStart),
            bind(KeyCode::End, Plain, Typing, C::LineEnd),
            bind(KeyCode::Home, Any, EmptyLine, C::Top),
            bind(KeyCode::End, Any, EmptyLine, C::Follow),
        ],
    },
    KeyEntry {
        keys: "Backspace/Del",
        does: "delete back/forward",
        bindings: &[
            bind(KeyCode::Backspace, Any, Anywhere, C::DeleteBack),
            bind(KeyCode::Delete, Any, Anywhere, C::DeleteForward),
        ],
    },
    KeyEntry {
        keys: "Ctrl-W",
        does: "delete word before",
        bindings: &[bind(KeyCode::Char('w'), Ctrl, Anywhere, C::DeleteWordBack)],
    },
    KeyEntry {
        keys: "Ctrl-U/K",
        does: "delete to start/end",
        bindings: &[
            bind(KeyCode::Char('u'), Ctrl, Anywhere, C::DeleteToStart),
            bind(KeyCode::Char('k'), Ctrl, Anywhere, C::DeleteToEnd),
        ],
    },
    KeyEntry {
        keys: "Ctrl-D",
        does: "end the message",
        bindings: &[bind(KeyCode::Char('d'), Ctrl, MessageEditor, C::EndMessage)],
    },
    KeyEntry {
        keys: "PgUp/PgDn",
        does: "scroll; mouse wheel",
        bindings: &[
            bind(KeyCode::PageUp, Plain, Anywhere, C::PageUp),
            bind(KeyCode::PageDown, Plain, Anywhere, C::PageDown),
        ],
    },
    KeyEntry {
        keys: "Ctrl-Home/End",
        does: "top / follow tail",
        bindings: &[
            bind(KeyCode::Home, Ctrl, Anywhere, C::Top),
            bind(KeyCode::End, Ctrl, Anywhere, C::Follow),
        ],
    },
    KeyEntry {
        keys: "Shift-Up/Down",
        does: "scroll one row",
        bindings: &[
            bind(KeyCode::Up, Shift, Anywhere, C::RowUp),
            bind(KeyCode::Down, Shift, Anywhere, C::RowDown),
        ],
    },
    KeyEntry {
        keys: "Ctrl-Up/Down",
        does: "scroll one row",
        bindings: &[
            bind(KeyCode::Up, Ctrl, Anywhere, C::RowUp),
            bind(KeyCode::Down, Ctrl, Anywhere, C::RowDown),
        ],
    },
    KeyEntry {
        keys: "Alt-PgUp/PgDn",
        does: "scroll explain pane",
        bindings: &[
            bind(KeyCode::PageUp, Alt, Anywhere, C::ExplainUp),
            bind(KeyCode::PageDown, Alt, Anywhere, C::ExplainDown),
        ],
    },
    KeyEntry {
        keys: "F1 or ?",
        does: "this help",
        bindings: &[
            bind(KeyCode::F(1), Any, Anywhere, C::Help),
            bind(KeyCode::Char('?'), Any, EmptyCommandLine, C::Help),
        ],
    },
    KeyEntry {
        keys: "F2",
        does: "explain pane",
        bindings: &[bind(KeyCode::F(2), Any, Anywhere, C::Explain)],
    },
    KeyEntry {
        keys: "F3",
        does: "certificate chain",
        bindings: &[bind(KeyCode::F(3), Any, Anywhere, C::Certificate)],
    },
    KeyEntry {
        keys: "F4",
        does: "lab's log (demo)",
        bindings: &[bind(KeyCode::F(4), Any, Anywhere, C::LabLog)],
    },
    KeyEntry {
        keys: "Esc",
        does: "cancel; leave (QUIT)",
        bindings: &[bind(KeyCode::Esc, Any, Anywhere, C::Escape)],
    },
    KeyEntry {
        keys: "Ctrl-C",
        does: "leave at once",
        bindings: &[bind(KeyCode::Char('c'), Ctrl, Anywhere, C::LeaveNow)],
    },
];

/// A local command: typed after `:`, run by the UI, never sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalCommand {
    /// Its name, without the `:`.
    pub name: &'static str,
    /// Shorter names for it.
    pub aliases: &'static [&'static str],
    /// The argument it needs, as the help names it.
    pub argument: Option<&'static str>,
    /// What it does, in a few words.
    pub does: &'static str,
    /// What it asks for.
    pub command: Command,
}

const fn local(
    name: &'static str,
    aliases: &'static [&'static str],
    argument: Option<&'static str>,
    does: &'static str,
    command: Command,
) -> LocalCommand {
    LocalCommand {
        name,
        aliases,
        argument,
        does,
        command,
    }
}

/// Every local command, in the order Tab offers them and the help lists them.
pub const LOCAL: &[LocalCommand] = &[
    local("help", &["h"], None, "this help", C::Help),
    local("save", &[], Some("FILE"), "redacted transcript", C::Save),
    local(
        "record",
        &[],
        Some("FILE"),
        "record; :record stop",
        C::Record,
    ),
    local("load", &[], Some("FILE"), "step a scenario", C::Load),
    local(
        "send-file",
        &[],
        Some("FILE"),
        "message from a file",
        C::SendFile,
    ),
    local(
        "cert",
        &[],
        Some("[FILE]"),
        "chain (FILE: PEM)",
        C::Certificate,
    ),
    local("reconnect", &[], None, "a new session", C::Reconnect),
    local(
        "clear",
        &[],
        None,
        "clear the transcript",
        C::ClearTranscript,
    ),
    local("explain", &[], None, "explain pane", C::Explain),
    local("quit", &["q"], None, "quit (QUIT first)", C::Quit),
    local("next", &[], None, "send the next step", C::Next),
    local("exercises", &[], None, "exercises on the lab", C::Exercises),
];

impl LocalCommand {
    /// How the help names it: `:save FILE`, `:help, :h`.
    pub fn label(&self) -> String {
        let mut label = format!(":{}", self.name);
        if let Some(argument) = self.argument {
            let _ = write!(label, " {argument}");
        }
        for alias in self.aliases {
            let _ = write!(label, ", :{alias}");
        }
        label
    }

    /// What Tab completes it to: the name, and a space when an argument follows.
    pub fn completion(&self) -> String {
        match self.argument {
            Some(_) => format!(":{} ", self.name),
            None => format!(":{}", self.name),
        }
    }

    fn is_named(&self, name: &str) -> bool {
        self.name == name || self.aliases.contains(&name)
    }
}

/// The command a key asks for in this situation, if any. A key that asks for nothing is
/// typed (a character) or edits the line (Backspace), or does nothing.
pub fn lookup(key: KeyEvent, situation: Situation) -> Option<Command> {
    KEYS.iter()
        .flat_map(|entry| entry.bindings)
        .find(|binding| {
            binding.code == key.code
                && binding.modifiers.accepts(key.modifiers)
                && binding.context.holds(situation)
        })
        .map(|binding| binding.command)
}

/// A `:` line understood: the command, what followed its name, and whether its name ended
/// with `!` (overwrite a file that exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalLine<'a> {
    /// The command named.
    pub local: &'static LocalCommand,
    /// What followed the name, trimmed; possibly empty.
    pub argument: &'a str,
    /// `:save! FILE`: a file that exists may be replaced.
    pub force: bool,
}

/// The local command a `:` line names (`line` without the `:`), with its argument; `None`
/// when no local command has that name. A `!` right after the name (`:save! FILE`) lets a
/// command that writes a file replace one that exists.
pub fn parse_local(line: &str) -> Option<LocalLine<'_>> {
    let line = line.trim();
    let (name, argument) = match line.split_once(char::is_whitespace) {
        Some((name, rest)) => (name, rest.trim()),
        None => (line, ""),
    };
    let (name, force) = match name.strip_suffix('!') {
        Some(name) => (name, true),
        None => (name, false),
    };
    LOCAL
        .iter()
        .find(|local| local.is_named(name))
        .map(|local| LocalLine {
            local,
            argument,
            force,
        })
}

/// The local commands as a list of names, for the message about an unknown one.
pub fn local_names() -> String {
    LOCAL
        .iter()
        .map(|local| format!(":{}", local.name))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The width the help box has inside its borders.
pub const HELP_WIDTH: usize = 76;

/// The help's lines for a box `width` cells wide inside: [`help_lines`] where its two columns
/// fit, one entry a line otherwise.
pub fn help_lines_for(width: usize) -> Vec<String> {
    if width >= HELP_WIDTH {
        return help_lines();
    }
    let entries = |list: Vec<(String, &'static str)>| -> Vec<String> {
        let label = list
            .iter()
            .map(|(l, _)| l.chars().count())
            .max()
            .unwrap_or(0)
            + 1;
        list.into_iter()
            .map(|(l, does)| format!("  {l:<label$}{does}"))
            .collect()
    };
    // The prose as paragraphs: the box wraps them at its width.
    let mut lines = vec![help_intro().join(" ")];
    lines.extend(entries(
        KEYS.iter()
            .map(|entry| (entry.keys.to_owned(), entry.does))
            .collect(),
    ));
    lines.extend(entries(
        LOCAL
            .iter()
            .map(|local| (local.label(), local.does))
            .collect(),
    ));
    lines.push(help_outro().join(" "));
    lines
}

fn help_intro() -> Vec<String> {
    [
        "Type SMTP commands; Enter sends them as typed. STARTTLS: a 220 upgrades",
        "to TLS. AUTH PLAIN (or LOGIN, XOAUTH2) asks user and password, hidden.",
        "DATA: a 354 opens the editor; a lone . ends it, :send-file FILE a file.",
        "Pasted lines: Enter keeps the first, p sends all as one pipelined group.",
        ":commands are never sent.",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn help_outro() -> Vec<String> {
    [
        "plain = cleartext, tls = inside TLS. The guard stops AUTH without verified",
        "TLS; an override lasts one command. :save!, :record! replace; ~ is home.",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// The help screen's lines, without the notes about standing overrides (the screen adds
/// them, as they depend on the command line).
pub fn help_lines() -> Vec<String> {
    let mut lines = help_intro();
    let keys: Vec<(String, &str)> = KEYS
        .iter()
        .map(|entry| (entry.keys.to_owned(), entry.does))
        .collect();
    let locals: Vec<(String, &str)> = LOCAL
        .iter()
        .map(|local| (local.label(), local.does))
        .collect();
    // Each list in its own columns: a long command label must not push the keys' out.
    lines.extend(Columns::fitting(keys.iter()).lay_out(&keys));
    lines.extend(Columns::fitting(locals.iter()).lay_out(&locals));
    lines.extend(help_outro());
    lines
}

/// Two columns of (label, text) entries: the widths of the left label, the left text and
/// the right label, wide enough for every entry in its column.
struct Columns {
    left_label: usize,
    left_text: usize,
    right_label: usize,
}

impl Columns {
    /// Widths for entries laid out in order, two to a line.
    fn fitting<'a>(entries: impl Iterator<Item = &'a (String, &'a str)>) -> Self {
        let mut columns = Self {
            left_label: 0,
            left_text: 0,
            right_label: 0,
        };
        for (index, (label, does)) in entries.enumerate() {
            let label = label.chars().count() + 1;
            if index % 2 == 0 {
                columns.left_label = columns.left_label.max(label);
                columns.left_text = columns.left_text.max(does.chars().count() + 2);
            } else {
                columns.right_label = columns.right_label.max(label);
            }
        }
        columns
    }

    /// The lines: two entries each, indented by two spaces.
    fn lay_out(&self, entries: &[(String, &str)]) -> Vec<String> {
        let Self {
            left_label,
            left_text,
            right_label,
        } = *self;
        entries
            .chunks(2)
            .map(|pair| {
                let (label, does) = &pair[0];
                let mut line = format!("  {label:<left_label$}{does:<left_text$}");
                if let Some((label, does)) = pair.get(1) {
                    let _ = write!(line, "{label:<right_label$}{does}");
                }
                line.trim_end().to_owned()
            })
            .collect()
    }
}

/// The README's list of keys and local commands, as Markdown tables.
pub fn readme_list() -> String {
    let mut out = String::from("| Key | What it does |\n| --- | --- |\n");
    for entry in KEYS {
        let _ = writeln!(out, "| {} | {} |", code_span(entry.keys), entry.does);
    }
    out.push_str("\n| Local command (never sent) | What it does |\n| --- | --- |\n");
    for local in LOCAL {
        let _ = writeln!(out, "| {} | {} |", code_span(&local.label()), local.does);
    }
    out
}

/// `F1 or ?` as `` `F1` or `?` ``, `:help, :h` as `` `:help`, `:h` ``.
fn code_span(label: &str) -> String {
    label
        .split(", ")
        .map(|part| {
            part.split(" or ")
                .map(|key| format!("`{key}`"))
                .collect::<Vec<_>>()
                .join(" or ")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How a key code is named in the key list.
    fn key_name(code: KeyCode) -> String {
        match code {
            KeyCode::F(n) => format!("F{n}"),
            KeyCode::Char(c) => c.to_ascii_uppercase().to_string(),
            KeyCode::PageUp => "PgUp".to_owned(),
            KeyCode::PageDown => "PgDn".to_owned(),
            KeyCode::Delete => "Del".to_owned(),
            other => format!("{other:?}"),
        }
    }

    /// Every binding's key (and its modifier) is named in its entry.
    #[test]
    fn every_entry_names_its_keys() {
        for entry in KEYS {
            for binding in entry.bindings {
                let name = key_name(binding.code);
                assert!(
                    entry.keys.contains(&name),
                    "{:?} is not named in {:?}",
                    binding.code,
                    entry.keys
                );
                let modifier = match binding.modifiers {
                    Modifiers::Ctrl => "Ctrl-",
                    Modifiers::Shift => "Shift-",
                    Modifiers::Alt => "Alt-",
                    Modifiers::Any | Modifiers::Plain => "",
                };
                assert!(entry.keys.contains(modifier), "{entry:?}");
            }
        }
    }

    /// No key asks for two different things in one situation, so the table's order never
    /// decides what a key does.
    #[test]
    fn no_key_is_bound_twice() {
        let bindings: Vec<&Binding> = KEYS.iter().flat_map(|entry| entry.bindings).collect();
        let held = [
            KeyModifiers::NONE,
            KeyModifiers::SHIFT,
            KeyModifiers::CONTROL,
            KeyModifiers::ALT,
            KeyModifiers::SHIFT | KeyModifiers::CONTROL,
            KeyModifiers::ALT | KeyModifiers::CONTROL,
        ];
        for a in &bindings {
            for b in &bindings {
                for modifiers in held {
                    for command_line in [false, true] {
                        for message in [false, true] {
                            for empty in [false, true] {
                                let situation = Situation {
                                    command_line,
                                    message: message && !command_line,
                                    empty,
                                };
                                let both = a.code == b.code
                                    && a.modifiers.accepts(modifiers)
                                    && b.modifiers.accepts(modifiers)
                                    && a.context.holds(situation)
                                    && b.context.holds(situation);
                                assert!(!both || a.command == b.command, "{a:?} and {b:?}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn local_commands_parse_with_aliases_and_arguments() {
        let save = parse_local("save  out.txt ").expect("known");
        assert_eq!(
            (save.local.command, save.argument, save.force),
            (Command::Save, "out.txt", false)
        );
        let forced = parse_local("record! ~/s.smtp").expect("known");
        assert_eq!(
            (forced.local.command, forced.argument, forced.force),
            (Command::Record, "~/s.smtp", true)
        );
        assert_eq!(
            parse_local("q").map(|l| l.local.command),
            Some(Command::Quit)
        );
        assert_eq!(
            parse_local("h").map(|l| l.local.command),
            Some(Command::Help)
        );
        assert!(parse_local("hunter2").is_none());
        assert!(parse_local("").is_none());
    }

    #[test]
    fn every_help_line_fits_the_box() {
        for line in help_lines() {
            assert!(
                line.chars().count() <= HELP_WIDTH,
                "too wide for the help box: {line:?}"
            );
        }
    }
}
