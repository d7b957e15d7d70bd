//! The live view of `smtptui bench` on a terminal, in the manner of oha: progress, the rate
//! now and overall, each step's latency percentiles, the histogram of whole sessions, and the
//! failures grouped by what went wrong, redrawn a few times a second from a copy of the
//! figures (the sessions never wait for the terminal).

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::event::{Event, EventStream, KeyCode, KeyEventKind, KeyModifiers};
use futures_util::StreamExt as _;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Gauge, Paragraph};

use super::bench::{Bench, Plan, Stats, Step, rate};

/// How often the screen is redrawn.
const FRAME: Duration = Duration::from_millis(250);

/// What the view shows besides the figures: the run's shape and time.
#[derive(Debug, Clone, Copy)]
pub struct ViewState {
    /// The plan of the run.
    pub plan: Plan,
    /// Time since the run started.
    pub elapsed: Duration,
    /// Sessions open now.
    pub open: u64,
    /// Sessions finished per second over the last second or so.
    pub rate_now: f64,
    /// Whether the user asked to stop.
    pub stopping: bool,
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Draws the view of `stats`.
pub fn render(frame: &mut Frame<'_>, stats: &Stats, view: &ViewState) {
    let area = frame.area();
    let failures = stats.failure_groups();
    let failure_rows = u16::try_from(failures.len().min(6)).unwrap_or(6);
    let [progress, totals, steps, histogram, failed, help] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(3),
        Constraint::Length(u16::try_from(Step::ALL.len()).unwrap_or(7) + 3),
        Constraint::Min(4),
        Constraint::Length(failure_rows.max(1) + 2),
        Constraint::Length(1),
    ])
    .areas(area);

    #[allow(clippy::cast_precision_loss)]
    let (ratio, label) = match view.plan.duration {
        Some(limit) if view.plan.sessions >= super::bench::MAX_SESSIONS => (
            view.elapsed.as_secs_f64() / limit.as_secs_f64().max(1e-9),
            format!(
                "{:.1} s of {:.0} s",
                view.elapsed.as_secs_f64(),
                limit.as_secs_f64()
            ),
        ),
        _ => (
            stats.finished as f64 / view.plan.sessions.max(1) as f64,
            format!("{} of {} sessions", stats.finished, view.plan.sessions),
        ),
    };
    frame.render_widget(
        Gauge::default()
            .block(Block::bordered().title(" smtptui bench "))
            .gauge_style(Style::default().fg(Color::Cyan))
            .ratio(ratio.clamp(0.0, 1.0))
            .label(label),
        progress,
    );

    let failed_style = if stats.failed() > 0 {
        Style::default().fg(Color::Red).add_modifier(Modifier::BOLD)
    } else {
        Style::default()
    };
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::raw(format!(
                "{:.1} s   {:.1} sessions/s now, {:.1} overall   {} open   {} passed   ",
                view.elapsed.as_secs_f64(),
                view.rate_now,
                rate(stats.finished, view.elapsed),
                view.open,
                stats.passed,
            )),
            Span::styled(format!("{} failed", stats.failed()), failed_style),
        ]))
        .block(Block::bordered()),
        totals,
    );

    let mut lines = vec![Line::styled(
        format!(
            "{:<9} {:>8} {:>9} {:>9} {:>9} {:>9}",
            "step", "count", "p50 ms", "p90 ms", "p99 ms", "max ms"
        ),
        Style::default().add_modifier(Modifier::BOLD),
    )];
    for step in Step::ALL {
        let h = stats.step(step);
        if h.count() == 0 {
            continue;
        }
        lines.push(Line::raw(format!(
            "{:<9} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            step.name(),
            h.count(),
            ms(h.percentile(0.5)),
            ms(h.percentile(0.9)),
            ms(h.percentile(0.99)),
            ms(h.max()),
        )));
    }
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" latency per step ")),
        steps,
    );

    let rows = usize::from(histogram.height.saturating_sub(2));
    let bars = stats.step(Step::Session).bars(rows);
    let widest = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    let room = u64::from(histogram.width.saturating_sub(24));
    let lines: Vec<Line<'_>> = bars
        .into_iter()
        .map(|(upper, count)| {
            let width = usize::try_from(count * room / widest).unwrap_or(0);
            Line::from(vec![
                Span::raw(format!("{:>9.2} [{count:>7}] ", ms(upper))),
                Span::styled("■".repeat(width), Style::default().fg(Color::Green)),
            ])
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" session time (ms, upper bound) ")),
        histogram,
    );

    let lines: Vec<Line<'_>> = if failures.is_empty() {
        vec![Line::raw("none")]
    } else {
        failures
            .iter()
            .take(6)
            .map(|(reason, count)| Line::raw(format!("{count:>7} {reason}")))
            .collect()
    };
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" failures by reply ")),
        failed,
    );

    let help_text = if view.stopping {
        "stopping: no new sessions; waiting for those open"
    } else {
        "q or Ctrl-C: start no more sessions, finish those open, print the summary"
    };
    frame.render_widget(
        Paragraph::new(help_text).style(Style::default().fg(Color::DarkGray)),
        help,
    );
}

/// Restores the terminal when dropped, whatever the exit path.
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Shows the run on the terminal until `done` resolves (every session has ended); q, Esc or
/// Ctrl-C stop the run from starting more sessions.
///
/// # Errors
/// Terminal I/O errors (the terminal is restored first).
pub async fn run(
    bench: Arc<Bench>,
    plan: Plan,
    done: impl std::future::Future<Output = ()>,
) -> io::Result<()> {
    let mut terminal = ratatui::init();
    let _guard = TerminalGuard;
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(FRAME);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut recent: VecDeque<(Instant, u64)> = VecDeque::new();
    tokio::pin!(done);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let stats = bench.snapshot();
                let now = Instant::now();
                recent.push_back((now, stats.finished));
                while recent.len() > 2
                    && recent.front().is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(1))
                {
                    recent.pop_front();
                }
                let rate_now = match recent.front() {
                    Some(&(then, count)) if now > then => {
                        rate(stats.finished - count, now.duration_since(then))
                    }
                    _ => 0.0,
                };
                let view = ViewState {
                    plan,
                    elapsed: bench.elapsed(),
                    open: bench.in_flight(),
                    rate_now,
                    stopping: bench.stopped(),
                };
                terminal.draw(|frame| render(frame, &stats, &view))?;
            }
            event = events.next() => match event {
                Some(Ok(Event::Key(key))) if key.kind != KeyEventKind::Release => {
                    let ctrl_c = key.modifiers.contains(KeyModifiers::CONTROL)
                        && key.code == KeyCode::Char('c');
                    if ctrl_c || matches!(key.code, KeyCode::Char('q') | KeyCode::Esc) {
                        bench.stop();
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error),
                None => {}
            },
            () = &mut done => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    /// The screen shows the progress, each timed step, and the failures with the server's
    /// bytes escaped (never raw escape sequences on the terminal).
    #[test]
    fn the_view_shows_steps_and_escaped_failures() {
        let mut stats = Stats::new();
        stats.finished = 3;
        stats.passed = 2;
        stats.steps[Step::Tls as usize].record(Duration::from_millis(2));
        stats.steps[Step::Session as usize].record(Duration::from_millis(9));
        stats.add_failure("line 11: expected 250, got 554 \u{1b}[31mno");
        let view = ViewState {
            plan: Plan {
                concurrency: 2,
                sessions: 10,
                duration: None,
            },
            elapsed: Duration::from_secs(1),
            open: 2,
            rate_now: 3.0,
            stopping: false,
        };
        let mut terminal = Terminal::new(TestBackend::new(100, 30)).expect("terminal");
        terminal
            .draw(|frame| render(frame, &stats, &view))
            .expect("draw");
        let screen: String = terminal
            .backend()
            .buffer()
            .content()
            .iter()
            .map(ratatui::buffer::Cell::symbol)
            .collect();
        assert!(screen.contains("3 of 10 sessions"), "{screen}");
        assert!(screen.contains("1 failed"), "{screen}");
        assert!(screen.contains("tls"), "{screen}");
        assert!(screen.contains("got 554 \\x1b[31mno"), "{screen}");
        assert!(!screen.contains('\u{1b}'), "{screen}");
    }
}
