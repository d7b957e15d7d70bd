//! `smtptui bench` through the binary, against the lab in this process: many full
//! STARTTLS+AUTH+message sessions whose counts add up in the JSON summary, a scenario whose
//! expectation fails grouped by the reply that came and a non-zero exit, and the caps and the
//! loopback guard as usage errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test assertions

mod support;

use std::process::{Command, Output};
use std::time::Duration;

use smtptui::lab::accounts::{DEFAULT_PASSWORD, DEFAULT_USER};
use smtptui::lab::{Lab, LabConfig, Profile};

async fn lab() -> Lab {
    let mut config = LabConfig::ephemeral(vec![Profile::Submission]);
    config.log = std::sync::Arc::new(|_| {});
    config.error_sleep = Duration::ZERO;
    Lab::start(config).await.expect("lab starts")
}

/// Runs the binary off the runtime's threads (the lab serves on them meanwhile).
async fn smtptui(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(support::bin())
            .args(&args)
            .env_remove("SMTPTUI_PASSWORD")
            .output()
            .expect("spawn")
    })
    .await
    .expect("process thread")
}

fn dump(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `bench SCENARIO` against the lab's submission listener, with its CA and the workshop
/// account, and `more`.
fn args(lab: &Lab, scenario: &str, password: &std::path::Path, more: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "bench".into(),
        scenario.into(),
        format!(
            "127.0.0.1:{}",
            lab.addr(Profile::Submission).unwrap().port()
        ),
        "--ca-file".into(),
        lab.ca_file().display().to_string(),
        "--servername".into(),
        "localhost".into(),
        "--user".into(),
        DEFAULT_USER.into(),
        "--password-file".into(),
        password.display().to_string(),
        "--timeout".into(),
        "30".into(),
    ];
    args.extend(more.iter().map(|s| (*s).to_owned()));
    args
}

fn password_file(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("password");
    std::fs::write(&path, DEFAULT_PASSWORD).unwrap();
    path
}

/// 300 sessions of the built-in submission scenario (STARTTLS, AUTH PLAIN, a message, QUIT),
/// 20 at a time: every one passes, the lab holds 300 messages, every step was timed in every
/// session with ordered percentiles, and nothing of a transcript reaches stdout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sessions_all_pass_and_the_counts_add_up() {
    let lab = lab().await;
    let dir = tempfile::tempdir().unwrap();
    let password = password_file(&dir);
    let out = smtptui(args(
        &lab,
        "submission-starttls",
        &password,
        &["-c", "20", "-n", "300", "--json", "--quiet"],
    ))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
    let summary: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", dump(&out)));
    assert_eq!(summary["sessions"], 300, "{summary}");
    assert_eq!(summary["passed"], 300, "{summary}");
    assert_eq!(summary["failed"], 0, "{summary}");
    assert_eq!(summary["failures"], serde_json::json!([]), "{summary}");
    for step in [
        "connect", "greeting", "tls", "auth", "message", "quit", "session",
    ] {
        let s = &summary["steps"][step];
        assert_eq!(s["count"], 300, "{step}: {summary}");
        let p = |k: &str| s[k].as_f64().unwrap();
        assert!(
            p("p50_ms") <= p("p90_ms") && p("p90_ms") <= p("p99_ms") && p("p99_ms") <= p("max_ms"),
            "{step}: {summary}"
        );
    }
    let histogram: u64 = summary["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(histogram, 300, "{summary}");
    // The lab keeps the latest 100 messages; each one is a message of this run.
    assert_eq!(lab.mail().messages().len(), 100);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains(DEFAULT_PASSWORD), "{}", dump(&out));
}

/// A scenario that expects its RCPT accepted without AUTH, which the submission server refuses: every session fails,
/// the failures are one group naming the line, the expectation and the reply that came, the
/// text summary says so, and the exit status is 1 as for `smtptui run`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_grouped_by_reply_and_fail_the_run() {
    let lab = lab().await;
    let dir = tempfile::tempdir().unwrap();
    let password = password_file(&dir);
    let scenario = dir.path().join("wrong.smtp");
    std::fs::write(
        &scenario,
        "S: 220\nC: EHLO load.example\nS: 250\nC: STARTTLS\nS: 220\nC: EHLO load.example\n\
         S: 250\nC: MAIL FROM:<a@lab.test>\nS: 250\nC: RCPT TO:<bob@lab.test>\nS: 250\nC: QUIT\nS: 221\n",
    )
    .unwrap();
    let scenario = scenario.display().to_string();
    let out = smtptui(args(
        &lab,
        &scenario,
        &password,
        &["-c", "4", "-n", "40", "--json"],
    ))
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", dump(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["sessions"], 40, "{summary}");
    assert_eq!(summary["passed"], 0, "{summary}");
    assert_eq!(summary["failed"], 40, "{summary}");
    let failures = summary["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{summary}");
    assert_eq!(failures[0]["count"], 40, "{summary}");
    let reason = failures[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("line 11: expected 250, got 5"),
        "{reason}"
    );

    let out = smtptui(args(
        &lab,
        &scenario,
        &password,
        &["-c", "2", "-n", "6", "--quiet"],
    ))
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", dump(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("6 sessions in "), "{text}");
    assert!(text.contains("0 passed, 6 failed"), "{text}");
    assert!(
        text.contains("      6 line 11: expected 250, got 5"),
        "{text}"
    );
}

/// Asking for more than the caps, a zero or overlong duration, and a server that is not on
/// this machine without --allow-remote are usage errors (exit 2) that name the fix; nothing
/// connects.
#[test]
fn caps_and_the_loopback_guard_are_usage_errors() {
    let run = |args: &[&str]| {
        let out = Command::new(support::bin())
            .arg("bench")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for (args, says) in [
        (&["mx-starttls", "127.0.0.1:9", "-c", "1001"][..], "1001"),
        (&["mx-starttls", "127.0.0.1:9", "-c", "0"][..], "0"),
        (
            &["mx-starttls", "127.0.0.1:9", "-n", "1000001"][..],
            "1000001",
        ),
        (
            &["mx-starttls", "127.0.0.1:9", "--duration", "61m"][..],
            "up to 1h",
        ),
        (
            &["mx-starttls", "127.0.0.1:9", "--duration", "0"][..],
            "duration",
        ),
        (&["mx-starttls", "192.0.2.1:25"][..], "--allow-remote"),
        (
            &["mx-starttls", "mail.example.com:25"][..],
            "--allow-remote",
        ),
    ] {
        let (code, stderr) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

/// Ctrl-C (SIGINT) without the screen: no new session starts, those open finish, the summary
/// counts what ran, and the exit status is 130, since the run asked for was not done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_summarises_and_says_so() {
    use std::io::{BufRead as _, BufReader, Read as _};
    let lab = lab().await;
    let dir = tempfile::tempdir().unwrap();
    let password = password_file(&dir);
    let args = args(
        &lab,
        "submission-starttls",
        &password,
        &["-c", "2", "-n", "1000000", "--no-tui", "--json"],
    );
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(support::bin())
            .args(&args)
            .env_remove("SMTPTUI_PASSWORD")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        // The first progress line says the run is under way.
        stderr.read_line(&mut seen).unwrap();
        let killed = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        stderr.read_to_string(&mut seen).unwrap();
        let mut stdout = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        (child.wait().unwrap().code(), stdout, seen)
    })
    .await
    .unwrap();
    assert_eq!(code, Some(130), "{stdout}\n{stderr}");
    assert!(stderr.contains("interrupted: no new sessions"), "{stderr}");
    assert!(stderr.contains("stopped by hand after"), "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let sessions = summary["sessions"].as_u64().unwrap();
    assert!(sessions > 0 && sessions < 1_000_000, "{summary}");
    assert_eq!(summary["passed"].as_u64().unwrap(), sessions, "{summary}");
}
