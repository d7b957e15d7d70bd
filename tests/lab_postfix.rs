//! The lab's replies against the real Postfix of `scripts/postfix-env.sh`, profile by profile,
//! command by command, so the two cannot drift.
//!
//! Each profile is paired with the Postfix listener configured like it (submission with
//! `smtpd_tls_security_level=encrypt`, the MX with `may` and no AUTH, legacy with AUTH before
//! TLS, implicit TLS, no TLS at all for `strip`, TLS that cannot start for `refuse-tls`, AUTH
//! only inside optional TLS for `inject`, the MX again for `slow`). The same scripts run
//! against both; the transcripts must be equal once the host name in the banner and the
//! queue IDs are set aside. The lab runs with Postfix's account and the same error sleep
//! (none) as the test Postfix, `slow` without its delays, and SMTPUTF8 and REQUIRETLS on or off
//! as that Postfix has them (`smtputf8_enable`, and `requiretls_enable`, which Postfix has
//! from 3.11).
//!
//! Postfix has no LMTP server, so the `lmtp` profile runs the MX's scripts with the three
//! differences RFC 2033 makes translated: LHLO for EHLO (scripts with HELO, which LMTP does
//! not have, are left out), `LMTP` for `ESMTP` in the greeting, and the recipient named in
//! each reply to the end of a message. Everything else must be Postfix's, word for word.

#![allow(clippy::panic)] // panicking is how a test fails

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::pki_types::{CertificateDer, ServerName};
use smtptui::lab::{Lab, LabConfig, Profile};
use smtptui::secret::Secret;
use support::postfix::{Postfix, postfix};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// How long one reply may take: past it the transcript says `<no reply>` and the script ends
/// (a broken server makes a difference, never a hang).
const REPLY_DEADLINE: Duration = Duration::from_secs(5);

/// The Postfix listener configured like each profile, and whether it speaks TLS first.
fn postfix_listener(profile: Profile) -> (&'static str, bool) {
    match profile {
        Profile::Submission => ("SUBMISSION_PORT", false),
        Profile::Mx | Profile::Slow | Profile::Lmtp | Profile::Grade => ("MX_PORT", false),
        Profile::Legacy => ("LEGACY_PORT", false),
        Profile::Implicit => ("IMPLICIT_PORT", true),
        Profile::Inject => ("OPTIONAL_PORT", false),
        Profile::Strip => ("NOTLS_PORT", false),
        Profile::RefuseTls => ("BROKENTLS_PORT", false),
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Gone,
}

/// One client connection: what was read but not yet used is kept.
struct Wire {
    stream: Stream,
    buffer: Vec<u8>,
    closed: bool,
    silent: bool,
    trust: CertificateDer<'static>,
}

impl Wire {
    async fn connect(addr: SocketAddr, implicit: bool, trust: CertificateDer<'static>) -> Wire {
        let tcp = tokio::time::timeout(REPLY_DEADLINE, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        let mut wire = Wire {
            stream: Stream::Plain(tcp),
            buffer: Vec::new(),
            closed: false,
            silent: false,
            trust,
        };
        if implicit {
            wire.handshake().await;
        }
        wire
    }

    async fn handshake(&mut self) {
        // Bytes read in cleartext are never used inside TLS (for `inject`: the forged reply).
        self.buffer.clear();
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            panic!("TLS twice");
        };
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.trust.clone()).expect("root");
        let config = rustls::ClientConfig::builder_with_provider(smtptui::tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = ServerName::try_from("localhost").expect("name");
        let tls = tokio::time::timeout(REPLY_DEADLINE, connector.connect(name, tcp))
            .await
            .expect("handshake in time")
            .expect("handshake");
        self.stream = Stream::Tls(Box::new(tls));
    }

    async fn send(&mut self, bytes: &[u8]) {
        let result = match &mut self.stream {
            Stream::Plain(tcp) => write(tcp, bytes).await,
            Stream::Tls(tls) => write(tls.as_mut(), bytes).await,
            Stream::Gone => Ok(()),
        };
        if result.is_err() {
            self.closed = true;
        }
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        let read = match &mut self.stream {
            Stream::Plain(tcp) => tokio::time::timeout(REPLY_DEADLINE, tcp.read(&mut chunk)).await,
            Stream::Tls(tls) => tokio::time::timeout(REPLY_DEADLINE, tls.read(&mut chunk)).await,
            Stream::Gone => return false,
        };
        match read {
            Ok(Ok(n @ 1..)) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                true
            }
            Ok(_) => {
                self.closed = true;
                false
            }
            Err(_) => {
                self.silent = true;
                false
            }
        }
    }

    /// One whole reply (its lines), or `None` when the server closed the connection or said
    /// nothing before the deadline.
    async fn reply(&mut self) -> Option<Vec<String>> {
        loop {
            let text = String::from_utf8_lossy(&self.buffer).into_owned();
            let mut consumed = 0;
            let mut lines = Vec::new();
            for line in text.split_inclusive('\n') {
                if !line.ends_with('\n') {
                    break;
                }
                consumed += line.len();
                let line = line.trim_end_matches(['\r', '\n']).to_owned();
                let last = line.len() == 3 || line.as_bytes().get(3) == Some(&b' ');
                lines.push(line);
                if last {
                    self.buffer.drain(..consumed);
                    return Some(lines);
                }
            }
            if self.closed || !self.fill().await {
                return None;
            }
        }
    }

    /// Whether the server closes the connection now (after a 221 or 421).
    async fn closes(&mut self) -> bool {
        if !self.buffer.is_empty() {
            return false;
        }
        !self.fill().await
    }
}

async fn write<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// What a script's placeholders stand for: the Postfix account, in the forms AUTH needs.
struct Credentials {
    user: String,
    password: String,
}

impl Credentials {
    fn fill(&self, line: &str) -> String {
        line.replace(
            "{PLAIN}",
            &BASE64.encode(format!("\0{}\0{}", self.user, self.password)),
        )
        .replace(
            "{BADPLAIN}",
            &BASE64.encode(format!("\0{}\0wrong-{}", self.user, self.password)),
        )
        .replace("{USER64}", &BASE64.encode(&self.user))
        .replace("{PASS64}", &BASE64.encode(&self.password))
        .replace("{BADPASS64}", &BASE64.encode("not the password"))
    }
}

/// Runs a script and returns its transcript, normalised where the two servers may differ
/// without a student noticing: the banner's `Postfix`, and queue IDs.
///
/// Script lines: `C: text` sends a line and reads its reply; `D: text` sends a line of message
/// text and reads nothing, and `E: .` ends the message and reads the reply, both only after a
/// 354 (otherwise they are not sent: the server would take them for commands); `R: text` sends
/// the text as it is (`\r\n` and `\xNN` written out) and reads one reply (`R4:` four); `P: a|b|c` sends the lines in one write and reads a reply for each (`Q: a|b`
/// likewise, reading only the first: after STARTTLS the rest is never answered); `TLS`
/// starts TLS (after a 220 to STARTTLS).
async fn transcript(
    addr: SocketAddr,
    implicit: bool,
    trust: CertificateDer<'static>,
    script: &str,
    credentials: &Credentials,
) -> Vec<String> {
    let mut wire = Wire::connect(addr, implicit, trust).await;
    let mut out = Vec::new();
    let record = |out: &mut Vec<String>, reply: Option<Vec<String>>| -> bool {
        match reply {
            Some(lines) => {
                for line in lines {
                    out.push(format!("S: {}", normalise(&line)));
                }
                true
            }
            None => {
                out.push("<closed or silent>".to_owned());
                false
            }
        }
    };
    let greeting = wire.reply().await;
    if !record(&mut out, greeting) {
        return out;
    }
    let mut in_data = false;
    // Not trimmed: trailing spaces and tabs are part of what is sent.
    for step in script.lines().filter(|l| !l.trim().is_empty()) {
        let (kind, text) = step.split_once(": ").unwrap_or((step, ""));
        if matches!(kind, "D" | "D:" | "E") && !in_data {
            out.push(format!("{step} (not sent: no 354)"));
            continue;
        }
        out.push(step.to_owned());
        let text = credentials.fill(text);
        let replies = match kind {
            "TLS" => {
                wire.handshake().await;
                0
            }
            "D" | "D:" => {
                wire.send(format!("{text}\r\n").as_bytes()).await;
                0
            }
            "C" | "C:" => {
                wire.send(format!("{text}\r\n").as_bytes()).await;
                1
            }
            "E" => {
                in_data = false;
                wire.send(format!("{text}\r\n").as_bytes()).await;
                1
            }
            kind if kind.starts_with('R') => {
                wire.send(&unescape(&text)).await;
                kind[1..].parse().unwrap_or(1)
            }
            "P" | "Q" => {
                let lines: Vec<&str> = text.split('|').collect();
                let mut bytes = String::new();
                for line in &lines {
                    bytes.push_str(line);
                    bytes.push_str("\r\n");
                }
                wire.send(bytes.as_bytes()).await;
                if kind == "Q" { 1 } else { lines.len() }
            }
            other => panic!("unknown script step {other:?}"),
        };
        for _ in 0..replies {
            let reply = wire.reply().await;
            let last = reply.as_ref().and_then(|lines| lines.last()).cloned();
            let ending = last.as_ref().is_some_and(|last| {
                ["221", "421", "521"]
                    .iter()
                    .any(|code| last.starts_with(code))
            });
            if last.as_ref().is_some_and(|last| last.starts_with("354")) {
                in_data = true;
            }
            if !record(&mut out, reply) {
                return out;
            }
            if ending {
                if wire.closes().await {
                    out.push("<closed>".to_owned());
                    return out;
                }
                out.push("<still open>".to_owned());
            }
        }
    }
    out
}

/// `\r\n` and `\xNN` written out in an `R:` step, as bytes.
fn unescape(text: &str) -> Vec<u8> {
    let text = text.replace("\\r\\n", "\r\n");
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'\\' && tail.first() == Some(&b'x') && tail.len() >= 3 {
            let hex = std::str::from_utf8(&tail[1..3]).expect("ASCII escape");
            bytes.push(u8::from_str_radix(hex, 16).expect("\\xNN"));
            rest = &tail[3..];
        } else {
            bytes.push(first);
            rest = tail;
        }
    }
    bytes
}

fn normalise(line: &str) -> String {
    let line = line.strip_suffix(" Postfix").unwrap_or(line);
    // The lab's submission and legacy profiles also teach CRAM-MD5 and OAUTHBEARER; the
    // Postfix listeners they are paired with keep Cyrus's PLAIN LOGIN (Cyrus has no
    // OAUTHBEARER), and the scripts use no other mechanism.
    let line = line.replace("AUTH PLAIN LOGIN CRAM-MD5 OAUTHBEARER", "AUTH PLAIN LOGIN");
    let line = line.as_str();
    match line.split_once("queued as ") {
        Some((before, _id)) => format!("{before}queued as ID"),
        None => line.to_owned(),
    }
}

/// A line of 600 characters for EHLO (Postfix reads up to 2048).
fn long_ehlo() -> String {
    format!("C: EHLO {}.example", "x".repeat(600))
}

const BASICS: &str = "
C: EHLO client.example
C: HELO client.example
C: EHLO
C: HELO
C: NOOP
C: NOOP with words
C: noop
C: HELP
C: EXPN bob
C:
C: RSET x
C: QUIT now
";

/// What people type by hand: trailing spaces, tabs, lower case, HELO instead of EHLO.
const BY_HAND: &str = "
C: helo client.example
C: mail from:<a@lab.test> SIZE=10 BODY=8BITMIME
C: rcpt to:<bob@lab.test>\tNOTIFY=NEVER
C: RSET\t
C: MAIL FROM:<a@lab.test> \t
C: RCPT TO:<bob@lab.test> 
C: NOOP 
C: EHLO  two.spaces.example
C: QUIT 
";

const GOODBYE_HTTP: &str = "C: GET / HTTP/1.0";
const GOODBYE_HEADER: &str = "C: Subject: hello";
const GOODBYE_DIGIT: &str = "C: 123 go";

const ERROR_LIMIT: &str = "
P: FOO|FOO|FOO|FOO|FOO|FOO|FOO|FOO|FOO|FOO|FOO|FOO|FOO|FOO|FOO|FOO|FOO|FOO|FOO|FOO|NOOP
";

const VRFY_ETRN: &str = "
C: EHLO c
C: VRFY
C: VRFY bob
C: VRFY <bob@lab.test>
C: VRFY x@example.com
C: VRFY a b
C: ETRN
C: ETRN lab.test
C: ETRN @lab.test
C: QUIT
";

const MAIL: &str = "
C: EHLO c
C: MAIL
C: MAIL FROM:
C: MAIL FROM:<a b@lab.test>
C: MAIL FROM:<a@lab.test> FOO=bar
C: MAIL FROM:<a@lab.test> BODY=BINARYMIME
C: MAIL FROM:<a@lab.test> SMTPUTF8
C: MAIL FROM:<a@lab.test> SIZE=abc
C: MAIL FROM:<a@lab.test> RET=FOO
C: MAIL FROM:<a@lab.test> SIZE=99999999
C: RSET
C: MAIL FROM:<a@lab.test> BODY=8BITMIME RET=HDRS ENVID=abc AUTH=<>
C: MAIL FROM:<a@lab.test>
C: RSET
C: MAIL FROM:<>
C: RSET
C: MAIL FROM:a@lab.test
C: RSET
C: MAIL FROM: <a@lab.test>
C: QUIT
";

const RCPT: &str = "
C: EHLO c
C: RCPT TO:<bob@lab.test>
C: MAIL FROM:<a@lab.test>
C: RCPT
C: RCPT TO:
C: RCPT TO:<>
C: RCPT TO:<bob@lab.test
C: RCPT TO:<a b@lab.test>
C: RCPT TO:<bob@lab.test> FOO=1
C: RCPT TO:<bob@lab.test> NOTIFY=SOMETIMES
C: RCPT TO:<bob@lab.test> ORCPT=nosemicolon
C: RCPT TO:<bob@lab.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;bob@lab.test
C: RCPT TO:<bob@lab.test>
C: RCPT TO:<\"a b\"@lab.test>
C: RCPT TO:<@relay.example:bob@lab.test>
C: RCPT TO:<postmaster>
C: RCPT TO:bob@LAB.TEST
C: RCPT TO:<x@example.com>
C: DATA x
C: QUIT
";

const DATA: &str = "
C: EHLO c
C: DATA
C: MAIL FROM:<a@lab.test>
C: DATA
C: RCPT TO:<bob@lab.test>
C: DATA x
C: DATA
D: Subject: parity
D:
D: ..a line that starts with a dot
D: {LONG}
E: .
C: MAIL FROM:<a@lab.test>
C: QUIT
";

const BDAT: &str = "
C: EHLO c
C: MAIL FROM:<a@lab.test>
C: RCPT TO:<bob@lab.test>
R: BDAT 5\\r\\nhello
C: DATA
C: MAIL FROM:<a@lab.test>
R: BDAT 2 LAST\\r\\nab
C: MAIL FROM:<a@lab.test>
R: BDAT 3\\r\\nabc
R: BDAT 2 LAST\\r\\nab
C: MAIL FROM:<a@lab.test>
C: RSET
R: BDAT 1\\r\\nq
C: RSET
C: QUIT
";

const BDAT_SYNTAX: &str = "
C: EHLO c
C: BDAT five
";

const PIPELINED: &str = "
C: EHLO c
P: MAIL FROM:<a@lab.test>|RCPT TO:<bob@lab.test>|RCPT TO:<x@example.com>|RSET|NOOP
C: QUIT
";

/// A group whose replies are mixed (one recipient refused), ending in DATA, and its message;
/// then BDAT chunks in one write.
const PIPELINED_MESSAGE: &str = "
C: EHLO c
P: MAIL FROM:<a@lab.test>|RCPT TO:<bob@lab.test>|RCPT TO:<x@example.com>|DATA
D: Subject: pipelined
D:
D: hello
E: .
R4: MAIL FROM:<a@lab.test>\\r\\nRCPT TO:<bob@lab.test>\\r\\nBDAT 3\\r\\nabcBDAT 2 LAST\\r\\nde
C: QUIT
";

/// SIZE declared: the limit, the overflow, and the size kept after a refused MAIL.
const SIZE: &str = "
C: EHLO c
C: MAIL FROM:<a@lab.test> SIZE=99999999
C: MAIL FROM:<a@lab.test>
C: RSET
C: MAIL FROM:<a@lab.test> SIZE=99999999999999999999
C: RSET
C: MAIL FROM:<a@lab.test> SIZE=99999999 FOO=1
C: MAIL FROM:<a@lab.test> SIZE=
C: MAIL FROM:<a@lab.test> SIZE
C: RSET
C: MAIL FROM:<a@lab.test> SIZE=10240000
C: RSET
C: MAIL FROM:<a@lab.test> SIZE=0 SIZE=20
C: QUIT
";

/// DSN parameters of MAIL (and AUTH=), valid and not, as Postfix reads them.
const DSN_MAIL: &str = "
C: EHLO c
C: MAIL FROM:<a@lab.test> RET=HDRS RET=FULL
C: MAIL FROM:<a@lab.test> ENVID=a+2
C: MAIL FROM:<a@lab.test> ENVID=+00
C: MAIL FROM:<a@lab.test> ENVID=
C: MAIL FROM:<a@lab.test> ENVID=a=b+2B ENVID=c
C: MAIL FROM:<a@lab.test> RET
C: MAIL FROM:<a@lab.test> AUTH=<x> AUTH=<y>
C: MAIL FROM:<a@lab.test> AUTH=<z>
C: RSET
C: MAIL FROM:<a@lab.test> RET=hdrs ENVID=a=b+2B AUTH=<x>
C: QUIT
";

/// DSN parameters of RCPT, valid and not.
const DSN_RCPT: &str = "
C: EHLO c
C: MAIL FROM:<a@lab.test> RET=FULL ENVID=x
C: RCPT TO:<bob@lab.test> NOTIFY=SUCCESS,,DELAY
C: RCPT TO:<bob@lab.test> NOTIFY=never
C: RCPT TO:<bob@lab.test> NOTIFY=NEVER,DELAY
C: RCPT TO:<bob@lab.test> NOTIFY=SUCCESS NOTIFY=DELAY
C: RCPT TO:<bob@lab.test> NOTIFY=
C: RCPT TO:<bob@lab.test> ORCPT=;x
C: RCPT TO:<bob@lab.test> ORCPT=rfc822;
C: RCPT TO:<bob@lab.test> ORCPT=utf-8;a\\x{E9}@b
C: RCPT TO:<bob@lab.test> ORCPT=utf-8;a\\x{ZZ}@b
C: RCPT TO:<bob@lab.test> ORCPT=UTF-8;a\\x{110000}@b
C: RCPT TO:<bob@lab.test> ORCPT=rfc822;a+2
C: RCPT TO:<bob@lab.test> ORCPT=x-type;a=b
C: RCPT TO:<bob@lab.test> ORCPT=rfc822;a ORCPT=rfc822;b
C: RCPT TO:<bob@lab.test> ORCPT
C: QUIT
";

/// UTF-8 in addresses, with SMTPUTF8 and without, and lines that are not UTF-8.
const SMTPUTF8: &str = "
C: EHLO c
C: VRFY
C: VRFY bob SMTPUTF8
C: VRFY bob@exämple.com
C: VRFY bob@exämple.com SMTPUTF8
C: MAIL FROM:<a@exämple.com>
C: MAIL FROM:<jösé@lab.test>
C: RCPT TO:<b@exämple.com>
C: RCPT TO:<ü@lab.test>
C: RSET
C: MAIL FROM:<a@exämple.com> SMTPUTF8
C: RCPT TO:<b@läb.test>
C: RCPT TO:<bob@lab.test>
C: RSET
C: MAIL FROM:<a@exämple.com> SMTPUTF8 FOO=1
C: MAIL FROM:<a@exämple.com>
R: NOOP \\xff\\r\\n
R: MAIL FROM:<a\\xe9@lab.test>\\r\\n
C: QUIT
";

const REQUIRETLS: &str = "
C: MAIL FROM:<a@lab.test> REQUIRETLS
C: RCPT TO:<bob@lab.test>
C: QUIT
";

const STARTTLS_HONEST: &str = "
C: EHLO c
C: STARTTLS now
Q: STARTTLS|NOOP
TLS
C: NOOP
C: STARTTLS
C: MAIL FROM:<a@lab.test>
C: RCPT TO:<bob@lab.test>
C: RCPT TO:<x@example.com>
C: EHLO c
C: QUIT
";

const STARTTLS_REFUSED: &str = "
C: EHLO c
C: STARTTLS now
C: STARTTLS
C: STARTTLS
C: NOOP
C: QUIT
";

/// AUTH from a state where it is offered (the prefix gets there).
const AUTH: &str = "
C: AUTH
C: AUTH PLAIN x y
C: AUTH FOO
C: AUTH PLAIN
C: *
C: AUTH PLAIN
C: %%%
C: AUTH PLAIN
C: !!!!
C: AUTH PLAIN
C:
C: AUTH PLAIN =
C: AUTH LOGIN =
C: AUTH PLAIN bm9udWw=
C: AUTH PLAIN {BADPLAIN}
C: AUTH LOGIN
C: {USER64}
C: {BADPASS64}
C: AUTH LOGIN {USER64}
C: *
C: AUTH PLAIN {PLAIN}
C: AUTH LOGIN
C: MAIL FROM:<a@lab.test>
C: AUTH PLAIN
C: RCPT TO:<x@example.com>
C: QUIT
";

const AUTH_LOGIN: &str = "
C: AUTH LOGIN
C: {USER64}
C: {PASS64}
C: MAIL FROM:<a@lab.test>
C: RCPT TO:<x@example.com>
C: QUIT
";

const AUTH_REFUSED: &str = "
C: AUTH PLAIN {PLAIN}
C: AUTH LOGIN
C: QUIT
";

/// The scripts each profile runs: every one of them against the lab and against Postfix.
fn scripts(profile: Profile) -> Vec<(&'static str, String)> {
    let data = DATA.replace("{LONG}", &"L".repeat(3000));
    let mut scripts: Vec<(&'static str, String)> = vec![
        ("basics", BASICS.to_owned()),
        ("typed by hand", BY_HAND.replace("\\t", "\t")),
        ("long EHLO", format!("{}\nC: QUIT", long_ehlo())),
        ("goodbye to HTTP", GOODBYE_HTTP.to_owned()),
        ("goodbye to a header", GOODBYE_HEADER.to_owned()),
        ("goodbye to a digit", GOODBYE_DIGIT.to_owned()),
        ("error limit", ERROR_LIMIT.to_owned()),
        ("VRFY and ETRN", VRFY_ETRN.to_owned()),
        ("MAIL", MAIL.to_owned()),
        ("RCPT", RCPT.to_owned()),
        ("BDAT syntax", BDAT_SYNTAX.to_owned()),
        ("pipelined", PIPELINED.to_owned()),
        ("SIZE", SIZE.to_owned()),
        ("DSN of MAIL", DSN_MAIL.to_owned()),
        ("DSN of RCPT", DSN_RCPT.to_owned()),
        ("SMTPUTF8", SMTPUTF8.to_owned()),
        (
            "REQUIRETLS in cleartext",
            format!("C: EHLO c\n{REQUIRETLS}"),
        ),
    ];
    let policy = profile.policy();
    // Message text only where the session gets to DATA without the slow profile's drop.
    if profile != Profile::Slow {
        scripts.push(("DATA", data.clone()));
        scripts.push(("BDAT", BDAT.to_owned()));
        scripts.push(("pipelined message", PIPELINED_MESSAGE.to_owned()));
    }
    let inside_tls = if policy.implicit_tls {
        "C: EHLO c\n".to_owned()
    } else {
        "C: EHLO c\nC: STARTTLS\nTLS\nC: EHLO c\n".to_owned()
    };
    match profile {
        Profile::Submission
        | Profile::Mx
        | Profile::Legacy
        | Profile::Inject
        | Profile::Slow
        | Profile::Lmtp
        | Profile::Grade => {
            scripts.push(("STARTTLS", STARTTLS_HONEST.to_owned()));
            scripts.push(("REQUIRETLS inside TLS", format!("{inside_tls}{REQUIRETLS}")));
        }
        Profile::RefuseTls | Profile::Strip | Profile::Implicit => {
            scripts.push(("STARTTLS", STARTTLS_REFUSED.to_owned()));
        }
    }
    if profile == Profile::Implicit {
        scripts.push(("REQUIRETLS inside TLS", format!("{inside_tls}{REQUIRETLS}")));
    }
    if policy.auth_in_cleartext {
        scripts.push(("AUTH in cleartext", format!("C: EHLO c\n{AUTH}")));
        scripts.push((
            "AUTH LOGIN in cleartext",
            format!("C: EHLO c\n{AUTH_LOGIN}"),
        ));
        scripts.push((
            "AUTH without EHLO",
            "C: AUTH PLAIN\nC: *\nC: QUIT".to_owned(),
        ));
    } else {
        scripts.push((
            "AUTH refused in cleartext",
            format!("C: EHLO c\n{AUTH_REFUSED}"),
        ));
    }
    if policy.auth_under_tls && profile != Profile::Strip && profile != Profile::RefuseTls {
        scripts.push((
            "EHLO after AUTH",
            format!(
                "{inside_tls}C: AUTH PLAIN {{PLAIN}}\nC: EHLO again\nC: AUTH PLAIN {{PLAIN}}\n\
                 C: MAIL FROM:<a@lab.test>\nC: RCPT TO:<x@example.com>\nC: RSET\nC: VRFY x@example.com\nC: QUIT"
            ),
        ));
        scripts.push(("AUTH inside TLS", format!("{inside_tls}{AUTH}")));
        scripts.push(("AUTH LOGIN inside TLS", format!("{inside_tls}{AUTH_LOGIN}")));
        scripts.push((
            "a message inside TLS",
            format!(
                "{inside_tls}C: AUTH PLAIN {{PLAIN}}\nC: MAIL FROM:<a@lab.test>\nC: RCPT TO:<x@example.com>\n\
                 C: DATA\nD: Subject: parity\nD:\nD: hello\nE: .\nC: QUIT"
            ),
        ));
    }
    if !policy.implicit_tls && profile != Profile::Strip && profile != Profile::RefuseTls {
        scripts.push((
            "inside TLS without EHLO",
            "C: EHLO c\nC: STARTTLS\nTLS\nC: MAIL FROM:<a@lab.test>\nC: RCPT TO:<bob@lab.test>\nC: QUIT"
                .to_owned(),
        ));
    }
    if profile == Profile::Lmtp {
        // LMTP has no HELO: those scripts say nothing about it.
        scripts.retain(|(_, script)| !script.to_ascii_uppercase().contains("HELO "));
    }
    scripts
}

/// A script as the lmtp profile runs it: LHLO where SMTP says EHLO.
fn as_lmtp(script: &str) -> String {
    script
        .lines()
        .map(|line| match line.strip_prefix("C: EHLO") {
            Some(rest) => format!("C: LHLO{rest}"),
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The lmtp profile's transcript with what RFC 2033 changes translated back to SMTP: the
/// greeting's protocol word, LHLO, and the recipient each reply to the end of a message
/// names (a transcript line is `S: 250 2.0.0 <bob@lab.test> Ok: ...`).
fn from_lmtp(transcript: Vec<String>) -> Vec<String> {
    transcript
        .into_iter()
        .map(|line| {
            let line = line.replace("LHLO", "EHLO");
            if line.starts_with("S: 220 ") && line.ends_with(" LMTP") {
                return format!("{}ESMTP", line.trim_end_matches("LMTP"));
            }
            match line.strip_prefix("S: 250 2.0.0 <") {
                Some(rest) => match rest.split_once("> Ok: ") {
                    Some((_recipient, after)) => format!("S: 250 2.0.0 Ok: {after}"),
                    None => line,
                },
                None => line,
            }
        })
        .collect()
}

/// Starts a lab with `profiles`, SMTPUTF8 and REQUIRETLS as given.
async fn start_lab(
    postfix: &Postfix,
    profiles: Vec<Profile>,
    smtputf8: bool,
    requiretls: bool,
) -> Lab {
    let mut config = LabConfig::ephemeral(profiles);
    config.smtputf8 = smtputf8;
    config.requiretls = requiretls;
    config.host = postfix.get("TLS_SERVER_NAME").to_owned();
    config.log = Arc::new(|_| {});
    config.log_sessions = false;
    config.error_sleep = Duration::ZERO;
    config.slow.greeting = Duration::ZERO;
    config.slow.reply = Duration::ZERO;
    config
        .accounts
        .insert(postfix.get("SMTP_USER"), Secret::new(postfix.password()));
    Lab::start(config).await.expect("lab starts")
}

fn postfix_ca(postfix: &Postfix) -> CertificateDer<'static> {
    let pem = std::fs::read(postfix.get("CA_FILE")).expect("Postfix CA");
    rustls::pki_types::pem::PemObject::from_pem_slice(&pem).expect("CA PEM")
}

/// The two transcripts side by side around the lines that differ (three lines of context,
/// long lines cut).
fn describe(profile: Profile, name: &str, theirs: &[String], ours: &[String]) -> String {
    let cut = |line: &str| -> String { line.chars().take(72).collect() };
    let rows = theirs.len().max(ours.len());
    let differs: Vec<bool> = (0..rows).map(|i| theirs.get(i) != ours.get(i)).collect();
    let mut table = format!("{profile} / {name}:\n    {:<72} | lab\n", "postfix");
    let mut skipped = false;
    for index in 0..rows {
        let near = (index.saturating_sub(3)..=(index + 3).min(rows - 1)).any(|i| differs[i]);
        if !near {
            skipped = true;
            continue;
        }
        if skipped {
            table.push_str("    ...\n");
            skipped = false;
        }
        let left = cut(theirs.get(index).map_or("", String::as_str));
        let right = cut(ours.get(index).map_or("", String::as_str));
        let mark = if differs[index] { "!!" } else { "  " };
        table.push_str(&format!("{mark}  {left:<72} | {right}\n"));
    }
    table
}

/// Where the Postfix listener configured like `profile` is, and whether it is there at all
/// (an env file written by an older script lacks the newer listeners).
fn postfix_addr(profile: Profile, postfix: &Postfix) -> Option<SocketAddr> {
    let (key, _) = postfix_listener(profile);
    if postfix.get(key).is_empty() {
        let reason = format!(
            "{key} is missing from the Postfix env file: restart it with this checkout's scripts/postfix-env.sh"
        );
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "{reason}");
        eprintln!("skipping the {profile} profile: {reason}");
        return None;
    }
    Some(
        format!("{}:{}", postfix.get("SMTP_HOST"), postfix.port(key))
            .parse()
            .expect("address"),
    )
}

/// Whether the Postfix listener of `profile` advertises SMTPUTF8 (`smtputf8_enable`, which a
/// listener may set for itself in master.cf).
async fn postfix_has_smtputf8(profile: Profile, postfix: &Postfix, addr: SocketAddr) -> bool {
    let (_, implicit) = postfix_listener(profile);
    let credentials = Credentials {
        user: String::new(),
        password: String::new(),
    };
    transcript(
        addr,
        implicit,
        postfix_ca(postfix),
        "C: EHLO c\nC: QUIT",
        &credentials,
    )
    .await
    .iter()
    .any(|line| line == "S: 250-SMTPUTF8" || line == "S: 250 SMTPUTF8")
}

/// Whether this Postfix takes REQUIRETLS (`requiretls_enable`, from Postfix 3.11 on; an
/// older one does not know the parameter).
fn postfix_has_requiretls(postfix: &Postfix) -> bool {
    std::process::Command::new("postconf")
        .args([
            "-c",
            postfix.get("POSTFIX_CONFIG_DIR"),
            "-h",
            "requiretls_enable",
        ])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "yes")
}

/// Runs every script of `profile` against both servers; returns the differences, described.
async fn compare(
    profile: Profile,
    lab: &Lab,
    postfix: &Postfix,
    postfix_addr: SocketAddr,
) -> Vec<String> {
    let (_, implicit) = postfix_listener(profile);
    let lab_addr = lab.addr(profile).expect("profile runs");
    let credentials = Credentials {
        user: postfix.get("SMTP_USER").to_owned(),
        password: postfix.password(),
    };
    let lmtp = profile.policy().lmtp;
    let mut differences = Vec::new();
    for (name, script) in scripts(profile) {
        let theirs = transcript(
            postfix_addr,
            implicit,
            postfix_ca(postfix),
            &script,
            &credentials,
        )
        .await;
        let ours = if lmtp {
            let ours = transcript(
                lab_addr,
                implicit,
                lab.ca_der().clone(),
                &as_lmtp(&script),
                &credentials,
            )
            .await;
            from_lmtp(ours)
        } else {
            transcript(
                lab_addr,
                implicit,
                lab.ca_der().clone(),
                &script,
                &credentials,
            )
            .await
        };
        if theirs != ours {
            differences.push(describe(profile, name, &theirs, &ours));
        }
    }
    differences
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_profile_answers_as_the_postfix_configured_like_it() {
    let Some(postfix) = postfix() else {
        return;
    };
    let requiretls = postfix_has_requiretls(postfix);
    // One lab for the profiles whose Postfix listener has SMTPUTF8, one for the others.
    let mut groups: [(bool, Vec<(Profile, SocketAddr)>); 2] =
        [(true, Vec::new()), (false, Vec::new())];
    for profile in Profile::ALL {
        // The grade profile changes from one session to the next on purpose (one trial
        // each); tests/lab_grade.rs holds it against a real Postfix sender instead.
        if profile == Profile::Grade {
            continue;
        }
        let Some(addr) = postfix_addr(profile, postfix) else {
            continue;
        };
        let smtputf8 = postfix_has_smtputf8(profile, postfix, addr).await;
        groups[usize::from(!smtputf8)].1.push((profile, addr));
    }
    let mut differences = Vec::new();
    for (smtputf8, profiles) in groups {
        if profiles.is_empty() {
            continue;
        }
        let lab = start_lab(
            postfix,
            profiles.iter().map(|(p, _)| *p).collect(),
            smtputf8,
            requiretls,
        )
        .await;
        for (profile, addr) in profiles {
            differences.extend(compare(profile, &lab, postfix, addr).await);
        }
        lab.shutdown().await;
    }
    assert!(
        differences.is_empty(),
        "the lab and Postfix answer differently:\n{}",
        differences.join("\n")
    );
}
