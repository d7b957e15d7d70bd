//! The `smtptui` binary: argument parsing and the process edge (exit codes, stdout).

mod cli;

use std::io::{BufWriter, IsTerminal, LineWriter, Write};
use std::process::ExitCode;

use cli::{
    AuditArgs, Cli, Command, CompletionsArgs, ConnectArgs, DashboardMode, DemoArgs, DiffArgs,
    LabArgs, LabStatusArgs, ManArgs, RunArgs, ScenariosArgs, SendArgs, TlsChoice,
};
use smtptui::guard::GuardPolicy;
use smtptui::proto::reply::ReplyLimits;
use smtptui::proto::sasl::credential_forms;
use smtptui::runner::{self, exit};
use smtptui::scenario::{Scenario, builtin};
use smtptui::secret::{Credentials, Secret, obtain_secret};
use smtptui::session::{EventSink, SessionConfig, TlsMode};
use smtptui::tls::{self, TrustSettings};
use smtptui::transcript::{Event, Palette};

/// Writes a line to stderr, as `eprintln!` would, but a closed stderr (`2>&1 | head`, a `tee`
/// ended by the same Ctrl-C) loses the line instead of panicking: the process still ends as
/// it should, with its exit status and, for the lab, the 421 to open sessions.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

fn main() -> ExitCode {
    use clap::{CommandFactory as _, FromArgMatches as _};
    // The matches are kept to tell an option given from its default, for the config file.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|word| word == "send") {
        match smtptui::send::swaks_spellings(args.split_off(2)) {
            Ok(rest) => args.extend(rest),
            Err(message) => return ExitCode::from(exit_status(usage_error(message))),
        }
    }
    let parsed = Cli::command()
        .try_get_matches_from(args)
        .and_then(|matches| Cli::from_arg_matches(&matches).map(|cli| (cli, matches)));
    let (mut cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return ExitCode::from(parse_error(error)),
    };
    if cli.command.is_none()
        && let Some(hint) = cli.target.as_deref().and_then(cli::mistyped_subcommand)
    {
        return ExitCode::from(exit_status(usage_error(hint)));
    }
    if let Err(message) = configure(&mut cli, &matches) {
        return ExitCode::from(exit_status(usage_error(message)));
    }
    let code = match cli.command {
        Some(Command::Run(args)) => run_command(args),
        Some(Command::Scenarios(args)) => scenarios_command(args),
        Some(Command::Diff(args)) => diff_command(args),
        Some(Command::Completions(args)) => completions_command(args),
        Some(Command::Man(args)) => man_command(args),
        Some(Command::Lab(args)) => lab_command(args),
        Some(Command::LabStatus(args)) => lab_status_command(args),
        Some(Command::Demo(args)) => demo_command(args),
        Some(Command::Audit(args)) => audit_command(args),
        Some(Command::Send(args)) => send_command(*args),
        Some(Command::Bench(args)) => bench_command(*args),
        None => match &cli.target {
            Some(target) => tui_command(target, &cli),
            None => {
                say!(
                    "smtptui: give HOST[:PORT] for the interactive UI, or a subcommand (see smtptui --help)"
                );
                exit::USAGE
            }
        },
    };
    ExitCode::from(exit_status(code))
}

fn exit_status(code: i32) -> u8 {
    u8::try_from(code).unwrap_or(1)
}

/// A command line clap could not parse. When its first word looks like a mistyped
/// subcommand (`smtptui audti HOST`), that is what the user hears about, rather than clap's
/// view of a target followed by stray words.
fn parse_error(error: clap::Error) -> u8 {
    use clap::error::ErrorKind;
    let informational = matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if !informational
        && let Some(hint) = cli::first_positional(&args)
            .as_deref()
            .and_then(cli::mistyped_subcommand)
    {
        return exit_status(usage_error(hint));
    }
    // clap prints help, versions and its own errors; a closed stream is not worth a panic.
    let _ = error.print();
    exit_status(error.exit_code())
}

/// A usage error: printed with the program name, exit status 2.
fn usage_error(message: impl std::fmt::Display) -> i32 {
    say!("smtptui: {message}");
    exit::USAGE
}

/// Whether stdout gets colour: only on a terminal, and never with NO_COLOR set.
fn colour_on_stdout() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn runtime() -> Result<tokio::runtime::Runtime, i32> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| {
            say!("smtptui: cannot start the async runtime: {error}");
            exit::FAILURE
        })
}

fn lab_command(args: LabArgs) -> i32 {
    use smtptui::lab::profile::LARGEST_PORT_OFFSET;
    use smtptui::lab::{Lab, LabConfig, Profile};
    let mut profiles = Vec::new();
    for name in &args.profiles {
        match name.parse::<Profile>() {
            Ok(profile) if !profiles.contains(&profile) => profiles.push(profile),
            Ok(_) => {}
            Err(error) => return usage_error(error),
        }
    }
    // --listen PROFILE=ADDR places a profile (and runs it); a bare ADDR needs one --profile.
    let mut placed: Vec<(Profile, std::net::SocketAddr)> = Vec::new();
    for spec in &args.listen {
        let (profile, addr) = match spec.split_once('=') {
            Some((name, addr)) => match name.parse::<Profile>() {
                Ok(profile) => (profile, addr),
                Err(error) => return usage_error(format!("--listen {spec:?}: {error}")),
            },
            None => match (profiles.as_slice(), args.listen.len()) {
                ([profile], 1) => (*profile, spec.as_str()),
                _ => {
                    return usage_error(format!(
                        "--listen {spec:?}: say which profile listens there, as PROFILE=IP:PORT \
                         (e.g. --listen submission=127.0.0.1:1587); a bare address needs exactly \
                         one --profile"
                    ));
                }
            },
        };
        let addr = match listen_addr(addr) {
            Ok(addr) => addr,
            Err(message) => return usage_error(format!("--listen {spec:?}: {message}")),
        };
        if placed.iter().any(|(p, _)| *p == profile) {
            return usage_error(format!(
                "--listen {spec:?}: the {profile} profile is already placed; give each profile one --listen"
            ));
        }
        placed.push((profile, addr));
        if !profiles.contains(&profile) {
            profiles.push(profile);
        }
    }
    if profiles.is_empty() {
        profiles = Profile::ALL.to_vec();
    }
    if u32::from(args.port_base) + u32::from(LARGEST_PORT_OFFSET) > u32::from(u16::MAX) {
        return usage_error(format!(
            "--port-base {}: the {} profile would sit above port 65535; use a base of at most {}",
            args.port_base,
            Profile::ALL
                .into_iter()
                .find(|p| p.port_offset() == LARGEST_PORT_OFFSET)
                .map_or("last", Profile::name),
            u16::MAX - LARGEST_PORT_OFFSET
        ));
    }
    let ip: std::net::IpAddr = if args.all_interfaces {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv4Addr::LOCALHOST.into()
    };
    let mut config = LabConfig::loopback_defaults();
    config.listeners = Profile::ALL
        .into_iter()
        .filter(|profile| profiles.contains(profile))
        .map(|profile| {
            let addr = placed.iter().find(|(p, _)| *p == profile).map_or_else(
                || std::net::SocketAddr::new(ip, args.port_base + profile.port_offset()),
                |(_, addr)| *addr,
            );
            (profile, addr)
        })
        .collect();
    let mut class = match ClassPlan::prepare(&args) {
        Ok(class) => class,
        Err(message) => return usage_error(message),
    };
    if !class.roster.is_anonymous() {
        // One account per student: the printed practice account would let everyone in as
        // nobody in particular.
        config.accounts = smtptui::lab::Accounts::empty();
    }
    for spec in &args.accounts {
        if let Err(error) = config.accounts.add_from_spec(spec) {
            return usage_error(error);
        }
    }
    for name in &args.names {
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return usage_error(format!(
                "--name {name:?}: give a host name or an IP address students connect by"
            ));
        }
    }
    let sheet_note = match class.sheet(args.state_dir.as_deref(), &mut config.accounts) {
        Ok(note) => note,
        Err(message) => {
            say!("smtptui: {message}");
            return exit::FAILURE;
        }
    };
    config.roster = class.roster.clone();
    config.exercises = class.exercises.clone();
    config.class_sheet = class.sheet_path.clone();
    // `e` in the dashboard writes where the instructor started the lab, as --export does.
    let export_dir = std::path::PathBuf::from(".");
    if let Some(name) = &args.grade_name
        && (name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return usage_error(format!(
            "--grade-name {name:?}: give the MX host name senders deliver to"
        ));
    }
    config.grade = smtptui::lab::GradeConfig {
        mx_name: args.grade_name,
        ca: args.grade_ca.zip(args.grade_ca_key),
        key: args.grade_key,
        report: args.grade_report,
    };
    config.names = args.names;
    config.maildir = args.maildir;
    config.state_dir = args.state_dir;
    config.command_timeout = args.timeout;
    config.error_sleep = args.error_sleep;
    config.max_sessions = args.max_sessions.max(1);
    config.log_sessions = !args.quiet;
    config.colour = colour_on_stdout();
    config.log = std::sync::Arc::new(|line| {
        // A closed stdout must not take the server down with it.
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    });
    let interactive = std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    let mode = match args.dashboard {
        Some(DashboardMode::Tui) if !interactive => {
            say!(
                "smtptui lab: --dashboard needs a terminal; printing its events as text instead (--dashboard text)"
            );
            Some(DashboardMode::Text)
        }
        mode => mode,
    };
    let ring = std::sync::Arc::new(smtptui::lab::dashboard::LogRing::default());
    match mode {
        Some(DashboardMode::Tui) => {
            // The terminal is the dashboard's: the log goes to its log screen.
            let ring = ring.clone();
            config.log = std::sync::Arc::new(move |line| ring.push(line));
            config.colour = false;
        }
        // The notable events, not every command: what a projector can show for a room.
        Some(DashboardMode::Text) => config.log_sessions = false,
        None => {}
    }
    let where_ = if args.all_interfaces {
        "on every interface"
    } else {
        "on loopback"
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    runtime.block_on(async {
        // Before the table is printed: whoever reads it may signal at once.
        let mut stop = match StopSignals::install() {
            Ok(stop) => stop,
            Err(error) => {
                eprintln!("smtptui: cannot watch for signals: {error}");
                return exit::FAILURE;
            }
        };
        let lab = match Lab::start(config).await {
            Ok(lab) => lab,
            Err(error) => {
                say!("smtptui: {error}");
                return exit::FAILURE;
            }
        };
        let header = format!(
            "smtptui lab: practice SMTP servers {where_} (Ctrl-C to stop)\n{sheet_note}\n"
        );
        let why = if mode == Some(DashboardMode::Tui) {
            let mut state = smtptui::lab::dashboard::DashState::new(
                format!("{header}{}", lab.table()),
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            );
            // What the instructor needs first: where the passwords are, where students go.
            state.flash = Some(match &class.sheet_path {
                Some(sheet) => format!(
                    "Passwords: {} (hand out, never project) · i: where students connect",
                    sheet.display()
                ),
                None => "i: where students connect · ?: keys".to_owned(),
            });
            let ended = smtptui::lab::dashboard::run(
                lab.board().clone(),
                ring,
                state,
                export_dir,
                stop.recv(),
            )
            .await;
            match ended {
                Ok(smtptui::lab::dashboard::Ended::Stopped) => "the dashboard was closed",
                Ok(smtptui::lab::dashboard::Ended::Signal(why)) => why,
                Err(error) => {
                    say!("smtptui lab: terminal error: {error}");
                    "the terminal failed"
                }
            }
        } else {
            {
                let mut stdout = std::io::stdout().lock();
                let _ = write!(stdout, "{header}{}", lab.table());
                let _ = if mode == Some(DashboardMode::Text) {
                    writeln!(
                        stdout,
                        "\nClass events (attacks that worked with their lesson, first TLS sessions, finished exercises):"
                    )
                } else {
                    writeln!(
                        stdout,
                        "\nSession log (plain/tls as on the wire; AUTH credentials are never shown):"
                    )
                };
                let _ = stdout.flush();
            }
            stop.recv().await
        };
        // Often the reader has gone with the same Ctrl-C (`smtptui lab 2>&1 | tee log`): the
        // message may go nowhere, the 421 to open sessions must go out all the same.
        say!("\nsmtptui lab: {why}; stopping, open sessions get 421");
        let board = lab.board().clone();
        let grades = lab.grade().map(|g| g.summary()).unwrap_or_default();
        lab.shutdown().await;
        for line in grades {
            say!("smtptui lab: grade: {line}");
        }
        class.finish(&board)
    })
}

/// The class part of `smtptui lab`: the roster, the exercises, the sheet and the exports.
struct ClassPlan {
    roster: smtptui::lab::Roster,
    exercises: smtptui::lab::Exercises,
    sheet_path: Option<std::path::PathBuf>,
    explicit_sheet: Option<std::path::PathBuf>,
    exports: Vec<std::path::PathBuf>,
}

impl ClassPlan {
    /// Reads the roster and the exercises and checks the export paths; nothing is written.
    fn prepare(args: &LabArgs) -> Result<Self, String> {
        use smtptui::lab::{Exercises, Roster};
        let exercises = match &args.exercises {
            Some(path) => Exercises::load(path).map_err(|e| e.to_string())?,
            None => Exercises::builtin().map_err(|e| e.to_string())?,
        };
        let roster = match (args.class, &args.roster) {
            (Some(count), _) => Roster::numbered(count)?,
            (None, Some(path)) => Roster::load(path).map_err(|e| e.to_string())?,
            (None, None) => Roster::anonymous(),
        };
        if roster.is_anonymous() && args.sheet.is_some() {
            return Err(
                "--sheet is where a class's passwords go: give the class too, with --class N or --roster FILE"
                    .to_owned(),
            );
        }
        for path in &args.export {
            let extension = path
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            if !matches!(extension.as_deref(), Some("csv" | "json")) {
                return Err(format!(
                    "--export {}: name the file .csv or .json, the format it is written in",
                    path.display()
                ));
            }
            if path.exists() {
                return Err(format!(
                    "--export {}: the file exists and is never overwritten; give a new name",
                    path.display()
                ));
            }
        }
        Ok(Self {
            roster,
            exercises,
            sheet_path: None,
            explicit_sheet: args.sheet.clone(),
            exports: args.export.clone(),
        })
    }

    /// Opens or writes the class sheet and gives every student their account; returns what
    /// the start should say about it (never a password).
    fn sheet(
        &mut self,
        state_dir: Option<&std::path::Path>,
        accounts: &mut smtptui::lab::Accounts,
    ) -> Result<String, String> {
        use smtptui::lab::roster::{self, SheetOutcome};
        if self.roster.is_anonymous() {
            return Ok(String::new());
        }
        let path = match (&self.explicit_sheet, state_dir) {
            (Some(path), _) => path.clone(),
            (None, Some(dir)) => {
                // The state directory holds the sheet: it may not exist yet.
                std::fs::create_dir_all(dir).map_err(|e| {
                    format!("cannot create the state directory {}: {e}", dir.display())
                })?;
                roster::default_sheet_path(Some(dir))
            }
            (None, None) => roster::default_sheet_path(None),
        };
        let (passwords, outcome) =
            roster::prepare_sheet(&path, &self.roster).map_err(|e| e.to_string())?;
        passwords.add_to(&self.roster, accounts);
        let shown = path.display();
        let note = match outcome {
            SheetOutcome::Created => format!(
                "Class sheet written: {shown} (mode 600): {} students with their passwords; hand each their line.",
                self.roster.len()
            ),
            SheetOutcome::Reused { added, tightened } => {
                let mut note = format!(
                    "Class sheet read back: {shown}: the passwords students hold stay valid (delete the file for new ones)."
                );
                if !added.is_empty() {
                    note.push_str(&format!(
                        "\n  Added to it, with new passwords: {}.",
                        added.join(", ")
                    ));
                }
                if tightened {
                    note.push_str("\n  It was readable by others: now mode 600.");
                }
                note
            }
        };
        self.sheet_path = Some(path);
        Ok(note)
    }

    /// At the end: the class's grid on stdout, and the exports. The exit status.
    fn finish(&self, board: &smtptui::lab::ClassBoard) -> i32 {
        use smtptui::lab::dashboard;
        let mut status = exit::PASSED;
        if !self.roster.is_anonymous() {
            let grid = board.read(dashboard::grid_text);
            let _ = write!(std::io::stdout().lock(), "\nThe class at the end:\n{grid}");
        }
        for path in &self.exports {
            let now = std::time::SystemTime::now();
            let content = board.read(|class| {
                if path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
                {
                    class.csv()
                } else {
                    serde_json::to_string_pretty(&class.json(now)).unwrap_or_default() + "\n"
                }
            });
            match dashboard::write_new(path, &content) {
                Ok(()) => say!("smtptui lab: results written to {}", path.display()),
                Err(error) => {
                    say!("smtptui lab: {error}");
                    status = exit::FAILURE;
                }
            }
        }
        status
    }
}

fn lab_status_command(args: LabStatusArgs) -> i32 {
    let default_port = if args.tls == TlsChoice::Implicit {
        465
    } else {
        smtptui::lab::profile::DEFAULT_PORT_BASE + smtptui::lab::Profile::Mx.port_offset()
    };
    let config = match server_config(
        &args.target,
        default_port,
        args.tls,
        args.ca_file.as_deref(),
        args.servername.as_deref(),
        args.timeout,
    ) {
        Ok(config) => config,
        Err(message) => return usage_error(message),
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(smtptui::lab::status::fetch(config, args.student.as_deref())) {
        Ok(lines) => {
            let mut stdout = std::io::stdout().lock();
            for line in lines {
                let _ = writeln!(stdout, "{line}");
            }
            exit::PASSED
        }
        Err(error @ smtptui::lab::status::StatusError::BadId(_)) => usage_error(error),
        Err(error) => {
            say!("smtptui lab-status: {error}");
            exit::FAILURE
        }
    }
}

/// Ctrl-C, the terminal closing (SIGHUP) and a polite kill (SIGTERM), so the lab shuts down
/// cleanly in each case and removes the CA directory it made. Installed before the lab says
/// it is ready: a signal sent as soon as its table appears must not kill it outright.
struct StopSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hangup: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())?,
                hangup: signal(SignalKind::hangup())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Waits for one of them; says which, in words.
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => "Ctrl-C",
                _ = self.hangup.recv() => "the terminal closed",
                _ = self.terminate.recv() => "asked to terminate",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}

/// Parses `--listen`: an IP address and a port, `localhost:PORT` meaning 127.0.0.1. Port 0
/// lets the system choose (the table shows the port). Other host names are not resolved on
/// purpose: the lab must listen exactly where the instructor said.
fn listen_addr(text: &str) -> Result<std::net::SocketAddr, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<std::net::SocketAddr>() {
        return Ok(addr);
    }
    match text.rsplit_once(':') {
        Some((host, port)) if host.eq_ignore_ascii_case("localhost") => port
            .parse::<u16>()
            .map(|port| std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .map_err(|_| format!("{port:?} is not a port number")),
        _ => Err("give IP:PORT, e.g. 127.0.0.1:2587 or [::1]:2587".to_owned()),
    }
}

fn tui_command(target: &str, cli: &Cli) -> i32 {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return usage_error(
            "the interactive UI needs a terminal; for scripts use 'smtptui run SCENARIO HOST[:PORT]'",
        );
    }
    let config = match session_config(target, &cli.connect) {
        Ok(config) => config,
        Err(message) => return usage_error(message),
    };
    let script = match &cli.script {
        Some(path) => match Scenario::load(path) {
            Ok(scenario) => Some(scenario),
            Err(error) => return usage_error(error),
        },
        None => None,
    };
    // Only non-interactive sources here: the UI asks for the password itself, hidden.
    let secret = if cli.connect.password_file.is_some()
        || std::env::var_os(smtptui::secret::PASSWORD_ENV).is_some_and(|v| !v.is_empty())
    {
        match obtain_secret(cli.connect.password_file.as_deref(), "", false) {
            Ok((secret, _)) => Some(secret),
            Err(error) => return usage_error(error),
        }
    } else {
        None
    };
    let mut config = config;
    if let Some(secret) = &secret {
        config.known_secrets = credential_forms(cli.connect.user.as_deref(), secret);
    }
    let options = smtptui::tui::Options {
        script,
        user: cli.connect.user.clone(),
        secret,
        exit_after_first_frame: cli.exit_after_first_frame,
        ..Default::default()
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(smtptui::tui::run(config, options)) {
        // 128 + N after signal N, as a shell reports a process that signal ended.
        Ok(ended) => ended.exit_status(),
        Err(error) => {
            say!("smtptui: terminal error: {error}");
            exit::FAILURE
        }
    }
}

fn demo_command(args: DemoArgs) -> i32 {
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    // CI and pipes get the scripted story; a person at a terminal gets the UI.
    let interactive = std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    if !args.headless && interactive {
        return match runtime.block_on(smtptui::tui::demo(args.exit_after_first_frame)) {
            Ok(ended) => ended.exit_status(),
            Err(message) => {
                say!("smtptui demo: {message}");
                exit::FAILURE
            }
        };
    }
    let palette = Palette::new(colour_on_stdout());
    let print: smtptui::lab::demo::Printer = std::sync::Arc::new(|line| {
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    });
    runtime.block_on(smtptui::lab::demo::run(palette, print))
}

/// A scenario named on the command line of `smtptui run`.
enum Source {
    /// A file (given, or found in a directory given).
    File(std::path::PathBuf),
    /// `-`: standard input.
    Stdin,
    /// A scenario built into the binary.
    Builtin(&'static builtin::Builtin),
}

/// What each argument names: a file, every `.smtp` file of a directory (in name order), `-`,
/// or a built-in scenario. A path that exists wins over a built-in name.
fn resolve_sources(arguments: &[String]) -> Result<Vec<Source>, String> {
    let mut sources = Vec::new();
    for argument in arguments {
        if argument == "-" {
            if sources.iter().any(|s| matches!(s, Source::Stdin)) {
                return Err("'-' (standard input) can be given only once".to_owned());
            }
            sources.push(Source::Stdin);
            continue;
        }
        let path = std::path::Path::new(argument);
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                let read = |e: std::io::Error| format!("cannot read the directory {argument}: {e}");
                let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(path)
                    .map_err(read)?
                    .map(|entry| entry.map(|e| e.path()).map_err(read))
                    .collect::<Result<Vec<_>, _>>()?
                    .into_iter()
                    .filter(|p| p.extension().is_some_and(|e| e == "smtp") && p.is_file())
                    .collect();
                if files.is_empty() {
                    return Err(format!(
                        "the directory {argument} holds no .smtp file (scenarios end in .smtp)"
                    ));
                }
                files.sort();
                sources.extend(files.into_iter().map(Source::File));
            }
            Ok(_) => sources.push(Source::File(path.to_owned())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                // Something that looks like a path is a path that is missing, never a name.
                if argument.contains('/') || argument.ends_with(".smtp") {
                    return Err(format!("{argument}: no such scenario file"));
                }
                sources.push(Source::Builtin(builtin::find(argument)?));
            }
            Err(error) => return Err(format!("cannot read {argument}: {error}")),
        }
    }
    Ok(sources)
}

/// A scenario ready to run, with the directory its built-in message files are in (removed
/// when dropped).
struct Loaded {
    scenario: Scenario,
    _files: Option<builtin::FilesDirectory>,
}

fn load_source(source: &Source) -> Result<Loaded, smtptui::scenario::ScenarioError> {
    match source {
        Source::File(path) => Ok(Loaded {
            scenario: Scenario::load(path)?,
            _files: None,
        }),
        // FILE lines of a scenario on standard input are relative to the working directory.
        Source::Stdin => Ok(Loaded {
            scenario: Scenario::read("stdin", std::io::stdin().lock(), std::path::Path::new(""))?,
            _files: None,
        }),
        Source::Builtin(builtin) => {
            let materialized = builtin::materialize(builtin, &std::env::temp_dir())?;
            Ok(Loaded {
                scenario: materialized.scenario,
                _files: materialized.files,
            })
        }
    }
}

fn completions_command(args: CompletionsArgs) -> i32 {
    use clap::CommandFactory as _;
    let mut command = Cli::command();
    // Into memory first: the generator panics on a write error, and a closed stdout (piped
    // into `head`) is no reason to.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "smtptui", &mut script);
    let _ = std::io::stdout().lock().write_all(&script);
    exit::PASSED
}

fn man_command(args: ManArgs) -> i32 {
    use clap::CommandFactory as _;
    // The page's NAME line reads "smtptui - a safer telnet for SMTP".
    let command = Cli::command()
        .name("smtptui")
        .about("a safer telnet for SMTP");
    let Some(dir) = args.dir else {
        let mut page = Vec::new();
        if let Err(error) = clap_mangen::Man::new(command).render(&mut page) {
            say!("smtptui: cannot render the manual page: {error}");
            return exit::FAILURE;
        }
        let _ = std::io::stdout().lock().write_all(&page);
        return exit::PASSED;
    };
    if let Err(error) = std::fs::create_dir_all(&dir) {
        return usage_error(format!("cannot make {}: {error}", dir.display()));
    }
    // smtptui.1, then smtptui-run.1 and the rest, named as `man smtptui-run` finds them.
    let mut pages = vec![("smtptui".to_owned(), command.clone())];
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("smtptui-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    let mut stdout = std::io::stdout().lock();
    for (name, page) in pages {
        let path = dir.join(format!("{name}.1"));
        let mut rendered = Vec::new();
        let written = clap_mangen::Man::new(page)
            .render(&mut rendered)
            .and_then(|()| std::fs::write(&path, &rendered));
        if let Err(error) = written {
            say!("smtptui: cannot write {}: {error}", path.display());
            return exit::FAILURE;
        }
        let _ = writeln!(stdout, "{}", path.display());
    }
    exit::PASSED
}

fn diff_command(args: DiffArgs) -> i32 {
    let read = |path: &std::path::Path| {
        let file = std::fs::File::open(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        smtptui::diff::read(&path.display().to_string(), std::io::BufReader::new(file))
            .map_err(|e| e.to_string())
    };
    let (before, after) = match (read(&args.before), read(&args.after)) {
        (Ok(before), Ok(after)) => (before, after),
        (Err(message), _) | (_, Err(message)) => return usage_error(message),
    };
    let differences = smtptui::diff::compare(&before, &after);
    let mut stdout = std::io::stdout().lock();
    // The lines quote the servers: never let their bytes reach the terminal raw.
    for difference in &differences {
        let _ = writeln!(
            stdout,
            "{}",
            smtptui::proto::escape::escape_str(&difference.to_string())
        );
    }
    if differences.is_empty() {
        let _ = writeln!(
            stdout,
            "no change in the server's behaviour ({} replies compared; times, queue ids, dates \
             and session ids ignored)",
            after.exchanges.len()
        );
        exit::PASSED
    } else {
        let _ = writeln!(
            stdout,
            "{} change{} in the server's behaviour",
            differences.len(),
            if differences.len() == 1 { "" } else { "s" }
        );
        exit::EXPECTATION_FAILED
    }
}

fn scenarios_command(args: ScenariosArgs) -> i32 {
    let mut stdout = std::io::stdout().lock();
    match args.name {
        Some(name) => match builtin::find(&name) {
            Ok(found) => {
                let _ = stdout.write_all(found.text.as_bytes());
                exit::PASSED
            }
            Err(message) => usage_error(message),
        },
        None => {
            let width = builtin::SCENARIOS
                .iter()
                .map(|b| b.name.len())
                .max()
                .unwrap_or(0);
            for scenario in builtin::SCENARIOS {
                let _ = writeln!(stdout, "{:width$}  {}", scenario.name, scenario.summary());
            }
            let _ = writeln!(
                stdout,
                "\nRun one: smtptui run NAME HOST[:PORT] (a prefix of the name will do). \
                 Keep one as a file: smtptui scenarios NAME > mine.smtp"
            );
            exit::PASSED
        }
    }
}

fn run_command(args: RunArgs) -> i32 {
    if args.operands.len() < 2 {
        return usage_error(format!(
            "give the scenario and then the server: smtptui run SCENARIO... HOST[:PORT] (got \
             only {:?}; smtptui scenarios lists the built-in ones)",
            args.target()
        ));
    }
    let sources = match resolve_sources(args.scenarios()) {
        Ok(sources) => sources,
        Err(message) => return usage_error(message),
    };
    // Every scenario is read and checked before the first connection: a typo in the tenth
    // file is reported now, not after nine sessions.
    let mut loaded = Vec::with_capacity(sources.len());
    for source in &sources {
        match load_source(source) {
            Ok(scenario) => loaded.push(scenario),
            Err(error) => return usage_error(error),
        }
    }
    let lmtp = args.protocol == Some(cli::ProtocolChoice::Lmtp);
    for Loaded { scenario, .. } in &loaded {
        let checked = match args.protocol {
            Some(protocol) => scenario.check_protocol(protocol == cli::ProtocolChoice::Lmtp),
            None => Ok(()),
        }
        .and_then(|()| {
            if args.literal {
                Ok(())
            } else {
                scenario.check_envelopes()
            }
        });
        if let Err(error) = checked {
            return usage_error(error);
        }
    }
    let config = match session_config(args.target(), &args.connect) {
        Ok(config) => config,
        Err(message) => return usage_error(message),
    };
    let mut config = config;
    config.sasl.force = args.force;
    // LMTP has no port of its own in RFC 2033; 24 is where servers (Dovecot's example among
    // them) put it, and it must never be 25.
    if lmtp
        && args.connect.tls != TlsChoice::Implicit
        && matches!(cli::parse_target(args.target()), Ok((_, None)))
    {
        config.port = 24;
    }
    // The first scenario with bare AUTH steps asks for the credentials; all of them use those.
    let needs_credentials = loaded
        .iter()
        .find(|l| l.scenario.auth_steps().next().is_some())
        .unwrap_or(&loaded[0]);
    let credentials = match credentials_for(&needs_credentials.scenario, &args.connect) {
        Ok(credentials) => credentials,
        Err(message) => return usage_error(message),
    };
    config.known_secrets = match known_secrets(credentials.as_ref(), &args.connect) {
        Ok(secrets) => secrets,
        Err(message) => return usage_error(message),
    };
    let transcript_file = match open_transcript(args.transcript.as_deref()) {
        Ok(file) => file.map(|(_, file)| BufWriter::new(file)),
        Err(message) => return usage_error(message),
    };
    // Made before the run, so that a report that cannot be written is a usage error up front.
    let junit_file = match &args.junit {
        Some(path) => match std::fs::File::create(path) {
            Ok(file) => Some((path, file)),
            Err(error) => {
                return usage_error(format!(
                    "cannot write the JUnit report to {}: {error}",
                    path.display()
                ));
            }
        },
        None => None,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            say!("smtptui: cannot start the async runtime: {error}");
            return exit::FAILURE;
        }
    };
    let options = runner::RunOptions {
        force: args.force,
        literal: args.literal,
    };
    let palette = Palette::new(colour_on_stdout());
    let started = std::time::SystemTime::now();
    let results = if loaded.len() == 1 {
        // One scenario: its transcript as it happens, as a person watching expects.
        let scenario = &loaded[0].scenario;
        let sink = output_sink(args.json, palette, transcript_file);
        let result = runtime.block_on(runner::batch::run_case(
            scenario,
            config,
            credentials,
            options,
            runner::batch::Shown::Live(sink),
            junit_file.is_some(),
        ));
        // The reasons can quote the server; never let its bytes reach the terminal raw.
        say!(
            "smtptui: {}",
            smtptui::proto::escape::escape_str(&result.outcome.summary(&scenario.name))
        );
        vec![result]
    } else {
        run_many(
            &loaded,
            &args,
            config,
            credentials,
            options,
            palette,
            transcript_file,
            &runtime,
        )
    };
    if let Some((path, mut file)) = junit_file {
        let report = runner::junit::report(args.target(), started, &results);
        if let Err(error) = file.write_all(report.as_bytes()) {
            say!(
                "smtptui: cannot write the JUnit report to {}: {error}",
                path.display()
            );
            return exit::FAILURE;
        }
    }
    results
        .iter()
        .map(|r| r.outcome.exit_code())
        .find(|&code| code != exit::PASSED)
        .unwrap_or(exit::PASSED)
}

/// Several scenarios: a line each as it finishes (in the order given), the transcripts of
/// those that did not pass (all of them with --json), every transcript in the --transcript
/// file, and the tally.
#[allow(clippy::too_many_arguments)]
fn run_many(
    loaded: &[Loaded],
    args: &RunArgs,
    config: SessionConfig,
    credentials: Option<Credentials>,
    options: runner::RunOptions,
    palette: Palette,
    mut transcript_file: Option<BufWriter<std::fs::File>>,
    runtime: &tokio::runtime::Runtime,
) -> Vec<runner::batch::CaseResult> {
    let scenarios: Vec<&Scenario> = loaded.iter().map(|l| &l.scenario).collect();
    let render = if args.json {
        runner::batch::Render::Json
    } else {
        runner::batch::Render::Text(palette)
    };
    let mut results = Vec::with_capacity(scenarios.len());
    let mut stdout = std::io::stdout().lock();
    runtime.block_on(runner::batch::run_all(
        &scenarios,
        &config,
        credentials.as_ref(),
        options,
        usize::from(args.jobs),
        render,
        |result| {
            // A closed stdout (piped into `head`) must not stop the other scenarios.
            if args.json || !result.passed() {
                for line in &result.display {
                    let _ = writeln!(stdout, "{line}");
                }
            }
            if let Some(file) = transcript_file.as_mut() {
                let _ = writeln!(file, "=== {}", result.name);
                for line in &result.plain {
                    let _ = writeln!(file, "{line}");
                }
            }
            say!(
                "smtptui: {} ({:.2} s)",
                smtptui::proto::escape::escape_str(&result.outcome.summary(&result.name)),
                result.elapsed.as_secs_f64()
            );
            results.push(result);
        },
    ));
    let _ = stdout.flush();
    say!("smtptui: {}", runner::batch::tally(&results));
    results
}

/// Opens the `--transcript` file, private (mode 0600) whatever it was before, before any
/// connection: a file that cannot be written is a usage error up front.
fn open_transcript(
    path: Option<&std::path::Path>,
) -> Result<Option<(std::path::PathBuf, std::fs::File)>, String> {
    let Some(path) = path else {
        return Ok(None);
    };
    smtptui::transcript::create_private_file(path)
        .map(|file| Some((path.to_owned(), file)))
        .map_err(|error| format!("cannot write the transcript to {}: {error}", path.display()))
}

/// Prints each event as it happens, and copies the plain text to the transcript file.
///
/// On a terminal each line shows as it happens; into a pipe or file the output is buffered
/// (a large DATA is a million lines), and flushed when the session ends and drops the sink.
fn output_sink(
    json: bool,
    palette: Palette,
    mut file: Option<BufWriter<std::fs::File>>,
) -> EventSink {
    let mut stdout: Box<dyn Write + Send> = if std::io::stdout().is_terminal() {
        Box::new(LineWriter::new(std::io::stdout()))
    } else {
        Box::new(BufWriter::with_capacity(64 * 1024, std::io::stdout()))
    };
    Box::new(move |event: Event| {
        // A closed stdout (say, piped into `head`) must not stop the session.
        if json {
            let _ = writeln!(stdout, "{}", event.to_json());
        } else {
            for line in event.to_text_lines(palette) {
                let _ = writeln!(stdout, "{line}");
            }
        }
        if let Some(file) = file.as_mut() {
            for line in event.to_text_lines(Palette::new(false)) {
                let _ = writeln!(file, "{line}");
            }
        }
    })
}

/// Whether `host` is this machine: a loopback address, `localhost`, or a UNIX socket.
fn is_local_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.starts_with(cli::UNIX_PREFIX)
        || bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn bench_command(args: cli::BenchArgs) -> i32 {
    use smtptui::runner::bench;
    let sources = match resolve_sources(std::slice::from_ref(&args.scenario)) {
        Ok(sources) => sources,
        Err(message) => return usage_error(message),
    };
    let [source] = sources.as_slice() else {
        return usage_error(format!(
            "{}: bench replays one scenario; give a file, not a directory of them",
            args.scenario
        ));
    };
    let loaded = match load_source(source) {
        Ok(loaded) => loaded,
        Err(error) => return usage_error(error),
    };
    if let Err(error) = loaded.scenario.check_envelopes() {
        return usage_error(error);
    }
    let mut config = match session_config(&args.target, &args.connect) {
        Ok(config) => config,
        Err(message) => return usage_error(message),
    };
    if !args.allow_remote && !is_local_host(&config.host) {
        return usage_error(format!(
            "{} is not on this machine: bench puts load on a server, and load on someone \
             else's server can look like an attack and hurt its users. Give --allow-remote \
             only for a server you run or have permission to load",
            args.target
        ));
    }
    let credentials = match credentials_for(&loaded.scenario, &args.connect) {
        Ok(credentials) => credentials,
        Err(message) => return usage_error(message),
    };
    config.known_secrets = match known_secrets(credentials.as_ref(), &args.connect) {
        Ok(secrets) => secrets,
        Err(message) => return usage_error(message),
    };
    let plan = bench::Plan {
        concurrency: args.concurrency,
        sessions: args.sessions.unwrap_or(if args.duration.is_some() {
            bench::MAX_SESSIONS
        } else {
            100
        }),
        duration: args.duration,
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let scenario = std::sync::Arc::new(loaded.scenario.clone());
    let run = bench::Bench::new();
    let screen = !args.quiet && !args.no_tui && std::io::stdout().is_terminal();
    runtime.block_on(async {
        let work = bench::run(
            run.clone(),
            scenario,
            config,
            credentials,
            runner::RunOptions::default(),
            plan,
        );
        if screen {
            let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
            let work = tokio::spawn(async move {
                work.await;
                let _ = done_tx.send(());
            });
            let shown = runner::bench_view::run(run.clone(), plan, async {
                let _ = done_rx.await;
            })
            .await;
            if let Err(error) = shown {
                // The screen failed (the terminal went away): the run goes on, unseen.
                say!("smtptui: the live view stopped: {error}");
            }
            let _ = work.await;
            return;
        }
        let watched = run.clone();
        let quiet = args.quiet;
        let progress = tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            tick.tick().await;
            let mut last = 0;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = tokio::signal::ctrl_c() => {
                        if watched.stopped() {
                            say!("smtptui: interrupted again: leaving without a summary");
                            std::process::exit(130);
                        }
                        say!(
                            "smtptui: interrupted: no new sessions; waiting for those open \
                             (Ctrl-C again to leave now)"
                        );
                        watched.stop();
                        continue;
                    }
                }
                if quiet {
                    continue;
                }
                let stats = watched.snapshot();
                let session = stats.step(bench::Step::Session);
                say!(
                    "smtptui: {:>6.1} s  {:>8} done ({:>7}/s now)  {:>4} open  {} failed  \
                     session p50 {:.1} ms p99 {:.1} ms",
                    watched.elapsed().as_secs_f64(),
                    stats.finished,
                    stats.finished.saturating_sub(last),
                    watched.in_flight(),
                    stats.failed(),
                    session.percentile(0.5).as_secs_f64() * 1000.0,
                    session.percentile(0.99).as_secs_f64() * 1000.0,
                );
                last = stats.finished;
            }
        });
        work.await;
        progress.abort();
    });
    let elapsed = run.elapsed();
    let stats = run.snapshot();
    let mut stdout = std::io::stdout().lock();
    let _ = if args.json {
        writeln!(stdout, "{}", bench::json_summary(&stats, elapsed, &plan))
    } else {
        write!(stdout, "{}", bench::text_summary(&stats, elapsed, &plan))
    };
    let _ = stdout.flush();
    drop(loaded);
    if let Some(code) = stats.first_failure_code {
        return code;
    }
    if run.stopped() {
        // Stopped by hand: what ran passed, but the run asked for was not done.
        say!(
            "smtptui: stopped by hand after {} of the sessions asked for",
            stats.finished
        );
        return 130;
    }
    exit::PASSED
}

fn session_config(target: &str, args: &ConnectArgs) -> Result<SessionConfig, String> {
    if args.password.is_some() {
        return Err(format!(
            "there is no --password option, on purpose: a password on the command line is visible \
             to other users of this machine and stays in your shell history (where the one you just \
             typed now is; consider changing it). Use --password-file PATH, ${}, or let smtptui ask",
            smtptui::secret::PASSWORD_ENV
        ));
    }
    let default_port = if args.tls == TlsChoice::Implicit {
        465
    } else {
        25
    };
    let mut config = server_config(
        target,
        default_port,
        args.tls,
        args.ca_file.as_deref(),
        args.servername.as_deref(),
        args.timeout,
    )?;
    config.trust.continue_unverified = args.insecure;
    if let Some(cert) = &args.cert {
        let key = args.key.as_deref().unwrap_or(cert);
        config.trust.client_identity =
            Some(smtptui::tls::ClientIdentity::load(cert, key).map_err(|e| e.to_string())?);
    }
    config.sasl.initial_response = !args.no_sasl_ir;
    config.trust.roots = match args.trust {
        cli::TrustChoice::Webpki => tls::TrustRoots::WebPki,
        cli::TrustChoice::System => tls::TrustRoots::System,
        cli::TrustChoice::Both => tls::TrustRoots::Both,
    };
    if config.trust.roots != tls::TrustRoots::WebPki {
        // Read before connecting: an unusable store is a usage error, not a failed session.
        tls::system_roots().map_err(|e| format!("--trust: {e}"))?;
    }
    config.policy = GuardPolicy {
        allow_cleartext_auth: args.allow_cleartext_auth,
        allow_unverified_auth: args.insecure,
    };
    config.transport = transport(&config.host, &args.wire, &args.tls_offer)?;
    Ok(config)
}

/// The transport options as the session takes them, checked: each bad combination is named
/// with its fix before anything connects.
fn transport(
    host: &str,
    wire: &cli::WireArgs,
    offer: &cli::TlsOfferArgs,
) -> Result<smtptui::session::Transport, String> {
    use smtptui::session::{AddressFamily, ProxyRequest, Transport};
    let unix = host.starts_with(cli::UNIX_PREFIX);
    let family = match (wire.ipv4, wire.ipv6) {
        (true, _) => Some(AddressFamily::V4),
        (_, true) => Some(AddressFamily::V6),
        _ => None,
    };
    if unix && (family.is_some() || wire.local_addr.is_some()) {
        return Err(format!(
            "{host} is a UNIX domain socket: -4, -6 and --local-addr apply only to TCP; drop them"
        ));
    }
    if let (Some(family), Some(local)) = (family, wire.local_addr)
        && (family == AddressFamily::V4) != local.is_ipv4()
    {
        return Err(format!(
            "--local-addr {local} is not of the family -4/-6 asks for; give an address of that \
             family"
        ));
    }
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        let other = match family {
            Some(AddressFamily::V4) => ip.is_ipv6(),
            Some(AddressFamily::V6) => ip.is_ipv4(),
            None => wire.local_addr.is_some_and(|l| l.is_ipv4() != ip.is_ipv4()),
        };
        if other {
            return Err(format!(
                "{ip} cannot be reached over the family asked for (-4, -6 or that of \
                 --local-addr); connect to an address of that family"
            ));
        }
    }
    let proxy = match (wire.proxy_protocol, wire.proxy_source) {
        (Some(version), Some(source)) => {
            let version = match version {
                cli::ProxyArg::V1 => smtptui::proto::proxy::ProxyVersion::V1,
                cli::ProxyArg::V2 => smtptui::proto::proxy::ProxyVersion::V2,
            };
            if let Some(destination) = wire.proxy_dest {
                smtptui::proto::proxy::ProxyHeader::new(version, source, destination)
                    .map_err(|e| e.to_string())?;
            } else if unix {
                return Err(
                    "a PROXY header over a UNIX domain socket needs --proxy-dest ADDR:PORT"
                        .to_owned(),
                );
            }
            Some(ProxyRequest {
                version,
                source,
                destination: wire.proxy_dest,
            })
        }
        _ => None,
    };
    let key_log = if wire.keylog_from_env {
        match std::env::var_os("SSLKEYLOGFILE") {
            Some(path) if !path.is_empty() => Some(std::path::PathBuf::from(path)),
            _ => {
                return Err(
                    "--keylog-from-env: $SSLKEYLOGFILE is not set; set it to the key log file, \
                     or give --keylog FILE"
                        .to_owned(),
                );
            }
        }
    } else {
        wire.keylog.clone()
    };
    let tls = tls::TlsChoices {
        min: offer.tls_min,
        max: offer.tls_max,
        suites: offer.ciphers.clone(),
        key_log,
    };
    tls.resolve().map_err(|e| e.to_string())?;
    Ok(Transport {
        family,
        local: wire.local_addr,
        proxy,
        tls,
    })
}

/// The configuration every command that connects shares: target and port, how TLS starts,
/// trust anchors and server name, deadline. Strict by default: no guard override, and a failed
/// certificate verification ends the session; callers relax only what their flags say.
fn server_config(
    target: &str,
    default_port: u16,
    tls_choice: TlsChoice,
    ca_file: Option<&std::path::Path>,
    servername: Option<&str>,
    timeout: std::time::Duration,
) -> Result<SessionConfig, String> {
    let (host, port) = cli::parse_target(target)?;
    let port = port.unwrap_or(default_port);
    let tls_mode = match tls_choice {
        TlsChoice::Implicit => TlsMode::Implicit,
        TlsChoice::Starttls => TlsMode::StartTls,
        TlsChoice::Auto if port == 465 => TlsMode::Implicit,
        TlsChoice::Auto => TlsMode::StartTls,
    };
    let extra_roots = match ca_file {
        Some(path) => TrustSettings::load_ca_file(path).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    // A UNIX socket has no host name to verify a certificate against: TLS over one (rare)
    // needs --servername; localhost is the name a local server's certificate would carry.
    let server_name = match servername {
        Some(name) => name.to_owned(),
        None if host.starts_with(cli::UNIX_PREFIX) => "localhost".to_owned(),
        None => host.clone(),
    };
    tls::server_name(&server_name).map_err(|e| e.to_string())?;
    Ok(SessionConfig {
        host,
        port,
        tls_mode,
        server_name,
        trust: TrustSettings {
            extra_roots,
            continue_unverified: false,
            client_identity: None,
            roots: Default::default(),
        },
        policy: GuardPolicy::default(),
        timeout,
        limits: ReplyLimits::default(),
        unasked: smtptui::session::UnaskedReplies::Fatal,
        known_secrets: Vec::new(),
        sasl: Default::default(),
        transport: smtptui::session::Transport::default(),
    })
}

/// Whether `smtptui audit TARGET` audits a domain: `--domain` says so; otherwise a name
/// without a port, given without any option that only a single server takes. A port or an
/// IP address is one server.
fn audit_is_domain(args: &AuditArgs) -> Result<bool, String> {
    let (host, port) = cli::parse_target(&args.target)?;
    let is_ip = host.parse::<std::net::IpAddr>().is_ok();
    let server_options: Vec<&str> = [
        (args.role.is_some(), "--role"),
        (args.tls != TlsChoice::Auto, "--tls"),
        (args.servername.is_some(), "--servername"),
        (args.implicit_port.is_some(), "--implicit-port"),
        (args.no_implicit, "--no-implicit"),
        (args.smuggling_to.is_some(), "--smuggling-to"),
        (args.tls_offer.tls_min.is_some(), "--tls-min"),
        (args.tls_offer.tls_max.is_some(), "--tls-max"),
        (!args.tls_offer.ciphers.is_empty(), "--cipher"),
    ]
    .into_iter()
    .filter_map(|(given, name)| given.then_some(name))
    .collect();
    let domain_options: Vec<&str> = [
        (args.resolver.is_some(), "--resolver"),
        (args.trust_anchor.is_some(), "--trust-anchor"),
        (args.sending_report.is_some(), "--sending-report"),
    ]
    .into_iter()
    .filter_map(|(given, name)| given.then_some(name))
    .collect();
    let domain = if args.domain {
        if port.is_some() || is_ip {
            return Err(format!(
                "--domain takes a domain name, and {:?} is a server (a port or an IP address); \
                 drop --domain to audit that server, or give the domain alone",
                args.target
            ));
        }
        true
    } else {
        port.is_none() && !is_ip && server_options.is_empty()
    };
    if domain && !server_options.is_empty() {
        return Err(format!(
            "{} only apply to one server, not to a domain audit; give HOST:PORT to audit a \
             server",
            server_options.join(", ")
        ));
    }
    if !domain && !domain_options.is_empty() {
        return Err(format!(
            "{} only apply to a domain audit; give the domain without a port (or --domain)",
            domain_options.join(", ")
        ));
    }
    Ok(domain)
}

fn audit_command(args: AuditArgs) -> i32 {
    use smtptui::audit::{self, AuditConfig, Recorder, Role, report};
    match audit_is_domain(&args) {
        Ok(true) => return domain_audit_command(args),
        Ok(false) => {}
        Err(message) => return usage_error(message),
    }
    let role = args.role.map(|role| match role {
        cli::RoleArg::Mx => Role::Mx,
        cli::RoleArg::Submission => Role::Submission,
    });
    let default_port = match (args.tls, role) {
        (TlsChoice::Implicit, _) => 465,
        (_, Some(Role::Submission)) => 587,
        _ => 25,
    };
    let session = match server_config(
        &args.target,
        default_port,
        args.tls,
        args.ca_file.as_deref(),
        args.servername.as_deref(),
        args.timeout,
    ) {
        Ok(config) => config,
        Err(message) => return usage_error(message),
    };
    let mut session = session;
    session.transport.tls = tls::TlsChoices {
        min: args.tls_offer.tls_min,
        max: args.tls_offer.tls_max,
        suites: args.tls_offer.ciphers.clone(),
        key_log: None,
    };
    if let Err(error) = session.transport.tls.resolve() {
        return usage_error(error.to_string());
    }
    let offered = session.transport.tls.describe();
    if args.implicit_port == Some(0) {
        return usage_error("--implicit-port 0 is not a port number (1-65535)");
    }
    // Created before any probe so a path that cannot be written is a usage error, not a
    // finished audit whose transcript is lost.
    let transcript_file = match open_transcript(args.transcript.as_deref()) {
        Ok(file) => file,
        Err(message) => return usage_error(message),
    };
    let config = AuditConfig {
        session,
        role,
        implicit_port: args.implicit_port,
        no_implicit: args.no_implicit,
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let recorder = Recorder::new();
    let result = match &args.smuggling_to {
        Some(to) => runtime.block_on(audit::probe::run_with_smuggling(config, &recorder, to)),
        None => runtime.block_on(audit::probe::run(config, &recorder)),
    };
    if let Some((path, mut file)) = transcript_file {
        let text = smtptui::transcript::render_plain(&recorder.events());
        if let Err(error) = file.write_all(text.as_bytes()) {
            say!(
                "smtptui: cannot write the transcript to {}: {error}",
                path.display()
            );
        }
    }
    let audit = match result {
        Ok(audit) => audit,
        Err(error) => {
            say!("smtptui: {error}");
            return audit::exit::UNREACHABLE;
        }
    };
    let findings = audit.findings();
    let target = &audit.observations.target;
    let mut stdout = std::io::stdout().lock();
    // A closed stdout (piped into `head`) must not change the verdict.
    if args.json {
        let mut value = report::render_json(target, &audit.role, &findings);
        if let Some(smuggling) = report::smuggling_json(&audit.observations.smuggling) {
            value["smuggling"] = smuggling;
        }
        if let (Some(offered), Some(object)) = (&offered, value.as_object_mut()) {
            object.insert("tls_offered".to_owned(), offered.clone().into());
        }
        let _ = writeln!(stdout, "{value}");
    } else {
        // The findings about TLS hold for what this audit offered, when that was limited.
        if let Some(offered) = &offered {
            let _ = writeln!(stdout, "{offered} (--tls-min, --tls-max, --cipher)");
        }
        let _ = write!(
            stdout,
            "{}",
            report::render_text(target, &audit.role, &findings, colour_on_stdout())
        );
    }
    if audit::has_failure(&findings) {
        audit::exit::FAILED
    } else {
        audit::exit::PASSED
    }
}

/// `smtptui audit DOMAIN`: the DNS, every MX address probed, the table and the findings.
fn domain_audit_command(args: AuditArgs) -> i32 {
    use smtptui::audit::domain::{self, DomainConfig, dns, model::SMTP_PORT, report};
    let mut session = match server_config(
        &args.target,
        SMTP_PORT,
        TlsChoice::Starttls,
        args.ca_file.as_deref(),
        None,
        args.timeout,
    ) {
        Ok(config) => config,
        Err(message) => return usage_error(message),
    };
    let domain_name = domain::probe::normalise(&session.host);
    if !domain_name.contains('.') && args.resolver.is_none() {
        return usage_error(format!(
            "{:?} has no dot: give the mail domain (example.com), or HOST:PORT to audit one \
             server",
            args.target
        ));
    }
    session.host = domain_name.clone();
    let sending = match &args.sending_report {
        Some(path) => match smtptui::lab::grade::read_report(path) {
            Ok(senders) => Some(domain::model::SendingSeen::Graded(senders)),
            Err(message) => return usage_error(format!("--sending-report: {message}")),
        },
        None => None,
    };
    let dns_config = dns::DnsConfig {
        resolver: args.resolver,
        trust_anchor: args.trust_anchor.clone(),
        timeout: args.timeout.min(std::time::Duration::from_secs(5)),
    };
    let transcript_file = match open_transcript(args.transcript.as_deref()) {
        Ok(file) => file,
        Err(message) => return usage_error(message),
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    // The resolver's tasks need the runtime.
    let resolver = {
        let _entered = runtime.enter();
        dns::Dns::new(&dns_config)
    };
    let resolver = match resolver {
        Ok(resolver) => resolver,
        Err(error) => return usage_error(error),
    };
    let config = DomainConfig {
        domain: domain_name.clone(),
        session,
        port: SMTP_PORT,
        deadline: args.mx_deadline,
    };
    let (mut seen, recorders) = runtime.block_on(domain::run(&config, &resolver));
    if let Some(sending) = sending {
        seen.sending = sending;
    }
    if let Some((path, mut file)) = transcript_file {
        let events: Vec<_> = recorders.iter().flat_map(|r| r.events()).collect();
        let text = smtptui::transcript::render_plain(&events);
        if let Err(error) = file.write_all(text.as_bytes()) {
            say!(
                "smtptui: cannot write the transcript to {}: {error}",
                path.display()
            );
        }
    }
    if let dns::Lookup::Failed { why } = &seen.mx {
        say!(
            "smtptui: cannot audit {domain_name}: the MX lookup failed ({why}); nothing could be judged"
        );
        return smtptui::audit::exit::UNREACHABLE;
    }
    let judged = domain::judge(&seen);
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let _ = writeln!(stdout, "{}", report::render_json(&seen.domain, &judged));
    } else {
        let _ = write!(
            stdout,
            "{}",
            report::render_text(&seen.domain, &judged, colour_on_stdout())
        );
    }
    if judged.has_failure() {
        smtptui::audit::exit::FAILED
    } else {
        smtptui::audit::exit::PASSED
    }
}

/// Every form of the password the user configured, so that a line holding it is guarded and
/// hidden even before (or without) an AUTH step: from the credentials a step needed, otherwise
/// from `--password-file` or the environment when given (never from a prompt).
fn known_secrets(
    credentials: Option<&Credentials>,
    args: &ConnectArgs,
) -> Result<Vec<Secret>, String> {
    if let Some(credentials) = credentials {
        return Ok(credential_forms(
            Some(&credentials.user),
            &credentials.secret,
        ));
    }
    let configured = args.password_file.is_some()
        || std::env::var_os(smtptui::secret::PASSWORD_ENV).is_some_and(|v| !v.is_empty());
    if !configured {
        return Ok(Vec::new());
    }
    let (secret, _) =
        obtain_secret(args.password_file.as_deref(), "", false).map_err(|e| e.to_string())?;
    Ok(credential_forms(args.user.as_deref(), &secret))
}

/// Collects credentials before connecting when the scenario has bare AUTH steps, so that a
/// missing password is a usage error up front rather than a failure mid-session.
fn credentials_for(scenario: &Scenario, args: &ConnectArgs) -> Result<Option<Credentials>, String> {
    // EXTERNAL takes its identity from --cert, not from a password.
    let steps: Vec<_> = scenario
        .auth_steps()
        .filter(|(_, mechanism)| mechanism.needs_secret())
        .collect();
    let Some((first, _)) = steps.first() else {
        return Ok(None);
    };
    let user = args.user.clone().ok_or_else(|| {
        let named: Vec<String> = steps
            .iter()
            .map(|(step, mechanism)| format!("'AUTH {}' on line {}", mechanism.name(), step.line))
            .collect();
        format!(
            "{}:{}: {} needs credentials: give --user NAME (the password comes from \
             --password-file PATH, ${} or a prompt)",
            scenario.name,
            first.line,
            named.join(", "),
            smtptui::secret::PASSWORD_ENV
        )
    })?;
    let prompt = if steps.iter().all(|(_, mechanism)| mechanism.takes_token()) {
        format!("OAuth 2.0 access token for {user}: ")
    } else {
        format!("Password for {user}: ")
    };
    let (secret, _) = obtain_secret(
        args.password_file.as_deref(),
        &prompt,
        std::io::stdin().is_terminal(),
    )
    .map_err(|e| e.to_string())?;
    Ok(Some(Credentials { user, secret }))
}

/// `smtptui send`: the command line becomes a scenario ([`smtptui::send::Plan`]), printed with
/// --print-scenario or run exactly as `smtptui run` runs a file.
fn send_command(mut args: SendArgs) -> i32 {
    // A message too large for the scenario waits in a file until the run is over.
    let mut temporary = None;
    let (plan, target) = match send_plan(&mut args, &mut temporary) {
        Ok(parts) => parts,
        Err(message) => return usage_error(message),
    };
    let text = plan.scenario_text();
    let name = "smtptui send";
    let mut scenario = match Scenario::parse(name, &text) {
        Ok(scenario) => scenario,
        Err(error) => return usage_error(error),
    };
    // A --data file is checked before the scenario is printed too: it must replay.
    let cwd = std::path::PathBuf::from(".");
    if let Err(error) = scenario
        .check_files(&cwd)
        .and_then(|()| scenario.check_envelopes())
    {
        return usage_error(error);
    }
    if args.print_scenario {
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
        return exit::PASSED;
    }
    let connect = &args.connect;
    let mut config = match session_config(&target, connect) {
        Ok(config) => config,
        Err(message) => return usage_error(message),
    };
    let credentials = match credentials_for(&scenario, connect) {
        Ok(credentials) => credentials,
        Err(message) => return usage_error(message),
    };
    config.known_secrets = match known_secrets(credentials.as_ref(), connect) {
        Ok(secrets) => secrets,
        Err(message) => return usage_error(message),
    };
    let transcript_file = match open_transcript(args.transcript.as_deref()) {
        Ok(file) => file.map(|(_, file)| BufWriter::new(file)),
        Err(message) => return usage_error(message),
    };
    let sink = output_sink(args.json, Palette::new(colour_on_stdout()), transcript_file);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            say!("smtptui: cannot start the async runtime: {error}");
            return exit::FAILURE;
        }
    };
    let outcome = runtime.block_on(runner::run_with(
        &scenario,
        config,
        credentials,
        runner::RunOptions::default(),
        sink,
    ));
    say!(
        "smtptui: {}",
        smtptui::proto::escape::escape_str(&outcome.summary(&scenario.name))
    );
    outcome.exit_code()
}

/// The plan of `smtptui send`, the target and the connection options it runs with.
fn send_plan(
    args: &mut SendArgs,
    kept: &mut Option<TemporaryMessage>,
) -> Result<(smtptui::send::Plan, String), String> {
    use smtptui::send::{self, Content, MessageSpec, Plan};
    let target = match (&args.target, &args.server) {
        (Some(target), _) | (None, Some(target)) => target.clone(),
        (None, None) => {
            return Err(
                "give the server: smtptui send HOST[:PORT] --to ADDRESS (or --server HOST)"
                    .to_owned(),
            );
        }
    };
    let target = match args.port {
        None => target,
        Some(port) => match cli::parse_target(&target)? {
            (_, Some(given)) if given != port => {
                return Err(format!(
                    "{target} names port {given} and --port says {port}: give one of them"
                ));
            }
            (_, Some(_)) => target,
            (host, None) if host.contains(':') => format!("[{host}]:{port}"),
            (host, None) => format!("{host}:{port}"),
        },
    };
    let connect = &mut args.connect;
    if args.tls_on_connect {
        if connect.tls == TlsChoice::Starttls {
            return Err("--tls-on-connect and --tls starttls contradict each other".to_owned());
        }
        connect.tls = TlsChoice::Implicit;
    }
    if args.no_starttls && connect.tls == TlsChoice::Starttls {
        return Err("--no-starttls and --tls starttls contradict each other".to_owned());
    }
    let config = session_config(&target, connect)?;
    let connect = &args.connect;
    let auth = match (&args.auth, &connect.user) {
        (Some(mechanism), _) => {
            let known = smtptui::proto::sasl::Mechanism::from_name(mechanism).ok_or_else(|| {
                format!(
                    "--auth {mechanism:?}: smtptui runs AUTH PLAIN, LOGIN and XOAUTH2 itself; \
                     name one of them (or write another mechanism's exchange in a scenario for \
                     smtptui run)"
                )
            })?;
            Some(known.name().to_owned())
        }
        (None, Some(_)) => Some("PLAIN".to_owned()),
        (None, None) => None,
    };
    let starttls = match connect.tls {
        TlsChoice::Starttls => true,
        TlsChoice::Implicit => false,
        TlsChoice::Auto => {
            config.tls_mode == TlsMode::StartTls
                && !args.no_starttls
                && (config.port == 587 || auth.is_some())
        }
    };
    let host_name = local_host_name();
    let from = match &args.from {
        Some(from) => send::envelope_address("--from", from, true)?,
        None => {
            let user = std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .unwrap_or_else(|_| "smtptui".to_owned());
            send::envelope_address("--from", &format!("{user}@{host_name}"), true)?
        }
    };
    let mut to = Vec::new();
    let mut cc = Vec::new();
    let mut recipients = Vec::new();
    for (option, values, header) in [
        ("--to", &args.to, Some(&mut to)),
        ("--cc", &args.cc, Some(&mut cc)),
        ("--bcc", &args.bcc, None),
    ] {
        let mut header = header;
        for value in values {
            for address in send::split_addresses(value) {
                let address = send::envelope_address(option, address, false)?;
                if let Some(list) = header.as_mut() {
                    list.push(address.clone());
                }
                recipients.push(address);
            }
        }
    }
    if recipients.is_empty() {
        return Err("--to: give at least one recipient address".to_owned());
    }
    let ehlo = match &args.ehlo {
        Some(name) if name.trim().is_empty() || name.contains(char::is_whitespace) => {
            return Err(format!("--ehlo {name:?}: give one name, without spaces"));
        }
        Some(name) => name.clone(),
        None => host_name.clone(),
    };
    let content = match &args.data {
        Some(path) => {
            let absolute =
                std::path::absolute(path).map_err(|e| format!("--data {}: {e}", path.display()))?;
            Content::File(absolute.display().to_string())
        }
        None => {
            let parse_all = |option: &str, values: &[String]| {
                values
                    .iter()
                    .map(|h| send::parse_header(option, h).map_err(|e| e.to_string()))
                    .collect::<Result<Vec<_>, _>>()
            };
            let spec = MessageSpec {
                from: (!from.is_empty()).then(|| from.clone()),
                to,
                cc,
                headers: parse_all("--header", &args.header)?,
                added: parse_all("--add-header", &args.add_header)?,
                body: send_body(args.body.as_deref())?,
                attachments: args
                    .attach
                    .iter()
                    .map(|spec| send_attachment(spec))
                    .collect::<Result<_, _>>()?,
                date: send::date_header(time::OffsetDateTime::now_utc()),
                id_domain: from
                    .rsplit_once('@')
                    .map_or(host_name.clone(), |(_, domain)| domain.to_owned()),
                random: random_bytes(),
            };
            let large = spec.estimated_size() > send::INLINE_LIMIT;
            match &args.save_message {
                Some(path) => {
                    let file = smtptui::transcript::create_private_file(path)
                        .map_err(|e| format!("--save-message {}: {e}", path.display()))?;
                    write_message_file(spec, file, path)?;
                    let absolute = std::path::absolute(path)
                        .map_err(|e| format!("--save-message {}: {e}", path.display()))?;
                    Content::File(absolute.display().to_string())
                }
                None if large && args.print_scenario => {
                    return Err(send::build_message(spec)
                        .err()
                        .map_or_else(String::new, String::from));
                }
                None if large => {
                    let (file, temporary) = TemporaryMessage::create()?;
                    write_message_file(spec, file, &temporary.0)?;
                    let shown = temporary.0.display().to_string();
                    *kept = Some(temporary);
                    Content::File(shown)
                }
                None => Content::Lines(send::build_message(spec).map_err(|e| e.to_string())?),
            }
        }
    };
    let mut replay = format!("smtptui run THIS-FILE {target}");
    if config.tls_mode == TlsMode::Implicit {
        // Said even on port 465: a target without a port would otherwise replay on 25.
        replay.push_str(" --tls implicit");
    }
    if let Some(path) = &connect.ca_file {
        replay.push_str(&format!(" --ca-file {}", path.display()));
    }
    if let Some(name) = &connect.servername {
        replay.push_str(&format!(" --servername {name}"));
    }
    match connect.trust {
        cli::TrustChoice::Webpki => {}
        cli::TrustChoice::System => replay.push_str(" --trust system"),
        cli::TrustChoice::Both => replay.push_str(" --trust both"),
    }
    if let Some(user) = connect.user.as_ref().filter(|_| auth.is_some()) {
        replay.push_str(&format!(" --user {user}"));
    }
    let plan = Plan {
        ehlo,
        starttls,
        auth,
        from,
        recipients,
        pipeline: args.pipeline,
        content,
        comments: vec![
            "Built by smtptui send; the password is never part of it.".to_owned(),
            format!("Replay: {replay}"),
        ],
    };
    Ok((plan, target))
}

/// Writes the message of `smtptui send` into `file`, one line per line, LF-ended (the
/// runner sends every line ending as CRLF), streamed.
fn write_message_file(
    spec: smtptui::send::MessageSpec,
    file: std::fs::File,
    path: &std::path::Path,
) -> Result<(), String> {
    let mut writer = BufWriter::new(file);
    let failed = |e: std::io::Error| {
        smtptui::send::SendError(format!("cannot write {}: {e}", path.display()))
    };
    smtptui::send::write_message(spec, &mut |line: &str| {
        writer.write_all(line.as_bytes()).map_err(failed)?;
        writer.write_all(b"\n").map_err(failed)
    })?;
    writer.flush().map_err(|e| failed(e).to_string())
}

/// A message file of `smtptui send` in the temporary directory (a new file, mode 600),
/// removed when the run is over.
struct TemporaryMessage(std::path::PathBuf);

impl TemporaryMessage {
    fn create() -> Result<(std::fs::File, Self), String> {
        let random = random_bytes();
        let name: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let path = std::env::temp_dir().join(format!("smtptui-send-{name}.eml"));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&path).map_err(|e| {
            format!(
                "cannot write the message into {} (it is too large for the scenario; give \
                 --save-message FILE to put it elsewhere): {e}",
                path.display()
            )
        })?;
        Ok((file, Self(path)))
    }
}

impl Drop for TemporaryMessage {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The body of `smtptui send`: text, `@FILE`, or `-` for standard input.
fn send_body(body: Option<&str>) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    match body {
        None => Ok(b"This is a test mailing\n".to_vec()),
        Some("-") => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .take(smtptui::scenario::MAX_SCENARIO_BYTES)
                .read_to_end(&mut bytes)
                .map_err(|e| format!("--body -: cannot read standard input: {e}"))?;
            Ok(bytes)
        }
        Some(text) => match text.strip_prefix('@') {
            Some(path) => {
                let file = regular_file("--body", path)?;
                let mut bytes = Vec::new();
                file.take(smtptui::scenario::MAX_SCENARIO_BYTES)
                    .read_to_end(&mut bytes)
                    .map_err(|e| format!("--body @{path}: cannot read it: {e}"))?;
                Ok(bytes)
            }
            None => Ok(text.as_bytes().to_vec()),
        },
    }
}

/// Opens a file named on the command line; a device or a pipe is refused (it could be
/// endless).
fn regular_file(option: &str, path: &str) -> Result<std::fs::File, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("{option} {path}: cannot open it: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("{option} {path}: cannot read it: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{option} {path}: not a regular file"));
    }
    Ok(file)
}

/// An `--attach` file (an `@` before the path, as swaks writes it, is allowed).
fn send_attachment(spec: &str) -> Result<smtptui::send::Attachment, String> {
    let path = spec.strip_prefix('@').unwrap_or(spec);
    let file = regular_file("--attach", path)?;
    let size = file.metadata().ok().map(|m| m.len());
    let name = std::path::Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(smtptui::send::Attachment {
        content_type: smtptui::send::content_type_for(&name).to_owned(),
        name,
        reader: Box::new(std::io::BufReader::new(file)),
        size,
    })
}

/// Sixteen random bytes for a Message-ID and a MIME boundary.
fn random_bytes() -> [u8; 16] {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 16];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        // Uniqueness is all that is needed: the time and the process will do.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = (nanos ^ u128::from(std::process::id())).to_be_bytes();
    }
    bytes
}

/// This machine's name, for EHLO and the default sender: what the kernel says, else
/// /etc/hostname, else `localhost`.
fn local_host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|name| name.trim().to_owned())
        .find(|name| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
        })
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Applies the config file to the commands that connect (the UI, `run`, `send`): `@NAME`
/// becomes the server entry's host and port, and each setting of the entry (or of
/// `[defaults]`) fills an option the command line did not give.
fn configure(cli: &mut Cli, matches: &clap::ArgMatches) -> Result<(), String> {
    use smtptui::config::{self, Config, TlsSetting};
    let (target, connect, given, send) = match &mut cli.command {
        None => match cli.target.as_mut() {
            Some(target) => (target, &mut cli.connect, matches, None),
            None => return Ok(()),
        },
        // The server is the last operand of `run` (after its scenarios).
        Some(Command::Run(args)) => {
            match (matches.subcommand_matches("run"), args.operands.last_mut()) {
                (Some(sub), Some(target)) => (target, &mut args.connect, sub, None),
                _ => return Ok(()),
            }
        }
        Some(Command::Bench(args)) => match matches.subcommand_matches("bench") {
            Some(sub) => (&mut args.target, &mut args.connect, sub, None),
            None => return Ok(()),
        },
        Some(Command::Send(args)) => {
            let Some(sub) = matches.subcommand_matches("send") else {
                return Ok(());
            };
            let target = match (&mut args.target, &mut args.server) {
                (Some(target), _) | (None, Some(target)) => target,
                (None, None) => return Ok(()),
            };
            (
                target,
                &mut args.connect,
                sub,
                Some((&mut args.ehlo, &mut args.from)),
            )
        }
        Some(_) => return Ok(()),
    };
    let config = match config::locate(connect.config.as_deref(), |name| std::env::var_os(name)) {
        Some((path, required)) => Config::load(&path, required).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    let resolved = config.resolve(target).map_err(|e| e.to_string())?;
    *target = resolved.target;
    let settings = resolved.settings;
    let on_command_line =
        |id: &str| given.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
    if !on_command_line("tls")
        && let Some(tls) = settings.tls
    {
        connect.tls = match tls {
            TlsSetting::Auto => TlsChoice::Auto,
            TlsSetting::Starttls => TlsChoice::Starttls,
            TlsSetting::Implicit => TlsChoice::Implicit,
        };
    }
    if !on_command_line("trust")
        && let Some(trust) = settings.trust
    {
        connect.trust = match trust {
            config::TrustSetting::Webpki => cli::TrustChoice::Webpki,
            config::TrustSetting::System => cli::TrustChoice::System,
            config::TrustSetting::Both => cli::TrustChoice::Both,
        };
    }
    if !on_command_line("timeout")
        && let Some(timeout) = settings.timeout
    {
        connect.timeout = timeout;
    }
    connect.ca_file = connect.ca_file.take().or(settings.ca_file);
    connect.servername = connect.servername.take().or(settings.servername);
    connect.user = connect.user.take().or(settings.user);
    connect.password_file = connect.password_file.take().or(settings.password_file);
    if let Some((ehlo, from)) = send {
        *ehlo = ehlo.take().or(settings.ehlo);
        *from = from.take().or(settings.from);
    }
    Ok(())
}
