//! The `smtptui` binary: argument parsing and the process edge (exit codes, stdout).

mod cli;

use std::io::{IsTerminal, LineWriter, Write};
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, ConnectArgs, RunArgs, TlsChoice};
use smtptui::guard::GuardPolicy;
use smtptui::proto::reply::ReplyLimits;
use smtptui::runner::{self, exit};
use smtptui::scenario::Scenario;
use smtptui::secret::{Credentials, obtain_secret};
use smtptui::session::{EventSink, SessionConfig, TlsMode};
use smtptui::tls::{self, TrustSettings};
use smtptui::transcript::{Event, Palette};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Some(Command::Run(args)) => run_command(args),
        Some(Command::Lab) => not_yet("the embedded practice server (smtptui lab)"),
        Some(Command::Demo) => not_yet("the demo on the embedded practice server (smtptui demo)"),
        Some(Command::Audit { .. }) => not_yet("the TLS and AUTH posture audit (smtptui audit)"),
        None => match cli.target {
            Some(_) => not_yet(
                "the interactive terminal UI; until then use 'smtptui run SCENARIO HOST[:PORT]'",
            ),
            None => {
                eprintln!(
                    "smtptui: give HOST[:PORT] for the interactive UI, or a subcommand (see smtptui --help)"
                );
                exit::USAGE
            }
        },
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn not_yet(what: &str) -> i32 {
    eprintln!("smtptui: {what} is not available in this version yet");
    exit::USAGE
}

/// A usage error: printed with the program name, exit status 2.
fn usage_error(message: impl std::fmt::Display) -> i32 {
    eprintln!("smtptui: {message}");
    exit::USAGE
}

fn run_command(args: RunArgs) -> i32 {
    let scenario = match Scenario::load(&args.scenario) {
        Ok(scenario) => scenario,
        Err(error) => return usage_error(error),
    };
    let config = match session_config(&args.target, &args.connect) {
        Ok(config) => config,
        Err(message) => return usage_error(message),
    };
    let credentials = match credentials_for(&scenario, &args.connect) {
        Ok(credentials) => credentials,
        Err(message) => return usage_error(message),
    };
    let transcript_file = match &args.transcript {
        Some(path) => match std::fs::File::create(path) {
            Ok(file) => Some(LineWriter::new(file)),
            Err(error) => {
                return usage_error(format!(
                    "cannot write the transcript to {}: {error}",
                    path.display()
                ));
            }
        },
        None => None,
    };
    let colour = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let sink = output_sink(args.json, Palette::new(colour), transcript_file);

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("smtptui: cannot start the async runtime: {error}");
            return exit::FAILURE;
        }
    };
    let outcome = runtime.block_on(runner::run(&scenario, config, credentials, sink));
    eprintln!("smtptui: {}", outcome.summary(&scenario.name));
    outcome.exit_code()
}

/// Prints each event as it happens, and copies the plain text to the transcript file.
fn output_sink(
    json: bool,
    palette: Palette,
    mut file: Option<LineWriter<std::fs::File>>,
) -> EventSink {
    Box::new(move |event: Event| {
        let mut stdout = std::io::stdout().lock();
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

fn session_config(target: &str, args: &ConnectArgs) -> Result<SessionConfig, String> {
    let (host, port) = cli::parse_target(target)?;
    let port = port.unwrap_or(if args.tls == TlsChoice::Implicit {
        465
    } else {
        25
    });
    let tls_mode = match args.tls {
        TlsChoice::Implicit => TlsMode::Implicit,
        TlsChoice::Starttls => TlsMode::StartTls,
        TlsChoice::Auto if port == 465 => TlsMode::Implicit,
        TlsChoice::Auto => TlsMode::StartTls,
    };
    let extra_roots = match &args.ca_file {
        Some(path) => TrustSettings::load_ca_file(path).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let server_name = args.servername.clone().unwrap_or_else(|| host.clone());
    tls::server_name(&server_name).map_err(|e| e.to_string())?;
    Ok(SessionConfig {
        host,
        port,
        tls_mode,
        server_name,
        trust: TrustSettings {
            extra_roots,
            continue_unverified: args.insecure,
        },
        policy: GuardPolicy {
            allow_cleartext_auth: args.allow_cleartext_auth,
            allow_unverified_auth: args.insecure,
        },
        timeout: args.timeout,
        limits: ReplyLimits::default(),
    })
}

/// Collects credentials before connecting when the scenario has bare AUTH steps, so that a
/// missing password is a usage error up front rather than a failure mid-session.
fn credentials_for(scenario: &Scenario, args: &ConnectArgs) -> Result<Option<Credentials>, String> {
    let Some((step, mechanism)) = scenario.auth_steps().next() else {
        return Ok(None);
    };
    if smtptui::proto::sasl::Mechanism::from_name(&mechanism).is_none() {
        return Err(format!(
            "{}:{}: AUTH {mechanism} is not a mechanism smtptui can run with credentials \
             (PLAIN, LOGIN, XOAUTH2); give the exchange as C: lines instead",
            scenario.name, step.line
        ));
    }
    let user = args.user.clone().ok_or_else(|| {
        format!(
            "{}:{}: 'AUTH {mechanism}' needs credentials: give --user NAME (the password comes from \
             --password-file PATH, ${} or a prompt)",
            scenario.name,
            step.line,
            smtptui::secret::PASSWORD_ENV
        )
    })?;
    let prompt = format!("Password for {user}: ");
    let (secret, _) = obtain_secret(
        args.password_file.as_deref(),
        &prompt,
        std::io::stdin().is_terminal(),
    )
    .map_err(|e| e.to_string())?;
    Ok(Some(Credentials { user, secret }))
}
