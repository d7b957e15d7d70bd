//! The scenario parser under arbitrary text: it never panics, and an error names a line that
//! exists in the text; every step, `S:` and `FILE` of a parsed scenario names one too, and a
//! pipelined group has one `S:` per command or none.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtptui::scenario::{Action, Scenario};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Scenario::parse("fuzz.smtp", text) {
        Ok(scenario) => {
            let lines = text.lines().count().max(1);
            for step in &scenario.steps {
                assert!(step.line >= 1 && step.line <= lines, "step on line {}", step.line);
                for expect in step.expectations() {
                    assert!(expect.line > 0 && expect.line <= lines, "S: on line {}", expect.line);
                }
                for file in step.files() {
                    assert!(file.line > 0 && file.line <= lines, "FILE on line {}", file.line);
                }
                // A group has one S: per command or none.
                if let Action::Group { lines: group, .. } = &step.action {
                    let checked = step.expectations().count();
                    assert!(checked == 0 || checked == group.len(), "{checked} S: for {group:?}");
                }
            }
            // The checks a run makes before connecting never panic either.
            for error in [
                scenario.check_protocol(true).err(),
                scenario.check_protocol(false).err(),
                scenario.check_envelopes().err(),
            ]
            .into_iter()
            .flatten()
            {
                assert!(error.line <= lines, "{error}");
            }
        }
        Err(error) => {
            let message = error.to_string();
            assert!(!message.is_empty());
            assert!(!message.chars().any(|c| c.is_control() && c != '\n'), "{message:?}");
        }
    }
});
