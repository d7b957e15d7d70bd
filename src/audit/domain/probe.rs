//! Filling in [`DomainSeen`]: the DNS lookups, then the host audit of every MX address on
//! port 25, all addresses at once, each with its own deadline; at the same time the
//! `_mta-sts` and `_smtp._tls` records and the MTA-STS policy fetch.
//!
//! Each address gets the host audit as `smtptui audit IP:25 --role mx --servername MX` would
//! run it ([`crate::audit::probe::run_battery`]), but for the STARTTLS command injection
//! probe, which alone would take 1.5 s: the certificate is verified for the MX host name, and
//! the chain it records is what the DANE matching reads. Nothing here judges.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use futures_util::future::join_all;

use super::dns::{Dns, Lookup};
use super::fetch::{self, FetchConfig};
use super::model::{
    AddressSeen, DomainSeen, HostSeen, MtaStsSeen, NoDaneBecause, ProbeSeen, SendingSeen,
    TlsRptSeen, TlsaSeen,
};
use super::mta_sts;
use crate::audit::findings::Role;
use crate::audit::probe::{self, AuditConfig, AuditError, Battery, Recorder};
use crate::session::{SessionConfig, TlsMode};

/// What to audit and how.
#[derive(Debug, Clone)]
pub struct DomainConfig {
    /// The domain, as typed.
    pub domain: String,
    /// The session settings every MX probe starts from: trust anchors (`--ca-file`), reply
    /// limits and the per-step `--timeout`. Host, port, server name and TLS mode are set per
    /// address.
    pub session: SessionConfig,
    /// The port to probe: 25, the only one senders use.
    pub port: u16,
    /// The most one address's whole host audit may take.
    pub deadline: Duration,
}

/// Every lookup and probe; the events of each address's sessions in their own recorder, in
/// table order, for `--transcript`.
///
/// # Errors
/// None: DNS failures and unreachable hosts are observations.
pub async fn run(config: &DomainConfig, dns: &Dns) -> (DomainSeen, Vec<Recorder>) {
    let domain = normalise(&config.domain);
    let checked_at = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let ((mx, hosts, implicit_mx, recorders), (mta_sts, tls_rpt)) = tokio::join!(
        mail_hosts(config, dns, &domain),
        policies(config, dns, &domain)
    );
    let seen = DomainSeen {
        domain,
        mx,
        hosts,
        implicit_mx,
        mta_sts,
        tls_rpt,
        sending: SendingSeen::NotChecked,
        checked_at,
    };
    (seen, recorders)
}

/// The `_mta-sts` record and the policy it announces, and the `_smtp._tls` record.
async fn policies(config: &DomainConfig, dns: &Dns, domain: &str) -> (MtaStsSeen, TlsRptSeen) {
    let fetch_config = FetchConfig {
        extra_roots: config.session.trust.extra_roots.clone(),
        step_timeout: config.session.timeout,
        deadline: config.deadline,
    };
    let mta_sts = async {
        match dns.txt(&format!("_mta-sts.{domain}")).await {
            Lookup::Found { records, .. } if records.iter().any(|r| mta_sts::concerns(r)) => {
                let fetch = fetch::fetch(dns, domain, &fetch_config).await;
                MtaStsSeen::Published { records, fetch }
            }
            Lookup::Found { .. } | Lookup::None { .. } => MtaStsSeen::NotPublished,
            Lookup::Bogus { why } => {
                MtaStsSeen::LookupFailed(format!("it does not validate: {why}"))
            }
            Lookup::Failed { why } => MtaStsSeen::LookupFailed(why),
        }
    };
    let tls_rpt = async {
        match dns.txt(&format!("_smtp._tls.{domain}")).await {
            Lookup::Found { records, .. }
                if records.iter().any(|r| r.starts_with("v=TLSRPTv1")) =>
            {
                TlsRptSeen::Published(records)
            }
            Lookup::Found { .. } | Lookup::None { .. } => TlsRptSeen::NotPublished,
            Lookup::Bogus { why } => {
                TlsRptSeen::LookupFailed(format!("it does not validate: {why}"))
            }
            Lookup::Failed { why } => TlsRptSeen::LookupFailed(why),
        }
    };
    tokio::join!(mta_sts, tls_rpt)
}

/// Where mail goes, and every address of it probed.
async fn mail_hosts(
    config: &DomainConfig,
    dns: &Dns,
    domain: &str,
) -> (Lookup<super::dns::Mx>, Vec<HostSeen>, bool, Vec<Recorder>) {
    let domain = domain.to_owned();
    let mx = dns.mx(&domain).await;
    let mut names: Vec<(String, u16)> = match &mx {
        Lookup::Found { records, .. } if records.iter().any(|r| r.is_null()) => Vec::new(),
        Lookup::Found { records, .. } => {
            let mut sorted = records.clone();
            sorted.sort_by(|a, b| {
                a.preference
                    .cmp(&b.preference)
                    .then(a.exchange.cmp(&b.exchange))
            });
            sorted
                .into_iter()
                .map(|r| (r.exchange, r.preference))
                .collect()
        }
        _ => Vec::new(),
    };
    names.dedup_by(|a, b| a.0 == b.0);
    // No MX at all (not a failure): the domain itself is the implicit MX (RFC 5321 §5.1).
    let implicit_mx = matches!(
        mx,
        Lookup::None {
            nxdomain: false,
            ..
        }
    );
    if implicit_mx {
        names.push((domain.clone(), 0));
    }
    let mx_secure = mx.is_secure();
    let hosts = join_all(
        names
            .iter()
            .map(|(name, preference)| resolve_host(dns, name, *preference, mx_secure)),
    )
    .await;

    // Every address of every host at once.
    let mut jobs = Vec::new();
    for (h, host) in hosts.iter().enumerate() {
        for ip in host.a.records().iter().chain(host.aaaa.records()) {
            jobs.push((h, *ip, host.name.clone()));
        }
    }
    let results = join_all(
        jobs.iter()
            .map(|(_, ip, name)| probe_address(config, *ip, name)),
    )
    .await;
    let mut hosts = hosts;
    let mut recorders = Vec::new();
    for ((h, ip, _), (probe, recorder)) in jobs.into_iter().zip(results) {
        hosts[h].addresses.push(AddressSeen { ip, probe });
        recorders.push(recorder);
    }
    (mx, hosts, implicit_mx, recorders)
}

/// A domain as looked up: lower case, no final dot.
pub fn normalise(domain: &str) -> String {
    domain.trim().trim_end_matches('.').to_ascii_lowercase()
}

async fn resolve_host(dns: &Dns, name: &str, preference: u16, mx_secure: bool) -> HostSeen {
    let (a, aaaa) = tokio::join!(dns.a(name), dns.aaaa(name));
    let mut host = HostSeen {
        name: name.to_owned(),
        preference,
        a,
        aaaa,
        tlsa: TlsaSeen::NotLookedUp(NoDaneBecause::MxNotSecure),
        addresses: Vec::new(),
    };
    host.tlsa = if !mx_secure {
        TlsaSeen::NotLookedUp(NoDaneBecause::MxNotSecure)
    } else if !host.addresses_secure() {
        TlsaSeen::NotLookedUp(NoDaneBecause::AddressesNotSecure)
    } else {
        TlsaSeen::Looked(dns.tlsa(name).await)
    };
    host
}

async fn probe_address(config: &DomainConfig, ip: IpAddr, host: &str) -> (ProbeSeen, Recorder) {
    let recorder = Recorder::new();
    let mut session = config.session.clone();
    session.host = ip.to_string();
    session.port = config.port;
    session.server_name = host.to_owned();
    session.tls_mode = TlsMode::StartTls;
    let audit_config = AuditConfig {
        session,
        role: Some(Role::Mx),
        implicit_port: None,
        no_implicit: true,
    };
    let probe = match tokio::time::timeout(
        config.deadline,
        probe::run_battery(audit_config, &recorder, Battery::WithoutInjection),
    )
    .await
    {
        Ok(Ok(audit)) => ProbeSeen::Audited(Box::new(audit)),
        Ok(Err(AuditError::Connect { source, .. })) => ProbeSeen::Unreachable(source.to_string()),
        Ok(Err(AuditError::NothingJudged { why, .. })) => ProbeSeen::Unreachable(why),
        Err(_) => ProbeSeen::DeadlineExceeded(config.deadline),
    };
    (probe, recorder)
}
