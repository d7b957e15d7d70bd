//! Hostile-server integration tests for `smtptui run`: the command-line contract (exit
//! statuses, messages) against servers that misbehave.
//!
//! Most cases are rows of one table ([`support::Case`], one `#[test]` per row): a scripted fake
//! SMTP server on 127.0.0.1 (see `tests/support`), the scenario and options of the run, the
//! exit status, what the output must and must not say, and what the server must or must not
//! have received. Every row is also checked for the invariants of every run: no credential
//! form in the output or in the cleartext bytes, no raw ESC or BEL on the terminal, a PASS
//! verdict exactly with exit 0, valid JSON lines under `--json`. A new case is a new row.
//!
//! The harness self-checks (which do not run the binary) and the cases that need more than one
//! run stay hand-written below the table, each saying why.

#![allow(clippy::panic)] // test assertions

mod support;

use std::time::{Duration, Instant};

use support::Check::*;
use support::Creds::*;
use support::Serve::*;
use support::Verify::*;
use support::{
    Case, Conn, Flow, Leaf, PASSWORD, Pki, Serve, Server, Smtp, StartTls, USER,
    assert_no_credentials, plain_response,
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

/// [`STARTTLS_AUTH`] with a bare AUTH LOGIN.
const STARTTLS_AUTH_LOGIN: &str = "\
S: 220
C: EHLO client.example
S: 250
C: STARTTLS
S: 220
C: EHLO client.example
S: 250
C: AUTH LOGIN
S: 235
C: QUIT
S: 221
";

/// [`STARTTLS_AUTH`] with `AUTH PLAIN` and an inline blob, `\0alice\0secret`.
const STARTTLS_AUTH_INLINE: &str = "\
S: 220
C: EHLO client.example
S: 250
C: STARTTLS
S: 220
C: EHLO client.example
S: 250
C: AUTH PLAIN AGFsaWNlAHNlY3JldA==
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

/// [`CLEARTEXT_AUTH`] with a bare AUTH LOGIN.
const CLEARTEXT_AUTH_LOGIN: &str = "\
S: 220
C: EHLO client.example
S: 250
C: AUTH LOGIN
S: 235
C: QUIT
S: 221
";

/// Cleartext EHLO then `AUTH PLAIN` typed inline with its blob, `\0alice\0secret`.
const CLEARTEXT_AUTH_INLINE: &str = "\
S: 220
C: EHLO client.example
S: 250
C: AUTH PLAIN AGFsaWNlAHNlY3JldA==
S: 235
C: QUIT
S: 221
";

/// STARTTLS refused and the refusal expected, then a bare AUTH PLAIN.
const REFUSED_STARTTLS_THEN_AUTH: &str = "\
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

const EHLO_QUIT: &str = "\
S: 220
C: EHLO client.example
S: 250
C: QUIT
S: 221
";

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

/// A whole session over implicit TLS.
const HAPPY_IMPLICIT: &str = "\
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

/// The failing expectation is on line 13.
const FAILS_ON_LINE_13: &str = "\
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

/// After a bare AUTH PLAIN inside TLS, its PLAIN response (of the test credentials) typed as
/// a command.
const CREDENTIALS_REPEATED: &str = "\
S: 220
C: EHLO client.example
S: 250
C: STARTTLS
S: 220
C: EHLO client.example
S: 250
C: AUTH PLAIN
S: 235
C: AGFsaWNlAFRyMHViNGRvciYzLXplYnJhIQ==
S: 250
";

/// The run trusts the test CA, for `localhost`, and has the test credentials.
const VERIFIED: Case = Case {
    verify: Ca,
    creds: EnvPassword,
    ..Case::ROW
};

/// The ordinary dialogue, STARTTLS with the good certificate.
fn tls(pki: &Pki) -> Smtp {
    Smtp::with_cert(pki, Leaf::Good)
}

/// The ordinary dialogue that offers no STARTTLS (and AUTH in cleartext).
fn no_starttls(_: &Pki) -> Smtp {
    Smtp {
        advertise_starttls: false,
        ..Smtp::default()
    }
}

/// Implicit TLS with the good certificate.
fn implicit(pki: &Pki) -> Smtp {
    Smtp {
        implicit_tls: true,
        advertise_starttls: false,
        ..tls(pki)
    }
}

/// Terminal escapes in the greeting and in the EHLO reply.
fn escapes(_: &Pki) -> Smtp {
    Smtp {
        greeting: b"220 \x1b[31mred\x1b]0;title\x07 ESMTP\r\n".to_vec(),
        hostname: "evil\x1b[2J\x1b]52;c;aGk=\x07.example".into(),
        ..Smtp::default()
    }
}

/// Answers EHLO with `250-x` lines for 15 s, never a last line.
fn endless_multiline() -> Server {
    Server::lines(
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
    )
}

/// A greeting line of 100 KiB that never ends, then silence.
fn overlong_greeting() -> Server {
    Server::raw(None, |conn| {
        let mut g = b"220 ".to_vec();
        g.extend(std::iter::repeat_n(b'a', 100 * 1024));
        conn.send(&g)?;
        // Keep the connection open until the client gives up.
        while conn.read_line()?.is_some() {}
        Ok(())
    })
}

/// A greeting one byte every 300 ms; the line never ends.
fn trickling_greeting() -> Server {
    Server::raw(None, |conn| {
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
    })
}

/// Answers the first command with the first line of a multi-line reply, then closes.
fn eof_mid_multiline() -> Server {
    Server::lines(
        None,
        false,
        b"220 fake.example ESMTP\r\n",
        |conn: &mut Conn, _line: &str| {
            conn.send(b"250-first\r\n")?;
            Ok(Flow::Close)
        },
    )
}

/// Answers the first command with a `250-still going` line every 300 ms for 20 s.
fn trickling_multiline() -> Server {
    Server::lines(
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
    )
}

/// Says nothing; waits for the client to leave.
fn silent() -> Server {
    Server::raw(None, |conn| {
        while conn.read_line()?.is_some() {}
        Ok(())
    })
}

cases! {
    // 1-2. STARTTLS response injection: nothing crosses again, in cleartext or inside TLS.

    /// A reply injected behind the 220 to STARTTLS, in the same write.
    t01_injected_reply_after_starttls_220_same_write: Case {
        server: Script(|p| Smtp {
            starttls: StartTls::ReplyThenHandshake(
                b"220 2.0.0 Ready to start TLS\r\n250 fake injected\r\n".to_vec(),
            ),
            ..tls(p)
        }),
        scenario: STARTTLS_AUTH, exit: 3, says: &["response injection"],
        // One clear verdict: the injected bytes are not also announced as a reply to come.
        never_says: &["beyond this reply"],
        checks: &[NothingAfterStarttls, NoEhloInsideTls, NoAuth], ..VERIFIED
    };
    /// A fragment without CRLF behind the 220 to STARTTLS.
    t02_injected_crlfless_fragment_after_starttls_220: Case {
        server: Script(|p| Smtp {
            starttls: StartTls::ReplyThenHandshake(b"220 Ready\r\n250 x".to_vec()),
            ..tls(p)
        }),
        scenario: STARTTLS_AUTH, exit: 3, says: &["response injection"],
        checks: &[NothingAfterStarttls, NoEhloInsideTls, NoAuth], ..VERIFIED
    };
    /// Under `--json` too, the failure is said in valid JSON lines.
    t18b_json_on_failure_still_parses: Case {
        server: Script(|p| Smtp {
            starttls: StartTls::ReplyThenHandshake(b"220 Ready\r\n250 injected\r\n".to_vec()),
            ..tls(p)
        }),
        scenario: STARTTLS_AUTH, args: &["--json"], exit: 3, says: &["response injection"],
        ..VERIFIED
    };

    // 3. STARTTLS refused by a downgrading server, which would happily take AUTH in cleartext.

    t03a_starttls_answered_454: Case {
        server: Script(|p| Smtp {
            starttls: StartTls::Reply(
                b"454 4.7.0 TLS not available due to local problem\r\n".to_vec(),
            ),
            ..tls(p)
        }),
        scenario: STARTTLS_AUTH, exit: 3, says: &["starttls refused"], checks: &[NoTls, NoAuth],
        ..VERIFIED
    };
    t03b_starttls_answered_502: Case {
        server: Script(|p| Smtp {
            starttls: StartTls::Reply(b"502 5.5.1 Command not implemented\r\n".to_vec()),
            ..tls(p)
        }),
        scenario: STARTTLS_AUTH, exit: 3, says: &["starttls refused"], checks: &[NoTls, NoAuth],
        ..VERIFIED
    };
    /// The scenario expects the refusal (`S: 454`), so the refusal itself is no failure; but the
    /// session is still cleartext, so the following bare AUTH must be stopped by the guard.
    t03c_expected_starttls_refusal_then_auth_is_guarded: Case {
        server: Script(|_| Smtp {
            starttls: StartTls::Reply(b"454 4.7.0 TLS not available\r\n".to_vec()),
            ..Smtp::default()
        }),
        scenario: REFUSED_STARTTLS_THEN_AUTH, creds: EnvPassword,
        exit: 4, says: &["refused", "cleartext"], checks: &[NoAuth], ..Case::ROW
    };

    // 4-6. The cleartext credential guard.

    t04_bare_auth_plain_on_cleartext_is_refused: Case {
        server: Script(no_starttls), scenario: CLEARTEXT_AUTH, creds: EnvPassword,
        exit: 4, says: &["refused", "cleartext"], checks: &[NoAuth], ..Case::ROW
    };
    t04b_bare_auth_login_on_cleartext_is_refused: Case {
        server: Script(no_starttls), scenario: CLEARTEXT_AUTH_LOGIN, creds: EnvPassword,
        exit: 4, says: &["refused", "cleartext"], checks: &[NoAuth], ..Case::ROW
    };
    /// The motivating case: `AUTH PLAIN <base64>` typed inline on a cleartext connection. The
    /// blob (`\0alice\0secret`), its unpadded form and the password's base64 never reach the
    /// server nor the output.
    t05_inline_auth_plain_blob_on_cleartext_is_refused: Case {
        server: Script(|_| Smtp {
            advertise_starttls: false,
            credentials: None,
            ..Smtp::default()
        }),
        scenario: CLEARTEXT_AUTH_INLINE, exit: 4, says: &["refused", "cleartext"],
        never_says: &["AGFsaWNlAHNlY3JldA==", "AGFsaWNlAHNlY3JldA", "c2VjcmV0"],
        checks: &[
            NotReceived("AGFsaWNlAHNlY3JldA=="),
            NotReceived("AGFsaWNlAHNlY3JldA"),
            NotReceived("c2VjcmV0"),
            NoAuth,
        ],
        ..Case::ROW
    };
    /// Explicitly allowed: the server gets the (correct) credentials in cleartext, under a loud,
    /// upper-case WARNING, and the output is still redacted.
    t06_allow_cleartext_auth_override_sends_with_warning: Case {
        server: Script(no_starttls), scenario: CLEARTEXT_AUTH, creds: EnvPassword,
        args: &["--allow-cleartext-auth"], exit: 0, says: &["WARNING", "cleartext"],
        checks: &[SaysExactly("WARNING"), AuthInCleartext], ..Case::ROW
    };
    /// `--json` output never carries the credentials either, even with --allow-cleartext-auth.
    x13_json_cleartext_override_still_redacted: Case {
        server: Script(no_starttls), scenario: CLEARTEXT_AUTH, creds: EnvPassword,
        args: &["--allow-cleartext-auth", "--json"], exit: 0, says: &["cleartext"],
        checks: &[AuthAttempts(1)], ..Case::ROW
    };
    /// The transcript file is written even when the guard refuses, and does not hold the secret.
    x14_transcript_on_guard_refusal: Case {
        server: Script(no_starttls), scenario: CLEARTEXT_AUTH, creds: EnvPassword,
        transcript: true, exit: 4, checks: &[NoAuth], ..Case::ROW
    };
    /// A vertical tab between AUTH and the mechanism: servers split on it (C's isspace), so the
    /// line is AUTH to them. The scenario is refused before anything is sent.
    x16_auth_with_a_vertical_tab_never_crosses: Case {
        server: Script(no_starttls),
        scenario: "S: 220\nC: EHLO client.example\nS: 250\n\
                   C: AUTH\u{b}PLAIN AGFsaWNlAHNlY3JldA==\nS: 235\n",
        exit: 2, says: &["control character"], never_says: &["AGFsaWNlAHNlY3JldA=="],
        checks: &[NoAuth], ..Case::ROW
    };

    // 7-10. Malformed and hostile replies: a limit trips, well before the timeout.

    t07_endless_multiline_reply_hits_a_limit: Case {
        server: Custom(endless_multiline), scenario: EHLO_QUIT, args: &["--timeout", "10"],
        exit: 3, never_says: &["timed out"],
        checks: &[SaysOneOf(&["too many lines", "too large"]), Within(8)], ..Case::ROW
    };
    t08_overlong_reply_line: Case {
        server: Custom(overlong_greeting), scenario: EHLO_QUIT, args: &["--timeout", "10"],
        exit: 3, says: &["too long"], never_says: &["timed out"], checks: &[Within(8)], ..Case::ROW
    };
    t09_trickling_greeting_hits_the_reply_deadline: Case {
        server: Custom(trickling_greeting), scenario: EHLO_QUIT, args: &["--timeout", "1"],
        exit: 3, says: &["timed out"], checks: &[Within(10)], ..Case::ROW
    };
    /// A multi-line reply whose lines each arrive in time but which never ends: the deadline is
    /// per reply, not per line, so this still times out (512 lines at 300 ms would take minutes).
    x04_trickling_multiline_reply_hits_the_reply_deadline: Case {
        server: Custom(trickling_multiline), scenario: EHLO_QUIT, args: &["--timeout", "1"],
        exit: 3, says: &["timed out"], checks: &[Within(10)], ..Case::ROW
    };
    /// A silent server with a fractional timeout.
    x05_silent_server_fractional_timeout: Case {
        server: Custom(silent), scenario: EHLO_QUIT, args: &["--timeout", "0.5"],
        exit: 3, says: &["timed out"], checks: &[Within(5)], ..Case::ROW
    };
    t10_eof_in_the_middle_of_a_multiline_reply: Case {
        server: Custom(eof_mid_multiline), scenario: EHLO_QUIT, exit: 3, says: &["closed"],
        ..Case::ROW
    };
    /// The server accepts and closes without a greeting.
    x06_close_before_greeting: Case {
        server: Custom(|| Server::raw(None, |_conn| Ok(()))), scenario: EHLO_QUIT,
        exit: 3, says: &["closed"], ..Case::ROW
    };
    /// Nothing listens on the port.
    x07_connection_refused: Case { server: Nobody, scenario: EHLO_QUIT, exit: 3, ..Case::ROW };

    // 11-12. TLS failures: no credential byte anywhere, not even inside TLS, unless --insecure.

    t11_garbage_instead_of_tls_handshake: Case {
        server: Script(|p| Smtp {
            starttls: StartTls::ReplyThenGarbage(
                b"this is not TLS at all\r\n\x00\x01\x02\x03garbage".to_vec(),
            ),
            ..tls(p)
        }),
        scenario: STARTTLS_AUTH, exit: 3, checks: &[NoEhloAfterStarttls, NoAuth], ..VERIFIED
    };
    t11b_server_closes_instead_of_tls_handshake: Case {
        server: Script(|p| Smtp {
            starttls: StartTls::ReplyThenClose(b"220 2.0.0 Ready to start TLS\r\n".to_vec()),
            ..tls(p)
        }),
        scenario: STARTTLS_AUTH, exit: 3, checks: &[NoAuth], ..VERIFIED
    };
    // Without --insecure: the handshake fails, and the bare AUTH that follows never happens.
    t12a_untrusted_ca: Case {
        server: Serve::TLS, scenario: STARTTLS_AUTH, verify: UnknownCa, creds: EnvPassword,
        exit: 3, says: &["unknown issuer"], checks: &[NothingAfterStarttls, NoAuth], ..Case::ROW
    };
    t12b_expired_certificate: Case {
        server: Script(|p| Smtp::with_cert(p, Leaf::Expired)), scenario: STARTTLS_AUTH,
        exit: 3, says: &["expired"], checks: &[NothingAfterStarttls, NoAuth], ..VERIFIED
    };
    t12c_wrong_name: Case {
        server: Script(|p| Smtp::with_cert(p, Leaf::WrongName)), scenario: STARTTLS_AUTH,
        exit: 3, says: &["not valid for name"], checks: &[NothingAfterStarttls, NoAuth], ..VERIFIED
    };
    // With --insecure: the session continues, the verdict stays visible.
    t12d_untrusted_ca_insecure_continues: Case {
        server: Serve::TLS, scenario: STARTTLS_ONLY, verify: UnknownCa, args: &["--insecure"],
        exit: 0, says: &["not verified"], checks: &[Handshake, EhloInsideTls], ..Case::ROW
    };
    t12e_expired_insecure_continues: Case {
        server: Script(|p| Smtp::with_cert(p, Leaf::Expired)), scenario: STARTTLS_ONLY,
        verify: Ca, args: &["--insecure"],
        exit: 0, says: &["not verified"], checks: &[Handshake, EhloInsideTls], ..Case::ROW
    };
    t12f_wrong_name_insecure_continues: Case {
        server: Script(|p| Smtp::with_cert(p, Leaf::WrongName)), scenario: STARTTLS_ONLY,
        verify: Ca, args: &["--insecure"],
        exit: 0, says: &["not verified"], checks: &[Handshake, EhloInsideTls], ..Case::ROW
    };
    // With --insecure, bare AUTH over the unverified TLS is allowed (insecure is the override).
    t12g_untrusted_ca_insecure_allows_auth: Case {
        server: Serve::TLS, scenario: STARTTLS_AUTH, verify: UnknownCa, creds: EnvPassword,
        args: &["--insecure"], exit: 0, says: &["not verified"], checks: &[AuthInsideTls],
        ..Case::ROW
    };
    t12h_expired_insecure_allows_auth: Case {
        server: Script(|p| Smtp::with_cert(p, Leaf::Expired)), scenario: STARTTLS_AUTH,
        args: &["--insecure"], exit: 0, says: &["not verified"], checks: &[AuthInsideTls],
        ..VERIFIED
    };
    t12i_wrong_name_insecure_allows_auth: Case {
        server: Script(|p| Smtp::with_cert(p, Leaf::WrongName)), scenario: STARTTLS_AUTH,
        args: &["--insecure"], exit: 0, says: &["not verified"], checks: &[AuthInsideTls],
        ..VERIFIED
    };
    /// Implicit TLS against a certificate that does not verify: exit 3 before any credential.
    t14b_implicit_tls_untrusted_ca: Case {
        server: Script(implicit), scenario: CLEARTEXT_AUTH, verify: UnknownCa, creds: EnvPassword,
        args: &["--tls", "implicit"], exit: 3, says: &["unknown issuer"], checks: &[NoAuth],
        ..Case::ROW
    };

    // 13-14. Happy paths: credentials inside TLS only, dot-stuffing, redacted output and
    // transcript.

    t13_happy_path_starttls_auth_data: Case {
        server: Serve::TLS, scenario: HAPPY_STARTTLS, transcript: true, exit: 0, says: &["hidden"],
        checks: &[
            Handshake,
            AuthInsideTls,
            StarttlsInCleartext,
            NothingAfterStarttls,
            Message(&["Subject: smtptui test", "..dotted line", "...two dots"]),
        ],
        ..VERIFIED
    };
    t14_happy_path_implicit_tls_with_password_file: Case {
        server: Script(implicit), scenario: HAPPY_IMPLICIT, verify: Ca, creds: PasswordFile,
        args: &["--tls", "implicit"], exit: 0,
        checks: &[
            NothingInCleartext,
            Handshake,
            AuthInsideTls,
            Message(&["Subject: implicit", "..leading dot"]),
        ],
        ..Case::ROW
    };
    t18_json_every_line_parses: Case {
        server: Serve::TLS, scenario: HAPPY_STARTTLS, args: &["--json"], exit: 0,
        checks: &[AuthAttempts(1)], ..VERIFIED
    };
    /// Bare AUTH LOGIN over verified STARTTLS: works, and neither the base64 user nor the base64
    /// password (the two LOGIN continuation lines) shows in the output.
    x01_auth_login_over_starttls_is_redacted: Case {
        server: Serve::TLS, scenario: STARTTLS_AUTH_LOGIN, exit: 0, checks: &[AuthInsideTls],
        ..VERIFIED
    };
    /// Wrong password: the server answers 535 where the scenario expects 235 → exit 1, and the
    /// failure output still shows no credential.
    x02_auth_rejected_is_expectation_failure_without_leak: Case {
        server: Script(|p| Smtp {
            credentials: Some((USER.into(), "some-other-password".into())),
            ..tls(p)
        }),
        scenario: STARTTLS_AUTH, exit: 1, says: &["535"], checks: &[AuthAttempts(1)], ..VERIFIED
    };
    /// Inline `C: AUTH PLAIN <base64>` over verified TLS is sent (it is protected) but the blob is
    /// redacted in the output.
    x03_inline_auth_blob_over_tls_is_sent_but_redacted: Case {
        server: Script(|p| Smtp { credentials: None, ..tls(p) }),
        scenario: STARTTLS_AUTH_INLINE, verify: Ca, exit: 0,
        never_says: &["AGFsaWNlAHNlY3JldA==", "AGFsaWNlAHNlY3JldA"],
        checks: &[
            AuthInsideTlsAs("alice", "secret"),
            NotInCleartext("AGFsaWNlAHNlY3JldA=="),
        ],
        ..Case::ROW
    };
    /// Credentials already sent, repeated as a command (a scenario that spells out the answer
    /// after the exchange): refused like the guard refuses, never shown in full, sent only once.
    x20_credentials_repeated_as_a_command_are_refused: Case {
        server: Serve::TLS, scenario: CREDENTIALS_REPEATED, exit: 4, says: &["repeats credentials"],
        checks: &[PlainResponseOnceInsideTls], ..VERIFIED
    };

    // 15-16. Expectation failures and usage errors name the place.

    t15_expectation_failure_names_the_line: Case {
        server: Script(|_| Smtp::default().on("MAIL", b"550 5.1.1 nope\r\n")),
        scenario: FAILS_ON_LINE_13, exit: 1, says: &["550"], checks: &[NamesLine(13)], ..Case::ROW
    };
    /// The greeting is a 554 where the scenario expects 220: an expectation failure (exit 1).
    x08_greeting_rejection_is_expectation_failure: Case {
        server: Script(|_| Smtp { greeting: b"554 5.7.1 go away\r\n".to_vec(), ..Smtp::default() }),
        scenario: EHLO_QUIT, exit: 1, says: &["554"], checks: &[NamesLine(1)], ..Case::ROW
    };
    t16a_syntax_error_unknown_prefix: Case {
        scenario: "S: 220\nC: EHLO client.example\nX: foo\nS: 250\n", file: "broken-scenario.smtp",
        exit: 2, checks: &[NamesFile, NamesLine(3)], ..Case::ROW
    };
    t16b_syntax_error_bad_reply_code: Case {
        scenario: "# bad code\nS: 220\nC: EHLO client.example\n\nS: 99z\nC: QUIT\nS: 221\n",
        file: "broken-scenario.smtp", exit: 2, checks: &[NamesFile, NamesLine(5)], ..Case::ROW
    };
    t16c_no_password_flag_is_a_usage_error: Case {
        scenario: EHLO_QUIT, args: &["--password", PASSWORD],
        exit: 2, says: &["no --password option", "--password-file"], ..Case::ROW
    };
    t16d_bad_tls_mode_is_a_usage_error: Case {
        scenario: EHLO_QUIT, args: &["--tls", "sometimes"], exit: 2, ..Case::ROW
    };

    // 17. Terminal escape sequences from the server: the invariants of every row (no raw ESC or
    // BEL on stdout or stderr) are the point of these.

    t17_terminal_escapes_never_reach_stdout: Case {
        server: Script(escapes), scenario: EHLO_QUIT, exit: 0, ..Case::ROW
    };
    /// Beyond the letter of the contract (which names stdout): stderr is a terminal too.
    t17b_terminal_escapes_never_reach_stderr: Case {
        server: Script(escapes), scenario: EHLO_QUIT, exit: 0, ..Case::ROW
    };
    t17c_terminal_escapes_in_json_mode: Case {
        server: Script(escapes), scenario: EHLO_QUIT, args: &["--json"], exit: 0, ..Case::ROW
    };
    /// Escapes in the certificate subject when verification fails (no --insecure) and the error
    /// message may quote the chain: trusted CA but a name the certificate does not cover, so the
    /// name-mismatch message may quote what the certificate is valid for.
    x10_escapes_in_certificate_subject_on_verification_failure: Case {
        server: Script(|p| Smtp::with_cert(p, Leaf::Hostile)), scenario: STARTTLS_ONLY,
        verify: CaNaming("wrong.example"), exit: 3, ..Case::ROW
    };
    /// Beyond the contract (which names ESC and BEL): other C0 controls that let a server spoof
    /// what the terminal shows — a bare CR (return to column 0 and overwrite), backspace, NUL —
    /// and invalid UTF-8 must not crash the run nor reach the terminal raw.
    x11_other_control_bytes_and_invalid_utf8: Case {
        server: Script(|_| Smtp {
            greeting: b"220 legit\rFAKE ok line 1\x08\x08\x00 \xff\xfe ESMTP\r\n".to_vec(),
            ..Smtp::default()
        }),
        scenario: EHLO_QUIT, exit: 0,
        checks: &[NoRawByte(b'\r'), NoRawByte(0x08), NoRawByte(0x00)], ..Case::ROW
    };

    // Replies that echo secrets or come out of step.

    /// Beyond the contract: a hostile (or broken) server echoes the credentials it received back
    /// in its reply text. The tool knows the secret; the output still does not show it.
    x12_server_echoing_the_credentials_is_redacted: Case {
        server: Script(|p| {
            let echo = format!(
                "535-5.7.8 you sent {}\r\n535 5.7.8 password {PASSWORD} rejected\r\n",
                plain_response()
            );
            tls(p).on("AUTH", echo.as_bytes())
        }),
        scenario: STARTTLS_AUTH, exit: 1, ..VERIFIED
    };
    /// A server that answers AUTH with a malformed line echoing the credentials: the protocol
    /// error quotes the line, and the quote is redacted too.
    x18_malformed_reply_echoing_credentials_is_redacted: Case {
        server: Script(|p| {
            tls(p).on("AUTH", format!("you sent {} right?\r\n", plain_response()).as_bytes())
        }),
        scenario: STARTTLS_AUTH, exit: 3, says: &["malformed reply line"], ..VERIFIED
    };
    /// A server that answers one command with two replies desynchronises a naive client: the
    /// second reply would be taken as the answer to the next command. The run ends there, out
    /// of step, naming the reply nobody asked for, and sends nothing more.
    x15_unasked_extra_reply_is_flagged: Case {
        server: Script(|_| {
            Smtp::default().on("EHLO", b"250 first\r\n250 second, never asked for\r\n")
        }),
        scenario: EHLO_QUIT, exit: 3, says: &["out of step", "second, never asked for"],
        never_sent: &["QUIT"], ..Case::ROW
    };
    /// A 334 to EHLO is not a SASL prompt: the next line (STARTTLS) still goes out as a command,
    /// and the session upgrades normally.
    x17_a_334_to_ehlo_does_not_turn_commands_into_sasl_answers: Case {
        server: Script(|p| tls(p).on("EHLO", b"334 UGFzc3dvcmQ6\r\n")),
        scenario: "S: 220\nC: EHLO client.example\nS: 334\nC: STARTTLS\nS: 220\n", verify: Ca,
        exit: 0, says: &["answered something that was not AUTH", "TLS established"], ..Case::ROW
    };
    /// Unasked bytes waiting when STARTTLS is sent would pass for its 220: TLS is not started.
    x19_stray_bytes_before_starttls_stop_the_session: Case {
        server: Script(|p| tls(p).on("EHLO", b"250 ok\r\n220 ready, but nobody asked\r\n")),
        scenario: STARTTLS_ONLY, verify: Ca, exit: 3, says: &["out of step"], ..Case::ROW
    };
}

/// Terminal escapes hidden in the certificate subject (the tool prints certificate details),
/// on the verified path (--ca-file) and the unverified one (--insecure, no CA). Hand-written
/// because it is two runs under one name; each is a row, and the invariants of every row (no
/// raw ESC or BEL on stdout or stderr) are the point.
#[test]
fn x09_escapes_in_certificate_subject_never_reach_the_terminal() {
    let row = Case {
        server: Script(|p| Smtp::with_cert(p, Leaf::Hostile)),
        scenario: STARTTLS_ONLY,
        exit: 0,
        checks: &[Handshake],
        ..Case::ROW
    };
    Case { verify: Ca, ..row }.check();
    Case {
        verify: UnknownCa,
        args: &["--insecure"],
        ..row
    }
    .check();
}

// ---------------------------------------------------------------------------------------------
// 0. Harness self-check (independent of the binary): a minimal rustls client drives the fake
//    server, so a failure in the table above can be attributed to the binary, not the harness.
//    Hand-written: these run no binary, so they are no row.
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
    let server = Server::smtp(Smtp::with_cert(&pki, Leaf::Good));
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
            ..Smtp::with_cert(&pki, leaf)
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
        ..Smtp::with_cert(&pki, Leaf::Good)
    });
    let Err(err) = client::handshake(client::tcp(&server.target()), other.ca_der()) else {
        panic!("untrusted CA: handshake must fail")
    };
    assert!(err.to_lowercase().contains("issuer"), "{err}");
    server.finish();
    // Implicit TLS with the good leaf works and the greeting arrives inside TLS.
    let server = Server::smtp(Smtp {
        implicit_tls: true,
        ..Smtp::with_cert(&pki, Leaf::Good)
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
        ..Smtp::with_cert(&pki, Leaf::Good)
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
