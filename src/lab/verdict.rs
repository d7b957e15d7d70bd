//! What a client did that matters, as the server saw it, and the verdict line the lab logs
//! when a session ends.
//!
//! The server session records plain observations in a [`Conduct`] (credentials that arrived
//! outside TLS, commands after a refused STARTTLS, bytes after an injected reply, how a TLS
//! handshake failed); [`judge`] turns them into a [`Verdict`]. The judgement says only what a
//! server can know: a finished handshake does not tell whether the client checked the
//! certificate, so a verdict never claims it did (or did not), while a TLS alert refusing the
//! certificate does tell, and is reported. Credentials are never shown: at most the name of an
//! account they were valid for, which the log already names on a successful AUTH.

use std::fmt;

use super::profile::Profile;
use crate::proto::escape::escape_str;

/// How loudly a verdict is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Nothing wrong was seen.
    Ok,
    /// Questionable, not an exposure.
    Warning,
    /// Something leaked or an attack worked.
    Alarm,
}

/// Whether credentials that crossed in cleartext were good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialCheck {
    /// Valid for this account.
    Valid(String),
    /// Not valid (wrong password, unknown account, malformed).
    Invalid,
    /// Only an account name arrived (the first step of AUTH LOGIN).
    AccountNameOnly,
}

/// Credentials that arrived outside TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleartextCredentials {
    /// The SASL mechanism, upper case, escaped.
    pub mechanism: String,
    /// Whether they were good.
    pub check: CredentialCheck,
    /// The server did not take them (530 before STARTTLS, AUTH not enabled, or discarded
    /// behind STARTTLS): the bytes crossed the wire all the same.
    pub refused: bool,
}

/// How a TLS handshake the server expected did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    /// The client closed the connection instead.
    Closed,
    /// The client sent nothing before the deadline.
    TimedOut,
    /// The client sent something that is not a TLS handshake (cleartext, usually).
    NotTls,
    /// The client sent a TLS alert: this one (e.g. `UnknownCA`, `BadCertificate`).
    Alert(String),
    /// Another failure, described.
    Other(String),
}

/// What a client did with the reply the `inject` profile forged behind its 220.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InjectionResponse {
    /// It sent cleartext after the 220 instead of a TLS handshake.
    CleartextBeforeHandshake,
    /// Inside TLS, it sent this command before the real reply to its EHLO: it took the
    /// forged reply for it.
    ActedOnInjectedReply(String),
    /// It closed the connection instead of starting TLS.
    ClosedBeforeHandshake,
    /// Inside TLS it waited for the real reply to EHLO.
    WaitedForRealReply,
}

/// The observations a verdict is made from. The server session fills it in.
#[derive(Debug, Clone, Default)]
pub struct Conduct {
    /// Commands received (lines in command state).
    pub commands: u32,
    /// STARTTLS was advertised to the client at least once.
    pub starttls_offered: bool,
    /// TLS was established (implicit, or after STARTTLS).
    pub tls: bool,
    /// Credentials that arrived outside TLS (the first few).
    pub cleartext_credentials: Vec<CleartextCredentials>,
    /// The account the client authenticated as inside TLS.
    pub authenticated_in_tls: Option<String>,
    /// The server refused STARTTLS with 454.
    pub starttls_refused: bool,
    /// Commands the client sent in cleartext after that refusal (verbs, each once).
    pub after_refusal: Vec<String>,
    /// The server forged a reply behind its 220 to STARTTLS.
    pub injected: bool,
    /// What the client did about it, once known.
    pub injection: Option<InjectionResponse>,
    /// Bytes the client sent behind STARTTLS before the handshake (discarded).
    pub cleartext_after_starttls: usize,
    /// How an expected TLS handshake failed.
    pub tls_failure: Option<TlsFailure>,
    /// Messages accepted without TLS.
    pub messages_in_cleartext: u32,
    /// Messages accepted inside TLS.
    pub messages_in_tls: u32,
    /// The client sent a command before the reply to one that must end a pipelined group,
    /// or pipelined where PIPELINING was not offered.
    pub improper_pipelining: Option<String>,
    /// The client sent bytes before the greeting.
    pub spoke_before_greeting: bool,
}

/// Most cleartext credential attempts recorded per session.
pub const CREDENTIALS_KEPT: usize = 4;

impl Conduct {
    /// Records credentials that arrived outside TLS.
    pub fn credentials(&mut self, mechanism: &str, check: CredentialCheck, refused: bool) {
        if self.cleartext_credentials.len() < CREDENTIALS_KEPT {
            self.cleartext_credentials.push(CleartextCredentials {
                mechanism: escape_str(&mechanism.to_ascii_uppercase()),
                check,
                refused,
            });
        }
    }

    /// Records a command sent in cleartext after a refused STARTTLS.
    pub fn after_refusal(&mut self, verb: &str) {
        let verb = escape_str(&verb.to_ascii_uppercase());
        if self.after_refusal.len() < 8 && !self.after_refusal.contains(&verb) {
            self.after_refusal.push(verb);
        }
    }
}

/// One thing the verdict says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How serious.
    pub level: Level,
    /// What, in words.
    pub text: String,
}

/// The judgement on one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The most serious finding's level.
    pub level: Level,
    /// Whether the profile is one of the attackers (the alarm then says the attack worked).
    pub attacker: bool,
    /// What was seen, most serious first.
    pub findings: Vec<Finding>,
    /// What to learn from an alarm: why it matters and what a client should have done.
    pub lesson: Option<&'static str>,
}

impl Verdict {
    /// The marker that starts the line: `!! ATTACK WORKED:` / `!! DANGER:` / `!  warning:` /
    /// `ok:`. It carries the level without colour, for logs and projectors without it.
    pub fn marker(&self) -> &'static str {
        match (self.level, self.attacker) {
            (Level::Alarm, true) => "!! ATTACK WORKED:",
            (Level::Alarm, false) => "!! DANGER:",
            (Level::Warning, _) => "!  warning:",
            (Level::Ok, _) => "ok:",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.marker())?;
        for (index, finding) in self.findings.iter().enumerate() {
            let separator = if index == 0 { " " } else { "; " };
            write!(f, "{separator}{}", finding.text)?;
        }
        Ok(())
    }
}

fn push(findings: &mut Vec<Finding>, level: Level, text: impl Into<String>) {
    findings.push(Finding {
        level,
        text: text.into(),
    });
}

/// Judges a session of `profile` from what its server saw.
pub fn judge(profile: Profile, conduct: &Conduct) -> Verdict {
    let mut findings = Vec::new();
    let to = format!("to the {profile} profile");
    for credentials in &conduct.cleartext_credentials {
        let mechanism = &credentials.mechanism;
        let mut text = match &credentials.check {
            CredentialCheck::Valid(account) => format!(
                "sent valid credentials for {} in cleartext (AUTH {mechanism}) {to}",
                escape_str(account)
            ),
            CredentialCheck::Invalid => {
                format!(
                    "sent credentials in cleartext (AUTH {mechanism}) {to}; they were not valid"
                )
            }
            CredentialCheck::AccountNameOnly => {
                format!("sent an account name in cleartext (AUTH {mechanism}) {to}")
            }
        };
        if credentials.refused {
            text.push_str(" (the server did not take them, but they had crossed the wire already)");
        }
        // What each mechanism's leak gives whoever was on the path.
        match mechanism.as_str() {
            "CRAM-MD5" => text.push_str(
                "; CRAM-MD5 hides the password but not the user name, and the captured answer \
                 can be cracked offline",
            ),
            "OAUTHBEARER" | "XOAUTH2" => text.push_str(
                "; a bearer token read off the wire works for whoever has it until it expires",
            ),
            _ => {}
        }
        push(&mut findings, Level::Alarm, text);
    }
    if conduct.starttls_refused {
        let sensitive = conduct
            .after_refusal
            .iter()
            .any(|verb| !matches!(verb.as_str(), "EHLO" | "HELO" | "NOOP" | "RSET" | "QUIT"));
        let continued: Vec<&str> = conduct
            .after_refusal
            .iter()
            .map(String::as_str)
            .filter(|verb| *verb != "QUIT")
            .collect();
        if continued.is_empty() {
            push(
                &mut findings,
                Level::Ok,
                "gave up after the refused STARTTLS, as a client should",
            );
        } else {
            push(
                &mut findings,
                if sensitive {
                    Level::Alarm
                } else {
                    Level::Warning
                },
                format!(
                    "continued in cleartext after the refused STARTTLS ({})",
                    continued.join(", ")
                ),
            );
        }
    }
    match &conduct.injection {
        Some(InjectionResponse::CleartextBeforeHandshake) => push(
            &mut findings,
            Level::Alarm,
            "believed the injected bytes: sent its next command in cleartext after the 220 instead of starting TLS",
        ),
        Some(InjectionResponse::ActedOnInjectedReply(verb)) => push(
            &mut findings,
            Level::Alarm,
            format!(
                "believed the injected reply: sent {} inside TLS before the real reply to its EHLO",
                escape_str(verb)
            ),
        ),
        Some(InjectionResponse::ClosedBeforeHandshake) => push(
            &mut findings,
            Level::Ok,
            "hung up after the 220 instead of starting TLS (what a client that notices the injected bytes does)",
        ),
        Some(InjectionResponse::WaitedForRealReply) => push(
            &mut findings,
            Level::Ok,
            "did not act on the injected reply: waited for the real reply to EHLO inside TLS",
        ),
        None => {}
    }
    if conduct.cleartext_after_starttls > 0 && !conduct.injected {
        push(
            &mut findings,
            Level::Warning,
            format!(
                "sent {} byte(s) behind STARTTLS before the TLS handshake (discarded: a client must wait for the 220)",
                conduct.cleartext_after_starttls
            ),
        );
    }
    if conduct.messages_in_cleartext > 0 {
        let count = conduct.messages_in_cleartext;
        if profile == Profile::Strip || conduct.starttls_refused {
            push(
                &mut findings,
                Level::Alarm,
                format!("sent {count} message(s) in cleartext"),
            );
        } else if conduct.starttls_offered {
            push(
                &mut findings,
                Level::Warning,
                format!("sent {count} message(s) in cleartext although STARTTLS was offered"),
            );
        }
    }
    match &conduct.tls_failure {
        Some(TlsFailure::Alert(alert)) => push(
            &mut findings,
            Level::Ok,
            format!(
                "refused the lab's certificate (TLS alert {}): it checks certificates; give it the lab CA to trust",
                escape_str(alert)
            ),
        ),
        Some(failure) if profile.policy().implicit_tls => push(
            &mut findings,
            Level::Warning,
            match failure {
                TlsFailure::TimedOut => {
                    "never started TLS on this implicit-TLS port: a client waiting for a greeting here waits forever (use --tls implicit)".to_owned()
                }
                TlsFailure::NotTls => {
                    "spoke cleartext to an implicit-TLS port (use --tls implicit)".to_owned()
                }
                TlsFailure::Closed => "closed the connection before the TLS handshake".to_owned(),
                TlsFailure::Other(why) => format!("the TLS handshake failed: {}", escape_str(why)),
                TlsFailure::Alert(_) => String::new(),
            },
        ),
        Some(TlsFailure::NotTls) if !conduct.injected => push(
            &mut findings,
            Level::Warning,
            "sent cleartext after the 220 to STARTTLS instead of a TLS handshake",
        ),
        Some(TlsFailure::TimedOut) => push(
            &mut findings,
            Level::Warning,
            "never started the TLS handshake after the 220 to STARTTLS",
        ),
        Some(TlsFailure::Other(why)) => push(
            &mut findings,
            Level::Warning,
            format!("the TLS handshake failed: {}", escape_str(why)),
        ),
        _ => {}
    }
    // A client that acted on the injected EHLO reply also sent its next command before the
    // real reply to that EHLO; whether both landed in one read depends on timing, so the
    // pipelining note would come and go. The injection verdict already says it.
    let acted_on_injection = matches!(
        conduct.injection,
        Some(InjectionResponse::ActedOnInjectedReply(_))
    );
    if let Some(after) = &conduct.improper_pipelining
        && !(acted_on_injection && after == "EHLO")
    {
        push(
            &mut findings,
            Level::Warning,
            format!(
                "sent commands without waiting for the reply to {} (improper pipelining)",
                escape_str(after)
            ),
        );
    }
    if conduct.spoke_before_greeting {
        push(&mut findings, Level::Warning, "talked before the greeting");
    }
    if findings.iter().all(|f| f.level == Level::Ok) {
        let summary = match (&conduct.authenticated_in_tls, conduct.tls) {
            (Some(account), _) => Some(format!(
                "used TLS before AUTH (authenticated as {}) and before any mail",
                escape_str(account)
            )),
            (None, true) if conduct.messages_in_tls > 0 => {
                Some("used TLS before sending mail".to_owned())
            }
            (None, true) => Some("used TLS".to_owned()),
            (None, false) if findings.is_empty() => Some(if conduct.messages_in_cleartext > 0 {
                "sent mail without credentials".to_owned()
            } else if conduct.commands == 0 {
                "sent no command".to_owned()
            } else {
                "sent no credentials and no mail".to_owned()
            }),
            (None, false) => None,
        };
        if let Some(summary) = summary {
            push(&mut findings, Level::Ok, summary);
        }
        if conduct.tls {
            push(
                &mut findings,
                Level::Ok,
                "whether it checked the certificate is not visible from the server",
            );
        }
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.level));
    let level = findings.first().map_or(Level::Ok, |f| f.level);
    Verdict {
        level,
        attacker: profile.is_attacker(),
        findings,
        lesson: (level == Level::Alarm).then(|| lesson(profile, conduct)),
    }
}

/// The lesson of the injection attack.
pub const LESSON_INJECT: &str = "bytes behind the 220 to STARTTLS were not protected by TLS \
and may be forged: a client must discard everything it read before the handshake and say EHLO \
again inside TLS (RFC 3207 section 4.2)";
/// The lesson of a refused STARTTLS.
pub const LESSON_REFUSE: &str = "a 454 to STARTTLS may be an attacker forcing cleartext: a \
client that wants TLS must stop there, not carry on without it";
/// The lesson of the strip attack.
pub const LESSON_STRIP: &str = "STARTTLS missing from EHLO may be an attacker who removed it: \
a client must require TLS (smtptui does; swaks needs --tls, not --tls-optional) and never send \
credentials or mail without it";
/// The lesson of credentials in cleartext.
pub const LESSON_CLEARTEXT: &str = "credentials in cleartext can be read by anyone on the \
path: a client must refuse AUTH without verified TLS, and a server should not offer it \
(Postfix smtpd_tls_auth_only = yes)";

/// The lesson of an alarm: the attack the profile plays, else what the client exposed.
fn lesson(profile: Profile, conduct: &Conduct) -> &'static str {
    let believed_injection = matches!(
        conduct.injection,
        Some(
            InjectionResponse::CleartextBeforeHandshake
                | InjectionResponse::ActedOnInjectedReply(_)
        )
    );
    if believed_injection {
        LESSON_INJECT
    } else if conduct.starttls_refused {
        LESSON_REFUSE
    } else if profile == Profile::Strip {
        LESSON_STRIP
    } else {
        LESSON_CLEARTEXT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_submission() {
        let conduct = Conduct {
            commands: 8,
            starttls_offered: true,
            tls: true,
            authenticated_in_tls: Some("student@lab.test".into()),
            messages_in_tls: 1,
            ..Conduct::default()
        };
        let verdict = judge(Profile::Submission, &conduct);
        assert_eq!(verdict.level, Level::Ok);
        assert_eq!(
            verdict.to_string(),
            "ok: used TLS before AUTH (authenticated as student@lab.test) and before any mail; \
             whether it checked the certificate is not visible from the server"
        );
    }

    #[test]
    fn cleartext_credentials_are_loud_and_never_shown() {
        let mut conduct = Conduct::default();
        conduct.credentials(
            "login",
            CredentialCheck::Valid("student@lab.test".into()),
            false,
        );
        conduct.credentials("plain", CredentialCheck::Invalid, true);
        conduct.messages_in_cleartext = 1;
        let verdict = judge(Profile::Strip, &conduct);
        assert_eq!(verdict.level, Level::Alarm);
        let line = verdict.to_string();
        assert!(line.starts_with("!! ATTACK WORKED: sent valid credentials for student@lab.test in cleartext (AUTH LOGIN) to the strip profile"), "{line}");
        assert!(
            line.contains("they were not valid (the server did not take them"),
            "{line}"
        );
        assert!(line.contains("sent 1 message(s) in cleartext"), "{line}");
        let legacy = judge(Profile::Legacy, &conduct);
        assert!(legacy.to_string().starts_with("!! DANGER: "), "{legacy}");
    }

    /// Whether the client's AUTH after the forged EHLO reply reached the server in the same
    /// read as that EHLO is timing; the verdict must not change with it.
    #[test]
    fn acting_on_an_injected_reply_is_said_once_whatever_the_timing() {
        let mut conduct = Conduct {
            injected: true,
            injection: Some(InjectionResponse::ActedOnInjectedReply("AUTH".into())),
            ..Conduct::default()
        };
        let apart = judge(Profile::Inject, &conduct).to_string();
        conduct.improper_pipelining = Some("EHLO".into());
        let together = judge(Profile::Inject, &conduct).to_string();
        assert_eq!(together, apart);
        assert_eq!(
            apart,
            "!! ATTACK WORKED: believed the injected reply: sent AUTH inside TLS before the real \
             reply to its EHLO"
        );
    }

    #[test]
    fn refused_starttls() {
        let mut conduct = Conduct {
            starttls_refused: true,
            ..Conduct::default()
        };
        conduct.after_refusal("QUIT");
        assert_eq!(
            judge(Profile::RefuseTls, &conduct).to_string(),
            "ok: gave up after the refused STARTTLS, as a client should"
        );
        conduct.after_refusal("ehlo");
        assert_eq!(judge(Profile::RefuseTls, &conduct).level, Level::Warning);
        conduct.after_refusal("MAIL");
        let verdict = judge(Profile::RefuseTls, &conduct);
        assert_eq!(
            verdict.to_string(),
            "!! ATTACK WORKED: continued in cleartext after the refused STARTTLS (EHLO, MAIL)"
        );
    }

    #[test]
    fn injection_outcomes() {
        let mut conduct = Conduct {
            injected: true,
            cleartext_after_starttls: 10,
            injection: Some(InjectionResponse::CleartextBeforeHandshake),
            tls_failure: Some(TlsFailure::NotTls),
            ..Conduct::default()
        };
        let line = judge(Profile::Inject, &conduct).to_string();
        assert_eq!(
            line,
            "!! ATTACK WORKED: believed the injected bytes: sent its next command in cleartext after the 220 instead of starting TLS"
        );
        conduct = Conduct {
            injected: true,
            tls: true,
            injection: Some(InjectionResponse::WaitedForRealReply),
            ..Conduct::default()
        };
        let verdict = judge(Profile::Inject, &conduct);
        assert_eq!(verdict.level, Level::Ok);
        assert!(
            verdict
                .to_string()
                .contains("did not act on the injected reply")
        );
    }

    #[test]
    fn a_refused_certificate_is_reported_as_what_it_is() {
        let conduct = Conduct {
            tls_failure: Some(TlsFailure::Alert("UnknownCA".into())),
            starttls_offered: true,
            commands: 2,
            ..Conduct::default()
        };
        let line = judge(Profile::Submission, &conduct).to_string();
        assert!(
            line.starts_with("ok: refused the lab's certificate (TLS alert UnknownCA)"),
            "{line}"
        );
    }
}
