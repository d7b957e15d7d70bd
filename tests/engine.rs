//! Engine behaviour that no front end reaches alone: a hidden SASL answer is sent only while
//! the server still waits for one.

#![allow(clippy::panic)] // panicking is how a test fails

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use smtptui::guard::{GuardPolicy, OneTimeOverride};
use smtptui::proto::reply::ReplyLimits;
use smtptui::secret::Secret;
use smtptui::session::{Phase, Session, SessionConfig, SessionError, Step, TlsMode};
use smtptui::tls::TrustSettings;

/// A one-connection SMTP server on 127.0.0.1: it greets, answers each line with what
/// `answer` returns, and records every line it receives. The task ends when the client goes
/// or after 5 s of silence.
async fn scripted_server(
    answer: fn(&str) -> &'static [u8],
) -> (u16, Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let received = Arc::new(Mutex::new(Vec::new()));
    let record = received.clone();
    let task = tokio::spawn(async move {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let _ = write.write_all(b"220 test ESMTP\r\n").await;
        while let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await
        {
            let reply = answer(&line);
            record.lock().expect("lock").push(line);
            if write.write_all(reply).await.is_err() {
                break;
            }
        }
    });
    (port, received, task)
}

/// Answers `AUTH LOGIN` with a 334 and, when `moves_on`, follows it at once with an unasked
/// 250 that ends the exchange.
async fn server(moves_on: bool) -> (u16, Arc<Mutex<Vec<String>>>) {
    let (port, received, _) = if moves_on {
        scripted_server(|line| match line {
            "AUTH LOGIN" => b"334 VXNlcm5hbWU6\r\n250 never mind\r\n",
            _ => b"235 2.7.0 ok\r\n",
        })
        .await
    } else {
        scripted_server(|line| match line {
            "AUTH LOGIN" => b"334 VXNlcm5hbWU6\r\n",
            _ => b"235 2.7.0 ok\r\n",
        })
        .await
    };
    (port, received)
}

fn config(port: u16) -> SessionConfig {
    SessionConfig {
        host: "127.0.0.1".to_owned(),
        port,
        tls_mode: TlsMode::StartTls,
        server_name: "localhost".to_owned(),
        trust: TrustSettings {
            extra_roots: Vec::new(),
            continue_unverified: false,
            client_identity: None,
            roots: Default::default(),
        },
        // The test is about the phase check, so cleartext AUTH is allowed here explicitly.
        policy: GuardPolicy {
            allow_cleartext_auth: true,
            allow_unverified_auth: false,
        },
        timeout: Duration::from_secs(5),
        limits: ReplyLimits::default(),
        unasked: smtptui::session::UnaskedReplies::Show,
        known_secrets: Vec::new(),
        sasl: Default::default(),
        transport: Default::default(),
    }
}

#[tokio::test]
async fn a_hidden_answer_is_not_sent_once_the_server_has_moved_on() {
    let (port, received) = server(true).await;
    let (mut session, _) = Session::connect(config(port), Box::new(|_| {}))
        .await
        .expect("connects");
    let step = session
        .send_line("AUTH LOGIN", OneTimeOverride::None)
        .await
        .expect("sent");
    assert!(matches!(step, Step::Reply(ref r) if r.code.value() == 334));
    // The unasked 250 came right behind the 334, before the user could type the hidden
    // answer: it answers nothing sent, and the challenge it followed no longer stands.
    assert_eq!(session.phase(), Phase::Command);
    let reply = tokio::time::timeout(Duration::from_secs(5), session.next_unsolicited())
        .await
        .expect("in time")
        .expect("a reply");
    assert_eq!(reply.code.value(), 250);
    assert_eq!(session.phase(), Phase::Command);
    let secret = Secret::new("hunter2-typed-hidden".to_owned());
    let result = session
        .answer_challenge(&secret, OneTimeOverride::None)
        .await;
    assert!(
        matches!(result, Err(SessionError::NoChallenge)),
        "{result:?}"
    );
    session.quit().await;
    let lines = received.lock().expect("lock").clone();
    assert!(
        !lines.iter().any(|l| l.contains("hunter2")),
        "the hidden answer crossed: {lines:?}"
    );
}

#[tokio::test]
async fn a_hidden_answer_is_sent_while_the_challenge_stands() {
    let (port, received) = server(false).await;
    let (mut session, _) = Session::connect(config(port), Box::new(|_| {}))
        .await
        .expect("connects");
    session
        .send_line("AUTH LOGIN", OneTimeOverride::None)
        .await
        .expect("sent");
    let secret = Secret::new("YWxpY2U=".to_owned());
    let reply = session
        .answer_challenge(&secret, OneTimeOverride::None)
        .await
        .expect("answered");
    assert_eq!(reply.code.value(), 235);
    session.quit().await;
    assert!(
        received
            .lock()
            .expect("lock")
            .contains(&"YWxpY2U=".to_owned())
    );
}

/// A server that sends reply after reply nobody asked for is cut off by the UI's engine task
/// instead of growing the transcript without end.
#[tokio::test]
async fn the_ui_engine_closes_a_server_that_floods_unasked_replies() {
    use smtptui::transcript::{ErrorKind, EventKind};
    use smtptui::tui::engine::{EngineMsg, MAX_UNASKED_REPLIES};

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let _ = stream.write_all(b"220 flood ESMTP\r\n").await;
        for _ in 0..10_000 {
            if stream.write_all(b"250 unasked\r\n").await.is_err() {
                break;
            }
        }
    });
    let (_actions_tx, actions_rx) = tokio::sync::mpsc::unbounded_channel();
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel();
    let engine = tokio::spawn(smtptui::tui::engine::run(config(port), actions_rx, out_tx));
    let mut replies = 0usize;
    let mut closed_for_flooding = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, out_rx.recv()).await {
        if let EngineMsg::Event(event) = message {
            match event.kind {
                EventKind::Received { .. } => replies += 1,
                EventKind::Error {
                    kind: ErrorKind::OutOfStep,
                    ..
                } => {
                    closed_for_flooding = true;
                    break;
                }
                _ => {}
            }
        }
    }
    engine.abort();
    assert!(
        closed_for_flooding,
        "no flood error after {replies} replies"
    );
    // The greeting, then the unasked ones up to the limit and the one that crossed it.
    assert!(
        replies <= MAX_UNASKED_REPLIES + 2,
        "{replies} replies shown"
    );
}

/// Leaving in the middle of a message closes without QUIT: QUIT would be message text.
#[tokio::test]
async fn quit_inside_a_message_does_not_send_quit_as_text() {
    let (port, received, server) = scripted_server(|line| match line {
        "DATA" => b"354 go ahead\r\n",
        _ => b"250 ok\r\n",
    })
    .await;
    let (mut session, _) = Session::connect(config(port), Box::new(|_| {}))
        .await
        .expect("connects");
    session
        .send_line("DATA", OneTimeOverride::None)
        .await
        .expect("DATA");
    assert_eq!(session.phase(), Phase::Message);
    session
        .send_line("half a message", OneTimeOverride::None)
        .await
        .expect("queued");
    session.quit().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    let lines = received.lock().expect("lock").clone();
    assert!(!lines.contains(&"QUIT".to_owned()), "{lines:?}");
    assert!(
        !lines.contains(&".".to_owned()),
        "the message must not be completed: {lines:?}"
    );
}

/// Once an exchange has ended (535), a 334 arriving later, unasked, is not a prompt: the
/// next line stays a command and is never taken for a hidden SASL answer.
#[tokio::test]
async fn a_334_after_the_exchange_ended_does_not_reopen_it() {
    let (port, _, _) = scripted_server(|line| {
        if line.starts_with("AUTH") {
            b"535 5.7.8 no\r\n334 UGFzc3dvcmQ6\r\n"
        } else {
            b"250 ok\r\n"
        }
    })
    .await;
    let (mut session, _) = Session::connect(config(port), Box::new(|_| {}))
        .await
        .expect("connects");
    let step = session
        .send_line("AUTH DIGEST-MD5", OneTimeOverride::None)
        .await
        .expect("sent");
    assert!(matches!(step, Step::Reply(ref r) if r.code.value() == 535));
    let late = tokio::time::timeout(Duration::from_secs(5), session.next_unsolicited())
        .await
        .expect("in time")
        .expect("a reply");
    assert_eq!(late.code.value(), 334);
    assert_eq!(session.phase(), Phase::Command);
    session.quit().await;
}

/// The UI's engine shows a reply nobody asked for as unasked, keeps the next command paired
/// with its own reply, and sends no credential on that connection afterwards.
#[tokio::test]
async fn the_ui_engine_shows_unasked_replies_and_then_sends_no_credentials() {
    use smtptui::proto::sasl::Mechanism;
    use smtptui::secret::Credentials;
    use smtptui::transcript::EventKind;
    use smtptui::tui::engine::{Action, Done, EngineMsg};

    let (port, received, _) = scripted_server(|line| match line {
        "EHLO x" => b"250-ok\r\n250 AUTH PLAIN\r\n250 unasked extra\r\n",
        _ => b"250 ok\r\n",
    })
    .await;
    let (actions, actions_rx) = tokio::sync::mpsc::unbounded_channel();
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel();
    let engine = tokio::spawn(smtptui::tui::engine::run(config(port), actions_rx, out_tx));
    let mut events = Vec::new();
    let mut next_done = async || loop {
        match tokio::time::timeout(Duration::from_secs(5), out_rx.recv()).await {
            Ok(Some(EngineMsg::Done(done))) => return done,
            Ok(Some(EngineMsg::Event(event))) => events.push(event.kind),
            Ok(Some(_)) => {}
            _ => panic!("the engine went quiet"),
        }
    };
    assert!(matches!(next_done().await, Done::Reply { .. }), "greeting");
    let send = |line: &str| Action::Send {
        line: line.to_owned(),
        one_time: OneTimeOverride::None,
    };
    actions.send(send("EHLO x")).expect("engine runs");
    assert!(
        matches!(next_done().await, Done::Reply { ref reply, .. } if reply.code.value() == 250)
    );
    actions.send(send("NOOP")).expect("engine runs");
    match next_done().await {
        Done::Reply { reply, .. } => assert_eq!(reply.summary(), "250 ok", "paired with NOOP"),
        other => panic!("{other:?}"),
    }
    actions
        .send(Action::Authenticate {
            mechanism: Mechanism::Plain,
            credentials: Credentials {
                user: "alice".to_owned(),
                secret: Secret::new("never-sent-password".to_owned()),
            },
            one_time: OneTimeOverride::None,
        })
        .expect("engine runs");
    let done = next_done().await;
    assert!(
        matches!(&done, Done::Failed { reason, .. } if reason.contains("nobody asked for")),
        "{done:?}"
    );
    engine.abort();
    assert!(
        events
            .iter()
            .any(|kind| matches!(kind, EventKind::Unasked { reply, .. }
            if reply.summary() == "250 unasked extra")),
        "{events:?}"
    );
    let lines = received.lock().expect("lock").clone();
    assert!(!lines.iter().any(|l| l.starts_with("AUTH")), "{lines:?}");
}
