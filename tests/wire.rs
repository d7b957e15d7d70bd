//! How the connection is made, through the binary against the real Postfix of
//! `scripts/postfix-env.sh`: key logs (a capture decrypted by tshark), PROXY headers v1 and v2
//! (Postfix's log shows the client address they claim), XCLIENT and XFORWARD (Postfix greets
//! again and judges the client XCLIENT names), the TLS versions and suites offered, and a
//! chosen local address. Where bytes matter, a recording TCP relay in front of Postfix keeps
//! every byte the client sent.
//!
//! Where Postfix (or tshark and tcpdump, for the capture) cannot be used the tests say why and
//! pass as skipped, except under CI.

#![allow(clippy::unwrap_used, clippy::panic)] // test assertions

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::mta::Mta;
use support::postfix::postfix;
use support::{Outcome, Run, find_bytes};

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn skip(reason: &str) {
    if ci() {
        panic!("{reason}");
    }
    eprintln!("skipping: {reason}");
}

/// The Postfix environment with its PROXY and XCLIENT listeners, or `None` to skip.
fn wire() -> Option<&'static Mta> {
    let postfix = postfix()?;
    if postfix.get("PROXY_PORT").is_empty() || postfix.get("XCLIENT_PORT").is_empty() {
        skip(
            "the Postfix environment has no PROXY or XCLIENT listener (it predates them): run \
             scripts/postfix-env.sh start again",
        );
        return None;
    }
    Some(postfix)
}

fn target(postfix: &Mta, port: &str) -> String {
    format!("{}:{}", postfix.get("SMTP_HOST"), postfix.port(port))
}

fn tls_args(postfix: &Mta) -> Vec<String> {
    vec![
        "--ca-file".into(),
        postfix.get("CA_FILE").into(),
        "--servername".into(),
        postfix.get("TLS_SERVER_NAME").into(),
        "--timeout".into(),
        "20".into(),
    ]
}

/// A TCP relay in front of one Postfix port that keeps what the client sent.
struct Recorder {
    port: u16,
    received: Arc<Mutex<Vec<u8>>>,
}

impl Recorder {
    fn start(upstream_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let record = received.clone();
        thread::spawn(move || {
            let Ok((mut client, _)) = listener.accept() else {
                return;
            };
            let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                return;
            };
            let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
            let _ = server.set_read_timeout(Some(Duration::from_secs(30)));
            let (mut client_r, mut server_w) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            let upstream = thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n @ 1..) = client_r.read(&mut buf) {
                    record.lock().unwrap().extend_from_slice(&buf[..n]);
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

    fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn received(&self) -> Vec<u8> {
        self.received.lock().unwrap().clone()
    }
}

/// The length of Postfix's log now: lines after it were written by what follows.
fn log_mark(postfix: &Mta) -> usize {
    std::fs::read(postfix.get("MAILLOG")).map_or(0, |t| t.len())
}

/// Waits (bounded) for a line of Postfix's log written after `mark` holding every one of
/// `needles`, and returns it.
fn log_line(postfix: &Mta, mark: usize, needles: &[&str]) -> String {
    let started = Instant::now();
    loop {
        let text = std::fs::read(postfix.get("MAILLOG")).unwrap_or_default();
        let new = String::from_utf8_lossy(text.get(mark..).unwrap_or_default()).into_owned();
        if let Some(line) = new
            .lines()
            .find(|line| needles.iter().all(|n| line.contains(n)))
        {
            return line.to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no line with {needles:?} in Postfix's log; new lines:\n{new}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

const MX_SCENARIO: &str = "S: 220\nC: EHLO wire.example\nS: 250\nC: MAIL FROM:<a@example.org>\n\
                           S: 250\nC: RCPT TO:<bob@lab.test>\nS: 250\nC: QUIT\nS: 221\n";

// -------------------------------------------------------------------------------------------
// PROXY protocol
// -------------------------------------------------------------------------------------------

fn proxy_case(version: &str, source: &str) -> (Outcome, Vec<u8>, String) {
    let Some(pf) = wire() else {
        return (Run::new("", "").run(), Vec::new(), String::new());
    };
    let recorder = Recorder::start(pf.port("PROXY_PORT"));
    let mark = log_mark(pf);
    let out = Run::new(MX_SCENARIO, &recorder.target())
        .args(["--proxy-protocol", version, "--proxy-source", source])
        .args(["--timeout", "20"])
        .run();
    let address = source.rsplit_once(':').unwrap().0;
    let line = log_line(pf, mark, &[&format!("connect from unknown[{address}]")]);
    (out, recorder.received(), line)
}

/// A v1 header is one line before the first SMTP byte, and Postfix takes its source as the
/// client.
#[test]
fn a_proxy_v1_header_makes_postfix_see_the_claimed_client() {
    if wire().is_none() {
        return;
    }
    let (out, bytes, line) = proxy_case("v1", "192.0.2.71:40001");
    out.assert_code(0).assert_contains(
        "PROXY protocol v1 header sent before any SMTP byte: PROXY TCP4 192.0.2.71 127.0.0.1 40001",
    );
    let first = bytes.split(|&b| b == b'\n').next().unwrap();
    assert!(
        first.starts_with(b"PROXY TCP4 192.0.2.71 127.0.0.1 40001 "),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    // The EHLO follows the header at once, nothing between.
    assert!(
        String::from_utf8_lossy(&bytes).contains("\r\nEHLO wire.example\r\n"),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(line.contains("postfix-smtptui/proxy"), "{line}");
}

/// A v2 header is the binary form: signature, version and command, family, addresses.
#[test]
fn a_proxy_v2_header_makes_postfix_see_the_claimed_client() {
    if wire().is_none() {
        return;
    }
    let (out, bytes, line) = proxy_case("v2", "192.0.2.72:40002");
    out.assert_code(0)
        .assert_contains("PROXY protocol v2 header sent before any SMTP byte (28 bytes)");
    assert_eq!(&bytes[..12], b"\r\n\r\n\0\r\nQUIT\n");
    assert_eq!(&bytes[12..16], &[0x21, 0x11, 0, 12]);
    assert_eq!(&bytes[16..20], &[192, 0, 2, 72]);
    assert_eq!(&bytes[24..26], &40002u16.to_be_bytes());
    assert!(bytes[28..].starts_with(b"EHLO wire.example\r\n"));
    assert!(line.contains("postfix-smtptui/proxy"), "{line}");
}

#[test]
fn proxy_options_that_cannot_work_are_refused_before_connecting() {
    for (args, says) in [
        (vec!["--proxy-protocol", "v1"], "--proxy-source <ADDR:PORT>"),
        (
            vec![
                "--proxy-protocol",
                "v1",
                "--proxy-source",
                "192.0.2.7:1",
                "--proxy-dest",
                "[::1]:25",
            ],
            "not of the same address family",
        ),
        (
            vec!["--proxy-source", "192.0.2.7:1"],
            "--proxy-protocol <VERSION>",
        ),
        (
            vec!["--proxy-protocol", "v1", "--proxy-source", "192.0.2.7"],
            "is not an address with a port",
        ),
    ] {
        let out = Run::new(MX_SCENARIO, "127.0.0.1:9").args(&args).run();
        out.assert_code(2).assert_contains(says);
    }
}

// -------------------------------------------------------------------------------------------
// XCLIENT and XFORWARD
// -------------------------------------------------------------------------------------------

/// XCLIENT names another client: Postfix greets again, forgets the EHLO (the second one no
/// longer offers XCLIENT, since 192.0.2.66 is not authorized for it) and judges the named
/// client, which its rules refuse at RCPT; TLS stays up through it.
#[test]
fn xclient_inside_tls_makes_postfix_judge_the_named_client() {
    let Some(pf) = wire() else {
        return;
    };
    let rejected = pf.get("XCLIENT_REJECTED_ADDR");
    let scenario = format!(
        "S: 220\nC: EHLO wire.example\nS: 250 XCLIENT\nC: STARTTLS\nS: 220\n\
         C: EHLO wire.example\nS: 250 XCLIENT\n\
         C: XCLIENT NAME=spike.example ADDR={rejected}\nS: 220\n\
         C: EHLO spike.example\nS: 250\nC: MAIL FROM:<a@example.org>\nS: 250\n\
         C: RCPT TO:<bob@lab.test>\nS: 554 5.7.1\nC: QUIT\nS: 221\n"
    );
    let mark = log_mark(pf);
    let out = Run::new(&scenario, &target(pf, "XCLIENT_PORT"))
        .args(tls_args(pf))
        .run();
    out.assert_code(0)
        .assert_contains("tls   C: XCLIENT NAME=spike.example")
        .assert_contains("the server greets again (220)")
        .assert_contains("send EHLO again; TLS stays up")
        .assert_contains("tls   C: EHLO spike.example");
    let line = log_line(
        pf,
        mark,
        &[&format!("reject: RCPT from spike.example[{rejected}]")],
    );
    assert!(line.contains("helo=<spike.example>"), "{line}");
}

/// In cleartext, XCLIENT LOGIN carries a name and no password: it goes (the bytes say so),
/// with the warning that the server now takes the session as logged in. XFORWARD is answered
/// 250 and changes nothing else.
#[test]
fn xclient_login_and_xforward_cross_as_written_with_what_they_mean() {
    let Some(pf) = wire() else {
        return;
    };
    let recorder = Recorder::start(pf.port("XCLIENT_PORT"));
    let scenario = "S: 220\nC: EHLO wire.example\nS: 250 XFORWARD\n\
                    C: XFORWARD ADDR=192.0.2.77 NAME=fwd.example\nS: 250\n\
                    C: XCLIENT LOGIN=bob@lab.test\nS: 220\nC: EHLO wire.example\nS: 250\n\
                    C: QUIT\nS: 221\n";
    let out = Run::new(scenario, &recorder.target())
        .args(["--timeout", "20"])
        .run();
    out.assert_code(0)
        .assert_contains("authenticated as bob@lab.test without any credential checked");
    let bytes = recorder.received();
    assert!(
        find_bytes(
            &bytes,
            b"XFORWARD ADDR=192.0.2.77 NAME=fwd.example\r\nXCLIENT LOGIN=bob@lab.test\r\n"
        )
        .is_some(),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
}

/// The password spelled in xtext (`+XX` for every byte) is still the password: in cleartext
/// the guard refuses the line and not one byte of it reaches Postfix.
#[test]
fn a_password_hidden_in_xclient_xtext_never_crosses_in_cleartext() {
    let Some(pf) = wire() else {
        return;
    };
    let password = pf.password();
    let xtext: String = password.bytes().map(|b| format!("+{b:02X}")).collect();
    let recorder = Recorder::start(pf.port("XCLIENT_PORT"));
    let scenario =
        format!("S: 220\nC: EHLO wire.example\nS: 250\nC: XCLIENT LOGIN={xtext}\nS: 220\n");
    let out = Run::new(&scenario, &recorder.target())
        .args(["--user", pf.get("SMTP_USER")])
        .args(["--password-file", pf.get("PASSWORD_FILE")])
        .args(["--timeout", "20"])
        .run();
    out.assert_code(4);
    let bytes = recorder.received();
    assert!(
        find_bytes(&bytes, b"XCLIENT").is_none(),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(find_bytes(&bytes, xtext.as_bytes()).is_none());
    assert!(!out.stdout.contains(&xtext), "{}", out.stdout);
}

// -------------------------------------------------------------------------------------------
// TLS versions and suites
// -------------------------------------------------------------------------------------------

const STARTTLS_SCENARIO: &str = "S: 220\nC: EHLO wire.example\nS: 250\nC: STARTTLS\nS: 220\nC: EHLO wire.example\nS: 250\n\
     C: QUIT\nS: 221\n";

#[test]
fn the_versions_and_suites_offered_are_what_is_negotiated() {
    let Some(pf) = postfix() else {
        return;
    };
    for (args, negotiated) in [
        (
            vec!["--tls-max", "1.2"],
            "TLS established: TLSv1.2 TLS_ECDHE_",
        ),
        (
            vec![
                "--tls-min",
                "1.3",
                "--cipher",
                "TLS_CHACHA20_POLY1305_SHA256",
            ],
            "TLS established: TLSv1.3 TLS13_CHACHA20_POLY1305_SHA256",
        ),
        (
            vec!["--cipher", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"],
            "TLS established: TLSv1.2 TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        ),
    ] {
        let out = Run::new(STARTTLS_SCENARIO, &target(pf, "MX_PORT"))
            .args(tls_args(pf))
            .args(&args)
            .run();
        out.assert_code(0)
            .assert_contains("TLS offered: ")
            .assert_contains(negotiated);
    }
}

#[test]
fn tls_choices_that_leave_nothing_to_offer_are_refused() {
    for (args, says) in [
        (
            vec!["--tls-min", "1.3", "--tls-max", "1.2"],
            "no version is left",
        ),
        (
            vec!["--tls-min", "1.1"],
            "TLS 1.0 and 1.1 are not spoken here",
        ),
        (
            vec!["--cipher", "RC4-MD5"],
            "choose from TLS13_AES_256_GCM_SHA384",
        ),
        (
            vec!["--tls-max", "1.2", "--cipher", "TLS13_AES_128_GCM_SHA256"],
            "no chosen cipher suite belongs to TLSv1.2",
        ),
    ] {
        let out = Run::new(STARTTLS_SCENARIO, "127.0.0.1:9").args(&args).run();
        out.assert_code(2).assert_contains(says);
    }
}

// -------------------------------------------------------------------------------------------
// Local address and family
// -------------------------------------------------------------------------------------------

#[test]
fn the_local_address_chosen_is_the_one_postfix_sees() {
    let Some(pf) = postfix() else {
        return;
    };
    let mark = log_mark(pf);
    let out = Run::new(MX_SCENARIO, &target(pf, "MX_PORT"))
        .args(["--local-addr", "127.0.0.9", "-4", "--timeout", "20"])
        .run();
    out.assert_code(0).assert_contains("from 127.0.0.9:");
    log_line(pf, mark, &["connect from", "[127.0.0.9]"]);
    let out = Run::new(MX_SCENARIO, &target(pf, "MX_PORT"))
        .arg("-6")
        .run();
    out.assert_code(2)
        .assert_contains("cannot be reached over the family asked for");
    let out = Run::new(MX_SCENARIO, "unix:/run/nothing")
        .args(["--local-addr", "127.0.0.9"])
        .run();
    out.assert_code(2).assert_contains("apply only to TCP");
}

// -------------------------------------------------------------------------------------------
// Key log
// -------------------------------------------------------------------------------------------

/// The key log is written in the NSS format, readable by its owner only, and the transcript
/// says so before anything else; before credentials cross inside TLS it says so again.
#[test]
fn a_key_log_is_announced_and_warned_about_before_credentials() {
    let Some(pf) = postfix() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let keylog = dir.path().join("keys.log");
    let scenario = "S: 220\nC: EHLO wire.example\nS: 250\nC: STARTTLS\nS: 220\n\
                    C: EHLO wire.example\nS: 250\nC: AUTH PLAIN\nS: 235\nC: QUIT\nS: 221\n";
    let out = Run::new(scenario, &target(pf, "SUBMISSION_PORT"))
        .args(tls_args(pf))
        .args(["--user", pf.get("SMTP_USER")])
        .args(["--password-file", pf.get("PASSWORD_FILE")])
        .args(["--keylog", keylog.to_str().unwrap()])
        .run();
    out.assert_code(0);
    let warned = out.stdout.find("TLS KEY LOG ON").expect("key log warning");
    let connected = out.stdout.find("connected to").unwrap();
    assert!(warned < connected, "{}", out.stdout);
    let before_auth = out
        .stdout
        .find("KEY LOG: the credentials below cross inside TLS")
        .expect("warning before AUTH");
    let auth = out.stdout.find("C: AUTH PLAIN").unwrap();
    assert!(before_auth < auth, "{}", out.stdout);
    let text = std::fs::read_to_string(&keylog).unwrap();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 3, "{line}");
        assert!(
            fields[0].starts_with("CLIENT_")
                || fields[0].starts_with("SERVER_")
                || fields[0] == "EXPORTER_SECRET",
            "{line}"
        );
        assert_eq!(fields[1].len(), 64, "{line}");
    }
    assert!(text.contains("CLIENT_TRAFFIC_SECRET_0 "), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&keylog).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

/// $SSLKEYLOGFILE alone is ignored: a stray variable must not weaken a session silently. With
/// --keylog-from-env it is used.
#[test]
fn sslkeylogfile_is_used_only_when_asked_for() {
    let Some(pf) = postfix() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let keylog = dir.path().join("env-keys.log");
    let run = |extra: &[&str]| {
        let mut command = Command::new(support::bin());
        command
            .args(["run"])
            .arg(dir.path().join("s.smtp"))
            .arg(target(pf, "MX_PORT"))
            .args(tls_args(pf))
            .args(extra)
            .env("SSLKEYLOGFILE", &keylog)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        command.output().unwrap()
    };
    std::fs::write(dir.path().join("s.smtp"), STARTTLS_SCENARIO).unwrap();
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!keylog.exists(), "the variable alone wrote a key log");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("KEY LOG"));
    let out = run(&["--keylog-from-env"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("TLS KEY LOG ON"));
    assert!(
        std::fs::read_to_string(&keylog)
            .unwrap()
            .contains("CLIENT_TRAFFIC_SECRET_0")
    );
}

/// The workshop use: a capture of a STARTTLS session on loopback (tcpdump), decrypted by
/// tshark with the key log, shows the EHLO sent inside TLS; without the key log it shows
/// nothing of it.
#[test]
fn tshark_decrypts_a_captured_starttls_session_with_the_key_log() {
    let Some(pf) = postfix() else {
        return;
    };
    let have = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    if !have("tshark") || !have("tcpdump") {
        skip("tshark and tcpdump are not installed (scripts/test.sh installs them)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("session.pcap");
    let keylog = dir.path().join("keys.log");
    let port = pf.port("MX_PORT");
    let inside = format!("inside-{}.example", std::process::id());
    let scenario = format!(
        "S: 220\nC: EHLO outside.example\nS: 250\nC: STARTTLS\nS: 220\nC: EHLO {inside}\n\
         S: 250\nC: QUIT\nS: 221\n"
    );
    // -Z root: tcpdump would otherwise drop to its own user, which cannot write here.
    let mut tcpdump = Command::new("tcpdump")
        .args(["-i", "lo", "--immediate-mode", "-U", "-Z", "root", "-w"])
        .arg(&pcap)
        .arg(format!("tcp port {port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Capturing begins once tcpdump says it listens.
    let mut stderr = BufReader::new(tcpdump.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("listening on") {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            // Capturing needs root or CAP_NET_RAW.
            let _ = tcpdump.wait();
            skip(&format!("tcpdump cannot capture on lo here: {said}"));
            return;
        }
        said.push_str(&line);
    }
    let out = Run::new(&scenario, &target(pf, "MX_PORT"))
        .args(tls_args(pf))
        .args(["--keylog", keylog.to_str().unwrap()])
        .run();
    out.assert_code(0);
    // The EHLO requests tshark finds inside TLS records, decrypting with `keys`.
    let ehlo_inside_tls = |keys: Option<&Path>| {
        let mut tshark = Command::new("tshark");
        tshark.arg("-r").arg(&pcap);
        if let Some(keys) = keys {
            tshark
                .arg("-o")
                .arg(format!("tls.keylog_file:{}", keys.display()));
        }
        let output = tshark
            .args(["-d", &format!("tcp.port=={port},smtp")])
            .args(["-Y", "smtp.req.command == \"EHLO\" && tls"])
            .args(["-T", "fields", "-e", "smtp.req.parameter"])
            .stderr(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    // Packets reach the file as they come; wait (bounded) until the session's last one has.
    let started = Instant::now();
    while !ehlo_inside_tls(Some(&keylog)).contains(&inside)
        && started.elapsed() < Duration::from_secs(20)
    {
        thread::sleep(Duration::from_millis(200));
    }
    let _ = Command::new("kill")
        .args(["-INT", &tcpdump.id().to_string()])
        .status();
    let _ = tcpdump.wait();
    let with_keys = ehlo_inside_tls(Some(&keylog));
    assert!(with_keys.contains(&inside), "decrypted: {with_keys:?}");
    assert!(!with_keys.contains("outside.example"), "{with_keys:?}");
    // Without the key log the capture holds the cleartext EHLO and nothing of the other.
    assert!(!ehlo_inside_tls(None).contains(&inside));
    let raw = std::fs::read(&pcap).unwrap();
    assert!(find_bytes(&raw, b"EHLO outside.example").is_some());
    assert!(find_bytes(&raw, inside.as_bytes()).is_none());
}

/// The audit probes with what it is told to offer, and says so above its findings (and in
/// its JSON).
#[test]
fn the_audit_offers_only_the_chosen_versions_and_says_so() {
    let Some(pf) = postfix() else {
        return;
    };
    let audit = |extra: &[&str]| {
        Command::new(support::bin())
            .args([
                "audit",
                &target(pf, "MX_PORT"),
                "--role",
                "mx",
                "--no-implicit",
            ])
            .args(tls_args(pf))
            .args(["--tls-max", "1.2"])
            .args(extra)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = audit(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.starts_with("TLS offered: TLSv1.2 only;"), "{text}");
    assert!(
        text.contains("tls-handshake: TLSv1.2 with TLS_ECDHE_"),
        "{text}"
    );
    let out = audit(&["--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        json["tls_offered"]
            .as_str()
            .unwrap()
            .starts_with("TLS offered: TLSv1.2 only;"),
        "{json}"
    );
}
