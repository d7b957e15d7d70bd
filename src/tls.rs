//! TLS for SMTP: client configuration, a verifier that records its verdict, and the details of
//! what was negotiated.
//!
//! The verifier always runs the full webpki verification and records the outcome. Only with
//! the user's explicit `--insecure` does a failed verification let the handshake go on, and
//! even then the handshake signatures are still checked and the failed verdict stays attached
//! to the session, so the credential guard and every front end can see it.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::proto::escape::escape_str;

/// The crypto provider used everywhere, chosen explicitly (ring builds quickly with gcc).
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Errors while preparing TLS, before any connection.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The `--ca-file` could not be read or held no certificate.
    #[error("cannot use the CA file {path}: {reason}")]
    CaFile {
        /// The file given with `--ca-file`.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The server name cannot be used for SNI and verification.
    #[error(
        "{name:?} is not a valid server name for TLS (give --servername with a DNS name or IP address)"
    )]
    ServerName {
        /// The rejected name.
        name: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration error: {0}")]
    Config(#[from] rustls::Error),
}

/// The outcome of certificate verification for one handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The chain leads to a trusted root and the certificate is valid for the server name.
    Verified,
    /// Verification failed for this reason; the session only continues under `--insecure`.
    Failed(CertificateProblem),
}

impl Verification {
    /// Whether the certificate was verified.
    pub fn is_verified(&self) -> bool {
        matches!(self, Self::Verified)
    }
}

/// Why a certificate failed verification, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateProblem {
    /// A short stable label: `unknown issuer`, `expired`, `not valid for name`...
    pub kind: &'static str,
    /// The full explanation including what to do.
    pub detail: String,
}

impl CertificateProblem {
    /// The problem as a type, for code that decides on it (the audit's verdicts); the
    /// [`kind`](Self::kind) label is the same thing worded for people.
    pub fn problem_kind(&self) -> ProblemKind {
        ProblemKind::from_label(self.kind)
    }
}

/// What kind of certificate problem, for code that branches on it.
///
/// Each kind has exactly one label, the one [`CertificateProblem::kind`] carries, so a label
/// that is reworded without its kind here shows up as [`ProblemKind::Invalid`] in the tests
/// below rather than silently changing a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// The chain does not lead to a trusted root.
    UnknownIssuer,
    /// The certificate's validity has ended.
    Expired,
    /// The certificate's validity has not started.
    NotYetValid,
    /// The certificate does not name the server.
    NotValidForName,
    /// The certificate was revoked.
    Revoked,
    /// A signature in the chain does not verify.
    BadSignature,
    /// The certificate is not for TLS server use.
    WrongPurpose,
    /// No verdict was recorded for the handshake.
    NotChecked,
    /// Any other reason.
    Invalid,
}

impl ProblemKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 9] = [
        Self::UnknownIssuer,
        Self::Expired,
        Self::NotYetValid,
        Self::NotValidForName,
        Self::Revoked,
        Self::BadSignature,
        Self::WrongPurpose,
        Self::NotChecked,
        Self::Invalid,
    ];

    /// The label used in [`CertificateProblem::kind`].
    pub const fn label(self) -> &'static str {
        match self {
            Self::UnknownIssuer => "unknown issuer",
            Self::Expired => "expired",
            Self::NotYetValid => "not yet valid",
            Self::NotValidForName => "not valid for name",
            Self::Revoked => "revoked",
            Self::BadSignature => "bad signature",
            Self::WrongPurpose => "wrong purpose",
            Self::NotChecked => "not checked",
            Self::Invalid => "invalid certificate",
        }
    }

    /// The kind a label stands for; an unknown label is [`ProblemKind::Invalid`].
    pub fn from_label(label: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|kind| kind.label() == label)
            .unwrap_or(Self::Invalid)
    }

    /// Whether the problem is a property of the leaf (its dates or its names) rather than of
    /// the chain: verification stops there, so the chain itself was not judged.
    pub fn is_about_the_leaf(self) -> bool {
        matches!(
            self,
            Self::Expired | Self::NotYetValid | Self::NotValidForName
        )
    }
}

impl std::fmt::Display for CertificateProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

/// Turns a rustls verification error into a [`CertificateProblem`].
pub fn describe_certificate_error(error: &rustls::Error, server_name: &str) -> CertificateProblem {
    let (kind, detail) = match error {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => (
                "unknown issuer",
                "unknown issuer: the certificate chain does not lead to a trusted root \
                 (a private or self-signed CA needs --ca-file)"
                    .to_owned(),
            ),
            CertificateError::ExpiredContext { time, not_after } => (
                "expired",
                format!(
                    "certificate expired: not valid after {} ({} days ago)",
                    rfc3339(unix_secs(*not_after)),
                    (unix_secs(*time) - unix_secs(*not_after)).div_euclid(86_400)
                ),
            ),
            CertificateError::Expired => ("expired", "certificate expired".to_owned()),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => (
                "not yet valid",
                format!("certificate not yet valid ({cert}); check both clocks"),
            ),
            CertificateError::NotValidForNameContext { presented, .. } => (
                "not valid for name",
                format!(
                    "certificate not valid for name {server_name:?}; it names {}; \
                     connect by a name on the certificate or set --servername",
                    if presented.is_empty() {
                        "no host at all".to_owned()
                    } else {
                        // The names come from the peer's certificate: shown, never interpreted.
                        escape_str(&presented.join(", "))
                    }
                ),
            ),
            CertificateError::NotValidForName => (
                "not valid for name",
                format!(
                    "certificate not valid for name {server_name:?}; \
                     connect by a name on the certificate or set --servername"
                ),
            ),
            CertificateError::Revoked => ("revoked", "certificate revoked".to_owned()),
            CertificateError::BadSignature => (
                "bad signature",
                "certificate signature does not verify".to_owned(),
            ),
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => (
                "wrong purpose",
                format!("certificate not valid for TLS server use ({cert})"),
            ),
            other => (
                "invalid certificate",
                format!("invalid certificate: {other}"),
            ),
        },
        other => (
            "invalid certificate",
            format!("invalid certificate: {other}"),
        ),
    };
    CertificateProblem { kind, detail }
}

/// Shared slot where the verifier leaves its verdict for the session to read.
pub type VerdictSlot = Arc<Mutex<Option<Verification>>>;

/// A verifier that wraps webpki, records the verdict, and on explicit request lets a failed
/// verification continue while still checking handshake signatures.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    verdict: VerdictSlot,
    continue_unverified: bool,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let result = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        let verdict = match &result {
            Ok(_) => Verification::Verified,
            Err(error) => {
                Verification::Failed(describe_certificate_error(error, &server_name.to_str()))
            }
        };
        *self.verdict.lock().unwrap_or_else(PoisonError::into_inner) = Some(verdict);
        match result {
            Err(_) if self.continue_unverified => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Trust settings for a session: which roots, and whether to go on after a failed verification.
#[derive(Debug, Clone)]
pub struct TrustSettings {
    /// Extra trust anchors (from `--ca-file`), added to the webpki roots.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Continue the handshake when verification fails (`--insecure`); the verdict is kept.
    pub continue_unverified: bool,
}

impl TrustSettings {
    /// Loads trust anchors from a PEM file.
    ///
    /// # Errors
    /// [`TlsSetupError::CaFile`] when the file cannot be read or holds no certificate.
    pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
        let fail = |reason: String| TlsSetupError::CaFile {
            path: path.display().to_string(),
            reason,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| fail(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| fail(e.to_string()))?;
        if certs.is_empty() {
            return Err(fail("no PEM CERTIFICATE block found".to_owned()));
        }
        Ok(certs)
    }
}

/// Builds a client configuration for one connection, returning the slot its verdict lands in.
///
/// # Errors
/// [`TlsSetupError`] when a trust anchor is unusable or rustls refuses the configuration.
pub fn client_config(
    trust: &TrustSettings,
) -> Result<(Arc<rustls::ClientConfig>, VerdictSlot), TlsSetupError> {
    let provider = crypto_provider();
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in &trust.extra_roots {
        roots.add(cert.clone()).map_err(|e| TlsSetupError::CaFile {
            path: "--ca-file".to_owned(),
            reason: e.to_string(),
        })?;
    }
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsSetupError::Config(rustls::Error::General(e.to_string())))?;
    let verdict: VerdictSlot = Arc::default();
    let verifier = RecordingVerifier {
        inner,
        verdict: verdict.clone(),
        continue_unverified: trust.continue_unverified,
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous() // the custom verifier above never skips verification silently
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok((Arc::new(config), verdict))
}

/// Parses a server name for SNI and verification.
///
/// # Errors
/// [`TlsSetupError::ServerName`] for names that are neither a DNS name nor an IP address.
pub fn server_name(name: &str) -> Result<ServerName<'static>, TlsSetupError> {
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_owned()).map_err(|_| TlsSetupError::ServerName {
        name: name.to_owned(),
    })
}

/// What a TLS handshake negotiated, and what the peer presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: String,
    /// The cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher_suite: String,
    /// The key exchange group, e.g. `X25519`.
    pub key_exchange: Option<String>,
    /// The name used for SNI and verification.
    pub server_name: String,
    /// The verification verdict.
    pub verification: Verification,
    /// The peer's chain as presented, leaf first.
    pub chain: Vec<CertSummary>,
}

impl TlsInfo {
    /// Reads the negotiated parameters from a finished client connection.
    pub fn from_connection(
        conn: &rustls::ClientConnection,
        server_name: &str,
        verification: Verification,
    ) -> Self {
        let version = conn
            .protocol_version()
            .map(|v| match v {
                rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
                rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
                other => format!("{other:?}"),
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let cipher_suite = conn
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_else(|| "unknown".to_owned());
        let key_exchange = conn
            .negotiated_key_exchange_group()
            .map(|g| format!("{:?}", g.name()));
        let chain = conn
            .peer_certificates()
            .unwrap_or_default()
            .iter()
            .map(|der| CertSummary::parse(der, SystemTime::now()))
            .collect();
        Self {
            version,
            cipher_suite,
            key_exchange,
            server_name: server_name.to_owned(),
            verification,
            chain,
        }
    }

    /// One line for transcripts: version, suite, group and verdict.
    pub fn summary(&self) -> String {
        let verdict = match &self.verification {
            Verification::Verified => format!("certificate verified for {}", self.server_name),
            Verification::Failed(problem) => {
                format!(
                    "certificate NOT VERIFIED ({}), continuing without verification",
                    problem.kind
                )
            }
        };
        format!(
            "{} {}{}, {}",
            self.version,
            self.cipher_suite,
            self.key_exchange
                .as_deref()
                .map(|g| format!(" {g}"))
                .unwrap_or_default(),
            verdict
        )
    }
}

/// The details of one certificate in the peer's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// Subject distinguished name.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// DNS names and IP addresses from the subjectAltName extension.
    pub sans: Vec<String>,
    /// Start of validity, RFC 3339.
    pub not_before: String,
    /// End of validity, RFC 3339.
    pub not_after: String,
    /// Whole days until `not_after` (negative once expired).
    pub days_to_expiry: i64,
    /// Key type and size, e.g. `RSA 2048` or `EC P-256`.
    pub key: String,
    /// Serial number in hex.
    pub serial: String,
    /// Set when the certificate could not be parsed; the other fields are then empty.
    pub parse_error: Option<String>,
}

impl CertSummary {
    /// Parses a DER certificate; never fails, records the parse error instead.
    pub fn parse(der: &CertificateDer<'_>, now: SystemTime) -> Self {
        match x509_parser::parse_x509_certificate(der.as_ref()) {
            Ok((_, cert)) => {
                let sans = cert
                    .subject_alternative_name()
                    .ok()
                    .flatten()
                    .map(|ext| {
                        ext.value
                            .general_names
                            .iter()
                            .filter_map(|name| match name {
                                x509_parser::extensions::GeneralName::DNSName(dns) => {
                                    Some(format!("DNS:{}", escape_str(dns)))
                                }
                                x509_parser::extensions::GeneralName::IPAddress(ip) => {
                                    ip_to_string(ip).map(|ip| format!("IP:{ip}"))
                                }
                                _ => None,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let now_unix = now
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or_default();
                let not_after = cert.validity().not_after.timestamp();
                Self {
                    // Names in a certificate are peer text: escaped here, once, so that no
                    // front end (terminal, report, JSON) can show them raw.
                    subject: escape_str(&cert.subject().to_string()),
                    issuer: escape_str(&cert.issuer().to_string()),
                    sans,
                    not_before: rfc3339(cert.validity().not_before.timestamp()),
                    not_after: rfc3339(not_after),
                    days_to_expiry: (not_after - now_unix).div_euclid(86_400),
                    key: describe_key(cert.public_key()),
                    serial: cert.raw_serial_as_string(),
                    parse_error: None,
                }
            }
            Err(error) => Self {
                subject: String::new(),
                issuer: String::new(),
                sans: Vec::new(),
                not_before: String::new(),
                not_after: String::new(),
                days_to_expiry: 0,
                key: String::new(),
                serial: String::new(),
                parse_error: Some(error.to_string()),
            },
        }
    }
}

fn ip_to_string(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv4Addr::from(b).to_string()),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv6Addr::from(b).to_string()),
        _ => None,
    }
}

fn unix_secs(time: UnixTime) -> i64 {
    i64::try_from(time.as_secs()).unwrap_or(i64::MAX)
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

fn describe_key(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> String {
    use x509_parser::public_key::PublicKey;
    let algorithm = spki.algorithm.algorithm.to_id_string();
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("RSA {}", rsa.key_size()),
        Ok(PublicKey::EC(_)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string());
            match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => "EC P-256".to_owned(),
                Some("1.3.132.0.34") => "EC P-384".to_owned(),
                Some("1.3.132.0.35") => "EC P-521".to_owned(),
                Some(other) => format!("EC {other}"),
                None => "EC".to_owned(),
            }
        }
        _ if algorithm == "1.3.101.112" => "Ed25519".to_owned(),
        _ if algorithm == "1.3.101.113" => "Ed448".to_owned(),
        _ => format!("key {algorithm}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_a_hostile_certificate_are_escaped() {
        let error = rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("localhost").expect("valid name"),
            presented: vec!["DnsName(\"x\u{1b}[2J\u{1b}]0;PWNED\u{7}y.example\")".to_owned()],
        });
        let problem = describe_certificate_error(&error, "localhost");
        assert_eq!(problem.kind, "not valid for name");
        assert!(!problem.detail.contains('\u{1b}') && !problem.detail.contains('\u{7}'));
        assert!(problem.detail.contains("\\x1b[2J"), "{}", problem.detail);
    }

    #[test]
    fn every_verification_error_maps_to_its_typed_kind() {
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(2_000_000_000));
        let then = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_900_000_000));
        let cases = [
            (CertificateError::UnknownIssuer, ProblemKind::UnknownIssuer),
            (CertificateError::Expired, ProblemKind::Expired),
            (
                CertificateError::ExpiredContext {
                    time: now,
                    not_after: then,
                },
                ProblemKind::Expired,
            ),
            (CertificateError::NotValidYet, ProblemKind::NotYetValid),
            (
                CertificateError::NotValidForName,
                ProblemKind::NotValidForName,
            ),
            (
                CertificateError::NotValidForNameContext {
                    expected: ServerName::try_from("localhost").expect("valid name"),
                    presented: vec!["DnsName(\"other.example\")".to_owned()],
                },
                ProblemKind::NotValidForName,
            ),
            (CertificateError::Revoked, ProblemKind::Revoked),
            (CertificateError::BadSignature, ProblemKind::BadSignature),
            (CertificateError::InvalidPurpose, ProblemKind::WrongPurpose),
            (CertificateError::BadEncoding, ProblemKind::Invalid),
        ];
        for (error, kind) in cases {
            let problem =
                describe_certificate_error(&rustls::Error::InvalidCertificate(error), "localhost");
            assert_eq!(problem.problem_kind(), kind, "{problem:?}");
        }
        for kind in ProblemKind::ALL {
            assert_eq!(ProblemKind::from_label(kind.label()), kind);
        }
    }
}
