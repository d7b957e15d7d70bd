//! The domain audit's DNS: MX, address and TLSA lookups, each with its DNSSEC status as the
//! audit itself validated it.
//!
//! Validation runs in-process (hickory's validator) from a trust anchor: the root's by
//! default, or the DNSKEY records of `--trust-anchor FILE` for private and test setups. An
//! upstream resolver's AD bit is never read: the upstream only carries records and their
//! signatures. Every lookup comes back as a [`Lookup`], plain data for the judging.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ProtocolConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::dnssec::{Proof, TrustAnchors};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};

use super::dane::Tlsa;
use crate::proto::escape::escape_str;

/// What DNSSEC validation concluded for an answer (RFC 4033 §5), the audit's own view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Signed, and the signatures chain to the trust anchor.
    Secure,
    /// Provably unsigned: a parent zone proves there is no DS for the zone.
    Insecure,
    /// Neither could be established (no DNSSEC records reached the audit).
    Indeterminate,
}

impl Security {
    /// `secure`, `insecure`, `indeterminate`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Secure => "secure",
            Self::Insecure => "insecure",
            Self::Indeterminate => "indeterminate",
        }
    }
}

/// The answer to one lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    /// Records of the type asked for.
    Found {
        /// The records, in the order received.
        records: Vec<T>,
        /// Their DNSSEC status.
        security: Security,
    },
    /// The name exists without records of this type, or does not exist at all.
    None {
        /// NXDOMAIN rather than NODATA.
        nxdomain: bool,
        /// The DNSSEC status of the denial.
        security: Security,
    },
    /// The answer failed DNSSEC validation: signatures that do not verify, or records
    /// missing where the parent says they must be.
    Bogus {
        /// What the validator said.
        why: String,
    },
    /// No usable answer: a timeout, SERVFAIL, REFUSED.
    Failed {
        /// What happened.
        why: String,
    },
}

impl<T> Lookup<T> {
    /// The records, when there are any.
    pub fn records(&self) -> &[T] {
        match self {
            Self::Found { records, .. } => records,
            _ => &[],
        }
    }

    /// The DNSSEC status of a usable answer (records or a denial).
    pub fn security(&self) -> Option<Security> {
        match self {
            Self::Found { security, .. } | Self::None { security, .. } => Some(*security),
            _ => None,
        }
    }

    /// Whether the answer (records or a denial) is validated.
    pub fn is_secure(&self) -> bool {
        self.security() == Some(Security::Secure)
    }

    /// One short phrase: `secure`, `insecure NXDOMAIN`, `bogus (...)`.
    pub fn describe(&self) -> String {
        match self {
            Self::Found { security, .. } => security.name().to_owned(),
            Self::None {
                nxdomain, security, ..
            } => format!(
                "{} {}",
                security.name(),
                if *nxdomain { "NXDOMAIN" } else { "NODATA" }
            ),
            Self::Bogus { why } => format!("bogus ({why})"),
            Self::Failed { why } => format!("failed ({why})"),
        }
    }
}

/// One MX record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mx {
    /// Lower is preferred.
    pub preference: u16,
    /// The host, without the final dot; `.` alone for a null MX.
    pub exchange: String,
}

impl Mx {
    /// Whether this is RFC 7505's null MX (`0 .`): the domain accepts no mail.
    pub fn is_null(&self) -> bool {
        self.exchange == "." || self.exchange.is_empty()
    }
}

/// Where to send queries and what to trust.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// `--resolver ADDR:PORT`; the system's resolvers when `None`.
    pub resolver: Option<SocketAddr>,
    /// `--trust-anchor FILE`: DNSKEY records in zone-file form; the root's built-in anchor
    /// when `None`.
    pub trust_anchor: Option<std::path::PathBuf>,
    /// How long each query may take before it is retried or given up.
    pub timeout: Duration,
}

/// Why the DNS side could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DnsSetupError {
    /// The trust anchor file could not be read or parsed.
    #[error(
        "cannot use the trust anchor {path}: {why} (give DNSKEY records in zone-file form, \
         like `. IN DNSKEY 257 3 13 ...`)"
    )]
    TrustAnchor {
        /// The file.
        path: String,
        /// What went wrong.
        why: String,
    },
    /// The system's resolver configuration could not be read.
    #[error("cannot read the system's DNS configuration ({0}); give --resolver ADDR:PORT")]
    System(String),
}

/// A validating resolver and the lookups the domain audit needs.
#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dns")
    }
}

impl Dns {
    /// A resolver that validates every answer from the trust anchor.
    ///
    /// # Errors
    /// [`DnsSetupError`] when the anchor file is unusable or, without `--resolver`, the
    /// system's resolvers cannot be read.
    pub fn new(config: &DnsConfig) -> Result<Self, DnsSetupError> {
        let anchors = match &config.trust_anchor {
            Some(path) => load_anchors(path)?,
            None => TrustAnchors::default(),
        };
        let provider = hickory_resolver::net::runtime::TokioRuntimeProvider::default();
        let mut builder = match config.resolver {
            Some(addr) => {
                let mut udp = ConnectionConfig::new(ProtocolConfig::Udp);
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::new(ProtocolConfig::Tcp);
                tcp.port = addr.port();
                let server = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
                let resolver_config = ResolverConfig::from_parts(None, vec![], vec![server]);
                TokioResolver::builder_with_config(resolver_config, provider)
            }
            None => TokioResolver::builder(provider)
                .map_err(|e| DnsSetupError::System(e.to_string()))?,
        };
        let options: &mut ResolverOpts = builder.options_mut();
        options.validate = true;
        options.timeout = config.timeout;
        options.attempts = 2;
        options.use_hosts_file = ResolveHosts::Never;
        // Names are asked for as given: no search list.
        options.ndots = 0;
        options.try_tcp_on_error = true;
        let resolver = builder
            .with_trust_anchor(Arc::new(anchors))
            .build()
            .map_err(|e| DnsSetupError::System(e.to_string()))?;
        Ok(Self { resolver })
    }

    /// The domain's MX records.
    pub async fn mx(&self, domain: &str) -> Lookup<Mx> {
        self.lookup(domain, RecordType::MX, |data| match data {
            RData::MX(mx) => Some(Mx {
                preference: mx.preference,
                exchange: host_name(&mx.exchange),
            }),
            _ => None,
        })
        .await
    }

    /// A host's IPv4 addresses.
    pub async fn a(&self, host: &str) -> Lookup<IpAddr> {
        self.lookup(host, RecordType::A, |data| match data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .await
    }

    /// A host's IPv6 addresses.
    pub async fn aaaa(&self, host: &str) -> Lookup<IpAddr> {
        self.lookup(host, RecordType::AAAA, |data| match data {
            RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .await
    }

    /// The TLSA records for SMTP on port 25 of a host: `_25._tcp.<host>`.
    pub async fn tlsa(&self, host: &str) -> Lookup<Tlsa> {
        let name = format!("_25._tcp.{host}");
        self.lookup(&name, RecordType::TLSA, |data| match data {
            RData::TLSA(tlsa) => Some(Tlsa {
                usage: tlsa.cert_usage.into(),
                selector: tlsa.selector.into(),
                matching: tlsa.matching.into(),
                data: tlsa.cert_data.clone(),
            }),
            _ => None,
        })
        .await
    }

    /// The TXT records at a name, each record's strings joined without anything between
    /// them (RFC 8461 §3.1, RFC 8460 §3); bytes that are not UTF-8 replaced. Escape before
    /// display.
    pub async fn txt(&self, name: &str) -> Lookup<String> {
        self.lookup(name, RecordType::TXT, |data| match data {
            RData::TXT(txt) => {
                let bytes: Vec<u8> = txt
                    .txt_data
                    .iter()
                    .flat_map(|s| s.iter().copied())
                    .collect();
                Some(String::from_utf8_lossy(&bytes).into_owned())
            }
            _ => None,
        })
        .await
    }

    async fn lookup<T>(
        &self,
        name: &str,
        record_type: RecordType,
        convert: impl Fn(&RData) -> Option<T>,
    ) -> Lookup<T> {
        let fqdn = match Name::from_ascii(absolute(name)) {
            Ok(name) => name,
            Err(error) => {
                return Lookup::Failed {
                    why: format!("{} is not a DNS name ({error})", escape_str(name)),
                };
            }
        };
        match self.resolver.lookup(fqdn.clone(), record_type).await {
            Ok(lookup) => {
                let wanted: Vec<&Record> = lookup
                    .answers()
                    .iter()
                    .filter(|r| r.record_type() == record_type)
                    .collect();
                let records: Vec<T> = wanted.iter().filter_map(|r| convert(&r.data)).collect();
                if records.is_empty() {
                    return Lookup::None {
                        nxdomain: false,
                        security: weakest(lookup.answers().iter().map(|r| r.proof)),
                    };
                }
                match weakest_or_bogus(wanted.iter().map(|r| r.proof)) {
                    Ok(security) => Lookup::Found { records, security },
                    Err(()) => Lookup::Bogus {
                        why: format!("the {record_type} records do not validate"),
                    },
                }
            }
            Err(error) => from_error(&error),
        }
    }
}

fn from_error<T>(error: &NetError) -> Lookup<T> {
    match error {
        NetError::Dns(DnsError::NoRecordsFound(none)) => {
            let nxdomain =
                none.response_code == hickory_resolver::proto::op::ResponseCode::NXDomain;
            let proofs: Vec<Proof> = none
                .authorities
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(|r| r.proof)
                .collect();
            // A validated denial carries validated NSEC or NSEC3 records (and the SOA).
            let security = if !proofs.is_empty() && proofs.iter().all(|p| *p == Proof::Secure) {
                Security::Secure
            } else if proofs.contains(&Proof::Bogus) {
                return Lookup::Bogus {
                    why: "the denial of existence does not validate".to_owned(),
                };
            } else if !proofs.is_empty() && proofs.iter().all(|p| *p == Proof::Insecure) {
                Security::Insecure
            } else {
                Security::Indeterminate
            };
            Lookup::None { nxdomain, security }
        }
        NetError::Dns(DnsError::Nsec {
            response, proof, ..
        }) => match proof {
            Proof::Bogus => Lookup::Bogus {
                why: "the denial of existence does not validate".to_owned(),
            },
            other => Lookup::None {
                nxdomain: response.response_code
                    == hickory_resolver::proto::op::ResponseCode::NXDomain,
                security: security_of(*other),
            },
        },
        NetError::Dns(DnsError::DnssecBogus) => Lookup::Bogus {
            why: "DNSSEC validation failed".to_owned(),
        },
        other => Lookup::Failed {
            why: escape_str(&other.to_string()),
        },
    }
}

fn security_of(proof: Proof) -> Security {
    match proof {
        Proof::Secure => Security::Secure,
        Proof::Insecure => Security::Insecure,
        _ => Security::Indeterminate,
    }
}

/// The weakest status among records; `Err` when one is bogus.
fn weakest_or_bogus(proofs: impl Iterator<Item = Proof>) -> Result<Security, ()> {
    let mut result = Security::Secure;
    for proof in proofs {
        match proof {
            Proof::Secure => {}
            Proof::Insecure => {
                if result == Security::Secure {
                    result = Security::Insecure;
                }
            }
            Proof::Bogus => return Err(()),
            _ => result = Security::Indeterminate,
        }
    }
    Ok(result)
}

fn weakest(proofs: impl Iterator<Item = Proof>) -> Security {
    weakest_or_bogus(proofs).unwrap_or(Security::Indeterminate)
}

/// A host name as shown: lower case, no final dot (the root stays `.`), escaped.
fn host_name(name: &Name) -> String {
    if name.is_root() {
        return ".".to_owned();
    }
    let text = name.to_ascii().to_ascii_lowercase();
    escape_str(text.strip_suffix('.').unwrap_or(&text))
}

fn absolute(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

fn load_anchors(path: &Path) -> Result<TrustAnchors, DnsSetupError> {
    let fail = |why: String| DnsSetupError::TrustAnchor {
        path: path.display().to_string(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let anchors: TrustAnchors = text.parse().map_err(|e| fail(format!("{e}")))?;
    if !text.to_ascii_uppercase().contains("DNSKEY") {
        return Err(fail("no DNSKEY record in it".to_owned()));
    }
    Ok(anchors)
}
