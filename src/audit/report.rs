//! Rendering an audit: the readable report and the JSON for machines.
//!
//! The text report is one line per finding, verdict mark first, so `grep FAIL` works on it;
//! a warning or failure is followed by one indented `fix:` line. Colour marks only the
//! verdict, and only when the caller says the output is a terminal without `NO_COLOR`.

use serde_json::{Value, json};

use super::findings::{Finding, FindingId, RoleChoice, Verdict, tally};
use super::smuggling::{MessageIds, Outcome, SmugglingSeen, Transport};

fn paint(colour: bool, verdict: Verdict) -> String {
    let mark = verdict.mark();
    if !colour {
        return mark.to_owned();
    }
    let code = match verdict {
        Verdict::Pass => "32",
        Verdict::Warn => "33",
        Verdict::Fail => "1;31",
        Verdict::Info => "36",
    };
    format!("\x1b[{code}m{mark}\x1b[0m")
}

/// The readable report, ending with a newline.
pub fn render_text(target: &str, role: &RoleChoice, findings: &[Finding], colour: bool) -> String {
    let mut out = format!("smtptui audit of {target} as {}\n\n", role.explain());
    for finding in findings {
        out.push_str(&format!(
            "{}  {}: {}\n",
            paint(colour, finding.verdict),
            finding.id,
            finding.why
        ));
        if let Some(fix) = &finding.fix {
            out.push_str(&format!("      fix: {fix}\n"));
        }
    }
    let counts = tally(findings)
        .iter()
        .map(|(verdict, n)| format!("{n} {}", verdict.mark().to_ascii_lowercase()))
        .collect::<Vec<_>>()
        .join(", ");
    out.push_str(&format!("\n{counts}\n"));
    out
}

/// The report as one JSON object: target, role and how it was decided, the findings, and
/// the count of each verdict.
pub fn render_json(target: &str, role: &RoleChoice, findings: &[Finding]) -> Value {
    let summary: serde_json::Map<String, Value> = tally(findings)
        .iter()
        .map(|(verdict, n)| (verdict.mark().to_ascii_lowercase(), json!(n)))
        .collect();
    json!({
        "target": target,
        "role": role.role.name(),
        "role_decided": role.explain(),
        "findings": findings
            .iter()
            .map(|f| json!({
                "id": f.id.name(),
                "verdict": f.verdict.mark().to_ascii_lowercase(),
                "why": f.why,
                "fix": f.fix,
            }))
            .collect::<Vec<_>>(),
        "summary": summary,
    })
}

/// The smuggling probe for `--json`, next to its findings: per variant, what the server did
/// with every reply, what is known about relays passing it, and the Message-IDs to look for
/// in the mailbox. `None` when the probe was not asked for.
pub fn smuggling_json(seen: &SmugglingSeen) -> Option<Value> {
    match seen {
        SmugglingSeen::NotRun => None,
        SmugglingSeen::NotStarted {
            to,
            during,
            why,
            refusal,
        } => Some(json!({
            "to": to,
            "sent": false,
            "during": during,
            "why": why,
            "refusal": refusal.as_ref().map(|reply| reply.summary.clone()),
        })),
        SmugglingSeen::Ran {
            to,
            transport,
            tls,
            nonce,
            variants,
        } => Some(json!({
            "to": to,
            "sent": true,
            "transport": match transport {
                Transport::Implicit => "implicit-tls",
                Transport::StartTls => "starttls",
                Transport::Cleartext => "cleartext",
            },
            "tls": tls,
            "variants": variants
                .iter()
                .map(|(variant, outcome)| {
                    let ids = MessageIds::new(*variant, nonce);
                    let relays = variant.relays();
                    let (name, replies, queued) = match outcome {
                        Outcome::KeptInside(reply) => ("kept-inside", vec![reply], false),
                        Outcome::Refused(reply) => ("refused", vec![reply], false),
                        Outcome::Ended { first, after, second_queued } => (
                            "ended-message",
                            std::iter::once(first).chain(after).collect(),
                            *second_queued,
                        ),
                        Outcome::Inconclusive(_) => ("inconclusive", Vec::new(), false),
                    };
                    json!({
                        "id": FindingId::Smuggling(*variant).name(),
                        "sequence": variant.notation(),
                        "outcome": name,
                        "ended_message": match outcome {
                            Outcome::Inconclusive(_) => Value::Null,
                            other => json!(other.ended_early()),
                        },
                        "replies": replies.iter().map(|r| r.summary.clone()).collect::<Vec<_>>(),
                        "second_message_queued": queued,
                        "why_inconclusive": match outcome {
                            Outcome::Inconclusive(why) => json!(why),
                            _ => Value::Null,
                        },
                        "relays_known": relays.known,
                        "relays": relays.said,
                        "message_id": ids.outer,
                        "smuggled_message_id": ids.smuggled,
                    })
                })
                .collect::<Vec<_>>(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::findings::{FindingId, Role, RoleSource};

    fn sample() -> (RoleChoice, Vec<Finding>) {
        let role = RoleChoice {
            role: Role::Submission,
            source: RoleSource::WellKnownPort(587),
        };
        let findings = vec![
            Finding {
                id: FindingId::StartTlsOffered,
                verdict: Verdict::Pass,
                why: "STARTTLS is offered".into(),
                fix: None,
            },
            Finding {
                id: FindingId::AuthAcceptedBeforeTls,
                verdict: Verdict::Fail,
                why: "AUTH LOGIN was challenged".into(),
                fix: Some("set smtpd_tls_auth_only = yes".into()),
            },
        ];
        (role, findings)
    }

    #[test]
    fn text_has_one_line_per_finding_and_a_fix_line_for_failures() {
        let (role, findings) = sample();
        let text = render_text("mail.example:587", &role, &findings, false);
        assert!(text.contains("PASS  starttls-offered: STARTTLS is offered\n"));
        assert!(text.contains(
            "FAIL  auth-accepted-before-tls: AUTH LOGIN was challenged\n      fix: set smtpd_tls_auth_only = yes\n"
        ));
        assert!(text.contains("1 pass, 0 warn, 1 fail, 0 info"));
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn colour_marks_only_the_verdict() {
        let (role, findings) = sample();
        let text = render_text("mail.example:587", &role, &findings, true);
        assert!(text.contains("\x1b[1;31mFAIL\x1b[0m  auth-accepted-before-tls"));
        assert!(text.contains("\x1b[32mPASS\x1b[0m"));
    }

    #[test]
    fn json_names_verdicts_and_counts() {
        let (role, findings) = sample();
        let value = render_json("mail.example:587", &role, &findings);
        assert_eq!(value["role"], "submission");
        assert_eq!(value["findings"][1]["verdict"], "fail");
        assert_eq!(value["findings"][0]["fix"], Value::Null);
        assert_eq!(value["summary"]["fail"], 1);
    }
}
