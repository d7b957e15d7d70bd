//! The practice server (`smtptui lab`, `smtptui demo`) checked from the outside: with the
//! project's own engine and binary, with independent clients (Python's smtplib, swaks), under
//! load, and against hostile clients. Every lab listens on 127.0.0.1 port 0; every wait is
//! bounded so a broken server fails a test instead of hanging it.

#![allow(clippy::panic)] // panicking is how a test fails

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smtptui::guard::GuardPolicy;
use smtptui::lab::accounts::{DEFAULT_PASSWORD, DEFAULT_USER};
use smtptui::lab::{Lab, LabConfig, Profile};
use smtptui::proto::reply::ReplyLimits;
use smtptui::runner::{self, Outcome};
use smtptui::scenario::Scenario;
use smtptui::secret::{Credentials, Secret};
use smtptui::session::{SessionConfig, TlsMode};
use smtptui::tls::TrustSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Hard limit on one run of the binary or of a Python client.
const PROCESS_DEADLINE: Duration = Duration::from_secs(60);

/// A lab for one test, with its log captured and its CA written into a temp dir.
struct TestLab {
    lab: Lab,
    log: Arc<Mutex<Vec<String>>>,
    dir: tempfile::TempDir,
}

impl TestLab {
    async fn start(profiles: &[Profile]) -> TestLab {
        Self::start_with(profiles, |_| {}).await
    }

    async fn start_with(profiles: &[Profile], adjust: impl FnOnce(&mut LabConfig)) -> TestLab {
        let dir = tempfile::tempdir().expect("tempdir");
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut config = LabConfig::ephemeral(profiles.to_vec());
        let sink = log.clone();
        config.log = Arc::new(move |line| sink.lock().expect("log").push(line.to_owned()));
        config.state_dir = Some(dir.path().join("state"));
        config.error_sleep = Duration::ZERO;
        config.command_timeout = Duration::from_secs(20);
        adjust(&mut config);
        let lab = Lab::start(config).await.expect("lab starts");
        TestLab { lab, log, dir }
    }

    fn addr(&self, profile: Profile) -> std::net::SocketAddr {
        self.lab.addr(profile).expect("profile runs")
    }

    fn target(&self, profile: Profile) -> String {
        self.addr(profile).to_string()
    }

    fn ca(&self) -> String {
        self.lab.ca_file().display().to_string()
    }

    fn password_file(&self) -> PathBuf {
        let path = self.dir.path().join("password");
        std::fs::write(&path, format!("{DEFAULT_PASSWORD}\n")).expect("password file");
        path
    }

    fn log_text(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    fn config(&self, profile: Profile) -> SessionConfig {
        let addr = self.addr(profile);
        SessionConfig {
            host: addr.ip().to_string(),
            port: addr.port(),
            tls_mode: if profile == Profile::Implicit {
                TlsMode::Implicit
            } else {
                TlsMode::StartTls
            },
            server_name: "localhost".to_owned(),
            trust: TrustSettings {
                extra_roots: vec![self.lab.ca_der().clone()],
                continue_unverified: false,
                client_identity: None,
                roots: Default::default(),
            },
            policy: GuardPolicy::default(),
            timeout: Duration::from_secs(20),
            limits: ReplyLimits::default(),
            unasked: smtptui::session::UnaskedReplies::Fatal,
            known_secrets: Vec::new(),
            sasl: Default::default(),
            transport: Default::default(),
        }
    }
}

fn credentials() -> Credentials {
    Credentials {
        user: DEFAULT_USER.to_owned(),
        secret: Secret::new(DEFAULT_PASSWORD.to_owned()),
    }
}

async fn engine_run(config: SessionConfig, scenario: &str) -> Outcome {
    let scenario = Scenario::parse("test.smtp", scenario).expect("scenario parses");
    runner::run(&scenario, config, Some(credentials()), Box::new(|_| {})).await
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs a program with a hard deadline (killed after it), off the async runtime's threads.
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
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
        }
    })
    .await
    .expect("process thread")
}

fn smtptui(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_smtptui"));
    command.args(args).env("NO_COLOR", "1");
    command
}

fn asset(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets")
        .join(name)
        .display()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Each profile, checked with the project's own binary and engine
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submission_asset_passes_with_the_binary() {
    let lab = TestLab::start(&[Profile::Submission]).await;
    let password = lab.password_file();
    let ran = run_process(smtptui(&[
        "run",
        &asset("submission-starttls.smtp"),
        &lab.target(Profile::Submission),
        "--ca-file",
        &lab.ca(),
        "--servername",
        "localhost",
        "--user",
        DEFAULT_USER,
        "--password-file",
        &password.display().to_string(),
    ]))
    .await;
    assert_eq!(ran.code, Some(0), "{}\n{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.contains("certificate verified for localhost"));
    let messages = lab.lab.mail().messages();
    assert_eq!(messages.len(), 1);
    let text = String::from_utf8_lossy(&messages[0].data);
    assert!(
        text.contains("\r\n.this line starts with a dot"),
        "dot-stuffing reversed: {text}"
    );
    assert!(!lab.log_text().contains(DEFAULT_PASSWORD));
    assert!(
        lab.log_text().contains("AUTH PLAIN <credentials hidden>")
            || lab.log_text().contains("<SASL answer hidden>")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mx_and_implicit_assets_pass() {
    let lab = TestLab::start(&[Profile::Mx, Profile::Implicit]).await;
    let password = lab.password_file();
    let ran = run_process(smtptui(&[
        "run",
        &asset("mx-starttls.smtp"),
        &lab.target(Profile::Mx),
        "--ca-file",
        &lab.ca(),
        "--servername",
        "localhost",
    ]))
    .await;
    assert_eq!(ran.code, Some(0), "{}\n{}", ran.stdout, ran.stderr);
    let ran = run_process(smtptui(&[
        "run",
        &asset("implicit-tls.smtp"),
        &lab.target(Profile::Implicit),
        "--tls",
        "implicit",
        "--ca-file",
        &lab.ca(),
        "--servername",
        "localhost",
        "--user",
        DEFAULT_USER,
        "--password-file",
        &password.display().to_string(),
    ]))
    .await;
    assert_eq!(ran.code, Some(0), "{}\n{}", ran.stdout, ran.stderr);
    assert_eq!(lab.lab.mail().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_answer_as_specified_with_the_engine() {
    let lab = TestLab::start(&[Profile::Submission, Profile::Mx, Profile::Legacy]).await;
    // submission: 530 before TLS for MAIL (AUTH is not even advertised).
    let outcome = engine_run(
        lab.config(Profile::Submission),
        "S: 220 lab.test ESMTP\nC: EHLO c\nS: 250 STARTTLS\nC: MAIL FROM:<a@lab.test>\n\
         S: 530 5.7.0 Must issue a STARTTLS command first\nC: QUIT\nS: 221 2.0.0 Bye\n",
    )
    .await;
    assert!(
        matches!(outcome, Outcome::Passed { checked: 4 }),
        "{outcome:?}"
    );
    // mx: relay denied, local mail accepted, no AUTH after TLS either.
    let outcome = engine_run(
        lab.config(Profile::Mx),
        "S: 220\nC: EHLO c\nS: 250\nC: STARTTLS\nS: 220\nC: EHLO c\nS: 250 8BITMIME\n\
         C: AUTH LOGIN\nS: 503 5.5.1 Error: authentication not enabled\n\
         C: MAIL FROM:<a@example.org>\nS: 250 2.1.0 Ok\n\
         C: RCPT TO:<x@example.com>\nS: 554 5.7.1 <x@example.com>: Relay access denied\n\
         C: RCPT TO:<bob@lab.test>\nS: 250 2.1.5 Ok\nC: STARTTLS\n",
    )
    .await;
    // The final STARTTLS is refused by the engine itself (TLS already active): a failure.
    assert!(matches!(outcome, Outcome::Failure { .. }), "{outcome:?}");
    // legacy: AUTH accepted in cleartext when the user explicitly allows it.
    let mut config = lab.config(Profile::Legacy);
    config.policy.allow_cleartext_auth = true;
    let outcome = engine_run(
        config,
        "S: 220\nC: EHLO c\nS: 250 AUTH PLAIN LOGIN\nC: AUTH PLAIN\nS: 235 2.7.0 Authentication successful\n\
         C: AUTH PLAIN\nS: 503 5.5.1 Error: already authenticated\nC: QUIT\nS: 221\n",
    )
    .await;
    assert!(matches!(outcome, Outcome::Passed { .. }), "{outcome:?}");
}

// ---------------------------------------------------------------------------------------------
// The attacker profiles make `smtptui run` fail safely
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacker_profiles_make_run_fail() {
    let lab = TestLab::start(&[Profile::Inject, Profile::Strip, Profile::RefuseTls]).await;
    let password = lab.password_file();
    let password = password.display().to_string();
    let ca = lab.ca();
    let common = |scenario: String, target: String| {
        smtptui(&[
            "run",
            &scenario,
            &target,
            "--ca-file",
            &ca,
            "--servername",
            "localhost",
            "--user",
            DEFAULT_USER,
            "--password-file",
            &password,
        ])
    };

    let ran = run_process(common(
        asset("submission-starttls.smtp"),
        lab.target(Profile::Inject),
    ))
    .await;
    assert_eq!(ran.code, Some(3), "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        format!("{}{}", ran.stdout, ran.stderr).contains("response injection"),
        "{}",
        ran.stdout
    );

    let strip = lab.dir.path().join("strip.smtp");
    std::fs::write(
        &strip,
        "S: 220\nC: EHLO c\nS: 250 AUTH\nC: AUTH PLAIN\nS: 235\n",
    )
    .expect("write");
    let ran = run_process(common(
        strip.display().to_string(),
        lab.target(Profile::Strip),
    ))
    .await;
    assert_eq!(ran.code, Some(4), "{}\n{}", ran.stdout, ran.stderr);

    let ran = run_process(common(
        asset("mx-starttls.smtp"),
        lab.target(Profile::RefuseTls),
    ))
    .await;
    assert_eq!(ran.code, Some(3), "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        ran.stdout
            .contains("454 4.7.0 TLS not available due to local problem")
    );

    // No credential crossed: the strip session's log has EHLO but no AUTH at all. Every
    // session has ended once the three verdicts are in.
    let deadline = Instant::now() + Duration::from_secs(20);
    while lab.log_text().matches(" VERDICT ").count() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = lab.log_text();
    assert!(log.contains("strip#") && !log.contains("C: AUTH"), "{log}");
    assert!(!log.contains(DEFAULT_PASSWORD));
    assert!(log.contains("injected in the same write"), "{log}");
    // The verdicts: smtptui fell for none of them.
    for (profile, verdict) in [
        (
            "inject",
            "VERDICT ok: hung up after the 220 instead of starting TLS",
        ),
        ("strip", "VERDICT ok: sent no credentials and no mail"),
        (
            "refuse-tls",
            "VERDICT ok: gave up after the refused STARTTLS, as a client should",
        ),
    ] {
        assert!(
            log.lines()
                .any(|line| line.contains(&format!("{profile}#")) && line.contains(verdict)),
            "{profile}: {verdict:?} missing in\n{log}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Independent clients
// ---------------------------------------------------------------------------------------------

const PYTHON_CLIENT: &str = r#"
import smtplib, ssl, sys
port, implicit_port, ca, user, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
context = ssl.create_default_context(cafile=ca)
with smtplib.SMTP("localhost", port, timeout=20) as s:
    s.ehlo()
    assert s.has_extn("starttls") and not s.has_extn("auth"), s.esmtp_features
    try:
        s.login(user, password)
        raise SystemExit("login before STARTTLS must not be possible")
    except smtplib.SMTPNotSupportedError:
        pass
    code, text = s.mail("a@lab.test")
    assert code == 530 and b"Must issue a STARTTLS command first" in text, (code, text)
    s.starttls(context=context)
    s.ehlo()
    assert s.has_extn("auth"), s.esmtp_features
    try:
        s.login(user, "wrong password")
        raise SystemExit("a wrong password must fail")
    except smtplib.SMTPAuthenticationError as e:
        assert e.smtp_code == 535, e
    s.login(user, password)
    refused = s.sendmail(user, ["friend@example.com"], "Subject: py\r\n\r\n.dot\r\nbody\r\n")
    assert refused == {}, refused
with smtplib.SMTP_SSL("localhost", implicit_port, context=context, timeout=20) as s:
    s.login(user, password)
    s.sendmail(user, ["bob@lab.test"], "Subject: implicit\r\n\r\nhi\r\n")
print("python ok")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_smtplib_submits_over_starttls_and_implicit_tls() {
    let lab = TestLab::start(&[Profile::Submission, Profile::Implicit]).await;
    let mut command = Command::new("python3");
    command.args([
        "-c",
        PYTHON_CLIENT,
        &lab.addr(Profile::Submission).port().to_string(),
        &lab.addr(Profile::Implicit).port().to_string(),
        &lab.ca(),
        DEFAULT_USER,
        DEFAULT_PASSWORD,
    ]);
    let ran = run_process(command).await;
    assert_eq!(ran.code, Some(0), "{}\n{}", ran.stdout, ran.stderr);
    let messages = lab.lab.mail().messages();
    assert_eq!(messages.len(), 2, "{}", lab.log_text());
    assert!(String::from_utf8_lossy(&messages[0].data).contains("\r\n.dot\r\n"));
    assert!(
        messages
            .iter()
            .all(|m| m.tls && m.authenticated_as.as_deref() == Some(DEFAULT_USER))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_submits_with_verified_starttls() {
    let found = Command::new("sh")
        .args(["-c", "command -v swaks"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "swaks is required on CI (scripts/postfix-env.sh installs it)"
        );
        eprintln!("note: swaks not installed; skipping the swaks case");
        return;
    }
    let lab = TestLab::start(&[Profile::Submission]).await;
    let mut command = Command::new("swaks");
    command.args([
        "--server",
        "localhost",
        "--port",
        &lab.addr(Profile::Submission).port().to_string(),
        "--tls",
        "--tls-verify",
        "--tls-ca-path",
        &lab.ca(),
        "--auth",
        "LOGIN",
        "--auth-user",
        DEFAULT_USER,
        // A lab password on swaks' command line in a test is harmless; the tool under test
        // never takes one there.
        "--auth-password",
        DEFAULT_PASSWORD,
        "--from",
        DEFAULT_USER,
        "--to",
        "friend@example.com",
        "--timeout",
        "20",
    ]);
    let ran = run_process(command).await;
    assert_eq!(ran.code, Some(0), "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        ran.stdout.contains("235 2.7.0 Authentication successful"),
        "{}",
        ran.stdout
    );
    assert_eq!(lab.lab.mail().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------------------------

const FULL_SESSION: &str = "S: 220\nC: EHLO load\nS: 250 STARTTLS\nC: STARTTLS\nS: 220\n\
C: EHLO load\nS: 250 AUTH\nC: AUTH PLAIN\nS: 235\nC: MAIL FROM:<student@lab.test>\nS: 250\n\
C: RCPT TO:<bob@lab.test>\nS: 250\nC: DATA\nS: 354\nC: Subject: load\nC:\nC: hello\nC: .\n\
S: 250\nC: QUIT\nS: 221\n";

/// Runs `total` full sessions, `concurrency` at a time; returns how many passed.
async fn full_sessions(lab: &TestLab, total: usize, concurrency: usize) -> usize {
    let scenario = Arc::new(Scenario::parse("load.smtp", FULL_SESSION).expect("parses"));
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..total {
        let config = lab.config(Profile::Submission);
        let scenario = scenario.clone();
        let slots = slots.clone();
        tasks.spawn(async move {
            let _permit = slots.acquire_owned().await.expect("semaphore");
            runner::run(&scenario, config, Some(credentials()), Box::new(|_| {})).await
        });
    }
    let mut passed = 0;
    while let Some(outcome) = tasks.join_next().await {
        match outcome.expect("task") {
            Outcome::Passed { .. } => passed += 1,
            other => eprintln!("session failed: {other:?}"),
        }
    }
    passed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_sessions_all_succeed() {
    let lab = TestLab::start_with(&[Profile::Submission], |c| c.log_sessions = false).await;
    let passed = tokio::time::timeout(Duration::from_secs(180), full_sessions(&lab, 200, 200))
        .await
        .expect("200 sessions finish well within the deadline");
    assert_eq!(passed, 200);
    assert_eq!(
        lab.lab.mail().len(),
        100,
        "the store keeps only the newest 100"
    );
    assert_eq!(lab.log_text().matches(": queued ").count(), 200);
}

/// Throughput: `cargo test --release --test lab -- --ignored --nocapture throughput`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "measurement, not a check"]
async fn throughput() {
    let lab = TestLab::start_with(&[Profile::Submission], |c| c.log_sessions = false).await;
    let total = 2000;
    let started = Instant::now();
    let passed = full_sessions(&lab, total, 64).await;
    let elapsed = started.elapsed();
    assert_eq!(passed, total);
    println!(
        "{total} full sessions (STARTTLS, AUTH, one message) in {:.2} s: {:.0} sessions/s \
         (client and server in one process)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile clients
// ---------------------------------------------------------------------------------------------

/// Reads until `needle` appears or the connection ends; everything read.
async fn read_until(stream: &mut TcpStream, needle: &str) -> String {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(20);
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => seen.extend_from_slice(&buffer[..n]),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_do_not_hurt_the_lab() {
    let lab = TestLab::start_with(&[Profile::Submission, Profile::Mx], |c| {
        c.command_timeout = Duration::from_millis(500);
    })
    .await;
    let mx = lab.addr(Profile::Mx);

    // Overlong command line: cut at 2048 bytes as Postfix cuts it, the rest skipped, and the
    // session goes on.
    let mut s = TcpStream::connect(mx).await.expect("connect");
    read_until(&mut s, "220 ").await;
    let mut long = vec![b'A'; 5000];
    long.extend_from_slice(b"\r\nNOOP\r\n");
    s.write_all(&long).await.expect("write");
    let text = read_until(&mut s, "250 2.0.0 Ok").await;
    assert_eq!(
        text,
        "500 5.5.2 Error: command not recognized\r\n250 2.0.0 Ok\r\n"
    );

    // Binary junk: answered, then closed. With SMTPUTF8 on (the default) each line that is
    // not UTF-8 is refused until the error limit closes the session, as Postfix with
    // smtputf8_enable=yes does; without it Postfix says goodbye to a command that does not
    // start with a letter.
    let mut s = TcpStream::connect(mx).await.expect("connect");
    read_until(&mut s, "220 ").await;
    let junk: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let _ = s.write_all(&junk).await;
    let text = read_until(&mut s, "\u{0}never").await;
    assert!(
        text.contains("500 5.5.2 Error: bad UTF-8 syntax")
            && text.contains("421 4.7.0 lab.test Error: too many errors"),
        "{text}"
    );

    // Unknown commands: closed after too many errors.
    let mut s = TcpStream::connect(mx).await.expect("connect");
    read_until(&mut s, "220 ").await;
    s.write_all("FOO\r\n".repeat(30).as_bytes())
        .await
        .expect("write");
    let text = read_until(&mut s, "too many errors").await;
    assert!(
        text.contains("421 4.7.0 lab.test Error: too many errors"),
        "{text}"
    );

    // A client that never sends: 421 after the (short) command timeout, then closed.
    let mut s = TcpStream::connect(mx).await.expect("connect");
    let text = read_until(&mut s, "timeout exceeded").await;
    assert!(
        text.contains("421 4.4.2 lab.test Error: timeout exceeded"),
        "{text}"
    );
    let mut rest = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(5), s.read(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "closed after the 421"
    );

    // Disconnecting mid-DATA: nothing is queued.
    let mut s = TcpStream::connect(mx).await.expect("connect");
    read_until(&mut s, "220 ").await;
    s.write_all(b"EHLO c\r\nMAIL FROM:<a@lab.test>\r\nRCPT TO:<b@lab.test>\r\nDATA\r\n")
        .await
        .expect("write");
    read_until(&mut s, "354 ").await;
    s.write_all(b"Subject: cut\r\n\r\nhalf a mess")
        .await
        .expect("write");
    drop(s);

    // A TLS handshake with garbage after STARTTLS.
    let mut s = TcpStream::connect(lab.addr(Profile::Submission))
        .await
        .expect("connect");
    read_until(&mut s, "220 ").await;
    s.write_all(b"EHLO c\r\nSTARTTLS\r\n").await.expect("write");
    read_until(&mut s, "Ready to start TLS").await;
    let _ = s.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3]).await;
    drop(s);

    // The lab still serves a normal session on both listeners, and queued nothing so far.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(lab.lab.mail().len(), 0);
    let mut config = lab.config(Profile::Submission);
    config.timeout = Duration::from_secs(20);
    let outcome = engine_run(config, FULL_SESSION).await;
    assert!(matches!(outcome, Outcome::Passed { .. }), "{outcome:?}");
    assert_eq!(lab.lab.mail().len(), 1);
    let log = lab.log_text();
    assert!(
        log.contains("<cut at 2048 bytes, the rest skipped>"),
        "{log}"
    );
}

// ---------------------------------------------------------------------------------------------
// Maildir, the binaries
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maildir_gets_each_message_as_a_file() {
    let maildir = tempfile::tempdir().expect("tempdir");
    let path = maildir.path().to_path_buf();
    let lab = TestLab::start_with(&[Profile::Submission], |c| c.maildir = Some(path)).await;
    let outcome = engine_run(lab.config(Profile::Submission), FULL_SESSION).await;
    assert!(matches!(outcome, Outcome::Passed { .. }), "{outcome:?}");
    let files: Vec<_> = std::fs::read_dir(maildir.path().join("new"))
        .expect("new/")
        .collect::<Result<_, _>>()
        .expect("entries");
    assert_eq!(files.len(), 1);
    let content = std::fs::read_to_string(files[0].path()).expect("read");
    assert!(
        content.starts_with("Return-Path: <student@lab.test>\r\nSubject: load\r\n"),
        "{content}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_shows_a_verified_session() {
    let ran = run_process(smtptui(&["demo"])).await;
    assert_eq!(ran.code, Some(0), "{}\n{}", ran.stdout, ran.stderr);
    for needle in [
        "REFUSED",
        "Nothing was sent",
        "certificate verified for localhost",
        "AUTH PLAIN <credentials for student@lab.test hidden>",
        "235 2.7.0 Authentication successful",
        "queued as",
        "PASS submission.smtp",
        // The lab's own log of the refused session: cleartext, and nothing given away.
        "submission#1 plain C: EHLO demo.client",
        "submission#1 VERDICT ok: sent no credentials and no mail",
    ] {
        assert!(
            ran.stdout.contains(needle),
            "missing {needle:?} in\n{}",
            ran.stdout
        );
    }
    assert!(
        !ran.stdout.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
    assert!(
        !ran.stdout.contains(DEFAULT_PASSWORD),
        "the demo never prints the password it uses"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_binary_prints_its_table_serves_and_stops_on_sigint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_smtptui"))
        .args([
            "lab",
            "--profile",
            "mx",
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lab");
    let mut stdout = child.stdout.take().expect("stdout");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut text = String::new();
        let mut byte = [0u8; 1];
        while let Ok(1) = stdout.read(&mut byte) {
            if byte[0] == b'\n' {
                let _ = lines_tx.send(std::mem::take(&mut text));
            } else {
                text.push(byte[0] as char);
            }
        }
    });
    let mut addr = None;
    let mut table = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while addr.is_none() && Instant::now() < deadline {
        if let Ok(line) = lines_rx.recv_timeout(Duration::from_millis(200)) {
            table.push_str(&line);
            table.push('\n');
            if let Some(rest) = line.strip_prefix("mx ") {
                addr = rest.split_whitespace().next().map(str::to_owned);
            }
        }
    }
    if addr.is_none() {
        let _ = child.kill();
    }
    let addr = addr.unwrap_or_default();
    assert!(!addr.is_empty(), "no mx row in the table:\n{table}");
    let mut s = TcpStream::connect(&addr).await.expect("connect");
    assert!(
        read_until(&mut s, "220 ")
            .await
            .starts_with("220 lab.test ESMTP")
    );
    s.write_all(b"QUIT\r\n").await.expect("write");
    read_until(&mut s, "221").await;
    // Wait for the table to be complete before stopping.
    while let Ok(line) = lines_rx.recv_timeout(Duration::from_millis(300)) {
        table.push_str(&line);
        table.push('\n');
    }
    assert!(table.contains("student@lab.test"), "{table}");
    assert!(
        table.contains(&format!(
            "--ca-file {}",
            dir.path().join("ca.pem").display()
        )),
        "{table}"
    );
    // The workshop account's OAUTHBEARER token, fresh at every start, is printed with it.
    assert!(
        table
            .lines()
            .any(|l| l.trim_start().starts_with("OAUTHBEARER token: lab-token-")),
        "{table}"
    );
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "clean exit on Ctrl-C"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_port_is_reported_clearly() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("addr").to_string();
    let ran = run_process(smtptui(&[
        "lab",
        "--profile",
        "submission",
        "--listen",
        &addr,
    ]))
    .await;
    assert_eq!(ran.code, Some(3), "{}\n{}", ran.stdout, ran.stderr);
    assert!(ran.stderr.contains("the port is busy"), "{}", ran.stderr);
    let ran = run_process(smtptui(&["lab", "--listen", &addr])).await;
    assert_eq!(
        ran.code,
        Some(2),
        "--listen without one profile is a usage error"
    );
    let ran = run_process(smtptui(&["lab", "--profile", "nope"])).await;
    assert_eq!(ran.code, Some(2));
    assert!(ran.stderr.contains("refuse-tls"), "{}", ran.stderr);
}

/// Closing the terminal (SIGHUP) or a polite kill (SIGTERM) stops the lab as Ctrl-C does:
/// exit status 0, and the CA directory it made is gone.
#[test]
fn lab_stops_cleanly_on_hangup_and_terminate() {
    for signal in ["-HUP", "-TERM"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_smtptui"))
            .args([
                "lab",
                "--profile",
                "mx",
                "--listen",
                "127.0.0.1:0",
                "--quiet",
            ])
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
                // The table names the CA file it wrote: the first word ending in ca.pem.
                let ca = all.split_whitespace().find(|word| word.ends_with("ca.pem"));
                if let Some(ca) = ca {
                    let _ = tx.send(ca.to_owned());
                    return;
                }
            }
        });
        let ca = rx.recv_timeout(Duration::from_secs(30));
        let Ok(ca) = ca else {
            let _ = child.kill();
            panic!("the lab never printed its CA path");
        };
        let dir = std::path::PathBuf::from(&ca)
            .parent()
            .map(std::path::Path::to_path_buf)
            .expect("a directory");
        assert!(dir.exists(), "{}", dir.display());
        let killed = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the lab did not stop on {signal}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "{signal}: {status:?}");
        assert!(!dir.exists(), "{signal} left {} behind", dir.display());
    }
}

/// The token the lab of [`mechanisms_lab`] gives the workshop account.
const LAB_TOKEN: &str = "lab-token-for-this-test-0123456789";

/// A lab whose workshop account has [`LAB_TOKEN`] for OAUTHBEARER.
async fn mechanisms_lab() -> TestLab {
    TestLab::start_with(&[Profile::Submission, Profile::Legacy], |config| {
        config
            .accounts
            .insert_token(DEFAULT_USER, Secret::new(LAB_TOKEN.to_owned()));
    })
    .await
}

/// Waits (bounded) until the lab's log holds `count` verdicts.
async fn verdicts(lab: &TestLab, count: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    while lab.log_text().matches(" VERDICT ").count() < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    lab.log_text()
}

/// CRAM-MD5 and OAUTHBEARER on the submission profile, through the binary: each logs in
/// with the workshop account inside verified TLS, and a wrong token gets the lab's JSON error
/// challenge, shown decoded and answered with %x01.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lab_teaches_cram_md5_and_oauthbearer_on_submission() {
    let lab = mechanisms_lab().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{LAB_TOKEN}\n")).expect("token file");
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "lab-token-wrong\n").expect("wrong token file");
    let password = lab.password_file();
    let scenario = |mechanism: &str, expect: &str| {
        let path = dir.path().join(format!("{mechanism}-{expect}.smtp"));
        std::fs::write(
            &path,
            format!(
                "S: 220\nC: EHLO client.example\nS: 250\nC: STARTTLS\nS: 220\n\
                 C: EHLO client.example\nS: 250 {mechanism}\nC: AUTH {mechanism}\nS: {expect}\n\
                 C: QUIT\nS: 221\n"
            ),
        )
        .expect("scenario");
        path.display().to_string()
    };
    let target = lab.target(Profile::Submission);
    let ca = lab.ca();
    let run = |path: String, secret: PathBuf| {
        let secret = secret.display().to_string();
        smtptui(&[
            "run",
            &path,
            &target,
            "--ca-file",
            &ca,
            "--servername",
            "localhost",
            "--user",
            DEFAULT_USER,
            "--password-file",
            &secret,
        ])
    };
    let cram = run_process(run(scenario("CRAM-MD5", "235"), password)).await;
    assert_eq!(cram.code, Some(0), "{}\n{}", cram.stdout, cram.stderr);
    assert!(
        cram.stdout.contains("CRAM-MD5 is obsolete"),
        "{}",
        cram.stdout
    );
    let oauth = run_process(run(scenario("OAUTHBEARER", "235"), token_file)).await;
    assert_eq!(oauth.code, Some(0), "{}\n{}", oauth.stdout, oauth.stderr);
    assert!(!oauth.stdout.contains(LAB_TOKEN), "{}", oauth.stdout);
    let refused = run_process(run(scenario("OAUTHBEARER", "535"), wrong)).await;
    assert_eq!(
        refused.code,
        Some(0),
        "{}\n{}",
        refused.stdout,
        refused.stderr
    );
    for text in [
        r#"decoded: {"status":"invalid_token","scope":"mail"}"#,
        "tls   C: AQ== (%x01",
        "535 5.7.8 Error: authentication failed: invalid token",
    ] {
        assert!(refused.stdout.contains(text), "{text}: {}", refused.stdout);
    }
    let log = verdicts(&lab, 3).await;
    assert_eq!(
        log.matches(".. authenticated as student@lab.test").count(),
        2,
        "{log}"
    );
    assert!(
        !log.contains(LAB_TOKEN),
        "the token in the lab's log: {log}"
    );
}

/// The legacy profile takes OAUTHBEARER in cleartext: a client that overrides the guard
/// gets the verdict that its bearer token crossed the wire readable; without the override
/// nothing of it is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_in_cleartext_on_legacy_is_a_leak_the_lab_shows() {
    let lab = mechanisms_lab().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{LAB_TOKEN}\n")).expect("token file");
    let path = dir.path().join("legacy.smtp");
    std::fs::write(
        &path,
        "S: 220\nC: EHLO client.example\nS: 250 OAUTHBEARER\nC: AUTH OAUTHBEARER\nS: 235\n\
         C: QUIT\nS: 221\n",
    )
    .expect("scenario");
    let (path, token_file) = (path.display().to_string(), token_file.display().to_string());
    let target = lab.target(Profile::Legacy);
    let args = [
        "run",
        path.as_str(),
        target.as_str(),
        "--user",
        DEFAULT_USER,
        "--password-file",
        token_file.as_str(),
    ];
    let guarded = run_process(smtptui(&args)).await;
    assert_eq!(guarded.code, Some(4), "{}", guarded.stdout);
    let mut with_override = args.to_vec();
    with_override.push("--allow-cleartext-auth");
    let leaked = run_process(smtptui(&with_override)).await;
    assert_eq!(leaked.code, Some(0), "{}\n{}", leaked.stdout, leaked.stderr);
    let log = verdicts(&lab, 2).await;
    assert!(
        log.contains("sent no credentials")
            && log.contains(
                "DANGER: sent valid credentials for student@lab.test in cleartext \
                 (AUTH OAUTHBEARER) to the legacy profile"
            )
            && log.contains("bearer token read off the wire"),
        "{log}"
    );
    assert!(!log.contains(LAB_TOKEN), "{log}");
}

/// The submission profile asks for a client certificate in the handshake: with the workshop
/// certificate the lab writes next to its CA, EHLO offers EXTERNAL and `C: AUTH EXTERNAL`
/// logs in as the certificate's account with no secret sent; without one, EXTERNAL is not
/// offered, and smtptui does not send it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submission_takes_external_with_the_workshop_client_certificate() {
    let lab = TestLab::start(&[Profile::Submission]).await;
    let (cert, key) = lab.lab.client_certificate().expect("a client certificate");
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("external.smtp");
    std::fs::write(
        &path,
        "S: 220\nC: EHLO client.example\nS: 250\nC: STARTTLS\nS: 220\n\
         C: EHLO client.example\nS: 250 EXTERNAL\nC: AUTH EXTERNAL\nS: 235\n\
         C: MAIL FROM:<student@lab.test>\nS: 250\nC: RCPT TO:<bob@example.net>\nS: 250\n\
         C: QUIT\nS: 221\n",
    )
    .expect("scenario");
    let path = path.display().to_string();
    let (target, ca) = (lab.target(Profile::Submission), lab.ca());
    let base = [
        "run",
        path.as_str(),
        target.as_str(),
        "--ca-file",
        ca.as_str(),
        "--servername",
        "localhost",
    ];
    let mut with_cert = base.to_vec();
    with_cert.extend(["--cert", cert.as_str(), "--key", key.as_str()]);
    let ran = run_process(smtptui(&with_cert)).await;
    assert_eq!(ran.code, Some(0), "{}\n{}", ran.stdout, ran.stderr);
    for text in [
        "the server asked for a client certificate: presented CN=student@lab.test",
        "tls   C: AUTH EXTERNAL =",
        "235 2.7.0 Authentication successful",
        "EXTERNAL sends no secret",
    ] {
        assert!(ran.stdout.contains(text), "{text}: {}", ran.stdout);
    }
    assert!(
        !ran.stdout.contains("readable by every user"),
        "{}",
        ran.stdout
    );
    let without = run_process(smtptui(&base)).await;
    assert_eq!(
        without.code,
        Some(1),
        "{}\n{}",
        without.stdout,
        without.stderr
    );
    let log = verdicts(&lab, 2).await;
    assert!(
        log.contains("client certificate CN=student@lab.test (verified against the lab CA)")
            && log.contains("tls   C: AUTH EXTERNAL")
            && log.contains(".. authenticated as student@lab.test"),
        "{log}"
    );
    // The second session presented no certificate: EXTERNAL was never offered to it.
    assert_eq!(log.matches("EXTERNAL |").count(), 1, "{log}");
}
