//! `smtptui diff`, through the binary, on transcripts the binary itself wrote: two runs of an
//! unchanged server are no change however their times and queue ids differ (text against
//! text, and text against JSON); another server's extensions, certificate and replies are
//! named; something that is not a transcript is a usage error. Against the lab, and against
//! Postfix's MX and extensions listeners.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test assertions

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use smtptui::lab::{Lab, LabConfig, Profile};
use support::Run;

/// A greeting, EHLO, STARTTLS, EHLO inside TLS and QUIT: what a server offers, no mail.
const LOOK: &str = "\
S: 220
C: EHLO client.example
S: 250
C: STARTTLS
S: 220
C: EHLO client.example
S: 250
C: QUIT
S: 221
";

/// Runs `scenario` against `target` (the `--ca-file` and `--servername` in `trust`) and keeps
/// the text transcript as `name` in `dir`; with `json`, stdout's JSON events instead.
fn transcript(
    scenario: &str,
    target: &str,
    trust: &[String],
    dir: &Path,
    name: &str,
    json: bool,
) -> PathBuf {
    let path = dir.join(name);
    let run = Run::new(scenario, target)
        .args(["--timeout", "20"])
        .args(trust);
    let out = if json {
        let out = run.arg("--json").run();
        std::fs::write(&path, &out.stdout_bytes).unwrap();
        out
    } else {
        let (run, written) = run.transcript();
        let out = run.run();
        std::fs::copy(written, &path).unwrap();
        out
    };
    assert!(matches!(out.code, Some(0 | 1)), "{}", out.dump());
    path
}

fn diff(before: &Path, after: &Path) -> (Option<i32>, String) {
    let out = Command::new(support::bin())
        .args([
            "diff",
            &before.display().to_string(),
            &after.display().to_string(),
        ])
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn lab() -> Lab {
    let mut config = LabConfig::ephemeral(vec![Profile::Mx, Profile::Submission]);
    config.log = std::sync::Arc::new(|_| {});
    Lab::start(config).await.expect("lab starts")
}

/// The lab's MX twice is no change, in text and in JSON; its submission profile offers AUTH
/// inside TLS where the MX does not, and that is what diff names (exit 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_server_is_no_change_and_another_one_is_named() {
    let lab = lab().await;
    let dir = tempfile::tempdir().unwrap();
    let trust = vec![
        "--ca-file".to_owned(),
        lab.ca_file().display().to_string(),
        "--servername".to_owned(),
        "localhost".to_owned(),
    ];
    let mx = format!("127.0.0.1:{}", lab.addr(Profile::Mx).unwrap().port());
    let submission = format!(
        "127.0.0.1:{}",
        lab.addr(Profile::Submission).unwrap().port()
    );
    let d = dir.path().to_owned();
    let (first, second, json, other) = tokio::task::spawn_blocking(move || {
        (
            transcript(LOOK, &mx, &trust, &d, "first.txt", false),
            transcript(LOOK, &mx, &trust, &d, "second.txt", false),
            transcript(LOOK, &mx, &trust, &d, "third.jsonl", true),
            transcript(LOOK, &submission, &trust, &d, "submission.txt", false),
        )
    })
    .await
    .unwrap();
    assert_ne!(
        std::fs::read_to_string(&first).unwrap(),
        std::fs::read_to_string(&second).unwrap(),
        "two runs differ in their times and ports"
    );
    let (code, out) = diff(&first, &second);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("no change in the server's behaviour"), "{out}");
    let (code, out) = diff(&first, &json);
    assert_eq!(code, Some(0), "text against JSON: {out}");

    let (code, out) = diff(&first, &other);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("extension added inside TLS: AUTH"), "{out}");
}

/// Postfix's MX and its extensions listener: SIZE changed and SMTPUTF8 added are named; the
/// same listener twice is no change although each message got its own queue id.
#[test]
fn postfix_listeners_differ_in_their_extensions_not_in_their_queue_ids() {
    let Some(postfix) = support::postfix::postfix() else {
        return;
    };
    if postfix.get("EXTENSIONS_PORT").is_empty() {
        eprintln!("skipping: the Postfix environment predates its extensions listener");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let trust = vec![
        "--ca-file".to_owned(),
        postfix.get("CA_FILE").to_owned(),
        "--servername".to_owned(),
        postfix.get("TLS_SERVER_NAME").to_owned(),
    ];
    let host = postfix.get("SMTP_HOST");
    let mx = format!("{host}:{}", postfix.port("MX_PORT"));
    let extensions = format!("{host}:{}", postfix.port("EXTENSIONS_PORT"));
    let mail = smtptui::scenario::builtin::find("mx-starttls")
        .unwrap()
        .text;
    let first = transcript(mail, &mx, &trust, dir.path(), "first.txt", false);
    let second = transcript(mail, &mx, &trust, dir.path(), "second.txt", false);
    let other = transcript(mail, &extensions, &trust, dir.path(), "other.txt", false);
    let queued = |path: &Path| {
        let text = std::fs::read_to_string(path).unwrap();
        let at = text.find("queued as ").expect("queued") + "queued as ".len();
        text[at..].split_whitespace().next().unwrap().to_owned()
    };
    assert_ne!(queued(&first), queued(&second));
    let (code, out) = diff(&first, &second);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = diff(&first, &other);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("extension changed before TLS: SIZE 10240000 -> SIZE 1000000"),
        "{out}"
    );
    assert!(
        out.contains("extension added before TLS: SMTPUTF8"),
        "{out}"
    );
}

/// A file that is no transcript, or that is missing, is a usage error naming it.
#[test]
fn something_that_is_not_a_transcript_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "just some notes\n").unwrap();
    let (code, out) = diff(&notes, &notes);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("notes.txt: no reply from a server in it"),
        "{out}"
    );
    let (code, out) = diff(&dir.path().join("missing.txt"), &notes);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("missing.txt"), "{out}");
}
