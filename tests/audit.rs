//! `smtptui audit` against the lab's profiles (in-process), small fake servers (the exact
//! bytes of the AUTH probe; STARTTLS command injection, vulnerable and careful), and the real
//! loopback Postfix of `scripts/postfix-env.sh` (through the binary).

#![allow(clippy::panic)] // panicking is how a test fails

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use smtptui::audit::findings::{Finding, FindingId, InjectionSeen, Role, RoleSource, Verdict};
use smtptui::audit::probe::{self, AuditConfig, Recorder};
use smtptui::audit::{Audit, RoleChoice, injection};
use smtptui::guard::{GuardPolicy, OneTimeOverride};
use smtptui::lab::{Lab, LabConfig, Profile};
use smtptui::proto::reply::ReplyLimits;
use smtptui::proto::sasl::Mechanism;
use smtptui::session::{AuthProbe, Session, SessionConfig, TlsMode};
use smtptui::tls::TrustSettings;
use smtptui::transcript::{EventKind, render_plain};

mod support;
use support::mta::{Mta, dovecot, exim};
use support::postfix::postfix;
use support::{Leaf, Pki, Server};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

async fn quiet_lab(profiles: Vec<Profile>) -> Lab {
    let mut config = LabConfig::ephemeral(profiles);
    config.log = Arc::new(|_| {});
    config.log_sessions = false;
    config.command_timeout = Duration::from_secs(10);
    Lab::start(config).await.expect("lab starts")
}

fn session_config(addr: SocketAddr, ca: Option<&[u8]>, tls_mode: TlsMode) -> SessionConfig {
    SessionConfig {
        host: addr.ip().to_string(),
        port: addr.port(),
        tls_mode,
        server_name: "localhost".to_owned(),
        trust: TrustSettings {
            extra_roots: ca
                .map(|der| vec![CertificateDer::from(der.to_vec())])
                .unwrap_or_default(),
            continue_unverified: false,
            client_identity: None,
            roots: Default::default(),
        },
        policy: GuardPolicy::default(),
        timeout: Duration::from_secs(10),
        limits: ReplyLimits::default(),
        unasked: smtptui::session::UnaskedReplies::Fatal,
        known_secrets: Vec::new(),
        sasl: Default::default(),
        transport: Default::default(),
    }
}

struct Audited {
    audit: Audit,
    findings: Vec<Finding>,
    transcript: String,
}

impl Audited {
    fn verdict(&self, id: FindingId) -> Verdict {
        self.find(id).verdict
    }

    fn find(&self, id: FindingId) -> &Finding {
        self.findings
            .iter()
            .find(|f| f.id == id)
            .unwrap_or_else(|| panic!("no finding {id}: {:#?}", self.findings))
    }

    fn failures(&self) -> Vec<&Finding> {
        self.findings
            .iter()
            .filter(|f| f.verdict == Verdict::Fail)
            .collect()
    }
}

async fn audit_lab(
    lab: &Lab,
    profile: Profile,
    role: Option<Role>,
    tls_mode: TlsMode,
    implicit_port: Option<u16>,
) -> Audited {
    let addr = lab.addr(profile).expect("profile runs");
    let config = AuditConfig {
        session: session_config(addr, Some(lab.ca_der().as_ref()), tls_mode),
        role,
        implicit_port,
        no_implicit: implicit_port.is_none(),
    };
    let recorder = Recorder::new();
    let audit = probe::run(config, &recorder).await.expect("audit runs");
    let findings = audit.findings();
    Audited {
        audit,
        findings,
        transcript: render_plain(&recorder.events()),
    }
}

// ---------------------------------------------------------------------------------------------
// The lab's profiles
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn lab_submission_passes_and_implicit_tls_is_found() {
    let lab = quiet_lab(vec![Profile::Submission, Profile::Implicit]).await;
    let implicit = lab.addr(Profile::Implicit).expect("implicit").port();
    let run = audit_lab(
        &lab,
        Profile::Submission,
        Some(Role::Submission),
        TlsMode::StartTls,
        Some(implicit),
    )
    .await;
    assert!(run.failures().is_empty(), "{:#?}", run.findings);
    for id in [
        FindingId::StartTlsOffered,
        FindingId::AuthAdvertisedBeforeTls,
        FindingId::AuthAcceptedBeforeTls,
        FindingId::MailWithoutTls,
        FindingId::TlsHandshake,
        FindingId::CertificateChain,
        FindingId::CertificateName,
        FindingId::StartTlsAfterTls,
        FindingId::AuthAfterTls,
        FindingId::StartTlsInjection,
        FindingId::ImplicitTls,
    ] {
        assert_eq!(run.verdict(id), Verdict::Pass, "{id}: {:#?}", run.findings);
    }
    // The lab makes a 7-day certificate at every start: judged against its own lifetime it is
    // fine, and no fix asks to renew it and reload a Postfix that is not there.
    let expiry = run.find(FindingId::CertificateExpiry);
    assert_eq!(expiry.verdict, Verdict::Pass, "{expiry:?}");
    assert!(
        expiry
            .why
            .contains("short-lived certificate (7 days in all)"),
        "{expiry:?}"
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn lab_mx_is_judged_as_an_mx_without_auth_and_passes() {
    let lab = quiet_lab(vec![Profile::Mx]).await;
    let run = audit_lab(&lab, Profile::Mx, None, TlsMode::StartTls, None).await;
    assert_eq!(
        run.audit.role,
        RoleChoice {
            role: Role::Mx,
            source: RoleSource::NoAuthAdvertised
        }
    );
    assert!(run.failures().is_empty(), "{:#?}", run.findings);
    assert_eq!(run.verdict(FindingId::MailWithoutTls), Verdict::Pass);
    assert_eq!(run.verdict(FindingId::AuthAfterTls), Verdict::Info);
    assert!(run.find(FindingId::Role).why.contains("--role submission"));
    lab.shutdown().await;
}

#[tokio::test]
async fn lab_legacy_fails_auth_before_tls_and_the_probe_sends_no_credential() {
    let lab = quiet_lab(vec![Profile::Legacy]).await;
    let run = audit_lab(&lab, Profile::Legacy, None, TlsMode::StartTls, None).await;
    assert_eq!(run.audit.role.role, Role::Submission);
    assert_eq!(run.audit.role.source, RoleSource::AuthAdvertised);
    for id in [
        FindingId::AuthAdvertisedBeforeTls,
        FindingId::AuthAcceptedBeforeTls,
    ] {
        let finding = run.find(id);
        assert_eq!(finding.verdict, Verdict::Fail, "{finding:?}");
        assert!(
            finding
                .fix
                .as_deref()
                .unwrap_or_default()
                .contains(". Postfix: smtpd_tls_auth_only = yes"),
            "the lab does not say what it is, so the fix is marked as Postfix's: {finding:?}"
        );
    }
    assert_eq!(run.verdict(FindingId::MailWithoutTls), Verdict::Fail);
    // The transcript shows the whole probe: AUTH LOGIN, the 334, the '*' and nothing else.
    assert!(
        run.transcript.contains("plain C: AUTH LOGIN"),
        "{}",
        run.transcript
    );
    assert!(run.transcript.contains("plain C: *"), "{}", run.transcript);
    assert!(!run.transcript.contains("hidden"), "{}", run.transcript);
    lab.shutdown().await;
}

#[tokio::test]
async fn lab_strip_fails_for_missing_starttls() {
    let lab = quiet_lab(vec![Profile::Strip]).await;
    let run = audit_lab(&lab, Profile::Strip, None, TlsMode::StartTls, None).await;
    assert_eq!(run.verdict(FindingId::StartTlsOffered), Verdict::Fail);
    assert_eq!(run.verdict(FindingId::AuthAcceptedBeforeTls), Verdict::Fail);
    assert!(
        run.find(FindingId::StartTlsOffered)
            .fix
            .as_deref()
            .unwrap_or_default()
            .contains("smtpd_tls_security_level = encrypt")
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn lab_refused_and_injected_starttls_fail_the_handshake() {
    let lab = quiet_lab(vec![Profile::RefuseTls, Profile::Inject]).await;
    let refused = audit_lab(&lab, Profile::RefuseTls, None, TlsMode::StartTls, None).await;
    let finding = refused.find(FindingId::TlsHandshake);
    assert_eq!(finding.verdict, Verdict::Fail);
    assert!(finding.why.contains("454"), "{finding:?}");

    let injected = audit_lab(&lab, Profile::Inject, None, TlsMode::StartTls, None).await;
    let finding = injected.find(FindingId::TlsHandshake);
    assert_eq!(finding.verdict, Verdict::Fail);
    assert!(finding.why.contains("response injection"), "{finding:?}");
    // The fix is about what put bytes on the path, not about certificates or ciphers.
    let fix = finding.fix.as_deref().unwrap_or_default();
    assert!(
        fix.contains("a firewall or proxy that inspects SMTP"),
        "{fix}"
    );
    assert!(
        !fix.contains("certificate") && !fix.contains("cipher"),
        "{fix}"
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn implicit_tls_with_a_certificate_that_does_not_verify_is_not_a_pass() {
    // The audited server verifies; port "465" presents a certificate from another CA.
    let lab = quiet_lab(vec![Profile::Submission]).await;
    let pki = Pki::new();
    let implicit = Server::raw(Some(pki.server_config(Leaf::Good)), |conn| {
        conn.start_tls()?;
        conn.send(b"220 other.example ESMTP\r\n")?;
        while let Some(line) = conn.read_line()? {
            if line.eq_ignore_ascii_case(b"QUIT") {
                conn.send(b"221 2.0.0 Bye\r\n")?;
                break;
            }
            conn.send(b"500 unexpected\r\n")?;
        }
        Ok(())
    });
    let run = audit_lab(
        &lab,
        Profile::Submission,
        Some(Role::Submission),
        TlsMode::StartTls,
        Some(implicit.addr.port()),
    )
    .await;
    let finding = run.find(FindingId::ImplicitTls);
    assert_eq!(finding.verdict, Verdict::Fail, "{finding:?}");
    assert!(
        finding
            .why
            .contains("its certificate does not verify: unknown issuer"),
        "{finding:?}"
    );
    assert!(
        finding
            .fix
            .as_deref()
            .unwrap_or_default()
            .contains("install a certificate from a CA the clients trust"),
        "{finding:?}"
    );
    drop(implicit.finish());
    lab.shutdown().await;
}

#[tokio::test]
async fn lab_implicit_tls_is_audited_inside_tls() {
    let lab = quiet_lab(vec![Profile::Implicit]).await;
    let run = audit_lab(
        &lab,
        Profile::Implicit,
        Some(Role::Submission),
        TlsMode::Implicit,
        None,
    )
    .await;
    assert!(run.failures().is_empty(), "{:#?}", run.findings);
    assert_eq!(run.verdict(FindingId::Transport), Verdict::Info);
    assert_eq!(run.verdict(FindingId::TlsHandshake), Verdict::Pass);
    assert_eq!(run.verdict(FindingId::AuthAfterTls), Verdict::Pass);
    assert!(
        run.findings
            .iter()
            .all(|f| f.id != FindingId::MailWithoutTls)
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn implicit_tls_against_a_cleartext_port_is_a_finding_not_unreachable() {
    let lab = quiet_lab(vec![Profile::Mx]).await;
    let run = audit_lab(&lab, Profile::Mx, None, TlsMode::Implicit, None).await;
    assert_eq!(
        run.verdict(FindingId::TlsHandshake),
        Verdict::Fail,
        "{:#?}",
        run.findings
    );
    assert!(run.findings.iter().all(|f| f.id != FindingId::Greeting));
    lab.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// The AUTH probe's exact bytes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_auth_probe_sends_only_auth_login_and_the_cancel() {
    let server = Server::raw(None, |conn| {
        conn.send(b"220 fake ESMTP\r\n")?;
        while let Some(line) = conn.read_line()? {
            let reply: &[u8] = match line.as_slice() {
                b"EHLO probe.test" => b"250-fake\r\n250 AUTH LOGIN PLAIN\r\n",
                b"AUTH LOGIN" => b"334 VXNlcm5hbWU6\r\n",
                b"*" => b"501 5.7.0 Authentication aborted\r\n",
                _ => b"500 unexpected\r\n",
            };
            conn.send(reply)?;
        }
        Ok(())
    });
    let config = session_config(server.addr, None, TlsMode::StartTls);
    let (mut session, _) = Session::connect(config, Box::new(|_| {}))
        .await
        .expect("connects");
    session
        .send_line("EHLO probe.test", OneTimeOverride::None)
        .await
        .expect("EHLO");
    let probe = session
        .probe_auth_before_tls(Mechanism::Login)
        .await
        .expect("probe");
    let AuthProbe::Challenged {
        challenge,
        after_cancel,
    } = probe
    else {
        panic!("expected a challenge: {probe:?}")
    };
    assert_eq!(challenge.code.value(), 334);
    assert_eq!(after_cancel.code.value(), 501);
    session.close().await;
    let recorded = server.finish();
    assert_eq!(
        String::from_utf8_lossy(&recorded.plain),
        "EHLO probe.test\r\nAUTH LOGIN\r\n*\r\n",
        "the only bytes after EHLO are the AUTH command and its cancellation"
    );
}

#[tokio::test]
async fn a_refused_auth_probe_sends_no_cancel() {
    let server = Server::raw(None, |conn| {
        conn.send(b"220 fake ESMTP\r\n")?;
        while let Some(line) = conn.read_line()? {
            let reply: &[u8] = if line.starts_with(b"AUTH") {
                b"538 5.7.11 Encryption required for requested authentication mechanism\r\n"
            } else {
                b"500 unexpected\r\n"
            };
            conn.send(reply)?;
        }
        Ok(())
    });
    let config = session_config(server.addr, None, TlsMode::StartTls);
    let (mut session, _) = Session::connect(config, Box::new(|_| {}))
        .await
        .expect("connects");
    let probe = session
        .probe_auth_before_tls(Mechanism::Plain)
        .await
        .expect("probe");
    assert!(
        matches!(&probe, AuthProbe::Refused(reply) if reply.code.value() == 538),
        "{probe:?}"
    );
    session.close().await;
    assert_eq!(
        String::from_utf8_lossy(&server.finish().plain),
        "AUTH PLAIN\r\n"
    );
}

// ---------------------------------------------------------------------------------------------
// STARTTLS command injection (CVE-2011-0411 class)
// ---------------------------------------------------------------------------------------------

/// A server that reads `STARTTLS\r\nNOOP\r\n`, starts TLS, and either runs the NOOP it read in
/// cleartext (the vulnerable behaviour) or drops it (the careful one).
fn starttls_server(pki: &Pki, vulnerable: bool) -> Server {
    Server::raw(Some(pki.server_config(Leaf::Good)), move |conn| {
        conn.send(b"220 fake ESMTP\r\n")?;
        let _ehlo = conn.read_line()?;
        conn.send(b"250-fake\r\n250 STARTTLS\r\n")?;
        let starttls = conn.read_line()?;
        assert_eq!(starttls.as_deref(), Some(&b"STARTTLS"[..]));
        // Already in the buffer: it came in the same write.
        let pipelined = conn.read_line()?;
        assert_eq!(pipelined.as_deref(), Some(&b"NOOP"[..]));
        conn.send(b"220 2.0.0 Ready to start TLS\r\n")?;
        conn.start_tls()?;
        if vulnerable {
            conn.send(b"250 2.0.0 Ok\r\n")?;
        }
        while let Some(line) = conn.read_line()? {
            if line.eq_ignore_ascii_case(b"QUIT") {
                conn.send(b"221 2.0.0 Bye\r\n")?;
                break;
            }
            conn.send(b"500 unexpected\r\n")?;
        }
        Ok(())
    })
}

#[tokio::test]
async fn a_server_that_runs_the_pipelined_noop_inside_tls_is_vulnerable() {
    let pki = Pki::new();
    let server = starttls_server(&pki, true);
    let config = session_config(server.addr, Some(pki.ca_der()), TlsMode::StartTls);
    let recorder = Recorder::new();
    let seen = injection::probe(&config, "probe.test", &recorder).await;
    assert!(
        matches!(&seen, InjectionSeen::Vulnerable(reply) if reply.code == 250),
        "{seen:?}"
    );
    let transcript = render_plain(&recorder.events());
    assert!(transcript.contains("tls   S: 250 2.0.0 Ok"), "{transcript}");
    let recorded = server.finish();
    assert!(recorded.plain.ends_with(b"STARTTLS\r\nNOOP\r\n"));
    // Inside TLS the probe sent only QUIT: the 250 was not asked for.
    assert_eq!(String::from_utf8_lossy(&recorded.tls), "QUIT\r\n");
}

#[tokio::test]
async fn a_server_that_discards_the_pipelined_noop_is_safe() {
    let pki = Pki::new();
    let server = starttls_server(&pki, false);
    let config = session_config(server.addr, Some(pki.ca_der()), TlsMode::StartTls);
    let recorder = Recorder::new();
    let seen = injection::probe(&config, "probe.test", &recorder).await;
    assert_eq!(seen, InjectionSeen::Safe);
    assert_eq!(
        String::from_utf8_lossy(&server.finish().tls),
        "QUIT\r\n",
        "nothing but QUIT inside TLS"
    );
    // And judged: a failure when vulnerable, a pass when safe (see findings' unit tests).
    let events = recorder.events();
    assert!(events.iter().any(
        |e| matches!(&e.kind, EventKind::Note(n) if n.contains("waiting for an unasked reply"))
    ));
}

/// A fake server for probes that open several connections: the n-th accepted connection runs
/// the n-th script. Reads and writes time out, so a script never hangs a test.
type Script = Box<dyn FnOnce(&mut BufReader<TcpStream>) -> std::io::Result<()> + Send>;

fn serve_in_turn(scripts: Vec<Script>) -> (SocketAddr, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let handle = std::thread::spawn(move || {
        for script in scripts {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
            let mut reader = BufReader::new(stream);
            let _ = script(&mut reader);
            let _ = reader.get_ref().shutdown(std::net::Shutdown::Both);
        }
    });
    (addr, handle)
}

fn line(reader: &mut BufReader<TcpStream>) -> std::io::Result<String> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    Ok(line.trim_end().to_owned())
}

fn say(reader: &mut BufReader<TcpStream>, bytes: &[u8]) -> std::io::Result<()> {
    reader.get_mut().write_all(bytes)
}

/// Reads the ClientHello that follows a 220 to STARTTLS and returns its first bytes.
fn client_hello(reader: &mut BufReader<TcpStream>) -> std::io::Result<Vec<u8>> {
    let mut hello = vec![0u8; 11];
    reader.read_exact(&mut hello)?;
    Ok(hello)
}

/// A GnuTLS server limited to TLS 1.0 and 1.1, as Exim on Debian with `tls_require_ciphers`
/// set so: rustls's hello (TLS 1.2 and 1.3, AEAD suites only) gets a handshake_failure alert,
/// and a hello offering TLS 1.0 to 1.2 with CBC suites gets a TLS 1.1 ServerHello.
fn old_tls_server() -> (SocketAddr, std::thread::JoinHandle<()>) {
    const HANDSHAKE_FAILURE: &[u8] = &[0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x28];
    let main: Script = Box::new(|conn| {
        say(conn, b"220 old.example ESMTP\r\n")?;
        loop {
            let command = line(conn)?;
            let reply: &[u8] = match command.as_str() {
                c if c.starts_with("EHLO") => b"250-old.example\r\n250 STARTTLS\r\n",
                c if c.starts_with("AUTH") => b"503 5.5.1 Error: authentication not enabled\r\n",
                c if c.starts_with("MAIL") => b"250 2.1.0 Ok\r\n",
                "RSET" => b"250 2.0.0 Ok\r\n",
                "STARTTLS" => {
                    say(conn, b"220 2.0.0 Ready to start TLS\r\n")?;
                    client_hello(conn)?;
                    return say(conn, HANDSHAKE_FAILURE);
                }
                "" => return Ok(()),
                _ => b"500 unexpected\r\n",
            };
            say(conn, reply)?;
        }
    });
    let second_hello: Script = Box::new(|conn| {
        say(conn, b"220 old.example ESMTP\r\n")?;
        let _ehlo = line(conn)?;
        say(conn, b"250-old.example\r\n250 STARTTLS\r\n")?;
        assert_eq!(line(conn)?, "STARTTLS");
        say(conn, b"220 2.0.0 Ready to start TLS\r\n")?;
        let hello = client_hello(conn)?;
        // A ClientHello offering at most TLS 1.2, the older way (no supported_versions).
        assert_eq!((hello[0], hello[5], hello[9], hello[10]), (0x16, 1, 3, 3));
        let mut server_hello = vec![
            0x16, 0x03, 0x02, 0x00, 0x2a, 0x02, 0x00, 0x00, 0x26, 0x03, 0x02,
        ];
        server_hello.extend([0x42; 32]);
        server_hello.extend([0x00, 0xc0, 0x13, 0x00]);
        say(conn, &server_hello)
    });
    serve_in_turn(vec![main, second_hello])
}

#[tokio::test]
async fn a_server_with_only_old_tls_fails_with_the_version_it_offers() {
    let (addr, server) = old_tls_server();
    let config = AuditConfig {
        session: session_config(addr, None, TlsMode::StartTls),
        role: Some(Role::Mx),
        implicit_port: None,
        no_implicit: true,
    };
    let recorder = Recorder::new();
    let audit = probe::run(config, &recorder).await.expect("audit runs");
    let findings = audit.findings();
    let handshake = findings
        .iter()
        .find(|f| f.id == FindingId::TlsHandshake)
        .expect("handshake finding");
    assert_eq!(handshake.verdict, Verdict::Fail, "{handshake:?}");
    assert!(
        handshake.why.contains("handshake_failure")
            && handshake.why.contains("offers at most TLS 1.1")
            && handshake.why.contains("ECDHE-RSA-AES128-SHA")
            && handshake.why.contains("RFC 8996"),
        "{handshake:?}"
    );
    assert!(
        handshake
            .fix
            .as_deref()
            .unwrap_or_default()
            .contains("Postfix: smtpd_tls_protocols = >=TLSv1.2"),
        "{handshake:?}"
    );
    let transcript = render_plain(&recorder.events());
    assert!(
        transcript.contains("a hello offering at most TLS 1.2"),
        "{transcript}"
    );
    server.join().expect("server ends");
}

/// A server that answers STARTTLS with a NOOP pipelined behind it with 220, then aborts the
/// handshake, as Dovecot does (it feeds the pipelined bytes to its TLS layer).
#[tokio::test]
async fn a_server_that_aborts_the_handshake_after_pipelined_starttls_is_safe() {
    let server = Server::raw(None, |conn| {
        conn.send(b"220 fake ESMTP\r\n")?;
        let _ehlo = conn.read_line()?;
        conn.send(b"250-fake\r\n250 STARTTLS\r\n")?;
        let _starttls = conn.read_line()?;
        let _noop = conn.read_line()?;
        conn.send(b"220 2.0.0 Begin TLS negotiation now.\r\n")?;
        conn.fail_tls_with(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x0a])
    });
    let config = session_config(server.addr, None, TlsMode::StartTls);
    let recorder = Recorder::new();
    let seen = injection::probe(&config, "probe.test", &recorder).await;
    assert!(matches!(seen, InjectionSeen::Aborted(_)), "{seen:?}");
    drop(server.finish());
}

// ---------------------------------------------------------------------------------------------
// The binary: exit statuses and output
// ---------------------------------------------------------------------------------------------

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
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

#[test]
fn nothing_listening_exits_3_and_usage_errors_exit_2() {
    // A port just released by the system: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let run = smtptui(&["audit", &format!("127.0.0.1:{port}"), "--timeout", "5"]);
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("cannot audit"), "{}", run.stderr);

    let run = smtptui(&["audit", "127.0.0.1:25", "--role", "relay"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let run = smtptui(&[
        "audit",
        "127.0.0.1:25",
        "--implicit-port",
        "465",
        "--no-implicit",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let run = smtptui(&["audit", "127.0.0.1:99999"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
}

/// Server behaviours that leave the audit with nothing to judge: each must end in exit 3 with
/// the reason on stderr, never in a clean report.
#[test]
fn an_audit_whose_probes_never_ran_exits_3_and_says_why() {
    type Behaviour = fn(&mut support::Conn) -> std::io::Result<()>;
    fn greet_then(conn: &mut support::Conn, after_ehlo: &[u8]) -> std::io::Result<()> {
        conn.send(b"220 fake.example ESMTP\r\n")?;
        let _ehlo = conn.read_line()?;
        conn.send(after_ehlo)
    }
    let cases: [(&str, Behaviour, &str); 5] = [
        (
            "421 right after EHLO",
            |conn| {
                greet_then(
                    conn,
                    b"421 4.7.0 fake.example Error: too many connections\r\n",
                )
            },
            "421 4.7.0 fake.example Error: too many connections",
        ),
        (
            "EHLO refused",
            |conn| greet_then(conn, b"554 5.7.1 Access denied\r\n"),
            "554 5.7.1 Access denied",
        ),
        (
            "an endless EHLO reply",
            |conn| {
                conn.send(b"220 fake.example ESMTP\r\n")?;
                let _ehlo = conn.read_line()?;
                for _ in 0..100_000 {
                    conn.send(b"250-FILLER\r\n")?;
                }
                Ok(())
            },
            "lines",
        ),
        (
            "an overlong EHLO line",
            |conn| greet_then(conn, &[b"250-".as_slice(), &[b'a'; 70_000]].concat()),
            "protocol error",
        ),
        (
            "an EHLO reply cut off",
            |conn| greet_then(conn, b"250-fake.example\r\n250-PIPE"),
            "in the middle of a reply",
        ),
    ];
    for (name, behaviour, expected) in cases {
        let server = Server::raw(None, behaviour);
        let run = smtptui(&[
            "audit",
            &server.target(),
            "--role",
            "submission",
            "--no-implicit",
            "--timeout",
            "10",
        ]);
        assert_eq!(run.code, 3, "{name}:\n{}{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains(expected) && run.stderr.contains("nothing could be judged"),
            "{name}: {}",
            run.stderr
        );
        assert!(!run.stdout.contains("0 fail"), "{name}: {}", run.stdout);
        drop(server.finish());
    }
}

#[test]
fn a_421_in_the_middle_of_the_probes_is_a_failing_finding() {
    let server = Server::raw(None, |conn| {
        conn.send(b"220 fake.example ESMTP\r\n")?;
        while let Some(line) = conn.read_line()? {
            let reply: &[u8] = match line.as_slice() {
                l if l.starts_with(b"EHLO") => b"250-fake.example\r\n250 STARTTLS\r\n",
                l if l.starts_with(b"AUTH") => b"503 5.5.1 Error: authentication not enabled\r\n",
                l if l.starts_with(b"MAIL") => {
                    conn.send(b"421 4.3.2 Service shutting down\r\n")?;
                    return Ok(());
                }
                _ => b"500 unexpected\r\n",
            };
            conn.send(reply)?;
        }
        Ok(())
    });
    let run = smtptui(&[
        "audit",
        &server.target(),
        "--role",
        "submission",
        "--no-implicit",
        "--timeout",
        "10",
    ]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let cut = line_of(&run.stdout, "probing-cut-short");
    assert!(
        cut.starts_with("FAIL")
            && cut.contains("421 4.3.2 Service shutting down")
            && cut.contains("at MAIL FROM:<>")
            && cut.contains("STARTTLS, the handshake and the certificate"),
        "{}",
        run.stdout
    );
    // The 421 is not judged as a refusal of mail without TLS.
    assert!(!run.stdout.contains("mail-without-tls"), "{}", run.stdout);
    drop(server.finish());
}

// ---------------------------------------------------------------------------------------------
// The real Postfix
// ---------------------------------------------------------------------------------------------

fn postfix_audit(port_key: &str, extra: &[&str]) -> Option<Ran> {
    let pf = postfix()?;
    let target = format!("127.0.0.1:{}", pf.port(port_key));
    let mut args = vec![
        "audit",
        &target,
        "--ca-file",
        pf.get("CA_FILE"),
        "--servername",
        "localhost",
        "--timeout",
        "10",
    ];
    args.extend_from_slice(extra);
    Some(smtptui(&args))
}

fn line_of<'a>(text: &'a str, id: &str) -> &'a str {
    text.lines()
        .find(|l| {
            l.get(6..)
                .is_some_and(|rest| rest.starts_with(&format!("{id}:")))
        })
        .unwrap_or_else(|| panic!("no {id} line in:\n{text}"))
}

#[test]
fn postfix_legacy_on_submission_fails_and_names_auth_only() {
    let Some(run) = postfix_audit("LEGACY_PORT", &["--role", "submission", "--no-implicit"]) else {
        return;
    };
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    for id in ["auth-advertised-before-tls", "auth-accepted-before-tls"] {
        assert!(
            line_of(&run.stdout, id).starts_with("FAIL"),
            "{}",
            run.stdout
        );
    }
    assert!(
        run.stdout.contains(
            "auth-accepted-before-tls: AUTH LOGIN before TLS was answered with a 334 challenge"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "      fix: offer and accept AUTH only inside TLS (RFC 4954 §4, RFC 8314 §5). \
             Postfix: smtpd_tls_auth_only = yes"
        ),
        "{}",
        run.stdout
    );
    assert!(line_of(&run.stdout, "mail-without-tls").starts_with("FAIL"));
    assert!(line_of(&run.stdout, "starttls-injection").starts_with("PASS"));
}

#[test]
fn postfix_mx_with_may_passes_as_an_mx() {
    let Some(run) = postfix_audit("MX_PORT", &["--role", "mx"]) else {
        return;
    };
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    for id in [
        "starttls-offered",
        "auth-advertised-before-tls",
        "auth-accepted-before-tls",
        "mail-without-tls",
        "tls-handshake",
        "certificate-chain",
        "starttls-after-tls",
        "starttls-injection",
    ] {
        assert!(
            line_of(&run.stdout, id).starts_with("PASS"),
            "{id}\n{}",
            run.stdout
        );
    }
    assert!(
        !run.stdout.contains("implicit-tls"),
        "an MX is not asked for 465"
    );
    // The same server judged as submission: mail without TLS is now the failure.
    let Some(run) = postfix_audit("MX_PORT", &["--role", "submission", "--no-implicit"]) else {
        return;
    };
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(line_of(&run.stdout, "mail-without-tls").starts_with("FAIL"));
}

#[test]
fn postfix_submission_with_auth_only_passes_and_finds_implicit_tls() {
    let Some(pf) = postfix() else { return };
    let implicit = pf.port("IMPLICIT_PORT").to_string();
    let Some(run) = postfix_audit(
        "SUBMISSION_PORT",
        &["--role", "submission", "--implicit-port", &implicit],
    ) else {
        return;
    };
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    for id in [
        "auth-advertised-before-tls",
        "auth-accepted-before-tls",
        "mail-without-tls",
        "auth-after-tls",
        "implicit-tls",
    ] {
        assert!(
            line_of(&run.stdout, id).starts_with("PASS"),
            "{id}\n{}",
            run.stdout
        );
    }
    assert!(
        run.stdout
            .contains("530 5.7.0 Must issue a STARTTLS command first")
    );
    // As an MX, requiring TLS is only a warning, and it names the setting.
    let Some(run) = postfix_audit("SUBMISSION_PORT", &["--role", "mx"]) else {
        return;
    };
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(line_of(&run.stdout, "mail-without-tls").starts_with("WARN"));
    assert!(run.stdout.contains("smtpd_tls_security_level = may"));
}

#[test]
fn postfix_implicit_port_is_audited_with_tls_from_the_first_byte() {
    let Some(run) = postfix_audit(
        "IMPLICIT_PORT",
        &["--tls", "implicit", "--role", "submission"],
    ) else {
        return;
    };
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(line_of(&run.stdout, "transport").starts_with("INFO"));
    assert!(line_of(&run.stdout, "auth-after-tls").starts_with("PASS"));
}

#[test]
fn postfix_bad_certificates_are_findings_not_aborts() {
    let Some(run) = postfix_audit("EXPIRED_PORT", &[]) else {
        return;
    };
    // No AUTH on that listener: judged as an MX, where an expired certificate is a warning.
    assert!(
        run.stdout.contains("as mx (not a well-known port"),
        "{}",
        run.stdout
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let expiry = line_of(&run.stdout, "certificate-expiry");
    assert!(
        expiry.starts_with("WARN") && expiry.contains("expired"),
        "{expiry}"
    );
    let Some(run) = postfix_audit("EXPIRED_PORT", &["--role", "submission", "--no-implicit"])
    else {
        return;
    };
    assert_eq!(run.code, 1);
    assert!(line_of(&run.stdout, "certificate-expiry").starts_with("FAIL"));

    let Some(run) = postfix_audit("WRONGNAME_PORT", &["--role", "submission", "--no-implicit"])
    else {
        return;
    };
    assert_eq!(run.code, 1, "{}", run.stdout);
    let name = line_of(&run.stdout, "certificate-name");
    assert!(
        name.starts_with("FAIL") && name.contains("wrong.example"),
        "{name}"
    );
    assert!(line_of(&run.stdout, "certificate-expiry").starts_with("PASS"));
}

#[test]
fn postfix_json_and_transcript() {
    let dir = tempfile::tempdir().expect("tempdir");
    let transcript = dir.path().join("audit.txt");
    let transcript_arg = transcript.display().to_string();
    let Some(run) = postfix_audit(
        "LEGACY_PORT",
        &[
            "--role",
            "submission",
            "--no-implicit",
            "--json",
            "--transcript",
            &transcript_arg,
        ],
    ) else {
        return;
    };
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let value: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON object");
    assert_eq!(value["role"], "submission");
    let auth = value["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["id"] == "auth-accepted-before-tls")
        .expect("auth finding");
    assert_eq!(auth["verdict"], "fail");
    assert!(
        auth["fix"]
            .as_str()
            .unwrap_or_default()
            .contains("smtpd_tls_auth_only = yes")
    );

    let text = std::fs::read_to_string(&transcript).expect("transcript written");
    assert!(text.contains("plain C: AUTH LOGIN"), "{text}");
    assert!(text.contains("plain S: 334"), "{text}");
    assert!(text.contains("plain C: *"), "{text}");
    assert!(text.contains("STARTTLS\\r\\nNOOP (one write)"), "{text}");
    // No other AUTH line, and nothing was sent as credentials.
    let auth_lines = text.lines().filter(|l| l.contains("C: AUTH")).count();
    assert_eq!(auth_lines, 1, "{text}");
    assert!(!text.contains("hidden"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Other real MTAs: Exim 4 (GnuTLS) and Dovecot submission
// ---------------------------------------------------------------------------------------------

/// Audits `host:port` of a real MTA through the binary, trusting its test CA.
fn mta_audit(mta: &Mta, host: &str, port_key: &str, extra: &[&str]) -> Ran {
    let target = format!("{host}:{}", mta.port(port_key));
    let mut args = vec![
        "audit",
        &target,
        "--ca-file",
        mta.get("CA_FILE"),
        "--servername",
        "localhost",
        "--timeout",
        "10",
        "--no-implicit",
    ];
    args.extend_from_slice(extra);
    smtptui(&args)
}

fn fix_after<'a>(text: &'a str, id: &str) -> &'a str {
    let finding = line_of(text, id);
    text.lines()
        .skip_while(|l| *l != finding)
        .nth(1)
        .filter(|l| l.trim_start().starts_with("fix: "))
        .unwrap_or_else(|| panic!("no fix after {id} in:\n{text}"))
}

#[test]
fn exim_refusing_mail_with_a_starttls_acl_message_requires_tls() {
    let Some(exim) = exim() else { return };
    let run = mta_audit(
        exim,
        "127.0.0.1",
        "SUBMISSION_PORT",
        &["--role", "submission"],
    );
    let mail = line_of(&run.stdout, "mail-without-tls");
    assert!(
        mail.starts_with("PASS")
            && mail.contains("550 Must issue a STARTTLS command first: submission requires TLS"),
        "{}",
        run.stdout
    );
    // As an MX the same refusal turns senders away, and the fix is Exim's.
    let run = mta_audit(exim, "127.0.0.1", "SUBMISSION_PORT", &["--role", "mx"]);
    assert!(
        line_of(&run.stdout, "mail-without-tls").starts_with("WARN"),
        "{}",
        run.stdout
    );
    assert!(
        fix_after(&run.stdout, "mail-without-tls")
            .contains("Exim: drop the deny !encrypted = * ACL statement"),
        "{}",
        run.stdout
    );
}

#[test]
fn exim_offering_only_tls_1_0_and_1_1_is_named_as_such() {
    let Some(exim) = exim() else { return };
    let run = mta_audit(exim, "127.0.0.1", "OLDTLS_PORT", &["--role", "mx"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let handshake = line_of(&run.stdout, "tls-handshake");
    assert!(
        handshake.starts_with("FAIL")
            && handshake.contains("handshake_failure")
            && handshake.contains("the server offers at most TLS 1.1")
            && handshake.contains("RFC 8996"),
        "{}",
        run.stdout
    );
    assert!(
        fix_after(&run.stdout, "tls-handshake")
            .contains("Exim: tls_require_ciphers = NORMAL:-VERS-TLS1.0:-VERS-TLS1.1"),
        "{}",
        run.stdout
    );
}

#[test]
fn old_tls_versions_next_to_new_ones_are_found_not_assumed_absent() {
    // Debian's GnuTLS with Exim's default priority still takes TLS 1.0 and 1.1.
    let Some(exim) = exim() else { return };
    let run = mta_audit(
        exim,
        "127.0.0.1",
        "SUBMISSION_PORT",
        &["--role", "submission"],
    );
    let old = line_of(&run.stdout, "tls-old-versions");
    assert!(
        old.starts_with("WARN") && old.contains("the server accepts TLS 1.0 and TLS 1.1"),
        "{}",
        run.stdout
    );
    assert!(
        fix_after(&run.stdout, "tls-old-versions").contains("Exim: tls_require_ciphers"),
        "{}",
        run.stdout
    );
    // Dovecot's ssl_min_protocol = TLSv1.2 refuses them.
    let Some(dovecot) = dovecot() else { return };
    let run = mta_audit(
        dovecot,
        dovecot.get("SUBMISSION_HOST"),
        "SUBMISSION_PORT",
        &["--role", "submission"],
    );
    assert!(
        line_of(&run.stdout, "tls-old-versions")
            .starts_with("PASS  tls-old-versions: TLS 1.0 and 1.1 are refused"),
        "{}",
        run.stdout
    );
}

#[test]
fn exim_fixes_name_exims_settings_not_postfixs() {
    let Some(exim) = exim() else { return };
    let run = mta_audit(exim, "127.0.0.1", "LEGACY_PORT", &["--role", "submission"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        line_of(&run.stdout, "server").contains("Exim, as the greeting says"),
        "{}",
        run.stdout
    );
    for id in ["auth-advertised-before-tls", "auth-accepted-before-tls"] {
        assert!(
            line_of(&run.stdout, id).starts_with("FAIL"),
            "{}",
            run.stdout
        );
        assert!(
            fix_after(&run.stdout, id)
                .contains("Exim: server_advertise_condition = ${if def:tls_in_cipher}"),
            "{}",
            run.stdout
        );
    }
    assert!(
        fix_after(&run.stdout, "mail-without-tls").contains("Exim: in acl_smtp_mail"),
        "{}",
        run.stdout
    );
    let postfix_words = run
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("fix: "))
        .filter(|l| l.contains("smtpd_") || l.contains("Postfix"))
        .collect::<Vec<_>>();
    assert!(postfix_words.is_empty(), "{postfix_words:#?}");
}

#[test]
fn dovecot_530_authentication_required_is_not_tls_required() {
    // disable_plaintext_auth = no: AUTH is taken in cleartext, and MAIL before it gets
    // "530 5.7.0 Authentication required." (RFC 4954), which does not protect the message.
    let Some(dovecot) = dovecot() else { return };
    let run = mta_audit(
        dovecot,
        dovecot.get("PLAINTEXT_HOST"),
        "PLAINTEXT_PORT",
        &["--role", "submission"],
    );
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let mail = line_of(&run.stdout, "mail-without-tls");
    assert!(
        mail.starts_with("FAIL")
            && mail.contains("refused only until AUTH (530 5.7.0 Authentication required.)"),
        "{}",
        run.stdout
    );
    assert!(
        fix_after(&run.stdout, "mail-without-tls")
            .contains("Dovecot: disable_plaintext_auth = yes"),
        "{}",
        run.stdout
    );
    assert!(line_of(&run.stdout, "auth-accepted-before-tls").starts_with("FAIL"));
}

#[test]
fn dovecot_submission_passes_and_aborting_a_pipelined_starttls_is_safe() {
    let Some(dovecot) = dovecot() else { return };
    let run = mta_audit(
        dovecot,
        dovecot.get("SUBMISSION_HOST"),
        "SUBMISSION_PORT",
        &["--role", "submission"],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let injection = line_of(&run.stdout, "starttls-injection");
    assert!(
        injection.starts_with("PASS") && injection.contains("aborted the TLS handshake"),
        "{}",
        run.stdout
    );
    for id in [
        "auth-advertised-before-tls",
        "auth-accepted-before-tls",
        "mail-without-tls",
        "auth-after-tls",
    ] {
        assert!(
            line_of(&run.stdout, id).starts_with("PASS"),
            "{id}\n{}",
            run.stdout
        );
    }
}

#[test]
fn dovecot_trusts_its_own_address_and_the_report_says_so() {
    // The same settings (ssl = required, disable_plaintext_auth = yes) on 127.0.0.1, where the
    // client shares the server's address: Dovecot counts it as secure and offers AUTH.
    let Some(dovecot) = dovecot() else { return };
    let run = mta_audit(
        dovecot,
        dovecot.get("LOCAL_HOST"),
        "LOCAL_PORT",
        &["--role", "submission"],
    );
    assert!(
        line_of(&run.stdout, "auth-accepted-before-tls").starts_with("FAIL"),
        "{}",
        run.stdout
    );
    let vantage = line_of(&run.stdout, "vantage-point");
    assert!(
        vantage.starts_with("INFO")
            && vantage.contains("127.0.0.1 (loopback)")
            && vantage.contains("Dovecot counts a client on its own address")
            && vantage.contains("remote users may see a different posture"),
        "{}",
        run.stdout
    );
}
