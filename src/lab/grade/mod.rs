//! The `grade` profile: the lab as the MX of a test domain, grading the **sender** that
//! delivers to it.
//!
//! Each sender (what stays the same across its retries: its address and EHLO name) meets a
//! sequence of [`Trial`]s, one per session: a good certificate, STARTTLS stripped, STARTTLS
//! refused, an untrusted certificate, a wrong name, a certificate only DANE vouches for, and
//! a temporary failure. What it did in each is recorded ([`Observed`]), and [`infer::grade`]
//! says which Postfix `smtp_tls_security_level` it behaved like. After the last trial the
//! sender is served as by an honest MX (the good certificate), and a session that brings back
//! the message that got the 4xx shows it retried.
//!
//! The pieces: [`infer`] (pure: outcomes in, grade out), [`certs`] (the four certificates
//! and the TLSA record of the MX key), and [`GradeBoard`] here, which hands each session its
//! trial, judges the session when it ends, logs the grade and keeps the JSON report file.

pub mod certs;
pub mod infer;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

pub use certs::GradeTls;
pub use infer::{Grade, Observed, Outcome, Retry, SecurityLevel, Trial, Verdict};

use crate::proto::escape::escape_str;

/// Most senders remembered; beyond it new ones are served honestly and not graded.
pub const MAX_SENDERS: usize = 1000;
/// Most outcomes remembered per sender (a sender retrying for days repeats trials).
const MAX_OBSERVED: usize = 64;
/// Most recipients remembered per session for recognising a retry.
const MAX_ENVELOPES: usize = 8;

/// A sender as the lab tells it apart: its address and the name it gave in EHLO or HELO
/// (lower case). Both stay the same when a mail server retries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SenderKey {
    /// The client's address.
    pub address: IpAddr,
    /// Its EHLO (or HELO) name, lower case.
    pub name: String,
}

/// What a session was given: the sender, and its trial (`None` after the last one: served
/// as an honest MX with the good certificate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// Who.
    pub key: SenderKey,
    /// The trial, if any is left.
    pub trial: Option<Trial>,
}

/// What the server session saw that the grade needs, filled in by it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFacts {
    /// STARTTLS was in an EHLO reply.
    pub starttls_offered: bool,
    /// The client sent STARTTLS and got the 454.
    pub starttls_refused: bool,
    /// TLS was established.
    pub tls: bool,
    /// The handshake after STARTTLS failed, so (an alert's name, or how).
    pub tls_failure: Option<String>,
    /// Messages accepted inside TLS.
    pub messages_tls: u32,
    /// Messages accepted in cleartext.
    pub messages_cleartext: u32,
    /// The 450 of [`Trial::TempFail`] was given (to this many recipients).
    pub tempfailed: u32,
    /// The envelopes tried (sender, recipient), the first few, lower case.
    pub envelopes: Vec<(String, String)>,
}

impl SessionFacts {
    /// Remembers an envelope the client tried (bounded).
    pub fn envelope(&mut self, from: &str, to: &str) {
        let pair = (from.to_ascii_lowercase(), to.to_ascii_lowercase());
        if self.envelopes.len() < MAX_ENVELOPES && !self.envelopes.contains(&pair) {
            self.envelopes.push(pair);
        }
    }
}

/// What the session tells about its trial: an outcome, or nothing conclusive (the sender
/// left before the point the trial tests; it meets the same trial again next time).
pub fn judge(trial: Trial, facts: &SessionFacts) -> Option<Observed> {
    let observed = |outcome, detail: String| {
        Some(Observed {
            trial,
            outcome,
            detail,
        })
    };
    if trial == Trial::TempFail {
        return (facts.tempfailed > 0).then(|| Observed {
            trial,
            outcome: Outcome::TempFailed,
            detail: format!("450 given to {} recipient(s)", facts.tempfailed),
        });
    }
    if facts.messages_tls > 0 {
        return observed(
            Outcome::DeliveredTls,
            "took the certificate and delivered inside TLS".to_owned(),
        );
    }
    if facts.messages_cleartext > 0 {
        let how = if !trial.offers_starttls() {
            "STARTTLS was missing; delivered in cleartext"
        } else if facts.starttls_refused {
            "after the 454 it went on in cleartext"
        } else if facts.tls_failure.is_some() {
            "the handshake failed and it delivered in cleartext"
        } else {
            "STARTTLS was offered but never used"
        };
        return observed(Outcome::DeliveredCleartext, how.to_owned());
    }
    if !trial.offers_starttls() {
        return observed(
            Outcome::Deferred,
            "STARTTLS was missing; left without sending mail".to_owned(),
        );
    }
    if facts.tls {
        return observed(
            Outcome::Deferred,
            "completed the handshake, then left without sending mail (refused the certificate)"
                .to_owned(),
        );
    }
    if let Some(failure) = &facts.tls_failure {
        return observed(
            Outcome::Deferred,
            format!("the TLS handshake failed: {failure}"),
        );
    }
    if facts.starttls_refused {
        return observed(
            Outcome::Deferred,
            "left after the 454 without sending mail".to_owned(),
        );
    }
    None
}

/// Everything the lab knows of one sender.
#[derive(Debug, Clone, Default)]
struct Record {
    /// The order senders first came in.
    first: usize,
    sessions: u32,
    observed: Vec<Observed>,
    /// The envelopes that got the 4xx.
    tempfailed: Vec<(String, String)>,
    retried: bool,
}

impl Record {
    fn next_trial(&self) -> Option<Trial> {
        Trial::ALL
            .into_iter()
            .find(|t| !self.observed.iter().any(|o| o.trial == *t))
    }

    fn grade(&self) -> Grade {
        infer::grade(&self.observed, self.retried)
    }
}

/// How the board was set up, for the report and the start table.
#[derive(Debug, Clone)]
pub struct GradeInfo {
    /// The MX name the good certificate is for.
    pub mx_name: String,
    /// The TLSA record data (`3 1 1 HEX`) of the MX key.
    pub tlsa: String,
    /// Where the JSON report is kept.
    pub report: Option<PathBuf>,
}

/// The grades of every sender, shared by the grade listener's sessions.
pub struct GradeBoard {
    tls: GradeTls,
    info: GradeInfo,
    senders: Mutex<HashMap<SenderKey, Record>>,
}

impl std::fmt::Debug for GradeBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GradeBoard")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl GradeBoard {
    /// A board presenting these certificates, keeping its report at `report`.
    pub fn new(tls: GradeTls, report: Option<PathBuf>) -> Self {
        let info = GradeInfo {
            mx_name: tls.mx_name.clone(),
            tlsa: tls.tlsa.clone(),
            report,
        };
        Self {
            tls,
            info,
            senders: Mutex::new(HashMap::new()),
        }
    }

    /// The MX name, the TLSA record and the report file.
    pub fn info(&self) -> &GradeInfo {
        &self.info
    }

    /// The trial for a session of the sender at `address` that said EHLO/HELO `name`.
    pub fn assign(&self, address: IpAddr, name: &str) -> Ticket {
        let key = SenderKey {
            address,
            name: name.to_ascii_lowercase(),
        };
        let mut senders = self.senders.lock().unwrap_or_else(PoisonError::into_inner);
        let count = senders.len();
        let trial = match senders.get(&key) {
            Some(record) => record.next_trial(),
            None if count < MAX_SENDERS => {
                senders.insert(
                    key.clone(),
                    Record {
                        first: count,
                        ..Record::default()
                    },
                );
                Some(Trial::Good)
            }
            None => None,
        };
        Ticket { key, trial }
    }

    /// The server configuration a session with this ticket presents.
    pub fn tls_for(&self, ticket: &Ticket) -> Arc<rustls::ServerConfig> {
        self.tls.config(ticket.trial.unwrap_or(Trial::Good))
    }

    /// Records how the session went and returns the lines for the lab's log: what the trial
    /// showed and the sender's grade so far. The report file is rewritten when it changed.
    pub fn finish(&self, ticket: &Ticket, facts: &SessionFacts) -> Vec<String> {
        let mut lines = Vec::new();
        let snapshot = {
            let mut senders = self.senders.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(record) = senders.get_mut(&ticket.key) else {
                return lines;
            };
            record.sessions = record.sessions.saturating_add(1);
            let who = format!(
                "{} EHLO {}",
                ticket.key.address,
                escape_str(&ticket.key.name)
            );
            if !record.retried
                && facts
                    .envelopes
                    .iter()
                    .any(|pair| record.tempfailed.contains(pair))
            {
                record.retried = true;
                lines.push(format!(
                    "{who}: came back with the message that got the 4xx (a retry)"
                ));
            }
            match ticket.trial.map(|trial| (trial, judge(trial, facts))) {
                Some((trial, Some(observed))) => {
                    lines.push(format!(
                        "{who}: trial {trial} ({}): {}: {}",
                        trial.describe(),
                        observed.outcome.name(),
                        observed.detail
                    ));
                    if trial == Trial::TempFail {
                        record.tempfailed.extend(facts.envelopes.iter().cloned());
                    }
                    if record.observed.len() < MAX_OBSERVED {
                        record.observed.push(observed);
                    }
                }
                Some((trial, None)) => lines.push(format!(
                    "{who}: trial {trial} inconclusive (the sender left before it was tested); it comes again next time"
                )),
                None => {}
            }
            // After the last trial only a retry is news: an honest session says nothing.
            if !lines.is_empty() {
                lines.push(format!("{who}: GRADE {}", record.grade().summary()));
            }
            report_json(&self.info, &senders)
        };
        if let Some(path) = &self.info.report
            && let Err(error) = write_report(path, &snapshot)
        {
            lines.push(format!(
                "cannot write the grade report {}: {error}",
                path.display()
            ));
        }
        lines
    }

    /// The report as JSON (what the report file holds).
    pub fn json(&self) -> serde_json::Value {
        let senders = self.senders.lock().unwrap_or_else(PoisonError::into_inner);
        report_json(&self.info, &senders)
    }

    /// Each sender's grade in one line, in the order they came (for the end of the lab).
    pub fn summary(&self) -> Vec<String> {
        let senders = self.senders.lock().unwrap_or_else(PoisonError::into_inner);
        let mut records: Vec<(&SenderKey, &Record)> = senders.iter().collect();
        records.sort_by_key(|(_, r)| r.first);
        records
            .into_iter()
            .map(|(key, record)| {
                format!(
                    "{} EHLO {}: {}",
                    key.address,
                    escape_str(&key.name),
                    record.grade().summary()
                )
            })
            .collect()
    }
}

/// One sender's grade as a report file gives it (what the domain audit reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderSummary {
    /// The sender's address.
    pub address: String,
    /// Its EHLO name.
    pub ehlo: String,
    /// The level it behaved like, when the evidence names one.
    pub level: Option<SecurityLevel>,
    /// `graded`, `incomplete` or `contradictory`.
    pub state: String,
    /// Whether it retried after the 450: `retried`, `waiting` or `not-tested`.
    pub retry: String,
    /// The grade in one line.
    pub summary: String,
}

/// Reads the senders' grades from a report file the grade profile wrote, every text in them
/// escaped for a terminal.
///
/// # Errors
/// A message naming the file and what is wrong with it.
pub fn read_report(path: &std::path::Path) -> Result<Vec<SenderSummary>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the grade report {}: {e} (it is written by smtptui lab --profile grade --grade-report FILE)",
            path.display()
        )
    })?;
    let bad = |what: &str| {
        format!(
            "{} is not a grade report of smtptui lab --profile grade: {what}",
            path.display()
        )
    };
    let report: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(&format!("not JSON ({e})")))?;
    let senders = report["senders"]
        .as_array()
        .ok_or_else(|| bad("no \"senders\" list"))?;
    senders
        .iter()
        .map(|sender| {
            let text = |key: &str| {
                sender[key]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| bad(&format!("a sender without \"{key}\"")))
            };
            let level = match &sender["level"] {
                serde_json::Value::Null => None,
                serde_json::Value::String(name) => Some(
                    SecurityLevel::ALL
                        .into_iter()
                        .find(|l| l.name() == name)
                        .ok_or_else(|| bad(&format!("an unknown level {name:?}")))?,
                ),
                _ => return Err(bad("a level that is not a name")),
            };
            // The names came from the senders (and the file from anywhere): escaped once
            // here, so nothing in them reaches a terminal raw.
            Ok(SenderSummary {
                address: escape_str(&text("address")?),
                ehlo: escape_str(&text("ehlo")?),
                level,
                state: text("state")?,
                retry: text("retry")?,
                summary: escape_str(&text("summary")?),
            })
        })
        .collect()
}

/// The report: the MX name and TLSA record, then each sender in the order it came, with its
/// grade and every trial's outcome.
fn report_json(info: &GradeInfo, senders: &HashMap<SenderKey, Record>) -> serde_json::Value {
    use serde_json::json;
    let mut records: Vec<(&SenderKey, &Record)> = senders.iter().collect();
    records.sort_by_key(|(_, r)| r.first);
    let senders: Vec<serde_json::Value> = records
        .into_iter()
        .map(|(key, record)| {
            let grade = record.grade();
            let (consistent, contradictions): (Vec<&str>, Vec<String>) = match &grade.verdict {
                Verdict::Level(level) => (vec![level.name()], Vec::new()),
                Verdict::Incomplete(levels) => {
                    (levels.iter().map(|l| l.name()).collect(), Vec::new())
                }
                Verdict::Contradictory(why) => (Vec::new(), why.clone()),
            };
            json!({
                "address": key.address.to_string(),
                "ehlo": key.name,
                "sessions": record.sessions,
                "state": grade.state(),
                "level": grade.level().map(SecurityLevel::name),
                "consistent_with": consistent,
                "contradictions": contradictions,
                "missing": grade.missing.iter().map(|t| t.name()).collect::<Vec<_>>(),
                "retry": grade.retry.name(),
                "summary": grade.summary(),
                "trials": record.observed.iter().map(|o| json!({
                    "trial": o.trial.name(),
                    "what": o.trial.describe(),
                    "outcome": o.outcome.name(),
                    "detail": o.detail,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "mx_name": info.mx_name,
        "tlsa": info.tlsa,
        "senders": senders,
    })
}

/// Replaces the report whole (a reader never sees half of it).
fn write_report(path: &std::path::Path, report: &serde_json::Value) -> std::io::Result<()> {
    let mut text = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    text.push('\n');
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::Profile;
    use crate::lab::accounts::Accounts;
    use crate::lab::server::{Output, ServerSession, ServerSettings};

    /// A grade MX's session from 127.0.0.1, greeted.
    fn session(settings: &Arc<ServerSettings>, number: u64) -> ServerSession {
        let mut session = ServerSession::new(settings.clone(), number, false);
        session.set_peer(IpAddr::from([127, 0, 0, 1]));
        session.greeting();
        session
    }

    fn say(session: &mut ServerSession, text: &str) -> String {
        session
            .receive(format!("{text}\r\n").as_bytes())
            .into_iter()
            .filter_map(|o| match o {
                Output::Send(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
                _ => None,
            })
            .collect()
    }

    fn finish(board: &GradeBoard, session: &ServerSession) -> String {
        let (ticket, facts) = session.grade_facts().expect("a ticket after EHLO");
        board.finish(ticket, &facts).join("\n")
    }

    /// What a certificate trial would have shown over TLS, which the session alone cannot.
    fn finish_as(board: &GradeBoard, session: &ServerSession, facts: SessionFacts) -> String {
        let (ticket, _) = session.grade_facts().expect("a ticket after EHLO");
        board.finish(ticket, &facts).join("\n")
    }

    #[test]
    fn each_session_meets_its_trial_and_the_grade_follows() {
        let ca = crate::lab::certs::LabCa::generate(1).expect("ca");
        let key = rcgen::KeyPair::generate().expect("key");
        let tls = GradeTls::build(ca.issuer(), &key, "mx.grade.test", &[]).expect("certs");
        let board = Arc::new(GradeBoard::new(tls, None));
        let mut settings =
            ServerSettings::new("mx.grade.test", Profile::Grade, Arc::new(Accounts::empty()));
        settings.grade = Some(board.clone());
        let settings = Arc::new(settings);
        let delivered_tls = SessionFacts {
            starttls_offered: true,
            tls: true,
            messages_tls: 1,
            ..SessionFacts::default()
        };

        // good: STARTTLS offered (its handshake is the shell's; here it delivered inside TLS).
        let mut s = session(&settings, 1);
        assert!(say(&mut s, "EHLO Sender.Example").contains("STARTTLS"));
        let log = finish_as(&board, &s, delivered_tls.clone());
        assert!(log.contains("trial good"), "{log}");

        // stripped: no STARTTLS; a message in cleartext is the fallback.
        let mut s = session(&settings, 2);
        assert!(!say(&mut s, "EHLO sender.example").contains("STARTTLS"));
        say(&mut s, "MAIL FROM:<a@sender.example>");
        assert!(say(&mut s, "RCPT TO:<b@any.test>").starts_with("250"));
        say(&mut s, "DATA");
        assert!(say(&mut s, "Subject: x\r\n\r\nhi\r\n.").starts_with("250"));
        let log = finish(&board, &s);
        assert!(
            log.contains("trial stripped") && log.contains("delivered-cleartext"),
            "{log}"
        );

        // refused: offered, then 454; leaving is deferring.
        let mut s = session(&settings, 3);
        assert!(say(&mut s, "EHLO sender.example").contains("STARTTLS"));
        assert!(say(&mut s, "STARTTLS").starts_with("454 4.7.0"));
        say(&mut s, "QUIT");
        let log = finish(&board, &s);
        assert!(
            log.contains("trial refused") && log.contains(": deferred:"),
            "{log}"
        );
        assert!(log.contains("matches no smtp_tls_security_level"), "{log}");

        // A sender that leaves after EHLO was not tested: the same trial comes again.
        let mut s = session(&settings, 4);
        say(&mut s, "EHLO sender.example");
        assert!(finish(&board, &s).contains("untrusted inconclusive"));
        for number in 5..8 {
            let mut s = session(&settings, number);
            say(&mut s, "EHLO sender.example");
            finish_as(&board, &s, delivered_tls.clone());
        }

        // tempfail: 450 to the recipient; the envelope is remembered.
        let mut s = session(&settings, 8);
        say(&mut s, "EHLO sender.example");
        say(&mut s, "MAIL FROM:<a@sender.example>");
        assert!(say(&mut s, "RCPT TO:<b@any.test>").starts_with("450 4.7.1"));
        let log = finish(&board, &s);
        assert!(log.contains("tempfailed"), "{log}");

        // After the trials: an honest MX, and the same envelope again is the retry.
        let mut s = session(&settings, 9);
        assert!(say(&mut s, "EHLO sender.example").contains("STARTTLS"));
        say(&mut s, "MAIL FROM:<A@sender.example>");
        assert!(say(&mut s, "RCPT TO:<b@any.test>").starts_with("250"));
        let log = finish(&board, &s);
        assert!(log.contains("a retry"), "{log}");
        let json = board.json();
        let sender = &json["senders"][0];
        assert_eq!(sender["ehlo"], "sender.example");
        assert_eq!(sender["state"], "contradictory", "{sender}");
        assert_eq!(sender["retry"], "retried");
        assert_eq!(sender["sessions"], 9);
        // Another name from the same address is another sender, starting afresh.
        let mut s = session(&settings, 10);
        say(&mut s, "EHLO other.example");
        assert_eq!(s.grade_ticket().and_then(|t| t.trial), Some(Trial::Good));
    }

    fn facts() -> SessionFacts {
        SessionFacts {
            starttls_offered: true,
            ..SessionFacts::default()
        }
    }

    #[test]
    fn sessions_are_judged_by_what_the_trial_tests() {
        let tls = SessionFacts {
            tls: true,
            messages_tls: 1,
            ..facts()
        };
        assert_eq!(
            judge(Trial::Untrusted, &tls).map(|o| o.outcome),
            Some(Outcome::DeliveredTls)
        );
        let refused_then_cleartext = SessionFacts {
            starttls_refused: true,
            messages_cleartext: 1,
            ..facts()
        };
        let observed = judge(Trial::Refused, &refused_then_cleartext).expect("judged");
        assert_eq!(observed.outcome, Outcome::DeliveredCleartext);
        assert!(observed.detail.contains("after the 454"));
        let closed_after_handshake = SessionFacts {
            tls: true,
            ..facts()
        };
        assert_eq!(
            judge(Trial::WrongName, &closed_after_handshake).map(|o| o.outcome),
            Some(Outcome::Deferred)
        );
        // Left after EHLO without trying STARTTLS or mail: nothing was tested.
        assert_eq!(judge(Trial::Untrusted, &facts()), None);
        // Where STARTTLS is missing, leaving is the answer.
        assert_eq!(
            judge(Trial::Stripped, &SessionFacts::default()).map(|o| o.outcome),
            Some(Outcome::Deferred)
        );
        assert_eq!(judge(Trial::TempFail, &facts()), None);
    }
}
