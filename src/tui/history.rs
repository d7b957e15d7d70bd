//! Input history, kept per target in the user's data directory
//! (`$XDG_DATA_HOME/smtptui/history/`, or `~/.local/share/smtptui/history/`).
//!
//! Only lines that carry no credentials reach it: the UI pushes a line only once the engine
//! has said it crossed as a command (never refused, never a credential), [`may_remember`]
//! checks the line itself, and hidden prompts never call [`History::push`] at all.
//!
//! The file is readable by its owner only (0600, set on every open, also for a file that
//! existed with looser permissions) and holds at most [`MAX_ENTRIES`] lines: at the limit it
//! is rewritten with the newest ones, into a new file renamed over the old one.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use zeroize::Zeroize as _;

use crate::proto::command::{CommandKind, check_command_line, classify};
use crate::transcript::make_private;

/// The most lines kept per target, in memory and in the file.
pub const MAX_ENTRIES: usize = 1000;

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
    /// history is a convenience, never a reason not to start). An existing file is made
    /// private at once, whatever its permissions were.
    pub fn load(path: PathBuf) -> Self {
        let mut entries: Vec<String> = std::fs::File::open(&path)
            .and_then(|mut file| {
                let _ = make_private(&file);
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut file, &mut bytes)?;
                Ok(String::from_utf8_lossy(&bytes)
                    .lines()
                    .filter(|line| may_remember(line))
                    .map(str::to_owned)
                    .collect())
            })
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

    /// Remembers a line (unless it repeats the previous one) and adds it to the file.
    pub fn push(&mut self, line: &str) {
        self.position = None;
        if !may_remember(line) || self.entries.last().is_some_and(|last| last == line) {
            return;
        }
        self.entries.push(line.to_owned());
        if self.entries.len() > MAX_ENTRIES {
            self.entries.drain(..self.entries.len() - MAX_ENTRIES);
        }
        if let Some(path) = &self.path {
            // Failing to save history must not disturb the session.
            let _ = save_line(path, line);
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

/// Adds `line` to the file at `path`: appended while the file holds fewer than
/// [`MAX_ENTRIES`] lines, otherwise the file is rewritten with the newest ones. The file is
/// read again each time, so lines another window added since start-up are counted and kept.
fn save_line(path: &Path, line: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    let existing = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(error),
    };
    let text = String::from_utf8_lossy(&existing);
    if text.lines().count() < MAX_ENTRIES {
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        // What someone typed to a mail server is theirs alone (addresses, commands): the
        // file is readable by its owner only, whatever the umask.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path)?;
        // The mode above applies only when the file is created.
        make_private(&file)?;
        // A last line cut short (a crash mid-write) must not swallow this one.
        let separator = if existing.last().is_some_and(|&b| b != b'\n') {
            "\n"
        } else {
            ""
        };
        return writeln!(file, "{separator}{line}");
    }
    // Lines an older version kept that would not be kept now (an AUTH with its response)
    // are dropped on the way.
    let mut lines: Vec<&str> = text.lines().filter(|line| may_remember(line)).collect();
    lines.push(line);
    let keep = &lines[lines.len().saturating_sub(MAX_ENTRIES)..];
    rewrite(path, keep)
}

/// Replaces the file at `path` with `lines`: written to a new private file next to it, then
/// renamed over it, so a reader (or a crash) sees the old file or the new one, never half.
fn rewrite(path: &Path, lines: &[&str]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&temp)?;
        make_private(&file)?;
        let mut out = std::io::BufWriter::new(file);
        for line in lines {
            writeln!(out, "{line}")?;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Creates the history directory, readable by its owner only when it is new (its file names
/// are the servers this user talks to).
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
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

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path)
            .expect("exists")
            .permissions()
            .mode()
            & 0o777
    }

    /// A history file that already existed with looser permissions is made private when it
    /// is opened, not only when it is created.
    #[cfg(unix)]
    #[test]
    fn an_existing_history_file_is_made_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("target");
        std::fs::write(&path, "EHLO old\n").expect("written");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let mut history = History::load(path.clone());
        assert_eq!(mode(&path), 0o600, "on load");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        history.push("EHLO new");
        assert_eq!(mode(&path), 0o600, "on append");
    }

    /// At the limit the file is rewritten with the newest lines (the new one last), still
    /// private, and never grows past the limit.
    #[cfg(unix)]
    #[test]
    fn the_history_file_is_bounded() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("target");
        let old: String = (0..MAX_ENTRIES + 500)
            .map(|i| format!("NOOP {i}\n"))
            .collect();
        std::fs::write(&path, old).expect("written");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let mut history = History::load(path.clone());
        assert_eq!(history.entries().len(), MAX_ENTRIES);
        for i in 0..10 {
            history.push(&format!("EHLO {i}"));
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), MAX_ENTRIES);
        assert_eq!(lines.last(), Some(&"EHLO 9"));
        assert_eq!(lines.first(), Some(&"NOOP 510"));
        assert_eq!(mode(&path), 0o600);
        assert_eq!(history.entries().len(), MAX_ENTRIES);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["target"]);
    }
}
