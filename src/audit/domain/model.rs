//! What the domain audit saw, as plain data: the DNS answers with their DNSSEC status, and
//! the host audit of every MX address. [`super::judge()`] turns it into the table and the
//! findings without touching the network.
//!
//! The sending side is not probed from here: the domain's outbound server is graded by the
//! lab's grading MX, and its report is read in ([`SendingSeen::Graded`]); without one the
//! state says "not checked" ([`SendingSeen::NotChecked`]) rather than guess.

use std::net::IpAddr;
use std::time::Duration;

use super::dane::Tlsa;
use super::dns::{Lookup, Mx};
use super::mta_sts::PolicyFetch;
use crate::audit::probe::Audit;
use crate::tls::TlsInfo;

/// The port SMTP servers receive mail on: the only one senders try (RFC 5321 §4.5.4.2).
pub const SMTP_PORT: u16 = 25;

/// Everything the domain audit saw.
#[derive(Debug, Clone)]
pub struct DomainSeen {
    /// The domain, lower case, without a final dot.
    pub domain: String,
    /// The domain's MX lookup.
    pub mx: Lookup<Mx>,
    /// The hosts mail would go to, in the order a sender tries them: the MX hosts by
    /// preference, or the domain itself when it has no MX (the implicit MX, RFC 5321 §5.1).
    pub hosts: Vec<HostSeen>,
    /// Whether `hosts` is the implicit MX.
    pub implicit_mx: bool,
    /// The MTA-STS policy (RFC 8461).
    pub mta_sts: MtaStsSeen,
    /// The TLS-RPT record (RFC 8460).
    pub tls_rpt: TlsRptSeen,
    /// How the domain's own outbound server sends.
    pub sending: SendingSeen,
    /// When the audit ran, in seconds since the Unix epoch: DANE-TA's date checks use it.
    pub checked_at: u64,
}

/// One mail host.
#[derive(Debug, Clone)]
pub struct HostSeen {
    /// The host name, lower case, without a final dot.
    pub name: String,
    /// Its MX preference (0 for the implicit MX).
    pub preference: u16,
    /// Its IPv4 addresses.
    pub a: Lookup<IpAddr>,
    /// Its IPv6 addresses.
    pub aaaa: Lookup<IpAddr>,
    /// Its TLSA records for port 25.
    pub tlsa: TlsaSeen,
    /// Every address, probed.
    pub addresses: Vec<AddressSeen>,
}

impl HostSeen {
    /// Whether the host's address records are validated (RFC 7672 §2.2.2: only then does
    /// DANE apply to it). A family with no records counts when its denial is validated.
    pub fn addresses_secure(&self) -> bool {
        self.a.is_secure() && self.aaaa.is_secure()
    }
}

/// The TLSA lookup of a host, or why it was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsaSeen {
    /// Not looked up: DANE cannot apply, so a sender would not either.
    NotLookedUp(NoDaneBecause),
    /// `_25._tcp.<host>` as answered.
    Looked(Lookup<Tlsa>),
}

/// Why DANE does not apply to a host before any TLSA lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoDaneBecause {
    /// The MX records are not validated: whoever forges them chooses the host (RFC 7672
    /// §2.2.1).
    MxNotSecure,
    /// The host's address records are not validated (RFC 7672 §2.2.2).
    AddressesNotSecure,
}

/// One address of a host, and its probe.
#[derive(Debug, Clone)]
pub struct AddressSeen {
    /// The address.
    pub ip: IpAddr,
    /// What probing it gave.
    pub probe: ProbeSeen,
}

/// The host audit of one address on port 25.
#[derive(Debug, Clone)]
pub enum ProbeSeen {
    /// The host audit ran (judged as an MX); its observations hold the STARTTLS result and
    /// the chain.
    Audited(Box<Audit>),
    /// No session: the connection failed, or there was no 220 greeting.
    Unreachable(String),
    /// The host audit did not finish within its deadline.
    DeadlineExceeded(Duration),
}

impl ProbeSeen {
    /// The TLS session the STARTTLS probe established, when it did.
    pub fn tls(&self) -> Option<&TlsInfo> {
        match self {
            Self::Audited(audit) => match &audit.observations.starttls {
                crate::audit::findings::StartTlsSeen::Established(info) => Some(info),
                _ => None,
            },
            _ => None,
        }
    }
}

/// The domain's MTA-STS (RFC 8461): the TXT records at `_mta-sts.<domain>` and what the
/// policy host gave. [`super::judge()`] reads them as a sender does (which record counts,
/// whether the policy applies) and gives each row its MTA-STS column
/// ([`super::judge::mta_sts_cell`]) and the MTA-STS-enforcing sender's outcome
/// ([`super::judge::mta_sts_sender`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MtaStsSeen {
    /// No TXT record there concerns MTA-STS (none begins with `v=STSv1`).
    NotPublished,
    /// The TXT lookup gave no usable answer (it failed, or did not validate).
    LookupFailed(String),
    /// TXT records of which at least one begins with `v=STSv1`, and the policy fetch that
    /// followed.
    Published {
        /// Every TXT record at `_mta-sts.<domain>`, as published (not escaped).
        records: Vec<String>,
        /// What `https://mta-sts.<domain>/.well-known/mta-sts.txt` gave.
        fetch: PolicyFetch,
    },
}

/// The domain's TLS-RPT (RFC 8460): the TXT records at `_smtp._tls.<domain>`, which
/// [`super::judge()`] reads as a sender does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsRptSeen {
    /// No TXT record there begins with `v=TLSRPTv1`.
    NotPublished,
    /// The TXT lookup gave no usable answer.
    LookupFailed(String),
    /// Every TXT record there (at least one begins with `v=TLSRPTv1`), as published (not
    /// escaped).
    Published(Vec<String>),
}

/// How the domain's own outbound server delivers, as the lab's grading MX saw it
/// (`smtptui lab --profile grade`, read from its report with `--sending-report`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendingSeen {
    /// Not graded: no report was given, so only the receiving side is judged.
    NotChecked,
    /// The senders of a grade report, each with the `smtp_tls_security_level` it behaved
    /// like (or why the evidence names none).
    Graded(Vec<crate::lab::grade::SenderSummary>),
}
