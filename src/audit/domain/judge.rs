//! The domain audit's judging: [`DomainSeen`] in, the verdict table ([`Row`]s) and
//! [`DomainFinding`]s out. Pure: no network, no clock (the audit's time is in the
//! observations).
//!
//! Each row is one address of one mail host, with what each kind of sender would do there:
//! an opportunistic one (Postfix `smtp_tls_security_level = may`), one that enforces DANE
//! (`dane`, RFC 7672) and one that enforces MTA-STS (RFC 8461, the domain's policy as
//! [`MtaSts`] reads it). A finding fails exactly when mail would not get through as
//! published: a DANE- or MTA-STS-enforcing sender defers, an MX lookup does not validate or
//! fails, an MX address cannot be reached.

use std::fmt;
use std::net::IpAddr;

use rustls::pki_types::UnixTime;

use super::dane::{self, DaneCheck, DaneVerdict, RecordOutcome, Tlsa};
use super::dns::{Lookup, Security};
use super::model::{
    DomainSeen, HostSeen, MtaStsSeen, NoDaneBecause, ProbeSeen, SendingSeen, TlsRptSeen, TlsaSeen,
};
use super::mta_sts::{
    self, MAX_AGE_LIMIT, MAX_AGE_SHORT, Mode, PolicyUnavailable, RecordProblem, StsPolicy,
    StsRecord,
};
use super::tls_rpt;
use crate::audit::findings::{FindingId, Requirement, StartTlsSeen, Verdict};
use crate::proto::escape::escape_str;
use crate::tls::{ProblemKind, TlsInfo, Verification};

/// What a domain finding is about; [`name`](Self::name) is the stable identifier in the
/// report and in `--json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DomainFindingId {
    /// The MX lookup and its records.
    Mx,
    /// The MX records' DNSSEC status.
    DnssecMx,
    /// A host's address records (and their DNSSEC status).
    Addresses,
    /// A host's TLSA records, matched against the certificates its addresses present.
    Tlsa,
    /// A DANE-EE record of the whole certificate, which changes at every renewal.
    TlsaRenewal,
    /// A single usable TLSA record: no room for the next key.
    TlsaRollover,
    /// TLSA records an SMTP client cannot use.
    TlsaUnusable,
    /// An address could not be audited.
    Reachable,
    /// STARTTLS on an address.
    StartTls,
    /// An address's certificate, as the web PKI and the MX name see it.
    Certificate,
    /// An MX that refuses mail without TLS.
    TlsRequired,
    /// What the host audit of an address found besides.
    HostAudit,
    /// MTA-STS (RFC 8461).
    MtaSts,
    /// TLS-RPT (RFC 8460).
    TlsRpt,
    /// The domain's own outbound server.
    Sending,
}

impl DomainFindingId {
    /// The identifier as shown: `dnssec-mx`, `tlsa`, ...
    pub fn name(self) -> &'static str {
        match self {
            Self::Mx => "mx",
            Self::DnssecMx => "dnssec-mx",
            Self::Addresses => "addresses",
            Self::Tlsa => "tlsa",
            Self::TlsaRenewal => "tlsa-renewal",
            Self::TlsaRollover => "tlsa-rollover",
            Self::TlsaUnusable => "tlsa-unusable",
            Self::Reachable => "reachable",
            Self::StartTls => "starttls",
            Self::Certificate => "certificate",
            Self::TlsRequired => "tls-required",
            Self::HostAudit => "host-audit",
            Self::MtaSts => "mta-sts",
            Self::TlsRpt => "tls-rpt",
            Self::Sending => "sending",
        }
    }
}

impl fmt::Display for DomainFindingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a finding is about: the domain, one host, or one address of a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The domain as a whole.
    Domain,
    /// A mail host.
    Host(String),
    /// One address of a mail host.
    Address(String, IpAddr),
    /// An outbound server, as the grading MX knew it.
    Sender {
        /// The name it gave in EHLO.
        ehlo: String,
        /// The address it connected from.
        address: String,
    },
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Domain => Ok(()),
            Self::Host(host) => write!(f, "{host}"),
            Self::Address(host, ip) => write!(f, "{host} [{ip}]"),
            Self::Sender { ehlo, address } => write!(f, "sender {ehlo} [{address}]"),
        }
    }
}

/// One judged observation of the domain audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainFinding {
    /// What it is about.
    pub id: DomainFindingId,
    /// Where.
    pub scope: Scope,
    /// The verdict.
    pub verdict: Verdict,
    /// What was seen and why it matters.
    pub why: String,
    /// For warn and fail: the change that fixes it (DNS records to publish, Postfix settings).
    pub fix: Option<String>,
}

impl DomainFinding {
    fn new(id: DomainFindingId, scope: Scope, verdict: Verdict, why: impl Into<String>) -> Self {
        Self {
            id,
            scope,
            verdict,
            why: why.into(),
            fix: None,
        }
    }

    fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// The STARTTLS column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsCell {
    /// TLS is up: the version.
    Tls(String),
    /// STARTTLS not advertised.
    NotOffered,
    /// STARTTLS answered with this code.
    Refused(u16),
    /// The handshake failed.
    Failed,
    /// No audit of this address (connection, greeting, deadline), or no address at all.
    Unreachable,
}

/// The certificate column: the web PKI's verdict for the MX name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertCell {
    /// The chain leads to a trusted root and names the MX host.
    Valid,
    /// It does not, for this reason.
    Invalid(ProblemKind),
    /// No TLS, so no certificate.
    None,
}

/// Why DANE does not apply to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoDane {
    /// Before any TLSA lookup (unsigned MX or addresses).
    Before(NoDaneBecause),
    /// The TLSA lookup securely proved there are none.
    NoTlsa,
    /// The TLSA records, or their denial, are not validated.
    TlsaNotSecure,
}

/// The DANE column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaneCell {
    /// DANE does not apply: a DANE sender acts as an opportunistic one here.
    NotApplicable(NoDane),
    /// A usable record matched the chain.
    Matched(Tlsa),
    /// Usable records, none matched the chain.
    Mismatch,
    /// Only unusable records: TLS is required but not authenticated.
    EncryptOnly,
    /// TLSA records are published but the address gave no TLS to match them against.
    NoTls,
    /// The TLSA lookup did not validate or failed: a DANE sender cannot tell, and defers.
    LookupFailed,
}

/// The MTA-STS column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MtaStsCell {
    /// No `_mta-sts` record.
    NotPublished,
    /// A record, but no policy reaches senders (the record is invalid, its lookup failed,
    /// or the policy cannot be fetched or read): they act as without one.
    Unusable,
    /// A policy in mode `none`.
    ModeNone,
    /// A policy in mode `enforce` or `testing`, and what it makes of this address.
    Policy {
        /// The mode.
        mode: Mode,
        /// Why an MTA-STS sender would not deliver here, `None` when it would (or the
        /// address gave no session to judge).
        failure: Option<StsFailure>,
    },
}

/// Why an MTA-STS sender would not deliver to an address (RFC 8461 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StsFailure {
    /// The MX host matches none of the policy's `mx` patterns (§4.1).
    NotListed,
    /// STARTTLS is not offered, or refused (§4.2 needs TLS).
    NoStartTls,
    /// The TLS handshake failed.
    Handshake,
    /// The certificate is not valid for the MX name in the web PKI (§4.2).
    Certificate(ProblemKind),
}

impl StsFailure {
    /// Why, in words.
    pub fn reason(self, host: &str) -> String {
        match self {
            Self::NotListed => format!("{host} matches no `mx` line of the policy"),
            Self::NoStartTls => "STARTTLS does not work, and the policy requires TLS".to_owned(),
            Self::Handshake => "the TLS handshake fails, and the policy requires TLS".to_owned(),
            Self::Certificate(kind) => format!(
                "the certificate is not valid for {host} in the web PKI ({})",
                kind.label()
            ),
        }
    }

    /// RFC 8460 §4.3's result type for it.
    pub fn result_type(self) -> &'static str {
        match self {
            Self::NotListed | Self::Handshake => "validation-failure",
            Self::NoStartTls => "starttls-not-supported",
            Self::Certificate(ProblemKind::NotValidForName) => "certificate-host-mismatch",
            Self::Certificate(ProblemKind::Expired) => "certificate-expired",
            Self::Certificate(_) => "certificate-not-trusted",
        }
    }
}

/// What a kind of sender would do with one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Deliver, over this kind of channel.
    Deliver(Channel),
    /// Defer the mail (and try the next MX, then retry later): why.
    Defer(String),
    /// The address could not be reached: the sender tries the next one.
    Unreachable,
}

/// How mail would cross.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// TLS with the server authenticated (DANE).
    Authenticated,
    /// TLS, not authenticated.
    Encrypted,
    /// No TLS at all.
    Cleartext,
}

/// One row of the verdict table: one address of one mail host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The mail host.
    pub host: String,
    /// Its MX preference.
    pub preference: u16,
    /// The address; `None` when the host has none.
    pub ip: Option<IpAddr>,
    /// STARTTLS.
    pub starttls: TlsCell,
    /// The certificate (web PKI and the MX name).
    pub certificate: CertCell,
    /// DANE.
    pub dane: DaneCell,
    /// MTA-STS.
    pub mta_sts: MtaStsCell,
    /// A sender doing opportunistic TLS (`smtp_tls_security_level = may`).
    pub opportunistic: Outcome,
    /// A sender enforcing DANE (`smtp_tls_security_level = dane`).
    pub dane_sender: Outcome,
    /// A sender enforcing MTA-STS.
    pub mta_sts_sender: Outcome,
}

/// The judged domain audit: the table and the findings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    /// One row per address.
    pub rows: Vec<Row>,
    /// The findings, domain first, then host by host.
    pub findings: Vec<DomainFinding>,
    /// The domain's MTA-STS as senders read it.
    pub mta_sts: MtaSts,
}

impl Judged {
    /// Whether any finding failed: mail would not get through as published.
    pub fn has_failure(&self) -> bool {
        self.findings.iter().any(|f| f.verdict == Verdict::Fail)
    }
}

/// Judges what the domain audit saw.
pub fn judge(seen: &DomainSeen) -> Judged {
    let mut findings = Vec::new();
    let mut rows = Vec::new();
    mx_findings(seen, &mut findings);
    let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(seen.checked_at));
    let sts = MtaSts::read(&seen.mta_sts);
    for host in &seen.hosts {
        host_rows(seen, &sts, host, now, &mut rows, &mut findings);
    }
    mta_sts_findings(seen, &sts, &rows, &mut findings);
    tls_rpt_findings(seen, &mut findings);
    sending_findings(&seen.sending, &mut findings);
    Judged {
        rows,
        findings,
        mta_sts: sts,
    }
}

fn mx_findings(seen: &DomainSeen, out: &mut Vec<DomainFinding>) {
    let domain = &seen.domain;
    match &seen.mx {
        Lookup::Found { records, security } => {
            if records.iter().any(|r| r.is_null()) {
                let alone = records.len() == 1;
                out.push(
                    DomainFinding::new(
                        DomainFindingId::Mx,
                        Scope::Domain,
                        if alone { Verdict::Info } else { Verdict::Fail },
                        if alone {
                            format!(
                                "{domain} publishes a null MX (RFC 7505): it accepts no mail, \
                                 and senders bounce mail for it at once"
                            )
                        } else {
                            format!(
                                "{domain} has a null MX next to other MX records: RFC 7505 \
                                 §3 says a null MX must be the only one, so senders disagree \
                                 on whether mail is accepted"
                            )
                        },
                    )
                    .fix_if(
                        !alone,
                        "remove the `0 .` record to receive mail, or every other MX to receive none",
                    ),
                );
                // A lone null MX routes no mail: there is nothing for DNSSEC to protect.
                if alone {
                    return;
                }
            } else {
                let list = records
                    .iter()
                    .map(|r| format!("{} {}", r.preference, r.exchange))
                    .collect::<Vec<_>>()
                    .join(", ");
                out.push(DomainFinding::new(
                    DomainFindingId::Mx,
                    Scope::Domain,
                    Verdict::Info,
                    format!("MX records ({}): {list}", security.name()),
                ));
            }
            out.push(dnssec_mx(domain, *security));
        }
        Lookup::None {
            nxdomain: true,
            security,
        } => out.push(
            DomainFinding::new(
                DomainFindingId::Mx,
                Scope::Domain,
                Verdict::Fail,
                format!(
                    "{domain} does not exist (NXDOMAIN, {}): mail to it bounces",
                    security.name()
                ),
            )
            .fix("check the spelling, or publish the domain with MX records"),
        ),
        Lookup::None {
            nxdomain: false,
            security,
        } => {
            out.push(
                DomainFinding::new(
                    DomainFindingId::Mx,
                    Scope::Domain,
                    Verdict::Warn,
                    format!(
                        "{domain} has no MX records ({}): senders fall back to its own \
                         addresses as the implicit MX (RFC 5321 §5.1), judged below",
                        security.name()
                    ),
                )
                .fix(format!(
                    "publish an MX record (`{domain}. IN MX 10 mail.{domain}.`), or a null MX \
                     (`{domain}. IN MX 0 .`, RFC 7505) if the domain sends no replies and \
                     receives no mail"
                )),
            );
            out.push(dnssec_mx(domain, *security));
        }
        Lookup::Bogus { why } => out.push(
            DomainFinding::new(
                DomainFindingId::DnssecMx,
                Scope::Domain,
                Verdict::Fail,
                format!(
                    "the MX lookup for {domain} does not validate ({why}): senders that \
                     validate DNSSEC (every DANE sender) cannot find the mail hosts and defer \
                     all mail (RFC 7672 §2.2.1)"
                ),
            )
            .fix(
                "re-sign the zone, or make the DS records at the parent match the zone's \
                 current keys (a stale DS after a key rollover is the usual cause)",
            ),
        ),
        Lookup::Failed { why } => out.push(
            DomainFinding::new(
                DomainFindingId::Mx,
                Scope::Domain,
                Verdict::Fail,
                format!(
                    "the MX lookup for {domain} failed ({why}): senders defer mail until it \
                     answers"
                ),
            )
            .fix(
                "check that the domain's name servers answer (and, with --resolver, that the \
                 resolver is reachable)",
            ),
        ),
    }
}

impl DomainFinding {
    fn fix_if(self, cond: bool, fix: &str) -> Self {
        if cond { self.fix(fix) } else { self }
    }
}

fn dnssec_mx(domain: &str, security: Security) -> DomainFinding {
    match security {
        Security::Secure => DomainFinding::new(
            DomainFindingId::DnssecMx,
            Scope::Domain,
            Verdict::Pass,
            "the MX answer validates with DNSSEC, so DANE can protect mail to the MX hosts",
        ),
        Security::Insecure => DomainFinding::new(
            DomainFindingId::DnssecMx,
            Scope::Domain,
            Verdict::Warn,
            format!(
                "the {domain} zone is not signed: whoever can forge its answers chooses where \
                 mail goes, and DANE cannot apply (RFC 7672 §2.2.1)"
            ),
        )
        .fix(
            "sign the zone with DNSSEC and publish its DS record at the registrar; then \
             publish TLSA records for the MX hosts",
        ),
        Security::Indeterminate => DomainFinding::new(
            DomainFindingId::DnssecMx,
            Scope::Domain,
            Verdict::Warn,
            "the MX answer's DNSSEC status could not be established (no signatures reached \
             the audit): the resolver in use may strip them",
        )
        .fix("give --resolver with a resolver that passes DNSSEC records (the DO bit)"),
    }
}

fn host_rows(
    seen: &DomainSeen,
    sts: &MtaSts,
    host: &HostSeen,
    now: UnixTime,
    rows: &mut Vec<Row>,
    out: &mut Vec<DomainFinding>,
) {
    let scope = Scope::Host(host.name.clone());
    // Addresses.
    let lookups = [("A", &host.a), ("AAAA", &host.aaaa)];
    let broken: Vec<String> = lookups
        .iter()
        .filter_map(|(kind, lookup)| match lookup {
            Lookup::Bogus { why } => Some(format!("{kind} bogus ({why})")),
            Lookup::Failed { why } => Some(format!("{kind} failed ({why})")),
            _ => None,
        })
        .collect();
    let addresses: Vec<String> = host
        .a
        .records()
        .iter()
        .chain(host.aaaa.records())
        .map(ToString::to_string)
        .collect();
    if addresses.is_empty() {
        out.push(
            DomainFinding::new(
                DomainFindingId::Addresses,
                scope.clone(),
                Verdict::Fail,
                format!(
                    "{} has no address{}: senders cannot reach it",
                    host.name,
                    if broken.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", broken.join("; "))
                    }
                ),
            )
            .fix(format!(
                "publish A (and AAAA) records for {}, or point the MX at a host that has them",
                host.name
            )),
        );
        rows.push(Row {
            host: host.name.clone(),
            preference: host.preference,
            ip: None,
            starttls: TlsCell::Unreachable,
            certificate: CertCell::None,
            dane: DaneCell::NotApplicable(NoDane::Before(NoDaneBecause::AddressesNotSecure)),
            mta_sts: mta_sts_cell(sts, &host.name, &TlsCell::Unreachable, &CertCell::None),
            opportunistic: Outcome::Unreachable,
            dane_sender: Outcome::Unreachable,
            mta_sts_sender: Outcome::Unreachable,
        });
        return;
    }
    let security = [&host.a, &host.aaaa]
        .iter()
        .map(|l| {
            l.security()
                .map_or("unvalidated".to_owned(), |s| s.name().to_owned())
        })
        .collect::<Vec<_>>();
    out.push(DomainFinding::new(
        DomainFindingId::Addresses,
        scope.clone(),
        if broken.is_empty() {
            Verdict::Info
        } else {
            Verdict::Warn
        },
        format!(
            "{} (A {}, AAAA {}){}",
            addresses.join(", "),
            security[0],
            security[1],
            if broken.is_empty() {
                String::new()
            } else {
                format!("; {}", broken.join("; "))
            }
        ),
    ));

    // The TLSA records, once per host.
    let tlsa_records: Option<&[Tlsa]> = match &host.tlsa {
        TlsaSeen::Looked(Lookup::Found {
            records,
            security: Security::Secure,
        }) => Some(records),
        _ => None,
    };
    tlsa_host_findings(seen, host, tlsa_records, out);

    let names = vec![host.name.clone()];
    let mut recommended: Option<Tlsa> = None;
    for address in &host.addresses {
        let scope = Scope::Address(host.name.clone(), address.ip);
        let tls = address.probe.tls();
        let starttls = tls_cell(&address.probe);
        let certificate = match tls {
            Some(info) => match &info.verification {
                Verification::Verified => CertCell::Valid,
                Verification::Failed(problem) => CertCell::Invalid(problem.problem_kind()),
            },
            None => CertCell::None,
        };
        let chain: Vec<Vec<u8>> = tls
            .map(|info| info.chain.iter().map(|c| c.der.0.clone()).collect())
            .unwrap_or_default();
        if recommended.is_none() {
            recommended = chain.first().and_then(|leaf| dane::record_for(leaf));
        }
        let check = tlsa_records.map(|records| dane::check(records, &chain, &names, now));
        let dane = dane_cell(host, tls.is_some(), check.as_ref());
        let opportunistic = opportunistic(&address.probe);
        let dane_sender = dane_sender(&dane, &opportunistic);
        address_findings(
            &scope,
            &address.probe,
            tls,
            &dane,
            check.as_ref(),
            &dane_sender,
            out,
        );
        let mta_sts = mta_sts_cell(sts, &host.name, &starttls, &certificate);
        let mta_sts_sender = mta_sts_sender(&mta_sts, &host.name, &opportunistic);
        mta_sts_address_finding(seen, sts, &scope, &host.name, &mta_sts, out);
        rows.push(Row {
            host: host.name.clone(),
            preference: host.preference,
            ip: Some(address.ip),
            starttls,
            certificate,
            dane,
            mta_sts,
            opportunistic,
            dane_sender,
            mta_sts_sender,
        });
    }
    dane_advice(seen, host, tlsa_records, recommended.as_ref(), out);
}

fn tlsa_host_findings(
    _seen: &DomainSeen,
    host: &HostSeen,
    records: Option<&[Tlsa]>,
    out: &mut Vec<DomainFinding>,
) {
    let scope = Scope::Host(host.name.clone());
    let owner = format!("_25._tcp.{}", host.name);
    match &host.tlsa {
        TlsaSeen::Looked(Lookup::Bogus { why }) => out.push(
            DomainFinding::new(
                DomainFindingId::Tlsa,
                scope,
                Verdict::Fail,
                format!(
                    "the TLSA lookup for {owner} does not validate ({why}): DANE senders \
                     cannot tell whether TLS is required and defer mail to this host (RFC 7672 \
                     §2.2)"
                ),
            )
            .fix("re-sign the zone holding the TLSA records, or fix the DS chain to it"),
        ),
        TlsaSeen::Looked(Lookup::Failed { why }) => out.push(
            DomainFinding::new(
                DomainFindingId::Tlsa,
                scope,
                Verdict::Fail,
                format!(
                    "the TLSA lookup for {owner} failed ({why}): DANE senders defer mail to \
                     this host until it answers (RFC 7672 §2.2)"
                ),
            )
            .fix(
                "make the name servers answer TLSA queries (some old servers or middleboxes \
                 drop unknown types): a secure NODATA is the answer for no TLSA records",
            ),
        ),
        _ => {}
    }
    let Some(records) = records else {
        return;
    };
    for record in records.iter().filter(|r| r.breaks_at_renewal()) {
        out.push(
            DomainFinding::new(
                DomainFindingId::TlsaRenewal,
                Scope::Host(host.name.clone()),
                Verdict::Warn,
                format!(
                    "{owner} TLSA {} pins the whole certificate: it stops matching at the next \
                     renewal even when the key stays, and DANE senders then defer mail",
                    record.presentation()
                ),
            )
            .fix(
                "publish `3 1 1` records (DANE-EE, the public key, SHA-256) instead; they \
                 survive renewals that keep the key (RFC 7671 §5.1)",
            ),
        );
    }
    let unusable: Vec<String> = records
        .iter()
        .filter_map(|r| {
            r.unusable_because()
                .map(|why| format!("{}: {why}", r.presentation()))
        })
        .collect();
    if !unusable.is_empty() {
        out.push(
            DomainFinding::new(
                DomainFindingId::TlsaUnusable,
                Scope::Host(host.name.clone()),
                Verdict::Warn,
                format!(
                    "{owner} has records SMTP clients cannot use: {}",
                    unusable.join("; ")
                ),
            )
            .fix("replace them with DANE-EE `3 1 1` records"),
        );
    }
    let usable = records
        .iter()
        .filter(|r| r.unusable_because().is_none())
        .count();
    if usable == 1 {
        out.push(
            DomainFinding::new(
                DomainFindingId::TlsaRollover,
                Scope::Host(host.name.clone()),
                Verdict::Warn,
                format!(
                    "{owner} has a single usable TLSA record: a new key or certificate \
                     deployed before its record has been published (and cached out) breaks \
                     DANE delivery"
                ),
            )
            .fix(
                "publish a second record for the next key ahead of time (`3 1 1` of the \
                 next key, or `2 1 1` of the issuing CA), as RFC 7671 §8.1 describes",
            ),
        );
    }
}

fn tls_cell(probe: &ProbeSeen) -> TlsCell {
    match probe {
        ProbeSeen::Audited(audit) => match &audit.observations.starttls {
            StartTlsSeen::Established(info) => TlsCell::Tls(info.version.clone()),
            StartTlsSeen::NotOffered => TlsCell::NotOffered,
            StartTlsSeen::Refused(reply) => TlsCell::Refused(reply.code),
            StartTlsSeen::HandshakeFailed(_) | StartTlsSeen::Injected(_) => TlsCell::Failed,
            StartTlsSeen::NotReached | StartTlsSeen::NotApplicable => TlsCell::Unreachable,
        },
        _ => TlsCell::Unreachable,
    }
}

fn dane_cell(host: &HostSeen, has_tls: bool, check: Option<&DaneCheck>) -> DaneCell {
    match &host.tlsa {
        TlsaSeen::NotLookedUp(why) => DaneCell::NotApplicable(NoDane::Before(*why)),
        TlsaSeen::Looked(Lookup::None {
            security: Security::Secure,
            ..
        }) => DaneCell::NotApplicable(NoDane::NoTlsa),
        TlsaSeen::Looked(Lookup::None { .. } | Lookup::Found { .. }) if check.is_none() => {
            DaneCell::NotApplicable(NoDane::TlsaNotSecure)
        }
        TlsaSeen::Looked(Lookup::Bogus { .. } | Lookup::Failed { .. }) => DaneCell::LookupFailed,
        TlsaSeen::Looked(_) => match check {
            _ if !has_tls => DaneCell::NoTls,
            Some(check) => match check.verdict {
                DaneVerdict::Authenticated => check
                    .records
                    .iter()
                    .find(|(_, o)| matches!(o, RecordOutcome::Matched { .. }))
                    .map_or(DaneCell::Mismatch, |(r, _)| DaneCell::Matched(r.clone())),
                DaneVerdict::Failed => DaneCell::Mismatch,
                DaneVerdict::AllUnusable => DaneCell::EncryptOnly,
            },
            None => DaneCell::NotApplicable(NoDane::TlsaNotSecure),
        },
    }
}

fn opportunistic(probe: &ProbeSeen) -> Outcome {
    match probe {
        ProbeSeen::Audited(audit) => {
            let refuses_cleartext = audit
                .observations
                .mail_before_tls
                .as_ref()
                .is_some_and(|r| r.code >= 400 && Requirement::of(r) == Requirement::Tls);
            match &audit.observations.starttls {
                StartTlsSeen::Established(_) => Outcome::Deliver(Channel::Encrypted),
                _ if refuses_cleartext => Outcome::Defer(
                    "TLS did not work and the server refuses mail without it".to_owned(),
                ),
                StartTlsSeen::NotReached => Outcome::Unreachable,
                _ => Outcome::Deliver(Channel::Cleartext),
            }
        }
        _ => Outcome::Unreachable,
    }
}

fn dane_sender(dane: &DaneCell, opportunistic: &Outcome) -> Outcome {
    if *opportunistic == Outcome::Unreachable {
        return Outcome::Unreachable;
    }
    match dane {
        DaneCell::NotApplicable(_) => opportunistic.clone(),
        DaneCell::Matched(_) => Outcome::Deliver(Channel::Authenticated),
        DaneCell::EncryptOnly => match opportunistic {
            Outcome::Deliver(Channel::Encrypted) => Outcome::Deliver(Channel::Encrypted),
            _ => Outcome::Defer("TLSA records require TLS, and TLS did not work".to_owned()),
        },
        DaneCell::Mismatch => {
            Outcome::Defer("no TLSA record matches the certificate chain".to_owned())
        }
        DaneCell::NoTls => {
            Outcome::Defer("TLSA records require TLS, and TLS did not work".to_owned())
        }
        DaneCell::LookupFailed => Outcome::Defer("the TLSA lookup did not validate".to_owned()),
    }
}

#[allow(clippy::too_many_arguments)]
fn address_findings(
    scope: &Scope,
    probe: &ProbeSeen,
    tls: Option<&TlsInfo>,
    dane: &DaneCell,
    check: Option<&DaneCheck>,
    dane_sender: &Outcome,
    out: &mut Vec<DomainFinding>,
) {
    let audit = match probe {
        ProbeSeen::Audited(audit) => audit,
        ProbeSeen::Unreachable(why) => {
            out.push(
                DomainFinding::new(
                    DomainFindingId::Reachable,
                    scope.clone(),
                    Verdict::Fail,
                    format!("cannot be audited on port 25: {why}; senders try the next MX"),
                )
                .fix(
                    "make the MX answer on port 25 from the Internet (firewall, listener \
                     address), or remove this address from DNS",
                ),
            );
            return;
        }
        ProbeSeen::DeadlineExceeded(after) => {
            out.push(
                DomainFinding::new(
                    DomainFindingId::Reachable,
                    scope.clone(),
                    Verdict::Fail,
                    format!(
                        "the audit of this address did not finish within {}s: a slow MX \
                         makes senders time out and try the next one",
                        after.as_secs()
                    ),
                )
                .fix("check the server's load and any greeting delay (postscreen, tarpits)"),
            );
            return;
        }
    };
    let seen = &audit.observations;
    out.push(match (&seen.starttls, tls) {
        (_, Some(info)) => DomainFinding::new(
            DomainFindingId::StartTls,
            scope.clone(),
            Verdict::Pass,
            format!("STARTTLS works: {} {}", info.version, info.cipher_suite),
        ),
        (StartTlsSeen::NotOffered, _) => DomainFinding::new(
            DomainFindingId::StartTls,
            scope.clone(),
            Verdict::Warn,
            "STARTTLS is not offered: every sender delivers in cleartext",
        )
        .fix(
            "offer STARTTLS with a certificate for the MX name. Postfix: smtpd_tls_security_level \
             = may and smtpd_tls_chain_files = /etc/.../mx.key, /etc/.../fullchain.pem",
        ),
        (StartTlsSeen::Refused(reply), _) => DomainFinding::new(
            DomainFindingId::StartTls,
            scope.clone(),
            Verdict::Warn,
            format!(
                "STARTTLS is offered but refused ({}): senders deliver in cleartext",
                reply.summary
            ),
        )
        .fix(
            "give the server a usable certificate and key (Postfix answers 454 when it has \
             none: smtpd_tls_chain_files)",
        ),
        (other, _) => DomainFinding::new(
            DomainFindingId::StartTls,
            scope.clone(),
            Verdict::Warn,
            format!(
                "the TLS handshake failed ({}): opportunistic senders retry in cleartext",
                match other {
                    StartTlsSeen::HandshakeFailed(why) | StartTlsSeen::Injected(why) => why.clone(),
                    _ => "the probes stopped before STARTTLS".to_owned(),
                }
            ),
        )
        .fix("run the host audit of this address for the TLS details and their fix"),
    });
    if let Some(info) = tls {
        out.push(match &info.verification {
            Verification::Verified => DomainFinding::new(
                DomainFindingId::Certificate,
                scope.clone(),
                Verdict::Pass,
                format!(
                    "the certificate is valid for {} in the web PKI (what MTA-STS senders \
                     require)",
                    info.server_name
                ),
            ),
            Verification::Failed(problem) => DomainFinding::new(
                DomainFindingId::Certificate,
                scope.clone(),
                Verdict::Warn,
                format!(
                    "{}: opportunistic and DANE-EE senders do not mind, MTA-STS senders and \
                     DANE-TA would refuse it",
                    problem.detail
                ),
            )
            .fix(format!(
                "use a certificate from a public CA for {} with its full chain \
                 (Postfix: smtpd_tls_chain_files = key, then leaf and intermediates)",
                info.server_name
            )),
        });
    }
    if let Some(reply) = &seen.mail_before_tls
        && reply.code >= 400
        && Requirement::of(reply) == Requirement::Tls
    {
        out.push(
            DomainFinding::new(
                DomainFindingId::TlsRequired,
                scope.clone(),
                Verdict::Warn,
                format!(
                    "mail without TLS is refused ({}): senders that cannot do TLS, or whose \
                     TLS fails with this server, bounce or defer. To have mail to you \
                     encrypted, let senders enforce it: DANE and MTA-STS do that without \
                     turning anyone away",
                    reply.summary
                ),
            )
            .fix(
                "keep TLS optional on an MX (RFC 3207 §4). Postfix: smtpd_tls_security_level = \
                 may on port 25; publish TLSA records (DANE) and an MTA-STS policy instead",
            ),
        );
    }
    if let Some(check) = check {
        dane_findings(scope, dane, check, dane_sender, out);
    }
    host_audit_summary(scope, audit, out);
}

fn dane_findings(
    scope: &Scope,
    dane: &DaneCell,
    check: &DaneCheck,
    dane_sender: &Outcome,
    out: &mut Vec<DomainFinding>,
) {
    let each: Vec<String> = check
        .records
        .iter()
        .map(|(record, outcome)| {
            let what = match outcome {
                RecordOutcome::Matched { cert_index: 0 } => {
                    "matches the server's certificate".to_owned()
                }
                RecordOutcome::Matched { cert_index } => {
                    format!(
                        "matches certificate {cert_index} of the chain, which the leaf chains to"
                    )
                }
                RecordOutcome::NoMatch => "matches nothing the server sent".to_owned(),
                RecordOutcome::ChainFailed { why, .. } => {
                    format!("matches a CA in the chain, but the leaf does not verify: {why}")
                }
                RecordOutcome::Unusable { why } => format!("unusable: {why}"),
            };
            format!("{} ({}) {what}", record.presentation(), record.acronyms())
        })
        .collect();
    let (verdict, why) = match (dane, dane_sender) {
        (DaneCell::Matched(_), _) => (
            Verdict::Pass,
            format!("DANE authenticates this server: {}", each.join("; ")),
        ),
        (DaneCell::EncryptOnly, Outcome::Deliver(_)) => (
            Verdict::Warn,
            format!(
                "every TLSA record is unusable, so DANE senders require TLS but cannot \
                 authenticate: {}",
                each.join("; ")
            ),
        ),
        (_, Outcome::Defer(reason)) => (
            Verdict::Fail,
            format!(
                "DANE senders defer mail to this address ({reason}): {}",
                each.join("; ")
            ),
        ),
        _ => (Verdict::Info, each.join("; ")),
    };
    let mut finding = DomainFinding::new(DomainFindingId::Tlsa, scope.clone(), verdict, why);
    if verdict == Verdict::Fail {
        finding = finding.fix(
            "publish a TLSA record for the certificate the server presents (its `3 1 1` is \
             given below), or put back the key the records name; publish the new record before \
             deploying a new key",
        );
    }
    out.push(finding);
}

fn dane_advice(
    seen: &DomainSeen,
    host: &HostSeen,
    records: Option<&[Tlsa]>,
    recommended: Option<&Tlsa>,
    out: &mut Vec<DomainFinding>,
) {
    let owner = format!("_25._tcp.{}.", host.name);
    let record_text = recommended.map(|r| format!("`{owner} IN TLSA {}`", r.presentation()));
    match (&host.tlsa, records) {
        (
            TlsaSeen::Looked(Lookup::None {
                security: Security::Secure,
                ..
            }),
            _,
        ) => {
            let mut finding = DomainFinding::new(
                DomainFindingId::Tlsa,
                Scope::Host(host.name.clone()),
                Verdict::Warn,
                format!(
                    "no TLSA records at {owner} (validated): DANE does not protect mail to \
                     this host, so an attacker on the path can strip STARTTLS or present any \
                     certificate"
                ),
            );
            finding = finding.fix(match &record_text {
                Some(record) => format!(
                    "publish {record} (DANE-EE, the public key the server presents now, \
                     SHA-256), and a second one for the next key before any change of key"
                ),
                None => "publish a `3 1 1` TLSA record for the server's key (the host gave no \
                         certificate to compute it from)"
                    .to_owned(),
            });
            out.push(finding);
        }
        (_, Some(_)) => {
            if let Some(record) = &record_text
                && out.iter().any(|f| {
                    f.id == DomainFindingId::Tlsa
                        && f.verdict == Verdict::Fail
                        && matches!(&f.scope, Scope::Address(h, _) if *h == host.name)
                })
            {
                out.push(DomainFinding::new(
                    DomainFindingId::Tlsa,
                    Scope::Host(host.name.clone()),
                    Verdict::Info,
                    format!("the record that matches what the server presents now: {record}"),
                ));
            }
        }
        (TlsaSeen::NotLookedUp(NoDaneBecause::AddressesNotSecure), _) if seen.mx.is_secure() => {
            out.push(
                DomainFinding::new(
                    DomainFindingId::Addresses,
                    Scope::Host(host.name.clone()),
                    Verdict::Warn,
                    format!(
                        "the address records of {} are not validated: DANE cannot apply to it \
                         even though the MX records are signed (RFC 7672 §2.2.2)",
                        host.name
                    ),
                )
                .fix("sign the zone the MX host's name is in, and publish its DS"),
            );
        }
        _ => {}
    }
}

/// One line per address for what the host audit found beyond STARTTLS and the
/// certificate, with how to see the details.
fn host_audit_summary(
    scope: &Scope,
    audit: &crate::audit::probe::Audit,
    out: &mut Vec<DomainFinding>,
) {
    let covered = [
        FindingId::TlsHandshake,
        FindingId::StartTlsOffered,
        FindingId::CertificateChain,
        FindingId::CertificateName,
        FindingId::Certificate,
        FindingId::MailWithoutTls,
    ];
    let flagged: Vec<String> = audit
        .findings()
        .into_iter()
        .filter(|f| matches!(f.verdict, Verdict::Warn | Verdict::Fail))
        .filter(|f| !covered.contains(&f.id))
        .map(|f| format!("{} ({})", f.id, f.verdict.mark().to_ascii_lowercase()))
        .collect();
    if flagged.is_empty() {
        return;
    }
    let Scope::Address(host, ip) = scope else {
        return;
    };
    let target = match ip {
        IpAddr::V6(v6) => format!("[{v6}]:25"),
        IpAddr::V4(v4) => format!("{v4}:25"),
    };
    out.push(
        DomainFinding::new(
            DomainFindingId::HostAudit,
            scope.clone(),
            Verdict::Warn,
            format!("the host audit also flags: {}", flagged.join(", ")),
        )
        .fix(format!(
            "see each finding and its fix with `smtptui audit {target} --role mx --servername \
             {host}`"
        )),
    );
}

/// The domain's MTA-STS as senders read what was seen (RFC 8461 §3): which record counts,
/// and whether the policy host's answer is a policy they apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MtaSts {
    /// No `_mta-sts` record.
    NotPublished,
    /// The `_mta-sts` lookup gave no usable answer.
    LookupFailed(String),
    /// No valid record: senders assume there is no policy (§3.1), whatever the policy host
    /// serves.
    RecordInvalid {
        /// What is wrong with the records.
        problem: RecordProblem,
        /// What the policy host serves anyway.
        policy: Result<StsPolicy, PolicyUnavailable>,
    },
    /// A valid record, and no policy from the policy host: senders deliver as without one.
    Unavailable {
        /// The record.
        record: StsRecord,
        /// Why there is no policy.
        why: PolicyUnavailable,
    },
    /// A valid record and a policy senders apply.
    Applied {
        /// The record.
        record: StsRecord,
        /// The policy.
        policy: StsPolicy,
    },
}

impl MtaSts {
    /// Reads what was seen as a sender does.
    pub fn read(seen: &MtaStsSeen) -> Self {
        match seen {
            MtaStsSeen::NotPublished => Self::NotPublished,
            MtaStsSeen::LookupFailed(why) => Self::LookupFailed(why.clone()),
            MtaStsSeen::Published { records, fetch } => {
                let policy = mta_sts::policy_from(fetch);
                match mta_sts::discover(records) {
                    None => Self::NotPublished,
                    Some(Err(problem)) => Self::RecordInvalid { problem, policy },
                    Some(Ok(record)) => match policy {
                        Ok(policy) => Self::Applied { record, policy },
                        Err(why) => Self::Unavailable { record, why },
                    },
                }
            }
        }
    }

    /// The policy senders apply, if any (in any mode).
    pub fn applied(&self) -> Option<&StsPolicy> {
        match self {
            Self::Applied { policy, .. } => Some(policy),
            _ => None,
        }
    }
}

/// The MTA-STS column for a row: not published, unusable, mode none, or the policy's mode
/// with whether the MX host is listed and its TLS passes.
pub fn mta_sts_cell(
    sts: &MtaSts,
    host: &str,
    starttls: &TlsCell,
    certificate: &CertCell,
) -> MtaStsCell {
    match sts {
        MtaSts::NotPublished => MtaStsCell::NotPublished,
        MtaSts::Applied { policy, .. } if policy.mode == Mode::None => MtaStsCell::ModeNone,
        MtaSts::Applied { policy, .. } => MtaStsCell::Policy {
            mode: policy.mode,
            failure: sts_failure(policy, host, starttls, certificate),
        },
        MtaSts::LookupFailed(_) | MtaSts::RecordInvalid { .. } | MtaSts::Unavailable { .. } => {
            MtaStsCell::Unusable
        }
    }
}

/// What RFC 8461 §4 makes of an MX address under a policy: listed (§4.1), then TLS with a
/// certificate valid in the web PKI for the MX name (§4.2). An address that gave no session
/// has nothing to judge but its listing.
fn sts_failure(
    policy: &StsPolicy,
    host: &str,
    starttls: &TlsCell,
    certificate: &CertCell,
) -> Option<StsFailure> {
    if !policy.lists(host) {
        return Some(StsFailure::NotListed);
    }
    match (starttls, certificate) {
        (TlsCell::Tls(_), CertCell::Valid) | (TlsCell::Unreachable, _) => None,
        (TlsCell::Tls(_), CertCell::Invalid(kind)) => Some(StsFailure::Certificate(*kind)),
        (TlsCell::Tls(_), CertCell::None) => Some(StsFailure::Certificate(ProblemKind::NotChecked)),
        (TlsCell::NotOffered | TlsCell::Refused(_), _) => Some(StsFailure::NoStartTls),
        (TlsCell::Failed, _) => Some(StsFailure::Handshake),
    }
}

/// What an MTA-STS-enforcing sender does with a row. With a policy in `enforce` mode:
/// deliver (authenticated by the web PKI) when the MX is listed and its certificate is valid
/// for its name, defer otherwise; without a usable policy, or in `testing` or `none`, as an
/// opportunistic sender.
pub fn mta_sts_sender(cell: &MtaStsCell, host: &str, opportunistic: &Outcome) -> Outcome {
    if *opportunistic == Outcome::Unreachable {
        return Outcome::Unreachable;
    }
    match cell {
        MtaStsCell::Policy {
            mode: Mode::Enforce,
            failure,
        } => match failure {
            None => Outcome::Deliver(Channel::Authenticated),
            Some(failure) => Outcome::Defer(failure.reason(host)),
        },
        _ => opportunistic.clone(),
    }
}

/// Where an address fails the policy: a failure in `enforce`, a warning in `testing`. An MX
/// host that is not listed is said once for the host.
fn mta_sts_address_finding(
    seen: &DomainSeen,
    sts: &MtaSts,
    scope: &Scope,
    host: &str,
    cell: &MtaStsCell,
    out: &mut Vec<DomainFinding>,
) {
    let MtaStsCell::Policy {
        mode,
        failure: Some(failure),
    } = cell
    else {
        return;
    };
    let Some(policy) = sts.applied() else {
        return;
    };
    let scope = match failure {
        StsFailure::NotListed => {
            let host_scope = Scope::Host(host.to_owned());
            if out
                .iter()
                .any(|f| f.id == DomainFindingId::MtaSts && f.scope == host_scope)
            {
                return;
            }
            host_scope
        }
        _ => scope.clone(),
    };
    let reason = failure.reason(host);
    let (verdict, why) = if *mode == Mode::Enforce {
        (
            Verdict::Fail,
            format!("MTA-STS senders defer mail to it: {reason}"),
        )
    } else {
        (
            Verdict::Warn,
            format!(
                "{reason}: in mode testing MTA-STS senders deliver anyway and report it over \
                 TLS-RPT; in mode enforce they would defer mail to it"
            ),
        )
    };
    let record = mta_sts::record_text(&seen.domain, &mta_sts::new_id(seen.checked_at));
    let fix = match failure {
        StsFailure::NotListed => {
            let parent = host.split_once('.').map_or(host, |(_, parent)| parent);
            let listed = policy
                .mx
                .iter()
                .map(|p| format!("`mx: {}`", p.text))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "add `mx: {host}` (or `mx: *.{parent}`, which matches one label only) to the \
                 policy at {} next to {listed}, then publish a new id so that senders fetch it \
                 again: `{record}`",
                mta_sts::policy_url(&seen.domain)
            )
        }
        StsFailure::NoStartTls | StsFailure::Handshake => format!(
            "offer STARTTLS with a certificate from a public CA for {host}. Postfix: \
             smtpd_tls_security_level = may and smtpd_tls_chain_files = key, then leaf and \
             intermediates"
        ),
        StsFailure::Certificate(_) => format!(
            "use a certificate from a public CA whose names include {host}, with its full chain \
             (Postfix: smtpd_tls_chain_files = key, then leaf and intermediates)"
        ),
    };
    out.push(DomainFinding::new(DomainFindingId::MtaSts, scope, verdict, why).fix(fix));
}

/// A `max_age` in words: `604800 s (7 days)`.
fn age(seconds: u64) -> String {
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    let readable = if seconds >= 86_400 && seconds.is_multiple_of(86_400) {
        plural(seconds / 86_400, "day")
    } else if seconds >= 3_600 && seconds.is_multiple_of(3_600) {
        plural(seconds / 3_600, "hour")
    } else {
        return format!("{seconds} s");
    };
    format!("{seconds} s ({readable})")
}

/// The domain's MTA-STS findings: the record and the policy, what strict senders reject,
/// and the `max_age` limits.
fn mta_sts_findings(seen: &DomainSeen, sts: &MtaSts, rows: &[Row], out: &mut Vec<DomainFinding>) {
    let domain = &seen.domain;
    let url = mta_sts::policy_url(domain);
    let policy_host = mta_sts::policy_host(domain);
    let record = mta_sts::record_text(domain, &mta_sts::new_id(seen.checked_at));
    let mx_hosts: Vec<String> = seen.hosts.iter().map(|h| h.name.clone()).collect();
    let serve = format!(
        "serve the policy at {url} as text/plain with a certificate from a public CA valid \
         for {policy_host}"
    );
    let finding = |verdict, why: String| {
        DomainFinding::new(DomainFindingId::MtaSts, Scope::Domain, verdict, why)
    };
    match sts {
        MtaSts::NotPublished if seen.hosts.is_empty() => out.push(finding(
            Verdict::Info,
            format!("no MTA-STS record at _mta-sts.{domain} (no mail host to protect)"),
        )),
        MtaSts::NotPublished => {
            let failing: Vec<String> = rows
                .iter()
                .filter(|r| !matches!(r.certificate, CertCell::Valid))
                .map(|r| r.host.clone())
                .fold(Vec::new(), |mut hosts, host| {
                    if !hosts.contains(&host) {
                        hosts.push(host);
                    }
                    hosts
                });
            let caveat = if failing.is_empty() {
                String::new()
            } else {
                format!(
                    " (first give {} a certificate valid in the web PKI: in mode enforce \
                     senders would defer mail to it)",
                    failing.join(", ")
                )
            };
            out.push(
                finding(
                    Verdict::Warn,
                    format!(
                        "no MTA-STS policy: _mta-sts.{domain} has no `v=STSv1` record, so \
                         senders that enforce MTA-STS (RFC 8461) deliver as opportunistic ones, \
                         and an attacker on the path can strip STARTTLS or present any \
                         certificate"
                    ),
                )
                .fix(format!(
                    "publish `{record}` and {serve}:\n{}then, once TLS-RPT reports show no \
                     failures, change it to `mode: enforce` and publish a new id{caveat}",
                    mta_sts::policy_text(Mode::Testing, &mx_hosts)
                )),
            );
        }
        MtaSts::LookupFailed(why) => out.push(
            finding(
                Verdict::Warn,
                format!(
                    "the lookup of _mta-sts.{domain} failed ({why}): senders cannot tell \
                     whether a policy exists and deliver as without one"
                ),
            )
            .fix(format!(
                "make the name servers of {domain} answer TXT queries for _mta-sts.{domain}"
            )),
        ),
        MtaSts::RecordInvalid { problem, policy } => out.push(
            finding(
                Verdict::Warn,
                format!(
                    "{problem}: senders act as if {domain} had no MTA-STS policy (RFC 8461 \
                     §3.1){}",
                    match policy {
                        Ok(policy) => format!(
                            ", and never apply the mode {} policy that {url} serves",
                            policy.mode.name()
                        ),
                        Err(why) => format!("; besides, {why}"),
                    }
                ),
            )
            .fix(format!(
                "publish exactly one record: `{record}` (the id: 1 to 32 letters and digits)"
            )),
        ),
        MtaSts::Unavailable {
            record: published,
            why,
        } => out.push(
            finding(
                Verdict::Warn,
                format!(
                    "_mta-sts.{domain} announces a policy (id={}), but {why}: senders get no \
                     policy and deliver as without one (those that cached an earlier one keep \
                     it until its max_age runs out)",
                    published.id
                ),
            )
            .fix(unavailable_fix(why, domain, &url, &policy_host, &mx_hosts)),
        ),
        MtaSts::Applied {
            record: published,
            policy,
        } => applied_findings(seen, published, policy, &record, out),
    }
}

fn applied_findings(
    seen: &DomainSeen,
    published: &StsRecord,
    policy: &StsPolicy,
    record: &str,
    out: &mut Vec<DomainFinding>,
) {
    let domain = &seen.domain;
    let url = mta_sts::policy_url(domain);
    let finding = |verdict, why: String| {
        DomainFinding::new(DomainFindingId::MtaSts, Scope::Domain, verdict, why)
    };
    let patterns = policy
        .mx
        .iter()
        .map(|p| p.text.clone())
        .collect::<Vec<_>>()
        .join(", ");
    let summary = format!(
        "policy id={} from {url} (certificate valid for {}): mode {}{}, max_age {}",
        published.id,
        mta_sts::policy_host(domain),
        policy.mode.name(),
        if patterns.is_empty() {
            String::new()
        } else {
            format!(", mx {patterns}")
        },
        age(policy.max_age)
    );
    out.push(match policy.mode {
        Mode::Enforce => finding(
            Verdict::Pass,
            format!(
                "{summary}: senders that enforce MTA-STS deliver only to listed MX hosts, over \
                 TLS with a certificate valid for the MX name"
            ),
        ),
        Mode::Testing => finding(
            Verdict::Warn,
            format!(
                "{summary}: in mode testing senders report TLS failures (TLS-RPT) but deliver \
                 anyway, so the policy protects no mail yet"
            ),
        )
        .fix(format!(
            "once TLS-RPT reports show no failures, serve `mode: enforce` and publish a new id: \
             `{record}`"
        )),
        Mode::None => finding(
            Verdict::Info,
            format!(
                "{summary}: mode none withdraws the policy (RFC 8461 §5): senders drop any \
                 policy they cached and act as without one"
            ),
        ),
    });
    let (serving, text): (Vec<&str>, Vec<&str>) = (
        policy
            .deviations
            .iter()
            .filter(|d| d.serving)
            .map(|d| d.why.as_str())
            .collect(),
        policy
            .deviations
            .iter()
            .filter(|d| !d.serving)
            .map(|d| d.why.as_str())
            .collect(),
    );
    if !serving.is_empty() {
        out.push(finding(Verdict::Warn, serving.join("; ")).fix(format!(
            "serve {url} as text/plain (nginx: `default_type text/plain;` in its location; \
                 Apache: `ForceType text/plain`)"
        )));
    }
    if !text.is_empty() {
        out.push(
            finding(
                Verdict::Warn,
                format!(
                    "the policy is applied by lenient senders only: {}",
                    text.join("; ")
                ),
            )
            .fix(format!(
                "serve the policy as RFC 8461 §3.2 writes it, then publish a new id \
                 (`{record}`):\n{}",
                policy.canonical()
            )),
        );
    }
    if policy.max_age > MAX_AGE_LIMIT {
        out.push(
            finding(
                Verdict::Warn,
                format!(
                    "max_age {} is above the largest RFC 8461 §3.2 allows ({MAX_AGE_LIMIT} s, a \
                     year): strict senders reject the policy, others keep it a year at most",
                    policy.max_age
                ),
            )
            .fix(format!(
                "serve `max_age: 604800` (a week) up to `max_age: {MAX_AGE_LIMIT}`, then publish \
                 a new id: `{record}`"
            )),
        );
    } else if policy.mode == Mode::Enforce && policy.max_age < MAX_AGE_SHORT {
        out.push(
            finding(
                Verdict::Warn,
                format!(
                    "max_age {} is short: each time a cached policy expires, an attacker who \
                     blocks the fetch of {url} keeps senders opportunistic; RFC 8461 §3.2 \
                     recommends weeks",
                    age(policy.max_age)
                ),
            )
            .fix(format!(
                "serve `max_age: 604800` (a week) or more, then publish a new id: `{record}`"
            )),
        );
    }
}

fn unavailable_fix(
    why: &PolicyUnavailable,
    domain: &str,
    url: &str,
    host: &str,
    mx_hosts: &[String],
) -> String {
    match why {
        PolicyUnavailable::NoAddress(_) => format!(
            "publish an address (A, AAAA) for {host} on a web server that serves the policy at \
             {url}"
        ),
        PolicyUnavailable::Unreachable(_) => {
            format!("make {host} answer HTTPS on port 443 from the Internet")
        }
        PolicyUnavailable::Certificate(_) => format!(
            "give {host} a certificate from a public CA whose names include {host} (or \
             *.{domain}), with its full chain"
        ),
        PolicyUnavailable::Tls(_) => {
            format!("make {host} offer TLS 1.2 or 1.3 with a certificate valid for {host}")
        }
        PolicyUnavailable::Http(_) | PolicyUnavailable::TimedOut(_) => {
            format!("serve the policy at {url} as a static file of at most 64 KiB")
        }
        PolicyUnavailable::Redirect { .. } => format!(
            "serve the policy file itself at {url} with status 200, on {host} itself (nginx: \
             `location = /.well-known/mta-sts.txt {{ default_type text/plain; alias \
             /path/to/mta-sts.txt; }}`)"
        ),
        PolicyUnavailable::Status { .. } => {
            format!("serve the policy file at {url} with status 200")
        }
        PolicyUnavailable::Invalid(_) => format!(
            "serve a valid policy at {url}, for example (mode testing first, enforce once \
             TLS-RPT reports are clean):\n{}",
            mta_sts::policy_text(Mode::Testing, mx_hosts)
        ),
    }
}

/// The domain's TLS-RPT finding: where senders report, or why they cannot.
fn tls_rpt_findings(seen: &DomainSeen, out: &mut Vec<DomainFinding>) {
    let domain = &seen.domain;
    let record = tls_rpt::record_text(domain);
    let finding = |verdict, why: String| {
        DomainFinding::new(DomainFindingId::TlsRpt, Scope::Domain, verdict, why)
    };
    let fix = format!("publish `{record}` (any mailbox that takes a daily JSON report)");
    let records = match &seen.tls_rpt {
        TlsRptSeen::Published(records) => records,
        TlsRptSeen::LookupFailed(why) => {
            out.push(
                finding(
                    Verdict::Warn,
                    format!(
                        "the lookup of _smtp._tls.{domain} failed ({why}): senders cannot find \
                         where to report TLS failures"
                    ),
                )
                .fix(format!(
                    "make the name servers of {domain} answer TXT queries for \
                     _smtp._tls.{domain}"
                )),
            );
            return;
        }
        TlsRptSeen::NotPublished => &Vec::new(),
    };
    match tls_rpt::discover(records) {
        None if seen.hosts.is_empty() => out.push(finding(
            Verdict::Info,
            format!("no TLS-RPT record at _smtp._tls.{domain} (no mail host to report on)"),
        )),
        None => out.push(
            finding(
                Verdict::Warn,
                format!(
                    "no TLS-RPT record at _smtp._tls.{domain}: senders that meet TLS failures \
                     with the MX hosts (a DANE or MTA-STS policy not met, STARTTLS stripped) \
                     have nowhere to report them (RFC 8460)"
                ),
            )
            .fix(fix),
        ),
        Some(Err(tls_rpt::RecordProblem::Several(several))) => out.push(
            finding(
                Verdict::Warn,
                format!(
                    "{} records at _smtp._tls.{domain} begin with v=TLSRPTv1, and RFC 8460 §3 \
                     wants exactly one: senders send no reports",
                    several.len()
                ),
            )
            .fix(format!("keep one record: `{record}`")),
        ),
        Some(Err(tls_rpt::RecordProblem::Syntax { record: text, why })) => out.push(
            finding(
                Verdict::Warn,
                format!(
                    "the TLS-RPT record \"{}\" is invalid ({why}): senders send no reports",
                    escape_str(&text)
                ),
            )
            .fix(fix),
        ),
        Some(Ok(parsed)) => {
            let usable: Vec<&str> = parsed.usable().collect();
            let unusable: Vec<String> = parsed
                .rua
                .iter()
                .filter_map(|(uri, why)| why.as_ref().map(|why| format!("{uri}: {why}")))
                .collect();
            out.push(if usable.is_empty() {
                finding(
                    Verdict::Warn,
                    format!(
                        "the TLS-RPT record \"{}\" names nowhere senders can report to ({}): \
                         reports go nowhere",
                        escape_str(&parsed.text),
                        unusable.join("; ")
                    ),
                )
                .fix(fix)
            } else if !unusable.is_empty() {
                finding(
                    Verdict::Warn,
                    format!(
                        "senders report TLS failures to {}, but not to {}",
                        usable.join(", "),
                        unusable.join("; ")
                    ),
                )
                .fix("give each rua URI as mailto:ADDRESS or https://HOST/PATH")
            } else {
                finding(
                    Verdict::Pass,
                    format!(
                        "senders report TLS failures with the MX hosts to {} (RFC 8460)",
                        usable.join(", ")
                    ),
                )
            });
        }
    }
}

/// The Postfix settings that make an outbound server enforce TLS where the destination
/// publishes DANE, and keep it opportunistic elsewhere.
const SENDING_FIX: &str = "smtp_tls_security_level = dane and smtp_dns_support_level = dnssec \
    (with a validating resolver: /etc/resolv.conf pointing at it, `options trust-ad`), and \
    smtp_tls_policy_maps for per-destination rules (`example.com secure`)";

fn sending_findings(seen: &SendingSeen, findings: &mut Vec<DomainFinding>) {
    use crate::lab::grade::SecurityLevel;
    let senders = match seen {
        SendingSeen::NotChecked => {
            findings.push(DomainFinding::new(
                DomainFindingId::Sending,
                Scope::Domain,
                Verdict::Info,
                format!(
                    "the domain's own outbound server is not graded by this audit (only the \
                     receiving side is; grade it by sending to smtptui lab --profile grade and \
                     give its report with --sending-report); to enforce TLS to domains that \
                     publish DANE, Postfix needs {SENDING_FIX}"
                ),
            ));
            return;
        }
        SendingSeen::Graded(senders) => senders,
    };
    if senders.is_empty() {
        findings.push(DomainFinding::new(
            DomainFindingId::Sending,
            Scope::Domain,
            Verdict::Info,
            "the grade report holds no sender yet: no server has delivered to the grading MX"
                .to_owned(),
        ));
    }
    for sender in senders {
        let scope = Scope::Sender {
            ehlo: sender.ehlo.clone(),
            address: sender.address.clone(),
        };
        let (verdict, why, fix) = match sender.level {
            Some(SecurityLevel::Dane) => (
                Verdict::Pass,
                "behaved like smtp_tls_security_level = dane: TLS enforced where TLSA records \
                 vouch for the MX, a certificate they do not name refused, no fallback to \
                 cleartext"
                    .to_owned(),
                None,
            ),
            Some(SecurityLevel::Verify) => (
                Verdict::Pass,
                "behaved like smtp_tls_security_level = verify (or secure): TLS enforced with a \
                 CA-signed certificate for the MX name; a certificate only DANE vouches for is \
                 refused (for destinations that publish DANE, smtp_tls_security_level = dane \
                 does better)"
                    .to_owned(),
                None,
            ),
            Some(SecurityLevel::Encrypt) => (
                Verdict::Warn,
                "behaved like smtp_tls_security_level = encrypt: TLS always, but any \
                 certificate taken, so whoever sits on the path can read the mail"
                    .to_owned(),
                Some(SENDING_FIX.to_owned()),
            ),
            Some(SecurityLevel::May) => (
                Verdict::Warn,
                "behaved like smtp_tls_security_level = may: TLS when offered, any certificate, \
                 and cleartext when STARTTLS is stripped or refused"
                    .to_owned(),
                Some(SENDING_FIX.to_owned()),
            ),
            Some(SecurityLevel::None) => (
                Verdict::Warn,
                "behaved like smtp_tls_security_level = none: never used STARTTLS, every \
                 message left in cleartext"
                    .to_owned(),
                Some(SENDING_FIX.to_owned()),
            ),
            None if sender.state == "contradictory" => (
                Verdict::Warn,
                format!(
                    "behaved like no smtp_tls_security_level: {}",
                    sender.summary
                ),
                Some(SENDING_FIX.to_owned()),
            ),
            None => (
                Verdict::Info,
                format!("not graded yet: {}", sender.summary),
                None,
            ),
        };
        let retry = match sender.retry.as_str() {
            "retried" => "; it retried after a temporary failure (450)",
            "waiting" => "; it has not come back yet after a temporary failure (450)",
            _ => "",
        };
        let mut finding = DomainFinding::new(
            DomainFindingId::Sending,
            scope,
            verdict,
            format!("{why}{retry}"),
        );
        if let Some(fix) = fix {
            finding = finding.fix(fix);
        }
        findings.push(finding);
    }
}
