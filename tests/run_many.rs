//! `smtptui run` for CI, through the binary: several scenarios and directories in one run
//! (`--jobs`), a line each in the order given and a tally, the exit status of the first that
//! did not pass, a JUnit report read back by a real JUnit consumer (Python's junitparser,
//! Debian's python3-junitparser), scenarios on standard input, and the scenarios built into
//! the binary, by name, against the lab and against Postfix.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test assertions

mod support;

use std::process::Command;
use std::time::Duration;

use smtptui::lab::{Lab, LabConfig, Profile};
use support::program::Ran;

const DEADLINE: Duration = Duration::from_secs(60);

/// Runs the binary with `args` and `stdin`, bounded by [`DEADLINE`], off the runtime's
/// threads.
async fn smtptui(args: Vec<String>, stdin: &str) -> Ran {
    let mut command = Command::new(support::bin());
    command.args(&args).env_remove("SMTPTUI_PASSWORD");
    let stdin = stdin.as_bytes().to_vec();
    tokio::task::spawn_blocking(move || support::program::run(command, &stdin, DEADLINE))
        .await
        .expect("process thread")
}

async fn lab() -> Lab {
    let mut config = LabConfig::ephemeral(vec![Profile::Mx]);
    config.log = std::sync::Arc::new(|_| {});
    config.error_sleep = Duration::ZERO;
    Lab::start(config).await.expect("lab starts")
}

/// `run` arguments: the scenarios, the lab's MX, and its CA.
fn args(lab: &Lab, scenarios: &[&str], more: &[&str]) -> Vec<String> {
    let mut args = vec!["run".to_owned()];
    args.extend(scenarios.iter().map(|s| (*s).to_owned()));
    args.push(format!(
        "127.0.0.1:{}",
        lab.addr(Profile::Mx).unwrap().port()
    ));
    args.extend(
        [
            "--ca-file",
            &lab.ca_file().display().to_string(),
            "--servername",
            "localhost",
            "--timeout",
            "20",
        ]
        .map(str::to_owned),
    );
    args.extend(more.iter().map(|s| (*s).to_owned()));
    args
}

/// A scenario that says EHLO as `name` and expects `rcpt_reply` to its RCPT.
fn scenario(name: &str, rcpt_reply: &str) -> String {
    format!(
        "# {name}\nS: 220\nC: EHLO {name}.example\nS: 250\nC: MAIL FROM:<a@example.org>\nS: 250\n\
         C: RCPT TO:<bob@lab.test>\nS: {rcpt_reply}\nC: QUIT\nS: 221\n"
    )
}

/// A directory and a file: run in the order given (the directory's files in name order),
/// two at a time, a line each on stderr in that order whatever order they finish in, the
/// transcript of the failing one only, the tally, and exit 1 from the first failure. The
/// JUnit report, read by junitparser, has a failure naming the file, its line, what was
/// expected and the reply that came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_scenarios_report_each_in_order_and_fail_on_the_first_failure() {
    let lab = lab().await;
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("suite");
    std::fs::create_dir(&suite).unwrap();
    std::fs::write(suite.join("b-fails.smtp"), scenario("bravo", "554")).unwrap();
    std::fs::write(suite.join("a-passes.smtp"), scenario("alpha", "250")).unwrap();
    std::fs::write(suite.join("notes.txt"), "not a scenario").unwrap();
    let single = dir.path().join("c-passes.smtp");
    std::fs::write(&single, scenario("charlie", "2xx")).unwrap();
    let junit = dir.path().join("report.xml");
    let ran = smtptui(
        args(
            &lab,
            &[&suite.display().to_string(), &single.display().to_string()],
            &["-j", "2", "--junit", &junit.display().to_string()],
        ),
        "",
    )
    .await;
    assert_eq!(ran.code, Some(1), "{}", ran.dump());
    let lines: Vec<&str> = ran
        .stderr
        .lines()
        .filter(|l| l.starts_with("smtptui: "))
        .collect();
    assert_eq!(lines.len(), 4, "{}", ran.dump());
    assert!(
        lines[0].contains("PASS ") && lines[0].contains("a-passes.smtp"),
        "{}",
        ran.dump()
    );
    assert!(
        lines[1].contains("FAIL ") && lines[1].contains("b-fails.smtp: the expectation on line 8"),
        "{}",
        ran.dump()
    );
    assert!(
        lines[2].contains("PASS ") && lines[2].contains("c-passes.smtp"),
        "{}",
        ran.dump()
    );
    assert!(
        lines[3].contains("3 scenarios: 2 passed, 1 failed, 0 errors, 0 refused by the guard"),
        "{}",
        ran.dump()
    );
    assert!(ran.stdout.contains("EHLO bravo.example"), "{}", ran.dump());
    assert!(!ran.stdout.contains("EHLO alpha.example"), "{}", ran.dump());
    assert!(
        !ran.stdout.contains("EHLO charlie.example"),
        "{}",
        ran.dump()
    );

    let xml = std::fs::read_to_string(&junit).expect("the report is written");
    assert!(
        xml.contains("b-fails.smtp: line 8: expected 554, got 250"),
        "{xml}"
    );
    // A real JUnit consumer reads it back.
    let consumer = r#"
import sys
from junitparser import JUnitXml, Failure, Error
xml = JUnitXml.fromfile(sys.argv[1])
for suite in xml:
    print("suite", suite.name, suite.tests, suite.failures, suite.errors)
    for case in suite:
        kinds = [type(r).__name__ + ":" + (r.message or "") for r in case.result]
        print("case", case.name, case.time > 0, kinds)
"#;
    // Debian's python3-junitparser is for Debian's python3, whatever else is on the PATH.
    let python = if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    match Command::new(python)
        .args(["-c", consumer, &junit.display().to_string()])
        .output()
    {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let suite_line = format!(
                "suite smtptui run 127.0.0.1:{} 3 1 0",
                lab.addr(Profile::Mx).unwrap().port()
            );
            assert!(text.contains(&suite_line), "{text}\n{xml}");
            assert!(text.contains("a-passes.smtp True []"), "{text}");
            assert!(
                text.contains("b-fails.smtp True ['Failure:")
                    && text.contains("line 8: expected 554, got 250"),
                "{text}"
            );
        }
        other => {
            let reason = format!("python3 with junitparser cannot read the report: {other:?}");
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{reason} (scripts/test.sh installs python3-junitparser)");
            }
            eprintln!("skipping the JUnit consumer: {reason}");
        }
    }
}

/// A mistake in the second scenario is reported, with its file and line, before any
/// connection: the first scenario never runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typo_in_any_scenario_stops_the_run_before_the_first_connection() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.smtp");
    let typo = dir.path().join("typo.smtp");
    std::fs::write(&good, scenario("good", "250")).unwrap();
    std::fs::write(&typo, "S: 220\nC: EHLO x\nS; 250\n").unwrap();
    let ran = smtptui(
        vec![
            "run".to_owned(),
            good.display().to_string(),
            typo.display().to_string(),
            format!("127.0.0.1:{}", listener.local_addr().unwrap().port()),
        ],
        "",
    )
    .await;
    assert_eq!(ran.code, Some(2), "{}", ran.dump());
    assert!(
        ran.stderr.contains(&format!("{}:3", typo.display())),
        "{}",
        ran.dump()
    );
    assert!(
        listener.accept().is_err(),
        "nothing connected: {}",
        ran.dump()
    );
}

/// Built-in scenarios run by name or by a unique prefix with no file at hand, their message
/// file included; an ambiguous prefix, an unknown name and a missing path are usage errors
/// that say what exists; `smtptui scenarios NAME` prints the scenario exactly as shipped; a
/// scenario on standard input runs as `stdin`; with --json every object names its scenario.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_scenarios_run_by_name_and_standard_input_is_a_scenario() {
    let lab = lab().await;
    let ran = smtptui(args(&lab, &["mx", "data"], &[]), "").await;
    assert_eq!(ran.code, Some(0), "{}", ran.dump());
    assert!(
        ran.stderr.contains("PASS built-in mx-starttls"),
        "{}",
        ran.dump()
    );
    assert!(
        ran.stderr.contains("PASS built-in data-file"),
        "{}",
        ran.dump()
    );

    // Options may stand between the scenarios and the server, as they always could.
    let mut interleaved = args(&lab, &["mx"], &[]);
    let target = interleaved.remove(2);
    interleaved.insert(2, "--protocol".to_owned());
    interleaved.insert(3, "smtp".to_owned());
    interleaved.insert(4, "data".to_owned());
    interleaved.insert(5, target);
    let ran = smtptui(interleaved, "").await;
    assert_eq!(ran.code, Some(0), "{}", ran.dump());
    assert!(
        ran.stderr.contains("2 scenarios: 2 passed"),
        "{}",
        ran.dump()
    );
    let ran = smtptui(vec!["run".into(), "mx".into()], "").await;
    assert_eq!(ran.code, Some(2), "{}", ran.dump());
    assert!(
        ran.stderr.contains("give the scenario and then the server"),
        "{}",
        ran.dump()
    );

    let ran = smtptui(args(&lab, &["d"], &[]), "").await;
    assert_eq!(ran.code, Some(2), "{}", ran.dump());
    assert!(
        ran.stderr.contains("data-file, dsn-smtputf8"),
        "{}",
        ran.dump()
    );
    let ran = smtptui(args(&lab, &["sumbission"], &[]), "").await;
    assert_eq!(ran.code, Some(2), "{}", ran.dump());
    assert!(
        ran.stderr.contains("smtptui scenarios lists them"),
        "{}",
        ran.dump()
    );
    let ran = smtptui(args(&lab, &["nowhere/mx.smtp"], &[]), "").await;
    assert_eq!(ran.code, Some(2), "{}", ran.dump());
    assert!(
        ran.stderr
            .contains("nowhere/mx.smtp: no such scenario file"),
        "{}",
        ran.dump()
    );

    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/submission-starttls.smtp"),
    )
    .unwrap();
    let ran = smtptui(vec!["scenarios".into(), "submission".into()], "").await;
    assert_eq!(ran.code, Some(0), "{}", ran.dump());
    assert_eq!(ran.stdout, shipped);
    let ran = smtptui(vec!["scenarios".into()], "").await;
    assert!(ran.stdout.contains("lmtp "), "{}", ran.dump());

    let ran = smtptui(args(&lab, &["-"], &[]), &scenario("piped", "250")).await;
    assert_eq!(ran.code, Some(0), "{}", ran.dump());
    assert!(ran.stderr.contains("PASS stdin"), "{}", ran.dump());
    assert!(ran.stdout.contains("EHLO piped.example"), "{}", ran.dump());

    let ran = smtptui(
        args(&lab, &["-", "mx"], &["--json"]),
        &scenario("json", "250"),
    )
    .await;
    assert_eq!(ran.code, Some(0), "{}", ran.dump());
    let mut named = std::collections::BTreeSet::new();
    for line in ran.stdout.lines() {
        let object: serde_json::Value = serde_json::from_str(line).expect(line);
        named.insert(object["scenario"].as_str().expect(line).to_owned());
    }
    assert_eq!(
        named.into_iter().collect::<Vec<_>>(),
        ["built-in mx-starttls", "stdin"],
        "{}",
        ran.dump()
    );
}

/// The built-in scenarios that send files, by name against Postfix: the message file built
/// into the binary is sent and taken, by DATA and in BDAT chunks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_scenarios_with_message_files_pass_against_postfix() {
    let Some(postfix) = support::postfix::postfix() else {
        return;
    };
    if postfix.get("EXTENSIONS_PORT").is_empty() {
        eprintln!("skipping: the Postfix environment predates its extensions listener");
        return;
    }
    let ran = smtptui(
        vec![
            "run".into(),
            "data-file".into(),
            "bdat".into(),
            "pipelining".into(),
            format!(
                "{}:{}",
                postfix.get("SMTP_HOST"),
                postfix.port("EXTENSIONS_PORT")
            ),
            "--jobs".into(),
            "3".into(),
        ],
        "",
    )
    .await;
    assert_eq!(ran.code, Some(0), "{}", ran.dump());
    assert!(
        ran.stderr
            .contains("3 scenarios: 3 passed, 0 failed, 0 errors, 0 refused by the guard"),
        "{}",
        ran.dump()
    );
}

/// One scenario prints its transcript as it runs, and `--junit` still reports it: the
/// failure with its line, what was expected and the reply that came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_scenario_shows_its_transcript_and_writes_its_junit_report() {
    let lab = lab().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("only.smtp");
    std::fs::write(&file, scenario("solo", "554")).unwrap();
    let junit = dir.path().join("report.xml");
    let ran = smtptui(
        args(
            &lab,
            &[&file.display().to_string()],
            &["--junit", &junit.display().to_string()],
        ),
        "",
    )
    .await;
    assert_eq!(ran.code, Some(1), "{}", ran.dump());
    assert!(ran.stdout.contains("EHLO solo.example"), "{}", ran.dump());
    let xml = std::fs::read_to_string(&junit).expect("the report is written");
    assert!(
        xml.contains("only.smtp: line 8: expected 554, got 250"),
        "{xml}"
    );
    assert!(
        xml.contains("EHLO solo.example"),
        "the transcript is kept: {xml}"
    );
}
