//! The interactive UI without a terminal: state driven by engine messages and key presses,
//! and whole screens drawn on ratatui's TestBackend (80x24, the smallest supported size).
//!
//! Events are built here with fixed times, so the snapshots hold no volatile text.

#![allow(clippy::panic)] // test assertions

use std::time::{Duration, Instant, SystemTime};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;

use smtptui::guard::{OneTimeOverride, Protection, Refusal};
use smtptui::proto::reply::{Reply, ReplyLimits, ReplyParser};
use smtptui::proto::sasl::Mechanism;
use smtptui::session::Phase;
use smtptui::tls::{CertSummary, TlsInfo, Verification};
use smtptui::transcript::{ErrorKind, Event, EventKind, GuardOutcome, Security, SentKind};
use smtptui::tui::app::{App, Mode, Overlay};
use smtptui::tui::engine::{Action, Crossed, Done, EngineMsg, Retry, Status};
use smtptui::tui::history::History;
use smtptui::tui::input::Prompt;
use smtptui::tui::ui;

fn reply(wire: &str) -> Reply {
    let mut parser = ReplyParser::new(ReplyLimits::default());
    parser.push(wire.as_bytes());
    parser
        .next_reply()
        .expect("valid reply")
        .expect("complete reply")
}

fn event(ms: u64, kind: EventKind) -> EngineMsg {
    EngineMsg::Event(Event {
        time: SystemTime::UNIX_EPOCH,
        elapsed: Duration::from_millis(ms),
        kind,
    })
}

fn sent(ms: u64, security: Security, text: &str) -> EngineMsg {
    event(
        ms,
        EventKind::Sent {
            security,
            text: text.to_owned(),
            kind: SentKind::Command,
        },
    )
}

fn received(ms: u64, security: Security, wire: &str) -> EngineMsg {
    event(
        ms,
        EventKind::Received {
            security,
            reply: reply(wire),
        },
    )
}

fn status(protection: Protection, phase: Phase, extensions: &[&str]) -> EngineMsg {
    let mut status = Status::disconnected("mail.example.com:587".to_owned());
    status.connected = true;
    status.security = match protection {
        Protection::Cleartext => Security::Cleartext,
        _ => Security::Tls,
    };
    status.protection = protection;
    status.phase = phase;
    status.extensions = extensions.iter().map(|e| (*e).to_owned()).collect();
    status.auth_mechanisms = vec!["PLAIN".to_owned(), "LOGIN".to_owned()];
    EngineMsg::Status(Box::new(status))
}

/// The end of an action that sent one command (none for the greeting), as the engine says it.
fn done(wire: &str, command: Option<&str>) -> EngineMsg {
    let crossed = Crossed {
        commands: usize::from(command.is_some()),
        ..Crossed::default()
    };
    done_with(wire, command, crossed)
}

fn done_with(wire: &str, command: Option<&str>, crossed: Crossed) -> EngineMsg {
    EngineMsg::Done(Done::Reply {
        reply: reply(wire),
        command: command.map(str::to_owned),
        crossed,
    })
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn type_line(app: &mut App, text: &str) -> Vec<Action> {
    for c in text.chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
    app.on_key(key(KeyCode::Enter))
}

fn greeted() -> App {
    let mut app = App::new("mail.example.com:587".to_owned(), History::in_memory());
    for message in [
        event(
            0,
            EventKind::Connecting {
                target: "mail.example.com:587".to_owned(),
                transport: "plain TCP; TLS only after STARTTLS".to_owned(),
            },
        ),
        event(
            3,
            EventKind::Connected {
                peer: "192.0.2.25:587".to_owned(),
                local: "192.0.2.1:40000".to_owned(),
            },
        ),
        received(
            12,
            Security::Cleartext,
            "220 mail.example.com ESMTP Postfix\r\n",
        ),
        status(Protection::Cleartext, Phase::Command, &[]),
        done("220 mail.example.com ESMTP Postfix\r\n", None),
    ] {
        app.on_engine(message);
    }
    app
}

fn after_ehlo() -> App {
    let mut app = greeted();
    let actions = type_line(&mut app, "EHLO client.example");
    assert!(matches!(&actions[..], [Action::Send { line, .. }] if line == "EHLO client.example"));
    let ehlo = "250-mail.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n";
    for message in [
        sent(1000, Security::Cleartext, "EHLO client.example"),
        received(1021, Security::Cleartext, ehlo),
        status(
            Protection::Cleartext,
            Phase::Command,
            &[
                "PIPELINING",
                "SIZE",
                "STARTTLS",
                "ENHANCEDSTATUSCODES",
                "8BITMIME",
            ],
        ),
        done(ehlo, Some("EHLO")),
    ] {
        app.on_engine(message);
    }
    app
}

fn tls_info(verification: Verification) -> TlsInfo {
    TlsInfo {
        version: "TLSv1_3".to_owned(),
        cipher_suite: "TLS13_AES_256_GCM_SHA384".to_owned(),
        key_exchange: Some("X25519".to_owned()),
        server_name: "mail.example.com".to_owned(),
        verification,
        chain: vec![CertSummary {
            subject: "CN=mail.example.com".to_owned(),
            issuer: "CN=Example CA".to_owned(),
            sans: vec!["mail.example.com".to_owned()],
            not_before: "2025-01-01".to_owned(),
            not_after: "2026-01-01".to_owned(),
            days_to_expiry: 90,
            key: "ECDSA P-256".to_owned(),
            serial: "01".to_owned(),
            parse_error: None,
            der: smtptui::tls::CertDer::default(),
        }],
        anchors: String::new(),
    }
}

fn after_tls() -> App {
    let mut app = after_ehlo();
    type_line(&mut app, "STARTTLS");
    let info = tls_info(Verification::Verified);
    for message in [
        sent(2000, Security::Cleartext, "STARTTLS"),
        received(
            2010,
            Security::Cleartext,
            "220 2.0.0 Ready to start TLS\r\n",
        ),
        event(2030, EventKind::TlsEstablished(Box::new(info.clone()))),
    ] {
        app.on_engine(message);
    }
    let mut tls_status = Status::disconnected("mail.example.com:587".to_owned());
    tls_status.connected = true;
    tls_status.security = Security::Tls;
    tls_status.protection = Protection::VerifiedTls;
    tls_status.tls = Some(info);
    app.on_engine(EngineMsg::Status(Box::new(tls_status)));
    app.on_engine(done("220 2.0.0 Ready to start TLS\r\n", Some("STARTTLS")));
    app
}

fn screen(app: &App) -> String {
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("test terminal");
    let now = app.pending.as_ref().map_or_else(Instant::now, |p| p.since);
    terminal
        .draw(|frame| ui::render(app, frame, now))
        .expect("draws");
    terminal.backend().to_string()
}

fn buffer(app: &App) -> ratatui::buffer::Buffer {
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("test terminal");
    terminal
        .draw(|frame| ui::render(app, frame, Instant::now()))
        .expect("draws");
    terminal.backend().buffer().clone()
}

/// The style of the first cell of `needle` on screen.
fn style_of(buffer: &ratatui::buffer::Buffer, needle: &str) -> ratatui::style::Style {
    let width = buffer.area.width as usize;
    let symbols: Vec<&str> = buffer.content.iter().map(|c| c.symbol()).collect();
    for row in 0..buffer.area.height as usize {
        let line: String = symbols[row * width..(row + 1) * width].concat();
        if let Some(column) = line.find(needle) {
            let column = line[..column].chars().count();
            return buffer.content[row * width + column].style();
        }
    }
    panic!("{needle:?} not on screen");
}

#[test]
fn snapshot_greeting() {
    insta::assert_snapshot!("greeting", screen(&greeted()));
}

#[test]
fn snapshot_after_ehlo() {
    let mut app = after_ehlo();
    app.explain = true;
    insta::assert_snapshot!("after_ehlo", screen(&app));
}

#[test]
fn snapshot_guard_modal() {
    let mut app = after_ehlo();
    let actions = type_line(&mut app, "AUTH PLAIN");
    // Refused before any password is asked, and recorded in the transcript.
    assert!(matches!(
        &actions[..],
        [Action::Record(EventKind::Guard(GuardOutcome::Refused(
            Refusal::Cleartext
        )))]
    ));
    assert!(matches!(app.mode, Mode::Guard(_)));
    insta::assert_snapshot!("guard_modal", screen(&app));
}

#[test]
fn snapshot_tls_established() {
    insta::assert_snapshot!("tls_established", screen(&after_tls()));
}

#[test]
fn snapshot_data_editor() {
    let mut app = after_tls();
    type_line(&mut app, "DATA");
    app.on_engine(sent(3000, Security::Tls, "DATA"));
    app.on_engine(received(
        3005,
        Security::Tls,
        "354 End data with <CR><LF>.<CR><LF>\r\n",
    ));
    let mut in_message = app.status.clone();
    in_message.phase = Phase::Message;
    app.on_engine(EngineMsg::Status(Box::new(in_message)));
    app.on_engine(done(
        "354 End data with <CR><LF>.<CR><LF>\r\n",
        Some("DATA"),
    ));
    assert!(matches!(app.mode, Mode::Message(_)), "{:?}", app.mode);
    assert!(type_line(&mut app, "Subject: hello").is_empty());
    assert!(type_line(&mut app, "").is_empty());
    assert!(type_line(&mut app, ".leading dot").is_empty());
    insta::assert_snapshot!("data_editor", screen(&app));
    let actions = type_line(&mut app, ".");
    assert!(
        matches!(&actions[..], [Action::Message { lines }] if lines == &["Subject: hello", "", ".leading dot"])
    );
}

#[test]
fn snapshot_help() {
    let mut app = greeted();
    app.on_key(key(KeyCode::F(1)));
    assert_eq!(app.overlay, Some(Overlay::Help));
    insta::assert_snapshot!("help", screen(&app));
}

#[test]
fn colours_carry_meaning() {
    let mut app = after_tls();
    app.on_engine(received(4000, Security::Tls, "550 5.1.1 no such user\r\n"));
    app.on_engine(received(4100, Security::Tls, "451 4.3.0 try later\r\n"));
    let screen = buffer(&app);
    assert_eq!(style_of(&screen, "tls   S: 550").fg, Some(Color::Green));
    assert_eq!(style_of(&screen, "550 5.1.1").fg, Some(Color::Red));
    assert_eq!(style_of(&screen, "451 4.3.0").fg, Some(Color::Yellow));
    assert_eq!(style_of(&screen, "220 2.0.0 Ready").fg, Some(Color::Green));
    assert_eq!(
        style_of(&screen, "plain C: STARTTLS").fg,
        Some(Color::Yellow)
    );
    assert_eq!(style_of(&screen, "TLS 1.3").fg, Some(Color::Green));
    // NO_COLOR: the same screen with the terminal's own colours only.
    app.colour = false;
    let plain = buffer(&app);
    assert!(
        plain
            .content
            .iter()
            .all(|cell| cell.fg == Color::Reset && cell.bg == Color::Reset)
    );
    // ...where failures are still told from successes, by weight.
    use ratatui::style::Modifier;
    assert!(
        style_of(&plain, "550 5.1.1")
            .add_modifier
            .contains(Modifier::BOLD)
    );
    assert!(
        style_of(&plain, "451 4.3.0")
            .add_modifier
            .contains(Modifier::BOLD)
    );
    assert!(
        !style_of(&plain, "220 2.0.0 Ready")
            .add_modifier
            .contains(Modifier::BOLD)
    );
}

#[test]
fn unverified_certificate_is_shown_loudly() {
    let mut app = after_ehlo();
    let problem = smtptui::tls::CertificateProblem {
        kind: "unknown issuer",
        detail: "the certificate is not signed by a trusted CA".to_owned(),
    };
    let info = tls_info(Verification::Failed(problem.clone()));
    app.on_engine(event(
        2030,
        EventKind::TlsEstablished(Box::new(info.clone())),
    ));
    let mut tls_status = Status::disconnected("mail.example.com:587".to_owned());
    tls_status.connected = true;
    tls_status.security = Security::Tls;
    tls_status.protection = Protection::UnverifiedTls(problem);
    tls_status.tls = Some(info);
    app.on_engine(EngineMsg::Status(Box::new(tls_status)));
    let screen = buffer(&app);
    assert_eq!(
        style_of(&screen, "CERTIFICATE NOT VERIFIED").fg,
        Some(Color::Red)
    );
    // AUTH to it needs the word "unverified".
    type_line(&mut app, "AUTH LOGIN");
    let Mode::Guard(dialog) = &app.mode else {
        panic!("guard dialog expected, got {:?}", app.mode);
    };
    assert_eq!(dialog.override_word(), "unverified");
    assert!(type_line(&mut app, "cleartext").is_empty(), "wrong word");
    assert!(matches!(app.mode, Mode::Guard(_)));
    type_line(&mut app, "unverified");
    assert!(matches!(
        app.mode,
        Mode::Line(Prompt::User {
            one_time: OneTimeOverride::Unverified,
            ..
        })
    ));
}

#[test]
fn guard_default_is_starttls_and_the_override_needs_the_word() {
    let mut app = after_ehlo();
    type_line(&mut app, "AUTH PLAIN");
    // Enter with nothing typed: STARTTLS, and the AUTH line is offered again without secrets.
    let actions = app.on_key(key(KeyCode::Enter));
    assert!(
        matches!(&actions[..], [Action::Send { line, one_time: OneTimeOverride::None }] if line == "STARTTLS")
    );
    assert_eq!(
        app.input.text(),
        "",
        "nothing left to be glued to the next line typed"
    );
    assert!(
        app.flash
            .as_deref()
            .is_some_and(|f| f.contains("then EHLO client.example inside TLS, then AUTH PLAIN")),
        "{:?}",
        app.flash
    );
    assert_eq!(app.mode, Mode::COMMAND);

    // An inline blob refused by the engine: the override word sends that one line.
    let mut app = after_ehlo();
    type_line(&mut app, "AUTH PLAIN AGFsaWNlAHNlY3JldA==");
    app.on_engine(EngineMsg::Done(Done::GuardRefused {
        retry: Retry::Line("AUTH PLAIN AGFsaWNlAHNlY3JldA==".to_owned()),
        refusal: Refusal::Cleartext,
    }));
    assert!(matches!(app.mode, Mode::Guard(_)));
    assert!(type_line(&mut app, "yes").is_empty());
    let actions = type_line(&mut app, "cleartext");
    assert!(matches!(
        &actions[..],
        [Action::Send {
            one_time: OneTimeOverride::Cleartext,
            ..
        }]
    ));
    // Esc cancels without sending anything.
    let mut app = after_ehlo();
    type_line(&mut app, "AUTH LOGIN");
    assert!(app.on_key(key(KeyCode::Esc)).is_empty());
    assert_eq!(app.mode, Mode::COMMAND);
}

#[test]
fn password_is_hidden_and_never_stored() {
    let mut app = after_tls();
    type_line(&mut app, "AUTH PLAIN");
    assert!(matches!(app.mode, Mode::Line(Prompt::User { .. })));
    type_line(&mut app, "alice");
    assert!(matches!(app.mode, Mode::Line(Prompt::Password { .. })));
    for c in "hunter22".chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
    assert!(!screen(&app).contains("hunter22"));
    assert!(
        !format!("{app:?}").contains("hunter22"),
        "Debug shows the password"
    );
    let actions = app.on_key(key(KeyCode::Enter));
    assert!(!format!("{actions:?}").contains("hunter22"));
    let [Action::Authenticate { credentials, .. }] = &actions[..] else {
        panic!("authenticate expected");
    };
    assert_eq!(credentials.user, "alice");
    assert_eq!(credentials.secret.expose(), "hunter22");
    // History: Up shows the bare AUTH line, never the user or the password.
    app.on_engine(done("235 ok\r\n", Some("AUTH")));
    app.on_key(key(KeyCode::Up));
    assert_eq!(app.input.text(), "AUTH PLAIN");
    app.on_key(key(KeyCode::Up));
    assert_eq!(app.input.text(), "STARTTLS");
}

/// OAUTHBEARER asks for a token (hidden, and called one); EXTERNAL asks nothing: its
/// identity is the client certificate.
#[test]
fn oauthbearer_asks_for_a_token_and_external_for_nothing() {
    let mut app = after_tls();
    type_line(&mut app, "AUTH OAUTHBEARER");
    type_line(&mut app, "alice");
    assert!(matches!(app.mode, Mode::Line(Prompt::Password { .. })));
    assert!(screen(&app).contains("token (hidden)>"), "{}", screen(&app));
    for c in "ya29.secret-token".chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
    assert!(!screen(&app).contains("ya29"));
    let actions = app.on_key(key(KeyCode::Enter));
    assert!(matches!(
        &actions[..],
        [Action::Authenticate { mechanism: Mechanism::OAuthBearer, credentials, .. }]
            if credentials.secret.expose() == "ya29.secret-token"
    ));
    let mut app = after_tls();
    let actions = type_line(&mut app, "AUTH EXTERNAL");
    assert!(
        matches!(
            &actions[..],
            [Action::Authenticate { mechanism: Mechanism::External, credentials, .. }]
                if credentials.secret.is_empty()
        ),
        "{actions:?}"
    );
}

fn retype(app: &mut App, text: &str) {
    app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    for c in text.chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
}

#[test]
fn tab_completes_verbs_and_advertised_extensions() {
    let mut app = after_ehlo();
    app.on_key(key(KeyCode::Char('S')));
    app.on_key(key(KeyCode::Char('T')));
    app.on_key(key(KeyCode::Tab));
    assert_eq!(app.input.text(), "STARTTLS");
    retype(&mut app, "AUTH L");
    app.on_key(key(KeyCode::Tab));
    assert_eq!(app.input.text(), "AUTH LOGIN");
    // EHLO keywords that are not commands are not offered as one...
    retype(&mut app, "S");
    app.on_key(key(KeyCode::Tab));
    assert_eq!(app.input.text(), "STARTTLS");
    app.on_key(key(KeyCode::Tab));
    assert_eq!(app.input.text(), "STARTTLS", "SIZE is not a command");
    retype(&mut app, "8B");
    app.on_key(key(KeyCode::Tab));
    assert_eq!(app.input.text(), "8B");
    // ...but as the MAIL FROM parameters they allow.
    retype(&mut app, "MAIL FROM:<a@example.com> B");
    app.on_key(key(KeyCode::Tab));
    assert_eq!(app.input.text(), "MAIL FROM:<a@example.com> BODY=8BITMIME");
    retype(&mut app, "MAIL FROM:<a@example.com> ");
    app.on_key(key(KeyCode::Tab));
    assert_eq!(app.input.text(), "MAIL FROM:<a@example.com> SIZE=");
}

#[test]
fn scrolling_follows_the_tail_until_moved() {
    let mut app = after_ehlo();
    for i in 0..200 {
        app.on_engine(received(5000 + i, Security::Cleartext, "250 ok\r\n"));
    }
    assert_eq!(app.view.scroll, None);
    app.on_key(key(KeyCode::PageUp));
    let held = app.view.scroll.expect("scrolled");
    app.on_engine(received(9000, Security::Cleartext, "250 later\r\n"));
    assert_eq!(
        app.view.scroll,
        Some(held),
        "new lines do not move a held view"
    );
    app.on_key(key(KeyCode::Home));
    assert_eq!(app.view.scroll, Some(0));
    app.on_key(key(KeyCode::End));
    assert_eq!(app.view.scroll, None);
}

#[test]
fn server_escape_sequences_are_shown_escaped() {
    let mut app = greeted();
    app.on_engine(received(
        20,
        Security::Cleartext,
        "250 hi \x1b[2J there\r\n",
    ));
    let text = screen(&app);
    assert!(text.contains("\\x1b[2J"), "{text}");
}

#[test]
fn step_mode_sends_the_next_line_and_checks_it() {
    let scenario = smtptui::scenario::Scenario::parse(
        "t.smtp",
        "S: 220\nC: EHLO me\nS: 250 STARTTLS\nC: QUIT\nS: 221\n",
    )
    .expect("parses");
    let mut app = App::new("x:25".to_owned(), History::in_memory());
    app.load_script(scenario);
    app.on_engine(status(Protection::Cleartext, Phase::Command, &[]));
    let actions = app.on_engine(done("220 hi\r\n", None));
    assert!(matches!(
        &actions[..],
        [Action::Record(EventKind::Expectation {
            met: true,
            line: 1,
            ..
        })]
    ));
    assert!(
        app.enter_hint().contains("C: EHLO me"),
        "{}",
        app.enter_hint()
    );
    let actions = app.on_key(key(KeyCode::Enter));
    assert!(matches!(&actions[..], [Action::Send { line, .. }] if line == "EHLO me"));
    let actions = app.on_engine(done("250 no tls here\r\n", Some("EHLO")));
    assert!(matches!(
        &actions[..],
        [Action::Record(EventKind::Expectation {
            met: false,
            line: 3,
            ..
        })]
    ));
}

#[test]
fn step_mode_sends_the_message_after_data_on_an_empty_enter() {
    let scenario = smtptui::scenario::Scenario::parse(
        "t.smtp",
        "S: 220\nC: DATA\nS: 354\nC: Subject: hi\nC:\nC: .dot\nC: .\nS: 250\n",
    )
    .expect("parses");
    let mut app = greeted();
    app.load_script(scenario);
    let actions = app.on_key(key(KeyCode::Enter));
    assert!(matches!(&actions[..], [Action::Send { line, .. }] if line == "DATA"));
    let mut in_message = app.status.clone();
    in_message.phase = Phase::Message;
    app.on_engine(EngineMsg::Status(Box::new(in_message)));
    app.on_engine(done("354 go ahead\r\n", Some("DATA")));
    assert!(matches!(app.mode, Mode::Message(_)), "{:?}", app.mode);
    assert!(
        app.enter_hint().contains("the message (3 lines)"),
        "{}",
        app.enter_hint()
    );
    // The promised Enter on an empty line sends the scenario's message, not an empty line.
    let actions = app.on_key(key(KeyCode::Enter));
    assert!(
        matches!(&actions[..], [Action::Message { lines }] if lines == &["Subject: hi", "", ".dot"]),
        "{actions:?}"
    );
    assert!(app.editor().is_empty());

    // Once the user types their own message, an empty line is part of it.
    let scenario = smtptui::scenario::Scenario::parse(
        "t.smtp",
        "S: 220\nC: DATA\nS: 354\nC: Subject: hi\nC: .\nS: 250\n",
    )
    .expect("parses");
    let mut app = greeted();
    app.load_script(scenario);
    app.on_key(key(KeyCode::Enter));
    let mut in_message = app.status.clone();
    in_message.phase = Phase::Message;
    app.on_engine(EngineMsg::Status(Box::new(in_message)));
    app.on_engine(done("354 go ahead\r\n", Some("DATA")));
    assert!(type_line(&mut app, "Subject: mine").is_empty());
    assert!(type_line(&mut app, "").is_empty());
    assert_eq!(app.editor(), ["Subject: mine", ""]);
}

#[test]
fn a_line_typed_while_disconnected_is_kept_and_the_reason_shown() {
    let mut app = greeted();
    app.on_engine(event(
        5000,
        EventKind::Error {
            kind: ErrorKind::Closed,
            text: "the server closed the connection".to_owned(),
        },
    ));
    app.on_engine(EngineMsg::Status(Box::new(Status::disconnected(
        "mail.example.com:587".to_owned(),
    ))));
    app.on_engine(EngineMsg::Done(Done::Failed {
        reason: "the server closed the connection".to_owned(),
        crossed: Crossed::default(),
    }));
    assert!(
        app.enter_hint().contains(":reconnect"),
        "{}",
        app.enter_hint()
    );
    let actions = type_line(&mut app, "NOOP");
    assert!(actions.is_empty(), "nothing can be sent: {actions:?}");
    assert_eq!(app.input.text(), "NOOP", "the line waits for :reconnect");
    assert!(
        app.flash
            .as_deref()
            .is_some_and(|f| f.contains("not connected")),
        "{:?}",
        app.flash
    );
    let text = screen(&app);
    assert!(text.contains("NOT CONNECTED"), "{text}");
    // Local commands still work.
    app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    let actions = type_line(&mut app, ":reconnect");
    assert!(matches!(&actions[..], [Action::Reconnect]));
}

#[test]
fn pasted_lines_never_become_commands_but_fill_the_message() {
    use crossterm::event::Event as TermEvent;
    let mut app = after_ehlo();
    let actions = app.on_terminal(TermEvent::Paste(
        "NOOP a\r\nNOOP b\r\nNOOP c\r\n".to_owned(),
    ));
    assert!(actions.is_empty());
    // The dialog asks; Enter, its default, keeps the first line as a paste always did.
    assert!(matches!(app.mode, Mode::Group(_)), "{:?}", app.mode);
    assert!(app.on_key(key(KeyCode::Enter)).is_empty());
    assert_eq!(app.mode, Mode::COMMAND);
    assert_eq!(app.input.text(), "NOOP a");
    assert!(
        app.flash
            .as_deref()
            .is_some_and(|f| f.contains("pasted 3 lines")),
        "{:?}",
        app.flash
    );

    // In the message editor a pasted block is the message, and a pasted lone dot ends it.
    let mut app = after_tls();
    type_line(&mut app, "DATA");
    let mut in_message = app.status.clone();
    in_message.phase = Phase::Message;
    app.on_engine(EngineMsg::Status(Box::new(in_message)));
    app.on_engine(done("354 go ahead\r\n", Some("DATA")));
    assert!(matches!(app.mode, Mode::Message(_)), "{:?}", app.mode);
    let actions = app.on_terminal(TermEvent::Paste(
        "Subject: x\n\nbody\n.dot\nmore".to_owned(),
    ));
    assert!(actions.is_empty());
    assert_eq!(app.editor(), ["Subject: x", "", "body", ".dot"]);
    assert_eq!(
        app.input.text(),
        "more",
        "an unfinished last line stays editable"
    );
    let actions = app.on_terminal(TermEvent::Paste(" text\n.\n".to_owned()));
    assert!(
        matches!(&actions[..], [Action::Message { lines }] if lines == &["Subject: x", "", "body", ".dot", "more text"]),
        "{actions:?}"
    );
}

#[test]
fn paging_moves_a_pane_and_the_top_fills_the_pane() {
    let mut app = after_ehlo();
    for i in 0..200 {
        app.on_engine(received(5000 + i, Security::Cleartext, "250 ok\r\n"));
    }
    app.view.page = 16;
    let last = app.view.rows.len() - 1;
    app.on_key(key(KeyCode::PageUp));
    assert_eq!(
        app.view.scroll,
        Some(last - 15),
        "a page, less one row of context"
    );
    // Home shows the first rows filling the pane, not one row above empty space.
    app.on_key(key(KeyCode::Home));
    let text = screen(&app);
    assert!(
        text.contains("connecting to mail.example.com:587"),
        "{text}"
    );
    assert!(
        text.contains("250 ok"),
        "the rows below fill the pane: {text}"
    );
    assert!(text.contains("transcript: top"), "{text}");
    // Paging down from the top moves at once.
    app.on_key(key(KeyCode::PageDown));
    assert_eq!(app.view.scroll, Some(15 + 15));
    // PgUp all the way stops at the top, which fills the pane too.
    for _ in 0..30 {
        app.on_key(key(KeyCode::PageUp));
    }
    assert_eq!(app.view.scroll, Some(0));
    // Sending a command follows the tail again, so its reply is seen.
    let actions = type_line(&mut app, "NOOP");
    assert!(matches!(&actions[..], [Action::Send { .. }]));
    assert_eq!(app.view.scroll, None);
}

#[test]
fn the_explain_pane_explains_the_error_that_ended_the_session() {
    let mut app = after_ehlo();
    app.explain = true;
    type_line(&mut app, "STARTTLS");
    app.on_engine(sent(2000, Security::Cleartext, "STARTTLS"));
    app.on_engine(received(
        2010,
        Security::Cleartext,
        "220 2.0.0 Ready to start TLS\r\n",
    ));
    app.on_engine(event(
        2011,
        EventKind::Error {
            kind: ErrorKind::Injection,
            text: "response injection: 50 byte(s) arrived in cleartext after the 220 reply to STARTTLS"
                .to_owned(),
        },
    ));
    let explanation = ui::explanation(&app).join(" ");
    assert!(
        explanation.contains("attacker on the path"),
        "the injection, not the 220 before it: {explanation}"
    );
    app.on_engine(event(
        9000,
        EventKind::Error {
            kind: ErrorKind::Timeout,
            text: "timed out after 30s waiting for the reply to EHLO".to_owned(),
        },
    ));
    assert!(
        ui::explanation(&app)
            .join(" ")
            .contains("did not answer in time")
    );
}

#[test]
fn a_stripped_or_refused_starttls_is_said_plainly() {
    // EHLO without STARTTLS but with AUTH: the strip attack's view.
    let mut app = greeted();
    type_line(&mut app, "EHLO me");
    app.on_engine(status(
        Protection::Cleartext,
        Phase::Command,
        &["PIPELINING", "AUTH"],
    ));
    app.on_engine(done("250-x\r\n250 AUTH PLAIN\r\n", Some("EHLO")));
    type_line(&mut app, "AUTH PLAIN");
    assert!(matches!(app.mode, Mode::Guard(_)));
    let text = screen(&app);
    assert!(text.contains("did not offer STARTTLS"), "{text}");
    assert!(text.contains("try STARTTLS anyway"), "{text}");
    // Enter tries STARTTLS; the server refuses: the advice about 'once TLS is up' goes.
    let actions = app.on_key(key(KeyCode::Enter));
    assert!(matches!(&actions[..], [Action::Send { line, .. }] if line == "STARTTLS"));
    app.on_engine(done(
        "502 5.5.2 Error: command not recognized\r\n",
        Some("STARTTLS"),
    ));
    let flash = app.flash.clone().unwrap_or_default();
    assert!(flash.contains("STARTTLS refused (502)"), "{flash}");

    // With STARTTLS advertised, the dialog does not cry wolf.
    let mut app = after_ehlo();
    type_line(&mut app, "AUTH PLAIN");
    assert!(!screen(&app).contains("did not offer STARTTLS"));
}

/// The help screen is generated from the command table: every key and every `:` command is
/// on it, with what it does, on the smallest supported screen and with both standing
/// overrides noted (its longest form).
#[test]
fn the_help_shows_every_key_and_local_command() {
    use smtptui::tui::commands::{KEYS, LOCAL};
    let mut app = greeted();
    app.policy = smtptui::guard::GuardPolicy {
        allow_cleartext_auth: true,
        allow_unverified_auth: true,
    };
    app.on_key(key(KeyCode::F(1)));
    // The help scrolls at 80x24 with the overrides' lines at its top: both pages together.
    let mut text = screen(&app);
    app.on_key(key(KeyCode::PageDown));
    text.push_str(&screen(&app));
    // The label, then (after spaces) what it does, on one line of the screen.
    let shows = |label: &str, does: &str| {
        text.lines().any(|line| {
            line.match_indices(label).any(|(at, _)| {
                let rest = &line[at + label.len()..];
                rest.starts_with(' ') && rest.trim_start().starts_with(does)
            })
        })
    };
    for entry in KEYS {
        assert!(
            shows(entry.keys, entry.does),
            "{entry:?} is not in the help:\n{text}"
        );
    }
    for local in LOCAL {
        assert!(
            shows(&local.label(), local.does),
            "{local:?} is not in the help:\n{text}"
        );
    }
    assert!(text.contains("--allow-cleartext-auth is ON"), "{text}");
    assert!(text.contains("--insecure is ON"), "{text}");
    // Among them what the help used to leave out.
    assert!(text.contains(":next") && text.contains("Ctrl-D"), "{text}");
}

/// The README's list of keys and local commands is the one the table generates.
#[test]
fn the_readme_lists_every_key_and_local_command() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let begin = "<!-- keys: generated from src/tui/commands.rs, checked by tests/tui.rs -->\n";
    let end = "<!-- keys: end -->";
    let list = readme
        .split_once(begin)
        .and_then(|(_, rest)| rest.split_once(end))
        .map(|(list, _)| list)
        .expect("the README has the generated key list between its markers");
    let expected = smtptui::tui::commands::readme_list();
    assert_eq!(
        list, expected,
        "the README's key list differs from the table; put this between its markers:\n{expected}"
    );
}

#[test]
fn history_gives_back_the_line_being_typed() {
    let mut app = after_ehlo();
    for c in "MAIL FR".chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
    app.on_key(key(KeyCode::Up));
    assert_eq!(app.input.text(), "EHLO client.example");
    app.on_key(key(KeyCode::Down));
    assert_eq!(
        app.input.text(),
        "MAIL FR",
        "the draft is not lost by a look at the history"
    );
}

#[test]
fn esc_inside_data_or_sasl_never_sends_quit_as_content() {
    let mut app = after_tls();
    type_line(&mut app, "DATA");
    let mut in_message = app.status.clone();
    in_message.phase = Phase::Message;
    app.on_engine(EngineMsg::Status(Box::new(in_message)));
    app.on_engine(done("354 go ahead\r\n", Some("DATA")));
    type_line(&mut app, "Subject: draft");
    // The first Esc warns: the message is not sent yet.
    assert!(app.on_key(key(KeyCode::Esc)).is_empty());
    assert!(!app.should_exit);
    assert!(matches!(app.mode, Mode::Message(_)), "{:?}", app.mode);
    assert!(
        app.flash
            .as_deref()
            .is_some_and(|f| f.contains("Esc again"))
    );
    // Any other key disarms; two Esc in a row leave without a QUIT read as message text.
    app.on_key(key(KeyCode::Char('x')));
    assert!(app.on_key(key(KeyCode::Esc)).is_empty());
    assert!(!app.should_exit);
    let actions = app.on_key(key(KeyCode::Esc));
    assert!(actions.is_empty(), "no QUIT inside DATA: {actions:?}");
    assert!(app.should_exit);

    // A 334 to an AUTH run by hand: Esc cancels with '*' (RFC 4954).
    let mut app = after_tls();
    type_line(&mut app, "AUTH DIGEST-MD5");
    let mut challenge = app.status.clone();
    challenge.phase = Phase::SaslChallenge;
    app.on_engine(EngineMsg::Status(Box::new(challenge)));
    app.on_engine(done("334 PDEyMzQ1Pg==\r\n", Some("AUTH")));
    assert_eq!(app.mode, Mode::Line(Prompt::SaslAnswer));
    let actions = app.on_key(key(KeyCode::Esc));
    assert!(
        matches!(&actions[..], [Action::Send { line, .. }] if line == "*"),
        "{actions:?}"
    );
    assert!(!app.should_exit);
}

/// An answer typed after a 334 goes out as a SASL answer (which the engine sends only while
/// the challenge stands), and if the server ends the exchange meanwhile, what was typed is
/// wiped instead of being left in the input to go out as a command.
#[test]
fn a_hidden_answer_is_never_sent_as_a_command() {
    let mut app = after_tls();
    app.on_engine(received(3000, Security::Tls, "334 VXNlcm5hbWU6\r\n"));
    app.on_engine(status(Protection::VerifiedTls, Phase::SaslChallenge, &[]));
    assert_eq!(app.mode, Mode::Line(Prompt::SaslAnswer));
    for c in "c2VjcmV0".chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
    // The server moves on before Enter: the typed answer is discarded.
    app.on_engine(status(Protection::VerifiedTls, Phase::Command, &[]));
    assert_eq!(app.mode, Mode::COMMAND);
    assert_eq!(app.input.text(), "");
    assert!(
        app.flash
            .as_deref()
            .is_some_and(|f| f.contains("discarded"))
    );

    // While the challenge stands, Enter produces an answer action, not a line.
    app.on_engine(status(Protection::VerifiedTls, Phase::SaslChallenge, &[]));
    for c in "c2VjcmV0".chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
    let actions = app.on_key(key(KeyCode::Enter));
    let [Action::SaslAnswer { answer, .. }] = &actions[..] else {
        panic!("a SASL answer action expected, got {actions:?}");
    };
    assert_eq!(answer.expose(), "c2VjcmV0");
    assert!(!format!("{actions:?}").contains("c2VjcmV0"));
}

#[test]
fn debug_output_hides_inline_credentials() {
    let action = Action::Send {
        line: "AUTH PLAIN AGFsaWNlAHNlY3JldA==".to_owned(),
        one_time: OneTimeOverride::None,
    };
    assert!(!format!("{action:?}").contains("AGFsaWNlAHNlY3JldA=="));
    let retry = Retry::Line("auth plain AGFsaWNlAHNlY3JldA==".to_owned());
    assert!(!format!("{retry:?}").contains("AGFsaWNlAHNlY3JldA=="));
}

/// A step the guard refuses ends step mode: the lines after it were written for a session
/// that went differently, and must not go out on their own.
#[test]
fn step_mode_stops_when_the_guard_refuses_a_step() {
    let scenario = smtptui::scenario::Scenario::parse(
        "t.smtp",
        "S: 220\nC: EHLO x\nS: 250\nC: AUTH PLAIN\nS: 235\nC: MAIL FROM:<a@b>\nS: 250\n",
    )
    .expect("parses");
    let mut app = greeted();
    app.load_script(scenario);
    let actions = app.on_key(key(KeyCode::Enter));
    assert!(matches!(&actions[..], [Action::Send { line, .. }] if line == "EHLO x"));
    app.on_engine(done("250 ok\r\n", Some("EHLO")));
    // Cleartext: the bare AUTH step is stopped before any password is asked for (the
    // refusal is recorded in the transcript; nothing is sent).
    let actions = app.on_key(key(KeyCode::Enter));
    assert!(
        actions.iter().all(|a| matches!(a, Action::Record(_))),
        "{actions:?}"
    );
    assert!(matches!(app.mode, Mode::Guard(_)));
    app.on_key(key(KeyCode::Esc));
    let actions = app.on_key(key(KeyCode::Enter));
    assert!(
        actions.is_empty(),
        "the scenario went on after a refusal: {actions:?}"
    );
    assert!(
        app.flash
            .as_deref()
            .is_some_and(|f| f.contains("step mode stopped")),
        "{:?}",
        app.flash
    );
}

/// When DATA is refused, the scenario's message is not sent as commands.
#[test]
fn step_mode_never_sends_a_message_after_a_refused_data() {
    let scenario = smtptui::scenario::Scenario::parse(
        "t.smtp",
        "S: 220\nC: DATA\nC: RCPT TO:<victim@elsewhere.example>\nC: .\nC: QUIT\n",
    )
    .expect("parses");
    let mut app = greeted();
    app.load_script(scenario);
    app.on_key(key(KeyCode::Enter));
    app.on_engine(done(
        "554 5.5.1 Error: no valid recipients\r\n",
        Some("DATA"),
    ));
    assert_eq!(app.mode, Mode::COMMAND);
    let actions = app.on_key(key(KeyCode::Enter));
    assert!(actions.is_empty(), "{actions:?}");
    assert!(
        app.flash
            .as_deref()
            .is_some_and(|f| f.contains("DATA was not accepted"))
    );
}

/// An unmet expectation ends step mode too.
#[test]
fn step_mode_stops_at_an_unmet_expectation() {
    let scenario =
        smtptui::scenario::Scenario::parse("t.smtp", "S: 220\nC: NOOP\nS: 250\nC: QUIT\n")
            .expect("parses");
    let mut app = greeted();
    app.load_script(scenario);
    app.on_key(key(KeyCode::Enter));
    app.on_engine(done(
        "502 5.5.2 Error: command not recognized\r\n",
        Some("NOOP"),
    ));
    let actions = app.on_key(key(KeyCode::Enter));
    assert!(actions.is_empty(), "{actions:?}");
}

/// A refused hidden answer: the dialog's default cancels the exchange with '*', since any
/// other line (STARTTLS too) would be taken as the answer.
#[test]
fn the_default_for_a_refused_answer_is_to_cancel_the_exchange() {
    let mut app = greeted();
    app.on_engine(received(3000, Security::Cleartext, "334 VXNlcm5hbWU6\r\n"));
    app.on_engine(status(Protection::Cleartext, Phase::SaslChallenge, &[]));
    assert_eq!(app.mode, Mode::Line(Prompt::SaslAnswer));
    let actions = type_line(&mut app, "YWxpY2U=");
    assert!(
        matches!(&actions[..], [Action::SaslAnswer { .. }]),
        "{actions:?}"
    );
    app.on_engine(EngineMsg::Done(Done::GuardRefused {
        retry: Retry::Answer(smtptui::secret::Secret::new("YWxpY2U=".to_owned())),
        refusal: Refusal::Cleartext,
    }));
    assert!(matches!(app.mode, Mode::Guard(_)));
    let actions = app.on_key(key(KeyCode::Enter));
    let [Action::SaslAnswer { answer, .. }] = &actions[..] else {
        panic!("a cancelling answer expected, got {actions:?}");
    };
    assert_eq!(answer.expose(), "*");
}

fn history_file(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("history").join("mail.example.com_587")
}

/// After a successful AUTH, a password (or its base64) typed as a command is refused by the
/// engine, which sends nothing; a line that crossed as a credential is not a command either.
/// Neither reaches the history, in memory (Up) or on disk; lines sent as commands do.
#[test]
fn only_lines_sent_as_commands_reach_the_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = history_file(&dir);
    let mut app = App::new(
        "mail.example.com:587".to_owned(),
        History::load(path.clone()),
    );
    for message in [
        received(12, Security::Tls, "220 mail.example.com ESMTP\r\n"),
        status(Protection::VerifiedTls, Phase::Command, &["AUTH"]),
        done("220 mail.example.com ESMTP\r\n", None),
    ] {
        app.on_engine(message);
    }
    type_line(&mut app, "EHLO client.example");
    app.on_engine(done("250 mail.example.com\r\n", Some("EHLO")));
    type_line(&mut app, "AUTH PLAIN");
    type_line(&mut app, "alice");
    let actions = type_line(&mut app, "hunter22");
    assert!(matches!(&actions[..], [Action::Authenticate { .. }]));
    let exchange = Crossed {
        credentials: 1,
        ..Crossed::default()
    };
    app.on_engine(done_with("235 2.7.0 ok\r\n", Some("AUTH"), exchange));

    // The password typed where a command goes: the engine refuses it, nothing crosses.
    for secret in ["hunter22", "aHVudGVyMjI="] {
        let actions = type_line(&mut app, secret);
        assert!(
            matches!(&actions[..], [Action::Send { line, .. }] if line == secret),
            "{actions:?}"
        );
        app.on_engine(event(
            5000,
            EventKind::Warning("not sent: this line repeats credentials already sent".to_owned()),
        ));
        app.on_engine(EngineMsg::Done(Done::Failed {
            reason: "the line repeats credentials already sent in this session".to_owned(),
            crossed: Crossed::default(),
        }));
    }
    // A line the session sent as a credential (it knew the secret): crossed, but not kept.
    type_line(&mut app, "NOOP hunter22");
    app.on_engine(done_with("250 ok\r\n", Some("NOOP"), exchange));
    // A command that crossed: kept.
    type_line(&mut app, "MAIL FROM:<alice@example.com>");
    app.on_engine(done("250 2.1.0 ok\r\n", Some("MAIL")));

    let mut recalled = Vec::new();
    for _ in 0..6 {
        app.on_key(key(KeyCode::Up));
        recalled.push(app.input.text().to_owned());
    }
    assert_eq!(
        recalled,
        [
            "MAIL FROM:<alice@example.com>",
            "AUTH PLAIN",
            "EHLO client.example",
            "EHLO client.example",
            "EHLO client.example",
            "EHLO client.example",
        ]
    );
    let file = std::fs::read_to_string(&path).expect("history written");
    assert_eq!(
        file,
        "EHLO client.example\nAUTH PLAIN\nMAIL FROM:<alice@example.com>\n"
    );
}

/// A line refused by the guard, or a bare AUTH whose prompt was cancelled, never crossed.
#[test]
fn lines_that_never_crossed_are_not_remembered() {
    let mut app = after_ehlo();
    type_line(&mut app, "AUTH PLAIN");
    assert!(matches!(app.mode, Mode::Guard(_)));
    app.on_key(key(KeyCode::Esc));
    type_line(&mut app, "VRFY alice");
    app.on_engine(EngineMsg::Done(Done::Failed {
        reason: "timed out before anything was sent".to_owned(),
        crossed: Crossed::default(),
    }));
    app.on_key(key(KeyCode::Up));
    assert_eq!(app.input.text(), "EHLO client.example");
    app.on_key(key(KeyCode::Up));
    assert_eq!(app.input.text(), "EHLO client.example", "nothing older");
}

/// The whole path against the practice server, with the real engine: after AUTH, the password
/// and its base64 typed as commands are refused by the session and stay out of the history
/// file and of Up; the commands that crossed are kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_the_lab_a_refused_secret_never_reaches_the_history() {
    use smtptui::lab::accounts::{DEFAULT_PASSWORD, DEFAULT_USER};
    use smtptui::lab::{Lab, LabConfig, Profile};
    use tokio::sync::mpsc;

    let mut lab_config = LabConfig::ephemeral(vec![Profile::Submission]);
    lab_config.log = std::sync::Arc::new(|_| {});
    let lab = Lab::start(lab_config).await.expect("lab starts");
    let config = lab
        .client_config(Profile::Submission)
        .expect("submission listener");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = history_file(&dir);
    let mut app = App::new("lab".to_owned(), History::load(path.clone()));
    let (action_tx, action_rx) = mpsc::unbounded_channel();
    let (engine_tx, mut engine_rx) = mpsc::unbounded_channel();
    let engine = tokio::spawn(smtptui::tui::engine::run(config, action_rx, engine_tx));

    // Feeds engine messages to the UI until the action in flight has ended.
    async fn settle(
        app: &mut App,
        engine_rx: &mut mpsc::UnboundedReceiver<EngineMsg>,
        action_tx: &mpsc::UnboundedSender<Action>,
    ) {
        while app.pending.is_some() {
            let message = tokio::time::timeout(Duration::from_secs(20), engine_rx.recv())
                .await
                .expect("the engine answers")
                .expect("the engine runs");
            for action in app.on_engine(message) {
                action_tx.send(action).expect("engine alive");
            }
        }
    }
    let typed = |app: &mut App, text: &str| {
        for action in type_line(app, text) {
            action_tx.send(action).expect("engine alive");
        }
    };
    settle(&mut app, &mut engine_rx, &action_tx).await;
    let encoded = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(DEFAULT_PASSWORD)
    };
    for line in [
        "EHLO client.test",
        "STARTTLS",
        "EHLO client.test",
        "AUTH PLAIN",
        DEFAULT_USER,
        DEFAULT_PASSWORD,
        DEFAULT_PASSWORD,
        &encoded,
        "NOOP",
    ] {
        typed(&mut app, line);
        settle(&mut app, &mut engine_rx, &action_tx).await;
        if line == DEFAULT_PASSWORD && app.status.authenticated_as.is_none() {
            panic!("AUTH did not succeed: {:?}", app.status);
        }
    }
    let warnings = app
        .view
        .events
        .iter()
        .filter(|event| {
            matches!(&event.kind, EventKind::Warning(text) if text.contains("repeats credentials"))
        })
        .count();
    assert_eq!(warnings, 2, "both secrets refused by the session");

    let file = std::fs::read_to_string(&path).expect("history written");
    assert_eq!(
        file,
        "EHLO client.test\nSTARTTLS\nEHLO client.test\nAUTH PLAIN\nNOOP\n"
    );
    app.on_key(key(KeyCode::Up));
    assert_eq!(app.input.text(), "NOOP");
    app.on_key(key(KeyCode::Up));
    assert_eq!(app.input.text(), "AUTH PLAIN");
    engine.abort();
    lab.shutdown().await;
}

fn unverified(app: &mut App) {
    let problem = smtptui::tls::CertificateProblem {
        kind: "unknown issuer",
        detail: "the certificate is not signed by a trusted CA".to_owned(),
    };
    let info = tls_info(Verification::Failed(problem.clone()));
    app.on_engine(event(
        2030,
        EventKind::TlsEstablished(Box::new(info.clone())),
    ));
    let mut tls_status = Status::disconnected("mail.example.com:587".to_owned());
    tls_status.connected = true;
    tls_status.security = Security::Tls;
    tls_status.protection = Protection::UnverifiedTls(problem);
    tls_status.tls = Some(info);
    app.on_engine(EngineMsg::Status(Box::new(tls_status)));
}

fn is_override_alarm(style: ratatui::style::Style) -> bool {
    style.fg == Some(Color::White)
        && style.bg == Some(Color::Red)
        && style.add_modifier.contains(ratatui::style::Modifier::BOLD)
}

/// With `--allow-cleartext-auth`, every hint says what is true: the status bar says AUTH is
/// allowed in cleartext (white on red, as the override lines in the transcript), never that it
/// is blocked; the input line and the password prompt say the credentials go in cleartext; a
/// refused STARTTLS does not claim AUTH stays blocked; the help says the flag is on.
#[test]
fn allow_cleartext_auth_is_said_everywhere_it_matters() {
    use smtptui::guard::GuardPolicy;
    let mut app = after_ehlo();
    app.policy = GuardPolicy {
        allow_cleartext_auth: true,
        allow_unverified_auth: false,
    };
    let text = screen(&app);
    assert!(!text.contains("blocked"), "{text}");
    insta::assert_snapshot!("cleartext_auth_allowed", text);
    let colours = buffer(&app);
    assert!(is_override_alarm(style_of(&colours, "AUTH ALLOWED")));
    assert_eq!(style_of(&colours, "CLEARTEXT").fg, Some(Color::Red));
    app.colour = false;
    assert!(
        style_of(&buffer(&app), "AUTH ALLOWED")
            .add_modifier
            .contains(ratatui::style::Modifier::REVERSED),
        "without colour the override still stands out"
    );
    app.colour = true;

    for c in "AUTH PLAIN".chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
    let hint = app.enter_hint();
    assert!(
        hint.contains("IN CLEARTEXT (--allow-cleartext-auth)"),
        "{hint}"
    );
    assert!(
        screen(&app).contains("IN CLEARTEXT"),
        "the hint fits the screen"
    );
    app.on_key(key(KeyCode::Enter));
    assert!(
        matches!(app.mode, Mode::Line(Prompt::User { .. })),
        "{:?}",
        app.mode
    );
    type_line(&mut app, "alice");
    let hint = app.enter_hint();
    assert!(hint.contains("IN CLEARTEXT"), "{hint}");
    app.on_key(key(KeyCode::Esc));

    retype(&mut app, "AUTH PLAIN AGFsaWNlAHNlY3JldA==");
    let hint = app.enter_hint();
    assert!(hint.contains("IN CLEARTEXT"), "{hint}");
    app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));

    type_line(&mut app, "STARTTLS");
    app.on_engine(done("454 4.7.0 TLS not available\r\n", Some("STARTTLS")));
    let flash = app.flash.clone().unwrap_or_default();
    assert!(!flash.contains("blocked"), "{flash}");
    assert!(flash.contains("--allow-cleartext-auth"), "{flash}");

    app.on_key(key(KeyCode::F(1)));
    assert!(screen(&app).contains("--allow-cleartext-auth is ON"));

    // Without the flag, the same screen says AUTH is blocked.
    let plain = screen(&after_ehlo());
    assert!(plain.contains("AUTH is blocked until TLS"), "{plain}");
}

/// With `--insecure`, an unverified certificate still shows loudly, and the status bar and the
/// input line say AUTH goes to that peer; the guard dialog for cleartext says that `--insecure`
/// does not cover it.
#[test]
fn insecure_is_said_where_it_lets_credentials_through() {
    use smtptui::guard::GuardPolicy;
    let policy = GuardPolicy {
        allow_cleartext_auth: false,
        allow_unverified_auth: true,
    };
    let mut app = after_ehlo();
    app.policy = policy;
    unverified(&mut app);
    let text = screen(&app);
    assert!(text.contains("CERTIFICATE NOT VERIFIED"), "{text}");
    assert!(text.contains("--insecure: AUTH ALLOWED"), "{text}");
    let colours = buffer(&app);
    assert!(is_override_alarm(style_of(&colours, "AUTH ALLOWED")));
    for c in "AUTH LOGIN".chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
    let hint = app.enter_hint();
    assert!(
        hint.contains("to an UNVERIFIED peer (--insecure)"),
        "{hint}"
    );
    app.on_key(key(KeyCode::Enter));
    assert!(
        matches!(app.mode, Mode::Line(Prompt::User { .. })),
        "{:?}",
        app.mode
    );

    // Without the flag: no claim that AUTH is allowed.
    let mut strict = after_ehlo();
    unverified(&mut strict);
    assert!(!screen(&strict).contains("AUTH ALLOWED"));

    // On cleartext, --insecure does not apply, and the guard dialog says so.
    let mut app = after_ehlo();
    app.policy = policy;
    assert!(screen(&app).contains("AUTH is blocked until TLS"));
    type_line(&mut app, "AUTH PLAIN");
    assert!(matches!(app.mode, Mode::Guard(_)));
    let dialog = screen(&app);
    assert!(
        dialog.contains("--insecure is on, but it covers unverified certificates, not cleartext."),
        "{dialog}"
    );
}

/// A server that floods replies nobody asked for is cut off by the session, and the explain
/// pane says why from the error's kind: the session's wording of the error is its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explain_pane_explains_a_session_ended_out_of_step() {
    use smtptui::session::{SessionConfig, TlsMode, UnaskedReplies};
    use smtptui::tls::TrustSettings;
    use tokio::io::AsyncWriteExt as _;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let _ = stream.write_all(b"220 flood ESMTP\r\n").await;
        for _ in 0..10_000 {
            if stream.write_all(b"250 unasked\r\n").await.is_err() {
                break;
            }
        }
    });
    let config = SessionConfig {
        host: "127.0.0.1".to_owned(),
        port,
        tls_mode: TlsMode::StartTls,
        server_name: "localhost".to_owned(),
        trust: TrustSettings {
            extra_roots: Vec::new(),
            continue_unverified: true,
            client_identity: None,
            roots: Default::default(),
        },
        policy: smtptui::guard::GuardPolicy::default(),
        timeout: Duration::from_secs(5),
        limits: ReplyLimits::default(),
        unasked: UnaskedReplies::Show,
        known_secrets: Vec::new(),
        sasl: Default::default(),
        transport: Default::default(),
    };
    let mut app = App::new("flood".to_owned(), History::in_memory());
    app.explain = true;
    let (_action_tx, action_rx) = tokio::sync::mpsc::unbounded_channel();
    let (engine_tx, mut engine_rx) = tokio::sync::mpsc::unbounded_channel();
    let engine = tokio::spawn(smtptui::tui::engine::run(config, action_rx, engine_tx));
    let ended = loop {
        let message = tokio::time::timeout(Duration::from_secs(20), engine_rx.recv())
            .await
            .expect("the engine answers")
            .expect("the engine runs");
        let error =
            matches!(&message, EngineMsg::Event(e) if matches!(e.kind, EventKind::Error { .. }));
        app.on_engine(message);
        if error {
            break true;
        }
    };
    engine.abort();
    assert!(ended);
    let explanation = ui::explanation(&app).join(" ");
    assert!(
        explanation.contains("replies nobody asked for")
            && explanation.contains("can no longer be matched"),
        "{explanation}"
    );
}

/// The explain pane on an unverified certificate tells what the guard will do with the
/// standing policy: AUTH is blocked without `--insecure`, and not with it.
#[test]
fn the_explain_pane_knows_whether_insecure_was_given() {
    let mut strict = after_ehlo();
    unverified(&mut strict);
    let explanation = ui::explanation(&strict).join(" ");
    assert!(
        explanation.contains("AUTH is blocked unless you override it for one command"),
        "{explanation}"
    );

    let mut insecure = after_ehlo();
    insecure.policy = smtptui::guard::GuardPolicy {
        allow_cleartext_auth: false,
        allow_unverified_auth: true,
    };
    unverified(&mut insecure);
    let explanation = ui::explanation(&insecure).join(" ");
    assert!(!explanation.contains("AUTH is blocked"), "{explanation}");
    assert!(
        explanation.contains("--insecure is on: AUTH is NOT blocked"),
        "{explanation}"
    );
}

/// A scenario that writes out a SASL exchange (a mechanism the tool does not run itself):
/// in step mode its answer line goes out as a SASL answer, which the engine sends only while
/// the server waits for one, and is never shown on screen.
#[test]
fn step_mode_sends_a_written_out_sasl_answer_as_an_answer() {
    let secret = "dXNlciBzZWNyZXQ=";
    let scenario = smtptui::scenario::Scenario::parse(
        "t.smtp",
        &format!("S: 220\nC: AUTH DIGEST-MD5\nS: 334\nC: {secret}\nS: 235\n"),
    )
    .expect("parses");
    assert!(scenario.steps[1].sasl_answer);
    let mut app = after_tls();
    app.load_script(scenario);
    let actions = app.on_key(key(KeyCode::Enter));
    assert!(
        matches!(&actions[..], [Action::Send { line, .. }] if line == "AUTH DIGEST-MD5"),
        "{actions:?}"
    );
    let mut challenge = app.status.clone();
    challenge.phase = Phase::SaslChallenge;
    app.on_engine(EngineMsg::Status(Box::new(challenge)));
    app.on_engine(done("334 PDEyMzQ1Pg==\r\n", Some("AUTH")));
    assert_eq!(app.mode, Mode::Line(Prompt::SaslAnswer));
    assert!(
        app.enter_hint().contains("send step line 4"),
        "{}",
        app.enter_hint()
    );
    assert!(!screen(&app).contains(secret));
    // Enter on the empty hidden prompt sends the scenario's answer, as an answer.
    let actions = app.on_key(key(KeyCode::Enter));
    let [Action::SaslAnswer { answer, one_time }] = &actions[..] else {
        panic!("a SASL answer expected, got {actions:?}");
    };
    assert_eq!(answer.expose(), secret);
    assert_eq!(*one_time, OneTimeOverride::None);
    assert!(!format!("{actions:?}").contains(secret));
}

/// When the server has not challenged (here it refused the mechanism), the scenario's answer
/// still goes to the engine as an answer, which refuses it, and never as a visible command; the
/// hint does not show it either.
#[test]
fn step_mode_never_sends_a_written_out_sasl_answer_as_a_command() {
    let secret = "dXNlciBzZWNyZXQ=";
    let scenario = smtptui::scenario::Scenario::parse(
        "t.smtp",
        &format!("S: 220\nC: AUTH DIGEST-MD5\nC: {secret}\nS: 235\n"),
    )
    .expect("parses");
    assert!(scenario.steps[1].sasl_answer);
    let mut app = after_tls();
    app.load_script(scenario);
    app.on_key(key(KeyCode::Enter));
    app.on_engine(done(
        "504 5.5.4 Unrecognized authentication type\r\n",
        Some("AUTH"),
    ));
    assert_eq!(app.mode, Mode::COMMAND);
    let hint = app.enter_hint();
    assert!(hint.contains("send step line 3"), "{hint}");
    assert!(!screen(&app).contains(secret), "{}", screen(&app));
    let actions = app.on_key(key(KeyCode::Enter));
    let [Action::SaslAnswer { answer, .. }] = &actions[..] else {
        panic!("a SASL answer expected, got {actions:?}");
    };
    assert_eq!(answer.expose(), secret);
}

/// A certificate of the chain that could not be parsed is said to be so on screen, as in the
/// text transcript, instead of a row of empty fields.
#[test]
fn an_unparsable_certificate_is_said_to_be_so() {
    let mut app = after_ehlo();
    let mut info = tls_info(Verification::Verified);
    info.chain.push(CertSummary {
        subject: String::new(),
        issuer: String::new(),
        sans: Vec::new(),
        not_before: String::new(),
        not_after: String::new(),
        days_to_expiry: 0,
        key: String::new(),
        serial: String::new(),
        parse_error: Some("unexpected end of input".to_owned()),
        der: smtptui::tls::CertDer::default(),
    });
    app.on_engine(event(2030, EventKind::TlsEstablished(Box::new(info))));
    let text = screen(&app);
    assert!(
        text.contains("chain[1]: unparsable certificate (unexpected end of input)"),
        "{text}"
    );
    assert!(!text.contains("(issuer )"), "{text}");
}

/// Every kind of event as the transcript pane shows it, from the one row model the text
/// transcript and the JSON lines render too.
#[test]
fn snapshot_every_event_kind() {
    use smtptui::tls::CertificateProblem;
    let problem = CertificateProblem {
        kind: "unknown issuer",
        detail: "unknown issuer: the certificate chain does not lead to a trusted root".to_owned(),
    };
    let mut app = App::new("mail.example.com:587".to_owned(), History::in_memory());
    let messages = vec![
        event(
            0,
            EventKind::Connecting {
                target: "mail.example.com:587".to_owned(),
                transport: "plain TCP; TLS only after STARTTLS".to_owned(),
            },
        ),
        event(
            3,
            EventKind::Connected {
                peer: "192.0.2.25:587".to_owned(),
                local: "192.0.2.1:40000".to_owned(),
            },
        ),
        received(12, Security::Cleartext, "220 mail.example.com ESMTP\r\n"),
        sent(1000, Security::Cleartext, "EHLO client.example"),
        received(
            1021,
            Security::Cleartext,
            "250-mail.example.com\r\n250 STARTTLS\n",
        ),
        event(
            1500,
            EventKind::Unasked {
                security: Security::Cleartext,
                reply: reply("250 unasked\r\n"),
            },
        ),
        event(
            1600,
            EventKind::Guard(GuardOutcome::Refused(Refusal::Cleartext)),
        ),
        event(
            2030,
            EventKind::TlsEstablished(Box::new(tls_info(Verification::Failed(problem.clone())))),
        ),
        event(
            2100,
            EventKind::Guard(GuardOutcome::Overridden {
                refusal: Refusal::Unverified(problem),
                one_time: true,
            }),
        ),
        event(
            2200,
            EventKind::Sent {
                security: Security::Tls,
                text: "AUTH PLAIN <credentials for alice hidden>".to_owned(),
                kind: SentKind::Credentials,
            },
        ),
        event(
            2300,
            EventKind::Sent {
                security: Security::Tls,
                text: "Subject: hello".to_owned(),
                kind: SentKind::MessageLine,
            },
        ),
        event(
            2400,
            EventKind::Expectation {
                line: 7,
                expected: "250".to_owned(),
                met: true,
                got: "250 2.0.0 ok".to_owned(),
            },
        ),
        event(
            2500,
            EventKind::Expectation {
                line: 9,
                expected: "2xx".to_owned(),
                met: false,
                got: "550 5.1.1 no such user".to_owned(),
            },
        ),
        event(2600, EventKind::Note("a note".to_owned())),
        event(2700, EventKind::Warning("a warning".to_owned())),
        event(
            2800,
            EventKind::Error {
                kind: ErrorKind::Closed,
                text: "the server closed the connection".to_owned(),
            },
        ),
        event(2900, EventKind::Closed),
    ];
    for message in messages {
        app.on_engine(message);
    }
    app.pending = None;
    let mut terminal = Terminal::new(TestBackend::new(110, 32)).expect("test terminal");
    terminal
        .draw(|frame| ui::render(&app, frame, Instant::now()))
        .expect("draws");
    insta::assert_snapshot!("every_event_kind", terminal.backend().to_string());
}

/// Keys the help used to leave out do what it now says: Ctrl-D ends the message, `:next`
/// sends the next step, and `?` on an empty command line opens the help (typed otherwise).
#[test]
fn ctrl_d_next_and_question_mark_do_what_the_help_says() {
    let mut app = after_tls();
    type_line(&mut app, "DATA");
    let mut in_message = app.status.clone();
    in_message.phase = Phase::Message;
    app.on_engine(EngineMsg::Status(Box::new(in_message)));
    app.on_engine(done("354 go ahead\r\n", Some("DATA")));
    type_line(&mut app, "Subject: ctrl-d");
    let actions = app.on_key(KeyEvent::new(KeyCode::Char('d'), KeyModifiers::CONTROL));
    assert!(
        matches!(&actions[..], [Action::Message { lines }] if lines == &["Subject: ctrl-d"]),
        "{actions:?}"
    );

    let scenario =
        smtptui::scenario::Scenario::parse("t.smtp", "S: 220\nC: NOOP\nS: 250\n").expect("parses");
    let mut app = greeted();
    app.load_script(scenario);
    let actions = type_line(&mut app, ":next");
    assert!(
        matches!(&actions[..], [Action::Send { line, .. }] if line == "NOOP"),
        "{actions:?}"
    );

    let mut app = greeted();
    app.on_key(key(KeyCode::Char('?')));
    assert_eq!(app.overlay, Some(Overlay::Help));
    app.on_key(key(KeyCode::Esc));
    assert_eq!(app.overlay, None);
    type_line(&mut app, "HELP ?");
    assert_eq!(app.overlay, None, "a typed ? is text");
}

// -----------------------------------------------------------------------------------------
// The UI at 80x24 and at 60x20
// -----------------------------------------------------------------------------------------

/// The screen at `width` x `height`.
fn screen_at(app: &App, width: u16, height: u16) -> String {
    terminal_at(app, width, height).backend().to_string()
}

fn terminal_at(app: &App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    let now = app.pending.as_ref().map_or_else(Instant::now, |p| p.since);
    terminal
        .draw(|frame| ui::render(app, frame, now))
        .expect("draws");
    terminal
}

/// The cursor's cell after drawing.
fn cursor_at(app: &App, width: u16, height: u16) -> (u16, u16) {
    let mut terminal = terminal_at(app, width, height);
    let position = terminal.get_cursor_position().expect("cursor");
    (position.x, position.y)
}

/// The screen's rows, without the quotes TestBackend puts around them.
fn rows_of(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| line.trim_matches('"').to_owned())
        .collect()
}

/// Both sizes the UI must work at: the classic terminal and a narrow split.
const SIZES: [(u16, u16); 2] = [(80, 24), (60, 20)];

fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}

fn alt(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::ALT)
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
}

#[test]
fn the_input_line_edits_like_a_shell() {
    let mut app = after_ehlo();
    type_text(&mut app, "MAIL FROM:<alice@example.com>");
    app.on_key(key(KeyCode::Home));
    app.on_key(key(KeyCode::Right));
    app.on_key(key(KeyCode::Delete));
    assert_eq!(app.input.text(), "MIL FROM:<alice@example.com>");
    app.on_key(ctrl('a'));
    type_text(&mut app, "X");
    app.on_key(key(KeyCode::Backspace));
    app.on_key(KeyEvent::new(KeyCode::Right, KeyModifiers::CONTROL));
    assert_eq!(app.input.line().cursor(), 3, "after the word MIL");
    app.on_key(ctrl('e'));
    app.on_key(alt(KeyCode::Char('b')));
    app.on_key(alt(KeyCode::Char('b')));
    app.on_key(ctrl('k'));
    assert_eq!(app.input.text(), "MIL FROM:<alice@");
    app.on_key(ctrl('w'));
    assert_eq!(app.input.text(), "MIL ");
    type_text(&mut app, "FROM:<a@b>");
    app.on_key(key(KeyCode::Left));
    app.on_key(ctrl('u'));
    assert_eq!(app.input.text(), ">");
    // Home and End on an empty line still scroll the transcript.
    app.on_key(ctrl('k'));
    app.on_key(key(KeyCode::Home));
    assert!(
        app.view.scroll.is_some(),
        "Home on an empty line goes to the top"
    );
    app.on_key(key(KeyCode::End));
    assert!(app.view.scroll.is_none());
}

/// The cursor is drawn where the next character goes, counting wide characters as two cells,
/// also when the line is longer than the screen.
#[test]
fn the_cursor_is_placed_in_terminal_cells() {
    let mut app = after_ehlo();
    type_text(&mut app, "RCPT TO:<漢字@example.com>");
    for _ in 0.."@example.com>".chars().count() {
        app.on_key(key(KeyCode::Left));
    }
    for (width, height) in SIZES {
        let (x, y) = cursor_at(&app, width, height);
        // The border, "> ", "RCPT TO:<" and two wide characters.
        assert_eq!((x, y), (1 + 2 + 9 + 4, height - 2), "at {width}x{height}");
    }
    // A line wider than the screen scrolls so the cursor stays in view.
    let mut app = after_ehlo();
    type_text(&mut app, &format!("NOOP {}", "字".repeat(60)));
    for (width, height) in SIZES {
        let (x, _) = cursor_at(&app, width, height);
        assert!(x < width - 1, "cursor at {x} on a {width}-wide screen");
        let rows = rows_of(&screen_at(&app, width, height));
        assert!(rows[height as usize - 2].contains('字'), "{rows:?}");
    }
}

/// Passwords and SASL answers are never drawn, whatever editing is done, and the cursor does
/// not move with them (their length does not show either).
#[test]
fn hidden_entry_stays_hidden_while_edited() {
    let mut app = after_tls();
    type_line(&mut app, "AUTH PLAIN");
    type_line(&mut app, "alice");
    type_text(&mut app, "hunter2");
    app.on_key(key(KeyCode::Left));
    app.on_key(key(KeyCode::Left));
    type_text(&mut app, "XY");
    app.on_key(ctrl('a'));
    let (x, _) = cursor_at(&app, 80, 24);
    for (width, height) in SIZES {
        let text = screen_at(&app, width, height);
        assert!(!text.contains("hunter") && !text.contains("XY"), "{text}");
        assert_eq!(
            cursor_at(&app, width, height).0,
            x,
            "the cursor stays after the prompt"
        );
    }
    assert_eq!(x, 1 + "password (hidden)> ".len() as u16);
    let actions = app.on_key(key(KeyCode::Enter));
    assert!(
        matches!(&actions[..], [Action::Authenticate { credentials, .. }] if credentials.secret.expose() == "hunteXYr2"),
        "{actions:?}"
    );
    assert!(!format!("{app:?}").contains("hunte"));
}

/// Lines typed while a reply is pending wait their turn, each whole, instead of piling into
/// one line; they go one per reply, and are dropped (never sent as message text) when the
/// server moves on to a message.
#[test]
fn typing_while_a_reply_is_pending_never_piles_keys_into_one_line() {
    let mut app = after_ehlo();
    let actions = type_line(&mut app, "MAIL FROM:<a@example.com>");
    assert_eq!(actions.len(), 1);
    assert!(app.pending.is_some());
    assert!(type_line(&mut app, "RCPT TO:<b@example.com>").is_empty());
    assert!(type_line(&mut app, "DATA").is_empty());
    assert_eq!(app.input.text(), "", "each line left the input line");
    assert_eq!(app.queued, ["RCPT TO:<b@example.com>", "DATA"]);
    let text = screen(&app);
    assert!(text.contains("typed ahead"), "{text}");
    let actions = app.on_engine(done("250 2.1.0 Ok\r\n", Some("MAIL")));
    assert!(
        matches!(&actions[..], [Action::Send { line, .. }] if line == "RCPT TO:<b@example.com>"),
        "{actions:?}"
    );
    let actions = app.on_engine(done("250 2.1.5 Ok\r\n", Some("RCPT")));
    assert!(
        matches!(&actions[..], [Action::Send { line, .. }] if line == "DATA"),
        "{actions:?}"
    );
    // A line queued behind DATA is never sent as message text.
    assert!(type_line(&mut app, "QUIT").is_empty());
    let mut in_message = app.status.clone();
    in_message.phase = Phase::Message;
    app.on_engine(EngineMsg::Status(Box::new(in_message)));
    let actions = app.on_engine(done("354 go ahead\r\n", Some("DATA")));
    assert!(actions.is_empty(), "{actions:?}");
    assert!(app.queued.is_empty());
    assert!(
        app.flash
            .as_deref()
            .is_some_and(|f| f.contains("not sent: the server now waits for the message")),
        "{:?}",
        app.flash
    );
    // Esc drops what waits instead of leaving.
    let mut app = after_ehlo();
    type_line(&mut app, "NOOP");
    type_line(&mut app, "RSET");
    assert!(app.on_key(key(KeyCode::Esc)).is_empty());
    assert!(app.queued.is_empty() && !app.should_exit);
}

/// The same multi-line paste, with and without bracketed paste: the terminal without it sends
/// the lines as keys in one burst, which is taken as the paste it is.
#[test]
fn a_paste_behaves_the_same_with_or_without_bracketed_paste() {
    use crossterm::event::Event as Term;
    let text = "MAIL FROM:<a@example.com>\nRCPT TO:<b@example.com>\n";
    let burst = |text: &str| -> Vec<Term> {
        text.chars()
            .map(|c| match c {
                // Raw mode turns a line feed into Ctrl-J, and Enter is a carriage return.
                '\n' => Term::Key(ctrl('j')),
                c => Term::Key(key(KeyCode::Char(c))),
            })
            .collect()
    };
    let mut bracketed = after_ehlo();
    let a = bracketed.on_terminal(Term::Paste(text.to_owned()));
    let mut keys = after_ehlo();
    let b = keys.on_terminal_batch(burst(text));
    assert!(a.is_empty() && b.is_empty(), "{a:?} {b:?}");
    assert_eq!(bracketed.mode, keys.mode);
    assert!(matches!(keys.mode, Mode::Group(_)), "{:?}", keys.mode);
    bracketed.on_key(key(KeyCode::Enter));
    keys.on_key(key(KeyCode::Enter));
    assert_eq!(bracketed.input.text(), keys.input.text());
    assert_eq!(keys.input.text(), "MAIL FROM:<a@example.com>");
    assert_eq!(bracketed.flash, keys.flash);
    // In the message editor both fill the message, and a pasted lone dot ends it.
    let message = "Subject: x\r\n\r\nbody\r\n.\r\n";
    let open_editor = || {
        let mut app = after_tls();
        type_line(&mut app, "DATA");
        let mut in_message = app.status.clone();
        in_message.phase = Phase::Message;
        app.on_engine(EngineMsg::Status(Box::new(in_message)));
        app.on_engine(done("354 go ahead\r\n", Some("DATA")));
        app
    };
    let mut bracketed = open_editor();
    let a = bracketed.on_terminal(Term::Paste(message.to_owned()));
    let mut keys = open_editor();
    let events: Vec<Term> = message
        .chars()
        .filter(|c| *c != '\n')
        .map(|c| match c {
            '\r' => Term::Key(key(KeyCode::Enter)),
            c => Term::Key(key(KeyCode::Char(c))),
        })
        .collect();
    let b = keys.on_terminal_batch(events);
    assert!(
        matches!(&a[..], [Action::Message { lines }] if lines == &["Subject: x", "", "body"]),
        "{a:?}"
    );
    assert!(
        matches!(&b[..], [Action::Message { lines }] if lines == &["Subject: x", "", "body"]),
        "{b:?}"
    );
    // One line typed and Enter, arriving together, is still a command sent.
    let mut app = after_ehlo();
    let actions = app.on_terminal_batch(
        "NOOP"
            .chars()
            .map(|c| Term::Key(key(KeyCode::Char(c))))
            .chain([Term::Key(key(KeyCode::Enter))])
            .collect(),
    );
    assert!(
        matches!(&actions[..], [Action::Send { line, .. }] if line == "NOOP"),
        "{actions:?}"
    );
}

/// `:record FILE` records as the session goes on until `:record stop`; no file is replaced
/// without `!`; `~` is the home directory.
#[test]
fn record_starts_a_recording_and_never_replaces_a_file_unasked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s.smtp");
    let typed = path.display().to_string();
    let mut app = after_ehlo();
    type_line(&mut app, &format!(":record {typed}"));
    assert!(app.recording.is_some(), "{:?}", app.flash);
    // What happens after the start goes into the file as it happens.
    type_line(&mut app, "NOOP");
    app.on_engine(sent(3000, Security::Cleartext, "NOOP"));
    app.on_engine(received(3001, Security::Cleartext, "250 2.0.0 Ok\r\n"));
    app.on_engine(done("250 2.0.0 Ok\r\n", Some("NOOP")));
    let recorded = std::fs::read_to_string(&path).expect("written");
    assert!(
        recorded.contains("C: EHLO client.example\nS: 250\nC: NOOP\nS: 250\n"),
        "{recorded}"
    );
    type_line(&mut app, ":record stop");
    assert!(app.recording.is_none());
    assert!(
        app.flash
            .as_deref()
            .is_some_and(|f| f.contains("recording stopped")),
        "{:?}",
        app.flash
    );
    app.on_engine(sent(4000, Security::Cleartext, "RSET"));
    assert!(
        !std::fs::read_to_string(&path)
            .expect("kept")
            .contains("RSET")
    );
    // The file exists: neither :record nor :save replaces it without '!'.
    for command in ["record", "save"] {
        type_line(&mut app, &format!(":{command} {typed}"));
        let flash = app.flash.clone().unwrap_or_default();
        assert!(
            flash.contains(&format!(":{command}! {typed} replaces it")),
            "{flash}"
        );
        assert!(app.recording.is_none());
        assert!(
            std::fs::read_to_string(&path)
                .expect("kept")
                .contains("C: NOOP")
        );
    }
    type_line(&mut app, &format!(":save! {typed}"));
    assert!(
        std::fs::read_to_string(&path)
            .expect("replaced")
            .contains("C: EHLO client.example"),
        "{:?}",
        app.flash
    );
    // '~' is the home directory.
    assert_eq!(
        smtptui::tui::record::expand_home("~/x.smtp"),
        std::path::PathBuf::from(std::env::var("HOME").expect("HOME")).join("x.smtp")
    );
}

/// After `:reconnect` a separator shows where the new session starts, and the times go on
/// from the last one instead of starting again at zero.
#[test]
fn reconnect_leaves_a_separator_and_times_keep_counting() {
    let mut app = after_ehlo();
    let actions = type_line(&mut app, ":reconnect");
    assert!(matches!(&actions[..], [Action::Reconnect]));
    // The new session's first events count from zero, a second after the last one.
    let later = SystemTime::UNIX_EPOCH + Duration::from_secs(1);
    app.on_engine(EngineMsg::Event(Event {
        time: later + Duration::from_secs(2),
        elapsed: Duration::ZERO,
        kind: EventKind::Connecting {
            target: "mail.example.com:587".to_owned(),
            transport: "plain TCP; TLS only after STARTTLS".to_owned(),
        },
    }));
    app.on_engine(EngineMsg::Event(Event {
        time: later + Duration::from_secs(2),
        elapsed: Duration::from_millis(5),
        kind: EventKind::Connected {
            peer: "192.0.2.25:587".to_owned(),
            local: "192.0.2.1:40001".to_owned(),
        },
    }));
    let text = screen(&app);
    assert!(text.contains(":reconnect: a new session"), "{text}");
    let times: Vec<f64> = app
        .view
        .events
        .iter()
        .map(|e| e.elapsed.as_secs_f64())
        .collect();
    assert!(
        times.windows(2).all(|pair| pair[0] <= pair[1]),
        "times go backwards: {times:?}"
    );
    let last = app.view.events.last().expect("event").elapsed;
    assert!(last > Duration::from_secs(1), "{last:?}");
}

/// Enter in the guard dialog runs the whole safe way: STARTTLS, then EHLO inside TLS (with the
/// name used before), then the AUTH that was asked for; the input title says each step.
#[test]
fn the_guard_default_runs_starttls_ehlo_and_the_auth() {
    let mut app = after_ehlo();
    type_line(&mut app, "AUTH PLAIN");
    let actions = app.on_key(key(KeyCode::Enter));
    assert!(matches!(&actions[..], [Action::Send { line, .. }] if line == "STARTTLS"));
    assert!(
        app.enter_hint().contains("then EHLO"),
        "{}",
        app.enter_hint()
    );
    // TLS is up: EHLO goes by itself, with the name given before.
    let tls = after_tls().status;
    app.on_engine(EngineMsg::Status(Box::new(tls.clone())));
    let actions = app.on_engine(done("220 2.0.0 Ready to start TLS\r\n", Some("STARTTLS")));
    assert!(
        matches!(&actions[..], [Action::Send { line, .. }] if line == "EHLO client.example"),
        "{actions:?}"
    );
    // EHLO answered: the AUTH asked for, which prompts for the user.
    let actions = app.on_engine(done(
        "250-mail.example.com\r\n250 AUTH PLAIN LOGIN\r\n",
        Some("EHLO"),
    ));
    assert!(actions.is_empty(), "{actions:?}");
    assert!(
        matches!(app.mode, Mode::Line(Prompt::User { .. })),
        "{:?}",
        app.mode
    );
    assert!(app.recovery.is_none());
    // The AUTH line typed before the dialog reaches the history once its exchange ran.
    type_line(&mut app, "alice");
    let actions = type_line(&mut app, "secret");
    assert!(
        matches!(&actions[..], [Action::Authenticate { .. }]),
        "{actions:?}"
    );
    let crossed = Crossed {
        credentials: 1,
        ..Crossed::default()
    };
    app.on_engine(done_with("235 2.7.0 ok\r\n", Some("AUTH"), crossed));
    app.on_key(key(KeyCode::Up));
    assert_eq!(app.input.text(), "AUTH PLAIN");

    // A refused STARTTLS stops it, and says that nothing more was sent.
    let mut app = after_ehlo();
    type_line(&mut app, "AUTH LOGIN");
    app.on_key(key(KeyCode::Enter));
    let actions = app.on_engine(done("454 4.7.0 TLS not available\r\n", Some("STARTTLS")));
    assert!(actions.is_empty(), "{actions:?}");
    let flash = app.flash.clone().unwrap_or_default();
    assert!(flash.contains("STARTTLS refused (454)"), "{flash}");
    assert!(flash.contains("no EHLO and no AUTH were sent"), "{flash}");
    assert!(app.recovery.is_none());
}

/// The input line's title says what Enter does in full at 80 columns, and never promises what
/// Enter will not do: while a reply is pending, Enter on an empty line sends no step.
#[test]
fn the_enter_hint_is_never_cut_and_never_promises_too_much() {
    let scenario =
        smtptui::scenario::Scenario::parse("t.smtp", "S: 220\nC: NOOP\nS: 250\n").expect("parses");
    let mut stepping = greeted();
    stepping.load_script(scenario);
    type_line(&mut stepping, "EHLO x");
    assert!(stepping.pending.is_some());
    let hint = stepping.enter_hint();
    assert!(!hint.contains("send step"), "{hint}");
    assert!(stepping.on_key(key(KeyCode::Enter)).is_empty());

    let mut states = vec![greeted(), after_ehlo(), after_tls(), stepping];
    let mut password = after_tls();
    type_line(&mut password, "AUTH PLAIN");
    type_line(&mut password, "student.with.a.long.name@lab.example.com");
    states.push(password);
    let mut guard = after_ehlo();
    type_line(&mut guard, "AUTH PLAIN");
    states.push(guard);
    let mut message = after_tls();
    type_line(&mut message, "DATA");
    let mut in_message = message.status.clone();
    in_message.phase = Phase::Message;
    message.on_engine(EngineMsg::Status(Box::new(in_message)));
    message.on_engine(done("354 go\r\n", Some("DATA")));
    states.push(message);
    for app in &states {
        let hint = format!("Enter: {}", app.enter_hint());
        for (width, height) in SIZES {
            let rows = rows_of(&screen_at(app, width, height));
            let title = &rows[height as usize - 3];
            let notes = rows[..height as usize - 3]
                .iter()
                .map(|row| row.trim())
                .collect::<Vec<_>>()
                .join(" ");
            assert!(
                title.contains(&hint) || notes.contains(&hint),
                "{hint:?} is cut at {width}x{height}:\n{}",
                rows.join("\n")
            );
            // At 80 columns the title holds every hint that is not long by what it quotes.
            if width == 80 && !hint.contains("long.name") {
                assert!(
                    title.contains(&hint),
                    "{hint:?} is not in the title at 80 columns"
                );
            }
        }
    }
}

/// The explain pane wraps its paragraphs, scrolls with what is left named in its border,
/// and says which reply it explains; during DATA the transcript keeps half the screen.
#[test]
fn the_explain_pane_scrolls_and_names_what_it_explains() {
    let mut app = after_ehlo();
    app.explain = true;
    let text = screen(&app);
    assert!(text.contains("explain: 250 to EHLO at 1.021"), "{text}");
    assert!(text.contains("more: Alt-PgDn"), "{text}");
    assert!(
        !text.contains("8BITMIME: "),
        "the last item is below: {text}"
    );
    let mut text = screen(&app);
    for _ in 0..4 {
        app.on_key(alt(KeyCode::PageDown));
        text = screen(&app);
        if text.contains("8BITMIME: the body may hold") {
            break;
        }
    }
    assert!(text.contains("8BITMIME: the body may hold"), "{text}");
    assert!(text.contains("Alt-PgUp"), "{text}");
    // The reply explained is marked in the transcript: its direction is reversed.
    let buffer = buffer(&app);
    let marked = style_of(&buffer, "S: 250-mail.example.com");
    assert!(
        marked
            .add_modifier
            .contains(ratatui::style::Modifier::REVERSED),
        "{marked:?}"
    );
    // A new reply starts at the top of its own explanation.
    app.on_engine(received(5000, Security::Cleartext, "250 2.0.0 Ok\r\n"));
    let text = screen(&app);
    assert!(text.contains("explain: 250 at 5.000"), "{text}");
    assert!(text.contains("250: Requested action okay"), "{text}");

    // During DATA the transcript keeps at least half the screen.
    let mut app = after_tls();
    app.explain = true;
    type_line(&mut app, "DATA");
    let mut in_message = app.status.clone();
    in_message.phase = Phase::Message;
    app.on_engine(EngineMsg::Status(Box::new(in_message)));
    app.on_engine(done("354 go\r\n", Some("DATA")));
    for i in 0..12 {
        type_line(&mut app, &format!("line {i}"));
    }
    for (width, height) in SIZES {
        assert!(
            ui::transcript_height(&app, ratatui::layout::Rect::new(0, 0, width, height)) + 2
                >= usize::from(height).div_ceil(2),
            "at {width}x{height}:\n{}",
            screen_at(&app, width, height)
        );
    }
}

/// What the user types after `override:` is on screen at 80 and 60 columns, even when the
/// dialog says the most (STARTTLS stripped, a flag for the other case) and a hint follows.
#[test]
fn the_override_field_is_always_visible() {
    for (width, height) in SIZES {
        let mut app = after_ehlo();
        app.policy.allow_unverified_auth = true;
        // The server's EHLO had no STARTTLS: the dialog adds its warning.
        let mut stripped = app.status.clone();
        stripped.extensions = vec!["AUTH".to_owned(), "PIPELINING".to_owned()];
        app.on_engine(EngineMsg::Status(Box::new(stripped)));
        type_line(&mut app, "AUTH PLAIN");
        type_line(&mut app, "clear");
        type_text(&mut app, "cleartex");
        let text = screen_at(&app, width, height);
        assert!(
            text.contains("override: cleartex"),
            "{width}x{height}:\n{text}"
        );
        assert!(text.contains("type exactly 'cleartext'"), "{text}");
        assert!(text.contains("Enter  try STARTTLS anyway"), "{text}");
        let rows = rows_of(&text);
        let (x, y) = cursor_at(&app, width, height);
        let row = &rows[y as usize];
        let before: String = row.chars().take(x as usize).collect();
        assert!(
            before.trim_end_matches(' ').ends_with("override: cleartex"),
            "cursor at {x},{y}: {row:?}"
        );
    }
}

/// The lab's log in the demo: F4 shows it beside the transcript, each line marked plain or
/// tls, the verdicts loud.
#[test]
fn the_demo_shows_the_labs_log() {
    let mut app = after_ehlo();
    app.on_key(key(KeyCode::F(4)));
    assert!(
        app.flash
            .as_deref()
            .is_some_and(|f| f.contains("smtptui demo")),
        "{:?}",
        app.flash
    );
    app.lab_log = Some(smtptui::tui::app::LabLog::default());
    for line in [
        "10:00:01 submission#1 plain C: EHLO me",
        "10:00:01 submission#1 plain S: 250-lab.test",
        "10:00:02 submission#1 plain C: STARTTLS",
        "10:00:02 submission#1 tls   C: EHLO me",
        "10:00:03 submission#1 VERDICT ok: used TLS before AUTH",
    ] {
        app.on_lab_log(line.to_owned());
    }
    app.on_key(key(KeyCode::F(4)));
    for (width, height) in SIZES {
        let text = screen_at(&app, width, height);
        assert!(text.contains("the lab's log"), "{text}");
        assert!(text.contains("tls   C: EHLO me"), "{text}");
    }
    let buffer = buffer(&app);
    assert_eq!(style_of(&buffer, "tls   C: EHLO").fg, Some(Color::Green));
    assert_eq!(
        style_of(&buffer, "plain C: STARTTLS").fg,
        Some(Color::Yellow)
    );
}

// Snapshots of each dialog and pane at both sizes.

fn guard_unverified() -> App {
    let mut app = after_tls();
    let problem = smtptui::tls::CertificateProblem {
        kind: "unknown issuer",
        detail: "unknown issuer: the certificate chain does not lead to a trusted root".to_owned(),
    };
    let mut status = app.status.clone();
    status.protection = Protection::UnverifiedTls(problem.clone());
    app.on_engine(EngineMsg::Status(Box::new(status)));
    type_line(&mut app, "AUTH PLAIN");
    assert!(matches!(app.mode, Mode::Guard(_)), "{:?}", app.mode);
    app
}

fn guard_stripped() -> App {
    let mut app = after_ehlo();
    let mut stripped = app.status.clone();
    stripped.extensions = vec!["AUTH".to_owned(), "PIPELINING".to_owned()];
    app.on_engine(EngineMsg::Status(Box::new(stripped)));
    type_line(&mut app, "AUTH LOGIN");
    type_text(&mut app, "cleart");
    app
}

fn explaining_a_failure() -> App {
    let mut app = after_tls();
    app.explain = true;
    type_line(&mut app, "RCPT TO:<someone@example.org>");
    app.on_engine(sent(3000, Security::Tls, "RCPT TO:<someone@example.org>"));
    app.on_engine(received(
        3020,
        Security::Tls,
        "554 5.7.1 <someone@example.org>: Relay access denied\r\n",
    ));
    app.on_engine(done(
        "554 5.7.1 <someone@example.org>: Relay access denied\r\n",
        Some("RCPT"),
    ));
    app
}

fn certificate_view() -> App {
    let mut app = after_tls();
    app.on_key(key(KeyCode::F(3)));
    app
}

fn help_view() -> App {
    let mut app = greeted();
    app.on_key(key(KeyCode::F(1)));
    app
}

#[test]
fn snapshots_at_80x24_and_60x20() {
    let cases: Vec<(&str, App)> = vec![
        ("guard_cleartext_stripped", guard_stripped()),
        ("guard_unverified", guard_unverified()),
        ("explain_relay_denied", explaining_a_failure()),
        ("certificate", certificate_view()),
        ("help", help_view()),
        ("pasted_group", pasted_group()),
        (
            "pasted_group_unadvertised",
            pasted_group_without_pipelining(),
        ),
    ];
    for (name, app) in &cases {
        for (width, height) in SIZES {
            insta::assert_snapshot!(
                format!("{name}_{width}x{height}"),
                screen_at(app, width, height)
            );
        }
    }
}

// Pasted groups and messages from files.

const GROUP: &str =
    "MAIL FROM:<a@example.com>\nRCPT TO:<b@example.com>\nRCPT TO:<c@example.com>\nDATA\n";

fn pasted_group() -> App {
    use crossterm::event::Event as TermEvent;
    let mut app = after_ehlo();
    assert!(
        app.on_terminal(TermEvent::Paste(GROUP.to_owned()))
            .is_empty()
    );
    assert!(matches!(app.mode, Mode::Group(_)), "{:?}", app.mode);
    app
}

fn pasted_group_without_pipelining() -> App {
    use crossterm::event::Event as TermEvent;
    let mut app = after_ehlo();
    let mut status = app.status.clone();
    status.extensions.retain(|e| e != "PIPELINING");
    app.on_engine(EngineMsg::Status(Box::new(status)));
    app.on_terminal(TermEvent::Paste(GROUP.to_owned()));
    app
}

/// Several pasted commands go as one pipelined group only when the user says so (`p`), and
/// `f` forces one only where the server did not advertise PIPELINING; the replies, which come
/// after the whole group, are paired with their commands in the transcript.
#[test]
fn a_pasted_group_goes_only_when_asked_and_its_replies_pair_with_their_commands() {
    let mut app = pasted_group();
    let text = screen(&app);
    assert!(text.contains("4 command lines were pasted"), "{text}");
    assert!(
        text.contains("p      send all 4 as one pipelined group"),
        "{text}"
    );
    // `f` means nothing where PIPELINING was advertised; other keys neither.
    assert!(app.on_key(key(KeyCode::Char('f'))).is_empty());
    assert!(app.on_key(key(KeyCode::Char('x'))).is_empty());
    assert!(matches!(app.mode, Mode::Group(_)));
    let actions = app.on_key(key(KeyCode::Char('p')));
    assert!(
        matches!(&actions[..], [Action::Pipeline { lines, force: false }] if lines.len() == 4 && lines[3] == "DATA"),
        "{actions:?}"
    );
    assert_eq!(app.mode, Mode::COMMAND);
    assert!(app.pending.is_some());
    for (ms, line) in GROUP.lines().enumerate() {
        app.on_engine(sent(3000 + ms as u64, Security::Cleartext, line));
    }
    for (ms, wire) in [
        "250 2.1.0 Ok\r\n",
        "250 2.1.5 Ok\r\n",
        "554 5.7.1 <c@example.com>: Relay access denied\r\n",
        "354 End data with <CR><LF>.<CR><LF>\r\n",
    ]
    .iter()
    .enumerate()
    {
        app.on_engine(received(3020 + ms as u64, Security::Cleartext, wire));
    }
    let answered: Vec<Option<&str>> = app
        .view
        .events
        .iter()
        .zip(&app.view.meta)
        .filter(|(event, _)| matches!(event.kind, EventKind::Received { .. }))
        .skip(2)
        .map(|(_, meta)| meta.command.as_deref())
        .collect();
    assert_eq!(
        answered,
        [Some("MAIL"), Some("RCPT"), Some("RCPT"), Some("DATA")],
        "each reply with its own command, not all with the last one sent"
    );
    // Without PIPELINING the dialog says so, and `f` forces the group.
    let mut app = pasted_group_without_pipelining();
    let text = screen(&app);
    assert!(text.contains("PIPELINING was not advertised"), "{text}");
    let actions = app.on_key(key(KeyCode::Char('f')));
    assert!(
        matches!(&actions[..], [Action::Pipeline { force: true, .. }]),
        "{actions:?}"
    );
    // Esc drops the paste; nothing is sent.
    let mut app = pasted_group();
    assert!(app.on_key(key(KeyCode::Esc)).is_empty());
    assert!(app.input.is_empty() && app.mode == Mode::COMMAND);
    // A local command among the lines: never a group, the first line can still be kept.
    let mut app = after_ehlo();
    app.on_terminal(crossterm::event::Event::Paste("NOOP\n:quit\n".to_owned()));
    assert!(app.on_key(key(KeyCode::Char('p'))).is_empty());
    assert!(matches!(app.mode, Mode::Group(_)));
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.input.text(), "NOOP");
    // While a reply is pending there is no dialog: the first line is kept, as always.
    let mut app = after_ehlo();
    type_line(&mut app, "NOOP");
    app.on_terminal(crossterm::event::Event::Paste(GROUP.to_owned()));
    assert_eq!(app.mode, Mode::COMMAND);
    assert_eq!(app.input.text(), "MAIL FROM:<a@example.com>");
}

fn in_message_editor() -> App {
    let mut app = after_tls();
    type_line(&mut app, "DATA");
    let mut in_message = app.status.clone();
    in_message.phase = Phase::Message;
    app.on_engine(EngineMsg::Status(Box::new(in_message)));
    app.on_engine(done("354 go ahead\r\n", Some("DATA")));
    assert!(matches!(app.mode, Mode::Message(_)), "{:?}", app.mode);
    app
}

/// `:send-file FILE` at msg> (before any line is written) asks the engine for the file; with
/// lines written it is refused and kept; on the command line it says where it works.
#[test]
fn send_file_is_a_command_of_the_empty_message_editor() {
    let mut app = in_message_editor();
    let actions = type_line(&mut app, ":send-file ~/mail.eml");
    match &actions[..] {
        [Action::SendFile { path, shown }] => {
            assert_eq!(shown, "~/mail.eml");
            assert!(!path.starts_with("~"), "{path:?}");
        }
        other => panic!("{other:?}"),
    }
    let mut app = in_message_editor();
    type_line(&mut app, "Subject: typed");
    assert!(type_line(&mut app, ":send-file mail.eml").is_empty());
    assert_eq!(app.input.text(), ":send-file mail.eml");
    assert!(
        app.flash
            .as_deref()
            .is_some_and(|f| f.contains("empty editor"))
    );
    assert_eq!(app.editor(), ["Subject: typed"]);
    let mut app = after_ehlo();
    assert!(type_line(&mut app, ":send-file mail.eml").is_empty());
    assert!(
        app.flash
            .as_deref()
            .is_some_and(|f| f.contains("after the 354")),
        "{:?}",
        app.flash
    );
}

/// A recording writes a pasted group command by command with its replies (and says it was
/// pipelined), and a message sent from a file as its `FILE` line.
#[test]
fn a_recording_keeps_groups_in_step_and_files_as_file_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("rec.smtp");
    let mut app = after_ehlo();
    type_line(&mut app, &format!(":record {}", file.display()));
    app.on_terminal(crossterm::event::Event::Paste(GROUP.to_owned()));
    app.on_key(key(KeyCode::Char('p')));
    for line in GROUP.lines() {
        app.on_engine(sent(3000, Security::Cleartext, line));
    }
    for wire in ["250 ok\r\n", "250 ok\r\n", "554 no\r\n", "354 go\r\n"] {
        app.on_engine(received(3010, Security::Cleartext, wire));
    }
    let mut in_message = app.status.clone();
    in_message.phase = Phase::Message;
    app.on_engine(EngineMsg::Status(Box::new(in_message)));
    app.on_engine(done("354 go\r\n", Some("DATA")));
    type_line(
        &mut app,
        &format!(":send-file {}", dir.path().join("m.eml").display()),
    );
    app.on_engine(event(
        3100,
        EventKind::Note("message from m.eml: 10 bytes, 2 lines".to_owned()),
    ));
    app.on_engine(event(
        3101,
        EventKind::Sent {
            security: Security::Cleartext,
            text: ".".to_owned(),
            kind: SentKind::MessageLine,
        },
    ));
    app.on_engine(received(3120, Security::Cleartext, "250 queued\r\n"));
    app.on_engine(done("250 queued\r\n", Some(".")));
    let text = std::fs::read_to_string(&file).expect("recorded");
    let expected = format!(
        "# the next 4 commands went as one pipelined group (RFC 2920)\n\
         C: MAIL FROM:<a@example.com>\nS: 250\nC: RCPT TO:<b@example.com>\nS: 250\n\
         C: RCPT TO:<c@example.com>\nS: 554\nC: DATA\nS: 354\nFILE {}\nC: .\nS: 250\n",
        dir.path().join("m.eml").display()
    );
    assert!(text.ends_with(&expected), "{text}");
}

/// The real engine against the lab: a pasted group pipelined to the MX, then the message from
/// a file written on Unix (LF line endings, a line starting with a dot, UTF-8), streamed: the
/// lab receives it byte for byte with CRLF and the dot unstuffed, and the transcript shows a
/// summary of the file, not its lines. A file with a bare CR is refused before a byte of it
/// leaves; under LMTP each recipient's reply is paired with the final dot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_the_lab_a_pasted_group_and_a_file_go_as_they_should() {
    use crossterm::event::Event as TermEvent;
    use smtptui::lab::{Lab, LabConfig, Profile};
    use tokio::sync::mpsc;

    let lab_log: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let mut lab_config = LabConfig::ephemeral(vec![Profile::Mx, Profile::Lmtp]);
    let sink = lab_log.clone();
    lab_config.log =
        std::sync::Arc::new(move |line| sink.lock().expect("log").push(line.to_owned()));
    let lab = Lab::start(lab_config).await.expect("lab starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let message = dir.path().join("message.eml");
    std::fs::write(
        &message,
        "Subject: from a file\nFrom: a@lab.test\n\n.a line with a dot\nGr\u{fc}\u{df}e\n",
    )
    .expect("message file");
    let bare_cr = dir.path().join("bare-cr.eml");
    std::fs::write(
        &bare_cr,
        "Subject: x\r\n\r\nhidden\rRCPT TO:<evil@example.com>\r\n",
    )
    .expect("file");

    async fn settle(
        app: &mut App,
        engine_rx: &mut mpsc::UnboundedReceiver<EngineMsg>,
        action_tx: &mpsc::UnboundedSender<Action>,
    ) {
        while app.pending.is_some() {
            let message = tokio::time::timeout(Duration::from_secs(20), engine_rx.recv())
                .await
                .expect("the engine answers")
                .expect("the engine runs");
            for action in app.on_engine(message) {
                action_tx.send(action).expect("engine alive");
            }
        }
    }
    for profile in [Profile::Mx, Profile::Lmtp] {
        let config = lab.client_config(profile).expect("listener");
        let mut app = App::new("lab".to_owned(), History::in_memory());
        let (action_tx, action_rx) = mpsc::unbounded_channel();
        let (engine_tx, mut engine_rx) = mpsc::unbounded_channel();
        let engine = tokio::spawn(smtptui::tui::engine::run(config, action_rx, engine_tx));
        let send = |actions: Vec<Action>| {
            for action in actions {
                action_tx.send(action).expect("engine alive");
            }
        };
        settle(&mut app, &mut engine_rx, &action_tx).await;
        let hello = if profile == Profile::Lmtp {
            "LHLO c"
        } else {
            "EHLO c"
        };
        send(type_line(&mut app, hello));
        settle(&mut app, &mut engine_rx, &action_tx).await;
        send(app.on_terminal(TermEvent::Paste(
            "MAIL FROM:<a@lab.test>\nRCPT TO:<b@lab.test>\nRCPT TO:<data-452@lab.test>\nRCPT TO:<x@example.com>\nDATA\n"
                .to_owned(),
        )));
        send(app.on_key(key(KeyCode::Char('p'))));
        settle(&mut app, &mut engine_rx, &action_tx).await;
        let replies: Vec<(Option<String>, u16)> = app
            .view
            .events
            .iter()
            .zip(&app.view.meta)
            .filter_map(|(event, meta)| match &event.kind {
                EventKind::Received { reply, .. } => Some((
                    meta.command.as_deref().map(str::to_owned),
                    reply.code.value(),
                )),
                _ => None,
            })
            .skip(2)
            .collect();
        let command = |verb: &str| Some(verb.to_owned());
        assert_eq!(
            replies,
            [
                (command("MAIL"), 250),
                (command("RCPT"), 250),
                (command("RCPT"), 250),
                (command("RCPT"), 554),
                (command("DATA"), 354),
            ],
            "{profile}"
        );
        assert!(
            matches!(app.mode, Mode::Message(_)),
            "{profile}: {:?}",
            app.mode
        );
        // A bare CR: refused before anything is sent, and the message stays open.
        send(type_line(
            &mut app,
            &format!(":send-file {}", bare_cr.display()),
        ));
        settle(&mut app, &mut engine_rx, &action_tx).await;
        assert!(matches!(app.mode, Mode::Message(_)), "{profile}");
        let transcript = smtptui::transcript::render_plain(&app.view.events);
        assert!(
            transcript.contains("carriage return (CR) that no line feed"),
            "{transcript}"
        );
        assert!(!transcript.contains("evil"), "{transcript}");
        // The file: one summary, no line of it in the transcript.
        send(type_line(
            &mut app,
            &format!(":send-file {}", message.display()),
        ));
        settle(&mut app, &mut engine_rx, &action_tx).await;
        let transcript = smtptui::transcript::render_plain(&app.view.events);
        assert!(
            transcript.contains(&format!(
                "message from {}: 71 bytes, 5 lines (every line ending sent as CRLF; 5 of them LF alone in the file); first lines: \"Subject: from a file\", \"From: a@lab.test\", \"\"",
                message.display()
            )),
            "{transcript}"
        );
        assert!(!transcript.contains("a line with a dot"), "{transcript}");
        assert_eq!(app.mode, Mode::COMMAND, "{profile}");
        let ends: Vec<(Option<String>, u16)> = app
            .view
            .events
            .iter()
            .zip(&app.view.meta)
            .filter_map(|(event, meta)| match &event.kind {
                EventKind::Received { reply, .. } => Some((
                    meta.command.as_deref().map(str::to_owned),
                    reply.code.value(),
                )),
                _ => None,
            })
            .skip(7)
            .collect();
        if profile == Profile::Lmtp {
            assert_eq!(
                ends,
                [(command("."), 250), (command("."), 452)],
                "{transcript}"
            );
        } else {
            assert_eq!(ends, [(command("."), 452)], "{transcript}");
        }
        engine.abort();
    }
    let messages = lab.mail().messages();
    assert_eq!(
        messages.len(),
        1,
        "the LMTP copy for b (the MX refused at the end)"
    );
    assert_eq!(
        messages[0].data,
        "Subject: from a file\r\nFrom: a@lab.test\r\n\r\n.a line with a dot\r\nGr\u{fc}\u{df}e\r\n"
            .as_bytes()
    );
    assert_eq!(messages[0].to, ["b@lab.test"]);
    let log = lab_log.lock().expect("log").join("\n");
    assert!(
        log.contains("pipelined group: 5 commands in one write"),
        "{log}"
    );
    assert!(
        !log.contains("evil"),
        "nothing of the refused file reached the lab:\n{log}"
    );
    lab.shutdown().await;
}

/// The explain pane knows the whole line a reply answers: the parameters sent are explained,
/// and what the reply means for their extension comes first.
#[test]
fn the_explain_pane_explains_the_parameters_of_the_line_answered() {
    let mut app = after_ehlo();
    app.explain = true;
    let line = "MAIL FROM:<a@example.com> SIZE=99999999 BODY=8BITMIME";
    type_line(&mut app, line);
    app.on_engine(sent(3000, Security::Cleartext, line));
    app.on_engine(received(
        3010,
        Security::Cleartext,
        "552 5.3.4 Message size exceeds fixed limit\r\n",
    ));
    app.on_engine(done(
        "552 5.3.4 Message size exceeds fixed limit\r\n",
        Some("MAIL"),
    ));
    let lines = ui::explanation(&app);
    assert!(lines[0].starts_with("552:"), "{lines:?}");
    assert!(
        lines[1].contains("send RSET before trying again"),
        "{lines:?}"
    );
    let all = lines.join("\n");
    assert!(all.contains("Parameters sent:"), "{all}");
    assert!(
        all.contains("SIZE=99999999: the message will be about"),
        "{all}"
    );
    assert!(all.contains("BODY=8BITMIME: the body may hold"), "{all}");
}

/// After TLS verified against the system store: the status bar says so, the certificate view
/// shows each certificate's SHA-256 fingerprint as `openssl x509 -fingerprint -sha256` does,
/// and `:cert FILE` saves the peer chain as PEM that openssl reads back to the same
/// fingerprint, never over an existing file without `!`.
#[test]
fn the_certificate_view_shows_fingerprints_and_cert_file_saves_the_chain_as_pem() {
    let generated =
        rcgen::generate_simple_self_signed(vec!["mail.example.com".to_owned()]).expect("cert");
    let leaf = CertSummary::parse(generated.cert.der(), SystemTime::now());
    let mut app = after_tls();
    let mut info = tls_info(Verification::Verified);
    info.chain = vec![leaf];
    info.anchors = "the system trust store".to_owned();
    let mut status = Status::disconnected("mail.example.com:587".to_owned());
    status.connected = true;
    status.security = Security::Tls;
    status.protection = Protection::VerifiedTls;
    status.tls = Some(info);
    app.on_engine(EngineMsg::Status(Box::new(status)));
    assert!(screen(&app).contains("(system store)"), "{}", screen(&app));

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("chain.pem");
    type_line(&mut app, &format!(":cert {}", path.display()));
    assert!(
        app.flash
            .as_deref()
            .is_some_and(|f| f.contains("written") && f.contains("PEM")),
        "{:?}",
        app.flash
    );
    let pem = std::fs::read_to_string(&path).expect("written");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"), "{pem}");
    // The fingerprint as openssl writes it, computed here from the certificate's bytes ...
    let digest = ring::digest::digest(&ring::digest::SHA256, generated.cert.der());
    let expected: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    let fingerprint = expected.join(":");
    // ... and read back by openssl from the PEM saved, where openssl is installed (CI has it).
    match std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&path)
        .output()
    {
        Ok(openssl) => {
            assert!(openssl.status.success(), "openssl read the PEM back");
            let printed = String::from_utf8_lossy(&openssl.stdout);
            assert_eq!(
                printed.trim().rsplit('=').next(),
                Some(fingerprint.as_str())
            );
        }
        Err(error) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("openssl is not installed: {error}")
        }
        Err(_) => eprintln!("skipping the openssl half: openssl is not installed"),
    }
    let fingerprint = fingerprint.as_str();

    type_line(&mut app, ":cert");
    assert_eq!(app.overlay, Some(Overlay::Certificate));
    let view = screen_at(&app, 120, 40);
    // Shown in two halves of 16 bytes, each whole on its line.
    assert!(
        view.contains(&fingerprint[..47]) && view.contains(&fingerprint[48..]),
        "{view}"
    );
    assert!(view.contains("against the system trust store"), "{view}");
    app.on_key(key(KeyCode::Esc));

    std::fs::write(&path, "kept").expect("write");
    type_line(&mut app, &format!(":cert {}", path.display()));
    assert!(
        app.flash.as_deref().is_some_and(|f| f.contains(":cert! ")),
        "{:?}",
        app.flash
    );
    assert_eq!(std::fs::read_to_string(&path).expect("read"), "kept");
}
