//! The UI state and everything that changes it: engine messages and key presses in,
//! [`Action`]s for the engine out. No terminal and no I/O besides the files of the local
//! commands, so tests drive it directly.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind};
use zeroize::Zeroize;

use super::engine::{Action, Crossed, Done, EngineMsg, Retry, Status};
use super::history::{History, may_remember};
use super::record;
use crate::guard::{self, Decision, GuardPolicy, OneTimeOverride, Refusal};
use crate::proto::command::{CommandKind, classify, split_verb};
use crate::proto::reply::Reply;
use crate::proto::sasl::Mechanism;
use crate::scenario::{Action as StepAction, Expectation, Scenario};
use crate::secret::{Credentials, Secret};
use crate::session::Phase;
use crate::transcript::{Event, EventKind, GuardOutcome, SentKind, render_plain, rows};

/// SMTP verbs offered by Tab completion, besides the extensions the server advertised.
const VERBS: [&str; 14] = [
    "EHLO",
    "HELO",
    "STARTTLS",
    "AUTH",
    "MAIL FROM:<",
    "RCPT TO:<",
    "DATA",
    "RSET",
    "NOOP",
    "QUIT",
    "VRFY",
    "HELP",
    "BDAT",
    "ETRN",
];

/// Local commands (never sent), for completion and help.
const LOCAL: [&str; 10] = [
    ":help",
    ":save ",
    ":record ",
    ":load ",
    ":cert",
    ":reconnect",
    ":clear",
    ":explain",
    ":quit",
    ":next",
];

/// What the input line is for right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Commands to the server, or `:` local commands.
    Command,
    /// After 354: lines of the message, ended by a lone `.`.
    Message,
    /// After 334 to an AUTH the UI does not run itself: a hidden SASL answer.
    SaslAnswer,
    /// Asking the user name for AUTH.
    User {
        /// The mechanism to run.
        mechanism: Mechanism,
        /// The override given in the guard dialog, if any.
        one_time: OneTimeOverride,
    },
    /// Asking the password, hidden.
    Password {
        /// The mechanism to run.
        mechanism: Mechanism,
        /// The user name typed before.
        user: String,
        /// The override given in the guard dialog, if any.
        one_time: OneTimeOverride,
    },
    /// The credential guard stopped a request; the dialog decides what happens next.
    Guard(GuardDialog),
}

/// The guard dialog: STARTTLS first (default), cancel, or a deliberate one-time override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardDialog {
    /// Why the request was stopped.
    pub refusal: Refusal,
    /// What to repeat on override.
    pub retry: Retry,
    /// What the user typed so far towards the override word.
    pub typed: String,
    /// A hint after a wrong word.
    pub hint: Option<String>,
}

impl GuardDialog {
    /// The word that must be typed to override this refusal.
    pub fn override_word(&self) -> &'static str {
        match self.refusal {
            Refusal::Cleartext => "cleartext",
            Refusal::Unverified(_) => "unverified",
        }
    }
}

/// A full-screen view over the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlay {
    /// Keys and local commands.
    Help,
    /// The certificate chain of the TLS session.
    Certificate,
}

/// What the transcript needs to know about each event beyond the event itself.
#[derive(Debug, Clone, Default)]
pub struct EventMeta {
    /// For a reply: the verb of the command it answers.
    pub command: Option<Box<str>>,
    /// For a reply: time since the line it answers was sent.
    pub latency: Option<Duration>,
}

/// The command in flight, for the running timer.
#[derive(Debug, Clone)]
pub struct Pending {
    /// What we wait for, in words.
    pub what: String,
    /// When it was sent.
    pub since: Instant,
}

/// A scenario being stepped through by hand (`:load`, `--script`).
#[derive(Debug, Clone)]
pub struct StepPlayer {
    /// The scenario.
    pub scenario: Scenario,
    /// Index of the next step.
    pub next: usize,
    /// The expectation to check against the next reply.
    awaiting: Option<Expectation>,
    /// Whether the latest step is still running (its reply or refusal not yet in).
    in_flight: bool,
    /// Why stepping stopped: a refused, failed or unexpected step ends step mode, because
    /// the lines after it were written for a session that went differently (a SASL answer
    /// after a refused AUTH would otherwise go out as a command).
    halted: Option<String>,
}

/// The whole UI state. Rendering is a function of it (see `ui::render`).
pub struct App {
    /// The session as the engine last reported it.
    pub status: Status,
    /// Every transcript event, in order.
    pub events: Vec<Event>,
    /// Per-event display facts, parallel to `events`.
    pub meta: Vec<EventMeta>,
    /// Display rows: (event index, line within the event). Built once per event, so drawing a
    /// frame only looks at the rows on screen, however long the transcript is.
    pub rows: Vec<(u32, u32)>,
    /// Rows before this one were hidden with `:clear`.
    pub first_row: usize,
    /// `None` follows the tail; otherwise the row shown at the bottom of the pane.
    pub scroll: Option<usize>,
    /// The input line.
    pub input: String,
    /// What the input line is for.
    pub mode: Mode,
    /// Help or certificate view.
    pub overlay: Option<Overlay>,
    /// Whether the explain pane is shown.
    pub explain: bool,
    /// The message being composed after 354.
    pub editor: Vec<String>,
    /// The command in flight.
    pub pending: Option<Pending>,
    /// A step-mode scenario.
    pub player: Option<StepPlayer>,
    /// A one-line message from the UI itself (results of local commands, hints).
    pub flash: Option<String>,
    /// Whether colours are used (off with NO_COLOR).
    pub colour: bool,
    /// The standing guard overrides from the command line.
    pub policy: GuardPolicy,
    /// `--user`, offered in the AUTH prompt.
    pub preset_user: Option<String>,
    /// A password from `--password-file` or the environment; used instead of the prompt.
    pub preset_secret: Option<Secret>,
    /// Set when the UI should close.
    pub should_exit: bool,
    /// When QUIT was requested, to give up waiting after a while.
    pub quitting: Option<Instant>,
    /// Whether the next frame must be drawn.
    pub dirty: bool,
    /// Rows the transcript pane shows (set from the terminal size), for paging.
    pub page: usize,
    /// Esc was pressed once in the message editor; a second Esc leaves.
    leave_armed: bool,
    history: History,
    /// A command line typed but not yet sent: a bare AUTH waits here through its prompts.
    typed: Option<String>,
    /// The typed line the action in flight carries, and whether that action is an AUTH
    /// exchange run with the prompt. It enters the history only once the engine says how it
    /// crossed ([`Done`]): a line the engine refused, or sent as a credential, never does.
    in_flight: Option<(String, bool)>,
    completion: Option<(String, Vec<String>, usize)>,
    last_sent: Option<(Duration, String)>,
}

impl std::fmt::Debug for App {
    /// Shows the state without the input line while it holds a password or SASL answer, and
    /// without the transcript (it is large, and shown on screen already).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret_input = matches!(self.mode, Mode::Password { .. } | Mode::SaslAnswer);
        let input = if secret_input {
            format!("<{} hidden characters>", self.input.chars().count())
        } else {
            self.input.clone()
        };
        f.debug_struct("App")
            .field("status", &self.status)
            .field("events", &self.events.len())
            .field("input", &input)
            .field("mode", &self.mode)
            .field("overlay", &self.overlay)
            .field("editor", &self.editor.len())
            .field("pending", &self.pending)
            .field("flash", &self.flash)
            .field("policy", &self.policy)
            .field("preset_user", &self.preset_user)
            .field("preset_secret", &self.preset_secret)
            .finish_non_exhaustive()
    }
}

impl App {
    /// A fresh UI for `target`, before the engine has said anything.
    pub fn new(target: String, history: History) -> Self {
        Self {
            status: Status::disconnected(target),
            events: Vec::new(),
            meta: Vec::new(),
            rows: Vec::new(),
            first_row: 0,
            scroll: None,
            input: String::new(),
            mode: Mode::Command,
            overlay: None,
            explain: false,
            editor: Vec::new(),
            pending: Some(Pending {
                what: "the greeting".to_owned(),
                since: Instant::now(),
            }),
            player: None,
            flash: None,
            colour: true,
            policy: GuardPolicy::default(),
            preset_user: None,
            preset_secret: None,
            should_exit: false,
            quitting: None,
            dirty: true,
            page: 20,
            leave_armed: false,
            history,
            typed: None,
            in_flight: None,
            completion: None,
            last_sent: None,
        }
    }

    /// Loads a scenario in step mode: each Enter on an empty line sends its next line.
    pub fn load_script(&mut self, scenario: Scenario) {
        self.flash = Some(format!(
            "step mode: {} ({} steps); Enter on an empty line sends the next one",
            scenario.name,
            scenario.steps.len()
        ));
        self.player = Some(StepPlayer {
            awaiting: scenario.greeting.clone(),
            scenario,
            next: 0,
            in_flight: false,
            halted: None,
        });
        self.dirty = true;
    }

    /// Adds a note of the UI's own (not from the engine) to the transcript.
    pub fn note(&mut self, text: impl Into<String>) {
        let elapsed = self.events.last().map(|e| e.elapsed).unwrap_or_default();
        self.push_event(Event {
            time: SystemTime::now(),
            elapsed,
            kind: EventKind::Note(text.into()),
        });
    }

    /// Appends an event and its display rows.
    pub fn push_event(&mut self, event: Event) {
        let index = self.events.len() as u32;
        let mut meta = EventMeta::default();
        match &event.kind {
            EventKind::Sent { text, kind, .. } => {
                let verb = match kind {
                    SentKind::Command => split_verb(text).0,
                    _ => String::new(),
                };
                self.last_sent = Some((event.elapsed, verb));
            }
            EventKind::Received { .. } => {
                if let Some((at, verb)) = &self.last_sent {
                    meta.latency = event.elapsed.checked_sub(*at);
                    if !verb.is_empty() {
                        meta.command = Some(verb.clone().into_boxed_str());
                    }
                }
            }
            _ => {}
        }
        let count = rows(&event.kind).len();
        self.rows.extend((0..count).map(|sub| (index, sub as u32)));
        self.events.push(event);
        self.meta.push(meta);
        self.dirty = true;
    }

    /// Takes one message from the engine.
    pub fn on_engine(&mut self, message: EngineMsg) -> Vec<Action> {
        self.dirty = true;
        match message {
            EngineMsg::Event(event) => {
                self.push_event(event);
                Vec::new()
            }
            EngineMsg::Status(status) => {
                self.status = *status;
                self.follow_phase();
                Vec::new()
            }
            EngineMsg::Finished => {
                self.should_exit = true;
                Vec::new()
            }
            EngineMsg::Done(done) => self.on_done(done),
        }
    }

    fn follow_phase(&mut self) {
        match (self.status.phase, &self.mode) {
            (Phase::Message, Mode::Command) => {
                self.mode = Mode::Message;
                self.editor.clear();
            }
            (Phase::SaslChallenge, Mode::Command) => self.mode = Mode::SaslAnswer,
            (Phase::Command, Mode::SaslAnswer) => {
                // The exchange ended while an answer was being typed: what was typed is a
                // secret and is wiped, never left to be sent as a command.
                self.input.zeroize();
                self.mode = Mode::Command;
                self.flash = Some(
                    "the server ended the SASL exchange; what you typed was discarded, nothing sent"
                        .to_owned(),
                );
            }
            (Phase::Command, Mode::Message) => self.mode = Mode::Command,
            _ => {}
        }
    }

    fn on_done(&mut self, done: Done) -> Vec<Action> {
        self.pending = None;
        let stepping = self.player.as_ref().is_some_and(|p| p.in_flight);
        if let Some(player) = &mut self.player {
            player.in_flight = false;
        }
        match done {
            Done::Reply {
                reply,
                command,
                crossed,
            } => {
                self.settle_history(crossed);
                if command.as_deref() == Some("STARTTLS") && reply.code.value() != 220 {
                    // Replaces any 'once TLS is up' advice: TLS is not coming on this session.
                    self.flash = Some(format!(
                        "STARTTLS refused ({}): still cleartext, {}",
                        reply.code.value(),
                        if self.policy.allow_cleartext_auth {
                            "and AUTH would send credentials readably (--allow-cleartext-auth)"
                        } else {
                            "AUTH stays blocked"
                        }
                    ));
                }
                self.check_expectation(&reply)
            }
            Done::GuardRefused { retry, refusal } => {
                self.settle_history(Crossed::default());
                if stepping {
                    self.halt_player("the credential guard refused the step; nothing was sent");
                }
                self.open_guard(refusal, retry);
                Vec::new()
            }
            Done::Failed { reason, crossed } => {
                self.settle_history(crossed);
                if let Some(player) = &mut self.player {
                    player.awaiting = None;
                }
                if stepping {
                    self.halt_player(&format!("the step failed ({reason})"));
                }
                Vec::new()
            }
            Done::Queued => {
                self.settle_history(Crossed::default());
                Vec::new()
            }
            Done::Recorded => Vec::new(),
        }
    }

    /// Decides the history of the typed line the finished action carried, from what the
    /// engine says crossed: a plain line only when it went out as a command and nothing but
    /// commands; a bare `AUTH <MECH>` (its credentials were typed into the prompt, not into
    /// the line) once its exchange began. Anything else is wiped: it may be a secret typed at
    /// the wrong prompt.
    fn settle_history(&mut self, crossed: Crossed) {
        if let Some((mut line, auth_exchange)) = self.in_flight.take() {
            let keep = if auth_exchange {
                !crossed.nothing()
            } else {
                crossed.only_commands()
            };
            if keep {
                self.history.push(&line);
            }
            line.zeroize();
        }
    }

    /// Forgets a typed line that will not be sent as typed.
    fn drop_typed(&mut self) {
        if let Some(mut line) = self.typed.take() {
            line.zeroize();
        }
    }

    fn check_expectation(&mut self, reply: &Reply) -> Vec<Action> {
        let Some(expect) = self.player.as_mut().and_then(|p| p.awaiting.take()) else {
            return Vec::new();
        };
        let met = expect.matches(reply);
        if !met {
            self.halt_player(&format!(
                "line {} expected {expect}, got {}",
                expect.line, reply.code
            ));
        }
        vec![Action::Record(EventKind::Expectation {
            line: expect.line,
            expected: expect.to_string(),
            met,
            got: reply.summary(),
        })]
    }

    /// Ends step mode with the reason shown; `:load` starts it again.
    fn halt_player(&mut self, reason: &str) {
        if let Some(player) = &mut self.player {
            player.in_flight = false;
            player.awaiting = None;
            player.halted = Some(reason.to_owned());
            self.flash = Some(format!(
                "step mode stopped: {reason}; the rest of the scenario is not sent (:load restarts)"
            ));
        }
    }

    fn open_guard(&mut self, refusal: Refusal, retry: Retry) {
        // A step refused before it left (the UI's own pre-check of a bare AUTH) ends stepping
        // as a refusal from the engine does.
        if self.player.as_ref().is_some_and(|p| p.in_flight) {
            self.halt_player("the credential guard refused the step; nothing was sent");
        }
        self.mode = Mode::Guard(GuardDialog {
            refusal,
            retry,
            typed: String::new(),
            hint: None,
        });
    }

    /// Takes a terminal event (keys, mouse, resize).
    pub fn on_terminal(&mut self, event: crossterm::event::Event) -> Vec<Action> {
        match event {
            crossterm::event::Event::Key(key) if key.kind != KeyEventKind::Release => {
                self.on_key(key)
            }
            crossterm::event::Event::Mouse(mouse) => {
                self.on_mouse(mouse);
                Vec::new()
            }
            crossterm::event::Event::Paste(text) => self.on_paste(&text),
            crossterm::event::Event::Resize(..) => {
                self.dirty = true;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// Takes pasted text (bracketed paste). In the message editor every pasted line is a
    /// message line (a lone `.` ends the message); elsewhere only the first line is kept, so a
    /// pasted line break never sends a command, nor glues two commands into one line.
    pub fn on_paste(&mut self, text: &str) -> Vec<Action> {
        self.dirty = true;
        self.completion = None;
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let mut lines: Vec<&str> = text.split('\n').collect();
        match self.mode {
            Mode::Guard(_) => {
                self.flash = Some("the guard dialog takes typed keys only".to_owned());
                Vec::new()
            }
            Mode::Message => {
                let last = lines.pop().unwrap_or_default();
                for (index, line) in lines.iter().enumerate() {
                    let line = format!("{}{line}", std::mem::take(&mut self.input));
                    if line == "." {
                        let rest = lines.len() - index - 1 + usize::from(!last.is_empty());
                        if rest > 0 {
                            self.flash = Some(format!(
                                "the message ended at the pasted lone '.'; {rest} line(s) after it were not used"
                            ));
                        }
                        return self.end_message();
                    }
                    self.editor.push(line);
                }
                self.input.push_str(last);
                Vec::new()
            }
            _ => {
                let first = lines.first().copied().unwrap_or_default();
                self.input.push_str(first);
                let more = lines.iter().skip(1).filter(|l| !l.is_empty()).count();
                if more > 0 {
                    self.flash = Some(format!(
                        "pasted {} lines: only the first was kept; commands go one at a time",
                        more + 1
                    ));
                }
                Vec::new()
            }
        }
    }

    /// Scrolls with the mouse wheel.
    pub fn on_mouse(&mut self, mouse: MouseEvent) {
        match mouse.kind {
            MouseEventKind::ScrollUp => self.scroll_by(-3),
            MouseEventKind::ScrollDown => self.scroll_by(3),
            _ => {}
        }
    }

    /// Moves the view by `delta` rows (negative is up); reaching the end follows the tail.
    /// Near the top the view anchors there (`Some(first_row)`): the first rows fill the pane
    /// instead of one row standing alone at its top, and paging down moves at once.
    pub fn scroll_by(&mut self, delta: isize) {
        self.dirty = true;
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

    /// Takes one key press.
    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Action> {
        self.dirty = true;
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            self.should_exit = true;
            return Vec::new();
        }
        if key.code != KeyCode::Tab {
            self.completion = None;
        }
        if key.code != KeyCode::Esc {
            self.leave_armed = false;
        }
        if self.overlay.is_some() {
            match key.code {
                KeyCode::Esc
                | KeyCode::F(1)
                | KeyCode::F(3)
                | KeyCode::Enter
                | KeyCode::Char('q') => {
                    self.overlay = None;
                }
                _ => {}
            }
            return Vec::new();
        }
        if let Mode::Guard(_) = self.mode {
            return self.on_guard_key(key);
        }
        match key.code {
            KeyCode::F(1) => self.overlay = Some(Overlay::Help),
            KeyCode::Char('?') if self.input.is_empty() && self.mode == Mode::Command => {
                self.overlay = Some(Overlay::Help);
            }
            KeyCode::F(2) => self.explain = !self.explain,
            KeyCode::F(3) => self.overlay = Some(Overlay::Certificate),
            KeyCode::Esc => return self.escape(),
            KeyCode::PageUp => self.scroll_by(-self.page_step()),
            KeyCode::PageDown => self.scroll_by(self.page_step()),
            KeyCode::Up if key.modifiers.contains(KeyModifiers::SHIFT) || ctrl => {
                self.scroll_by(-1);
            }
            KeyCode::Down if key.modifiers.contains(KeyModifiers::SHIFT) || ctrl => {
                self.scroll_by(1);
            }
            KeyCode::Home if ctrl || self.input.is_empty() => {
                self.scroll = Some(self.first_row);
            }
            KeyCode::End if ctrl || self.input.is_empty() => self.scroll = None,
            KeyCode::Up if self.mode == Mode::Command => {
                if let Some(line) = self.history.older(&self.input) {
                    self.input = line.to_owned();
                }
            }
            KeyCode::Down if self.mode == Mode::Command => {
                if let Some(line) = self.history.newer() {
                    self.input = line.to_owned();
                }
            }
            KeyCode::Tab if self.mode == Mode::Command => self.complete(),
            KeyCode::Backspace => {
                self.input.pop();
            }
            KeyCode::Char('u') if ctrl => self.input.zeroize(),
            KeyCode::Char('d') if ctrl && self.mode == Mode::Message => {
                return self.end_message();
            }
            KeyCode::Char(c) if !ctrl => self.input.push(c),
            KeyCode::Enter => {
                let actions = self.enter();
                if !actions.is_empty() {
                    // Whatever is sent, its reply must be seen: follow the tail again.
                    self.scroll = None;
                }
                return actions;
            }
            _ => {}
        }
        Vec::new()
    }

    /// Esc: closes a prompt, or leaves (sending QUIT first when connected).
    fn escape(&mut self) -> Vec<Action> {
        match self.mode {
            Mode::User { .. } | Mode::Password { .. } => {
                self.input.zeroize();
                self.drop_typed();
                self.mode = Mode::Command;
                self.flash = Some("AUTH cancelled; nothing was sent".to_owned());
                Vec::new()
            }
            Mode::SaslAnswer => {
                // RFC 4954 §4: a lone '*' cancels the exchange; QUIT here would be taken as
                // the answer.
                self.input.zeroize();
                self.flash = Some("AUTH cancelled with '*' (RFC 4954)".to_owned());
                self.send("*".to_owned(), OneTimeOverride::None)
            }
            Mode::Message if !self.leave_armed => {
                self.leave_armed = true;
                self.flash = Some(
                    "the message is not sent: a lone . sends it; Esc again leaves without it"
                        .to_owned(),
                );
                Vec::new()
            }
            _ => self.quit(),
        }
    }

    /// Leaves: QUIT first when connected (the engine answers Finished), at once otherwise.
    pub fn quit(&mut self) -> Vec<Action> {
        self.drop_typed();
        // Inside DATA or a SASL exchange a QUIT would be read as message text or as the
        // answer: leave without it (the server discards an unfinished message).
        let between_commands = self.status.phase == Phase::Command;
        if self.status.connected
            && between_commands
            && self.pending.is_none()
            && self.quitting.is_none()
        {
            self.quitting = Some(Instant::now());
            self.pending = Some(Pending {
                what: "the reply to QUIT".to_owned(),
                since: Instant::now(),
            });
            vec![Action::Quit]
        } else {
            self.should_exit = true;
            Vec::new()
        }
    }

    fn on_guard_key(&mut self, key: KeyEvent) -> Vec<Action> {
        let Mode::Guard(dialog) = &mut self.mode else {
            return Vec::new();
        };
        match key.code {
            KeyCode::Esc => {
                self.mode = Mode::Command;
                self.drop_typed();
                self.flash = Some("cancelled: nothing was sent".to_owned());
            }
            KeyCode::Backspace => {
                dialog.typed.pop();
            }
            KeyCode::Char(c) => dialog.typed.push(c),
            KeyCode::Enter => {
                let dialog = dialog.clone();
                if dialog.typed.is_empty() {
                    return self.guard_default(dialog);
                }
                if dialog.typed == dialog.override_word() {
                    let one_time = match dialog.refusal {
                        Refusal::Cleartext => OneTimeOverride::Cleartext,
                        Refusal::Unverified(_) => OneTimeOverride::Unverified,
                    };
                    self.mode = Mode::Command;
                    return match dialog.retry {
                        Retry::Auth(mechanism) => self.start_auth(mechanism, one_time),
                        Retry::Line(line) => self.send(line, one_time),
                        Retry::Answer(answer) => self.send_answer(answer, one_time),
                    };
                }
                if let Mode::Guard(d) = &mut self.mode {
                    d.hint = Some(format!(
                        "type exactly '{}' to override, or clear the field",
                        d.override_word()
                    ));
                    d.typed.clear();
                }
            }
            _ => {}
        }
        Vec::new()
    }

    /// Enter with nothing typed: STARTTLS first on cleartext (the safe way), cancel otherwise.
    fn guard_default(&mut self, dialog: GuardDialog) -> Vec<Action> {
        self.mode = Mode::Command;
        if let Retry::Answer(_) = dialog.retry {
            // The server still waits for a SASL answer: anything sent now (STARTTLS too)
            // would be taken as that answer. Cancel the exchange first (RFC 4954 §4).
            self.flash = Some(
                "AUTH cancelled with '*'; nothing secret was sent. STARTTLS next, then EHLO and AUTH"
                    .to_owned(),
            );
            return self.send_answer(Secret::new("*".to_owned()), OneTimeOverride::None);
        }
        match dialog.refusal {
            Refusal::Cleartext => {
                // Nothing is left in the input line: EHLO must come first inside TLS, and text
                // left there would be glued to whatever the user types next.
                let next = match &dialog.retry {
                    Retry::Auth(mechanism) => format!("AUTH {}", mechanism.name()),
                    Retry::Answer(_) => "AUTH".to_owned(),
                    Retry::Line(line) => match classify(line) {
                        CommandKind::Auth { mechanism, .. } if !mechanism.is_empty() => {
                            format!("AUTH {mechanism}")
                        }
                        _ => "AUTH".to_owned(),
                    },
                };
                self.flash = Some(format!(
                    "STARTTLS first; once TLS is up, EHLO again, then {next}"
                ));
                self.send("STARTTLS".to_owned(), OneTimeOverride::None)
            }
            Refusal::Unverified(_) => {
                self.flash = Some("cancelled: nothing was sent".to_owned());
                Vec::new()
            }
        }
    }

    fn enter(&mut self) -> Vec<Action> {
        self.flash = None;
        let line = std::mem::take(&mut self.input);
        match self.mode.clone() {
            Mode::User {
                mechanism,
                one_time,
            } => {
                if line.trim().is_empty() {
                    self.flash = Some("a user name is needed (Esc cancels)".to_owned());
                    return Vec::new();
                }
                self.mode = Mode::Password {
                    mechanism,
                    user: line,
                    one_time,
                };
                Vec::new()
            }
            Mode::Password {
                mechanism,
                user,
                one_time,
            } => {
                self.mode = Mode::Command;
                let secret = Secret::new(line);
                self.authenticate(mechanism, user, secret, one_time)
            }
            Mode::SaslAnswer => {
                if line.is_empty() && self.next_step_is_answer() {
                    // Step mode: the scenario's answer, as Enter on an empty line promised.
                    return self.next_step();
                }
                // Never into history: it is a credential. Sent as an answer, never as a line:
                // if the server has moved on, the engine refuses rather than send it as a command.
                self.send_answer(Secret::new(line), OneTimeOverride::None)
            }
            Mode::Message => {
                if line == "." {
                    return self.end_message();
                }
                if line.is_empty() && self.editor.is_empty() && self.next_step_is_message() {
                    // Step mode: the scenario's message, as Enter on an empty line promised.
                    return self.next_step();
                }
                self.editor.push(line);
                Vec::new()
            }
            Mode::Guard(_) => Vec::new(),
            Mode::Command => {
                if line.trim().is_empty() {
                    return self.next_step();
                }
                if let Some(local) = line.strip_prefix(':') {
                    // Local commands are never sent; the known ones are kept for Up. An
                    // unknown one is not: it may be a secret typed at the wrong prompt.
                    if is_local_command(local.trim()) {
                        self.history.push(&line);
                    }
                    return self.local(local.trim());
                }
                if self.pending.is_some() {
                    self.input = line;
                    self.flash = Some("wait for the reply first (Esc leaves)".to_owned());
                    return Vec::new();
                }
                if !self.status.connected {
                    // Nothing can be sent: say so, and keep the line for after :reconnect.
                    self.input = line;
                    self.flash = Some("not connected: nothing was sent".to_owned());
                    return Vec::new();
                }
                // Kept for the history only once the engine says it crossed as a command.
                self.drop_typed();
                if may_remember(&line) {
                    self.typed = Some(line.clone());
                }
                let actions = self.submit(line);
                if !matches!(
                    self.mode,
                    Mode::User { .. } | Mode::Password { .. } | Mode::Guard(_)
                ) {
                    // Not waiting for a prompt: if no action took the line, it is not sent.
                    self.drop_typed();
                }
                actions
            }
        }
    }

    fn end_message(&mut self) -> Vec<Action> {
        self.input.zeroize();
        self.drop_typed();
        self.pending = Some(Pending {
            what: "the reply to the message".to_owned(),
            since: Instant::now(),
        });
        vec![Action::Message {
            lines: std::mem::take(&mut self.editor),
        }]
    }

    /// A command line typed or taken from a scenario: bare AUTH with a mechanism the tool
    /// can run goes through the guard and the credential prompt; anything else is sent.
    fn submit(&mut self, line: String) -> Vec<Action> {
        if let CommandKind::Auth {
            mechanism,
            has_initial_response: false,
        } = classify(&line)
            && let Some(mechanism) = Mechanism::from_name(&mechanism)
        {
            return self.start_auth(mechanism, OneTimeOverride::None);
        }
        self.send(line, OneTimeOverride::None)
    }

    /// Checks the guard before asking for a password: a refusal must come before the user
    /// types a secret, not after. The engine checks again when the credentials are sent.
    fn start_auth(&mut self, mechanism: Mechanism, one_time: OneTimeOverride) -> Vec<Action> {
        if !self.status.connected {
            self.flash = Some("not connected: use :reconnect".to_owned());
            return Vec::new();
        }
        if let Decision::Refuse(refusal) =
            guard::decide(&self.status.protection, self.policy, one_time)
        {
            self.open_guard(refusal.clone(), Retry::Auth(mechanism));
            return vec![Action::Record(EventKind::Guard(GuardOutcome::Refused(
                refusal,
            )))];
        }
        match (&self.preset_user, &self.preset_secret) {
            (Some(user), Some(secret)) => {
                let (user, secret) = (user.clone(), secret.clone());
                self.authenticate(mechanism, user, secret, one_time)
            }
            (Some(user), None) => {
                self.mode = Mode::Password {
                    mechanism,
                    user: user.clone(),
                    one_time,
                };
                Vec::new()
            }
            _ => {
                self.mode = Mode::User {
                    mechanism,
                    one_time,
                };
                Vec::new()
            }
        }
    }

    fn authenticate(
        &mut self,
        mechanism: Mechanism,
        user: String,
        secret: Secret,
        one_time: OneTimeOverride,
    ) -> Vec<Action> {
        // The bare AUTH line typed before the prompts, if this exchange came from one.
        self.in_flight = self.typed.take().map(|line| (line, true));
        self.pending = Some(Pending {
            what: format!("the reply to AUTH {}", mechanism.name()),
            since: Instant::now(),
        });
        vec![Action::Authenticate {
            mechanism,
            credentials: Credentials { user, secret },
            one_time,
        }]
    }

    fn send(&mut self, line: String, one_time: OneTimeOverride) -> Vec<Action> {
        // The typed line rides with this action only if it is what is being sent (the guard
        // dialog's STARTTLS, for one, is not the AUTH line that was typed).
        self.in_flight = match self.typed.take() {
            Some(typed) if typed == line => Some((typed, false)),
            Some(mut other) => {
                other.zeroize();
                None
            }
            None => None,
        };
        let verb = split_verb(&line).0;
        self.pending = Some(Pending {
            what: if self.mode == Mode::SaslAnswer {
                "the reply to the SASL answer".to_owned()
            } else {
                format!("the reply to {verb}")
            },
            since: Instant::now(),
        });
        vec![Action::Send { line, one_time }]
    }

    /// Sends an answer typed into the hidden prompt after a 334.
    fn send_answer(&mut self, answer: Secret, one_time: OneTimeOverride) -> Vec<Action> {
        self.drop_typed();
        self.pending = Some(Pending {
            what: "the reply to the SASL answer".to_owned(),
            since: Instant::now(),
        });
        vec![Action::SaslAnswer { answer, one_time }]
    }

    fn next_step(&mut self) -> Vec<Action> {
        if self.pending.is_some() {
            return Vec::new();
        }
        if self.player.is_some() && !self.status.connected {
            self.flash = Some("not connected: nothing was sent".to_owned());
            return Vec::new();
        }
        let Some(player) = &mut self.player else {
            return Vec::new();
        };
        if let Some(reason) = &player.halted {
            self.flash = Some(format!(
                "step mode stopped: {reason}; the rest of the scenario is not sent (:load restarts)"
            ));
            return Vec::new();
        }
        let Some(step) = player.scenario.steps.get(player.next).cloned() else {
            self.flash = Some("the scenario is finished".to_owned());
            return Vec::new();
        };
        if matches!(step.action, StepAction::Message(_)) && self.status.phase != Phase::Message {
            // DATA was not answered 354: message lines now would be taken as commands.
            self.halt_player("DATA was not accepted, so the message is not sent");
            return Vec::new();
        }
        let Some(player) = &mut self.player else {
            return Vec::new();
        };
        player.next += 1;
        player.awaiting = step.expect.clone();
        player.in_flight = true;
        match step.action {
            // A written-out SASL answer carries credentials: it goes as an answer, which the
            // engine sends only while the server waits for one, never as a visible command.
            StepAction::Command(line) if step.sasl_answer => {
                self.send_answer(Secret::new(line), OneTimeOverride::None)
            }
            StepAction::Command(line) => self.submit(line),
            StepAction::Message(lines) => {
                self.pending = Some(Pending {
                    what: "the reply to the message".to_owned(),
                    since: Instant::now(),
                });
                vec![Action::Message { lines }]
            }
        }
    }

    /// Whether the next step of a loaded scenario answers a SASL challenge.
    fn next_step_is_answer(&self) -> bool {
        self.player.as_ref().is_some_and(|player| {
            player
                .scenario
                .steps
                .get(player.next)
                .is_some_and(|step| step.sasl_answer)
        })
    }

    /// Whether the next step of a loaded scenario is the message after DATA.
    fn next_step_is_message(&self) -> bool {
        self.player.as_ref().is_some_and(|player| {
            matches!(
                player
                    .scenario
                    .steps
                    .get(player.next)
                    .map(|step| &step.action),
                Some(StepAction::Message(_))
            )
        })
    }

    fn local(&mut self, command: &str) -> Vec<Action> {
        let (name, argument) = match command.split_once(char::is_whitespace) {
            Some((name, rest)) => (name, rest.trim()),
            None => (command, ""),
        };
        let file_needed =
            |what: &str| format!(":{what} needs a file name, e.g. :{what} session.smtp");
        match name {
            "help" | "h" => self.overlay = Some(Overlay::Help),
            "cert" => self.overlay = Some(Overlay::Certificate),
            "explain" => self.explain = !self.explain,
            "clear" => {
                self.first_row = self.rows.len();
                self.scroll = None;
            }
            "quit" | "q" => return self.quit(),
            "reconnect" => {
                self.drop_typed();
                self.mode = Mode::Command;
                self.pending = Some(Pending {
                    what: "the greeting".to_owned(),
                    since: Instant::now(),
                });
                return vec![Action::Reconnect];
            }
            "next" => return self.next_step(),
            "save" if argument.is_empty() => self.flash = Some(file_needed("save")),
            "save" => {
                let text = render_plain(&self.events);
                self.flash = Some(write_file(argument, &text, "transcript (redacted)"));
            }
            "record" if argument.is_empty() => self.flash = Some(file_needed("record")),
            "record" => {
                let text = record::scenario(&self.events);
                self.flash = Some(write_file(argument, &text, "scenario"));
            }
            "load" if argument.is_empty() => self.flash = Some(file_needed("load")),
            "load" => match Scenario::load(Path::new(argument)) {
                Ok(scenario) => self.load_script(scenario),
                Err(error) => self.flash = Some(error.to_string()),
            },
            other => {
                self.flash = Some(format!(
                    "unknown local command :{other}; local commands: {}",
                    LOCAL.join(" ")
                ));
            }
        }
        Vec::new()
    }

    /// Tab: completes the verb, an advertised extension, an AUTH mechanism or a local command;
    /// pressing it again cycles through the candidates.
    fn complete(&mut self) {
        if let Some((_, candidates, index)) = &mut self.completion {
            *index = (*index + 1) % candidates.len().max(1);
            if let Some(candidate) = candidates.get(*index) {
                self.input = candidate.clone();
            }
            return;
        }
        let typed = self.input.clone();
        let upper = typed.to_ascii_uppercase();
        let mut candidates: Vec<String> = if typed.starts_with(':') {
            LOCAL
                .iter()
                .filter(|c| c.starts_with(typed.as_str()))
                .map(|c| (*c).to_owned())
                .collect()
        } else if let Some(prefix) = upper.strip_prefix("AUTH ") {
            self.status
                .auth_mechanisms
                .iter()
                .filter(|m| m.starts_with(prefix.trim()))
                .map(|m| format!("AUTH {m}"))
                .collect()
        } else if let Some(space) = typed.rfind(' ')
            && (upper.starts_with("MAIL FROM:") || upper.starts_with("RCPT TO:"))
        {
            // Parameters the server advertised, after the address.
            let (head, partial) = typed.split_at(space + 1);
            let partial = partial.to_ascii_uppercase();
            let mail = upper.starts_with("MAIL");
            self.status
                .extensions
                .iter()
                .flat_map(|ext| parameters(ext, mail))
                .filter(|p| p.starts_with(&partial))
                .map(|p| format!("{head}{p}"))
                .collect()
        } else {
            // Verbs only: most EHLO keywords (SIZE, PIPELINING, 8BITMIME...) are not commands.
            VERBS
                .iter()
                .map(|v| (*v).to_owned())
                .chain(
                    self.status
                        .extensions
                        .iter()
                        .filter(|e| matches!(e.as_str(), "EXPN" | "ATRN"))
                        .cloned(),
                )
                .filter(|c| c.starts_with(&upper))
                .collect()
        };
        candidates.dedup();
        if let Some(first) = candidates.first() {
            self.input = first.clone();
            self.completion = Some((typed, candidates, 0));
        }
    }

    /// What Enter will do, in words, for the line under the input.
    pub fn enter_hint(&self) -> String {
        match &self.mode {
            Mode::User { mechanism, .. } => {
                format!(
                    "AUTH {}: type the user name, Enter (Esc cancels)",
                    mechanism.name()
                )
            }
            Mode::Password { user, one_time, .. } => match self.auth_override(*one_time) {
                Some(how) => format!("password for {user}: hidden; Enter sends it {how}"),
                None => format!(
                    "password for {user}: hidden, never shown or stored; Enter runs AUTH (Esc cancels)"
                ),
            },
            Mode::SaslAnswer if self.input.is_empty() && self.next_step_is_answer() => {
                let line = self
                    .player
                    .as_ref()
                    .and_then(|player| player.scenario.steps.get(player.next))
                    .map_or(0, |step| step.line);
                format!("send step line {line}: the scenario's answer to the 334 (hidden)")
            }
            Mode::SaslAnswer => match self.auth_override(OneTimeOverride::None) {
                Some(how) => format!("answer to the 334 (hidden, not stored), sent {how}"),
                None => "answer to the server's 334 challenge (hidden, not stored)".to_owned(),
            },
            Mode::Message => {
                if self.input.is_empty()
                    && self.editor.is_empty()
                    && let Some(player) = &self.player
                    && let Some(step) = player.scenario.steps.get(player.next)
                    && let StepAction::Message(lines) = &step.action
                {
                    return format!(
                        "send step line {}: the message ({} lines) and the final dot; or type your own",
                        step.line,
                        lines.len()
                    );
                }
                format!(
                    "message line {} (sent when the message ends); a line with only . or Ctrl-D ends it",
                    self.editor.len() + 1
                )
            }
            Mode::Guard(_) => "the guard dialog decides".to_owned(),
            Mode::Command => {
                if let Some(local) = self.input.strip_prefix(':') {
                    return format!("run local command :{} (not sent)", local.trim());
                }
                if !self.status.connected && self.pending.is_none() {
                    return "not connected: :reconnect opens a new session, Esc leaves".to_owned();
                }
                if self.input.trim().is_empty() {
                    if let Some(player) = &self.player
                        && let Some(step) = player.scenario.steps.get(player.next)
                    {
                        let what = match &step.action {
                            // A credential: never on screen.
                            StepAction::Command(_) if step.sasl_answer => {
                                "its answer to a SASL challenge (hidden), sent only while the \
                                 server waits for one"
                                    .to_owned()
                            }
                            StepAction::Command(line) => format!("C: {line}"),
                            StepAction::Message(lines) => {
                                format!("the message ({} lines) and the final dot", lines.len())
                            }
                        };
                        return format!("send step line {}: {what}", step.line);
                    }
                    return "type an SMTP command (Tab completes, F1 help)".to_owned();
                }
                if self.pending.is_some() {
                    return "waiting for the reply; Enter is held".to_owned();
                }
                let security = self.status.security.marker();
                match classify(&self.input) {
                    CommandKind::StartTls => "send STARTTLS; a 220 upgrades to TLS".to_owned(),
                    CommandKind::Auth {
                        mechanism,
                        has_initial_response,
                    } => match guard::decide(
                        &self.status.protection,
                        self.policy,
                        OneTimeOverride::None,
                    ) {
                        Decision::Refuse(Refusal::Cleartext) => {
                            "AUTH would be stopped by the credential guard (no TLS)".to_owned()
                        }
                        Decision::Refuse(Refusal::Unverified(_)) => {
                            "AUTH would be stopped by the credential guard (certificate not verified)"
                                .to_owned()
                        }
                        _ => {
                            let prompted = !has_initial_response
                                && Mechanism::from_name(&mechanism).is_some();
                            match (self.auth_override(OneTimeOverride::None), prompted) {
                                (Some(how), true) => {
                                    format!("AUTH {mechanism}: user and password go {how}")
                                }
                                (Some(how), false) => format!("send AUTH {mechanism} {how}"),
                                (None, true) => format!(
                                    "AUTH {mechanism}: asks user and password (hidden), then authenticates"
                                ),
                                (None, false) => format!(
                                    "send AUTH {mechanism} over {security} (not kept in history)"
                                ),
                            }
                        }
                    },
                    CommandKind::Data => "send DATA; a 354 opens the message editor".to_owned(),
                    CommandKind::Quit => "send QUIT".to_owned(),
                    _ => format!("send over {security}"),
                }
            }
        }
    }

    /// How credentials sent now would cross when only an override lets them (a standing
    /// flag, or `one_time` given in the guard dialog), in words for the hints; `None` when
    /// they would cross verified TLS, or be refused.
    fn auth_override(&self, one_time: OneTimeOverride) -> Option<String> {
        let Decision::AllowedByOverride(refusal) =
            guard::decide(&self.status.protection, self.policy, one_time)
        else {
            return None;
        };
        let standing = match refusal {
            Refusal::Cleartext => self.policy.allow_cleartext_auth,
            Refusal::Unverified(_) => self.policy.allow_unverified_auth,
        };
        let by = if standing {
            super::ui::standing_flag(&refusal)
        } else {
            "your override"
        };
        Some(match refusal {
            Refusal::Cleartext => format!("IN CLEARTEXT ({by})"),
            Refusal::Unverified(_) => format!("to an UNVERIFIED peer ({by})"),
        })
    }
}

/// Whether `command` (after the `:`) is one of the local commands.
fn is_local_command(command: &str) -> bool {
    let name = command.split_whitespace().next().unwrap_or_default();
    matches!(name, "h" | "q")
        || LOCAL
            .iter()
            .any(|local| local.trim_start_matches(':').trim_end() == name)
}

/// The MAIL FROM (`mail`) or RCPT TO parameters an advertised extension allows, for Tab.
fn parameters(extension: &str, mail: bool) -> &'static [&'static str] {
    match (extension, mail) {
        ("SIZE", true) => &["SIZE="],
        ("8BITMIME", true) => &["BODY=8BITMIME"],
        ("BINARYMIME", true) => &["BODY=BINARYMIME"],
        ("SMTPUTF8", true) => &["SMTPUTF8"],
        ("REQUIRETLS", true) => &["REQUIRETLS"],
        ("DSN", true) => &["RET=HDRS", "RET=FULL", "ENVID="],
        ("DSN", false) => &["NOTIFY=SUCCESS,FAILURE", "NOTIFY=NEVER", "ORCPT=rfc822;"],
        _ => &[],
    }
}

fn write_file(path: &str, text: &str, what: &str) -> String {
    use std::io::Write as _;
    let written = crate::transcript::create_private_file(Path::new(path))
        .and_then(|mut file| file.write_all(text.as_bytes()));
    match written {
        Ok(()) => format!("{what} written to {path}"),
        Err(error) => format!("cannot write {path}: {error}"),
    }
}
