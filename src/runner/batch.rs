//! Several scenarios against one server, for CI: `smtptui run a.smtp b.smtp dir/ HOST`.
//!
//! Each scenario runs in a session of its own, with the same configuration, credentials and
//! guard as a single run; up to `jobs` sessions are open at once. Results come back in the
//! order the scenarios were given, whatever order they finish in, so a CI log reads the same
//! from one run to the next. Each result keeps its transcript, rendered for the screen and as
//! plain text, so the caller prints only what a reader needs (the transcripts of the
//! scenarios that did not pass) and writes the rest to files.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;

use super::{Outcome, RunOptions, run_with};
use crate::scenario::Scenario;
use crate::secret::Credentials;
use crate::session::{EventSink, SessionConfig};
use crate::transcript::{Event, EventKind, Palette};

/// How each result's transcript is rendered for the screen.
#[derive(Debug, Clone, Copy)]
pub enum Render {
    /// Text lines, coloured by the palette.
    Text(Palette),
    /// One JSON object per event, each with a `scenario` member naming its scenario.
    Json,
}

/// What one scenario's run gave.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The scenario's name (its path, `stdin`, or `built-in NAME`).
    pub name: String,
    /// How it ended.
    pub outcome: Outcome,
    /// From connecting to the end of the session.
    pub elapsed: Duration,
    /// The first unmet expectation, as the transcript words it: `line 12: expected 250,
    /// got 554 5.7.1 ...`.
    pub failed_check: Option<String>,
    /// The transcript as [`Render`] asked, one entry per line.
    pub display: Vec<String>,
    /// The transcript as plain text, one entry per line (redacted as every transcript is).
    pub plain: Vec<String>,
}

impl CaseResult {
    /// Whether every expectation of the scenario held.
    pub fn passed(&self) -> bool {
        matches!(self.outcome, Outcome::Passed { .. })
    }
}

/// Where a session's events are shown.
pub enum Shown {
    /// Kept in [`CaseResult::display`], rendered so, for the caller to print later (several
    /// scenarios at a time).
    Kept(Render),
    /// Handed to this sink as they happen (one scenario, watched as it runs); nothing is kept
    /// in [`CaseResult::display`].
    Live(EventSink),
}

/// What a sink keeps of one session while it runs.
#[derive(Default)]
struct Kept {
    failed_check: Option<String>,
    display: Vec<String>,
    plain: Vec<String>,
}

/// A sink that keeps what the report of the scenario `name` needs: the first unmet
/// expectation, the display lines when `shown` keeps them, the plain lines when `keep_plain`.
fn keeping(name: &str, shown: Shown, keep_plain: bool, kept: Arc<Mutex<Kept>>) -> EventSink {
    let name = name.to_owned();
    let (render, mut live) = match shown {
        Shown::Kept(render) => (Some(render), None),
        Shown::Live(sink) => (None, Some(sink)),
    };
    Box::new(move |event: Event| {
        if let Ok(mut kept) = kept.lock() {
            if let EventKind::Expectation {
                line,
                expected,
                met: false,
                got,
            } = &event.kind
                && kept.failed_check.is_none()
            {
                kept.failed_check = Some(format!("line {line}: expected {expected}, got {got}"));
            }
            match render {
                Some(Render::Text(palette)) => {
                    let lines = event.to_text_lines(palette);
                    kept.display.extend(lines);
                }
                Some(Render::Json) => {
                    let mut object = event.to_json();
                    if let Some(map) = object.as_object_mut() {
                        map.insert("scenario".to_owned(), serde_json::Value::from(name.clone()));
                    }
                    kept.display.push(object.to_string());
                }
                None => {}
            }
            if keep_plain {
                let plain = event.to_text_lines(Palette::new(false));
                kept.plain.extend(plain);
            }
        }
        if let Some(live) = live.as_mut() {
            live(event);
        }
    })
}

/// Runs one scenario, keeping what its report needs (see [`Shown`]; the plain transcript only
/// when `keep_plain`).
pub async fn run_case(
    scenario: &Scenario,
    config: SessionConfig,
    credentials: Option<Credentials>,
    options: RunOptions,
    shown: Shown,
    keep_plain: bool,
) -> CaseResult {
    let kept = Arc::new(Mutex::new(Kept::default()));
    let sink = keeping(&scenario.name, shown, keep_plain, kept.clone());
    let started = Instant::now();
    let outcome = run_with(scenario, config, credentials, options, sink).await;
    let elapsed = started.elapsed();
    let kept = std::mem::take(&mut *kept.lock().unwrap_or_else(|e| e.into_inner()));
    CaseResult {
        name: scenario.name.clone(),
        outcome,
        elapsed,
        failed_check: kept.failed_check,
        display: kept.display,
        plain: kept.plain,
    }
}

/// Runs every scenario against the server in `config`, `jobs` at a time (at least one), and
/// hands each result to `each` in the order of `scenarios` as soon as it and every one before
/// it have finished.
pub async fn run_all(
    scenarios: &[&Scenario],
    config: &SessionConfig,
    credentials: Option<&Credentials>,
    options: RunOptions,
    jobs: usize,
    render: Render,
    mut each: impl FnMut(CaseResult),
) {
    let runs = scenarios.iter().map(|scenario| {
        run_case(
            scenario,
            config.clone(),
            credentials.cloned(),
            options,
            Shown::Kept(render),
            true,
        )
    });
    let mut results = futures_util::stream::iter(runs).buffered(jobs.max(1));
    while let Some(result) = results.next().await {
        each(result);
    }
}

/// The tally line after several scenarios: `3 scenarios: 2 passed, 1 failed (0 errors, 0
/// refused)`.
pub fn tally(results: &[CaseResult]) -> String {
    let count = |pick: fn(&Outcome) -> bool| results.iter().filter(|r| pick(&r.outcome)).count();
    let passed = count(|o| matches!(o, Outcome::Passed { .. }));
    let failed = count(|o| {
        matches!(
            o,
            Outcome::ExpectationFailed { .. } | Outcome::StepFailed { .. }
        )
    });
    let errors = count(|o| matches!(o, Outcome::Failure { .. }));
    let refused = count(|o| matches!(o, Outcome::GuardRefused { .. }));
    format!(
        "{} scenario{}: {passed} passed, {failed} failed, {errors} error{}, {refused} refused by \
         the guard",
        results.len(),
        if results.len() == 1 { "" } else { "s" },
        if errors == 1 { "" } else { "s" },
    )
}
