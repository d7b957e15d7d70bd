//! The mail domains of `scripts/domain-env.sh`: Knot serving a signed test root and zones
//! below it on loopback, MX hosts as Postfix listeners on 127.0.0.2-127.0.0.5 and ::1, and
//! the MTA-STS policy hosts as nginx on 127.0.0.6 and ::1.
//!
//! [`domain_env`] starts it once per test binary (or reads the env file named by
//! `SMTPTUI_DOMAIN_ENV`, as `scripts/test.sh` passes it) and returns its values. Where it
//! cannot start, the tests say why and pass as skipped, except under CI (`CI=true`), where a
//! missing environment is a failure. [`PolicyHost`] is an HTTPS server of the tests' own
//! where `mta-sts.hostile.test` points, to misbehave as no real server would.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

/// The values of the env file.
pub struct DomainEnv {
    env: HashMap<String, String>,
}

impl DomainEnv {
    /// A value; empty when missing.
    pub fn get(&self, key: &str) -> &str {
        self.env.get(key).map_or("", String::as_str)
    }

    /// The options that point the domain audit at the test DNS and CA.
    pub fn audit_args(&self) -> Vec<String> {
        vec![
            "--resolver".to_owned(),
            self.get("DNS_RESOLVER").to_owned(),
            "--trust-anchor".to_owned(),
            self.get("TRUST_ANCHOR").to_owned(),
            "--ca-file".to_owned(),
            self.get("CA_FILE").to_owned(),
            "--timeout".to_owned(),
            "5".to_owned(),
        ]
    }
}

fn parse(path: &Path) -> Option<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect(),
    )
}

fn start() -> Result<DomainEnv, String> {
    let env = start_or_read()?;
    // An environment started by an older script has no policy hosts: say so rather than
    // fail every MTA-STS case on its own.
    if env.get("POLICY_IP").is_empty() || env.get("HOSTILE_POLICY_IP").is_empty() {
        return Err(
            "the domain environment has no MTA-STS policy hosts (no POLICY_IP in its env file): \
             run scripts/domain-env.sh start DIR again"
                .to_owned(),
        );
    }
    Ok(env)
}

fn start_or_read() -> Result<DomainEnv, String> {
    if let Some(path) = std::env::var_os("SMTPTUI_DOMAIN_ENV") {
        return parse(Path::new(&path))
            .map(|env| DomainEnv { env })
            .ok_or_else(|| format!("cannot read {}", Path::new(&path).display()));
    }
    let dir = std::env::temp_dir().join("smtptui-domain");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/domain-env.sh");
    let output = Command::new("bash")
        .arg(script)
        .arg("start")
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run scripts/domain-env.sh: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "scripts/domain-env.sh start failed: {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        ));
    }
    parse(&dir.join("env"))
        .map(|env| DomainEnv { env })
        .ok_or_else(|| "the script wrote no env file".to_owned())
}

/// The environment, or `None` (with the reason printed) to skip.
pub fn domain_env() -> Option<&'static DomainEnv> {
    static INSTANCE: OnceLock<Result<DomainEnv, String>> = OnceLock::new();
    match INSTANCE.get_or_init(start) {
        Ok(env) => Some(env),
        Err(reason) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("the domain test environment is required under CI: {reason}")
        }
        Err(reason) => {
            eprintln!("skipping the domain audit tests: {reason}");
            None
        }
    }
}

/// How the tests' own policy host answers `GET /.well-known/mta-sts.txt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A valid policy (enforce, `mx: mx1.good.test`) in chunked transfer coding, in pieces.
    Chunked,
    /// A `Content-Length` of 10 MB, then as much of it as the client takes.
    Huge,
    /// A status line, then a header line every 100 ms, forever.
    Drip,
    /// A policy whose mode holds terminal escape sequences.
    Paint,
}

/// An HTTPS server on `HOSTILE_POLICY_IP:443` with a certificate for `mta-sts.hostile.test`
/// from a CA of its own, answering as [`set`](Self::set) says.
pub struct PolicyHost {
    answer: Arc<Mutex<Answer>>,
    /// A PEM file with the environment's CA and this server's CA, for `--ca-file`.
    pub ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl PolicyHost {
    /// Starts the server, or says why it cannot (the address is taken, or binding port 443
    /// needs root).
    pub fn start(env: &DomainEnv) -> Result<Self, String> {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let address = format!("{}:443", env.get("HOSTILE_POLICY_IP"));
        let listener = TcpListener::bind(&address)
            .map_err(|e| format!("cannot listen on {address} for the hostile policy host: {e}"))?;
        let ca_key = KeyPair::generate().map_err(|e| e.to_string())?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
        ca.distinguished_name
            .push(DnType::CommonName, "smtptui hostile policy host CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).map_err(|e| e.to_string())?;
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let mut leaf = CertificateParams::new(vec!["mta-sts.hostile.test".to_owned()])
            .map_err(|e| e.to_string())?;
        leaf.is_ca = IsCa::ExplicitNoCa;
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_cert = leaf.signed_by(&key, &issuer).map_err(|e| e.to_string())?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf_cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .map_err(|e| e.to_string())?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let ca_file = dir.path().join("ca.pem");
        let env_ca = std::fs::read_to_string(env.get("CA_FILE")).map_err(|e| e.to_string())?;
        std::fs::write(&ca_file, format!("{env_ca}\n{}", ca_cert.pem()))
            .map_err(|e| e.to_string())?;
        let answer = Arc::new(Mutex::new(Answer::Chunked));
        let config = Arc::new(config);
        let shared = answer.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let config = config.clone();
                let answer = *shared.lock().unwrap_or_else(PoisonError::into_inner);
                std::thread::spawn(move || serve(stream, config, answer));
            }
        });
        Ok(Self {
            answer,
            ca_file,
            _dir: dir,
        })
    }

    /// How the next connections are answered.
    pub fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap_or_else(PoisonError::into_inner) = answer;
    }
}

/// One connection: the TLS handshake, the request, the answer; any error ends it.
fn serve(stream: std::net::TcpStream, config: Arc<rustls::ServerConfig>, answer: Answer) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(connection) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(connection, stream);
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match tls.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    let policy = "version: STSv1\nmode: enforce\nmx: mx1.good.test\nmax_age: 604800\n";
    let _ = match answer {
        Answer::Chunked => (|| {
            tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")?;
            for piece in policy.as_bytes().chunks(7) {
                tls.write_all(format!("{:x}\r\n", piece.len()).as_bytes())?;
                tls.write_all(piece)?;
                tls.write_all(b"\r\n")?;
                tls.flush()?;
            }
            tls.write_all(b"0\r\n\r\n")?;
            tls.flush()
        })(),
        Answer::Huge => {
            (|| {
                tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10000000\r\n\r\n")?;
                let block = [b'a'; 8192];
                for _ in 0..1221 {
                    tls.write_all(&block)?;
                }
                tls.flush()
            })()
        }
        Answer::Drip => (|| {
            tls.write_all(b"HTTP/1.1 200 OK\r\n")?;
            loop {
                tls.write_all(b"X-Drip: a\r\n")?;
                tls.flush()?;
                std::thread::sleep(Duration::from_millis(100));
            }
        })(),
        Answer::Paint => (|| {
            let body = "version: STSv1\nmode: \x1b[2J\x1b]0;pwned\x07enforce\nmx: mx1.good.test\nmax_age: 604800\n";
            tls.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )?;
            tls.flush()
        })(),
    };
    tls.conn.send_close_notify();
    let _ = tls.flush();
}
