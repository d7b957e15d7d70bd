//! `smtptui demo`: the tool meeting the lab, with nothing installed and nothing configured.
//!
//! It starts a lab in-process on free loopback ports and runs two sessions against its
//! `submission` listener with the same engine and the same transcript rendering as
//! `smtptui run`:
//! 1. the motivating moment: `AUTH PLAIN` before STARTTLS, which the credential guard refuses
//!    before a byte of it leaves (the lab's own log then shows it never arrived);
//! 2. the right way: EHLO, STARTTLS with the certificate verified against the lab CA, EHLO
//!    again, AUTH PLAIN, one message, QUIT.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::accounts::{DEFAULT_PASSWORD, DEFAULT_USER};
use super::{Lab, LabConfig, Profile};
use crate::runner::{self, Outcome, exit};
use crate::scenario::Scenario;
use crate::secret::{Credentials, Secret};
use crate::session::EventSink;
use crate::transcript::{Event, Palette};

/// Where the demo's text goes, one line per call.
pub type Printer = Arc<dyn Fn(&str) + Send + Sync>;

const TOO_EARLY: &str = "\
S: 220
C: EHLO demo.client
S: 250 STARTTLS
C: AUTH PLAIN
S: 235
";

const SUBMISSION: &str = "\
S: 220
C: EHLO demo.client
S: 250 STARTTLS
C: STARTTLS
S: 220
C: EHLO demo.client
S: 250 AUTH
C: AUTH PLAIN
S: 235
C: MAIL FROM:<student@lab.test>
S: 250
C: RCPT TO:<friend@example.com>
S: 250
C: DATA
S: 354
C: Subject: hello from the smtptui demo
C:
C: This message crossed only inside verified TLS, after AUTH.
C: .
S: 250 queued as
C: QUIT
S: 221
";

/// Runs the demo and returns the process exit status: 0 when the guard refused the early AUTH
/// and the proper session passed, otherwise the failing session's `smtptui run` status.
pub async fn run(palette: Palette, print: Printer) -> i32 {
    let lab_log: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut config = LabConfig::ephemeral(vec![Profile::Submission]);
    let collected = lab_log.clone();
    config.log = Arc::new(move |line| {
        collected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line.to_owned());
    });
    config.command_timeout = Duration::from_secs(30);
    let lab = match Lab::start(config).await {
        Ok(lab) => lab,
        Err(error) => {
            print(&format!("smtptui demo: cannot start the lab: {error}"));
            return exit::FAILURE;
        }
    };
    let code = sessions(&lab, palette, &print, &lab_log).await;
    lab.shutdown().await;
    code
}

async fn sessions(
    lab: &Lab,
    palette: Palette,
    print: &Printer,
    lab_log: &Arc<Mutex<Vec<String>>>,
) -> i32 {
    let Some(mut config) = lab.client_config(Profile::Submission) else {
        print("smtptui demo: the lab has no submission listener");
        return exit::FAILURE;
    };
    config.timeout = Duration::from_secs(15);
    let addr = crate::session::format_target(&config.host, config.port);
    let credentials = Credentials {
        user: DEFAULT_USER.to_owned(),
        secret: Secret::new(DEFAULT_PASSWORD.to_owned()),
    };
    print(&format!(
        "The lab is up: profile submission on {addr} (STARTTLS required, as Postfix with \
         smtpd_tls_security_level=encrypt and smtpd_tls_auth_only=yes)."
    ));
    print(&format!(
        "Its CA, made a moment ago: {}",
        lab.ca_file().display()
    ));
    print("");
    print("== 1. AUTH PLAIN before STARTTLS: what telnet would send in cleartext ==");
    let Some(early) = parse("too-early.smtp", TOO_EARLY, print) else {
        return exit::USAGE;
    };
    let outcome = runner::run(
        &early,
        config.clone(),
        Some(credentials.clone()),
        sink(palette, print.clone()),
    )
    .await;
    print(&outcome.summary(&early.name));
    let refused = matches!(outcome, Outcome::GuardRefused { .. });
    if refused {
        print(
            "The credential guard stopped AUTH before any byte of it left. The lab's log of that session:",
        );
        wait_for_session_end(lab_log).await;
        for line in lab_log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            print(&format!("    lab| {line}"));
        }
    } else {
        print("unexpected: the guard did not refuse AUTH on a cleartext connection");
    }
    print("");
    print("== 2. The right way: STARTTLS, certificate verified against the lab CA, then AUTH ==");
    let Some(good) = parse("submission.smtp", SUBMISSION, print) else {
        return exit::USAGE;
    };
    let outcome = runner::run(
        &good,
        config,
        Some(credentials),
        sink(palette, print.clone()),
    )
    .await;
    print(&outcome.summary(&good.name));
    for message in lab.mail().messages() {
        print(&format!(
            "The lab accepted message {} from <{}> ({} bytes, authenticated as {}, {}).",
            message.id,
            message.from,
            message.data.len(),
            message.authenticated_as.as_deref().unwrap_or("nobody"),
            if message.tls {
                "over TLS"
            } else {
                "in cleartext"
            }
        ));
    }
    match (refused, outcome.exit_code()) {
        (true, exit::PASSED) => {
            print("");
            print(
                "Next: 'smtptui lab' runs this server and eight others (MX, legacy, implicit TLS, LMTP, a slow MX and three attackers) for you to explore.",
            );
            exit::PASSED
        }
        (false, _) => exit::FAILURE,
        (true, code) => code,
    }
}

/// Waits briefly until the lab logged the verdict that ends the refused session, so its log is
/// complete.
async fn wait_for_session_end(lab_log: &Arc<Mutex<Vec<String>>>) {
    for _ in 0..50 {
        let ended = lab_log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|line| line.contains(" VERDICT "));
        if ended {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn parse(name: &str, text: &str, print: &Printer) -> Option<Scenario> {
    match Scenario::parse(name, text) {
        Ok(scenario) => Some(scenario),
        Err(error) => {
            print(&format!("smtptui demo: built-in scenario broken: {error}"));
            None
        }
    }
}

fn sink(palette: Palette, print: Printer) -> EventSink {
    Box::new(move |event: Event| {
        for line in event.to_text_lines(palette) {
            print(&line);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_scenarios_parse() {
        assert!(Scenario::parse("a", TOO_EARLY).is_ok());
        let good = Scenario::parse("b", SUBMISSION).expect("parses");
        assert_eq!(good.auth_steps().count(), 1);
    }
}
