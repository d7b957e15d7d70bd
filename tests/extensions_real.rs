//! The extensions against real servers from Debian's packages, through the binary:
//!
//! * Postfix (`scripts/postfix-env.sh`, its extensions listener: PIPELINING, CHUNKING,
//!   SMTPUTF8, DSN, SIZE with a small `message_size_limit`, 8BITMIME; accepted messages are
//!   held, and read back here with `postcat`): a pipelined group with one recipient refused,
//!   a BDAT message and a message file byte for byte, a UTF-8 address with SMTPUTF8, DSN
//!   parameters in the queue file, a message over the limit refused at MAIL by SIZE.
//! * Dovecot's LMTP server (`scripts/dovecot-env.sh`, on a UNIX socket and on TCP): one
//!   reply per recipient after the final dot and after BDAT LAST, the delivered file compared.
//!
//! Where a server cannot be started the tests say why and pass as skipped, except under CI.

#![allow(clippy::unwrap_used, clippy::panic)] // test assertions

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::mta::{Mta, dovecot};
use support::postfix::postfix;
use support::{Outcome, Run};

/// The Postfix environment with its extensions listener, or `None` to skip.
fn extensions() -> Option<&'static Mta> {
    let postfix = postfix()?;
    if postfix.get("EXTENSIONS_PORT").is_empty() {
        let reason = "the Postfix environment has no extensions listener (it predates it): run \
                      scripts/postfix-env.sh start again";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{reason}");
        }
        eprintln!("skipping: {reason}");
        return None;
    }
    Some(postfix)
}

/// The Dovecot environment with its LMTP listeners, or `None` to skip.
fn lmtp() -> Option<&'static Mta> {
    let dovecot = dovecot()?;
    if dovecot.get("LMTP_SOCKET").is_empty() {
        let reason = "the Dovecot environment has no LMTP listener (it predates it): run \
                      scripts/dovecot-env.sh start again";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{reason}");
        }
        eprintln!("skipping: {reason}");
        return None;
    }
    Some(dovecot)
}

fn target(postfix: &Mta) -> String {
    format!(
        "{}:{}",
        postfix.get("SMTP_HOST"),
        postfix.port("EXTENSIONS_PORT")
    )
}

/// Runs `scenario` with `files` written next to it.
fn run(scenario: &str, target: &str, files: &[(&str, &[u8])], args: &[&str]) -> Outcome {
    let run = Run::new(scenario, target)
        .args(["--timeout", "20"])
        .args(args);
    for (name, bytes) in files {
        std::fs::write(run.dir().join(name), bytes).unwrap();
    }
    run.run()
}

/// The queue ids Postfix named in its replies ("queued as ID"), each once (the expectation
/// line quotes the reply again).
fn queued(out: &Outcome) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for (at, marker) in out.stdout.match_indices("queued as ") {
        let id: String = out.stdout[at + marker.len()..]
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// A held message as Postfix stores it: `postcat` with `flags` (`-e` the envelope, `-bh`
/// the message), then removed from the queue when `remove`.
fn postcat(postfix: &Mta, id: &str, flags: &str) -> Vec<u8> {
    let output = Command::new("postcat")
        .args(["-c", postfix.get("POSTFIX_CONFIG_DIR"), flags, "-q", id])
        .output()
        .expect("postcat runs (the tests read Postfix's queue, which needs root)");
    assert!(
        output.status.success(),
        "postcat -q {id}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn remove(postfix: &Mta, id: &str) {
    let _ = Command::new("postsuper")
        .args(["-c", postfix.get("POSTFIX_CONFIG_DIR"), "-d", id])
        .output();
}

/// The message Postfix holds, without the Received header it added in front: what the
/// client sent, with each CRLF as postcat's LF.
fn held_message(postfix: &Mta, id: &str) -> Vec<u8> {
    let text = postcat(postfix, id, "-bh");
    let mut rest = &text[..];
    // "Received: ..." and its continuation lines.
    assert!(
        rest.starts_with(b"Received: "),
        "{}",
        String::from_utf8_lossy(&text)
    );
    loop {
        let end = rest.iter().position(|&b| b == b'\n').unwrap() + 1;
        rest = &rest[end..];
        if !rest.starts_with(b"\t") && !rest.starts_with(b" ") {
            break;
        }
    }
    rest.to_vec()
}

/// A message with the headers Postfix would otherwise add, so what it holds is only what
/// was sent, and a body that needs care: dots at line starts, 8-bit text, a long line.
fn message_text() -> String {
    let mut text = String::from(
        "From: alice@example.com\r\nTo: bob@lab.test\r\nSubject: byte for byte\r\n\
         Message-Id: <byte.for.byte@example.com>\r\nDate: Tue, 1 Dec 2026 00:00:00 +0000\r\n\
         \r\n",
    );
    text.push_str(".a line that starts with a dot\r\n..two dots\r\n.\r\ncaf\u{e9} \u{2603}\r\n");
    for n in 0..200 {
        text.push_str(&format!("line {n:03} {}\r\n", "x".repeat(n % 90)));
    }
    text
}

/// RFC 2920 against Postfix: MAIL, RCPT, RCPT and DATA in one group, the second recipient
/// refused (relay denied), each reply checked against its own line, the message accepted
/// for the one recipient.
#[test]
fn a_pipelined_group_with_one_recipient_refused() {
    let Some(postfix) = extensions() else {
        return;
    };
    let scenario = "\
S: 220
C: EHLO client.example
S: 250 PIPELINING
PIPELINE
C: MAIL FROM:<alice@example.com>
C: RCPT TO:<bob@lab.test>
C: RCPT TO:<carol@elsewhere.example>
C: DATA
S: 250 2.1.0
S: 250 2.1.5
S: 554 Relay access denied
S: 354
C: Subject: pipelined
C:
C: hello
C: .
S: 250 queued
C: QUIT
S: 221
";
    let out = run(scenario, &target(postfix), &[], &[]);
    out.assert_code(0)
        .assert_contains("ok   line 10: expected 250 \"2.1.5\", got 250 2.1.5")
        .assert_contains("ok   line 11: expected 554 \"Relay access denied\", got 554 5.7.1 <carol@elsewhere.example>");
    let ids = queued(&out);
    assert_eq!(ids.len(), 1, "{}", out.dump());
    let envelope = String::from_utf8_lossy(&postcat(postfix, &ids[0], "-e")).into_owned();
    remove(postfix, &ids[0]);
    assert!(envelope.contains("recipient: bob@lab.test"), "{envelope}");
    assert!(!envelope.contains("carol"), "{envelope}");
}

/// RFC 3030 against Postfix: a message file in BDAT chunks of 1000 bytes, byte for byte
/// (RAW: not one byte changed, no dot-stuffing), and the same file after DATA (dot-stuffed on
/// the wire, unstuffed by Postfix), both held exactly as sent.
#[test]
fn a_message_file_arrives_byte_for_byte_by_bdat_and_by_data() {
    let Some(postfix) = extensions() else {
        return;
    };
    let message = message_text();
    let scenario = "\
S: 220
C: EHLO client.example
S: 250 CHUNKING
C: MAIL FROM:<alice@example.com>
S: 250
C: RCPT TO:<bob@lab.test>
S: 250
C: BDAT 1000 LAST
FILE RAW message.eml
S: 250 queued
C: MAIL FROM:<alice@example.com>
S: 250
C: RCPT TO:<bob@lab.test>
S: 250
C: DATA
S: 354
FILE message.eml
C: .
S: 250 queued
C: QUIT
S: 221
";
    let out = run(
        scenario,
        &target(postfix),
        &[("message.eml", message.as_bytes())],
        &[],
    );
    out.assert_code(0)
        .assert_contains(&format!(
            "message from message.eml: {},{:03} bytes, 210 lines (sent byte for byte)",
            message.len() / 1000,
            message.len() % 1000
        ))
        .assert_contains("BDAT 1000\n")
        .assert_not_contains("a line that starts with a dot");
    let ids = queued(&out);
    assert_eq!(ids.len(), 2, "{}", out.dump());
    let expected = message.replace("\r\n", "\n").into_bytes();
    for id in &ids {
        let held = held_message(postfix, id);
        remove(postfix, id);
        assert_eq!(
            String::from_utf8_lossy(&held),
            String::from_utf8_lossy(&expected),
            "message {id}"
        );
    }
    // 8-bit content: BODY=8BITMIME was declared, with the size.
    assert!(
        out.stdout
            .contains(&format!("SIZE={} BODY=8BITMIME", message.len())),
        "{}",
        out.dump()
    );
}

/// RFC 6531 against Postfix: UTF-8 addresses are accepted once SMTPUTF8 is on MAIL FROM,
/// which the run adds because the server advertised it.
#[test]
fn a_utf8_address_is_accepted_with_smtputf8() {
    let Some(postfix) = extensions() else {
        return;
    };
    let scenario = "\
S: 220
C: EHLO client.example
S: 250 SMTPUTF8
C: MAIL FROM:<j\u{f6}rg@example.com>
S: 250
C: RCPT TO:<b\u{f8}b@lab.test>
S: 250
C: DATA
S: 354
C: Subject: caf\u{e9}
C:
C: hej
C: .
S: 250 queued
C: QUIT
";
    let out = run(scenario, &target(postfix), &[], &[]);
    out.assert_code(0)
        .assert_contains("C: MAIL FROM:<j\u{f6}rg@example.com> SIZE=")
        .assert_contains(" SMTPUTF8\n")
        .assert_not_contains("did not advertise SMTPUTF8");
    let ids = queued(&out);
    let envelope = String::from_utf8_lossy(&postcat(postfix, &ids[0], "-e")).into_owned();
    remove(postfix, &ids[0]);
    assert!(
        envelope.contains("sender: j\u{f6}rg@example.com"),
        "{envelope}"
    );
    assert!(
        envelope.contains("recipient: b\u{f8}b@lab.test"),
        "{envelope}"
    );
}

/// RFC 3461 against Postfix: RET, ENVID (xtext, "+2B" is a '+'), NOTIFY and ORCPT as
/// Postfix records them in the queue file.
#[test]
fn dsn_parameters_reach_the_queue_file() {
    let Some(postfix) = extensions() else {
        return;
    };
    let scenario = "\
S: 220
C: EHLO client.example
S: 250 DSN
C: MAIL FROM:<alice@example.com> RET=HDRS ENVID=QQ+2B314159
S: 250
C: RCPT TO:<bob@lab.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;bob+2Bdsn@lab.test
S: 250
C: DATA
S: 354
C: Subject: dsn
C: .
S: 250 queued
C: QUIT
";
    let out = run(scenario, &target(postfix), &[], &[]);
    out.assert_code(0);
    let ids = queued(&out);
    let envelope = String::from_utf8_lossy(&postcat(postfix, &ids[0], "-e")).into_owned();
    remove(postfix, &ids[0]);
    for record in [
        "envelope_id=QQ+314159",
        // DSN_RET_HDRS is 2; NOTIFY SUCCESS (2) | DELAY (8) is 10.
        "ret_flags=2",
        "notify_flags=10",
        "dsn_orig_rcpt=rfc822;bob+dsn@lab.test",
    ] {
        assert!(envelope.contains(record), "{record}: {envelope}");
    }
}

/// RFC 1870 against Postfix: a message file over the listener's message_size_limit is
/// declared with SIZE, warned about before MAIL goes, and refused at MAIL (552 5.3.4), so
/// the message itself is never sent.
#[test]
fn a_message_over_the_limit_is_refused_at_mail_by_size() {
    let Some(postfix) = extensions() else {
        return;
    };
    let limit: u64 = postfix.get("EXTENSIONS_SIZE_LIMIT").parse().unwrap();
    let body = "y".repeat(76) + "\n";
    let lines = (limit / 78 + 100) as usize;
    let file = format!("Subject: too big\n\n{}", body.repeat(lines));
    let scenario = "\
S: 220
C: EHLO client.example
S: 250 SIZE
C: MAIL FROM:<alice@example.com>
S: 552 5.3.4
C: RCPT TO:<bob@lab.test>
S: 503
C: DATA
S: 503
FILE big.eml
C: .
C: QUIT
S: 221
";
    let out = run(
        scenario,
        &target(postfix),
        &[("big.eml", file.as_bytes())],
        &[],
    );
    let wire = file.len() as u64 + (lines as u64 + 2);
    out.assert_code(0)
        .assert_contains(&format!("SIZE={wire}"))
        .assert_contains(&format!("over the {limit} octets"))
        .assert_contains("552 5.3.4 Message size exceeds fixed limit")
        .assert_contains("DATA was refused as expected");
    assert!(queued(&out).is_empty(), "{}", out.dump());
}

/// The file LMTP delivered for `user` holding `needle`, from its Maildir.
fn delivered(dovecot: &Mta, user: &str, needle: &str) -> Option<Vec<u8>> {
    let local = user.split('@').next().unwrap_or(user);
    let dir: PathBuf = Path::new(dovecot.get("MAIL_HOME"))
        .join(local)
        .join("Maildir")
        .join("new");
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|entry| std::fs::read(entry.ok()?.path()).ok())
        .find(|bytes| support::find_bytes(bytes, needle.as_bytes()).is_some())
}

/// RFC 2033 against Dovecot's LMTP on its UNIX socket: a pipelined group with an unknown
/// recipient, a message file after DATA, and one reply per accepted recipient after the
/// final dot (delivered for one, over quota for the other), each checked against its own
/// `S:`; the delivered file holds the message.
#[test]
fn lmtp_on_a_unix_socket_answers_per_recipient() {
    let Some(dovecot) = lmtp() else {
        return;
    };
    let tag = format!("lmtp-socket-{}", std::process::id());
    let scenario = format!(
        "\
S: 220
C: LHLO client.example
S: 250 PIPELINING
PIPELINE
C: MAIL FROM:<sender@example.com>
C: RCPT TO:<{user}>
C: RCPT TO:<nobody@lab.test>
C: RCPT TO:<{full}>
C: DATA
S: 250
S: 250
S: 550 5.1.1
S: 250
S: 354
FILE message.eml
C: .
S: 250 <{user}>
S: 552 5.2.2 <{full}>
C: QUIT
S: 221
",
        user = dovecot.get("LMTP_USER"),
        full = dovecot.get("LMTP_FULL_USER"),
    );
    let message = format!("Subject: {tag}\n\n.dotted\nbody\n");
    let out = run(
        &scenario,
        &format!("unix:{}", dovecot.get("LMTP_SOCKET")),
        &[("message.eml", message.as_bytes())],
        &["--protocol", "lmtp"],
    );
    out.assert_code(0)
        .assert_contains("ok   line 17: expected 250")
        .assert_contains("ok   line 18: expected 552 \"5.2.2");
    let file = delivered(dovecot, dovecot.get("LMTP_USER"), &tag).expect("delivered");
    let text = String::from_utf8_lossy(&file);
    assert!(
        text.ends_with(&format!("Subject: {tag}\n\n.dotted\nbody\n")),
        "{text}"
    );
}

/// RFC 2033 with RFC 3030 against Dovecot's LMTP on TCP: a file in several BDAT chunks, then
/// one reply per accepted recipient to BDAT LAST. A chunk without LAST once counted as the
/// end of the transaction, and the second recipient's reply was then taken as out of step.
#[test]
fn lmtp_over_tcp_answers_bdat_last_per_recipient_after_several_chunks() {
    let Some(dovecot) = lmtp() else {
        return;
    };
    let tag = format!("lmtp-bdat-{}", std::process::id());
    let scenario = format!(
        "\
S: 220
C: LHLO client.example
S: 250 CHUNKING
C: MAIL FROM:<sender@example.com>
S: 250
C: RCPT TO:<{user}>
S: 250
C: RCPT TO:<{full}>
S: 250
C: BDAT 64 LAST
FILE message.eml
S: 250 <{user}>
S: 552 <{full}>
C: QUIT
S: 221
",
        user = dovecot.get("LMTP_USER"),
        full = dovecot.get("LMTP_FULL_USER"),
    );
    let message = format!(
        "Subject: {tag}\r\n\r\n{}",
        "chunked line of the message body\r\n".repeat(10)
    );
    let out = run(
        &scenario,
        &format!("{}:{}", dovecot.get("LMTP_HOST"), dovecot.get("LMTP_PORT")),
        &[("message.eml", message.as_bytes())],
        &["--protocol", "lmtp"],
    );
    out.assert_code(0).assert_contains("C: BDAT 64\n");
    let file = delivered(dovecot, dovecot.get("LMTP_USER"), &tag).expect("delivered");
    let text = String::from_utf8_lossy(&file);
    assert!(text.ends_with(&message.replace("\r\n", "\n")), "{text}");
}

/// The example scenarios of assets/ pass against the servers they are written for, with the
/// message file beside them.
#[test]
fn the_example_scenarios_pass() {
    let message = std::fs::read(support::mta::repo().join("assets").join("message.eml")).unwrap();
    let asset = |name: &str| {
        std::fs::read_to_string(support::mta::repo().join("assets").join(name)).unwrap()
    };
    if let Some(postfix) = extensions() {
        for name in [
            "pipelining.smtp",
            "data-file.smtp",
            "bdat-file.smtp",
            "dsn-smtputf8.smtp",
        ] {
            let out = run(
                &asset(name),
                &target(postfix),
                &[("message.eml", &message)],
                &[],
            );
            for id in queued(&out) {
                remove(postfix, &id);
            }
            out.assert_code(0);
        }
    }
    if let Some(dovecot) = lmtp() {
        let out = run(
            &asset("lmtp.smtp"),
            &format!("unix:{}", dovecot.get("LMTP_SOCKET")),
            &[("message.eml", &message)],
            &["--protocol", "lmtp"],
        );
        out.assert_code(0);
    }
}
