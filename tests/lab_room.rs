//! `smtptui lab` run for a whole room, as the binary: every profile from a port base or placed
//! with `--listen PROFILE=ADDR`, one CA kept in a state directory (and refused to a second
//! lab), the start table's command lines for smtptui, swaks and openssl working as printed,
//! and `--quiet` keeping the alarms. Everything listens on 127.0.0.1; every wait is bounded.

#![allow(clippy::panic)] // panicking is how a test fails

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use smtptui::lab::Profile;
use smtptui::lab::accounts::{DEFAULT_PASSWORD, DEFAULT_USER};

/// A `smtptui lab` process and the lines it printed.
struct LabProcess {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl LabProcess {
    /// Starts the lab and waits for its table; `None` (with the output) when it exits first.
    fn start(args: &[&str]) -> Result<LabProcess, (Option<i32>, String)> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_smtptui"))
            .arg("lab")
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn lab");
        let (tx, lines) = channel::<String>();
        for mut stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut line = Vec::new();
                let mut byte = [0u8; 1];
                while let Ok(1) = stream.read(&mut byte) {
                    if byte[0] == b'\n' {
                        let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
                        line.clear();
                    } else {
                        line.push(byte[0]);
                    }
                }
            });
        }
        let mut lab = LabProcess {
            child,
            lines,
            seen: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if lab.seen.iter().any(|l| l.starts_with("Session log")) {
                return Ok(lab);
            }
            if let Ok(Some(status)) = lab.child.try_wait() {
                while let Ok(line) = lab.lines.recv_timeout(Duration::from_millis(200)) {
                    lab.seen.push(line);
                }
                return Err((status.code(), lab.seen.join("\n")));
            }
            if let Ok(line) = lab.lines.recv_timeout(Duration::from_millis(100)) {
                lab.seen.push(line);
            }
        }
        panic!("no table in time:\n{}", lab.seen.join("\n"));
    }

    fn table(&self) -> String {
        self.seen.join("\n")
    }

    /// The address in a profile's row of the table.
    fn addr(&self, profile: Profile) -> String {
        self.seen
            .iter()
            .find_map(|line| {
                let mut words = line.split_whitespace();
                (words.next() == Some(profile.name()))
                    .then(|| words.next().map(str::to_owned))
                    .flatten()
            })
            .unwrap_or_else(|| panic!("no {profile} row in\n{}", self.table()))
    }

    /// The table's command line starting with `program` in `profile`'s block.
    fn command_line(&self, profile: Profile, program: &str) -> Vec<String> {
        let start = self
            .seen
            .iter()
            .position(|line| line.starts_with(&format!("{} ", profile.name())))
            .expect("row");
        self.seen[start + 1..]
            .iter()
            .take(3)
            .find(|line| line.trim_start().starts_with(program))
            .map(|line| line.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_else(|| panic!("no {program} line for {profile} in\n{}", self.table()))
    }

    /// Waits (bounded) for a log line containing `needle`.
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in\n{}",
                self.table()
            );
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(line);
            }
        }
    }

    /// Stops the lab as Ctrl-C does; returns its exit status.
    fn stop(mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for LabProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a program to its end with no input and a hard deadline; its exit code and output.
fn run(program: &str, args: &[String], input: &[u8]) -> (Option<i32>, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    std::thread::spawn(move || {
        use std::io::Write as _;
        let _ = stdin.write_all(&input);
        // Keep the input open a moment: openssl s_client ends when its stdin does.
        std::thread::sleep(Duration::from_secs(2));
    });
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let code = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status.code();
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        code,
        format!(
            "{}{}",
            out.join().unwrap_or_default(),
            err.join().unwrap_or_default()
        ),
    )
}

fn have(program: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "{program} is required on CI"
        );
        eprintln!("note: {program} not installed; skipping its part");
    }
    found
}

/// A port base under which every profile's port is free on 127.0.0.1 right now.
fn free_port_base() -> u16 {
    let mut seed = u64::from(std::process::id()) ^ 0x9e37_79b9;
    for _ in 0..200 {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let base = 40_000 + (seed >> 33) as u16 % 20_000;
        let free = Profile::ALL.iter().all(|profile| {
            std::net::TcpListener::bind(("127.0.0.1", base + profile.port_offset())).is_ok()
        });
        if free {
            return base;
        }
    }
    panic!("no free port base found");
}

#[test]
fn a_room_on_a_port_base_with_one_ca_and_command_lines_that_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    // Another process may take a port between the probe and the bind: try again then.
    let mut attempt = 0;
    let (lab, base) = loop {
        attempt += 1;
        let base = free_port_base();
        match LabProcess::start(&[
            "--port-base",
            &base.to_string(),
            "--state-dir",
            &state.display().to_string(),
        ]) {
            Ok(lab) => break (lab, base),
            Err((code, out)) if attempt < 3 && out.contains("the port is busy") => {
                assert_eq!(code, Some(3), "{out}");
            }
            Err((code, out)) => panic!("the lab did not start ({code:?}):\n{out}"),
        }
    };
    for profile in Profile::ALL {
        assert_eq!(
            lab.addr(profile),
            format!("127.0.0.1:{}", base + profile.port_offset()),
            "{}",
            lab.table()
        );
    }
    let ca = state.join("ca.pem").display().to_string();
    assert_eq!(
        lab.table().matches("Lab CA").count(),
        1,
        "one CA for every profile:\n{}",
        lab.table()
    );
    // The table's own command lines, as printed, reach each listener with TLS verified.
    let smtptui = lab.command_line(Profile::Implicit, "smtptui");
    assert!(smtptui.contains(&"implicit".to_owned()), "{smtptui:?}");
    assert!(smtptui.contains(&ca), "{smtptui:?}");
    if have("openssl") {
        for profile in [
            Profile::Submission,
            Profile::Implicit,
            Profile::Mx,
            Profile::Lmtp,
        ] {
            let line = lab.command_line(profile, "openssl");
            // Not QUIT: a line starting with Q makes s_client itself quit.
            let (code, out) = run(&line[0], &line[1..], b"NOOP\n");
            assert!(
                out.contains("Verify return code: 0 (ok)") && out.contains("250 2.0.0 Ok"),
                "{profile}: {line:?} exited {code:?}:\n{out}"
            );
        }
    }
    if have("swaks") {
        for profile in [Profile::Submission, Profile::Implicit] {
            let mut line = lab.command_line(profile, "swaks");
            // Everything but the password and the addresses, which swaks would ask for.
            line.extend(
                [
                    "--auth-password",
                    DEFAULT_PASSWORD,
                    "--from",
                    DEFAULT_USER,
                    "--to",
                    "friend@example.com",
                    "--timeout",
                    "20",
                ]
                .map(str::to_owned),
            );
            let (code, out) = run(&line[0], &line[1..], b"");
            assert_eq!(code, Some(0), "{profile}: {line:?}:\n{out}");
            assert!(out.contains("250 2.0.0 Ok: queued as"), "{out}");
        }
        // The lmtp profile's line speaks LMTP (LHLO), inside verified TLS.
        let mut line = lab.command_line(Profile::Lmtp, "swaks");
        line.extend(
            [
                "--from",
                "sender@lab.test",
                "--to",
                "bob@lab.test",
                "--timeout",
                "20",
            ]
            .map(str::to_owned),
        );
        let (code, out) = run(&line[0], &line[1..], b"");
        assert_eq!(code, Some(0), "lmtp: {line:?}:\n{out}");
        assert!(out.contains(" ~> LHLO "), "{out}");
        assert!(
            out.contains("250 2.0.0 <bob@lab.test> Ok: queued as"),
            "{out}"
        );
    }
    let mut lab = lab;
    let verdict = lab.wait_for("#1 VERDICT");
    assert!(verdict.contains("VERDICT ok: used TLS"), "{verdict}");
    assert_eq!(lab.stop(), Some(0));
}

#[test]
fn listen_places_profiles_and_says_what_is_wrong() {
    let lab = LabProcess::start(&[
        "--listen",
        "submission=127.0.0.1:0",
        "--listen",
        "slow=127.0.0.1:0",
        "--quiet",
    ])
    .unwrap_or_else(|(code, out)| panic!("{code:?}\n{out}"));
    let rows: Vec<&String> = lab
        .seen
        .iter()
        .filter(|line| {
            Profile::ALL
                .iter()
                .any(|p| line.starts_with(&format!("{} ", p.name())))
        })
        .collect();
    assert_eq!(rows.len(), 2, "{}", lab.table());
    assert!(!lab.addr(Profile::Slow).ends_with(":0"));
    assert_eq!(lab.stop(), Some(0));
    for (args, says) in [
        (
            &["--listen", "127.0.0.1:0"][..],
            "say which profile listens there",
        ),
        (&["--listen", "nope=127.0.0.1:0"], "unknown lab profile"),
        (&["--listen", "mx=localhost"], "give IP:PORT"),
        (
            &["--listen", "mx=127.0.0.1:0", "--listen", "mx=127.0.0.1:0"],
            "already placed",
        ),
        (
            &["--port-base", "65000"],
            "the grade profile would sit above port 65535; use a base of at most 64930",
        ),
        (&["--name", "two words"], "--name"),
    ] {
        match LabProcess::start(args) {
            Ok(lab) => panic!("{args:?} started:\n{}", lab.table()),
            Err((code, out)) => {
                assert_eq!(code, Some(2), "{args:?}: {out}");
                assert!(out.contains(says), "{args:?}: {out}");
            }
        }
    }
}

#[test]
fn a_state_dir_keeps_its_ca_across_restarts_and_is_refused_to_another_lab() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let state_arg = state.display().to_string();
    let args = [
        "--listen",
        "mx=127.0.0.1:0",
        "--quiet",
        "--state-dir",
        &state_arg,
    ];
    let first = LabProcess::start(&args).unwrap_or_else(|(code, out)| panic!("{code:?}\n{out}"));
    let ca = std::fs::read_to_string(state.join("ca.pem")).expect("ca.pem");
    assert!(
        first.table().contains("the same after a restart"),
        "{}",
        first.table()
    );
    // A second lab on the same directory is refused while the first runs.
    match LabProcess::start(&args) {
        Ok(lab) => panic!("a second lab took the directory:\n{}", lab.table()),
        Err((code, out)) => {
            assert_eq!(code, Some(3), "{out}");
            assert!(out.contains("in use by another lab"), "{out}");
        }
    }
    assert_eq!(first.stop(), Some(0));
    assert!(!state.join("lab.pid").exists(), "the lock is released");
    // A restart serves with the same CA.
    let again = LabProcess::start(&args).unwrap_or_else(|(code, out)| panic!("{code:?}\n{out}"));
    assert_eq!(
        std::fs::read_to_string(state.join("ca.pem")).expect("ca"),
        ca
    );
    if have("openssl") {
        let line = again.command_line(Profile::Mx, "openssl");
        let (_, out) = run(&line[0], &line[1..], b"NOOP\n");
        assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    }
    assert_eq!(again.stop(), Some(0));
    // A CA without its key is not taken over, and not overwritten.
    std::fs::remove_file(state.join("ca.key")).expect("remove key");
    match LabProcess::start(&args) {
        Ok(lab) => panic!("started without the CA key:\n{}", lab.table()),
        Err((code, out)) => {
            assert_eq!(code, Some(3), "{out}");
            assert!(out.contains("belongs to another lab"), "{out}");
        }
    }
    assert_eq!(
        std::fs::read_to_string(state.join("ca.pem")).expect("ca"),
        ca
    );
    assert!(Path::new(&state).join("ca.pem").exists());
}

#[test]
fn quiet_keeps_the_alarms_and_drops_the_rest() {
    if !have("swaks") {
        return;
    }
    let mut lab = LabProcess::start(&[
        "--listen",
        "strip=127.0.0.1:0",
        "--listen",
        "mx=127.0.0.1:0",
        "--quiet",
    ])
    .unwrap_or_else(|(code, out)| panic!("{code:?}\n{out}"));
    let port = |addr: String| {
        addr.rsplit_once(':')
            .map(|(_, p)| p.to_owned())
            .unwrap_or_default()
    };
    // A clean session first: no line at all under --quiet.
    let mx = port(lab.addr(Profile::Mx));
    let (code, out) = run(
        "swaks",
        &[
            "--server",
            "127.0.0.1",
            "--port",
            &mx,
            "--quit-after",
            "EHLO",
            "--timeout",
            "20",
        ]
        .map(str::to_owned),
        b"",
    );
    assert_eq!(code, Some(0), "{out}");
    // A failed cleartext AUTH on strip: the alarm stays.
    let strip = port(lab.addr(Profile::Strip));
    let (_, out) = run(
        "swaks",
        &[
            "--server",
            "127.0.0.1",
            "--port",
            &strip,
            "--auth",
            "PLAIN",
            "--auth-user",
            DEFAULT_USER,
            "--auth-password",
            "not the password",
            "--from",
            DEFAULT_USER,
            "--to",
            "bob@lab.test",
            "--timeout",
            "20",
        ]
        .map(str::to_owned),
        b"",
    );
    assert!(out.contains("535 5.7.8"), "{out}");
    let verdict = lab.wait_for("strip#2 VERDICT");
    assert!(
        verdict.ends_with(
            "strip#2 VERDICT !! ATTACK WORKED: sent credentials in cleartext (AUTH PLAIN) to the strip profile; they were not valid"
        ),
        "{verdict}"
    );
    let table = lab.table();
    assert!(!table.contains("mx#1"), "{table}");
    assert!(!table.contains(" C: "), "{table}");
    assert_eq!(lab.stop(), Some(0));
}
