//! A TLS client certificate (`--cert PEM --key PEM`): loaded and checked once, presented in
//! the handshake when the server asks for one, and described in the transcript by its subject
//! and fingerprint, the identity SASL EXTERNAL then uses.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::{TlsSetupError, crypto_provider};
use crate::proto::escape::escape_str;

/// A client certificate chain and its private key, ready for the handshake.
///
/// `Debug` shows the subject and fingerprint only; the key never leaves rustls's signer.
#[derive(Clone)]
pub struct ClientIdentity {
    certified: Arc<CertifiedKey>,
    /// The leaf certificate's subject, escaped for display.
    pub subject: String,
    /// The leaf certificate's issuer, escaped for display.
    pub issuer: String,
    /// SHA-256 of the leaf certificate, upper-case hex pairs joined by `:` (the form Postfix
    /// logs and matches in `relay_clientcerts`).
    pub fingerprint: String,
    /// Set when the key file can be read by every user of this machine.
    pub key_warning: Option<String>,
    /// Set by the handshake when the server asked for a client certificate.
    asked: Arc<AtomicBool>,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("subject", &self.subject)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl ClientIdentity {
    /// Loads the certificate chain (leaf first) from `cert` and the private key (PKCS#8,
    /// PKCS#1 or SEC1 PEM) from `key`, and checks that they belong together.
    ///
    /// # Errors
    /// [`TlsSetupError::ClientCertificate`] naming the file and what is wrong with it.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsSetupError> {
        let fail = |path: &Path, reason: String| TlsSetupError::ClientCertificate {
            path: path.display().to_string(),
            reason,
        };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .map_err(|e| fail(cert, e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| fail(cert, e.to_string()))?;
        let Some(leaf) = chain.first() else {
            return Err(fail(
                cert,
                "no PEM CERTIFICATE block found (--cert takes the certificate, leaf first)"
                    .to_owned(),
            ));
        };
        let key_warning = world_readable(key);
        let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
            fail(
                key,
                format!("{e} (--key takes a PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)"),
            )
        })?;
        let (subject, issuer) = match x509_parser::parse_x509_certificate(leaf.as_ref()) {
            Ok((_, parsed)) => (
                escape_str(&parsed.subject().to_string()),
                escape_str(&parsed.issuer().to_string()),
            ),
            Err(e) => return Err(fail(cert, format!("the certificate cannot be parsed: {e}"))),
        };
        let fingerprint = fingerprint(leaf.as_ref());
        let certified =
            CertifiedKey::from_der(chain, private, &crypto_provider()).map_err(|e| {
                fail(
                    key,
                    format!("this key cannot sign for the certificate in --cert: {e}"),
                )
            })?;
        Ok(Self {
            certified: Arc::new(certified),
            subject,
            issuer,
            fingerprint,
            key_warning,
            asked: Arc::default(),
        })
    }

    /// One line for the transcript: what will be presented.
    pub fn describe(&self) -> String {
        format!(
            "client certificate: subject {}, issuer {}, SHA-256 fingerprint {}; presented when \
             the server asks for one in the TLS handshake",
            self.subject, self.issuer, self.fingerprint
        )
    }

    /// Whether the server asked for a client certificate since [`Self::forget_asked`].
    pub fn was_asked(&self) -> bool {
        self.asked.load(Ordering::SeqCst)
    }

    /// Forgets an earlier handshake's request (called as a handshake starts).
    pub fn forget_asked(&self) {
        self.asked.store(false, Ordering::SeqCst);
    }

    /// The resolver rustls calls when the server sends a CertificateRequest.
    pub(super) fn resolver(&self) -> Arc<dyn ResolvesClientCert> {
        Arc::new(Presenter {
            certified: self.certified.clone(),
            asked: self.asked.clone(),
        })
    }
}

/// Hands rustls the certificate and records that the server asked for it.
#[derive(Debug)]
struct Presenter {
    certified: Arc<CertifiedKey>,
    asked: Arc<AtomicBool>,
}

impl ResolvesClientCert for Presenter {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.asked.store(true, Ordering::SeqCst);
        // Present it only if the key can sign with a scheme the server accepts; otherwise
        // rustls sends an empty Certificate message and the server decides.
        self.certified
            .key
            .choose_scheme(sigschemes)
            .map(|_| self.certified.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// SHA-256 of `der` as `AB:CD:...`.
pub fn fingerprint(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A warning when every user of this machine may read the key file.
#[cfg(unix)]
fn world_readable(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    let mode = std::fs::metadata(path).ok()?.mode();
    (mode & 0o004 != 0).then(|| {
        format!(
            "the private key {} is readable by every user of this machine (mode {:04o}): anyone \
             who copies it can present this certificate as you; chmod 600 {}",
            escape_str(&path.display().to_string()),
            mode & 0o7777,
            escape_str(&path.display().to_string())
        )
    })
}

#[cfg(not(unix))]
fn world_readable(_path: &Path) -> Option<String> {
    None
}
