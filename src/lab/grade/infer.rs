//! Which `smtp_tls_security_level` a sender behaved like, from what it did in each trial.
//!
//! Pure: the trials' outcomes in, a [`Grade`] out. Each level predicts one outcome per trial
//! (the table in [`expected`]); the grade names a level only when every trial was seen and
//! exactly one level predicted all of them. Missing trials leave the grade incomplete (with
//! the levels still possible), and outcomes no level predicts make it contradictory (with
//! where the closest level disagreed): never a guess.

use std::fmt;

/// What the grading MX does in one session with a sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Trial {
    /// STARTTLS offered, a certificate for the MX name from the CA the sender should trust,
    /// with the MX key (the one its TLSA record names).
    Good,
    /// STARTTLS missing from the EHLO reply, as an attacker who strips it leaves it.
    Stripped,
    /// STARTTLS offered, then refused with `454 4.7.0`.
    Refused,
    /// STARTTLS offered with a self-signed certificate for the MX name, another key.
    Untrusted,
    /// STARTTLS offered with a certificate from the trusted CA for another name, another key.
    WrongName,
    /// STARTTLS offered with a self-signed certificate holding the MX key: only the TLSA
    /// record (`3 1 1`) vouches for it.
    DaneOnly,
    /// A temporary failure (`450 4.7.1` to each recipient): a sender should retry later.
    TempFail,
}

impl Trial {
    /// Every trial, in the order a sender meets them.
    pub const ALL: [Trial; 7] = [
        Trial::Good,
        Trial::Stripped,
        Trial::Refused,
        Trial::Untrusted,
        Trial::WrongName,
        Trial::DaneOnly,
        Trial::TempFail,
    ];

    /// The trials that tell the TLS levels apart (all but [`Trial::TempFail`]).
    pub const TLS: [Trial; 6] = [
        Trial::Good,
        Trial::Stripped,
        Trial::Refused,
        Trial::Untrusted,
        Trial::WrongName,
        Trial::DaneOnly,
    ];

    /// The name in the report and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Good => "good",
            Self::Stripped => "stripped",
            Self::Refused => "refused",
            Self::Untrusted => "untrusted",
            Self::WrongName => "wrong-name",
            Self::DaneOnly => "dane-only",
            Self::TempFail => "tempfail",
        }
    }

    /// What the MX did, in words for the report.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Good => "STARTTLS with a CA-signed certificate for the MX name",
            Self::Stripped => "STARTTLS stripped from EHLO",
            Self::Refused => "STARTTLS refused with 454",
            Self::Untrusted => "a self-signed certificate, from no trusted issuer",
            Self::WrongName => "a CA-signed certificate for another name",
            Self::DaneOnly => "a self-signed certificate only its TLSA record vouches for",
            Self::TempFail => "450 to every recipient: try again later",
        }
    }

    /// Whether STARTTLS is in the EHLO reply.
    pub fn offers_starttls(self) -> bool {
        self != Self::Stripped
    }
}

impl fmt::Display for Trial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a sender did in one trial, as far as it matters for the levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It delivered the message inside TLS.
    DeliveredTls,
    /// It delivered the message in cleartext (after what is in [`Observed::detail`]).
    DeliveredCleartext,
    /// It left without delivering (deferred): at the missing or refused STARTTLS, or after
    /// seeing the certificate.
    Deferred,
    /// It was given the temporary failure.
    TempFailed,
}

impl Outcome {
    /// The name in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::DeliveredTls => "delivered-tls",
            Self::DeliveredCleartext => "delivered-cleartext",
            Self::Deferred => "deferred",
            Self::TempFailed => "tempfailed",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Self::DeliveredTls => "delivered in TLS",
            Self::DeliveredCleartext => "delivered in cleartext",
            Self::Deferred => "deferred",
            Self::TempFailed => "got the 4xx",
        }
    }
}

/// One trial's outcome with what the MX saw of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The trial.
    pub trial: Trial,
    /// What the sender did.
    pub outcome: Outcome,
    /// How, in words (`"sent STARTTLS, then closed after the handshake"`).
    pub detail: String,
}

/// A Postfix `smtp_tls_security_level` a sender can behave like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityLevel {
    /// Never STARTTLS.
    None,
    /// Opportunistic: TLS when offered, any certificate, cleartext otherwise.
    May,
    /// Mandatory TLS, any certificate.
    Encrypt,
    /// Mandatory TLS with a certificate from a trusted CA for the MX name (`secure` behaves
    /// the same here: the lab cannot tell their name rules apart).
    Verify,
    /// DANE: mandatory TLS where the MX publishes TLSA records, the certificate checked
    /// against them and not against CAs.
    Dane,
}

impl SecurityLevel {
    /// Every level, weakest first.
    pub const ALL: [SecurityLevel; 5] = [
        SecurityLevel::None,
        SecurityLevel::May,
        SecurityLevel::Encrypt,
        SecurityLevel::Verify,
        SecurityLevel::Dane,
    ];

    /// The `smtp_tls_security_level` value (`verify` stands for `verify`/`secure`).
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::May => "may",
            Self::Encrypt => "encrypt",
            Self::Verify => "verify",
            Self::Dane => "dane",
        }
    }

    /// How the report names it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Verify => "verify (or secure)",
            other => other.name(),
        }
    }
}

impl fmt::Display for SecurityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// What a sender at `level` does in `trial` (a TLS trial; [`Trial::TempFail`] is the same
/// for all).
pub fn expected(level: SecurityLevel, trial: Trial) -> Outcome {
    use Outcome::{Deferred as D, DeliveredCleartext as C, DeliveredTls as T};
    use SecurityLevel as L;
    match (level, trial) {
        (_, Trial::TempFail) => Outcome::TempFailed,
        (L::None, _) => C,
        (L::May, Trial::Stripped | Trial::Refused) => C,
        (L::May, _) => T,
        (L::Encrypt, Trial::Stripped | Trial::Refused) => D,
        (L::Encrypt, _) => T,
        (L::Verify, Trial::Good) => T,
        (L::Verify, _) => D,
        (L::Dane, Trial::Good | Trial::DaneOnly) => T,
        (L::Dane, _) => D,
    }
}

/// Whether the sender retried after the temporary failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The temporary failure has not been given yet.
    NotTested,
    /// Given; no session from the sender since.
    Waiting,
    /// It came back with the same sender and recipient.
    Retried,
}

impl Retry {
    /// The name in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::NotTested => "not-tested",
            Self::Waiting => "waiting",
            Self::Retried => "retried",
        }
    }
}

/// Where the evidence leaves the grade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every TLS trial seen, and exactly this level predicted them all.
    Level(SecurityLevel),
    /// Trials are still to come; these levels are still possible.
    Incomplete(Vec<SecurityLevel>),
    /// No level predicts what was seen (or one trial had two outcomes). Each entry says
    /// where a level disagreed with the sender.
    Contradictory(Vec<String>),
}

/// The grade of one sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grade {
    /// The level, or why there is none.
    pub verdict: Verdict,
    /// The TLS trials not seen yet.
    pub missing: Vec<Trial>,
    /// Whether it retried after the temporary failure.
    pub retry: Retry,
}

impl Grade {
    /// The level named, if the evidence names one.
    pub fn level(&self) -> Option<SecurityLevel> {
        match self.verdict {
            Verdict::Level(level) => Some(level),
            _ => None,
        }
    }

    /// The verdict's name in the JSON: `level`, `incomplete` or `contradictory`.
    pub fn state(&self) -> &'static str {
        match self.verdict {
            Verdict::Level(_) => "graded",
            Verdict::Incomplete(_) => "incomplete",
            Verdict::Contradictory(_) => "contradictory",
        }
    }

    /// One line for the lab's log and screen.
    pub fn summary(&self) -> String {
        let retry = match self.retry {
            Retry::NotTested => "retry after 4xx: not tested yet",
            Retry::Waiting => "retry after 4xx: waiting for it",
            Retry::Retried => "retried after 4xx",
        };
        match &self.verdict {
            Verdict::Level(level) => {
                format!("behaves like smtp_tls_security_level = {level}; {retry}")
            }
            Verdict::Incomplete(levels) => format!(
                "{} trial(s) to go ({}); so far consistent with {}; {retry}",
                self.missing.len(),
                self.missing
                    .iter()
                    .map(|t| t.name())
                    .collect::<Vec<_>>()
                    .join(", "),
                if levels.is_empty() {
                    "no level".to_owned()
                } else {
                    levels
                        .iter()
                        .map(|l| l.label())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
            Verdict::Contradictory(why) => format!(
                "matches no smtp_tls_security_level: {}; {retry}",
                why.join("; ")
            ),
        }
    }
}

/// Said when a sender refused the good certificate, which every level takes.
pub const GOOD_REFUSED: &str = "it refused the CA-signed certificate for the MX name, which \
    every level takes: does it trust that CA (Postfix smtp_tls_CAfile), and is the MX name the \
    one it checks (the MX record, or smtp_tls_verify_cert_match / match= for a [host] next hop)?";

/// Grades a sender from every outcome seen, oldest first (a trial may appear more than once:
/// a sender that retried it), and whether it came back after the temporary failure.
pub fn grade(seen: &[Observed], retried: bool) -> Grade {
    let retry = if retried {
        Retry::Retried
    } else if seen.iter().any(|o| o.trial == Trial::TempFail) {
        Retry::Waiting
    } else {
        Retry::NotTested
    };
    let mut outcomes: Vec<(Trial, Outcome)> = Vec::new();
    let mut doubled = Vec::new();
    for observed in seen.iter().filter(|o| o.trial != Trial::TempFail) {
        match outcomes.iter().find(|(t, _)| *t == observed.trial) {
            Some((_, earlier)) if *earlier != observed.outcome => {
                let line = format!(
                    "{}: {} once and {} another time",
                    observed.trial,
                    earlier.short(),
                    observed.outcome.short()
                );
                if !doubled.contains(&line) {
                    doubled.push(line);
                }
            }
            Some(_) => {}
            None => outcomes.push((observed.trial, observed.outcome)),
        }
    }
    let missing: Vec<Trial> = Trial::TLS
        .into_iter()
        .filter(|t| !outcomes.iter().any(|(seen, _)| seen == t))
        .collect();
    let consistent: Vec<SecurityLevel> = SecurityLevel::ALL
        .into_iter()
        .filter(|level| {
            outcomes
                .iter()
                .all(|(trial, outcome)| expected(*level, *trial) == *outcome)
        })
        .collect();
    let verdict = if !doubled.is_empty() {
        Verdict::Contradictory(doubled)
    } else if consistent.is_empty() {
        let mut why = closest_disagreements(&outcomes);
        if outcomes.contains(&(Trial::Good, Outcome::Deferred)) {
            // Every level takes the good certificate: the sender's setup is what refused it.
            why.insert(0, GOOD_REFUSED.to_owned());
        }
        Verdict::Contradictory(why)
    } else if missing.is_empty() && consistent.len() == 1 {
        Verdict::Level(consistent[0])
    } else {
        Verdict::Incomplete(consistent)
    };
    Grade {
        verdict,
        missing,
        retry,
    }
}

/// Where the levels that agree with most outcomes (all of them on a tie) disagree with the
/// sender.
fn closest_disagreements(outcomes: &[(Trial, Outcome)]) -> Vec<String> {
    let disagreements = |level: SecurityLevel| -> Vec<String> {
        outcomes
            .iter()
            .filter(|(trial, outcome)| expected(level, *trial) != *outcome)
            .map(|(trial, outcome)| {
                format!(
                    "{}: {} where {} would have {}",
                    trial,
                    outcome.short(),
                    level.label(),
                    match expected(level, *trial) {
                        Outcome::DeliveredTls => "delivered in TLS",
                        Outcome::DeliveredCleartext => "delivered in cleartext",
                        Outcome::Deferred => "deferred",
                        Outcome::TempFailed => "got the 4xx",
                    }
                )
            })
            .collect()
    };
    let all: Vec<Vec<String>> = SecurityLevel::ALL.into_iter().map(disagreements).collect();
    let fewest = all.iter().map(Vec::len).min().unwrap_or(0);
    all.into_iter()
        .filter(|lines| lines.len() == fewest)
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(level: SecurityLevel) -> Vec<Observed> {
        Trial::ALL
            .into_iter()
            .map(|trial| Observed {
                trial,
                outcome: expected(level, trial),
                detail: String::new(),
            })
            .collect()
    }

    #[test]
    fn every_level_is_named_from_its_own_behaviour() {
        for level in SecurityLevel::ALL {
            let grade = grade(&seen(level), false);
            assert_eq!(grade.verdict, Verdict::Level(level), "{level}");
            assert_eq!(grade.retry, Retry::Waiting);
            assert!(grade.missing.is_empty());
        }
    }

    #[test]
    fn the_levels_differ_in_at_least_one_trial() {
        for a in SecurityLevel::ALL {
            for b in SecurityLevel::ALL {
                if a != b {
                    assert!(
                        Trial::TLS
                            .iter()
                            .any(|t| expected(a, *t) != expected(b, *t)),
                        "{a} and {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn missing_trials_leave_it_incomplete_and_contradictions_are_named() {
        let mut partial = seen(SecurityLevel::Verify);
        partial.truncate(3);
        let partial_grade = grade(&partial, false);
        assert_eq!(
            partial_grade.verdict,
            Verdict::Incomplete(vec![
                SecurityLevel::Encrypt,
                SecurityLevel::Verify,
                SecurityLevel::Dane
            ])
        );
        assert_eq!(partial_grade.retry, Retry::NotTested);
        let summary = partial_grade.summary();
        assert!(summary.contains("3 trial(s) to go"), "{summary}");

        // Deferred when stripped, but cleartext after a 454: no level does both.
        let mut odd = seen(SecurityLevel::Encrypt);
        odd[2].outcome = Outcome::DeliveredCleartext;
        let graded = grade(&odd, false);
        let Verdict::Contradictory(why) = &graded.verdict else {
            unreachable!("{graded:?}");
        };
        assert_eq!(
            why,
            &[
                "stripped: deferred where may would have delivered in cleartext".to_owned(),
                "refused: delivered in cleartext where encrypt would have deferred".to_owned()
            ]
        );

        // The good certificate refused: the hint comes first.
        let mut untrusting = seen(SecurityLevel::Verify);
        untrusting[0].outcome = Outcome::Deferred;
        let Verdict::Contradictory(why) = grade(&untrusting, false).verdict else {
            unreachable!("refusing the good certificate matches no level");
        };
        assert_eq!(why.first().map(String::as_str), Some(GOOD_REFUSED));

        // Two outcomes for one trial.
        let mut twice = seen(SecurityLevel::May);
        twice.push(Observed {
            trial: Trial::Untrusted,
            outcome: Outcome::Deferred,
            detail: String::new(),
        });
        assert!(matches!(
            grade(&twice, true).verdict,
            Verdict::Contradictory(_)
        ));
    }
}
