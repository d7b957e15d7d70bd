//! The mail domains of `scripts/domain-env.sh`: Knot serving a signed test root and zones
//! below it on loopback, and MX hosts as Postfix listeners on 127.0.0.2-127.0.0.5 and ::1.
//!
//! [`domain_env`] starts it once per test binary (or reads the env file named by
//! `SMTPTUI_DOMAIN_ENV`, as `scripts/test.sh` passes it) and returns its values. Where it
//! cannot start, the tests say why and pass as skipped, except under CI (`CI=true`), where a
//! missing environment is a failure.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

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
