//! Integration tests against a real Postfix from Debian's packages, configured like the
//! motivating server (see `scripts/postfix-env.sh`).
//!
//! Every session goes through a recording TCP proxy so the tests can check the bytes that
//! actually reached Postfix: neither the password nor any base64 form of it may appear in
//! them, and a refused AUTH must leave no `AUTH` at all.
//!
//! Postfix needs root to install and run. Where it cannot be started the tests say why and
//! pass as skipped, except under CI (`CI=true`), where a missing Postfix is a failure.

#![allow(clippy::panic)] // panicking is how a test fails

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

mod support;
use support::postfix::{postfix, repo};

/// A TCP proxy in front of one Postfix port that records what the client sent.
struct RecordingProxy {
    port: u16,
    received: Arc<Mutex<Vec<u8>>>,
}

impl RecordingProxy {
    fn start(upstream_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let record = received.clone();
        thread::spawn(move || {
            // One client per proxy is all a test needs.
            let Ok((mut client, _)) = listener.accept() else {
                return;
            };
            let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                return;
            };
            let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
            let _ = server.set_read_timeout(Some(Duration::from_secs(30)));
            let (mut client_r, mut server_w) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            let upstream = thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n @ 1..) = client_r.read(&mut buf) {
                    record.lock().expect("lock").extend_from_slice(&buf[..n]);
                    if server_w.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = server_w.shutdown(Shutdown::Write);
            });
            let mut buf = [0u8; 16 * 1024];
            while let Ok(n @ 1..) = server.read(&mut buf) {
                if client.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = client.shutdown(Shutdown::Write);
            let _ = upstream.join();
        });
        Self { port, received }
    }

    fn received(&self) -> Vec<u8> {
        self.received.lock().expect("lock").clone()
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Run {
    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

fn smtptui(args: &[&str], password: &str) -> Run {
    let started = Instant::now();
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_smtptui"))
        .args(args)
        .env("SMTPTUI_PASSWORD", password)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run smtptui");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every form in which the password could cross: plain, base64 alone (LOGIN), and the PLAIN
/// message `\0user\0password`.
fn secret_forms(user: &str, password: &str) -> Vec<Vec<u8>> {
    vec![
        password.as_bytes().to_vec(),
        BASE64.encode(password).into_bytes(),
        BASE64.encode(format!("\0{user}\0{password}")).into_bytes(),
    ]
}

fn assert_no_secret(bytes: &[u8], text: &str, user: &str, password: &str) {
    for form in secret_forms(user, password) {
        assert!(
            !contains(bytes, &form),
            "a form of the password reached the server"
        );
        assert!(
            !text.contains(&*String::from_utf8_lossy(&form)),
            "a form of the password was printed"
        );
    }
}

fn asset(name: &str) -> String {
    repo().join("assets").join(name).display().to_string()
}

fn write_scenario(name: &str, text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write scenario");
    let path = path.display().to_string();
    (dir, path)
}

/// Bare AUTH on the listener that advertises AUTH before TLS.
const LEGACY_AUTH: &str =
    "S: 220\nC: EHLO client.example\nS: 250 AUTH\nC: AUTH PLAIN\nS: 235\nC: QUIT\nS: 221\n";

fn target(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

#[test]
fn submission_over_starttls_passes_and_no_secret_reaches_the_wire_unprotected() {
    let Some(pf) = postfix() else { return };
    let proxy = RecordingProxy::start(pf.port("SUBMISSION_PORT"));
    let password = pf.password();
    let user = pf.get("SMTP_USER");
    let run = smtptui(
        &[
            "run",
            &asset("submission-starttls.smtp"),
            &target(proxy.port),
            "--user",
            user,
            "--ca-file",
            pf.get("CA_FILE"),
            "--servername",
            "localhost",
        ],
        &password,
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout
            .contains("tls   S: 235 2.7.0 Authentication successful"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("AUTH PLAIN <credentials for {user} hidden>"))
    );
    assert!(run.stdout.contains("certificate verified for localhost"));
    assert!(run.stdout.contains("S: 250 2.0.0 Ok: queued as"));
    let wire = proxy.received();
    assert!(contains(&wire, b"STARTTLS\r\n"));
    assert_no_secret(&wire, &run.all(), user, &password);
    eprintln!(
        "full STARTTLS+AUTH+DATA session against Postfix: {:?} (whole process)",
        run.elapsed
    );
}

#[test]
fn submission_over_implicit_tls_passes() {
    let Some(pf) = postfix() else { return };
    let proxy = RecordingProxy::start(pf.port("IMPLICIT_PORT"));
    let password = pf.password();
    let user = pf.get("SMTP_USER");
    let run = smtptui(
        &[
            "run",
            &asset("implicit-tls.smtp"),
            &target(proxy.port),
            "--tls",
            "implicit",
            "--user",
            user,
            "--ca-file",
            pf.get("CA_FILE"),
            "--servername",
            "localhost",
        ],
        &password,
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("tls   S: 220"),
        "the greeting came inside TLS: {}",
        run.stdout
    );
    assert!(!run.stdout.contains("plain S:"), "{}", run.stdout);
    assert_no_secret(&proxy.received(), &run.all(), user, &password);
}

#[test]
fn auth_advertised_before_tls_is_refused_with_nothing_sent() {
    let Some(pf) = postfix() else { return };
    let proxy = RecordingProxy::start(pf.port("LEGACY_PORT"));
    let password = pf.password();
    let user = pf.get("SMTP_USER");
    let (_dir, scenario) = write_scenario("legacy.smtp", LEGACY_AUTH);
    let run = smtptui(
        &["run", &scenario, &target(proxy.port), "--user", user],
        &password,
    );
    assert_eq!(run.code, 4, "{}", run.all());
    assert!(
        run.all().contains("refused on a cleartext connection"),
        "{}",
        run.all()
    );
    assert!(
        run.stderr.contains("legacy.smtp:4"),
        "the refusal names the scenario line: {}",
        run.stderr
    );
    // Give the proxy a moment to see the close, then check nothing of AUTH crossed.
    thread::sleep(Duration::from_millis(100));
    let wire = proxy.received();
    assert!(contains(&wire, b"EHLO client.example"));
    assert!(
        !contains(&wire.to_ascii_uppercase(), b"AUTH"),
        "{}",
        String::from_utf8_lossy(&wire)
    );
    assert_no_secret(&wire, &run.all(), user, &password);
}

#[test]
fn the_explicit_override_sends_cleartext_auth_with_a_loud_warning() {
    let Some(pf) = postfix() else { return };
    let proxy = RecordingProxy::start(pf.port("LEGACY_PORT"));
    let password = pf.password();
    let user = pf.get("SMTP_USER");
    let (_dir, scenario) = write_scenario("legacy.smtp", LEGACY_AUTH);
    let run = smtptui(
        &[
            "run",
            &scenario,
            &target(proxy.port),
            "--user",
            user,
            "--allow-cleartext-auth",
        ],
        &password,
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout
            .contains("WARNING credentials are being sent IN CLEARTEXT"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("plain S: 235"), "{}", run.stdout);
    // The user asked for it: the PLAIN message did cross, but it is still not printed.
    let plain = BASE64.encode(format!("\0{user}\0{password}"));
    assert!(contains(&proxy.received(), plain.as_bytes()));
    assert!(!run.all().contains(&plain) && !run.all().contains(&password));
}

#[test]
fn the_motivating_inline_auth_before_starttls_never_reaches_postfix() {
    let Some(pf) = postfix() else { return };
    let proxy = RecordingProxy::start(pf.port("SUBMISSION_PORT"));
    let run = smtptui(
        &[
            "run",
            &asset("auth-before-starttls.smtp"),
            &target(proxy.port),
        ],
        "",
    );
    assert_eq!(run.code, 4, "{}", run.all());
    thread::sleep(Duration::from_millis(100));
    let wire = proxy.received();
    assert!(!contains(&wire, b"AGFsaWNlAHNlY3JldA=="));
    assert!(!contains(&wire.to_ascii_uppercase(), b"AUTH"));
    assert!(
        !run.all().contains("AGFsaWNlAHNlY3JldA=="),
        "the blob is redacted in the output"
    );
}

#[test]
fn submission_requires_starttls_before_mail() {
    let Some(pf) = postfix() else { return };
    let (_dir, scenario) = write_scenario(
        "mail-first.smtp",
        "S: 220\nC: EHLO client.example\nS: 250 STARTTLS\nC: MAIL FROM:<alice@lab.test>\n\
         S: 530 Must issue a STARTTLS command first\nC: QUIT\nS: 221\n",
    );
    let run = smtptui(&["run", &scenario, &target(pf.port("SUBMISSION_PORT"))], "");
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout
            .contains("530 5.7.0 Must issue a STARTTLS command first")
    );
    assert!(
        !run.stdout.contains("AUTH"),
        "AUTH is not advertised before TLS: {}",
        run.stdout
    );
}

#[test]
fn mx_accepts_local_mail_over_starttls_and_denies_relay() {
    let Some(pf) = postfix() else { return };
    let ca = pf.get("CA_FILE");
    let run = smtptui(
        &[
            "run",
            &asset("mx-starttls.smtp"),
            &target(pf.port("MX_PORT")),
            "--ca-file",
            ca,
            "--servername",
            "localhost",
        ],
        "",
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let (_dir, scenario) = write_scenario(
        "relay.smtp",
        "S: 220\nC: EHLO client.example\nS: 250\nC: MAIL FROM:<a@example.org>\nS: 250\n\
         C: RCPT TO:<x@example.com>\nS: 554 Relay access denied\nC: QUIT\nS: 221\n",
    );
    let run = smtptui(&["run", &scenario, &target(pf.port("MX_PORT"))], "");
    assert_eq!(run.code, 0, "{}", run.all());
}

#[test]
fn an_expectation_that_fails_names_the_line_and_what_came() {
    let Some(pf) = postfix() else { return };
    let (_dir, scenario) = write_scenario("wrong.smtp", "S: 220\nC: NOOP\nS: 5xx\n");
    let run = smtptui(&["run", &scenario, &target(pf.port("MX_PORT"))], "");
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stdout
            .contains("FAIL line 3: expected 5xx, got 250 2.0.0 Ok"),
        "{}",
        run.stdout
    );
}

#[test]
fn bad_certificates_end_the_handshake_with_the_reason() {
    let Some(pf) = postfix() else { return };
    let ca = pf.get("CA_FILE");
    for (port, reason) in [
        ("EXPIRED_PORT", "certificate expired"),
        ("WRONGNAME_PORT", "not valid for name \"localhost\""),
    ] {
        let run = smtptui(
            &[
                "run",
                &asset("mx-starttls.smtp"),
                &target(pf.port(port)),
                "--ca-file",
                ca,
                "--servername",
                "localhost",
            ],
            "",
        );
        assert_eq!(run.code, 3, "{port}: {}", run.all());
        assert!(run.all().contains(reason), "{port}: {}", run.all());
        assert!(
            !run.stdout.contains("tls   C:"),
            "nothing was sent after a failed handshake"
        );
    }
    // Without --ca-file the test CA is unknown.
    let run = smtptui(
        &[
            "run",
            &asset("mx-starttls.smtp"),
            &target(pf.port("MX_PORT")),
            "--servername",
            "localhost",
        ],
        "",
    );
    assert_eq!(run.code, 3, "{}", run.all());
    assert!(run.all().contains("unknown issuer"), "{}", run.all());
}

#[test]
fn insecure_continues_but_keeps_the_failed_verdict_visible() {
    let Some(pf) = postfix() else { return };
    let run = smtptui(
        &[
            "run",
            &asset("mx-starttls.smtp"),
            &target(pf.port("EXPIRED_PORT")),
            "--ca-file",
            pf.get("CA_FILE"),
            "--servername",
            "localhost",
            "--insecure",
            "--json",
        ],
        "",
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let tls = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("every line is JSON"))
        .find(|v| v["event"] == "tls")
        .expect("a tls event");
    assert_eq!(tls["verified"], false);
    assert!(
        tls["verification_error"]
            .as_str()
            .unwrap_or_default()
            .contains("expired")
    );
    assert!(tls["chain"][0]["days_to_expiry"].as_i64().unwrap_or(0) < 0);
}
