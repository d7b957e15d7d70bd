//! Making peer text safe to print.
//!
//! Anything a server sends is shown, never interpreted: ESC, BEL, backspace, carriage returns
//! and other control characters would let a hostile server repaint or retitle the user's
//! terminal, and Unicode bidirectional overrides can make text read differently than it is.
//! All of them become visible escapes such as `\x1b` or `\u{202e}`; bytes that are not UTF-8
//! become `\xNN`.

use std::fmt::Write;

/// Whether `c` must be shown as an escape rather than printed.
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200e}' | '\u{200f}' // left-to-right and right-to-left marks
            | '\u{202a}'..='\u{202e}' // embeddings and overrides
            | '\u{2066}'..='\u{2069}' // isolates
            | '\u{feff}' // zero-width no-break space / byte order mark
        )
}

/// Escapes arbitrary bytes for display: printable text stays as it is, everything else
/// becomes a visible escape. The result never contains a control character.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        escape_into(chunk.valid(), &mut out);
        for byte in chunk.invalid() {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

/// Escapes text for display, like [`escape_bytes`] for text already known to be UTF-8.
pub fn escape_str(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(text, &mut out);
    out
}

fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        if !needs_escape(c) {
            out.push(c);
        } else if (c as u32) < 0x100 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(
            escape_bytes(b"250 2.0.0 Ok: queued"),
            "250 2.0.0 Ok: queued"
        );
        assert_eq!(escape_bytes("220 café ESMTP".as_bytes()), "220 café ESMTP");
    }

    #[test]
    fn control_and_escape_sequences_become_visible() {
        assert_eq!(escape_bytes(b"a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(
            escape_bytes(b"\x07\x08\r\t\x7f"),
            "\\x07\\x08\\x0d\\x09\\x7f"
        );
        // C1 controls such as CSI (U+009B) are escaped too.
        assert_eq!(escape_str("\u{9b}31m"), "\\x9b31m");
    }

    #[test]
    fn bidi_overrides_are_escaped() {
        assert_eq!(escape_str("abc\u{202e}def"), "abc\\u{202e}def");
    }

    #[test]
    fn invalid_utf8_is_shown_as_hex() {
        assert_eq!(escape_bytes(b"ok\xc3(\xff"), "ok\\xc3(\\xff");
    }

    #[test]
    fn output_never_contains_controls_for_any_byte() {
        let all: Vec<u8> = (0..=255u8).collect();
        let shown = escape_bytes(&all);
        assert!(!shown.chars().any(needs_escape), "{shown}");
    }
}
