//! SASL mechanisms and client certificates against real servers, through the binary: CRAM-MD5
//! through Cyrus SASL's sasldb and a client certificate checked by fingerprint
//! (`permit_tls_clientcerts`) on the Postfix of `scripts/postfix-env.sh`; OAUTHBEARER and
//! XOAUTH2 against Dovecot's submission service, whose oauth2 passdb asks a token-introspection
//! endpoint (`scripts/dovecot-env.sh`) whether each token is active.
//!
//! Every session goes through a recording TCP proxy, so each test checks the bytes that reached
//! the server: after STARTTLS they are TLS records, and no form of the secret and no `AUTH` may
//! be readable in them.

#![allow(clippy::panic)] // panicking is how a test fails

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

mod support;
use support::mta::{Mta, dovecot};
use support::postfix::postfix;

/// A TCP proxy in front of one server port that records what the client sent.
struct RecordingProxy {
    port: u16,
    received: Arc<Mutex<Vec<u8>>>,
    done: Option<thread::JoinHandle<()>>,
}

impl RecordingProxy {
    fn start(upstream_port: u16) -> Self {
        Self::start_to("127.0.0.1", upstream_port)
    }

    fn start_to(upstream_host: &str, upstream_port: u16) -> Self {
        let upstream_host = upstream_host.to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let record = received.clone();
        let done = thread::spawn(move || {
            // Bounded: a client that never comes (it failed before connecting) must fail the
            // test, not hang it.
            let _ = listener.set_nonblocking(true);
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            let mut client = loop {
                match listener.accept() {
                    Ok((client, _)) => break client,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if std::time::Instant::now() > deadline {
                            return;
                        }
                        thread::sleep(Duration::from_millis(10));
                    }
                    Err(_) => return,
                }
            };
            let _ = client.set_nonblocking(false);
            let Ok(mut server) = TcpStream::connect((upstream_host.as_str(), upstream_port)) else {
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
        Self {
            port,
            received,
            done: Some(done),
        }
    }

    fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Everything the client sent, once the connection is over on both sides.
    fn received(mut self) -> Vec<u8> {
        if let Some(done) = self.done.take() {
            let _ = done.join();
        }
        self.received.lock().expect("lock").clone()
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

fn smtptui(args: &[&str], password: Option<&str>) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_smtptui"));
    command
        .args(args)
        .env_remove("SMTPTUI_PASSWORD")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    if let Some(password) = password {
        command.env("SMTPTUI_PASSWORD", password);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("run smtptui");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The password, its base64, and the user's base64 (what CRAM-MD5's answer starts with):
/// none may be readable on the wire or in the output.
fn assert_no_secret(wire: &[u8], output: &str, user: &str, password: &str) {
    for form in [
        password.to_owned(),
        BASE64.encode(password),
        BASE64.encode(format!("\0{user}\0{password}")),
        BASE64.encode(format!("{user} ")),
    ] {
        assert!(!contains(wire, form.as_bytes()), "{form} reached the wire");
        assert!(!output.contains(&form), "{form} was printed");
    }
}

fn scenario(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("scenario.smtp");
    std::fs::write(&path, text).expect("write scenario");
    let path = path.display().to_string();
    (dir, path)
}

fn verified(pf: &Mta) -> [&str; 4] {
    [
        "--ca-file",
        pf.get("CA_FILE"),
        "--servername",
        pf.get("TLS_SERVER_NAME"),
    ]
}

const STARTTLS_CRAM: &str = "S: 220\nC: EHLO client.example\nS: 250\nC: STARTTLS\nS: 220\n\
                             C: EHLO client.example\nS: 250 CRAM-MD5\nC: AUTH CRAM-MD5\nS: 235\n\
                             C: QUIT\nS: 221\n";

/// CRAM-MD5 through Cyrus SASL's sasldb: smtptui answers the challenge with the HMAC-MD5 of
/// the password, inside verified TLS, and says that the mechanism is obsolete.
#[test]
fn cram_md5_authenticates_against_postfix_sasldb_inside_tls() {
    let Some(pf) = postfix() else { return };
    let proxy = RecordingProxy::start(pf.port("CRAM_PORT"));
    let (_dir, path) = scenario(STARTTLS_CRAM);
    let (user, password) = (pf.get("SMTP_USER"), pf.password());
    let mut args = vec!["run", &path, "--user", user];
    let target = proxy.target();
    args.push(&target);
    args.extend(verified(pf));
    let run = smtptui(&args, Some(&password));
    let wire = proxy.received();
    assert_eq!(run.code, 0, "{}", run.all());
    for text in [
        "tls   C: AUTH CRAM-MD5",
        "tls   S: 334 ",
        "<credentials for alice@lab.test hidden>",
        "235 2.7.0 Authentication successful",
        "CRAM-MD5 is obsolete",
        "store the password",
    ] {
        assert!(run.stdout.contains(text), "{text}: {}", run.stdout);
    }
    assert!(contains(&wire, b"STARTTLS\r\n"));
    assert!(!contains(&wire, b"AUTH"), "AUTH readable on the wire");
    assert_no_secret(&wire, &run.all(), user, &password);
}

/// The same scenario without STARTTLS: the guard stops AUTH CRAM-MD5 before a byte of it
/// leaves (a CRAM-MD5 answer seen on the wire can be attacked offline).
#[test]
fn cram_md5_in_cleartext_is_refused_before_postfix_sees_it() {
    let Some(pf) = postfix() else { return };
    let proxy = RecordingProxy::start(pf.port("LEGACY_PORT"));
    let (_dir, path) = scenario(
        "S: 220\nC: EHLO client.example\nS: 250\nC: AUTH CRAM-MD5\nS: 235\nC: QUIT\nS: 221\n",
    );
    let (user, password) = (pf.get("SMTP_USER"), pf.password());
    let target = proxy.target();
    let run = smtptui(&["run", &path, &target, "--user", user], Some(&password));
    let wire = proxy.received();
    assert_eq!(run.code, 4, "{}", run.all());
    assert!(run.all().contains("credential guard"), "{}", run.all());
    assert_eq!(
        String::from_utf8_lossy(&wire),
        "EHLO client.example\r\nQUIT\r\n",
        "only EHLO and QUIT may reach Postfix"
    );
    assert_no_secret(&wire, &run.all(), user, &password);
}

/// PLAIN without an initial response (`--no-sasl-ir`): the bare AUTH line, Postfix's empty
/// 334, then the credentials, all inside TLS.
#[test]
fn plain_without_initial_response_against_postfix() {
    let Some(pf) = postfix() else { return };
    let proxy = RecordingProxy::start(pf.port("SUBMISSION_PORT"));
    let (_dir, path) = scenario(
        "S: 220\nC: EHLO client.example\nS: 250\nC: STARTTLS\nS: 220\nC: EHLO client.example\n\
         S: 250\nC: AUTH PLAIN\nS: 235\nC: QUIT\nS: 221\n",
    );
    let (user, password) = (pf.get("SMTP_USER"), pf.password());
    let target = proxy.target();
    let mut args = vec!["run", &path, &target, "--user", user, "--no-sasl-ir"];
    args.extend(verified(pf));
    let run = smtptui(&args, Some(&password));
    let wire = proxy.received();
    assert_eq!(run.code, 0, "{}", run.all());
    let shown: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|l| l.split_once("tls   ").map(|(_, rest)| rest))
        .collect();
    let auth = shown
        .iter()
        .position(|l| *l == "C: AUTH PLAIN")
        .unwrap_or_else(|| panic!("no bare AUTH PLAIN: {}", run.stdout));
    assert!(shown[auth + 1].starts_with("S: 334"), "{}", run.stdout);
    assert_eq!(
        shown[auth + 2],
        "C: <credentials for alice@lab.test hidden>"
    );
    assert!(shown[auth + 3].starts_with("S: 235"), "{}", run.stdout);
    assert!(!contains(&wire, b"AUTH"));
    assert_no_secret(&wire, &run.all(), user, &password);
}

const RELAY: &str = "S: 220\nC: EHLO client.example\nS: 250\nC: STARTTLS\nS: 220\n\
                     C: EHLO client.example\nS: 250\nC: MAIL FROM:<alice@lab.test>\nS: 250\n\
                     C: RCPT TO:<bob@example.net>\nS: 250\nC: QUIT\nS: 221\n";

/// The log bytes written since `from`.
fn log_since(pf: &Mta, from: u64) -> String {
    let log = std::fs::read(pf.get("MAILLOG")).unwrap_or_default();
    String::from_utf8_lossy(log.get(from as usize..).unwrap_or_default()).into_owned()
}

fn log_len(pf: &Mta) -> u64 {
    std::fs::metadata(pf.get("MAILLOG")).map_or(0, |m| m.len())
}

/// `--cert` and `--key`: Postfix asks for a client certificate (smtpd_tls_ask_ccert), logs
/// its fingerprint, and relays for it (permit_tls_clientcerts); the transcript shows the
/// same subject and fingerprint.
#[test]
fn a_client_certificate_is_presented_to_postfix_and_relays_by_fingerprint() {
    let Some(pf) = postfix() else { return };
    let fingerprint = pf.get("CLIENT_FINGERPRINT");
    let proxy = RecordingProxy::start(pf.port("CCERT_PORT"));
    let (_dir, path) = scenario(RELAY);
    let target = proxy.target();
    let before = log_len(pf);
    let mut args = vec![
        "run",
        &path,
        &target,
        "--cert",
        pf.get("CLIENT_CERT"),
        "--key",
        pf.get("CLIENT_KEY"),
    ];
    args.extend(verified(pf));
    let run = smtptui(&args, None);
    let _ = proxy.received();
    assert_eq!(run.code, 0, "{}", run.all());
    for text in [
        "client certificate: subject CN=client.lab.test",
        "the server asked for a client certificate: presented CN=client.lab.test",
        fingerprint,
        "S: 250 2.1.5 Ok",
    ] {
        assert!(run.stdout.contains(text), "{text}: {}", run.stdout);
    }
    assert!(
        !run.all().contains("readable by every user"),
        "{}",
        run.all()
    );
    // Postfix logs the certificate it received; the same fingerprint proves it was ours.
    let mut log = log_since(pf, before);
    for _ in 0..50 {
        if log.contains(fingerprint) {
            break;
        }
        thread::sleep(Duration::from_millis(100));
        log = log_since(pf, before);
    }
    assert!(
        log.contains(&format!(
            "subject_CN=client.lab.test, issuer=smtptui test CA, fingerprint={fingerprint}"
        )),
        "Postfix did not log the client certificate: {log}"
    );
}

/// Without the certificate the same relay is refused: the certificate is what Postfix
/// relayed for.
#[test]
fn without_the_client_certificate_postfix_refuses_the_relay() {
    let Some(pf) = postfix() else { return };
    let proxy = RecordingProxy::start(pf.port("CCERT_PORT"));
    let (_dir, path) = scenario(RELAY);
    let target = proxy.target();
    let mut args = vec!["run", &path, &target];
    args.extend(verified(pf));
    let run = smtptui(&args, None);
    let _ = proxy.received();
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stdout.contains("Relay access denied"), "{}", run.stdout);
    assert!(!run.stdout.contains("client certificate"), "{}", run.stdout);
}

/// A key file every user of the machine can read is warned about (and still used).
#[test]
fn a_world_readable_client_key_is_warned_about() {
    use std::os::unix::fs::PermissionsExt as _;
    let Some(pf) = postfix() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("client.key");
    std::fs::copy(pf.get("CLIENT_KEY"), &key).expect("copy key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let key = key.display().to_string();
    let proxy = RecordingProxy::start(pf.port("CCERT_PORT"));
    let (_dir, path) = scenario(RELAY);
    let target = proxy.target();
    let mut args = vec![
        "run",
        &path,
        &target,
        "--cert",
        pf.get("CLIENT_CERT"),
        "--key",
        &key,
    ];
    args.extend(verified(pf));
    let run = smtptui(&args, None);
    let _ = proxy.received();
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.all()
            .contains("readable by every user of this machine (mode 0644)")
            && run.all().contains(&format!("chmod 600 {key}")),
        "{}",
        run.all()
    );
}

// ---------------------------------------------------------------------------------------------
// OAUTHBEARER and XOAUTH2 against Dovecot's submission service, whose oauth2 passdb checks
// each token with the introspection endpoint of scripts/dovecot-env.sh
// ---------------------------------------------------------------------------------------------

fn oauth_scenario(mechanism: &str) -> String {
    format!(
        "S: 220\nC: EHLO client.example\nS: 250\nC: STARTTLS\nS: 220\nC: EHLO client.example\n\
         S: 250 {mechanism}\nC: AUTH {mechanism}\nS: 235\nC: QUIT\nS: 221\n"
    )
}

/// Runs `mechanism` against Dovecot's submission listener with the token in `token_file`.
fn oauth_run(dv: &Mta, mechanism: &str, token_file: &str, extra: &[&str]) -> (Run, Vec<u8>) {
    let proxy_port = dv.port("SUBMISSION_PORT");
    let proxy = RecordingProxy::start_to(dv.get("SUBMISSION_HOST"), proxy_port);
    let (_dir, path) = scenario(&oauth_scenario(mechanism));
    let target = proxy.target();
    let mut args = vec![
        "run",
        &path,
        &target,
        "--user",
        dv.get("SMTP_USER"),
        "--password-file",
        token_file,
        "--ca-file",
        dv.get("CA_FILE"),
        "--servername",
        dv.get("TLS_SERVER_NAME"),
    ];
    args.extend(extra);
    let run = smtptui(&args, None);
    (run, proxy.received())
}

fn token(dv: &Mta) -> String {
    std::fs::read_to_string(dv.get("TOKEN_FILE")).expect("token file")
}

/// Neither the token nor a base64 form of a message carrying it is readable anywhere.
fn assert_no_token(wire: &[u8], output: &str, user: &str, token: &str) {
    for form in [
        token.to_owned(),
        BASE64.encode(token),
        BASE64.encode(format!("n,a={user},\x01auth=Bearer {token}\x01\x01")),
        BASE64.encode(format!("user={user}\x01auth=Bearer {token}\x01\x01")),
    ] {
        assert!(
            !contains(wire, form.as_bytes()),
            "a token form reached the wire"
        );
        assert!(!output.contains(&form), "a token form was printed");
    }
}

#[test]
fn oauthbearer_and_xoauth2_log_in_to_dovecot_with_a_valid_token() {
    let Some(dv) = dovecot() else { return };
    for (mechanism, extra) in [
        ("OAUTHBEARER", &[][..]),
        ("XOAUTH2", &[][..]),
        ("OAUTHBEARER", &["--no-sasl-ir"][..]),
    ] {
        let (run, wire) = oauth_run(dv, mechanism, dv.get("TOKEN_FILE"), extra);
        assert_eq!(run.code, 0, "{mechanism} {extra:?}: {}", run.all());
        assert!(
            run.stdout.contains("235 2.7.0 Logged in."),
            "{}",
            run.stdout
        );
        assert!(!contains(&wire, b"AUTH"), "AUTH readable on the wire");
        assert_no_token(&wire, &run.all(), dv.get("SMTP_USER"), &token(dv));
    }
    let log = std::fs::read_to_string(dv.get("LOG")).unwrap_or_default();
    assert!(
        log.contains("user=<alice@lab.test>, method=OAUTHBEARER")
            && log.contains("user=<alice@lab.test>, method=XOAUTH2"),
        "Dovecot did not log the logins: {log}"
    );
}

/// A token the endpoint does not know: Dovecot answers OAUTHBEARER with its JSON error
/// challenge, which smtptui shows decoded and answers with %x01 (RFC 7628 §3.2.3) before
/// the final 535; XOAUTH2's error is answered with an empty line.
#[test]
fn a_refused_token_gets_dovecots_error_challenge_shown_and_answered() {
    let Some(dv) = dovecot() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("token");
    std::fs::write(&bad, "not-the-token-0123456789\n").expect("write token");
    let bad = bad.display().to_string();
    let (run, wire) = oauth_run(dv, "OAUTHBEARER", &bad, &[]);
    assert_eq!(run.code, 1, "{}", run.all());
    for text in [
        "tls   S: 334 eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0=",
        r#"its error challenge, decoded: {"status":"invalid_token"}"#,
        "tls   C: AQ== (%x01",
        "535 5.7.8",
    ] {
        assert!(run.stdout.contains(text), "{text}: {}", run.stdout);
    }
    assert_no_token(
        &wire,
        &run.all(),
        dv.get("SMTP_USER"),
        "not-the-token-0123456789",
    );
    let (run, _) = oauth_run(dv, "XOAUTH2", &bad, &[]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stdout.contains("answered with an empty line"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("535 5.7.8"), "{}", run.stdout);
}

/// Dovecot's listener with disable_plaintext_auth = no offers OAUTHBEARER in cleartext; the
/// guard refuses it there with nothing of it sent.
#[test]
fn oauthbearer_offered_in_cleartext_by_dovecot_is_refused() {
    let Some(dv) = dovecot() else { return };
    let proxy = RecordingProxy::start_to(dv.get("PLAINTEXT_HOST"), dv.port("PLAINTEXT_PORT"));
    let (_dir, path) = scenario(
        "S: 220\nC: EHLO client.example\nS: 250 OAUTHBEARER\nC: AUTH OAUTHBEARER\nS: 235\n\
         C: QUIT\nS: 221\n",
    );
    let target = proxy.target();
    let run = smtptui(
        &[
            "run",
            &path,
            &target,
            "--user",
            dv.get("SMTP_USER"),
            "--password-file",
            dv.get("TOKEN_FILE"),
        ],
        None,
    );
    let wire = proxy.received();
    assert_eq!(run.code, 4, "{}", run.all());
    assert!(run.all().contains("credential guard"), "{}", run.all());
    assert_eq!(
        String::from_utf8_lossy(&wire),
        "EHLO client.example\r\nQUIT\r\n"
    );
    assert_no_token(&wire, &run.all(), dv.get("SMTP_USER"), &token(dv));
}

/// The audit names CRAM-MD5 obsolete where Postfix offers it inside TLS.
#[test]
fn the_audit_names_cram_md5_obsolete() {
    let Some(pf) = postfix() else { return };
    let target = format!("127.0.0.1:{}", pf.port("CRAM_PORT"));
    let mut args = vec![
        "audit",
        &target,
        "--role",
        "submission",
        "--no-implicit",
        "--timeout",
        "10",
    ];
    args.extend(verified(pf));
    let run = smtptui(&args, None);
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("auth-after-tls"))
        .unwrap_or_else(|| panic!("no auth-after-tls finding: {}", run.all()));
    assert!(
        line.starts_with("PASS")
            && line.contains("AUTH PLAIN LOGIN CRAM-MD5 is offered inside TLS")
            && line.contains("CRAM-MD5 among them is obsolete"),
        "{line}"
    );
}
