//! The findings model and the judging: what the probes saw, and what that means for a server
//! in a given role.
//!
//! Everything here is pure: [`Observations`] is plain data filled in by [`super::probe`], and
//! [`judge`] turns it into [`Finding`]s without touching the network. The same observation can
//! deserve opposite verdicts depending on the port's role: an MX that refuses mail without TLS
//! turns away legitimate senders, while a submission port that takes mail or AUTH without TLS
//! exposes its users' passwords. Each fix is worded for the server software the greeting or
//! EHLO reply names ([`super::fixes`]).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::fixes::{Fix, NotSentBecause, ServerKind};
use super::smuggling::{EndOfData, Outcome, SmugglingSeen, Transport};
use super::versions::{HelloAnswer, TlsVersion};
use crate::proto::reply::EnhancedCode;
use crate::tls::{ProblemKind, TlsInfo, Verification};

/// What the audited port is for; it decides which answers are right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Receives mail from other servers (port 25): STARTTLS offered, never required.
    Mx,
    /// Receives mail from the domain's own users (587, 465): TLS before AUTH and mail.
    Submission,
}

impl Role {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mx => "mx",
            Self::Submission => "submission",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "mx" => Ok(Self::Mx),
            "submission" => Ok(Self::Submission),
            _ => Err(format!("unknown role {text:?}; choose mx or submission")),
        }
    }
}

/// How the role was decided, shown in the report so a surprising verdict can be traced back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleSource {
    /// Given with `--role`.
    Flag,
    /// From a well-known port: 25 is an MX, 587 and 465 are submission.
    WellKnownPort(u16),
    /// Another port, and the server advertised AUTH (before or after TLS): submission.
    AuthAdvertised,
    /// Another port, and no AUTH anywhere: an MX.
    NoAuthAdvertised,
}

/// The role and how it was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleChoice {
    /// The role the findings are judged against.
    pub role: Role,
    /// Why this role.
    pub source: RoleSource,
}

impl RoleChoice {
    /// The role from the well-known port alone, if the port tells.
    pub fn from_port(port: u16) -> Option<Self> {
        let role = match port {
            25 => Role::Mx,
            587 | 465 => Role::Submission,
            _ => return None,
        };
        Some(Self {
            role,
            source: RoleSource::WellKnownPort(port),
        })
    }

    /// Decides the role: the flag wins, then a well-known port, then whether the server
    /// advertises AUTH at all (only submission servers need to; an MX that advertises it is
    /// judged by the stricter rules, which is the safe mistake).
    pub fn decide(flag: Option<Role>, port: u16, auth_advertised: bool) -> Self {
        if let Some(role) = flag {
            return Self {
                role,
                source: RoleSource::Flag,
            };
        }
        Self::from_port(port).unwrap_or(if auth_advertised {
            Self {
                role: Role::Submission,
                source: RoleSource::AuthAdvertised,
            }
        } else {
            Self {
                role: Role::Mx,
                source: RoleSource::NoAuthAdvertised,
            }
        })
    }

    /// A sentence saying how the role was decided.
    pub fn explain(&self) -> String {
        match self.source {
            RoleSource::Flag => format!("{} (given with --role)", self.role),
            RoleSource::WellKnownPort(port) => {
                format!("{} (port {port} is a {} port)", self.role, self.role)
            }
            RoleSource::AuthAdvertised => format!(
                "{} (not a well-known port, and the server advertises AUTH; give --role mx if \
                 this is an MX)",
                self.role
            ),
            RoleSource::NoAuthAdvertised => format!(
                "{} (not a well-known port, and the server advertises no AUTH; give --role \
                 submission if users submit mail here)",
                self.role
            ),
        }
    }
}

/// How a finding is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Right for the role.
    Pass,
    /// Worth changing; not an exposure by itself.
    Warn,
    /// Wrong for the role: credentials or mail exposed, clients will fail, or the audit could
    /// not establish what it set out to check.
    Fail,
    /// Context, not judged.
    Info,
}

impl Verdict {
    /// The mark shown in the report: `PASS`, `WARN`, `FAIL`, `INFO`.
    pub fn mark(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Warn => "WARN",
            Self::Fail => "FAIL",
            Self::Info => "INFO",
        }
    }
}

/// What a finding is about. Its [`name`](Self::name) is the stable identifier in the report
/// and in `--json`, for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FindingId {
    /// The role the findings are judged against.
    Role,
    /// The server software, as far as it says.
    Server,
    /// Audited from a loopback or private address.
    VantagePoint,
    /// The greeting.
    Greeting,
    /// The audited connection used implicit TLS.
    Transport,
    /// What EHLO advertised before TLS.
    ExtensionsBeforeTls,
    /// Whether STARTTLS is offered.
    StartTlsOffered,
    /// Whether AUTH is advertised before TLS.
    AuthAdvertisedBeforeTls,
    /// Whether AUTH is taken before TLS.
    AuthAcceptedBeforeTls,
    /// Whether mail is taken before TLS.
    MailWithoutTls,
    /// The TLS handshake.
    TlsHandshake,
    /// Whether TLS 1.0 or 1.1 are accepted too.
    TlsOldVersions,
    /// The certificate chain.
    CertificateChain,
    /// No certificate, or one that could not be read.
    Certificate,
    /// The certificate's names.
    CertificateName,
    /// The certificate's validity.
    CertificateExpiry,
    /// The certificate's key.
    CertificateKey,
    /// What EHLO advertised inside TLS.
    ExtensionsAfterTls,
    /// STARTTLS advertised inside TLS.
    StartTlsAfterTls,
    /// AUTH inside TLS.
    AuthAfterTls,
    /// The STARTTLS command injection probe.
    StartTlsInjection,
    /// Implicit TLS on another port.
    ImplicitTls,
    /// The SMTP smuggling probe as a whole: what was sent where, or why nothing could be.
    SmugglingProbe,
    /// Whether the server ends a message at one non-standard end-of-data sequence.
    Smuggling(EndOfData),
    /// The probes stopped before the end.
    ProbingCutShort,
}

impl FindingId {
    /// The identifier as shown: `auth-accepted-before-tls`, ...
    pub fn name(self) -> &'static str {
        match self {
            Self::Role => "role",
            Self::Server => "server",
            Self::VantagePoint => "vantage-point",
            Self::Greeting => "greeting",
            Self::Transport => "transport",
            Self::ExtensionsBeforeTls => "extensions-before-tls",
            Self::StartTlsOffered => "starttls-offered",
            Self::AuthAdvertisedBeforeTls => "auth-advertised-before-tls",
            Self::AuthAcceptedBeforeTls => "auth-accepted-before-tls",
            Self::MailWithoutTls => "mail-without-tls",
            Self::TlsHandshake => "tls-handshake",
            Self::TlsOldVersions => "tls-old-versions",
            Self::CertificateChain => "certificate-chain",
            Self::Certificate => "certificate",
            Self::CertificateName => "certificate-name",
            Self::CertificateExpiry => "certificate-expiry",
            Self::CertificateKey => "certificate-key",
            Self::ExtensionsAfterTls => "extensions-after-tls",
            Self::StartTlsAfterTls => "starttls-after-tls",
            Self::AuthAfterTls => "auth-after-tls",
            Self::StartTlsInjection => "starttls-injection",
            Self::ImplicitTls => "implicit-tls",
            Self::SmugglingProbe => "smuggling-probe",
            Self::Smuggling(EndOfData::LfDotLf) => "smuggling-lf-dot-lf",
            Self::Smuggling(EndOfData::LfDotCrLf) => "smuggling-lf-dot-crlf",
            Self::Smuggling(EndOfData::CrLfDotLf) => "smuggling-crlf-dot-lf",
            Self::Smuggling(EndOfData::CrDotCr) => "smuggling-cr-dot-cr",
            Self::ProbingCutShort => "probing-cut-short",
        }
    }
}

impl fmt::Display for FindingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One judged observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What the finding is about.
    pub id: FindingId,
    /// The verdict.
    pub verdict: Verdict,
    /// One sentence: what was seen and why it matters.
    pub why: String,
    /// For warn and fail: the change that fixes this finding, in the terms of the server
    /// software that answered (Postfix's, marked as such, when it did not say).
    pub fix: Option<String>,
}

impl Finding {
    fn new(id: FindingId, verdict: Verdict, why: impl Into<String>) -> Self {
        Self {
            id,
            verdict,
            why: why.into(),
            fix: None,
        }
    }

    fn fix(mut self, fix: &Fix, server: ServerKind) -> Self {
        self.fix = Some(fix.text(server));
        self
    }
}

/// A reply reduced to what judging needs: its code, enhanced code and text, already escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyBrief {
    /// The three-digit code.
    pub code: u16,
    /// The enhanced status code, when the reply has one.
    pub enhanced: Option<EnhancedCode>,
    /// Code and text of every line joined, escaped for display.
    pub summary: String,
}

impl From<&crate::proto::reply::Reply> for ReplyBrief {
    fn from(reply: &crate::proto::reply::Reply) -> Self {
        Self {
            code: reply.code.value(),
            enhanced: reply.enhanced,
            summary: reply.summary(),
        }
    }
}

/// What a refusal says must come first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// TLS: the text names STARTTLS, TLS, SSL or encryption, or the enhanced code is X.7.10
    /// or X.7.11 (encryption needed).
    Tls,
    /// Authentication (RFC 4954's `530 5.7.0 Authentication required`).
    Auth,
    /// Neither is said.
    Unstated,
}

impl Requirement {
    /// Reads a refusal. `530 5.7.0` alone decides nothing: RFC 3207 uses it for "Must issue a
    /// STARTTLS command first" and RFC 4954 for "Authentication required".
    pub fn of(reply: &ReplyBrief) -> Self {
        let text = reply.summary.to_ascii_lowercase();
        let words: Vec<&str> = text
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        let encryption_code = reply
            .enhanced
            .is_some_and(|e| e.subject == 7 && matches!(e.detail, 10 | 11));
        if encryption_code
            || text.contains("encrypt")
            || words
                .iter()
                .any(|w| matches!(*w, "starttls" | "tls" | "ssl" | "tlsv1"))
        {
            Self::Tls
        } else if words.iter().any(|w| {
            matches!(
                *w,
                "auth" | "authentication" | "authenticate" | "authenticated" | "unauthenticated"
            )
        }) {
            Self::Auth
        } else {
            Self::Unstated
        }
    }
}

/// What one EHLO answered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EhloSeen {
    /// The domain and text on the first line, escaped.
    pub greeting: String,
    /// The extension keywords, in order.
    pub extensions: Vec<String>,
    /// The SASL mechanisms advertised with AUTH, upper-cased.
    pub auth_mechanisms: Vec<String>,
    /// Whether STARTTLS was advertised.
    pub starttls: bool,
}

/// What the server did with `AUTH <mechanism>` before TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthProbeSeen {
    /// It did not start an exchange (530, 538, 503, ...).
    Refused(ReplyBrief),
    /// It sent a 334 challenge: it would have taken credentials. Cancelled with `*`.
    Challenged {
        /// The mechanism probed.
        mechanism: String,
    },
}

/// How the STARTTLS step went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartTlsSeen {
    /// Not tried: the audited connection used implicit TLS.
    NotApplicable,
    /// The probes stopped before STARTTLS.
    NotReached,
    /// STARTTLS was not advertised, so it was not sent.
    NotOffered,
    /// Answered with something other than 220.
    Refused(ReplyBrief),
    /// Cleartext bytes followed the 220 before the handshake (a response injection); the
    /// session was aborted. What arrived.
    Injected(String),
    /// The handshake failed; the error as the engine describes it.
    HandshakeFailed(String),
    /// TLS is up.
    Established(Box<TlsInfo>),
}

/// What the older-style TLS hellos of [`super::versions`] learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionProbe {
    /// Not run (no TLS attempted, or the handshake failed for another reason).
    NotRun,
    /// After a failed handshake: the answer to a hello offering TLS 1.0 to 1.2 with older
    /// cipher suites too.
    AfterFailure(HelloAnswer),
    /// After a handshake that worked: the answers to hellos offering at most TLS 1.1 and,
    /// when that was taken, at most TLS 1.0; each with the version offered.
    OldVersions(Vec<(TlsVersion, HelloAnswer)>),
    /// The probe could not complete; why.
    Inconclusive(String),
}

/// The pipelined `STARTTLS\r\nNOOP\r\n` probe (CVE-2011-0411 class).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InjectionSeen {
    /// Not run (no working STARTTLS, or implicit TLS).
    NotRun,
    /// The pipelined NOOP was discarded: nothing arrived inside TLS unasked.
    Safe,
    /// STARTTLS with a command pipelined behind it was refused: no TLS session to inject into.
    Refused(ReplyBrief),
    /// The server aborted the handshake after the pipelined STARTTLS (the error): no TLS
    /// session to inject into.
    Aborted(String),
    /// A reply arrived inside TLS before anything was sent there: the server executed the
    /// NOOP it had read in cleartext.
    Vulnerable(ReplyBrief),
    /// The probe could not finish; what went wrong.
    Inconclusive(String),
}

/// The separate implicit-TLS (RFC 8314) probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImplicitSeen {
    /// Not run: `--no-implicit`, an MX, or the audited connection was implicit TLS already.
    NotRun,
    /// Nothing accepted the TCP connection on that port.
    NothingListening {
        /// The port tried.
        port: u16,
    },
    /// Something listens, but TLS from the first byte did not work.
    Failed {
        /// The port tried.
        port: u16,
        /// Why.
        detail: String,
    },
    /// TLS from the first byte and a 220 greeting inside it.
    Works {
        /// The port tried.
        port: u16,
        /// What was negotiated, with the certificate verdict.
        tls: Box<TlsInfo>,
    },
}

/// Why the probes stopped before the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutShort {
    /// The step: `MAIL FROM:<>`, `STARTTLS`, ...
    pub during: String,
    /// What happened: a `421` reply (RFC 5321 §3.8), a timeout, a closed connection, a reply
    /// beyond the limits.
    pub why: String,
}

/// Where the audit was made from, as the main session's socket saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vantage {
    /// The server's address.
    pub peer: IpAddr,
    /// The audit's own address.
    pub local: IpAddr,
}

/// What kind of address, for the vantage-point note.
fn local_kind(ip: IpAddr) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) if v4.is_loopback() => Some("loopback"),
        IpAddr::V4(v4) if v4.is_private() => Some("private"),
        IpAddr::V4(v4) if v4.is_link_local() => Some("link-local"),
        // 100.64.0.0/10, shared address space behind carrier-grade NAT (RFC 6598).
        IpAddr::V4(v4) if v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64 => {
            Some("shared (CGNAT)")
        }
        IpAddr::V6(v6) if v6.is_loopback() => Some("loopback"),
        IpAddr::V6(v6) if (v6.segments()[0] & 0xfe00) == 0xfc00 => Some("unique local"),
        IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => Some("link-local"),
        _ => None,
    }
}

/// Everything the probes saw, as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observations {
    /// `host:port` audited.
    pub target: String,
    /// The audited port.
    pub port: u16,
    /// Whether the audited connection used implicit TLS from the first byte.
    pub implicit: bool,
    /// The 220 greeting; `None` when implicit TLS failed before any.
    pub greeting: Option<ReplyBrief>,
    /// The first EHLO (before TLS, or inside implicit TLS).
    pub ehlo_before: Option<EhloSeen>,
    /// The AUTH-before-TLS probe; `None` when not run (implicit TLS, or cut short).
    pub auth_probe: Option<AuthProbeSeen>,
    /// The reply to `MAIL FROM:<>` before TLS; `None` when not run.
    pub mail_before_tls: Option<ReplyBrief>,
    /// STARTTLS and the handshake.
    pub starttls: StartTlsSeen,
    /// The TLS details of an implicit-TLS audited connection.
    pub implicit_tls: Option<Box<TlsInfo>>,
    /// EHLO inside TLS (after STARTTLS); `None` when not reached.
    pub ehlo_after: Option<EhloSeen>,
    /// What the older-style TLS hellos learned.
    pub versions: VersionProbe,
    /// The command injection probe.
    pub injection: InjectionSeen,
    /// The implicit-TLS port probe.
    pub implicit_probe: ImplicitSeen,
    /// The SMTP smuggling probe, when `--smuggling-to` asked for it.
    pub smuggling: SmugglingSeen,
    /// Why the probes stopped early, if they did.
    pub cut_short: Option<CutShort>,
    /// Where the audit was made from, when the connection said.
    pub vantage: Option<Vantage>,
}

impl Observations {
    /// The server software named in the greeting or an EHLO reply, and where.
    pub fn server(&self) -> (ServerKind, &'static str) {
        let places = [
            (
                self.greeting.as_ref().map(|g| g.summary.as_str()),
                "the greeting",
            ),
            (
                self.ehlo_before.as_ref().map(|e| e.greeting.as_str()),
                "the EHLO reply",
            ),
            (
                self.ehlo_after.as_ref().map(|e| e.greeting.as_str()),
                "the EHLO reply inside TLS",
            ),
        ];
        places
            .into_iter()
            .find_map(|(text, place)| Some((ServerKind::named_in(text?)?, place)))
            .unwrap_or((ServerKind::Unknown, ""))
    }
}

/// Days before expiry under which a certificate is a warning (less for short-lived ones).
pub const EXPIRY_WARN_DAYS: i64 = 21;

/// Everything judging needs besides the observations.
struct Context<'a> {
    role: Role,
    server: ServerKind,
    seen: &'a Observations,
}

impl Context<'_> {
    /// A certificate problem: a failure for submission (clients check), a warning for an MX
    /// (few senders check; MTA-STS and DANE senders do).
    fn bad_cert(&self) -> Verdict {
        match self.role {
            Role::Mx => Verdict::Warn,
            Role::Submission => Verdict::Fail,
        }
    }
}

/// Judges the observations for the role. The order of the result is the report's order.
pub fn judge(role: &RoleChoice, seen: &Observations) -> Vec<Finding> {
    let (server, named_in) = seen.server();
    let cx = Context {
        role: role.role,
        server,
        seen,
    };
    let mut out = vec![Finding::new(
        FindingId::Role,
        Verdict::Info,
        format!("judged as {}", role.explain()),
    )];
    out.push(Finding::new(
        FindingId::Server,
        Verdict::Info,
        match server {
            ServerKind::Unknown => "the greeting and EHLO reply do not name the server \
                 software; fixes give Postfix's settings, marked 'Postfix:'"
                .to_owned(),
            known => format!("{known}, as {named_in} says; fixes give its settings"),
        },
    ));
    vantage(&cx, &mut out);
    if let Some(greeting) = &seen.greeting {
        out.push(Finding::new(
            FindingId::Greeting,
            Verdict::Info,
            format!("banner: {}", greeting.summary),
        ));
    }
    if seen.implicit {
        out.push(Finding::new(
            FindingId::Transport,
            Verdict::Info,
            "the audited connection used implicit TLS from the first byte, so the cleartext \
             probes (AUTH and MAIL before TLS, STARTTLS) do not apply",
        ));
    }
    if let Some(ehlo) = &seen.ehlo_before {
        out.push(Finding::new(
            FindingId::ExtensionsBeforeTls,
            Verdict::Info,
            format!(
                "EHLO {}advertised: {}",
                if seen.implicit { "" } else { "before TLS " },
                ehlo.extensions.join(", ")
            ),
        ));
    }
    if !seen.implicit {
        cleartext_findings(&cx, &mut out);
    }
    tls_findings(&cx, &mut out);
    after_tls_findings(&cx, &mut out);
    injection(&cx, &mut out);
    implicit_probe(&cx, &mut out);
    smuggling(&cx, &mut out);
    if let Some(cut) = &seen.cut_short {
        let missing = missing_checks(seen);
        out.push(
            Finding::new(
                FindingId::ProbingCutShort,
                Verdict::Fail,
                format!(
                    "the audit could not finish: {} (at {}){}",
                    cut.why,
                    cut.during,
                    if missing.is_empty() {
                        String::new()
                    } else {
                        format!("; not checked: {}", missing.join(", "))
                    }
                ),
            )
            .fix(&Fix::Incomplete, server),
        );
    }
    out
}

/// The checks a cut-short audit did not reach.
fn missing_checks(seen: &Observations) -> Vec<&'static str> {
    let mut missing = Vec::new();
    if seen.implicit {
        if seen.ehlo_before.is_none() {
            missing.push("EHLO inside TLS");
        }
        return missing;
    }
    if seen.auth_probe.is_none() {
        missing.push("AUTH before TLS");
    }
    if seen.mail_before_tls.is_none() {
        missing.push("MAIL before TLS");
    }
    match seen.starttls {
        StartTlsSeen::NotReached => {
            missing.push("STARTTLS, the handshake and the certificate");
            missing.push("EHLO inside TLS");
            missing.push("STARTTLS command injection");
        }
        StartTlsSeen::Established(_) if seen.ehlo_after.is_none() => {
            missing.push("EHLO inside TLS");
            missing.push("STARTTLS command injection");
        }
        _ => {}
    }
    missing
}

fn vantage(cx: &Context<'_>, out: &mut Vec<Finding>) {
    let Some(Vantage { peer, local }) = cx.seen.vantage else {
        return;
    };
    let described = |ip: IpAddr| match local_kind(ip) {
        Some(kind) => format!("{ip} ({kind})"),
        None => ip.to_string(),
    };
    if local_kind(peer).is_none() && local_kind(local).is_none() {
        return;
    }
    out.push(Finding::new(
        FindingId::VantagePoint,
        Verdict::Info,
        format!(
            "audited from {} to {}: {}; remote users may see a different posture, so audit \
             from outside the network as well",
            described(local),
            described(peer),
            cx.server.local_trust()
        ),
    ));
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "nothing".to_owned()
    } else {
        items.join(" ")
    }
}

fn cleartext_findings(cx: &Context<'_>, out: &mut Vec<Finding>) {
    let (seen, server) = (cx.seen, cx.server);
    let Some(ehlo) = &seen.ehlo_before else {
        return;
    };
    // STARTTLS offered?
    if ehlo.starttls {
        out.push(Finding::new(
            FindingId::StartTlsOffered,
            Verdict::Pass,
            "STARTTLS is offered, so clients can encrypt the session (RFC 3207)",
        ));
    } else {
        let fix = match cx.role {
            Role::Mx => Fix::OfferStartTlsMx,
            Role::Submission => Fix::OfferStartTlsSubmission,
        };
        out.push(
            Finding::new(
                FindingId::StartTlsOffered,
                Verdict::Fail,
                "STARTTLS is not offered: every message (and any password) crosses readable by \
                 anyone on the path",
            )
            .fix(&fix, server),
        );
    }
    // AUTH advertised before TLS.
    if ehlo.auth_mechanisms.is_empty() {
        out.push(Finding::new(
            FindingId::AuthAdvertisedBeforeTls,
            Verdict::Pass,
            "AUTH is not advertised before TLS, so clients are not invited to send passwords in \
             cleartext",
        ));
    } else {
        out.push(
            Finding::new(
                FindingId::AuthAdvertisedBeforeTls,
                Verdict::Fail,
                format!(
                    "AUTH {} is advertised before TLS: clients that follow the EHLO send their \
                     password readable by anyone on the path (base64 is not encryption)",
                    list(&ehlo.auth_mechanisms)
                ),
            )
            .fix(&Fix::AuthOnlyInsideTls, server),
        );
    }
    // Would it take AUTH before TLS?
    match &seen.auth_probe {
        Some(AuthProbeSeen::Refused(reply)) => out.push(Finding::new(
            FindingId::AuthAcceptedBeforeTls,
            Verdict::Pass,
            format!(
                "AUTH before TLS is refused ({}); probed without sending any credential",
                reply.summary
            ),
        )),
        Some(AuthProbeSeen::Challenged { mechanism }) => out.push(
            Finding::new(
                FindingId::AuthAcceptedBeforeTls,
                Verdict::Fail,
                format!(
                    "AUTH {mechanism} before TLS was answered with a 334 challenge: the server \
                     takes passwords in cleartext (the probe cancelled with '*' and sent no \
                     credential)"
                ),
            )
            .fix(&Fix::AuthOnlyInsideTls, server),
        ),
        None => {}
    }
    if let Some(reply) = &seen.mail_before_tls {
        out.push(mail_finding(cx, reply));
    }
}

/// Is TLS required for mail? Decided from the reply's text and enhanced code, and from what
/// AUTH before TLS did: `530 5.7.0 Authentication required` only protects mail when AUTH
/// itself needs TLS.
fn mail_finding(cx: &Context<'_>, reply: &ReplyBrief) -> Finding {
    let server = cx.server;
    let auth_in_cleartext = matches!(cx.seen.auth_probe, Some(AuthProbeSeen::Challenged { .. }));
    let summary = &reply.summary;
    let finding = |verdict, why: String| Finding::new(FindingId::MailWithoutTls, verdict, why);
    if reply.code / 100 == 2 {
        return match cx.role {
            Role::Mx => finding(
                Verdict::Pass,
                format!(
                    "MAIL FROM:<> before TLS is accepted ({summary}): senders that cannot do \
                     TLS can still deliver, as an MX must allow (RFC 3207 §4)"
                ),
            ),
            Role::Submission => finding(
                Verdict::Fail,
                format!(
                    "MAIL FROM:<> before TLS is accepted ({summary}): users' mail (and their \
                     sessions) may cross in cleartext"
                ),
            )
            .fix(&Fix::RequireTlsForMail, server),
        };
    }
    match (Requirement::of(reply), cx.role, auth_in_cleartext) {
        (Requirement::Tls, Role::Submission, _) => finding(
            Verdict::Pass,
            format!("MAIL FROM:<> before TLS is refused with {summary}: submission requires TLS"),
        ),
        (Requirement::Tls, Role::Mx, _) => finding(
            Verdict::Warn,
            format!(
                "MAIL FROM:<> before TLS is refused ({summary}): legitimate senders without TLS \
                 are turned away; a publicly referenced MX must not require TLS (RFC 3207 §4)"
            ),
        )
        .fix(&Fix::MxMustNotRequireTls, server),
        (Requirement::Auth, Role::Submission, true) => finding(
            Verdict::Fail,
            format!(
                "MAIL FROM:<> before TLS is refused only until AUTH ({summary}), and AUTH is \
                 accepted before TLS: a user can log in and submit a whole message in cleartext"
            ),
        )
        .fix(&Fix::AuthOnlyInsideTls, server),
        (Requirement::Auth, Role::Submission, false) => finding(
            Verdict::Pass,
            format!(
                "MAIL FROM:<> before TLS needs AUTH ({summary}), and AUTH is refused before \
                 TLS: no mail is taken without TLS"
            ),
        ),
        (Requirement::Auth, Role::Mx, _) => finding(
            Verdict::Warn,
            format!(
                "MAIL FROM:<> before TLS is refused until AUTH ({summary}): other servers \
                 cannot deliver to an MX that demands AUTH"
            ),
        )
        .fix(&Fix::MxMustNotRequireAuth, server),
        // 530 means "do something first": STARTTLS (RFC 3207) or AUTH (RFC 4954).
        (Requirement::Unstated, Role::Submission, false) if reply.code == 530 => finding(
            Verdict::Pass,
            format!(
                "MAIL FROM:<> before TLS is refused with {summary}; whether TLS or AUTH is \
                 meant (530 is used for both), AUTH is refused before TLS, so no mail is taken \
                 without TLS"
            ),
        ),
        (Requirement::Unstated, Role::Submission, true) if reply.code == 530 => finding(
            Verdict::Warn,
            format!(
                "MAIL FROM:<> before TLS is refused with {summary}, which does not say whether \
                 TLS or AUTH must come first (530 is used for both, RFC 3207 and RFC 4954); \
                 AUTH is accepted before TLS, so mail may still be submitted in cleartext after \
                 it"
            ),
        )
        .fix(&Fix::AuthOnlyInsideTls, server),
        (Requirement::Unstated, Role::Mx, _) if reply.code == 530 => finding(
            Verdict::Warn,
            format!(
                "MAIL FROM:<> before TLS is refused with {summary}: 530 means TLS or AUTH must \
                 come first (RFC 3207, RFC 4954), and an MX must take mail with neither"
            ),
        )
        .fix(&Fix::MxMustNotRequireTls, server),
        (Requirement::Unstated, _, _) => finding(
            Verdict::Info,
            format!("MAIL FROM:<> before TLS got {summary}, which says nothing about TLS or AUTH"),
        ),
    }
}

fn tls_findings(cx: &Context<'_>, out: &mut Vec<Finding>) {
    let (seen, server) = (cx.seen, cx.server);
    match &seen.starttls {
        StartTlsSeen::NotApplicable
        | StartTlsSeen::NotReached
        | StartTlsSeen::NotOffered
        | StartTlsSeen::Established(_) => {}
        StartTlsSeen::Refused(reply) => out.push(
            Finding::new(
                FindingId::TlsHandshake,
                Verdict::Fail,
                format!(
                    "STARTTLS was advertised but refused with {}: clients fall back to \
                     cleartext or fail",
                    reply.summary
                ),
            )
            .fix(&Fix::StartTlsUnavailable, server),
        ),
        StartTlsSeen::Injected(detail) => out.push(
            Finding::new(
                FindingId::TlsHandshake,
                Verdict::Fail,
                format!(
                    "STARTTLS was not completed: {detail}; a client that read those bytes as \
                     the server's would be fooled"
                ),
            )
            .fix(&Fix::ResponseInjection, server),
        ),
        StartTlsSeen::HandshakeFailed(detail) => out.push(handshake_failure(cx, detail)),
    }
    let info = match &seen.starttls {
        StartTlsSeen::Established(info) => Some(info.as_ref()),
        _ => seen.implicit_tls.as_deref(),
    };
    if let Some(info) = info {
        tls_details(cx, info, out);
    }
}

/// A failed handshake, explained by what a hello offering TLS 1.0 to 1.2 with older cipher
/// suites got.
fn handshake_failure(cx: &Context<'_>, detail: &str) -> Finding {
    let server = cx.server;
    let fail = |why: String, fix: Fix| {
        Finding::new(FindingId::TlsHandshake, Verdict::Fail, why).fix(&fix, server)
    };
    match &cx.seen.versions {
        VersionProbe::AfterFailure(answer @ HelloAnswer::Accepted { version, .. })
            if version.is_deprecated() =>
        {
            fail(
                format!(
                    "the TLS handshake failed ({detail}): the server offers at most {version} (a \
                     hello offering TLS 1.0 to 1.2 got {answer}); TLS 1.0 and 1.1 are deprecated \
                     (RFC 8996) and current clients refuse them"
                ),
                Fix::OnlyOldTls,
            )
        }
        VersionProbe::AfterFailure(answer @ HelloAnswer::Accepted { cipher, .. })
            if !cipher.is_modern() =>
        {
            fail(
                format!(
                    "the TLS handshake failed ({detail}); a hello offering older cipher suites too \
                 got {answer}: the server has no cipher suite in common with current clients"
                ),
                Fix::ModernCiphers,
            )
        }
        VersionProbe::AfterFailure(answer @ HelloAnswer::Accepted { .. }) => fail(
            format!(
                "the TLS handshake failed ({detail}), although a hello offering TLS 1.0 to 1.2 \
                 got {answer}: look at the certificate, signature algorithms and key exchange \
                 groups"
            ),
            Fix::HandshakeFailed,
        ),
        VersionProbe::AfterFailure(answer) => fail(
            format!(
                "the TLS handshake failed ({detail}); a hello offering TLS 1.0 to 1.2 with older \
                 cipher suites got {answer} too, so which versions the server speaks is unknown"
            ),
            Fix::HandshakeFailed,
        ),
        VersionProbe::Inconclusive(why) => fail(
            format!(
                "the TLS handshake failed ({detail}); which TLS versions the server offers could \
                 not be probed: {why}"
            ),
            Fix::HandshakeFailed,
        ),
        VersionProbe::NotRun | VersionProbe::OldVersions(_) => fail(
            format!("the TLS handshake failed: {detail}"),
            Fix::HandshakeFailed,
        ),
    }
}

fn tls_details(cx: &Context<'_>, info: &TlsInfo, out: &mut Vec<Finding>) {
    let server = cx.server;
    let group = info
        .key_exchange
        .as_deref()
        .map(|g| format!(", key exchange {g}"))
        .unwrap_or_default();
    let verdict_note = if info.version == "TLSv1.3" {
        ""
    } else {
        "; TLS 1.3 is preferred where the TLS library has it"
    };
    out.push(Finding::new(
        FindingId::TlsHandshake,
        Verdict::Pass,
        format!(
            "{} with {}{group}{verdict_note}",
            info.version, info.cipher_suite
        ),
    ));
    out.push(old_versions(cx, info));
    certificate_findings(cx, info, out, server);
}

/// Whether TLS 1.0 and 1.1 are accepted next to the version this client negotiated, which
/// the handshake itself cannot tell (this client speaks only TLS 1.2 and 1.3).
fn old_versions(cx: &Context<'_>, info: &TlsInfo) -> Finding {
    let server = cx.server;
    match &cx.seen.versions {
        VersionProbe::OldVersions(answers) => {
            let mut accepted: Vec<TlsVersion> =
                answers.iter().filter_map(|(_, a)| a.accepted()).collect();
            accepted.sort();
            accepted.dedup();
            let told = answers
                .iter()
                .map(|(max, answer)| format!("a hello offering at most {max} got {answer}"))
                .collect::<Vec<_>>()
                .join("; ");
            if accepted.is_empty() {
                Finding::new(
                    FindingId::TlsOldVersions,
                    Verdict::Pass,
                    format!("TLS 1.0 and 1.1 are refused, as RFC 8996 requires ({told})"),
                )
            } else {
                let names = accepted
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" and ");
                // A warning for either role: current clients never pick them (and TLS 1.3
                // clients detect a downgrade), but clients that still speak nothing better
                // are left with them.
                Finding::new(
                    FindingId::TlsOldVersions,
                    Verdict::Warn,
                    format!(
                        "besides {}, the server accepts {names} ({told}); they are deprecated \
                         (RFC 8996), and clients that speak nothing newer are left with their \
                         weak cryptography",
                        info.version
                    ),
                )
                .fix(&Fix::AlsoOldTls, server)
            }
        }
        VersionProbe::Inconclusive(why) => Finding::new(
            FindingId::TlsOldVersions,
            Verdict::Fail,
            format!(
                "whether TLS 1.0 and 1.1 are accepted next to {} is unknown: this client \
                 speaks only TLS 1.2 and 1.3, and the probe with an older hello could not \
                 complete ({why})",
                info.version
            ),
        )
        .fix(&Fix::VersionsUnknown, server),
        VersionProbe::NotRun | VersionProbe::AfterFailure(_) => Finding::new(
            FindingId::TlsOldVersions,
            Verdict::Info,
            format!(
                "not probed whether TLS 1.0 and 1.1 are accepted next to {}: this client speaks \
                 only TLS 1.2 and 1.3",
                info.version
            ),
        ),
    }
}

/// The certificate fix that matches a verification problem.
fn certificate_fix(problem: ProblemKind, name: &str) -> Fix {
    match problem {
        ProblemKind::Expired | ProblemKind::NotYetValid => Fix::CertificateRenew,
        ProblemKind::NotValidForName => Fix::CertificateName(name.to_owned()),
        _ => Fix::CertificateChain,
    }
}

fn certificate_findings(
    cx: &Context<'_>,
    info: &TlsInfo,
    out: &mut Vec<Finding>,
    server: ServerKind,
) {
    let bad_cert = cx.bad_cert();
    match &info.verification {
        Verification::Verified => out.push(Finding::new(
            FindingId::CertificateChain,
            Verdict::Pass,
            format!(
                "the chain verifies to a trusted root for {}",
                info.server_name
            ),
        )),
        Verification::Failed(problem) if problem.problem_kind().is_about_the_leaf() => {
            out.push(Finding::new(
                FindingId::CertificateChain,
                Verdict::Info,
                format!(
                    "verification stopped at '{}', judged below; the chain itself was not \
                     judged separately",
                    problem.kind
                ),
            ));
        }
        Verification::Failed(problem) => out.push(
            Finding::new(
                FindingId::CertificateChain,
                bad_cert,
                format!("the certificate does not verify: {}", problem.detail),
            )
            .fix(
                &certificate_fix(problem.problem_kind(), &info.server_name),
                server,
            ),
        ),
    }
    let Some(leaf) = info.chain.first() else {
        out.push(
            Finding::new(
                FindingId::Certificate,
                bad_cert,
                "the server presented no certificate",
            )
            .fix(&Fix::CertificateChain, server),
        );
        return;
    };
    if let Some(error) = &leaf.parse_error {
        out.push(Finding::new(
            FindingId::Certificate,
            Verdict::Info,
            format!(
                "the leaf certificate could not be parsed ({error}); name, expiry and key not \
                 judged"
            ),
        ));
        return;
    }
    // Name.
    let name_ok = matches!(info.verification, Verification::Verified)
        || name_matches(&info.server_name, &leaf.sans);
    if name_ok {
        out.push(Finding::new(
            FindingId::CertificateName,
            Verdict::Pass,
            format!("the certificate is valid for {}", info.server_name),
        ));
    } else {
        out.push(
            Finding::new(
                FindingId::CertificateName,
                bad_cert,
                format!(
                    "the certificate is not valid for {}; it names {}",
                    info.server_name,
                    list(&leaf.sans)
                ),
            )
            .fix(&Fix::CertificateName(info.server_name.clone()), server),
        );
    }
    out.push(expiry_finding(cx, leaf));
    out.push(key_finding(&leaf.key, server));
}

/// Whole days from 1970-01-01 to the date of an RFC 3339 timestamp (`2036-11-28T21:33:42Z`).
/// A certificate's validity bound as a moment (the chain summary keeps it as RFC 3339 text).
fn moment(rfc3339: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).ok()
}

/// Expiry. The warning threshold is 21 days, or a third of the certificate's whole lifetime
/// when that is shorter: a certificate made for a few days (automated, or the practice lab's)
/// is renewed long before 21 days are left, and warning at once would be noise.
fn expiry_finding(cx: &Context<'_>, leaf: &crate::tls::CertSummary) -> Finding {
    let server = cx.server;
    let days = leaf.days_to_expiry;
    // Whole days between the two moments: counting calendar days instead made a 7-day
    // certificate issued an hour back read as 8 days when checked between 00:00 and 01:00.
    let lifetime = moment(&leaf.not_after)
        .zip(moment(&leaf.not_before))
        .map(|(end, start)| (end - start).whole_days());
    let threshold = lifetime.map_or(EXPIRY_WARN_DAYS, |life| {
        (life / 3).clamp(1, EXPIRY_WARN_DAYS)
    });
    let short_lived = lifetime
        .filter(|life| *life < 3 * EXPIRY_WARN_DAYS)
        .map(|life| {
            format!(
                "; a short-lived certificate ({life} days in all), so its renewal must be automatic"
            )
        })
        .unwrap_or_default();
    if days < 0 {
        Finding::new(
            FindingId::CertificateExpiry,
            cx.bad_cert(),
            format!(
                "the certificate expired {} days ago ({})",
                -days, leaf.not_after
            ),
        )
        .fix(&Fix::CertificateRenew, server)
    } else if days < threshold {
        Finding::new(
            FindingId::CertificateExpiry,
            Verdict::Warn,
            format!(
                "the certificate expires in {days} days ({}), under {threshold}{short_lived}",
                leaf.not_after
            ),
        )
        .fix(&Fix::CertificateRenew, server)
    } else {
        Finding::new(
            FindingId::CertificateExpiry,
            Verdict::Pass,
            format!(
                "the certificate is valid for {days} more days ({}){short_lived}",
                leaf.not_after
            ),
        )
    }
}

fn key_finding(key: &str, server: ServerKind) -> Finding {
    let rsa_bits = key
        .strip_prefix("RSA ")
        .and_then(|bits| bits.parse::<u32>().ok());
    match rsa_bits {
        Some(bits) if bits < 2048 => Finding::new(
            FindingId::CertificateKey,
            Verdict::Fail,
            format!("the certificate key is {key}, below the 2048-bit minimum for RSA"),
        )
        .fix(&Fix::CertificateKey, server),
        Some(_) => Finding::new(
            FindingId::CertificateKey,
            Verdict::Pass,
            format!("the certificate key is {key}"),
        ),
        None if key.starts_with("EC P-") || key.starts_with("Ed") => Finding::new(
            FindingId::CertificateKey,
            Verdict::Pass,
            format!("the certificate key is {key}"),
        ),
        None => Finding::new(
            FindingId::CertificateKey,
            Verdict::Info,
            format!("the certificate key is {key}, not judged"),
        ),
    }
}

/// Whether `name` is covered by the certificate's subjectAltName entries (`DNS:...`,
/// `IP:...`), with a single leading `*.` wildcard matching exactly one label (RFC 6125 §6.4.3).
pub fn name_matches(name: &str, sans: &[String]) -> bool {
    let name = name
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    sans.iter().any(|san| {
        if let Some(ip) = san.strip_prefix("IP:") {
            return ip.eq_ignore_ascii_case(&name);
        }
        let Some(dns) = san.strip_prefix("DNS:") else {
            return false;
        };
        let dns = dns.trim_end_matches('.').to_ascii_lowercase();
        match dns.strip_prefix("*.") {
            Some(suffix) => name
                .split_once('.')
                .is_some_and(|(first, rest)| !first.is_empty() && rest == suffix),
            None => dns == name,
        }
    })
}

fn after_tls_findings(cx: &Context<'_>, out: &mut Vec<Finding>) {
    let (seen, server) = (cx.seen, cx.server);
    let after = if seen.implicit {
        seen.ehlo_before.as_ref()
    } else {
        seen.ehlo_after.as_ref()
    };
    let Some(after) = after else {
        return;
    };
    if !seen.implicit {
        out.push(Finding::new(
            FindingId::ExtensionsAfterTls,
            Verdict::Info,
            format!(
                "EHLO inside TLS advertised: {}",
                after.extensions.join(", ")
            ),
        ));
    }
    if after.starttls {
        out.push(
            Finding::new(
                FindingId::StartTlsAfterTls,
                Verdict::Fail,
                "STARTTLS is still advertised inside TLS, which RFC 3207 §4.2 forbids; clients \
                 may try to start TLS twice and fail",
            )
            .fix(&Fix::StartTlsAfterTls, server),
        );
    } else if !seen.implicit {
        out.push(Finding::new(
            FindingId::StartTlsAfterTls,
            Verdict::Pass,
            "STARTTLS is no longer advertised inside TLS (RFC 3207 §4.2)",
        ));
    }
    let mechanisms = list(&after.auth_mechanisms);
    // A mechanism that makes the server keep every password (or an equivalent key) is worth
    // saying, though inside TLS nothing crosses readable.
    let obsolete = after
        .auth_mechanisms
        .iter()
        .find(|m| m.eq_ignore_ascii_case("CRAM-MD5") || m.eq_ignore_ascii_case("DIGEST-MD5"))
        .map(|m| {
            format!(
                "; {} among them is obsolete: to check it the server must store every password \
                 itself (or an equivalent key), so a stolen password database is a list of \
                 passwords",
                m.to_ascii_uppercase()
            )
        })
        .unwrap_or_default();
    out.push(match (cx.role, after.auth_mechanisms.is_empty()) {
        (Role::Submission, false) => Finding::new(
            FindingId::AuthAfterTls,
            Verdict::Pass,
            format!("AUTH {mechanisms} is offered inside TLS{obsolete}"),
        ),
        (Role::Submission, true) => Finding::new(
            FindingId::AuthAfterTls,
            Verdict::Warn,
            "no AUTH is offered inside TLS: users cannot authenticate to submit mail",
        )
        .fix(&Fix::EnableAuthInsideTls, server),
        (Role::Mx, false) => Finding::new(
            FindingId::AuthAfterTls,
            Verdict::Info,
            format!(
                "AUTH {mechanisms} is offered inside TLS; an MX does not need it, submission \
                 belongs on 587 or 465"
            ),
        ),
        (Role::Mx, true) => Finding::new(
            FindingId::AuthAfterTls,
            Verdict::Info,
            "no AUTH is offered inside TLS, as usual for an MX",
        ),
    });
}

fn injection(cx: &Context<'_>, out: &mut Vec<Finding>) {
    let server = cx.server;
    let finding = |verdict, why: String| Finding::new(FindingId::StartTlsInjection, verdict, why);
    match &cx.seen.injection {
        InjectionSeen::NotRun => {}
        InjectionSeen::Safe => out.push(finding(
            Verdict::Pass,
            "a NOOP pipelined in cleartext behind STARTTLS was discarded, not run inside TLS \
             (CVE-2011-0411 class)"
                .to_owned(),
        )),
        InjectionSeen::Refused(reply) => out.push(finding(
            Verdict::Pass,
            format!(
                "STARTTLS with a NOOP pipelined behind it was refused ({}): no TLS session \
                 started in which the cleartext command could run (CVE-2011-0411 class)",
                reply.summary
            ),
        )),
        InjectionSeen::Aborted(error) => out.push(finding(
            Verdict::Pass,
            format!(
                "with a NOOP pipelined behind STARTTLS, the server aborted the TLS handshake \
                 ({error}): no TLS session started in which the cleartext command could run, a \
                 safe outcome (CVE-2011-0411 class)"
            ),
        )),
        InjectionSeen::Vulnerable(reply) => out.push(
            finding(
                Verdict::Fail,
                format!(
                    "a NOOP pipelined in cleartext behind STARTTLS was answered inside TLS \
                     ({}): an attacker on the path can inject commands into the encrypted \
                     session (CVE-2011-0411 class)",
                    reply.summary
                ),
            )
            .fix(&Fix::InjectionVulnerable, server),
        ),
        InjectionSeen::Inconclusive(why) => out.push(
            finding(
                Verdict::Fail,
                format!(
                    "whether commands pipelined behind STARTTLS run inside TLS is unknown: the \
                     probe could not complete ({why})"
                ),
            )
            .fix(&Fix::InjectionUnknown, server),
        ),
    }
}

fn implicit_probe(cx: &Context<'_>, out: &mut Vec<Finding>) {
    let server = cx.server;
    match &cx.seen.implicit_probe {
        ImplicitSeen::NotRun => {}
        ImplicitSeen::NothingListening { port } => {
            let finding = Finding::new(
                FindingId::ImplicitTls,
                Verdict::Info,
                format!(
                    "nothing listens on port {port}; RFC 8314 §3.3 prefers implicit TLS for \
                     submission"
                ),
            );
            out.push(if cx.role == Role::Submission {
                finding.fix(&Fix::ImplicitTls, server)
            } else {
                finding
            });
        }
        ImplicitSeen::Failed { port, detail } => out.push(
            Finding::new(
                FindingId::ImplicitTls,
                Verdict::Warn,
                format!("port {port} accepts connections but implicit TLS failed: {detail}"),
            )
            .fix(&Fix::ImplicitTlsBroken, server),
        ),
        ImplicitSeen::Works { port, tls } => out.push(match &tls.verification {
            Verification::Verified => Finding::new(
                FindingId::ImplicitTls,
                Verdict::Pass,
                format!(
                    "implicit TLS works on port {port} ({} {}, certificate verified for {}), as \
                     RFC 8314 §3.3 prefers",
                    tls.version, tls.cipher_suite, tls.server_name
                ),
            ),
            Verification::Failed(problem) => Finding::new(
                FindingId::ImplicitTls,
                cx.bad_cert(),
                format!(
                    "implicit TLS on port {port} answers ({} {}), but its certificate does not \
                     verify: {}",
                    tls.version, tls.cipher_suite, problem.detail
                ),
            )
            .fix(
                &certificate_fix(problem.problem_kind(), &tls.server_name),
                server,
            ),
        }),
    }
}

/// The smuggling probe: one line for what was sent where (or why nothing could be), then one
/// per end-of-data variant. Taking a variant fails only when relays are known to pass it
/// ([`EndOfData::relays`]); a variant the probe could not settle counts as taken.
fn smuggling(cx: &Context<'_>, out: &mut Vec<Finding>) {
    let server = cx.server;
    match &cx.seen.smuggling {
        SmugglingSeen::NotRun => {}
        SmugglingSeen::NotStarted {
            to,
            during,
            why,
            refusal,
        } => {
            let transaction = ["MAIL", "RCPT", "DATA"]
                .iter()
                .any(|verb| during.starts_with(verb));
            // Only a permanent refusal says something about the address or the port; a 4xx
            // (greylisting, a full queue) is worth a retry.
            let because = match refusal {
                Some(reply)
                    if transaction
                        && reply.code / 100 == 5
                        && (cx.role == Role::Submission
                            || Requirement::of(reply) == Requirement::Auth) =>
                {
                    NotSentBecause::NeedsAuth
                }
                Some(reply) if during.starts_with("RCPT") && reply.code / 100 == 5 => {
                    NotSentBecause::Address
                }
                _ => NotSentBecause::Other,
            };
            let said = match because {
                NotSentBecause::NeedsAuth => {
                    "; this port takes mail only from its authenticated users, and the probe \
                     never authenticates (it sends no credential)"
                }
                NotSentBecause::Address => {
                    "; the server does not take mail for that address from other servers"
                }
                NotSentBecause::Other => "",
            };
            let what = match refusal {
                Some(reply) => format!("{during} was answered {}", reply.summary),
                None => format!("{why} (at {during})"),
            };
            out.push(
                Finding::new(
                    FindingId::SmugglingProbe,
                    Verdict::Fail,
                    format!(
                        "no smuggling test message could be sent to {to}: {what}{said}; none of \
                         the {} end-of-data variants was tested",
                        EndOfData::ALL.len()
                    ),
                )
                .fix(&Fix::SmugglingNotSent(because), server),
            );
        }
        SmugglingSeen::Ran {
            to,
            transport,
            tls,
            nonce,
            variants,
        } => {
            let tls = tls.as_deref().unwrap_or("TLS");
            let how = match transport {
                Transport::Implicit => format!("over implicit TLS ({tls})"),
                Transport::StartTls => format!("over STARTTLS ({tls})"),
                Transport::Cleartext if matches!(cx.seen.starttls, StartTlsSeen::NotOffered) => {
                    "in cleartext, as the server offers no STARTTLS".to_owned()
                }
                Transport::Cleartext => {
                    "in cleartext, as STARTTLS did not work in the main session".to_owned()
                }
            };
            out.push(Finding::new(
                FindingId::SmugglingProbe,
                Verdict::Info,
                format!(
                    "sent {} test messages to {to} from the null sender <> {how}, one per \
                     end-of-data variant, with Message-IDs <smtptui-smuggling.VARIANT.{nonce}@\
                     {domain}>; a message whose subject says SMUGGLED (Message-ID \
                     <smtptui-smuggled.VARIANT.{nonce}@{domain}>) arriving on its own means a \
                     message was split, by this server or by one behind it",
                    variants.len(),
                    domain = super::smuggling::PROBE_DOMAIN,
                ),
            ));
            for (variant, outcome) in variants {
                out.push(smuggling_variant(*variant, outcome, server));
            }
        }
    }
}

fn smuggling_variant(variant: EndOfData, outcome: &Outcome, server: ServerKind) -> Finding {
    let relays = variant.relays();
    let taken = if relays.known {
        Verdict::Fail
    } else {
        Verdict::Warn
    };
    let id = FindingId::Smuggling(variant);
    let known = format!("relays passing it: {}", relays.said);
    match outcome {
        Outcome::KeptInside(reply) => Finding::new(
            id,
            Verdict::Pass,
            format!(
                "{variant} did not end the message: the server took it, and the commands behind \
                 it, as text of one message ({}), as RFC 5321 §4.1.1.4 requires; {known}",
                reply.summary
            ),
        ),
        Outcome::Refused(reply) => Finding::new(
            id,
            Verdict::Pass,
            format!(
                "{variant} did not end the message: the server refused the message ({}) and \
                 answered none of the commands behind {variant}, so no second message; {known}",
                reply.summary
            ),
        ),
        Outcome::Ended {
            first,
            after,
            second_queued,
        } => {
            let replies = after
                .iter()
                .map(|reply| reply.summary.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            let queued = if *second_queued {
                ", and queued the smuggled message as a second one"
            } else {
                ", though the smuggled message itself was not accepted"
            };
            let weight = if relays.known {
                "mail from a relay that passes this sequence can smuggle messages in"
            } else {
                "RFC 5321 §4.1.1.4 ends a message only at <CR><LF>.<CR><LF>; a warning, not a \
                 failure, since no relay is known to deliver this sequence"
            };
            Finding::new(
                id,
                taken,
                format!(
                    "the server ended the message at {variant} ({}) and answered the commands \
                     behind it as SMTP commands ({replies}){queued}: {weight}; {known}",
                    first.summary
                ),
            )
            .fix(&Fix::Smuggling(variant), server)
        }
        Outcome::Inconclusive(why) => Finding::new(
            id,
            taken,
            format!("whether the server ends a message at {variant} is unknown: {why}; {known}"),
        )
        .fix(&Fix::SmugglingUnknown, server),
    }
}

/// Counts of each verdict, in report order.
pub fn tally(findings: &[Finding]) -> [(Verdict, usize); 4] {
    [Verdict::Pass, Verdict::Warn, Verdict::Fail, Verdict::Info]
        .map(|v| (v, findings.iter().filter(|f| f.verdict == v).count()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::versions::{CipherSuite, TlsAlert};
    use crate::tls::{CertSummary, CertificateProblem};

    fn brief(code: u16, text: &str) -> ReplyBrief {
        let enhanced =
            crate::proto::reply::EnhancedCode::parse_prefix(text.as_bytes()).map(|(code, _)| code);
        ReplyBrief {
            code,
            enhanced,
            summary: format!("{code} {text}"),
        }
    }

    fn ehlo(starttls: bool, auth: &[&str]) -> EhloSeen {
        let mut extensions = vec!["PIPELINING".to_owned()];
        if starttls {
            extensions.push("STARTTLS".to_owned());
        }
        if !auth.is_empty() {
            extensions.push("AUTH".to_owned());
        }
        EhloSeen {
            greeting: "mail.example".to_owned(),
            extensions,
            auth_mechanisms: auth.iter().map(|m| (*m).to_owned()).collect(),
            starttls,
        }
    }

    fn leaf(days: i64, sans: &[&str], key: &str) -> CertSummary {
        CertSummary {
            subject: "CN=mail.example".into(),
            issuer: "CN=CA".into(),
            sans: sans.iter().map(|s| (*s).to_owned()).collect(),
            not_before: "2024-01-01T00:00:00Z".into(),
            not_after: "2030-01-01T00:00:00Z".into(),
            days_to_expiry: days,
            key: key.into(),
            serial: "01".into(),
            parse_error: None,
            der: crate::tls::CertDer::default(),
        }
    }

    fn tls(verification: Verification, leaf: CertSummary) -> Box<TlsInfo> {
        Box::new(TlsInfo {
            version: "TLSv1.3".into(),
            cipher_suite: "TLS13_AES_256_GCM_SHA384".into(),
            key_exchange: Some("X25519".into()),
            server_name: "mail.example".into(),
            verification,
            chain: vec![leaf],
            anchors: String::new(),
        })
    }

    fn refused_old_versions() -> VersionProbe {
        VersionProbe::OldVersions(vec![(TlsVersion::TLS1_1, HelloAnswer::Alert(TlsAlert(70)))])
    }

    /// A well-run submission server: the motivating configuration.
    fn submission_ok() -> Observations {
        Observations {
            target: "mail.example:587".into(),
            port: 587,
            implicit: false,
            greeting: Some(brief(220, "mail.example ESMTP")),
            ehlo_before: Some(ehlo(true, &[])),
            auth_probe: Some(AuthProbeSeen::Refused(brief(
                503,
                "5.5.1 Error: authentication not enabled",
            ))),
            mail_before_tls: Some(brief(530, "5.7.0 Must issue a STARTTLS command first")),
            starttls: StartTlsSeen::Established(tls(
                Verification::Verified,
                leaf(300, &["DNS:mail.example"], "EC P-256"),
            )),
            implicit_tls: None,
            ehlo_after: Some(ehlo(false, &["PLAIN", "LOGIN"])),
            versions: refused_old_versions(),
            injection: InjectionSeen::Safe,
            implicit_probe: ImplicitSeen::NotRun,
            smuggling: SmugglingSeen::NotRun,
            cut_short: None,
            vantage: None,
        }
    }

    fn find(findings: &[Finding], id: FindingId) -> &Finding {
        let found = findings.iter().find(|f| f.id == id);
        assert!(found.is_some(), "no {id} in {findings:#?}");
        found.expect("asserted above")
    }

    fn verdict_of(findings: &[Finding], id: FindingId) -> Verdict {
        find(findings, id).verdict
    }

    fn fix_of(findings: &[Finding], id: FindingId) -> String {
        find(findings, id).fix.clone().unwrap_or_default()
    }

    fn role(role: Role) -> RoleChoice {
        RoleChoice {
            role,
            source: RoleSource::Flag,
        }
    }

    #[test]
    fn a_good_submission_server_has_no_warning_or_failure() {
        let findings = judge(&role(Role::Submission), &submission_ok());
        for f in &findings {
            assert!(matches!(f.verdict, Verdict::Pass | Verdict::Info), "{f:?}");
            assert!(f.fix.is_none(), "{f:?}");
        }
        assert_eq!(
            verdict_of(&findings, FindingId::AuthAcceptedBeforeTls),
            Verdict::Pass
        );
        assert_eq!(
            verdict_of(&findings, FindingId::MailWithoutTls),
            Verdict::Pass
        );
        assert_eq!(
            verdict_of(&findings, FindingId::TlsOldVersions),
            Verdict::Pass
        );
    }

    #[test]
    fn cram_md5_inside_tls_is_named_obsolete() {
        let mut seen = submission_ok();
        seen.ehlo_after = Some(ehlo(false, &["PLAIN", "LOGIN", "CRAM-MD5"]));
        let findings = judge(&role(Role::Submission), &seen);
        let text = &findings
            .iter()
            .find(|f| f.id == FindingId::AuthAfterTls)
            .expect("auth-after-tls")
            .why;
        assert!(
            text.contains("CRAM-MD5 among them is obsolete")
                && text.contains("store every password"),
            "{text}"
        );
        let plain = judge(&role(Role::Submission), &submission_ok());
        assert!(
            !plain
                .iter()
                .any(|f| f.id == FindingId::AuthAfterTls && f.why.contains("obsolete"))
        );
    }

    #[test]
    fn auth_before_tls_fails_and_names_auth_only() {
        let mut seen = submission_ok();
        seen.ehlo_before = Some(ehlo(true, &["PLAIN", "LOGIN"]));
        seen.auth_probe = Some(AuthProbeSeen::Challenged {
            mechanism: "LOGIN".into(),
        });
        let findings = judge(&role(Role::Submission), &seen);
        for id in [
            FindingId::AuthAdvertisedBeforeTls,
            FindingId::AuthAcceptedBeforeTls,
        ] {
            assert_eq!(verdict_of(&findings, id), Verdict::Fail);
            assert!(
                fix_of(&findings, id).contains("Postfix: smtpd_tls_auth_only = yes"),
                "{}",
                fix_of(&findings, id)
            );
        }
    }

    #[test]
    fn requiring_tls_is_right_on_submission_and_a_warning_on_an_mx() {
        let seen = submission_ok();
        let mx = judge(&role(Role::Mx), &seen);
        assert_eq!(verdict_of(&mx, FindingId::MailWithoutTls), Verdict::Warn);
        assert!(fix_of(&mx, FindingId::MailWithoutTls).contains("smtpd_tls_security_level = may"));

        let mut open = submission_ok();
        open.mail_before_tls = Some(brief(250, "2.1.0 Ok"));
        assert_eq!(
            verdict_of(&judge(&role(Role::Mx), &open), FindingId::MailWithoutTls),
            Verdict::Pass
        );
        let sub = judge(&role(Role::Submission), &open);
        assert_eq!(verdict_of(&sub, FindingId::MailWithoutTls), Verdict::Fail);
        assert!(fix_of(&sub, FindingId::MailWithoutTls).contains("encrypt"));
    }

    #[test]
    fn a_530_for_authentication_is_not_tls_when_auth_crosses_in_cleartext() {
        // Dovecot with disable_plaintext_auth = no: 530 5.7.0 is RFC 4954's.
        let mut seen = submission_ok();
        seen.greeting = Some(brief(220, "localhost Dovecot (Debian) ready."));
        seen.ehlo_before = Some(ehlo(true, &["PLAIN", "LOGIN"]));
        seen.auth_probe = Some(AuthProbeSeen::Challenged {
            mechanism: "LOGIN".into(),
        });
        seen.mail_before_tls = Some(brief(530, "5.7.0 Authentication required."));
        let findings = judge(&role(Role::Submission), &seen);
        let mail = find(&findings, FindingId::MailWithoutTls);
        assert_eq!(mail.verdict, Verdict::Fail, "{mail:?}");
        assert!(mail.why.contains("only until AUTH"), "{mail:?}");
        assert!(
            fix_of(&findings, FindingId::MailWithoutTls)
                .contains("Dovecot: disable_plaintext_auth")
        );

        // The same 530 when AUTH itself needs TLS: no mail without TLS.
        seen.auth_probe = Some(AuthProbeSeen::Refused(brief(530, "5.7.0 TLS required.")));
        let findings = judge(&role(Role::Submission), &seen);
        assert_eq!(
            verdict_of(&findings, FindingId::MailWithoutTls),
            Verdict::Pass
        );

        // A bare 530 says neither; with AUTH in cleartext it cannot pass.
        seen.auth_probe = Some(AuthProbeSeen::Challenged {
            mechanism: "LOGIN".into(),
        });
        seen.mail_before_tls = Some(brief(530, "5.7.0 Not now"));
        let findings = judge(&role(Role::Submission), &seen);
        assert_eq!(
            verdict_of(&findings, FindingId::MailWithoutTls),
            Verdict::Warn
        );
    }

    #[test]
    fn a_refusal_that_names_starttls_requires_tls_whatever_its_code() {
        let mut seen = submission_ok();
        seen.mail_before_tls = Some(brief(550, "Must issue a STARTTLS command first"));
        let findings = judge(&role(Role::Submission), &seen);
        assert_eq!(
            verdict_of(&findings, FindingId::MailWithoutTls),
            Verdict::Pass
        );
        let mx = judge(&role(Role::Mx), &seen);
        assert_eq!(verdict_of(&mx, FindingId::MailWithoutTls), Verdict::Warn);
        // An encryption enhanced code alone is enough too.
        assert_eq!(
            Requirement::of(&brief(554, "5.7.10 Go away")),
            Requirement::Tls
        );
        assert_eq!(
            Requirement::of(&brief(550, "5.7.1 Sender not authorized")),
            Requirement::Unstated
        );
    }

    #[test]
    fn fixes_follow_the_server_that_answered() {
        let mut seen = submission_ok();
        seen.greeting = Some(brief(220, "mx.example ESMTP Exim 4.96"));
        seen.ehlo_before = Some(ehlo(true, &["PLAIN"]));
        seen.auth_probe = Some(AuthProbeSeen::Challenged {
            mechanism: "PLAIN".into(),
        });
        let findings = judge(&role(Role::Submission), &seen);
        let fix = fix_of(&findings, FindingId::AuthAcceptedBeforeTls);
        assert!(fix.contains("Exim: server_advertise_condition"), "{fix}");
        assert!(!fix.contains("smtpd_"), "{fix}");
        assert!(find(&findings, FindingId::Server).why.starts_with("Exim"));
        // Named only in the EHLO reply.
        seen.greeting = Some(brief(220, "mx.example ESMTP ready"));
        if let Some(before) = seen.ehlo_before.as_mut() {
            before.greeting = "mx.example Hello, Haraka is at your service.".into();
        }
        let findings = judge(&role(Role::Submission), &seen);
        assert!(fix_of(&findings, FindingId::AuthAcceptedBeforeTls).contains("Haraka: "));
    }

    #[test]
    fn certificates_are_judged_by_name_expiry_and_key() {
        let mut seen = submission_ok();
        seen.starttls = StartTlsSeen::Established(tls(
            Verification::Failed(CertificateProblem {
                kind: "expired",
                detail: "certificate expired".into(),
            }),
            leaf(-10, &["DNS:mail.example"], "RSA 1024"),
        ));
        let findings = judge(&role(Role::Submission), &seen);
        assert_eq!(
            verdict_of(&findings, FindingId::CertificateExpiry),
            Verdict::Fail
        );
        assert_eq!(
            verdict_of(&findings, FindingId::CertificateKey),
            Verdict::Fail
        );
        assert_eq!(
            verdict_of(&findings, FindingId::CertificateName),
            Verdict::Pass
        );
        assert_eq!(
            verdict_of(&findings, FindingId::CertificateChain),
            Verdict::Info
        );
        // The same expired certificate on an MX is a warning: few senders check.
        let mx = judge(&role(Role::Mx), &seen);
        assert_eq!(verdict_of(&mx, FindingId::CertificateExpiry), Verdict::Warn);

        seen.starttls = StartTlsSeen::Established(tls(
            Verification::Verified,
            leaf(5, &["DNS:mail.example"], "RSA 2048"),
        ));
        let findings = judge(&role(Role::Submission), &seen);
        assert_eq!(
            verdict_of(&findings, FindingId::CertificateExpiry),
            Verdict::Warn
        );
        assert!(fix_of(&findings, FindingId::CertificateExpiry).contains("postfix reload"));
        assert_eq!(
            verdict_of(&findings, FindingId::CertificateKey),
            Verdict::Pass
        );
    }

    #[test]
    fn a_short_lived_certificate_is_judged_against_its_own_lifetime() {
        let mut seen = submission_ok();
        let mut short = leaf(6, &["DNS:mail.example"], "EC P-256");
        short.not_before = "2026-12-01T10:00:00Z".into();
        short.not_after = "2026-12-08T11:00:00Z".into();
        seen.starttls = StartTlsSeen::Established(tls(Verification::Verified, short.clone()));
        let findings = judge(&role(Role::Submission), &seen);
        let expiry = find(&findings, FindingId::CertificateExpiry);
        assert_eq!(expiry.verdict, Verdict::Pass, "{expiry:?}");
        assert!(
            expiry
                .why
                .contains("short-lived certificate (7 days in all)"),
            "{expiry:?}"
        );
        // Its last day is still a warning.
        short.days_to_expiry = 1;
        seen.starttls = StartTlsSeen::Established(tls(Verification::Verified, short));
        let findings = judge(&role(Role::Submission), &seen);
        assert_eq!(
            verdict_of(&findings, FindingId::CertificateExpiry),
            Verdict::Warn
        );
    }

    /// The lab's 7-day certificate starts an hour back; checked between 00:00 and 01:00 its
    /// bounds fall on dates 8 days apart, and counting dates called it 8 days long.
    #[test]
    fn a_lifetime_is_counted_in_whole_days_not_calendar_dates() {
        let mut seen = submission_ok();
        let mut short = leaf(6, &["DNS:mail.example"], "EC P-256");
        short.not_before = "2026-12-01T23:30:00Z".into();
        short.not_after = "2026-12-09T00:30:00Z".into();
        seen.starttls = StartTlsSeen::Established(tls(Verification::Verified, short));
        let findings = judge(&role(Role::Submission), &seen);
        let expiry = find(&findings, FindingId::CertificateExpiry);
        assert!(
            expiry
                .why
                .contains("short-lived certificate (7 days in all)"),
            "{expiry:?}"
        );
    }

    #[test]
    fn names_match_with_single_label_wildcards_and_ips() {
        let sans = vec!["DNS:*.example.com".to_owned(), "IP:127.0.0.1".to_owned()];
        assert!(name_matches("mail.example.com", &sans));
        assert!(name_matches("MAIL.Example.com.", &sans));
        assert!(!name_matches("a.b.example.com", &sans));
        assert!(!name_matches("example.com", &sans));
        assert!(name_matches("127.0.0.1", &sans));
        assert!(!name_matches("wrong.example", &sans));
    }

    fn failed_handshake(versions: VersionProbe) -> Vec<Finding> {
        let mut seen = submission_ok();
        seen.greeting = Some(brief(220, "mx.example ESMTP Exim 4.96"));
        seen.starttls = StartTlsSeen::HandshakeFailed(
            "TLS handshake failed: received fatal alert: HandshakeFailure".into(),
        );
        seen.ehlo_after = None;
        seen.injection = InjectionSeen::NotRun;
        seen.versions = versions;
        judge(&role(Role::Mx), &seen)
    }

    #[test]
    fn old_tls_only_is_found_by_a_second_hello_and_named_with_the_rfc() {
        let findings = failed_handshake(VersionProbe::AfterFailure(HelloAnswer::Accepted {
            version: TlsVersion::TLS1_1,
            cipher: CipherSuite(0xc013),
        }));
        let f = find(&findings, FindingId::TlsHandshake);
        assert_eq!(f.verdict, Verdict::Fail);
        assert!(f.why.contains("offers at most TLS 1.1"), "{f:?}");
        assert!(f.why.contains("RFC 8996"), "{f:?}");
        assert!(fix_of(&findings, FindingId::TlsHandshake).contains("Exim: tls_require_ciphers"));

        // TLS 1.2 with only suites current clients refuse.
        let findings = failed_handshake(VersionProbe::AfterFailure(HelloAnswer::Accepted {
            version: TlsVersion::TLS1_2,
            cipher: CipherSuite(0x002f),
        }));
        let f = find(&findings, FindingId::TlsHandshake);
        assert!(f.why.contains("no cipher suite in common"), "{f:?}");

        // Refused again: the failure is not blamed on versions.
        let findings =
            failed_handshake(VersionProbe::AfterFailure(HelloAnswer::Alert(TlsAlert(40))));
        let f = find(&findings, FindingId::TlsHandshake);
        assert!(!f.why.contains("RFC 8996"), "{f:?}");
        assert!(f.why.contains("alert handshake_failure"), "{f:?}");
    }

    #[test]
    fn old_versions_next_to_new_ones_are_said_or_said_to_be_unknown() {
        let mut seen = submission_ok();
        seen.versions = VersionProbe::OldVersions(vec![
            (
                TlsVersion::TLS1_1,
                HelloAnswer::Accepted {
                    version: TlsVersion::TLS1_1,
                    cipher: CipherSuite(0xc013),
                },
            ),
            (TlsVersion::TLS1_0, HelloAnswer::Closed),
        ]);
        let findings = judge(&role(Role::Submission), &seen);
        let f = find(&findings, FindingId::TlsOldVersions);
        assert_eq!(f.verdict, Verdict::Warn);
        assert!(f.why.contains("accepts TLS 1.1 ("), "{f:?}");

        seen.versions = VersionProbe::Inconclusive("timed out".into());
        let findings = judge(&role(Role::Submission), &seen);
        let f = find(&findings, FindingId::TlsOldVersions);
        assert_eq!(f.verdict, Verdict::Fail);
        assert!(f.why.contains("is unknown"), "{f:?}");
    }

    #[test]
    fn starttls_after_tls_and_injection_fail_and_an_abort_is_safe() {
        let mut seen = submission_ok();
        seen.ehlo_after = Some(ehlo(true, &["PLAIN"]));
        seen.injection = InjectionSeen::Vulnerable(brief(250, "2.0.0 Ok"));
        let findings = judge(&role(Role::Submission), &seen);
        assert_eq!(
            verdict_of(&findings, FindingId::StartTlsAfterTls),
            Verdict::Fail
        );
        assert_eq!(
            verdict_of(&findings, FindingId::StartTlsInjection),
            Verdict::Fail
        );
        for safe in [
            InjectionSeen::Aborted("tls handshake eof".into()),
            InjectionSeen::Refused(brief(554, "5.5.1 Error: pipelining")),
        ] {
            seen.injection = safe;
            let findings = judge(&role(Role::Submission), &seen);
            assert_eq!(
                verdict_of(&findings, FindingId::StartTlsInjection),
                Verdict::Pass
            );
        }
        seen.injection = InjectionSeen::Inconclusive("timed out".into());
        let findings = judge(&role(Role::Submission), &seen);
        assert_eq!(
            verdict_of(&findings, FindingId::StartTlsInjection),
            Verdict::Fail
        );
    }

    #[test]
    fn a_response_injection_gets_a_fix_about_the_path_not_the_certificate() {
        let mut seen = submission_ok();
        seen.starttls = StartTlsSeen::Injected("response injection: 20 byte(s) arrived".into());
        seen.ehlo_after = None;
        seen.versions = VersionProbe::NotRun;
        seen.injection = InjectionSeen::NotRun;
        let findings = judge(&role(Role::Submission), &seen);
        let fix = fix_of(&findings, FindingId::TlsHandshake);
        assert!(fix.contains("proxy that inspects SMTP"), "{fix}");
        assert!(
            !fix.contains("certificate") && !fix.contains("cipher"),
            "{fix}"
        );
    }

    #[test]
    fn implicit_tls_with_an_unverified_certificate_does_not_pass() {
        let mut seen = submission_ok();
        seen.implicit_probe = ImplicitSeen::Works {
            port: 465,
            tls: tls(
                Verification::Failed(CertificateProblem {
                    kind: "unknown issuer",
                    detail: "unknown issuer: the certificate chain does not lead to a trusted root"
                        .into(),
                }),
                leaf(300, &["DNS:mail.example"], "EC P-256"),
            ),
        };
        let findings = judge(&role(Role::Submission), &seen);
        let f = find(&findings, FindingId::ImplicitTls);
        assert_eq!(f.verdict, Verdict::Fail, "{f:?}");
        assert!(f.why.contains("does not verify"), "{f:?}");
        assert!(fix_of(&findings, FindingId::ImplicitTls).contains("trust"));
    }

    #[test]
    fn nothing_on_465_is_information_not_failure() {
        let mut seen = submission_ok();
        seen.implicit_probe = ImplicitSeen::NothingListening { port: 465 };
        let findings = judge(&role(Role::Submission), &seen);
        assert_eq!(verdict_of(&findings, FindingId::ImplicitTls), Verdict::Info);
        assert_eq!(tally(&findings)[2], (Verdict::Fail, 0));
    }

    #[test]
    fn probes_cut_short_fail_and_say_what_is_missing() {
        let mut seen = submission_ok();
        seen.mail_before_tls = None;
        seen.starttls = StartTlsSeen::NotReached;
        seen.ehlo_after = None;
        seen.versions = VersionProbe::NotRun;
        seen.injection = InjectionSeen::NotRun;
        seen.cut_short = Some(CutShort {
            during: "MAIL FROM:<>".into(),
            why: "the server ended the session with 421 4.3.2 Shutting down".into(),
        });
        let findings = judge(&role(Role::Submission), &seen);
        let f = find(&findings, FindingId::ProbingCutShort);
        assert_eq!(f.verdict, Verdict::Fail);
        assert!(f.why.contains("421 4.3.2"), "{f:?}");
        assert!(f.why.contains("MAIL before TLS"), "{f:?}");
    }

    #[test]
    fn a_local_vantage_point_is_said() {
        let mut seen = submission_ok();
        seen.vantage = Some(Vantage {
            peer: "192.168.1.10".parse().expect("ip"),
            local: "192.168.1.20".parse().expect("ip"),
        });
        let findings = judge(&role(Role::Submission), &seen);
        let f = find(&findings, FindingId::VantagePoint);
        assert!(f.why.contains("192.168.1.10 (private)"), "{f:?}");
        assert!(
            f.why.contains("remote users may see a different posture"),
            "{f:?}"
        );
        seen.vantage = Some(Vantage {
            peer: "203.0.113.5".parse().expect("ip"),
            local: "198.51.100.7".parse().expect("ip"),
        });
        let findings = judge(&role(Role::Submission), &seen);
        assert!(findings.iter().all(|f| f.id != FindingId::VantagePoint));
    }

    #[test]
    fn roles_come_from_the_flag_then_the_port_then_auth() {
        assert_eq!(RoleChoice::decide(Some(Role::Mx), 587, true).role, Role::Mx);
        assert_eq!(RoleChoice::decide(None, 25, true).role, Role::Mx);
        assert_eq!(RoleChoice::decide(None, 465, false).role, Role::Submission);
        let other = RoleChoice::decide(None, 2600, true);
        assert_eq!(other.source, RoleSource::AuthAdvertised);
        assert_eq!(other.role, Role::Submission);
        assert!(other.explain().contains("--role mx"));
        assert_eq!(RoleChoice::decide(None, 2525, false).role, Role::Mx);
        assert_eq!("Submission".parse::<Role>(), Ok(Role::Submission));
        assert!("relay".parse::<Role>().is_err());
    }

    fn smuggling_ran(outcomes: [Outcome; 4]) -> SmugglingSeen {
        SmugglingSeen::Ran {
            to: "postmaster@mail.example".into(),
            transport: Transport::StartTls,
            tls: Some("TLSv1.3".into()),
            nonce: "n1".into(),
            variants: EndOfData::ALL.into_iter().zip(outcomes).collect(),
        }
    }

    fn ended(queued: bool) -> Outcome {
        Outcome::Ended {
            first: brief(250, "2.0.0 Ok: queued as A"),
            after: vec![
                brief(250, "2.1.0 Ok"),
                brief(250, "2.1.5 Ok"),
                brief(354, "End data with <CR><LF>.<CR><LF>"),
                brief(250, "2.0.0 Ok: queued as B"),
            ],
            second_queued: queued,
        }
    }

    #[test]
    fn taking_a_sequence_relays_pass_fails_and_one_they_cannot_send_warns() {
        let mut seen = submission_ok();
        seen.smuggling = smuggling_ran([
            ended(true),
            ended(true),
            ended(true),
            Outcome::KeptInside(brief(250, "2.0.0 Ok: queued as C")),
        ]);
        let findings = judge(&role(Role::Mx), &seen);
        let id = |v| FindingId::Smuggling(v);
        assert_eq!(verdict_of(&findings, id(EndOfData::LfDotLf)), Verdict::Fail);
        assert_eq!(
            verdict_of(&findings, id(EndOfData::LfDotCrLf)),
            Verdict::Fail
        );
        assert_eq!(
            verdict_of(&findings, id(EndOfData::CrLfDotLf)),
            Verdict::Warn
        );
        assert_eq!(verdict_of(&findings, id(EndOfData::CrDotCr)), Verdict::Pass);
        let why = &find(&findings, id(EndOfData::LfDotCrLf)).why;
        assert!(why.contains("queued the smuggled message"), "{why}");
        assert!(why.contains("Exchange Online and GMX"), "{why}");
        assert!(
            find(&findings, id(EndOfData::CrLfDotLf))
                .why
                .contains("no relay is known")
        );
        let fix = fix_of(&findings, id(EndOfData::LfDotLf));
        assert!(
            fix.contains("Postfix: smtpd_forbid_bare_newline = normalize")
                && fix.contains("smtpd_forbid_bare_newline_exclusions"),
            "{fix}"
        );
        let info = find(&findings, FindingId::SmugglingProbe);
        assert_eq!(info.verdict, Verdict::Info);
        assert!(
            info.why.contains("smtptui-smuggled.VARIANT.n1@"),
            "{}",
            info.why
        );
    }

    #[test]
    fn an_unsettled_variant_is_never_a_pass() {
        let mut seen = submission_ok();
        seen.smuggling = smuggling_ran([
            Outcome::Inconclusive("the server did not answer the message".into()),
            Outcome::Refused(brief(550, "5.5.2 Error: bare <LF> received")),
            Outcome::Inconclusive("x".into()),
            Outcome::KeptInside(brief(250, "2.0.0 Ok")),
        ]);
        let findings = judge(&role(Role::Mx), &seen);
        let id = |v| FindingId::Smuggling(v);
        assert_eq!(verdict_of(&findings, id(EndOfData::LfDotLf)), Verdict::Fail);
        assert!(fix_of(&findings, id(EndOfData::LfDotLf)).contains("run the audit again"));
        assert_eq!(
            verdict_of(&findings, id(EndOfData::LfDotCrLf)),
            Verdict::Pass
        );
        assert_eq!(
            verdict_of(&findings, id(EndOfData::CrLfDotLf)),
            Verdict::Warn
        );
    }

    #[test]
    fn fixes_for_smuggling_follow_the_server_and_the_sequence() {
        let mut seen = submission_ok();
        seen.greeting = Some(brief(220, "mx ESMTP Exim 4.96"));
        seen.smuggling = smuggling_ran([ended(false), ended(false), ended(false), ended(false)]);
        let findings = judge(&role(Role::Mx), &seen);
        let fix = fix_of(&findings, FindingId::Smuggling(EndOfData::LfDotLf));
        assert!(fix.contains("Exim: upgrade to Exim 4.97.1"), "{fix}");
        let why = &find(&findings, FindingId::Smuggling(EndOfData::LfDotLf)).why;
        assert!(why.contains("not accepted"), "{why}");
        let fix = fix_of(&findings, FindingId::Smuggling(EndOfData::CrDotCr));
        assert!(fix.contains("in front of it"), "{fix}");
        seen.greeting = Some(brief(220, "mx ESMTP Postfix"));
        let findings = judge(&role(Role::Mx), &seen);
        let fix = fix_of(&findings, FindingId::Smuggling(EndOfData::CrDotCr));
        assert!(
            fix.contains("Postfix itself never takes a bare <CR>"),
            "{fix}"
        );
    }

    #[test]
    fn a_probe_that_could_not_send_fails_and_says_why() {
        let mut seen = submission_ok();
        seen.smuggling = SmugglingSeen::NotStarted {
            to: "bob@mail.example".into(),
            during: "RCPT TO:<bob@mail.example>".into(),
            why: "answered 554".into(),
            refusal: Some(brief(554, "5.7.1 <bob@mail.example>: Relay access denied")),
        };
        let findings = judge(&role(Role::Submission), &seen);
        let probe = find(&findings, FindingId::SmugglingProbe);
        assert_eq!(probe.verdict, Verdict::Fail);
        assert!(probe.why.contains("never authenticates"), "{}", probe.why);
        assert!(fix_of(&findings, FindingId::SmugglingProbe).contains("port 25"));
        assert!(
            !findings
                .iter()
                .any(|f| matches!(f.id, FindingId::Smuggling(_))),
            "no variant was tested"
        );
        let findings = judge(&role(Role::Mx), &seen);
        assert!(fix_of(&findings, FindingId::SmugglingProbe).contains("receives mail for"));
        // Greylisting is a reason to come back, not a wrong address.
        seen.smuggling = SmugglingSeen::NotStarted {
            to: "bob@mail.example".into(),
            during: "RCPT TO:<bob@mail.example>".into(),
            why: "answered 450".into(),
            refusal: Some(brief(
                450,
                "4.7.1 <bob@mail.example>: Recipient address rejected: Greylisted",
            )),
        };
        for role_ in [Role::Mx, Role::Submission] {
            let findings = judge(&role(role_), &seen);
            assert_eq!(
                verdict_of(&findings, FindingId::SmugglingProbe),
                Verdict::Fail
            );
            assert!(fix_of(&findings, FindingId::SmugglingProbe).contains("run the audit again"));
        }
    }
}
