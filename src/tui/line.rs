//! The text of the input line and the cursor in it, edited as a shell edits its line.
//!
//! The line may hold a password or a SASL answer, so no copy of its text is ever left behind:
//! edits happen in place in one buffer, a buffer that must grow is copied into a larger one and
//! wiped, and clearing wipes the whole capacity. (A general-purpose input widget rebuilds its
//! string on every edit in the middle of the line and drops the old one unwiped.)
//!
//! The cursor is a byte offset on a character boundary; the screen measures it in terminal
//! cells ([`EditLine::cells_before_cursor`]), so wide characters place it right.

use unicode_width::UnicodeWidthStr as _;
use zeroize::Zeroize as _;

use crate::proto::escape::escape_str;

/// The smallest buffer: most lines fit, so most never move.
const INITIAL_CAPACITY: usize = 128;

/// A line being typed, with its cursor.
#[derive(Default)]
pub struct EditLine {
    text: String,
    cursor: usize,
}

impl Drop for EditLine {
    fn drop(&mut self) {
        self.text.zeroize();
    }
}

impl EditLine {
    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether nothing is typed.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// The cursor, as a byte offset into [`EditLine::text`].
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// How many terminal cells the text before the cursor takes on screen, as the screen shows
    /// it (escaped).
    pub fn cells_before_cursor(&self) -> usize {
        escape_str(&self.text[..self.cursor]).width()
    }

    /// Inserts `text` at the cursor and moves the cursor after it.
    pub fn insert_str(&mut self, text: &str) {
        self.reserve(text.len());
        self.text.insert_str(self.cursor, text);
        self.cursor += text.len();
    }

    /// Inserts a character at the cursor.
    pub fn insert(&mut self, c: char) {
        let mut buffer = [0; 4];
        self.insert_str(c.encode_utf8(&mut buffer));
    }

    /// Replaces the whole text (the old one is wiped) and puts the cursor at its end.
    pub fn set(&mut self, text: &str) {
        self.clear();
        self.insert_str(text);
    }

    /// Wipes the text.
    pub fn clear(&mut self) {
        self.text.zeroize();
        self.cursor = 0;
    }

    /// Takes the text out, leaving the line empty.
    pub fn take(&mut self) -> String {
        self.cursor = 0;
        std::mem::take(&mut self.text)
    }

    /// One character left.
    pub fn left(&mut self) {
        self.cursor = self.previous_boundary(self.cursor);
    }

    /// One character right.
    pub fn right(&mut self) {
        self.cursor = self.next_boundary(self.cursor);
    }

    /// To the start of the line.
    pub fn home(&mut self) {
        self.cursor = 0;
    }

    /// To the end of the line.
    pub fn end(&mut self) {
        self.cursor = self.text.len();
    }

    /// To the start of the word before the cursor (letters and digits make words).
    pub fn word_left(&mut self) {
        let before = &self.text[..self.cursor];
        let trimmed = before.trim_end_matches(|c: char| !c.is_alphanumeric());
        self.cursor = trimmed.trim_end_matches(char::is_alphanumeric).len();
    }

    /// To the end of the word after the cursor.
    pub fn word_right(&mut self) {
        let after = &self.text[self.cursor..];
        let skipped = after.trim_start_matches(|c: char| !c.is_alphanumeric());
        let rest = skipped.trim_start_matches(char::is_alphanumeric);
        self.cursor = self.text.len() - rest.len();
    }

    /// Deletes the character before the cursor (Backspace).
    pub fn delete_back(&mut self) {
        let start = self.previous_boundary(self.cursor);
        self.remove(start, self.cursor);
    }

    /// Deletes the character at the cursor (Delete).
    pub fn delete_forward(&mut self) {
        let end = self.next_boundary(self.cursor);
        self.remove(self.cursor, end);
    }

    /// Deletes back to the previous whitespace, as a shell's Ctrl-W does.
    pub fn delete_word_back(&mut self) {
        let before = &self.text[..self.cursor];
        let start = before
            .trim_end_matches(char::is_whitespace)
            .trim_end_matches(|c: char| !c.is_whitespace())
            .len();
        self.remove(start, self.cursor);
    }

    /// Deletes from the start of the line to the cursor (Ctrl-U).
    pub fn delete_to_start(&mut self) {
        self.remove(0, self.cursor);
    }

    /// Deletes from the cursor to the end of the line (Ctrl-K).
    pub fn delete_to_end(&mut self) {
        self.remove(self.cursor, self.text.len());
    }

    /// Removes `start..end` in place and wipes the bytes the text no longer covers.
    fn remove(&mut self, start: usize, end: usize) {
        if start >= end {
            return;
        }
        let len = self.text.len();
        self.text.replace_range(start..end, "");
        // The tail moved left, and the bytes after the new end still hold the old tail: they
        // are overwritten by appending as many zeros and truncating again, all within the
        // capacity (no reallocation, no unsafe code).
        let removed = len - self.text.len();
        self.text.extend(std::iter::repeat_n('\0', removed));
        self.text.truncate(len - removed);
        self.cursor = start;
    }

    /// Makes room for `more` bytes; a buffer that must grow is replaced by a larger one and
    /// wiped, so the text never leaves a copy in memory given back.
    fn reserve(&mut self, more: usize) {
        let needed = self.text.len() + more;
        if needed <= self.text.capacity() {
            return;
        }
        let capacity = needed.max(self.text.capacity() * 2).max(INITIAL_CAPACITY);
        let mut larger = String::with_capacity(capacity);
        larger.push_str(&self.text);
        self.text.zeroize();
        self.text = larger;
    }

    fn previous_boundary(&self, index: usize) -> usize {
        self.text[..index]
            .char_indices()
            .next_back()
            .map_or(0, |(i, _)| i)
    }

    fn next_boundary(&self, index: usize) -> usize {
        self.text[index..]
            .chars()
            .next()
            .map_or(index, |c| index + c.len_utf8())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> EditLine {
        let mut line = EditLine::default();
        line.insert_str(text);
        line
    }

    #[test]
    fn editing_in_the_middle_of_the_line() {
        let mut l = line("MAIL FROM:<a@b>");
        l.home();
        l.word_right();
        assert_eq!(&l.text()[l.cursor()..], " FROM:<a@b>");
        l.insert_str("X");
        assert_eq!(l.text(), "MAILX FROM:<a@b>");
        l.delete_back();
        l.end();
        l.word_left();
        assert_eq!(&l.text()[l.cursor()..], "b>");
        l.delete_to_end();
        assert_eq!(l.text(), "MAIL FROM:<a@");
        l.delete_word_back();
        assert_eq!(l.text(), "MAIL ");
        l.delete_word_back();
        assert_eq!(l.text(), "");
        let mut l = line("RCPT TO:<x>");
        l.left();
        l.left();
        l.delete_to_start();
        assert_eq!((l.text(), l.cursor()), ("x>", 0));
        l.delete_forward();
        assert_eq!(l.text(), ">");
        l.right();
        l.right();
        l.delete_forward();
        assert_eq!((l.text(), l.cursor()), (">", 1));
    }

    #[test]
    fn the_cursor_is_measured_in_cells() {
        let mut l = line("漢字x");
        assert_eq!(l.cells_before_cursor(), 5);
        l.left();
        assert_eq!(l.cells_before_cursor(), 4);
        l.left();
        assert_eq!(l.cells_before_cursor(), 2);
        l.delete_back();
        assert_eq!((l.text(), l.cells_before_cursor()), ("字x", 0));
        // A control character is shown escaped, four cells wide.
        let l = line("a\tb");
        assert_eq!(l.cells_before_cursor(), 6);
    }
}
