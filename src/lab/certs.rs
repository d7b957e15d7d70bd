//! The lab's PKI: a CA, and a server certificate signed by it at every start.
//!
//! A separate CA (rather than one self-signed server certificate) is what students meet in
//! real life: they trust the CA with `--ca-file`, and the server presents a leaf whose names
//! must match. Without a state directory the CA is fresh at every start and its key lives
//! only in memory; with one ([`StateDir`]) the CA and its key are kept there, so a restarted
//! lab is still trusted by students who saved the CA, and no other lab may take the directory
//! over (one in use, or a CA without its key, is refused with the reason).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use zeroize::Zeroizing;

/// The names the server certificate is always valid for. `localhost` is what the demo
/// verifies; `lab.test` matches the banner; the addresses let students connect by IP.
pub const SERVER_NAMES: [&str; 4] = ["localhost", "lab.test", "127.0.0.1", "::1"];

/// Every lab CA's common name starts with this (then the time it was made).
const CA_NAME: &str = "smtptui lab CA";
/// The organisation in every lab CA's name.
const CA_ORGANISATION: &str = "smtptui lab (practice only)";
/// The CA certificate in a state directory (and in the temp directory of a lab without one).
pub const CA_FILE: &str = "ca.pem";
/// The CA's private key in a state directory (mode 600).
pub const CA_KEY_FILE: &str = "ca.key";
/// The process id of the lab using a state directory.
pub const LOCK_FILE: &str = "lab.pid";

/// Why the certificates could not be made, loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen refused (should not happen with the fixed parameters used here).
    #[error("cannot generate the lab certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the generated certificate or key.
    #[error("cannot use the lab certificate: {0}")]
    Rustls(#[from] rustls::Error),
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// Where.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// Where.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Another lab is running with this state directory.
    #[error(
        "the state directory {dir} is in use by another lab (process {pid}); give each lab its own --state-dir (if no lab runs there, remove {dir}/{LOCK_FILE})"
    )]
    InUse {
        /// The directory.
        dir: String,
        /// The process named in its lock file.
        pid: String,
    },
    /// The directory holds a CA this lab cannot serve with.
    #[error(
        "{path} belongs to another lab or another program: {reason}; give this lab another --state-dir, or remove the file (students must then trust the new CA)"
    )]
    ForeignCa {
        /// The CA file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A lab CA: its certificate, and the key that signs the server certificates.
pub struct LabCa {
    /// The CA certificate, PEM (public; hand it to clients).
    pub pem: String,
    /// The CA certificate, DER.
    pub der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for LabCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabCa").finish_non_exhaustive()
    }
}

/// The parameters every lab CA is made from; rebuilt from the common name when a saved CA is
/// loaded, so the server certificates it signs name it exactly as its own certificate does.
fn ca_params(common_name: &str) -> Result<CertificateParams, CertError> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, common_name.to_owned());
    ca.distinguished_name
        .push(DnType::OrganizationName, CA_ORGANISATION);
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(ca)
}

impl LabCa {
    /// A new CA valid for `days` from an hour ago (a client clock slightly behind must not
    /// reject it), named with the time so CAs of two labs are never confused.
    ///
    /// # Errors
    /// [`CertError::Generate`] if rcgen refuses.
    pub fn generate(days: i64) -> Result<Self, CertError> {
        let now = time::OffsetDateTime::now_utc();
        let key = KeyPair::generate()?;
        let mut params = ca_params(&format!("{CA_NAME} {}", now.unix_timestamp()))?;
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(days);
        let cert = params.self_signed(&key)?;
        Ok(Self {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// A saved CA: its certificate and key, checked to belong together and to be a lab CA
    /// that is still valid.
    fn load(cert_pem: &str, key_pem: &str, path: &Path) -> Result<Self, CertError> {
        let foreign = |reason: &str| CertError::ForeignCa {
            path: path.display().to_string(),
            reason: reason.to_owned(),
        };
        let der: CertificateDer<'static> =
            rustls::pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes())
                .map_err(|_| foreign("it is not a PEM certificate"))?;
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|_| foreign("it is not a certificate that can be read"))?;
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .filter(|cn| cn.starts_with(CA_NAME))
            .ok_or_else(|| foreign("it is not a smtptui lab CA"))?
            .to_owned();
        if !cert.validity().is_valid() {
            return Err(foreign("it has expired"));
        }
        let key = KeyPair::from_pem(key_pem).map_err(|_| foreign("its key file cannot be read"))?;
        if key.subject_public_key_info() != cert.public_key().raw {
            return Err(foreign(&format!("{CA_KEY_FILE} is not its key")));
        }
        Ok(Self {
            pem: cert_pem.to_owned(),
            der,
            issuer: Issuer::new(ca_params(&common_name)?, key),
        })
    }

    /// What signs the server certificates (the grade profile signs its own with it).
    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }
}

/// The lab CA and the server configuration built on its leaf.
pub struct LabPki {
    /// The CA certificate, PEM (public; hand it to clients).
    pub ca_pem: String,
    /// The CA certificate, DER (for in-process clients' trust settings).
    pub ca_der: CertificateDer<'static>,
    /// A rustls server configuration presenting the leaf.
    pub server_config: Arc<rustls::ServerConfig>,
    /// The same, asking every client for a certificate signed by the lab CA (a client
    /// without one still gets in): what a listener that takes SASL EXTERNAL does.
    pub client_cert_config: Arc<rustls::ServerConfig>,
    /// A client certificate for the workshop account (its common name), PEM.
    pub client_cert_pem: String,
    /// Its private key, PEM.
    pub client_key_pem: Zeroizing<String>,
}

/// The workshop client certificate's file next to the CA (for `--cert`).
pub const CLIENT_CERT_FILE: &str = "client.pem";
/// Its key (mode 600, for `--key`).
pub const CLIENT_KEY_FILE: &str = "client.key";

impl std::fmt::Debug for LabPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabPki").finish_non_exhaustive()
    }
}

impl LabPki {
    /// A fresh CA valid for 30 days and a leaf for [`SERVER_NAMES`].
    ///
    /// # Errors
    /// [`CertError`] if generation or the rustls configuration fails.
    pub fn generate() -> Result<Self, CertError> {
        Self::issue(&LabCa::generate(30)?, &[])
    }

    /// A server certificate signed by `ca`, valid for 7 days from an hour ago, for
    /// [`SERVER_NAMES`] and `extra_names` (host names or IP addresses students connect by).
    ///
    /// # Errors
    /// [`CertError`] if a name is not usable or the rustls configuration fails.
    pub fn issue(ca: &LabCa, extra_names: &[String]) -> Result<Self, CertError> {
        let now = time::OffsetDateTime::now_utc();
        let leaf_key = KeyPair::generate()?;
        let mut names: Vec<String> = SERVER_NAMES.map(str::to_owned).to_vec();
        for name in extra_names {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        let mut leaf = CertificateParams::new(names)?;
        leaf.distinguished_name = DistinguishedName::new();
        leaf.distinguished_name.push(DnType::CommonName, "lab.test");
        leaf.is_ca = IsCa::ExplicitNoCa;
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.use_authority_key_identifier_extension = true;
        leaf.not_before = now - time::Duration::hours(1);
        leaf.not_after = now + time::Duration::days(7);
        let leaf_cert = leaf.signed_by(&leaf_key, &ca.issuer)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let server_config =
            rustls::ServerConfig::builder_with_provider(crate::tls::crypto_provider())
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_single_cert(vec![leaf_cert.der().clone()], key.clone_key())?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der.clone())?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            crate::tls::crypto_provider(),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        let client_cert_config =
            rustls::ServerConfig::builder_with_provider(crate::tls::crypto_provider())
                .with_safe_default_protocol_versions()?
                .with_client_cert_verifier(verifier)
                .with_single_cert(vec![leaf_cert.der().clone()], key)?;
        let client_key = KeyPair::generate()?;
        let mut client = CertificateParams::new(Vec::<String>::new())?;
        client.distinguished_name = DistinguishedName::new();
        client
            .distinguished_name
            .push(DnType::CommonName, super::accounts::DEFAULT_USER);
        client.is_ca = IsCa::ExplicitNoCa;
        client.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        client.use_authority_key_identifier_extension = true;
        client.not_before = now - time::Duration::hours(1);
        client.not_after = now + time::Duration::days(7);
        let client_cert = client.signed_by(&client_key, &ca.issuer)?;
        Ok(Self {
            ca_pem: ca.pem.clone(),
            ca_der: ca.der.clone(),
            server_config: Arc::new(server_config),
            client_cert_config: Arc::new(client_cert_config),
            client_cert_pem: client_cert.pem(),
            client_key_pem: Zeroizing::new(client_key.serialize_pem()),
        })
    }

    /// Writes the workshop client certificate and its key (mode 600) into `dir`, next to the
    /// CA, and returns their paths.
    ///
    /// # Errors
    /// [`CertError::Write`] when a file cannot be written.
    pub fn write_client_certificate(&self, dir: &Path) -> Result<(PathBuf, PathBuf), CertError> {
        let cert = dir.join(CLIENT_CERT_FILE);
        let key = dir.join(CLIENT_KEY_FILE);
        let fail = |path: &Path| {
            let path = path.display().to_string();
            move |source| CertError::Write { path, source }
        };
        std::fs::write(&cert, &self.client_cert_pem).map_err(fail(&cert))?;
        let _ = std::fs::remove_file(&key);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&key).map_err(fail(&key))?;
        std::io::Write::write_all(&mut file, self.client_key_pem.as_bytes()).map_err(fail(&key))?;
        Ok((cert, key))
    }

    /// Writes the CA certificate as `ca.pem` into a fresh `smtptui-lab-*` directory under the
    /// system temp dir, made with `create_dir`, which fails rather than reuse one someone else
    /// prepared, so no other local user can swap the CA students are told to trust.
    ///
    /// # Errors
    /// [`CertError::Write`] when the directory or file cannot be created.
    pub fn write_ca_to_temp(&self) -> Result<PathBuf, CertError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir =
            std::env::temp_dir().join(format!("smtptui-lab-{}-{nanos:x}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|source| CertError::Write {
            path: dir.display().to_string(),
            source,
        })?;
        let path = dir.join(CA_FILE);
        std::fs::write(&path, &self.ca_pem).map_err(|source| CertError::Write {
            path: path.display().to_string(),
            source,
        })?;
        Ok(path)
    }
}

/// A state directory held by a running lab: the CA in it is this lab's until it stops.
#[derive(Debug)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// Takes `dir` for this lab (creating it if needed) and returns the CA kept there, made
    /// and saved (the key with mode 600) when there is none yet.
    ///
    /// # Errors
    /// [`CertError::InUse`] when another running lab holds it, [`CertError::ForeignCa`] when
    /// its CA is not one this lab can serve with (no key, another key, not a lab CA, expired),
    /// and read or write errors naming the file.
    pub fn open(dir: &Path) -> Result<(StateDir, LabCa), CertError> {
        let write_error = |path: &Path, source| CertError::Write {
            path: path.display().to_string(),
            source,
        };
        let read_error = |path: &Path, source| CertError::Read {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| write_error(dir, e))?;
        let lock = dir.join(LOCK_FILE);
        match std::fs::read_to_string(&lock) {
            Ok(pid) if lab_is_running(pid.trim()) => {
                return Err(CertError::InUse {
                    dir: dir.display().to_string(),
                    pid: pid.trim().to_owned(),
                });
            }
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(read_error(&lock, error)),
        }
        std::fs::write(&lock, format!("{}\n", std::process::id()))
            .map_err(|e| write_error(&lock, e))?;
        let state = StateDir {
            dir: dir.to_path_buf(),
        };
        let cert_path = dir.join(CA_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let cert = read_optional(&cert_path).map_err(|e| read_error(&cert_path, e))?;
        let key = read_optional(&key_path).map_err(|e| read_error(&key_path, e))?;
        let ca = match (cert, key) {
            (Some(cert), Some(key)) => LabCa::load(&cert, &key, &cert_path)?,
            (Some(_), None) => {
                return Err(CertError::ForeignCa {
                    path: cert_path.display().to_string(),
                    reason: format!("its key ({CA_KEY_FILE}) is not there"),
                });
            }
            (None, Some(_)) => {
                return Err(CertError::ForeignCa {
                    path: key_path.display().to_string(),
                    reason: format!("a key without its certificate ({CA_FILE})"),
                });
            }
            (None, None) => {
                // A kept CA is trusted for longer than a throw-away one.
                let ca = LabCa::generate(365)?;
                let key_pem = Zeroizing::new(ca.issuer.key().serialize_pem());
                write_private(&key_path, key_pem.as_bytes())
                    .map_err(|e| write_error(&key_path, e))?;
                std::fs::write(&cert_path, &ca.pem).map_err(|e| write_error(&cert_path, e))?;
                ca
            }
        };
        Ok((state, ca))
    }

    /// The CA certificate's path.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join(CA_FILE)
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let lock = self.dir.join(LOCK_FILE);
        // Only our own lock: a lab that took over a stale one keeps its own.
        if std::fs::read_to_string(&lock)
            .is_ok_and(|pid| pid.trim() == std::process::id().to_string())
        {
            let _ = std::fs::remove_file(lock);
        }
    }
}

/// Whether the process named in a lock file is running. This process counts (two labs in one
/// process must not share a directory); elsewhere `/proc` tells, and where there is no
/// `/proc` a lock file is taken at its word.
fn lab_is_running(pid: &str) -> bool {
    if pid == std::process::id().to_string() {
        return true;
    }
    let proc = Path::new("/proc");
    if !proc.is_dir() {
        return !pid.is_empty();
    }
    !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) && proc.join(pid).exists()
}

fn read_optional(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Writes a file only its owner can read, replacing it whole.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_a_ca_and_a_leaf_it_signed() {
        let pki = LabPki::generate().expect("pki");
        assert!(pki.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let path = pki.write_ca_to_temp().expect("write");
        let roots = crate::tls::TrustSettings::load_ca_file(&path).expect("load");
        assert_eq!(roots, vec![pki.ca_der.clone()]);
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }

    #[test]
    fn a_state_directory_keeps_its_ca_and_refuses_other_labs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let (held, ca) = StateDir::open(&state).expect("first start");
        assert!(matches!(
            StateDir::open(&state),
            Err(CertError::InUse { .. })
        ));
        drop(held);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(state.join(CA_KEY_FILE))
                .expect("key")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (held, again) = StateDir::open(&state).expect("restart");
        assert_eq!(again.pem, ca.pem, "the same CA after a restart");
        // A leaf from the reloaded CA verifies against the saved CA certificate.
        let pki = LabPki::issue(&again, &["192.0.2.7".to_owned()]).expect("leaf");
        assert_eq!(pki.ca_der, ca.der);
        drop(held);
        // Without its key the CA is not taken over, and nothing is overwritten.
        std::fs::remove_file(state.join(CA_KEY_FILE)).expect("remove key");
        let error = StateDir::open(&state).expect_err("no key").to_string();
        assert!(error.contains("belongs to another lab"), "{error}");
        assert_eq!(
            std::fs::read_to_string(state.join(CA_FILE)).expect("ca"),
            ca.pem
        );
        // Another lab's key is refused too.
        let other = LabCa::generate(1).expect("other");
        std::fs::write(state.join(CA_KEY_FILE), other.issuer.key().serialize_pem()).expect("key");
        let error = StateDir::open(&state).expect_err("wrong key").to_string();
        assert!(error.contains("ca.key is not its key"), "{error}");
    }
}
