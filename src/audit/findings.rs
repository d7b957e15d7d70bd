//! The findings model and the judging: what the probes saw, and what that means for a server
//! in a given role.
//!
//! Everything here is pure: [`Observations`] is plain data filled in by [`super::probe`], and
//! [`judge`] turns it into [`Finding`]s without touching the network. The same observation can
//! deserve opposite verdicts depending on the port's role: an MX that refuses mail without TLS
//! turns away legitimate senders, while a submission port that takes mail or AUTH without TLS
//! exposes its users' passwords.

use std::fmt;
use std::str::FromStr;

use crate::tls::{TlsInfo, Verification};

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
    /// Wrong for the role: credentials or mail exposed, or clients will fail.
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

/// One judged observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// A stable identifier, for scripts reading `--json` (`auth-before-tls`, ...).
    pub id: &'static str,
    /// The verdict.
    pub verdict: Verdict,
    /// One sentence: what was seen and why it matters.
    pub why: String,
    /// For warn and fail: the configuration change that fixes it, Postfix settings named.
    pub fix: Option<String>,
}

impl Finding {
    fn new(id: &'static str, verdict: Verdict, why: impl Into<String>) -> Self {
        Self {
            id,
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

/// A reply reduced to what judging needs: its code and its text, already escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyBrief {
    /// The three-digit code.
    pub code: u16,
    /// Code and text of every line joined, escaped for display.
    pub summary: String,
}

impl From<&crate::proto::reply::Reply> for ReplyBrief {
    fn from(reply: &crate::proto::reply::Reply) -> Self {
        Self {
            code: reply.code.value(),
            summary: reply.summary(),
        }
    }
}

/// What one EHLO answered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EhloSeen {
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
    /// STARTTLS was not advertised, so it was not sent.
    NotOffered,
    /// Answered with something other than 220.
    Refused(ReplyBrief),
    /// The handshake failed.
    HandshakeFailed {
        /// The error as the engine describes it.
        detail: String,
        /// The failure says the server speaks no TLS version this client accepts (1.2, 1.3).
        no_modern_version: bool,
    },
    /// TLS is up.
    Established(Box<TlsInfo>),
}

/// The pipelined `STARTTLS\r\nNOOP\r\n` probe (CVE-2011-0411 class).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InjectionSeen {
    /// Not run (no working STARTTLS, or implicit TLS).
    NotRun,
    /// The pipelined NOOP was discarded: nothing arrived inside TLS unasked.
    Safe,
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
    /// TLS from the first byte and an SMTP greeting inside it.
    Works {
        /// The port tried.
        port: u16,
        /// Negotiated version and suite.
        summary: String,
    },
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
    /// The greeting.
    pub greeting: ReplyBrief,
    /// The first EHLO (before TLS, or inside implicit TLS); `None` when it was refused.
    pub ehlo_before: Option<EhloSeen>,
    /// The AUTH-before-TLS probe; `None` when not run (implicit TLS).
    pub auth_probe: Option<AuthProbeSeen>,
    /// The reply to `MAIL FROM:<>` before TLS; `None` when not run.
    pub mail_before_tls: Option<ReplyBrief>,
    /// STARTTLS and the handshake.
    pub starttls: StartTlsSeen,
    /// The TLS details of an implicit-TLS audited connection.
    pub implicit_tls: Option<Box<TlsInfo>>,
    /// EHLO inside TLS (after STARTTLS); `None` when not reached.
    pub ehlo_after: Option<EhloSeen>,
    /// The command injection probe.
    pub injection: InjectionSeen,
    /// The implicit-TLS port probe.
    pub implicit_probe: ImplicitSeen,
    /// The fatal error that cut the probing short, if any.
    pub aborted: Option<String>,
}

/// Days before expiry under which a certificate is a warning.
pub const EXPIRY_WARN_DAYS: i64 = 21;

const AUTH_ONLY_FIX: &str = "set smtpd_tls_auth_only = yes (or smtpd_tls_security_level = encrypt) on this \
     listener, so AUTH is offered and accepted only inside TLS (RFC 4954 §4, RFC 8314 §5)";

/// Judges the observations for the role. The order of the result is the report's order.
pub fn judge(role: &RoleChoice, seen: &Observations) -> Vec<Finding> {
    let mut out = vec![Finding::new(
        "role",
        Verdict::Info,
        format!("judged as {}", role.explain()),
    )];
    greeting(seen, &mut out);
    if seen.implicit {
        out.push(Finding::new(
            "transport",
            Verdict::Info,
            "the audited connection used implicit TLS from the first byte, so the cleartext \
             probes (AUTH and MAIL before TLS, STARTTLS) do not apply",
        ));
    }
    if let Some(ehlo) = &seen.ehlo_before {
        out.push(Finding::new(
            "extensions-before-tls",
            Verdict::Info,
            format!(
                "EHLO {}advertised: {}",
                if seen.implicit { "" } else { "before TLS " },
                ehlo.extensions.join(", ")
            ),
        ));
    }
    if !seen.implicit {
        cleartext_findings(role.role, seen, &mut out);
    }
    tls_findings(role.role, seen, &mut out);
    after_tls_findings(role.role, seen, &mut out);
    injection(seen, &mut out);
    implicit_probe(role.role, seen, &mut out);
    if let Some(error) = &seen.aborted {
        out.push(Finding::new(
            "probing-cut-short",
            Verdict::Warn,
            format!("the probes stopped early: {error}; later findings are missing"),
        ));
    }
    out
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "nothing".to_owned()
    } else {
        items.join(" ")
    }
}

fn greeting(seen: &Observations, out: &mut Vec<Finding>) {
    if seen.greeting.code == 0 {
        // No greeting at all (implicit TLS failed first); the TLS finding says why.
        return;
    }
    if seen.greeting.code == 220 {
        out.push(Finding::new(
            "greeting",
            Verdict::Info,
            format!("banner: {}", seen.greeting.summary),
        ));
    } else {
        out.push(
            Finding::new(
                "greeting",
                Verdict::Fail,
                format!(
                    "the server did not greet with 220 but with {}: it refuses sessions from here",
                    seen.greeting.summary
                ),
            )
            .fix("check smtpd_client_restrictions and the listener in master.cf"),
        );
    }
}

fn cleartext_findings(role: Role, seen: &Observations, out: &mut Vec<Finding>) {
    let Some(ehlo) = &seen.ehlo_before else {
        return;
    };
    // STARTTLS offered?
    if ehlo.starttls {
        out.push(Finding::new(
            "starttls-offered",
            Verdict::Pass,
            "STARTTLS is offered, so clients can encrypt the session (RFC 3207)",
        ));
    } else {
        let fix = match role {
            Role::Mx => {
                "set smtpd_tls_security_level = may with a certificate (smtpd_tls_chain_files, \
                 or smtpd_tls_cert_file and smtpd_tls_key_file)"
            }
            Role::Submission => {
                "set smtpd_tls_security_level = encrypt with a certificate (smtpd_tls_chain_files, \
                 or smtpd_tls_cert_file and smtpd_tls_key_file), or offer implicit TLS on 465 \
                 (RFC 8314 §3.3)"
            }
        };
        out.push(
            Finding::new(
                "starttls-offered",
                Verdict::Fail,
                "STARTTLS is not offered: every message (and any password) crosses readable by \
                 anyone on the path",
            )
            .fix(fix),
        );
    }
    // AUTH advertised before TLS.
    if ehlo.auth_mechanisms.is_empty() {
        out.push(Finding::new(
            "auth-advertised-before-tls",
            Verdict::Pass,
            "AUTH is not advertised before TLS, so clients are not invited to send passwords in \
             cleartext",
        ));
    } else {
        out.push(
            Finding::new(
                "auth-advertised-before-tls",
                Verdict::Fail,
                format!(
                    "AUTH {} is advertised before TLS: clients that follow the EHLO send their \
                     password readable by anyone on the path (base64 is not encryption)",
                    list(&ehlo.auth_mechanisms)
                ),
            )
            .fix(AUTH_ONLY_FIX),
        );
    }
    // Would it take AUTH before TLS?
    match &seen.auth_probe {
        Some(AuthProbeSeen::Refused(reply)) => out.push(Finding::new(
            "auth-accepted-before-tls",
            Verdict::Pass,
            format!(
                "AUTH before TLS is refused ({}); probed without sending any credential",
                reply.summary
            ),
        )),
        Some(AuthProbeSeen::Challenged { mechanism }) => out.push(
            Finding::new(
                "auth-accepted-before-tls",
                Verdict::Fail,
                format!(
                    "AUTH {mechanism} before TLS was answered with a 334 challenge: the server \
                     takes passwords in cleartext (the probe cancelled with '*' and sent no \
                     credential)"
                ),
            )
            .fix(AUTH_ONLY_FIX),
        ),
        None => {}
    }
    // Is TLS required for mail?
    if let Some(reply) = &seen.mail_before_tls {
        let required = reply.code == 530;
        let accepted = reply.code / 100 == 2;
        let finding = match (role, required, accepted) {
            (Role::Mx, false, true) => Finding::new(
                "mail-without-tls",
                Verdict::Pass,
                format!(
                    "MAIL FROM:<> before TLS is accepted ({}): senders that cannot do TLS can \
                     still deliver, as an MX must allow (RFC 3207 §4)",
                    reply.summary
                ),
            ),
            (Role::Mx, true, _) => Finding::new(
                "mail-without-tls",
                Verdict::Warn,
                format!(
                    "MAIL FROM:<> before TLS is refused ({}): legitimate senders without TLS \
                     are turned away; a publicly referenced MX must not require TLS \
                     (RFC 3207 §4)",
                    reply.summary
                ),
            )
            .fix(
                "set smtpd_tls_security_level = may on the MX (encrypt only on submission \
                 ports); to require TLS from senders that can do it, publish MTA-STS \
                 (RFC 8461) or DANE (RFC 7672) instead",
            ),
            (Role::Submission, true, _) => Finding::new(
                "mail-without-tls",
                Verdict::Pass,
                format!(
                    "MAIL FROM:<> before TLS is refused with {}: submission requires TLS",
                    reply.summary
                ),
            ),
            (Role::Submission, false, true) => Finding::new(
                "mail-without-tls",
                Verdict::Fail,
                format!(
                    "MAIL FROM:<> before TLS is accepted ({}): users' mail (and their \
                     sessions) may cross in cleartext",
                    reply.summary
                ),
            )
            .fix(
                "set smtpd_tls_security_level = encrypt on the submission listener \
                 (RFC 8314 §3.3 and §4.1)",
            ),
            (_, false, false) => Finding::new(
                "mail-without-tls",
                Verdict::Info,
                format!(
                    "MAIL FROM:<> before TLS got {}, which says nothing about TLS",
                    reply.summary
                ),
            ),
        };
        out.push(finding);
    }
}

fn tls_findings(role: Role, seen: &Observations, out: &mut Vec<Finding>) {
    let info = match &seen.starttls {
        StartTlsSeen::Established(info) => Some(info.as_ref()),
        _ => seen.implicit_tls.as_deref(),
    };
    match &seen.starttls {
        StartTlsSeen::NotApplicable | StartTlsSeen::NotOffered => {}
        StartTlsSeen::Refused(reply) => out.push(
            Finding::new(
                "tls-handshake",
                Verdict::Fail,
                format!(
                    "STARTTLS was advertised but refused with {}: clients fall back to \
                     cleartext or fail",
                    reply.summary
                ),
            )
            .fix(
                "check that smtpd_tls_chain_files (or smtpd_tls_cert_file and \
                 smtpd_tls_key_file) name a readable certificate and key; the mail log says \
                 why TLS is unavailable",
            ),
        ),
        StartTlsSeen::HandshakeFailed {
            detail,
            no_modern_version,
        } => {
            let (why, fix) = if *no_modern_version {
                (
                    format!(
                        "handshake failed: server offers no TLS 1.2/1.3 ({detail}); TLS 1.0 and \
                         1.1 are deprecated (RFC 8996) and modern clients refuse them"
                    ),
                    "set smtpd_tls_protocols = >=TLSv1.2 and smtpd_tls_mandatory_protocols = \
                     >=TLSv1.2, and upgrade the TLS library if it cannot do TLS 1.2",
                )
            } else {
                (
                    format!("the TLS handshake failed: {detail}"),
                    "check the certificate and key (smtpd_tls_chain_files), smtpd_tls_protocols \
                     and smtpd_tls_ciphers; the mail log names the server side of the failure",
                )
            };
            out.push(Finding::new("tls-handshake", Verdict::Fail, why).fix(fix));
        }
        StartTlsSeen::Established(_) => {}
    }
    if let Some(info) = info {
        tls_details(role, info, out);
    }
}

fn tls_details(role: Role, info: &TlsInfo, out: &mut Vec<Finding>) {
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
        "tls-handshake",
        Verdict::Pass,
        format!(
            "{} with {}{group}{verdict_note}",
            info.version, info.cipher_suite
        ),
    ));
    // An MX's certificate is checked by few senders (opportunistic TLS), so a bad one is a
    // warning there; MTA-STS and DANE senders do check it. Submission clients always check.
    let bad_cert = match role {
        Role::Mx => Verdict::Warn,
        Role::Submission => Verdict::Fail,
    };
    let cert_fix = "install a certificate from a CA the clients trust, with its intermediates \
                    (smtpd_tls_chain_files, or smtpd_tls_cert_file holding leaf then \
                    intermediates)";
    let leaf = info.chain.first();
    match &info.verification {
        Verification::Verified => out.push(Finding::new(
            "certificate-chain",
            Verdict::Pass,
            format!(
                "the chain verifies to a trusted root for {}",
                info.server_name
            ),
        )),
        Verification::Failed(problem)
            if matches!(
                problem.kind,
                "expired" | "not yet valid" | "not valid for name"
            ) =>
        {
            out.push(Finding::new(
                "certificate-chain",
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
                "certificate-chain",
                bad_cert,
                format!("the certificate does not verify: {}", problem.detail),
            )
            .fix(cert_fix),
        ),
    }
    let Some(leaf) = leaf else {
        out.push(
            Finding::new(
                "certificate",
                bad_cert,
                "the server presented no certificate",
            )
            .fix(cert_fix),
        );
        return;
    };
    if let Some(error) = &leaf.parse_error {
        out.push(Finding::new(
            "certificate",
            Verdict::Info,
            format!("the leaf certificate could not be parsed ({error}); name, expiry and key not judged"),
        ));
        return;
    }
    // Name.
    let name_ok = matches!(info.verification, Verification::Verified)
        || name_matches(&info.server_name, &leaf.sans);
    if name_ok {
        out.push(Finding::new(
            "certificate-name",
            Verdict::Pass,
            format!("the certificate is valid for {}", info.server_name),
        ));
    } else {
        out.push(
            Finding::new(
                "certificate-name",
                bad_cert,
                format!(
                    "the certificate is not valid for {}; it names {}",
                    info.server_name,
                    list(&leaf.sans)
                ),
            )
            .fix(format!(
                "use a certificate whose subjectAltName includes {} (smtpd_tls_chain_files), \
                 or audit by a name on the certificate (--servername)",
                info.server_name
            )),
        );
    }
    // Expiry.
    let days = leaf.days_to_expiry;
    if days < 0 {
        out.push(
            Finding::new(
                "certificate-expiry",
                bad_cert,
                format!(
                    "the certificate expired {} days ago ({})",
                    -days, leaf.not_after
                ),
            )
            .fix("renew the certificate and reload Postfix (postfix reload); automate renewal"),
        );
    } else if days < EXPIRY_WARN_DAYS {
        out.push(
            Finding::new(
                "certificate-expiry",
                Verdict::Warn,
                format!(
                    "the certificate expires in {days} days ({}), under {EXPIRY_WARN_DAYS}",
                    leaf.not_after
                ),
            )
            .fix("renew the certificate now and reload Postfix (postfix reload); automate renewal"),
        );
    } else {
        out.push(Finding::new(
            "certificate-expiry",
            Verdict::Pass,
            format!(
                "the certificate is valid for {days} more days ({})",
                leaf.not_after
            ),
        ));
    }
    // Key.
    out.push(key_finding(&leaf.key));
}

fn key_finding(key: &str) -> Finding {
    let rsa_bits = key
        .strip_prefix("RSA ")
        .and_then(|bits| bits.parse::<u32>().ok());
    match rsa_bits {
        Some(bits) if bits < 2048 => Finding::new(
            "certificate-key",
            Verdict::Fail,
            format!("the certificate key is {key}, below the 2048-bit minimum for RSA"),
        )
        .fix("issue a new certificate with an RSA 2048+ or EC P-256 key (smtpd_tls_chain_files)"),
        Some(_) => Finding::new(
            "certificate-key",
            Verdict::Pass,
            format!("the certificate key is {key}"),
        ),
        None if key.starts_with("EC P-") || key.starts_with("Ed") => Finding::new(
            "certificate-key",
            Verdict::Pass,
            format!("the certificate key is {key}"),
        ),
        None => Finding::new(
            "certificate-key",
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

fn after_tls_findings(role: Role, seen: &Observations, out: &mut Vec<Finding>) {
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
            "extensions-after-tls",
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
                "starttls-after-tls",
                Verdict::Fail,
                "STARTTLS is still advertised inside TLS, which RFC 3207 §4.2 forbids; clients \
                 may try to start TLS twice and fail",
            )
            .fix(
                "upgrade or fix the server (Postfix never does this); a proxy in front of it may \
                 be rewriting the EHLO reply",
            ),
        );
    } else if !seen.implicit {
        out.push(Finding::new(
            "starttls-after-tls",
            Verdict::Pass,
            "STARTTLS is no longer advertised inside TLS (RFC 3207 §4.2)",
        ));
    }
    match (role, after.auth_mechanisms.is_empty()) {
        (Role::Submission, false) => out.push(Finding::new(
            "auth-after-tls",
            Verdict::Pass,
            format!(
                "AUTH {} is offered inside TLS",
                list(&after.auth_mechanisms)
            ),
        )),
        (Role::Submission, true) => out.push(
            Finding::new(
                "auth-after-tls",
                Verdict::Warn,
                "no AUTH is offered inside TLS: users cannot authenticate to submit mail",
            )
            .fix("set smtpd_sasl_auth_enable = yes on the submission listener (master.cf -o)"),
        ),
        (Role::Mx, false) => out.push(Finding::new(
            "auth-after-tls",
            Verdict::Info,
            format!(
                "AUTH {} is offered inside TLS; an MX does not need it (smtpd_sasl_auth_enable = \
                 no), submission belongs on 587 or 465",
                list(&after.auth_mechanisms)
            ),
        )),
        (Role::Mx, true) => out.push(Finding::new(
            "auth-after-tls",
            Verdict::Info,
            "no AUTH is offered inside TLS, as usual for an MX",
        )),
    }
}

fn injection(seen: &Observations, out: &mut Vec<Finding>) {
    match &seen.injection {
        InjectionSeen::NotRun => {}
        InjectionSeen::Safe => out.push(Finding::new(
            "starttls-injection",
            Verdict::Pass,
            "a NOOP pipelined in cleartext behind STARTTLS was discarded, not run inside TLS \
             (CVE-2011-0411 class)",
        )),
        InjectionSeen::Vulnerable(reply) => out.push(
            Finding::new(
                "starttls-injection",
                Verdict::Fail,
                format!(
                    "a NOOP pipelined in cleartext behind STARTTLS was answered inside TLS \
                     ({}): an attacker on the path can inject commands into the encrypted \
                     session (CVE-2011-0411 class)",
                    reply.summary
                ),
            )
            .fix(
                "upgrade the SMTP server: it must discard input buffered before the TLS \
                 handshake (every Postfix release since March 2011 does; RFC 3207 §4.2)",
            ),
        ),
        InjectionSeen::Inconclusive(why) => out.push(Finding::new(
            "starttls-injection",
            Verdict::Info,
            format!("the STARTTLS injection probe was inconclusive: {why}"),
        )),
    }
}

fn implicit_probe(role: Role, seen: &Observations, out: &mut Vec<Finding>) {
    let fix = "offer implicit TLS for submission on 465 (RFC 8314 §3.3): in master.cf a \
               'submissions' (or 'smtps') service with -o smtpd_tls_wrappermode=yes and -o \
               smtpd_sasl_auth_enable=yes";
    match &seen.implicit_probe {
        ImplicitSeen::NotRun => {}
        ImplicitSeen::NothingListening { port } => {
            let finding = Finding::new(
                "implicit-tls",
                Verdict::Info,
                format!(
                    "nothing listens on port {port}; RFC 8314 §3.3 prefers implicit TLS for \
                     submission"
                ),
            );
            out.push(if role == Role::Submission {
                finding.fix(fix)
            } else {
                finding
            });
        }
        ImplicitSeen::Failed { port, detail } => out.push(
            Finding::new(
                "implicit-tls",
                Verdict::Warn,
                format!("port {port} accepts connections but implicit TLS failed: {detail}"),
            )
            .fix(fix),
        ),
        ImplicitSeen::Works { port, summary } => out.push(Finding::new(
            "implicit-tls",
            Verdict::Pass,
            format!("implicit TLS works on port {port} ({summary}), as RFC 8314 §3.3 prefers"),
        )),
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
    use crate::tls::{CertSummary, CertificateProblem};

    fn brief(code: u16, text: &str) -> ReplyBrief {
        ReplyBrief {
            code,
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
        })
    }

    /// A well-run submission server: the motivating configuration.
    fn submission_ok() -> Observations {
        Observations {
            target: "mail.example:587".into(),
            port: 587,
            implicit: false,
            greeting: brief(220, "mail.example ESMTP"),
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
            injection: InjectionSeen::Safe,
            implicit_probe: ImplicitSeen::NotRun,
            aborted: None,
        }
    }

    fn verdict_of(findings: &[Finding], id: &str) -> Verdict {
        findings
            .iter()
            .find(|f| f.id == id)
            .map(|f| f.verdict)
            .unwrap_or(Verdict::Info)
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
            verdict_of(&findings, "auth-accepted-before-tls"),
            Verdict::Pass
        );
        assert_eq!(verdict_of(&findings, "mail-without-tls"), Verdict::Pass);
    }

    #[test]
    fn auth_before_tls_fails_and_names_auth_only() {
        let mut seen = submission_ok();
        seen.ehlo_before = Some(ehlo(true, &["PLAIN", "LOGIN"]));
        seen.auth_probe = Some(AuthProbeSeen::Challenged {
            mechanism: "LOGIN".into(),
        });
        let findings = judge(&role(Role::Submission), &seen);
        for id in ["auth-advertised-before-tls", "auth-accepted-before-tls"] {
            let f = findings.iter().find(|f| f.id == id).expect(id);
            assert_eq!(f.verdict, Verdict::Fail);
            assert!(
                f.fix
                    .as_deref()
                    .unwrap_or("")
                    .contains("smtpd_tls_auth_only = yes")
            );
        }
    }

    #[test]
    fn requiring_tls_is_right_on_submission_and_a_warning_on_an_mx() {
        let seen = submission_ok();
        let mx = judge(&role(Role::Mx), &seen);
        let f = mx
            .iter()
            .find(|f| f.id == "mail-without-tls")
            .expect("finding");
        assert_eq!(f.verdict, Verdict::Warn);
        assert!(
            f.fix
                .as_deref()
                .unwrap_or("")
                .contains("smtpd_tls_security_level = may")
        );

        let mut open = submission_ok();
        open.mail_before_tls = Some(brief(250, "2.1.0 Ok"));
        assert_eq!(
            verdict_of(&judge(&role(Role::Mx), &open), "mail-without-tls"),
            Verdict::Pass
        );
        let sub = judge(&role(Role::Submission), &open);
        let f = sub
            .iter()
            .find(|f| f.id == "mail-without-tls")
            .expect("finding");
        assert_eq!(f.verdict, Verdict::Fail);
        assert!(f.fix.as_deref().unwrap_or("").contains("encrypt"));
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
        assert_eq!(verdict_of(&findings, "certificate-expiry"), Verdict::Fail);
        assert_eq!(verdict_of(&findings, "certificate-key"), Verdict::Fail);
        assert_eq!(verdict_of(&findings, "certificate-name"), Verdict::Pass);
        // The same expired certificate on an MX is a warning: few senders check.
        let mx = judge(&role(Role::Mx), &seen);
        assert_eq!(verdict_of(&mx, "certificate-expiry"), Verdict::Warn);

        seen.starttls = StartTlsSeen::Established(tls(
            Verification::Verified,
            leaf(5, &["DNS:mail.example"], "RSA 2048"),
        ));
        let findings = judge(&role(Role::Submission), &seen);
        assert_eq!(verdict_of(&findings, "certificate-expiry"), Verdict::Warn);
        assert_eq!(verdict_of(&findings, "certificate-key"), Verdict::Pass);
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

    #[test]
    fn old_tls_only_is_a_failure_with_the_rfc() {
        let mut seen = submission_ok();
        seen.starttls = StartTlsSeen::HandshakeFailed {
            detail: "peer is incompatible".into(),
            no_modern_version: true,
        };
        seen.ehlo_after = None;
        seen.injection = InjectionSeen::NotRun;
        let findings = judge(&role(Role::Mx), &seen);
        let f = findings
            .iter()
            .find(|f| f.id == "tls-handshake")
            .expect("finding");
        assert_eq!(f.verdict, Verdict::Fail);
        assert!(f.why.contains("server offers no TLS 1.2/1.3"));
        assert!(f.why.contains("RFC 8996"));
        assert!(
            f.fix
                .as_deref()
                .unwrap_or("")
                .contains("smtpd_tls_protocols")
        );
    }

    #[test]
    fn starttls_after_tls_and_injection_fail() {
        let mut seen = submission_ok();
        seen.ehlo_after = Some(ehlo(true, &["PLAIN"]));
        seen.injection = InjectionSeen::Vulnerable(brief(250, "2.0.0 Ok"));
        let findings = judge(&role(Role::Submission), &seen);
        assert_eq!(verdict_of(&findings, "starttls-after-tls"), Verdict::Fail);
        assert_eq!(verdict_of(&findings, "starttls-injection"), Verdict::Fail);
    }

    #[test]
    fn nothing_on_465_is_information_not_failure() {
        let mut seen = submission_ok();
        seen.implicit_probe = ImplicitSeen::NothingListening { port: 465 };
        let findings = judge(&role(Role::Submission), &seen);
        assert_eq!(verdict_of(&findings, "implicit-tls"), Verdict::Info);
        assert_eq!(tally(&findings)[2], (Verdict::Fail, 0));
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
}
