//! Word wrapping for the panes and dialogs: paragraphs of text into lines of a given width in
//! terminal cells, so the screen never cuts a sentence where a line ends and wide characters
//! are measured as the terminal draws them.
//!
//! A paragraph that starts with spaces (an item of a list) or with `- ` indents the lines it
//! wraps onto two cells past its start, so an item stays readable as one piece.

use ratatui::style::Style;
use ratatui::text::{Line, Span};
use unicode_width::{UnicodeWidthChar as _, UnicodeWidthStr as _};

/// The lines `paragraph` takes at `width` cells (at least one, even for an empty paragraph).
pub fn wrap_paragraph(paragraph: &str, width: usize) -> Vec<String> {
    let width = width.max(8);
    let indent = paragraph.len() - paragraph.trim_start_matches(' ').len();
    let body = &paragraph[indent..];
    let hanging = if indent > 0 || body.starts_with("- ") {
        indent + 2
    } else {
        indent
    }
    .min(width / 2);
    let mut lines = Vec::new();
    let mut line = " ".repeat(indent.min(width / 2));
    let mut used = line.width();
    let start_of_line = |lines: &Vec<String>| if lines.is_empty() { indent } else { hanging };
    for word in body.split(' ') {
        let word_width = word.width();
        let lead = start_of_line(&lines).min(width / 2);
        let at_start = used <= lead;
        let needed = if at_start { word_width } else { word_width + 1 };
        if used + needed <= width {
            if !at_start {
                line.push(' ');
                used += 1;
            }
            line.push_str(word);
            used += word_width;
            continue;
        }
        if !at_start {
            lines.push(std::mem::take(&mut line));
            line = " ".repeat(hanging);
            used = hanging;
        }
        // A word longer than the line is cut where the line ends.
        for c in word.chars() {
            let cells = c.width().unwrap_or(0);
            if used + cells > width {
                lines.push(std::mem::take(&mut line));
                line = " ".repeat(hanging);
                used = hanging;
            }
            line.push(c);
            used += cells;
        }
    }
    lines.push(line);
    lines
}

/// Every paragraph wrapped, in order.
pub fn wrap_all<S: AsRef<str>>(paragraphs: &[S], width: usize) -> Vec<String> {
    paragraphs
        .iter()
        .flat_map(|paragraph| wrap_paragraph(paragraph.as_ref(), width))
        .collect()
}

/// A styled paragraph wrapped into styled lines: every line of it has the paragraph's style.
pub fn wrap_styled(paragraph: &str, style: Style, width: usize) -> Vec<Line<'static>> {
    wrap_paragraph(paragraph, width)
        .into_iter()
        .map(|line| Line::from(Span::styled(line, style)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_stay_whole_and_lines_fit() {
        let text = "The server requires TLS before this command: send STARTTLS, then EHLO again.";
        let lines = wrap_paragraph(text, 30);
        assert!(lines.iter().all(|l| l.width() <= 30), "{lines:?}");
        assert_eq!(lines.join(" "), text);
        assert_eq!(lines[0], "The server requires TLS before");
    }

    #[test]
    fn items_keep_their_indent_and_hang() {
        let lines = wrap_paragraph(
            "  PIPELINING: several commands may be sent before reading the replies (RFC 2920)",
            40,
        );
        assert!(lines[0].starts_with("  PIPELINING:"), "{lines:?}");
        assert!(
            lines[1..].iter().all(|l| l.starts_with("    ")),
            "{lines:?}"
        );
    }

    #[test]
    fn long_runs_are_cut_and_wide_characters_measured() {
        let lines = wrap_paragraph(&"A".repeat(25), 10);
        assert_eq!(lines, ["AAAAAAAAAA", "AAAAAAAAAA", "AAAAA"]);
        let lines = wrap_paragraph(&"漢".repeat(9), 10);
        assert!(lines.iter().all(|l| l.width() <= 10), "{lines:?}");
        assert_eq!(lines.concat().chars().count(), 9);
        assert_eq!(wrap_paragraph("", 10), [""]);
    }
}
