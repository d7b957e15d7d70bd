//! The real MTAs of the test environment, on loopback: the Postfix of
//! `scripts/postfix-env.sh`, and the Exim and Dovecot of `scripts/exim-env.sh` and
//! `scripts/dovecot-env.sh` for the tests that must hold against more than one MTA.
//!
//! [`postfix`], [`exim`] and [`dovecot`] start their instance once per test binary (or reuse
//! the one named by `SMTPTUI_POSTFIX_ENV`, `SMTPTUI_EXIM_ENV` or `SMTPTUI_DOVECOT_ENV`, as
//! `scripts/test.sh` passes them) and return the env file's values. Where a server cannot be
//! started the tests say why and pass as skipped, except under CI (`CI=true`), where a missing
//! server is a failure.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The values from one environment file.
pub struct Mta {
    name: &'static str,
    env: HashMap<String, String>,
}

impl Mta {
    /// A value; empty when missing.
    pub fn get(&self, key: &str) -> &str {
        self.env.get(key).map_or("", String::as_str)
    }

    /// A port number from the env file.
    pub fn port(&self, key: &str) -> u16 {
        self.get(key)
            .parse()
            .unwrap_or_else(|_| panic!("{key} missing from the {} env file", self.name))
    }

    /// A port that an env file written by an older copy of the script lacks (an instance
    /// started before the listener was added and not started again since): `None`, so the
    /// test is skipped with the reason, except under CI (`CI=true`), where it fails.
    pub fn newer_port(&self, key: &str) -> Option<u16> {
        if let Ok(port) = self.get(key).parse() {
            return Some(port);
        }
        let reason = format!(
            "{key} is missing from the {} env file, which an older copy of its script wrote; \
             start the instance again with the current script",
            self.name
        );
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{reason}");
        }
        eprintln!("skipping: {reason}");
        None
    }

    /// The first line of the file named by `PASSWORD_FILE`.
    pub fn password(&self) -> String {
        std::fs::read_to_string(self.get("PASSWORD_FILE"))
            .expect("password file")
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    }
}

/// The source checkout, where the scripts are.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn parse_env(path: &Path) -> Option<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| {
                (
                    k.trim().to_owned(),
                    v.trim().trim_matches('"').trim_matches('\'').to_owned(),
                )
            })
            .collect(),
    )
}

/// Starts the instance of `scripts/<script>` in `<tmp>/<dir>` unless `variable` names an env
/// file already written, and reads it.
fn start(name: &'static str, script: &str, dir: &str, variable: &str) -> Result<Mta, String> {
    if let Some(path) = std::env::var_os(variable) {
        return parse_env(Path::new(&path))
            .map(|env| Mta { name, env })
            .ok_or_else(|| format!("cannot read {}", Path::new(&path).display()));
    }
    let dir = std::env::temp_dir().join(dir);
    let output = Command::new("bash")
        .arg(repo().join("scripts").join(script))
        .arg("start")
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run scripts/{script}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "scripts/{script} start failed: {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        ));
    }
    parse_env(&dir.join("env"))
        .map(|env| Mta { name, env })
        .ok_or_else(|| "the script wrote no env file".to_owned())
}

fn or_skip(name: &str, result: &'static Result<Mta, String>) -> Option<&'static Mta> {
    match result {
        Ok(mta) => Some(mta),
        Err(reason) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{name} is required under CI: {reason}")
        }
        Err(reason) => {
            eprintln!("skipping the {name} tests: {reason}");
            None
        }
    }
}

/// The Postfix instance (submission, implicit, MX, legacy, certificate-failure and lab-like
/// listeners); `None` means skip.
pub fn postfix() -> Option<&'static Mta> {
    static INSTANCE: OnceLock<Result<Mta, String>> = OnceLock::new();
    or_skip(
        "Postfix",
        INSTANCE.get_or_init(|| {
            start(
                "Postfix",
                "postfix-env.sh",
                "smtptui-postfix",
                "SMTPTUI_POSTFIX_ENV",
            )
        }),
    )
}

/// The Exim instance (submission, legacy and old-TLS listeners); `None` means skip.
pub fn exim() -> Option<&'static Mta> {
    static INSTANCE: OnceLock<Result<Mta, String>> = OnceLock::new();
    or_skip(
        "Exim",
        INSTANCE.get_or_init(|| start("Exim", "exim-env.sh", "smtptui-exim", "SMTPTUI_EXIM_ENV")),
    )
}

/// The Dovecot instance (submission, plaintext and local listeners); `None` means skip.
pub fn dovecot() -> Option<&'static Mta> {
    static INSTANCE: OnceLock<Result<Mta, String>> = OnceLock::new();
    or_skip(
        "Dovecot",
        INSTANCE.get_or_init(|| {
            start(
                "Dovecot",
                "dovecot-env.sh",
                "smtptui-dovecot",
                "SMTPTUI_DOVECOT_ENV",
            )
        }),
    )
}

/// The sending Postfix of `scripts/sender-env.sh` (one smtp transport per TLS security level,
/// Knot and a validating Unbound for DANE), for the lab's grade profile; `None` means skip.
pub fn sender() -> Option<&'static Mta> {
    static INSTANCE: OnceLock<Result<Mta, String>> = OnceLock::new();
    or_skip(
        "sending Postfix",
        INSTANCE.get_or_init(|| {
            start(
                "sending Postfix",
                "sender-env.sh",
                "smtptui-sender",
                "SMTPTUI_SENDER_ENV",
            )
        }),
    )
}
