//! Rendering the domain audit: the table and the findings as text, and the same as one JSON
//! object, both from the one judged model ([`Judged`]).

use serde_json::{Value, json};

use super::dane::Tlsa;
use super::judge::{
    CertCell, Channel, DaneCell, DomainFinding, Judged, MtaSts, MtaStsCell, NoDane, Outcome, Row,
    Scope, StsFailure, TlsCell,
};
use super::model::NoDaneBecause;
use super::mta_sts::Mode;
use crate::audit::Verdict;

impl TlsCell {
    /// The cell's text.
    pub fn text(&self) -> String {
        match self {
            Self::Tls(version) => version.clone(),
            Self::NotOffered => "not offered".to_owned(),
            Self::Refused(code) => format!("refused {code}"),
            Self::Failed => "handshake failed".to_owned(),
            Self::Unreachable => "unreachable".to_owned(),
        }
    }
}

impl CertCell {
    /// The cell's text.
    pub fn text(&self) -> String {
        match self {
            Self::Valid => "valid".to_owned(),
            Self::Invalid(kind) => kind.label().to_owned(),
            Self::None => "-".to_owned(),
        }
    }
}

impl DaneCell {
    /// The cell's text.
    pub fn text(&self) -> String {
        match self {
            Self::NotApplicable(NoDane::Before(NoDaneBecause::MxNotSecure)) => {
                "n/a: MX unsigned".to_owned()
            }
            Self::NotApplicable(NoDane::Before(NoDaneBecause::AddressesNotSecure)) => {
                "n/a: A/AAAA unsigned".to_owned()
            }
            Self::NotApplicable(NoDane::NoTlsa) => "n/a: no TLSA".to_owned(),
            Self::NotApplicable(NoDane::TlsaNotSecure) => "n/a: TLSA unsigned".to_owned(),
            Self::Matched(record) => format!(
                "ok ({} {} {})",
                record.usage, record.selector, record.matching
            ),
            Self::Mismatch => "MISMATCH".to_owned(),
            Self::EncryptOnly => "unusable TLSA".to_owned(),
            Self::NoTls => "no TLS".to_owned(),
            Self::LookupFailed => "TLSA lookup failed".to_owned(),
        }
    }
}

impl MtaStsCell {
    /// The cell's text: `enforce, listed`, `testing, not listed`, `not published`...
    pub fn text(&self) -> String {
        match self {
            Self::NotPublished => "not published".to_owned(),
            Self::Unusable => "unusable".to_owned(),
            Self::ModeNone => "mode none".to_owned(),
            Self::Policy { mode, failure } => format!(
                "{}, {}",
                mode.name(),
                match (failure, mode) {
                    (Some(StsFailure::NotListed), Mode::Enforce) => "NOT LISTED",
                    (Some(StsFailure::NotListed), _) => "not listed",
                    _ => "listed",
                }
            ),
        }
    }
}

impl Outcome {
    /// The cell's text.
    pub fn text(&self) -> String {
        match self {
            Self::Deliver(Channel::Authenticated) => "TLS, authenticated".to_owned(),
            Self::Deliver(Channel::Encrypted) => "TLS".to_owned(),
            Self::Deliver(Channel::Cleartext) => "cleartext".to_owned(),
            Self::Defer(_) => "DEFER".to_owned(),
            Self::Unreachable => "next MX".to_owned(),
        }
    }

    fn json(&self) -> Value {
        match self {
            Self::Deliver(channel) => json!({
                "action": "deliver",
                "channel": match channel {
                    Channel::Authenticated => "tls-authenticated",
                    Channel::Encrypted => "tls",
                    Channel::Cleartext => "cleartext",
                },
            }),
            Self::Defer(why) => json!({"action": "defer", "why": why}),
            Self::Unreachable => json!({"action": "next-mx"}),
        }
    }
}

const HEADERS: [&str; 9] = [
    "MX",
    "address",
    "STARTTLS",
    "certificate",
    "DANE",
    "MTA-STS",
    "opportunistic",
    "DANE sender",
    "MTA-STS sender",
];

fn cells(row: &Row) -> [String; 9] {
    [
        format!("{} {}", row.preference, row.host),
        row.ip
            .map_or_else(|| "(none)".to_owned(), |ip| ip.to_string()),
        row.starttls.text(),
        row.certificate.text(),
        row.dane.text(),
        row.mta_sts.text(),
        row.opportunistic.text(),
        row.dane_sender.text(),
        row.mta_sts_sender.text(),
    ]
}

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

/// The readable report: the table, then one line per finding (and its fix), then the counts.
pub fn render_text(domain: &str, judged: &Judged, colour: bool) -> String {
    let mut out =
        format!("smtptui audit of the domain {domain}: where mail to it goes, and how\n\n");
    if judged.rows.is_empty() {
        out.push_str("(no mail host to probe)\n");
    } else {
        let rows: Vec<[String; 9]> = judged.rows.iter().map(cells).collect();
        let widths: Vec<usize> = (0..HEADERS.len())
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .chain([HEADERS[i].len()])
                    .max()
                    .unwrap_or_default()
            })
            .collect();
        let line = |cells: &[String]| {
            let mut text = cells
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect::<Vec<_>>()
                .join("  ");
            text.truncate(text.trim_end().len());
            text.push('\n');
            text
        };
        out.push_str(&line(&HEADERS.map(str::to_owned)));
        for row in &rows {
            out.push_str(&line(row));
        }
    }
    out.push('\n');
    for finding in &judged.findings {
        let scope = match &finding.scope {
            Scope::Domain => String::new(),
            other => format!("{other}: "),
        };
        out.push_str(&format!(
            "{}  {}: {scope}{}\n",
            paint(colour, finding.verdict),
            finding.id,
            finding.why
        ));
        if let Some(fix) = &finding.fix {
            // A fix of several lines (a policy file to serve) stays under its first.
            let fix = fix.trim_end().replace('\n', "\n           ");
            out.push_str(&format!("      fix: {fix}\n"));
        }
    }
    out.push_str(&format!("\n{}\n", counts(&judged.findings)));
    out
}

fn counts(findings: &[DomainFinding]) -> String {
    [Verdict::Pass, Verdict::Warn, Verdict::Fail, Verdict::Info]
        .iter()
        .map(|v| {
            format!(
                "{} {}",
                findings.iter().filter(|f| f.verdict == *v).count(),
                v.mark().to_ascii_lowercase()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn scope_json(scope: &Scope) -> Value {
    match scope {
        Scope::Domain => json!({"domain": true}),
        Scope::Host(host) => json!({"host": host}),
        Scope::Address(host, ip) => json!({"host": host, "address": ip.to_string()}),
        Scope::Sender { ehlo, address } => json!({"sender": ehlo, "address": address}),
    }
}

/// The report as one JSON object: the rows (each cell as text and each sender's outcome),
/// the findings, the counts, and what DANE-enforcing senders would report over TLS-RPT
/// (RFC 8460 §4.4's shape: one policy, its session counts, its failure details).
pub fn render_json(domain: &str, judged: &Judged) -> Value {
    let rows: Vec<Value> = judged
        .rows
        .iter()
        .map(|row| {
            json!({
                "host": row.host,
                "preference": row.preference,
                "address": row.ip.map(|ip| ip.to_string()),
                "starttls": row.starttls.text(),
                "certificate": row.certificate.text(),
                "dane": row.dane.text(),
                "mta_sts": row.mta_sts.text(),
                "senders": {
                    "opportunistic": row.opportunistic.json(),
                    "dane": row.dane_sender.json(),
                    "mta_sts": row.mta_sts_sender.json(),
                },
            })
        })
        .collect();
    let summary: serde_json::Map<String, Value> =
        [Verdict::Pass, Verdict::Warn, Verdict::Fail, Verdict::Info]
            .iter()
            .map(|v| {
                (
                    v.mark().to_ascii_lowercase(),
                    json!(judged.findings.iter().filter(|f| f.verdict == *v).count()),
                )
            })
            .collect();
    json!({
        "domain": domain,
        "rows": rows,
        "findings": judged.findings.iter().map(|f| json!({
            "id": f.id.name(),
            "scope": scope_json(&f.scope),
            "verdict": f.verdict.mark().to_ascii_lowercase(),
            "why": f.why,
            "fix": f.fix,
        })).collect::<Vec<_>>(),
        "summary": summary,
        "tls_rpt": tls_rpt_summary(domain, judged),
    })
}

/// What senders would put in a TLS-RPT report (RFC 8460 §4.4) after one delivery attempt
/// per address: a `tlsa` policy for what DANE-enforcing senders meet where DANE applies, an
/// `sts` policy for what MTA-STS senders meet when the domain announces one, and
/// `no-policy-found` when neither applies.
fn tls_rpt_summary(domain: &str, judged: &Judged) -> Value {
    let mut policies: Vec<Value> = tlsa_policy(domain, judged)
        .into_iter()
        .chain(sts_policy(domain, judged))
        .collect();
    if policies.is_empty() {
        let mut successes = 0;
        let mut failures = Vec::new();
        for row in &judged.rows {
            match &row.opportunistic {
                Outcome::Deliver(_) => successes += 1,
                Outcome::Defer(why) => failures.push(json!({
                    "result-type": "validation-failure",
                    "receiving-mx-hostname": row.host,
                    "receiving-ip": row.ip.map(|ip| ip.to_string()),
                    "failed-session-count": 1,
                    "failure-reason-code": why,
                })),
                Outcome::Unreachable => {}
            }
        }
        policies.push(policy_entry(
            json!({
                "policy-type": "no-policy-found",
                "policy-string": [],
                "policy-domain": domain,
            }),
            successes,
            failures,
        ));
    }
    json!({ "policies": policies })
}

fn policy_entry(policy: Value, successes: usize, failures: Vec<Value>) -> Value {
    json!({
        "policy": policy,
        "summary": {
            "total-successful-session-count": successes,
            "total-failure-session-count": failures.len(),
        },
        "failure-details": failures,
    })
}

/// The `tlsa` policy, when DANE applies to some row.
fn tlsa_policy(domain: &str, judged: &Judged) -> Option<Value> {
    let dane_rows: Vec<&Row> = judged
        .rows
        .iter()
        .filter(|r| !matches!(r.dane, DaneCell::NotApplicable(_)))
        .collect();
    if dane_rows.is_empty() {
        return None;
    }
    let mut strings: Vec<String> = dane_rows
        .iter()
        .filter_map(|r| match &r.dane {
            DaneCell::Matched(record) => Some(record_string(record)),
            _ => None,
        })
        .collect();
    strings.sort();
    strings.dedup();
    let mut successes = 0;
    let mut failures = Vec::new();
    for row in &judged.rows {
        match &row.dane_sender {
            Outcome::Deliver(Channel::Authenticated | Channel::Encrypted) => successes += 1,
            Outcome::Defer(_) => failures.push(json!({
                "result-type": result_type(row),
                "receiving-mx-hostname": row.host,
                "receiving-ip": row.ip.map(|ip| ip.to_string()),
                "failed-session-count": 1,
            })),
            _ => {}
        }
    }
    Some(policy_entry(
        json!({
            "policy-type": "tlsa",
            "policy-string": strings,
            "policy-domain": domain,
        }),
        successes,
        failures,
    ))
}

/// The `sts` policy: what MTA-STS senders meet with the policy in mode enforce or testing
/// (testing reports the same failures), or why they found no policy to apply.
fn sts_policy(domain: &str, judged: &Judged) -> Option<Value> {
    match &judged.mta_sts {
        MtaSts::Applied { policy, .. } if policy.mode != Mode::None => {
            let mut successes = 0;
            let mut failures = Vec::new();
            for row in &judged.rows {
                match row.mta_sts {
                    MtaStsCell::Policy {
                        failure: Some(failure),
                        ..
                    } => failures.push(json!({
                        "result-type": failure.result_type(),
                        "receiving-mx-hostname": row.host,
                        "receiving-ip": row.ip.map(|ip| ip.to_string()),
                        "failed-session-count": 1,
                        "failure-reason-code": failure.reason(&row.host),
                    })),
                    MtaStsCell::Policy { failure: None, .. }
                        if matches!(row.starttls, TlsCell::Tls(_)) =>
                    {
                        successes += 1;
                    }
                    _ => {}
                }
            }
            Some(policy_entry(
                json!({
                    "policy-type": "sts",
                    "policy-string": policy.lines,
                    "policy-domain": domain,
                    "mx-host": policy.mx.iter().map(|p| p.text.clone()).collect::<Vec<_>>(),
                }),
                successes,
                failures,
            ))
        }
        MtaSts::Unavailable { why, .. } => Some(policy_entry(
            json!({
                "policy-type": "sts",
                "policy-string": [],
                "policy-domain": domain,
                "mx-host": [],
            }),
            0,
            vec![json!({
                "result-type": why.result_type(),
                "failed-session-count": 1,
                "failure-reason-code": why.to_string(),
            })],
        )),
        _ => None,
    }
}

fn record_string(record: &Tlsa) -> String {
    record.presentation()
}

/// RFC 8460 §4.3's result types for a DANE failure.
fn result_type(row: &Row) -> &'static str {
    match (&row.dane, &row.starttls) {
        (DaneCell::LookupFailed, _) => "dnssec-invalid",
        (_, TlsCell::NotOffered | TlsCell::Refused(_)) => "starttls-not-supported",
        (DaneCell::Mismatch, _) => "tlsa-invalid",
        _ => "validation-failure",
    }
}
