//! The UI's extensions against real servers from Debian's packages: the same app and engine
//! a person drives in the terminal, given keys and pastes, talking to
//!
//! * Postfix's extensions listener (`scripts/postfix-env.sh`): a pasted MAIL, RCPT, RCPT,
//!   DATA group sent as one pipelined write on the explicit choice, the refused recipient's
//!   reply paired with its own line, then `:send-file` streaming a message that Postfix holds
//!   byte for byte (read back with `postcat`);
//! * Dovecot's LMTP server on its UNIX socket (`scripts/dovecot-env.sh`): LHLO, a pasted group,
//!   `:send-file`, and one reply per accepted recipient, each paired with the final dot.
//!
//! Where a server cannot be started the tests say why and pass as skipped, except under CI.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test assertions

mod support;

use std::process::Command;
use std::time::Duration;

use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use smtptui::session::{SessionConfig, TlsMode, UnaskedReplies};
use smtptui::transcript::EventKind;
use smtptui::tui::app::{App, Mode};
use smtptui::tui::engine::{Action, EngineMsg};
use smtptui::tui::history::History;
use support::mta::{Mta, dovecot};
use support::postfix::postfix;
use tokio::sync::mpsc;

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn type_line(app: &mut App, text: &str) -> Vec<Action> {
    for c in text.chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
    app.on_key(key(KeyCode::Enter))
}

/// Skips (or fails under CI) when `key` is missing from an environment that predates it.
fn needs(mta: &'static Mta, key: &str, script: &str) -> Option<&'static Mta> {
    if !mta.get(key).is_empty() {
        return Some(mta);
    }
    let reason = format!("the environment has no {key} (it predates it): run {script} start again");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{reason}");
    }
    eprintln!("skipping: {reason}");
    None
}

/// The app and a running engine connected to `host:port` (or `unix:/path`), greeted.
struct Driven {
    app: App,
    actions: mpsc::UnboundedSender<Action>,
    messages: mpsc::UnboundedReceiver<EngineMsg>,
    engine: tokio::task::JoinHandle<()>,
}

impl Driven {
    async fn connect(host: String, port: u16) -> Driven {
        let config = SessionConfig {
            host,
            port,
            tls_mode: TlsMode::StartTls,
            server_name: "localhost".to_owned(),
            trust: smtptui::tls::TrustSettings {
                extra_roots: Vec::new(),
                continue_unverified: false,
                client_identity: None,
                roots: Default::default(),
            },
            policy: smtptui::guard::GuardPolicy::default(),
            timeout: Duration::from_secs(20),
            limits: smtptui::proto::reply::ReplyLimits::default(),
            unasked: UnaskedReplies::Fatal,
            known_secrets: Vec::new(),
            sasl: Default::default(),
            transport: Default::default(),
        };
        let (actions, action_rx) = mpsc::unbounded_channel();
        let (engine_tx, messages) = mpsc::unbounded_channel();
        let engine = tokio::spawn(async move {
            let _ = smtptui::tui::engine::run(config, action_rx, engine_tx).await;
        });
        let mut driven = Driven {
            app: App::new("real".to_owned(), History::in_memory()),
            actions,
            messages,
            engine,
        };
        driven.settle().await;
        driven
    }

    fn send(&self, actions: Vec<Action>) {
        for action in actions {
            self.actions.send(action).expect("engine alive");
        }
    }

    /// Feeds the engine's messages to the app until nothing is pending.
    async fn settle(&mut self) {
        while self.app.pending.is_some() {
            let message = tokio::time::timeout(Duration::from_secs(30), self.messages.recv())
                .await
                .expect("the engine answers")
                .expect("the engine runs");
            let actions = self.app.on_engine(message);
            self.send(actions);
        }
    }

    async fn line(&mut self, text: &str) {
        let actions = type_line(&mut self.app, text);
        self.send(actions);
        self.settle().await;
    }

    /// Pastes `lines` and chooses `p`: one pipelined write.
    async fn paste_group(&mut self, lines: &str) {
        let actions = self.app.on_terminal(TermEvent::Paste(lines.to_owned()));
        self.send(actions);
        let actions = self.app.on_key(key(KeyCode::Char('p')));
        self.send(actions);
        self.settle().await;
    }

    /// Each reply so far with the verb of the command it was paired with.
    fn replies(&self) -> Vec<(Option<String>, u16)> {
        self.app
            .view
            .events
            .iter()
            .zip(&self.app.view.meta)
            .filter_map(|(event, meta)| match &event.kind {
                EventKind::Received { reply, .. } => Some((
                    meta.command.as_deref().map(str::to_owned),
                    reply.code.value(),
                )),
                _ => None,
            })
            .collect()
    }

    fn transcript(&self) -> String {
        smtptui::transcript::render_plain(&self.app.view.events)
    }
}

fn verb(verb: &str) -> Option<String> {
    Some(verb.to_owned())
}

/// A message with the headers Postfix would otherwise add, dots at line starts and 8-bit
/// text, with LF line ends as an editor writes them.
fn message_file(tag: &str) -> String {
    format!(
        "From: alice@example.com\nTo: bob@lab.test\nSubject: {tag}\n\
         Message-Id: <{tag}@example.com>\nDate: Tue, 1 Dec 2026 00:00:00 +0000\n\n\
         .a line that starts with a dot\n..two dots\n.\ncaf\u{e9} \u{2603}\nlast line\n"
    )
}

/// The queue id in Postfix's "queued as ID" reply in `transcript`.
fn queue_id(transcript: &str) -> String {
    let at = transcript.find("queued as ").expect("queued") + "queued as ".len();
    transcript[at..]
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect()
}

/// RFC 2920 and a streamed file from the UI against Postfix: the pasted group goes as one
/// write, the relay-denied recipient's 554 is paired with its RCPT (not shifted onto DATA),
/// and the message file sent with `:send-file` is held exactly as the file says, dot lines
/// unstuffed and line ends made CRLF.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_pipelines_a_pasted_group_and_streams_a_file_to_postfix() {
    let Some(postfix) = postfix() else {
        return;
    };
    let Some(postfix) = needs(postfix, "EXTENSIONS_PORT", "scripts/postfix-env.sh") else {
        return;
    };
    let tag = format!("ui-group-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("message.eml");
    std::fs::write(&file, message_file(&tag)).unwrap();

    let mut ui = Driven::connect(
        postfix.get("SMTP_HOST").to_owned(),
        postfix.port("EXTENSIONS_PORT"),
    )
    .await;
    ui.line("EHLO client.example").await;
    ui.paste_group(
        "MAIL FROM:<alice@example.com>\nRCPT TO:<bob@lab.test>\n\
         RCPT TO:<carol@elsewhere.example>\nDATA\n",
    )
    .await;
    assert_eq!(
        ui.replies()[2..],
        [
            (verb("MAIL"), 250),
            (verb("RCPT"), 250),
            (verb("RCPT"), 554),
            (verb("DATA"), 354),
        ],
        "{}",
        ui.transcript()
    );
    assert!(matches!(ui.app.mode, Mode::Message(_)), "{:?}", ui.app.mode);
    ui.line(&format!(":send-file {}", file.display())).await;
    let transcript = ui.transcript();
    assert_eq!(ui.replies().last(), Some(&(verb("."), 250)), "{transcript}");
    assert!(
        !transcript.contains("a line that starts with a dot"),
        "the transcript summarises the file: {transcript}"
    );
    ui.line("QUIT").await;
    ui.engine.abort();

    let id = queue_id(&transcript);
    let config = postfix.get("POSTFIX_CONFIG_DIR");
    let held = Command::new("postcat")
        .args(["-c", config, "-bh", "-q", &id])
        .output()
        .expect("postcat runs (reading Postfix's queue needs root)");
    let envelope = Command::new("postcat")
        .args(["-c", config, "-e", "-q", &id])
        .output()
        .unwrap();
    let _ = Command::new("postsuper")
        .args(["-c", config, "-d", &id])
        .output();
    let held = String::from_utf8_lossy(&held.stdout).into_owned();
    let envelope = String::from_utf8_lossy(&envelope.stdout).into_owned();
    assert!(envelope.contains("recipient: bob@lab.test"), "{envelope}");
    assert!(!envelope.contains("carol"), "{envelope}");
    // postcat prints the message with LF; Postfix put its Received header in front.
    let sent = message_file(&tag);
    let start = held.find("From: alice@example.com").expect("the message");
    assert_eq!(&held[start..], sent, "{held}");
}

/// RFC 2033 from the UI against Dovecot's LMTP on its UNIX socket: LHLO, a pasted group with
/// an unknown and an over-quota recipient, `:send-file`, and then one reply per accepted
/// recipient, both paired with the final dot: delivered for one, 552 for the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_speaks_lmtp_to_dovecot_with_a_reply_per_recipient() {
    let Some(dovecot) = dovecot() else {
        return;
    };
    let Some(dovecot) = needs(dovecot, "LMTP_SOCKET", "scripts/dovecot-env.sh") else {
        return;
    };
    let tag = format!("ui-lmtp-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("message.eml");
    std::fs::write(&file, format!("Subject: {tag}\n\n.dotted\nbody\n")).unwrap();
    let user = dovecot.get("LMTP_USER");
    let full = dovecot.get("LMTP_FULL_USER");

    let mut ui = Driven::connect(format!("unix:{}", dovecot.get("LMTP_SOCKET")), 0).await;
    ui.line("LHLO client.example").await;
    ui.paste_group(&format!(
        "MAIL FROM:<sender@example.com>\nRCPT TO:<{user}>\nRCPT TO:<nobody@lab.test>\n\
         RCPT TO:<{full}>\nDATA\n"
    ))
    .await;
    ui.line(&format!(":send-file {}", file.display())).await;
    ui.line("QUIT").await;
    ui.engine.abort();
    let transcript = ui.transcript();
    assert_eq!(
        ui.replies()[2..],
        [
            (verb("MAIL"), 250),
            (verb("RCPT"), 250),
            (verb("RCPT"), 550),
            (verb("RCPT"), 250),
            (verb("DATA"), 354),
            (verb("."), 250),
            (verb("."), 552),
            (verb("QUIT"), 221),
        ],
        "{transcript}"
    );
    assert!(transcript.contains(&format!("<{full}>")), "{transcript}");
    let local = user.split('@').next().unwrap();
    let new = std::path::Path::new(dovecot.get("MAIL_HOME"))
        .join(local)
        .join("Maildir")
        .join("new");
    let delivered = std::fs::read_dir(new)
        .unwrap()
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
        .find(|text| text.contains(&tag))
        .expect("delivered to the first recipient's Maildir");
    assert!(
        delivered.ends_with(&format!("Subject: {tag}\n\n.dotted\nbody\n")),
        "{delivered}"
    );
}
