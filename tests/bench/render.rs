//! Frame time of the transcript with 10 and with 1,000,000 lines (TestBackend 120x40, and
//! 80x24 where the explain pane sits under the transcript): drawing must depend on the rows on
//! screen only. Run with `cargo bench --bench render`.

#![allow(clippy::panic)]

use std::time::{Duration, Instant, SystemTime};

use ratatui::Terminal;
use ratatui::backend::TestBackend;

use smtptui::proto::reply::{ReplyLimits, ReplyParser};
use smtptui::transcript::{Event, EventKind, Security, SentKind};
use smtptui::tui::app::App;
use smtptui::tui::history::History;
use smtptui::tui::ui;

fn app_with(lines: usize) -> App {
    let mut app = App::new("bench.example:25".to_owned(), History::in_memory());
    app.explain = true;
    app.pending = None;
    let mut parser = ReplyParser::new(ReplyLimits::default());
    parser.push(b"250 2.1.5 Ok, recipient accepted for delivery\r\n");
    let reply = parser.next_reply().ok().flatten().expect("reply");
    for i in 0..lines {
        let kind = if i % 2 == 0 {
            EventKind::Sent {
                security: Security::Tls,
                text: format!("RCPT TO:<user{i}@example.com>"),
                kind: SentKind::Command,
            }
        } else {
            EventKind::Received {
                security: Security::Tls,
                reply: reply.clone(),
            }
        };
        app.push_event(Event {
            time: SystemTime::UNIX_EPOCH,
            elapsed: Duration::from_millis(i as u64),
            kind,
        });
    }
    app
}

fn median_frame(app: &mut App, frames: usize, (width, height): (u16, u16)) -> Duration {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
    let mut times = Vec::with_capacity(frames);
    for frame in 0..frames {
        // Alternate between following the tail and a scrolled view, as a user would.
        app.view.scroll = (frame % 2 == 1).then_some(app.view.rows.len() / 2);
        let start = Instant::now();
        terminal
            .draw(|f| ui::render(app, f, Instant::now()))
            .expect("draw");
        times.push(start.elapsed());
    }
    times.sort();
    times[times.len() / 2]
}

fn main() {
    for lines in [10, 1_000_000] {
        let build = Instant::now();
        let mut app = app_with(lines);
        let built = build.elapsed();
        for size in [(120, 40), (80, 24)] {
            let median = median_frame(&mut app, 500, size);
            println!(
                "render: {lines:>9} transcript lines: median frame {:>8.1} us ({}x{}, 500 frames; transcript built in {:.2?})",
                median.as_secs_f64() * 1e6,
                size.0,
                size.1,
                built
            );
        }
    }
}
