//! The grade profile's certificates: one server configuration per certificate trial.
//!
//! - good: the MX key, signed by the CA the sender is meant to trust, for the MX name;
//! - untrusted: another key, self-signed, for the MX name;
//! - wrong name: another key, signed by the trusted CA, for a name that is not the MX's;
//! - DANE only: the MX key again, self-signed: no CA vouches for it, its TLSA record
//!   (`3 1 1`, the SHA-256 of the key) does.
//!
//! The MX key is what a domain publishes in TLSA, so it must outlive a restart: it comes from
//! a file (`--grade-key`), or is kept in the state directory, or is fresh for one run.

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use zeroize::Zeroizing;

use super::Trial;
use crate::lab::certs::{CertError, write_private};

/// The MX key's file in a state directory (mode 600).
pub const MX_KEY_FILE: &str = "grade-mx.key";
/// The name on the wrong-name certificate: under `.invalid`, so it can never be anyone's.
pub const WRONG_NAME: &str = "not-the-mx.invalid";

/// The server configurations of the trials, and what to publish for the MX.
pub struct GradeTls {
    good: Arc<rustls::ServerConfig>,
    untrusted: Arc<rustls::ServerConfig>,
    wrong_name: Arc<rustls::ServerConfig>,
    dane_only: Arc<rustls::ServerConfig>,
    /// The MX name the certificates (but the wrong-name one) are for.
    pub mx_name: String,
    /// The TLSA record data for the MX key: `3 1 1 HEX` (DANE-EE, the key, SHA-256).
    pub tlsa: String,
}

impl std::fmt::Debug for GradeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GradeTls")
            .field("mx_name", &self.mx_name)
            .field("tlsa", &self.tlsa)
            .finish_non_exhaustive()
    }
}

impl GradeTls {
    /// The four certificates: `issuer` signs the good and wrong-name ones, `mx_key` is the
    /// key of the good and DANE-only ones; `mx_name` first among the names, then
    /// `extra_names`.
    ///
    /// # Errors
    /// [`CertError`] if a name is not usable or rustls refuses a certificate.
    pub fn build(
        issuer: &Issuer<'_, KeyPair>,
        mx_key: &KeyPair,
        mx_name: &str,
        extra_names: &[String],
    ) -> Result<Self, CertError> {
        let mut names = vec![mx_name.to_owned()];
        for name in extra_names {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        let other_key = KeyPair::generate()?;
        let wrong_key = KeyPair::generate()?;
        Ok(Self {
            good: config(&names, mx_key, Some(issuer))?,
            untrusted: config(&names, &other_key, None)?,
            wrong_name: config(&[WRONG_NAME.to_owned()], &wrong_key, Some(issuer))?,
            dane_only: config(&names, mx_key, None)?,
            mx_name: mx_name.to_owned(),
            tlsa: format!("3 1 1 {}", spki_sha256(mx_key)),
        })
    }

    /// The configuration a trial presents ([`Trial::Good`]'s where the trial is not about
    /// the certificate).
    pub fn config(&self, trial: Trial) -> Arc<rustls::ServerConfig> {
        match trial {
            Trial::Untrusted => self.untrusted.clone(),
            Trial::WrongName => self.wrong_name.clone(),
            Trial::DaneOnly => self.dane_only.clone(),
            Trial::Good | Trial::Stripped | Trial::Refused | Trial::TempFail => self.good.clone(),
        }
    }
}

/// The hex SHA-256 of a key's SubjectPublicKeyInfo: a TLSA `3 1 1` record's data.
pub fn spki_sha256(key: &KeyPair) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, &key.subject_public_key_info());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A CA given as files: its certificate and its key (PEM).
///
/// # Errors
/// [`CertError::Read`] naming the file that cannot be read, [`CertError::ForeignCa`] when the
/// files are not a certificate and its key.
pub fn load_issuer(cert: &Path, key: &Path) -> Result<Issuer<'static, KeyPair>, CertError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| CertError::Read {
            path: path.display().to_string(),
            source,
        })
    };
    let foreign = |path: &Path, reason: &str| CertError::ForeignCa {
        path: path.display().to_string(),
        reason: reason.to_owned(),
    };
    let cert_pem = read(cert)?;
    let key_pem = Zeroizing::new(read(key)?);
    let key_pair = KeyPair::from_pem(&key_pem)
        .map_err(|_| foreign(key, "it is not a PEM private key this lab can sign with"))?;
    let der: CertificateDer<'static> =
        rustls::pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes())
            .map_err(|_| foreign(cert, "it is not a PEM certificate"))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|_| foreign(cert, "it is not a certificate that can be read"))?;
    if key_pair.subject_public_key_info() != parsed.public_key().raw {
        return Err(foreign(
            key,
            "it is not the key of the CA certificate given with it",
        ));
    }
    Issuer::from_ca_cert_der(&der, key_pair)
        .map_err(|_| foreign(cert, "its name or extensions cannot be read"))
}

/// The MX key: from `file` if given, else kept in `state_dir` (made there the first time),
/// else fresh for this run.
///
/// # Errors
/// [`CertError`] naming the file that cannot be read, written or used as a key.
pub fn mx_key(file: Option<&Path>, state_dir: Option<&Path>) -> Result<KeyPair, CertError> {
    let read = |path: &Path| -> Result<KeyPair, CertError> {
        let pem =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|source| CertError::Read {
                    path: path.display().to_string(),
                    source,
                })?,
            );
        KeyPair::from_pem(&pem).map_err(|_| CertError::ForeignCa {
            path: path.display().to_string(),
            reason: "it is not a PEM private key (PKCS#8, e.g. from openssl genpkey)".to_owned(),
        })
    };
    if let Some(file) = file {
        return read(file);
    }
    let Some(dir) = state_dir else {
        return Ok(KeyPair::generate()?);
    };
    let path = dir.join(MX_KEY_FILE);
    if path.exists() {
        return read(&path);
    }
    let key = KeyPair::generate()?;
    let pem = Zeroizing::new(key.serialize_pem());
    write_private(&path, pem.as_bytes()).map_err(|source| CertError::Write {
        path: path.display().to_string(),
        source,
    })?;
    Ok(key)
}

/// A server configuration presenting a leaf for `names` with `key`, signed by `issuer` or
/// self-signed.
fn config(
    names: &[String],
    key: &KeyPair,
    issuer: Option<&Issuer<'_, KeyPair>>,
) -> Result<Arc<rustls::ServerConfig>, CertError> {
    let now = time::OffsetDateTime::now_utc();
    let mut params = CertificateParams::new(names.to_vec())?;
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().map_or("mx", String::as_str),
    );
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = issuer.is_some();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(7);
    let cert = match issuer {
        Some(issuer) => params.signed_by(key, issuer)?,
        None => params.self_signed(key)?,
    };
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(crate::tls::crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], private)?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mx_key_is_kept_and_its_tlsa_is_the_spki_digest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = mx_key(None, Some(dir.path())).expect("made");
        let again = mx_key(None, Some(dir.path())).expect("kept");
        assert_eq!(spki_sha256(&first), spki_sha256(&again));
        assert_eq!(spki_sha256(&first).len(), 64);
        let ca = crate::lab::certs::LabCa::generate(1).expect("ca");
        let tls = GradeTls::build(ca.issuer(), &first, "mx.grade.test", &[]).expect("certs");
        assert_eq!(tls.tlsa, format!("3 1 1 {}", spki_sha256(&first)));
        // A file that is no key is refused with its name.
        let bad = dir.path().join("bad.key");
        std::fs::write(&bad, "nothing").expect("write");
        let error = mx_key(Some(&bad), None).expect_err("no key").to_string();
        assert!(error.contains("bad.key"), "{error}");
    }
}
