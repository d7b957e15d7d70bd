//! `smtptui lab --class` as an instructor runs it, through the binary: the class sheet (mode
//! 600, its passwords never printed, read back at a restart, never replacing another file),
//! students authenticating with their own passwords while the practice account is gone,
//! their progress asked with `smtptui lab-status` and `XEXERCISES`, an attack that worked
//! named in the class feed with its lesson, the exports at stop, and the errors that name a
//! file and a line. Everything listens on 127.0.0.1; every wait is bounded.

#![allow(clippy::panic)] // panicking is how a test fails

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use smtptui::lab::accounts::{DEFAULT_PASSWORD, DEFAULT_USER};

const BIN: &str = env!("CARGO_BIN_EXE_smtptui");

/// A `smtptui lab` process and every line it printed.
struct LabProcess {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl LabProcess {
    fn start(dir: &Path, args: &[&str]) -> LabProcess {
        let mut child = Command::new(BIN)
            .arg("lab")
            .args(args)
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn lab");
        let (tx, lines) = channel::<String>();
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut lab = LabProcess {
            child,
            lines,
            seen: Vec::new(),
        };
        lab.wait_for("Session log");
        lab
    }

    /// Waits (bounded) for a line containing `needle`; returns it.
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            if Instant::now() > deadline {
                panic!("no {needle:?} in:\n{}", self.seen.join("\n"));
            }
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(line);
            }
        }
    }

    /// The address the table gives for a profile.
    fn addr(&self, profile: &str) -> String {
        self.seen
            .iter()
            .find_map(|line| {
                let mut words = line.split_whitespace();
                (words.next() == Some(profile))
                    .then(|| words.next().map(str::to_owned))
                    .flatten()
            })
            .unwrap_or_else(|| panic!("no {profile} in the table:\n{}", self.seen.join("\n")))
    }

    fn ca(&self) -> String {
        self.seen
            .iter()
            .find_map(|line| {
                line.split_once("--ca-file ")
                    .and_then(|(_, rest)| rest.split_whitespace().next())
                    .map(str::to_owned)
            })
            .expect("a CA in the table")
    }

    /// Sends SIGTERM and collects everything until the process ends; returns all output.
    fn stop(mut self) -> (Option<i32>, String) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "the lab did not stop");
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(300)) {
            self.seen.push(line);
        }
        (status.code(), self.seen.join("\n"))
    }
}

impl Drop for LabProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `(ID, password)` of every line of a class sheet.
fn sheet_passwords(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .expect("sheet")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            (words[0].to_owned(), words[2].to_owned())
        })
        .collect()
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

fn run(args: &[&str], password: Option<&str>) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).env("NO_COLOR", "1").stdin(Stdio::null());
    match password {
        Some(password) => command.env("SMTPTUI_PASSWORD", password),
        None => command.env_remove("SMTPTUI_PASSWORD"),
    };
    command.output().expect("run smtptui")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn submission(lab: &LabProcess, user: &str, password: &str) -> Output {
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/submission-starttls.smtp"
    );
    run(
        &[
            "run",
            scenario,
            &lab.addr("submission"),
            "--ca-file",
            &lab.ca(),
            "--servername",
            "localhost",
            "--user",
            user,
        ],
        Some(password),
    )
}

#[test]
fn a_class_gets_private_passwords_that_never_show_and_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let state_arg = state.display().to_string();
    let args = [
        "--class",
        "3",
        "--profile",
        "submission",
        "--profile",
        "mx",
        "--listen",
        "submission=127.0.0.1:0",
        "--listen",
        "mx=127.0.0.1:0",
        "--state-dir",
        &state_arg,
    ];
    let mut lab = LabProcess::start(dir.path(), &args);
    let sheet = state.join("class-sheet.txt");
    assert_eq!(mode(&sheet), 0o600);
    let passwords = sheet_passwords(&sheet);
    assert_eq!(
        passwords
            .iter()
            .map(|(id, _)| id.as_str())
            .collect::<Vec<_>>(),
        ["student01", "student02", "student03"]
    );
    let table = lab.wait_for("Class sheet written");
    assert!(table.contains(&sheet.display().to_string()), "{table}");
    lab.wait_for("Class: 3 students, one account each");
    // The practice account is gone: one account per student.
    let refused = submission(&lab, DEFAULT_USER, DEFAULT_PASSWORD);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(text(&refused).contains("535"), "{}", text(&refused));
    let (id, password) = &passwords[1];
    let account = format!("{id}@lab.test");
    let sent = submission(&lab, &account, password);
    assert_eq!(sent.status.code(), Some(0), "{}", text(&sent));
    lab.wait_for("CLASS .. student02: completed \"submission\" (1 of 9 done)");
    let status = run(&["lab-status", &lab.addr("mx"), "student02"], None);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    let listed = text(&status);
    assert!(
        listed.starts_with("Exercises for student02: 1 of 9 done"),
        "{listed}"
    );
    assert!(
        listed.contains("[done] Send a message through submission with STARTTLS and AUTH"),
        "{listed}"
    );
    let (code, output) = lab.stop();
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains("The class at the end:"), "{output}");
    let grid_row = output
        .lines()
        .find(|l| l.starts_with("student02 "))
        .unwrap_or_else(|| panic!("{output}"));
    assert!(grid_row.contains("1/9"), "{grid_row}");
    for (_, password) in &passwords {
        assert!(
            !output.contains(password.as_str()),
            "a password was printed:\n{output}"
        );
    }
    assert!(!output.contains(DEFAULT_PASSWORD), "{output}");
    // A restart reads the sheet back: the same file, the same passwords.
    let before = std::fs::read(&sheet).expect("sheet");
    let lab = LabProcess::start(dir.path(), &args);
    assert_eq!(std::fs::read(&sheet).expect("sheet"), before);
    assert!(
        lab.seen.iter().any(|l| l.contains("Class sheet read back")),
        "{}",
        lab.seen.join("\n")
    );
    let again = submission(&lab, &account, password);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    drop(lab);
    // A bigger class adds lines and keeps the ones students hold.
    let mut bigger = args.to_vec();
    bigger[1] = "4";
    let mut lab = LabProcess::start(dir.path(), &bigger);
    lab.wait_for("Added to it, with new passwords: student04.");
    let after = std::fs::read(&sheet).expect("sheet");
    assert!(after.starts_with(&before), "the old lines changed");
    assert_eq!(sheet_passwords(&sheet).len(), 4);
    assert_eq!(mode(&sheet), 0o600);
}

#[test]
fn the_sheet_never_replaces_another_file_and_exports_are_never_overwritten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "my notes\n").expect("write");
    let listen = ["--profile", "mx", "--listen", "127.0.0.1:0"];
    let lab = |extra: &[&str]| {
        let mut args = vec!["lab"];
        args.extend_from_slice(&listen);
        args.extend_from_slice(extra);
        let mut command = Command::new(BIN);
        command
            .args(&args)
            .current_dir(dir.path())
            .stdin(Stdio::null());
        command.output().expect("run")
    };
    let out = lab(&["--class", "2", "--sheet", "notes.txt"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("is not a smtptui class sheet"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read_to_string(&notes).expect("read"), "my notes\n");
    std::fs::write(dir.path().join("old.csv"), "keep\n").expect("write");
    for (extra, needle) in [
        (
            &["--class", "2", "--export", "old.csv"][..],
            "the file exists and is never overwritten",
        ),
        (
            &["--class", "2", "--export", "results.txt"][..],
            "name the file .csv or .json",
        ),
        (&["--sheet", "s.txt"][..], "give the class too"),
        (&["--class", "0"][..], "1 to 500"),
    ] {
        let out = lab(extra);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", text(&out));
        assert!(text(&out).contains(needle), "{extra:?}: {}", text(&out));
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("old.csv")).expect("read"),
        "keep\n"
    );
    assert!(!dir.path().join("class-sheet.txt").exists());
}

#[test]
fn roster_and_exercise_files_are_checked_with_the_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("roster.txt"),
        "# class\nalice Alice\nbob_1\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("ex.txt"),
        "exercise a\ntitle: T\ngoal: reply 55\n",
    )
    .expect("write");
    for (args, needle) in [
        (
            &["--roster", "roster.txt"][..],
            "roster.txt:3: a student ID is",
        ),
        (
            &["--exercises", "ex.txt"][..],
            "ex.txt:3: a reply code is three digits",
        ),
        (
            &["--roster", "missing.txt"][..],
            "missing.txt: cannot read the roster",
        ),
    ] {
        let out = Command::new(BIN)
            .arg("lab")
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(needle), "{args:?}: {}", text(&out));
    }
}

/// A raw client that falls for the strip profile: EHLO with its student ID, AUTH PLAIN in
/// cleartext because AUTH is offered, one message.
fn fall_for_strip(addr: &str, id: &str, password: &str) {
    use base64::Engine as _;
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut expect = |code: &str| loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).expect("read") > 0, "closed");
        if line.starts_with(&format!("{code} ")) {
            break;
        }
        assert!(line.starts_with(&format!("{code}-")), "{line}");
    };
    expect("220");
    let plain =
        base64::engine::general_purpose::STANDARD.encode(format!("\0{id}@lab.test\0{password}"));
    for (line, code) in [
        (format!("EHLO {id}"), "250"),
        (format!("AUTH PLAIN {plain}"), "235"),
        (format!("MAIL FROM:<{id}@lab.test>"), "250"),
        ("RCPT TO:<bob@lab.test>".to_owned(), "250"),
        ("DATA".to_owned(), "354"),
        ("Subject: x\r\n\r\nhi\r\n.".to_owned(), "250"),
        ("QUIT".to_owned(), "221"),
    ] {
        stream
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("write");
        expect(code);
    }
}

#[test]
fn an_attack_that_worked_is_in_the_class_feed_with_its_lesson_and_the_students_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut lab = LabProcess::start(
        dir.path(),
        &[
            "--class",
            "2",
            "--profile",
            "strip",
            "--profile",
            "mx",
            "--listen",
            "strip=127.0.0.1:0",
            "--listen",
            "mx=127.0.0.1:0",
            "--quiet",
            "--export",
            "results.csv",
            "--export",
            "results.json",
        ],
    );
    let passwords = sheet_passwords(&dir.path().join("class-sheet.txt"));
    let (id, password) = &passwords[0];
    fall_for_strip(&lab.addr("strip"), id, password);
    let feed = lab.wait_for("CLASS !! student01: the strip attack worked");
    assert!(
        feed.contains("sent valid credentials for student01@lab.test in cleartext (AUTH PLAIN)"),
        "{feed}"
    );
    assert!(
        feed.contains("LESSON: STARTTLS missing from EHLO may be an attacker who removed it"),
        "{feed}"
    );
    lab.wait_for("strip#1 LESSON: STARTTLS missing from EHLO");
    // What the student reads, by asking the lab in any session.
    let mut stream = std::net::TcpStream::connect(lab.addr("mx")).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    stream
        .write_all(b"EHLO student01\r\nXEXERCISES\r\nQUIT\r\n")
        .expect("write");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(
        answer.contains("250-Exercises for student01: 1 of 9 done\r\n"),
        "{answer}"
    );
    assert!(answer.contains("[FELL] See the strip attack"), "{answer}");
    assert!(
        answer.contains("your last session there: !! sent valid credentials"),
        "{answer}"
    );
    assert!(!answer.contains(password.as_str()), "{answer}");
    let (code, output) = lab.stop();
    assert_eq!(code, Some(0), "{output}");
    let csv = std::fs::read_to_string(dir.path().join("results.csv")).expect("csv");
    assert!(
        csv.lines()
            .any(|l| l.starts_with("student01,,") && l.contains("done; fell 1")),
        "{csv}"
    );
    let json = std::fs::read_to_string(dir.path().join("results.json")).expect("json");
    let value: serde_json::Value = serde_json::from_str(&json).expect("json parses");
    assert_eq!(value["students"][0]["exercises"]["strip"]["fell"], 1);
    assert_eq!(value["totals"]["attacks_worked"], 1);
    for (_, password) in &passwords {
        assert!(!csv.contains(password.as_str()) && !json.contains(password.as_str()));
        assert!(!output.contains(password.as_str()), "{output}");
    }
}

#[test]
fn lab_status_says_why_it_cannot_list() {
    // Nothing listening.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let out = run(
        &["lab-status", &format!("127.0.0.1:{port}"), "student01"],
        None,
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("cannot ask the lab"), "{}", text(&out));
    // A server that is no lab.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        stream.write_all(b"220 other ESMTP\r\n").expect("write");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            let reply: &[u8] = if line.starts_with("EHLO") {
                b"250 other\r\n"
            } else if line.starts_with("QUIT") {
                b"221 bye\r\n"
            } else {
                b"500 5.5.2 Error: command not recognized\r\n"
            };
            let _ = stream.write_all(reply);
            line.clear();
        }
    });
    let out = run(&["lab-status", &addr.to_string(), "student01"], None);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("it is not a smtptui lab"),
        "{}",
        text(&out)
    );
    let _ = server.join();
    let out = run(&["lab-status", "127.0.0.1:1", "bob;rm"], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("is not a student ID"), "{}", text(&out));
}

#[test]
fn exercises_in_the_ui_asks_for_the_typed_id_or_the_lab_account() {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use smtptui::tui::app::App;
    use smtptui::tui::engine::Action;
    use smtptui::tui::history::History;
    let mut app = App::new("127.0.0.1:2587".to_owned(), History::in_memory());
    let type_line = |app: &mut App, line: &str| {
        for c in line.chars() {
            app.on_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
        }
        app.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE))
    };
    let actions = type_line(&mut app, ":exercises student07");
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Exercises { student: Some(s) } if s == "student07")),
        "{actions:?}"
    );
    app.preset_user = Some("student09@lab.test".to_owned());
    let actions = type_line(&mut app, ":exercises");
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Exercises { student: Some(s) } if s == "student09")),
        "{actions:?}"
    );
}

#[test]
fn the_text_dashboard_prints_the_class_events_not_every_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Asked for the full screen without a terminal: the text mode, said so.
    let mut child = Command::new(BIN)
        .args([
            "lab",
            "--class",
            "2",
            "--dashboard",
            "--profile",
            "strip",
            "--listen",
            "127.0.0.1:0",
        ])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let (tx, lines) = channel::<String>();
    for stream in [
        Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().expect("stderr")),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let mut lab = LabProcess {
        child,
        lines,
        seen: Vec::new(),
    };
    lab.wait_for("--dashboard needs a terminal; printing its events as text instead");
    lab.wait_for("Class events (attacks that worked");
    let passwords = sheet_passwords(&dir.path().join("class-sheet.txt"));
    fall_for_strip(&lab.addr("strip"), &passwords[1].0, &passwords[1].1);
    lab.wait_for("CLASS !! student02: the strip attack worked");
    lab.wait_for("CLASS .. student02: completed \"strip\"");
    let (code, output) = lab.stop();
    assert_eq!(code, Some(0), "{output}");
    assert!(
        !output.contains(" plain C: "),
        "session lines in text mode:\n{output}"
    );
    assert!(
        output.contains("strip#1 VERDICT !! ATTACK WORKED"),
        "{output}"
    );
    assert!(output.contains("strip#1 LESSON: "), "{output}");
    assert!(output.contains("The class at the end:"), "{output}");
}
