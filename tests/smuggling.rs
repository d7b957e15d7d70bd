//! `smtptui audit --smuggling-to`, through the binary: against the test Postfix with
//! `smtpd_forbid_bare_newline` off, on (normalize) and on reject; against the lab; and against
//! small fake servers that leave the question open (silence, a close, one reply without the
//! `221`), where no sequence may ever pass. Also: the probe runs only when asked, never sends
//! AUTH, refuses a malformed address before connecting, and `--json` carries each sequence.

#![allow(clippy::panic)] // panicking is how a test fails

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde_json::Value;
use smtptui::lab::{Lab, LabConfig, Profile};

mod support;
use support::postfix::postfix;

const IDS: [&str; 4] = [
    "smuggling-lf-dot-lf",
    "smuggling-lf-dot-crlf",
    "smuggling-crlf-dot-lf",
    "smuggling-cr-dot-cr",
];

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn all(&self) -> String {
        format!("exit {}\n{}{}", self.code, self.stdout, self.stderr)
    }

    /// The report line of a finding: `VERDICT id: text`.
    fn line(&self, id: &str) -> &str {
        self.stdout
            .lines()
            .find(|l| {
                l.get(6..)
                    .is_some_and(|rest| rest.starts_with(&format!("{id}:")))
            })
            .unwrap_or_else(|| panic!("no {id} line in:\n{}", self.all()))
    }

    fn verdict(&self, id: &str) -> &str {
        self.line(id).split_whitespace().next().unwrap_or_default()
    }

    /// The findings that failed.
    fn failing(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| l.starts_with("FAIL"))
            .collect()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.all()))
    }
}

fn smtptui(args: &[&str]) -> Ran {
    let output = Command::new(env!("CARGO_BIN_EXE_smtptui"))
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run smtptui");
    Ran {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// The test Postfix (scripts/postfix-env.sh)
// ---------------------------------------------------------------------------------------------

/// The audit of one of the Postfix's smuggling listeners, with the probe, as an MX.
fn postfix_smuggling(port_key: &str, extra: &[&str]) -> Option<Ran> {
    let pf = postfix()?;
    let port = pf.newer_port(port_key)?;
    let target = format!("127.0.0.1:{port}");
    let to = format!("bob@{}", pf.get("MAIL_DOMAIN"));
    let mut args = vec![
        "audit",
        &target,
        "--role",
        "mx",
        "--no-implicit",
        "--ca-file",
        pf.get("CA_FILE"),
        "--servername",
        "localhost",
        "--timeout",
        "10",
        "--smuggling-to",
        &to,
    ];
    args.extend_from_slice(extra);
    Some(smtptui(&args))
}

#[test]
fn postfix_without_forbid_bare_newline_ends_messages_at_a_bare_lf_and_fails() {
    let Some(run) = postfix_smuggling("SMUGGLE_OPEN_PORT", &[]) else {
        return;
    };
    assert_eq!(run.code, 1, "{}", run.all());
    // Postfix 3.7 with smtpd_forbid_bare_newline = no takes a dot line next to a bare LF for
    // the end, and queues what follows as a second message.
    for id in [IDS[0], IDS[1]] {
        let line = run.line(id);
        assert!(
            line.starts_with("FAIL")
                && line.contains("ended the message at")
                && line.contains("queued the smuggled message as a second one"),
            "{}",
            run.all()
        );
    }
    // The same for <CR><LF>.<LF>, which no dot-stuffing sender can produce: a warning.
    assert_eq!(run.verdict(IDS[2]), "WARN", "{}", run.all());
    assert!(
        run.line(IDS[2]).contains("no relay is known"),
        "{}",
        run.all()
    );
    // Postfix splits lines only at LF: <CR>.<CR> stays inside the message.
    assert_eq!(run.verdict(IDS[3]), "PASS", "{}", run.all());
    // The failure is the smuggling, and the fix is Postfix's.
    assert!(
        run.failing().iter().all(|l| l.contains("smuggling-")),
        "{}",
        run.all()
    );
    assert!(
        run.stdout
            .contains("Postfix: smtpd_forbid_bare_newline = normalize"),
        "{}",
        run.all()
    );
}

#[test]
fn postfix_json_carries_each_sequence_with_its_replies() {
    let Some(run) = postfix_smuggling("SMUGGLE_OPEN_PORT", &["--json"]) else {
        return;
    };
    assert_eq!(run.code, 1, "{}", run.all());
    let json = run.json();
    let smuggling = &json["smuggling"];
    assert_eq!(smuggling["sent"], true, "{json}");
    assert_eq!(smuggling["transport"], "starttls", "{json}");
    let variants = smuggling["variants"].as_array().expect("variants");
    let outcomes: Vec<(&str, &str)> = variants
        .iter()
        .map(|v| {
            (
                v["id"].as_str().unwrap_or_default(),
                v["outcome"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            (IDS[0], "ended-message"),
            (IDS[1], "ended-message"),
            (IDS[2], "ended-message"),
            (IDS[3], "kept-inside"),
        ],
        "{json}"
    );
    let first = &variants[0];
    assert_eq!(first["sequence"], "<LF>.<LF>");
    assert_eq!(first["second_message_queued"], true, "{first}");
    assert_eq!(first["relays_known"], true, "{first}");
    // The end of the first message, then MAIL, RCPT, DATA and the smuggled message.
    assert_eq!(
        first["replies"].as_array().map(Vec::len),
        Some(5),
        "{first}"
    );
    assert_eq!(variants[2]["relays_known"], false);
    assert_eq!(variants[3]["replies"].as_array().map(Vec::len), Some(1));
}

#[test]
fn postfix_with_forbid_bare_newline_keeps_every_sequence_inside_and_passes() {
    let Some(run) = postfix_smuggling("SMUGGLE_STRICT_PORT", &[]) else {
        return;
    };
    for id in IDS {
        let line = run.line(id);
        assert!(
            line.starts_with("PASS") && line.contains("as text of one message"),
            "{}",
            run.all()
        );
    }
    assert_eq!(run.code, 0, "{}", run.all());
}

#[test]
fn postfix_rejecting_bare_newlines_is_a_pass_that_names_its_refusal() {
    let Some(run) = postfix_smuggling("SMUGGLE_REJECT_PORT", &[]) else {
        return;
    };
    // The three sequences with a bare LF: the whole message refused with 550, nothing behind
    // the sequence answered.
    for id in &IDS[..3] {
        let line = run.line(id);
        assert!(
            line.starts_with("PASS")
                && line.contains("the server refused the message (550 5.5.2")
                && line.contains("bare <LF> received")
                && line.contains("so no second message"),
            "{}",
            run.all()
        );
    }
    assert!(
        run.line(IDS[3]).contains("as text of one message"),
        "{}",
        run.all()
    );
    assert_eq!(run.code, 0, "{}", run.all());
}

// ---------------------------------------------------------------------------------------------
// The lab
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lab_ends_messages_only_at_crlf_dot_crlf_and_passes() {
    let mut config = LabConfig::ephemeral(vec![Profile::Mx]);
    config.log = Arc::new(|_| {});
    config.log_sessions = false;
    let lab = Lab::start(config).await.expect("lab starts");
    let target = lab.addr(Profile::Mx).expect("mx").to_string();
    let ca = lab.ca_file().display().to_string();
    let run = tokio::task::spawn_blocking(move || {
        smtptui(&[
            "audit",
            &target,
            "--role",
            "mx",
            "--no-implicit",
            "--ca-file",
            &ca,
            "--servername",
            "localhost",
            "--timeout",
            "10",
            "--smuggling-to",
            "bob@lab.test",
        ])
    })
    .await
    .expect("audit ran");
    for id in IDS {
        assert!(run.line(id).starts_with("PASS"), "{}", run.all());
    }
    assert_eq!(run.code, 0, "{}", run.all());
    // One message per sequence, each holding its smuggled commands as text; none on its own.
    let messages = lab.mail().messages();
    assert_eq!(messages.len(), 4, "{}", run.all());
    for message in &messages {
        let text = String::from_utf8_lossy(&message.data);
        assert!(
            text.contains("Subject: smtptui smuggling probe: <"),
            "{text}"
        );
        assert!(
            text.contains("MAIL FROM:<>\r\nRCPT TO:<bob@lab.test>\r\nDATA\r\n"),
            "{text}"
        );
        assert_eq!(message.to, ["bob@lab.test"]);
    }
    lab.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Fake servers
// ---------------------------------------------------------------------------------------------

/// What a fake server does once it has answered DATA with 354.
#[derive(Clone, Copy, Debug)]
enum AfterData {
    /// Reads the message to its real end, answers 250 and goes on: a server that keeps every
    /// sequence inside the message.
    Honest,
    /// Reads everything and never answers, until the client goes away.
    Silent,
    /// Closes the connection as soon as the message arrives.
    Close,
    /// Answers the message once with 250, then nothing more, not even to QUIT.
    OneAcceptance,
    /// Answers the message once with 554, then closes without answering QUIT.
    OneRefusal,
}

/// A fake server on loopback that takes any number of connections, each recorded line by line
/// (what follows the 354 is recorded as one entry).
struct Fake {
    addr: SocketAddr,
    sessions: Arc<Mutex<Vec<Vec<String>>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Fake {
    fn start(after: AfterData) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (sessions2, stop2) = (Arc::clone(&sessions), Arc::clone(&stop));
        let accept = thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((socket, _)) => {
                        let sessions = Arc::clone(&sessions2);
                        let index = {
                            let mut all = sessions.lock().unwrap_or_else(|e| e.into_inner());
                            all.push(Vec::new());
                            all.len() - 1
                        };
                        thread::spawn(move || {
                            let _ = serve(socket, after, &sessions, index);
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Fake {
            addr,
            sessions,
            stop,
            accept: Some(accept),
        }
    }

    fn target(&self) -> String {
        self.addr.to_string()
    }

    fn sessions(&self) -> Vec<Vec<String>> {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// One connection of a [`Fake`]: an MX that offers no STARTTLS, advertises AUTH (so that an
/// AUTH would have a place to go) and refuses it.
fn serve(
    mut socket: TcpStream,
    after: AfterData,
    sessions: &Mutex<Vec<Vec<String>>>,
    index: usize,
) -> std::io::Result<()> {
    socket.set_read_timeout(Some(Duration::from_secs(60)))?;
    let record = |line: String| {
        if let Some(session) = sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(index)
        {
            session.push(line);
        }
    };
    let mut out = socket.try_clone()?;
    let mut input: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    // Fills `input` until `done` holds for it; false when the client went away.
    let mut fill = |input: &mut Vec<u8>, done: &dyn Fn(&[u8]) -> bool| -> bool {
        while !done(input) {
            match socket.read(&mut chunk) {
                Ok(0) | Err(_) => return false,
                Ok(n) => input.extend_from_slice(&chunk[..n]),
            }
        }
        true
    };
    out.write_all(b"220 fake.example ESMTP\r\n")?;
    loop {
        if !fill(&mut input, &|b| b.contains(&b'\n')) {
            return Ok(());
        }
        let end = input.iter().position(|&b| b == b'\n').unwrap_or_default();
        let line: Vec<u8> = input.drain(..=end).collect();
        let line = String::from_utf8_lossy(&line).trim_end().to_owned();
        record(line.clone());
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-fake.example\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n",
            "AUTH" => b"503 5.5.1 Error: authentication not enabled\r\n",
            "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 2.0.0 Ok\r\n",
            "QUIT" => {
                out.write_all(b"221 2.0.0 Bye\r\n")?;
                return Ok(());
            }
            "DATA" => {
                out.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")?;
                let real_end = |b: &[u8]| b.windows(5).any(|w| w == b"\r\n.\r\n");
                let quit = |b: &[u8]| b.ends_with(b"QUIT\r\n");
                match after {
                    AfterData::Honest => {
                        let arrived = fill(&mut input, &real_end);
                        let at = input
                            .windows(5)
                            .position(|w| w == b"\r\n.\r\n")
                            .map_or(input.len(), |at| at + 5);
                        let message: Vec<u8> = input.drain(..at).collect();
                        record(String::from_utf8_lossy(&message).into_owned());
                        if !arrived {
                            return Ok(());
                        }
                        out.write_all(b"250 2.0.0 Ok: queued\r\n")?;
                        continue;
                    }
                    AfterData::Silent => {
                        fill(&mut input, &|_| false);
                    }
                    AfterData::Close => {
                        fill(&mut input, &quit);
                        let _ = out.shutdown(Shutdown::Both);
                    }
                    AfterData::OneAcceptance => {
                        if fill(&mut input, &quit) {
                            out.write_all(b"250 2.0.0 Ok: queued\r\n")?;
                            input.clear();
                            fill(&mut input, &|_| false);
                        }
                    }
                    AfterData::OneRefusal => {
                        if fill(&mut input, &quit) {
                            out.write_all(b"554 5.6.0 Message refused\r\n")?;
                        }
                        let _ = out.shutdown(Shutdown::Both);
                    }
                }
                record(String::from_utf8_lossy(&input).into_owned());
                return Ok(());
            }
            _ => b"500 5.5.2 Error: command not recognized\r\n",
        };
        out.write_all(reply)?;
    }
}

fn audit_fake(fake: &Fake, extra: &[&str]) -> Ran {
    let target = fake.target();
    let mut args = vec![
        "audit",
        &target,
        "--role",
        "mx",
        "--no-implicit",
        "--timeout",
        "3",
    ];
    args.extend_from_slice(extra);
    smtptui(&args)
}

/// Servers that leave open whether they ended the message at the sequence: every sequence is
/// reported as unknown, a failure where relays pass it and a warning where none does, never a
/// pass; `--json` says inconclusive.
#[test]
fn a_server_that_leaves_the_end_open_never_passes() {
    for (after, said) in [
        (AfterData::Silent, "did not answer the message"),
        (AfterData::Close, "closed the connection without answering"),
        (AfterData::OneAcceptance, "not even to QUIT"),
        (
            AfterData::OneRefusal,
            "closed the connection before answering QUIT",
        ),
    ] {
        let fake = Fake::start(after);
        let run = audit_fake(&fake, &["--smuggling-to", "bob@fake.example"]);
        assert_eq!(run.code, 1, "{after:?}: {}", run.all());
        for (index, id) in IDS.iter().enumerate() {
            let line = run.line(id);
            let wanted = if index == 2 { "WARN" } else { "FAIL" };
            assert!(
                line.starts_with(wanted) && line.contains("is unknown") && line.contains(said),
                "{after:?}: {}",
                run.all()
            );
        }
        let run = audit_fake(&fake, &["--smuggling-to", "bob@fake.example", "--json"]);
        let json = run.json();
        let variants = json["smuggling"]["variants"].as_array().expect("variants");
        assert_eq!(variants.len(), 4, "{json}");
        for variant in variants {
            assert_eq!(variant["outcome"], "inconclusive", "{after:?}: {variant}");
            assert_eq!(variant["ended_message"], Value::Null, "{variant}");
        }
    }
}

#[test]
fn the_probe_sends_mail_only_when_asked_and_never_authenticates() {
    let fake = Fake::start(AfterData::Honest);
    let run = audit_fake(&fake, &[]);
    assert!(!run.stdout.contains("smuggling"), "{}", run.all());
    let sessions = fake.sessions();
    assert!(!sessions.is_empty(), "{}", run.all());
    assert!(
        sessions.iter().flatten().all(|l| !l.starts_with("DATA")),
        "no message without --smuggling-to: {sessions:#?}"
    );

    let fake = Fake::start(AfterData::Honest);
    let run = audit_fake(&fake, &["--smuggling-to", "<bob@fake.example>"]);
    for id in IDS {
        assert!(run.line(id).starts_with("PASS"), "{}", run.all());
    }
    let sessions = fake.sessions();
    let probing: Vec<&Vec<String>> = sessions
        .iter()
        .filter(|s| s.iter().any(|l| l == "DATA"))
        .collect();
    assert_eq!(probing.len(), 4, "one session per sequence: {sessions:#?}");
    for session in probing {
        assert!(
            session
                .iter()
                .all(|l| !l.to_ascii_uppercase().starts_with("AUTH")),
            "AUTH in a probe session: {session:#?}"
        );
        assert!(
            session.contains(&"MAIL FROM:<>".to_owned())
                && session.contains(&"RCPT TO:<bob@fake.example>".to_owned()),
            "{session:#?}"
        );
    }
}

#[test]
fn a_malformed_address_is_a_usage_error_before_anything_is_sent() {
    let fake = Fake::start(AfterData::Honest);
    for bad in [
        "bob",
        "bob@",
        "bob smith@fake.example",
        "bob@fake.example\r\nRCPT TO:<eve@evil.example>",
    ] {
        let run = audit_fake(&fake, &["--smuggling-to", bad]);
        assert_eq!(run.code, 2, "{bad:?}: {}", run.all());
        assert!(
            run.stderr.contains("--smuggling-to") && run.stderr.contains("user@example.com"),
            "{bad:?}: {}",
            run.stderr
        );
    }
    assert!(fake.sessions().is_empty(), "{:#?}", fake.sessions());
}
