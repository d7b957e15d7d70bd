//! TLS for SMTP: client configuration, a verifier that records its verdict, and the details of
//! what was negotiated.
//!
//! The verifier always runs the full webpki verification and records the outcome. Only with
//! the user's explicit `--insecure` does a failed verification let the handshake go on, and
//! even then the handshake signatures are still checked and the failed verdict stays attached
//! to the session, so the credential guard and every front end can see it.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::SystemTime;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::proto::escape::escape_str;

mod client_cert;
pub use client_cert::{ClientIdentity, fingerprint};

/// The crypto provider used everywhere, chosen explicitly (ring builds quickly with gcc).
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Errors while preparing TLS, before any connection.
#[derive(Debug, Clone, thiserror::Error)]
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
    /// `--cert` or `--key` could not be used.
    #[error("cannot use the client certificate file {path}: {reason}")]
    ClientCertificate {
        /// The file given with `--cert` or `--key`.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration error: {0}")]
    Config(#[from] rustls::Error),
    /// The TLS versions or cipher suites chosen cannot make a handshake.
    #[error("{0}")]
    Choice(String),
    /// The key log file could not be opened for writing.
    #[error("cannot write the TLS key log {path}: {reason}")]
    KeyLog {
        /// The file given with `--keylog` (or `$SSLKEYLOGFILE`).
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// `--trust system` or `both`, and the system's trust store gave no certificate.
    #[error(
        "cannot use the system trust store: {0}; install the ca-certificates package, point \
         SSL_CERT_FILE or SSL_CERT_DIR at your CA certificates, or give --trust webpki"
    )]
    SystemRoots(String),
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

/// Turns a rustls verification error into a [`CertificateProblem`], in the user's words:
/// names as names (never the library's debug forms), dates as dates, and what to do.
pub fn describe_certificate_error(error: &rustls::Error, server_name: &str) -> CertificateProblem {
    match error {
        rustls::Error::InvalidCertificate(cert) => certificate_problem(cert, server_name),
        other => CertificateProblem {
            kind: "invalid certificate",
            detail: format!(
                "the certificate could not be verified: {}",
                describe_tls_error(other)
            ),
        },
    }
}

fn certificate_problem(cert: &CertificateError, server_name: &str) -> CertificateProblem {
    let (kind, detail) = match cert {
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
        CertificateError::NotValidYetContext { time, not_before } => (
            "not yet valid",
            format!(
                "certificate not yet valid: valid from {} ({} days from now); check both clocks",
                rfc3339(unix_secs(*not_before)),
                (unix_secs(*not_before) - unix_secs(*time)).div_euclid(86_400)
            ),
        ),
        CertificateError::NotValidYet => (
            "not yet valid",
            "certificate not yet valid; check both clocks".to_owned(),
        ),
        CertificateError::NotValidForNameContext { presented, .. } => (
            "not valid for name",
            format!(
                "certificate not valid for name {server_name:?}; it names {}; \
                 connect by a name on the certificate or set --servername",
                if presented.is_empty() {
                    "no host at all".to_owned()
                } else {
                    presented
                        .iter()
                        .map(|name| presented_name(name))
                        .collect::<Vec<_>>()
                        .join(", ")
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
        CertificateError::InvalidPurpose => (
            "wrong purpose",
            "certificate not valid for TLS server use (its extended key usage does not allow it)"
                .to_owned(),
        ),
        CertificateError::InvalidPurposeContext { presented, .. } => (
            "wrong purpose",
            format!(
                "certificate not valid for TLS server use; its extended key usage allows only {}",
                if presented.is_empty() {
                    "nothing".to_owned()
                } else {
                    presented
                        .iter()
                        .map(key_purpose)
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        ),
        CertificateError::BadEncoding => (
            "invalid certificate",
            "the certificate is malformed (its encoding cannot be read)".to_owned(),
        ),
        CertificateError::UnhandledCriticalExtension => (
            "invalid certificate",
            "the certificate has an extension marked critical that the verifier does not know, \
             so it cannot be trusted"
                .to_owned(),
        ),
        CertificateError::UnknownRevocationStatus
        | CertificateError::ExpiredRevocationList
        | CertificateError::ExpiredRevocationListContext { .. } => (
            "invalid certificate",
            "whether the certificate was revoked cannot be determined".to_owned(),
        ),
        CertificateError::UnsupportedSignatureAlgorithmContext { .. }
        | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => (
            "invalid certificate",
            "the certificate is signed with an algorithm that is not supported, or that does not \
             match the issuer's key"
                .to_owned(),
        ),
        CertificateError::InvalidOcspResponse => (
            "invalid certificate",
            "the server's OCSP (revocation status) response is invalid".to_owned(),
        ),
        CertificateError::ApplicationVerificationFailure => (
            "invalid certificate",
            "the certificate was rejected by an additional check".to_owned(),
        ),
        CertificateError::Other(other) => (
            "invalid certificate",
            format!(
                "invalid certificate: {}",
                webpki_problem(&other.to_string())
            ),
        ),
        // Deprecated variants, and any the TLS library adds later.
        other => (
            "invalid certificate",
            format!("invalid certificate: {}", words_of(&format!("{other:?}"))),
        ),
    };
    CertificateProblem { kind, detail }
}

/// A name as the verifier reports it from the certificate (`DnsName("mail.example")`,
/// `IpAddress(192.0.2.1)`), in plain words. The names are peer text: escaped, never
/// interpreted.
fn presented_name(reported: &str) -> String {
    let inside = |prefix: &str, suffix: &str| {
        reported
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
    };
    if let Some(dns) = inside("DnsName(\"", "\")") {
        escape_str(dns)
    } else if let Some(ip) = inside("IpAddress(", ")") {
        match ip.parse::<std::net::IpAddr>() {
            Ok(ip) => format!("IP address {ip}"),
            Err(_) => format!("IP address {}", escape_str(ip)),
        }
    } else if let Some(uri) = inside("UniformResourceIdentifier(\"", "\")") {
        format!("URI {}", escape_str(uri))
    } else if reported == "DirectoryName" {
        "a directory name".to_owned()
    } else if reported.starts_with("Unsupported(") {
        "a name of a kind not used for servers".to_owned()
    } else {
        escape_str(reported)
    }
}

fn key_purpose(purpose: &rustls::ExtendedKeyPurpose) -> String {
    match purpose {
        rustls::ExtendedKeyPurpose::ServerAuth => "server authentication".to_owned(),
        rustls::ExtendedKeyPurpose::ClientAuth => "client authentication".to_owned(),
        rustls::ExtendedKeyPurpose::Other(arcs) => format!(
            "OID {}",
            arcs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(".")
        ),
    }
}

/// The certificate path checks that rustls passes on from webpki only as text (the name of
/// the check that failed), in words.
fn webpki_problem(reported: &str) -> String {
    let name = reported
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or_default();
    match name {
        "CaUsedAsEndEntity" => "the server presents a CA certificate as its own".to_owned(),
        "EndEntityUsedAsCa" => "the chain uses a server certificate as a CA".to_owned(),
        "MaximumPathDepthExceeded" | "MaximumPathBuildCallsExceeded" => {
            "the certificate chain is too long to verify".to_owned()
        }
        "NameConstraintViolation" | "PathLenConstraintViolated" => {
            "the chain breaks a constraint its CA set (names or path length)".to_owned()
        }
        "UnsupportedCertVersion" => "the certificate is of an unsupported X.509 version".to_owned(),
        "InvalidSerialNumber" => "the certificate has an invalid serial number".to_owned(),
        "TrailingData" | "BadDer" | "BadDerTime" => {
            "the certificate is malformed (its encoding cannot be read)".to_owned()
        }
        _ => words_of(reported),
    }
}

/// What a TLS error means, in the user's words: for handshake failures, certificate
/// problems, alerts the server sent, and everything else rustls reports. Never the library's
/// debug forms or links to its documentation.
pub fn describe_tls_error(error: &rustls::Error) -> String {
    use rustls::Error as E;
    match error {
        E::AlertReceived(alert) => describe_alert(*alert),
        E::PeerIncompatible(why) => describe_incompatible(why),
        E::PeerMisbehaved(why) => describe_misbehaviour(why),
        E::InvalidMessage(what) => format!(
            "the server sent bytes that are not valid TLS ({}); the port may not speak TLS at \
             this point, or something on the path interfered",
            words_of(&format!("{what:?}"))
        ),
        E::InappropriateMessage {
            expect_types,
            got_type,
        } => format!(
            "the server sent a TLS {} message where {} was expected: a broken TLS \
             implementation, or something on the path interfering",
            words_of(&format!("{got_type:?}")),
            either(expect_types)
        ),
        E::InappropriateHandshakeMessage {
            expect_types,
            got_type,
        } => format!(
            "the server sent a TLS handshake message ({}) where {} was expected: a broken TLS \
             implementation, or something on the path interfering",
            words_of(&format!("{got_type:?}")),
            either(expect_types)
        ),
        E::InvalidCertificate(cert) => {
            let name = match cert {
                CertificateError::NotValidForNameContext { expected, .. } => {
                    expected.to_str().into_owned()
                }
                _ => "the server".to_owned(),
            };
            certificate_problem(cert, &name).detail
        }
        E::NoCertificatesPresented => "the server presented no certificate".to_owned(),
        E::UnsupportedNameType => {
            "the server name is of a kind certificates cannot be checked against".to_owned()
        }
        E::DecryptError => "a TLS record from the server could not be decrypted: it was \
                             damaged on the way, or the server's keys do not match"
            .to_owned(),
        E::EncryptError => "a TLS record could not be encrypted".to_owned(),
        E::PeerSentOversizedRecord => {
            "the server sent a TLS record larger than the protocol allows".to_owned()
        }
        E::HandshakeNotComplete => "the TLS handshake did not complete".to_owned(),
        E::NoApplicationProtocol => {
            "the server supports none of the application protocols offered (ALPN)".to_owned()
        }
        E::InvalidCertRevocationList(_) => "a certificate revocation list is invalid".to_owned(),
        E::InvalidEncryptedClientHello(_) => "encrypted ClientHello (ECH) failed".to_owned(),
        E::FailedToGetCurrentTime => {
            "the system clock could not be read to check the certificate's dates".to_owned()
        }
        E::FailedToGetRandomBytes => "the system gave no random bytes for TLS".to_owned(),
        E::BadMaxFragmentSize => "the TLS fragment size is misconfigured".to_owned(),
        E::InconsistentKeys(_) => "a certificate and its private key do not match".to_owned(),
        E::General(text) => format!("TLS error: {}", plain_text(text)),
        E::Other(other) => format!("TLS error: {}", plain_text(&other.to_string())),
        other => format!("TLS error: {}", plain_text(&other.to_string())),
    }
}

/// A TLS alert from the server: what it says, and for the common ones what to do.
fn describe_alert(alert: rustls::AlertDescription) -> String {
    use rustls::AlertDescription as A;
    let name = alert_name(alert);
    let meaning = match alert {
        A::HandshakeFailure => {
            "the server found no TLS parameters it accepts among those offered; servers that \
             offer only TLS 1.0 or 1.1 (forbidden by RFC 8996) or old ciphers answer this way"
        }
        A::ProtocolVersion => {
            "the server does not accept the TLS versions offered (TLS 1.2 and 1.3); it may offer \
             only TLS 1.0 or 1.1, which RFC 8996 forbids"
        }
        A::InsufficientSecurity => "the server requires stronger parameters than those offered",
        A::UnrecognisedName => {
            "the server does not serve the name sent in SNI; set --servername to a name it serves"
        }
        A::CertificateRequired => {
            "the server requires a client certificate, which smtptui does not send"
        }
        A::AccessDenied => "the server refused access",
        A::InternalError => "the server reported an internal error",
        A::DecodeError | A::IllegalParameter => {
            "the server could not accept the handshake smtptui sent"
        }
        A::UnexpectedMessage => "the server received a TLS message it did not expect",
        A::BadRecordMac | A::DecryptError | A::DecryptionFailed => {
            "the server could not decrypt or check what it received: damaged on the way, or the \
             keys disagree"
        }
        A::InappropriateFallback => {
            "the server detected a version downgrade (something on the path may be interfering)"
        }
        A::CloseNotify | A::UserCanceled => "the server closed the TLS session",
        A::MissingExtension | A::UnsupportedExtension => {
            "the server and smtptui disagree on a TLS extension"
        }
        A::NoApplicationProtocol => "the server supports none of the application protocols offered",
        _ => "the server ended the TLS session",
    };
    format!("the server sent the TLS alert {name}: {meaning}")
}

/// An alert's name as the TLS RFCs write it (`handshake_failure`).
fn alert_name(alert: rustls::AlertDescription) -> String {
    match alert {
        // The RFCs spell it the American way.
        rustls::AlertDescription::UnrecognisedName => "unrecognized_name".to_owned(),
        _ => match alert.as_str() {
            Some(name) => split_words(name).join("_"),
            None => format!("number {}", u8::from(alert)),
        },
    }
}

fn describe_incompatible(why: &rustls::PeerIncompatible) -> String {
    use rustls::PeerIncompatible as P;
    match why {
        P::ServerDoesNotSupportTls12Or13
        | P::Tls12NotOffered
        | P::Tls12NotOfferedOrEnabled
        | P::SupportedVersionsExtensionRequired => "the server does not offer TLS 1.2 or 1.3; \
             older versions (TLS 1.0, 1.1) are forbidden by RFC 8996 and not offered"
            .to_owned(),
        P::ServerTlsVersionIsDisabledByOurConfig => {
            "the server chose a TLS version smtptui does not enable".to_owned()
        }
        P::NoCipherSuitesInCommon => "the server and smtptui have no cipher suite in common \
             (smtptui offers only the TLS 1.2 and 1.3 suites considered safe)"
            .to_owned(),
        P::NoKxGroupsInCommon | P::NamedGroupsExtensionRequired | P::KeyShareExtensionRequired => {
            "the server and smtptui have no key exchange group in common".to_owned()
        }
        P::NoSignatureSchemesInCommon | P::SignatureAlgorithmsExtensionRequired => {
            "the server and smtptui have no signature scheme in common".to_owned()
        }
        P::ExtendedMasterSecretExtensionRequired => "the server does not support the extended \
             master secret (RFC 7627) that TLS 1.2 needs here"
            .to_owned(),
        P::NullCompressionRequired => {
            "the server insists on TLS compression, which is unsafe".to_owned()
        }
        other => format!(
            "the server's TLS lacks something smtptui requires ({})",
            words_of(&format!("{other:?}"))
        ),
    }
}

fn describe_misbehaviour(why: &rustls::PeerMisbehaved) -> String {
    match why {
        rustls::PeerMisbehaved::AttemptedDowngradeToTls12WhenTls13IsSupported => {
            "a downgrade from TLS 1.3 to 1.2 was detected: something on the path may be \
             interfering"
                .to_owned()
        }
        other => format!(
            "the server broke the TLS protocol ({})",
            words_of(&format!("{other:?}"))
        ),
    }
}

/// `A or B` for the message types a step expected.
fn either<T: std::fmt::Debug>(types: &[T]) -> String {
    let names: Vec<String> = types.iter().map(|t| words_of(&format!("{t:?}"))).collect();
    match names.as_slice() {
        [] => "another message".to_owned(),
        names => format!("a {} message", names.join(" or ")),
    }
}

/// The name of a library enum variant (`SelectedUnofferedCipherSuite`, `Unknown(0x41)`) as
/// lower-case words (`selected unoffered cipher suite`, `unknown 0x41`); a fallback for
/// variants with no text of their own.
fn words_of(debug: &str) -> String {
    escape_str(&split_words(debug).join(" "))
}

/// Splits an identifier into lower-case words at its humps (`UnknownPSKIdentity`: unknown,
/// psk, identity; `Tls12NotOffered`: tls12, not, offered) and at anything not alphanumeric.
fn split_words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    for part in name.split(|c: char| !c.is_ascii_alphanumeric()) {
        let chars: Vec<char> = part.chars().collect();
        let mut word = String::new();
        for (index, &c) in chars.iter().enumerate() {
            let previous = index.checked_sub(1).map(|i| chars[i]);
            let next = chars.get(index + 1);
            let starts_word = c.is_ascii_uppercase()
                && previous.is_some_and(|p| {
                    p.is_ascii_lowercase()
                        || p.is_ascii_digit()
                        || (p.is_ascii_uppercase() && next.is_some_and(char::is_ascii_lowercase))
                });
            if starts_word && !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            word.push(c.to_ascii_lowercase());
        }
        if !word.is_empty() {
            words.push(word);
        }
    }
    words
}

/// Free text from the TLS library, without links to its documentation, escaped.
fn plain_text(text: &str) -> String {
    let kept: Vec<&str> = text
        .split_whitespace()
        .filter(|word| {
            let word = word.trim_start_matches(['(', '<', '[']);
            !(word.starts_with("http://") || word.starts_with("https://"))
        })
        .collect();
    escape_str(kept.join(" ").trim_end_matches([':', ',', ';', ' ']))
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
    /// Extra trust anchors (from `--ca-file`), added to the roots of [`TrustSettings::roots`].
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Continue the handshake when verification fails (`--insecure`); the verdict is kept.
    pub continue_unverified: bool,
    /// The client certificate to present when the server asks (`--cert`, `--key`).
    pub client_identity: Option<ClientIdentity>,
    /// The base set of trust anchors (`--trust`).
    pub roots: TrustRoots,
}

/// The base set of trust anchors that verify a server's certificate (`--trust`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrustRoots {
    /// The Mozilla roots built into smtptui (webpki-roots): the same on every machine.
    #[default]
    WebPki,
    /// The operating system's trust store (rustls-native-certs), with `SSL_CERT_FILE` and
    /// `SSL_CERT_DIR` honoured as OpenSSL honours them: where a company CA is installed.
    System,
    /// Both.
    Both,
}

impl TrustRoots {
    /// In words, for transcripts and the status bar.
    pub fn label(self) -> &'static str {
        match self {
            Self::WebPki => "web PKI roots",
            Self::System => "the system trust store",
            Self::Both => "the system trust store and web PKI roots",
        }
    }
}

/// The system's trust anchors, read once per process (the store can be hundreds of files).
///
/// # Errors
/// [`TlsSetupError::SystemRoots`] when the store gave no certificate, with what went wrong.
pub fn system_roots() -> Result<&'static [CertificateDer<'static>], TlsSetupError> {
    static ROOTS: OnceLock<Result<Vec<CertificateDer<'static>>, String>> = OnceLock::new();
    let loaded = ROOTS.get_or_init(|| {
        let result = rustls_native_certs::load_native_certs();
        // A file or directory that cannot be read is an error even when others gave roots:
        // a mistyped SSL_CERT_FILE must not pass unnoticed for the store behind it.
        if result.certs.is_empty() || !result.errors.is_empty() {
            let mut why: Vec<String> = result.errors.iter().map(ToString::to_string).collect();
            if why.is_empty() {
                why.push("it holds no certificate".to_owned());
            }
            for variable in ["SSL_CERT_FILE", "SSL_CERT_DIR"] {
                if let Some(value) = std::env::var_os(variable) {
                    why.push(format!("{variable}={}", value.to_string_lossy()));
                }
            }
            Err(escape_str(&why.join("; ")))
        } else {
            Ok(result.certs)
        }
    });
    match loaded {
        Ok(certs) => Ok(certs),
        Err(why) => Err(TlsSetupError::SystemRoots(why.clone())),
    }
}

impl TrustSettings {
    /// The anchors in words: `web PKI roots and --ca-file`, `the system trust store`, ...
    pub fn anchors(&self) -> String {
        if self.extra_roots.is_empty() {
            self.roots.label().to_owned()
        } else {
            format!("{} and --ca-file", self.roots.label())
        }
    }

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
    client_config_with(trust, &TlsChoices::default())
}

/// [`client_config`] limited to the TLS versions and cipher suites of `choices`, writing the
/// session's secrets to its key log if it names one.
///
/// # Errors
/// As [`client_config`]; [`TlsSetupError::Choice`] when the choices leave no suite to offer,
/// [`TlsSetupError::KeyLog`] when the key log cannot be opened.
pub fn client_config_with(
    trust: &TrustSettings,
    choices: &TlsChoices,
) -> Result<(Arc<rustls::ClientConfig>, VerdictSlot), TlsSetupError> {
    let (versions, provider) = choices.resolve()?;
    let mut roots = RootCertStore::empty();
    if matches!(trust.roots, TrustRoots::WebPki | TrustRoots::Both) {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if matches!(trust.roots, TrustRoots::System | TrustRoots::Both) {
        // A system store holds odd certificates now and then; those rustls cannot use are
        // left out, as OpenSSL leaves them out.
        let (added, _ignored) = roots.add_parsable_certificates(system_roots()?.iter().cloned());
        if added == 0 {
            return Err(TlsSetupError::SystemRoots(
                "none of its certificates is usable as a trust anchor".to_owned(),
            ));
        }
    }
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
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)?
        .dangerous() // the custom verifier above never skips verification silently
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    if let Some(path) = &choices.key_log {
        config.key_log = Arc::new(KeyLogWriter::open(path)?);
    }
    if let Some(identity) = &trust.client_identity {
        config.client_auth_cert_resolver = identity.resolver();
    }
    Ok((Arc::new(config), verdict))
}

/// A TLS protocol version the client can be limited to (the versions rustls speaks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2 (RFC 5246).
    V1_2,
    /// TLS 1.3 (RFC 8446).
    V1_3,
}

impl TlsVersion {
    /// Parses `1.2` or `1.3` (also `tls1.2`, `TLSv1.3`).
    ///
    /// # Errors
    /// A message naming the two versions there are; older ones are refused with the reason.
    pub fn parse(text: &str) -> Result<Self, String> {
        let lower = text.trim().to_ascii_lowercase();
        let bare = lower
            .trim_start_matches("tlsv")
            .trim_start_matches("tls")
            .trim_start_matches('v');
        match bare {
            "1.2" | "12" => Ok(Self::V1_2),
            "1.3" | "13" => Ok(Self::V1_3),
            "1.0" | "1" | "1.1" | "10" | "11" => Err(format!(
                "{text:?}: TLS 1.0 and 1.1 are not spoken here (they are deprecated by RFC 8996 \
                 and the TLS library has neither); give 1.2 or 1.3"
            )),
            _ => Err(format!("{text:?} is not a TLS version; give 1.2 or 1.3")),
        }
    }

    /// `TLSv1.2` or `TLSv1.3`, as [`TlsInfo::version`] shows the negotiated one.
    pub const fn label(self) -> &'static str {
        match self {
            Self::V1_2 => "TLSv1.2",
            Self::V1_3 => "TLSv1.3",
        }
    }

    fn rustls(self) -> &'static rustls::SupportedProtocolVersion {
        match self {
            Self::V1_2 => &rustls::version::TLS12,
            Self::V1_3 => &rustls::version::TLS13,
        }
    }
}

/// What the user chose about TLS for testing a server: the versions and cipher suites the
/// client offers, and a key log. The default offers everything rustls speaks and logs nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsChoices {
    /// The lowest version offered (`--tls-min`); 1.2 when unset.
    pub min: Option<TlsVersion>,
    /// The highest version offered (`--tls-max`); 1.3 when unset.
    pub max: Option<TlsVersion>,
    /// Only these cipher suites are offered (`--cipher`), by the names
    /// [`cipher_suite_names`] lists; every suite when empty.
    pub suites: Vec<String>,
    /// Write the session's TLS secrets here, in the NSS key log format (`--keylog`).
    pub key_log: Option<std::path::PathBuf>,
}

/// The cipher suites that can be chosen with `--cipher`, by the names the transcript shows
/// for a negotiated one, TLS 1.3 first.
pub fn cipher_suite_names() -> Vec<String> {
    crypto_provider()
        .cipher_suites
        .iter()
        .map(|suite| format!("{:?}", suite.suite()))
        .collect()
}

impl TlsChoices {
    /// Whether anything differs from the defaults in what is offered (the key log aside).
    pub fn limits_offer(&self) -> bool {
        self.min.is_some() || self.max.is_some() || !self.suites.is_empty()
    }

    /// One line for the transcript: what the client offers, when the user limited it.
    pub fn describe(&self) -> Option<String> {
        if !self.limits_offer() {
            return None;
        }
        let (versions, provider) = self.resolve().ok()?;
        let versions: Vec<&str> = versions
            .iter()
            .map(|v| match v.version {
                rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2",
                _ => "TLSv1.3",
            })
            .collect();
        let suites: Vec<String> = provider
            .cipher_suites
            .iter()
            .filter(|s| versions.contains(&version_label(s.version())))
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        Some(format!(
            "TLS offered: {} only; cipher suites: {}",
            versions.join(" and "),
            suites.join(", ")
        ))
    }

    /// The versions and the crypto provider (with only the chosen suites) these choices give.
    ///
    /// # Errors
    /// [`TlsSetupError::Choice`] for an unknown suite name, a minimum above the maximum, or
    /// suites none of which belongs to a chosen version.
    pub fn resolve(
        &self,
    ) -> Result<
        (
            Vec<&'static rustls::SupportedProtocolVersion>,
            Arc<rustls::crypto::CryptoProvider>,
        ),
        TlsSetupError,
    > {
        let min = self.min.unwrap_or(TlsVersion::V1_2);
        let max = self.max.unwrap_or(TlsVersion::V1_3);
        if min > max {
            return Err(TlsSetupError::Choice(format!(
                "--tls-min {} is above --tls-max {}: no version is left to offer",
                min.label(),
                max.label()
            )));
        }
        let versions: Vec<TlsVersion> = [TlsVersion::V1_2, TlsVersion::V1_3]
            .into_iter()
            .filter(|v| (min..=max).contains(v))
            .collect();
        let mut provider = rustls::crypto::ring::default_provider();
        if !self.suites.is_empty() {
            let mut chosen = Vec::new();
            for name in &self.suites {
                let wanted = suite_key(name);
                let suite = provider
                    .cipher_suites
                    .iter()
                    .find(|s| suite_key(&format!("{:?}", s.suite())) == wanted)
                    .ok_or_else(|| {
                        TlsSetupError::Choice(format!(
                            "--cipher {name:?} is not a cipher suite spoken here; choose from {}",
                            cipher_suite_names().join(", ")
                        ))
                    })?;
                if !chosen.contains(suite) {
                    chosen.push(*suite);
                }
            }
            provider.cipher_suites = chosen;
        }
        let offered = |v: TlsVersion| {
            provider
                .cipher_suites
                .iter()
                .any(|s| version_label(s.version()) == v.label())
        };
        let versions: Vec<TlsVersion> = versions.into_iter().filter(|v| offered(*v)).collect();
        if versions.is_empty() {
            return Err(TlsSetupError::Choice(format!(
                "no chosen cipher suite belongs to {}: TLS 1.3 suites start with TLS13_, \
                 TLS 1.2 suites with TLS_ECDHE_",
                if min == max {
                    min.label().to_owned()
                } else {
                    format!("{} to {}", min.label(), max.label())
                }
            )));
        }
        Ok((
            versions.into_iter().map(TlsVersion::rustls).collect(),
            Arc::new(provider),
        ))
    }
}

fn version_label(version: &rustls::SupportedProtocolVersion) -> &'static str {
    match version.version {
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2",
        _ => "TLSv1.3",
    }
}

/// A suite name compared without case, and with the IANA spelling of the TLS 1.3 suites
/// (`TLS_AES_128_GCM_SHA256`) taken as the one shown (`TLS13_AES_128_GCM_SHA256`).
fn suite_key(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase().replace('-', "_");
    match upper.strip_prefix("TLS_") {
        Some(rest) if rest.starts_with("AES_") || rest.starts_with("CHACHA20_") => {
            format!("TLS13_{rest}")
        }
        _ => upper,
    }
}

/// Writes TLS secrets as they are derived, one line each in the NSS key log format
/// (`LABEL <client random> <secret>`, hex), which Wireshark and tshark read to decrypt a
/// capture. The file is created readable by its owner only and appended to, so the sessions of
/// one workshop can share it.
pub struct KeyLogWriter {
    path: std::path::PathBuf,
    file: Mutex<std::fs::File>,
}

impl KeyLogWriter {
    /// Opens (creating it with mode 600 where it is new) the key log at `path` for appending.
    ///
    /// # Errors
    /// [`TlsSetupError::KeyLog`] when the file cannot be opened for writing.
    pub fn open(path: &Path) -> Result<Self, TlsSetupError> {
        let mut options = std::fs::OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(path).map_err(|e| TlsSetupError::KeyLog {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }
}

impl std::fmt::Debug for KeyLogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only where the secrets go, never a secret.
        f.debug_struct("KeyLogWriter")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl rustls::KeyLog for KeyLogWriter {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        use std::io::Write as _;
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let line =
            zeroize::Zeroizing::new(format!("{label} {} {}\n", hex(client_random), hex(secret)));
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        // One write per line, so that sessions appending at once never interleave a line.
        // A failed write loses only the ability to decrypt this capture later.
        let _ = file.write_all(line.as_bytes());
    }
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
    /// The trust anchors the chain was verified against, in words
    /// ([`TrustSettings::anchors`]).
    pub anchors: String,
}

impl TlsInfo {
    /// Reads the negotiated parameters from a finished client connection.
    pub fn from_connection(
        conn: &rustls::ClientConnection,
        server_name: &str,
        verification: Verification,
        anchors: &str,
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
            anchors: anchors.to_owned(),
        }
    }

    /// One line for transcripts: version, suite, group and verdict.
    pub fn summary(&self) -> String {
        let verdict = match &self.verification {
            Verification::Verified if self.anchors.is_empty() => {
                format!("certificate verified for {}", self.server_name)
            }
            Verification::Verified => format!(
                "certificate verified for {} against {}",
                self.server_name, self.anchors
            ),
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
    /// The certificate itself, as presented, for checks that need its bytes (DANE TLSA
    /// matching in the domain audit).
    pub der: CertDer,
}

/// A certificate's DER bytes. Its `Debug` shows only the length: the bytes are not for
/// reading, and a chain's worth of them would drown any log.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CertDer(pub Vec<u8>);

impl std::fmt::Debug for CertDer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CertDer({} bytes)", self.0.len())
    }
}

impl CertSummary {
    /// The SHA-256 fingerprint of the certificate's DER bytes as `openssl x509 -fingerprint
    /// -sha256` prints it (upper-case hex pairs joined by colons); `None` without the bytes.
    pub fn sha256_fingerprint(&self) -> Option<String> {
        if self.der.0.is_empty() {
            return None;
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.der.0);
        Some(
            digest
                .as_ref()
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":"),
        )
    }

    /// The certificate as a PEM block (base64 at 64 columns, as OpenSSL writes it); `None`
    /// without the bytes.
    pub fn pem(&self) -> Option<String> {
        use base64::Engine as _;
        if self.der.0.is_empty() {
            return None;
        }
        let encoded = base64::engine::general_purpose::STANDARD.encode(&self.der.0);
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in encoded.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        Some(pem)
    }

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
                    der: CertDer(der.as_ref().to_vec()),
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
                der: CertDer(der.as_ref().to_vec()),
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
    fn certificate_names_are_named_plainly() {
        let error = rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("other.example").expect("valid name"),
            presented: vec![
                "DnsName(\"localhost\")".to_owned(),
                "DnsName(\"*.lab.test\")".to_owned(),
                "IpAddress(127.0.0.1)".to_owned(),
                "IpAddress(0::1)".to_owned(),
                "DirectoryName".to_owned(),
            ],
        });
        let problem = describe_certificate_error(&error, "other.example");
        assert_eq!(problem.kind, "not valid for name");
        assert!(
            problem.detail.contains(
                "it names localhost, *.lab.test, IP address 127.0.0.1, IP address ::1, a directory name;"
            ),
            "{}",
            problem.detail
        );
        assert_plain(&problem.detail);
        // The same words when the error reaches the user as a handshake failure.
        let text = describe_tls_error(&error);
        assert!(text.contains("\"other.example\""), "{text}");
        assert!(text.contains("IP address 127.0.0.1"), "{text}");
    }

    #[test]
    fn certificate_path_problems_are_in_words() {
        let other = |text: &str| {
            rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                std::sync::Arc::new(std::io::Error::other(text.to_owned())),
            )))
        };
        let problem = describe_certificate_error(&other("CaUsedAsEndEntity"), "mx.example");
        assert!(
            problem.detail.contains("CA certificate as its own"),
            "{}",
            problem.detail
        );
        let problem = describe_certificate_error(&other("SomeNewCheckFailed"), "mx.example");
        assert!(
            problem.detail.contains("some new check failed"),
            "{}",
            problem.detail
        );
        let problem = describe_certificate_error(
            &rustls::Error::InvalidCertificate(CertificateError::InvalidPurposeContext {
                required: rustls::ExtendedKeyPurpose::ServerAuth,
                presented: vec![
                    rustls::ExtendedKeyPurpose::ClientAuth,
                    rustls::ExtendedKeyPurpose::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 4]),
                ],
            }),
            "mx.example",
        );
        assert_eq!(problem.kind, "wrong purpose");
        assert!(
            problem
                .detail
                .contains("client authentication, OID 1.3.6.1.5.5.7.3.4"),
            "{}",
            problem.detail
        );
        let problem = describe_certificate_error(
            &rustls::Error::InvalidCertificate(CertificateError::NotValidYetContext {
                time: UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_000_000_000)),
                not_before: UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                    1_000_000_000 + 3 * 86_400,
                )),
            }),
            "mx.example",
        );
        assert!(problem.detail.contains("2001-09-12"), "{}", problem.detail);
        assert!(
            problem.detail.contains("3 days from now"),
            "{}",
            problem.detail
        );
        assert_plain(&problem.detail);
    }

    /// Every kind of rustls error gets a sentence: no debug forms, no documentation links.
    #[test]
    fn tls_errors_are_in_the_users_words() {
        use rustls::{
            AlertDescription as A, ContentType, Error as E, HandshakeType, InvalidMessage,
            PeerIncompatible as P, PeerMisbehaved as M,
        };
        let errors = vec![
            E::AlertReceived(A::HandshakeFailure),
            E::AlertReceived(A::ProtocolVersion),
            E::AlertReceived(A::UnrecognisedName),
            E::AlertReceived(A::UnknownPSKIdentity),
            E::AlertReceived(A::CertificateRequired),
            E::AlertReceived(A::InternalError),
            E::AlertReceived(A::Unknown(200)),
            E::PeerIncompatible(P::NoCipherSuitesInCommon),
            E::PeerIncompatible(P::ServerDoesNotSupportTls12Or13),
            E::PeerIncompatible(P::ExtendedMasterSecretExtensionRequired),
            E::PeerIncompatible(P::UncompressedEcPointsRequired),
            E::PeerIncompatible(P::ServerRejectedEncryptedClientHello(None)),
            E::PeerMisbehaved(M::AttemptedDowngradeToTls12WhenTls13IsSupported),
            E::PeerMisbehaved(M::SelectedUnofferedCipherSuite),
            E::PeerMisbehaved(M::IllegalHelloRetryRequestWithWrongSessionId),
            E::InvalidMessage(InvalidMessage::InvalidContentType),
            E::InvalidMessage(InvalidMessage::MissingData("ServerHelloPayload")),
            E::InvalidMessage(InvalidMessage::DuplicateExtension(43)),
            E::InappropriateMessage {
                expect_types: vec![ContentType::Handshake],
                got_type: ContentType::ApplicationData,
            },
            E::InappropriateHandshakeMessage {
                expect_types: vec![HandshakeType::ServerHello, HandshakeType::HelloRetryRequest],
                got_type: HandshakeType::Certificate,
            },
            E::InvalidCertificate(CertificateError::UnknownIssuer),
            E::InvalidCertificate(CertificateError::NotValidForName),
            E::InvalidCertificate(CertificateError::BadEncoding),
            E::InvalidCertificate(CertificateError::UnknownRevocationStatus),
            E::NoCertificatesPresented,
            E::UnsupportedNameType,
            E::DecryptError,
            E::EncryptError,
            E::PeerSentOversizedRecord,
            E::HandshakeNotComplete,
            E::NoApplicationProtocol,
            E::FailedToGetCurrentTime,
            E::FailedToGetRandomBytes,
            E::BadMaxFragmentSize,
            E::General("see https://docs.rs/rustls/latest/rustls/manual/ for details".to_owned()),
            E::Other(rustls::OtherError(std::sync::Arc::new(
                std::io::Error::other("provider failed (https://example.invalid/docs)"),
            ))),
        ];
        for error in &errors {
            let text = describe_tls_error(error);
            assert!(!text.is_empty(), "{error:?}");
            assert_plain(&text);
        }
        let say = |error: E| describe_tls_error(&error);
        let text = say(E::AlertReceived(A::HandshakeFailure));
        assert!(
            text.contains("handshake_failure") && text.contains("RFC 8996"),
            "{text}"
        );
        assert!(say(E::AlertReceived(A::UnrecognisedName)).contains("--servername"));
        assert!(say(E::AlertReceived(A::UnknownPSKIdentity)).contains("unknown_psk_identity"));
        assert!(say(E::AlertReceived(A::Unknown(200))).contains("number 200"));
        assert!(say(E::PeerIncompatible(P::NoCipherSuitesInCommon)).contains("cipher suite"));
        assert!(
            say(E::PeerMisbehaved(M::SelectedUnofferedCipherSuite))
                .contains("selected unoffered cipher suite")
        );
        let text = say(E::InvalidMessage(InvalidMessage::InvalidContentType));
        assert!(
            text.contains("not valid TLS (invalid content type)"),
            "{text}"
        );
        let text = say(E::General("see https://docs.rs/x for details".to_owned()));
        assert_eq!(text, "TLS error: see for details");
    }

    #[test]
    fn identifiers_split_into_words() {
        assert_eq!(
            split_words("UnknownPSKIdentity"),
            ["unknown", "psk", "identity"]
        );
        assert_eq!(split_words("Tls12NotOffered"), ["tls12", "not", "offered"]);
        assert_eq!(split_words("UnknownCA"), ["unknown", "ca"]);
        assert_eq!(split_words("MissingData(\"x\")"), ["missing", "data", "x"]);
        assert_eq!(split_words(""), Vec::<String>::new());
    }

    /// No debug form (`Name(`, `{`, a CamelCase identifier) and no link.
    #[track_caller]
    fn assert_plain(text: &str) {
        assert!(!text.contains("http"), "{text}");
        assert!(!text.contains('{') && !text.contains("(\""), "{text}");
        for word in text.split(|c: char| !c.is_ascii_alphanumeric()) {
            let humped = word
                .as_bytes()
                .windows(2)
                .any(|pair| pair[0].is_ascii_lowercase() && pair[1].is_ascii_uppercase());
            assert!(!humped || word == "ClientHello", "{word:?} in {text}");
        }
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
