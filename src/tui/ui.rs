//! Drawing: a pure function of [`App`] and the current instant.
//!
//! Only the default foreground and background plus named colours are used, so the screen is
//! legible on light and dark themes; with colour off (NO_COLOR) only bold and reverse remain.

use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};
use unicode_width::UnicodeWidthChar;

use super::app::{App, Mode, Overlay};
use super::commands::{self, HELP_WIDTH};
use super::input::Prompt;
use super::view::EventMeta;
use crate::explain;
use crate::guard::{self, Decision, OneTimeOverride, Protection, Refusal};
use crate::proto::escape::escape_str;
use crate::proto::reply::ReplyClass;
use crate::tls::Verification;
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

    fn fg(self, colour: Color) -> Style {
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

    fn alarm(self) -> Style {
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

    fn dim(self) -> Style {
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
    let (status_area, transcript_area, explain_area, editor_area, input_area) = areas(app, area);
    render_status(app, frame, status_area, now, theme);
    render_transcript(app, frame, transcript_area, theme);
    if let Some(explain_area) = explain_area {
        render_explain(app, frame, explain_area, theme);
    }
    if editor_area.height > 0 {
        render_editor(app, frame, editor_area);
    }
    render_input(app, frame, input_area, theme);
    match app.overlay {
        Some(Overlay::Help) => render_help(app, frame, area),
        Some(Overlay::Certificate) => render_certificate(app, frame, area, theme),
        None => {}
    }
    if let Mode::Guard(_) = app.mode {
        render_guard(app, frame, area, theme);
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
            Span::raw(format!(" for {}", tls.server_name)),
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
        let line = row_line(&view.events[event], view.meta.get(event), row, sub, theme);
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
    let (_, transcript, _, _, _) = areas(app, area);
    transcript.height.saturating_sub(2) as usize
}

/// The screen's parts: status, transcript, explain pane, message editor, input line.
fn areas(app: &App, area: Rect) -> (Rect, Rect, Option<Rect>, Rect, Rect) {
    let editor_height = if let Mode::Message(editor) = &app.mode {
        (editor.lines().len() as u16 + 2).clamp(3, 8)
    } else {
        0
    };
    let [status_area, main_area, editor_area, input_area] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(3),
        Constraint::Length(editor_height),
        Constraint::Length(3),
    ])
    .areas(area);
    let (transcript_area, explain_area) = if app.explain {
        if main_area.width >= 120 {
            let [left, right] =
                Layout::horizontal([Constraint::Percentage(62), Constraint::Percentage(38)])
                    .areas(main_area);
            (left, Some(right))
        } else {
            let [top, bottom] =
                Layout::vertical([Constraint::Min(3), Constraint::Length(8)]).areas(main_area);
            (top, Some(bottom))
        }
    } else {
        (main_area, None)
    };
    (
        status_area,
        transcript_area,
        explain_area,
        editor_area,
        input_area,
    )
}

fn render_transcript(app: &App, frame: &mut Frame, area: Rect, theme: Theme) {
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
    let lines = visible_lines(app, inner.width as usize, inner.height as usize, theme);
    frame.render_widget(Paragraph::new(lines), inner);
}

/// The event the explain pane talks about: the latest reply, TLS upgrade or error at or
/// above the bottom of the view.
fn explained_event(app: &App) -> Option<usize> {
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

/// The explanation lines for the selected event.
pub fn explanation(app: &App) -> Vec<String> {
    let Some(index) = explained_event(app) else {
        return vec!["Replies will be explained here.".to_owned()];
    };
    let view = &app.view;
    match &view.events[index].kind {
        EventKind::Received { reply, .. } => {
            let command = view.meta.get(index).and_then(|m| m.command.as_deref());
            explain::explain_reply(reply, command)
        }
        EventKind::Unasked { reply, .. } => {
            let mut lines = vec![format!(
                "{}. Until you reconnect, smtptui sends no credentials on this connection: \
                 replies that seem to answer them may not.",
                crate::transcript::UNASKED_NOTE
            )];
            lines.extend(explain::explain_reply(reply, None));
            lines
        }
        EventKind::TlsEstablished(info) => explain::explain_tls(info, app.policy),
        EventKind::Error { kind, .. } => explain::explain_error(*kind),
        _ => Vec::new(),
    }
}

fn render_explain(app: &App, frame: &mut Frame, area: Rect, _theme: Theme) {
    let lines: Vec<Line> = explanation(app).into_iter().map(Line::from).collect();
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(" explain (F2 hides) ")),
        area,
    );
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
            " message: {} line(s), sent when you end it with a lone . ",
            editor.len()
        ))),
        area,
    );
}

fn render_input(app: &App, frame: &mut Frame, area: Rect, theme: Theme) {
    let hidden = app.mode.hides_input();
    let typed = || escape_str(app.input.text());
    let (prompt, shown) = match &app.mode {
        Mode::Line(Prompt::User { .. }) => ("user> ", typed()),
        Mode::Line(Prompt::Password { .. }) => ("password (hidden)> ", String::new()),
        Mode::Line(Prompt::SaslAnswer) => ("answer (hidden)> ", String::new()),
        Mode::Message(_) => ("msg> ", typed()),
        Mode::Line(Prompt::Command) | Mode::Guard(_) => ("> ", typed()),
    };
    let hint = match &app.flash {
        Some(flash) => format!(" {} | Enter: {} ", escape_str(flash), app.enter_hint()),
        None => format!(" Enter: {} ", app.enter_hint()),
    };
    let block = Block::bordered().title(hint).border_style(if hidden {
        theme.fg(Color::Magenta)
    } else {
        Style::new()
    });
    let inner = block.inner(area);
    let width = inner.width as usize;
    // Keep the end of a long input visible.
    let text = format!("{prompt}{shown}");
    let start = text.chars().count().saturating_sub(width.saturating_sub(1));
    let visible: String = text.chars().skip(start).collect();
    let cursor_x = inner.x + visible.chars().count() as u16;
    frame.render_widget(Paragraph::new(visible).block(block), area);
    if app.overlay.is_none() && !matches!(app.mode, Mode::Guard(_)) {
        frame.set_cursor_position((cursor_x.min(inner.right().saturating_sub(1)), inner.y));
    }
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

/// The lines the help adds for the standing overrides given on the command line, which
/// change what the guard does (the last lines of [`commands::help_lines`] describe it
/// without them).
pub fn help_overrides(app: &App) -> Vec<&'static str> {
    let mut lines = Vec::new();
    if app.policy.allow_cleartext_auth {
        lines.push("--allow-cleartext-auth is ON: AUTH is NOT stopped without TLS.");
    }
    if app.policy.allow_unverified_auth {
        lines.push("--insecure is ON: AUTH is NOT stopped by an unverified certificate.");
    }
    lines
}

fn render_help(app: &App, frame: &mut Frame, area: Rect) {
    let theme = Theme { colour: app.colour };
    let mut lines: Vec<Line> = commands::help_lines().into_iter().map(Line::from).collect();
    lines.extend(
        help_overrides(app)
            .into_iter()
            .map(|line| Line::styled(line, theme.alarm())),
    );
    let rect = centered(
        area,
        HELP_WIDTH as u16 + 2,
        (lines.len() as u16 + 2).max(24),
    );
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(" help (Esc closes) ")),
        rect,
    );
}

fn render_certificate(app: &App, frame: &mut Frame, area: Rect, theme: Theme) {
    let rect = centered(
        area,
        area.width.saturating_sub(4),
        area.height.saturating_sub(2),
    );
    frame.render_widget(Clear, rect);
    let mut lines: Vec<Line> = Vec::new();
    match &app.status.tls {
        None => lines.push(Line::from(
            "No TLS session: send STARTTLS (or connect with --tls implicit).",
        )),
        Some(info) => {
            lines.push(Line::from(format!(
                "{} {} {} server name {}",
                info.version,
                info.cipher_suite,
                info.key_exchange.as_deref().unwrap_or(""),
                info.server_name
            )));
            match &info.verification {
                Verification::Verified => lines.push(Line::styled(
                    "certificate verified",
                    theme.fg(Color::Green).add_modifier(Modifier::BOLD),
                )),
                Verification::Failed(problem) => lines.push(Line::styled(
                    format!("CERTIFICATE NOT VERIFIED: {problem}"),
                    theme.alarm(),
                )),
            }
            for (index, cert) in info.chain.iter().enumerate() {
                lines.push(Line::default());
                lines.push(Line::styled(
                    format!("[{index}] {}", if index == 0 { "leaf" } else { "chain" }),
                    Style::new().add_modifier(Modifier::BOLD),
                ));
                if let Some(error) = &cert.parse_error {
                    lines.push(Line::from(format!("  unparsable: {error}")));
                    continue;
                }
                for (label, value) in [
                    ("subject", escape_str(&cert.subject)),
                    ("issuer", escape_str(&cert.issuer)),
                    ("names", escape_str(&cert.sans.join(", "))),
                    ("valid from", cert.not_before.clone()),
                    (
                        "valid until",
                        format!("{} ({} days)", cert.not_after, cert.days_to_expiry),
                    ),
                    ("key", cert.key.clone()),
                    ("serial", cert.serial.clone()),
                ] {
                    lines.push(Line::from(format!("  {label:<12}{value}")));
                }
            }
        }
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(" certificate (Esc closes) ")),
        rect,
    );
}

/// Whether an EHLO was answered on this cleartext connection without STARTTLS in it.
fn stripped_starttls(app: &App) -> bool {
    !app.status.extensions.is_empty() && !app.status.extensions.iter().any(|e| e == "STARTTLS")
}

fn render_guard(app: &App, frame: &mut Frame, area: Rect, theme: Theme) {
    let Mode::Guard(dialog) = &app.mode else {
        return;
    };
    let word = dialog.override_word();
    let mut lines = match &dialog.refusal {
        Refusal::Cleartext => vec![
            Line::styled(
                "AUTH stopped: this connection is not encrypted.",
                theme.alarm(),
            ),
            Line::from(""),
            Line::from("Your user name and password would cross the network readable by"),
            Line::from("anyone on the path. Base64 is an encoding, not encryption."),
            Line::from("Nothing was sent."),
            Line::from(""),
        ]
        .into_iter()
        .chain(
            stripped_starttls(app)
                .then(|| {
                    [
                        Line::styled(
                            "This server's EHLO did not offer STARTTLS. On a port meant for AUTH",
                            theme.fg(Color::Yellow).add_modifier(Modifier::BOLD),
                        ),
                        Line::from(
                            "that is a red flag: an attacker on the path may have removed it.",
                        ),
                        Line::from(""),
                    ]
                })
                .into_iter()
                .flatten(),
        )
        .chain([
            Line::styled(
                if stripped_starttls(app) {
                    "Enter      try STARTTLS anyway (recommended), then EHLO and AUTH"
                } else {
                    "Enter      STARTTLS first (recommended), then EHLO and AUTH again"
                },
                Style::new().add_modifier(Modifier::BOLD),
            ),
            Line::from("Esc        cancel"),
        ])
        .collect(),
        Refusal::Unverified(problem) => vec![
            Line::styled(
                "AUTH stopped: the certificate was NOT verified.",
                theme.alarm(),
            ),
            Line::from(""),
            Line::from(format!("{problem}.")),
            Line::from("The traffic is encrypted, but the peer may not be the server you"),
            Line::from("meant: it would receive your credentials. Nothing was sent."),
            Line::from(""),
            Line::styled(
                "Enter or Esc  cancel (recommended)",
                Style::new().add_modifier(Modifier::BOLD),
            ),
        ],
    };
    // A standing flag for the other case does not cover this one: say so, or the user may
    // think the flag they gave already let AUTH through.
    let other_flag = match &dialog.refusal {
        Refusal::Cleartext if app.policy.allow_unverified_auth => {
            Some("--insecure is on, but it covers unverified certificates, not cleartext.")
        }
        Refusal::Unverified(_) if app.policy.allow_cleartext_auth => {
            Some("--allow-cleartext-auth is on, but it does not cover an unverified peer.")
        }
        _ => None,
    };
    if let Some(text) = other_flag {
        lines.insert(1, Line::styled(text, theme.fg(Color::Yellow)));
    }
    lines.push(Line::from(format!(
        "type '{word}' + Enter  send anyway, for this one command only"
    )));
    lines.push(Line::from(""));
    lines.push(Line::from(format!(
        "override: {}",
        escape_str(&dialog.typed)
    )));
    if let Some(hint) = &dialog.hint {
        lines.push(Line::styled(hint.clone(), theme.fg(Color::Yellow)));
    }
    // As tall as its text, so the smallest screen keeps the panes' edges around it.
    let rect = centered(area, 76, lines.len() as u16 + 2);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::bordered()
                .title(" credential guard ")
                .border_style(theme.alarm()),
        ),
        rect,
    );
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
