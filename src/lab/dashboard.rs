//! The instructor's view of a class: `smtptui lab --dashboard`.
//!
//! A full-screen view for the projector: a grid of students by exercise (`✓` done, `…`
//! started, `!!` fell for an attack there), the sessions open now per profile, and a feed of
//! notable events (attacks that worked with their lesson, credentials in cleartext, first
//! TLS sessions, completed exercises). Other screens show the lab's recent log, the start
//! table (where students connect) and the keys. `--dashboard text` prints the same feed as
//! plain lines for projecting with other tools.
//!
//! Drawing is a function of the [`Classroom`] and a small [`DashState`] (which screen, where
//! it is scrolled); keys change the state and return a [`DashAction`]. Nothing here holds or
//! shows a password: the classroom has none.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crossterm::event::{Event, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use futures_util::StreamExt as _;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};
use unicode_width::UnicodeWidthStr;

use super::classroom::{Cell, ClassBoard, Classroom, FeedView, Tone, wrap};

/// Most lines of the lab's log kept for the log screen.
pub const LOG_KEPT: usize = 2000;
/// How often the screen is redrawn.
const FRAME: Duration = Duration::from_millis(250);

/// The lab's recent log lines, for the log screen (the lab's log sink pushes here while the
/// dashboard owns the terminal).
#[derive(Debug, Default)]
pub struct LogRing {
    lines: Mutex<VecDeque<String>>,
}

impl LogRing {
    /// Keeps a line, dropping the oldest beyond [`LOG_KEPT`].
    pub fn push(&self, line: &str) {
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.len() >= LOG_KEPT {
            lines.pop_front();
        }
        lines.push_back(line.to_owned());
    }

    /// A copy of the lines, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }
}

/// Which screen is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// The grid, live sessions and the feed.
    Class,
    /// The lab's recent log.
    Log,
    /// The start table: where and how students connect.
    Info,
    /// The keys.
    Help,
}

/// What a key asks of the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DashAction {
    /// Write the results as CSV and JSON.
    Export,
    /// Stop the lab.
    Quit,
}

/// The dashboard's own state: everything the picture depends on besides the classroom.
#[derive(Debug, Clone)]
pub struct DashState {
    /// The screen.
    pub screen: Screen,
    /// Rows scrolled on the current screen (the grid: rows of students; the log and the
    /// start table: lines up from the end / down from the top).
    pub scroll: usize,
    /// A message from the last action (an export), shown in the footer.
    pub flash: Option<String>,
    /// `q` was pressed: the footer asks to confirm.
    pub confirm_quit: bool,
    /// The start table, for the info screen.
    pub info: String,
    /// Colours (off with NO_COLOR: bold and reverse remain).
    pub colour: bool,
}

impl DashState {
    /// The class screen, with the start table for the info screen.
    pub fn new(info: String, colour: bool) -> Self {
        Self {
            screen: Screen::Class,
            scroll: 0,
            flash: None,
            confirm_quit: false,
            info,
            colour,
        }
    }

    /// A key press.
    pub fn on_key(&mut self, key: KeyEvent) -> Option<DashAction> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Some(DashAction::Quit);
        }
        if self.confirm_quit {
            self.confirm_quit = false;
            if matches!(key.code, KeyCode::Char('y' | 'Y')) {
                return Some(DashAction::Quit);
            }
            self.flash = Some("The lab goes on.".to_owned());
            return None;
        }
        self.flash = None;
        let screen = |s: &mut Self, screen: Screen| {
            s.screen = if s.screen == screen {
                Screen::Class
            } else {
                screen
            };
            s.scroll = 0;
        };
        match key.code {
            KeyCode::Char('q') => self.confirm_quit = true,
            KeyCode::Esc => {
                self.screen = Screen::Class;
                self.scroll = 0;
            }
            KeyCode::Char('e') => return Some(DashAction::Export),
            KeyCode::Char('l') => screen(self, Screen::Log),
            KeyCode::Char('i') => screen(self, Screen::Info),
            KeyCode::Char('?') | KeyCode::F(1) => screen(self, Screen::Help),
            KeyCode::Down | KeyCode::Char('j') => self.scroll_by(1),
            KeyCode::Up | KeyCode::Char('k') => self.scroll_back(1),
            KeyCode::PageDown | KeyCode::Char(' ') => self.scroll_by(10),
            KeyCode::PageUp => self.scroll_back(10),
            KeyCode::Home => self.scroll = 0,
            _ => {}
        }
        None
    }

    fn scroll_by(&mut self, rows: usize) {
        // The log scrolls up from its end; the others down from their top.
        if self.screen == Screen::Log {
            self.scroll = self.scroll.saturating_sub(rows);
        } else {
            self.scroll = self.scroll.saturating_add(rows);
        }
    }

    fn scroll_back(&mut self, rows: usize) {
        if self.screen == Screen::Log {
            self.scroll = self.scroll.saturating_add(rows);
        } else {
            self.scroll = self.scroll.saturating_sub(rows);
        }
    }
}

/// Styles, with colour only when enabled.
#[derive(Debug, Clone, Copy)]
struct Theme {
    colour: bool,
}

impl Theme {
    fn fg(self, colour: Color) -> Style {
        if self.colour {
            Style::new().fg(colour)
        } else {
            Style::new()
        }
    }

    fn cell(self, cell: Cell) -> Style {
        match cell {
            Cell::Done => self.fg(Color::Green).add_modifier(Modifier::BOLD),
            Cell::Fell => self
                .fg(Color::Red)
                .add_modifier(Modifier::BOLD | Modifier::REVERSED),
            Cell::Started => self.fg(Color::Yellow),
            Cell::Todo => self.fg(Color::DarkGray),
        }
    }

    fn tone(self, tone: Tone) -> Style {
        match tone {
            Tone::Alarm => self.fg(Color::Red).add_modifier(Modifier::BOLD),
            Tone::Good => self.fg(Color::Green),
            Tone::Info => Style::new(),
        }
    }
}

/// The symbol of a cell: two columns wide, readable from the back of a room.
pub fn cell_symbol(cell: Cell) -> &'static str {
    match cell {
        Cell::Done => "✓",
        Cell::Started => "…",
        Cell::Todo => "·",
        Cell::Fell => "!!",
    }
}

/// Draws the dashboard: a function of the classroom, the state, the log lines and the clock.
pub fn render(
    frame: &mut Frame,
    class: &Classroom,
    state: &DashState,
    log: &[String],
    now: SystemTime,
) {
    let theme = Theme {
        colour: state.colour,
    };
    let area = frame.area();
    let [title, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    render_title(frame, title, class, now);
    match state.screen {
        Screen::Class => render_class(frame, body, class, state, theme),
        Screen::Log => render_log(frame, body, log, state),
        Screen::Info => render_text(
            frame,
            body,
            " Where students connect ",
            &state.info,
            state.scroll,
        ),
        Screen::Help => render_text(frame, body, " Keys ", HELP, state.scroll),
    }
    render_footer(frame, footer, state, theme);
}

const HELP: &str = "\
Up/Down, PgUp/PgDn, Home   scroll the grid, the log or this text
e          export the results now: CSV and JSON files (named in the footer)
l          the lab's log; l again or Esc: back
i          where students connect: the lab's start table
?          this help
q, then y  stop the lab (open sessions get 421); Ctrl-C stops at once

The grid: one row per student, one column per exercise (see the legend).
  ✓   done: the lab saw every goal of the exercise in their sessions
  …   started: part of the goal met (the student sees what is missing)
  ·   not started
  !!  their latest session on the exercise's profile fell for the attack
  ●   a session of theirs is open now
DONE: exercises done.  !!: their sessions that ended with an alarm.

Students see their own list: smtptui lab-status HOST ID, :exercises in
smtptui, or XEXERCISES in any session. Passwords are only on the class
sheet, never on this screen.";

fn render_title(frame: &mut Frame, area: Rect, class: &Classroom, now: SystemTime) {
    let totals = class.totals();
    let who = if class.roster().is_anonymous() {
        "no class (every session counts as one)".to_owned()
    } else {
        format!("class of {}", class.roster().len())
    };
    let clock = format!("{} ", clock(now));
    let width = usize::from(area.width);
    let counts = format!(
        "{} · {} live · {} worked",
        plural(totals.sessions, "session"),
        class.live_count(),
        plural(totals.attacks_worked, "attack"),
    );
    // The longest form that fits with the clock.
    let text = [
        format!(
            " smtptui lab · {who} · {} exercises · {counts}",
            class.exercises().list.len()
        ),
        format!(" smtptui lab · {who} · {counts}"),
        format!(" {who} · {counts}"),
    ]
    .into_iter()
    .find(|t| t.width() + clock.width() <= width)
    .unwrap_or_else(|| format!(" {counts}"));
    let pad = width.saturating_sub(text.width() + clock.width());
    let line = Line::from(vec![
        Span::raw(text),
        Span::raw(" ".repeat(pad)),
        Span::raw(clock),
    ]);
    frame.render_widget(
        Paragraph::new(line).style(Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)),
        area,
    );
}

fn render_footer(frame: &mut Frame, area: Rect, state: &DashState, theme: Theme) {
    let (text, style) = if state.confirm_quit {
        (
            " Stop the lab for everyone? y: stop, any other key: go on".to_owned(),
            theme.tone(Tone::Alarm),
        )
    } else if let Some(flash) = &state.flash {
        (
            format!(" {flash}"),
            Style::new().add_modifier(Modifier::BOLD),
        )
    } else {
        (
            " ↑↓ scroll · e export · l log · i connect · ? help · q quit".to_owned(),
            Style::new().add_modifier(Modifier::REVERSED),
        )
    };
    frame.render_widget(Paragraph::new(text).style(style), area);
}

/// Width of one student's row in the grid.
fn row_width(id_width: usize, exercises: usize) -> usize {
    // "● " + id + " " + 3 per exercise + " 10/10" + "  !!" count
    2 + id_width + 1 + 3 * exercises + 6 + 4
}

fn render_class(frame: &mut Frame, area: Rect, class: &Classroom, state: &DashState, theme: Theme) {
    let exercises = class.exercises().list.len();
    let legend = legend(class);
    let legend_lines = wrap(&legend, usize::from(area.width.max(20)), "").len();
    let students = class.roster().len();
    let id_width = class
        .roster()
        .students()
        .iter()
        .map(|s| s.id.width())
        .max()
        .unwrap_or(7)
        .clamp(7, 16);
    let inner_width = usize::from(area.width.saturating_sub(2));
    let block_width = row_width(id_width, exercises);
    let blocks = ((inner_width + 3) / (block_width + 3)).clamp(1, students.max(1));
    let rows_needed = students.div_ceil(blocks);
    let feed_min: u16 = 6;
    let fixed = 1 + u16::try_from(legend_lines).unwrap_or(3) + feed_min;
    // The grid takes what it needs, but on a small screen leaves the feed room for an alarm
    // and its lesson.
    let grid_height = u16::try_from(rows_needed + 3)
        .unwrap_or(u16::MAX)
        .min(area.height.saturating_sub(fixed).max(4))
        .min((area.height * 11 / 20).max(6));
    let [live, grid, legend_area, feed] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(grid_height),
        Constraint::Length(u16::try_from(legend_lines).unwrap_or(3)),
        Constraint::Min(0),
    ])
    .areas(area);
    render_live(frame, live, class, theme);
    render_grid(
        frame,
        grid,
        class,
        state.scroll,
        GridShape {
            id_width,
            blocks,
            rows: rows_needed,
        },
        theme,
    );
    frame.render_widget(
        Paragraph::new(legend)
            .wrap(Wrap { trim: true })
            .style(theme.fg(Color::Cyan)),
        legend_area,
    );
    render_feed(frame, feed, class, theme);
}

fn legend(class: &Classroom) -> String {
    let parts: Vec<String> = class
        .exercises()
        .list
        .iter()
        .enumerate()
        .map(|(i, e)| format!("{} {}", i + 1, e.id))
        .collect();
    format!(" {}", parts.join(" · "))
}

fn render_live(frame: &mut Frame, area: Rect, class: &Classroom, theme: Theme) {
    let mut spans = vec![Span::styled(
        " Live: ",
        Style::new().add_modifier(Modifier::BOLD),
    )];
    let mut live = class.live_per_profile();
    let full: usize = live
        .iter()
        .map(|(p, n)| p.name().len() + n.to_string().len() + 4)
        .sum();
    if full + 7 > usize::from(area.width) {
        // Too narrow for every profile: the ones with sessions open.
        live.retain(|(_, n)| *n > 0);
        if live.is_empty() {
            spans.push(Span::styled("no session open", theme.fg(Color::DarkGray)));
        }
    }
    for (index, (profile, count)) in live.into_iter().enumerate() {
        if index > 0 {
            spans.push(Span::raw(" · "));
        }
        let style = if count == 0 {
            theme.fg(Color::DarkGray)
        } else if profile.is_attacker() {
            theme.fg(Color::Magenta).add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        };
        spans.push(Span::styled(format!("{profile} {count}"), style));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

#[derive(Clone, Copy)]
struct GridShape {
    id_width: usize,
    blocks: usize,
    rows: usize,
}

fn render_grid(
    frame: &mut Frame,
    area: Rect,
    class: &Classroom,
    scroll: usize,
    shape: GridShape,
    theme: Theme,
) {
    let GridShape {
        id_width,
        blocks,
        rows,
    } = shape;
    let exercises = class.exercises().list.len();
    let visible = usize::from(area.height.saturating_sub(3));
    let scroll = scroll.min(rows.saturating_sub(visible));
    let title = if rows > visible {
        format!(
            " Progress: rows {}-{} of {rows} (↑↓ scroll) ",
            scroll + 1,
            (scroll + visible).min(rows)
        )
    } else {
        " Progress ".to_owned()
    };
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let gap = "   ";
    let mut header = Vec::new();
    for b in 0..blocks {
        if b > 0 {
            header.push(Span::raw(gap));
        }
        let mut text = format!("  {:<id_width$} ", "STUDENT");
        for e in 0..exercises {
            text.push_str(&format!("{:>2} ", e + 1));
        }
        text.push_str("  DONE  !!");
        header.push(Span::styled(
            text,
            Style::new().add_modifier(Modifier::BOLD),
        ));
    }
    let mut lines = vec![Line::from(header)];
    for row in scroll..(scroll + visible).min(rows) {
        let mut spans = Vec::new();
        for b in 0..blocks {
            let student = b * rows + row;
            if student >= class.roster().len() {
                break;
            }
            if b > 0 {
                spans.push(Span::raw(gap));
            }
            spans.extend(student_row(class, student, id_width, theme));
        }
        lines.push(Line::from(spans));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn student_row(
    class: &Classroom,
    student: usize,
    id_width: usize,
    theme: Theme,
) -> Vec<Span<'static>> {
    let id = class
        .roster()
        .students()
        .get(student)
        .map_or_else(String::new, |s| s.id.clone());
    let id = fit(&id, id_width);
    let live = if class.is_live(student) { "● " } else { "  " };
    let mut spans = vec![
        Span::styled(live.to_owned(), theme.fg(Color::Green)),
        Span::styled(
            format!("{id:<id_width$} "),
            Style::new().add_modifier(Modifier::BOLD),
        ),
    ];
    for exercise in 0..class.exercises().list.len() {
        let cell = class.cell(student, exercise);
        let symbol = cell_symbol(cell);
        let pad = 2usize.saturating_sub(symbol.width());
        spans.push(Span::raw(" ".repeat(pad)));
        spans.push(Span::styled(symbol.to_owned(), theme.cell(cell)));
        spans.push(Span::raw(" "));
    }
    let done = class.done(student);
    let of = class.exercises().list.len();
    let done_style = if done == of && of > 0 {
        theme.fg(Color::Green).add_modifier(Modifier::BOLD)
    } else {
        Style::new()
    };
    spans.push(Span::styled(
        format!("{:>6}", format!("{done}/{of}")),
        done_style,
    ));
    let alarms = class.student(student).map_or(0, |s| s.alarms);
    if alarms > 0 {
        spans.push(Span::styled(
            format!("{alarms:>4}"),
            theme.tone(Tone::Alarm),
        ));
    } else {
        spans.push(Span::styled(
            format!("{:>4}", "·"),
            theme.fg(Color::DarkGray),
        ));
    }
    spans
}

/// Cuts text to `width` cells, with `…` when cut.
fn fit(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_owned();
    }
    let mut out = String::new();
    for c in text.chars() {
        if out.width() + unicode_width::UnicodeWidthChar::width(c).unwrap_or(1) + 1 > width {
            break;
        }
        out.push(c);
    }
    out.push('…');
    out
}

/// The lines of a feed entry: the event, then its lesson, wrapped to `width`.
fn feed_lines(view: &FeedView, at: SystemTime, width: usize, theme: Theme) -> Vec<Line<'static>> {
    let text = format!("{} {} {}: {}", clock(at), view.marker, view.who, view.text);
    let mut lines: Vec<Line<'static>> = wrap(&text, width, "            ")
        .into_iter()
        .map(|l| Line::styled(l, theme.tone(view.tone)))
        .collect();
    if let Some(lesson) = view.lesson {
        lines.extend(
            wrap(
                &format!("            LESSON: {lesson}"),
                width,
                "                    ",
            )
            .into_iter()
            .map(|l| Line::styled(l, theme.fg(Color::Yellow))),
        );
    }
    lines
}

fn render_feed(frame: &mut Frame, area: Rect, class: &Classroom, theme: Theme) {
    let block = Block::bordered().title(" Notable events (newest last) ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = usize::from(inner.width.max(20));
    let height = usize::from(inner.height);
    // The newest entries that fit, oldest of them first.
    let mut lines: VecDeque<Line<'static>> = VecDeque::new();
    for entry in class.feed().iter().rev() {
        let view = class.view(entry);
        let mut entry_lines = feed_lines(&view, entry.at, width, theme);
        if lines.len() + entry_lines.len() > height && !lines.is_empty() {
            break;
        }
        if entry_lines.len() > height {
            // Alone too tall: its head, marked as cut, rather than its tail.
            entry_lines.truncate(height);
            if let Some(last) = entry_lines.last_mut() {
                last.spans.push(Span::raw(" …"));
            }
        }
        for line in entry_lines.into_iter().rev() {
            lines.push_front(line);
        }
        if lines.len() >= height {
            break;
        }
    }
    if class.feed().is_empty() {
        lines.push_back(Line::styled(
            " Nothing yet: attacks that work, credentials in cleartext, first TLS sessions and finished exercises appear here.",
            theme.fg(Color::DarkGray),
        ));
    }
    while lines.len() > height {
        lines.pop_front();
    }
    frame.render_widget(
        Paragraph::new(Vec::from(lines)).wrap(Wrap { trim: false }),
        inner,
    );
}

fn render_log(frame: &mut Frame, area: Rect, log: &[String], state: &DashState) {
    let block =
        Block::bordered().title(" The lab's log (newest last; ↑ to go back, l or Esc: back) ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let height = usize::from(inner.height);
    let width = usize::from(inner.width).max(10);
    // Wrapped, newest at the bottom: only the tail that can be shown is wrapped.
    let wanted = height + state.scroll;
    let mut rows: VecDeque<String> = VecDeque::new();
    for line in log.iter().rev() {
        if rows.len() >= wanted {
            break;
        }
        for piece in hard_wrap(&crate::proto::escape::escape_str(line), width)
            .into_iter()
            .rev()
        {
            rows.push_front(piece);
        }
    }
    let scroll = state.scroll.min(rows.len().saturating_sub(height));
    let end = rows.len() - scroll;
    let lines: Vec<Line> = rows
        .range(end.saturating_sub(height)..end)
        .map(|l| Line::raw(l.clone()))
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

fn render_text(frame: &mut Frame, area: Rect, title: &str, text: &str, scroll: usize) {
    let width = usize::from(area.width.saturating_sub(2)).max(10);
    let height = usize::from(area.height.saturating_sub(2));
    let lines: Vec<String> = text.lines().flat_map(|l| hard_wrap(l, width)).collect();
    let last = lines.len().saturating_sub(height);
    let scroll = scroll.min(last);
    let title = if scroll < last {
        format!("{title}(more below: PgDn) ")
    } else {
        title.to_owned()
    };
    let shown: Vec<Line> = lines
        .into_iter()
        .skip(scroll)
        .take(height)
        .map(Line::raw)
        .collect();
    frame.render_widget(
        Paragraph::new(shown).block(Block::bordered().title(title)),
        area,
    );
}

/// Cuts a line into pieces of at most `width` cells, at a space where there is one, keeping
/// the spacing inside (tables stay aligned); the pieces after the first are indented by the
/// line's own indentation and two more spaces.
fn hard_wrap(line: &str, width: usize) -> Vec<String> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    let continuation = " ".repeat((indent + 2).min(width / 2));
    let mut pieces = Vec::new();
    let mut rest = line.to_owned();
    let mut first = true;
    loop {
        let current = if first {
            rest.clone()
        } else {
            format!("{continuation}{}", rest.trim_start())
        };
        if current.width() <= width {
            pieces.push(current);
            return pieces;
        }
        // The longest prefix that fits, cut at its last space past the indentation.
        let mut fits = 0;
        let mut used = 0;
        for (at, c) in current.char_indices() {
            let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(1);
            if used + w > width {
                break;
            }
            used += w;
            fits = at + c.len_utf8();
        }
        let floor = if first { indent } else { continuation.len() };
        let cut = current[..fits]
            .rfind(' ')
            .filter(|at| *at > floor)
            .unwrap_or(fits.max(1));
        pieces.push(current[..cut].trim_end().to_owned());
        rest = current[cut..].to_owned();
        first = false;
        if rest.trim().is_empty() {
            return pieces;
        }
    }
}

/// `1 session`, `2 sessions`.
fn plural(count: u64, word: &str) -> String {
    if count == 1 {
        format!("1 {word}")
    } else {
        format!("{count} {word}s")
    }
}

/// `HH:MM:SS` in UTC, as the lab's log stamps its lines.
pub fn clock(at: SystemTime) -> String {
    let at = time::OffsetDateTime::from(at);
    format!("{:02}:{:02}:{:02}", at.hour(), at.minute(), at.second())
}

/// The grid as plain text, for the text mode and the end of a run: one line per student.
pub fn grid_text(class: &Classroom) -> String {
    let exercises = class.exercises().list.len();
    let id_width = class
        .roster()
        .students()
        .iter()
        .map(|s| s.id.width())
        .max()
        .unwrap_or(7)
        .max(7);
    let mut out = format!("{:<id_width$} ", "STUDENT");
    for e in 0..exercises {
        out.push_str(&format!("{:>2} ", e + 1));
    }
    out.push_str("  DONE  !!\n");
    for (index, student) in class.roster().students().iter().enumerate() {
        out.push_str(&format!("{:<id_width$} ", student.id));
        for e in 0..exercises {
            let symbol = match class.cell(index, e) {
                Cell::Done => "ok",
                Cell::Started => "..",
                Cell::Todo => " -",
                Cell::Fell => "!!",
            };
            out.push_str(&format!("{symbol} "));
        }
        let alarms = class.student(index).map_or(0, |s| s.alarms);
        out.push_str(&format!(
            "{:>6}{:>4}\n",
            format!("{}/{exercises}", class.done(index)),
            alarms
        ));
    }
    out.push_str(&legend(class));
    out.push('\n');
    out
}

/// Writes the results as `class-results-YYYYMMDD-HHMMSS.csv` and `.json` in `dir`, never
/// over an existing file; returns the paths.
///
/// # Errors
/// The I/O error, with the path.
pub fn export(class: &Classroom, dir: &Path, now: SystemTime) -> Result<Vec<PathBuf>, String> {
    let at = time::OffsetDateTime::from(now);
    let stem = format!(
        "class-results-{:04}{:02}{:02}-{:02}{:02}{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    let json = serde_json::to_string_pretty(&class.json(now)).unwrap_or_default() + "\n";
    let mut written = Vec::new();
    for (extension, content) in [("csv", class.csv()), ("json", json)] {
        let mut path = dir.join(format!("{stem}.{extension}"));
        let mut n = 1;
        while path.exists() {
            n += 1;
            path = dir.join(format!("{stem}-{n}.{extension}"));
        }
        write_new(&path, &content)?;
        written.push(path);
    }
    Ok(written)
}

/// Writes a new file; refuses to replace one.
///
/// # Errors
/// The I/O error, with the path.
pub fn write_new(path: &Path, content: &str) -> Result<(), String> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    file.write_all(content.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Restores the terminal when dropped, whatever the exit path.
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// How the dashboard ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The instructor stopped it (q then y, or Ctrl-C).
    Stopped,
    /// A signal: its name in words.
    Signal(&'static str),
}

/// Runs the dashboard on the terminal until the instructor stops it or `stop` resolves (a
/// signal); exports go to `export_dir`.
///
/// # Errors
/// Terminal I/O errors (the terminal is restored first).
pub async fn run(
    board: Arc<ClassBoard>,
    log: Arc<LogRing>,
    mut state: DashState,
    export_dir: PathBuf,
    stop: impl std::future::Future<Output = &'static str>,
) -> io::Result<Ended> {
    let mut terminal = ratatui::init();
    let _guard = TerminalGuard;
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(FRAME);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let lines = if state.screen == Screen::Log { log.lines() } else { Vec::new() };
                // A copy, so the sessions never wait for the terminal.
                let class = board.read(Classroom::clone);
                terminal.draw(|frame| render(frame, &class, &state, &lines, SystemTime::now()))?;
            }
            event = events.next() => match event {
                Some(Ok(Event::Key(key))) => match state.on_key(key) {
                    Some(DashAction::Quit) => return Ok(Ended::Stopped),
                    Some(DashAction::Export) => {
                        let result = board.read(|class| export(class, &export_dir, SystemTime::now()));
                        state.flash = Some(match result {
                            Ok(paths) => format!(
                                "Exported: {}",
                                paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                            ),
                            Err(error) => error,
                        });
                    }
                    None => {}
                },
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error),
                None => return Ok(Ended::Stopped),
            },
            why = &mut stop => return Ok(Ended::Signal(why)),
        }
    }
}
