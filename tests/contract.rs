//! The contract of `smtptui run` with servers that misbehave, one row per case
//! ([`support::Case`]): the server's behaviour, the scenario, the exit status, what the output
//! must say, and what must never reach the server. Every row also checks the invariants of
//! every run: no credential crossed in cleartext or reached the output, no raw ESC or BEL on
//! the terminal, a PASS verdict exactly with exit 0.

#![allow(clippy::unwrap_used, clippy::panic)] // test assertions

mod support;

use support::Check::*;
use support::Creds::*;
use support::Serve::*;
use support::Verify::*;
use support::{Case, Leaf, Pki, Run, Serve, Smtp, StartTls};

/// The greeting, EHLO and DATA with a message whose reply is checked; QUIT unchecked, as a
/// hurried scenario leaves it.
const MESSAGE: &str = "\
S: 220
C: EHLO client.example
S: 250
C: MAIL FROM:<alice@example.com>
S: 250
C: RCPT TO:<bob@example.com>
S: 250
C: DATA
S: 354
C: Subject: hello
C:
C: Hi Bob.
C: .
S: 250
C: QUIT
";

/// STARTTLS, then EHLO and AUTH inside TLS.
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

/// EHLO in cleartext, then a bare AUTH of the mechanism named by each row, which the guard
/// must stop before a byte of it leaves.
macro_rules! cleartext_auth {
    ($mechanism:literal) => {
        concat!(
            "S: 220\nC: EHLO client.example\nS: 250\nC: AUTH ",
            $mechanism,
            "\nS: 235\nC: QUIT\n"
        )
    };
}

/// STARTTLS, EHLO inside TLS, then a bare AUTH of the mechanism named by each row.
macro_rules! starttls_auth {
    ($mechanism:literal) => {
        concat!(
            "S: 220\nC: EHLO client.example\nS: 250\nC: STARTTLS\nS: 220\n",
            "C: EHLO client.example\nS: 250\nC: AUTH ",
            $mechanism,
            "\nS: 235\nC: QUIT\nS: 221\n"
        )
    };
}

/// A server that offers every mechanism smtptui runs, in cleartext too.
const EVERY_MECHANISM: Serve = Serve::Script(|pki| Smtp {
    mechanisms: "PLAIN LOGIN CRAM-MD5 XOAUTH2 OAUTHBEARER EXTERNAL",
    ..tls(pki)
});

/// The run trusts the test CA, for `localhost`, and has the test credentials.
const ROW: Case = Case {
    verify: Ca,
    creds: EnvPassword,
    ..Case::ROW
};

fn tls(pki: &Pki) -> Smtp {
    Smtp::with_cert(pki, Leaf::Good)
}

cases! {
    // A reply that arrives with the 354, before the message was sent, is not the message's
    // reply: the run ends out of step instead of passing on the early 250.
    early_reply_during_the_message_is_out_of_step: Case {
        server: Script(|_| Smtp::default().on("DATA", b"354 go ahead\r\n250 2.0.0 early\r\n")),
        scenario: MESSAGE,
        exit: 3,
        says: &["out of step", "250 2.0.0 early", "before its final dot"],
        never_says: &["PASS"],
        never_sent: &[".", "QUIT"],
        ..ROW
    };
    // A 421 is the server closing, whenever it comes (RFC 5321 §3.8): not a reply out of step,
    // and not the next command's reply either.
    a_421_behind_a_reply_is_the_server_closing: Case {
        server: Script(|_| Smtp::default().on("MAIL", b"250 2.1.0 ok\r\n421 4.3.2 shutting down\r\n")),
        scenario: MESSAGE,
        exit: 3,
        says: &["closing the session, unasked", "421 4.3.2 shutting down"],
        never_says: &["PASS", "out of step"],
        never_sent: &["RCPT"],
        ..ROW
    };
    // Two replies to the final dot: the second answers nothing and is not QUIT's reply.
    second_reply_to_the_message_is_out_of_step: Case {
        server: Script(|_| Smtp {
            message_reply: Some(b"250 2.0.0 queued\r\n554 5.7.1 rejected after all\r\n".to_vec()),
            ..Smtp::default()
        }),
        scenario: MESSAGE,
        exit: 3,
        says: &["out of step", "554 5.7.1 rejected after all"],
        never_says: &["PASS"],
        never_sent: &["QUIT"],
        ..ROW
    };
    // Bytes inside TLS before any command was sent there are not the EHLO reply, and no AUTH
    // follows them.
    unasked_bytes_right_after_the_handshake_end_the_run: Case {
        server: Script(|pki| Smtp {
            starttls: StartTls::HandshakeThenSend(b"250-forged\r\n250 AUTH PLAIN\r\n".to_vec()),
            ..tls(pki)
        }),
        scenario: STARTTLS_AUTH,
        exit: 3,
        says: &["out of step", "inside TLS before any command", "250 AUTH PLAIN"],
        never_says: &["PASS"],
        never_sent: &["AUTH"],
        ..ROW
    };
    // The configured password typed into a command is a credential: refused in cleartext.
    password_in_a_command_is_refused_in_cleartext: Case {
        server: Serve::PLAIN,
        scenario: "S: 220\nC: EHLO client.example\nS: 250\nC: XPASSWORD Tr0ub4dor&3-zebra!\nS: 250\n",
        exit: 4,
        says: &["credential guard"],
        never_sent: &["XPASSWORD"],
        ..ROW
    };
    // ... and so is its base64, and the PLAIN response built from it, even in a message.
    password_base64_in_a_message_is_refused_in_cleartext: Case {
        server: Serve::PLAIN,
        scenario: "S: 220\nC: EHLO client.example\nS: 250\nC: MAIL FROM:<a@b.example>\nS: 250\n\
                   C: RCPT TO:<c@d.example>\nS: 250\nC: DATA\nS: 354\n\
                   C: the password is VHIwdWI0ZG9yJjMtemVicmEh\nC: .\nS: 250\n",
        exit: 4,
        says: &["credential guard"],
        never_sent: &["the password is"],
        ..ROW
    };
    password_plain_response_as_a_command_is_refused_in_cleartext: Case {
        server: Serve::PLAIN,
        scenario: "S: 220\nC: EHLO client.example\nS: 250\nC: XAUTH AGFsaWNlAFRyMHViNGRvciYzLXplYnJhIQ\nS: 250\n",
        exit: 4,
        says: &["credential guard"],
        never_sent: &["XAUTH"],
        ..ROW
    };
    // A mechanism the server did not advertise is not run, whatever the scenario says.
    xoauth2_not_advertised_is_not_sent: Case {
        server: Serve::TLS,
        scenario: "S: 220\nC: EHLO client.example\nS: 250\nC: STARTTLS\nS: 220\n\
                   C: EHLO client.example\nS: 250\nC: AUTH XOAUTH2\nS: 235\n",
        exit: 3,
        says: &["AUTH XOAUTH2 not sent", "advertised only AUTH PLAIN LOGIN"],
        never_says: &["PASS"],
        never_sent: &["AUTH"],
        ..ROW
    };
    // Every mechanism smtptui runs passes the guard: in cleartext nothing of it leaves (the
    // AUTH line included), whatever the mechanism sends or however it is configured.
    cram_md5_in_cleartext_is_refused: Case {
        server: EVERY_MECHANISM,
        scenario: cleartext_auth!("CRAM-MD5"),
        exit: 4,
        says: &["credential guard", "Nothing was sent"],
        never_sent: &["AUTH", "dGVzdA"],
        checks: &[NoAuth, NoTls],
        ..ROW
    };
    oauthbearer_in_cleartext_is_refused: Case {
        server: EVERY_MECHANISM,
        scenario: cleartext_auth!("OAUTHBEARER"),
        exit: 4,
        says: &["credential guard", "Nothing was sent"],
        never_sent: &["AUTH"],
        checks: &[NoAuth, NoTls],
        ..ROW
    };
    plain_without_initial_response_in_cleartext_is_refused: Case {
        server: EVERY_MECHANISM,
        scenario: cleartext_auth!("PLAIN"),
        args: &["--no-sasl-ir"],
        exit: 4,
        says: &["credential guard", "Nothing was sent"],
        never_sent: &["AUTH"],
        checks: &[NoAuth, NoTls],
        ..ROW
    };
    external_in_cleartext_is_refused: Case {
        server: EVERY_MECHANISM,
        scenario: cleartext_auth!("EXTERNAL"),
        creds: ClientCert,
        exit: 4,
        says: &["credential guard", "Nothing was sent", "client.example"],
        never_sent: &["AUTH"],
        checks: &[NoAuth, NoTls],
        ..ROW
    };
    // To a peer whose certificate does not verify, the handshake ends the run before any
    // AUTH (and before a client certificate would be presented).
    cram_md5_to_an_unverified_peer_is_never_sent: Case {
        server: EVERY_MECHANISM,
        scenario: starttls_auth!("CRAM-MD5"),
        verify: UnknownCa,
        exit: 3,
        says: &["unknown issuer"],
        never_sent: &["AUTH"],
        checks: &[NoAuth, NothingAfterStarttls],
        ..ROW
    };
    oauthbearer_to_an_unverified_peer_is_never_sent: Case {
        server: EVERY_MECHANISM,
        scenario: starttls_auth!("OAUTHBEARER"),
        verify: UnknownCa,
        exit: 3,
        says: &["unknown issuer"],
        never_sent: &["AUTH"],
        checks: &[NoAuth, NothingAfterStarttls],
        ..ROW
    };
    external_to_an_unverified_peer_is_never_sent: Case {
        server: EVERY_MECHANISM,
        scenario: starttls_auth!("EXTERNAL"),
        verify: UnknownCa,
        creds: ClientCert,
        exit: 3,
        says: &["unknown issuer"],
        never_sent: &["AUTH"],
        checks: &[NoAuth, NothingAfterStarttls],
        ..ROW
    };
    // Inside verified TLS: PLAIN without an initial response sends the bare AUTH line, then
    // the credentials once, answering the server's empty 334.
    plain_without_initial_response_answers_the_empty_challenge: Case {
        server: Serve::TLS,
        scenario: STARTTLS_AUTH,
        args: &["--no-sasl-ir"],
        exit: 0,
        says: &["AUTH PLAIN", "hidden"],
        checks: &[AuthInsideTls, PlainResponseOnceInsideTls, LineInsideTls("AUTH PLAIN")],
        ..ROW
    };
    // EXTERNAL without a client certificate has no identity to offer: refused, not sent.
    external_without_a_client_certificate_is_not_sent: Case {
        server: EVERY_MECHANISM,
        scenario: starttls_auth!("EXTERNAL"),
        exit: 3,
        says: &["AUTH EXTERNAL not sent", "--cert"],
        never_says: &["PASS"],
        never_sent: &["AUTH"],
        ..ROW
    };
    // A mechanism the server did not advertise is refused, and sent only when forced.
    cram_md5_not_advertised_is_not_sent: Case {
        server: Serve::TLS,
        scenario: starttls_auth!("CRAM-MD5"),
        exit: 3,
        says: &["AUTH CRAM-MD5 not sent", "advertised only AUTH PLAIN LOGIN", "--force"],
        never_sent: &["AUTH"],
        ..ROW
    };
    cram_md5_not_advertised_is_sent_when_forced: Case {
        server: Script(|pki| tls(pki)
            .on("AUTH CRAM-MD5", b"334 PDEyMzQ1QGZha2UuZXhhbXBsZT4=\r\n")
            .on("YWxpY2", b"535 5.7.8 no CRAM-MD5 here\r\n")),
        scenario: starttls_auth!("CRAM-MD5"),
        args: &["--force"],
        exit: 1,
        says: &["forced", "obsolete", "535 5.7.8"],
        checks: &[NotInCleartext("AUTH"), LineInsideTls("AUTH CRAM-MD5")],
        ..ROW
    };
    // OAUTHBEARER's error challenge is decoded and shown, and answered with %x01 (AQ==),
    // inside TLS; the final reply is the verdict.
    oauthbearer_error_challenge_is_shown_and_answered_with_x01: Case {
        server: Script(|pki| Smtp {
            mechanisms: "OAUTHBEARER",
            ..tls(pki)
                .on("AUTH OAUTHBEARER", b"334 eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJtYWlsIn0=\r\n")
                .on("AQ==", b"535 5.7.8 token refused\r\n")
        }),
        scenario: starttls_auth!("OAUTHBEARER"),
        exit: 1,
        says: &[r#"{"status":"invalid_token","scope":"mail"}"#, "%x01", "535 5.7.8"],
        checks: &[NotInCleartext("AUTH"), LineInsideTls("AQ==")],
        ..ROW
    };
    // A server that says 235 to an AUTH that carried no credential is flagged.
    authentication_without_a_credential_is_flagged: Case {
        server: Script(|pki| tls(pki).on("AUTH", b"235 2.7.0 welcome, whoever you are\r\n")),
        scenario: "S: 220\nC: EHLO client.example\nS: 250\nC: STARTTLS\nS: 220\n\
                   C: EHLO client.example\nS: 250\nC: AUTH LOGIN\nS: 235\nC: QUIT\nS: 221\n",
        exit: 0,
        says: &["before any credential was sent"],
        ..ROW
    };
    // Implicit TLS asked of a port that speaks plain SMTP: said as such, not as a STARTTLS
    // problem.
    implicit_tls_against_a_plain_port_says_so: Case {
        server: Serve::PLAIN,
        scenario: "S: 220\nC: QUIT\n",
        args: &["--tls", "implicit"],
        exit: 3,
        says: &["answered in cleartext", "--tls starttls"],
        never_says: &["220 to STARTTLS", "220 reply to STARTTLS"],
        ..ROW
    };
    // STARTTLS mode against a port that waits for a ClientHello: the silent greeting is
    // explained with the flag that fixes it.
    starttls_mode_against_an_implicit_port_suggests_the_flag: Case {
        server: Script(|pki| Smtp {
            implicit_tls: true,
            ..tls(pki)
        }),
        scenario: "S: 220\nC: QUIT\n",
        args: &["--tls", "starttls", "--timeout", "1"],
        exit: 3,
        says: &["the greeting", "--tls implicit"],
        ..ROW
    };
}

/// A UNIX domain socket as the target (`unix:/path`, where LMTP servers listen): the same
/// session over it, LHLO and the replies per recipient included. A hand-written server,
/// since the table's servers listen on TCP.
#[test]
fn a_unix_socket_target_carries_an_lmtp_session() {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lmtp.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut lines = BufReader::new(stream).lines();
        writer
            .write_all(b"220 lmtp.example LMTP ready\r\n")
            .unwrap();
        let mut received = Vec::new();
        let mut in_data = false;
        while let Some(Ok(line)) = lines.next() {
            received.push(line.clone());
            let reply: &[u8] = match line.as_str() {
                _ if in_data && line == "." => {
                    in_data = false;
                    b"250 2.0.0 <a@lab.test> delivered\r\n452 4.2.2 <b@lab.test> mailbox full\r\n"
                }
                _ if in_data => continue,
                "LHLO client.example" => b"250-lmtp.example\r\n250 ENHANCEDSTATUSCODES\r\n",
                "RCPT TO:<nobody@lab.test>" => b"550 5.1.1 no such user\r\n",
                "DATA" => {
                    in_data = true;
                    b"354 go ahead\r\n"
                }
                "QUIT" => b"221 bye\r\n",
                _ => b"250 ok\r\n",
            };
            writer.write_all(reply).unwrap();
            if line == "QUIT" {
                break;
            }
        }
        received
    });
    let scenario = "S: 220\nC: LHLO client.example\nS: 250\nC: MAIL FROM:<x@lab.test>\nS: 250\n\
                    C: RCPT TO:<a@lab.test>\nS: 250\nC: RCPT TO:<nobody@lab.test>\nS: 550\n\
                    C: RCPT TO:<b@lab.test>\nS: 250\nC: DATA\nS: 354\nC: Subject: hi\nC: .\n\
                    S: 2xx\nC: QUIT\nS: 221\n";
    let target = format!("unix:{}", path.display());
    let out = Run::new(scenario, &target).run();
    // One reply per accepted recipient; the second (452) does not meet 'S: 2xx', and the run
    // says so rather than passing on the first.
    out.assert_code(1)
        .assert_contains("250 2.0.0 <a@lab.test> delivered")
        .assert_contains("452 4.2.2 <b@lab.test> mailbox full")
        .assert_contains(&format!("connected to unix:{}", path.display()))
        // Not "plain TCP": the transcript says what the connection is.
        .assert_contains("a UNIX domain socket, in cleartext")
        .assert_not_contains("plain TCP");
    let received = server.join().unwrap();
    assert!(received.contains(&"QUIT".to_owned()), "{received:?}");
}
