//! Hostile-server integration tests for `smtptui run`.
//!
//! Each test starts a scripted fake SMTP server on 127.0.0.1 (see `tests/support`), runs the
//! real binary against it, and checks the exit status, the user-visible message, and — where
//! credentials are involved — the bytes the server actually received.

#![allow(clippy::panic)] // test assertions

mod support;

use std::time::{Duration, Instant};

use support::{
    Conn, Flow, Leaf, PASSWORD, Pki, Run, Server, Smtp, StartTls, USER, assert_no_credentials,
    find_ci,
};

/// EHLO, STARTTLS, EHLO, bare AUTH PLAIN, QUIT.
const STARTTLS_AUTH: &str = "\
S: 220
C: EHLO client.example
S: 250
C: STARTTLS
S: 220
C: EHLO client.example
S: 250
C: AUTH PLAIN
S: 235
C: QUIT
S: 221
";

/// EHLO, STARTTLS, EHLO, QUIT (no credentials involved).
const STARTTLS_ONLY: &str = "\
S: 220
C: EHLO client.example
S: 250
C: STARTTLS
S: 220
C: EHLO client.example
S: 250
C: QUIT
S: 221
";

/// Cleartext EHLO then bare AUTH PLAIN.
const CLEARTEXT_AUTH: &str = "\
S: 220
C: EHLO client.example
S: 250
C: AUTH PLAIN
S: 235
C: QUIT
S: 221
";

fn tls_smtp(pki: &Pki, leaf: Leaf) -> Smtp {
    Smtp {
        tls: Some(pki.server_config(leaf)),
        ..Smtp::default()
    }
}

/// Nothing that could carry a credential crossed in cleartext, and the server never saw
/// a SASL exchange at all.
#[track_caller]
fn assert_no_auth_anywhere(rec: &support::Recorded) {
    assert!(
        find_ci(&rec.plain, b"AUTH").is_none(),
        "AUTH crossed in cleartext: {}",
        rec.dump()
    );
    assert!(
        find_ci(&rec.tls, b"AUTH").is_none(),
        "AUTH was sent inside TLS: {}",
        rec.dump()
    );
    assert!(
        rec.auth.is_empty(),
        "server received credentials: {:?}\n{}",
        rec.auth,
        rec.dump()
    );
    assert_no_credentials(
        &rec.all_bytes(),
        USER,
        PASSWORD,
        "bytes received by the server",
    );
}

// ---------------------------------------------------------------------------------------------
// 0. Harness self-check (independent of the binary): a minimal rustls client drives the fake
//    server, so a failure in the tests below can be attributed to the binary, not the harness.
// ---------------------------------------------------------------------------------------------

mod client {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;
    use std::sync::Arc;
    use std::time::Duration;

    pub fn read_reply<R: BufRead>(r: &mut R) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = r.read_line(&mut line).expect("read reply");
            assert!(n > 0, "EOF in reply: {all:?}");
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] == b' ' {
                return all;
            }
        }
    }

    pub fn tcp(target: &str) -> TcpStream {
        let s = TcpStream::connect(target).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.set_write_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s
    }

    pub fn tls_config(ca_der: &[u8]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(ca_der.to_vec()))
            .expect("add root");
        Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
        )
    }

    /// Tries a TLS handshake on `sock`; returns the error text on failure.
    pub fn handshake(
        sock: TcpStream,
        ca_der: &[u8],
    ) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, String> {
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let conn =
            rustls::ClientConnection::new(tls_config(ca_der), name).map_err(|e| e.to_string())?;
        let mut s = rustls::StreamOwned::new(conn, sock);
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock).map_err(|e| e.to_string())?;
        }
        Ok(s)
    }

    pub fn cmd<S: Read + Write>(r: &mut BufReader<S>, line: &str) -> String {
        r.get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("write");
        r.get_mut().flush().expect("flush");
        read_reply(r)
    }
}

#[test]
fn t00_harness_self_check_starttls_session() {
    use base64::Engine as _;
    use std::io::{BufReader, Write};
    let pki = Pki::new();
    let server = Server::smtp(tls_smtp(&pki, Leaf::Good));
    let mut r = BufReader::new(client::tcp(&server.target()));
    assert!(client::read_reply(&mut r).starts_with("220 "));
    assert!(client::cmd(&mut r, "EHLO me").contains("STARTTLS"));
    assert!(client::cmd(&mut r, "STARTTLS").starts_with("220 "));
    assert!(r.buffer().is_empty());
    let tls = client::handshake(r.into_inner(), pki.ca_der()).expect("handshake with good cert");
    let mut r = BufReader::new(tls);
    assert!(client::cmd(&mut r, "EHLO me").contains("AUTH PLAIN"));
    let blob = base64::engine::general_purpose::STANDARD.encode(format!("\0{USER}\0{PASSWORD}"));
    assert!(client::cmd(&mut r, &format!("AUTH PLAIN {blob}")).starts_with("235"));
    assert!(client::cmd(&mut r, "MAIL FROM:<a@b>").starts_with("250"));
    assert!(client::cmd(&mut r, "RCPT TO:<c@d>").starts_with("250"));
    assert!(client::cmd(&mut r, "DATA").starts_with("354"));
    r.get_mut()
        .write_all(b"Subject: x\r\n..dot\r\n")
        .expect("write");
    assert!(client::cmd(&mut r, ".").starts_with("250"));
    assert!(client::cmd(&mut r, "QUIT").starts_with("221"));
    drop(r);
    let rec = server.finish();
    assert_eq!(rec.tls_handshake, Some(Ok(())));
    assert_eq!(rec.plain, b"EHLO me\r\nSTARTTLS\r\n");
    assert!(rec.plain_after_starttls().is_empty());
    assert_eq!(
        rec.auth,
        vec![(USER.to_string(), PASSWORD.to_string(), true)]
    );
    assert_eq!(
        rec.messages,
        vec![vec![b"Subject: x".to_vec(), b"..dot".to_vec()]]
    );
    assert_no_credentials(&rec.plain, USER, PASSWORD, "plain");
    // Sanity of the detector itself: the TLS side does contain the blob.
    assert!(support::find_bytes(&rec.tls, blob.as_bytes()).is_some());
}

#[test]
fn t00_harness_self_check_certificates() {
    use std::io::BufReader;
    let pki = Pki::new();
    for (leaf, want) in [
        (Leaf::Expired, "expired"),
        (Leaf::WrongName, "not valid for name"),
    ] {
        let smtp = Smtp {
            implicit_tls: true,
            ..tls_smtp(&pki, leaf)
        };
        let server = Server::smtp(smtp);
        let Err(err) = client::handshake(client::tcp(&server.target()), pki.ca_der()) else {
            panic!("{leaf:?}: handshake must fail")
        };
        assert!(err.to_lowercase().contains(want), "{leaf:?}: {err}");
        let rec = server.finish();
        assert!(matches!(rec.tls_handshake, Some(Err(_))), "{}", rec.dump());
    }
    // Untrusted: verify the good leaf against a different CA.
    let other = Pki::new();
    let server = Server::smtp(Smtp {
        implicit_tls: true,
        ..tls_smtp(&pki, Leaf::Good)
    });
    let Err(err) = client::handshake(client::tcp(&server.target()), other.ca_der()) else {
        panic!("untrusted CA: handshake must fail")
    };
    assert!(err.to_lowercase().contains("issuer"), "{err}");
    server.finish();
    // Implicit TLS with the good leaf works and the greeting arrives inside TLS.
    let server = Server::smtp(Smtp {
        implicit_tls: true,
        ..tls_smtp(&pki, Leaf::Good)
    });
    let tls =
        client::handshake(client::tcp(&server.target()), pki.ca_der()).expect("good handshake");
    let mut r = BufReader::new(tls);
    assert!(client::read_reply(&mut r).starts_with("220 "));
    assert!(client::cmd(&mut r, "QUIT").starts_with("221"));
    drop(r);
    let rec = server.finish();
    assert!(rec.plain.is_empty());
    assert_eq!(rec.tls, b"QUIT\r\n");
}

#[test]
fn t00_harness_self_check_injection_is_one_segment() {
    use std::io::{BufReader, Write};
    let pki = Pki::new();
    let smtp = Smtp {
        starttls: StartTls::ReplyThenHandshake(b"220 Ready\r\n250 x".to_vec()),
        ..tls_smtp(&pki, Leaf::Good)
    };
    let server = Server::smtp(smtp);
    let mut r = BufReader::new(client::tcp(&server.target()));
    client::read_reply(&mut r);
    client::cmd(&mut r, "EHLO me");
    r.get_mut().write_all(b"STARTTLS\r\n").expect("write");
    std::thread::sleep(Duration::from_millis(200));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut r, &mut line).expect("read");
    assert_eq!(line, "220 Ready\r\n");
    assert_eq!(
        r.buffer(),
        b"250 x",
        "injected fragment should be visible right after the 220"
    );
    drop(r);
    server.finish();
}

// ---------------------------------------------------------------------------------------------
// 1-2. STARTTLS response injection
// ---------------------------------------------------------------------------------------------

fn injection_case(reply: &[u8]) -> (support::Outcome, support::Recorded) {
    let pki = Pki::new();
    let smtp = Smtp {
        starttls: StartTls::ReplyThenHandshake(reply.to_vec()),
        ..tls_smtp(&pki, Leaf::Good)
    };
    let server = Server::smtp(smtp);
    let out = Run::new(STARTTLS_AUTH, &server.target())
        .args(["--ca-file", &pki.ca_arg(), "--servername", "localhost"])
        .creds()
        .run();
    (out, server.finish())
}

#[test]
fn t01_injected_reply_after_starttls_220_same_write() {
    let (out, rec) = injection_case(b"220 2.0.0 Ready to start TLS\r\n250 fake injected\r\n");
    out.assert_code(3).assert_contains("response injection");
    // One clear verdict: the injected bytes are not also announced as a reply to come.
    assert!(!out.stdout.contains("beyond this reply"), "{}", out.stdout);
    // Nothing after STARTTLS in cleartext, and no command made it through TLS either.
    assert!(
        rec.plain_after_starttls().is_empty(),
        "client sent cleartext after STARTTLS: {}",
        rec.dump()
    );
    assert!(
        find_ci(&rec.tls, b"EHLO").is_none(),
        "client continued after injection: {}",
        rec.dump()
    );
    assert_no_auth_anywhere(&rec);
    out.assert_no_credentials();
}

#[test]
fn t02_injected_crlfless_fragment_after_starttls_220() {
    let (out, rec) = injection_case(b"220 Ready\r\n250 x");
    out.assert_code(3).assert_contains("response injection");
    assert!(
        rec.plain_after_starttls().is_empty(),
        "client sent cleartext after STARTTLS: {}",
        rec.dump()
    );
    assert!(
        find_ci(&rec.tls, b"EHLO").is_none(),
        "client continued after injection: {}",
        rec.dump()
    );
    assert_no_auth_anywhere(&rec);
    out.assert_no_credentials();
}

// ---------------------------------------------------------------------------------------------
// 3. STARTTLS refused
// ---------------------------------------------------------------------------------------------

fn starttls_refused_case(reply: &[u8]) {
    let pki = Pki::new();
    // A downgrading server: refuses STARTTLS but would happily take AUTH in cleartext.
    let smtp = Smtp {
        starttls: StartTls::Reply(reply.to_vec()),
        ..tls_smtp(&pki, Leaf::Good)
    };
    let server = Server::smtp(smtp);
    let out = Run::new(STARTTLS_AUTH, &server.target())
        .args(["--ca-file", &pki.ca_arg(), "--servername", "localhost"])
        .creds()
        .run();
    let rec = server.finish();
    out.assert_code(3).assert_contains("starttls refused");
    assert!(!rec.tls_started, "no TLS expected: {}", rec.dump());
    assert_no_auth_anywhere(&rec);
    out.assert_no_credentials();
}

#[test]
fn t03a_starttls_answered_454() {
    starttls_refused_case(b"454 4.7.0 TLS not available due to local problem\r\n");
}

#[test]
fn t03b_starttls_answered_502() {
    starttls_refused_case(b"502 5.5.1 Command not implemented\r\n");
}

/// The scenario expects the refusal (`S: 454`), so the refusal itself is no failure; but the
/// session is still cleartext, so the following bare AUTH must be stopped by the guard.
#[test]
fn t03c_expected_starttls_refusal_then_auth_is_guarded() {
    let smtp = Smtp {
        starttls: StartTls::Reply(b"454 4.7.0 TLS not available\r\n".to_vec()),
        ..Smtp::default()
    };
    let server = Server::smtp(smtp);
    let scenario = "\
S: 220
C: EHLO client.example
S: 250
C: STARTTLS
S: 454
C: AUTH PLAIN
S: 235
C: QUIT
S: 221
";
    let out = Run::new(scenario, &server.target()).creds().run();
    let rec = server.finish();
    out.assert_code(4)
        .assert_contains("refused")
        .assert_contains("cleartext");
    assert_no_auth_anywhere(&rec);
    out.assert_no_credentials();
}

// ---------------------------------------------------------------------------------------------
// 4-6. Cleartext credential guard
// ---------------------------------------------------------------------------------------------

#[test]
fn t04_bare_auth_plain_on_cleartext_is_refused() {
    let smtp = Smtp {
        advertise_starttls: false,
        ..Smtp::default()
    };
    let server = Server::smtp(smtp);
    let out = Run::new(CLEARTEXT_AUTH, &server.target()).creds().run();
    let rec = server.finish();
    out.assert_code(4)
        .assert_contains("refused")
        .assert_contains("cleartext");
    assert_no_auth_anywhere(&rec);
    out.assert_no_credentials();
}

#[test]
fn t04b_bare_auth_login_on_cleartext_is_refused() {
    let smtp = Smtp {
        advertise_starttls: false,
        ..Smtp::default()
    };
    let server = Server::smtp(smtp);
    let out = Run::new(
        &CLEARTEXT_AUTH.replace("AUTH PLAIN", "AUTH LOGIN"),
        &server.target(),
    )
    .creds()
    .run();
    let rec = server.finish();
    out.assert_code(4)
        .assert_contains("refused")
        .assert_contains("cleartext");
    assert_no_auth_anywhere(&rec);
    out.assert_no_credentials();
}

/// The motivating case: `AUTH PLAIN <base64>` typed inline on a cleartext connection.
#[test]
fn t05_inline_auth_plain_blob_on_cleartext_is_refused() {
    const BLOB: &str = "AGFsaWNlAHNlY3JldA=="; // \0alice\0secret
    let smtp = Smtp {
        advertise_starttls: false,
        credentials: None,
        ..Smtp::default()
    };
    let server = Server::smtp(smtp);
    let scenario = format!(
        "S: 220\nC: EHLO client.example\nS: 250\nC: AUTH PLAIN {BLOB}\nS: 235\nC: QUIT\nS: 221\n"
    );
    let out = Run::new(&scenario, &server.target()).run();
    let rec = server.finish();
    out.assert_code(4)
        .assert_contains("refused")
        .assert_contains("cleartext");
    for needle in [BLOB, "AGFsaWNlAHNlY3JldA", "c2VjcmV0"] {
        assert!(
            find_ci(&rec.all_bytes(), needle.as_bytes()).is_none(),
            "{needle} reached the server: {}",
            rec.dump()
        );
        assert!(
            !out.stdout.contains(needle),
            "{needle} printed on stdout\n{}",
            out.dump()
        );
        assert!(
            !out.stderr.contains(needle),
            "{needle} printed on stderr\n{}",
            out.dump()
        );
    }
    assert!(
        find_ci(&rec.plain, b"AUTH").is_none(),
        "AUTH crossed in cleartext: {}",
        rec.dump()
    );
    assert!(rec.auth.is_empty());
}

#[test]
fn t06_allow_cleartext_auth_override_sends_with_warning() {
    let smtp = Smtp {
        advertise_starttls: false,
        ..Smtp::default()
    };
    let server = Server::smtp(smtp);
    let out = Run::new(CLEARTEXT_AUTH, &server.target())
        .creds()
        .arg("--allow-cleartext-auth")
        .run();
    let rec = server.finish();
    out.assert_code(0)
        .assert_contains("WARNING")
        .assert_contains("cleartext");
    assert!(
        out.combined().contains("WARNING"),
        "loud marker should be upper-case WARNING\n{}",
        out.dump()
    );
    // Explicitly allowed: the server did get the (correct) credentials, in cleartext.
    assert_eq!(
        rec.auth,
        vec![(USER.to_string(), PASSWORD.to_string(), false)],
        "{}",
        rec.dump()
    );
    assert!(
        find_ci(&rec.plain, b"AUTH PLAIN").is_some(),
        "{}",
        rec.dump()
    );
    // Still redacted on output.
    out.assert_no_credentials();
}

// ---------------------------------------------------------------------------------------------
// 7-10. Malformed / hostile replies
// ---------------------------------------------------------------------------------------------

const EHLO_QUIT: &str = "\
S: 220
C: EHLO client.example
S: 250
C: QUIT
S: 221
";

#[test]
fn t07_endless_multiline_reply_hits_a_limit() {
    let server = Server::lines(
        None,
        false,
        b"220 fake.example ESMTP\r\n",
        |conn: &mut Conn, line: &str| {
            if line.to_ascii_uppercase().starts_with("EHLO") {
                let chunk = "250-x\r\n".repeat(1000);
                let start = Instant::now();
                while start.elapsed() < Duration::from_secs(15) {
                    if conn.send(chunk.as_bytes()).is_err() {
                        break;
                    }
                }
                return Ok(Flow::Close);
            }
            conn.send(b"221 bye\r\n")?;
            Ok(Flow::Close)
        },
    );
    let out = Run::new(EHLO_QUIT, &server.target())
        .args(["--timeout", "10"])
        .run();
    server.finish();
    out.assert_code(3);
    assert!(
        out.has("too many lines") || out.has("too large"),
        "expected a size/line-count limit message\n{}",
        out.dump()
    );
    out.assert_not_contains("timed out");
    assert!(
        out.elapsed < Duration::from_secs(8),
        "limit should trip well before the 10 s timeout\n{}",
        out.dump()
    );
}

#[test]
fn t08_overlong_reply_line() {
    let server = Server::raw(None, |conn| {
        let mut g = b"220 ".to_vec();
        g.extend(std::iter::repeat_n(b'a', 100 * 1024));
        conn.send(&g)?;
        // Keep the connection open until the client gives up.
        while conn.read_line()?.is_some() {}
        Ok(())
    });
    let out = Run::new(EHLO_QUIT, &server.target())
        .args(["--timeout", "10"])
        .run();
    server.finish();
    out.assert_code(3)
        .assert_contains("too long")
        .assert_not_contains("timed out");
    assert!(
        out.elapsed < Duration::from_secs(8),
        "limit should trip well before the 10 s timeout\n{}",
        out.dump()
    );
}

#[test]
fn t09_trickling_greeting_hits_the_reply_deadline() {
    let server = Server::raw(None, |conn| {
        // One byte every 300 ms; the line never ends.
        let start = Instant::now();
        let mut bytes = b"220 slow".iter().copied().chain(std::iter::repeat(b'.'));
        while start.elapsed() < Duration::from_secs(20) {
            let b = bytes.next().unwrap_or(b'.');
            if conn.send(&[b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        Ok(())
    });
    let out = Run::new(EHLO_QUIT, &server.target())
        .args(["--timeout", "1"])
        .run();
    server.finish();
    out.assert_code(3).assert_contains("timed out");
    assert!(
        out.elapsed < Duration::from_secs(10),
        "per-reply deadline not enforced\n{}",
        out.dump()
    );
}

#[test]
fn t10_eof_in_the_middle_of_a_multiline_reply() {
    let server = Server::lines(
        None,
        false,
        b"220 fake.example ESMTP\r\n",
        |conn: &mut Conn, _line: &str| {
            conn.send(b"250-first\r\n")?;
            Ok(Flow::Close)
        },
    );
    let out = Run::new(EHLO_QUIT, &server.target()).run();
    server.finish();
    out.assert_code(3).assert_contains("closed");
}

// ---------------------------------------------------------------------------------------------
// 11-12. TLS failures
// ---------------------------------------------------------------------------------------------

#[test]
fn t11_garbage_instead_of_tls_handshake() {
    let pki = Pki::new();
    let smtp = Smtp {
        starttls: StartTls::ReplyThenGarbage(
            b"this is not TLS at all\r\n\x00\x01\x02\x03garbage".to_vec(),
        ),
        ..tls_smtp(&pki, Leaf::Good)
    };
    let server = Server::smtp(smtp);
    let out = Run::new(STARTTLS_AUTH, &server.target())
        .args(["--ca-file", &pki.ca_arg(), "--servername", "localhost"])
        .creds()
        .run();
    let rec = server.finish();
    out.assert_code(3);
    assert!(
        rec.plain_after_starttls().is_empty() || !rec.plain_after_starttls().starts_with(b"EHLO"),
        "{}",
        rec.dump()
    );
    assert_no_auth_anywhere(&rec);
    out.assert_no_credentials();
}

#[test]
fn t11b_server_closes_instead_of_tls_handshake() {
    let pki = Pki::new();
    let smtp = Smtp {
        starttls: StartTls::ReplyThenClose(b"220 2.0.0 Ready to start TLS\r\n".to_vec()),
        ..tls_smtp(&pki, Leaf::Good)
    };
    let server = Server::smtp(smtp);
    let out = Run::new(STARTTLS_AUTH, &server.target())
        .args(["--ca-file", &pki.ca_arg(), "--servername", "localhost"])
        .creds()
        .run();
    let rec = server.finish();
    out.assert_code(3);
    assert_no_auth_anywhere(&rec);
    out.assert_no_credentials();
}

/// Extra args to reach `leaf`: trust the CA except for the unknown-issuer case.
fn cert_args(pki: &Pki, leaf: Leaf, trust_ca: bool) -> Vec<String> {
    let _ = leaf;
    let mut a = vec!["--servername".to_string(), "localhost".to_string()];
    if trust_ca {
        a.push("--ca-file".into());
        a.push(pki.ca_arg());
    }
    a
}

/// Without --insecure: handshake fails, exit 3 with `message`, and the bare AUTH that follows
/// in the scenario never happens (no credential byte anywhere, not even inside TLS).
fn cert_failure_strict(leaf: Leaf, trust_ca: bool, message: &str) {
    let pki = Pki::new();
    let server = Server::smtp(tls_smtp(&pki, leaf));
    let out = Run::new(STARTTLS_AUTH, &server.target())
        .args(cert_args(&pki, leaf, trust_ca))
        .creds()
        .run();
    let rec = server.finish();
    out.assert_code(3).assert_contains(message);
    assert!(
        rec.plain_after_starttls().is_empty(),
        "cleartext after STARTTLS: {}",
        rec.dump()
    );
    assert_no_auth_anywhere(&rec);
    out.assert_no_credentials();
}

/// With --insecure: the session continues, the verdict stays visible.
fn cert_failure_insecure(leaf: Leaf, trust_ca: bool) {
    let pki = Pki::new();
    let server = Server::smtp(tls_smtp(&pki, leaf));
    let out = Run::new(STARTTLS_ONLY, &server.target())
        .args(cert_args(&pki, leaf, trust_ca))
        .arg("--insecure")
        .run();
    let rec = server.finish();
    out.assert_code(0).assert_contains("not verified");
    assert_eq!(rec.tls_handshake, Some(Ok(())), "{}", rec.dump());
    assert!(
        find_ci(&rec.tls, b"EHLO").is_some(),
        "session did not continue inside TLS: {}",
        rec.dump()
    );
}

/// With --insecure, bare AUTH over the unverified TLS is allowed (insecure is the override).
fn cert_failure_insecure_auth(leaf: Leaf, trust_ca: bool) {
    let pki = Pki::new();
    let server = Server::smtp(tls_smtp(&pki, leaf));
    let out = Run::new(STARTTLS_AUTH, &server.target())
        .args(cert_args(&pki, leaf, trust_ca))
        .arg("--insecure")
        .creds()
        .run();
    let rec = server.finish();
    out.assert_code(0).assert_contains("not verified");
    assert_eq!(
        rec.auth,
        vec![(USER.to_string(), PASSWORD.to_string(), true)],
        "{}",
        rec.dump()
    );
    assert!(
        find_ci(&rec.plain, b"AUTH").is_none(),
        "AUTH crossed in cleartext: {}",
        rec.dump()
    );
    assert_no_credentials(&rec.plain, USER, PASSWORD, "cleartext bytes");
    out.assert_no_credentials();
}

#[test]
fn t12a_untrusted_ca() {
    cert_failure_strict(Leaf::Good, false, "unknown issuer");
}

#[test]
fn t12b_expired_certificate() {
    cert_failure_strict(Leaf::Expired, true, "expired");
}

#[test]
fn t12c_wrong_name() {
    cert_failure_strict(Leaf::WrongName, true, "not valid for name");
}

#[test]
fn t12d_untrusted_ca_insecure_continues() {
    cert_failure_insecure(Leaf::Good, false);
}

#[test]
fn t12e_expired_insecure_continues() {
    cert_failure_insecure(Leaf::Expired, true);
}

#[test]
fn t12f_wrong_name_insecure_continues() {
    cert_failure_insecure(Leaf::WrongName, true);
}

#[test]
fn t12g_untrusted_ca_insecure_allows_auth() {
    cert_failure_insecure_auth(Leaf::Good, false);
}

#[test]
fn t12h_expired_insecure_allows_auth() {
    cert_failure_insecure_auth(Leaf::Expired, true);
}

#[test]
fn t12i_wrong_name_insecure_allows_auth() {
    cert_failure_insecure_auth(Leaf::WrongName, true);
}

// ---------------------------------------------------------------------------------------------
// 13-14. Happy paths
// ---------------------------------------------------------------------------------------------

const HAPPY_STARTTLS: &str = "\
# Full session over STARTTLS.
S: 220 ESMTP
C: EHLO client.example
S: 250 STARTTLS
C: STARTTLS
S: 220
C: EHLO client.example
S: 250 AUTH
C: AUTH PLAIN
S: 235

C: MAIL FROM:<alice@example.com>
S: 250
C: RCPT TO:<bob@example.com>
S: 25x
C: DATA
S: 354
C: Subject: smtptui test
C: .dotted line
C: ..two dots
C: .
S: 2xx
C: QUIT
S: 221
";

#[test]
fn t13_happy_path_starttls_auth_data() {
    let pki = Pki::new();
    let server = Server::smtp(tls_smtp(&pki, Leaf::Good));
    let (run, transcript) = Run::new(HAPPY_STARTTLS, &server.target())
        .args(["--ca-file", &pki.ca_arg(), "--servername", "localhost"])
        .creds()
        .transcript();
    let out = run.run();
    let rec = server.finish();
    out.assert_code(0);
    assert_eq!(rec.tls_handshake, Some(Ok(())), "{}", rec.dump());
    // Credentials went inside TLS only, and were correct.
    assert_eq!(
        rec.auth,
        vec![(USER.to_string(), PASSWORD.to_string(), true)],
        "{}",
        rec.dump()
    );
    assert!(find_ci(&rec.plain, b"STARTTLS").is_some(), "{}", rec.dump());
    assert!(
        find_ci(&rec.plain, b"AUTH").is_none(),
        "AUTH crossed in cleartext: {}",
        rec.dump()
    );
    assert_no_credentials(&rec.plain, USER, PASSWORD, "cleartext bytes");
    assert!(
        rec.plain_after_starttls().is_empty(),
        "cleartext after STARTTLS: {}",
        rec.dump()
    );
    // Dot-stuffing.
    assert_eq!(rec.messages.len(), 1, "{}", rec.dump());
    let msg: Vec<String> = rec.messages[0]
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    assert_eq!(
        msg,
        vec!["Subject: smtptui test", "..dotted line", "...two dots"],
        "{}",
        rec.dump()
    );
    // Output is redacted, and says so.
    out.assert_no_credentials().assert_contains("hidden");
    // The transcript file is redacted as well.
    let t = std::fs::read(&transcript)
        .unwrap_or_else(|e| panic!("transcript {transcript:?} not written: {e}\n{}", out.dump()));
    assert!(
        find_ci(&t, b"EHLO").is_some(),
        "transcript lacks the session: {:?}",
        String::from_utf8_lossy(&t)
    );
    assert_no_credentials(&t, USER, PASSWORD, "transcript file");
}

#[test]
fn t14_happy_path_implicit_tls_with_password_file() {
    let pki = Pki::new();
    let smtp = Smtp {
        implicit_tls: true,
        advertise_starttls: false,
        ..tls_smtp(&pki, Leaf::Good)
    };
    let server = Server::smtp(smtp);
    let scenario = "\
S: 220
C: EHLO client.example
S: 250 AUTH
C: AUTH PLAIN
S: 235
C: MAIL FROM:<alice@example.com>
S: 250
C: RCPT TO:<bob@example.com>
S: 250
C: DATA
S: 354
C: Subject: implicit
C: .leading dot
C: .
S: 250
C: QUIT
S: 221
";
    let run = Run::new(scenario, &server.target());
    let pw_file = run.dir().join("pw.txt");
    std::fs::write(&pw_file, format!("{PASSWORD}\n")).expect("write password file");
    let out = run
        .args([
            "--tls",
            "implicit",
            "--ca-file",
            &pki.ca_arg(),
            "--servername",
            "localhost",
            "--user",
            USER,
        ])
        .args(["--password-file", &pw_file.to_string_lossy()])
        .run();
    let rec = server.finish();
    out.assert_code(0);
    assert!(
        rec.plain.is_empty(),
        "implicit TLS: nothing should be cleartext: {}",
        rec.dump()
    );
    assert_eq!(rec.tls_handshake, Some(Ok(())), "{}", rec.dump());
    assert_eq!(
        rec.auth,
        vec![(USER.to_string(), PASSWORD.to_string(), true)],
        "{}",
        rec.dump()
    );
    assert_eq!(rec.messages.len(), 1, "{}", rec.dump());
    assert_eq!(
        rec.messages[0].last().map(|l| l.as_slice()),
        Some(&b"..leading dot"[..]),
        "{}",
        rec.dump()
    );
    out.assert_no_credentials();
}

/// Implicit TLS against a certificate that does not verify: exit 3 before any credential.
#[test]
fn t14b_implicit_tls_untrusted_ca() {
    let pki = Pki::new();
    let smtp = Smtp {
        implicit_tls: true,
        advertise_starttls: false,
        ..tls_smtp(&pki, Leaf::Good)
    };
    let server = Server::smtp(smtp);
    let out = Run::new(CLEARTEXT_AUTH, &server.target())
        .args(["--tls", "implicit", "--servername", "localhost"])
        .creds()
        .run();
    let rec = server.finish();
    out.assert_code(3).assert_contains("unknown issuer");
    assert_no_auth_anywhere(&rec);
}

// ---------------------------------------------------------------------------------------------
// 15-16. Expectation failure and syntax errors
// ---------------------------------------------------------------------------------------------

#[test]
fn t15_expectation_failure_names_the_line() {
    let smtp = Smtp::default().on("MAIL", b"550 5.1.1 nope\r\n");
    let server = Server::smtp(smtp);
    // The failing expectation is on line 13.
    let scenario = "\
# expectation failure test
# (comments and blank lines count as lines)

S: 220
C: EHLO client.example
S: 250

# now the envelope
#
#
#
C: MAIL FROM:<alice@example.com>
S: 250
C: QUIT
S: 221
";
    let out = Run::new(scenario, &server.target()).run();
    server.finish();
    out.assert_code(1).assert_contains("550");
    assert!(
        out.names_line(13),
        "output should name scenario line 13\n{}",
        out.dump()
    );
}

fn syntax_error_case(scenario: &str, line: usize) {
    let server = Server::smtp(Smtp::default());
    let out = Run::new(scenario, &server.target())
        .file_name("broken-scenario.smtp")
        .run();
    server.finish();
    out.assert_code(2);
    assert!(
        out.names_file(),
        "output should name the scenario file\n{}",
        out.dump()
    );
    assert!(
        out.names_line(line),
        "output should name line {line}\n{}",
        out.dump()
    );
}

#[test]
fn t16a_syntax_error_unknown_prefix() {
    syntax_error_case("S: 220\nC: EHLO client.example\nX: foo\nS: 250\n", 3);
}

#[test]
fn t16b_syntax_error_bad_reply_code() {
    syntax_error_case(
        "# bad code\nS: 220\nC: EHLO client.example\n\nS: 99z\nC: QUIT\nS: 221\n",
        5,
    );
}

#[test]
fn t16c_no_password_flag_is_a_usage_error() {
    let server = Server::smtp(Smtp::default());
    let out = Run::new(EHLO_QUIT, &server.target())
        .args(["--password", PASSWORD])
        .run();
    server.finish();
    out.assert_code(2)
        .assert_contains("no --password option")
        .assert_contains("--password-file");
    out.assert_no_credentials();
}

#[test]
fn t16d_bad_tls_mode_is_a_usage_error() {
    let server = Server::smtp(Smtp::default());
    let out = Run::new(EHLO_QUIT, &server.target())
        .args(["--tls", "sometimes"])
        .run();
    server.finish();
    out.assert_code(2);
}

// ---------------------------------------------------------------------------------------------
// 17. Terminal escape sequences from the server
// ---------------------------------------------------------------------------------------------

const EVIL_GREETING: &[u8] = b"220 \x1b[31mred\x1b]0;title\x07 ESMTP\r\n";

fn escape_server() -> Server {
    let smtp = Smtp {
        greeting: EVIL_GREETING.to_vec(),
        hostname: "evil\x1b[2J\x1b]52;c;aGk=\x07.example".into(),
        ..Smtp::default()
    };
    Server::smtp(smtp)
}

#[test]
fn t17_terminal_escapes_never_reach_stdout() {
    let server = escape_server();
    let out = Run::new(EHLO_QUIT, &server.target()).run();
    server.finish();
    out.assert_code(0);
    assert!(
        !out.stdout_bytes.contains(&0x1b),
        "raw ESC on stdout\n{}",
        out.dump()
    );
    assert!(
        !out.stdout_bytes.contains(&0x07),
        "raw BEL on stdout\n{}",
        out.dump()
    );
}

/// Beyond the letter of the contract (which names stdout): stderr is a terminal too.
#[test]
fn t17b_terminal_escapes_never_reach_stderr() {
    let server = escape_server();
    let out = Run::new(EHLO_QUIT, &server.target()).run();
    server.finish();
    assert!(
        !out.stderr_bytes.contains(&0x1b),
        "raw ESC on stderr\n{}",
        out.dump()
    );
    assert!(
        !out.stderr_bytes.contains(&0x07),
        "raw BEL on stderr\n{}",
        out.dump()
    );
}

#[test]
fn t17c_terminal_escapes_in_json_mode() {
    let server = escape_server();
    let out = Run::new(EHLO_QUIT, &server.target()).arg("--json").run();
    server.finish();
    out.assert_code(0);
    assert!(
        !out.stdout_bytes.contains(&0x1b),
        "raw ESC on stdout\n{}",
        out.dump()
    );
    assert!(
        !out.stdout_bytes.contains(&0x07),
        "raw BEL on stdout\n{}",
        out.dump()
    );
}

// ---------------------------------------------------------------------------------------------
// 18. --json
// ---------------------------------------------------------------------------------------------

#[track_caller]
fn assert_json_lines(out: &support::Outcome) {
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(
        !lines.is_empty(),
        "no JSON events on stdout\n{}",
        out.dump()
    );
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l)
            .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l:?}\n{}", out.dump()));
        assert!(
            v.is_object(),
            "JSON event is not an object: {l}\n{}",
            out.dump()
        );
    }
}

#[test]
fn t18_json_every_line_parses() {
    let pki = Pki::new();
    let server = Server::smtp(tls_smtp(&pki, Leaf::Good));
    let out = Run::new(HAPPY_STARTTLS, &server.target())
        .args([
            "--ca-file",
            &pki.ca_arg(),
            "--servername",
            "localhost",
            "--json",
        ])
        .creds()
        .run();
    let rec = server.finish();
    out.assert_code(0);
    assert_json_lines(&out);
    out.assert_no_credentials();
    assert_eq!(rec.auth.len(), 1, "{}", rec.dump());
}

#[test]
fn t18b_json_on_failure_still_parses() {
    let (out, _rec) = {
        let pki = Pki::new();
        let smtp = Smtp {
            starttls: StartTls::ReplyThenHandshake(b"220 Ready\r\n250 injected\r\n".to_vec()),
            ..tls_smtp(&pki, Leaf::Good)
        };
        let server = Server::smtp(smtp);
        let out = Run::new(STARTTLS_AUTH, &server.target())
            .args([
                "--ca-file",
                &pki.ca_arg(),
                "--servername",
                "localhost",
                "--json",
            ])
            .creds()
            .run();
        (out, server.finish())
    };
    out.assert_code(3).assert_contains("response injection");
    assert_json_lines(&out);
}

// ---------------------------------------------------------------------------------------------
// Additional hostile cases (within the contract unless marked "beyond the contract")
// ---------------------------------------------------------------------------------------------

/// Bare AUTH LOGIN over verified STARTTLS: works, and neither the base64 user nor the base64
/// password (the two LOGIN continuation lines) shows in the output.
#[test]
fn x01_auth_login_over_starttls_is_redacted() {
    let pki = Pki::new();
    let server = Server::smtp(tls_smtp(&pki, Leaf::Good));
    let out = Run::new(
        &STARTTLS_AUTH.replace("AUTH PLAIN", "AUTH LOGIN"),
        &server.target(),
    )
    .args(["--ca-file", &pki.ca_arg(), "--servername", "localhost"])
    .creds()
    .run();
    let rec = server.finish();
    out.assert_code(0);
    assert_eq!(
        rec.auth,
        vec![(USER.to_string(), PASSWORD.to_string(), true)],
        "{}",
        rec.dump()
    );
    assert!(find_ci(&rec.plain, b"AUTH").is_none(), "{}", rec.dump());
    out.assert_no_credentials();
}

/// Wrong password: the server answers 535 where the scenario expects 235 → exit 1, and the
/// failure output still shows no credential.
#[test]
fn x02_auth_rejected_is_expectation_failure_without_leak() {
    let pki = Pki::new();
    let smtp = Smtp {
        credentials: Some((USER.into(), "some-other-password".into())),
        ..tls_smtp(&pki, Leaf::Good)
    };
    let server = Server::smtp(smtp);
    let out = Run::new(STARTTLS_AUTH, &server.target())
        .args(["--ca-file", &pki.ca_arg(), "--servername", "localhost"])
        .creds()
        .run();
    let rec = server.finish();
    out.assert_code(1).assert_contains("535");
    assert_eq!(rec.auth.len(), 1, "{}", rec.dump());
    out.assert_no_credentials();
}

/// Inline `C: AUTH PLAIN <base64>` over verified TLS is sent (it is protected) but the blob is
/// redacted in the output.
#[test]
fn x03_inline_auth_blob_over_tls_is_sent_but_redacted() {
    const BLOB: &str = "AGFsaWNlAHNlY3JldA=="; // \0alice\0secret
    let pki = Pki::new();
    let smtp = Smtp {
        credentials: None,
        ..tls_smtp(&pki, Leaf::Good)
    };
    let server = Server::smtp(smtp);
    let scenario = STARTTLS_AUTH.replace("C: AUTH PLAIN", &format!("C: AUTH PLAIN {BLOB}"));
    let out = Run::new(&scenario, &server.target())
        .args(["--ca-file", &pki.ca_arg(), "--servername", "localhost"])
        .run();
    let rec = server.finish();
    out.assert_code(0);
    assert_eq!(
        rec.auth,
        vec![("alice".to_string(), "secret".to_string(), true)],
        "{}",
        rec.dump()
    );
    assert!(
        find_ci(&rec.plain, BLOB.as_bytes()).is_none(),
        "{}",
        rec.dump()
    );
    for needle in [BLOB, "AGFsaWNlAHNlY3JldA"] {
        assert!(
            !out.stdout.contains(needle),
            "{needle} printed on stdout\n{}",
            out.dump()
        );
        assert!(
            !out.stderr.contains(needle),
            "{needle} printed on stderr\n{}",
            out.dump()
        );
    }
}

/// A multi-line reply whose lines each arrive in time but which never ends: the deadline is per
/// reply, not per line, so this still times out (512 lines at 300 ms would take minutes).
#[test]
fn x04_trickling_multiline_reply_hits_the_reply_deadline() {
    let server = Server::lines(
        None,
        false,
        b"220 fake.example ESMTP\r\n",
        |conn: &mut Conn, _line: &str| {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(20) {
                if conn.send(b"250-still going\r\n").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
            Ok(Flow::Close)
        },
    );
    let out = Run::new(EHLO_QUIT, &server.target())
        .args(["--timeout", "1"])
        .run();
    server.finish();
    out.assert_code(3).assert_contains("timed out");
    assert!(
        out.elapsed < Duration::from_secs(10),
        "per-reply deadline not enforced\n{}",
        out.dump()
    );
}

/// A silent server with a fractional timeout.
#[test]
fn x05_silent_server_fractional_timeout() {
    let server = Server::raw(None, |conn| {
        // Say nothing; wait for the client to leave.
        while conn.read_line()?.is_some() {}
        Ok(())
    });
    let out = Run::new(EHLO_QUIT, &server.target())
        .args(["--timeout", "0.5"])
        .run();
    server.finish();
    out.assert_code(3).assert_contains("timed out");
    assert!(
        out.elapsed < Duration::from_secs(5),
        "0.5 s timeout not honoured\n{}",
        out.dump()
    );
}

/// The server accepts and closes without a greeting.
#[test]
fn x06_close_before_greeting() {
    let server = Server::raw(None, |_conn| Ok(()));
    let out = Run::new(EHLO_QUIT, &server.target()).run();
    server.finish();
    out.assert_code(3).assert_contains("closed");
}

/// Nothing listens on the port.
#[test]
fn x07_connection_refused() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let out = Run::new(EHLO_QUIT, &format!("127.0.0.1:{port}")).run();
    out.assert_code(3);
}

/// The greeting is a 554 where the scenario expects 220: an expectation failure (exit 1).
#[test]
fn x08_greeting_rejection_is_expectation_failure() {
    let smtp = Smtp {
        greeting: b"554 5.7.1 go away\r\n".to_vec(),
        ..Smtp::default()
    };
    let server = Server::smtp(smtp);
    let out = Run::new(EHLO_QUIT, &server.target()).run();
    server.finish();
    out.assert_code(1).assert_contains("554");
    assert!(
        out.names_line(1),
        "output should name scenario line 1\n{}",
        out.dump()
    );
}

/// Terminal escapes hidden in the certificate subject (the tool prints certificate details).
/// Verified path (--ca-file) and unverified path (--insecure, no CA) both checked.
#[test]
fn x09_escapes_in_certificate_subject_never_reach_the_terminal() {
    for extra in [
        vec!["--ca-file".to_string()],
        vec!["--insecure".to_string()],
    ] {
        let pki = Pki::new();
        let server = Server::smtp(tls_smtp(&pki, Leaf::Hostile));
        let mut args = vec!["--servername".to_string(), "localhost".to_string()];
        args.extend(extra.iter().cloned());
        if extra[0] == "--ca-file" {
            args.push(pki.ca_arg());
        }
        let out = Run::new(STARTTLS_ONLY, &server.target()).args(&args).run();
        let rec = server.finish();
        out.assert_code(0);
        assert_eq!(rec.tls_handshake, Some(Ok(())), "{}", rec.dump());
        for (name, bytes) in [("stdout", &out.stdout_bytes), ("stderr", &out.stderr_bytes)] {
            assert!(
                !bytes.contains(&0x1b),
                "raw ESC from the certificate on {name}\n{}",
                out.dump()
            );
            assert!(
                !bytes.contains(&0x07),
                "raw BEL from the certificate on {name}\n{}",
                out.dump()
            );
        }
    }
}

/// Same, when verification fails (no --insecure) and the error message may quote the chain.
#[test]
fn x10_escapes_in_certificate_subject_on_verification_failure() {
    let pki = Pki::new();
    let server = Server::smtp(tls_smtp(&pki, Leaf::Hostile));
    // Trusted CA but a name the certificate does not cover: the name-mismatch message may quote
    // what the certificate is valid for.
    let out = Run::new(STARTTLS_ONLY, &server.target())
        .args(["--ca-file", &pki.ca_arg(), "--servername", "wrong.example"])
        .run();
    server.finish();
    out.assert_code(3);
    for (name, bytes) in [("stdout", &out.stdout_bytes), ("stderr", &out.stderr_bytes)] {
        assert!(
            !bytes.contains(&0x1b),
            "raw ESC from the certificate on {name}\n{}",
            out.dump()
        );
        assert!(
            !bytes.contains(&0x07),
            "raw BEL from the certificate on {name}\n{}",
            out.dump()
        );
    }
}

/// Beyond the contract (which names ESC and BEL): other C0 controls that let a server spoof
/// what the terminal shows — a bare CR (return to column 0 and overwrite), backspace, NUL — and
/// invalid UTF-8 must not crash the run nor reach stdout raw.
#[test]
fn x11_other_control_bytes_and_invalid_utf8() {
    let smtp = Smtp {
        greeting: b"220 legit\rFAKE ok line 1\x08\x08\x00 \xff\xfe ESMTP\r\n".to_vec(),
        ..Smtp::default()
    };
    let server = Server::smtp(smtp);
    let out = Run::new(EHLO_QUIT, &server.target()).run();
    server.finish();
    out.assert_code(0);
    for b in [b'\r', 0x08u8, 0x00] {
        assert!(
            !out.stdout_bytes.contains(&b),
            "raw control byte {b:#04x} on stdout\n{}",
            out.dump()
        );
    }
}

/// Beyond the contract: a hostile (or broken) server echoes the credentials it received back in
/// its reply text. The tool knows the secret; the transcript should still not show it.
#[test]
fn x12_server_echoing_the_credentials_is_redacted() {
    use base64::Engine as _;
    let blob = base64::engine::general_purpose::STANDARD.encode(format!("\0{USER}\0{PASSWORD}"));
    let pki = Pki::new();
    let smtp = tls_smtp(&pki, Leaf::Good).on(
        "AUTH",
        format!("535-5.7.8 you sent {blob}\r\n535 5.7.8 password {PASSWORD} rejected\r\n")
            .as_bytes(),
    );
    let server = Server::smtp(smtp);
    let out = Run::new(STARTTLS_AUTH, &server.target())
        .args(["--ca-file", &pki.ca_arg(), "--servername", "localhost"])
        .creds()
        .run();
    server.finish();
    out.assert_code(1);
    out.assert_no_credentials();
}

/// `--json` output never carries the credentials either, even with --allow-cleartext-auth.
#[test]
fn x13_json_cleartext_override_still_redacted() {
    let smtp = Smtp {
        advertise_starttls: false,
        ..Smtp::default()
    };
    let server = Server::smtp(smtp);
    let out = Run::new(CLEARTEXT_AUTH, &server.target())
        .creds()
        .args(["--allow-cleartext-auth", "--json"])
        .run();
    let rec = server.finish();
    out.assert_code(0).assert_contains("cleartext");
    assert_json_lines(&out);
    out.assert_no_credentials();
    assert_eq!(rec.auth.len(), 1, "{}", rec.dump());
}

/// The transcript file is written even when the guard refuses, and does not hold the secret.
#[test]
fn x14_transcript_on_guard_refusal() {
    let smtp = Smtp {
        advertise_starttls: false,
        ..Smtp::default()
    };
    let server = Server::smtp(smtp);
    let (run, transcript) = Run::new(CLEARTEXT_AUTH, &server.target())
        .creds()
        .transcript();
    let out = run.run();
    let rec = server.finish();
    out.assert_code(4);
    assert_no_auth_anywhere(&rec);
    if let Ok(t) = std::fs::read(&transcript) {
        assert_no_credentials(&t, USER, PASSWORD, "transcript file");
    }
}

/// A server that answers one command with two replies desynchronises a naive client: the
/// second reply would be taken as the answer to the next command. The run ends there, out
/// of step, naming the reply nobody asked for, and sends nothing more.
#[test]
fn x15_unasked_extra_reply_is_flagged() {
    let smtp = Smtp::default().on("EHLO", b"250 first\r\n250 second, never asked for\r\n");
    let server = Server::smtp(smtp);
    let out = Run::new(EHLO_QUIT, &server.target()).run();
    let rec = server.finish();
    out.assert_code(3)
        .assert_contains("out of step")
        .assert_contains("second, never asked for");
    assert!(
        !rec.lines.iter().any(|(_, line)| line == "QUIT"),
        "nothing is sent once out of step: {}",
        rec.dump()
    );
}

/// A vertical tab between AUTH and the mechanism: servers split on it (C's isspace), so the
/// line is AUTH to them. The scenario is refused before anything is sent.
#[test]
fn x16_auth_with_a_vertical_tab_never_crosses() {
    let smtp = Smtp {
        advertise_starttls: false,
        ..Smtp::default()
    };
    let server = Server::smtp(smtp);
    let scenario =
        "S: 220\nC: EHLO client.example\nS: 250\nC: AUTH\u{b}PLAIN AGFsaWNlAHNlY3JldA==\nS: 235\n";
    let out = Run::new(scenario, &server.target()).run();
    let rec = server.finish();
    out.assert_code(2).assert_contains("control character");
    assert!(
        !out.stdout.contains("AGFsaWNlAHNlY3JldA==")
            && !out.stderr.contains("AGFsaWNlAHNlY3JldA==")
    );
    assert!(rec.auth.is_empty(), "{}", rec.dump());
}

/// A 334 to EHLO is not a SASL prompt: the next line (STARTTLS) still goes out as a command,
/// and the session upgrades normally.
#[test]
fn x17_a_334_to_ehlo_does_not_turn_commands_into_sasl_answers() {
    let pki = Pki::new();
    let smtp = tls_smtp(&pki, Leaf::Good).on("EHLO", b"334 UGFzc3dvcmQ6\r\n");
    let server = Server::smtp(smtp);
    let scenario = "S: 220\nC: EHLO client.example\nS: 334\nC: STARTTLS\nS: 220\n";
    let out = Run::new(scenario, &server.target())
        .args(["--ca-file", &pki.ca_arg(), "--servername", "localhost"])
        .run();
    server.finish();
    out.assert_code(0)
        .assert_contains("answered something that was not AUTH")
        .assert_contains("TLS established");
}

/// A server that answers AUTH with a malformed line echoing the credentials: the protocol
/// error quotes the line, and the quote is redacted too.
#[test]
fn x18_malformed_reply_echoing_credentials_is_redacted() {
    use base64::Engine as _;
    let blob = base64::engine::general_purpose::STANDARD.encode(format!("\0{USER}\0{PASSWORD}"));
    let pki = Pki::new();
    let smtp =
        tls_smtp(&pki, Leaf::Good).on("AUTH", format!("you sent {blob} right?\r\n").as_bytes());
    let server = Server::smtp(smtp);
    let out = Run::new(STARTTLS_AUTH, &server.target())
        .args(["--ca-file", &pki.ca_arg(), "--servername", "localhost"])
        .creds()
        .run();
    server.finish();
    out.assert_code(3).assert_contains("malformed reply line");
    out.assert_no_credentials();
}

/// Unasked bytes waiting when STARTTLS is sent would pass for its 220: TLS is not started.
#[test]
fn x19_stray_bytes_before_starttls_stop_the_session() {
    let pki = Pki::new();
    let smtp = tls_smtp(&pki, Leaf::Good).on("EHLO", b"250 ok\r\n220 ready, but nobody asked\r\n");
    let server = Server::smtp(smtp);
    let out = Run::new(STARTTLS_ONLY, &server.target())
        .args(["--ca-file", &pki.ca_arg(), "--servername", "localhost"])
        .run();
    server.finish();
    out.assert_code(3).assert_contains("out of step");
}

/// Credentials already sent, repeated as a command (a scenario that spells out the answer
/// after the exchange): refused like the guard refuses, never shown in full.
#[test]
fn x20_credentials_repeated_as_a_command_are_refused() {
    use base64::Engine as _;
    let blob = base64::engine::general_purpose::STANDARD.encode(format!("\0{USER}\0{PASSWORD}"));
    let pki = Pki::new();
    let server = Server::smtp(tls_smtp(&pki, Leaf::Good));
    let scenario = format!(
        "S: 220\nC: EHLO client.example\nS: 250\nC: STARTTLS\nS: 220\nC: EHLO client.example\n\
         S: 250\nC: AUTH PLAIN\nS: 235\nC: {blob}\nS: 250\n"
    );
    let out = Run::new(&scenario, &server.target())
        .args(["--ca-file", &pki.ca_arg(), "--servername", "localhost"])
        .creds()
        .run();
    let rec = server.finish();
    out.assert_code(4).assert_contains("repeats credentials");
    out.assert_no_credentials();
    assert!(
        find_ci(&rec.tls, blob.as_bytes()).is_some(),
        "sent once, by AUTH"
    );
    assert_eq!(
        rec.tls
            .windows(blob.len())
            .filter(|w| *w == blob.as_bytes())
            .count(),
        1,
        "sent only once: {}",
        rec.dump()
    );
}
