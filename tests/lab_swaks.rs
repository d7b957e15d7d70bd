//! swaks as an independent client against the lab's extensions: PIPELINING (`--pipeline`),
//! LMTP (`--protocol LMTP`) and REQUIRETLS's place inside TLS, with the lab's log checked for
//! what it shows of each. swaks is written by others, so what it reads from the lab is what a
//! real client meets; scripts/postfix-env.sh installs it, and without it these tests say so
//! and pass as skipped (except under CI).

#![allow(clippy::panic)] // panicking is how a test fails

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smtptui::lab::accounts::{DEFAULT_PASSWORD, DEFAULT_USER};
use smtptui::lab::{Lab, LabConfig, Profile};

/// Hard limit on one swaks run.
const PROCESS_DEADLINE: Duration = Duration::from_secs(60);

struct TestLab {
    lab: Lab,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl TestLab {
    async fn start(profiles: &[Profile]) -> TestLab {
        let dir = tempfile::tempdir().expect("tempdir");
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut config = LabConfig::ephemeral(profiles.to_vec());
        let sink = log.clone();
        config.log = Arc::new(move |line| sink.lock().expect("log").push(line.to_owned()));
        config.state_dir = Some(dir.path().join("state"));
        config.error_sleep = Duration::ZERO;
        config.command_timeout = Duration::from_secs(20);
        let lab = Lab::start(config).await.expect("lab starts");
        TestLab {
            lab,
            log,
            _dir: dir,
        }
    }

    fn port(&self, profile: Profile) -> String {
        self.lab
            .addr(profile)
            .expect("profile runs")
            .port()
            .to_string()
    }

    /// The log lines of one profile's sessions, without their time.
    fn log_of(&self, profile: Profile) -> Vec<String> {
        let tag = format!(" {}#", profile.name());
        self.log
            .lock()
            .expect("log")
            .iter()
            .filter(|line| line.contains(&tag))
            .map(|line| {
                line.split_once(' ')
                    .map_or(line.as_str(), |(_, rest)| rest)
                    .to_owned()
            })
            .collect()
    }

    /// Waits (bounded) until a session of `profile` has its verdict in the log.
    async fn wait_for_verdict(&self, profile: Profile) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(line) = self
                .log_of(profile)
                .into_iter()
                .find(|line| line.contains(" VERDICT "))
            {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no verdict:\n{:?}",
                self.log_of(profile)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

struct Ran {
    code: Option<i32>,
    stdout: String,
}

/// Whether swaks is here (required under CI).
fn have_swaks() -> bool {
    let found = Command::new("sh")
        .args(["-c", "command -v swaks"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "swaks is required on CI (scripts/postfix-env.sh installs it)"
        );
        eprintln!("note: swaks not installed; skipping");
    }
    found
}

async fn swaks(args: Vec<String>) -> Ran {
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new("swaks")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn swaks");
        let mut stdout = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text
        });
        let started = Instant::now();
        let code = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status.code();
            }
            if started.elapsed() > PROCESS_DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ran {
            code,
            stdout: reader.join().unwrap_or_default(),
        }
    })
    .await
    .expect("swaks thread")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|a| (*a).to_owned()).collect()
}

/// The lines of swaks' transcript the server sent (`<-`, `<~`, `<**`), without the arrow.
fn replies(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|line| line.starts_with('<'))
        .map(|line| {
            line.split_once(' ')
                .map_or(line, |(_, rest)| rest.trim_start())
        })
        .collect()
}

/// `swaks --pipeline` sends MAIL, the RCPTs and DATA in one write: the lab answers each in
/// order (one recipient refused by its local part), and its log shows the group as one, the
/// commands together above their replies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_pipeline_gets_each_reply_in_order_and_the_log_shows_the_group() {
    if !have_swaks() {
        return;
    }
    let lab = TestLab::start(&[Profile::Mx]).await;
    let ran = swaks(args(&[
        "--server",
        "127.0.0.1",
        "--port",
        &lab.port(Profile::Mx),
        "--pipeline",
        "--ehlo",
        "swaks.test",
        "--from",
        "sender@lab.test",
        "--to",
        "a@lab.test,rcpt-550@lab.test,b@lab.test",
        "--timeout",
        "20",
    ]))
    .await;
    assert_eq!(ran.code, Some(0), "{}", ran.stdout);
    let replies = replies(&ran.stdout);
    let group = replies
        .iter()
        .position(|r| r.starts_with("250 2.1.0"))
        .unwrap_or_else(|| panic!("{}", ran.stdout));
    assert_eq!(
        replies[group..group + 5],
        [
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            "550 5.1.1 <rcpt-550@lab.test>: Recipient address rejected: User unknown in local recipient table",
            "250 2.1.5 Ok",
            "354 End data with <CR><LF>.<CR><LF>",
        ],
        "{}",
        ran.stdout
    );
    assert!(replies[group + 5].starts_with("250 2.0.0 Ok: queued as "));
    let messages = lab.lab.mail().messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].to, ["a@lab.test", "b@lab.test"]);

    let verdict = lab.wait_for_verdict(Profile::Mx).await;
    assert!(
        !verdict.contains("pipelin"),
        "RFC 2920 pipelining is no fault: {verdict}"
    );
    let log = lab.log_of(Profile::Mx);
    let start = log
        .iter()
        .position(|line| {
            line.contains(".. pipelined group: 5 commands in one write (MAIL RCPT RCPT RCPT DATA)")
        })
        .unwrap_or_else(|| panic!("{log:#?}"));
    let shown: Vec<&str> = log[start + 1..start + 11]
        .iter()
        .map(|line| {
            line.split_once(" plain ")
                .map_or(line.as_str(), |(_, rest)| rest)
        })
        .collect();
    assert_eq!(
        shown,
        [
            "C: MAIL FROM:<sender@lab.test>",
            "C: RCPT TO:<a@lab.test>",
            "C: RCPT TO:<rcpt-550@lab.test>",
            "C: RCPT TO:<b@lab.test>",
            "C: DATA",
            "S: 250 2.1.0 Ok",
            "S: 250 2.1.5 Ok",
            "S: 550 5.1.1 <rcpt-550@lab.test>: Recipient address rejected: User unknown in local recipient table",
            "S: 250 2.1.5 Ok",
            "S: 354 End data with <CR><LF>.<CR><LF>",
        ],
        "{log:#?}"
    );
}

/// `swaks --protocol LMTP` on the lmtp profile: LHLO, and after the message one reply per
/// recipient, which swaks reads as such; the one refused by its local part gets no copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_lmtp_reads_one_reply_per_recipient() {
    if !have_swaks() {
        return;
    }
    let lab = TestLab::start(&[Profile::Lmtp]).await;
    let ran = swaks(args(&[
        "--server",
        "127.0.0.1",
        "--port",
        &lab.port(Profile::Lmtp),
        "--protocol",
        "LMTP",
        "--pipeline",
        "--from",
        "sender@lab.test",
        "--to",
        "b@lab.test,data-452@lab.test,c@lab.test",
        "--timeout",
        "20",
    ]))
    .await;
    assert!(ran.stdout.contains("-> LHLO "), "{}", ran.stdout);
    let replies = replies(&ran.stdout);
    let end = replies
        .iter()
        .position(|r| r.starts_with("250 2.0.0 <b@lab.test> Ok: queued as "))
        .unwrap_or_else(|| panic!("{}", ran.stdout));
    assert_eq!(
        replies[end + 1],
        "452 4.2.2 <data-452@lab.test>: Error: message not accepted: Mailbox full",
        "{}",
        ran.stdout
    );
    assert!(
        replies[end + 2].starts_with("250 2.0.0 <c@lab.test> Ok: queued as "),
        "{}",
        ran.stdout
    );
    assert_eq!(replies[end + 3], "221 2.0.0 Bye", "{}", ran.stdout);
    let messages = lab.lab.mail().messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].to, ["b@lab.test", "c@lab.test"]);
    lab.wait_for_verdict(Profile::Lmtp).await;
    assert!(
        lab.log_of(Profile::Lmtp)
            .iter()
            .any(|line| line.contains("pipelined group: 5 commands")),
        "{:#?}",
        lab.log_of(Profile::Lmtp)
    );
}

/// On submission, swaks pipelines inside verified TLS after AUTH: the EHLO inside TLS offers
/// REQUIRETLS (it did not before TLS), the group is logged as one, marked tls, and the
/// session's verdict is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_pipelines_inside_tls_where_requiretls_is_offered() {
    if !have_swaks() {
        return;
    }
    let lab = TestLab::start(&[Profile::Submission]).await;
    let ca = lab.lab.ca_file().display().to_string();
    let ran = swaks(args(&[
        "--server",
        "localhost",
        "--port",
        &lab.port(Profile::Submission),
        "--tls",
        "--tls-verify",
        "--tls-ca-path",
        &ca,
        "--pipeline",
        "--auth",
        "PLAIN",
        "--auth-user",
        DEFAULT_USER,
        // A lab password on swaks' command line in a test is harmless.
        "--auth-password",
        DEFAULT_PASSWORD,
        "--from",
        DEFAULT_USER,
        "--to",
        "friend@example.com,other@example.org",
        "--timeout",
        "20",
    ]))
    .await;
    assert_eq!(ran.code, Some(0), "{}", ran.stdout);
    let before_tls = ran
        .stdout
        .split("=== TLS started")
        .next()
        .unwrap_or_default();
    assert!(!before_tls.contains("REQUIRETLS"), "{}", ran.stdout);
    assert!(
        ran.stdout.contains("<~  250-REQUIRETLS") || ran.stdout.contains("<~  250 REQUIRETLS"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("250-SMTPUTF8"), "{}", ran.stdout);
    let verdict = lab.wait_for_verdict(Profile::Submission).await;
    assert!(verdict.contains("VERDICT ok"), "{verdict}");
    let log = lab.log_of(Profile::Submission);
    let group = log
        .iter()
        .position(|line| {
            line.contains("pipelined group: 4 commands in one write (MAIL RCPT RCPT DATA)")
        })
        .unwrap_or_else(|| panic!("{log:#?}"));
    assert!(log[group + 1].contains(" tls   C: MAIL FROM:<"), "{log:#?}");
    assert_eq!(lab.lab.mail().len(), 1);
}
