//! The instructor's dashboard drawn on ratatui's TestBackend from a class fed with events as
//! the listener feeds it (no sockets): the grid at 80x24 (the smallest supported size) and at
//! a projector's 120x40, the feed with an attack's lesson, the log, connection and help
//! screens, the colours that carry meaning, and the keys.

#![allow(clippy::panic)] // panicking is how a test fails

use std::time::{Duration, SystemTime};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::{Color, Modifier};
use smtptui::lab::activity::{Activity, verb_index};
use smtptui::lab::dashboard::{self, DashAction, DashState, Screen};
use smtptui::lab::verdict::{self, Conduct, CredentialCheck, InjectionResponse};
use smtptui::lab::{Classroom, Exercises, Profile, Roster};

/// 10:00:00 UTC on the first day of the epoch, plus `seconds`.
fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(36_000 + seconds)
}

fn ports() -> Vec<(Profile, u16)> {
    Profile::ALL
        .iter()
        .map(|p| (*p, 2000 + p.port_offset()))
        .collect()
}

/// A class of 30 in the middle of a workshop.
fn workshop() -> Classroom {
    let mut class = Classroom::new(
        Roster::numbered(30).expect("30"),
        Exercises::builtin().expect("exercises"),
        ports(),
    );
    let mut number = 0;
    let mut session = |class: &mut Classroom,
                       profile: Profile,
                       activity: &Activity,
                       conduct: &Conduct,
                       time: u64| {
        number += 1;
        class.session_started(number, profile);
        class.session_update(number, profile, activity, at(time));
        let verdict = verdict::judge(profile, conduct);
        class.session_ended(number, profile, activity, &verdict, at(time + 1));
    };
    // student01 did submission right, and provoked 552 and 530.
    let mut good = Activity::default();
    good.name("student01");
    good.verb("EHLO");
    good.verb("STARTTLS");
    good.tls_started(true);
    good.authenticated("student01@lab.test");
    good.delivered(&["bob@lab.test".to_owned()], true, true);
    session(
        &mut class,
        Profile::Submission,
        &good,
        &Conduct::default(),
        10,
    );
    let mut limits = Activity::default();
    limits.name("student01");
    limits.verb("MAIL");
    limits.reply(
        verb_index("MAIL"),
        552,
        "5.3.4 Message size exceeds fixed limit",
    );
    session(&mut class, Profile::Mx, &limits, &Conduct::default(), 20);
    // student02 sent their password to the strip profile.
    let mut fell = Activity::default();
    fell.name("laptop");
    fell.verb("EHLO");
    fell.verb("AUTH");
    fell.credentials_for("student02@lab.test");
    let mut conduct = Conduct::default();
    conduct.credentials(
        "LOGIN",
        CredentialCheck::Valid("student02@lab.test".into()),
        false,
    );
    conduct.messages_in_cleartext = 1;
    session(&mut class, Profile::Strip, &fell, &conduct, 30);
    // student03 was on submission without TLS yet: started.
    let mut started = Activity::default();
    started.name("student03");
    started.verb("EHLO");
    session(
        &mut class,
        Profile::Submission,
        &started,
        &Conduct::default(),
        40,
    );
    // student05 resisted the refused STARTTLS.
    let mut careful = Activity::default();
    careful.name("student05");
    careful.verb("EHLO");
    careful.verb("STARTTLS");
    let refused = Conduct {
        starttls_refused: true,
        ..Conduct::default()
    };
    session(&mut class, Profile::RefuseTls, &careful, &refused, 50);
    // An unidentified client believed the injected reply.
    let mut stranger = Activity::default();
    stranger.name("mystery-host");
    stranger.verb("EHLO");
    stranger.verb("STARTTLS");
    let injected = Conduct {
        injected: true,
        injection: Some(InjectionResponse::ActedOnInjectedReply("AUTH".into())),
        ..Conduct::default()
    };
    session(&mut class, Profile::Inject, &stranger, &injected, 60);
    // student04 is connected to the MX right now.
    let mut live = Activity::default();
    live.name("student04");
    class.session_started(99, Profile::Mx);
    class.session_update(99, Profile::Mx, &live, at(70));
    class
}

fn state() -> DashState {
    DashState::new(
        "smtptui lab: practice SMTP servers on loopback\nPROFILE ADDRESS ...".to_owned(),
        true,
    )
}

fn draw(width: u16, height: u16, class: &Classroom, state: &DashState) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    let log = vec![
        "10:00:10 submission#1 plain S: 220 lab.test ESMTP".to_owned(),
        "10:00:31 strip#3 VERDICT !! ATTACK WORKED: sent valid credentials".to_owned(),
    ];
    terminal
        .draw(|frame| dashboard::render(frame, class, state, &log, at(75)))
        .expect("draws");
    terminal
}

fn screen(width: u16, height: u16, class: &Classroom, state: &DashState) -> String {
    draw(width, height, class, state).backend().to_string()
}

#[test]
fn snapshot_class_80x24() {
    insta::assert_snapshot!("class_80x24", screen(80, 24, &workshop(), &state()));
}

#[test]
fn snapshot_class_120x40() {
    insta::assert_snapshot!("class_120x40", screen(120, 40, &workshop(), &state()));
}

#[test]
fn snapshot_screens() {
    let class = workshop();
    let mut state = state();
    for (key, name) in [('l', "log"), ('i', "info"), ('?', "help")] {
        state.on_key(KeyEvent::new(KeyCode::Char(key), KeyModifiers::NONE));
        insta::assert_snapshot!(name, screen(80, 24, &class, &state));
        state.on_key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
    }
}

#[test]
fn an_attack_that_worked_is_red_with_its_lesson_and_a_done_exercise_green() {
    let class = workshop();
    let terminal = draw(120, 40, &class, &state());
    let buffer = terminal.backend().buffer();
    let text = terminal.backend().to_string();
    assert!(
        text.contains("student02: the strip attack worked"),
        "{text}"
    );
    assert!(
        text.contains("LESSON: STARTTLS missing from EHLO"),
        "{text}"
    );
    assert!(
        text.contains("a client that said EHLO mystery-host: the inject attack worked"),
        "{text}"
    );
    // The style of `needle` in the first screen row holding `row` too.
    let find = |row: &str, needle: &str| {
        let width = usize::from(buffer.area.width);
        let symbols: Vec<&str> = buffer.content.iter().map(|c| c.symbol()).collect();
        for y in 0..usize::from(buffer.area.height) {
            let line: String = symbols[y * width..(y + 1) * width].concat();
            if let (Some(start), true) = (line.find(needle), line.contains(row)) {
                return buffer.content[y * width + line[..start].chars().count()].style();
            }
        }
        panic!("{needle:?} not on screen:\n{text}");
    };
    let fell = find("student02", "!!");
    assert_eq!(fell.fg, Some(Color::Red));
    assert!(
        fell.add_modifier
            .contains(Modifier::BOLD | Modifier::REVERSED)
    );
    assert_eq!(find("student01", "✓").fg, Some(Color::Green));
    let alarm = find("student02: the strip", "student02: the strip");
    assert_eq!(alarm.fg, Some(Color::Red));
    // Without colour the alarm still stands out.
    let mut plain = state();
    plain.colour = false;
    let terminal = draw(120, 40, &class, &plain);
    let buffer = terminal.backend().buffer();
    let width = usize::from(buffer.area.width);
    let symbols: Vec<&str> = buffer.content.iter().map(|c| c.symbol()).collect();
    let cell = (0..usize::from(buffer.area.height))
        .find_map(|row| {
            let line: String = symbols[row * width..(row + 1) * width].concat();
            line.contains("student02")
                .then(|| line.find("!!"))
                .flatten()
                .map(|at| buffer.content[row * width + line[..at].chars().count()].style())
        })
        .expect("the fell cell");
    assert!(matches!(cell.fg, None | Some(Color::Reset)), "{cell:?}");
    assert!(cell.add_modifier.contains(Modifier::REVERSED));
}

#[test]
fn keys_switch_screens_export_and_stop_only_when_confirmed() {
    let key = |c: char| KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
    let mut state = state();
    assert_eq!(state.on_key(key('e')), Some(DashAction::Export));
    assert_eq!(state.on_key(key('l')), None);
    assert_eq!(state.screen, Screen::Log);
    assert_eq!(state.on_key(key('l')), None);
    assert_eq!(state.screen, Screen::Class);
    // q asks; anything but y keeps the lab running.
    assert_eq!(state.on_key(key('q')), None);
    assert!(state.confirm_quit);
    assert!(screen(80, 24, &workshop(), &state).contains("Stop the lab for everyone?"));
    assert_eq!(state.on_key(key('n')), None);
    assert!(!state.confirm_quit);
    assert_eq!(state.on_key(key('q')), None);
    assert_eq!(state.on_key(key('y')), Some(DashAction::Quit));
    assert_eq!(
        state.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
        Some(DashAction::Quit)
    );
    // The grid scrolls when it does not fit, as far as its last row.
    for _ in 0..5 {
        state.on_key(KeyEvent::new(KeyCode::PageDown, KeyModifiers::NONE));
    }
    let scrolled = screen(80, 24, &workshop(), &state);
    assert!(scrolled.contains("student30"), "{scrolled}");
    assert!(!scrolled.contains("student01 "), "{scrolled}");
}

#[test]
fn the_text_grid_and_the_exports_agree_with_the_screen() {
    let class = workshop();
    let grid = dashboard::grid_text(&class);
    let row = |id: &str| {
        grid.lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id} in\n{grid}"))
            .to_owned()
    };
    assert!(row("student01").contains("2/9"), "{grid}");
    assert!(row("student02").contains("!!"), "{grid}");
    let dir = tempfile::tempdir().expect("tempdir");
    let written = dashboard::export(&class, dir.path(), at(80)).expect("exported");
    assert_eq!(written.len(), 2);
    let csv = std::fs::read_to_string(&written[0]).expect("csv");
    assert!(csv.starts_with("student,name,sessions,alarms,warnings,done,submission,"));
    assert!(
        csv.contains("\nstudent02,,1,1,0,1,todo,todo,todo,todo,todo,todo,done; fell 1,todo,todo\n"),
        "{csv}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&written[1]).expect("json")).expect("parses");
    assert_eq!(json["students"][0]["done"], 2);
    assert_eq!(json["totals"]["attacks_worked"], 2);
    // A second export in the same second never replaces the first.
    let again = dashboard::export(&class, dir.path(), at(80)).expect("exported");
    assert_ne!(again[0], written[0]);
    assert_eq!(std::fs::read_to_string(&written[0]).expect("csv"), csv);
}

#[test]
fn long_lines_of_the_start_table_wrap_and_a_long_text_says_there_is_more() {
    let mut info = String::from("PROFILE     ADDRESS\n");
    info.push_str(&format!(
        "            smtptui 127.0.0.1:2587 --tls starttls --ca-file {}/ca.pem --servername localhost --user ID@lab.test\n",
        "/tmp/smtptui-lab-12345-abcdef"
    ));
    for n in 0..40 {
        info.push_str(&format!("line {n}\n"));
    }
    let mut state = DashState::new(info, false);
    state.on_key(KeyEvent::new(KeyCode::Char('i'), KeyModifiers::NONE));
    let text = screen(80, 24, &workshop(), &state);
    assert!(text.contains("PROFILE     ADDRESS"), "{text}");
    assert!(text.contains("--servername localhost"), "{text}");
    assert!(text.contains("--user ID@lab.test"), "{text}");
    assert!(text.contains("(more below: PgDn)"), "{text}");
    for _ in 0..10 {
        state.on_key(KeyEvent::new(KeyCode::PageDown, KeyModifiers::NONE));
    }
    let text = screen(80, 24, &workshop(), &state);
    assert!(
        text.contains("line 39") && !text.contains("more below"),
        "{text}"
    );
}

#[test]
fn the_log_screen_wraps_long_lines_instead_of_cutting_them() {
    let class = workshop();
    let mut state = state();
    state.on_key(KeyEvent::new(KeyCode::Char('l'), KeyModifiers::NONE));
    let long = format!(
        "10:00:31 strip#3 VERDICT !! ATTACK WORKED: {} END-OF-LINE",
        "x ".repeat(60)
    );
    let log = vec!["first".to_owned(), long];
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("test terminal");
    terminal
        .draw(|frame| dashboard::render(frame, &class, &state, &log, at(75)))
        .expect("draws");
    let text = terminal.backend().to_string();
    assert!(
        text.contains("END-OF-LINE") && text.contains("first"),
        "{text}"
    );
    assert!(
        text.contains(" 1 session · ") || text.contains(" 6 sessions · "),
        "{text}"
    );
}
