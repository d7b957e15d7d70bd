//! The client core driven byte by byte, with no socket and no clock: each server byte stream
//! is also fed cut at every position, and the outcome must not depend on where it was cut.

#![allow(clippy::unwrap_used, clippy::panic)] // test assertions

use std::time::{Duration, Instant, SystemTime};

use super::*;
use crate::tls::TrustSettings;

const PASSWORD: &str = "correct horse battery staple";
const USER: &str = "alice@lab.test";

fn settings(unasked: UnaskedReplies, policy: GuardPolicy) -> ClientSettings {
    let (tls, verdict) = crate::tls::client_config(&TrustSettings {
        extra_roots: Vec::new(),
        continue_unverified: false,
        client_identity: None,
        roots: Default::default(),
    })
    .unwrap();
    ClientSettings {
        target: "127.0.0.1:25".to_owned(),
        tls_mode: TlsMode::StartTls,
        server_name: "localhost".to_owned(),
        tls,
        verdict,
        policy,
        timeout: Duration::from_secs(30),
        limits: ReplyLimits::default(),
        unasked,
        known_secrets: credential_forms(Some(USER), &Secret::new(PASSWORD.to_owned())),
        sasl: Default::default(),
        client_identity: None,
        key_log: None,
        anchors: String::new(),
    }
}

fn credentials() -> Credentials {
    Credentials {
        user: USER.to_owned(),
        secret: Secret::new(PASSWORD.to_owned()),
    }
}

/// `--allow-cleartext-auth`.
const CLEARTEXT_ALLOWED: GuardPolicy = GuardPolicy {
    allow_cleartext_auth: true,
    allow_unverified_auth: false,
};

/// A client connected, greeted and past `EHLO` in cleartext.
struct Client {
    core: ClientSession,
    now: Instant,
    wire: Vec<u8>,
    events: Vec<EventKind>,
}

impl Client {
    fn new(settings: ClientSettings) -> Self {
        let now = Instant::now();
        let mut core = ClientSession::new(settings, now, SystemTime::UNIX_EPOCH).unwrap();
        let greeting = core.connected("peer".into(), "local".into(), now);
        core.received(b"220 test ESMTP\r\n", now);
        assert_eq!(core.take_completion(greeting).unwrap().code.value(), 220);
        let mut client = Self {
            core,
            now,
            wire: Vec::new(),
            events: Vec::new(),
        };
        client.pump();
        client
    }

    fn strict() -> Self {
        Self::new(settings(UnaskedReplies::Fatal, GuardPolicy::default()))
    }

    fn interactive() -> Self {
        Self::new(settings(UnaskedReplies::Show, GuardPolicy::default()))
    }

    fn after_ehlo(mut self, reply: &[u8]) -> Self {
        let step = self.line("EHLO me").unwrap();
        self.feed(reply);
        assert_eq!(self.core.take_completion(step).unwrap().code.value(), 250);
        self.pump();
        self
    }

    fn line(&mut self, line: &str) -> Result<StepId, SessionError> {
        let sent = self.core.send_line(line, OneTimeOverride::None, self.now);
        self.pump();
        match sent? {
            Sent::Step(step) => Ok(step),
            Sent::Steps(steps) => Ok(steps[0]),
            Sent::Queued => Ok(0),
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.core.received(bytes, self.now);
        self.pump();
    }

    fn feed_all(&mut self, parts: &[&[u8]]) {
        for part in parts {
            self.feed(part);
        }
    }

    fn pump(&mut self) {
        while let Some(bytes) = self.core.poll_transmit() {
            self.wire.extend_from_slice(&bytes);
        }
        while let Some(event) = self.core.poll_event() {
            self.events.push(event.kind);
        }
    }

    fn wire_text(&self) -> String {
        String::from_utf8_lossy(&self.wire).into_owned()
    }

    fn transcript(&self) -> String {
        let events: Vec<Event> = self
            .events
            .iter()
            .cloned()
            .map(|kind| Event {
                time: SystemTime::UNIX_EPOCH,
                elapsed: Duration::ZERO,
                kind,
            })
            .collect();
        crate::transcript::render_plain(&events)
    }
}

/// Every way of cutting `bytes` in two (and not cutting it at all).
fn cuts(bytes: &[u8]) -> impl Iterator<Item = Vec<&[u8]>> {
    (0..=bytes.len()).map(move |at| {
        let (a, b) = bytes.split_at(at);
        [a, b].into_iter().filter(|part| !part.is_empty()).collect()
    })
}

/// Runs `run` once per cut of `bytes` and checks every outcome equals the uncut one.
fn same_whatever_the_cut(bytes: &[u8], run: impl Fn(&[&[u8]]) -> String) -> String {
    let whole = run(&[bytes]);
    for parts in cuts(bytes) {
        assert_eq!(run(&parts), whole, "cut as {parts:?}");
    }
    whole
}

// -------------------------------------------------------------------------------------------
// Replies in step
// -------------------------------------------------------------------------------------------

#[test]
fn a_second_reply_to_one_command_ends_a_strict_session() {
    let reply = b"250 first\r\n250 second, never asked for\r\n";
    let result = same_whatever_the_cut(reply, |parts| {
        let mut client = Client::strict();
        let step = client.line("NOOP").unwrap();
        client.feed_all(parts);
        // Whatever arrived with the reply, the next request looks at it before sending.
        let next = client.line("NOOP");
        let completed = client.core.take_completion(step).map(|r| r.summary());
        format!(
            "{:?} {:?} {}",
            completed,
            next.err().map(|e| e.to_string()),
            client.wire_text()
        )
    });
    assert!(result.contains("out of step"), "{result}");
    assert!(result.contains("second, never asked for"), "{result}");
    assert_eq!(
        result.matches("NOOP").count(),
        1,
        "nothing sent after: {result}"
    );
}

#[test]
fn an_interactive_session_shows_the_extra_reply_as_unasked_and_keeps_the_pairing() {
    let mut client = Client::interactive();
    let first = client.line("NOOP").unwrap();
    client.feed(b"250 first\r\n250 second\r\n");
    assert_eq!(
        client.core.take_completion(first).unwrap().summary(),
        "250 first"
    );
    assert!(client.core.is_out_of_step());
    let unasked = client.core.take_completion(UNASKED_STEP).unwrap();
    assert_eq!(unasked.summary(), "250 second");
    let next = client.line("RSET").unwrap();
    client.feed(b"250 reset\r\n");
    assert_eq!(
        client.core.take_completion(next).unwrap().summary(),
        "250 reset"
    );
    assert!(
        client.transcript().contains("S? 250 second"),
        "{}",
        client.transcript()
    );
}

#[test]
fn bytes_while_nothing_is_outstanding_are_unasked_even_half_a_reply() {
    let mut client = Client::strict();
    client.feed(b"250 hel");
    let error = client.line("NOOP").unwrap_err();
    assert!(matches!(error, SessionError::OutOfStep { .. }), "{error}");
    assert!(!client.wire_text().contains("NOOP"));
    // The first fatal error stays, whatever is asked later.
    let again = client.line("QUIT").unwrap_err();
    assert_eq!(again.to_string(), error.to_string());
}

#[test]
fn a_reply_that_began_before_a_command_is_not_its_reply() {
    let mut client = Client::interactive();
    client.feed(b"250 hel");
    let step = client.line("NOOP").unwrap();
    client.feed(b"lo\r\n250 the real one\r\n");
    assert_eq!(
        client.core.take_completion(step).unwrap().summary(),
        "250 the real one"
    );
    assert_eq!(
        client.core.take_completion(UNASKED_STEP).unwrap().summary(),
        "250 hello"
    );
}

#[test]
fn a_reply_during_the_message_body_is_not_the_reply_to_the_message() {
    let stream = b"354 go ahead\r\n250 early\r\n";
    let result = same_whatever_the_cut(stream, |parts| {
        let mut client = Client::strict();
        let data = client.line("DATA").unwrap();
        client.feed_all(parts);
        let line = client.line("Subject: hi");
        let dot = client.line(".");
        format!(
            "{:?} {:?} {:?} {:?}",
            client.core.take_completion(data).map(|r| r.summary()),
            line.err().map(|e| e.to_string()),
            dot.err().map(|e| e.to_string()),
            client.wire_text()
        )
    });
    assert!(result.contains("out of step"), "{result}");
    assert!(result.contains("250 early"), "{result}");
    assert!(
        !result.contains("\\r\\n.\\r\\n"),
        "no final dot sent: {result}"
    );
}

#[test]
fn a_421_at_any_time_is_a_closing_notice_not_a_reply_out_of_step() {
    let mut client = Client::strict();
    client.feed(b"421 4.4.2 shutting down\r\n");
    let error = client.core.failure().unwrap().clone();
    assert!(
        matches!(error, SessionError::ServiceClosing { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("421 4.4.2 shutting down"));

    let mut client = Client::interactive();
    client.feed(b"421 4.4.2 shutting down\r\n");
    assert!(client.core.failure().is_none());
    assert!(!client.core.is_out_of_step());
    assert_eq!(
        client
            .core
            .take_completion(UNASKED_STEP)
            .unwrap()
            .code
            .value(),
        421
    );
    assert!(
        !client.transcript().contains("S?"),
        "{}",
        client.transcript()
    );
}

#[test]
fn a_flood_of_unasked_replies_ends_an_interactive_session() {
    let mut client = Client::interactive();
    let flood = b"250 again\r\n".repeat(MAX_UNASKED_REPLIES + 1);
    client.feed(&flood);
    assert!(matches!(
        client.core.failure(),
        Some(SessionError::UnaskedFlood { .. })
    ));
}

// -------------------------------------------------------------------------------------------
// Credentials
// -------------------------------------------------------------------------------------------

#[test]
fn auth_in_cleartext_is_refused_and_nothing_crosses() {
    for line in [
        "AUTH PLAIN AGFsaWNlAHNlY3JldA==",
        "auth login",
        "AUTH\tXOAUTH2 abc",
        "AUTH=PLAIN x",
    ] {
        let mut client = Client::strict().after_ehlo(b"250-x\r\n250 AUTH PLAIN LOGIN\r\n");
        let before = client.wire.len();
        let error = client.line(line).unwrap_err();
        assert!(
            matches!(error, SessionError::Guard(Refusal::Cleartext)),
            "{line}: {error}"
        );
        assert_eq!(client.wire.len(), before, "{line} crossed");
        assert!(client.core.failure().is_none(), "a refusal is not fatal");
    }
}

#[test]
fn a_line_holding_the_configured_password_in_any_form_is_a_credential_from_the_start() {
    let forms = credential_forms(Some(USER), &Secret::new(PASSWORD.to_owned()));
    assert_eq!(forms.len(), 6);
    for form in &forms {
        for line in [
            form.expose().to_owned(),
            format!("MAIL FROM:<a@b> {}", form.expose()),
            format!("XTEST {}", form.expose()),
        ] {
            let mut client = Client::strict();
            let before = client.wire.len();
            let error = client.line(&line).unwrap_err();
            assert!(matches!(error, SessionError::Guard(_)), "{error}");
            assert_eq!(client.wire.len(), before);
            assert!(!client.transcript().contains(form.expose()));
        }
    }
    // Inside a message too.
    let mut client = Client::strict();
    let data = client.line("DATA").unwrap();
    client.feed(b"354 go\r\n");
    client.core.take_completion(data).unwrap();
    let error = client
        .line(&format!("my password is {PASSWORD}"))
        .unwrap_err();
    assert!(matches!(error, SessionError::Guard(_)), "{error}");
    assert!(!client.wire_text().contains(PASSWORD));
}

#[test]
fn a_configured_secret_sent_by_override_is_hidden_in_the_transcript() {
    let policy = CLEARTEXT_ALLOWED;
    let mut client = Client::new(settings(UnaskedReplies::Fatal, policy));
    let step = client.line(&format!("XPASS {PASSWORD}")).unwrap();
    assert!(client.wire_text().contains(PASSWORD));
    client.feed(format!("250 you said {PASSWORD}\r\n").as_bytes());
    client.core.take_completion(step).unwrap();
    let transcript = client.transcript();
    assert!(!transcript.contains(PASSWORD), "{transcript}");
    assert!(transcript.contains("<hidden>"), "{transcript}");
}

#[test]
fn a_334_only_opens_a_challenge_right_after_auth() {
    let mut client = Client::strict();
    let step = client.line("MAIL FROM:<a@b>").unwrap();
    client.feed(b"334 UGFzc3dvcmQ6\r\n");
    client.core.take_completion(step).unwrap();
    assert_eq!(client.core.phase(), Phase::Command);
    assert!(client.transcript().contains("was not AUTH"));
}

#[test]
fn auth_with_stored_credentials_needs_the_mechanism_advertised() {
    let policy = CLEARTEXT_ALLOWED;
    let mut client = Client::new(settings(UnaskedReplies::Fatal, policy))
        .after_ehlo(b"250-x\r\n250 AUTH PLAIN LOGIN\r\n");
    let before = client.wire.len();
    let error = client
        .core
        .authenticate(
            Mechanism::XOAuth2,
            credentials(),
            OneTimeOverride::None,
            client.now,
        )
        .unwrap_err();
    assert!(
        matches!(error, SessionError::NotAdvertised { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("AUTH PLAIN LOGIN"), "{error}");
    client.pump();
    assert_eq!(client.wire.len(), before);
    assert!(
        !client.transcript().contains("cleartext by"),
        "no override announced for what was not sent: {}",
        client.transcript()
    );
}

#[test]
fn a_235_without_any_credential_is_flagged() {
    let policy = CLEARTEXT_ALLOWED;
    let mut client = Client::new(settings(UnaskedReplies::Fatal, policy))
        .after_ehlo(b"250-x\r\n250 AUTH LOGIN\r\n");
    let step = client
        .core
        .authenticate(
            Mechanism::Login,
            credentials(),
            OneTimeOverride::None,
            client.now,
        )
        .unwrap();
    client.feed(b"235 2.7.0 welcome, whoever you are\r\n");
    client.core.take_completion(step).unwrap();
    assert!(
        client
            .transcript()
            .contains("before any credential was sent")
    );
}

#[test]
fn a_login_exchange_hides_every_answer_and_cancels_a_third_challenge() {
    let policy = CLEARTEXT_ALLOWED;
    let stream = b"334 VXNlcm5hbWU6\r\n";
    let mut client = Client::new(settings(UnaskedReplies::Fatal, policy))
        .after_ehlo(b"250-x\r\n250 AUTH LOGIN\r\n");
    let step = client
        .core
        .authenticate(
            Mechanism::Login,
            credentials(),
            OneTimeOverride::None,
            client.now,
        )
        .unwrap();
    client.feed(stream);
    client.feed(b"334 UGFzc3dvcmQ6\r\n");
    client.feed(b"334 UGFzc3dvcmQ6\r\n");
    assert!(
        client.wire_text().ends_with("*\r\n"),
        "{}",
        client.wire_text()
    );
    client.feed(b"501 cancelled\r\n");
    assert!(client.core.take_completion(step).is_none());
    assert!(matches!(client.core.failure(), Some(SessionError::Sasl(_))));
    assert!(!client.transcript().contains(PASSWORD));
}

// -------------------------------------------------------------------------------------------
// STARTTLS and TLS
// -------------------------------------------------------------------------------------------

#[test]
fn bytes_behind_the_220_to_starttls_are_injection_however_they_arrive() {
    let stream = b"220 2.0.0 Ready to start TLS\r\n250-forged\r\n250 AUTH PLAIN\r\n";
    let result = same_whatever_the_cut(stream, |parts| {
        let mut client = Client::strict();
        let step = client.line("STARTTLS").unwrap();
        client.feed_all(parts);
        format!(
            "{:?} {:?}",
            client.core.take_completion(step).map(|r| r.summary()),
            client
                .core
                .failure()
                .map(|e| matches!(e, SessionError::Injection { .. }))
        )
    });
    assert_eq!(result, "None Some(true)");
}

#[test]
fn plain_smtp_on_an_implicit_tls_port_is_named_as_such() {
    let mut settings = settings(UnaskedReplies::Fatal, GuardPolicy::default());
    settings.tls_mode = TlsMode::Implicit;
    let now = Instant::now();
    let mut core = ClientSession::new(settings, now, SystemTime::UNIX_EPOCH).unwrap();
    core.connected("p".into(), "l".into(), now);
    assert!(core.poll_transmit().is_some(), "the ClientHello goes first");
    core.received(b"220 plain.example ESMTP\r\n", now);
    let error = core.failure().unwrap().to_string();
    assert!(error.contains("--tls starttls"), "{error}");
    assert!(!error.contains("STARTTLS"), "no STARTTLS was sent: {error}");
}

#[test]
fn starttls_is_never_sent_twice_and_refused_starttls_stays_cleartext() {
    let mut client = Client::strict();
    let step = client.line("STARTTLS").unwrap();
    client.feed(b"454 4.7.0 TLS not available\r\n");
    assert_eq!(client.core.take_completion(step).unwrap().code.value(), 454);
    assert_eq!(client.core.security(), Security::Cleartext);
    assert!(client.transcript().contains("credentials remain blocked"));
}

#[test]
fn a_silent_server_times_out_with_the_implicit_tls_hint() {
    let now = Instant::now();
    let mut core = ClientSession::new(
        settings(UnaskedReplies::Fatal, GuardPolicy::default()),
        now,
        SystemTime::UNIX_EPOCH,
    )
    .unwrap();
    core.connected("p".into(), "l".into(), now);
    let deadline = core.next_deadline().unwrap();
    core.handle_timeout(deadline - Duration::from_millis(1));
    assert!(core.failure().is_none(), "not before the deadline");
    core.handle_timeout(deadline);
    let error = core.failure().unwrap().to_string();
    assert!(error.contains("the greeting"), "{error}");
    assert!(error.contains("--tls implicit"), "{error}");
}

#[test]
fn a_trickling_server_does_not_move_the_deadline() {
    let mut client = Client::strict();
    let step = client.line("NOOP").unwrap();
    let deadline = client.core.next_deadline().unwrap();
    client.now += Duration::from_secs(20);
    client.feed(b"25");
    assert_eq!(client.core.next_deadline(), Some(deadline));
    client.core.handle_timeout(deadline);
    let error = client.core.failure().unwrap().to_string();
    assert!(
        error.contains("2 byte(s) of an unfinished reply"),
        "{error}"
    );
    assert!(client.core.take_completion(step).is_none());
}

#[test]
fn the_server_closing_mid_reply_is_said() {
    let mut client = Client::strict();
    client.line("NOOP").unwrap();
    client.feed(b"250-partial\r\n");
    client.core.eof(client.now);
    assert!(
        client
            .core
            .failure()
            .unwrap()
            .to_string()
            .contains("in the middle of a reply")
    );
}

#[test]
fn quit_answered_ends_the_session_quietly() {
    let mut client = Client::strict();
    let step = client.line("QUIT").unwrap();
    client.feed(b"221 bye\r\n");
    client.core.take_completion(step).unwrap();
    client.core.eof(client.now);
    assert!(client.core.failure().is_none());
    assert!(matches!(client.line("NOOP"), Err(SessionError::Ended)));
}

#[test]
fn a_334_to_anything_but_auth_opens_nothing_however_it_is_cut() {
    let stream = b"334 UGFzc3dvcmQ6\r\n";
    let result = same_whatever_the_cut(stream, |parts| {
        let mut client = Client::strict();
        let step = client.line("MAIL FROM:<a@b>").unwrap();
        client.feed_all(parts);
        let completed = client.core.take_completion(step).map(|r| r.summary());
        let next = client.line(PASSWORD).map_err(|e| e.to_string());
        format!("{completed:?} {:?} {next:?}", client.core.phase())
    });
    assert!(
        result.starts_with("Some(\"334 UGFzc3dvcmQ6\") Command"),
        "{result}"
    );
    // The next line is a command, and a password as a command is a credential: refused.
    assert!(result.contains("credential guard"), "{result}");
}

#[test]
fn challenges_sent_before_their_answers_could_be_are_out_of_step_however_cut() {
    let policy = CLEARTEXT_ALLOWED;
    // A server that sends its whole side of a LOGIN exchange at once: whichever way the
    // network cuts it, at least the final 235 arrives before the answer it would answer,
    // and the exchange ends out of step instead of as a login.
    let stream = b"334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 2.7.0 ok\r\n";
    for parts in cuts(stream) {
        let mut client = Client::new(settings(UnaskedReplies::Fatal, policy))
            .after_ehlo(b"250-x\r\n250 AUTH LOGIN\r\n");
        let step = client
            .core
            .authenticate(
                Mechanism::Login,
                credentials(),
                OneTimeOverride::None,
                client.now,
            )
            .unwrap();
        client.pump();
        client.feed_all(&parts);
        assert!(client.core.take_completion(step).is_none(), "{parts:?}");
        assert!(
            matches!(client.core.failure(), Some(SessionError::OutOfStep { .. })),
            "{parts:?}: {:?}",
            client.core.failure()
        );
        assert!(client.core.authenticated_as().is_none());
    }
}

// -------------------------------------------------------------------------------------------
// Pipelining
// -------------------------------------------------------------------------------------------

const PIPELINING: &[u8] = b"250-x\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n";

#[test]
fn a_pipelined_group_goes_in_one_write_and_each_reply_meets_its_own_command() {
    let replies = b"250 2.1.0 sender ok\r\n550 5.1.1 no such user\r\n250 2.1.5 ok\r\n354 go\r\n";
    let result = same_whatever_the_cut(replies, |parts| {
        let mut client = Client::strict().after_ehlo(PIPELINING);
        let sent_before = client.wire.len();
        let steps = client
            .core
            .pipeline(
                &[
                    "MAIL FROM:<a@b>",
                    "RCPT TO:<nobody@b>",
                    "RCPT TO:<c@b>",
                    "DATA",
                ],
                OneTimeOverride::None,
                false,
                client.now,
            )
            .unwrap();
        client.pump();
        let group = String::from_utf8_lossy(&client.wire[sent_before..]).into_owned();
        client.feed_all(parts);
        let paired: Vec<String> = steps
            .iter()
            .map(|&step| client.core.take_completion(step).unwrap().summary())
            .collect();
        format!("{group:?} {paired:?} {:?}", client.core.phase())
    });
    assert_eq!(
        result,
        "\"MAIL FROM:<a@b>\\r\\nRCPT TO:<nobody@b>\\r\\nRCPT TO:<c@b>\\r\\nDATA\\r\\n\" \
         [\"250 2.1.0 sender ok\", \"550 5.1.1 no such user\", \"250 2.1.5 ok\", \"354 go\"] Message"
    );
}

#[test]
fn a_group_breaking_the_rules_of_pipelining_is_not_sent_at_all() {
    let cases: [(&[&str], bool, &str); 6] = [
        (
            &["DATA", "RCPT TO:<a@b>"],
            false,
            "DATA may only be the last",
        ),
        (
            &["EHLO x", "MAIL FROM:<a@b>"],
            false,
            "EHLO may only be the last",
        ),
        (
            &["AUTH PLAIN AGFsaWNlAHNlY3JldA==", "MAIL FROM:<a@b>"],
            false,
            "AUTH may only",
        ),
        (&["STARTTLS", "EHLO x"], false, "STARTTLS may only"),
        (&["BDAT 4 LAST", "QUIT"], false, "BDAT carries its chunk"),
        (
            &["MAIL FROM:<a@b>", "RCPT TO:<c@b>"],
            true,
            "did not advertise PIPELINING",
        ),
    ];
    for (lines, without_pipelining, says) in cases {
        let ehlo: &[u8] = if without_pipelining {
            b"250-x\r\n250 SIZE 100\r\n"
        } else {
            PIPELINING
        };
        let mut client = Client::strict().after_ehlo(ehlo);
        let before = client.wire.len();
        let error = client
            .core
            .pipeline(lines, OneTimeOverride::None, false, client.now)
            .unwrap_err();
        assert!(error.to_string().contains(says), "{lines:?}: {error}");
        client.pump();
        assert_eq!(client.wire.len(), before, "{lines:?} sent something");
        assert!(client.core.failure().is_none());
    }
}

#[test]
fn a_group_with_a_credential_meets_the_guard_before_anything_is_sent() {
    let mut client = Client::strict().after_ehlo(PIPELINING);
    let before = client.wire.len();
    let error = client
        .core
        .pipeline(
            &["RSET", &format!("XPASS {PASSWORD}")],
            OneTimeOverride::None,
            false,
            client.now,
        )
        .unwrap_err();
    assert!(matches!(error, SessionError::Guard(_)), "{error}");
    client.pump();
    assert_eq!(client.wire.len(), before, "not even RSET went");
}

#[test]
fn a_reply_beyond_the_group_is_out_of_step() {
    let mut client = Client::strict().after_ehlo(PIPELINING);
    let steps = client
        .core
        .pipeline(&["RSET", "NOOP"], OneTimeOverride::None, false, client.now)
        .unwrap();
    client.pump();
    client.feed(b"250 reset\r\n250 noop\r\n250 one too many\r\n");
    assert_eq!(
        client.core.take_completion(steps[0]).unwrap().summary(),
        "250 reset"
    );
    assert_eq!(
        client.core.take_completion(steps[1]).unwrap().summary(),
        "250 noop"
    );
    assert!(matches!(
        client.core.failure(),
        Some(SessionError::OutOfStep { .. })
    ));
}

#[test]
fn each_reply_of_a_group_gets_its_own_deadline() {
    let mut client = Client::strict().after_ehlo(PIPELINING);
    client
        .core
        .pipeline(&["RSET", "NOOP"], OneTimeOverride::None, false, client.now)
        .unwrap();
    client.pump();
    let first = client.core.next_deadline().unwrap();
    client.now += Duration::from_secs(20);
    client.feed(b"250 reset\r\n");
    let second = client.core.next_deadline().unwrap();
    assert_eq!(second, client.now + Duration::from_secs(30));
    assert!(second > first);
}

// -------------------------------------------------------------------------------------------
// BDAT, message files, LMTP
// -------------------------------------------------------------------------------------------

#[test]
fn bdat_sends_the_chunk_exactly_and_needs_chunking() {
    let mut client = Client::strict().after_ehlo(b"250-x\r\n250 SIZE 100\r\n");
    let error = client.core.bdat(b"x", true, false, client.now).unwrap_err();
    assert!(
        error.to_string().contains("did not advertise CHUNKING"),
        "{error}"
    );
    let mut client = Client::strict().after_ehlo(b"250-x\r\n250 CHUNKING\r\n");
    let before = client.wire.len();
    let chunk = b"Subject: raw\r\n\r\n.not stuffed\r\n";
    let Sent::Step(step) = client.core.bdat(chunk, true, false, client.now).unwrap() else {
        panic!("one reply to a chunk in SMTP");
    };
    client.pump();
    let mut expected = format!("BDAT {} LAST\r\n", chunk.len()).into_bytes();
    expected.extend_from_slice(chunk);
    assert_eq!(&client.wire[before..], &expected[..]);
    client.feed(b"250 2.0.0 queued\r\n");
    assert_eq!(client.core.take_completion(step).unwrap().code.value(), 250);
    let transcript = client.transcript();
    assert!(transcript.contains("C: BDAT 30 LAST"), "{transcript}");
    assert!(!transcript.contains("not stuffed"), "{transcript}");
}

#[test]
fn a_chunk_holding_the_password_meets_the_guard() {
    let mut client = Client::strict().after_ehlo(b"250-x\r\n250 CHUNKING\r\n");
    let before = client.wire.len();
    let chunk = format!("my password: {PASSWORD}\r\n");
    let error = client
        .core
        .bdat(chunk.as_bytes(), true, false, client.now)
        .unwrap_err();
    assert!(matches!(error, SessionError::Guard(_)), "{error}");
    client.pump();
    assert_eq!(client.wire.len(), before);
}

#[test]
fn message_data_is_stuffed_quietly_and_refuses_line_breaks_and_secrets() {
    let mut client = Client::strict();
    let data = client.line("DATA").unwrap();
    client.feed(b"354 go\r\n");
    client.core.take_completion(data).unwrap();
    let events_before = client.events.len();
    let before = client.wire.len();
    client
        .core
        .message_data(b".starts with a dot", client.now)
        .unwrap();
    client.core.message_data(b"", client.now).unwrap();
    client.pump();
    assert_eq!(&client.wire[before..], b"..starts with a dot\r\n\r\n");
    assert_eq!(client.events.len(), events_before, "no event per line");
    assert!(matches!(
        client.core.message_data(b"bare\rCR", client.now),
        Err(SessionError::Line(LineError::LineBreak))
    ));
    assert!(matches!(
        client.core.message_data(PASSWORD.as_bytes(), client.now),
        Err(SessionError::Guard(_))
    ));
}

#[test]
fn lmtp_answers_the_final_dot_once_per_accepted_recipient() {
    let replies = b"250 2.1.5 <a@b> delivered\r\n452 4.2.2 <c@b> mailbox full\r\n";
    let result = same_whatever_the_cut(replies, |parts| {
        let mut client = Client::strict();
        let lhlo = client.line("LHLO me").unwrap();
        client.feed(b"250-lmtp.example\r\n250 PIPELINING\r\n");
        client.core.take_completion(lhlo).unwrap();
        for (line, reply) in [
            ("MAIL FROM:<x@y>", &b"250 ok\r\n"[..]),
            ("RCPT TO:<a@b>", b"250 ok\r\n"),
            ("RCPT TO:<nobody@b>", b"550 no such user\r\n"),
            ("RCPT TO:<c@b>", b"250 ok\r\n"),
            ("DATA", b"354 go\r\n"),
        ] {
            let step = client.line(line).unwrap();
            client.feed(reply);
            client.core.take_completion(step).unwrap();
        }
        let Ok(Sent::Steps(steps)) = client
            .core
            .send_line(".", OneTimeOverride::None, client.now)
        else {
            panic!("LMTP's final dot has one step per accepted recipient");
        };
        client.pump();
        client.feed_all(parts);
        let paired: Vec<String> = steps
            .iter()
            .map(|&s| {
                client
                    .core
                    .take_completion(s)
                    .map(|r| r.summary())
                    .unwrap_or_default()
            })
            .collect();
        format!(
            "{paired:?} {:?}",
            client.core.failure().map(ToString::to_string)
        )
    });
    assert_eq!(
        result,
        "[\"250 2.1.5 <a@b> delivered\", \"452 4.2.2 <c@b> mailbox full\"] None"
    );
}

/// An LMTP client past LHLO, MAIL and the RCPTs (`true`: accepted).
fn lmtp_transaction(extensions: &[u8], recipients: &[bool]) -> Client {
    let mut client = Client::strict();
    let lhlo = client.line("LHLO me").unwrap();
    let mut reply = b"250-lmtp.example\r\n".to_vec();
    reply.extend_from_slice(extensions);
    client.feed(&reply);
    client.core.take_completion(lhlo).unwrap();
    let mail = client.line("MAIL FROM:<x@y>").unwrap();
    client.feed(b"250 ok\r\n");
    client.core.take_completion(mail).unwrap();
    for (index, accepted) in recipients.iter().enumerate() {
        let rcpt = client.line(&format!("RCPT TO:<r{index}@b>")).unwrap();
        client.feed(if *accepted {
            b"250 ok\r\n"
        } else {
            b"550 no such user\r\n"
        });
        client.core.take_completion(rcpt).unwrap();
    }
    client
}

#[test]
fn lmtp_answers_bdat_last_once_per_recipient_after_earlier_chunks() {
    let mut client = lmtp_transaction(b"250 CHUNKING\r\n", &[true, false, true]);
    // A chunk without LAST answered 250 leaves the transaction and its recipients as they were.
    let Sent::Step(first) = client
        .core
        .bdat(b"Subject: x\r\n", false, false, client.now)
        .unwrap()
    else {
        panic!("one reply to a chunk without LAST");
    };
    client.pump();
    client.feed(b"250 2.0.0 12 octets received\r\n");
    client.core.take_completion(first).unwrap();
    let Sent::Steps(steps) = client
        .core
        .bdat(b"\r\nbody\r\n", true, false, client.now)
        .unwrap()
    else {
        panic!("LMTP answers BDAT LAST once per accepted recipient");
    };
    assert_eq!(steps.len(), 2);
    client.pump();
    client.feed(b"250 2.0.0 <r0@b> saved\r\n452 4.2.2 <r2@b> over quota\r\n");
    let codes: Vec<u16> = steps
        .iter()
        .map(|&s| client.core.take_completion(s).unwrap().code.value())
        .collect();
    assert_eq!(codes, [250, 452]);
    assert!(client.core.failure().is_none());
}

#[test]
fn a_failed_chunk_ends_the_transaction() {
    let mut client = lmtp_transaction(b"250 CHUNKING\r\n", &[true, true]);
    let Sent::Step(first) = client.core.bdat(b"x", false, false, client.now).unwrap() else {
        panic!("one reply");
    };
    client.pump();
    client.feed(b"552 5.3.4 too big\r\n");
    client.core.take_completion(first).unwrap();
    // Nothing is left to deliver: BDAT LAST now gets the one reply of a refused command.
    assert!(matches!(
        client.core.bdat(b"", true, false, client.now),
        Ok(Sent::Step(_))
    ));
}

#[test]
fn message_lines_are_stuffed_made_crlf_and_refused_with_a_bare_cr() {
    let mut client = Client::strict();
    let data = client.line("DATA").unwrap();
    client.feed(b"354 go\r\n");
    client.core.take_completion(data).unwrap();
    let events_before = client.events.len();
    let before = client.wire.len();
    client
        .core
        .message_lines(b"Subject: x\n.dot\r\n\n..two\nlast", client.now)
        .unwrap();
    client.pump();
    assert_eq!(
        &client.wire[before..],
        b"Subject: x\r\n..dot\r\n\r\n...two\r\nlast\r\n"
    );
    assert_eq!(client.events.len(), events_before, "no event per line");
    let before = client.wire.len();
    assert!(matches!(
        client.core.message_lines(b"fine\nbare\rCR\n", client.now),
        Err(SessionError::Line(LineError::LineBreak))
    ));
    let secret = format!("a\n{PASSWORD}\n");
    assert!(matches!(
        client.core.message_lines(secret.as_bytes(), client.now),
        Err(SessionError::Guard(_))
    ));
    client.pump();
    assert_eq!(
        client.wire.len(),
        before,
        "nothing of a refused block is sent"
    );
}

#[test]
fn requiretls_never_leaves_without_verified_tls() {
    let mut client = Client::strict().after_ehlo(b"250-x\r\n250-PIPELINING\r\n250 REQUIRETLS\r\n");
    let before = client.wire.len();
    let error = client.line("MAIL FROM:<a@b> REQUIRETLS").unwrap_err();
    assert!(matches!(error, SessionError::RequireTls { .. }), "{error}");
    assert!(error.to_string().contains("cleartext"), "{error}");
    let error = client
        .core
        .pipeline(
            &["MAIL FROM:<a@b> requiretls", "RCPT TO:<c@d>"],
            OneTimeOverride::None,
            false,
            client.now,
        )
        .unwrap_err();
    assert!(matches!(error, SessionError::RequireTls { .. }), "{error}");
    client.pump();
    assert_eq!(client.wire.len(), before, "nothing sent");
    // Without the parameter, the same command goes.
    client.line("MAIL FROM:<a@b>").unwrap();
    assert!(client.wire_text().ends_with("MAIL FROM:<a@b>\r\n"));
}

#[test]
fn envelope_lines_are_warned_about_before_they_go() {
    let mut client = Client::strict().after_ehlo(b"250-x\r\n250-SIZE 1000\r\n250 8BITMIME\r\n");
    let step = client
        .line("MAIL FROM:<j\u{f6}rg@example.com> SIZE=5000 RET=HDRS")
        .unwrap();
    client.feed(b"250 ok\r\n");
    client.core.take_completion(step).unwrap();
    client.line("RCPT TO:<a@b> NOTIFY=SUCESS").unwrap();
    let transcript = client.transcript();
    for says in [
        "over the 1000 octets",
        "did not advertise SMTPUTF8",
        "RET needs the DSN extension",
        "not a notification",
    ] {
        assert!(transcript.contains(says), "{says}: {transcript}");
    }
    // Sent as typed all the same.
    assert!(client.wire_text().contains("NOTIFY=SUCESS\r\n"));
}

// -------------------------------------------------------------------------------------------
// XCLIENT and XFORWARD
// -------------------------------------------------------------------------------------------

const XCLIENT_EHLO: &[u8] =
    b"250-x\r\n250-PIPELINING\r\n250-AUTH PLAIN\r\n250-XCLIENT NAME ADDR LOGIN\r\n250 XFORWARD ADDR\r\n";

/// The password as xtext, every byte spelled `+XX`: no plain search finds it.
fn xtext_of(text: &str) -> String {
    text.bytes().map(|b| format!("+{b:02X}")).collect()
}

#[test]
fn xclient_answered_220_starts_the_session_over() {
    let mut client =
        Client::new(settings(UnaskedReplies::Fatal, CLEARTEXT_ALLOWED)).after_ehlo(XCLIENT_EHLO);
    assert!(client.core.capabilities().is_some());
    let step = client
        .line("XCLIENT NAME=spike.example ADDR=192.0.2.66")
        .unwrap();
    // The new greeting is the reply to XCLIENT, never an unasked reply.
    client.feed(b"220 mail.example ESMTP\r\n");
    assert_eq!(client.core.take_completion(step).unwrap().code.value(), 220);
    assert!(client.core.failure().is_none());
    assert!(
        client.core.capabilities().is_none(),
        "capabilities from before XCLIENT are forgotten"
    );
    assert_eq!(client.core.phase(), Phase::Command);
    // What the server now offers is learned again: AUTH needs a new EHLO.
    let error = client
        .core
        .authenticate(
            Mechanism::Plain,
            credentials(),
            OneTimeOverride::None,
            client.now,
        )
        .unwrap_err();
    assert!(
        matches!(error, SessionError::NotAdvertised { .. }),
        "{error}"
    );
    let transcript = client.transcript();
    assert!(transcript.contains("send EHLO again"), "{transcript}");
    let client = client.after_ehlo(b"250-x\r\n250 8BITMIME\r\n");
    assert!(!client.core.capabilities().unwrap().has("XCLIENT"));
}

#[test]
fn xclient_is_checked_against_what_the_server_offers() {
    // Not advertised: sent as typed (the server's refusal is what is being tested), with the
    // refusal to expect said first.
    let mut client = Client::strict().after_ehlo(b"250-x\r\n250 PIPELINING\r\n");
    client.line("XCLIENT ADDR=192.0.2.66").unwrap();
    assert!(client.wire_text().ends_with("XCLIENT ADDR=192.0.2.66\r\n"));
    let transcript = client.transcript();
    assert!(
        transcript.contains("did not advertise XCLIENT"),
        "{transcript}"
    );
    // An attribute the server did not list.
    let mut client = Client::strict().after_ehlo(XCLIENT_EHLO);
    client.line("XCLIENT PROTO=SMTP").unwrap();
    let transcript = client.transcript();
    assert!(transcript.contains("does not list PROTO"), "{transcript}");
    // XCLIENT changes what follows, so only the last line of a group may be one.
    let mut client = Client::strict().after_ehlo(XCLIENT_EHLO);
    let error = client
        .core
        .pipeline(
            &["XCLIENT ADDR=192.0.2.66", "MAIL FROM:<a@b>"],
            OneTimeOverride::None,
            false,
            client.now,
        )
        .unwrap_err();
    assert!(
        matches!(error, SessionError::GroupRefused { .. }),
        "{error}"
    );
}

#[test]
fn a_login_name_in_xclient_is_no_credential_but_is_said() {
    let mut client = Client::strict().after_ehlo(XCLIENT_EHLO);
    let before = client.wire.len();
    client.line("XCLIENT LOGIN=bob").unwrap();
    assert_eq!(&client.wire[before..], b"XCLIENT LOGIN=bob\r\n");
    let transcript = client.transcript();
    assert!(
        transcript.contains("authenticated as bob without any credential"),
        "{transcript}"
    );
}

#[test]
fn a_password_hidden_in_xtext_is_a_credential_in_xclient_and_xforward() {
    for verb in ["XCLIENT LOGIN", "XFORWARD IDENT", "XCLIENT NAME"] {
        let line = format!("{verb}={}", xtext_of(PASSWORD));
        // In cleartext the guard refuses it, and nothing crosses.
        let mut client = Client::strict().after_ehlo(XCLIENT_EHLO);
        let before = client.wire.len();
        let error = client.line(&line).unwrap_err();
        assert!(
            matches!(error, SessionError::Guard(Refusal::Cleartext)),
            "{line}: {error}"
        );
        assert_eq!(client.wire.len(), before, "{line} crossed");
        // Sent by override, it is hidden in the transcript.
        let mut client = Client::new(settings(UnaskedReplies::Fatal, CLEARTEXT_ALLOWED))
            .after_ehlo(XCLIENT_EHLO);
        client.line(&line).unwrap();
        assert!(client.wire_text().contains(&xtext_of(PASSWORD)));
        let transcript = client.transcript();
        assert!(!transcript.contains(&xtext_of(PASSWORD)), "{transcript}");
        assert!(transcript.contains("=<hidden>"), "{transcript}");
    }
}

#[test]
fn a_server_echoing_a_password_spelled_in_xtext_has_it_hidden() {
    let mut client =
        Client::new(settings(UnaskedReplies::Fatal, CLEARTEXT_ALLOWED)).after_ehlo(XCLIENT_EHLO);
    let step = client
        .line(&format!("XCLIENT LOGIN={}", xtext_of(PASSWORD)))
        .unwrap();
    client.feed(
        format!(
            "501 5.5.4 Bad XCLIENT LOGIN syntax: {}\r\n",
            xtext_of(PASSWORD)
        )
        .as_bytes(),
    );
    let reply = client.core.take_completion(step).unwrap();
    assert!(
        !reply.summary().contains(&xtext_of(PASSWORD)),
        "{}",
        reply.summary()
    );
    let transcript = client.transcript();
    assert!(!transcript.contains(&xtext_of(PASSWORD)), "{transcript}");
    // Sent once, it is not sent again as a line of its own.
    let error = client
        .line(&format!("XFORWARD IDENT={}", xtext_of(PASSWORD)))
        .unwrap_err();
    assert!(
        matches!(error, SessionError::Line(LineError::RepeatsCredentials)),
        "{error}"
    );
}

#[test]
fn the_key_log_is_announced_before_anything_happens() {
    let mut settings = settings(UnaskedReplies::Fatal, GuardPolicy::default());
    settings.key_log = Some("/tmp/keys.log".to_owned());
    let client = Client::new(settings);
    let transcript = client.transcript();
    assert!(transcript.contains("TLS KEY LOG ON"), "{transcript}");
    assert!(transcript.contains("/tmp/keys.log"), "{transcript}");
    assert!(
        !Client::strict().transcript().contains("KEY LOG"),
        "silent without a key log"
    );
}
