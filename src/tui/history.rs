//! Input history, kept per target in the user's data directory
//! (`$XDG_DATA_HOME/smtptui/history/`, or `~/.local/share/smtptui/history/`).
//!
//! Only lines that carry no credentials reach it: the caller decides with
//! [`may_remember`], and hidden prompts never call [`History::push`] at all.

use std::io::Write as _;
use std::path::PathBuf;

use zeroize::Zeroize as _;

use crate::proto::command::{CommandKind, check_command_line, classify};

/// The most lines kept per target; older ones are dropped when the file is rewritten.
const MAX_ENTRIES: usize = 1000;

/// Whether a typed command line may be stored: not an AUTH line with an initial response
/// (its base64 is the password), and nothing typed while the server waits for a SASL answer.
pub fn may_remember(line: &str) -> bool {
    // A line the engine would refuse (control characters, a line break) is not kept either:
    // the history file is plain text that `cat` would interpret.
    check_command_line(line).is_ok()
        && !matches!(
            classify(line),
            CommandKind::Auth {
                has_initial_response: true,
                ..
            }
        )
        && !line.trim().is_empty()
}

/// The history of one target, with Up/Down navigation.
#[derive(Debug, Default)]
pub struct History {
    /// Where lines are appended; `None` keeps them in memory only (tests, no home directory).
    path: Option<PathBuf>,
    entries: Vec<String>,
    /// Position while browsing with Up/Down; `None` when editing a fresh line.
    position: Option<usize>,
    /// The line being typed when browsing began, given back past the newest entry.
    draft: String,
}

impl History {
    /// A history that is never written to disk.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// The history file for `target` in the user's data directory, if one can be found.
    pub fn file_for(target: &str) -> Option<PathBuf> {
        let base = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?)
                .join(".local/share"),
        };
        let name: String = target
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Some(base.join("smtptui").join("history").join(name))
    }

    /// Loads the history stored at `path` (a missing or unreadable file is an empty history:
    /// history is a convenience, never a reason not to start).
    pub fn load(path: PathBuf) -> Self {
        let mut entries: Vec<String> = std::fs::read_to_string(&path)
            .map(|text| text.lines().map(str::to_owned).collect())
            .unwrap_or_default();
        if entries.len() > MAX_ENTRIES {
            entries.drain(..entries.len() - MAX_ENTRIES);
        }
        Self {
            path: Some(path),
            entries,
            position: None,
            draft: String::new(),
        }
    }

    /// The stored lines, oldest first.
    pub fn entries(&self) -> &[String] {
        &self.entries
    }

    /// Remembers a line (unless it repeats the previous one) and appends it to the file.
    pub fn push(&mut self, line: &str) {
        self.position = None;
        if !may_remember(line) || self.entries.last().is_some_and(|last| last == line) {
            return;
        }
        self.entries.push(line.to_owned());
        if let Some(path) = &self.path {
            // Failing to save history must not disturb the session.
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let mut options = std::fs::OpenOptions::new();
            options.create(true).append(true);
            // What someone typed to a mail server is theirs alone (addresses, commands): the
            // file is readable by its owner only, whatever the umask.
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            if let Ok(mut file) = options.open(path) {
                let _ = writeln!(file, "{line}");
            }
        }
    }

    /// The previous line (Up), or `None` at the oldest. `typed` is the input line: when
    /// browsing starts it is kept, and Down past the newest entry gives it back.
    pub fn older(&mut self, typed: &str) -> Option<&str> {
        let next = match self.position {
            None => {
                let last = self.entries.len().checked_sub(1)?;
                self.draft.zeroize();
                self.draft.push_str(typed);
                last
            }
            Some(0) => 0,
            Some(p) => p - 1,
        };
        self.position = Some(next);
        self.entries.get(next).map(String::as_str)
    }

    /// The next line (Down); past the newest, the line that was being typed (the draft).
    pub fn newer(&mut self) -> Option<&str> {
        let p = self.position?;
        if p + 1 >= self.entries.len() {
            self.position = None;
            return Some(&self.draft);
        }
        self.position = Some(p + 1);
        self.entries.get(p + 1).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_control_characters_are_never_remembered() {
        let mut history = History::in_memory();
        history.push("NOOP \u{1b}]0;PWNED\u{7}\u{1b}[2J");
        assert!(history.entries().is_empty());
        history.push("EHLO me");
        history.push("AUTH PLAIN AGFsaWNlAHNlY3JldA==");
        history.push("auth=login dXNlcg==");
        history.push("AUTH PLAIN");
        assert_eq!(history.entries(), ["EHLO me", "AUTH PLAIN"]);
    }

    #[test]
    fn up_and_down_walk_the_lines() {
        let mut history = History::in_memory();
        history.push("EHLO a");
        history.push("NOOP");
        assert_eq!(history.older(""), Some("NOOP"));
        assert_eq!(history.older("NOOP"), Some("EHLO a"));
        assert_eq!(history.older("EHLO a"), Some("EHLO a"));
        assert_eq!(history.newer(), Some("NOOP"));
        assert_eq!(history.newer(), Some(""));
        assert_eq!(history.newer(), None);
    }

    #[test]
    fn down_past_the_newest_gives_back_the_line_being_typed() {
        let mut history = History::in_memory();
        history.push("EHLO a");
        assert_eq!(history.older("MAIL FR"), Some("EHLO a"));
        assert_eq!(history.older("EHLO a"), Some("EHLO a"));
        assert_eq!(history.newer(), Some("MAIL FR"));
    }

    #[test]
    fn history_persists_per_target() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("h").join("mail.example.com_587");
        let mut history = History::load(path.clone());
        history.push("EHLO x");
        history.push("AUTH LOGIN c2VjcmV0");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .expect("written")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "history must be private, mode {mode:o}");
        }
        let again = History::load(path);
        assert_eq!(again.entries(), ["EHLO x"]);
    }
}
