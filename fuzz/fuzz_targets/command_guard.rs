//! Command classification as the credential guard relies on it: a line that a server would
//! read as AUTH (it splits words on C's isspace) is either refused as a line or classified as
//! AUTH, so it always meets the guard.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtptui::proto::command::{CommandKind, check_command_line, classify, split_verb};

/// The verb as a server sees it: up to the first space, TAB, LF, VT, FF or CR, after
/// leading ones.
fn server_verb(line: &str) -> String {
    let separator = |c: char| matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r');
    let trimmed = line.trim_start_matches(separator);
    let end = trimmed.find(separator).unwrap_or(trimmed.len());
    trimmed[..end].to_ascii_uppercase()
}

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    let kind = classify(&line);
    let _ = split_verb(&line);
    let verb = server_verb(&line);
    if (verb == "AUTH" || verb.starts_with("AUTH=")) && check_command_line(&line).is_ok() {
        assert!(
            matches!(kind, CommandKind::Auth { .. }),
            "{line:?} reaches a server as AUTH but was classified {kind:?}"
        );
    }
    if verb == "STARTTLS" && check_command_line(&line).is_ok() {
        assert_eq!(kind, CommandKind::StartTls, "{line:?}");
    }
});
