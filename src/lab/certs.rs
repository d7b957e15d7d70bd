//! The lab's throw-away PKI: a fresh CA and a server certificate signed by it at every start.
//!
//! A separate CA (rather than one self-signed server certificate) is what students meet in
//! real life: they trust the CA with `--ca-file`, and the server presents a leaf whose names
//! must match. The private keys live only in memory; only the CA certificate is written out.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The names the server certificate is valid for. `localhost` is what the demo verifies;
/// `lab.test` matches the banner; the addresses let students connect by IP.
pub const SERVER_NAMES: [&str; 4] = ["localhost", "lab.test", "127.0.0.1", "::1"];

/// Why the certificates could not be made or saved.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen refused (should not happen with the fixed parameters used here).
    #[error("cannot generate the lab certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the generated certificate or key.
    #[error("cannot use the lab certificate: {0}")]
    Rustls(#[from] rustls::Error),
    /// The CA file could not be written.
    #[error("cannot write the lab CA certificate to {path}: {source}")]
    Write {
        /// Where.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The lab CA and the server configuration built on its leaf.
pub struct LabPki {
    /// The CA certificate, PEM (public; hand it to clients).
    pub ca_pem: String,
    /// The CA certificate, DER (for in-process clients' trust settings).
    pub ca_der: CertificateDer<'static>,
    /// A rustls server configuration presenting the leaf.
    pub server_config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for LabPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabPki").finish_non_exhaustive()
    }
}

impl LabPki {
    /// Generates a CA valid for 30 days and a leaf valid for 7, both starting an hour ago so a
    /// client clock slightly behind does not reject them.
    ///
    /// # Errors
    /// [`CertError`] if generation or the rustls configuration fails.
    pub fn generate() -> Result<Self, CertError> {
        let now = time::OffsetDateTime::now_utc();
        let start = now - time::Duration::hours(1);

        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.distinguished_name = DistinguishedName::new();
        // A name unique to this start, so CAs of two lab runs are never confused.
        ca.distinguished_name.push(
            DnType::CommonName,
            format!("smtptui lab CA {}", now.unix_timestamp()),
        );
        ca.distinguished_name
            .push(DnType::OrganizationName, "smtptui lab (practice only)");
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        ca.not_before = start;
        ca.not_after = now + time::Duration::days(30);
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca, ca_key);

        let leaf_key = KeyPair::generate()?;
        let mut leaf = CertificateParams::new(SERVER_NAMES.map(str::to_owned).to_vec())?;
        leaf.distinguished_name = DistinguishedName::new();
        leaf.distinguished_name.push(DnType::CommonName, "lab.test");
        leaf.is_ca = IsCa::ExplicitNoCa;
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.use_authority_key_identifier_extension = true;
        leaf.not_before = start;
        leaf.not_after = now + time::Duration::days(7);
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;

        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let server_config =
            rustls::ServerConfig::builder_with_provider(crate::tls::crypto_provider())
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_single_cert(vec![leaf_cert.der().clone()], key)?;
        Ok(Self {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().clone(),
            server_config: Arc::new(server_config),
        })
    }

    /// Writes the CA certificate as `ca.pem` into a new directory: `dir` when given (created
    /// if missing), otherwise a fresh `smtptui-lab-*` directory under the system temp dir.
    /// A fresh directory is made with `create_dir`, which fails rather than reuse one someone
    /// else prepared, so no other local user can swap the CA students are told to trust.
    ///
    /// # Errors
    /// [`CertError::Write`] when the directory or file cannot be created.
    pub fn write_ca(&self, dir: Option<&Path>) -> Result<PathBuf, CertError> {
        let fail = |path: &Path, source| CertError::Write {
            path: path.display().to_string(),
            source,
        };
        let dir = match dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
                dir.to_path_buf()
            }
            None => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos());
                let dir = std::env::temp_dir()
                    .join(format!("smtptui-lab-{}-{nanos:x}", std::process::id()));
                std::fs::create_dir(&dir).map_err(|e| fail(&dir, e))?;
                dir
            }
        };
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.ca_pem).map_err(|e| fail(&path, e))?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_a_ca_and_a_leaf_it_signed() {
        let pki = LabPki::generate().expect("pki");
        assert!(pki.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = pki.write_ca(Some(dir.path())).expect("write");
        let roots = crate::tls::TrustSettings::load_ca_file(&path).expect("load");
        assert_eq!(roots, vec![pki.ca_der.clone()]);
    }
}
