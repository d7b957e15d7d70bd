//! The loopback Postfix of `scripts/postfix-env.sh`, shared by the test files that talk to it.
//!
//! [`postfix`] starts the instance once per test binary (or reuses the one named by
//! `SMTPTUI_POSTFIX_ENV`, as `scripts/test.sh` passes it) and returns its env file's values.
//! Where Postfix cannot be started the tests say why and pass as skipped, except under CI
//! (`CI=true`), where a missing Postfix is a failure.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The values from the environment file the script writes.
pub struct Postfix {
    env: HashMap<String, String>,
}

impl Postfix {
    pub fn get(&self, key: &str) -> &str {
        self.env.get(key).map_or("", String::as_str)
    }

    pub fn port(&self, key: &str) -> u16 {
        self.get(key)
            .parse()
            .unwrap_or_else(|_| panic!("{key} missing from the Postfix env file"))
    }

    pub fn password(&self) -> String {
        std::fs::read_to_string(self.get("PASSWORD_FILE"))
            .expect("password file")
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    }
}

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

/// Starts (once per test binary) or reuses the Postfix instance; `None` means skip.
pub fn postfix() -> Option<&'static Postfix> {
    static INSTANCE: OnceLock<Result<Postfix, String>> = OnceLock::new();
    let result = INSTANCE.get_or_init(|| {
        // scripts/test.sh starts Postfix before the tests and passes the env file on.
        if let Some(path) = std::env::var_os("SMTPTUI_POSTFIX_ENV") {
            return parse_env(Path::new(&path))
                .map(|env| Postfix { env })
                .ok_or_else(|| format!("cannot read {}", Path::new(&path).display()));
        }
        let dir = std::env::temp_dir().join("smtptui-postfix");
        let output = Command::new("bash")
            .arg(repo().join("scripts/postfix-env.sh"))
            .arg("start")
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run scripts/postfix-env.sh: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "scripts/postfix-env.sh start failed: {}",
                String::from_utf8_lossy(&output.stderr)
                    .lines()
                    .last()
                    .unwrap_or_default()
            ));
        }
        parse_env(&dir.join("env"))
            .map(|env| Postfix { env })
            .ok_or_else(|| "the script wrote no env file".to_owned())
    });
    match result {
        Ok(postfix) => Some(postfix),
        Err(reason) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("Postfix is required under CI: {reason}")
        }
        Err(reason) => {
            eprintln!("skipping the Postfix tests: {reason}");
            None
        }
    }
}
