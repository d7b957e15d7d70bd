//! Message transmission after DATA (RFC 5321 §4.5.2): dot-stuffing and the end marker.

/// The line that ends a message.
pub const END_OF_DATA: &str = ".";

/// Returns the line as it must be sent: a leading dot is doubled so the server does not take
/// it for the end of the message (the server removes it again).
pub fn stuff_line(line: &str) -> std::borrow::Cow<'_, str> {
    if line.starts_with('.') {
        std::borrow::Cow::Owned(format!(".{line}"))
    } else {
        std::borrow::Cow::Borrowed(line)
    }
}

/// Reverses [`stuff_line`], as a server does on receipt.
pub fn unstuff_line(line: &str) -> &str {
    line.strip_prefix('.')
        .filter(|rest| !rest.is_empty())
        .map_or(line, |_| &line[1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_dots_are_doubled() {
        assert_eq!(stuff_line(".hidden"), "..hidden");
        assert_eq!(stuff_line(".."), "...");
        assert_eq!(stuff_line("plain"), "plain");
        assert_eq!(stuff_line(""), "");
        assert_eq!(stuff_line("a.b"), "a.b");
    }

    #[test]
    fn stuffing_round_trips() {
        for line in [".x", "..", "x", "", ". "] {
            assert_eq!(unstuff_line(&stuff_line(line)), line);
        }
    }
}
