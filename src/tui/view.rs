//! The transcript view: every event with the facts the pane shows beside it, the display
//! rows (counted from the transcript's row model), and where the view is scrolled.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use crossterm::event::{MouseEvent, MouseEventKind};

use super::commands::Command;
use crate::proto::command::split_verb;
use crate::transcript::{Event, EventKind, SentKind, rows};

/// What the transcript needs to know about each event beyond the event itself.
#[derive(Debug, Clone, Default)]
pub struct EventMeta {
    /// For a reply: the verb of the command it answers.
    pub command: Option<Box<str>>,
    /// For a reply: the line it answers, as the transcript shows it (its parameters say
    /// what the reply is about).
    pub line: Option<Box<str>>,
    /// For a reply: time since the line it answers was sent.
    pub latency: Option<Duration>,
}

/// The transcript and the view over it.
#[derive(Debug, Clone)]
pub struct TranscriptView {
    /// Every transcript event, in order.
    pub events: Vec<Event>,
    /// Per-event display facts, parallel to `events`.
    pub meta: Vec<EventMeta>,
    /// Display rows: (event index, row within the event). Built once per event, so drawing a
    /// frame only looks at the rows on screen, however long the transcript is.
    pub rows: Vec<(u32, u32)>,
    /// Rows before this one were hidden with `:clear`.
    pub first_row: usize,
    /// `None` follows the tail; otherwise the row shown at the bottom of the pane.
    pub scroll: Option<usize>,
    /// Rows the transcript pane shows (set from the terminal size), for paging.
    pub page: usize,
    /// The lines sent that wait for their replies, oldest first: when each was sent and its
    /// verb, for the latency and verb of its reply. More than one after a pipelined group
    /// (RFC 2920), whose replies come in the order of its commands.
    awaiting: VecDeque<(Duration, String, String)>,
    /// The end of a message answered last: under LMTP the replies after the first one are
    /// for the same final dot, one per recipient (RFC 2033 §4.2).
    answered_dot: Option<Duration>,
    /// Added to the session's times: after `:reconnect` the new session counts from zero, and
    /// the transcript goes on counting from where the last one ended.
    offset: Duration,
    /// A new session is coming: its first event sets [`TranscriptView::offset`].
    rebase: bool,
}

impl Default for TranscriptView {
    fn default() -> Self {
        Self {
            events: Vec::new(),
            meta: Vec::new(),
            rows: Vec::new(),
            first_row: 0,
            scroll: None,
            page: 20,
            awaiting: VecDeque::new(),
            answered_dot: None,
            offset: Duration::ZERO,
            rebase: false,
        }
    }
}

impl TranscriptView {
    /// Appends an event of the session and its display rows; its time is the session's, and
    /// becomes the transcript's (see [`TranscriptView::new_session`]).
    pub fn push(&mut self, mut event: Event) {
        if std::mem::take(&mut self.rebase) {
            let gap = self.events.last().map_or(Duration::ZERO, |last| {
                event.time.duration_since(last.time).unwrap_or_default()
            });
            self.offset = (self.last_elapsed() + gap).saturating_sub(event.elapsed);
        }
        event.elapsed += self.offset;
        self.push_shown(event);
    }

    /// Appends an event of the UI's own: a note stamped now, at the transcript's time.
    pub fn push_note(&mut self, kind: EventKind) {
        let time = SystemTime::now();
        let gap = self.events.last().map_or(Duration::ZERO, |last| {
            time.duration_since(last.time).unwrap_or_default()
        });
        let elapsed = if self.events.is_empty() {
            Duration::ZERO
        } else {
            self.last_elapsed() + gap
        };
        self.push_shown(Event {
            time,
            elapsed,
            kind,
        });
    }

    /// A new session starts (`:reconnect`): a separator says so, and the times of the next
    /// session's events go on from the transcript's.
    pub fn new_session(&mut self, separator: String) {
        self.push_note(EventKind::Note(separator));
        self.rebase = true;
        self.awaiting.clear();
        self.answered_dot = None;
    }

    fn push_shown(&mut self, event: Event) {
        let index = self.events.len() as u32;
        let mut meta = EventMeta::default();
        match &event.kind {
            EventKind::Sent { text, kind, .. } => match kind {
                SentKind::Command => {
                    let verb = split_verb(text).0;
                    // BDAT's chunk follows its command and is answered with it.
                    self.awaiting.push_back((event.elapsed, verb, text.clone()));
                }
                SentKind::Credentials => {
                    self.awaiting
                        .push_back((event.elapsed, String::new(), String::new()));
                }
                // Message lines get no reply; the final dot does.
                SentKind::MessageLine if text == "." => {
                    self.awaiting
                        .push_back((event.elapsed, ".".to_owned(), ".".to_owned()));
                }
                SentKind::MessageLine => {}
            },
            EventKind::Received { .. } => {
                // Each reply answers the oldest line still waiting, and a line only one reply
                // (beyond LMTP's one per recipient for the final dot).
                if let Some((at, verb, line)) = self.awaiting.pop_front() {
                    meta.latency = event.elapsed.checked_sub(at);
                    self.answered_dot = (verb == ".").then_some(at);
                    if !verb.is_empty() {
                        meta.command = Some(verb.into_boxed_str());
                        meta.line = Some(line.into_boxed_str());
                    }
                } else if let Some(at) = self.answered_dot {
                    meta.latency = event.elapsed.checked_sub(at);
                    meta.command = Some(".".into());
                    meta.line = Some(".".into());
                }
            }
            EventKind::Connecting { .. } | EventKind::Error { .. } | EventKind::Closed => {
                // Nothing sent before is answered any more.
                self.awaiting.clear();
                self.answered_dot = None;
            }
            _ => {}
        }
        let count = rows(&event.kind).len();
        self.rows.extend((0..count).map(|sub| (index, sub as u32)));
        self.events.push(event);
        self.meta.push(meta);
    }

    /// The time of the latest event since the session started.
    pub fn last_elapsed(&self) -> Duration {
        self.events.last().map(|e| e.elapsed).unwrap_or_default()
    }

    /// Takes the view's own commands (scrolling); returns whether `command` was one.
    pub fn on_command(&mut self, command: Command) -> bool {
        match command {
            Command::PageUp => self.scroll_by(-self.page_step()),
            Command::PageDown => self.scroll_by(self.page_step()),
            Command::RowUp => self.scroll_by(-1),
            Command::RowDown => self.scroll_by(1),
            Command::Top => self.scroll = Some(self.first_row),
            Command::Follow => self.follow(),
            Command::ClearTranscript => {
                self.first_row = self.rows.len();
                self.scroll = None;
            }
            _ => return false,
        }
        true
    }

    /// Scrolls with the mouse wheel.
    pub fn on_mouse(&mut self, mouse: MouseEvent) {
        match mouse.kind {
            MouseEventKind::ScrollUp => self.scroll_by(-3),
            MouseEventKind::ScrollDown => self.scroll_by(3),
            _ => {}
        }
    }

    /// Shows the bottom and follows new rows.
    pub fn follow(&mut self) {
        self.scroll = None;
    }

    /// Moves the view by `delta` rows (negative is up); reaching the end follows the tail.
    /// Near the top the view anchors there (`Some(first_row)`): the first rows fill the pane
    /// instead of one row standing alone at its top, and paging down moves at once.
    pub fn scroll_by(&mut self, delta: isize) {
        let Some(last) = self.rows.len().checked_sub(1) else {
            return;
        };
        // The bottom row of the first page (rows may wrap, so this is an estimate).
        let first_page = (self.first_row + self.page.max(1) - 1).min(last);
        if first_page >= last {
            // About one page: up shows it from the top (rows may wrap), down follows the tail.
            self.scroll = (delta < 0).then_some(self.first_row);
            return;
        }
        let current = self.scroll.unwrap_or(last).max(first_page) as isize;
        let target = (current + delta).clamp(first_page as isize, last as isize) as usize;
        self.scroll = if target >= last {
            None
        } else if target <= first_page {
            Some(self.first_row)
        } else {
            Some(target)
        };
    }

    /// Rows moved by PgUp/PgDn: a pane's height, less one row kept for context.
    fn page_step(&self) -> isize {
        self.page.saturating_sub(1).max(1) as isize
    }
}
