//! `smtptui send`, the one-liner, through the binary:
//!
//! * against the scripted server of `tests/support`: what reaches the server (STARTTLS before
//!   AUTH, the credential guard refusing AUTH in cleartext, the message), the scenario that
//!   `--print-scenario` prints and `smtptui run` replays, usage errors before any connection;
//! * against the real Postfix of `scripts/postfix-env.sh`: a MIME message with an attachment
//!   held in its queue and read back with `postcat`, side by side with swaks sending the same
//!   one-liner; STARTTLS with AUTH on submission and implicit TLS.

#![allow(clippy::unwrap_used, clippy::panic)] // test assertions

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use support::mta::Mta;
use support::postfix::postfix;
use support::program::Ran;
use support::{Leaf, PASSWORD, Pki, Server, Smtp, USER, find_ci};

impl Ran {
    /// The queue id in Postfix's "queued as ID".
    fn queue_id(&self) -> String {
        let at = self
            .stdout
            .find("queued as ")
            .unwrap_or_else(|| panic!("no queue id\n{}", self.dump()));
        self.stdout[at + 10..]
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect()
    }
}

/// Runs `program` with `args` in `dir`, `password` as $SMTPTUI_PASSWORD when given; stdin
/// empty, a hard deadline.
fn run_in(program: &str, dir: &Path, args: &[&str], password: Option<&str>) -> Ran {
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("SMTPTUI_PASSWORD")
        .env_remove("SMTPTUI_CONFIG")
        .env("XDG_CONFIG_HOME", dir.join("no-config"));
    if let Some(password) = password {
        command.env("SMTPTUI_PASSWORD", password);
    }
    support::program::run(command, b"", Duration::from_secs(30))
}

fn smtptui(dir: &Path, args: &[&str], password: Option<&str>) -> Ran {
    run_in(support::bin(), dir, args, password)
}

fn tls_args(pki: &Pki) -> Vec<String> {
    ["--ca-file", &pki.ca_arg(), "--servername", "localhost"]
        .map(str::to_owned)
        .to_vec()
}

/// The lines the server received, without the TLS flag.
fn lines(rec: &support::Recorded) -> Vec<String> {
    rec.lines.iter().map(|(_, line)| line.clone()).collect()
}

/// STARTTLS with AUTH: TLS starts before any credential, the message arrives with its header
/// and body, and `--print-scenario` prints a scenario that `smtptui run` replays to the same
/// end.
#[test]
fn starttls_with_auth_sends_the_message_and_prints_the_scenario_run_replays() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::smtp(Smtp::with_cert(&pki, Leaf::Good));
    let target = server.target();
    let mut args: Vec<String> = [
        "send",
        &target,
        "--from",
        "alice@example.com",
        "--to",
        "bob@lab.test",
        "--auth",
        "--user",
        USER,
        "--header",
        "Subject: one line",
        "--body",
        "Hello Bob.",
        "--timeout",
        "10",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(tls_args(&pki));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let ran = smtptui(dir.path(), &argv, Some(PASSWORD));
    let rec = server.finish();
    ran.assert_code(0).assert_contains("PASS smtptui send");
    assert!(find_ci(&rec.plain, b"AUTH").is_none(), "{}", rec.dump());
    assert_eq!(rec.auth.len(), 1, "{}", rec.dump());
    assert!(rec.auth[0].2, "AUTH inside TLS");
    let message: Vec<String> = rec.messages[0]
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    assert!(
        message.contains(&"Subject: one line".to_owned()),
        "{message:?}"
    );
    assert!(message.contains(&"Hello Bob.".to_owned()), "{message:?}");
    assert!(message.iter().any(|l| l.starts_with("Date: ")));
    assert!(message.iter().any(|l| l.starts_with("Message-ID: <")));
    support::assert_no_credentials(ran.stdout.as_bytes(), USER, PASSWORD, "stdout");

    let mut print = argv.clone();
    print.push("--print-scenario");
    let printed = smtptui(dir.path(), &print, Some(PASSWORD));
    printed.assert_code(0);
    assert!(
        printed.stdout.contains("C: STARTTLS\nS: 220\n")
            && printed.stdout.contains("C: AUTH PLAIN\nS: 235\n"),
        "{}",
        printed.dump()
    );
    assert!(!printed.stdout.contains(PASSWORD));
    let file = dir.path().join("kept.smtp");
    std::fs::write(&file, &printed.stdout).unwrap();
    let server = Server::smtp(Smtp::with_cert(&pki, Leaf::Good));
    let target = server.target();
    let mut replay = vec![
        "run",
        file.to_str().unwrap(),
        &target,
        "--user",
        USER,
        "--timeout",
        "10",
    ];
    let tls = tls_args(&pki);
    replay.extend(tls.iter().map(String::as_str));
    let replayed = smtptui(dir.path(), &replay, Some(PASSWORD));
    let rec = server.finish();
    replayed.assert_code(0);
    assert_eq!(rec.messages.len(), 1);
    assert_eq!(rec.auth.len(), 1);
}

/// `--auth` with `--no-starttls` on a server that offers AUTH in cleartext: the guard stops
/// it, exit 4, nothing of the credentials crosses, exactly as for a scenario run.
#[test]
fn auth_in_cleartext_is_refused_by_the_guard() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::smtp(Smtp {
        advertise_starttls: false,
        ..Smtp::default()
    });
    let target = server.target();
    let ran = smtptui(
        dir.path(),
        &[
            "send",
            &target,
            "--to",
            "bob@lab.test",
            "--no-starttls",
            "--auth",
            "LOGIN",
            "--user",
            USER,
            "--timeout",
            "10",
        ],
        Some(PASSWORD),
    );
    let rec = server.finish();
    ran.assert_code(4);
    rec.assert_no_auth_anywhere();
    assert!(rec.messages.is_empty());
}

/// With AUTH and the default --tls auto, STARTTLS is required: a server that does not offer
/// it fails the run before AUTH or MAIL, and nothing goes on in cleartext.
#[test]
fn auth_needs_starttls_and_a_server_without_it_gets_no_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::smtp(Smtp {
        advertise_starttls: false,
        ..Smtp::default()
    });
    let target = server.target();
    let ran = smtptui(
        dir.path(),
        &[
            "send",
            &target,
            "--to",
            "bob@lab.test",
            "--user",
            USER,
            "--timeout",
            "10",
        ],
        Some(PASSWORD),
    );
    let rec = server.finish();
    ran.assert_code(1).assert_contains("STARTTLS");
    rec.assert_no_auth_anywhere();
    assert!(!lines(&rec).iter().any(|l| l.starts_with("MAIL")));
}

/// A whole message file with --data goes by a FILE line: streamed, each line dot-stuffed,
/// and the scenario names the file by its absolute path so it replays from anywhere. Its
/// lines are pipelined with --pipeline.
#[test]
fn data_sends_a_message_file_as_written_and_pipeline_groups_the_envelope() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("message.eml"),
        "Subject: from a file\n\n.leading dot\nend\n",
    )
    .unwrap();
    let server = Server::smtp(Smtp::default());
    let target = server.target();
    let args = [
        "send",
        &target,
        "--to",
        "bob@lab.test,carol@lab.test",
        "--data",
        "message.eml",
        "--pipeline",
        "--timeout",
        "10",
    ];
    let ran = smtptui(dir.path(), &args, None);
    let rec = server.finish();
    ran.assert_code(0);
    let message: Vec<&[u8]> = rec.messages[0].iter().map(Vec::as_slice).collect();
    assert_eq!(
        message,
        [&b"Subject: from a file"[..], b"", b"..leading dot", b"end"]
    );
    let received = lines(&rec);
    assert!(received.contains(&"RCPT TO:<carol@lab.test>".to_owned()));
    let mut print = args.to_vec();
    print.push("--print-scenario");
    let printed = smtptui(dir.path(), &print, None);
    let absolute = dir.path().canonicalize().unwrap().join("message.eml");
    let file_line = format!("FILE {}", absolute.display());
    assert!(
        printed.stdout.contains("PIPELINE\n") && printed.stdout.contains(&file_line),
        "{}",
        printed.dump()
    );
}

/// Bad input is a usage error naming the option and the fix, before any connection.
#[test]
fn bad_input_is_a_usage_error_naming_the_option() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens here: a usage error must come before any attempt to connect.
    let target = "127.0.0.1:9";
    for (args, says) in [
        (
            vec!["--to", "bob@lab.test", "--header", "X-A: b\r\nBcc: c@x"],
            "--header",
        ),
        (
            vec!["--to", "bob@lab.test", "--header", "no colon"],
            "Name: value",
        ),
        (vec!["--to", "bob@lab.test> NOTIFY=NEVER"], "--to"),
        (vec!["--to", "bob@lab.test", "--from", "a b@x"], "--from"),
        (
            vec!["--to", "bob@lab.test", "--attach", "missing.pdf"],
            "--attach missing.pdf",
        ),
        (
            vec!["--to", "bob@lab.test", "--body", "@missing.txt"],
            "--body missing.txt",
        ),
        (
            vec!["--to", "bob@lab.test", "--auth", "NTLM", "--user", "a"],
            "PLAIN, LOGIN",
        ),
        (vec!["--to", "bob@lab.test", "--auth"], "--user"),
        (
            vec!["--to", "bob@lab.test", "--password", "hunter2"],
            "--password-file",
        ),
        (
            vec!["--to", "bob@lab.test", "--port", "26"],
            "port 9 and --port says 26",
        ),
        (
            vec![
                "--to",
                "bob@lab.test",
                "--data",
                "missing.eml",
                "--print-scenario",
            ],
            "missing.eml",
        ),
    ] {
        let mut argv = vec!["send", target];
        argv.extend(args);
        let ran = smtptui(dir.path(), &argv, None);
        ran.assert_code(2).assert_contains(says);
        assert!(!ran.stdout.contains("connecting"), "{}", ran.dump());
    }
}

// ---------------------------------------------------------------------------------------------
// Real Postfix
// ---------------------------------------------------------------------------------------------

/// A held message, as `postcat -bh` shows it (LF line endings), then removed from the queue.
fn take_held(postfix: &Mta, id: &str) -> String {
    let config = postfix.get("POSTFIX_CONFIG_DIR");
    let output = Command::new("postcat")
        .args(["-c", config, "-bh", "-q", id])
        .output()
        .expect("postcat runs (the tests read Postfix's queue, which needs root)");
    assert!(
        output.status.success(),
        "postcat -q {id}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = Command::new("postsuper")
        .args(["-c", config, "-d", id])
        .output();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The value of the first header `name` (unfolded), ignoring case.
fn header(message: &str, name: &str) -> Option<String> {
    let head = message.split("\n\n").next()?;
    let mut value: Option<String> = None;
    for line in head.lines() {
        if let Some(v) = value.as_mut() {
            if line.starts_with([' ', '\t']) {
                v.push(' ');
                v.push_str(line.trim());
                continue;
            }
            break;
        }
        if let Some((n, v)) = line.split_once(':')
            && n.eq_ignore_ascii_case(name)
        {
            value = Some(v.trim().to_owned());
        }
    }
    value
}

/// The decoded content of the attachment named `name` in a multipart message, with its part
/// headers.
fn attachment(message: &str, name: &str) -> (String, Vec<u8>) {
    let content_type = header(message, "Content-Type").unwrap();
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .unwrap()
        .trim_matches('"')
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let delimiter = format!("--{boundary}");
    for part in message.split(&delimiter) {
        let Some((head, body)) = part.trim_start_matches('\n').split_once("\n\n") else {
            continue;
        };
        if head.contains(name) {
            let encoded: String = body.lines().map(str::trim).collect();
            return (
                head.to_owned(),
                B64.decode(encoded.trim_end_matches('-')).unwrap(),
            );
        }
    }
    panic!("no attachment {name} in\n{message}");
}

/// The same one-liner through smtptui and through swaks to Postfix's extensions listener
/// (STARTTLS, every message held): both messages carry the custom header and subject, and
/// the attachment each one held decodes to the file's bytes; smtptui's is base64 at 76
/// columns with the type from the extension.
#[test]
fn an_attachment_is_held_by_postfix_as_swaks_sends_it() {
    let Some(postfix) = postfix() else { return };
    if postfix.get("EXTENSIONS_PORT").is_empty() {
        eprintln!("skipping: the Postfix environment has no extensions listener");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = (0..150_000u32).map(|n| (n * 7919 % 251) as u8).collect();
    std::fs::write(dir.path().join("report.pdf"), &bytes).unwrap();
    let target = format!(
        "{}:{}",
        postfix.get("SMTP_HOST"),
        postfix.port("EXTENSIONS_PORT")
    );
    let common = [
        "--from",
        "alice@example.com",
        "--to",
        "bob@lab.test",
        "--header",
        "Subject: the report",
        "--header",
        "X-Report-Id: 42",
        "--body",
        "See the attached report.",
    ];
    let mut ours = vec![
        "send",
        &target,
        "--tls",
        "starttls",
        "--ca-file",
        postfix.get("CA_FILE"),
        "--servername",
        postfix.get("TLS_SERVER_NAME"),
        "--attach",
        "report.pdf",
        "--timeout",
        "20",
    ];
    ours.extend(common);
    let ran = smtptui(dir.path(), &ours, None);
    ran.assert_code(0);
    assert!(ran.stdout.contains("tls   C: MAIL FROM:"), "{}", ran.dump());
    let held = take_held(postfix, &ran.queue_id());

    if Command::new("swaks").arg("--version").output().is_err() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("swaks is not installed (scripts/test.sh installs it)");
        }
        eprintln!("skipping the swaks half: swaks is not installed");
        return;
    }
    let mut theirs = vec!["--server", &target, "--tls", "--attach", "@report.pdf"];
    theirs.extend(common);
    let swaks = run_in("swaks", dir.path(), &theirs, None);
    swaks.assert_code(0);
    let id = swaks
        .stdout
        .split("queued as ")
        .nth(1)
        .map(|rest| {
            rest.chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect::<String>()
        })
        .unwrap_or_else(|| panic!("{}", swaks.dump()));
    let held_by_swaks = take_held(postfix, &id);

    for message in [&held, &held_by_swaks] {
        assert_eq!(
            header(message, "Subject").as_deref(),
            Some("the report"),
            "{message}"
        );
        assert_eq!(header(message, "X-Report-Id").as_deref(), Some("42"));
        assert_eq!(header(message, "To").as_deref(), Some("bob@lab.test"));
        assert!(header(message, "Date").is_some() && header(message, "Message-ID").is_some());
        assert!(message.contains("See the attached report."));
        let (_, decoded) = attachment(message, "report.pdf");
        assert_eq!(decoded, bytes, "the attachment as held");
    }
    let (head, _) = attachment(&held, "report.pdf");
    assert!(head.contains("Content-Type: application/pdf"), "{head}");
    assert!(head.contains("Content-Transfer-Encoding: base64"), "{head}");
    let start = held.find("Content-Transfer-Encoding: base64\n\n").unwrap() + 35;
    let widths: Vec<usize> = held[start..].lines().take(10).map(str::len).collect();
    assert!(widths.iter().all(|&w| w == 76), "{widths:?}");
}

/// Submission with STARTTLS and AUTH, and implicit TLS on 465-style, against Postfix: the two
/// one-liners a swaks user types most after a plain send, with the password from a file.
#[test]
fn starttls_with_auth_and_implicit_tls_against_postfix() {
    let Some(postfix) = postfix() else { return };
    let dir = tempfile::tempdir().unwrap();
    let host = postfix.get("SMTP_HOST");
    for (port, tls) in [
        (postfix.port("SUBMISSION_PORT"), None),
        (postfix.port("IMPLICIT_PORT"), Some("--tls-on-connect")),
    ] {
        let target = format!("{host}:{port}");
        let mut args = vec![
            "send",
            &target,
            "--from",
            postfix.get("SMTP_USER"),
            "--to",
            "bob@lab.test",
            "--auth",
            "--user",
            postfix.get("SMTP_USER"),
            "--password-file",
            postfix.get("PASSWORD_FILE"),
            "--ca-file",
            postfix.get("CA_FILE"),
            "--servername",
            postfix.get("TLS_SERVER_NAME"),
            "--timeout",
            "20",
        ];
        args.extend(tls);
        let ran = smtptui(dir.path(), &args, None);
        ran.assert_code(0).assert_contains("235");
        assert!(ran.stdout.contains("tls   C: AUTH PLAIN"), "{}", ran.dump());
        assert!(ran.stdout.contains("queued as"), "{}", ran.dump());
        assert!(!ran.stdout.contains(&postfix.password()));
    }
}

/// A message larger than a scenario holds (16 MiB) goes from a file: without --save-message a
/// temporary one, removed after the run; the server gets the attachment whole. With
/// --print-scenario it must be kept: --save-message writes it (mode 600) and the scenario
/// names it.
#[test]
fn a_message_larger_than_a_scenario_streams_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let temp = dir.path().join("tmp");
    std::fs::create_dir(&temp).unwrap();
    let bytes: Vec<u8> = (0..17 * 1024 * 1024u32)
        .map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.path().join("big.iso"), &bytes).unwrap();
    let server = Server::smtp(Smtp::default());
    let target = server.target();
    let mut command = Command::new(support::bin());
    command
        .args([
            "send",
            &target,
            "--to",
            "bob@lab.test",
            "--attach",
            "big.iso",
        ])
        .args(["--timeout", "20"])
        .current_dir(dir.path())
        .env("TMPDIR", &temp)
        .env("XDG_CONFIG_HOME", dir.path().join("no-config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let output = command.output().unwrap();
    let rec = server.finish();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let message: String = rec.messages[0]
        .iter()
        .map(|line| String::from_utf8_lossy(line).into_owned() + "\n")
        .collect();
    let (_, decoded) = attachment(&message, "big.iso");
    assert!(decoded == bytes, "the attachment arrived whole");
    assert_eq!(
        std::fs::read_dir(&temp).unwrap().count(),
        0,
        "the temporary message file is removed"
    );

    let print = [
        "send",
        "127.0.0.1:9",
        "--to",
        "b@x",
        "--attach",
        "big.iso",
        "--print-scenario",
    ];
    smtptui(dir.path(), &print, None)
        .assert_code(2)
        .assert_contains("--save-message FILE");
    let mut keep = print.to_vec();
    keep.extend(["--save-message", "kept.eml"]);
    let ran = smtptui(dir.path(), &keep, None);
    ran.assert_code(0);
    let kept = dir.path().canonicalize().unwrap().join("kept.eml");
    assert!(
        ran.stdout.contains(&format!("FILE {}\n", kept.display())),
        "{}",
        ran.dump()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&kept).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

/// swaks's own spellings work as they are: `-s`, `-t`, `--h-Subject VALUE`, `-tls`,
/// `--tls-ca-path`, `--tls-sni`, `-au`; a password option is refused without repeating it.
#[test]
fn swaks_spellings_are_accepted() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::smtp(Smtp::with_cert(&pki, Leaf::Good));
    let target = server.target();
    let ca = pki.ca_arg();
    let ran = smtptui(
        dir.path(),
        &[
            "send",
            "-s",
            &target,
            "-t",
            "bob@lab.test",
            "--h-Subject",
            "as swaks says it",
            "-tls",
            "--tls-ca-path",
            &ca,
            "--tls-sni",
            "localhost",
            "-au",
            USER,
            "--timeout",
            "10",
        ],
        Some(PASSWORD),
    );
    let rec = server.finish();
    ran.assert_code(0);
    assert_eq!(rec.auth.len(), 1);
    assert!(rec.auth[0].2, "inside TLS");
    let message: Vec<String> = rec.messages[0]
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    assert!(
        message.contains(&"Subject: as swaks says it".to_owned()),
        "{message:?}"
    );

    // The scenario of an implicit-TLS one-liner says how to replay it on the same port.
    let printed = smtptui(
        dir.path(),
        &[
            "send",
            "-s",
            "mail.example.com",
            "-tlsc",
            "-t",
            "b@x",
            "--print-scenario",
        ],
        None,
    );
    printed
        .assert_code(0)
        .assert_contains("# Replay: smtptui run THIS-FILE mail.example.com --tls implicit");

    let refused = smtptui(
        dir.path(),
        &["send", "127.0.0.1:9", "-t", "b@x", "-ap", "s3cret-Value"],
        None,
    );
    refused.assert_code(2).assert_contains("--password-file");
    assert!(!refused.stderr.contains("s3cret-Value"));
}
