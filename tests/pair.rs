//! The client core against the lab's server, in memory: every profile, STARTTLS and TLS
//! included, with the server's bytes cut every which way. What the client did and saw must
//! not depend on the cuts, and no credential may ever reach the server outside TLS.

#![allow(clippy::unwrap_used, clippy::panic)] // test assertions

use std::sync::OnceLock;
use std::time::Duration;

use smtptui::guard::OneTimeOverride;
use smtptui::lab::LabPki;
use smtptui::lab::accounts::{DEFAULT_PASSWORD, DEFAULT_USER};
use smtptui::lab::pair::{Pair, workshop_credentials};
use smtptui::lab::{Direction, Profile};
use smtptui::proto::client::{ClientSession, Phase, SessionError, StepId, UnaskedReplies};
use smtptui::proto::command::LineError;
use smtptui::proto::sasl::{Mechanism, credential_forms};
use smtptui::secret::Secret;
use smtptui::transcript::{Security, render_plain};

fn pki() -> &'static LabPki {
    static PKI: OnceLock<LabPki> = OnceLock::new();
    PKI.get_or_init(|| LabPki::generate().unwrap())
}

fn line(
    text: &str,
) -> impl FnOnce(&mut ClientSession, std::time::Instant) -> Result<StepId, SessionError> + '_ {
    move |client, now| match client.send_line(text, OneTimeOverride::None, now)? {
        smtptui::proto::client::Sent::Step(step) => Ok(step),
        // LMTP's final dot: the journey has one recipient, so one step is all there is.
        smtptui::proto::client::Sent::Steps(steps) => Ok(steps[0]),
        smtptui::proto::client::Sent::Queued => Ok(0),
    }
}

/// A request for an exchange with the workshop account.
fn auth(
    mechanism: Mechanism,
) -> impl FnOnce(&mut ClientSession, std::time::Instant) -> Result<StepId, SessionError> {
    move |client, now| {
        client.authenticate(
            mechanism,
            workshop_credentials(),
            OneTimeOverride::None,
            now,
        )
    }
}

/// Connected, greeted, EHLO, STARTTLS and EHLO again: where credentials may go.
fn inside_tls(pair: &mut Pair) {
    pair.connect();
    pair.step(line("EHLO x")).unwrap();
    pair.step(|c, now| c.starttls(now)).unwrap();
    pair.step(line("EHLO x")).unwrap();
    assert_eq!(pair.client.security(), Security::Tls);
}

/// What a careful client does on any server: EHLO (LHLO under LMTP), STARTTLS when offered,
/// EHLO again, AUTH PLAIN with the workshop account, a message, QUIT. Returns the transcript
/// with every outcome, for comparison across cuts.
fn journey(pair: &mut Pair, profile: Profile) -> String {
    let hello = if profile.policy().lmtp {
        "LHLO client.example"
    } else {
        "EHLO client.example"
    };
    let mut notes = Vec::new();
    let greeting = pair.connect();
    let mut note = |what: &str, result: Result<String, SessionError>| {
        let said = result.unwrap_or_else(|error| match error {
            // How many injected bytes had arrived when the client stopped depends on the
            // cut; that they were injection does not.
            SessionError::Injection { .. } => "ERR response injection".to_owned(),
            other => format!("ERR {other}"),
        });
        notes.push(format!("{what}: {said}"));
    };
    note(
        "greeting",
        pair.client
            .take_completion(greeting)
            .map(|r| r.summary())
            .ok_or(SessionError::Busy),
    );
    let ehlo = pair.step(line(hello)).map(|r| r.summary());
    note("ehlo", ehlo);
    let offers_tls = pair
        .client
        .capabilities()
        .is_some_and(|c| c.has("STARTTLS"));
    if offers_tls {
        let tls = pair.step(|c, now| c.starttls(now)).map(|r| r.summary());
        note("starttls", tls);
        if pair.client.security() == Security::Tls {
            assert!(pair.client.capabilities().is_none(), "forgotten at TLS");
            let again = pair.step(line(hello)).map(|r| r.summary());
            note("ehlo again", again);
        }
    }
    let authenticated = pair.step(auth(Mechanism::Plain)).map(|r| r.summary());
    note("auth", authenticated);
    for command in [
        "MAIL FROM:<student@lab.test>",
        "RCPT TO:<bob@lab.test>",
        "DATA",
    ] {
        let reply = pair.step(line(command)).map(|r| r.summary());
        note(command, reply);
    }
    if pair.client.phase() == Phase::Message {
        for text in ["Subject: hello", "", ".a line starting with a dot"] {
            if let Err(error) = pair.client.send_line(text, OneTimeOverride::None, pair.now) {
                note("message line", Err(error));
            }
        }
        let end = pair.step(line(".")).map(|r| r.summary());
        note("end of message", end);
    }
    let quit = pair.step(line("QUIT")).map(|r| r.summary());
    note("quit", quit);
    assert_no_cleartext_credentials(pair);
    // Days to expiry depend on when the test runs, not on how bytes were cut.
    let rendered = render_plain(&pair.events);
    let transcript: Vec<&str> = rendered
        .lines()
        .map(|line| line.split(" (").next().unwrap_or(line))
        .map(|line| line.split("response injection:").next().unwrap_or(line))
        .collect::<Vec<_>>();
    format!("{}\n{}", notes.join("\n"), transcript.join("\n"))
}

fn assert_no_cleartext_credentials(pair: &Pair) {
    let secret = Secret::new(DEFAULT_PASSWORD.to_owned());
    for form in credential_forms(Some(DEFAULT_USER), &secret) {
        let form = form.expose().as_bytes();
        assert!(
            !pair
                .cleartext_to_server
                .windows(form.len())
                .any(|w| w == form),
            "a credential form reached the server in cleartext: {:?}",
            String::from_utf8_lossy(&pair.cleartext_to_server)
        );
    }
}

fn run(profile: Profile, cuts: Vec<usize>) -> String {
    let mut pair = Pair::new(pki(), profile, |_| {}).unwrap();
    pair.cuts = cuts;
    journey(&mut pair, profile)
}

/// Cut patterns: whole writes, every fixed size from 1 to 17, and seeded mixed patterns.
fn cut_patterns() -> Vec<Vec<usize>> {
    let mut patterns: Vec<Vec<usize>> = vec![vec![usize::MAX]];
    patterns.extend((1..=17).map(|n| vec![n]));
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..12 {
        let pattern = (0..16)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed % 40) as usize + 1
            })
            .collect();
        patterns.push(pattern);
    }
    patterns
}

#[test]
fn every_profile_gives_the_same_session_however_the_server_bytes_are_cut() {
    for profile in Profile::ALL {
        let whole = run(profile, vec![usize::MAX]);
        for cuts in cut_patterns() {
            let cut = run(profile, cuts.clone());
            assert_eq!(cut, whole, "{} cut as {cuts:?}", profile.name());
        }
    }
}

#[test]
fn each_profile_ends_as_it_should_for_a_careful_client() {
    let expectations: [(Profile, &[&str]); 8] = [
        (
            Profile::Submission,
            &[
                "auth: 235",
                "end of message: 250",
                "TLS established",
                "verified",
            ],
        ),
        (
            Profile::Mx,
            &["auth: ERR AUTH PLAIN not sent", "end of message: 250"],
        ),
        (Profile::Legacy, &["auth: 235", "end of message: 250"]),
        (
            Profile::Implicit,
            &["greeting: 220", "auth: 235", "end of message: 250"],
        ),
        (Profile::Inject, &["starttls: ERR response injection"]),
        (Profile::Strip, &["auth: ERR credential guard"]),
        (
            Profile::RefuseTls,
            &["starttls: 454", "auth: ERR credential guard"],
        ),
        (
            Profile::Lmtp,
            &[
                "greeting: 220",
                "ehlo again: 250",
                "end of message: 250",
                "TLS established",
            ],
        ),
    ];
    for (profile, says) in expectations {
        let transcript = run(profile, vec![usize::MAX]);
        for text in says {
            assert!(
                transcript.contains(text),
                "{}: {text:?} missing from\n{transcript}",
                profile.name()
            );
        }
    }
}

#[test]
fn credentials_once_sent_are_never_sent_again_as_a_command() {
    let mut pair = Pair::new(pki(), Profile::Submission, |_| {}).unwrap();
    inside_tls(&mut pair);
    let reply = pair.step(auth(Mechanism::Login)).unwrap();
    assert_eq!(reply.code.value(), 235);
    let secret = Secret::new(DEFAULT_PASSWORD.to_owned());
    for form in credential_forms(Some(DEFAULT_USER), &secret) {
        let error = pair.step(line(form.expose())).unwrap_err();
        assert!(
            matches!(error, SessionError::Line(LineError::RepeatsCredentials)),
            "{error}"
        );
    }
    assert!(pair.client.poll_transmit().is_none());
    let transcript = render_plain(&pair.events);
    assert!(!transcript.contains(DEFAULT_PASSWORD), "{transcript}");
}

#[test]
fn what_was_learned_before_tls_is_forgotten() {
    let mut pair = Pair::new(pki(), Profile::Legacy, |settings| {
        settings.policy.allow_cleartext_auth = true;
    })
    .unwrap();
    pair.connect();
    pair.step(line("EHLO x")).unwrap();
    let reply = pair.step(auth(Mechanism::Plain)).unwrap();
    assert_eq!(reply.code.value(), 235, "the override let it through");
    assert_eq!(pair.client.authenticated_as(), Some(DEFAULT_USER));
    assert!(pair.client.capabilities().is_some());
    pair.step(|c, now| c.starttls(now)).unwrap();
    assert_eq!(pair.client.security(), Security::Tls);
    assert!(pair.client.capabilities().is_none());
    assert_eq!(pair.client.authenticated_as(), None);
    assert!(render_plain(&pair.events).contains("forgotten"));
}

#[test]
fn bytes_injected_behind_the_220_are_caught_in_the_same_read_or_a_later_one() {
    for cuts in cut_patterns() {
        let mut pair = Pair::new(pki(), Profile::Submission, |_| {}).unwrap();
        pair.cuts = cuts.clone();
        pair.connect();
        pair.step(line("EHLO x")).unwrap();
        // The network, not the server, adds a reply behind the server's 220.
        let step = pair.client.starttls(pair.now).unwrap();
        pair.deliver = false;
        pair.drive();
        pair.inject_to_client(b"250 AUTH PLAIN\r\n");
        pair.deliver = true;
        pair.drive();
        assert!(pair.client.take_completion(step).is_none(), "{cuts:?}");
        assert!(
            matches!(pair.client.failure(), Some(SessionError::Injection { .. })),
            "{cuts:?}: {:?}",
            pair.client.failure()
        );
    }
}

#[test]
fn a_server_that_stops_answering_meets_the_deadline_in_simulated_time() {
    let mut pair = Pair::new(pki(), Profile::Submission, |settings| {
        settings.timeout = Duration::from_secs(7);
    })
    .unwrap();
    pair.connect();
    pair.deliver = false;
    let step = pair
        .client
        .send_line("NOOP", OneTimeOverride::None, pair.now)
        .unwrap();
    pair.drive();
    pair.now += Duration::from_secs(6);
    pair.client.handle_timeout(pair.now);
    assert!(pair.client.failure().is_none());
    pair.now += Duration::from_secs(1);
    pair.client.handle_timeout(pair.now);
    let error = pair.client.failure().unwrap().to_string();
    assert!(
        error.contains("timed out after 7s waiting for the reply to NOOP"),
        "{error}"
    );
    let _ = step;
}

#[test]
fn an_interactive_client_shows_injected_bytes_as_unasked_and_sends_no_credential_after() {
    let mut pair = Pair::new(pki(), Profile::Submission, |settings| {
        settings.unasked = UnaskedReplies::Show;
    })
    .unwrap();
    pair.connect();
    pair.step(line("EHLO x")).unwrap();
    pair.inject_to_client(b"250 hello, nobody asked\r\n");
    pair.drive();
    assert!(pair.client.failure().is_none());
    assert!(pair.client.is_out_of_step());
    assert!(render_plain(&pair.events).contains("S? 250 hello, nobody asked"));
    // The pairing is unchanged: STARTTLS gets its own 220.
    let tls = pair.step(|c, now| c.starttls(now)).unwrap();
    assert_eq!(tls.code.value(), 220);
    pair.step(line("EHLO x")).unwrap();
    let error = pair.step(auth(Mechanism::Plain)).unwrap_err();
    assert!(
        matches!(error, SessionError::CredentialsAfterOutOfStep),
        "{error}"
    );
    assert!(
        !pair
            .log
            .iter()
            .any(|(direction, text)| *direction == Direction::Client && text.starts_with("AUTH")),
        "{:?}",
        pair.log
    );
}

/// LMTP on the lab: the core pairs each reply after the final dot with its recipient, and a
/// pipelined group with its commands, however the server's bytes are cut.
#[test]
fn lmtp_replies_per_recipient_and_pipelined_groups_pair_up_however_cut() {
    for cuts in cut_patterns() {
        let mut pair = Pair::new(pki(), Profile::Lmtp, |_| {}).unwrap();
        pair.cuts = cuts.clone();
        pair.connect();
        pair.step(line("LHLO client.example")).unwrap();
        let steps = pair
            .client
            .pipeline(
                &[
                    "MAIL FROM:<a@lab.test>",
                    "RCPT TO:<b@lab.test>",
                    "RCPT TO:<x@example.com>",
                    "RCPT TO:<data-452@lab.test>",
                    "RCPT TO:<c@lab.test>",
                    "DATA",
                ],
                OneTimeOverride::None,
                false,
                pair.now,
            )
            .unwrap();
        pair.drive();
        let codes: Vec<u16> = steps
            .iter()
            .map(|step| pair.client.take_completion(*step).unwrap().code.value())
            .collect();
        assert_eq!(codes, [250, 250, 554, 250, 250, 354], "{cuts:?}");
        assert_eq!(pair.client.phase(), Phase::Message);
        for text in ["Subject: lmtp", "", "hello"] {
            pair.client
                .send_line(text, OneTimeOverride::None, pair.now)
                .unwrap();
        }
        let sent = pair
            .client
            .send_line(".", OneTimeOverride::None, pair.now)
            .unwrap();
        pair.drive();
        let smtptui::proto::client::Sent::Steps(steps) = sent else {
            panic!("{cuts:?}: one step per accepted recipient expected, got {sent:?}");
        };
        let replies: Vec<String> = steps
            .iter()
            .map(|step| pair.client.take_completion(*step).unwrap().summary())
            .collect();
        assert_eq!(replies.len(), 3, "{cuts:?}: {replies:?}");
        assert!(
            replies[0].starts_with("250 2.0.0 <b@lab.test> Ok"),
            "{replies:?}"
        );
        assert!(
            replies[1].starts_with("452 4.2.2 <data-452@lab.test>"),
            "{replies:?}"
        );
        assert!(
            replies[2].starts_with("250 2.0.0 <c@lab.test> Ok"),
            "{replies:?}"
        );
        assert!(
            pair.client.failure().is_none(),
            "{:?}",
            pair.client.failure()
        );
        assert_eq!(pair.delivered.len(), 1);
        assert_eq!(pair.delivered[0].to, ["b@lab.test", "c@lab.test"]);
        // The lab's log shows the group as one.
        assert!(
            pair.log
                .iter()
                .any(|(direction, text)| *direction == Direction::Note
                    && text.starts_with("pipelined group: 6 commands in one write")),
            "{:?}",
            pair.log
        );
    }
}

/// TLS whose certificate did not verify, continued (as the UI does under `--insecure` for
/// the handshake) without the override that lets credentials through: every mechanism, with
/// and without an initial response, is refused with nothing of it reaching the server, and
/// the client certificate EXTERNAL would use changes nothing.
#[test]
fn every_mechanism_is_refused_to_an_unverified_peer() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = pki().write_client_certificate(dir.path()).unwrap();
    let identity = smtptui::tls::ClientIdentity::load(&cert, &key).unwrap();
    for mechanism in [
        Mechanism::Plain,
        Mechanism::Login,
        Mechanism::CramMd5,
        Mechanism::XOAuth2,
        Mechanism::OAuthBearer,
        Mechanism::External,
    ] {
        for initial_response in [true, false] {
            let identity = identity.clone();
            let mut pair = Pair::new(pki(), Profile::Submission, move |settings| {
                // Trusting nothing: the lab's certificate cannot verify.
                let (tls, verdict) = smtptui::tls::client_config(&smtptui::tls::TrustSettings {
                    extra_roots: Vec::new(),
                    continue_unverified: true,
                    client_identity: Some(identity.clone()),
                    roots: Default::default(),
                })
                .unwrap();
                settings.tls = tls;
                settings.verdict = verdict;
                settings.client_identity = Some(identity);
                settings.sasl.initial_response = initial_response;
                settings.sasl.force = true;
            })
            .unwrap();
            inside_tls(&mut pair);
            let refused = pair.step(auth(mechanism));
            assert!(
                matches!(
                    refused,
                    Err(SessionError::Guard(smtptui::guard::Refusal::Unverified(_)))
                ),
                "{mechanism:?} {initial_response}: {refused:?}"
            );
            pair.drive();
            assert!(
                !pair
                    .log
                    .iter()
                    .any(|(direction, text)| *direction == Direction::Client
                        && text.to_ascii_uppercase().contains("AUTH")),
                "{mechanism:?}: {:?}",
                pair.log
            );
        }
    }
}
