//! The credential guard's dialog: STARTTLS first (the default), cancel, or a deliberate
//! override for one command, given by typing a word. It takes every key while it is open.

use crossterm::event::{KeyCode, KeyEvent};

use super::engine::Retry;
use crate::guard::{OneTimeOverride, Refusal};

/// The guard dialog's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardDialog {
    /// Why the request was stopped.
    pub refusal: Refusal,
    /// What to repeat on override.
    pub retry: Retry,
    /// What the user typed so far towards the override word.
    pub typed: String,
    /// A hint after a wrong word.
    pub hint: Option<String>,
}

/// What the user chose in the dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardChoice {
    /// Nothing yet: the dialog stays open.
    Undecided,
    /// Esc: cancel, nothing is sent.
    Cancel,
    /// Enter with nothing typed: the safe way (STARTTLS first on cleartext, else cancel).
    Default,
    /// The override word and Enter: send the request anyway, for this one command.
    Override(OneTimeOverride),
}

impl GuardDialog {
    /// A dialog for a stopped request.
    pub fn new(refusal: Refusal, retry: Retry) -> Self {
        Self {
            refusal,
            retry,
            typed: String::new(),
            hint: None,
        }
    }

    /// The word that must be typed to override this refusal.
    pub fn override_word(&self) -> &'static str {
        match self.refusal {
            Refusal::Cleartext => "cleartext",
            Refusal::Unverified(_) => "unverified",
        }
    }

    /// The one-time override the word gives.
    fn one_time(&self) -> OneTimeOverride {
        match self.refusal {
            Refusal::Cleartext => OneTimeOverride::Cleartext,
            Refusal::Unverified(_) => OneTimeOverride::Unverified,
        }
    }

    /// Takes a key: characters and Backspace edit the word, Enter decides, Esc cancels. A
    /// wrong word is cleared with a hint; only the exact word overrides.
    pub fn on_key(&mut self, key: KeyEvent) -> GuardChoice {
        match key.code {
            KeyCode::Esc => GuardChoice::Cancel,
            KeyCode::Backspace => {
                self.typed.pop();
                GuardChoice::Undecided
            }
            KeyCode::Char(c) => {
                self.typed.push(c);
                GuardChoice::Undecided
            }
            KeyCode::Enter if self.typed.is_empty() => GuardChoice::Default,
            KeyCode::Enter if self.typed == self.override_word() => {
                GuardChoice::Override(self.one_time())
            }
            KeyCode::Enter => {
                self.hint = Some(format!(
                    "type exactly '{}' to override, or clear the field",
                    self.override_word()
                ));
                self.typed.clear();
                GuardChoice::Undecided
            }
            _ => GuardChoice::Undecided,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::sasl::Mechanism;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::from(code)
    }

    fn type_word(dialog: &mut GuardDialog, word: &str) -> GuardChoice {
        for c in word.chars() {
            assert_eq!(dialog.on_key(key(KeyCode::Char(c))), GuardChoice::Undecided);
        }
        dialog.on_key(key(KeyCode::Enter))
    }

    #[test]
    fn only_the_exact_word_overrides_and_only_its_own_case() {
        let mut dialog = GuardDialog::new(Refusal::Cleartext, Retry::Auth(Mechanism::Plain));
        assert_eq!(type_word(&mut dialog, "yes"), GuardChoice::Undecided);
        assert!(dialog.typed.is_empty(), "a wrong word is cleared");
        assert!(
            dialog
                .hint
                .as_deref()
                .is_some_and(|h| h.contains("'cleartext'"))
        );
        assert_eq!(type_word(&mut dialog, "unverified"), GuardChoice::Undecided);
        assert_eq!(
            type_word(&mut dialog, "cleartext"),
            GuardChoice::Override(OneTimeOverride::Cleartext)
        );
    }

    #[test]
    fn enter_alone_is_the_default_and_esc_cancels() {
        let mut dialog = GuardDialog::new(Refusal::Cleartext, Retry::Auth(Mechanism::Login));
        assert_eq!(dialog.on_key(key(KeyCode::Enter)), GuardChoice::Default);
        dialog.on_key(key(KeyCode::Char('c')));
        dialog.on_key(key(KeyCode::Backspace));
        assert_eq!(dialog.on_key(key(KeyCode::Enter)), GuardChoice::Default);
        assert_eq!(dialog.on_key(key(KeyCode::Esc)), GuardChoice::Cancel);
    }
}
