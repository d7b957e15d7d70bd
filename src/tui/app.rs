//! The UI state and everything that changes it: engine messages and key presses in,
//! [`Action`]s for the engine out. No terminal and no I/O besides the files of the local
//! commands, so tests drive it directly.
//!
//! The state is made of parts, each with its own keys: the input line ([`InputLine`]: history,
//! completion, hidden entry), the guard dialog ([`GuardDialog`]), the message editor
//! ([`MessageEditor`]), the step player ([`StepPlayer`]) and the transcript view
//! ([`TranscriptView`]). Keys are looked up in the one command table ([`commands`]), which the
//! help screen is generated from; `App` routes what they ask for to the part it concerns and
//! turns the outcome into actions.

use std::collections::VecDeque;
use std::time::Instant;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, MouseEvent};

use super::commands::{self, Command, Situation};
use super::editor::{Entered, MessageEditor, Pasted};
use super::engine::{Action, Crossed, Done, EngineMsg, Retry, Status, debug_line};
use super::group::{GroupChoice, PastedGroup};
use super::guard::{GuardChoice, GuardDialog};
use super::history::History;
use super::input::{InputLine, Prompt};
use super::player::StepPlayer;
use super::record::{self, Recording};
use super::view::TranscriptView;
use crate::guard::{self, Decision, GuardPolicy, OneTimeOverride, Refusal};
use crate::proto::command::{CommandKind, classify, split_verb};
use crate::proto::escape::escape_str;
use crate::proto::reply::Reply;
use crate::proto::sasl::Mechanism;
use crate::scenario::{Action as StepAction, Scenario};
use crate::secret::{Credentials, Secret};
use crate::session::Phase;
use crate::transcript::{Event, EventKind, GuardOutcome, Security, render_plain};

/// Which part has the keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The input line, for what the prompt says.
    Line(Prompt),
    /// After 354: the message editor (the input line holds the line being typed).
    Message(MessageEditor),
    /// The credential guard stopped a request; the dialog decides what happens next.
    Guard(GuardDialog),
    /// Several command lines were pasted: the first line alone (the default), or all of them
    /// as one pipelined group.
    Group(PastedGroup),
}

impl Mode {
    /// The command line: commands to the server, or `:` local commands.
    pub const COMMAND: Self = Self::Line(Prompt::Command);

    /// Whether the input line holds a secret now (a password, a SASL answer).
    pub fn hides_input(&self) -> bool {
        matches!(self, Self::Line(prompt) if prompt.hides())
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

impl Overlay {
    /// Whether `key` closes the view.
    fn closes(key: KeyEvent) -> bool {
        matches!(
            key.code,
            KeyCode::Esc | KeyCode::F(1) | KeyCode::F(3) | KeyCode::Enter | KeyCode::Char('q')
        )
    }
}

/// The command in flight, for the running timer.
#[derive(Debug, Clone)]
pub struct Pending {
    /// What we wait for, in words.
    pub what: String,
    /// When it was sent.
    pub since: Instant,
}

impl Pending {
    fn now(what: impl Into<String>) -> Option<Self> {
        Some(Self {
            what: what.into(),
            since: Instant::now(),
        })
    }
}

/// The whole UI state. Rendering is a function of it (see `ui::render`).
pub struct App {
    /// The session as the engine last reported it.
    pub status: Status,
    /// The transcript and where it is scrolled.
    pub view: TranscriptView,
    /// The input line.
    pub input: InputLine,
    /// Which part has the keys.
    pub mode: Mode,
    /// A step-mode scenario.
    pub player: Option<StepPlayer>,
    /// Help or certificate view.
    pub overlay: Option<Overlay>,
    /// Whether the explain pane is shown.
    pub explain: bool,
    /// The command in flight.
    pub pending: Option<Pending>,
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
    /// Command lines typed while a reply was pending, sent in order as replies come.
    pub queued: VecDeque<String>,
    /// `:record FILE` in progress.
    pub recording: Option<Recording>,
    /// The guard dialog's safe way, running: STARTTLS, EHLO, then the AUTH asked for.
    pub recovery: Option<Recovery>,
    /// The practice server's own log, in `smtptui demo`.
    pub lab_log: Option<LabLog>,
    /// How far the explain pane is scrolled, and for which event (another event starts at
    /// its top).
    pub explain_scroll: (Option<usize>, usize),
    /// How far the help or certificate view is scrolled.
    pub overlay_scroll: usize,
}

/// How many command lines may wait for the reply in flight.
pub const MAX_QUEUED: usize = 16;

/// How many lines of the practice server's log are kept.
pub const LAB_LOG_LINES: usize = 2000;

/// The practice server's log as `smtptui demo` shows it beside the transcript: what the
/// server received and answered, each line marked plain or tls, and its verdict on each
/// session.
#[derive(Debug, Clone, Default)]
pub struct LabLog {
    /// The newest lines, oldest first.
    pub lines: VecDeque<String>,
    /// Whether the pane is shown.
    pub shown: bool,
}

impl LabLog {
    /// Adds a line, dropping the oldest past [`LAB_LOG_LINES`].
    pub fn push(&mut self, line: String) {
        if self.lines.len() == LAB_LOG_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }
}

/// What comes after each step of the guard dialog's safe way.
#[derive(Clone, PartialEq, Eq)]
pub enum AfterTls {
    /// Run AUTH with this mechanism (the prompt asks user and password).
    Auth(Mechanism),
    /// Send this AUTH line again (it carries its credentials inline).
    Line(String),
    /// The mechanism is not known (the exchange was typed by hand): say that AUTH is next.
    Tell,
}

impl std::fmt::Debug for AfterTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Auth(mechanism) => f.debug_tuple("Auth").field(mechanism).finish(),
            Self::Line(line) => f.debug_tuple("Line").field(&debug_line(line)).finish(),
            Self::Tell => f.write_str("Tell"),
        }
    }
}

impl AfterTls {
    /// The step, in words.
    fn describe(&self) -> String {
        match self {
            Self::Auth(mechanism) => format!("AUTH {}", mechanism.name()),
            Self::Line(line) => match classify(line) {
                CommandKind::Auth { mechanism, .. } if !mechanism.is_empty() => {
                    format!("AUTH {mechanism} again")
                }
                _ => "AUTH again".to_owned(),
            },
            Self::Tell => "you run AUTH again".to_owned(),
        }
    }
}

/// The guard dialog's safe way, step by step: each step starts when the reply to the one
/// before came as it should, and a reply that did not stops it with the reason shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// `*` went to cancel a SASL exchange; STARTTLS is next.
    Cancelling {
        /// The EHLO line to send inside TLS.
        ehlo: String,
    },
    /// STARTTLS went; EHLO is next, once TLS is up.
    StartTls {
        /// The EHLO line to send inside TLS.
        ehlo: String,
        /// What follows EHLO.
        then: AfterTls,
        /// The AUTH line typed (without credentials), for the history once its exchange runs.
        typed: Option<String>,
    },
    /// EHLO went inside TLS; the AUTH is next.
    Ehlo {
        /// What follows EHLO.
        then: AfterTls,
        /// The AUTH line typed, as above.
        typed: Option<String>,
    },
}

impl Recovery {
    /// The steps left, in words, for the input line's title.
    fn describe(&self) -> String {
        match self {
            Self::Cancelling { .. } => {
                "cancelling the exchange, then STARTTLS, EHLO; then you run AUTH".to_owned()
            }
            Self::StartTls { then, .. } => {
                format!("STARTTLS sent; then EHLO, then {}", then.describe())
            }
            Self::Ehlo { then, .. } => format!("EHLO sent inside TLS; then {}", then.describe()),
        }
    }
}

impl std::fmt::Debug for App {
    /// Shows the state without the input line while it holds a password or SASL answer, and
    /// without the transcript (it is large, and shown on screen already).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let input = if self.mode.hides_input() {
            format!("<{} hidden characters>", self.input.text().chars().count())
        } else {
            self.input.text().to_owned()
        };
        f.debug_struct("App")
            .field("status", &self.status)
            .field("events", &self.view.events.len())
            .field("input", &input)
            .field("mode", &self.mode)
            .field("player", &self.player)
            .field("overlay", &self.overlay)
            .field("pending", &self.pending)
            .field("flash", &self.flash)
            .field("policy", &self.policy)
            .field("preset_user", &self.preset_user)
            .field("preset_secret", &self.preset_secret)
            .field("queued", &self.queued.len())
            .field("recording", &self.recording)
            .field("recovery", &self.recovery)
            .finish_non_exhaustive()
    }
}

impl App {
    /// A fresh UI for `target`, before the engine has said anything.
    pub fn new(target: String, history: History) -> Self {
        Self {
            status: Status::disconnected(target),
            view: TranscriptView::default(),
            input: InputLine::new(history),
            mode: Mode::COMMAND,
            player: None,
            overlay: None,
            explain: false,
            pending: Pending::now("the greeting"),
            flash: None,
            colour: true,
            policy: GuardPolicy::default(),
            preset_user: None,
            preset_secret: None,
            should_exit: false,
            quitting: None,
            dirty: true,
            queued: VecDeque::new(),
            recording: None,
            recovery: None,
            lab_log: None,
            explain_scroll: (None, 0),
            overlay_scroll: 0,
        }
    }

    /// The lines of the message being written; empty outside the message editor.
    pub fn editor(&self) -> &[String] {
        match &self.mode {
            Mode::Message(editor) => editor.lines(),
            _ => &[],
        }
    }

    /// Loads a scenario in step mode: each Enter on an empty line sends its next line.
    pub fn load_script(&mut self, scenario: Scenario) {
        let player = StepPlayer::new(scenario);
        self.flash = Some(player.loaded_message());
        self.player = Some(player);
        self.dirty = true;
    }

    /// Adds a note of the UI's own (not from the engine) to the transcript.
    pub fn note(&mut self, text: impl Into<String>) {
        self.view.push_note(EventKind::Note(text.into()));
        self.dirty = true;
    }

    /// Runs `write` on the recording in progress, if any; a failure stops it, saying why.
    fn record_with(&mut self, write: impl FnOnce(&mut Recording) -> std::io::Result<()>) {
        if let Some(recording) = &mut self.recording
            && let Err(error) = write(recording)
        {
            self.flash = Some(format!(
                "recording stopped: cannot write {}: {error}",
                recording.path().display()
            ));
            self.recording = None;
        }
    }

    /// Appends an event of the session and its display rows; a recording in progress gets its
    /// lines.
    pub fn push_event(&mut self, event: Event) {
        self.view.push(event);
        self.dirty = true;
        if let (Some(recording), Some(event)) = (&mut self.recording, self.view.events.last())
            && let Err(error) = recording.add(event)
        {
            self.flash = Some(format!(
                "recording stopped: cannot write {}: {error}",
                recording.path().display()
            ));
            self.recording = None;
        }
    }

    // -------------------------------------------------------------------------------------
    // The engine
    // -------------------------------------------------------------------------------------

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

    /// Opens and closes the message editor and the hidden answer prompt as the server's
    /// phase changes.
    fn follow_phase(&mut self) {
        match (self.status.phase, &self.mode) {
            (Phase::Message, Mode::Line(Prompt::Command)) => {
                self.mode = Mode::Message(MessageEditor::default());
            }
            (Phase::SaslChallenge, Mode::Line(Prompt::Command)) => {
                self.mode = Mode::Line(Prompt::SaslAnswer);
            }
            (Phase::Command, Mode::Line(Prompt::SaslAnswer)) => {
                // The exchange ended while an answer was being typed: what was typed is a
                // secret and is wiped, never left to be sent as a command.
                self.input.clear();
                self.mode = Mode::COMMAND;
                self.flash = Some(
                    "the server ended the SASL exchange; what you typed was discarded, nothing sent"
                        .to_owned(),
                );
            }
            (Phase::Command, Mode::Message(_)) => self.mode = Mode::COMMAND,
            _ => {}
        }
    }

    fn on_done(&mut self, done: Done) -> Vec<Action> {
        // A transcript record finishes nothing that waits: the action in flight (if any)
        // still does.
        if let Done::Recorded = done {
            return Vec::new();
        }
        self.record_with(super::record::Recording::settled);
        let outcome = match &done {
            Done::Reply { reply, command, .. } => Some((command.clone(), reply.code.value())),
            _ => None,
        };
        let mut actions = self.settle(done);
        if self.recovery.is_some() {
            actions.extend(self.advance_recovery(outcome));
        }
        if self.pending.is_none() {
            actions.extend(self.send_queued());
        }
        actions
    }

    /// Takes the end of the action in flight.
    fn settle(&mut self, done: Done) -> Vec<Action> {
        self.pending = None;
        let stepping = self.player.as_mut().is_some_and(StepPlayer::settle);
        match done {
            Done::Reply {
                reply,
                command,
                crossed,
            } => {
                self.input.settle(crossed);
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
                self.input.settle(Crossed::default());
                if stepping {
                    self.halt_player("the credential guard refused the step; nothing was sent");
                }
                self.open_guard(refusal, retry);
                Vec::new()
            }
            Done::Failed { reason, crossed } => {
                self.input.settle(crossed);
                if let Some(player) = &mut self.player {
                    player.forget_expectation();
                }
                if stepping {
                    self.halt_player(&format!("the step failed ({reason})"));
                }
                Vec::new()
            }
            Done::Queued => {
                self.input.settle(Crossed::default());
                Vec::new()
            }
            Done::Recorded => Vec::new(),
        }
    }

    /// The next step of the guard dialog's safe way, from how the last one ended (`outcome`:
    /// the verb answered and the reply code; `None` when it failed or was refused).
    fn advance_recovery(&mut self, outcome: Option<(Option<String>, u16)>) -> Vec<Action> {
        let Some(recovery) = self.recovery.take() else {
            return Vec::new();
        };
        let (verb, code) = match outcome {
            Some((verb, code)) => (verb.unwrap_or_default(), code),
            None => {
                self.flash = Some(
                    "the safe way stopped: the last step failed (see the transcript); nothing more was sent"
                        .to_owned(),
                );
                return Vec::new();
            }
        };
        match recovery {
            Recovery::Cancelling { ehlo } => {
                self.recovery = Some(Recovery::StartTls {
                    ehlo,
                    then: AfterTls::Tell,
                    typed: None,
                });
                self.send("STARTTLS".to_owned(), OneTimeOverride::None)
            }
            Recovery::StartTls { ehlo, then, typed } => {
                if verb == "STARTTLS" && code == 220 && self.status.security == Security::Tls {
                    self.recovery = Some(Recovery::Ehlo { then, typed });
                    return self.send(ehlo, OneTimeOverride::None);
                }
                // The STARTTLS refusal message says what that means; say what was not done.
                let said = self.flash.take().unwrap_or_default();
                self.flash = Some(format!(
                    "{}the safe way stopped after STARTTLS: no EHLO and no AUTH were sent",
                    if said.is_empty() {
                        String::new()
                    } else {
                        format!("{said}; ")
                    }
                ));
                Vec::new()
            }
            Recovery::Ehlo { then, typed } => {
                if !(verb == "EHLO" && code == 250) {
                    self.flash = Some(format!(
                        "the safe way stopped: EHLO inside TLS got {code}; AUTH was not sent"
                    ));
                    return Vec::new();
                }
                match then {
                    AfterTls::Auth(mechanism) => {
                        self.flash = Some(format!(
                            "TLS is up and EHLO answered: AUTH {} now",
                            mechanism.name()
                        ));
                        if let Some(typed) = typed {
                            self.input.hold(&typed);
                        }
                        self.start_auth(mechanism, OneTimeOverride::None)
                    }
                    AfterTls::Line(line) => self.send(line, OneTimeOverride::None),
                    AfterTls::Tell => {
                        self.flash = Some(
                            "TLS is up and EHLO answered: type your AUTH command again".to_owned(),
                        );
                        Vec::new()
                    }
                }
            }
        }
    }

    /// The EHLO line to send inside TLS: the last EHLO (or HELO) sent on this connection with
    /// its name, as RFC 3207 asks the client to start over; `EHLO localhost` if none was.
    fn ehlo_line(&self) -> String {
        self.view
            .events
            .iter()
            .rev()
            .take_while(|event| !matches!(event.kind, EventKind::Connecting { .. }))
            .find_map(|event| match &event.kind {
                EventKind::Sent {
                    text,
                    kind: crate::transcript::SentKind::Command,
                    ..
                } => {
                    let (verb, rest) = split_verb(text);
                    matches!(verb.as_str(), "EHLO" | "HELO")
                        .then(|| format!("EHLO {}", rest.trim()))
                        .filter(|line| line.len() > 5)
                }
                _ => None,
            })
            .unwrap_or_else(|| "EHLO localhost".to_owned())
    }

    fn check_expectation(&mut self, reply: &Reply) -> Vec<Action> {
        let Some((event, halted)) = self.player.as_mut().and_then(|p| p.check(reply)) else {
            return Vec::new();
        };
        if halted.is_some() {
            self.flash = halted;
        }
        vec![Action::Record(event)]
    }

    /// Ends step mode with the reason shown; `:load` starts it again.
    fn halt_player(&mut self, reason: &str) {
        if let Some(player) = &mut self.player {
            self.flash = Some(player.halt(reason));
        }
    }

    fn open_guard(&mut self, refusal: Refusal, retry: Retry) {
        // A step refused before it left (the UI's own pre-check of a bare AUTH) ends stepping
        // as a refusal from the engine does.
        if self.player.as_ref().is_some_and(StepPlayer::in_flight) {
            self.halt_player("the credential guard refused the step; nothing was sent");
        }
        self.mode = Mode::Guard(GuardDialog::new(refusal, retry));
    }

    // -------------------------------------------------------------------------------------
    // The terminal
    // -------------------------------------------------------------------------------------

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

    /// Takes the terminal events that arrived together. A burst of typed characters with a
    /// line break in the middle is a paste from a terminal without bracketed paste: it is taken
    /// as the same paste ([`App::on_paste`]), so its line breaks never send commands one after
    /// the other.
    pub fn on_terminal_batch(&mut self, events: Vec<crossterm::event::Event>) -> Vec<Action> {
        if let Some(text) = pasted_text(&events) {
            return self.on_paste(&text);
        }
        let mut actions = Vec::new();
        for event in events {
            actions.extend(self.on_terminal(event));
            if self.should_exit {
                break;
            }
        }
        actions
    }

    /// Takes pasted text (bracketed paste). In the message editor every pasted line is a
    /// message line (a lone `.` ends the message); elsewhere only the first line is kept, so a
    /// pasted line break never sends a command, nor glues two commands into one line.
    pub fn on_paste(&mut self, text: &str) -> Vec<Action> {
        self.dirty = true;
        self.input.end_completion();
        match &mut self.mode {
            Mode::Guard(_) => {
                self.flash = Some("the guard dialog takes typed keys only".to_owned());
                Vec::new()
            }
            Mode::Message(editor) => match editor.paste(self.input.take(), text) {
                Pasted::Open { rest } => {
                    self.input.restore(rest);
                    Vec::new()
                }
                Pasted::End { unused } => {
                    if unused > 0 {
                        self.flash = Some(format!(
                            "the message ended at the pasted lone '.'; {unused} line(s) after it were not used"
                        ));
                    }
                    self.end_message()
                }
            },
            Mode::Group(_) => {
                self.flash = Some("the pasted lines wait for your choice first".to_owned());
                Vec::new()
            }
            Mode::Line(prompt) => {
                // On an empty command line, with nothing in flight, several pasted commands
                // may go as one pipelined group: the dialog asks. Anywhere else the first
                // line is kept, as always.
                let ready = *prompt == Prompt::Command
                    && self.input.is_empty()
                    && self.status.connected
                    && self.status.phase == Phase::Command
                    && self.pending.is_none()
                    && self.recovery.is_none();
                let advertised = self.status.extensions.iter().any(|e| e == "PIPELINING");
                if ready && let Some(group) = PastedGroup::from_paste(text, advertised) {
                    self.mode = Mode::Group(group);
                    return Vec::new();
                }
                self.keep_first_pasted_line(text);
                Vec::new()
            }
        }
    }

    /// Puts the first pasted line on the input line, and says what became of the others.
    fn keep_first_pasted_line(&mut self, text: &str) {
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let mut lines = text.split('\n');
        self.input.push_str(lines.next().unwrap_or_default());
        let more = lines.filter(|l| !l.is_empty()).count();
        if more > 0 {
            self.flash = Some(format!(
                "pasted {} lines: only the first was kept; commands go one at a time",
                more + 1
            ));
        }
    }

    /// The pasted-group dialog decided.
    fn on_group_choice(&mut self, choice: GroupChoice) -> Vec<Action> {
        if choice == GroupChoice::Undecided {
            return Vec::new();
        }
        let Mode::Group(group) = std::mem::replace(&mut self.mode, Mode::COMMAND) else {
            return Vec::new();
        };
        match choice {
            GroupChoice::Undecided => Vec::new(),
            GroupChoice::Drop => {
                self.flash = Some(format!(
                    "the {} pasted lines were dropped; nothing was sent",
                    group.lines.len()
                ));
                Vec::new()
            }
            GroupChoice::FirstLine => {
                self.keep_first_pasted_line(&group.lines.join("\n"));
                Vec::new()
            }
            GroupChoice::Send { force } => {
                if !self.status.connected || self.pending.is_some() {
                    self.flash = Some("not sent: the session is busy or closed".to_owned());
                    return Vec::new();
                }
                let count = group.lines.len();
                self.pending = Pending::now(format!("the {count} replies to the group"));
                self.record_with(|recording| recording.expect_group(count));
                self.view.follow();
                vec![Action::Pipeline {
                    lines: group.lines,
                    force,
                }]
            }
        }
    }

    /// Scrolls with the mouse wheel.
    pub fn on_mouse(&mut self, mouse: MouseEvent) {
        self.dirty = true;
        self.view.on_mouse(mouse);
    }

    /// What the keys can ask for now, for the command table.
    fn situation(&self) -> Situation {
        Situation {
            command_line: self.mode == Mode::COMMAND,
            message: matches!(self.mode, Mode::Message(_)),
            empty: self.input.is_empty(),
        }
    }

    /// Takes one key press.
    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Action> {
        self.dirty = true;
        let command = commands::lookup(key, self.situation());
        if command == Some(Command::LeaveNow) {
            self.should_exit = true;
            return Vec::new();
        }
        if key.code != KeyCode::Tab {
            self.input.end_completion();
        }
        if key.code != KeyCode::Esc
            && let Mode::Message(editor) = &mut self.mode
        {
            editor.disarm();
        }
        if self.overlay.is_some() {
            match key.code {
                KeyCode::Up => self.overlay_scroll = self.overlay_scroll.saturating_sub(1),
                KeyCode::Down => self.overlay_scroll += 1,
                KeyCode::PageUp => self.overlay_scroll = self.overlay_scroll.saturating_sub(10),
                KeyCode::PageDown => self.overlay_scroll += 10,
                KeyCode::Home => self.overlay_scroll = 0,
                _ if Overlay::closes(key) => self.overlay = None,
                _ => {}
            }
            // Past the end is clamped when drawn; keep the count near it.
            self.overlay_scroll = self.overlay_scroll.min(100);
            return Vec::new();
        }
        if let Mode::Guard(dialog) = &mut self.mode {
            let choice = dialog.on_key(key);
            return self.on_guard_choice(choice);
        }
        if let Mode::Group(group) = &self.mode {
            let choice = group.on_key(key);
            return self.on_group_choice(choice);
        }
        if self.input.on_key(key, command, &self.status) {
            return Vec::new();
        }
        match command {
            Some(command) => self.run(command, "", false),
            None => Vec::new(),
        }
    }

    /// Runs a command from a key or a `:` line (`argument` is what followed its name, `force`
    /// whether a `!` did).
    fn run(&mut self, command: Command, argument: &str, force: bool) -> Vec<Action> {
        if self.view.on_command(command) {
            return Vec::new();
        }
        let file_needed =
            |what: &str| format!(":{what} needs a file name, e.g. :{what} session.smtp");
        match command {
            Command::Submit => {
                let actions = self.enter();
                if !actions.is_empty() {
                    // Whatever is sent, its reply must be seen: follow the tail again.
                    self.view.follow();
                }
                return actions;
            }
            Command::Help => {
                self.overlay = Some(Overlay::Help);
                self.overlay_scroll = 0;
            }
            Command::Certificate if argument.is_empty() => {
                self.overlay = Some(Overlay::Certificate);
                self.overlay_scroll = 0;
            }
            Command::Certificate => {
                let pem: String = self
                    .status
                    .tls
                    .iter()
                    .flat_map(|info| &info.chain)
                    .filter_map(crate::tls::CertSummary::pem)
                    .collect();
                self.flash = Some(if pem.is_empty() {
                    "no certificate to save: the session has no TLS peer yet (STARTTLS first)"
                        .to_owned()
                } else {
                    use std::io::Write as _;
                    let path = record::expand_home(argument);
                    match record::create(&path, argument, force, "cert")
                        .and_then(|mut file| file.write_all(pem.as_bytes()))
                    {
                        Ok(()) => {
                            format!("peer certificate chain written to {} (PEM)", path.display())
                        }
                        Err(error) => format!("cannot write {}: {error}", path.display()),
                    }
                });
            }
            Command::Explain => self.explain = !self.explain,
            Command::Escape => return self.escape(),
            Command::LeaveNow => self.should_exit = true,
            Command::EndMessage => return self.end_message(),
            Command::SendFile => {
                self.flash = Some(
                    ":send-file FILE sends a message from a file in the message editor: send \
                     MAIL FROM, RCPT TO and DATA first, then type it at msg> after the 354"
                        .to_owned(),
                );
            }
            Command::Quit => return self.quit(),
            Command::Next => return self.next_step(),
            Command::Reconnect => {
                self.input.drop_held();
                self.drop_queue("reconnecting");
                self.recovery = None;
                if let Some(recording) = self.recording.take() {
                    self.flash = Some(format!(
                        "recording stopped at the reconnection ({} lines in {}): a scenario is one connection",
                        recording.lines(),
                        recording.path().display()
                    ));
                }
                self.mode = Mode::COMMAND;
                self.pending = Pending::now("the greeting");
                self.view.new_session(
                    "──────── :reconnect: a new session; times go on from the one before ────────"
                        .to_owned(),
                );
                return vec![Action::Reconnect];
            }
            Command::Save if argument.is_empty() => self.flash = Some(file_needed("save")),
            Command::Save => {
                let text = render_plain(&self.view.events);
                self.flash = Some(record::write_new(
                    argument,
                    force,
                    &text,
                    "transcript (redacted)",
                ));
            }
            Command::Record => self.record(argument, force),
            Command::Exercises => {
                let student = crate::lab::status::student_to_ask(
                    argument,
                    self.status.authenticated_as.as_deref(),
                    self.preset_user.as_deref(),
                );
                return vec![Action::Exercises { student }];
            }
            Command::Load if argument.is_empty() => self.flash = Some(file_needed("load")),
            Command::Load => match Scenario::load(&record::expand_home(argument)) {
                Ok(scenario) => self.load_script(scenario),
                Err(error) => self.flash = Some(error.to_string()),
            },
            Command::ExplainUp => self.scroll_explain(-1),
            Command::ExplainDown => self.scroll_explain(1),
            Command::LabLog => match &mut self.lab_log {
                Some(log) => log.shown = !log.shown,
                None => {
                    self.flash = Some(
                        "the practice server's log is shown in smtptui demo, where it runs in-process"
                            .to_owned(),
                    );
                }
            },
            // The input line's and the view's own, taken before.
            Command::Complete
            | Command::Older
            | Command::Newer
            | Command::CursorLeft
            | Command::CursorRight
            | Command::WordLeft
            | Command::WordRight
            | Command::LineStart
            | Command::LineEnd
            | Command::DeleteBack
            | Command::DeleteForward
            | Command::DeleteWordBack
            | Command::DeleteToStart
            | Command::DeleteToEnd
            | Command::PageUp
            | Command::PageDown
            | Command::RowUp
            | Command::RowDown
            | Command::Top
            | Command::Follow
            | Command::ClearTranscript => {}
        }
        Vec::new()
    }

    /// `:record FILE` starts a recording, `:record stop` ends it.
    fn record(&mut self, argument: &str, force: bool) {
        if argument == "stop" {
            self.flash = Some(match self.recording.take() {
                Some(recording) => format!(
                    "recording stopped: {} scenario lines in {}",
                    recording.lines(),
                    recording.path().display()
                ),
                None => "no recording to stop (:record FILE starts one)".to_owned(),
            });
            return;
        }
        if let Some(recording) = &self.recording {
            self.flash = Some(format!(
                "already recording to {}; :record stop ends it",
                recording.path().display()
            ));
            return;
        }
        if argument.is_empty() {
            self.flash = Some(
                ":record needs a file name, e.g. :record session.smtp (:record stop ends it)"
                    .to_owned(),
            );
            return;
        }
        // The scenario replays from the connection's start: the events of this connection
        // so far come first.
        let start = self
            .view
            .events
            .iter()
            .rposition(|event| matches!(event.kind, EventKind::Connecting { .. }))
            .unwrap_or(0);
        match Recording::start(argument, force, &self.view.events[start..]) {
            Ok(recording) => {
                self.flash = Some(format!(
                    "recording to {} from the start of this connection; :record stop ends it",
                    recording.path().display()
                ));
                self.recording = Some(recording);
            }
            Err(error) => {
                self.flash = Some(format!(
                    "cannot record to {}: {error}",
                    record::expand_home(argument).display()
                ));
            }
        }
    }

    /// Scrolls the explain pane by a page (`pages` negative is up).
    fn scroll_explain(&mut self, pages: isize) {
        if !self.explain {
            self.explain = true;
        }
        let event = super::ui::explained_event(self);
        let current = match self.explain_scroll {
            (shown, rows) if shown == event => rows,
            _ => 0,
        };
        let step = super::ui::EXPLAIN_PAGE;
        let rows = if pages < 0 {
            current.saturating_sub(step)
        } else {
            current + step
        };
        // Past the end is clamped when drawn.
        self.explain_scroll = (event, rows);
    }

    /// Forgets the typed-ahead lines, saying why nothing of them was sent.
    fn drop_queue(&mut self, why: &str) {
        if self.queued.is_empty() {
            return;
        }
        let count = self.queued.len();
        for mut line in self.queued.drain(..) {
            zeroize::Zeroize::zeroize(&mut line);
        }
        self.flash = Some(format!("{count} typed-ahead line(s) not sent: {why}"));
    }

    /// Sends the next typed-ahead line once nothing is pending and the command line has the
    /// keys again; drops them all when the session moved elsewhere (a message, a prompt,
    /// the guard dialog, a closed connection), where a command line would mean something else.
    fn send_queued(&mut self) -> Vec<Action> {
        if self.queued.is_empty() || self.pending.is_some() {
            return Vec::new();
        }
        let why = match &self.mode {
            _ if !self.status.connected => Some("the connection is closed"),
            Mode::Message(_) => Some("the server now waits for the message"),
            Mode::Line(Prompt::SaslAnswer) => Some("the server now waits for a SASL answer"),
            Mode::Line(Prompt::User { .. } | Prompt::Password { .. }) => {
                Some("AUTH is asking for the user and password")
            }
            Mode::Guard(_) => Some("the credential guard stopped a request"),
            Mode::Group(_) => Some("pasted lines wait for a choice"),
            Mode::Line(Prompt::Command) => None,
        };
        if let Some(why) = why {
            self.drop_queue(why);
            return Vec::new();
        }
        let Some(line) = self.queued.pop_front() else {
            return Vec::new();
        };
        self.enter_command(line)
    }

    /// Takes the practice server's log line (`smtptui demo`).
    pub fn on_lab_log(&mut self, line: String) {
        if let Some(log) = &mut self.lab_log {
            log.push(line);
            if log.shown {
                self.dirty = true;
            }
        }
    }

    /// A `:` line (without the `:`): a local command, never sent.
    fn local(&mut self, line: &str) -> Vec<Action> {
        match commands::parse_local(line) {
            Some(parsed) => self.run(parsed.local.command, parsed.argument, parsed.force),
            None => {
                let name = line.split_whitespace().next().unwrap_or_default();
                self.flash = Some(format!(
                    "unknown local command :{name}; local commands: {}",
                    commands::local_names()
                ));
                Vec::new()
            }
        }
    }

    /// Esc: stops the guard's safe way or drops typed-ahead lines, closes a prompt, or leaves
    /// (sending QUIT first when connected).
    fn escape(&mut self) -> Vec<Action> {
        if self.mode == Mode::COMMAND && (self.recovery.is_some() || !self.queued.is_empty()) {
            if self.recovery.take().is_some() {
                self.flash = Some(
                    "the safe way stopped: the step in flight finishes, nothing after it is sent"
                        .to_owned(),
                );
            }
            self.drop_queue("Esc");
            return Vec::new();
        }
        // The message editor leaves on the second Esc in a row; the first only warns.
        let leaves_message = match &mut self.mode {
            Mode::Message(editor) => editor.escape(),
            _ => true,
        };
        match &self.mode {
            Mode::Line(Prompt::User { .. } | Prompt::Password { .. }) => {
                self.input.clear();
                self.input.drop_held();
                self.mode = Mode::COMMAND;
                self.flash = Some("AUTH cancelled; nothing was sent".to_owned());
                Vec::new()
            }
            Mode::Line(Prompt::SaslAnswer) => {
                // RFC 4954 §4: a lone '*' cancels the exchange; QUIT here would be taken as
                // the answer.
                self.input.clear();
                self.flash = Some("AUTH cancelled with '*' (RFC 4954)".to_owned());
                self.send("*".to_owned(), OneTimeOverride::None)
            }
            Mode::Message(_) if !leaves_message => {
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
        self.input.drop_held();
        // Inside DATA or a SASL exchange a QUIT would be read as message text or as the
        // answer: leave without it (the server discards an unfinished message).
        let between_commands = self.status.phase == Phase::Command;
        if self.status.connected
            && between_commands
            && self.pending.is_none()
            && self.quitting.is_none()
        {
            self.quitting = Some(Instant::now());
            self.pending = Pending::now("the reply to QUIT");
            vec![Action::Quit]
        } else {
            self.should_exit = true;
            Vec::new()
        }
    }

    fn on_guard_choice(&mut self, choice: GuardChoice) -> Vec<Action> {
        if choice == GuardChoice::Undecided {
            return Vec::new();
        }
        let Mode::Guard(dialog) = std::mem::replace(&mut self.mode, Mode::COMMAND) else {
            return Vec::new();
        };
        match choice {
            GuardChoice::Undecided => Vec::new(),
            GuardChoice::Cancel => {
                self.input.drop_held();
                self.flash = Some("cancelled: nothing was sent".to_owned());
                Vec::new()
            }
            GuardChoice::Default => self.guard_default(dialog),
            GuardChoice::Override(one_time) => match dialog.retry {
                Retry::Auth(mechanism) => self.start_auth(mechanism, one_time),
                Retry::Line(line) => self.send(line, one_time),
                Retry::Answer(answer) => self.send_answer(answer, one_time),
            },
        }
    }

    /// Enter with nothing typed: the safe way on cleartext (STARTTLS, EHLO inside TLS, then
    /// the AUTH that was asked for, each step once the one before succeeded), cancel otherwise.
    fn guard_default(&mut self, dialog: GuardDialog) -> Vec<Action> {
        if let Refusal::Unverified(_) = dialog.refusal {
            self.flash = Some("cancelled: nothing was sent".to_owned());
            return Vec::new();
        }
        let ehlo = self.ehlo_line();
        match dialog.retry {
            Retry::Answer(_) => {
                // The server still waits for a SASL answer: anything sent now (STARTTLS too)
                // would be taken as that answer. Cancel the exchange first (RFC 4954 §4).
                self.recovery = Some(Recovery::Cancelling { ehlo });
                self.flash = Some(
                    "AUTH cancelled with '*', nothing secret sent; then STARTTLS and EHLO, and you run AUTH again"
                        .to_owned(),
                );
                self.send_answer(Secret::new("*".to_owned()), OneTimeOverride::None)
            }
            retry => {
                let then = match retry {
                    Retry::Auth(mechanism) => AfterTls::Auth(mechanism),
                    Retry::Line(line) => AfterTls::Line(line),
                    Retry::Answer(_) => AfterTls::Tell,
                };
                // Nothing is left in the input line: text left there would be glued to
                // whatever the user types next.
                self.flash = Some(format!(
                    "the safe way: STARTTLS, then {ehlo} inside TLS, then {} (Esc stops it)",
                    then.describe()
                ));
                let typed = self.input.take_held();
                self.recovery = Some(Recovery::StartTls { ehlo, then, typed });
                self.send("STARTTLS".to_owned(), OneTimeOverride::None)
            }
        }
    }

    // -------------------------------------------------------------------------------------
    // Enter
    // -------------------------------------------------------------------------------------

    fn enter(&mut self) -> Vec<Action> {
        self.flash = None;
        let line = self.input.take();
        match &mut self.mode {
            Mode::Line(Prompt::User {
                mechanism,
                one_time,
            }) => {
                if line.trim().is_empty() {
                    self.flash = Some("a user name is needed (Esc cancels)".to_owned());
                    return Vec::new();
                }
                self.mode = Mode::Line(Prompt::Password {
                    mechanism: *mechanism,
                    user: line,
                    one_time: *one_time,
                });
                Vec::new()
            }
            Mode::Line(Prompt::Password {
                mechanism,
                user,
                one_time,
            }) => {
                let (mechanism, user, one_time) = (*mechanism, std::mem::take(user), *one_time);
                self.mode = Mode::COMMAND;
                self.authenticate(mechanism, user, Secret::new(line), one_time)
            }
            Mode::Line(Prompt::SaslAnswer) => {
                if line.is_empty() && self.player.as_ref().is_some_and(StepPlayer::next_is_answer) {
                    // Step mode: the scenario's answer, as Enter on an empty line promised.
                    return self.next_step();
                }
                // Never into history: it is a credential. Sent as an answer, never as a line:
                // if the server has moved on, the engine refuses rather than send it as a command.
                self.send_answer(Secret::new(line), OneTimeOverride::None)
            }
            Mode::Message(editor) => {
                if line.is_empty()
                    && editor.lines().is_empty()
                    && self
                        .player
                        .as_ref()
                        .is_some_and(StepPlayer::next_is_message)
                {
                    // Step mode: the scenario's message, as Enter on an empty line promised.
                    return self.next_step();
                }
                if let Some(argument) = send_file_argument(&line) {
                    if editor.lines().is_empty() {
                        return self.send_file(argument);
                    }
                    // A line already written and the file would make one message of two.
                    self.input.restore(line);
                    self.flash = Some(
                        ":send-file sends the whole message from a file: it needs an empty \
                         editor (Esc twice leaves this message)"
                            .to_owned(),
                    );
                    return Vec::new();
                }
                match editor.enter(line) {
                    Entered::End => self.end_message(),
                    Entered::Added => Vec::new(),
                }
            }
            Mode::Guard(_) | Mode::Group(_) => Vec::new(),
            Mode::Line(Prompt::Command) => self.enter_command(line),
        }
    }

    fn enter_command(&mut self, line: String) -> Vec<Action> {
        if line.trim().is_empty() {
            return self.next_step();
        }
        if let Some(local) = line.strip_prefix(':') {
            // Local commands are never sent; the known ones are kept for Up. An unknown one
            // is not: it may be a secret typed at the wrong prompt.
            if commands::parse_local(local).is_some() {
                self.input.remember_local(&line);
            }
            return self.local(local);
        }
        if self.pending.is_some() || self.recovery.is_some() {
            // Typed ahead: sent when the reply comes, so keys typed meanwhile start a new line
            // instead of piling onto this one.
            if self.queued.len() >= MAX_QUEUED {
                self.input.restore(line);
                self.flash = Some(format!(
                    "{MAX_QUEUED} lines already wait for the reply; this one stays here"
                ));
            } else {
                self.queued.push_back(line);
                self.flash = Some(format!(
                    "queued: sent after the reply ({} waiting; Esc drops them)",
                    self.queued.len()
                ));
            }
            return Vec::new();
        }
        if !self.status.connected {
            // Nothing can be sent: say so, and keep the line for after :reconnect.
            self.input.restore(line);
            self.flash = Some("not connected: nothing was sent".to_owned());
            return Vec::new();
        }
        // Kept for the history only once the engine says it crossed as a command.
        self.input.hold(&line);
        let actions = self.submit(line);
        if !matches!(
            self.mode,
            Mode::Line(Prompt::User { .. } | Prompt::Password { .. }) | Mode::Guard(_)
        ) {
            // Not waiting for a prompt: if no action took the line, it is not sent.
            self.input.drop_held();
        }
        actions
    }

    /// `:send-file FILE` in the message editor: the message from the file, streamed by the
    /// engine, which shows a summary of it in the transcript.
    fn send_file(&mut self, argument: &str) -> Vec<Action> {
        if argument.is_empty() {
            self.flash =
                Some(":send-file needs a file name, e.g. :send-file message.eml".to_owned());
            return Vec::new();
        }
        let path = record::expand_home(argument);
        if let Some(recording) = &mut self.recording {
            recording.expect_file(&path);
        }
        self.pending = Pending::now("the reply to the message from the file");
        self.view.follow();
        vec![Action::SendFile {
            path,
            shown: argument.to_owned(),
        }]
    }

    fn end_message(&mut self) -> Vec<Action> {
        self.input.clear();
        self.input.drop_held();
        self.pending = Pending::now("the reply to the message");
        let lines = match &mut self.mode {
            Mode::Message(editor) => editor.take(),
            _ => Vec::new(),
        };
        vec![Action::Message { lines }]
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
        if mechanism == Mechanism::External {
            // The identity is the client certificate's: nothing to ask.
            return self.authenticate(
                mechanism,
                "the client certificate".to_owned(),
                Secret::new(String::new()),
                one_time,
            );
        }
        match (&self.preset_user, &self.preset_secret) {
            (Some(user), Some(secret)) => {
                let (user, secret) = (user.clone(), secret.clone());
                self.authenticate(mechanism, user, secret, one_time)
            }
            (Some(user), None) => {
                self.mode = Mode::Line(Prompt::Password {
                    mechanism,
                    user: user.clone(),
                    one_time,
                });
                Vec::new()
            }
            _ => {
                self.mode = Mode::Line(Prompt::User {
                    mechanism,
                    one_time,
                });
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
        self.input.carry_auth();
        self.pending = Pending::now(format!("the reply to AUTH {}", mechanism.name()));
        vec![Action::Authenticate {
            mechanism,
            credentials: Credentials { user, secret },
            one_time,
        }]
    }

    fn send(&mut self, line: String, one_time: OneTimeOverride) -> Vec<Action> {
        self.input.carry(&line);
        self.pending = Pending::now(if self.mode == Mode::Line(Prompt::SaslAnswer) {
            "the reply to the SASL answer".to_owned()
        } else {
            format!("the reply to {}", split_verb(&line).0)
        });
        vec![Action::Send { line, one_time }]
    }

    /// Sends an answer typed into the hidden prompt after a 334.
    fn send_answer(&mut self, answer: Secret, one_time: OneTimeOverride) -> Vec<Action> {
        self.input.drop_held();
        self.pending = Pending::now("the reply to the SASL answer");
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
        let step = match player.take_step(self.status.phase == Phase::Message) {
            Ok(step) => step,
            Err(message) => {
                self.flash = Some(message);
                return Vec::new();
            }
        };
        match step.action {
            // A written-out SASL answer carries credentials: it goes as an answer, which the
            // engine sends only while the server waits for one, never as a visible command.
            StepAction::Command(line) if step.sasl_answer => {
                self.send_answer(Secret::new(line), OneTimeOverride::None)
            }
            StepAction::Command(line) => self.submit(line),
            StepAction::Message(lines) => {
                self.pending = Pending::now("the reply to the message");
                vec![Action::Message { lines }]
            }
            // Refused by the player's take_step.
            StepAction::Body(_) | StepAction::Group { .. } | StepAction::Chunk { .. } => Vec::new(),
        }
    }

    // -------------------------------------------------------------------------------------
    // Hints
    // -------------------------------------------------------------------------------------

    /// What Enter will do, in words, for the line under the input.
    pub fn enter_hint(&self) -> String {
        let player = self.player.as_ref();
        match &self.mode {
            Mode::Line(Prompt::User { mechanism, .. }) => {
                format!(
                    "AUTH {}: type the user name, Enter (Esc cancels)",
                    mechanism.name()
                )
            }
            Mode::Line(Prompt::Password { user, one_time, .. }) => {
                let user = escape_str(user);
                match self.auth_override(*one_time) {
                    Some(how) => format!("send the password for {user} {how}"),
                    None => format!("run AUTH with the password for {user} (hidden, not stored)"),
                }
            }
            Mode::Line(Prompt::SaslAnswer) => {
                if self.input.is_empty()
                    && let Some(hint) = player.and_then(StepPlayer::describe_answer)
                {
                    return hint;
                }
                match self.auth_override(OneTimeOverride::None) {
                    Some(how) => format!("answer to the 334 (hidden, not stored), sent {how}"),
                    None => "answer to the server's 334 challenge (hidden, not stored)".to_owned(),
                }
            }
            Mode::Message(editor) => {
                if self.input.is_empty()
                    && editor.lines().is_empty()
                    && let Some(hint) = player.and_then(StepPlayer::describe_message)
                {
                    return hint;
                }
                format!(
                    "add message line {}; a lone . or Ctrl-D sends the message",
                    editor.lines().len() + 1
                )
            }
            Mode::Group(group) => match group.unsendable() {
                Some(why) => format!("keep the first pasted line ({why})"),
                None => format!(
                    "keep the first pasted line; p sends all {} as one pipelined group",
                    group.lines.len()
                ),
            },
            Mode::Guard(dialog) => match dialog.refusal {
                Refusal::Cleartext if dialog.typed.is_empty() => {
                    "STARTTLS, then EHLO and the AUTH inside TLS (the dialog's safe way)".to_owned()
                }
                Refusal::Unverified(_) if dialog.typed.is_empty() => {
                    "cancel: nothing is sent".to_owned()
                }
                _ => format!(
                    "send anyway only if the word is '{}'",
                    dialog.override_word()
                ),
            },
            Mode::Line(Prompt::Command) => self.command_hint(),
        }
    }

    fn command_hint(&self) -> String {
        let input = self.input.text();
        if let Some(local) = input.strip_prefix(':') {
            return match commands::parse_local(local) {
                Some(parsed) => format!("run :{} here (never sent)", parsed.local.name),
                None => "nothing: no local command has that name".to_owned(),
            };
        }
        if let Some(recovery) = &self.recovery {
            if input.trim().is_empty() {
                return format!("nothing yet: {}; Esc stops it", recovery.describe());
            }
            return "queue this line until the safe way is done".to_owned();
        }
        if let Some(pending) = &self.pending {
            if input.trim().is_empty() {
                return format!("nothing while waiting for {}", pending.what);
            }
            return "queue this line: sent after the reply".to_owned();
        }
        if !self.status.connected {
            return "nothing: not connected; :reconnect opens a new session, Esc leaves".to_owned();
        }
        if input.trim().is_empty() {
            if let Some(hint) = self.player.as_ref().and_then(StepPlayer::describe_next) {
                return hint;
            }
            return "type an SMTP command (Tab completes, F1 help)".to_owned();
        }
        let security = self.status.security.marker();
        match classify(input) {
            CommandKind::StartTls => "send STARTTLS; a 220 upgrades to TLS".to_owned(),
            CommandKind::Auth {
                mechanism,
                has_initial_response,
            } => match guard::decide(&self.status.protection, self.policy, OneTimeOverride::None) {
                Decision::Refuse(Refusal::Cleartext) => {
                    "AUTH would be stopped by the credential guard (no TLS)".to_owned()
                }
                Decision::Refuse(Refusal::Unverified(_)) => {
                    "AUTH would be stopped by the credential guard (certificate not verified)"
                        .to_owned()
                }
                _ => {
                    let prompted = !has_initial_response
                        && Mechanism::from_name(&mechanism).is_some_and(Mechanism::needs_secret);
                    match (self.auth_override(OneTimeOverride::None), prompted) {
                        (Some(how), true) => {
                            format!("AUTH {mechanism}: user and password go {how}")
                        }
                        (Some(how), false) => format!("send AUTH {mechanism} {how}"),
                        (None, true) => format!(
                            "AUTH {mechanism}: asks user and password (hidden), then authenticates"
                        ),
                        (None, false) => {
                            format!("send AUTH {mechanism} over {security} (not kept in history)")
                        }
                    }
                }
            },
            CommandKind::Data => "send DATA; a 354 opens the message editor".to_owned(),
            CommandKind::Quit => "send QUIT".to_owned(),
            _ => format!("send over {security}"),
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

/// The file named by a `:send-file FILE` line typed in the message editor (possibly empty),
/// `None` for any other line, which is message text.
fn send_file_argument(line: &str) -> Option<&str> {
    let parsed = commands::parse_local(line.strip_prefix(':')?)?;
    (parsed.local.command == Command::SendFile).then_some(parsed.argument)
}

/// The text of a burst of key presses that can only be a paste: typed characters (and tabs)
/// with a line break followed by more of them. A person types one key per read; a terminal
/// without bracketed paste writes a whole paste at once. A burst ending with its only line
/// break is a line typed (or pasted) and Enter, and is left as keys.
fn pasted_text(events: &[crossterm::event::Event]) -> Option<String> {
    use crossterm::event::{Event, KeyModifiers};
    let mut text = String::new();
    let mut breaks_inside = false;
    let mut presses = 0;
    for event in events {
        let Event::Key(key) = event else {
            return None;
        };
        if key.kind == KeyEventKind::Release {
            continue;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let c = match key.code {
            KeyCode::Enter => '\n',
            // In raw mode a line feed arrives as Ctrl-J.
            KeyCode::Char('j') if ctrl => '\n',
            KeyCode::Tab => '\t',
            KeyCode::Char(c) if !ctrl && !key.modifiers.contains(KeyModifiers::ALT) => c,
            _ => return None,
        };
        if presses > 0 && text.ends_with('\n') {
            breaks_inside = true;
        }
        text.push(c);
        presses += 1;
    }
    breaks_inside.then_some(text)
}
