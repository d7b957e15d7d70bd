//! The interactive terminal UI: `smtptui HOST[:PORT]` and `smtptui demo`.
//!
//! Three parts talk through small enums: the engine task ([`engine`]) owns the session and
//! runs one network operation at a time (a message from a file, [`sendfile`], included); the
//! state ([`app`], made of the input line, the guard dialog, the pasted-group dialog
//! ([`group`]), the message editor, the step player and the transcript view, with the keys
//! and `:` commands of [`commands`]) takes engine messages and key presses and returns
//! actions; drawing ([`ui`]) is a function of the state. One `select!`
//! loop here moves terminal events, engine messages and a frame tick between them and draws
//! at most once per tick, so a burst of server lines costs one frame, not one per line.

pub mod app;
pub mod commands;
pub mod dialogs;
pub mod editor;
pub mod engine;
pub mod group;
pub mod guard;
pub mod history;
pub mod input;
pub mod line;
pub mod player;
pub mod record;
pub mod sendfile;
pub mod ui;
pub mod view;
pub mod wrap;

use std::io;
use std::time::{Duration, Instant};

use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
    EventStream,
};
use futures_util::{FutureExt as _, StreamExt as _};
use tokio::sync::mpsc;

use crate::lab::accounts::{DEFAULT_PASSWORD, DEFAULT_USER};
use crate::lab::{Lab, LabConfig, Profile};
use crate::scenario::Scenario;
use crate::secret::Secret;
use crate::session::{SessionConfig, format_target};
use app::App;
use history::History;

/// Frame interval: about 30 frames a second, enough for a running timer.
const FRAME: Duration = Duration::from_millis(33);
/// How long to wait for the 221 to QUIT before leaving anyway.
const QUIT_GRACE: Duration = Duration::from_secs(3);

/// What the UI needs besides the session configuration.
#[derive(Debug, Default)]
pub struct Options {
    /// Show the explain pane from the start.
    pub explain: bool,
    /// A scenario to step through.
    pub script: Option<Scenario>,
    /// `--user`.
    pub user: Option<String>,
    /// A password from `--password-file` or the environment.
    pub secret: Option<Secret>,
    /// Notes shown at the top of the transcript (the demo's introduction).
    pub intro: Vec<String>,
    /// Leave right after the first frame is drawn (to measure start-up time).
    pub exit_after_first_frame: bool,
    /// Keep history in memory only.
    pub no_history_file: bool,
    /// The practice server's log lines, when it runs in-process (`smtptui demo`): F4 shows them.
    pub lab_log: Option<mpsc::UnboundedReceiver<String>>,
}

/// How the UI ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The user left (Esc, `:quit`, Ctrl-C as a key), or the engine finished.
    Normally,
    /// A signal ended it (its number): SIGHUP, SIGINT, SIGQUIT or SIGTERM. The terminal is
    /// restored all the same; the process should exit with status 128 + the number.
    Signal(i32),
}

impl Ended {
    /// The conventional exit status: 0 for a normal end, 128 + N for signal N.
    pub fn exit_status(self) -> i32 {
        match self {
            Self::Normally => 0,
            Self::Signal(number) => 128 + number,
        }
    }
}

/// The signals that end the process by default. The UI takes them over, so that it can restore
/// the terminal (cooked mode, primary screen, no mouse tracking) before it exits; otherwise
/// each would leave the shell in raw mode on the alternate screen.
struct EndSignals {
    #[cfg(unix)]
    hangup: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    quit: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl EndSignals {
    /// Installs the handlers; from here on these signals no longer kill the process at once.
    fn install() -> io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                hangup: signal(SignalKind::hangup())?,
                interrupt: signal(SignalKind::interrupt())?,
                quit: signal(SignalKind::quit())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Waits for any of them and returns its number (the same on every Unix: POSIX fixes
    /// these four).
    async fn recv(&mut self) -> i32 {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.hangup.recv() => 1,
                _ = self.interrupt.recv() => 2,
                _ = self.quit.recv() => 3,
                _ = self.terminate.recv() => 15,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            2
        }
    }
}

/// Restores the terminal when dropped, whatever the exit path (return, error, unwinding).
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = crossterm::execute!(io::stdout(), DisableBracketedPaste, DisableMouseCapture);
        ratatui::restore();
    }
}

/// Runs the UI against the server in `config` until the user leaves or a signal ends it.
///
/// # Errors
/// Terminal I/O errors (the terminal is restored before returning).
pub async fn run(mut config: SessionConfig, options: Options) -> io::Result<Ended> {
    // A failed certificate must not end an interactive session: the user inspects it (F3)
    // and the guard still stops AUTH to it unless overridden.
    config.trust.continue_unverified = true;
    let target = format_target(&config.host, config.port);
    let history = match History::file_for(&target) {
        Some(path) if !options.no_history_file => History::load(path),
        _ => History::in_memory(),
    };
    let mut app = App::new(target, history);
    app.colour = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    app.explain = options.explain;
    app.policy = config.policy;
    app.preset_user = options.user;
    app.preset_secret = options.secret;
    for line in options.intro {
        app.note(line);
    }
    if let Some(script) = options.script {
        app.load_script(script);
    }
    let mut lab_lines = options.lab_log;
    if lab_lines.is_some() {
        app.lab_log = Some(app::LabLog::default());
    }

    let (action_tx, action_rx) = mpsc::unbounded_channel();
    let (engine_tx, mut engine_rx) = mpsc::unbounded_channel();
    let engine = tokio::spawn(engine::run(config, action_rx, engine_tx));

    // Before the terminal changes: a signal from here on restores it instead of killing us.
    let mut signals = EndSignals::install()?;
    // Mouse capture and bracketed paste are ours to undo: chain a hook that does it before ratatui's hook (which
    // restores the rest and then calls this one).
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = crossterm::execute!(io::stdout(), DisableBracketedPaste, DisableMouseCapture);
        previous(info);
    }));
    let mut terminal = ratatui::init();
    let _guard = TerminalGuard;
    // Bracketed paste: a pasted block arrives as one event, so its line breaks are not Enter.
    crossterm::execute!(io::stdout(), EnableMouseCapture, EnableBracketedPaste)?;

    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(FRAME);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let frame = terminal.draw(|frame| ui::render(&app, frame, Instant::now()))?;
    app.view.page = ui::transcript_height(&app, frame.area);
    app.dirty = false;
    if options.exit_after_first_frame {
        engine.abort();
        return Ok(Ended::Normally);
    }
    let mut ended = Ended::Normally;
    loop {
        let actions = tokio::select! {
            _ = tick.tick() => {
                if app.dirty || app.pending.is_some() {
                    let frame = terminal.draw(|frame| ui::render(&app, frame, Instant::now()))?;
                    app.view.page = ui::transcript_height(&app, frame.area);
                    app.dirty = false;
                }
                if app.quitting.is_some_and(|since| since.elapsed() > QUIT_GRACE) {
                    app.should_exit = true;
                }
                Vec::new()
            }
            event = events.next() => match event {
                Some(Ok(event)) => {
                    // Whatever else the terminal has written already comes with it: a paste
                    // without bracketed paste is one burst, and is taken as one paste.
                    let mut batch = vec![event];
                    while let Some(Some(Ok(more))) = events.next().now_or_never() {
                        batch.push(more);
                    }
                    app.on_terminal_batch(batch)
                }
                Some(Err(error)) => return Err(error),
                None => break,
            },
            Some(line) = async {
                match lab_lines.as_mut() {
                    Some(lines) => lines.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                app.on_lab_log(line);
                while let Some(Ok(line)) = lab_lines.as_mut().map(mpsc::UnboundedReceiver::try_recv) {
                    app.on_lab_log(line);
                }
                Vec::new()
            }
            message = engine_rx.recv() => match message {
                Some(message) => {
                    let mut actions = app.on_engine(message);
                    // Take the whole batch now; the frame is drawn once at the next tick.
                    while let Ok(message) = engine_rx.try_recv() {
                        actions.extend(app.on_engine(message));
                    }
                    actions
                }
                None => {
                    app.should_exit = true;
                    Vec::new()
                }
            },
            number = signals.recv() => {
                ended = Ended::Signal(number);
                break;
            }
        };
        for action in actions {
            let _ = action_tx.send(action);
        }
        if app.should_exit {
            break;
        }
    }
    engine.abort();
    Ok(ended)
}

/// `smtptui demo`: starts the practice server in-process and opens the UI on its submission
/// listener, with the certificate trusted and the explain pane on.
///
/// # Errors
/// A message when the lab cannot start or the terminal fails.
pub async fn demo(exit_after_first_frame: bool) -> Result<Ended, String> {
    let mut lab_config = LabConfig::ephemeral(vec![Profile::Submission]);
    // The lab must not print onto the UI's screen: its log goes to the UI's own pane (F4).
    let (lab_tx, lab_rx) = mpsc::unbounded_channel();
    lab_config.log = std::sync::Arc::new(move |line: &str| {
        let _ = lab_tx.send(line.to_owned());
    });
    lab_config.log_sessions = true;
    let lab = Lab::start(lab_config)
        .await
        .map_err(|error| format!("cannot start the lab: {error}"))?;
    let mut config = lab
        .client_config(Profile::Submission)
        .ok_or("the lab has no submission listener")?;
    // As for any server in the UI: a failed certificate is shown, not the end of the session.
    config.trust.continue_unverified = true;
    let options = Options {
        explain: true,
        intro: vec![
            "Practice server (smtptui lab, profile submission): STARTTLS is required, as Postfix with smtpd_tls_security_level=encrypt and smtpd_tls_auth_only=yes.".to_owned(),
            format!("Workshop account: user {DEFAULT_USER}, password {DEFAULT_PASSWORD} (a practice password, shown on purpose)."),
            "Try: EHLO me, then AUTH PLAIN (the guard stops it), STARTTLS, EHLO me, AUTH PLAIN, MAIL FROM:<student@lab.test>, RCPT TO:<friend@example.com>, DATA.".to_owned(),
            "F4 shows the lab's own log: both ends of the wire, what the server received, each line marked plain or tls.".to_owned(),
        ],
        lab_log: Some(lab_rx),
        exit_after_first_frame,
        no_history_file: true,
        ..Options::default()
    };
    let result = run(config, options).await;
    let ca_dir = lab.ca_file().parent().map(std::path::Path::to_path_buf);
    lab.shutdown().await;
    if let Some(dir) = ca_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    result.map_err(|error| format!("terminal error: {error}"))
}
