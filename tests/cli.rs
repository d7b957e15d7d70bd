//! The command line as a user meets it: scenario files and how `smtptui run` replays them,
//! targets and subcommand names, messages in the user's words, and the process edge (closed
//! pipes, Ctrl-C, the lab's start table).
//!
//! Every test runs the real binary; where a server is involved it is the scripted fake server
//! of `tests/support` (or the binary's own lab), and the bytes it received are checked.

#![allow(clippy::panic)] // test assertions

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use support::{Leaf, PASSWORD, Pki, Run, Server, Smtp, StartTls, USER, find_ci};

/// A challenge and the answer to it, from RFC 2195 (CRAM-MD5), used here as a written-out
/// exchange of a mechanism the tool does not run itself (DIGEST-MD5).
const CRAM_CHALLENGE: &[u8] = b"334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\r\n";
const CRAM_ANSWER: &str = "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw";

/// A server that takes the written-out answer.
fn cram_server(smtp: Smtp) -> Smtp {
    smtp.on("AUTH DIGEST-MD5", CRAM_CHALLENGE).on(
        &CRAM_ANSWER[..12],
        b"235 2.7.0 Authentication successful\r\n",
    )
}

/// An implicit-TLS server presenting the good certificate.
fn implicit(pki: &Pki) -> Smtp {
    Smtp {
        tls: Some(pki.server_config(Leaf::Good)),
        implicit_tls: true,
        ..Smtp::default()
    }
}

fn implicit_args(pki: &Pki) -> Vec<String> {
    [
        "--tls",
        "implicit",
        "--ca-file",
        &pki.ca_arg(),
        "--servername",
        "localhost",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// The lines the server received, without the TLS flag.
fn lines(rec: &support::Recorded) -> Vec<String> {
    rec.lines.iter().map(|(_, line)| line.clone()).collect()
}

/// What a direct run of the binary gave.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    cmdline: String,
}

impl Ran {
    fn dump(&self) -> String {
        format!(
            "$ {}\nexit={:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline, self.code, self.stdout, self.stderr
        )
    }

    #[track_caller]
    fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "{}", self.dump());
        self
    }

    #[track_caller]
    fn assert_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle) || self.stderr.contains(needle),
            "no {needle:?} in the output\n{}",
            self.dump()
        );
        self
    }

    #[track_caller]
    fn assert_not_contains(&self, needle: &str) -> &Self {
        assert!(
            !self.stdout.contains(needle) && !self.stderr.contains(needle),
            "{needle:?} in the output\n{}",
            self.dump()
        );
        self
    }
}

/// Runs the binary with `args` (stdin empty, not a terminal) and a hard deadline.
fn smtptui(args: &[&str]) -> Ran {
    let mut child = Command::new(support::bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("NO_COLOR", "1")
        .env_remove("SMTPTUI_PASSWORD")
        .spawn()
        .expect("spawn smtptui");
    let status = wait_bounded(&mut child, Duration::from_secs(20));
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut stdout);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    Ran {
        code: status.and_then(|s| s.code()),
        stdout,
        stderr,
        cmdline: format!("smtptui {}", args.join(" ")),
    }
}

/// Waits for the child at most `limit`; kills it after that (`None`).
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The write end of a pipe whose read end is already closed: every write to it fails with
/// EPIPE, as for `smtptui ... | head` after head has left.
fn closed_pipe() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    writer
}

// ---------------------------------------------------------------------------------------------
// AUTH in scenarios
// ---------------------------------------------------------------------------------------------

const CRAM_SCENARIO: &str = "\
S: 220
C: EHLO client.example
S: 250
C: AUTH DIGEST-MD5
S: 334
C: dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw
S: 235
C: QUIT
S: 221
";

/// A mechanism the tool does not run itself is scripted as C: lines; inside verified TLS
/// they are sent as SASL answers, hidden in the transcript.
#[test]
fn scripted_cram_md5_runs_inside_tls_with_the_answer_hidden() {
    let pki = Pki::new();
    let server = Server::smtp(cram_server(implicit(&pki)));
    let out = Run::new(CRAM_SCENARIO, &server.target())
        .args(implicit_args(&pki))
        .run();
    let rec = server.finish();
    out.assert_code(0).assert_not_contains(&CRAM_ANSWER[..12]);
    assert!(
        rec.lines.contains(&(true, CRAM_ANSWER.to_owned())),
        "{}",
        rec.dump()
    );
}

/// The same answers in cleartext are refused by the guard with the AUTH line: nothing of
/// the exchange is sent, the session ends with QUIT.
#[test]
fn scripted_cram_md5_in_cleartext_is_refused_by_the_guard() {
    let server = Server::smtp(cram_server(Smtp::default()));
    let out = Run::new(CRAM_SCENARIO, &server.target()).run();
    let rec = server.finish();
    out.assert_code(4).assert_not_contains(&CRAM_ANSWER[..12]);
    assert!(out.names_line(4), "{}", out.dump());
    assert!(find_ci(&rec.plain, b"AUTH").is_none(), "{}", rec.dump());
    assert!(find_ci(&rec.plain, CRAM_ANSWER.as_bytes()).is_none());
    assert_eq!(lines(&rec).last().map(String::as_str), Some("QUIT"));
}

/// With the explicit override the answer goes out in cleartext, still hidden on screen.
#[test]
fn scripted_cram_md5_with_override_is_sent_and_hidden() {
    let server = Server::smtp(cram_server(Smtp::default()));
    let out = Run::new(CRAM_SCENARIO, &server.target())
        .arg("--allow-cleartext-auth")
        .run();
    let rec = server.finish();
    out.assert_code(0)
        .assert_not_contains(&CRAM_ANSWER[..12])
        .assert_contains("hidden");
    assert!(
        lines(&rec).contains(&CRAM_ANSWER.to_owned()),
        "{}",
        rec.dump()
    );
}

/// A scripted answer whose challenge never came is not sent as a command.
#[test]
fn scripted_answer_without_a_challenge_is_not_sent() {
    let server = Server::smtp(Smtp::default().on(
        "AUTH DIGEST-MD5",
        b"504 5.5.4 Unrecognized authentication type\r\n",
    ));
    let scenario = "S: 220\nC: EHLO x\nS: 250\nC: AUTH DIGEST-MD5\nC: dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\nS: 235\n";
    let out = Run::new(scenario, &server.target())
        .arg("--allow-cleartext-auth")
        .run();
    let rec = server.finish();
    out.assert_code(1)
        .assert_not_contains(&CRAM_ANSWER[..12])
        .assert_contains("504");
    assert!(out.names_line(5), "{}", out.dump());
    assert!(
        find_ci(&rec.plain, CRAM_ANSWER.as_bytes()).is_none(),
        "{}",
        rec.dump()
    );
    assert_eq!(lines(&rec).last().map(String::as_str), Some("QUIT"));
}

/// A bare `AUTH` (to see the server's 501) is an ordinary command, not a missing mechanism.
#[test]
fn bare_auth_without_a_mechanism_is_sent_as_written() {
    let pki = Pki::new();
    let server = Server::smtp(implicit(&pki).on("AUTH", b"501 5.5.4 Syntax: AUTH mechanism\r\n"));
    let scenario = "S: 220\nC: EHLO x\nS: 250\nC: AUTH\nS: 501\nC: QUIT\nS: 221\n";
    let out = Run::new(scenario, &server.target())
        .args(implicit_args(&pki))
        .run();
    let rec = server.finish();
    out.assert_code(0).assert_not_contains("not a mechanism");
    assert!(lines(&rec).contains(&"AUTH".to_owned()), "{}", rec.dump());
}

/// Every AUTH step is looked at for the credentials it needs, not only the first.
#[test]
fn a_later_auth_plain_still_needs_credentials() {
    let pki = Pki::new();
    let scenario = "S: 220\nC: EHLO client.example\nS: 250\nC: AUTH DIGEST-MD5\nS: 504\n\
                    C: AUTH PLAIN\nS: 235\nC: QUIT\nS: 221\n";
    let out = Run::new(scenario, "127.0.0.1:9").run();
    out.assert_code(2).assert_contains("--user");
    assert!(out.names_line(6), "{}", out.dump());

    let server = Server::smtp(implicit(&pki).on(
        "AUTH DIGEST-MD5",
        b"504 5.5.4 Unrecognized authentication type\r\n",
    ));
    let out = Run::new(scenario, &server.target())
        .args(implicit_args(&pki))
        .creds()
        .run();
    let rec = server.finish();
    out.assert_code(0).assert_no_credentials();
    assert_eq!(rec.auth, vec![(USER.to_owned(), PASSWORD.to_owned(), true)]);
}

// ---------------------------------------------------------------------------------------------
// Refusals and what the run says about them
// ---------------------------------------------------------------------------------------------

/// DATA refused with no `S:` for it: the message says what happened, not that a line with
/// no expectation failed one; the session still ends with QUIT.
#[test]
fn refused_data_without_an_expectation_says_what_happened() {
    let server =
        Server::smtp(Smtp::default().on("DATA", b"554 5.5.1 Error: no valid recipients\r\n"));
    let scenario = "S: 220\nC: MAIL FROM:<a@b.example>\nS: 250\nC: DATA\nC: Subject: x\nC:\nC: hi\nC: .\nS: 250\n";
    let out = Run::new(scenario, &server.target()).run();
    let rec = server.finish();
    out.assert_code(1)
        .assert_contains("DATA")
        .assert_contains("554")
        .assert_not_contains("expectation on line");
    assert!(out.names_line(4), "{}", out.dump());
    assert!(rec.messages.is_empty());
    assert_eq!(lines(&rec).last().map(String::as_str), Some("QUIT"));
}

/// A STARTTLS refusal expected with another code is an unmet expectation (exit 1).
#[test]
fn starttls_refused_with_another_code_than_expected_is_exit_1() {
    let server = Server::smtp(Smtp {
        starttls: StartTls::Reply(b"502 5.5.1 Error: command not implemented\r\n".to_vec()),
        ..Smtp::default()
    });
    let scenario = "S: 220\nC: EHLO x\nS: 250\nC: STARTTLS\nS: 454\nC: QUIT\nS: 221\n";
    let out = Run::new(scenario, &server.target()).run();
    server.finish();
    out.assert_code(1).assert_contains("502");
    assert!(out.names_line(5), "{}", out.dump());
}

/// `S: 2xx` after STARTTLS met by a 250 is no TLS: the run must not go on in cleartext as if
/// TLS had started.
#[test]
fn starttls_answered_250_is_not_tls() {
    let server = Server::smtp(Smtp {
        starttls: StartTls::Reply(b"250 2.0.0 fine\r\n".to_vec()),
        ..Smtp::default()
    });
    let scenario =
        "S: 220\nC: EHLO x\nS: 250\nC: STARTTLS\nS: 2xx\nC: MAIL FROM:<a@b.example>\nS: 250\n";
    let out = Run::new(scenario, &server.target()).run();
    let rec = server.finish();
    out.assert_code(3).assert_contains("STARTTLS");
    assert!(
        find_ci(&rec.plain, b"MAIL FROM").is_none(),
        "{}",
        rec.dump()
    );
}

/// After a refusal the connection is still usable: QUIT, not a dropped connection.
#[test]
fn quit_follows_a_failed_expectation_and_a_guard_refusal() {
    let server = Server::smtp(Smtp::default().on("MAIL", b"550 5.7.1 Rejected\r\n"));
    let scenario = "S: 220\nC: EHLO x\nS: 250\nC: MAIL FROM:<a@b.example>\nS: 250\nC: RCPT TO:<c@d.example>\nS: 250\n";
    let out = Run::new(scenario, &server.target()).run();
    let rec = server.finish();
    out.assert_code(1);
    assert_eq!(
        lines(&rec),
        ["EHLO x", "MAIL FROM:<a@b.example>", "QUIT"],
        "{}",
        rec.dump()
    );

    let server = Server::smtp(Smtp::default());
    let scenario = "S: 220\nC: EHLO x\nS: 250\nC: AUTH PLAIN\nS: 235\n";
    let out = Run::new(scenario, &server.target()).creds().run();
    let rec = server.finish();
    out.assert_code(4).assert_no_credentials();
    assert_eq!(lines(&rec), ["EHLO x", "QUIT"], "{}", rec.dump());
}

/// A QUIT the scenario sent itself is not sent twice when its reply disappoints.
#[test]
fn the_scenarios_own_quit_is_not_repeated() {
    let server = Server::smtp(Smtp::default().on("QUIT", b"250 2.0.0 not leaving\r\n"));
    let out = Run::new("S: 220\nC: QUIT\nS: 221\n", &server.target()).run();
    let rec = server.finish();
    out.assert_code(1);
    assert_eq!(lines(&rec), ["QUIT"], "{}", rec.dump());
}

/// Against a real Postfix: relay denied, then the DATA it refuses for want of a recipient. The
/// run says what the server answered, and Postfix's own log shows the session ended with QUIT.
#[test]
fn postfix_refusing_data_gets_told_why_and_a_quit() {
    let Some(pf) = support::postfix::postfix() else {
        return;
    };
    // A HELO name no other test uses identifies this session in Postfix's log.
    let helo = format!("cli-data-{}.example", std::process::id());
    let scenario = format!(
        "S: 220\nC: EHLO {helo}\nS: 250\nC: MAIL FROM:<a@lab.test>\nS: 250\n\
         C: RCPT TO:<b@elsewhere.example>\nS: 5xx\nC: DATA\nC: Subject: x\nC:\nC: hi\nC: .\nS: 250\n"
    );
    let target = format!("{}:{}", pf.get("SMTP_HOST"), pf.port("MX_PORT"));
    let out = Run::new(&scenario, &target).run();
    out.assert_code(1)
        .assert_contains("did not accept DATA (554")
        .assert_not_contains("expectation on line");
    assert!(out.names_line(8), "{}", out.dump());
    // Postfix logs the refusal with the HELO name, then the disconnect of the same smtpd
    // process with its command counts; wait (bounded) for the log to be written.
    let log = std::path::PathBuf::from(pf.get("MAILLOG"));
    let started = Instant::now();
    let disconnect = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let found = text
            .lines()
            .position(|line| line.contains(&format!("helo=<{helo}>")))
            .and_then(|at| {
                let pid = text
                    .lines()
                    .nth(at)?
                    .split("smtpd[")
                    .nth(1)?
                    .split(']')
                    .next()?;
                let pid = format!("smtpd[{pid}]");
                text.lines()
                    .skip(at)
                    .find(|line| line.contains(&pid) && line.contains("disconnect from"))
                    .map(str::to_owned)
            });
        if let Some(line) = found {
            break line;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no disconnect line for {helo} in {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(disconnect.contains(" quit=1"), "{disconnect}");
}

// ---------------------------------------------------------------------------------------------
// Scenario files
// ---------------------------------------------------------------------------------------------

/// A tab after `C:` separates like a space, as after `S:`: it is not sent.
#[test]
fn a_tab_after_the_prefix_is_a_separator_for_both() {
    let server = Server::smtp(Smtp::default());
    let out = Run::new(
        "S:\t220\nC:\tNOOP\nS:\t250\nC: QUIT\nS: 221\n",
        &server.target(),
    )
    .run();
    let rec = server.finish();
    out.assert_code(0);
    assert_eq!(lines(&rec), ["NOOP", "QUIT"], "{}", rec.dump());
}

/// `smtptui run /dev/zero HOST` stops at a size limit with a clear error instead of reading
/// until memory runs out (the address space is capped so a regression fails, not the host).
#[test]
fn an_endless_scenario_file_is_refused_at_the_size_limit() {
    let script = format!(
        "ulimit -v 400000; exec '{}' run /dev/zero 127.0.0.1:9 --timeout 1",
        support::bin()
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let status = wait_bounded(&mut child, Duration::from_secs(60));
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(2),
        "{status:?}\n{stderr}"
    );
    assert!(stderr.contains("/dev/zero"), "{stderr}");
    assert!(stderr.contains("MiB"), "{stderr}");
}

/// A UTF-8 byte-order mark (as some editors save) is accepted.
#[test]
fn a_byte_order_mark_is_accepted() {
    let server = Server::smtp(Smtp::default());
    let out = Run::new("\u{feff}S: 220\nC: QUIT\nS: 221\n", &server.target()).run();
    server.finish();
    out.assert_code(0);
}

/// A scenario with nothing to send or check does not pass: it is a usage error, and the
/// server is never contacted.
#[test]
fn an_empty_scenario_has_nothing_to_check() {
    for text in ["", "# only a comment\n\n   \n"] {
        let server = Server::smtp(Smtp::default());
        let out = Run::new(text, &server.target()).run();
        let rec = server.finish();
        out.assert_code(2).assert_contains("nothing");
        assert!(!rec.connected, "{text:?}");
    }
}

/// A bare CR inside a message line is a scenario error, found before connecting.
#[test]
fn a_bare_cr_in_a_message_line_is_found_when_parsing() {
    let server = Server::smtp(Smtp::default());
    let scenario =
        "S: 220\nC: MAIL FROM:<a@b.example>\nS: 250\nC: DATA\nS: 354\nC: one\rtwo\nC: .\nS: 250\n";
    let out = Run::new(scenario, &server.target()).run();
    let rec = server.finish();
    out.assert_code(2).assert_contains("CR");
    assert!(out.names_line(6), "{}", out.dump());
    assert!(!rec.connected, "{}", rec.dump());
}

// ---------------------------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------------------------

/// Reply codes SMTP does not define (first digit outside 2-5, second outside 0-5) are shown
/// with an anomaly.
#[test]
fn undefined_reply_codes_are_flagged() {
    for (code, reply) in [
        ("199", &b"199 odd\r\n"[..]),
        ("999", b"999 odd\r\n"),
        ("280", b"280 odd\r\n"),
    ] {
        let server = Server::smtp(Smtp::default().on("NOOP", reply));
        let out = Run::new("S: 220\nC: NOOP\nC: QUIT\nS: 221\n", &server.target()).run();
        server.finish();
        out.assert_code(0).assert_contains("reply anomalies");
        assert!(
            out.stdout
                .lines()
                .any(|l| l.contains("anomalies") && l.contains("reply code")),
            "{code}\n{}",
            out.dump()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Targets and subcommands
// ---------------------------------------------------------------------------------------------

/// A URL or an ambiguous bare IPv6 address is a usage error showing the accepted forms.
#[test]
fn targets_in_other_forms_are_usage_errors_with_the_fix() {
    for (target, hint) in [
        ("smtp://127.0.0.1:2525", "HOST:PORT"),
        ("smtps://mail.example.com", "HOST:PORT"),
        ("::1:2587", "[::1]:2587"),
        ("user@mail.example.com", "HOST:PORT"),
    ] {
        let out = Run::new("S: 220\n", target).run();
        out.assert_code(2).assert_contains(hint);
        let out = smtptui(&["audit", target]);
        out.assert_code(2).assert_contains(hint);
    }
}

/// A mistyped subcommand is a usage error that names the subcommand it resembles.
#[test]
fn a_mistyped_subcommand_gets_a_suggestion() {
    for (args, suggestion) in [
        (&["demoo"][..], "smtptui demo"),
        (&["audti", "127.0.0.1"], "smtptui audit"),
        (&["lba"], "smtptui lab"),
        (&["rnu", "x.smtp", "127.0.0.1"], "smtptui run"),
    ] {
        let out = smtptui(args);
        out.assert_code(2).assert_contains(suggestion);
    }
    // A real host name is not taken for a typo.
    smtptui(&["mail.example.com"])
        .assert_code(2)
        .assert_not_contains("did you mean");
}

// ---------------------------------------------------------------------------------------------
// Messages in the user's words
// ---------------------------------------------------------------------------------------------

/// A certificate for other names lists them as names, not as Rust debug forms.
#[test]
fn certificate_name_errors_name_the_names_plainly() {
    let pki = Pki::new();
    let server = Server::smtp(implicit(&pki));
    let out = Run::new("S: 220\n", &server.target())
        .args([
            "--tls",
            "implicit",
            "--ca-file",
            &pki.ca_arg(),
            "--servername",
            "other.example",
        ])
        .run();
    server.finish();
    out.assert_code(3)
        .assert_contains("other.example")
        .assert_contains("localhost")
        .assert_contains("127.0.0.1")
        .assert_not_contains("DnsName(")
        .assert_not_contains("IpAddress(");
}

// ---------------------------------------------------------------------------------------------
// Closed pipes and Ctrl-C
// ---------------------------------------------------------------------------------------------

/// `smtptui run ... | head` and `smtptui audit ... 2>&1 | head`: a closed pipe ends nothing
/// with a panic, and the exit status is still the verdict.
#[test]
fn closed_pipes_do_not_change_the_verdict() {
    let server = Server::smtp(Smtp::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = dir.path().join("s.smtp");
    std::fs::write(&scenario, "S: 220\nC: NOOP\nS: 250\nC: QUIT\nS: 221\n").expect("write");
    let pipe = closed_pipe();
    let mut child = Command::new(support::bin())
        .args([
            "run",
            &scenario.to_string_lossy(),
            &server.target(),
            "--timeout",
            "5",
        ])
        .stdin(Stdio::null())
        .stdout(pipe.try_clone().expect("clone"))
        .stderr(pipe)
        .spawn()
        .expect("spawn");
    let status = wait_bounded(&mut child, Duration::from_secs(20));
    server.finish();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{status:?}");

    // stdout closed, stderr watched: no panic text, no broken-pipe complaint.
    let server = Server::smtp(Smtp::default());
    let mut child = Command::new(support::bin())
        .args([
            "run",
            &scenario.to_string_lossy(),
            &server.target(),
            "--timeout",
            "5",
        ])
        .stdin(Stdio::null())
        .stdout(closed_pipe())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let status = wait_bounded(&mut child, Duration::from_secs(20));
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    server.finish();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{stderr}");
    assert!(stderr.contains("PASS"), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.to_lowercase().contains("broken pipe"),
        "{stderr}"
    );

    // The audit of a port where nothing listens: its error goes to a closed pipe.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let target = free.local_addr().expect("addr").to_string();
    drop(free);
    let pipe = closed_pipe();
    let mut child = Command::new(support::bin())
        .args(["audit", &target, "--timeout", "5"])
        .stdin(Stdio::null())
        .stdout(pipe.try_clone().expect("clone"))
        .stderr(pipe)
        .spawn()
        .expect("spawn");
    let status = wait_bounded(&mut child, Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(3), "{status:?}");
}

/// `smtptui lab 2>&1 | tee log`, then Ctrl-C (which ends tee too): the lab still tells the
/// open session 421 and exits cleanly instead of panicking on the closed pipe.
#[test]
fn lab_ctrl_c_with_a_closed_pipe_still_sends_421() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = free.local_addr().expect("addr");
    drop(free);
    let state = tempfile::tempdir().expect("tempdir");
    let pipe = closed_pipe();
    let mut child = Command::new(support::bin())
        .args([
            "lab",
            "--profile",
            "mx",
            "--listen",
            &addr.to_string(),
            "--state-dir",
        ])
        .arg(state.path())
        .stdin(Stdio::null())
        .stdout(pipe.try_clone().expect("clone"))
        .stderr(pipe)
        .spawn()
        .expect("spawn lab");
    let started = Instant::now();
    let mut client = loop {
        match TcpStream::connect(addr) {
            Ok(stream) => break stream,
            Err(_) if started.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(error) => {
                let _ = child.kill();
                panic!("the lab never listened on {addr}: {error}");
            }
        }
    };
    client
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    while find_ci(&seen, b"\r\n").is_none() {
        match client.read(&mut buf) {
            Ok(n @ 1..) => seen.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    assert!(
        seen.starts_with(b"220 "),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    client.write_all(b"EHLO me\r\n").expect("write");
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    while let Ok(n @ 1..) = client.read(&mut buf) {
        seen.extend_from_slice(&buf[..n]);
    }
    let status = wait_bounded(&mut child, Duration::from_secs(20));
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(
        text.contains("\r\n421 "),
        "no 421 to the open session:\n{text}"
    );
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{status:?}");
}

// ---------------------------------------------------------------------------------------------
// The lab's start table
// ---------------------------------------------------------------------------------------------

/// Starts the lab binary with `args`, returns its start-up output up to the session log
/// header, then stops it with Ctrl-C and checks it ended cleanly.
fn lab_table(args: &[&str]) -> String {
    let mut child = Command::new(support::bin())
        .arg("lab")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn lab");
    let mut stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut all = String::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stdout.read(&mut buf) {
            all.push_str(&String::from_utf8_lossy(&buf[..n]));
            if all.contains("Session log") {
                break;
            }
        }
        let _ = tx.send(all);
    });
    let table = rx.recv_timeout(Duration::from_secs(30));
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = wait_bounded(&mut child, Duration::from_secs(20));
    let table = table.expect("the lab printed its table");
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{table}");
    table
}

/// Each profile's row says how a client must start TLS there: `--tls starttls` waits
/// silently against an implicit-TLS port.
#[test]
fn the_lab_table_says_which_tls_flag_each_profile_needs() {
    for (profile, flag, asset) in [
        ("implicit", "--tls implicit", "run implicit-tls "),
        ("submission", "--tls starttls", "run submission-starttls "),
    ] {
        let table = lab_table(&["--profile", profile, "--listen", "127.0.0.1:0", "--quiet"]);
        let row = table
            .lines()
            .find(|line| line.starts_with(&format!("{profile} ")))
            .unwrap_or_default();
        assert!(row.contains(flag), "{table}");
        let try_line = table
            .lines()
            .find(|line| line.contains(asset))
            .unwrap_or_default();
        assert!(try_line.contains(flag) || profile != "implicit", "{table}");
        assert!(!try_line.is_empty(), "{table}");
    }
}
