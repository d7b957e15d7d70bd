//! The message editor, open after a 354: the lines written so far (the input line holds the
//! one being typed), ended by a lone `.`, Ctrl-D or a pasted lone `.`; Esc twice leaves
//! without sending it.

/// The message being written.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MessageEditor {
    lines: Vec<String>,
    /// Esc was pressed once; a second Esc leaves.
    leave_armed: bool,
}

/// What a line given to the editor did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entered {
    /// It became a line of the message.
    Added,
    /// It was a lone `.`: the message is complete.
    End,
}

/// What pasted text did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pasted {
    /// Its lines joined the message; the unfinished last line goes back to the input line.
    Open {
        /// The text after the last line break.
        rest: String,
    },
    /// A pasted lone `.` ended the message.
    End {
        /// Lines pasted after the dot, not used.
        unused: usize,
    },
}

impl std::fmt::Debug for MessageEditor {
    /// The number of lines only: the message can be long, and is on screen already.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageEditor")
            .field("lines", &self.lines.len())
            .field("leave_armed", &self.leave_armed)
            .finish()
    }
}

impl MessageEditor {
    /// The lines written so far.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// Takes a line typed and Enter.
    pub fn enter(&mut self, line: String) -> Entered {
        if line == "." {
            return Entered::End;
        }
        self.lines.push(line);
        Entered::Added
    }

    /// Takes pasted text: every pasted line is a line of the message (the first joined to
    /// `typed`, what the input line held), and a lone `.` among them ends it.
    pub fn paste(&mut self, typed: String, text: &str) -> Pasted {
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let mut lines: Vec<&str> = text.split('\n').collect();
        let last = lines.pop().unwrap_or_default();
        let mut typed = Some(typed);
        for (index, line) in lines.iter().enumerate() {
            let line = format!("{}{line}", typed.take().unwrap_or_default());
            if line == "." {
                let unused = lines.len() - index - 1 + usize::from(!last.is_empty());
                return Pasted::End { unused };
            }
            self.lines.push(line);
        }
        Pasted::Open {
            rest: format!("{}{last}", typed.unwrap_or_default()),
        }
    }

    /// Takes the lines out to be sent.
    pub fn take(&mut self) -> Vec<String> {
        std::mem::take(&mut self.lines)
    }

    /// Esc: the first only warns (the message is not sent yet); returns whether this one
    /// leaves.
    pub fn escape(&mut self) -> bool {
        std::mem::replace(&mut self.leave_armed, true)
    }

    /// Any key but Esc: the next Esc warns again.
    pub fn disarm(&mut self) {
        self.leave_armed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_dot_ends_the_message_typed_or_pasted() {
        let mut editor = MessageEditor::default();
        assert_eq!(editor.enter("Subject: x".to_owned()), Entered::Added);
        assert_eq!(editor.enter(".dot".to_owned()), Entered::Added);
        assert_eq!(editor.enter(".".to_owned()), Entered::End);
        assert_eq!(editor.lines(), ["Subject: x", ".dot"]);

        let mut editor = MessageEditor::default();
        let pasted = editor.paste("Sub".to_owned(), "ject: y\r\nbody\r\n.\r\nafter\r\nmore");
        assert_eq!(pasted, Pasted::End { unused: 2 });
        assert_eq!(editor.lines(), ["Subject: y", "body"]);

        let mut editor = MessageEditor::default();
        let pasted = editor.paste("typed ".to_owned(), "no line break");
        assert_eq!(
            pasted,
            Pasted::Open {
                rest: "typed no line break".to_owned()
            }
        );
        assert!(editor.lines().is_empty());
    }

    #[test]
    fn the_second_esc_in_a_row_leaves() {
        let mut editor = MessageEditor::default();
        assert!(!editor.escape());
        editor.disarm();
        assert!(!editor.escape());
        assert!(editor.escape());
    }
}
