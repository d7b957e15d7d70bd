//! JUnit XML reports of scenario runs (`smtptui run --junit FILE`), the format GitLab,
//! GitHub and Jenkins render as test results.
//!
//! One `<testsuite>` per run, one `<testcase>` per scenario. A scenario whose expectation
//! failed, whose step could not go on, or whose credentials the guard refused is a
//! `<failure>`; one whose session failed (network, TLS, timeout, protocol) is an `<error>`,
//! as JUnit tells "the test found a problem" from "the test could not run". The message names
//! the scenario line, what was expected and the reply that came; `<system-out>` holds the
//! scenario's (redacted) transcript. Every text is escaped for XML, and characters XML 1.0
//! cannot carry at all are written as `\u{..}`, so a server's bytes never break the report.

use std::fmt::Write as _;
use std::time::SystemTime;

use super::Outcome;
use super::batch::CaseResult;

/// The report for `results`, run against `target`, started at `started`.
pub fn report(target: &str, started: SystemTime, results: &[CaseResult]) -> String {
    let failures = results
        .iter()
        .filter(|r| {
            matches!(
                r.outcome,
                Outcome::ExpectationFailed { .. }
                    | Outcome::StepFailed { .. }
                    | Outcome::GuardRefused { .. }
            )
        })
        .count();
    let errors = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failure { .. }))
        .count();
    let seconds: f64 = results.iter().map(|r| r.elapsed.as_secs_f64()).sum();
    let timestamp = time::OffsetDateTime::from(started)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let suite = format!("smtptui run {target}");
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"smtptui\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" \
         time=\"{seconds:.3}\">",
        results.len()
    );
    let _ = writeln!(
        xml,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" \
         skipped=\"0\" time=\"{seconds:.3}\" timestamp=\"{}\">",
        escape(&suite),
        results.len(),
        escape(&timestamp)
    );
    for result in results {
        let _ = write!(
            xml,
            "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
            escape(&result.name),
            escape(&suite),
            result.elapsed.as_secs_f64()
        );
        if let Some(line) = scenario_line(&result.outcome) {
            let _ = write!(xml, " file=\"{}\" line=\"{line}\"", escape(&result.name));
        }
        xml.push_str(">\n");
        if let Some((element, kind, message)) = problem(result) {
            let _ = writeln!(
                xml,
                "      <{element} type=\"{kind}\" message=\"{}\">{}</{element}>",
                escape(&message),
                escape(&result.outcome.summary(&result.name))
            );
        }
        let _ = writeln!(
            xml,
            "      <system-out>{}</system-out>",
            escape(&result.plain.join("\n"))
        );
        xml.push_str("    </testcase>\n");
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}

/// The scenario line a problem is at, where there is one.
fn scenario_line(outcome: &Outcome) -> Option<usize> {
    match outcome {
        Outcome::Passed { .. } => None,
        Outcome::ExpectationFailed { line }
        | Outcome::StepFailed { line, .. }
        | Outcome::GuardRefused { line, .. } => Some(*line),
        Outcome::Failure { line, .. } => *line,
    }
}

/// The element (`failure` or `error`), its type and its message, for a case that did not pass.
fn problem(result: &CaseResult) -> Option<(&'static str, &'static str, String)> {
    let name = &result.name;
    Some(match &result.outcome {
        Outcome::Passed { .. } => return None,
        Outcome::ExpectationFailed { line } => (
            "failure",
            "expectation",
            result.failed_check.clone().map_or_else(
                || format!("{name}:{line}: the expectation was not met"),
                |check| format!("{name}: {check}"),
            ),
        ),
        Outcome::StepFailed { line, reason } => {
            ("failure", "step", format!("{name}:{line}: {reason}"))
        }
        Outcome::GuardRefused { line, reason } => {
            ("failure", "guard", format!("{name}:{line}: {reason}"))
        }
        Outcome::Failure {
            line: Some(line),
            reason,
        } => ("error", "session", format!("{name}:{line}: {reason}")),
        Outcome::Failure { line: None, reason } => {
            ("error", "session", format!("{name}: {reason}"))
        }
    })
}

/// `text` for an XML attribute or element: the five special characters as entities, and the
/// characters XML 1.0 cannot hold (controls other than tab, line feed and carriage return)
/// as `\u{..}`.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn case(name: &str, outcome: Outcome, failed_check: Option<&str>) -> CaseResult {
        CaseResult {
            name: name.to_owned(),
            outcome,
            elapsed: Duration::from_millis(1500),
            failed_check: failed_check.map(str::to_owned),
            display: Vec::new(),
            plain: vec!["S: 220 <ready> & \u{1b}[31m".to_owned()],
        }
    }

    #[test]
    fn failures_errors_and_passes_are_told_apart_and_escaped() {
        let xml = report(
            "mx.example:25",
            SystemTime::UNIX_EPOCH,
            &[
                case("a.smtp", Outcome::Passed { checked: 3 }, None),
                case(
                    "b.smtp",
                    Outcome::ExpectationFailed { line: 7 },
                    Some("line 7: expected 250, got 554 5.7.1 <x@y> \"no\""),
                ),
                case(
                    "c.smtp",
                    Outcome::Failure {
                        line: None,
                        reason: "connection refused".to_owned(),
                    },
                    None,
                ),
            ],
        );
        assert!(
            xml.contains("tests=\"3\" failures=\"1\" errors=\"1\""),
            "{xml}"
        );
        assert!(
            xml.contains(
                "<failure type=\"expectation\" message=\"b.smtp: line 7: expected 250, got 554 \
                 5.7.1 &lt;x@y&gt; &quot;no&quot;\">"
            ),
            "{xml}"
        );
        assert!(xml.contains("file=\"b.smtp\" line=\"7\""), "{xml}");
        assert!(xml.contains("<error type=\"session\""), "{xml}");
        assert!(xml.contains("&lt;ready&gt; &amp; \\u{1b}[31m"), "{xml}");
        assert!(!xml.contains('\u{1b}'), "{xml}");
        assert!(xml.contains("time=\"1.500\""), "{xml}");
    }
}
