//! Drawing: a pure function of [`App`] and the current instant.
//!
//! Only the default foreground and background plus named colours are used, so the screen is
//! legible on light and dark themes; with colour off (NO_COLOR) only bold and reverse remain.

use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr as _};

use super::app::{App, Mode, Overlay};
use super::dialogs;
use super::input::Prompt;
use super::view::EventMeta;
use super::wrap::{wrap_all, wrap_styled};
use crate::explain;
use crate::guard::{self, Decision, OneTimeOverride, Protection, Refusal};
use crate::proto::escape::escape_str;
use crate::proto::reply::ReplyClass;
use crate::transcript::{Event, EventKind, Row, RowKind, Security, Tone, rows};

/// Width of the gutter before the text: time (8), marker (5), direction (2), spaces.
const GUTTER: usize = 18;

/// Styles, with colour only when enabled.
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    colour: bool,
}

impl Theme {
    /// A theme that colours only when `colour` (false with NO_COLOR).
    pub fn new(colour: bool) -> Self {
        Self { colour }
    }

    /// The foreground `colour`, or nothing without colour.
    pub fn fg(self, colour: Color) -> Style {
        if self.colour {
            Style::new().fg(colour)
        } else {
            Style::new()
        }
    }

    /// The style of a reply line of this class. Without colour, failures are bold, so a 5xx
    /// still stands out from the 250s around it.
    pub fn reply(self, class: ReplyClass) -> Style {
        if !self.colour {
            return match class {
                ReplyClass::TransientNegative
                | ReplyClass::PermanentNegative
                | ReplyClass::Unknown => Style::new().add_modifier(Modifier::BOLD),
                _ => Style::new(),
            };
        }
        self.fg(match class {
            ReplyClass::PositiveCompletion => Color::Green,
            ReplyClass::PositiveIntermediate => Color::Cyan,
            ReplyClass::TransientNegative => Color::Yellow,
            ReplyClass::PermanentNegative => Color::Red,
            ReplyClass::Unknown => Color::Magenta,
        })
    }

    /// The style of the cleartext/TLS marker.
    pub fn marker(self, security: Security) -> Style {
        match security {
            Security::Cleartext => self.fg(Color::Yellow),
            Security::Tls => self.fg(Color::Green),
        }
    }

    /// Something wrong or refused: bold red (bold without colour).
    pub fn alarm(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }

    /// Credentials would go (or went) where the guard would stop them, by the user's override:
    /// white on red, or reversed without colour, louder than any other alarm.
    pub fn override_alarm(self) -> Style {
        if self.colour {
            Style::new()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        }
    }

    /// Less important than what is around it.
    pub fn dim(self) -> Style {
        if self.colour {
            Style::new().add_modifier(Modifier::DIM)
        } else {
            Style::new()
        }
    }
}

/// Draws the whole screen.
pub fn render(app: &App, frame: &mut Frame, now: Instant) {
    let theme = Theme { colour: app.colour };
    let area = frame.area();
    let layout = Areas::of(app, area, theme);
    render_status(app, frame, layout.status, now, theme);
    render_transcript(app, frame, layout.transcript, layout.side, theme);
    match layout.side {
        Some((Side::Explain, side)) => render_explain(app, frame, side, theme),
        Some((Side::LabLog, side)) => render_lab_log(app, frame, side, theme),
        None => {}
    }
    if layout.editor.height > 0 {
        render_editor(app, frame, layout.editor);
    }
    frame.render_widget(Paragraph::new(layout.notes), layout.notes_area);
    render_input(app, frame, layout.input, layout.input_title, theme);
    match app.overlay {
        Some(Overlay::Help) => dialogs::render_help(app, frame, area),
        Some(Overlay::Certificate) => dialogs::render_certificate(app, frame, area, theme),
        None => {}
    }
    // Over the panes, not over the input line and the lines above it, which say what Enter
    // does.
    let above = Rect {
        height: layout.notes_area.y.saturating_sub(area.y),
        ..area
    };
    match app.mode {
        Mode::Guard(_) => dialogs::render_guard(app, frame, above, theme),
        Mode::Group(_) => dialogs::render_group(app, frame, above, theme),
        _ => {}
    }
}

fn render_status(app: &App, frame: &mut Frame, area: Rect, now: Instant, theme: Theme) {
    let status = &app.status;
    let connection = if status.connected {
        Span::styled("connected", theme.fg(Color::Green))
    } else if app.pending.is_some() {
        // The engine reports the session once the greeting is in; until then the transcript
        // tells whether TCP (or TLS) is already up.
        let tcp_up = app
            .view
            .events
            .iter()
            .rev()
            .find_map(|event| match event.kind {
                EventKind::Connecting { .. } => Some(false),
                EventKind::Connected { .. } => Some(true),
                _ => None,
            })
            .unwrap_or(false);
        // The pending timer beside it says what is awaited (the greeting, or the handshake).
        Span::raw(if tcp_up {
            "TCP connected"
        } else {
            "connecting"
        })
    } else {
        Span::styled("disconnected", theme.fg(Color::Red))
    };
    let mut first = vec![
        Span::styled(" smtptui ", Style::new().add_modifier(Modifier::REVERSED)),
        Span::raw(" "),
        Span::styled(
            status.target.clone(),
            Style::new().add_modifier(Modifier::BOLD),
        ),
        Span::raw("  "),
        connection,
    ];
    if let Some(user) = &status.authenticated_as {
        first.push(Span::raw("  user "));
        first.push(Span::styled(escape_str(user), theme.fg(Color::Green)));
    }
    if let Some(pending) = &app.pending {
        let waited = now.saturating_duration_since(pending.since).as_secs_f64();
        first.push(Span::raw("  "));
        first.push(Span::styled(
            format!("waiting {waited:.1}s for {}", pending.what),
            theme.fg(Color::Yellow),
        ));
    }
    // What the guard would do with credentials now, with the standing overrides: the bar
    // must never say AUTH is blocked while a flag lets it through.
    let auth_allowed_by = match guard::decide(&status.protection, app.policy, OneTimeOverride::None)
    {
        Decision::AllowedByOverride(refusal) => Some(standing_flag(&refusal)),
        _ => None,
    };
    let second = match (&status.protection, &status.tls) {
        _ if !status.connected && app.pending.is_none() => Line::from(vec![
            Span::raw(" "),
            Span::styled("NOT CONNECTED", theme.alarm()),
            Span::raw(": nothing can be sent; :reconnect opens a new session"),
        ]),
        (Protection::Cleartext, _) => match auth_allowed_by {
            Some(flag) => Line::from(vec![
                Span::raw(" "),
                Span::styled("CLEARTEXT", theme.alarm()),
                Span::raw(format!(": anyone on the path reads it; {flag}: ")),
                Span::styled("AUTH ALLOWED", theme.override_alarm()),
            ]),
            None => Line::from(vec![
                Span::raw(" "),
                Span::styled(
                    "CLEARTEXT",
                    theme.fg(Color::Yellow).add_modifier(Modifier::BOLD),
                ),
                Span::raw(": anyone on the path can read this session; AUTH is blocked until TLS"),
            ]),
        },
        (Protection::VerifiedTls, Some(tls)) => Line::from(vec![
            Span::raw(" "),
            Span::styled(
                tls_label(&tls.version),
                theme.fg(Color::Green).add_modifier(Modifier::BOLD),
            ),
            Span::raw(format!(" {} ", tls.cipher_suite)),
            Span::styled("certificate verified", theme.fg(Color::Green)),
            // Before the name, which the title bar shows too: a narrow bar cuts the name.
            Span::raw(format!(
                "{} for {}",
                trust_note(&tls.anchors),
                tls.server_name
            )),
        ]),
        (Protection::UnverifiedTls(problem), tls) => {
            let mut spans = vec![
                Span::raw(" "),
                Span::styled(
                    tls.as_ref()
                        .map_or("TLS".to_owned(), |t| tls_label(&t.version)),
                    theme.alarm(),
                ),
                Span::styled(
                    format!(" CERTIFICATE NOT VERIFIED: {}", problem.kind),
                    theme.alarm(),
                ),
            ];
            match auth_allowed_by {
                // The flag's effect wins the room over the F3 hint (80 columns).
                Some(flag) => spans.extend([
                    Span::raw(format!("; {flag}: ")),
                    Span::styled("AUTH ALLOWED", theme.override_alarm()),
                ]),
                None => spans.push(Span::raw(" (F3 shows it)")),
            }
            Line::from(spans)
        }
        (Protection::VerifiedTls, None) => Line::from(" TLS"),
    };
    frame.render_widget(Paragraph::new(vec![Line::from(first), second]), area);
}

/// What the status bar adds about the trust anchors when they are not the built-in web PKI
/// roots alone: the system store is worth seeing at a glance.
fn trust_note(anchors: &str) -> &'static str {
    match (anchors.contains("system"), anchors.contains("web PKI")) {
        (true, true) => " (system+web PKI)",
        (true, false) => " (system store)",
        _ => "",
    }
}

/// The command-line flag that lets credentials through despite `refusal`.
pub fn standing_flag(refusal: &Refusal) -> &'static str {
    match refusal {
        Refusal::Cleartext => "--allow-cleartext-auth",
        Refusal::Unverified(_) => "--insecure",
    }
}

fn tls_label(version: &str) -> String {
    version.replace("TLSv", "TLS ").replace('_', ".")
}

/// The style of a row's tone on screen.
fn tone_style(tone: Tone, theme: Theme) -> Style {
    match tone {
        Tone::Plain | Tone::MessageLine => Style::new(),
        Tone::Quiet => theme.dim(),
        Tone::Command => Style::new().add_modifier(Modifier::BOLD),
        Tone::Credentials => theme.fg(Color::Magenta).add_modifier(Modifier::BOLD),
        Tone::Reply(class) => theme.reply(class),
        Tone::Secure => theme.fg(Color::Green).add_modifier(Modifier::BOLD),
        Tone::Pass => theme.fg(Color::Green),
        Tone::Caution => theme.fg(Color::Yellow),
        Tone::Warning => theme.fg(Color::Yellow).add_modifier(Modifier::BOLD),
        Tone::Alarm => theme.alarm(),
        Tone::Override => theme.override_alarm(),
    }
}

/// Draws row `sub` of `event` (unwrapped): the time (or, on a reply's first row, how long
/// it took), the cleartext/TLS marker, the direction and the row's screen text.
fn row_line(
    event: &Event,
    meta: Option<&EventMeta>,
    row: &Row,
    sub: usize,
    theme: Theme,
) -> Line<'static> {
    let received = matches!(event.kind, EventKind::Received { .. });
    let time = match (received, meta.and_then(|m| m.latency)) {
        (true, Some(latency)) if sub == 0 => {
            let ms = latency.as_secs_f64() * 1000.0;
            if ms < 10.0 {
                format!("{ms:>6.1}ms")
            } else {
                format!("{:>6}ms", latency.as_millis())
            }
        }
        (true, _) if sub > 0 => String::new(),
        _ => format!("{:>8.3}", event.elapsed.as_secs_f64()),
    };
    let time = Span::styled(format!("{time:>8} "), theme.dim());
    let mark = match row.security {
        Some(security) => {
            Span::styled(format!("{:<5} ", security.marker()), theme.marker(security))
        }
        None => Span::raw("      "),
    };
    let direction = match row.kind {
        RowKind::Reply { first: false, .. } => " │",
        RowKind::Alarm | RowKind::Caveat | RowKind::Check { met: false } => "!!",
        RowKind::Check { met: true } => "ok",
        other => other.text_marker(),
    };
    let style = tone_style(row.tone, theme);
    let text = match row.kind {
        RowKind::Check { met } => Span::styled(
            format!("{} {}", if met { "pass" } else { "FAIL" }, row.text),
            style,
        ),
        _ => Span::styled(row.screen_text().to_owned(), style),
    };
    Line::from(vec![time, mark, Span::raw(format!("{direction} ")), text])
}

/// Splits a row into screen lines of `width` cells; continuations are indented past the
/// gutter so the text column stays aligned. Lines break after a space when one is in the
/// second half of the line, so words stay whole; a long unbroken run (base64, a path) is
/// cut where the line ends. Widths are terminal cells, so wide characters fit too.
fn wrap(line: Line<'static>, width: usize) -> Vec<Line<'static>> {
    if width <= GUTTER + 4 || line.width() <= width {
        return vec![line];
    }
    let cells: Vec<(char, Style, usize)> = line
        .spans
        .iter()
        .flat_map(|span| {
            span.content
                .chars()
                .map(move |c| (c, span.style, UnicodeWidthChar::width(c).unwrap_or(0)))
        })
        .collect();
    // Breaking at a space earlier than this would leave most of the line empty.
    let earliest_break = GUTTER + (width - GUTTER) / 2;
    let mut out = Vec::new();
    let mut current: Vec<(char, Style, usize)> = Vec::new();
    let mut used = 0;
    // Index in `current` just after the last space that is a good place to break.
    let mut break_after: Option<usize> = None;
    for cell in cells {
        if used + cell.2 > width && cell.0 == ' ' {
            // The line is full exactly at a space: break there and drop the space.
            out.push(cells_to_line(&current));
            current = vec![(' ', Style::new(), 1); GUTTER];
            used = GUTTER;
            break_after = None;
            continue;
        }
        if used + cell.2 > width {
            let rest = match break_after.take() {
                Some(index) => current.split_off(index),
                None => Vec::new(),
            };
            out.push(cells_to_line(&current));
            current = vec![(' ', Style::new(), 1); GUTTER];
            current.extend(rest.into_iter().skip_while(|(c, _, _)| *c == ' '));
            used = current.iter().map(|(_, _, w)| w).sum();
        }
        used += cell.2;
        let is_space = cell.0 == ' ';
        current.push(cell);
        if is_space && used >= earliest_break {
            break_after = Some(current.len());
        }
    }
    if !current.is_empty() {
        out.push(cells_to_line(&current));
    }
    out
}

/// Joins cells back into spans, one span per run of equal style.
fn cells_to_line(cells: &[(char, Style, usize)]) -> Line<'static> {
    let mut spans: Vec<Span<'static>> = Vec::new();
    let mut text = String::new();
    let mut style = cells.first().map_or(Style::new(), |cell| cell.1);
    for &(c, cell_style, _) in cells {
        if cell_style != style && !text.is_empty() {
            spans.push(Span::styled(std::mem::take(&mut text), style));
        }
        style = cell_style;
        text.push(c);
    }
    if !text.is_empty() {
        spans.push(Span::styled(text, style));
    }
    Line::from(spans)
}

/// The screen lines of the transcript pane: from the bottom row upwards until the pane is
/// full, so the cost depends on the pane's height, not on the transcript's length.
pub fn visible_lines(app: &App, width: usize, height: usize, theme: Theme) -> Vec<Line<'static>> {
    transcript_lines(app, width, height, theme, None)
}

/// [`visible_lines`], with the first row of event `explained` marked (its direction reversed)
/// as the one the explain pane talks about.
fn transcript_lines(
    app: &App,
    width: usize,
    height: usize,
    theme: Theme,
    explained: Option<usize>,
) -> Vec<Line<'static>> {
    let view = &app.view;
    let Some(last) = view.rows.len().checked_sub(1) else {
        return Vec::new();
    };
    // The rows of the event drawn last: the rows of one event are next to each other.
    let mut presented: Option<(usize, Vec<Row>)> = None;
    let mut draw = |row: usize| -> Vec<Line<'static>> {
        let (event, sub) = view.rows[row];
        let (event, sub) = (event as usize, sub as usize);
        if presented.as_ref().is_none_or(|(index, _)| *index != event) {
            presented = Some((event, rows(&view.events[event].kind)));
        }
        let Some(row) = presented.as_ref().and_then(|(_, rows)| rows.get(sub)) else {
            return Vec::new();
        };
        let mut line = row_line(&view.events[event], view.meta.get(event), row, sub, theme);
        if explained == Some(event)
            && sub == 0
            && let Some(direction) = line.spans.get_mut(2)
        {
            direction.style = direction.style.add_modifier(Modifier::REVERSED);
        }
        wrap(line, width)
    };
    let bottom = view.scroll.unwrap_or(last).min(last);
    let mut lines: Vec<Line<'static>> = Vec::with_capacity(height);
    let mut row = bottom as isize;
    while lines.len() < height && row >= view.first_row as isize {
        for line in draw(row as usize).into_iter().rev() {
            lines.push(line);
        }
        row -= 1;
    }
    lines.reverse();
    if lines.len() > height {
        lines.drain(..lines.len() - height);
    }
    // The top was reached with room to spare (the view is at the top): fill the pane with
    // the rows below, rather than leave it empty under a lone first row.
    let mut row = bottom + 1;
    while lines.len() < height && row <= last {
        for line in draw(row) {
            if lines.len() < height {
                lines.push(line);
            }
        }
        row += 1;
    }
    lines
}

/// How many rows the transcript pane shows for this state on a screen of `area`.
pub fn transcript_height(app: &App, area: Rect) -> usize {
    let theme = Theme::new(app.colour);
    Areas::of(app, area, theme)
        .transcript
        .height
        .saturating_sub(2) as usize
}

/// What the pane beside (or under) the transcript shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// What the reply means (F2).
    Explain,
    /// The practice server's own log (F4, `smtptui demo`).
    LabLog,
}

/// Rows the explain pane scrolls at a time.
pub const EXPLAIN_PAGE: usize = 4;

/// Most rows the lines above the input line take (messages, typed-ahead lines, the Enter hint
/// when the title cannot hold it).
const NOTES_ROWS: usize = 4;

/// The screen's parts.
struct Areas {
    status: Rect,
    transcript: Rect,
    side: Option<(Side, Rect)>,
    editor: Rect,
    notes_area: Rect,
    notes: Vec<Line<'static>>,
    input: Rect,
    input_title: Option<String>,
}

impl Areas {
    /// Lays out the screen: the status bar, the transcript with the side pane, the message
    /// editor, the notes and the input line. While a message is written, the transcript keeps
    /// at least half the screen: the editor grows only into the rest, and the side pane is
    /// left out when no room is left for it.
    fn of(app: &App, area: Rect, theme: Theme) -> Self {
        let (notes, input_title) = notes(app, area.width as usize, theme);
        let notes_height = notes.len() as u16;
        let rest = area.height.saturating_sub(2 + 3 + notes_height);
        let half = area.height.div_ceil(2);
        let editor_height = if let Mode::Message(editor) = &app.mode {
            let wanted = (editor.lines().len() as u16 + 2).clamp(3, 8);
            wanted.min(rest.saturating_sub(half).max(3))
        } else {
            0
        };
        let [status, main, editor, notes_area, input] = Layout::vertical([
            Constraint::Length(2),
            Constraint::Min(3),
            Constraint::Length(editor_height),
            Constraint::Length(notes_height),
            Constraint::Length(3),
        ])
        .areas(area);
        let side = match &app.lab_log {
            Some(log) if log.shown => Some(Side::LabLog),
            _ => app.explain.then_some(Side::Explain),
        };
        let (transcript, side) = match side {
            None => (main, None),
            Some(side) if main.width >= 120 => {
                let [left, right] =
                    Layout::horizontal([Constraint::Percentage(62), Constraint::Percentage(38)])
                        .areas(main);
                (left, Some((side, right)))
            }
            Some(side) => {
                let keep = if editor_height > 0 { half } else { 3 };
                let side_height = 8.min(main.height.saturating_sub(keep));
                if side_height < 4 {
                    (main, None)
                } else {
                    let [top, bottom] =
                        Layout::vertical([Constraint::Min(3), Constraint::Length(side_height)])
                            .areas(main);
                    (top, Some((side, bottom)))
                }
            }
        };
        Self {
            status,
            transcript,
            side,
            editor,
            notes_area,
            notes,
            input,
            input_title,
        }
    }
}

/// The lines above the input line, and the input line's title. The title says what Enter
/// does; when it cannot hold that whole at this width, the words go into the lines above
/// instead, so they are never cut. Messages and typed-ahead lines wrap there too.
fn notes(app: &App, width: usize, theme: Theme) -> (Vec<Line<'static>>, Option<String>) {
    let hint = app.enter_hint();
    let title = format!(" Enter: {hint} ");
    let fits = title.width() + 2 <= width;
    let text_width = width.saturating_sub(1);
    let indent = |lines: Vec<Line<'static>>| {
        lines.into_iter().map(|mut line| {
            line.spans.insert(0, Span::raw(" "));
            line
        })
    };
    let mut lines: Vec<Line<'static>> = Vec::new();
    if let Some(flash) = &app.flash {
        lines.extend(indent(wrap_styled(
            &escape_str(flash),
            theme.fg(Color::Yellow),
            text_width,
        )));
    }
    if !app.queued.is_empty() {
        let queued: Vec<String> = app.queued.iter().map(|line| escape_str(line)).collect();
        lines.extend(indent(wrap_styled(
            &format!(
                "typed ahead, sent after the reply (Esc drops): {}",
                queued.join(" | ")
            ),
            theme.dim(),
            text_width,
        )));
    }
    if !fits {
        lines.extend(indent(wrap_styled(
            &format!("Enter: {hint}"),
            Style::new().add_modifier(Modifier::BOLD),
            text_width,
        )));
    }
    if lines.len() > NOTES_ROWS {
        // The newest words (the hint) are last and stay; the message above gives way, marked.
        lines.drain(..lines.len() - NOTES_ROWS);
        if let Some(first) = lines.first_mut() {
            first.spans.insert(0, Span::styled("…", theme.dim()));
        }
    }
    (lines, fits.then_some(title))
}

fn render_transcript(
    app: &App,
    frame: &mut Frame,
    area: Rect,
    side: Option<(Side, Rect)>,
    theme: Theme,
) {
    let view = &app.view;
    let title = match view.scroll {
        None => " transcript (following) ".to_owned(),
        Some(row) if row <= view.first_row => format!(
            " transcript: top, {} rows (End follows) ",
            view.rows.len() - view.first_row
        ),
        Some(row) => format!(
            " transcript: row {} of {} (End follows) ",
            row + 1,
            view.rows.len()
        ),
    };
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let explained = matches!(side, Some((Side::Explain, _)))
        .then(|| explained_event(app))
        .flatten();
    let lines = transcript_lines(
        app,
        inner.width as usize,
        inner.height as usize,
        theme,
        explained,
    );
    frame.render_widget(Paragraph::new(lines), inner);
}

/// The event the explain pane talks about: the latest reply, TLS upgrade or error at or
/// above the bottom of the view.
pub fn explained_event(app: &App) -> Option<usize> {
    let view = &app.view;
    let last = view.rows.len().checked_sub(1)?;
    let bottom = view.scroll.unwrap_or(last).min(last);
    let (event, _) = view.rows[bottom];
    (0..=event as usize).rev().take(10_000).find(|&index| {
        matches!(
            view.events[index].kind,
            EventKind::Received { .. }
                | EventKind::Unasked { .. }
                | EventKind::TlsEstablished(_)
                | EventKind::Error { .. }
        )
    })
}

/// The explained event in a few words, for the pane's title: which reply, to what, and when
/// (the time the transcript shows beside it).
fn explained_title(app: &App, index: usize) -> String {
    let view = &app.view;
    let event = &view.events[index];
    let at = format!("{:.3}", event.elapsed.as_secs_f64());
    match &event.kind {
        EventKind::Received { reply, .. } => {
            match view.meta.get(index).and_then(|m| m.command.as_deref()) {
                Some(command) => format!("{} to {command} at {at}", reply.code.value()),
                None => format!("{} at {at}", reply.code.value()),
            }
        }
        EventKind::Unasked { reply, .. } => format!("unasked {} at {at}", reply.code.value()),
        EventKind::TlsEstablished(_) => format!("TLS upgrade at {at}"),
        EventKind::Error { .. } => format!("error at {at}"),
        _ => format!("event at {at}"),
    }
}

/// The explanation of the selected event, one paragraph per entry (the pane wraps them).
pub fn explanation(app: &App) -> Vec<String> {
    let Some(index) = explained_event(app) else {
        return vec!["Replies will be explained here.".to_owned()];
    };
    let view = &app.view;
    let context = explain::Context {
        port: app
            .status
            .target
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok()),
        tls: app.status.security == crate::transcript::Security::Tls,
    };
    match &view.events[index].kind {
        EventKind::Received { reply, .. } => {
            let line = view.meta.get(index).and_then(|m| m.line.as_deref());
            explain::explain_reply_to(reply, line, &context)
        }
        EventKind::Unasked { reply, .. } => {
            let mut lines = vec![format!(
                "{}. Until you reconnect, smtptui sends no credentials on this connection: \
                 replies that seem to answer them may not.",
                crate::transcript::UNASKED_NOTE
            )];
            lines.extend(explain::explain_reply_in(reply, None, &context));
            lines
        }
        EventKind::TlsEstablished(info) => explain::explain_tls(info, app.policy),
        EventKind::Error { kind, .. } => explain::explain_error(*kind),
        _ => Vec::new(),
    }
}

/// How far the explain pane is scrolled now (another event than the one it was scrolled on
/// starts at the top).
fn explain_scroll(app: &App, event: Option<usize>) -> usize {
    match app.explain_scroll {
        (shown, rows) if shown == event => rows,
        _ => 0,
    }
}

fn render_explain(app: &App, frame: &mut Frame, area: Rect, theme: Theme) {
    let event = explained_event(app);
    let title = match event {
        Some(index) => format!(" explain: {} (F2 hides) ", explained_title(app, index)),
        None => " explain (F2 hides) ".to_owned(),
    };
    let width = area.width.saturating_sub(2) as usize;
    let height = area.height.saturating_sub(2) as usize;
    let lines = wrap_all(&explanation(app), width);
    let top = explain_scroll(app, event).min(lines.len().saturating_sub(height));
    let below = lines.len().saturating_sub(top + height);
    let mut block = Block::bordered().title(title);
    let footer = match (top, below) {
        (0, 0) => None,
        (0, below) => Some(format!(" {below} more: Alt-PgDn ")),
        (_, 0) => Some(" end; Alt-PgUp goes back ".to_owned()),
        (_, below) => Some(format!(" {below} more: Alt-PgDn; Alt-PgUp back ")),
    };
    if let Some(footer) = footer {
        block = block.title_bottom(Line::styled(footer, theme.fg(Color::Cyan)));
    }
    let shown: Vec<Line> = lines
        .into_iter()
        .skip(top)
        .take(height)
        .map(Line::from)
        .collect();
    frame.render_widget(Paragraph::new(shown).block(block), area);
}

/// Draws the practice server's log: its newest lines, each with its `plain` or `tls` mark
/// coloured as the transcript's, and the verdicts (alarms loud).
fn render_lab_log(app: &App, frame: &mut Frame, area: Rect, theme: Theme) {
    let width = area.width.saturating_sub(2) as usize;
    let height = area.height.saturating_sub(2) as usize;
    let mut lines: Vec<Line<'static>> = Vec::new();
    if let Some(log) = &app.lab_log {
        for raw in log.lines.iter().rev() {
            if lines.len() >= height {
                break;
            }
            let text = escape_str(raw);
            let style = if text.contains(" VERDICT !!") {
                theme.alarm()
            } else if text.contains(" VERDICT ") {
                theme.fg(Color::Green)
            } else {
                Style::new()
            };
            let mut wrapped = wrap_styled(&text, style, width);
            if let Some(first) = wrapped.first_mut() {
                *first = mark_security(first, theme);
            }
            for line in wrapped.into_iter().rev() {
                lines.push(line);
            }
        }
    }
    lines.truncate(height);
    lines.reverse();
    frame.render_widget(
        Paragraph::new(lines)
            .block(Block::bordered().title(" the lab's log: what the server received (F4 hides) ")),
        area,
    );
}

/// Colours the ` plain ` or ` tls ` mark of a lab log line as the transcript colours its own.
fn mark_security(line: &Line<'static>, theme: Theme) -> Line<'static> {
    let text: String = line.spans.iter().map(|s| s.content.as_ref()).collect();
    let style = line.spans.first().map_or(Style::new(), |s| s.style);
    for (mark, security) in [
        (" plain ", crate::transcript::Security::Cleartext),
        (" tls ", crate::transcript::Security::Tls),
    ] {
        if let Some(at) = text.find(mark) {
            let (head, rest) = text.split_at(at + 1);
            let (word, tail) = rest.split_at(mark.len() - 2);
            return Line::from(vec![
                Span::styled(head.to_owned(), style),
                Span::styled(word.to_owned(), theme.marker(security)),
                Span::styled(tail.to_owned(), style),
            ]);
        }
    }
    line.clone()
}

fn render_editor(app: &App, frame: &mut Frame, area: Rect) {
    let editor = app.editor();
    let height = area.height.saturating_sub(2) as usize;
    let skip = editor.len().saturating_sub(height);
    let lines: Vec<Line> = editor
        .iter()
        .skip(skip)
        .map(|l| Line::from(escape_str(l)))
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(format!(
            " message: {} line(s); a lone . sends it ",
            editor.len()
        ))),
        area,
    );
}

fn render_input(app: &App, frame: &mut Frame, area: Rect, title: Option<String>, theme: Theme) {
    let hidden = app.mode.hides_input();
    let prompt = match &app.mode {
        Mode::Line(Prompt::User { .. }) => "user> ",
        Mode::Line(Prompt::Password { mechanism, .. }) if mechanism.takes_token() => {
            "token (hidden)> "
        }
        Mode::Line(Prompt::Password { .. }) => "password (hidden)> ",
        Mode::Line(Prompt::SaslAnswer) => "answer (hidden)> ",
        Mode::Message(_) => "msg> ",
        Mode::Line(Prompt::Command) | Mode::Guard(_) | Mode::Group(_) => "> ",
    };
    // A secret is never drawn, and the cursor stays at the prompt so its length does not
    // show either.
    let (shown, cursor) = if hidden {
        (String::new(), 0)
    } else {
        (
            escape_str(app.input.text()),
            app.input.line().cells_before_cursor(),
        )
    };
    let mut block = Block::bordered().border_style(if hidden {
        theme.fg(Color::Magenta)
    } else {
        Style::new()
    });
    if let Some(title) = title {
        block = block.title(title);
    }
    let inner = block.inner(area);
    let width = inner.width as usize;
    // Scrolled sideways in cells so the cursor stays in view.
    let cursor_at = prompt.width() + cursor;
    let skip = cursor_at.saturating_sub(width.saturating_sub(1));
    let mut visible = String::new();
    let mut skipped = 0;
    for c in prompt.chars().chain(shown.chars()) {
        let cells = c.width().unwrap_or(0);
        if skipped < skip {
            skipped += cells;
            if skipped > skip {
                // Half of a wide character scrolled away: its other half is a blank.
                visible.push(' ');
            }
            continue;
        }
        visible.push(c);
    }
    let cursor_x = inner.x + (cursor_at - skip) as u16;
    frame.render_widget(Paragraph::new(visible).block(block), area);
    if app.overlay.is_none() && !matches!(app.mode, Mode::Guard(_) | Mode::Group(_)) {
        frame.set_cursor_position((cursor_x.min(inner.right().saturating_sub(1)), inner.y));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: &[Line<'static>]) -> Vec<String> {
        lines
            .iter()
            .map(|line| line.spans.iter().map(|s| s.content.as_ref()).collect())
            .collect()
    }

    #[test]
    fn wrapping_keeps_words_whole_and_fits_wide_characters() {
        let width = GUTTER + 30;
        let head = " ".repeat(GUTTER);
        let line = Line::from(format!(
            "{head}the quick brown fox jumps over the lazy dog again"
        ));
        let wrapped = texts(&wrap(line, width));
        assert_eq!(
            wrapped[0].trim_end(),
            format!("{head}the quick brown fox jumps over")
        );
        assert_eq!(wrapped[1].trim(), "the lazy dog again");

        // An unbroken run is cut where the line ends.
        let blob = "A".repeat(50);
        let wrapped = wrap(Line::from(format!("{head}{blob}")), width);
        assert!(wrapped.iter().all(|l| l.width() <= width));
        assert_eq!(texts(&wrapped).concat().matches('A').count(), 50);

        // Wide characters take two cells and never overflow the line.
        let wide = "漢字".repeat(20);
        let wrapped = wrap(Line::from(format!("{head}{wide}")), width);
        assert!(
            wrapped.iter().all(|l| l.width() <= width),
            "{:?}",
            texts(&wrapped)
        );

        // Styles survive the split.
        let red = Style::new().fg(Color::Red);
        let line = Line::from(vec![
            Span::raw(head.clone()),
            Span::styled("word ".repeat(12), red),
        ]);
        let wrapped = wrap(line, width);
        assert!(wrapped.len() > 1);
        assert!(wrapped[1].spans.iter().any(|s| s.style == red));
    }
}
