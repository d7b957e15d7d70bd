//! `smtptui run` with the extensions, against the scripted fake server: pipelined groups,
//! BDAT, MAIL and RCPT parameters, REQUIRETLS, message files and LMTP's replies per
//! recipient. One row per case ([`support::Case`]) where the table's server is enough; the
//! tests below the table write message files next to the scenario.
//!
//! The real servers (Postfix for PIPELINING, CHUNKING, SMTPUTF8, DSN and SIZE, Dovecot for
//! LMTP) are in `tests/extensions_real.rs`.

#![allow(clippy::unwrap_used, clippy::panic)] // test assertions

mod support;

use support::Check::*;
use support::Serve::*;
use support::{Case, Run, Server, Smtp, find_ci};

/// An EHLO reply with exactly these extensions.
fn ehlo(extensions: &[&str]) -> Vec<u8> {
    let mut reply = String::from("250-fake.example greets you\r\n");
    for (index, extension) in extensions.iter().enumerate() {
        let sep = if index + 1 == extensions.len() {
            ' '
        } else {
            '-'
        };
        reply.push_str(&format!("250{sep}{extension}\r\n"));
    }
    if extensions.is_empty() {
        reply = "250 fake.example greets you\r\n".to_owned();
    }
    reply.into_bytes()
}

/// MAIL, two RCPTs and DATA in one group, then a message and QUIT.
const GROUP: &str = "\
S: 220
C: EHLO client.example
S: 250
PIPELINE
C: MAIL FROM:<alice@example.com>
C: RCPT TO:<bob@example.com>
C: RCPT TO:<nobody@example.com>
C: DATA
S: 250
S: 250
S: 550 5.1.1
S: 354
C: Subject: grouped
C:
C: .dot
C: .
S: 250
C: QUIT
S: 221
";

/// The same group with FORCE.
const FORCED_GROUP: &str = "\
S: 220
C: EHLO client.example
S: 250
PIPELINE FORCE
C: MAIL FROM:<alice@example.com>
C: RCPT TO:<bob@example.com>
C: DATA
S: 250
S: 250
S: 354
C: Subject: forced
C: .
S: 250
";

fn refuses_nobody(smtp: Smtp) -> Smtp {
    smtp.on(
        "RCPT TO:<NOBODY",
        b"550 5.1.1 <nobody@example.com>: no such user\r\n",
    )
}

cases! {
    // Each reply of a group is checked against its own S: line, in order: the 550 meets the
    // third, and the message goes after the 354.
    a_group_is_checked_reply_by_reply: Case {
        server: Script(|_| refuses_nobody(Smtp::default())),
        scenario: GROUP,
        exit: 0,
        says: &["line 11: expected 550", "550 5.1.1 <nobody@example.com>"],
        checks: &[Message(&["Subject: grouped", "", "..dot"])],
        ..Case::ROW
    };
    // A reply that does not meet its own line fails on that line, not on another.
    a_group_reply_that_misses_its_line_fails_there: Case {
        server: Script(|_| Smtp::default()),
        scenario: GROUP,
        exit: 1,
        says: &["expectation on line 11"],
        never_sent: &["Subject"],
        ..Case::ROW
    };
    // RFC 2920: no group to a server that did not advertise PIPELINING; nothing of it is sent.
    a_group_without_pipelining_is_not_sent: Case {
        server: Script(|_| Smtp::default().on("EHLO", &ehlo(&["8BITMIME"]))),
        scenario: GROUP,
        exit: 3,
        says: &["did not advertise PIPELINING"],
        never_sent: &["MAIL", "RCPT", "DATA"],
        checks: &[NamesLine(4)],
        ..Case::ROW
    };
    // PIPELINE FORCE sends it all the same, to see what the server does.
    a_forced_group_goes_to_a_server_without_pipelining: Case {
        server: Script(|_| Smtp::default().on("EHLO", &ehlo(&["8BITMIME"]))),
        scenario: FORCED_GROUP,
        exit: 0,
        checks: &[Message(&["Subject: forced"])],
        ..Case::ROW
    };
    // And so does --force, for every group of the run.
    force_on_the_command_line_sends_groups_too: Case {
        server: Script(|_| refuses_nobody(Smtp::default()).on("EHLO", &ehlo(&["8BITMIME"]))),
        scenario: GROUP,
        args: &["--force"],
        exit: 0,
        checks: &[Message(&["Subject: grouped", "", "..dot"])],
        ..Case::ROW
    };
    // RFC 3030: no BDAT to a server that did not advertise CHUNKING.
    bdat_without_chunking_is_not_sent: Case {
        server: Script(|_| Smtp::default()),
        scenario: "S: 220\nC: EHLO client.example\nS: 250\nC: MAIL FROM:<a@example.com>\nS: 250\n\
                   C: RCPT TO:<b@example.com>\nS: 250\nC: BDAT LAST\nC: Subject: x\nS: 250\n",
        exit: 3,
        says: &["did not advertise CHUNKING"],
        never_sent: &["BDAT", "Subject"],
        checks: &[NamesLine(8)],
        ..Case::ROW
    };
    // RFC 8689: REQUIRETLS never leaves on a connection without verified TLS, advertised or
    // not; nothing of the MAIL line crosses.
    requiretls_is_never_sent_in_cleartext: Case {
        server: Script(|_| Smtp::default().on("EHLO", &ehlo(&["PIPELINING", "REQUIRETLS"]))),
        scenario: "S: 220\nC: EHLO client.example\nS: 250\nC: MAIL FROM:<a@example.com> REQUIRETLS\n\
                   S: 250\nC: QUIT\n",
        exit: 3,
        says: &["REQUIRETLS not sent", "cleartext", "STARTTLS first"],
        never_sent: &["MAIL"],
        checks: &[NamesLine(4)],
        ..Case::ROW
    };
    // The same inside a group: the whole group stays unsent.
    requiretls_in_a_group_stops_the_group: Case {
        server: Script(|_| Smtp::default()),
        scenario: "S: 220\nC: EHLO client.example\nS: 250\nPIPELINE\nC: MAIL FROM:<a@example.com> REQUIRETLS\n\
                   C: RCPT TO:<b@example.com>\nS: 250\nS: 250\n",
        exit: 3,
        says: &["REQUIRETLS not sent"],
        never_sent: &["MAIL", "RCPT"],
        ..Case::ROW
    };
    // A typo in a DSN parameter is found before anything is sent, with the fix.
    a_mistyped_parameter_is_a_usage_error: Case {
        server: Nobody,
        scenario: "S: 220\nC: EHLO client.example\nC: MAIL FROM:<a@example.com>\n\
                   C: RCPT TO:<b@example.com> NOTIFY=SUCESS\n",
        exit: 2,
        says: &["not a notification", "SUCCESS, FAILURE and DELAY", "--literal"],
        checks: &[NamesLine(4), NamesFile],
        ..Case::ROW
    };
    // --literal sends it as written, to see what the server says; the session warns.
    literal_sends_a_parameter_as_written: Case {
        server: Script(|_| Smtp::default().on("RCPT", b"501 5.5.4 Bad NOTIFY parameter\r\n")),
        scenario: "S: 220\nC: EHLO client.example\nC: MAIL FROM:<a@example.com>\n\
                   C: RCPT TO:<b@example.com> NOTIFY=SUCESS\nS: 501\n",
        args: &["--literal"],
        exit: 0,
        says: &["RCPT TO:<b@example.com> NOTIFY=SUCESS", "not a notification"],
        ..Case::ROW
    };
    // More S: lines after the end of a message than the server sends replies: an SMTP
    // server answers once, and the run says why it fails.
    replies_per_recipient_from_a_server_that_answers_once: Case {
        server: Script(|_| Smtp::default()),
        scenario: "S: 220\nC: EHLO client.example\nC: MAIL FROM:<a@example.com>\n\
                   C: RCPT TO:<b@example.com>\nC: RCPT TO:<c@example.com>\nC: DATA\nC: Hi\nC: .\n\
                   S: 250\nS: 250\n",
        exit: 1,
        says: &["expect 2 replies", "the server sent 1", "LMTP"],
        checks: &[NamesLine(9)],
        ..Case::ROW
    };
    // SIZE is declared from the message when the server advertised it, and a message over
    // the advertised limit is warned about before MAIL goes.
    size_is_declared_and_a_message_over_the_limit_warned: Case {
        server: Script(|_| Smtp::default().on("EHLO", &ehlo(&["PIPELINING", "SIZE 20"]))),
        scenario: "S: 220\nC: EHLO client.example\nC: MAIL FROM:<a@example.com>\n\
                   C: RCPT TO:<b@example.com>\nC: DATA\nC: Subject: over twenty bytes\nC: .\nS: 250\n",
        exit: 0,
        says: &["MAIL FROM:<a@example.com> SIZE=28", "over the 20 octets"],
        ..Case::ROW
    };
    // An address in UTF-8: SMTPUTF8 added where advertised...
    smtputf8_is_added_where_advertised: Case {
        server: Script(|_| Smtp::default().on("EHLO", &ehlo(&["PIPELINING", "SMTPUTF8"]))),
        scenario: "S: 220\nC: EHLO client.example\nC: MAIL FROM:<a@example.com>\nS: 250\n\
                   C: RCPT TO:<j\u{f6}rg@example.com>\nS: 250\n",
        exit: 0,
        says: &["MAIL FROM:<a@example.com> SMTPUTF8", "added to MAIL FROM"],
        never_says: &["did not advertise SMTPUTF8"],
        ..Case::ROW
    };
    // ...and a warning where it was not: sent as written.
    a_utf8_address_without_smtputf8_is_warned: Case {
        server: Script(|_| Smtp::default()),
        scenario: "S: 220\nC: EHLO client.example\nC: MAIL FROM:<a@example.com>\nS: 250\n\
                   C: RCPT TO:<j\u{f6}rg@example.com>\nS: 250\n",
        exit: 0,
        says: &["did not advertise SMTPUTF8"],
        never_says: &["added to MAIL FROM"],
        ..Case::ROW
    };
    // A device as a message file would be read without end while it is checked: refused.
    a_device_as_message_file_is_refused: Case {
        server: Nobody,
        scenario: "S: 220\nC: EHLO client.example\nC: DATA\nFILE /dev/zero\nC: .\n",
        exit: 2,
        says: &["not a regular file"],
        checks: &[NamesLine(4), Within(10)],
        ..Case::ROW
    };
    // --protocol lmtp holds the scenario to LHLO before connecting.
    ehlo_under_protocol_lmtp_is_a_usage_error: Case {
        server: Nobody,
        scenario: "S: 220\nC: EHLO client.example\nS: 250\n",
        args: &["--protocol", "lmtp"],
        exit: 2,
        says: &["LMTP greets with LHLO"],
        checks: &[NamesLine(2)],
        ..Case::ROW
    };
}

/// A run with `message.eml` next to the scenario.
fn run_with_file(scenario: &str, target: &str, file: &[u8]) -> support::Outcome {
    let run = Run::new(scenario, target);
    std::fs::write(run.dir().join("message.eml"), file).unwrap();
    run.run()
}

const FILE_MESSAGE: &str = "\
S: 220
C: EHLO client.example
S: 250
C: MAIL FROM:<alice@example.com>
S: 250
C: RCPT TO:<bob@example.com>
S: 250
C: DATA
S: 354
C: X-Written: in the scenario
FILE message.eml
C: .
S: 250
C: QUIT
S: 221
";

/// The file's lines reach the server dot-stuffed with CRLF; the transcript shows a summary of
/// the file (size, lines, first lines), never its body.
#[test]
fn a_message_file_is_summarised_and_sent_stuffed_with_crlf() {
    let server = Server::smtp(Smtp::default());
    let file = "Subject: from a file\nFrom: alice@example.com\n\nunmistakable body line\r\n.dot\ncaf\u{e9}";
    let out = run_with_file(FILE_MESSAGE, &server.target(), file.as_bytes());
    let rec = server.finish();
    out.assert_code(0)
        .assert_contains("message from message.eml: 86 bytes as sent (80 in the file), 6 lines")
        .assert_contains("\"Subject: from a file\"")
        .assert_contains("SIZE=114 BODY=8BITMIME")
        .assert_not_contains("unmistakable body line");
    let got: Vec<String> = rec.messages[0]
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    assert_eq!(
        got,
        [
            "X-Written: in the scenario",
            "Subject: from a file",
            "From: alice@example.com",
            "",
            "unmistakable body line",
            "..dot",
            "caf\u{e9}"
        ]
    );
    // Every line crossed with CRLF, none with a bare LF.
    let wire = rec.all_bytes();
    assert!(find_ci(&wire, b"alice@example.com\r\n\r\nunmistakable").is_some());
    assert!(!wire.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
}

/// A carriage return alone in the file is found before anything is sent: the error names the
/// scenario line, the file and its line, and how to send it instead.
#[test]
fn a_bare_cr_in_a_message_file_is_refused_before_connecting() {
    let server = Server::smtp(Smtp::default());
    let out = run_with_file(
        FILE_MESSAGE,
        &server.target(),
        b"Subject: x\n\nline two\rstill line two\n",
    );
    let rec = server.finish();
    out.assert_code(2)
        .assert_contains("message.eml:3")
        .assert_contains("carriage return")
        .assert_contains("FILE RAW");
    assert!(out.names_line(11), "{}", out.dump());
    assert!(!rec.connected, "nothing may be sent: {}", rec.dump());
}

/// A missing message file is a usage error too, before connecting.
#[test]
fn a_missing_message_file_is_named() {
    let server = Server::smtp(Smtp::default());
    let out = Run::new(FILE_MESSAGE, &server.target()).run();
    let rec = server.finish();
    out.assert_code(2)
        .assert_contains("\"message.eml\"")
        .assert_contains("relative to the scenario's directory");
    assert!(!rec.connected);
}

/// A file larger than the SIZE the server advertised is warned about before MAIL goes.
#[test]
fn a_message_file_over_the_advertised_size_is_warned() {
    let server = Server::smtp(Smtp::default().on("EHLO", &ehlo(&["PIPELINING", "SIZE 1000"])));
    let out = run_with_file(FILE_MESSAGE, &server.target(), "x".repeat(2000).as_bytes());
    server.finish();
    out.assert_code(0)
        .assert_contains("SIZE=2030")
        .assert_contains("over the 1000 octets");
    let warning = out.stdout.find("over the 1000 octets").unwrap();
    let mail = out.stdout.find("C: MAIL FROM").unwrap();
    assert!(
        warning < mail,
        "the warning comes before MAIL: {}",
        out.dump()
    );
}

/// LMTP has no port in RFC 2033; --protocol lmtp connects to 24 when the target names none.
#[test]
fn protocol_lmtp_connects_to_port_24_by_default() {
    let out = Run::new("S: 220\nC: LHLO client.example\nS: 250\n", "127.0.0.1")
        .args(["--protocol", "lmtp"])
        .run();
    // Whatever listens there (on a test machine, nothing), the run went to port 24.
    assert!(out.has("127.0.0.1:24"), "{}", out.dump());
    assert!(!out.has("127.0.0.1:25"), "{}", out.dump());
}
