//! Reading the small text files the instructor writes (exercises, rosters, class sheets), with
//! errors that name the file, the line and the fix, as the scenario parser's do.

use std::io::Read as _;
use std::path::Path;

/// A problem in a text file, at a line (0 when the whole file is the problem).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", if *.line > 0 { format!(":{line}") } else { String::new() })]
pub struct FileError {
    /// The file.
    pub file: String,
    /// The 1-based line number; 0 for the whole file.
    pub line: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl FileError {
    /// An error at `line` of `file`.
    pub fn at(file: &str, line: usize, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line,
            message: message.into(),
        }
    }
}

/// Reads a UTF-8 text file of at most `limit` bytes; `what` names it in errors ("the roster").
///
/// # Errors
/// [`FileError`] when the file cannot be read, is larger than `limit`, or is not UTF-8 (at
/// the line of the first bad byte).
pub fn read(path: &Path, limit: u64, what: &str) -> Result<String, FileError> {
    let name = path.display().to_string();
    let unreadable =
        |e: std::io::Error| FileError::at(&name, 0, format!("cannot read {what}: {e}"));
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    // One byte beyond the limit tells a file at the limit from a larger one.
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > limit {
        return Err(FileError::at(
            &name,
            0,
            format!(
                "the file is larger than {} KiB, too large for {what}; check that this is the file you meant",
                limit / 1024
            ),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        FileError::at(
            &name,
            line,
            format!("{what} is not valid UTF-8; save it as UTF-8"),
        )
    })
}

/// The lines of a text file that carry content: `(line number, text)` without comments
/// (lines starting with `#`), blank lines, a byte-order mark or line ends.
pub fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.lines().enumerate().filter_map(|(index, raw)| {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = line.trim();
        (!trimmed.is_empty() && !trimmed.starts_with('#')).then_some((index + 1, trimmed))
    })
}

/// Whether `id` is a usable identifier: 1 to `max` letters, digits and hyphens, starting with a
/// letter or digit.
pub fn is_identifier(id: &str, max: usize) -> bool {
    !id.is_empty()
        && id.len() <= max
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !id.starts_with('-')
}

/// The first control character (tab aside) in `text`, if any.
pub fn control_character(text: &str) -> Option<char> {
    text.chars()
        .find(|&c| crate::proto::escape::needs_escape(c) && c != '\t')
}
