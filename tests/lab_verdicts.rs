//! The lab's verdicts against real clients: swaks (with `--tls-optional` it falls for the
//! attacker profiles, with `--tls` it does not), Python's smtplib, openssl s_client and
//! smtptui itself. Each verdict line must say what the client really did, as the server saw it,
//! and never show a credential.

#![allow(clippy::panic)] // panicking is how a test fails

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use smtptui::lab::accounts::{DEFAULT_PASSWORD, DEFAULT_USER};
use smtptui::lab::{Lab, LabConfig, Profile, verdict};

/// Hard limit on one run of a client.
const PROCESS_DEADLINE: Duration = Duration::from_secs(60);

struct TestLab {
    lab: Lab,
    log: Arc<Mutex<Vec<String>>>,
    dir: tempfile::TempDir,
}

impl TestLab {
    async fn start(profiles: &[Profile], adjust: impl FnOnce(&mut LabConfig)) -> TestLab {
        let dir = tempfile::tempdir().expect("tempdir");
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut config = LabConfig::ephemeral(profiles.to_vec());
        let sink = log.clone();
        config.log = Arc::new(move |line| sink.lock().expect("log").push(line.to_owned()));
        config.state_dir = Some(dir.path().join("state"));
        config.command_timeout = Duration::from_secs(20);
        config.error_sleep = Duration::ZERO;
        adjust(&mut config);
        let lab = Lab::start(config).await.expect("lab starts");
        TestLab { lab, log, dir }
    }

    fn port(&self, profile: Profile) -> String {
        self.lab
            .addr(profile)
            .expect("profile runs")
            .port()
            .to_string()
    }

    fn ca(&self) -> String {
        self.lab.ca_file().display().to_string()
    }

    fn log_text(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    /// The verdict line of the session the lab numbered `session` on `profile`, waiting
    /// (bounded) for the session to end.
    async fn verdict(&self, profile: Profile, session: usize) -> String {
        let prefix = format!("{}#{session} VERDICT ", profile.name());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(line) = self
                .log
                .lock()
                .expect("log")
                .iter()
                .find_map(|line| line.split_once(&prefix).map(|(_, v)| v.to_owned()))
            {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no verdict for {prefix}in\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// No credential, in any form a client sends it, appears in the log.
    fn assert_no_credentials_logged(&self) {
        let log = self.log_text();
        for form in [
            DEFAULT_PASSWORD.to_owned(),
            BASE64.encode(DEFAULT_PASSWORD),
            BASE64.encode(format!("\0{DEFAULT_USER}\0{DEFAULT_PASSWORD}")),
        ] {
            assert!(!log.contains(&form), "{form} in\n{log}");
        }
    }
}

struct Ran {
    code: Option<i32>,
    out: String,
}

/// Runs a client with no input and a hard deadline, off the async runtime's threads.
async fn run_process(mut command: Command) -> Ran {
    tokio::task::spawn_blocking(move || {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
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
            if let Some(status) = child.try_wait().expect("wait") {
                break status.code();
            }
            if started.elapsed() > PROCESS_DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ran {
            code,
            out: format!(
                "{}{}",
                out.join().unwrap_or_default(),
                err.join().unwrap_or_default()
            ),
        }
    })
    .await
    .expect("process thread")
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
            "{program} is required on CI (scripts/postfix-env.sh installs swaks)"
        );
        eprintln!("note: {program} not installed; skipping");
    }
    found
}

/// swaks with AUTH LOGIN and the workshop account (a lab password on a test's command line is
/// harmless; the tool under test never takes one there).
fn swaks(port: &str, tls: &str, password: &str) -> Command {
    let mut command = Command::new("swaks");
    command.args([
        "--server",
        "127.0.0.1",
        "--port",
        port,
        tls,
        "--auth",
        "LOGIN",
        "--auth-user",
        DEFAULT_USER,
        "--auth-password",
        password,
        "--from",
        DEFAULT_USER,
        "--to",
        "bob@lab.test",
        "--timeout",
        "20",
    ]);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_with_tls_optional_falls_for_each_attack_and_the_verdict_says_how() {
    if !have("swaks") {
        return;
    }
    let lab = TestLab::start(
        &[Profile::Strip, Profile::RefuseTls, Profile::Inject],
        |_| {},
    )
    .await;
    let ran = run_process(swaks(
        &lab.port(Profile::Strip),
        "--tls-optional",
        DEFAULT_PASSWORD,
    ))
    .await;
    assert_eq!(ran.code, Some(0), "{}", ran.out);
    assert_eq!(
        lab.verdict(Profile::Strip, 1).await,
        "!! ATTACK WORKED: sent valid credentials for student@lab.test in cleartext (AUTH LOGIN) \
         to the strip profile; sent 1 message(s) in cleartext"
    );
    let ran = run_process(swaks(
        &lab.port(Profile::RefuseTls),
        "--tls-optional",
        "a wrong password",
    ))
    .await;
    assert!(ran.out.contains("454 4.7.0"), "{}", ran.out);
    assert_eq!(
        lab.verdict(Profile::RefuseTls, 2).await,
        "!! ATTACK WORKED: sent credentials in cleartext (AUTH LOGIN) to the refuse-tls profile; \
         they were not valid; continued in cleartext after the refused STARTTLS (AUTH)"
    );
    // swaks reads the forged reply out of its buffer as the answer to its EHLO inside TLS,
    // and sends AUTH at once.
    let ran = run_process(swaks(
        &lab.port(Profile::Inject),
        "--tls-optional",
        DEFAULT_PASSWORD,
    ))
    .await;
    assert!(
        ran.out.contains("<~* 250-lab.test") || ran.out.contains("<~  250-lab.test"),
        "{}",
        ran.out
    );
    assert_eq!(
        lab.verdict(Profile::Inject, 3).await,
        "!! ATTACK WORKED: believed the injected reply: sent AUTH inside TLS before the real \
         reply to its EHLO"
    );
    lab.assert_no_credentials_logged();
    let log = lab.log_text();
    assert!(log.contains("refuse-tls#2 plain C: AUTH LOGIN"), "{log}");
    assert!(log.contains("inject#3 tls   C: AUTH LOGIN"), "{log}");
    // Each attack's lesson follows its verdict, for the projector.
    for (session, lesson) in [
        ("strip#1", verdict::LESSON_STRIP),
        ("refuse-tls#2", verdict::LESSON_REFUSE),
        ("inject#3", verdict::LESSON_INJECT),
    ] {
        assert!(
            log.contains(&format!("{session} LESSON: {lesson}")),
            "no lesson for {session} in\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_requiring_tls_gives_nothing_away_and_the_verdict_says_so() {
    if !have("swaks") {
        return;
    }
    let lab = TestLab::start(&[Profile::Strip, Profile::RefuseTls], |_| {}).await;
    let ran = run_process(swaks(&lab.port(Profile::Strip), "--tls", DEFAULT_PASSWORD)).await;
    assert_ne!(ran.code, Some(0), "{}", ran.out);
    assert_eq!(
        lab.verdict(Profile::Strip, 1).await,
        "ok: sent no credentials and no mail"
    );
    let ran = run_process(swaks(
        &lab.port(Profile::RefuseTls),
        "--tls",
        DEFAULT_PASSWORD,
    ))
    .await;
    assert_ne!(ran.code, Some(0), "{}", ran.out);
    assert_eq!(
        lab.verdict(Profile::RefuseTls, 2).await,
        "ok: gave up after the refused STARTTLS, as a client should"
    );
    // Nothing to learn from a client that did right: no lesson line.
    assert!(!lab.log_text().contains("LESSON"), "{}", lab.log_text());
}

const SMTPLIB: &str = r#"
import smtplib, ssl, sys
port, ca, user, password, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
context = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
try:
    with smtplib.SMTP("localhost", port, timeout=20) as s:
        s.ehlo()
        s.starttls(context=context)
        s.ehlo()
        if mode == "login":
            s.login(user, password)
            s.sendmail(user, ["bob@lab.test"], "Subject: py\r\n\r\nhi\r\n")
        print("python sent")
except Exception as e:
    print("python stopped:", type(e).__name__, e)
"#;

fn smtplib(port: &str, ca: &str, mode: &str) -> Command {
    let mut command = Command::new("python3");
    command.args([
        "-c",
        SMTPLIB,
        port,
        ca,
        DEFAULT_USER,
        DEFAULT_PASSWORD,
        mode,
    ]);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtplib_and_smtptui_resist_the_attacks_and_the_verdicts_say_so() {
    let lab = TestLab::start(
        &[Profile::Inject, Profile::RefuseTls, Profile::Submission],
        |_| {},
    )
    .await;
    // smtplib drops what it buffered before the handshake and waits for the real reply.
    let ran = run_process(smtplib(&lab.port(Profile::Inject), &lab.ca(), "login")).await;
    assert!(ran.out.contains("python sent"), "{}", ran.out);
    assert_eq!(
        lab.verdict(Profile::Inject, 1).await,
        "ok: did not act on the injected reply: waited for the real reply to EHLO inside TLS; \
         used TLS before AUTH (authenticated as student@lab.test) and before any mail; whether \
         it checked the certificate is not visible from the server"
    );
    // A 454 to STARTTLS is an exception in smtplib: nothing more is sent.
    let ran = run_process(smtplib(&lab.port(Profile::RefuseTls), &lab.ca(), "login")).await;
    assert!(ran.out.contains("454"), "{}", ran.out);
    assert_eq!(
        lab.verdict(Profile::RefuseTls, 2).await,
        "ok: gave up after the refused STARTTLS, as a client should"
    );
    // Without the lab's CA, Python refuses the certificate, and says so in a TLS alert.
    let ran = run_process(smtplib(&lab.port(Profile::Submission), "", "login")).await;
    assert!(
        ran.out.contains("python stopped: SSLCertVerificationError"),
        "{}",
        ran.out
    );
    let verdict = lab.verdict(Profile::Submission, 3).await;
    assert!(
        verdict.starts_with("ok: refused the lab's certificate (TLS alert UnknownCA)"),
        "{verdict}"
    );
    // smtptui sees the bytes behind the 220 and hangs up before any handshake.
    let scenario = lab.dir.path().join("inject.smtp");
    std::fs::write(
        &scenario,
        "S: 220\nC: EHLO c\nS: 250\nC: STARTTLS\nS: 220\nC: EHLO c\nS: 250\n",
    )
    .expect("scenario");
    let mut command = Command::new(env!("CARGO_BIN_EXE_smtptui"));
    command.env("NO_COLOR", "1").args([
        "run",
        &scenario.display().to_string(),
        &format!("127.0.0.1:{}", lab.port(Profile::Inject)),
        "--ca-file",
        &lab.ca(),
        "--servername",
        "localhost",
    ]);
    let ran = run_process(command).await;
    assert_eq!(ran.code, Some(3), "{}", ran.out);
    assert!(ran.out.contains("response injection"), "{}", ran.out);
    assert_eq!(
        lab.verdict(Profile::Inject, 4).await,
        "ok: hung up after the 220 instead of starting TLS (what a client that notices the \
         injected bytes does)"
    );
    lab.assert_no_credentials_logged();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_refused_before_tls_still_crossed_the_wire() {
    // A client that sends AUTH PLAIN with its initial response before STARTTLS: submission
    // refuses it with 530, but the password was on the wire all the same.
    let lab = TestLab::start(&[Profile::Submission], |_| {}).await;
    let addr = lab.lab.addr(Profile::Submission).expect("runs");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let plain = BASE64.encode(format!("\0{DEFAULT_USER}\0{DEFAULT_PASSWORD}"));
    stream
        .write_all(format!("EHLO c\r\nAUTH PLAIN {plain}\r\nQUIT\r\n").as_bytes())
        .await
        .expect("write");
    let mut seen = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut seen)).await;
    let text = String::from_utf8_lossy(&seen);
    assert!(
        text.contains("530 5.7.0 Must issue a STARTTLS command first"),
        "{text}"
    );
    assert_eq!(
        lab.verdict(Profile::Submission, 1).await,
        "!! DANGER: sent valid credentials for student@lab.test in cleartext (AUTH PLAIN) to the \
         submission profile (the server did not take them, but they had crossed the wire \
         already); sent commands without waiting for the reply to EHLO (improper pipelining)"
    );
    lab.assert_no_credentials_logged();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_marks_each_line_plain_or_tls() {
    let lab = TestLab::start(&[Profile::Submission], |_| {}).await;
    let ran = run_process(smtplib(&lab.port(Profile::Submission), &lab.ca(), "login")).await;
    assert!(ran.out.contains("python sent"), "{}", ran.out);
    lab.verdict(Profile::Submission, 1).await;
    let log = lab.log_text();
    let marks: Vec<&str> = log
        .lines()
        .filter_map(|line| line.split_once("submission#1 "))
        .map(|(_, rest)| rest.get(..8).unwrap_or(rest))
        .collect();
    for expected in ["plain S:", "plain C:", "      ..", "tls   C:", "tls   S:"] {
        assert!(marks.contains(&expected), "{expected:?} missing in\n{log}");
    }
    // Nothing before the handshake is marked tls, nothing after it plain.
    let handshake = log
        .lines()
        .position(|line| line.contains("TLS established"))
        .expect("TLS");
    for (index, line) in log.lines().enumerate() {
        if index < handshake {
            assert!(!line.contains(" tls   "), "{line}");
        } else {
            assert!(!line.contains(" plain "), "{line}");
        }
    }
}

const FAULTS: &str = r#"
import smtplib, sys
port = int(sys.argv[1])
def attempt(rcpt, body="Subject: t\r\n\r\nhi\r\n"):
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
            s.sendmail("a@lab.test", [rcpt], body)
            return "sent"
    except smtplib.SMTPRecipientsRefused as e:
        (code, text), = e.recipients.values()
        return f"refused {code} {text.decode()}"
    except smtplib.SMTPDataError as e:
        return f"data {e.smtp_code} {e.smtp_error.decode()}"
    except smtplib.SMTPServerDisconnected as e:
        return "disconnected"
for rcpt in sys.argv[2:]:
    print(rcpt, "->", attempt(rcpt))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_triggers_and_the_slow_profile_with_a_real_client() {
    let lab = TestLab::start(&[Profile::Mx, Profile::Slow], |config| {
        config.slow.greeting = Duration::from_millis(50);
        config.slow.reply = Duration::from_millis(10);
    })
    .await;
    let mut command = Command::new("python3");
    command.args([
        "-c",
        FAULTS,
        &lab.port(Profile::Mx),
        "rcpt-550-5.1.1@lab.test",
        "rcpt-452@lab.test",
        "data-554@lab.test",
        "greylist@lab.test",
        "greylist@lab.test",
    ]);
    let ran = run_process(command).await;
    let expected = "\
rcpt-550-5.1.1@lab.test -> refused 550 5.1.1 <rcpt-550-5.1.1@lab.test>: Recipient address rejected: User unknown in local recipient table
rcpt-452@lab.test -> refused 452 4.2.2 <rcpt-452@lab.test>: Recipient address rejected: Mailbox full
data-554@lab.test -> data 554 5.7.1 Error: message not accepted: Access denied
greylist@lab.test -> refused 450 4.7.1 <greylist@lab.test>: Recipient address rejected: Greylisted, please try again later
greylist@lab.test -> sent
";
    assert_eq!(ran.out, expected);
    // The slow profile drops the first attempt at the end of the message; the retry goes.
    let mut command = Command::new("python3");
    command.args([
        "-c",
        FAULTS,
        &lab.port(Profile::Slow),
        "bob@lab.test",
        "bob@lab.test",
    ]);
    let ran = run_process(command).await;
    assert_eq!(
        ran.out,
        "bob@lab.test -> disconnected\nbob@lab.test -> sent\n"
    );
    assert_eq!(lab.lab.mail().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cleartext_client_on_the_implicit_port_is_told_what_went_wrong() {
    use tokio::io::AsyncWriteExt as _;
    let lab = TestLab::start(&[Profile::Implicit], |config| {
        config.command_timeout = Duration::from_millis(300);
        config.colour = true;
    })
    .await;
    let addr = lab.lab.addr(Profile::Implicit).expect("runs");
    // Waiting for a greeting that never comes.
    let silent = tokio::net::TcpStream::connect(addr).await.expect("connect");
    lab.verdict(Profile::Implicit, 1).await;
    // Coloured for a terminal: the whole line, so a projector shows it at a glance.
    assert!(
        lab.log_text().contains(
            "\u{1b}[33mimplicit#1 VERDICT !  warning: never started TLS on this implicit-TLS \
             port: a client waiting for a greeting here waits forever (use --tls implicit)\u{1b}[0m"
        ),
        "{}",
        lab.log_text()
    );
    drop(silent);
    // Speaking first, in cleartext.
    let mut talker = tokio::net::TcpStream::connect(addr).await.expect("connect");
    talker.write_all(b"EHLO c\r\n").await.expect("write");
    let verdict = lab.verdict(Profile::Implicit, 2).await;
    assert!(
        verdict.contains("spoke cleartext to an implicit-TLS port (use --tls implicit)"),
        "{verdict}"
    );
    assert!(
        lab.log_text()
            .contains("8 cleartext byte(s) where the TLS handshake should start")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_answers_the_injected_reply_in_cleartext_is_caught() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let lab = TestLab::start(&[Profile::Inject], |_| {}).await;
    let addr = lab.lab.addr(Profile::Inject).expect("runs");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    for (send, until) in [
        (&b""[..], "220 lab.test"),
        (b"EHLO c\r\n", "250 CHUNKING"),
        (b"STARTTLS\r\n", "250 8BITMIME"),
    ] {
        stream.write_all(send).await.expect("write");
        while !String::from_utf8_lossy(&seen).contains(until) {
            let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buffer))
                .await
                .expect("in time")
                .expect("read");
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buffer[..n]);
        }
    }
    // The forged reply offered AUTH: a naive client takes it and sends its credentials,
    // still in cleartext, where the TLS handshake should be.
    let plain = BASE64.encode(format!("\0{DEFAULT_USER}\0{DEFAULT_PASSWORD}"));
    stream
        .write_all(format!("AUTH PLAIN {plain}\r\n").as_bytes())
        .await
        .expect("write");
    assert_eq!(
        lab.verdict(Profile::Inject, 1).await,
        "!! ATTACK WORKED: sent valid credentials for student@lab.test in cleartext (AUTH PLAIN) \
         to the inject profile (the server did not take them, but they had crossed the wire \
         already); believed the injected bytes: sent its next command in cleartext \
         after the 220 instead of starting TLS"
    );
    let log = lab.log_text();
    assert!(
        log.contains("cleartext byte(s) after STARTTLS discarded: AUTH PLAIN <credentials hidden>"),
        "{log}"
    );
    lab.assert_no_credentials_logged();
}
