//! `smtptui audit` against the lab's profiles (in-process), small fake servers (the exact
//! bytes of the AUTH probe; STARTTLS command injection, vulnerable and careful), and the real
//! loopback Postfix of `scripts/postfix-env.sh` (through the binary).

#![allow(clippy::panic)] // panicking is how a test fails

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use smtptui::audit::findings::{Finding, InjectionSeen, Role, RoleSource, Verdict};
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
        },
        policy: GuardPolicy::default(),
        timeout: Duration::from_secs(10),
        limits: ReplyLimits::default(),
        unasked: smtptui::session::UnaskedReplies::Fatal,
        known_secrets: Vec::new(),
    }
}

struct Audited {
    audit: Audit,
    findings: Vec<Finding>,
    transcript: String,
}

impl Audited {
    fn verdict(&self, id: &str) -> Verdict {
        self.find(id).verdict
    }

    fn find(&self, id: &str) -> &Finding {
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
        "starttls-offered",
        "auth-advertised-before-tls",
        "auth-accepted-before-tls",
        "mail-without-tls",
        "tls-handshake",
        "certificate-chain",
        "certificate-name",
        "starttls-after-tls",
        "auth-after-tls",
        "starttls-injection",
        "implicit-tls",
    ] {
        assert_eq!(run.verdict(id), Verdict::Pass, "{id}: {:#?}", run.findings);
    }
    // The lab makes a 7-day certificate at every start: under 21 days is a warning to renew.
    let expiry = run.find("certificate-expiry");
    assert_eq!(expiry.verdict, Verdict::Warn, "{expiry:?}");
    assert!(expiry.fix.as_deref().unwrap_or_default().contains("renew"));
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
    assert_eq!(run.verdict("mail-without-tls"), Verdict::Pass);
    assert_eq!(run.verdict("auth-after-tls"), Verdict::Info);
    assert!(run.find("role").why.contains("--role submission"));
    lab.shutdown().await;
}

#[tokio::test]
async fn lab_legacy_fails_auth_before_tls_and_the_probe_sends_no_credential() {
    let lab = quiet_lab(vec![Profile::Legacy]).await;
    let run = audit_lab(&lab, Profile::Legacy, None, TlsMode::StartTls, None).await;
    assert_eq!(run.audit.role.role, Role::Submission);
    assert_eq!(run.audit.role.source, RoleSource::AuthAdvertised);
    for id in ["auth-advertised-before-tls", "auth-accepted-before-tls"] {
        let finding = run.find(id);
        assert_eq!(finding.verdict, Verdict::Fail, "{finding:?}");
        assert!(
            finding
                .fix
                .as_deref()
                .unwrap_or_default()
                .contains("smtpd_tls_auth_only = yes"),
            "{finding:?}"
        );
    }
    assert_eq!(run.verdict("mail-without-tls"), Verdict::Fail);
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
    assert_eq!(run.verdict("starttls-offered"), Verdict::Fail);
    assert_eq!(run.verdict("auth-accepted-before-tls"), Verdict::Fail);
    assert!(
        run.find("starttls-offered")
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
    let finding = refused.find("tls-handshake");
    assert_eq!(finding.verdict, Verdict::Fail);
    assert!(finding.why.contains("454"), "{finding:?}");

    let injected = audit_lab(&lab, Profile::Inject, None, TlsMode::StartTls, None).await;
    let finding = injected.find("tls-handshake");
    assert_eq!(finding.verdict, Verdict::Fail);
    assert!(finding.why.contains("response injection"), "{finding:?}");
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
    assert_eq!(run.verdict("transport"), Verdict::Info);
    assert_eq!(run.verdict("tls-handshake"), Verdict::Pass);
    assert_eq!(run.verdict("auth-after-tls"), Verdict::Pass);
    assert!(run.findings.iter().all(|f| f.id != "mail-without-tls"));
    lab.shutdown().await;
}

#[tokio::test]
async fn implicit_tls_against_a_cleartext_port_is_a_finding_not_unreachable() {
    let lab = quiet_lab(vec![Profile::Mx]).await;
    let run = audit_lab(&lab, Profile::Mx, None, TlsMode::Implicit, None).await;
    assert_eq!(
        run.verdict("tls-handshake"),
        Verdict::Fail,
        "{:#?}",
        run.findings
    );
    assert!(run.findings.iter().all(|f| f.id != "greeting"));
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

#[tokio::test]
async fn a_server_with_only_old_tls_fails_with_the_reason() {
    // What a TLS 1.0-only server answers to a ClientHello offering only 1.2 and 1.3: a fatal
    // protocol_version alert, in a TLS 1.0 record.
    const PROTOCOL_VERSION_ALERT: &[u8] = &[0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46];
    let server = Server::raw(None, |conn| {
        conn.send(b"220 old ESMTP\r\n")?;
        while let Some(line) = conn.read_line()? {
            let reply: &[u8] = match line.as_slice() {
                l if l.starts_with(b"EHLO") => b"250-old\r\n250 STARTTLS\r\n",
                l if l.starts_with(b"AUTH") => b"503 5.5.1 Error: authentication not enabled\r\n",
                l if l.starts_with(b"MAIL") => b"250 2.1.0 Ok\r\n",
                b"RSET" => b"250 2.0.0 Ok\r\n",
                b"STARTTLS" => {
                    conn.send(b"220 2.0.0 Ready to start TLS\r\n")?;
                    return conn.fail_tls_with(PROTOCOL_VERSION_ALERT);
                }
                _ => b"500 unexpected\r\n",
            };
            conn.send(reply)?;
        }
        Ok(())
    });
    let config = AuditConfig {
        session: session_config(server.addr, None, TlsMode::StartTls),
        role: Some(Role::Mx),
        implicit_port: None,
        no_implicit: true,
    };
    let audit = probe::run(config, &Recorder::new())
        .await
        .expect("audit runs");
    let findings = audit.findings();
    let handshake = findings
        .iter()
        .find(|f| f.id == "tls-handshake")
        .expect("handshake finding");
    assert_eq!(handshake.verdict, Verdict::Fail, "{handshake:?}");
    assert!(
        handshake.why.contains("server offers no TLS 1.2/1.3")
            && handshake.why.contains("RFC 8996"),
        "{handshake:?}"
    );
    assert!(
        handshake
            .fix
            .as_deref()
            .unwrap_or_default()
            .contains("smtpd_tls_protocols")
    );
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
        run.stdout
            .contains("      fix: set smtpd_tls_auth_only = yes"),
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
