//! Several command lines pasted at once: kept as the first line alone (the default, as a
//! paste always was), or, on an explicit choice, sent as one pipelined group (RFC 2920): one
//! write, each reply paired with its command in order. The session core checks every rule of
//! a group before anything leaves (PIPELINING advertised unless forced, only the last command
//! one whose reply changes what follows, the credential guard on every line); the dialog only
//! offers the choice and says what it means.

use crossterm::event::{KeyCode, KeyEvent};

/// The most lines a pasted group may have.
pub const MAX_GROUP: usize = 100;

/// The pasted lines, waiting for the user's choice.
#[derive(Clone, PartialEq, Eq)]
pub struct PastedGroup {
    /// The non-empty lines, in order.
    pub lines: Vec<String>,
    /// Whether the server's latest EHLO advertised PIPELINING.
    pub advertised: bool,
}

impl std::fmt::Debug for PastedGroup {
    /// The number of lines only: a pasted line may hold anything.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PastedGroup")
            .field("lines", &self.lines.len())
            .field("advertised", &self.advertised)
            .finish()
    }
}

/// What the user chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupChoice {
    /// Nothing yet: the dialog stays open.
    Undecided,
    /// Enter: keep only the first line on the input line, as any paste does.
    FirstLine,
    /// `p`: send every line as one pipelined group; `force` also when the server did not
    /// advertise PIPELINING (`f`).
    Send {
        /// Send although PIPELINING was not advertised.
        force: bool,
    },
    /// Esc: drop the paste.
    Drop,
}

impl PastedGroup {
    /// The dialog for pasted `text` when it holds more than one command line, `None`
    /// otherwise. Empty lines are left out.
    pub fn from_paste(text: &str, advertised: bool) -> Option<Self> {
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let lines: Vec<String> = text
            .split('\n')
            .filter(|line| !line.trim().is_empty())
            .map(str::to_owned)
            .collect();
        (lines.len() > 1).then_some(Self { lines, advertised })
    }

    /// Why the lines cannot go as a group whatever the user chooses, if so: a local command
    /// among them, or too many lines.
    pub fn unsendable(&self) -> Option<String> {
        if self.lines.len() > MAX_GROUP {
            return Some(format!(
                "{} lines: a group holds at most {MAX_GROUP}",
                self.lines.len()
            ));
        }
        self.lines
            .iter()
            .any(|line| line.starts_with(':'))
            .then(|| "a line starts with ':', a local command, which is never sent".to_owned())
    }

    /// Takes a key: Enter keeps the first line, `p` sends the group, `f` forces it where
    /// PIPELINING was not advertised, Esc drops the paste.
    pub fn on_key(&self, key: KeyEvent) -> GroupChoice {
        match key.code {
            KeyCode::Enter => GroupChoice::FirstLine,
            KeyCode::Esc => GroupChoice::Drop,
            KeyCode::Char('p' | 'P') if self.unsendable().is_none() => {
                GroupChoice::Send { force: false }
            }
            KeyCode::Char('f' | 'F') if self.unsendable().is_none() && !self.advertised => {
                GroupChoice::Send { force: true }
            }
            _ => GroupChoice::Undecided,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_several_lines_make_a_group() {
        assert!(PastedGroup::from_paste("NOOP\n", true).is_none());
        assert!(PastedGroup::from_paste("NOOP\n\n", true).is_none());
        let group = PastedGroup::from_paste("MAIL FROM:<a@b>\r\n\r\nRCPT TO:<c@d>\r\n", true)
            .expect("a group");
        assert_eq!(group.lines, ["MAIL FROM:<a@b>", "RCPT TO:<c@d>"]);
        assert!(!format!("{group:?}").contains("MAIL"));
    }

    #[test]
    fn keys_choose_and_force_needs_an_unadvertised_server() {
        let key = |c| KeyEvent::from(KeyCode::Char(c));
        let group = PastedGroup::from_paste("NOOP\nNOOP\n", true).expect("group");
        assert_eq!(group.on_key(key('p')), GroupChoice::Send { force: false });
        assert_eq!(group.on_key(key('f')), GroupChoice::Undecided);
        assert_eq!(
            group.on_key(KeyEvent::from(KeyCode::Enter)),
            GroupChoice::FirstLine
        );
        assert_eq!(
            group.on_key(KeyEvent::from(KeyCode::Esc)),
            GroupChoice::Drop
        );
        let group = PastedGroup::from_paste("NOOP\nNOOP\n", false).expect("group");
        assert_eq!(group.on_key(key('f')), GroupChoice::Send { force: true });
        let local = PastedGroup::from_paste("NOOP\n:quit\n", true).expect("group");
        assert!(local.unsendable().is_some());
        assert_eq!(local.on_key(key('p')), GroupChoice::Undecided);
    }
}
