//! The grade profile against a real sender: the Postfix of `scripts/sender-env.sh`, one smtp
//! transport per `smtp_tls_security_level` (none, may, encrypt, verify, dane), each with its
//! own EHLO name, all delivering to one `smtptui lab --profile grade` started here as a user
//! would. The test queues a message per level, flushes the queue (so Postfix retries at once
//! instead of waiting), and repeats while the lab's JSON report still lacks a trial; then the
//! report must name, for each sender, exactly the level it was configured with, and show that
//! it retried after the 450. DANE runs for real: the TLSA record of the lab's MX key is
//! published in a signed zone, and Postfix resolves through a validating Unbound.

#![allow(clippy::panic)] // panicking is how a test fails

mod support;
#[path = "support/domain.rs"]
#[allow(dead_code)] // the policy host is tests/domain.rs's
mod support_domain;

use std::collections::HashMap;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::mta::{Mta, sender};
use support_domain::domain_env;

/// Each sender's EHLO name, the domain it delivers to, and the level its transport has.
const LEVELS: [&str; 5] = ["none", "may", "encrypt", "verify", "dane"];
/// Rounds of queueing and flushing: seven trials and the retry need eight sessions per sender.
const MAX_ROUNDS: usize = 30;
/// How long a round waits for a session of every sender still in progress before flushing
/// again (a bound on the wait, not an assertion).
const ROUND_WAIT: Duration = Duration::from_secs(20);

/// The lab process, stopped (SIGTERM, as Ctrl-C) when the test ends however it ends.
struct LabProcess(Child);

impl LabProcess {
    /// Stops it as Ctrl-C does and waits for it to exit (once: its pid is not ours after).
    fn stop(&mut self) {
        if matches!(self.0.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let _ = self.0.wait();
    }
}

impl Drop for LabProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

fn postfix_tool(tool: &str, config: &str, args: &[&str]) -> String {
    let flag = if tool == "sendmail" { "-C" } else { "-c" };
    let output = Command::new(tool)
        .arg(flag)
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn queue_message(config: &str, level: &str, round: usize) {
    let mut child = Command::new("sendmail")
        .args(["-C", config, "-f", "grader@sender.grade.test"])
        .arg(format!("rcpt@{level}.grade.test"))
        .stdin(Stdio::piped())
        .spawn()
        .expect("sendmail");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        write!(
            stdin,
            "Subject: grade {level} {round}\n\nA message for the grading MX.\n"
        )
        .expect("message");
    }
    assert!(child.wait().expect("sendmail").success(), "sendmail failed");
}

fn read_report(path: &Path) -> HashMap<String, Value> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    let report: Value = serde_json::from_str(&text).expect("the report is JSON");
    report["senders"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| Some((s["ehlo"].as_str()?.to_owned(), s.clone())))
        .collect()
}

fn ehlo(level: &str) -> String {
    format!("{level}.sender.grade.test")
}

fn finished(report: &HashMap<String, Value>, level: &str) -> bool {
    report.get(&ehlo(level)).is_some_and(|s| {
        s["missing"].as_array().is_some_and(Vec::is_empty) && s["retry"] == "retried"
    })
}

fn sessions(report: &HashMap<String, Value>, level: &str) -> u64 {
    report
        .get(&ehlo(level))
        .and_then(|s| s["sessions"].as_u64())
        .unwrap_or(0)
}

fn start_lab(env: &Mta, dir: &Path) -> LabProcess {
    let port = env.port("GRADE_PORT");
    let log = std::fs::File::create(dir.join("lab.log")).expect("log");
    let child = Command::new(env!("CARGO_BIN_EXE_smtptui"))
        .args(["lab", "--profile", "grade", "--quiet"])
        .arg("--listen")
        .arg(format!("grade=127.0.0.1:{port}"))
        .args(["--grade-name", env.get("MX_NAME")])
        .args(["--grade-ca", env.get("CA_FILE")])
        .args(["--grade-ca-key", env.get("CA_KEY")])
        .args(["--grade-key", env.get("MX_KEY")])
        .arg("--grade-report")
        .arg(dir.join("report.json"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("smtptui lab");
    let lab = LabProcess(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the lab never listened on {port}: {}",
            std::fs::read_to_string(dir.join("lab.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    lab
}

#[test]
fn postfix_senders_are_graded_at_the_level_they_were_given() {
    let Some(env) = sender() else { return };
    let config = env.get("SENDER_CONFIG_DIR");
    // One run at a time per instance (test runs of other checkouts share it): the queue is
    // emptied and the lab's port taken for the whole run.
    let lock = std::fs::File::create(Path::new(env.get("SENDER_DIR")).join("test.lock"))
        .expect("lock file");
    lock.lock().expect("lock");
    let dir = tempfile::tempdir().expect("tempdir");
    // Mail an earlier run left queued would count against this run's senders.
    postfix_tool("postsuper", config, &["-d", "ALL"]);
    let mut lab = start_lab(env, dir.path());
    let report_path = dir.path().join("report.json");
    // The start table gives the record the zone must publish: the one sender-env.sh put there.
    let record = format!(
        "_{}._tcp.{}. IN TLSA 3 1 1 {}",
        env.get("GRADE_PORT"),
        env.get("MX_NAME"),
        env.get("TLSA_SHA256")
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // The table is printed once every listener is up: wait for its end.
        let table = std::fs::read_to_string(dir.path().join("lab.log")).unwrap_or_default();
        if table.contains("Session log") {
            assert!(table.contains(&record), "{record} not in:\n{table}");
            break;
        }
        assert!(Instant::now() < deadline, "no start table:\n{table}");
        std::thread::sleep(Duration::from_millis(50));
    }

    for round in 0..MAX_ROUNDS {
        let report = read_report(&report_path);
        let pending: Vec<&str> = LEVELS
            .into_iter()
            .filter(|level| !finished(&report, level))
            .collect();
        if pending.is_empty() {
            break;
        }
        let queue = postfix_tool("postqueue", config, &["-j"]);
        for level in &pending {
            // A message still queued (deferred by a trial) is retried; a delivered one is
            // replaced, so every round brings each sender back once.
            if !queue.contains(&format!("@{level}.grade.test\"")) {
                queue_message(config, level, round);
            }
        }
        let before: Vec<u64> = pending.iter().map(|l| sessions(&report, l)).collect();
        postfix_tool("postqueue", config, &["-f"]);
        let deadline = Instant::now() + ROUND_WAIT;
        while Instant::now() < deadline {
            let now = read_report(&report_path);
            if pending
                .iter()
                .zip(&before)
                .all(|(level, before)| sessions(&now, level) > *before)
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    let report = read_report(&report_path);
    let log = || {
        format!(
            "lab log:\n{}\nPostfix log:\n{}",
            std::fs::read_to_string(dir.path().join("lab.log")).unwrap_or_default(),
            std::fs::read_to_string(env.get("MAILLOG")).unwrap_or_default()
        )
    };
    let mut wrong = Vec::new();
    for level in LEVELS {
        let Some(graded) = report.get(&ehlo(level)) else {
            wrong.push(format!("{level}: never graded"));
            continue;
        };
        if graded["state"] != "graded" || graded["level"] != level || graded["retry"] != "retried" {
            wrong.push(format!(
                "{level}: {}",
                serde_json::to_string_pretty(graded).unwrap_or_default()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}\n{}", wrong.join("\n"), log());
    // What the instructor's screen says when the lab stops: each sender's level.
    lab.stop();
    let screen = std::fs::read_to_string(dir.path().join("lab.log")).unwrap_or_default();
    for level in LEVELS {
        let line = format!(
            "smtptui lab: grade: 127.0.0.1 EHLO {}: behaves like smtp_tls_security_level = {}; retried after 4xx",
            ehlo(level),
            if level == "verify" {
                "verify (or secure)"
            } else {
                level
            }
        );
        assert!(screen.contains(&line), "{line} not in:\n{screen}");
    }

    // The domain audit reads the same report: each sender a finding with its level.
    if let Some(domain) = domain_env() {
        let findings = sending_findings(&audit_json(domain, &report_path));
        for (level, verdict) in [
            ("none", "warn"),
            ("may", "warn"),
            ("encrypt", "warn"),
            ("verify", "pass"),
            ("dane", "pass"),
        ] {
            let finding = findings
                .iter()
                .find(|f| f["scope"]["sender"] == ehlo(level))
                .unwrap_or_else(|| panic!("no sending finding for {level}: {findings:?}"));
            assert_eq!(finding["verdict"], verdict, "{finding}");
            let why = finding["why"].as_str().unwrap_or_default();
            assert!(
                why.starts_with(&format!("behaved like smtp_tls_security_level = {level}")),
                "{why}"
            );
        }
    }
}

fn audit_json(domain: &support_domain::DomainEnv, report: &Path) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_smtptui"))
        .args(["audit", "good.test", "--json"])
        .args(domain.audit_args())
        .arg("--sending-report")
        .arg(report)
        .stdin(Stdio::null())
        .output()
        .expect("smtptui audit");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "the audit printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn sending_findings(audit: &Value) -> Vec<Value> {
    audit["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["id"] == "sending")
        .cloned()
        .collect()
}

/// A report as another grading lab (or anyone) may have written it: the audit takes the
/// grade as given, says where the evidence names no level, and never prints a sender's name
/// raw; a file that is no report is a usage error naming it.
#[test]
fn the_domain_audit_reads_a_grade_report_and_escapes_it() {
    let Some(domain) = domain_env() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("report.json");
    std::fs::write(
        &report,
        serde_json::json!({
            "mx_name": "mx.grade.test",
            "tlsa": "3 1 1 00",
            "senders": [
                {"address": "192.0.2.1", "ehlo": "paint\u{1b}[31m.example", "sessions": 3,
                 "state": "incomplete", "level": null, "retry": "not-tested",
                 "summary": "4 trial(s) to go"},
                {"address": "192.0.2.2", "ehlo": "odd.example", "sessions": 9,
                 "state": "contradictory", "level": null, "retry": "retried",
                 "summary": "matches no smtp_tls_security_level: refused: delivered in cleartext"},
            ],
        })
        .to_string(),
    )
    .expect("report");
    let findings = sending_findings(&audit_json(domain, &report));
    assert_eq!(findings.len(), 2, "{findings:?}");
    assert_eq!(findings[0]["verdict"], "info", "{:?}", findings[0]);
    assert_eq!(findings[0]["scope"]["sender"], "paint\\x1b[31m.example");
    assert_eq!(findings[1]["verdict"], "warn", "{:?}", findings[1]);
    assert!(
        findings[1]["why"]
            .as_str()
            .is_some_and(|w| w.starts_with("behaved like no smtp_tls_security_level")),
        "{:?}",
        findings[1]
    );
    // The text report too: no escape byte reaches the terminal.
    let text = Command::new(env!("CARGO_BIN_EXE_smtptui"))
        .args(["audit", "good.test"])
        .args(domain.audit_args())
        .arg("--sending-report")
        .arg(&report)
        .output()
        .expect("smtptui audit");
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains("sending: sender paint\\x1b[31m.example [192.0.2.1]"),
        "{stdout}"
    );
    assert!(!stdout.contains('\u{1b}'), "{stdout}");

    std::fs::write(&report, "not json").expect("write");
    let bad = Command::new(env!("CARGO_BIN_EXE_smtptui"))
        .args(["audit", "good.test"])
        .args(domain.audit_args())
        .arg("--sending-report")
        .arg(&report)
        .output()
        .expect("smtptui audit");
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("--sending-report") && stderr.contains("is not a grade report"),
        "{stderr}"
    );
}
