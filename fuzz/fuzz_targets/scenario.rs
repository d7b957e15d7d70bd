//! The scenario parser under arbitrary text: it never panics, and an error names a line that
//! exists in the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtptui::scenario::Scenario;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Scenario::parse("fuzz.smtp", text) {
        Ok(scenario) => {
            let lines = text.lines().count().max(1);
            for step in &scenario.steps {
                assert!(step.line >= 1 && step.line <= lines, "step on line {}", step.line);
            }
        }
        Err(error) => {
            let message = error.to_string();
            assert!(!message.is_empty());
            assert!(!message.chars().any(|c| c.is_control() && c != '\n'), "{message:?}");
        }
    }
});
